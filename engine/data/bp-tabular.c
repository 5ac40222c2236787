/* data/bp-tabular.c: scikit-learn's tabular data files (digits, iris, wine, breast cancer,
 * diabetes) read with zlib into data sets with a fixed test split and train-split
 * standardisation, and the generated 2-D sets (two spirals, moons). */
#include "config.h"

#include "bp-tabular.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <zlib.h>

#include "bp-idx.h"
#include "bp-rng.h"

#define SKLEARN_PACKAGE "python3-sklearn"
/* scikit-learn's files are well below this; a bigger file is not one of them */
#define FILE_MAX_BYTES ((gsize) 64 << 20)
#define SYNTHETIC_N 1000

const BpDatasetInfo bp_tabular_infos[] = {
  {"digits", "scikit-learn digits (8x8 handwritten digits, 17 grey levels)", BP_DATASET_IMAGES,
   BP_TASK_CLASSIFICATION, 1438, 359, 3, {1, 8, 8}, 10, SKLEARN_PACKAGE},
  {"iris", "Iris flowers (4 measurements, 3 species)", BP_DATASET_TABULAR,
   BP_TASK_CLASSIFICATION, 120, 30, 1, {4}, 3, SKLEARN_PACKAGE},
  {"wine", "Wine recognition (13 chemical measurements, 3 cultivars)", BP_DATASET_TABULAR,
   BP_TASK_CLASSIFICATION, 143, 35, 1, {13}, 3, SKLEARN_PACKAGE},
  {"breast-cancer", "Breast cancer Wisconsin (30 cell-nucleus features, malignant or benign)",
   BP_DATASET_TABULAR, BP_TASK_CLASSIFICATION, 456, 113, 1, {30}, 2, SKLEARN_PACKAGE},
  {"diabetes", "Diabetes progression after one year (10 baseline variables, regression)",
   BP_DATASET_TABULAR, BP_TASK_REGRESSION, 354, 88, 1, {10}, 0, SKLEARN_PACKAGE},
  {"two-spirals", "Two interleaved spirals (2-D points, 2 classes)", BP_DATASET_SYNTHETIC,
   BP_TASK_CLASSIFICATION, SYNTHETIC_N, SYNTHETIC_N, 1, {2}, 2, NULL},
  {"moons", "Two interleaving half circles (2-D points, 2 classes)", BP_DATASET_SYNTHETIC,
   BP_TASK_CLASSIFICATION, SYNTHETIC_N, SYNTHETIC_N, 1, {2}, 2, NULL},
};
const int bp_tabular_n_infos = G_N_ELEMENTS (bp_tabular_infos);

/* How scikit-learn stores each set. */
typedef struct {
  const char *name;
  const char *data_file;
  const char *target_file; /* a separate file of targets (diabetes); NULL: the last column */
  gboolean header;         /* a first line "rows,features,class names..." */
  gboolean csv;            /* comma-separated; else separated by spaces */
  int n_rows, n_features;
  const char *const *class_names; /* when the file has no header: NULL for "0", "1", ... */
  float pixel_max;         /* digits: values are integers 0 .. pixel_max, x = v / pixel_max */
} SklearnFile;

static const SklearnFile sklearn_files[] = {
  {"digits", "digits.csv.gz", NULL, FALSE, TRUE, 1797, 64, NULL, 16.0f},
  {"iris", "iris.csv", NULL, TRUE, TRUE, 150, 4, NULL, 0.0f},
  {"wine", "wine_data.csv", NULL, TRUE, TRUE, 178, 13, NULL, 0.0f},
  {"breast-cancer", "breast_cancer.csv", NULL, TRUE, TRUE, 569, 30, NULL, 0.0f},
  {"diabetes", "diabetes_data_raw.csv.gz", "diabetes_target.csv.gz", FALSE, FALSE, 442, 10, NULL,
   0.0f},
};

static const char *const spiral_classes[] = {"spiral 1", "spiral 2", NULL};
static const char *const moon_classes[] = {"upper moon", "lower moon", NULL};

/* Fixed generator keys of the synthetic sets' splits (not the training seed: a set is the
 * same in every run). */
