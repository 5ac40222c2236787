/* test-cuda.c: the CUDA backend: start-up and its reasons when no GPU is usable, the check
 * macros, the device listing, and with a GPU: copies, fill, axpy, GEMM against the CPU
 * backend, the caching allocator and the out-of-memory report. Tests that need a GPU skip with
 * the reason when there is none. */
#include "bp-test.h"

#include <math.h>
#include <string.h>

#include "bp-backend.h"
#include "bp-ops-eltwise.h"
#include "bp-rng.h"
#include "config.h"
#include "cuda/bp-cuda.h"
#if BP_HAVE_CUDA
#include "cuda/cuda-check.h"
#endif

#define MIB ((size_t) 1 << 20)

/* bp_cuda_init's answer, taken once in main before the tests run */
static BpStatus cuda_status;
static char cuda_why[512];

/* Skips the test with the reason when no CUDA device is usable. */
static gboolean
need_cuda (void)
{
  if (cuda_status == BP_OK)
    return TRUE;
  g_test_skip (cuda_why);
  return FALSE;
}

static const char *const known_reasons[] = {
  "no CUDA device",       "no NVIDIA driver",        "NVIDIA driver too old",
  "cuDNN ",               "BP_CUDA_DEVICE=",         "cannot start CUDA",
  "CUDA self-test failed", "CUDA is not compiled in", "CUDA device ",
};

static void
test_init (void)
{
  char why[512] = "x";
  bp_clear_error ();
  BpStatus s = bp_cuda_init (why, sizeof why);
  /* a second call returns the first answer */
  g_assert_cmpint (s, ==, cuda_status);
  g_assert_cmpstr (why, ==, cuda_why);
  g_assert_cmpint (bp_cuda_compiled (), ==, BP_HAVE_CUDA);

  if (s != BP_OK) {
    g_test_message ("CUDA is not usable here: %s", why);
    /* one line, saying why, and the same as the thread's error */
    g_assert_cmpuint (strlen (why), >, 10);
    g_assert_null (strchr (why, '\n'));
    g_assert_cmpint (bp_last_status (), ==, s);
    g_assert_cmpstr (bp_last_error (), ==, why);
    bool known = false;
    for (size_t i = 0; i < G_N_ELEMENTS (known_reasons); i++)
      known |= strstr (why, known_reasons[i]) != NULL;
    if (!known && strstr (why, "compute capability"))
      known = true;
    g_assert_true (known);
    if (!bp_cuda_compiled ())
      g_assert_cmpint (s, ==, BP_ERR_UNSUPPORTED);
    /* no backend is registered: CUDA tensors are a clear error, not a crash */
    g_assert_false (bp_cuda_available ());
    g_assert_null (bp_backend (BP_DEVICE_CUDA));
    g_assert_null (bp_tensor_new_on (BP_DEVICE_CUDA, 1, (int64_t[]){ 4 }));
    g_assert_cmpint (bp_last_status (), ==, BP_ERR_DEVICE);
    /* the CPU is untouched */
    BpTensor *t = bp_tensor_new_1d (4);
    g_assert_nonnull (t);
    bp_tensor_unref (t);
    return;
  }
  g_assert_cmpstr (why, ==, "");
  g_assert_true (bp_cuda_available ());
  const BpBackend *be = bp_backend (BP_DEVICE_CUDA);
  g_assert_nonnull (be);
  g_assert_cmpstr (be->name, ==, "cuda");
  g_assert_cmpint (be->device, ==, BP_DEVICE_CUDA);
  if (bp_cuda_note ()[0])
    g_test_message ("note: %s", bp_cuda_note ());
}

static void
collect_line (const char *line, void *user)
{
  g_test_message ("%s", line);
  g_string_append_printf (user, "%s\n", line);
}

