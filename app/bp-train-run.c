/* bp-train-run.c: BpTrainRun runs BpTrainer on a GThread; the thread writes a mutex-protected
 * shared state and a 16 ms main-loop timeout drains it into signals, so the window never waits. */
#include "config.h"

#include "bp-train-run.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <glib/gi18n.h>

#include "bp-backend.h"
#include "bp-dataset.h"
#include "bp-spec.h"
#include "bp-tensor.h"
#include "cuda/bp-cuda.h"

#define POLL_INTERVAL_MS 16
/* Niceness of the training thread and its OpenMP workers: the window stays responsive while
 * they use every core. */
#define TRAIN_NICE 10

struct _BpTrainRun {
  GObject parent_instance;

  /* set before start, then read-only */
  BpTrainConfig config;
  char *model, *model_json, *dataset;
  int n_samples;
  int n_threads;
  char *device_choice;
  BpTrainHooks hooks;
  gpointer hooks_data;
  GDestroyNotify hooks_destroy;

  GThread *thread;
  guint poll_id;

  /* main thread only: the state last reported */
  BpTrainProgress progress;
  GError *error;
  gboolean finished;

  /* shared with the training thread, under lock */
  GMutex lock;
  GCond cond;
  gboolean pause_requested, stop_requested;
  double pending_lr;       /* NaN: none */
  double lr_scale;         /* user's lr / scheduled lr, re-applied after each schedule step */
  BpTrainProgress shared;
  gboolean dirty;
  GArray *new_points;      /* BpTrainPoint */
  GPtrArray *new_epochs;   /* BpTrainEpoch */
  BpTrainSamples *new_samples;
  BpTrainAttention *new_attention;
  gboolean done;
  BpTrainState final_state;
  GError *final_error;

  /* the trained language model, written by the thread before it ends */
  BpModel *lm_model;
  BpVocab *lm_vocab;

  /* training thread only */
  BpTrainer *trainer;
  BpDataset *samples_set;
  gint64 t_start, paused_us;
};

G_DEFINE_FINAL_TYPE (BpTrainRun, bp_train_run, G_TYPE_OBJECT)

enum { PROP_0, PROP_STATE, N_PROPS };
static GParamSpec *properties[N_PROPS];

enum { STEPS, EPOCH, SAMPLES, ATTENTION, PROGRESS, FINISHED, N_SIGNALS };
static guint signals[N_SIGNALS];

static void
epoch_free (gpointer data)
{
  BpTrainEpoch *e = data;
  if (e->boundary) {
    g_free (e->boundary->probs);
    g_free (e->boundary->points);
    g_free (e->boundary->point_classes);
    g_free (e->boundary);
  }
  g_free (e->confusion);
  g_strfreev (e->class_names);
  g_free (e);
}

static void
samples_free (BpTrainSamples *s)
{
  if (!s)
    return;
  g_free (s->pixels);
  g_free (s->predicted);
  g_free (s->truth);
  g_strfreev (s->class_names);
  g_free (s);
}

static void
attention_free (BpTrainAttention *a)
{
  if (!a)
    return;
  g_strfreev (a->tokens);
  g_strfreev (a->layer_ids);
  g_free (a->weights);
  g_free (a);
}

static BpTrainAttention *
attention_copy (const BpTrainEvent *ev)
{
  BpTrainAttention *a = g_new0 (BpTrainAttention, 1);
  a->n_layers = ev->attn_layers;
  a->n_heads = ev->attn_heads;
  a->len = (int) ev->attn_len;
  a->global_step = ev->global_step;
  a->tokens = g_strdupv ((char **) ev->attn_tokens);
  a->layer_ids = g_strdupv ((char **) ev->attn_layer_ids);
  a->weights = g_memdup2 (ev->attn_weights, sizeof (float) * (gsize) a->n_layers * a->n_heads *
                                              (gsize) a->len * a->len);
  return a;
}

static void
progress_reset (BpTrainProgress *p)
{
  *p = (BpTrainProgress) {
    .state = BP_TRAIN_STATE_IDLE,
    .loss = NAN,
    .lr = NAN,
    .eta_seconds = NAN,
    .test_loss = NAN,
    .test_accuracy = NAN,
    .test_r2 = NAN,
  };
}

/* ---- training thread ---- */

