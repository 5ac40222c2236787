/* bp-ops-conv.c: conv2d, max / average / adaptive pooling: shape checks, the tape and the
 * backward functions; the numeric work is the backend's conv kernels (conv2d's products with
 * bfloat16 operands under BP_PRECISION_BF16: the backend's conv_bf16 table). */
#include "bp-ops-conv.h"
#include "bp-backend.h"

#include <stdlib.h>

BpConv2dParams
bp_conv2d_params_default (void)
{
  return (BpConv2dParams){.stride = {1, 1}, .padding = {0, 0}, .dilation = {1, 1}, .groups = 1};
}

/* ---- conv2d ---- */

typedef struct {
  BpConv2dShape s;
  BpPrecision precision; /* the forward's: the backward's products use the same */
} ConvCtx;

/* The kernels of conv2d's products at a precision (the pooling entries are the same). */
static const BpConvKernels *
conv_kernels (BpDevice device, BpPrecision precision)
{
  const BpBackend *be = bp_backend (device);
  return precision == BP_PRECISION_BF16 && be->conv_bf16 ? be->conv_bf16 : be->conv;
}

static void
conv2d_backward (BpNode *node)
{
  /* out (N,Cout,Ho,Wo) = conv (x (N,Cin,H,W), w (Cout,Cin/g,Kh,Kw)) + b (Cout) */
  BpTensor *x = node->in[0], *w = node->in[1], *b = node->n_in > 2 ? node->in[2] : NULL;
  BpTensor *out = node->out;
  const ConvCtx *ctx = node->ctx;
  const BpConvKernels *k = conv_kernels (out->device, ctx->precision);
  const BpConv2dShape *s = &ctx->s;
  float *dx = x->requires_grad ? bp_tensor_grad (x) : NULL;
  float *dw = w->requires_grad ? bp_tensor_grad (w) : NULL;
  if (dx || dw)
    k->conv2d_backward (dx, dw, out->grad, x->data, w->data, s);
  if (b && b->requires_grad) {
    float *db = bp_tensor_grad (b);
    if (db)
      k->conv2d_backward_bias (db, out->grad, s);
  }
}

static int64_t
conv_out_size (int64_t in, int k, int stride, int pad, int dil)
{
  /* floor ((in + 2 pad - dil (k - 1) - 1) / stride) + 1, as in PyTorch */
  int64_t span = in + 2 * (int64_t) pad - (int64_t) dil * (k - 1) - 1;
  return span < 0 ? 0 : span / stride + 1;
}

BpTensor *
bp_conv2d (BpTensor *x, BpTensor *weight, BpTensor *bias, const BpConv2dParams *p)
{
  char sx[64], sw[64], sb[64];
  BpConv2dParams def = bp_conv2d_params_default ();
  if (!p)
    p = &def;
  bp_shape_str (x, sx, sizeof sx);
  bp_shape_str (weight, sw, sizeof sw);
  if (x->ndim != 4 || weight->ndim != 4) {
    bp_set_error (BP_ERR_INVALID, "conv2d: input %s and weight %s must both be 4-d "
                  "(N,C,H,W) and (Cout,Cin/groups,Kh,Kw)", sx, sw);
    return NULL;
  }
  if (p->stride[0] < 1 || p->stride[1] < 1 || p->dilation[0] < 1 || p->dilation[1] < 1 ||
      p->padding[0] < 0 || p->padding[1] < 0 || p->groups < 1) {
    bp_set_error (BP_ERR_INVALID, "conv2d: input %s, weight %s: stride (%d, %d) and dilation "
                  "(%d, %d) must be positive, padding (%d, %d) not negative, groups %d positive",
                  sx, sw, p->stride[0], p->stride[1], p->dilation[0], p->dilation[1],
                  p->padding[0], p->padding[1], p->groups);
    return NULL;
  }
  int64_t cin = x->shape[1], cout = weight->shape[0];
  if (cin % p->groups != 0 || cout % p->groups != 0 || weight->shape[1] * p->groups != cin) {
    bp_set_error (BP_ERR_INVALID, "conv2d: input %s does not fit weight %s with groups %d "
                  "(input channels = weight dim 1 x groups, output channels divisible by groups)",
                  sx, sw, p->groups);
    return NULL;
  }
  if (bias && (bias->ndim != 1 || bias->shape[0] != cout)) {
    bp_set_error (BP_ERR_INVALID, "conv2d: bias %s does not fit weight %s (input %s)",
                  bp_shape_str (bias, sb, sizeof sb), sw, sx);
    return NULL;
  }
  if (weight->device != x->device || (bias && bias->device != x->device)) {
    bp_set_error (BP_ERR_INVALID, "conv2d: input %s and weight %s are on different devices",
                  sx, sw);
    return NULL;
  }
  if (weight->shape[2] < 1 || weight->shape[3] < 1 || weight->shape[2] > (1 << 20) ||
      weight->shape[3] > (1 << 20)) {
    bp_set_error (BP_ERR_INVALID, "conv2d: weight %s has an empty kernel (input %s)", sw, sx);
    return NULL;
  }
  BpConv2dShape s = {
    .n = x->shape[0], .c_in = cin, .h = x->shape[2], .w = x->shape[3], .c_out = cout,
    .kh = (int) weight->shape[2], .kw = (int) weight->shape[3],
    .stride = {p->stride[0], p->stride[1]}, .padding = {p->padding[0], p->padding[1]},
    .dilation = {p->dilation[0], p->dilation[1]}, .groups = p->groups,
  };
  s.h_out = conv_out_size (s.h, s.kh, s.stride[0], s.padding[0], s.dilation[0]);
  s.w_out = conv_out_size (s.w, s.kw, s.stride[1], s.padding[1], s.dilation[1]);
  if (s.h_out <= 0 || s.w_out <= 0) {
    bp_set_error (BP_ERR_INVALID, "conv2d: input %s is smaller than the dilated kernel of "
                  "weight %s with padding (%d, %d): output size %lld x %lld",
                  sx, sw, s.padding[0], s.padding[1], (long long) s.h_out, (long long) s.w_out);
    return NULL;
  }
  BpTensor *out = bp_tensor_new_on (x->device, 4, (int64_t[]){s.n, cout, s.h_out, s.w_out});
  if (!out)
    return NULL;
  BpPrecision precision = bp_get_precision ();
  const BpConvKernels *k = conv_kernels (x->device, precision);
  if (out->numel > 0 &&
      k->conv2d_forward (out->data, x->data, weight->data, bias ? bias->data : NULL, &s) != BP_OK) {
    bp_tensor_unref (out);
    return NULL;
  }
  BpTensor *in[] = {x, weight, bias};
  int n_in = bias ? 3 : 2;
  if (bp_needs_grad (n_in, in)) {
    ConvCtx *ctx = malloc (sizeof *ctx);
    if (!ctx) {
      bp_set_error (BP_ERR_NOMEM, "conv2d: out of memory for the tape");
      bp_tensor_unref (out);
      return NULL;
    }
    ctx->s = s;
    ctx->precision = precision;
    BpNode *node = bp_tape_record ("conv2d", conv2d_backward, out, n_in, in);
    node->ctx = ctx;
    node->ctx_free = free;
  }
  return out;
}

