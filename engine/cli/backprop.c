/* backprop.c: the `backprop` command: train, models, bench (and help for each). */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <gio/gio.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bp-backend.h"
#include "cuda/bp-cuda.h"
#include "bp-dataset.h"
#include "bp-loader.h"
#include "bp-ops-loss.h"
#include "bp-rng.h"
#include "bp-spec.h"
#include "bp-trainer.h"

#define EXIT_USAGE 2

static const char *prog = "backprop";

static int
usage_error (const char *cmd, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static int
usage_error (const char *cmd, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  fprintf (stderr, "%s %s: %s\n", prog, cmd, msg);
  return EXIT_USAGE;
}

static int
fail (const char *cmd, const char *msg)
{
  fprintf (stderr, "%s %s: %s\n", prog, cmd, msg);
  return 1;
}

/* Strict number parsing: the whole string must be a finite number. */
static gboolean
parse_double (const char *s, double *out)
{
  if (!s || !*s)
    return FALSE;
  char *end = NULL;
  errno = 0;
  double v = g_ascii_strtod (s, &end);
  if (errno || *end || !isfinite (v))
    return FALSE;
  *out = v;
  return TRUE;
}

static gboolean
parse_int (const char *s, gint64 *out)
{
  if (!s || !*s)
    return FALSE;
  char *end = NULL;
  errno = 0;
  gint64 v = g_ascii_strtoll (s, &end, 10);
  if (errno || *end)
    return FALSE;
  *out = v;
  return TRUE;
}

/* ---- device choice ---- */

/* Resolves "cpu", "cuda" or "auto"; prints the fallback line for auto. */
static gboolean
choose_device (const char *name, BpDevice *device, gboolean quiet, GError **error)
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
    fprintf (stderr, "%s: no usable GPU (%s): training on the CPU\n", prog, why);
  *device = BP_DEVICE_CPU;
  return TRUE;
}

/* ---- train ---- */

typedef struct {
  gboolean json;
  gboolean tty;
  gint64 last_draw;
  int width;
} TrainOutput;

static void
print_json_number (const char *key, double v, gboolean comma)
{
  if (isfinite (v))
    printf ("\"%s\":%.6g%s", key, v, comma ? "," : "");
  else
    printf ("\"%s\":null%s", key, comma ? "," : "");
}

static gboolean
train_event (const BpTrainEvent *ev, gpointer user_data)
{
  TrainOutput *out = user_data;
  switch (ev->kind) {
  case BP_TRAIN_EVENT_START:
    if (!out->json)
      printf ("training on %" G_GINT64_FORMAT " examples (%" G_GINT64_FORMAT
              " for validation, %" G_GINT64_FORMAT " for test), %" G_GINT64_FORMAT
              " parameters, %" G_GINT64_FORMAT " steps per epoch\n",
              ev->n_train, ev->n_val, ev->n_test, ev->n_params, ev->steps_per_epoch);
    break;
  case BP_TRAIN_EVENT_STEP:
    if (!out->json && out->tty) {
      gint64 now = g_get_monotonic_time ();
      if (now - out->last_draw < 100000 && ev->step != ev->steps_per_epoch)
        break;
      out->last_draw = now;
      int filled = (int) (30 * ev->step / MAX (1, ev->steps_per_epoch));
      char bar[31];
      memset (bar, '#', (size_t) filled);
      memset (bar + filled, '.', (size_t) (30 - filled));
      bar[30] = '\0';
      printf ("\repoch %d/%d [%s] %3d%% loss %.4f %.0f img/s ", ev->epoch, ev->epochs, bar,
              (int) (100 * ev->step / MAX (1, ev->steps_per_epoch)), ev->loss,
              ev->images_per_second);
      fflush (stdout);
    }
    break;
  case BP_TRAIN_EVENT_EPOCH:
    if (out->json) {
      printf ("{\"event\":\"epoch\",\"epoch\":%d,", ev->epoch);
      print_json_number ("train_loss", ev->train_loss, TRUE);
      print_json_number ("train_accuracy", ev->train_accuracy, TRUE);
      print_json_number ("val_loss", ev->val_loss, TRUE);
      print_json_number ("val_accuracy", ev->val_accuracy, TRUE);
      print_json_number ("lr", ev->lr, TRUE);
      print_json_number ("images_per_second", ev->images_per_second, TRUE);
      print_json_number ("seconds", ev->seconds, FALSE);
      printf ("}\n");
    } else {
      printf ("%sepoch %d/%d: train loss %.4f, accuracy %.4f; val loss %.4f, accuracy %.4f "
              "(%.1f s, %.0f img/s)\n",
              out->tty ? "\r\033[K" : "", ev->epoch, ev->epochs, ev->train_loss,
              ev->train_accuracy, ev->val_loss, ev->val_accuracy, ev->seconds,
              ev->images_per_second);
    }
    fflush (stdout);
    break;
  case BP_TRAIN_EVENT_DONE:
    if (out->json) {
      printf ("{\"event\":\"done\",");
      print_json_number ("test_accuracy", ev->test_accuracy, TRUE);
      print_json_number ("test_loss", ev->test_loss, TRUE);
      print_json_number ("seconds", ev->seconds, FALSE);
      printf ("}\n");
    } else {
      printf ("%stest loss %.4f, test accuracy %.4f, %.1f s in all\n", out->tty ? "\r\033[K" : "",
              ev->test_loss, ev->test_accuracy, ev->seconds);
    }
    fflush (stdout);
    break;
  }
  return TRUE;
}

