/* store/bp-store.c: the experiment store on SQLite: schema and migrations, runs, metrics,
 * tags, notes, artifacts, checkpoints, and detection of runs whose writer died. */
#include "bp-store.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

G_DEFINE_QUARK (bp-store-error-quark, bp_store_error)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (sqlite3_stmt, sqlite3_finalize)

/* A run still "running" with no heartbeat for this long, whose writer cannot be checked
 * directly (no recorded identity, another pid namespace), is taken as interrupted. */
#define STALE_US ((gint64) 10 * 60 * G_USEC_PER_SEC)

struct BpStore {
  sqlite3 *db;
  char *path;       /* as given (or the default) */
  char *display;    /* for messages */
  char *dir;        /* absolute folder of the database */
  int timeout_ms;
  int version;      /* schema version of the file */
  gboolean read_only;
  sqlite3_stmt *insert_metric;
};

/* ---- schema ----
 * migrations[v] takes a database from version v to v + 1; a new file runs them all. Never edit
 * a released step: add a new one and raise BP_STORE_SCHEMA_VERSION (doc/store.md lists them). */
static const char *const migrations[] = {
  /* 0 -> 1: runs, metrics, tags, checkpoints */
  "PRAGMA application_id = 1112558658;\n" /* BP_STORE_APPLICATION_ID */
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
  "CREATE INDEX checkpoints_run ON checkpoints (run_id, step);\n",

  /* 1 -> 2: the writer's identity and heartbeat (interrupted runs), the latest step and epoch,
   * artifacts, per-epoch summaries, a tag index */
  "ALTER TABLE runs ADD COLUMN pid INTEGER;\n"
  "ALTER TABLE runs ADD COLUMN host TEXT;\n"
  "ALTER TABLE runs ADD COLUMN owner TEXT;\n"
  "ALTER TABLE runs ADD COLUMN heartbeat_us INTEGER;\n"
  "ALTER TABLE runs ADD COLUMN last_step INTEGER;\n"
  "ALTER TABLE runs ADD COLUMN last_epoch INTEGER;\n"
  "UPDATE runs SET\n"
  "  last_step = (SELECT MAX (step) FROM metrics WHERE run_id = runs.id),\n"
  "  last_epoch = (SELECT MAX (epoch) FROM metrics WHERE run_id = runs.id),\n"
  "  heartbeat_us = COALESCE ((SELECT MAX (wall_us) FROM metrics WHERE run_id = runs.id),\n"
  "                           created_us);\n"
  "CREATE INDEX tags_tag ON tags (tag);\n"
  "CREATE TABLE artifacts (\n"
  "  id INTEGER PRIMARY KEY,\n"
  "  run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,\n"
  "  name TEXT NOT NULL,\n"
  "  kind TEXT NOT NULL,\n"
  "  step INTEGER,\n"
  "  data BLOB,\n"
  "  path TEXT,\n"
  "  created_us INTEGER NOT NULL,\n"
  "  CHECK ((data IS NULL) <> (path IS NULL))\n"
  ");\n"
  "CREATE INDEX artifacts_run ON artifacts (run_id, kind, step);\n"
  "CREATE VIEW epoch_summaries AS\n"
  "  SELECT run_id, epoch, split, name, COUNT (*) AS count, AVG (value) AS mean,\n"
  "         MIN (value) AS min, MAX (value) AS max, MAX (step) AS last_step,\n"
  "         (SELECT m2.value FROM metrics AS m2\n"
  "           WHERE m2.run_id = m.run_id AND m2.split = m.split AND m2.name = m.name\n"
  "             AND m2.epoch = m.epoch\n"
  "           ORDER BY m2.step DESC, m2.id DESC LIMIT 1) AS last\n"
  "    FROM metrics AS m GROUP BY run_id, split, name, epoch;\n",
};

G_STATIC_ASSERT (G_N_ELEMENTS (migrations) == BP_STORE_SCHEMA_VERSION);

/* ---- small helpers ---- */

static const char *const status_names[] = {"running", "finished", "stopped", "failed",
                                           "interrupted"};

const char *
bp_run_status_to_string (BpRunStatus status)
{
  return (guint) status < G_N_ELEMENTS (status_names) ? status_names[status] : "unknown";
}

gboolean
bp_run_status_from_string (const char *s, BpRunStatus *status)
{
  for (guint k = 0; s && k < G_N_ELEMENTS (status_names); k++)
    if (!strcmp (s, status_names[k])) {
      *status = (BpRunStatus) k;
      return TRUE;
    }
  return FALSE;
}

/* Sets a GError for SQLite result rc while doing `what`. */
static void
set_db_error (BpStore *s, GError **error, int rc, const char *what)
{
  const char *msg = s->db ? sqlite3_errmsg (s->db) : sqlite3_errstr (rc);
  switch (rc & 0xff) {
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    g_set_error (error, BP_STORE_ERROR, BP_STORE_ERROR_BUSY,
                 "%s: cannot %s: the database is locked by another writer (waited %d ms)",
                 s->display, what, s->timeout_ms);
    break;
  case SQLITE_READONLY:
    g_set_error (error, BP_STORE_ERROR, BP_STORE_ERROR_READ_ONLY,
                 "%s: cannot %s: the database is read-only (%s)", s->display, what, msg);
    break;
  case SQLITE_CORRUPT:
    g_set_error (error, BP_STORE_ERROR, BP_STORE_ERROR_CORRUPT,
                 "%s: cannot %s: the database is damaged (%s)", s->display, what, msg);
    break;
  case SQLITE_NOTADB:
    g_set_error (error, BP_STORE_ERROR, BP_STORE_ERROR_NOT_A_STORE,
                 "%s is not an SQLite database (%s)", s->display, msg);
    break;
  case SQLITE_CANTOPEN:
  case SQLITE_IOERR:
  case SQLITE_FULL:
  case SQLITE_PERM:
    g_set_error (error, BP_STORE_ERROR, BP_STORE_ERROR_IO, "%s: cannot %s: %s", s->display, what,
                 msg);
    break;
  case SQLITE_CONSTRAINT:
    g_set_error (error, BP_STORE_ERROR, BP_STORE_ERROR_INVALID, "%s: cannot %s: %s", s->display,
                 what, msg);
    break;
  default:
    g_set_error (error, BP_STORE_ERROR, BP_STORE_ERROR_FAILED, "%s: cannot %s: %s", s->display,
                 what, msg);
  }
}

static gboolean
exec (BpStore *s, const char *sql, const char *what, GError **error)
{
  int rc = sqlite3_exec (s->db, sql, NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    set_db_error (s, error, rc, what);
    return FALSE;
  }
  return TRUE;
}

static sqlite3_stmt *
prepare (BpStore *s, const char *sql, const char *what, GError **error)
{
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2 (s->db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK) {
    set_db_error (s, error, rc, what);
    return NULL;
  }
  return st;
}

/* Steps a statement that returns no rows (or whose rows are ignored). */
static gboolean
step_done (BpStore *s, sqlite3_stmt *st, const char *what, GError **error)
{
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    ;
  if (rc != SQLITE_DONE) {
    set_db_error (s, error, rc, what);
    sqlite3_reset (st);
    return FALSE;
  }
  sqlite3_reset (st);
  return TRUE;
}

/* Runs a query whose first row's first column is an integer; *out stays as is without a row. */
static gboolean
query_int (BpStore *s, const char *sql, gint64 *out, const char *what, GError **error)
{
  g_autoptr (sqlite3_stmt) st = prepare (s, sql, what, error);
  if (!st)
    return FALSE;
  int rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    *out = sqlite3_column_int64 (st, 0);
  else if (rc != SQLITE_DONE) {
    set_db_error (s, error, rc, what);
    return FALSE;
  }
  return TRUE;
}

static gboolean
begin_write (BpStore *s, const char *what, GError **error)
{
  if (s->read_only) {
    g_set_error (error, BP_STORE_ERROR, BP_STORE_ERROR_READ_ONLY,
                 "%s: cannot %s: the store was opened read-only", s->display, what);
    return FALSE;
  }
  return exec (s, "BEGIN IMMEDIATE", what, error);
}

static void
rollback (BpStore *s)
{
  if (!sqlite3_get_autocommit (s->db))
    sqlite3_exec (s->db, "ROLLBACK", NULL, NULL, NULL);
}

static gboolean
commit (BpStore *s, const char *what, GError **error)
{
  if (!exec (s, "COMMIT", what, error)) {
    rollback (s);
    return FALSE;
  }
  return TRUE;
}

static void
bind_text_or_null (sqlite3_stmt *st, int i, const char *text)
{
  if (text)
    sqlite3_bind_text (st, i, text, -1, SQLITE_TRANSIENT);
  else
    sqlite3_bind_null (st, i);
}

static void
bind_double_or_null (sqlite3_stmt *st, int i, double v)
{
  if (isnan (v))
    sqlite3_bind_null (st, i);
  else
    sqlite3_bind_double (st, i, v);
}

