/* bp-trainer.h: the training loop: data, model, optimizer, schedule, evaluation and events.
 *
 * Two kinds of data: a data set of bp_dataset_names () (bp-dataset.h: "fashion-mnist",
 * "digits", "iris", "wine", "breast-cancer", "diabetes", "two-spirals", "moons"), each with a
 * train and a test split, and a text corpus for a language model: a name of bp_text_corpus_names () ("tang300",
 * "song100", "chinese", "fortunes-zh", "fortunes"), the one-file Chinese ones joined with "+"
 * ("tang300+song100") or "file:PATH" (a user's UTF-8 text file, entries separated by blank
 * lines or '%' lines). For a corpus the model must read character
 * ids (an Input with a vocab_size, e.g. the char-gpt presets) and predict the next character
 * at every position; its vocab_size is set from the corpus's vocabulary and its Input length
 * from config.context. A step trains on batch_size windows of context characters at seeded
 * random positions (bp_text_loader); an "epoch" is steps_per_epoch steps; validation is the
 * mean loss and next-character accuracy over a fixed set of validation windows. There is no
 * test split: the DONE event's test metrics of a corpus are the validation metrics.
 *
 * A data set's model must read its examples (its Input the example shape, e.g. (1, 8, 8) or
 * (64) for digits, (2) for two-spirals; otherwise BP_TRAIN_ERROR_MODEL names both shapes).
 * Classification trains with the cross-entropy on the model's n_classes outputs. Regression
 * ("diabetes": the data set's task is BP_TASK_REGRESSION) trains with the mean squared error on
 * the model's one output per example (shape (1); another output is BP_TRAIN_ERROR_MODEL naming
 * the model, its output shape and the data set), against the standardised target (bp-dataset.h:
 * target_mean and target_std map it back): its losses are MSEs in standard deviations of the
 * target, its accuracies NaN, and its R^2 is in val_r2 / test_r2. */
#pragma once

#include <glib.h>

#include "bp-dataset.h"
#include "bp-nn.h"
#include "bp-optim.h"
#include "bp-text.h"

G_BEGIN_DECLS

#define BP_TRAIN_ERROR (bp_train_error_quark ())
GQuark bp_train_error_quark (void);

typedef enum {
  BP_TRAIN_ERROR_INVALID, /* a bad configuration value */
  BP_TRAIN_ERROR_MODEL,   /* the model cannot be built */
  BP_TRAIN_ERROR_DATA,    /* the data set cannot be loaded */
  BP_TRAIN_ERROR_NUMERIC, /* the loss became NaN or infinite */
  BP_TRAIN_ERROR_ENGINE,  /* an op failed (out of memory, device error) */
  BP_TRAIN_ERROR_DONE,    /* resuming a run that has already trained the epochs asked for */
} BpTrainError;

typedef struct {
  const char *model;      /* preset name, used when model_json is NULL */
  const char *model_json; /* a model spec */
  const char *dataset;    /* a data set of bp_dataset_names () ("fashion-mnist", "digits",
                           * "diabetes", "two-spirals", ...), a text corpus ("tang300", ...)
                           * or "file:PATH" */
  int epochs;
  int64_t batch_size;
  BpOptimConfig optim;
  BpSchedConfig sched;
  float clip_norm;        /* 0: no clipping */
  float label_smoothing;
  uint64_t seed;
  BpDevice device;        /* BP_DEVICE_CUDA: bp_trainer_new starts the backend (bp_cuda_init)
                           * and fails with its reason when it cannot; there is no fallback */
  BpPrecision precision;  /* BP_PRECISION_BF16: the matrix products of training and evaluation
                           * with bfloat16 operands (bp-tensor.h); parameters, optimizer state
                           * and checkpoints stay float32, so a run resumes at either */
  int64_t limit_train;    /* 0: the whole training set */
  int64_t limit_test;     /* 0: the whole test set */
  double val_fraction;    /* share of the (limited) training set held out for validation (a
                           * corpus: of its entries, at most 0.5) */
  int64_t eval_batch_size;
  /* text corpora only (0 for image data) */
  int64_t context;        /* characters per training window; 0: the model's context (its
                           * Input length); shorter than the model's: its Input is shortened */
  int64_t steps_per_epoch; /* 0: about one pass over the training characters,
                           * n_train / (batch_size * context), between 1 and 500 */
  int64_t eval_batches;   /* validation batches of batch_size windows; 0: enough to cover the
                           * validation split about twice, at most 20 */
  /* live attention: every attention_every steps and at the end of every epoch an ATTENTION
   * event with the model's attention weights on a fixed probe (0: off); models without
   * attention nodes get none */
  int64_t attention_every;
} BpTrainConfig;