#define SPIRALS_TRAIN_KEY 0x73706972616c3031ULL /* "spiral01" */
#define SPIRALS_TEST_KEY 0x73706972616c3032ULL
#define MOONS_TRAIN_KEY 0x6d6f6f6e73303031ULL /* "moons001" */
#define MOONS_TEST_KEY 0x6d6f6f6e73303032ULL
#define SPIRALS_NOISE 0.02
#define MOONS_NOISE 0.1

static const SklearnFile *
find_sklearn (const char *name)
{
  for (size_t i = 0; i < G_N_ELEMENTS (sklearn_files); i++)
    if (strcmp (sklearn_files[i].name, name) == 0)
      return &sklearn_files[i];
  return NULL;
}

/* ---- reading the files ---- */

static gboolean
not_installed (const BpDatasetInfo *info, const char *file, GError **error)
{
  char *dir = g_filename_display_name (bp_sklearn_data_dir ());
  g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_NOT_FOUND,
               "%s is not installed: %s was not found in %s. Install the package %s (apt "
               "install %s), or set BP_SKLEARN_DATA_DIR to a folder that holds %s",
               info->name, file, dir, info->package, info->package, file);
  g_free (dir);
  return FALSE;
}

/* The whole file, plain or gzip-compressed (zlib reads both), NUL-terminated. */
static char *
read_file (const BpDatasetInfo *info, const char *file, gsize *len, GError **error)
{
  char *path = g_build_filename (bp_sklearn_data_dir (), file, NULL);
  char *shown = g_filename_display_name (path);
  char *text = NULL;
  if (!g_file_test (path, G_FILE_TEST_IS_REGULAR)) {
    not_installed (info, file, error);
    goto out;
  }
  gzFile gz = gzopen (path, "rb");
  if (!gz) {
    g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_IO, "%s: cannot be opened: %s", shown,
                 g_strerror (errno));
    goto out;
  }
  GByteArray *b = g_byte_array_new ();
  guint8 chunk[65536];
  int got;
  while ((got = gzread (gz, chunk, sizeof chunk)) > 0 && b->len <= FILE_MAX_BYTES)
    g_byte_array_append (b, chunk, (guint) got);
  int zerr = Z_OK;
  const char *zmsg = got < 0 ? gzerror (gz, &zerr) : NULL;
  char *zwhy = g_strdup (zmsg ? zmsg : "");
  int closed = gzclose_r (gz);
  if (got < 0 || closed != Z_OK) {
    g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_FORMAT,
                 "%s: the file is damaged (%s); reinstall %s", shown,
                 *zwhy ? zwhy : closed == Z_BUF_ERROR ? "the compressed data ends early"
                                                      : "a read error",
                 SKLEARN_PACKAGE);
    g_byte_array_unref (b);
  } else if (b->len > FILE_MAX_BYTES) {
    g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_FORMAT,
                 "%s: more than %u MiB, far more than scikit-learn's %s file; reinstall %s",
                 shown, (unsigned) (FILE_MAX_BYTES >> 20), info->name, SKLEARN_PACKAGE);
    g_byte_array_unref (b);
  } else {
    *len = b->len;
    g_byte_array_append (b, (const guint8 *) "", 1);
    text = (char *) g_byte_array_free (b, FALSE);
  }
  g_free (zwhy);
out:
  g_free (shown);
  g_free (path);
  return text;
}

/* The lines of a text (modified in place: line ends become NUL; "\r\n" is accepted), without
 * the empty lines at its end. */
static GPtrArray *
split_lines (char *text, gsize len)
{
  GPtrArray *lines = g_ptr_array_new ();
  char *p = text, *end = text + len;
  while (p < end) {
    char *nl = memchr (p, '\n', (size_t) (end - p));
    char *stop = nl ? nl : end;
    if (stop > p && stop[-1] == '\r')
      stop[-1] = '\0';
    *stop = '\0';
    g_ptr_array_add (lines, p);
    p = stop + 1;
  }
  while (lines->len > 0 && !*g_strstrip ((char *) g_ptr_array_index (lines, lines->len - 1)))
    g_ptr_array_set_size (lines, lines->len - 1);
  return lines;
}

/* The fields of a line: comma-separated (each trimmed) or separated by runs of blanks. At most
 * max + 1 fields are found (more tells the caller there are too many). */
