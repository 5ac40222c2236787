/* bp-text.h: character-level text for language models: corpora from Debian's fortune packages
 * (Tang poems, Song ci and a Chinese collection from fortunes-zh, converted to Traditional
 * characters with OpenCC; English from fortunes), a vocabulary with <unk>, train/validation
 * splits, seeded (B, T) batches, generation from a model; synthetic sequence tasks (sine
 * forecasting, copy, reversal).
 *
 *   BpTextCorpus *c = bp_text_corpus_load ("fortunes-zh", NULL, &error);
 *   BpTextLoader *l = bp_text_loader_new (c, FALSE, 64, 256, seed, &error);
 *   bp_text_loader_next (l, &x, &y);   x, y (64, 256): ids and next-character targets
 *   ... train a model whose Input is [256] with vocab_size bp_vocab_size (c->vocab) ...
 *   char *s = bp_generate (model, c->vocab, "床前明月光", &gen_options, cb, NULL, &error);
 */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "bp-nn.h"
#include "bp-tensor.h"

G_BEGIN_DECLS

#define BP_TEXT_ERROR (bp_text_error_quark ())
GQuark bp_text_error_quark (void);

typedef enum {
  BP_TEXT_ERROR_NOT_FOUND,   /* a corpus file is missing (the message names the package) */
  BP_TEXT_ERROR_EMPTY,       /* a file or corpus without text */
  BP_TEXT_ERROR_ENCODING,    /* not UTF-8: the message names the file and the byte offset */
  BP_TEXT_ERROR_VOCAB,       /* a vocabulary that does not fit (a model's, unknown tokens) */
  BP_TEXT_ERROR_CONTEXT,     /* a context longer than the model's or the text */
  BP_TEXT_ERROR_INVALID,     /* a bad argument */
  BP_TEXT_ERROR_UNSUPPORTED, /* built without OpenCC, a model that cannot generate */
} BpTextError;

/* ---- vocabulary ---- */

/* Characters (Unicode code points) <-> ids. Id 0 is <unk>, for characters not in the
 * training text; the others are the characters seen, in code point order. */
typedef struct BpVocab BpVocab;

BpVocab *bp_vocab_new (const char *utf8, gssize len);
void bp_vocab_free (BpVocab *vocab);
int64_t bp_vocab_size (const BpVocab *vocab);
/* The id of a character, 0 (<unk>) when it is not in the vocabulary. */
int64_t bp_vocab_id (const BpVocab *vocab, gunichar c);
/* The character of an id; 0 for <unk> and ids outside the vocabulary. */
gunichar bp_vocab_char (const BpVocab *vocab, int64_t id);
/* Ids of valid UTF-8 text (n returned; *n_unknown, which may be NULL, counts <unk>s). */
int64_t *bp_vocab_encode (const BpVocab *vocab, const char *utf8, gssize len, int64_t *n,
                          int64_t *n_unknown);
/* UTF-8 text of ids; <unk> and ids outside the vocabulary become U+FFFD. */
char *bp_vocab_decode (const BpVocab *vocab, const int64_t *ids, int64_t n);
/* The distinct characters of text that the vocabulary lacks ("" when none). */
char *bp_vocab_unknown_chars (const BpVocab *vocab, const char *utf8);
/* The characters as one UTF-8 string in id order (without <unk>): what a checkpoint stores
 * (bp_vocab_from_chars reads it back to the same ids). */
char *bp_vocab_to_chars (const BpVocab *vocab);
BpVocab *bp_vocab_from_chars (const char *chars, GError **error);

/* ---- reading text ---- */

/* The folder of the fortune files: $BP_FORTUNES_DIR when set, else /usr/share/games/fortunes. */
const char *bp_text_fortunes_dir (void);

/* Reads a fortune file as text: checks UTF-8 (an error names the file and the byte offset),
 * drops ANSI colour escapes and '\r', and turns the lines holding only '%' (entry separators)
 * into empty lines. traditional: converted with OpenCC's s2tw (Simplified to Traditional,
 * Taiwan). An empty result is BP_TEXT_ERROR_EMPTY. */
char *bp_text_read_fortune_file (const char *path, gboolean traditional, GError **error);
/* Drops ANSI escape sequences (ESC [ ... letter, and other ESC x pairs) in place. */
void bp_text_strip_ansi (char *text);
/* Simplified -> Traditional (Taiwan) with OpenCC's s2tw.json. BP_TEXT_ERROR_UNSUPPORTED in a
 * build without OpenCC (BP_HAVE_OPENCC). */
char *bp_text_to_traditional (const char *utf8, GError **error);
gboolean bp_text_have_opencc (void);

/* ---- corpora ---- */

typedef struct {
  char *name;
  BpVocab *vocab;        /* from the training split */
  int64_t *train, *val;  /* ids */
  int64_t n_train, n_val;
  int64_t n_entries;     /* entries (poems, fortunes) */
  int64_t n_val_unknown; /* validation characters outside the vocabulary (<unk>) */
  double unigram_loss;   /* entropy of the training characters' distribution, in nats: the
                          * loss of a model that ignores context (a baseline to report) */
} BpTextCorpus;

