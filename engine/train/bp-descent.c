/* train/bp-descent.c: gradient descent on a two-variable function through the engine's ops,
 * autograd and optimizers (the autograd lesson's experiment). */
#include "config.h"

#include "bp-descent.h"

#include <math.h>
#include <string.h>

#include "bp-ops-eltwise.h"

G_DEFINE_QUARK (bp-descent-error-quark, bp_descent_error)

static const BpDescentFunction functions[] = {
  {"bowl", "f(x, y) = x² + 10y²", -5.0, 5.0, -3.0, 3.0, {-4.0, 2.0}, 1, {{0.0, 0.0}}, 0.0},
  {"rosenbrock", "f(x, y) = (1 − x)² + 100(y − x²)²", -2.0, 2.0, -1.0, 3.0, {-1.5, 2.0}, 1,
   {{1.0, 1.0}}, 0.0},
  {"himmelblau", "f(x, y) = (x² + y − 11)² + (x + y² − 7)²", -5.0, 5.0, -5.0, 5.0, {0.0, 0.0},
   4, {{3.0, 2.0}, {-2.805118, 3.131312}, {-3.779310, -3.283186}, {3.584428, -1.848126}}, 0.0},
};

static const char *const function_names[] = {"bowl", "rosenbrock", "himmelblau", NULL};

const char *const *
bp_descent_function_names (void)
{
  return function_names;
}

const BpDescentFunction *
bp_descent_function_find (const char *name)
{
  for (size_t k = 0; name && k < G_N_ELEMENTS (functions); k++)
    if (strcmp (functions[k].name, name) == 0)
      return &functions[k];
  return NULL;
}

double
bp_descent_eval (const BpDescentFunction *f, double x, double y, double *gx, double *gy)
{
  double v, dx, dy;
  if (strcmp (f->name, "bowl") == 0) {
    v = x * x + 10.0 * y * y;
    dx = 2.0 * x;
    dy = 20.0 * y;
  } else if (strcmp (f->name, "rosenbrock") == 0) {
    double a = 1.0 - x, b = y - x * x;
    v = a * a + 100.0 * b * b;
    dx = -2.0 * a - 400.0 * x * b;
    dy = 200.0 * b;
  } else {
    double a = x * x + y - 11.0, b = x + y * y - 7.0;
    v = a * a + b * b;
    dx = 4.0 * x * a + 2.0 * b;
    dy = 2.0 * a + 4.0 * y * b;
  }
  if (gx)
    *gx = dx;
  if (gy)
    *gy = dy;
  return v;
}

void
bp_descent_sample (const BpDescentFunction *f, int n, float *values)
{
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++)
      values[(size_t) i * (size_t) n + (size_t) j] =
        (float) bp_descent_eval (f, f->x0 + (j + 0.5) * (f->x1 - f->x0) / n,
                                 f->y0 + (i + 0.5) * (f->y1 - f->y0) / n, NULL, NULL);
}

/* ---- the function as a graph of engine ops ---- */

/* Every tensor the graph makes, released together. */
typedef struct {
  BpTensor *made[32];
  int n;
  gboolean failed;
} Graph;

static BpTensor *
keep (Graph *g, BpTensor *t)
{
  if (!t || g->n == G_N_ELEMENTS (g->made)) {
    g->failed = TRUE;
    bp_tensor_unref (t);
    return NULL;
  }
  g->made[g->n++] = t;
  return t;
}

static BpTensor *
constant (Graph *g, float v)
{
  return keep (g, bp_tensor_from_data (1, (int64_t[]){1}, &v));
}

#define OP(call) (g->failed ? NULL : keep (g, call))

/* (a)² */
static BpTensor *
square (Graph *g, BpTensor *a)
{
  return OP (bp_mul (a, a));
}

