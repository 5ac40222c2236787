/* test-norm.c: batch norm and layer norm against finite differences and PyTorch. */
#include "bp-test.h"

#include <math.h>
#include <string.h>

#include "bp-backend.h"
#include "bp-ops-norm.h"
#include "bp-rng.h"

typedef struct {
  bool training;
  bool affine;
  float momentum;
} BnCase;

/* inputs: x, weight, bias, running_mean, running_var (the last two may be NULL in training) */
static BpTensor *
fwd_batch_norm (BpTensor **x, void *user)
{
  BnCase *bc = user;
  return bp_batch_norm (x[0], bc->affine ? x[1] : NULL, bc->affine ? x[2] : NULL, x[3], x[4],
                        bc->training, bc->momentum, 1e-5f);
}

static void
check_batch_norm_grad (int ndim, const int64_t *shape, bool training, bool affine)
{
  int64_t c = shape[1];
  BpTensor *in[] = {bp_test_rand (ndim, shape, -1, 1, true),
                    bp_test_rand (1, (int64_t[]){c}, 0.5f, 1.5f, affine),
                    bp_test_rand (1, (int64_t[]){c}, -0.5f, 0.5f, affine),
                    training ? NULL : bp_test_rand (1, (int64_t[]){c}, -0.3f, 0.3f, false),
                    training ? NULL : bp_test_rand (1, (int64_t[]){c}, 0.5f, 1.5f, false)};
  BnCase bc = {training, affine, 0.1f};
  bp_test_check_grad (fwd_batch_norm, 5, in, &bc, 1e-2f, 1e-2, 48);
  for (int k = 0; k < 5; k++)
    bp_tensor_unref (in[k]);
}

static void
test_batch_norm_grad (void)
{
  bp_rng_seed (11);
  /* (N,C) and (N,C,L) with short L take the row path, (N,C,H,W) the channel path */
  check_batch_norm_grad (2, (int64_t[]){6, 5}, true, true);
  check_batch_norm_grad (3, (int64_t[]){3, 4, 5}, true, true);
  check_batch_norm_grad (3, (int64_t[]){2, 3, 17}, true, true);
  check_batch_norm_grad (4, (int64_t[]){3, 2, 4, 5}, true, true);
  check_batch_norm_grad (4, (int64_t[]){2, 3, 4, 5}, true, false);
  check_batch_norm_grad (2, (int64_t[]){6, 5}, true, false);
  /* eval mode: the affine map with the running statistics */
  check_batch_norm_grad (2, (int64_t[]){6, 5}, false, true);
  check_batch_norm_grad (4, (int64_t[]){2, 3, 4, 5}, false, true);
}

/* ---- PyTorch parity: every case runs two training calls (running statistics updated twice),
 * the backward of the second, then an eval call and its backward; all cases of a test go to
 * PyTorch in one script (starting Python is the slow part). ---- */

typedef struct {
  int ndim;
  int64_t shape[4];
  bool affine;
  bool running; /* false: training without running statistics (track_running_stats=False) */
} BnCaseShape;

#define BN_IN 9  /* x1, w, b, rm0, rv0, x2, gy, x3, gye */
#define BN_OUT 11 /* y1, y2, dx2, dw, db, rm, rv, ye, dxe, dwe, dbe */

typedef struct {
  BpTensor *in[BN_IN];
  BpTensor *got[BN_OUT];
  BpTensor *ref[BN_OUT];
} BnRun;

static const float bn_momentum = 0.3f;

static BpTensor *
copy_of (const BpTensor *t, const float *data)
{
  BpTensor *r = bp_tensor_new (t->ndim, t->shape);
  memcpy (r->data, data, (size_t) t->numel * sizeof (float));
  return r;
}

