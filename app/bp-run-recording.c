/* bp-run-recording.c: a BpRecorder on the training thread of a BpTrainRun: run row, metrics,
 * checkpoints at the end and the final status, in the lab's experiment store. */
#include "config.h"

#include "bp-run-recording.h"

#include "bp-recorder.h"
#include "bp-store.h"

typedef struct {
  char *path;
  BpStore *store;       /* the training thread's connection */
  BpRecorder *recorder;
} Recording;

char *
bp_lab_store_path (void)
{
  const char *env = g_getenv ("BP_DB");
  if (env && *env)
    return g_strdup (env);
  return bp_store_default_path ();
}

static void
recording_stop (Recording *r)
{
  g_clear_pointer (&r->recorder, bp_recorder_free);
  g_clear_pointer (&r->store, bp_store_close);
}

static void
started_hook (BpTrainer *trainer, const BpTrainConfig *config, gpointer user_data)
{
  Recording *r = user_data;
  g_autoptr (GError) error = NULL;
  r->store = bp_store_open (r->path, &error);
  if (r->store) {
    BpRecorderOptions options = BP_RECORDER_OPTIONS_INIT;
    r->recorder = bp_recorder_new (r->store, trainer, &options, &error);
  }
  if (!r->recorder) {
    g_message ("The run is not recorded: %s", error->message);
    recording_stop (r);
  }
}

static gboolean
event_hook (BpTrainer *trainer, const BpTrainEvent *event, gpointer user_data)
{
  Recording *r = user_data;
  g_autoptr (GError) error = NULL;
  if (r->recorder && !bp_recorder_event (r->recorder, event, &error)) {
    g_message ("The run is no longer recorded: %s", error->message);
    recording_stop (r);
  }
  return TRUE;
}

static void
finished_hook (BpTrainState state, const GError *train_error, gpointer user_data)
{
  Recording *r = user_data;
  if (!r->recorder)
    return;
  BpRunStatus status = state == BP_TRAIN_STATE_FINISHED  ? BP_RUN_FINISHED
                       : state == BP_TRAIN_STATE_STOPPED ? BP_RUN_STOPPED
                                                          : BP_RUN_FAILED;
  g_autoptr (GError) error = NULL;
  if (!bp_recorder_finish (r->recorder, status, train_error ? train_error->message : NULL,
                           &error))
    g_message ("The run's end is not recorded: %s", error->message);
  recording_stop (r);
}

static void
recording_free (gpointer data)
{
  Recording *r = data;
  recording_stop (r);
  g_free (r->path);
  g_free (r);
}

void
bp_run_recording_attach (BpTrainRun *run)
{
  static const BpTrainHooks hooks = {started_hook, event_hook, finished_hook};
  Recording *r = g_new0 (Recording, 1);
  r->path = bp_lab_store_path ();
  bp_train_run_set_hooks (run, &hooks, r, recording_free);
}