/* Defaults: simple-cnn on fashion-mnist, 10 epochs, batch 64, Adam 1e-3, seed 1, 10% val. */
BpTrainConfig bp_train_config_default (void);
/* Checks the values a user can get wrong; the message names the option. */
gboolean bp_train_config_check (const BpTrainConfig *config, GError **error);

typedef enum {
  BP_TRAIN_EVENT_START, /* model built, data loaded */
  BP_TRAIN_EVENT_STEP,
  BP_TRAIN_EVENT_EPOCH,
  BP_TRAIN_EVENT_DONE,
  BP_TRAIN_EVENT_ATTENTION, /* config.attention_every: the attention weights on the probe */
} BpTrainEventKind;

typedef struct {
  BpTrainEventKind kind;
  int epoch, epochs;          /* epoch counts from 1 */
  int64_t step, steps_per_epoch, global_step;
  int64_t n_train, n_val, n_test; /* examples; a corpus: characters (n_test = n_val) */
  int64_t n_params;
  double loss;                /* STEP: this batch's loss */
  double accuracy;            /* STEP: this batch's accuracy (arg-max of the logits; a language
                               * model: of the next character at every position; a regression:
                               * NaN) */
  double train_loss, train_accuracy;
  double val_loss, val_accuracy;
  double test_loss, test_accuracy;
  /* regression (task BP_TASK_REGRESSION): the coefficient of determination R^2 = 1 - SSE / SST
   * of the split, SST the squared deviations of the split's targets around their own mean (1 is
   * perfect, 0 is as good as predicting that mean); val_r2 at EPOCH (and DONE: the last
   * epoch's), test_r2 at DONE. NaN for classification and text, and without the split. */
  BpTask task;
  double val_r2, test_r2;
  double lr;
  double seconds;             /* since the start of training (EPOCH: of this epoch) */
  double images_per_second;   /* a language model: characters (tokens) per second */
  /* every event of a text corpus: the loss of the corpus's unigram distribution (the entropy
   * of its training characters, nats), the baseline a model using context must beat; NaN for
   * image data (isfinite (baseline_loss) tells a language model's events apart) */
  double baseline_loss;
  /* EPOCH: the validation confusion matrix, n_classes x n_classes row-major, rows = true
   * class, columns = predicted; valid only during the callback. NULL without a validation set
   * and for a regression (n_classes 0). */
  int n_classes;
  const int64_t *confusion;
  const char *const *class_names;
  /* ATTENTION: the attention nodes (MultiheadAttention, TransformerEncoderLayer) in model
   * order, each run in eval mode without autograd on a fixed probe: the first min (context, 48)
   * characters of the validation split (of the training split when the validation split is
   * too short) for a corpus, the first validation image (its 28 rows as tokens "row 1" ..
   * "row 28") for an image model. attn_weights is attn_layers x attn_heads x attn_len x
   * attn_len, row-major, rows the queries, columns the keys; every row sums to 1 (causal
   * layers: zero above the diagonal). A node with fewer heads than attn_heads (the most of
   * any node) has zero rows for the missing heads. All valid only during the callback. */
  int attn_layers, attn_heads;
  int64_t attn_len;
  const char *const *attn_tokens;
  const char *const *attn_layer_ids;
  const float *attn_weights;
  /* EPOCH and DONE of a classification data set whose examples have exactly 2 values
   * ("two-spirals", "moons"): the model's decision regions, computed after the epoch in eval mode
   * without autograd on the run's device. The grid has boundary_size x boundary_size cells
   * (96) over [boundary_x0, boundary_x1] x [boundary_y0, boundary_y1], the range of the
   * training points (the first and second input value) plus 10% of it on every side, in the
   * model's input units. boundary_probs holds boundary_size^2 x n_classes softmax
   * probabilities, row-major: cell (i, j), row i from y0 upwards, column j from x0 rightwards,
   * at [(i * boundary_size + j) * n_classes + class], the model at the cell's centre
   * (x0 + (j + 0.5) (x1 - x0) / size, y0 + (i + 0.5) (y1 - y0) / size). points (n_points x 2)
   * and point_classes (n_points) are training examples to draw over it: the training split
   * (without the validation examples), at most 2000 spread evenly over it. All valid only
   * during the callback; boundary_size 0 and NULL for other data and other events. */
  int boundary_size;
  double boundary_x0, boundary_x1, boundary_y0, boundary_y1;
  const float *boundary_probs;
  int64_t n_points;
  const float *points;
  const float *point_classes;
} BpTrainEvent;