/* f (x, y) of the function: a (1) tensor on the tape (NULL when an op failed). */
static BpTensor *
build (Graph *g, const BpDescentFunction *f, BpTensor *x, BpTensor *y)
{
  if (strcmp (f->name, "bowl") == 0) {
    /* x² + 10 y² */
    return OP (bp_add (square (g, x), OP (bp_scale (square (g, y), 10.0f))));
  }
  if (strcmp (f->name, "rosenbrock") == 0) {
    /* (1 - x)² + 100 (y - x²)² */
    BpTensor *a = OP (bp_sub (constant (g, 1.0f), x));
    BpTensor *b = OP (bp_sub (y, square (g, x)));
    return OP (bp_add (square (g, a), OP (bp_scale (square (g, b), 100.0f))));
  }
  /* (x² + y - 11)² + (x + y² - 7)² */
  BpTensor *a = OP (bp_add (OP (bp_add (square (g, x), y)), constant (g, -11.0f)));
  BpTensor *b = OP (bp_add (OP (bp_add (x, square (g, y))), constant (g, -7.0f)));
  return OP (bp_add (square (g, a), square (g, b)));
}

static void
graph_clear (Graph *g)
{
  for (int k = 0; k < g->n; k++)
    bp_tensor_unref (g->made[k]);
  g->n = 0;
  g->failed = FALSE;
}

/* Forward and backward at the parameters' values: *value, and the gradients in x->grad,
 * y->grad (accumulated: zero them first). */
static gboolean
forward_backward (const BpDescentFunction *f, BpTensor *x, BpTensor *y, double *value,
                  GError **error)
{
  Graph g = {0};
  BpTensor *out = build (&g, f, x, y);
  gboolean ok = out && !g.failed && bp_backward (out) == BP_OK;
  if (ok)
    *value = out->data[0];
  else
    g_set_error (error, BP_DESCENT_ERROR, BP_DESCENT_ERROR_ENGINE, "%s: %s", f->name,
                 bp_last_error ());
  graph_clear (&g);
  bp_tape_clear ();
  return ok;
}

static BpTensor *
scalar_param (double v)
{
  float fv = (float) v;
  BpTensor *t = bp_tensor_from_data (1, (int64_t[]){1}, &fv);
  if (t)
    t->requires_grad = true;
  return t;
}

gboolean
bp_descent_autograd (const BpDescentFunction *f, double x, double y, double *value, double *gx,
                     double *gy, GError **error)
{
  g_return_val_if_fail (f != NULL, FALSE);
  bool was = bp_set_grad_enabled (true);
  BpTensor *tx = scalar_param (x), *ty = scalar_param (y);
  double v = NAN;
  gboolean ok = tx && ty && forward_backward (f, tx, ty, &v, error);
  if (ok) {
    *value = v;
    *gx = tx->grad ? tx->grad[0] : 0.0;
    *gy = ty->grad ? ty->grad[0] : 0.0;
  } else if (!tx || !ty) {
    g_set_error (error, BP_DESCENT_ERROR, BP_DESCENT_ERROR_ENGINE, "%s", bp_last_error ());
  }
  bp_tensor_unref (tx);
  bp_tensor_unref (ty);
  bp_set_grad_enabled (was);
  return ok;
}

/* ---- the run ---- */

BpDescentConfig
bp_descent_config_default (void)
{
  BpDescentConfig c = {
    .function = "bowl",
    .start = {NAN, NAN},
    .steps = 100,
    .optim = bp_optim_config_default (BP_OPTIM_SGD),
  };
  c.optim.lr = 0.02f;
  return c;
}

static double
nearest_minimum (const BpDescentFunction *f, double x, double y)
{
  double best = INFINITY;
  for (int k = 0; k < f->n_minima; k++)
    best = MIN (best, hypot (x - f->minima[k][0], y - f->minima[k][1]));
  return best;
}

/* The largest component of |autograd - formula| / max (1, |formula|). */
static double
grad_error (const BpDescentFunction *f, double x, double y, double gx, double gy)
{
  double hx, hy;
  bp_descent_eval (f, x, y, &hx, &hy);
  return MAX (fabs (gx - hx) / MAX (1.0, fabs (hx)), fabs (gy - hy) / MAX (1.0, fabs (hy)));
}

