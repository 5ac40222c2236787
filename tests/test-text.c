/* test-text.c: character corpora (fortunes-zh through OpenCC, fortunes), vocabularies, splits,
 * the unigram baseline, seeded batches, bad input, generation with a KV cache, synthetic
 * sequence tasks. */
#include "bp-test.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "bp-backend.h"
#include "bp-ops-eltwise.h"
#include "bp-ops-loss.h"
#include "bp-rng.h"
#include "bp-spec.h"
#include "bp-text.h"

static gboolean
have_file (const char *name)
{
  g_autofree char *path = g_build_filename (bp_text_fortunes_dir (), name, NULL);
  return g_file_test (path, G_FILE_TEST_EXISTS);
}

/* A file in a temporary folder with the given bytes; returns its path. */
static char *
temp_file (const char *dir, const char *name, const char *bytes, gssize len)
{
  char *path = g_build_filename (dir, name, NULL);
  g_assert_true (g_file_set_contents (path, bytes, len, NULL));
  return path;
}

static void
test_tang300 (void)
{
  if (!have_file ("tang300")) {
    g_test_skip ("fortunes-zh is not installed (apt install fortunes-zh): the Chinese corpora "
                 "were not checked");
    return;
  }
  if (!bp_text_have_opencc ()) {
    g_test_skip ("built without OpenCC (libopencc-dev): the Traditional conversion was not "
                 "checked");
    return;
  }
  g_autoptr (GError) error = NULL;
  g_autofree char *path = g_build_filename (bp_text_fortunes_dir (), "tang300", NULL);
  g_autofree char *text = bp_text_read_fortune_file (path, TRUE, &error);
  g_assert_no_error (error);
  /* Traditional characters (Taiwan): the first poem's author and its first line */
  g_assert_nonnull (strstr (text, "張九齡"));
  g_assert_nonnull (strstr (text, "蘭葉春葳蕤"));
  g_assert_null (strstr (text, "张九龄"));
  /* no colour escapes, no '%' separator lines */
  g_assert_null (strchr (text, '\033'));
  g_assert_null (strstr (text, "[32m"));
  g_assert_null (strstr (text, "\n%\n"));
  g_assert_true (g_utf8_validate (text, -1, NULL));
  /* the Simplified text without conversion */
  g_autofree char *simplified = bp_text_read_fortune_file (path, FALSE, &error);
  g_assert_no_error (error);
  g_assert_nonnull (strstr (simplified, "张九龄"));
  g_assert_nonnull (strstr (simplified, "兰叶春葳蕤"));

  BpTextOptions o = BP_TEXT_OPTIONS_INIT;
  BpTextCorpus *c = bp_text_corpus_load ("tang300", &o, &error);
  g_assert_no_error (error);
  g_assert_cmpint (c->n_entries, >, 300);
  g_assert_cmpint (bp_vocab_id (c->vocab, g_utf8_get_char ("蘭")), >, 0);
  g_assert_cmpint (bp_vocab_id (c->vocab, g_utf8_get_char ("兰")), ==, 0);
  /* a held-out share of about 10% of the text, from whole poems */
  double share = (double) c->n_val / (double) (c->n_train + c->n_val);
  g_assert_cmpfloat (share, >, 0.05);
  g_assert_cmpfloat (share, <, 0.2);
  /* the unigram baseline of thousands of characters: several nats */
  g_assert_cmpfloat (c->unigram_loss, >, 5.0);
  g_assert_cmpfloat (c->unigram_loss, <, log ((double) bp_vocab_size (c->vocab)));
  g_test_message ("tang300: %lld training and %lld validation characters, vocabulary %lld, "
                  "unigram loss %.3f nats", (long long) c->n_train, (long long) c->n_val,
                  (long long) bp_vocab_size (c->vocab), c->unigram_loss);
  bp_text_corpus_free (c);
}

