/* cpu-backend.c: the CPU backend table: a caching allocator, OpenBLAS GEMM (float32, and
 * bfloat16 operands emulated by rounding them first), the Linear layer's GEMM with bias and
 * column sums, threaded fills. */
#include "cpu-kernels.h"

#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* A cache of freed blocks keyed by exact size: a training step allocates the same sizes every
 * time, so after the first step no memory is requested from the system. Under AddressSanitizer
 * the cache is off so that use-after-free is still caught. */
#if defined(__SANITIZE_ADDRESS__)
#define CACHE_ENABLED 0
#else
#define CACHE_ENABLED 1
#endif

#define CACHE_SLOTS 512
#define CACHE_LIMIT ((size_t) 2 << 30)

typedef struct {
  size_t bytes;
  void *ptr;
} CacheSlot;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static CacheSlot cache[CACHE_SLOTS];
static size_t cache_bytes;

static void *
cpu_alloc (size_t bytes)
{
  if (CACHE_ENABLED) {
    pthread_mutex_lock (&cache_lock);
    for (int k = 0; k < CACHE_SLOTS; k++) {
      if (cache[k].ptr && cache[k].bytes == bytes) {
        void *p = cache[k].ptr;
        cache[k].ptr = NULL;
        cache_bytes -= bytes;
        pthread_mutex_unlock (&cache_lock);
        return p;
      }
    }
    pthread_mutex_unlock (&cache_lock);
  }
  size_t rounded = (bytes + 63) & ~(size_t) 63;
  void *p = aligned_alloc (64, rounded ? rounded : 64);
  if (!p)
    bp_set_error (BP_ERR_NOMEM, "out of memory: %zu bytes requested", bytes);
  return p;
}

static void
cpu_free (void *ptr, size_t bytes)
{
  if (!ptr)
    return;
  if (CACHE_ENABLED && bytes <= CACHE_LIMIT / 4) {
    pthread_mutex_lock (&cache_lock);
    if (cache_bytes + bytes <= CACHE_LIMIT) {
      for (int k = 0; k < CACHE_SLOTS; k++) {
        if (!cache[k].ptr) {
          cache[k].ptr = ptr;
          cache[k].bytes = bytes;
          cache_bytes += bytes;
          pthread_mutex_unlock (&cache_lock);
          return;
        }
      }
    }
    pthread_mutex_unlock (&cache_lock);
  }
  free (ptr);
}

static BpStatus
cpu_copy (void *dst, const void *src, size_t bytes)
{
  if (bytes)
    memcpy (dst, src, bytes);
  return BP_OK;
}

static void
cpu_fill (float *dst, float value, int64_t n)
{
  if (value == 0.0f && n < 65536) {
    memset (dst, 0, (size_t) n * sizeof (float));
    return;
  }
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++)
    dst[i] = value;
}

static void
cpu_axpy (int64_t n, float a, const float *x, float *y)
{
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++)
    y[i] += a * x[i];
}

void
bp_cpu_gemm (bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
             const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
             int64_t ldc)
{
  if (m == 0 || n == 0)
    return;
  cblas_sgemm (CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
               trans_b ? CblasTrans : CblasNoTrans, (blasint) m, (blasint) n, (blasint) k, alpha,
               a, (blasint) lda, b, (blasint) ldb, beta, c, (blasint) ldc);
}

/* Copies the stored matrix (rows, cols) with leading dimension ld into dst (rows, cols),
 * rounded to bfloat16. */
static void
pack_bf16 (float *dst, const float *src, int64_t rows, int64_t cols, int64_t ld)
{
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < cols; j++)
      dst[r * cols + j] = bp_bf16_round (src[r * ld + j]);
}

