/* cpu/norm.c: CPU kernels of the norm family: batch norm and layer norm, forward and backward. */
#include "cpu-kernels.h"

#include <math.h>

/* Below this many elements the kernels stay on one thread. */
#define PARALLEL_MIN 32768

/* Batch norm views x (N,C,S) in one of two layouts. With S >= ROW_PATH_S each channel is N
 * contiguous runs of S floats: one thread owns a channel and sweeps its runs (the hot CNN case,
 * a channel of a (64,32,28,28) batch is 200 KB and stays in L2 between the passes). With small
 * S (the (N,C) and short (N,C,L) cases) a channel's values are strided across the rows, so a
 * thread owns a block of whole channels and sweeps the rows, vectorised across the block. Every
 * channel is reduced by one thread in a fixed order: results do not depend on the thread count. */
#define ROW_PATH_S 16
#define ROW_BLOCK 128 /* features (channels * S) per block on the row path */
#define ROW_BLOCK_MAX (ROW_BLOCK + ROW_PATH_S)

static inline void
bn_running_update (float *running_mean, float *running_var, int64_t ch, double mean,
                   double var, int64_t m, float momentum)
{
  if (!running_mean)
    return;
  double unbiased = m > 1 ? var * (double) m / (double) (m - 1) : var;
  running_mean[ch] = (1.0f - momentum) * running_mean[ch] + momentum * (float) mean;
  running_var[ch] = (1.0f - momentum) * running_var[ch] + momentum * (float) unbiased;
}

/* out (N,C,S), x (N,C,S): the channel-major path */
static void
bn_forward_channels (float *out, float *save_mean, float *save_invstd, float *running_mean,
                     float *running_var, const float *x, const float *weight, const float *bias,
                     int64_t n, int64_t c, int64_t s, bool training, float momentum, float eps)
{
  int64_t m = n * s;
#pragma omp parallel for schedule(static) if (n * c * s > PARALLEL_MIN)
  for (int64_t ch = 0; ch < c; ch++) {
    float mean, invstd;
    if (training) {
      double sum = 0.0;
      for (int64_t i = 0; i < n; i++) {
        const float *xp = x + (i * c + ch) * s;
        float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
        for (int64_t j = 0; j < s; j++)
          acc += xp[j];
        sum += acc;
      }
      mean = (float) (sum / (double) m);
      double sq = 0.0;
      for (int64_t i = 0; i < n; i++) {
        const float *xp = x + (i * c + ch) * s;
        float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
        for (int64_t j = 0; j < s; j++)
          acc += (xp[j] - mean) * (xp[j] - mean);
        sq += acc;
      }
      double var = sq / (double) m;
      invstd = (float) (1.0 / sqrt (var + (double) eps));
      bn_running_update (running_mean, running_var, ch, mean, var, m, momentum);
    } else {
      mean = running_mean[ch];
      invstd = (float) (1.0 / sqrt ((double) running_var[ch] + (double) eps));
    }
    save_mean[ch] = mean;
    save_invstd[ch] = invstd;
    float scale = (weight ? weight[ch] : 1.0f) * invstd;
    float shift = (bias ? bias[ch] : 0.0f) - mean * scale;
    for (int64_t i = 0; i < n; i++) {
      const float *xp = x + (i * c + ch) * s;
      float *op = out + (i * c + ch) * s;
#pragma omp simd
      for (int64_t j = 0; j < s; j++)
        op[j] = xp[j] * scale + shift;
    }
  }
}

