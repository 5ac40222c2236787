/* backprop.c: the `backprop` command: train (stored as experiments; image classifiers and
 * language models), runs, show, compare, export, generate, rm, tag, note, models, bench, devices
 * (and help for each). */
#include "config.h"

#include <errno.h>
#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Cairo draws `compare --plot`; the CLI is linked with it when meson finds it (the engine
 * library never is). Without it --plot says so. */
#if defined(__has_include)
#if __has_include(<cairo.h>)
#include <cairo.h>
#define HAVE_CAIRO 1
#endif
#endif
#ifndef HAVE_CAIRO
#define HAVE_CAIRO 0
#endif

#include "bp-backend.h"
#include "bp-cli.h"
#include "bp-cmd-attention.h"
#include "bp-cmd-lessons.h"
#include "cuda/bp-cuda.h"
#include "bp-dataset.h"
#include "bp-loader.h"
#include "bp-ops-loss.h"
#include "bp-recorder.h"
#include "bp-rng.h"
#include "bp-safetensors.h"
#include "bp-spec.h"
#include "bp-store.h"
#include "bp-trainer.h"

static const char *prog = "backprop";

/* Strict number parsing: the whole string must be a finite number. */
static gboolean
parse_double (const char *s, double *out)
{
  if (!s || !*s)
    return FALSE;
  char *end = NULL;
  errno = 0;
  double v = g_ascii_strtod (s, &end);
  if (errno || *end || !isfinite (v))
    return FALSE;
  *out = v;
  return TRUE;
}

static gboolean
parse_int (const char *s, gint64 *out)
{
  if (!s || !*s)
    return FALSE;
  char *end = NULL;
  errno = 0;
  gint64 v = g_ascii_strtoll (s, &end, 10);
  if (errno || *end)
    return FALSE;
  *out = v;
  return TRUE;
}

/* ---- device choice ---- */

/* ---- the experiment store ---- */

/* The busy timeout for the store: $BP_BUSY_TIMEOUT_MS, else the store's default (5 s). */
static int
busy_timeout_ms (void)
{
  const char *s = g_getenv ("BP_BUSY_TIMEOUT_MS");
  gint64 v;
  return s && parse_int (s, &v) && v > 0 && v < G_MAXINT ? (int) v : 0;
}

static char *
db_path_or_default (const char *db)
{
  return db ? g_strdup (db) : bp_store_default_path ();
}

typedef enum {
  STORE_READ,   /* listing: falls back to read-only */
  STORE_WRITE,  /* changing stored runs */
  STORE_CREATE, /* a new run: creates the database */
} StoreMode;

/* Opens the store for a command. Without a database (nothing stored yet) READ and WRITE give
 * NULL and 0; READ falls back to a read-only open when the file or its folder cannot be
 * written. Errors print one line and give exit status 1. */
static int
open_store (const char *cmd, const char *db, StoreMode mode, BpStore **out)
{
  g_autofree char *path = db_path_or_default (db);
  gboolean write = mode != STORE_READ;
  *out = NULL;
  if (mode != STORE_CREATE && !g_file_test (path, G_FILE_TEST_EXISTS))
    return 0;
  g_autoptr (GError) error = NULL;
  BpStore *store = bp_store_open_full (path, BP_STORE_OPEN_DEFAULT, busy_timeout_ms (), &error);
  if (!store && !write && g_error_matches (error, BP_STORE_ERROR, BP_STORE_ERROR_READ_ONLY)) {
    g_clear_error (&error);
    store = bp_store_open_full (path, BP_STORE_OPEN_READ_ONLY, busy_timeout_ms (), &error);
  }
  if (!store)
    return bp_cli_fail (cmd, error->message);
  *out = store;
  return 0;
}

/* RUN is a run id or a run name (which must name exactly one run). */
static int
resolve_run (const char *cmd, BpStore *store, const char *db, const char *spec, gint64 *id)
{
  g_autofree char *path = db_path_or_default (db);
  g_autofree char *shown = g_filename_display_name (path);
  if (!store)
    return bp_cli_failf (cmd, "no run \"%s\": there is no database at %s", spec, shown);
  g_autoptr (GError) error = NULL;
  if (bp_cli_all_digits (spec)) {
    gint64 v;
    if (!parse_int (spec, &v))
      return bp_cli_failf (cmd, "no run %s in %s", spec, shown);
    g_autoptr (BpRun) run = bp_store_get_run (store, v, &error);
    if (!run) {
      if (g_error_matches (error, BP_STORE_ERROR, BP_STORE_ERROR_NOT_FOUND))
        return bp_cli_failf (cmd, "no run %s in %s (see `backprop runs`)", spec, shown);
      return bp_cli_fail (cmd, error->message);
    }
    *id = v;
    return 0;
  }
  g_autoptr (GPtrArray) runs = bp_store_list_runs (store, &error);
  if (!runs)
    return bp_cli_fail (cmd, error->message);
  g_autoptr (GString) ids = g_string_new (NULL);
  int n = 0;
  for (guint k = 0; k < runs->len; k++) {
    BpRun *r = g_ptr_array_index (runs, k);
    if (g_strcmp0 (r->name, spec) != 0)
      continue;
    g_string_append_printf (ids, "%s%" G_GINT64_FORMAT, n ? ", " : "", r->id);
    *id = r->id;
    n++;
  }
  if (n == 0)
    return bp_cli_failf (cmd, "no run called \"%s\" in %s (see `backprop runs`)", spec, shown);
  if (n > 1)
    return bp_cli_failf (cmd, "%d runs are called \"%s\" (ids %s): give the id", n, spec, ids->str);
  return 0;
}

static char *
format_time (gint64 us)
{
  if (us <= 0)
    return g_strdup ("-");
  g_autoptr (GDateTime) dt = g_date_time_new_from_unix_local (us / G_USEC_PER_SEC);
  return dt ? g_date_time_format (dt, "%Y-%m-%d %H:%M") : g_strdup ("?");
}

static char *
format_iso_time (gint64 us)
{
  if (us <= 0)
    return NULL;
  g_autoptr (GDateTime) dt = g_date_time_new_from_unix_utc (us / G_USEC_PER_SEC);
  return dt ? g_date_time_format_iso8601 (dt) : NULL;
}

static char *
format_metric (double v, int digits)
{
  return isnan (v) ? g_strdup ("-") : g_strdup_printf ("%.*f", digits, v);
}

/* JSON output, written by hand: json-glib 1.6 writes some doubles as invalid JSON ("1e-08.0").
 * Keys and values are appended in order; commas come by themselves. */
typedef struct {
  GString *s;
  gboolean comma; /* the next key or value at this level needs a comma first */
} Jw;

static Jw *
jw_new (void)
{
  Jw *w = g_new0 (Jw, 1);
  w->s = g_string_new (NULL);
  return w;
}

static void
jw_sep (Jw *w)
{
  if (w->comma)
    g_string_append_c (w->s, ',');
  w->comma = TRUE;
}

static void
jw_quote (GString *s, const char *v)
{
  g_string_append_c (s, '"');
  for (const unsigned char *p = (const unsigned char *) v; *p; p++) {
    if (*p == '"' || *p == '\\')
      g_string_append_printf (s, "\\%c", *p);
    else if (*p < 0x20)
      g_string_append_printf (s, "\\u%04x", *p);
    else
      g_string_append_c (s, (char) *p);
  }
  g_string_append_c (s, '"');
}

static void
jw_begin (Jw *w, char c)
{
  jw_sep (w);
  g_string_append_c (w->s, c);
  w->comma = FALSE;
}

static void
jw_end (Jw *w, char c)
{
  g_string_append_c (w->s, c);
  w->comma = TRUE;
}

static void
jw_key (Jw *w, const char *key)
{
  jw_sep (w);
  jw_quote (w->s, key);
  g_string_append_c (w->s, ':');
  w->comma = FALSE;
}

static void
jw_string (Jw *w, const char *v)
{
  jw_sep (w);
  if (!v)
    g_string_append (w->s, "null");
  else if (g_utf8_validate (v, -1, NULL))
    jw_quote (w->s, v);
  else {
    g_autofree char *valid = g_utf8_make_valid (v, -1);
    jw_quote (w->s, valid);
  }
}

static void
jw_null (Jw *w)
{
  jw_sep (w);
  g_string_append (w->s, "null");
}

static void
jw_bool (Jw *w, gboolean v)
{
  jw_sep (w);
  g_string_append (w->s, v ? "true" : "false");
}

static void
jw_int (Jw *w, gint64 v)
{
  jw_sep (w);
  g_string_append_printf (w->s, "%" G_GINT64_FORMAT, v);
}

/* The shortest text that reads back as v; NaN and infinities as null. */
static void
jw_double (Jw *w, double v)
{
  jw_sep (w);
  char buf[G_ASCII_DTOSTR_BUF_SIZE] = "null";
  for (int digits = 1; isfinite (v) && digits <= 17; digits++) {
    char fmt[8];
    g_snprintf (fmt, sizeof fmt, "%%.%dg", digits);
    g_ascii_formatd (buf, sizeof buf, fmt, v);
    if (g_ascii_strtod (buf, NULL) == v)
      break;
  }
  g_string_append (w->s, buf);
}

/* JSON text from the database as it is, when it is JSON (else null). */
static void
jw_raw (Jw *w, const char *json)
{
  g_autoptr (JsonParser) p = json_parser_new ();
  jw_sep (w);
  if (json && json_parser_load_from_data (p, json, -1, NULL))
    g_string_append (w->s, json);
  else
    g_string_append (w->s, "null");
}

static void
jw_print_free (Jw *w)
{
  printf ("%s\n", w->s->str);
  g_string_free (w->s, TRUE);
  g_free (w);
}

/* JSON helpers for the listing commands */
static void
json_add_double (Jw *b, const char *key, double v)
{
  jw_key (b, key);
  jw_double (b, v);
}

static void
json_add_string (Jw *b, const char *key, const char *v)
{
  jw_key (b, key);
  jw_string (b, v);
}

static void
json_add_int (Jw *b, const char *key, gint64 v)
{
  jw_key (b, key);
  jw_int (b, v);
}

static void
json_add_raw (Jw *b, const char *key, const char *json)
{
  jw_key (b, key);
  jw_raw (b, json);
}

static void
json_add_run_summary (Jw *b, const BpRun *r)
{
  json_add_int (b, "id", r->id);
  json_add_string (b, "name", r->name);
  json_add_string (b, "model", r->model_name);
  json_add_string (b, "dataset", r->dataset);
  json_add_string (b, "status", bp_run_status_to_string (r->status));
  json_add_string (b, "status_reason", r->status_reason);
  json_add_double (b, "best_val_accuracy", r->best_val_accuracy);
  json_add_double (b, "test_accuracy", r->last_test_accuracy);
  json_add_double (b, "best_val_r2", r->best_val_r2);
  json_add_double (b, "test_r2", r->last_test_r2);
  json_add_int (b, "epochs", MAX (r->last_epoch, 0));
  json_add_int (b, "steps", MAX (r->last_step, 0));
  g_autofree char *created = format_iso_time (r->created_us);
  g_autofree char *ended = format_iso_time (r->ended_us);
  json_add_string (b, "created", created);
  json_add_string (b, "ended", ended);
  jw_key (b, "tags");
  jw_begin (b, '[');
  for (int k = 0; r->tags && r->tags[k]; k++)
    jw_string (b, r->tags[k]);
  jw_end (b, ']');
  json_add_string (b, "note", r->note);
}

/* ---- train ---- */

typedef struct {
  gboolean json;
  gboolean tty;
  gint64 last_draw;
  BpTrainer *trainer;
  BpRecorder *recorder;   /* NULL with --no-store */
  const char *db_path;
  GError *record_error;   /* the store could not be written */
} TrainOutput;

static void
print_json_number (const char *key, double v, gboolean comma)
{
  if (isfinite (v))
    printf ("\"%s\":%.6g%s", key, v, comma ? "," : "");
  else
    printf ("\"%s\":null%s", key, comma ? "," : "");
}

/* A JSON string literal (the database path may hold any character). */
static void
print_json_string (const char *key, const char *v, gboolean comma)
{
  g_autoptr (JsonNode) node = json_node_init_string (json_node_alloc (), v);
  g_autofree char *text = json_to_string (node, FALSE);
  printf ("\"%s\":%s%s", key, text, comma ? "," : "");
}

/* Mean entropy (nats) of the attention rows of one layer, over its heads and the probe's
 * positions: how spread the attention is (log T for uniform rows). */
static double
attention_entropy (const BpTrainEvent *ev, int layer)
{
  int64_t n = ev->attn_len;
  const float *w = ev->attn_weights + (gsize) layer * (gsize) ev->attn_heads * (gsize) (n * n);
  double sum = 0.0;
  int64_t rows = 0;
  for (int64_t r = 0; r < (int64_t) ev->attn_heads * n; r++) {
    double h = 0.0, mass = 0.0;
    for (int64_t k = 0; k < n; k++) {
      double p = w[r * n + k];
      mass += p;
      if (p > 0.0)
        h -= p * log (p);
    }
    if (mass > 0.5) {
      sum += h;
      rows++;
    }
  }
  return rows ? sum / (double) rows : NAN;
}

static void
print_attention_json (const BpTrainEvent *ev)
{
  Jw *b = jw_new ();
  jw_begin (b, '{');
  json_add_string (b, "event", "attention");
  json_add_int (b, "epoch", ev->epoch);
  json_add_int (b, "global_step", ev->global_step);
  json_add_int (b, "heads", ev->attn_heads);
  json_add_int (b, "len", ev->attn_len);
  jw_key (b, "layers");
  jw_begin (b, '[');
  for (int l = 0; l < ev->attn_layers; l++)
    jw_string (b, ev->attn_layer_ids[l]);
  jw_end (b, ']');
  jw_key (b, "tokens");
  jw_begin (b, '[');
  for (int64_t k = 0; k < ev->attn_len; k++)
    jw_string (b, ev->attn_tokens[k]);
  jw_end (b, ']');
  /* weights[layer][head][query][key] */
  jw_key (b, "weights");
  jw_begin (b, '[');
  int64_t n = ev->attn_len;
  for (int l = 0; l < ev->attn_layers; l++) {
    jw_begin (b, '[');
    for (int h = 0; h < ev->attn_heads; h++) {
      jw_begin (b, '[');
      for (int64_t i = 0; i < n; i++) {
        jw_begin (b, '[');
        const float *row = ev->attn_weights + ((gsize) (l * ev->attn_heads + h) * (gsize) n +
                                               (gsize) i) * (gsize) n;
        for (int64_t k = 0; k < n; k++) {
          jw_sep (b);
          if (row[k] == 0.0f)
            g_string_append_c (b->s, '0');
          else
            g_string_append_printf (b->s, "%.5g", (double) row[k]);
        }
        jw_end (b, ']');
      }
      jw_end (b, ']');
    }
    jw_end (b, ']');
  }
  jw_end (b, ']');
  jw_end (b, '}');
  jw_print_free (b);
}