static void
test_query (void)
{
  BpCudaInfo info;
  BpStatus s = bp_cuda_query (&info);
  g_assert_cmpint (info.compiled, ==, bp_cuda_compiled ());
  GString *text = g_string_new ("");
  bp_cuda_info_print (&info, collect_line, text);
  g_assert_cmpuint (text->len, >, 10);

  if (!info.compiled) {
    g_assert_cmpint (s, ==, BP_ERR_UNSUPPORTED);
    g_assert_nonnull (strstr (text->str, "not compiled in"));
    g_string_free (text, TRUE);
    return;
  }
  /* the versions are known without a driver or a GPU */
  g_assert_cmpint (info.runtime_version, >=, 11000);
  g_assert_cmpuint (info.cudnn_version, >=, 8000);
  g_assert_cmpuint (info.cudnn_compiled, >=, 90000);
  g_assert_cmpint (info.cublas_version, >=, 110000);
  g_assert_nonnull (strstr (text->str, "cuDNN "));
  if (s != BP_OK) {
    g_assert_cmpuint (strlen (info.why), >, 10);
    g_assert_nonnull (strstr (text->str, info.why));
    /* nothing usable, so init cannot have succeeded */
    g_assert_cmpint (cuda_status, !=, BP_OK);
  } else {
    g_assert_cmpint (info.n_devices, >=, 1);
    g_assert_cmpstr (info.why, ==, "");
    bool usable = false;
    for (int i = 0; i < info.n_devices; i++) {
      const BpCudaDeviceInfo *d = &info.devices[i];
      if (!d->usable)
        continue;
      usable = true;
      g_assert_cmpuint (strlen (d->name), >, 0);
      g_assert_cmpuint (d->total_bytes, >, 0);
      g_assert_cmpuint (d->free_bytes, <=, d->total_bytes);
      g_assert_cmpint (d->cc_major, >=, 8);
      g_assert_cmpint (d->multiprocessors, >, 0);
    }
    g_assert_true (usable);
  }
  g_string_free (text, TRUE);
}

#if BP_HAVE_CUDA
/* BP_CUDA_CHECK returns from the function at the failing call. */
static BpStatus
check_returns_early (bool *reached_end)
{
  BP_CUDA_CHECK (cudaSetDevice (-1));
  *reached_end = true;
  return BP_OK;
}
#endif

/* The check macros run without a GPU: each call below fails by construction. */
static void
test_check_macros (void)
{
#if BP_HAVE_CUDA
  char want[128];

  bp_clear_error ();
  int line = __LINE__ + 1;
  BpStatus s = BP_CUDA_TRY (cudaSetDevice (-1));
  g_assert_cmpint (s, ==, BP_ERR_DEVICE);
  g_assert_cmpint (bp_last_status (), ==, BP_ERR_DEVICE);
  g_snprintf (want, sizeof want, "cudaSetDevice (-1) failed at test-cuda.c:%d: ", line);
  g_assert_true (g_str_has_prefix (bp_last_error (), want));
  g_assert_nonnull (strstr (bp_last_error (), "(cudaError"));
  /* the runtime's last error was cleared, so later launch checks do not see it (without a
   * driver the runtime keeps reporting that, so only with a device) */
  if (cuda_status == BP_OK)
    g_assert_cmpint (cudaGetLastError (), ==, cudaSuccess);

  bool reached_end = false;
  g_assert_cmpint (check_returns_early (&reached_end), ==, BP_ERR_DEVICE);
  g_assert_false (reached_end);

  g_assert_cmpint (BP_CUDA_TRY (cudaRuntimeGetVersion (&line)), ==, BP_OK);
  g_assert_cmpint (line, >=, 11000);

  bp_clear_error ();
  line = __LINE__ + 1;
  s = BP_CUBLAS_TRY (cublasSetMathMode (NULL, CUBLAS_DEFAULT_MATH));
  g_assert_cmpint (s, ==, BP_ERR_DEVICE);
  g_snprintf (want, sizeof want,
              "cublasSetMathMode (NULL, CUBLAS_DEFAULT_MATH) failed at test-cuda.c:%d: ", line);
  g_assert_true (g_str_has_prefix (bp_last_error (), want));
  g_assert_nonnull (strstr (bp_last_error (), "CUBLAS_STATUS_NOT_INITIALIZED"));

  bp_clear_error ();
  line = __LINE__ + 1;
  s = BP_CUDNN_TRY (cudnnSetTensor4dDescriptor (NULL, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 1, 1, 1));
  g_assert_cmpint (s, ==, BP_ERR_DEVICE);
  g_snprintf (want, sizeof want, "cudnnSetTensor4dDescriptor (NULL, CUDNN_TENSOR_NCHW, "
              "CUDNN_DATA_FLOAT, 1, 1, 1, 1) failed at test-cuda.c:%d: ", line);
  g_assert_true (g_str_has_prefix (bp_last_error (), want));
  g_assert_nonnull (strstr (bp_last_error (), "CUDNN_STATUS_BAD_PARAM"));
  g_test_message ("cuDNN error: %s", bp_last_error ());
  bp_clear_error ();
#else
  g_test_skip ("built without CUDA: no check macros to test");
#endif
}

