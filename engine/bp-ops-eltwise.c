/* bp-ops-eltwise.c: front-ends and backwards of the elementwise family: shape checks, the tape,
 * and dispatch of the numeric work to the backend's eltwise kernels. */
#include "bp-ops-eltwise.h"
#include "bp-backend.h"
#include "bp-device-step.h"
#include "bp-rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const BpEltwiseKernels *
kernels (const BpTensor *t)
{
  return bp_backend (t->device)->eltwise;
}

/* ---- same-shape arithmetic ---- */

static bool
check_same (const char *op, const BpTensor *a, const BpTensor *b)
{
  char sa[64], sb[64];
  if (bp_tensor_same_shape (a, b) && a->device == b->device)
    return true;
  bp_set_error (BP_ERR_INVALID, "%s: shapes %s and %s differ%s", op,
                bp_shape_str (a, sa, sizeof sa), bp_shape_str (b, sb, sizeof sb),
                a->device != b->device ? " (or live on different devices)" : "");
  return false;
}

static void
add_backward (BpNode *node)
{
  /* out = a + alpha * b: da += dout, db += alpha * dout */
  BpTensor *a = node->in[0], *b = node->in[1], *out = node->out;
  const BpBackend *be = bp_backend (out->device);
  if (a->requires_grad)
    be->axpy (out->numel, 1.0f, out->grad, bp_tensor_grad (a));
  if (b->requires_grad)
    be->axpy (out->numel, (float) node->f[0], out->grad, bp_tensor_grad (b));
}

static BpTensor *
add_op (const char *op, BpTensor *a, BpTensor *b, float alpha)
{
  if (!check_same (op, a, b))
    return NULL;
  BpTensor *out = bp_tensor_new_like (a);
  if (!out)
    return NULL;
  kernels (a)->add (out->data, a->data, b->data, alpha, a->numel);
  BpTensor *in[] = {a, b};
  if (bp_needs_grad (2, in))
    bp_tape_record (op, add_backward, out, 2, in)->f[0] = alpha;
  return out;
}

BpTensor *
bp_add (BpTensor *a, BpTensor *b)
{
  return add_op ("add", a, b, 1.0f);
}

BpTensor *
bp_sub (BpTensor *a, BpTensor *b)
{
  return add_op ("sub", a, b, -1.0f);
}

static void
mul_backward (BpNode *node)
{
  /* out = a * b: da += dout * b, db += dout * a */
  BpTensor *a = node->in[0], *b = node->in[1], *out = node->out;
  const BpEltwiseKernels *k = kernels (out);
  if (a->requires_grad)
    k->mul_backward (bp_tensor_grad (a), out->grad, b->data, out->numel);
  if (b->requires_grad)
    k->mul_backward (bp_tensor_grad (b), out->grad, a->data, out->numel);
}

BpTensor *
bp_mul (BpTensor *a, BpTensor *b)
{
  if (!check_same ("mul", a, b))
    return NULL;
  BpTensor *out = bp_tensor_new_like (a);
  if (!out)
    return NULL;
  kernels (a)->mul (out->data, a->data, b->data, a->numel);
  BpTensor *in[] = {a, b};
  if (bp_needs_grad (2, in))
    bp_tape_record ("mul", mul_backward, out, 2, in);
  return out;
}

static void
scale_backward (BpNode *node)
{
  /* out = s * x: dx += s * dout */
  BpTensor *x = node->in[0], *out = node->out;
  bp_backend (out->device)->axpy (out->numel, (float) node->f[0], out->grad, bp_tensor_grad (x));
}

BpTensor *
bp_scale (BpTensor *x, float s)
{
  BpTensor *out = bp_tensor_new_like (x);
  if (!out)
    return NULL;
  kernels (x)->scale (out->data, x->data, s, x->numel);
  if (bp_needs_grad (1, &x))
    bp_tape_record ("scale", scale_backward, out, 1, &x)->f[0] = s;
  return out;
}

/* ---- activations ---- */

