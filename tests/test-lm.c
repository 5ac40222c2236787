/* test-lm.c: language models in the trainer and the CLI: training on a text file lowers the
 * validation loss far below the unigram baseline; a resumed run (at an epoch boundary and
 * mid-epoch) is bit for bit the straight one; checkpoint metadata; live attention events
 * (shapes, rows summing to 1, causal zeros, the probe's tokens) for text and for
 * transformer-classifier; the sequence presets on Fashion-MNIST rows; `backprop train` on a
 * corpus, `show`, `generate` and every bad input they refuse. Small models, one thread. */
#include "bp-test.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>
#include <sys/wait.h>

#include "bp-backend.h"
#include "bp-safetensors.h"
#include "bp-spec.h"
#include "bp-text.h"
#include "bp-trainer.h"

static char *test_root; /* removed at the end of main */

/* A tiny causal GPT: context 64, one pre-norm block of 32 with 2 heads and dropout (the
 * engine RNG must be restored by a resume), the output tied to the embedding. */
#define TINY_GPT(causal)                                                                          \
  "{\"format\": \"backprop-lab-model\", \"version\": 2, \"name\": \"tiny-gpt\", \"nodes\": [\n"  \
  " {\"id\": \"x\", \"type\": \"Input\", \"shape\": [64], \"vocab_size\": 7},\n"                 \
  " {\"id\": \"tok\", \"type\": \"Embedding\", \"inputs\": [\"x\"], \"embedding_dim\": 32, "       \
  "\"init_std\": 0.02},\n"                                                                        \
  " {\"id\": \"pos\", \"type\": \"PositionalEncoding\", \"inputs\": [\"tok\"], \"encoding\": "    \
  "\"learned\", \"max_len\": 64},\n"                                                              \
  " {\"id\": \"block\", \"type\": \"TransformerEncoderLayer\", \"inputs\": [\"pos\"], \"nhead\": " \
  "2, \"dim_feedforward\": 64, \"dropout\": 0.1, \"activation\": \"gelu\", \"norm_first\": true, " \
  "\"causal\": " causal "},\n"                                                                    \
  " {\"id\": \"ln\", \"type\": \"LayerNorm\", \"inputs\": [\"block\"]},\n"                        \
  " {\"id\": \"head\", \"type\": \"Linear\", \"inputs\": [\"ln\"], \"bias\": false, \"tied_to\": " \
  "\"tok\"},\n"                                                                                   \
  " {\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"head\"]}]}\n"

static const char tiny_gpt[] = TINY_GPT ("true");
static const char tiny_encoder[] = TINY_GPT ("false");

/* ---- helpers ---- */

/* A text of 300 entries of two lines of five-character halves ("春夏秋冬日，月山水風雲。"):
 * each line runs through a cycle of ten characters from a random start, so all but the
 * line's first character follow from the ones before. */
static char *
write_corpus (const char *dir)
{
  static const char *const cycle[] = {"春", "夏", "秋", "冬", "日", "月", "山", "水", "風", "雲"};
  GString *s = g_string_new (NULL);
  guint32 r = 12345;
  for (int e = 0; e < 300; e++) {
    for (int line = 0; line < 2; line++) {
      r = r * 1103515245u + 12345u;
      int start = (int) ((r >> 16) % 10);
      for (int k = 0; k < 10; k++) {
        g_string_append (s, cycle[(start + k) % 10]);
        if (k == 4)
          g_string_append (s, "，");
      }
      g_string_append (s, "。\n");
    }
    g_string_append (s, "\n");
  }
  char *path = g_build_filename (dir, "poems.txt", NULL);
  g_assert_true (g_file_set_contents (path, s->str, (gssize) s->len, NULL));
  g_string_free (s, TRUE);
  return path;
}

static BpTrainConfig
lm_config (const char *dataset, const char *spec)
{
  BpTrainConfig c = bp_train_config_default ();
  c.model_json = spec;
  c.dataset = g_intern_string (dataset);
  c.epochs = 2;
  c.batch_size = 16;
  c.context = 32;
  c.steps_per_epoch = 12;
  c.eval_batches = 2;
  c.optim.lr = 3e-3f;
  c.seed = 5;
  return c;
}

/* What the callbacks saw. */
typedef struct {
  int n_start, n_steps, n_epochs, n_done, n_attention;
  double baseline;
  double train_loss[8], val_loss[8], val_acc[8];
  double test_loss, test_acc;
  int64_t stop_at;   /* return FALSE after this global step (0: never) */
  gboolean checked;  /* the attention checks ran */
  int64_t attn_len;
  int attn_layers, attn_heads;
  gboolean causal;
  char *first_tokens; /* the probe's tokens joined */
} Seen;

