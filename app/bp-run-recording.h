/* bp-run-recording.h: stores the Train page's runs in the experiment store (a BpRecorder on the
 * training thread, through BpTrainHooks), and where the lab's database is. */
#pragma once

#include "bp-train-run.h"

G_BEGIN_DECLS

/* The lab's database: $BP_DB when set (tests), else bp_store_default_path (). Free it. */
char *bp_lab_store_path (void);

/* Sets hooks on a run not yet started: the training thread opens its own connection to
 * bp_lab_store_path (), records metrics and checkpoints, and ends the run with its final status.
 * A store that cannot be opened or written only stops the recording (a message is logged), never
 * the training. */
void bp_run_recording_attach (BpTrainRun *run);
/* The same for a run that continues stored run run_id from its newest checkpoint (the run's
 * config must come from bp_recorder_run_config): the checkpoint is loaded on the training
 * thread, and when it or the store cannot be read the run fails with the reason. */
void bp_run_recording_attach_resume (BpTrainRun *run, gint64 run_id);
/* Tags the stored run of a run that has recording attached and is not started yet. */
void bp_run_recording_set_tags (BpTrainRun *run, const char *const *tags);

G_END_DECLS