/* out (N,C,S), x (N,C,S) with small S: the row path over blocks of whole channels */
static void
bn_forward_rows (float *out, float *save_mean, float *save_invstd, float *running_mean,
                 float *running_var, const float *x, const float *weight, const float *bias,
                 int64_t n, int64_t c, int64_t s, bool training, float momentum, float eps)
{
  int64_t m = n * s, f = c * s;
  int64_t cb = ROW_BLOCK / s > 0 ? ROW_BLOCK / s : 1; /* channels per block */
  int64_t nblocks = (c + cb - 1) / cb;
#pragma omp parallel for schedule(static) if (n * c * s > PARALLEL_MIN)
  for (int64_t blk = 0; blk < nblocks; blk++) {
    int64_t c0 = blk * cb, c1 = c0 + cb < c ? c0 + cb : c;
    int64_t f0 = c0 * s, nf = (c1 - c0) * s;
    double acc[ROW_BLOCK_MAX];
    float fmean[ROW_BLOCK_MAX], fscale[ROW_BLOCK_MAX], fshift[ROW_BLOCK_MAX];
    if (training) {
      for (int64_t k = 0; k < nf; k++)
        acc[k] = 0.0;
      for (int64_t i = 0; i < n; i++) {
        const float *xp = x + i * f + f0;
#pragma omp simd
        for (int64_t k = 0; k < nf; k++)
          acc[k] += xp[k];
      }
      for (int64_t ch = c0; ch < c1; ch++) {
        double sum = 0.0;
        for (int64_t j = 0; j < s; j++)
          sum += acc[(ch - c0) * s + j];
        save_mean[ch] = (float) (sum / (double) m);
        for (int64_t j = 0; j < s; j++)
          fmean[(ch - c0) * s + j] = save_mean[ch];
      }
      for (int64_t k = 0; k < nf; k++)
        acc[k] = 0.0;
      for (int64_t i = 0; i < n; i++) {
        const float *xp = x + i * f + f0;
#pragma omp simd
        for (int64_t k = 0; k < nf; k++)
          acc[k] += (double) ((xp[k] - fmean[k]) * (xp[k] - fmean[k]));
      }
      for (int64_t ch = c0; ch < c1; ch++) {
        double sq = 0.0;
        for (int64_t j = 0; j < s; j++)
          sq += acc[(ch - c0) * s + j];
        double var = sq / (double) m;
        save_invstd[ch] = (float) (1.0 / sqrt (var + (double) eps));
        bn_running_update (running_mean, running_var, ch, save_mean[ch], var, m, momentum);
      }
    } else {
      for (int64_t ch = c0; ch < c1; ch++) {
        save_mean[ch] = running_mean[ch];
        save_invstd[ch] = (float) (1.0 / sqrt ((double) running_var[ch] + (double) eps));
      }
    }
    for (int64_t ch = c0; ch < c1; ch++) {
      float scale = (weight ? weight[ch] : 1.0f) * save_invstd[ch];
      float shift = (bias ? bias[ch] : 0.0f) - save_mean[ch] * scale;
      for (int64_t j = 0; j < s; j++) {
        fscale[(ch - c0) * s + j] = scale;
        fshift[(ch - c0) * s + j] = shift;
      }
    }
    for (int64_t i = 0; i < n; i++) {
      const float *xp = x + i * f + f0;
      float *op = out + i * f + f0;
#pragma omp simd
      for (int64_t k = 0; k < nf; k++)
        op[k] = xp[k] * fscale[k] + fshift[k];
    }
  }
}

static void
cpu_batch_norm_forward (float *out, float *save_mean, float *save_invstd, float *running_mean,
                        float *running_var, const float *x, const float *weight,
                        const float *bias, int64_t n, int64_t c, int64_t s, bool training,
                        float momentum, float eps)
{
  if (s >= ROW_PATH_S)
    bn_forward_channels (out, save_mean, save_invstd, running_mean, running_var, x, weight, bias,
                         n, c, s, training, momentum, eps);
  else
    bn_forward_rows (out, save_mean, save_invstd, running_mean, running_var, x, weight, bias, n,
                     c, s, training, momentum, eps);
}

/* The backward of one channel from its sums: with xhat = (x - mean) * invstd, a = w * invstd,
 * training: dx = a * (dy - mean (dy) - xhat * mean (dy * xhat)) = a*dy + b*x + k;
 * eval: dx = a * dy. dweight = sum (dy * xhat), dbias = sum (dy). */
static inline void
bn_backward_coefs (float *a, float *b, float *k, double sum_dy, double sum_dyxc, float mean,
                   float invstd, float w, int64_t m, bool training)
{
  *a = w * invstd;
  if (training) {
    *b = (float) (-(double) *a * invstd * invstd * sum_dyxc / (double) m);
    *k = (float) (-(double) *a * sum_dy / (double) m - (double) *b * mean);
  } else {
    *b = 0.0f;
    *k = 0.0f;
  }
}