static gboolean
parse_optimizer (const char *name, BpOptimKind *kind)
{
  if (g_strcmp0 (name, "sgd") == 0)
    *kind = BP_OPTIM_SGD;
  else if (g_strcmp0 (name, "adam") == 0)
    *kind = BP_OPTIM_ADAM;
  else if (g_strcmp0 (name, "adamw") == 0)
    *kind = BP_OPTIM_ADAMW;
  else
    return FALSE;
  return TRUE;
}

static gboolean
parse_scheduler (const char *name, BpSchedKind *kind)
{
  if (g_strcmp0 (name, "none") == 0 || g_strcmp0 (name, "constant") == 0)
    *kind = BP_SCHED_CONSTANT;
  else if (g_strcmp0 (name, "step") == 0)
    *kind = BP_SCHED_STEP;
  else if (g_strcmp0 (name, "cosine") == 0)
    *kind = BP_SCHED_COSINE;
  else if (g_strcmp0 (name, "plateau") == 0)
    *kind = BP_SCHED_PLATEAU;
  else
    return FALSE;
  return TRUE;
}

typedef struct {
  const char *flag;
  char **text;
  enum { NUM_INT, NUM_FLOAT } kind;
  double min, max;
  gboolean min_open; /* value must be > min */
  void *dst;
} NumberFlag;

static int
apply_number_flags (const char *cmd, NumberFlag *flags, gsize n)
{
  for (gsize k = 0; k < n; k++) {
    const char *s = *flags[k].text;
    if (!s)
      continue;
    if (flags[k].kind == NUM_INT) {
      gint64 v;
      if (!parse_int (s, &v))
        return usage_error (cmd, "%s needs a whole number, not \"%s\"", flags[k].flag, s);
      if ((flags[k].min_open ? v <= flags[k].min : v < flags[k].min) || v > flags[k].max)
        return usage_error (cmd, "%s must be between %.0f and %.0f, not %s", flags[k].flag,
                            flags[k].min, flags[k].max, s);
      *(gint64 *) flags[k].dst = v;
    } else {
      double v;
      if (!parse_double (s, &v))
        return usage_error (cmd, "%s needs a number, not \"%s\"", flags[k].flag, s);
      if ((flags[k].min_open ? v <= flags[k].min : v < flags[k].min) || v > flags[k].max)
        return usage_error (cmd, "%s must be %s %g and at most %g, not %s", flags[k].flag,
                            flags[k].min_open ? "greater than" : "at least", flags[k].min,
                            flags[k].max, s);
      *(double *) flags[k].dst = v;
    }
  }
  return 0;
}