static gboolean
train_event (const BpTrainEvent *ev, gpointer user_data)
{
  TrainOutput *out = user_data;
  if (out->record_error)
    return FALSE; /* the store failed: the run ends with its error */
  if (out->recorder && !bp_recorder_event (out->recorder, ev, &out->record_error))
    return FALSE;
  /* a language model: characters instead of images, the unigram baseline beside the loss */
  gboolean lm = isfinite (ev->baseline_loss);
  /* a regression: R² instead of accuracy (examples per second are still "img/s") */
  gboolean reg = ev->task == BP_TASK_REGRESSION;
  const char *rate = lm ? "tok/s" : "img/s";
  switch (ev->kind) {
  case BP_TRAIN_EVENT_START:
    if (out->json)
      break;
    if (lm) {
      const BpTextCorpus *c = bp_trainer_get_corpus (out->trainer);
      printf ("training on %" G_GINT64_FORMAT " characters of %s (%" G_GINT64_FORMAT
              " for validation), vocabulary %" G_GINT64_FORMAT ", context %" G_GINT64_FORMAT
              ", %" G_GINT64_FORMAT " parameters, %" G_GINT64_FORMAT " steps per epoch; "
              "unigram baseline loss %.4f\n",
              ev->n_train, bp_trainer_get_config (out->trainer)->dataset, ev->n_val,
              bp_vocab_size (c->vocab), bp_trainer_get_context (out->trainer), ev->n_params,
              ev->steps_per_epoch, ev->baseline_loss);
    } else {
      printf ("training on %" G_GINT64_FORMAT " examples (%" G_GINT64_FORMAT
              " for validation, %" G_GINT64_FORMAT " for test), %" G_GINT64_FORMAT
              " parameters, %" G_GINT64_FORMAT " steps per epoch%s\n",
              ev->n_train, ev->n_val, ev->n_test, ev->n_params, ev->steps_per_epoch,
              reg ? "; regression: mean squared error on the standardised target, R² reported"
                  : "");
    }
    if (bp_trainer_get_config (out->trainer)->precision == BP_PRECISION_BF16)
      printf ("precision bf16: matrix products with bfloat16 operands, float32 accumulation and "
              "weights\n");
    break;
  case BP_TRAIN_EVENT_STEP:
    if (!out->json && out->tty) {
      gint64 now = g_get_monotonic_time ();
      if (now - out->last_draw < 100000 && ev->step != ev->steps_per_epoch)
        break;
      out->last_draw = now;
      int filled = (int) (30 * ev->step / MAX (1, ev->steps_per_epoch));
      char bar[31];
      memset (bar, '#', (size_t) filled);
      memset (bar + filled, '.', (size_t) (30 - filled));
      bar[30] = '\0';
      printf ("\repoch %d/%d [%s] %3d%% loss %.4f %.0f %s ", ev->epoch, ev->epochs, bar,
              (int) (100 * ev->step / MAX (1, ev->steps_per_epoch)), ev->loss,
              ev->images_per_second, rate);
      fflush (stdout);
    }
    break;
  case BP_TRAIN_EVENT_ATTENTION:
    if (out->json) {
      print_attention_json (ev);
    } else {
      printf ("%sattention at step %" G_GINT64_FORMAT " (%d heads, %" G_GINT64_FORMAT
              " tokens), mean entropy per layer:", out->tty ? "\r\033[K" : "", ev->global_step,
              ev->attn_heads, ev->attn_len);
      for (int l = 0; l < ev->attn_layers; l++)
        printf (" %s %.3f", ev->attn_layer_ids[l], attention_entropy (ev, l));
      printf ("\n");
    }
    fflush (stdout);
    break;
  case BP_TRAIN_EVENT_EPOCH:
    if (out->json) {
      printf ("{\"event\":\"epoch\",\"epoch\":%d,", ev->epoch);
      /* exact values (17 digits) so that runs can be compared bit for bit */
      printf ("\"train_loss\":%.17g,", ev->train_loss);
      print_json_number ("train_accuracy", ev->train_accuracy, TRUE);
      print_json_number ("val_loss", ev->val_loss, TRUE);
      print_json_number ("val_accuracy", ev->val_accuracy, TRUE);
      if (reg)
        print_json_number ("val_r2", ev->val_r2, TRUE);
      print_json_number ("baseline_loss", ev->baseline_loss, TRUE);
      print_json_number ("lr", ev->lr, TRUE);
      print_json_number ("images_per_second", ev->images_per_second, TRUE);
      if (lm)
        print_json_number ("tokens_per_second", ev->images_per_second, TRUE);
      print_json_number ("seconds", ev->seconds, FALSE);
      printf ("}\n");
    } else if (lm) {
      printf ("%sepoch %d/%d: train loss %.4f, accuracy %.4f; val loss %.4f, accuracy %.4f; "
              "unigram baseline %.4f (%.1f s, %.0f tok/s)\n",
              out->tty ? "\r\033[K" : "", ev->epoch, ev->epochs, ev->train_loss,
              ev->train_accuracy, ev->val_loss, ev->val_accuracy, ev->baseline_loss, ev->seconds,
              ev->images_per_second);
    } else if (reg) {
      printf ("%sepoch %d/%d: train loss %.4f; val loss %.4f, R² %.4f (%.1f s, %.0f img/s)\n",
              out->tty ? "\r\033[K" : "", ev->epoch, ev->epochs, ev->train_loss, ev->val_loss,
              ev->val_r2, ev->seconds, ev->images_per_second);
    } else {
      printf ("%sepoch %d/%d: train loss %.4f, accuracy %.4f; val loss %.4f, accuracy %.4f "
              "(%.1f s, %.0f img/s)\n",
              out->tty ? "\r\033[K" : "", ev->epoch, ev->epochs, ev->train_loss,
              ev->train_accuracy, ev->val_loss, ev->val_accuracy, ev->seconds,
              ev->images_per_second);
    }
    fflush (stdout);
    break;
  case BP_TRAIN_EVENT_DONE:
    if (out->json) {
      printf ("{\"event\":\"done\",");
      print_json_number ("test_accuracy", ev->test_accuracy, TRUE);
      if (reg)
        print_json_number ("test_r2", ev->test_r2, TRUE);
      print_json_number ("test_loss", ev->test_loss, TRUE);
      print_json_number ("baseline_loss", ev->baseline_loss, TRUE);
      int done = bp_trainer_get_epochs_done (out->trainer);
      printf ("\"epochs_done\":%d,\"global_step\":%" G_GINT64_FORMAT ",", done, ev->global_step);
      printf ("\"status\":\"%s\",", done < ev->epochs ? "stopped" : "finished");
      if (out->recorder) {
        printf ("\"run_id\":%" G_GINT64_FORMAT ",", bp_recorder_get_run_id (out->recorder));
        print_json_string ("db", out->db_path, TRUE);
      }
      if (bp_trainer_get_step_note (out->trainer)[0])
        print_json_string ("steps", bp_trainer_get_step_note (out->trainer), TRUE);
      print_json_number ("seconds", ev->seconds, FALSE);
      printf ("}\n");
      fflush (stdout);
      break;
    }
    /* how the steps ran on a GPU (CUDA graph captured or why not) */
    if (bp_trainer_get_step_note (out->trainer)[0])
      printf ("%s%s\n", out->tty ? "\r\033[K" : "", bp_trainer_get_step_note (out->trainer));
    if (bp_trainer_get_epochs_done (out->trainer) < ev->epochs) {
      printf ("%sstopped after %.1f s (no test evaluation)\n", out->tty ? "\r\033[K" : "",
              ev->seconds);
    } else if (lm) {
      /* a corpus has no test split: its final metrics are the validation windows' */
      printf ("%sval loss %.4f (unigram baseline %.4f), val accuracy %.4f, %.1f s in all\n",
              out->tty ? "\r\033[K" : "", ev->test_loss, ev->baseline_loss, ev->test_accuracy,
              ev->seconds);
    } else if (reg) {
      printf ("%stest loss %.4f, test R² %.4f, %.1f s in all\n", out->tty ? "\r\033[K" : "",
              ev->test_loss, ev->test_r2, ev->seconds);
    } else {
      printf ("%stest loss %.4f, test accuracy %.4f, %.1f s in all\n", out->tty ? "\r\033[K" : "",
              ev->test_loss, ev->test_accuracy, ev->seconds);
    }
    fflush (stdout);
    break;
  }
  return !bp_cli_stop_signal () && !out->record_error;
}

static gboolean
parse_optimizer (const char *name, BpOptimKind *kind)
{
  if (g_strcmp0 (name, "sgd") == 0)
    *kind = BP_OPTIM_SGD;
  else if (g_strcmp0 (name, "adam") == 0)
    *kind = BP_OPTIM_ADAM;
  else if (g_strcmp0 (name, "adamw") == 0)
    *kind = BP_OPTIM_ADAMW;
  else
    return FALSE;
  return TRUE;
}

static gboolean
parse_scheduler (const char *name, BpSchedKind *kind)
{
  if (g_strcmp0 (name, "none") == 0 || g_strcmp0 (name, "constant") == 0)
    *kind = BP_SCHED_CONSTANT;
  else if (g_strcmp0 (name, "step") == 0)
    *kind = BP_SCHED_STEP;
  else if (g_strcmp0 (name, "cosine") == 0)
    *kind = BP_SCHED_COSINE;
  else if (g_strcmp0 (name, "plateau") == 0)
    *kind = BP_SCHED_PLATEAU;
  else
    return FALSE;
  return TRUE;
}

typedef struct {
  const char *flag;
  char **text;
  enum { NUM_INT, NUM_FLOAT } kind;
  double min, max;
  gboolean min_open; /* value must be > min */
  void *dst;
} NumberFlag;

static int
apply_number_flags (const char *cmd, NumberFlag *flags, gsize n)
{
  for (gsize k = 0; k < n; k++) {
    const char *s = *flags[k].text;
    if (!s)
      continue;
    if (flags[k].kind == NUM_INT) {
      gint64 v;
      if (!parse_int (s, &v))
        return bp_cli_usage_error (cmd, "%s needs a whole number, not \"%s\"", flags[k].flag, s);
      if ((flags[k].min_open ? v <= flags[k].min : v < flags[k].min) || v > flags[k].max)
        return bp_cli_usage_error (cmd, "%s must be between %.0f and %.0f, not %s", flags[k].flag,
                                   flags[k].min, flags[k].max, s);
      *(gint64 *) flags[k].dst = v;
    } else {
      double v;
      if (!parse_double (s, &v))
        return bp_cli_usage_error (cmd, "%s needs a number, not \"%s\"", flags[k].flag, s);
      if ((flags[k].min_open ? v <= flags[k].min : v < flags[k].min) || v > flags[k].max)
        return bp_cli_usage_error (cmd, "%s must be %s %g and at most %g, not %s", flags[k].flag,
                                   flags[k].min_open ? "greater than" : "at least", flags[k].min,
                                   flags[k].max, s);
      *(double *) flags[k].dst = v;
    }
  }
  return 0;
}

/* The run's stored checkpoint settings (resuming keeps them unless given again). */
static void
stored_checkpoint_settings (BpStore *store, gint64 id, gint64 *every, gint64 *keep)
{
  g_autoptr (BpRun) run = bp_store_get_run (store, id, NULL);
  g_autoptr (JsonNode) root = run ? json_from_string (run->config_json, NULL) : NULL;
  if (!root || !JSON_NODE_HOLDS_OBJECT (root))
    return;
  JsonObject *o = json_node_get_object (root);
  if (json_object_has_member (o, "checkpoint_every"))
    *every = json_object_get_int_member (o, "checkpoint_every");
  if (json_object_has_member (o, "keep_checkpoints"))
    *keep = json_object_get_int_member (o, "keep_checkpoints");
}

