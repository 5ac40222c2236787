/* test-attention-cli.c: `backprop attention` end to end through the real program ($BP_CLI):
 * a tiny character GPT trained on a small corpus file, its attention on a text (--json weights
 * checked against the KV-cache path computed here, the PNG's cells against the weights), layer
 * and head choices, and every refusal: characters outside the vocabulary (named), a text
 * longer than the context, a model without attention layers, a non-causal model on a short
 * text, a run of image data, a run without checkpoints, missing runs and databases. */
#include "bp-test.h"

#include <cairo.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>
#include <sys/wait.h>

#include "bp-rng.h"
#include "bp-safetensors.h"
#include "bp-spec.h"
#include "bp-store.h"
#include "bp-text.h"
#include "bp-trainer.h"

static char *dir;    /* this test's folder */
static char *db;     /* its experiment database */
static char *corpus; /* file:PATH */
static char *supp;   /* LeakSanitizer suppressions for the font libraries under Pango */

typedef BpTestCli Result;

#define result_clear bp_test_cli_clear

/* Runs backprop with the font libraries' leaks suppressed (see main). */
static Result
run_argv (const char *const *args)
{
  g_autofree char *lsan = g_strdup_printf ("suppressions=%s:print_suppressions=0", supp);
  const char *env[] = {"LSAN_OPTIONS", lsan, NULL};
  return bp_test_cli_run (env, NULL, args);
}

#define RUN(...) run_argv ((const char *const[]){__VA_ARGS__, NULL})

#define assert_ok bp_test_cli_assert_ok

/* Exit status and one line on stderr, "backprop attention: ..." holding needle. */
#define assert_error(r, status, needle) \
  bp_test_cli_assert_error (r, status, "backprop attention: ", needle)

static void
train (const char *name, const char *spec_file)
{
  Result r = spec_file ? RUN ("train", "--spec", spec_file, "--dataset", corpus, "--name", name,
                              "--epochs", "1", "--steps-per-epoch", "3", "--batch-size", "8",
                              "--context", "16", "--device", "cpu", "--threads", "2", "--db", db)
                       : RUN ("train", "--model", "char-gpt-tiny", "--dataset", corpus, "--name",
                              name, "--epochs", "1", "--steps-per-epoch", "6", "--batch-size",
                              "8", "--context", "16", "--device", "cpu", "--threads", "2",
                              "--db", db);
  assert_ok (&r, name);
  result_clear (&r);
}

/* ---- the weights computed here, by another path: the KV cache on exactly the text ---- */

typedef struct {
  BpModel *model;
  BpVocab *vocab;
} Loaded;

static Loaded
load_newest (gint64 run_id)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (BpStore) store = bp_store_open (db, &error);
  g_assert_no_error (error);
  g_autoptr (GPtrArray) cps = bp_store_list_checkpoints (store, run_id, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (cps->len, >, 0);
  const BpCheckpoint *cp = g_ptr_array_index (cps, cps->len - 1);
  g_autoptr (BpSafetensors) st = bp_safetensors_load (cp->path, &error);
  g_assert_no_error (error);
  /* contract 1: the LM metadata */
  g_assert_nonnull (g_hash_table_lookup (st->metadata, "corpus"));
  g_assert_cmpstr (g_hash_table_lookup (st->metadata, "context"), ==, "16");
  Loaded l;
  l.vocab = bp_vocab_from_chars (g_hash_table_lookup (st->metadata, "vocab"), &error);
  g_assert_no_error (error);
  l.model = bp_checkpoint_load_model (cp->path, NULL, &error);
  g_assert_no_error (error);
  return l;
}

/* (n x n) weights of a layer's head (or their mean, head -1) on text, decoded through the KV
 * cache (no padding: exactly the text's positions). */
