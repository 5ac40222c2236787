/* basic.cu: the CUDA backend table's own kernels: fill and axpy (grid-stride loops), and the
 * bfloat16 conversions of BP_PRECISION_BF16 (operands into bfloat16 workspaces, bfloat16
 * results back to float32). */
#include "cuda-internal.h"

#include <math.h>
#include <string.h>

#define BLOCK 256

/* dst (n) = value */
__global__ static void
fill_kernel (float *dst, float value, int64_t n)
{
  int64_t stride = (int64_t) gridDim.x * blockDim.x;
  for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
    dst[i] = value;
}

/* y (n) += a * x (n); x may be y */
__global__ static void
axpy_kernel (int64_t n, float a, const float *x, float *y)
{
  int64_t stride = (int64_t) gridDim.x * blockDim.x;
  for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] += a * x[i];
}

extern "C" BpStatus
bp_cuda_fill (cudaStream_t stream, float *dst, float value, int64_t n)
{
  if (n <= 0)
    return BP_OK;
  /* +0.0f is all zero bits: a memset is the fastest fill */
  if (value == 0.0f && !signbit (value)) {
    BP_CUDA_CHECK (cudaMemsetAsync (dst, 0, (size_t) n * sizeof (float), stream));
    return BP_OK;
  }
  fill_kernel<<<bp_cuda_grid (n, BLOCK), BLOCK, 0, stream>>> (dst, value, n);
  BP_CUDA_CHECK_LAUNCH ("fill");
  return BP_OK;
}

extern "C" BpStatus
bp_cuda_axpy (cudaStream_t stream, int64_t n, float a, const float *x, float *y)
{
  if (n <= 0)
    return BP_OK;
  axpy_kernel<<<bp_cuda_grid (n, BLOCK), BLOCK, 0, stream>>> (n, a, x, y);
  BP_CUDA_CHECK_LAUNCH ("axpy");
  return BP_OK;
}

/* ---- bfloat16 conversions (BP_PRECISION_BF16) ---- */

/* bp_bf16_bits (bp-backend.h) on the device and the host: round to nearest, ties to even;
 * subnormals kept, overflow to infinity, NaN to 0x7fc0. */
__host__ __device__ __forceinline__ uint16_t
bf16_bits (float x)
{
  uint32_t u;
  memcpy (&u, &x, sizeof u);
  if (x != x)
    return 0x7fc0;
  return (uint16_t) ((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

__device__ __forceinline__ float
bf16_float (uint16_t b)
{
  return __uint_as_float ((uint32_t) b << 16);
}

/* dst_a (n_a) = src_a rounded to bfloat16 bits, then dst_b (n_b) from src_b: two operands in
 * one launch */
__global__ static void
to_bf16_kernel (uint16_t *dst_a, const float *src_a, int64_t n_a, uint16_t *dst_b,
                const float *src_b, int64_t n_b)
{
  int64_t stride = (int64_t) gridDim.x * blockDim.x;
  for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < n_a + n_b; i += stride)
    if (i < n_a)
      dst_a[i] = bf16_bits (src_a[i]);
    else
      dst_b[i - n_a] = bf16_bits (src_b[i - n_a]);
}

/* dst (n) = src (n) as float32, or dst += src */
__global__ static void
from_bf16_kernel (float *dst, const uint16_t *src, int64_t n, bool accumulate)
{
  int64_t stride = (int64_t) gridDim.x * blockDim.x;
  for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
    dst[i] = accumulate ? dst[i] + bf16_float (src[i]) : bf16_float (src[i]);
}

extern "C" BpStatus
bp_cuda_to_bf16 (cudaStream_t stream, uint16_t *dst_a, const float *src_a, int64_t n_a,
                 uint16_t *dst_b, const float *src_b, int64_t n_b)
{
  if (n_a < 0)
    n_a = 0;
  if (n_b < 0 || !dst_b)
    n_b = 0;
  if (n_a + n_b == 0)
    return BP_OK;
  to_bf16_kernel<<<bp_cuda_grid (n_a + n_b, BLOCK), BLOCK, 0, stream>>> (dst_a, src_a, n_a,
                                                                         dst_b, src_b, n_b);
  BP_CUDA_CHECK_LAUNCH ("float32 to bfloat16");
  return BP_OK;
}

extern "C" BpStatus
bp_cuda_from_bf16 (cudaStream_t stream, float *dst, const uint16_t *src, int64_t n,
                   bool accumulate)
{
  if (n <= 0)
    return BP_OK;
  from_bf16_kernel<<<bp_cuda_grid (n, BLOCK), BLOCK, 0, stream>>> (dst, src, n, accumulate);
  BP_CUDA_CHECK_LAUNCH ("bfloat16 to float32");
  return BP_OK;
}

extern "C" float
bp_cuda_bf16_round_host (float x)
{
  uint32_t u = (uint32_t) bf16_bits (x) << 16;
  float f;
  memcpy (&f, &u, sizeof f);
  return f;
}