/* Return FALSE to stop training after this event: the run then ends with DONE at once, with
 * test_loss and test_accuracy NaN (no test pass) unless all the epochs were done. */
typedef gboolean (*BpTrainCallback) (const BpTrainEvent *event, gpointer user_data);

typedef struct BpTrainer BpTrainer;

BpTrainer *bp_trainer_new (const BpTrainConfig *config, GError **error);
void bp_trainer_free (BpTrainer *trainer);
BpModel *bp_trainer_get_model (BpTrainer *trainer);
/* Trains for the configured epochs, calling back after every step and epoch. */
gboolean bp_trainer_run (BpTrainer *trainer, BpTrainCallback callback, gpointer user_data,
                         GError **error);
/* Changes the learning rate; call it from the callback (the training thread), e.g. while a
 * user has paused training. The change survives the schedule: from the next epoch on the lr is
 * the schedule's times lr / (the scheduled lr when it was set), so a constant schedule keeps
 * lr and a step schedule decays from it. Checkpoints keep the change ("lr_scale"). */
void bp_trainer_set_lr (BpTrainer *trainer, float lr);
BpOptimizer *bp_trainer_get_optimizer (BpTrainer *trainer);

/* Loss and accuracy of the model on the test set (a corpus: the validation windows; a
 * regression: the mean squared error, accuracy NaN). */
gboolean bp_trainer_evaluate_test (BpTrainer *trainer, double *loss, double *accuracy,
                                   GError **error);
/* The same with the test R^2 of a regression (NaN otherwise); r2 may be NULL. */
gboolean bp_trainer_evaluate_test_full (BpTrainer *trainer, double *loss, double *accuracy,
                                        double *r2, GError **error);
/* Classification or regression (a text corpus: classification). */
BpTask bp_trainer_get_task (BpTrainer *trainer);

/* How training steps run (set before bp_trainer_run; an execution detail like the thread
 * count: every mode computes the same numbers, so it is not part of the config).
 *   BP_STEP_GRAPH (the default): on a CUDA device, one step at a batch size runs eagerly (it
 *     chooses cuDNN's algorithms and fills the allocator's cache), the next is captured as a
 *     CUDA graph (bp-cuda.h) and from then on every step of that batch size is one replay:
 *     the batch goes into fixed device tensors (the resident training set: only its indices),
 *     the optimizer's host half (bp_optimizer_prepare) runs, the graph is launched and the
 *     loss and the correct count are read back. Other batch sizes (an epoch's last, shorter
 *     batch) run eagerly. When the step cannot be captured (see bp_cuda_capture_end) the
 *     reason goes to the step note and every step runs eagerly. $BP_CUDA_GRAPH=0 makes the
 *     default BP_STEP_EAGER. On the CPU: eager.
 *   BP_STEP_EAGER: every kernel of every step launched one by one (the host reads the loss,
 *     the correct count and the clipping norm back, and checks the targets, every step).
 *   BP_STEP_FIXED: steps the way a graph replays them (fixed input tensors, counters on the
 *     device, the optimizer's two halves, targets checked once) but launched eagerly, on any
 *     device: on the CPU it is what the tests compare with BP_STEP_EAGER. */
typedef enum { BP_STEP_GRAPH, BP_STEP_EAGER, BP_STEP_FIXED } BpStepMode;
void bp_trainer_set_step_mode (BpTrainer *trainer, BpStepMode mode);
/* One line on how the steps ran: "" before any step, e.g. "CUDA graph: step captured at batch
 * 128 (1 dropout mask per replay)" or "CUDA graph off: the step cannot be captured as a CUDA
 * graph: <why>". */
const char *bp_trainer_get_step_note (BpTrainer *trainer);

/* ---- where training stands, checkpoints and resuming ----
 *
 * A trainer remembers how far it got: bp_trainer_run continues from there, so a trainer that
 * loaded a checkpoint (or whose run was stopped by the callback) continues exactly where it
 * was, mid-epoch included. On the CPU the continued run is bit for bit the run that was never
 * stopped: the model state (parameters, batch-norm buffers and num_batches_tracked), the
 * optimizer state, the engine RNG (dropout), the scheduler and the position in the epoch
 * (its data order depends only on seed and epoch; a corpus's windows on seed and the global
 * step) are all saved. */

