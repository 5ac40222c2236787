/* optim.cu: CUDA kernels of the optim family: fused SGD and Adam/AdamW updates of one
 * parameter (one launch each, the formulas of cpu/optim.c), and the squared norm (repeatable
 * two-pass sum in double) and scaling that gradient clipping needs. */
#include "cuda-device.cuh"

__device__ __forceinline__ float
sign_of (float w)
{
  return (float) ((w > 0.0f) - (w < 0.0f)); /* torch.sign: 0 at 0 */
}

__global__ static void
sgd_kernel (float *param, float *buf, const float *grad, int64_t n, float lr, float momentum,
            float dampening, float weight_decay, float l1, bool nesterov, bool first_step)
{
  /* param (n), buf (n) updated in place from grad (n); buf unused without momentum */
  BP_GRID_LOOP (i, n) {
    float w = param[i];
    float g = grad[i] + weight_decay * w + l1 * sign_of (w);
    if (momentum == 0.0f) {
      param[i] = w - lr * g;
      continue;
    }
    float b = first_step ? g : momentum * buf[i] + (1.0f - dampening) * g;
    buf[i] = b;
    param[i] = w - lr * (nesterov ? g + momentum * b : b);
  }
}

__global__ static void
adam_kernel (float *param, float *exp_avg, float *exp_avg_sq, const float *grad, int64_t n,
             float beta1, float beta2, float eps, float l2, float l1, float keep,
             float step_size, float bc2_sqrt)
{
  /* param, exp_avg, exp_avg_sq (n) updated in place from grad (n) */
  BP_GRID_LOOP (i, n) {
    float w = param[i];
    float g = grad[i] + l2 * w + l1 * sign_of (w);
    float m = beta1 * exp_avg[i] + (1.0f - beta1) * g;
    float v = beta2 * exp_avg_sq[i] + (1.0f - beta2) * g * g;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    param[i] = w * keep - step_size * m / (sqrtf (v) / bc2_sqrt + eps);
  }
}

__global__ static void
scale_kernel (float *x, int64_t n, float a)
{
  BP_GRID_LOOP (i, n)
    x[i] *= a;
}

struct SquareTerm {
  const float *x;
  __device__ double operator() (int64_t i) const { return (double) x[i] * (double) x[i]; }
};

/* ---- the table ---- */

#define GRID(n) bp_cuda_grid ((n), BP_BLOCK), BP_BLOCK, 0, bp_cuda_ctx.stream

static void
cuda_sgd_step (float *param, float *buf, const float *grad, int64_t n, float lr, float momentum,
               float dampening, float weight_decay, float l1, bool nesterov, bool first_step)
{
  if (n <= 0 || !bp_cuda_begin ())
    return;
  sgd_kernel<<<GRID (n)>>> (param, buf, grad, n, lr, momentum, dampening, weight_decay, l1,
                            nesterov, first_step);
  bp_cuda_defer (BP_CUDA_LAUNCH_TRY ("sgd step"));
}

static void
cuda_adam_step (float *param, float *exp_avg, float *exp_avg_sq, const float *grad, int64_t n,
                float lr, float beta1, float beta2, float eps, float weight_decay, float l1,
                bool decoupled, float step_size, float bc2_sqrt)
{
  if (n <= 0 || !bp_cuda_begin ())
    return;
  float l2 = decoupled ? 0.0f : weight_decay;
  float keep = decoupled ? 1.0f - lr * weight_decay : 1.0f;
  adam_kernel<<<GRID (n)>>> (param, exp_avg, exp_avg_sq, grad, n, beta1, beta2, eps, l2, l1,
                             keep, step_size, bc2_sqrt);
  bp_cuda_defer (BP_CUDA_LAUNCH_TRY ("adam step"));
}

static BpStatus
sumsq (double *out, const float *x, int64_t n)
{
  size_t bytes = sizeof (double);
  double *d_out = (double *) bp_cuda_alloc (bytes);
  if (!d_out)
    return bp_last_status ();
  cudaStream_t st = bp_cuda_ctx.stream;
  BpStatus s = bp_cuda_sum (st, n, SquareTerm{x}, 1.0, NULL, d_out);
  if (s == BP_OK)
    s = BP_CUDA_TRY (cudaMemcpyAsync (out, d_out, bytes, cudaMemcpyDeviceToHost, st));
  if (s == BP_OK)
    s = BP_CUDA_TRY (cudaStreamSynchronize (st));
  bp_cuda_free (d_out, bytes);
  return s;
}

static double
cuda_sumsq (const float *x, int64_t n)
{
  /* waits for the answer; NaN (error kept for synchronize) when the device fails, so that
   * clip_grad_norm leaves the gradients alone */
  if (n <= 0)
    return 0.0;
  if (!bp_cuda_begin ())
    return NAN;
  double total = 0.0;
  BpStatus s = sumsq (&total, x, n);
  if (s != BP_OK) {
    bp_cuda_defer (s);
    return NAN;
  }
  return total;
}

static void
cuda_scale (float *x, int64_t n, float a)
{
  if (n <= 0 || !bp_cuda_begin ())
    return;
  scale_kernel<<<GRID (n)>>> (x, n, a);
  bp_cuda_defer (BP_CUDA_LAUNCH_TRY ("scale"));
}

const BpOptimKernels bp_cuda_optim_kernels = {
  .sgd_step = cuda_sgd_step,
  .adam_step = cuda_adam_step,
  .sumsq = cuda_sumsq,
  .scale = cuda_scale,
};