/* dx (N,C,S), dout (N,C,S), x (N,C,S): the channel-major path */
static void
bn_backward_channels (float *dx, float *dweight, float *dbias, const float *dout, const float *x,
                      const float *mean, const float *invstd, const float *weight, int64_t n,
                      int64_t c, int64_t s, bool training)
{
  int64_t m = n * s;
#pragma omp parallel for schedule(static) if (n * c * s > PARALLEL_MIN)
  for (int64_t ch = 0; ch < c; ch++) {
    float mu = mean[ch];
    double sum_dy = 0.0, sum_dyxc = 0.0; /* sums of dy and dy * (x - mean) */
    for (int64_t i = 0; i < n; i++) {
      const float *xp = x + (i * c + ch) * s, *gp = dout + (i * c + ch) * s;
      float a1 = 0.0f, a2 = 0.0f;
#pragma omp simd reduction(+ : a1, a2)
      for (int64_t j = 0; j < s; j++) {
        a1 += gp[j];
        a2 += gp[j] * (xp[j] - mu);
      }
      sum_dy += a1;
      sum_dyxc += a2;
    }
    if (dweight)
      dweight[ch] += (float) (sum_dyxc * invstd[ch]);
    if (dbias)
      dbias[ch] += (float) sum_dy;
    if (!dx)
      continue;
    float a, b, k;
    bn_backward_coefs (&a, &b, &k, sum_dy, sum_dyxc, mu, invstd[ch], weight ? weight[ch] : 1.0f,
                       m, training);
    for (int64_t i = 0; i < n; i++) {
      const float *xp = x + (i * c + ch) * s, *gp = dout + (i * c + ch) * s;
      float *dp = dx + (i * c + ch) * s;
#pragma omp simd
      for (int64_t j = 0; j < s; j++)
        dp[j] += a * gp[j] + b * xp[j] + k;
    }
  }
}

/* dx (N,C,S), dout (N,C,S), x (N,C,S) with small S: the row path */
static void
bn_backward_rows (float *dx, float *dweight, float *dbias, const float *dout, const float *x,
                  const float *mean, const float *invstd, const float *weight, int64_t n,
                  int64_t c, int64_t s, bool training)
{
  int64_t m = n * s, f = c * s;
  int64_t cb = ROW_BLOCK / s > 0 ? ROW_BLOCK / s : 1;
  int64_t nblocks = (c + cb - 1) / cb;
#pragma omp parallel for schedule(static) if (n * c * s > PARALLEL_MIN)
  for (int64_t blk = 0; blk < nblocks; blk++) {
    int64_t c0 = blk * cb, c1 = c0 + cb < c ? c0 + cb : c;
    int64_t f0 = c0 * s, nf = (c1 - c0) * s;
    double acc1[ROW_BLOCK_MAX], acc2[ROW_BLOCK_MAX];
    float fmean[ROW_BLOCK_MAX], fa[ROW_BLOCK_MAX], fb[ROW_BLOCK_MAX], fk[ROW_BLOCK_MAX];
    for (int64_t k = 0; k < nf; k++) {
      acc1[k] = acc2[k] = 0.0;
      fmean[k] = mean[c0 + k / s];
    }
    for (int64_t i = 0; i < n; i++) {
      const float *xp = x + i * f + f0, *gp = dout + i * f + f0;
#pragma omp simd
      for (int64_t k = 0; k < nf; k++) {
        acc1[k] += gp[k];
        acc2[k] += (double) (gp[k] * (xp[k] - fmean[k]));
      }
    }
    for (int64_t ch = c0; ch < c1; ch++) {
      double sum_dy = 0.0, sum_dyxc = 0.0;
      for (int64_t j = 0; j < s; j++) {
        sum_dy += acc1[(ch - c0) * s + j];
        sum_dyxc += acc2[(ch - c0) * s + j];
      }
      if (dweight)
        dweight[ch] += (float) (sum_dyxc * invstd[ch]);
      if (dbias)
        dbias[ch] += (float) sum_dy;
      float a, b, k;
      bn_backward_coefs (&a, &b, &k, sum_dy, sum_dyxc, mean[ch], invstd[ch],
                         weight ? weight[ch] : 1.0f, m, training);
      for (int64_t j = 0; j < s; j++) {
        fa[(ch - c0) * s + j] = a;
        fb[(ch - c0) * s + j] = b;
        fk[(ch - c0) * s + j] = k;
      }
    }
    if (!dx)
      continue;
    for (int64_t i = 0; i < n; i++) {
      const float *xp = x + i * f + f0, *gp = dout + i * f + f0;
      float *dp = dx + i * f + f0;
#pragma omp simd
      for (int64_t k = 0; k < nf; k++)
        dp[k] += fa[k] * gp[k] + fb[k] * xp[k] + fk[k];
    }
  }
}

