/* cpu/loss.c: CPU kernels of the loss family: softmax, log-softmax, cross-entropy, MSE, BCE. */
#include "cpu-kernels.h"

#include <math.h>
#include <string.h>

/* Below this many elements the kernels stay on one thread. */
#define PARALLEL_MIN 32768

/* Sums are taken over a fixed number of chunks (each summed in order, in double), then the
 * chunk sums in order: the result does not depend on the thread count. */
#define SUM_CHUNKS 64

/* exp (x) that GCC vectorises inside `omp simd` loops, where libm's expf stays a scalar call:
 * Cephes' expf, x = n ln2 + r with |r| <= ln2/2, exp (r) by a degree-7 polynomial and 2^n
 * built in the exponent bits. Within 1e-7 relative of exp over [-87.3, 88]; 0 below (no
 * denormals), +inf above (the kernels only pass x <= 0, up to rounding); NaN stays NaN. The
 * special cases are integer masks, and the clamp keeps NaN off the float-to-int conversion.
 * (GCC if-converts the clamp only with -fno-trapping-math.) */
static inline float
vexpf (float x)
{
  float xc = x > -87.33654f ? x : -87.33654f;
  xc = xc < 88.0f ? xc : 88.0f;
  /* n = round (xc / ln2), truncating a positive number */
  int32_t ni = (int32_t) (xc * 1.44269504089f + 128.5f) - 128;
  float n = (float) ni;
  float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = (ni + 127) << 23;
  float scale, y;
  memcpy (&scale, &bits, sizeof scale);
  y = p * scale;
  int32_t yb, under = -(int32_t) (x < -87.33654f), over = -(int32_t) (x > 88.0f);
  int32_t nan = -(int32_t) (x != x);
  memcpy (&yb, &y, sizeof yb);
  yb = (yb & ~(under | over | nan)) | (over & 0x7f800000) | (nan & 0x7fc00000);
  memcpy (&y, &yb, sizeof y);
  return y;
}

/* The row maximum and sum of exp (x - max): lse = max + log (sum). */
static inline void
row_max_sumexp (const float *xr, int64_t cols, float *max_out, double *sum_out)
{
  float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
  for (int64_t j = 0; j < cols; j++)
    mx = xr[j] > mx ? xr[j] : mx;
  /* float lanes within chunks of 1024 (vectorised), double across chunks */
  double sum = 0.0;
  for (int64_t j0 = 0; j0 < cols; j0 += 1024) {
    int64_t j1 = j0 + 1024 < cols ? j0 + 1024 : cols;
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int64_t j = j0; j < j1; j++)
      acc += vexpf (xr[j] - mx);
    sum += acc;
  }
  *max_out = mx;
  *sum_out = sum;
}

/* out (R,C), x (R,C) */
static void
cpu_softmax_forward (float *out, const float *x, int64_t rows, int64_t cols)
{
#pragma omp parallel for schedule(static) if (rows * cols > PARALLEL_MIN)
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * cols;
    float *orow = out + r * cols;
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < cols; j++)
      mx = xr[j] > mx ? xr[j] : mx;
    /* exp once into out, summed as in row_max_sumexp, then scaled */
    double sum = 0.0;
    for (int64_t j0 = 0; j0 < cols; j0 += 1024) {
      int64_t j1 = j0 + 1024 < cols ? j0 + 1024 : cols;
      float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
      for (int64_t j = j0; j < j1; j++) {
        orow[j] = vexpf (xr[j] - mx);
        acc += orow[j];
      }
      sum += acc;
    }
    float inv = (float) (1.0 / sum);
#pragma omp simd
    for (int64_t j = 0; j < cols; j++)
      orow[j] *= inv;
  }
}

/* out (R,C), x (R,C) */
static void
cpu_log_softmax_forward (float *out, const float *x, int64_t rows, int64_t cols)
{
#pragma omp parallel for schedule(static) if (rows * cols > PARALLEL_MIN)
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * cols;
    float *orow = out + r * cols;
    float mx;
    double sum;
    row_max_sumexp (xr, cols, &mx, &sum);
    float shift = mx + (float) log (sum);
#pragma omp simd
    for (int64_t j = 0; j < cols; j++)
      orow[j] = xr[j] - shift;
  }
}

