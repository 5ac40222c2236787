/* test-optim.c: SGD, Adam, AdamW, L1, gradient clipping and LR schedulers against torch.optim,
 * checkpointable optimizer state, SGD with momentum minimising a quadratic, and the
 * multi-tensor step (prepare / launch / unprepare, clipping on the device) against the
 * per-parameter kernels and bp_clip_grad_norm, bit for bit. */
#include "bp-test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bp-backend.h"
#include "bp-optim.h"
#include "bp-rng.h"

#define N_PARAMS 4
#define N_STEPS 5

/* The test parameters: small ones plus one above the kernels' threading threshold. */
static const int param_ndim[N_PARAMS] = {2, 1, 3, 1};
static const int64_t param_shape[N_PARAMS][3] = {{4, 3}, {5}, {2, 3, 2}, {40000}};

typedef struct {
  BpTensor *params[N_PARAMS];
  BpTensor *grads[N_PARAMS]; /* (N_STEPS, numel): the gradient of every step */
} Problem;

static void
problem_init (Problem *pb)
{
  bp_rng_seed (1234);
  for (int k = 0; k < N_PARAMS; k++) {
    pb->params[k] = bp_test_rand (param_ndim[k], param_shape[k], -1.0f, 1.0f, true);
    int64_t numel = pb->params[k]->numel;
    pb->grads[k] = bp_test_rand (2, (int64_t[]){N_STEPS, numel}, -1.0f, 1.0f, false);
  }
  pb->params[0]->data[0] = 0.0f; /* sign (0) = 0 for the L1 term */
}

static void
problem_clear (Problem *pb)
{
  for (int k = 0; k < N_PARAMS; k++) {
    bp_tensor_unref (pb->params[k]);
    bp_tensor_unref (pb->grads[k]);
  }
}

/* A copy of the problem's parameters (same values, no gradients). */
static void
copy_params (BpTensor **dst, BpTensor *const *src)
{
  for (int k = 0; k < N_PARAMS; k++) {
    dst[k] = bp_tensor_from_data (src[k]->ndim, src[k]->shape, src[k]->data);
    dst[k]->requires_grad = true;
  }
}

static void
drop_grad (BpTensor *p)
{
  if (p->grad) {
    bp_backend (p->device)->free (p->grad, (size_t) p->numel * sizeof (float));
    p->grad = NULL;
  }
}

/* Sets the gradients of step s; parameter 2 has none at step 1 (PyTorch's p.grad = None). */
static void
set_grads (BpTensor **params, const Problem *pb, int s)
{
  for (int k = 0; k < N_PARAMS; k++) {
    if (k == 2 && s == 1) {
      drop_grad (params[k]);
      continue;
    }
    int64_t n = params[k]->numel;
    memcpy (bp_tensor_grad (params[k]), pb->grads[k]->data + s * n, (size_t) n * sizeof (float));
  }
}

static void
free_params (BpTensor **params)
{
  for (int k = 0; k < N_PARAMS; k++)
    bp_tensor_unref (params[k]);
}

/* ---- optimizers against torch.optim ---- */

typedef struct {
  const char *name;
  BpOptimConfig config;
} OptimCase;

static char *
torch_optimizer (const BpOptimConfig *c)
{
  switch (c->kind) {
  case BP_OPTIM_SGD:
    return g_strdup_printf ("torch.optim.SGD(params, lr=%.9g, momentum=%.9g, dampening=%.9g, "
                            "nesterov=%s, weight_decay=%.9g)", c->lr, c->momentum, c->dampening,
                            c->nesterov ? "True" : "False", c->weight_decay);
  case BP_OPTIM_ADAM:
  case BP_OPTIM_ADAMW:
    return g_strdup_printf ("torch.optim.%s(params, lr=%.9g, betas=(%.9g, %.9g), eps=%.9g, "
                            "weight_decay=%.9g)", c->kind == BP_OPTIM_ADAM ? "Adam" : "AdamW",
                            c->lr, c->beta1, c->beta2, c->eps, c->weight_decay);
  }
  g_assert_not_reached ();
}

/* Our parameters after every step of one case: hist[k] (N_STEPS, numel of parameter k). */
static void
run_case (const OptimCase *tc, const Problem *pb, BpTensor **hist)
{
  BpTensor *params[N_PARAMS];
  copy_params (params, pb->params);
  BpOptimizer *opt = bp_optimizer_new (&tc->config, N_PARAMS, params);
  g_assert_nonnull (opt);
  for (int k = 0; k < N_PARAMS; k++)
    hist[k] = bp_tensor_new_2d (N_STEPS, params[k]->numel);
  for (int s = 0; s < N_STEPS; s++) {
    set_grads (params, pb, s);
    g_assert_cmpint (bp_optimizer_step (opt), ==, BP_OK);
    for (int k = 0; k < N_PARAMS; k++)
      memcpy (hist[k]->data + s * params[k]->numel, params[k]->data,
              (size_t) params[k]->numel * sizeof (float));
  }
  g_assert_cmpint (bp_optimizer_get_step (opt), ==, N_STEPS);
  bp_optimizer_free (opt);
  free_params (params);
}

static void
test_optim_torch (gconstpointer data)
{
  /* every case in one PyTorch run (starting Python dominates the time) */
  const GPtrArray *cases = data;
  int n_cases = (int) cases->len;
  Problem pb;
  problem_init (&pb);

  GString *code = g_string_new (NULL);
  g_string_append_printf (code,
    "P = %d\n"
    "def run(make, l1):\n"
    "    params = [x[k].detach().clone().requires_grad_(True) for k in range(P)]\n"
    "    grads = [x[P + k].detach() for k in range(P)]\n"
    "    opt = make(params)\n"
    "    hist = [[] for _ in params]\n"
    "    for s in range(%d):\n"
    "        for k, p in enumerate(params):\n"
    "            if k == 2 and s == 1:\n"
    "                p.grad = None\n"
    "            else:\n"
    "                p.grad = grads[k][s].reshape(p.shape).clone() + l1 * torch.sign(p.detach())\n"
    "        opt.step()\n"
    "        for k, p in enumerate(params):\n"
    "            hist[k].append(p.detach().flatten().clone())\n"
    "    return [torch.stack(h) for h in hist]\n"
    "out = []\n",
    N_PARAMS, N_STEPS);
  BpTensor **got = g_new0 (BpTensor *, (gsize) n_cases * N_PARAMS);
  BpTensor **want = g_new0 (BpTensor *, (gsize) n_cases * N_PARAMS);
  for (int c = 0; c < n_cases; c++) {
    const OptimCase *tc = cases->pdata[c];
    run_case (tc, &pb, got + c * N_PARAMS);
    for (int k = 0; k < N_PARAMS; k++)
      want[c * N_PARAMS + k] = bp_tensor_new_like (got[c * N_PARAMS + k]);
    g_autofree char *ctor = torch_optimizer (&tc->config);
    g_string_append_printf (code, "out += run(lambda params: %s, %.9g)\n", ctor, tc->config.l1);
  }

  BpTensor *in[2 * N_PARAMS];
  for (int k = 0; k < N_PARAMS; k++) {
    in[k] = pb.params[k];
    in[N_PARAMS + k] = pb.grads[k];
  }
  if (bp_test_torch (code->str, 2 * N_PARAMS, in, n_cases * N_PARAMS, want)) {
    for (int c = 0; c < n_cases; c++) {
      const OptimCase *tc = cases->pdata[c];
      for (int k = 0; k < N_PARAMS; k++) {
        int64_t n = pb.params[k]->numel;
        for (int s = 0; s < N_STEPS; s++) {
          g_autofree char *what = g_strdup_printf ("%s: parameter %d after step %d", tc->name, k,
                                                   s + 1);
          bp_test_assert_close (what, got[c * N_PARAMS + k]->data + s * n,
                                want[c * N_PARAMS + k]->data + s * n, n, 1e-5);
        }
      }
    }
  }
  for (int k = 0; k < n_cases * N_PARAMS; k++) {
    bp_tensor_unref (got[k]);
    bp_tensor_unref (want[k]);
  }
  g_free (got);
  g_free (want);
  g_string_free (code, TRUE);
  problem_clear (&pb);
}