static float *
weights_by_cache (Loaded *l, const char *layer, int head, const char *text, int *n_out)
{
  int64_t n;
  int64_t *ids = bp_vocab_encode (l->vocab, text, -1, &n, NULL);
  BpTensor *x = bp_tensor_new (2, (int64_t[]){1, n});
  for (int64_t t = 0; t < n; t++)
    x->data[t] = (float) ids[t];
  g_free (ids);
  BpModelCache *cache = bp_model_cache_new (l->model, 1);
  g_assert_nonnull (cache);
  bp_model_capture_attention (l->model, layer, 1);
  BpTensor *y = bp_model_forward_cached (l->model, x, cache);
  g_assert_nonnull (y);
  BpTensor *w = bp_model_attention (l->model);
  g_assert_nonnull (w);
  g_assert_cmpint (w->ndim, ==, 4);
  g_assert_cmpint (w->shape[2], ==, n);
  g_assert_cmpint (w->shape[3], ==, n);
  int heads = (int) w->shape[1];
  float *m = g_new0 (float, n * n);
  for (int hh = 0; hh < heads; hh++)
    if (head < 0 || hh == head)
      for (int64_t k = 0; k < n * n; k++)
        m[k] += w->data[hh * n * n + k] / (head < 0 ? heads : 1);
  bp_model_capture_attention (l->model, NULL, 0);
  bp_tensor_unref (y);
  bp_tensor_unref (x);
  bp_model_cache_free (cache);
  *n_out = (int) n;
  return m;
}

static JsonObject *
parse_object (JsonParser *p, const char *text)
{
  g_autoptr (GError) error = NULL;
  if (!json_parser_load_from_data (p, text, -1, &error))
    g_error ("not JSON (%s): %s", error->message, text);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (json_parser_get_root (p)));
  return json_node_get_object (json_parser_get_root (p));
}

/* The --json weights equal the cache path's, rows sum to 1, nothing above the diagonal. */
static void
check_weights (JsonObject *o, const float *want, int n)
{
  JsonArray *rows = json_object_get_array_member (o, "weights");
  g_assert_cmpuint (json_array_get_length (rows), ==, n);
  for (int i = 0; i < n; i++) {
    JsonArray *row = json_array_get_array_element (rows, i);
    g_assert_cmpuint (json_array_get_length (row), ==, n);
    double sum = 0;
    for (int j = 0; j < n; j++) {
      double v = json_array_get_double_element (row, j);
      sum += v;
      if (j > i)
        g_assert_cmpfloat (v, ==, 0.0);
      g_assert_cmpfloat_with_epsilon (v, want[i * n + j], 2e-5);
    }
    g_assert_cmpfloat_with_epsilon (sum, 1.0, 1e-4);
  }
}

/* The PNG's cells, where --json says they are: the largest weight in the top colour (viridis
 * yellow), zero in the bottom colour (dark purple), and the green channel (rising along the
 * scale) ordered as the weights are. */
static void
check_png (JsonObject *o, int n)
{
  JsonObject *p = json_object_get_object_member (o, "png");
  JsonArray *rows = json_object_get_array_member (o, "weights");
  const char *path = json_object_get_string_member (p, "path");
  cairo_surface_t *s = cairo_image_surface_create_from_png (path);
  g_assert_cmpint (cairo_surface_status (s), ==, CAIRO_STATUS_SUCCESS);
  g_assert_cmpint (cairo_image_surface_get_width (s), ==, json_object_get_int_member (p, "width"));
  g_assert_cmpint (cairo_image_surface_get_height (s), ==,
                   json_object_get_int_member (p, "height"));
  double left = json_object_get_double_member (p, "left");
  double top = json_object_get_double_member (p, "top");
  double cell = json_object_get_double_member (p, "cell");
  double vmax = json_object_get_double_member (p, "scale_max");
  g_assert_cmpfloat (cell, ==, CLAMP (floor (640.0 / n), 12, 36));
  const guint32 *px = (const guint32 *) cairo_image_surface_get_data (s);
  int stride = cairo_image_surface_get_stride (s) / 4;
  double *v = g_new (double, n * n);
  int *green = g_new (int, n * n);
  double largest = 0;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) {
      v[i * n + j] = json_array_get_double_element (json_array_get_array_element (rows, i), j);
      largest = MAX (largest, v[i * n + j]);
      guint32 c = px[(int) (top + (i + 0.5) * cell) * stride + (int) (left + (j + 0.5) * cell)];
      green[i * n + j] = (c >> 8) & 0xff;
      if (v[i * n + j] == 0.0)
        g_assert_cmphex (c & 0xffffff, ==, 0x440154);
      if (v[i * n + j] == vmax)
        g_assert_cmphex (c & 0xffffff, ==, 0xfde725);
    }
  g_assert_cmpfloat (largest, ==, vmax);
  for (int a = 0; a < n * n; a++)
    for (int b = 0; b < n * n; b++)
      if (v[a] < v[b] - 0.03 * vmax)
        g_assert_cmpint (green[a], <=, green[b]);
  g_free (v);
  g_free (green);
  cairo_surface_destroy (s);
}