static void
test_tf32_switch (void)
{
  if (!bp_cuda_compiled ()) {
    g_test_skip ("built without CUDA");
    return;
  }
  bool was = bp_cuda_get_tf32 ();
  bp_cuda_set_tf32 (false);
  g_assert_false (bp_cuda_get_tf32 ());
  bp_cuda_set_tf32 (true);
  g_assert_true (bp_cuda_get_tf32 ());
  bp_cuda_set_tf32 (was);
  if (cuda_status == BP_OK)
    g_assert_cmpint (bp_backend (BP_DEVICE_CUDA)->synchronize (), ==, BP_OK);
}

static float *
rand_host (int64_t n, float lo, float hi)
{
  float *p = g_new (float, n);
  for (int64_t i = 0; i < n; i++)
    p[i] = lo + (hi - lo) * bp_rng_uniform ();
  return p;
}

static void
test_fill_copy_axpy (void)
{
  if (!need_cuda ())
    return;
  const BpBackend *be = bp_backend (BP_DEVICE_CUDA);
  const int64_t n = 100003; /* odd: no whole number of blocks */
  size_t bytes = (size_t) n * sizeof (float);
  float *d = be->alloc (bytes), *d2 = be->alloc (bytes);
  g_assert_nonnull (d);
  g_assert_nonnull (d2);
  float *h = rand_host (n, -2, 2), *back = g_new (float, n);

  be->fill (d, 3.5f, n);
  g_assert_cmpint (be->download (back, d, bytes), ==, BP_OK);
  for (int64_t i = 0; i < n; i++)
    g_assert_cmpfloat (back[i], ==, 3.5f);
  be->fill (d, 0.0f, n); /* memset path */
  g_assert_cmpint (be->download (back, d, bytes), ==, BP_OK);
  for (int64_t i = 0; i < n; i++)
    g_assert_true (back[i] == 0.0f && !signbit (back[i]));
  be->fill (d, -0.0f, n); /* kernel path: keeps the sign */
  g_assert_cmpint (be->download (back, d, bytes), ==, BP_OK);
  g_assert_true (signbit (back[0]) && signbit (back[n - 1]));

  /* upload, device copy, download: bit for bit */
  g_assert_cmpint (be->upload (d, h, bytes), ==, BP_OK);
  g_assert_cmpint (be->copy (d2, d, bytes), ==, BP_OK);
  g_assert_cmpint (be->download (back, d2, bytes), ==, BP_OK);
  g_assert_cmpmem (back, bytes, h, bytes);
  /* a partial copy leaves the rest alone */
  be->fill (d2, 1.0f, n);
  g_assert_cmpint (be->copy (d2 + 1, d + 1, 10 * sizeof (float)), ==, BP_OK);
  g_assert_cmpint (be->download (back, d2, bytes), ==, BP_OK);
  g_assert_cmpfloat (back[0], ==, 1.0f);
  g_assert_cmpmem (back + 1, 10 * sizeof (float), h + 1, 10 * sizeof (float));
  g_assert_cmpfloat (back[11], ==, 1.0f);

  /* y = h + 0.25 h, against the CPU backend's axpy */
  g_assert_cmpint (be->copy (d2, d, bytes), ==, BP_OK);
  be->axpy (n, 0.25f, d, d2);
  g_assert_cmpint (be->download (back, d2, bytes), ==, BP_OK);
  float *want = g_memdup2 (h, bytes);
  bp_cpu_backend.axpy (n, 0.25f, h, want);
  bp_test_assert_close ("axpy", back, want, n, 1e-6);
  g_assert_cmpint (be->synchronize (), ==, BP_OK);

  /* tensors: to the GPU and back, and zero-filled creation */
  BpTensor *t = bp_test_rand (2, (int64_t[]){ 31, 17 }, -1, 1, false);
  BpTensor *g = bp_tensor_to (t, BP_DEVICE_CUDA);
  g_assert_nonnull (g);
  g_assert_cmpint (g->device, ==, BP_DEVICE_CUDA);
  BpTensor *c = bp_tensor_to (g, BP_DEVICE_CPU);
  g_assert_nonnull (c);
  g_assert_cmpmem (c->data, t->numel * 4, t->data, t->numel * 4);
  BpTensor *z = bp_tensor_new_on (BP_DEVICE_CUDA, 1, (int64_t[]){ 77 });
  BpTensor *zc = bp_tensor_to (z, BP_DEVICE_CPU);
  for (int i = 0; i < 77; i++)
    g_assert_cmpfloat (zc->data[i], ==, 0.0f);
  bp_tensor_unref (t);
  bp_tensor_unref (g);
  bp_tensor_unref (c);
  bp_tensor_unref (z);
  bp_tensor_unref (zc);

  be->free (d, bytes);
  be->free (d2, bytes);
  g_free (h);
  g_free (back);
  g_free (want);
}

