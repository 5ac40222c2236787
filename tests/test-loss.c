/* test-loss.c: softmax, log-softmax, cross-entropy, MSE, BCE with logits and accuracy counting
 * against finite differences and PyTorch. */
#include "bp-test.h"

#include <math.h>
#include <string.h>

#include "bp-backend.h"
#include "bp-ops-loss.h"
#include "bp-rng.h"

static void
free_all (int n, BpTensor **ts)
{
  for (int k = 0; k < n; k++)
    bp_tensor_unref (ts[k]);
}

/* Integral class indices in [0, c) as floats. */
static BpTensor *
rand_targets (int64_t n, int64_t c)
{
  BpTensor *t = bp_tensor_new_1d (n);
  for (int64_t i = 0; i < n; i++)
    t->data[i] = (float) bp_rng_below ((uint64_t) c);
  return t;
}

static BpTensor *
fwd_softmax (BpTensor **x, void *user)
{
  return bp_softmax (x[0]);
}

static BpTensor *
fwd_log_softmax (BpTensor **x, void *user)
{
  return bp_log_softmax (x[0]);
}

static BpTensor *
fwd_cross_entropy (BpTensor **x, void *user)
{
  return bp_cross_entropy (x[0], x[1], *(float *) user);
}

static BpTensor *
fwd_mse (BpTensor **x, void *user)
{
  return bp_mse_loss (x[0], x[1]);
}

static BpTensor *
fwd_bce (BpTensor **x, void *user)
{
  return bp_bce_with_logits (x[0], x[1]);
}

static void
test_softmax_grad (void)
{
  bp_rng_seed (31);
  BpTensor *x = bp_test_rand (3, (int64_t[]){3, 4, 5}, -2, 2, true);
  bp_test_check_grad (fwd_softmax, 1, &x, NULL, 1e-2f, 1e-2, 60);
  bp_test_check_grad (fwd_log_softmax, 1, &x, NULL, 1e-2f, 1e-2, 60);
  bp_tensor_unref (x);
}

static void
test_loss_grad (void)
{
  bp_rng_seed (32);
  /* cross-entropy: only the logits are differentiable */
  for (int k = 0; k < 2; k++) {
    float smoothing = k ? 0.2f : 0.0f;
    BpTensor *in[] = {bp_test_rand (2, (int64_t[]){6, 5}, -2, 2, true), rand_targets (6, 5)};
    bp_test_check_grad (fwd_cross_entropy, 2, in, &smoothing, 1e-2f, 1e-2, 60);
    free_all (2, in);
  }
  /* MSE and BCE: both sides are differentiable */
  BpTensor *m[] = {bp_test_rand (3, (int64_t[]){2, 3, 4}, -2, 2, true),
                   bp_test_rand (3, (int64_t[]){2, 3, 4}, -2, 2, true)};
  bp_test_check_grad (fwd_mse, 2, m, NULL, 1e-2f, 1e-2, 60);
  BpTensor *b[] = {bp_test_rand (2, (int64_t[]){5, 4}, -4, 4, true),
                   bp_test_rand (2, (int64_t[]){5, 4}, 0, 1, true)};
  b[0]->data[0] = 50.0f;
  b[0]->data[1] = -50.0f;
  bp_test_check_grad (fwd_bce, 2, b, NULL, 1e-2f, 1e-2, 60);
  free_all (2, m);
  free_all (2, b);
}

