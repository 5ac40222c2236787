/* test-cuda-ops.c: every kernel of the CUDA backend's family tables (eltwise, conv, norm, loss,
 * optim, rnn, attn) against the CPU backend, through the public op front-ends: the same random
 * inputs run on both devices, forward and backward with the same output gradient, and the
 * outputs, input gradients and inputs changed in place (running statistics) are compared.
 * Bounds: float32 kernels 1e-5 relative (max (1, |cpu|) as the scale); recurrent layers and
 * attention, chains of float32 GEMMs summed in another order, 1e-4; TF32 and bf16 matrix work
 * against the size of the summed terms (the op run on |inputs| with |gradient|): TF32 2e-3,
 * bf16 1e-2, cuDNN without TF32 1e-4 (its FFT and Winograd algorithms round differently);
 * BP_PRECISION_BF16 against the CPU's emulation: GEMM 1e-3 of the summed terms, convolution
 * 1e-2, RNN and attention 1e-2, each also visibly different from float32.
 * Without a usable GPU every test skips with bp_cuda_init's reason, except the check of the
 * GPU's dropout hash, which runs on the host, and the harness, which runs every test with the
 * CPU in the GPU's place. */
#include "bp-test.h"

#include <math.h>
#include <string.h>

#include "bp-backend.h"
#include "bp-ops-attn.h"
#include "bp-ops-conv.h"
#include "bp-ops-eltwise.h"
#include "bp-ops-linear.h"
#include "bp-ops-loss.h"
#include "bp-ops-norm.h"
#include "bp-ops-rnn.h"
#include "bp-optim.h"
#include "bp-rng.h"
#include "config.h"
#include "cuda/bp-cuda.h"
#if BP_HAVE_CUDA
#include "cuda/cuda-internal.h"
#endif

/* inputs per op at most: a 3-layer bidirectional RNN with biases has 27 */
#define MAX_IN 32

static BpStatus cuda_status;
static char cuda_why[512];

/* The device compared with the CPU: CUDA, or the CPU itself while /cuda-ops/harness runs the
 * tests' own machinery without a GPU. */
static BpDevice dev = BP_DEVICE_CUDA;

static gboolean
need_cuda (void)
{
  if (cuda_status == BP_OK || dev == BP_DEVICE_CPU)
    return TRUE;
  g_test_skip (cuda_why);
  return FALSE;
}

/* ---- running an op on both devices ---- */

typedef BpTensor *(*OpFn) (BpTensor **in, void *user);

/* What one run leaves: the output, and per input its gradient (NULL when it has none) and its
 * data after the op. Host memory. */
typedef struct {
  int64_t n_out;
  float *out;
  float *grad[MAX_IN];
  float *after[MAX_IN];
} Run;

static float *
to_host (BpDevice on, const float *p, int64_t n)
{
  float *h = g_new0 (float, n > 0 ? n : 1);
  if (n > 0)
    g_assert_cmpint (bp_backend (on)->download (h, p, (size_t) n * sizeof (float)), ==, BP_OK);
  return h;
}

static void
run_free (Run *r)
{
  g_free (r->out);
  for (int k = 0; k < MAX_IN; k++) {
    g_free (r->grad[k]);
    g_free (r->after[k]);
  }
  memset (r, 0, sizeof *r);
}

/* A copy of t on dev with the same requires_grad (or NULL for NULL). */
static BpTensor *
copy_to (const BpTensor *t, BpDevice to)
{
  if (!t)
    return NULL;
  BpTensor *c = bp_tensor_to (t, to);
  g_assert_nonnull (c);
  c->requires_grad = t->requires_grad;
  return c;
}

/* Runs f on copies of the CPU inputs on dev; the RNG is re-seeded first (dropout draws the
 * same key on both devices); seed is the output gradient (NULL: no backward). */
static void
run_on (BpDevice on, OpFn f, void *user, int n_in, BpTensor **cpu_in, const float *seed,
        Run *r)
{
  BpTensor *in[MAX_IN] = { NULL };
  g_assert_cmpint (n_in, <=, MAX_IN);
  for (int k = 0; k < n_in; k++)
    in[k] = copy_to (cpu_in[k], on);
  bp_rng_seed (4242);
  BpTensor *out = f (in, user);
  if (!out)
    g_error ("op failed on %s: %s", bp_device_name (on), bp_last_error ());
  if (seed)
    g_assert_cmpint (bp_backward_with (out, seed), ==, BP_OK);
  g_assert_cmpint (bp_backend (on)->synchronize (), ==, BP_OK);
  memset (r, 0, sizeof *r);
  r->n_out = out->numel;
  r->out = to_host (on, out->data, out->numel);
  for (int k = 0; k < n_in; k++) {
    if (!in[k])
      continue;
    if (in[k]->grad)
      r->grad[k] = to_host (on, in[k]->grad, in[k]->numel);
    r->after[k] = to_host (on, in[k]->data, in[k]->numel);
  }
  bp_tape_clear ();
  bp_tensor_unref (out);
  for (int k = 0; k < n_in; k++)
    bp_tensor_unref (in[k]);
  g_assert_cmpint (bp_backend (on)->synchronize (), ==, BP_OK);
}

/* got within tol of want, on the scale max (1, |want|), or, with bound, within
 * tol * bound + 1e-6 (bound: the same value computed from absolute values). NaN matches NaN,
 * an infinity the same infinity. */
static void
assert_near (const char *what, const char *part, int k, const float *got, const float *want,
             const float *bound, int64_t n, double tol)
{
  for (int64_t i = 0; i < n; i++) {
    if (got[i] == want[i] || (isnan (got[i]) && isnan (want[i])))
      continue;
    double d = fabs ((double) got[i] - (double) want[i]);
    double lim = bound ? tol * fabs ((double) bound[i]) + 1e-6
                       : tol * fmax (1.0, fabs ((double) want[i]));
    if (!(d <= lim))
      g_error ("%s: %s %d element %" G_GINT64_FORMAT ": cuda %.8g, cpu %.8g (difference %.3g, "
               "allowed %.3g)", what, part, k, i, got[i], want[i], d, lim);
  }
}

typedef enum {
  PLAIN,  /* relative to max (1, |cpu|) */
  SCALED, /* relative to the summed term sizes */
} TolKind;

/* Runs f on the CPU and on the GPU from the same inputs and compares everything. With SCALED
 * the bound comes from a CPU run on |inputs| with |gradient| (for multilinear ops: conv,
 * GEMM). backward: whether to run the backward pass (when an input wants a gradient). */
static void
compare_op (const char *what, OpFn f, void *user, int n_in, BpTensor **cpu_in, bool backward,
            double tol, TolKind kind)
{
  /* the output gradient: the output's size is known after a first CPU forward */
  BpTensor *probe_in[MAX_IN] = { NULL };
  for (int k = 0; k < n_in; k++)
    probe_in[k] = copy_to (cpu_in[k], BP_DEVICE_CPU);
  bool was = bp_set_grad_enabled (false);
  bp_rng_seed (4242);
  BpTensor *probe = f (probe_in, user);
  bp_set_grad_enabled (was);
  g_assert_nonnull (probe);
  int64_t n_out = probe->numel;
  bp_tensor_unref (probe);
  for (int k = 0; k < n_in; k++)
    bp_tensor_unref (probe_in[k]);

  float *seed = NULL;
  if (backward) {
    seed = g_new (float, n_out);
    for (int64_t i = 0; i < n_out; i++)
      seed[i] = bp_rng_uniform () * 2.0f - 1.0f;
  }
  Run cpu, gpu, bound = { 0 };
  run_on (BP_DEVICE_CPU, f, user, n_in, cpu_in, seed, &cpu);
  run_on (dev, f, user, n_in, cpu_in, seed, &gpu);
  if (kind == SCALED) {
    BpTensor *abs_in[MAX_IN] = { NULL };
    for (int k = 0; k < n_in; k++) {
      abs_in[k] = copy_to (cpu_in[k], BP_DEVICE_CPU);
      for (int64_t i = 0; abs_in[k] && i < abs_in[k]->numel; i++)
        abs_in[k]->data[i] = fabsf (abs_in[k]->data[i]);
    }
    float *abs_seed = NULL;
    if (seed) {
      abs_seed = g_new (float, n_out);
      for (int64_t i = 0; i < n_out; i++)
        abs_seed[i] = fabsf (seed[i]);
    }
    run_on (BP_DEVICE_CPU, f, user, n_in, abs_in, abs_seed, &bound);
    for (int k = 0; k < n_in; k++)
      bp_tensor_unref (abs_in[k]);
    g_free (abs_seed);
  }

  g_assert_cmpint (gpu.n_out, ==, cpu.n_out);
  assert_near (what, "output", 0, gpu.out, cpu.out, bound.out, cpu.n_out, tol);
  for (int k = 0; k < n_in; k++) {
    if (!cpu_in[k])
      continue;
    int64_t n = cpu_in[k]->numel;
    g_assert_true (!cpu.grad[k] == !gpu.grad[k]);
    if (cpu.grad[k])
      assert_near (what, "gradient of input", k, gpu.grad[k], cpu.grad[k], bound.grad[k], n,
                   tol);
    /* inputs are not changed, except running statistics (float32 work) */
    assert_near (what, "input after the op", k, gpu.after[k], cpu.after[k], NULL, n,
                 kind == SCALED ? 1e-6 : tol);
  }
  run_free (&cpu);
  run_free (&gpu);
  run_free (&bound);
  g_free (seed);
}

static void
unref_all (int n, BpTensor **t)
{
  for (int k = 0; k < n; k++)
    bp_tensor_unref (t[k]);
}

#define F32 1e-5

/* ---- eltwise ---- */

static BpTensor *
op_add (BpTensor **x, void *user)
{
  return bp_add (x[0], x[1]);
}

static BpTensor *
op_sub (BpTensor **x, void *user)
{
  return bp_sub (x[0], x[1]);
}

static BpTensor *
op_mul (BpTensor **x, void *user)
{
  return bp_mul (x[0], x[1]);
}

static BpTensor *
op_square (BpTensor **x, void *user)
{
  /* the same tensor twice: both gradients must add up */
  return bp_mul (x[0], x[0]);
}

static BpTensor *
op_scale (BpTensor **x, void *user)
{
  return bp_scale (x[0], -2.5f);
}

static void
test_arith (void)
{
  if (!need_cuda ())
    return;
  bp_rng_seed (1);
  int64_t shape[] = { 37, 1031 }; /* more elements than one grid-stride pass on small GPUs */
  BpTensor *in[] = { bp_test_rand (2, shape, -2, 2, true), bp_test_rand (2, shape, -2, 2, true) };
  compare_op ("add", op_add, NULL, 2, in, true, F32, PLAIN);
  compare_op ("sub", op_sub, NULL, 2, in, true, F32, PLAIN);
  compare_op ("mul", op_mul, NULL, 2, in, true, F32, PLAIN);
  compare_op ("mul (x, x)", op_square, NULL, 1, in, true, F32, PLAIN);
  compare_op ("scale", op_scale, NULL, 1, in, true, F32, PLAIN);
  in[1]->requires_grad = false;
  compare_op ("mul, one gradient", op_mul, NULL, 2, in, true, F32, PLAIN);
  unref_all (2, in);
}

static BpTensor *
op_act (BpTensor **x, void *user)
{
  switch (*(int *) user) {
  case BP_ACT_RELU: return bp_relu (x[0]);
  case BP_ACT_LEAKY_RELU: return bp_leaky_relu (x[0], 0.07f);
  case BP_ACT_GELU: return bp_gelu (x[0]);
  case BP_ACT_TANH: return bp_tanh (x[0]);
  default: return bp_sigmoid (x[0]);
  }
}