static void
test_lm (void)
{
  train ("lm", NULL);
  const char *text = "床前明月光，疑是地上霜。"; /* 12 characters of the corpus */
  g_autofree char *png = g_build_filename (dir, "lm.png", NULL);
  Loaded l = load_newest (1);

  /* the default: the first attention layer, the mean of its heads; the run by name */
  Result r = RUN ("attention", "lm", "--text", text, "--png", png, "--json", "--db", db);
  assert_ok (&r, "attention");
  {
    g_autoptr (JsonParser) p = json_parser_new ();
    JsonObject *o = parse_object (p, r.out);
    g_assert_cmpint (json_object_get_int_member (o, "run"), ==, 1);
    g_assert_cmpstr (json_object_get_string_member (o, "layer"), ==, "block1");
    g_assert_cmpint (json_object_get_int_member (o, "layer_index"), ==, 1);
    g_assert_cmpint (json_object_get_int_member (o, "heads"), ==, 2);
    g_assert_cmpstr (json_object_get_string_member (o, "head"), ==, "mean");
    g_assert_cmpint (json_object_get_int_member (o, "step"), ==, 6);
    JsonArray *tokens = json_object_get_array_member (o, "tokens");
    g_assert_cmpuint (json_array_get_length (tokens), ==, 12);
    g_assert_cmpstr (json_array_get_string_element (tokens, 4), ==, "光");
    int n;
    g_autofree float *want = weights_by_cache (&l, "block1", -1, text, &n);
    g_assert_cmpint (n, ==, 12);
    check_weights (o, want, n);
    check_png (o, n);
  }
  result_clear (&r);

  /* a layer by number and a head; then by id; the text as long as the context */
  const char *full = "白日依山盡，黃河入海流。欲窮千里"; /* 16 */
  r = RUN ("attention", "1", "--text", full, "--layer", "2", "--head", "2", "--json", "--db", db);
  assert_ok (&r, "attention --layer 2 --head 2");
  {
    g_autoptr (JsonParser) p = json_parser_new ();
    JsonObject *o = parse_object (p, r.out);
    g_assert_cmpstr (json_object_get_string_member (o, "layer"), ==, "block2");
    g_assert_cmpint (json_object_get_int_member (o, "head"), ==, 2);
    g_assert_false (json_object_has_member (o, "png"));
    int n;
    g_autofree float *want = weights_by_cache (&l, "block2", 1, full, &n);
    g_assert_cmpint (n, ==, 16);
    check_weights (o, want, n);
  }
  result_clear (&r);

  /* the plain report names the layer, the heads and the checkpoint */
  r = RUN ("attention", "1", "--text", "床", "--layer", "block2", "--head", "1", "--png", png,
           "--db", db);
  assert_ok (&r, "attention --layer block2");
  g_assert_nonnull (strstr (r.out, "layer block2 (2 of 2), head 1 of 2, 1 character, checkpoint of "
                                   "epoch 1 (step 6)"));
  result_clear (&r);
  g_autoptr (GBytes) bytes = bp_test_read_bytes (png);
  g_assert_cmpmem (g_bytes_get_data (bytes, NULL), 4, "\x89PNG", 4);

  /* a user's mistakes */
  r = RUN ("attention", "1", "--text", "床前Q嗎月Q", "--png", png, "--db", db);
  assert_error (&r, 2, "characters outside the vocabulary of run 1");
  g_assert_nonnull (strstr (r.err, "\"Q\""));
  g_assert_nonnull (strstr (r.err, "\"嗎\""));
  g_assert_null (strstr (r.err, "\"床\""));
  g_assert_null (strstr (r.err, "\"Q\", \"Q\"")); /* each character once */
  result_clear (&r);
  r = RUN ("attention", "1", "--text", "白日依山盡，黃河入海流。欲窮千里目", "--png", png, "--db", db);
  assert_error (&r, 2, "17 characters, more than the model's context of 16");
  result_clear (&r);
  r = RUN ("attention", "1", "--text", "", "--png", png, "--db", db);
  assert_error (&r, 2, "--text is empty");
  result_clear (&r);
  r = RUN ("attention", "1", "--text", "\xff\xfe", "--png", png, "--db", db);
  assert_error (&r, 2, "--text is not UTF-8");
  result_clear (&r);
  r = RUN ("attention", "1", "--text", "床", "--db", db);
  assert_error (&r, 2, "--png FILE");
  result_clear (&r);
  r = RUN ("attention", "1", "--png", png, "--db", db);
  assert_error (&r, 2, "--text TEXT");
  result_clear (&r);
  r = RUN ("attention", "1", "--text", "床", "--layer", "ln_f", "--png", png, "--db", db);
  assert_error (&r, 2, "\"ln_f\" is a LayerNorm, not an attention layer (the model's are: block1, block2)");
  result_clear (&r);
  r = RUN ("attention", "1", "--text", "床", "--layer", "3", "--png", png, "--db", db);
  assert_error (&r, 2, "2 attention layers");
  result_clear (&r);
  r = RUN ("attention", "1", "--text", "床", "--layer", "nope", "--png", png, "--db", db);
  assert_error (&r, 2, "no such attention layer");
  result_clear (&r);
  r = RUN ("attention", "1", "--text", "床", "--head", "0", "--png", png, "--db", db);
  assert_error (&r, 2, "--head 0: give mean or a head from 1 to 2");
  result_clear (&r);
  g_autofree char *bad = g_build_filename (dir, "no", "such", "x.png", NULL);
  r = RUN ("attention", "1", "--text", "床", "--png", bad, "--db", db);
  assert_error (&r, 1, "cannot write");
  g_assert_nonnull (strstr (r.err, "No such file or directory"));
  result_clear (&r);
  g_assert_false (g_file_test (bad, G_FILE_TEST_EXISTS));
  bp_model_free (l.model);
  bp_vocab_free (l.vocab);
}

