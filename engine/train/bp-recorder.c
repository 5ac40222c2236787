/* bp-recorder.c: a training run kept in the experiment store: metrics in batched
 * transactions, checkpoints with pruning, the final status, and resuming from a checkpoint. */
#include "config.h"

#include "bp-recorder.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/utsname.h>

#include "bp-backend.h"
#include "bp-safetensors.h"
#include "cuda/bp-cuda.h"

struct BpRecorder {
  BpStore *store;         /* borrowed */
  BpTrainer *trainer;     /* borrowed */
  gint64 run_id;
  BpRecorderOptions options;
  GArray *pending;        /* BpMetricPoint not yet written (names are static strings) */
  int pending_steps;
  gint64 last_flush_us;   /* monotonic */
  double best_val;        /* best validation accuracy of a checkpoint so far (NAN: none) */
  gint64 saved_step;      /* global step of the newest checkpoint (-1: none) */
  char *checkpoint;       /* its path */
};

static BpRecorder *
recorder_alloc (BpStore *store, BpTrainer *trainer, const BpRecorderOptions *options)
{
  BpRecorder *r = g_new0 (BpRecorder, 1);
  BpRecorderOptions defaults = BP_RECORDER_OPTIONS_INIT;
  r->store = store;
  r->trainer = trainer;
  r->options = options ? *options : defaults;
  if (r->options.keep_checkpoints < 1)
    r->options.keep_checkpoints = 1;
  if (r->options.flush_steps < 1)
    r->options.flush_steps = 1;
  r->pending = g_array_new (FALSE, FALSE, sizeof (BpMetricPoint));
  r->last_flush_us = g_get_monotonic_time ();
  r->best_val = NAN;
  r->saved_step = -1;
  return r;
}

void
bp_recorder_free (BpRecorder *r)
{
  if (!r)
    return;
  g_array_unref (r->pending);
  g_free (r->checkpoint);
  g_free (r);
}

gint64
bp_recorder_get_run_id (BpRecorder *r)
{
  return r->run_id;
}

const char *
bp_recorder_get_checkpoint (BpRecorder *r)
{
  return r->checkpoint;
}

/* {"backprop": ..., "sqlite": ..., "glib": ..., "os": ..., "cuda": {...} on a GPU run} */
static char *
versions_json (BpDevice device)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "backprop");
  json_builder_add_string_value (b, PACKAGE_VERSION);
  json_builder_set_member_name (b, "sqlite");
  json_builder_add_string_value (b, sqlite3_libversion ());
  g_autofree char *glib = g_strdup_printf ("%u.%u.%u", glib_major_version, glib_minor_version,
                                           glib_micro_version);
  json_builder_set_member_name (b, "glib");
  json_builder_add_string_value (b, glib);
  struct utsname u;
  if (uname (&u) == 0) {
    g_autofree char *os = g_strdup_printf ("%s %s %s", u.sysname, u.release, u.machine);
    json_builder_set_member_name (b, "os");
    json_builder_add_string_value (b, os);
  }
  json_builder_set_member_name (b, "threads");
  json_builder_add_int_value (b, bp_get_num_threads ());
  if (device == BP_DEVICE_CUDA) {
    BpCudaInfo *info = g_new0 (BpCudaInfo, 1);
    bp_cuda_query (info);
    json_builder_set_member_name (b, "cuda");
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "driver");
    json_builder_add_int_value (b, info->driver_version);
    json_builder_set_member_name (b, "runtime");
    json_builder_add_int_value (b, info->runtime_version);
    json_builder_set_member_name (b, "cudnn");
    json_builder_add_int_value (b, (gint64) info->cudnn_version);
    json_builder_set_member_name (b, "cublas");
    json_builder_add_int_value (b, info->cublas_version);
    const char *dev = g_getenv ("BP_CUDA_DEVICE");
    int k = dev ? atoi (dev) : 0;
    if (k >= 0 && k < info->n_devices) {
      json_builder_set_member_name (b, "gpu");
      json_builder_add_string_value (b, info->devices[k].name);
      json_builder_set_member_name (b, "compute_capability");
      g_autofree char *cc = g_strdup_printf ("%d.%d", info->devices[k].cc_major,
                                             info->devices[k].cc_minor);
      json_builder_add_string_value (b, cc);
    }
    json_builder_set_member_name (b, "tf32");
    json_builder_add_boolean_value (b, bp_cuda_get_tf32 ());
    json_builder_end_object (b);
    g_free (info);
  }
  json_builder_end_object (b);
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  return json_to_string (root, FALSE);
}