static OptimCase *
optim_case (const char *name, BpOptimKind kind)
{
  OptimCase *tc = g_new0 (OptimCase, 1);
  tc->name = name;
  tc->config = bp_optim_config_default (kind);
  return tc;
}

static void
add_optim_cases (GPtrArray *cases)
{
  OptimCase *tc;
  tc = optim_case ("sgd", BP_OPTIM_SGD);
  tc->config.lr = 0.1f;
  g_ptr_array_add (cases, tc);
  tc = optim_case ("sgd-momentum", BP_OPTIM_SGD);
  tc->config.lr = 0.1f;
  tc->config.momentum = 0.9f;
  g_ptr_array_add (cases, tc);
  tc = optim_case ("sgd-nesterov", BP_OPTIM_SGD);
  tc->config.lr = 0.05f;
  tc->config.momentum = 0.8f;
  tc->config.nesterov = true;
  g_ptr_array_add (cases, tc);
  tc = optim_case ("sgd-weight-decay", BP_OPTIM_SGD);
  tc->config.lr = 0.1f;
  tc->config.momentum = 0.9f;
  tc->config.weight_decay = 0.2f;
  g_ptr_array_add (cases, tc);
  tc = optim_case ("sgd-dampening", BP_OPTIM_SGD);
  tc->config.lr = 0.1f;
  tc->config.momentum = 0.9f;
  tc->config.dampening = 0.3f;
  tc->config.weight_decay = 0.05f;
  g_ptr_array_add (cases, tc);
  tc = optim_case ("adam", BP_OPTIM_ADAM);
  tc->config.lr = 0.05f;
  tc->config.weight_decay = 0.1f;
  g_ptr_array_add (cases, tc);
  tc = optim_case ("adamw", BP_OPTIM_ADAMW);
  tc->config.lr = 0.05f;
  tc->config.beta1 = 0.8f;
  tc->config.beta2 = 0.99f;
  tc->config.weight_decay = 0.3f;
  g_ptr_array_add (cases, tc);
  tc = optim_case ("l1-sgd", BP_OPTIM_SGD);
  tc->config.lr = 0.1f;
  tc->config.momentum = 0.9f;
  tc->config.l1 = 0.05f;
  g_ptr_array_add (cases, tc);
  tc = optim_case ("l1-adam", BP_OPTIM_ADAM);
  tc->config.lr = 0.02f;
  tc->config.l1 = 0.1f;
  tc->config.weight_decay = 0.01f;
  g_ptr_array_add (cases, tc);
}

/* ---- configuration, state and errors ---- */

static void
test_optim_defaults (void)
{
  /* torch.optim defaults (SGD's lr has none in torch 1.13; ours is 0.01) */
  BpOptimConfig c = bp_optim_config_default (BP_OPTIM_SGD);
  g_assert_cmpint (c.kind, ==, BP_OPTIM_SGD);
  g_assert_cmpfloat (c.lr, ==, 0.01f);
  g_assert_cmpfloat (c.momentum, ==, 0.0f);
  g_assert_cmpfloat (c.dampening, ==, 0.0f);
  g_assert_false (c.nesterov);
  g_assert_cmpfloat (c.weight_decay, ==, 0.0f);
  g_assert_cmpfloat (c.l1, ==, 0.0f);
  c = bp_optim_config_default (BP_OPTIM_ADAM);
  g_assert_cmpfloat (c.lr, ==, 1e-3f);
  g_assert_cmpfloat (c.beta1, ==, 0.9f);
  g_assert_cmpfloat (c.beta2, ==, 0.999f);
  g_assert_cmpfloat (c.eps, ==, 1e-8f);
  g_assert_cmpfloat (c.weight_decay, ==, 0.0f);
  c = bp_optim_config_default (BP_OPTIM_ADAMW);
  g_assert_cmpint (c.kind, ==, BP_OPTIM_ADAMW);
  g_assert_cmpfloat (c.lr, ==, 1e-3f);
  g_assert_cmpfloat (c.weight_decay, ==, 1e-2f);

  BpSchedConfig s = bp_sched_config_default (BP_SCHED_PLATEAU);
  g_assert_cmpint (s.kind, ==, BP_SCHED_PLATEAU);
  g_assert_cmpfloat (s.factor, ==, 0.1f);
  g_assert_cmpint (s.patience, ==, 10);
  g_assert_cmpfloat (s.threshold, ==, 1e-4f);
  g_assert_cmpfloat (s.min_lr, ==, 0.0f);
  g_assert_cmpint (s.warmup_epochs, ==, 0);
  s = bp_sched_config_default (BP_SCHED_STEP);
  g_assert_cmpfloat (s.gamma, ==, 0.1f);
  s = bp_sched_config_default (BP_SCHED_COSINE);
  g_assert_cmpfloat (s.eta_min, ==, 0.0f);
}