typedef struct {
  double val_fraction; /* share of the entries held out for validation, in [0, 0.5] */
  uint64_t seed;       /* which entries are held out */
  int traditional;     /* -1: the corpus's default (Chinese: yes), 0: no, 1: yes */
} BpTextOptions;

#define BP_TEXT_OPTIONS_INIT {0.1, 1, -1}

/* Corpora by name: "tang300", "song100", "chinese" (one fortunes-zh file each), "fortunes-zh"
 * (the three), "fortunes" (the English files of the fortunes package). */
BpTextCorpus *bp_text_corpus_load (const char *name, const BpTextOptions *options,
                                   GError **error);
/* From fortune files (entries separated by '%' lines) or plain text (entries separated by
 * blank lines). */
BpTextCorpus *bp_text_corpus_from_files (const char *name, const char *const *paths,
                                         const BpTextOptions *options, GError **error);
BpTextCorpus *bp_text_corpus_from_text (const char *name, const char *text,
                                        const BpTextOptions *options, GError **error);
void bp_text_corpus_free (BpTextCorpus *corpus);
/* The names bp_text_corpus_load knows (NULL-terminated). */
const char *const *bp_text_corpus_names (void);

/* Checks that a model reads this corpus's characters: its vocab_size equals the vocabulary's
 * and context (the window length of the batches) is at most its context. */
gboolean bp_text_check_model (const BpModel *model, const BpVocab *vocab, int64_t context,
                              GError **error);

/* ---- batches ---- */

/* Batches of B windows of T + 1 characters at random positions of the training (or
 * validation) split: x (B, T) the ids, y (B, T) the next characters' ids (floats), a
 * language model's inputs and per-step targets. The windows of step s depend only on
 * (seed, s), so a resumed run gets the same batches. */
typedef struct BpTextLoader BpTextLoader;

BpTextLoader *bp_text_loader_new (const BpTextCorpus *corpus, gboolean validation,
                                  int64_t batch, int64_t context, uint64_t seed, GError **error);
void bp_text_loader_free (BpTextLoader *loader);
/* The next batch (tensors owned by the loader, overwritten by the next call); FALSE only when
 * a tensor cannot be allocated. */
gboolean bp_text_loader_next (BpTextLoader *loader, BpTensor **x, BpTensor **y);
int64_t bp_text_loader_step (const BpTextLoader *loader);
void bp_text_loader_set_step (BpTextLoader *loader, int64_t step);

/* ---- generation ---- */

typedef struct {
  int64_t max_new;      /* characters to generate */
  float temperature;    /* <= 0: the most likely character each time */
  int64_t top_k;        /* 0: no cut */
  float top_p;          /* 1: no cut */
  gboolean strict;      /* TRUE: characters of the prompt outside the vocabulary are an error;
                         * FALSE: they become <unk> and *unknown (bp_generate) lists them */
} BpGenerateOptions;

#define BP_GENERATE_OPTIONS_INIT {200, 1.0f, 0, 1.0f, FALSE}

/* Called with each generated character (UTF-8) as it comes; return FALSE to stop. */
typedef gboolean (*BpGenerateCallback) (const char *piece, int64_t id, gpointer user_data);

/* Continues prompt with up to max_new characters sampled from the model (eval mode, a KV
 * cache; when the context is full the cache restarts from the last half of it) with the
 * engine RNG. Returns the generated text (without the prompt). A prompt longer than the
 * model's context is BP_TEXT_ERROR_CONTEXT; a model that cannot decode one token at a time
 * BP_TEXT_ERROR_UNSUPPORTED. unknown (may be NULL) gets the prompt's characters outside the
 * vocabulary ("" when none). */
char *bp_generate (BpModel *model, const BpVocab *vocab, const char *prompt,
                   const BpGenerateOptions *options, BpGenerateCallback callback,
                   gpointer user_data, char **unknown, GError **error);

/* ---- synthetic sequence tasks ---- */

/* Examples as two tensors: x (N, ...) inputs and y (N, ...) targets. */
typedef struct {
  char *name;
  BpTensor *x, *y;
} BpSeqTask;

/* Sine forecasting (regression): x (N, T, 1) windows of sin (f t + phase) + noise with a
 * random frequency and phase per example, y (N, 1) the next value. */
BpSeqTask *bp_seq_task_sine (int64_t n, int64_t t, double noise, uint64_t seed, GError **error);
/* Copy (reverse FALSE) or reversal: x (N, T) random token ids in [1, vocab), y (N, T) the same
 * sequence (or reversed): per-step targets; an attention model's weights of the reversal show
 * the anti-diagonal. */
BpSeqTask *bp_seq_task_copy (int64_t n, int64_t t, int64_t vocab, gboolean reverse,
                             uint64_t seed, GError **error);
void bp_seq_task_free (BpSeqTask *task);
/* Gathers examples idx[0..n) into new tensors (B, ...). */
gboolean bp_seq_task_batch (const BpSeqTask *task, const int64_t *idx, int64_t n, BpTensor **x,
                            BpTensor **y, GError **error);

G_END_DECLS
