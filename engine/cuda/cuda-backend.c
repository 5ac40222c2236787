/* cuda-backend.c: the CUDA backend: start-up checks (driver, runtime, cuDNN), the device listing,
 * the error reporting behind cuda-check.h and the BpBackend table (copies, fill, axpy, cuBLAS
 * GEMM, the Linear layer's GEMM with bias (cuda-lt.c) and column sum, and the op families'
 * kernel tables from eltwise.cu, conv.cu, norm.cu, loss.cu, optim.cu, rnn.cu and attn.cu). */
#include "cuda-internal.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The architectures basic.cu is compiled for (engine/cuda/meson.build): sm_80 and sm_90 code,
 * compute_90 PTX that newer GPUs compile at load time. */
#define MIN_CC_MAJOR 8

BpCudaContext bp_cuda_ctx = { .device = -1 };

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static bool init_tried;
static BpStatus init_status;
static char init_why[512];
static char init_note[512];
static bool want_tf32 = true;
static bool tf32_env_read;
static bool want_bf16_gemm = false;
static bool want_cudnn_bn = true;
static bool switches_env_read;

/* ---- errors ---- */

static const char *
short_file (const char *file)
{
  const char *slash = strrchr (file, '/');
  return slash ? slash + 1 : file;
}

BpStatus
bp_cuda_fail (const char *call, const char *file, int line, const char *what)
{
  bp_set_error (BP_ERR_DEVICE, "%s failed at %s:%d: %s", call, short_file (file), line, what);
  return BP_ERR_DEVICE;
}

BpStatus
bp_cuda_fail_rt (cudaError_t err, const char *call, const char *file, int line)
{
  char what[256];
  snprintf (what, sizeof what, "%s (%s)", cudaGetErrorString (err), cudaGetErrorName (err));
  /* clears a non-sticky error so that the next launch check does not report it again */
  cudaGetLastError ();
  return bp_cuda_fail (call, file, line, what);
}

BpStatus
bp_cuda_fail_cublas (cublasStatus_t st, const char *call, const char *file, int line)
{
  char what[256];
  snprintf (what, sizeof what, "%s (%s)", cublasGetStatusString (st), cublasGetStatusName (st));
  return bp_cuda_fail (call, file, line, what);
}

BpStatus
bp_cuda_fail_cudnn (cudnnStatus_t st, const char *call, const char *file, int line)
{
  char detail[256] = "";
  cudnnGetLastErrorString (detail, sizeof detail);
  char what[600];
  snprintf (what, sizeof what, "%s%s%s", cudnnGetErrorString (st), detail[0] ? ": " : "",
            detail);
  return bp_cuda_fail (call, file, line, what);
}

/* Errors of the table entries that return void, kept until synchronize () or download (). */
static pthread_mutex_t defer_lock = PTHREAD_MUTEX_INITIALIZER;
static BpStatus deferred;
static char deferred_msg[512];

void
bp_cuda_defer (BpStatus status)
{
  if (status == BP_OK)
    return;
  pthread_mutex_lock (&defer_lock);
  if (deferred == BP_OK) {
    deferred = status;
    snprintf (deferred_msg, sizeof deferred_msg, "%s", bp_last_error ());
  }
  pthread_mutex_unlock (&defer_lock);
}

BpStatus
bp_cuda_take_deferred (void)
{
  pthread_mutex_lock (&defer_lock);
  BpStatus s = deferred;
  if (s != BP_OK)
    bp_set_error (s, "%s", deferred_msg);
  deferred = BP_OK;
  pthread_mutex_unlock (&defer_lock);
  return s;
}

/* ---- versions ---- */

/* 13000 -> "13.0" */
static void
cuda_version_str (int v, char *buf, size_t len)
{
  snprintf (buf, len, "%d.%d", v / 1000, (v % 1000) / 10);
}

/* cuDNN 9 numbers versions major*10000 + minor*100 + patch; cuDNN 8 used major*1000. */
static void
cudnn_split (size_t v, int *major, int *minor, int *patch)
{
  size_t unit = v >= 10000 ? 10000 : 1000;
  *major = (int) (v / unit);
  *minor = (int) (v % unit / 100);
  *patch = (int) (v % 100);
}

/* The oldest driver branch for a CUDA major version (NVIDIA's compatibility table). */
static int
min_driver_for (int cuda_major)
{
  switch (cuda_major) {
  case 11: return 450;
  case 12: return 525;
  case 13: return 580;
  default: return 0;
  }
}

/* Checks driver, runtime and cuDNN against each other. Returns BP_OK or an error with a
 * one-line reason in why; a difference that still works goes into note. */
