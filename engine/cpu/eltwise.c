/* cpu/eltwise.c: CPU kernels of the eltwise family: arithmetic, activations, dropout, concat,
 * embedding and sums (OpenMP above a size threshold, same results for any thread count). */
/* Floating-point exceptions are never trapped in this engine; telling GCC so lets it turn the
 * branch-free selects of the activations below into vector blends. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize ("no-trapping-math")
#endif

#include "cpu-kernels.h"
#include "../bp-rng.h"

#include <math.h>
#include <omp.h>
#include <string.h>

/* Below this many elements threads cost more than they save. */
#define PAR_MIN 32768

static void
add_kernel (float *out, const float *a, const float *b, float alpha, int64_t n)
{
  /* out (n) = a (n) + alpha * b (n) */
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (int64_t i = 0; i < n; i++)
    out[i] = a[i] + alpha * b[i];
}

static void
mul_kernel (float *out, const float *a, const float *b, int64_t n)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (int64_t i = 0; i < n; i++)
    out[i] = a[i] * b[i];
}

static void
mul_backward_kernel (float *da, const float *dout, const float *b, int64_t n)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (int64_t i = 0; i < n; i++)
    da[i] += dout[i] * b[i];
}

static void
scale_kernel (float *out, const float *x, float s, int64_t n)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (int64_t i = 0; i < n; i++)
    out[i] = s * x[i];
}

/* ---- activations ----
 * glibc's expf, erff and tanhf are scalar calls (30-90 ns each here); these branch-free
 * versions vectorise and stay within about 2e-7 relative error of the double-precision
 * functions over the range that matters (checked in tests/test-eltwise.c). */

static inline float
exp_approx (float x)
{
  /* e^x = 2^n e^r with |r| <= ln2/2 (Cephes expf polynomial); overflows to +inf above ~88.4,
   * flushes to 0 below -87 (where e^x would be near or below the smallest normal float) */
  float x0 = x;
  x = x < -87.0f ? -87.0f : x > 89.0f ? 89.0f : x;
  float v = x * 1.44269504088896341f + 12582912.0f; /* round to nearest with 1.5 * 2^23 */
  int32_t bits;
  memcpy (&bits, &v, sizeof bits);
  float n = v - 12582912.0f;
  int32_t ni = bits - 0x4B400000;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float y = p * r * r + r + 1.0f;
  int32_t scale_bits = (ni + 127) << 23;
  float scale;
  memcpy (&scale, &scale_bits, sizeof scale);
  return x0 < -87.0f ? 0.0f : y * scale;
}

static inline float
erfc_approx (float z)
{
  /* Chebyshev fit of Numerical Recipes (erfcc): fractional error < 1.2e-7 for z >= 0 (plus
   * the rounding of z * z in the far tail); erfc (-z) = 2 - erfc (z) */
  float a = fabsf (z);
  float t = 1.0f / (1.0f + 0.5f * a);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  float r = t * exp_approx (p - a * a);
  return z >= 0.0f ? r : 2.0f - r;
}

static inline float
tanh_approx (float x)
{
  /* Cephes tanhf: an odd polynomial below 0.625, 1 - 2 / (e^2|x| + 1) above */
  float a = fabsf (x), z = x * x;
  float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
                  1.33314422036e-1f) * z - 3.33332819422e-1f) * z * x + x;
  float big = 1.0f - 2.0f / (exp_approx (2.0f * a) + 1.0f);
  big = x < 0.0f ? -big : big;
  return a < 0.625f ? small : big;
}

/* Phi (x), the standard normal CDF, as used by the exact GELU x Phi (x) */
static inline float
normal_cdf (float x)
{
  return 0.5f * erfc_approx (-x * (float) M_SQRT1_2);
}

