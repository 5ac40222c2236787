/* bp-optim.c: SGD, Adam and AdamW as in torch.optim (L2 / decoupled weight decay, L1 on the
 * gradient), their checkpointable state, and clip_grad_norm_. The per-element math runs in the
 * backend's fused kernels (engine/cpu/optim.c); this file keeps the state and the step counters
 * and computes the step-dependent scalars on the host. */
#include "bp-optim.h"
#include "bp-backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define STATE_NAME_LEN 48

/* The state of one parameter: up to two buffers of its shape and its update count. */
typedef struct {
  BpTensor *param;
  BpTensor *buf[2]; /* SGD: momentum_buffer; Adam: exp_avg, exp_avg_sq (NULL when unused) */
  BpTensor *step;   /* 1-element CPU tensor, NULL for stateless SGD */
} ParamState;

struct BpOptimizer {
  BpOptimConfig config;
  int n_params;
  ParamState *ps;
  int n_state;
  BpTensor **state;                   /* n_state views into ps[] (no extra references) */
  char (*state_names)[STATE_NAME_LEN];
  int64_t step;
};

BpOptimConfig
bp_optim_config_default (BpOptimKind kind)
{
  BpOptimConfig c = {
    .kind = kind,
    .lr = kind == BP_OPTIM_SGD ? 0.01f : 1e-3f,
    .momentum = 0.0f,
    .dampening = 0.0f,
    .nesterov = false,
    .beta1 = 0.9f,
    .beta2 = 0.999f,
    .eps = 1e-8f,
    .weight_decay = kind == BP_OPTIM_ADAMW ? 1e-2f : 0.0f,
    .l1 = 0.0f,
  };
  return c;
}

static bool
config_valid (const BpOptimConfig *c)
{
  /* the same range checks as torch.optim's constructors (written so that NaN fails) */
  if (c->kind != BP_OPTIM_SGD && c->kind != BP_OPTIM_ADAM && c->kind != BP_OPTIM_ADAMW) {
    bp_set_error (BP_ERR_INVALID, "optimizer: unknown kind %d", (int) c->kind);
    return false;
  }
  if (!(c->lr >= 0.0f) || !(c->weight_decay >= 0.0f) || !(c->l1 >= 0.0f)) {
    bp_set_error (BP_ERR_INVALID, "optimizer: invalid lr %g, weight decay %g or l1 %g (must be >= 0)",
                  c->lr, c->weight_decay, c->l1);
    return false;
  }
  if (c->kind == BP_OPTIM_SGD) {
    if (!(c->momentum >= 0.0f) || !(c->dampening >= 0.0f) || !(c->dampening <= 1.0f)) {
      bp_set_error (BP_ERR_INVALID, "SGD: invalid momentum %g or dampening %g", c->momentum,
                    c->dampening);
      return false;
    }
    if (c->nesterov && (c->momentum <= 0.0f || c->dampening != 0.0f)) {
      bp_set_error (BP_ERR_INVALID,
                    "SGD: Nesterov momentum requires a momentum and zero dampening (momentum %g, "
                    "dampening %g)", c->momentum, c->dampening);
      return false;
    }
  } else {
    if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f) || !(c->beta2 >= 0.0f && c->beta2 < 1.0f) ||
        !(c->eps >= 0.0f)) {
      bp_set_error (BP_ERR_INVALID, "Adam: invalid betas (%g, %g) or eps %g", c->beta1, c->beta2,
                    c->eps);
      return false;
    }
  }
  return true;
}

static bool
add_state (BpOptimizer *opt, BpTensor *t, int param, const char *what)
{
  if (!t)
    return false;
  opt->state[opt->n_state] = t;
  snprintf (opt->state_names[opt->n_state], STATE_NAME_LEN, "param%d.%s", param, what);
  opt->n_state++;
  return true;
}

