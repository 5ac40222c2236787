/* test-eltwise.c: elementwise ops, activations, dropout, reshapes, concat, embedding and sums
 * against finite differences and PyTorch, plus their error paths and thread-count independence. */
#include "bp-test.h"

#include <math.h>
#include <string.h>

#include "bp-backend.h"
#include "bp-device-step.h"
#include "bp-ops-eltwise.h"
#include "bp-rng.h"

/* A random tensor with no value within 0.05 of 0 (away from the ReLU kinks). */
static BpTensor *
rand_away_from_zero (int ndim, const int64_t *shape, float lo, float hi, bool requires_grad)
{
  BpTensor *t = bp_test_rand (ndim, shape, lo, hi, requires_grad);
  for (int64_t i = 0; i < t->numel; i++)
    if (fabsf (t->data[i]) < 0.05f)
      t->data[i] = t->data[i] < 0.0f ? t->data[i] - 0.1f : t->data[i] + 0.1f;
  return t;
}

static void
unref_all (int n, BpTensor **ts)
{
  for (int k = 0; k < n; k++)
    bp_tensor_unref (ts[k]);
}

/* ---- arithmetic ---- */

static BpTensor *
fwd_add (BpTensor **x, void *user)
{
  return bp_add (x[0], x[1]);
}

static BpTensor *
fwd_sub (BpTensor **x, void *user)
{
  return bp_sub (x[0], x[1]);
}

static BpTensor *
fwd_mul (BpTensor **x, void *user)
{
  return bp_mul (x[0], x[1]);
}

static BpTensor *
fwd_scale (BpTensor **x, void *user)
{
  return bp_scale (x[0], -2.5f);
}

static BpTensor *
fwd_same_twice (BpTensor **x, void *user)
{
  /* x * x + x - 3x: both operands are one tensor, so its gradients must add up */
  BpTensor *sq = bp_mul (x[0], x[0]);
  BpTensor *a = bp_add (sq, x[0]);
  BpTensor *s = bp_scale (x[0], 3.0f);
  BpTensor *out = bp_sub (a, s);
  bp_tensor_unref (sq);
  bp_tensor_unref (a);
  bp_tensor_unref (s);
  return out;
}

static void
test_arith_values (void)
{
  float av[] = {1, 2, 3, -4}, bv[] = {0.5f, -1, 2, 8};
  BpTensor *a = bp_tensor_from_data (2, (int64_t[]){2, 2}, av);
  BpTensor *b = bp_tensor_from_data (2, (int64_t[]){2, 2}, bv);
  BpTensor *s = bp_add (a, b), *d = bp_sub (a, b), *m = bp_mul (a, b), *c = bp_scale (a, 0.5f);
  float want_s[] = {1.5f, 1, 5, 4}, want_d[] = {0.5f, 3, 1, -12}, want_m[] = {0.5f, -2, 6, -32},
        want_c[] = {0.5f, 1, 1.5f, -2};
  bp_test_assert_close ("add", s->data, want_s, 4, 0);
  bp_test_assert_close ("sub", d->data, want_d, 4, 0);
  bp_test_assert_close ("mul", m->data, want_m, 4, 0);
  bp_test_assert_close ("scale", c->data, want_c, 4, 0);
  g_assert_cmpint (s->ndim, ==, 2);
  g_assert_cmpint (s->shape[1], ==, 2);
  /* nothing requires a gradient: nothing is recorded */
  g_assert_cmpuint (bp_tape_length (), ==, 0);
  BpTensor *all[] = {a, b, s, d, m, c};
  unref_all (6, all);
}

static void
test_arith_grad (void)
{
  bp_rng_seed (10);
  int64_t shape[] = {3, 4, 5};
  BpTensor *in[] = {bp_test_rand (3, shape, -1, 1, true), bp_test_rand (3, shape, -1, 1, true)};
  bp_test_check_grad (fwd_add, 2, in, NULL, 1e-2f, 1e-3, 60);
  bp_test_check_grad (fwd_sub, 2, in, NULL, 1e-2f, 1e-3, 60);
  bp_test_check_grad (fwd_mul, 2, in, NULL, 1e-2f, 1e-3, 60);
  bp_test_check_grad (fwd_scale, 1, in, NULL, 1e-2f, 1e-3, 60);
  bp_test_check_grad (fwd_same_twice, 1, in, NULL, 1e-2f, 1e-3, 60);
  /* only b wants a gradient: a gets none */
  in[0]->requires_grad = false;
  bp_tensor_unref (in[0]);
  in[0] = bp_test_rand (3, shape, -1, 1, false);
  bp_test_check_grad (fwd_mul, 2, in, NULL, 1e-2f, 1e-3, 60);
  g_assert_null (in[0]->grad);
  /* the gradient of x * x + x - 3x is exactly 2x - 2 */
  BpTensor *x = bp_test_rand (1, (int64_t[]){7}, -1, 1, true);
  BpTensor *y = fwd_same_twice (&x, NULL);
  float ones[7] = {1, 1, 1, 1, 1, 1, 1};
  g_assert_cmpint (bp_backward_with (y, ones), ==, BP_OK);
  for (int i = 0; i < 7; i++)
    g_assert_cmpfloat_with_epsilon (x->grad[i], 2.0f * x->data[i] - 2.0f, 1e-6);
  bp_tape_clear ();
  bp_tensor_unref (x);
  bp_tensor_unref (y);
  unref_all (2, in);
}

/* ---- activations ---- */

typedef BpTensor *(*UnaryOp) (BpTensor *x);

static BpTensor *
fwd_unary (BpTensor **x, void *user)
{
  return ((UnaryOp) user) (x[0]);
}

static BpTensor *
leaky_02 (BpTensor *x)
{
  return bp_leaky_relu (x, 0.2f);
}

