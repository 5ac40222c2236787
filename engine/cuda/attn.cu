/* attn.cu: CUDA kernels of the attention family: scaled dot-product attention per batch and
 * head (strided-batched cuBLAS GEMMs for q k^T, P v and the backward's products on the
 * strided views of BpAttnDesc; masks, softmax and dropout in row and elementwise kernels, the
 * weights recomputed from the saved log-sum-exp in the backward), rotary and additive position
 * encodings, the sinusoidal table and KV-cache writes. The formulas of engine/cpu/attn.c; no
 * float atomics: every sum is in a fixed order. A second table runs the products with bfloat16
 * operands (BP_PRECISION_BF16). */
#include "cuda-device.cuh"

/* Rows per block of the row kernels: one warp each. */
#define WARPS (BP_BLOCK / 32)

/* for (r = this warp's first row; r < rows; r += all warps of the grid) */
#define ROW_LOOP(r, rows)                                                                      \
  for (int64_t r = (int64_t) blockIdx.x * WARPS + (threadIdx.x >> 5); r < (rows);             \
       r += (int64_t) gridDim.x * WARPS)

#define GRID(n) bp_cuda_grid ((n), BP_BLOCK), BP_BLOCK, 0, bp_cuda_ctx.stream
#define ROW_GRID(rows) bp_cuda_grid ((rows), WARPS), BP_BLOCK, 0, bp_cuda_ctx.stream

/* ---- kernels ---- */

/* Score (b, h, i, j) after the masks: v + mask (i, j), -inf where the key is padding (pad is
 * batch b's row) or after query i's position (causal). */
__device__ __forceinline__ float
masked_score (float v, const float *mask, const float *pad, bool causal, int64_t offset,
              int64_t i, int64_t j, int64_t tk)
{
  if (mask)
    v += mask[i * tk + j];
  if (pad && pad[j] != 0.0f)
    v = -INFINITY;
  if (causal && j > offset + i)
    v = -INFINITY;
  return v;
}

__global__ static void
softmax_kernel (float *s, float *lse, const float *mask, const float *key_padding, int64_t rows,
                int64_t heads, int64_t tq, int64_t tk, bool causal, int64_t offset)
{
  /* s (B,H,Tq,Tk): the scores become the softmax weights, row by row (row r = (b*H + h)*Tq +
   * i); lse (B*H*Tq) the rows' log-sum-exp. A row with no key left is zeros with lse -inf. */
  int lane = threadIdx.x & 31;
  ROW_LOOP (r, rows) {
    int64_t bh = r / tq, i = r - bh * tq, b = bh / heads;
    float *row = s + r * tk;
    const float *pad = key_padding ? key_padding + b * tk : NULL;
    float mx = -INFINITY;
    for (int64_t j = lane; j < tk; j += 32) {
      float v = masked_score (row[j], mask, pad, causal, offset, i, j, tk);
      row[j] = v;
      mx = v > mx ? v : mx;
    }
    mx = bp_warp_max (mx);
    if (mx == -INFINITY) {
      for (int64_t j = lane; j < tk; j += 32)
        row[j] = 0.0f;
      if (lane == 0)
        lse[r] = -INFINITY;
      continue;
    }
    double sum = 0.0;
    for (int64_t j = lane; j < tk; j += 32) {
      float e = expf (row[j] - mx);
      row[j] = e;
      sum += e;
    }
    sum = bp_warp_sum (sum);
    float inv = (float) (1.0 / sum);
    for (int64_t j = lane; j < tk; j += 32)
      row[j] *= inv;
    if (lane == 0)
      lse[r] = mx + (float) log (sum);
  }
}

__global__ static void
probs_kernel (float *s, const float *lse, const float *mask, const float *key_padding,
              int64_t n, int64_t heads, int64_t tq, int64_t tk, bool causal, int64_t offset)
{
  /* s (B,H,Tq,Tk): the scores become the weights exp (score - lse) (0 in rows with no key) */
  BP_GRID_LOOP (idx, n) {
    int64_t r = idx / tk, j = idx - r * tk;
    int64_t bh = r / tq, i = r - bh * tq, b = bh / heads;
    const float *pad = key_padding ? key_padding + b * tk : NULL;
    float v = masked_score (s[idx], mask, pad, causal, offset, i, j, tk);
    float l = lse[r];
    s[idx] = l == -INFINITY ? 0.0f : expf (v - l);
  }
}