static BpStatus
check_versions (int driver, int runtime, size_t cudnn_rt, char *why, size_t why_len, char *note,
                size_t note_len)
{
  char dv[16], rv[16];
  cuda_version_str (driver, dv, sizeof dv);
  cuda_version_str (runtime, rv, sizeof rv);
  if (driver == 0) {
    /* cudaGetDeviceCount tells a missing libcuda.so.1 from a stub or broken one */
    int count = 0;
    cudaError_t err = cudaGetDeviceCount (&count);
    cudaGetLastError ();
    if (err == cudaErrorInsufficientDriver || err == cudaSuccess)
      snprintf (why, why_len,
                "no NVIDIA driver: libcuda.so.1 could not be loaded (install the NVIDIA driver)");
    else
      snprintf (why, why_len, "no NVIDIA driver: cudaGetDeviceCount: %s",
                cudaGetErrorString (err));
    return BP_ERR_DEVICE;
  }
  if (driver / 1000 < runtime / 1000) {
    int need = min_driver_for (runtime / 1000);
    char hint[64] = "";
    if (need)
      snprintf (hint, sizeof hint, " (driver %d or newer)", need);
    snprintf (why, why_len,
              "NVIDIA driver too old: it supports CUDA %s, this build uses CUDA %s; update the "
              "driver%s",
              dv, rv, hint);
    return BP_ERR_DEVICE;
  }
  if (driver < runtime)
    snprintf (note, note_len,
              "the driver supports CUDA %s, older than the runtime %s: running under minor "
              "version compatibility",
              dv, rv);

  int rmaj, rmin, rpat, cmaj, cmin, cpat;
  cudnn_split (cudnn_rt, &rmaj, &rmin, &rpat);
  cudnn_split (CUDNN_VERSION, &cmaj, &cmin, &cpat);
  if (rmaj != cmaj) {
    snprintf (why, why_len,
              "cuDNN %d.%d.%d at run time, but built against cuDNN %d.%d.%d: the major versions "
              "must match",
              rmaj, rmin, rpat, cmaj, cmin, cpat);
    return BP_ERR_DEVICE;
  }
  if (rmin != cmin && !note[0])
    snprintf (note, note_len,
              "cuDNN %d.%d.%d at run time, built against %d.%d.%d (same major version: fine)",
              rmaj, rmin, rpat, cmaj, cmin, cpat);
  return BP_OK;
}

static int
cublas_version (void)
{
  int major = 0, minor = 0, patch = 0;
  cublasGetProperty (MAJOR_VERSION, &major);
  cublasGetProperty (MINOR_VERSION, &minor);
  cublasGetProperty (PATCH_LEVEL, &patch);
  return major * 10000 + minor * 100 + patch;
}

/* cudaGetDeviceCount with a one-line reason when it finds nothing. */
static int
device_count (char *why, size_t len)
{
  int count = 0;
  cudaError_t err = cudaGetDeviceCount (&count);
  if (err != cudaSuccess) {
    snprintf (why, len, "no CUDA device: cudaGetDeviceCount: %s", cudaGetErrorString (err));
    cudaGetLastError ();
    return 0;
  }
  if (count == 0)
    snprintf (why, len, "no CUDA device: cudaGetDeviceCount found none");
  return count;
}

/* ---- start-up ---- */

static void
read_tf32_env (void)
{
  if (tf32_env_read)
    return;
  tf32_env_read = true;
  const char *env = getenv ("BP_CUDA_TF32");
  if (env && strcmp (env, "0") == 0)
    want_tf32 = false;
}

/* $BP_CUDA_BF16_GEMM=1 and $BP_CUDA_CUDNN_BN=0 (see doc/cuda.md). */
static void
read_switches_env (void)
{
  if (switches_env_read)
    return;
  switches_env_read = true;
  const char *env = getenv ("BP_CUDA_BF16_GEMM");
  if (env && env[0] && strcmp (env, "0") != 0)
    want_bf16_gemm = true;
  env = getenv ("BP_CUDA_CUDNN_BN");
  if (env && strcmp (env, "0") == 0)
    want_cudnn_bn = false;
}

static BpStatus
apply_math_mode (void)
{
  if (!bp_cuda_ctx.cublas)
    return BP_OK;
  BP_CUBLAS_CHECK (cublasSetMathMode (bp_cuda_ctx.cublas, bp_cuda_ctx.tf32
                                                            ? CUBLAS_TF32_TENSOR_OP_MATH
                                                            : CUBLAS_DEFAULT_MATH));
  return BP_OK;
}