static void
test_fortunes_zh (void)
{
  if (!have_file ("chinese") || !bp_text_have_opencc ()) {
    g_test_skip ("fortunes-zh or OpenCC missing: the full Chinese corpus was not loaded");
    return;
  }
  g_autoptr (GError) error = NULL;
  BpTextCorpus *c = bp_text_corpus_load ("fortunes-zh", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (c->n_train, >, 500000);
  g_assert_cmpint (c->n_val, >, 50000);
  g_assert_cmpint (bp_vocab_size (c->vocab), >, 3000);
  /* validation characters outside the training vocabulary are few and become <unk> */
  g_assert_cmpint (c->n_val_unknown, <, c->n_val / 100);
  g_test_message ("fortunes-zh: %lld + %lld characters, vocabulary %lld, unigram loss %.3f nats",
                  (long long) c->n_train, (long long) c->n_val,
                  (long long) bp_vocab_size (c->vocab), c->unigram_loss);
  bp_text_corpus_free (c);
}

static void
test_fortunes_english (void)
{
  if (!have_file ("fortunes")) {
    g_test_skip ("fortunes is not installed (apt install fortunes): English was not loaded");
    return;
  }
  g_autoptr (GError) error = NULL;
  BpTextCorpus *c = bp_text_corpus_load ("fortunes", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (c->n_train, >, 100000);
  /* overstrikes and escapes are gone: no control characters but newline and tab */
  for (int64_t id = 1; id < bp_vocab_size (c->vocab); id++) {
    gunichar ch = bp_vocab_char (c->vocab, id);
    g_assert_true (ch >= 0x20 || ch == '\n' || ch == '\t');
    g_assert_true (ch != 0x7f);
  }
  g_assert_cmpint (bp_vocab_id (c->vocab, 'e'), >, 0);
  g_assert_cmpfloat (c->unigram_loss, >, 2.5);
  g_assert_cmpfloat (c->unigram_loss, <, 4.0);
  bp_text_corpus_free (c);
}

static void
test_vocab (void)
{
  g_autoptr (GError) error = NULL;
  const char *text = "春眠不覺曉，處處聞啼鳥。\nabc ab";
  BpVocab *v = bp_vocab_new (text, -1);
  /* <unk>, 12 distinct Chinese characters and punctuation, newline, a, b, c, space */
  g_assert_cmpint (bp_vocab_size (v), ==, 1 + 11 + 1 + 4);
  g_assert_cmpint (bp_vocab_id (v, 'a'), >, 0);
  g_assert_cmpint (bp_vocab_id (v, 'z'), ==, 0);
  g_assert_cmpint (bp_vocab_char (v, 0), ==, 0);
  g_assert_cmpint (bp_vocab_char (v, 999), ==, 0);
  /* ids in code point order */
  for (int64_t k = 2; k < bp_vocab_size (v); k++)
    g_assert_cmpuint (bp_vocab_char (v, k - 1), <, bp_vocab_char (v, k));
  int64_t n, unk;
  g_autofree int64_t *ids = bp_vocab_encode (v, text, -1, &n, &unk);
  g_assert_cmpint (n, ==, g_utf8_strlen (text, -1));
  g_assert_cmpint (unk, ==, 0);
  g_autofree char *back = bp_vocab_decode (v, ids, n);
  g_assert_cmpstr (back, ==, text);
  /* unknown characters: <unk> (decoded as U+FFFD) and listed once */
  g_autofree int64_t *ids2 = bp_vocab_encode (v, "夜來風雨聲a", -1, &n, &unk);
  g_assert_cmpint (unk, ==, 5);
  g_assert_cmpint (ids2[0], ==, 0);
  g_autofree char *dec = bp_vocab_decode (v, ids2, n);
  g_assert_true (g_str_has_prefix (dec, "\xef\xbf\xbd"));
  g_autofree char *missing = bp_vocab_unknown_chars (v, "夜來夜a來");
  g_assert_cmpstr (missing, ==, "夜來");
  /* saved as its characters and read back to the same ids */
  g_autofree char *chars = bp_vocab_to_chars (v);
  BpVocab *w = bp_vocab_from_chars (chars, &error);
  g_assert_no_error (error);
  g_assert_cmpint (bp_vocab_size (w), ==, bp_vocab_size (v));
  for (int64_t k = 0; k < bp_vocab_size (v); k++)
    g_assert_cmpuint (bp_vocab_char (w, k), ==, bp_vocab_char (v, k));
  bp_vocab_free (w);
  g_assert_null (bp_vocab_from_chars ("aa", &error));
  g_assert_error (error, BP_TEXT_ERROR, BP_TEXT_ERROR_VOCAB);
  bp_vocab_free (v);
}

/* Escapes, overstrikes, separators, the split, the baseline and the batches on a small file. */
static void
test_corpus_and_batches (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("bp-text-XXXXXX", &error);
  g_assert_no_error (error);
  GString *s = g_string_new (NULL);
  for (int k = 0; k < 60; k++)
    g_string_append_printf (s, "\033[32m《poem %d》\033[m\r\nline _\bo%c of %d\n%%\n", k, 'a' + k % 26, k);
  g_autofree char *path = temp_file (dir, "poems", s->str, (gssize) s->len);
  g_string_free (s, TRUE);
  g_autofree char *text = bp_text_read_fortune_file (path, FALSE, &error);
  g_assert_no_error (error);
  g_assert_null (strchr (text, '\033'));
  g_assert_null (strchr (text, '\r'));
  g_assert_null (strchr (text, '\b'));
  g_assert_true (g_str_has_prefix (text, "《poem 0》\nline oa of 0\n\n《poem 1》"));

  const char *paths[] = {path, NULL};
  BpTextOptions o = BP_TEXT_OPTIONS_INIT;
  o.val_fraction = 0.2;
  o.seed = 3;
  BpTextCorpus *c = bp_text_corpus_from_files ("poems", paths, &o, &error);
  g_assert_no_error (error);
  g_assert_cmpint (c->n_entries, ==, 60);
  g_assert_cmpint (c->n_val, >, 0);
  g_assert_cmpint (c->n_train, >, 2 * c->n_val);
  /* the baseline is the entropy of the training characters, computed here again */
  g_autofree int64_t *counts = g_new0 (int64_t, bp_vocab_size (c->vocab));
  for (int64_t k = 0; k < c->n_train; k++)
    counts[c->train[k]]++;
  double h = 0;
  for (int64_t k = 0; k < bp_vocab_size (c->vocab); k++)
    if (counts[k])
      h -= (double) counts[k] / c->n_train * log ((double) counts[k] / c->n_train);
  g_assert_cmpfloat_with_epsilon (c->unigram_loss, h, 1e-9);
  g_assert_cmpint (counts[0], ==, 0); /* no <unk> in training */
  /* the same seed, the same split; another seed, another */
  BpTextCorpus *c2 = bp_text_corpus_from_files ("poems", paths, &o, &error);
  g_assert_cmpint (c2->n_val, ==, c->n_val);
  bp_text_corpus_free (c2);
  o.seed = 4;
  c2 = bp_text_corpus_from_files ("poems", paths, &o, &error);
  g_assert_true (c2->n_val != c->n_val || memcmp (c2->val, c->val, c->n_val * 8) != 0);
  bp_text_corpus_free (c2);

  /* batches: y is x shifted by one, windows of the split, repeatable by (seed, step) */
  BpTextLoader *l = bp_text_loader_new (c, FALSE, 4, 16, 9, &error);
  g_assert_no_error (error);
  BpTensor *x, *y;
  g_assert_true (bp_text_loader_next (l, &x, &y));
  g_assert_cmpint (x->ndim, ==, 2);
  g_assert_cmpint (x->shape[0], ==, 4);
  g_assert_cmpint (x->shape[1], ==, 16);
  for (int64_t i = 0; i < 4; i++)
    for (int64_t j = 0; j + 1 < 16; j++)
      g_assert_cmpfloat (y->data[i * 16 + j], ==, x->data[i * 16 + j + 1]);
  float first[64];
  memcpy (first, x->data, sizeof first);
  g_assert_true (bp_text_loader_next (l, &x, &y));
  g_assert_true (memcmp (first, x->data, sizeof first) != 0);
  bp_text_loader_set_step (l, 0);
  g_assert_true (bp_text_loader_next (l, &x, &y));
  g_assert_cmpmem (first, sizeof first, x->data, sizeof first);
  g_assert_cmpint (bp_text_loader_step (l), ==, 1);
  /* a caller keeping a batch gets a fresh one next time */
  BpTensor *kept = bp_tensor_ref (x);
  g_assert_true (bp_text_loader_next (l, &x, &y));
  g_assert_true (kept != x);
  bp_tensor_unref (kept);
  bp_text_loader_free (l);
  /* windows longer than the split */
  g_assert_null (bp_text_loader_new (c, TRUE, 2, c->n_val, 1, &error));
  g_assert_error (error, BP_TEXT_ERROR, BP_TEXT_ERROR_CONTEXT);
  g_assert_nonnull (strstr (error->message, "validation split"));
  g_clear_error (&error);
  bp_text_corpus_free (c);
  g_unlink (path);
  g_rmdir (dir);
}

static void
test_bad_input (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("bp-text-XXXXXX", &error);
  /* an empty file, one of separators only, a Latin-1 file, a file with a NUL */
  g_autofree char *empty = temp_file (dir, "empty", "", 0);
  g_autofree char *seps = temp_file (dir, "seps", "%\n%\n\n%\n", -1);
  g_autofree char *latin1 = temp_file (dir, "latin1", "caf\xe9 au lait\n", -1);
  g_autofree char *nul = temp_file (dir, "nul", "ab\0cd", 5);
  const char *cases[][2] = {{empty, "holds no text"}, {seps, "holds no text"}};
  for (gsize k = 0; k < G_N_ELEMENTS (cases); k++) {
    const char *paths[] = {cases[k][0], NULL};
    g_assert_null (bp_text_corpus_from_files ("x", paths, NULL, &error));
    g_assert_error (error, BP_TEXT_ERROR, BP_TEXT_ERROR_EMPTY);
    g_assert_nonnull (strstr (error->message, cases[k][0]));
    g_clear_error (&error);
  }
  g_assert_null (bp_text_read_fortune_file (latin1, FALSE, &error));
  g_assert_error (error, BP_TEXT_ERROR, BP_TEXT_ERROR_ENCODING);
  g_assert_nonnull (strstr (error->message, latin1));
  g_assert_nonnull (strstr (error->message, "byte offset 3"));
  g_assert_nonnull (strstr (error->message, "0xe9"));
  g_clear_error (&error);
  g_assert_null (bp_text_read_fortune_file (nul, FALSE, &error));
  g_assert_error (error, BP_TEXT_ERROR, BP_TEXT_ERROR_ENCODING);
  g_assert_nonnull (strstr (error->message, "byte offset 2"));
  g_clear_error (&error);
  g_assert_null (bp_text_corpus_from_text ("t", "", NULL, &error));
  g_assert_error (error, BP_TEXT_ERROR, BP_TEXT_ERROR_EMPTY);
  g_clear_error (&error);
  g_assert_null (bp_text_corpus_from_text ("t", "ab\xff", NULL, &error));
  g_assert_error (error, BP_TEXT_ERROR, BP_TEXT_ERROR_ENCODING);
  g_clear_error (&error);
  /* a missing corpus names the package to install */
  g_setenv ("BP_FORTUNES_DIR", dir, TRUE);
  g_assert_null (bp_text_corpus_load ("tang300", NULL, &error));
  g_assert_error (error, BP_TEXT_ERROR, BP_TEXT_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "fortunes-zh"));
  g_clear_error (&error);
  g_assert_null (bp_text_corpus_load ("fortunes", NULL, &error));
  g_assert_nonnull (strstr (error->message, "install the Debian package fortunes"));
  g_clear_error (&error);
  g_unsetenv ("BP_FORTUNES_DIR");
  g_assert_null (bp_text_corpus_load ("klingon", NULL, &error));
  g_assert_error (error, BP_TEXT_ERROR, BP_TEXT_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "fortunes-zh"));
  g_clear_error (&error);
  BpTextOptions o = BP_TEXT_OPTIONS_INIT;
  o.val_fraction = 0.9;
  g_assert_null (bp_text_corpus_from_text ("t", "abc", &o, &error));
  g_assert_error (error, BP_TEXT_ERROR, BP_TEXT_ERROR_INVALID);
  g_clear_error (&error);
  /* plain text without paragraphs: the validation split is its tail ("abcdefgh\n": 9 characters,
   * the last 2 held out, both unknown to the vocabulary) */
  o.val_fraction = 0.25;
  BpTextCorpus *c = bp_text_corpus_from_text ("t", "abcdefgh", &o, &error);
  g_assert_no_error (error);
  g_assert_cmpint (c->n_train, ==, 7);
  g_assert_cmpint (c->n_val, ==, 2);
  g_assert_cmpint (c->n_val_unknown, ==, 2);
  bp_text_corpus_free (c);
  const char *files[] = {empty, seps, latin1, nul};
  for (gsize k = 0; k < G_N_ELEMENTS (files); k++)
    g_unlink (files[k]);
  g_rmdir (dir);
}