/* The trainer's config plus the recorder's settings (appended to the object's text: json-glib
 * 1.6 would write some of its doubles as invalid JSON); a language model's run also gets the
 * facts of its corpus: vocab_size, train_characters, val_characters and unigram_loss. */
static char *
config_json (BpTrainer *trainer, const BpRecorderOptions *o)
{
  g_autofree char *base = bp_train_config_to_json (bp_trainer_get_config (trainer));
  gsize n = strlen (base);
  g_assert (n >= 2 && base[n - 1] == '}');
  g_autofree char *text = NULL;
  const BpTextCorpus *c = bp_trainer_get_corpus (trainer);
  if (c) {
    char loss[G_ASCII_DTOSTR_BUF_SIZE];
    text = g_strdup_printf (",\"vocab_size\":%" G_GINT64_FORMAT ",\"train_characters\":%"
                            G_GINT64_FORMAT ",\"val_characters\":%" G_GINT64_FORMAT
                            ",\"unigram_loss\":%s",
                            bp_vocab_size (c->vocab), c->n_train, c->n_val,
                            g_ascii_formatd (loss, sizeof loss, "%.6f", c->unigram_loss));
  }
  return g_strdup_printf ("%.*s,\"checkpoint_every\":%d,\"keep_checkpoints\":%d,\"threads\":%d%s}",
                          (int) n - 1, base, o->checkpoint_every, o->keep_checkpoints,
                          o->threads > 0 ? o->threads : bp_get_num_threads (), text ? text : "");
}

BpRecorder *
bp_recorder_new (BpStore *store, BpTrainer *trainer, const BpRecorderOptions *options,
                 GError **error)
{
  BpRecorder *r = recorder_alloc (store, trainer, options);
  g_autofree char *config = config_json (trainer, &r->options);
  g_autofree char *versions = versions_json (bp_trainer_get_config (trainer)->device);
  if (!bp_store_create_run (store, r->options.name, bp_trainer_get_spec_json (trainer), config,
                            versions, &r->run_id, error)) {
    bp_recorder_free (r);
    return NULL;
  }
  for (int k = 0; r->options.tags && r->options.tags[k]; k++)
    if (!bp_store_add_tag (store, r->run_id, r->options.tags[k], error)) {
      bp_store_set_status (store, r->run_id, BP_RUN_FAILED, "its tags could not be stored", NULL);
      bp_recorder_free (r);
      return NULL;
    }
  r->options.tags = NULL;
  r->options.name = NULL;
  return r;
}

gboolean
bp_recorder_run_config (BpStore *store, gint64 run_id, BpTrainConfig *config, GError **error)
{
  g_autoptr (BpRun) run = bp_store_get_run (store, run_id, error);
  if (!run)
    return FALSE;
  BpTrainConfig c = bp_train_config_default ();
  if (!bp_train_config_from_json (run->config_json, &c, error))
    return FALSE;
  /* a resumed run may have been given more epochs: its newest checkpoint has the config it
   * was last trained with (a checkpoint that does not load is reported by the resume) */
  g_autoptr (GPtrArray) cps = bp_store_list_checkpoints (store, run_id, error);
  if (!cps)
    return FALSE;
  if (cps->len) {
    BpCheckpoint *newest = g_ptr_array_index (cps, cps->len - 1);
    g_autoptr (BpSafetensors) st = bp_safetensors_load (newest->path, NULL);
    const char *saved = st ? g_hash_table_lookup (st->metadata, "config") : NULL;
    BpTrainConfig later = c;
    if (saved && bp_train_config_from_json (saved, &later, NULL))
      c = later;
  }
  c.model_json = g_intern_string (run->spec_json);
  *config = c;
  return TRUE;
}

/* Files a killed writer can leave in the run's checkpoint folder: a temporary file of a
 * checkpoint being written, a checkpoint written but not yet registered, or one whose row was
 * pruned but not yet its file. Only called while this process is the run's writer. */