static void
bn_run_engine (BnRun *run, const BnCaseShape *cs)
{
  int64_t c = cs->shape[1];
  BpTensor **in = run->in, **got = run->got;
  in[0] = bp_test_rand (cs->ndim, cs->shape, -2, 3, true);
  in[1] = bp_test_rand (1, (int64_t[]){c}, 0.5f, 1.5f, cs->affine);
  in[2] = bp_test_rand (1, (int64_t[]){c}, -0.5f, 0.5f, cs->affine);
  in[3] = bp_test_rand (1, (int64_t[]){c}, -0.2f, 0.2f, false);
  in[4] = bp_test_rand (1, (int64_t[]){c}, 0.5f, 1.5f, false);
  in[5] = bp_test_rand (cs->ndim, cs->shape, -1, 1, true);
  in[6] = bp_test_rand (cs->ndim, cs->shape, -1, 1, false);
  in[7] = bp_test_rand (cs->ndim, cs->shape, -1, 2, true);
  in[8] = bp_test_rand (cs->ndim, cs->shape, -1, 1, false);
  BpTensor *x1 = in[0], *w = in[1], *b = in[2], *x2 = in[5], *x3 = in[7];
  BpTensor *wa = cs->affine ? w : NULL, *ba = cs->affine ? b : NULL;
  BpTensor *rm = copy_of (in[3], in[3]->data), *rv = copy_of (in[4], in[4]->data);

  got[0] = bp_batch_norm (x1, wa, ba, cs->running ? rm : NULL, cs->running ? rv : NULL, true,
                          bn_momentum, 1e-5f);
  got[1] = bp_batch_norm (x2, wa, ba, cs->running ? rm : NULL, cs->running ? rv : NULL, true,
                          bn_momentum, 1e-5f);
  g_assert_nonnull (got[0]);
  g_assert_nonnull (got[1]);
  g_assert_cmpint (bp_backward_with (got[1], in[6]->data), ==, BP_OK);
  g_assert_null (x1->grad);
  got[2] = copy_of (x2, x2->grad);
  got[3] = cs->affine ? copy_of (w, w->grad) : bp_tensor_new_1d (c);
  got[4] = cs->affine ? copy_of (b, b->grad) : bp_tensor_new_1d (c);
  bp_tensor_zero_grad (w);
  bp_tensor_zero_grad (b);
  bp_tape_clear ();
  got[5] = rm;
  got[6] = rv;
  got[7] = bp_batch_norm (x3, wa, ba, rm, rv, false, bn_momentum, 1e-5f);
  g_assert_nonnull (got[7]);
  g_assert_cmpint (bp_backward_with (got[7], in[8]->data), ==, BP_OK);
  got[8] = copy_of (x3, x3->grad);
  got[9] = cs->affine ? copy_of (w, w->grad) : bp_tensor_new_1d (c);
  got[10] = cs->affine ? copy_of (b, b->grad) : bp_tensor_new_1d (c);
  bp_tape_clear ();
  for (int k = 0; k < BN_OUT; k++)
    run->ref[k] = bp_tensor_new_like (got[k]);
}

static const char bn_torch_code[] =
    "import torch.nn.functional as F\n"
    "def bn_case(x, affine, running, momentum):\n"
    "    w, b = (x[1], x[2]) if affine else (None, None)\n"
    "    rm, rv = x[3].detach().clone(), x[4].detach().clone()\n"
    "    trm, trv = (rm, rv) if running else (None, None)\n"
    "    y1 = F.batch_norm(x[0], trm, trv, w, b, training=True, momentum=momentum, eps=1e-5)\n"
    "    y2 = F.batch_norm(x[5], trm, trv, w, b, training=True, momentum=momentum, eps=1e-5)\n"
    "    y2.backward(x[6])\n"
    "    z = torch.zeros(x[1].shape)\n"
    "    dw, db = (x[1].grad.clone(), x[2].grad.clone()) if affine else (z, z)\n"
    "    x[1].grad = None; x[2].grad = None\n"
    "    ye = F.batch_norm(x[7], rm, rv, w, b, training=False, eps=1e-5)\n"
    "    ye.backward(x[8])\n"
    "    dwe, dbe = (x[1].grad, x[2].grad) if affine else (z, z)\n"
    "    return [y1, y2, x[5].grad, dw, db, rm, rv, ye, x[7].grad, dwe, dbe]\n"
    "out = []\n";