static double
column_double_or_nan (sqlite3_stmt *st, int i)
{
  return sqlite3_column_type (st, i) == SQLITE_NULL ? NAN : sqlite3_column_double (st, i);
}

static char *
column_strdup (sqlite3_stmt *st, int i)
{
  const unsigned char *t = sqlite3_column_text (st, i);
  return t ? g_strdup ((const char *) t) : NULL;
}

static const char *
column_intern (sqlite3_stmt *st, int i)
{
  const unsigned char *t = sqlite3_column_text (st, i);
  return g_intern_string (t ? (const char *) t : "");
}

static gboolean
not_found (BpStore *s, GError **error, const char *what, gint64 id)
{
  g_set_error (error, BP_STORE_ERROR, BP_STORE_ERROR_NOT_FOUND, "%s: there is no %s %" G_GINT64_FORMAT,
               s->display, what, id);
  return FALSE;
}

static gboolean
check_text (BpStore *s, const char *what, const char *text, gsize max_len, gboolean allow_empty,
            GError **error)
{
  if (!text || (!allow_empty && !text[0]) || !g_utf8_validate (text, -1, NULL) ||
      (max_len && strlen (text) > max_len)) {
    g_autofree char *limit = max_len ? g_strdup_printf (" of at most %" G_GSIZE_FORMAT " bytes", max_len)
                                     : g_strdup ("");
    g_set_error (error, BP_STORE_ERROR, BP_STORE_ERROR_INVALID, "%s: the %s must be %sUTF-8 text%s",
                 s->display, what, allow_empty ? "" : "non-empty ", limit);
    return FALSE;
  }
  return TRUE;
}

static gboolean
check_json_object (BpStore *s, const char *what, const char *json, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) jerr = NULL;
  if (!g_utf8_validate (json, -1, NULL) || !json_parser_load_from_data (parser, json, -1, &jerr) ||
      !json_parser_get_root (parser) || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser))) {
    g_set_error (error, BP_STORE_ERROR, BP_STORE_ERROR_INVALID, "%s: the %s is not a JSON object%s%s",
                 s->display, what, jerr ? ": " : "", jerr ? jerr->message : "");
    return FALSE;
  }
  return TRUE;
}

/* ---- the writing process's identity ----
 * owner = "<boot id>/<pid namespace>/<process start time in clock ticks since boot>": with the
 * pid it tells a live writer from a dead one whose pid was reused, and a previous boot. */

static char *
read_first_line (const char *path)
{
  char *text = NULL;
  if (!g_file_get_contents (path, &text, NULL, NULL))
    return NULL;
  g_strstrip (text);
  return text;
}

static const char *
boot_id (void)
{
  static char *id;
  if (g_once_init_enter (&id)) {
    char *b = read_first_line ("/proc/sys/kernel/random/boot_id");
    g_once_init_leave (&id, b ? b : g_strdup ("-"));
  }
  return id;
}

static char *
pid_namespace (const char *pid)
{
  g_autofree char *link = g_strdup_printf ("/proc/%s/ns/pid", pid);
  char *target = g_file_read_link (link, NULL);
  return target ? target : g_strdup ("-");
}

/* The start time of process pid (field 22 of /proc/<pid>/stat), or -1. */
static gint64
process_start_time (gint64 pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%" G_GINT64_FORMAT "/stat", pid);
  g_autofree char *stat = NULL;
  if (!g_file_get_contents (path, &stat, NULL, NULL))
    return -1;
  const char *p = strrchr (stat, ')'); /* the command name may hold spaces and ')' */
  if (!p)
    return -1;
  g_auto (GStrv) fields = g_strsplit (p + 2, " ", 0);
  /* fields[0] is field 3 (state): field 22 is fields[19] */
  if (g_strv_length (fields) < 20)
    return -1;
  return g_ascii_strtoll (fields[19], NULL, 10);
}

static const char *
self_owner (void)
{
  static char *owner;
  if (g_once_init_enter (&owner)) {
    g_autofree char *ns = pid_namespace ("self");
    char *o = g_strdup_printf ("%s/%s/%" G_GINT64_FORMAT, boot_id (), ns,
                               process_start_time ((gint64) getpid ()));
    g_once_init_leave (&owner, o);
  }
  return owner;
}

/* Whether the writer of a running run is gone; *reason says how we know. */
static gboolean
writer_is_dead (gint64 pid, const char *host, const char *owner, gint64 heartbeat_us, char **reason)
{
  gint64 now = g_get_real_time ();
  gboolean stale = heartbeat_us <= 0 || now - heartbeat_us > STALE_US;
  g_auto (GStrv) parts = owner ? g_strsplit (owner, "/", 3) : NULL;
  g_autofree char *my_ns = pid_namespace ("self");
  g_autofree char *where = host ? g_strdup_printf (" on %s", host) : g_strdup ("");

  if (parts && g_strv_length (parts) == 3 && pid > 0) {
    if (strcmp (parts[0], "-") && strcmp (boot_id (), "-") && strcmp (parts[0], boot_id ())) {
      *reason = g_strdup_printf ("the computer restarted (or the database moved) while process %"
                                 G_GINT64_FORMAT "%s was writing the run", pid, where);
      return TRUE;
    }
    if (!strcmp (parts[1], my_ns) && strcmp (my_ns, "-")) {
      gint64 start = process_start_time (pid);
      if (start < 0 || start != g_ascii_strtoll (parts[2], NULL, 10)) {
        *reason = g_strdup_printf ("process %" G_GINT64_FORMAT "%s that was writing the run ended "
                                   "without closing it", pid, where);
        return TRUE;
      }
      return FALSE;
    }
    /* no /proc, or another pid namespace (a sandbox): fall through */
  }
  if (pid > 0 && host && !g_strcmp0 (host, g_get_host_name ()) && kill ((pid_t) pid, 0) != 0 &&
      errno == ESRCH && (!parts || !strcmp (boot_id (), "-"))) {
    *reason = g_strdup_printf ("process %" G_GINT64_FORMAT "%s that was writing the run ended "
                               "without closing it", pid, where);
    return TRUE;
  }
  if (stale) {
    *reason = g_strdup ("its writer has shown no sign of life for more than 10 minutes");
    return TRUE;
  }
  return FALSE;
}

/* ---- paths ---- */

char *
bp_store_default_path (void)
{
  return g_build_filename (g_get_user_data_dir (), "backprop-lab", "experiments.db", NULL);
}

/* Relative to the store folder when inside it, else absolute. */
static char *
to_stored_path (BpStore *s, const char *path)
{
  g_autofree char *abs = g_canonicalize_filename (path, s->dir);
  gsize n = strlen (s->dir);
  if (!strncmp (abs, s->dir, n) && abs[n] == G_DIR_SEPARATOR && abs[n + 1])
    return g_strdup (abs + n + 1);
  return g_steal_pointer (&abs);
}

static char *
from_stored_path (BpStore *s, const char *stored)
{
  return g_canonicalize_filename (stored, s->dir);
}

static gboolean
inside_store (BpStore *s, const char *abs)
{
  gsize n = strlen (s->dir);
  return !strncmp (abs, s->dir, n) && abs[n] == G_DIR_SEPARATOR && abs[n + 1];
}

/* rm -r that does not follow symbolic links. */
static void
remove_tree (const char *path)
{
  GStatBuf sb;
  if (g_lstat (path, &sb) != 0)
    return;
  if (S_ISDIR (sb.st_mode)) {
    GDir *d = g_dir_open (path, 0, NULL);
    if (d) {
      const char *name;
      while ((name = g_dir_read_name (d))) {
        g_autofree char *child = g_build_filename (path, name, NULL);
        remove_tree (child);
      }
      g_dir_close (d);
    }
    g_rmdir (path);
  } else {
    g_unlink (path);
  }
}

static char *
run_subdir (BpStore *s, const char *kind, gint64 run_id, GError **error)
{
  g_autofree char *id = g_strdup_printf ("%" G_GINT64_FORMAT, run_id);
  char *dir = g_build_filename (s->dir, kind, id, NULL);
  if (g_mkdir_with_parents (dir, 0700) != 0) {
    int e = errno;
    g_set_error (error, BP_STORE_ERROR,
                 e == EACCES || e == EROFS || e == EPERM ? BP_STORE_ERROR_READ_ONLY : BP_STORE_ERROR_IO,
                 "cannot create the folder %s: %s", dir, g_strerror (e));
    g_free (dir);
    return NULL;
  }
  return dir;
}

char *
bp_store_checkpoint_dir (BpStore *store, gint64 run_id, GError **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  return run_subdir (store, "checkpoints", run_id, error);
}

char *
bp_store_artifact_dir (BpStore *store, gint64 run_id, GError **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  return run_subdir (store, "artifacts", run_id, error);
}