__global__ static void
dropout_mul_kernel (float *dst, const float *src, int64_t n, float p, float scale, uint64_t key,
                    const uint64_t *key_at)
{
  if (key_at)
    key = *key_at; /* a CUDA graph's replays change the key there */
  /* dst (n) = src * (1 / (1 - p) where element i's draw is >= p, else 0); dst may be src */
  BP_GRID_LOOP (i, n)
    dst[i] = src[i] * (bp_cuda_hash_uniform (key, (uint64_t) i) >= p ? scale : 0.0f);
}

__global__ static void
head_mean_kernel (float *weights, const float *p, int64_t batch, int64_t heads, int64_t per)
{
  /* weights (B,Tq,Tk) = the mean over the heads of p (B,H,Tq,Tk), summed in head order */
  BP_GRID_LOOP (idx, batch * per) {
    int64_t b = idx / per, e = idx - b * per;
    float acc = 0.0f;
    for (int64_t h = 0; h < heads; h++)
      acc += p[(b * heads + h) * per + e];
    weights[idx] = acc / (float) heads;
  }
}

__global__ static void
softmax_backward_kernel (float *dp, const float *p, int64_t rows, int64_t tk)
{
  /* dp (R,Tk) becomes dS = P (dP - rowsum (P dP)) */
  int lane = threadIdx.x & 31;
  ROW_LOOP (r, rows) {
    const float *pr = p + r * tk;
    float *dr = dp + r * tk;
    double dot = 0.0;
    for (int64_t j = lane; j < tk; j += 32)
      dot += (double) pr[j] * (double) dr[j];
    float d = (float) bp_warp_sum (dot);
    for (int64_t j = lane; j < tk; j += 32)
      dr[j] = pr[j] * (dr[j] - d);
  }
}

__global__ static void
zero_heads_kernel (float *out, float *lse, int64_t batch, int64_t tq, int64_t e, int64_t o_bs,
                   int64_t o_ld, int64_t n_lse)
{
  /* no keys at all: out (B,Tq,E) seen through its strides = 0, lse (n_lse) = -inf */
  BP_GRID_LOOP (idx, batch * tq * e) {
    int64_t row = idx / e, c = idx - row * e, b = row / tq, i = row - b * tq;
    out[b * o_bs + i * o_ld + c] = 0.0f;
  }
  BP_GRID_LOOP (idx, n_lse)
    lse[idx] = -INFINITY;
}

__global__ static void
rope_kernel (float *out, const float *x, int64_t rows, int64_t t, int64_t ld, int64_t n_heads,
             int64_t head_dim, int64_t pos_offset, double log_base, bool inverse,
             bool accumulate)
{
  /* out (rows, ld) = (or +=) x rotated: in each of the first n_heads head_dim-chunks the pair
   * (i, i + head_dim/2) turns by pos * base^(-2i/head_dim), pos = pos_offset + row % T; the
   * other columns are copied. out and x must not overlap. */
  int64_t half = head_dim / 2, rot = n_heads * head_dim;
  BP_GRID_LOOP (idx, rows * ld) {
    int64_t r = idx / ld, col = idx - r * ld;
    const float *xr = x + r * ld;
    float o;
    if (col < rot) {
      int64_t c = col % head_dim, i = c < half ? c : c - half, a = col - c + i;
      double pos = (double) (pos_offset + r % t);
      double ang = pos * exp (-log_base * (double) (2 * i) / (double) head_dim);
      float cs = (float) cos (ang), sn = (float) (inverse ? -sin (ang) : sin (ang));
      float x1 = xr[a], x2 = xr[a + half];
      o = c < half ? x1 * cs - x2 * sn : x2 * cs + x1 * sn;
    } else {
      o = xr[col];
    }
    out[idx] = accumulate ? out[idx] + o : o;
  }
}

__global__ static void
add_position_kernel (float *out, const float *x, const float *pe, int64_t batch, int64_t t,
                     int64_t e, int64_t offset)
{
  /* out (B,T,E) = x (B,T,E) + pe (P,E) rows [offset, offset + T) */
  BP_GRID_LOOP (idx, batch * t * e) {
    int64_t r = idx / e, j = idx - r * e;
    out[idx] = x[idx] + pe[(offset + r % t) * e + j];
  }
}

