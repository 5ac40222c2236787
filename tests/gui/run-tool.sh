#!/bin/sh
# run-tool.sh: runs a validation tool, or skips the test (exit 77) when it is not installed.
tool=$1
if ! command -v "$tool" >/dev/null 2>&1; then
  echo "skip: $tool is not installed"
  exit 77
fi
exec "$@"
