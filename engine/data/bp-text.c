/* bp-text.c: character-level corpora (fortunes-zh through OpenCC, fortunes), vocabularies,
 * seeded language-model batches, generation with a KV cache, synthetic sequence tasks. */
#include "config.h"

#include "bp-text.h"

#include <gio/gio.h>
#include <math.h>
#include <string.h>

#include "bp-backend.h"
#include "bp-ops-attn.h"
#include "bp-rng.h"

/* Defined to 1 by config.h where meson finds OpenCC (dependency ('opencc')). */
#ifndef BP_HAVE_OPENCC
#define BP_HAVE_OPENCC 0
#endif
#if BP_HAVE_OPENCC
#include <opencc/opencc.h>
#endif

G_DEFINE_QUARK (bp-text-error-quark, bp_text_error)

#define TEXT_ERROR(error, code, ...) g_set_error (error, BP_TEXT_ERROR, code, __VA_ARGS__)

/* ---- vocabulary ---- */

struct BpVocab {
  int64_t n;        /* ids, <unk> included */
  gunichar *chars;  /* chars[0] = 0 (<unk>), then increasing code points */
};

BpVocab *
bp_vocab_new (const char *utf8, gssize len)
{
  const char *end = len < 0 ? utf8 + strlen (utf8) : utf8 + len;
  /* one bit per code point */
  guint32 *seen = g_new0 (guint32, (0x110000 + 31) / 32);
  int64_t n = 1;
  for (const char *p = utf8; p < end; p = g_utf8_next_char (p)) {
    gunichar c = g_utf8_get_char (p);
    if (c >= 0x110000 || c == 0)
      continue;
    if (!(seen[c / 32] & (1u << (c % 32)))) {
      seen[c / 32] |= 1u << (c % 32);
      n++;
    }
  }
  BpVocab *v = g_new0 (BpVocab, 1);
  v->n = n;
  v->chars = g_new (gunichar, n);
  v->chars[0] = 0;
  int64_t k = 1;
  for (gunichar c = 1; c < 0x110000; c++)
    if (seen[c / 32] & (1u << (c % 32)))
      v->chars[k++] = c;
  g_free (seen);
  return v;
}

void
bp_vocab_free (BpVocab *vocab)
{
  if (!vocab)
    return;
  g_free (vocab->chars);
  g_free (vocab);
}

int64_t
bp_vocab_size (const BpVocab *vocab)
{
  return vocab->n;
}