BpOptimizer *
bp_optimizer_new (const BpOptimConfig *config, int n_params, BpTensor *const *params)
{
  if (!config_valid (config))
    return NULL;
  if (n_params < 0 || (n_params > 0 && !params)) {
    bp_set_error (BP_ERR_INVALID, "optimizer: %d parameters and no list", n_params);
    return NULL;
  }
  for (int k = 0; k < n_params; k++) {
    if (!params[k]) {
      bp_set_error (BP_ERR_INVALID, "optimizer: parameter %d is NULL", k);
      return NULL;
    }
    for (int j = 0; j < k; j++)
      if (params[j] == params[k]) {
        bp_set_error (BP_ERR_INVALID, "optimizer: parameter %d appears twice (also as %d)", k, j);
        return NULL;
      }
  }

  BpOptimizer *opt = calloc (1, sizeof *opt);
  int per_param = 0; /* state tensors per parameter */
  if (config->kind == BP_OPTIM_SGD)
    per_param = config->momentum != 0.0f ? 2 : 0;
  else
    per_param = 3;
  size_t n_max = (size_t) n_params * (size_t) per_param;
  if (opt) {
    opt->ps = calloc ((size_t) n_params + 1, sizeof *opt->ps);
    opt->state = calloc (n_max + 1, sizeof *opt->state);
    opt->state_names = calloc (n_max + 1, sizeof *opt->state_names);
  }
  if (!opt || !opt->ps || !opt->state || !opt->state_names) {
    if (opt) {
      free (opt->ps);
      free (opt->state);
      free (opt->state_names);
    }
    free (opt);
    bp_set_error (BP_ERR_NOMEM, "optimizer: out of memory for %d parameters", n_params);
    return NULL;
  }
  opt->config = *config;
  for (int k = 0; k < n_params; k++) {
    ParamState *s = &opt->ps[k];
    s->param = bp_tensor_ref (params[k]);
    opt->n_params = k + 1;
    if (per_param == 0)
      continue;
    bool ok = true;
    if (config->kind == BP_OPTIM_SGD) {
      s->buf[0] = bp_tensor_new_like (params[k]);
      ok = add_state (opt, s->buf[0], k, "momentum_buffer");
    } else {
      s->buf[0] = bp_tensor_new_like (params[k]);
      s->buf[1] = bp_tensor_new_like (params[k]);
      ok = add_state (opt, s->buf[0], k, "exp_avg") && add_state (opt, s->buf[1], k, "exp_avg_sq");
    }
    if (ok) {
      s->step = bp_tensor_new (1, (int64_t[]){1});
      ok = add_state (opt, s->step, k, "step");
    }
    if (!ok) {
      bp_optimizer_free (opt); /* the allocation set the error */
      return NULL;
    }
  }
  return opt;
}

void
bp_optimizer_free (BpOptimizer *opt)
{
  if (!opt)
    return;
  for (int k = 0; k < opt->n_params; k++) {
    bp_tensor_unref (opt->ps[k].param);
    bp_tensor_unref (opt->ps[k].buf[0]);
    bp_tensor_unref (opt->ps[k].buf[1]);
    bp_tensor_unref (opt->ps[k].step);
  }
  free (opt->ps);
  free (opt->state);
  free (opt->state_names);
  free (opt);
}

static const BpOptimKernels *
optim_kernels (const BpTensor *t, const char *who)
{
  const BpBackend *be = bp_backend (t->device);
  if (!be || !be->optim || !be->optim->sgd_step || !be->optim->adam_step || !be->optim->sumsq ||
      !be->optim->scale) {
    bp_set_error (BP_ERR_UNSUPPORTED, "%s: no optimizer kernels on device %s", who,
                  bp_device_name (t->device));
    return NULL;
  }
  return be->optim;
}

