/* basic.cu: the CUDA backend table's own kernels: fill and axpy (grid-stride loops). */
#include "cuda-internal.h"

#include <math.h>

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
