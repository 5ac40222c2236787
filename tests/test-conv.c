/* test-conv.c: conv2d and pooling against finite differences, hand-computed values and
 * PyTorch; shape errors; results independent of the thread count. */
#include "bp-test.h"

#include <math.h>
#include <string.h>

#include "bp-backend.h"
#include "bp-ops-conv.h"
#include "bp-rng.h"

typedef struct {
  const char *name;
  int n, cin, h, w, cout, kh, kw;
  int stride[2], padding[2], dilation[2], groups;
  bool bias;
} ConvCase;

static const ConvCase conv_cases[] = {
  {"3x3 pad 1", 2, 3, 5, 6, 4, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1, true},
  {"stride 2, 3x2 kernel", 3, 2, 7, 6, 3, 3, 2, {2, 2}, {1, 0}, {1, 1}, 1, true},
  {"stride (2, 1), padding 2", 2, 2, 6, 5, 2, 3, 3, {2, 1}, {2, 2}, {1, 1}, 1, false},
  {"dilation 2", 2, 2, 7, 7, 3, 3, 3, {1, 1}, {2, 1}, {2, 2}, 1, true},
  {"groups 2, no bias", 2, 4, 5, 5, 6, 3, 3, {1, 1}, {1, 1}, {1, 1}, 2, false},
  {"depthwise x2", 2, 3, 6, 5, 6, 3, 3, {2, 1}, {1, 1}, {1, 1}, 3, true},
  {"pointwise, groups 2", 3, 4, 4, 3, 6, 1, 1, {1, 1}, {0, 0}, {1, 1}, 2, true},
  {"1x1 stride 2", 2, 3, 5, 5, 2, 1, 1, {2, 2}, {0, 0}, {1, 1}, 1, true},
  {"single input channel, 10 images", 10, 1, 6, 6, 4, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1, true},
  {"kernel as large as the input", 2, 2, 3, 4, 3, 3, 4, {1, 1}, {0, 0}, {1, 1}, 1, true},
  {"4 channels, stride 1 (column matrix)", 2, 4, 5, 5, 3, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1, true},
  {"Winograd, odd sizes", 2, 8, 7, 5, 8, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1, true},
  {"Winograd, no padding, groups 2", 3, 16, 6, 7, 16, 3, 3, {1, 1}, {0, 0}, {1, 1}, 2, true},
  {"Winograd, padding 2", 1, 8, 4, 3, 9, 3, 3, {1, 1}, {2, 2}, {1, 1}, 1, false},
};

static BpConv2dParams
case_params (const ConvCase *c)
{
  BpConv2dParams p = {
    .stride = {c->stride[0], c->stride[1]}, .padding = {c->padding[0], c->padding[1]},
    .dilation = {c->dilation[0], c->dilation[1]}, .groups = c->groups,
  };
  return p;
}

/* x, weight and bias (NULL without bias) of a case, all requiring gradients. */
static void
case_inputs (const ConvCase *c, BpTensor **in)
{
  in[0] = bp_test_rand (4, (int64_t[]){c->n, c->cin, c->h, c->w}, -1, 1, true);
  in[1] = bp_test_rand (4, (int64_t[]){c->cout, c->cin / c->groups, c->kh, c->kw}, -1, 1, true);
  in[2] = c->bias ? bp_test_rand (1, (int64_t[]){c->cout}, -1, 1, true) : NULL;
}

static BpTensor *
fwd_conv (BpTensor **x, void *user)
{
  BpConv2dParams p = case_params (user);
  return bp_conv2d (x[0], x[1], x[2], &p);
}

static void
test_conv_grad (void)
{
  for (size_t i = 0; i < G_N_ELEMENTS (conv_cases); i++) {
    const ConvCase *c = &conv_cases[i];
    g_test_message ("conv2d gradient: %s", c->name);
    bp_rng_seed (100 + i);
    BpTensor *in[3];
    case_inputs (c, in);
    bp_test_check_grad (fwd_conv, 3, in, (void *) c, 1e-2f, 2e-3, 48);
    for (int k = 0; k < 3; k++)
      bp_tensor_unref (in[k]);
  }
}