static void
test_activations (void)
{
  if (!need_cuda ())
    return;
  bp_rng_seed (2);
  BpTensor *in[] = { bp_test_rand (2, (int64_t[]){ 64, 300 }, -8, 8, true) };
  in[0]->data[0] = 0.0f; /* the kinks */
  in[0]->data[1] = -0.0f;
  static const char *const names[] = { "relu", "leaky_relu", "gelu", "tanh", "sigmoid" };
  for (int act = BP_ACT_RELU; act <= BP_ACT_SIGMOID; act++)
    compare_op (names[act], op_act, &act, 1, in, true, F32, PLAIN);
  unref_all (1, in);
}

static BpTensor *
op_dropout (BpTensor **x, void *user)
{
  return bp_dropout (x[0], *(float *) user, true);
}

/* The GPU's dropout draw is the CPU's, bit for bit (runs on the host: no GPU needed). */
static void
test_dropout_hash (void)
{
#if BP_HAVE_CUDA
  for (uint64_t key = 0; key < 40; key++) {
    uint64_t kk = key * 0x9e3779b97f4a7c15ULL ^ (key << 61);
    for (uint64_t k = 0; k < 5000; k += 7)
      g_assert_cmpfloat (bp_cuda_hash_uniform_host (kk, k), ==, bp_rng_hash_uniform (kk, k));
  }
  g_assert_cmpfloat (bp_cuda_hash_uniform_host (UINT64_MAX, UINT64_MAX), ==,
                     bp_rng_hash_uniform (UINT64_MAX, UINT64_MAX));
#else
  g_test_skip ("built without CUDA");
#endif
}

static void
test_dropout (void)
{
  if (!need_cuda ())
    return;
  bp_rng_seed (3);
  BpTensor *in[] = { bp_test_rand (3, (int64_t[]){ 16, 33, 65 }, -1, 1, true) };
  /* the same mask: zeros at the same places, the same kept values (tolerance 0) */
  float ps[] = { 0.1f, 0.5f, 0.9f };
  for (int i = 0; i < 3; i++)
    compare_op ("dropout", op_dropout, &ps[i], 1, in, true, 0.0, PLAIN);
  unref_all (1, in);
}

static BpTensor *
op_concat (BpTensor **x, void *user)
{
  return bp_concat (3, x, *(int *) user);
}

static BpTensor *
op_flatten (BpTensor **x, void *user)
{
  BpTensor *f = bp_flatten (x[0], 1);
  BpTensor *y = bp_scale (f, 3.0f); /* a gradient that is not all ones */
  bp_tensor_unref (f);
  return y;
}

static void
test_concat_reshape (void)
{
  if (!need_cuda ())
    return;
  bp_rng_seed (4);
  BpTensor *in[] = { bp_test_rand (3, (int64_t[]){ 5, 2, 7 }, -1, 1, true),
                     bp_test_rand (3, (int64_t[]){ 5, 3, 7 }, -1, 1, true),
                     bp_test_rand (3, (int64_t[]){ 5, 1, 7 }, -1, 1, false) };
  int dim = 1;
  compare_op ("concat dim 1", op_concat, &dim, 3, in, true, F32, PLAIN);
  BpTensor *in0[] = { bp_test_rand (2, (int64_t[]){ 4, 3 }, -1, 1, true),
                      bp_test_rand (2, (int64_t[]){ 2, 3 }, -1, 1, true),
                      bp_test_rand (2, (int64_t[]){ 1, 3 }, -1, 1, true) };
  dim = 0;
  compare_op ("concat dim 0", op_concat, &dim, 3, in0, true, F32, PLAIN);
  compare_op ("flatten", op_flatten, NULL, 1, in, true, F32, PLAIN);
  unref_all (3, in);
  unref_all (3, in0);
}

static BpTensor *
op_embedding (BpTensor **x, void *user)
{
  return bp_embedding (x[0], x[1]);
}

static void
test_embedding (void)
{
  if (!need_cuda ())
    return;
  bp_rng_seed (5);
  int64_t v = 50, d = 300, n = 400;
  BpTensor *in[] = { bp_test_rand (2, (int64_t[]){ v, d }, -1, 1, true),
                     bp_tensor_new_2d (20, 20) };
  /* many repeats of a few rows, so the gradient adds up many times per row */
  for (int64_t i = 0; i < n; i++)
    in[1]->data[i] = (float) ((i * 7) % (i < 200 ? 5 : v));
  compare_op ("embedding", op_embedding, NULL, 2, in, true, F32, PLAIN);

  /* a bad index: NULL with its position and value */
  in[1]->data[3] = 2.5f;
  in[1]->data[9] = -1.0f;
  BpTensor *w = bp_tensor_to (in[0], dev), *idx = bp_tensor_to (in[1], dev);
  g_assert_null (bp_embedding (w, idx));
  g_assert_cmpint (bp_last_status (), ==, BP_ERR_INVALID);
  g_assert_nonnull (strstr (bp_last_error (), "index 2.5 at position 3"));
  g_assert_cmpint (bp_backend (dev)->synchronize (), ==, BP_OK);
  bp_tensor_unref (w);
  bp_tensor_unref (idx);
  unref_all (2, in);
}

static BpTensor *
op_sum (BpTensor **x, void *user)
{
  return bp_sum (x[0]);
}

static BpTensor *
op_mean (BpTensor **x, void *user)
{
  return bp_mean (x[0]);
}

static void
test_sum (void)
{
  if (!need_cuda ())
    return;
  bp_rng_seed (6);
  /* one partial block, and many */
  int64_t sizes[] = { 1, 1000, 3 * 1000 * 1000 + 17 };
  for (int i = 0; i < 3; i++) {
    BpTensor *in[] = { bp_test_rand (1, &sizes[i], -1, 2, true) };
    compare_op ("sum", op_sum, NULL, 1, in, true, F32, PLAIN);
    compare_op ("mean", op_mean, NULL, 1, in, true, F32, PLAIN);
    unref_all (1, in);
  }
}

/* ---- conv ---- */

typedef struct {
  int64_t n, cin, h, w, cout;
  int kh, kw;
  BpConv2dParams p;
  bool bias;
} ConvCase;

static BpTensor *
op_conv (BpTensor **x, void *user)
{
  ConvCase *c = user;
  return bp_conv2d (x[0], x[1], c->bias ? x[2] : NULL, &c->p);
}

static void
check_conv (ConvCase *c, bool x_grad, bool w_grad)
{
  BpTensor *in[] = {
    bp_test_rand (4, (int64_t[]){ c->n, c->cin, c->h, c->w }, -1, 1, x_grad),
    bp_test_rand (4, (int64_t[]){ c->cout, c->cin / c->p.groups, c->kh, c->kw }, -1, 1, w_grad),
    c->bias ? bp_test_rand (1, (int64_t[]){ c->cout }, -1, 1, true) : NULL,
  };
  char what[96];
  for (int tf32 = 1; tf32 >= 0; tf32--) {
    bp_cuda_set_tf32 (tf32);
    g_snprintf (what, sizeof what, "conv2d %lldx%lld k%dx%d groups %d%s",
                (long long) c->cin, (long long) c->cout, c->kh, c->kw, c->p.groups,
                tf32 ? " TF32" : "");
    /* twice: the second run takes the algorithms from the cache */
    for (int again = 0; again < 2; again++)
      compare_op (what, op_conv, c, 3, in, true, tf32 ? 2e-3 : 1e-4, SCALED);
  }
  bp_cuda_set_tf32 (true);
  unref_all (3, in);
}

static void
test_conv2d (void)
{
  if (!need_cuda ())
    return;
  bp_rng_seed (7);
  BpConv2dParams def = bp_conv2d_params_default ();
  ConvCase basic = { 4, 3, 13, 11, 8, 3, 3, def, true };
  basic.p.padding[0] = basic.p.padding[1] = 1;
  check_conv (&basic, true, true);
  ConvCase strided = { 3, 4, 15, 16, 6, 3, 2, def, false };
  strided.p.stride[0] = 2;
  strided.p.stride[1] = 3;
  strided.p.dilation[0] = 2;
  strided.p.padding[1] = 1;
  strided.p.groups = 2;
  check_conv (&strided, true, true);
  ConvCase pointwise = { 2, 16, 7, 7, 24, 1, 1, def, true };
  check_conv (&pointwise, true, true);
  ConvCase depthwise = { 2, 8, 9, 9, 8, 3, 3, def, true };
  depthwise.p.groups = 8;
  depthwise.p.padding[0] = depthwise.p.padding[1] = 1;
  check_conv (&depthwise, true, true);
  /* only one of the two gradients (the other pointer is NULL) */
  check_conv (&basic, false, true);
  check_conv (&basic, true, false);
}

typedef struct {
  int kind; /* 0 max, 1 avg, 2 adaptive */
  int kernel[2], stride[2], padding[2];
  bool count_include_pad;
  int out[2];
} PoolCase;

static BpTensor *
op_pool (BpTensor **x, void *user)
{
  PoolCase *p = user;
  if (p->kind == 0)
    return bp_max_pool2d (x[0], p->kernel, p->stride, p->padding);
  if (p->kind == 1)
    return bp_avg_pool2d (x[0], p->kernel, p->stride, p->padding, p->count_include_pad);
  return bp_adaptive_avg_pool2d (x[0], p->out[0], p->out[1]);
}

static void
test_pool (void)
{
  if (!need_cuda ())
    return;
  bp_rng_seed (8);
  BpTensor *in[] = { bp_test_rand (4, (int64_t[]){ 3, 5, 13, 10 }, -1, 1, true) };
  /* coarse values: ties in the windows (the first maximum wins) */
  for (int64_t i = 0; i < in[0]->numel; i++)
    in[0]->data[i] = roundf (in[0]->data[i] * 4.0f) / 4.0f;
  PoolCase cases[] = {
    { 0, { 2, 2 }, { 2, 2 }, { 0, 0 }, false, { 0, 0 } },
    { 0, { 3, 3 }, { 2, 1 }, { 1, 1 }, false, { 0, 0 } }, /* overlapping windows */
    { 0, { 3, 2 }, { 1, 2 }, { 1, 0 }, false, { 0, 0 } },
    { 1, { 2, 2 }, { 2, 2 }, { 0, 0 }, true, { 0, 0 } },
    { 1, { 3, 3 }, { 2, 2 }, { 1, 1 }, true, { 0, 0 } },
    { 1, { 3, 3 }, { 1, 2 }, { 1, 1 }, false, { 0, 0 } },
    { 2, { 0, 0 }, { 0, 0 }, { 0, 0 }, false, { 3, 3 } },
    { 2, { 0, 0 }, { 0, 0 }, { 0, 0 }, false, { 5, 4 } }, /* overlapping adaptive windows */
    { 2, { 0, 0 }, { 0, 0 }, { 0, 0 }, false, { 1, 1 } },
    { 2, { 0, 0 }, { 0, 0 }, { 0, 0 }, false, { 13, 10 } },
  };
  static const char *const names[] = { "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d" };
  for (size_t i = 0; i < G_N_ELEMENTS (cases); i++) {
    compare_op (names[cases[i].kind], op_pool, &cases[i], 1, in, true, F32, PLAIN);
    if (cases[i].kind == 0) {
      /* without a gradient no arg-max is kept (argmax NULL) */
      in[0]->requires_grad = false;
      compare_op ("max_pool2d without gradient", op_pool, &cases[i], 1, in, false, 0.0, PLAIN);
      in[0]->requires_grad = true;
    }
  }
  /* NaN in a window: the CPU's rule (the NaN wins) */
  in[0]->data[5] = NAN;
  in[0]->requires_grad = false;
  BpTensor *g = bp_tensor_to (in[0], dev);
  BpTensor *a = bp_max_pool2d (in[0], cases[0].kernel, NULL, NULL);
  BpTensor *b = bp_max_pool2d (g, cases[0].kernel, NULL, NULL);
  BpTensor *bh = bp_tensor_to (b, BP_DEVICE_CPU);
  for (int64_t i = 0; i < a->numel; i++)
    g_assert_true (a->data[i] == bh->data[i] || (isnan (a->data[i]) && isnan (bh->data[i])));
  bp_tensor_unref (a);
  bp_tensor_unref (b);
  bp_tensor_unref (bh);
  bp_tensor_unref (g);
  unref_all (1, in);
}

