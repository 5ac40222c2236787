/* cuda-bench.c: `backprop bench --gemm N`: an N x N x N float32 product through the engine's
 * table (bp_backend (BP_DEVICE_CUDA)->gemm) timed against the same product called directly on
 * cuBLAS, on the same handle, stream and math mode, so that the ratio is the engine's own
 * overhead. */
#include "cuda-internal.h"

#include <stdlib.h>

/* One N x N x N product C = A B, row-major, queued on the backend's stream. */
typedef BpStatus (*GemmFn) (int64_t n, const float *a, const float *b, float *c);

static BpStatus
engine_gemm (int64_t n, const float *a, const float *b, float *c)
{
  const BpBackend *be = bp_backend (BP_DEVICE_CUDA);
  be->gemm (false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
  return BP_OK;
}

/* Row-major C = A B is column-major C^T = B^T A^T: B first, as the engine's gemm calls it. */
static BpStatus
direct_gemm (int64_t n, const float *a, const float *b, float *c)
{
  const float alpha = 1.0f, beta = 0.0f;
  int in = (int) n;
  if (bp_cuda_ctx.bf16_gemm)
    return BP_CUBLAS_TRY (cublasGemmEx (bp_cuda_ctx.cublas, CUBLAS_OP_N, CUBLAS_OP_N, in, in, in,
                                        &alpha, b, CUDA_R_32F, in, a, CUDA_R_32F, in, &beta, c,
                                        CUDA_R_32F, in, CUBLAS_COMPUTE_32F_FAST_16BF,
                                        CUBLAS_GEMM_DEFAULT));
  return BP_CUBLAS_TRY (cublasSgemm (bp_cuda_ctx.cublas, CUBLAS_OP_N, CUBLAS_OP_N, in, in, in,
                                     &alpha, b, in, a, in, &beta, c, in));
}

/* Seconds per call of fn: `iters` calls between two events on the stream. */
static BpStatus
time_calls (GemmFn fn, int64_t n, const float *a, const float *b, float *c, int iters,
            cudaEvent_t start, cudaEvent_t stop, double *seconds)
{
  BP_CUDA_CHECK (cudaEventRecord (start, bp_cuda_ctx.stream));
  for (int i = 0; i < iters; i++) {
    BpStatus s = fn (n, a, b, c);
    if (s != BP_OK)
      return s;
  }
  BP_CUDA_CHECK (cudaEventRecord (stop, bp_cuda_ctx.stream));
  BP_CUDA_CHECK (cudaEventSynchronize (stop));
  /* the table's gemm keeps its errors for synchronize */
  BpStatus s = bp_cuda_take_deferred ();
  if (s != BP_OK)
    return s;
  float ms = 0.0f;
  BP_CUDA_CHECK (cudaEventElapsedTime (&ms, start, stop));
  *seconds = (double) ms / 1e3 / iters;
  return BP_OK;
}

/* Random operands in [-1, 1) (a fixed xorshift sequence), uploaded. */
static BpStatus
fill_random (float *dst, int64_t count, uint64_t seed)
{
  float *host = malloc ((size_t) count * sizeof (float));
  if (!host) {
    bp_set_error (BP_ERR_NOMEM, "cuda gemm bench: no host memory for %lld floats",
                  (long long) count);
    return BP_ERR_NOMEM;
  }
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (int64_t i = 0; i < count; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    host[i] = (float) ((double) (x >> 40) / (double) (1ull << 24) * 2.0 - 1.0);
  }
  BpStatus s = bp_backend (BP_DEVICE_CUDA)->upload (dst, host, (size_t) count * sizeof (float));
  if (s == BP_OK) /* the copy has left host before it is freed */
    s = BP_CUDA_TRY (cudaStreamSynchronize (bp_cuda_ctx.stream));
  free (host);
  return s;
}

BpStatus
bp_cuda_bench_gemm (int64_t n, int repeats, double *engine_tflops, double *cublas_tflops)
{
  *engine_tflops = *cublas_tflops = 0.0;
  const BpBackend *be = bp_backend (BP_DEVICE_CUDA);
  if (!be || !bp_cuda_available ()) {
    bp_set_error (BP_ERR_DEVICE, "cuda gemm bench: the CUDA backend is not started");
    return BP_ERR_DEVICE;
  }
  if (n < 1 || n > 32768 || repeats < 1) {
    bp_set_error (BP_ERR_INVALID, "cuda gemm bench: size %lld or repeats %d out of range",
                  (long long) n, repeats);
    return BP_ERR_INVALID;
  }
  bp_cuda_enter ();
  size_t bytes = (size_t) n * (size_t) n * sizeof (float);
  float *a = be->alloc (bytes), *b = be->alloc (bytes), *c = be->alloc (bytes);
  cudaEvent_t start = NULL, stop = NULL;
  BpStatus s = a && b && c ? BP_OK : BP_ERR_NOMEM;
  if (s == BP_OK)
    s = BP_CUDA_TRY (cudaEventCreate (&start));
  if (s == BP_OK)
    s = BP_CUDA_TRY (cudaEventCreate (&stop));
  if (s == BP_OK)
    s = fill_random (a, n * n, 1);
  if (s == BP_OK)
    s = fill_random (b, n * n, 2);

  /* one untimed call of each (cuBLAS picks its kernel, the engine its path), then the number
   * of calls that makes one timing about 50 ms */
  double t_engine = 0.0, t_direct = 0.0, t;
  if (s == BP_OK)
    s = time_calls (engine_gemm, n, a, b, c, 1, start, stop, &t);
  if (s == BP_OK)
    s = time_calls (direct_gemm, n, a, b, c, 1, start, stop, &t);
  int iters = 1;
  if (s == BP_OK) {
    double per = t > 0.0 ? 0.05 / t : 2000.0;
    iters = per < 3.0 ? 3 : per > 2000.0 ? 2000 : (int) per;
  }
  /* best of `repeats`, the two alternating so that clocks and heat treat them alike */
  for (int r = 0; s == BP_OK && r < repeats; r++) {
    s = time_calls (engine_gemm, n, a, b, c, iters, start, stop, &t);
    if (s == BP_OK && (t_engine == 0.0 || t < t_engine))
      t_engine = t;
    if (s == BP_OK)
      s = time_calls (direct_gemm, n, a, b, c, iters, start, stop, &t);
    if (s == BP_OK && (t_direct == 0.0 || t < t_direct))
      t_direct = t;
  }
  if (s == BP_OK) {
    double flops = 2.0 * (double) n * (double) n * (double) n;
    *engine_tflops = flops / t_engine / 1e12;
    *cublas_tflops = flops / t_direct / 1e12;
  }
  if (start)
    cudaEventDestroy (start);
  if (stop)
    cudaEventDestroy (stop);
  if (a)
    be->free (a, bytes);
  if (b)
    be->free (b, bytes);
  if (c)
    be->free (c, bytes);
  return s;
}
