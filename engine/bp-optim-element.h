/* bp-optim-element.h: one element of the optimizers' updates (PyTorch's formulas), the code the
 * CPU kernels (cpu/optim.c) and the CUDA kernels (cuda/optim.cu) both run, so that the two
 * backends cannot drift apart. In place: the parameter, and the optimizer's state for it. */
#pragma once

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __CUDACC__
#define BP_OPTIM_ELEMENT static __device__ __forceinline__
#else
#define BP_OPTIM_ELEMENT static inline
#endif

BP_OPTIM_ELEMENT float
bp_sign_of (float w)
{
  return (float) ((w > 0.0f) - (w < 0.0f)); /* torch.sign: 0 at 0 */
}

/* SGD without momentum: the gradient with weight decay (l2) and l1 applied. */
BP_OPTIM_ELEMENT void
bp_sgd_element (float *param, const float *grad, int64_t i, float lr, float weight_decay,
                float l1)
{
  float w = param[i];
  float g = grad[i] + weight_decay * w + l1 * bp_sign_of (w);
  param[i] = w - lr * g;
}

/* SGD with momentum (buf), dampening and Nesterov; the first step sets buf to the gradient. */
BP_OPTIM_ELEMENT void
bp_sgd_momentum_element (float *param, float *buf, const float *grad, int64_t i, float lr,
                         float momentum, float dampening, float weight_decay, float l1,
                         bool nesterov, bool first_step)
{
  float w = param[i];
  float g = grad[i] + weight_decay * w + l1 * bp_sign_of (w);
  float b = first_step ? g : momentum * buf[i] + (1.0f - dampening) * g;
  buf[i] = b;
  param[i] = w - lr * (nesterov ? g + momentum * b : b);
}

/* Adam with the weight decay as l2, AdamW with it in keep (1 - lr * weight_decay); step_size
 * is lr / (1 - beta1^t), bc2_sqrt sqrt (1 - beta2^t). */
BP_OPTIM_ELEMENT void
bp_adam_element (float *param, float *exp_avg, float *exp_avg_sq, const float *grad, int64_t i,
                 float beta1, float beta2, float eps, float l2, float l1, float keep,
                 float step_size, float bc2_sqrt)
{
  float w = param[i];
  float g = grad[i] + l2 * w + l1 * bp_sign_of (w);
  float m = beta1 * exp_avg[i] + (1.0f - beta1) * g;
  float v = beta2 * exp_avg_sq[i] + (1.0f - beta2) * g * g;
  exp_avg[i] = m;
  exp_avg_sq[i] = v;
  param[i] = w * keep - step_size * m / (sqrtf (v) / bc2_sqrt + eps);
}
