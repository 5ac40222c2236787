/* test-descent.c: gradient descent on two-variable functions (train/bp-descent.h): autograd's
 * gradient against the formula and finite differences, paths against PyTorch's optimizers,
 * convergence, divergence and bad configs. */
#include <math.h>

#include "bp-backend.h"
#include "bp-descent.h"
#include "bp-rng.h"
#include "bp-test.h"

/* autograd (float32 ops) against the hand-derived gradient and central differences of the
 * double-precision function, at random points of each function's region */
static void
test_gradients (void)
{
  uint64_t key = 7;
  for (const char *const *name = bp_descent_function_names (); *name; name++) {
    const BpDescentFunction *f = bp_descent_function_find (*name);
    g_assert_nonnull (f);
    g_assert_nonnull (f->formula);
    for (int k = 0; k < 20; k++) {
      double x = f->x0 + (f->x1 - f->x0) * bp_rng_hash_uniform (key, 2 * (uint64_t) k);
      double y = f->y0 + (f->y1 - f->y0) * bp_rng_hash_uniform (key, 2 * (uint64_t) k + 1);
      double v, gx, gy, hx, hy;
      g_autoptr (GError) error = NULL;
      g_assert_true (bp_descent_autograd (f, x, y, &v, &gx, &gy, &error));
      g_assert_no_error (error);
      double want = bp_descent_eval (f, x, y, &hx, &hy);
      /* float32 inputs: compare against the function at the rounded point */
      double xf = (float) x, yf = (float) y;
      want = bp_descent_eval (f, xf, yf, &hx, &hy);
      g_assert_cmpfloat (fabs (v - want), <=, 1e-5 * MAX (1.0, fabs (want)));
      g_assert_cmpfloat (fabs (gx - hx), <=, 1e-5 * MAX (1.0, fabs (hx)));
      g_assert_cmpfloat (fabs (gy - hy), <=, 1e-5 * MAX (1.0, fabs (hy)));
      double h = 1e-6;
      double fx = (bp_descent_eval (f, xf + h, yf, NULL, NULL) -
                   bp_descent_eval (f, xf - h, yf, NULL, NULL)) / (2 * h);
      double fy = (bp_descent_eval (f, xf, yf + h, NULL, NULL) -
                   bp_descent_eval (f, xf, yf - h, NULL, NULL)) / (2 * h);
      g_assert_cmpfloat (fabs (fx - hx), <=, 1e-5 * MAX (1.0, fabs (hx)));
      g_assert_cmpfloat (fabs (fy - hy), <=, 1e-5 * MAX (1.0, fabs (hy)));
    }
    /* the minima are stationary points with the stated value */
    for (int m = 0; m < f->n_minima; m++) {
      double gx, gy;
      double v = bp_descent_eval (f, f->minima[m][0], f->minima[m][1], &gx, &gy);
      g_assert_cmpfloat (fabs (v - f->min_value), <, 1e-9);
      g_assert_cmpfloat (hypot (gx, gy), <, 1e-4);
    }
  }
  /* the contour grid: cell (i, j) holds f at its centre, row 0 at y0 */
  const BpDescentFunction *bowl = bp_descent_function_find ("bowl");
  float grid[8 * 8];
  bp_descent_sample (bowl, 8, grid);
  double cx = bowl->x0 + 5.5 * (bowl->x1 - bowl->x0) / 8, cy = bowl->y0 + 2.5 * (bowl->y1 - bowl->y0) / 8;
  g_assert_cmpfloat (grid[2 * 8 + 5], ==, (float) bp_descent_eval (bowl, cx, cy, NULL, NULL));
  g_assert_null (bp_descent_function_find ("nope"));
  g_assert_null (bp_descent_function_find (NULL));
}

typedef struct {
  GArray *points; /* BpDescentPoint */
} Path;

