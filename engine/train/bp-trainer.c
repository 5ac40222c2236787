/* bp-trainer.c: the training loop over a data set with validation, test evaluation and events. */
#include "bp-trainer.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bp-backend.h"
#include "bp-dataset.h"
#include "bp-device-step.h"
#include "bp-ops-eltwise.h"
#include "bp-loader.h"
#include "bp-ops-loss.h"
#include "bp-rng.h"
#include "bp-safetensors.h"
#include "bp-spec.h"
#include "bp-text.h"
#include "cuda/bp-cuda.h"

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
  BpTask task;        /* of the data set (a text corpus: classification) */
  char *spec_json;    /* canonical spec of the model */
  /* where training stands: run continues from here */
  int epochs_done;
  int64_t epoch_step, global_step;
  double loss_sum;       /* the epoch in progress: sum of loss * batch size */
  int64_t correct, seen; /* and its correct predictions and examples */
  /* learning rate: the user's lr over the scheduled one (1: never changed, the schedule's lr
   * is used as it is) and the lr the scheduler set last */
  double lr_scale;
  float sched_lr;
  /* a device other than the CPU: the training set resident there, dev_x (N, D) and dev_y
   * (N, 1), batches gathered with bp_embedding; NULL: each batch is uploaded */
  BpTensor *dev_x, *dev_y;
  /* an image model reading rows ((28, 28) from (1, 28, 28) examples): batches are reshaped */
  gboolean reshape_input;
  /* a text corpus (NULL: image data): training windows by global step, validation windows a
   * fixed set (the val loader restarts at step 0) */
  BpTextCorpus *corpus;
  BpTextLoader *text_loader, *val_loader;
  int64_t context, steps_per_epoch, eval_batches;
  /* live attention: the attention nodes, the probe (1, *in_shape) on the CPU and its
   * tokens, the weights (layers x heads x len x len), the step of the last probe */
  int n_attn, attn_heads;
  char **attn_ids;
  BpTensor *probe;
  int64_t probe_len;
  char **probe_tokens;
  float *attn_weights;
  int64_t attn_step;
  /* the decision boundary of a 2-D classification set: the grid's inputs (size^2, *in_shape)
   * on the CPU, its softmax probabilities (size^2 x n_classes), its range, and the training
   * points to draw with their classes */
  int boundary_size;
  BpTensor *boundary_grid;
  float *boundary_probs;
  double boundary_x0, boundary_x1, boundary_y0, boundary_y1;
  int64_t n_points;
  float *points, *point_classes;
  /* steps the way a CUDA graph replays them (see bp_trainer_set_step_mode): the mode, the
   * batch size of the fixed tensors (0: none yet), the steps run at that size, the inputs
   * (resident training set: the batch's indices; else the batch itself), the outputs kept
   * across steps, the graph, and what happened ("" until the first try) */
  BpStepMode step_mode;
  int64_t fixed_batch;
  int64_t fixed_steps;
  BpTensor *fixed_idx, *fixed_x, *fixed_y, *fixed_loss;
  int fixed_y_ndim;
  int64_t fixed_y_shape[BP_MAX_DIMS];
  int64_t fixed_count; /* rows of the loss per batch */
  BpCudaGraph *graph;
  int64_t *batch_deltas; /* per layer: num_batches_tracked added by one step */
  /* batches staged for the fixed tensors: on a GPU by the prefetcher (pinned slots, a copy
   * stream), on the CPU in two host slots; and the epoch's next batch, fetched (and staged)
   * while the current step runs */
  BpCudaPrefetch *prefetch;
  float *slots[2];
  int slot_fill, slot_take;
  BpTensor *ahead_x, *ahead_y;
  gboolean ahead_staged;
  gboolean graph_off;
  char step_note[400];
  /* every training target is a class index (checked once), so the loss need not check; every
   * training input is a valid index of the embeddings that read it, so they need not check */
  gboolean targets_checked;
  gboolean inputs_checked;
  /* what in the last fixed step copied between host and device or waited ("" when nothing) */
  char host_sync[200];
};

#define PROBE_MAX 48
#define BOUNDARY_SIZE 96
#define BOUNDARY_POINTS_MAX 2000
#define TEXT_STEPS_MAX 500
#define EVAL_BATCHES_MAX 20

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
    .precision = BP_PRECISION_FP32,
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
  if (c->context < 0 || c->context > 1 << 20)
    BAD ("--context must be between 0 and 1048576, not %" G_GINT64_FORMAT, c->context);
  if (c->steps_per_epoch < 0 || c->steps_per_epoch > 1 << 30)
    BAD ("--steps-per-epoch must be between 0 and 1073741824, not %" G_GINT64_FORMAT,
         c->steps_per_epoch);
  if (c->eval_batches < 0 || c->eval_batches > 1 << 20)
    BAD ("--eval-batches must be between 0 and 1048576, not %" G_GINT64_FORMAT, c->eval_batches);
  if (c->attention_every < 0)
    BAD ("--attention-every must not be negative");
  if (bp_train_dataset_is_text (c->dataset)) {
    if (c->val_fraction > 0.5)
      BAD ("--val-fraction must be at most 0.5 for a text corpus, not %g", c->val_fraction);
    if (c->limit_train || c->limit_test)
      BAD ("--limit-train and --limit-test are for image data sets: a text corpus run is sized "
           "by --steps-per-epoch");
  } else if (c->context || c->steps_per_epoch || c->eval_batches) {
    BAD ("--context, --steps-per-epoch and --eval-batches are for text corpora (%s), not %s",
         "tang300, song100, chinese, fortunes-zh, fortunes or file:PATH",
         c->dataset ? c->dataset : "(none)");
  }
  return TRUE;
#undef BAD
}

/* A language model's spec for a corpus: its Input takes the corpus's vocabulary and windows
 * of *context characters (0: the Input's own length, which is the longest allowed). */
static char *
text_spec (const char *json, const BpTextCorpus *corpus, int64_t *context, GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autoptr (BpSpec) spec = bp_spec_parse (json, &local);
  if (!spec) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_MODEL, "the model cannot be built: %s",
                 local->message);
    return NULL;
  }
  BpLayerSpec *input = NULL;
  for (int k = 0; k < spec->n_nodes; k++)
    if (spec->nodes[k].kind == BP_LAYER_INPUT)
      input = &spec->nodes[k];
  if (!input || input->vocab_size <= 0 || input->shape.ndim != 1) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_MODEL,
                 "model %s does not read characters (its Input needs a vocab_size and one "
                 "dimension, the context): a text corpus needs a language model such as "
                 "char-gpt-tiny", spec->name);
    return NULL;
  }
  int64_t longest = input->shape.d[0];
  if (*context == 0)
    *context = longest;
  if (*context > longest) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_INVALID,
                 "--context %" G_GINT64_FORMAT " is longer than model %s's context of %"
                 G_GINT64_FORMAT " characters", *context, spec->name, longest);
    return NULL;
  }
  input->shape.d[0] = *context;
  if (!bp_spec_set_vocab_size (spec, bp_vocab_size (corpus->vocab), &local)) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_MODEL, "model %s: %s", spec->name,
                 local->message);
    return NULL;
  }
  return bp_spec_to_json (spec);
}

/* The model of the config; for a corpus (not NULL) with its vocabulary and *context. */
static BpModel *
build_model (const BpTrainConfig *c, const BpTextCorpus *corpus, int64_t *context,
             char **spec_json, GError **error)
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
  g_autofree char *text_json = NULL;
  if (corpus) {
    text_json = text_spec (json, corpus, context, error);
    if (!text_json)
      return NULL;
    json = text_json;
  }
  g_autoptr (GError) local = NULL;
  BpModel *m = bp_spec_build (json, &local);
  if (!m) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_MODEL, "the model cannot be built: %s",
                 local->message);
    return NULL;
  }
  if (corpus && (m->out_ndim != 2 || m->out_shape[0] != *context ||
                 m->out_shape[1] != bp_vocab_size (corpus->vocab))) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_MODEL,
                 "model %s does not predict the next character at every position (its output "
                 "needs the shape [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT "]: context, "
                 "vocabulary)", m->name, *context, bp_vocab_size (corpus->vocab));
    bp_model_free (m);
    return NULL;
  }
  *spec_json = bp_spec_canonical (json, NULL);
  if (!*spec_json)
    *spec_json = g_strdup (json);
  return m;
}

/* The Chinese corpora of one fortune file each, which "+" may join ("tang300+song100"). */
static gboolean
is_joinable (const char *name)
{
  return !strcmp (name, "tang300") || !strcmp (name, "song100") || !strcmp (name, "chinese");
}

gboolean
bp_train_dataset_is_text (const char *dataset)
{
  if (!dataset)
    return FALSE;
  if (g_str_has_prefix (dataset, "file:"))
    return TRUE;
  if (strchr (dataset, '+'))
    return TRUE; /* load_corpus says which joins it refuses */
  for (const char *const *n = bp_text_corpus_names (); *n; n++)
    if (strcmp (*n, dataset) == 0)
      return TRUE;
  return FALSE;
}

/* "tang300+song100": the files' entries as one corpus, in Traditional characters. */
static BpTextCorpus *
load_joined (const char *dataset, BpTextOptions *o, GError **error)
{
  g_auto (GStrv) parts = g_strsplit (dataset, "+", -1);
  GPtrArray *paths = g_ptr_array_new_with_free_func (g_free);
  for (int k = 0; parts[k]; k++) {
    if (!is_joinable (parts[k])) {
      g_set_error (error, BP_TEXT_ERROR, BP_TEXT_ERROR_INVALID,
                   "cannot join \"%s\" in --dataset %s: \"+\" joins tang300, song100 and "
                   "chinese", parts[k], dataset);
      g_ptr_array_unref (paths);
      return NULL;
    }
    char *path = g_build_filename (bp_text_fortunes_dir (), parts[k], NULL);
    if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
      g_set_error (error, BP_TEXT_ERROR, BP_TEXT_ERROR_NOT_FOUND,
                   "%s not found: install the Debian package fortunes-zh", path);
      g_free (path);
      g_ptr_array_unref (paths);
      return NULL;
    }
    g_ptr_array_add (paths, path);
  }
  g_ptr_array_add (paths, NULL);
  o->traditional = 1;
  BpTextCorpus *c = bp_text_corpus_from_files (dataset, (const char *const *) paths->pdata, o,
                                               error);
  g_ptr_array_unref (paths);
  return c;
}

/* The corpus of a text dataset name, split by the config's val_fraction and seed. */
static BpTextCorpus *
load_corpus (const BpTrainConfig *c, GError **error)
{
  BpTextOptions o = BP_TEXT_OPTIONS_INIT;
  o.val_fraction = c->val_fraction;
  o.seed = c->seed;
  g_autoptr (GError) local = NULL;
  BpTextCorpus *corpus;
  if (g_str_has_prefix (c->dataset, "file:")) {
    const char *path = c->dataset + 5;
    if (!*path) {
      g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_DATA,
                   "--dataset file:PATH needs the path of a UTF-8 text file");
      return NULL;
    }
    const char *paths[] = {path, NULL};
    corpus = bp_text_corpus_from_files (c->dataset, paths, &o, &local);
  } else if (strchr (c->dataset, '+')) {
    corpus = load_joined (c->dataset, &o, &local);
  } else {
    corpus = bp_text_corpus_load (c->dataset, &o, &local);
  }
  if (!corpus)
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_DATA, "%s", local->message);
  return corpus;
}

/* ---- devices ---- */

/* Sets an engine error "<what>: <the engine's last error>"; returns FALSE. */
static gboolean
engine_error (GError **error, const char *what)
{
  g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_ENGINE, "%s: %s", what, bp_last_error ());
  return FALSE;
}

/* The training set stays on the device when it takes at most this much. */
#define RESIDENT_MAX_BYTES ((size_t) 2 << 30)

/* Starts the device, moves the model state there and, when it fits, the training set. */
static gboolean
to_device (BpTrainer *t, GError **error)
{
  BpDevice dev = t->config.device;
  if (dev != BP_DEVICE_CUDA) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_INVALID, "unknown device %d", (int) dev);
    return FALSE;
  }
  char why[256] = "";
  if (bp_cuda_init (why, sizeof why) != BP_OK) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_ENGINE, "device cuda: %s",
                 why[0] ? why : bp_last_error ());
    return FALSE;
  }
  BpNamedTensor *state;
  int n = bp_model_state (t->model, &state);
  gboolean ok = TRUE;
  for (int k = 0; k < n && ok; k++)
    if (bp_tensor_move_to (state[k].tensor, dev) != BP_OK) {
      g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_ENGINE,
                   "cannot move \"%s\" to the GPU: %s", state[k].name, bp_last_error ());
      ok = FALSE;
    }
  free (state);
  if (!ok)
    return FALSE;
  /* the training set as (N, D) and (N, 1); float indices are exact up to 2^24 (a corpus's
   * batches are uploaded one by one) */
  BpDataset *ds = t->train_set;
  int64_t d = ds ? bp_shape_numel (ds->example_ndim, ds->example_shape) : 0;
  if (ds && ds->n > 0 && ds->n <= (1 << 24) &&
      (size_t) ds->n * (size_t) (d + 1) * sizeof (float) <= RESIDENT_MAX_BYTES) {
    BpTensor hx = {.ndim = 2, .shape = {ds->n, d}, .numel = ds->n * d, .data = ds->x};
    BpTensor hy = {.ndim = 2, .shape = {ds->n, 1}, .numel = ds->n, .data = ds->y};
    t->dev_x = bp_tensor_to (&hx, dev);
    t->dev_y = t->dev_x ? bp_tensor_to (&hy, dev) : NULL;
    if (!t->dev_y) {
      /* it does not fit after all: batches are uploaded one by one */
      g_clear_pointer (&t->dev_x, bp_tensor_unref);
      bp_clear_error ();
    }
  }
  return TRUE;
}