static int
split_fields (char *line, gboolean csv, char **fields, int max)
{
  int n = 0;
  if (csv) {
    if (!*g_strstrip (line))
      return 0;
    char *p = line;
    while (n <= max) {
      char *comma = strchr (p, ',');
      if (comma)
        *comma = '\0';
      fields[n++] = g_strstrip (p);
      if (!comma)
        break;
      p = comma + 1;
    }
    return n;
  }
  char *p = line;
  while (n <= max) {
    while (*p == ' ' || *p == '\t')
      p++;
    if (!*p)
      break;
    fields[n++] = p;
    while (*p && *p != ' ' && *p != '\t')
      p++;
    if (*p)
      *p++ = '\0';
  }
  return n;
}

static gboolean
parse_number (const char *s, double *v)
{
  char *end;
  if (!*s)
    return FALSE;
  *v = g_ascii_strtod (s, &end);
  return end != s && !*end && isfinite (*v);
}

/* A data error naming the file and line: "FILE:LINE: message; hint". */
static gboolean bad_line (GError **error, const char *file, int line, const char *fmt, ...)
  G_GNUC_PRINTF (4, 5);

static gboolean
bad_line (GError **error, const char *file, int line, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  char *path = g_build_filename (bp_sklearn_data_dir (), file, NULL);
  char *shown = g_filename_display_name (path);
  g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_FORMAT,
               "%s:%d: %s (the file is not scikit-learn's: reinstall %s)", shown, line, msg,
               SKLEARN_PACKAGE);
  g_free (shown);
  g_free (path);
  g_free (msg);
  return FALSE;
}

/* A file's table: n rows of f features, and its targets (the last column, or the separate
 * target file). */
typedef struct {
  int64_t n;
  int f;
  double *x;          /* n * f */
  double *y;          /* n */
  char **class_names; /* from the header, NULL-terminated; NULL without a header */
} Table;

static void
table_clear (Table *t)
{
  g_free (t->x);
  g_free (t->y);
  g_strfreev (t->class_names);
  memset (t, 0, sizeof *t);
}

/* Reads sf->data_file's header and rows into t (x and, without a target file, y). */
static gboolean
read_rows (const BpDatasetInfo *info, const SklearnFile *sf, Table *t, GError **error)
{
  gsize len;
  char *text = read_file (info, sf->data_file, &len, error);
  if (!text)
    return FALSE;
  GPtrArray *lines = split_lines (text, len);
  gboolean ok = FALSE;
  int first = 0;
  int cols = sf->n_features + (sf->target_file ? 0 : 1);
  char **fields = g_new (char *, (gsize) MAX (cols, info->n_classes + 2) + 1);
  if (sf->header) {
    /* "150,4,setosa,versicolor,virginica" */
    char *head = lines->len ? g_ptr_array_index (lines, 0) : (char *) "";
    int nf = split_fields (head, TRUE, fields, info->n_classes + 2);
    double rows, feats;
    if (nf < 2 || !parse_number (fields[0], &rows) || !parse_number (fields[1], &feats)) {
      bad_line (error, sf->data_file, 1, "the header should be \"rows,features,class names\"");
      goto out;
    }
    if (rows != sf->n_rows || feats != sf->n_features || nf != 2 + info->n_classes) {
      bad_line (error, sf->data_file, 1,
                "the header says %g rows of %g features and %d classes; scikit-learn's %s has "
                "%d rows of %d features and %d classes",
                rows, feats, nf - 2, info->name, sf->n_rows, sf->n_features, info->n_classes);
      goto out;
    }
    t->class_names = g_new0 (char *, (gsize) info->n_classes + 1);
    for (int c = 0; c < info->n_classes; c++)
      t->class_names[c] = g_strdup (fields[2 + c]);
    first = 1;
  }
  int64_t n = (int64_t) lines->len - first;
  if (n != sf->n_rows) {
    bad_line (error, sf->data_file, (int) lines->len,
              "the file has %" G_GINT64_FORMAT " data rows; scikit-learn's %s has %d", n,
              info->name, sf->n_rows);
    goto out;
  }
  t->n = n;
  t->f = sf->n_features;
  t->x = g_new (double, (gsize) n * (gsize) t->f);
  if (!sf->target_file)
    t->y = g_new (double, (gsize) n);
  for (int64_t i = 0; i < n; i++) {
    int line = (int) (i + first + 1);
    int nf = split_fields (g_ptr_array_index (lines, i + first), sf->csv, fields, cols);
    if (nf != cols) {
      bad_line (error, sf->data_file, line, "%s%d values; a row of %s has %d (%d features%s)",
                nf > cols ? "more than " : "", nf > cols ? cols : nf, info->name, cols,
                sf->n_features, sf->target_file ? "" : " and the class");
      goto out;
    }
    for (int j = 0; j < cols; j++) {
      double v;
      if (!parse_number (fields[j], &v)) {
        bad_line (error, sf->data_file, line, "value %d, \"%.40s\", is not a number", j + 1,
                  fields[j]);
        goto out;
      }
      if (j < sf->n_features) {
        if (sf->pixel_max > 0.0f && !(v >= 0.0 && v <= sf->pixel_max && v == floor (v))) {
          bad_line (error, sf->data_file, line, "pixel value %g is not an integer from 0 to %g",
                    v, (double) sf->pixel_max);
          goto out;
        }
        t->x[i * t->f + j] = v;
      } else {
        if (!(v >= 0.0 && v < info->n_classes && v == floor (v))) {
          bad_line (error, sf->data_file, line, "class %g is not one of 0 to %d", v,
                    info->n_classes - 1);
          goto out;
        }
        t->y[i] = v;
      }
    }
  }
  ok = TRUE;
out:
  g_free (fields);
  g_ptr_array_unref (lines);
  g_free (text);
  return ok;
}

