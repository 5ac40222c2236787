/* bp-ops-linear.c: matmul and linear forward/backward through the backend's GEMM (float32, or
 * bfloat16 operands with float32 accumulation under BP_PRECISION_BF16); linear's bias through
 * the backend's GEMM with bias and its gradient through the column sum. */
#include "bp-ops-linear.h"
#include "bp-backend.h"

#include <string.h>

typedef void (*GemmFn) (bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                        const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                        float *c, int64_t ldc);

/* The GEMM of the products at a precision: the backend's float32 one or its bfloat16 one. */
static GemmFn
product_gemm (const BpBackend *be, BpPrecision precision)
{
  return precision == BP_PRECISION_BF16 && be->gemm_bf16 ? be->gemm_bf16 : be->gemm;
}

typedef void (*GemmBiasFn) (bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                            const float *a, int64_t lda, const float *b, int64_t ldb,
                            const float *bias, float *c, int64_t ldc);

/* The GEMM with bias of a precision, or NULL when the backend has none. */
static GemmBiasFn
product_gemm_bias (const BpBackend *be, BpPrecision precision)
{
  if (precision == BP_PRECISION_BF16 && be->gemm_bf16)
    return be->gemm_bias_bf16;
  return be->gemm_bias;
}

/* node->i[0] keeps the precision of the forward: its backward's products use the same. */
#define NODE_PRECISION(node) ((BpPrecision) (node)->i[0])

static void
matmul_backward (BpNode *node)
{
  /* out (M,N) = a (M,K) @ b (K,N): da = dout @ b^T, db = a^T @ dout */
  BpTensor *a = node->in[0], *b = node->in[1], *out = node->out;
  GemmFn gemm = product_gemm (bp_backend (out->device), NODE_PRECISION (node));
  int64_t m = a->shape[0], k = a->shape[1], n = b->shape[1];
  if (a->requires_grad)
    gemm (false, true, m, k, n, 1.0f, out->grad, n, b->data, n, 1.0f, bp_tensor_grad (a), k);
  if (b->requires_grad)
    gemm (true, false, k, n, m, 1.0f, a->data, k, out->grad, n, 1.0f, bp_tensor_grad (b), n);
}

BpTensor *
bp_matmul (BpTensor *a, BpTensor *b)
{
  char sa[64], sb[64];
  if (a->ndim != 2 || b->ndim != 2 || a->shape[1] != b->shape[0] || a->device != b->device) {
    bp_set_error (BP_ERR_INVALID, "matmul: shapes %s and %s do not multiply",
                  bp_shape_str (a, sa, sizeof sa), bp_shape_str (b, sb, sizeof sb));
    return NULL;
  }
  int64_t m = a->shape[0], k = a->shape[1], n = b->shape[1];
  BpTensor *out = bp_tensor_new_on (a->device, 2, (int64_t[]){m, n});
  if (!out)
    return NULL;
  BpPrecision precision = bp_get_precision ();
  GemmFn gemm = product_gemm (bp_backend (a->device), precision);
  gemm (false, false, m, n, k, 1.0f, a->data, k, b->data, n, 0.0f, out->data, n);
  BpTensor *in[] = {a, b};
  if (bp_needs_grad (2, in))
    bp_tape_record ("matmul", matmul_backward, out, 2, in)->i[0] = precision;
  return out;
}

/* The rows of a Linear layer's input: the product of all but its last dimension (also when the
 * last is 0). */
static int64_t
leading_rows (const BpTensor *x)
{
  int64_t rows = 1;
  for (int d = 0; d < x->ndim - 1; d++)
    rows *= x->shape[d];
  return rows;
}

static void
linear_backward (BpNode *node)
{
  /* out (R,O) = x (R,I) @ w (O,I)^T + b: dx = dout @ w, dw = dout^T @ x, db = sum_rows dout */
  BpTensor *x = node->in[0], *w = node->in[1], *b = node->n_in > 2 ? node->in[2] : NULL;
  BpTensor *out = node->out;
  const BpBackend *be = bp_backend (out->device);
  GemmFn gemm = product_gemm (be, NODE_PRECISION (node));
  int64_t o = w->shape[0], i = w->shape[1], rows = leading_rows (x);
  if (x->requires_grad)
    gemm (false, false, rows, i, o, 1.0f, out->grad, o, w->data, i, 1.0f, bp_tensor_grad (x), i);
  if (w->requires_grad)
    gemm (true, false, o, i, rows, 1.0f, out->grad, o, x->data, i, 1.0f, bp_tensor_grad (w), i);
  /* db: a sum, not a product of operands, so float32 at every precision */
  if (b && b->requires_grad && be->col_sum) {
    be->col_sum (rows, o, out->grad, bp_tensor_grad (b));
  } else if (b && b->requires_grad) {
    /* a backend without col_sum: a GEMV with a ones vector, db (1,O) += ones (1,R) @ dout */
    BpTensor *ones = bp_tensor_new_on (out->device, 1, (int64_t[]){rows});
    if (!ones)
      return;
    bp_tensor_fill (ones, 1.0f);
    be->gemm (false, false, 1, o, rows, 1.0f, ones->data, rows, out->grad, o, 1.0f,
              bp_tensor_grad (b), o);
    bp_tensor_unref (ones);
  }
}

BpTensor *
bp_linear (BpTensor *x, BpTensor *weight, BpTensor *bias)
{
  char sx[64], sw[64];
  if (weight->ndim != 2 || x->ndim < 1 || x->shape[x->ndim - 1] != weight->shape[1] ||
      (bias && (bias->ndim != 1 || bias->shape[0] != weight->shape[0]))) {
    bp_set_error (BP_ERR_INVALID, "linear: input %s does not fit weight %s",
                  bp_shape_str (x, sx, sizeof sx), bp_shape_str (weight, sw, sizeof sw));
    return NULL;
  }
  int64_t o = weight->shape[0], i = weight->shape[1], rows = leading_rows (x);
  int64_t shape[BP_MAX_DIMS];
  memcpy (shape, x->shape, sizeof shape);
  shape[x->ndim - 1] = o;
  BpTensor *out = bp_tensor_new_on (x->device, x->ndim, shape);
  if (!out)
    return NULL;
  const BpBackend *be = bp_backend (x->device);
  BpPrecision precision = bp_get_precision ();
  GemmBiasFn gemm_bias = product_gemm_bias (be, precision);
  const float *bias_data = bias ? bias->data : NULL;
  if (gemm_bias) {
    gemm_bias (false, true, rows, o, i, x->data, i, weight->data, i, bias_data, out->data, o);
  } else {
    /* a backend without gemm_bias: the bias copied into every row, the product added to it */
    float beta = 0.0f;
    if (bias) {
      for (int64_t r = 0; r < rows; r++)
        be->copy (out->data + r * o, bias->data, (size_t) o * sizeof (float));
      beta = 1.0f;
    }
    product_gemm (be, precision) (false, true, rows, o, i, 1.0f, x->data, i, weight->data, i,
                                  beta, out->data, o);
  }
  BpTensor *in[] = {x, weight, bias};
  int n_in = bias ? 3 : 2;
  if (bp_needs_grad (n_in, in))
    bp_tape_record ("linear", linear_backward, out, n_in, in)->i[0] = precision;
  return out;
}