static void
activation_backward (BpNode *node)
{
  /* out = act (x): dx += dout * act' (x); i[0] the activation, f[0] the leaky slope */
  BpTensor *x = node->in[0], *out = node->out;
  kernels (out)->activation_backward (bp_tensor_grad (x), out->grad, x->data, out->data,
                                      out->numel, (BpActivation) node->i[0], (float) node->f[0]);
}

static BpTensor *
activation (const char *op, BpTensor *x, BpActivation act, float slope)
{
  BpTensor *out = bp_tensor_new_like (x);
  if (!out)
    return NULL;
  kernels (x)->activation (out->data, x->data, x->numel, act, slope);
  if (bp_needs_grad (1, &x)) {
    BpNode *node = bp_tape_record (op, activation_backward, out, 1, &x);
    node->i[0] = act;
    node->f[0] = slope;
  }
  return out;
}

BpTensor *
bp_relu (BpTensor *x)
{
  return activation ("relu", x, BP_ACT_RELU, 0.0f);
}

BpTensor *
bp_leaky_relu (BpTensor *x, float negative_slope)
{
  return activation ("leaky_relu", x, BP_ACT_LEAKY_RELU, negative_slope);
}

BpTensor *
bp_gelu (BpTensor *x)
{
  return activation ("gelu", x, BP_ACT_GELU, 0.0f);
}

BpTensor *
bp_tanh (BpTensor *x)
{
  return activation ("tanh", x, BP_ACT_TANH, 0.0f);
}

BpTensor *
bp_sigmoid (BpTensor *x)
{
  return activation ("sigmoid", x, BP_ACT_SIGMOID, 0.0f);
}

/* ---- dropout ---- */

static void
copy_backward (BpNode *node)
{
  /* out has x's values (maybe in another shape): dx += dout */
  BpTensor *x = node->in[0], *out = node->out;
  bp_backend (out->device)->axpy (out->numel, 1.0f, out->grad, bp_tensor_grad (x));
}

/* A copy of x in another shape (same numel), recorded as `op`. */
static BpTensor *
copy_as (const char *op, BpTensor *x, int ndim, const int64_t *shape)
{
  BpTensor *out = bp_tensor_new_on (x->device, ndim, shape);
  if (!out)
    return NULL;
  if (bp_backend (x->device)->copy (out->data, x->data, (size_t) x->numel * sizeof (float)) !=
      BP_OK) {
    bp_tensor_unref (out);
    return NULL;
  }
  if (bp_needs_grad (1, &x))
    bp_tape_record (op, copy_backward, out, 1, &x);
  return out;
}

static void
dropout_backward (BpNode *node)
{
  /* out = mask * x / (1 - p): dx += mask * dout / (1 - p), the mask recomputed from the key */
  BpTensor *x = node->in[0], *out = node->out;
  kernels (out)->dropout_backward (bp_tensor_grad (x), out->grad, out->numel, (float) node->f[0],
                                   (uint64_t) node->i[0]);
}

BpTensor *
bp_dropout (BpTensor *x, float p, bool training)
{
  if (!(p >= 0.0f && p < 1.0f)) {
    bp_set_error (BP_ERR_INVALID, "dropout: probability %g is not in [0, 1)", (double) p);
    return NULL;
  }
  if (!training || p == 0.0f)
    return copy_as ("dropout", x, x->ndim, x->shape);
  BpTensor *out = bp_tensor_new_like (x);
  if (!out)
    return NULL;
  uint64_t key = bp_rng_u64 ();
  kernels (x)->dropout (out->data, x->data, x->numel, p, key);
  if (bp_needs_grad (1, &x)) {
    BpNode *node = bp_tape_record ("dropout", dropout_backward, out, 1, &x);
    node->f[0] = p;
    node->i[0] = (int64_t) key;
  }
  return out;
}

/* ---- shapes ---- */