/* The separate target file: one number per line, as many as the data rows. */
static gboolean
read_targets (const BpDatasetInfo *info, const SklearnFile *sf, Table *t, GError **error)
{
  gsize len;
  char *text = read_file (info, sf->target_file, &len, error);
  if (!text)
    return FALSE;
  GPtrArray *lines = split_lines (text, len);
  gboolean ok = FALSE;
  if ((int64_t) lines->len != t->n) {
    bad_line (error, sf->target_file, (int) lines->len,
              "the file has %u targets for the %" G_GINT64_FORMAT " rows of %s", lines->len, t->n,
              sf->data_file);
    goto out;
  }
  t->y = g_new (double, (gsize) t->n);
  for (int64_t i = 0; i < t->n; i++) {
    char *fields[2];
    int nf = split_fields (g_ptr_array_index (lines, i), FALSE, fields, 1);
    if (nf != 1 || !parse_number (fields[0], &t->y[i])) {
      bad_line (error, sf->target_file, (int) i + 1, "a line holds one number, the target");
      goto out;
    }
  }
  ok = TRUE;
out:
  g_ptr_array_unref (lines);
  g_free (text);
  return ok;
}

/* ---- the fixed split ---- */

static int
cmp_int64 (const void *a, const void *b)
{
  int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
  return (x > y) - (x < y);
}

/* The rows of a split: a shuffle of 0..n-1 with a key fixed per data set; the first n / 5 are
 * test, the rest train, each in increasing order. */
static int64_t *
split_rows (const char *name, int64_t n, gboolean train, int64_t *count)
{
  uint64_t key = 0xcbf29ce484222325ULL; /* FNV-1a of the name: fixed, whatever the run */
  for (const char *p = name; *p; p++)
    key = (key ^ (guint8) *p) * 0x100000001b3ULL;
  int64_t *all = g_new (int64_t, (gsize) MAX (n, 1));
  for (int64_t i = 0; i < n; i++)
    all[i] = i;
  bp_shuffle_indices (all, n, bp_rng_hash (key, 0x74657374ULL /* "test" */));
  int64_t n_test = n / 5;
  int64_t start = train ? n_test : 0;
  *count = train ? n - n_test : n_test;
  int64_t *rows = g_new (int64_t, (gsize) MAX (*count, 1));
  memcpy (rows, all + start, sizeof (int64_t) * (size_t) *count);
  qsort (rows, (size_t) *count, sizeof (int64_t), cmp_int64);
  g_free (all);
  return rows;
}