gboolean
bp_descent_run (const BpDescentConfig *c, BpDescentCallback callback, gpointer user_data,
                GError **error)
{
  g_return_val_if_fail (c != NULL, FALSE);
  const BpDescentFunction *f = bp_descent_function_find (c->function);
  if (!f) {
    g_autofree char *names = g_strjoinv (", ", (char **) function_names);
    g_set_error (error, BP_DESCENT_ERROR, BP_DESCENT_ERROR_INVALID,
                 "unknown function \"%s\" (known: %s)", c->function ? c->function : "(null)",
                 names);
    return FALSE;
  }
  if (c->steps < 1 || c->steps > 100000) {
    g_set_error (error, BP_DESCENT_ERROR, BP_DESCENT_ERROR_INVALID,
                 "steps must be between 1 and 100000, not %d", c->steps);
    return FALSE;
  }
  double x0 = isnan (c->start[0]) ? f->start[0] : c->start[0];
  double y0 = isnan (c->start[1]) ? f->start[1] : c->start[1];
  if (!isfinite (x0) || !isfinite (y0) || fabs (x0) > 1e6 || fabs (y0) > 1e6) {
    g_set_error (error, BP_DESCENT_ERROR, BP_DESCENT_ERROR_INVALID,
                 "the start point (%g, %g) must be finite and within 1e6 of the origin", x0, y0);
    return FALSE;
  }

  bool was = bp_set_grad_enabled (true);
  BpTensor *params[2] = {scalar_param (x0), scalar_param (y0)};
  BpOptimizer *opt = params[0] && params[1] ? bp_optimizer_new (&c->optim, 2, params) : NULL;
  gboolean ok = opt != NULL;
  if (!ok)
    g_set_error (error, BP_DESCENT_ERROR, BP_DESCENT_ERROR_INVALID, "optimizer: %s",
                 bp_last_error ());
  BpDescentPoint p = {.steps = c->steps, .grad_error = 0.0};
  for (int step = 0; ok; step++) {
    bp_optimizer_zero_grad (opt);
    double v = NAN;
    if (!forward_backward (f, params[0], params[1], &v, error)) {
      ok = FALSE;
      break;
    }
    double x = params[0]->data[0], y = params[1]->data[0];
    double gx = params[0]->grad[0], gy = params[1]->grad[0];
    gboolean finite = isfinite (v) && isfinite (gx) && isfinite (gy) &&
                      fabs (x - x0) <= 1e6 && fabs (y - y0) <= 1e6;
    if (!finite && step == 0) {
      g_set_error (error, BP_DESCENT_ERROR, BP_DESCENT_ERROR_INVALID,
                   "%s cannot be evaluated at the start point (%g, %g)", f->name, x0, y0);
      ok = FALSE;
      break;
    }
    if (!finite) {
      /* the previous point was the last one worth showing: once more, marked */
      p.diverged = TRUE;
      if (callback)
        callback (&p, user_data);
      break;
    }
    p.step = step;
    p.x = x;
    p.y = y;
    p.value = v;
    p.grad_x = gx;
    p.grad_y = gy;
    p.distance = nearest_minimum (f, x, y);
    p.grad_error = MAX (p.grad_error, grad_error (f, x, y, gx, gy));
    if (callback && !callback (&p, user_data))
      break;
    if (step == c->steps)
      break;
    if (bp_optimizer_step (opt) != BP_OK) {
      g_set_error (error, BP_DESCENT_ERROR, BP_DESCENT_ERROR_ENGINE, "optimizer step: %s",
                   bp_last_error ());
      ok = FALSE;
    }
  }
  bp_optimizer_free (opt);
  bp_tensor_unref (params[0]);
  bp_tensor_unref (params[1]);
  bp_set_grad_enabled (was);
  return ok;
}