static int
cmd_train (int argc, char **argv)
{
  const char *cmd = "train";
  char *model = NULL, *spec_file = NULL, *dataset = NULL, *optimizer = NULL, *scheduler = NULL,
       *device = NULL, *db = NULL, *name = NULL, *resume = NULL, *precision = NULL, *cuda_graph = NULL;
  char **tags = NULL;
  char *s_epochs = NULL, *s_batch = NULL, *s_lr = NULL, *s_momentum = NULL, *s_wd = NULL,
       *s_l1 = NULL, *s_clip = NULL, *s_smooth = NULL, *s_step = NULL, *s_gamma = NULL,
       *s_warmup = NULL, *s_seed = NULL, *s_threads = NULL, *s_limit = NULL, *s_limit_test = NULL,
       *s_val = NULL, *s_every = NULL, *s_keep = NULL, *s_context = NULL, *s_steps = NULL,
       *s_eval = NULL, *s_attn = NULL;
  gboolean json = FALSE, nesterov = FALSE, no_store = FALSE;
  GOptionEntry entries[] = {
    {"model", 'm', 0, G_OPTION_ARG_STRING, &model, "Model preset (see `backprop models`); default simple-cnn, digits-mlp for digits, plane-mlp for two-spirals and moons, char-gpt-tiny for a text corpus", "NAME"},
    {"spec", 0, 0, G_OPTION_ARG_FILENAME, &spec_file, "Train the model of a model spec file (JSON, doc/model-spec.md) instead of a preset", "FILE"},
    {"dataset", 'd', 0, G_OPTION_ARG_STRING, &dataset, "Data set: fashion-mnist, digits, iris, wine, breast-cancer, diabetes (regression), two-spirals, moons (see `backprop datasets`), a text corpus (tang300, song100, chinese, fortunes-zh, fortunes, or joins like tang300+song100) or file:PATH (a UTF-8 text file); default fashion-mnist", "NAME"},
    {"epochs", 'e', 0, G_OPTION_ARG_STRING, &s_epochs, "Passes over the training set; default 10 (with --resume: the new total)", "N"},
    {"batch-size", 'b', 0, G_OPTION_ARG_STRING, &s_batch, "Examples per step; default 64", "N"},
    {"optimizer", 'o', 0, G_OPTION_ARG_STRING, &optimizer, "sgd, adam or adamw; default adam", "NAME"},
    {"lr", 0, 0, G_OPTION_ARG_STRING, &s_lr, "Learning rate; default 1e-3 (adam, adamw) or 0.01 (sgd)", "X"},
    {"momentum", 0, 0, G_OPTION_ARG_STRING, &s_momentum, "SGD momentum; default 0", "X"},
    {"nesterov", 0, 0, G_OPTION_ARG_NONE, &nesterov, "Nesterov momentum (SGD)", NULL},
    {"weight-decay", 0, 0, G_OPTION_ARG_STRING, &s_wd, "L2 weight decay (decoupled for adamw); default 0 (0.01 for adamw)", "X"},
    {"l1", 0, 0, G_OPTION_ARG_STRING, &s_l1, "L1 penalty strength; default 0", "X"},
    {"clip-norm", 0, 0, G_OPTION_ARG_STRING, &s_clip, "Clip the gradient's total L2 norm to X; default off", "X"},
    {"label-smoothing", 0, 0, G_OPTION_ARG_STRING, &s_smooth, "Cross-entropy label smoothing in [0, 1); default 0", "X"},
    {"scheduler", 0, 0, G_OPTION_ARG_STRING, &scheduler, "Learning-rate schedule: none, step, cosine or plateau; default none", "NAME"},
    {"step-size", 0, 0, G_OPTION_ARG_STRING, &s_step, "StepLR: epochs between decays; default 10", "N"},
    {"gamma", 0, 0, G_OPTION_ARG_STRING, &s_gamma, "StepLR decay factor; default 0.1", "X"},
    {"warmup", 0, 0, G_OPTION_ARG_STRING, &s_warmup, "Linear warm-up epochs before the schedule; default 0", "N"},
    {"seed", 0, 0, G_OPTION_ARG_STRING, &s_seed, "Random seed (runs repeat bit for bit on the CPU); default 1", "N"},
    {"device", 0, 0, G_OPTION_ARG_STRING, &device, "cpu, cuda or auto (the GPU when one is usable); default auto (with --resume: the run's device)", "DEV"},
    {"precision", 0, 0, G_OPTION_ARG_STRING, &precision, "fp32, or bf16: matrix products (linear, conv, RNN, attention) with bfloat16 operands and float32 accumulation, weights and everything else float32; default fp32 (with --resume: the run's)", "P"},
    {"cuda-graph", 0, 0, G_OPTION_ARG_STRING, &cuda_graph, "on: on a GPU, capture a training step as a CUDA graph and replay it (same results, less launch overhead); off: launch every kernel; default on ($BP_CUDA_GRAPH=0: off)", "on|off"},
    {"threads", 0, 0, G_OPTION_ARG_STRING, &s_threads, "CPU threads; default all cores", "N"},
    {"limit-train", 0, 0, G_OPTION_ARG_STRING, &s_limit, "Use only the first N training examples (quick runs)", "N"},
    {"limit-test", 0, 0, G_OPTION_ARG_STRING, &s_limit_test, "Use only the first N test examples", "N"},
    {"val-fraction", 0, 0, G_OPTION_ARG_STRING, &s_val, "Share of the training set (a corpus: of its entries, at most 0.5) held out for validation; default 0.1", "X"},
    {"context", 0, 0, G_OPTION_ARG_STRING, &s_context, "Text: characters per training window; default the model's context", "N"},
    {"steps-per-epoch", 0, 0, G_OPTION_ARG_STRING, &s_steps, "Text: training steps per epoch; default about one pass over the training characters", "N"},
    {"eval-batches", 0, 0, G_OPTION_ARG_STRING, &s_eval, "Text: validation batches of --batch-size windows; default enough to cover the validation text twice, at most 20", "N"},
    {"attention-every", 0, 0, G_OPTION_ARG_STRING, &s_attn, "Print the attention of the model's attention layers on a fixed probe every N steps and after each epoch (with --json: the weights); default off", "N"},
    {"db", 0, 0, G_OPTION_ARG_FILENAME, &db, "Experiment database; default $XDG_DATA_HOME/backprop-lab/experiments.db", "PATH"},
    {"name", 0, 0, G_OPTION_ARG_STRING, &name, "Name of the stored run; default the model's name", "NAME"},
    {"tag", 0, 0, G_OPTION_ARG_STRING_ARRAY, &tags, "Tag the stored run (repeat for more tags)", "TAG"},
    {"no-store", 0, 0, G_OPTION_ARG_NONE, &no_store, "Do not store the run (no database, no checkpoints)", NULL},
    {"checkpoint-every", 0, 0, G_OPTION_ARG_STRING, &s_every, "Save a checkpoint every N epochs (0: only the best and the last); default 1", "N"},
    {"keep-checkpoints", 0, 0, G_OPTION_ARG_STRING, &s_keep, "Keep the K newest checkpoints besides the best; default 3", "K"},
    {"resume", 0, 0, G_OPTION_ARG_STRING, &resume, "Continue a stored run (id or name) from its newest checkpoint, with its own settings", "RUN"},
    {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON object per epoch and one at the end", NULL},
    {NULL},
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- train a model");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_summary (ctx, "Trains a model on a data set, printing progress per epoch and the test "
                                     "accuracy (a regression: R²) at the end. The run is stored in the experiment database with "
                                     "its metrics and checkpoints (see `backprop runs`); Ctrl-C stops it "
                                     "after the current step with a checkpoint, and --resume continues it.");
  g_autoptr (GError) error = NULL;
  int rc = 0;
  BpStore *store = NULL;
  BpTrainer *trainer = NULL;
  BpRecorder *recorder = NULL;
  g_autofree char *db_path = NULL, *spec_text = NULL;
  char *reason = NULL;
  TrainOutput out = {0};
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    rc = bp_cli_usage_error (cmd, "%s", error->message);
    goto done;
  }
  if (argc > 1) {
    rc = bp_cli_usage_error (cmd, "unexpected argument \"%s\"", argv[1]);
    goto done;
  }

  gint64 epochs = 10, batch = 64, seed = 1, threads = 0, limit = 0, limit_test = 0, step_size = 10,
         warmup = 0, every = 1, keep = 3, context = 0, steps = 0, eval_batches = 0, attn = 0;
  double lr = 0, momentum = 0, wd = 0, l1 = 0, clip = 0, smooth = 0, gamma = 0.1, val = 0.1;
  NumberFlag flags[] = {
    {"--epochs", &s_epochs, NUM_INT, 1, 100000, FALSE, &epochs},
    {"--batch-size", &s_batch, NUM_INT, 1, 1 << 20, FALSE, &batch},
    {"--lr", &s_lr, NUM_FLOAT, 0, 1e3, TRUE, &lr},
    {"--momentum", &s_momentum, NUM_FLOAT, 0, 0.999999, FALSE, &momentum},
    {"--weight-decay", &s_wd, NUM_FLOAT, 0, 1e3, FALSE, &wd},
    {"--l1", &s_l1, NUM_FLOAT, 0, 1e3, FALSE, &l1},
    {"--clip-norm", &s_clip, NUM_FLOAT, 0, 1e9, FALSE, &clip},
    {"--label-smoothing", &s_smooth, NUM_FLOAT, 0, 0.999999, FALSE, &smooth},
    {"--step-size", &s_step, NUM_INT, 1, 1e9, FALSE, &step_size},
    {"--gamma", &s_gamma, NUM_FLOAT, 0, 1, TRUE, &gamma},
    {"--warmup", &s_warmup, NUM_INT, 0, 1e6, FALSE, &warmup},
    {"--seed", &s_seed, NUM_INT, 0, 9.2e18, FALSE, &seed},
    {"--threads", &s_threads, NUM_INT, 1, 1024, FALSE, &threads},
    {"--limit-train", &s_limit, NUM_INT, 1, 1e12, FALSE, &limit},
    {"--limit-test", &s_limit_test, NUM_INT, 1, 1e12, FALSE, &limit_test},
    {"--val-fraction", &s_val, NUM_FLOAT, 0, 0.9, FALSE, &val},
    {"--checkpoint-every", &s_every, NUM_INT, 0, 1e6, FALSE, &every},
    {"--keep-checkpoints", &s_keep, NUM_INT, 1, 1e6, FALSE, &keep},
    {"--context", &s_context, NUM_INT, 1, 1 << 20, FALSE, &context},
    {"--steps-per-epoch", &s_steps, NUM_INT, 1, 1 << 30, FALSE, &steps},
    {"--eval-batches", &s_eval, NUM_INT, 1, 1 << 20, FALSE, &eval_batches},
    {"--attention-every", &s_attn, NUM_INT, 0, 1e12, FALSE, &attn},
  };
  rc = apply_number_flags (cmd, flags, G_N_ELEMENTS (flags));
  if (rc)
    goto done;
  if (no_store && (db || name || tags || s_every || s_keep || resume)) {
    rc = bp_cli_usage_error (cmd, "--no-store cannot be used with --db, --name, --tag, --resume or "
                                  "the checkpoint options");
    goto done;
  }
  for (int k = 0; tags && tags[k]; k++)
    if (!*tags[k] || strlen (tags[k]) > 64 || !g_utf8_validate (tags[k], -1, NULL)) {
      rc = bp_cli_usage_error (cmd, "--tag needs a tag of 1 to 64 bytes, not \"%s\"", tags[k]);
      goto done;
    }
  if (name && (!*name || !g_utf8_validate (name, -1, NULL))) {
    rc = bp_cli_usage_error (cmd, "--name needs a non-empty name");
    goto done;
  }

  BpPrecision want_precision = BP_PRECISION_FP32;
  if (precision && !bp_precision_parse (precision, &want_precision)) {
    rc = bp_cli_usage_error (cmd, "--precision must be fp32 or bf16, not \"%s\"", precision);
    goto done;
  }
  if (cuda_graph && g_strcmp0 (cuda_graph, "on") != 0 && g_strcmp0 (cuda_graph, "off") != 0) {
    rc = bp_cli_usage_error (cmd, "--cuda-graph must be on or off, not \"%s\"", cuda_graph);
    goto done;
  }

  BpTrainConfig c = bp_train_config_default ();
  gint64 resume_id = 0;
  if (resume) {
    /* the run's own settings: only how long, where and how fast may change */
    const char *fixed[] = {model ? "--model" : NULL, spec_file ? "--spec" : NULL,
                           dataset ? "--dataset" : NULL, optimizer ? "--optimizer" : NULL,
                           scheduler ? "--scheduler" : NULL, nesterov ? "--nesterov" : NULL,
                           name ? "--name" : NULL, tags ? "--tag" : NULL};
    for (gsize k = 0; k < G_N_ELEMENTS (fixed); k++)
      if (fixed[k]) {
        rc = bp_cli_usage_error (cmd,
                                 "%s cannot be given with --resume: the run keeps its settings "
                                 "(only --epochs, --device, --precision, --threads and the "
                                 "checkpoint options may change)",
                                 fixed[k]);
        goto done;
      }
    for (gsize k = 0; k < G_N_ELEMENTS (flags); k++) {
      const char *f = flags[k].flag;
      if (*flags[k].text && strcmp (f, "--epochs") && strcmp (f, "--threads") &&
          strcmp (f, "--checkpoint-every") && strcmp (f, "--keep-checkpoints") &&
          strcmp (f, "--attention-every")) {
        rc = bp_cli_usage_error (cmd,
                                 "%s cannot be given with --resume: the run keeps its settings "
                                 "(only --epochs, --device, --precision, --threads, "
                                 "--attention-every and the checkpoint options may change)",
                                 f);
        goto done;
      }
    }
    if ((rc = open_store (cmd, db, STORE_WRITE, &store)) ||
        (rc = resolve_run (cmd, store, db, resume, &resume_id)))
      goto done;
    if (!bp_recorder_run_config (store, resume_id, &c, &error)) {
      rc = bp_cli_fail (cmd, error->message);
      goto done;
    }
    if (s_epochs && (int) epochs != c.epochs) {
      if (c.sched.kind == BP_SCHED_COSINE)
        c.sched.t_max = MAX (1, (int) epochs - c.sched.warmup_epochs);
      c.epochs = (int) epochs;
    }
    gint64 stored_every = every, stored_keep = keep;
    stored_checkpoint_settings (store, resume_id, &stored_every, &stored_keep);
    if (!s_every)
      every = stored_every;
    if (!s_keep)
      keep = stored_keep;
    if (!device)
      device = g_strdup (c.device == BP_DEVICE_CUDA ? "cuda" : "cpu");
    if (s_attn)
      c.attention_every = attn;
  } else {
    if (model && spec_file) {
      rc = bp_cli_usage_error (cmd, "give either --model or --spec, not both");
      goto done;
    }
    BpOptimKind okind = BP_OPTIM_ADAM;
    if (optimizer && !parse_optimizer (optimizer, &okind)) {
      rc =
          bp_cli_usage_error (cmd, "--optimizer must be sgd, adam or adamw, not \"%s\"", optimizer);
      goto done;
    }
    BpSchedKind skind = BP_SCHED_CONSTANT;
    if (scheduler && !parse_scheduler (scheduler, &skind)) {
      rc = bp_cli_usage_error (cmd, "--scheduler must be none, step, cosine or plateau, not \"%s\"",
                               scheduler);
      goto done;
    }
    if (model && !bp_preset_find (model)) {
      rc = bp_cli_usage_error (cmd, "unknown model \"%s\" (see `backprop models`)", model);
      goto done;
    }
    if (spec_file) {
      if (!g_file_get_contents (spec_file, &spec_text, NULL, &error)) {
        rc = bp_cli_usage_error (cmd, "--spec: %s", error->message);
        goto done;
      }
      g_autoptr (BpSpecInfo) info = NULL;
      if (!bp_spec_analyze (spec_text, &info, &error)) {
        g_autofree char *shown = g_filename_display_name (spec_file);
        rc = bp_cli_usage_error (cmd, "--spec %s: %s", shown, error->message);
        goto done;
      }
    }
    c.dataset = dataset ? dataset : "fashion-mnist";
    if (g_str_has_prefix (c.dataset, "file:")) {
      /* stored as an absolute path: a resume from another folder finds the file */
      if (!c.dataset[5]) {
        rc = bp_cli_usage_error (cmd, "--dataset file:PATH needs the path of a UTF-8 text file");
        goto done;
      }
      g_autofree char *abs = g_canonicalize_filename (c.dataset + 5, NULL);
      g_autofree char *full = g_strconcat ("file:", abs, NULL);
      c.dataset = g_intern_string (full);
    }
    gboolean text = bp_train_dataset_is_text (c.dataset);
    if (!text && (s_context || s_steps || s_eval)) {
      rc = bp_cli_usage_error (cmd,
                               "--context, --steps-per-epoch and --eval-batches are for text "
                               "corpora (tang300, song100, chinese, fortunes-zh, fortunes or "
                               "file:PATH), not %s",
                               c.dataset);
      goto done;
    }
    if (text && (s_limit || s_limit_test)) {
      rc =
          bp_cli_usage_error (cmd, "--limit-train and --limit-test are for image data sets: a text "
                                   "corpus run is sized by --steps-per-epoch");
      goto done;
    }
    /* without a model: the small character-level GPT for a corpus, a preset that reads the
     * data set's examples (digits-mlp, plane-mlp), else the course's SimpleCNN */
    const char *by_data = !strcmp (c.dataset, "digits")                                  ? "digits-mlp"
                          : !strcmp (c.dataset, "two-spirals") || !strcmp (c.dataset, "moons") ? "plane-mlp"
                                                                                            : "simple-cnn";
    c.model = model ? model : text ? "char-gpt-tiny" : by_data;
    c.model_json = spec_text;
    c.optim = bp_optim_config_default (okind);
    c.sched = bp_sched_config_default (skind);
    if (s_lr)
      c.optim.lr = (float) lr;
    if (s_wd)
      c.optim.weight_decay = (float) wd;
    if (nesterov && (okind != BP_OPTIM_SGD || momentum <= 0)) {
      rc = bp_cli_usage_error (cmd, "--nesterov needs --optimizer sgd and a --momentum above 0");
      goto done;
    }
    c.epochs = (int) epochs;
    c.batch_size = batch;
    c.optim.momentum = (float) momentum;
    c.optim.nesterov = nesterov;
    c.optim.l1 = (float) l1;
    c.clip_norm = (float) clip;
    c.label_smoothing = (float) smooth;
    c.sched.step_size = (int) step_size;
    c.sched.gamma = (float) gamma;
    c.sched.warmup_epochs = (int) warmup;
    if (skind == BP_SCHED_COSINE)
      c.sched.t_max = MAX (1, c.epochs - c.sched.warmup_epochs);
    c.seed = (uint64_t) seed;
    c.limit_train = limit;
    c.limit_test = limit_test;
    c.val_fraction = val;
    c.context = context;
    c.steps_per_epoch = steps;
    c.eval_batches = eval_batches;
    c.attention_every = attn;
  }
  /* the checkpoints are float32 at either precision: a resumed run may change it */
  if (precision)
    c.precision = want_precision;
  if (!bp_cli_choose_device (device ? device : "auto", &c.device, json, &error)) {
    rc = bp_cli_usage_error (cmd, "%s", error->message);
    goto done;
  }
  bp_set_num_threads ((int) threads);
  bp_cli_catch_stop_signals ();

  /* the store first: a database that cannot be written is found before the data is loaded */
  if (!no_store && !store && (rc = open_store (cmd, db, STORE_CREATE, &store)))
    goto done;
  db_path = store ? g_strdup (bp_store_get_path (store)) : NULL;

  trainer = bp_trainer_new (&c, &error);
  if (!trainer) {
    rc = bp_cli_fail (cmd, error->message);
    goto done;
  }
  if (cuda_graph)
    bp_trainer_set_step_mode (trainer, strcmp (cuda_graph, "on") == 0 ? BP_STEP_GRAPH
                                                                      : BP_STEP_EAGER);
  BpRecorderOptions ro = BP_RECORDER_OPTIONS_INIT;
  ro.name = name;
  ro.tags = (const char *const *) tags;
  ro.checkpoint_every = (int) every;
  ro.keep_checkpoints = (int) keep;
  ro.threads = bp_get_num_threads ();
  if (resume) {
    recorder = bp_recorder_resume (store, trainer, resume_id, &ro, &error);
    if (!recorder) {
      rc = g_error_matches (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_DONE)
               ? bp_cli_usage_error (cmd, "%s", error->message)
               : bp_cli_fail (cmd, error->message);
      goto done;
    }
    if (json) {
      printf ("{\"event\":\"resume\",\"run_id\":%" G_GINT64_FORMAT ",\"epochs_done\":%d,"
              "\"epoch_step\":%" G_GINT64_FORMAT ",\"global_step\":%" G_GINT64_FORMAT ",",
              resume_id, bp_trainer_get_epochs_done (trainer), bp_trainer_get_epoch_step (trainer),
              bp_trainer_get_global_step (trainer));
      if (bp_recorder_get_checkpoint (recorder))
        print_json_string ("checkpoint", bp_recorder_get_checkpoint (recorder), FALSE);
      else
        printf ("\"checkpoint\":null");
      printf ("}\n");
    } else if (bp_recorder_get_checkpoint (recorder)) {
      g_autofree char *shown = g_filename_display_name (bp_recorder_get_checkpoint (recorder));
      printf ("resuming run %" G_GINT64_FORMAT " after epoch %d, step %" G_GINT64_FORMAT
              " (%s)\n", resume_id, bp_trainer_get_epochs_done (trainer),
              bp_trainer_get_global_step (trainer), shown);
    } else {
      printf ("run %" G_GINT64_FORMAT " has no checkpoint: starting it again\n", resume_id);
    }
  } else if (store) {
    recorder = bp_recorder_new (store, trainer, &ro, &error);
    if (!recorder) {
      rc = bp_cli_fail (cmd, error->message);
      goto done;
    }
  }

  out.json = json;
  out.tty = isatty (STDOUT_FILENO);
  out.trainer = trainer;
  out.recorder = recorder;
  out.db_path = db_path;
  gboolean ok = bp_trainer_run (trainer, train_event, &out, &error);
  if (!ok && out.tty && !json)
    printf ("\n");
  if (out.record_error) {
    /* the store failed: try to leave the run marked, then report the store's error */
    if (recorder)
      bp_recorder_finish (recorder, BP_RUN_FAILED, out.record_error->message, NULL);
    rc = bp_cli_fail (cmd, out.record_error->message);
    g_clear_error (&out.record_error);
    goto done;
  }
  BpRunStatus status = !ok ? BP_RUN_FAILED
                       : bp_trainer_get_epochs_done (trainer) >= c.epochs ? BP_RUN_FINISHED
                                                                         : BP_RUN_STOPPED;
  int sig = bp_cli_stop_signal ();
  reason = !ok  ? g_strdup (error->message)
           : sig ? g_strdup_printf ("stopped by %s", sig == SIGINT ? "SIGINT (Ctrl-C)" : "SIGTERM")
                 : NULL;
  if (recorder) {
    g_autoptr (GError) store_error = NULL;
    if (!bp_recorder_finish (recorder, status, reason, &store_error)) {
      rc = bp_cli_fail (cmd, store_error->message);
      goto done;
    }
    g_autofree char *shown = g_filename_display_name (db_path);
    if (!json)
      printf ("run %" G_GINT64_FORMAT " (%s) stored in %s\n", bp_recorder_get_run_id (recorder),
              bp_run_status_to_string (status), shown);
    if (status == BP_RUN_STOPPED && !json)
      printf ("continue it with: backprop train --resume %" G_GINT64_FORMAT "%s%s\n",
              bp_recorder_get_run_id (recorder), db ? " --db " : "", db ? db : "");
  }
  if (!ok && json && recorder) {
    printf ("{\"event\":\"failed\",");
    print_json_string ("error", error->message, TRUE);
    printf ("\"run_id\":%" G_GINT64_FORMAT ",", bp_recorder_get_run_id (recorder));
    print_json_string ("db", db_path, FALSE);
    printf ("}\n");
  }
  if (!ok)
    rc = bp_cli_fail (cmd, error->message);
  else if (bp_cli_stop_signal ())
    rc = 128 + bp_cli_stop_signal ();

done:
  fflush (stdout);
  bp_recorder_free (recorder);
  bp_trainer_free (trainer);
  bp_store_close (store);
  char *texts[] = {s_epochs, s_batch, s_lr, s_momentum, s_wd, s_l1, s_clip, s_smooth, s_step,
                   s_gamma, s_warmup, s_seed, s_threads, s_limit, s_limit_test, s_val, s_every,
                   s_keep, s_context, s_steps, s_eval, s_attn, reason};
  for (gsize k = 0; k < G_N_ELEMENTS (texts); k++)
    g_free (texts[k]);
  g_free (model);
  g_free (spec_file);
  g_free (dataset);
  g_free (optimizer);
  g_free (scheduler);
  g_free (device);
  g_free (precision);
  g_free (cuda_graph);
  g_free (db);
  g_free (name);
  g_free (resume);
  g_strfreev (tags);
  return rc;
}

/* ---- runs ---- */

/* Display width of UTF-8 text (characters; wide CJK characters count two). */
static int
text_width (const char *s)
{
  int w = 0;
  for (const char *p = s; *p; p = g_utf8_next_char (p))
    w += g_unichar_iswide (g_utf8_get_char (p)) ? 2 : 1;
  return w;
}

/* A table printed with columns as wide as their widest cell (right-aligned where asked). */
typedef struct {
  int n_cols;
  const gboolean *right;
  GPtrArray *cells; /* row-major char* */
} Table;

static void
table_add (Table *t, ...)
{
  va_list ap;
  va_start (ap, t);
  for (int k = 0; k < t->n_cols; k++) {
    const char *s = va_arg (ap, const char *);
    g_ptr_array_add (t->cells, g_strdup (s ? s : "-"));
  }
  va_end (ap);
}

static void
table_print (Table *t, const char *indent)
{
  int *w = g_new0 (int, t->n_cols);
  for (guint k = 0; k < t->cells->len; k++)
    w[k % t->n_cols] = MAX (w[k % t->n_cols], text_width (g_ptr_array_index (t->cells, k)));
  for (guint k = 0; k < t->cells->len; k++) {
    int col = (int) (k % t->n_cols);
    const char *s = g_ptr_array_index (t->cells, k);
    int pad = w[col] - text_width (s);
    if (col == 0)
      printf ("%s", indent);
    if (t->right && t->right[col])
      printf ("%*s%s", pad, "", s);
    else if (col == t->n_cols - 1)
      printf ("%s", s);
    else
      printf ("%s%*s", s, pad, "");
    printf (col == t->n_cols - 1 ? "\n" : "  ");
  }
  g_free (w);
}

static Table
table_new (int n_cols, const gboolean *right)
{
  Table t = {n_cols, right, g_ptr_array_new_with_free_func (g_free)};
  return t;
}

static void
table_free (Table *t)
{
  g_ptr_array_unref (t->cells);
}

/* Name shortened to n characters with an ellipsis. */
static char *
shorten (const char *s, int n)
{
  if (!s)
    return g_strdup ("-");
  if (g_utf8_strlen (s, -1) <= n)
    return g_strdup (s);
  g_autofree char *head = g_utf8_substring (s, 0, n - 1);
  return g_strconcat (head, "…", NULL);
}

static gboolean
has_tag (const BpRun *r, const char *tag)
{
  for (int k = 0; r->tags && r->tags[k]; k++)
    if (strcmp (r->tags[k], tag) == 0)
      return TRUE;
  return FALSE;
}

