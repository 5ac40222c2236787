/* bp-recorder.h: keeps a training run in the experiment store: the run row, its metrics in
 * batched transactions, checkpoints (every N epochs, the best, at the end) and its final
 * status; and resumes a stored run from its newest checkpoint. Used by the CLI and the GUI.
 *
 *   BpStore *store = bp_store_open (NULL, &error);          // in the training thread
 *   BpTrainer *trainer = bp_trainer_new (&config, &error);
 *   BpRecorder *rec = bp_recorder_new (store, trainer, &options, &error);
 *   // in the trainer callback:  if (!bp_recorder_event (rec, event, &error)) return FALSE;
 *   gboolean ok = bp_trainer_run (trainer, callback, ..., &train_error);
 *   bp_recorder_finish (rec, ok ? (complete ? FINISHED : STOPPED) : FAILED, reason, &error);
 *   bp_recorder_free (rec); bp_trainer_free (trainer); bp_store_close (store);
 *
 * What is written (split/name, at the global step and epoch of the event):
 *   every step         train/loss                         (flushed every flush_steps steps or
 *                                                          flush_ms, whichever comes first)
 *   every epoch        train/epoch_loss, train/epoch_accuracy, train/lr, train/images_per_second,
 *                      train/epoch_seconds, val/loss, val/accuracy (without a validation set: none)
 *   at the end         test/loss, test/accuracy
 * A regression's run (a data set whose task is BP_TASK_REGRESSION, e.g. "diabetes") has
 * val/r2 and test/r2 (BP_METRIC_R2, the coefficient of determination) instead of val/accuracy
 * and test/accuracy, no train/epoch_accuracy, and its loss metrics are mean squared errors on
 * the standardised target; its best checkpoint is the one of the best validation R².
 * A language model's run (a text corpus): images_per_second holds characters per second,
 * val/accuracy and test/accuracy next-character accuracy, test/ the validation windows'
 * metrics (a corpus has no test split); its config also keeps the corpus's vocab_size,
 * train_characters, val_characters and unigram_loss. ATTENTION events are not stored.
 * Checkpoints (bp_trainer_save_checkpoint, with "run_id" in the metadata) go to the store's
 * checkpoints/<run id>/ folder: after every checkpoint_every-th epoch, after an epoch whose
 * validation accuracy is the best so far (flagged best), and at the end of a finished or
 * stopped run; then all but the keep_checkpoints newest and the best are removed. */
#pragma once

#include <glib.h>

#include "bp-store.h"
#include "bp-trainer.h"

G_BEGIN_DECLS

/* Per-epoch metric names besides the store's BP_METRIC_* */
#define BP_METRIC_EPOCH_LOSS "epoch_loss"
#define BP_METRIC_EPOCH_ACCURACY "epoch_accuracy"
#define BP_METRIC_IMAGES_PER_SECOND "images_per_second"
#define BP_METRIC_EPOCH_SECONDS "epoch_seconds"
#define BP_METRIC_R2 "r2" /* val/ and test/ of a regression */

typedef struct {
  const char *name;         /* the run's name; NULL: the model's name */
  const char *const *tags;  /* NULL-terminated, may be NULL */
  int checkpoint_every;     /* epochs between checkpoints; 0: only the best and the end */
  int keep_checkpoints;     /* newest checkpoints kept besides the best, >= 1 */
  int flush_steps;          /* step points per transaction at most */
  int flush_ms;             /* and at most this long unwritten */
  int threads;              /* recorded in the config (0: bp_get_num_threads ()) */
} BpRecorderOptions;

#define BP_RECORDER_OPTIONS_INIT {NULL, NULL, 1, 3, 20, 1000, 0}

typedef struct BpRecorder BpRecorder;

/* Creates a run for the trainer's model and config (status running). The store connection
 * is borrowed: use both from the training thread only. */
BpRecorder *bp_recorder_new (BpStore *store, BpTrainer *trainer, const BpRecorderOptions *options,
                             GError **error);

/* The config of a stored run with its model spec in model_json (strings interned), to make
 * the trainer that resumes it: the run's config, updated by its newest checkpoint's (a resumed
 * run keeps the epochs it was last given). The caller may then change the epochs (the new
 * total). */
gboolean bp_recorder_run_config (BpStore *store, gint64 run_id, BpTrainConfig *config,
                                 GError **error);

/* Continues a stored run: loads its newest checkpoint into the trainer (made from
 * bp_recorder_run_config) and only then changes the store: metrics after the checkpoint's
 * step are deleted and the run is marked running by this process. A run without a checkpoint
 * starts again from the beginning (its metrics are deleted). Fails, changing nothing, when
 * the run is still running in another process (BP_TRAIN_ERROR_INVALID), when it has already
 * trained the trainer's epochs (BP_TRAIN_ERROR_DONE) or when the checkpoint cannot be
 * loaded (BP_SAFETENSORS_ERROR, or BP_TRAIN_ERROR_INVALID for one of another model). */
BpRecorder *bp_recorder_resume (BpStore *store, BpTrainer *trainer, gint64 run_id,
                                const BpRecorderOptions *options, GError **error);

/* Records a trainer event; call it from the trainer callback (and stop training when it
 * fails: the store cannot be written). */
gboolean bp_recorder_event (BpRecorder *recorder, const BpTrainEvent *event, GError **error);

/* Ends the run after bp_trainer_run returned: writes the points not yet written, saves a
 * last checkpoint for FINISHED and STOPPED (unless one of this very step exists), and sets
 * the status with its reason (NULL: none). */
gboolean bp_recorder_finish (BpRecorder *recorder, BpRunStatus status, const char *reason,
                             GError **error);

gint64 bp_recorder_get_run_id (BpRecorder *recorder);
/* The newest checkpoint written or resumed from (absolute), NULL when none. */
const char *bp_recorder_get_checkpoint (BpRecorder *recorder);
/* Frees the recorder (a run not finished stays running until marked interrupted). */
void bp_recorder_free (BpRecorder *recorder);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (BpRecorder, bp_recorder_free)

G_END_DECLS