static void
release_context (void)
{
  bp_cuda_lt_teardown ();
  if (bp_cuda_ctx.cudnn)
    cudnnDestroy (bp_cuda_ctx.cudnn);
  if (bp_cuda_ctx.cublas)
    cublasDestroy (bp_cuda_ctx.cublas);
  if (bp_cuda_ctx.stream)
    cudaStreamDestroy (bp_cuda_ctx.stream);
  cudaGetLastError ();
  bp_cuda_ctx.cudnn = NULL;
  bp_cuda_ctx.cublas = NULL;
  bp_cuda_ctx.stream = NULL;
  bp_cuda_ctx.device = -1;
}

static const BpBackend cuda_backend;

/* Runs fill, axpy and a small GEMM and checks the answers: catches a GPU this build has no
 * code for and a cuBLAS that cannot run on it before any training starts. */
static BpStatus
self_test (void)
{
  const BpBackend *be = &cuda_backend;
  /* x (4) = 2, y (4) = 1, y += 0.5 x; C (2,2) = A (2,3) B (3,2) */
  const float a[6] = { 1, 2, 3, 4, 5, 6 }, b[6] = { 1, 0, 0, 1, 1, 1 };
  const float want_c[4] = { 4, 5, 10, 11 };
  float got_y[4] = { 0 }, got_c[4] = { 0 };
  float *d = be->alloc (20 * sizeof (float));
  if (!d)
    return bp_last_status ();
  float *x = d, *y = d + 4, *da = d + 8, *db = d + 14, *dc = d + 16;
  be->fill (x, 2.0f, 4);
  be->fill (y, 1.0f, 4);
  be->axpy (4, 0.5f, x, y);
  BpStatus s = be->upload (da, a, sizeof a);
  if (s == BP_OK)
    s = be->upload (db, b, sizeof b);
  if (s == BP_OK) {
    be->gemm (false, false, 2, 2, 3, 1.0f, da, 3, db, 2, 0.0f, dc, 2);
    s = be->download (got_y, y, sizeof got_y);
  }
  if (s == BP_OK)
    s = be->download (got_c, dc, sizeof got_c);
  for (int i = 0; i < 4 && s == BP_OK; i++) {
    /* small integers: exact with TF32 too */
    if (got_y[i] != 2.0f || got_c[i] != want_c[i]) {
      bp_set_error (BP_ERR_DEVICE,
                    "wrong numbers: fill+axpy gave %g (want 2), gemm gave %g (want %g)",
                    got_y[i], got_c[i], want_c[i]);
      s = BP_ERR_DEVICE;
    }
  }
  be->free (d, 20 * sizeof (float));
  return s;
}

static BpStatus
init_once (char *why, size_t why_len, char *note, size_t note_len)
{
  int driver = 0, runtime = 0;
  cudaRuntimeGetVersion (&runtime);
  cudaDriverGetVersion (&driver);
  cudaGetLastError ();
  BpStatus s = check_versions (driver, runtime, cudnnGetVersion (), why, why_len, note, note_len);
  if (s != BP_OK)
    return s;
  int count = device_count (why, why_len);
  if (count == 0)
    return BP_ERR_DEVICE;

  int dev = 0;
  const char *env = getenv ("BP_CUDA_DEVICE");
  if (env && env[0]) {
    char *end;
    long v = strtol (env, &end, 10);
    if (*end || v < 0 || v >= count) {
      snprintf (why, why_len, "BP_CUDA_DEVICE=%s, but the devices are 0 to %d", env, count - 1);
      return BP_ERR_INVALID;
    }
    dev = (int) v;
  }
  struct cudaDeviceProp prop;
  if (BP_CUDA_TRY (cudaGetDeviceProperties (&prop, dev)) != BP_OK) {
    snprintf (why, why_len, "CUDA device %d: %s", dev, bp_last_error ());
    return BP_ERR_DEVICE;
  }
  if (prop.major < MIN_CC_MAJOR) {
    snprintf (why, why_len,
              "%s (cuda:%d) has compute capability %d.%d; this build has code for %d.0 and newer",
              prop.name, dev, prop.major, prop.minor, MIN_CC_MAJOR);
    return BP_ERR_DEVICE;
  }

  BpCudaContext *c = &bp_cuda_ctx;
  c->device = dev;
  c->max_blocks = 32 * prop.multiProcessorCount;
  read_tf32_env ();
  read_switches_env ();
  c->tf32 = want_tf32;
  c->bf16_gemm = want_bf16_gemm;
  c->cudnn_batch_norm = want_cudnn_bn;
  if ((s = BP_CUDA_TRY (cudaSetDevice (dev))) == BP_OK
      && (s = BP_CUDA_TRY (cudaStreamCreateWithFlags (&c->stream, cudaStreamNonBlocking))) == BP_OK
      && (s = BP_CUBLAS_TRY (cublasCreate (&c->cublas))) == BP_OK
      && (s = BP_CUBLAS_TRY (cublasSetStream (c->cublas, c->stream))) == BP_OK
      && (s = apply_math_mode ()) == BP_OK && (s = bp_cuda_lt_setup ()) == BP_OK
      && (s = BP_CUDNN_TRY (cudnnCreate (&c->cudnn))) == BP_OK)
    s = BP_CUDNN_TRY (cudnnSetStream (c->cudnn, c->stream));
  if (s != BP_OK) {
    snprintf (why, why_len, "cannot start CUDA on %s: %s", prop.name, bp_last_error ());
    release_context ();
    return s;
  }
  c->generation++;
  bp_cuda_alloc_setup ();
  s = self_test ();
  if (s == BP_OK)
    s = cuda_backend.synchronize ();
  if (s != BP_OK) {
    snprintf (why, why_len, "CUDA self-test failed on %s: %s", prop.name, bp_last_error ());
    bp_cuda_alloc_teardown ();
    release_context ();
    return s;
  }
  bp_backend_register (&cuda_backend);
  return BP_OK;
}