char *
bp_store_checkpoint_path (BpStore *store, gint64 run_id, gint64 epoch, gint64 step,
                          GError **error)
{
  g_autofree char *dir = bp_store_checkpoint_dir (store, run_id, error);
  if (!dir)
    return NULL;
  g_autofree char *name = g_strdup_printf ("epoch-%04" G_GINT64_FORMAT "-step-%09" G_GINT64_FORMAT
                                           ".safetensors", epoch, step);
  return g_build_filename (dir, name, NULL);
}

/* ---- open and close ---- */

static gboolean
migrate (BpStore *s, GError **error)
{
  gint64 version = 0;
  if (!begin_write (s, "upgrade the database schema", error))
    return FALSE;
  /* another process may have migrated between our check and the lock */
  if (!query_int (s, "PRAGMA user_version", &version, "read the schema version", error))
    goto fail;
  if (version > BP_STORE_SCHEMA_VERSION) {
    g_set_error (error, BP_STORE_ERROR, BP_STORE_ERROR_TOO_NEW,
                 "%s has schema version %" G_GINT64_FORMAT ", newer than version %d that this "
                 "program knows: update Backprop Lab to write to it", s->display, version,
                 BP_STORE_SCHEMA_VERSION);
    goto fail;
  }
  for (gint64 v = version; v < BP_STORE_SCHEMA_VERSION; v++) {
    g_autofree char *what = g_strdup_printf ("upgrade the schema from version %" G_GINT64_FORMAT
                                             " to %" G_GINT64_FORMAT, v, v + 1);
    g_autofree char *set = g_strdup_printf ("PRAGMA user_version = %" G_GINT64_FORMAT, v + 1);
    if (!exec (s, migrations[v], what, error) || !exec (s, set, what, error))
      goto fail;
  }
  if (!commit (s, "upgrade the database schema", error))
    return FALSE;
  s->version = BP_STORE_SCHEMA_VERSION;
  return TRUE;
fail:
  rollback (s);
  return FALSE;
}

/* Reads the header values and refuses files that are not ours or too new to write. */
static gboolean
probe (BpStore *s, GError **error)
{
  gint64 app_id = 0, version = 0, n_tables = 0;
  if (!query_int (s, "PRAGMA application_id", &app_id, "read the database", error) ||
      !query_int (s, "PRAGMA user_version", &version, "read the database", error) ||
      !query_int (s, "SELECT count (*) FROM sqlite_master", &n_tables, "read the database", error))
    return FALSE;
  gboolean empty = app_id == 0 && version == 0 && n_tables == 0;
  if (!empty && app_id != BP_STORE_APPLICATION_ID) {
    g_set_error (error, BP_STORE_ERROR, BP_STORE_ERROR_NOT_A_STORE,
                 "%s is an SQLite database but not a Backprop Lab experiment store "
                 "(application id 0x%08" G_GINT64_MODIFIER "x, schema version %" G_GINT64_FORMAT ")",
                 s->display, app_id, version);
    return FALSE;
  }
  if (version > BP_STORE_SCHEMA_VERSION && !s->read_only) {
    g_set_error (error, BP_STORE_ERROR, BP_STORE_ERROR_TOO_NEW,
                 "%s has schema version %" G_GINT64_FORMAT ", newer than version %d that this "
                 "program knows: update Backprop Lab to write to it (it can still be opened "
                 "read-only)", s->display, version, BP_STORE_SCHEMA_VERSION);
    return FALSE;
  }
  s->version = (int) version;
  return TRUE;
}

static gboolean
writable (const char *path)
{
  return g_access (path, W_OK) == 0;
}

/* Clear errors for read-only files and folders before SQLite gives a vaguer one. */
static gboolean
check_writable (BpStore *s, gboolean exists, GError **error)
{
  g_autofree char *wal = g_strconcat (s->path, "-wal", NULL);
  if (exists && !writable (s->path)) {
    g_set_error (error, BP_STORE_ERROR, BP_STORE_ERROR_READ_ONLY,
                 "%s is read-only: cannot open it for writing", s->display);
    return FALSE;
  }
  if (!writable (s->dir) && (!exists || !g_file_test (wal, G_FILE_TEST_EXISTS))) {
    if (exists)
      g_set_error (error, BP_STORE_ERROR, BP_STORE_ERROR_READ_ONLY,
                   "the folder %s is read-only: the database %s needs its -wal and -shm files "
                   "beside it to be written", s->dir, s->display);
    else
      g_set_error (error, BP_STORE_ERROR, BP_STORE_ERROR_READ_ONLY,
                   "cannot create %s: the folder %s is read-only", s->display, s->dir);
    return FALSE;
  }
  return TRUE;
}

static gboolean
open_db (BpStore *s, gboolean immutable, GError **error)
{
  int flags = s->read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  int rc;
  if (immutable) {
    g_autofree char *abs = g_canonicalize_filename (s->path, NULL);
    g_autofree char *esc = g_uri_escape_string (abs, "/", FALSE);
    g_autofree char *uri = g_strconcat ("file:", esc, "?immutable=1", NULL);
    rc = sqlite3_open_v2 (uri, &s->db, flags | SQLITE_OPEN_URI, NULL);
  } else {
    rc = sqlite3_open_v2 (s->path, &s->db, flags, NULL);
  }
  if (rc != SQLITE_OK) {
    set_db_error (s, error, rc, "open the database");
    sqlite3_close (s->db);
    s->db = NULL;
    return FALSE;
  }
  sqlite3_extended_result_codes (s->db, 1);
  sqlite3_busy_timeout (s->db, s->timeout_ms);
  return TRUE;
}

BpStore *
bp_store_open (const char *path, GError **error)
{
  return bp_store_open_full (path, BP_STORE_OPEN_DEFAULT, 0, error);
}

BpStore *
bp_store_open_full (const char *path, BpStoreOpenFlags flags, int busy_timeout_ms, GError **error)
{
  g_return_val_if_fail (path == NULL || path[0] != '\0', NULL);

  BpStore *s = g_new0 (BpStore, 1);
  s->path = path ? g_strdup (path) : bp_store_default_path ();
  s->display = g_filename_display_name (s->path);
  g_autofree char *dirname = g_path_get_dirname (s->path);
  s->dir = g_canonicalize_filename (dirname, NULL);
  s->timeout_ms = busy_timeout_ms > 0 ? busy_timeout_ms : BP_STORE_DEFAULT_BUSY_TIMEOUT_MS;
  s->read_only = (flags & BP_STORE_OPEN_READ_ONLY) != 0;

  gboolean exists = g_file_test (s->path, G_FILE_TEST_EXISTS);
  gboolean created = FALSE;
  if (exists && !g_file_test (s->path, G_FILE_TEST_IS_REGULAR)) {
    g_set_error (error, BP_STORE_ERROR, BP_STORE_ERROR_IO, "%s is not a regular file", s->display);
    goto fail;
  }
  if (s->read_only) {
    if (!exists) {
      g_set_error (error, BP_STORE_ERROR, BP_STORE_ERROR_NOT_FOUND, "there is no database at %s",
                   s->display);
      goto fail;
    }
    if (!open_db (s, FALSE, error))
      goto fail;
    g_autoptr (GError) local = NULL;
    if (!probe (s, &local)) {
      /* a WAL database in a read-only folder: read it as immutable */
      if (local->domain != BP_STORE_ERROR || writable (s->dir) ||
          (local->code != BP_STORE_ERROR_IO && local->code != BP_STORE_ERROR_READ_ONLY)) {
        g_propagate_error (error, g_steal_pointer (&local));
        goto fail;
      }
      sqlite3_close (s->db);
      s->db = NULL;
      if (!open_db (s, TRUE, error) || !probe (s, error))
        goto fail;
    }
    if (!exec (s, "PRAGMA foreign_keys = ON", "configure the connection", error))
      goto fail;
    return s;
  }

  if (!exists && g_mkdir_with_parents (s->dir, 0700) != 0) {
    int e = errno;
    g_set_error (error, BP_STORE_ERROR,
                 e == EACCES || e == EROFS || e == EPERM ? BP_STORE_ERROR_READ_ONLY : BP_STORE_ERROR_IO,
                 "cannot create the folder %s for %s: %s", s->dir, s->display, g_strerror (e));
    goto fail;
  }
  if (!check_writable (s, exists, error))
    goto fail;
  created = !exists;
  if (!open_db (s, FALSE, error))
    goto fail;
  if (sqlite3_db_readonly (s->db, "main") == 1) {
    g_set_error (error, BP_STORE_ERROR, BP_STORE_ERROR_READ_ONLY,
                 "%s is read-only: cannot open it for writing", s->display);
    goto fail;
  }
  /* read-only checks first: nothing is written to a file we refuse */
  if (!probe (s, error))
    goto fail;
  {
    g_autoptr (sqlite3_stmt) st = prepare (s, "PRAGMA journal_mode = WAL", "switch to WAL mode", error);
    if (!st)
      goto fail;
    int rc = sqlite3_step (st);
    if (rc != SQLITE_ROW) {
      set_db_error (s, error, rc, "switch to WAL mode");
      goto fail;
    }
    const char *mode = (const char *) sqlite3_column_text (st, 0);
    if (g_ascii_strcasecmp (mode ? mode : "", "wal")) {
      g_set_error (error, BP_STORE_ERROR, BP_STORE_ERROR_IO,
                   "%s: cannot switch to WAL mode (journal mode stays \"%s\"; is the file on a "
                   "network file system?)", s->display, mode ? mode : "");
      goto fail;
    }
  }
  if (!exec (s, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON", "configure the connection",
             error))
    goto fail;
  if (s->version < BP_STORE_SCHEMA_VERSION && !migrate (s, error))
    goto fail;
  created = FALSE;
  if (!(flags & BP_STORE_OPEN_NO_RECOVERY)) {
    /* best effort: a writer holding the lock must not stop us from opening */
    g_autoptr (GError) local = NULL;
    if (!bp_store_mark_interrupted (s, NULL, &local) && !g_error_matches (local, BP_STORE_ERROR, BP_STORE_ERROR_BUSY)) {
      g_propagate_error (error, g_steal_pointer (&local));
      goto fail;
    }
  }
  return s;

fail:
  bp_store_close (s);
  if (created) {
    /* do not leave an empty database behind a failed first open */
    g_autofree char *p = path ? g_strdup (path) : bp_store_default_path ();
    g_autofree char *wal = g_strconcat (p, "-wal", NULL);
    g_autofree char *shm = g_strconcat (p, "-shm", NULL);
    g_unlink (wal);
    g_unlink (shm);
    g_unlink (p);
  }
  return NULL;
}

