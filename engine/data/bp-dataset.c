/* data/bp-dataset.c: loading data sets into float32 arrays (installed Fashion-MNIST,
 * MNIST-format IDX pairs, the tabular and generated sets of bp-tabular.c, caller-filled), the
 * list of known names, and seeded validation splits. */
#include "config.h"

#include "bp-dataset.h"

#include <math.h>
#include <string.h>

#include "bp-rng.h"
#include "bp-tabular.h"

/* ---- installed data sets ---- */

typedef struct {
  const char *name;    /* as given to bp_dataset_load */
  const char *title;   /* for messages */
  const char *dir;     /* folder under bp_datasets_dir () */
  const char *package; /* the Debian package that installs it */
  const char *train_images, *train_labels, *test_images, *test_labels; /* without ".gz" */
  int n_classes;
  const char *const *class_names;
  float mean, std;
} KnownDataset;

static const char *const fashion_mnist_classes[] = {
  "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot", NULL,
};

static const KnownDataset known_datasets[] = {
  {"fashion-mnist", "Fashion-MNIST", "fashion-mnist", "dataset-fashion-mnist",
   "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
   "t10k-labels-idx1-ubyte", 10, fashion_mnist_classes, BP_FASHION_MNIST_MEAN,
   BP_FASHION_MNIST_STD},
};

static const BpDatasetInfo image_infos[] = {
  {"fashion-mnist", "Fashion-MNIST (28x28 clothing images, 10 classes)", BP_DATASET_IMAGES,
   BP_TASK_CLASSIFICATION, 60000, 10000, 3, {1, 28, 28}, 10, "dataset-fashion-mnist"},
};

char *
bp_example_shape_string (int ndim, const int64_t *shape)
{
  GString *s = g_string_new ("(");
  for (int d = 0; d < ndim; d++)
    g_string_append_printf (s, "%s%" G_GINT64_FORMAT, d ? ", " : "", shape[d]);
  g_string_append_c (s, ')');
  return g_string_free (s, FALSE);
}

const char *
bp_datasets_dir (void)
{
  const char *env = g_getenv ("BP_DATASETS_DIR");
  return env && *env ? env : BP_DATASETS_DIR;
}

const char *
bp_sklearn_data_dir (void)
{
  const char *env = g_getenv ("BP_SKLEARN_DATA_DIR");
  return env && *env ? env : BP_SKLEARN_DATA_DIR;
}

/* ---- the known names ---- */

static const BpDatasetInfo *
info_at (int k)
{
  int n_images = (int) G_N_ELEMENTS (image_infos);
  if (k < n_images)
    return &image_infos[k];
  if (k < n_images + bp_tabular_n_infos)
    return &bp_tabular_infos[k - n_images];
  return NULL;
}

const char *const *
bp_dataset_names (void)
{
  static const char *names[G_N_ELEMENTS (image_infos) + 16];
  static gsize once = 0;
  if (g_once_init_enter (&once)) {
    g_assert (G_N_ELEMENTS (image_infos) + (gsize) bp_tabular_n_infos < G_N_ELEMENTS (names));
    int k = 0;
    for (const BpDatasetInfo *info; (info = info_at (k)); k++)
      names[k] = info->name;
    names[k] = NULL;
    g_once_init_leave (&once, 1);
  }
  return names;
}

const BpDatasetInfo *
bp_dataset_info (const char *name)
{
  for (int k = 0; name && info_at (k); k++)
    if (strcmp (info_at (k)->name, name) == 0)
      return info_at (k);
  return NULL;
}

gboolean
bp_dataset_is_known (const char *name)
{
  return bp_dataset_info (name) != NULL;
}

const char *
bp_dataset_kind_name (BpDatasetKind kind)
{
  switch (kind) {
  case BP_DATASET_IMAGES: return "images";
  case BP_DATASET_TABULAR: return "tabular";
  case BP_DATASET_SYNTHETIC: return "synthetic";
  }
  return "unknown";
}

const char *
bp_task_name (BpTask task)
{
  return task == BP_TASK_REGRESSION ? "regression" : "classification";
}