int64_t
bp_vocab_id (const BpVocab *vocab, gunichar c)
{
  int64_t lo = 1, hi = vocab->n;
  while (lo < hi) {
    int64_t mid = (lo + hi) / 2;
    if (vocab->chars[mid] < c)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < vocab->n && vocab->chars[lo] == c ? lo : 0;
}

gunichar
bp_vocab_char (const BpVocab *vocab, int64_t id)
{
  return id > 0 && id < vocab->n ? vocab->chars[id] : 0;
}

int64_t *
bp_vocab_encode (const BpVocab *vocab, const char *utf8, gssize len, int64_t *n,
                 int64_t *n_unknown)
{
  const char *end = len < 0 ? utf8 + strlen (utf8) : utf8 + len;
  int64_t count = (int64_t) g_utf8_strlen (utf8, end - utf8), unknown = 0, k = 0;
  int64_t *ids = g_new (int64_t, count > 0 ? count : 1);
  for (const char *p = utf8; p < end && k < count; p = g_utf8_next_char (p)) {
    ids[k] = bp_vocab_id (vocab, g_utf8_get_char (p));
    unknown += ids[k] == 0;
    k++;
  }
  *n = k;
  if (n_unknown)
    *n_unknown = unknown;
  return ids;
}

char *
bp_vocab_decode (const BpVocab *vocab, const int64_t *ids, int64_t n)
{
  GString *s = g_string_sized_new ((gsize) n * 3 + 1);
  for (int64_t k = 0; k < n; k++) {
    gunichar c = bp_vocab_char (vocab, ids[k]);
    g_string_append_unichar (s, c ? c : 0xFFFD);
  }
  return g_string_free (s, FALSE);
}

char *
bp_vocab_unknown_chars (const BpVocab *vocab, const char *utf8)
{
  GString *s = g_string_new (NULL);
  GHashTable *seen = g_hash_table_new (NULL, NULL);
  for (const char *p = utf8; *p; p = g_utf8_next_char (p)) {
    gunichar c = g_utf8_get_char (p);
    if (bp_vocab_id (vocab, c) == 0 && !g_hash_table_contains (seen, GUINT_TO_POINTER (c))) {
      g_hash_table_add (seen, GUINT_TO_POINTER (c));
      g_string_append_unichar (s, c);
    }
  }
  g_hash_table_unref (seen);
  return g_string_free (s, FALSE);
}

char *
bp_vocab_to_chars (const BpVocab *vocab)
{
  GString *s = g_string_new (NULL);
  for (int64_t k = 1; k < vocab->n; k++)
    g_string_append_unichar (s, vocab->chars[k]);
  return g_string_free (s, FALSE);
}

BpVocab *
bp_vocab_from_chars (const char *chars, GError **error)
{
  const char *bad = NULL;
  if (!g_utf8_validate (chars, -1, &bad)) {
    TEXT_ERROR (error, BP_TEXT_ERROR_ENCODING, "a vocabulary's characters are not UTF-8 (byte "
                "offset %ld)", (long) (bad - chars));
    return NULL;
  }
  BpVocab *v = bp_vocab_new (chars, -1);
  if (v->n - 1 != g_utf8_strlen (chars, -1)) {
    TEXT_ERROR (error, BP_TEXT_ERROR_VOCAB, "a vocabulary's characters repeat or hold NUL");
    bp_vocab_free (v);
    return NULL;
  }
  return v;
}

/* ---- reading text ---- */

const char *
bp_text_fortunes_dir (void)
{
  const char *d = g_getenv ("BP_FORTUNES_DIR");
  return d && *d ? d : "/usr/share/games/fortunes";
}

void
bp_text_strip_ansi (char *text)
{
  char *w = text;
  for (const char *r = text; *r;) {
    if (*r == '\033') {
      r++;
      if (*r == '[') {
        /* CSI: parameters and intermediates up to a final byte in @ .. ~ */
        r++;
        while (*r && !(*r >= '@' && *r <= '~'))
          r++;
        if (*r)
          r++;
      } else if (*r) {
        r++;
      }
      continue;
    }
    *w++ = *r++;
  }
  *w = '\0';
}

/* Drops '\r', backspace overstrikes ("_\bA" is an underlined A: keeps A) and other control
 * characters but tabs and newlines, in place. */
static void
drop_controls (char *text)
{
  char *w = text;
  for (const char *r = text; *r; r++) {
    unsigned char c = (unsigned char) *r;
    if (c == '\b') {
      if (w > text)
        w = g_utf8_find_prev_char (text, w) ? (char *) g_utf8_find_prev_char (text, w) : text;
      continue;
    }
    if (c < 0x20 && c != '\n' && c != '\t')
      continue;
    if (c == 0x7f)
      continue;
    *w++ = *r;
  }
  *w = '\0';
}

gboolean
bp_text_have_opencc (void)
{
  return BP_HAVE_OPENCC ? TRUE : FALSE;
}

char *
bp_text_to_traditional (const char *utf8, GError **error)
{
#if BP_HAVE_OPENCC
  static GMutex lock;
  static opencc_t cc = NULL;
  g_mutex_lock (&lock);
  if (!cc) {
    cc = opencc_open ("s2tw.json");
    if (cc == (opencc_t) -1) {
      cc = NULL;
      TEXT_ERROR (error, BP_TEXT_ERROR_UNSUPPORTED, "OpenCC cannot open s2tw.json: %s (install "
                  "the Debian package libopencc-data)", opencc_error ());
      g_mutex_unlock (&lock);
      return NULL;
    }
  }
  char *out = opencc_convert_utf8 (cc, utf8, strlen (utf8));
  g_mutex_unlock (&lock);
  if (!out) {
    TEXT_ERROR (error, BP_TEXT_ERROR_UNSUPPORTED, "OpenCC could not convert the text: %s",
                opencc_error ());
    return NULL;
  }
  char *copy = g_strdup (out);
  opencc_convert_utf8_free (out);
  return copy;
#else
  (void) utf8;
  TEXT_ERROR (error, BP_TEXT_ERROR_UNSUPPORTED, "this build has no OpenCC: Chinese text cannot be "
              "converted to Traditional characters (build with libopencc-dev)");
  return NULL;
#endif
}

/* Reads a file's text, checked for UTF-8 and cleaned (escapes, controls). */
static char *
read_clean (const char *path, gboolean traditional, GError **error)
{
  g_autofree char *raw = NULL;
  gsize len = 0;
  g_autoptr (GError) local = NULL;
  if (!g_file_get_contents (path, &raw, &len, &local)) {
    TEXT_ERROR (error, g_error_matches (local, G_FILE_ERROR, G_FILE_ERROR_NOENT)
                         ? BP_TEXT_ERROR_NOT_FOUND
                         : BP_TEXT_ERROR_INVALID,
                "%s", local->message);
    return NULL;
  }
  const char *bad = NULL;
  if (!g_utf8_validate (raw, (gssize) len, &bad)) {
    gsize off = (gsize) (bad - raw);
    if (off < len && raw[off] == '\0')
      TEXT_ERROR (error, BP_TEXT_ERROR_ENCODING, "%s is not text: a NUL byte at byte offset %zu",
                  path, off);
    else
      TEXT_ERROR (error, BP_TEXT_ERROR_ENCODING, "%s is not UTF-8 text: byte 0x%02x at byte "
                  "offset %zu does not start a UTF-8 character (convert it, e.g. with iconv)",
                  path, (unsigned) (unsigned char) raw[off], off);
    return NULL;
  }
  bp_text_strip_ansi (raw);
  drop_controls (raw);
  if (!traditional)
    return g_steal_pointer (&raw);
  return bp_text_to_traditional (raw, error);
}

/* Splits cleaned text into entries: at lines holding only '%' (fortune files) or, when there
 * is none, at blank lines. Entries keep their lines' newlines; empty entries are dropped. */
static void
split_entries (const char *text, GPtrArray *entries)
{
  gboolean fortune = g_str_has_prefix (text, "%\n") || strstr (text, "\n%\n") != NULL;
  const char *sep = fortune ? "%" : "";
  GString *cur = g_string_new (NULL);
  const char *p = text;
  while (*p) {
    const char *nl = strchr (p, '\n');
    gsize n = nl ? (gsize) (nl - p) : strlen (p);
    g_autofree char *line = g_strndup (p, n);
    g_strchomp (line);
    gboolean is_sep = fortune ? strcmp (line, sep) == 0 : line[0] == '\0';
    if (is_sep) {
      if (cur->len > 0)
        g_ptr_array_add (entries, g_strdup (cur->str));
      g_string_truncate (cur, 0);
    } else if (line[0] || cur->len > 0) {
      g_string_append (cur, line);
      g_string_append_c (cur, '\n');
    }
    p = nl ? nl + 1 : p + n;
  }
  /* trailing blank lines of an entry go */
  while (cur->len >= 2 && cur->str[cur->len - 1] == '\n' && cur->str[cur->len - 2] == '\n')
    g_string_truncate (cur, cur->len - 1);
  if (cur->len > 0)
    g_ptr_array_add (entries, g_strdup (cur->str));
  g_string_free (cur, TRUE);
  for (guint k = 0; k < entries->len; k++) {
    GString *e = g_string_new (entries->pdata[k]);
    while (e->len >= 2 && e->str[e->len - 1] == '\n' && e->str[e->len - 2] == '\n')
      g_string_truncate (e, e->len - 1);
    g_free (entries->pdata[k]);
    entries->pdata[k] = g_string_free (e, FALSE);
  }
}

char *
bp_text_read_fortune_file (const char *path, gboolean traditional, GError **error)
{
  g_autofree char *text = read_clean (path, traditional, error);
  if (!text)
    return NULL;
  GPtrArray *entries = g_ptr_array_new_with_free_func (g_free);
  split_entries (text, entries);
  if (entries->len == 0) {
    g_ptr_array_unref (entries);
    TEXT_ERROR (error, BP_TEXT_ERROR_EMPTY, "%s holds no text", path);
    return NULL;
  }
  GString *s = g_string_new (NULL);
  for (guint k = 0; k < entries->len; k++) {
    if (k)
      g_string_append_c (s, '\n');
    g_string_append (s, entries->pdata[k]);
  }
  g_ptr_array_unref (entries);
  return g_string_free (s, FALSE);
}

/* ---- corpora ---- */

static const char *const corpus_names[] = {"tang300", "song100", "chinese", "fortunes-zh",
                                           "fortunes", NULL};

const char *const *
bp_text_corpus_names (void)
{
  return corpus_names;
}

static const BpTextOptions default_options = BP_TEXT_OPTIONS_INIT;

/* The corpus from entries: the split, the vocabulary of the training part, the ids. */
static BpTextCorpus *
corpus_from_entries (const char *name, GPtrArray *entries, const BpTextOptions *o,
                     GError **error)
{
  if (!(o->val_fraction >= 0.0 && o->val_fraction <= 0.5)) {
    TEXT_ERROR (error, BP_TEXT_ERROR_INVALID, "the validation share %g is not in [0, 0.5]",
                o->val_fraction);
    return NULL;
  }
  if (entries->len == 0) {
    TEXT_ERROR (error, BP_TEXT_ERROR_EMPTY, "the corpus \"%s\" holds no text", name);
    return NULL;
  }
  GString *train = g_string_new (NULL), *val = g_string_new (NULL);
  uint64_t key = bp_rng_hash (o->seed, 0x7e47);
  if (entries->len == 1) {
    /* one entry (plain text without paragraphs): the validation part is its tail */
    const char *t = entries->pdata[0];
    glong n = g_utf8_strlen (t, -1), cut = n - (glong) ((double) n * o->val_fraction);
    const char *at = g_utf8_offset_to_pointer (t, cut);
    g_string_append_len (train, t, at - t);
    g_string_append (val, at);
  } else {
    for (guint k = 0; k < entries->len; k++) {
      gboolean to_val = bp_rng_hash_uniform (key, k) < o->val_fraction;
      /* keep at least one entry on each side */
      if (k == 0)
        to_val = FALSE;
      else if (k == 1 && o->val_fraction > 0.0)
        to_val = TRUE;
      GString *dst = to_val ? val : train;
      if (dst->len)
        g_string_append_c (dst, '\n');
      g_string_append (dst, entries->pdata[k]);
    }
  }
  BpTextCorpus *c = g_new0 (BpTextCorpus, 1);
  c->name = g_strdup (name);
  c->n_entries = entries->len;
  c->vocab = bp_vocab_new (train->str, (gssize) train->len);
  c->train = bp_vocab_encode (c->vocab, train->str, (gssize) train->len, &c->n_train, NULL);
  c->val = bp_vocab_encode (c->vocab, val->str, (gssize) val->len, &c->n_val, &c->n_val_unknown);
  g_string_free (train, TRUE);
  g_string_free (val, TRUE);
  if (c->n_train == 0) {
    TEXT_ERROR (error, BP_TEXT_ERROR_EMPTY, "the corpus \"%s\" holds no training text", name);
    bp_text_corpus_free (c);
    return NULL;
  }
  int64_t *counts = g_new0 (int64_t, c->vocab->n);
  for (int64_t k = 0; k < c->n_train; k++)
    counts[c->train[k]]++;
  double h = 0.0;
  for (int64_t k = 0; k < c->vocab->n; k++)
    if (counts[k]) {
      double p = (double) counts[k] / (double) c->n_train;
      h -= p * log (p);
    }
  c->unigram_loss = h;
  g_free (counts);
  return c;
}

BpTextCorpus *
bp_text_corpus_from_text (const char *name, const char *text, const BpTextOptions *options,
                          GError **error)
{
  const BpTextOptions *o = options ? options : &default_options;
  const char *bad = NULL;
  if (!g_utf8_validate (text, -1, &bad)) {
    TEXT_ERROR (error, BP_TEXT_ERROR_ENCODING, "the text of \"%s\" is not UTF-8 (byte offset "
                "%ld)", name, (long) (bad - text));
    return NULL;
  }
  g_autofree char *clean = g_strdup (text);
  bp_text_strip_ansi (clean);
  drop_controls (clean);
  if (o->traditional == 1) {
    char *t = bp_text_to_traditional (clean, error);
    if (!t)
      return NULL;
    g_free (clean);
    clean = t;
  }
  GPtrArray *entries = g_ptr_array_new_with_free_func (g_free);
  split_entries (clean, entries);
  BpTextCorpus *c = corpus_from_entries (name, entries, o, error);
  g_ptr_array_unref (entries);
  return c;
}

BpTextCorpus *
bp_text_corpus_from_files (const char *name, const char *const *paths,
                           const BpTextOptions *options, GError **error)
{
  const BpTextOptions *o = options ? options : &default_options;
  GPtrArray *entries = g_ptr_array_new_with_free_func (g_free);
  for (int k = 0; paths && paths[k]; k++) {
    g_autofree char *text = read_clean (paths[k], o->traditional == 1, error);
    if (!text) {
      g_ptr_array_unref (entries);
      return NULL;
    }
    guint before = entries->len;
    split_entries (text, entries);
    if (entries->len == before) {
      TEXT_ERROR (error, BP_TEXT_ERROR_EMPTY, "%s holds no text", paths[k]);
      g_ptr_array_unref (entries);
      return NULL;
    }
  }
  BpTextCorpus *c = corpus_from_entries (name, entries, o, error);
  g_ptr_array_unref (entries);
  return c;
}

static gboolean
is_chinese_file (const char *name)
{
  return strcmp (name, "tang300") == 0 || strcmp (name, "song100") == 0 ||
         strcmp (name, "chinese") == 0;
}

static int
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

BpTextCorpus *
bp_text_corpus_load (const char *name, const BpTextOptions *options, GError **error)
{
  BpTextOptions o = options ? *options : default_options;
  const char *dir = bp_text_fortunes_dir ();
  GPtrArray *paths = g_ptr_array_new_with_free_func (g_free);
  gboolean chinese = FALSE;
  if (is_chinese_file (name)) {
    g_ptr_array_add (paths, g_build_filename (dir, name, NULL));
    chinese = TRUE;
  } else if (g_strcmp0 (name, "fortunes-zh") == 0) {
    for (const char *const *f = (const char *const[]){"tang300", "song100", "chinese", NULL}; *f;
         f++)
      g_ptr_array_add (paths, g_build_filename (dir, *f, NULL));
    chinese = TRUE;
  } else if (g_strcmp0 (name, "fortunes") == 0) {
    g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
    for (const char *f; d && (f = g_dir_read_name (d));) {
      if (g_str_has_suffix (f, ".dat") || g_str_has_suffix (f, ".u8") || is_chinese_file (f) ||
          strchr (f, '.'))
        continue;
      /* a fortune file has its index beside it */
      g_autofree char *path = g_build_filename (dir, f, NULL);
      g_autofree char *index = g_strconcat (path, ".dat", NULL);
      if (g_file_test (path, G_FILE_TEST_IS_REGULAR) && g_file_test (index, G_FILE_TEST_EXISTS))
        g_ptr_array_add (paths, g_steal_pointer (&path));
    }
    g_ptr_array_sort (paths, compare_strings);
    if (paths->len == 0) {
      TEXT_ERROR (error, BP_TEXT_ERROR_NOT_FOUND, "no English fortune files in %s: install the "
                  "Debian package fortunes", dir);
      g_ptr_array_unref (paths);
      return NULL;
    }
  } else {
    g_autofree char *known = g_strjoinv (", ", (char **) corpus_names);
    TEXT_ERROR (error, BP_TEXT_ERROR_INVALID, "unknown corpus \"%s\" (the corpora are %s)",
                name ? name : "(null)", known);
    g_ptr_array_unref (paths);
    return NULL;
  }
  for (guint k = 0; k < paths->len; k++)
    if (!g_file_test (paths->pdata[k], G_FILE_TEST_EXISTS)) {
      TEXT_ERROR (error, BP_TEXT_ERROR_NOT_FOUND, "%s not found: install the Debian package %s",
                  (char *) paths->pdata[k], chinese ? "fortunes-zh" : "fortunes");
      g_ptr_array_unref (paths);
      return NULL;
    }
  if (o.traditional < 0)
    o.traditional = chinese ? 1 : 0;
  g_ptr_array_add (paths, NULL);
  BpTextCorpus *c = bp_text_corpus_from_files (name, (const char *const *) paths->pdata, &o,
                                               error);
  g_ptr_array_unref (paths);
  return c;
}

void
bp_text_corpus_free (BpTextCorpus *corpus)
{
  if (!corpus)
    return;
  g_free (corpus->name);
  bp_vocab_free (corpus->vocab);
  g_free (corpus->train);
  g_free (corpus->val);
  g_free (corpus);
}

gboolean
bp_text_check_model (const BpModel *model, const BpVocab *vocab, int64_t context,
                     GError **error)
{
  int64_t mv = bp_model_vocab_size (model), mc = bp_model_context_length (model);
  if (mv != vocab->n) {
    TEXT_ERROR (error, BP_TEXT_ERROR_VOCAB, "model %s reads %lld token ids but the corpus has "
                "%lld characters (with <unk>): set its vocab_size from the corpus",
                model->name, (long long) mv, (long long) vocab->n);
    return FALSE;
  }
  if (context > mc) {
    TEXT_ERROR (error, BP_TEXT_ERROR_CONTEXT, "a context of %lld characters is longer than model "
                "%s's context of %lld", (long long) context, model->name, (long long) mc);
    return FALSE;
  }
  if (context != mc) {
    TEXT_ERROR (error, BP_TEXT_ERROR_CONTEXT, "a context of %lld characters differs from model "
                "%s's input length %lld", (long long) context, model->name, (long long) mc);
    return FALSE;
  }
  return TRUE;
}

/* ---- batches ---- */

struct BpTextLoader {
  const int64_t *ids;
  int64_t n, batch, context, step;
  uint64_t key;
  BpTensor *x, *y;
};

BpTextLoader *
bp_text_loader_new (const BpTextCorpus *corpus, gboolean validation, int64_t batch,
                    int64_t context, uint64_t seed, GError **error)
{
  int64_t n = validation ? corpus->n_val : corpus->n_train;
  if (batch < 1 || context < 1) {
    TEXT_ERROR (error, BP_TEXT_ERROR_INVALID, "batches of %lld windows of %lld characters",
                (long long) batch, (long long) context);
    return NULL;
  }
  if (n < context + 1) {
    TEXT_ERROR (error, BP_TEXT_ERROR_CONTEXT, "the %s split of \"%s\" has %lld characters, fewer "
                "than a window of the context %lld plus one", validation ? "validation" : "training",
                corpus->name, (long long) n, (long long) context);
    return NULL;
  }
  BpTextLoader *l = g_new0 (BpTextLoader, 1);
  l->ids = validation ? corpus->val : corpus->train;
  l->n = n;
  l->batch = batch;
  l->context = context;
  l->key = bp_rng_hash (seed, validation ? 0x5a1 : 0x7a1);
  return l;
}

void
bp_text_loader_free (BpTextLoader *loader)
{
  if (!loader)
    return;
  bp_tensor_unref (loader->x);
  bp_tensor_unref (loader->y);
  g_free (loader);
}

gboolean
bp_text_loader_next (BpTextLoader *l, BpTensor **x, BpTensor **y)
{
  int64_t b = l->batch, t = l->context;
  BpTensor **slots[2] = {&l->x, &l->y};
  for (int k = 0; k < 2; k++)
    if (!*slots[k] || (*slots[k])->refcount > 1) {
      bp_tensor_unref (*slots[k]);
      *slots[k] = bp_tensor_new_2d (b, t);
      if (!*slots[k])
        return FALSE;
    }
  uint64_t key = bp_rng_hash (l->key, (uint64_t) l->step);
  for (int64_t i = 0; i < b; i++) {
    int64_t start = (int64_t) (bp_rng_hash (key, (uint64_t) i) % (uint64_t) (l->n - t));
    for (int64_t j = 0; j < t; j++) {
      l->x->data[i * t + j] = (float) l->ids[start + j];
      l->y->data[i * t + j] = (float) l->ids[start + j + 1];
    }
  }
  l->step++;
  *x = l->x;
  *y = l->y;
  return TRUE;
}

int64_t
bp_text_loader_step (const BpTextLoader *loader)
{
  return loader->step;
}

void
bp_text_loader_set_step (BpTextLoader *loader, int64_t step)
{
  loader->step = step;
}

/* ---- generation ---- */

char *
bp_generate (BpModel *model, const BpVocab *vocab, const char *prompt,
             const BpGenerateOptions *options, BpGenerateCallback callback, gpointer user_data,
             char **unknown, GError **error)
{
  static const BpGenerateOptions defaults = BP_GENERATE_OPTIONS_INIT;
  const BpGenerateOptions *o = options ? options : &defaults;
  if (unknown)
    *unknown = NULL;
  prompt = prompt ? prompt : "";
  const char *bad = NULL;
  if (!g_utf8_validate (prompt, -1, &bad)) {
    TEXT_ERROR (error, BP_TEXT_ERROR_ENCODING, "the prompt is not UTF-8 (byte offset %ld)",
                (long) (bad - prompt));
    return NULL;
  }
  int64_t v = bp_vocab_size (vocab), ctx = bp_model_context_length (model);
  if (bp_model_vocab_size (model) != v) {
    TEXT_ERROR (error, BP_TEXT_ERROR_VOCAB, "model %s reads %lld token ids but the vocabulary has "
                "%lld", model->name, (long long) bp_model_vocab_size (model), (long long) v);
    return NULL;
  }
  g_autofree char *missing = bp_vocab_unknown_chars (vocab, prompt);
  if (missing[0] && o->strict) {
    TEXT_ERROR (error, BP_TEXT_ERROR_VOCAB, "the prompt has characters the model never saw in "
                "training: %s", missing);
    return NULL;
  }
  int64_t n_prompt = 0;
  g_autofree int64_t *ids = bp_vocab_encode (vocab, prompt, -1, &n_prompt, NULL);
  if (n_prompt > ctx) {
    TEXT_ERROR (error, BP_TEXT_ERROR_CONTEXT, "the prompt has %lld characters, more than model "
                "%s's context of %lld", (long long) n_prompt, model->name, (long long) ctx);
    return NULL;
  }
  if (n_prompt == 0) {
    /* no prompt: start after a newline (or <unk>) */
    ids[0] = bp_vocab_id (vocab, '\n');
    n_prompt = 1;
  }
  BpModelCache *cache = bp_model_cache_new (model, 1);
  if (!cache) {
    TEXT_ERROR (error, BP_TEXT_ERROR_UNSUPPORTED, "%s", bp_last_error ());
    return NULL;
  }
  bool was_training = model->training;
  bp_model_set_training (model, false);
  /* the history of ids (the prompt and what is generated) for restarts of the cache */
  int64_t cap = n_prompt + (o->max_new > 0 ? o->max_new : 0) + 1, len = n_prompt;
  int64_t *hist = g_new (int64_t, cap);
  memcpy (hist, ids, sizeof (int64_t) * (size_t) n_prompt);
  GString *out = g_string_new (NULL);
  float *logits = g_new (float, v);
  int64_t feed_from = 0; /* the history not yet in the cache starts here */
  gboolean ok = TRUE;
  for (int64_t step = 0; step < o->max_new; step++) {
    if (bp_model_cache_position (cache) + (len - feed_from) > ctx) {
      /* the context is full: restart from the last half */
      bp_model_cache_reset (cache);
      feed_from = len - MAX (ctx / 2, 1);
    }
    int64_t n = len - feed_from;
    BpTensor *x = bp_tensor_new_2d (1, n);
    BpTensor *y = NULL;
    if (x) {
      for (int64_t k = 0; k < n; k++)
        x->data[k] = (float) hist[feed_from + k];
      BpDevice dev = bp_model_data_device (model);
      BpTensor *xd = dev == BP_DEVICE_CPU ? bp_tensor_ref (x) : bp_tensor_to (x, dev);
      y = xd ? bp_model_forward_cached (model, xd, cache) : NULL;
      bp_tensor_unref (xd);
    }
    bp_tensor_unref (x);
    if (!y || y->numel % v) {
      TEXT_ERROR (error, BP_TEXT_ERROR_INVALID, "generation failed: %s",
                  y ? "the model's output is not per-token logits" : bp_last_error ());
      bp_tensor_unref (y);
      ok = FALSE;
      break;
    }
    bp_backend (y->device)->download (logits, y->data + y->numel - v, sizeof (float) * (size_t) v);
    bp_tensor_unref (y);
    feed_from = len;
    int64_t id = bp_sample_logits (logits, v, o->temperature, o->top_k, o->top_p);
    hist[len++] = id;
    gunichar c = bp_vocab_char (vocab, id);
    char piece[8] = {0};
    g_unichar_to_utf8 (c ? c : 0xFFFD, piece);
    g_string_append (out, piece);
    if (callback && !callback (piece, id, user_data))
      break;
  }
  g_free (logits);
  g_free (hist);
  bp_model_cache_free (cache);
  bp_model_set_training (model, was_training);
  if (!ok) {
    g_string_free (out, TRUE);
    return NULL;
  }
  if (unknown)
    *unknown = g_steal_pointer (&missing);
  return g_string_free (out, FALSE);
}

/* ---- synthetic sequence tasks ---- */

static BpSeqTask *
task_new (const char *name, int xd, const int64_t *xs, int yd, const int64_t *ys, GError **error)
{
  BpSeqTask *t = g_new0 (BpSeqTask, 1);
  t->name = g_strdup (name);
  t->x = bp_tensor_new (xd, xs);
  t->y = bp_tensor_new (yd, ys);
  if (!t->x || !t->y) {
    TEXT_ERROR (error, BP_TEXT_ERROR_INVALID, "%s: %s", name, bp_last_error ());
    bp_seq_task_free (t);
    return NULL;
  }
  return t;
}

BpSeqTask *
bp_seq_task_sine (int64_t n, int64_t t, double noise, uint64_t seed, GError **error)
{
  if (n < 1 || t < 1 || !(noise >= 0.0)) {
    TEXT_ERROR (error, BP_TEXT_ERROR_INVALID, "sine task: %lld windows of %lld steps, noise %g",
                (long long) n, (long long) t, noise);
    return NULL;
  }
  BpSeqTask *task = task_new ("sine", 3, (int64_t[]){n, t, 1}, 2, (int64_t[]){n, 1}, error);
  if (!task)
    return NULL;
  uint64_t key = bp_rng_hash (seed, 0x51e);
  for (int64_t i = 0; i < n; i++) {
    uint64_t k = bp_rng_hash (key, (uint64_t) i);
    double freq = 0.1 + 0.3 * bp_rng_hash_uniform (k, 0);
    double phase = 2.0 * G_PI * bp_rng_hash_uniform (k, 1);
    for (int64_t j = 0; j < t; j++) {
      /* Box-Muller noise from two stateless draws */
      double u1 = bp_rng_hash_uniform (k, 2 + 2 * (uint64_t) j) + 1e-7;
      double u2 = bp_rng_hash_uniform (k, 3 + 2 * (uint64_t) j);
      double z = sqrt (-2.0 * log (u1)) * cos (2.0 * G_PI * u2);
      task->x->data[i * t + j] = (float) (sin (freq * (double) j + phase) + noise * z);
    }
    task->y->data[i] = (float) sin (freq * (double) t + phase);
  }
  return task;
}

BpSeqTask *
bp_seq_task_copy (int64_t n, int64_t t, int64_t vocab, gboolean reverse, uint64_t seed,
                  GError **error)
{
  if (n < 1 || t < 1 || vocab < 2) {
    TEXT_ERROR (error, BP_TEXT_ERROR_INVALID, "%s task: %lld sequences of %lld tokens below %lld",
                reverse ? "reversal" : "copy", (long long) n, (long long) t, (long long) vocab);
    return NULL;
  }
  BpSeqTask *task = task_new (reverse ? "reverse" : "copy", 2, (int64_t[]){n, t}, 2,
                              (int64_t[]){n, t}, error);
  if (!task)
    return NULL;
  uint64_t key = bp_rng_hash (seed, reverse ? 0x4e7 : 0xc09);
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < t; j++) {
      uint64_t r = bp_rng_hash (key, (uint64_t) (i * t + j));
      task->x->data[i * t + j] = (float) (1 + (int64_t) (r % (uint64_t) (vocab - 1)));
    }
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < t; j++)
      task->y->data[i * t + j] = task->x->data[i * t + (reverse ? t - 1 - j : j)];
  return task;
}