static void
check_batch_norm_torch (int n_cases, const BnCaseShape *cases)
{
  BnRun *runs = g_new0 (BnRun, n_cases);
  BpTensor **args = g_new (BpTensor *, n_cases * BN_IN);
  BpTensor **refs = g_new (BpTensor *, n_cases * BN_OUT);
  GString *code = g_string_new (bn_torch_code);
  for (int k = 0; k < n_cases; k++) {
    bn_run_engine (&runs[k], &cases[k]);
    memcpy (args + k * BN_IN, runs[k].in, sizeof runs[k].in);
    memcpy (refs + k * BN_OUT, runs[k].ref, sizeof runs[k].ref);
    g_string_append_printf (code, "out += bn_case(x[%d:%d], %s, %s, %.9g)\n", k * BN_IN,
                            (k + 1) * BN_IN, cases[k].affine ? "True" : "False",
                            cases[k].running ? "True" : "False", (double) bn_momentum);
  }
  static const char *names[BN_OUT] = {"y1", "y2", "dx", "dweight", "dbias", "running_mean",
                                      "running_var", "eval y", "eval dx", "eval dweight",
                                      "eval dbias"};
  static const double tols[BN_OUT] = {1e-4, 1e-4, 2e-4, 2e-4, 2e-4, 1e-5, 1e-5, 1e-4, 1e-4,
                                      2e-4, 2e-4};
  if (bp_test_torch (code->str, n_cases * BN_IN, args, n_cases * BN_OUT, refs)) {
    for (int k = 0; k < n_cases; k++) {
      for (int o = 0; o < BN_OUT; o++) {
        char sx[64];
        char *what = g_strdup_printf ("batch_norm case %d (%s) %s", k,
                                      bp_shape_str (runs[k].in[0], sx, sizeof sx), names[o]);
        bp_test_assert_close (what, runs[k].got[o]->data, runs[k].ref[o]->data,
                              runs[k].got[o]->numel, tols[o]);
        g_free (what);
      }
    }
  }
  for (int k = 0; k < n_cases; k++) {
    for (int o = 0; o < BN_IN; o++)
      bp_tensor_unref (runs[k].in[o]);
    for (int o = 0; o < BN_OUT; o++) {
      bp_tensor_unref (runs[k].got[o]);
      bp_tensor_unref (runs[k].ref[o]);
    }
  }
  g_string_free (code, TRUE);
  g_free (args);
  g_free (refs);
  g_free (runs);
}

static void
test_batch_norm_2d_torch (void)
{
  bp_rng_seed (12);
  const BnCaseShape cases[] = {
    {4, {8, 4, 5, 6}, true, true},
    {4, {3, 5, 2, 3}, true, true}, /* H*W < 16: the row path */
    {4, {4, 3, 4, 5}, false, true},
    {4, {3, 4, 4, 4}, true, false},
  };
  check_batch_norm_torch (G_N_ELEMENTS (cases), cases);
}

static void
test_batch_norm_1d_torch (void)
{
  bp_rng_seed (13);
  const BnCaseShape cases[] = {
    {2, {16, 6}, true, true},
    {2, {6, 300}, true, true}, /* several channel blocks on the row path */
    {3, {4, 5, 7}, true, true},
    {3, {3, 4, 40}, true, true},
    {2, {10, 4}, false, true},
    {2, {5, 3}, false, false},
  };
  check_batch_norm_torch (G_N_ELEMENTS (cases), cases);
}
/* Forward and backward twice without zeroing: the gradients must double (accumulation). */
static void
test_norm_accumulates (void)
{
  bp_rng_seed (15);
  BpTensor *x = bp_test_rand (4, (int64_t[]){2, 3, 4, 4}, -1, 1, true);
  BpTensor *w = bp_test_rand (1, (int64_t[]){3}, 0.5f, 1.5f, true);
  BpTensor *b = bp_test_rand (1, (int64_t[]){3}, -1, 1, true);
  BpTensor *gy = bp_test_rand (4, (int64_t[]){2, 3, 4, 4}, -1, 1, false);
  BpTensor *lw = bp_test_rand (2, (int64_t[]){4, 4}, 0.5f, 1.5f, true);
  float first[3][96];
  for (int pass = 0; pass < 2; pass++) {
    for (int op = 0; op < 2; op++) {
      BpTensor *y = op == 0 ? bp_batch_norm (x, w, b, NULL, NULL, true, 0.1f, 1e-5f)
                            : bp_layer_norm (x, 2, lw, NULL, 1e-5f);
      g_assert_nonnull (y);
      g_assert_cmpint (bp_backward_with (y, gy->data), ==, BP_OK);
      bp_tape_clear ();
      bp_tensor_unref (y);
    }
    if (pass == 0) {
      memcpy (first[0], x->grad, sizeof first[0]);
      memcpy (first[1], w->grad, 3 * sizeof (float));
      memcpy (first[2], lw->grad, 16 * sizeof (float));
      continue;
    }
    for (int i = 0; i < 96; i++)
      first[0][i] *= 2.0f;
    for (int i = 0; i < 3; i++)
      first[1][i] *= 2.0f;
    for (int i = 0; i < 16; i++)
      first[2][i] *= 2.0f;
    bp_test_assert_close ("dx accumulated", x->grad, first[0], 96, 1e-5);
    bp_test_assert_close ("batch_norm dweight accumulated", w->grad, first[1], 3, 1e-5);
    bp_test_assert_close ("layer_norm dweight accumulated", lw->grad, first[2], 16, 1e-5);
  }
  BpTensor *all[] = {x, w, b, gy, lw};
  for (size_t k = 0; k < G_N_ELEMENTS (all); k++)
    bp_tensor_unref (all[k]);
}