/* The model's predictions on the held-out sample images, in eval mode without gradients. */
static BpTrainSamples *
predict_samples (BpTrainRun *self)
{
  BpDataset *ds = self->samples_set;
  BpModel *model = bp_trainer_get_model (self->trainer);
  int64_t shape[BP_MAX_DIMS + 1] = {ds->n};
  for (int d = 0; d < ds->example_ndim; d++)
    shape[d + 1] = ds->example_shape[d];
  BpTensor *x = bp_tensor_from_data (ds->example_ndim + 1, shape, ds->x);
  if (!x)
    return NULL;
  BpTensor *xd = model->device == BP_DEVICE_CPU ? bp_tensor_ref (x) : bp_tensor_to (x, model->device);
  bool was_grad = bp_set_grad_enabled (false);
  bool was_training = model->training;
  bp_model_set_training (model, false);
  BpTensor *logits = xd ? bp_model_forward (model, xd) : NULL;
  bp_model_set_training (model, was_training);
  bp_set_grad_enabled (was_grad);
  BpTensor *host = logits && logits->device != BP_DEVICE_CPU ? bp_tensor_to (logits, BP_DEVICE_CPU)
                                                             : NULL;
  const BpTensor *l = host ? host : logits;
  BpTrainSamples *s = NULL;
  if (l) {
    int64_t c = l->shape[l->ndim - 1];
    s = g_new0 (BpTrainSamples, 1);
    s->n = (int) ds->n;
    s->width = (int) ds->example_shape[ds->example_ndim - 1];
    s->height = ds->example_ndim >= 2 ? (int) ds->example_shape[ds->example_ndim - 2] : 1;
    s->pixels = g_new (guint8, (gsize) s->n * s->width * s->height);
    s->predicted = g_new (int, s->n);
    s->truth = g_new (int, s->n);
    s->n_classes = ds->n_classes;
    s->class_names = g_strdupv (ds->class_names);
    for (int i = 0; i < s->n; i++) {
      int64_t best = 0;
      for (int64_t j = 1; j < c; j++)
        if (l->data[i * c + j] > l->data[i * c + best])
          best = j;
      s->predicted[i] = (int) best;
      s->truth[i] = (int) ds->y[i];
      /* the first channel, back from the normalisation to 0..255 */
      const float *src = ds->x + (gsize) i * ds->example_numel;
      guint8 *dst = s->pixels + (gsize) i * s->width * s->height;
      for (int p = 0; p < s->width * s->height; p++) {
        double v = ((double) src[p] * ds->std + ds->mean) * 255.0;
        dst[p] = (guint8) CLAMP (lround (v), 0, 255);
      }
    }
  }
  bp_tensor_unref (host);
  bp_tensor_unref (logits);
  bp_tensor_unref (xd);
  bp_tensor_unref (x);
  return s;
}

/* Under lock: a learning rate the user set goes to the optimizer. */
static void
apply_pending_lr (BpTrainRun *self)
{
  if (isnan (self->pending_lr))
    return;
  BpOptimizer *opt = bp_trainer_get_optimizer (self->trainer);
  double scheduled = bp_optimizer_get_lr (opt) / self->lr_scale;
  bp_trainer_set_lr (self->trainer, (float) self->pending_lr);
  self->lr_scale = scheduled > 0.0 ? self->pending_lr / scheduled : 1.0;
  self->shared.lr = self->pending_lr;
  self->pending_lr = NAN;
  self->dirty = TRUE;
}

