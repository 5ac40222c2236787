/* bp-dataset.h: in-memory classification data sets (Fashion-MNIST, any MNIST-format IDX pair,
 * or filled by the caller) and validation splits by index.
 *
 * A BpDataset holds n examples of one shape as float32 in host memory, ready to be gathered
 * into batches by a BpLoader (bp-loader.h):
 *   x (n, *example_shape)  inputs, scaled to [0, 1] and normalised: (v / 255 - mean) / std
 *   y (n)                  class index of each example, stored as a float
 * Data sets are reference counted (atomically: a trainer thread may hold one). */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "bp-idx.h"
#include "bp-tensor.h"

G_BEGIN_DECLS

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
  float mean, std;                      /* the normalisation applied to x */
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

/* Loads an installed data set by name ("fashion-mnist") and split ("train" or "test").
 * A missing data set gives BP_DATA_ERROR_NOT_FOUND with a message that says where it looked
 * and which Debian package to install. */
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
 * class_names may be NULL ("0", "1", ... are used). mean 0 and std 1 are recorded. */
BpDataset *bp_dataset_new (const char *name, int64_t n, int example_ndim,
                           const int64_t *example_shape, int n_classes,
                           const char *const *class_names, GError **error);

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