void
bp_store_close (BpStore *store)
{
  if (!store)
    return;
  sqlite3_finalize (store->insert_metric);
  if (store->db)
    sqlite3_close (store->db);
  g_free (store->path);
  g_free (store->display);
  g_free (store->dir);
  g_free (store);
}

const char *
bp_store_get_path (BpStore *store)
{
  return store->path;
}

const char *
bp_store_get_dir (BpStore *store)
{
  return store->dir;
}

int
bp_store_get_schema_version (BpStore *store)
{
  return store->version;
}

gboolean
bp_store_check_integrity (BpStore *store, GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_autoptr (GString) problems = g_string_new (NULL);
  int n = 0;
  static const char *const checks[] = {"PRAGMA integrity_check", "PRAGMA foreign_key_check"};
  for (guint c = 0; c < G_N_ELEMENTS (checks); c++) {
    g_autoptr (sqlite3_stmt) st = prepare (store, checks[c], "check the database", error);
    if (!st)
      return FALSE;
    int rc;
    while ((rc = sqlite3_step (st)) == SQLITE_ROW) {
      const char *text = (const char *) sqlite3_column_text (st, 0);
      if (c == 0 && !g_strcmp0 (text, "ok"))
        continue;
      if (n++ < 5)
        g_string_append_printf (problems, "%s%s%s", problems->len ? "; " : "",
                                c == 1 ? "broken reference in table " : "", text ? text : "?");
    }
    if (rc != SQLITE_DONE) {
      set_db_error (store, error, rc, "check the database");
      return FALSE;
    }
  }
  if (n > 0) {
    g_set_error (error, BP_STORE_ERROR, BP_STORE_ERROR_CORRUPT, "%s is damaged: %s%s", store->display,
                 problems->str, n > 5 ? "; ..." : "");
    return FALSE;
  }
  return TRUE;
}

gboolean
bp_store_checkpoint_wal (BpStore *store, GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  return exec (store, "PRAGMA wal_checkpoint(TRUNCATE)", "fold the write-ahead log", error);
}

/* ---- runs ---- */

void
bp_run_free (BpRun *run)
{
  if (!run)
    return;
  g_free (run->name);
  g_free (run->status_reason);
  g_free (run->note);
  g_strfreev (run->tags);
  g_free (run->model_name);
  g_free (run->dataset);
  g_free (run->spec_json);
  g_free (run->config_json);
  g_free (run->versions_json);
  g_free (run->host);
  g_free (run);
}

/* Summary columns 0..18, then details 19..22. */
#define RUN_COLUMNS                                                                                \
  "r.id, r.name, r.status, r.status_reason, r.created_us, r.ended_us, r.heartbeat_us, r.pid, "   \
  "r.note, "                                                                                       \
  "(SELECT group_concat (tag, char (31)) FROM "                                                    \
  "  (SELECT tag FROM tags WHERE run_id = r.id ORDER BY tag)), "                                   \
  "CASE WHEN json_valid (r.spec_json) THEN CASE json_type (r.spec_json, '$.name') "                \
  "  WHEN 'text' THEN json_extract (r.spec_json, '$.name') END END, "                              \
  "CASE WHEN json_valid (r.config_json) THEN CASE json_type (r.config_json, '$.model') "          \
  "  WHEN 'text' THEN json_extract (r.config_json, '$.model') END END, "                           \
  "CASE WHEN json_valid (r.config_json) THEN CASE json_type (r.config_json, '$.dataset') "        \
  "  WHEN 'text' THEN json_extract (r.config_json, '$.dataset') "                                  \
  "  WHEN 'object' THEN json_extract (r.config_json, '$.dataset.name') END END, "                  \
  "(SELECT MAX (value) FROM metrics WHERE run_id = r.id AND split = 'val' AND name = 'accuracy'), " \
  "(SELECT value FROM metrics WHERE run_id = r.id AND split = 'test' AND name = 'accuracy' "       \
  "  ORDER BY step DESC, id DESC LIMIT 1), "                                                       \
  "r.last_step, r.last_epoch, "                                                                   \
  "(SELECT MAX (value) FROM metrics WHERE run_id = r.id AND split = 'val' AND name = 'r2'), "     \
  "(SELECT value FROM metrics WHERE run_id = r.id AND split = 'test' AND name = 'r2' "             \
  "  ORDER BY step DESC, id DESC LIMIT 1)"
#define RUN_DETAIL_COLUMNS ", r.spec_json, r.config_json, r.versions_json, r.host"

static BpRun *
read_run (sqlite3_stmt *st, gboolean details)
{
  BpRun *r = g_new0 (BpRun, 1);
  r->id = sqlite3_column_int64 (st, 0);
  r->name = column_strdup (st, 1);
  if (!bp_run_status_from_string ((const char *) sqlite3_column_text (st, 2), &r->status))
    r->status = BP_RUN_FAILED;
  r->status_reason = column_strdup (st, 3);
  r->created_us = sqlite3_column_int64 (st, 4);
  r->ended_us = sqlite3_column_int64 (st, 5);
  r->heartbeat_us = sqlite3_column_int64 (st, 6);
  r->pid = sqlite3_column_int64 (st, 7);
  r->note = column_strdup (st, 8);
  const char *tags = (const char *) sqlite3_column_text (st, 9);
  r->tags = tags ? g_strsplit (tags, "\x1f", 0) : g_new0 (char *, 1);
  r->model_name = column_strdup (st, 10);
  if (!r->model_name)
    r->model_name = column_strdup (st, 11);
  r->dataset = column_strdup (st, 12);
  r->best_val_accuracy = column_double_or_nan (st, 13);
  r->last_test_accuracy = column_double_or_nan (st, 14);
  r->last_step = sqlite3_column_type (st, 15) == SQLITE_NULL ? -1 : sqlite3_column_int64 (st, 15);
  r->last_epoch = sqlite3_column_type (st, 16) == SQLITE_NULL ? -1 : sqlite3_column_int64 (st, 16);
  r->best_val_r2 = column_double_or_nan (st, 17);
  r->last_test_r2 = column_double_or_nan (st, 18);
  if (details) {
    r->spec_json = column_strdup (st, 19);
    r->config_json = column_strdup (st, 20);
    r->versions_json = column_strdup (st, 21);
    r->host = column_strdup (st, 22);
  }
  if (!r->name)
    r->name = g_strdup ("");
  if (!r->status_reason)
    r->status_reason = g_strdup ("");
  if (!r->note)
    r->note = g_strdup ("");
  return r;
}