static void
test_optim_errors (void)
{
  BpTensor *p = bp_tensor_new_1d (3);
  BpTensor *params[] = {p, p};
  BpOptimConfig c = bp_optim_config_default (BP_OPTIM_SGD);

  c.nesterov = true; /* without momentum */
  g_assert_null (bp_optimizer_new (&c, 1, params));
  g_assert_cmpint (bp_last_status (), ==, BP_ERR_INVALID);
  g_assert_nonnull (strstr (bp_last_error (), "Nesterov"));
  c.momentum = 0.9f;
  c.dampening = 0.1f; /* Nesterov with dampening */
  g_assert_null (bp_optimizer_new (&c, 1, params));
  c = bp_optim_config_default (BP_OPTIM_SGD);
  c.lr = -0.1f;
  g_assert_null (bp_optimizer_new (&c, 1, params));
  g_assert_nonnull (strstr (bp_last_error (), "lr"));
  c.lr = NAN;
  g_assert_null (bp_optimizer_new (&c, 1, params));
  c = bp_optim_config_default (BP_OPTIM_ADAM);
  c.beta1 = 1.0f;
  g_assert_null (bp_optimizer_new (&c, 1, params));
  g_assert_nonnull (strstr (bp_last_error (), "betas"));
  c = bp_optim_config_default (BP_OPTIM_ADAM);
  c.l1 = -1.0f;
  g_assert_null (bp_optimizer_new (&c, 1, params));
  c = bp_optim_config_default (BP_OPTIM_ADAM);
  g_assert_null (bp_optimizer_new (&c, 2, params)); /* the same tensor twice */
  g_assert_nonnull (strstr (bp_last_error (), "twice"));
  g_assert_null (bp_optimizer_new (&c, 1, (BpTensor *[]){NULL}));
  g_assert_null (bp_optimizer_new (&c, -1, params));

  /* an empty optimizer steps without doing anything; no state for SGD without momentum */
  BpOptimizer *opt = bp_optimizer_new (&c, 0, NULL);
  g_assert_nonnull (opt);
  g_assert_cmpint (bp_optimizer_step (opt), ==, BP_OK);
  g_assert_cmpint (bp_optimizer_n_state (opt), ==, 0);
  bp_optimizer_free (opt);
  c = bp_optim_config_default (BP_OPTIM_SGD);
  opt = bp_optimizer_new (&c, 1, params);
  g_assert_cmpint (bp_optimizer_n_state (opt), ==, 0);
  const char *name = "unset";
  g_assert_null (bp_optimizer_state (opt, 0, &name));
  g_assert_null (name);
  g_assert_cmpint (bp_last_status (), ==, BP_ERR_INVALID);
  /* without a gradient nothing moves; zero_grad keeps the buffer and zeroes it */
  p->data[0] = 1.0f;
  g_assert_cmpint (bp_optimizer_step (opt), ==, BP_OK);
  g_assert_cmpfloat (p->data[0], ==, 1.0f);
  bp_tensor_grad (p)[0] = 2.0f;
  g_assert_cmpint (bp_optimizer_step (opt), ==, BP_OK);
  g_assert_cmpfloat (p->data[0], ==, 1.0f - 0.01f * 2.0f);
  bp_optimizer_zero_grad (opt);
  g_assert_nonnull (p->grad);
  g_assert_cmpfloat (p->grad[0], ==, 0.0f);
  bp_optimizer_set_lr (opt, 0.5f);
  g_assert_cmpfloat (bp_optimizer_get_lr (opt), ==, 0.5f);
  bp_optimizer_free (opt);
  g_assert_cmpint (p->refcount, ==, 1); /* the optimizer's references are gone */
  bp_tensor_unref (p);
}

static void
test_optim_state_names (void)
{
  Problem pb;
  problem_init (&pb);
  BpOptimConfig c = bp_optim_config_default (BP_OPTIM_ADAMW);
  BpOptimizer *opt = bp_optimizer_new (&c, N_PARAMS, pb.params);
  g_assert_cmpint (bp_optimizer_n_state (opt), ==, 3 * N_PARAMS);
  const char *name;
  BpTensor *t = bp_optimizer_state (opt, 0, &name);
  g_assert_cmpstr (name, ==, "param0.exp_avg");
  g_assert_true (bp_tensor_same_shape (t, pb.params[0]));
  t = bp_optimizer_state (opt, 4, &name);
  g_assert_cmpstr (name, ==, "param1.exp_avg_sq");
  g_assert_true (bp_tensor_same_shape (t, pb.params[1]));
  t = bp_optimizer_state (opt, 3 * N_PARAMS - 1, &name);
  g_assert_cmpstr (name, ==, "param3.step");
  g_assert_cmpint (t->numel, ==, 1);
  g_assert_cmpint (t->device, ==, BP_DEVICE_CPU);
  bp_optimizer_free (opt);

  c = bp_optim_config_default (BP_OPTIM_SGD);
  c.momentum = 0.9f;
  opt = bp_optimizer_new (&c, N_PARAMS, pb.params);
  g_assert_cmpint (bp_optimizer_n_state (opt), ==, 2 * N_PARAMS);
  bp_optimizer_state (opt, 2, &name);
  g_assert_cmpstr (name, ==, "param1.momentum_buffer");
  bp_optimizer_state (opt, 3, &name);
  g_assert_cmpstr (name, ==, "param1.step");
  bp_optimizer_free (opt);
  problem_clear (&pb);
}

static void
run_steps (BpOptimizer *opt, BpTensor **params, const Problem *pb, int from, int to)
{
  for (int s = from; s < to; s++) {
    set_grads (params, pb, s);
    g_assert_cmpint (bp_optimizer_step (opt), ==, BP_OK);
  }
}

static gboolean
params_identical (BpTensor **a, BpTensor **b)
{
  for (int k = 0; k < N_PARAMS; k++)
    if (memcmp (a[k]->data, b[k]->data, (size_t) a[k]->numel * sizeof (float)) != 0)
      return FALSE;
  return TRUE;
}

static void
test_optim_state_restore (gconstpointer data)
{
  /* 5 uninterrupted steps == 3 steps, state copied into a fresh optimizer, 2 more steps */
  const OptimCase *tc = data;
  Problem pb;
  problem_init (&pb);
  BpTensor *a[N_PARAMS], *b[N_PARAMS], *c[N_PARAMS];
  copy_params (a, pb.params);
  BpOptimizer *oa = bp_optimizer_new (&tc->config, N_PARAMS, a);
  run_steps (oa, a, &pb, 0, N_STEPS);

  copy_params (b, pb.params);
  BpOptimizer *ob = bp_optimizer_new (&tc->config, N_PARAMS, b);
  run_steps (ob, b, &pb, 0, 3);
  /* the checkpoint: parameters and optimizer state of b */
  copy_params (c, b);
  BpOptimizer *oc = bp_optimizer_new (&tc->config, N_PARAMS, c);
  g_assert_cmpint (bp_optimizer_n_state (oc), ==, bp_optimizer_n_state (ob));
  for (int k = 0; k < bp_optimizer_n_state (ob); k++) {
    const char *nb, *nc;
    BpTensor *sb = bp_optimizer_state (ob, k, &nb), *sc = bp_optimizer_state (oc, k, &nc);
    g_assert_cmpstr (nb, ==, nc);
    g_assert_true (bp_tensor_same_shape (sb, sc));
    memcpy (sc->data, sb->data, (size_t) sb->numel * sizeof (float));
  }
  bp_optimizer_set_step (oc, bp_optimizer_get_step (ob));
  g_assert_cmpint (bp_optimizer_get_step (oc), ==, 3);
  run_steps (oc, c, &pb, 3, N_STEPS);
  g_assert_true (params_identical (a, c));

  /* without the state the continuation differs (so the check above means something) */
  BpOptimizer *od = bp_optimizer_new (&tc->config, N_PARAMS, b);
  run_steps (od, b, &pb, 3, N_STEPS);
  g_assert_false (params_identical (a, b));

  bp_optimizer_free (oa);
  bp_optimizer_free (ob);
  bp_optimizer_free (oc);
  bp_optimizer_free (od);
  free_params (a);
  free_params (b);
  free_params (c);
  problem_clear (&pb);
}