static int
cmd_runs (int argc, char **argv)
{
  const char *cmd = "runs";
  g_autofree char *db = NULL, *tag = NULL, *status = NULL;
  gboolean json = FALSE;
  GOptionEntry entries[] = {
    {"db", 0, 0, G_OPTION_ARG_FILENAME, &db, "Experiment database; default $XDG_DATA_HOME/backprop-lab/experiments.db", "PATH"},
    {"tag", 0, 0, G_OPTION_ARG_STRING, &tag, "Only runs with this tag", "TAG"},
    {"status", 0, 0, G_OPTION_ARG_STRING, &status, "Only runs with this status: running, finished, stopped, failed or interrupted", "STATUS"},
    {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print a JSON array", NULL},
    {NULL},
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- list the stored runs");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_summary (ctx, "Lists the runs in the experiment database, newest first: id, name, "
                                     "model, data set, status, best validation accuracy and date.");
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return bp_cli_usage_error (cmd, "%s", error->message);
  if (argc > 1)
    return bp_cli_usage_error (cmd, "unexpected argument \"%s\"", argv[1]);
  BpRunStatus want;
  if (status && !bp_run_status_from_string (status, &want))
    return bp_cli_usage_error (cmd,
                               "--status must be running, finished, stopped, failed or "
                               "interrupted, not \"%s\"",
                               status);
  g_autoptr (BpStore) store = NULL;
  int rc = open_store (cmd, db, STORE_READ, &store);
  if (rc)
    return rc;
  g_autoptr (GPtrArray) runs = store ? bp_store_list_runs (store, &error)
                                     : g_ptr_array_new_with_free_func ((GDestroyNotify) bp_run_free);
  if (!runs)
    return bp_cli_fail (cmd, error->message);
  for (guint k = runs->len; k-- > 0;) {
    BpRun *r = g_ptr_array_index (runs, k);
    if ((tag && !has_tag (r, tag)) || (status && r->status != want))
      g_ptr_array_remove_index (runs, k);
  }
  if (json) {
    Jw *b = jw_new ();
    jw_begin (b, '[');
    for (guint k = 0; k < runs->len; k++) {
      jw_begin (b, '{');
      json_add_run_summary (b, g_ptr_array_index (runs, k));
      jw_end (b, '}');
    }
    jw_end (b, ']');
    jw_print_free (b);
    return 0;
  }
  if (runs->len == 0) {
    g_autofree char *path = db_path_or_default (db);
    g_autofree char *shown = g_filename_display_name (path);
    printf ("no runs%s in %s\n", tag || status ? " match" : "", shown);
    return 0;
  }
  static const gboolean right[] = {TRUE, FALSE, FALSE, FALSE, FALSE, TRUE, FALSE};
  Table t = table_new (7, right);
  table_add (&t, "ID", "NAME", "MODEL", "DATA SET", "STATUS", "BEST VAL", "DATE");
  for (guint k = 0; k < runs->len; k++) {
    BpRun *r = g_ptr_array_index (runs, k);
    g_autofree char *id = g_strdup_printf ("%" G_GINT64_FORMAT, r->id);
    g_autofree char *name = shorten (r->name, 28);
    /* a regression's best validation R² in the same column, marked */
    g_autofree char *r2 = format_metric (r->best_val_r2, 4);
    g_autofree char *acc = isnan (r->best_val_accuracy) && !isnan (r->best_val_r2)
                             ? g_strconcat ("R² ", r2, NULL)
                             : format_metric (r->best_val_accuracy, 4);
    g_autofree char *date = format_time (r->created_us);
    table_add (&t, id, name, r->model_name, r->dataset, bp_run_status_to_string (r->status), acc,
               date);
  }
  table_print (&t, "");
  table_free (&t);
  return 0;
}

/* ---- per-epoch series of a run ---- */

typedef struct {
  const char *split, *name, *title, *json_key;
  int digits;
} EpochColumn;

static const EpochColumn epoch_columns[] = {
  {BP_SPLIT_TRAIN, BP_METRIC_EPOCH_LOSS, "TRAIN LOSS", "train_loss", 4},
  {BP_SPLIT_TRAIN, BP_METRIC_EPOCH_ACCURACY, "TRAIN ACC", "train_accuracy", 4},
  {BP_SPLIT_VAL, BP_METRIC_LOSS, "VAL LOSS", "val_loss", 4},
  {BP_SPLIT_VAL, BP_METRIC_ACCURACY, "VAL ACC", "val_accuracy", 4},
  {BP_SPLIT_VAL, BP_METRIC_R2, "VAL R²", "val_r2", 4},
  {BP_SPLIT_TRAIN, BP_METRIC_LR, "LR", "lr", -1},
  {BP_SPLIT_TRAIN, BP_METRIC_IMAGES_PER_SECOND, "IMG/S", "images_per_second", 0},
  {BP_SPLIT_TRAIN, BP_METRIC_EPOCH_SECONDS, "SECONDS", "seconds", 1},
};
#define N_EPOCH_COLUMNS ((int) G_N_ELEMENTS (epoch_columns))

/* values[epoch - 1][column] (NAN where missing) for epochs 1..n, and each epoch's last step. */
typedef struct {
  int n;
  double (*values)[N_EPOCH_COLUMNS];
  gint64 *step;
} EpochTable;

static void
epoch_table_free (EpochTable *t)
{
  g_free (t->values);
  g_free (t->step);
}

static gboolean
epoch_table_read (BpStore *store, gint64 id, EpochTable *t, GError **error)
{
  memset (t, 0, sizeof *t);
  GArray *series[N_EPOCH_COLUMNS] = {NULL};
  gboolean ok = TRUE;
  for (int c = 0; c < N_EPOCH_COLUMNS && ok; c++) {
    series[c] = bp_store_get_metrics (store, id, epoch_columns[c].split, epoch_columns[c].name,
                                      error);
    ok = series[c] != NULL;
  }
  for (int c = 0; c < N_EPOCH_COLUMNS && ok; c++)
    for (guint k = 0; k < series[c]->len; k++)
      t->n = (int) MAX (t->n, g_array_index (series[c], BpMetricPoint, k).epoch);
  if (ok) {
    t->values = g_malloc (sizeof (double) * (gsize) MAX (t->n, 1) * N_EPOCH_COLUMNS);
    t->step = g_new0 (gint64, MAX (t->n, 1));
    for (int e = 0; e < t->n; e++)
      for (int c = 0; c < N_EPOCH_COLUMNS; c++)
        t->values[e][c] = NAN;
    for (int c = 0; c < N_EPOCH_COLUMNS; c++)
      for (guint k = 0; k < series[c]->len; k++) {
        BpMetricPoint *p = &g_array_index (series[c], BpMetricPoint, k);
        if (p->epoch >= 1) {
          t->values[p->epoch - 1][c] = p->value;
          t->step[p->epoch - 1] = MAX (t->step[p->epoch - 1], p->step);
        }
      }
  }
  for (int c = 0; c < N_EPOCH_COLUMNS; c++)
    if (series[c])
      g_array_unref (series[c]);
  return ok;
}

/* The latest value of a series (NAN when none). */
static double
latest (BpStore *store, gint64 id, const char *split, const char *name)
{
  g_autoptr (GArray) a = bp_store_get_metrics (store, id, split, name, NULL);
  return a && a->len ? g_array_index (a, BpMetricPoint, a->len - 1).value : NAN;
}

/* Final metrics of a run: the names used by show and compare. */
typedef struct {
  const char *key, *title;
  double value;
} FinalMetric;

enum { FM_TRAIN_LOSS, FM_TRAIN_ACC, FM_VAL_LOSS, FM_VAL_ACC, FM_BEST_VAL, FM_TEST_LOSS,
       FM_TEST_ACC, FM_VAL_R2, FM_BEST_VAL_R2, FM_TEST_R2, FM_COUNT };

static void
final_metrics (BpStore *store, const BpRun *run, FinalMetric *fm)
{
  static const char *keys[][2] = {
    {"train_loss", "train loss"}, {"train_accuracy", "train accuracy"},
    {"val_loss", "val loss"}, {"val_accuracy", "val accuracy"},
    {"best_val_accuracy", "best val accuracy"}, {"test_loss", "test loss"},
    {"test_accuracy", "test accuracy"}, {"val_r2", "val R²"}, {"best_val_r2", "best val R²"},
    {"test_r2", "test R²"},
  };
  for (int k = 0; k < FM_COUNT; k++) {
    fm[k].key = keys[k][0];
    fm[k].title = keys[k][1];
  }
  fm[FM_TRAIN_LOSS].value = latest (store, run->id, BP_SPLIT_TRAIN, BP_METRIC_EPOCH_LOSS);
  fm[FM_TRAIN_ACC].value = latest (store, run->id, BP_SPLIT_TRAIN, BP_METRIC_EPOCH_ACCURACY);
  fm[FM_VAL_LOSS].value = latest (store, run->id, BP_SPLIT_VAL, BP_METRIC_LOSS);
  fm[FM_VAL_ACC].value = latest (store, run->id, BP_SPLIT_VAL, BP_METRIC_ACCURACY);
  fm[FM_BEST_VAL].value = run->best_val_accuracy;
  fm[FM_TEST_LOSS].value = latest (store, run->id, BP_SPLIT_TEST, BP_METRIC_LOSS);
  fm[FM_TEST_ACC].value = latest (store, run->id, BP_SPLIT_TEST, BP_METRIC_ACCURACY);
  fm[FM_VAL_R2].value = latest (store, run->id, BP_SPLIT_VAL, BP_METRIC_R2);
  fm[FM_BEST_VAL_R2].value = run->best_val_r2;
  fm[FM_TEST_R2].value = run->last_test_r2;
}

/* Flattens a JSON object into "key" / "group.key" -> value text, in order. */
static void
flatten_json (JsonObject *o, const char *prefix, GPtrArray *keys, GHashTable *values)
{
  g_autoptr (GList) members = json_object_get_members (o);
  for (GList *l = members; l; l = l->next) {
    const char *k = l->data;
    JsonNode *n = json_object_get_member (o, k);
    g_autofree char *key = prefix ? g_strconcat (prefix, ".", k, NULL) : g_strdup (k);
    if (JSON_NODE_HOLDS_OBJECT (n)) {
      flatten_json (json_node_get_object (n), key, keys, values);
      continue;
    }
    char *text;
    if (JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_STRING)
      text = g_strdup (json_node_get_string (n));
    else if (JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_DOUBLE) {
      char buf[G_ASCII_DTOSTR_BUF_SIZE];
      text = g_strdup (g_ascii_formatd (buf, sizeof buf, "%.9g", json_node_get_double (n)));
    } else
      text = json_to_string (n, FALSE);
    if (!g_hash_table_contains (values, key))
      g_ptr_array_add (keys, g_strdup (key));
    g_hash_table_replace (values, g_steal_pointer (&key), text);
  }
}

/* The config of a run flattened, with the model's name in front; new keys are appended to
 * keys (shared by the runs of a comparison). */
static GHashTable *
run_settings (const BpRun *run, GPtrArray *keys)
{
  GHashTable *values = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  if (!g_ptr_array_find_with_equal_func (keys, "model", g_str_equal, NULL))
    g_ptr_array_insert (keys, 0, g_strdup ("model"));
  g_autoptr (JsonNode) root = run->config_json ? json_from_string (run->config_json, NULL) : NULL;
  if (root && JSON_NODE_HOLDS_OBJECT (root)) {
    g_autoptr (GPtrArray) mine = g_ptr_array_new_with_free_func (g_free);
    flatten_json (json_node_get_object (root), NULL, mine, values);
    for (guint k = 0; k < mine->len; k++)
      if (!g_ptr_array_find_with_equal_func (keys, g_ptr_array_index (mine, k), g_str_equal, NULL))
        g_ptr_array_add (keys, g_strdup (g_ptr_array_index (mine, k)));
  }
  /* the config's "model" is the preset name (null for a spec): show the spec's name */
  g_hash_table_replace (values, g_strdup ("model"),
                        g_strdup (run->model_name ? run->model_name : "-"));
  return values;
}

/* A language model's run: the facts its config keeps (vocab_size, unigram_loss) and its
 * context (the spec's Input length). FALSE for other runs. */
typedef struct {
  gint64 vocab_size, context;
  double unigram_loss;
} LmInfo;

static gboolean
run_lm_info (const BpRun *run, LmInfo *info)
{
  info->vocab_size = info->context = 0;
  info->unigram_loss = NAN;
  g_autoptr (JsonNode) root = run->config_json ? json_from_string (run->config_json, NULL) : NULL;
  if (!root || !JSON_NODE_HOLDS_OBJECT (root))
    return FALSE;
  JsonObject *o = json_node_get_object (root);
  JsonNode *u = json_object_get_member (o, "unigram_loss");
  if (!u || !JSON_NODE_HOLDS_VALUE (u))
    return FALSE;
  info->unigram_loss = json_node_get_value_type (u) == G_TYPE_INT64 ? (double) json_node_get_int (u)
                                                                    : json_node_get_double (u);
  if (json_object_has_member (o, "vocab_size"))
    info->vocab_size = json_object_get_int_member (o, "vocab_size");
  g_autoptr (BpSpec) spec = run->spec_json ? bp_spec_parse (run->spec_json, NULL) : NULL;
  for (int k = 0; spec && k < spec->n_nodes; k++)
    if (spec->nodes[k].kind == BP_LAYER_INPUT && spec->nodes[k].shape.ndim == 1)
      info->context = spec->nodes[k].shape.d[0];
  return TRUE;
}

static char *
format_lr (double v)
{
  return isnan (v) ? g_strdup ("-") : g_strdup_printf ("%.3g", v);
}

static int
cmd_show (int argc, char **argv)
{
  const char *cmd = "show";
  g_autofree char *db = NULL;
  gboolean json = FALSE;
  GOptionEntry entries[] = {
    {"db", 0, 0, G_OPTION_ARG_FILENAME, &db, "Experiment database; default $XDG_DATA_HOME/backprop-lab/experiments.db", "PATH"},
    {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON object", NULL},
    {NULL},
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("RUN - show a stored run");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_summary (ctx, "Shows a run (id or name): its settings, final metrics, a table of its "
                                     "epochs, its checkpoints, tags and note.");
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return bp_cli_usage_error (cmd, "%s", error->message);
  if (argc != 2)
    return bp_cli_usage_error (
        cmd, argc < 2 ? "which run? (give its id or name)" : "unexpected argument \"%s\"",
        argv[argc < 2 ? 0 : 2]);
  g_autoptr (BpStore) store = NULL;
  gint64 id;
  int rc = open_store (cmd, db, STORE_READ, &store);
  if (rc || (rc = resolve_run (cmd, store, db, argv[1], &id)))
    return rc;
  g_autoptr (BpRun) run = bp_store_get_run (store, id, &error);
  EpochTable et;
  g_autoptr (GPtrArray) cps = run ? bp_store_list_checkpoints (store, id, &error) : NULL;
  if (!run || !cps || !epoch_table_read (store, id, &et, &error))
    return bp_cli_fail (cmd, error->message);
  FinalMetric fm[FM_COUNT];
  final_metrics (store, run, fm);
  g_autoptr (GPtrArray) keys = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GHashTable) settings = run_settings (run, keys);
  LmInfo lm;
  gboolean is_lm = run_lm_info (run, &lm);

  if (json) {
    Jw *b = jw_new ();
    jw_begin (b, '{');
    json_add_run_summary (b, run);
    json_add_string (b, "host", run->host);
    json_add_int (b, "pid", run->pid);
    json_add_raw (b, "config", run->config_json);
    json_add_raw (b, "spec", run->spec_json);
    json_add_raw (b, "versions", run->versions_json);
    /* a language model's unigram baseline (null for other runs); its final test metrics are
     * the validation windows' (a corpus has no test split) */
    json_add_double (b, "baseline_loss", is_lm ? lm.unigram_loss : NAN);
    jw_key (b, "final");
    jw_begin (b, '{');
    for (int k = 0; k < FM_COUNT; k++)
      json_add_double (b, fm[k].key, fm[k].value);
    jw_end (b, '}');
    jw_key (b, "epochs_table");
    jw_begin (b, '[');
    for (int e = 0; e < et.n; e++) {
      jw_begin (b, '{');
      json_add_int (b, "epoch", e + 1);
      json_add_int (b, "step", et.step[e]);
      for (int c = 0; c < N_EPOCH_COLUMNS; c++)
        json_add_double (b, epoch_columns[c].json_key, et.values[e][c]);
      jw_end (b, '}');
    }
    jw_end (b, ']');
    jw_key (b, "checkpoints");
    jw_begin (b, '[');
    for (guint k = 0; k < cps->len; k++) {
      BpCheckpoint *cp = g_ptr_array_index (cps, k);
      jw_begin (b, '{');
      json_add_string (b, "path", cp->path);
      json_add_int (b, "epoch", cp->epoch);
      json_add_int (b, "step", cp->step);
      json_add_double (b, "val_accuracy", cp->val_metric);
      jw_key (b, "best");
      jw_bool (b, cp->is_best);
      jw_end (b, '}');
    }
    jw_end (b, ']');
    jw_end (b, '}');
    jw_print_free (b);
    epoch_table_free (&et);
    return 0;
  }

  g_autofree char *created = format_time (run->created_us);
  g_autofree char *ended = format_time (run->ended_us);
  printf ("run %" G_GINT64_FORMAT " \"%s\": %s%s%s%s\n", run->id, run->name,
          bp_run_status_to_string (run->status), *run->status_reason ? " (" : "",
          run->status_reason, *run->status_reason ? ")" : "");
  printf ("  model %s, data set %s, started %s, ended %s", run->model_name ? run->model_name : "-",
          run->dataset ? run->dataset : "-", created, ended);
  if (run->ended_us > 0)
    printf (" (%.1f s)", (double) (run->ended_us - run->created_us) / 1e6);
  printf ("\n");
  if (is_lm)
    printf ("  language model: vocabulary %" G_GINT64_FORMAT " characters, context %" G_GINT64_FORMAT
            "; unigram baseline loss %.4f (test metrics are the validation text's)\n",
            lm.vocab_size, lm.context, lm.unigram_loss);
  if (run->tags && run->tags[0]) {
    g_autofree char *tags = g_strjoinv (", ", run->tags);
    printf ("  tags: %s\n", tags);
  }
  if (*run->note)
    printf ("  note: %s\n", run->note);

  printf ("\nsettings:\n");
  Table st = table_new (2, NULL);
  for (guint k = 0; k < keys->len; k++)
    table_add (&st, (const char *) g_ptr_array_index (keys, k),
               (const char *) g_hash_table_lookup (settings, g_ptr_array_index (keys, k)));
  table_print (&st, "  ");
  table_free (&st);

  printf ("\nfinal metrics:\n");
  Table ft = table_new (2, NULL);
  for (int k = 0; k < FM_COUNT; k++) {
    if (k >= FM_VAL_R2 && isnan (fm[k].value))
      continue; /* R² only for a regression */
    g_autofree char *v = format_metric (fm[k].value, 4);
    table_add (&ft, fm[k].title, v);
  }
  table_print (&ft, "  ");
  table_free (&ft);

  if (et.n > 0) {
    printf ("\nepochs:\n");
    static const gboolean right[] = {TRUE, TRUE, TRUE, TRUE, TRUE, TRUE, TRUE, TRUE, TRUE};
    Table tt = table_new (G_N_ELEMENTS (right), right);
    /* a regression shows its validation R² where a classifier has its accuracy */
    int val = isnan (run->best_val_accuracy) && !isnan (run->best_val_r2) ? 4 : 3;
    table_add (&tt, "EPOCH", "STEP", epoch_columns[0].title, epoch_columns[1].title,
               epoch_columns[2].title, epoch_columns[val].title, epoch_columns[5].title,
               is_lm ? "TOK/S" : epoch_columns[6].title, epoch_columns[7].title);
    for (int e = 0; e < et.n; e++) {
      char *cells[N_EPOCH_COLUMNS];
      for (int c = 0; c < N_EPOCH_COLUMNS; c++)
        cells[c] = epoch_columns[c].digits < 0 ? format_lr (et.values[e][c])
                                               : format_metric (et.values[e][c], epoch_columns[c].digits);
      g_autofree char *ep = g_strdup_printf ("%d", e + 1);
      g_autofree char *stp = g_strdup_printf ("%" G_GINT64_FORMAT, et.step[e]);
      table_add (&tt, ep, stp, cells[0], cells[1], cells[2], cells[val], cells[5], cells[6],
                 cells[7]);
      for (int c = 0; c < N_EPOCH_COLUMNS; c++)
        g_free (cells[c]);
    }
    table_print (&tt, "  ");
    table_free (&tt);
  }

  printf ("\ncheckpoints:\n");
  if (cps->len == 0)
    printf ("  none\n");
  static const gboolean cright[] = {TRUE, TRUE, TRUE, FALSE, FALSE};
  Table ct = table_new (5, cright);
  if (cps->len)
    table_add (&ct, "EPOCH", "STEP",
               isnan (run->best_val_accuracy) && !isnan (run->best_val_r2) ? "VAL R²" : "VAL ACC",
               "BEST", "FILE");
  for (guint k = 0; k < cps->len; k++) {
    BpCheckpoint *cp = g_ptr_array_index (cps, k);
    g_autofree char *ep = g_strdup_printf ("%" G_GINT64_FORMAT, cp->epoch);
    g_autofree char *stp = g_strdup_printf ("%" G_GINT64_FORMAT, cp->step);
    g_autofree char *va = format_metric (cp->val_metric, 4);
    g_autofree char *shown = g_filename_display_name (cp->path);
    table_add (&ct, ep, stp, va, cp->is_best ? "best" : "", shown);
  }
  table_print (&ct, "  ");
  table_free (&ct);
  epoch_table_free (&et);
  return 0;
}

/* ---- compare ---- */

/* A curve of one run: points (x = epoch, fractional for per-step series). */
typedef struct {
  char *label;
  GArray *x, *y; /* double */
} Curve;

typedef struct {
  const char *name;  /* --metric value */
  const char *split, *metric;
  const char *title;
  gboolean per_step;
} PlotMetric;

static const PlotMetric plot_metrics[] = {
  {"val_accuracy", BP_SPLIT_VAL, BP_METRIC_ACCURACY, "validation accuracy", FALSE},
  {"val_loss", BP_SPLIT_VAL, BP_METRIC_LOSS, "validation loss", FALSE},
  {"train_loss", BP_SPLIT_TRAIN, BP_METRIC_LOSS, "training loss (per step)", TRUE},
  {"train_accuracy", BP_SPLIT_TRAIN, BP_METRIC_EPOCH_ACCURACY, "training accuracy", FALSE},
};

static gboolean
read_curve (BpStore *store, const BpRun *run, const PlotMetric *m, Curve *c, GError **error)
{
  c->label = g_strdup_printf ("%" G_GINT64_FORMAT " %s", run->id, run->name);
  c->x = g_array_new (FALSE, FALSE, sizeof (double));
  c->y = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr (GArray) pts = bp_store_get_metrics (store, run->id, m->split, m->metric, error);
  if (!pts)
    return FALSE;
  double steps_per_epoch = 0;
  if (m->per_step) {
    /* every epoch has the same number of steps: the first epoch's last step */
    g_autoptr (GArray) ends = bp_store_get_metrics (store, run->id, BP_SPLIT_TRAIN,
                                                    BP_METRIC_EPOCH_LOSS, error);
    if (!ends)
      return FALSE;
    for (guint k = 0; k < ends->len && steps_per_epoch == 0; k++) {
      BpMetricPoint *p = &g_array_index (ends, BpMetricPoint, k);
      if (p->epoch == 1)
        steps_per_epoch = (double) p->step;
    }
    if (steps_per_epoch <= 0 && pts->len)
      steps_per_epoch = (double) g_array_index (pts, BpMetricPoint, pts->len - 1).step;
  }
  for (guint k = 0; k < pts->len; k++) {
    BpMetricPoint *p = &g_array_index (pts, BpMetricPoint, k);
    if (!isfinite (p->value))
      continue;
    double x = m->per_step ? (double) p->step / MAX (steps_per_epoch, 1) : (double) p->epoch;
    g_array_append_val (c->x, x);
    g_array_append_val (c->y, p->value);
  }
  return TRUE;
}

static void
curve_clear (Curve *c)
{
  g_free (c->label);
  if (c->x)
    g_array_unref (c->x);
  if (c->y)
    g_array_unref (c->y);
}

#if HAVE_CAIRO
/* A round tick step giving about n ticks over span: 1, 2 or 5 times a power of ten. */
static double
nice_step (double span, int n)
{
  double raw = span / n, p = pow (10, floor (log10 (raw))), f = raw / p;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

/* Draws the curves overlaid into a PNG: axes with ticks, a legend, a title. */
static gboolean
plot_curves (const char *path, const PlotMetric *m, int n, const Curve *curves, GError **error)
{
  const int W = 960, H = 600, L = 80, R = 24, T = 48, B = 64;
  double x0 = 0, x1 = 1, y0 = INFINITY, y1 = -INFINITY;
  int n_points = 0;
  for (int k = 0; k < n; k++)
    for (guint j = 0; j < curves[k].x->len; j++) {
      x1 = MAX (x1, g_array_index (curves[k].x, double, j));
      y0 = MIN (y0, g_array_index (curves[k].y, double, j));
      y1 = MAX (y1, g_array_index (curves[k].y, double, j));
      n_points++;
    }
  if (n_points == 0) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                 "none of the runs has %s points to plot", m->name);
    return FALSE;
  }
  if (y1 - y0 < 1e-9) {
    y0 -= 0.5;
    y1 += 0.5;
  }
  double pad = 0.05 * (y1 - y0);
  y0 -= pad;
  y1 += pad;
  double ystep = nice_step (y1 - y0, 6), xstep = MAX (1.0, nice_step (x1 - x0, 10));
  y0 = floor (y0 / ystep) * ystep;
  y1 = ceil (y1 / ystep) * ystep;
  x1 = ceil (x1 / xstep) * xstep;

  cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_RGB24, W, H);
  cairo_t *cr = cairo_create (surface);
  cairo_set_source_rgb (cr, 1, 1, 1);
  cairo_paint (cr);
  cairo_select_font_face (cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  double pw = W - L - R, ph = H - T - B;
#define PX(x) (L + ((x) - x0) / (x1 - x0) * pw)
#define PY(y) (T + (y1 - (y)) / (y1 - y0) * ph)
  char buf[64];
  cairo_text_extents_t te;
  /* grid and tick labels */
  cairo_set_font_size (cr, 13);
  cairo_set_line_width (cr, 1);
  for (double y = y0; y <= y1 + ystep * 1e-6; y += ystep) {
    cairo_set_source_rgb (cr, 0.9, 0.9, 0.9);
    cairo_move_to (cr, L, floor (PY (y)) + 0.5);
    cairo_line_to (cr, L + pw, floor (PY (y)) + 0.5);
    cairo_stroke (cr);
    g_snprintf (buf, sizeof buf, "%.*f", ystep < 0.01 ? 3 : ystep < 0.1 ? 2 : ystep < 1 ? 1 : 0, y);
    cairo_text_extents (cr, buf, &te);
    cairo_set_source_rgb (cr, 0.25, 0.25, 0.25);
    cairo_move_to (cr, L - 8 - te.x_advance, PY (y) + te.height / 2);
    cairo_show_text (cr, buf);
  }
  for (double x = x0; x <= x1 + xstep * 1e-6; x += xstep) {
    cairo_set_source_rgb (cr, 0.9, 0.9, 0.9);
    cairo_move_to (cr, floor (PX (x)) + 0.5, T);
    cairo_line_to (cr, floor (PX (x)) + 0.5, T + ph);
    cairo_stroke (cr);
    g_snprintf (buf, sizeof buf, "%g", x);
    cairo_text_extents (cr, buf, &te);
    cairo_set_source_rgb (cr, 0.25, 0.25, 0.25);
    cairo_move_to (cr, PX (x) - te.x_advance / 2, T + ph + 20);
    cairo_show_text (cr, buf);
  }
  cairo_set_source_rgb (cr, 0.2, 0.2, 0.2);
  cairo_rectangle (cr, L + 0.5, T + 0.5, pw, ph);
  cairo_stroke (cr);
  /* axis titles and title */
  cairo_set_font_size (cr, 14);
  cairo_text_extents (cr, "epoch", &te);
  cairo_move_to (cr, L + pw / 2 - te.x_advance / 2, H - 18);
  cairo_show_text (cr, "epoch");
  cairo_save (cr);
  cairo_text_extents (cr, m->title, &te);
  cairo_move_to (cr, 24, T + ph / 2 + te.x_advance / 2);
  cairo_rotate (cr, -G_PI / 2);
  cairo_show_text (cr, m->title);
  cairo_restore (cr);
  cairo_set_font_size (cr, 17);
  cairo_select_font_face (cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
  g_autofree char *title = g_strdup_printf ("Backprop Lab: %s", m->title);
  cairo_move_to (cr, L, 30);
  cairo_show_text (cr, title);
  cairo_select_font_face (cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);

  /* the curves (Tableau 10 colours) */
  static const double colours[][3] = {
    {0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173}, {0.839, 0.153, 0.157},
    {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294}, {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498},
    {0.737, 0.741, 0.133}, {0.090, 0.745, 0.812},
  };
  cairo_save (cr);
  cairo_rectangle (cr, L, T, pw, ph);
  cairo_clip (cr);
  cairo_set_line_join (cr, CAIRO_LINE_JOIN_ROUND);
  for (int k = 0; k < n; k++) {
    const double *c = colours[k % 10];
    cairo_set_source_rgb (cr, c[0], c[1], c[2]);
    cairo_set_line_width (cr, m->per_step ? 1.2 : 2.2);
    for (guint j = 0; j < curves[k].x->len; j++) {
      double px = PX (g_array_index (curves[k].x, double, j));
      double py = PY (g_array_index (curves[k].y, double, j));
      if (j == 0)
        cairo_move_to (cr, px, py);
      else
        cairo_line_to (cr, px, py);
    }
    cairo_stroke (cr);
    if (!m->per_step)
      for (guint j = 0; j < curves[k].x->len; j++) {
        cairo_arc (cr, PX (g_array_index (curves[k].x, double, j)),
                   PY (g_array_index (curves[k].y, double, j)), 3.5, 0, 2 * G_PI);
        cairo_fill (cr);
      }
  }
  cairo_restore (cr);
  /* legend, top right inside the plot */
  cairo_set_font_size (cr, 13);
  double lw = 0;
  for (int k = 0; k < n; k++) {
    cairo_text_extents (cr, curves[k].label, &te);
    lw = MAX (lw, te.x_advance);
  }
  double lx = L + pw - lw - 52, ly = T + 10;
  cairo_set_source_rgba (cr, 1, 1, 1, 0.85);
  cairo_rectangle (cr, lx, ly, lw + 42, 20 * n + 8);
  cairo_fill_preserve (cr);
  cairo_set_source_rgb (cr, 0.7, 0.7, 0.7);
  cairo_set_line_width (cr, 1);
  cairo_stroke (cr);
  for (int k = 0; k < n; k++) {
    const double *c = colours[k % 10];
    cairo_set_source_rgb (cr, c[0], c[1], c[2]);
    cairo_set_line_width (cr, 3);
    cairo_move_to (cr, lx + 8, ly + 14 + 20 * k);
    cairo_line_to (cr, lx + 30, ly + 14 + 20 * k);
    cairo_stroke (cr);
    cairo_set_source_rgb (cr, 0.1, 0.1, 0.1);
    cairo_move_to (cr, lx + 36, ly + 19 + 20 * k);
    cairo_show_text (cr, curves[k].label);
  }
#undef PX
#undef PY
  cairo_surface_flush (surface);
  cairo_status_t st = cairo_surface_write_to_png (surface, path);
  cairo_destroy (cr);
  cairo_surface_destroy (surface);
  cairo_debug_reset_static_data (); /* the font caches, for the leak checker */
  if (st != CAIRO_STATUS_SUCCESS) {
    g_autofree char *shown = g_filename_display_name (path);
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot write %s: %s", shown,
                 cairo_status_to_string (st));
    return FALSE;
  }
  return TRUE;
}
#else
static gboolean
plot_curves (const char *path, const PlotMetric *m, int n, const Curve *curves, GError **error)
{
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
               "--plot is not available: this backprop was built without Cairo");
  return FALSE;
}
#endif