void
bp_seq_task_free (BpSeqTask *task)
{
  if (!task)
    return;
  g_free (task->name);
  bp_tensor_unref (task->x);
  bp_tensor_unref (task->y);
  g_free (task);
}

gboolean
bp_seq_task_batch (const BpSeqTask *task, const int64_t *idx, int64_t n, BpTensor **x,
                   BpTensor **y, GError **error)
{
  *x = *y = NULL;
  int64_t count = task->x->shape[0];
  for (int64_t k = 0; k < n; k++)
    if (idx[k] < 0 || idx[k] >= count) {
      TEXT_ERROR (error, BP_TEXT_ERROR_INVALID, "%s: example %lld is not in [0, %lld)",
                  task->name, (long long) idx[k], (long long) count);
      return FALSE;
    }
  BpTensor *src[2] = {task->x, task->y};
  BpTensor **dst[2] = {x, y};
  for (int s = 0; s < 2; s++) {
    int64_t shape[BP_MAX_DIMS];
    memcpy (shape, src[s]->shape, sizeof shape);
    shape[0] = n;
    *dst[s] = bp_tensor_new (src[s]->ndim, shape);
    if (!*dst[s]) {
      bp_tensor_unref (*x);
      bp_tensor_unref (*y);
      *x = *y = NULL;
      TEXT_ERROR (error, BP_TEXT_ERROR_INVALID, "%s: %s", task->name, bp_last_error ());
      return FALSE;
    }
    int64_t row = src[s]->numel / count;
    for (int64_t k = 0; k < n; k++)
      memcpy ((*dst[s])->data + k * row, src[s]->data + idx[k] * row, sizeof (float) * (size_t) row);
  }
  return TRUE;
}