static gboolean
train_callback (const BpTrainEvent *ev, gpointer data)
{
  BpTrainRun *self = data;
  gboolean go_on = TRUE;
  if (self->hooks.event)
    go_on = self->hooks.event (self->trainer, ev, self->hooks_data);
  BpTrainSamples *samples = NULL;
  if (self->samples_set && (ev->kind == BP_TRAIN_EVENT_START || ev->kind == BP_TRAIN_EVENT_EPOCH))
    samples = predict_samples (self);
  gint64 now = g_get_monotonic_time ();
  if (ev->kind == BP_TRAIN_EVENT_START)
    self->t_start = now;
  /* the schedule just set this epoch's lr: keep the user's change in proportion to it */
  if (ev->kind == BP_TRAIN_EVENT_EPOCH && self->lr_scale != 1.0) {
    BpOptimizer *opt = bp_trainer_get_optimizer (self->trainer);
    bp_trainer_set_lr (self->trainer, (float) (bp_optimizer_get_lr (opt) * self->lr_scale));
  }

  g_mutex_lock (&self->lock);
  BpTrainProgress *p = &self->shared;
  p->epochs = ev->epochs;
  p->steps_per_epoch = ev->steps_per_epoch;
  p->n_train = ev->n_train;
  p->n_val = ev->n_val;
  p->n_test = ev->n_test;
  p->n_params = ev->n_params;
  switch (ev->kind) {
  case BP_TRAIN_EVENT_START:
    p->state = BP_TRAIN_STATE_RUNNING;
    p->lr = ev->lr;
    break;
  case BP_TRAIN_EVENT_STEP: {
    p->epoch = ev->epoch;
    p->step = ev->step;
    p->global_step = ev->global_step;
    p->loss = ev->loss;
    p->lr = ev->lr;
    p->images_per_second = ev->images_per_second;
    BpTrainPoint point = {
      .x = (ev->epoch - 1) + (double) ev->step / (double) MAX (ev->steps_per_epoch, 1),
      .loss = ev->loss,
      .lr = ev->lr,
    };
    g_array_append_val (self->new_points, point);
    break;
  }
  case BP_TRAIN_EVENT_EPOCH: {
    BpTrainEpoch *e = g_new0 (BpTrainEpoch, 1);
    e->epoch = ev->epoch;
    e->x = ev->epoch;
    e->train_loss = ev->train_loss;
    e->train_accuracy = ev->train_accuracy;
    e->val_loss = ev->val_loss;
    e->val_accuracy = ev->val_accuracy;
    e->baseline_loss = ev->baseline_loss;
    e->lr = ev->lr;
    e->seconds = ev->seconds;
    e->images_per_second = ev->images_per_second;
    e->n_classes = ev->n_classes;
    if (ev->confusion)
      e->confusion = g_memdup2 (ev->confusion, sizeof (gint64) * (gsize) ev->n_classes *
                                                 (gsize) ev->n_classes);
    if (ev->class_names)
      e->class_names = g_strdupv ((char **) ev->class_names);
    e->task = ev->task;
    e->val_r2 = ev->val_r2;
    if (ev->boundary_size > 0 && ev->boundary_probs && ev->n_classes > 0) {
      BpTrainBoundary *b = g_new0 (BpTrainBoundary, 1);
      gsize cells = (gsize) ev->boundary_size * (gsize) ev->boundary_size;
      b->size = ev->boundary_size;
      b->n_classes = ev->n_classes;
      b->x0 = ev->boundary_x0;
      b->x1 = ev->boundary_x1;
      b->y0 = ev->boundary_y0;
      b->y1 = ev->boundary_y1;
      b->probs = g_memdup2 (ev->boundary_probs, sizeof (float) * cells * (gsize) ev->n_classes);
      if (ev->n_points > 0 && ev->points) {
        b->n_points = ev->n_points;
        b->points = g_memdup2 (ev->points, sizeof (float) * 2 * (gsize) ev->n_points);
        if (ev->point_classes)
          b->point_classes = g_memdup2 (ev->point_classes, sizeof (float) * (gsize) ev->n_points);
      }
      e->boundary = b;
    }
    g_ptr_array_add (self->new_epochs, e);
    p->lr = bp_optimizer_get_lr (bp_trainer_get_optimizer (self->trainer));
    break;
  }
  case BP_TRAIN_EVENT_DONE:
    p->test_loss = ev->test_loss;
    p->test_accuracy = ev->test_accuracy;
    p->test_r2 = ev->test_r2;
    break;
  case BP_TRAIN_EVENT_ATTENTION:
    if (ev->attn_layers > 0 && ev->attn_heads > 0 && ev->attn_len > 0 && ev->attn_weights) {
      attention_free (self->new_attention);
      self->new_attention = attention_copy (ev);
    }
    break;
  }
  if (samples) {
    samples_free (self->new_samples);
    self->new_samples = samples;
  }
  g_strlcpy (p->step_note, bp_trainer_get_step_note (self->trainer), sizeof p->step_note);
  p->active_seconds = (double) (now - self->t_start - self->paused_us) / 1e6;
  gint64 total = (gint64) ev->epochs * ev->steps_per_epoch;
  if (ev->global_step > 0 && total > 0)
    p->eta_seconds = p->active_seconds / (double) ev->global_step *
                     (double) MAX (total - ev->global_step, 0);
  self->dirty = TRUE;

  /* Pause: wait here, applying learning rate changes, until resumed or stopped. */
  if (self->pause_requested && !self->stop_requested && ev->kind != BP_TRAIN_EVENT_DONE) {
    gint64 t0 = g_get_monotonic_time ();
    p->state = BP_TRAIN_STATE_PAUSED;
    while (self->pause_requested && !self->stop_requested) {
      apply_pending_lr (self);
      g_cond_wait (&self->cond, &self->lock);
    }
    self->paused_us += g_get_monotonic_time () - t0;
    p->state = BP_TRAIN_STATE_RUNNING;
    self->dirty = TRUE;
  }
  apply_pending_lr (self);
  go_on = go_on && !self->stop_requested;
  g_mutex_unlock (&self->lock);
  return go_on;
}

