/* cuda-lt.c: the Linear layer's product with its bias through cuBLASLt: one cublasLtMatmul with
 * the bias epilogue (CUBLASLT_EPILOGUE_BIAS), the descriptors, layouts and the heuristic's
 * algorithm cached per shape, precision and alignment; a broadcast kernel and the cuBLAS GEMM
 * where cuBLASLt has no algorithm. */
#include "cuda-internal.h"

#include <cublasLt.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The math of a product: float32, TF32 tensor cores, float32 with inputs rounded to bfloat16
 * on the tensor cores (the bf16 GEMM switch), bfloat16 operands (BP_PRECISION_BF16). */
typedef enum {
  LT_FP32 = 0,
  LT_TF32 = 1,
  LT_FAST_BF16 = 2,
  LT_BF16 = 3,
} LtMath;

/* The key: trans_a, trans_b, m, n, k, lda, ldb, ldc, the math, 0, and the alignments of
 * cuBLASLt's A and B (our B and A, or their bfloat16 copies), C and the bias (the heuristic
 * picks algorithms for them). */
#define KEY_LEN 14
#define N_BUCKETS 64
/* Largest workspace an algorithm may ask for (from the caching allocator, per call). */
#define MAX_WORKSPACE ((uint64_t) 32 << 20)
/* Sizes cuBLASLt is used for; outside them (and for m, n or k of 1, where its heuristic has
 * answered CUBLAS_STATUS_INVALID_VALUE) the broadcast and the cuBLAS GEMM do it. */
#define LT_MAX_DIM ((int64_t) 65535 * 32)

typedef struct LtEntry {
  int64_t key[KEY_LEN];
  cublasLtMatmulDesc_t desc;
  cublasLtMatrixLayout_t a_layout, b_layout, c_layout; /* cuBLASLt's A (our B), B (our A), C=D */
  cublasLtMatmulAlgo_t algo;
  size_t workspace; /* bytes the algorithm needs */
  bool usable;      /* false: the heuristic found no algorithm */
  struct LtEntry *next;
} LtEntry;

static pthread_mutex_t lt_lock = PTHREAD_MUTEX_INITIALIZER;
static cublasLtHandle_t lt_handle;
static LtEntry *buckets[N_BUCKETS];

static void
entry_free (LtEntry *e)
{
  cublasLtMatrixLayout_t layouts[] = { e->a_layout, e->b_layout, e->c_layout };
  for (int i = 0; i < 3; i++)
    if (layouts[i])
      cublasLtMatrixLayoutDestroy (layouts[i]);
  if (e->desc)
    cublasLtMatmulDescDestroy (e->desc);
  free (e);
}

BpStatus
bp_cuda_lt_setup (void)
{
  pthread_mutex_lock (&lt_lock);
  BpStatus s = lt_handle ? BP_OK : BP_CUBLAS_TRY (cublasLtCreate (&lt_handle));
  pthread_mutex_unlock (&lt_lock);
  return s;
}

void
bp_cuda_lt_teardown (void)
{
  pthread_mutex_lock (&lt_lock);
  for (int b = 0; b < N_BUCKETS; b++) {
    while (buckets[b]) {
      LtEntry *e = buckets[b];
      buckets[b] = e->next;
      entry_free (e);
    }
  }
  if (lt_handle)
    cublasLtDestroy (lt_handle);
  lt_handle = NULL;
  pthread_mutex_unlock (&lt_lock);
}

/* The largest power of two up to 256 that divides the address. */
static int64_t
alignment (const void *p)
{
  uintptr_t u = (uintptr_t) p;
  int64_t a = 256;
  while (a > 1 && u % (uintptr_t) a != 0)
    a >>= 1;
  return a;
}

/* Fills a new entry: the matmul descriptor with the bias epilogue (bias pointer set, so that
 * the heuristic sees its alignment), the three layouts, and the heuristic's best algorithm
 * within MAX_WORKSPACE. Row-major C (m,n) = op(A) op(B) is column-major C^T (n,m) =
 * op(B)^T op(A)^T, as in bp_cuda_gemm_strided: cuBLASLt's A is our B and its B our A, a
 * stored row-major matrix read column-major is its transpose, and the bias runs along the
 * rows of cuBLASLt's D, which are our n columns. */