/* The shape of a batch of b examples as the model reads them. */
static int
model_batch_shape (BpTrainer *t, int64_t b, int64_t *shape)
{
  shape[0] = b;
  for (int d = 0; d < t->model->in_ndim; d++)
    shape[d + 1] = t->model->in_shape[d];
  return t->model->in_ndim + 1;
}

/* The data set indices of the loader's last batch, as floats into dst (one per example). */
static void
indices_as_floats (const BpLoader *loader, float *dst)
{
  int64_t b;
  const int64_t *idx = bp_loader_batch_indices (loader, &b);
  for (int64_t i = 0; i < b; i++)
    dst[i] = (float) idx[i];
}

/* The batch at the indices idx (B) of the training set resident on the device: *dx as the
 * model reads it, *dy shaped (y_ndim, y_shape); new tensors, or NULL. The loader's indices are
 * valid, so they are not checked (the check would wait for the device). */
static void
gather_batch (BpTrainer *t, BpTensor *idx, int y_ndim, const int64_t *y_shape, BpTensor **dx,
              BpTensor **dy)
{
  int64_t shape[BP_MAX_DIMS];
  int ndim = model_batch_shape (t, idx->shape[0], shape);
  BpTensor *gx = bp_gather_rows (t->dev_x, idx);              /* (B, D) */
  BpTensor *gy = gx ? bp_gather_rows (t->dev_y, idx) : NULL; /* (B, 1) */
  *dx = gy ? bp_reshape (gx, ndim, shape) : NULL;
  *dy = *dx ? bp_reshape (gy, y_ndim, y_shape) : NULL;
  bp_tensor_unref (gx);
  bp_tensor_unref (gy);
}

/* The batch (x, y) of `loader` on the trainer's device, as the model reads it: new tensors in
 * *dx and *dy (the loader's own on the CPU when nothing is copied or reshaped). */
static gboolean
batch_to_device (BpTrainer *t, BpLoader *loader, BpDataset *ds, BpTensor *x, BpTensor *y,
                 BpTensor **dx, BpTensor **dy)
{
  BpDevice dev = t->config.device;
  int64_t shape[BP_MAX_DIMS];
  int ndim = model_batch_shape (t, x->shape[0], shape);
  *dx = x;
  *dy = y;
  if (dev == BP_DEVICE_CPU) {
    if (t->reshape_input && !(*dx = bp_reshape (x, ndim, shape)))
      return FALSE;
    return TRUE;
  }
  *dx = *dy = NULL;
  if (ds == t->train_set && t->dev_x) {
    /* gather on the device: only the batch's indices (B floats) travel */
    BpTensor *hi = bp_tensor_new_1d (x->shape[0]);
    if (!hi)
      return FALSE;
    indices_as_floats (loader, hi->data);
    BpTensor *di = bp_tensor_to (hi, dev);
    bp_tensor_unref (hi);
    if (di)
      gather_batch (t, di, y->ndim, y->shape, dx, dy);
    bp_tensor_unref (di);
  } else {
    BpTensor *h = t->reshape_input ? bp_reshape (x, ndim, shape) : bp_tensor_ref (x);
    *dx = h ? bp_tensor_to (h, dev) : NULL;
    *dy = *dx ? bp_tensor_to (y, dev) : NULL;
    bp_tensor_unref (h);
  }
  if (!*dy) {
    g_clear_pointer (dx, bp_tensor_unref);
    return FALSE;
  }
  return TRUE;
}

static void
batch_release (BpTensor *x, BpTensor *y, BpTensor *dx, BpTensor *dy)
{
  if (dx != x)
    bp_tensor_unref (dx);
  if (dy != y)
    bp_tensor_unref (dy);
}

/* The value of a 1-element tensor; from a device this downloads it, which waits for the work
 * queued before it and reports a failure of any of it. */
static gboolean
read_scalar (const BpTensor *s, double *v)
{
  if (s->device == BP_DEVICE_CPU) {
    *v = s->data[0];
    return TRUE;
  }
  BpTensor *h = bp_tensor_to (s, BP_DEVICE_CPU);
  if (!h)
    return FALSE;
  *v = h->data[0];
  bp_tensor_unref (h);
  return TRUE;
}

/* "(1, 8, 8)" */
static const char *
shape_text (int ndim, const int64_t *shape, char *buf, size_t len)
{
  g_autofree char *s = bp_example_shape_string (ndim, shape);
  g_strlcpy (buf, s, len);
  return buf;
}

/* The decision boundary of a 2-D classification set: the range of the training points plus a
 * 10% margin on every side, the grid of cell centres, and at most BOUNDARY_POINTS_MAX training
 * points (evenly spread over the training split) to draw. */
static void
setup_boundary (BpTrainer *t)
{
  const BpDataset *ds = t->train_set;
  const BpIndices *train = t->train_idx;
  if (train->n == 0)
    return;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (int64_t k = 0; k < train->n; k++) {
    const float *p = ds->x + 2 * train->idx[k];
    x0 = fmin (x0, p[0]);
    x1 = fmax (x1, p[0]);
    y0 = fmin (y0, p[1]);
    y1 = fmax (y1, p[1]);
  }
  double mx = x1 > x0 ? 0.1 * (x1 - x0) : 1.0, my = y1 > y0 ? 0.1 * (y1 - y0) : 1.0;
  t->boundary_x0 = x0 - mx;
  t->boundary_x1 = x1 + mx;
  t->boundary_y0 = y0 - my;
  t->boundary_y1 = y1 + my;
  int size = BOUNDARY_SIZE;
  int64_t shape[BP_MAX_DIMS];
  int ndim = model_batch_shape (t, (int64_t) size * size, shape);
  t->boundary_grid = bp_tensor_new (ndim, shape);
  if (!t->boundary_grid) {
    bp_clear_error ();
    return;
  }
  for (int i = 0; i < size; i++)
    for (int j = 0; j < size; j++) {
      float *g = t->boundary_grid->data + 2 * ((int64_t) i * size + j);
      g[0] = (float) (t->boundary_x0 + (j + 0.5) * (t->boundary_x1 - t->boundary_x0) / size);
      g[1] = (float) (t->boundary_y0 + (i + 0.5) * (t->boundary_y1 - t->boundary_y0) / size);
    }
  t->boundary_size = size;
  t->boundary_probs = g_new0 (float, (gsize) size * size * (gsize) ds->n_classes);
  t->n_points = MIN (train->n, BOUNDARY_POINTS_MAX);
  t->points = g_new (float, (gsize) t->n_points * 2);
  t->point_classes = g_new (float, (gsize) t->n_points);
  for (int64_t k = 0; k < t->n_points; k++) {
    int64_t i = train->idx[k * train->n / t->n_points];
    t->points[2 * k] = ds->x[2 * i];
    t->points[2 * k + 1] = ds->x[2 * i + 1];
    t->point_classes[k] = ds->y[i];
  }
}

/* The model's softmax probabilities on the boundary grid (eval mode, no gradients, on the
 * run's device), into t->boundary_probs. */
static gboolean
compute_boundary (BpTrainer *t, GError **error)
{
  bool was = bp_set_grad_enabled (false);
  bp_model_set_training (t->model, false);
  BpDevice dev = t->config.device;
  BpTensor *x = dev == BP_DEVICE_CPU ? bp_tensor_ref (t->boundary_grid)
                                     : bp_tensor_to (t->boundary_grid, dev);
  BpTensor *logits = x ? bp_model_forward (t->model, x) : NULL;
  BpTensor *host = logits && logits->device != BP_DEVICE_CPU
                     ? bp_tensor_to (logits, BP_DEVICE_CPU)
                     : (logits ? bp_tensor_ref (logits) : NULL);
  bp_model_set_training (t->model, true);
  bp_set_grad_enabled (was);
  gboolean ok = host != NULL;
  if (!ok) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_ENGINE,
                 "the decision boundary could not be computed: %s", bp_last_error ());
  } else {
    int64_t rows = (int64_t) t->boundary_size * t->boundary_size;
    int64_t c = t->train_set->n_classes;
    g_assert (host->numel == rows * c);
    for (int64_t r = 0; r < rows; r++) {
      const float *l = host->data + r * c;
      float *p = t->boundary_probs + r * c;
      double top = l[0], sum = 0.0;
      for (int64_t j = 1; j < c; j++)
        top = fmax (top, l[j]);
      for (int64_t j = 0; j < c; j++)
        sum += exp ((double) l[j] - top);
      for (int64_t j = 0; j < c; j++)
        p[j] = (float) (exp ((double) l[j] - top) / sum);
    }
  }
  bp_tensor_unref (host);
  bp_tensor_unref (logits);
  bp_tensor_unref (x);
  return ok;
}

/* Sets or clears the event's decision boundary fields. */
static void
event_boundary (BpTrainer *t, BpTrainEvent *ev, gboolean on)
{
  on = on && t->boundary_probs;
  ev->boundary_size = on ? t->boundary_size : 0;
  ev->boundary_x0 = on ? t->boundary_x0 : 0.0;
  ev->boundary_x1 = on ? t->boundary_x1 : 0.0;
  ev->boundary_y0 = on ? t->boundary_y0 : 0.0;
  ev->boundary_y1 = on ? t->boundary_y1 : 0.0;
  ev->boundary_probs = on ? t->boundary_probs : NULL;
  ev->n_points = on ? t->n_points : 0;
  ev->points = on ? t->points : NULL;
  ev->point_classes = on ? t->point_classes : NULL;
}

/* Text: the corpus, the model for it and the loaders. */
static gboolean
setup_text (BpTrainer *t, GError **error)
{
  const BpTrainConfig *c = &t->config;
  t->corpus = load_corpus (c, error);
  if (!t->corpus)
    return FALSE;
  t->context = c->context;
  t->model = build_model (c, t->corpus, &t->context, &t->spec_json, error);
  if (!t->model)
    return FALSE;
  g_autoptr (GError) local = NULL;
  if (!bp_text_check_model (t->model, t->corpus->vocab, t->context, &local) ||
      !(t->text_loader = bp_text_loader_new (t->corpus, FALSE, c->batch_size, t->context, c->seed,
                                             &local))) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_DATA, "%s", local->message);
    return FALSE;
  }
  /* a validation split shorter than a window: no validation */
  if (t->corpus->n_val > t->context)
    t->val_loader = bp_text_loader_new (t->corpus, TRUE, c->batch_size, t->context, c->seed,
                                        NULL);
  int64_t window = c->batch_size * t->context;
  t->steps_per_epoch = c->steps_per_epoch > 0 ? c->steps_per_epoch
                                              : CLAMP (t->corpus->n_train / window, 1,
                                                       TEXT_STEPS_MAX);
  t->eval_batches = c->eval_batches > 0 ? c->eval_batches
                                        : CLAMP ((2 * t->corpus->n_val + window - 1) / window, 1,
                                                 EVAL_BATCHES_MAX);
  return TRUE;
}

/* Image data: the training and test sets, the validation split and the model. */
static gboolean
setup_images (BpTrainer *t, GError **error)
{
  const BpTrainConfig *c = &t->config;
  g_autoptr (GError) local = NULL;
  BpDatasetOptions opts = BP_DATASET_OPTIONS_INIT;
  opts.limit = c->limit_train;
  t->train_set = bp_dataset_load_full (c->dataset, "train", &opts, &local);
  if (t->train_set) {
    opts.limit = c->limit_test;
    t->test_set = bp_dataset_load_full (c->dataset, "test", &opts, &local);
  }
  if (!t->test_set) {
    if (g_error_matches (local, BP_DATA_ERROR, BP_DATA_ERROR_INVALID) &&
        g_str_has_prefix (local->message, "unknown data set"))
      g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_DATA, "%s; text corpora: tang300, "
                   "song100, chinese, fortunes-zh, fortunes, or file:PATH for a text file",
                   local->message);
    else
      g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_DATA, "%s", local->message);
    return FALSE;
  }
  int64_t n_val = (int64_t) (c->val_fraction * (double) t->train_set->n);
  if (!bp_dataset_split (t->train_set, n_val, c->seed, &t->train_idx, &t->val_idx, &local)) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_DATA, "%s", local->message);
    return FALSE;
  }
  t->model = build_model (c, NULL, NULL, &t->spec_json, error);
  if (!t->model)
    return FALSE;
  const BpDataset *ds = t->train_set;
  const BpModel *m = t->model;
  char want[64], have[64];
  shape_text (ds->example_ndim, ds->example_shape, have, sizeof have);
  if (m->in_ndim != ds->example_ndim ||
      memcmp (m->in_shape, ds->example_shape, sizeof (int64_t) * (size_t) m->in_ndim) != 0) {
    /* a sequence model reading an image's rows: (1, 28, 28) examples as (28, 28) */
    if (bp_model_vocab_size (m) == 0 &&
        bp_shape_numel (m->in_ndim, m->in_shape) == ds->example_numel) {
      t->reshape_input = TRUE;
    } else if (bp_model_vocab_size (m) > 0) {
      g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_MODEL,
                   "model %s does not take the examples of %s: it reads characters, train it "
                   "on a text corpus (tang300, song100, chinese, fortunes-zh, fortunes or "
                   "file:PATH)", m->name, c->dataset);
      return FALSE;
    } else {
      g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_MODEL,
                   "model %s does not take the examples of %s: it reads %s, the examples are "
                   "%s (give a model whose Input has the shape %s)", m->name, c->dataset,
                   shape_text (m->in_ndim, m->in_shape, want, sizeof want), have, have);
      return FALSE;
    }
  }
  t->task = ds->task;
  int64_t out_numel = bp_shape_numel (m->out_ndim, m->out_shape);
  shape_text (m->out_ndim, m->out_shape, want, sizeof want);
  if (t->task == BP_TASK_REGRESSION && out_numel != 1) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_MODEL,
                 "model %s outputs %s per example, but %s is a regression data set: the model "
                 "must output one value per example, shape (1) (e.g. a last Linear with "
                 "out_features 1)", m->name, want, c->dataset);
    return FALSE;
  }
  if (t->task == BP_TASK_CLASSIFICATION && m->out_ndim == 1 && m->out_shape[0] < ds->n_classes) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_MODEL,
                 "model %s outputs %s per example, but %s has %d classes: the model needs %d "
                 "outputs (e.g. a last Linear with out_features %d)", m->name, want, c->dataset,
                 ds->n_classes, ds->n_classes, ds->n_classes);
    return FALSE;
  }
  t->confusion = g_new0 (int64_t, (gsize) MAX (ds->n_classes * ds->n_classes, 1));
  if (t->task == BP_TASK_CLASSIFICATION && ds->example_numel == 2 && m->out_ndim == 1 &&
      m->out_shape[0] == ds->n_classes)
    setup_boundary (t);
  return TRUE;
}

