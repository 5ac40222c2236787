/* bp-ops-norm.h: batch normalisation (1d and 2d) and layer normalisation. */
#pragma once

#include "bp-tensor.h"

struct BpNormKernels {
  int placeholder; /* replaced by the real kernel pointers */
};

/* x (N,C), (N,C,L) or (N,C,H,W); weight, bias, running_mean, running_var (C).
 * training: normalise with the batch statistics and update the running ones
 * (running = (1-momentum)*running + momentum*batch, unbiased variance as PyTorch);
 * eval: use the running statistics. weight/bias may be NULL (affine=False). */
BpTensor *bp_batch_norm (BpTensor *x, BpTensor *weight, BpTensor *bias, BpTensor *running_mean,
                         BpTensor *running_var, bool training, float momentum, float eps);

/* Normalises over the last `normalized_dims` dimensions; weight/bias have that trailing shape
 * (or are NULL). */
BpTensor *bp_layer_norm (BpTensor *x, int normalized_dims, BpTensor *weight, BpTensor *bias,
                         float eps);