static gboolean
collect (const BpDescentPoint *p, gpointer data)
{
  g_array_append_val (((Path *) data)->points, *p);
  return TRUE;
}

static GArray *
run (const BpDescentConfig *c)
{
  Path path = {g_array_new (FALSE, FALSE, sizeof (BpDescentPoint))};
  g_autoptr (GError) error = NULL;
  g_assert_true (bp_descent_run (c, collect, &path, &error));
  g_assert_no_error (error);
  return path.points;
}

static const BpDescentPoint *
last (GArray *a)
{
  return &g_array_index (a, BpDescentPoint, a->len - 1);
}

/* SGD on the bowl: a small learning rate converges along a curve, lr 0.11 makes y's factor
 * 1 - 20 lr = -1.2 and the path diverges, reported as such */
static void
test_bowl (void)
{
  BpDescentConfig c = bp_descent_config_default ();
  c.steps = 150;
  GArray *a = run (&c);
  g_assert_cmpuint (a->len, ==, 151);
  const BpDescentPoint *p0 = &g_array_index (a, BpDescentPoint, 0);
  g_assert_cmpint (p0->step, ==, 0);
  g_assert_cmpfloat (p0->x, ==, -4.0);
  g_assert_cmpfloat (p0->y, ==, 2.0);
  g_assert_cmpfloat (p0->value, ==, 56.0);
  /* one SGD step by hand: (x, y) - lr (2x, 20y) */
  const BpDescentPoint *p1 = &g_array_index (a, BpDescentPoint, 1);
  g_assert_cmpfloat (fabs (p1->x - (-4.0 + 0.02 * 8.0)), <, 1e-6);
  g_assert_cmpfloat (fabs (p1->y - (2.0 - 0.02 * 40.0)), <, 1e-6);
  const BpDescentPoint *end = last (a);
  g_assert_cmpint (end->step, ==, 150);
  g_assert_false (end->diverged);
  g_assert_cmpfloat (end->value, <, 1e-3);
  g_assert_cmpfloat (end->distance, <, 0.02);
  g_assert_cmpfloat (end->grad_error, <, 1e-5);
  /* the value never rises with this step size */
  for (guint k = 1; k < a->len; k++)
    g_assert_cmpfloat (g_array_index (a, BpDescentPoint, k).value, <=,
                       g_array_index (a, BpDescentPoint, k - 1).value);
  g_array_unref (a);

  c.optim.lr = 0.11f;
  c.steps = 1000;
  a = run (&c);
  end = last (a);
  g_assert_true (end->diverged);
  g_assert_cmpint (end->step, <, 1000);
  g_assert_cmpfloat (fabs (end->y), >, 1e3);
  g_assert_true (isfinite (end->value));
  /* the diverged mark repeats the last finite point */
  const BpDescentPoint *before = &g_array_index (a, BpDescentPoint, a->len - 2);
  g_assert_cmpint (before->step, ==, end->step);
  g_assert_false (before->diverged);
  g_array_unref (a);
}

/* Himmelblau from the origin with SGD ends in the minimum at (3, 2); a stop from the callback
 * ends the run early */
static gboolean
stop_at_ten (const BpDescentPoint *p, gpointer data)
{
  (*(int *) data)++;
  return p->step < 10;
}

static void
test_himmelblau (void)
{
  BpDescentConfig c = bp_descent_config_default ();
  c.function = "himmelblau";
  c.optim.lr = 0.01f;
  c.steps = 300;
  GArray *a = run (&c);
  const BpDescentPoint *end = last (a);
  g_assert_cmpfloat (fabs (end->x - 3.0), <, 1e-3);
  g_assert_cmpfloat (fabs (end->y - 2.0), <, 1e-3);
  g_assert_cmpfloat (end->distance, <, 2e-3);
  g_array_unref (a);

  int calls = 0;
  g_assert_true (bp_descent_run (&c, stop_at_ten, &calls, NULL));
  g_assert_cmpint (calls, ==, 11);
}