static void setup_attention (BpTrainer *t);

/* Whether each of the n values is an integer in [0, limit): an index. */
static gboolean
all_indices (const float *values, int64_t n, int64_t limit)
{
  for (int64_t i = 0; i < n; i++) {
    float v = values[i];
    if (!(v >= 0.0f && v < (float) limit && v == floorf (v)))
      return FALSE;
  }
  return TRUE;
}

/* Whether every target of a classification set is a class index (a regression's are not
 * class indices and need no check). */
static gboolean
targets_valid (const BpDataset *ds)
{
  return ds->task != BP_TASK_CLASSIFICATION || all_indices (ds->y, ds->n, ds->n_classes);
}

/* Whether every training input is an index that the model's embeddings can look up: each
 * Embedding reads the model's input (layer 0) and has a row for every token of the corpus, or
 * for every value of the data set, which must be an integer. A model without an Embedding
 * passes. */
static gboolean
inputs_valid (const BpTrainer *t)
{
  const BpModel *m = t->model;
  int64_t rows = -1; /* the fewest rows of an Embedding */
  for (int k = 0; k < m->n_layers; k++) {
    const BpLayer *l = &m->layers[k];
    if (l->spec.kind != BP_LAYER_EMBEDDING)
      continue;
    if (l->n_inputs != 1 || l->inputs[0] != 0 || !l->weight)
      return FALSE;
    rows = rows < 0 ? l->weight->shape[0] : MIN (rows, l->weight->shape[0]);
  }
  if (rows < 0)
    return TRUE;
  if (t->corpus)
    return bp_vocab_size (t->corpus->vocab) <= rows;
  const BpDataset *ds = t->train_set;
  return ds && all_indices (ds->x, ds->n * bp_shape_numel (ds->example_ndim, ds->example_shape),
                            rows);
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

  gboolean text = bp_train_dataset_is_text (config->dataset);
  if (!(text ? setup_text (t, error) : setup_images (t, error))) {
    bp_trainer_free (t);
    return NULL;
  }
  /* the model state goes to the device before the optimizer allocates its buffers there */
  if (config->device != BP_DEVICE_CPU && !to_device (t, error)) {
    bp_trainer_free (t);
    return NULL;
  }
  t->n_params = bp_model_parameters (t->model, &t->params);
  t->optim = bp_optimizer_new (&config->optim, t->n_params, t->params);
  t->sched = bp_scheduler_new (&config->sched, t->optim);
  if (!t->optim || !t->sched) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_INVALID, "%s", bp_last_error ());
    bp_trainer_free (t);
    return NULL;
  }
  t->lr_scale = 1.0;
  t->sched_lr = bp_optimizer_get_lr (t->optim);

  if (!text) {
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
    t->steps_per_epoch = bp_loader_n_batches (t->train_loader);
  }
  t->attn_step = -1;
  if (config->attention_every > 0)
    setup_attention (t);
  const char *graph_env = g_getenv ("BP_CUDA_GRAPH");
  t->step_mode = graph_env && g_strcmp0 (graph_env, "0") == 0 ? BP_STEP_EAGER : BP_STEP_GRAPH;
  t->targets_checked = text || targets_valid (t->train_set);
  t->inputs_checked = inputs_valid (t);
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
  bp_cuda_graph_free (t->graph);
  bp_cuda_prefetch_free (t->prefetch);
  g_free (t->slots[0]);
  g_free (t->slots[1]);
  bp_tensor_unref (t->fixed_idx);
  bp_tensor_unref (t->fixed_x);
  bp_tensor_unref (t->fixed_y);
  bp_tensor_unref (t->fixed_loss);
  g_free (t->batch_deltas);
  bp_tensor_unref (t->dev_x);
  bp_tensor_unref (t->dev_y);
  g_free (t->confusion);
  g_free (t->spec_json);
  bp_model_free (t->model);
  if (t->train_idx)
    bp_indices_free (t->train_idx);
  if (t->val_idx)
    bp_indices_free (t->val_idx);
  if (t->train_set)
    bp_dataset_unref (t->train_set);
  if (t->test_set)
    bp_dataset_unref (t->test_set);
  bp_text_loader_free (t->text_loader);
  bp_text_loader_free (t->val_loader);
  bp_text_corpus_free (t->corpus);
  g_strfreev (t->attn_ids);
  g_strfreev (t->probe_tokens);
  bp_tensor_unref (t->probe);
  g_free (t->attn_weights);
  bp_tensor_unref (t->boundary_grid);
  g_free (t->boundary_probs);
  g_free (t->points);
  g_free (t->point_classes);
  g_free (t);
}

BpModel *
bp_trainer_get_model (BpTrainer *t)
{
  return t->model;
}

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

/* A regression's predictions (B, 1) or (B) and targets (B) as two (B) tensors (new
 * references; the reshape of the predictions is on the tape). */
static gboolean
regression_rows (BpTensor *pred, BpTensor *y, BpTensor **rows, BpTensor **targets)
{
  *rows = bp_reshape (pred, 1, (int64_t[]){-1});
  *targets = *rows ? bp_reshape (y, 1, (int64_t[]){-1}) : NULL;
  if (!*targets) {
    g_clear_pointer (rows, bp_tensor_unref);
    return FALSE;
  }
  return TRUE;
}

/* Mean loss and accuracy over a subset (a regression: the mean squared error and *r2, the
 * coefficient of determination 1 - SSE / SST with SST around the subset's own mean; accuracy
 * NaN), in eval mode without gradients. r2 may be NULL. */
static gboolean
evaluate (BpTrainer *t, BpDataset *ds, const BpIndices *subset, double *loss, double *accuracy,
          double *r2, int64_t *confusion, GError **error)
{
  gboolean regression = ds->task == BP_TASK_REGRESSION;
  double r2_dummy;
  if (!r2)
    r2 = &r2_dummy;
  *loss = *accuracy = *r2 = NAN;
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
  double loss_sum = 0.0, y_sum = 0.0, y_sq = 0.0;
  int64_t correct = 0, seen = 0;
  BpTensor *x, *y;
  gboolean ok = TRUE;
  while (bp_loader_next (loader, &x, &y)) {
    BpTensor *dx, *dy;
    if (!batch_to_device (t, loader, ds, x, y, &dx, &dy)) {
      g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_ENGINE, "evaluation failed: %s",
                   bp_last_error ());
      ok = FALSE;
      break;
    }
    BpTensor *logits = bp_model_forward (t->model, dx);
    BpTensor *l = NULL;
    double lv = 0.0;
    int64_t c = -1;
    if (regression) {
      BpTensor *rows = NULL, *targets = NULL;
      if (logits && regression_rows (logits, dy, &rows, &targets))
        l = bp_mse_loss (rows, targets);
      c = l && read_scalar (l, &lv) ? 0 : -1;
      bp_tensor_unref (rows);
      bp_tensor_unref (targets);
      for (int64_t i = 0; i < y->numel; i++) { /* the loader's targets, on the CPU */
        y_sum += y->data[i];
        y_sq += (double) y->data[i] * y->data[i];
      }
    } else {
      l = logits ? bp_cross_entropy (logits, dy, 0.0f) : NULL;
      c = l && read_scalar (l, &lv) ? bp_count_correct (logits, dy) : -1;
    }
    if (c < 0) {
      g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_ENGINE, "evaluation failed: %s",
                   bp_last_error ());
      bp_tensor_unref (l);
      bp_tensor_unref (logits);
      batch_release (x, y, dx, dy);
      ok = FALSE;
      break;
    }
    loss_sum += lv * (double) y->numel;
    correct += c;
    if (confusion && !regression)
      add_confusion (confusion, ds->n_classes, logits, dy);
    seen += y->numel;
    bp_tensor_unref (l);
    bp_tensor_unref (logits);
    batch_release (x, y, dx, dy);
  }
  bp_model_set_training (t->model, true);
  bp_set_grad_enabled (was);
  bp_loader_free (loader);
  if (ok && seen > 0) {
    *loss = loss_sum / (double) seen;
    if (regression) {
      double sst = y_sq - y_sum * y_sum / (double) seen;
      *r2 = sst > 0.0 ? 1.0 - loss_sum / sst : NAN;
    } else {
      *accuracy = (double) correct / (double) seen;
    }
  }
  return ok;
}

/* After the scheduler set the lr (new epoch, restored state): the user's scale on top. */
static void
sched_changed (BpTrainer *t)
{
  t->sched_lr = bp_optimizer_get_lr (t->optim);
  if (t->lr_scale != 1.0)
    bp_optimizer_set_lr (t->optim, (float) ((double) t->sched_lr * t->lr_scale));
}

/* The user's lr holds until the schedule moves on; from then the schedule continues scaled by
 * lr / (the scheduled lr now), e.g. a step schedule then decays from the user's lr. Where the
 * scheduled lr is 0 no scale exists: the lr is set for the rest of this epoch only. */
void
bp_trainer_set_lr (BpTrainer *t, float lr)
{
  if (t->sched_lr > 0.0f)
    t->lr_scale = (double) lr / (double) t->sched_lr;
  bp_optimizer_set_lr (t->optim, lr);
}

BpOptimizer *
bp_trainer_get_optimizer (BpTrainer *t)
{
  return t->optim;
}

/* ---- text ---- */

/* A text batch on the trainer's device (the loader's own tensors on the CPU). */
static gboolean
text_to_device (BpTrainer *t, BpTensor *x, BpTensor *y, BpTensor **dx, BpTensor **dy)
{
  *dx = x;
  *dy = y;
  if (t->config.device == BP_DEVICE_CPU)
    return TRUE;
  *dx = bp_tensor_to (x, t->config.device);
  *dy = *dx ? bp_tensor_to (y, t->config.device) : NULL;
  if (!*dy) {
    g_clear_pointer (dx, bp_tensor_unref);
    return FALSE;
  }
  return TRUE;
}

/* Logits (N, C) and targets (N) for the loss: a language model's (B, T, V) and (B, T) become
 * B * T rows. New references. */
static gboolean
loss_rows (BpTensor *logits, BpTensor *y, BpTensor **rows, BpTensor **targets)
{
  if (logits->ndim == 2 && y->ndim == 1) {
    *rows = bp_tensor_ref (logits);
    *targets = bp_tensor_ref (y);
    return TRUE;
  }
  *rows = bp_reshape (logits, 2, (int64_t[]){-1, logits->shape[logits->ndim - 1]});
  *targets = *rows ? bp_reshape (y, 1, (int64_t[]){-1}) : NULL;
  if (!*targets) {
    g_clear_pointer (rows, bp_tensor_unref);
    return FALSE;
  }
  return TRUE;
}

/* Mean loss and next-character accuracy over the fixed validation windows (eval mode, no
 * gradients); NaN without a validation split. */
static gboolean
evaluate_text (BpTrainer *t, double *loss, double *accuracy, GError **error)
{
  *loss = *accuracy = NAN;
  if (!t->val_loader)
    return TRUE;
  bool was = bp_set_grad_enabled (false);
  bp_model_set_training (t->model, false);
  bp_text_loader_set_step (t->val_loader, 0);
  double loss_sum = 0.0;
  int64_t correct = 0, seen = 0;
  gboolean ok = TRUE;
  for (int64_t b = 0; b < t->eval_batches && ok; b++) {
    BpTensor *x, *y, *dx = NULL, *dy = NULL, *logits = NULL, *rows = NULL, *targets = NULL,
                     *l = NULL;
    double lv = 0.0;
    int64_t c = -1;
    if (bp_text_loader_next (t->val_loader, &x, &y) && text_to_device (t, x, y, &dx, &dy) &&
        (logits = bp_model_forward (t->model, dx)) &&
        loss_rows (logits, dy, &rows, &targets) &&
        (l = bp_cross_entropy (rows, targets, 0.0f)) && read_scalar (l, &lv))
      c = bp_count_correct (rows, targets);
    if (c < 0) {
      g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_ENGINE, "evaluation failed: %s",
                   bp_last_error ());
      ok = FALSE;
    } else {
      loss_sum += lv * (double) targets->numel;
      correct += c;
      seen += targets->numel;
    }
    bp_tensor_unref (l);
    bp_tensor_unref (rows);
    bp_tensor_unref (targets);
    bp_tensor_unref (logits);
    if (dx)
      batch_release (x, y, dx, dy);
  }
  bp_model_set_training (t->model, true);
  bp_set_grad_enabled (was);
  if (ok && seen > 0) {
    *loss = loss_sum / (double) seen;
    *accuracy = (double) correct / (double) seen;
  }
  return ok;
}