/* ---- norm ---- */

typedef struct {
  bool training, affine, running;
} BnCase;

static BpTensor *
op_batch_norm (BpTensor **x, void *user)
{
  BnCase *c = user;
  return bp_batch_norm (x[0], c->affine ? x[1] : NULL, c->affine ? x[2] : NULL,
                        c->running ? x[3] : NULL, c->running ? x[4] : NULL, c->training, 0.1f,
                        1e-5f);
}

static void
check_batch_norm (int ndim, const int64_t *shape, BnCase *c, bool x_grad)
{
  int64_t ch = shape[1];
  BpTensor *in[] = {
    bp_test_rand (ndim, shape, -2, 3, x_grad),
    bp_test_rand (1, &ch, 0.5f, 1.5f, true),
    bp_test_rand (1, &ch, -0.5f, 0.5f, true),
    bp_test_rand (1, &ch, -0.3f, 0.3f, false),
    bp_test_rand (1, &ch, 0.5f, 1.5f, false),
  };
  for (int cudnn = 1; cudnn >= 0; cudnn--) {
    bp_cuda_set_cudnn_batch_norm (cudnn);
    char what[96];
    g_snprintf (what, sizeof what, "batch_norm %dd %s%s%s%s", ndim, c->training ? "training" : "eval",
                c->affine ? "" : " no affine", c->running ? "" : " no running statistics",
                cudnn ? " (cuDNN)" : " (own kernels)");
    compare_op (what, op_batch_norm, c, 5, in, true, cudnn ? 5e-5 : 2e-5, PLAIN);
  }
  bp_cuda_set_cudnn_batch_norm (true);
  unref_all (5, in);
}

static void
test_batch_norm (void)
{
  if (!need_cuda ())
    return;
  bp_rng_seed (9);
  BnCase train = { true, true, true }, eval = { false, true, true };
  BnCase bare = { true, false, false }, no_affine = { true, false, true };
  int64_t s4[] = { 8, 6, 9, 11 }, s2[] = { 33, 7 }, s3[] = { 5, 4, 19 };
  int64_t big[] = { 64, 3, 40, 40 }; /* more than one partial block per channel */
  check_batch_norm (4, s4, &train, true);
  check_batch_norm (4, big, &train, true);
  check_batch_norm (2, s2, &train, true);
  check_batch_norm (3, s3, &train, true);
  check_batch_norm (4, s4, &eval, true);
  check_batch_norm (2, s2, &eval, true);
  check_batch_norm (4, s4, &bare, true);
  check_batch_norm (4, s4, &no_affine, true);
  /* no input gradient: only the parameter gradients (own kernels even with cuDNN on) */
  check_batch_norm (4, s4, &train, false);
}

typedef struct {
  int dims;
  bool weight, bias;
} LnCase;

static BpTensor *
op_layer_norm (BpTensor **x, void *user)
{
  LnCase *c = user;
  return bp_layer_norm (x[0], c->dims, c->weight ? x[1] : NULL, c->bias ? x[2] : NULL, 1e-5f);
}

static void
check_layer_norm (int ndim, const int64_t *shape, LnCase *c)
{
  BpTensor *in[] = {
    bp_test_rand (ndim, shape, -2, 3, true),
    bp_test_rand (c->dims, shape + ndim - c->dims, 0.5f, 1.5f, true),
    bp_test_rand (c->dims, shape + ndim - c->dims, -0.5f, 0.5f, true),
  };
  compare_op ("layer_norm", op_layer_norm, c, 3, in, true, 2e-5, PLAIN);
  unref_all (3, in);
}

static void
test_layer_norm (void)
{
  if (!need_cuda ())
    return;
  bp_rng_seed (10);
  LnCase full = { 1, true, true }, two = { 2, true, false }, none = { 1, false, false };
  check_layer_norm (2, (int64_t[]){ 37, 10 }, &full);
  check_layer_norm (2, (int64_t[]){ 300, 1000 }, &full); /* several row blocks per column */
  check_layer_norm (3, (int64_t[]){ 4, 6, 5 }, &two);
  check_layer_norm (3, (int64_t[]){ 4, 6, 5 }, &none);
}

/* ---- loss ---- */

static BpTensor *
op_softmax (BpTensor **x, void *user)
{
  return *(bool *) user ? bp_log_softmax (x[0]) : bp_softmax (x[0]);
}

static void
test_softmax (void)
{
  if (!need_cuda ())
    return;
  bp_rng_seed (11);
  /* (rows, cols): short rows, long rows (more columns than a warp), and a 3-d input */
  struct {
    int ndim;
    int64_t shape[3];
  } cases[] = { { 2, { 64, 10 } }, { 2, { 7, 1000 } }, { 3, { 3, 5, 4 } } };
  for (int i = 0; i < 3; i++) {
    BpTensor *in[] = { bp_test_rand (cases[i].ndim, cases[i].shape, -10, 10, true) };
    if (i == 0) {
      /* a masked logit (probability 0) and a NaN, which poisons its row only */
      in[0]->data[3] = -INFINITY;
      in[0]->data[10 * 5 + 2] = NAN;
      in[0]->data[10 * 6 + 0] = 80.0f; /* far from the others: exp's range */
      in[0]->data[10 * 6 + 1] = -80.0f;
    }
    for (int log = 0; log < 2; log++) {
      bool lg = log;
      compare_op (lg ? "log_softmax" : "softmax", op_softmax, &lg, 1, in, true, F32, PLAIN);
    }
    unref_all (1, in);
  }
}

static BpTensor *
op_cross_entropy (BpTensor **x, void *user)
{
  return bp_cross_entropy (x[0], x[1], *(float *) user);
}

static BpTensor *
rand_targets (int64_t n, int64_t c)
{
  BpTensor *t = bp_tensor_new_1d (n);
  for (int64_t i = 0; i < n; i++)
    t->data[i] = (float) bp_rng_below ((uint64_t) c);
  return t;
}

static void
test_cross_entropy (void)
{
  if (!need_cuda ())
    return;
  bp_rng_seed (12);
  int64_t sizes[][2] = { { 64, 10 }, { 5, 1000 }, { 3000, 7 } };
  float smoothing[] = { 0.0f, 0.1f, 1.0f };
  for (int i = 0; i < 3; i++) {
    BpTensor *in[] = { bp_test_rand (2, sizes[i], -5, 5, true),
                       rand_targets (sizes[i][0], sizes[i][1]) };
    for (int k = 0; k < 3; k++)
      compare_op ("cross_entropy", op_cross_entropy, &smoothing[k], 2, in, true, F32, PLAIN);
    unref_all (2, in);
  }

  /* a bad target on the GPU: its row and value */
  BpTensor *logits = bp_test_rand (2, (int64_t[]){ 8, 4 }, -1, 1, false);
  BpTensor *t = rand_targets (8, 4);
  t->data[5] = 4.0f;
  t->data[6] = NAN;
  BpTensor *gl = bp_tensor_to (logits, dev), *gt = bp_tensor_to (t, dev);
  g_assert_null (bp_cross_entropy (gl, gt, 0.0f));
  g_assert_cmpint (bp_last_status (), ==, BP_ERR_INVALID);
  g_assert_nonnull (strstr (bp_last_error (), "target 4 at row 5"));
  g_assert_cmpint (bp_backend (dev)->synchronize (), ==, BP_OK);
  bp_tensor_unref (gl);
  bp_tensor_unref (gt);
  bp_tensor_unref (logits);
  bp_tensor_unref (t);
}

static BpTensor *
op_mse (BpTensor **x, void *user)
{
  return bp_mse_loss (x[0], x[1]);
}

static BpTensor *
op_bce (BpTensor **x, void *user)
{
  return bp_bce_with_logits (x[0], x[1]);
}

static void
test_mse_bce (void)
{
  if (!need_cuda ())
    return;
  bp_rng_seed (13);
  int64_t sizes[][2] = { { 3, 5 }, { 700, 900 } };
  for (int i = 0; i < 2; i++) {
    BpTensor *in[] = { bp_test_rand (2, sizes[i], -20, 20, true),
                       bp_test_rand (2, sizes[i], 0, 1, true) };
    compare_op ("mse_loss", op_mse, NULL, 2, in, true, F32, PLAIN);
    compare_op ("bce_with_logits", op_bce, NULL, 2, in, true, F32, PLAIN);
    in[1]->requires_grad = false;
    compare_op ("mse_loss, prediction gradient only", op_mse, NULL, 2, in, true, F32, PLAIN);
    compare_op ("bce_with_logits, logits gradient only", op_bce, NULL, 2, in, true, F32, PLAIN);
    in[0]->requires_grad = false;
    in[1]->requires_grad = true;
    compare_op ("bce_with_logits, target gradient only", op_bce, NULL, 2, in, true, F32, PLAIN);
    unref_all (2, in);
  }
}

static void
test_count_correct (void)
{
  if (!need_cuda ())
    return;
  bp_rng_seed (14);
  int64_t n = 2000, c = 37;
  BpTensor *logits = bp_test_rand (2, (int64_t[]){ n, c }, -1, 1, false);
  /* coarse values (ties: the first maximum), NaN rows as the CPU treats them */
  for (int64_t i = 0; i < logits->numel; i++)
    logits->data[i] = roundf (logits->data[i] * 3.0f);
  logits->data[0 * c + 0] = NAN;
  logits->data[1 * c + 4] = NAN;
  logits->data[2 * c + 36] = NAN;
  BpTensor *t = rand_targets (n, c);
  /* targets equal to the CPU's arg-max on half the rows */
  for (int64_t r = 0; r < n; r += 2) {
    int64_t best = 0;
    for (int64_t j = 1; j < c; j++)
      if (logits->data[r * c + j] > logits->data[r * c + best])
        best = j;
    t->data[r] = (float) best;
  }
  BpTensor *gl = bp_tensor_to (logits, dev), *gt = bp_tensor_to (t, dev);
  int64_t want = bp_count_correct (logits, t), got = bp_count_correct (gl, gt);
  g_assert_cmpint (want, >=, n / 2);
  g_assert_cmpint (got, ==, want);
  bp_tensor_unref (gl);
  bp_tensor_unref (gt);
  bp_tensor_unref (logits);
  bp_tensor_unref (t);
}

/* ---- optim ---- */

/* Runs `steps` optimizer steps with the same gradients on CPU and GPU copies of params and
 * compares the parameters and every state tensor. */