/* dx (R,C) += y * (dy - sum_j dy*y) */
static void
cpu_softmax_backward (float *dx, const float *dy, const float *y, int64_t rows, int64_t cols)
{
#pragma omp parallel for schedule(static) if (rows * cols > PARALLEL_MIN)
  for (int64_t r = 0; r < rows; r++) {
    const float *yr = y + r * cols, *gr = dy + r * cols;
    float *dr = dx + r * cols;
    double dot = 0.0;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < cols; j++)
      dot += (double) (gr[j] * yr[j]);
    float d = (float) dot;
#pragma omp simd
    for (int64_t j = 0; j < cols; j++)
      dr[j] += yr[j] * (gr[j] - d);
  }
}

/* dx (R,C) += dy - exp (y) * sum_j dy */
static void
cpu_log_softmax_backward (float *dx, const float *dy, const float *y, int64_t rows, int64_t cols)
{
#pragma omp parallel for schedule(static) if (rows * cols > PARALLEL_MIN)
  for (int64_t r = 0; r < rows; r++) {
    const float *yr = y + r * cols, *gr = dy + r * cols;
    float *dr = dx + r * cols;
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < cols; j++)
      sum += gr[j];
    float s = (float) sum;
#pragma omp simd
    for (int64_t j = 0; j < cols; j++)
      dr[j] += gr[j] - vexpf (yr[j]) * s;
  }
}

static inline bool
is_class_index (float t, int64_t classes)
{
  return isfinite (t) && t >= 0.0f && t < (float) classes && t == floorf (t);
}

static int64_t
cpu_check_targets (float *bad_value, const float *targets, int64_t n, int64_t classes)
{
  for (int64_t i = 0; i < n; i++) {
    if (!is_class_index (targets[i], classes)) {
      *bad_value = targets[i];
      return i;
    }
  }
  return -1;
}

/* loss (1), lse (N), logits (N,C), targets (N) */
static void
cpu_cross_entropy_forward (float *loss, float *lse, const float *logits, const float *targets,
                           int64_t n, int64_t c, float label_smoothing)
{
  double partial[SUM_CHUNKS];
  int64_t per = (n + SUM_CHUNKS - 1) / SUM_CHUNKS;
  double ls = label_smoothing;
#pragma omp parallel for schedule(static) if (n * c > PARALLEL_MIN)
  for (int k = 0; k < SUM_CHUNKS; k++) {
    int64_t r0 = k * per, r1 = r0 + per < n ? r0 + per : n;
    double acc = 0.0;
    for (int64_t r = r0; r < r1; r++) {
      const float *xr = logits + r * c;
      float mx;
      double sum;
      row_max_sumexp (xr, c, &mx, &sum);
      double l = (double) mx + log (sum);
      lse[r] = (float) l;
      double nll = l - xr[(int64_t) targets[r]];
      if (ls > 0.0) {
        double sx = 0.0;
#pragma omp simd reduction(+ : sx)
        for (int64_t j = 0; j < c; j++)
          sx += xr[j];
        nll = (1.0 - ls) * nll + ls * (l - sx / (double) c);
      }
      acc += nll;
    }
    partial[k] = acc;
  }
  double total = 0.0;
  for (int k = 0; k < SUM_CHUNKS; k++)
    total += partial[k];
  loss[0] = (float) (total / (double) n);
}

/* dlogits (N,C) += dloss / N * (softmax - ((1-ls) * onehot + ls / C)) */
static void
cpu_cross_entropy_backward (float *dlogits, const float *dloss, const float *logits,
                            const float *lse, const float *targets, int64_t n, int64_t c,
                            float label_smoothing)
{
  float g = dloss[0] / (float) n;
  float off = label_smoothing / (float) c, on = 1.0f - label_smoothing + off;
#pragma omp parallel for schedule(static) if (n * c > PARALLEL_MIN)
  for (int64_t r = 0; r < n; r++) {
    const float *xr = logits + r * c;
    float *dr = dlogits + r * c;
    float l = lse[r];
#pragma omp simd
    for (int64_t j = 0; j < c; j++)
      dr[j] += g * (vexpf (xr[j] - l) - off);
    dr[(int64_t) targets[r]] -= g * (on - off);
  }
}

