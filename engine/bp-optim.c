/* bp-optim.c: SGD, Adam and AdamW as in torch.optim (L2 / decoupled weight decay, L1 on the
 * gradient), their checkpointable state, and clip_grad_norm_. The per-element math runs in the
 * backend's kernels (engine/cpu/optim.c, engine/cuda/optim.cu): a step is one multi-tensor
 * launch per device over a table of rows in the backend's memory. This file keeps the state and
 * the step counters, computes the step-dependent scalars on the host and uploads them in the
 * rows. */
#include "bp-optim.h"
#include "bp-backend.h"
#include "bp-device-step.h"

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

/* The multi-tensor table of one device, in that backend's memory. */
typedef struct {
  BpOptimSlot *table; /* room for `capacity` rows: the device's parameters */
  int capacity;
  int n_slots;        /* rows of the last prepare */
  int64_t max_n;      /* their largest n */
  double *sumsq;      /* clip_launch's sum of squares (one double) */
} DeviceTable;

struct BpOptimizer {
  BpOptimConfig config;
  int n_params;
  ParamState *ps;
  int n_state;
  BpTensor **state;                   /* n_state views into ps[] (no extra references) */
  char (*state_names)[STATE_NAME_LEN];
  int64_t step;

  /* the last prepare */
  BpOptimSlot *rows;                  /* host copy of the rows, grouped by device (n_params) */
  int *prepared;                      /* the parameters whose step it counted (n_params) */
  float *prev_step;                   /* their step counts before it */
  int n_prepared;
  bool pending;                       /* prepared, not launched yet */
  bool launched;                      /* launched since */
  bool clipped;                       /* a clip_launch ran: clip_dev holds the norm */
  int clip_dev;                       /* its device, -1 when no parameter had a gradient */
  DeviceTable dev[BP_DEVICE_COUNT];
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
    opt->rows = calloc ((size_t) n_params + 1, sizeof *opt->rows);
    opt->prepared = calloc ((size_t) n_params + 1, sizeof *opt->prepared);
    opt->prev_step = calloc ((size_t) n_params + 1, sizeof *opt->prev_step);
  }
  if (!opt || !opt->ps || !opt->state || !opt->state_names || !opt->rows || !opt->prepared ||
      !opt->prev_step) {
    if (opt) {
      free (opt->ps);
      free (opt->state);
      free (opt->state_names);
      free (opt->rows);
      free (opt->prepared);
      free (opt->prev_step);
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
  for (int d = 0; d < BP_DEVICE_COUNT; d++) {
    DeviceTable *dt = &opt->dev[d];
    if (!dt->table && !dt->sumsq)
      continue;
    const BpBackend *be = bp_backend ((BpDevice) d);
    be->free (dt->table, (size_t) dt->capacity * sizeof (BpOptimSlot));
    be->free (dt->sumsq, sizeof (double));
  }
  free (opt->ps);
  free (opt->state);
  free (opt->state_names);
  free (opt->rows);
  free (opt->prepared);
  free (opt->prev_step);
  free (opt);
}

static const BpOptimKernels *
optim_kernels (const BpTensor *t, const char *who)
{
  const BpBackend *be = bp_backend (t->device);
  if (!be || !be->optim || !be->optim->sumsq || !be->optim->scale) {
    bp_set_error (BP_ERR_UNSUPPORTED, "%s: no optimizer kernels on device %s", who,
                  bp_device_name (t->device));
    return NULL;
  }
  return be->optim;
}

static const BpOptimKernels *
multi_kernels (BpDevice device, const char *who, bool clip)
{
  const BpBackend *be = bp_backend (device);
  const BpOptimKernels *k = be ? be->optim : NULL;
  if (!k || !k->multi_step || (clip && (!k->multi_sumsq || !k->multi_clip))) {
    bp_set_error (BP_ERR_UNSUPPORTED, "%s: no multi-tensor optimizer kernels on device %s", who,
                  bp_device_name (device));
    return NULL;
  }
  return k;
}

/* The table of device d (checked by multi_kernels). */
static const BpOptimKernels *
kernels_of (int d)
{
  return bp_backend ((BpDevice) d)->optim;
}

/* Makes room for `need` rows in device d's table and allocates its sumsq. */
static bool
reserve_table (BpOptimizer *opt, BpDevice d, int need)
{
  DeviceTable *dt = &opt->dev[d];
  const BpBackend *be = bp_backend (d);
  if (dt->capacity < need) {
    be->free (dt->table, (size_t) dt->capacity * sizeof (BpOptimSlot));
    dt->capacity = 0;
    dt->table = be->alloc ((size_t) need * sizeof (BpOptimSlot));
    if (!dt->table)
      return false;
    dt->capacity = need;
  }
  if (!dt->sumsq)
    dt->sumsq = be->alloc (sizeof (double));
  return dt->sumsq != NULL;
}

/* This parameter's row for step t (its own step count, from 1; 0 for stateless SGD). */
static BpOptimSlot
slot_of (const BpOptimConfig *c, const ParamState *s, float t)
{
  BpTensor *p = s->param;
  BpOptimSlot row = {
    .param = p->data,
    .buf0 = s->buf[0] ? s->buf[0]->data : NULL,
    .buf1 = s->buf[1] ? s->buf[1]->data : NULL,
    .grad = p->grad,
    .n = p->numel,
    .lr = c->lr,
    .bc2_sqrt = 1.0f,
    .keep = 1.0f,
    .first_step = t == 1.0f,
  };
  if (c->kind != BP_OPTIM_SGD) {
    /* bias corrections in double, as torch computes them in Python */
    double bc1 = 1.0 - pow ((double) c->beta1, (double) t);
    double bc2 = 1.0 - pow ((double) c->beta2, (double) t);
    row.lr = (float) ((double) c->lr / bc1);
    row.bc2_sqrt = (float) sqrt (bc2);
    if (c->kind == BP_OPTIM_ADAMW)
      row.keep = 1.0f - c->lr * c->weight_decay;
    row.first_step = 0;
  }
  return row;
}

static void
undo_steps (BpOptimizer *opt)
{
  for (int j = 0; j < opt->n_prepared; j++) {
    ParamState *s = &opt->ps[opt->prepared[j]];
    if (s->step)
      s->step->data[0] = opt->prev_step[j];
  }
  opt->n_prepared = 0;
  for (int d = 0; d < BP_DEVICE_COUNT; d++)
    opt->dev[d].n_slots = 0;
  opt->pending = false;
}

BpStatus
bp_optimizer_prepare (BpOptimizer *opt)
{
  /* a failed prepare leaves nothing to undo */
  opt->n_prepared = 0;
  opt->pending = false;
  opt->launched = false;
  for (int d = 0; d < BP_DEVICE_COUNT; d++)
    opt->dev[d].n_slots = 0;

  /* check every device and make room first, so that a failure leaves all parameters untouched */
  int on_dev[BP_DEVICE_COUNT] = {0}, with_grad[BP_DEVICE_COUNT] = {0};
  for (int k = 0; k < opt->n_params; k++) {
    BpTensor *p = opt->ps[k].param;
    on_dev[p->device]++;
    if (p->grad) {
      if (!multi_kernels (p->device, "optimizer step", false))
        return BP_ERR_UNSUPPORTED;
      with_grad[p->device]++;
    }
  }
  for (int d = 0; d < BP_DEVICE_COUNT; d++)
    if (with_grad[d] > 0 && !reserve_table (opt, (BpDevice) d, on_dev[d]))
      return bp_last_status ();

  /* the per-parameter steps t, counted from 1 like torch's state['step'], and the rows grouped
   * by device, each device's in parameter order */
  int r = 0;
  for (int d = 0; d < BP_DEVICE_COUNT; d++) {
    DeviceTable *dt = &opt->dev[d];
    dt->n_slots = 0;
    dt->max_n = 0;
    for (int k = 0; k < opt->n_params; k++) {
      ParamState *s = &opt->ps[k];
      if (s->param->device != (BpDevice) d || !s->param->grad)
        continue;
      float t = 0.0f;
      if (s->step) {
        opt->prev_step[opt->n_prepared] = s->step->data[0];
        t = s->step->data[0] + 1.0f;
        s->step->data[0] = t;
      }
      opt->prepared[opt->n_prepared++] = k;
      opt->rows[r + dt->n_slots++] = slot_of (&opt->config, s, t);
      if (s->param->numel > dt->max_n)
        dt->max_n = s->param->numel;
    }
    if (dt->n_slots > 0) {
      size_t bytes = (size_t) dt->n_slots * sizeof (BpOptimSlot);
      BpStatus st = bp_backend ((BpDevice) d)->upload (dt->table, opt->rows + r, bytes);
      if (st != BP_OK) {
        undo_steps (opt);
        return st;
      }
    }
    r += dt->n_slots;
  }
  opt->pending = true;
  return BP_OK;
}

BpStatus
bp_optimizer_launch (BpOptimizer *opt)
{
  if (!opt->pending) {
    bp_set_error (BP_ERR_INVALID, "optimizer launch: no prepared step (bp_optimizer_prepare "
                                  "comes first, once per launch)");
    return BP_ERR_INVALID;
  }
  for (int d = 0; d < BP_DEVICE_COUNT; d++) {
    const DeviceTable *dt = &opt->dev[d];
    if (dt->n_slots > 0)
      kernels_of (d)->multi_step (dt->table, dt->n_slots, dt->max_n, &opt->config);
  }
  opt->pending = false;
  opt->launched = true;
  opt->step++;
  return BP_OK;
}

void
bp_optimizer_unprepare (BpOptimizer *opt)
{
  if (opt->launched)
    opt->step--;
  opt->launched = false;
  undo_steps (opt);
}

BpStatus
bp_optimizer_step (BpOptimizer *opt)
{
  BpStatus s = bp_optimizer_prepare (opt);
  return s != BP_OK ? s : bp_optimizer_launch (opt);
}

BpStatus
bp_optimizer_clip_launch (BpOptimizer *opt, float max_norm)
{
  if (!(max_norm >= 0.0f)) {
    bp_set_error (BP_ERR_INVALID, "clip_grad_norm: max_norm %g must be >= 0", max_norm);
    return BP_ERR_INVALID;
  }
  if (!opt->pending) {
    bp_set_error (BP_ERR_INVALID, "optimizer clip: no prepared step (it goes between "
                                  "bp_optimizer_prepare and bp_optimizer_launch)");
    return BP_ERR_INVALID;
  }
  int n_dev = 0, first = -1;
  for (int d = 0; d < BP_DEVICE_COUNT; d++) {
    if (opt->dev[d].n_slots == 0)
      continue;
    if (!multi_kernels ((BpDevice) d, "optimizer clip", true))
      return BP_ERR_UNSUPPORTED;
    if (first < 0)
      first = d;
    n_dev++;
  }
  opt->clipped = false;
  for (int d = 0; d < BP_DEVICE_COUNT; d++) {
    const DeviceTable *dt = &opt->dev[d];
    if (dt->n_slots > 0)
      kernels_of (d)->multi_sumsq (dt->sumsq, dt->table, dt->n_slots, dt->max_n);
  }
  if (n_dev > 1) {
    /* the joint norm: the devices' sums added on the host, the total sent to each */
    bp_device_step_note ("the gradients' norm is summed on the host over devices");
    double total = 0.0;
    for (int d = 0; d < BP_DEVICE_COUNT; d++) {
      if (opt->dev[d].n_slots == 0)
        continue;
      double part = 0.0;
      BpStatus s = bp_backend ((BpDevice) d)->download (&part, opt->dev[d].sumsq, sizeof part);
      if (s != BP_OK)
        return s;
      total += part;
    }
    for (int d = 0; d < BP_DEVICE_COUNT; d++) {
      if (opt->dev[d].n_slots == 0)
        continue;
      BpStatus s = bp_backend ((BpDevice) d)->upload (opt->dev[d].sumsq, &total, sizeof total);
      if (s != BP_OK)
        return s;
    }
  }
  for (int d = 0; d < BP_DEVICE_COUNT; d++) {
    const DeviceTable *dt = &opt->dev[d];
    if (dt->n_slots > 0)
      kernels_of (d)->multi_clip (dt->table, dt->n_slots, dt->max_n, dt->sumsq, max_norm);
  }
  opt->clipped = true;
  opt->clip_dev = first;
  return BP_OK;
}

float
bp_optimizer_clip_norm (BpOptimizer *opt)
{
  if (!opt->clipped) {
    bp_set_error (BP_ERR_INVALID, "optimizer clip norm: no bp_optimizer_clip_launch yet");
    return NAN;
  }
  if (opt->clip_dev < 0)
    return 0.0f;
  bp_device_step_note ("the gradients' norm is read back to the host");
  double total = 0.0;
  const BpBackend *be = bp_backend ((BpDevice) opt->clip_dev);
  if (be->download (&total, opt->dev[opt->clip_dev].sumsq, sizeof total) != BP_OK)
    return NAN;
  return (float) sqrt (total);
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
  bp_device_step_note ("the gradients' norm is read back to the host (clip_grad_norm)");
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
