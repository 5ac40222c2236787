/* test-tensor.c: tensors, the autograd tape, matmul and linear against finite differences and
 * PyTorch, and the CPU backend's GEMM with bias and column sum. */
#include "bp-test.h"

#include <math.h>
#include <string.h>

#include "bp-backend.h"
#include "bp-ops-eltwise.h"
#include "bp-ops-linear.h"
#include "bp-rng.h"

static void
test_tensor_basics (void)
{
  BpTensor *t = bp_tensor_new_4d (2, 3, 4, 5);
  g_assert_nonnull (t);
  g_assert_cmpint (t->numel, ==, 120);
  g_assert_cmpint (t->ndim, ==, 4);
  for (int64_t i = 0; i < t->numel; i++)
    g_assert_cmpfloat (t->data[i], ==, 0.0f);
  char buf[64];
  g_assert_cmpstr (bp_shape_str (t, buf, sizeof buf), ==, "[2, 3, 4, 5]");
  g_assert_null (t->grad);
  float *g = bp_tensor_grad (t);
  g_assert_nonnull (g);
  g_assert_cmpfloat (g[119], ==, 0.0f);
  bp_tensor_unref (t);

  /* impossible shapes are errors, not huge allocations */
  g_assert_null (bp_tensor_new (2, (int64_t[]){-1, 3}));
  g_assert_cmpint (bp_last_status (), ==, BP_ERR_INVALID);
  g_assert_null (bp_tensor_new (3, (int64_t[]){1 << 20, 1 << 20, 1 << 20}));
  g_assert_null (bp_tensor_new (BP_MAX_DIMS + 1, (int64_t[BP_MAX_DIMS + 1]){1}));
}

static void
test_move_to_same_device (void)
{
  /* moving to the device a tensor is on keeps its buffers */
  BpTensor *t = bp_test_rand (1, (int64_t[]){5}, -1, 1, true);
  float *data = t->data, *grad = bp_tensor_grad (t);
  g_assert_cmpint (bp_tensor_move_to (t, BP_DEVICE_CPU), ==, BP_OK);
  g_assert_true (t->data == data && t->grad == grad);
  /* without a usable CUDA backend a move is an error and leaves the tensor as it was */
  if (!bp_backend (BP_DEVICE_CUDA)) {
    g_assert_cmpint (bp_tensor_move_to (t, BP_DEVICE_CUDA), !=, BP_OK);
    g_assert_true (t->data == data && t->device == BP_DEVICE_CPU);
  }
  bp_tensor_unref (t);
}

static void
test_rng_repeatable (void)
{
  bp_rng_seed (42);
  float a[16];
  for (int i = 0; i < 16; i++)
    a[i] = bp_rng_normal ();
  bp_rng_seed (42);
  for (int i = 0; i < 16; i++)
    g_assert_cmpfloat (bp_rng_normal (), ==, a[i]);
  /* uniform stays in [0, 1) and has a sensible mean */
  double sum = 0;
  for (int i = 0; i < 100000; i++) {
    float u = bp_rng_uniform ();
    g_assert_cmpfloat (u, >=, 0.0f);
    g_assert_cmpfloat (u, <, 1.0f);
    sum += u;
  }
  g_assert_cmpfloat (fabs (sum / 100000 - 0.5), <, 0.01);
  int64_t perm[100];
  bp_rng_permutation (perm, 100);
  int seen[100] = {0};
  for (int i = 0; i < 100; i++)
    seen[perm[i]]++;
  for (int i = 0; i < 100; i++)
    g_assert_cmpint (seen[i], ==, 1);
}

static BpTensor *
fwd_matmul (BpTensor **x, void *user)
{
  return bp_matmul (x[0], x[1]);
}

static BpTensor *
fwd_linear (BpTensor **x, void *user)
{
  return bp_linear (x[0], x[1], x[2]);
}

static BpTensor *
fwd_linear_chain (BpTensor **x, void *user)
{
  /* two uses of the same weight: gradients must accumulate over both paths */
  BpTensor *h = bp_linear (x[0], x[1], NULL);
  BpTensor *out = bp_linear (h, x[1], x[2]);
  bp_tensor_unref (h);
  return out;
}