static void
test_optim_quadratic (void)
{
  /* f (w) = 1/2 w^T H w - b^T w with H symmetric positive definite (diagonally dominant),
   * b = H w*: SGD with momentum must reach w*. */
  enum { N = 8 };
  double h[N][N], wstar[N], b[N];
  bp_rng_seed (7);
  for (int i = 0; i < N; i++) {
    for (int j = 0; j <= i; j++)
      h[i][j] = h[j][i] = 0.2 * (bp_rng_uniform () - 0.5);
    h[i][i] = 1.0 + 2.0 * i / (N - 1); /* condition number about 3 */
    wstar[i] = 2.0 * bp_rng_uniform () - 1.0;
  }
  for (int i = 0; i < N; i++) {
    b[i] = 0.0;
    for (int j = 0; j < N; j++)
      b[i] += h[i][j] * wstar[j];
  }
  BpTensor *w = bp_tensor_new_1d (N);
  w->requires_grad = true;
  BpOptimConfig c = bp_optim_config_default (BP_OPTIM_SGD);
  c.lr = 0.1f;
  c.momentum = 0.9f;
  BpOptimizer *opt = bp_optimizer_new (&c, 1, &w);
  double f0 = 0.0, f = 0.0;
  for (int it = 0; it < 300; it++) {
    float *g = bp_tensor_grad (w);
    f = 0.0;
    for (int i = 0; i < N; i++) {
      double hw = 0.0;
      for (int j = 0; j < N; j++)
        hw += h[i][j] * w->data[j];
      g[i] = (float) (hw - b[i]);
      f += 0.5 * w->data[i] * hw - b[i] * w->data[i];
    }
    if (it == 0)
      f0 = f;
    g_assert_cmpint (bp_optimizer_step (opt), ==, BP_OK);
  }
  g_assert_cmpfloat (f, <, f0);
  for (int i = 0; i < N; i++)
    g_assert_cmpfloat (fabs (w->data[i] - wstar[i]), <, 1e-4);
  bp_optimizer_free (opt);
  bp_tensor_unref (w);
}

/* ---- gradient clipping ---- */

static void
test_clip_torch (void)
{
  /* two parameters with gradients (one large) and one without; max_norm well below, a little
   * below (clip factor about 0.8) and above the norm */
  bp_rng_seed (99);
  BpTensor *g0 = bp_test_rand (2, (int64_t[]){3, 4}, -1.0f, 1.0f, false);
  BpTensor *g1 = bp_test_rand (1, (int64_t[]){50000}, -0.01f, 0.01f, false);
  BpTensor *nograd = bp_tensor_new_1d (5);
  float max_norms[3] = {1.0f, 2.0f, 1e6f};
  BpTensor *got[9], *want[9];
  for (int c = 0; c < 3; c++) {
    BpTensor *p0 = bp_tensor_new_like (g0), *p1 = bp_tensor_new_like (g1);
    memcpy (bp_tensor_grad (p0), g0->data, (size_t) g0->numel * sizeof (float));
    memcpy (bp_tensor_grad (p1), g1->data, (size_t) g1->numel * sizeof (float));
    BpTensor *params[] = {p0, nograd, p1};
    got[3 * c] = bp_tensor_new_1d (1);
    got[3 * c]->data[0] = bp_clip_grad_norm (3, params, max_norms[c]);
    got[3 * c + 1] = bp_tensor_from_data (p0->ndim, p0->shape, p0->grad);
    got[3 * c + 2] = bp_tensor_from_data (p1->ndim, p1->shape, p1->grad);
    for (int k = 0; k < 3; k++)
      want[3 * c + k] = bp_tensor_new_like (got[3 * c + k]);
    bp_tensor_unref (p0);
    bp_tensor_unref (p1);
  }
  g_assert_null (nograd->grad);
  /* the norm is about 2.5: the first two cases clip, the last leaves the gradients alone */
  g_assert_cmpfloat (got[0]->data[0], >, 2.1f);
  g_assert_cmpfloat (got[0]->data[0], <, 2.7f);
  g_assert_cmpfloat (bp_test_max_rel_err (got[1]->data, g0->data, g0->numel), >, 0.1);
  g_assert_cmpfloat (bp_test_max_rel_err (got[4]->data, g0->data, g0->numel), >, 0.01);
  g_assert_cmpmem (got[7]->data, g0->numel * sizeof (float), g0->data, g0->numel * sizeof (float));

  g_autofree char *code = g_strdup_printf (
    "out = []\n"
    "for max_norm in (%.9g, %.9g, %.9g):\n"
    "    ps = [torch.zeros_like(g).requires_grad_(True) for g in x]\n"
    "    for p, g in zip(ps, x):\n"
    "        p.grad = g.detach().clone()\n"
    "    extra = torch.zeros(5, requires_grad=True)\n"
    "    n = torch.nn.utils.clip_grad_norm_([ps[0], extra, ps[1]], max_norm)\n"
    "    out += [n.reshape(1), ps[0].grad, ps[1].grad]\n",
    max_norms[0], max_norms[1], max_norms[2]);
  if (bp_test_torch (code, 2, (BpTensor *[]){g0, g1}, 9, want)) {
    for (int k = 0; k < 9; k++) {
      g_autofree char *what = g_strdup_printf ("clip_grad_norm output %d", k);
      bp_test_assert_close (what, got[k]->data, want[k]->data, got[k]->numel, 1e-5);
    }
  }
  for (int k = 0; k < 9; k++) {
    bp_tensor_unref (got[k]);
    bp_tensor_unref (want[k]);
  }
  bp_tensor_unref (g0);
  bp_tensor_unref (g1);
  bp_tensor_unref (nograd);
}

static void
test_clip_edge_cases (void)
{
  BpTensor *p = bp_tensor_new_1d (300000);
  float *g = bp_tensor_grad (p);
  bp_rng_seed (3);
  for (int64_t i = 0; i < p->numel; i++)
    g[i] = bp_rng_uniform () - 0.5f;

  /* the norm does not depend on the thread count */
  int threads = bp_get_num_threads ();
  bp_set_num_threads (1);
  float n1 = bp_clip_grad_norm (1, &p, 1e9f);
  bp_set_num_threads (2);
  float n2 = bp_clip_grad_norm (1, &p, 1e9f);
  bp_set_num_threads (threads);
  g_assert_cmpfloat (n1, ==, n2);
  double ref = 0.0;
  for (int64_t i = 0; i < p->numel; i++)
    ref += (double) g[i] * g[i];
  g_assert_cmpfloat_with_epsilon (n1, sqrt (ref), 1e-6 * sqrt (ref));

  /* after clipping, the norm is max_norm (up to the 1e-6 in the denominator) */
  float before = bp_clip_grad_norm (1, &p, 2.0f);
  g_assert_cmpfloat (before, ==, n1);
  float after = bp_clip_grad_norm (1, &p, 1e9f);
  g_assert_cmpfloat_with_epsilon (after, 2.0f, 1e-5f);

  /* a bad max_norm is an error; a non-finite norm leaves the gradients alone */
  g_assert_true (isnan (bp_clip_grad_norm (1, &p, -1.0f)));
  g_assert_cmpint (bp_last_status (), ==, BP_ERR_INVALID);
  g[5] = INFINITY;
  g_assert_true (isinf (bp_clip_grad_norm (1, &p, 1.0f)));
  g_assert_true (isinf (g[5]));
  g_assert_cmpfloat (fabsf (g[6]), >, 0.0f);
  /* no parameters with gradients: norm 0 */
  drop_grad (p);
  g_assert_cmpfloat (bp_clip_grad_norm (1, &p, 1.0f), ==, 0.0f);
  g_assert_cmpfloat (bp_clip_grad_norm (0, NULL, 1.0f), ==, 0.0f);
  bp_tensor_unref (p);
}