/* dir/base.gz, else dir/base; NULL when neither exists. */
static char *
find_data_file (const char *dir, const char *base)
{
  char *gz_name = g_strconcat (base, ".gz", NULL);
  char *path = g_build_filename (dir, gz_name, NULL);
  g_free (gz_name);
  if (g_file_test (path, G_FILE_TEST_EXISTS))
    return path;
  g_free (path);
  path = g_build_filename (dir, base, NULL);
  if (g_file_test (path, G_FILE_TEST_EXISTS))
    return path;
  g_free (path);
  return NULL;
}

BpDataset *
bp_dataset_load (const char *name, const char *split, GError **error)
{
  return bp_dataset_load_full (name, split, NULL, error);
}

BpDataset *
bp_dataset_load_full (const char *name, const char *split, const BpDatasetOptions *options,
                      GError **error)
{
  const BpDatasetInfo *info = bp_dataset_info (name);
  if (!info) {
    GString *names = g_string_new (NULL);
    for (const char *const *n = bp_dataset_names (); *n; n++)
      g_string_append_printf (names, "%s%s", names->len ? ", " : "", *n);
    g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID,
                 "unknown data set '%s' (known: %s)", name ? name : "(null)", names->str);
    g_string_free (names, TRUE);
    return NULL;
  }
  gboolean train = g_strcmp0 (split, "train") == 0;
  if (!train && g_strcmp0 (split, "test") != 0) {
    g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID,
                 "data set '%s' has no split '%s' (use 'train' or 'test')", name,
                 split ? split : "(null)");
    return NULL;
  }
  BpDatasetOptions opts = BP_DATASET_OPTIONS_INIT;
  if (options)
    opts = *options;
  if (opts.limit < 0 || (opts.custom_norm && (!(opts.std > 0.0f) || !isfinite (opts.mean) ||
                                              !isfinite (opts.std)))) {
    g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID,
                 "bad data set options (limit %lld, mean %g, std %g)", (long long) opts.limit,
                 (double) opts.mean, (double) opts.std);
    return NULL;
  }
  const KnownDataset *k = NULL;
  for (size_t i = 0; i < G_N_ELEMENTS (known_datasets); i++)
    if (strcmp (name, known_datasets[i].name) == 0)
      k = &known_datasets[i];
  if (!k)
    return bp_tabular_load (info, train, &opts, error);

  char *dir = g_build_filename (bp_datasets_dir (), k->dir, NULL);
  const char *image_base = train ? k->train_images : k->test_images;
  const char *label_base = train ? k->train_labels : k->test_labels;
  char *images = find_data_file (dir, image_base);
  char *labels = find_data_file (dir, label_base);
  BpDataset *ds = NULL;
  if (!images || !labels) {
    char *display = g_filename_display_name (dir);
    g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_NOT_FOUND,
                 "%s is not installed: %s.gz was not found in %s. Install the package %s "
                 "(apt install %s), or set BP_DATASETS_DIR to a folder that holds %s/",
                 k->title, images ? label_base : image_base, display, k->package, k->package,
                 k->dir);
    g_free (display);
    goto out;
  }

  if (!opts.custom_norm) {
    opts.custom_norm = TRUE;
    opts.mean = k->mean;
    opts.std = k->std;
  }
  ds = bp_dataset_load_idx (images, labels, &opts, error);
  if (!ds)
    goto out;
  for (int64_t i = 0; i < ds->n; i++) {
    if (ds->y[i] >= k->n_classes) {
      char *display = g_filename_display_name (labels);
      g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_FORMAT,
                   "%s: label %g of example %lld is not a %s class (0 to %d)", display,
                   (double) ds->y[i], (long long) i, k->title, k->n_classes - 1);
      g_free (display);
      g_clear_pointer (&ds, bp_dataset_unref);
      goto out;
    }
  }
  g_free (ds->name);
  ds->name = g_strdup (k->name);
  g_strfreev (ds->class_names);
  ds->class_names = g_strdupv ((char **) k->class_names);
  ds->n_classes = k->n_classes;

out:
  g_free (images);
  g_free (labels);
  g_free (dir);
  return ds;
}