/* Mean and population std of column j of t over rows (std 1 for a constant column). */
static void
column_stats (const double *v, int64_t stride, const int64_t *rows, int64_t n, double *mean,
              double *std)
{
  double sum = 0.0;
  for (int64_t i = 0; i < n; i++)
    sum += v[rows[i] * stride];
  double m = n ? sum / (double) n : 0.0, sq = 0.0;
  for (int64_t i = 0; i < n; i++) {
    double d = v[rows[i] * stride] - m;
    sq += d * d;
  }
  double s = n ? sqrt (sq / (double) n) : 0.0;
  *mean = m;
  *std = s > 1e-12 ? s : 1.0;
}

static BpDataset *
load_sklearn (const BpDatasetInfo *info, gboolean train, const BpDatasetOptions *o,
              GError **error)
{
  const SklearnFile *sf = find_sklearn (info->name);
  g_assert (sf);
  Table t = {0};
  BpDataset *ds = NULL;
  if (!read_rows (info, sf, &t, error) || (sf->target_file && !read_targets (info, sf, &t, error)))
    goto out;

  int64_t count, n_train;
  int64_t *rows = split_rows (info->name, t.n, train, &count);
  int64_t *train_rows = split_rows (info->name, t.n, TRUE, &n_train);
  if (o->limit > 0)
    count = MIN (count, o->limit);
  const char *const *names = (const char *const *) t.class_names;
  if (!names)
    names = sf->class_names;
  ds = bp_dataset_new (info->name, count, info->example_ndim, info->example_shape,
                       info->n_classes, names, error);
  if (!ds) {
    g_free (rows);
    g_free (train_rows);
    goto out;
  }
  ds->task = info->task;
  ds->source_rows = g_new (int64_t, (gsize) MAX (count, 1));
  memcpy (ds->source_rows, rows, sizeof (int64_t) * (size_t) count);

  int f = t.f;
  if (sf->pixel_max > 0.0f) {
    /* images: v / pixel_max in [0, 1], then the (custom) normalisation */
    float mean = o->custom_norm ? o->mean : 0.0f, std = o->custom_norm ? o->std : 1.0f;
    ds->mean = mean;
    ds->std = std;
    for (int64_t i = 0; i < count; i++)
      for (int j = 0; j < f; j++)
        ds->x[i * f + j] = ((float) (t.x[rows[i] * f + j] / sf->pixel_max) - mean) / std;
  } else {
    /* columns standardised with the train split's statistics */
    ds->feature_mean = g_new (float, (gsize) f);
    ds->feature_std = g_new (float, (gsize) f);
    for (int j = 0; j < f; j++) {
      double m, s;
      column_stats (t.x + j, f, train_rows, n_train, &m, &s);
      ds->feature_mean[j] = (float) m;
      ds->feature_std[j] = (float) s;
      for (int64_t i = 0; i < count; i++)
        ds->x[i * f + j] = (float) ((t.x[rows[i] * f + j] - m) / s);
    }
  }
  if (info->task == BP_TASK_REGRESSION) {
    column_stats (t.y, 1, train_rows, n_train, &ds->target_mean, &ds->target_std);
    for (int64_t i = 0; i < count; i++)
      ds->y[i] = (float) ((t.y[rows[i]] - ds->target_mean) / ds->target_std);
  } else {
    for (int64_t i = 0; i < count; i++)
      ds->y[i] = (float) t.y[rows[i]];
  }
  g_free (rows);
  g_free (train_rows);
out:
  table_clear (&t);
  return ds;
}

/* ---- generated sets ---- */

