/* bp-ops-norm.h: batch normalisation (1d and 2d) and layer normalisation. */
#pragma once

#include "bp-tensor.h"

/* Kernels of this family that a backend provides (filled in engine/cpu/norm.c). Pointers are
 * device pointers; backward kernels ACCUMULATE (+=) into every output that is not NULL. */
struct BpNormKernels {
  /* out (N,C,S), save_mean (C), save_invstd (C), running_mean (C), running_var (C),
   * x (N,C,S), weight (C), bias (C): S is 1 for (N,C), L for (N,C,L), H*W for (N,C,H,W).
   * training: save_mean / save_invstd are the batch mean and 1/sqrt (biased var + eps); the
   * running statistics (when not NULL) become (1-momentum)*running + momentum*batch with the
   * unbiased variance. eval: save_* come from the running statistics, which are left alone.
   * weight / bias may be NULL (1 and 0). */
  void (*batch_norm_forward) (float *out, float *save_mean, float *save_invstd,
                              float *running_mean, float *running_var, const float *x,
                              const float *weight, const float *bias, int64_t n, int64_t c,
                              int64_t s, bool training, float momentum, float eps);
  /* dx (N,C,S), dweight (C), dbias (C) +=, from dout (N,C,S), x (N,C,S), the saved mean and
   * invstd (C) and weight (C, may be NULL). training: the gradient through the batch
   * statistics; eval: the plain affine map. Any of dx, dweight, dbias may be NULL. */
  void (*batch_norm_backward) (float *dx, float *dweight, float *dbias, const float *dout,
                               const float *x, const float *mean, const float *invstd,
                               const float *weight, int64_t n, int64_t c, int64_t s,
                               bool training);
  /* out (R,D), save_mean (R), save_invstd (R), x (R,D), weight (D), bias (D) (may be NULL) */
  void (*layer_norm_forward) (float *out, float *save_mean, float *save_invstd, const float *x,
                              const float *weight, const float *bias, int64_t rows, int64_t d,
                              float eps);
  /* dx (R,D), dweight (D), dbias (D) +=, from dout (R,D), x (R,D), mean (R), invstd (R),
   * weight (D, may be NULL). Any of dx, dweight, dbias may be NULL. */
  void (*layer_norm_backward) (float *dx, float *dweight, float *dbias, const float *dout,
                               const float *x, const float *mean, const float *invstd,
                               const float *weight, int64_t rows, int64_t d);
};

/* x (N,C), (N,C,L) or (N,C,H,W); weight, bias, running_mean, running_var (C).
 * training: normalise with the batch statistics and update the running ones
 * (running = (1-momentum)*running + momentum*batch, unbiased variance as PyTorch);
 * eval: use the running statistics. weight/bias may be NULL (affine=False); in training the
 * running statistics may both be NULL (track_running_stats=False), in eval they are needed.
 * The running statistics are updated in place and are not part of autograd. */
BpTensor *bp_batch_norm (BpTensor *x, BpTensor *weight, BpTensor *bias, BpTensor *running_mean,
                         BpTensor *running_var, bool training, float momentum, float eps);

/* Normalises over the last `normalized_dims` dimensions; weight/bias have that trailing shape
 * (or are NULL). */
BpTensor *bp_layer_norm (BpTensor *x, int normalized_dims, BpTensor *weight, BpTensor *bias,
                         float eps);
