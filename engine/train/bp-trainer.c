/* bp-trainer.c: the training loop over a data set with validation, test evaluation and events. */
#include "bp-trainer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bp-dataset.h"
#include "bp-loader.h"
#include "bp-ops-loss.h"
#include "bp-rng.h"
#include "bp-spec.h"

G_DEFINE_QUARK (bp-train-error-quark, bp_train_error)

struct BpTrainer {
  BpTrainConfig config;
  BpModel *model;
  BpTensor **params;
  int n_params;
  BpOptimizer *optim;
  BpScheduler *sched;
  BpDataset *train_set, *test_set;
  BpIndices *train_idx, *val_idx;
  BpLoader *train_loader;
  int64_t *confusion; /* n_classes^2, filled by the validation pass */
};

BpTrainConfig
bp_train_config_default (void)
{
  BpTrainConfig c = {
    .model = "simple-cnn",
    .dataset = "fashion-mnist",
    .epochs = 10,
    .batch_size = 64,
    .optim = bp_optim_config_default (BP_OPTIM_ADAM),
    .sched = bp_sched_config_default (BP_SCHED_CONSTANT),
    .seed = 1,
    .device = BP_DEVICE_CPU,
    .val_fraction = 0.1,
    .eval_batch_size = 500,
  };
  return c;
}

gboolean
bp_train_config_check (const BpTrainConfig *c, GError **error)
{
#define BAD(...)                                                                   \
  do {                                                                             \
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_INVALID, __VA_ARGS__);      \
    return FALSE;                                                                  \
  } while (0)
  if (c->epochs < 1 || c->epochs > 100000)
    BAD ("--epochs must be between 1 and 100000, not %d", c->epochs);
  if (c->batch_size < 1 || c->batch_size > 1 << 20)
    BAD ("--batch-size must be between 1 and 1048576, not %" G_GINT64_FORMAT, c->batch_size);
  if (!(c->optim.lr > 0.0f) || !isfinite (c->optim.lr))
    BAD ("--lr must be a positive number, not %g", (double) c->optim.lr);
  if (!(c->optim.weight_decay >= 0.0f))
    BAD ("--weight-decay must not be negative");
  if (!(c->optim.momentum >= 0.0f && c->optim.momentum < 1.0f))
    BAD ("--momentum must be in [0, 1)");
  if (!(c->optim.l1 >= 0.0f))
    BAD ("--l1 must not be negative");
  if (!(c->clip_norm >= 0.0f))
    BAD ("--clip-norm must not be negative");
  if (!(c->label_smoothing >= 0.0f && c->label_smoothing < 1.0f))
    BAD ("--label-smoothing must be in [0, 1)");
  if (!(c->val_fraction >= 0.0 && c->val_fraction < 1.0))
    BAD ("--val-fraction must be in [0, 1)");
  if (c->limit_train < 0 || c->limit_test < 0)
    BAD ("--limit-train and --limit-test must not be negative");
  return TRUE;
#undef BAD
}

static BpModel *
build_model (const BpTrainConfig *c, GError **error)
{
  const char *json = c->model_json;
  if (!json) {
    const BpPreset *p = bp_preset_find (c->model);
    if (!p) {
      g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_MODEL,
                   "unknown model \"%s\" (see `backprop models`)", c->model);
      return NULL;
    }
    json = p->json;
  }
  g_autoptr (GError) local = NULL;
  BpModel *m = bp_spec_build (json, &local);
  if (!m)
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_MODEL, "the model cannot be built: %s",
                 local->message);
  return m;
}

BpTrainer *
bp_trainer_new (const BpTrainConfig *config, GError **error)
{
  if (!bp_train_config_check (config, error))
    return NULL;
  g_autoptr (GError) local = NULL;
  BpTrainer *t = g_new0 (BpTrainer, 1);
  t->config = *config;
  if (t->config.eval_batch_size < 1)
    t->config.eval_batch_size = 500;
  bp_rng_seed (config->seed);

  BpDatasetOptions opts = BP_DATASET_OPTIONS_INIT;
  opts.limit = config->limit_train;
  t->train_set = bp_dataset_load_full (config->dataset, "train", &opts, &local);
  if (t->train_set) {
    opts.limit = config->limit_test;
    t->test_set = bp_dataset_load_full (config->dataset, "test", &opts, &local);
  }
  if (!t->test_set) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_DATA, "%s", local->message);
    bp_trainer_free (t);
    return NULL;
  }
  int64_t n_val = (int64_t) (config->val_fraction * (double) t->train_set->n);
  if (!bp_dataset_split (t->train_set, n_val, config->seed, &t->train_idx, &t->val_idx, &local)) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_DATA, "%s", local->message);
    bp_trainer_free (t);
    return NULL;
  }

  t->model = build_model (config, error);
  if (!t->model) {
    bp_trainer_free (t);
    return NULL;
  }
  if (t->model->in_ndim != t->train_set->example_ndim ||
      memcmp (t->model->in_shape, t->train_set->example_shape,
              sizeof (int64_t) * (size_t) t->model->in_ndim) != 0) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_MODEL,
                 "model %s does not take the examples of %s", t->model->name, config->dataset);
    bp_trainer_free (t);
    return NULL;
  }
  t->confusion = g_new0 (int64_t, (gsize) t->train_set->n_classes * (gsize) t->train_set->n_classes);
  t->n_params = bp_model_parameters (t->model, &t->params);
  t->optim = bp_optimizer_new (&config->optim, t->n_params, t->params);
  t->sched = bp_scheduler_new (&config->sched, t->optim);
  if (!t->optim || !t->sched) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_INVALID, "%s", bp_last_error ());
    bp_trainer_free (t);
    return NULL;
  }

  BpLoaderOptions lo = BP_LOADER_OPTIONS_INIT;
  lo.batch_size = config->batch_size;
  lo.shuffle = TRUE;
  lo.seed = config->seed;
  t->train_loader = bp_loader_new (t->train_set, t->train_idx, &lo, &local);
  if (!t->train_loader) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_DATA, "%s", local->message);
    bp_trainer_free (t);
    return NULL;
  }
  return t;
}