static void
test_activation_grad (void)
{
  bp_rng_seed (11);
  UnaryOp ops[] = {bp_relu, leaky_02, bp_gelu, bp_tanh, bp_sigmoid};
  for (unsigned k = 0; k < G_N_ELEMENTS (ops); k++) {
    BpTensor *x = rand_away_from_zero (2, (int64_t[]){6, 7}, -3, 3, true);
    bp_test_check_grad (fwd_unary, 1, &x, (void *) ops[k], 1e-2f, 2e-3, 42);
    bp_tensor_unref (x);
  }
}

static void
test_activation_values (void)
{
  /* known values: relu, leaky relu, gelu (exact erf form), tanh, sigmoid */
  float xv[] = {-2, -0.5f, 0, 1, 3};
  BpTensor *x = bp_tensor_from_data (1, (int64_t[]){5}, xv);
  BpTensor *r = bp_relu (x), *l = bp_leaky_relu (x, 0.1f), *g = bp_gelu (x), *t = bp_tanh (x),
           *s = bp_sigmoid (x);
  float want_r[] = {0, 0, 0, 1, 3}, want_l[] = {-0.2f, -0.05f, 0, 1, 3};
  float want_g[5], want_t[5], want_s[5];
  for (int i = 0; i < 5; i++) {
    double v = xv[i];
    want_g[i] = (float) (0.5 * v * (1.0 + erf (v / sqrt (2.0))));
    want_t[i] = (float) tanh (v);
    want_s[i] = (float) (1.0 / (1.0 + exp (-v)));
  }
  bp_test_assert_close ("relu", r->data, want_r, 5, 0);
  bp_test_assert_close ("leaky_relu", l->data, want_l, 5, 1e-7);
  bp_test_assert_close ("gelu", g->data, want_g, 5, 1e-6);
  bp_test_assert_close ("tanh", t->data, want_t, 5, 1e-6);
  bp_test_assert_close ("sigmoid", s->data, want_s, 5, 1e-6);
  BpTensor *all[] = {x, r, l, g, t, s};
  unref_all (6, all);

  /* saturation stays finite */
  float big[] = {-100, 100};
  BpTensor *b = bp_tensor_from_data (1, (int64_t[]){2}, big);
  BpTensor *sb = bp_sigmoid (b), *tb = bp_tanh (b), *gb = bp_gelu (b);
  g_assert_cmpfloat (sb->data[0], ==, 0.0f);
  g_assert_cmpfloat (sb->data[1], ==, 1.0f);
  g_assert_cmpfloat (tb->data[0], ==, -1.0f);
  g_assert_cmpfloat (gb->data[0], ==, 0.0f);
  g_assert_cmpfloat (gb->data[1], ==, 100.0f);
  BpTensor *sat[] = {b, sb, tb, gb};
  unref_all (4, sat);
}

/* The CPU kernels use their own vectorisable exp, erfc and tanh: check forward and backward
 * against double-precision libm over a dense grid, tails included. Errors are relative to
 * max (1, |value|); tanh and sigmoid are also checked relative to the value itself. */
static void
test_activation_accuracy (void)
{
  int64_t n = 200001;
  BpTensor *x = bp_tensor_new_1d (n);
  for (int64_t i = 0; i < n; i++)
    x->data[i] = -100.0f + 200.0f * (float) i / (float) (n - 1);
  /* dense near zero, where tanh and gelu change form */
  for (int64_t i = 0; i < 40000; i++)
    x->data[i] = -2.0f + 4.0f * (float) i / 40000.0f;
  x->requires_grad = true;
  BpTensor *ones = bp_tensor_new_1d (n);
  bp_tensor_fill (ones, 1.0f);
  UnaryOp ops[] = {bp_gelu, bp_tanh, bp_sigmoid};
  const char *names[] = {"gelu", "tanh", "sigmoid"};
  for (unsigned k = 0; k < G_N_ELEMENTS (ops); k++) {
    bp_tensor_zero_grad (x);
    BpTensor *y = ops[k] (x);
    g_assert_cmpint (bp_backward_with (y, ones->data), ==, BP_OK);
    double err = 0, derr = 0, rel = 0;
    for (int64_t i = 0; i < n; i++) {
      double v = x->data[i], want, dwant;
      if (k == 0) {
        double cdf = 0.5 * erfc (-v / sqrt (2.0)), pdf = exp (-0.5 * v * v) / sqrt (2.0 * M_PI);
        want = v * cdf;
        dwant = cdf + v * pdf;
      } else if (k == 1) {
        want = tanh (v);
        dwant = 1.0 - want * want;
      } else {
        want = 1.0 / (1.0 + exp (-v));
        dwant = want * (1.0 - want);
      }
      err = fmax (err, fabs (y->data[i] - want) / fmax (1.0, fabs (want)));
      derr = fmax (derr, fabs (x->grad[i] - dwant) / fmax (1.0, fabs (dwant)));
      if (k > 0 && fabs (want) > 1e-30)
        rel = fmax (rel, fabs (y->data[i] - want) / fabs (want));
      if (isnan (y->data[i]) || isnan (x->grad[i]))
        g_error ("%s (%g) gives NaN", names[k], v);
    }
    g_test_message ("%s: forward error %.3g (relative %.3g), derivative error %.3g", names[k],
                    err, rel, derr);
    if (err > 2.5e-7 || derr > 3e-7 || rel > 3e-7)
      g_error ("%s is not accurate enough: forward %.3g, relative %.3g, derivative %.3g",
               names[k], err, rel, derr);
    bp_tape_clear ();
    bp_tensor_unref (y);
  }
  bp_tensor_unref (x);
  bp_tensor_unref (ones);
}