/* One GEMM on the GPU against bp_cpu_backend.gemm, with padded leading dimensions; the error
 * of each element is measured against alpha * sum_k |a||b| + |beta c|, the size of the terms
 * it sums. Returns the largest such error. */
static double
check_gemm (bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, float beta,
            double tol)
{
  const BpBackend *be = bp_backend (BP_DEVICE_CUDA);
  int64_t a_rows = ta ? k : m, a_cols = ta ? m : k;
  int64_t b_rows = tb ? n : k, b_cols = tb ? k : n;
  int64_t lda = a_cols + 3, ldb = b_cols + 2, ldc = n + 1;
  int64_t na = a_rows * lda, nb = b_rows * ldb, nc = m * ldc;
  float *a = rand_host (na ? na : 1, -1, 1), *b = rand_host (nb ? nb : 1, -1, 1);
  float *c0 = rand_host (nc, -1, 1);
  if (beta == 0.0f)
    for (int64_t i = 0; i < nc; i++)
      c0[i] = NAN; /* beta 0: C is not read */
  float *want = g_memdup2 (c0, nc * sizeof (float)), *got = g_new (float, nc);
  bp_cpu_backend.gemm (ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, want, ldc);

  float *da = be->alloc ((na ? na : 1) * 4), *db = be->alloc ((nb ? nb : 1) * 4);
  float *dc = be->alloc (nc * 4);
  g_assert_cmpint (be->upload (da, a, (na ? na : 1) * 4), ==, BP_OK);
  g_assert_cmpint (be->upload (db, b, (nb ? nb : 1) * 4), ==, BP_OK);
  g_assert_cmpint (be->upload (dc, c0, nc * 4), ==, BP_OK);
  be->gemm (ta, tb, m, n, k, alpha, da, lda, db, ldb, beta, dc, ldc);
  g_assert_cmpint (be->synchronize (), ==, BP_OK);
  g_assert_cmpint (be->download (got, dc, nc * 4), ==, BP_OK);

  double worst = 0;
  for (int64_t i = 0; i < m; i++) {
    for (int64_t j = 0; j < ldc; j++) {
      float g = got[i * ldc + j], w = want[i * ldc + j];
      if (j >= n) {
        /* the padding of C is not written */
        g_assert_cmpmem (&g, 4, &c0[i * ldc + j], 4);
        continue;
      }
      double scale = beta != 0.0f ? fabs (beta * c0[i * ldc + j]) : 0.0;
      for (int64_t p = 0; p < k; p++) {
        float av = ta ? a[p * lda + i] : a[i * lda + p];
        float bv = tb ? b[j * ldb + p] : b[p * ldb + j];
        scale += fabs (alpha * av * bv);
      }
      double err = fabs ((double) g - w) / (scale > 1e-30 ? scale : 1e-30);
      g_assert_true (isfinite (g));
      if (err > worst)
        worst = err;
    }
  }
  if (worst > tol)
    g_error ("gemm ta %d tb %d m %" G_GINT64_FORMAT " n %" G_GINT64_FORMAT
             " k %" G_GINT64_FORMAT ": relative error %.3g > %.3g",
             ta, tb, m, n, k, worst, tol);
  be->free (da, (na ? na : 1) * 4);
  be->free (db, (nb ? nb : 1) * 4);
  be->free (dc, nc * 4);
  g_free (a);
  g_free (b);
  g_free (c0);
  g_free (want);
  g_free (got);
  return worst;
}