BpTensor *
bp_reshape (BpTensor *x, int ndim, const int64_t *shape)
{
  char sx[64];
  if (ndim < 0 || ndim > BP_MAX_DIMS) {
    bp_set_error (BP_ERR_INVALID, "reshape: %d dimensions requested for %s (at most %d)", ndim,
                  bp_shape_str (x, sx, sizeof sx), BP_MAX_DIMS);
    return NULL;
  }
  /* the new shape as text, for messages */
  char want[160];
  size_t off = (size_t) snprintf (want, sizeof want, "[");
  for (int d = 0; d < ndim && off < sizeof want; d++)
    off += (size_t) snprintf (want + off, sizeof want - off, d ? ", %lld" : "%lld",
                              (long long) shape[d]);
  if (off < sizeof want)
    snprintf (want + off, sizeof want - off, "]");

  int64_t full[BP_MAX_DIMS];
  int infer = -1;
  int64_t known = 1;
  for (int d = 0; d < ndim; d++) {
    full[d] = shape[d];
    if (shape[d] == -1 && infer < 0) {
      infer = d;
      continue;
    }
    if (shape[d] < 0 || (shape[d] > 0 && known > INT64_MAX / shape[d])) {
      bp_set_error (BP_ERR_INVALID, "reshape: cannot reshape %s to %s (%s)",
                    bp_shape_str (x, sx, sizeof sx), want,
                    shape[d] == -1 ? "only one dimension may be -1" : "bad dimension");
      return NULL;
    }
    known *= shape[d];
  }
  if (infer >= 0) {
    if (known == 0 || x->numel % known != 0) {
      bp_set_error (BP_ERR_INVALID, "reshape: cannot reshape %s (%lld elements) to %s",
                    bp_shape_str (x, sx, sizeof sx), (long long) x->numel, want);
      return NULL;
    }
    full[infer] = x->numel / known;
    known = x->numel;
  }
  if (known != x->numel) {
    bp_set_error (BP_ERR_INVALID, "reshape: cannot reshape %s (%lld elements) to %s",
                  bp_shape_str (x, sx, sizeof sx), (long long) x->numel, want);
    return NULL;
  }
  return copy_as ("reshape", x, ndim, full);
}

BpTensor *
bp_flatten (BpTensor *x, int start_dim)
{
  char sx[64];
  if (x->ndim == 0)
    return copy_as ("flatten", x, 1, (int64_t[]){1});
  int d0 = start_dim < 0 ? start_dim + x->ndim : start_dim;
  if (d0 < 0 || d0 >= x->ndim) {
    bp_set_error (BP_ERR_INVALID, "flatten: start_dim %d is out of range for %s", start_dim,
                  bp_shape_str (x, sx, sizeof sx));
    return NULL;
  }
  int64_t shape[BP_MAX_DIMS];
  int64_t rest = 1;
  for (int d = 0; d < x->ndim; d++) {
    if (d < d0)
      shape[d] = x->shape[d];
    else
      rest *= x->shape[d];
  }
  shape[d0] = rest;
  return copy_as ("flatten", x, d0 + 1, shape);
}

/* concat keeps every input (there may be more than a node holds) with the column offsets. */
typedef struct {
  int n;
  int64_t outer, out_inner;
  BpTensor **xs;
  int64_t *inner, *offset;
} ConcatCtx;

static void
concat_ctx_free (void *p)
{
  ConcatCtx *c = p;
  for (int k = 0; k < c->n; k++)
    bp_tensor_unref (c->xs[k]);
  free (c->xs);
  free (c->inner);
  free (c->offset);
  free (c);
}

static ConcatCtx *
concat_ctx_new (int n)
{
  ConcatCtx *c = calloc (1, sizeof *c);
  if (c) {
    c->n = n;
    c->xs = calloc ((size_t) n, sizeof *c->xs);
    c->inner = calloc ((size_t) n, sizeof *c->inner);
    c->offset = calloc ((size_t) n, sizeof *c->offset);
  }
  if (!c || !c->xs || !c->inner || !c->offset) {
    if (c) {
      c->n = 0;
      concat_ctx_free (c);
    }
    bp_set_error (BP_ERR_NOMEM, "concat: out of memory");
    return NULL;
  }
  return c;
}

