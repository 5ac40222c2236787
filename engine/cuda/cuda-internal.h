/* cuda-internal.h: what the CUDA backend's files share: the device context (stream, cuBLAS and
 * cuDNN handles), the allocator entry points and the launchers of the kernels in the .cu
 * files. Not for code outside engine/cuda. */
#pragma once

#include "cuda-check.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "../bp-backend.h"
#include "../bp-ops-attn.h"
#include "../bp-ops-conv.h"
#include "../bp-ops-eltwise.h"
#include "../bp-ops-loss.h"
#include "../bp-ops-norm.h"
#include "../bp-ops-rnn.h"
#include "../bp-optim.h"
#include "../bp-rng.h"
#include "bp-cuda.h"

/* The one device the backend drives. Every table entry queues its work on `stream`, so work
 * runs in the order it was issued and a freed block can be reused at once (see cuda-alloc.c). */
typedef struct {
  int device;                 /* CUDA ordinal */
  int generation;             /* bumped by every successful init (threads rebind the device) */
  cudaStream_t stream;
  cublasHandle_t cublas;
  cudnnHandle_t cudnn;
  bool tf32;                  /* TF32 tensor cores for float32 GEMM and convolution */
  bool bf16_gemm;             /* GEMM inputs rounded to bfloat16 on the tensor cores */
  bool cudnn_batch_norm;      /* batch norm training through cuDNN (else own kernels) */
  int max_blocks;             /* a grid that fills the device: 32 blocks per multiprocessor */
} BpCudaContext;

extern BpCudaContext bp_cuda_ctx;

/* Makes the backend's device current on the calling thread (cheap after the first call). */
void bp_cuda_enter (void);

/* The start of every family kernel: false (error set, and kept for synchronize) after
 * bp_cuda_shutdown; otherwise makes the backend's device current and returns true. */
bool bp_cuda_begin (void);

/* Table entries that return void (fill, axpy, gemm) cannot return an error: they keep the first
 * one here (status and message), and synchronize () and download () report it. */
void bp_cuda_defer (BpStatus status);

/* cuda-alloc.c: the caching allocator (the table's alloc and free). */
void *bp_cuda_alloc (size_t bytes);
void bp_cuda_free (void *ptr, size_t bytes);
/* Reads $BP_CUDA_NO_CACHE; called by bp_cuda_init. */
void bp_cuda_alloc_setup (void);
/* Frees the cache and the allocator's own bookkeeping; called by bp_cuda_shutdown. */
void bp_cuda_alloc_teardown (void);

/* cuda-alloc.c: a CUDA graph's private pool (see the top of cuda-alloc.c). begin makes new
 * allocations join the new pool until end; the pool keeps its blocks (freed ones on its own
 * lists) until bp_cuda_pool_free gives them back to the cache. */
typedef struct BpCudaPool BpCudaPool;
BpCudaPool *bp_cuda_pool_begin (void);
void bp_cuda_pool_end (void);
void bp_cuda_pool_free (BpCudaPool *pool);
size_t bp_cuda_pool_blocks (const BpCudaPool *pool);

/* cuda-backend.c: returns (and forgets) the error kept by bp_cuda_defer, setting it again as
 * the calling thread's error; BP_OK when none. */
BpStatus bp_cuda_take_deferred (void);

/* cuda-graph.c: during a capture, the device address from which the captured kernels read
 * the dropout key `key` (registered on first sight; the backward finds its forward's), so that
 * replays can change it; NULL when no capture runs. */
const uint64_t *bp_cuda_capture_key (uint64_t key);
/* The bucket of a cache key of n int64 (FNV-1a), for the descriptor and algorithm caches of
 * cuda-lt.c and conv.cu. */
static inline unsigned
bp_cuda_key_bucket (const int64_t *key, int n, unsigned n_buckets)
{
  uint64_t h = 1469598103934665603ULL;
  for (int i = 0; i < n; i++)
    h = (h ^ (uint64_t) key[i]) * 1099511628211ULL;
  return (unsigned) (h % n_buckets);
}