static double
gemm_cases (double tol)
{
  double worst = 0;
  static const int64_t sizes[][3] = {
    { 37, 53, 129 }, { 1, 67, 33 }, { 65, 1, 7 }, { 17, 29, 1 }, { 5, 7, 0 }, { 130, 97, 211 },
  };
  bp_rng_seed (7);
  for (size_t s = 0; s < G_N_ELEMENTS (sizes); s++)
    for (int t = 0; t < 4; t++) {
      bool ta = t & 1, tb = t & 2;
      worst = fmax (worst, check_gemm (ta, tb, sizes[s][0], sizes[s][1], sizes[s][2], 0.75f,
                                       -0.5f, tol));
      worst = fmax (worst, check_gemm (ta, tb, sizes[s][0], sizes[s][1], sizes[s][2], 1.0f,
                                       0.0f, tol));
    }
  return worst;
}

static void
test_gemm_tf32 (void)
{
  if (!need_cuda ())
    return;
  bool was = bp_cuda_get_tf32 ();
  bp_cuda_set_tf32 (true);
  /* TF32 keeps 10 mantissa bits: each input is off by up to 2^-11 (rounded) or 2^-10
   * (truncated), so one product by up to 2^-9 = 1.95e-3 of its size */
  g_test_message ("TF32: worst relative error %.3g", gemm_cases (2e-3));
  bp_cuda_set_tf32 (was);
}

static void
test_gemm_fp32 (void)
{
  if (!need_cuda ())
    return;
  bool was = bp_cuda_get_tf32 ();
  bp_cuda_set_tf32 (false);
  /* float32 throughout: TF32 errors (1e-4 and up) would fail this */
  g_test_message ("float32: worst relative error %.3g", gemm_cases (1e-5));
  bp_cuda_set_tf32 (was);
}