/* The engine's path on Rosenbrock against torch.optim's, step for step (float32 both) */
static void
check_against_torch (const BpOptimConfig *o, const char *torch_optim, int steps, double tol)
{
  BpDescentConfig c = bp_descent_config_default ();
  c.function = "rosenbrock";
  c.optim = *o;
  c.steps = steps;
  GArray *a = run (&c);
  g_assert_cmpuint (a->len, ==, (guint) steps + 1);
  g_autofree char *code = g_strdup_printf (
    "p = torch.tensor([-1.5, 2.0], dtype=torch.float32, requires_grad=True)\n"
    "opt = %s\n"
    "xs = []\n"
    "for k in range(%d + 1):\n"
    "    xs.append(p.detach().clone())\n"
    "    opt.zero_grad()\n"
    "    f = (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2\n"
    "    f.backward()\n"
    "    if k < %d:\n"
    "        opt.step()\n"
    "out = [torch.stack(xs).double()]\n",
    torch_optim, steps, steps);
  BpTensor *want = bp_tensor_new_2d (steps + 1, 2);
  if (bp_test_torch (code, 0, NULL, 1, &want)) {
    for (int k = 0; k <= steps; k++) {
      const BpDescentPoint *p = &g_array_index (a, BpDescentPoint, k);
      double wx = want->data[2 * k], wy = want->data[2 * k + 1];
      if (fabs (p->x - wx) > tol * MAX (1.0, fabs (wx)) ||
          fabs (p->y - wy) > tol * MAX (1.0, fabs (wy)))
        g_error ("%s step %d: engine (%g, %g), torch (%g, %g)", torch_optim, k, p->x, p->y, wx,
                 wy);
    }
  }
  bp_tensor_unref (want);
  g_array_unref (a);
}

static void
test_torch_paths (void)
{
  BpOptimConfig sgd = bp_optim_config_default (BP_OPTIM_SGD);
  sgd.lr = 1e-3f;
  sgd.momentum = 0.9f;
  check_against_torch (&sgd, "torch.optim.SGD([p], lr=1e-3, momentum=0.9)", 200, 1e-3);
  BpOptimConfig adam = bp_optim_config_default (BP_OPTIM_ADAM);
  adam.lr = 0.05f;
  check_against_torch (&adam, "torch.optim.Adam([p], lr=0.05)", 200, 1e-3);
}

static void
expect_invalid (const BpDescentConfig *c, const char *part)
{
  g_autoptr (GError) error = NULL;
  g_assert_false (bp_descent_run (c, NULL, NULL, &error));
  g_assert_error (error, BP_DESCENT_ERROR, BP_DESCENT_ERROR_INVALID);
  if (!strstr (error->message, part))
    g_error ("\"%s\" does not mention \"%s\"", error->message, part);
}

static void
test_bad_configs (void)
{
  BpDescentConfig c = bp_descent_config_default ();
  c.function = "sphere";
  expect_invalid (&c, "unknown function \"sphere\" (known: bowl, rosenbrock, himmelblau)");
  c = bp_descent_config_default ();
  c.steps = 0;
  expect_invalid (&c, "steps must be between 1 and 100000");
  c = bp_descent_config_default ();
  c.start[0] = INFINITY;
  c.start[1] = 0;
  expect_invalid (&c, "start point");
  c = bp_descent_config_default ();
  c.optim.lr = -1.0f;
  expect_invalid (&c, "optimizer");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  bp_set_num_threads (1);
  g_test_add_func ("/descent/gradients", test_gradients);
  g_test_add_func ("/descent/bowl", test_bowl);
  g_test_add_func ("/descent/himmelblau", test_himmelblau);
  g_test_add_func ("/descent/torch-paths", test_torch_paths);
  g_test_add_func ("/descent/bad-configs", test_bad_configs);
  return g_test_run ();
}