static int
cmd_compare (int argc, char **argv)
{
  const char *cmd = "compare";
  g_autofree char *db = NULL, *plot = NULL, *metric = NULL;
  gboolean json = FALSE, all = FALSE;
  GOptionEntry entries[] = {
    {"db", 0, 0, G_OPTION_ARG_FILENAME, &db, "Experiment database; default $XDG_DATA_HOME/backprop-lab/experiments.db", "PATH"},
    {"all", 'a', 0, G_OPTION_ARG_NONE, &all, "Show every setting, not only those that differ", NULL},
    {"plot", 0, 0, G_OPTION_ARG_FILENAME, &plot, "Draw the runs' curves overlaid into a PNG file", "FILE.png"},
    {"metric", 0, 0, G_OPTION_ARG_STRING, &metric, "The curve to plot: val_accuracy, val_loss, train_loss or train_accuracy; default val_accuracy", "NAME"},
    {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON object", NULL},
    {NULL},
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("RUN RUN... - compare stored runs");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_summary (ctx, "Shows the settings in which the runs (ids or names) differ and their "
                                     "final metrics side by side; --plot draws their curves in one picture.");
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return bp_cli_usage_error (cmd, "%s", error->message);
  if (argc < 3)
    return bp_cli_usage_error (cmd, "give two or more runs (ids or names) to compare");
  const PlotMetric *pm = &plot_metrics[0];
  if (metric) {
    pm = NULL;
    for (gsize k = 0; k < G_N_ELEMENTS (plot_metrics); k++)
      if (strcmp (metric, plot_metrics[k].name) == 0)
        pm = &plot_metrics[k];
    if (!pm)
      return bp_cli_usage_error (cmd,
                                 "--metric must be val_accuracy, val_loss, train_loss or "
                                 "train_accuracy, not \"%s\"",
                                 metric);
    if (!plot)
      return bp_cli_usage_error (cmd,
                                 "--metric chooses the curve of --plot: give --plot FILE.png too");
  }
  if (plot && !g_str_has_suffix (plot, ".png") && !g_str_has_suffix (plot, ".PNG"))
    return bp_cli_usage_error (
        cmd, "--plot writes a PNG file: give a name ending in .png, not \"%s\"", plot);
  g_autoptr (BpStore) store = NULL;
  int rc = open_store (cmd, db, STORE_READ, &store);
  if (rc)
    return rc;
  int n = argc - 1;
  g_autoptr (GPtrArray) runs = g_ptr_array_new_with_free_func ((GDestroyNotify) bp_run_free);
  for (int k = 0; k < n; k++) {
    gint64 id;
    if ((rc = resolve_run (cmd, store, db, argv[k + 1], &id)))
      return rc;
    BpRun *run = bp_store_get_run (store, id, &error);
    if (!run)
      return bp_cli_fail (cmd, error->message);
    g_ptr_array_add (runs, run);
  }
  g_autoptr (GPtrArray) keys = g_ptr_array_new_with_free_func (g_free);
  GHashTable **settings = g_new (GHashTable *, (gsize) MAX (n, 1));
  FinalMetric (*fm)[FM_COUNT] = g_malloc (sizeof (FinalMetric) * FM_COUNT * (gsize) MAX (n, 1));
  for (int k = 0; k < n; k++) {
    settings[k] = run_settings (g_ptr_array_index (runs, k), keys);
    final_metrics (store, g_ptr_array_index (runs, k), fm[k]);
  }
  /* the settings that differ (a setting missing from a run counts as different) */
  g_autoptr (GPtrArray) shown_keys = g_ptr_array_new ();
  for (guint j = 0; j < keys->len; j++) {
    const char *key = g_ptr_array_index (keys, j);
    gboolean differs = FALSE;
    for (int k = 1; k < n; k++)
      differs |= g_strcmp0 (g_hash_table_lookup (settings[0], key),
                            g_hash_table_lookup (settings[k], key)) != 0;
    if (differs || all)
      g_ptr_array_add (shown_keys, (gpointer) key);
  }

  if (plot) {
    Curve *curves = g_new0 (Curve, (gsize) MAX (n, 1));
    gboolean ok = TRUE;
    for (int k = 0; k < n && ok; k++)
      ok = read_curve (store, g_ptr_array_index (runs, k), pm, &curves[k], &error);
    ok = ok && plot_curves (plot, pm, n, curves, &error);
    for (int k = 0; k < n; k++)
      curve_clear (&curves[k]);
    g_free (curves);
    if (!ok)
      rc = bp_cli_fail (cmd, error->message);
  }

  if (rc == 0 && json) {
    Jw *b = jw_new ();
    jw_begin (b, '{');
    jw_key (b, "runs");
    jw_begin (b, '[');
    for (int k = 0; k < n; k++) {
      BpRun *r = g_ptr_array_index (runs, k);
      jw_begin (b, '{');
      json_add_int (b, "id", r->id);
      json_add_string (b, "name", r->name);
      json_add_string (b, "status", bp_run_status_to_string (r->status));
      json_add_int (b, "epochs", MAX (r->last_epoch, 0));
      jw_end (b, '}');
    }
    jw_end (b, ']');
    jw_key (b, "settings");
    jw_begin (b, '{');
    for (guint j = 0; j < shown_keys->len; j++) {
      const char *key = g_ptr_array_index (shown_keys, j);
      jw_key (b, key);
      jw_begin (b, '[');
      for (int k = 0; k < n; k++) {
        const char *v = g_hash_table_lookup (settings[k], key);
        if (v)
          jw_string (b, v);
        else
          jw_null (b);
      }
      jw_end (b, ']');
    }
    jw_end (b, '}');
    jw_key (b, "final");
    jw_begin (b, '{');
    for (int m = 0; m < FM_COUNT; m++) {
      jw_key (b, fm[0][m].key);
      jw_begin (b, '[');
      for (int k = 0; k < n; k++) {
        if (isfinite (fm[k][m].value))
          jw_double (b, fm[k][m].value);
        else
          jw_null (b);
      }
      jw_end (b, ']');
    }
    jw_end (b, '}');
    if (plot)
      json_add_string (b, "plot", plot);
    jw_end (b, '}');
    jw_print_free (b);
  } else if (rc == 0) {
    gboolean *right = g_new (gboolean, (gsize) MAX (n + 1, 1));
    right[0] = FALSE;
    for (int k = 1; k <= n; k++)
      right[k] = TRUE;
    Table t = table_new (n + 1, right);
    /* header row: "" then "run 3 name" per run (n + 1 cells) */
    g_ptr_array_add (t.cells, g_strdup (all ? "SETTING" : "SETTINGS THAT DIFFER"));
    for (int k = 0; k < n; k++) {
      BpRun *r = g_ptr_array_index (runs, k);
      g_autofree char *name = shorten (r->name, 20);
      g_ptr_array_add (t.cells, g_strdup_printf ("%" G_GINT64_FORMAT " %s", r->id, name));
    }
    for (guint j = 0; j < shown_keys->len; j++) {
      const char *key = g_ptr_array_index (shown_keys, j);
      g_ptr_array_add (t.cells, g_strdup (key));
      for (int k = 0; k < n; k++) {
        const char *v = g_hash_table_lookup (settings[k], key);
        g_ptr_array_add (t.cells, shorten (v ? v : "-", 24));
      }
    }
    if (shown_keys->len == 0) {
      g_ptr_array_add (t.cells, g_strdup ("(all the same)"));
      for (int k = 0; k < n; k++)
        g_ptr_array_add (t.cells, g_strdup (""));
    }
    g_ptr_array_add (t.cells, g_strdup ("status"));
    for (int k = 0; k < n; k++)
      g_ptr_array_add (t.cells, g_strdup (bp_run_status_to_string (
                                  ((BpRun *) g_ptr_array_index (runs, k))->status)));
    g_ptr_array_add (t.cells, g_strdup ("epochs"));
    for (int k = 0; k < n; k++)
      g_ptr_array_add (t.cells, g_strdup_printf ("%" G_GINT64_FORMAT,
                                                 MAX (((BpRun *) g_ptr_array_index (runs, k))->last_epoch, 0)));
    for (int m = 0; m < FM_COUNT; m++) {
      gboolean any = m < FM_VAL_R2;
      for (int k = 0; k < n && !any; k++)
        any = !isnan (fm[k][m].value);
      if (!any)
        continue; /* R² rows only when a regression is compared */
      g_ptr_array_add (t.cells, g_strdup (fm[0][m].title));
      for (int k = 0; k < n; k++)
        g_ptr_array_add (t.cells, format_metric (fm[k][m].value, 4));
    }
    table_print (&t, "");
    table_free (&t);
    g_free (right);
    if (plot) {
      g_autofree char *shown = g_filename_display_name (plot);
      printf ("wrote %s (%s)\n", shown, pm->title);
    }
  }
  for (int k = 0; k < n; k++)
    g_hash_table_unref (settings[k]);
  g_free (settings);
  g_free (fm);
  return rc;
}

/* ---- export ---- */

static void
csv_field (GString *out, const char *s)
{
  if (!strpbrk (s, ",\"\n\r")) {
    g_string_append (out, s);
    return;
  }
  g_string_append_c (out, '"');
  for (const char *p = s; *p; p++) {
    if (*p == '"')
      g_string_append_c (out, '"');
    g_string_append_c (out, *p);
  }
  g_string_append_c (out, '"');
}

static gboolean
export_csv (BpStore *store, gint64 id, const char *path, gsize *n_points, GError **error)
{
  g_autoptr (GArray) pts = bp_store_get_metrics (store, id, NULL, NULL, error);
  if (!pts)
    return FALSE;
  g_autoptr (GString) out = g_string_new ("run_id,step,epoch,split,name,value,wall_time_us\n");
  for (guint k = 0; k < pts->len; k++) {
    BpMetricPoint *p = &g_array_index (pts, BpMetricPoint, k);
    g_string_append_printf (out, "%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT ",",
                            id, p->step, p->epoch);
    csv_field (out, p->split);
    g_string_append_c (out, ',');
    csv_field (out, p->name);
    g_string_append_c (out, ',');
    if (!isnan (p->value)) {
      char buf[G_ASCII_DTOSTR_BUF_SIZE];
      g_string_append (out, g_ascii_formatd (buf, sizeof buf, "%.17g", p->value));
    }
    g_string_append_printf (out, ",%" G_GINT64_FORMAT "\n", p->wall_us);
  }
  *n_points = pts->len;
  if (strcmp (path, "-") == 0) {
    fwrite (out->str, 1, out->len, stdout);
    return TRUE;
  }
  return g_file_set_contents (path, out->str, (gssize) out->len, error);
}

/* The Python half of model.py: a safetensors reader in plain numpy, the weight loader and a
 * main that runs the model on raw float32 examples. */
static const char pytorch_loader[] =
  "\n"
  "# ---- the trained weights (Backprop Lab export) ----\n"
  "import json\n"
  "import os\n"
  "import struct\n"
  "import sys\n"
  "\n"
  "import numpy as np\n"
  "\n"
  "WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), \"model.safetensors\")\n"
  "\n"
  "\n"
  "def read_safetensors(path):\n"
  "    \"\"\"Reads a safetensors file with numpy only: ({name: float32 array}, metadata).\"\"\"\n"
  "    with open(path, \"rb\") as f:\n"
  "        data = f.read()\n"
  "    if len(data) < 8:\n"
  "        raise ValueError(f\"{path}: too short for a safetensors file\")\n"
  "    (n,) = struct.unpack(\"<Q\", data[:8])\n"
  "    if n > len(data) - 8:\n"
  "        raise ValueError(f\"{path}: header length {n} goes beyond the file\")\n"
  "    header = json.loads(data[8:8 + n].decode(\"utf-8\"))\n"
  "    metadata = header.pop(\"__metadata__\", None) or {}\n"
  "    body = memoryview(data)[8 + n:]\n"
  "    sizes = {\"F32\": 4, \"F64\": 8, \"F16\": 2, \"BF16\": 2}\n"
  "    tensors = {}\n"
  "    for name, info in header.items():\n"
  "        dtype, shape = info[\"dtype\"], [int(d) for d in info[\"shape\"]]\n"
  "        begin, end = (int(o) for o in info[\"data_offsets\"])\n"
  "        if dtype not in sizes:\n"
  "            raise ValueError(f\"{path}: tensor {name} has unsupported dtype {dtype}\")\n"
  "        if not 0 <= begin <= end <= len(body) or end - begin != sizes[dtype] * int(np.prod(shape)):\n"
  "            raise ValueError(f\"{path}: tensor {name} has bad data offsets\")\n"
  "        raw = body[begin:end]\n"
  "        if dtype == \"BF16\":\n"
  "            a = (np.frombuffer(raw, \"<u2\").astype(np.uint32) << 16).view(np.float32)\n"
  "        else:\n"
  "            a = np.frombuffer(raw, {\"F32\": \"<f4\", \"F64\": \"<f8\", \"F16\": \"<f2\"}[dtype])\n"
  "        tensors[name] = a.astype(np.float32).reshape(shape)\n"
  "    return tensors, metadata\n"
  "\n"
  "\n"
  "def load_weights(module, path=WEIGHTS):\n"
  "    \"\"\"Loads Backprop Lab weights into the module (every state_dict entry must be there).\"\"\"\n"
  "    tensors, metadata = read_safetensors(path)\n"
  "    tracked = json.loads(metadata.get(\"num_batches_tracked\", \"{}\"))\n"
  "    state = {}\n"
  "    for key, value in module.state_dict().items():\n"
  "        if key.endswith(\".num_batches_tracked\"):\n"
  "            node = key[: -len(\".num_batches_tracked\")]\n"
  "            state[key] = torch.tensor(int(tracked.get(node, 0)), dtype=value.dtype)\n"
  "        elif key in tensors:\n"
  "            if tuple(tensors[key].shape) != tuple(value.shape):\n"
  "                raise ValueError(f\"{path}: {key} has shape {tensors[key].shape}, the module needs {tuple(value.shape)}\")\n"
  "            state[key] = torch.from_numpy(tensors[key].copy())\n"
  "        else:\n"
  "            raise KeyError(f\"{path} has no tensor {key}\")\n"
  "    module.load_state_dict(state)\n"
  "    return module\n"
  "\n"
  "\n"
  "def trained_model(path=WEIGHTS):\n"
  "    \"\"\"The model with the exported weights, in eval mode.\"\"\"\n"
  "    m = model()\n"
  "    load_weights(m, path)\n"
  "    return m.eval()\n"
  "\n"
  "\n"
  "def main(argv):\n"
  "    import argparse\n"
  "\n"
  "    p = argparse.ArgumentParser(description=\"Runs the exported model on examples.\")\n"
  "    p.add_argument(\"--weights\", default=WEIGHTS, help=\"safetensors file (default: model.safetensors here)\")\n"
  "    p.add_argument(\"--input\", help=\"raw little-endian float32 examples, shape (N, *INPUT_SHAPE), \"\n"
  "                   \"normalised as Backprop Lab feeds them (default: one example of zeros)\")\n"
  "    p.add_argument(\"--output\", help=\"write the outputs (logits) there as raw little-endian float32\")\n"
  "    args = p.parse_args(argv)\n"
  "    m = trained_model(args.weights)\n"
  "    if args.input:\n"
  "        x = np.fromfile(args.input, dtype=\"<f4\").reshape(-1, *INPUT_SHAPE)\n"
  "    else:\n"
  "        x = np.zeros((1, *INPUT_SHAPE), np.float32)\n"
  "    with torch.no_grad():\n"
  "        out = m(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()\n"
  "    if args.output:\n"
  "        out.astype(\"<f4\").tofile(args.output)\n"
  "    else:\n"
  "        print(m)\n"
  "        print(\"outputs\", tuple(out.shape))\n"
  "        print(\"predicted classes:\", out.reshape(out.shape[0], -1).argmax(axis=1).tolist())\n"
  "\n"
  "\n"
  "if __name__ == \"__main__\":\n"
  "    main(sys.argv[1:])\n";

static gboolean
export_pytorch (BpStore *store, const BpRun *run, gboolean best, const char *dir, GString *said,
                GError **error)
{
  g_autoptr (GPtrArray) cps = bp_store_list_checkpoints (store, run->id, error);
  if (!cps)
    return FALSE;
  BpCheckpoint *cp = cps->len ? g_ptr_array_index (cps, cps->len - 1) : NULL;
  for (guint k = 0; best && k < cps->len; k++)
    if (((BpCheckpoint *) g_ptr_array_index (cps, k))->is_best)
      cp = g_ptr_array_index (cps, k);
  if (!cp) {
    g_set_error (error, BP_STORE_ERROR, BP_STORE_ERROR_NOT_FOUND,
                 "run %" G_GINT64_FORMAT " has no checkpoint to export", run->id);
    return FALSE;
  }
  g_autofree char *spec = NULL;
  BpModel *m = bp_checkpoint_load_model (cp->path, &spec, error);
  if (!m)
    return FALSE;
  g_autofree char *code = bp_spec_to_pytorch (spec, error);
  gboolean ok = code != NULL;
  if (ok && g_mkdir_with_parents (dir, 0755) != 0) {
    int e = errno;
    g_autofree char *shown = g_filename_display_name (dir);
    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e), "cannot create %s: %s", shown,
                 g_strerror (e));
    ok = FALSE;
  }
  if (ok) {
    /* the weights alone (no optimizer state), with what the loader needs in the metadata */
    g_autoptr (GString) nbt = g_string_new ("{");
    for (int k = 0; k < m->n_layers; k++)
      if (m->layers[k].spec.kind == BP_LAYER_BATCHNORM1D ||
          m->layers[k].spec.kind == BP_LAYER_BATCHNORM2D)
        g_string_append_printf (nbt, "%s\"%s\": %" G_GINT64_FORMAT, nbt->len > 1 ? ", " : "",
                                m->layers[k].spec.id, (gint64) m->layers[k].num_batches_tracked);
    g_string_append_c (nbt, '}');
    g_autoptr (GHashTable) meta = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
    g_hash_table_insert (meta, "format", g_strdup ("backprop-lab-weights"));
    g_hash_table_insert (meta, "model_spec", g_strdup (spec));
    g_hash_table_insert (meta, "num_batches_tracked", g_strdup (nbt->str));
    g_hash_table_insert (meta, "run_id", g_strdup_printf ("%" G_GINT64_FORMAT, run->id));
    g_hash_table_insert (meta, "epoch", g_strdup_printf ("%" G_GINT64_FORMAT, cp->epoch));
    g_hash_table_insert (meta, "step", g_strdup_printf ("%" G_GINT64_FORMAT, cp->step));
    BpNamedTensor *state;
    int n = bp_model_state (m, &state);
    g_autofree char *weights = g_build_filename (dir, "model.safetensors", NULL);
    ok = bp_safetensors_save_state (weights, n, state, meta, error);
    free (state);
  }
  if (ok) {
    /* the module (without its own demo main), then the loader and our main */
    char *tail = strstr (code, "\nif __name__ == \"__main__\":");
    if (tail)
      tail[1] = '\0';
    g_autoptr (GString) py = g_string_new (code);
    g_string_append_printf (py, "\n# Weights: run %" G_GINT64_FORMAT " \"%s\", epoch %" G_GINT64_FORMAT
                                ", step %" G_GINT64_FORMAT " (model.safetensors beside this file).\n",
                            run->id, run->name, cp->epoch, cp->step);
    g_string_append (py, pytorch_loader);
    g_autofree char *script = g_build_filename (dir, "model.py", NULL);
    ok = g_file_set_contents (script, py->str, (gssize) py->len, error);
    g_autofree char *shown = g_filename_display_name (dir);
    g_string_append_printf (said, "wrote %s/model.py and model.safetensors (run %" G_GINT64_FORMAT
                                  ", epoch %" G_GINT64_FORMAT ", step %" G_GINT64_FORMAT
                                  "); try: python3 %s/model.py\n",
                            shown, run->id, cp->epoch, cp->step, shown);
  }
  bp_model_free (m);
  return ok;
}