static void
cpu_batch_norm_backward (float *dx, float *dweight, float *dbias, const float *dout,
                         const float *x, const float *mean, const float *invstd,
                         const float *weight, int64_t n, int64_t c, int64_t s, bool training)
{
  if (s >= ROW_PATH_S)
    bn_backward_channels (dx, dweight, dbias, dout, x, mean, invstd, weight, n, c, s, training);
  else
    bn_backward_rows (dx, dweight, dbias, dout, x, mean, invstd, weight, n, c, s, training);
}

/* out (R,D), save_mean (R), save_invstd (R), x (R,D), weight (D), bias (D) */
static void
cpu_layer_norm_forward (float *out, float *save_mean, float *save_invstd, const float *x,
                        const float *weight, const float *bias, int64_t rows, int64_t d,
                        float eps)
{
#pragma omp parallel for schedule(static) if (rows * d > PARALLEL_MIN)
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * d;
    float *orow = out + r * d;
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < d; j++)
      sum += xr[j];
    float mean = (float) (sum / (double) d);
    double sq = 0.0;
#pragma omp simd reduction(+ : sq)
    for (int64_t j = 0; j < d; j++)
      sq += (double) ((xr[j] - mean) * (xr[j] - mean));
    float invstd = (float) (1.0 / sqrt (sq / (double) d + (double) eps));
    save_mean[r] = mean;
    save_invstd[r] = invstd;
#pragma omp simd
    for (int64_t j = 0; j < d; j++) {
      float y = (xr[j] - mean) * invstd;
      if (weight)
        y *= weight[j];
      if (bias)
        y += bias[j];
      orow[j] = y;
    }
  }
}

/* dx (R,D), dweight (D), dbias (D) +=; dout (R,D), x (R,D), mean (R), invstd (R), weight (D).
 * With xhat = (x - mean) * invstd and g = dout * weight:
 * dx = invstd * (g - mean (g) - xhat * mean (g * xhat)). */
static void
cpu_layer_norm_backward (float *dx, float *dweight, float *dbias, const float *dout,
                         const float *x, const float *mean, const float *invstd,
                         const float *weight, int64_t rows, int64_t d)
{
  bool parallel = rows * d > PARALLEL_MIN;
  if (dx) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t r = 0; r < rows; r++) {
      const float *xr = x + r * d, *gr = dout + r * d;
      float *dr = dx + r * d;
      float mu = mean[r], is = invstd[r];
      double sum_g = 0.0, sum_gx = 0.0;
#pragma omp simd reduction(+ : sum_g, sum_gx)
      for (int64_t j = 0; j < d; j++) {
        float g = weight ? gr[j] * weight[j] : gr[j];
        sum_g += g;
        sum_gx += (double) (g * (xr[j] - mu) * is);
      }
      float mean_g = (float) (sum_g / (double) d), mean_gx = (float) (sum_gx / (double) d);
#pragma omp simd
      for (int64_t j = 0; j < d; j++) {
        float g = weight ? gr[j] * weight[j] : gr[j];
        dr[j] += is * (g - mean_g - (xr[j] - mu) * is * mean_gx);
      }
    }
  }
  if (!dweight && !dbias)
    return;
  /* column sums over the rows, one block of columns per thread (fixed summation order) */
  const int64_t block = 64;
  int64_t nblocks = (d + block - 1) / block;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t blk = 0; blk < nblocks; blk++) {
    int64_t j0 = blk * block, nj = j0 + block < d ? block : d - j0;
    double aw[64] = {0}, ab[64] = {0};
    for (int64_t r = 0; r < rows; r++) {
      const float *xr = x + r * d + j0, *gr = dout + r * d + j0;
      float mu = mean[r], is = invstd[r];
#pragma omp simd
      for (int64_t j = 0; j < nj; j++) {
        aw[j] += (double) (gr[j] * (xr[j] - mu) * is);
        ab[j] += gr[j];
      }
    }
    for (int64_t j = 0; j < nj; j++) {
      if (dweight)
        dweight[j0 + j] += (float) aw[j];
      if (dbias)
        dbias[j0 + j] += (float) ab[j];
    }
  }
}

const BpNormKernels bp_cpu_norm_kernels = {
  .batch_norm_forward = cpu_batch_norm_forward,
  .batch_norm_backward = cpu_batch_norm_backward,
  .layer_norm_forward = cpu_layer_norm_forward,
  .layer_norm_backward = cpu_layer_norm_backward,
};
