/* bp-dataset.h: in-memory data sets for classification and regression (Fashion-MNIST, any
 * MNIST-format IDX pair, scikit-learn's tabular sets, generated 2-D sets, or filled by the
 * caller), the list of data sets known by name, and validation splits by index.
 *
 * A BpDataset holds n examples of one shape as float32 in host memory, ready to be gathered
 * into batches by a BpLoader (bp-loader.h):
 *   x (n, *example_shape)  inputs; how they were scaled depends on the kind of data:
 *                          images: scaled to [0, 1] (Fashion-MNIST v / 255, digits v / 16) and
 *                            normalised with one mean and std for all values: (v01 - mean) / std
 *                          tabular: standardised per column with the statistics of the TRAIN
 *                            split (both splits): (v - feature_mean[j]) / feature_std[j];
 *                            mean and std are then 0 and 1 (nothing more was applied)
 *                          synthetic (two-spirals, moons): the generated coordinates as they
 *                            are (mean 0, std 1)
 *   y (n)                  classification: the class index of each example, stored as a float;
 *                          regression: the target, standardised with the TRAIN split's
 *                          statistics: (target - target_mean) / target_std
 * Data sets are reference counted (atomically: a trainer thread may hold one). */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "bp-idx.h"
#include "bp-tensor.h"

G_BEGIN_DECLS

/* What the targets y are. */
typedef enum {
  BP_TASK_CLASSIFICATION, /* class indices 0 .. n_classes - 1 */
  BP_TASK_REGRESSION,     /* one real value per example; n_classes is 0 */
} BpTask;

typedef struct {
  char *name;                           /* "fashion-mnist", or the images file's base name */
  int64_t n;                            /* number of examples */
  int example_ndim;                     /* dimensions of one example, e.g. 3 */
  int64_t example_shape[BP_MAX_DIMS];   /* e.g. (1, 28, 28): channels, height, width */
  int64_t example_numel;                /* product of example_shape */
  float *x;                             /* n * example_numel inputs */
  float *y;                             /* n class indices (as floats) */
  int n_classes;
  char **class_names;                   /* n_classes names, NULL-terminated */
  float mean, std;                      /* the normalisation applied to all of x (images);
                                         * 0 and 1 when there is none or it is per column */
  BpTask task;
  /* tabular data: x[i][j] = (raw - feature_mean[j]) / feature_std[j], example_numel values
   * each, the mean and population std (ddof 0) of the train split's column (a constant
   * column: std 1); NULL for other data */
  float *feature_mean, *feature_std;
  /* regression: y = (target - target_mean) / target_std, the train split's mean and
   * population std of the target (map a prediction back: p * target_std + target_mean);
   * classification: 0 and 1 */
  double target_mean, target_std;
  /* a split carved from one file (scikit-learn's sets): the file's row (0-based, data rows
   * only) of each example; NULL for other data */
  int64_t *source_rows;
  int ref_count;                        /* private */
} BpDataset;

/* Options of the loaders; start from BP_DATASET_OPTIONS_INIT. */
typedef struct {
  int64_t limit;        /* load only the first `limit` examples; 0: all of them */
  gboolean custom_norm; /* TRUE: normalise with mean and std below instead of the data set's
                         * own statistics (Fashion-MNIST: 0.2860, 0.3530; other IDX files: 0, 1) */
  float mean, std;      /* with custom_norm; mean 0, std 1 keeps x in [0, 1] */
} BpDatasetOptions;

#define BP_DATASET_OPTIONS_INIT {0, FALSE, 0.0f, 1.0f}

/* Fashion-MNIST statistics of the training images, scaled to [0, 1]. */
#define BP_FASHION_MNIST_MEAN 0.2860f
#define BP_FASHION_MNIST_STD 0.3530f

/* The folder where data set packages install their files: $BP_DATASETS_DIR when set and not
 * empty, else the build's BP_DATASETS_DIR (/usr/share/datasets). */
const char *bp_datasets_dir (void);

/* The folder with scikit-learn's data files: $BP_SKLEARN_DATA_DIR when set and not empty,
 * else the build's sklearn_data_dir (/usr/lib/python3/dist-packages/sklearn/datasets/data). */
const char *bp_sklearn_data_dir (void);

/* ---- data sets by name ---- */

typedef enum {
  BP_DATASET_IMAGES,    /* fashion-mnist, digits */
  BP_DATASET_TABULAR,   /* iris, wine, breast-cancer, diabetes */
  BP_DATASET_SYNTHETIC, /* two-spirals, moons: generated, nothing to install */
} BpDatasetKind;

/* What a data set is, without loading it. */
typedef struct {
  const char *name;          /* as given to bp_dataset_load */
  const char *title;         /* for people: "scikit-learn digits (8x8 handwritten digits)" */
  BpDatasetKind kind;
  BpTask task;
  int64_t n_train, n_test;   /* examples of the whole splits */
  int example_ndim;
  int64_t example_shape[3];  /* (1, 28, 28), (1, 8, 8), (4), (2) ... */
  int n_classes;             /* 0 for regression */
  const char *package;       /* the Debian package that installs its files; NULL: generated */
} BpDatasetInfo;

/* An example shape as messages and listings write it: "(1, 8, 8)", "(2)" (free it). */
char *bp_example_shape_string (int ndim, const int64_t *shape);