static void
check_attention (Seen *s, const BpTrainEvent *ev)
{
  g_assert_cmpint (ev->attn_layers, >=, 1);
  g_assert_cmpint (ev->attn_heads, >=, 1);
  g_assert_cmpint (ev->attn_len, >=, 1);
  g_assert_nonnull (ev->attn_weights);
  int64_t n = ev->attn_len;
  for (int l = 0; l < ev->attn_layers; l++) {
    g_assert_nonnull (ev->attn_layer_ids[l]);
    for (int h = 0; h < ev->attn_heads; h++)
      for (int64_t i = 0; i < n; i++) {
        const float *row = ev->attn_weights + (((gsize) l * ev->attn_heads + h) * n + i) * n;
        double sum = 0.0;
        for (int64_t k = 0; k < n; k++) {
          g_assert_cmpfloat (row[k], >=, 0.0f);
          if (s->causal && k > i)
            g_assert_cmpfloat (row[k], ==, 0.0f);
          sum += row[k];
        }
        g_assert_cmpfloat (fabs (sum - 1.0), <, 1e-4);
      }
  }
  for (int64_t k = 0; k < n; k++)
    g_assert_nonnull (ev->attn_tokens[k]);
  g_assert_null (ev->attn_tokens[n]);
  if (!s->first_tokens)
    s->first_tokens = g_strjoinv ("|", (char **) ev->attn_tokens);
  s->attn_len = n;
  s->attn_layers = ev->attn_layers;
  s->attn_heads = ev->attn_heads;
  s->checked = TRUE;
}

static void
assert_baseline (double got, double want)
{
  if (!(isnan (got) && isnan (want)))
    g_assert_cmpfloat (got, ==, want);
}

static gboolean
on_event (const BpTrainEvent *ev, gpointer user_data)
{
  Seen *s = user_data;
  switch (ev->kind) {
  case BP_TRAIN_EVENT_START:
    s->n_start++;
    s->baseline = ev->baseline_loss;
    break;
  case BP_TRAIN_EVENT_STEP:
    s->n_steps++;
    assert_baseline (ev->baseline_loss, s->baseline);
    g_assert_cmpfloat (ev->accuracy, >=, 0.0);
    g_assert_cmpfloat (ev->accuracy, <=, 1.0);
    break;
  case BP_TRAIN_EVENT_EPOCH:
    g_assert_cmpint (ev->epoch, >=, 1);
    g_assert_cmpint (ev->epoch, <=, 8);
    s->n_epochs++;
    s->train_loss[ev->epoch - 1] = ev->train_loss;
    s->val_loss[ev->epoch - 1] = ev->val_loss;
    s->val_acc[ev->epoch - 1] = ev->val_accuracy;
    assert_baseline (ev->baseline_loss, s->baseline);
    if (isfinite (ev->baseline_loss)) {
      g_assert_null (ev->confusion);
      g_assert_cmpint (ev->n_classes, ==, 0);
    }
    break;
  case BP_TRAIN_EVENT_DONE:
    s->n_done++;
    s->test_loss = ev->test_loss;
    s->test_acc = ev->test_accuracy;
    break;
  case BP_TRAIN_EVENT_ATTENTION:
    s->n_attention++;
    check_attention (s, ev);
    break;
  }
  return !(s->stop_at && ev->kind == BP_TRAIN_EVENT_STEP && ev->global_step == s->stop_at);
}

static void
seen_clear (Seen *s)
{
  g_free (s->first_tokens);
  memset (s, 0, sizeof *s);
}

static char *
temp_dir (void)
{
  return bp_test_temp_dir (test_root);
}

static char *
file_dataset (const char *path)
{
  return g_strconcat ("file:", path, NULL);
}

/* ---- training ---- */

/* A tiny GPT on the cyclic poems: the validation loss ends far below the unigram baseline
 * (which is the corpus's); the events say so; the final test metrics are the validation's. */