static void
check_optimizer (const char *what, const BpOptimConfig *cfg, int steps)
{
  int64_t sizes[] = { 1, 1000, 70000 };
  BpTensor *cpu[3], *gpu[3];
  for (int k = 0; k < 3; k++) {
    cpu[k] = bp_test_rand (1, &sizes[k], -1, 1, true);
    cpu[k]->data[0] = 0.0f; /* sign (0) = 0 for the L1 term */
    gpu[k] = copy_to (cpu[k], dev);
  }
  BpOptimizer *oc = bp_optimizer_new (cfg, 3, cpu), *og = bp_optimizer_new (cfg, 3, gpu);
  g_assert_nonnull (oc);
  g_assert_nonnull (og);
  for (int s = 0; s < steps; s++) {
    for (int k = 0; k < 3; k++) {
      /* parameter 2 has no gradient in the first two steps: it is skipped, its step count
       * lags */
      if (k == 2 && s < 2)
        continue;
      BpTensor *g = bp_test_rand (1, &sizes[k], -1, 1, false);
      float *gc = bp_tensor_grad (cpu[k]), *gg = bp_tensor_grad (gpu[k]);
      memcpy (gc, g->data, (size_t) sizes[k] * sizeof (float));
      g_assert_cmpint (bp_backend (dev)->upload (gg, g->data,
                                                             (size_t) sizes[k] * sizeof (float)),
                       ==, BP_OK);
      bp_tensor_unref (g);
    }
    g_assert_cmpint (bp_optimizer_step (oc), ==, BP_OK);
    g_assert_cmpint (bp_optimizer_step (og), ==, BP_OK);
  }
  g_assert_cmpint (bp_backend (dev)->synchronize (), ==, BP_OK);
  for (int k = 0; k < 3; k++) {
    float *h = to_host (dev, gpu[k]->data, sizes[k]);
    assert_near (what, "parameter", k, h, cpu[k]->data, NULL, sizes[k], 1e-5);
    g_free (h);
  }
  g_assert_cmpint (bp_optimizer_n_state (og), ==, bp_optimizer_n_state (oc));
  for (int k = 0; k < bp_optimizer_n_state (oc); k++) {
    const char *name;
    BpTensor *sc = bp_optimizer_state (oc, k, &name), *sg = bp_optimizer_state (og, k, NULL);
    float *h = to_host (sg->device, sg->data, sg->numel);
    assert_near (what, name, k, h, sc->data, NULL, sc->numel, 1e-5);
    g_free (h);
  }
  bp_optimizer_free (oc);
  bp_optimizer_free (og);
  unref_all (3, cpu);
  unref_all (3, gpu);
}

static void
test_optimizers (void)
{
  if (!need_cuda ())
    return;
  bp_rng_seed (15);
  BpOptimConfig sgd = bp_optim_config_default (BP_OPTIM_SGD);
  sgd.lr = 0.1f;
  check_optimizer ("sgd", &sgd, 3);
  sgd.momentum = 0.9f;
  sgd.dampening = 0.1f;
  sgd.weight_decay = 0.01f;
  sgd.l1 = 0.001f;
  check_optimizer ("sgd momentum", &sgd, 4);
  sgd.dampening = 0.0f;
  sgd.nesterov = true;
  check_optimizer ("sgd nesterov", &sgd, 4);
  BpOptimConfig adam = bp_optim_config_default (BP_OPTIM_ADAM);
  adam.weight_decay = 0.01f;
  adam.l1 = 0.001f;
  check_optimizer ("adam", &adam, 4);
  BpOptimConfig adamw = bp_optim_config_default (BP_OPTIM_ADAMW);
  adamw.lr = 0.01f;
  check_optimizer ("adamw", &adamw, 4);
}

/* The multi-tensor path on dev (prepare, clip_launch, launch: multi_sumsq, multi_clip and
 * multi_step) against bp_clip_grad_norm and bp_optimizer_step on the CPU: the norm, the
 * clipped gradients and the parameters after an Adam step; with nan_grad one gradient element
 * is NaN (gradients left alone, norm NaN). Also the same norm twice on dev (repeatable). */
static void
check_clip_launch (float max_norm, bool nan_grad)
{
  int64_t sizes[] = { 7, 300000, 1, 4000 };
  BpTensor *cpu[4], *gpu[4];
  for (int k = 0; k < 4; k++) {
    cpu[k] = bp_test_rand (1, &sizes[k], -1, 1, true);
    gpu[k] = copy_to (cpu[k], dev);
    if (k == 2)
      continue; /* no gradient: skipped */
    BpTensor *g = bp_test_rand (1, &sizes[k], -1, 1, false);
    if (nan_grad && k == 1)
      g->data[77777] = NAN;
    memcpy (bp_tensor_grad (cpu[k]), g->data, (size_t) sizes[k] * sizeof (float));
    g_assert_cmpint (bp_backend (dev)->upload (bp_tensor_grad (gpu[k]), g->data,
                                               (size_t) sizes[k] * sizeof (float)),
                     ==, BP_OK);
    bp_tensor_unref (g);
  }
  BpOptimConfig cfg = bp_optim_config_default (BP_OPTIM_ADAM);
  cfg.lr = 0.01f;
  BpOptimizer *oc = bp_optimizer_new (&cfg, 4, cpu), *og = bp_optimizer_new (&cfg, 4, gpu);

  /* repeatable: the norm of the same gradients twice (no clipping), the step undone between */
  g_assert_cmpint (bp_optimizer_prepare (og), ==, BP_OK);
  g_assert_cmpint (bp_optimizer_clip_launch (og, INFINITY), ==, BP_OK);
  float first = bp_optimizer_clip_norm (og);
  bp_optimizer_unprepare (og);

  float nc = bp_clip_grad_norm (4, cpu, max_norm);
  g_assert_cmpint (bp_optimizer_step (oc), ==, BP_OK);
  g_assert_cmpint (bp_optimizer_prepare (og), ==, BP_OK);
  g_assert_cmpint (bp_optimizer_clip_launch (og, max_norm), ==, BP_OK);
  g_assert_cmpint (bp_optimizer_launch (og), ==, BP_OK);
  g_assert_cmpint (bp_backend (dev)->synchronize (), ==, BP_OK);
  float ng = bp_optimizer_clip_norm (og);
  if (nan_grad) {
    g_assert_true (isnan (nc) && isnan (ng) && isnan (first));
  } else {
    g_assert_cmpfloat (fabsf (nc - ng), <=, 1e-6f * nc);
    g_assert_cmpmem (&first, sizeof first, &ng, sizeof ng);
  }
  for (int k = 0; k < 4; k++) {
    if (k == 2) {
      g_assert_null (gpu[k]->grad);
      continue;
    }
    float *h = to_host (dev, gpu[k]->grad, sizes[k]);
    assert_near ("clip_launch", "gradient", k, h, cpu[k]->grad, NULL, sizes[k], 1e-6);
    g_free (h);
    h = to_host (dev, gpu[k]->data, sizes[k]);
    assert_near ("clip_launch", "parameter", k, h, cpu[k]->data, NULL, sizes[k], 1e-5);
    g_free (h);
  }
  bp_optimizer_free (oc);
  bp_optimizer_free (og);
  unref_all (4, cpu);
  unref_all (4, gpu);
}

static void
test_clip_grad_norm (void)
{
  if (!need_cuda ())
    return;
  bp_rng_seed (16);
  int64_t sizes[] = { 7, 300000, 1 };
  BpTensor *cpu[3], *gpu[3];
  for (int k = 0; k < 3; k++) {
    cpu[k] = bp_test_rand (1, &sizes[k], -1, 1, true);
    gpu[k] = copy_to (cpu[k], dev);
    if (k == 2)
      continue; /* no gradient: skipped */
    BpTensor *g = bp_test_rand (1, &sizes[k], -1, 1, false);
    memcpy (bp_tensor_grad (cpu[k]), g->data, (size_t) sizes[k] * sizeof (float));
    g_assert_cmpint (bp_backend (dev)->upload (bp_tensor_grad (gpu[k]), g->data,
                                                           (size_t) sizes[k] * sizeof (float)),
                     ==, BP_OK);
    bp_tensor_unref (g);
  }
  float max_norms[] = { 1e9f, 3.0f };
  for (int m = 0; m < 2; m++) {
    float nc = bp_clip_grad_norm (3, cpu, max_norms[m]);
    float ng = bp_clip_grad_norm (3, gpu, max_norms[m]);
    g_assert_cmpfloat (fabsf (nc - ng), <=, 1e-6f * nc);
    for (int k = 0; k < 2; k++) {
      float *h = to_host (dev, gpu[k]->grad, sizes[k]);
      assert_near ("clip_grad_norm", "gradient", k, h, cpu[k]->grad, NULL, sizes[k], 1e-6);
      g_free (h);
    }
  }
  g_assert_null (gpu[2]->grad);
  unref_all (3, cpu);
  unref_all (3, gpu);

  check_clip_launch (3.0f, false);
  check_clip_launch (1e9f, false);
  check_clip_launch (3.0f, true);
}

/* ---- GEMM through the ops: TF32 and the bf16 switch ---- */

static BpTensor *
op_linear (BpTensor **x, void *user)
{
  return bp_linear (x[0], x[1], x[2]);
}

static void
test_linear_precision (void)
{
  if (!need_cuda ())
    return;
  bp_rng_seed (17);
  BpTensor *in[] = { bp_test_rand (2, (int64_t[]){ 65, 130 }, -1, 1, true),
                     bp_test_rand (2, (int64_t[]){ 33, 130 }, -1, 1, true),
                     bp_test_rand (1, (int64_t[]){ 33 }, -1, 1, true) };
  compare_op ("linear TF32", op_linear, NULL, 3, in, true, 2e-3, SCALED);
  bp_cuda_set_tf32 (false);
  compare_op ("linear float32", op_linear, NULL, 3, in, true, F32, SCALED);
  bp_cuda_set_bf16_gemm (true);
  g_assert_true (bp_cuda_get_bf16_gemm ());
  compare_op ("linear bf16", op_linear, NULL, 3, in, true, 1e-2, SCALED);
  bp_cuda_set_bf16_gemm (false);
  bp_cuda_set_tf32 (true);
  unref_all (3, in);
}

/* compare_op at bf16, then a check that the precision was used (the bf16 section below) */
static void compare_bf16 (const char *what, OpFn f, void *user, int n_in, BpTensor **in,
                          double tol, TolKind kind, unsigned same_mask);

/* The Linear layer through the backend's GEMM with bias (cuBLASLt's bias epilogue, or the
 * broadcast and the GEMM where cuBLASLt is not used: one row, k = 1, one output) and column sum
 * (the bias gradient: one slice of rows and several), forward and backward, with and without
 * bias, at float32 with TF32 on and off, with the bf16 GEMM switch, and at BP_PRECISION_BF16;
 * and twice on the device, the same bits. */
typedef struct {
  int ndim;
  int64_t x_shape[3];
  int64_t out;
  bool bias, x_grad, w_grad;
} LinearCase;

static void
test_linear_bias_epilogue (void)
{
  if (!need_cuda ())
    return;
  const LinearCase cases[] = {
    { 2, { 65, 130 }, 33, true, true, true },    { 2, { 65, 130 }, 33, false, true, true },
    { 3, { 4, 7, 20 }, 70, true, true, true },   { 2, { 1, 16 }, 9, true, true, true },
    { 2, { 6, 1 }, 5, true, true, true },        { 2, { 5, 12 }, 1, true, true, true },
    { 2, { 1500, 24 }, 40, true, false, false }, { 2, { 2100, 8 }, 3, true, false, true },
  };
  bp_rng_seed (19);
  for (size_t c = 0; c < G_N_ELEMENTS (cases); c++) {
    const LinearCase *lc = &cases[c];
    int64_t in_features = lc->x_shape[lc->ndim - 1];
    BpTensor *in[] = {
      bp_test_rand (lc->ndim, lc->x_shape, -1, 1, lc->x_grad),
      bp_test_rand (2, (int64_t[]){ lc->out, in_features }, -1, 1, lc->w_grad),
      lc->bias ? bp_test_rand (1, (int64_t[]){ lc->out }, -1, 1, true) : NULL,
    };
    int64_t rows = in[0]->numel / in_features, n_out = rows * lc->out;
    char what[128];
    g_snprintf (what, sizeof what,
                "linear %" G_GINT64_FORMAT " rows, %" G_GINT64_FORMAT " -> %" G_GINT64_FORMAT "%s",
                rows, in_features, lc->out, lc->bias ? "" : ", no bias");
    compare_op (what, op_linear, NULL, 3, in, true, 2e-3, SCALED);
    bp_cuda_set_tf32 (false);
    compare_op (what, op_linear, NULL, 3, in, true, F32, SCALED);
    bp_cuda_set_bf16_gemm (true);
    compare_op (what, op_linear, NULL, 3, in, true, 1e-2, SCALED);
    bp_cuda_set_bf16_gemm (false);
    bp_cuda_set_tf32 (true);
    compare_bf16 (what, op_linear, NULL, 3, in, 1e-3, SCALED, lc->bias ? 1u << 2 : 0);

    /* repeatable: the same bits from two runs on the device */
    float *seed = g_new (float, n_out);
    for (int64_t i = 0; i < n_out; i++)
      seed[i] = bp_rng_uniform () * 2.0f - 1.0f;
    Run a, b;
    run_on (dev, op_linear, NULL, 3, in, seed, &a);
    run_on (dev, op_linear, NULL, 3, in, seed, &b);
    g_assert_cmpmem (a.out, (gsize) n_out * sizeof (float), b.out, (gsize) n_out * sizeof (float));
    for (int k = 0; k < 3; k++)
      if (in[k] && a.grad[k])
        g_assert_cmpmem (a.grad[k], (gsize) in[k]->numel * sizeof (float), b.grad[k],
                         (gsize) in[k]->numel * sizeof (float));
    run_free (&a);
    run_free (&b);
    g_free (seed);
    unref_all (3, in);
  }
}

