/* bp-sched.c: learning-rate schedules stepped once per epoch: StepLR, CosineAnnealingLR and
 * ReduceLROnPlateau as in torch.optim.lr_scheduler, with an optional linear warm-up in front
 * (the formulas are in bp-optim.h). */
#include "bp-optim.h"

#include <math.h>
#include <stdlib.h>

#define PLATEAU_EPS 1e-8 /* torch's ReduceLROnPlateau eps: smaller reductions are ignored */

struct BpScheduler {
  BpSchedConfig config;
  BpOptimizer *opt; /* not owned */
  double base_lr;
  int epoch;
  /* plateau */
  double best;
  int num_bad_epochs;
  double plateau_lr;
};

BpSchedConfig
bp_sched_config_default (BpSchedKind kind)
{
  BpSchedConfig c = {
    .kind = kind,
    .step_size = 10,
    .gamma = 0.1f,
    .t_max = 10,
    .eta_min = 0.0f,
    .factor = 0.1f,
    .patience = 10,
    .threshold = 1e-4f,
    .min_lr = 0.0f,
    .warmup_epochs = 0,
  };
  return c;
}

/* The lr of epoch e (closed form; the plateau schedule returns its running lr). */
static double
lr_at (const BpScheduler *s, int e)
{
  const BpSchedConfig *c = &s->config;
  int w = c->warmup_epochs;
  if (e < w)
    return s->base_lr * (1.0 / w + (1.0 - 1.0 / w) * (double) e / (double) w);
  int m = e - w;
  switch (c->kind) {
  case BP_SCHED_STEP:
    return s->base_lr * pow ((double) c->gamma, (double) (m / c->step_size));
  case BP_SCHED_COSINE:
    return (double) c->eta_min + (s->base_lr - (double) c->eta_min) *
                                   (1.0 + cos (M_PI * (double) m / (double) c->t_max)) / 2.0;
  case BP_SCHED_PLATEAU:
    return s->plateau_lr;
  case BP_SCHED_CONSTANT:
  default:
    return s->base_lr;
  }
}

BpScheduler *
bp_scheduler_new (const BpSchedConfig *config, BpOptimizer *opt)
{
  const BpSchedConfig *c = config;
  if (!opt) {
    bp_set_error (BP_ERR_INVALID, "scheduler: no optimizer");
    return NULL;
  }
  if (c->warmup_epochs < 0) {
    bp_set_error (BP_ERR_INVALID, "scheduler: warmup_epochs %d is negative", c->warmup_epochs);
    return NULL;
  }
  switch (c->kind) {
  case BP_SCHED_CONSTANT:
    break;
  case BP_SCHED_STEP:
    if (c->step_size <= 0 || !(c->gamma >= 0.0f)) {
      bp_set_error (BP_ERR_INVALID, "StepLR: step_size %d must be > 0 and gamma %g >= 0",
                    c->step_size, c->gamma);
      return NULL;
    }
    break;
  case BP_SCHED_COSINE:
    if (c->t_max <= 0 || !(c->eta_min >= 0.0f)) {
      bp_set_error (BP_ERR_INVALID, "CosineAnnealingLR: t_max %d must be > 0 and eta_min %g >= 0",
                    c->t_max, c->eta_min);
      return NULL;
    }
    break;
  case BP_SCHED_PLATEAU:
    if (!(c->factor >= 0.0f && c->factor < 1.0f) || c->patience < 0 ||
        !(c->threshold >= 0.0f) || !(c->min_lr >= 0.0f)) {
      bp_set_error (BP_ERR_INVALID,
                    "ReduceLROnPlateau: factor %g must be in [0, 1), patience %d, threshold %g "
                    "and min_lr %g >= 0", c->factor, c->patience, c->threshold, c->min_lr);
      return NULL;
    }
    break;
  default:
    bp_set_error (BP_ERR_INVALID, "scheduler: unknown kind %d", (int) c->kind);
    return NULL;
  }
  BpScheduler *s = calloc (1, sizeof *s);
  if (!s) {
    bp_set_error (BP_ERR_NOMEM, "scheduler: out of memory");
    return NULL;
  }
  s->config = *c;
  s->opt = opt;
  s->base_lr = bp_optimizer_get_lr (opt);
  s->best = INFINITY;
  s->plateau_lr = s->base_lr;
  bp_optimizer_set_lr (opt, (float) lr_at (s, 0));
  return s;
}

void
bp_scheduler_free (BpScheduler *sched)
{
  free (sched);
}

static void
plateau_step (BpScheduler *s, double metric)
{
  /* torch's ReduceLROnPlateau.step: mode min, threshold_mode rel, cooldown 0 */
  const BpSchedConfig *c = &s->config;
  if (metric < s->best * (1.0 - (double) c->threshold)) {
    s->best = metric;
    s->num_bad_epochs = 0;
  } else {
    s->num_bad_epochs++;
  }
  if (s->num_bad_epochs > c->patience) {
    double new_lr = fmax (s->plateau_lr * (double) c->factor, (double) c->min_lr);
    if (s->plateau_lr - new_lr > PLATEAU_EPS)
      s->plateau_lr = new_lr;
    s->num_bad_epochs = 0;
  }
}

void
bp_scheduler_step (BpScheduler *sched, float metric)
{
  /* the epoch that just ended is sched->epoch; warm-up epochs do not feed the plateau */
  if (sched->config.kind == BP_SCHED_PLATEAU && sched->epoch >= sched->config.warmup_epochs)
    plateau_step (sched, (double) metric);
  sched->epoch++;
  bp_optimizer_set_lr (sched->opt, (float) lr_at (sched, sched->epoch));
}

int
bp_scheduler_get_epoch (const BpScheduler *sched)
{
  return sched->epoch;
}

void
bp_scheduler_get_state (const BpScheduler *sched, BpSchedState *state)
{
  state->epoch = sched->epoch;
  state->best = sched->best;
  state->num_bad_epochs = sched->num_bad_epochs;
  state->lr = sched->plateau_lr;
}

void
bp_scheduler_set_state (BpScheduler *sched, const BpSchedState *state)
{
  sched->epoch = state->epoch;
  sched->best = state->best;
  sched->num_bad_epochs = state->num_bad_epochs;
  sched->plateau_lr = state->lr;
  bp_optimizer_set_lr (sched->opt, (float) lr_at (sched, sched->epoch));
}
