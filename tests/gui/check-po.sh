#!/bin/sh
# check-po.sh: fails when po/zh_TW.po misses, leaves untranslated or marks fuzzy any message of
# the sources listed in po/POTFILES.in (extracted afresh with meson's glib preset keywords).
set -eu
src=$1
lang=${2:-zh_TW}
for tool in xgettext msgmerge msgfmt; do
  if ! command -v $tool >/dev/null 2>&1; then
    echo "skip: $tool is not installed (package gettext)"
    exit 77
  fi
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$src"
grep -v '^#' po/POTFILES.in | grep -v '^$' >"$tmp/files"
xgettext --from-code=UTF-8 --add-comments \
  --keyword=_ --keyword=N_ --keyword=C_:1c,2 --keyword=NC_:1c,2 --keyword=g_dcgettext:2 \
  --keyword=g_dngettext:2,3 --keyword=g_dpgettext2:2c,3 \
  --flag=N_:1:pass-c-format --flag=C_:2:pass-c-format --flag=NC_:2:pass-c-format \
  --flag=g_dngettext:2:pass-c-format --flag=g_strdup_printf:1:c-format \
  --flag=g_string_printf:2:c-format --flag=g_string_append_printf:2:c-format \
  --flag=g_error_new:3:c-format --flag=g_set_error:4:c-format \
  --files-from="$tmp/files" -o "$tmp/backprop-lab.pot"
# the catalog itself must compile with format checks
msgfmt --check --statistics -o /dev/null "po/$lang.po"
msgmerge --quiet --no-fuzzy-matching "po/$lang.po" "$tmp/backprop-lab.pot" -o "$tmp/merged.po"
stats=$(msgfmt --statistics -o /dev/null "$tmp/merged.po" 2>&1)
echo "$lang against the sources: $stats"
case "$stats" in
  *untranslated* | *fuzzy*)
    echo "FAIL: po/$lang.po is incomplete; the messages missing a translation:"
    msgattrib --untranslated --only-fuzzy "$tmp/merged.po" 2>/dev/null | grep '^msgid' || true
    msgattrib --untranslated "$tmp/merged.po" 2>/dev/null | grep '^msgid' || true
    exit 1
    ;;
esac
# messages of the catalog that no source uses any more
obsolete=$(grep -c '^#~ msgid' "$tmp/merged.po" || true)
if [ "$obsolete" != 0 ]; then
  echo "FAIL: po/$lang.po has $obsolete messages no source uses (run msgmerge)"
  exit 1
fi
echo "ok: po/$lang.po is complete"