static void
test_activation_torch (void)
{
  bp_rng_seed (12);
  BpTensor *x = rand_away_from_zero (2, (int64_t[]){8, 16}, -4, 4, true);
  /* a few saturated values */
  x->data[0] = -30.0f;
  x->data[1] = 30.0f;
  x->data[2] = -9.0f;
  x->data[3] = 9.0f;
  BpTensor *gy = bp_test_rand (2, (int64_t[]){8, 16}, -1, 1, false);
  UnaryOp ops[] = {bp_relu, leaky_02, bp_gelu, bp_tanh, bp_sigmoid};
  const char *names[] = {"relu", "leaky_relu", "gelu", "tanh", "sigmoid"};
  enum { N_OPS = G_N_ELEMENTS (ops) };
  BpTensor *ys[N_OPS], *dxs[N_OPS], *ref[2 * N_OPS];
  for (int k = 0; k < N_OPS; k++) {
    bp_tensor_zero_grad (x);
    ys[k] = ops[k] (x);
    g_assert_cmpint (bp_backward_with (ys[k], gy->data), ==, BP_OK);
    dxs[k] = bp_tensor_from_data (2, x->shape, x->grad);
    bp_tape_clear ();
    ref[2 * k] = bp_tensor_new_like (x);
    ref[2 * k + 1] = bp_tensor_new_like (x);
  }
  BpTensor *args[] = {x, gy};
  if (bp_test_torch ("import torch.nn.functional as F\n"
                     "out = []\n"
                     "for f in [torch.relu, lambda t: F.leaky_relu(t, 0.2), F.gelu, torch.tanh,\n"
                     "          torch.sigmoid]:\n"
                     "    y = f(x[0])\n"
                     "    (dx,) = torch.autograd.grad(y, x[0], x[1])\n"
                     "    out += [y, dx]\n",
                     2, args, 2 * N_OPS, ref)) {
    for (int k = 0; k < N_OPS; k++) {
      g_autofree char *fw = g_strdup_printf ("%s forward", names[k]);
      g_autofree char *bw = g_strdup_printf ("%s backward", names[k]);
      bp_test_assert_close (fw, ys[k]->data, ref[2 * k]->data, x->numel, 1e-5);
      bp_test_assert_close (bw, dxs[k]->data, ref[2 * k + 1]->data, x->numel, 1e-5);
    }
  }
  unref_all (N_OPS, ys);
  unref_all (N_OPS, dxs);
  unref_all (2 * N_OPS, ref);
  bp_tensor_unref (x);
  bp_tensor_unref (gy);
}

/* ---- dropout ---- */

static BpTensor *
fwd_dropout (BpTensor **x, void *user)
{
  bp_rng_seed (99); /* the same mask on every call */
  return bp_dropout (x[0], *(float *) user, true);
}

static void
test_dropout_grad (void)
{
  bp_rng_seed (13);
  float p = 0.4f;
  BpTensor *x = bp_test_rand (2, (int64_t[]){10, 12}, -1, 1, true);
  bp_test_check_grad (fwd_dropout, 1, &x, &p, 1e-2f, 1e-3, 120);

  /* the gradient is the output's mask and scale applied to dout */
  bp_tensor_zero_grad (x);
  BpTensor *y = fwd_dropout (&x, &p);
  BpTensor *gy = bp_test_rand (2, (int64_t[]){10, 12}, -1, 1, false);
  g_assert_cmpint (bp_backward_with (y, gy->data), ==, BP_OK);
  int zeros = 0;
  for (int64_t i = 0; i < x->numel; i++) {
    bool kept = y->data[i] != 0.0f;
    zeros += !kept;
    float want = kept ? gy->data[i] * (1.0f / (1.0f - p)) : 0.0f;
    g_assert_cmpfloat_with_epsilon (x->grad[i], want, 1e-6);
  }
  g_assert_cmpint (zeros, >, 0);
  g_assert_cmpint (zeros, <, x->numel);
  bp_tape_clear ();
  bp_tensor_unref (y);
  bp_tensor_unref (gy);
  bp_tensor_unref (x);
}

static void
test_dropout_identity (void)
{
  bp_rng_seed (14);
  BpTensor *x = bp_test_rand (2, (int64_t[]){5, 9}, -1, 1, true);
  uint64_t state = bp_rng_state ();
  BpTensor *e = bp_dropout (x, 0.5f, false), *z = bp_dropout (x, 0.0f, true);
  g_assert_nonnull (e);
  g_assert_nonnull (z);
  /* identity: same values, a new tensor, and no random draw */
  bp_test_assert_close ("dropout eval", e->data, x->data, x->numel, 0);
  bp_test_assert_close ("dropout p=0", z->data, x->data, x->numel, 0);
  g_assert_true (e != x && e->data != x->data);
  g_assert_true (bp_tensor_same_shape (e, x));
  g_assert_true (bp_rng_state () == state);
  /* and the gradient passes through unchanged */
  BpTensor *gy = bp_test_rand (2, (int64_t[]){5, 9}, -1, 1, false);
  g_assert_cmpint (bp_backward_with (e, gy->data), ==, BP_OK);
  bp_test_assert_close ("dropout eval grad", x->grad, gy->data, x->numel, 0);
  bp_tape_clear ();
  BpTensor *all[] = {x, e, z, gy};
  unref_all (4, all);
}

/* Fraction of zeros in out and the largest relative error of survivors against x / (1 - p). */
static void
dropout_stats (const BpTensor *out, const BpTensor *x, float p, double *frac, double *err)
{
  int64_t zeros = 0;
  double worst = 0.0;
  for (int64_t i = 0; i < x->numel; i++) {
    if (out->data[i] == 0.0f) {
      zeros++;
      continue;
    }
    double want = (double) x->data[i] / (1.0 - (double) p);
    worst = fmax (worst, fabs (out->data[i] - want) / fabs (want));
  }
  *frac = (double) zeros / (double) x->numel;
  *err = worst;
}