BpStatus
bp_cuda_init (char *why, size_t len)
{
  pthread_mutex_lock (&init_lock);
  if (!init_tried) {
    init_tried = true;
    init_why[0] = init_note[0] = '\0';
    init_status = init_once (init_why, sizeof init_why, init_note, sizeof init_note);
    if (init_status != BP_OK && !init_why[0])
      snprintf (init_why, sizeof init_why, "%s", bp_last_error ());
  }
  BpStatus s = init_status;
  if (s != BP_OK)
    bp_set_error (s, "%s", init_why);
  if (why && len)
    snprintf (why, len, "%s", init_why);
  pthread_mutex_unlock (&init_lock);
  return s;
}

bool
bp_cuda_available (void)
{
  pthread_mutex_lock (&init_lock);
  bool ok = init_tried && init_status == BP_OK;
  pthread_mutex_unlock (&init_lock);
  return ok;
}

const char *
bp_cuda_note (void)
{
  return init_note;
}

bool
bp_cuda_compiled (void)
{
  return true;
}

void
bp_cuda_shutdown (void)
{
  pthread_mutex_lock (&init_lock);
  if (init_tried && init_status == BP_OK) {
    bp_cuda_enter ();
    cudaStreamSynchronize (bp_cuda_ctx.stream);
    bp_cuda_conv_teardown ();
    bp_cuda_graph_teardown ();
    bp_cuda_alloc_teardown ();
    release_context ();
    /* The table stays registered (bp-backend.h has no unregister): every entry now fails
     * with "the CUDA backend is shut down" instead of touching freed handles. */
  }
  init_tried = false;
  init_status = BP_OK;
  pthread_mutex_unlock (&init_lock);
  pthread_mutex_lock (&defer_lock);
  deferred = BP_OK;
  pthread_mutex_unlock (&defer_lock);
}

void
bp_cuda_enter (void)
{
  static _Thread_local int bound = 0;
  bp_cuda_gate ();
  if (bound != bp_cuda_ctx.generation && bp_cuda_ctx.device >= 0) {
    cudaSetDevice (bp_cuda_ctx.device);
    cudaGetLastError ();
    bound = bp_cuda_ctx.generation;
  }
}

void
bp_cuda_set_tf32 (bool on)
{
  read_tf32_env ();
  want_tf32 = on;
  bp_cuda_ctx.tf32 = on;
  if (apply_math_mode () != BP_OK)
    bp_cuda_defer (BP_ERR_DEVICE);
}

bool
bp_cuda_get_tf32 (void)
{
  read_tf32_env ();
  return want_tf32;
}

void
bp_cuda_set_bf16_gemm (bool on)
{
  read_switches_env ();
  want_bf16_gemm = on;
  bp_cuda_ctx.bf16_gemm = on;
}

bool
bp_cuda_get_bf16_gemm (void)
{
  read_switches_env ();
  return want_bf16_gemm;
}

void
bp_cuda_set_cudnn_batch_norm (bool on)
{
  read_switches_env ();
  want_cudnn_bn = on;
  bp_cuda_ctx.cudnn_batch_norm = on;
}

bool
bp_cuda_get_cudnn_batch_norm (void)
{
  read_switches_env ();
  return want_cudnn_bn;
}

/* ---- device listing ---- */