gboolean
bp_store_create_run (BpStore *store, const char *name, const char *spec_json,
                     const char *config_json, const char *versions_json, gint64 *run_id,
                     GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  spec_json = spec_json ? spec_json : "{}";
  config_json = config_json ? config_json : "{}";
  versions_json = versions_json ? versions_json : "{}";
  if (name && name[0] && !check_text (store, "run name", name, 256, FALSE, error))
    return FALSE;
  if (!check_json_object (store, "model spec", spec_json, error) ||
      !check_json_object (store, "training configuration", config_json, error) ||
      !check_json_object (store, "versions", versions_json, error))
    return FALSE;
  const char *what = "create a run";
  g_autoptr (sqlite3_stmt) st = prepare (store,
      "INSERT INTO runs (name, created_us, status, spec_json, config_json, versions_json, pid, "
      "  host, owner, heartbeat_us) "
      "VALUES (COALESCE (?1, CASE WHEN json_type (?2, '$.name') = 'text' "
      "  THEN json_extract (?2, '$.name') END, 'run'), ?3, 'running', ?2, ?4, ?5, ?6, ?7, ?8, ?3)",
      what, error);
  if (!st)
    return FALSE;
  gint64 now = g_get_real_time ();
  bind_text_or_null (st, 1, name && name[0] ? name : NULL);
  sqlite3_bind_text (st, 2, spec_json, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (st, 3, now);
  sqlite3_bind_text (st, 4, config_json, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 5, versions_json, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (st, 6, (gint64) getpid ());
  sqlite3_bind_text (st, 7, g_get_host_name (), -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 8, self_owner (), -1, SQLITE_STATIC);
  if (!begin_write (store, what, error))
    return FALSE;
  if (!step_done (store, st, what, error)) {
    rollback (store);
    return FALSE;
  }
  gint64 id = sqlite3_last_insert_rowid (store->db);
  if (!commit (store, what, error))
    return FALSE;
  if (run_id)
    *run_id = id;
  return TRUE;
}

/* Runs one UPDATE/DELETE (parameters bound by the caller) in a write transaction; a missing
 * run (no row changed) is NOT_FOUND. */
static gboolean
update_run_row (BpStore *s, sqlite3_stmt *st, gint64 run_id, const char *what, GError **error)
{
  if (!begin_write (s, what, error))
    return FALSE;
  if (!step_done (s, st, what, error)) {
    rollback (s);
    return FALSE;
  }
  if (sqlite3_changes (s->db) == 0) {
    rollback (s);
    return not_found (s, error, "run", run_id);
  }
  return commit (s, what, error);
}

gboolean
bp_store_set_status (BpStore *store, gint64 run_id, BpRunStatus status, const char *reason,
                     GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  if ((guint) status >= G_N_ELEMENTS (status_names)) {
    g_set_error (error, BP_STORE_ERROR, BP_STORE_ERROR_INVALID, "%s: %d is not a run status",
                 store->display, (int) status);
    return FALSE;
  }
  if (!check_text (store, "status reason", reason ? reason : "", 0, TRUE, error))
    return FALSE;
  const char *what = "set the run status";
  gint64 now = g_get_real_time ();
  g_autoptr (sqlite3_stmt) st = NULL;
  if (status == BP_RUN_RUNNING) {
    st = prepare (store,
                  "UPDATE runs SET status = 'running', status_reason = ?2, ended_us = NULL, "
                  "  pid = ?3, host = ?4, owner = ?5, heartbeat_us = ?6 WHERE id = ?1",
                  what, error);
    if (!st)
      return FALSE;
    sqlite3_bind_int64 (st, 3, (gint64) getpid ());
    sqlite3_bind_text (st, 4, g_get_host_name (), -1, SQLITE_STATIC);
    sqlite3_bind_text (st, 5, self_owner (), -1, SQLITE_STATIC);
  } else {
    st = prepare (store,
                  "UPDATE runs SET status = ?3, status_reason = ?2, ended_us = ?6, "
                  "  heartbeat_us = ?6 WHERE id = ?1",
                  what, error);
    if (!st)
      return FALSE;
    sqlite3_bind_text (st, 3, status_names[status], -1, SQLITE_STATIC);
  }
  sqlite3_bind_int64 (st, 1, run_id);
  sqlite3_bind_text (st, 2, reason ? reason : "", -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64 (st, 6, now);
  if (!update_run_row (store, st, run_id, what, error))
    return FALSE;
  if (status != BP_RUN_RUNNING)
    sqlite3_exec (store->db, "PRAGMA wal_checkpoint(PASSIVE)", NULL, NULL, NULL);
  return TRUE;
}

gboolean
bp_store_heartbeat (BpStore *store, gint64 run_id, GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  const char *what = "record a heartbeat";
  g_autoptr (sqlite3_stmt) st = prepare (store, "UPDATE runs SET heartbeat_us = ?2 WHERE id = ?1",
                                         what, error);
  if (!st)
    return FALSE;
  sqlite3_bind_int64 (st, 1, run_id);
  sqlite3_bind_int64 (st, 2, g_get_real_time ());
  return update_run_row (store, st, run_id, what, error);
}

gboolean
bp_store_rename_run (BpStore *store, gint64 run_id, const char *name, GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  if (!check_text (store, "run name", name, 256, FALSE, error))
    return FALSE;
  const char *what = "rename the run";
  g_autoptr (sqlite3_stmt) st = prepare (store, "UPDATE runs SET name = ?2 WHERE id = ?1", what,
                                         error);
  if (!st)
    return FALSE;
  sqlite3_bind_int64 (st, 1, run_id);
  sqlite3_bind_text (st, 2, name, -1, SQLITE_STATIC);
  return update_run_row (store, st, run_id, what, error);
}

gboolean
bp_store_set_note (BpStore *store, gint64 run_id, const char *note, GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  if (!check_text (store, "note", note ? note : "", 0, TRUE, error))
    return FALSE;
  const char *what = "save the note";
  g_autoptr (sqlite3_stmt) st = prepare (store, "UPDATE runs SET note = ?2 WHERE id = ?1", what,
                                         error);
  if (!st)
    return FALSE;
  sqlite3_bind_int64 (st, 1, run_id);
  sqlite3_bind_text (st, 2, note ? note : "", -1, SQLITE_STATIC);
  return update_run_row (store, st, run_id, what, error);
}

char *
bp_store_get_note (BpStore *store, gint64 run_id, GError **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  g_autoptr (sqlite3_stmt) st = prepare (store, "SELECT note FROM runs WHERE id = ?1",
                                         "read the note", error);
  if (!st)
    return NULL;
  sqlite3_bind_int64 (st, 1, run_id);
  int rc = sqlite3_step (st);
  if (rc == SQLITE_ROW) {
    char *note = column_strdup (st, 0);
    return note ? note : g_strdup ("");
  }
  if (rc == SQLITE_DONE)
    not_found (store, error, "run", run_id);
  else
    set_db_error (store, error, rc, "read the note");
  return NULL;
}

/* Collects absolute paths of the files in column 0 of a query bound to run_id. */
static gboolean
collect_paths (BpStore *s, const char *sql, gint64 run_id, GPtrArray *paths, GError **error)
{
  g_autoptr (sqlite3_stmt) st = prepare (s, sql, "list the run's files", error);
  if (!st)
    return FALSE;
  sqlite3_bind_int64 (st, 1, run_id);
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    if (sqlite3_column_text (st, 0))
      g_ptr_array_add (paths, from_stored_path (s, (const char *) sqlite3_column_text (st, 0)));
  if (rc != SQLITE_DONE) {
    set_db_error (s, error, rc, "list the run's files");
    return FALSE;
  }
  return TRUE;
}

gboolean
bp_store_delete_run (BpStore *store, gint64 run_id, GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  const char *what = "delete the run";
  g_autoptr (GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
  if (!begin_write (store, what, error))
    return FALSE;
  if (!collect_paths (store, "SELECT path FROM checkpoints WHERE run_id = ?1", run_id, paths, error) ||
      !collect_paths (store, "SELECT path FROM artifacts WHERE run_id = ?1", run_id, paths, error))
    goto fail;
  {
    g_autoptr (sqlite3_stmt) st = prepare (store, "DELETE FROM runs WHERE id = ?1", what, error);
    if (!st)
      goto fail;
    sqlite3_bind_int64 (st, 1, run_id);
    if (!step_done (store, st, what, error))
      goto fail;
    if (sqlite3_changes (store->db) == 0) {
      not_found (store, error, "run", run_id);
      goto fail;
    }
  }
  if (!commit (store, what, error))
    return FALSE;
  /* files after the commit: a crash in between leaves stray files, never rows without files */
  for (guint k = 0; k < paths->len; k++)
    if (inside_store (store, paths->pdata[k]))
      g_unlink (paths->pdata[k]);
  static const char *const kinds[] = {"checkpoints", "artifacts"};
  for (guint k = 0; k < G_N_ELEMENTS (kinds); k++) {
    g_autofree char *id = g_strdup_printf ("%" G_GINT64_FORMAT, run_id);
    g_autofree char *dir = g_build_filename (store->dir, kinds[k], id, NULL);
    remove_tree (dir);
  }
  return TRUE;
fail:
  rollback (store);
  return FALSE;
}

BpRun *
bp_store_get_run (BpStore *store, gint64 run_id, GError **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  g_autoptr (sqlite3_stmt) st = prepare (store,
      "SELECT " RUN_COLUMNS RUN_DETAIL_COLUMNS " FROM runs AS r WHERE r.id = ?1", "read the run",
      error);
  if (!st)
    return NULL;
  sqlite3_bind_int64 (st, 1, run_id);
  int rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    return read_run (st, TRUE);
  if (rc == SQLITE_DONE)
    not_found (store, error, "run", run_id);
  else
    set_db_error (store, error, rc, "read the run");
  return NULL;
}

GPtrArray *
bp_store_list_runs (BpStore *store, GError **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  g_autoptr (sqlite3_stmt) st = prepare (store,
      "SELECT " RUN_COLUMNS " FROM runs AS r ORDER BY r.created_us DESC, r.id DESC",
      "list the runs", error);
  if (!st)
    return NULL;
  GPtrArray *runs = g_ptr_array_new_with_free_func ((GDestroyNotify) bp_run_free);
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    g_ptr_array_add (runs, read_run (st, FALSE));
  if (rc != SQLITE_DONE) {
    set_db_error (store, error, rc, "list the runs");
    g_ptr_array_unref (runs);
    return NULL;
  }
  return runs;
}

typedef struct {
  gint64 id;
  char *owner;
  gint64 ended_us;
  char *reason;
} DeadRun;

static void
dead_run_clear (gpointer p)
{
  DeadRun *d = p;
  g_free (d->owner);
  g_free (d->reason);
}

gboolean
bp_store_mark_interrupted (BpStore *store, guint *n_marked, GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  if (n_marked)
    *n_marked = 0;
  const char *what = "mark interrupted runs";
  g_autoptr (GArray) dead = g_array_new (FALSE, TRUE, sizeof (DeadRun));
  g_array_set_clear_func (dead, dead_run_clear);
  {
    g_autoptr (sqlite3_stmt) st = prepare (store,
        "SELECT id, pid, host, owner, heartbeat_us, created_us FROM runs WHERE status = 'running'",
        what, error);
    if (!st)
      return FALSE;
    int rc;
    while ((rc = sqlite3_step (st)) == SQLITE_ROW) {
      gint64 heartbeat = sqlite3_column_type (st, 4) == SQLITE_NULL ? sqlite3_column_int64 (st, 5)
                                                                    : sqlite3_column_int64 (st, 4);
      char *reason = NULL;
      if (writer_is_dead (sqlite3_column_int64 (st, 1), (const char *) sqlite3_column_text (st, 2),
                          (const char *) sqlite3_column_text (st, 3), heartbeat, &reason)) {
        DeadRun d = {sqlite3_column_int64 (st, 0), column_strdup (st, 3), heartbeat, reason};
        g_array_append_val (dead, d);
      }
    }
    if (rc != SQLITE_DONE) {
      set_db_error (store, error, rc, what);
      return FALSE;
    }
  }
  if (dead->len == 0)
    return TRUE;

  g_autoptr (sqlite3_stmt) up = prepare (store,
      "UPDATE runs SET status = 'interrupted', status_reason = ?2, ended_us = ?3 "
      "WHERE id = ?1 AND status = 'running' AND owner IS ?4",
      what, error);
  if (!up || !begin_write (store, what, error))
    return FALSE;
  guint n = 0;
  for (guint k = 0; k < dead->len; k++) {
    DeadRun *d = &g_array_index (dead, DeadRun, k);
    sqlite3_bind_int64 (up, 1, d->id);
    sqlite3_bind_text (up, 2, d->reason, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (up, 3, d->ended_us);
    bind_text_or_null (up, 4, d->owner);
    if (!step_done (store, up, what, error)) {
      rollback (store);
      return FALSE;
    }
    n += (guint) sqlite3_changes (store->db);
  }
  if (!commit (store, what, error))
    return FALSE;
  if (n_marked)
    *n_marked = n;
  return TRUE;
}

/* ---- tags ---- */

static gboolean
check_tag (BpStore *s, const char *tag, GError **error)
{
  gboolean ok = tag && tag[0] && strlen (tag) <= 64 && g_utf8_validate (tag, -1, NULL);
  for (const char *p = tag; ok && *p; p = g_utf8_next_char (p))
    if (g_unichar_iscntrl (g_utf8_get_char (p)))
      ok = FALSE;
  if (!ok)
    g_set_error (error, BP_STORE_ERROR, BP_STORE_ERROR_INVALID,
                 "%s: a tag is non-empty UTF-8 text of at most 64 bytes without control "
                 "characters", s->display);
  return ok;
}

static gboolean
run_exists (BpStore *s, gint64 run_id, GError **error)
{
  gint64 n = 0;
  g_autoptr (sqlite3_stmt) st = prepare (s, "SELECT count (*) FROM runs WHERE id = ?1",
                                         "find the run", error);
  if (!st)
    return FALSE;
  sqlite3_bind_int64 (st, 1, run_id);
  int rc = sqlite3_step (st);
  if (rc != SQLITE_ROW) {
    set_db_error (s, error, rc, "find the run");
    return FALSE;
  }
  n = sqlite3_column_int64 (st, 0);
  if (n == 0)
    return not_found (s, error, "run", run_id);
  return TRUE;
}

static gboolean
tag_change (BpStore *s, gint64 run_id, const char *tag, const char *sql, const char *what,
            GError **error)
{
  if (!check_tag (s, tag, error))
    return FALSE;
  g_autoptr (sqlite3_stmt) st = prepare (s, sql, what, error);
  if (!st || !begin_write (s, what, error))
    return FALSE;
  if (!run_exists (s, run_id, error))
    goto fail;
  sqlite3_bind_int64 (st, 1, run_id);
  sqlite3_bind_text (st, 2, tag, -1, SQLITE_STATIC);
  if (!step_done (s, st, what, error))
    goto fail;
  return commit (s, what, error);
fail:
  rollback (s);
  return FALSE;
}

gboolean
bp_store_add_tag (BpStore *store, gint64 run_id, const char *tag, GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  return tag_change (store, run_id, tag, "INSERT OR IGNORE INTO tags (run_id, tag) VALUES (?1, ?2)",
                     "add the tag", error);
}

gboolean
bp_store_remove_tag (BpStore *store, gint64 run_id, const char *tag, GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  return tag_change (store, run_id, tag, "DELETE FROM tags WHERE run_id = ?1 AND tag = ?2",
                     "remove the tag", error);
}

char **
bp_store_list_tags (BpStore *store, gint64 run_id, GError **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  if (!run_exists (store, run_id, error))
    return NULL;
  g_autoptr (sqlite3_stmt) st = prepare (store,
      "SELECT tag FROM tags WHERE run_id = ?1 ORDER BY tag", "list the tags", error);
  if (!st)
    return NULL;
  sqlite3_bind_int64 (st, 1, run_id);
  g_autoptr (GPtrArray) tags = g_ptr_array_new_with_free_func (g_free);
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    g_ptr_array_add (tags, column_strdup (st, 0));
  if (rc != SQLITE_DONE) {
    set_db_error (store, error, rc, "list the tags");
    return NULL;
  }
  g_ptr_array_add (tags, NULL);
  g_ptr_array_set_free_func (tags, NULL);
  return (char **) g_ptr_array_free (g_steal_pointer (&tags), FALSE);
}

/* ---- metrics ---- */

gboolean
bp_store_log_metrics (BpStore *store, gint64 run_id, gsize n, const BpMetricPoint *points,
                      GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (n == 0 || points != NULL, FALSE);
  const char *what = "save metrics";
  gint64 max_step = G_MININT64, max_epoch = G_MININT64;
  for (gsize i = 0; i < n; i++) {
    if (!points[i].split || !points[i].split[0] || !points[i].name || !points[i].name[0] ||
        !g_utf8_validate (points[i].split, -1, NULL) || !g_utf8_validate (points[i].name, -1, NULL)) {
      g_set_error (error, BP_STORE_ERROR, BP_STORE_ERROR_INVALID,
                   "%s: metric point %" G_GSIZE_FORMAT " needs a non-empty split and name",
                   store->display, i);
      return FALSE;
    }
    max_step = MAX (max_step, points[i].step);
    max_epoch = MAX (max_epoch, points[i].epoch);
  }
  if (!store->insert_metric) {
    int rc = sqlite3_prepare_v3 (store->db,
        "INSERT INTO metrics (run_id, step, epoch, split, name, value, wall_us) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", -1, SQLITE_PREPARE_PERSISTENT,
        &store->insert_metric, NULL);
    if (rc != SQLITE_OK) {
      set_db_error (store, error, rc, what);
      return FALSE;
    }
  }
  g_autoptr (sqlite3_stmt) up = prepare (store,
      "UPDATE runs SET heartbeat_us = ?2, "
      "  last_step = CASE WHEN ?3 IS NULL THEN last_step ELSE MAX (COALESCE (last_step, ?3), ?3) END, "
      "  last_epoch = CASE WHEN ?4 IS NULL THEN last_epoch ELSE MAX (COALESCE (last_epoch, ?4), ?4) END, "
      /* a run wrongly marked interrupted heals when its own writer logs again */
      "  status = CASE WHEN status = 'interrupted' AND owner = ?5 AND pid = ?6 THEN 'running' "
      "    ELSE status END, "
      "  ended_us = CASE WHEN status = 'interrupted' AND owner = ?5 AND pid = ?6 THEN NULL "
      "    ELSE ended_us END "
      "WHERE id = ?1",
      what, error);
  if (!up)
    return FALSE;
  gint64 now = g_get_real_time ();
  sqlite3_bind_int64 (up, 1, run_id);
  sqlite3_bind_int64 (up, 2, now);
  if (n > 0) {
    sqlite3_bind_int64 (up, 3, max_step);
    sqlite3_bind_int64 (up, 4, max_epoch);
  }
  sqlite3_bind_text (up, 5, self_owner (), -1, SQLITE_STATIC);
  sqlite3_bind_int64 (up, 6, (gint64) getpid ());

  if (!begin_write (store, what, error))
    return FALSE;
  if (!step_done (store, up, what, error))
    goto fail;
  if (sqlite3_changes (store->db) == 0) {
    not_found (store, error, "run", run_id);
    goto fail;
  }
  sqlite3_stmt *st = store->insert_metric;
  sqlite3_bind_int64 (st, 1, run_id);
  for (gsize i = 0; i < n; i++) {
    const BpMetricPoint *p = &points[i];
    sqlite3_bind_int64 (st, 2, p->step);
    sqlite3_bind_int64 (st, 3, p->epoch);
    sqlite3_bind_text (st, 4, p->split, -1, SQLITE_STATIC);
    sqlite3_bind_text (st, 5, p->name, -1, SQLITE_STATIC);
    bind_double_or_null (st, 6, p->value);
    sqlite3_bind_int64 (st, 7, p->wall_us ? p->wall_us : now);
    if (!step_done (store, st, what, error)) {
      sqlite3_clear_bindings (st);
      goto fail;
    }
  }
  sqlite3_clear_bindings (st);
  return commit (store, what, error);
fail:
  rollback (store);
  return FALSE;
}

static GArray *
read_points (BpStore *s, sqlite3_stmt *st, gint64 *cursor, const char *what, GError **error)
{
  GArray *out = g_array_new (FALSE, FALSE, sizeof (BpMetricPoint));
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW) {
    BpMetricPoint p = {
      .step = sqlite3_column_int64 (st, 0),
      .epoch = sqlite3_column_int64 (st, 1),
      .split = column_intern (st, 2),
      .name = column_intern (st, 3),
      .value = column_double_or_nan (st, 4),
      .wall_us = sqlite3_column_int64 (st, 5),
    };
    g_array_append_val (out, p);
    if (cursor)
      *cursor = MAX (*cursor, sqlite3_column_int64 (st, 6));
  }
  if (rc != SQLITE_DONE) {
    set_db_error (s, error, rc, what);
    g_array_unref (out);
    return NULL;
  }
  return out;
}

GArray *
bp_store_get_metrics (BpStore *store, gint64 run_id, const char *split, const char *name,
                      GError **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  if (!run_exists (store, run_id, error))
    return NULL;
  const char *what = "read metrics";
  /* only the filters given, so that they can use the index */
  g_autofree char *sql = g_strdup_printf (
      "SELECT step, epoch, split, name, value, wall_us, id FROM metrics WHERE run_id = ?1%s%s "
      "ORDER BY step, id", split ? " AND split = ?2" : "", name ? " AND name = ?3" : "");
  g_autoptr (sqlite3_stmt) st = prepare (store, sql, what, error);
  if (!st)
    return NULL;
  sqlite3_bind_int64 (st, 1, run_id);
  if (split)
    sqlite3_bind_text (st, 2, split, -1, SQLITE_STATIC);
  if (name)
    sqlite3_bind_text (st, 3, name, -1, SQLITE_STATIC);
  return read_points (store, st, NULL, what, error);
}

GArray *
bp_store_get_new_metrics (BpStore *store, gint64 run_id, gint64 *cursor, GError **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  g_return_val_if_fail (cursor != NULL, NULL);
  const char *what = "read new metrics";
  g_autoptr (sqlite3_stmt) st = prepare (store,
      "SELECT step, epoch, split, name, value, wall_us, id FROM metrics "
      "WHERE id > ?2 AND run_id = ?1 ORDER BY id",
      what, error);
  if (!st)
    return NULL;
  sqlite3_bind_int64 (st, 1, run_id);
  sqlite3_bind_int64 (st, 2, *cursor);
  return read_points (store, st, cursor, what, error);
}

gboolean
bp_store_delete_metrics_after (BpStore *store, gint64 run_id, gint64 step, GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  const char *what = "delete metrics";
  g_autoptr (sqlite3_stmt) del = prepare (store,
      "DELETE FROM metrics WHERE run_id = ?1 AND step > ?2", what, error);
  g_autoptr (sqlite3_stmt) up = del ? prepare (store,
      "UPDATE runs SET last_step = (SELECT MAX (step) FROM metrics WHERE run_id = ?1), "
      "  last_epoch = (SELECT MAX (epoch) FROM metrics WHERE run_id = ?1) WHERE id = ?1",
      what, error) : NULL;
  if (!up || !begin_write (store, what, error))
    return FALSE;
  if (!run_exists (store, run_id, error))
    goto fail;
  sqlite3_bind_int64 (del, 1, run_id);
  sqlite3_bind_int64 (del, 2, step);
  sqlite3_bind_int64 (up, 1, run_id);
  if (!step_done (store, del, what, error) || !step_done (store, up, what, error))
    goto fail;
  return commit (store, what, error);
fail:
  rollback (store);
  return FALSE;
}

GArray *
bp_store_get_epoch_summaries (BpStore *store, gint64 run_id, const char *split, const char *name,
                              GError **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  if (!run_exists (store, run_id, error))
    return NULL;
  const char *what = "read epoch summaries";
  g_autofree char *sql = g_strdup_printf (
      "SELECT epoch, split, name, count, mean, min, max, last, last_step FROM epoch_summaries "
      "WHERE run_id = ?1%s%s ORDER BY split, name, epoch",
      split ? " AND split = ?2" : "", name ? " AND name = ?3" : "");
  g_autoptr (sqlite3_stmt) st = prepare (store, sql, what, error);
  if (!st)
    return NULL;
  sqlite3_bind_int64 (st, 1, run_id);
  if (split)
    sqlite3_bind_text (st, 2, split, -1, SQLITE_STATIC);
  if (name)
    sqlite3_bind_text (st, 3, name, -1, SQLITE_STATIC);
  GArray *out = g_array_new (FALSE, FALSE, sizeof (BpEpochSummary));
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW) {
    BpEpochSummary e = {
      .epoch = sqlite3_column_int64 (st, 0),
      .split = column_intern (st, 1),
      .name = column_intern (st, 2),
      .count = sqlite3_column_int64 (st, 3),
      .mean = column_double_or_nan (st, 4),
      .min = column_double_or_nan (st, 5),
      .max = column_double_or_nan (st, 6),
      .last = column_double_or_nan (st, 7),
      .last_step = sqlite3_column_int64 (st, 8),
    };
    g_array_append_val (out, e);
  }
  if (rc != SQLITE_DONE) {
    set_db_error (store, error, rc, what);
    g_array_unref (out);
    return NULL;
  }
  return out;
}

/* ---- artifacts ---- */

void
bp_artifact_free (BpArtifact *a)
{
  if (!a)
    return;
  g_free (a->name);
  g_free (a->kind);
  g_free (a->path);
  if (a->data)
    g_bytes_unref (a->data);
  g_free (a);
}

gboolean
bp_store_add_artifact (BpStore *store, gint64 run_id, const char *name, const char *kind,
                       gint64 step, GBytes *data, const char *path, gint64 *artifact_id,
                       GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  if (!check_text (store, "artifact name", name, 256, FALSE, error) ||
      !check_text (store, "artifact kind", kind, 64, FALSE, error))
    return FALSE;
  if ((data == NULL) == (path == NULL || !path[0])) {
    g_set_error (error, BP_STORE_ERROR, BP_STORE_ERROR_INVALID,
                 "%s: an artifact has either inline data or a file path", store->display);
    return FALSE;
  }
  const char *what = "save the artifact";
  g_autoptr (sqlite3_stmt) st = prepare (store,
      "INSERT INTO artifacts (run_id, name, kind, step, data, path, created_us) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", what, error);
  if (!st)
    return FALSE;
  g_autofree char *stored = path ? to_stored_path (store, path) : NULL;
  sqlite3_bind_int64 (st, 1, run_id);
  sqlite3_bind_text (st, 2, name, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 3, kind, -1, SQLITE_STATIC);
  if (step >= 0)
    sqlite3_bind_int64 (st, 4, step);
  if (data) {
    gsize size;
    const void *bytes = g_bytes_get_data (data, &size);
    sqlite3_bind_blob64 (st, 5, size ? bytes : "", size, SQLITE_STATIC);
  }
  bind_text_or_null (st, 6, stored);
  sqlite3_bind_int64 (st, 7, g_get_real_time ());
  if (!begin_write (store, what, error))
    return FALSE;
  if (!run_exists (store, run_id, error) || !step_done (store, st, what, error)) {
    rollback (store);
    return FALSE;
  }
  gint64 id = sqlite3_last_insert_rowid (store->db);
  if (!commit (store, what, error))
    return FALSE;
  if (artifact_id)
    *artifact_id = id;
  return TRUE;
}

static BpArtifact *
read_artifact (BpStore *s, sqlite3_stmt *st, gboolean with_data)
{
  BpArtifact *a = g_new0 (BpArtifact, 1);
  a->id = sqlite3_column_int64 (st, 0);
  a->run_id = sqlite3_column_int64 (st, 1);
  a->name = column_strdup (st, 2);
  a->kind = column_strdup (st, 3);
  a->step = sqlite3_column_type (st, 4) == SQLITE_NULL ? -1 : sqlite3_column_int64 (st, 4);
  const char *path = (const char *) sqlite3_column_text (st, 5);
  a->path = path ? from_stored_path (s, path) : NULL;
  a->size = sqlite3_column_type (st, 6) == SQLITE_NULL ? -1 : sqlite3_column_int64 (st, 6);
  a->created_us = sqlite3_column_int64 (st, 7);
  if (with_data && sqlite3_column_type (st, 8) != SQLITE_NULL)
    a->data = g_bytes_new (sqlite3_column_blob (st, 8), (gsize) sqlite3_column_bytes (st, 8));
  return a;
}

GPtrArray *
bp_store_list_artifacts (BpStore *store, gint64 run_id, const char *kind, GError **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  if (!run_exists (store, run_id, error))
    return NULL;
  const char *what = "list the artifacts";
  g_autoptr (sqlite3_stmt) st = prepare (store,
      "SELECT id, run_id, name, kind, step, path, length (data), created_us FROM artifacts "
      "WHERE run_id = ?1 AND (?2 IS NULL OR kind = ?2) ORDER BY step, id",
      what, error);
  if (!st)
    return NULL;
  sqlite3_bind_int64 (st, 1, run_id);
  bind_text_or_null (st, 2, kind);
  GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify) bp_artifact_free);
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    g_ptr_array_add (out, read_artifact (store, st, FALSE));
  if (rc != SQLITE_DONE) {
    set_db_error (store, error, rc, what);
    g_ptr_array_unref (out);
    return NULL;
  }
  return out;
}

BpArtifact *
bp_store_get_artifact (BpStore *store, gint64 artifact_id, GError **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  const char *what = "read the artifact";
  g_autoptr (sqlite3_stmt) st = prepare (store,
      "SELECT id, run_id, name, kind, step, path, length (data), created_us, data FROM artifacts "
      "WHERE id = ?1", what, error);
  if (!st)
    return NULL;
  sqlite3_bind_int64 (st, 1, artifact_id);
  int rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    return read_artifact (store, st, TRUE);
  if (rc == SQLITE_DONE)
    not_found (store, error, "artifact", artifact_id);
  else
    set_db_error (store, error, rc, what);
  return NULL;
}

/* ---- checkpoints ---- */

void
bp_checkpoint_free (BpCheckpoint *c)
{
  if (!c)
    return;
  g_free (c->path);
  g_free (c);
}

gboolean
bp_store_add_checkpoint (BpStore *store, gint64 run_id, const char *path, gint64 epoch, gint64 step,
                         double val_metric, gboolean is_best, gint64 *checkpoint_id, GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  if (!check_text (store, "checkpoint path", path, 0, FALSE, error))
    return FALSE;
  const char *what = "register the checkpoint";
  g_autofree char *stored = to_stored_path (store, path);
  g_autoptr (sqlite3_stmt) del = prepare (store,
      "DELETE FROM checkpoints WHERE run_id = ?1 AND path = ?2", what, error);
  g_autoptr (sqlite3_stmt) clear = del ? prepare (store,
      "UPDATE checkpoints SET is_best = 0 WHERE run_id = ?1 AND ?2", what, error) : NULL;
  g_autoptr (sqlite3_stmt) ins = clear ? prepare (store,
      "INSERT INTO checkpoints (run_id, path, epoch, step, val_metric, is_best, created_us) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", what, error) : NULL;
  if (!ins)
    return FALSE;
  sqlite3_bind_int64 (del, 1, run_id);
  sqlite3_bind_text (del, 2, stored, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (clear, 1, run_id);
  sqlite3_bind_int (clear, 2, is_best ? 1 : 0);
  sqlite3_bind_int64 (ins, 1, run_id);
  sqlite3_bind_text (ins, 2, stored, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (ins, 3, epoch);
  sqlite3_bind_int64 (ins, 4, step);
  bind_double_or_null (ins, 5, val_metric);
  sqlite3_bind_int (ins, 6, is_best ? 1 : 0);
  sqlite3_bind_int64 (ins, 7, g_get_real_time ());
  if (!begin_write (store, what, error))
    return FALSE;
  if (!run_exists (store, run_id, error) || !step_done (store, del, what, error) ||
      !step_done (store, clear, what, error) || !step_done (store, ins, what, error)) {
    rollback (store);
    return FALSE;
  }
  gint64 id = sqlite3_last_insert_rowid (store->db);
  if (!commit (store, what, error))
    return FALSE;
  if (checkpoint_id)
    *checkpoint_id = id;
  return TRUE;
}

static gboolean
read_checkpoints (BpStore *s, gint64 run_id, GPtrArray *out, const char *order, GError **error)
{
  g_autofree char *sql = g_strdup_printf (
      "SELECT id, run_id, path, epoch, step, val_metric, is_best, created_us FROM checkpoints "
      "WHERE run_id = ?1 ORDER BY %s", order);
  g_autoptr (sqlite3_stmt) st = prepare (s, sql, "list the checkpoints", error);
  if (!st)
    return FALSE;
  sqlite3_bind_int64 (st, 1, run_id);
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW) {
    BpCheckpoint *c = g_new0 (BpCheckpoint, 1);
    c->id = sqlite3_column_int64 (st, 0);
    c->run_id = sqlite3_column_int64 (st, 1);
    c->path = from_stored_path (s, (const char *) sqlite3_column_text (st, 2));
    c->epoch = sqlite3_column_int64 (st, 3);
    c->step = sqlite3_column_int64 (st, 4);
    c->val_metric = column_double_or_nan (st, 5);
    c->is_best = sqlite3_column_int (st, 6) != 0;
    c->created_us = sqlite3_column_int64 (st, 7);
    g_ptr_array_add (out, c);
  }
  if (rc != SQLITE_DONE) {
    set_db_error (s, error, rc, "list the checkpoints");
    return FALSE;
  }
  return TRUE;
}

GPtrArray *
bp_store_list_checkpoints (BpStore *store, gint64 run_id, GError **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  if (!run_exists (store, run_id, error))
    return NULL;
  GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify) bp_checkpoint_free);
  if (!read_checkpoints (store, run_id, out, "step, id", error)) {
    g_ptr_array_unref (out);
    return NULL;
  }
  return out;
}