/* ---- the multi-tensor step against one parameter at a time ---- */

/* The reference step: each parameter alone (a table of one row) through the CPU's multi_step,
 * with the step's scalars computed here, on its own state: buf[2 k], buf[2 k + 1] and the step
 * count t[k] of parameter k. */
static void
reference_step (const BpOptimConfig *c, BpTensor **params, float **buf, float *t)
{
  const BpOptimKernels *kern = bp_backend (BP_DEVICE_CPU)->optim;
  bool stateful = c->kind != BP_OPTIM_SGD || c->momentum != 0.0f;
  for (int k = 0; k < N_PARAMS; k++) {
    BpTensor *p = params[k];
    if (!p->grad)
      continue;
    float step = stateful ? ++t[k] : 0.0f;
    BpOptimSlot row = {
      .param = p->data,
      .buf0 = stateful ? buf[2 * k] : NULL,
      .buf1 = c->kind != BP_OPTIM_SGD ? buf[2 * k + 1] : NULL,
      .grad = p->grad,
      .n = p->numel,
      .lr = c->lr,
      .bc2_sqrt = 1.0f,
      .keep = 1.0f,
      .first_step = c->kind == BP_OPTIM_SGD && step == 1.0f,
    };
    if (c->kind != BP_OPTIM_SGD) {
      double bc1 = 1.0 - pow ((double) c->beta1, (double) step);
      double bc2 = 1.0 - pow ((double) c->beta2, (double) step);
      row.lr = (float) ((double) c->lr / bc1);
      row.bc2_sqrt = (float) sqrt (bc2);
      if (c->kind == BP_OPTIM_ADAMW)
        row.keep = 1.0f - c->lr * c->weight_decay;
    }
    kern->multi_step (&row, 1, p->numel, c);
  }
}

/* The state tensors of opt equal the reference's bit for bit. */
static void
assert_state_identical (BpOptimizer *opt, float **buf, const float *t)
{
  for (int j = 0; j < bp_optimizer_n_state (opt); j++) {
    const char *name;
    BpTensor *st = bp_optimizer_state (opt, j, &name);
    int k = atoi (name + strlen ("param"));
    if (g_str_has_suffix (name, ".step"))
      g_assert_cmpfloat (st->data[0], ==, t[k]);
    else
      g_assert_cmpmem (st->data, st->numel * sizeof (float),
                       buf[2 * k + g_str_has_suffix (name, ".exp_avg_sq")],
                       st->numel * sizeof (float));
  }
}

static void
test_optim_multi (gconstpointer data)
{
  /* every case: N_STEPS steps through bp_optimizer_step (one multi_step call over all rows)
   * and one parameter at a time: the same bits after every step; parameter 2 has no gradient
   * at step 1 */
  const GPtrArray *cases = data;
  Problem pb;
  problem_init (&pb);
  for (guint c = 0; c < cases->len; c++) {
    const OptimCase *tc = cases->pdata[c];
    BpTensor *a[N_PARAMS], *b[N_PARAMS];
    copy_params (a, pb.params);
    copy_params (b, pb.params);
    BpOptimizer *opt = bp_optimizer_new (&tc->config, N_PARAMS, a);
    float *buf[2 * N_PARAMS], t[N_PARAMS] = {0};
    for (int k = 0; k < 2 * N_PARAMS; k++)
      buf[k] = g_new0 (float, b[k / 2]->numel);
    for (int s = 0; s < N_STEPS; s++) {
      set_grads (a, &pb, s);
      set_grads (b, &pb, s);
      g_assert_cmpint (bp_optimizer_step (opt), ==, BP_OK);
      reference_step (&tc->config, b, buf, t);
      if (!params_identical (a, b))
        g_error ("%s: the multi-tensor step differs from the one-parameter steps at step %d",
                 tc->name, s + 1);
      assert_state_identical (opt, buf, t);
    }
    g_assert_cmpint (bp_optimizer_get_step (opt), ==, N_STEPS);
    if (bp_optimizer_n_state (opt) > 0)
      g_assert_cmpfloat (t[2], ==, N_STEPS - 1); /* the step without a gradient is not counted */
    bp_optimizer_free (opt);
    for (int k = 0; k < 2 * N_PARAMS; k++)
      g_free (buf[k]);
    free_params (a);
    free_params (b);
  }
  problem_clear (&pb);
}

/* The step counts of opt's parameters (0 where a parameter has none). */
static void
get_steps (BpOptimizer *opt, float *t)
{
  memset (t, 0, N_PARAMS * sizeof *t);
  for (int j = 0; j < bp_optimizer_n_state (opt); j++) {
    const char *name;
    BpTensor *st = bp_optimizer_state (opt, j, &name);
    if (g_str_has_suffix (name, ".step"))
      t[atoi (name + strlen ("param"))] = st->data[0];
  }
}