/* ---- generation ---- */

typedef struct {
  int calls, stop_after;
  GString *text;
} GenState;

static gboolean
on_piece (const char *piece, int64_t id, gpointer user)
{
  GenState *s = user;
  s->calls++;
  g_string_append (s->text, piece);
  return s->stop_after == 0 || s->calls < s->stop_after;
}

/* char-gpt-tiny on a poem's vocabulary: cached decoding equals the full forward, generation
 * repeats with the seed, temperature 0 is the arg-max, bad prompts give clear errors. */
static void
test_generate (void)
{
  g_autoptr (GError) error = NULL;
  const char *text = "床前明月光，疑是地上霜。\n舉頭望明月，低頭思故鄉。\n";
  BpTextCorpus *c = bp_text_corpus_from_text ("poem", text, NULL, &error);
  g_assert_no_error (error);
  int64_t v = bp_vocab_size (c->vocab);
  g_autofree char *json = bp_spec_json_with_vocab_size (bp_preset_find ("char-gpt-tiny")->json, v,
                                                        &error);
  g_assert_no_error (error);
  bp_rng_seed (1);
  BpModel *m = bp_spec_build (json, &error);
  g_assert_no_error (error);
  g_assert_cmpint (bp_model_vocab_size (m), ==, v);
  g_assert_cmpint (bp_model_context_length (m), ==, 64);
  g_assert_true (bp_text_check_model (m, c->vocab, 64, &error));
  g_assert_false (bp_text_check_model (m, c->vocab, 65, &error));
  g_assert_error (error, BP_TEXT_ERROR, BP_TEXT_ERROR_CONTEXT);
  g_assert_nonnull (strstr (error->message, "longer than model char-gpt-tiny's context of 64"));
  g_clear_error (&error);
  bp_model_set_training (m, false);

  /* the cached decode's logits equal the full forward's rows */
  BpTensor *x = bp_tensor_new_2d (2, 64);
  for (int64_t i = 0; i < x->numel; i++)
    x->data[i] = (float) bp_rng_below ((uint64_t) v);
  bool was = bp_set_grad_enabled (false);
  BpTensor *full = bp_model_forward (m, x);
  bp_set_grad_enabled (was);
  g_assert_nonnull (full);
  g_assert_cmpint (full->shape[2], ==, v);
  BpModelCache *cache = bp_model_cache_new (m, 2);
  g_assert_nonnull (cache);
  for (int64_t pos = 0; pos < 64;) {
    int64_t n = pos == 0 ? 5 : 1;
    BpTensor *xs = bp_tensor_new_2d (2, n);
    for (int64_t b = 0; b < 2; b++)
      for (int64_t j = 0; j < n; j++)
        xs->data[b * n + j] = x->data[b * 64 + pos + j];
    BpTensor *ys = bp_model_forward_cached (m, xs, cache);
    g_assert_nonnull (ys);
    for (int64_t b = 0; b < 2; b++)
      bp_test_assert_close ("cached logits", ys->data + b * n * v, full->data + (b * 64 + pos) * v,
                            n * v, 1e-4);
    bp_tensor_unref (xs);
    bp_tensor_unref (ys);
    pos += n;
  }
  BpTensor *more = bp_tensor_new_2d (2, 1);
  g_assert_null (bp_model_forward_cached (m, more, cache));
  g_assert_nonnull (strstr (bp_last_error (), "longer than the model's context of 64"));
  bp_tensor_unref (more);
  bp_model_cache_free (cache);

  /* generation: characters of the vocabulary, repeatable with the seed, the callback sees
   * every piece and can stop */
  BpGenerateOptions o = BP_GENERATE_OPTIONS_INIT;
  o.max_new = 100; /* past the context: the cache restarts */
  GenState st = {0, 0, g_string_new (NULL)};
  bp_rng_seed (5);
  g_autofree char *unknown = NULL;
  g_autofree char *a = bp_generate (m, c->vocab, "床前", &o, on_piece, &st, &unknown, &error);
  g_assert_no_error (error);
  g_assert_cmpint (g_utf8_strlen (a, -1), ==, 100);
  g_assert_cmpstr (st.text->str, ==, a);
  g_assert_cmpint (st.calls, ==, 100);
  g_assert_cmpstr (unknown, ==, "");
  bp_rng_seed (5);
  g_autofree char *b = bp_generate (m, c->vocab, "床前", &o, NULL, NULL, NULL, &error);
  g_assert_cmpstr (a, ==, b);
  GenState stop = {0, 3, g_string_new (NULL)};
  g_autofree char *s3 = bp_generate (m, c->vocab, "", &o, on_piece, &stop, NULL, &error);
  g_assert_cmpint (g_utf8_strlen (s3, -1), ==, 3);
  /* temperature 0: the arg-max of the model's logits at the prompt's last position */
  o.temperature = 0.0f;
  o.max_new = 1;
  g_autofree char *greedy = bp_generate (m, c->vocab, "床前明月", &o, NULL, NULL, NULL, &error);
  int64_t n_p;
  g_autofree int64_t *pids = bp_vocab_encode (c->vocab, "床前明月", -1, &n_p, NULL);
  BpModelCache *c1 = bp_model_cache_new (m, 1);
  BpTensor *px = bp_tensor_new_2d (1, n_p);
  for (int64_t j = 0; j < n_p; j++)
    px->data[j] = (float) pids[j];
  BpTensor *py = bp_model_forward_cached (m, px, c1);
  int64_t best = 0;
  for (int64_t k = 1; k < v; k++)
    if (py->data[(n_p - 1) * v + k] > py->data[(n_p - 1) * v + best])
      best = k;
  g_assert_cmpuint (g_utf8_get_char (greedy), ==, bp_vocab_char (c->vocab, best));
  bp_tensor_unref (px);
  bp_tensor_unref (py);
  bp_model_cache_free (c1);

  /* bad prompts: unknown characters (listed, or an error when strict), too long */
  o.max_new = 2;
  g_clear_pointer (&unknown, g_free);
  g_autofree char *u = bp_generate (m, c->vocab, "夜來風雨聲", &o, NULL, NULL, &unknown, &error);
  g_assert_no_error (error);
  g_assert_nonnull (u);
  g_assert_cmpstr (unknown, ==, "夜來風雨聲");
  o.strict = TRUE;
  g_assert_null (bp_generate (m, c->vocab, "夜來", &o, NULL, NULL, NULL, &error));
  g_assert_error (error, BP_TEXT_ERROR, BP_TEXT_ERROR_VOCAB);
  g_assert_nonnull (strstr (error->message, "夜來"));
  g_clear_error (&error);
  GString *long_prompt = g_string_new (NULL);
  for (int k = 0; k < 65; k++)
    g_string_append (long_prompt, "月");
  g_assert_null (bp_generate (m, c->vocab, long_prompt->str, &o, NULL, NULL, NULL, &error));
  g_assert_error (error, BP_TEXT_ERROR, BP_TEXT_ERROR_CONTEXT);
  g_assert_nonnull (strstr (error->message, "65 characters, more than model char-gpt-tiny's context of 64"));
  g_clear_error (&error);
  g_string_free (long_prompt, TRUE);
  g_assert_null (bp_generate (m, c->vocab, "\xff", &o, NULL, NULL, NULL, &error));
  g_assert_error (error, BP_TEXT_ERROR, BP_TEXT_ERROR_ENCODING);
  g_clear_error (&error);
  /* another vocabulary */
  BpVocab *other = bp_vocab_new ("ab", -1);
  g_assert_null (bp_generate (m, other, "a", &o, NULL, NULL, NULL, &error));
  g_assert_error (error, BP_TEXT_ERROR, BP_TEXT_ERROR_VOCAB);
  g_clear_error (&error);
  bp_vocab_free (other);
  /* a model that cannot decode token by token */
  BpModel *lstm = bp_spec_build (bp_preset_find ("bilstm")->json, &error);
  g_assert_null (bp_model_cache_new (lstm, 1));
  g_assert_nonnull (strstr (bp_last_error (), "bilstm"));
  bp_model_free (lstm);

  g_string_free (st.text, TRUE);
  g_string_free (stop.text, TRUE);
  bp_tensor_unref (x);
  bp_tensor_unref (full);
  bp_model_free (m);
  bp_text_corpus_free (c);
}

