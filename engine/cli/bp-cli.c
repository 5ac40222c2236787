/* bp-cli.c: what the `backprop` commands share (see bp-cli.h). */
#include "config.h"

#include "bp-cli.h"

#include <gio/gio.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bp-backend.h"
#include "cuda/bp-cuda.h"

int
bp_cli_usage_error (const char *cmd, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  fprintf (stderr, "backprop %s: %s\n", cmd, msg);
  return BP_CLI_EXIT_USAGE;
}

int
bp_cli_fail (const char *cmd, const char *message)
{
  fprintf (stderr, "backprop %s: %s\n", cmd, message);
  return 1;
}

int
bp_cli_failf (const char *cmd, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  return bp_cli_fail (cmd, msg);
}

gboolean
bp_cli_choose_device (const char *name, BpDevice *device, gboolean quiet, GError **error)
{
  if (g_strcmp0 (name, "cpu") == 0) {
    *device = BP_DEVICE_CPU;
    return TRUE;
  }
  if (g_strcmp0 (name, "cuda") != 0 && g_strcmp0 (name, "auto") != 0) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 "--device must be cpu, cuda or auto, not \"%s\"", name);
    return FALSE;
  }
  char why[256] = "";
  if (bp_cuda_init (why, sizeof why) == BP_OK) {
    const BpBackend *be = bp_backend (BP_DEVICE_CUDA);
    if (be && be->eltwise && be->conv && be->norm && be->loss && be->optim) {
      *device = BP_DEVICE_CUDA;
      return TRUE;
    }
    g_strlcpy (why, "the CUDA backend has no training kernels yet", sizeof why);
  }
  if (g_strcmp0 (name, "cuda") == 0) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED, "--device cuda: %s", why);
    return FALSE;
  }
  if (!quiet)
    fprintf (stderr, "backprop: no usable GPU (%s): training on the CPU\n", why);
  *device = BP_DEVICE_CPU;
  return TRUE;
}

static volatile sig_atomic_t stop_signal = 0;

static void
on_stop_signal (int sig)
{
  stop_signal = sig;
  static const char msg[] = "\nstopping after this step (again to quit at once)\n";
  if (write (STDERR_FILENO, msg, sizeof msg - 1) < 0) {
    /* nothing to do */
  }
}

void
bp_cli_catch_stop_signals (void)
{
  struct sigaction sa;
  memset (&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sa.sa_flags = SA_RESETHAND | SA_RESTART;
  sigemptyset (&sa.sa_mask);
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGTERM, &sa, NULL);
}

int
bp_cli_stop_signal (void)
{
  return stop_signal;
}

gboolean
bp_cli_all_digits (const char *s)
{
  if (!*s)
    return FALSE;
  for (; *s; s++)
    if (!g_ascii_isdigit (*s))
      return FALSE;
  return TRUE;
}
