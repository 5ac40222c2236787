/* basic.cu: the CUDA backend table's own kernels: fill and axpy (grid-stride loops), the
 * Linear layer's bias broadcast and repeatable column sums (the bias gradient), and the
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

/* ---- the Linear layer: bias broadcast, bias gradient ---- */

/* c (m,n) with leading dimension ldc = bias (n) in every row */
__global__ static void
bias_rows_kernel (float *c, int64_t ldc, const float *bias, int64_t m, int64_t n)
{
  int64_t stride = (int64_t) gridDim.x * blockDim.x;
  for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < m * n; i += stride) {
    int64_t r = i / n, j = i - r * n;
    c[r * ldc + j] = bias[j];
  }
}

extern "C" BpStatus
bp_cuda_bias_rows (cudaStream_t stream, float *c, int64_t ldc, const float *bias, int64_t m,
                   int64_t n)
{
  if (m <= 0 || n <= 0)
    return BP_OK;
  bias_rows_kernel<<<bp_cuda_grid (m * n, BLOCK), BLOCK, 0, stream>>> (c, ldc, bias, m, n);
  BP_CUDA_CHECK_LAUNCH ("bias rows");
  return BP_OK;
}

/* Column sums: a block is COL_TILE columns (one warp reads a row's segment at once) by
 * COL_LANES rows read together; grid (columns / COL_TILE, P) with P row slices. */
#define COL_TILE 32
#define COL_LANES 8
#define COL_ROWS_PER_SLICE 512
#define COL_MAX_SPLIT 64

/* Slices of m rows: depends only on m. */
static int
col_split (int64_t m)
{
  int64_t p = (m + COL_ROWS_PER_SLICE - 1) / COL_ROWS_PER_SLICE;
  return (int) (p < 1 ? 1 : p > COL_MAX_SPLIT ? COL_MAX_SPLIT : p);
}

/* Block (bx, p): thread (tx, ty) adds rows lo + ty, lo + ty + COL_LANES, ... of slice p
 * [m p / P, m (p + 1) / P) in column COL_TILE bx + tx, in double; then the COL_LANES sums of a
 * column are added in order. partial (P, n) gets the slice sums, or, with one slice (partial
 * NULL), db += the sum. */
__global__ static void
col_sum_kernel (int64_t m, int64_t n, const float *x, double *partial, float *db)
{
  __shared__ double lanes[COL_LANES][COL_TILE];
  int64_t j = (int64_t) blockIdx.x * COL_TILE + threadIdx.x;
  int64_t p = blockIdx.y, split = gridDim.y;
  int64_t lo = m * p / split, hi = m * (p + 1) / split;
  double s = 0.0;
  if (j < n)
    for (int64_t r = lo + threadIdx.y; r < hi; r += COL_LANES)
      s += x[r * n + j];
  lanes[threadIdx.y][threadIdx.x] = s;
  __syncthreads ();
  if (threadIdx.y != 0 || j >= n)
    return;
  double t = 0.0;
  for (int l = 0; l < COL_LANES; l++)
    t += lanes[l][threadIdx.x];
  if (partial)
    partial[p * n + j] = t;
  else
    db[j] = (float) ((double) db[j] + t);
}

/* db (n) += the P slice sums of partial (P, n), in order */
__global__ static void
col_sum_finish_kernel (int64_t n, int split, const double *partial, float *db)
{
  int64_t stride = (int64_t) gridDim.x * blockDim.x;
  for (int64_t j = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; j < n; j += stride) {
    double t = 0.0;
    for (int p = 0; p < split; p++)
      t += partial[(int64_t) p * n + j];
    db[j] = (float) ((double) db[j] + t);
  }
}

extern "C" BpStatus
bp_cuda_col_sum (cudaStream_t stream, int64_t m, int64_t n, const float *x, float *db)
{
  if (m <= 0 || n <= 0)
    return BP_OK;
  int split = col_split (m);
  dim3 grid ((unsigned) ((n + COL_TILE - 1) / COL_TILE), (unsigned) split);
  dim3 block (COL_TILE, COL_LANES);
  if (split == 1) {
    col_sum_kernel<<<grid, block, 0, stream>>> (m, n, x, NULL, db);
    BP_CUDA_CHECK_LAUNCH ("column sums");
    return BP_OK;
  }
  size_t bytes = (size_t) split * (size_t) n * sizeof (double);
  double *partial = (double *) bp_cuda_alloc (bytes);
  if (!partial)
    return bp_last_status ();
  col_sum_kernel<<<grid, block, 0, stream>>> (m, n, x, partial, db);
  BpStatus s = BP_CUDA_LAUNCH_TRY ("column sums");
  if (s == BP_OK) {
    col_sum_finish_kernel<<<bp_cuda_grid (n, BLOCK), BLOCK, 0, stream>>> (n, split, partial,
                                                                          db);
    s = BP_CUDA_LAUNCH_TRY ("column sums finish");
  }
  bp_cuda_free (partial, bytes); /* stream order: the kernels above run before any reuse */
  return s;
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
