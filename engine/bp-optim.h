/* bp-optim.h: optimizers (SGD, Adam, AdamW), regularisation, gradient clipping, LR schedulers. */
#pragma once

#include "bp-tensor.h"

struct BpOptimKernels {
  int placeholder; /* replaced by the real kernel pointers */
};

typedef enum { BP_OPTIM_SGD, BP_OPTIM_ADAM, BP_OPTIM_ADAMW } BpOptimKind;

typedef struct {
  BpOptimKind kind;
  float lr;
  float momentum;     /* SGD */
  float dampening;    /* SGD */
  bool nesterov;      /* SGD */
  float beta1, beta2; /* Adam/AdamW */
  float eps;          /* Adam/AdamW */
  float weight_decay; /* L2 (SGD, Adam) or decoupled (AdamW) */
  float l1;           /* L1 penalty strength added to the gradient as l1 * sign(w) */
} BpOptimConfig;

/* PyTorch's defaults for each kind (lr 1e-3 for Adam/AdamW, 0.01 for SGD, ...). */
BpOptimConfig bp_optim_config_default (BpOptimKind kind);

typedef struct BpOptimizer BpOptimizer;

/* Takes references to the parameters. */
BpOptimizer *bp_optimizer_new (const BpOptimConfig *config, int n_params, BpTensor *const *params);
void bp_optimizer_free (BpOptimizer *opt);
BpStatus bp_optimizer_step (BpOptimizer *opt);
void bp_optimizer_zero_grad (BpOptimizer *opt);
float bp_optimizer_get_lr (const BpOptimizer *opt);
void bp_optimizer_set_lr (BpOptimizer *opt, float lr);

/* Optimizer state for checkpoints: the number of state tensors, and each one by index
 * (moment buffers per parameter), plus the step counter. */
int bp_optimizer_n_state (const BpOptimizer *opt);
BpTensor *bp_optimizer_state (const BpOptimizer *opt, int k, const char **name);
int64_t bp_optimizer_get_step (const BpOptimizer *opt);
void bp_optimizer_set_step (BpOptimizer *opt, int64_t step);

/* Scales all gradients so that their joint L2 norm is at most max_norm; returns the norm
 * before clipping (torch.nn.utils.clip_grad_norm_). */
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

BpSchedConfig bp_sched_config_default (BpSchedKind kind);

typedef struct BpScheduler BpScheduler;

BpScheduler *bp_scheduler_new (const BpSchedConfig *config, BpOptimizer *opt);
void bp_scheduler_free (BpScheduler *sched);
/* Call at the end of every epoch; `metric` is used by the plateau schedule (e.g. val loss). */
void bp_scheduler_step (BpScheduler *sched, float metric);
int bp_scheduler_get_epoch (const BpScheduler *sched);