gboolean
bp_trainer_evaluate_test (BpTrainer *t, double *loss, double *accuracy, GError **error)
{
  return bp_trainer_evaluate_test_full (t, loss, accuracy, NULL, error);
}

gboolean
bp_trainer_evaluate_test_full (BpTrainer *t, double *loss, double *accuracy, double *r2,
                               GError **error)
{
  if (r2)
    *r2 = NAN;
  BpPrecision was = bp_set_precision (t->config.precision);
  gboolean ok = t->corpus ? evaluate_text (t, loss, accuracy, error)
                          : evaluate (t, t->test_set, NULL, loss, accuracy, r2, NULL, error);
  bp_set_precision (was);
  return ok;
}

BpTask
bp_trainer_get_task (BpTrainer *t)
{
  return t->task;
}

/* ---- live attention ---- */

static gboolean
is_attention (const BpLayer *l)
{
  return l->spec.kind == BP_LAYER_MULTIHEAD_ATTENTION ||
         l->spec.kind == BP_LAYER_TRANSFORMER_ENCODER_LAYER;
}

/* The attention nodes and the probe (its tokens come with the first weights, whose length
 * they need for image models). */
static void
setup_attention (BpTrainer *t)
{
  BpModel *m = t->model;
  GPtrArray *ids = g_ptr_array_new ();
  for (int k = 0; k < m->n_layers; k++)
    if (is_attention (&m->layers[k]))
      g_ptr_array_add (ids, g_strdup (m->layers[k].spec.id));
  t->n_attn = (int) ids->len;
  g_ptr_array_add (ids, NULL);
  t->attn_ids = (char **) g_ptr_array_free (ids, FALSE);
  if (t->n_attn == 0)
    return;
  int64_t shape[BP_MAX_DIMS];
  int ndim = model_batch_shape (t, 1, shape);
  t->probe = bp_tensor_new (ndim, shape);
  if (!t->probe) {
    t->n_attn = 0;
    return;
  }
  if (t->corpus) {
    /* the first context characters (the model's input): the first min (context, 48) rows and
     * columns of their weights are the probe's */
    gboolean val = t->corpus->n_val >= t->context;
    const int64_t *ids_src = val ? t->corpus->val : t->corpus->train;
    for (int64_t k = 0; k < t->context; k++)
      t->probe->data[k] = (float) ids_src[k];
    t->probe_len = MIN (t->context, PROBE_MAX);
    t->probe_tokens = g_new0 (char *, t->probe_len + 1);
    for (int64_t k = 0; k < t->probe_len; k++) {
      gunichar ch = bp_vocab_char (t->corpus->vocab, ids_src[k]);
      char buf[8] = {0};
      if (ch)
        g_unichar_to_utf8 (ch, buf);
      t->probe_tokens[k] = g_strdup (ch ? buf : "<unk>");
    }
  } else {
    /* the first validation image (the first test image without a validation split) */
    const BpDataset *ds = t->val_idx->n ? t->train_set : t->test_set;
    int64_t i = t->val_idx->n ? t->val_idx->idx[0] : 0;
    memcpy (t->probe->data, ds->x + i * ds->example_numel,
            sizeof (float) * (size_t) ds->example_numel);
  }
}

/* Runs the probe through every attention node and calls back with an ATTENTION event. */
static gboolean
emit_attention (BpTrainer *t, BpTrainEvent *ev, BpTrainCallback callback, gpointer user_data,
                gboolean *go_on, GError **error)
{
  BpModel *m = t->model;
  t->attn_step = t->global_step;
  if (!callback)
    return TRUE;
  bool was = bp_set_grad_enabled (false);
  bp_model_set_training (m, false);
  BpTensor **w = g_new0 (BpTensor *, t->n_attn);
  BpTensor *x = t->config.device == BP_DEVICE_CPU ? bp_tensor_ref (t->probe)
                                                  : bp_tensor_to (t->probe, t->config.device);
  gboolean ok = x != NULL;
  for (int j = 0; j < t->n_attn && ok; j++) {
    bp_model_capture_attention (m, t->attn_ids[j], 1);
    BpTensor *y = bp_model_forward (m, x);
    BpTensor *a = bp_model_attention (m);
    ok = y != NULL;
    if (ok && a && a->ndim == 4 && a->shape[0] == 1 && a->shape[2] == a->shape[3])
      w[j] = a->device == BP_DEVICE_CPU ? bp_tensor_ref (a) : bp_tensor_to (a, BP_DEVICE_CPU);
    bp_tensor_unref (y);
  }
  bp_model_capture_attention (m, NULL, 0);
  bp_tensor_unref (x);
  bp_model_set_training (m, true);
  bp_set_grad_enabled (was);
  if (!ok)
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_ENGINE, "the attention probe failed: %s",
                 bp_last_error ());

  /* the shapes: every node's T is the probe's length; heads may differ per node */
  int64_t len = 0;
  int heads = 0;
  for (int j = 0; j < t->n_attn && ok; j++)
    if (w[j]) {
      len = MAX (len, w[j]->shape[2]);
      heads = MAX (heads, (int) w[j]->shape[1]);
    }
  if (ok && heads > 0) {
    if (!t->probe_tokens) {
      t->probe_len = len;
      t->probe_tokens = g_new0 (char *, len + 1);
      gboolean rows = m->in_ndim == 2 && m->in_shape[0] == len;
      for (int64_t k = 0; k < len; k++)
        t->probe_tokens[k] = g_strdup_printf (rows ? "row %" G_GINT64_FORMAT
                                                   : "position %" G_GINT64_FORMAT, k + 1);
    }
    int64_t n = t->probe_len;
    if (!t->attn_weights || heads != t->attn_heads) {
      g_free (t->attn_weights);
      t->attn_weights = g_new (float, (gsize) t->n_attn * (gsize) heads * (gsize) (n * n));
      t->attn_heads = heads;
    }
    for (int j = 0; j < t->n_attn; j++) {
      float *dst = t->attn_weights + (gsize) j * (gsize) heads * (gsize) (n * n);
      memset (dst, 0, sizeof (float) * (size_t) heads * (size_t) (n * n));
      if (!w[j] || w[j]->shape[2] < n)
        continue;
      int64_t tl = w[j]->shape[2];
      /* a crop of a causal layer's weights is the probe's own; other rows are renormalised */
      const BpLayer *layer = bp_model_find (m, t->attn_ids[j]);
      gboolean renorm = tl > n && !(layer && layer->spec.causal);
      for (int64_t h = 0; h < w[j]->shape[1]; h++)
        for (int64_t i = 0; i < n; i++) {
          const float *src = w[j]->data + (h * tl + i) * tl;
          float *row = dst + (h * n + i) * n;
          double sum = 0.0;
          for (int64_t k = 0; k < n; k++)
            sum += src[k];
          for (int64_t k = 0; k < n; k++)
            row[k] = renorm && sum > 0.0 ? (float) (src[k] / sum) : src[k];
        }
    }
    ev->kind = BP_TRAIN_EVENT_ATTENTION;
    ev->attn_layers = t->n_attn;
    ev->attn_heads = heads;
    ev->attn_len = n;
    ev->attn_tokens = (const char *const *) t->probe_tokens;
    ev->attn_layer_ids = (const char *const *) t->attn_ids;
    ev->attn_weights = t->attn_weights;
    *go_on = callback (ev, user_data);
    ev->attn_tokens = ev->attn_layer_ids = NULL;
    ev->attn_weights = NULL;
  }
  for (int j = 0; j < t->n_attn; j++)
    bp_tensor_unref (w[j]);
  g_free (w);
  return ok;
}

/* ---- the training loop ---- */

/* The loss of a batch on the device (NULL with the error set), with the logits and the rows
 * and targets it was computed from (new references, NULL on failure). */
static BpTensor *
step_loss (BpTrainer *t, BpTensor *dx, BpTensor *dy, BpTensor **logits, BpTensor **rows,
           BpTensor **targets)
{
  *rows = *targets = NULL;
  *logits = bp_model_forward (t->model, dx);
  if (t->task == BP_TASK_REGRESSION)
    return *logits && regression_rows (*logits, dy, rows, targets) ? bp_mse_loss (*rows, *targets)
                                                                   : NULL;
  return *logits && loss_rows (*logits, dy, rows, targets)
           ? bp_cross_entropy (*rows, *targets, t->config.label_smoothing)
           : NULL;
}

static void
set_loss_error (BpTrainer *t, double loss, int epoch, GError **error)
{
  g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_NUMERIC,
               "the loss became %s at epoch %d, step %" G_GINT64_FORMAT
               ": lower the learning rate (now %g) or enable gradient clipping",
               isnan (loss) ? "NaN" : "infinite", epoch, t->epoch_step + 1,
               (double) bp_optimizer_get_lr (t->optim));
}

/* One optimizer step on a batch: *loss, *correct and *count (rows: examples, or characters of
 * a language model). */
static gboolean
train_step (BpTrainer *t, BpTensor *dx, BpTensor *dy, int epoch, double *loss, int64_t *correct,
            int64_t *count, GError **error)
{
  const BpTrainConfig *c = &t->config;
  bp_optimizer_zero_grad (t->optim);
  gboolean regression = t->task == BP_TASK_REGRESSION;
  BpTensor *logits, *rows, *targets;
  BpTensor *l = step_loss (t, dx, dy, &logits, &rows, &targets);
  gboolean ok = TRUE;
  /* on a device, reading the loss waits for the step so far and reports its failures */
  if (!l || bp_backward (l) != BP_OK || !read_scalar (l, loss)) {
    ok = engine_error (error, "training step failed");
  } else if (!isfinite (*loss)) {
    set_loss_error (t, *loss, epoch, error);
    ok = FALSE;
  } else {
    if (c->clip_norm > 0.0f)
      bp_clip_grad_norm (t->n_params, t->params, c->clip_norm);
    BpStatus s = bp_optimizer_step (t->optim);
    *correct = s != BP_OK ? -1 : regression ? 0 : bp_count_correct (rows, targets);
    *count = targets->numel;
    if (*correct < 0) {
      g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_ENGINE, "optimizer step failed: %s",
                   bp_last_error ());
      ok = FALSE;
    }
  }
  bp_tensor_unref (l);
  bp_tensor_unref (rows);
  bp_tensor_unref (targets);
  bp_tensor_unref (logits);
  bp_tape_clear ();
  return ok;
}

/* ---- steps the way a CUDA graph replays them (BP_STEP_FIXED, BP_STEP_GRAPH) ---- */

void
bp_trainer_set_step_mode (BpTrainer *t, BpStepMode mode)
{
  t->step_mode = mode;
  /* fixed steps on the CPU gather their batches from a copy of the training set, as on a
   * device where it is resident (the CPU's eager steps use the loader's batches) */
  BpDataset *ds = t->train_set;
  if (mode == BP_STEP_FIXED && t->config.device == BP_DEVICE_CPU && ds && !t->dev_x &&
      t->fixed_batch == 0) {
    int64_t d = bp_shape_numel (ds->example_ndim, ds->example_shape);
    t->dev_x = bp_tensor_new (2, (int64_t[]){ds->n, d});
    t->dev_y = t->dev_x ? bp_tensor_new (2, (int64_t[]){ds->n, 1}) : NULL;
    if (t->dev_y) {
      memcpy (t->dev_x->data, ds->x, sizeof (float) * (size_t) (ds->n * d));
      memcpy (t->dev_y->data, ds->y, sizeof (float) * (size_t) ds->n);
    } else {
      g_clear_pointer (&t->dev_x, bp_tensor_unref); /* out of memory: batches are copied */
      bp_clear_error ();
    }
  }
}

const char *
bp_trainer_get_step_note (BpTrainer *t)
{
  return t->step_note;
}

/* Whether the batch x goes through the fixed tensors: the mode asks for it and x has their
 * batch size (the first such batch sets it). */
static gboolean
use_fixed (BpTrainer *t, const BpTensor *x)
{
  gboolean want = t->step_mode == BP_STEP_FIXED ||
                  (t->step_mode == BP_STEP_GRAPH && t->config.device == BP_DEVICE_CUDA);
  return want && (t->fixed_batch == 0 || x->shape[0] == t->fixed_batch);
}

/* The fixed tensors for batches like (x, y): the resident training set's gather indices, or
 * the batch itself as the model reads it; and the outputs: loss and correct count. */