static int
cmd_train (int argc, char **argv)
{
  const char *cmd = "train";
  g_autofree char *model = g_strdup ("simple-cnn"), *dataset = g_strdup ("fashion-mnist");
  g_autofree char *optimizer = g_strdup ("adam"), *scheduler = g_strdup ("none");
  g_autofree char *device = g_strdup ("auto");
  char *s_epochs = NULL, *s_batch = NULL, *s_lr = NULL, *s_momentum = NULL, *s_wd = NULL,
       *s_l1 = NULL, *s_clip = NULL, *s_smooth = NULL, *s_step = NULL, *s_gamma = NULL,
       *s_warmup = NULL, *s_seed = NULL, *s_threads = NULL, *s_limit = NULL, *s_limit_test = NULL,
       *s_val = NULL;
  gboolean json = FALSE, nesterov = FALSE;
  GOptionEntry entries[] = {
    {"model", 'm', 0, G_OPTION_ARG_STRING, &model, "Model preset (see `backprop models`); default simple-cnn", "NAME"},
    {"dataset", 'd', 0, G_OPTION_ARG_STRING, &dataset, "Data set; default fashion-mnist", "NAME"},
    {"epochs", 'e', 0, G_OPTION_ARG_STRING, &s_epochs, "Passes over the training set; default 10", "N"},
    {"batch-size", 'b', 0, G_OPTION_ARG_STRING, &s_batch, "Examples per step; default 64", "N"},
    {"optimizer", 'o', 0, G_OPTION_ARG_STRING, &optimizer, "sgd, adam or adamw; default adam", "NAME"},
    {"lr", 0, 0, G_OPTION_ARG_STRING, &s_lr, "Learning rate; default 1e-3 (adam, adamw) or 0.01 (sgd)", "X"},
    {"momentum", 0, 0, G_OPTION_ARG_STRING, &s_momentum, "SGD momentum; default 0", "X"},
    {"nesterov", 0, 0, G_OPTION_ARG_NONE, &nesterov, "Nesterov momentum (SGD)", NULL},
    {"weight-decay", 0, 0, G_OPTION_ARG_STRING, &s_wd, "L2 weight decay (decoupled for adamw); default 0 (0.01 for adamw)", "X"},
    {"l1", 0, 0, G_OPTION_ARG_STRING, &s_l1, "L1 penalty strength; default 0", "X"},
    {"clip-norm", 0, 0, G_OPTION_ARG_STRING, &s_clip, "Clip the gradient's total L2 norm to X; default off", "X"},
    {"label-smoothing", 0, 0, G_OPTION_ARG_STRING, &s_smooth, "Cross-entropy label smoothing in [0, 1); default 0", "X"},
    {"scheduler", 0, 0, G_OPTION_ARG_STRING, &scheduler, "Learning-rate schedule: none, step, cosine or plateau; default none", "NAME"},
    {"step-size", 0, 0, G_OPTION_ARG_STRING, &s_step, "StepLR: epochs between decays; default 3", "N"},
    {"gamma", 0, 0, G_OPTION_ARG_STRING, &s_gamma, "StepLR decay factor; default 0.1", "X"},
    {"warmup", 0, 0, G_OPTION_ARG_STRING, &s_warmup, "Linear warm-up epochs before the schedule; default 0", "N"},
    {"seed", 0, 0, G_OPTION_ARG_STRING, &s_seed, "Random seed (runs repeat bit for bit on the CPU); default 1", "N"},
    {"device", 0, 0, G_OPTION_ARG_STRING, &device, "cpu, cuda or auto (the GPU when one is usable); default auto", "DEV"},
    {"threads", 0, 0, G_OPTION_ARG_STRING, &s_threads, "CPU threads; default all cores", "N"},
    {"limit-train", 0, 0, G_OPTION_ARG_STRING, &s_limit, "Use only the first N training examples (quick runs)", "N"},
    {"limit-test", 0, 0, G_OPTION_ARG_STRING, &s_limit_test, "Use only the first N test examples", "N"},
    {"val-fraction", 0, 0, G_OPTION_ARG_STRING, &s_val, "Share of the training set held out for validation; default 0.1", "X"},
    {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON object per epoch and one at the end", NULL},
    {NULL},
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- train a model");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_summary (ctx, "Trains a model on a data set, printing progress per epoch and the test "
                                     "accuracy at the end.");
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return usage_error (cmd, "%s", error->message);
  if (argc > 1)
    return usage_error (cmd, "unexpected argument \"%s\"", argv[1]);

  BpOptimKind okind;
  if (!parse_optimizer (optimizer, &okind))
    return usage_error (cmd, "--optimizer must be sgd, adam or adamw, not \"%s\"", optimizer);
  BpSchedKind skind;
  if (!parse_scheduler (scheduler, &skind))
    return usage_error (cmd, "--scheduler must be none, step, cosine or plateau, not \"%s\"",
                        scheduler);
  if (!bp_preset_find (model))
    return usage_error (cmd, "unknown model \"%s\" (see `backprop models`)", model);

  BpTrainConfig c = bp_train_config_default ();
  c.model = model;
  c.dataset = dataset;
  c.optim = bp_optim_config_default (okind);
  c.sched = bp_sched_config_default (skind);
  if (skind == BP_SCHED_COSINE)
    c.sched.t_max = c.epochs;
  gint64 epochs = c.epochs, batch = c.batch_size, seed = 1, threads = 0, limit = 0, limit_test = 0,
         step_size = c.sched.step_size, warmup = 0;
  double lr = c.optim.lr, momentum = 0, wd = c.optim.weight_decay, l1 = 0, clip = 0, smooth = 0,
         gamma = c.sched.gamma, val = c.val_fraction;
  NumberFlag flags[] = {
    {"--epochs", &s_epochs, NUM_INT, 1, 100000, FALSE, &epochs},
    {"--batch-size", &s_batch, NUM_INT, 1, 1 << 20, FALSE, &batch},
    {"--lr", &s_lr, NUM_FLOAT, 0, 1e3, TRUE, &lr},
    {"--momentum", &s_momentum, NUM_FLOAT, 0, 0.999999, FALSE, &momentum},
    {"--weight-decay", &s_wd, NUM_FLOAT, 0, 1e3, FALSE, &wd},
    {"--l1", &s_l1, NUM_FLOAT, 0, 1e3, FALSE, &l1},
    {"--clip-norm", &s_clip, NUM_FLOAT, 0, 1e9, FALSE, &clip},
    {"--label-smoothing", &s_smooth, NUM_FLOAT, 0, 0.999999, FALSE, &smooth},
    {"--step-size", &s_step, NUM_INT, 1, 1e9, FALSE, &step_size},
    {"--gamma", &s_gamma, NUM_FLOAT, 0, 1, TRUE, &gamma},
    {"--warmup", &s_warmup, NUM_INT, 0, 1e6, FALSE, &warmup},
    {"--seed", &s_seed, NUM_INT, 0, 9.2e18, FALSE, &seed},
    {"--threads", &s_threads, NUM_INT, 1, 1024, FALSE, &threads},
    {"--limit-train", &s_limit, NUM_INT, 1, 1e12, FALSE, &limit},
    {"--limit-test", &s_limit_test, NUM_INT, 1, 1e12, FALSE, &limit_test},
    {"--val-fraction", &s_val, NUM_FLOAT, 0, 0.9, FALSE, &val},
  };
  int rc = apply_number_flags (cmd, flags, G_N_ELEMENTS (flags));
  for (gsize k = 0; k < G_N_ELEMENTS (flags); k++)
    g_free (*flags[k].text);
  if (rc)
    return rc;
  if (nesterov && (okind != BP_OPTIM_SGD || momentum <= 0))
    return usage_error (cmd, "--nesterov needs --optimizer sgd and a --momentum above 0");

  c.epochs = (int) epochs;
  c.batch_size = batch;
  c.optim.lr = (float) lr;
  c.optim.momentum = (float) momentum;
  c.optim.nesterov = nesterov;
  c.optim.weight_decay = (float) wd;
  c.optim.l1 = (float) l1;
  c.clip_norm = (float) clip;
  c.label_smoothing = (float) smooth;
  c.sched.step_size = (int) step_size;
  c.sched.gamma = (float) gamma;
  c.sched.warmup_epochs = (int) warmup;
  if (skind == BP_SCHED_COSINE)
    c.sched.t_max = MAX (1, c.epochs - c.sched.warmup_epochs);
  c.seed = (uint64_t) seed;
  c.limit_train = limit;
  c.limit_test = limit_test;
  c.val_fraction = val;
  if (!choose_device (device, &c.device, json, &error))
    return usage_error (cmd, "%s", error->message);
  bp_set_num_threads ((int) threads);

  BpTrainer *trainer = bp_trainer_new (&c, &error);
  if (!trainer)
    return fail (cmd, error->message);
  TrainOutput out = {.json = json, .tty = isatty (STDOUT_FILENO)};
  gboolean ok = bp_trainer_run (trainer, train_event, &out, &error);
  bp_trainer_free (trainer);
  if (!ok) {
    if (out.tty && !json)
      printf ("\n");
    return fail (cmd, error->message);
  }
  return 0;
}

/* ---- models ---- */

static int
cmd_models (int argc, char **argv)
{
  gboolean json = FALSE;
  GOptionEntry entries[] = {
    {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print a JSON array", NULL},
    {NULL},
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- list the model presets");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return usage_error ("models", "%s", error->message);
  int n;
  const BpPreset *presets = bp_presets (&n);
  if (json)
    printf ("[");
  for (int k = 0; k < n; k++) {
    BpModel *m = bp_spec_build (presets[k].json, &error);
    if (!m)
      return fail ("models", error->message);
    if (json)
      printf ("%s{\"name\":\"%s\",\"parameters\":%" G_GINT64_FORMAT ",\"description\":\"%s\"}",
              k ? "," : "", presets[k].name, bp_model_num_parameters (m), presets[k].description);
    else
      printf ("%-12s %10" G_GINT64_FORMAT " parameters  %s\n", presets[k].name,
              bp_model_num_parameters (m), presets[k].description);
    bp_model_free (m);
  }
  if (json)
    printf ("]\n");
  return 0;
}

/* ---- bench ---- */

static int
cmd_bench (int argc, char **argv)
{
  const char *cmd = "bench";
  g_autofree char *model = g_strdup ("simple-cnn");
  char *s_batch = NULL, *s_steps = NULL, *s_warmup = NULL, *s_threads = NULL;
  gboolean json = FALSE;
  GOptionEntry entries[] = {
    {"model", 'm', 0, G_OPTION_ARG_STRING, &model, "Model preset; default simple-cnn", "NAME"},
    {"batch-size", 'b', 0, G_OPTION_ARG_STRING, &s_batch, "Examples per step; default 64", "N"},
    {"steps", 0, 0, G_OPTION_ARG_STRING, &s_steps, "Timed training steps; default 50", "N"},
    {"warmup", 0, 0, G_OPTION_ARG_STRING, &s_warmup, "Untimed steps first; default 5", "N"},
    {"threads", 0, 0, G_OPTION_ARG_STRING, &s_threads, "CPU threads; default all cores", "N"},
    {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print the result as one JSON object", NULL},
    {NULL},
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- measure training speed");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_summary (ctx, "Trains a preset with Adam on the first Fashion-MNIST training "
                                     "images, in order, and reports images per second. "
                                     "bench/run compares it with PyTorch on the same batches.");
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return usage_error (cmd, "%s", error->message);
  gint64 batch = 64, steps = 50, warmup = 5, threads = 0;
  NumberFlag flags[] = {
    {"--batch-size", &s_batch, NUM_INT, 1, 1 << 16, FALSE, &batch},
    {"--steps", &s_steps, NUM_INT, 1, 1e6, FALSE, &steps},
    {"--warmup", &s_warmup, NUM_INT, 0, 1e6, FALSE, &warmup},
    {"--threads", &s_threads, NUM_INT, 1, 1024, FALSE, &threads},
  };
  int rc = apply_number_flags (cmd, flags, G_N_ELEMENTS (flags));
  for (gsize k = 0; k < G_N_ELEMENTS (flags); k++)
    g_free (*flags[k].text);
  if (rc)
    return rc;
  const BpPreset *preset = bp_preset_find (model);
  if (!preset)
    return usage_error (cmd, "unknown model \"%s\" (see `backprop models`)", model);
  bp_set_num_threads ((int) threads);
  bp_rng_seed (1);

  BpDatasetOptions dopts = BP_DATASET_OPTIONS_INIT;
  dopts.limit = MIN (60000, batch * (steps + warmup));
  BpDataset *ds = bp_dataset_load_full ("fashion-mnist", "train", &dopts, &error);
  if (!ds)
    return fail (cmd, error->message);
  BpModel *m = bp_spec_build (preset->json, &error);
  if (!m) {
    bp_dataset_unref (ds);
    return fail (cmd, error->message);
  }
  BpTensor **params;
  int n_params = bp_model_parameters (m, &params);
  BpOptimConfig oc = bp_optim_config_default (BP_OPTIM_ADAM);
  BpOptimizer *opt = bp_optimizer_new (&oc, n_params, params);
  BpLoaderOptions lo = BP_LOADER_OPTIONS_INIT;
  lo.batch_size = batch;
  lo.drop_last = TRUE;
  BpLoader *loader = bp_loader_new (ds, NULL, &lo, &error);
  g_assert (loader);

  gint64 t0 = 0;
  double last_loss = 0;
  for (gint64 s = 0; s < steps + warmup; s++) {
    if (s == warmup)
      t0 = g_get_monotonic_time ();
    BpTensor *x, *y;
    if (!bp_loader_next (loader, &x, &y))
      g_assert_true (bp_loader_next (loader, &x, &y));
    bp_optimizer_zero_grad (opt);
    BpTensor *logits = bp_model_forward (m, x);
    BpTensor *loss = logits ? bp_cross_entropy (logits, y, 0.0f) : NULL;
    if (!loss || bp_backward (loss) != BP_OK || bp_optimizer_step (opt) != BP_OK)
      return fail (cmd, bp_last_error ());
    last_loss = loss->data[0];
    bp_tensor_unref (loss);
    bp_tensor_unref (logits);
    bp_tape_clear ();
  }
  double seconds = (double) (g_get_monotonic_time () - t0) / 1e6;
  double ips = (double) (steps * batch) / seconds;
  if (json)
    printf ("{\"engine\":\"backprop\",\"model\":\"%s\",\"batch_size\":%" G_GINT64_FORMAT
            ",\"threads\":%d,\"steps\":%" G_GINT64_FORMAT
            ",\"images_per_second\":%.1f,\"last_loss\":%.5f}\n",
            model, batch, bp_get_num_threads (), steps, ips, last_loss);
  else
    printf ("%s, batch %" G_GINT64_FORMAT ", %d threads: %.1f images/s (loss %.4f)\n", model, batch,
            bp_get_num_threads (), ips, last_loss);
  bp_loader_free (loader);
  bp_optimizer_free (opt);
  free (params);
  bp_model_free (m);
  bp_dataset_unref (ds);
  return 0;
}

/* ---- devices ---- */

static void
print_line (const char *line, void *user)
{
  printf ("%s\n", line);
}

static int
cmd_devices (int argc, char **argv)
{
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- list the GPUs");
  g_option_context_set_summary (ctx, "Lists the GPUs found (name, memory, compute capability, driver, "
                                     "cuDNN and cuBLAS versions) or says why none can be used.");
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return usage_error ("devices", "%s", error->message);
  BpCudaInfo info;
  bp_cuda_query (&info);
  bp_cuda_info_print (&info, print_line, NULL);
  return 0;
}

/* ---- main ---- */

typedef struct {
  const char *name;
  int (*run) (int argc, char **argv);
  const char *help;
} Command;

static const Command commands[] = {
  {"train", cmd_train, "Train a model on a data set"},
  {"models", cmd_models, "List the model presets with their parameter counts"},
  {"bench", cmd_bench, "Measure training speed (images per second)"},
  {"devices", cmd_devices, "List the GPUs, or say why none can be used"},
};

static void
print_help (FILE *f)
{
  fprintf (f, "Usage: %s COMMAND [OPTIONS]\n\nBackprop Lab %s: deep learning on the command line.\n\n"
              "Commands:\n", prog, PACKAGE_VERSION);
  for (gsize k = 0; k < G_N_ELEMENTS (commands); k++)
    fprintf (f, "  %-8s %s\n", commands[k].name, commands[k].help);
  fprintf (f, "\nRun `%s COMMAND --help` for a command's options.\n", prog);
}

int
main (int argc, char **argv)
{
  if (argc < 2) {
    print_help (stderr);
    return EXIT_USAGE;
  }
  if (!strcmp (argv[1], "--help") || !strcmp (argv[1], "-h") || !strcmp (argv[1], "help")) {
    print_help (stdout);
    return 0;
  }
  if (!strcmp (argv[1], "--version")) {
    printf ("backprop %s\n", PACKAGE_VERSION);
    return 0;
  }
  for (gsize k = 0; k < G_N_ELEMENTS (commands); k++) {
    if (strcmp (argv[1], commands[k].name) == 0) {
      g_set_prgname (commands[k].name);
      return commands[k].run (argc - 1, argv + 1);
    }
  }
  fprintf (stderr, "%s: unknown command \"%s\" (see `%s --help`)\n", prog, argv[1], prog);
  return EXIT_USAGE;
}