static void
test_optim_prepare (void)
{
  /* prepare counts the steps of the parameters with a gradient and changes no parameter;
   * unprepare restores the counts (and the optimizer's counter after a launch); the step done
   * again then equals an uninterrupted optimizer's */
  Problem pb;
  problem_init (&pb);
  BpOptimConfig c = bp_optim_config_default (BP_OPTIM_ADAMW);
  c.lr = 0.05f;
  BpTensor *a[N_PARAMS], *b[N_PARAMS];
  copy_params (a, pb.params);
  copy_params (b, pb.params);
  BpOptimizer *oa = bp_optimizer_new (&c, N_PARAMS, a), *ob = bp_optimizer_new (&c, N_PARAMS, b);
  run_steps (oa, a, &pb, 0, 1);
  run_steps (ob, b, &pb, 0, 1);
  set_grads (a, &pb, 1); /* parameter 2 without a gradient */
  set_grads (b, &pb, 1);

  float before[N_PARAMS], t[N_PARAMS];
  get_steps (oa, before);
  g_assert_cmpint (bp_optimizer_prepare (oa), ==, BP_OK);
  get_steps (oa, t);
  for (int k = 0; k < N_PARAMS; k++)
    g_assert_cmpfloat (t[k], ==, before[k] + (k == 2 ? 0.0f : 1.0f));
  g_assert_true (params_identical (a, b));
  bp_optimizer_unprepare (oa);
  get_steps (oa, t);
  g_assert_cmpmem (t, sizeof t, before, sizeof before);
  bp_optimizer_unprepare (oa); /* nothing left to undo */
  get_steps (oa, t);
  g_assert_cmpmem (t, sizeof t, before, sizeof before);
  /* no launch without a prepare */
  g_assert_cmpint (bp_optimizer_launch (oa), ==, BP_ERR_INVALID);
  g_assert_cmpint (bp_optimizer_get_step (oa), ==, 1);
  g_assert_true (params_identical (a, b));

  /* prepared and launched, then undone (a capture that failed): counts and counter restored */
  BpTensor *saved[N_PARAMS];
  copy_params (saved, a);
  g_assert_cmpint (bp_optimizer_prepare (oa), ==, BP_OK);
  g_assert_cmpint (bp_optimizer_launch (oa), ==, BP_OK);
  g_assert_cmpint (bp_optimizer_launch (oa), ==, BP_ERR_INVALID); /* one launch per prepare */
  g_assert_cmpint (bp_optimizer_get_step (oa), ==, 2);
  bp_optimizer_unprepare (oa);
  g_assert_cmpint (bp_optimizer_get_step (oa), ==, 1);
  get_steps (oa, t);
  g_assert_cmpmem (t, sizeof t, before, sizeof before);
  /* put the parameters and state back as the failed capture would have left them */
  for (int k = 0; k < N_PARAMS; k++)
    memcpy (a[k]->data, saved[k]->data, (size_t) a[k]->numel * sizeof (float));
  for (int j = 0; j < bp_optimizer_n_state (oa); j++) {
    BpTensor *sa = bp_optimizer_state (oa, j, NULL), *sb = bp_optimizer_state (ob, j, NULL);
    memcpy (sa->data, sb->data, (size_t) sa->numel * sizeof (float));
  }
  free_params (saved);

  /* done again eagerly, in two halves: the same as ob's bp_optimizer_step */
  g_assert_cmpint (bp_optimizer_prepare (oa), ==, BP_OK);
  g_assert_cmpint (bp_optimizer_launch (oa), ==, BP_OK);
  g_assert_cmpint (bp_optimizer_step (ob), ==, BP_OK);
  g_assert_true (params_identical (a, b));
  g_assert_cmpint (bp_optimizer_get_step (oa), ==, bp_optimizer_get_step (ob));
  for (int j = 0; j < bp_optimizer_n_state (oa); j++) {
    BpTensor *sa = bp_optimizer_state (oa, j, NULL), *sb = bp_optimizer_state (ob, j, NULL);
    g_assert_cmpmem (sa->data, sa->numel * sizeof (float), sb->data, sb->numel * sizeof (float));
  }
  /* the lr is read by prepare: a change after it counts from the next step */
  run_steps (oa, a, &pb, 2, 3);
  run_steps (ob, b, &pb, 2, 3);
  set_grads (a, &pb, 3);
  set_grads (b, &pb, 3);
  g_assert_cmpint (bp_optimizer_prepare (oa), ==, BP_OK);
  bp_optimizer_set_lr (oa, 1.0f);
  g_assert_cmpint (bp_optimizer_launch (oa), ==, BP_OK);
  g_assert_cmpint (bp_optimizer_step (ob), ==, BP_OK);
  g_assert_true (params_identical (a, b));

  bp_optimizer_free (oa);
  bp_optimizer_free (ob);
  free_params (a);
  free_params (b);
  problem_clear (&pb);
}

/* Two parameters with gradients g0, g1 (one large) around one without. */
static void
clip_params (BpTensor **p, const BpTensor *g0, const BpTensor *g1)
{
  p[0] = bp_tensor_new_like (g0);
  p[1] = bp_tensor_new_1d (5);
  p[2] = bp_tensor_new_like (g1);
  memcpy (bp_tensor_grad (p[0]), g0->data, (size_t) g0->numel * sizeof (float));
  memcpy (bp_tensor_grad (p[2]), g1->data, (size_t) g1->numel * sizeof (float));
  for (int k = 0; k < 3; k++)
    for (int64_t i = 0; i < p[k]->numel; i++)
      p[k]->data[i] = 0.001f * (float) (i % 7);
}

static void
unref3 (BpTensor **p)
{
  for (int k = 0; k < 3; k++)
    bp_tensor_unref (p[k]);
}

static void
test_clip_launch (void)
{
  /* clip_launch + clip_norm against bp_clip_grad_norm: the same norm and the same gradient
   * bits, clipping (max_norm 1: the norm is about 2.5) or not (1e6), and with a NaN or an
   * infinite gradient (left alone); the launched step then equals a step after
   * bp_clip_grad_norm */
  bp_rng_seed (99);
  BpTensor *g0 = bp_test_rand (2, (int64_t[]){3, 4}, -1.0f, 1.0f, false);
  BpTensor *g1 = bp_test_rand (1, (int64_t[]){50000}, -0.01f, 0.01f, false);
  BpOptimConfig c = bp_optim_config_default (BP_OPTIM_SGD);
  c.momentum = 0.9f;
  float max_norms[] = {1.0f, 1e6f, 1.0f, 1.0f};
  for (int m = 0; m < 4; m++) {
    g1->data[123] = m == 2 ? NAN : m == 3 ? INFINITY : g1->data[123];
    BpTensor *a[3], *b[3];
    clip_params (a, g0, g1);
    clip_params (b, g0, g1);
    BpOptimizer *oa = bp_optimizer_new (&c, 3, a), *ob = bp_optimizer_new (&c, 3, b);
    float want = bp_clip_grad_norm (3, a, max_norms[m]);
    g_assert_cmpint (bp_optimizer_step (oa), ==, BP_OK);

    g_assert_cmpint (bp_optimizer_prepare (ob), ==, BP_OK);
    g_assert_cmpint (bp_optimizer_clip_launch (ob, max_norms[m]), ==, BP_OK);
    float got = bp_optimizer_clip_norm (ob);
    if (m < 2)
      g_assert_cmpfloat (got, ==, want);
    else if (m == 2)
      g_assert_true (isnan (got) && isnan (want));
    else
      g_assert_true (isinf (got) && isinf (want));
    for (int k = 0; k < 3; k += 2)
      g_assert_cmpmem (b[k]->grad, b[k]->numel * sizeof (float), a[k]->grad,
                       a[k]->numel * sizeof (float));
    if (m == 0) /* clipped */
      g_assert_cmpfloat (bp_test_max_rel_err (b[0]->grad, g0->data, g0->numel), >, 0.1);
    else /* left alone */
      g_assert_cmpmem (b[2]->grad, g1->numel * sizeof (float), g1->data,
                       g1->numel * sizeof (float));
    g_assert_null (b[1]->grad);

    g_assert_cmpint (bp_optimizer_launch (ob), ==, BP_OK);
    for (int k = 0; k < 3; k++)
      g_assert_cmpmem (b[k]->data, b[k]->numel * sizeof (float), a[k]->data,
                       a[k]->numel * sizeof (float));
    /* the norm stays readable after the step */
    float again = bp_optimizer_clip_norm (ob);
    g_assert_true (again == got || (isnan (again) && isnan (got)));
    bp_optimizer_free (oa);
    bp_optimizer_free (ob);
    unref3 (a);
    unref3 (b);
  }

  /* errors: no norm before a clip, no clip outside prepare..launch, a bad max_norm */
  BpTensor *p[3];
  clip_params (p, g0, g1);
  BpOptimizer *opt = bp_optimizer_new (&c, 3, p);
  g_assert_true (isnan (bp_optimizer_clip_norm (opt)));
  g_assert_cmpint (bp_last_status (), ==, BP_ERR_INVALID);
  g_assert_cmpint (bp_optimizer_clip_launch (opt, 1.0f), ==, BP_ERR_INVALID);
  g_assert_nonnull (strstr (bp_last_error (), "prepare"));
  g_assert_cmpint (bp_optimizer_prepare (opt), ==, BP_OK);
  g_assert_cmpint (bp_optimizer_clip_launch (opt, -1.0f), ==, BP_ERR_INVALID);
  g_assert_cmpint (bp_optimizer_clip_launch (opt, NAN), ==, BP_ERR_INVALID);
  g_assert_nonnull (strstr (bp_last_error (), "max_norm"));
  g_assert_cmpint (bp_optimizer_launch (opt), ==, BP_OK);
  g_assert_cmpint (bp_optimizer_clip_launch (opt, 1.0f), ==, BP_ERR_INVALID);
  /* no parameter with a gradient: norm 0 */
  for (int k = 0; k < 3; k++)
    drop_grad (p[k]);
  g_assert_cmpint (bp_optimizer_prepare (opt), ==, BP_OK);
  g_assert_cmpint (bp_optimizer_clip_launch (opt, 1.0f), ==, BP_OK);
  g_assert_cmpfloat (bp_optimizer_clip_norm (opt), ==, 0.0f);
  g_assert_cmpint (bp_optimizer_launch (opt), ==, BP_OK);
  bp_optimizer_free (opt);
  unref3 (p);
  bp_tensor_unref (g0);
  bp_tensor_unref (g1);
}

