/* bp-backend.h: the table of function pointers every compute backend (CPU, CUDA) fills in. */
#pragma once

#include "bp-tensor.h"

#include <string.h>

/* Kernel tables of the op families: each is declared in its family's header
 * (bp-ops-eltwise.h, bp-ops-conv.h, bp-ops-norm.h, bp-ops-loss.h, bp-optim.h). */
typedef struct BpEltwiseKernels BpEltwiseKernels;
typedef struct BpConvKernels BpConvKernels;
typedef struct BpNormKernels BpNormKernels;
typedef struct BpLossKernels BpLossKernels;
typedef struct BpOptimKernels BpOptimKernels;
typedef struct BpRnnKernels BpRnnKernels;   /* bp-ops-rnn.h */
typedef struct BpAttnKernels BpAttnKernels; /* bp-ops-attn.h */

typedef struct BpBackend {
  const char *name;
  BpDevice device;

  /* memory: sizes in bytes; alloc returns NULL (with the error set) when out of memory */
  void *(*alloc) (size_t bytes);
  void (*free) (void *ptr, size_t bytes);
  BpStatus (*upload) (void *dst, const void *host_src, size_t bytes);
  BpStatus (*download) (void *host_dst, const void *src, size_t bytes);
  BpStatus (*copy) (void *dst, const void *src, size_t bytes);
  void (*fill) (float *dst, float value, int64_t n);
  /* y += a * x */
  void (*axpy) (int64_t n, float a, const float *x, float *y);
  /* Row-major C (m,n) = alpha * op(A) (m,k) * op(B) (k,n) + beta * C. */
  void (*gemm) (bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                int64_t ldc);
  /* The same product with both operands rounded to bfloat16 (bp_bf16_round) and float32
   * accumulation and output: the matrix products of BP_PRECISION_BF16 (bp-tensor.h). */
  void (*gemm_bf16) (bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                     const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                     float *c, int64_t ldc);
  /* Row-major C (m,n) = op(A) (m,k) op(B) (k,n) + bias (n), the bias added to every row, with
   * gemm's conventions for the operands (bias NULL: the plain product, beta 0): the Linear
   * layer's forward. The bias is not an operand of the product: float32 in both entries;
   * gemm_bias_bf16 takes the operands as gemm_bf16 does. NULL where the backend has none. */
  void (*gemm_bias) (bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                     const float *a, int64_t lda, const float *b, int64_t ldb,
                     const float *bias, float *c, int64_t ldc);
  void (*gemm_bias_bf16) (bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                          const float *a, int64_t lda, const float *b, int64_t ldb,
                          const float *bias, float *c, int64_t ldc);
  /* db (n) += the sum over the m rows of x (m,n) (row-major, contiguous), each column added in
   * a fixed order (the same bits on every run): the bias gradient. NULL where the backend has
   * none. */
  void (*col_sum) (int64_t m, int64_t n, const float *x, float *db);
  /* Waits for queued work (no-op on the CPU). */
  BpStatus (*synchronize) (void);

  const BpEltwiseKernels *eltwise;
  const BpConvKernels *conv;
  const BpNormKernels *norm;
  const BpLossKernels *loss;
  const BpOptimKernels *optim;
  const BpRnnKernels *rnn;   /* NULL where the backend has none yet */
  const BpAttnKernels *attn; /* NULL where the backend has none yet */
  /* The families whose work is matrix products, with every product in bfloat16 (operands
   * rounded as in gemm_bf16, float32 accumulation, float32 tensors); their other entries are
   * the float32 tables'. NULL where the backend has none: the ops then run in float32. */
  const BpConvKernels *conv_bf16;
  const BpRnnKernels *rnn_bf16;
  const BpAttnKernels *attn_bf16;
} BpBackend;

/* The bfloat16 bits of x rounded to nearest, ties to even (torch's round_to_nearest_even):
 * subnormals are kept, values past the largest bfloat16 become infinity, NaN becomes the
 * quiet NaN 0x7fc0. */
static inline uint16_t
bp_bf16_bits (float x)
{
  uint32_t u;
  memcpy (&u, &x, sizeof u);
  if (x != x)
    return 0x7fc0;
  return (uint16_t) ((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* x rounded to bfloat16 and back: torch's x.to (torch.bfloat16).float (). */
static inline float
bp_bf16_round (float x)
{
  uint32_t u = (uint32_t) bp_bf16_bits (x) << 16;
  float f;
  memcpy (&f, &u, sizeof f);
  return f;
}

/* dst (n) = bp_bf16_round (src (n)), host memory; dst may be src. */
void bp_bf16_round_n (float *dst, const float *src, int64_t n);

/* The backend for a device, or NULL when it is not compiled in or not usable. */
const BpBackend *bp_backend (BpDevice device);
/* Registered by the CUDA backend at start-up when a device is usable. */
void bp_backend_register (const BpBackend *backend);
const char *bp_device_name (BpDevice device);

/* Thread count for CPU kernels (OpenMP and OpenBLAS). 0 = all cores. */
void bp_set_num_threads (int n);
int bp_get_num_threads (void);

extern const BpBackend bp_cpu_backend;
