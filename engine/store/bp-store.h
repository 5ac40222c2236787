/* bp-store.h: the experiment store: runs, metrics, tags, notes, artifacts and checkpoints in
 * an SQLite database (WAL), with checkpoint files beside it. Schema and layout: doc/store.md. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define BP_STORE_ERROR (bp_store_error_quark ())
GQuark bp_store_error_quark (void);

typedef enum {
  BP_STORE_ERROR_IO,          /* a file or folder cannot be created, opened, read or written */
  BP_STORE_ERROR_READ_ONLY,   /* the database or its folder cannot be written */
  BP_STORE_ERROR_NOT_A_STORE, /* not an SQLite database, or one that is not an experiment store */
  BP_STORE_ERROR_CORRUPT,     /* SQLite reports the database damaged */
  BP_STORE_ERROR_TOO_NEW,     /* written by a newer program (schema version above ours) */
  BP_STORE_ERROR_BUSY,        /* another writer held the lock longer than the busy timeout */
  BP_STORE_ERROR_NOT_FOUND,   /* no such database, run, artifact */
  BP_STORE_ERROR_INVALID,     /* a bad argument: empty name, bad JSON, bad tag */
  BP_STORE_ERROR_FAILED,      /* any other SQLite failure */
} BpStoreError;

/* The schema version this program writes (PRAGMA user_version); older files are migrated. */
#define BP_STORE_SCHEMA_VERSION 2
/* PRAGMA application_id of an experiment store: "BPLB". */
#define BP_STORE_APPLICATION_ID 0x42504C42
#define BP_STORE_DEFAULT_BUSY_TIMEOUT_MS 5000

/* Conventional split and metric names (any non-empty strings are accepted). */
#define BP_SPLIT_TRAIN "train"
#define BP_SPLIT_VAL "val"
#define BP_SPLIT_TEST "test"
#define BP_METRIC_LOSS "loss"
#define BP_METRIC_ACCURACY "accuracy"
#define BP_METRIC_LR "lr"

typedef enum {
  BP_RUN_RUNNING,
  BP_RUN_FINISHED,
  BP_RUN_STOPPED,     /* stopped by the user */
  BP_RUN_FAILED,      /* ended by an error (reason says which) */
  BP_RUN_INTERRUPTED, /* its process died without ending it (crash, kill, power loss) */
} BpRunStatus;

const char *bp_run_status_to_string (BpRunStatus status);
gboolean bp_run_status_from_string (const char *s, BpRunStatus *status);

/* One connection to the database. Open one per thread and use it from that thread only. */
typedef struct BpStore BpStore;

typedef enum {
  BP_STORE_OPEN_DEFAULT = 0,
  BP_STORE_OPEN_READ_ONLY = 1 << 0,   /* no writes, no migration; the file must exist */
  BP_STORE_OPEN_NO_RECOVERY = 1 << 1, /* do not mark dead writers' runs interrupted at open */
} BpStoreOpenFlags;

/* $XDG_DATA_HOME/backprop-lab/experiments.db (newly allocated). */
char *bp_store_default_path (void);

/* Opens (creating it and its folder if needed) the database at `path` (NULL: the default
 * path) for reading and writing, migrates an older schema to the current one, and marks runs
 * whose writing process no longer exists as interrupted (bp_store_mark_interrupted). Refuses,
 * with a GError naming the file and leaving it unchanged: a file that is not an SQLite
 * database or not an experiment store, a damaged one, one with a newer schema, a read-only
 * file or folder. */
BpStore *bp_store_open (const char *path, GError **error);
/* busy_timeout_ms <= 0: the default (5 s). A newer schema may be opened READ_ONLY (best
 * effort: queries that need missing columns fail with an error). */
BpStore *bp_store_open_full (const char *path, BpStoreOpenFlags flags, int busy_timeout_ms,
                             GError **error);
void bp_store_close (BpStore *store);
const char *bp_store_get_path (BpStore *store);
/* The folder that holds the database, the checkpoints/ and artifacts/ folders. */
const char *bp_store_get_dir (BpStore *store);
int bp_store_get_schema_version (BpStore *store);

/* PRAGMA integrity_check and foreign_key_check; a CORRUPT error lists the first problems. */
gboolean bp_store_check_integrity (BpStore *store, GError **error);
/* PRAGMA wal_checkpoint(TRUNCATE): folds the WAL into the database and empties it. */
gboolean bp_store_checkpoint_wal (BpStore *store, GError **error);

/* ---- runs ---- */

/* A run. Lists fill the summary; spec_json, config_json, versions_json, host and owner are
 * NULL in lists and filled by bp_store_get_run. Times are microseconds since the Unix epoch
 * (g_get_real_time). */
