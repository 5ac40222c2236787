/* bp-cmd-attention.c: `backprop attention RUN --text TEXT --png FILE`: runs a text through the
 * newest checkpoint of a stored language-model run with attention capture and draws one
 * attention layer's weights (a head, or the mean of the heads) as a heatmap PNG with the text's
 * characters along both axes (widgets/bp-heatmap-draw.c). */
#include "config.h"

#include "bp-cmd-attention.h"
#include "bp-cli.h"

#include <json-glib/json-glib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bp-heatmap-draw.h"
#include "bp-safetensors.h"
#include "bp-store.h"
#include "bp-text.h"
#include "bp-trainer.h"

#define CMD "attention"

/* ---- the run and its checkpoint ---- */

/* Opens the store read-only (the command changes nothing) and finds RUN (an id, or a name
 * that names one run). */
static int
open_run (const char *db, const char *spec, BpStore **store_out, BpRun **run_out)
{
  g_autofree char *path = db ? g_strdup (db) : bp_store_default_path ();
  g_autofree char *shown = g_filename_display_name (path);
  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    return bp_cli_failf (CMD, "no run \"%s\": there is no database at %s", spec, shown);
  g_autoptr (GError) error = NULL;
  const char *busy = g_getenv ("BP_BUSY_TIMEOUT_MS");
  int timeout = busy ? atoi (busy) : 0;
  g_autoptr (BpStore) store = bp_store_open_full (path, BP_STORE_OPEN_READ_ONLY, timeout, &error);
  if (!store)
    return bp_cli_failf (CMD, "%s", error->message);
  gint64 id = -1;
  if (bp_cli_all_digits (spec)) {
    id = g_ascii_strtoll (spec, NULL, 10);
  } else {
    g_autoptr (GPtrArray) runs = bp_store_list_runs (store, &error);
    if (!runs)
      return bp_cli_failf (CMD, "%s", error->message);
    g_autoptr (GString) ids = g_string_new (NULL);
    int n = 0;
    for (guint k = 0; k < runs->len; k++) {
      BpRun *r = g_ptr_array_index (runs, k);
      if (g_strcmp0 (r->name, spec) != 0)
        continue;
      g_string_append_printf (ids, "%s%" G_GINT64_FORMAT, n ? ", " : "", r->id);
      id = r->id;
      n++;
    }
    if (n == 0)
      return bp_cli_failf (CMD, "no run called \"%s\" in %s (see `backprop runs`)", spec, shown);
    if (n > 1)
      return bp_cli_failf (CMD, "%d runs are called \"%s\" (ids %s): give the id", n, spec,
                           ids->str);
  }
  BpRun *run = bp_store_get_run (store, id, &error);
  if (!run) {
    if (g_error_matches (error, BP_STORE_ERROR, BP_STORE_ERROR_NOT_FOUND))
      return bp_cli_failf (CMD, "no run %s in %s (see `backprop runs`)", spec, shown);
    return bp_cli_failf (CMD, "%s", error->message);
  }
  *store_out = g_steal_pointer (&store);
  *run_out = run;
  return 0;
}

/* ---- attention layers ---- */

static gboolean
is_attention (const BpLayer *l)
{
  return l->spec.kind == BP_LAYER_MULTIHEAD_ATTENTION ||
         l->spec.kind == BP_LAYER_TRANSFORMER_ENCODER_LAYER;
}

