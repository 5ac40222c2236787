/* test-train-device.c: the trainer on a GPU (parity with the CPU, checkpoints across devices;
 * skipped without one) and the trainer behaviour the GUI needs (Stop, a changed lr). */
#include "bp-test.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "bp-backend.h"
#include "bp-trainer.h"
#include "cuda/bp-cuda.h"

/* A small run: 512 Fashion-MNIST examples, no validation set. */
static BpTrainConfig
small_config (const char *model)
{
  BpTrainConfig c = bp_train_config_default ();
  c.model = model;
  c.epochs = 1;
  c.limit_train = 512;
  c.limit_test = 200;
  c.val_fraction = 0.0;
  c.seed = 3;
  return c;
}

/* Whether a GPU can be used; skips the test with bp_cuda_init's reason when not. */
static gboolean
have_cuda (void)
{
  char why[256] = "";
  if (bp_cuda_init (why, sizeof why) == BP_OK)
    return TRUE;
  g_autofree char *msg = g_strdup_printf ("no usable CUDA device: %s", why);
  g_test_skip (msg);
  return FALSE;
}

static gboolean
collect_losses (const BpTrainEvent *ev, gpointer user)
{
  if (ev->kind == BP_TRAIN_EVENT_STEP)
    g_array_append_val ((GArray *) user, ev->loss);
  return TRUE;
}

static GArray *
train_losses (BpDevice device)
{
  BpTrainConfig c = small_config ("simple-cnn");
  c.device = device;
  BpTrainer *t = bp_test_new_trainer (&c);
  if (!t)
    return NULL;
  GArray *losses = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr (GError) error = NULL;
  g_assert_true (bp_trainer_run (t, collect_losses, losses, &error));
  g_assert_no_error (error);
  bp_trainer_free (t);
  return losses;
}

static void
test_cuda_parity (void)
{
  if (!have_cuda ())
    return;
  bp_cuda_set_tf32 (false);
  GArray *cpu = train_losses (BP_DEVICE_CPU);
  if (!cpu)
    return;
  GArray *gpu = train_losses (BP_DEVICE_CUDA);
  g_assert_cmpuint (cpu->len, ==, 8); /* 512 examples in batches of 64 */
  g_assert_cmpuint (gpu->len, ==, cpu->len);
  for (guint i = 0; i < cpu->len; i++) {
    double a = g_array_index (cpu, double, i), b = g_array_index (gpu, double, i);
    g_test_message ("step %u: cpu %.7f cuda %.7f", i + 1, a, b);
    g_assert_cmpfloat (fabs (a - b), <=, 1e-3 * fabs (a));
  }
  g_array_unref (cpu);
  g_array_unref (gpu);
  bp_cuda_set_tf32 (true);
}