static void
test_alloc_reuse (void)
{
  if (!need_cuda ())
    return;
  if (g_getenv ("BP_CUDA_NO_CACHE")) {
    g_test_skip ("BP_CUDA_NO_CACHE is set: the cache is off");
    return;
  }
  const BpBackend *be = bp_backend (BP_DEVICE_CUDA);
  BpCudaAllocStats s0, s1;

  void *p = be->alloc (1000);
  g_assert_nonnull (p);
  be->free (p, 1000);
  bp_cuda_alloc_stats (&s0);
  g_assert_cmpuint (s0.cached_bytes, >=, 1024);
  /* the same size, and a size in the same 512-byte bucket, get the cached block */
  void *q = be->alloc (1000);
  g_assert_true (q == p);
  be->free (q, 1000);
  q = be->alloc (1020);
  g_assert_true (q == p);
  bp_cuda_alloc_stats (&s1);
  g_assert_cmpuint (s1.n_device_mallocs, ==, s0.n_device_mallocs);
  g_assert_cmpuint (s1.n_cache_hits, ==, s0.n_cache_hits + 2);
  g_assert_cmpuint (s1.in_use_bytes, >=, s0.in_use_bytes + 1024);
  be->free (q, 1020);

  /* large sizes: 3 MiB + 1 rounds up to 3.5 MiB */
  void *big = be->alloc (3 * MIB + 1);
  be->free (big, 3 * MIB + 1);
  g_assert_true (be->alloc (3 * MIB + 100) == big);
  be->free (big, 3 * MIB + 100);

  /* a training-step pattern: after the first step no cudaMalloc and no cudaFree */
  static const size_t step_sizes[] = { 4000, 123456, 5 * MIB, 4000, 77 * MIB / 10 };
  void *ptrs[G_N_ELEMENTS (step_sizes)];
  for (int step = 0; step < 50; step++) {
    if (step == 1)
      bp_cuda_alloc_stats (&s0);
    for (size_t i = 0; i < G_N_ELEMENTS (step_sizes); i++) {
      ptrs[i] = be->alloc (step_sizes[i]);
      g_assert_nonnull (ptrs[i]);
      be->fill (ptrs[i], 1.0f, (int64_t) (step_sizes[i] / 4));
    }
    for (size_t i = 0; i < G_N_ELEMENTS (step_sizes); i++)
      be->free (ptrs[i], step_sizes[i]);
  }
  bp_cuda_alloc_stats (&s1);
  g_assert_cmpuint (s1.n_device_mallocs, ==, s0.n_device_mallocs);
  g_assert_cmpuint (s1.n_device_frees, ==, s0.n_device_frees);
  g_assert_cmpuint (s1.n_cache_hits, ==, s0.n_cache_hits + 49 * G_N_ELEMENTS (step_sizes));
  g_assert_cmpint (be->synchronize (), ==, BP_OK);

  bp_cuda_empty_cache ();
  bp_cuda_alloc_stats (&s1);
  g_assert_cmpuint (s1.cached_bytes, ==, 0);
  g_assert_cmpuint (s1.n_device_frees, >, s0.n_device_frees);
}

static void
test_out_of_memory (void)
{
  if (!need_cuda ())
    return;
  const BpBackend *be = bp_backend (BP_DEVICE_CUDA);
  bp_clear_error ();
  void *p = be->alloc ((size_t) 1 << 50); /* 1 PiB */
  g_assert_null (p);
  g_assert_cmpint (bp_last_status (), ==, BP_ERR_NOMEM);
  g_test_message ("%s", bp_last_error ());
  g_assert_true (g_str_has_prefix (bp_last_error (), "out of GPU memory: asked 1073741824.0 MiB, "));
  g_assert_nonnull (strstr (bp_last_error (), " MiB free"));

  /* through a tensor: 2^38 floats is a legal shape but 1 TiB */
  g_assert_null (bp_tensor_new_on (BP_DEVICE_CUDA, 1, (int64_t[]){ (int64_t) 1 << 38 }));
  g_assert_cmpint (bp_last_status (), ==, BP_ERR_NOMEM);

  /* the failure is not sticky: the device still works */
  float *d = be->alloc (64 * sizeof (float)), back[64];
  g_assert_nonnull (d);
  be->fill (d, 2.0f, 64);
  g_assert_cmpint (be->download (back, d, sizeof back), ==, BP_OK);
  g_assert_cmpfloat (back[63], ==, 2.0f);
  be->free (d, 64 * sizeof (float));
  g_assert_cmpint (be->synchronize (), ==, BP_OK);
}

/* ---- CUDA graphs ---- */

/* A small "step": x = dropout (a) (a new mask per replay), y += 2 x, and a scratch block
 * allocated and freed inside it (the graph's pool must keep it). */
static BpTensor *
graph_step (BpTensor *a, BpTensor *y)
{
  const BpBackend *be = bp_backend (BP_DEVICE_CUDA);
  float *scratch = be->alloc (4096);
  if (!scratch)
    return NULL;
  be->fill (scratch, 0.0f, 1024);
  BpTensor *x = bp_dropout (a, 0.5f, true);
  if (x)
    be->axpy (x->numel, 2.0f, x->data, y->data);
  be->free (scratch, 4096);
  return x;
}