static const char lstm_spec[] =
  "{\"format\": \"backprop-lab-model\", \"version\": 2, \"name\": \"char-lstm\", \"nodes\": ["
  "{\"id\": \"x\", \"type\": \"Input\", \"shape\": [16], \"vocab_size\": 2},"
  "{\"id\": \"emb\", \"type\": \"Embedding\", \"inputs\": [\"x\"], \"embedding_dim\": 16},"
  "{\"id\": \"lstm\", \"type\": \"LSTM\", \"inputs\": [\"emb\"], \"hidden_size\": 16},"
  "{\"id\": \"head\", \"type\": \"Linear\", \"inputs\": [\"lstm\"], \"bias\": false, \"tied_to\": \"emb\"},"
  "{\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"head\"]}]}";

/* A Transformer layer without the causal mask: every position sees the whole window. */
static const char bidir_spec[] =
  "{\"format\": \"backprop-lab-model\", \"version\": 2, \"name\": \"bidir\", \"nodes\": ["
  "{\"id\": \"x\", \"type\": \"Input\", \"shape\": [16], \"vocab_size\": 2},"
  "{\"id\": \"emb\", \"type\": \"Embedding\", \"inputs\": [\"x\"], \"embedding_dim\": 16},"
  "{\"id\": \"pos\", \"type\": \"PositionalEncoding\", \"inputs\": [\"emb\"], \"encoding\": \"learned\", \"max_len\": 16},"
  "{\"id\": \"enc\", \"type\": \"TransformerEncoderLayer\", \"inputs\": [\"pos\"], \"nhead\": 2, \"dim_feedforward\": 32, \"dropout\": 0},"
  "{\"id\": \"head\", \"type\": \"Linear\", \"inputs\": [\"enc\"], \"bias\": false, \"tied_to\": \"emb\"},"
  "{\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"head\"]}]}";

