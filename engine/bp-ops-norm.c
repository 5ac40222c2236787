/* bp-ops-norm.c: batch norm and layer norm: shape checks, the tape, and the backend kernels. */
#include "bp-ops-norm.h"
#include "bp-backend.h"

/* The saved statistics of a norm node: one tensor holding mean then invstd. */
static void
saved_free (void *ctx)
{
  bp_tensor_unref (ctx);
}

static void
batch_norm_backward (BpNode *node)
{
  /* out (N,C,S) = (x - mean) * invstd * weight + bias */
  BpTensor *x = node->in[0], *weight = node->in[1], *bias = node->in[2], *out = node->out;
  BpTensor *saved = node->ctx;
  int64_t n = node->i[0], c = node->i[1], s = node->i[2];
  bool training = node->i[3] != 0;
  float *dx = x->requires_grad ? bp_tensor_grad (x) : NULL;
  float *dweight = weight && weight->requires_grad ? bp_tensor_grad (weight) : NULL;
  float *dbias = bias && bias->requires_grad ? bp_tensor_grad (bias) : NULL;
  if (!dx && !dweight && !dbias)
    return;
  bp_backend (out->device)->norm->batch_norm_backward (dx, dweight, dbias, out->grad, x->data,
                                                       saved->data, saved->data + c,
                                                       weight ? weight->data : NULL, n, c, s,
                                                       training);
}

static bool
is_channel_vector (const BpTensor *t, int64_t c, BpDevice device)
{
  return !t || (t->ndim == 1 && t->shape[0] == c && t->device == device);
}

BpTensor *
bp_batch_norm (BpTensor *x, BpTensor *weight, BpTensor *bias, BpTensor *running_mean,
               BpTensor *running_var, bool training, float momentum, float eps)
{
  char sx[64];
  if (x->ndim < 2 || x->ndim > 4) {
    bp_set_error (BP_ERR_INVALID, "batch_norm: input %s is not (N,C), (N,C,L) or (N,C,H,W)",
                  bp_shape_str (x, sx, sizeof sx));
    return NULL;
  }
  int64_t n = x->shape[0], c = x->shape[1], s = x->numel / (n * c > 0 ? n * c : 1);
  if (!is_channel_vector (weight, c, x->device) || !is_channel_vector (bias, c, x->device) ||
      !is_channel_vector (running_mean, c, x->device) ||
      !is_channel_vector (running_var, c, x->device)) {
    bp_set_error (BP_ERR_INVALID,
                  "batch_norm: weight, bias and running statistics of input %s must have shape "
                  "[%lld] on the input's device",
                  bp_shape_str (x, sx, sizeof sx), (long long) c);
    return NULL;
  }
  if (!running_mean != !running_var) {
    bp_set_error (BP_ERR_INVALID, "batch_norm: running_mean and running_var must both be given "
                                  "or both be NULL");
    return NULL;
  }
  if (!training && !running_mean) {
    bp_set_error (BP_ERR_INVALID, "batch_norm: eval mode needs the running statistics");
    return NULL;
  }
  if (training && n * s <= 1) {
    bp_set_error (BP_ERR_INVALID,
                  "batch_norm: expected more than 1 value per channel when training, got input %s",
                  bp_shape_str (x, sx, sizeof sx));
    return NULL;
  }
  if (!(eps >= 0.0f) || !(momentum >= 0.0f && momentum <= 1.0f)) {
    bp_set_error (BP_ERR_INVALID, "batch_norm: eps %g must be >= 0 and momentum %g in [0, 1]",
                  (double) eps, (double) momentum);
    return NULL;
  }

  BpTensor *out = bp_tensor_new_like (x);
  BpTensor *saved = bp_tensor_new_on (x->device, 1, (int64_t[]){2 * c});
  if (!out || !saved) {
    bp_tensor_unref (out);
    bp_tensor_unref (saved);
    return NULL;
  }
  bp_backend (x->device)->norm->batch_norm_forward (
      out->data, saved->data, saved->data + c, running_mean ? running_mean->data : NULL,
      running_var ? running_var->data : NULL, x->data, weight ? weight->data : NULL,
      bias ? bias->data : NULL, n, c, s, training, momentum, eps);

  BpTensor *in[] = {x, weight, bias};
  if (bp_needs_grad (3, in)) {
    BpNode *node = bp_tape_record ("batch_norm", batch_norm_backward, out, 3, in);
    node->ctx = saved;
    node->ctx_free = saved_free;
    node->i[0] = n;
    node->i[1] = c;
    node->i[2] = s;
    node->i[3] = training;
  } else {
    bp_tensor_unref (saved);
  }
  return out;
}

