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
  g_test_add_func ("/train-device/stop-skips-test", test_stop_skips_test);
  g_test_add_func ("/train-device/stop-after-last-epoch", test_stop_after_last_epoch);
  g_test_add_func ("/train-device/set-lr-constant", test_set_lr_constant);
  g_test_add_func ("/train-device/set-lr-step", test_set_lr_step);
  int rc = g_test_run ();
  if (bp_cuda_available ())
    bp_cuda_shutdown ();
  return rc;
}