static gboolean
fixed_setup (BpTrainer *t, const BpTensor *x, const BpTensor *y)
{
  BpDevice dev = t->config.device;
  int64_t b = x->shape[0];
  if (!t->corpus && t->dev_x) {
    t->fixed_idx = bp_tensor_new_on (dev, 1, &b);
  } else {
    int64_t shape[BP_MAX_DIMS];
    int ndim = t->corpus ? x->ndim : model_batch_shape (t, b, shape);
    t->fixed_x = bp_tensor_new_on (dev, ndim, t->corpus ? x->shape : shape);
    t->fixed_y = t->fixed_x ? bp_tensor_new_on (dev, y->ndim, y->shape) : NULL;
  }
  t->fixed_loss = bp_tensor_new_on (dev, 1, (int64_t[]){2}); /* loss, correct count */
  if (!t->fixed_loss || (!t->fixed_idx && !t->fixed_y))
    return FALSE;
  t->fixed_batch = b;
  t->fixed_y_ndim = y->ndim;
  memcpy (t->fixed_y_shape, y->shape, sizeof t->fixed_y_shape);
  t->fixed_count = y->numel;
  return TRUE;
}

/* The bytes of a staged batch: the resident training set's indices, or x then y. */
static size_t
stage_bytes (BpTrainer *t)
{
  return sizeof (float) * (size_t) (t->fixed_idx ? t->fixed_idx->numel
                                                 : t->fixed_x->numel + t->fixed_y->numel);
}

/* Stages the batch (x, y) just fetched from the loader: into the next slot (pinned memory on
 * a GPU, whose copy then starts on the prefetcher's stream; host memory on the CPU). */
static gboolean
stage_batch (BpTrainer *t, const BpTensor *x, const BpTensor *y)
{
  if (t->fixed_batch == 0 && !fixed_setup (t, x, y))
    return FALSE;
  size_t bytes = stage_bytes (t);
  if (t->config.device == BP_DEVICE_CUDA) {
    if (!t->prefetch && !(t->prefetch = bp_cuda_prefetch_new (bytes)))
      return FALSE;
  } else if (!t->slots[0]) {
    t->slots[0] = g_malloc (bytes);
    t->slots[1] = g_malloc (bytes);
  }
  float *slot = t->prefetch ? bp_cuda_prefetch_slot (t->prefetch) : t->slots[t->slot_fill];
  if (!slot)
    return FALSE;
  if (t->fixed_idx) {
    indices_as_floats (t->train_loader, slot);
  } else {
    memcpy (slot, x->data, sizeof (float) * (size_t) x->numel);
    memcpy (slot + x->numel, y->data, sizeof (float) * (size_t) y->numel);
  }
  if (t->prefetch)
    return bp_cuda_prefetch_send (t->prefetch, bytes) == BP_OK;
  t->slot_fill = 1 - t->slot_fill;
  return TRUE;
}

static gboolean
fixed_stage (BpTrainer *t, const BpTensor *x, const BpTensor *y, GError **error)
{
  return stage_batch (t, x, y) || engine_error (error, "cannot copy a batch to the device");
}

/* The staged batch into the fixed tensors (outside any graph). */
static gboolean
fixed_take (BpTrainer *t)
{
  BpTensor *a = t->fixed_idx ? t->fixed_idx : t->fixed_x, *b = t->fixed_idx ? NULL : t->fixed_y;
  size_t na = sizeof (float) * (size_t) a->numel, nb = b ? sizeof (float) * (size_t) b->numel : 0;
  if (t->prefetch)
    return bp_cuda_prefetch_take (t->prefetch, a->data, na, b ? b->data : NULL, nb) == BP_OK;
  const float *slot = t->slots[t->slot_take];
  t->slot_take = 1 - t->slot_take;
  memcpy (a->data, slot, na);
  if (b)
    memcpy (b->data, (const char *) slot + na, nb);
  return TRUE;
}

/* Forgets a staged batch that will not be taken (the run stopped before its step). */
static void
fixed_discard (BpTrainer *t)
{
  t->ahead_x = t->ahead_y = NULL;
  if (t->ahead_staged) {
    if (t->prefetch)
      bp_cuda_prefetch_discard (t->prefetch);
    t->slot_take = t->slot_fill;
  }
  t->ahead_staged = FALSE;
}

/* The device work of a step, what a graph holds: gradients zeroed, the batch (gathered from
 * the resident training set), forward, loss, backward, clipping, the optimizer's launch, and
 * the loss and correct count into fixed_loss. `prepared`: bp_optimizer_prepare has run (a
 * capture); otherwise it runs after the backward, when every gradient exists (the host half
 * of the optimizer, which the device-step watch does not count). Leaves in t->host_sync the
 * first place that copied between host and device or waited for it, which a capture cannot
 * hold. */
static gboolean
fixed_body (BpTrainer *t, gboolean prepared)
{
  const BpTrainConfig *c = &t->config;
  const BpBackend *be = bp_backend (c->device);
  gboolean trusted = bp_set_targets_trusted (t->targets_checked);
  gboolean indices = bp_set_indices_trusted (t->inputs_checked);
  bp_device_step_begin ();
  bp_optimizer_zero_grad (t->optim);
  BpTensor *dx = NULL, *dy = NULL;
  if (t->fixed_idx) {
    gather_batch (t, t->fixed_idx, t->fixed_y_ndim, t->fixed_y_shape, &dx, &dy);
  } else {
    dx = bp_tensor_ref (t->fixed_x);
    dy = bp_tensor_ref (t->fixed_y);
  }
  BpTensor *logits = NULL, *rows = NULL, *targets = NULL;
  BpTensor *l = dy ? step_loss (t, dx, dy, &logits, &rows, &targets) : NULL;
  gboolean ok = l && bp_backward (l) == BP_OK;
  if (ok && !prepared)
    ok = bp_optimizer_prepare (t->optim) == BP_OK;
  if (ok && c->clip_norm > 0.0f)
    ok = bp_optimizer_clip_launch (t->optim, c->clip_norm) == BP_OK;
  if (ok)
    ok = bp_optimizer_launch (t->optim) == BP_OK;
  if (ok)
    ok = be->copy (t->fixed_loss->data, l->data, sizeof (float)) == BP_OK;
  if (ok) {
    be->fill (t->fixed_loss->data + 1, 0.0f, 1);
    if (t->task != BP_TASK_REGRESSION)
      be->loss->count_correct_add (t->fixed_loss->data + 1, rows->data, targets->data,
                                   rows->shape[0], rows->shape[1]);
  }
  bp_tensor_unref (l);
  bp_tensor_unref (rows);
  bp_tensor_unref (targets);
  bp_tensor_unref (logits);
  bp_tensor_unref (dx);
  bp_tensor_unref (dy);
  bp_tape_clear ();
  const char *host = bp_device_step_end ();
  g_strlcpy (t->host_sync, host ? host : "", sizeof t->host_sync);
  bp_set_targets_trusted (trusted);
  bp_set_indices_trusted (indices);
  return ok;
}

/* The batch-norm layers' num_batches_tracked (host counters of the forward pass, which a
 * replay does not run): read into `counts` (n_layers), or moved on by `counts` when add. */
static void
batch_counts (BpTrainer *t, int64_t *counts, gboolean add)
{
  for (int k = 0; k < t->model->n_layers; k++) {
    if (add)
      t->model->layers[k].num_batches_tracked += counts[k];
    else
      counts[k] = t->model->layers[k].num_batches_tracked;
  }
}

/* Captures the step as a CUDA graph and runs it (its first replay); when it cannot be
 * captured, notes why, leaves graphs off and runs the step eagerly. */
static gboolean
capture_step (BpTrainer *t)
{
  /* the host half first: the graph holds only the optimizer's launch */
  if (bp_optimizer_prepare (t->optim) != BP_OK)
    return FALSE;
  int n = t->model->n_layers;
  int64_t *before = g_new (int64_t, (gsize) MAX (n, 1));
  batch_counts (t, before, FALSE);
  uint64_t rng = bp_rng_state ();
  BpCudaGraph *g = NULL;
  if (bp_cuda_capture_begin () == BP_OK) {
    gboolean body = fixed_body (t, TRUE);
    if (t->host_sync[0])
      bp_cuda_capture_refuse (t->host_sync);
    g = bp_cuda_capture_end ();
    if (!body) /* a step that failed while captured: no graph, the note says why */
      g_clear_pointer (&g, bp_cuda_graph_free);
  }
  if (!g) {
    /* nothing ran: undo the host side of the capture and take the step eagerly */
    g_snprintf (t->step_note, sizeof t->step_note, "CUDA graph off: %s", bp_last_error ());
    bp_optimizer_unprepare (t->optim);
    bp_rng_set_state (rng);
    for (int k = 0; k < n; k++)
      t->model->layers[k].num_batches_tracked = before[k];
    g_free (before);
    t->graph_off = TRUE;
    return fixed_body (t, FALSE);
  }
  /* a replay adds what the captured forward added */
  t->batch_deltas = g_new (int64_t, (gsize) MAX (n, 1));
  batch_counts (t, t->batch_deltas, FALSE);
  for (int k = 0; k < n; k++)
    t->batch_deltas[k] -= before[k];
  g_free (before);
  t->graph = g;
  int keys = bp_cuda_graph_n_keys (g);
  g_snprintf (t->step_note, sizeof t->step_note,
              "CUDA graph: the step at batch %" G_GINT64_FORMAT " captured (%zu memory blocks, "
              "%d dropout mask%s per replay)",
              t->fixed_batch, bp_cuda_graph_n_blocks (g), keys, keys == 1 ? "" : "s");
  return bp_cuda_graph_launch (g) == BP_OK;
}

/* The first half of a step through the fixed tensors (its batch staged): the batch into the
 * fixed tensors, then the step eager, captured or replayed; nothing waits for the device. */
static gboolean
fixed_launch (BpTrainer *t, GError **error)
{
  if (!fixed_take (t))
    return engine_error (error, "cannot copy a batch to the device");
  gboolean ok;
  gboolean graphs = t->step_mode == BP_STEP_GRAPH && t->config.device == BP_DEVICE_CUDA;
  if (t->graph) {
    ok = bp_optimizer_prepare (t->optim) == BP_OK;
    uint64_t rng = bp_rng_state ();
    if (ok && bp_cuda_graph_launch (t->graph) == BP_OK) {
      /* what the host side of the captured step did: the optimizer's step counter (its
       * launch) and the batch norms' counters (their forward) */
      bp_optimizer_set_step (t->optim, bp_optimizer_get_step (t->optim) + 1);
      batch_counts (t, t->batch_deltas, TRUE);
    } else if (ok) {
      /* the replay was refused (nothing ran): graphs off, this step and the rest eagerly; a
       * device that has failed fails the eager step as well, with its own message */
      g_snprintf (t->step_note, sizeof t->step_note, "CUDA graph off after %" G_GINT64_FORMAT
                  " steps: the replay failed: %s", t->fixed_steps, bp_last_error ());
      g_clear_pointer (&t->graph, bp_cuda_graph_free);
      t->graph_off = TRUE;
      bp_rng_set_state (rng);
      ok = fixed_body (t, TRUE);
    }
  } else if (graphs && !t->graph_off && t->fixed_steps >= 1) {
    ok = capture_step (t);
  } else {
    ok = fixed_body (t, FALSE);
    /* the CPU's rehearsal of a graph: whether a GPU could capture this step (the first place
     * that would stop it is kept) */
    if (t->config.device == BP_DEVICE_CPU && (t->fixed_steps == 0 || t->host_sync[0]) &&
        !g_str_has_prefix (t->step_note, "Fixed steps: a CUDA graph could not"))
      g_snprintf (t->step_note, sizeof t->step_note, "Fixed steps: %s%s",
                  t->host_sync[0] ? "a CUDA graph could not hold the step: " :
                                    "the step stays on the device (a CUDA graph could hold it)",
                  t->host_sync);
  }
  t->fixed_steps++;
  return ok || engine_error (error, "training step failed");
}

/* The second half: waits for the step and reads its loss and correct count. */
static gboolean
fixed_finish (BpTrainer *t, int epoch, double *loss, int64_t *correct, int64_t *count,
              GError **error)
{
  /* one read-back for both values; on a device it waits for the step and reports its
   * failures */
  float out[2] = {NAN, 0.0f};
  if (bp_backend (t->config.device)->download (out, t->fixed_loss->data, sizeof out) != BP_OK)
    return engine_error (error, "training step failed");
  *loss = out[0];
  *correct = t->task == BP_TASK_REGRESSION ? 0 : (int64_t) out[1];
  *count = t->fixed_count;
  if (!isfinite (*loss)) {
    set_loss_error (t, *loss, epoch, error);
    return FALSE;
  }
  return TRUE;
}

/* The next training batch of the epoch, on the CPU: FALSE at the end of the epoch (*have
 * FALSE) or on an error (*have TRUE, error set). */
static gboolean
next_batch (BpTrainer *t, BpTensor **x, BpTensor **y, gboolean *have, GError **error)
{
  *have = FALSE;
  if (t->ahead_x) {
    /* fetched (and staged) while the previous step ran */
    *x = t->ahead_x;
    *y = t->ahead_y;
    t->ahead_x = t->ahead_y = NULL;
    *have = TRUE;
    return TRUE;
  }
  if (t->corpus) {
    if (t->epoch_step >= t->steps_per_epoch)
      return FALSE;
    *have = TRUE;
    if (!bp_text_loader_next (t->text_loader, x, y)) {
      g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_DATA, "cannot make a batch: %s",
                   bp_last_error ());
      return FALSE;
    }
    return TRUE;
  }
  if (!bp_loader_next (t->train_loader, x, y))
    return FALSE;
  *have = TRUE;
  return TRUE;
}