BpStatus
bp_cuda_query (BpCudaInfo *info)
{
  memset (info, 0, sizeof *info);
  info->compiled = true;
  cudaRuntimeGetVersion (&info->runtime_version);
  cudaDriverGetVersion (&info->driver_version);
  cudaGetLastError ();
  info->cudnn_version = cudnnGetVersion ();
  info->cudnn_compiled = CUDNN_VERSION;
  info->cublas_version = cublas_version ();
  if (check_versions (info->driver_version, info->runtime_version, info->cudnn_version,
                      info->why, sizeof info->why, info->note, sizeof info->note)
      != BP_OK)
    return BP_ERR_DEVICE;
  int count = device_count (info->why, sizeof info->why);
  if (count == 0)
    return BP_ERR_DEVICE;

  int current = 0;
  cudaGetDevice (&current);
  int usable = 0;
  for (int i = 0; i < count && i < BP_CUDA_MAX_DEVICES; i++) {
    BpCudaDeviceInfo *d = &info->devices[info->n_devices++];
    d->index = i;
    struct cudaDeviceProp prop;
    cudaError_t err = cudaGetDeviceProperties (&prop, i);
    if (err != cudaSuccess) {
      snprintf (d->why, sizeof d->why, "cudaGetDeviceProperties: %s", cudaGetErrorString (err));
      cudaGetLastError ();
      continue;
    }
    snprintf (d->name, sizeof d->name, "%s", prop.name);
    d->total_bytes = prop.totalGlobalMem;
    d->cc_major = prop.major;
    d->cc_minor = prop.minor;
    d->multiprocessors = prop.multiProcessorCount;
    /* the free memory needs a context on the device (created on first use, then kept) */
    size_t free_b = 0, total_b = 0;
    err = cudaSetDevice (i);
    if (err == cudaSuccess)
      err = cudaMemGetInfo (&free_b, &total_b);
    if (err != cudaSuccess) {
      snprintf (d->why, sizeof d->why, "cannot open it: %s", cudaGetErrorString (err));
      cudaGetLastError ();
      continue;
    }
    d->free_bytes = free_b;
    if (prop.major < MIN_CC_MAJOR) {
      snprintf (d->why, sizeof d->why,
                "compute capability %d.%d; this build has code for %d.0 and newer", prop.major,
                prop.minor, MIN_CC_MAJOR);
      continue;
    }
    d->usable = true;
    usable++;
  }
  cudaSetDevice (current);
  cudaGetLastError ();
  if (usable == 0) {
    snprintf (info->why, sizeof info->why, "no usable CUDA device (%d found, see above)", count);
    return BP_ERR_DEVICE;
  }
  return BP_OK;
}

/* ---- the backend table ---- */

/* After bp_cuda_shutdown the table stays registered; its entries then report this. */
static bool
alive (void)
{
  bp_cuda_gate ();
  if (bp_cuda_ctx.stream)
    return true;
  bp_set_error (BP_ERR_DEVICE, "the CUDA backend is shut down (bp_cuda_shutdown)");
  return false;
}

bool
bp_cuda_begin (void)
{
  if (!alive ()) {
    bp_cuda_defer (BP_ERR_DEVICE);
    return false;
  }
  bp_cuda_enter ();
  return true;
}

static void *
cuda_alloc (size_t bytes)
{
  return alive () ? bp_cuda_alloc (bytes) : NULL;
}

static void
cuda_free (void *ptr, size_t bytes)
{
  bp_cuda_gate ();
  if (!bp_cuda_ctx.stream) {
    /* freed after bp_cuda_shutdown: the cache is gone, give it straight back */
    if (ptr)
      cudaFree (ptr);
    cudaGetLastError ();
    return;
  }
  bp_cuda_free (ptr, bytes);
}

/* Returns when host_src may be reused: a copy from pageable memory is staged before
 * cudaMemcpyAsync returns. */
static BpStatus
cuda_upload (void *dst, const void *host_src, size_t bytes)
{
  if (!alive ())
    return BP_ERR_DEVICE;
  if (bytes == 0)
    return BP_OK;
  if (bp_cuda_capturing ()) {
    /* a graph would copy from this host memory at every replay, whatever it then holds */
    bp_cuda_capture_refuse ("the step copies from host memory (an upload)");
    bp_set_error (BP_ERR_UNSUPPORTED, "an upload inside a CUDA graph capture");
    return BP_ERR_UNSUPPORTED;
  }
  bp_cuda_enter ();
  BP_CUDA_CHECK (cudaMemcpyAsync (dst, host_src, bytes, cudaMemcpyHostToDevice,
                                  bp_cuda_ctx.stream));
  return BP_OK;
}