gboolean
bp_store_prune_checkpoints (BpStore *store, gint64 run_id, guint keep_last, guint *n_removed,
                            GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  if (n_removed)
    *n_removed = 0;
  const char *what = "prune checkpoints";
  g_autoptr (GPtrArray) all = g_ptr_array_new_with_free_func ((GDestroyNotify) bp_checkpoint_free);
  g_autoptr (GPtrArray) doomed = g_ptr_array_new ();
  g_autoptr (GHashTable) kept_paths = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (sqlite3_stmt) del = prepare (store, "DELETE FROM checkpoints WHERE id = ?1", what, error);
  if (!del || !begin_write (store, what, error))
    return FALSE;
  if (!run_exists (store, run_id, error) ||
      !read_checkpoints (store, run_id, all, "step DESC, id DESC", error))
    goto fail;
  for (guint k = 0; k < all->len; k++) {
    BpCheckpoint *c = all->pdata[k];
    if (k < keep_last || c->is_best)
      g_hash_table_add (kept_paths, c->path);
    else
      g_ptr_array_add (doomed, c);
  }
  for (guint k = 0; k < doomed->len; k++) {
    sqlite3_bind_int64 (del, 1, ((BpCheckpoint *) doomed->pdata[k])->id);
    if (!step_done (store, del, what, error))
      goto fail;
  }
  if (!commit (store, what, error))
    return FALSE;
  /* files after the commit, and only those no kept row names and inside the store folder */
  for (guint k = 0; k < doomed->len; k++) {
    BpCheckpoint *c = doomed->pdata[k];
    if (!g_hash_table_contains (kept_paths, c->path) && inside_store (store, c->path))
      g_unlink (c->path);
  }
  if (n_removed)
    *n_removed = doomed->len;
  return TRUE;
fail:
  rollback (store);
  return FALSE;
}