gboolean
bp_dataset_check_installed (const char *name, GError **error)
{
  const BpDatasetInfo *info = bp_dataset_info (name);
  if (!info) {
    g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID, "unknown data set '%s'",
                 name ? name : "(null)");
    return FALSE;
  }
  for (size_t i = 0; i < G_N_ELEMENTS (known_datasets); i++) {
    const KnownDataset *k = &known_datasets[i];
    if (strcmp (name, k->name) != 0)
      continue;
    char *dir = g_build_filename (bp_datasets_dir (), k->dir, NULL);
    const char *bases[] = {k->train_images, k->train_labels, k->test_images, k->test_labels};
    gboolean ok = TRUE;
    for (size_t j = 0; j < G_N_ELEMENTS (bases) && ok; j++) {
      char *path = find_data_file (dir, bases[j]);
      if (!path) {
        char *display = g_filename_display_name (dir);
        g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_NOT_FOUND,
                     "%s is not installed: %s.gz was not found in %s. Install the package %s "
                     "(apt install %s), or set BP_DATASETS_DIR to a folder that holds %s/",
                     k->title, bases[j], display, k->package, k->package, k->dir);
        g_free (display);
        ok = FALSE;
      }
      g_free (path);
    }
    g_free (dir);
    return ok;
  }
  return bp_tabular_check_installed (info, error);
}

/* ---- data sets ---- */

static char **
numbered_class_names (int n_classes)
{
  char **names = g_new0 (char *, (size_t) n_classes + 1);
  for (int c = 0; c < n_classes; c++)
    names[c] = g_strdup_printf ("%d", c);
  return names;
}

BpDataset *
bp_dataset_new (const char *name, int64_t n, int example_ndim, const int64_t *example_shape,
                int n_classes, const char *const *class_names, GError **error)
{
  if (n < 0 || example_ndim < 1 || example_ndim > BP_MAX_DIMS - 1 || n_classes < 0) {
    g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID,
                 "data set '%s': bad size (%lld examples of %d dimensions, %d classes; "
                 "examples have 1 to %d dimensions)",
                 name, (long long) n, example_ndim, n_classes, BP_MAX_DIMS - 1);
    return NULL;
  }
  int64_t numel = bp_shape_numel (example_ndim, example_shape);
  /* 2^36 floats (256 GiB) in all is far beyond what this lab loads into memory. */
  if (numel < 1 || (n > 0 && numel > ((int64_t) 1 << 36) / n)) {
    g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID,
                 "data set '%s': impossible example shape or size (%lld examples)", name,
                 (long long) n);
    return NULL;
  }
  if (class_names && (int) g_strv_length ((char **) class_names) != n_classes) {
    g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID,
                 "data set '%s': %u class names for %d classes", name,
                 g_strv_length ((char **) class_names), n_classes);
    return NULL;
  }
  float *x = g_try_malloc0_n ((gsize) MAX (n * numel, 1), sizeof (float));
  float *y = g_try_malloc0_n ((gsize) MAX (n, 1), sizeof (float));
  if (!x || !y) {
    g_free (x);
    g_free (y);
    g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_NOMEM,
                 "data set '%s': out of memory for %lld examples of %lld values", name,
                 (long long) n, (long long) numel);
    return NULL;
  }
  BpDataset *ds = g_new0 (BpDataset, 1);
  ds->name = g_strdup (name);
  ds->n = n;
  ds->example_ndim = example_ndim;
  memcpy (ds->example_shape, example_shape, (size_t) example_ndim * sizeof (int64_t));
  ds->example_numel = numel;
  ds->x = x;
  ds->y = y;
  ds->n_classes = n_classes;
  ds->class_names = class_names ? g_strdupv ((char **) class_names)
                                : numbered_class_names (n_classes);
  ds->mean = 0.0f;
  ds->std = 1.0f;
  ds->task = BP_TASK_CLASSIFICATION;
  ds->target_mean = 0.0;
  ds->target_std = 1.0;
  ds->ref_count = 1;
  return ds;
}

BpDataset *
bp_dataset_ref (BpDataset *ds)
{
  if (ds)
    g_atomic_int_inc (&ds->ref_count);
  return ds;
}