__global__ static void
add_position_backward_kernel (float *dpe, const float *dout, int64_t batch, int64_t t,
                              int64_t e, int64_t offset)
{
  /* dpe rows [offset, offset + T) += dout (B,T,E) summed over the batch in order, as the CPU:
   * one thread per (t, j) */
  BP_GRID_LOOP (idx, t * e) {
    int64_t ti = idx / e, j = idx - ti * e;
    float *p = dpe + (offset + ti) * e + j;
    float v = *p;
    for (int64_t b = 0; b < batch; b++)
      v += dout[(b * t + ti) * e + j];
    *p = v;
  }
}

__global__ static void
sinusoid_kernel (float *pe, int64_t p, int64_t e, double log_base)
{
  /* pe (P,E): pe[pos, 2i] = sin (pos / 10000^(2i/E)), pe[pos, 2i+1] = cos of the same */
  BP_GRID_LOOP (idx, p * e) {
    int64_t pos = idx / e, col = idx - pos * e, i = col / 2;
    double ang = (double) pos * exp ((double) (2 * i) * (-log_base / (double) e));
    pe[idx] = (float) (col % 2 == 0 ? sin (ang) : cos (ang));
  }
}

__global__ static void
cache_write_kernel (float *cache, const float *src, int64_t batch, int64_t t, int64_t c,
                    int64_t src_ld, int64_t src_off, int64_t max_len, int64_t at)
{
  /* cache (B,max_len,C) rows [at, at + T) = src (B,T,src_ld) columns [src_off, src_off + C) */
  BP_GRID_LOOP (idx, batch * t * c) {
    int64_t row = idx / c, j = idx - row * c, b = row / t, ti = row - b * t;
    cache[(b * max_len + at + ti) * c + j] = src[row * src_ld + src_off + j];
  }
}

/* ---- the products of every (batch, head) ---- */

/* An operand of the per-(batch, head) products: block (b, h) starts at p + b * bs + h * hs,
 * its rows ld floats apart. */
typedef struct {
  const float *p;
  int64_t ld, bs, hs;
} Mat;

/* The scores / weights buffer (B,H,Tq,Tk), contiguous. */
static Mat
scores_mat (const BpAttnDesc *d, const float *s)
{
  return Mat{s, d->tk, d->heads * d->tq * d->tk, d->tq * d->tk};
}

/* c (b,h) = alpha op (a (b,h)) op (b (b,h)) + beta c (b,h) for every batch and head, row-major
 * (m,n) = (m,k) (k,n): strided-batched GEMMs over the larger of the two counts, one call per
 * index of the smaller. The output blocks are disjoint. */
static BpStatus
bh_gemm (BpPrecision pr, const BpAttnDesc *d, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
         float alpha, Mat a, Mat b, float beta, Mat c)
{
  bool batch_heads = d->heads >= d->batch; /* one call per batch, the heads batched */
  int64_t outer = batch_heads ? d->batch : d->heads, count = batch_heads ? d->heads : d->batch;
  for (int64_t o = 0; o < outer; o++) {
    int64_t oa = batch_heads ? o * a.bs : o * a.hs, sa = batch_heads ? a.hs : a.bs;
    int64_t ob = batch_heads ? o * b.bs : o * b.hs, sb = batch_heads ? b.hs : b.bs;
    int64_t oc = batch_heads ? o * c.bs : o * c.hs, sc = batch_heads ? c.hs : c.bs;
    BpStatus s = bp_cuda_gemm_strided_at (pr, ta, tb, m, n, k, alpha, a.p + oa, a.ld, sa,
                                          b.p + ob, b.ld, sb, beta, (float *) c.p + oc, c.ld, sc,
                                          count);
    if (s != BP_OK)
      return s;
  }
  return BP_OK;
}

/* s (B,H,Tq,Tk) = scale q k^T per batch and head (before the masks) */
static BpStatus
scores (BpPrecision pr, float *s, const float *q, const float *k, const BpAttnDesc *d)
{
  return bh_gemm (pr, d, false, true, d->tq, d->tk, d->head_dim, d->scale,
                  Mat{q, d->q_ld, d->q_bs, d->head_dim}, Mat{k, d->k_ld, d->k_bs, d->head_dim},
                  0.0f, scores_mat (d, s));
}