/* Every entry's first call (through alive and bp_cuda_enter): while another thread captures a
 * CUDA graph, waits until its capture ends; returns at once otherwise. */
void bp_cuda_gate (void);
/* For the entries that wait for a value from the GPU: during a capture, refuses it ("<what>
 * reads a value back from the GPU") and returns true, and the entry returns at once with a
 * neutral answer (the capture is dropped and the step runs again eagerly); false otherwise. */
bool bp_cuda_refuse_read_back (const char *what);
/* Frees cuBLAS's graph workspace; called by bp_cuda_shutdown. */
void bp_cuda_graph_teardown (void);

/* basic.cu: the table's fill and axpy, queued on `stream`. */
BpStatus bp_cuda_fill (cudaStream_t stream, float *dst, float value, int64_t n);
/* y (n) += a * x (n) */
BpStatus bp_cuda_axpy (cudaStream_t stream, int64_t n, float a, const float *x, float *y);

/* basic.cu: the Linear layer's helpers, queued on `stream`. c (m,n) with leading dimension ldc
 * = bias (n) in every row (the broadcast where cuBLASLt's epilogue is not used). */
BpStatus bp_cuda_bias_rows (cudaStream_t stream, float *c, int64_t ldc, const float *bias,
                            int64_t m, int64_t n);
/* db (n) += the sum over the m rows of x (m,n), contiguous: each column in fixed row slices
 * (their count depends only on m) added in double, then the slices added in order; no
 * atomics, so the same bits on every run. */
BpStatus bp_cuda_col_sum (cudaStream_t stream, int64_t m, int64_t n, const float *x, float *db);

/* basic.cu: bfloat16 conversions, queued on `stream`. dst_a (n_a) = src_a (n_a) rounded to
 * bfloat16 (bp_bf16_bits: nearest, ties to even), and in the same launch dst_b (n_b) from
 * src_b (dst_b may be NULL). */
BpStatus bp_cuda_to_bf16 (cudaStream_t stream, uint16_t *dst_a, const float *src_a, int64_t n_a,
                          uint16_t *dst_b, const float *src_b, int64_t n_b);
/* dst (n) = src (n) widened to float32, or dst += src with accumulate. */
BpStatus bp_cuda_from_bf16 (cudaStream_t stream, float *dst, const uint16_t *src, int64_t n,
                            bool accumulate);
/* The device's rounding run on the host, so that the tests can compare it with
 * bp_bf16_round without a GPU. */
float bp_cuda_bf16_round_host (float x);

/* cuda-backend.c: row-major C (m,n) = alpha op(A) (m,k) op(B) (k,n) + beta C through cuBLAS
 * on `stream` (TF32 or bf16 inputs as switched); like the table's gemm but returning the status
 * instead of keeping it for synchronize. */
BpStatus bp_cuda_gemm (bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                       const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                       float *c, int64_t ldc);
/* The same product `count` times (cublasSgemmStridedBatched): product i reads a + i * stride_a
 * and b + i * stride_b and writes c + i * stride_c (floats); the outputs must not overlap. */
BpStatus bp_cuda_gemm_strided (bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                               float alpha, const float *a, int64_t lda, int64_t stride_a,
                               const float *b, int64_t ldb, int64_t stride_b, float beta,
                               float *c, int64_t ldc, int64_t stride_c, int64_t count);

/* bp_cuda_gemm and bp_cuda_gemm_strided at a precision: with BP_PRECISION_BF16 both operands
 * are rounded to bfloat16 into a workspace (one conversion launch) and multiplied by
 * cublasGemmEx / cublasGemmStridedBatchedEx with CUDA_R_16BF inputs, CUDA_R_32F output and
 * CUBLAS_COMPUTE_32F (float32 accumulation); with BP_PRECISION_FP32 the float32 product (TF32
 * or the bf16 switch as set). */
/* The operands of a bfloat16 product rounded into one workspace from the caching allocator
 * (one conversion launch): A (m,k) or, transposed, (k,m) and B (k,n) or (n,k), `count` of each
 * `stride_*` floats apart, each over its whole span with the same leading dimensions and
 * strides; ops->a and ops->b point at them (256-byte aligned). Free ops->ws (ops->bytes bytes)
 * once the product is queued. */