static void
concat_backward (BpNode *node)
{
  /* out (outer, sum inner_k): dx_k (outer, inner_k) += dout[:, offset_k:offset_k+inner_k] */
  ConcatCtx *c = node->ctx;
  BpTensor *out = node->out;
  for (int k = 0; k < c->n; k++)
    if (c->xs[k]->requires_grad)
      kernels (out)->concat_backward (bp_tensor_grad (c->xs[k]), out->grad, c->outer, c->inner[k],
                                      c->out_inner, c->offset[k]);
}

BpTensor *
bp_concat (int n, BpTensor *const *xs, int dim)
{
  char s0[64], sk[64];
  if (n < 1) {
    bp_set_error (BP_ERR_INVALID, "concat: no inputs");
    return NULL;
  }
  const BpTensor *x0 = xs[0];
  int d = dim < 0 ? dim + x0->ndim : dim;
  if (d < 0 || d >= x0->ndim) {
    bp_set_error (BP_ERR_INVALID, "concat: dim %d is out of range for %s", dim,
                  bp_shape_str (x0, s0, sizeof s0));
    return NULL;
  }
  int64_t shape[BP_MAX_DIMS];
  memcpy (shape, x0->shape, sizeof shape);
  shape[d] = 0;
  for (int k = 0; k < n; k++) {
    const BpTensor *x = xs[k];
    bool ok = x->ndim == x0->ndim && x->device == x0->device;
    for (int j = 0; ok && j < x0->ndim; j++)
      ok = j == d || x->shape[j] == x0->shape[j];
    if (!ok) {
      bp_set_error (BP_ERR_INVALID, "concat: input %d has shape %s, which does not fit %s along "
                    "dim %d", k, bp_shape_str (x, sk, sizeof sk),
                    bp_shape_str (x0, s0, sizeof s0), dim);
      return NULL;
    }
    shape[d] += x->shape[d];
  }
  /* every tensor as (outer, inner): outer the dims before d, inner dim d and the ones after */
  int64_t outer = 1, tail = 1;
  for (int j = 0; j < d; j++)
    outer *= x0->shape[j];
  for (int j = d + 1; j < x0->ndim; j++)
    tail *= x0->shape[j];
  BpTensor *out = bp_tensor_new_on (x0->device, x0->ndim, shape);
  if (!out)
    return NULL;
  int64_t out_inner = shape[d] * tail, offset = 0;
  for (int k = 0; k < n; k++) {
    int64_t inner = xs[k]->shape[d] * tail;
    kernels (out)->concat_copy (out->data, xs[k]->data, outer, inner, out_inner, offset);
    offset += inner;
  }
  if (bp_needs_grad (n, xs)) {
    ConcatCtx *c = concat_ctx_new (n);
    if (!c) {
      bp_tensor_unref (out);
      return NULL;
    }
    c->outer = outer;
    c->out_inner = out_inner;
    for (int k = 0; k < n; k++) {
      c->xs[k] = bp_tensor_ref (xs[k]);
      c->inner[k] = xs[k]->shape[d] * tail;
      c->offset[k] = k ? c->offset[k - 1] + c->inner[k - 1] : 0;
    }
    /* the node lists as many inputs as it holds; the context keeps them all */
    int n_node = n < BP_NODE_MAX_INPUTS ? n : BP_NODE_MAX_INPUTS;
    BpNode *node = bp_tape_record ("concat", concat_backward, out, n_node, xs);
    node->ctx = c;
    node->ctx_free = concat_ctx_free;
  }
  return out;
}

/* ---- embedding ---- */

static void
embedding_backward (BpNode *node)
{
  /* out (n, D) = weight (V, D)[indices (n)]: dweight[indices[i]] += dout[i] */
  BpTensor *weight = node->in[0], *indices = node->in[1], *out = node->out;
  if (weight->requires_grad)
    kernels (out)->embedding_backward (bp_tensor_grad (weight), out->grad, indices->data,
                                       indices->numel, weight->shape[0], weight->shape[1]);
}

static _Thread_local bool indices_trusted;