static void
test_matmul_grad (void)
{
  bp_rng_seed (1);
  BpTensor *in[] = {bp_test_rand (2, (int64_t[]){5, 7}, -1, 1, true),
                    bp_test_rand (2, (int64_t[]){7, 3}, -1, 1, true)};
  bp_test_check_grad (fwd_matmul, 2, in, NULL, 1e-2f, 2e-3, 64);
  bp_tensor_unref (in[0]);
  bp_tensor_unref (in[1]);
}

static void
test_linear_grad (void)
{
  bp_rng_seed (2);
  BpTensor *in[] = {bp_test_rand (3, (int64_t[]){2, 4, 6}, -1, 1, true),
                    bp_test_rand (2, (int64_t[]){5, 6}, -1, 1, true),
                    bp_test_rand (1, (int64_t[]){5}, -1, 1, true)};
  bp_test_check_grad (fwd_linear, 3, in, NULL, 1e-2f, 2e-3, 64);
  BpTensor *sq[] = {bp_test_rand (2, (int64_t[]){3, 6}, -1, 1, true),
                    bp_test_rand (2, (int64_t[]){6, 6}, -1, 1, true),
                    bp_test_rand (1, (int64_t[]){6}, -1, 1, true)};
  bp_test_check_grad (fwd_linear_chain, 3, sq, NULL, 1e-2f, 5e-3, 64);
  for (int k = 0; k < 3; k++) {
    bp_tensor_unref (in[k]);
    bp_tensor_unref (sq[k]);
  }
}

static void
test_linear_torch (void)
{
  bp_rng_seed (3);
  BpTensor *in[] = {bp_test_rand (2, (int64_t[]){8, 16}, -1, 1, true),
                    bp_test_rand (2, (int64_t[]){4, 16}, -1, 1, true),
                    bp_test_rand (1, (int64_t[]){4}, -1, 1, true)};
  BpTensor *y = bp_linear (in[0], in[1], in[2]);
  BpTensor *gy = bp_test_rand (2, (int64_t[]){8, 4}, -1, 1, false);
  g_assert_cmpint (bp_backward_with (y, gy->data), ==, BP_OK);
  BpTensor *ref[] = {bp_tensor_new_like (y), bp_tensor_new_like (in[0]), bp_tensor_new_like (in[1]),
                     bp_tensor_new_like (in[2])};
  BpTensor *args[] = {in[0], in[1], in[2], gy};
  if (bp_test_torch ("y = torch.nn.functional.linear(x[0], x[1], x[2])\n"
                     "y.backward(x[3])\n"
                     "out = [y, x[0].grad, x[1].grad, x[2].grad]\n",
                     4, args, 4, ref)) {
    bp_test_assert_close ("linear forward", y->data, ref[0]->data, y->numel, 1e-5);
    bp_test_assert_close ("linear dx", in[0]->grad, ref[1]->data, in[0]->numel, 1e-5);
    bp_test_assert_close ("linear dw", in[1]->grad, ref[2]->data, in[1]->numel, 1e-5);
    bp_test_assert_close ("linear db", in[2]->grad, ref[3]->data, in[2]->numel, 1e-5);
  }
  bp_tape_clear ();
  bp_tensor_unref (y);
  bp_tensor_unref (gy);
  for (int k = 0; k < 4; k++)
    bp_tensor_unref (ref[k]);
  for (int k = 0; k < 3; k++)
    bp_tensor_unref (in[k]);
}

/* A host matrix (rows, ld) of values uniform in [-1, 1), the padding past cols NaN. */
static float *
rand_matrix (int64_t rows, int64_t cols, int64_t ld)
{
  float *p = g_new (float, rows *ld > 0 ? rows * ld : 1);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < ld; j++)
      p[r * ld + j] = j < cols ? bp_rng_uniform () * 2.0f - 1.0f : NAN;
  return p;
}

/* gemm_bias (and its bf16 variant) against the rows filled with the bias followed by gemm
 * with beta 1 (bit for bit: that is what the CPU entry does), and without bias against gemm
 * with beta 0, for the four transpose combinations with padded leading dimensions; C starts
 * as NaN, so a product that read it would show, and C's padding must stay untouched. */