void
bp_dataset_unref (BpDataset *ds)
{
  if (!ds || !g_atomic_int_dec_and_test (&ds->ref_count))
    return;
  g_free (ds->name);
  g_free (ds->x);
  g_free (ds->y);
  g_strfreev (ds->class_names);
  g_free (ds->feature_mean);
  g_free (ds->feature_std);
  g_free (ds->source_rows);
  g_free (ds);
}

void
bp_dataset_stats (const BpDataset *ds, double *mean, double *std)
{
  int64_t n = ds->n * ds->example_numel;
  double sum = 0.0, sq = 0.0;
  for (int64_t i = 0; i < n; i++) {
    sum += ds->x[i];
    sq += (double) ds->x[i] * ds->x[i];
  }
  double m = n > 0 ? sum / (double) n : 0.0;
  double var = n > 0 ? sq / (double) n - m * m : 0.0;
  if (mean)
    *mean = m;
  if (std)
    *std = sqrt (MAX (var, 0.0));
}

BpDataset *
bp_dataset_load_idx (const char *images_path, const char *labels_path,
                     const BpDatasetOptions *options, GError **error)
{
  BpDatasetOptions opts = BP_DATASET_OPTIONS_INIT;
  if (options)
    opts = *options;
  if (opts.limit < 0 || !(opts.std > 0.0f) || !isfinite (opts.mean) || !isfinite (opts.std)) {
    g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID,
                 "bad data set options (limit %lld, mean %g, std %g)", (long long) opts.limit,
                 (double) opts.mean, (double) opts.std);
    return NULL;
  }
  if (!opts.custom_norm) {
    opts.mean = 0.0f;
    opts.std = 1.0f;
  }

  BpIdx *labels = NULL, *images = NULL;
  BpDataset *ds = NULL;
  char *images_name = g_filename_display_name (images_path);
  char *labels_name = g_filename_display_name (labels_path);

  /* Headers first: a count mismatch is found before the images are decompressed. */
  images = bp_idx_read_header (images_path, error);
  if (!images)
    goto out;
  labels = bp_idx_read_limit (labels_path, opts.limit, error);
  if (!labels)
    goto out;
  if (labels->file_count != images->file_count) {
    g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_MISMATCH,
                 "%s has %lld labels but %s has %lld examples", labels_name,
                 (long long) labels->file_count, images_name, (long long) images->file_count);
    goto out;
  }
  if (labels->ndim != 1) {
    g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_FORMAT,
                 "%s: a labels file has 1 dimension, not %d", labels_name, labels->ndim);
    goto out;
  }
  int example_ndim = images->ndim == 1 ? 1 : images->ndim == 3 ? 3 : images->ndim - 1;
  int64_t example_shape[BP_IDX_MAX_DIMS];
  if (images->ndim == 1) {
    example_shape[0] = 1;
  } else if (images->ndim == 3) {
    example_shape[0] = 1; /* (n, H, W): one channel */
    example_shape[1] = images->shape[1];
    example_shape[2] = images->shape[2];
  } else {
    for (int d = 1; d < images->ndim; d++)
      example_shape[d - 1] = images->shape[d];
  }
  if (example_ndim > BP_MAX_DIMS - 1) {
    g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_FORMAT,
                 "%s: %d dimensions per example is more than the %d a batch can hold",
                 images_name, example_ndim, BP_MAX_DIMS - 1);
    goto out;
  }

  /* labels: integral values >= 0 */
  float *y = g_new (float, labels->numel);
  bp_idx_to_float (labels, y);
  int max_label = -1;
  for (int64_t i = 0; i < labels->numel; i++) {
    if (!(y[i] >= 0.0f && y[i] < 16777216.0f && y[i] == floorf (y[i]))) {
      g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_FORMAT,
                   "%s: label %g of example %lld is not a class index (an integer >= 0)",
                   labels_name, (double) y[i], (long long) i);
      g_free (y);
      goto out;
    }
    max_label = MAX (max_label, (int) y[i]);
  }

  char *base = g_path_get_basename (images_path);
  ds = bp_dataset_new (base, labels->numel, example_ndim, example_shape, max_label + 1, NULL,
                       error);
  g_free (base);
  if (!ds) {
    g_free (y);
    goto out;
  }
  memcpy (ds->y, y, (size_t) labels->numel * sizeof (float));
  g_free (y);
  ds->mean = opts.mean;
  ds->std = opts.std;

  bp_idx_free (images);
  images = bp_idx_read_limit (images_path, opts.limit, error);
  if (!images) {
    g_clear_pointer (&ds, bp_dataset_unref);
    goto out;
  }
  if (images->shape[0] != ds->n) { /* the file changed between the two reads */
    g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_MISMATCH,
                 "%s has %lld labels but %s has %lld examples", labels_name, (long long) ds->n,
                 images_name, (long long) images->shape[0]);
    g_clear_pointer (&ds, bp_dataset_unref);
    goto out;
  }

  /* x = (v * scale - mean) / std; a table for unsigned bytes */
  float inv_std = 1.0f / opts.std;
  int64_t total = images->numel;
  if (images->type == BP_IDX_U8) {
    float table[256];
    for (int v = 0; v < 256; v++)
      table[v] = ((float) v / 255.0f - opts.mean) * inv_std;
    const guint8 *src = images->data;
    for (int64_t i = 0; i < total; i++)
      ds->x[i] = table[src[i]];
  } else {
    bp_idx_to_float (images, ds->x);
    for (int64_t i = 0; i < total; i++)
      ds->x[i] = (ds->x[i] - opts.mean) * inv_std;
  }