static void
test_cuda_checkpoint_on_cpu (void)
{
  if (!have_cuda ())
    return;
  BpTrainConfig c = small_config ("simple-cnn");
  c.device = BP_DEVICE_CUDA;
  BpTrainer *t = bp_test_new_trainer (&c);
  if (!t)
    return;
  g_autoptr (GError) error = NULL;
  g_assert_true (bp_trainer_run (t, NULL, NULL, &error));
  g_assert_no_error (error);
  double gpu_loss, gpu_acc;
  g_assert_true (bp_trainer_evaluate_test (t, &gpu_loss, &gpu_acc, &error));
  g_autofree char *dir = g_dir_make_tmp ("bp-train-device-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "cuda.safetensors", NULL);
  g_assert_true (bp_trainer_save_checkpoint (t, path, NULL, &error));
  g_assert_no_error (error);

  /* a CPU trainer continues from it and evaluates the same (float32, no TF32 difference
   * beyond 1e-3) */
  c.device = BP_DEVICE_CPU;
  c.epochs = 2;
  BpTrainer *u = bp_test_new_trainer (&c);
  g_assert_true (bp_trainer_load_checkpoint (u, path, &error));
  g_assert_no_error (error);
  g_assert_cmpint (bp_trainer_get_epochs_done (u), ==, 1);
  double cpu_loss, cpu_acc;
  g_assert_true (bp_trainer_evaluate_test (u, &cpu_loss, &cpu_acc, &error));
  g_assert_cmpfloat (fabs (cpu_loss - gpu_loss), <=, 1e-2 * gpu_loss);
  g_assert_true (bp_trainer_run (u, NULL, NULL, &error));
  g_assert_no_error (error);
  /* and the model alone loads for inference */
  BpModel *m = bp_checkpoint_load_model (path, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (m);
  bp_model_free (m);
  bp_trainer_free (u);
  bp_trainer_free (t);
  g_unlink (path);
  g_rmdir (dir);
}

/* ---- steps the way a CUDA graph replays them ---- */

typedef struct {
  GArray *loss, *acc;
  double test_loss, test_acc;
  int64_t stop_at; /* stop after this global step (0: never), then run on */
} Steps;

static gboolean
collect_steps (const BpTrainEvent *ev, gpointer user)
{
  Steps *s = user;
  if (ev->kind == BP_TRAIN_EVENT_STEP) {
    g_array_append_val (s->loss, ev->loss);
    g_array_append_val (s->acc, ev->accuracy);
    if (ev->global_step == s->stop_at) {
      s->stop_at = 0;
      return FALSE;
    }
  } else if (ev->kind == BP_TRAIN_EVENT_DONE) {
    s->test_loss = ev->test_loss;
    s->test_acc = ev->test_accuracy;
  }
  return TRUE;
}

/* Trains c in `mode`: the steps' losses and accuracies, the test metrics, and the trainer
 * (for its state). NULL when the data set is missing (the test is skipped). */
static BpTrainer *
run_mode (const BpTrainConfig *c, BpStepMode mode, Steps *s)
{
  BpTrainer *t = bp_test_new_trainer (c);
  if (!t)
    return NULL;
  bp_trainer_set_step_mode (t, mode);
  s->loss = g_array_new (FALSE, FALSE, sizeof (double));
  s->acc = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr (GError) error = NULL;
  int64_t stop_at = s->stop_at;
  g_assert_true (bp_trainer_run (t, collect_steps, s, &error));
  g_assert_no_error (error);
  if (stop_at) {
    /* stopped mid-epoch (a batch fetched ahead is dropped): the same trainer runs on */
    g_assert_cmpint (bp_trainer_get_global_step (t), ==, stop_at);
    g_assert_true (bp_trainer_run (t, collect_steps, s, &error));
    g_assert_no_error (error);
  }
  return t;
}

/* The same numbers bit for bit: every step's loss and accuracy, the test metrics, the model
 * state (parameters, running statistics, num_batches_tracked) and the optimizer state. And the
 * fixed steps' note: on a GPU the step was captured as a CUDA graph; on the CPU nothing in it
 * copied between host and device or waited (what would stop a capture). With `host`, the step
 * could not be held, for that reason. */
static void
assert_same_training (const char *what, const BpTrainConfig *c, BpDevice device, int64_t stop_at,
                      const char *host)
{
  BpTrainConfig cc = *c;
  cc.device = device;
  Steps e = {0}, f = {.stop_at = stop_at};
  BpTrainer *te = run_mode (&cc, BP_STEP_EAGER, &e);
  if (!te)
    return;
  BpTrainer *tf = run_mode (&cc, device == BP_DEVICE_CUDA ? BP_STEP_GRAPH : BP_STEP_FIXED, &f);
  const char *note = bp_trainer_get_step_note (tf);
  g_test_message ("%s: %u steps; %s", what, e.loss->len, note);
  if (host) {
    g_assert_nonnull (strstr (note, host));
    g_assert_true (g_str_has_prefix (note, device == BP_DEVICE_CUDA ? "CUDA graph off: "
                                                                    : "Fixed steps: a CUDA graph "
                                                                      "could not hold the step: "));
  } else {
    g_assert_true (g_str_has_prefix (note, device == BP_DEVICE_CUDA ? "CUDA graph: "
                                                                    : "Fixed steps: the step stays "
                                                                      "on the device"));
  }
  g_assert_cmpuint (e.loss->len, >, 2);
  g_assert_cmpuint (f.loss->len, ==, e.loss->len);
  for (guint i = 0; i < e.loss->len; i++) {
    g_assert_cmpfloat (g_array_index (f.loss, double, i), ==, g_array_index (e.loss, double, i));
    double ae = g_array_index (e.acc, double, i), af = g_array_index (f.acc, double, i);
    g_assert_true (ae == af || (isnan (ae) && isnan (af)));
  }
  g_assert_cmpfloat (f.test_loss, ==, e.test_loss);
  g_assert_true (f.test_acc == e.test_acc || (isnan (e.test_acc) && isnan (f.test_acc)));
  BpModel *me = bp_trainer_get_model (te), *mf = bp_trainer_get_model (tf);
  BpNamedTensor *se, *sf;
  int n = bp_model_state (me, &se);
  g_assert_cmpint (bp_model_state (mf, &sf), ==, n);
  for (int k = 0; k < n; k++) {
    BpTensor *a = bp_tensor_to (se[k].tensor, BP_DEVICE_CPU);
    BpTensor *b = bp_tensor_to (sf[k].tensor, BP_DEVICE_CPU);
    g_assert_cmpstr (se[k].name, ==, sf[k].name);
    g_assert_cmpint (memcmp (a->data, b->data, sizeof (float) * (size_t) a->numel), ==, 0);
    bp_tensor_unref (a);
    bp_tensor_unref (b);
  }
  free (se);
  free (sf);
  for (int k = 0; k < me->n_layers; k++)
    g_assert_cmpint (mf->layers[k].num_batches_tracked, ==, me->layers[k].num_batches_tracked);
  BpOptimizer *oe = bp_trainer_get_optimizer (te), *of = bp_trainer_get_optimizer (tf);
  g_assert_cmpint (bp_optimizer_n_state (of), ==, bp_optimizer_n_state (oe));
  for (int k = 0; k < bp_optimizer_n_state (oe); k++) {
    BpTensor *a = bp_tensor_to (bp_optimizer_state (oe, k, NULL), BP_DEVICE_CPU);
    BpTensor *b = bp_tensor_to (bp_optimizer_state (of, k, NULL), BP_DEVICE_CPU);
    g_assert_cmpint (memcmp (a->data, b->data, sizeof (float) * (size_t) a->numel), ==, 0);
    bp_tensor_unref (a);
    bp_tensor_unref (b);
  }
  g_assert_cmpint (bp_optimizer_get_step (of), ==, bp_optimizer_get_step (oe));
  bp_trainer_free (te);
  bp_trainer_free (tf);
  g_array_unref (e.loss);
  g_array_unref (e.acc);
  g_array_unref (f.loss);
  g_array_unref (f.acc);
}

/* The configurations the fixed steps must reproduce: dropout and batch norm with Adam and
 * clipping (simple-cnn), SGD with Nesterov momentum on a tabular set, a regression; each
 * with an epoch's last, shorter batch (eager) between fixed ones. */
static void
each_fixed_config (BpDevice device)
{
  BpTrainConfig c = small_config ("simple-cnn");
  c.limit_train = 500; /* 7 batches of 64, one of 52 */
  c.epochs = 2;
  c.clip_norm = 0.5f;
  assert_same_training ("simple-cnn, Adam, clipping", &c, device, 0, NULL);

  c = small_config ("mlp");
  c.dataset = "digits";
  c.model = "digits-mlp";
  c.limit_train = 0;
  c.limit_test = 0;
  c.val_fraction = 0.1;
  c.optim = bp_optim_config_default (BP_OPTIM_SGD);
  c.optim.lr = 0.05f;
  c.optim.momentum = 0.9f;
  c.optim.nesterov = true;
  assert_same_training ("digits-mlp, SGD Nesterov, stopped at step 4", &c, device, 4, NULL);

  c = small_config (NULL);
  c.dataset = "diabetes";
  c.model_json = "{\"format\": \"backprop-lab-model\", \"version\": 2, \"name\": \"lin\", "
                 "\"nodes\": [{\"id\": \"x\", \"type\": \"Input\", \"shape\": [10]}, "
                 "{\"id\": \"fc\", \"type\": \"Linear\", \"inputs\": [\"x\"], "
                 "\"out_features\": 1}, {\"id\": \"output\", \"type\": \"Output\", "
                 "\"inputs\": [\"fc\"]}]}";
  c.limit_train = 0;
  c.limit_test = 0;
  c.epochs = 3;
  c.optim = bp_optim_config_default (BP_OPTIM_ADAMW);
  c.optim.lr = 0.05f;
  assert_same_training ("diabetes regression, AdamW", &c, device, 0, NULL);

  /* a language model on a text file: its batches are copied, not gathered on the device */
  g_autofree char *dir = g_dir_make_tmp ("bp-fixed-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "text.txt", NULL);
  GString *text = g_string_new (NULL);
  for (int k = 0; k < 400; k++)
    g_string_append_printf (text, "line %d: the quick brown fox %s\n", k,
                            k % 3 ? "jumps" : "sleeps");
  g_assert_true (g_file_set_contents (path, text->str, (gssize) text->len, NULL));
  g_string_free (text, TRUE);
  g_autofree char *dataset = g_strconcat ("file:", path, NULL);
  c = bp_train_config_default ();
  c.model = "char-gpt-tiny";
  c.dataset = dataset;
  c.epochs = 2;
  c.batch_size = 8;
  c.context = 32;
  c.steps_per_epoch = 5;
  c.eval_batches = 1;
  c.clip_norm = 1.0f;
  c.seed = 9;
  assert_same_training ("char-gpt-tiny on a text file, stopped at step 3", &c, device, 3, NULL);
  g_unlink (path);
  g_rmdir (dir);

  /* dropout between two recurrent layers draws its masks on the host: no graph, and the
   * fixed steps still equal the eager ones */
  c = small_config (NULL);
  c.limit_train = 200;
  c.model_json = "{\"format\": \"backprop-lab-model\", \"version\": 2, \"name\": \"gru2\", "
                 "\"nodes\": [{\"id\": \"x\", \"type\": \"Input\", \"shape\": [28, 28]}, "
                 "{\"id\": \"gru\", \"type\": \"GRU\", \"inputs\": [\"x\"], \"hidden_size\": 8, "
                 "\"num_layers\": 2, \"dropout\": 0.2}, "
                 "{\"id\": \"last\", \"type\": \"SequencePool\", \"inputs\": [\"gru\"]}, "
                 "{\"id\": \"fc\", \"type\": \"Linear\", \"inputs\": [\"last\"], "
                 "\"out_features\": 10}, {\"id\": \"output\", \"type\": \"Output\", "
                 "\"inputs\": [\"fc\"]}]}";
  assert_same_training ("GRU with dropout between its layers", &c, device, 0,
                        "the recurrent layers' dropout draws its masks on the host");
}

/* On the CPU the fixed steps (what a CUDA graph replays, launched eagerly) equal the eager
 * steps bit for bit. */
static void
test_fixed_steps (void)
{
  each_fixed_config (BP_DEVICE_CPU);
}

/* On a GPU the CUDA graph's replays equal eager steps bit for bit (the same kernels with the
 * same arguments; dropout masks drawn in the same order). */
static void
test_cuda_graph (void)
{
  if (!have_cuda ())
    return;
  each_fixed_config (BP_DEVICE_CUDA);
  /* simple-cnn is captured, with its one dropout mask */
  BpTrainConfig c = small_config ("simple-cnn");
  c.device = BP_DEVICE_CUDA;
  BpTrainer *t = bp_test_new_trainer (&c);
  g_autoptr (GError) error = NULL;
  g_assert_true (bp_trainer_run (t, NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (bp_trainer_get_step_note (t), "CUDA graph: "));
  g_assert_nonnull (strstr (bp_trainer_get_step_note (t), "1 dropout mask per replay"));
  bp_trainer_free (t);
}

/* Without a usable GPU a CUDA trainer is refused with bp_cuda_init's reason (no fallback: the
 * CLI's --device auto chooses the CPU before it gets here). */
static void
test_cuda_refused (void)
{
  char why[256] = "";
  if (bp_cuda_init (why, sizeof why) == BP_OK) {
    g_test_skip ("a CUDA device is usable here: nothing to refuse");
    return;
  }
  BpTrainConfig c = small_config ("mlp");
  c.device = BP_DEVICE_CUDA;
  g_autoptr (GError) error = NULL;
  BpTrainer *t = bp_trainer_new (&c, &error);
  if (!t && g_error_matches (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_DATA)) {
    g_test_skip ("Fashion-MNIST (dataset-fashion-mnist) is not installed");
    return;
  }
  g_assert_null (t);
  g_assert_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_ENGINE);
  g_test_message ("%s", error->message);
  g_assert_true (g_str_has_prefix (error->message, "device cuda: "));
  g_assert_nonnull (strstr (error->message, why));
  g_assert_cmpuint (strlen (why), >, 0);
}

typedef struct {
  int stop_at_step;   /* return FALSE at this step of epoch 1 (0: never) */
  gboolean stop_last; /* return FALSE at the last EPOCH event */
  gint64 stopped_us, done_us;
  int n_done;
  double test_loss, test_accuracy, last_accuracy;
} StopData;

static gboolean
stop_event (const BpTrainEvent *ev, gpointer user)
{
  StopData *d = user;
  gint64 now = g_get_monotonic_time ();
  if (ev->kind == BP_TRAIN_EVENT_STEP) {
    d->last_accuracy = ev->accuracy;
    g_assert_cmpfloat (ev->accuracy, >=, 0.0);
    g_assert_cmpfloat (ev->accuracy, <=, 1.0);
    if (ev->epoch == 1 && ev->step == d->stop_at_step) {
      d->stopped_us = now;
      return FALSE;
    }
  }
  if (ev->kind == BP_TRAIN_EVENT_EPOCH && d->stop_last && ev->epoch == ev->epochs)
    return FALSE;
  if (ev->kind == BP_TRAIN_EVENT_DONE) {
    d->done_us = now;
    d->n_done++;
    d->test_loss = ev->test_loss;
    d->test_accuracy = ev->test_accuracy;
  }
  return TRUE;
}

static void
test_stop_skips_test (void)
{
  BpTrainConfig c = small_config ("mlp");
  c.limit_test = 0; /* the whole test set: 10000 examples */
  c.epochs = 2;
  BpTrainer *t = bp_test_new_trainer (&c);
  if (!t)
    return;
  StopData d = {.stop_at_step = 3};
  g_autoptr (GError) error = NULL;
  g_assert_true (bp_trainer_run (t, stop_event, &d, &error));
  g_assert_no_error (error);
  g_assert_cmpint (d.n_done, ==, 1);
  g_assert_true (isnan (d.test_loss));
  g_assert_true (isnan (d.test_accuracy));
  g_assert_cmpint (bp_trainer_get_epoch_step (t), ==, 3);
  g_assert_cmpint (bp_trainer_get_epochs_done (t), ==, 0);
  /* from Stop to DONE took less than a test pass takes */
  gint64 t0 = g_get_monotonic_time ();
  double loss, acc;
  g_assert_true (bp_trainer_evaluate_test (t, &loss, &acc, &error));
  gint64 eval_us = g_get_monotonic_time () - t0;
  g_assert_true (isfinite (loss) && acc > 0.0);
  g_test_message ("stop to done %" G_GINT64_FORMAT " us, a test pass %" G_GINT64_FORMAT " us",
                  d.done_us - d.stopped_us, eval_us);
  g_assert_cmpint (d.done_us - d.stopped_us, <, eval_us);

  /* continuing it finishes the run, and then the test set is evaluated */
  StopData e = {0};
  g_assert_true (bp_trainer_run (t, stop_event, &e, &error));
  g_assert_cmpint (e.n_done, ==, 1);
  g_assert_cmpint (bp_trainer_get_epochs_done (t), ==, 2);
  g_assert_true (isfinite (e.test_loss) && e.test_accuracy > 0.0);
  bp_trainer_free (t);
}

/* A stop at the very last event ends a finished run: its test metrics are computed. */
static void
test_stop_after_last_epoch (void)
{
  BpTrainConfig c = small_config ("mlp");
  BpTrainer *t = bp_test_new_trainer (&c);
  if (!t)
    return;
  StopData d = {.stop_last = TRUE};
  g_autoptr (GError) error = NULL;
  g_assert_true (bp_trainer_run (t, stop_event, &d, &error));
  g_assert_cmpint (d.n_done, ==, 1);
  g_assert_true (isfinite (d.test_loss));
  g_assert_cmpfloat (d.test_accuracy, >, 0.0);
  bp_trainer_free (t);
}

typedef struct {
  float new_lr;
  GArray *lrs; /* per epoch: the lr of its last step */
  BpTrainer *trainer;
  const char *checkpoint; /* saved at the end of epoch 1 when not NULL */
} LrData;

static gboolean
lr_event (const BpTrainEvent *ev, gpointer user)
{
  LrData *d = user;
  if (ev->kind == BP_TRAIN_EVENT_STEP && ev->epoch == 1 && ev->step == 1 && d->new_lr > 0.0f)
    bp_trainer_set_lr (d->trainer, d->new_lr);
  if (ev->kind == BP_TRAIN_EVENT_STEP && ev->step == ev->steps_per_epoch)
    g_array_append_val (d->lrs, ev->lr);
  if (ev->kind == BP_TRAIN_EVENT_EPOCH && ev->epoch == 1 && d->checkpoint) {
    g_autoptr (GError) error = NULL;
    g_assert_true (bp_trainer_save_checkpoint (d->trainer, d->checkpoint, NULL, &error));
  }
  return TRUE;
}

/* The lr of the last step of each of 3 epochs, the lr changed in epoch 1's first step. */
static GArray *
lrs_with_change (BpSchedKind kind, float new_lr, const char *checkpoint)
{
  BpTrainConfig c = small_config ("mlp");
  c.limit_train = 128;
  c.limit_test = 50;
  c.epochs = 3;
  c.optim.lr = 1e-3f;
  c.sched = bp_sched_config_default (kind);
  c.sched.step_size = 1;
  c.sched.gamma = 0.5f;
  BpTrainer *t = bp_test_new_trainer (&c);
  if (!t)
    return NULL;
  LrData d = {new_lr, g_array_new (FALSE, FALSE, sizeof (double)), t, checkpoint};
  g_autoptr (GError) error = NULL;
  g_assert_true (bp_trainer_run (t, lr_event, &d, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (d.lrs->len, ==, 3);
  bp_trainer_free (t);
  return d.lrs;
}

static void
test_set_lr_constant (void)
{
  GArray *lrs = lrs_with_change (BP_SCHED_CONSTANT, 4e-3f, NULL);
  if (!lrs)
    return;
  for (guint e = 0; e < 3; e++)
    g_assert_cmpfloat (g_array_index (lrs, double, e), ==, (double) 4e-3f);
  g_array_unref (lrs);
}

static void
test_set_lr_step (void)
{
  g_autofree char *dir = g_dir_make_tmp ("bp-train-device-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "e1.safetensors", NULL);
  GArray *plain = lrs_with_change (BP_SCHED_STEP, 0.0f, NULL);
  if (!plain) {
    g_rmdir (dir);
    return;
  }
  GArray *lrs = lrs_with_change (BP_SCHED_STEP, 4e-3f, path);
  double want[] = {4e-3, 2e-3, 1e-3}, plain_want[] = {1e-3, 5e-4, 2.5e-4};
  for (guint e = 0; e < 3; e++) {
    g_assert_cmpfloat (fabs (g_array_index (lrs, double, e) - want[e]), <=, 1e-6 * want[e]);
    g_assert_cmpfloat (fabs (g_array_index (plain, double, e) - plain_want[e]), <=,
                       1e-6 * plain_want[e]);
  }

  /* a trainer resumed from epoch 1's checkpoint keeps the change */
  BpTrainConfig c = small_config ("mlp");
  c.limit_train = 128;
  c.limit_test = 50;
  c.epochs = 3;
  c.optim.lr = 1e-3f;
  c.sched = bp_sched_config_default (BP_SCHED_STEP);
  c.sched.step_size = 1;
  c.sched.gamma = 0.5f;
  BpTrainer *t = bp_test_new_trainer (&c);
  g_autoptr (GError) error = NULL;
  g_assert_true (bp_trainer_load_checkpoint (t, path, &error));
  g_assert_no_error (error);
  LrData d = {0.0f, g_array_new (FALSE, FALSE, sizeof (double)), t, NULL};
  g_assert_true (bp_trainer_run (t, lr_event, &d, &error));
  g_assert_cmpuint (d.lrs->len, ==, 2);
  for (guint e = 0; e < 2; e++)
    g_assert_cmpfloat (g_array_index (d.lrs, double, e), ==, g_array_index (lrs, double, e + 1));
  g_array_unref (d.lrs);
  bp_trainer_free (t);
  g_array_unref (lrs);
  g_array_unref (plain);
  g_unlink (path);
  g_rmdir (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  bp_set_num_threads (2);
  g_test_add_func ("/train-device/cuda-parity", test_cuda_parity);
  g_test_add_func ("/train-device/cuda-checkpoint-on-cpu", test_cuda_checkpoint_on_cpu);
  g_test_add_func ("/train-device/cuda-refused", test_cuda_refused);
  g_test_add_func ("/train-device/fixed-steps", test_fixed_steps);
  g_test_add_func ("/train-device/cuda-graph", test_cuda_graph);
  g_test_add_func ("/train-device/stop-skips-test", test_stop_skips_test);
  g_test_add_func ("/train-device/stop-after-last-epoch", test_stop_after_last_epoch);
  g_test_add_func ("/train-device/set-lr-constant", test_set_lr_constant);
  g_test_add_func ("/train-device/set-lr-step", test_set_lr_step);
  int rc = g_test_run ();
  if (bp_cuda_available ())
    bp_cuda_shutdown ();
  return rc;
}