bool
bp_set_indices_trusted (bool trusted)
{
  bool was = indices_trusted;
  indices_trusted = trusted;
  return was;
}

BpTensor *
bp_embedding (BpTensor *weight, BpTensor *indices)
{
  char sw[64], si[64];
  if (weight->ndim != 2 || indices->ndim + 1 > BP_MAX_DIMS || weight->device != indices->device) {
    bp_set_error (BP_ERR_INVALID, "embedding: weight %s (needs (V, D)) does not fit indices %s",
                  bp_shape_str (weight, sw, sizeof sw), bp_shape_str (indices, si, sizeof si));
    return NULL;
  }
  int64_t v = weight->shape[0], dim = weight->shape[1];
  int64_t shape[BP_MAX_DIMS];
  memcpy (shape, indices->shape, (size_t) indices->ndim * sizeof shape[0]);
  shape[indices->ndim] = dim;
  BpTensor *out = bp_tensor_new_on (weight->device, indices->ndim + 1, shape);
  if (!out)
    return NULL;
  int64_t bad = -1;
  if (indices_trusted) {
    kernels (weight)->gather_rows (out->data, weight->data, indices->data, indices->numel, dim);
  } else {
    bp_device_step_note ("the embedding checks its indices on the host");
    bad = kernels (weight)->embedding (out->data, weight->data, indices->data, indices->numel,
                                       v, dim);
  }
  if (bad >= 0) {
    float value = NAN;
    bp_backend (indices->device)->download (&value, indices->data + bad, sizeof value);
    bp_set_error (BP_ERR_INVALID, "embedding: index %g at position %lld of indices %s is not an "
                  "integer in [0, %lld) (weight %s)", (double) value, (long long) bad,
                  bp_shape_str (indices, si, sizeof si), (long long) v,
                  bp_shape_str (weight, sw, sizeof sw));
    bp_tensor_unref (out);
    return NULL;
  }
  BpTensor *in[] = {weight, indices};
  if (bp_needs_grad (1, in))
    bp_tape_record ("embedding", embedding_backward, out, 2, in);
  return out;
}

BpTensor *
bp_gather_rows (BpTensor *src, BpTensor *indices)
{
  char ss[64], si[64];
  if (src->ndim != 2 || indices->ndim != 1 || src->device != indices->device ||
      src->requires_grad) {
    bp_set_error (BP_ERR_INVALID,
                  "gather_rows: source %s (needs (V, D), no gradient) does not fit indices %s",
                  bp_shape_str (src, ss, sizeof ss), bp_shape_str (indices, si, sizeof si));
    return NULL;
  }
  int64_t n = indices->shape[0], d = src->shape[1];
  BpTensor *out = bp_tensor_new_on (src->device, 2, (int64_t[]){n, d});
  if (out && n > 0 && d > 0)
    kernels (src)->gather_rows (out->data, src->data, indices->data, n, d);
  return out;
}

/* ---- sums ---- */

static void
sum_backward (BpNode *node)
{
  /* out (1) = scale * sum (x): dx += scale * dout[0] */
  BpTensor *x = node->in[0], *out = node->out;
  kernels (out)->sum_backward (bp_tensor_grad (x), out->grad, x->numel, (float) node->f[0]);
}

static BpTensor *
sum_op (const char *op, BpTensor *x, float scale)
{
  BpTensor *out = bp_tensor_new_on (x->device, 1, (int64_t[]){1});
  if (!out)
    return NULL;
  kernels (x)->sum (out->data, x->data, x->numel, scale);
  if (bp_needs_grad (1, &x))
    bp_tape_record (op, sum_backward, out, 1, &x)->f[0] = scale;
  return out;
}

BpTensor *
bp_sum (BpTensor *x)
{
  return sum_op ("sum", x, 1.0f);
}

BpTensor *
bp_mean (BpTensor *x)
{
  /* the mean of no elements is NaN, as in PyTorch */
  return sum_op ("mean", x, x->numel > 0 ? (float) (1.0 / (double) x->numel) : NAN);
}
