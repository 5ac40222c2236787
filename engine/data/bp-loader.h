/* bp-loader.h: mini-batches over a data set (or a subset of its indices), shuffled per epoch
 * with a seed, gathered into reused batch tensors.
 *
 *   BpLoaderOptions o = BP_LOADER_OPTIONS_INIT;
 *   o.batch_size = 128; o.shuffle = TRUE; o.seed = 7;
 *   BpLoader *l = bp_loader_new (ds, split_train, &o, &error);
 *   BpTensor *x, *y;
 *   for (int epoch = 0; epoch < 10; epoch++)
 *     while (bp_loader_next (l, &x, &y))
 *       ... x (B, *example_shape), y (B) ...
 *
 * Each epoch visits every index of the subset exactly once (drop_last leaves out the final
 * partial batch). The order of epoch e depends only on (seed, e): runs repeat bit for bit and
 * a resumed run continues with bp_loader_set_epoch. Only the rows of the current batch are
 * copied (one memcpy per example). */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "bp-dataset.h"
#include "bp-tensor.h"

G_BEGIN_DECLS

typedef struct BpLoader BpLoader;

/* Options; start from BP_LOADER_OPTIONS_INIT. */
typedef struct {
  int64_t batch_size; /* examples per batch, >= 1 */
  gboolean shuffle;   /* a new seeded order every epoch; FALSE: the subset's order */
  gboolean drop_last; /* leave out the last batch when it is smaller than batch_size */
  uint64_t seed;      /* the shuffle seed */
} BpLoaderOptions;

#define BP_LOADER_OPTIONS_INIT {32, FALSE, FALSE, 0}

/* A loader over ds (it takes a reference) restricted to subset (copied; NULL: every
 * example). Indices outside the data set give BP_DATA_ERROR_INVALID. */
BpLoader *bp_loader_new (BpDataset *ds, const BpIndices *subset, const BpLoaderOptions *options,
                         GError **error);
void bp_loader_free (BpLoader *loader);

/* Fills the next batch of the current epoch: *x (B, *example_shape) and *y (B) class indices,
 * B = batch_size except for a smaller last batch. The tensors belong to the loader and are
 * overwritten by the next call (take a reference to keep one: the loader then gathers into a
 * fresh tensor instead). Returns FALSE, with *x and *y NULL, at the end of the epoch; the
 * following call starts the next epoch. On a tensor allocation failure it also returns FALSE
 * and bp_last_error () says why. */
gboolean bp_loader_next (BpLoader *loader, BpTensor **x, BpTensor **y);

/* The data set indices of the examples in the batch last returned by bp_loader_next. */
const int64_t *bp_loader_batch_indices (const BpLoader *loader, int64_t *n);

/* The epoch that bp_loader_next is in (or starts next), counting from 0. */
int64_t bp_loader_epoch (const BpLoader *loader);
/* Restarts at the beginning of `epoch` (its order is the one a run from epoch 0 would give). */
void bp_loader_set_epoch (BpLoader *loader, int64_t epoch);

/* Examples per epoch (the subset size) and batches per epoch (counting drop_last). */
int64_t bp_loader_n_examples (const BpLoader *loader);
int64_t bp_loader_n_batches (const BpLoader *loader);
BpDataset *bp_loader_dataset (const BpLoader *loader);

G_END_DECLS