static void
test_learns (void)
{
  g_autofree char *dir = temp_dir ();
  g_autofree char *path = write_corpus (dir);
  g_autofree char *ds = file_dataset (path);
  BpTrainConfig c = lm_config (ds, tiny_gpt);
  c.epochs = 4;
  c.steps_per_epoch = 20;
  g_autoptr (GError) error = NULL;
  BpTrainer *t = bp_trainer_new (&c, &error);
  g_assert_no_error (error);
  const BpTextCorpus *corpus = bp_trainer_get_corpus (t);
  g_assert_nonnull (corpus);
  g_assert_cmpint (bp_trainer_get_context (t), ==, 32);
  /* the model took the corpus's vocabulary and the shorter context */
  BpModel *m = bp_trainer_get_model (t);
  g_assert_cmpint (bp_model_vocab_size (m), ==, bp_vocab_size (corpus->vocab));
  g_assert_cmpint (bp_model_context_length (m), ==, 32);
  g_assert_cmpint (bp_vocab_size (corpus->vocab), ==, 14); /* <unk>, 10, "，", "。", "\n" */
  Seen s = {0};
  g_assert_true (bp_trainer_run (t, on_event, &s, &error));
  g_assert_no_error (error);
  g_assert_cmpint (s.n_start, ==, 1);
  g_assert_cmpint (s.n_steps, ==, 80);
  g_assert_cmpint (s.n_epochs, ==, 4);
  g_assert_cmpint (s.n_done, ==, 1);
  g_assert_cmpint (s.n_attention, ==, 0);
  g_assert_cmpfloat (s.baseline, ==, corpus->unigram_loss);
  g_assert_cmpfloat (s.baseline, >, 2.0);
  g_test_message ("val loss per epoch %.3f %.3f %.3f %.3f, unigram baseline %.3f", s.val_loss[0],
                  s.val_loss[1], s.val_loss[2], s.val_loss[3], s.baseline);
  g_assert_cmpfloat (s.val_loss[3], <, 0.5 * s.baseline);
  g_assert_cmpfloat (s.val_loss[3], <, s.val_loss[0]);
  g_assert_cmpfloat (s.val_acc[3], >, 0.6);
  /* no test split: the test metrics are the validation windows' */
  g_assert_cmpfloat (s.test_loss, ==, s.val_loss[3]);
  g_assert_cmpfloat (s.test_acc, ==, s.val_acc[3]);
  seen_clear (&s);
  bp_trainer_free (t);
  bp_test_remove_tree (dir);
}

static void
assert_same_params (BpTrainer *a, BpTrainer *b)
{
  BpNamedTensor *sa, *sb;
  int na = bp_model_state (bp_trainer_get_model (a), &sa);
  int nb = bp_model_state (bp_trainer_get_model (b), &sb);
  g_assert_cmpint (na, ==, nb);
  for (int k = 0; k < na; k++) {
    g_assert_cmpstr (sa[k].name, ==, sb[k].name);
    g_assert_cmpmem (sa[k].tensor->data, sa[k].tensor->numel * 4, sb[k].tensor->data,
                     sb[k].tensor->numel * 4);
  }
  free (sa);
  free (sb);
}

/* 3 epochs straight = 1 epoch, checkpoint, a new trainer, 2 more = a stop in the middle of
 * epoch 2, checkpoint, a new trainer, the rest: the same losses and parameters, bit for bit
 * (windows by global step, dropout from the restored RNG). */
