/* cpu/attn.c: CPU kernels of the attention family: scaled dot-product attention (forward and
 * a backward that recomputes the weights from the saved log-sum-exp), rotary and additive
 * position encodings and KV-cache writes. One (batch, head) pair per thread; the products are
 * OpenBLAS GEMMs on strided views (float32, or bfloat16 operands in the second table). */
#include "cpu-kernels.h"
#include "../bp-ops-attn.h"
#include "../bp-rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Scores S (Tq,Tk) of one (batch, head): scale q k^T plus the masks; -inf where not allowed. */
static void
scores (BpCpuGemm gemm, float *s, const float *q, const float *k, const float *mask,
        const float *pad, const BpAttnDesc *d)
{
  int64_t tq = d->tq, tk = d->tk;
  gemm (false, true, tq, tk, d->head_dim, d->scale, q, d->q_ld, k, d->k_ld, 0.0f, s, tk);
  for (int64_t i = 0; i < tq; i++) {
    float *row = s + i * tk;
    if (mask)
      for (int64_t j = 0; j < tk; j++)
        row[j] += mask[i * tk + j];
    if (pad)
      for (int64_t j = 0; j < tk; j++)
        if (pad[j] != 0.0f)
          row[j] = -INFINITY;
    if (d->causal)
      for (int64_t j = d->causal_offset + i + 1; j < tk; j++)
        row[j] = -INFINITY;
  }
}

/* The dropout scale of weight (b,h,i,j): 0 or 1/(1-p). */
static inline float
keep_scale (const BpAttnDesc *d, int64_t bh, int64_t i, int64_t j)
{
  uint64_t idx = (uint64_t) ((bh * d->tq + i) * d->tk + j);
  return bp_rng_hash_uniform (d->dropout_key, idx) >= d->dropout ? 1.0f / (1.0f - d->dropout)
                                                                  : 0.0f;
}

static void
attn_forward (BpCpuGemm gemm, float *out, float *lse, float *weights, const float *q,
              const float *k, const float *v, const float *mask, const float *key_padding,
              const BpAttnDesc *d)
{
  int64_t nb = d->batch, nh = d->heads, tq = d->tq, tk = d->tk, dh = d->head_dim;
  float *per_head = weights;
  if (weights && d->weights_mode == 2)
    per_head = malloc (sizeof (float) * (size_t) (nb * nh * tq * tk));
#pragma omp parallel for schedule(static) if (nb * nh > 1)
  for (int64_t bh = 0; bh < nb * nh; bh++) {
    int64_t b = bh / nh, h = bh % nh;
    const float *qb = q + b * d->q_bs + h * dh, *kb = k + b * d->k_bs + h * dh;
    const float *vb = v + b * d->v_bs + h * dh;
    float *ob = out + b * d->o_bs + h * dh;
    float *s = malloc (sizeof (float) * (size_t) (tq * tk > 0 ? tq * tk : 1));
    if (!s)
      continue;
    scores (gemm, s, qb, kb, mask, key_padding ? key_padding + b * tk : NULL, d);
    for (int64_t i = 0; i < tq; i++) {
      float *row = s + i * tk;
      float mx = -INFINITY;
      for (int64_t j = 0; j < tk; j++)
        mx = row[j] > mx ? row[j] : mx;
      if (mx == -INFINITY) {
        /* no key left: zeros (and lse -inf marks the row for the backward) */
        memset (row, 0, sizeof (float) * (size_t) tk);
        lse[bh * tq + i] = -INFINITY;
        continue;
      }
      double sum = 0.0;
      for (int64_t j = 0; j < tk; j++) {
        row[j] = expf (row[j] - mx);
        sum += row[j];
      }
      float inv = (float) (1.0 / sum);
      for (int64_t j = 0; j < tk; j++)
        row[j] *= inv;
      lse[bh * tq + i] = mx + (float) log (sum);
    }
    if (per_head)
      memcpy (per_head + bh * tq * tk, s, sizeof (float) * (size_t) (tq * tk));
    if (d->dropout > 0.0f)
      for (int64_t i = 0; i < tq; i++)
        for (int64_t j = 0; j < tk; j++)
          s[i * tk + j] *= keep_scale (d, bh, i, j);
    gemm (false, false, tq, dh, tk, 1.0f, s, tk, vb, d->v_ld, 0.0f, ob, d->o_ld);
    free (s);
  }
  if (weights && d->weights_mode == 2) {
    /* the average over heads, summed in head order */
    if (per_head) {
      for (int64_t b = 0; b < nb; b++)
        for (int64_t e = 0; e < tq * tk; e++) {
          float acc = 0.0f;
          for (int64_t h = 0; h < nh; h++)
            acc += per_head[(b * nh + h) * tq * tk + e];
          weights[b * tq * tk + e] = acc / (float) nh;
        }
      free (per_head);
    }
  }
}