static void
test_dropout_statistics (void)
{
  bp_rng_seed (15);
  int64_t n = 100000;
  /* positive inputs, so a zero in the output can only come from the mask */
  BpTensor *x = bp_test_rand (1, (int64_t[]){n}, 0.5f, 1.5f, false);
  float ps[] = {0.1f, 0.5f, 0.8f};
  for (unsigned k = 0; k < G_N_ELEMENTS (ps); k++) {
    float p = ps[k];
    BpTensor *y = bp_dropout (x, p, true);
    double frac, err;
    dropout_stats (y, x, p, &frac, &err);
    /* 0.01 is about 5 standard deviations of the zeroed fraction at n = 1e5 */
    if (fabs (frac - p) > 0.01 || err > 1e-6)
      g_error ("dropout p=%g: zeroed fraction %g, survivor scale error %g", p, frac, err);
    /* another key, another mask */
    BpTensor *y2 = bp_dropout (x, p, true);
    g_assert_cmpint (memcmp (y->data, y2->data, (size_t) n * sizeof (float)), !=, 0);
    bp_tensor_unref (y);
    bp_tensor_unref (y2);
  }

  /* PyTorch's dropout on the same input: the same zeroed fraction and survivor scale */
  float p = 0.3f;
  BpTensor *y = bp_dropout (x, p, true);
  double frac, err;
  dropout_stats (y, x, p, &frac, &err);
  BpTensor *ref = bp_tensor_new_1d (2);
  if (bp_test_torch ("p = 0.3\n"
                     "torch.manual_seed(0)\n"
                     "y = torch.nn.functional.dropout(x[0], p, training=True)\n"
                     "kept = y != 0\n"
                     "frac = 1.0 - kept.double().mean()\n"
                     "err = ((y[kept] - x[0][kept] / (1 - p)).abs() / (x[0][kept] / (1 - p))).max()\n"
                     "out = [torch.stack([frac, err])]\n",
                     1, &x, 1, &ref)) {
    g_test_message ("zeroed fraction at p=0.3: ours %.4f, PyTorch %.4f", frac, ref->data[0]);
    g_assert_cmpfloat (fabs (ref->data[0] - p), <, 0.01);
    g_assert_cmpfloat (fabs (frac - ref->data[0]), <, 0.015);
    g_assert_cmpfloat (ref->data[1], <, 1e-6);
    g_assert_cmpfloat (err, <, 1e-6);
  }
  bp_tensor_unref (ref);
  bp_tensor_unref (y);
  bp_tensor_unref (x);
}

static void
test_dropout_repeatable (void)
{
  /* large enough to be split over threads */
  int64_t n = 300000;
  bp_rng_seed (16);
  BpTensor *x = bp_test_rand (1, (int64_t[]){n}, -1, 1, true);
  BpTensor *gy = bp_test_rand (1, (int64_t[]){n}, -1, 1, false);
  BpTensor *ys[3], *dxs[3];
  int threads[] = {1, 1, 2};
  for (int k = 0; k < 3; k++) {
    bp_set_num_threads (threads[k]);
    bp_rng_seed (1234);
    bp_tensor_zero_grad (x);
    ys[k] = bp_dropout (x, 0.25f, true);
    g_assert_cmpint (bp_backward_with (ys[k], gy->data), ==, BP_OK);
    dxs[k] = bp_tensor_from_data (1, x->shape, x->grad);
    bp_tape_clear ();
  }
  bp_set_num_threads (1);
  for (int k = 1; k < 3; k++) {
    g_assert_cmpint (memcmp (ys[0]->data, ys[k]->data, (size_t) n * sizeof (float)), ==, 0);
    g_assert_cmpint (memcmp (dxs[0]->data, dxs[k]->data, (size_t) n * sizeof (float)), ==, 0);
  }
  unref_all (3, ys);
  unref_all (3, dxs);
  bp_tensor_unref (x);
  bp_tensor_unref (gy);
}

/* ---- reshape and flatten ---- */

static BpTensor *
fwd_reshape (BpTensor **x, void *user)
{
  /* (2,3,4) -> (4,-1) -> (4,6) */
  return bp_reshape (x[0], 2, (int64_t[]){4, -1});
}

static BpTensor *
fwd_flatten_chain (BpTensor **x, void *user)
{
  /* flatten, then an op whose gradient depends on position, so a permuted gradient fails */
  BpTensor *f = bp_flatten (x[0], 1);
  BpTensor *out = bp_mul (f, x[1]);
  bp_tensor_unref (f);
  return out;
}

static void
test_reshape (void)
{
  bp_rng_seed (17);
  BpTensor *x = bp_test_rand (3, (int64_t[]){2, 3, 4}, -1, 1, true);
  BpTensor *y = fwd_reshape (&x, NULL);
  g_assert_nonnull (y);
  g_assert_cmpint (y->ndim, ==, 2);
  g_assert_cmpint (y->shape[0], ==, 4);
  g_assert_cmpint (y->shape[1], ==, 6);
  bp_test_assert_close ("reshape", y->data, x->data, x->numel, 0);
  bp_tape_clear ();
  bp_tensor_unref (y);
  bp_test_check_grad (fwd_reshape, 1, &x, NULL, 1e-2f, 1e-3, 24);

  /* -1 first; to 1-D; to a 0-dim scalar from one element */
  y = bp_reshape (x, 3, (int64_t[]){-1, 2, 2});
  g_assert_cmpint (y->shape[0], ==, 6);
  bp_tensor_unref (y);
  y = bp_reshape (x, 1, (int64_t[]){-1});
  g_assert_cmpint (y->shape[0], ==, 24);
  bp_tensor_unref (y);
  BpTensor *one = bp_tensor_new_1d (1);
  y = bp_reshape (one, 0, NULL);
  g_assert_nonnull (y);
  g_assert_cmpint (y->ndim, ==, 0);
  g_assert_cmpint (y->numel, ==, 1);
  bp_tensor_unref (y);
  bp_tensor_unref (one);
  bp_tape_clear ();
  bp_tensor_unref (x);
}