/* --layer: an attention node's id, or its number among them (from 1). */
static int
choose_layer (BpModel *m, const char *choice, GPtrArray *attn, BpLayer **out)
{
  g_autoptr (GString) ids = g_string_new (NULL);
  for (guint k = 0; k < attn->len; k++)
    g_string_append_printf (ids, "%s%s", k ? ", " : "", ((BpLayer *) attn->pdata[k])->spec.id);
  if (!choice) {
    *out = attn->pdata[0];
    return 0;
  }
  BpLayer *l = bp_model_find (m, choice);
  if (l && is_attention (l)) {
    *out = l;
    return 0;
  }
  if (l)
    return bp_cli_usage_error (
        CMD, "--layer %s: node \"%s\" is a %s, not an attention layer (the model's are: %s)",
        choice, choice, bp_layer_kind_name (l->spec.kind), ids->str);
  if (bp_cli_all_digits (choice)) {
    gint64 k = g_ascii_strtoll (choice, NULL, 10);
    if (k >= 1 && k <= (gint64) attn->len) {
      *out = attn->pdata[k - 1];
      return 0;
    }
    return bp_cli_usage_error (
        CMD, "--layer %s: the model has %u attention layer%s (%s); give 1 to %u or an id", choice,
        attn->len, attn->len == 1 ? "" : "s", ids->str, attn->len);
  }
  return bp_cli_usage_error (CMD, "--layer %s: no such attention layer (the model's are: %s)",
                             choice, ids->str);
}

/* --head: "mean" (-1) or a head's number from 1. */
static int
choose_head (const char *choice, int heads, int *out)
{
  if (!choice || g_ascii_strcasecmp (choice, "mean") == 0) {
    *out = -1;
    return 0;
  }
  gint64 k = bp_cli_all_digits (choice) ? g_ascii_strtoll (choice, NULL, 10) : 0;
  if (k < 1 || k > heads)
    return bp_cli_usage_error (CMD, "--head %s: give mean or a head from 1 to %d", choice, heads);
  *out = (int) k - 1;
  return 0;
}

/* ---- the command ---- */

/* The characters of text as NUL-terminated strings (g_strfreev). */
static char **
split_chars (const char *text, int *n)
{
  GPtrArray *a = g_ptr_array_new ();
  for (const char *p = text; *p; p = g_utf8_next_char (p))
    g_ptr_array_add (a, g_strndup (p, g_utf8_next_char (p) - p));
  *n = (int) a->len;
  g_ptr_array_add (a, NULL);
  return (char **) g_ptr_array_free (a, FALSE);
}

/* The distinct characters as a quoted list: “x”, “y” (spaces and newlines shown by name). */
static char *
quote_chars (const char *chars)
{
  GString *s = g_string_new (NULL);
  for (const char *p = chars; *p; p = g_utf8_next_char (p)) {
    gunichar c = g_utf8_get_char (p);
    if (s->len)
      g_string_append (s, ", ");
    if (c == ' ')
      g_string_append (s, "space");
    else if (c == '\n')
      g_string_append (s, "newline");
    else if (g_unichar_iscntrl (c))
      g_string_append_printf (s, "U+%04X", c);
    else
      g_string_append_printf (s, "\"%.*s\"", (int) (g_utf8_next_char (p) - p), p);
  }
  return g_string_free (s, FALSE);
}