typedef struct {
  gint64 id;
  char *name;
  BpRunStatus status;
  char *status_reason;        /* "" when none */
  gint64 created_us;
  gint64 ended_us;            /* 0 while running */
  gint64 heartbeat_us;        /* the writer's last sign of life (0: none) */
  gint64 pid;                 /* the writing process (0: unknown) */
  char *note;                 /* "" when none */
  char **tags;                /* sorted, NULL-terminated */
  /* summary */
  char *model_name;           /* the spec's "name", else the config's "model", else NULL */
  char *dataset;              /* the config's "dataset" (string, or object's "name"), or NULL */
  double best_val_accuracy;   /* max of val/accuracy, NAN when none */
  double last_test_accuracy;  /* the latest test/accuracy, NAN when none */
  double best_val_r2;         /* a regression's: max of val/r2, NAN when none */
  double last_test_r2;        /* a regression's: the latest test/r2, NAN when none */
  gint64 last_step;           /* the largest logged step, -1 before any */
  gint64 last_epoch;          /* the largest logged epoch, -1 before any */
  /* details (bp_store_get_run only) */
  char *spec_json;
  char *config_json;
  char *versions_json;
  char *host;
} BpRun;

void bp_run_free (BpRun *run);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (BpRun, bp_run_free)

/* Creates a run with status running, owned by this process (pid, host, process start time and
 * a heartbeat are stored to detect a dead writer). name: short, UTF-8; NULL or "" takes the
 * model name or "run". The JSON texts must be JSON objects (NULL: "{}"). */
gboolean bp_store_create_run (BpStore *store, const char *name, const char *spec_json,
                              const char *config_json, const char *versions_json, gint64 *run_id,
                              GError **error);
/* Sets the status and its reason (NULL: ""). A final status sets the end time (and folds the
 * WAL, best effort); BP_RUN_RUNNING (resuming) clears it and makes this process the writer. */
gboolean bp_store_set_status (BpStore *store, gint64 run_id, BpRunStatus status,
                              const char *reason, GError **error);
/* Records that the writer is alive (bp_store_log_metrics does this too). */
gboolean bp_store_heartbeat (BpStore *store, gint64 run_id, GError **error);
gboolean bp_store_rename_run (BpStore *store, gint64 run_id, const char *name, GError **error);
gboolean bp_store_set_note (BpStore *store, gint64 run_id, const char *note, GError **error);
char *bp_store_get_note (BpStore *store, gint64 run_id, GError **error);
/* Deletes the run, its metrics, tags, artifacts and checkpoint rows, then the files of its
 * checkpoints and artifacts inside the store folder (checkpoints/<id>/, artifacts/<id>/). */
gboolean bp_store_delete_run (BpStore *store, gint64 run_id, GError **error);

BpRun *bp_store_get_run (BpStore *store, gint64 run_id, GError **error);
/* All runs, newest first, with their summaries: a GPtrArray of BpRun (frees them). */
GPtrArray *bp_store_list_runs (BpStore *store, GError **error);

/* Marks every run that is still "running" but whose writing process has gone (see
 * doc/store.md) as interrupted, with its end time at its last heartbeat. n_marked may be
 * NULL. bp_store_open does this unless BP_STORE_OPEN_NO_RECOVERY is given. */
gboolean bp_store_mark_interrupted (BpStore *store, guint *n_marked, GError **error);

/* ---- tags ---- */

/* Tags are non-empty UTF-8 without control characters, at most 64 bytes; adding a present tag
 * or removing an absent one is not an error. */
gboolean bp_store_add_tag (BpStore *store, gint64 run_id, const char *tag, GError **error);
gboolean bp_store_remove_tag (BpStore *store, gint64 run_id, const char *tag, GError **error);
/* Sorted, NULL-terminated (g_strfreev), NULL on error. */
char **bp_store_list_tags (BpStore *store, gint64 run_id, GError **error);

/* ---- metrics ---- */

typedef struct {
  gint64 step;        /* global optimisation step */
  gint64 epoch;       /* counts from 1; 0 before training */
  const char *split;  /* "train", "val", "test" */
  const char *name;   /* "loss", "accuracy", "lr" */
  double value;       /* NaN is stored (as SQL NULL) and read back as NaN */
  gint64 wall_us;     /* when (µs since the epoch); 0: now */
} BpMetricPoint;

/* Appends n points in one transaction (all or none) and refreshes the run's heartbeat. */
gboolean bp_store_log_metrics (BpStore *store, gint64 run_id, gsize n,
                               const BpMetricPoint *points, GError **error);