/* Softmax and log-softmax forward and backward, including rows of huge logits. */
static void
test_softmax_torch (void)
{
  bp_rng_seed (33);
  BpTensor *x = bp_test_rand (3, (int64_t[]){4, 3, 7}, -3, 3, true);
  for (int j = 0; j < 7; j++) {
    x->data[j] *= 300.0f;       /* row 0: |x| up to 900, exp would overflow */
    x->data[7 + j] = -1000.0f;  /* row 1: all equal and very negative */
  }
  BpTensor *gy = bp_test_rand (3, (int64_t[]){4, 3, 7}, -1, 1, false);
  BpTensor *got[4], *ref[4];
  for (int k = 0; k < 2; k++) {
    bp_tensor_zero_grad (x);
    BpTensor *y = k ? bp_log_softmax (x) : bp_softmax (x);
    g_assert_nonnull (y);
    for (int64_t i = 0; i < y->numel; i++)
      g_assert_true (isfinite (y->data[i]));
    g_assert_cmpint (bp_backward_with (y, gy->data), ==, BP_OK);
    bp_tape_clear ();
    got[2 * k] = y;
    got[2 * k + 1] = bp_tensor_new_like (x);
    memcpy (got[2 * k + 1]->data, x->grad, (size_t) x->numel * sizeof (float));
  }
  for (int k = 0; k < 4; k++)
    ref[k] = bp_tensor_new_like (got[k]);
  BpTensor *args[] = {x, gy};
  if (bp_test_torch ("y = torch.softmax(x[0], -1)\n"
                     "y.backward(x[1])\n"
                     "dx = x[0].grad.clone(); x[0].grad = None\n"
                     "z = torch.log_softmax(x[0], -1)\n"
                     "z.backward(x[1])\n"
                     "out = [y, dx, z, x[0].grad]\n",
                     2, args, 4, ref)) {
    bp_test_assert_close ("softmax", got[0]->data, ref[0]->data, x->numel, 1e-5);
    bp_test_assert_close ("softmax dx", got[1]->data, ref[1]->data, x->numel, 1e-5);
    bp_test_assert_close ("log_softmax", got[2]->data, ref[2]->data, x->numel, 1e-5);
    bp_test_assert_close ("log_softmax dx", got[3]->data, ref[3]->data, x->numel, 1e-5);
  }
  free_all (4, got);
  free_all (4, ref);
  bp_tensor_unref (x);
  bp_tensor_unref (gy);
}

/* Softmax values across the whole float range of exp (-87 .. 0) in relative terms, against
 * exp in double: the kernels use their own vectorised exp. */
static void
test_softmax_range (void)
{
  enum { C = 5000 };
  BpTensor *x = bp_tensor_new_2d (2, C);
  for (int j = 0; j < C; j++) {
    x->data[j] = -87.0f * (float) j / (C - 1);          /* row 0: 0 down to -87 */
    x->data[C + j] = 20.0f - 0.013f * (float) (j % 977); /* row 1: positive and shifted */
  }
  BpTensor *y = bp_softmax (x), *ly = bp_log_softmax (x);
  for (int r = 0; r < 2; r++) {
    const float *xr = x->data + r * C;
    double mx = -INFINITY, sum = 0.0;
    for (int j = 0; j < C; j++)
      mx = fmax (mx, xr[j]);
    for (int j = 0; j < C; j++)
      sum += exp ((double) xr[j] - mx);
    for (int j = 0; j < C; j++) {
      double want = exp ((double) xr[j] - mx) / sum, got = y->data[r * C + j];
      if (want > 1e-36 && !(fabs (got - want) <= 1e-5 * want))
        g_error ("softmax row %d element %d (x = %g): %.9g, expected %.9g", r, j, xr[j], got, want);
      double lwant = (double) xr[j] - mx - log (sum);
      if (!(fabs (ly->data[r * C + j] - lwant) <= 1e-5 * fmax (1.0, fabs (lwant))))
        g_error ("log_softmax row %d element %d: %.9g, expected %.9g", r, j,
                 ly->data[r * C + j], lwant);
    }
  }
  /* -inf logits (masked) get probability 0; a NaN poisons its row only */
  x->data[3] = -INFINITY;
  x->data[C + 5] = NAN;
  BpTensor *z = bp_softmax (x);
  g_assert_cmpfloat (z->data[3], ==, 0.0f);
  g_assert_true (isfinite (z->data[0]) && z->data[0] > 0.0f);
  g_assert_true (isnan (z->data[C]));
  BpTensor *all[] = {x, y, ly, z};
  free_all (G_N_ELEMENTS (all), all);
}

/* Cross-entropy with and without label smoothing (and logits of +-50), MSE and BCE with logits
 * (including +-50), each with a loss gradient other than 1, in one PyTorch script. */