/* The training batch (x, y) on the device, as the model reads it. */
static gboolean
batch_on_device (BpTrainer *t, BpTensor *x, BpTensor *y, BpTensor **dx, BpTensor **dy,
                 GError **error)
{
  gboolean ok = t->corpus ? text_to_device (t, x, y, dx, dy)
                          : batch_to_device (t, t->train_loader, t->train_set, x, y, dx, dy);
  return ok || engine_error (error, "cannot copy a batch to the device");
}

/* Positions the data at the trainer's place in `epoch` (mid-epoch after a checkpoint). */
static gboolean
seek_epoch (BpTrainer *t, int epoch, GError **error)
{
  if (t->corpus) {
    /* the windows of a step depend only on (seed, global step) */
    bp_text_loader_set_step (t->text_loader, t->global_step);
    return TRUE;
  }
  /* the order of an epoch depends only on (seed, epoch): a trainer that stopped (or a
   * checkpoint taken) mid-epoch continues after the batches it has done */
  bp_loader_set_epoch (t->train_loader, epoch - 1);
  BpTensor *x, *y;
  for (int64_t k = 0; k < t->epoch_step; k++)
    if (!bp_loader_next (t->train_loader, &x, &y)) {
      g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_DATA,
                   "cannot continue epoch %d after step %" G_GINT64_FORMAT ": %s", epoch,
                   t->epoch_step, bp_last_error ());
      return FALSE;
    }
  return TRUE;
}

static gboolean
run_training (BpTrainer *t, BpTrainCallback callback, gpointer user_data, GError **error)
{
  const BpTrainConfig *c = &t->config;
  gboolean text = t->corpus != NULL;
  BpTrainEvent ev = {
    .epoch = t->epochs_done,
    .epochs = c->epochs,
    .steps_per_epoch = t->steps_per_epoch,
    .global_step = t->global_step,
    .n_train = text ? t->corpus->n_train : t->train_idx->n,
    .n_val = text ? (t->val_loader ? t->corpus->n_val : 0) : t->val_idx->n,
    .n_test = text ? (t->val_loader ? t->corpus->n_val : 0) : t->test_set->n,
    .n_params = bp_model_num_parameters (t->model),
    .lr = bp_optimizer_get_lr (t->optim),
    .baseline_loss = text ? t->corpus->unigram_loss : NAN,
    .task = t->task,
    .val_r2 = NAN,
    .test_r2 = NAN,
  };
  gboolean regression = t->task == BP_TASK_REGRESSION;
  gboolean go_on = TRUE;
  ev.kind = BP_TRAIN_EVENT_START;
  if (callback)
    go_on = callback (&ev, user_data);
  gint64 t_start = g_get_monotonic_time ();
  gboolean attention = c->attention_every > 0 && t->n_attn > 0;

  bp_model_set_training (t->model, true);
  for (int epoch = t->epochs_done + 1; go_on && epoch <= c->epochs; epoch++) {
    gint64 t_epoch = g_get_monotonic_time ();
    int64_t seen_before = t->seen;
    ev.epoch = epoch;
    if (!seek_epoch (t, epoch, error))
      return FALSE;
    while (go_on) {
      BpTensor *x, *y, *dx = NULL, *dy = NULL;
      gboolean have;
      if (!next_batch (t, &x, &y, &have, error)) {
        if (have)
          return FALSE;
        break;
      }
      double l = 0.0;
      int64_t correct = 0, count = 0;
      gboolean ok;
      if (use_fixed (t, x)) {
        gboolean staged = t->ahead_staged;
        t->ahead_staged = FALSE;
        ok = (staged || fixed_stage (t, x, y, error)) && fixed_launch (t, error);
        /* while the device runs the step: the epoch's next batch, fetched and staged */
        if (ok && t->epoch_step + 1 < t->steps_per_epoch) {
          gboolean more;
          ok = next_batch (t, &t->ahead_x, &t->ahead_y, &more, error) || !more;
          if (ok && t->ahead_x && use_fixed (t, t->ahead_x))
            ok = t->ahead_staged = fixed_stage (t, t->ahead_x, t->ahead_y, error);
        }
        ok = ok && fixed_finish (t, epoch, &l, &correct, &count, error);
      } else {
        ok = batch_on_device (t, x, y, &dx, &dy, error) &&
             train_step (t, dx, dy, epoch, &l, &correct, &count, error);
      }
      batch_release (x, y, dx, dy);
      if (!ok)
        return FALSE;
      t->correct += correct;
      t->loss_sum += l * (double) count;
      t->seen += count;
      t->epoch_step++;
      t->global_step++;
      ev.kind = BP_TRAIN_EVENT_STEP;
      ev.step = t->epoch_step;
      ev.global_step = t->global_step;
      ev.loss = l;
      ev.accuracy = regression ? NAN : (double) correct / (double) MAX (1, count);
      ev.lr = bp_optimizer_get_lr (t->optim);
      ev.seconds = (double) (g_get_monotonic_time () - t_start) / 1e6;
      ev.images_per_second = (double) (t->seen - seen_before) /
                             fmax (1e-9, (double) (g_get_monotonic_time () - t_epoch) / 1e6);
      if (callback)
        go_on = callback (&ev, user_data);
      if (go_on && attention && t->global_step % c->attention_every == 0 &&
          !emit_attention (t, &ev, callback, user_data, &go_on, error))
        return FALSE;
    }
    if (!go_on)
      break;
    double epoch_seconds = (double) (g_get_monotonic_time () - t_epoch) / 1e6;
    ev.train_loss = t->seen ? t->loss_sum / (double) t->seen : NAN;
    ev.train_accuracy = t->seen && !regression ? (double) t->correct / (double) t->seen : NAN;
    if (text) {
      if (!evaluate_text (t, &ev.val_loss, &ev.val_accuracy, error))
        return FALSE;
      ev.n_classes = 0;
      ev.confusion = NULL;
      ev.class_names = NULL;
    } else {
      int nc = t->train_set->n_classes;
      memset (t->confusion, 0, sizeof (int64_t) * (size_t) (nc * nc));
      if (!evaluate (t, t->train_set, t->val_idx, &ev.val_loss, &ev.val_accuracy, &ev.val_r2,
                     t->confusion, error))
        return FALSE;
      ev.n_classes = nc;
      ev.confusion = t->val_idx->n && !regression ? t->confusion : NULL;
      ev.class_names = (const char *const *) t->train_set->class_names;
      if (t->boundary_probs && !compute_boundary (t, error))
        return FALSE;
    }
    /* the epoch's attention (unless its last step just had one) */
    if (attention && t->attn_step != t->global_step) {
      if (!emit_attention (t, &ev, callback, user_data, &go_on, error))
        return FALSE;
      if (!go_on)
        break;
    }
    ev.kind = BP_TRAIN_EVENT_EPOCH;
    ev.lr = bp_optimizer_get_lr (t->optim);
    ev.seconds = epoch_seconds;
    ev.images_per_second = (double) (t->seen - seen_before) / fmax (1e-9, epoch_seconds);
    bp_scheduler_step (t->sched, isnan (ev.val_loss) ? (float) ev.train_loss : (float) ev.val_loss);
    sched_changed (t);
    /* the epoch is complete: a checkpoint taken in this callback starts the next one */
    t->epochs_done = epoch;
    t->epoch_step = 0;
    t->loss_sum = 0.0;
    t->correct = t->seen = 0;
    event_boundary (t, &ev, TRUE);
    if (callback)
      go_on = callback (&ev, user_data);
    event_boundary (t, &ev, FALSE);
  }

  /* stopped by the callback before the last epoch ended: no test pass (it would keep a user
   * who pressed Stop waiting); the test metrics are NaN */
  ev.test_loss = ev.test_accuracy = ev.test_r2 = NAN;
  if ((go_on || t->epochs_done >= c->epochs) &&
      !bp_trainer_evaluate_test_full (t, &ev.test_loss, &ev.test_accuracy, &ev.test_r2, error))
    return FALSE;
  if (t->boundary_probs && !compute_boundary (t, error))
    return FALSE;
  ev.kind = BP_TRAIN_EVENT_DONE;
  ev.confusion = NULL;
  ev.global_step = t->global_step;
  ev.seconds = (double) (g_get_monotonic_time () - t_start) / 1e6;
  event_boundary (t, &ev, TRUE);
  if (callback)
    callback (&ev, user_data);
  return TRUE;
}

/* Training and evaluation run at the config's precision, set on the calling thread (the
 * training thread) and put back afterwards. */
gboolean
bp_trainer_run (BpTrainer *t, BpTrainCallback callback, gpointer user_data, GError **error)
{
  BpPrecision was = bp_set_precision (t->config.precision);
  gboolean ok = run_training (t, callback, user_data, error);
  /* a batch fetched ahead for a step that did not come (stopped): the next run seeks again */
  fixed_discard (t);
  bp_set_precision (was);
  return ok;
}

/* ---- where training stands ---- */

const BpTextCorpus *
bp_trainer_get_corpus (BpTrainer *t)
{
  return t->corpus;
}

int64_t
bp_trainer_get_context (BpTrainer *t)
{
  return t->corpus ? t->context : 0;
}

const BpTrainConfig *
bp_trainer_get_config (BpTrainer *t)
{
  return &t->config;
}

const char *
bp_trainer_get_spec_json (BpTrainer *t)
{
  return t->spec_json;
}

int
bp_trainer_get_epochs_done (BpTrainer *t)
{
  return t->epochs_done;
}

int64_t
bp_trainer_get_epoch_step (BpTrainer *t)
{
  return t->epoch_step;
}

int64_t
bp_trainer_get_global_step (BpTrainer *t)
{
  return t->global_step;
}

/* ---- the config as JSON ---- */

static const char *const optim_names[] = {"sgd", "adam", "adamw"};
static const char *const sched_names[] = {"constant", "step", "cosine", "plateau"};

const char *
bp_optim_kind_name (BpOptimKind kind)
{
  return (unsigned) kind < G_N_ELEMENTS (optim_names) ? optim_names[kind] : "unknown";
}

const char *
bp_sched_kind_name (BpSchedKind kind)
{
  return (unsigned) kind < G_N_ELEMENTS (sched_names) ? sched_names[kind] : "unknown";
}

/* JSON text is written by hand here: json-glib 1.6 writes some doubles as invalid JSON
 * ("1e-08.0"). Floats are written as their shortest text (0.001f as 0.001). */
static void
put_key (GString *s, const char *key)
{
  g_string_append_printf (s, "%s\"%s\":", s->str[s->len - 1] != '{' ? "," : "", key);
}

static void
put_float (GString *s, const char *key, float v)
{
  char buf[32];
  bp_float_format (v, buf, sizeof buf);
  put_key (s, key);
  g_string_append (s, isfinite (v) ? buf : "null");
}

static void
put_int (GString *s, const char *key, gint64 v)
{
  put_key (s, key);
  g_string_append_printf (s, "%" G_GINT64_FORMAT, v);
}

static void
put_bool (GString *s, const char *key, gboolean v)
{
  put_key (s, key);
  g_string_append (s, v ? "true" : "false");
}

/* Strings here are names and simple text; quotes, backslashes and control characters are
 * escaped. */
static void
put_string (GString *s, const char *key, const char *v)
{
  put_key (s, key);
  if (!v) {
    g_string_append (s, "null");
    return;
  }
  g_string_append_c (s, '"');
  for (const unsigned char *p = (const unsigned char *) v; *p; p++) {
    if (*p == '"' || *p == '\\')
      g_string_append_printf (s, "\\%c", *p);
    else if (*p < 0x20)
      g_string_append_printf (s, "\\u%04x", *p);
    else
      g_string_append_c (s, (char) *p);
  }
  g_string_append_c (s, '"');
}

static void
put_double (GString *s, const char *key, double v)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE] = "null";
  put_key (s, key);
  /* the shortest text that reads back as v */
  for (int digits = 1; isfinite (v) && digits <= 17; digits++) {
    char fmt[8];
    g_snprintf (fmt, sizeof fmt, "%%.%dg", digits);
    g_ascii_formatd (buf, sizeof buf, fmt, v);
    if (g_ascii_strtod (buf, NULL) == v)
      break;
  }
  g_string_append (s, buf);
}