static void
test_flatten (void)
{
  bp_rng_seed (18);
  BpTensor *x = bp_test_rand (4, (int64_t[]){2, 3, 4, 5}, -1, 1, true);
  struct {
    int start, ndim;
    int64_t shape[4];
  } cases[] = {
    {0, 1, {120}}, {1, 2, {2, 60}}, {2, 3, {2, 3, 20}}, {3, 4, {2, 3, 4, 5}},
    {-1, 4, {2, 3, 4, 5}}, {-3, 2, {2, 60}},
  };
  for (unsigned k = 0; k < G_N_ELEMENTS (cases); k++) {
    BpTensor *y = bp_flatten (x, cases[k].start);
    g_assert_nonnull (y);
    g_assert_cmpint (y->ndim, ==, cases[k].ndim);
    for (int d = 0; d < y->ndim; d++)
      g_assert_cmpint (y->shape[d], ==, cases[k].shape[d]);
    bp_test_assert_close ("flatten", y->data, x->data, x->numel, 0);
    bp_tensor_unref (y);
  }
  bp_tape_clear ();
  BpTensor *in[] = {x, bp_test_rand (2, (int64_t[]){2, 60}, -1, 1, true)};
  bp_test_check_grad (fwd_flatten_chain, 2, in, NULL, 1e-2f, 1e-3, 40);
  unref_all (2, in);
}

/* ---- concat ---- */

typedef struct {
  int n, dim;
} ConcatArgs;

static BpTensor *
fwd_concat (BpTensor **x, void *user)
{
  ConcatArgs *a = user;
  return bp_concat (a->n, x, a->dim);
}

static void
test_concat_grad (void)
{
  bp_rng_seed (19);
  /* along each dim of (2,3,4)-like tensors, including a negative dim */
  int dims[] = {0, 1, 2, -2};
  for (unsigned k = 0; k < G_N_ELEMENTS (dims); k++) {
    int d = dims[k] < 0 ? dims[k] + 3 : dims[k];
    int64_t s1[] = {2, 3, 4}, s2[] = {2, 3, 4}, s3[] = {2, 3, 4};
    s2[d] = 1;
    s3[d] = 5;
    BpTensor *in[] = {bp_test_rand (3, s1, -1, 1, true), bp_test_rand (3, s2, -1, 1, true),
                      bp_test_rand (3, s3, -1, 1, true)};
    ConcatArgs args = {3, dims[k]};
    bp_test_check_grad (fwd_concat, 3, in, &args, 1e-2f, 1e-3, 30);
    unref_all (3, in);
  }
  /* more inputs than a tape node holds, some without a gradient, one used twice */
  BpTensor *in[8];
  for (int k = 0; k < 8; k++)
    in[k] = bp_test_rand (2, (int64_t[]){3, k + 1}, -1, 1, k != 2);
  bp_tensor_unref (in[7]);
  in[7] = bp_tensor_ref (in[0]);
  ConcatArgs args = {8, 1};
  bp_test_check_grad (fwd_concat, 7, in, &args, 1e-2f, 1e-3, 30);
  g_assert_null (in[2]->grad);
  /* check in[0]'s doubled gradient directly: both copies get ones */
  for (int k = 0; k < 8; k++)
    bp_tensor_zero_grad (in[k]);
  BpTensor *y = bp_concat (8, in, 1);
  g_assert_cmpint (y->shape[1], ==, 1 + 2 + 3 + 4 + 5 + 6 + 7 + 1);
  float *ones = g_new (float, y->numel);
  for (int64_t i = 0; i < y->numel; i++)
    ones[i] = 1.0f;
  g_assert_cmpint (bp_backward_with (y, ones), ==, BP_OK);
  for (int i = 0; i < 3; i++)
    g_assert_cmpfloat (in[0]->grad[i], ==, 2.0f);
  g_assert_cmpfloat (in[6]->grad[20], ==, 1.0f);
  g_free (ones);
  bp_tape_clear ();
  bp_tensor_unref (y);
  unref_all (8, in);
}

static void
test_concat_torch (void)
{
  bp_rng_seed (20);
  BpTensor *in[] = {bp_test_rand (4, (int64_t[]){2, 3, 2, 2}, -1, 1, true),
                    bp_test_rand (4, (int64_t[]){2, 1, 2, 2}, -1, 1, true),
                    bp_test_rand (4, (int64_t[]){2, 4, 2, 2}, -1, 1, true)};
  BpTensor *y = bp_concat (3, in, 1);
  g_assert_nonnull (y);
  BpTensor *gy = bp_test_rand (4, y->shape, -1, 1, false);
  g_assert_cmpint (bp_backward_with (y, gy->data), ==, BP_OK);
  BpTensor *ref[] = {bp_tensor_new_like (y), bp_tensor_new_like (in[0]),
                     bp_tensor_new_like (in[1]), bp_tensor_new_like (in[2])};
  BpTensor *args[] = {in[0], in[1], in[2], gy};
  if (bp_test_torch ("y = torch.cat([x[0], x[1], x[2]], dim=1)\n"
                     "y.backward(x[3])\n"
                     "out = [y, x[0].grad, x[1].grad, x[2].grad]\n",
                     4, args, 4, ref)) {
    bp_test_assert_close ("concat forward", y->data, ref[0]->data, y->numel, 0);
    for (int k = 0; k < 3; k++)
      bp_test_assert_close ("concat backward", in[k]->grad, ref[k + 1]->data, in[k]->numel, 0);
  }
  bp_tape_clear ();
  bp_tensor_unref (y);
  bp_tensor_unref (gy);
  unref_all (4, ref);
  unref_all (3, in);
}

/* ---- embedding ---- */

