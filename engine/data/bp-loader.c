/* data/bp-loader.c: seeded per-epoch shuffling and gathering of mini-batches into reused
 * tensors. */
#include "bp-loader.h"

#include <string.h>

#include "bp-rng.h"

struct BpLoader {
  BpDataset *ds;
  int64_t n;          /* examples per epoch */
  int64_t *subset;    /* (n) the data set indices this loader visits, in the given order */
  int64_t *order;     /* (n) this epoch's order */
  int64_t batch_size;
  gboolean shuffle, drop_last;
  uint64_t seed;
  int64_t epoch;      /* current (or next) epoch */
  gboolean in_epoch;  /* order is set up and pos counts into it */
  int64_t pos;        /* examples of this epoch handed out */
  int64_t batch_start, batch_len; /* the last batch returned, within order */
  BpTensor *x_full, *y_full; /* (batch_size, ...) and (batch_size) */
  BpTensor *x_last, *y_last; /* the smaller last batch, NULL until needed */
};

BpLoader *
bp_loader_new (BpDataset *ds, const BpIndices *subset, const BpLoaderOptions *options,
               GError **error)
{
  BpLoaderOptions opts = BP_LOADER_OPTIONS_INIT;
  if (options)
    opts = *options;
  if (opts.batch_size < 1) {
    g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID,
                 "loader over '%s': batch size %lld (must be at least 1)", ds->name,
                 (long long) opts.batch_size);
    return NULL;
  }
  int64_t n = subset ? subset->n : ds->n;
  if (subset) {
    for (int64_t i = 0; i < n; i++) {
      if (subset->idx[i] < 0 || subset->idx[i] >= ds->n) {
        g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID,
                     "loader over '%s': index %lld at position %lld is outside the %lld "
                     "examples",
                     ds->name, (long long) subset->idx[i], (long long) i, (long long) ds->n);
        return NULL;
      }
    }
  }
  /* The batch tensor is (B, *example_shape); B need not exceed the number of examples. */
  int64_t b = MAX (MIN (opts.batch_size, n), 1);
  int64_t shape[BP_MAX_DIMS];
  shape[0] = b;
  memcpy (shape + 1, ds->example_shape, (size_t) ds->example_ndim * sizeof (int64_t));
  BpTensor *x = bp_tensor_new (ds->example_ndim + 1, shape);
  BpTensor *y = bp_tensor_new_1d (b);
  if (!x || !y) {
    g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_NOMEM, "loader over '%s': %s", ds->name,
                 bp_last_error ());
    bp_tensor_unref (x);
    bp_tensor_unref (y);
    return NULL;
  }

  BpLoader *l = g_new0 (BpLoader, 1);
  l->ds = bp_dataset_ref (ds);
  l->n = n;
  l->subset = g_new (int64_t, MAX (n, 1));
  l->order = g_new (int64_t, MAX (n, 1));
  for (int64_t i = 0; i < n; i++)
    l->subset[i] = subset ? subset->idx[i] : i;
  l->batch_size = opts.batch_size;
  l->shuffle = opts.shuffle;
  l->drop_last = opts.drop_last;
  l->seed = opts.seed;
  l->x_full = x;
  l->y_full = y;
  return l;
}

void
bp_loader_free (BpLoader *l)
{
  if (!l)
    return;
  bp_tensor_unref (l->x_full);
  bp_tensor_unref (l->y_full);
  bp_tensor_unref (l->x_last);
  bp_tensor_unref (l->y_last);
  g_free (l->subset);
  g_free (l->order);
  bp_dataset_unref (l->ds);
  g_free (l);
}

static void
start_epoch (BpLoader *l)
{
  memcpy (l->order, l->subset, (size_t) l->n * sizeof (int64_t));
  if (l->shuffle)
    bp_shuffle_indices (l->order, l->n, bp_rng_hash (l->seed, (uint64_t) l->epoch));
  l->pos = 0;
  l->batch_start = l->batch_len = 0;
  l->in_epoch = TRUE;
}

/* A batch tensor of `b` rows that nobody else holds: *t when it is free, else a new one (the
 * caller kept a reference to the old one, or made it part of a graph). */
static BpTensor *
batch_tensor (BpTensor **t, int64_t b, const BpDataset *ds, gboolean is_x)
{
  BpTensor *old = *t;
  if (old && old->refcount == 1 && !old->node && !old->requires_grad && !old->grad)
    return old;
  int64_t shape[BP_MAX_DIMS];
  shape[0] = b;
  memcpy (shape + 1, ds->example_shape, (size_t) ds->example_ndim * sizeof (int64_t));
  BpTensor *fresh = is_x ? bp_tensor_new (ds->example_ndim + 1, shape) : bp_tensor_new_1d (b);
  if (!fresh)
    return NULL;
  bp_tensor_unref (old);
  *t = fresh;
  return fresh;
}

gboolean
bp_loader_next (BpLoader *l, BpTensor **x, BpTensor **y)
{
  *x = *y = NULL;
  if (!l->in_epoch)
    start_epoch (l);
  int64_t left = l->n - l->pos;
  if (left == 0 || (l->drop_last && left < l->batch_size)) {
    l->in_epoch = FALSE;
    l->epoch++;
    l->batch_len = 0;
    return FALSE;
  }
  int64_t b = MIN (l->batch_size, left);
  gboolean full = b == l->x_full->shape[0];
  BpTensor *bx = batch_tensor (full ? &l->x_full : &l->x_last, b, l->ds, TRUE);
  BpTensor *by = batch_tensor (full ? &l->y_full : &l->y_last, b, l->ds, FALSE);
  if (!bx || !by)
    return FALSE;

  /* x (b, *example_shape) gathered row by row, y (b) */
  const int64_t *rows = l->order + l->pos;
  size_t row_bytes = (size_t) l->ds->example_numel * sizeof (float);
  for (int64_t k = 0; k < b; k++) {
    memcpy (bx->data + k * l->ds->example_numel, l->ds->x + rows[k] * l->ds->example_numel,
            row_bytes);
    by->data[k] = l->ds->y[rows[k]];
  }
  l->batch_start = l->pos;
  l->batch_len = b;
  l->pos += b;
  *x = bx;
  *y = by;
  return TRUE;
}

const int64_t *
bp_loader_batch_indices (const BpLoader *l, int64_t *n)
{
  *n = l->batch_len;
  return l->order + l->batch_start;
}

int64_t
bp_loader_epoch (const BpLoader *l)
{
  return l->epoch;
}

void
bp_loader_set_epoch (BpLoader *l, int64_t epoch)
{
  l->epoch = MAX (epoch, 0);
  l->in_epoch = FALSE;
  l->batch_len = 0;
}

int64_t
bp_loader_n_examples (const BpLoader *l)
{
  return l->n;
}

int64_t
bp_loader_n_batches (const BpLoader *l)
{
  return l->drop_last ? l->n / l->batch_size : (l->n + l->batch_size - 1) / l->batch_size;
}

BpDataset *
bp_loader_dataset (const BpLoader *l)
{
  return l->ds;
}