/* A CPU copy of the trained language model (eval mode) and of the corpus's vocabulary, for
 * generating text after the thread has ended. */
static void
keep_language_model (BpTrainRun *self)
{
  const BpTextCorpus *corpus = bp_trainer_get_corpus (self->trainer);
  if (!corpus)
    return;
  g_autoptr (GError) error = NULL;
  BpModel *src = bp_trainer_get_model (self->trainer);
  BpModel *m = bp_spec_build (bp_trainer_get_spec_json (self->trainer), &error);
  if (!m)
    return;
  BpNamedTensor *from, *to;
  int n_from = bp_model_state (src, &from), n_to = bp_model_state (m, &to);
  gboolean ok = n_from == n_to;
  for (int k = 0; ok && k < n_to; k++) {
    BpTensor *s = from[k].tensor, *d = to[k].tensor;
    BpTensor *host = s->device == BP_DEVICE_CPU ? bp_tensor_ref (s) : bp_tensor_to (s, BP_DEVICE_CPU);
    ok = host && host->numel == d->numel;
    if (ok)
      memcpy (d->data, host->data, sizeof (float) * (gsize) d->numel);
    bp_tensor_unref (host);
  }
  free (from);
  free (to);
  g_autofree char *chars = bp_vocab_to_chars (corpus->vocab);
  BpVocab *vocab = ok ? bp_vocab_from_chars (chars, NULL) : NULL;
  if (!vocab) {
    bp_model_free (m);
    return;
  }
  bp_model_set_training (m, false);
  self->lm_model = m;
  self->lm_vocab = vocab;
}

/* Resolves the device choice ("auto", "cpu", "cuda") into config.device; FALSE when CUDA was
 * asked for and cannot be used. */
static gboolean
resolve_device (BpTrainRun *self, GError **error)
{
  const char *choice = self->device_choice ? self->device_choice : "auto";
  gboolean fallback = FALSE;
  char why[256] = "";
  BpDevice device = BP_DEVICE_CPU;
  if (!g_str_equal (choice, "cpu")) {
    if (bp_cuda_init (why, sizeof why) == BP_OK) {
      const BpBackend *be = bp_backend (BP_DEVICE_CUDA);
      if (be && be->eltwise && be->conv && be->norm && be->loss && be->optim)
        device = BP_DEVICE_CUDA;
      else
        g_strlcpy (why, "the CUDA backend has no training kernels yet", sizeof why);
    }
    if (device == BP_DEVICE_CPU && g_str_equal (choice, "cuda")) {
      g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_INVALID,
                   _("The CUDA GPU cannot be used (%s). Choose the CPU or the automatic device."),
                   why);
      return FALSE;
    }
    fallback = device == BP_DEVICE_CPU;
  }
  self->config.device = device;
  g_mutex_lock (&self->lock);
  self->shared.device = device;
  self->shared.device_fallback = fallback;
  g_strlcpy (self->shared.device_note, fallback ? why : "", sizeof self->shared.device_note);
  self->dirty = TRUE;
  g_mutex_unlock (&self->lock);
  return TRUE;
}