char *
bp_train_config_to_json (const BpTrainConfig *c)
{
  GString *s = g_string_new ("{");
  put_string (s, "model", c->model_json ? NULL : c->model);
  put_string (s, "dataset", c->dataset);
  put_int (s, "epochs", c->epochs);
  put_int (s, "batch_size", c->batch_size);
  put_key (s, "optimizer");
  g_string_append_c (s, '{');
  put_string (s, "name", bp_optim_kind_name (c->optim.kind));
  put_float (s, "lr", c->optim.lr);
  put_float (s, "momentum", c->optim.momentum);
  put_float (s, "dampening", c->optim.dampening);
  put_bool (s, "nesterov", c->optim.nesterov);
  put_float (s, "beta1", c->optim.beta1);
  put_float (s, "beta2", c->optim.beta2);
  put_float (s, "eps", c->optim.eps);
  put_float (s, "weight_decay", c->optim.weight_decay);
  put_float (s, "l1", c->optim.l1);
  g_string_append (s, "}");
  put_key (s, "schedule");
  g_string_append_c (s, '{');
  put_string (s, "name", bp_sched_kind_name (c->sched.kind));
  put_int (s, "step_size", c->sched.step_size);
  put_float (s, "gamma", c->sched.gamma);
  put_int (s, "t_max", c->sched.t_max);
  put_float (s, "eta_min", c->sched.eta_min);
  put_float (s, "factor", c->sched.factor);
  put_int (s, "patience", c->sched.patience);
  put_float (s, "threshold", c->sched.threshold);
  put_float (s, "min_lr", c->sched.min_lr);
  put_int (s, "warmup_epochs", c->sched.warmup_epochs);
  g_string_append (s, "}");
  put_float (s, "clip_norm", c->clip_norm);
  put_float (s, "label_smoothing", c->label_smoothing);
  put_int (s, "seed", (gint64) c->seed);
  put_string (s, "device", c->device == BP_DEVICE_CUDA ? "cuda" : "cpu");
  put_string (s, "precision", bp_precision_name (c->precision));
  put_int (s, "limit_train", c->limit_train);
  put_int (s, "limit_test", c->limit_test);
  put_double (s, "val_fraction", c->val_fraction);
  put_int (s, "eval_batch_size", c->eval_batch_size);
  put_int (s, "context", c->context);
  put_int (s, "steps_per_epoch", c->steps_per_epoch);
  put_int (s, "eval_batches", c->eval_batches);
  put_int (s, "attention_every", c->attention_every);
  g_string_append_c (s, '}');
  return g_string_free (s, FALSE);
}

/* Reading one member of a config object: absent members keep the value. */
typedef struct {
  JsonObject *o;
  const char *where; /* "" or "optimizer." */
  GError **error;
  gboolean ok;
} ConfigReader;

static JsonNode *
member (ConfigReader *r, const char *key, GType type, const char *what)
{
  if (!r->ok || !json_object_has_member (r->o, key))
    return NULL;
  JsonNode *n = json_object_get_member (r->o, key);
  if (JSON_NODE_HOLDS_VALUE (n) && (json_node_get_value_type (n) == type ||
                                    (type == G_TYPE_DOUBLE &&
                                     json_node_get_value_type (n) == G_TYPE_INT64)))
    return n;
  g_set_error (r->error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_INVALID,
               "bad training config: \"%s%s\" must be %s", r->where, key, what);
  r->ok = FALSE;
  return NULL;
}

static void
read_int (ConfigReader *r, const char *key, gint64 min, gint64 max, gint64 *v)
{
  JsonNode *n = member (r, key, G_TYPE_INT64, "an integer");
  if (!n)
    return;
  gint64 x = json_node_get_int (n);
  if (x < min || x > max) {
    g_set_error (r->error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_INVALID,
                 "bad training config: \"%s%s\" is out of range (%" G_GINT64_FORMAT ")",
                 r->where, key, x);
    r->ok = FALSE;
    return;
  }
  *v = x;
}

static void
read_i32 (ConfigReader *r, const char *key, int *v)
{
  gint64 x = *v;
  read_int (r, key, -(1 << 30), 1 << 30, &x);
  *v = (int) x;
}

static void
read_double (ConfigReader *r, const char *key, double *v)
{
  JsonNode *n = member (r, key, G_TYPE_DOUBLE, "a number");
  if (n)
    *v = json_node_get_value_type (n) == G_TYPE_INT64 ? (double) json_node_get_int (n)
                                                       : json_node_get_double (n);
}

static void
read_float (ConfigReader *r, const char *key, float *v)
{
  double x = *v;
  read_double (r, key, &x);
  *v = (float) x;
}

static const char *
read_string (ConfigReader *r, const char *key)
{
  if (r->ok && json_object_has_member (r->o, key) && json_object_get_null_member (r->o, key))
    return NULL;
  JsonNode *n = member (r, key, G_TYPE_STRING, "a string");
  return n ? json_node_get_string (n) : NULL;
}

static int
name_index (const char *const *names, int n, const char *name)
{
  for (int k = 0; k < n; k++)
    if (g_strcmp0 (names[k], name) == 0)
      return k;
  return -1;
}

gboolean
bp_train_config_from_json (const char *json, BpTrainConfig *c, GError **error)
{
  g_autoptr (JsonParser) p = json_parser_new ();
  g_autoptr (GError) local = NULL;
  if (!json_parser_load_from_data (p, json, -1, &local) ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (p))) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_INVALID,
                 "bad training config: not a JSON object%s%s", local ? ": " : "",
                 local ? local->message : "");
    return FALSE;
  }
  BpTrainConfig n = *c;
  ConfigReader r = {json_node_get_object (json_parser_get_root (p)), "", error, TRUE};
  const char *s;
  if ((s = read_string (&r, "model")))
    n.model = g_intern_string (s);
  if ((s = read_string (&r, "dataset")))
    n.dataset = g_intern_string (s);
  read_i32 (&r, "epochs", &n.epochs);
  gint64 v = n.batch_size;
  read_int (&r, "batch_size", 1, 1 << 20, &v);
  n.batch_size = v;
  read_float (&r, "clip_norm", &n.clip_norm);
  read_float (&r, "label_smoothing", &n.label_smoothing);
  v = (gint64) n.seed;
  read_int (&r, "seed", 0, G_MAXINT64, &v);
  n.seed = (uint64_t) v;
  if ((s = read_string (&r, "device"))) {
    if (g_strcmp0 (s, "cpu") == 0)
      n.device = BP_DEVICE_CPU;
    else if (g_strcmp0 (s, "cuda") == 0)
      n.device = BP_DEVICE_CUDA;
    else if (r.ok) {
      g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_INVALID,
                   "bad training config: unknown device \"%s\"", s);
      r.ok = FALSE;
    }
  }
  if ((s = read_string (&r, "precision")) && !bp_precision_parse (s, &n.precision) && r.ok) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_INVALID,
                 "bad training config: unknown precision \"%s\" (float32 or bfloat16)", s);
    r.ok = FALSE;
  }
  read_int (&r, "limit_train", 0, G_MAXINT64, &n.limit_train);
  read_int (&r, "limit_test", 0, G_MAXINT64, &n.limit_test);
  read_double (&r, "val_fraction", &n.val_fraction);
  read_int (&r, "eval_batch_size", 0, 1 << 20, &n.eval_batch_size);
  read_int (&r, "context", 0, 1 << 20, &n.context);
  read_int (&r, "steps_per_epoch", 0, 1 << 30, &n.steps_per_epoch);
  read_int (&r, "eval_batches", 0, 1 << 20, &n.eval_batches);
  read_int (&r, "attention_every", 0, G_MAXINT64, &n.attention_every);

  JsonObject *top = r.o;
  const char *groups[] = {"optimizer", "schedule"};
  for (int g = 0; g < 2 && r.ok; g++) {
    if (!json_object_has_member (top, groups[g]))
      continue;
    JsonNode *gn = json_object_get_member (top, groups[g]);
    if (!JSON_NODE_HOLDS_OBJECT (gn)) {
      g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_INVALID,
                   "bad training config: \"%s\" must be an object", groups[g]);
      return FALSE;
    }
    r.o = json_node_get_object (gn);
    r.where = g == 0 ? "optimizer." : "schedule.";
    s = read_string (&r, "name");
    if (g == 0) {
      int k = s ? name_index (optim_names, G_N_ELEMENTS (optim_names), s) : (int) n.optim.kind;
      if (k < 0 && r.ok) {
        g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_INVALID,
                     "bad training config: unknown optimizer \"%s\"", s);
        return FALSE;
      }
      n.optim.kind = (BpOptimKind) k;
      read_float (&r, "lr", &n.optim.lr);
      read_float (&r, "momentum", &n.optim.momentum);
      read_float (&r, "dampening", &n.optim.dampening);
      JsonNode *b = member (&r, "nesterov", G_TYPE_BOOLEAN, "true or false");
      if (b)
        n.optim.nesterov = json_node_get_boolean (b);
      read_float (&r, "beta1", &n.optim.beta1);
      read_float (&r, "beta2", &n.optim.beta2);
      read_float (&r, "eps", &n.optim.eps);
      read_float (&r, "weight_decay", &n.optim.weight_decay);
      read_float (&r, "l1", &n.optim.l1);
    } else {
      int k = s ? name_index (sched_names, G_N_ELEMENTS (sched_names), s) : (int) n.sched.kind;
      if (k < 0 && r.ok) {
        g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_INVALID,
                     "bad training config: unknown schedule \"%s\"", s);
        return FALSE;
      }
      n.sched.kind = (BpSchedKind) k;
      read_i32 (&r, "step_size", &n.sched.step_size);
      read_float (&r, "gamma", &n.sched.gamma);
      read_i32 (&r, "t_max", &n.sched.t_max);
      read_float (&r, "eta_min", &n.sched.eta_min);
      read_float (&r, "factor", &n.sched.factor);
      read_i32 (&r, "patience", &n.sched.patience);
      read_float (&r, "threshold", &n.sched.threshold);
      read_float (&r, "min_lr", &n.sched.min_lr);
      read_i32 (&r, "warmup_epochs", &n.sched.warmup_epochs);
    }
  }
  if (!r.ok)
    return FALSE;
  *c = n;
  return TRUE;
}

/* ---- checkpoints ---- */

static void
add_int (JsonBuilder *b, const char *key, gint64 v)
{
  json_builder_set_member_name (b, key);
  json_builder_add_int_value (b, v);
}

static void
add_string (JsonBuilder *b, const char *key, const char *v)
{
  json_builder_set_member_name (b, key);
  json_builder_add_string_value (b, v);
}

static char *
builder_to_json (JsonBuilder *b)
{
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  json_generator_set_root (gen, root);
  return json_generator_to_data (gen, NULL);
}

/* The trainer state holds integers and strings only (json-glib 1.6 can write doubles as
 * invalid JSON); doubles that must come back bit for bit travel as "%.17g" text. */
static void
add_exact (JsonBuilder *b, const char *key, double v)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  json_builder_set_member_name (b, key);
  json_builder_add_string_value (b, g_ascii_formatd (buf, sizeof buf, "%.17g", v));
}

static char *
trainer_state_json (BpTrainer *t)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  add_int (b, "epochs_done", t->epochs_done);
  add_int (b, "epoch_step", t->epoch_step);
  add_int (b, "global_step", t->global_step);
  add_int (b, "steps_per_epoch", t->steps_per_epoch);
  add_exact (b, "loss_sum", t->loss_sum);
  add_int (b, "correct", t->correct);
  add_int (b, "seen", t->seen);
  char rng[32];
  g_snprintf (rng, sizeof rng, "%" G_GUINT64_FORMAT, (guint64) bp_rng_state ());
  add_string (b, "rng", rng);
  add_int (b, "optimizer_steps", bp_optimizer_get_step (t->optim));
  add_exact (b, "lr", bp_optimizer_get_lr (t->optim));
  add_exact (b, "lr_scale", t->lr_scale);
  BpSchedState ss;
  bp_scheduler_get_state (t->sched, &ss);
  json_builder_set_member_name (b, "scheduler");
  json_builder_begin_object (b);
  add_int (b, "epoch", ss.epoch);
  add_exact (b, "best", ss.best);
  add_int (b, "num_bad_epochs", ss.num_bad_epochs);
  add_exact (b, "lr", ss.lr);
  json_builder_end_object (b);
  json_builder_set_member_name (b, "num_batches_tracked");
  json_builder_begin_object (b);
  for (int k = 0; k < t->model->n_layers; k++) {
    const BpLayer *l = &t->model->layers[k];
    if (l->spec.kind == BP_LAYER_BATCHNORM1D || l->spec.kind == BP_LAYER_BATCHNORM2D)
      add_int (b, l->spec.id, l->num_batches_tracked);
  }
  json_builder_end_object (b);
  json_builder_end_object (b);
  return builder_to_json (b);
}

gboolean
bp_trainer_save_checkpoint (BpTrainer *t, const char *path, GHashTable *extra, GError **error)
{
  BpNamedTensor *state;
  int n_model = bp_model_state (t->model, &state);
  int n_opt = bp_optimizer_n_state (t->optim);
  int n = n_model + n_opt;
  const char **names = g_new (const char *, MAX (n, 1));
  BpTensor **tensors = g_new (BpTensor *, MAX (n, 1));
  GPtrArray *owned = g_ptr_array_new_with_free_func (g_free);
  for (int k = 0; k < n_model; k++) {
    names[k] = state[k].name;
    tensors[k] = state[k].tensor;
  }
  for (int k = 0; k < n_opt; k++) {
    const char *name;
    tensors[n_model + k] = bp_optimizer_state (t->optim, k, &name);
    char *full = g_strconcat ("optimizer.", name, NULL);
    g_ptr_array_add (owned, full);
    names[n_model + k] = full;
  }
  GHashTable *meta = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  if (extra) {
    GHashTableIter it;
    gpointer key, value;
    g_hash_table_iter_init (&it, extra);
    while (g_hash_table_iter_next (&it, &key, &value))
      g_hash_table_insert (meta, g_strdup (key), g_strdup (value));
  }
  g_hash_table_insert (meta, g_strdup ("format"), g_strdup (BP_CHECKPOINT_FORMAT));
  g_hash_table_insert (meta, g_strdup ("format_version"), g_strdup ("1"));
  g_hash_table_insert (meta, g_strdup ("model_spec"), g_strdup (t->spec_json));
  g_hash_table_insert (meta, g_strdup ("config"), bp_train_config_to_json (&t->config));
  g_hash_table_insert (meta, g_strdup ("trainer_state"), trainer_state_json (t));
  if (t->corpus) {
    char loss[G_ASCII_DTOSTR_BUF_SIZE];
    g_hash_table_insert (meta, g_strdup ("vocab"), bp_vocab_to_chars (t->corpus->vocab));
    g_hash_table_insert (meta, g_strdup ("corpus"), g_strdup (t->config.dataset));
    g_hash_table_insert (meta, g_strdup ("context"),
                         g_strdup_printf ("%" G_GINT64_FORMAT, t->context));
    g_hash_table_insert (meta, g_strdup ("unigram_loss"),
                         g_strdup (g_ascii_formatd (loss, sizeof loss, "%.6f",
                                                    t->corpus->unigram_loss)));
  }
  gboolean ok = bp_safetensors_save (path, n, names, tensors, meta, error);
  g_hash_table_unref (meta);
  g_ptr_array_unref (owned);
  g_free (names);
  g_free (tensors);
  free (state);
  return ok;
}