/* ---- pooling ---- */

typedef struct {
  BpPool2dShape s;
  BpDevice device;
  int32_t *argmax; /* max pooling: device memory, one index per output */
  size_t bytes;
} PoolCtx;

static void
pool_ctx_free (void *data)
{
  PoolCtx *ctx = data;
  if (ctx->argmax)
    bp_backend (ctx->device)->free (ctx->argmax, ctx->bytes);
  free (ctx);
}

static PoolCtx *
pool_record (const char *op, BpBackwardFunc backward, BpTensor *out, BpTensor *x,
             const BpPool2dShape *s)
{
  PoolCtx *ctx = calloc (1, sizeof *ctx);
  if (!ctx) {
    bp_set_error (BP_ERR_NOMEM, "%s: out of memory for the tape", op);
    return NULL;
  }
  ctx->s = *s;
  ctx->device = x->device;
  BpNode *node = bp_tape_record (op, backward, out, 1, &x);
  node->ctx = ctx;
  node->ctx_free = pool_ctx_free;
  return ctx;
}

/* Fills the pooling shape from the arguments; false (with the error set) when they do not fit. */
static bool
pool_shape (const char *op, const BpTensor *x, const int kernel[2], const int stride[2],
            const int padding[2], BpPool2dShape *s)
{
  char sx[64];
  bp_shape_str (x, sx, sizeof sx);
  if (x->ndim != 4) {
    bp_set_error (BP_ERR_INVALID, "%s: input %s must be 4-d (N,C,H,W)", op, sx);
    return false;
  }
  int st[2] = {stride ? stride[0] : kernel[0], stride ? stride[1] : kernel[1]};
  int pad[2] = {padding ? padding[0] : 0, padding ? padding[1] : 0};
  if (kernel[0] < 1 || kernel[1] < 1 || st[0] < 1 || st[1] < 1 || pad[0] < 0 || pad[1] < 0 ||
      pad[0] > kernel[0] / 2 || pad[1] > kernel[1] / 2) {
    bp_set_error (BP_ERR_INVALID, "%s: input %s, kernel [%d, %d], stride [%d, %d], padding "
                  "[%d, %d]: kernel and stride must be positive, padding at most half the kernel",
                  op, sx, kernel[0], kernel[1], st[0], st[1], pad[0], pad[1]);
    return false;
  }
  *s = (BpPool2dShape){
    .n = x->shape[0], .c = x->shape[1], .h = x->shape[2], .w = x->shape[3],
    .kh = kernel[0], .kw = kernel[1], .stride = {st[0], st[1]}, .padding = {pad[0], pad[1]},
  };
  s->h_out = conv_out_size (s->h, s->kh, st[0], pad[0], 1);
  s->w_out = conv_out_size (s->w, s->kw, st[1], pad[1], 1);
  if (s->h_out <= 0 || s->w_out <= 0 || s->h * s->w > INT32_MAX) {
    bp_set_error (BP_ERR_INVALID, "%s: input %s is too small for kernel [%d, %d] with padding "
                  "[%d, %d] (output %lld x %lld)", op, sx, kernel[0], kernel[1], pad[0], pad[1],
                  (long long) s->h_out, (long long) s->w_out);
    return false;
  }
  return true;
}

