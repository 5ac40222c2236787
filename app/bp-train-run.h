/* bp-train-run.h: one training run on a worker thread, reported to the main loop at frame rate. */
#pragma once

#include <glib-object.h>

#include "bp-text.h"
#include "bp-trainer.h"

G_BEGIN_DECLS

typedef enum {
  BP_TRAIN_STATE_IDLE,     /* created, not started */
  BP_TRAIN_STATE_LOADING,  /* the thread is loading data and building the model */
  BP_TRAIN_STATE_RUNNING,
  BP_TRAIN_STATE_PAUSED,
  BP_TRAIN_STATE_FINISHED, /* all epochs done */
  BP_TRAIN_STATE_STOPPED,  /* stopped by the user */
  BP_TRAIN_STATE_FAILED,   /* an error: see bp_train_run_get_error () */
} BpTrainState;

/* The latest progress, copied to the main thread at each update. */
typedef struct {
  BpTrainState state;
  int epoch, epochs;
  gint64 step, steps_per_epoch, global_step;
  gint64 n_train, n_val, n_test, n_params;
  double loss;              /* last step's loss */
  double lr;
  double images_per_second;
  double active_seconds;    /* training time without pauses */
  double eta_seconds;       /* NaN until known */
  double test_loss, test_accuracy; /* after the run (NaN before) */
  double test_r2;           /* a regression's, after the run (NaN before and otherwise) */
  BpDevice device;          /* where the run trains (known from RUNNING on) */
  gboolean device_fallback; /* "auto" found no usable GPU: device_note says why */
  char device_note[256];
  char step_note[400];      /* on a GPU, how the steps run (bp_trainer_get_step_note) */
} BpTrainProgress;

/* One training step's point for the curves; x counts epochs (epoch 2, step 3 of 10: 1.3). */
typedef struct {
  double x;
  double loss;
  double lr;
} BpTrainPoint;

/* Predictions of the model on a few held-out images (pixels 0..255, one channel). */
typedef struct {
  int n, width, height;
  guint8 *pixels;    /* n * width * height */
  int *predicted, *truth;
  char **class_names; /* n_classes, NULL-terminated */
  int n_classes;
} BpTrainSamples;

/* A classifier's decision regions on a 2-D data set (BpTrainEvent's boundary_* fields): size x
 * size cells over [x0, x1] x [y0, y1], row 0 at y0, n_classes probabilities each, and training
 * points (n_points x 2) with their classes. */
typedef struct {
  int size, n_classes;
  double x0, x1, y0, y1;
  float *probs;
  gint64 n_points;
  float *points, *point_classes;
} BpTrainBoundary;

/* The end of an epoch. */
typedef struct {
  int epoch;
  double x;                  /* = epoch */
  double train_loss, train_accuracy;
  double val_loss, val_accuracy;
  double baseline_loss;      /* language models: the corpus's unigram loss; else NaN */
  double lr;
  double seconds, images_per_second;
  int n_classes;
  gint64 *confusion;         /* n_classes^2 (rows true, columns predicted), or NULL */
  char **class_names;
  BpTask task;               /* a regression's accuracies are NaN: val_r2 is its figure */
  double val_r2;
  BpTrainBoundary *boundary; /* 2-D classification data only, else NULL */
} BpTrainEpoch;

/* Attention weights on the trainer's fixed probe (config.attention_every): n_layers x n_heads x
 * len x len, row-major, query rows and key columns (BpTrainEvent's attn_* fields). */
typedef struct {
  int n_layers, n_heads, len;
  gint64 global_step;
  char **tokens;    /* len, NULL-terminated */
  char **layer_ids; /* n_layers, NULL-terminated */
  float *weights;
} BpTrainAttention;

/* Hooks called ON THE TRAINING THREAD (for the experiment store: one connection per thread).
 * Any may be NULL. `started` runs once the trainer is built (returning FALSE with an error
 * fails the run before it trains: a checkpoint that cannot be resumed); `event` sees every
 * engine event (returning FALSE stops the run); `finished` runs last, with the final state and
 * the error. */
typedef struct {
  gboolean (*started) (BpTrainer *trainer, const BpTrainConfig *config, gpointer user_data,
                       GError **error);
  gboolean (*event) (BpTrainer *trainer, const BpTrainEvent *event, gpointer user_data);
  void (*finished) (BpTrainState state, const GError *error, gpointer user_data);
} BpTrainHooks;

#define BP_TYPE_TRAIN_RUN (bp_train_run_get_type ())
G_DECLARE_FINAL_TYPE (BpTrainRun, bp_train_run, BP, TRAIN_RUN, GObject)

/* config is copied (with its strings). n_samples: images in the prediction grid (0: none). */
BpTrainRun *bp_train_run_new (const BpTrainConfig *config, int n_samples);
const BpTrainConfig *bp_train_run_get_config (BpTrainRun *self);
/* Called on the training thread; set before bp_train_run_start. */
void bp_train_run_set_hooks (BpTrainRun *self, const BpTrainHooks *hooks, gpointer user_data,
                             GDestroyNotify destroy);
/* "auto" (default: the GPU when bp_cuda_init succeeds, else the CPU), "cpu" or "cuda" (the run
 * fails when no GPU can be used). Resolved on the training thread: starting CUDA may take a
 * while. Overrides config->device. */
void bp_train_run_set_device (BpTrainRun *self, const char *device);
/* OpenMP threads of the training thread (0: all cores). */
void bp_train_run_set_num_threads (BpTrainRun *self, int n_threads);

/* Starts the training thread, which holds a reference to the run until ::finished. Signals are emitted on the thread-default main context of the
 * caller, at most every 16 ms: ::steps (GArray of BpTrainPoint), ::epoch (BpTrainEpoch),
 * ::samples (BpTrainSamples), ::attention (BpTrainAttention, the latest only), ::progress,
 * notify::state, then ::finished once. */
void bp_train_run_start (BpTrainRun *self);
/* Pause blocks the training thread after its current step; resume and stop wake it. */
void bp_train_run_pause (BpTrainRun *self);
void bp_train_run_resume (BpTrainRun *self);
void bp_train_run_stop (BpTrainRun *self);
/* The new learning rate is applied by the training thread before its next step (at once when
 * paused; the schedule goes on from it at the next epoch). */
void bp_train_run_set_lr (BpTrainRun *self, double lr);

BpTrainState bp_train_run_get_state (BpTrainRun *self);
gboolean bp_train_run_is_active (BpTrainRun *self);
const BpTrainProgress *bp_train_run_get_progress (BpTrainRun *self);
/* The failure (state FAILED), or NULL. */
const GError *bp_train_run_get_error (BpTrainRun *self);
/* After ::finished (FINISHED or STOPPED) of a run on a text corpus: a copy of the trained model
 * (on the CPU, in eval mode) and the corpus's vocabulary, owned by the run; NULL for other
 * runs. Use it from one thread at a time (text generation runs it on a worker thread). */
BpModel *bp_train_run_get_language_model (BpTrainRun *self, const BpVocab **vocab);
/* Iterates the main context until the training thread has ended. */
void bp_train_run_wait (BpTrainRun *self);

G_END_DECLS
