/* test-store.c: the experiment store: round trips of runs, metrics, tags, notes, artifacts and
 * checkpoints; a reader beside a writer; migration from schema 1; refused files (not a
 * database, damaged, foreign, newer, read-only, locked) left unchanged; dead writers; a writer
 * killed mid-run. */
#include "bp-test.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bp-backend.h"
#include "bp-safetensors.h"
#include "bp-store.h"

static char *test_root; /* removed at the end of main */

/* A folder with a fixed name under the test root, for tests whose subprocess must find it
 * (BP_TEST_ROOT is set in main, before any thread starts). */
static char *
fixed_dir (const char *name)
{
  const char *root = test_root ? test_root : g_getenv ("BP_TEST_ROOT");
  g_assert_nonnull (root);
  char *dir = g_build_filename (root, name, NULL);
  g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);
  return dir;
}

static void
assert_unchanged (const char *path, GBytes *before)
{
  g_autoptr (GBytes) after = bp_test_read_bytes (path);
  g_assert_true (g_bytes_equal (before, after));
}

/* Raw SQL on a separate connection, for setting up and inspecting files. */
static void
raw_exec (const char *path, const char *sql)
{
  sqlite3 *db = NULL;
  g_assert_cmpint (sqlite3_open (path, &db), ==, SQLITE_OK);
  char *err = NULL;
  if (sqlite3_exec (db, sql, NULL, NULL, &err) != SQLITE_OK)
    g_error ("%s: %s", sql, err);
  sqlite3_close (db);
}

static gint64
raw_int (const char *path, const char *sql)
{
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  g_assert_cmpint (sqlite3_open (path, &db), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &st, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (st), ==, SQLITE_ROW);
  gint64 v = sqlite3_column_int64 (st, 0);
  sqlite3_finalize (st);
  sqlite3_close (db);
  return v;
}

static const char spec_json[] =
  "{\"format\": \"backprop-lab-model\", \"version\": 1, \"name\": \"mlp\", \"input\": [1, 28, 28],"
  " \"layers\": [{\"type\": \"Flatten\"}, {\"type\": \"Linear\", \"out_features\": 10}]}";
static const char config_json[] =
  "{\"dataset\": \"fashion-mnist\", \"optimizer\": {\"name\": \"adam\", \"lr\": 0.001},"
  " \"schedule\": \"cosine\", \"seed\": 1, \"device\": \"cpu\", \"precision\": \"fp32\", \"epochs\": 2}";
static const char versions_json[] = "{\"backprop-lab\": \"0.1.0\", \"gpu\": null}";

static gint64
create_run (BpStore *store, const char *name)
{
  gint64 id = 0;
  g_autoptr (GError) error = NULL;
  g_assert_true (bp_store_create_run (store, name, spec_json, config_json, versions_json, &id, &error));
  g_assert_no_error (error);
  g_assert_cmpint (id, >, 0);
  return id;
}