const BpTrainConfig *bp_trainer_get_config (BpTrainer *trainer);
/* The text corpus being trained on (NULL for image data): its vocabulary, splits and
 * unigram_loss; owned by the trainer. */
const BpTextCorpus *bp_trainer_get_corpus (BpTrainer *trainer);
/* The training window length (the model's Input length) of a corpus run, 0 for image data. */
int64_t bp_trainer_get_context (BpTrainer *trainer);
/* The model spec the model was built from, canonical JSON. */
const char *bp_trainer_get_spec_json (BpTrainer *trainer);
/* Epochs completed; steps done in the epoch in progress (0 at an epoch boundary); steps in
 * all. */
int bp_trainer_get_epochs_done (BpTrainer *trainer);
int64_t bp_trainer_get_epoch_step (BpTrainer *trainer);
int64_t bp_trainer_get_global_step (BpTrainer *trainer);

/* A checkpoint is a safetensors file (engine/store/bp-safetensors.h) with
 *   tensors: the model state under bp_model_state's names ("conv1.weight", "bn1.running_mean")
 *            and the optimizer state as "optimizer.<name>" ("optimizer.param0.exp_avg");
 *   __metadata__: "format" = BP_CHECKPOINT_FORMAT, "format_version" = "1", "model_spec" (the
 *            spec JSON), "config" (bp_train_config_to_json), "trainer_state" (a JSON object:
 *            epochs_done, epoch_step, global_step, the epoch's running sums, rng (a decimal
 *            string), optimizer_steps, lr, scheduler, num_batches_tracked per batch-norm node),
 *            for a text corpus also "vocab" (bp_vocab_to_chars), "corpus" (the dataset
 *            name), "context" (the window length, decimal) and "unigram_loss" ("%.6f"),
 *            plus the caller's extra metadata (may be NULL).
 * Call it from the training thread between steps (in the callback, or after run returns). */
#define BP_CHECKPOINT_FORMAT "backprop-lab-checkpoint"
gboolean bp_trainer_save_checkpoint (BpTrainer *trainer, const char *path, GHashTable *metadata,
                                     GError **error);
/* Restores a checkpoint written by a trainer of the same model (the spec must match) and
 * optimizer; the other settings (epochs, limits) are the new trainer's. The whole file is
 * checked before anything is changed: on an error (BP_SAFETENSORS_ERROR for a damaged file,
 * BP_TRAIN_ERROR_INVALID for a checkpoint of another model or optimizer) the trainer is left
 * as it was. */
gboolean bp_trainer_load_checkpoint (BpTrainer *trainer, const char *path, GError **error);

/* A checkpoint's model (built from its spec, with its saved state, in eval mode) and,
 * optionally, its metadata's model_spec (free both). For inference and export checks. */
BpModel *bp_checkpoint_load_model (const char *path, char **spec_json, GError **error);
/* A language model's checkpoint: its model (as bp_checkpoint_load_model) and vocabulary (from
 * "vocab"); corpus (may be NULL) gets the corpus name. A checkpoint without a vocabulary
 * (a model trained on image data) is BP_TRAIN_ERROR_MODEL. */
BpModel *bp_checkpoint_load_language_model (const char *path, BpVocab **vocab, char **corpus,
                                            GError **error);
/* Whether a dataset name is a text corpus (a corpus name, a join with "+" or "file:PATH"). */
gboolean bp_train_dataset_is_text (const char *dataset);

/* The config as a JSON object (model, dataset, epochs, batch_size, optimizer {...},
 * schedule {...}, clip_norm, label_smoothing, seed, device, precision ("float32" or
 * "bfloat16"; read back also as "fp32" or "bf16"), limit_train, limit_test, val_fraction,
 * eval_batch_size, context, steps_per_epoch, eval_batches, attention_every); model_json is
 * left out (the store keeps the spec apart). */
char *bp_train_config_to_json (const BpTrainConfig *config);
/* Reads such JSON over a config (fields not present keep their value); strings are interned
 * (g_intern_string), so they live as long as the program. */
gboolean bp_train_config_from_json (const char *json, BpTrainConfig *config, GError **error);
const char *bp_optim_kind_name (BpOptimKind kind);
const char *bp_sched_kind_name (BpSchedKind kind);

G_END_DECLS