static BpStatus
entry_setup (LtEntry *e, const int64_t *key, const float *bias)
{
  bool trans_a = key[0], trans_b = key[1];
  int64_t m = key[2], n = key[3], k = key[4], lda = key[5], ldb = key[6], ldc = key[7];
  LtMath math = (LtMath) key[8];
  cublasComputeType_t compute = math == LT_TF32        ? CUBLAS_COMPUTE_32F_FAST_TF32
                                : math == LT_FAST_BF16 ? CUBLAS_COMPUTE_32F_FAST_16BF
                                                       : CUBLAS_COMPUTE_32F;
  cudaDataType_t ab_type = math == LT_BF16 ? CUDA_R_16BF : CUDA_R_32F;
  cudaDataType_t f32 = CUDA_R_32F;
  cublasOperation_t op_lt_a = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t op_lt_b = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
  BP_CUBLAS_CHECK (cublasLtMatmulDescCreate (&e->desc, compute, CUDA_R_32F));
  BP_CUBLAS_CHECK (cublasLtMatmulDescSetAttribute (e->desc, CUBLASLT_MATMUL_DESC_TRANSA,
                                                   &op_lt_a, sizeof op_lt_a));
  BP_CUBLAS_CHECK (cublasLtMatmulDescSetAttribute (e->desc, CUBLASLT_MATMUL_DESC_TRANSB,
                                                   &op_lt_b, sizeof op_lt_b));
  BP_CUBLAS_CHECK (cublasLtMatmulDescSetAttribute (e->desc, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                                   &epilogue, sizeof epilogue));
  BP_CUBLAS_CHECK (cublasLtMatmulDescSetAttribute (e->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                   &f32, sizeof f32));
  BP_CUBLAS_CHECK (cublasLtMatmulDescSetAttribute (e->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                   &bias, sizeof bias));
  /* column-major: cuBLASLt's A is op(B)^T (n,k), stored (n,k) or transposed (k,n); its B is
   * op(A)^T (k,m), stored (k,m) or transposed (m,k); D is (n,m) */
  BP_CUBLAS_CHECK (cublasLtMatrixLayoutCreate (&e->a_layout, ab_type, trans_b ? k : n,
                                               trans_b ? n : k, ldb));
  BP_CUBLAS_CHECK (cublasLtMatrixLayoutCreate (&e->b_layout, ab_type, trans_a ? m : k,
                                               trans_a ? k : m, lda));
  BP_CUBLAS_CHECK (cublasLtMatrixLayoutCreate (&e->c_layout, CUDA_R_32F, n, m, ldc));

  cublasLtMatmulPreference_t pref = NULL;
  BP_CUBLAS_CHECK (cublasLtMatmulPreferenceCreate (&pref));
  uint64_t max_ws = MAX_WORKSPACE;
  uint32_t align_lt_a = (uint32_t) key[10], align_lt_b = (uint32_t) key[11];
  uint32_t align_c = (uint32_t) key[12];
  BpStatus s = BP_CUBLAS_TRY (cublasLtMatmulPreferenceSetAttribute (
    pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &max_ws, sizeof max_ws));
  if (s == BP_OK)
    s = BP_CUBLAS_TRY (cublasLtMatmulPreferenceSetAttribute (
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_lt_a, sizeof align_lt_a));
  if (s == BP_OK)
    s = BP_CUBLAS_TRY (cublasLtMatmulPreferenceSetAttribute (
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_lt_b, sizeof align_lt_b));
  if (s == BP_OK)
    s = BP_CUBLAS_TRY (cublasLtMatmulPreferenceSetAttribute (
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c, sizeof align_c));
  if (s == BP_OK)
    s = BP_CUBLAS_TRY (cublasLtMatmulPreferenceSetAttribute (
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c, sizeof align_c));
  if (s == BP_OK) {
    cublasLtMatmulHeuristicResult_t result;
    memset (&result, 0, sizeof result);
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic (lt_handle, e->desc, e->a_layout,
                                                        e->b_layout, e->c_layout, e->c_layout,
                                                        pref, 1, &result, &found);
    if (st == CUBLAS_STATUS_SUCCESS && found > 0 && result.state == CUBLAS_STATUS_SUCCESS) {
      e->algo = result.algo;
      e->workspace = result.workspaceSize;
      e->usable = true;
    } else if (st != CUBLAS_STATUS_SUCCESS && st != CUBLAS_STATUS_NOT_SUPPORTED
               && st != CUBLAS_STATUS_INVALID_VALUE) {
      s = bp_cuda_fail_cublas (st, "cublasLtMatmulAlgoGetHeuristic", __FILE__, __LINE__);
    }
    /* else no algorithm for this configuration: usable stays false (the fallback) */
  }
  cublasLtMatmulPreferenceDestroy (pref);
  return s;
}

/* The cache entry of a key, made on first use; NULL with the error set when cuBLASLt fails.
 * Called with lt_lock held. */
