/* cpu/optim.c: CPU kernels of the optim family: fused SGD and Adam/AdamW updates over one
 * parameter, and the squared norm and scaling that gradient clipping needs. */
#include "cpu-kernels.h"

#include <math.h>

/* Below this many elements threads cost more than they save. */
#define PAR_MIN 32768
/* sumsq adds fixed blocks of this size in parallel, then the block sums in order. */
#define SUMSQ_BLOCK 8192
#define SUMSQ_GROUP 1024

static inline float
sign_of (float w)
{
  return (float) ((w > 0.0f) - (w < 0.0f)); /* torch.sign: 0 at 0 */
}

static void
sgd_step (float *param, float *buf, const float *grad, int64_t n, float lr, float momentum,
          float dampening, float weight_decay, float l1, bool nesterov, bool first_step)
{
  /* param (n), buf (n) updated in place from grad (n) */
  if (momentum == 0.0f) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
      float w = param[i];
      float g = grad[i] + weight_decay * w + l1 * sign_of (w);
      param[i] = w - lr * g;
    }
    return;
  }
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (int64_t i = 0; i < n; i++) {
    float w = param[i];
    float g = grad[i] + weight_decay * w + l1 * sign_of (w);
    float b = first_step ? g : momentum * buf[i] + (1.0f - dampening) * g;
    buf[i] = b;
    param[i] = w - lr * (nesterov ? g + momentum * b : b);
  }
}

static void
adam_step (float *param, float *exp_avg, float *exp_avg_sq, const float *grad, int64_t n,
           float lr, float beta1, float beta2, float eps, float weight_decay, float l1,
           bool decoupled, float step_size, float bc2_sqrt)
{
  /* param (n), exp_avg (n), exp_avg_sq (n) updated in place from grad (n) */
  float l2 = decoupled ? 0.0f : weight_decay;
  float keep = decoupled ? 1.0f - lr * weight_decay : 1.0f;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (int64_t i = 0; i < n; i++) {
    float w = param[i];
    float g = grad[i] + l2 * w + l1 * sign_of (w);
    float m = beta1 * exp_avg[i] + (1.0f - beta1) * g;
    float v = beta2 * exp_avg_sq[i] + (1.0f - beta2) * g * g;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    param[i] = w * keep - step_size * m / (sqrtf (v) / bc2_sqrt + eps);
  }
}

static double
sumsq_block (const float *x, int64_t n)
{
  double s = 0.0;
  for (int64_t i = 0; i < n; i++)
    s += (double) x[i] * (double) x[i];
  return s;
}

static double
sumsq (const float *x, int64_t n)
{
  /* block sums in parallel, added in block order: the result does not depend on threads */
  int64_t n_blocks = (n + SUMSQ_BLOCK - 1) / SUMSQ_BLOCK;
  double total = 0.0;
  for (int64_t b0 = 0; b0 < n_blocks; b0 += SUMSQ_GROUP) {
    double part[SUMSQ_GROUP];
    int64_t nb = n_blocks - b0 < SUMSQ_GROUP ? n_blocks - b0 : SUMSQ_GROUP;
#pragma omp parallel for schedule(static) if (nb > 4)
    for (int64_t b = 0; b < nb; b++) {
      int64_t start = (b0 + b) * SUMSQ_BLOCK;
      int64_t len = n - start < SUMSQ_BLOCK ? n - start : SUMSQ_BLOCK;
      part[b] = sumsq_block (x + start, len);
    }
    for (int64_t b = 0; b < nb; b++)
      total += part[b];
  }
  return total;
}

static void
scale (float *x, int64_t n, float a)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (int64_t i = 0; i < n; i++)
    x[i] *= a;
}

const BpOptimKernels bp_cpu_optim_kernels = {
  .sgd_step = sgd_step,
  .adam_step = adam_step,
  .sumsq = sumsq,
  .scale = scale,
};