static void
test_conv_torch (void)
{
  /* all cases in one Python run: case i's inputs are x[4i] (input), x[4i+1] (weight),
   * x[4i+2] (output gradient), x[4i+3] (bias or unused); its outputs y, dx, dw, db */
  enum { N = G_N_ELEMENTS (conv_cases) };
  BpTensor *in[N][3], *ys[N], *gys[N], *args[4 * N], *refs[4 * N];
  GString *code = g_string_new ("out = []\n");
  for (int i = 0; i < N; i++) {
    const ConvCase *c = &conv_cases[i];
    bp_rng_seed (200 + i);
    case_inputs (c, in[i]);
    BpConv2dParams p = case_params (c);
    ys[i] = bp_conv2d (in[i][0], in[i][1], in[i][2], &p);
    g_assert_nonnull (ys[i]);
    gys[i] = bp_test_rand (ys[i]->ndim, ys[i]->shape, -1, 1, false);
    g_assert_cmpint (bp_backward_with (ys[i], gys[i]->data), ==, BP_OK);
    bp_tape_clear ();
    args[4 * i] = in[i][0];
    args[4 * i + 1] = in[i][1];
    args[4 * i + 2] = gys[i];
    args[4 * i + 3] = c->bias ? in[i][2] : gys[i];
    refs[4 * i] = bp_tensor_new_like (ys[i]);
    refs[4 * i + 1] = bp_tensor_new_like (in[i][0]);
    refs[4 * i + 2] = bp_tensor_new_like (in[i][1]);
    refs[4 * i + 3] = bp_tensor_new_1d (c->cout);
    char bias_arg[32] = "None", bias_grad[48];
    g_snprintf (bias_grad, sizeof bias_grad, "torch.zeros(%d)", c->cout);
    if (c->bias) {
      g_snprintf (bias_arg, sizeof bias_arg, "x[%d]", 4 * i + 3);
      g_snprintf (bias_grad, sizeof bias_grad, "x[%d].grad", 4 * i + 3);
    }
    g_string_append_printf (code,
      "y = torch.nn.functional.conv2d(x[%d], x[%d], %s, stride=(%d,%d), padding=(%d,%d), "
      "dilation=(%d,%d), groups=%d)\n"
      "y.backward(x[%d])\n"
      "out += [y, x[%d].grad, x[%d].grad, %s]\n",
      4 * i, 4 * i + 1, bias_arg, c->stride[0], c->stride[1], c->padding[0], c->padding[1],
      c->dilation[0], c->dilation[1], c->groups, 4 * i + 2, 4 * i, 4 * i + 1, bias_grad);
  }
  if (bp_test_torch (code->str, 4 * N, args, 4 * N, refs)) {
    for (int i = 0; i < N; i++) {
      const ConvCase *c = &conv_cases[i];
      g_test_message ("conv2d against PyTorch: %s", c->name);
      bp_test_assert_close ("conv2d forward", ys[i]->data, refs[4 * i]->data, ys[i]->numel, 1e-4);
      bp_test_assert_close ("conv2d dx", in[i][0]->grad, refs[4 * i + 1]->data, in[i][0]->numel,
                            1e-4);
      bp_test_assert_close ("conv2d dw", in[i][1]->grad, refs[4 * i + 2]->data, in[i][1]->numel,
                            1e-4);
      if (c->bias)
        bp_test_assert_close ("conv2d db", in[i][2]->grad, refs[4 * i + 3]->data, c->cout, 1e-4);
    }
  }
  g_string_free (code, TRUE);
  bp_tape_clear ();
  for (int i = 0; i < N; i++) {
    bp_tensor_unref (ys[i]);
    bp_tensor_unref (gys[i]);
    for (int k = 0; k < 4; k++)
      bp_tensor_unref (refs[4 * i + k]);
    for (int k = 0; k < 3; k++)
      bp_tensor_unref (in[i][k]);
  }
}