typedef struct {
  uint16_t *ws;
  size_t bytes;
  const uint16_t *a, *b;
} BpCudaBf16Operands;
BpStatus bp_cuda_bf16_operands (BpCudaBf16Operands *ops, bool trans_a, bool trans_b, int64_t m,
                                int64_t n, int64_t k, const float *a, int64_t lda,
                                int64_t stride_a, const float *b, int64_t ldb, int64_t stride_b,
                                int64_t count);
BpStatus bp_cuda_gemm_at (BpPrecision precision, bool trans_a, bool trans_b, int64_t m,
                          int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                          const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
BpStatus bp_cuda_gemm_strided_at (BpPrecision precision, bool trans_a, bool trans_b, int64_t m,
                                  int64_t n, int64_t k, float alpha, const float *a,
                                  int64_t lda, int64_t stride_a, const float *b, int64_t ldb,
                                  int64_t stride_b, float beta, float *c, int64_t ldc,
                                  int64_t stride_c, int64_t count);

/* cuda-lt.c: row-major C (m,n) = op(A) (m,k) op(B) (k,n) + bias (n) in every row, on `stream`
 * (call after bp_cuda_begin): one cublasLtMatmul with the bias epilogue, its descriptors and
 * algorithm cached per shape, math and alignment; operands as in bp_cuda_gemm_at at the
 * precision (float32 with TF32 or the bf16 switch as set, or rounded to bfloat16), the bias and
 * C float32. Where cuBLASLt has no algorithm: bp_cuda_bias_rows, then bp_cuda_gemm_at with
 * beta 1. bias NULL: bp_cuda_gemm_at with beta 0. */
BpStatus bp_cuda_gemm_bias_at (BpPrecision precision, bool trans_a, bool trans_b, int64_t m,
                               int64_t n, int64_t k, const float *a, int64_t lda,
                               const float *b, int64_t ldb, const float *bias, float *c,
                               int64_t ldc);
/* The cuBLASLt handle: created by bp_cuda_init; the handle and the cache freed by
 * bp_cuda_shutdown. */
BpStatus bp_cuda_lt_setup (void);
void bp_cuda_lt_teardown (void);

/* The family kernel tables (eltwise.cu, conv.cu, norm.cu, loss.cu, optim.cu, rnn.cu,
 * attn.cu). */
extern const BpEltwiseKernels bp_cuda_eltwise_kernels;
extern const BpConvKernels bp_cuda_conv_kernels;
extern const BpNormKernels bp_cuda_norm_kernels;
extern const BpLossKernels bp_cuda_loss_kernels;
extern const BpOptimKernels bp_cuda_optim_kernels;
extern const BpRnnKernels bp_cuda_rnn_kernels;
extern const BpAttnKernels bp_cuda_attn_kernels;
/* The conv, rnn and attention tables with their products in bfloat16 (conv.cu: cuDNN with
 * bfloat16 tensors; rnn.cu, attn.cu: bp_cuda_gemm_at). */
extern const BpConvKernels bp_cuda_conv_bf16_kernels;
extern const BpRnnKernels bp_cuda_rnn_bf16_kernels;
extern const BpAttnKernels bp_cuda_attn_bf16_kernels;

/* conv.cu: frees the cached convolution descriptors and algorithm choices. */
void bp_cuda_conv_teardown (void);

/* eltwise.cu: the dropout draw of the GPU kernels, computed on the host by the same code, so
 * that the tests can compare it with bp_rng_hash_uniform without a GPU. */
float bp_cuda_hash_uniform_host (uint64_t key, uint64_t k);

/* Grid size for n elements with `block` threads per block and grid-stride loops. */
static inline unsigned
bp_cuda_grid (int64_t n, int block)
{
  int64_t blocks = (n + block - 1) / block;
  int64_t cap = bp_cuda_ctx.max_blocks > 0 ? bp_cuda_ctx.max_blocks : 1024;
  return (unsigned) (blocks < cap ? (blocks > 0 ? blocks : 1) : cap);
}

#ifdef __cplusplus
}
#endif