static void
test_graph_replay (void)
{
  if (!need_cuda ())
    return;
  const BpBackend *be = bp_backend (BP_DEVICE_CUDA);
  int64_t n = 1000;
  BpTensor *ha = bp_tensor_new_1d (n);
  for (int64_t i = 0; i < n; i++)
    ha->data[i] = (float) (i % 17) - 8.0f;
  BpTensor *a = bp_tensor_to (ha, BP_DEVICE_CUDA);
  BpTensor *y_eager = bp_tensor_new_on (BP_DEVICE_CUDA, 1, &n);
  BpTensor *y_graph = bp_tensor_new_on (BP_DEVICE_CUDA, 1, &n);
  bp_tensor_fill (y_eager, 0.0f);
  bp_tensor_fill (y_graph, 0.0f);

  /* three eager steps from a generator state */
  bp_rng_seed (42);
  for (int k = 0; k < 3; k++)
    bp_tensor_unref (graph_step (a, y_eager));
  /* the same from the same state: step 1 captured (not run), then three replays */
  bp_rng_seed (42);
  g_assert_cmpint (bp_cuda_capture_begin (), ==, BP_OK);
  g_assert_true (bp_cuda_capturing ());
  BpTensor *x = graph_step (a, y_graph);
  g_assert_nonnull (x);
  BpCudaGraph *g = bp_cuda_capture_end ();
  g_assert_nonnull (g);
  g_assert_false (bp_cuda_capturing ());
  g_assert_cmpint (bp_cuda_graph_n_keys (g), ==, 1);
  g_assert_cmpuint (bp_cuda_graph_n_blocks (g), >=, 2); /* x and the scratch */
  /* nothing ran yet */
  BpTensor *h = bp_tensor_to (y_graph, BP_DEVICE_CPU);
  for (int64_t i = 0; i < n; i++)
    g_assert_cmpfloat (h->data[i], ==, 0.0f);
  bp_tensor_unref (h);
  /* a block outside the graph never gets the pool's memory */
  float *other = be->alloc (4096);
  g_assert_true (other != x->data);
  for (int k = 0; k < 3; k++)
    g_assert_cmpint (bp_cuda_graph_launch (g), ==, BP_OK);
  be->free (other, 4096);
  BpTensor *he = bp_tensor_to (y_eager, BP_DEVICE_CPU), *hg = bp_tensor_to (y_graph, BP_DEVICE_CPU);
  int zeros = 0;
  for (int64_t i = 0; i < n; i++) {
    g_assert_cmpfloat (hg->data[i], ==, he->data[i]);
    zeros += he->data[i] == 0.0f;
  }
  /* three masks of p = 0.5 (not one mask three times): few elements dropped every time */
  g_assert_cmpint (zeros, <, n / 4);
  bp_tensor_unref (he);
  bp_tensor_unref (hg);
  bp_tensor_unref (x);
  bp_cuda_graph_free (g);
  g_assert_cmpint (be->synchronize (), ==, BP_OK);
  bp_tensor_unref (a);
  bp_tensor_unref (ha);
  bp_tensor_unref (y_eager);
  bp_tensor_unref (y_graph);
}

/* A step that reads a value back cannot be captured: the capture fails with the reason,
 * nothing ran, and the backend works on. */
static void
test_graph_refused (void)
{
  if (cuda_status != BP_OK) {
    /* without a GPU capturing is refused at once */
    g_assert_cmpint (bp_cuda_capture_begin (), !=, BP_OK);
    g_assert_false (bp_cuda_capturing ());
    g_assert_null (bp_cuda_capture_end ());
    return;
  }
  const BpBackend *be = bp_backend (BP_DEVICE_CUDA);
  float *d = be->alloc (64 * sizeof (float)), back[64];
  be->fill (d, 1.0f, 64);
  g_assert_cmpint (bp_cuda_capture_begin (), ==, BP_OK);
  be->fill (d, 5.0f, 64);
  g_assert_cmpint (be->download (back, d, sizeof back), !=, BP_OK);
  g_assert_null (bp_cuda_capture_end ());
  g_test_message ("%s", bp_last_error ());
  g_assert_nonnull (strstr (bp_last_error (), "the step cannot be captured as a CUDA graph: the "
                                              "step reads a value back from the GPU"));
  g_assert_cmpint (be->download (back, d, sizeof back), ==, BP_OK);
  g_assert_cmpfloat (back[0], ==, 1.0f); /* the captured fill never ran */
  /* a step drawing random numbers that are not dropout masks */
  g_assert_cmpint (bp_cuda_capture_begin (), ==, BP_OK);
  be->fill (d, 5.0f, 64);
  (void) bp_rng_u64 ();
  g_assert_null (bp_cuda_capture_end ());
  g_assert_nonnull (strstr (bp_last_error (), "random numbers that are not dropout masks"));
  be->free (d, 64 * sizeof (float));
  g_assert_cmpint (be->synchronize (), ==, BP_OK);
}