static void
test_gemm_bias (void)
{
  const BpBackend *be = &bp_cpu_backend;
  const int64_t sizes[][3] = {{5, 7, 3}, {1, 1, 1}, {33, 65, 130}, {4, 9, 0}};
  bp_rng_seed (4);
  for (size_t s = 0; s < G_N_ELEMENTS (sizes); s++) {
    for (int t = 0; t < 4; t++) {
      bool ta = t & 1, tb = t & 2;
      int64_t m = sizes[s][0], n = sizes[s][1], k = sizes[s][2];
      int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 5;
      float *a = rand_matrix (ta ? k : m, ta ? m : k, lda);
      float *b = rand_matrix (tb ? n : k, tb ? k : n, ldb);
      float *bias = rand_matrix (1, n, n);
      for (int bf16 = 0; bf16 < 2; bf16++) {
        for (int with_bias = 0; with_bias < 2; with_bias++) {
          float *got = g_new (float, m *ldc), *want = g_new (float, m *ldc);
          for (int64_t i = 0; i < m * ldc; i++)
            got[i] = want[i] = NAN;
          for (int64_t r = 0; r < m && with_bias; r++)
            memcpy (want + r * ldc, bias, (size_t)n * sizeof (float));
          (bf16 ? be->gemm_bf16 : be->gemm) (ta, tb, m, n, k, 1.0f, a, lda, b, ldb,
                                             with_bias ? 1.0f : 0.0f, want, ldc);
          (bf16 ? be->gemm_bias_bf16 : be->gemm_bias) (ta, tb, m, n, k, a, lda, b, ldb,
                                                       with_bias ? bias : NULL, got, ldc);
          for (int64_t r = 0; r < m; r++)
            for (int64_t j = 0; j < ldc; j++) {
              float g = got[r * ldc + j], w = want[r * ldc + j];
              if (j >= n)
                g_assert_true (isnan (g));
              else if (memcmp (&g, &w, sizeof g) != 0)
                g_error ("gemm_bias%s ta %d tb %d %ldx%ldx%ld bias %d: (%ld, %ld) is %.9g, "
                         "want %.9g",
                         bf16 ? "_bf16" : "", ta, tb, (long)m, (long)n, (long)k, with_bias, (long)r,
                         (long)j, g, w);
            }
          g_free (got);
          g_free (want);
        }
      }
      g_free (a);
      g_free (b);
      g_free (bias);
    }
  }
}

/* col_sum against sums in double: db = db0 + sum over the rows; the same bits at 1 and 2
 * threads (the order of each column's sum is fixed). */
static void
test_col_sum (void)
{
  const int64_t sizes[][2] = {{1, 1}, {3, 70}, {1000, 130}, {300, 300}, {0, 5}};
  bp_rng_seed (5);
  for (size_t s = 0; s < G_N_ELEMENTS (sizes); s++) {
    int64_t m = sizes[s][0], n = sizes[s][1];
    float *x = rand_matrix (m, n, n), *db0 = rand_matrix (1, n, n);
    float *got = g_new (float, n), *again = g_new (float, n);
    memcpy (got, db0, (size_t)n * sizeof (float));
    memcpy (again, db0, (size_t)n * sizeof (float));
    bp_cpu_backend.col_sum (m, n, x, got);
    bp_set_num_threads (2);
    bp_cpu_backend.col_sum (m, n, x, again);
    bp_set_num_threads (1);
    g_assert_cmpmem (got, (gsize)n * sizeof (float), again, (gsize)n * sizeof (float));
    for (int64_t j = 0; j < n; j++) {
      double want = db0[j];
      for (int64_t r = 0; r < m; r++)
        want += x[r * n + j];
      if (!(fabs (got[j] - want) <= 1e-6 * fmax (1.0, fabs (want))))
        g_error ("col_sum %ldx%ld column %ld: %.9g, want %.9g", (long)m, (long)n, (long)j, got[j],
                 want);
    }
    g_free (x);
    g_free (db0);
    g_free (got);
    g_free (again);
  }
}