static LtEntry *
lookup (const int64_t *key, const float *bias)
{
  unsigned b = bp_cuda_key_bucket (key, KEY_LEN, N_BUCKETS);
  LtEntry *e = buckets[b];
  while (e && memcmp (e->key, key, sizeof e->key) != 0)
    e = e->next;
  if (e)
    return e;
  e = (LtEntry *) calloc (1, sizeof *e);
  if (!e) {
    bp_set_error (BP_ERR_NOMEM, "cuda linear: out of memory for the cuBLASLt cache");
    return NULL;
  }
  memcpy (e->key, key, sizeof e->key);
  if (entry_setup (e, key, bias) != BP_OK) {
    entry_free (e);
    return NULL;
  }
  e->next = buckets[b];
  buckets[b] = e;
  return e;
}

/* The broadcast and the cuBLAS GEMM with beta 1: where cuBLASLt has no algorithm. */
static BpStatus
gemm_bias_fallback (BpPrecision precision, bool trans_a, bool trans_b, int64_t m, int64_t n,
                    int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb,
                    const float *bias, float *c, int64_t ldc)
{
  BpStatus s = bp_cuda_bias_rows (bp_cuda_ctx.stream, c, ldc, bias, m, n);
  if (s == BP_OK && k > 0)
    s = bp_cuda_gemm_at (precision, trans_a, trans_b, m, n, k, 1.0f, a, lda, b, ldb, 1.0f, c,
                         ldc);
  return s;
}

/* Queues D = op_lt(A) op_lt(B) + bias with the entry's algorithm: the bias pointer is set on
 * the shared descriptor under the lock. */
static BpStatus
run_matmul (LtEntry *e, const void *lt_a, const void *lt_b, const float *bias, float *c)
{
  void *ws = NULL;
  if (e->workspace > 0 && !(ws = bp_cuda_alloc (e->workspace)))
    return bp_last_status ();
  const float one = 1.0f, zero = 0.0f;
  pthread_mutex_lock (&lt_lock);
  BpStatus s = BP_CUBLAS_TRY (cublasLtMatmulDescSetAttribute (
    e->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
  if (s == BP_OK)
    s = BP_CUBLAS_TRY (cublasLtMatmul (lt_handle, e->desc, &one, lt_a, e->a_layout, lt_b,
                                       e->b_layout, &zero, c, e->c_layout, c, e->c_layout,
                                       &e->algo, ws, e->workspace, bp_cuda_ctx.stream));
  pthread_mutex_unlock (&lt_lock);
  if (ws)
    bp_cuda_free (ws, e->workspace); /* stream order: the product runs before any reuse */
  return s;
}

BpStatus
bp_cuda_gemm_bias_at (BpPrecision precision, bool trans_a, bool trans_b, int64_t m, int64_t n,
                      int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb,
                      const float *bias, float *c, int64_t ldc)
{
  if (!bias)
    return bp_cuda_gemm_at (precision, trans_a, trans_b, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c,
                            ldc);
  if (m == 0 || n == 0)
    return BP_OK;
  bool bf16 = precision == BP_PRECISION_BF16;
  if (!lt_handle || m < 2 || n < 2 || k < 2 || m > LT_MAX_DIM || n > LT_MAX_DIM
      || k > LT_MAX_DIM || lda > INT_MAX || ldb > INT_MAX || ldc > INT_MAX)
    return gemm_bias_fallback (precision, trans_a, trans_b, m, n, k, a, lda, b, ldb, bias, c,
                               ldc);

  /* cuBLASLt's A is our B and its B our A (see entry_setup). The bfloat16 operands are rounded
   * into a workspace (bp_cuda_bf16_operands) once an algorithm is known; both lie on 256-byte
   * boundaries there (cudaMalloc'd blocks, B at a multiple of 256 bytes), so that is their
   * alignment in the key. */
  LtMath math = bf16                    ? LT_BF16
                : bp_cuda_ctx.bf16_gemm ? LT_FAST_BF16
                : bp_cuda_ctx.tf32      ? LT_TF32
                                        : LT_FP32;
  int64_t key[KEY_LEN] = {
    trans_a, trans_b, m, n, k, lda, ldb, ldc, math, 0,
    bf16 ? 256 : alignment (b), bf16 ? 256 : alignment (a), alignment (c), alignment (bias),
  };
  pthread_mutex_lock (&lt_lock);
  LtEntry *e = lookup (key, bias);
  pthread_mutex_unlock (&lt_lock);
  if (!e)
    return bp_last_status ();
  if (!e->usable)
    return gemm_bias_fallback (precision, trans_a, trans_b, m, n, k, a, lda, b, ldb, bias, c,
                               ldc);
  if (!bf16)
    return run_matmul (e, b, a, bias, c);
  BpCudaBf16Operands ops;
  BpStatus s = bp_cuda_bf16_operands (&ops, trans_a, trans_b, m, n, k, a, lda, 0, b, ldb, 0, 1);
  if (s != BP_OK)
    return s;
  s = run_matmul (e, ops.b, ops.a, bias, c);
  bp_cuda_free (ops.ws, ops.bytes); /* stream order: the product runs before any reuse */
  return s;
}