/* ---- repeatability: the same inputs give the same bits ---- */

static BpTensor *
op_chain (BpTensor **x, void *user)
{
  /* sums, channel sums (batch norm, conv bias) and the embedding scatter */
  BpTensor *bn = bp_batch_norm (x[0], x[1], x[2], NULL, NULL, true, 0.1f, 1e-5f);
  BpConv2dParams p = bp_conv2d_params_default ();
  BpTensor *conv = bp_conv2d (bn, x[3], x[4], &p);
  BpTensor *s = bp_mean (conv);
  bp_tensor_unref (bn);
  bp_tensor_unref (conv);
  return s;
}

static void
test_repeatable (void)
{
  if (!need_cuda ())
    return;
  bp_rng_seed (18);
  BpTensor *in[] = { bp_test_rand (4, (int64_t[]){ 32, 4, 30, 30 }, -1, 1, true),
                     bp_test_rand (1, (int64_t[]){ 4 }, 0.5f, 1.5f, true),
                     bp_test_rand (1, (int64_t[]){ 4 }, -0.5f, 0.5f, true),
                     bp_test_rand (4, (int64_t[]){ 5, 4, 3, 3 }, -1, 1, true),
                     bp_test_rand (1, (int64_t[]){ 5 }, -1, 1, true) };
  float seed[1] = { 1.0f };
  for (int cudnn = 0; cudnn < 2; cudnn++) {
    bp_cuda_set_cudnn_batch_norm (cudnn);
    Run a, b;
    run_on (dev, op_chain, NULL, 5, in, seed, &a);
    run_on (dev, op_chain, NULL, 5, in, seed, &b);
    g_assert_cmpmem (a.out, sizeof (float), b.out, sizeof (float));
    for (int k = 0; k < 5; k++)
      g_assert_cmpmem (a.grad[k], (gsize) in[k]->numel * sizeof (float), b.grad[k],
                       (gsize) in[k]->numel * sizeof (float));
    run_free (&a);
    run_free (&b);
  }
  bp_cuda_set_cudnn_batch_norm (true);
  unref_all (5, in);
}

/* ---- rnn ---- */

typedef struct {
  OpFn f;
  void *user;
} Twice;

/* f twice on the same inputs, the two outputs side by side (1, 2N): every input gradient gets
 * two contributions, so a kernel that writes its gradient instead of adding to it fails */
static BpTensor *
op_twice (BpTensor **x, void *user)
{
  const Twice *t = user;
  BpTensor *a = t->f (x, t->user), *b = t->f (x, t->user);
  g_assert_nonnull (a);
  g_assert_nonnull (b);
  BpTensor *parts[] = { bp_reshape (a, 2, (int64_t[]){ 1, -1 }),
                        bp_reshape (b, 2, (int64_t[]){ 1, -1 }) };
  BpTensor *cat = bp_concat (2, parts, 1);
  unref_all (2, parts);
  bp_tensor_unref (a);
  bp_tensor_unref (b);
  return cat;
}

/* Recurrent layers and attention are chains of GEMMs (float32 here: TF32 off), which cuBLAS
 * sums in another order than OpenBLAS, and CUDA's expf / tanhf differ from glibc's by an ulp:
 * the differences add up along the time steps. */
#define SEQ_TOL 1e-4

typedef struct {
  BpRnnParams p;
  int64_t batch, seq;
  bool h0, c0;        /* initial states given */
  bool states;        /* the op's output holds h_n (and c_n) too: their gradients are used */
  bool training;
  bool lengths;
  bool twice;         /* run twice on the same inputs (op_twice): the gradients add up */
  int64_t len[8];
} RnnCase;

/* out, and with states h_n and c_n, flattened into one (1, N) tensor: one comparison covers
 * all, and the one output gradient reaches dh_n and dc_n */
static BpTensor *
op_rnn (BpTensor **x, void *user);

static BpTensor *
op_rnn_once (BpTensor **x, void *user)
{
  const RnnCase *c = user;
  BpTensor *hn = NULL, *cn = NULL;
  bool lstm = c->p.mode == BP_RNN_LSTM;
  BpTensor *out = bp_rnn (&c->p, x[0], x + 3, x[1], x[2], c->lengths ? c->len : NULL,
                          c->training, c->states ? &hn : NULL,
                          c->states && lstm ? &cn : NULL);
  if (!out || !c->states)
    return out;
  BpTensor *all[] = { out, hn, cn }, *parts[3];
  int n = 0;
  for (int k = 0; k < 3; k++)
    if (all[k])
      parts[n++] = bp_reshape (all[k], 2, (int64_t[]){ 1, -1 });
  BpTensor *cat = bp_concat (n, parts, 1);
  for (int k = 0; k < n; k++)
    bp_tensor_unref (parts[k]);
  for (int k = 0; k < 3; k++)
    bp_tensor_unref (all[k]);
  return cat;
}

static BpTensor *
op_rnn (BpTensor **x, void *user)
{
  const RnnCase *c = user;
  Twice t = { op_rnn_once, user };
  return c->twice ? op_twice (x, &t) : op_rnn_once (x, user);
}

/* The inputs of a case: x, h0, c0 (NULL where the case has none), the weights; returns their
 * number. */
static int
rnn_inputs (const RnnCase *c, bool x_grad, bool w_grad, BpTensor **in)
{
  const BpRnnParams *p = &c->p;
  int n_w = bp_rnn_n_weights (p), dirs = p->bidirectional ? 2 : 1;
  g_assert_cmpint (3 + n_w, <=, MAX_IN);
  int64_t xs[3] = { p->batch_first ? c->batch : c->seq, p->batch_first ? c->seq : c->batch,
                    p->input_size };
  int64_t ss[3] = { (int64_t) p->num_layers * dirs, c->batch, p->hidden_size };
  in[0] = bp_test_rand (3, xs, -1, 1, x_grad);
  in[1] = c->h0 ? bp_test_rand (3, ss, -0.5f, 0.5f, x_grad) : NULL;
  in[2] = c->c0 ? bp_test_rand (3, ss, -0.5f, 0.5f, x_grad) : NULL;
  float bound = 1.0f / sqrtf ((float) p->hidden_size);
  for (int k = 0; k < n_w; k++) {
    char name[48];
    int64_t shape[2];
    int ndim;
    bp_rnn_weight_info (p, k, name, sizeof name, shape, &ndim);
    in[3 + k] = bp_test_rand (ndim, shape, -bound, bound, w_grad);
  }
  return 3 + n_w;
}

static void
check_rnn (const char *what, const RnnCase *c, bool x_grad, bool w_grad)
{
  static const char *const modes[] = { "rnn_tanh", "rnn_relu", "lstm", "gru" };
  BpTensor *in[MAX_IN] = { NULL };
  int n = rnn_inputs (c, x_grad, w_grad, in);
  char name[160];
  g_snprintf (name, sizeof name, "%s %s: %d layer(s)%s%s%s%s%s%s%s", modes[c->p.mode], what,
              c->p.num_layers, c->p.bidirectional ? ", bidirectional" : "",
              c->p.batch_first ? ", batch_first" : "", c->p.bias ? "" : ", no bias",
              c->h0 ? ", h0" : "", c->lengths ? ", lengths" : "",
              c->training && c->p.dropout > 0.0f ? ", dropout" : "",
              c->twice ? ", twice" : "");
  bp_cuda_set_tf32 (false);
  compare_op (name, op_rnn, (void *) c, n, in, x_grad || w_grad, SEQ_TOL, PLAIN);
  bp_cuda_set_tf32 (true);
  unref_all (n, in);
}

static RnnCase
rnn_case (BpRnnMode mode, int layers, bool bidir, bool batch_first)
{
  RnnCase c = {
    .p = { mode, 6, 8, layers, true, batch_first, bidir, 0.0f },
    .batch = 5,
    .seq = 7,
    .states = true,
    .len = { 3, 7, 1, 5, 7 },
  };
  return c;
}

static void
test_rnn (void)
{
  if (!need_cuda ())
    return;
  bp_rng_seed (19);
  for (int mode = BP_RNN_TANH; mode <= BP_RNN_GRU; mode++) {
    bool lstm = mode == BP_RNN_LSTM;
    /* stacked, both directions, initial states, every gradient */
    RnnCase c = rnn_case ((BpRnnMode) mode, 2, true, true);
    c.h0 = true;
    c.c0 = lstm;
    check_rnn ("stacked", &c, true, true);
    /* one layer, time-major, no bias, no initial state, variable lengths (1 and T among them) */
    c = rnn_case ((BpRnnMode) mode, 1, false, false);
    c.p.bias = false;
    c.lengths = true;
    check_rnn ("packed", &c, true, true);
    /* both directions with lengths and initial states (the reverse direction starts at each
     * sequence's own end) */
    c = rnn_case ((BpRnnMode) mode, 2, true, false);
    c.h0 = true;
    c.c0 = lstm;
    c.lengths = true;
    check_rnn ("packed", &c, true, true);
  }
  /* gradients added to what is there */
  for (int mode = BP_RNN_LSTM; mode <= BP_RNN_GRU; mode++) {
    RnnCase c = rnn_case ((BpRnnMode) mode, 2, true, false);
    c.h0 = true;
    c.c0 = mode == BP_RNN_LSTM;
    c.lengths = c.twice = true;
    check_rnn ("accumulating", &c, true, true);
    c.p.batch_first = true;
    c.p.num_layers = 1;
    check_rnn ("accumulating", &c, true, true);
  }
  /* the output only (no dh_n, dc_n); only the weights' gradients (no dx, dh0, dc0) */
  RnnCase c = rnn_case (BP_RNN_LSTM, 2, false, true);
  c.h0 = c.c0 = true;
  c.states = false;
  c.lengths = true;
  check_rnn ("output only", &c, true, true);
  check_rnn ("weight gradients only", &c, false, true);
  /* only the input's and initial state's gradients (no dw) */
  c = rnn_case (BP_RNN_GRU, 2, true, true);
  c.h0 = true;
  check_rnn ("input gradients only", &c, true, false);
  /* forward only */
  check_rnn ("forward only", &c, false, false);
  /* larger: several blocks per step kernel, more rows than a bias-gradient slice */
  c = rnn_case (BP_RNN_GRU, 1, true, true);
  c.p.input_size = 20;
  c.p.hidden_size = 48;
  c.batch = 40;
  c.seq = 12;
  check_rnn ("larger", &c, true, true);
  c.p.mode = BP_RNN_LSTM;
  check_rnn ("larger", &c, true, true);

  /* a bad length on the GPU: NULL and the CPU's message */
  c = rnn_case (BP_RNN_GRU, 1, false, true);
  BpTensor *in[MAX_IN] = { NULL };
  int n = rnn_inputs (&c, false, false, in);
  BpTensor *g[MAX_IN] = { NULL };
  for (int k = 0; k < n; k++)
    g[k] = copy_to (in[k], dev);
  int64_t bad[5] = { 1, 2, 8, 1, 1 };
  g_assert_null (bp_rnn (&c.p, g[0], g + 3, NULL, NULL, bad, false, NULL, NULL));
  g_assert_cmpint (bp_last_status (), ==, BP_ERR_INVALID);
  g_assert_nonnull (strstr (bp_last_error (), "length 8 of sequence 2 is not in [1, 7]"));
  g_assert_cmpint (bp_backend (dev)->synchronize (), ==, BP_OK);
  unref_all (n, g);
  unref_all (n, in);
}