static gpointer
train_thread (gpointer data)
{
  BpTrainRun *self = data;
  g_autoptr (GError) error = NULL;
#ifdef __linux__
  /* per thread on Linux; the OpenMP workers this thread starts inherit it */
  setpriority (PRIO_PROCESS, (id_t) syscall (SYS_gettid), TRAIN_NICE);
#endif
  bp_set_num_threads (self->n_threads);
  if (resolve_device (self, &error))
    self->trainer = bp_trainer_new (&self->config, &error);
  gboolean ok = FALSE;
  if (self->trainer) {
    const BpDatasetInfo *info = bp_dataset_info (self->config.dataset);
    if (self->n_samples > 0 && info && info->kind == BP_DATASET_IMAGES) {
      BpDatasetOptions o = BP_DATASET_OPTIONS_INIT;
      o.limit = self->n_samples;
      /* the grid is a nicety: without it training goes on */
      self->samples_set = bp_dataset_load_full (self->config.dataset, "test", &o, NULL);
    }
    if (!self->hooks.started || self->hooks.started (self->trainer, &self->config,
                                                      self->hooks_data, &error))
      ok = bp_trainer_run (self->trainer, train_callback, self, &error);
  }
  g_mutex_lock (&self->lock);
  BpTrainState state = !ok ? BP_TRAIN_STATE_FAILED
                       : self->stop_requested ? BP_TRAIN_STATE_STOPPED
                                              : BP_TRAIN_STATE_FINISHED;
  g_mutex_unlock (&self->lock);
  if (ok)
    keep_language_model (self); /* read by the main thread only after the thread is joined */
  if (self->hooks.finished)
    self->hooks.finished (state, error, self->hooks_data);
  if (self->samples_set)
    bp_dataset_unref (self->samples_set);
  self->samples_set = NULL;
  bp_trainer_free (self->trainer);
  self->trainer = NULL;

  g_mutex_lock (&self->lock);
  self->final_state = state;
  self->final_error = g_steal_pointer (&error);
  self->shared.state = state;
  self->done = TRUE;
  self->dirty = TRUE;
  g_mutex_unlock (&self->lock);
  return NULL;
}

/* ---- main thread ---- */

static void
set_state (BpTrainRun *self, BpTrainState state)
{
  if (self->progress.state == state)
    return;
  self->progress.state = state;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
}

static gboolean
poll_cb (gpointer data)
{
  BpTrainRun *self = data;
  g_mutex_lock (&self->lock);
  if (!self->dirty) {
    g_mutex_unlock (&self->lock);
    return G_SOURCE_CONTINUE;
  }
  GArray *points = self->new_points;
  self->new_points = g_array_new (FALSE, FALSE, sizeof (BpTrainPoint));
  GPtrArray *epochs = self->new_epochs;
  self->new_epochs = g_ptr_array_new_with_free_func (epoch_free);
  BpTrainSamples *samples = g_steal_pointer (&self->new_samples);
  BpTrainAttention *attention = g_steal_pointer (&self->new_attention);
  BpTrainProgress progress = self->shared;
  gboolean done = self->done;
  GError *error = g_steal_pointer (&self->final_error);
  self->dirty = FALSE;
  g_mutex_unlock (&self->lock);

  g_object_ref (self);
  BpTrainState state = progress.state;
  progress.state = self->progress.state;
  self->progress = progress;
  if (points->len > 0)
    g_signal_emit (self, signals[STEPS], 0, points);
  for (guint i = 0; i < epochs->len; i++)
    g_signal_emit (self, signals[EPOCH], 0, g_ptr_array_index (epochs, i));
  if (samples)
    g_signal_emit (self, signals[SAMPLES], 0, samples);
  if (attention)
    g_signal_emit (self, signals[ATTENTION], 0, attention);
  if (error)
    self->error = error;
  set_state (self, state);
  g_signal_emit (self, signals[PROGRESS], 0);
  if (done) {
    g_thread_join (self->thread);
    self->thread = NULL;
    self->poll_id = 0;
    self->finished = TRUE;
    g_signal_emit (self, signals[FINISHED], 0);
    g_object_unref (self); /* the reference of the running thread */
  }
  g_array_unref (points);
  g_ptr_array_unref (epochs);
  samples_free (samples);
  attention_free (attention);
  g_object_unref (self);
  return done ? G_SOURCE_REMOVE : G_SOURCE_CONTINUE;
}

static void
bp_train_run_dispose (GObject *object)
{
  BpTrainRun *self = BP_TRAIN_RUN (object);
  if (self->thread) {
    bp_train_run_stop (self);
    g_thread_join (self->thread);
    self->thread = NULL;
  }
  g_clear_handle_id (&self->poll_id, g_source_remove);
  if (self->hooks_destroy && self->hooks_data)
    self->hooks_destroy (self->hooks_data);
  self->hooks_destroy = NULL;
  self->hooks_data = NULL;
  G_OBJECT_CLASS (bp_train_run_parent_class)->dispose (object);
}