/* The names bp_dataset_load knows, NULL-terminated: "fashion-mnist", "digits", "iris",
 * "wine", "breast-cancer", "diabetes", "two-spirals", "moons". (Text corpora are loaded by
 * bp-text.h.) */
const char *const *bp_dataset_names (void);
gboolean bp_dataset_is_known (const char *name);
/* The facts of a known data set; NULL for an unknown name. */
const BpDatasetInfo *bp_dataset_info (const char *name);
/* Whether a known data set's files are there (generated sets always are); FALSE with the
 * error bp_dataset_load would give (BP_DATA_ERROR_NOT_FOUND naming the file and package). */
gboolean bp_dataset_check_installed (const char *name, GError **error);
/* "images", "tabular", "synthetic"; "classification", "regression". */
const char *bp_dataset_kind_name (BpDatasetKind kind);
const char *bp_task_name (BpTask task);

/* Loads a data set by name and split ("train" or "test").
 *   fashion-mnist  the IDX files of dataset-fashion-mnist (60000 + 10000)
 *   digits, iris, wine, breast-cancer, diabetes
 *                  scikit-learn's files (python3-sklearn, bp_sklearn_data_dir ()); they have
 *                  no test split: a fixed 20% of the rows (n / 5) is "test", chosen by a
 *                  seeded shuffle with a fixed key, so the splits never overlap, together
 *                  cover the file, and are the same in every run (source_rows says which
 *                  rows). digits: (1, 8, 8) pixels / 16; the others: standardised columns,
 *                  diabetes a regression on its standardised target (see BpDataset)
 *   two-spirals, moons
 *                  generated 2-D points, 1000 per split (train and test from different fixed
 *                  seeds), balanced classes, the same in every run
 * An unknown name gives BP_DATA_ERROR_INVALID listing every known name. A missing data set
 * gives BP_DATA_ERROR_NOT_FOUND with a message that says where it looked and which Debian
 * package to install; a malformed file BP_DATA_ERROR_FORMAT naming the file and line.
 * options: limit takes the first examples of the split (the statistics stay the whole train
 * split's); custom_norm is for image data sets only (BP_DATA_ERROR_INVALID for others). */
BpDataset *bp_dataset_load (const char *name, const char *split, GError **error);
BpDataset *bp_dataset_load_full (const char *name, const char *split,
                                 const BpDatasetOptions *options, GError **error);

/* Loads an MNIST-format pair: images (n, ...) of any IDX type and labels (n) of integer
 * values >= 0. Unsigned-byte images are divided by 255; other types are taken as they are.
 * Example shapes: (n, H, W) images become (1, H, W); (n, F) gives (F); (n) gives (1); more
 * dimensions are kept as the file has them. n_classes is the largest label + 1 and the
 * class names are "0", "1", ... A labels file whose count differs from the images file gives
 * BP_DATA_ERROR_MISMATCH naming both files. */
BpDataset *bp_dataset_load_idx (const char *images_path, const char *labels_path,
                                const BpDatasetOptions *options, GError **error);

/* A zero-filled data set for the caller to fill (synthetic data, other file formats).
 * class_names may be NULL ("0", "1", ... are used). mean 0 and std 1 are recorded; the task is
 * classification (set ds->task = BP_TASK_REGRESSION with n_classes 0 for regression). */
BpDataset *bp_dataset_new (const char *name, int64_t n, int example_ndim,
                           const int64_t *example_shape, int n_classes,
                           const char *const *class_names, GError **error);

/* Generated 2-D sets of n points (x, y) with classes 0 and 1 alternating (balanced), from the
 * stateless generator with key seed (the engine's RNG is not used):
 *   two-spirals: two interleaved spirals, 1.5 turns each, radius up to 1, Gaussian noise of
 *                std `noise` on each coordinate (the named set: 0.02)
 *   moons:       scikit-learn's make_moons shapes (upper half circle around (0, 0), lower
 *                around (1, 0.5)) at uniform angles, noise std `noise` (the named set: 0.1) */
BpDataset *bp_dataset_two_spirals (int64_t n, uint64_t seed, double noise, GError **error);
BpDataset *bp_dataset_moons (int64_t n, uint64_t seed, double noise, GError **error);

BpDataset *bp_dataset_ref (BpDataset *ds);
void bp_dataset_unref (BpDataset *ds);

/* Mean and standard deviation of all values of x (over the whole set). */
void bp_dataset_stats (const BpDataset *ds, double *mean, double *std);

/* A set of example indices into a data set (a split, or the whole set). */
typedef struct {
  int64_t n;
  int64_t *idx;
} BpIndices;

/* 0, 1, ..., n - 1. */
BpIndices *bp_indices_new_range (int64_t n);
void bp_indices_free (BpIndices *indices);

/* Carves a validation split of n_val examples out of the data set: a seeded shuffle of the
 * indices (the same seed always gives the same split, whatever else used the engine's random
 * numbers), val gets the first n_val and train the rest, each returned in increasing order.
 * No example data is copied. 0 <= n_val <= ds->n. */
gboolean bp_dataset_split (const BpDataset *ds, int64_t n_val, uint64_t seed,
                           BpIndices **train, BpIndices **val, GError **error);

/* Seeded Fisher-Yates shuffle of a[0..n) from the stateless generator bp_rng_hash (key, .):
 * the result depends only on key (used by splits and the loader). */
void bp_shuffle_indices (int64_t *a, int64_t n, uint64_t key);

G_END_DECLS