/* A few training steps of char-gpt-tiny on a corpus lower the loss below the unigram
 * baseline's neighbourhood: the pieces a trainer needs fit together. */
static void
test_lm_steps (void)
{
  g_autoptr (GError) error = NULL;
  GString *s = g_string_new (NULL);
  for (int k = 0; k < 40; k++)
    g_string_append (s, "白日依山盡，黃河入海流。\n欲窮千里目，更上一層樓。\n\n");
  BpTextCorpus *c = bp_text_corpus_from_text ("poem", s->str, NULL, &error);
  g_string_free (s, TRUE);
  g_assert_no_error (error);
  g_autofree char *json = bp_spec_json_with_vocab_size (bp_preset_find ("char-gpt-tiny")->json,
                                                        bp_vocab_size (c->vocab), &error);
  bp_rng_seed (2);
  BpModel *m = bp_spec_build (json, &error);
  g_assert_no_error (error);
  BpTensor **params;
  int n_params = bp_model_parameters (m, &params);
  BpTextLoader *l = bp_text_loader_new (c, FALSE, 8, 64, 1, &error);
  g_assert_no_error (error);
  double first = 0, last = 0;
  for (int step = 0; step < 30; step++) {
    BpTensor *x, *y;
    g_assert_true (bp_text_loader_next (l, &x, &y));
    BpTensor *logits = bp_model_forward (m, x);
    g_assert_nonnull (logits);
    int64_t v = logits->shape[2];
    BpTensor *flat = bp_reshape (logits, 2, (int64_t[]){-1, v});
    BpTensor *targets = bp_reshape (y, 1, (int64_t[]){-1});
    BpTensor *loss = bp_cross_entropy (flat, targets, 0.0f);
    g_assert_cmpint (bp_backward (loss), ==, BP_OK);
    if (step == 0)
      first = loss->data[0];
    last = loss->data[0];
    for (int k = 0; k < n_params; k++) {
      for (int64_t i = 0; i < params[k]->numel; i++)
        params[k]->data[i] -= 0.05f * params[k]->grad[i];
      bp_tensor_zero_grad (params[k]);
    }
    bp_tape_clear ();
    BpTensor *tmp[] = {logits, flat, targets, loss};
    for (int k = 0; k < 4; k++)
      bp_tensor_unref (tmp[k]);
  }
  g_test_message ("char-gpt-tiny: loss %.3f -> %.3f (unigram baseline %.3f)", first, last,
                  c->unigram_loss);
  g_assert_cmpfloat (last, <, first - 0.5);
  free (params);
  bp_text_loader_free (l);
  bp_model_free (m);
  bp_text_corpus_free (c);
}

