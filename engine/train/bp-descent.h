/* bp-descent.h: gradient descent on a function of two variables, for the autograd lesson.
 *
 * The function is built from the engine's ops on two parameters x and y (tensors of one
 * element with requires_grad), so every step's gradient comes from the tape's backward pass,
 * exactly as a model's does; the optimizer is the trainers' (SGD, Adam, AdamW). Each step also
 * works out the gradient from the formula written by hand (in double precision) and reports how
 * far autograd's is from it: the check the lesson asks the reader to do on paper.
 *
 *   BpDescentConfig c = bp_descent_config_default ();
 *   c.function = "rosenbrock";
 *   c.optim = bp_optim_config_default (BP_OPTIM_ADAM);
 *   c.optim.lr = 0.05f;
 *   bp_descent_run (&c, on_point, data, &error);  // on_point gets start point and every step
 */
#pragma once

#include <glib.h>

#include "bp-optim.h"

G_BEGIN_DECLS

#define BP_DESCENT_ERROR (bp_descent_error_quark ())
GQuark bp_descent_error_quark (void);

typedef enum {
  BP_DESCENT_ERROR_INVALID, /* an unknown function, a bad start point, step count or optimizer */
  BP_DESCENT_ERROR_ENGINE,  /* an op failed */
} BpDescentError;

/* What is known about a function: its formula, the region worth drawing and its minima. */
typedef struct {
  const char *name;      /* "bowl", "rosenbrock", "himmelblau" */
  const char *formula;   /* Unicode, e.g. "f(x, y) = x² + 10y²" */
  double x0, x1, y0, y1; /* the region to draw */
  double start[2];       /* the default start point */
  int n_minima;
  double minima[4][2];   /* the global minima (f = min_value at each) */
  double min_value;
} BpDescentFunction;

/* The functions, NULL-terminated names / by name (NULL when unknown). */
const char *const *bp_descent_function_names (void);
const BpDescentFunction *bp_descent_function_find (const char *name);

/* The function and its hand-derived gradient in double precision (for drawing contours and the
 * autograd check). gx, gy may be NULL. */
double bp_descent_eval (const BpDescentFunction *f, double x, double y, double *gx, double *gy);

/* The function at the centres of an n x n grid over its region [x0, x1] x [y0, y1], row-major,
 * row 0 at y0 (values: n * n floats): what a contour plot draws. */
void bp_descent_sample (const BpDescentFunction *f, int n, float *values);

/* The value and gradient at (x, y) from the engine's ops and their backward pass (float32).
 * FALSE with the engine's message when an op fails. */
gboolean bp_descent_autograd (const BpDescentFunction *f, double x, double y, double *value,
                              double *gx, double *gy, GError **error);

typedef struct {
  const char *function; /* a name of bp_descent_function_names () */
  double start[2];      /* NaN: the function's default start */
  int steps;            /* optimizer steps (1 .. 100000) */
  BpOptimConfig optim;  /* SGD, Adam or AdamW (weight decay and L1 apply to x and y) */
} BpDescentConfig;

/* The bowl from its default start, 100 steps of SGD with lr 0.02. */
BpDescentConfig bp_descent_config_default (void);

/* A point of the path: step 0 is the start, step k the point after k optimizer steps. */
typedef struct {
  int step, steps;
  double x, y;
  double value;       /* f (x, y), from the engine's forward pass */
  double grad_x, grad_y; /* autograd's gradient at (x, y) */
  double distance;    /* to the nearest minimum */
  double grad_error;  /* |autograd - hand-derived| / max (1, |hand-derived|) at this point,
                       * the largest component; the largest over the path so far */
  gboolean diverged;  /* the last point: the next step left the finite numbers or went beyond
                       * 1e6 from the start, so the run stopped there */
} BpDescentPoint;

/* Return FALSE to stop after this point. */
typedef gboolean (*BpDescentCallback) (const BpDescentPoint *point, gpointer user_data);

/* Runs the descent, calling back with the start and every step (the last one has step ==
 * steps). A run that diverges ends normally (TRUE): its last finite point comes once more,
 * with diverged set. FALSE only for a bad config or an engine failure. */
gboolean bp_descent_run (const BpDescentConfig *config, BpDescentCallback callback,
                         gpointer user_data, GError **error);

G_END_DECLS