void
bp_cpu_gemm_bf16 (bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                  const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                  int64_t ldc)
{
  /* the operands rounded into scratch, then OpenBLAS: a product of two bfloat16 values is
   * exact in float32, so this is a bfloat16-input, float32-accumulate GEMM (up to the order
   * of the sums) */
  if (m == 0 || n == 0)
    return;
  int64_t ra = trans_a ? k : m, ca = trans_a ? m : k;
  int64_t rb = trans_b ? n : k, cb = trans_b ? k : n;
  size_t na = (size_t) (ra * ca), nb = (size_t) (rb * cb);
  float *scratch = malloc (sizeof (float) * (na + nb > 0 ? na + nb : 1));
  if (!scratch) {
    /* no memory for the rounded copies: the float32 product, rather than none */
    bp_cpu_gemm (trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  float *pa = scratch, *pb = scratch + na;
  pack_bf16 (pa, a, ra, ca, lda);
  pack_bf16 (pb, b, rb, cb, ldb);
  bp_cpu_gemm (trans_a, trans_b, m, n, k, alpha, pa, ca > 0 ? ca : 1, pb, cb > 0 ? cb : 1, beta,
               c, ldc);
  free (scratch);
}

/* c (m,n) with leading dimension ldc = bias (n) in every row */
static void
fill_rows (float *c, int64_t ldc, const float *bias, int64_t m, int64_t n)
{
#pragma omp parallel for schedule(static) if (m * n > 65536)
  for (int64_t r = 0; r < m; r++)
    memcpy (c + r * ldc, bias, (size_t) n * sizeof (float));
}

/* The rows filled with the bias, then the product added with beta 1: the same bits as the
 * broadcast-and-GEMM that bp_linear did before this entry existed. */
static void
cpu_gemm_bias (bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float *a,
               int64_t lda, const float *b, int64_t ldb, const float *bias, float *c, int64_t ldc)
{
  if (bias)
    fill_rows (c, ldc, bias, m, n);
  bp_cpu_gemm (trans_a, trans_b, m, n, k, 1.0f, a, lda, b, ldb, bias ? 1.0f : 0.0f, c, ldc);
}

static void
cpu_gemm_bias_bf16 (bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                    const float *a, int64_t lda, const float *b, int64_t ldb, const float *bias,
                    float *c, int64_t ldc)
{
  if (bias)
    fill_rows (c, ldc, bias, m, n);
  bp_cpu_gemm_bf16 (trans_a, trans_b, m, n, k, 1.0f, a, lda, b, ldb, bias ? 1.0f : 0.0f, c,
                    ldc);
}

/* Columns per task of col_sum: a block of a row is one cache line or more. */
#define COL_BLOCK 64

/* db (n) += sum over the rows of x (m,n): per block of columns the rows are added in order in
 * double, so the result does not depend on the thread count. */
static void
cpu_col_sum (int64_t m, int64_t n, const float *x, float *db)
{
  int64_t blocks = (n + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if (m * n > 65536)
  for (int64_t blk = 0; blk < blocks; blk++) {
    int64_t j0 = blk * COL_BLOCK, w = n - j0 < COL_BLOCK ? n - j0 : COL_BLOCK;
    double s[COL_BLOCK] = { 0 };
    for (int64_t r = 0; r < m; r++) {
      const float *row = x + r * n + j0;
      for (int64_t j = 0; j < w; j++)
        s[j] += row[j];
    }
    for (int64_t j = 0; j < w; j++)
      db[j0 + j] = (float) (db[j0 + j] + s[j]);
  }
}

static BpStatus
cpu_synchronize (void)
{
  return BP_OK;
}

const BpBackend bp_cpu_backend = {
  .name = "cpu",
  .device = BP_DEVICE_CPU,
  .alloc = cpu_alloc,
  .free = cpu_free,
  .upload = cpu_copy,
  .download = cpu_copy,
  .copy = cpu_copy,
  .fill = cpu_fill,
  .axpy = cpu_axpy,
  .gemm = bp_cpu_gemm,
  .gemm_bf16 = bp_cpu_gemm_bf16,
  .gemm_bias = cpu_gemm_bias,
  .gemm_bias_bf16 = cpu_gemm_bias_bf16,
  .col_sum = cpu_col_sum,
  .synchronize = cpu_synchronize,
  .eltwise = &bp_cpu_eltwise_kernels,
  .conv = &bp_cpu_conv_kernels,
  .norm = &bp_cpu_norm_kernels,
  .loss = &bp_cpu_loss_kernels,
  .optim = &bp_cpu_optim_kernels,
  .rnn = &bp_cpu_rnn_kernels,
  .attn = &bp_cpu_attn_kernels,
  .conv_bf16 = &bp_cpu_conv_bf16_kernels,
  .rnn_bf16 = &bp_cpu_rnn_bf16_kernels,
  .attn_bf16 = &bp_cpu_attn_bf16_kernels,
};