typedef struct {
  float *d;
  int64_t n;
  gint done;
} GateJob;

static gpointer
gate_thread (gpointer data)
{
  GateJob *job = data;
  bp_backend (BP_DEVICE_CUDA)->fill (job->d, 7.0f, job->n);
  g_atomic_int_set (&job->done, 1);
  return NULL;
}

/* Each of n floats at d equals want. */
static void
assert_all (const float *d, int64_t n, float want)
{
  float *h = g_new (float, n);
  g_assert_cmpint (bp_backend (BP_DEVICE_CUDA)->download (h, d, sizeof (float) * (size_t) n), ==,
                   BP_OK);
  for (int64_t i = 0; i < n; i++)
    g_assert_cmpfloat (h[i], ==, want);
  g_free (h);
}

/* While one thread captures, another thread's work waits at the gate until the capture ends
 * instead of being recorded into the graph: it runs once, eagerly, and replays leave its
 * memory alone. */
static void
test_graph_gate (void)
{
  if (!need_cuda ())
    return;
  const BpBackend *be = bp_backend (BP_DEVICE_CUDA);
  int64_t n = 256;
  float *a = be->alloc (sizeof (float) * (size_t) n), *b = be->alloc (sizeof (float) * (size_t) n);
  be->fill (a, 0.0f, n);
  be->fill (b, 0.0f, n);
  g_assert_cmpint (be->synchronize (), ==, BP_OK);
  g_assert_cmpint (bp_cuda_capture_begin (), ==, BP_OK);
  GateJob job = {b, n, 0};
  GThread *thread = g_thread_new ("bp-gate", gate_thread, &job);
  g_usleep (100000);
  g_assert_cmpint (g_atomic_int_get (&job.done), ==, 0); /* waiting */
  be->fill (a, 3.0f, n);                                 /* recorded */
  BpCudaGraph *g = bp_cuda_capture_end ();
  g_assert_nonnull (g);
  g_thread_join (thread);
  g_assert_cmpint (g_atomic_int_get (&job.done), ==, 1);
  assert_all (b, n, 7.0f); /* the other thread's fill ran */
  assert_all (a, n, 0.0f); /* the captured one did not */
  be->fill (b, 0.0f, n);
  g_assert_cmpint (bp_cuda_graph_launch (g), ==, BP_OK);
  assert_all (a, n, 3.0f);
  assert_all (b, n, 0.0f); /* not in the graph */
  bp_cuda_graph_free (g);
  be->free (a, sizeof (float) * (size_t) n);
  be->free (b, sizeof (float) * (size_t) n);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  bp_set_num_threads (1);
  cuda_status = bp_cuda_init (cuda_why, sizeof cuda_why);
  g_test_add_func ("/cuda/init", test_init);
  g_test_add_func ("/cuda/query", test_query);
  g_test_add_func ("/cuda/check-macros", test_check_macros);
  g_test_add_func ("/cuda/tf32-switch", test_tf32_switch);
  g_test_add_func ("/cuda/fill-copy-axpy", test_fill_copy_axpy);
  g_test_add_func ("/cuda/gemm-tf32", test_gemm_tf32);
  g_test_add_func ("/cuda/gemm-fp32", test_gemm_fp32);
  g_test_add_func ("/cuda/alloc-reuse", test_alloc_reuse);
  g_test_add_func ("/cuda/out-of-memory", test_out_of_memory);
  g_test_add_func ("/cuda/graph-replay", test_graph_replay);
  g_test_add_func ("/cuda/graph-refused", test_graph_refused);
  g_test_add_func ("/cuda/graph-gate", test_graph_gate);
  int rc = g_test_run ();
  bp_cuda_shutdown ();
  return rc;
}