static void
activation_kernel (float *out, const float *x, int64_t n, BpActivation act, float slope)
{
  /* out (n) = act (x (n)); one loop per activation so each one vectorises */
  switch (act) {
  case BP_ACT_RELU:
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++)
      out[i] = x[i] > 0.0f ? x[i] : 0.0f;
    break;
  case BP_ACT_LEAKY_RELU:
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++)
      out[i] = x[i] > 0.0f ? x[i] : slope * x[i];
    break;
  case BP_ACT_GELU:
#pragma omp parallel for schedule(static) if (n > PAR_MIN / 4)
    for (int64_t i = 0; i < n; i++)
      out[i] = x[i] * normal_cdf (x[i]);
    break;
  case BP_ACT_TANH:
#pragma omp parallel for schedule(static) if (n > PAR_MIN / 4)
    for (int64_t i = 0; i < n; i++)
      out[i] = tanh_approx (x[i]);
    break;
  case BP_ACT_SIGMOID:
#pragma omp parallel for schedule(static) if (n > PAR_MIN / 4)
    for (int64_t i = 0; i < n; i++)
      out[i] = 1.0f / (1.0f + exp_approx (-x[i]));
    break;
  }
}

static void
activation_backward_kernel (float *dx, const float *dout, const float *x, const float *out,
                            int64_t n, BpActivation act, float slope)
{
  /* dx (n) += dout (n) * act' (x (n)) */
  switch (act) {
  case BP_ACT_RELU:
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
      float g = dout[i]; /* loaded unconditionally so the select vectorises */
      dx[i] += x[i] > 0.0f ? g : 0.0f;
    }
    break;
  case BP_ACT_LEAKY_RELU:
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++)
      dx[i] += x[i] > 0.0f ? dout[i] : slope * dout[i];
    break;
  case BP_ACT_GELU: {
    /* d/dx x Phi (x) = Phi (x) + x phi (x) */
    const float inv_sqrt_2pi = 0.3989422804014327f;
#pragma omp parallel for schedule(static) if (n > PAR_MIN / 4)
    for (int64_t i = 0; i < n; i++) {
      float pdf = inv_sqrt_2pi * exp_approx (-0.5f * x[i] * x[i]);
      dx[i] += dout[i] * (normal_cdf (x[i]) + x[i] * pdf);
    }
    break;
  }
  case BP_ACT_TANH:
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++)
      dx[i] += dout[i] * (1.0f - out[i] * out[i]);
    break;
  case BP_ACT_SIGMOID:
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++)
      dx[i] += dout[i] * out[i] * (1.0f - out[i]);
    break;
  }
}

static void
dropout_kernel (float *out, const float *x, int64_t n, float p, uint64_t key)
{
  /* element i is kept when its own hashed draw is >= p: no shared state between threads */
  float scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) if (n > PAR_MIN / 4)
  for (int64_t i = 0; i < n; i++)
    out[i] = bp_rng_hash_uniform (key, (uint64_t) i) >= p ? x[i] * scale : 0.0f;
}

static void
dropout_backward_kernel (float *dx, const float *dout, int64_t n, float p, uint64_t key)
{
  float scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) if (n > PAR_MIN / 4)
  for (int64_t i = 0; i < n; i++)
    if (bp_rng_hash_uniform (key, (uint64_t) i) >= p)
      dx[i] += dout[i] * scale;
}

static void
concat_copy_kernel (float *out, const float *x, int64_t outer, int64_t inner, int64_t out_inner,
                    int64_t offset)
{
  /* out (outer, out_inner)[:, offset:offset+inner] = x (outer, inner) */
#pragma omp parallel for schedule(static) if (outer * inner > PAR_MIN)
  for (int64_t r = 0; r < outer; r++) {
    float *dst = out + r * out_inner + offset;
    const float *src = x + r * inner;
    for (int64_t j = 0; j < inner; j++)
      dst[j] = src[j];
  }
}