static int
cmd_export (int argc, char **argv)
{
  const char *cmd = "export";
  g_autofree char *db = NULL, *csv = NULL, *pytorch = NULL;
  gboolean best = FALSE;
  GOptionEntry entries[] = {
    {"db", 0, 0, G_OPTION_ARG_FILENAME, &db, "Experiment database; default $XDG_DATA_HOME/backprop-lab/experiments.db", "PATH"},
    {"csv", 0, 0, G_OPTION_ARG_FILENAME, &csv, "Write every metric point as CSV (- for standard output)", "FILE"},
    {"pytorch", 0, 0, G_OPTION_ARG_FILENAME, &pytorch, "Write model.py (a PyTorch nn.Module with a weight loader and a main) and model.safetensors into DIR", "DIR"},
    {"best", 0, 0, G_OPTION_ARG_NONE, &best, "Export the best checkpoint (by validation accuracy) instead of the newest", NULL},
    {NULL},
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("RUN - export a stored run");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_summary (ctx, "Exports a run's metric points as CSV, or its model as a runnable "
                                     "PyTorch script with its trained weights.");
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return bp_cli_usage_error (cmd, "%s", error->message);
  if (argc != 2)
    return bp_cli_usage_error (
        cmd, argc < 2 ? "which run? (give its id or name)" : "unexpected argument \"%s\"",
        argv[argc < 2 ? 0 : 2]);
  if (!csv && !pytorch)
    return bp_cli_usage_error (cmd, "say what to export: --csv FILE and/or --pytorch DIR");
  if (best && !pytorch)
    return bp_cli_usage_error (
        cmd, "--best chooses the checkpoint of --pytorch: give --pytorch DIR too");
  g_autoptr (BpStore) store = NULL;
  gint64 id;
  int rc = open_store (cmd, db, STORE_READ, &store);
  if (rc || (rc = resolve_run (cmd, store, db, argv[1], &id)))
    return rc;
  g_autoptr (BpRun) run = bp_store_get_run (store, id, &error);
  if (!run)
    return bp_cli_fail (cmd, error->message);
  g_autoptr (GString) said = g_string_new (NULL);
  if (csv) {
    gsize n = 0;
    if (!export_csv (store, id, csv, &n, &error))
      return bp_cli_fail (cmd, error->message);
    if (strcmp (csv, "-") != 0) {
      g_autofree char *shown = g_filename_display_name (csv);
      g_string_append_printf (said, "wrote %" G_GSIZE_FORMAT " metric points to %s\n", n, shown);
    }
  }
  if (pytorch && !export_pytorch (store, run, best, pytorch, said, &error))
    return bp_cli_fail (cmd, error->message);
  fputs (said->str, strcmp (csv ? csv : "", "-") == 0 ? stderr : stdout);
  return 0;
}

/* ---- rm, tag, note ---- */

static int
cmd_rm (int argc, char **argv)
{
  const char *cmd = "rm";
  g_autofree char *db = NULL;
  gboolean force = FALSE;
  GOptionEntry entries[] = {
    {"db", 0, 0, G_OPTION_ARG_FILENAME, &db, "Experiment database; default $XDG_DATA_HOME/backprop-lab/experiments.db", "PATH"},
    {"force", 'f', 0, G_OPTION_ARG_NONE, &force, "Also remove runs that are still running", NULL},
    {NULL},
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("RUN... - remove stored runs");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_summary (ctx, "Removes runs (ids or names) with their metrics, checkpoints and "
                                     "artifacts. This cannot be undone.");
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return bp_cli_usage_error (cmd, "%s", error->message);
  if (argc < 2)
    return bp_cli_usage_error (cmd, "which runs? (give ids or names)");
  g_autoptr (BpStore) store = NULL;
  int rc = open_store (cmd, db, STORE_WRITE, &store);
  if (rc)
    return rc;
  g_autofree gint64 *ids = g_new (gint64, argc);
  for (int k = 1; k < argc; k++) {
    if ((rc = resolve_run (cmd, store, db, argv[k], &ids[k])))
      return rc;
    g_autoptr (BpRun) run = bp_store_get_run (store, ids[k], &error);
    if (!run)
      return bp_cli_fail (cmd, error->message);
    if (run->status == BP_RUN_RUNNING && !force)
      return bp_cli_failf (cmd,
                           "run %" G_GINT64_FORMAT " is running (process %" G_GINT64_FORMAT
                           " on %s): stop it first, or give --force",
                           run->id, run->pid, run->host ? run->host : "?");
  }
  for (int k = 1; k < argc; k++) {
    if (!bp_store_delete_run (store, ids[k], &error)) {
      if (g_error_matches (error, BP_STORE_ERROR, BP_STORE_ERROR_NOT_FOUND))
        continue; /* named twice */
      return bp_cli_fail (cmd, error->message);
    }
    printf ("removed run %" G_GINT64_FORMAT "\n", ids[k]);
  }
  return 0;
}

static int
cmd_tag (int argc, char **argv)
{
  const char *cmd = "tag";
  g_autofree char *db = NULL;
  gboolean remove = FALSE, json = FALSE;
  GOptionEntry entries[] = {
    {"db", 0, 0, G_OPTION_ARG_FILENAME, &db, "Experiment database; default $XDG_DATA_HOME/backprop-lab/experiments.db", "PATH"},
    {"remove", 'r', 0, G_OPTION_ARG_NONE, &remove, "Remove the tags instead of adding them", NULL},
    {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print the run's tags as a JSON array", NULL},
    {NULL},
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("RUN [TAG...] - tag a stored run");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_summary (ctx, "Adds tags to a run (id or name), or removes them with --remove, and "
                                     "prints its tags. Without tags it only prints them.");
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return bp_cli_usage_error (cmd, "%s", error->message);
  if (argc < 2)
    return bp_cli_usage_error (cmd, "which run? (give its id or name, then the tags)");
  for (int k = 2; k < argc; k++)
    if (!*argv[k] || strlen (argv[k]) > 64 || !g_utf8_validate (argv[k], -1, NULL))
      return bp_cli_usage_error (cmd, "a tag has 1 to 64 bytes of text, not \"%s\"", argv[k]);
  g_autoptr (BpStore) store = NULL;
  gint64 id;
  int rc = open_store (cmd, db, argc > 2 ? STORE_WRITE : STORE_READ, &store);
  if (rc || (rc = resolve_run (cmd, store, db, argv[1], &id)))
    return rc;
  for (int k = 2; k < argc; k++) {
    gboolean ok = remove ? bp_store_remove_tag (store, id, argv[k], &error)
                         : bp_store_add_tag (store, id, argv[k], &error);
    if (!ok)
      return g_error_matches (error, BP_STORE_ERROR, BP_STORE_ERROR_INVALID)
                 ? bp_cli_usage_error (cmd, "%s", error->message)
                 : bp_cli_fail (cmd, error->message);
  }
  g_auto (GStrv) tags = bp_store_list_tags (store, id, &error);
  if (!tags)
    return bp_cli_fail (cmd, error->message);
  if (json) {
    Jw *b = jw_new ();
    jw_begin (b, '[');
    for (int k = 0; tags[k]; k++)
      jw_string (b, tags[k]);
    jw_end (b, ']');
    jw_print_free (b);
  } else {
    g_autofree char *joined = g_strjoinv (", ", tags);
    printf ("run %" G_GINT64_FORMAT " tags: %s\n", id, tags[0] ? joined : "(none)");
  }
  return 0;
}

static int
cmd_note (int argc, char **argv)
{
  const char *cmd = "note";
  g_autofree char *db = NULL;
  GOptionEntry entries[] = {
    {"db", 0, 0, G_OPTION_ARG_FILENAME, &db, "Experiment database; default $XDG_DATA_HOME/backprop-lab/experiments.db", "PATH"},
    {NULL},
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("RUN [TEXT...] - write or read a run's note");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_summary (ctx, "Sets the free-text note of a run (id or name) to TEXT (the words "
                                     "joined by spaces; \"\" clears it). Without TEXT it prints the note.");
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return bp_cli_usage_error (cmd, "%s", error->message);
  if (argc < 2)
    return bp_cli_usage_error (cmd, "which run? (give its id or name, then the text)");
  g_autofree char *text = argc > 2 ? g_strjoinv (" ", argv + 2) : NULL;
  if (text && !g_utf8_validate (text, -1, NULL))
    return bp_cli_usage_error (cmd, "the note is not valid UTF-8 text");
  g_autoptr (BpStore) store = NULL;
  gint64 id;
  int rc = open_store (cmd, db, text ? STORE_WRITE : STORE_READ, &store);
  if (rc || (rc = resolve_run (cmd, store, db, argv[1], &id)))
    return rc;
  if (text) {
    if (!bp_store_set_note (store, id, text, &error))
      return bp_cli_fail (cmd, error->message);
    return 0;
  }
  g_autofree char *note = bp_store_get_note (store, id, &error);
  if (!note)
    return bp_cli_fail (cmd, error->message);
  if (*note)
    printf ("%s\n", note);
  return 0;
}

/* ---- generate ---- */

static gboolean
print_piece (const char *piece, int64_t id, gpointer user_data)
{
  fputs (piece, stdout);
  fflush (stdout);
  return TRUE;
}

/* The characters of `chars` for a message: each quoted, with its code point when it is not a
 * printable one ("「x」", "U+0009"). */
static char *
describe_chars (const char *chars)
{
  GString *s = g_string_new (NULL);
  for (const char *p = chars; *p; p = g_utf8_next_char (p)) {
    gunichar c = g_utf8_get_char (p);
    if (s->len)
      g_string_append (s, ", ");
    if (g_unichar_isgraph (c)) {
      g_string_append (s, "\"");
      g_string_append_unichar (s, c);
      g_string_append_printf (s, "\" (U+%04X)", c);
    } else {
      g_string_append_printf (s, "U+%04X", c);
    }
  }
  return g_string_free (s, FALSE);
}

static int
cmd_generate (int argc, char **argv)
{
  const char *cmd = "generate";
  g_autofree char *db = NULL, *prompt = NULL;
  char *s_max = NULL, *s_temp = NULL, *s_top_k = NULL, *s_top_p = NULL, *s_seed = NULL,
       *s_threads = NULL;
  gboolean best = FALSE, allow_unknown = FALSE;
  GOptionEntry entries[] = {
    {"prompt", 'p', 0, G_OPTION_ARG_FILENAME, &prompt, "Text to continue; default none (the text starts after a line break)", "TEXT"},
    {"max-new", 'n', 0, G_OPTION_ARG_STRING, &s_max, "Characters to generate; default 200", "N"},
    {"temperature", 't', 0, G_OPTION_ARG_STRING, &s_temp, "Sampling temperature (0: always the most likely character); default 0.8", "X"},
    {"top-k", 0, 0, G_OPTION_ARG_STRING, &s_top_k, "Sample among the K most likely characters only; default 0 (all)", "K"},
    {"top-p", 0, 0, G_OPTION_ARG_STRING, &s_top_p, "Sample among the most likely characters whose probabilities sum to P (nucleus sampling); default 1 (all)", "P"},
    {"seed", 0, 0, G_OPTION_ARG_STRING, &s_seed, "Random seed (the same seed gives the same text); default a random one", "N"},
    {"best", 0, 0, G_OPTION_ARG_NONE, &best, "Use the run's best checkpoint (highest validation accuracy) instead of its newest", NULL},
    {"allow-unknown", 0, 0, G_OPTION_ARG_NONE, &allow_unknown, "Read prompt characters outside the vocabulary as <unk> instead of refusing them", NULL},
    {"threads", 0, 0, G_OPTION_ARG_STRING, &s_threads, "CPU threads; default all cores", "N"},
    {"db", 0, 0, G_OPTION_ARG_FILENAME, &db, "Experiment database; default $XDG_DATA_HOME/backprop-lab/experiments.db", "PATH"},
    {NULL},
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("RUN - generate text with a language model");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_summary (ctx, "Continues a prompt with a stored language-model run (id or name, trained "
                                     "on a text corpus) from its newest checkpoint, printing the prompt and each "
                                     "character as it is generated.");
  g_autoptr (GError) error = NULL;
  int rc = 0;
  BpModel *model = NULL;
  BpVocab *vocab = NULL;
  BpStore *store = NULL;
  BpRun *run = NULL;
  GPtrArray *cps = NULL;
  char *unknown = NULL, *generated = NULL;
  gint64 max_new = 200, top_k = 0, seed = 0, threads = 0;
  double temperature = 0.8, top_p = 1.0;
  NumberFlag flags[] = {
    {"--max-new", &s_max, NUM_INT, 0, 1e7, FALSE, &max_new},
    {"--temperature", &s_temp, NUM_FLOAT, 0, 100, FALSE, &temperature},
    {"--top-k", &s_top_k, NUM_INT, 0, 1 << 24, FALSE, &top_k},
    {"--top-p", &s_top_p, NUM_FLOAT, 0, 1, TRUE, &top_p},
    {"--seed", &s_seed, NUM_INT, 0, 9.2e18, FALSE, &seed},
    {"--threads", &s_threads, NUM_INT, 1, 1024, FALSE, &threads},
  };
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    rc = bp_cli_usage_error (cmd, "%s", error->message);
    goto done;
  }
  if (argc != 2) {
    rc = bp_cli_usage_error (
        cmd, argc < 2 ? "which run? (give its id or name)" : "unexpected argument \"%s\"",
        argv[argc < 2 ? 0 : 2]);
    goto done;
  }
  if ((rc = apply_number_flags (cmd, flags, G_N_ELEMENTS (flags))))
    goto done;
  if (prompt && !g_utf8_validate (prompt, -1, NULL)) {
    rc = bp_cli_usage_error (cmd, "--prompt is not UTF-8 text");
    goto done;
  }
  if (!s_seed) {
    /* a random seed: a new text each time */
    seed = (gint64) (g_random_int () >> 1);
  }
  bp_set_num_threads ((int) threads);

  gint64 id;
  if ((rc = open_store (cmd, db, STORE_READ, &store)) ||
      (rc = resolve_run (cmd, store, db, argv[1], &id)))
    goto done;
  run = bp_store_get_run (store, id, &error);
  cps = run ? bp_store_list_checkpoints (store, id, &error) : NULL;
  if (!cps) {
    rc = bp_cli_fail (cmd, error->message);
    goto done;
  }
  if (!bp_train_dataset_is_text (run->dataset)) {
    rc = bp_cli_failf (cmd,
                       "run %" G_GINT64_FORMAT " (%s on %s) is not a language model: generate "
                       "needs a run trained on a text corpus (e.g. backprop train --model "
                       "char-gpt-tiny --dataset tang300)",
                       id, run->model_name ? run->model_name : "-",
                       run->dataset ? run->dataset : "-");
    goto done;
  }
  BpCheckpoint *cp = cps->len ? g_ptr_array_index (cps, cps->len - 1) : NULL;
  for (guint k = 0; best && k < cps->len; k++)
    if (((BpCheckpoint *) g_ptr_array_index (cps, k))->is_best)
      cp = g_ptr_array_index (cps, k);
  if (!cp) {
    rc = bp_cli_failf (cmd,
                       "run %" G_GINT64_FORMAT " has no checkpoint to generate from (it "
                       "stopped before its first was saved)",
                       id);
    goto done;
  }
  model = bp_checkpoint_load_language_model (cp->path, &vocab, NULL, &error);
  if (!model) {
    rc = bp_cli_fail (cmd, error->message);
    goto done;
  }
  /* a model that cannot decode one character at a time (attention looking ahead) */
  BpModelCache *probe = bp_model_cache_new (model, 1);
  if (!probe) {
    rc = bp_cli_failf (cmd, "run %" G_GINT64_FORMAT " cannot generate: %s", id, bp_last_error ());
    goto done;
  }
  bp_model_cache_free (probe);
  const char *text = prompt ? prompt : "";
  unknown = bp_vocab_unknown_chars (vocab, text);
  if (*unknown) {
    g_autofree char *shown = describe_chars (unknown);
    if (!allow_unknown) {
      rc = bp_cli_failf (cmd,
                         "the prompt has characters outside the vocabulary of run %" G_GINT64_FORMAT
                         " (%s): %s; leave them out, or give "
                         "--allow-unknown to read them as <unk>",
                         id, run->dataset, shown);
      goto done;
    }
    fprintf (stderr, "%s %s: reading %s as <unk> (not in the vocabulary)\n", prog, cmd, shown);
  }
  glong n_prompt = g_utf8_strlen (text, -1);
  int64_t context = bp_model_context_length (model);
  if (n_prompt > context) {
    rc = bp_cli_failf (
        cmd,
        "the prompt has %ld characters, more than the model's context of %" G_GINT64_FORMAT
        ": shorten it",
        n_prompt, context);
    goto done;
  }
  BpGenerateOptions go = BP_GENERATE_OPTIONS_INIT;
  go.max_new = max_new;
  go.temperature = (float) temperature;
  go.top_k = top_k;
  go.top_p = (float) top_p;
  go.strict = !allow_unknown;
  bp_rng_seed ((uint64_t) seed);
  fputs (text, stdout);
  fflush (stdout);
  generated = bp_generate (model, vocab, text, &go, print_piece, NULL, NULL, &error);
  printf ("\n");
  fflush (stdout);
  if (!generated)
    rc = bp_cli_fail (cmd, error->message);

done:
  for (gsize k = 0; k < G_N_ELEMENTS (flags); k++)
    g_free (*flags[k].text);
  bp_model_free (model);
  bp_vocab_free (vocab);
  g_free (unknown);
  g_free (generated);
  if (cps)
    g_ptr_array_unref (cps);
  bp_run_free (run);
  bp_store_close (store);
  return rc;
}

/* ---- models ---- */

static int
cmd_models (int argc, char **argv)
{
  gboolean json = FALSE;
  GOptionEntry entries[] = {
    {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print a JSON array", NULL},
    {NULL},
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- list the model presets");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return bp_cli_usage_error ("models", "%s", error->message);
  int n;
  const BpPreset *presets = bp_presets (&n);
  if (json)
    printf ("[");
  for (int k = 0; k < n; k++) {
    BpModel *m = bp_spec_build (presets[k].json, &error);
    if (!m)
      return bp_cli_fail ("models", error->message);
    if (json)
      printf ("%s{\"name\":\"%s\",\"parameters\":%" G_GINT64_FORMAT ",\"description\":\"%s\"}",
              k ? "," : "", presets[k].name, bp_model_num_parameters (m), presets[k].description);
    else
      printf ("%-12s %10" G_GINT64_FORMAT " parameters  %s\n", presets[k].name,
              bp_model_num_parameters (m), presets[k].description);
    bp_model_free (m);
  }
  if (json)
    printf ("]\n");
  return 0;
}

/* ---- datasets ---- */

/* Whether a text corpus's files are there; *package gets the package that installs them. */
static gboolean
corpus_installed (const char *name, const char **package)
{
  const char *dir = bp_text_fortunes_dir ();
  gboolean chinese = strcmp (name, "fortunes") != 0;
  *package = chinese ? "fortunes-zh" : "fortunes";
  const char *zh[] = {"tang300", "song100", "chinese", NULL};
  const char *one[] = {name, NULL};
  const char *const *files = strcmp (name, "fortunes-zh") == 0 ? zh : one;
  for (int k = 0; files[k]; k++) {
    g_autofree char *path = g_build_filename (dir, files[k], NULL);
    if (!g_file_test (path, G_FILE_TEST_IS_REGULAR))
      return FALSE;
  }
  return TRUE;
}

static int
cmd_datasets (int argc, char **argv)
{
  gboolean json = FALSE;
  GOptionEntry entries[] = {
    {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print a JSON array", NULL},
    {NULL},
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- list the data sets");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_summary (ctx, "Lists every data set `backprop train --dataset` takes: its kind (images, "
                                     "tabular, synthetic, text), task, examples (train+test), the shape of one "
                                     "example, the classes, and whether it is installed (else the Debian "
                                     "package to install).");
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return bp_cli_usage_error ("datasets", "%s", error->message);
  if (argc > 1)
    return bp_cli_usage_error ("datasets", "unexpected argument \"%s\"", argv[1]);
  Jw *b = json ? jw_new () : NULL;
  if (b)
    jw_begin (b, '[');
  else
    printf ("%-14s %-10s %-15s %-12s %-12s %-7s %s\n", "NAME", "KIND", "TASK", "EXAMPLES",
            "SHAPE", "CLASSES", "INSTALLED");
  for (const char *const *n = bp_dataset_names (); *n; n++) {
    const BpDatasetInfo *info = bp_dataset_info (*n);
    g_autoptr (GError) missing = NULL;
    gboolean installed = bp_dataset_check_installed (*n, &missing);
    g_autofree char *shape = bp_example_shape_string (info->example_ndim, info->example_shape);
    if (b) {
      jw_begin (b, '{');
      json_add_string (b, "name", info->name);
      json_add_string (b, "title", info->title);
      json_add_string (b, "kind", bp_dataset_kind_name (info->kind));
      json_add_string (b, "task", bp_task_name (info->task));
      json_add_int (b, "train", info->n_train);
      json_add_int (b, "test", info->n_test);
      jw_key (b, "shape");
      jw_begin (b, '[');
      for (int d = 0; d < info->example_ndim; d++)
        jw_int (b, info->example_shape[d]);
      jw_end (b, ']');
      json_add_int (b, "classes", info->n_classes);
      jw_key (b, "installed");
      jw_bool (b, installed);
      json_add_string (b, "package", info->package);
      json_add_string (b, "missing", installed ? NULL : missing->message);
      jw_end (b, '}');
    } else {
      g_autofree char *examples = g_strdup_printf ("%" G_GINT64_FORMAT "+%" G_GINT64_FORMAT,
                                                   info->n_train, info->n_test);
      g_autofree char *classes = info->n_classes ? g_strdup_printf ("%d", info->n_classes)
                                                 : g_strdup ("-");
      g_autofree char *status = installed ? g_strdup (info->package ? "yes" : "yes (generated)")
                                          : g_strdup_printf ("no: apt install %s", info->package);
      printf ("%-14s %-10s %-15s %-12s %-12s %-7s %s\n", info->name,
              bp_dataset_kind_name (info->kind), bp_task_name (info->task), examples, shape,
              classes, status);
    }
  }
  for (const char *const *n = bp_text_corpus_names (); *n; n++) {
    const char *package;
    gboolean installed = corpus_installed (*n, &package);
    if (b) {
      jw_begin (b, '{');
      json_add_string (b, "name", *n);
      json_add_string (b, "title", strcmp (package, "fortunes") == 0
                                     ? "English fortunes (text corpus)"
                                     : "Chinese poems and sayings (text corpus, Traditional)");
      json_add_string (b, "kind", "text");
      json_add_string (b, "task", "language model");
      jw_key (b, "train");
      jw_null (b);
      jw_key (b, "test");
      jw_null (b);
      jw_key (b, "shape");
      jw_null (b);
      json_add_int (b, "classes", 0);
      jw_key (b, "installed");
      jw_bool (b, installed);
      json_add_string (b, "package", package);
      g_autofree char *why = installed ? NULL : g_strdup_printf ("install the Debian package %s "
                                                                 "(apt install %s)", package,
                                                                 package);
      json_add_string (b, "missing", why);
      jw_end (b, '}');
    } else {
      g_autofree char *status = installed ? g_strdup ("yes")
                                          : g_strdup_printf ("no: apt install %s", package);
      printf ("%-14s %-10s %-15s %-12s %-12s %-7s %s\n", *n, "text", "language model",
              "-", "characters", "-", status);
    }
  }
  if (b) {
    jw_end (b, ']');
    jw_print_free (b);
  } else {
    printf ("\nText corpora are sized in characters; \"+\" joins tang300, song100 and chinese, "
            "and file:PATH trains on a UTF-8 text file.\n");
  }
  return 0;
}

/* ---- bench ---- */

/* The timed stretches of a run: `repeats` stretches of `steps` steps after `warmup` untimed
 * ones, the shortest kept. The trainer's STEP event comes after the step's loss was read back,
 * so every mark is synchronised with the device. */
typedef struct {
  gint64 warmup, steps, repeats;
  gint64 mark;   /* time of the last stretch boundary */
  gint64 best;   /* microseconds of the shortest stretch, 0 before the first */
  double last_loss;
} BenchClock;

/* Called after `done` steps: marks a stretch boundary when one is reached; FALSE after the
 * last stretch. */
static gboolean
bench_clock_step (BenchClock *k, gint64 done, double loss)
{
  if (done < k->warmup || (done - k->warmup) % k->steps != 0)
    return TRUE;
  gint64 now = g_get_monotonic_time ();
  if (done > k->warmup && (k->best == 0 || now - k->mark < k->best))
    k->best = MAX (1, now - k->mark);
  k->mark = now;
  k->last_loss = loss;
  return done < k->warmup + k->repeats * k->steps;
}

static gboolean
bench_on_event (const BpTrainEvent *ev, gpointer user_data)
{
  BenchClock *k = user_data;
  if (ev->kind == BP_TRAIN_EVENT_START)
    return bench_clock_step (k, 0, NAN);
  if (ev->kind == BP_TRAIN_EVENT_STEP)
    return bench_clock_step (k, ev->global_step, ev->loss);
  return TRUE;
}

/* The training steps the trainer runs on the device (the resident training set, CUDA-graph
 * replays unless graph is FALSE): the first images of the training set, in whole batches, enough
 * for all the steps up to the whole set (more steps take more epochs), no validation split. */
static gboolean
bench_trainer (const char *model, BpDevice device, BpPrecision precision, gboolean graph,
               gint64 batch, BenchClock *k, char **note, GError **error)
{
  gint64 total = k->warmup + k->repeats * k->steps;
  gint64 per_epoch = MIN (60000, batch * total) / batch;
  if (per_epoch < 1) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 "--batch-size must be at most 60000 (the training images), not %" G_GINT64_FORMAT,
                 batch);
    return FALSE;
  }
  BpTrainConfig c = bp_train_config_default ();
  c.model = model;
  c.dataset = "fashion-mnist";
  c.batch_size = batch;
  c.epochs = (int) ((total + per_epoch - 1) / per_epoch);
  c.limit_train = per_epoch * batch;
  c.limit_test = 1;
  c.val_fraction = 0.0;
  c.device = device;
  c.precision = precision;
  BpTrainer *t = bp_trainer_new (&c, error);
  if (!t)
    return FALSE;
  bp_trainer_set_step_mode (t, graph ? BP_STEP_GRAPH : BP_STEP_EAGER);
  gboolean ok = bp_trainer_run (t, bench_on_event, k, error);
  if (ok && bp_trainer_get_global_step (t) < total) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_ENGINE,
                 "the run ended after %" G_GINT64_FORMAT " of %" G_GINT64_FORMAT " steps",
                 bp_trainer_get_global_step (t), total);
    ok = FALSE;
  }
  if (ok)
    *note = g_strdup (bp_trainer_get_step_note (t));
  bp_trainer_free (t);
  return ok;
}

/* The CPU's own loop: the first images in order, as bench/run's PyTorch side takes them. */
static int
bench_cpu_loop (const char *cmd, const BpPreset *preset, gint64 batch, BenchClock *k)
{
  g_autoptr (GError) error = NULL;
  gint64 total = k->warmup + k->repeats * k->steps;
  BpDatasetOptions dopts = BP_DATASET_OPTIONS_INIT;
  dopts.limit = MIN (60000, batch * total);
  BpDataset *ds = bp_dataset_load_full ("fashion-mnist", "train", &dopts, &error);
  if (!ds)
    return bp_cli_fail (cmd, error->message);
  BpModel *m = bp_spec_build (preset->json, &error);
  if (!m) {
    bp_dataset_unref (ds);
    return bp_cli_fail (cmd, error->message);
  }
  BpTensor **params;
  int n_params = bp_model_parameters (m, &params);
  BpOptimConfig oc = bp_optim_config_default (BP_OPTIM_ADAM);
  BpOptimizer *opt = bp_optimizer_new (&oc, n_params, params);
  BpLoaderOptions lo = BP_LOADER_OPTIONS_INIT;
  lo.batch_size = batch;
  lo.drop_last = TRUE;
  BpLoader *loader = bp_loader_new (ds, NULL, &lo, &error);
  g_assert (loader);

  int rc = 0;
  bench_clock_step (k, 0, NAN);
  for (gint64 s = 1; s <= total; s++) {
    BpTensor *x, *y;
    if (!bp_loader_next (loader, &x, &y))
      g_assert_true (bp_loader_next (loader, &x, &y));
    bp_optimizer_zero_grad (opt);
    BpTensor *logits = bp_model_forward (m, x);
    BpTensor *loss = logits ? bp_cross_entropy (logits, y, 0.0f) : NULL;
    if (!loss || bp_backward (loss) != BP_OK || bp_optimizer_step (opt) != BP_OK) {
      rc = bp_cli_fail (cmd, bp_last_error ());
      break;
    }
    bench_clock_step (k, s, loss->data[0]);
    bp_tensor_unref (loss);
    bp_tensor_unref (logits);
    bp_tape_clear ();
  }
  bp_loader_free (loader);
  bp_optimizer_free (opt);
  free (params);
  bp_model_free (m);
  bp_dataset_unref (ds);
  return rc;
}

/* --gemm N: the engine's float32 product against cuBLAS called directly. */
static int
bench_gemm (const char *cmd, gint64 n, gint64 repeats, gboolean json)
{
  double ours = 0, theirs = 0;
  if (bp_cuda_bench_gemm (n, (int) repeats, &ours, &theirs) != BP_OK)
    return bp_cli_fail (cmd, bp_last_error ());
  /* the math mode of both: $BP_CUDA_BF16_GEMM=1, else TF32 unless $BP_CUDA_TF32=0 */
  const char *math = bp_cuda_get_bf16_gemm () ? "bf16-inputs"
                     : bp_cuda_get_tf32 ()    ? "tf32"
                                              : "fp32";
  if (json) {
    Jw *b = jw_new ();
    jw_begin (b, '{');
    json_add_string (b, "engine", "backprop");
    json_add_string (b, "device", "cuda");
    json_add_int (b, "gemm", n);
    json_add_string (b, "math", math);
    json_add_int (b, "repeats", repeats);
    json_add_double (b, "engine_tflops", round (ours * 100.0) / 100.0);
    json_add_double (b, "cublas_tflops", round (theirs * 100.0) / 100.0);
    json_add_double (b, "ratio", round (ours / theirs * 1e4) / 1e4);
    jw_end (b, '}');
    jw_print_free (b);
  } else {
    printf ("GEMM %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
            " float32 (%s), best of %" G_GINT64_FORMAT ": engine %.1f TFLOP/s, cuBLAS %.1f "
            "TFLOP/s, ratio %.3f\n",
            n, n, n, math, repeats, ours, theirs, ours / theirs);
  }
  return 0;
}

static int
cmd_bench (int argc, char **argv)
{
  const char *cmd = "bench";
  /* GOption replaces a string's pointer without freeing it: no defaults in them */
  g_autofree char *model_arg = NULL, *device = NULL, *precision = NULL, *cuda_graph = NULL;
  char *s_batch = NULL, *s_steps = NULL, *s_warmup = NULL, *s_threads = NULL, *s_gemm = NULL,
       *s_repeats = NULL;
  gboolean json = FALSE;
  GOptionEntry entries[] = {
    {"model", 'm', 0, G_OPTION_ARG_STRING, &model_arg, "Model preset; default simple-cnn", "NAME"},
    {"batch-size", 'b', 0, G_OPTION_ARG_STRING, &s_batch, "Examples per step; default 64", "N"},
    {"steps", 0, 0, G_OPTION_ARG_STRING, &s_steps, "Timed training steps; default 50", "N"},
    {"warmup", 0, 0, G_OPTION_ARG_STRING, &s_warmup, "Untimed steps first; default 5", "N"},
    {"threads", 0, 0, G_OPTION_ARG_STRING, &s_threads, "CPU threads; default all cores", "N"},
    {"device", 0, 0, G_OPTION_ARG_STRING, &device,
     "cpu or cuda (the trainer's steps on the GPU: resident data set, CUDA graphs); default cpu",
     "DEV"},
    {"precision", 0, 0, G_OPTION_ARG_STRING, &precision,
     "fp32, or bf16: matrix products with bfloat16 operands; default fp32", "P"},
    {"cuda-graph", 0, 0, G_OPTION_ARG_STRING, &cuda_graph,
     "on: replay each step as a CUDA graph; off: launch every kernel; default on", "on|off"},
    {"gemm", 0, 0, G_OPTION_ARG_STRING, &s_gemm,
     "Instead of training: time an N x N x N float32 GEMM through the engine and through cuBLAS "
     "directly (needs --device cuda)",
     "N"},
    {"repeats", 0, 0, G_OPTION_ARG_STRING, &s_repeats,
     "Timed stretches of --steps steps in the one run, the best reported; default 1 (--gemm: "
     "timings of the product, default 10)",
     "N"},
    {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print the result as one JSON object", NULL},
    {NULL},
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- measure training speed");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_summary (
      ctx, "Trains a preset with Adam on the first Fashion-MNIST training images and reports "
           "images per second over the timed steps. On the CPU the images are taken in order "
           "(bench/run compares them with PyTorch on the same batches); with --device cuda the "
           "trainer's own steps are timed (bench/gpu compares them with PyTorch on the GPU). "
           "--gemm N times one matrix product instead.");
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return bp_cli_usage_error (cmd, "%s", error->message);
  if (argc > 1)
    return bp_cli_usage_error (cmd, "unexpected argument \"%s\"", argv[1]);
  gint64 batch = 64, steps = 50, warmup = 5, threads = 0, gemm = 0, repeats = 1;
  NumberFlag flags[] = {
    {"--batch-size", &s_batch, NUM_INT, 1, 1 << 16, FALSE, &batch},
    {"--steps", &s_steps, NUM_INT, 1, 1e6, FALSE, &steps},
    {"--warmup", &s_warmup, NUM_INT, 0, 1e6, FALSE, &warmup},
    {"--threads", &s_threads, NUM_INT, 1, 1024, FALSE, &threads},
    {"--gemm", &s_gemm, NUM_INT, 1, 32768, FALSE, &gemm},
    {"--repeats", &s_repeats, NUM_INT, 1, 1000, FALSE, &repeats},
  };
  int rc = apply_number_flags (cmd, flags, G_N_ELEMENTS (flags));
  for (gsize k = 0; k < G_N_ELEMENTS (flags); k++)
    g_free (*flags[k].text);
  if (rc)
    return rc;
  if (gemm && !s_repeats)
    repeats = 10;
  const char *model = model_arg ? model_arg : "simple-cnn";
  const BpPreset *preset = bp_preset_find (model);
  if (!preset)
    return bp_cli_usage_error (cmd, "unknown model \"%s\" (see `backprop models`)", model);
  BpPrecision prec = BP_PRECISION_FP32;
  if (precision && !bp_precision_parse (precision, &prec))
    return bp_cli_usage_error (cmd, "--precision must be fp32 or bf16, not \"%s\"", precision);
  if (cuda_graph && g_strcmp0 (cuda_graph, "on") != 0 && g_strcmp0 (cuda_graph, "off") != 0)
    return bp_cli_usage_error (cmd, "--cuda-graph must be on or off, not \"%s\"", cuda_graph);
  gboolean graph = g_strcmp0 (cuda_graph, "off") != 0;
  if (device && g_strcmp0 (device, "cpu") != 0 && g_strcmp0 (device, "cuda") != 0)
    return bp_cli_usage_error (cmd, "--device must be cpu or cuda, not \"%s\"", device);
  gboolean cuda = g_strcmp0 (device, "cuda") == 0;
  if (s_gemm && !cuda)
    return bp_cli_usage_error (cmd, "--gemm needs --device cuda");
  if (s_gemm && prec != BP_PRECISION_FP32)
    return bp_cli_usage_error (cmd, "--gemm times the float32 product: leave out --precision");
  BpDevice dev = BP_DEVICE_CPU;
  /* a GPU that cannot be used is the reason the command fails, not a bad flag */
  if (cuda && !bp_cli_choose_device ("cuda", &dev, TRUE, &error))
    return bp_cli_fail (cmd, error->message);
  bp_set_num_threads ((int) threads);
  if (gemm)
    return bench_gemm (cmd, gemm, repeats, json);
  bp_rng_seed (1);

  BenchClock k = {warmup, steps, repeats, 0, 0, NAN};
  g_autofree char *note = NULL;
  if (cuda) {
    if (!bench_trainer (model, dev, prec, graph, batch, &k, &note, &error))
      return g_error_matches (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE)
                 ? bp_cli_usage_error (cmd, "%s", error->message)
                 : bp_cli_fail (cmd, error->message);
  } else {
    BpPrecision was = bp_set_precision (prec);
    rc = bench_cpu_loop (cmd, preset, batch, &k);
    bp_set_precision (was);
    if (rc)
      return rc;
  }
  double seconds = (double) k.best / 1e6, last_loss = k.last_loss;
  double ips = (double) (steps * batch) / seconds;
  const char *dev_name = cuda ? "cuda" : "cpu";
  if (json) {
    Jw *b = jw_new ();
    jw_begin (b, '{');
    json_add_string (b, "engine", "backprop");
    json_add_string (b, "model", model);
    json_add_int (b, "batch_size", batch);
    json_add_int (b, "threads", bp_get_num_threads ());
    json_add_int (b, "steps", steps);
    json_add_int (b, "repeats", repeats);
    json_add_double (b, "images_per_second", round (ips * 10.0) / 10.0);
    json_add_double (b, "last_loss", round (last_loss * 1e5) / 1e5);
    json_add_string (b, "device", dev_name);
    json_add_string (b, "precision", prec == BP_PRECISION_BF16 ? "bf16" : "fp32");
    jw_key (b, "cuda_graph");
    jw_bool (b, cuda && graph);
    json_add_string (b, "step_note", note ? note : "");
    jw_end (b, '}');
    jw_print_free (b);
  } else {
    printf ("%s, batch %" G_GINT64_FORMAT ", %s", model, batch, dev_name);
    if (cuda)
      printf (" (CUDA graph %s)", graph ? "on" : "off");
    else
      printf (", %d threads", bp_get_num_threads ());
    printf (", %s: %.1f images/s", prec == BP_PRECISION_BF16 ? "bf16" : "fp32", ips);
    if (repeats > 1)
      printf (" (best of %" G_GINT64_FORMAT " x %" G_GINT64_FORMAT " steps)", repeats, steps);
    printf (" (loss %.4f)\n", last_loss);
    if (note && note[0])
      printf ("%s\n", note);
  }
  return 0;
}

/* ---- devices ---- */

static void
print_line (const char *line, void *user)
{
  printf ("%s\n", line);
}

static int
cmd_devices (int argc, char **argv)
{
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- list the GPUs");
  g_option_context_set_summary (ctx, "Lists the GPUs found (name, memory, compute capability, driver, "
                                     "cuDNN and cuBLAS versions) or says why none can be used.");
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return bp_cli_usage_error ("devices", "%s", error->message);
  BpCudaInfo info;
  bp_cuda_query (&info);
  bp_cuda_info_print (&info, print_line, NULL);
  return 0;
}

/* ---- main ---- */

typedef struct {
  const char *name;
  int (*run) (int argc, char **argv);
  const char *help;
} Command;

static const Command commands[] = {
  {"train", cmd_train, "Train a model on a data set (stored as a run)"},
  {"runs", cmd_runs, "List the stored runs"},
  {"show", cmd_show, "Show a stored run: settings, metrics per epoch, checkpoints"},
  {"compare", cmd_compare, "Compare runs side by side, or plot their curves (--plot)"},
  {"export", cmd_export, "Export a run's metrics (--csv) or model (--pytorch)"},
  {"generate", cmd_generate, "Generate text with a stored language-model run"},
  {"attention", bp_cmd_attention, "Draw a language-model run's attention on a text as a heatmap PNG"},
  {"rm", cmd_rm, "Remove stored runs"},
  {"tag", cmd_tag, "Add or remove tags of a run"},
  {"note", cmd_note, "Write or read the note of a run"},
  {"lessons", bp_cmd_lessons, "List the guided lessons with their goals"},
  {"lesson", bp_cmd_lesson, "Show a lesson, or run its experiment and check its goals"},
  {"models", cmd_models, "List the model presets with their parameter counts"},
  {"datasets", cmd_datasets, "List the data sets: kind, task, size, shape, whether installed"},
  {"bench", cmd_bench, "Measure training speed (images per second)"},
  {"devices", cmd_devices, "List the GPUs, or say why none can be used"},
};

static void
print_help (FILE *f)
{
  fprintf (f, "Usage: %s COMMAND [OPTIONS]\n\nBackprop Lab %s: deep learning on the command line.\n\n"
              "Commands:\n", prog, PACKAGE_VERSION);
  for (gsize k = 0; k < G_N_ELEMENTS (commands); k++)
    fprintf (f, "  %-9s %s\n", commands[k].name, commands[k].help);
  fprintf (f, "\nRun `%s COMMAND --help` for a command's options.\n", prog);
}

int
main (int argc, char **argv)
{
  if (argc < 2) {
    print_help (stderr);
    return BP_CLI_EXIT_USAGE;
  }
  if (!strcmp (argv[1], "--help") || !strcmp (argv[1], "-h") || !strcmp (argv[1], "help")) {
    print_help (stdout);
    return 0;
  }
  if (!strcmp (argv[1], "--version")) {
    printf ("backprop %s\n", PACKAGE_VERSION);
    return 0;
  }
  for (gsize k = 0; k < G_N_ELEMENTS (commands); k++) {
    if (strcmp (argv[1], commands[k].name) == 0) {
      g_set_prgname (commands[k].name);
      return commands[k].run (argc - 1, argv + 1);
    }
  }
  fprintf (stderr, "%s: unknown command \"%s\" (see `%s --help`)\n", prog, argv[1], prog);
  return BP_CLI_EXIT_USAGE;
}