static void
remove_strays (BpStore *store, gint64 run_id, GPtrArray *cps)
{
  g_autofree char *dir = bp_store_checkpoint_dir (store, run_id, NULL);
  g_autoptr (GDir) d = dir ? g_dir_open (dir, 0, NULL) : NULL;
  const char *name;
  while (d && (name = g_dir_read_name (d))) {
    gboolean temp = name[0] == '.' && strstr (name, ".tmp-") != NULL;
    if (!temp && !g_str_has_suffix (name, ".safetensors"))
      continue;
    g_autofree char *path = g_build_filename (dir, name, NULL);
    gboolean registered = FALSE;
    for (guint k = 0; k < cps->len && !registered; k++) {
      g_autofree char *a = g_canonicalize_filename (((BpCheckpoint *) g_ptr_array_index (cps, k))->path, NULL);
      g_autofree char *b = g_canonicalize_filename (path, NULL);
      registered = strcmp (a, b) == 0;
    }
    if (!registered)
      g_unlink (path);
  }
}

BpRecorder *
bp_recorder_resume (BpStore *store, BpTrainer *trainer, gint64 run_id,
                    const BpRecorderOptions *options, GError **error)
{
  g_autoptr (BpRun) run = bp_store_get_run (store, run_id, error);
  if (!run)
    return NULL;
  if (run->status == BP_RUN_RUNNING) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_INVALID,
                 "run %" G_GINT64_FORMAT " is still running (process %" G_GINT64_FORMAT
                 " on %s): stop it first", run_id, run->pid, run->host ? run->host : "?");
    return NULL;
  }
  GPtrArray *cps = bp_store_list_checkpoints (store, run_id, error);
  if (!cps)
    return NULL;
  BpRecorder *r = recorder_alloc (store, trainer, options);
  r->run_id = run_id;
  BpCheckpoint *newest = cps->len ? g_ptr_array_index (cps, cps->len - 1) : NULL;
  for (guint k = 0; k < cps->len; k++) {
    BpCheckpoint *cp = g_ptr_array_index (cps, k);
    if (!isnan (cp->val_metric) && (isnan (r->best_val) || cp->val_metric > r->best_val))
      r->best_val = cp->val_metric;
  }
  gboolean ok = TRUE;
  if (newest) {
    ok = bp_trainer_load_checkpoint (trainer, newest->path, error);
    r->saved_step = newest->step;
    r->checkpoint = g_strdup (newest->path);
  }
  int epochs = bp_trainer_get_config (trainer)->epochs;
  if (ok && bp_trainer_get_epochs_done (trainer) >= epochs) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_DONE,
                 "run %" G_GINT64_FORMAT " has already trained %d epochs: give --epochs above "
                 "%d to train it further", run_id, bp_trainer_get_epochs_done (trainer),
                 bp_trainer_get_epochs_done (trainer));
    ok = FALSE;
  }
  /* the checkpoint is in place: only now change the store */
  ok = ok && bp_store_delete_metrics_after (store, run_id, r->saved_step, error) &&
       bp_store_set_status (store, run_id, BP_RUN_RUNNING, NULL, error);
  if (ok)
    remove_strays (store, run_id, cps);
  g_ptr_array_unref (cps);
  if (!ok) {
    bp_recorder_free (r);
    return NULL;
  }
  return r;
}

/* ---- metrics ---- */

static void
push (BpRecorder *r, gint64 step, gint64 epoch, const char *split, const char *name, double v)
{
  BpMetricPoint p = {step, epoch, split, name, v, g_get_real_time ()};
  g_array_append_val (r->pending, p);
}

static gboolean
flush (BpRecorder *r, GError **error)
{
  r->last_flush_us = g_get_monotonic_time ();
  r->pending_steps = 0;
  if (r->pending->len == 0)
    return TRUE;
  gboolean ok = bp_store_log_metrics (r->store, r->run_id, r->pending->len,
                                      (const BpMetricPoint *) (void *) r->pending->data, error);
  g_array_set_size (r->pending, 0);
  return ok;
}

/* A float (the learning rate) as the double of its shortest text: 0.003f is stored 0.003. */
static double
float_value (double v)
{
  char buf[32];
  if (!isfinite (v))
    return v;
  bp_float_format ((float) v, buf, sizeof buf);
  return g_ascii_strtod (buf, NULL);
}

/* ---- checkpoints ---- */