/* Forward + backward with one thread and with two give the same bits. */
static void
run_bn_threads (int ndim, const int64_t *shape, int threads, float *out)
{
  bp_set_num_threads (threads);
  bp_rng_seed (16);
  int64_t c = shape[1];
  BpTensor *x = bp_test_rand (ndim, shape, -1, 1, true);
  BpTensor *w = bp_test_rand (1, (int64_t[]){c}, 0.5f, 1.5f, true);
  BpTensor *b = bp_test_rand (1, (int64_t[]){c}, -1, 1, true);
  BpTensor *rm = bp_tensor_new_1d (c), *rv = bp_tensor_new_1d (c);
  bp_tensor_fill (rv, 1.0f);
  BpTensor *gy = bp_test_rand (ndim, shape, -1, 1, false);
  BpTensor *y = bp_batch_norm (x, w, b, rm, rv, true, 0.1f, 1e-5f);
  g_assert_nonnull (y);
  g_assert_cmpint (bp_backward_with (y, gy->data), ==, BP_OK);
  int64_t n = x->numel;
  memcpy (out, y->data, (size_t) n * sizeof (float));
  memcpy (out + n, x->grad, (size_t) n * sizeof (float));
  memcpy (out + 2 * n, w->grad, (size_t) c * sizeof (float));
  memcpy (out + 2 * n + c, rv->data, (size_t) c * sizeof (float));
  bp_tape_clear ();
  BpTensor *all[] = {x, w, b, rm, rv, gy, y};
  for (size_t k = 0; k < G_N_ELEMENTS (all); k++)
    bp_tensor_unref (all[k]);
}

static void
test_batch_norm_threads (void)
{
  const int64_t shapes[2][4] = {{8, 16, 20, 20}, {600, 100, 1, 1}};
  const int ndims[2] = {4, 2};
  for (int k = 0; k < 2; k++) {
    int64_t n = bp_shape_numel (ndims[k], shapes[k]), total = 2 * n + 2 * shapes[k][1];
    float *one = g_new (float, total), *two = g_new (float, total);
    run_bn_threads (ndims[k], shapes[k], 1, one);
    run_bn_threads (ndims[k], shapes[k], 2, two);
    g_assert_cmpmem (one, total * sizeof (float), two, total * sizeof (float));
    g_free (one);
    g_free (two);
  }
  bp_set_num_threads (1);
}

