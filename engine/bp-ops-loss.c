/* bp-ops-loss.c: softmax, log-softmax and the losses: shape checks, the tape, backend kernels. */
#include "bp-ops-loss.h"
#include "bp-backend.h"
#include "bp-device-step.h"

/* ---- softmax and log-softmax over the last dimension ---- */

static void
softmax_backward (BpNode *node)
{
  /* out (R,C) = softmax (x) per row */
  BpTensor *x = node->in[0], *out = node->out;
  int64_t cols = x->shape[x->ndim - 1], rows = x->numel / cols;
  float *dx = bp_tensor_grad (x);
  if (dx)
    bp_backend (out->device)->loss->softmax_backward (dx, out->grad, out->data, rows, cols);
}

static void
log_softmax_backward (BpNode *node)
{
  /* out (R,C) = log_softmax (x) per row */
  BpTensor *x = node->in[0], *out = node->out;
  int64_t cols = x->shape[x->ndim - 1], rows = x->numel / cols;
  float *dx = bp_tensor_grad (x);
  if (dx)
    bp_backend (out->device)->loss->log_softmax_backward (dx, out->grad, out->data, rows, cols);
}

static BpTensor *
softmax_common (BpTensor *x, bool log)
{
  char sx[64];
  const char *name = log ? "log_softmax" : "softmax";
  if (x->ndim < 1 || x->shape[x->ndim - 1] == 0) {
    bp_set_error (BP_ERR_INVALID, "%s: input %s has no last dimension to normalise over", name,
                  bp_shape_str (x, sx, sizeof sx));
    return NULL;
  }
  int64_t cols = x->shape[x->ndim - 1], rows = x->numel / cols;
  BpTensor *out = bp_tensor_new_like (x);
  if (!out)
    return NULL;
  const BpLossKernels *k = bp_backend (x->device)->loss;
  if (log)
    k->log_softmax_forward (out->data, x->data, rows, cols);
  else
    k->softmax_forward (out->data, x->data, rows, cols);
  if (bp_needs_grad (1, &x))
    bp_tape_record (name, log ? log_softmax_backward : softmax_backward, out, 1, &x);
  return out;
}

BpTensor *
bp_softmax (BpTensor *x)
{
  return softmax_common (x, false);
}

BpTensor *
bp_log_softmax (BpTensor *x)
{
  return softmax_common (x, true);
}

/* ---- cross-entropy ---- */

/* The saved log-sum-exp of every row. */
static void
saved_free (void *ctx)
{
  bp_tensor_unref (ctx);
}

static void
cross_entropy_backward (BpNode *node)
{
  /* loss (1) = mean_r (lse_r - smoothed target logit), logits (N,C), targets (N) */
  BpTensor *logits = node->in[0], *targets = node->in[1], *out = node->out;
  BpTensor *lse = node->ctx;
  if (!logits->requires_grad)
    return;
  float *dl = bp_tensor_grad (logits);
  if (dl)
    bp_backend (out->device)->loss->cross_entropy_backward (
        dl, out->grad, logits->data, lse->data, targets->data, logits->shape[0],
        logits->shape[1], (float) node->f[0]);
}

static _Thread_local bool targets_trusted;

bool
bp_set_targets_trusted (bool trusted)
{
  bool was = targets_trusted;
  targets_trusted = trusted;
  return was;
}

BpTensor *
bp_cross_entropy (BpTensor *logits, BpTensor *targets, float label_smoothing)
{
  char sl[64], st[64];
  if (logits->ndim != 2 || targets->ndim != 1 || targets->shape[0] != logits->shape[0] ||
      logits->shape[0] == 0 || logits->shape[1] == 0 || logits->device != targets->device) {
    bp_set_error (BP_ERR_INVALID,
                  "cross_entropy: logits %s and targets %s are not (N,C) and (N) with N, C > 0",
                  bp_shape_str (logits, sl, sizeof sl), bp_shape_str (targets, st, sizeof st));
    return NULL;
  }
  if (!(label_smoothing >= 0.0f && label_smoothing <= 1.0f)) {
    bp_set_error (BP_ERR_INVALID, "cross_entropy: label_smoothing %g is not in [0, 1]",
                  (double) label_smoothing);
    return NULL;
  }
  int64_t n = logits->shape[0], c = logits->shape[1];
  const BpLossKernels *k = bp_backend (logits->device)->loss;
  float bad = 0.0f;
  if (!targets_trusted)
    bp_device_step_note ("the loss checks its targets on the host");
  int64_t at = targets_trusted ? -1 : k->check_targets (&bad, targets->data, n, c);
  if (at >= 0) {
    bp_set_error (BP_ERR_INVALID,
                  "cross_entropy: target %g at row %lld is not a class index in [0, %lld)",
                  (double) bad, (long long) at, (long long) c);
    return NULL;
  }
  BpTensor *out = bp_tensor_new_on (logits->device, 1, (int64_t[]){1});
  BpTensor *lse = bp_tensor_new_on (logits->device, 1, (int64_t[]){n});
  if (!out || !lse) {
    bp_tensor_unref (out);
    bp_tensor_unref (lse);
    return NULL;
  }
  k->cross_entropy_forward (out->data, lse->data, logits->data, targets->data, n, c,
                            label_smoothing);
  /* only the logits are differentiable; the targets are kept for the backward */
  if (bp_needs_grad (1, &logits)) {
    BpTensor *in[] = {logits, targets};
    BpNode *node = bp_tape_record ("cross_entropy", cross_entropy_backward, out, 2, in);
    node->ctx = lse;
    node->ctx_free = saved_free;
    node->f[0] = label_smoothing;
  } else {
    bp_tensor_unref (lse);
  }
  return out;
}

