/* optim.cu: CUDA kernels of the optim family: the SGD and Adam/AdamW updates of all parameters
 * in one launch over a table of rows in device memory (blockIdx.y = row; the elements of
 * bp-optim-element.h, as on the CPU), and the squared norm (repeatable two-pass sum in double)
 * and scaling that gradient clipping needs, per parameter and over the table. */
#include "cuda-device.cuh"

#include "../bp-optim-element.h"

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

/* ---- multi-tensor: table (n_slots rows in device memory), grid (x: elements, y: rows) ---- */

/* The hyperparameters that do not change per step (BpOptimConfig's, by value). */
struct MultiConfig {
  float momentum, dampening, weight_decay, l1; /* SGD */
  float beta1, beta2, eps, l2;                 /* Adam (l2: weight_decay, 0 for AdamW) */
  bool nesterov, adam;
};

__global__ static void
multi_step_kernel (const BpOptimSlot *table, int n_slots, MultiConfig c)
{
  /* every row's parameter and state updated in place from its grad; the row's scalars come
   * from device memory */
  for (int k = blockIdx.y; k < n_slots; k += gridDim.y) {
    const BpOptimSlot s = table[k];
    if (c.adam) {
      BP_GRID_LOOP (i, s.n)
        bp_adam_element (s.param, s.buf0, s.buf1, s.grad, i, c.beta1, c.beta2, c.eps, c.l2,
                         c.l1, s.keep, s.lr, s.bc2_sqrt);
    } else if (c.momentum == 0.0f) {
      BP_GRID_LOOP (i, s.n)
        bp_sgd_element (s.param, s.grad, i, s.lr, c.weight_decay, c.l1);
    } else {
      BP_GRID_LOOP (i, s.n)
        bp_sgd_momentum_element (s.param, s.buf0, s.grad, i, s.lr, c.momentum, c.dampening,
                                 c.weight_decay, c.l1, c.nesterov, s.first_step != 0);
    }
  }
}

/* multi_sumsq's partial sums: one per block of the first pass. A fixed buffer of the module,
 * not scratch from the allocator, so that the launch allocates nothing (a stream capture);
 * safe because all work is queued on the backend's one stream. */
__device__ static double multi_partial[BP_SUM_MAX_GRID];

__global__ static void
multi_sumsq_partials (const BpOptimSlot *table, int n_slots)
{
  /* multi_partial (G): block b adds the elements [n b / G, n (b + 1) / G) of every row, the
   * rows in order */
  double sum = 0.0;
  for (int k = 0; k < n_slots; k++) {
    const float *x = table[k].grad;
    int64_t n = table[k].n;
    int64_t lo = n * blockIdx.x / gridDim.x, hi = n * (blockIdx.x + 1) / gridDim.x;
    for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x)
      sum += (double) x[i] * (double) x[i];
  }
  sum = bp_block_sum (sum);
  if (threadIdx.x == 0)
    multi_partial[blockIdx.x] = sum;
}

__global__ static void
multi_sumsq_finish (double *out, int g)
{
  /* out[0] = the g partial sums added in a fixed order */
  double sum = 0.0;
  for (int i = threadIdx.x; i < g; i += blockDim.x)
    sum += multi_partial[i];
  sum = bp_block_sum (sum);
  if (threadIdx.x == 0)
    out[0] = sum;
}

__global__ static void
multi_clip_kernel (const BpOptimSlot *table, int n_slots, const double *sumsq, float max_norm)
{
  /* bp_clip_grad_norm's factor, in double from the norm in device memory */
  double norm = sqrt (sumsq[0]);
  if (!isfinite (norm))
    return;
  double coef = (double) max_norm / (norm + 1e-6);
  if (!(coef < 1.0))
    return;
  float a = (float) coef;
  for (int k = blockIdx.y; k < n_slots; k += gridDim.y) {
    float *g = (float *) table[k].grad; /* the row's input, scaled in place */
    int64_t n = table[k].n;
    BP_GRID_LOOP (i, n)
      g[i] *= a;
  }
}

/* ---- the table ---- */

