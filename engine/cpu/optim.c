/* cpu/optim.c: CPU kernels of the optim family: fused SGD and Adam/AdamW updates of one
 * parameter (the elements of bp-optim-element.h), the squared norm and scaling that gradient
 * clipping needs, and the multi-tensor entries, which run them row by row over a table. */
#include "cpu-kernels.h"

#include <math.h>

#include "../bp-optim-element.h"

/* Below this many elements threads cost more than they save. */
#define PAR_MIN 32768
/* sumsq adds fixed blocks of this size in parallel, then the block sums in order. */
#define SUMSQ_BLOCK 8192
#define SUMSQ_GROUP 1024

static void
sgd_step (float *param, float *buf, const float *grad, int64_t n, float lr, float momentum,
          float dampening, float weight_decay, float l1, bool nesterov, bool first_step)
{
  /* param (n), buf (n) updated in place from grad (n) */
  if (momentum == 0.0f) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++)
      bp_sgd_element (param, grad, i, lr, weight_decay, l1);
    return;
  }
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (int64_t i = 0; i < n; i++)
    bp_sgd_momentum_element (param, buf, grad, i, lr, momentum, dampening, weight_decay, l1,
                             nesterov, first_step);
}

static void
adam_update (float *param, float *exp_avg, float *exp_avg_sq, const float *grad, int64_t n,
             float beta1, float beta2, float eps, float l2, float l1, float keep,
             float step_size, float bc2_sqrt)
{
  /* param (n), exp_avg (n), exp_avg_sq (n) updated in place from grad (n) */
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (int64_t i = 0; i < n; i++)
    bp_adam_element (param, exp_avg, exp_avg_sq, grad, i, beta1, beta2, eps, l2, l1, keep,
                     step_size, bc2_sqrt);
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

/* ---- multi-tensor: the functions above, row by row (the table is host memory) ---- */

static void
multi_step (const BpOptimSlot *table, int n_slots, int64_t max_n, const BpOptimConfig *c)
{
  (void) max_n;
  float l2 = c->kind == BP_OPTIM_ADAM ? c->weight_decay : 0.0f;
  for (int k = 0; k < n_slots; k++) {
    const BpOptimSlot *s = &table[k];
    if (c->kind == BP_OPTIM_SGD)
      sgd_step (s->param, s->buf0, s->grad, s->n, s->lr, c->momentum, c->dampening,
                c->weight_decay, c->l1, c->nesterov, s->first_step != 0);
    else
      adam_update (s->param, s->buf0, s->buf1, s->grad, s->n, c->beta1, c->beta2, c->eps, l2,
                   c->l1, s->keep, s->lr, s->bc2_sqrt);
  }
}

static void
multi_sumsq (double *out, const BpOptimSlot *table, int n_slots, int64_t max_n)
{
  /* the rows in order, as bp_clip_grad_norm adds the parameters */
  (void) max_n;
  double total = 0.0;
  for (int k = 0; k < n_slots; k++)
    total += sumsq (table[k].grad, table[k].n);
  out[0] = total;
}

static void
multi_clip (const BpOptimSlot *table, int n_slots, int64_t max_n, const double *sumsq,
            float max_norm)
{
  (void) max_n;
  double norm = sqrt (sumsq[0]);
  if (!isfinite (norm))
    return;
  double coef = (double) max_norm / (norm + 1e-6);
  if (coef < 1.0)
    for (int k = 0; k < n_slots; k++)
      scale ((float *) table[k].grad, table[k].n, (float) coef); /* the gradient, scaled */
}

const BpOptimKernels bp_cpu_optim_kernels = {
  .sumsq = sumsq,
  .scale = scale,
  .multi_step = multi_step,
  .multi_sumsq = multi_sumsq,
  .multi_clip = multi_clip,
};