static void
test_losses_torch (void)
{
  bp_rng_seed (34);
  BpTensor *logits = bp_test_rand (2, (int64_t[]){7, 5}, -3, 3, true);
  logits->data[0] = 50.0f;
  logits->data[6] = -50.0f;
  logits->data[12] = 50.0f;
  BpTensor *targets = rand_targets (7, 5);
  targets->data[1] = 0.0f; /* row 1 has -50 at its target */
  targets->data[2] = 4.0f;
  BpTensor *pred = bp_test_rand (2, (int64_t[]){6, 4}, -2, 2, true);
  BpTensor *want = bp_test_rand (2, (int64_t[]){6, 4}, -2, 2, true);
  BpTensor *bl = bp_test_rand (2, (int64_t[]){6, 4}, -5, 5, true);
  BpTensor *bt = bp_test_rand (2, (int64_t[]){6, 4}, 0, 1, true);
  const float big[] = {50.0f, -50.0f, 50.0f, -50.0f};
  const float big_t[] = {0.0f, 1.0f, 1.0f, 0.0f};
  for (int k = 0; k < 4; k++) {
    bl->data[k] = big[k];
    bt->data[k] = big_t[k];
  }
  BpTensor *gl = bp_tensor_new_1d (1);
  gl->data[0] = 0.7f;

  /* got: ce, dlogits, ce smoothed, dlogits, mse, dpred, dwant, bce, dlogits, dtarget */
  BpTensor *got[10];
  for (int k = 0; k < 2; k++) {
    bp_tensor_zero_grad (logits);
    BpTensor *loss = bp_cross_entropy (logits, targets, k ? 0.15f : 0.0f);
    g_assert_nonnull (loss);
    g_assert_cmpint (loss->ndim, ==, 1);
    g_assert_cmpint (loss->shape[0], ==, 1);
    g_assert_cmpint (bp_backward_with (loss, gl->data), ==, BP_OK);
    bp_tape_clear ();
    got[2 * k] = loss;
    got[2 * k + 1] = bp_tensor_new_like (logits);
    memcpy (got[2 * k + 1]->data, logits->grad, (size_t) logits->numel * sizeof (float));
  }
  got[4] = bp_mse_loss (pred, want);
  g_assert_nonnull (got[4]);
  g_assert_cmpint (bp_backward_with (got[4], gl->data), ==, BP_OK);
  bp_tape_clear ();
  got[7] = bp_bce_with_logits (bl, bt);
  g_assert_nonnull (got[7]);
  g_assert_true (isfinite (got[7]->data[0]));
  g_assert_cmpint (bp_backward_with (got[7], gl->data), ==, BP_OK);
  bp_tape_clear ();
  BpTensor *grads_of[] = {pred, want, NULL, bl, bt};
  for (int k = 0; k < 5; k++) {
    if (!grads_of[k])
      continue;
    got[5 + k] = bp_tensor_new_like (grads_of[k]);
    memcpy (got[5 + k]->data, grads_of[k]->grad, (size_t) grads_of[k]->numel * sizeof (float));
  }

  BpTensor *ref[10];
  for (int k = 0; k < 10; k++)
    ref[k] = bp_tensor_new_like (got[k]);
  BpTensor *args[] = {logits, targets, pred, want, bl, bt, gl};
  if (bp_test_torch ("import torch.nn.functional as F\n"
                     "g = x[6].detach()[0]\n"
                     "t = x[1].detach().long()\n"
                     "out = []\n"
                     "for ls in (0.0, 0.15):\n"
                     "    x[0].grad = None\n"
                     "    l = F.cross_entropy(x[0], t, label_smoothing=ls)\n"
                     "    (l * g).backward()\n"
                     "    out += [l.reshape(1), x[0].grad.clone()]\n"
                     "l = F.mse_loss(x[2], x[3])\n"
                     "(l * g).backward()\n"
                     "out += [l.reshape(1), x[2].grad, x[3].grad]\n"
                     "l = F.binary_cross_entropy_with_logits(x[4], x[5])\n"
                     "(l * g).backward()\n"
                     "out += [l.reshape(1), x[4].grad, x[5].grad]\n",
                     7, args, 10, ref)) {
    static const char *names[] = {"cross_entropy", "cross_entropy dlogits",
                                  "cross_entropy smoothed", "cross_entropy smoothed dlogits",
                                  "mse", "mse dpred", "mse dtarget",
                                  "bce_with_logits", "bce dlogits", "bce dtarget"};
    for (int k = 0; k < 10; k++)
      bp_test_assert_close (names[k], got[k]->data, ref[k]->data, got[k]->numel, 1e-5);
  }
  free_all (10, got);
  free_all (10, ref);
  BpTensor *all[] = {logits, targets, pred, want, bl, bt, gl};
  free_all (G_N_ELEMENTS (all), all);
}

/* Known values: uniform logits give log (C); a confident right answer gives ~0. */
static void
test_cross_entropy_values (void)
{
  BpTensor *logits = bp_tensor_new_2d (2, 4);
  BpTensor *targets = bp_tensor_new_1d (2);
  targets->data[0] = 3.0f;
  targets->data[1] = 0.0f;
  BpTensor *loss = bp_cross_entropy (logits, targets, 0.0f);
  g_assert_cmpfloat_with_epsilon (loss->data[0], logf (4.0f), 1e-6);
  bp_tensor_unref (loss);
  /* smoothing does not change the loss of uniform logits */
  loss = bp_cross_entropy (logits, targets, 0.3f);
  g_assert_cmpfloat_with_epsilon (loss->data[0], logf (4.0f), 1e-6);
  bp_tensor_unref (loss);
  logits->data[3] = 100.0f;
  logits->data[4] = 100.0f;
  loss = bp_cross_entropy (logits, targets, 0.0f);
  g_assert_cmpfloat (loss->data[0], <, 1e-6f);
  g_assert_cmpfloat (loss->data[0], >=, 0.0f);
  bp_tensor_unref (loss);
  g_assert_cmpint (bp_tape_length (), ==, 0); /* nothing required a gradient */
  bp_tensor_unref (logits);
  bp_tensor_unref (targets);
}