static void
max_pool2d_backward (BpNode *node)
{
  BpTensor *x = node->in[0];
  PoolCtx *ctx = node->ctx;
  float *dx = bp_tensor_grad (x);
  if (dx)
    bp_backend (x->device)->conv->max_pool2d_backward (dx, node->out->grad, ctx->argmax, &ctx->s);
}

BpTensor *
bp_max_pool2d (BpTensor *x, const int kernel[2], const int stride[2], const int padding[2])
{
  BpPool2dShape s;
  if (!pool_shape ("max_pool2d", x, kernel, stride, padding, &s))
    return NULL;
  BpTensor *out = bp_tensor_new_on (x->device, 4, (int64_t[]){s.n, s.c, s.h_out, s.w_out});
  if (!out)
    return NULL;
  const BpBackend *be = bp_backend (x->device);
  if (!bp_needs_grad (1, &x)) {
    be->conv->max_pool2d_forward (out->data, NULL, x->data, &s);
    return out;
  }
  size_t bytes = (size_t) (out->numel > 0 ? out->numel : 1) * sizeof (int32_t);
  int32_t *argmax = be->alloc (bytes);
  if (!argmax) {
    bp_tensor_unref (out);
    return NULL;
  }
  be->conv->max_pool2d_forward (out->data, argmax, x->data, &s);
  PoolCtx *ctx = pool_record ("max_pool2d", max_pool2d_backward, out, x, &s);
  if (!ctx) {
    be->free (argmax, bytes);
    bp_tensor_unref (out);
    return NULL;
  }
  ctx->argmax = argmax;
  ctx->bytes = bytes;
  return out;
}

static void
avg_pool2d_backward (BpNode *node)
{
  BpTensor *x = node->in[0];
  PoolCtx *ctx = node->ctx;
  float *dx = bp_tensor_grad (x);
  if (dx)
    bp_backend (x->device)->conv->avg_pool2d_backward (dx, node->out->grad, &ctx->s);
}

BpTensor *
bp_avg_pool2d (BpTensor *x, const int kernel[2], const int stride[2], const int padding[2],
               bool count_include_pad)
{
  BpPool2dShape s;
  if (!pool_shape ("avg_pool2d", x, kernel, stride, padding, &s))
    return NULL;
  s.count_include_pad = count_include_pad;
  BpTensor *out = bp_tensor_new_on (x->device, 4, (int64_t[]){s.n, s.c, s.h_out, s.w_out});
  if (!out)
    return NULL;
  bp_backend (x->device)->conv->avg_pool2d_forward (out->data, x->data, &s);
  if (bp_needs_grad (1, &x) && !pool_record ("avg_pool2d", avg_pool2d_backward, out, x, &s)) {
    bp_tensor_unref (out);
    return NULL;
  }
  return out;
}

static void
adaptive_avg_pool2d_backward (BpNode *node)
{
  BpTensor *x = node->in[0];
  PoolCtx *ctx = node->ctx;
  float *dx = bp_tensor_grad (x);
  if (dx)
    bp_backend (x->device)->conv->adaptive_avg_pool2d_backward (dx, node->out->grad, &ctx->s);
}

BpTensor *
bp_adaptive_avg_pool2d (BpTensor *x, int out_h, int out_w)
{
  char sx[64];
  if (x->ndim != 4 || out_h < 1 || out_w < 1 || x->shape[2] < 1 || x->shape[3] < 1) {
    bp_set_error (BP_ERR_INVALID, "adaptive_avg_pool2d: input %s (N,C,H,W, H and W at least 1) "
                  "cannot be pooled to output size [%d, %d]",
                  bp_shape_str (x, sx, sizeof sx), out_h, out_w);
    return NULL;
  }
  BpPool2dShape s = {
    .n = x->shape[0], .c = x->shape[1], .h = x->shape[2], .w = x->shape[3],
    .h_out = out_h, .w_out = out_w,
  };
  BpTensor *out = bp_tensor_new_on (x->device, 4, (int64_t[]){s.n, s.c, out_h, out_w});
  if (!out)
    return NULL;
  bp_backend (x->device)->conv->adaptive_avg_pool2d_forward (out->data, x->data, &s);
  if (bp_needs_grad (1, &x) &&
      !pool_record ("adaptive_avg_pool2d", adaptive_avg_pool2d_backward, out, x, &s)) {
    bp_tensor_unref (out);
    return NULL;
  }
  return out;
}