static void
layer_norm_backward (BpNode *node)
{
  /* out (R,D) = (x - mean) * invstd * weight + bias, per row */
  BpTensor *x = node->in[0], *weight = node->in[1], *bias = node->in[2], *out = node->out;
  BpTensor *saved = node->ctx;
  int64_t rows = node->i[0], d = node->i[1];
  float *dx = x->requires_grad ? bp_tensor_grad (x) : NULL;
  float *dweight = weight && weight->requires_grad ? bp_tensor_grad (weight) : NULL;
  float *dbias = bias && bias->requires_grad ? bp_tensor_grad (bias) : NULL;
  if (!dx && !dweight && !dbias)
    return;
  bp_backend (out->device)->norm->layer_norm_backward (dx, dweight, dbias, out->grad, x->data,
                                                       saved->data, saved->data + rows,
                                                       weight ? weight->data : NULL, rows, d);
}

/* Whether t (or NULL) has exactly the trailing `k` dimensions of x. */
static bool
is_trailing_shape (const BpTensor *t, const BpTensor *x, int k)
{
  if (!t)
    return true;
  if (t->ndim != k || t->device != x->device)
    return false;
  for (int d = 0; d < k; d++)
    if (t->shape[d] != x->shape[x->ndim - k + d])
      return false;
  return true;
}

BpTensor *
bp_layer_norm (BpTensor *x, int normalized_dims, BpTensor *weight, BpTensor *bias, float eps)
{
  char sx[64], sw[64];
  if (normalized_dims < 1 || normalized_dims > x->ndim) {
    bp_set_error (BP_ERR_INVALID, "layer_norm: cannot normalise the last %d dimensions of %s",
                  normalized_dims, bp_shape_str (x, sx, sizeof sx));
    return NULL;
  }
  if (!is_trailing_shape (weight, x, normalized_dims) ||
      !is_trailing_shape (bias, x, normalized_dims)) {
    const BpTensor *bad = is_trailing_shape (weight, x, normalized_dims) ? bias : weight;
    bp_set_error (BP_ERR_INVALID,
                  "layer_norm: weight/bias %s does not match the last %d dimensions of %s",
                  bp_shape_str (bad, sw, sizeof sw), normalized_dims,
                  bp_shape_str (x, sx, sizeof sx));
    return NULL;
  }
  int64_t d = 1;
  for (int k = x->ndim - normalized_dims; k < x->ndim; k++)
    d *= x->shape[k];
  if (d == 0 || !(eps >= 0.0f)) {
    bp_set_error (BP_ERR_INVALID, "layer_norm: nothing to normalise in %s (or bad eps %g)",
                  bp_shape_str (x, sx, sizeof sx), (double) eps);
    return NULL;
  }
  int64_t rows = x->numel / d;

  BpTensor *out = bp_tensor_new_like (x);
  BpTensor *saved = bp_tensor_new_on (x->device, 1, (int64_t[]){2 * rows});
  if (!out || !saved) {
    bp_tensor_unref (out);
    bp_tensor_unref (saved);
    return NULL;
  }
  bp_backend (x->device)->norm->layer_norm_forward (out->data, saved->data, saved->data + rows,
                                                    x->data, weight ? weight->data : NULL,
                                                    bias ? bias->data : NULL, rows, d, eps);

  BpTensor *in[] = {x, weight, bias};
  if (bp_needs_grad (3, in)) {
    BpNode *node = bp_tape_record ("layer_norm", layer_norm_backward, out, 3, in);
    node->ctx = saved;
    node->ctx_free = saved_free;
    node->i[0] = rows;
    node->i[1] = d;
  } else {
    bp_tensor_unref (saved);
  }
  return out;
}
