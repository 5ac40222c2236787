/* bp-optim.h: optimizers (SGD, Adam, AdamW), regularisation, gradient clipping, LR schedulers. */
#pragma once

#include "bp-tensor.h"

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

/* One parameter's row of a multi-tensor update (the multi_* kernels below): the table of rows
 * lives in the backend's memory (device memory on CUDA), so that a launch reads the
 * step-dependent scalars from there and not from its arguments (a captured CUDA graph freezes
 * the arguments of its launches). bp_optimizer_prepare fills it. */
typedef struct {
  float *param;
  float *buf0;       /* SGD momentum buffer, Adam exp_avg; NULL for SGD without momentum */
  float *buf1;       /* Adam exp_avg_sq, else NULL */
  const float *grad; /* the input of the update; multi_clip scales it in place */
  int64_t n;
  float lr;           /* SGD: lr; Adam: step_size = lr / (1 - beta1^t) */
  float bc2_sqrt;     /* Adam: sqrt (1 - beta2^t) */
  float keep;         /* AdamW: 1 - lr * weight_decay; else 1 */
  int32_t first_step; /* SGD with momentum: this parameter's first step */
} BpOptimSlot;

/* Kernels of this family that a backend provides (engine/cpu/optim.c, engine/cuda/optim.cu).
 * sumsq and scale work on the flat array of one parameter (device pointers of n floats); the
 * multi_* entries work on all parameters of a device at once, through a table of BpOptimSlot
 * rows. The host computes everything that depends on the step counter (bp-optim.c). */
struct BpOptimKernels {
  /* Returns sum x^2 accumulated in double (the same value for any thread count). */
  double (*sumsq) (const float *x, int64_t n);
  /* x *= a */
  void (*scale) (float *x, int64_t n, float a);

  /* The multi-tensor entries: `table` (backend memory) holds n_slots rows, max_n is the
   * largest row's n (it sizes the grid). They read nothing back to the host and allocate
   * nothing, so that they can run inside a CUDA stream capture; on CUDA each is one launch
   * (multi_sumsq two). Errors are kept for synchronize. */
  /* Every row's update, with the hyperparameters that do not change per step from c (kind,
   * momentum, dampening, nesterov, weight_decay, l1, beta1, beta2, eps; c->lr is unused) and
   * the row's scalars:
   *   SGD (torch.optim.SGD), g = grad + weight_decay * p + l1 * sign (p):
   *     momentum == 0:  p -= lr * g                               (buf0 unused, may be NULL)
   *     else:           buf0 = first_step ? g : momentum * buf0 + (1 - dampening) * g
   *                     p -= lr * (nesterov ? g + momentum * buf0 : buf0)
   *   Adam / AdamW (torch.optim.Adam, AdamW), g = grad + l1 * sign (p), plus weight_decay * p
   *   for Adam (AdamW decays through keep = 1 - lr * weight_decay instead):
   *     m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g * g
   *     p = p * keep - lr * m / (sqrt (v) / bc2_sqrt + eps)
   *   with m = buf0, v = buf1, and the row's lr = step_size = lr / (1 - beta1^t) and
   *   bc2_sqrt = sqrt (1 - beta2^t) for the parameter's step t. */
  void (*multi_step) (const BpOptimSlot *table, int n_slots, int64_t max_n,
                      const BpOptimConfig *c);
  /* out[0] (one double in backend memory) = the sum of grad^2 over every row, accumulated in
   * double, the same value on every run. The CPU adds sumsq of each row in row order (so its
   * value is bp_clip_grad_norm's); CUDA adds fixed slices of all rows per block, then the
   * block sums in order. */
  void (*multi_sumsq) (double *out, const BpOptimSlot *table, int n_slots, int64_t max_n);
  /* bp_clip_grad_norm's scaling with the norm read from backend memory: norm = sqrt (*sumsq);
   * when it is finite and coef = max_norm / (norm + 1e-6) < 1 (in double), every row's grad is
   * multiplied by (float) coef; otherwise nothing changes. */
  void (*multi_clip) (const BpOptimSlot *table, int n_slots, int64_t max_n, const double *sumsq,
                      float max_norm);
};

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
 * skips p.grad None: their state and per-parameter step stay as they are):
 * bp_optimizer_prepare, then bp_optimizer_launch. */
BpStatus bp_optimizer_step (BpOptimizer *opt);

/* A step in two halves, for a trainer that captures the device work of its training step in a
 * CUDA graph (a captured launch keeps its arguments, so the per-step scalars travel in device
 * memory):
 *
 * bp_optimizer_prepare is the host half. For every parameter with a gradient it counts the
 * parameter's step and computes the row of its update (BpOptimSlot: the lr, or Adam's
 * step_size = lr / (1 - beta1^t) and sqrt (1 - beta2^t) with the bias corrections in double,
 * AdamW's keep = 1 - lr * weight_decay, SGD's first step), then uploads the rows into a table
 * in backend memory, one per device (the rows of a device in parameter order). The tables
 * belong to the optimizer: allocated on the first prepare with room for all parameters on
 * their device, so their addresses stay the same from step to step (a table moves only when
 * parameters move to another device). The lr is read here: bp_optimizer_set_lr after prepare
 * counts from the next prepare. An error (no kernels on a device, out of memory, a failed
 * upload) leaves every step count as it was. Uploading is not capturable: prepare runs
 * outside the capture, before every launch or replay.
 *
 * bp_optimizer_launch is the device half: the backend's multi_step once per device over the
 * prepared table, and the optimizer's step counter + 1. It allocates nothing and reads
 * nothing back, so it can run inside a stream capture; a replayed graph updates with the rows
 * of the latest prepare, and is valid while the same parameters have gradients (the number
 * of rows is a launch argument). BP_ERR_INVALID without a prepare since the last launch.
 *
 * bp_optimizer_unprepare undoes the step counts of the last prepare (per parameter, and the
 * optimizer's counter when that prepare was launched), for a capture that failed and is done
 * again eagerly; a second call does nothing. */
BpStatus bp_optimizer_prepare (BpOptimizer *opt);
BpStatus bp_optimizer_launch (BpOptimizer *opt);
void bp_optimizer_unprepare (BpOptimizer *opt);

/* Gradient clipping on the device, between prepare and launch: bp_clip_grad_norm's rule over
 * the prepared gradients (the parameters with a gradient), with the norm kept in backend
 * memory: the backend's multi_sumsq into a double that the optimizer owns (allocated by
 * prepare), then multi_clip, which scales only when the norm is finite and max_norm /
 * (norm + 1e-6) < 1. With one device nothing is read back, so it can be captured; with
 * parameters on several devices the per-device sums are read back and added on the host, and
 * the total is uploaded to each device before its multi_clip. On the CPU the gradients and the
 * norm are bp_clip_grad_norm's bit for bit; on CUDA the sum is added in another order.
 * BP_ERR_INVALID for a negative or NaN max_norm or without a prepare since the last launch.
 *
 * bp_optimizer_clip_norm returns the norm before clipping of the last clip_launch (or of the
 * graph replay that ran it), downloaded from the device (this waits for the device): for
 * reporting after the step. 0 when no parameter had a gradient; NaN with the error set before
 * any clip_launch or when the download fails. */
BpStatus bp_optimizer_clip_launch (BpOptimizer *opt, float max_norm);
float bp_optimizer_clip_norm (BpOptimizer *opt);
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