static void
concat_backward_kernel (float *dx, const float *dout, int64_t outer, int64_t inner,
                        int64_t out_inner, int64_t offset)
{
  /* dx (outer, inner) += dout (outer, out_inner)[:, offset:offset+inner] */
#pragma omp parallel for schedule(static) if (outer * inner > PAR_MIN)
  for (int64_t r = 0; r < outer; r++) {
    float *dst = dx + r * inner;
    const float *src = dout + r * out_inner + offset;
    for (int64_t j = 0; j < inner; j++)
      dst[j] += src[j];
  }
}

static void
gather_rows_kernel (float *out, const float *weight, const float *indices, int64_t n, int64_t d)
{
  /* out (n,d) = weight (v,d)[indices (n)], indices valid */
#pragma omp parallel for schedule(static) if (n * d > PAR_MIN)
  for (int64_t i = 0; i < n; i++) {
    const float *src = weight + (int64_t) indices[i] * d;
    float *dst = out + i * d;
    for (int64_t j = 0; j < d; j++)
      dst[j] = src[j];
  }
}

static int64_t
embedding_kernel (float *out, const float *weight, const float *indices, int64_t n, int64_t v,
                  int64_t d)
{
  /* validate every index before writing */
  for (int64_t i = 0; i < n; i++) {
    float f = indices[i];
    if (!(f >= 0.0f && f < (float) v && f == floorf (f)))
      return i;
  }
  gather_rows_kernel (out, weight, indices, n, d);
  return -1;
}

static void
embedding_backward_kernel (float *dweight, const float *dout, const float *indices, int64_t n,
                           int64_t v, int64_t d)
{
  /* dweight (v,d)[indices[i]] += dout (n,d)[i]. Each thread owns a slice of the d columns and
   * walks the indices in order, so repeated indices add up in the same order for any thread
   * count, with no atomics. */
#pragma omp parallel if (n * d > PAR_MIN)
  {
    int nt = omp_get_num_threads (), t = omp_get_thread_num ();
    int64_t lo = d * t / nt, hi = d * (t + 1) / nt;
    for (int64_t i = 0; i < n; i++) {
      float *dst = dweight + (int64_t) indices[i] * d;
      const float *src = dout + i * d;
      for (int64_t j = lo; j < hi; j++)
        dst[j] += src[j];
    }
  }
}

/* Sums run over a fixed number of blocks (not one per thread) so that the rounding, and so
 * the result, is the same for any thread count. */
#define SUM_BLOCKS 64

static void
sum_kernel (float *out, const float *x, int64_t n, float scale)
{
  double partial[SUM_BLOCKS];
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (int b = 0; b < SUM_BLOCKS; b++) {
    int64_t lo = n * b / SUM_BLOCKS, hi = n * (b + 1) / SUM_BLOCKS;
    double s = 0.0;
    for (int64_t i = lo; i < hi; i++)
      s += x[i];
    partial[b] = s;
  }
  double s = 0.0;
  for (int b = 0; b < SUM_BLOCKS; b++)
    s += partial[b];
  out[0] = (float) (s * scale);
}

static void
sum_backward_kernel (float *dx, const float *dout, int64_t n, float scale)
{
  float g = dout[0] * scale;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (int64_t i = 0; i < n; i++)
    dx[i] += g;
}

const BpEltwiseKernels bp_cpu_eltwise_kernels = {
  .add = add_kernel,
  .mul = mul_kernel,
  .mul_backward = mul_backward_kernel,
  .scale = scale_kernel,
  .activation = activation_kernel,
  .activation_backward = activation_backward_kernel,
  .dropout = dropout_kernel,
  .dropout_backward = dropout_backward_kernel,
  .concat_copy = concat_copy_kernel,
  .concat_backward = concat_backward_kernel,
  .embedding = embedding_kernel,
  .gather_rows = gather_rows_kernel,
  .embedding_backward = embedding_backward_kernel,
  .sum = sum_kernel,
  .sum_backward = sum_backward_kernel,
};