static void
attn_backward (BpCpuGemm gemm, float *dq, float *dk, float *dv, const float *dout,
               const float *q, const float *k, const float *v, const float *mask,
               const float *key_padding, const float *lse, const BpAttnDesc *d)
{
  int64_t nb = d->batch, nh = d->heads, tq = d->tq, tk = d->tk, dh = d->head_dim;
#pragma omp parallel for schedule(static) if (nb * nh > 1)
  for (int64_t bh = 0; bh < nb * nh; bh++) {
    int64_t b = bh / nh, h = bh % nh;
    const float *qb = q + b * d->q_bs + h * dh, *kb = k + b * d->k_bs + h * dh;
    const float *vb = v + b * d->v_bs + h * dh, *gb = dout + b * d->o_bs + h * dh;
    size_t n = (size_t) (tq * tk > 0 ? tq * tk : 1);
    float *p = malloc (sizeof (float) * n * 2);
    if (!p)
      continue;
    float *dp = p + n;
    /* P from the saved log-sum-exp */
    scores (gemm, p, qb, kb, mask, key_padding ? key_padding + b * tk : NULL, d);
    for (int64_t i = 0; i < tq; i++) {
      float l = lse[bh * tq + i];
      for (int64_t j = 0; j < tk; j++)
        p[i * tk + j] = l == -INFINITY ? 0.0f : expf (p[i * tk + j] - l);
    }
    /* dP = dout v^T, through the dropout */
    gemm (false, true, tq, tk, dh, 1.0f, gb, d->o_ld, vb, d->v_ld, 0.0f, dp, tk);
    if (d->dropout > 0.0f) {
      for (int64_t i = 0; i < tq; i++)
        for (int64_t j = 0; j < tk; j++)
          dp[i * tk + j] *= keep_scale (d, bh, i, j);
    }
    /* dv += P_dropped^T dout (dS below needs P itself: the dropped weights go to a copy) */
    if (dv) {
      if (d->dropout > 0.0f) {
        float *pd = malloc (sizeof (float) * n);
        if (pd) {
          for (int64_t i = 0; i < tq; i++)
            for (int64_t j = 0; j < tk; j++)
              pd[i * tk + j] = p[i * tk + j] * keep_scale (d, bh, i, j);
          gemm (true, false, tk, dh, tq, 1.0f, pd, tk, gb, d->o_ld, 1.0f,
                dv + b * d->v_bs + h * dh, d->v_ld);
          free (pd);
        }
      } else {
        gemm (true, false, tk, dh, tq, 1.0f, p, tk, gb, d->o_ld, 1.0f,
              dv + b * d->v_bs + h * dh, d->v_ld);
      }
    }
    /* dS = P (dP - rowsum (P dP)), into dp */
    for (int64_t i = 0; i < tq; i++) {
      float *pr = p + i * tk, *dr = dp + i * tk;
      double dot = 0.0;
      for (int64_t j = 0; j < tk; j++)
        dot += (double) pr[j] * (double) dr[j];
      for (int64_t j = 0; j < tk; j++)
        dr[j] = pr[j] * (dr[j] - (float) dot);
    }
    if (dq)
      gemm (false, false, tq, dh, tk, d->scale, dp, tk, kb, d->k_ld, 1.0f,
            dq + b * d->q_bs + h * dh, d->q_ld);
    if (dk)
      gemm (true, false, tk, dh, tq, d->scale, dp, tk, qb, d->q_ld, 1.0f,
            dk + b * d->k_bs + h * dh, d->k_ld);
    free (p);
  }
}

static void
cpu_attn_forward (float *out, float *lse, float *weights, const float *q, const float *k,
                  const float *v, const float *mask, const float *key_padding,
                  const BpAttnDesc *d)
{
  attn_forward (bp_cpu_gemm, out, lse, weights, q, k, v, mask, key_padding, d);
}

static void
cpu_attn_backward (float *dq, float *dk, float *dv, const float *dout, const float *q,
                   const float *k, const float *v, const float *mask, const float *key_padding,
                   const float *lse, const BpAttnDesc *d)
{
  attn_backward (bp_cpu_gemm, dq, dk, dv, dout, q, k, v, mask, key_padding, lse, d);
}

/* The products (scores, P v and the four of the backward) with bfloat16 operands; the
 * softmax and its sums stay float32. */
static void
cpu_attn_forward_bf16 (float *out, float *lse, float *weights, const float *q, const float *k,
                       const float *v, const float *mask, const float *key_padding,
                       const BpAttnDesc *d)
{
  attn_forward (bp_cpu_gemm_bf16, out, lse, weights, q, k, v, mask, key_padding, d);
}