/* Waits for the queued work and the copy; reports an error deferred by earlier entries. */
static BpStatus
cuda_download (void *host_dst, const void *src, size_t bytes)
{
  if (!alive ())
    return BP_ERR_DEVICE;
  if (bp_cuda_capturing ()) {
    bp_cuda_capture_refuse ("the step reads a value back from the GPU (a download)");
    bp_set_error (BP_ERR_UNSUPPORTED, "a download inside a CUDA graph capture");
    return BP_ERR_UNSUPPORTED;
  }
  bp_cuda_enter ();
  if (bytes)
    BP_CUDA_CHECK (cudaMemcpyAsync (host_dst, src, bytes, cudaMemcpyDeviceToHost,
                                    bp_cuda_ctx.stream));
  BP_CUDA_CHECK (cudaStreamSynchronize (bp_cuda_ctx.stream));
  return bp_cuda_take_deferred ();
}

static BpStatus
cuda_copy (void *dst, const void *src, size_t bytes)
{
  if (!alive ())
    return BP_ERR_DEVICE;
  if (bytes == 0)
    return BP_OK;
  bp_cuda_enter ();
  BP_CUDA_CHECK (cudaMemcpyAsync (dst, src, bytes, cudaMemcpyDeviceToDevice,
                                  bp_cuda_ctx.stream));
  return BP_OK;
}

static void
cuda_fill (float *dst, float value, int64_t n)
{
  if (!alive ()) {
    bp_cuda_defer (BP_ERR_DEVICE);
    return;
  }
  bp_cuda_enter ();
  bp_cuda_defer (bp_cuda_fill (bp_cuda_ctx.stream, dst, value, n));
}

static void
cuda_axpy (int64_t n, float a, const float *x, float *y)
{
  if (!alive ()) {
    bp_cuda_defer (BP_ERR_DEVICE);
    return;
  }
  bp_cuda_enter ();
  bp_cuda_defer (bp_cuda_axpy (bp_cuda_ctx.stream, n, a, x, y));
}

/* Whether the sizes fit cuBLAS's int arguments; else the error says which. */
static bool
gemm_sizes_fit (int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb, int64_t ldc,
                int64_t count)
{
  if (m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX
      && ldc <= INT_MAX && count <= INT_MAX)
    return true;
  bp_set_error (BP_ERR_UNSUPPORTED,
                "cuda gemm: sizes above 2^31 (m %lld, n %lld, k %lld, batch %lld)",
                (long long) m, (long long) n, (long long) k, (long long) count);
  return false;
}

/* Row-major C (m,n) = alpha op(A) (m,k) op(B) (k,n) + beta C, `count` times with the operands
 * `stride_*` floats apart (count 1: one product). cuBLAS is column-major, and a row-major
 * matrix read column-major is its transpose, so compute C^T = op(B)^T op(A)^T: swap the
 * operands (B first) and the sizes m and n; the leading dimensions and strides stay. */
BpStatus
bp_cuda_gemm_strided (bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                      const float *a, int64_t lda, int64_t stride_a, const float *b,
                      int64_t ldb, int64_t stride_b, float beta, float *c, int64_t ldc,
                      int64_t stride_c, int64_t count)
{
  if (!alive ())
    return BP_ERR_DEVICE;
  if (m == 0 || n == 0 || count == 0)
    return BP_OK;
  if (!gemm_sizes_fit (m, n, k, lda, ldb, ldc, count))
    return BP_ERR_UNSUPPORTED;
  /* with k == 0 the operands are not read, but cuBLAS still wants leading dimensions >= 1 */
  if (lda < 1)
    lda = 1;
  if (ldb < 1)
    ldb = 1;
  bp_cuda_enter ();
  cublasHandle_t h = bp_cuda_ctx.cublas;
  cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  int in = (int) n, im = (int) m, ik = (int) k, ia = (int) lda, ib = (int) ldb, ic = (int) ldc;
  if (bp_cuda_ctx.bf16_gemm) {
    /* float32 storage and accumulation, inputs rounded to bfloat16 on the tensor cores */
    if (count == 1)
      BP_CUBLAS_CHECK (cublasGemmEx (h, op_b, op_a, in, im, ik, &alpha, b, CUDA_R_32F, ib, a,
                                     CUDA_R_32F, ia, &beta, c, CUDA_R_32F, ic,
                                     CUBLAS_COMPUTE_32F_FAST_16BF, CUBLAS_GEMM_DEFAULT));
    else
      BP_CUBLAS_CHECK (cublasGemmStridedBatchedEx (h, op_b, op_a, in, im, ik, &alpha, b,
                                                   CUDA_R_32F, ib, stride_b, a, CUDA_R_32F, ia,
                                                   stride_a, &beta, c, CUDA_R_32F, ic, stride_c,
                                                   (int) count, CUBLAS_COMPUTE_32F_FAST_16BF,
                                                   CUBLAS_GEMM_DEFAULT));
    return BP_OK;
  }
  if (count == 1)
    BP_CUBLAS_CHECK (cublasSgemm (h, op_b, op_a, in, im, ik, &alpha, b, ib, a, ia, &beta, c, ic));
  else
    BP_CUBLAS_CHECK (cublasSgemmStridedBatched (h, op_b, op_a, in, im, ik, &alpha, b, ib,
                                                stride_b, a, ia, stride_a, &beta, c, ic,
                                                stride_c, (int) count));
  return BP_OK;
}