void
bp_trainer_free (BpTrainer *t)
{
  if (!t)
    return;
  if (t->train_loader)
    bp_loader_free (t->train_loader);
  if (t->sched)
    bp_scheduler_free (t->sched);
  if (t->optim)
    bp_optimizer_free (t->optim);
  free (t->params);
  g_free (t->confusion);
  bp_model_free (t->model);
  if (t->train_idx)
    bp_indices_free (t->train_idx);
  if (t->val_idx)
    bp_indices_free (t->val_idx);
  if (t->train_set)
    bp_dataset_unref (t->train_set);
  if (t->test_set)
    bp_dataset_unref (t->test_set);
  g_free (t);
}

BpModel *
bp_trainer_get_model (BpTrainer *t)
{
  return t->model;
}

/* Mean loss and accuracy over a subset, in eval mode without gradients. */
/* Adds each row's (true class, arg-max class) to an n x n confusion matrix. */
static void
add_confusion (int64_t *confusion, int n, const BpTensor *logits, const BpTensor *y)
{
  BpTensor *host = logits->device == BP_DEVICE_CPU ? NULL : bp_tensor_to (logits, BP_DEVICE_CPU);
  BpTensor *yh = y->device == BP_DEVICE_CPU ? NULL : bp_tensor_to (y, BP_DEVICE_CPU);
  const float *l = host ? host->data : logits->data, *t = yh ? yh->data : y->data;
  int64_t rows = y->numel, c = logits->shape[logits->ndim - 1];
  for (int64_t r = 0; r < rows; r++) {
    int64_t best = 0;
    for (int64_t j = 1; j < c; j++)
      if (l[r * c + j] > l[r * c + best])
        best = j;
    int64_t truth = (int64_t) t[r];
    if (truth >= 0 && truth < n && best < n)
      confusion[truth * n + best]++;
  }
  bp_tensor_unref (host);
  bp_tensor_unref (yh);
}

static gboolean
evaluate (BpTrainer *t, BpDataset *ds, const BpIndices *subset, double *loss, double *accuracy,
          int64_t *confusion, GError **error)
{
  *loss = *accuracy = NAN;
  if (subset && subset->n == 0)
    return TRUE;
  BpLoaderOptions lo = BP_LOADER_OPTIONS_INIT;
  lo.batch_size = t->config.eval_batch_size;
  g_autoptr (GError) local = NULL;
  BpLoader *loader = bp_loader_new (ds, subset, &lo, &local);
  if (!loader) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_DATA, "%s", local->message);
    return FALSE;
  }
  bool was = bp_set_grad_enabled (false);
  bp_model_set_training (t->model, false);
  double loss_sum = 0.0;
  int64_t correct = 0, seen = 0;
  BpTensor *x, *y;
  gboolean ok = TRUE;
  while (bp_loader_next (loader, &x, &y)) {
    BpTensor *logits = bp_model_forward (t->model, x);
    BpTensor *l = logits ? bp_cross_entropy (logits, y, 0.0f) : NULL;
    if (!l) {
      g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_ENGINE, "evaluation failed: %s",
                   bp_last_error ());
      bp_tensor_unref (logits);
      ok = FALSE;
      break;
    }
    loss_sum += (double) l->data[0] * (double) y->numel;
    correct += bp_count_correct (logits, y);
    if (confusion)
      add_confusion (confusion, ds->n_classes, logits, y);
    seen += y->numel;
    bp_tensor_unref (l);
    bp_tensor_unref (logits);
  }
  bp_model_set_training (t->model, true);
  bp_set_grad_enabled (was);
  bp_loader_free (loader);
  if (ok && seen > 0) {
    *loss = loss_sum / (double) seen;
    *accuracy = (double) correct / (double) seen;
  }
  return ok;
}

gboolean
bp_trainer_evaluate_test (BpTrainer *t, double *loss, double *accuracy, GError **error)
{
  return evaluate (t, t->test_set, NULL, loss, accuracy, NULL, error);
}