static BpTensor *
fwd_embedding (BpTensor **x, void *user)
{
  return bp_embedding (x[0], x[1]);
}

static void
test_embedding_grad (void)
{
  bp_rng_seed (21);
  BpTensor *w = bp_test_rand (2, (int64_t[]){7, 3}, -1, 1, true);
  /* repeated indices: their gradients add up; row 6 is never used */
  float idx[] = {0, 2, 2, 5, 1, 0, 2, 3, 4, 5};
  BpTensor *ix = bp_tensor_from_data (2, (int64_t[]){2, 5}, idx);
  BpTensor *y = bp_embedding (w, ix);
  g_assert_nonnull (y);
  g_assert_cmpint (y->ndim, ==, 3);
  g_assert_cmpint (y->shape[2], ==, 3);
  for (int i = 0; i < 10; i++)
    bp_test_assert_close ("embedding row", y->data + i * 3, w->data + (int) idx[i] * 3, 3, 0);
  bp_tape_clear ();
  bp_tensor_unref (y);
  BpTensor *in[] = {w, ix};
  bp_test_check_grad (fwd_embedding, 2, in, NULL, 1e-2f, 1e-3, 21);
  g_assert_null (ix->grad);
  for (int j = 0; j < 3; j++)
    g_assert_cmpfloat (w->grad[6 * 3 + j], ==, 0.0f);
  unref_all (2, in);
}

static void
test_embedding_torch (void)
{
  bp_rng_seed (22);
  BpTensor *w = bp_test_rand (2, (int64_t[]){10, 4}, -1, 1, true);
  BpTensor *ix = bp_tensor_new_2d (3, 5);
  for (int64_t i = 0; i < ix->numel; i++)
    ix->data[i] = (float) bp_rng_below (6); /* rows 0..5 only, with repeats */
  BpTensor *y = bp_embedding (w, ix);
  BpTensor *gy = bp_test_rand (3, y->shape, -1, 1, false);
  g_assert_cmpint (bp_backward_with (y, gy->data), ==, BP_OK);
  BpTensor *ref[] = {bp_tensor_new_like (y), bp_tensor_new_like (w)};
  BpTensor *args[] = {w, ix, gy};
  if (bp_test_torch ("y = torch.nn.functional.embedding(x[1].detach().long(), x[0])\n"
                     "y.backward(x[2])\n"
                     "out = [y, x[0].grad]\n",
                     3, args, 2, ref)) {
    bp_test_assert_close ("embedding forward", y->data, ref[0]->data, y->numel, 0);
    bp_test_assert_close ("embedding backward", w->grad, ref[1]->data, w->numel, 1e-6);
  }
  bp_tape_clear ();
  BpTensor *all[] = {w, ix, y, gy, ref[0], ref[1]};
  unref_all (6, all);
}

/* With its indices trusted, the embedding looks the same rows up without checking them: no
 * host read-back under the device-step watch (the check's is noted), the same output and
 * gradient. The backward of a scalar seeds its gradient on the device; bp_backward_with copies
 * the caller's host gradient (noted). */
static void
test_embedding_trusted (void)
{
  bp_rng_seed (24);
  BpTensor *w = bp_test_rand (2, (int64_t[]){9, 5}, -1, 1, true);
  float idx[] = {8, 0, 3, 3, 7, 1};
  BpTensor *ix = bp_tensor_from_data (1, (int64_t[]){6}, idx);
  BpTensor *y[2], *dw[2];
  char *noted[2], *seed_noted[2]; /* "" for nothing noted */
  for (int trusted = 0; trusted < 2; trusted++) {
    bp_tensor_zero_grad (w);
    g_assert_false (bp_set_indices_trusted (trusted));
    bp_device_step_begin ();
    y[trusted] = bp_embedding (w, ix);
    noted[trusted] = g_strdup (bp_device_step_end () ?: "");
    g_assert_cmpint (bp_set_indices_trusted (false), ==, trusted);
    g_assert_nonnull (y[trusted]);
    BpTensor *s = bp_sum (y[trusted]);
    bp_device_step_begin ();
    g_assert_cmpint (bp_backward (s), ==, BP_OK);
    seed_noted[trusted] = g_strdup (bp_device_step_end () ?: "");
    dw[trusted] = bp_tensor_from_data (2, w->shape, w->grad);
    bp_tape_clear ();
    bp_tensor_unref (s);
  }
  g_assert_cmpstr (noted[0], ==, "the embedding checks its indices on the host");
  g_assert_cmpstr (noted[1], ==, "");
  g_assert_cmpstr (seed_noted[0], ==, "");
  g_assert_cmpstr (seed_noted[1], ==, "");
  for (int k = 0; k < 2; k++) {
    g_free (noted[k]);
    g_free (seed_noted[k]);
  }
  g_assert_cmpint (memcmp (y[0]->data, y[1]->data, sizeof (float) * 30), ==, 0);
  g_assert_cmpint (memcmp (dw[0]->data, dw[1]->data, sizeof (float) * 45), ==, 0);
  for (int j = 0; j < 5; j++)
    g_assert_cmpfloat (dw[1]->data[3 * 5 + j], ==, 2.0f); /* index 3 twice */

  /* an untrusted bad index is still an error; bp_backward_with is noted */
  float bad[] = {2, 9};
  BpTensor *ib = bp_tensor_from_data (1, (int64_t[]){2}, bad);
  g_assert_null (bp_embedding (w, ib));
  g_assert_nonnull (strstr (bp_last_error (), "index 9 at position 1"));
  BpTensor *z = bp_embedding (w, ix);
  float one[30];
  for (int i = 0; i < 30; i++)
    one[i] = 1.0f;
  bp_device_step_begin ();
  g_assert_cmpint (bp_backward_with (z, one), ==, BP_OK);
  g_assert_cmpstr (bp_device_step_end (), ==, "the output gradient is copied from host memory");
  bp_device_step_note ("outside a watch");
  bp_device_step_begin ();
  g_assert_null (bp_device_step_end ());
  bp_tape_clear ();
  BpTensor *all[] = {w, ix, y[0], y[1], dw[0], dw[1], ib, z};
  unref_all (8, all);
}

