/* bp-ops-loss.h: softmax, log-softmax and the losses (cross-entropy, MSE, BCE with logits). */
#pragma once

#include "bp-tensor.h"

struct BpLossKernels {
  int placeholder; /* replaced by the real kernel pointers */
};

/* Over the last dimension. */
BpTensor *bp_softmax (BpTensor *x);
BpTensor *bp_log_softmax (BpTensor *x);

/* Mean cross-entropy of logits (N,C) against class indices (N) stored as float, with
 * label smoothing in [0, 1) as torch.nn.CrossEntropyLoss. Returns shape [1]. */
BpTensor *bp_cross_entropy (BpTensor *logits, BpTensor *targets, float label_smoothing);
/* Mean squared error, same shapes. */
BpTensor *bp_mse_loss (BpTensor *pred, BpTensor *target);
/* Mean binary cross-entropy on logits (numerically stable), same shapes. */
BpTensor *bp_bce_with_logits (BpTensor *logits, BpTensor *target);

/* Counts rows of logits (N,C) whose arg-max equals the target (no gradient). */
int64_t bp_count_correct (const BpTensor *logits, const BpTensor *targets);