static void
test_conv_values (void)
{
  /* a hand-computed case: 1 image 1x3x3, kernel 2x2 of ones, bias 0.5, padding 0:
   * each output is its window's sum + 0.5 */
  float xv[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  float wv[4] = {1, 1, 1, 1};
  float bv[1] = {0.5f};
  BpTensor *x = bp_tensor_from_data (4, (int64_t[]){1, 1, 3, 3}, xv);
  BpTensor *w = bp_tensor_from_data (4, (int64_t[]){1, 1, 2, 2}, wv);
  BpTensor *b = bp_tensor_from_data (1, (int64_t[]){1}, bv);
  BpTensor *y = bp_conv2d (x, w, b, NULL);
  g_assert_nonnull (y);
  g_assert_cmpint (y->shape[2], ==, 2);
  g_assert_cmpint (y->shape[3], ==, 2);
  float want[4] = {12.5f, 16.5f, 24.5f, 28.5f};
  bp_test_assert_close ("conv2d values", y->data, want, 4, 1e-6);
  /* nothing requires a gradient: nothing is recorded */
  g_assert_cmpuint (bp_tape_length (), ==, 0);
  bp_tensor_unref (y);
  bp_tensor_unref (x);
  bp_tensor_unref (w);
  bp_tensor_unref (b);

  /* an empty batch: an empty output, and a backward that adds nothing */
  BpTensor *e = bp_tensor_new_4d (0, 8, 5, 5);
  BpTensor *ew = bp_test_rand (4, (int64_t[]){8, 8, 3, 3}, -1, 1, true);
  BpConv2dParams p = bp_conv2d_params_default ();
  p.padding[0] = p.padding[1] = 1;
  BpTensor *ey = bp_conv2d (e, ew, NULL, &p);
  g_assert_nonnull (ey);
  g_assert_cmpint (ey->numel, ==, 0);
  g_assert_cmpint (bp_backward_with (ey, NULL), ==, BP_OK);
  for (int64_t i = 0; i < ew->numel; i++)
    g_assert_cmpfloat (ew->grad[i], ==, 0.0f);
  bp_tape_clear ();
  bp_tensor_unref (ey);
  bp_tensor_unref (e);
  bp_tensor_unref (ew);
}

static void
assert_error_names (const char *op, const char *shape_a, const char *shape_b)
{
  g_assert_cmpint (bp_last_status (), ==, BP_ERR_INVALID);
  const char *msg = bp_last_error ();
  if (!strstr (msg, op) || !strstr (msg, shape_a) || (shape_b && !strstr (msg, shape_b)))
    g_error ("error message \"%s\" should name %s, %s and %s", msg, op, shape_a,
             shape_b ? shape_b : "");
}

static void
test_conv_errors (void)
{
  BpTensor *x = bp_tensor_new_4d (2, 4, 5, 5);
  BpTensor *w = bp_tensor_new_4d (6, 4, 3, 3);
  BpTensor *w2 = bp_tensor_new_4d (6, 2, 3, 3);
  BpTensor *w5 = bp_tensor_new_4d (5, 2, 3, 3);
  BpTensor *big = bp_tensor_new_4d (6, 4, 7, 7);
  BpTensor *b = bp_tensor_new_1d (5);
  BpTensor *x3 = bp_tensor_new (3, (int64_t[]){4, 5, 5});
  BpConv2dParams p = bp_conv2d_params_default ();

  /* weight's input channels differ from the input's */
  g_assert_null (bp_conv2d (x, w2, NULL, &p));
  assert_error_names ("conv2d", "[2, 4, 5, 5]", "[6, 2, 3, 3]");
  /* groups: 4 input channels fit groups 2 only with weight dim 1 = 2 */
  p.groups = 2;
  g_assert_null (bp_conv2d (x, w, NULL, &p));
  assert_error_names ("conv2d", "[2, 4, 5, 5]", "[6, 4, 3, 3]");
  /* output channels not divisible by groups */
  g_assert_null (bp_conv2d (x, w5, NULL, &p));
  assert_error_names ("conv2d", "[2, 4, 5, 5]", "[5, 2, 3, 3]");
  p.groups = 3; /* 4 input channels are not divisible by 3 */
  g_assert_null (bp_conv2d (x, w2, NULL, &p));
  assert_error_names ("conv2d", "[2, 4, 5, 5]", "[6, 2, 3, 3]");
  p.groups = 0;
  g_assert_null (bp_conv2d (x, w, NULL, &p));
  assert_error_names ("conv2d", "[2, 4, 5, 5]", "[6, 4, 3, 3]");
  p = bp_conv2d_params_default ();
  /* kernel larger than the input: output size 0 */
  g_assert_null (bp_conv2d (x, big, NULL, &p));
  assert_error_names ("conv2d", "[2, 4, 5, 5]", "[6, 4, 7, 7]");
  /* ... unless padded enough */
  p.padding[0] = p.padding[1] = 1;
  BpTensor *ok = bp_conv2d (x, big, NULL, &p);
  g_assert_nonnull (ok);
  g_assert_cmpint (ok->shape[2], ==, 1);
  bp_tensor_unref (ok);
  /* bias of the wrong length */
  p = bp_conv2d_params_default ();
  g_assert_null (bp_conv2d (x, w, b, &p));
  assert_error_names ("conv2d", "[5]", "[6, 4, 3, 3]");
  /* non-positive stride and dilation, negative padding */
  p.stride[1] = 0;
  g_assert_null (bp_conv2d (x, w, NULL, &p));
  assert_error_names ("conv2d", "[2, 4, 5, 5]", "[6, 4, 3, 3]");
  p = bp_conv2d_params_default ();
  p.dilation[0] = -1;
  g_assert_null (bp_conv2d (x, w, NULL, &p));
  assert_error_names ("conv2d", "[2, 4, 5, 5]", "[6, 4, 3, 3]");
  p = bp_conv2d_params_default ();
  p.padding[0] = -1;
  g_assert_null (bp_conv2d (x, w, NULL, &p));
  assert_error_names ("conv2d", "[2, 4, 5, 5]", "[6, 4, 3, 3]");
  /* wrong number of dimensions */
  g_assert_null (bp_conv2d (x3, w, NULL, NULL));
  assert_error_names ("conv2d", "[4, 5, 5]", "[6, 4, 3, 3]");

  /* pooling */
  int k2[2] = {2, 2}, k7[2] = {7, 7}, s0[2] = {0, 1}, pad2[2] = {2, 0}, k0[2] = {0, 2};
  g_assert_null (bp_max_pool2d (x, k7, NULL, NULL));
  assert_error_names ("max_pool2d", "[2, 4, 5, 5]", "[7, 7]");
  g_assert_null (bp_max_pool2d (x, k2, s0, NULL));
  assert_error_names ("max_pool2d", "[2, 4, 5, 5]", "[0, 1]");
  g_assert_null (bp_max_pool2d (x, k2, NULL, pad2)); /* more than half the kernel */
  assert_error_names ("max_pool2d", "[2, 4, 5, 5]", "[2, 0]");
  g_assert_null (bp_avg_pool2d (x, k0, NULL, NULL, true));
  assert_error_names ("avg_pool2d", "[2, 4, 5, 5]", "[0, 2]");
  g_assert_null (bp_max_pool2d (x3, k2, NULL, NULL));
  assert_error_names ("max_pool2d", "[4, 5, 5]", NULL);
  g_assert_null (bp_adaptive_avg_pool2d (x, 0, 2));
  assert_error_names ("adaptive_avg_pool2d", "[2, 4, 5, 5]", "[0, 2]");
  g_assert_null (bp_adaptive_avg_pool2d (x3, 1, 1));
  assert_error_names ("adaptive_avg_pool2d", "[4, 5, 5]", NULL);

  BpTensor *all[] = {x, w, w2, w5, big, b, x3};
  for (size_t i = 0; i < G_N_ELEMENTS (all); i++)
    bp_tensor_unref (all[i]);
}

/* ---- pooling ---- */

typedef struct {
  const char *name;
  int n, c, h, w;
  int kernel[2], stride[2], padding[2];
  int mode; /* 0 max, 1 avg counting the padding, 2 avg not counting it, 3 adaptive */
} PoolCase;

static const PoolCase pool_cases[] = {
  {"max 2x2", 2, 3, 6, 6, {2, 2}, {2, 2}, {0, 0}, 0},
  {"max 3x3 stride 2 pad 1", 2, 2, 7, 6, {3, 3}, {2, 2}, {1, 1}, 0},
  {"max 3x2 stride (1, 2) pad (1, 0)", 1, 3, 5, 7, {3, 2}, {1, 2}, {1, 0}, 0},
  {"avg 2x2", 2, 3, 6, 5, {2, 2}, {2, 2}, {0, 0}, 1},
  {"avg 3x3 stride 2 pad 1 counting padding", 2, 2, 7, 6, {3, 3}, {2, 2}, {1, 1}, 1},
  {"avg 3x3 stride 2 pad 1 without padding", 2, 2, 7, 6, {3, 3}, {2, 2}, {1, 1}, 2},
  {"avg 3x2 stride 1 pad (1, 1)", 1, 2, 5, 6, {3, 2}, {1, 1}, {1, 1}, 2},
  {"adaptive 7x5 to 3x2", 2, 3, 7, 5, {3, 2}, {0, 0}, {0, 0}, 3},
  {"adaptive 3x2 to 4x5", 1, 2, 3, 2, {4, 5}, {0, 0}, {0, 0}, 3},
  {"adaptive 6x6 to 1x1", 2, 3, 6, 6, {1, 1}, {0, 0}, {0, 0}, 3},
};

static BpTensor *
fwd_pool (BpTensor **x, void *user)
{
  const PoolCase *c = user;
  switch (c->mode) {
  case 0: return bp_max_pool2d (x[0], c->kernel, c->stride, c->padding);
  case 1: return bp_avg_pool2d (x[0], c->kernel, c->stride, c->padding, true);
  case 2: return bp_avg_pool2d (x[0], c->kernel, c->stride, c->padding, false);
  default: return bp_adaptive_avg_pool2d (x[0], c->kernel[0], c->kernel[1]);
  }
}

/* Input of distinct values 0.05 apart (a shuffled ramp), so that no max-pool window has a
 * tie and a finite-difference step of 1e-3 never moves an arg-max. */
static BpTensor *
pool_input (const PoolCase *c)
{
  BpTensor *x = bp_tensor_new_4d (c->n, c->c, c->h, c->w);
  int64_t *perm = g_new (int64_t, x->numel);
  bp_rng_permutation (perm, x->numel);
  for (int64_t i = 0; i < x->numel; i++)
    x->data[i] = (float) (perm[i] - x->numel / 2) * 0.05f;
  g_free (perm);
  x->requires_grad = true;
  return x;
}

static void
test_pool_grad (void)
{
  for (size_t i = 0; i < G_N_ELEMENTS (pool_cases); i++) {
    const PoolCase *c = &pool_cases[i];
    g_test_message ("pooling gradient: %s", c->name);
    bp_rng_seed (300 + i);
    BpTensor *x = pool_input (c);
    bp_test_check_grad (fwd_pool, 1, &x, (void *) c, 1e-3f, 1e-3, 1000);
    bp_tensor_unref (x);
  }
}

static void
test_pool_torch (void)
{
  GString *code = g_string_new ("out = [\n");
  BpTensor *xs[G_N_ELEMENTS (pool_cases)], *ys[G_N_ELEMENTS (pool_cases)];
  BpTensor *gys[G_N_ELEMENTS (pool_cases)], *refs[2 * G_N_ELEMENTS (pool_cases)];
  BpTensor *args[2 * G_N_ELEMENTS (pool_cases)];
  int n = (int) G_N_ELEMENTS (pool_cases);
  /* all cases in one Python run: x[2i] is case i's input, x[2i+1] its output gradient */
  for (int i = 0; i < n; i++) {
    const PoolCase *c = &pool_cases[i];
    bp_rng_seed (400 + i);
    xs[i] = pool_input (c);
    ys[i] = fwd_pool (&xs[i], (void *) c);
    g_assert_nonnull (ys[i]);
    gys[i] = bp_test_rand (ys[i]->ndim, ys[i]->shape, -1, 1, false);
    g_assert_cmpint (bp_backward_with (ys[i], gys[i]->data), ==, BP_OK);
    bp_tape_clear ();
    args[2 * i] = xs[i];
    args[2 * i + 1] = gys[i];
    refs[2 * i] = bp_tensor_new_like (ys[i]);
    refs[2 * i + 1] = bp_tensor_new_like (xs[i]);
    const char *F = "torch.nn.functional";
    char call[256];
    if (c->mode == 0)
      g_snprintf (call, sizeof call, "%s.max_pool2d(x[%d], (%d,%d), (%d,%d), (%d,%d))", F, 2 * i,
                  c->kernel[0], c->kernel[1], c->stride[0], c->stride[1], c->padding[0],
                  c->padding[1]);
    else if (c->mode <= 2)
      g_snprintf (call, sizeof call, "%s.avg_pool2d(x[%d], (%d,%d), (%d,%d), (%d,%d), "
                  "count_include_pad=%s)", F, 2 * i, c->kernel[0], c->kernel[1], c->stride[0],
                  c->stride[1], c->padding[0], c->padding[1], c->mode == 1 ? "True" : "False");
    else
      g_snprintf (call, sizeof call, "%s.adaptive_avg_pool2d(x[%d], (%d,%d))", F, 2 * i,
                  c->kernel[0], c->kernel[1]);
    g_string_append_printf (code, "  (lambda y: (y.backward(x[%d]), y)[1])(%s), x[%d].grad,\n",
                            2 * i + 1, call, 2 * i);
  }
  g_string_append (code, "]\n");
  if (bp_test_torch (code->str, 2 * n, args, 2 * n, refs)) {
    for (int i = 0; i < n; i++) {
      g_test_message ("pooling against PyTorch: %s", pool_cases[i].name);
      bp_test_assert_close ("pooling forward", ys[i]->data, refs[2 * i]->data, ys[i]->numel, 1e-4);
      bp_test_assert_close ("pooling dx", xs[i]->grad, refs[2 * i + 1]->data, xs[i]->numel, 1e-4);
    }
  }
  g_string_free (code, TRUE);
  bp_tape_clear ();
  for (int i = 0; i < n; i++) {
    bp_tensor_unref (xs[i]);
    bp_tensor_unref (ys[i]);
    bp_tensor_unref (gys[i]);
    bp_tensor_unref (refs[2 * i]);
    bp_tensor_unref (refs[2 * i + 1]);
  }
}

static void
test_pool_values (void)
{
  /* 1x1x4x4 ramp: 2x2 max takes each window's bottom-right, average its mean */
  float xv[16];
  for (int i = 0; i < 16; i++)
    xv[i] = (float) i;
  BpTensor *x = bp_tensor_from_data (4, (int64_t[]){1, 1, 4, 4}, xv);
  x->requires_grad = true;
  int k2[2] = {2, 2};
  BpTensor *m = bp_max_pool2d (x, k2, NULL, NULL);
  float want_max[4] = {5, 7, 13, 15};
  bp_test_assert_close ("max_pool2d values", m->data, want_max, 4, 0);
  float ones[4] = {1, 1, 1, 1};
  g_assert_cmpint (bp_backward_with (m, ones), ==, BP_OK);
  for (int i = 0; i < 16; i++)
    g_assert_cmpfloat (x->grad[i], ==, (i == 5 || i == 7 || i == 13 || i == 15) ? 1.0f : 0.0f);
  bp_tape_clear ();
  BpTensor *a = bp_avg_pool2d (x, k2, NULL, NULL, true);
  float want_avg[4] = {2.5f, 4.5f, 10.5f, 12.5f};
  bp_test_assert_close ("avg_pool2d values", a->data, want_avg, 4, 1e-6);
  /* ties: the first maximum in the window gets the gradient, as in PyTorch */
  float tie[4] = {3, 3, 3, 3};
  BpTensor *t = bp_tensor_from_data (4, (int64_t[]){1, 1, 2, 2}, tie);
  t->requires_grad = true;
  BpTensor *tm = bp_max_pool2d (t, k2, NULL, NULL);
  g_assert_cmpint (bp_backward_with (tm, ones), ==, BP_OK);
  float want_tie[4] = {1, 0, 0, 0};
  bp_test_assert_close ("max_pool2d tie", t->grad, want_tie, 4, 0);
  bp_tape_clear ();
  /* NaN wins its window, as in PyTorch, in the 2x2 path and the general one (3x3) */
  float with_nan[9] = {1, NAN, 3, 2, 0, 0, 0, 0, 0};
  BpTensor *nx = bp_tensor_from_data (4, (int64_t[]){1, 1, 3, 3}, with_nan);
  int k3[2] = {3, 3};
  BpTensor *n2 = bp_max_pool2d (nx, k2, NULL, NULL), *n3 = bp_max_pool2d (nx, k3, NULL, NULL);
  g_assert_true (isnan (n2->data[0]));
  g_assert_true (isnan (n3->data[0]));
  bp_tensor_unref (nx);
  bp_tensor_unref (n2);
  bp_tensor_unref (n3);
  /* without gradients max pooling records nothing (and keeps no indices) */
  bool was = bp_set_grad_enabled (false);
  BpTensor *m2 = bp_max_pool2d (x, k2, NULL, NULL);
  g_assert_cmpuint (bp_tape_length (), ==, 0);
  bp_test_assert_close ("max_pool2d without grad", m2->data, want_max, 4, 0);
  bp_set_grad_enabled (was);
  BpTensor *all[] = {x, m, a, t, tm, m2};
  for (size_t i = 0; i < G_N_ELEMENTS (all); i++)
    bp_tensor_unref (all[i]);
}

/* ---- thread count ---- */

typedef struct {
  float *y, *dx, *dw, *db;
} ConvRun;

static ConvRun
conv_run (BpTensor **in, const BpConv2dParams *p, const float *gy)
{
  for (int k = 0; k < 3; k++)
    bp_tensor_zero_grad (in[k]);
  BpTensor *y = bp_conv2d (in[0], in[1], in[2], p);
  g_assert_nonnull (y);
  g_assert_cmpint (bp_backward_with (y, gy), ==, BP_OK);
  ConvRun r = {
    g_memdup2 (y->data, y->numel * sizeof (float)),
    g_memdup2 (in[0]->grad, in[0]->numel * sizeof (float)),
    g_memdup2 (in[1]->grad, in[1]->numel * sizeof (float)),
    g_memdup2 (in[2]->grad, in[2]->numel * sizeof (float)),
  };
  bp_tape_clear ();
  bp_tensor_unref (y);
  return r;
}

static void
test_conv_threads (void)
{
  /* SimpleCNN-like layers, smaller: identical bits with 1 and 2 threads */
  static const ConvCase cases[] = {
    {"first layer", 16, 1, 28, 28, 8, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1, true},
    {"middle layer", 16, 8, 14, 14, 16, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1, true},
    {"one image", 1, 8, 14, 14, 16, 3, 3, {2, 2}, {1, 1}, {1, 1}, 2, true},
    {"pointwise", 9, 8, 7, 7, 16, 1, 1, {1, 1}, {0, 0}, {1, 1}, 1, true},
  };
  for (size_t i = 0; i < G_N_ELEMENTS (cases); i++) {
    const ConvCase *c = &cases[i];
    bp_rng_seed (500 + i);
    BpTensor *in[3];
    case_inputs (c, in);
    BpConv2dParams p = case_params (c);
    BpTensor *y = bp_conv2d (in[0], in[1], in[2], &p);
    BpTensor *gy = bp_test_rand (y->ndim, y->shape, -1, 1, false);
    bp_set_num_threads (1);
    ConvRun one = conv_run (in, &p, gy->data);
    bp_set_num_threads (2);
    ConvRun two = conv_run (in, &p, gy->data);
    bp_set_num_threads (1);
    g_assert_cmpmem (one.y, y->numel * sizeof (float), two.y, y->numel * sizeof (float));
    g_assert_cmpmem (one.dx, in[0]->numel * sizeof (float), two.dx, in[0]->numel * sizeof (float));
    g_assert_cmpmem (one.dw, in[1]->numel * sizeof (float), two.dw, in[1]->numel * sizeof (float));
    g_assert_cmpmem (one.db, in[2]->numel * sizeof (float), two.db, in[2]->numel * sizeof (float));
    /* and they agree with the single-threaded forward above */
    bp_test_assert_close ("conv2d repeat", one.y, y->data, y->numel, 0);
    ConvRun *runs[] = {&one, &two};
    for (int k = 0; k < 2; k++) {
      g_free (runs[k]->y);
      g_free (runs[k]->dx);
      g_free (runs[k]->dw);
      g_free (runs[k]->db);
    }
    bp_tape_clear ();
    bp_tensor_unref (y);
    bp_tensor_unref (gy);
    for (int k = 0; k < 3; k++)
      bp_tensor_unref (in[k]);
  }
}

static void
test_conv_large_images (void)
{
  /* 2 RGB images of 600x600 (first-layer shape, larger than the 4 MiB the direct path pads
   * at a time): the weight gradient of the batch is the sum of the per-image ones */
  bp_rng_seed (600);
  BpTensor *x = bp_test_rand (4, (int64_t[]){2, 3, 600, 600}, -1, 1, false);
  BpTensor *w = bp_test_rand (4, (int64_t[]){2, 3, 3, 3}, -1, 1, true);
  BpConv2dParams p = bp_conv2d_params_default ();
  p.padding[0] = p.padding[1] = 1;
  BpTensor *y = bp_conv2d (x, w, NULL, &p);
  BpTensor *gy = bp_test_rand (y->ndim, y->shape, -1, 1, false);
  g_assert_cmpint (bp_backward_with (y, gy->data), ==, BP_OK);
  float both[54];
  memcpy (both, w->grad, sizeof both);
  bp_tape_clear ();
  bp_tensor_zero_grad (w);
  int64_t image = 3 * 600 * 600, out_image = 2 * 600 * 600;
  for (int b = 0; b < 2; b++) {
    BpTensor *xb = bp_tensor_from_data (4, (int64_t[]){1, 3, 600, 600}, x->data + b * image);
    BpTensor *yb = bp_conv2d (xb, w, NULL, &p);
    bp_test_assert_close ("conv2d per image", yb->data, y->data + b * out_image, out_image, 0);
    g_assert_cmpint (bp_backward_with (yb, gy->data + b * out_image), ==, BP_OK);
    bp_tape_clear ();
    bp_tensor_unref (xb);
    bp_tensor_unref (yb);
  }
  /* sums of 720000 products each, added in another order */
  bp_test_assert_close ("conv2d weight gradient over blocks", both, w->grad, 54, 1e-3);
  bp_tensor_unref (x);
  bp_tensor_unref (w);
  bp_tensor_unref (y);
  bp_tensor_unref (gy);
}

static void
test_conv_portable (void)
{
  /* the loops for CPUs without AVX2 + FMA, forced by BP_CPU_NO_AVX2 in a child process (the
   * engine reads it once) */
  if (g_test_subprocess ()) {
    test_conv_grad ();
    test_conv_torch ();
    test_pool_values ();
    test_pool_grad ();
    return;
  }
  g_setenv ("BP_CPU_NO_AVX2", "1", TRUE);
  g_test_trap_subprocess (NULL, 120 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_unsetenv ("BP_CPU_NO_AVX2");
  g_test_trap_assert_passed ();
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  bp_set_num_threads (1);
  g_test_add_func ("/conv/values", test_conv_values);
  g_test_add_func ("/conv/grad", test_conv_grad);
  g_test_add_func ("/conv/torch", test_conv_torch);
  g_test_add_func ("/conv/errors", test_conv_errors);
  g_test_add_func ("/conv/threads", test_conv_threads);
  g_test_add_func ("/conv/portable", test_conv_portable);
  g_test_add_func ("/conv/large-images", test_conv_large_images);
  g_test_add_func ("/pool/values", test_pool_values);
  g_test_add_func ("/pool/grad", test_pool_grad);
  g_test_add_func ("/pool/torch", test_pool_torch);
  return g_test_run ();
}