/* ---- schedulers against torch.optim.lr_scheduler ---- */

#define N_EPOCHS 12

/* Metrics for the plateau schedules: improvements, flat stretches and one change (epoch 9)
 * smaller than the relative threshold 1e-4. */
static const float plateau_metrics[N_EPOCHS] = {1.0f, 0.9f, 0.9f, 0.9f, 0.9f, 0.85f,
                                                0.85f, 0.85f, 0.85f, 0.84995f, 0.84995f, 0.5f};

typedef struct {
  BpSchedConfig config;
  const char *torch; /* a Python expression: the lr list over N_EPOCHS epochs */
} SchedCase;

static void
sched_lrs (const BpSchedConfig *config, float *lrs)
{
  BpTensor *p = bp_tensor_new_1d (1);
  BpOptimConfig oc = bp_optim_config_default (BP_OPTIM_SGD);
  oc.lr = 0.1f;
  BpOptimizer *opt = bp_optimizer_new (&oc, 1, &p);
  BpScheduler *s = bp_scheduler_new (config, opt);
  g_assert_nonnull (s);
  for (int e = 0; e < N_EPOCHS; e++) {
    g_assert_cmpint (bp_scheduler_get_epoch (s), ==, e);
    lrs[e] = bp_optimizer_get_lr (opt);
    bp_scheduler_step (s, plateau_metrics[e]);
  }
  bp_scheduler_free (s);
  bp_optimizer_free (opt);
  bp_tensor_unref (p);
}

static void
test_sched_torch (void)
{
  SchedCase cases[6];
  cases[0].config = bp_sched_config_default (BP_SCHED_STEP);
  cases[0].config.step_size = 3;
  cases[0].config.gamma = 0.5f;
  cases[0].torch = "run(lambda o: L.StepLR(o, step_size=3, gamma=0.5))";
  /* past t_max the closed form rises again, as torch does */
  cases[1].config = bp_sched_config_default (BP_SCHED_COSINE);
  cases[1].config.t_max = 5;
  cases[1].config.eta_min = 0.01f;
  cases[1].torch = "run(lambda o: L.CosineAnnealingLR(o, T_max=5, eta_min=np.float32(0.01).item()))";
  cases[2].config = bp_sched_config_default (BP_SCHED_PLATEAU);
  cases[2].config.factor = 0.5f;
  cases[2].config.patience = 1;
  cases[2].config.min_lr = 0.02f;
  cases[2].torch = "run(lambda o: L.ReduceLROnPlateau(o, mode='min', factor=0.5, patience=1, "
                   "threshold=np.float32(1e-4).item(), threshold_mode='rel', cooldown=0, "
                   "min_lr=np.float32(0.02).item()), metrics)";
  /* warm-up: LinearLR (1/W) then the main schedule, in a SequentialLR with milestone W */
  cases[3].config = bp_sched_config_default (BP_SCHED_COSINE);
  cases[3].config.t_max = 6;
  cases[3].config.warmup_epochs = 3;
  cases[3].torch = "run(lambda o: L.SequentialLR(o, [L.LinearLR(o, start_factor=1/3, end_factor=1.0, "
                   "total_iters=3), L.CosineAnnealingLR(o, T_max=6)], milestones=[3]))";
  cases[4].config = bp_sched_config_default (BP_SCHED_STEP);
  cases[4].config.step_size = 2;
  cases[4].config.gamma = 0.5f;
  cases[4].config.warmup_epochs = 4;
  cases[4].torch = "run(lambda o: L.SequentialLR(o, [L.LinearLR(o, start_factor=1/4, end_factor=1.0, "
                   "total_iters=4), L.StepLR(o, step_size=2, gamma=0.5)], milestones=[4]))";
  /* warm-up then plateau: the documented formula for W epochs, then ReduceLROnPlateau from the
   * base lr fed only the metrics of the epochs after the warm-up */
  cases[5].config = cases[2].config;
  cases[5].config.warmup_epochs = 3;
  cases[5].torch = "warm_plateau(3)";

  const char *code_head =
    "import warnings\n"
    "warnings.simplefilter('ignore')\n"
    "L = torch.optim.lr_scheduler\n"
    "metrics = x[0].detach().tolist()\n"
    "def run(make, metrics=None):\n"
    "    p = torch.zeros(1, requires_grad=True)\n"
    "    o = torch.optim.SGD([p], lr=np.float32(0.1).item())\n"
    "    s = make(o)\n"
    "    lrs = []\n"
    "    for e in range(len(x[0])):\n"
    "        lrs.append(o.param_groups[0]['lr'])\n"
    "        o.step()\n"
    "        s.step() if metrics is None else s.step(metrics[e])\n"
    "    return torch.tensor(lrs)\n"
    "def warm_plateau(W):\n"
    "    p = torch.zeros(1, requires_grad=True)\n"
    "    base = np.float32(0.1).item()\n"
    "    o = torch.optim.SGD([p], lr=base)\n"
    "    s = L.ReduceLROnPlateau(o, factor=0.5, patience=1, threshold=np.float32(1e-4).item(), "
    "min_lr=np.float32(0.02).item())\n"
    "    lrs = []\n"
    "    for e in range(len(x[0])):\n"
    "        if e <= W:\n"
    "            o.param_groups[0]['lr'] = base * (1 / W + (1 - 1 / W) * e / W) if e < W else base\n"
    "        lrs.append(o.param_groups[0]['lr'])\n"
    "        if e >= W:\n"
    "            s.step(metrics[e])\n"
    "    return torch.tensor(lrs)\n";
  GString *code = g_string_new (code_head);
  g_string_append (code, "out = [");
  BpTensor *got[6], *want[6];
  for (int k = 0; k < 6; k++) {
    got[k] = bp_tensor_new_1d (N_EPOCHS);
    want[k] = bp_tensor_new_1d (N_EPOCHS);
    sched_lrs (&cases[k].config, got[k]->data);
    g_string_append_printf (code, "%s%s", k ? ", " : "", cases[k].torch);
  }
  g_string_append (code, "]\n");

  /* sanity checks that do not need torch: the warm-up starts at base / W and reaches base */
  g_assert_cmpfloat_with_epsilon (got[3]->data[0], 0.1f / 3, 1e-7f);
  g_assert_cmpfloat_with_epsilon (got[3]->data[3], 0.1f, 1e-7f);
  g_assert_cmpfloat_with_epsilon (got[2]->data[N_EPOCHS - 1], 0.02f, 1e-7f); /* hit min_lr */

  BpTensor *metrics = bp_tensor_from_data (1, (int64_t[]){N_EPOCHS}, plateau_metrics);
  if (bp_test_torch (code->str, 1, &metrics, 6, want)) {
    for (int k = 0; k < 6; k++) {
      g_autofree char *what = g_strdup_printf ("schedule %d (%s)", k, cases[k].torch);
      bp_test_assert_close (what, got[k]->data, want[k]->data, N_EPOCHS, 1e-6);
    }
  }
  g_string_free (code, TRUE);
  bp_tensor_unref (metrics);
  for (int k = 0; k < 6; k++) {
    bp_tensor_unref (got[k]);
    bp_tensor_unref (want[k]);
  }
}

