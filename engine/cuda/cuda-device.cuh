/* cuda-device.cuh: device code the kernel files share: grid-stride loops, warp and block sums,
 * the engine RNG's hash, and repeatable two-pass sums (no float atomics: the same inputs give
 * the same bits on every run). Included by the .cu files only. */
#pragma once

#include "cuda-internal.h"

#include <math.h>
#include <stdint.h>

/* Threads per block of the elementwise kernels. */
#define BP_BLOCK 256

/* for (i = this thread's first index; i < n; i += all threads of the grid) */
#define BP_GRID_LOOP(i, n)                                                                     \
  for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < (n);                  \
       i += (int64_t) gridDim.x * blockDim.x)

/* ---- warp and block sums (blockDim.x a multiple of 32, at most 1024) ---- */

template <typename T>
__device__ __forceinline__ T
bp_warp_sum (T v)
{
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync (0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float
bp_warp_max (float v)
{
  for (int o = 16; o > 0; o >>= 1)
    v = fmaxf (v, __shfl_xor_sync (0xffffffffu, v, o));
  return v;
}

/* The sum of v over the block, returned to every thread. The order of the additions depends
 * only on the block size, so the result is repeatable. Every thread of the block must call
 * it (it synchronises). */
template <typename T>
__device__ T
bp_block_sum (T v)
{
  __shared__ T part[32];
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  v = bp_warp_sum (v);
  __syncthreads (); /* a previous call's readers are done with part */
  if (lane == 0)
    part[warp] = v;
  __syncthreads ();
  T t = lane < n_warps ? part[lane] : T (0);
  return bp_warp_sum (t);
}

/* ---- the engine RNG's per-element hash (bp-rng.c), bit for bit ---- */

__host__ __device__ __forceinline__ uint64_t
bp_cuda_mix (uint64_t z)
{
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* bp_rng_hash_uniform (key, k): uniform in [0, 1) with 24 bits */
__host__ __device__ __forceinline__ float
bp_cuda_hash_uniform (uint64_t key, uint64_t k)
{
  uint64_t h = bp_cuda_mix (key ^ bp_cuda_mix (k + 0x9e3779b97f4a7c15ULL));
  return (float) (h >> 40) * (1.0f / 16777216.0f);
}

/* ---- repeatable sums over n terms ----
 * Pass 1: block b of G adds the terms [n b / G, n (b + 1) / G) in double; G depends only on n.
 * Pass 2: one block adds the G partial sums in a fixed order. */

#define BP_SUM_BLOCK 256
#define BP_SUM_MAX_GRID 512
#define BP_SUM_PER_BLOCK 8192 /* terms per block before another block is added */

template <class F>
__global__ void
bp_sum_partials_kernel (double *partial, int64_t n, F term)
{
  /* partial (G) */
  int64_t lo = n * blockIdx.x / gridDim.x, hi = n * (blockIdx.x + 1) / gridDim.x;
  double s = 0.0;
  for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x)
    s += term (i);
  s = bp_block_sum (s);
  if (threadIdx.x == 0)
    partial[blockIdx.x] = s;
}

/* out[0] = (float) (scale * sum of partial (g)), out_d[0] = scale * that sum; either may be
 * NULL. (A template only so that every kernel file gets its own copy.) */
template <typename T>
__global__ void
bp_sum_finish_kernel (float *out, double *out_d, const T *partial, int g, double scale)
{
  double s = 0.0;
  for (int i = threadIdx.x; i < g; i += blockDim.x)
    s += partial[i];
  s = bp_block_sum (s) * scale;
  if (threadIdx.x == 0) {
    if (out)
      out[0] = (float) s;
    if (out_d)
      out_d[0] = s;
  }
}

static inline int
bp_sum_grid (int64_t n)
{
  int64_t g = (n + BP_SUM_PER_BLOCK - 1) / BP_SUM_PER_BLOCK;
  return (int) (g < 1 ? 1 : g > BP_SUM_MAX_GRID ? BP_SUM_MAX_GRID : g);
}

/* Queues out = scale * sum over i < n of term (i) (a functor with a __device__
 * `double operator() (int64_t i) const`) on the stream. */
template <class F>
static BpStatus
bp_cuda_sum (cudaStream_t stream, int64_t n, F term, double scale, float *out, double *out_d)
{
  int g = bp_sum_grid (n);
  size_t bytes = (size_t) g * sizeof (double);
  double *partial = (double *) bp_cuda_alloc (bytes);
  if (!partial)
    return bp_last_status ();
  bp_sum_partials_kernel<<<g, BP_SUM_BLOCK, 0, stream>>> (partial, n, term);
  BpStatus s = BP_CUDA_LAUNCH_TRY ("sum partials");
  if (s == BP_OK) {
    bp_sum_finish_kernel<<<1, BP_SUM_BLOCK, 0, stream>>> (out, out_d, partial, g, scale);
    s = BP_CUDA_LAUNCH_TRY ("sum finish");
  }
  bp_cuda_free (partial, bytes); /* stream order: the kernels above run before any reuse */
  return s;
}

/* ---- per-channel sums over x (N,C,S) laid out as N runs of S per channel ----
 * Block (c, p) of (C, P) adds two terms over the positions k in [M p / P, M (p + 1) / P) of
 * channel c, M = N S, position k being element ((k / S) C + c) S + k % S; P depends only on M.
 * Then one thread per channel adds its P partial sums in order. Used by batch norm and the
 * convolution bias gradient. */

#define BP_CHAN_BLOCK 256
#define BP_CHAN_MAX_SPLIT 64
#define BP_CHAN_PER_BLOCK 8192

static inline int
bp_chan_split (int64_t m)
{
  int64_t p = (m + BP_CHAN_PER_BLOCK - 1) / BP_CHAN_PER_BLOCK;
  return (int) (p < 1 ? 1 : p > BP_CHAN_MAX_SPLIT ? BP_CHAN_MAX_SPLIT : p);
}

/* partial (C, P, 2): the sums of term (c, index) over block (c, p)'s positions; term returns a
 * double2 (two sums at once) */
template <class F>
__global__ void
bp_chan_partials_kernel (double2 *partial, int64_t n, int64_t c, int64_t s, F term)
{
  int64_t ch = blockIdx.x, m = n * s;
  int p = blockIdx.y, n_split = gridDim.y;
  int64_t lo = m * p / n_split, hi = m * (p + 1) / n_split;
  double a = 0.0, b = 0.0;
  for (int64_t k = lo + threadIdx.x; k < hi; k += blockDim.x) {
    int64_t i = k / s, j = k - i * s;
    double2 t = term (ch, (i * c + ch) * s + j);
    a += t.x;
    b += t.y;
  }
  a = bp_block_sum (a);
  b = bp_block_sum (b);
  if (threadIdx.x == 0)
    partial[ch * n_split + p] = make_double2 (a, b);
}

/* Queues partial (C, P) for x (N,C,S); *split gets P. The caller frees partial (C * P
 * double2) after queueing its own use of it. NULL with the error set when out of memory. */
template <class F>
static double2 *
bp_cuda_chan_partials (cudaStream_t stream, int64_t n, int64_t c, int64_t s, F term, int *split,
                       size_t *bytes)
{
  int p = bp_chan_split (n * s);
  *split = p;
  *bytes = (size_t) (c > 0 ? c : 1) * (size_t) p * sizeof (double2);
  double2 *partial = (double2 *) bp_cuda_alloc (*bytes);
  if (!partial)
    return NULL;
  if (c > 0) {
    dim3 grid ((unsigned) c, (unsigned) p);
    bp_chan_partials_kernel<<<grid, BP_CHAN_BLOCK, 0, stream>>> (partial, n, c, s, term);
    if (BP_CUDA_LAUNCH_TRY ("channel sums") != BP_OK) {
      bp_cuda_free (partial, *bytes);
      return NULL;
    }
  }
  return partial;
}

/* The two sums of channel ch from its P partials, in order. */
__device__ __forceinline__ double2
bp_chan_total (const double2 *partial, int64_t ch, int split)
{
  double a = 0.0, b = 0.0;
  for (int p = 0; p < split; p++) {
    a += partial[ch * split + p].x;
    b += partial[ch * split + p].y;
  }
  return make_double2 (a, b);
}