void
bp_trainer_set_lr (BpTrainer *t, float lr)
{
  bp_optimizer_set_lr (t->optim, lr);
}

BpOptimizer *
bp_trainer_get_optimizer (BpTrainer *t)
{
  return t->optim;
}

gboolean
bp_trainer_run (BpTrainer *t, BpTrainCallback callback, gpointer user_data, GError **error)
{
  const BpTrainConfig *c = &t->config;
  BpTrainEvent ev = {
    .epochs = c->epochs,
    .steps_per_epoch = bp_loader_n_batches (t->train_loader),
    .n_train = t->train_idx->n,
    .n_val = t->val_idx->n,
    .n_test = t->test_set->n,
    .n_params = bp_model_num_parameters (t->model),
    .lr = bp_optimizer_get_lr (t->optim),
  };
  gboolean go_on = TRUE;
  ev.kind = BP_TRAIN_EVENT_START;
  if (callback)
    go_on = callback (&ev, user_data);
  gint64 t_start = g_get_monotonic_time ();

  bp_model_set_training (t->model, true);
  for (int epoch = 1; go_on && epoch <= c->epochs; epoch++) {
    gint64 t_epoch = g_get_monotonic_time ();
    double loss_sum = 0.0;
    int64_t correct = 0, seen = 0, step = 0;
    BpTensor *x, *y;
    ev.epoch = epoch;
    while (go_on && bp_loader_next (t->train_loader, &x, &y)) {
      bp_optimizer_zero_grad (t->optim);
      BpTensor *logits = bp_model_forward (t->model, x);
      BpTensor *loss = logits ? bp_cross_entropy (logits, y, c->label_smoothing) : NULL;
      if (!loss || bp_backward (loss) != BP_OK) {
        g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_ENGINE, "training step failed: %s",
                     bp_last_error ());
        bp_tensor_unref (loss);
        bp_tensor_unref (logits);
        bp_tape_clear ();
        return FALSE;
      }
      double l = loss->data[0];
      if (!isfinite (l)) {
        g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_NUMERIC,
                     "the loss became %s at epoch %d, step %" G_GINT64_FORMAT
                     ": lower the learning rate (now %g) or enable gradient clipping",
                     isnan (l) ? "NaN" : "infinite", epoch, step + 1,
                     (double) bp_optimizer_get_lr (t->optim));
        bp_tensor_unref (loss);
        bp_tensor_unref (logits);
        bp_tape_clear ();
        return FALSE;
      }
      if (c->clip_norm > 0.0f)
        bp_clip_grad_norm (t->n_params, t->params, c->clip_norm);
      BpStatus s = bp_optimizer_step (t->optim);
      correct += bp_count_correct (logits, y);
      bp_tensor_unref (loss);
      bp_tensor_unref (logits);
      bp_tape_clear ();
      if (s != BP_OK) {
        g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_ENGINE, "optimizer step failed: %s",
                     bp_last_error ());
        return FALSE;
      }
      loss_sum += l * (double) y->numel;
      seen += y->numel;
      step++;
      ev.kind = BP_TRAIN_EVENT_STEP;
      ev.step = step;
      ev.global_step++;
      ev.loss = l;
      ev.lr = bp_optimizer_get_lr (t->optim);
      ev.seconds = (double) (g_get_monotonic_time () - t_start) / 1e6;
      ev.images_per_second =
        (double) seen / fmax (1e-9, (double) (g_get_monotonic_time () - t_epoch) / 1e6);
      if (callback)
        go_on = callback (&ev, user_data);
    }
    if (!go_on)
      break;
    double epoch_seconds = (double) (g_get_monotonic_time () - t_epoch) / 1e6;
    ev.train_loss = seen ? loss_sum / (double) seen : NAN;
    ev.train_accuracy = seen ? (double) correct / (double) seen : NAN;
    int nc = t->train_set->n_classes;
    memset (t->confusion, 0, sizeof (int64_t) * (size_t) (nc * nc));
    if (!evaluate (t, t->train_set, t->val_idx, &ev.val_loss, &ev.val_accuracy, t->confusion,
                   error))
      return FALSE;
    ev.n_classes = nc;
    ev.confusion = t->val_idx->n ? t->confusion : NULL;
    ev.class_names = (const char *const *) t->train_set->class_names;
    ev.kind = BP_TRAIN_EVENT_EPOCH;
    ev.lr = bp_optimizer_get_lr (t->optim);
    ev.seconds = epoch_seconds;
    ev.images_per_second = (double) seen / fmax (1e-9, epoch_seconds);
    bp_scheduler_step (t->sched, isnan (ev.val_loss) ? (float) ev.train_loss : (float) ev.val_loss);
    if (callback)
      go_on = callback (&ev, user_data);
  }

  if (!bp_trainer_evaluate_test (t, &ev.test_loss, &ev.test_accuracy, error))
    return FALSE;
  ev.kind = BP_TRAIN_EVENT_DONE;
  ev.confusion = NULL;
  ev.seconds = (double) (g_get_monotonic_time () - t_start) / 1e6;
  if (callback)
    callback (&ev, user_data);
  return TRUE;
}