static void
test_batch_norm_errors (void)
{
  BpTensor *x1 = bp_tensor_new_1d (4);
  BpTensor *x2 = bp_tensor_new_2d (4, 3);
  BpTensor *x5 = bp_tensor_new (5, (int64_t[]){2, 3, 2, 2, 2});
  BpTensor *single = bp_tensor_new_2d (1, 3);
  BpTensor *v3 = bp_tensor_new_1d (3), *v4 = bp_tensor_new_1d (4);
  BpTensor *m3 = bp_tensor_new_2d (1, 3);

  g_assert_null (bp_batch_norm (x1, NULL, NULL, NULL, NULL, true, 0.1f, 1e-5f));
  g_assert_cmpint (bp_last_status (), ==, BP_ERR_INVALID);
  g_assert_nonnull (strstr (bp_last_error (), "[4]"));
  g_assert_null (bp_batch_norm (x5, NULL, NULL, NULL, NULL, true, 0.1f, 1e-5f));
  g_assert_nonnull (strstr (bp_last_error (), "[2, 3, 2, 2, 2]"));
  /* weight / bias / running statistics of the wrong length or rank */
  g_assert_null (bp_batch_norm (x2, v4, NULL, NULL, NULL, true, 0.1f, 1e-5f));
  g_assert_nonnull (strstr (bp_last_error (), "[4, 3]"));
  g_assert_null (bp_batch_norm (x2, NULL, m3, NULL, NULL, true, 0.1f, 1e-5f));
  g_assert_null (bp_batch_norm (x2, v3, v3, v4, v3, true, 0.1f, 1e-5f));
  /* one running statistic without the other, eval without them */
  g_assert_null (bp_batch_norm (x2, NULL, NULL, v3, NULL, true, 0.1f, 1e-5f));
  g_assert_null (bp_batch_norm (x2, NULL, NULL, NULL, NULL, false, 0.1f, 1e-5f));
  g_assert_nonnull (strstr (bp_last_error (), "eval"));
  /* a single value per channel cannot be normalised in training (as PyTorch) */
  g_assert_null (bp_batch_norm (single, NULL, NULL, NULL, NULL, true, 0.1f, 1e-5f));
  g_assert_nonnull (strstr (bp_last_error (), "[1, 3]"));
  g_assert_null (bp_batch_norm (x2, NULL, NULL, NULL, NULL, true, 1.5f, 1e-5f));
  /* ... but is fine in eval */
  bp_tensor_fill (v3, 1.0f);
  BpTensor *y = bp_batch_norm (single, NULL, NULL, v3, v3, false, 0.1f, 0.0f);
  g_assert_nonnull (y);
  /* x = 0, mean = 1, var = 1: (0 - 1) / 1 */
  for (int k = 0; k < 3; k++)
    g_assert_cmpfloat_with_epsilon (y->data[k], -1.0f, 1e-6);
  BpTensor *all[] = {x1, x2, x5, single, v3, v4, m3, y};
  for (size_t k = 0; k < G_N_ELEMENTS (all); k++)
    bp_tensor_unref (all[k]);
}

typedef struct {
  int dims;
  bool affine;
} LnCase;

static BpTensor *
fwd_layer_norm (BpTensor **x, void *user)
{
  LnCase *lc = user;
  return bp_layer_norm (x[0], lc->dims, lc->affine ? x[1] : NULL, lc->affine ? x[2] : NULL,
                        1e-5f);
}

static void
test_layer_norm_grad (void)
{
  bp_rng_seed (21);
  for (int dims = 1; dims <= 2; dims++) {
    for (int affine = 0; affine < 2; affine++) {
      const int64_t shape[] = {3, 4, 5};
      BpTensor *in[] = {bp_test_rand (3, shape, -1, 1, true),
                        bp_test_rand (dims, shape + 3 - dims, 0.5f, 1.5f, affine),
                        bp_test_rand (dims, shape + 3 - dims, -0.5f, 0.5f, affine)};
      LnCase lc = {dims, affine};
      bp_test_check_grad (fwd_layer_norm, 3, in, &lc, 1e-2f, 1e-2, 48);
      for (int k = 0; k < 3; k++)
        bp_tensor_unref (in[k]);
    }
  }
}

