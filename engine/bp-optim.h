/* bp-optim.h: optimizers (SGD, Adam, AdamW), regularisation, gradient clipping, LR schedulers. */
#pragma once

#include "bp-tensor.h"

/* Kernels of this family that a backend provides (filled in engine/cpu/optim.c). Each works on
 * the flat arrays of one parameter: device pointers of n floats; outputs first, then inputs,
 * then the size, then the hyperparameters. The update formulas are written out in
 * bp-optim.c; the host computes everything that depends on the step counter. */
struct BpOptimKernels {
  /* torch.optim.SGD on one parameter, with g = grad + weight_decay * p + l1 * sign (p):
   *   momentum == 0:  p -= lr * g                               (buf unused, may be NULL)
   *   else:           buf = first_step ? g : momentum * buf + (1 - dampening) * g
   *                   p -= lr * (nesterov ? g + momentum * buf : buf) */
  void (*sgd_step) (float *param, float *buf, const float *grad, int64_t n, float lr,
                    float momentum, float dampening, float weight_decay, float l1, bool nesterov,
                    bool first_step);
  /* torch.optim.Adam / AdamW on one parameter, with g = grad + l1 * sign (p), plus
   * weight_decay * p when not decoupled; when decoupled (AdamW) p *= 1 - lr * weight_decay first:
   *   m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g * g
   *   p -= step_size * m / (sqrt (v) / bc2_sqrt + eps)
   * step_size = lr / (1 - beta1^t) and bc2_sqrt = sqrt (1 - beta2^t) for this parameter's step t. */
  void (*adam_step) (float *param, float *exp_avg, float *exp_avg_sq, const float *grad,
                     int64_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                     float l1, bool decoupled, float step_size, float bc2_sqrt);
  /* Returns sum x^2 accumulated in double (the same value for any thread count). */
  double (*sumsq) (const float *x, int64_t n);
  /* x *= a */
  void (*scale) (float *x, int64_t n, float a);
};

typedef enum { BP_OPTIM_SGD, BP_OPTIM_ADAM, BP_OPTIM_ADAMW } BpOptimKind;

typedef struct {
  BpOptimKind kind;
  float lr;
  float momentum;     /* SGD */
  float dampening;    /* SGD */
  bool nesterov;      /* SGD: needs momentum > 0 and dampening 0, as in PyTorch */
  float beta1, beta2; /* Adam/AdamW */
  float eps;          /* Adam/AdamW */
  float weight_decay; /* L2 (SGD, Adam) or decoupled (AdamW) */
  float l1;           /* L1 penalty strength added to the gradient as l1 * sign(w) */
} BpOptimConfig;

/* PyTorch's defaults for each kind: SGD lr 0.01 (torch 1.13 has no default lr), momentum 0,
 * dampening 0, no Nesterov, weight decay 0; Adam lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight
 * decay 0; AdamW the same with weight decay 1e-2. l1 is 0. All fields are filled whatever the
 * kind, so a config can switch kinds. */
BpOptimConfig bp_optim_config_default (BpOptimKind kind);

typedef struct BpOptimizer BpOptimizer;

/* Takes references to the parameters and allocates the state buffers (zeros, on each
 * parameter's device) at once, so a fresh optimizer has the same state list as a trained one.
 * Returns NULL (error set) on an invalid config, with PyTorch's range checks. */
BpOptimizer *bp_optimizer_new (const BpOptimConfig *config, int n_params, BpTensor *const *params);
void bp_optimizer_free (BpOptimizer *opt);
/* One update of every parameter whose ->grad is not NULL (others are skipped, as PyTorch
 * skips p.grad None: their state and per-parameter step stay as they are). */
BpStatus bp_optimizer_step (BpOptimizer *opt);
/* Zeroes the gradients that exist (PyTorch 1.13's zero_grad (set_to_none=False)). */
void bp_optimizer_zero_grad (BpOptimizer *opt);
float bp_optimizer_get_lr (const BpOptimizer *opt);
void bp_optimizer_set_lr (BpOptimizer *opt, float lr);

/* Optimizer state for checkpoints: the number of state tensors, and each one by index, named
 * like PyTorch's state_dict entries:
 *   SGD with momentum:  "param<i>.momentum_buffer", "param<i>.step"
 *   Adam, AdamW:        "param<i>.exp_avg", "param<i>.exp_avg_sq", "param<i>.step"
 *   SGD without momentum has no state.
 * Buffers have the parameter's shape and device; "param<i>.step" is a 1-element CPU tensor
 * holding the number of updates that parameter has had, as a float (like torch's step tensor;
 * exact up to 2^24 steps). Restoring = copying the saved values into these tensors' data.
 * Returns NULL (error set) for k out of range. The optimizer keeps ownership. */