/* ---- the table ---- */

/* s: scratch for the weights (B,H,Tq,Tk). */
static BpStatus
attn_forward (BpPrecision pr, float *out, float *lse, float *weights, const float *q,
              const float *k, const float *v, const float *mask, const float *key_padding,
              const BpAttnDesc *d, float *s)
{
  int64_t nb = d->batch, nh = d->heads, tq = d->tq, tk = d->tk, dh = d->head_dim;
  int64_t rows = nb * nh * tq, n = rows * tk;
  BpStatus e = scores (pr, s, q, k, d);
  if (e != BP_OK)
    return e;
  softmax_kernel<<<ROW_GRID (rows)>>> (s, lse, mask, key_padding, rows, nh, tq, tk, d->causal,
                                       d->causal_offset);
  BP_CUDA_CHECK_LAUNCH ("attention softmax");
  if (weights && d->weights_mode == 1)
    BP_CUDA_CHECK (cudaMemcpyAsync (weights, s, sizeof (float) * (size_t) n,
                                    cudaMemcpyDeviceToDevice, bp_cuda_ctx.stream));
  if (weights && d->weights_mode == 2) {
    head_mean_kernel<<<GRID (nb * tq * tk)>>> (weights, s, nb, nh, tq * tk);
    BP_CUDA_CHECK_LAUNCH ("attention weights mean");
  }
  if (d->dropout > 0.0f) {
    float scale = 1.0f / (1.0f - d->dropout); /* computed as on the CPU */
    dropout_mul_kernel<<<GRID (n)>>> (s, s, n, d->dropout, scale, d->dropout_key,
                                      bp_cuda_capture_key (d->dropout_key));
    BP_CUDA_CHECK_LAUNCH ("attention dropout");
  }
  /* out (b,h) (Tq,Dh) = P (Tq,Tk) v (Tk,Dh) */
  return bh_gemm (pr, d, false, false, tq, dh, tk, 1.0f, scores_mat (d, s),
                  Mat{v, d->v_ld, d->v_bs, dh}, 0.0f, Mat{out, d->o_ld, d->o_bs, dh});
}

static void
attn_forward_at (BpPrecision pr, float *out, float *lse, float *weights, const float *q,
                 const float *k, const float *v, const float *mask, const float *key_padding,
                 const BpAttnDesc *d)
{
  int64_t rows = d->batch * d->heads * d->tq, n = rows * d->tk;
  if (rows <= 0 || d->head_dim <= 0 || !bp_cuda_begin ())
    return;
  if (d->tk <= 0) {
    /* no keys: every row is empty (zeros, lse -inf) */
    int64_t e = d->heads * d->head_dim;
    zero_heads_kernel<<<GRID (d->batch * d->tq * e)>>> (out, lse, d->batch, d->tq, e, d->o_bs,
                                                        d->o_ld, rows);
    bp_cuda_defer (BP_CUDA_LAUNCH_TRY ("attention without keys"));
    return;
  }
  size_t bytes = sizeof (float) * (size_t) n;
  float *s = (float *) bp_cuda_alloc (bytes);
  if (!s) {
    bp_cuda_defer (bp_last_status ());
    return;
  }
  bp_cuda_defer (attn_forward (pr, out, lse, weights, q, k, v, mask, key_padding, d, s));
  bp_cuda_free (s, bytes); /* stream order: the work above runs before any reuse */
}

