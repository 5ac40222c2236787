/* bp-cli.h: what the `backprop` commands share: the device choice, stopping on Ctrl-C, run ids. */
#pragma once

#include <glib.h>

#include "bp-tensor.h"

G_BEGIN_DECLS

#define BP_CLI_EXIT_USAGE 2

/* One line on stderr, "backprop CMD: message". The usage form returns BP_CLI_EXIT_USAGE (a bad
 * flag or argument), the others 1 (the command could not do its work). */
int bp_cli_usage_error (const char *cmd, const char *fmt, ...) G_GNUC_PRINTF (2, 3);
int bp_cli_fail (const char *cmd, const char *message);
int bp_cli_failf (const char *cmd, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

/* Resolves "cpu", "cuda" or "auto" (the GPU when its backend starts and has the training
 * kernels); auto without a usable GPU prints one line saying why (unless quiet) and gives the
 * CPU. A bad name or cuda without a GPU is an error naming --device. */
gboolean bp_cli_choose_device (const char *name, BpDevice *device, gboolean quiet,
                               GError **error);

/* SIGINT and SIGTERM ask training to stop after the current step (a second one ends the program
 * at once: the handler is reset after the first). */
void bp_cli_catch_stop_signals (void);
/* The signal that asked to stop, 0 while none has. */
int bp_cli_stop_signal (void);

/* A non-empty string of ASCII digits (a run id, a layer number). */
gboolean bp_cli_all_digits (const char *s);

G_END_DECLS