static void
bp_train_run_finalize (GObject *object)
{
  BpTrainRun *self = BP_TRAIN_RUN (object);
  g_free (self->model);
  g_free (self->model_json);
  g_free (self->dataset);
  g_free (self->device_choice);
  g_clear_error (&self->error);
  g_clear_error (&self->final_error);
  g_array_unref (self->new_points);
  g_ptr_array_unref (self->new_epochs);
  samples_free (self->new_samples);
  attention_free (self->new_attention);
  if (self->lm_model)
    bp_model_free (self->lm_model);
  if (self->lm_vocab)
    bp_vocab_free (self->lm_vocab);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->cond);
  G_OBJECT_CLASS (bp_train_run_parent_class)->finalize (object);
}

static void
bp_train_run_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  BpTrainRun *self = BP_TRAIN_RUN (object);
  switch (prop_id) {
  case PROP_STATE: g_value_set_int (value, self->progress.state); break;
  default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
}

static void
bp_train_run_class_init (BpTrainRunClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  object_class->dispose = bp_train_run_dispose;
  object_class->finalize = bp_train_run_finalize;
  object_class->get_property = bp_train_run_get_property;

  properties[PROP_STATE] = g_param_spec_int ("state", NULL, NULL, BP_TRAIN_STATE_IDLE,
                                             BP_TRAIN_STATE_FAILED, BP_TRAIN_STATE_IDLE,
                                             G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY |
                                             G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /* New step points (GArray of BpTrainPoint, valid during the emission). */
  signals[STEPS] = g_signal_new ("steps", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL,
                                 NULL, NULL, G_TYPE_NONE, 1, G_TYPE_POINTER);
  /* An epoch ended (BpTrainEpoch, valid during the emission). */
  signals[EPOCH] = g_signal_new ("epoch", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL,
                                 NULL, NULL, G_TYPE_NONE, 1, G_TYPE_POINTER);
  /* New predictions on the sample images (BpTrainSamples, valid during the emission). */
  signals[SAMPLES] = g_signal_new ("samples", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                                   NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_POINTER);
  /* New attention weights on the probe (BpTrainAttention, valid during the emission). */
  signals[ATTENTION] = g_signal_new ("attention", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                     0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_POINTER);
  /* bp_train_run_get_progress () changed. */
  signals[PROGRESS] = g_signal_new ("progress", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                                    NULL, NULL, NULL, G_TYPE_NONE, 0);
  /* The thread has ended: the state is FINISHED, STOPPED or FAILED. */
  signals[FINISHED] = g_signal_new ("finished", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                                    NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static void
bp_train_run_init (BpTrainRun *self)
{
  g_mutex_init (&self->lock);
  g_cond_init (&self->cond);
  self->pending_lr = NAN;
  self->lr_scale = 1.0;
  self->new_points = g_array_new (FALSE, FALSE, sizeof (BpTrainPoint));
  self->new_epochs = g_ptr_array_new_with_free_func (epoch_free);
  progress_reset (&self->progress);
  progress_reset (&self->shared);
}

BpTrainRun *
bp_train_run_new (const BpTrainConfig *config, int n_samples)
{
  g_return_val_if_fail (config != NULL, NULL);
  BpTrainRun *self = g_object_new (BP_TYPE_TRAIN_RUN, NULL);
  self->config = *config;
  self->model = g_strdup (config->model);
  self->model_json = g_strdup (config->model_json);
  self->dataset = g_strdup (config->dataset);
  self->config.model = self->model;
  self->config.model_json = self->model_json;
  self->config.dataset = self->dataset;
  self->n_samples = MAX (n_samples, 0);
  self->progress.epochs = self->shared.epochs = config->epochs;
  self->progress.lr = self->shared.lr = config->optim.lr;
  self->progress.device = self->shared.device = config->device;
  self->device_choice = g_strdup (config->device == BP_DEVICE_CUDA ? "cuda" : "cpu");
  return self;
}

const BpTrainConfig *
bp_train_run_get_config (BpTrainRun *self)
{
  g_return_val_if_fail (BP_IS_TRAIN_RUN (self), NULL);
  return &self->config;
}

void
bp_train_run_set_hooks (BpTrainRun *self, const BpTrainHooks *hooks, gpointer user_data,
                        GDestroyNotify destroy)
{
  g_return_if_fail (BP_IS_TRAIN_RUN (self));
  g_return_if_fail (self->thread == NULL && !self->finished);
  if (self->hooks_destroy && self->hooks_data)
    self->hooks_destroy (self->hooks_data);
  self->hooks = hooks ? *hooks : (BpTrainHooks) {0};
  self->hooks_data = user_data;
  self->hooks_destroy = destroy;
}

void
bp_train_run_set_device (BpTrainRun *self, const char *device)
{
  g_return_if_fail (BP_IS_TRAIN_RUN (self));
  g_return_if_fail (g_strcmp0 (device, "auto") == 0 || g_strcmp0 (device, "cpu") == 0 ||
                    g_strcmp0 (device, "cuda") == 0);
  g_return_if_fail (self->thread == NULL && !self->finished);
  g_free (self->device_choice);
  self->device_choice = g_strdup (device);
}

void
bp_train_run_set_num_threads (BpTrainRun *self, int n_threads)
{
  g_return_if_fail (BP_IS_TRAIN_RUN (self));
  self->n_threads = MAX (n_threads, 0);
}

void
bp_train_run_start (BpTrainRun *self)
{
  g_return_if_fail (BP_IS_TRAIN_RUN (self));
  g_return_if_fail (self->thread == NULL && !self->finished);
  self->shared.state = BP_TRAIN_STATE_LOADING;
  set_state (self, BP_TRAIN_STATE_LOADING);
  /* A running thread keeps the run alive: whoever drops the run while it trains (a closed
   * window) stops it and returns at once; the run ends in the background. */
  g_object_ref (self);
  self->thread = g_thread_new ("bp-train", train_thread, self);
  self->poll_id = g_timeout_add (POLL_INTERVAL_MS, poll_cb, self);
}

void
bp_train_run_pause (BpTrainRun *self)
{
  g_return_if_fail (BP_IS_TRAIN_RUN (self));
  g_mutex_lock (&self->lock);
  self->pause_requested = TRUE;
  g_mutex_unlock (&self->lock);
}

void
bp_train_run_resume (BpTrainRun *self)
{
  g_return_if_fail (BP_IS_TRAIN_RUN (self));
  g_mutex_lock (&self->lock);
  self->pause_requested = FALSE;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
}

void
bp_train_run_stop (BpTrainRun *self)
{
  g_return_if_fail (BP_IS_TRAIN_RUN (self));
  g_mutex_lock (&self->lock);
  self->stop_requested = TRUE;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
}

void
bp_train_run_set_lr (BpTrainRun *self, double lr)
{
  g_return_if_fail (BP_IS_TRAIN_RUN (self));
  g_return_if_fail (lr > 0.0 && isfinite (lr));
  g_mutex_lock (&self->lock);
  self->pending_lr = lr;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
}

BpTrainState
bp_train_run_get_state (BpTrainRun *self)
{
  g_return_val_if_fail (BP_IS_TRAIN_RUN (self), BP_TRAIN_STATE_IDLE);
  return self->progress.state;
}

gboolean
bp_train_run_is_active (BpTrainRun *self)
{
  g_return_val_if_fail (BP_IS_TRAIN_RUN (self), FALSE);
  return self->thread != NULL;
}

const BpTrainProgress *
bp_train_run_get_progress (BpTrainRun *self)
{
  g_return_val_if_fail (BP_IS_TRAIN_RUN (self), NULL);
  return &self->progress;
}

const GError *
bp_train_run_get_error (BpTrainRun *self)
{
  g_return_val_if_fail (BP_IS_TRAIN_RUN (self), NULL);
  return self->error;
}

BpModel *
bp_train_run_get_language_model (BpTrainRun *self, const BpVocab **vocab)
{
  g_return_val_if_fail (BP_IS_TRAIN_RUN (self), NULL);
  if (vocab)
    *vocab = self->finished ? self->lm_vocab : NULL;
  return self->finished ? self->lm_model : NULL;
}

void
bp_train_run_wait (BpTrainRun *self)
{
  g_return_if_fail (BP_IS_TRAIN_RUN (self));
  while (self->thread)
    g_main_context_iteration (NULL, TRUE);
}