#define GRID(n) bp_cuda_grid ((n), BP_BLOCK), BP_BLOCK, 0, bp_cuda_ctx.stream

static BpStatus
sumsq (double *out, const float *x, int64_t n)
{
  *out = 0.0;
  if (bp_cuda_refuse_read_back ("the gradients' norm"))
    return BP_OK;
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

/* The grid of the multi-tensor updates: y one block row per table row (at most 65535, the
 * rest by a loop), x sized for the largest row and capped at one full wave (8 blocks of 256
 * threads per multiprocessor, a quarter of bp_cuda_grid's cap): the blocks of rows shorter
 * than the largest have nothing to do and return at once, so fewer of them cost less. */
static dim3
multi_grid (int64_t max_n, int n_slots)
{
  unsigned x = bp_cuda_grid (max_n, BP_BLOCK);
  unsigned wave = bp_cuda_ctx.max_blocks >= 4 ? (unsigned) bp_cuda_ctx.max_blocks / 4 : 1;
  return dim3 (x < wave ? x : wave, (unsigned) (n_slots < 65535 ? n_slots : 65535));
}

static void
cuda_multi_step (const BpOptimSlot *table, int n_slots, int64_t max_n, const BpOptimConfig *c)
{
  if (n_slots <= 0 || !bp_cuda_begin ())
    return;
  MultiConfig mc;
  mc.momentum = c->momentum;
  mc.dampening = c->dampening;
  mc.weight_decay = c->weight_decay;
  mc.l1 = c->l1;
  mc.beta1 = c->beta1;
  mc.beta2 = c->beta2;
  mc.eps = c->eps;
  mc.l2 = c->kind == BP_OPTIM_ADAM ? c->weight_decay : 0.0f;
  mc.nesterov = c->nesterov;
  mc.adam = c->kind != BP_OPTIM_SGD;
  multi_step_kernel<<<multi_grid (max_n, n_slots), BP_BLOCK, 0, bp_cuda_ctx.stream>>> (
    table, n_slots, mc);
  bp_cuda_defer (BP_CUDA_LAUNCH_TRY ("multi-tensor optimizer step"));
}

static void
cuda_multi_sumsq (double *out, const BpOptimSlot *table, int n_slots, int64_t max_n)
{
  if (!bp_cuda_begin ())
    return;
  /* the number of partial sums from an upper bound of the element count, capped */
  int64_t cap = (int64_t) BP_SUM_MAX_GRID * BP_SUM_PER_BLOCK;
  int64_t bound = n_slots <= 0 ? 0 : max_n >= cap / n_slots ? cap : max_n * n_slots;
  int g = bp_sum_grid (bound);
  cudaStream_t st = bp_cuda_ctx.stream;
  multi_sumsq_partials<<<g, BP_SUM_BLOCK, 0, st>>> (table, n_slots > 0 ? n_slots : 0);
  BpStatus s = BP_CUDA_LAUNCH_TRY ("multi-tensor sum of squares");
  if (s == BP_OK) {
    multi_sumsq_finish<<<1, BP_SUM_BLOCK, 0, st>>> (out, g);
    s = BP_CUDA_LAUNCH_TRY ("multi-tensor sum of squares, finish");
  }
  bp_cuda_defer (s);
}

static void
cuda_multi_clip (const BpOptimSlot *table, int n_slots, int64_t max_n, const double *sumsq,
                 float max_norm)
{
  if (n_slots <= 0 || !bp_cuda_begin ())
    return;
  multi_clip_kernel<<<multi_grid (max_n, n_slots), BP_BLOCK, 0, bp_cuda_ctx.stream>>> (
    table, n_slots, sumsq, max_norm);
  bp_cuda_defer (BP_CUDA_LAUNCH_TRY ("multi-tensor gradient clipping"));
}

const BpOptimKernels bp_cuda_optim_kernels = {
  .sumsq = cuda_sumsq,
  .scale = cuda_scale,
  .multi_step = cuda_multi_step,
  .multi_sumsq = cuda_multi_sumsq,
  .multi_clip = cuda_multi_clip,
};