/* p, dp (B,H,Tq,Tk) scratch; pd the same for the dropped weights (dropout with dv only). */
static BpStatus
attn_backward (BpPrecision pr, float *dq, float *dk, float *dv, const float *dout,
               const float *q, const float *k, const float *v, const float *mask,
               const float *key_padding, const float *lse, const BpAttnDesc *d, float *p,
               float *dp, float *pd)
{
  int64_t nh = d->heads, tq = d->tq, tk = d->tk, dh = d->head_dim;
  int64_t rows = d->batch * nh * tq, n = rows * tk;
  float scale = d->dropout > 0.0f ? 1.0f / (1.0f - d->dropout) : 1.0f;
  Mat mq = {q, d->q_ld, d->q_bs, dh}, mk = {k, d->k_ld, d->k_bs, dh};
  Mat mv = {v, d->v_ld, d->v_bs, dh}, mg = {dout, d->o_ld, d->o_bs, dh};
  BpStatus e;
  /* P from the saved log-sum-exp */
  if ((e = scores (pr, p, q, k, d)) != BP_OK)
    return e;
  probs_kernel<<<GRID (n)>>> (p, lse, mask, key_padding, n, nh, tq, tk, d->causal,
                              d->causal_offset);
  BP_CUDA_CHECK_LAUNCH ("attention weights");
  /* dP (Tq,Tk) = dout (Tq,Dh) v^T, through the dropout */
  if ((e = bh_gemm (pr, d, false, true, tq, tk, dh, 1.0f, mg, mv, 0.0f, scores_mat (d, dp)))
      != BP_OK)
    return e;
  if (d->dropout > 0.0f) {
    dropout_mul_kernel<<<GRID (n)>>> (dp, dp, n, d->dropout, scale, d->dropout_key,
                                      bp_cuda_capture_key (d->dropout_key));
    BP_CUDA_CHECK_LAUNCH ("attention dropout backward");
  }
  /* dv (Tk,Dh) += P_dropped^T dout (dS below needs P itself: the dropped weights go to pd) */
  if (dv) {
    const float *pv = p;
    if (d->dropout > 0.0f) {
      dropout_mul_kernel<<<GRID (n)>>> (pd, p, n, d->dropout, scale, d->dropout_key,
                                        bp_cuda_capture_key (d->dropout_key));
      BP_CUDA_CHECK_LAUNCH ("attention dropout backward");
      pv = pd;
    }
    if ((e = bh_gemm (pr, d, true, false, tk, dh, tq, 1.0f, scores_mat (d, pv), mg, 1.0f,
                      Mat{dv, d->v_ld, d->v_bs, dh})) != BP_OK)
      return e;
  }
  /* dS = P (dP - rowsum (P dP)), into dp */
  softmax_backward_kernel<<<ROW_GRID (rows)>>> (dp, p, rows, tk);
  BP_CUDA_CHECK_LAUNCH ("attention softmax backward");
  /* dq (Tq,Dh) += scale dS k; dk (Tk,Dh) += scale dS^T q */
  if (dq && (e = bh_gemm (pr, d, false, false, tq, dh, tk, d->scale, scores_mat (d, dp), mk,
                          1.0f, Mat{dq, d->q_ld, d->q_bs, dh})) != BP_OK)
    return e;
  if (dk && (e = bh_gemm (pr, d, true, false, tk, dh, tq, d->scale, scores_mat (d, dp), mq,
                          1.0f, Mat{dk, d->k_ld, d->k_bs, dh})) != BP_OK)
    return e;
  return BP_OK;
}

static void
attn_backward_at (BpPrecision pr, float *dq, float *dk, float *dv, const float *dout,
                  const float *q, const float *k, const float *v, const float *mask,
                  const float *key_padding, const float *lse, const BpAttnDesc *d)
{
  int64_t n = d->batch * d->heads * d->tq * d->tk;
  if (n <= 0 || d->head_dim <= 0 || (!dq && !dk && !dv) || !bp_cuda_begin ())
    return;
  bool with_pd = dv && d->dropout > 0.0f;
  size_t one = sizeof (float) * (size_t) n, bytes = one * (with_pd ? 3 : 2);
  float *p = (float *) bp_cuda_alloc (bytes);
  if (!p) {
    bp_cuda_defer (bp_last_status ());
    return;
  }
  bp_cuda_defer (attn_backward (pr, dq, dk, dv, dout, q, k, v, mask, key_padding, lse, d, p,
                                p + n, with_pd ? p + 2 * n : NULL));
  bp_cuda_free (p, bytes); /* stream order: the work above runs before any reuse */
}

static void
cuda_attn_forward (float *out, float *lse, float *weights, const float *q, const float *k,
                   const float *v, const float *mask, const float *key_padding,
                   const BpAttnDesc *d)
{
  attn_forward_at (BP_PRECISION_FP32, out, lse, weights, q, k, v, mask, key_padding, d);
}