static gboolean
bad_checkpoint (GError **error, const char *path, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

static gboolean
bad_checkpoint (GError **error, const char *path, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_autofree char *shown = g_filename_display_name (path);
  g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_INVALID, "%s: %s", shown, msg);
  return FALSE;
}

/* Finds `name` in the file with dst's shape; NULL (error set) when missing or different. */
static BpTensor *
find_like (const BpSafetensors *st, const char *path, const char *name, const BpTensor *dst,
           GError **error)
{
  BpTensor *src = bp_safetensors_get (st, name);
  char a[64], b[64];
  if (!src)
    bad_checkpoint (error, path, "it has no tensor \"%s\" (a checkpoint of another model or "
                    "optimizer?)", name);
  else if (!bp_tensor_same_shape (src, dst)) {
    bad_checkpoint (error, path, "tensor \"%s\" has shape %s, the model needs %s", name,
                    bp_shape_str (src, a, sizeof a), bp_shape_str (dst, b, sizeof b));
    src = NULL;
  }
  return src;
}

static gboolean
copy_into (BpTensor *dst, const BpTensor *src, GError **error)
{
  BpStatus s = bp_backend (dst->device)->upload (dst->data, src->data,
                                                 sizeof (float) * (size_t) dst->numel);
  if (s != BP_OK) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_ENGINE, "cannot restore a tensor: %s",
                 bp_last_error ());
    return FALSE;
  }
  return TRUE;
}

static const char *
meta (const BpSafetensors *st, const char *key)
{
  return g_hash_table_lookup (st->metadata, key);
}

/* Checks that the file is a checkpoint; its model state against the model (apply: copies it,
 * num_batches_tracked from the trainer state object ts, which may be NULL). */
static gboolean
restore_model (BpModel *model, const BpSafetensors *st, const char *path, JsonObject *nbt,
               gboolean apply, GError **error)
{
  BpNamedTensor *state;
  int n = bp_model_state (model, &state);
  gboolean ok = TRUE;
  for (int k = 0; k < n && ok; k++) {
    BpTensor *src = find_like (st, path, state[k].name, state[k].tensor, error);
    ok = src && (!apply || copy_into (state[k].tensor, src, error));
  }
  free (state);
  for (int k = 0; k < model->n_layers && ok; k++) {
    BpLayer *l = &model->layers[k];
    if (l->spec.kind != BP_LAYER_BATCHNORM1D && l->spec.kind != BP_LAYER_BATCHNORM2D)
      continue;
    JsonNode *v = nbt && json_object_has_member (nbt, l->spec.id)
                    ? json_object_get_member (nbt, l->spec.id)
                    : NULL;
    if (!v || !JSON_NODE_HOLDS_VALUE (v) || json_node_get_value_type (v) != G_TYPE_INT64 ||
        json_node_get_int (v) < 0)
      ok = bad_checkpoint (error, path, "no num_batches_tracked for \"%s\"", l->spec.id);
    else if (apply)
      l->num_batches_tracked = json_node_get_int (v);
  }
  return ok;
}

static gboolean
check_format (const BpSafetensors *st, const char *path, GError **error)
{
  if (g_strcmp0 (meta (st, "format"), BP_CHECKPOINT_FORMAT) != 0)
    return bad_checkpoint (error, path, "not a Backprop Lab checkpoint (its metadata has no "
                           "\"format\": \"%s\")", BP_CHECKPOINT_FORMAT);
  if (g_strcmp0 (meta (st, "format_version"), "1") != 0)
    return bad_checkpoint (error, path, "format version %s, this program reads version 1",
                           meta (st, "format_version") ? meta (st, "format_version") : "(none)");
  if (!meta (st, "model_spec") || !meta (st, "trainer_state"))
    return bad_checkpoint (error, path, "its metadata lacks the model spec or trainer state");
  return TRUE;
}

static JsonObject *
parse_object (JsonParser *p, const char *text)
{
  if (!text || !json_parser_load_from_data (p, text, -1, NULL) ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (p)))
    return NULL;
  return json_node_get_object (json_parser_get_root (p));
}

static gboolean
get_int (JsonObject *o, const char *key, gint64 min, gint64 *v)
{
  JsonNode *n = json_object_has_member (o, key) ? json_object_get_member (o, key) : NULL;
  if (!n || !JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_INT64)
    return FALSE;
  *v = json_node_get_int (n);
  return *v >= min;
}

static gboolean
get_exact (JsonObject *o, const char *key, double *v)
{
  JsonNode *n = json_object_has_member (o, key) ? json_object_get_member (o, key) : NULL;
  if (!n || !JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING)
    return FALSE;
  const char *s = json_node_get_string (n);
  char *end;
  *v = g_ascii_strtod (s, &end);
  return *s && !*end;
}

gboolean
bp_trainer_load_checkpoint (BpTrainer *t, const char *path, GError **error)
{
  g_autoptr (BpSafetensors) st = bp_safetensors_load (path, error);
  if (!st || !check_format (st, path, error))
    return FALSE;
  g_autofree char *spec = bp_spec_canonical (meta (st, "model_spec"), NULL);
  if (g_strcmp0 (spec ? spec : meta (st, "model_spec"), t->spec_json) != 0)
    return bad_checkpoint (error, path, "it holds another model than %s", t->model->name);

  g_autoptr (JsonParser) p = json_parser_new ();
  JsonObject *ts = parse_object (p, meta (st, "trainer_state"));
  JsonObject *sched = NULL, *nbt = NULL;
  if (ts && json_object_has_member (ts, "scheduler") &&
      JSON_NODE_HOLDS_OBJECT (json_object_get_member (ts, "scheduler")))
    sched = json_object_get_object_member (ts, "scheduler");
  if (ts && json_object_has_member (ts, "num_batches_tracked") &&
      JSON_NODE_HOLDS_OBJECT (json_object_get_member (ts, "num_batches_tracked")))
    nbt = json_object_get_object_member (ts, "num_batches_tracked");
  gint64 epochs_done, epoch_step, global_step, steps_per_epoch, correct, seen, opt_steps, s_epoch,
    s_bad;
  double loss_sum, lr, s_best, s_lr;
  const char *rng = ts && json_object_has_member (ts, "rng") &&
                        JSON_NODE_HOLDS_VALUE (json_object_get_member (ts, "rng"))
                      ? json_object_get_string_member (ts, "rng")
                      : NULL;
  char *rng_end = NULL;
  guint64 rng_state = rng ? g_ascii_strtoull (rng, &rng_end, 10) : 0;
  if (!ts || !sched || !nbt || !get_int (ts, "epochs_done", 0, &epochs_done) ||
      !get_int (ts, "epoch_step", 0, &epoch_step) || !get_int (ts, "global_step", 0, &global_step) ||
      !get_int (ts, "steps_per_epoch", 0, &steps_per_epoch) ||
      !get_int (ts, "correct", 0, &correct) || !get_int (ts, "seen", 0, &seen) ||
      !get_int (ts, "optimizer_steps", 0, &opt_steps) || !get_exact (ts, "loss_sum", &loss_sum) ||
      !get_exact (ts, "lr", &lr) || !rng || !*rng || *rng_end ||
      !get_int (sched, "epoch", 0, &s_epoch) || !get_int (sched, "num_bad_epochs", 0, &s_bad) ||
      !get_exact (sched, "best", &s_best) || !get_exact (sched, "lr", &s_lr) ||
      epochs_done > G_MAXINT / 2 || s_epoch > G_MAXINT / 2 || s_bad > G_MAXINT / 2)
    return bad_checkpoint (error, path, "its trainer state is missing or damaged");
  if (steps_per_epoch != t->steps_per_epoch || epoch_step > steps_per_epoch)
    return bad_checkpoint (error, path,
                           "it was taken with %" G_GINT64_FORMAT " steps per epoch, this "
                           "training has %" G_GINT64_FORMAT " (another batch size or data "
                           "limit?)", steps_per_epoch, t->steps_per_epoch);
  if (t->corpus) {
    g_autofree char *chars = bp_vocab_to_chars (t->corpus->vocab);
    if (g_strcmp0 (meta (st, "vocab"), chars) != 0)
      return bad_checkpoint (error, path, "it was trained on another vocabulary than the "
                             "corpus %s has now (was the text changed?)", t->config.dataset);
  }

  /* check everything, then apply */
  int n_opt = bp_optimizer_n_state (t->optim);
  for (int pass = 0; pass < 2; pass++) {
    gboolean apply = pass == 1;
    if (!restore_model (t->model, st, path, nbt, apply, error))
      return FALSE;
    for (int k = 0; k < n_opt; k++) {
      const char *name;
      BpTensor *dst = bp_optimizer_state (t->optim, k, &name);
      g_autofree char *full = g_strconcat ("optimizer.", name, NULL);
      BpTensor *src = find_like (st, path, full, dst, error);
      if (!src || (apply && !copy_into (dst, src, error)))
        return FALSE;
    }
  }
  bp_rng_set_state (rng_state);
  bp_optimizer_set_step (t->optim, opt_steps);
  BpSchedState ss = {(int) s_epoch, s_best, (int) s_bad, s_lr};
  bp_scheduler_set_state (t->sched, &ss);
  t->sched_lr = bp_optimizer_get_lr (t->optim);
  bp_optimizer_set_lr (t->optim, (float) lr);
  /* a user's change of the lr (absent from checkpoints written before it was kept: 1) */
  double lr_scale = 1.0;
  if (!get_exact (ts, "lr_scale", &lr_scale) || !(lr_scale > 0.0) || !isfinite (lr_scale))
    lr_scale = 1.0;
  t->lr_scale = lr_scale;
  t->epochs_done = (int) epochs_done;
  t->epoch_step = epoch_step;
  t->global_step = global_step;
  t->loss_sum = loss_sum;
  t->correct = correct;
  t->seen = seen;
  return TRUE;
}

BpModel *
bp_checkpoint_load_model (const char *path, char **spec_json, GError **error)
{
  g_autoptr (BpSafetensors) st = bp_safetensors_load (path, error);
  if (!st || !check_format (st, path, error))
    return NULL;
  g_autoptr (GError) local = NULL;
  BpModel *m = bp_spec_build (meta (st, "model_spec"), &local);
  if (!m) {
    bad_checkpoint (error, path, "its model cannot be built: %s", local->message);
    return NULL;
  }
  g_autoptr (JsonParser) p = json_parser_new ();
  JsonObject *ts = parse_object (p, meta (st, "trainer_state"));
  JsonObject *nbt = ts && json_object_has_member (ts, "num_batches_tracked") &&
                        JSON_NODE_HOLDS_OBJECT (json_object_get_member (ts, "num_batches_tracked"))
                      ? json_object_get_object_member (ts, "num_batches_tracked")
                      : NULL;
  if (!restore_model (m, st, path, nbt, FALSE, error) ||
      !restore_model (m, st, path, nbt, TRUE, error)) {
    bp_model_free (m);
    return NULL;
  }
  bp_model_set_training (m, false);
  if (spec_json)
    *spec_json = g_strdup (meta (st, "model_spec"));
  return m;
}

BpModel *
bp_checkpoint_load_language_model (const char *path, BpVocab **vocab, char **corpus,
                                   GError **error)
{
  *vocab = NULL;
  if (corpus)
    *corpus = NULL;
  g_autoptr (BpSafetensors) st = bp_safetensors_load (path, error);
  if (!st || !check_format (st, path, error))
    return NULL;
  const char *chars = meta (st, "vocab");
  if (!chars) {
    g_autofree char *shown = g_filename_display_name (path);
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_MODEL,
                 "%s: not a language model (its metadata has no vocabulary: it was not trained "
                 "on a text corpus)", shown);
    return NULL;
  }
  g_autoptr (GError) local = NULL;
  BpVocab *v = bp_vocab_from_chars (chars, &local);
  if (!v) {
    bad_checkpoint (error, path, "its vocabulary is damaged: %s", local->message);
    return NULL;
  }
  BpModel *m = bp_checkpoint_load_model (path, NULL, error);
  if (!m) {
    bp_vocab_free (v);
    return NULL;
  }
  if (bp_model_vocab_size (m) != bp_vocab_size (v)) {
    bad_checkpoint (error, path, "its model reads %" G_GINT64_FORMAT " token ids but its "
                    "vocabulary has %" G_GINT64_FORMAT, bp_model_vocab_size (m),
                    bp_vocab_size (v));
    bp_model_free (m);
    bp_vocab_free (v);
    return NULL;
  }
  *vocab = v;
  if (corpus)
    *corpus = g_strdup (meta (st, "corpus"));
  return m;
}