static void
cpu_attn_backward_bf16 (float *dq, float *dk, float *dv, const float *dout, const float *q,
                        const float *k, const float *v, const float *mask,
                        const float *key_padding, const float *lse, const BpAttnDesc *d)
{
  attn_backward (bp_cpu_gemm_bf16, dq, dk, dv, dout, q, k, v, mask, key_padding, lse, d);
}

static void
cpu_rope (float *out, const float *x, int64_t batch, int64_t t, int64_t ld, int64_t n_heads,
          int64_t head_dim, int64_t pos_offset, float base, bool inverse, bool accumulate)
{
  int64_t rows = batch * t, half = head_dim / 2, rot = n_heads * head_dim;
  double lb = log ((double) base);
#pragma omp parallel for schedule(static) if (rows * ld > 65536)
  for (int64_t r = 0; r < rows; r++) {
    double pos = (double) (pos_offset + r % t);
    const float *xr = x + r * ld;
    float *orow = out + r * ld;
    for (int64_t i = 0; i < half; i++) {
      double ang = pos * exp (-lb * (double) (2 * i) / (double) head_dim);
      float c = (float) cos (ang), s = (float) (inverse ? -sin (ang) : sin (ang));
      for (int64_t hd = 0; hd < n_heads; hd++) {
        int64_t a = hd * head_dim + i, bcol = a + half;
        float x1 = xr[a], x2 = xr[bcol];
        float o1 = x1 * c - x2 * s, o2 = x2 * c + x1 * s;
        if (accumulate) {
          orow[a] += o1;
          orow[bcol] += o2;
        } else {
          orow[a] = o1;
          orow[bcol] = o2;
        }
      }
    }
    for (int64_t j = rot; j < ld; j++)
      orow[j] = accumulate ? orow[j] + xr[j] : xr[j];
  }
}

static void
cpu_add_position (float *out, const float *x, const float *pe, int64_t batch, int64_t t,
                  int64_t e, int64_t offset)
{
#pragma omp parallel for schedule(static) if (batch * t * e > 65536)
  for (int64_t r = 0; r < batch * t; r++) {
    const float *xr = x + r * e, *pr = pe + (offset + r % t) * e;
    float *orow = out + r * e;
    for (int64_t j = 0; j < e; j++)
      orow[j] = xr[j] + pr[j];
  }
}

static void
cpu_add_position_backward (float *dpe, const float *dout, int64_t batch, int64_t t, int64_t e,
                           int64_t offset)
{
#pragma omp parallel for schedule(static) if (batch * t * e > 65536)
  for (int64_t ti = 0; ti < t; ti++) {
    float *pr = dpe + (offset + ti) * e;
    for (int64_t b = 0; b < batch; b++) {
      const float *gr = dout + (b * t + ti) * e;
      for (int64_t j = 0; j < e; j++)
        pr[j] += gr[j];
    }
  }
}

static void
cpu_sinusoid (float *pe, int64_t p, int64_t e)
{
  double lb = log (10000.0);
#pragma omp parallel for schedule(static) if (p * e > 65536)
  for (int64_t pos = 0; pos < p; pos++)
    for (int64_t i = 0; 2 * i < e; i++) {
      double ang = (double) pos * exp ((double) (2 * i) * (-lb / (double) e));
      pe[pos * e + 2 * i] = (float) sin (ang);
      if (2 * i + 1 < e)
        pe[pos * e + 2 * i + 1] = (float) cos (ang);
    }
}

static void
cpu_cache_write (float *cache, const float *src, int64_t batch, int64_t t, int64_t c,
                 int64_t src_ld, int64_t src_off, int64_t max_len, int64_t at)
{
  for (int64_t b = 0; b < batch; b++)
    for (int64_t ti = 0; ti < t; ti++)
      memcpy (cache + (b * max_len + at + ti) * c, src + (b * t + ti) * src_ld + src_off,
              sizeof (float) * (size_t) c);
}

const BpAttnKernels bp_cpu_attn_kernels = {
  .forward = cpu_attn_forward,
  .backward = cpu_attn_backward,
  .rope = cpu_rope,
  .add_position = cpu_add_position,
  .add_position_backward = cpu_add_position_backward,
  .sinusoid = cpu_sinusoid,
  .cache_write = cpu_cache_write,
};

const BpAttnKernels bp_cpu_attn_bf16_kernels = {
  .forward = cpu_attn_forward_bf16,
  .backward = cpu_attn_backward_bf16,
  .rope = cpu_rope,
  .add_position = cpu_add_position,
  .add_position_backward = cpu_add_position_backward,
  .sinusoid = cpu_sinusoid,
  .cache_write = cpu_cache_write,
};