/* Points of a run ordered by step (then insertion), optionally only one split and/or name
 * (NULL: all). A GArray of BpMetricPoint whose split and name are interned strings. */
GArray *bp_store_get_metrics (BpStore *store, gint64 run_id, const char *split,
                              const char *name, GError **error);
/* Points added after *cursor (0 at first), in insertion order; advances *cursor. For a reader
 * that follows a live run. */
GArray *bp_store_get_new_metrics (BpStore *store, gint64 run_id, gint64 *cursor,
                                  GError **error);
/* Deletes points with step > step (before resuming from a checkpoint taken at `step`). */
gboolean bp_store_delete_metrics_after (BpStore *store, gint64 run_id, gint64 step,
                                        GError **error);

/* Per-epoch summaries of each (split, name) series: view epoch_summaries. */
typedef struct {
  gint64 epoch;
  const char *split;  /* interned */
  const char *name;   /* interned */
  gint64 count;
  double mean, min, max, last; /* over non-NaN values; NAN when there are none */
  gint64 last_step;
} BpEpochSummary;

/* A GArray of BpEpochSummary ordered by split, name, epoch; split / name NULL: all. */
GArray *bp_store_get_epoch_summaries (BpStore *store, gint64 run_id, const char *split,
                                      const char *name, GError **error);

/* ---- artifacts ---- */

typedef struct {
  gint64 id;
  gint64 run_id;
  char *name;
  char *kind;         /* "png", "attention", "confusion", "samples", ... */
  gint64 step;        /* -1: not tied to a step */
  char *path;         /* absolute path of a file artifact, or NULL */
  GBytes *data;       /* inline content (bp_store_get_artifact only), or NULL */
  gint64 size;        /* bytes of inline content, -1 for a file */
  gint64 created_us;
} BpArtifact;

void bp_artifact_free (BpArtifact *artifact);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (BpArtifact, bp_artifact_free)

/* Stores either data (inline, a few MB at most) or a path (absolute, or relative to the store
 * folder; files inside the store folder are kept relative, so the folder can move). */
gboolean bp_store_add_artifact (BpStore *store, gint64 run_id, const char *name,
                                const char *kind, gint64 step, GBytes *data, const char *path,
                                gint64 *artifact_id, GError **error);
/* Without the inline data; kind NULL: all. A GPtrArray of BpArtifact ordered by step, id. */
GPtrArray *bp_store_list_artifacts (BpStore *store, gint64 run_id, const char *kind,
                                    GError **error);
BpArtifact *bp_store_get_artifact (BpStore *store, gint64 artifact_id, GError **error);
/* <store folder>/artifacts/<run-id>, created (0700) if missing; NULL on error. */
char *bp_store_artifact_dir (BpStore *store, gint64 run_id, GError **error);

/* ---- checkpoints ---- */

typedef struct {
  gint64 id;
  gint64 run_id;
  char *path;          /* absolute */
  gint64 epoch;
  gint64 step;
  double val_metric;   /* NAN when none */
  gboolean is_best;
  gint64 created_us;
} BpCheckpoint;

void bp_checkpoint_free (BpCheckpoint *checkpoint);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (BpCheckpoint, bp_checkpoint_free)

/* <store folder>/checkpoints/<run-id>, created (0700) if missing; NULL on error. */
char *bp_store_checkpoint_dir (BpStore *store, gint64 run_id, GError **error);
/* <checkpoint dir>/epoch-EEEE-step-SSSSSSSSS.safetensors (the folder is created). */
char *bp_store_checkpoint_path (BpStore *store, gint64 run_id, gint64 epoch, gint64 step,
                                GError **error);
/* Registers a written checkpoint file (path absolute or relative to the store folder). A row
 * of the same run with the same path is replaced (the file was overwritten). is_best clears
 * the flag on the run's other checkpoints. */
gboolean bp_store_add_checkpoint (BpStore *store, gint64 run_id, const char *path, gint64 epoch,
                                  gint64 step, double val_metric, gboolean is_best,
                                  gint64 *checkpoint_id, GError **error);
/* A GPtrArray of BpCheckpoint ordered by step, id. */
GPtrArray *bp_store_list_checkpoints (BpStore *store, gint64 run_id, GError **error);
/* Keeps the keep_last latest checkpoints (by step) and the best one, deleting the other rows
 * and then their files (files still named by a kept row stay). n_removed may be NULL. */
gboolean bp_store_prune_checkpoints (BpStore *store, gint64 run_id, guint keep_last,
                                     guint *n_removed, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (BpStore, bp_store_close)

G_END_DECLS