BpStatus
bp_cuda_gemm (bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
              const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
              int64_t ldc)
{
  return bp_cuda_gemm_strided (trans_a, trans_b, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c,
                               ldc, 0, 1);
}

/* Floats spanned by `count` row-major matrices (rows, cols) with leading dimension ld,
 * `stride` apart: from the first element read to one past the last. */
static int64_t
operand_span (int64_t rows, int64_t cols, int64_t ld, int64_t stride, int64_t count)
{
  if (rows == 0 || cols == 0)
    return 0;
  return (count - 1) * stride + (rows - 1) * ld + cols;
}

BpStatus
bp_cuda_bf16_operands (BpCudaBf16Operands *ops, bool trans_a, bool trans_b, int64_t m, int64_t n,
                       int64_t k, const float *a, int64_t lda, int64_t stride_a, const float *b,
                       int64_t ldb, int64_t stride_b, int64_t count)
{
  /* the stored operands: A (m,k) or, transposed, (k,m); B (k,n) or (n,k). Each is rounded
   * over its whole span (strided batches read in place: a packed projection, a KV cache) into
   * the workspace, B starting on a 256-byte boundary; the leading dimensions and strides
   * stay. */
  int64_t span_a = operand_span (trans_a ? k : m, trans_a ? m : k, lda, stride_a, count);
  int64_t span_b = operand_span (trans_b ? n : k, trans_b ? k : n, ldb, stride_b, count);
  int64_t off_b = (span_a + 127) / 128 * 128;
  ops->bytes = sizeof (uint16_t) * (size_t) (off_b + span_b);
  ops->ws = (uint16_t *) bp_cuda_alloc (ops->bytes);
  if (!ops->ws)
    return bp_last_status ();
  ops->a = ops->ws;
  ops->b = ops->ws + off_b;
  BpStatus st = bp_cuda_to_bf16 (bp_cuda_ctx.stream, ops->ws, a, span_a, ops->ws + off_b, b,
                                 span_b);
  if (st != BP_OK)
    bp_cuda_free (ops->ws, ops->bytes);
  return st;
}