static void
test_tape_clear_frees (void)
{
  /* intermediates stay alive (with their gradients) until the tape is cleared */
  BpTensor *x = bp_test_rand (2, (int64_t[]){2, 3}, -1, 1, true);
  BpTensor *w = bp_test_rand (2, (int64_t[]){3, 3}, -1, 1, false);
  BpTensor *h = bp_matmul (x, w);
  BpTensor *y = bp_matmul (h, w);
  g_assert_cmpuint (bp_tape_length (), ==, 2);
  float ones[6] = {1, 1, 1, 1, 1, 1};
  g_assert_cmpint (bp_backward_with (y, ones), ==, BP_OK);
  g_assert_nonnull (h->grad);
  g_assert_nonnull (x->grad);
  g_assert_null (w->grad);
  bp_tape_clear ();
  g_assert_cmpuint (bp_tape_length (), ==, 0);
  g_assert_cmpint (h->refcount, ==, 1);
  bp_tensor_unref (h);
  bp_tensor_unref (y);
  bp_tensor_unref (x);
  bp_tensor_unref (w);
  /* with gradients off nothing is recorded */
  bool was = bp_set_grad_enabled (false);
  BpTensor *a = bp_test_rand (2, (int64_t[]){2, 2}, -1, 1, true);
  BpTensor *b = bp_matmul (a, a);
  g_assert_cmpuint (bp_tape_length (), ==, 0);
  bp_set_grad_enabled (was);
  bp_tensor_unref (a);
  bp_tensor_unref (b);
}

static void
test_shape_errors (void)
{
  BpTensor *a = bp_tensor_new_2d (2, 3), *b = bp_tensor_new_2d (4, 5);
  g_assert_null (bp_matmul (a, b));
  g_assert_nonnull (strstr (bp_last_error (), "[2, 3]"));
  g_assert_nonnull (strstr (bp_last_error (), "[4, 5]"));
  g_assert_null (bp_linear (a, b, NULL));
  bp_tensor_unref (a);
  bp_tensor_unref (b);
}

/* A Linear layer without inputs (I = 0) outputs its bias; its backward sums the bias gradient
 * over the rows and does not divide by the zero width. */
static void
test_linear_empty (void)
{
  BpTensor *x = bp_tensor_new (2, (int64_t[]){3, 0});
  BpTensor *w = bp_tensor_new (2, (int64_t[]){2, 0});
  BpTensor *b = bp_tensor_new_1d (2);
  b->data[0] = 0.5f;
  b->data[1] = -1.0f;
  x->requires_grad = w->requires_grad = b->requires_grad = true;
  BpTensor *out = bp_linear (x, w, b);
  g_assert_nonnull (out);
  g_assert_cmpint (out->shape[0], ==, 3);
  g_assert_cmpint (out->shape[1], ==, 2);
  for (int r = 0; r < 3; r++) {
    g_assert_cmpfloat (out->data[2 * r], ==, 0.5f);
    g_assert_cmpfloat (out->data[2 * r + 1], ==, -1.0f);
  }
  BpTensor *loss = bp_sum (out);
  g_assert_cmpint (bp_backward (loss), ==, BP_OK);
  g_assert_cmpfloat (b->grad[0], ==, 3.0f);
  g_assert_cmpfloat (b->grad[1], ==, 3.0f);
  bp_tensor_unref (loss);
  bp_tensor_unref (out);
  bp_tape_clear ();
  bp_tensor_unref (x);
  bp_tensor_unref (w);
  bp_tensor_unref (b);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  bp_set_num_threads (1);
  g_test_add_func ("/tensor/basics", test_tensor_basics);
  g_test_add_func ("/tensor/rng", test_rng_repeatable);
  g_test_add_func ("/tensor/move-to", test_move_to_same_device);
  g_test_add_func ("/tensor/tape-clear", test_tape_clear_frees);
  g_test_add_func ("/tensor/shape-errors", test_shape_errors);
  g_test_add_func ("/linear/matmul-grad", test_matmul_grad);
  g_test_add_func ("/linear/linear-grad", test_linear_grad);
  g_test_add_func ("/linear/torch", test_linear_torch);
  g_test_add_func ("/linear/gemm-bias", test_gemm_bias);
  g_test_add_func ("/linear/col-sum", test_col_sum);
  g_test_add_func ("/linear/empty", test_linear_empty);
  return g_test_run ();
}