/* All cases in one PyTorch script: x, weight, bias, grad_out per case. */
static void
test_layer_norm_torch (void)
{
  bp_rng_seed (22);
  const struct {
    int ndim, dims;
    int64_t shape[3];
  } cases[] = {
    {3, 2, {6, 5, 8}},
    {2, 1, {9, 70}}, /* several column blocks in the weight gradient */
    {3, 3, {2, 3, 16}},
  };
  enum { N_CASES = G_N_ELEMENTS (cases) };
  BpTensor *args[N_CASES * 4], *got[N_CASES * 4], *ref[N_CASES * 4];
  GString *code = g_string_new ("out = []\n");
  for (int k = 0; k < N_CASES; k++) {
    int ndim = cases[k].ndim, dims = cases[k].dims;
    const int64_t *shape = cases[k].shape, *trail = shape + ndim - dims;
    BpTensor *x = bp_test_rand (ndim, shape, -2, 3, true);
    BpTensor *w = bp_test_rand (dims, trail, 0.5f, 1.5f, true);
    BpTensor *b = bp_test_rand (dims, trail, -0.5f, 0.5f, true);
    BpTensor *gy = bp_test_rand (ndim, shape, -1, 1, false);
    BpTensor *y = bp_layer_norm (x, dims, w, b, 1e-5f);
    g_assert_nonnull (y);
    g_assert_cmpint (bp_backward_with (y, gy->data), ==, BP_OK);
    bp_tape_clear ();
    BpTensor *in[] = {x, w, b, gy};
    memcpy (args + 4 * k, in, sizeof in);
    got[4 * k] = y;
    for (int o = 1; o < 4; o++) {
      got[4 * k + o] = bp_tensor_new_like (in[o - 1]);
      memcpy (got[4 * k + o]->data, in[o - 1]->grad, (size_t) in[o - 1]->numel * sizeof (float));
    }
    for (int o = 0; o < 4; o++)
      ref[4 * k + o] = bp_tensor_new_like (got[4 * k + o]);
    g_string_append_printf (code,
                            "a = x[%d:%d]\n"
                            "y = torch.nn.functional.layer_norm(a[0], a[1].shape, a[1], a[2], eps=1e-5)\n"
                            "y.backward(a[3])\n"
                            "out += [y, a[0].grad, a[1].grad, a[2].grad]\n",
                            4 * k, 4 * k + 4);
  }
  static const char *names[] = {"y", "dx", "dweight", "dbias"};
  if (bp_test_torch (code->str, N_CASES * 4, args, N_CASES * 4, ref)) {
    for (int k = 0; k < N_CASES * 4; k++) {
      char *what = g_strdup_printf ("layer_norm case %d %s", k / 4, names[k % 4]);
      bp_test_assert_close (what, got[k]->data, ref[k]->data, got[k]->numel, k % 4 ? 2e-4 : 1e-4);
      g_free (what);
    }
  }
  for (int k = 0; k < N_CASES * 4; k++) {
    bp_tensor_unref (args[k]);
    bp_tensor_unref (got[k]);
    bp_tensor_unref (ref[k]);
  }
  g_string_free (code, TRUE);
}

static void
test_layer_norm_errors (void)
{
  BpTensor *x = bp_tensor_new (3, (int64_t[]){2, 3, 4});
  BpTensor *w4 = bp_tensor_new_1d (4), *w3 = bp_tensor_new_1d (3);
  BpTensor *w34 = bp_tensor_new_2d (3, 4), *empty = bp_tensor_new (2, (int64_t[]){2, 0});
  g_assert_null (bp_layer_norm (x, 0, NULL, NULL, 1e-5f));
  g_assert_cmpint (bp_last_status (), ==, BP_ERR_INVALID);
  g_assert_nonnull (strstr (bp_last_error (), "[2, 3, 4]"));
  g_assert_null (bp_layer_norm (x, 4, NULL, NULL, 1e-5f));
  g_assert_null (bp_layer_norm (x, 1, w3, NULL, 1e-5f));
  g_assert_nonnull (strstr (bp_last_error (), "[3]"));
  g_assert_null (bp_layer_norm (x, 1, w4, w3, 1e-5f));
  g_assert_null (bp_layer_norm (x, 2, w4, NULL, 1e-5f));
  g_assert_null (bp_layer_norm (empty, 1, NULL, NULL, 1e-5f));
  BpTensor *y = bp_layer_norm (x, 2, w34, NULL, 1e-5f);
  g_assert_nonnull (y);
  BpTensor *all[] = {x, w4, w3, w34, empty, y};
  for (size_t k = 0; k < G_N_ELEMENTS (all); k++)
    bp_tensor_unref (all[k]);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  bp_set_num_threads (1);
  g_test_add_func ("/norm/batch-norm-grad", test_batch_norm_grad);
  g_test_add_func ("/norm/batch-norm-2d-torch", test_batch_norm_2d_torch);
  g_test_add_func ("/norm/batch-norm-1d-torch", test_batch_norm_1d_torch);
  g_test_add_func ("/norm/batch-norm-threads", test_batch_norm_threads);
  g_test_add_func ("/norm/batch-norm-errors", test_batch_norm_errors);
  g_test_add_func ("/norm/layer-norm-grad", test_layer_norm_grad);
  g_test_add_func ("/norm/layer-norm-torch", test_layer_norm_torch);
  g_test_add_func ("/norm/layer-norm-errors", test_layer_norm_errors);
  g_test_add_func ("/norm/accumulates", test_norm_accumulates);
  return g_test_run ();
}