/* Dropout between layers: the GPU draws the CPU's mask (bp_rng_hash (key, layer) per layer),
 * and the backward goes through the same mask. */
static void
test_rnn_dropout (void)
{
  if (!need_cuda ())
    return;
  bp_rng_seed (20);
  RnnCase c = rnn_case (BP_RNN_LSTM, 3, true, true);
  c.p.dropout = 0.3f;
  c.training = true;
  c.h0 = c.c0 = true;
  c.lengths = true;
  check_rnn ("training", &c, true, true);
  c.p.mode = BP_RNN_GRU;
  c.c0 = false;
  check_rnn ("training", &c, true, true);
  c.p.dropout = 0.6f;
  c.p.num_layers = 2;
  c.p.bidirectional = false;
  check_rnn ("training", &c, true, true);
  /* evaluation: no dropout */
  c.training = false;
  check_rnn ("evaluation", &c, true, true);
}

/* ---- attention ---- */

typedef struct {
  int64_t batch, tq, tk, e;
  int heads;
  bool packed;       /* self-attention on one (B, T, 3E) projection */
  bool mask, padding, causal;
  float dropout;     /* in training */
  int weights_mode;  /* the weights are appended to the output */
  bool twice;        /* run twice on the same inputs (op_twice): the gradients add up */
} AttnCase;

static BpTensor *
op_attention (BpTensor **x, void *user);

/* inputs: q (or the packed qkv), k, v, attn_mask, key_padding */
static BpTensor *
op_attention_once (BpTensor **x, void *user)
{
  const AttnCase *c = user;
  BpAttnOptions o = BP_ATTN_OPTIONS_INIT;
  o.attn_mask = c->mask ? x[3] : NULL;
  o.key_padding = c->padding ? x[4] : NULL;
  o.causal = c->causal;
  o.dropout = c->dropout;
  o.training = c->dropout > 0.0f;
  o.weights_mode = c->weights_mode;
  BpTensor *w = NULL;
  BpTensor **wp = c->weights_mode ? &w : NULL;
  BpTensor *out = c->packed ? bp_attention_packed (x[0], c->heads, &o, wp)
                            : bp_attention (x[0], x[1], x[2], c->heads, &o, wp);
  if (!out || !w)
    return out;
  BpTensor *parts[] = { bp_reshape (out, 2, (int64_t[]){ 1, -1 }),
                        bp_reshape (w, 2, (int64_t[]){ 1, -1 }) };
  BpTensor *cat = bp_concat (2, parts, 1);
  unref_all (2, parts);
  bp_tensor_unref (out);
  bp_tensor_unref (w);
  return cat;
}

static BpTensor *
op_attention (BpTensor **x, void *user)
{
  const AttnCase *c = user;
  Twice t = { op_attention_once, user };
  return c->twice ? op_twice (x, &t) : op_attention_once (x, user);
}

static void
check_attention (const char *what, const AttnCase *c, bool q_grad, bool kv_grad)
{
  int64_t tk = c->packed ? c->tq : c->tk;
  BpTensor *in[5] = { NULL };
  if (c->packed) {
    in[0] = bp_test_rand (3, (int64_t[]){ c->batch, c->tq, 3 * c->e }, -1, 1, q_grad);
  } else {
    in[0] = bp_test_rand (3, (int64_t[]){ c->batch, c->tq, c->e }, -1, 1, q_grad);
    in[1] = bp_test_rand (3, (int64_t[]){ c->batch, tk, c->e }, -1, 1, kv_grad);
    in[2] = bp_test_rand (3, (int64_t[]){ c->batch, tk, c->e }, -1, 1, kv_grad);
  }
  if (c->mask) {
    /* an additive mask with some -inf, and one query row with no key allowed (zeros) */
    in[3] = bp_test_rand (2, (int64_t[]){ c->tq, tk }, -1, 1, false);
    for (int64_t i = 0; i < in[3]->numel; i += 5)
      in[3]->data[i] = -INFINITY;
    for (int64_t j = 0; j < tk; j++)
      in[3]->data[1 * tk + j] = -INFINITY;
  }
  if (c->padding) {
    /* batch 1 has padding keys; with more than two batches, batch 2 has no key at all */
    in[4] = bp_tensor_new_2d (c->batch, tk);
    for (int64_t j = 0; j < tk; j++) {
      in[4]->data[1 * tk + j] = j % 3 == 0 ? 1.0f : 0.0f;
      if (c->batch > 2)
        in[4]->data[2 * tk + j] = 1.0f;
    }
  }
  bp_cuda_set_tf32 (false);
  compare_op (what, op_attention, (void *) c, 5, in, q_grad || kv_grad, SEQ_TOL, PLAIN);
  bp_cuda_set_tf32 (true);
  unref_all (5, in);
}

static void
test_attention (void)
{
  if (!need_cuda ())
    return;
  bp_rng_seed (21);
  /* heads < batch: the products are batched over the batch, one call per head */
  AttnCase c = { 3, 5, 7, 12, 2, false, true, true, false, 0.0f, 1 };
  check_attention ("attention, masks, per-head weights", &c, true, true);
  c.dropout = 0.2f;
  c.weights_mode = 2;
  check_attention ("attention, masks, dropout, averaged weights", &c, true, true);
  check_attention ("attention, only dk and dv", &c, false, true);
  check_attention ("attention, only dq", &c, true, false);
  c.twice = true;
  check_attention ("attention twice (gradients add up)", &c, true, true);
  /* heads >= batch: batched over the heads, one call per batch */
  AttnCase p = { 2, 9, 9, 16, 4, true, false, false, true, 0.0f, 1 };
  check_attention ("packed causal self-attention", &p, true, false);
  p.dropout = 0.1f;
  p.padding = true;
  p.weights_mode = 0;
  check_attention ("packed causal self-attention, padding, dropout", &p, true, false);
  p.twice = true;
  check_attention ("packed causal self-attention twice", &p, true, false);
  /* rows longer than a warp, several warps per block */
  AttnCase big = { 4, 70, 45, 32, 4, false, true, true, false, 0.0f, 0 };
  check_attention ("attention, long rows", &big, true, true);
  big.causal = true;
  big.tk = 70;
  big.mask = false;
  check_attention ("attention, long rows, causal", &big, true, true);
}

/* ---- multi-head attention and Transformer layers ---- */

static BpTensor *
op_mha_cache (BpTensor **x, void *user)
{
  /* two calls through a KV cache, 3 positions and then 2 more: cache writes, a causal offset,
   * RoPE at an offset and keys read from the cache's strided rows */
  BpMhaParams p = { 2, true, 10000.0f };
  BpMhaWeights w = { x[2], x[3], x[4], x[5] };
  BpAttnOptions o = BP_ATTN_OPTIONS_INIT;
  o.causal = true;
  BpKVCache *cache = bp_kv_cache_new (x[0]->device, x[0]->shape[0], 8, x[0]->shape[2]);
  g_assert_nonnull (cache);
  BpTensor *a = bp_mha_self (&p, &w, x[0], &o, cache, NULL);
  BpTensor *b = bp_mha_self (&p, &w, x[1], &o, cache, NULL);
  g_assert_nonnull (a);
  g_assert_nonnull (b);
  g_assert_cmpint (cache->len, ==, 5);
  BpTensor *parts[] = { a, b };
  BpTensor *cat = bp_concat (2, parts, 1);
  unref_all (2, parts);
  bp_kv_cache_free (cache);
  return cat;
}

static BpTensor *
op_mha_cross (BpTensor **x, void *user)
{
  /* query (B,Tq,E) attending to memory: key == value (one packed k/v projection) or not */
  BpMhaParams p = { 2, false, 10000.0f };
  BpMhaWeights w = { x[3], x[4], x[5], x[6] };
  return bp_mha (&p, &w, x[0], x[1], *(bool *) user ? x[1] : x[2], NULL, NULL);
}

static void
test_mha (void)
{
  if (!need_cuda ())
    return;
  bp_rng_seed (22);
  int64_t e = 8;
  BpTensor *in[] = {
    bp_test_rand (3, (int64_t[]){ 2, 3, e }, -1, 1, false),
    bp_test_rand (3, (int64_t[]){ 2, 2, e }, -1, 1, false),
    bp_test_rand (2, (int64_t[]){ 3 * e, e }, -0.5f, 0.5f, false),
    bp_test_rand (1, (int64_t[]){ 3 * e }, -0.5f, 0.5f, false),
    bp_test_rand (2, (int64_t[]){ e, e }, -0.5f, 0.5f, false),
    bp_test_rand (1, (int64_t[]){ e }, -0.5f, 0.5f, false),
  };
  bp_cuda_set_tf32 (false);
  compare_op ("multi-head attention with a KV cache and RoPE", op_mha_cache, NULL, 6, in, false,
              SEQ_TOL, PLAIN);
  BpTensor *cross[] = {
    bp_test_rand (3, (int64_t[]){ 3, 4, e }, -1, 1, true),
    bp_test_rand (3, (int64_t[]){ 3, 6, e }, -1, 1, true),
    bp_test_rand (3, (int64_t[]){ 3, 6, e }, -1, 1, true),
    bp_test_rand (2, (int64_t[]){ 3 * e, e }, -0.5f, 0.5f, true),
    bp_test_rand (1, (int64_t[]){ 3 * e }, -0.5f, 0.5f, true),
    bp_test_rand (2, (int64_t[]){ e, e }, -0.5f, 0.5f, true),
    bp_test_rand (1, (int64_t[]){ e }, -0.5f, 0.5f, true),
  };
  bool same = true;
  compare_op ("cross-attention, key = value", op_mha_cross, &same, 7, cross, true, SEQ_TOL,
              PLAIN);
  same = false;
  compare_op ("cross-attention", op_mha_cross, &same, 7, cross, true, SEQ_TOL, PLAIN);
  bp_cuda_set_tf32 (true);
  unref_all (6, in);
  unref_all (7, cross);
}

typedef struct {
  BpTransformerParams p;
  bool decoder, padding;
} LayerCase;

/* inputs: x (tgt), memory (decoder) or the key padding (encoder), then the weights in
 * BpTransformerWeights' order (self_attn, cross_attn for the decoder, linear1, linear2, norm1,
 * norm2, norm3 for the decoder) */
static BpTensor *
op_layer (BpTensor **x, void *user)
{
  const LayerCase *c = user;
  BpTransformerWeights w = { 0 };
  int k = 2;
  w.self_attn = (BpMhaWeights){ x[k], x[k + 1], x[k + 2], x[k + 3] };
  k += 4;
  if (c->decoder) {
    w.cross_attn = (BpMhaWeights){ x[k], x[k + 1], x[k + 2], x[k + 3] };
    k += 4;
  }
  w.linear1_weight = x[k++];
  w.linear1_bias = x[k++];
  w.linear2_weight = x[k++];
  w.linear2_bias = x[k++];
  w.norm1_weight = x[k++];
  w.norm1_bias = x[k++];
  w.norm2_weight = x[k++];
  w.norm2_bias = x[k++];
  if (c->decoder) {
    w.norm3_weight = x[k++];
    w.norm3_bias = x[k++];
    return bp_transformer_decoder_layer (&c->p, &w, x[0], x[1], NULL, NULL, true);
  }
  return bp_transformer_encoder_layer (&c->p, &w, x[0], c->padding ? x[1] : NULL, true, NULL, 0,
                                       NULL);
}