out:
  bp_idx_free (images);
  bp_idx_free (labels);
  g_free (images_name);
  g_free (labels_name);
  return ds;
}

/* ---- index sets and splits ---- */

BpIndices *
bp_indices_new_range (int64_t n)
{
  BpIndices *s = g_new0 (BpIndices, 1);
  s->n = MAX (n, 0);
  s->idx = g_new (int64_t, MAX (s->n, 1));
  for (int64_t i = 0; i < s->n; i++)
    s->idx[i] = i;
  return s;
}

void
bp_indices_free (BpIndices *indices)
{
  if (!indices)
    return;
  g_free (indices->idx);
  g_free (indices);
}

void
bp_shuffle_indices (int64_t *a, int64_t n, uint64_t key)
{
  /* j uniform in [0, i] by a 64x64 -> 128-bit multiply (bias below 2^-40 for any real n) */
  for (int64_t i = n - 1; i > 0; i--) {
    uint64_t r = bp_rng_hash (key, (uint64_t) i);
    int64_t j = (int64_t) (((unsigned __int128) r * (uint64_t) (i + 1)) >> 64);
    int64_t tmp = a[i];
    a[i] = a[j];
    a[j] = tmp;
  }
}

static int
cmp_int64 (const void *a, const void *b)
{
  int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
  return (x > y) - (x < y);
}

gboolean
bp_dataset_split (const BpDataset *ds, int64_t n_val, uint64_t seed, BpIndices **train,
                  BpIndices **val, GError **error)
{
  if (n_val < 0 || n_val > ds->n) {
    g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID,
                 "data set '%s': cannot take %lld validation examples out of %lld", ds->name,
                 (long long) n_val, (long long) ds->n);
    return FALSE;
  }
  BpIndices *all = bp_indices_new_range (ds->n);
  /* a key of its own, so a loader given the same seed does not repeat this order */
  bp_shuffle_indices (all->idx, all->n, bp_rng_hash (seed, 0x73706c6974ULL /* "split" */));
  BpIndices *v = g_new0 (BpIndices, 1), *t = g_new0 (BpIndices, 1);
  v->n = n_val;
  v->idx = g_new (int64_t, MAX (n_val, 1));
  memcpy (v->idx, all->idx, (size_t) n_val * sizeof (int64_t));
  t->n = ds->n - n_val;
  t->idx = g_new (int64_t, MAX (t->n, 1));
  memcpy (t->idx, all->idx + n_val, (size_t) t->n * sizeof (int64_t));
  qsort (v->idx, (size_t) v->n, sizeof (int64_t), cmp_int64);
  qsort (t->idx, (size_t) t->n, sizeof (int64_t), cmp_int64);
  bp_indices_free (all);
  *train = t;
  *val = v;
  return TRUE;
}