/* Uniform in (0, 1) and standard normal draws k of the stream `key`. */
static double
hash_uniform (uint64_t key, uint64_t k)
{
  return ((double) (bp_rng_hash (key, k) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double
hash_normal (uint64_t key, uint64_t k)
{
  double u1 = hash_uniform (key, 2 * k), u2 = hash_uniform (key, 2 * k + 1);
  return sqrt (-2.0 * log (u1)) * cos (2.0 * G_PI * u2);
}

static BpDataset *
new_2d (const char *name, int64_t n, const char *const *classes, double noise, GError **error)
{
  if (n < 1 || n > ((int64_t) 1 << 30) || !(noise >= 0.0) || !isfinite (noise)) {
    g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID,
                 "%s: bad size or noise (%" G_GINT64_FORMAT " points, noise %g; 1 to 2^30 "
                 "points and a noise >= 0)", name, n, noise);
    return NULL;
  }
  return bp_dataset_new (name, n, 1, (const int64_t[]){2}, 2, classes, error);
}

BpDataset *
bp_dataset_two_spirals (int64_t n, uint64_t seed, double noise, GError **error)
{
  BpDataset *ds = new_2d ("two-spirals", n, spiral_classes, noise, error);
  if (!ds)
    return NULL;
  for (int64_t i = 0; i < n; i++) {
    int c = (int) (i % 2);
    /* radius r in [0.1, 1], denser outwards (about uniform along the arm), 1.5 turns; the
     * second spiral is the first turned by half a turn */
    double r = 0.1 + 0.9 * sqrt (hash_uniform (seed, 4 * (uint64_t) i));
    double a = 3.0 * G_PI * r + c * G_PI;
    ds->x[2 * i] = (float) (r * cos (a) + noise * hash_normal (seed, 2 * (uint64_t) i + 1));
    ds->x[2 * i + 1] = (float) (r * sin (a) + noise * hash_normal (seed ^ 0x9e3779b97f4a7c15ULL,
                                                                   2 * (uint64_t) i + 1));
    ds->y[i] = (float) c;
  }
  return ds;
}

BpDataset *
bp_dataset_moons (int64_t n, uint64_t seed, double noise, GError **error)
{
  BpDataset *ds = new_2d ("moons", n, moon_classes, noise, error);
  if (!ds)
    return NULL;
  for (int64_t i = 0; i < n; i++) {
    int c = (int) (i % 2);
    double a = G_PI * hash_uniform (seed, 4 * (uint64_t) i);
    double px = c ? 1.0 - cos (a) : cos (a);
    double py = c ? 0.5 - sin (a) : sin (a);
    ds->x[2 * i] = (float) (px + noise * hash_normal (seed, 2 * (uint64_t) i + 1));
    ds->x[2 * i + 1] = (float) (py + noise * hash_normal (seed ^ 0x9e3779b97f4a7c15ULL,
                                                          2 * (uint64_t) i + 1));
    ds->y[i] = (float) c;
  }
  return ds;
}

static BpDataset *
load_synthetic (const BpDatasetInfo *info, gboolean train, const BpDatasetOptions *o,
                GError **error)
{
  /* point i depends only on (key, i): the first `limit` points are those of the whole set */
  int64_t n = o->limit > 0 ? MIN (o->limit, SYNTHETIC_N) : SYNTHETIC_N;
  if (strcmp (info->name, "two-spirals") == 0)
    return bp_dataset_two_spirals (n, train ? SPIRALS_TRAIN_KEY : SPIRALS_TEST_KEY,
                                   SPIRALS_NOISE, error);
  return bp_dataset_moons (n, train ? MOONS_TRAIN_KEY : MOONS_TEST_KEY, MOONS_NOISE, error);
}

/* ---- entry points ---- */

BpDataset *
bp_tabular_load (const BpDatasetInfo *info, gboolean train, const BpDatasetOptions *o,
                 GError **error)
{
  if (o->custom_norm && info->kind != BP_DATASET_IMAGES) {
    g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID,
                 "%s is not an image data set: a custom normalisation (one mean and std) does "
                 "not apply (its columns are standardised)", info->name);
    return NULL;
  }
  if (info->kind == BP_DATASET_SYNTHETIC)
    return load_synthetic (info, train, o, error);
  return load_sklearn (info, train, o, error);
}

gboolean
bp_tabular_check_installed (const BpDatasetInfo *info, GError **error)
{
  const SklearnFile *sf = find_sklearn (info->name);
  if (!sf)
    return TRUE;
  const char *files[] = {sf->data_file, sf->target_file};
  for (size_t k = 0; k < G_N_ELEMENTS (files); k++) {
    if (!files[k])
      continue;
    char *path = g_build_filename (bp_sklearn_data_dir (), files[k], NULL);
    gboolean there = g_file_test (path, G_FILE_TEST_IS_REGULAR);
    g_free (path);
    if (!there)
      return not_installed (info, files[k], error);
  }
  return TRUE;
}
