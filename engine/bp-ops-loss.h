/* bp-ops-loss.h: softmax, log-softmax and the losses (cross-entropy, MSE, BCE with logits). */
#pragma once

#include "bp-tensor.h"

/* Kernels of this family that a backend provides (filled in engine/cpu/loss.c). Pointers are
 * device pointers unless marked host; backward kernels ACCUMULATE (+=) into their outputs, and
 * read the loss gradient `dloss` (one float) from the device. */
struct BpLossKernels {
  /* out (R,C), x (R,C): softmax / log-softmax of every row */
  void (*softmax_forward) (float *out, const float *x, int64_t rows, int64_t cols);
  void (*log_softmax_forward) (float *out, const float *x, int64_t rows, int64_t cols);
  /* dx (R,C) += y * (dy - sum_j dy*y), y (R,C) the softmax output */
  void (*softmax_backward) (float *dx, const float *dy, const float *y, int64_t rows,
                            int64_t cols);
  /* dx (R,C) += dy - exp (y) * sum_j dy, y (R,C) the log-softmax output */
  void (*log_softmax_backward) (float *dx, const float *dy, const float *y, int64_t rows,
                                int64_t cols);
  /* The index of the first target (N) that is not an integer in [0, classes), or -1; its
   * value goes to *bad_value (host). */
  int64_t (*check_targets) (float *bad_value, const float *targets, int64_t n, int64_t classes);
  /* loss (1), lse (N) the log-sum-exp of every row, logits (N,C), targets (N) valid indices:
   * loss = mean over rows of (1-ls) * (lse - x[t]) + ls * (lse - mean_j x[j]) */
  void (*cross_entropy_forward) (float *loss, float *lse, const float *logits,
                                 const float *targets, int64_t n, int64_t c,
                                 float label_smoothing);
  /* dlogits (N,C) += dloss / N * (softmax - ((1-ls) * onehot (t) + ls / C)) */
  void (*cross_entropy_backward) (float *dlogits, const float *dloss, const float *logits,
                                  const float *lse, const float *targets, int64_t n, int64_t c,
                                  float label_smoothing);
  /* loss (1) = mean ((pred - target)^2) over n values */
  void (*mse_forward) (float *loss, const float *pred, const float *target, int64_t n);
  /* dpred += 2 (pred - target) / n * dloss, dtarget -= the same (either may be NULL) */
  void (*mse_backward) (float *dpred, float *dtarget, const float *dloss, const float *pred,
                        const float *target, int64_t n);
  /* loss (1) = mean (max (x,0) - x*t + log1p (exp (-|x|))) over n values */
  void (*bce_logits_forward) (float *loss, const float *logits, const float *target, int64_t n);
  /* dlogits += (sigmoid (x) - t) / n * dloss, dtarget += -x / n * dloss (either may be NULL) */
  void (*bce_logits_backward) (float *dlogits, float *dtarget, const float *dloss,
                               const float *logits, const float *target, int64_t n);
  /* Rows of logits (N,C) whose first arg-max equals targets (N); returned to the host. */
  int64_t (*count_correct) (const float *logits, const float *targets, int64_t n, int64_t c);
  /* acc[0] += the same count, in the backend's memory and without waiting for it (exact while
   * the total stays below 2^24): the accuracy of a training step that a CUDA graph replays. */
  void (*count_correct_add) (float *acc, const float *logits, const float *targets, int64_t n,
                             int64_t c);
};

/* Over the last dimension. */
BpTensor *bp_softmax (BpTensor *x);
BpTensor *bp_log_softmax (BpTensor *x);

/* Mean cross-entropy of logits (N,C) against class indices (N) stored as float, with
 * label smoothing in [0, 1] as torch.nn.CrossEntropyLoss. Returns shape [1]. A target that is
 * not an integer in [0, C) is an error (NULL), unless the calling thread trusts its targets
 * (below). The backward is the fused (softmax - smoothed one-hot) / N. */
BpTensor *bp_cross_entropy (BpTensor *logits, BpTensor *targets, float label_smoothing);
/* Mean squared error, same shapes. Returns shape [1]. */
BpTensor *bp_mse_loss (BpTensor *pred, BpTensor *target);
/* Mean binary cross-entropy on logits (numerically stable), same shapes. Returns shape [1]. */
BpTensor *bp_bce_with_logits (BpTensor *logits, BpTensor *target);

/* Counts rows of logits (N,C) whose arg-max equals the target (no gradient); -1 (with the
 * error set) on bad shapes. */
int64_t bp_count_correct (const BpTensor *logits, const BpTensor *targets);
/* acc (1) += that count, on the device and without waiting (no host read-back, so a CUDA graph
 * can contain it). Returns an error status on bad shapes or devices. */
BpStatus bp_count_correct_add (BpTensor *acc, const BpTensor *logits, const BpTensor *targets);

/* Whether bp_cross_entropy on this thread skips its target check (which reads the answer back
 * from the device: a host synchronisation that a CUDA graph cannot contain). For callers that
 * checked every target beforehand (the trainer checks its whole training set once). Returns
 * the previous setting; off by default. */
bool bp_set_targets_trusted (bool trusted);