static gboolean
save_checkpoint (BpRecorder *r, double val_metric, gboolean is_best, GError **error)
{
  BpTrainer *t = r->trainer;
  gint64 step = bp_trainer_get_global_step (t);
  gint64 epoch = bp_trainer_get_epochs_done (t) + (bp_trainer_get_epoch_step (t) > 0 ? 1 : 0);
  g_autofree char *path = bp_store_checkpoint_path (r->store, r->run_id, epoch, step, error);
  if (!path)
    return FALSE;
  g_autoptr (GHashTable) meta = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
  g_hash_table_insert (meta, "run_id", g_strdup_printf ("%" G_GINT64_FORMAT, r->run_id));
  if (!bp_trainer_save_checkpoint (t, path, meta, error) ||
      !bp_store_add_checkpoint (r->store, r->run_id, path, epoch, step, val_metric, is_best, NULL,
                                error) ||
      !bp_store_prune_checkpoints (r->store, r->run_id, (guint) r->options.keep_checkpoints,
                                   NULL, error))
    return FALSE;
  r->saved_step = step;
  g_free (r->checkpoint);
  r->checkpoint = g_steal_pointer (&path);
  return TRUE;
}

gboolean
bp_recorder_event (BpRecorder *r, const BpTrainEvent *ev, GError **error)
{
  switch (ev->kind) {
  case BP_TRAIN_EVENT_START:
    return bp_store_heartbeat (r->store, r->run_id, error);
  case BP_TRAIN_EVENT_STEP:
    push (r, ev->global_step, ev->epoch, BP_SPLIT_TRAIN, BP_METRIC_LOSS, ev->loss);
    r->pending_steps++;
    if (r->pending_steps >= r->options.flush_steps ||
        g_get_monotonic_time () - r->last_flush_us >= (gint64) r->options.flush_ms * 1000)
      return flush (r, error);
    return TRUE;
  case BP_TRAIN_EVENT_EPOCH: {
    gint64 s = ev->global_step, e = ev->epoch;
    gboolean reg = ev->task == BP_TASK_REGRESSION;
    push (r, s, e, BP_SPLIT_TRAIN, BP_METRIC_EPOCH_LOSS, ev->train_loss);
    if (!reg)
      push (r, s, e, BP_SPLIT_TRAIN, BP_METRIC_EPOCH_ACCURACY, ev->train_accuracy);
    push (r, s, e, BP_SPLIT_TRAIN, BP_METRIC_LR, float_value (ev->lr));
    push (r, s, e, BP_SPLIT_TRAIN, BP_METRIC_IMAGES_PER_SECOND, ev->images_per_second);
    push (r, s, e, BP_SPLIT_TRAIN, BP_METRIC_EPOCH_SECONDS, ev->seconds);
    if (ev->n_val > 0) {
      push (r, s, e, BP_SPLIT_VAL, BP_METRIC_LOSS, ev->val_loss);
      push (r, s, e, BP_SPLIT_VAL, reg ? BP_METRIC_R2 : BP_METRIC_ACCURACY,
            reg ? ev->val_r2 : ev->val_accuracy);
    }
    if (!flush (r, error))
      return FALSE;
    /* the best checkpoint: by validation accuracy, a regression's by validation R² */
    double val = ev->n_val > 0 ? (reg ? ev->val_r2 : ev->val_accuracy) : NAN;
    gboolean best = !isnan (val) && (isnan (r->best_val) || val > r->best_val);
    gboolean due = r->options.checkpoint_every > 0 && ev->epoch % r->options.checkpoint_every == 0;
    if (!(due || best || ev->epoch == ev->epochs))
      return TRUE;
    if (best)
      r->best_val = val;
    return save_checkpoint (r, val, best, error);
  }
  case BP_TRAIN_EVENT_DONE: {
    gboolean reg = ev->task == BP_TASK_REGRESSION;
    push (r, ev->global_step, ev->epoch, BP_SPLIT_TEST, BP_METRIC_LOSS, ev->test_loss);
    push (r, ev->global_step, ev->epoch, BP_SPLIT_TEST, reg ? BP_METRIC_R2 : BP_METRIC_ACCURACY,
          reg ? ev->test_r2 : ev->test_accuracy);
    return flush (r, error);
  }
  case BP_TRAIN_EVENT_ATTENTION:
    return TRUE; /* not stored */
  }
  return TRUE;
}

gboolean
bp_recorder_finish (BpRecorder *r, BpRunStatus status, const char *reason, GError **error)
{
  if (!flush (r, error))
    return FALSE;
  if ((status == BP_RUN_FINISHED || status == BP_RUN_STOPPED) &&
      bp_trainer_get_global_step (r->trainer) != r->saved_step &&
      !save_checkpoint (r, NAN, FALSE, error))
    return FALSE;
  return bp_store_set_status (r->store, r->run_id, status, reason, error);
}