int bp_optimizer_n_state (const BpOptimizer *opt);
BpTensor *bp_optimizer_state (const BpOptimizer *opt, int k, const char **name);
/* The number of bp_optimizer_step calls. The update math uses the per-parameter step tensors
 * above; setting this counter does not change them. */
int64_t bp_optimizer_get_step (const BpOptimizer *opt);
void bp_optimizer_set_step (BpOptimizer *opt, int64_t step);

/* Scales all gradients so that their joint L2 norm is at most max_norm; returns the norm
 * before clipping (torch.nn.utils.clip_grad_norm_): when max_norm / (norm + 1e-6) < 1 every
 * gradient is multiplied by that factor. Parameters without a gradient are skipped. A
 * non-finite norm is returned as is and the gradients are left alone (the caller decides to
 * skip the step). A negative or NaN max_norm returns NaN with the error set. */
float bp_clip_grad_norm (int n_params, BpTensor *const *params, float max_norm);

typedef enum {
  BP_SCHED_CONSTANT,
  BP_SCHED_STEP,    /* lr * gamma^(epoch / step_size) */
  BP_SCHED_COSINE,  /* cosine annealing to eta_min over t_max epochs */
  BP_SCHED_PLATEAU, /* ReduceLROnPlateau on a metric (mode min) */
} BpSchedKind;

typedef struct {
  BpSchedKind kind;
  int step_size;       /* StepLR */
  float gamma;         /* StepLR */
  int t_max;           /* cosine */
  float eta_min;       /* cosine */
  float factor;        /* plateau */
  int patience;        /* plateau */
  float threshold;     /* plateau, relative (PyTorch's rel mode) */
  float min_lr;        /* plateau */
  int warmup_epochs;   /* linear warm-up from lr/warmup_epochs... applied before the schedule */
} BpSchedConfig;

/* PyTorch's defaults: StepLR gamma 0.1, CosineAnnealingLR eta_min 0, ReduceLROnPlateau factor
 * 0.1, patience 10, threshold 1e-4, min_lr 0 (cooldown 0, eps 1e-8 fixed); step_size and t_max
 * have no PyTorch default and are 10 here; no warm-up. All fields are filled whatever the kind. */
BpSchedConfig bp_sched_config_default (BpSchedKind kind);

typedef struct BpScheduler BpScheduler;

/* The schedule, with base = the optimizer's lr when the scheduler is created and e = the
 * number of bp_scheduler_step calls so far (the epoch about to run):
 *   warm-up (W = warmup_epochs > 0), e < W:  lr = base * (1/W + (1 - 1/W) * e / W)
 *     (torch's LinearLR (start_factor = 1/W, end_factor = 1, total_iters = W) in a
 *      SequentialLR with milestone W; lr reaches base at e = W)
 *   then the main schedule at epoch m = e - W (m = e without warm-up):
 *     constant  base
 *     step      base * gamma^floor (m / step_size)
 *     cosine    eta_min + (base - eta_min) * (1 + cos (pi * m / t_max)) / 2  (torch's closed form)
 *     plateau   starts at base; metrics of warm-up epochs are ignored, later ones go through
 *               torch's ReduceLROnPlateau (mode min, threshold_mode rel, cooldown 0, eps 1e-8).
 * Sets the optimizer's lr for epoch 0 at once. Returns NULL (error set) on an invalid config. */
BpScheduler *bp_scheduler_new (const BpSchedConfig *config, BpOptimizer *opt);
void bp_scheduler_free (BpScheduler *sched);
/* Call at the end of every epoch; `metric` is used by the plateau schedule (e.g. val loss). */
void bp_scheduler_step (BpScheduler *sched, float metric);
int bp_scheduler_get_epoch (const BpScheduler *sched);

/* Everything a checkpoint needs to resume a schedule exactly (base lr is the optimizer's lr at
 * creation, so it comes from the config). */
typedef struct {
  int epoch;          /* bp_scheduler_step calls so far */
  double best;        /* plateau: best metric so far (INFINITY before the first) */
  int num_bad_epochs; /* plateau */
  double lr;          /* plateau: the current lr */
} BpSchedState;

void bp_scheduler_get_state (const BpScheduler *sched, BpSchedState *state);
/* Restores the state and sets the optimizer's lr for that epoch. */
void bp_scheduler_set_state (BpScheduler *sched, const BpSchedState *state);
