/* bp-test.h: shared test helpers: random tensors, finite-difference gradient checks and
 * running reference computations in Debian's PyTorch. */
#pragma once

#include <glib.h>

#include "bp-nn.h"
#include "bp-tensor.h"
#include "bp-text.h"
#include "bp-trainer.h"

/* A CPU tensor with values uniform in [lo, hi) from the engine RNG; requires_grad as given. */
BpTensor *bp_test_rand (int ndim, const int64_t *shape, float lo, float hi, bool requires_grad);

/* Largest |a - b| / max (1, |b|) over n values. */
double bp_test_max_rel_err (const float *a, const float *b, int64_t n);
/* The difference of two whole results as one number: |a - b| / |b| (Euclidean norms). */
double bp_test_norm_rel_diff (const float *a, const float *b, int64_t n);

/* A trainer of c, or NULL with the test skipped when its data set is not installed. */
BpTrainer *bp_test_new_trainer (const BpTrainConfig *c);
/* Asserts that max relative error (as above) is at most tol, printing where it fails. */
void bp_test_assert_close (const char *what, const float *got, const float *want, int64_t n,
                           double tol);

/* The function under test: computes a tensor from the inputs (records onto the tape when
 * gradients are enabled). Must be deterministic (re-seed inside for dropout). */
typedef BpTensor *(*BpTestForward) (BpTensor **inputs, void *user);

/* Checks the gradient of L = sum (f (inputs) * R), R a fixed random tensor, with respect to
 * every input whose requires_grad is set, against central finite differences with step eps.
 * Checks at most max_checks elements per input (spread over the tensor). Fails the test on a
 * relative error above tol. */
void bp_test_check_grad (BpTestForward f, int n_inputs, BpTensor **inputs, void *user, float eps,
                         double tol, int max_checks);

/* Whether Debian's PyTorch is usable ($BP_TORCH_PYTHON or /usr/bin/python3 with torch). */
gboolean bp_test_have_torch (void);

/* Runs `code` in Python with torch. The inputs are available as list `x` of float64 torch
 * tensors with requires_grad=True; the code must set `out` to a list of n_out tensors, which
 * are copied into the pre-shaped tensors `outputs` (numel must match). Skips the test with
 * a message (g_test_skip) and returns FALSE when torch is missing. */
gboolean bp_test_torch (const char *code, int n_in, BpTensor **inputs, int n_out,
                        BpTensor **outputs);

/* ---- files ---- */

/* A fresh folder (mode 0755) below parent, for one test; free the path. */
char *bp_test_temp_dir (const char *parent);
/* Removes a file or a folder tree (folders made writable first, so read-only ones go too);
 * a path that does not exist is fine. */
void bp_test_remove_tree (const char *path);
/* A file's whole contents (the test fails when it cannot be read). */
GBytes *bp_test_read_bytes (const char *path);

/* ---- the backprop command ---- */

typedef struct {
  int status; /* the exit status, 128 + the signal when killed */
  char *out, *err;
} BpTestCli;

/* Runs the built backprop ($BP_CLI) with args (NULL-terminated), extra environment (NULL-terminated
 * name/value pairs, or NULL) and setup run in the child before exec (or NULL). */
BpTestCli bp_test_cli_run (const char *const *env, GSpawnChildSetupFunc setup,
                           const char *const *args);
void bp_test_cli_clear (BpTestCli *r);
/* Fails the test, showing both outputs, unless the command exited 0. */
void bp_test_cli_assert_ok (const BpTestCli *r, const char *what);
/* Asserts the exit status and exactly one line on stderr that starts with prefix and holds
 * needle (and logs it). */
void bp_test_cli_assert_error (const BpTestCli *r, int status, const char *prefix,
                               const char *needle);

/* ---- the reversal task ---- */

/* The reversal task (4096 sequences of 8 tokens of 10, *task) learned by one attention layer
 * "attn" (embedding, learned positions, single-head self-attention, Linear) with Adam 1e-2, in
 * steps batches of 64 drawn from the first 4000 sequences (4000 on are held out). Returns the
 * model in training mode; *last_loss gets the last batch's loss. */
BpModel *bp_test_train_reverser (int steps, BpSeqTask **task, double *last_loss);