BpStatus
bp_optimizer_step (BpOptimizer *opt)
{
  /* check every device first so that a failure leaves all parameters untouched */
  for (int k = 0; k < opt->n_params; k++)
    if (opt->ps[k].param->grad && !optim_kernels (opt->ps[k].param, "optimizer step"))
      return BP_ERR_UNSUPPORTED;

  const BpOptimConfig *c = &opt->config;
  for (int k = 0; k < opt->n_params; k++) {
    ParamState *s = &opt->ps[k];
    BpTensor *p = s->param;
    if (!p->grad)
      continue;
    const BpOptimKernels *kern = bp_backend (p->device)->optim;
    /* the per-parameter step t, counted from 1 like torch's state['step'] */
    float t = 0.0f;
    if (s->step) {
      t = s->step->data[0] + 1.0f;
      s->step->data[0] = t;
    }
    if (c->kind == BP_OPTIM_SGD) {
      kern->sgd_step (p->data, s->buf[0] ? s->buf[0]->data : NULL, p->grad, p->numel, c->lr,
                      c->momentum, c->dampening, c->weight_decay, c->l1, c->nesterov, t == 1.0f);
    } else {
      /* bias corrections in double, as torch computes them in Python */
      double bc1 = 1.0 - pow ((double) c->beta1, (double) t);
      double bc2 = 1.0 - pow ((double) c->beta2, (double) t);
      float step_size = (float) ((double) c->lr / bc1);
      float bc2_sqrt = (float) sqrt (bc2);
      kern->adam_step (p->data, s->buf[0]->data, s->buf[1]->data, p->grad, p->numel, c->lr,
                       c->beta1, c->beta2, c->eps, c->weight_decay, c->l1,
                       c->kind == BP_OPTIM_ADAMW, step_size, bc2_sqrt);
    }
  }
  opt->step++;
  return BP_OK;
}

void
bp_optimizer_zero_grad (BpOptimizer *opt)
{
  for (int k = 0; k < opt->n_params; k++)
    bp_tensor_zero_grad (opt->ps[k].param);
}

float
bp_optimizer_get_lr (const BpOptimizer *opt)
{
  return opt->config.lr;
}

void
bp_optimizer_set_lr (BpOptimizer *opt, float lr)
{
  opt->config.lr = lr;
}

int
bp_optimizer_n_state (const BpOptimizer *opt)
{
  return opt->n_state;
}

BpTensor *
bp_optimizer_state (const BpOptimizer *opt, int k, const char **name)
{
  if (k < 0 || k >= opt->n_state) {
    bp_set_error (BP_ERR_INVALID, "optimizer state %d out of range (%d state tensors)", k,
                  opt->n_state);
    if (name)
      *name = NULL;
    return NULL;
  }
  if (name)
    *name = opt->state_names[k];
  return opt->state[k];
}

int64_t
bp_optimizer_get_step (const BpOptimizer *opt)
{
  return opt->step;
}

void
bp_optimizer_set_step (BpOptimizer *opt, int64_t step)
{
  opt->step = step;
}

float
bp_clip_grad_norm (int n_params, BpTensor *const *params, float max_norm)
{
  if (!(max_norm >= 0.0f)) {
    bp_set_error (BP_ERR_INVALID, "clip_grad_norm: max_norm %g must be >= 0", max_norm);
    return NAN;
  }
  double total = 0.0;
  for (int k = 0; k < n_params; k++) {
    BpTensor *p = params[k];
    if (!p || !p->grad)
      continue;
    const BpOptimKernels *kern = optim_kernels (p, "clip_grad_norm");
    if (!kern)
      return NAN;
    total += kern->sumsq (p->grad, p->numel);
  }
  double norm = sqrt (total);
  if (!isfinite (norm))
    return (float) norm;
  double coef = (double) max_norm / (norm + 1e-6);
  if (coef < 1.0) {
    for (int k = 0; k < n_params; k++) {
      BpTensor *p = params[k];
      if (p && p->grad)
        bp_backend (p->device)->optim->scale (p->grad, p->numel, (float) coef);
    }
  }
  return (float) norm;
}