static void
cuda_attn_backward (float *dq, float *dk, float *dv, const float *dout, const float *q,
                    const float *k, const float *v, const float *mask,
                    const float *key_padding, const float *lse, const BpAttnDesc *d)
{
  attn_backward_at (BP_PRECISION_FP32, dq, dk, dv, dout, q, k, v, mask, key_padding, lse, d);
}

/* The products with bfloat16 operands (bp_cuda_gemm_strided_at); softmax and sums float32. */
static void
cuda_attn_forward_bf16 (float *out, float *lse, float *weights, const float *q, const float *k,
                        const float *v, const float *mask, const float *key_padding,
                        const BpAttnDesc *d)
{
  attn_forward_at (BP_PRECISION_BF16, out, lse, weights, q, k, v, mask, key_padding, d);
}

static void
cuda_attn_backward_bf16 (float *dq, float *dk, float *dv, const float *dout, const float *q,
                         const float *k, const float *v, const float *mask,
                         const float *key_padding, const float *lse, const BpAttnDesc *d)
{
  attn_backward_at (BP_PRECISION_BF16, dq, dk, dv, dout, q, k, v, mask, key_padding, lse, d);
}

static void
cuda_rope (float *out, const float *x, int64_t batch, int64_t t, int64_t ld, int64_t n_heads,
           int64_t head_dim, int64_t pos_offset, float base, bool inverse, bool accumulate)
{
  int64_t n = batch * t * ld;
  if (n <= 0 || !bp_cuda_begin ())
    return;
  rope_kernel<<<GRID (n)>>> (out, x, batch * t, t, ld, n_heads, head_dim, pos_offset,
                             log ((double) base), inverse, accumulate);
  bp_cuda_defer (BP_CUDA_LAUNCH_TRY ("rope"));
}

static void
cuda_add_position (float *out, const float *x, const float *pe, int64_t batch, int64_t t,
                   int64_t e, int64_t offset)
{
  int64_t n = batch * t * e;
  if (n <= 0 || !bp_cuda_begin ())
    return;
  add_position_kernel<<<GRID (n)>>> (out, x, pe, batch, t, e, offset);
  bp_cuda_defer (BP_CUDA_LAUNCH_TRY ("add_position"));
}

static void
cuda_add_position_backward (float *dpe, const float *dout, int64_t batch, int64_t t, int64_t e,
                            int64_t offset)
{
  if (t * e <= 0 || batch <= 0 || !bp_cuda_begin ())
    return;
  add_position_backward_kernel<<<GRID (t * e)>>> (dpe, dout, batch, t, e, offset);
  bp_cuda_defer (BP_CUDA_LAUNCH_TRY ("add_position backward"));
}

static void
cuda_sinusoid (float *pe, int64_t p, int64_t e)
{
  if (p * e <= 0 || !bp_cuda_begin ())
    return;
  sinusoid_kernel<<<GRID (p * e)>>> (pe, p, e, log (10000.0));
  bp_cuda_defer (BP_CUDA_LAUNCH_TRY ("sinusoid table"));
}

static void
cuda_cache_write (float *cache, const float *src, int64_t batch, int64_t t, int64_t c,
                  int64_t src_ld, int64_t src_off, int64_t max_len, int64_t at)
{
  int64_t n = batch * t * c;
  if (n <= 0 || !bp_cuda_begin ())
    return;
  cache_write_kernel<<<GRID (n)>>> (cache, src, batch, t, c, src_ld, src_off, max_len, at);
  bp_cuda_defer (BP_CUDA_LAUNCH_TRY ("kv cache write"));
}

const BpAttnKernels bp_cuda_attn_kernels = {
  .forward = cuda_attn_forward,
  .backward = cuda_attn_backward,
  .rope = cuda_rope,
  .add_position = cuda_add_position,
  .add_position_backward = cuda_add_position_backward,
  .sinusoid = cuda_sinusoid,
  .cache_write = cuda_cache_write,
};

const BpAttnKernels bp_cuda_attn_bf16_kernels = {
  .forward = cuda_attn_forward_bf16,
  .backward = cuda_attn_backward_bf16,
  .rope = cuda_rope,
  .add_position = cuda_add_position,
  .add_position_backward = cuda_add_position_backward,
  .sinusoid = cuda_sinusoid,
  .cache_write = cuda_cache_write,
};