/* ---- MSE and BCE with logits ---- */

static bool
check_pair (const char *name, const BpTensor *a, const BpTensor *b)
{
  char sa[64], sb[64];
  if (!bp_tensor_same_shape (a, b) || a->numel == 0 || a->device != b->device) {
    bp_set_error (BP_ERR_INVALID, "%s: shapes %s and %s differ (or are empty)", name,
                  bp_shape_str (a, sa, sizeof sa), bp_shape_str (b, sb, sizeof sb));
    return false;
  }
  return true;
}

static void
mse_backward (BpNode *node)
{
  /* loss (1) = mean ((pred - target)^2) */
  BpTensor *pred = node->in[0], *target = node->in[1], *out = node->out;
  float *dp = pred->requires_grad ? bp_tensor_grad (pred) : NULL;
  float *dt = target->requires_grad ? bp_tensor_grad (target) : NULL;
  if (dp || dt)
    bp_backend (out->device)->loss->mse_backward (dp, dt, out->grad, pred->data, target->data,
                                                  pred->numel);
}

BpTensor *
bp_mse_loss (BpTensor *pred, BpTensor *target)
{
  if (!check_pair ("mse_loss", pred, target))
    return NULL;
  BpTensor *out = bp_tensor_new_on (pred->device, 1, (int64_t[]){1});
  if (!out)
    return NULL;
  bp_backend (pred->device)->loss->mse_forward (out->data, pred->data, target->data, pred->numel);
  BpTensor *in[] = {pred, target};
  if (bp_needs_grad (2, in))
    bp_tape_record ("mse_loss", mse_backward, out, 2, in);
  return out;
}

static void
bce_backward (BpNode *node)
{
  /* loss (1) = mean (max (x,0) - x*t + log1p (exp (-|x|))) */
  BpTensor *logits = node->in[0], *target = node->in[1], *out = node->out;
  float *dl = logits->requires_grad ? bp_tensor_grad (logits) : NULL;
  float *dt = target->requires_grad ? bp_tensor_grad (target) : NULL;
  if (dl || dt)
    bp_backend (out->device)->loss->bce_logits_backward (dl, dt, out->grad, logits->data,
                                                         target->data, logits->numel);
}

BpTensor *
bp_bce_with_logits (BpTensor *logits, BpTensor *target)
{
  if (!check_pair ("bce_with_logits", logits, target))
    return NULL;
  BpTensor *out = bp_tensor_new_on (logits->device, 1, (int64_t[]){1});
  if (!out)
    return NULL;
  bp_backend (logits->device)->loss->bce_logits_forward (out->data, logits->data, target->data,
                                                         logits->numel);
  BpTensor *in[] = {logits, target};
  if (bp_needs_grad (2, in))
    bp_tape_record ("bce_with_logits", bce_backward, out, 2, in);
  return out;
}

/* ---- accuracy ---- */

int64_t
bp_count_correct (const BpTensor *logits, const BpTensor *targets)
{
  char sl[64], st[64];
  if (logits->ndim != 2 || targets->ndim != 1 || targets->shape[0] != logits->shape[0] ||
      logits->shape[1] == 0 || logits->device != targets->device) {
    bp_set_error (BP_ERR_INVALID, "count_correct: logits %s and targets %s are not (N,C) and (N)",
                  bp_shape_str (logits, sl, sizeof sl), bp_shape_str (targets, st, sizeof st));
    return -1;
  }
  bp_device_step_note ("the correct predictions are counted on the host");
  return bp_backend (logits->device)->loss->count_correct (logits->data, targets->data,
                                                           logits->shape[0], logits->shape[1]);
}

BpStatus
bp_count_correct_add (BpTensor *acc, const BpTensor *logits, const BpTensor *targets)
{
  char sl[64], st[64];
  if (logits->ndim != 2 || targets->ndim != 1 || targets->shape[0] != logits->shape[0] ||
      logits->shape[1] == 0 || logits->device != targets->device || acc->numel != 1 ||
      acc->device != logits->device) {
    bp_set_error (BP_ERR_INVALID,
                  "count_correct: logits %s and targets %s are not (N,C) and (N), or the "
                  "counter is not one value on their device",
                  bp_shape_str (logits, sl, sizeof sl), bp_shape_str (targets, st, sizeof st));
    return BP_ERR_INVALID;
  }
  bp_backend (logits->device)->loss->count_correct_add (acc->data, logits->data, targets->data,
                                                        logits->shape[0], logits->shape[1]);
  return BP_OK;
}