static void
test_round_trip (void)
{
  g_autoptr (GError) error = NULL;
  /* the default path: $XDG_DATA_HOME/backprop-lab/experiments.db, folders created */
  g_autofree char *def = bp_store_default_path ();
  g_autofree char *want = g_build_filename (g_get_user_data_dir (), "backprop-lab", "experiments.db", NULL);
  g_assert_cmpstr (def, ==, want);
  g_assert_true (g_str_has_prefix (def, test_root)); /* never the user's real store */
  g_autoptr (BpStore) store = bp_store_open (NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (bp_store_get_path (store), ==, def);
  g_assert_true (g_file_test (def, G_FILE_TEST_IS_REGULAR));
  g_assert_cmpint (bp_store_get_schema_version (store), ==, BP_STORE_SCHEMA_VERSION);
  g_assert_cmpint (raw_int (def, "PRAGMA user_version"), ==, BP_STORE_SCHEMA_VERSION);
  g_assert_cmpint (raw_int (def, "PRAGMA application_id"), ==, BP_STORE_APPLICATION_ID);

  gint64 before = g_get_real_time ();
  gint64 a = create_run (store, "first try");
  gint64 b = create_run (store, NULL); /* named after the model */

  /* bad JSON and names are refused and add nothing */
  g_assert_false (bp_store_create_run (store, "x", "{not json", NULL, NULL, NULL, &error));
  g_assert_error (error, BP_STORE_ERROR, BP_STORE_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "model spec"));
  g_clear_error (&error);
  g_assert_false (bp_store_create_run (store, "x", NULL, "[1, 2]", NULL, NULL, &error));
  g_assert_error (error, BP_STORE_ERROR, BP_STORE_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (bp_store_create_run (store, "\xff", NULL, NULL, NULL, NULL, &error));
  g_assert_error (error, BP_STORE_ERROR, BP_STORE_ERROR_INVALID);
  g_clear_error (&error);

  /* two epochs of 5 steps: train loss every step (one NaN), val metrics per epoch, lr */
  BpMetricPoint pts[32];
  int n = 0;
  for (int e = 1; e <= 2; e++) {
    for (int s = 0; s < 5; s++) {
      gint64 step = (e - 1) * 5 + s + 1;
      pts[n++] = (BpMetricPoint){step, e, BP_SPLIT_TRAIN, BP_METRIC_LOSS,
                                 step == 7 ? NAN : 2.0 / step, 0};
      pts[n++] = (BpMetricPoint){step, e, BP_SPLIT_TRAIN, BP_METRIC_LR, 1e-3, 1000 + step};
    }
    pts[n++] = (BpMetricPoint){e * 5, e, BP_SPLIT_VAL, BP_METRIC_ACCURACY, e == 1 ? 0.80 : 0.75, 0};
    pts[n++] = (BpMetricPoint){e * 5, e, BP_SPLIT_VAL, BP_METRIC_LOSS, 0.5 / e, 0};
  }
  pts[n++] = (BpMetricPoint){10, 2, BP_SPLIT_TEST, BP_METRIC_ACCURACY, 0.77, 0};
  g_assert_true (bp_store_log_metrics (store, a, 10, pts, &error));
  g_assert_true (bp_store_log_metrics (store, a, (gsize) n - 10, pts + 10, &error));
  g_assert_no_error (error);
  g_assert_true (bp_store_log_metrics (store, a, 0, NULL, &error)); /* a heartbeat */

  /* a bad point or run stores nothing of the batch */
  BpMetricPoint bad[2] = {{11, 3, "train", "loss", 1.0, 0}, {11, 3, "", "loss", 1.0, 0}};
  g_assert_false (bp_store_log_metrics (store, a, 2, bad, &error));
  g_assert_error (error, BP_STORE_ERROR, BP_STORE_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (bp_store_log_metrics (store, 999, 1, bad, &error));
  g_assert_error (error, BP_STORE_ERROR, BP_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  g_autoptr (GArray) all = bp_store_get_metrics (store, a, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (all->len, ==, (guint) n);
  g_autoptr (GArray) loss = bp_store_get_metrics (store, a, "train", "loss", &error);
  g_assert_cmpuint (loss->len, ==, 10);
  for (guint i = 0; i < loss->len; i++) {
    BpMetricPoint *p = &g_array_index (loss, BpMetricPoint, i);
    g_assert_cmpint (p->step, ==, i + 1);
    g_assert_cmpint (p->epoch, ==, i < 5 ? 1 : 2);
    g_assert_cmpstr (p->split, ==, "train");
    g_assert_true (p->name == g_intern_string ("loss"));
    if (p->step == 7)
      g_assert_true (isnan (p->value));
    else
      g_assert_cmpfloat (p->value, ==, 2.0 / p->step);
    g_assert_cmpint (p->wall_us, >=, before);
  }
  g_autoptr (GArray) lr = bp_store_get_metrics (store, a, NULL, "lr", &error);
  g_assert_cmpuint (lr->len, ==, 10);
  g_assert_cmpint (g_array_index (lr, BpMetricPoint, 3).wall_us, ==, 1004);
  g_autoptr (GArray) val = bp_store_get_metrics (store, a, "val", NULL, &error);
  g_assert_cmpuint (val->len, ==, 4);

  /* per-epoch summaries */
  g_autoptr (GArray) sums = bp_store_get_epoch_summaries (store, a, "train", "loss", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (sums->len, ==, 2);
  BpEpochSummary *e1 = &g_array_index (sums, BpEpochSummary, 0);
  BpEpochSummary *e2 = &g_array_index (sums, BpEpochSummary, 1);
  g_assert_cmpint (e1->epoch, ==, 1);
  g_assert_cmpint (e1->count, ==, 5);
  g_assert_cmpfloat_with_epsilon (e1->mean, (2.0 + 1.0 + 2.0 / 3 + 0.5 + 0.4) / 5, 1e-12);
  g_assert_cmpfloat (e1->max, ==, 2.0);
  g_assert_cmpfloat (e1->min, ==, 0.4);
  g_assert_cmpfloat (e1->last, ==, 0.4);
  g_assert_cmpint (e1->last_step, ==, 5);
  g_assert_cmpint (e2->count, ==, 5);
  g_assert_cmpfloat_with_epsilon (e2->mean, (2.0 / 6 + 2.0 / 8 + 2.0 / 9 + 0.2) / 4, 1e-12); /* NaN left out */
  g_autoptr (GArray) allsums = bp_store_get_epoch_summaries (store, a, NULL, NULL, &error);
  g_assert_cmpuint (allsums->len, ==, 2 + 2 + 2 + 2 + 1);

  /* tags, note, rename, status */
  g_assert_true (bp_store_add_tag (store, a, "baseline", &error));
  g_assert_true (bp_store_add_tag (store, a, "cnn", &error));
  g_assert_true (bp_store_add_tag (store, a, "baseline", &error)); /* again: no error */
  g_assert_true (bp_store_add_tag (store, b, "標籤", &error));
  g_assert_no_error (error);
  g_assert_false (bp_store_add_tag (store, a, "bad\ttag", &error));
  g_assert_error (error, BP_STORE_ERROR, BP_STORE_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (bp_store_add_tag (store, 12345, "x", &error));
  g_assert_error (error, BP_STORE_ERROR, BP_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_auto (GStrv) tags = bp_store_list_tags (store, a, &error);
  g_assert_cmpuint (g_strv_length (tags), ==, 2);
  g_assert_cmpstr (tags[0], ==, "baseline");
  g_assert_cmpstr (tags[1], ==, "cnn");
  g_assert_true (bp_store_remove_tag (store, a, "cnn", &error));
  g_assert_true (bp_store_remove_tag (store, a, "absent", &error));
  g_assert_true (bp_store_set_note (store, a, "lr too high?\nsecond line", &error));
  g_autofree char *note = bp_store_get_note (store, a, &error);
  g_assert_cmpstr (note, ==, "lr too high?\nsecond line");
  g_assert_true (bp_store_rename_run (store, a, "adam 1e-3", &error));
  g_assert_false (bp_store_rename_run (store, a, "", &error));
  g_assert_error (error, BP_STORE_ERROR, BP_STORE_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (bp_store_set_status (store, 777, BP_RUN_FAILED, "x", &error));
  g_assert_error (error, BP_STORE_ERROR, BP_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_true (bp_store_set_status (store, a, BP_RUN_FINISHED, NULL, &error));
  g_assert_true (bp_store_set_status (store, b, BP_RUN_FAILED, "the loss became NaN", &error));
  g_assert_no_error (error);

  /* list: newest first, with summaries */
  g_autoptr (GPtrArray) runs = bp_store_list_runs (store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (runs->len, ==, 2);
  BpRun *rb = runs->pdata[0], *ra = runs->pdata[1];
  g_assert_cmpint (ra->id, ==, a);
  g_assert_cmpint (rb->id, ==, b);
  g_assert_cmpstr (ra->name, ==, "adam 1e-3");
  g_assert_cmpstr (rb->name, ==, "mlp");
  g_assert_cmpstr (ra->model_name, ==, "mlp");
  g_assert_cmpstr (ra->dataset, ==, "fashion-mnist");
  g_assert_cmpfloat (ra->best_val_accuracy, ==, 0.80);
  g_assert_cmpfloat (ra->last_test_accuracy, ==, 0.77);
  g_assert_true (isnan (rb->best_val_accuracy));
  g_assert_cmpint (ra->last_step, ==, 10);
  g_assert_cmpint (ra->last_epoch, ==, 2);
  g_assert_cmpint (rb->last_step, ==, -1);
  g_assert_cmpint (ra->status, ==, BP_RUN_FINISHED);
  g_assert_cmpint (rb->status, ==, BP_RUN_FAILED);
  g_assert_cmpstr (rb->status_reason, ==, "the loss became NaN");
  g_assert_cmpint (ra->created_us, >=, before);
  g_assert_cmpint (ra->ended_us, >=, ra->created_us);
  g_assert_cmpuint (g_strv_length (ra->tags), ==, 1);
  g_assert_cmpstr (ra->tags[0], ==, "baseline");
  g_assert_cmpstr (rb->tags[0], ==, "標籤");
  g_assert_cmpstr (ra->note, ==, "lr too high?\nsecond line");
  g_assert_null (ra->spec_json);
  g_assert_cmpint (ra->pid, ==, getpid ());

  /* get: details */
  g_autoptr (BpRun) run = bp_store_get_run (store, a, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (run->spec_json, ==, spec_json);
  g_assert_cmpstr (run->config_json, ==, config_json);
  g_assert_cmpstr (run->versions_json, ==, versions_json);
  g_assert_cmpstr (run->host, ==, g_get_host_name ());
  g_assert_null (bp_store_get_run (store, 4242, &error));
  g_assert_error (error, BP_STORE_ERROR, BP_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* resuming: running again, end time cleared; metrics after the checkpoint step dropped */
  g_assert_true (bp_store_set_status (store, a, BP_RUN_RUNNING, "resumed", &error));
  g_assert_true (bp_store_delete_metrics_after (store, a, 6, &error));
  g_autoptr (BpRun) resumed = bp_store_get_run (store, a, &error);
  g_assert_cmpint (resumed->status, ==, BP_RUN_RUNNING);
  g_assert_cmpint (resumed->ended_us, ==, 0);
  g_assert_cmpint (resumed->last_step, ==, 6);
  g_autoptr (GArray) trimmed = bp_store_get_metrics (store, a, "train", "loss", &error);
  g_assert_cmpuint (trimmed->len, ==, 6);

  /* following a live run: only new points, by cursor */
  gint64 cursor = 0;
  g_autoptr (GArray) first = bp_store_get_new_metrics (store, a, &cursor, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (first->len, ==, 6 + 6 + 2 + 0); /* loss, lr and val of steps <= 6 */
  BpMetricPoint more[2] = {{7, 2, "train", "loss", 0.3, 0}, {7, 2, "train", "lr", 1e-4, 0}};
  g_assert_true (bp_store_log_metrics (store, a, 2, more, &error));
  g_autoptr (GArray) next = bp_store_get_new_metrics (store, a, &cursor, &error);
  g_assert_cmpuint (next->len, ==, 2);
  g_assert_cmpfloat (g_array_index (next, BpMetricPoint, 0).value, ==, 0.3);
  g_autoptr (GArray) none = bp_store_get_new_metrics (store, a, &cursor, &error);
  g_assert_cmpuint (none->len, ==, 0);

  /* artifacts: inline and file */
  static const guint8 png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 1, 2};
  g_autoptr (GBytes) png_bytes = g_bytes_new_static (png, sizeof png);
  gint64 art1 = 0, art2 = 0;
  g_assert_true (bp_store_add_artifact (store, a, "attention head 0", "attention", 5, png_bytes,
                                        NULL, &art1, &error));
  g_autofree char *art_dir = bp_store_artifact_dir (store, a, &error);
  g_autofree char *art_file = g_build_filename (art_dir, "samples.png", NULL);
  g_assert_true (g_file_set_contents (art_file, "png", 3, NULL));
  g_assert_true (bp_store_add_artifact (store, a, "samples", "png", -1, NULL, art_file, &art2, &error));
  g_assert_no_error (error);
  g_assert_false (bp_store_add_artifact (store, a, "both", "png", 1, png_bytes, art_file, NULL, &error));
  g_assert_error (error, BP_STORE_ERROR, BP_STORE_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_cmpint (raw_int (def, "SELECT count (*) FROM artifacts WHERE path LIKE 'artifacts/%'"), ==, 1);
  g_autoptr (GPtrArray) arts = bp_store_list_artifacts (store, a, NULL, &error);
  g_assert_cmpuint (arts->len, ==, 2);
  BpArtifact *l0 = arts->pdata[0], *l1 = arts->pdata[1];
  g_assert_cmpstr (l0->name, ==, "samples"); /* step -1 (NULL) sorts first */
  g_assert_cmpstr (l0->path, ==, art_file);
  g_assert_cmpint (l0->size, ==, -1);
  g_assert_cmpint (l1->size, ==, sizeof png);
  g_assert_null (l1->data);
  g_autoptr (GPtrArray) att = bp_store_list_artifacts (store, a, "attention", &error);
  g_assert_cmpuint (att->len, ==, 1);
  g_autoptr (BpArtifact) got = bp_store_get_artifact (store, art1, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (got->kind, ==, "attention");
  g_assert_cmpint (got->step, ==, 5);
  g_assert_true (g_bytes_equal (got->data, png_bytes));

  /* delete: rows and files */
  g_autofree char *ck = bp_store_checkpoint_path (store, a, 1, 5, &error);
  g_assert_no_error (error);
  BpTensor *t = bp_tensor_new_1d (3);
  const char *names[] = {"w"};
  g_assert_true (bp_safetensors_save (ck, 1, names, &t, NULL, &error));
  bp_tensor_unref (t);
  g_assert_true (bp_store_add_checkpoint (store, a, ck, 1, 5, 0.8, TRUE, NULL, &error));
  g_assert_true (bp_store_delete_run (store, a, &error));
  g_assert_no_error (error);
  g_assert_false (g_file_test (ck, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (art_dir, G_FILE_TEST_EXISTS));
  g_assert_false (bp_store_delete_run (store, a, &error));
  g_assert_error (error, BP_STORE_ERROR, BP_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_cmpint (raw_int (def, "SELECT count (*) FROM metrics"), ==, 0);
  g_assert_cmpint (raw_int (def, "SELECT count (*) FROM tags"), ==, 1);
  g_assert_cmpint (raw_int (def, "SELECT count (*) FROM artifacts"), ==, 0);
  /* ids are never reused */
  gint64 c = create_run (store, "after delete");
  g_assert_cmpint (c, >, b);

  g_assert_true (bp_store_check_integrity (store, &error));
  g_assert_no_error (error);
}

/* ---- a reader beside a writer ---- */

enum { N_BATCHES = 100, BATCH = 20 };

typedef struct {
  const char *path;
  gint64 run;
  gint done;
  int reads;
  double seconds;
} Shared;

static gpointer
writer_thread (gpointer data)
{
  Shared *sh = data;
  g_autoptr (GError) error = NULL;
  g_autoptr (BpStore) store = bp_store_open (sh->path, &error);
  g_assert_no_error (error);
  BpMetricPoint pts[BATCH];
  gint64 t0 = g_get_monotonic_time ();
  for (int k = 0; k < N_BATCHES; k++) {
    for (int i = 0; i < BATCH; i++)
      pts[i] = (BpMetricPoint){k * BATCH + i, k / 10, "train", i % 2 ? "loss" : "accuracy",
                               k + i * 1e-3, 0};
    if (!bp_store_log_metrics (store, sh->run, BATCH, pts, &error))
      g_error ("writer: %s", error->message);
  }
  sh->seconds = (g_get_monotonic_time () - t0) / 1e6;
  g_atomic_int_set (&sh->done, 1);
  return NULL;
}

static gpointer
reader_thread (gpointer data)
{
  Shared *sh = data;
  g_autoptr (GError) error = NULL;
  g_autoptr (BpStore) store = bp_store_open (sh->path, &error);
  g_assert_no_error (error);
  guint last = 0;
  gint64 cursor = 0;
  guint followed = 0;
  for (;;) {
    gboolean finished = g_atomic_int_get (&sh->done);
    g_autoptr (GArray) pts = bp_store_get_metrics (store, sh->run, NULL, NULL, &error);
    if (!pts)
      g_error ("reader: %s", error->message);
    /* whole transactions only, never going back */
    g_assert_cmpuint (pts->len % BATCH, ==, 0);
    g_assert_cmpuint (pts->len, >=, last);
    last = pts->len;
    g_autoptr (GArray) fresh = bp_store_get_new_metrics (store, sh->run, &cursor, &error);
    if (!fresh)
      g_error ("reader: %s", error->message);
    followed += fresh->len;
    g_autoptr (BpRun) run = bp_store_get_run (store, sh->run, &error);
    if (!run)
      g_error ("reader: %s", error->message);
    sh->reads++;
    if (finished)
      break;
  }
  g_assert_cmpuint (last, ==, N_BATCHES * BATCH);
  g_assert_cmpuint (followed, ==, N_BATCHES * BATCH);
  return NULL;
}

static void
test_concurrent (void)
{
  g_autofree char *dir = bp_test_temp_dir (test_root);
  g_autofree char *path = g_build_filename (dir, "experiments.db", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (BpStore) store = bp_store_open (path, &error);
  g_assert_no_error (error);
  Shared sh = {path, create_run (store, "concurrent"), 0, 0, 0};
  GThread *w = g_thread_new ("writer", writer_thread, &sh);
  GThread *r = g_thread_new ("reader", reader_thread, &sh);
  g_thread_join (w);
  g_thread_join (r);
  g_test_message ("%d transactions of %d points in %.3f s (%.0f points/s) while %d reads ran",
                  N_BATCHES, BATCH, sh.seconds, N_BATCHES * BATCH / sh.seconds, sh.reads);
  g_assert_cmpint (sh.reads, >, 1);
  g_assert_true (bp_store_checkpoint_wal (store, &error));
  g_assert_true (bp_store_check_integrity (store, &error));
  g_assert_no_error (error);
}

/* ---- migration ---- */

/* Schema version 1 exactly as the first release created it (kept here, apart from the code). */
static const char v1_ddl[] =
  "PRAGMA application_id = 1112558658;\n"
  "CREATE TABLE runs (\n"
  "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
  "  name TEXT NOT NULL,\n"
  "  created_us INTEGER NOT NULL,\n"
  "  ended_us INTEGER,\n"
  "  status TEXT NOT NULL DEFAULT 'running'\n"
  "    CHECK (status IN ('running', 'finished', 'stopped', 'failed', 'interrupted')),\n"
  "  status_reason TEXT NOT NULL DEFAULT '',\n"
  "  spec_json TEXT NOT NULL DEFAULT '{}',\n"
  "  config_json TEXT NOT NULL DEFAULT '{}',\n"
  "  versions_json TEXT NOT NULL DEFAULT '{}',\n"
  "  note TEXT NOT NULL DEFAULT ''\n"
  ");\n"
  "CREATE TABLE metrics (\n"
  "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
  "  run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,\n"
  "  step INTEGER NOT NULL,\n"
  "  epoch INTEGER NOT NULL,\n"
  "  split TEXT NOT NULL,\n"
  "  name TEXT NOT NULL,\n"
  "  value REAL,\n"
  "  wall_us INTEGER NOT NULL\n"
  ");\n"
  "CREATE INDEX metrics_series ON metrics (run_id, split, name, epoch, step);\n"
  "CREATE TABLE tags (\n"
  "  run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,\n"
  "  tag TEXT NOT NULL,\n"
  "  PRIMARY KEY (run_id, tag)\n"
  ") WITHOUT ROWID;\n"
  "CREATE TABLE checkpoints (\n"
  "  id INTEGER PRIMARY KEY,\n"
  "  run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,\n"
  "  path TEXT NOT NULL,\n"
  "  epoch INTEGER NOT NULL,\n"
  "  step INTEGER NOT NULL,\n"
  "  val_metric REAL,\n"
  "  is_best INTEGER NOT NULL DEFAULT 0,\n"
  "  created_us INTEGER NOT NULL\n"
  ");\n"
  "CREATE INDEX checkpoints_run ON checkpoints (run_id, step);\n"
  "PRAGMA user_version = 1;\n";

static void
test_migrate_v1 (void)
{
  g_autofree char *dir = bp_test_temp_dir (test_root);
  g_autofree char *path = g_build_filename (dir, "experiments.db", NULL);
  gint64 now = g_get_real_time (), hour = (gint64) 3600 * G_USEC_PER_SEC;
  raw_exec (path, v1_ddl);
  g_autofree char *fill = g_strdup_printf (
      "INSERT INTO runs (name, created_us, ended_us, status, spec_json, config_json, note) VALUES"
      " ('old finished', %" G_GINT64_FORMAT ", %" G_GINT64_FORMAT ", 'finished',"
      "  '{\"name\": \"lenet\"}', '{\"dataset\": {\"name\": \"mnist\"}}', 'from v1'),"
      " ('old crashed', %" G_GINT64_FORMAT ", NULL, 'running', '{}', '{\"model\": \"simple-cnn\"}', ''),"
      " ('old live', %" G_GINT64_FORMAT ", NULL, 'running', '{}', '{}', '');"
      "INSERT INTO metrics (run_id, step, epoch, split, name, value, wall_us) VALUES"
      " (1, 1, 1, 'train', 'loss', 2.3, %" G_GINT64_FORMAT "),"
      " (1, 100, 1, 'val', 'accuracy', 0.91, %" G_GINT64_FORMAT "),"
      " (1, 200, 2, 'val', 'accuracy', 0.93, %" G_GINT64_FORMAT "),"
      " (2, 50, 1, 'train', 'loss', 1.0, %" G_GINT64_FORMAT "),"
      " (3, 7, 1, 'train', 'loss', 1.0, %" G_GINT64_FORMAT ");"
      "INSERT INTO tags VALUES (1, 'v1'), (1, 'lenet');"
      "INSERT INTO checkpoints (run_id, path, epoch, step, val_metric, is_best, created_us) VALUES"
      " (1, 'checkpoints/1/epoch-0002.safetensors', 2, 200, 0.93, 1, %" G_GINT64_FORMAT ");",
      now - 3 * hour, now - 2 * hour, now - 2 * hour, now - 60 * G_USEC_PER_SEC,
      now - 3 * hour, now - 3 * hour, now - 2 * hour, now - 2 * hour, now - 30 * G_USEC_PER_SEC,
      now - 2 * hour);
  raw_exec (path, fill);
  g_assert_cmpint (raw_int (path, "PRAGMA user_version"), ==, 1);

  g_autoptr (GError) error = NULL;
  g_autoptr (BpStore) store = bp_store_open (path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (bp_store_get_schema_version (store), ==, BP_STORE_SCHEMA_VERSION);
  g_assert_cmpint (raw_int (path, "PRAGMA user_version"), ==, BP_STORE_SCHEMA_VERSION);
  g_assert_cmpint (raw_int (path, "PRAGMA journal_mode = WAL"), ==, 0); /* text "wal" reads as 0 */

  g_autoptr (GPtrArray) runs = bp_store_list_runs (store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (runs->len, ==, 3);
  BpRun *live = runs->pdata[0], *crashed = runs->pdata[1], *old = runs->pdata[2];
  g_assert_cmpstr (old->name, ==, "old finished");
  g_assert_cmpstr (old->model_name, ==, "lenet");
  g_assert_cmpstr (old->dataset, ==, "mnist");
  g_assert_cmpfloat (old->best_val_accuracy, ==, 0.93);
  g_assert_cmpint (old->last_step, ==, 200);
  g_assert_cmpint (old->last_epoch, ==, 2);
  g_assert_cmpstr (old->note, ==, "from v1");
  g_assert_cmpuint (g_strv_length (old->tags), ==, 2);
  g_assert_cmpint (old->status, ==, BP_RUN_FINISHED);
  /* a v1 run left running an hour ago has no recorded writer: stale, so interrupted, ending at
   * its last metric; one that logged 30 s ago may still be alive */
  g_assert_cmpstr (crashed->model_name, ==, "simple-cnn");
  g_assert_cmpint (crashed->status, ==, BP_RUN_INTERRUPTED);
  g_assert_cmpint (crashed->ended_us, ==, now - 2 * hour);
  g_test_message ("reason: %s", crashed->status_reason);
  g_assert_cmpint (live->status, ==, BP_RUN_RUNNING);

  /* the new parts work on the migrated file */
  g_autoptr (GBytes) blob = g_bytes_new_static ("abc", 3);
  g_assert_true (bp_store_add_artifact (store, 1, "confusion", "confusion", 200, blob, NULL, NULL, &error));
  g_autoptr (GArray) sums = bp_store_get_epoch_summaries (store, 1, "val", "accuracy", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (sums->len, ==, 2);
  g_autoptr (GPtrArray) cks = bp_store_list_checkpoints (store, 1, &error);
  g_assert_cmpuint (cks->len, ==, 1);
  g_autofree char *ckpath = g_build_filename (dir, "checkpoints", "1", "epoch-0002.safetensors", NULL);
  g_assert_cmpstr (((BpCheckpoint *) cks->pdata[0])->path, ==, ckpath);
  gint64 fresh = create_run (store, "new");
  g_assert_cmpint (fresh, ==, 4);
  g_assert_true (bp_store_check_integrity (store, &error));
  g_assert_no_error (error);
  bp_store_close (g_steal_pointer (&store));

  /* opening again does not migrate twice */
  g_autoptr (BpStore) again = bp_store_open (path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (raw_int (path, "SELECT count (*) FROM runs"), ==, 4);
}

/* ---- files we refuse ---- */

static void
expect_open_error (const char *path, BpStoreOpenFlags flags, int code, const char *expect)
{
  g_autoptr (GError) error = NULL;
  BpStore *store = bp_store_open_full (path, flags, 200, &error);
  g_assert_null (store);
  g_assert_nonnull (error);
  g_test_message ("%s", error->message);
  g_assert_true (error->domain == BP_STORE_ERROR);
  g_assert_cmpint (error->code, ==, code);
  if (!strstr (error->message, expect))
    g_error ("message \"%s\" lacks \"%s\"", error->message, expect);
}

static void
test_bad_files (void)
{
  g_autofree char *dir = bp_test_temp_dir (test_root);
  g_autoptr (GError) error = NULL;

  /* not a database at all */
  g_autofree char *text = g_build_filename (dir, "notes.db", NULL);
  g_assert_true (g_file_set_contents (text, "These are my notes, not a database.\n"
                 "They are long enough to fill a database header: 0123456789012345678901234567890123456789"
                 "0123456789012345678901234567890123456789\n", -1, NULL));
  g_autoptr (GBytes) text_bytes = bp_test_read_bytes (text);
  expect_open_error (text, 0, BP_STORE_ERROR_NOT_A_STORE, "notes.db is not an SQLite database");
  expect_open_error (text, BP_STORE_OPEN_READ_ONLY, BP_STORE_ERROR_NOT_A_STORE, "notes.db");
  assert_unchanged (text, text_bytes);

  /* a store to damage */
  g_autofree char *good = g_build_filename (dir, "good.db", NULL);
  {
    g_autoptr (BpStore) store = bp_store_open (good, &error);
    g_assert_no_error (error);
    gint64 run = create_run (store, "keep me");
    BpMetricPoint pts[200];
    for (int i = 0; i < 200; i++)
      pts[i] = (BpMetricPoint){i, 1, "train", "loss with a longer name to fill pages", i, 0};
    for (int k = 0; k < 20; k++)
      g_assert_true (bp_store_log_metrics (store, run, 200, pts, &error));
    g_assert_true (bp_store_set_status (store, run, BP_RUN_FINISHED, NULL, &error));
  }
  g_autoptr (GBytes) good_bytes = bp_test_read_bytes (good);
  gsize len;
  const guint8 *src = g_bytes_get_data (good_bytes, &len);
  g_assert_cmpuint (len, >, 20 * 4096);

  /* page 1 (the schema) overwritten */
  g_autofree char *broken = g_build_filename (dir, "broken.db", NULL);
  g_autofree guint8 *buf = g_memdup2 (src, len);
  memset (buf + 100, 0xaa, 4096 - 100);
  g_assert_true (g_file_set_contents (broken, (char *) buf, (gssize) len, NULL));
  g_autoptr (GBytes) broken_bytes = bp_test_read_bytes (broken);
  expect_open_error (broken, 0, BP_STORE_ERROR_CORRUPT, "broken.db: cannot read the database: the database is damaged");
  assert_unchanged (broken, broken_bytes);

  /* cut in half */
  g_autofree char *cut = g_build_filename (dir, "cut.db", NULL);
  g_assert_true (g_file_set_contents (cut, (const char *) src, (gssize) len / 2, NULL));
  g_autoptr (GBytes) cut_bytes = bp_test_read_bytes (cut);
  expect_open_error (cut, 0, BP_STORE_ERROR_CORRUPT, "cut.db");
  assert_unchanged (cut, cut_bytes);

  /* data pages overwritten: opens, but the integrity check and the queries report it */
  g_autofree char *rotten = g_build_filename (dir, "rotten.db", NULL);
  memcpy (buf, src, len);
  memset (buf + len / 2, 0x55, 8192);
  g_assert_true (g_file_set_contents (rotten, (char *) buf, (gssize) len, NULL));
  {
    g_autoptr (BpStore) store = bp_store_open (rotten, &error);
    g_assert_no_error (error);
    g_assert_false (bp_store_check_integrity (store, &error));
    g_assert_error (error, BP_STORE_ERROR, BP_STORE_ERROR_CORRUPT);
    g_test_message ("%s", error->message);
    g_assert_nonnull (strstr (error->message, "rotten.db"));
    g_assert_nonnull (strstr (error->message, "damaged"));
    g_clear_error (&error);
    GArray *pts = bp_store_get_metrics (store, 1, NULL, NULL, &error);
    g_assert_null (pts);
    g_assert_error (error, BP_STORE_ERROR, BP_STORE_ERROR_CORRUPT);
    g_clear_error (&error);
  }

  /* an SQLite database of another program */
  g_autofree char *foreign = g_build_filename (dir, "places.sqlite", NULL);
  raw_exec (foreign, "CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT);"
                     "INSERT INTO moz_places (url) VALUES ('https://example.org');");
  g_autoptr (GBytes) foreign_bytes = bp_test_read_bytes (foreign);
  expect_open_error (foreign, 0, BP_STORE_ERROR_NOT_A_STORE, "not a Backprop Lab experiment store");
  assert_unchanged (foreign, foreign_bytes);

  /* a newer schema: refused for writing, naming both versions; readable read-only */
  g_autofree char *newer = g_build_filename (dir, "newer.db", NULL);
  g_assert_true (g_file_set_contents (newer, (const char *) src, (gssize) len, NULL));
  raw_exec (newer, "PRAGMA user_version = 99");
  g_autoptr (GBytes) newer_bytes = bp_test_read_bytes (newer);
  g_autofree char *versions = g_strdup_printf ("schema version 99, newer than version %d",
                                               BP_STORE_SCHEMA_VERSION);
  expect_open_error (newer, 0, BP_STORE_ERROR_TOO_NEW, versions);
  assert_unchanged (newer, newer_bytes);
  {
    g_autoptr (BpStore) ro = bp_store_open_full (newer, BP_STORE_OPEN_READ_ONLY, 0, &error);
    g_assert_no_error (error);
    g_assert_cmpint (bp_store_get_schema_version (ro), ==, 99);
    g_autoptr (GPtrArray) runs = bp_store_list_runs (ro, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (runs->len, ==, 1);
    gint64 id;
    g_assert_false (bp_store_create_run (ro, "no", NULL, NULL, NULL, &id, &error));
    g_assert_error (error, BP_STORE_ERROR, BP_STORE_ERROR_READ_ONLY);
    g_clear_error (&error);
  }
  assert_unchanged (newer, newer_bytes);

  /* a folder where the file should be; a missing file opened read-only */
  g_autofree char *folder = g_build_filename (dir, "folder.db", NULL);
  g_assert_cmpint (g_mkdir (folder, 0700), ==, 0);
  expect_open_error (folder, 0, BP_STORE_ERROR_IO, "not a regular file");
  g_autofree char *missing = g_build_filename (dir, "missing.db", NULL);
  expect_open_error (missing, BP_STORE_OPEN_READ_ONLY, BP_STORE_ERROR_NOT_FOUND, "missing.db");
  g_assert_false (g_file_test (missing, G_FILE_TEST_EXISTS));

  /* the good file still opens and is intact */
  g_autoptr (BpStore) store = bp_store_open (good, &error);
  g_assert_no_error (error);
  g_assert_true (bp_store_check_integrity (store, &error));
  g_assert_no_error (error);
}

/* Read-only files and folders. Root ignores permission bits, so the checks run in a
 * subprocess that drops to user nobody when started as root. */
static void
test_read_only (void)
{
  if (g_test_subprocess ()) {
    g_autofree char *dir = g_build_filename (g_getenv ("BP_TEST_ROOT"), "read-only", NULL);
    if (geteuid () == 0) {
      if (setgid (65534) != 0 || setuid (65534) != 0) {
        g_test_skip ("cannot drop root privileges: read-only checks did not run");
        return;
      }
      prctl (PR_SET_DUMPABLE, 1); /* keep LeakSanitizer able to inspect us */
    }
    g_autofree char *ro_dir = g_build_filename (dir, "ro-folder", NULL);
    g_autofree char *new_db = g_build_filename (ro_dir, "new.db", NULL);
    expect_open_error (new_db, 0, BP_STORE_ERROR_READ_ONLY, "folder");
    g_assert_false (g_file_test (new_db, G_FILE_TEST_EXISTS));
    g_autofree char *nested = g_build_filename (ro_dir, "sub", "new.db", NULL);
    expect_open_error (nested, 0, BP_STORE_ERROR_READ_ONLY, "cannot create the folder");

    g_autofree char *in_ro_dir = g_build_filename (ro_dir, "existing.db", NULL);
    expect_open_error (in_ro_dir, 0, BP_STORE_ERROR_READ_ONLY, "is read-only");

    g_autofree char *ro_file = g_build_filename (dir, "rw-folder", "ro.db", NULL);
    expect_open_error (ro_file, 0, BP_STORE_ERROR_READ_ONLY, "ro.db is read-only");

    /* both can still be read */
    const char *readable[] = {in_ro_dir, ro_file};
    for (int k = 0; k < 2; k++) {
      g_autoptr (GError) error = NULL;
      g_autoptr (BpStore) ro = bp_store_open_full (readable[k], BP_STORE_OPEN_READ_ONLY, 0, &error);
      g_assert_no_error (error);
      g_autoptr (GPtrArray) runs = bp_store_list_runs (ro, &error);
      g_assert_no_error (error);
      g_assert_cmpuint (runs->len, ==, 1);
      g_assert_false (bp_store_set_note (ro, 1, "no", &error));
      g_assert_error (error, BP_STORE_ERROR, BP_STORE_ERROR_READ_ONLY);
    }
    return;
  }

  g_autofree char *dir = fixed_dir ("read-only");
  g_autofree char *ro_dir = g_build_filename (dir, "ro-folder", NULL);
  g_autofree char *rw_dir = g_build_filename (dir, "rw-folder", NULL);
  g_assert_cmpint (g_mkdir (ro_dir, 0700), ==, 0);
  g_assert_cmpint (g_mkdir (rw_dir, 0700), ==, 0);
  g_autofree char *in_ro_dir = g_build_filename (ro_dir, "existing.db", NULL);
  g_autofree char *ro_file = g_build_filename (rw_dir, "ro.db", NULL);
  const char *dbs[] = {in_ro_dir, ro_file};
  for (int k = 0; k < 2; k++) {
    g_autoptr (GError) error = NULL;
    g_autoptr (BpStore) store = bp_store_open (dbs[k], &error);
    g_assert_no_error (error);
    create_run (store, "read me");
    g_assert_true (bp_store_set_status (store, 1, BP_RUN_FINISHED, NULL, &error));
  }
  g_autoptr (GBytes) b0 = bp_test_read_bytes (in_ro_dir);
  g_autoptr (GBytes) b1 = bp_test_read_bytes (ro_file);
  g_assert_cmpint (g_chmod (test_root, 0755), ==, 0);
  g_assert_cmpint (g_chmod (dir, 0755), ==, 0);
  g_assert_cmpint (g_chmod (in_ro_dir, 0666), ==, 0);
  g_assert_cmpint (g_chmod (ro_dir, 0555), ==, 0);
  g_assert_cmpint (g_chmod (rw_dir, 0777), ==, 0);
  g_assert_cmpint (g_chmod (ro_file, 0444), ==, 0);
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDERR);
  g_chmod (ro_dir, 0700);
  g_chmod (test_root, 0700);
  g_test_trap_assert_passed ();
  assert_unchanged (in_ro_dir, b0);
  assert_unchanged (ro_file, b1);
}

/* A second connection holds the write lock: writes wait for the busy timeout, then fail with a
 * clear error and change nothing. */
static void
test_locked (void)
{
  g_autofree char *dir = bp_test_temp_dir (test_root);
  g_autofree char *path = g_build_filename (dir, "experiments.db", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (BpStore) setup = bp_store_open (path, &error);
  g_assert_no_error (error);
  gint64 run = create_run (setup, "locked");
  g_assert_true (bp_store_set_note (setup, run, "before", &error));

  sqlite3 *holder = NULL;
  g_assert_cmpint (sqlite3_open (path, &holder), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_exec (holder, "BEGIN IMMEDIATE", NULL, NULL, NULL), ==, SQLITE_OK);

  /* opening works while the lock is held (reads only) */
  g_autoptr (BpStore) store = bp_store_open_full (path, 0, 100, &error);
  g_assert_no_error (error);
  gint64 t0 = g_get_monotonic_time ();
  gint64 id = -1;
  g_assert_false (bp_store_create_run (store, "blocked", NULL, NULL, NULL, &id, &error));
  double waited = (g_get_monotonic_time () - t0) / 1e3;
  g_assert_error (error, BP_STORE_ERROR, BP_STORE_ERROR_BUSY);
  g_test_message ("%s (after %.0f ms)", error->message, waited);
  g_assert_nonnull (strstr (error->message, "experiments.db"));
  g_assert_nonnull (strstr (error->message, "locked by another writer (waited 100 ms)"));
  g_assert_cmpfloat (waited, >=, 90);
  g_assert_cmpfloat (waited, <, 3000);
  g_assert_cmpint (id, ==, -1);
  g_clear_error (&error);
  BpMetricPoint p = {1, 1, "train", "loss", 1.0, 0};
  g_assert_false (bp_store_log_metrics (store, run, 1, &p, &error));
  g_assert_error (error, BP_STORE_ERROR, BP_STORE_ERROR_BUSY);
  g_clear_error (&error);
  g_assert_false (bp_store_set_note (store, run, "after", &error));
  g_assert_error (error, BP_STORE_ERROR, BP_STORE_ERROR_BUSY);
  g_clear_error (&error);
  /* reads go on */
  g_autoptr (GPtrArray) runs = bp_store_list_runs (store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (runs->len, ==, 1);

  sqlite3_exec (holder, "ROLLBACK", NULL, NULL, NULL);
  sqlite3_close (holder);
  g_autofree char *note = bp_store_get_note (store, run, &error);
  g_assert_cmpstr (note, ==, "before");
  g_autoptr (GArray) pts = bp_store_get_metrics (store, run, NULL, NULL, &error);
  g_assert_cmpuint (pts->len, ==, 0);
  /* and once the lock is gone, writes succeed */
  g_assert_true (bp_store_log_metrics (store, run, 1, &p, &error));
  g_assert_true (bp_store_create_run (store, "free", NULL, NULL, NULL, &id, &error));
  g_assert_no_error (error);
  g_assert_cmpint (raw_int (path, "SELECT count (*) FROM runs"), ==, 2);
}

/* ---- checkpoints ---- */

static void
test_checkpoints (void)
{
  g_autofree char *dir = bp_test_temp_dir (test_root);
  g_autofree char *path = g_build_filename (dir, "experiments.db", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (BpStore) store = bp_store_open (path, &error);
  g_assert_no_error (error);
  gint64 run = create_run (store, "checkpoints");
  BpTensor *t = bp_tensor_new_2d (2, 2);
  const char *names[] = {"w"};
  /* val accuracy by epoch: best at epoch 2 */
  const double acc[6] = {0.5, 0.9, 0.7, 0.8, 0.85, 0.6};
  char *paths[6];
  double best = -1;
  for (int e = 1; e <= 6; e++) {
    paths[e - 1] = bp_store_checkpoint_path (store, run, e, e * 100, &error);
    g_assert_no_error (error);
    bp_tensor_fill (t, (float) e);
    g_assert_true (bp_safetensors_save (paths[e - 1], 1, names, &t, NULL, &error));
    gboolean is_best = acc[e - 1] > best;
    best = MAX (best, acc[e - 1]);
    g_assert_true (bp_store_add_checkpoint (store, run, paths[e - 1], e, e * 100, acc[e - 1],
                                            is_best, NULL, &error));
    g_assert_no_error (error);
  }
  g_autofree char *ckdir = bp_store_checkpoint_dir (store, run, &error);
  g_autofree char *id = g_strdup_printf ("%" G_GINT64_FORMAT, run);
  g_autofree char *want_dir = g_build_filename (dir, "checkpoints", id, NULL);
  g_assert_cmpstr (ckdir, ==, want_dir);
  g_assert_true (g_str_has_suffix (paths[2], "epoch-0003-step-000000300.safetensors"));
  g_assert_cmpint (raw_int (path, "SELECT count (*) FROM checkpoints WHERE path LIKE 'checkpoints/%'"), ==, 6);

  g_autoptr (GPtrArray) all = bp_store_list_checkpoints (store, run, &error);
  g_assert_cmpuint (all->len, ==, 6);
  int n_best = 0;
  for (guint k = 0; k < all->len; k++) {
    BpCheckpoint *c = all->pdata[k];
    g_assert_cmpstr (c->path, ==, paths[k]);
    g_assert_cmpint (c->step, ==, (k + 1) * 100);
    g_assert_cmpfloat (c->val_metric, ==, acc[k]);
    n_best += c->is_best;
    if (c->is_best)
      g_assert_cmpint (c->epoch, ==, 2);
  }
  g_assert_cmpint (n_best, ==, 1);

  /* keep the last 2 and the best */
  guint removed = 0;
  g_assert_true (bp_store_prune_checkpoints (store, run, 2, &removed, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (removed, ==, 3);
  g_autoptr (GPtrArray) kept = bp_store_list_checkpoints (store, run, &error);
  g_assert_cmpuint (kept->len, ==, 3);
  g_assert_cmpint (((BpCheckpoint *) kept->pdata[0])->epoch, ==, 2);
  g_assert_cmpint (((BpCheckpoint *) kept->pdata[1])->epoch, ==, 5);
  g_assert_cmpint (((BpCheckpoint *) kept->pdata[2])->epoch, ==, 6);
  for (int e = 1; e <= 6; e++)
    g_assert_cmpint (g_file_test (paths[e - 1], G_FILE_TEST_EXISTS), ==, e == 2 || e >= 5);
  g_autoptr (BpSafetensors) st = bp_safetensors_load (paths[1], &error);
  g_assert_no_error (error);
  g_assert_cmpfloat (st->tensors[0]->data[0], ==, 2.0f);
  /* pruning again removes nothing; keep 0 keeps only the best */
  g_assert_true (bp_store_prune_checkpoints (store, run, 2, &removed, &error));
  g_assert_cmpuint (removed, ==, 0);
  g_assert_true (bp_store_prune_checkpoints (store, run, 0, &removed, &error));
  g_assert_cmpuint (removed, ==, 2);
  g_assert_true (g_file_test (paths[1], G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (paths[5], G_FILE_TEST_EXISTS));

  /* one file rewritten in place ("last"): one row, and its file survives pruning */
  g_autofree char *last = g_build_filename (ckdir, "last.safetensors", NULL);
  g_assert_true (bp_safetensors_save (last, 1, names, &t, NULL, &error));
  g_assert_true (bp_store_add_checkpoint (store, run, last, 7, 700, NAN, FALSE, NULL, &error));
  g_assert_true (bp_store_add_checkpoint (store, run, last, 8, 800, NAN, FALSE, NULL, &error));
  g_autoptr (GPtrArray) with_last = bp_store_list_checkpoints (store, run, &error);
  g_assert_cmpuint (with_last->len, ==, 2);
  BpCheckpoint *lc = with_last->pdata[1];
  g_assert_cmpint (lc->step, ==, 800);
  g_assert_true (isnan (lc->val_metric));
  g_assert_true (bp_store_prune_checkpoints (store, run, 1, &removed, &error));
  g_assert_cmpuint (removed, ==, 0);

  /* a checkpoint outside the store folder is registered by absolute path and never deleted */
  g_autofree char *outside_dir = bp_test_temp_dir (test_root);
  g_autofree char *outside = g_build_filename (outside_dir, "mine.safetensors", NULL);
  g_assert_true (bp_safetensors_save (outside, 1, names, &t, NULL, &error));
  g_assert_true (bp_store_add_checkpoint (store, run, outside, 9, 900, NAN, FALSE, NULL, &error));
  g_autofree char *sql = g_strdup_printf ("SELECT count (*) FROM checkpoints WHERE path = '%s'", outside);
  g_assert_cmpint (raw_int (path, sql), ==, 1);
  g_assert_true (bp_store_prune_checkpoints (store, run, 0, &removed, &error));
  g_assert_cmpuint (removed, ==, 2);
  g_assert_true (g_file_test (outside, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (last, G_FILE_TEST_EXISTS));

  g_assert_false (bp_store_add_checkpoint (store, 999, last, 1, 1, NAN, FALSE, NULL, &error));
  g_assert_error (error, BP_STORE_ERROR, BP_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  g_assert_true (bp_store_delete_run (store, run, &error));
  g_assert_false (g_file_test (ckdir, G_FILE_TEST_EXISTS));
  g_assert_true (g_file_test (outside, G_FILE_TEST_EXISTS));
  g_assert_true (bp_store_check_integrity (store, &error));
  for (int e = 0; e < 6; e++)
    g_free (paths[e]);
  bp_tensor_unref (t);
}

/* ---- dead writers ---- */

static gint64
dead_pid (void)
{
  pid_t pid = fork ();
  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    _exit (0);
  int status;
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  return pid;
}

static void
test_interrupted (void)
{
  g_autofree char *dir = bp_test_temp_dir (test_root);
  g_autofree char *path = g_build_filename (dir, "experiments.db", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (BpStore) store = bp_store_open (path, &error);
  g_assert_no_error (error);
  gint64 mine = create_run (store, "mine, alive");
  gint64 dead = create_run (store, "dead pid");
  gint64 reused = create_run (store, "pid reused");
  gint64 rebooted = create_run (store, "other boot");
  gint64 stale = create_run (store, "old, unknown writer");
  gint64 quiet = create_run (store, "recent, unknown writer");
  gint64 done = create_run (store, "finished");
  g_assert_true (bp_store_set_status (store, done, BP_RUN_FINISHED, NULL, &error));

  guint n = 99;
  g_assert_true (bp_store_mark_interrupted (store, &n, &error));
  g_assert_cmpuint (n, ==, 0); /* all written by this live process */

  gint64 now = g_get_real_time (), hour = (gint64) 3600 * G_USEC_PER_SEC;
  g_autofree char *sql = g_strdup_printf (
      "UPDATE runs SET pid = %" G_GINT64_FORMAT " WHERE id = %" G_GINT64_FORMAT ";"
      "UPDATE runs SET heartbeat_us = %" G_GINT64_FORMAT ", owner = NULL, pid = NULL WHERE id = %" G_GINT64_FORMAT ";"
      "UPDATE runs SET heartbeat_us = %" G_GINT64_FORMAT ", owner = NULL, pid = NULL WHERE id = %" G_GINT64_FORMAT ";"
      "UPDATE runs SET owner = 'not-this-boot' || substr (owner, instr (owner, '/')) WHERE id = %" G_GINT64_FORMAT ";",
      dead_pid (), dead, now - 2 * hour, stale, now - 60 * G_USEC_PER_SEC, quiet, rebooted);
  raw_exec (path, sql);
  /* pid reuse: our pid, but the start time of another process */
  raw_exec (path, "UPDATE runs SET owner = substr (owner, 1, length (owner) - 1) || "
                  "CASE substr (owner, -1) WHEN '1' THEN '2' ELSE '1' END WHERE name = 'pid reused'");

  g_assert_true (bp_store_mark_interrupted (store, &n, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (n, ==, 4);
  struct { gint64 id; BpRunStatus status; const char *reason; } want[] = {
    {mine, BP_RUN_RUNNING, ""},
    {dead, BP_RUN_INTERRUPTED, "ended without closing it"},
    {reused, BP_RUN_INTERRUPTED, "ended without closing it"},
    {rebooted, BP_RUN_INTERRUPTED, "restarted"},
    {stale, BP_RUN_INTERRUPTED, "no sign of life"},
    {quiet, BP_RUN_RUNNING, ""},
    {done, BP_RUN_FINISHED, ""},
  };
  for (guint k = 0; k < G_N_ELEMENTS (want); k++) {
    g_autoptr (BpRun) r = bp_store_get_run (store, want[k].id, &error);
    g_assert_no_error (error);
    g_test_message ("%s: %s (%s)", r->name, bp_run_status_to_string (r->status), r->status_reason);
    g_assert_cmpint (r->status, ==, want[k].status);
    g_assert_nonnull (strstr (r->status_reason, want[k].reason));
    if (want[k].status == BP_RUN_INTERRUPTED)
      g_assert_cmpint (r->ended_us, >, 0);
  }
  g_autoptr (BpRun) st = bp_store_get_run (store, stale, &error);
  g_assert_cmpint (st->ended_us, ==, now - 2 * hour); /* its last heartbeat */

  /* a run wrongly marked interrupted heals when its own writer logs again */
  raw_exec (path, "UPDATE runs SET status = 'interrupted', ended_us = 1 WHERE name = 'mine, alive'");
  BpMetricPoint p = {1, 1, "train", "loss", 1, 0};
  g_assert_true (bp_store_log_metrics (store, mine, 1, &p, &error));
  g_autoptr (BpRun) healed = bp_store_get_run (store, mine, &error);
  g_assert_cmpint (healed->status, ==, BP_RUN_RUNNING);
  g_assert_cmpint (healed->ended_us, ==, 0);
  /* but not a run that another (dead) writer owned */
  g_assert_true (bp_store_log_metrics (store, dead, 1, &p, &error));
  g_autoptr (BpRun) still = bp_store_get_run (store, dead, &error);
  g_assert_cmpint (still->status, ==, BP_RUN_INTERRUPTED);
  /* resuming makes this process the writer */
  g_assert_true (bp_store_set_status (store, dead, BP_RUN_RUNNING, "resumed", &error));
  g_assert_true (bp_store_mark_interrupted (store, &n, &error));
  g_assert_cmpuint (n, ==, 0);
}

/* A writer killed at a random moment: the database stays intact, whole transactions only, the
 * run is marked interrupted at the next open, registered checkpoints load. */
static void
test_kill (void)
{
  if (g_test_subprocess ()) {
    g_autofree char *kdir = fixed_dir ("kill");
    g_autofree char *path = g_build_filename (kdir, "experiments.db", NULL);
    g_autoptr (GError) error = NULL;
    BpStore *store = bp_store_open (path, &error);
    g_assert_no_error (error);
    gint64 run;
    g_assert_true (bp_store_create_run (store, "killed", NULL, NULL, NULL, &run, &error));
    BpTensor *t = bp_tensor_new_1d (4096);
    const char *names[] = {"w"};
    BpMetricPoint pts[10];
    for (gint64 k = 0;; k++) {
      for (int i = 0; i < 10; i++)
        pts[i] = (BpMetricPoint){k * 10 + i, k / 20 + 1, "train", "loss", (double) k, 0};
      g_assert_true (bp_store_log_metrics (store, run, 10, pts, &error));
      if (k % 20 == 19) {
        g_autofree char *ck = bp_store_checkpoint_path (store, run, k / 20 + 1, k * 10 + 9, &error);
        bp_tensor_fill (t, (float) k);
        g_assert_true (bp_safetensors_save (ck, 1, names, &t, NULL, &error));
        g_assert_true (bp_store_add_checkpoint (store, run, ck, k / 20 + 1, k * 10 + 9, NAN, FALSE,
                                                NULL, &error));
        g_assert_true (bp_store_prune_checkpoints (store, run, 2, NULL, &error));
      }
    }
  }
  g_autofree char *dir = fixed_dir ("kill");
  g_autofree char *path = g_build_filename (dir, "experiments.db", NULL);
  /* kill writers until three have got as far as logging (a loaded machine starts slowly) */
  int rounds = 0;
  while (rounds < 3 || (rounds < 8 && g_file_test (path, G_FILE_TEST_EXISTS) &&
                        raw_int (path, "SELECT count (DISTINCT run_id) FROM metrics") < 3)) {
    g_test_trap_subprocess (NULL, 400000 + 150000 * rounds, G_TEST_SUBPROCESS_DEFAULT);
    g_assert_false (g_test_trap_has_passed ());
    rounds++;
  }

  g_autoptr (GError) error = NULL;
  g_autoptr (BpStore) store = bp_store_open (path, &error);
  g_assert_no_error (error);
  g_assert_true (bp_store_check_integrity (store, &error));
  g_assert_no_error (error);
  g_autoptr (GPtrArray) runs = bp_store_list_runs (store, &error);
  g_assert_cmpuint (runs->len, >=, 3);
  g_assert_cmpuint (runs->len, <=, (guint) rounds);
  for (guint k = 0; k < runs->len; k++) {
    BpRun *r = runs->pdata[k];
    g_autoptr (GArray) pts = bp_store_get_metrics (store, r->id, NULL, NULL, &error);
    g_assert_no_error (error);
    g_test_message ("run %" G_GINT64_FORMAT ": %s (%s), %u points", r->id,
                    bp_run_status_to_string (r->status), r->status_reason, pts->len);
    g_assert_cmpint (r->status, ==, BP_RUN_INTERRUPTED);
    g_assert_nonnull (strstr (r->status_reason, "ended without closing it"));
    g_assert_cmpuint (pts->len % 10, ==, 0); /* whole batches only */
    g_autoptr (GPtrArray) cks = bp_store_list_checkpoints (store, r->id, &error);
    for (guint c = 0; c < cks->len; c++) {
      BpCheckpoint *ck = cks->pdata[c];
      g_autoptr (BpSafetensors) st = bp_safetensors_load (ck->path, &error);
      g_assert_no_error (error);
      g_assert_cmpfloat (st->tensors[0]->data[0], ==, (float) ((ck->step - 9) / 10));
    }
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  bp_set_num_threads (1);
  if (!g_test_subprocess ()) {
    test_root = g_dir_make_tmp ("bp-test-store-XXXXXX", NULL);
    g_assert_nonnull (test_root);
    /* the default store path goes under here */
    g_autofree char *data_home = g_build_filename (test_root, "data-home", NULL);
    g_setenv ("XDG_DATA_HOME", data_home, TRUE);
    g_setenv ("BP_TEST_ROOT", test_root, TRUE);
  }
  g_test_add_func ("/store/round-trip", test_round_trip);
  g_test_add_func ("/store/concurrent", test_concurrent);
  g_test_add_func ("/store/migrate-v1", test_migrate_v1);
  g_test_add_func ("/store/bad-files", test_bad_files);
  g_test_add_func ("/store/read-only", test_read_only);
  g_test_add_func ("/store/locked", test_locked);
  g_test_add_func ("/store/checkpoints", test_checkpoints);
  g_test_add_func ("/store/interrupted", test_interrupted);
  g_test_add_func ("/store/kill", test_kill);
  int status = g_test_run ();
  if (test_root)
    bp_test_remove_tree (test_root);
  g_free (test_root);
  return status;
}