static void
check_layer (const char *what, const LayerCase *c)
{
  int64_t b = 3, t = 6, s = 5, e = 8, f = 16;
  BpTensor *in[MAX_IN] = { NULL };
  int n = 0;
  in[n++] = bp_test_rand (3, (int64_t[]){ b, t, e }, -1, 1, true);
  if (c->decoder) {
    in[n++] = bp_test_rand (3, (int64_t[]){ b, s, e }, -1, 1, true);
  } else if (c->padding) {
    in[n] = bp_tensor_new_2d (b, t);
    in[n]->data[0 * t + 5] = in[n]->data[2 * t + 1] = in[n]->data[2 * t + 2] = 1.0f;
    n++;
  } else {
    n++; /* no padding: a NULL input */
  }
  for (int a = 0; a < (c->decoder ? 2 : 1); a++) {
    in[n++] = bp_test_rand (2, (int64_t[]){ 3 * e, e }, -0.5f, 0.5f, true);
    in[n++] = bp_test_rand (1, (int64_t[]){ 3 * e }, -0.5f, 0.5f, true);
    in[n++] = bp_test_rand (2, (int64_t[]){ e, e }, -0.5f, 0.5f, true);
    in[n++] = bp_test_rand (1, (int64_t[]){ e }, -0.5f, 0.5f, true);
  }
  in[n++] = bp_test_rand (2, (int64_t[]){ f, e }, -0.5f, 0.5f, true);
  in[n++] = bp_test_rand (1, (int64_t[]){ f }, -0.5f, 0.5f, true);
  in[n++] = bp_test_rand (2, (int64_t[]){ e, f }, -0.5f, 0.5f, true);
  in[n++] = bp_test_rand (1, (int64_t[]){ e }, -0.5f, 0.5f, true);
  for (int a = 0; a < (c->decoder ? 3 : 2); a++) {
    in[n++] = bp_test_rand (1, (int64_t[]){ e }, 0.5f, 1.5f, true);
    in[n++] = bp_test_rand (1, (int64_t[]){ e }, -0.5f, 0.5f, true);
  }
  g_assert_cmpint (n, <=, MAX_IN);
  bp_cuda_set_tf32 (false);
  compare_op (what, op_layer, (void *) c, n, in, true, SEQ_TOL, PLAIN);
  bp_cuda_set_tf32 (true);
  unref_all (n, in);
}

static void
test_transformer (void)
{
  if (!need_cuda ())
    return;
  bp_rng_seed (23);
  /* training with dropout everywhere (attention weights included) */
  LayerCase gpt = { { 2, 16, 0.1f, BP_ACT_GELU, 1e-5f, true, true, true }, false, false };
  check_layer ("encoder layer: pre-norm, causal, RoPE, dropout", &gpt);
  LayerCase enc = { { 4, 16, 0.1f, BP_ACT_RELU, 1e-5f, false, false, false }, false, true };
  check_layer ("encoder layer: post-norm, key padding, dropout", &enc);
  LayerCase dec = { { 2, 16, 0.1f, BP_ACT_RELU, 1e-5f, false, true, false }, true, false };
  check_layer ("decoder layer: causal self-attention, cross-attention, dropout", &dec);
}

/* ---- position encodings ---- */

static BpTensor *
op_rope (BpTensor **x, void *user)
{
  /* 2 heads of 6 rotated in 20 columns (the rest copied), positions from 3 */
  return bp_rope (x[0], 2, 6, 3, 10000.0f);
}

static BpTensor *
op_add_position (BpTensor **x, void *user)
{
  return bp_add_position (x[0], x[1], 2);
}

static BpTensor *
op_sinusoid (BpTensor **x, void *user)
{
  /* the table made on the input's device, its rows [4, 4 + T) added */
  BpTensor *pe = bp_sinusoid_table (x[0]->device, 12, x[0]->shape[2]);
  g_assert_nonnull (pe);
  BpTensor *y = bp_add_position (x[0], pe, 4);
  bp_tensor_unref (pe);
  return y;
}

static void
test_positions (void)
{
  if (!need_cuda ())
    return;
  bp_rng_seed (24);
  BpTensor *x[] = { bp_test_rand (3, (int64_t[]){ 3, 5, 20 }, -2, 2, true) };
  compare_op ("rope", op_rope, NULL, 1, x, true, F32, PLAIN);
  Twice rope2 = { op_rope, NULL };
  compare_op ("rope twice", op_twice, &rope2, 1, x, true, F32, PLAIN);
  BpTensor *in[] = { bp_test_rand (3, (int64_t[]){ 4, 5, 6 }, -1, 1, true),
                     bp_test_rand (2, (int64_t[]){ 10, 6 }, -1, 1, true) };
  compare_op ("add_position", op_add_position, NULL, 2, in, true, F32, PLAIN);
  Twice add2 = { op_add_position, NULL };
  compare_op ("add_position twice", op_twice, &add2, 2, in, true, F32, PLAIN);
  compare_op ("sinusoid table", op_sinusoid, NULL, 1, in, true, F32, PLAIN);
  unref_all (1, x);
  unref_all (2, in);
}

/* The recurrent and attention kernels give the same bits on every run (no float atomics). */
static void
test_repeatable_seq (void)
{
  if (!need_cuda ())
    return;
  bp_rng_seed (25);
  RnnCase rc = rnn_case (BP_RNN_GRU, 2, true, true);
  rc.h0 = rc.lengths = true;
  rc.p.dropout = 0.2f;
  rc.training = true;
  BpTensor *rin[MAX_IN] = { NULL };
  int rn = rnn_inputs (&rc, true, true, rin);
  AttnCase ac = { 3, 33, 40, 16, 2, false, true, true, false, 0.1f, 0 };
  BpTensor *ain[5] = {
    bp_test_rand (3, (int64_t[]){ ac.batch, ac.tq, ac.e }, -1, 1, true),
    bp_test_rand (3, (int64_t[]){ ac.batch, ac.tk, ac.e }, -1, 1, true),
    bp_test_rand (3, (int64_t[]){ ac.batch, ac.tk, ac.e }, -1, 1, true),
    bp_test_rand (2, (int64_t[]){ ac.tq, ac.tk }, -1, 1, false),
    bp_tensor_new_2d (ac.batch, ac.tk),
  };
  struct {
    OpFn f;
    void *user;
    int n;
    BpTensor **in;
  } ops[] = { { op_rnn, &rc, rn, rin }, { op_attention, &ac, 5, ain } };
  for (size_t o = 0; o < G_N_ELEMENTS (ops); o++) {
    Run a, b;
    bp_rng_seed (26);
    int64_t n_out = 0;
    {
      BpTensor *probe[MAX_IN] = { NULL };
      for (int k = 0; k < ops[o].n; k++)
        probe[k] = copy_to (ops[o].in[k], BP_DEVICE_CPU);
      bool was = bp_set_grad_enabled (false);
      BpTensor *y = ops[o].f (probe, ops[o].user);
      bp_set_grad_enabled (was);
      n_out = y->numel;
      bp_tensor_unref (y);
      unref_all (ops[o].n, probe);
    }
    float *seed = g_new (float, n_out);
    for (int64_t i = 0; i < n_out; i++)
      seed[i] = bp_rng_uniform () - 0.5f;
    run_on (dev, ops[o].f, ops[o].user, ops[o].n, ops[o].in, seed, &a);
    run_on (dev, ops[o].f, ops[o].user, ops[o].n, ops[o].in, seed, &b);
    g_assert_cmpmem (a.out, (gsize) a.n_out * sizeof (float), b.out,
                     (gsize) b.n_out * sizeof (float));
    for (int k = 0; k < ops[o].n; k++) {
      if (!ops[o].in[k] || !a.grad[k])
        continue;
      g_assert_nonnull (b.grad[k]);
      g_assert_cmpmem (a.grad[k], (gsize) ops[o].in[k]->numel * sizeof (float), b.grad[k],
                       (gsize) ops[o].in[k]->numel * sizeof (float));
    }
    run_free (&a);
    run_free (&b);
    g_free (seed);
  }
  unref_all (rn, rin);
  unref_all (5, ain);
}

/* ---- BP_PRECISION_BF16: the device's bf16 products against the CPU's emulation ----
 * Both sides round the same operands (the CPU into copies, the GPU into bfloat16 workspaces
 * for cublasGemmEx and cuDNN), so a single GEMM differs only in the order of its sums; cuDNN
 * also rounds the convolution's results to bfloat16 (its legacy API has no bfloat16-in,
 * float32-out configuration), and in the recurrent and attention chains a last-bit difference
 * can flip an operand's rounding. Bounds: GEMM 1e-3 of the summed terms, convolution 1e-2,
 * RNN and attention 1e-2 of max (1, |cpu|). Those bounds would also pass a device that ignored
 * the precision (bf16 and float32 differ by about 2e-3), so each case also checks that the
 * device's bf16 run differs from its float32 run (TF32 off) by more than 1e-4. */

/* f at bf16 on dev differs from f at float32 on dev (TF32 off): the output and the gradient of
 * every input not in same_mask (bit k: input k; bias gradients are float32 sums at either
 * precision and must be equal). */
static void
assert_precision_used (const char *what, OpFn f, void *user, int n_in, BpTensor **in,
                       unsigned same_mask)
{
  BpTensor *probe_in[MAX_IN] = { NULL };
  for (int k = 0; k < n_in; k++)
    probe_in[k] = copy_to (in[k], BP_DEVICE_CPU);
  bool was = bp_set_grad_enabled (false);
  BpTensor *probe = f (probe_in, user);
  bp_set_grad_enabled (was);
  int64_t n_out = probe->numel;
  bp_tensor_unref (probe);
  unref_all (n_in, probe_in);
  float *seed = g_new (float, n_out);
  for (int64_t i = 0; i < n_out; i++)
    seed[i] = bp_rng_uniform () * 2.0f - 1.0f;
  Run bf, fp;
  bp_cuda_set_tf32 (false);
  BpPrecision prev = bp_set_precision (BP_PRECISION_BF16);
  run_on (dev, f, user, n_in, in, seed, &bf);
  bp_set_precision (BP_PRECISION_FP32);
  run_on (dev, f, user, n_in, in, seed, &fp);
  bp_set_precision (prev);
  bp_cuda_set_tf32 (true);
  double d = bp_test_norm_rel_diff (bf.out, fp.out, bf.n_out);
  g_test_message ("%s: bf16 against float32 on %s: output %.3g", what, bp_device_name (dev), d);
  if (!(d > 1e-4))
    g_error ("%s: the bf16 output differs from the float32 one by %.3g only", what, d);
  for (int k = 0; k < n_in; k++) {
    if (!bf.grad[k])
      continue;
    g_assert_nonnull (fp.grad[k]);
    d = bp_test_norm_rel_diff (bf.grad[k], fp.grad[k], in[k]->numel);
    if (same_mask & (1u << k))
      g_assert_cmpfloat (d, ==, 0.0);
    else if (!(d > 1e-4))
      g_error ("%s: the bf16 gradient of input %d differs from the float32 one by %.3g only",
               what, k, d);
  }
  run_free (&bf);
  run_free (&fp);
  g_free (seed);
}