/* A run of image data: a checkpoint without a vocabulary, written here. */
static void
add_image_run (void)
{
  g_autoptr (GError) error = NULL;
  const char *spec =
    "{\"format\": \"backprop-lab-model\", \"version\": 2, \"name\": \"tiny-mlp\", \"nodes\": ["
    "{\"id\": \"x\", \"type\": \"Input\", \"shape\": [4]},"
    "{\"id\": \"fc\", \"type\": \"Linear\", \"inputs\": [\"x\"], \"out_features\": 3},"
    "{\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"fc\"]}]}";
  BpModel *m = bp_spec_build (spec, &error);
  g_assert_no_error (error);
  g_autoptr (BpStore) store = bp_store_open (db, &error);
  g_assert_no_error (error);
  gint64 id, none;
  g_assert_true (bp_store_create_run (store, "images", spec,
                                      "{\"model\": \"tiny-mlp\", \"dataset\": \"fashion-mnist\"}",
                                      NULL, &id, &error));
  g_autofree char *path = bp_store_checkpoint_path (store, id, 1, 10, &error);
  g_assert_no_error (error);
  g_autoptr (GHashTable) meta = g_hash_table_new (g_str_hash, g_str_equal);
  g_hash_table_insert (meta, "format", BP_CHECKPOINT_FORMAT);
  g_hash_table_insert (meta, "format_version", "1");
  g_hash_table_insert (meta, "model_spec", (gpointer) spec);
  g_hash_table_insert (meta, "trainer_state", "{}");
  BpNamedTensor *state;
  int n = bp_model_state (m, &state);
  g_assert_true (bp_safetensors_save_state (path, n, state, meta, &error));
  g_assert_no_error (error);
  free (state);
  g_assert_true (bp_store_add_checkpoint (store, id, path, 1, 10, 0.5, TRUE, NULL, &error));
  g_assert_true (bp_store_set_status (store, id, BP_RUN_FINISHED, NULL, &error));
  /* and a run that has stored nothing yet */
  g_assert_true (bp_store_create_run (store, "empty", spec, NULL, NULL, &none, &error));
  g_assert_true (bp_store_set_status (store, none, BP_RUN_STOPPED, NULL, &error));
  g_assert_no_error (error);
  bp_model_free (m);
}

