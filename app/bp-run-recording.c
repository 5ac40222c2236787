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
  gint64 resume_id;     /* > 0: continue this stored run */
  char **tags;          /* the new run's tags (NULL: none) */
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

static gboolean
started_hook (BpTrainer *trainer, const BpTrainConfig *config, gpointer user_data,
              GError **error)
{
  Recording *r = user_data;
  g_autoptr (GError) local = NULL;
  r->store = bp_store_open (r->path, &local);
  if (r->store) {
    BpRecorderOptions options = BP_RECORDER_OPTIONS_INIT;
    options.tags = (const char *const *) r->tags;
    r->recorder = r->resume_id > 0
                    ? bp_recorder_resume (r->store, trainer, r->resume_id, &options, &local)
                    : bp_recorder_new (r->store, trainer, &options, &local);
  }
  if (r->recorder)
    return TRUE;
  recording_stop (r);
  if (r->resume_id > 0) {
    /* continuing a run without its store or checkpoint would start it over: fail instead */
    g_propagate_error (error, g_steal_pointer (&local));
    return FALSE;
  }
  g_message ("The run is not recorded: %s", local->message);
  return TRUE;
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
  g_strfreev (r->tags);
  g_free (r);
}

static void
attach (BpTrainRun *run, gint64 resume_id)
{
  static const BpTrainHooks hooks = {started_hook, event_hook, finished_hook};
  Recording *r = g_new0 (Recording, 1);
  r->path = bp_lab_store_path ();
  r->resume_id = resume_id;
  bp_train_run_set_hooks (run, &hooks, r, recording_free);
  g_object_set_data (G_OBJECT (run), "bp-run-recording", r);
}

void
bp_run_recording_attach (BpTrainRun *run)
{
  attach (run, 0);
}

void
bp_run_recording_attach_resume (BpTrainRun *run, gint64 run_id)
{
  g_return_if_fail (run_id > 0);
  attach (run, run_id);
}

void
bp_run_recording_set_tags (BpTrainRun *run, const char *const *tags)
{
  Recording *r = g_object_get_data (G_OBJECT (run), "bp-run-recording");
  g_return_if_fail (r != NULL);
  g_return_if_fail (bp_train_run_get_state (run) == BP_TRAIN_STATE_IDLE);
  g_strfreev (r->tags);
  r->tags = g_strdupv ((char **) tags);
}