static void
test_embedding_threads (void)
{
  /* a scatter-add with many repeats, big enough to be threaded: bit-identical for 1 and 2
   * threads, and equal to a plain serial sum */
  bp_rng_seed (23);
  int64_t n = 3000, v = 40, d = 64;
  BpTensor *w = bp_test_rand (2, (int64_t[]){v, d}, -1, 1, true);
  BpTensor *ix = bp_tensor_new_1d (n);
  for (int64_t i = 0; i < n; i++)
    ix->data[i] = (float) bp_rng_below ((uint64_t) v);
  BpTensor *gy = bp_test_rand (2, (int64_t[]){n, d}, -1, 1, false);
  BpTensor *dw[2];
  for (int k = 0; k < 2; k++) {
    bp_set_num_threads (k + 1);
    bp_tensor_zero_grad (w);
    BpTensor *y = bp_embedding (w, ix);
    g_assert_cmpint (bp_backward_with (y, gy->data), ==, BP_OK);
    dw[k] = bp_tensor_from_data (2, w->shape, w->grad);
    bp_tape_clear ();
    bp_tensor_unref (y);
  }
  bp_set_num_threads (1);
  g_assert_cmpint (memcmp (dw[0]->data, dw[1]->data, (size_t) (v * d) * sizeof (float)), ==, 0);
  float *want = g_new0 (float, v * d);
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < d; j++)
      want[(int64_t) ix->data[i] * d + j] += gy->data[i * d + j];
  bp_test_assert_close ("embedding scatter-add", dw[0]->data, want, v * d, 0);
  g_free (want);
  BpTensor *all[] = {w, ix, gy, dw[0], dw[1]};
  unref_all (5, all);
}

/* ---- sums ---- */

static BpTensor *
fwd_sum (BpTensor **x, void *user)
{
  return bp_sum (x[0]);
}

static BpTensor *
fwd_mean (BpTensor **x, void *user)
{
  return bp_mean (x[0]);
}