/* --json: what was drawn, the weights and where the PNG's cells are. */
static void
print_json (const BpRun *run, const BpCheckpoint *cp, const BpLayer *layer, int index, int head,
            int heads, int n, char **tokens, const float *matrix, const char *png, int width,
            int height, const BpHeatmapGeometry *geo)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "run");
  json_builder_add_int_value (b, run->id);
  json_builder_set_member_name (b, "checkpoint");
  json_builder_add_string_value (b, cp->path);
  json_builder_set_member_name (b, "epoch");
  json_builder_add_int_value (b, cp->epoch);
  json_builder_set_member_name (b, "step");
  json_builder_add_int_value (b, cp->step);
  json_builder_set_member_name (b, "layer");
  json_builder_add_string_value (b, layer->spec.id);
  json_builder_set_member_name (b, "layer_index");
  json_builder_add_int_value (b, index);
  json_builder_set_member_name (b, "heads");
  json_builder_add_int_value (b, heads);
  json_builder_set_member_name (b, "head");
  if (head >= 0)
    json_builder_add_int_value (b, head + 1);
  else
    json_builder_add_string_value (b, "mean");
  json_builder_set_member_name (b, "tokens");
  json_builder_begin_array (b);
  for (int i = 0; i < n; i++)
    json_builder_add_string_value (b, tokens[i]);
  json_builder_end_array (b);
  json_builder_set_member_name (b, "weights");
  json_builder_begin_array (b);
  for (int i = 0; i < n; i++) {
    json_builder_begin_array (b);
    for (int j = 0; j < n; j++)
      json_builder_add_double_value (b, matrix[i * n + j]);
    json_builder_end_array (b);
  }
  json_builder_end_array (b);
  if (png) {
    json_builder_set_member_name (b, "png");
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "path");
    json_builder_add_string_value (b, png);
    json_builder_set_member_name (b, "width");
    json_builder_add_int_value (b, width);
    json_builder_set_member_name (b, "height");
    json_builder_add_int_value (b, height);
    json_builder_set_member_name (b, "left");
    json_builder_add_double_value (b, geo->left);
    json_builder_set_member_name (b, "top");
    json_builder_add_double_value (b, geo->top);
    json_builder_set_member_name (b, "cell");
    json_builder_add_double_value (b, geo->cell);
    json_builder_set_member_name (b, "scale_max");
    json_builder_add_double_value (b, geo->vmax);
    json_builder_end_object (b);
  }
  json_builder_end_object (b);
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  g_autofree char *text = json_to_string (root, FALSE);
  printf ("%s\n", text);
}