static void
test_sched_state (void)
{
  /* a plateau schedule with warm-up resumed from its state continues exactly */
  BpSchedConfig c = bp_sched_config_default (BP_SCHED_PLATEAU);
  c.factor = 0.5f;
  c.patience = 1;
  c.warmup_epochs = 2;
  float want[N_EPOCHS];
  sched_lrs (&c, want);

  BpTensor *p = bp_tensor_new_1d (1);
  BpOptimConfig oc = bp_optim_config_default (BP_OPTIM_SGD);
  oc.lr = 0.1f;
  BpOptimizer *opt = bp_optimizer_new (&oc, 1, &p);
  BpScheduler *s = bp_scheduler_new (&c, opt);
  for (int e = 0; e < 7; e++)
    bp_scheduler_step (s, plateau_metrics[e]);
  BpSchedState st;
  bp_scheduler_get_state (s, &st);
  g_assert_cmpint (st.epoch, ==, 7);
  bp_scheduler_free (s);
  bp_optimizer_free (opt);

  oc.lr = 0.1f;
  opt = bp_optimizer_new (&oc, 1, &p);
  s = bp_scheduler_new (&c, opt);
  bp_scheduler_set_state (s, &st);
  g_assert_cmpint (bp_scheduler_get_epoch (s), ==, 7);
  for (int e = 7; e < N_EPOCHS; e++) {
    g_assert_cmpfloat (bp_optimizer_get_lr (opt), ==, want[e]);
    bp_scheduler_step (s, plateau_metrics[e]);
  }
  /* the lr did change over the resumed part, so the comparison above means something */
  g_assert_cmpfloat (want[7], !=, want[N_EPOCHS - 1]);
  bp_scheduler_free (s);
  bp_optimizer_free (opt);
  bp_tensor_unref (p);
}

static void
test_sched_errors (void)
{
  BpTensor *p = bp_tensor_new_1d (1);
  BpOptimConfig oc = bp_optim_config_default (BP_OPTIM_SGD);
  BpOptimizer *opt = bp_optimizer_new (&oc, 1, &p);
  BpSchedConfig c = bp_sched_config_default (BP_SCHED_STEP);
  c.step_size = 0;
  g_assert_null (bp_scheduler_new (&c, opt));
  g_assert_cmpint (bp_last_status (), ==, BP_ERR_INVALID);
  g_assert_nonnull (strstr (bp_last_error (), "StepLR"));
  c = bp_sched_config_default (BP_SCHED_COSINE);
  c.t_max = 0;
  g_assert_null (bp_scheduler_new (&c, opt));
  c = bp_sched_config_default (BP_SCHED_PLATEAU);
  c.factor = 1.0f;
  g_assert_null (bp_scheduler_new (&c, opt));
  g_assert_nonnull (strstr (bp_last_error (), "factor"));
  c = bp_sched_config_default (BP_SCHED_CONSTANT);
  c.warmup_epochs = -1;
  g_assert_null (bp_scheduler_new (&c, opt));
  c.warmup_epochs = 0;
  g_assert_null (bp_scheduler_new (&c, NULL));
  /* a constant schedule keeps the lr; the optimizer's lr is untouched by the failures */
  g_assert_cmpfloat (bp_optimizer_get_lr (opt), ==, 0.01f);
  BpScheduler *s = bp_scheduler_new (&c, opt);
  for (int e = 0; e < 3; e++)
    bp_scheduler_step (s, NAN);
  g_assert_cmpfloat (bp_optimizer_get_lr (opt), ==, 0.01f);
  bp_scheduler_free (s);
  bp_optimizer_free (opt);
  bp_tensor_unref (p);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  bp_set_num_threads (2);

  g_autoptr (GPtrArray) cases = g_ptr_array_new_with_free_func (g_free);
  add_optim_cases (cases);
  g_test_add_data_func ("/optim/torch", cases, test_optim_torch);
  for (guint k = 0; k < cases->len; k++) {
    OptimCase *tc = cases->pdata[k];
    if (tc->config.kind == BP_OPTIM_SGD && tc->config.momentum == 0.0f)
      continue; /* stateless */
    g_autofree char *path = g_strdup_printf ("/optim/state-restore/%s", tc->name);
    g_test_add_data_func (path, tc, test_optim_state_restore);
  }
  g_test_add_func ("/optim/defaults", test_optim_defaults);
  g_test_add_func ("/optim/errors", test_optim_errors);
  g_test_add_func ("/optim/state-names", test_optim_state_names);
  g_test_add_func ("/optim/quadratic", test_optim_quadratic);
  g_test_add_data_func ("/optim/multi", cases, test_optim_multi);
  g_test_add_func ("/optim/prepare", test_optim_prepare);
  g_test_add_func ("/clip/torch", test_clip_torch);
  g_test_add_func ("/clip/edge-cases", test_clip_edge_cases);
  g_test_add_func ("/clip/launch", test_clip_launch);
  g_test_add_func ("/sched/torch", test_sched_torch);
  g_test_add_func ("/sched/state", test_sched_state);
  g_test_add_func ("/sched/errors", test_sched_errors);
  return g_test_run ();
}