/* ---- synthetic tasks ---- */

static void
test_seq_tasks (void)
{
  g_autoptr (GError) error = NULL;
  BpSeqTask *sine = bp_seq_task_sine (50, 20, 0.0, 3, &error);
  g_assert_no_error (error);
  g_assert_cmpint (sine->x->shape[1], ==, 20);
  g_assert_cmpint (sine->x->shape[2], ==, 1);
  g_assert_cmpint (sine->y->shape[1], ==, 1);
  for (int64_t i = 0; i < sine->x->numel; i++)
    g_assert_cmpfloat (fabs (sine->x->data[i]), <=, 1.0);
  /* without noise the next value continues the wave: sin(a + 2f) = 2 cos f sin(a + f) - sin a */
  for (int64_t i = 0; i < 50; i++) {
    const float *w = sine->x->data + i * 20;
    double cf = (w[18] + sine->y->data[i]) / (2.0 * w[19]);
    double cf2 = (w[17] + w[19]) / (2.0 * w[18]);
    if (fabs (w[19]) > 0.2 && fabs (w[18]) > 0.2)
      g_assert_cmpfloat (fabs (cf - cf2), <, 1e-3);
  }
  BpSeqTask *noisy = bp_seq_task_sine (50, 20, 0.1, 3, &error);
  g_assert_cmpfloat (bp_test_max_rel_err (noisy->x->data, sine->x->data, 1000), >, 0.01);
  g_assert_cmpmem (noisy->y->data, 200, sine->y->data, 200);
  BpSeqTask *copy = bp_seq_task_copy (30, 8, 10, FALSE, 1, &error);
  BpSeqTask *rev = bp_seq_task_copy (30, 8, 10, TRUE, 1, &error);
  g_assert_no_error (error);
  for (int64_t i = 0; i < 30; i++)
    for (int64_t j = 0; j < 8; j++) {
      float v = copy->x->data[i * 8 + j];
      g_assert_cmpfloat (v, >=, 1.0f);
      g_assert_cmpfloat (v, <, 10.0f);
      g_assert_cmpfloat (v, ==, floorf (v));
      g_assert_cmpfloat (copy->y->data[i * 8 + j], ==, v);
      g_assert_cmpfloat (rev->y->data[i * 8 + j], ==, rev->x->data[i * 8 + 7 - j]);
    }
  int64_t idx[] = {4, 0, 29};
  BpTensor *bx, *by;
  g_assert_true (bp_seq_task_batch (rev, idx, 3, &bx, &by, &error));
  g_assert_cmpint (bx->shape[0], ==, 3);
  g_assert_cmpmem (bx->data, 32, rev->x->data + 32, 32);
  g_assert_cmpmem (by->data + 16, 32, rev->y->data + 29 * 8, 32);
  bp_tensor_unref (bx);
  bp_tensor_unref (by);
  int64_t bad[] = {30};
  g_assert_false (bp_seq_task_batch (rev, bad, 1, &bx, &by, &error));
  g_assert_error (error, BP_TEXT_ERROR, BP_TEXT_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_null (bp_seq_task_copy (3, 4, 1, FALSE, 1, &error));
  g_clear_error (&error);
  g_assert_null (bp_seq_task_sine (0, 4, 0.0, 1, &error));
  g_clear_error (&error);
  BpSeqTask *all[] = {sine, noisy, copy, rev};
  for (int k = 0; k < 4; k++)
    bp_seq_task_free (all[k]);
}


/* The reversal task learned by one attention layer (embedding, learned positions, single-head
 * self-attention, Linear): the attention weights form the anti-diagonal, each output position
 * i attending to input position T-1-i, the picture the heatmap shows. */
static void
test_reversal_attention (void)
{
  g_autoptr (GError) error = NULL;
  const int64_t t = 8, v = 10, batch = 64;
  BpSeqTask *task;
  double loss_value = 0;
  BpModel *m = bp_test_train_reverser (150, &task, &loss_value);
  int64_t idx[64];
  /* held-out sequences: accuracy and the weights' mass on the anti-diagonal */
  bp_model_set_training (m, false);
  for (int64_t i = 0; i < batch; i++)
    idx[i] = 4000 + i;
  BpTensor *x, *y;
  g_assert_true (bp_seq_task_batch (task, idx, batch, &x, &y, &error));
  bp_model_capture_attention (m, "attn", 2);
  BpTensor *logits = bp_model_forward (m, x);
  BpTensor *w = bp_model_attention (m);
  g_assert_nonnull (w);
  int64_t correct = 0;
  double anti = 0;
  for (int64_t b = 0; b < batch; b++)
    for (int64_t i = 0; i < t; i++) {
      const float *row = logits->data + (b * t + i) * v;
      int64_t best = 0;
      for (int64_t k = 1; k < v; k++)
        if (row[k] > row[best])
          best = k;
      correct += (float) best == y->data[b * t + i];
      anti += w->data[(b * t + i) * t + (t - 1 - i)];
    }
  double accuracy = (double) correct / (double) (batch * t), mass = anti / (double) (batch * t);
  g_test_message ("reversal: loss %.3f, held-out accuracy %.3f, attention on the anti-diagonal "
                  "%.3f", loss_value, accuracy, mass);
  g_assert_cmpfloat (accuracy, >, 0.9);
  g_assert_cmpfloat (mass, >, 0.7);
  bp_tensor_unref (x);
  bp_tensor_unref (y);
  bp_tensor_unref (logits);
  bp_model_free (m);
  bp_seq_task_free (task);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  bp_set_num_threads (2);
  g_test_add_func ("/text/tang300", test_tang300);
  g_test_add_func ("/text/fortunes-zh", test_fortunes_zh);
  g_test_add_func ("/text/fortunes-english", test_fortunes_english);
  g_test_add_func ("/text/vocab", test_vocab);
  g_test_add_func ("/text/corpus-and-batches", test_corpus_and_batches);
  g_test_add_func ("/text/bad-input", test_bad_input);
  g_test_add_func ("/text/generate", test_generate);
  g_test_add_func ("/text/lm-steps", test_lm_steps);
  g_test_add_func ("/text/seq-tasks", test_seq_tasks);
  g_test_add_func ("/text/reversal-attention", test_reversal_attention);
  return g_test_run ();
}