static int
run_attention (const char *run_spec, const char *text, const char *layer_choice,
               const char *head_choice, const char *png, gboolean json, const char *db)
{
  if (!g_utf8_validate (text, -1, NULL))
    return bp_cli_usage_error (CMD, "--text is not UTF-8 text");
  if (!*text)
    return bp_cli_usage_error (CMD, "--text is empty: give the text to look at");

  g_autoptr (BpStore) store = NULL;
  g_autoptr (BpRun) run = NULL;
  int rc = open_run (db, run_spec, &store, &run);
  if (rc)
    return rc;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) cps = bp_store_list_checkpoints (store, run->id, &error);
  if (!cps)
    return bp_cli_failf (CMD, "%s", error->message);
  if (cps->len == 0)
    return bp_cli_failf (CMD, "run %" G_GINT64_FORMAT " \"%s\" has no checkpoint yet", run->id,
                         run->name);
  BpCheckpoint *cp = g_ptr_array_index (cps, cps->len - 1); /* ordered by step */

  /* the vocabulary first: a run of image data has none */
  g_autoptr (BpSafetensors) st = bp_safetensors_load (cp->path, &error);
  if (!st)
    return bp_cli_failf (CMD, "%s", error->message);
  const char *chars = g_hash_table_lookup (st->metadata, "vocab");
  g_autofree char *corpus = g_strdup (g_hash_table_lookup (st->metadata, "corpus"));
  if (!chars)
    return bp_cli_failf (CMD,
                         "run %" G_GINT64_FORMAT
                         " \"%s\" (data set %s) is not a language model: its "
                         "checkpoint has no vocabulary (train a model on a text corpus, e.g. "
                         "`backprop train --model char-gpt-tiny --dataset tang300`)",
                         run->id, run->name, run->dataset ? run->dataset : "-");
  g_autoptr (GError) verror = NULL;
  BpVocab *vocab = bp_vocab_from_chars (chars, &verror);
  if (!vocab)
    return bp_cli_failf (CMD, "%s: the vocabulary does not load: %s", cp->path, verror->message);
  g_clear_pointer (&st, bp_safetensors_free);

  BpModel *m = bp_checkpoint_load_model (cp->path, NULL, &error);
  if (!m) {
    bp_vocab_free (vocab);
    return bp_cli_failf (CMD, "%s", error->message);
  }
  g_autoptr (GPtrArray) attn = g_ptr_array_new ();
  for (int k = 0; k < m->n_layers; k++)
    if (is_attention (&m->layers[k]))
      g_ptr_array_add (attn, &m->layers[k]);

  int n = 0, head = -1;
  char **tokens = split_chars (text, &n);
  int64_t context = bp_model_context_length (m);
  BpLayer *layer = NULL;
  g_autofree char *unknown = bp_vocab_unknown_chars (vocab, text);
  BpTensor *x = NULL;
  rc = 0;
  if (attn->len == 0) {
    rc = bp_cli_failf (CMD,
                       "run %" G_GINT64_FORMAT " \"%s\": the model %s has no attention layers "
                       "(MultiheadAttention or TransformerEncoderLayer) to show",
                       run->id, run->name, m->name);
  } else if (bp_model_vocab_size (m) != bp_vocab_size (vocab) || m->in_ndim != 1) {
    rc =
        bp_cli_failf (CMD,
                      "%s: the model does not read the checkpoint's vocabulary of %" G_GINT64_FORMAT
                      " characters",
                      cp->path, bp_vocab_size (vocab));
  } else if (*unknown) {
    g_autofree char *list = quote_chars (unknown);
    rc = bp_cli_usage_error (CMD,
                             "--text has characters outside the vocabulary of run %" G_GINT64_FORMAT
                             " (corpus %s): %s",
                             run->id, corpus ? corpus : "-", list);
  } else if (n > context) {
    rc = bp_cli_usage_error (
        CMD, "--text has %d characters, more than the model's context of %" G_GINT64_FORMAT, n,
        context);
  } else if ((rc = choose_layer (m, layer_choice, attn, &layer)) == 0 &&
             (rc = choose_head (head_choice, (int) layer->spec.num_heads, &head)) == 0 &&
             n < context) {
    /* shorter than the context: padded, which changes nothing for rows < n only when every
     * layer looks back, never ahead (the test of incremental decoding) */
    BpModelCache *cache = bp_model_cache_new (m, 1);
    if (!cache)
      rc = bp_cli_usage_error (
          CMD,
          "this model sees the whole window at once (%s): give --text of exactly %" G_GINT64_FORMAT
          " characters",
          bp_last_error (), context);
    bp_model_cache_free (cache);
  }

  BpTensor *logits = NULL, *w = NULL;
  if (rc == 0) {
    x = bp_tensor_new (2, (int64_t[]){1, context});
    int64_t n_ids = 0;
    int64_t *ids = bp_vocab_encode (vocab, text, -1, &n_ids, NULL);
    g_assert (n_ids == n);
    for (int64_t t = 0; t < context; t++)
      x->data[t] = t < n_ids ? (float) ids[t] : 0.0f;
    g_free (ids);
    bp_model_capture_attention (m, layer->spec.id, 1);
    gboolean was = bp_set_grad_enabled (false);
    logits = bp_model_forward (m, x);
    bp_set_grad_enabled (was);
    w = bp_model_attention (m);
    if (!logits || !w)
      rc = bp_cli_failf (CMD, "the model failed on the text: %s", bp_last_error ());
  }
  if (rc == 0) {
    /* (1, H, L, L) -> the n x n corner of the head or of the mean of the heads */
    int heads = (int) w->shape[1];
    int64_t len = w->shape[2];
    float *matrix = g_new0 (float, (gsize) n * n);
    for (int hh = 0; hh < heads; hh++) {
      if (head >= 0 && hh != head)
        continue;
      const float *src = w->data + (gsize) hh * len * len;
      for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
          matrix[i * n + j] += src[i * len + j] / (head >= 0 ? 1.0f : (float) heads);
    }
    int index = 0;
    for (guint k = 0; k < attn->len; k++)
      if (attn->pdata[k] == layer)
        index = (int) k + 1;
    g_autofree char *head_text = head >= 0 ? g_strdup_printf ("head %d of %d", head + 1, heads)
                                           : g_strdup_printf ("mean of %d head%s", heads,
                                                              heads == 1 ? "" : "s");
    g_autofree char *title = g_strdup_printf ("run %" G_GINT64_FORMAT " %s: %s, %s",
                                              run->id, run->name, layer->spec.id, head_text);
    BpHeatmap h;
    bp_heatmap_init (&h);
    h.n = n;
    h.values = matrix;
    h.tokens = (const char *const *) tokens;
    h.title = title;
    h.row_title = "Query";
    h.col_title = "Key";
    int width = 0, height = 0;
    BpHeatmapGeometry geo = {0};
    if (png && !bp_heatmap_write_png (&h, png, 0, 0, &width, &height, &geo, &error)) {
      rc = bp_cli_failf (CMD, "%s", error->message);
    } else if (json) {
      print_json (run, cp, layer, index, head, heads, n, tokens, matrix, png, width, height, &geo);
    } else {
      printf ("%s: layer %s (%d of %u), %s, %d character%s, checkpoint of epoch %" G_GINT64_FORMAT
              " (step %" G_GINT64_FORMAT ")\n", png, layer->spec.id, index, attn->len, head_text,
              n, n == 1 ? "" : "s", cp->epoch, cp->step);
    }
    g_free (matrix);
  }
  bp_model_capture_attention (m, NULL, 0);
  bp_tensor_unref (logits);
  bp_tensor_unref (x);
  g_strfreev (tokens);
  bp_model_free (m);
  bp_vocab_free (vocab);
  return rc;
}