static void
test_refused (void)
{
  g_autofree char *png = g_build_filename (dir, "refused.png", NULL);
  g_autofree char *lstm = g_build_filename (dir, "lstm.json", NULL);
  g_autofree char *bidir = g_build_filename (dir, "bidir.json", NULL);
  g_assert_true (g_file_set_contents (lstm, lstm_spec, -1, NULL));
  g_assert_true (g_file_set_contents (bidir, bidir_spec, -1, NULL));
  train ("lstm", lstm);
  train ("bidir", bidir);
  add_image_run ();

  Result r = RUN ("attention", "lstm", "--text", "床前", "--png", png, "--db", db);
  assert_error (&r, 1, "the model char-lstm has no attention layers");
  result_clear (&r);
  /* a layer that sees ahead: a short text would change the weights (padding); a whole window
   * is fine */
  r = RUN ("attention", "bidir", "--text", "床前", "--png", png, "--db", db);
  assert_error (&r, 2, "give --text of exactly 16 characters");
  g_assert_nonnull (strstr (r.err, "not causal"));
  result_clear (&r);
  r = RUN ("attention", "bidir", "--text", "白日依山盡，黃河入海流。欲窮千里", "--json", "--db", db);
  assert_ok (&r, "attention bidir");
  {
    g_autoptr (JsonParser) p = json_parser_new ();
    JsonObject *o = parse_object (p, r.out);
    JsonArray *rows = json_object_get_array_member (o, "weights");
    /* no mask: the first query looks at later keys too */
    double later = 0;
    for (int j = 1; j < 16; j++)
      later += json_array_get_double_element (json_array_get_array_element (rows, 0), j);
    g_assert_cmpfloat (later, >, 0.1);
  }
  result_clear (&r);
  r = RUN ("attention", "images", "--text", "床", "--png", png, "--db", db);
  assert_error (&r, 1, "is not a language model");
  g_assert_nonnull (strstr (r.err, "fashion-mnist"));
  result_clear (&r);
  r = RUN ("attention", "empty", "--text", "床", "--png", png, "--db", db);
  assert_error (&r, 1, "has no checkpoint yet");
  result_clear (&r);
  r = RUN ("attention", "nobody", "--text", "床", "--png", png, "--db", db);
  assert_error (&r, 1, "no run called \"nobody\"");
  result_clear (&r);
  r = RUN ("attention", "99", "--text", "床", "--png", png, "--db", db);
  assert_error (&r, 1, "no run 99");
  result_clear (&r);
  g_autofree char *missing = g_build_filename (dir, "missing.db", NULL);
  r = RUN ("attention", "1", "--text", "床", "--png", png, "--db", missing);
  assert_error (&r, 1, "there is no database");
  result_clear (&r);
  g_assert_false (g_file_test (missing, G_FILE_TEST_EXISTS));
  r = RUN ("attention", "--text", "床", "--png", png, "--db", db);
  assert_error (&r, 2, "which run?");
  result_clear (&r);
  g_assert_false (g_file_test (png, G_FILE_TEST_EXISTS));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (!g_getenv ("BP_CLI")) {
    g_printerr ("BP_CLI must name the backprop program\n");
    return 1;
  }
  dir = bp_test_temp_dir (g_get_tmp_dir ());
  db = g_build_filename (dir, "experiments.db", NULL);
  supp = g_build_filename (dir, "lsan.supp", NULL);
  /* fontconfig (under Pango and Cairo) keeps its configuration and caches to the end */
  g_assert_true (g_file_set_contents (supp, "leak:libfontconfig.so\n", -1, NULL));
  /* a small corpus: two poems over and over, and a line of English, as entries */
  GString *text = g_string_new (NULL);
  for (int k = 0; k < 40; k++)
    g_string_append (text, "床前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。\n\n"
                           "白日依山盡，黃河入海流。欲窮千里目，更上一層樓。\n\n"
                           "the quick brown fox jumps over the lazy dog.\n\n");
  g_autofree char *path = g_build_filename (dir, "poems.txt", NULL);
  g_assert_true (g_file_set_contents (path, text->str, -1, NULL));
  g_string_free (text, TRUE);
  corpus = g_strdup_printf ("file:%s", path);

  g_test_add_func ("/attention-cli/lm", test_lm);
  g_test_add_func ("/attention-cli/refused", test_refused);
  int rc = g_test_run ();
  bp_test_remove_tree (dir);
  g_free (dir);
  g_free (db);
  g_free (corpus);
  g_free (supp);
  return rc;
}