BpStatus
bp_cuda_gemm_strided_at (BpPrecision precision, bool trans_a, bool trans_b, int64_t m,
                         int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                         int64_t stride_a, const float *b, int64_t ldb, int64_t stride_b,
                         float beta, float *c, int64_t ldc, int64_t stride_c, int64_t count)
{
  /* k == 0 reads no operand (C = beta C): the float32 call does that */
  if (precision != BP_PRECISION_BF16 || k == 0)
    return bp_cuda_gemm_strided (trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb,
                                 stride_b, beta, c, ldc, stride_c, count);
  if (!alive ())
    return BP_ERR_DEVICE;
  if (m == 0 || n == 0 || count == 0)
    return BP_OK;
  if (!gemm_sizes_fit (m, n, k, lda, ldb, ldc, count))
    return BP_ERR_UNSUPPORTED;
  bp_cuda_enter ();
  BpCudaBf16Operands ops;
  BpStatus st = bp_cuda_bf16_operands (&ops, trans_a, trans_b, m, n, k, a, lda, stride_a, b, ldb,
                                       stride_b, count);
  if (st != BP_OK)
    return st;
  /* column-major cuBLAS computes C^T = op(B)^T op(A)^T, as in bp_cuda_gemm_strided */
  cublasHandle_t h = bp_cuda_ctx.cublas;
  cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  int in = (int) n, im = (int) m, ik = (int) k, ia = (int) (lda < 1 ? 1 : lda);
  int ib = (int) (ldb < 1 ? 1 : ldb), ic = (int) ldc;
  if (count == 1)
    st = BP_CUBLAS_TRY (cublasGemmEx (h, op_b, op_a, in, im, ik, &alpha, ops.b, CUDA_R_16BF, ib,
                                      ops.a, CUDA_R_16BF, ia, &beta, c, CUDA_R_32F, ic,
                                      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  else
    st = BP_CUBLAS_TRY (cublasGemmStridedBatchedEx (h, op_b, op_a, in, im, ik, &alpha, ops.b,
                                                    CUDA_R_16BF, ib, stride_b, ops.a,
                                                    CUDA_R_16BF, ia, stride_a, &beta, c,
                                                    CUDA_R_32F, ic, stride_c, (int) count,
                                                    CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  bp_cuda_free (ops.ws, ops.bytes); /* stream order: the GEMM runs before any reuse */
  return st;
}

BpStatus
bp_cuda_gemm_at (BpPrecision precision, bool trans_a, bool trans_b, int64_t m, int64_t n,
                 int64_t k, float alpha, const float *a, int64_t lda, const float *b,
                 int64_t ldb, float beta, float *c, int64_t ldc)
{
  return bp_cuda_gemm_strided_at (precision, trans_a, trans_b, m, n, k, alpha, a, lda, 0, b,
                                  ldb, 0, beta, c, ldc, 0, 1);
}

/* The table's GEMM: the error is kept for synchronize. */
static void
cuda_gemm (bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
           const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
           int64_t ldc)
{
  bp_cuda_defer (bp_cuda_gemm (trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc));
}

/* The table's GEMM with bfloat16 operands (BP_PRECISION_BF16). */
static void
cuda_gemm_bf16 (bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                int64_t ldc)
{
  bp_cuda_defer (bp_cuda_gemm_at (BP_PRECISION_BF16, trans_a, trans_b, m, n, k, alpha, a, lda, b,
                                  ldb, beta, c, ldc));
}

/* The table's GEMM with bias (cuda-lt.c): the error is kept for synchronize. */
static void
cuda_gemm_bias (bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float *a,
                int64_t lda, const float *b, int64_t ldb, const float *bias, float *c,
                int64_t ldc)
{
  if (bp_cuda_begin ())
    bp_cuda_defer (bp_cuda_gemm_bias_at (BP_PRECISION_FP32, trans_a, trans_b, m, n, k, a, lda,
                                         b, ldb, bias, c, ldc));
}

static void
cuda_gemm_bias_bf16 (bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                     const float *a, int64_t lda, const float *b, int64_t ldb,
                     const float *bias, float *c, int64_t ldc)
{
  if (bp_cuda_begin ())
    bp_cuda_defer (bp_cuda_gemm_bias_at (BP_PRECISION_BF16, trans_a, trans_b, m, n, k, a, lda,
                                         b, ldb, bias, c, ldc));
}

/* The table's column sum (basic.cu). */
static void
cuda_col_sum (int64_t m, int64_t n, const float *x, float *db)
{
  if (bp_cuda_begin ())
    bp_cuda_defer (bp_cuda_col_sum (bp_cuda_ctx.stream, m, n, x, db));
}

/* Waits for all queued work: kernel faults surface here. */
static BpStatus
cuda_synchronize (void)
{
  if (!alive ())
    return BP_ERR_DEVICE;
  if (bp_cuda_capturing ()) {
    bp_cuda_capture_refuse ("the step waits for the GPU (a synchronize)");
    bp_set_error (BP_ERR_UNSUPPORTED, "a synchronize inside a CUDA graph capture");
    return BP_ERR_UNSUPPORTED;
  }
  bp_cuda_enter ();
  BP_CUDA_CHECK (cudaStreamSynchronize (bp_cuda_ctx.stream));
  return bp_cuda_take_deferred ();
}

static const BpBackend cuda_backend = {
  .name = "cuda",
  .device = BP_DEVICE_CUDA,
  .alloc = cuda_alloc,
  .free = cuda_free,
  .upload = cuda_upload,
  .download = cuda_download,
  .copy = cuda_copy,
  .fill = cuda_fill,
  .axpy = cuda_axpy,
  .gemm = cuda_gemm,
  .gemm_bf16 = cuda_gemm_bf16,
  .gemm_bias = cuda_gemm_bias,
  .gemm_bias_bf16 = cuda_gemm_bias_bf16,
  .col_sum = cuda_col_sum,
  .synchronize = cuda_synchronize,
  .eltwise = &bp_cuda_eltwise_kernels,
  .conv = &bp_cuda_conv_kernels,
  .norm = &bp_cuda_norm_kernels,
  .loss = &bp_cuda_loss_kernels,
  .optim = &bp_cuda_optim_kernels,
  .rnn = &bp_cuda_rnn_kernels,
  .attn = &bp_cuda_attn_kernels,
  .conv_bf16 = &bp_cuda_conv_bf16_kernels,
  .rnn_bf16 = &bp_cuda_rnn_bf16_kernels,
  .attn_bf16 = &bp_cuda_attn_bf16_kernels,
};