static void
test_sum_mean (void)
{
  float v[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  BpTensor *x = bp_tensor_from_data (2, (int64_t[]){2, 5}, v);
  BpTensor *s = bp_sum (x), *m = bp_mean (x);
  g_assert_cmpint (s->ndim, ==, 1);
  g_assert_cmpint (s->shape[0], ==, 1);
  g_assert_cmpfloat (s->data[0], ==, 55.0f);
  g_assert_cmpfloat (m->data[0], ==, 5.5f);
  BpTensor *all[] = {x, s, m};
  unref_all (3, all);

  bp_rng_seed (24);
  x = bp_test_rand (3, (int64_t[]){3, 4, 5}, -1, 1, true);
  bp_test_check_grad (fwd_sum, 1, &x, NULL, 1e-2f, 1e-3, 60);
  bp_test_check_grad (fwd_mean, 1, &x, NULL, 1e-2f, 1e-3, 60);
  /* mean's gradient is exactly 1/n */
  bp_tensor_zero_grad (x);
  m = bp_mean (x);
  g_assert_cmpint (bp_backward (m), ==, BP_OK);
  for (int64_t i = 0; i < x->numel; i++)
    g_assert_cmpfloat_with_epsilon (x->grad[i], 1.0f / 60.0f, 1e-9);
  bp_tape_clear ();
  bp_tensor_unref (m);
  bp_tensor_unref (x);
}

static void
test_sum_threads (void)
{
  /* a long sum: accurate (double accumulation) and bit-identical for 1 and 2 threads */
  int64_t n = 1000000;
  BpTensor *x = bp_tensor_new_1d (n);
  bp_tensor_fill (x, 0.1f);
  float got[2];
  for (int k = 0; k < 2; k++) {
    bp_set_num_threads (k + 1);
    BpTensor *s = bp_sum (x);
    got[k] = s->data[0];
    bp_tensor_unref (s);
  }
  bp_set_num_threads (1);
  g_assert_cmpfloat (got[0], ==, got[1]);
  g_assert_cmpfloat (fabs (got[0] - 0.1f * 1e6) / 1e5, <, 1e-6);
  bp_tensor_unref (x);
}

/* Large elementwise ops (threaded above a threshold) give the same bits for 1 and 2 threads. */
static void
test_large_threads (void)
{
  bp_rng_seed (25);
  int64_t n = 200000;
  BpTensor *x = bp_test_rand (1, (int64_t[]){n}, -3, 3, true);
  BpTensor *gy = bp_test_rand (1, (int64_t[]){n}, -1, 1, false);
  BpTensor *dx[2];
  for (int k = 0; k < 2; k++) {
    bp_set_num_threads (k + 1);
    bp_tensor_zero_grad (x);
    BpTensor *g = bp_gelu (x);
    BpTensor *s = bp_sigmoid (g);
    BpTensor *y = bp_mul (s, x);
    g_assert_cmpint (bp_backward_with (y, gy->data), ==, BP_OK);
    dx[k] = bp_tensor_from_data (1, x->shape, x->grad);
    bp_tape_clear ();
    BpTensor *all[] = {g, s, y};
    unref_all (3, all);
  }
  bp_set_num_threads (1);
  g_assert_cmpint (memcmp (dx[0]->data, dx[1]->data, (size_t) n * sizeof (float)), ==, 0);
  unref_all (2, dx);
  bp_tensor_unref (x);
  bp_tensor_unref (gy);
}

/* ---- errors ---- */

static void
assert_error (BpTensor *result, const char *part1, const char *part2)
{
  g_assert_null (result);
  g_assert_cmpint (bp_last_status (), ==, BP_ERR_INVALID);
  const char *msg = bp_last_error ();
  if (!strstr (msg, part1) || (part2 && !strstr (msg, part2)))
    g_error ("error message \"%s\" should mention \"%s\" and \"%s\"", msg, part1,
             part2 ? part2 : "");
  bp_clear_error ();
}

static void
test_errors (void)
{
  BpTensor *a = bp_tensor_new_2d (2, 3), *b = bp_tensor_new_2d (3, 2);
  a->requires_grad = true;
  assert_error (bp_add (a, b), "add", "[3, 2]");
  assert_error (bp_sub (a, b), "sub", "[2, 3]");
  assert_error (bp_mul (b, a), "mul", "[3, 2]");

  /* reshape: numel mismatch, two -1, -1 next to a zero, negative size, too many dims */
  assert_error (bp_reshape (a, 2, (int64_t[]){4, 2}), "reshape", "[4, 2]");
  assert_error (bp_reshape (a, 2, (int64_t[]){-1, -1}), "reshape", "-1");
  assert_error (bp_reshape (a, 2, (int64_t[]){-1, 4}), "reshape", "[2, 3]");
  assert_error (bp_reshape (a, 2, (int64_t[]){0, -1}), "reshape", NULL);
  assert_error (bp_reshape (a, 2, (int64_t[]){-2, -3}), "reshape", NULL);
  assert_error (bp_reshape (a, BP_MAX_DIMS + 1, (int64_t[BP_MAX_DIMS + 1]){6, 1, 1, 1, 1, 1, 1}),
                "reshape", NULL);
  assert_error (bp_flatten (a, 2), "flatten", "[2, 3]");
  assert_error (bp_flatten (a, -3), "flatten", NULL);

  /* concat: other dims differ, ranks differ, bad dim, no inputs */
  BpTensor *c = bp_tensor_new_2d (2, 4), *d = bp_tensor_new_1d (6);
  BpTensor *ac[] = {a, c}, *ad[] = {a, d};
  assert_error (bp_concat (2, ac, 0), "concat", "[2, 4]");
  assert_error (bp_concat (2, ad, 1), "concat", "[6]");
  assert_error (bp_concat (2, ac, 2), "concat", "dim 2");
  assert_error (bp_concat (0, ac, 0), "concat", NULL);
  BpTensor *ok = bp_concat (2, ac, 1); /* the same pair does fit along dim 1 */
  g_assert_nonnull (ok);
  g_assert_cmpint (ok->shape[1], ==, 7);
  bp_tensor_unref (ok);
  bp_tape_clear ();

  /* embedding: index out of range, negative, not an integer, NaN; weight not 2-D */
  BpTensor *w = bp_tensor_new_2d (10, 4);
  w->requires_grad = true;
  float bad[][3] = {{1, 10, 2}, {-1, 0, 0}, {3, 4, 2.5f}, {0, 0, NAN}};
  const char *want[][2] = {{"index 10", "position 1"}, {"index -1", "position 0"},
                           {"index 2.5", "position 2"}, {"index nan", "position 2"}};
  for (unsigned k = 0; k < G_N_ELEMENTS (bad); k++) {
    BpTensor *ix = bp_tensor_from_data (1, (int64_t[]){3}, bad[k]);
    assert_error (bp_embedding (w, ix), want[k][0], want[k][1]);
    bp_tensor_unref (ix);
  }
  assert_error (bp_embedding (d, w), "embedding", "[6]");

  /* dropout: p outside [0, 1), in training and in eval */
  float ps[] = {1.0f, -0.1f, 1.5f, NAN};
  for (unsigned k = 0; k < G_N_ELEMENTS (ps); k++) {
    assert_error (bp_dropout (a, ps[k], true), "dropout", "[0, 1)");
    assert_error (bp_dropout (a, ps[k], false), "dropout", NULL);
  }
  /* failures record nothing */
  g_assert_cmpuint (bp_tape_length (), ==, 0);
  BpTensor *all[] = {a, b, c, d, w};
  unref_all (5, all);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  bp_set_num_threads (1);
  g_test_add_func ("/eltwise/arith-values", test_arith_values);
  g_test_add_func ("/eltwise/arith-grad", test_arith_grad);
  g_test_add_func ("/eltwise/activation-values", test_activation_values);
  g_test_add_func ("/eltwise/activation-grad", test_activation_grad);
  g_test_add_func ("/eltwise/activation-accuracy", test_activation_accuracy);
  g_test_add_func ("/eltwise/activation-torch", test_activation_torch);
  g_test_add_func ("/eltwise/dropout-grad", test_dropout_grad);
  g_test_add_func ("/eltwise/dropout-identity", test_dropout_identity);
  g_test_add_func ("/eltwise/dropout-statistics", test_dropout_statistics);
  g_test_add_func ("/eltwise/dropout-repeatable", test_dropout_repeatable);
  g_test_add_func ("/eltwise/reshape", test_reshape);
  g_test_add_func ("/eltwise/flatten", test_flatten);
  g_test_add_func ("/eltwise/concat-grad", test_concat_grad);
  g_test_add_func ("/eltwise/concat-torch", test_concat_torch);
  g_test_add_func ("/eltwise/embedding-grad", test_embedding_grad);
  g_test_add_func ("/eltwise/embedding-torch", test_embedding_torch);
  g_test_add_func ("/eltwise/embedding-threads", test_embedding_threads);
  g_test_add_func ("/eltwise/embedding-trusted", test_embedding_trusted);
  g_test_add_func ("/eltwise/sum-mean", test_sum_mean);
  g_test_add_func ("/eltwise/sum-threads", test_sum_threads);
  g_test_add_func ("/eltwise/large-threads", test_large_threads);
  g_test_add_func ("/eltwise/errors", test_errors);
  return g_test_run ();
}