/* compare_op at bf16 (both devices), then assert_precision_used. */
static void
compare_bf16 (const char *what, OpFn f, void *user, int n_in, BpTensor **in, double tol,
              TolKind kind, unsigned same_mask)
{
  BpPrecision prev = bp_set_precision (BP_PRECISION_BF16);
  compare_op (what, f, user, n_in, in, true, tol, kind);
  bp_set_precision (prev);
  assert_precision_used (what, f, user, n_in, in, same_mask);
}

/* The device's bfloat16 rounding (run on the host) is the CPU's, bit for bit. */
static void
test_bf16_round (void)
{
#if BP_HAVE_CUDA
  const uint32_t edges[] = { 0x00000000, 0x80000000, 0x3f808000, 0x3f818000, 0x3f808001,
                             0x3f807fff, 0x00000001, 0x00008000, 0x00018000, 0x007fffff,
                             0x7f7fffff, 0xff7fffff, 0x7f7f8000, 0x7f800000, 0xff800000,
                             0x7fc00000, 0xffc00000, 0x7f800001 };
  bp_rng_seed (31);
  for (int i = 0; i < 20000; i++) {
    uint32_t u = i < (int) G_N_ELEMENTS (edges) ? edges[i] : (uint32_t) bp_rng_u64 ();
    float x, a, b;
    memcpy (&x, &u, sizeof x);
    a = bp_cuda_bf16_round_host (x);
    b = bp_bf16_round (x);
    g_assert_true (memcmp (&a, &b, sizeof a) == 0);
  }
#else
  g_test_skip ("built without CUDA");
#endif
}

static BpTensor *
op_matmul (BpTensor **x, void *user)
{
  return bp_matmul (x[0], x[1]);
}

static void
test_bf16 (void)
{
  if (!need_cuda ())
    return;
  bp_rng_seed (32);
  /* GEMM: linear (forward NT, backward NN and TN, the bias in float32) and matmul */
  BpTensor *lin[] = { bp_test_rand (2, (int64_t[]){ 65, 130 }, -1, 1, true),
                      bp_test_rand (2, (int64_t[]){ 33, 130 }, -1, 1, true),
                      bp_test_rand (1, (int64_t[]){ 33 }, -1, 1, true) };
  compare_bf16 ("linear bf16", op_linear, NULL, 3, lin, 1e-3, SCALED, 1u << 2);
  /* the fp32 switch of the table's GEMM does not touch the bf16 products */
  bp_cuda_set_bf16_gemm (true);
  compare_bf16 ("linear bf16 with the bf16 GEMM switch on", op_linear, NULL, 3, lin, 1e-3,
                SCALED, 1u << 2);
  bp_cuda_set_bf16_gemm (false);
  BpTensor *mm[] = { bp_test_rand (2, (int64_t[]){ 17, 300 }, -2, 2, true),
                     bp_test_rand (2, (int64_t[]){ 300, 9 }, -2, 2, true) };
  compare_bf16 ("matmul bf16", op_matmul, NULL, 2, mm, 1e-3, SCALED, 0);
  unref_all (3, lin);
  unref_all (2, mm);

  /* convolution: cuDNN with bfloat16 tensors, twice (the second from the algorithm cache,
   * kept apart from the float32 entries of the same shape) */
  BpConv2dParams def = bp_conv2d_params_default ();
  ConvCase cases[] = {
    { 4, 3, 13, 11, 8, 3, 3, def, true },
    { 2, 8, 9, 10, 6, 3, 3, { { 2, 1 }, { 1, 2 }, { 1, 1 }, 2 }, true },
    { 3, 16, 7, 7, 16, 1, 1, def, false },
  };
  for (size_t i = 0; i < G_N_ELEMENTS (cases); i++) {
    ConvCase *c = &cases[i];
    BpTensor *in[] = {
      bp_test_rand (4, (int64_t[]){ c->n, c->cin, c->h, c->w }, -1, 1, true),
      bp_test_rand (4, (int64_t[]){ c->cout, c->cin / c->p.groups, c->kh, c->kw }, -1, 1, true),
      c->bias ? bp_test_rand (1, (int64_t[]){ c->cout }, -1, 1, true) : NULL,
    };
    char what[96];
    g_snprintf (what, sizeof what, "conv2d bf16 %lldx%lld k%dx%d groups %d",
                (long long) c->cin, (long long) c->cout, c->kh, c->kw, c->p.groups);
    for (int again = 0; again < 2; again++)
      compare_bf16 (what, op_conv, c, 3, in, 1e-2, SCALED, 1u << 2);
    /* and the float32 convolution of the same shape still is float32 */
    bp_cuda_set_tf32 (false);
    compare_op (what, op_conv, c, 3, in, true, 1e-4, SCALED);
    bp_cuda_set_tf32 (true);
    unref_all (3, in);
  }

  /* recurrent layers: every product through the bf16 GEMM */
  RnnCase rc = rnn_case (BP_RNN_LSTM, 2, true, true);
  rc.h0 = rc.c0 = true;
  BpTensor *rin[MAX_IN] = { NULL };
  int rn = rnn_inputs (&rc, true, true, rin);
  /* (the bias gradients are float32 sums, but of gate gradients that went through bf16
   * products: they differ from float32 too) */
  compare_bf16 ("lstm bf16", op_rnn, &rc, rn, rin, 1e-2, PLAIN, 0);
  unref_all (rn, rin);
  RnnCase gc = rnn_case (BP_RNN_GRU, 1, false, false);
  rn = rnn_inputs (&gc, true, true, rin);
  compare_bf16 ("gru bf16", op_rnn, &gc, rn, rin, 1e-2, PLAIN, 0);
  unref_all (rn, rin);

  /* attention: strided-batched bf16 GEMMs batched over the heads (heads >= batch) and over the
   * batch (heads < batch: each call's operands span the whole tensor) */
  AttnCase ac[] = { { 2, 9, 12, 16, 4, false, false, true, false, 0.0f, 0 },
                    { 5, 7, 7, 12, 2, true, false, false, true, 0.0f, 0 } };
  for (size_t i = 0; i < G_N_ELEMENTS (ac); i++) {
    const AttnCase *c = &ac[i];
    BpTensor *in[5] = { NULL };
    if (c->packed) {
      in[0] = bp_test_rand (3, (int64_t[]){ c->batch, c->tq, 3 * c->e }, -2, 2, true);
    } else {
      in[0] = bp_test_rand (3, (int64_t[]){ c->batch, c->tq, c->e }, -2, 2, true);
      in[1] = bp_test_rand (3, (int64_t[]){ c->batch, c->tk, c->e }, -2, 2, true);
      in[2] = bp_test_rand (3, (int64_t[]){ c->batch, c->tk, c->e }, -1, 1, true);
    }
    if (c->padding) {
      in[4] = bp_tensor_new_2d (c->batch, c->tk);
      for (int64_t j = 0; j < c->tk; j += 3)
        in[4]->data[1 * c->tk + j] = 1.0f;
    }
    compare_bf16 (c->packed ? "attention bf16, packed, heads < batch" : "attention bf16",
                  op_attention, (void *) c, 5, in, 1e-2, PLAIN, 0);
    unref_all (5, in);
  }
}

static void (*const gpu_tests[]) (void) = {
  test_arith, test_activations, test_dropout, test_concat_reshape, test_embedding, test_sum,
  test_conv2d, test_pool, test_batch_norm, test_layer_norm, test_softmax, test_cross_entropy,
  test_mse_bce, test_count_correct, test_optimizers, test_clip_grad_norm,
  test_linear_precision, test_linear_bias_epilogue, test_repeatable, test_rnn, test_rnn_dropout,
  test_attention, test_mha,
  test_transformer, test_positions, test_repeatable_seq, test_bf16,
};

/* Every test above with the CPU in the GPU's place: checks the tests' own machinery (inputs,
 * gradients, bounds, error paths) where no GPU is, so that a GPU run fails only on the GPU's
 * numbers. CPU against CPU must agree exactly, except where a test compares results that
 * differ by construction (none do). */
static void
test_harness (void)
{
  dev = BP_DEVICE_CPU;
  for (size_t i = 0; i < G_N_ELEMENTS (gpu_tests); i++)
    gpu_tests[i] ();
  dev = BP_DEVICE_CUDA;
}

/* An op whose third call (compare_op's run on the compared device) is off by 1e-4. */
static BpTensor *
op_skewed (BpTensor **x, void *user)
{
  int *calls = user;
  return bp_scale (x[0], ++*calls == 3 ? 1.0001f : 1.0f);
}

/* The comparison fails on a difference just above its bound. */
static void
test_harness_detects (void)
{
  if (g_test_subprocess ()) {
    dev = BP_DEVICE_CPU;
    int calls = 0;
    BpTensor *in[] = { bp_test_rand (1, (int64_t[]){ 10 }, 2, 3, true) };
    compare_op ("skewed", op_skewed, &calls, 1, in, true, F32, PLAIN);
    unref_all (1, in);
    return;
  }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*skewed: output 0 element 0: cuda*");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  bp_set_num_threads (2);
  cuda_status = bp_cuda_init (cuda_why, sizeof cuda_why);
  bp_clear_error ();
  g_test_add_func ("/cuda-ops/harness", test_harness);
  g_test_add_func ("/cuda-ops/harness-detects", test_harness_detects);
  g_test_add_func ("/cuda-ops/eltwise/dropout-hash", test_dropout_hash);
  g_test_add_func ("/cuda-ops/eltwise/arith", test_arith);
  g_test_add_func ("/cuda-ops/eltwise/activations", test_activations);
  g_test_add_func ("/cuda-ops/eltwise/dropout", test_dropout);
  g_test_add_func ("/cuda-ops/eltwise/concat-reshape", test_concat_reshape);
  g_test_add_func ("/cuda-ops/eltwise/embedding", test_embedding);
  g_test_add_func ("/cuda-ops/eltwise/sum", test_sum);
  g_test_add_func ("/cuda-ops/conv/conv2d", test_conv2d);
  g_test_add_func ("/cuda-ops/conv/pool", test_pool);
  g_test_add_func ("/cuda-ops/norm/batch-norm", test_batch_norm);
  g_test_add_func ("/cuda-ops/norm/layer-norm", test_layer_norm);
  g_test_add_func ("/cuda-ops/loss/softmax", test_softmax);
  g_test_add_func ("/cuda-ops/loss/cross-entropy", test_cross_entropy);
  g_test_add_func ("/cuda-ops/loss/mse-bce", test_mse_bce);
  g_test_add_func ("/cuda-ops/loss/count-correct", test_count_correct);
  g_test_add_func ("/cuda-ops/optim/optimizers", test_optimizers);
  g_test_add_func ("/cuda-ops/optim/clip-grad-norm", test_clip_grad_norm);
  g_test_add_func ("/cuda-ops/linear/precision", test_linear_precision);
  g_test_add_func ("/cuda-ops/linear/bias-epilogue", test_linear_bias_epilogue);
  g_test_add_func ("/cuda-ops/repeatable", test_repeatable);
  g_test_add_func ("/cuda-ops/rnn/rnn", test_rnn);
  g_test_add_func ("/cuda-ops/rnn/dropout", test_rnn_dropout);
  g_test_add_func ("/cuda-ops/attn/attention", test_attention);
  g_test_add_func ("/cuda-ops/attn/mha", test_mha);
  g_test_add_func ("/cuda-ops/attn/transformer", test_transformer);
  g_test_add_func ("/cuda-ops/attn/positions", test_positions);
  g_test_add_func ("/cuda-ops/repeatable-seq", test_repeatable_seq);
  g_test_add_func ("/cuda-ops/bf16/round", test_bf16_round);
  g_test_add_func ("/cuda-ops/bf16/products", test_bf16);
  int rc = g_test_run ();
  bp_cuda_shutdown ();
  return rc;
}