static void
test_resume (void)
{
  g_autofree char *dir = temp_dir ();
  g_autofree char *path = write_corpus (dir);
  g_autofree char *ds = file_dataset (path);
  g_autofree char *ckpt = g_build_filename (dir, "a.safetensors", NULL);
  BpTrainConfig c = lm_config (ds, tiny_gpt);
  c.epochs = 3;
  c.steps_per_epoch = 6;
  g_autoptr (GError) error = NULL;

  BpTrainer *straight = bp_trainer_new (&c, &error);
  g_assert_no_error (error);
  Seen s0 = {0};
  g_assert_true (bp_trainer_run (straight, on_event, &s0, &error));

  for (int variant = 0; variant < 2; variant++) {
    /* variant 0: stop after epoch 1; variant 1: mid-epoch 2 (after global step 9) */
    BpTrainer *first = bp_trainer_new (&c, &error);
    g_assert_no_error (error);
    Seen s1 = {0};
    s1.stop_at = variant == 0 ? 6 : 9;
    if (variant == 0) {
      BpTrainConfig c1 = c;
      c1.epochs = 1;
      bp_trainer_free (first);
      first = bp_trainer_new (&c1, &error);
      s1.stop_at = 0;
    }
    g_assert_true (bp_trainer_run (first, on_event, &s1, &error));
    g_assert_cmpint (bp_trainer_get_global_step (first), ==, variant == 0 ? 6 : 9);
    g_assert_true (bp_trainer_save_checkpoint (first, ckpt, NULL, &error));
    g_assert_no_error (error);

    BpTrainer *second = bp_trainer_new (&c, &error);
    g_assert_true (bp_trainer_load_checkpoint (second, ckpt, &error));
    g_assert_no_error (error);
    g_assert_cmpint (bp_trainer_get_global_step (second), ==, variant == 0 ? 6 : 9);
    Seen s2 = {0};
    g_assert_true (bp_trainer_run (second, on_event, &s2, &error));
    g_assert_no_error (error);
    g_assert_cmpfloat (s1.train_loss[0], ==, s0.train_loss[0]);
    g_assert_cmpfloat (s1.val_loss[0], ==, s0.val_loss[0]);
    for (int e = 1; e < 3; e++) {
      g_assert_cmpfloat (s2.train_loss[e], ==, s0.train_loss[e]);
      g_assert_cmpfloat (s2.val_loss[e], ==, s0.val_loss[e]);
    }
    g_assert_cmpfloat (s2.test_loss, ==, s0.test_loss);
    assert_same_params (straight, second);
    seen_clear (&s1);
    seen_clear (&s2);
    bp_trainer_free (first);
    bp_trainer_free (second);
  }

  /* the metadata of a language model's checkpoint */
  g_autoptr (BpSafetensors) st = bp_safetensors_load (ckpt, &error);
  g_assert_no_error (error);
  const BpTextCorpus *corpus = bp_trainer_get_corpus (straight);
  g_autofree char *chars = bp_vocab_to_chars (corpus->vocab);
  g_assert_cmpstr (g_hash_table_lookup (st->metadata, "vocab"), ==, chars);
  g_assert_cmpstr (g_hash_table_lookup (st->metadata, "corpus"), ==, ds);
  g_assert_cmpstr (g_hash_table_lookup (st->metadata, "context"), ==, "32");
  g_autofree char *loss = g_strdup_printf ("%.6f", corpus->unigram_loss);
  g_assert_cmpstr (g_hash_table_lookup (st->metadata, "unigram_loss"), ==, loss);
  BpVocab *vocab = NULL;
  g_autofree char *name = NULL;
  BpModel *m = bp_checkpoint_load_language_model (ckpt, &vocab, &name, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (name, ==, ds);
  g_assert_cmpint (bp_vocab_size (vocab), ==, bp_vocab_size (corpus->vocab));
  g_assert_cmpint (bp_model_context_length (m), ==, 32);
  bp_model_free (m);
  bp_vocab_free (vocab);

  /* a changed text (another vocabulary) is refused by name */
  g_assert_true (g_file_set_contents (path, "一二三四五六七八九十，。\n\n十九八七六五四三二一。\n", -1,
                                      NULL));
  BpTrainConfig c2 = c;
  c2.context = 8;
  g_autoptr (GError) e2 = NULL;
  BpTrainer *other = bp_trainer_new (&c2, &e2);
  if (other) {
    g_assert_false (bp_trainer_load_checkpoint (other, ckpt, &e2));
    g_assert_nonnull (e2);
    bp_trainer_free (other);
  }
  seen_clear (&s0);
  bp_trainer_free (straight);
  bp_test_remove_tree (dir);
}

/* Live attention on text: every 4 steps and after each epoch (not twice when the epoch's last
 * step had one); the probe is the first 48 validation characters of a context of 64, causal
 * rows; a non-causal model's cropped rows still sum to 1. */
static void
test_attention_text (void)
{
  g_autofree char *dir = temp_dir ();
  g_autofree char *path = write_corpus (dir);
  g_autofree char *ds = file_dataset (path);
  for (int causal = 1; causal >= 0; causal--) {
    BpTrainConfig c = lm_config (ds, causal ? tiny_gpt : tiny_encoder);
    c.context = 0; /* the model's: 64 */
    c.epochs = 2;
    c.steps_per_epoch = 6;
    c.attention_every = 4;
    g_autoptr (GError) error = NULL;
    BpTrainer *t = bp_trainer_new (&c, &error);
    g_assert_no_error (error);
    g_assert_cmpint (bp_trainer_get_context (t), ==, 64);
    Seen s = {0};
    s.causal = causal;
    g_assert_true (bp_trainer_run (t, on_event, &s, &error));
    g_assert_no_error (error);
    /* steps 4, 6 (end of epoch 1), 8, 12 (the end of epoch 2 is step 12) */
    g_assert_cmpint (s.n_attention, ==, 4);
    g_assert_true (s.checked);
    g_assert_cmpint (s.attn_len, ==, 48);
    g_assert_cmpint (s.attn_layers, ==, 1);
    g_assert_cmpint (s.attn_heads, ==, 2);
    /* the probe's tokens are the validation text's first characters */
    const BpTextCorpus *corpus = bp_trainer_get_corpus (t);
    g_autofree char *val = bp_vocab_decode (corpus->vocab, corpus->val, 48);
    GString *joined = g_string_new (NULL);
    for (const char *p = val; *p; p = g_utf8_next_char (p)) {
      if (joined->len)
        g_string_append_c (joined, '|');
      g_string_append_len (joined, p, g_utf8_next_char (p) - p);
    }
    g_assert_cmpstr (s.first_tokens, ==, joined->str);
    g_string_free (joined, TRUE);
    seen_clear (&s);
    bp_trainer_free (t);
  }
  bp_test_remove_tree (dir);
}

static gboolean
have_fashion_mnist (void)
{
  if (g_file_test ("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
                   G_FILE_TEST_EXISTS))
    return TRUE;
  g_test_skip ("Fashion-MNIST (dataset-fashion-mnist) is not installed");
  return FALSE;
}

/* The sequence presets read Fashion-MNIST images as 28 rows; transformer-classifier's
 * attention over the rows of the first validation image. */
static void
test_image_rows (void)
{
  if (!have_fashion_mnist ())
    return;
  const char *models[] = {"bilstm", "gru", "transformer-classifier"};
  for (gsize k = 0; k < G_N_ELEMENTS (models); k++) {
    BpTrainConfig c = bp_train_config_default ();
    c.model = models[k];
    c.epochs = 1;
    c.batch_size = 32;
    c.limit_train = 72;
    c.limit_test = 40;
    c.attention_every = 1;
    g_autoptr (GError) error = NULL;
    BpTrainer *t = bp_trainer_new (&c, &error);
    g_assert_no_error (error);
    Seen s = {0};
    g_assert_true (bp_trainer_run (t, on_event, &s, &error));
    g_assert_no_error (error);
    g_assert_cmpint (s.n_epochs, ==, 1);
    g_assert_true (isnan (s.baseline));
    g_assert_true (isfinite (s.test_acc));
    if (k < 2) {
      g_assert_cmpint (s.n_attention, ==, 0); /* no attention nodes */
    } else {
      g_assert_cmpint (s.n_attention, ==, 3); /* steps 1, 2, 3 (the last ends the epoch) */
      g_assert_cmpint (s.attn_layers, ==, 2);
      g_assert_cmpint (s.attn_heads, ==, 4);
      g_assert_cmpint (s.attn_len, ==, 28);
      g_assert_true (g_str_has_prefix (s.first_tokens, "row 1|row 2|"));
      g_assert_true (g_str_has_suffix (s.first_tokens, "|row 28"));
    }
    seen_clear (&s);
    bp_trainer_free (t);
  }
}

/* Configs the trainer refuses, each with a message naming the problem. */
static void
test_bad_configs (void)
{
  g_autofree char *dir = temp_dir ();
  g_autofree char *path = write_corpus (dir);
  g_autofree char *ds = file_dataset (path);
  struct {
    const char *dataset, *model, *spec;
    int64_t context;
    const char *needle;
  } cases[] = {
    {ds, NULL, tiny_gpt, 65, "longer than model tiny-gpt's context of 64"},
    {ds, "bilstm", NULL, 0, "does not read characters"},
    {"fashion-mnist", "char-gpt-tiny", NULL, 0, "it reads characters"},
    {"fashion-mnist", "mlp", NULL, 8, "are for text corpora"},
    {"file:", NULL, tiny_gpt, 0, "needs the path"},
    {"no-such-corpus", "mlp", NULL, 0, "text corpora: tang300"},
    {"tang300+fortunes", NULL, tiny_gpt, 0, "cannot join \"fortunes\""},
  };
  for (gsize k = 0; k < G_N_ELEMENTS (cases); k++) {
    BpTrainConfig c = lm_config (cases[k].dataset, cases[k].spec);
    c.model = cases[k].model ? cases[k].model : "char-gpt-tiny";
    c.context = cases[k].context;
    if (!bp_train_dataset_is_text (c.dataset))
      c.steps_per_epoch = c.eval_batches = 0;
    g_autoptr (GError) error = NULL;
    BpTrainer *t = bp_trainer_new (&c, &error);
    if (t || !error || !strstr (error->message, cases[k].needle))
      g_error ("case %zu: expected \"%s\", got %s", k, cases[k].needle,
               error ? error->message : "a trainer");
    g_test_message ("%s", error->message);
  }
  bp_test_remove_tree (dir);
}

/* "tang300+song100": one corpus of both files' poems, in Traditional characters. */
static void
test_joined (void)
{
  g_autofree char *tang = g_build_filename (bp_text_fortunes_dir (), "tang300", NULL);
  if (!g_file_test (tang, G_FILE_TEST_EXISTS) || !bp_text_have_opencc ()) {
    g_test_skip ("fortunes-zh or OpenCC missing");
    return;
  }
  g_autoptr (GError) error = NULL;
  BpTrainConfig c = lm_config ("tang300+song100", tiny_gpt);
  BpTrainer *joined = bp_trainer_new (&c, &error);
  g_assert_no_error (error);
  c.dataset = "tang300";
  BpTrainer *one = bp_trainer_new (&c, &error);
  g_assert_no_error (error);
  const BpTextCorpus *a = bp_trainer_get_corpus (joined), *b = bp_trainer_get_corpus (one);
  g_assert_cmpint (a->n_entries, >, b->n_entries);
  g_assert_cmpint (a->n_train + a->n_val, >, b->n_train + b->n_val);
  /* Traditional: 月 and 光 are there, the Simplified 张 (of 张九龄) is not */
  g_assert_cmpint (bp_vocab_id (a->vocab, g_utf8_get_char ("光")), >, 0);
  g_assert_cmpint (bp_vocab_id (a->vocab, g_utf8_get_char ("张")), ==, 0);
  g_assert_cmpint (bp_vocab_id (a->vocab, g_utf8_get_char ("張")), >, 0);
  bp_trainer_free (joined);
  bp_trainer_free (one);
}

/* ---- the command line ---- */

typedef BpTestCli Result;

#define result_clear bp_test_cli_clear

#define RUN(...) bp_test_cli_run (NULL, NULL, (const char *const[]){__VA_ARGS__, NULL})

#define assert_ok bp_test_cli_assert_ok

/* One line on stderr, starting with "backprop", holding needle. */
#define assert_error(r, status, needle) bp_test_cli_assert_error (r, status, "backprop", needle)

/* The JSON objects of --json output with "event": kind, in order. */
static GPtrArray *
json_events (const char *out, const char *kind)
{
  GPtrArray *a = g_ptr_array_new_with_free_func ((GDestroyNotify) json_node_unref);
  g_auto (GStrv) lines = g_strsplit (out, "\n", -1);
  for (int k = 0; lines[k]; k++) {
    if (!*lines[k])
      continue;
    g_autoptr (GError) error = NULL;
    JsonNode *n = json_from_string (lines[k], &error);
    if (!n)
      g_error ("not JSON (%s): %s", error->message, lines[k]);
    if (g_strcmp0 (json_object_get_string_member (json_node_get_object (n), "event"), kind) == 0)
      g_ptr_array_add (a, n);
    else
      json_node_unref (n);
  }
  return a;
}

static char *
write_spec (const char *dir)
{
  char *path = g_build_filename (dir, "tiny-gpt.json", NULL);
  g_assert_true (g_file_set_contents (path, tiny_gpt, -1, NULL));
  return path;
}

/* train on a text file (stored, --json with baseline_loss and attention), show, resume bit for
 * bit, generate (streamed, seeded) and its refusals. */
static void
test_cli (void)
{
  g_autofree char *dir = temp_dir ();
  g_autofree char *path = write_corpus (dir);
  g_autofree char *ds = file_dataset (path);
  g_autofree char *spec = write_spec (dir);
  g_autofree char *db = g_build_filename (dir, "runs.db", NULL);
#define LM_ARGS "train", "--spec", spec, "--dataset", ds, "--context", "32", "--batch-size", "16", \
    "--steps-per-epoch", "15", "--eval-batches", "2", "--lr", "0.003", "--seed", "3",              \
    "--device", "cpu", "--threads", "1", "--db", db, "--json"
  Result r = RUN (LM_ARGS, "--epochs", "2", "--attention-every", "5");
  assert_ok (&r, "train on a text file");
  GPtrArray *epochs = json_events (r.out, "epoch");
  GPtrArray *attn = json_events (r.out, "attention");
  GPtrArray *done = json_events (r.out, "done");
  g_assert_cmpuint (epochs->len, ==, 2);
  g_assert_cmpuint (done->len, ==, 1);
  /* steps 5, 10, 15 (end of epoch 1), 20, 25, 30 (end of epoch 2) */
  g_assert_cmpuint (attn->len, ==, 6);
  JsonObject *e0 = json_node_get_object (epochs->pdata[0]);
  double baseline = json_object_get_double_member (e0, "baseline_loss");
  g_assert_cmpfloat (baseline, >, 2.0);
  g_assert_true (json_object_has_member (e0, "tokens_per_second"));
  JsonObject *d = json_node_get_object (done->pdata[0]);
  g_assert_cmpfloat (json_object_get_double_member (d, "baseline_loss"), ==, baseline);
  gint64 run_id = json_object_get_int_member (d, "run_id");
  JsonObject *a0 = json_node_get_object (attn->pdata[0]);
  g_assert_cmpint (json_object_get_int_member (a0, "global_step"), ==, 5);
  g_assert_cmpint (json_object_get_int_member (a0, "len"), ==, 32);
  g_assert_cmpint (json_object_get_int_member (a0, "heads"), ==, 2);
  JsonArray *w = json_object_get_array_member (a0, "weights");
  g_assert_cmpuint (json_array_get_length (w), ==, 1);
  JsonArray *head0 = json_array_get_array_element (json_array_get_array_element (w, 0), 0);
  g_assert_cmpuint (json_array_get_length (head0), ==, 32);
  JsonArray *row3 = json_array_get_array_element (head0, 3);
  double sum = 0.0;
  for (guint k = 0; k < 32; k++)
    sum += json_array_get_double_element (row3, k);
  g_assert_cmpfloat (fabs (sum - 1.0), <, 1e-3);
  g_assert_cmpfloat (json_array_get_double_element (row3, 4), ==, 0.0);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (a0, "tokens")), ==, 32);
  g_autofree char *straight_loss = g_strdup_printf (
    "%.17g", json_object_get_double_member (json_node_get_object (epochs->pdata[1]), "train_loss"));
  g_ptr_array_unref (epochs);
  g_ptr_array_unref (attn);
  g_ptr_array_unref (done);
  result_clear (&r);

  /* show: the language model's line and the baseline in --json */
  g_autofree char *id = g_strdup_printf ("%" G_GINT64_FORMAT, run_id);
  r = RUN ("show", id, "--db", db);
  assert_ok (&r, "show");
  g_assert_nonnull (strstr (r.out, "unigram baseline loss"));
  g_assert_nonnull (strstr (r.out, "TOK/S"));
  result_clear (&r);
  r = RUN ("show", id, "--db", db, "--json");
  assert_ok (&r, "show --json");
  {
    g_autoptr (JsonNode) n = json_from_string (r.out, NULL);
    g_assert_nonnull (n);
    JsonObject *o = json_node_get_object (n);
    g_assert_cmpfloat (fabs (json_object_get_double_member (o, "baseline_loss") - baseline), <,
                       1e-5);
  }
  result_clear (&r);

  /* 1 epoch, then resumed to 2: the second epoch's loss is the straight run's */
  r = RUN (LM_ARGS, "--epochs", "1", "--name", "half");
  assert_ok (&r, "train 1 epoch");
  result_clear (&r);
  r = RUN ("train", "--resume", "half", "--epochs", "2", "--db", db, "--json", "--threads", "1");
  assert_ok (&r, "resume");
  epochs = json_events (r.out, "epoch");
  g_assert_cmpuint (epochs->len, ==, 1);
  g_autofree char *resumed_loss = g_strdup_printf (
    "%.17g", json_object_get_double_member (json_node_get_object (epochs->pdata[0]), "train_loss"));
  g_assert_cmpstr (resumed_loss, ==, straight_loss);
  g_ptr_array_unref (epochs);
  result_clear (&r);

  /* generate: the prompt, then the text; the same seed the same text; a cyclic poem continues
   * its cycle */
  r = RUN ("generate", id, "--db", db, "--prompt", "春夏秋", "--max-new", "12", "--seed", "7",
           "--threads", "1");
  assert_ok (&r, "generate");
  g_assert_true (g_str_has_prefix (r.out, "春夏秋"));
  g_assert_cmpint (g_utf8_strlen (r.out, -1), ==, 3 + 12 + 1);
  g_test_message ("generated: %s", r.out);
  Result r2 = RUN ("generate", id, "--db", db, "--prompt", "春夏秋", "--max-new", "12", "--seed",
                   "7", "--threads", "1");
  assert_ok (&r2, "generate again");
  g_assert_cmpstr (r.out, ==, r2.out);
  result_clear (&r2);
  result_clear (&r);
  r = RUN ("generate", id, "--db", db, "--prompt", "春夏秋", "--max-new", "1", "--temperature",
           "0");
  assert_ok (&r, "greedy");
  g_assert_cmpstr (r.out, ==, "春夏秋冬\n");
  result_clear (&r);

  /* refusals */
  r = RUN ("generate", id, "--db", db, "--prompt", "春x夏");
  assert_error (&r, 1, "\"x\" (U+0078)");
  g_assert_nonnull (strstr (r.err, "--allow-unknown"));
  g_assert_cmpstr (r.out, ==, "");
  result_clear (&r);
  r = RUN ("generate", id, "--db", db, "--prompt", "春x夏", "--allow-unknown", "--max-new", "3");
  assert_ok (&r, "--allow-unknown");
  g_assert_true (g_str_has_prefix (r.out, "春x夏"));
  g_assert_nonnull (strstr (r.err, "as <unk>"));
  result_clear (&r);
  GString *lp = g_string_new (NULL);
  for (int k = 0; k < 40; k++)
    g_string_append (lp, "春");
  r = RUN ("generate", id, "--db", db, "--prompt", lp->str);
  assert_error (&r, 1, "40 characters, more than the model's context of 32");
  g_string_free (lp, TRUE);
  result_clear (&r);
  r = RUN ("generate", id, "--db", db, "--top-p", "0");
  assert_error (&r, 2, "--top-p");
  result_clear (&r);
  r = RUN ("generate", "999", "--db", db);
  assert_error (&r, 1, "no run 999");
  result_clear (&r);

  /* a model whose attention looks ahead cannot generate */
  g_autofree char *enc_spec = g_build_filename (dir, "tiny-encoder.json", NULL);
  g_assert_true (g_file_set_contents (enc_spec, tiny_encoder, -1, NULL));
  r = RUN ("train", "--spec", enc_spec, "--dataset", ds, "--context", "16", "--batch-size", "4",
           "--steps-per-epoch", "1", "--eval-batches", "1", "--epochs", "1", "--device", "cpu",
           "--threads", "1", "--db", db, "--name", "encoder");
  assert_ok (&r, "train a non-causal model");
  result_clear (&r);
  r = RUN ("generate", "encoder", "--db", db, "--prompt", "春");
  assert_error (&r, 1, "cannot generate");
  g_assert_cmpstr (r.out, ==, "");
  result_clear (&r);

  /* a run that is not a language model */
  if (g_file_test ("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
                   G_FILE_TEST_EXISTS)) {
    r = RUN ("train", "--model", "mlp", "--epochs", "1", "--limit-train", "100", "--limit-test",
             "50", "--device", "cpu", "--threads", "1", "--db", db, "--name", "images");
    assert_ok (&r, "an image run");
    result_clear (&r);
    r = RUN ("generate", "images", "--db", db, "--prompt", "春");
    assert_error (&r, 1, "is not a language model");
    result_clear (&r);
  }

  /* bad corpora and options */
  g_autofree char *empty = g_build_filename (dir, "empty.txt", NULL);
  g_assert_true (g_file_set_contents (empty, "\n\n  \n", -1, NULL));
  g_autofree char *empty_ds = file_dataset (empty);
  r = RUN ("train", "--spec", spec, "--dataset", empty_ds, "--no-store", "--device", "cpu");
  assert_error (&r, 1, "holds no text");
  g_assert_nonnull (strstr (r.err, "empty.txt"));
  result_clear (&r);
  g_autofree char *latin1 = g_build_filename (dir, "latin1.txt", NULL);
  g_assert_true (g_file_set_contents (latin1, "caf\xe9 au lait\n", -1, NULL));
  g_autofree char *latin1_ds = file_dataset (latin1);
  r = RUN ("train", "--spec", spec, "--dataset", latin1_ds, "--no-store", "--device", "cpu");
  assert_error (&r, 1, "is not UTF-8 text: byte 0xe9 at byte offset 3");
  g_assert_nonnull (strstr (r.err, "latin1.txt"));
  result_clear (&r);
  g_autofree char *missing_ds = g_strconcat ("file:", dir, "/missing.txt", NULL);
  r = RUN ("train", "--spec", spec, "--dataset", missing_ds, "--no-store", "--device", "cpu");
  assert_error (&r, 1, "missing.txt");
  result_clear (&r);
  r = RUN ("train", "--spec", spec, "--dataset", ds, "--context", "100", "--no-store", "--device",
           "cpu");
  assert_error (&r, 1, "--context 100 is longer than model tiny-gpt's context of 64");
  result_clear (&r);
  r = RUN ("train", "--model", "bilstm", "--dataset", ds, "--no-store", "--device", "cpu");
  assert_error (&r, 1, "model bilstm does not read characters");
  result_clear (&r);
  r = RUN ("train", "--model", "mlp", "--context", "8", "--no-store");
  assert_error (&r, 2, "are for text corpora");
  result_clear (&r);
  r = RUN ("train", "--dataset", ds, "--limit-train", "8", "--no-store");
  assert_error (&r, 2, "--limit-train and --limit-test are for image data sets");
  result_clear (&r);
  r = RUN ("train", "--dataset", "file:", "--no-store");
  assert_error (&r, 2, "needs the path");
  result_clear (&r);
  r = RUN ("train", "--resume", "half", "--context", "16", "--db", db);
  assert_error (&r, 2, "--context cannot be given with --resume");
  result_clear (&r);
  bp_test_remove_tree (dir);
#undef LM_ARGS
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  bp_set_num_threads (1);
  test_root = g_dir_make_tmp ("bp-lm-XXXXXX", NULL);
  g_assert_nonnull (test_root);
  /* never the user's own store */
  g_setenv ("XDG_DATA_HOME", test_root, TRUE);
  g_test_add_func ("/lm/learns", test_learns);
  g_test_add_func ("/lm/resume", test_resume);
  g_test_add_func ("/lm/attention-text", test_attention_text);
  g_test_add_func ("/lm/image-rows", test_image_rows);
  g_test_add_func ("/lm/bad-configs", test_bad_configs);
  g_test_add_func ("/lm/joined", test_joined);
  g_test_add_func ("/lm/cli", test_cli);
  int rc = g_test_run ();
  bp_test_remove_tree (test_root);
  g_free (test_root);
  return rc;
}