/* Forward and backward twice without zeroing: the gradients must double. */
static void
test_loss_accumulates (void)
{
  bp_rng_seed (35);
  BpTensor *x = bp_test_rand (2, (int64_t[]){4, 6}, -2, 2, true);
  BpTensor *y = bp_test_rand (2, (int64_t[]){4, 6}, 0, 1, true);
  BpTensor *t = rand_targets (4, 6);
  BpTensor *gy = bp_test_rand (2, (int64_t[]){4, 6}, -1, 1, false);
  for (int op = 0; op < 5; op++) {
    float first[2][24];
    for (int pass = 0; pass < 2; pass++) {
      BpTensor *out = op == 0   ? bp_softmax (x)
                      : op == 1 ? bp_log_softmax (x)
                      : op == 2 ? bp_cross_entropy (x, t, 0.1f)
                      : op == 3 ? bp_mse_loss (x, y)
                                : bp_bce_with_logits (x, y);
      g_assert_nonnull (out);
      g_assert_cmpint (bp_backward_with (out, gy->data), ==, BP_OK);
      bp_tape_clear ();
      bp_tensor_unref (out);
      if (pass == 0) {
        memcpy (first[0], x->grad, sizeof first[0]);
        memcpy (first[1], op >= 3 ? y->grad : x->grad, sizeof first[1]);
        continue;
      }
      for (int i = 0; i < 24; i++) {
        first[0][i] *= 2.0f;
        first[1][i] *= 2.0f;
      }
      bp_test_assert_close ("dx accumulated", x->grad, first[0], 24, 1e-5);
      if (op >= 3)
        bp_test_assert_close ("dtarget accumulated", y->grad, first[1], 24, 1e-5);
    }
    bp_tensor_zero_grad (x);
    bp_tensor_zero_grad (y);
  }
  BpTensor *all[] = {x, y, t, gy};
  free_all (G_N_ELEMENTS (all), all);
}

/* The loss of a large batch is the same bits with one thread and with two. */
static void
test_loss_threads (void)
{
  float ce[2], mse[2], dl0[2], dl1[2];
  for (int k = 0; k < 2; k++) {
    bp_set_num_threads (k + 1);
    bp_rng_seed (36);
    BpTensor *x = bp_test_rand (2, (int64_t[]){3000, 40}, -3, 3, true);
    BpTensor *y = bp_test_rand (2, (int64_t[]){3000, 40}, -3, 3, false);
    BpTensor *t = rand_targets (3000, 40);
    BpTensor *l = bp_cross_entropy (x, t, 0.1f);
    BpTensor *m = bp_mse_loss (x, y);
    g_assert_cmpint (bp_backward (l), ==, BP_OK);
    ce[k] = l->data[0];
    mse[k] = m->data[0];
    dl0[k] = x->grad[0];
    dl1[k] = x->grad[119999];
    bp_tape_clear ();
    BpTensor *all[] = {x, y, t, l, m};
    free_all (G_N_ELEMENTS (all), all);
  }
  bp_set_num_threads (1);
  g_assert_cmpmem (ce, sizeof ce[0], ce + 1, sizeof ce[0]);
  g_assert_cmpmem (mse, sizeof mse[0], mse + 1, sizeof mse[0]);
  g_assert_cmpmem (dl0, sizeof dl0[0], dl0 + 1, sizeof dl0[0]);
  g_assert_cmpmem (dl1, sizeof dl1[0], dl1 + 1, sizeof dl1[0]);
}