int
bp_cmd_attention (int argc, char **argv)
{
  g_autofree char *text = NULL, *layer = NULL, *head = NULL, *png = NULL, *db = NULL;
  gboolean json = FALSE;
  GOptionEntry entries[] = {
    {"text", 't', 0, G_OPTION_ARG_FILENAME, &text, "The text to run through the model (at most its context, characters of its vocabulary)", "TEXT"},
    {"layer", 'l', 0, G_OPTION_ARG_FILENAME, &layer, "The attention layer: its node id, or its number among the attention layers from 1; default 1", "N|ID"},
    {"head", 0, 0, G_OPTION_ARG_STRING, &head, "One head (from 1) or mean (the mean of the layer's heads); default mean", "N|mean"},
    {"png", 'o', 0, G_OPTION_ARG_FILENAME, &png, "Write the heatmap to this PNG file", "FILE"},
    {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print the weights (and where the PNG's cells are) as one JSON object", NULL},
    {"db", 0, 0, G_OPTION_ARG_FILENAME, &db, "Experiment database; default $XDG_DATA_HOME/backprop-lab/experiments.db", "PATH"},
    {NULL},
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("RUN - draw a language model's attention on a text");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_summary (ctx, "Runs TEXT through the newest checkpoint of a language-model run "
                                     "(id or name) and draws one attention layer's weights as a "
                                     "heatmap: a row per query character, a column per key "
                                     "character, with a colour scale.");
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return bp_cli_usage_error (CMD, "%s", error->message);
  if (argc != 2)
    return bp_cli_usage_error (
        CMD, argc < 2 ? "which run? (give its id or name)" : "unexpected argument \"%s\"",
        argv[argc < 2 ? 0 : 2]);
  if (!text)
    return bp_cli_usage_error (CMD, "give the text with --text TEXT");
  if (!png && !json)
    return bp_cli_usage_error (CMD,
                               "give the output file with --png FILE (or --json for the weights)");
  int rc = run_attention (argv[1], text, layer, head, png, json, db);
  /* Pango's font map, for the leak checker (Cairo's caches stay: fonts Pango used may still
   * be referenced there, and cairo_debug_reset_static_data would then abort) */
  pango_cairo_font_map_set_default (NULL);
  return rc;
}