/* loss (1) = mean ((pred - target)^2) */
static void
cpu_mse_forward (float *loss, const float *pred, const float *target, int64_t n)
{
  double partial[SUM_CHUNKS];
  int64_t per = (n + SUM_CHUNKS - 1) / SUM_CHUNKS;
#pragma omp parallel for schedule(static) if (n > PARALLEL_MIN)
  for (int k = 0; k < SUM_CHUNKS; k++) {
    int64_t i0 = k * per, i1 = i0 + per < n ? i0 + per : n;
    double acc = 0.0;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = i0; i < i1; i++) {
      float d = pred[i] - target[i];
      acc += (double) (d * d);
    }
    partial[k] = acc;
  }
  double total = 0.0;
  for (int k = 0; k < SUM_CHUNKS; k++)
    total += partial[k];
  loss[0] = (float) (total / (double) n);
}

static void
cpu_mse_backward (float *dpred, float *dtarget, const float *dloss, const float *pred,
                  const float *target, int64_t n)
{
  float g = 2.0f * dloss[0] / (float) n;
#pragma omp parallel for simd schedule(static) if (n > PARALLEL_MIN)
  for (int64_t i = 0; i < n; i++) {
    float d = g * (pred[i] - target[i]);
    if (dpred)
      dpred[i] += d;
    if (dtarget)
      dtarget[i] -= d;
  }
}

/* loss (1) = mean (max (x,0) - x*t + log1p (exp (-|x|))) */
static void
cpu_bce_logits_forward (float *loss, const float *logits, const float *target, int64_t n)
{
  double partial[SUM_CHUNKS];
  int64_t per = (n + SUM_CHUNKS - 1) / SUM_CHUNKS;
#pragma omp parallel for schedule(static) if (n > PARALLEL_MIN)
  for (int k = 0; k < SUM_CHUNKS; k++) {
    int64_t i0 = k * per, i1 = i0 + per < n ? i0 + per : n;
    double acc = 0.0;
    for (int64_t i = i0; i < i1; i++) {
      float x = logits[i];
      acc += (double) (fmaxf (x, 0.0f) - x * target[i] + log1pf (expf (-fabsf (x))));
    }
    partial[k] = acc;
  }
  double total = 0.0;
  for (int k = 0; k < SUM_CHUNKS; k++)
    total += partial[k];
  loss[0] = (float) (total / (double) n);
}

static void
cpu_bce_logits_backward (float *dlogits, float *dtarget, const float *dloss, const float *logits,
                         const float *target, int64_t n)
{
  float g = dloss[0] / (float) n;
#pragma omp parallel for schedule(static) if (n > PARALLEL_MIN)
  for (int64_t i = 0; i < n; i++) {
    float x = logits[i];
    /* sigmoid without overflow: e = exp (-|x|) is in (0, 1] */
    float e = expf (-fabsf (x));
    float sig = x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    if (dlogits)
      dlogits[i] += g * (sig - target[i]);
    if (dtarget)
      dtarget[i] -= g * x;
  }
}

/* logits (N,C), targets (N) */
static int64_t
cpu_count_correct (const float *logits, const float *targets, int64_t n, int64_t c)
{
  int64_t correct = 0;
#pragma omp parallel for schedule(static) reduction(+ : correct) if (n * c > PARALLEL_MIN)
  for (int64_t r = 0; r < n; r++) {
    const float *xr = logits + r * c;
    int64_t best = 0;
    for (int64_t j = 1; j < c; j++)
      if (xr[j] > xr[best])
        best = j;
    if ((float) best == targets[r])
      correct++;
  }
  return correct;
}

static void
cpu_count_correct_add (float *acc, const float *logits, const float *targets, int64_t n,
                       int64_t c)
{
  acc[0] += (float) cpu_count_correct (logits, targets, n, c);
}

const BpLossKernels bp_cpu_loss_kernels = {
  .softmax_forward = cpu_softmax_forward,
  .log_softmax_forward = cpu_log_softmax_forward,
  .softmax_backward = cpu_softmax_backward,
  .log_softmax_backward = cpu_log_softmax_backward,
  .check_targets = cpu_check_targets,
  .cross_entropy_forward = cpu_cross_entropy_forward,
  .cross_entropy_backward = cpu_cross_entropy_backward,
  .mse_forward = cpu_mse_forward,
  .mse_backward = cpu_mse_backward,
  .bce_logits_forward = cpu_bce_logits_forward,
  .bce_logits_backward = cpu_bce_logits_backward,
  .count_correct = cpu_count_correct,
  .count_correct_add = cpu_count_correct_add,
};