static void
test_count_correct (void)
{
  const float logits[] = {
    0.1f, 0.9f, 0.0f,  /* arg-max 1 */
    2.0f, 2.0f, 1.0f,  /* tie: the first maximum, 0 */
    -1.0f, -3.0f, -0.5f, /* 2 */
    5.0f, 1.0f, 1.0f,  /* 0 */
  };
  BpTensor *x = bp_tensor_from_data (2, (int64_t[]){4, 3}, logits);
  BpTensor *t = bp_tensor_from_data (1, (int64_t[]){4}, (float[]){1, 0, 2, 1});
  g_assert_cmpint (bp_count_correct (x, t), ==, 3);
  t->data[1] = 1.0f; /* the tie's second maximum does not count */
  g_assert_cmpint (bp_count_correct (x, t), ==, 2);
  t->data[0] = 7.0f; /* out of range never matches */
  g_assert_cmpint (bp_count_correct (x, t), ==, 1);
  BpTensor *t3 = bp_tensor_new_1d (3);
  g_assert_cmpint (bp_count_correct (x, t3), ==, -1);
  g_assert_cmpint (bp_last_status (), ==, BP_ERR_INVALID);
  g_assert_nonnull (strstr (bp_last_error (), "[4, 3]"));
  g_assert_nonnull (strstr (bp_last_error (), "[3]"));
  BpTensor *all[] = {x, t, t3};
  free_all (G_N_ELEMENTS (all), all);
}

static void
test_loss_errors (void)
{
  BpTensor *logits = bp_tensor_new_2d (3, 5);
  BpTensor *t = bp_tensor_from_data (1, (int64_t[]){3}, (float[]){0, 4, 2});
  BpTensor *t4 = bp_tensor_new_1d (4), *x3 = bp_tensor_new_1d (3);
  BpTensor *empty = bp_tensor_new_2d (0, 5), *t0 = bp_tensor_new_1d (0);
  BpTensor *loss = bp_cross_entropy (logits, t, 0.0f);
  g_assert_nonnull (loss);
  bp_tensor_unref (loss);

  /* targets outside [0, C) or not integral, named in the message */
  const float bad[] = {5.0f, -1.0f, 1.5f, NAN};
  const char *named[] = {"target 5 ", "target -1 ", "target 1.5 ", "target nan "};
  for (int k = 0; k < 4; k++) {
    t->data[2] = bad[k];
    g_assert_null (bp_cross_entropy (logits, t, 0.0f));
    g_assert_cmpint (bp_last_status (), ==, BP_ERR_INVALID);
    if (!strstr (bp_last_error (), named[k]) || !strstr (bp_last_error (), "row 2"))
      g_error ("unexpected message: %s", bp_last_error ());
  }
  t->data[2] = 2.0f;
  /* shapes and arguments */
  g_assert_null (bp_cross_entropy (logits, t4, 0.0f));
  g_assert_nonnull (strstr (bp_last_error (), "[3, 5]"));
  g_assert_nonnull (strstr (bp_last_error (), "[4]"));
  g_assert_null (bp_cross_entropy (x3, t, 0.0f));
  g_assert_null (bp_cross_entropy (empty, t0, 0.0f));
  g_assert_null (bp_cross_entropy (logits, t, 1.5f));
  g_assert_nonnull (strstr (bp_last_error (), "label_smoothing"));
  g_assert_null (bp_cross_entropy (logits, t, -0.1f));
  g_assert_null (bp_mse_loss (logits, empty));
  g_assert_nonnull (strstr (bp_last_error (), "[0, 5]"));
  g_assert_null (bp_mse_loss (t, t4));
  g_assert_null (bp_bce_with_logits (x3, t4));
  g_assert_nonnull (strstr (bp_last_error (), "bce_with_logits"));
  g_assert_null (bp_softmax (t0));
  BpTensor *none = bp_log_softmax (empty); /* no rows is fine: an empty result */
  g_assert_nonnull (none);
  g_assert_cmpint (none->numel, ==, 0);
  bp_tensor_unref (none);
  g_assert_cmpint (bp_tape_length (), ==, 0);
  BpTensor *all[] = {logits, t, t4, x3, empty, t0};
  free_all (G_N_ELEMENTS (all), all);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  bp_set_num_threads (1);
  g_test_add_func ("/loss/softmax-grad", test_softmax_grad);
  g_test_add_func ("/loss/loss-grad", test_loss_grad);
  g_test_add_func ("/loss/softmax-torch", test_softmax_torch);
  g_test_add_func ("/loss/softmax-range", test_softmax_range);
  g_test_add_func ("/loss/losses-torch", test_losses_torch);
  g_test_add_func ("/loss/cross-entropy-values", test_cross_entropy_values);
  g_test_add_func ("/loss/accumulates", test_loss_accumulates);
  g_test_add_func ("/loss/threads", test_loss_threads);
  g_test_add_func ("/loss/count-correct", test_count_correct);
  g_test_add_func ("/loss/errors", test_loss_errors);
  return g_test_run ();
}
