/* bp-test.c: shared test helpers (see bp-test.h). */
#include "bp-test.h"

#include <glib/gstdio.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bp-ops-eltwise.h"
#include "bp-ops-loss.h"
#include "bp-optim.h"
#include "bp-rng.h"
#include "bp-spec.h"

BpTensor *
bp_test_rand (int ndim, const int64_t *shape, float lo, float hi, bool requires_grad)
{
  BpTensor *t = bp_tensor_new (ndim, shape);
  g_assert_nonnull (t);
  bp_tensor_uniform (t, lo, hi);
  t->requires_grad = requires_grad;
  return t;
}

double
bp_test_norm_rel_diff (const float *a, const float *b, int64_t n)
{
  double d = 0.0, s = 0.0;
  for (int64_t i = 0; i < n; i++) {
    d += ((double) a[i] - b[i]) * ((double) a[i] - b[i]);
    s += (double) b[i] * b[i];
  }
  return sqrt (d) / fmax (sqrt (s), 1e-30);
}

BpTrainer *
bp_test_new_trainer (const BpTrainConfig *c)
{
  g_autoptr (GError) error = NULL;
  BpTrainer *t = bp_trainer_new (c, &error);
  if (!t && g_error_matches (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_DATA)) {
    g_test_skip_printf ("the data set is not installed: %s", error->message);
    return NULL;
  }
  g_assert_no_error (error);
  return t;
}

double
bp_test_max_rel_err (const float *a, const float *b, int64_t n)
{
  double worst = 0.0;
  for (int64_t i = 0; i < n; i++) {
    double d = fabs ((double) a[i] - (double) b[i]) / fmax (1.0, fabs ((double) b[i]));
    if (!(d <= worst)) /* catches NaN too */
      worst = isnan (d) ? INFINITY : d;
  }
  return worst;
}

void
bp_test_assert_close (const char *what, const float *got, const float *want, int64_t n,
                      double tol)
{
  for (int64_t i = 0; i < n; i++) {
    double d = fabs ((double) got[i] - (double) want[i]) / fmax (1.0, fabs ((double) want[i]));
    if (!(d <= tol))
      g_error ("%s: element %" G_GINT64_FORMAT " is %.7g, expected %.7g (rel. error %.3g > %.3g)",
               what, i, got[i], want[i], d, tol);
  }
}

static double
weighted_sum (BpTestForward f, BpTensor **inputs, void *user, const float *r, int64_t n)
{
  BpTensor *out = f (inputs, user);
  g_assert_nonnull (out);
  g_assert_cmpint (out->numel, ==, n);
  double s = 0.0;
  for (int64_t i = 0; i < n; i++)
    s += (double) out->data[i] * (double) r[i];
  bp_tensor_unref (out);
  return s;
}

void
bp_test_check_grad (BpTestForward f, int n_inputs, BpTensor **inputs, void *user, float eps,
                    double tol, int max_checks)
{
  for (int k = 0; k < n_inputs; k++)
    if (inputs[k])
      bp_tensor_zero_grad (inputs[k]);

  BpTensor *out = f (inputs, user);
  g_assert_nonnull (out);
  int64_t n = out->numel;
  float *r = g_new (float, n);
  for (int64_t i = 0; i < n; i++)
    r[i] = bp_rng_uniform () * 2.0f - 1.0f;
  g_assert_cmpint (bp_backward_with (out, r), ==, BP_OK);
  bp_tensor_unref (out);

  /* keep the analytic gradients before the tape (and the inputs' grad buffers) change */
  float **analytic = g_new0 (float *, n_inputs);
  for (int k = 0; k < n_inputs; k++) {
    if (!inputs[k] || !inputs[k]->requires_grad)
      continue;
    g_assert_nonnull (inputs[k]->grad);
    analytic[k] = g_memdup2 (inputs[k]->grad, (gsize) inputs[k]->numel * sizeof (float));
  }
  bp_tape_clear ();

  bool was = bp_set_grad_enabled (false);
  for (int k = 0; k < n_inputs; k++) {
    if (!analytic[k])
      continue;
    BpTensor *x = inputs[k];
    int64_t step = x->numel > max_checks ? x->numel / max_checks : 1;
    for (int64_t i = 0; i < x->numel; i += step) {
      float saved = x->data[i];
      x->data[i] = saved + eps;
      double lp = weighted_sum (f, inputs, user, r, n);
      x->data[i] = saved - eps;
      double lm = weighted_sum (f, inputs, user, r, n);
      x->data[i] = saved;
      double numeric = (lp - lm) / (2.0 * (double) eps);
      double a = analytic[k][i];
      double err = fabs (a - numeric) / fmax (1.0, fabs (numeric));
      if (!(err <= tol))
        g_error ("gradient of input %d element %" G_GINT64_FORMAT
                 ": analytic %.6g, finite difference %.6g (rel. error %.3g > %.3g)",
                 k, i, a, numeric, err, tol);
    }
    g_free (analytic[k]);
  }
  bp_set_grad_enabled (was);
  g_free (analytic);
  g_free (r);
}

static const char *
torch_python (void)
{
  const char *p = g_getenv ("BP_TORCH_PYTHON");
  return p && *p ? p : "/usr/bin/python3";
}

gboolean
bp_test_have_torch (void)
{
  static int have = -1;
  if (have < 0) {
    const char *argv[] = {torch_python (), "-c", "import torch, numpy", NULL};
    int status = 0;
    have = g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL,
                         NULL, NULL, NULL, NULL, &status, NULL) &&
           g_spawn_check_wait_status (status, NULL);
  }
  return have;
}

gboolean
bp_test_torch (const char *code, int n_in, BpTensor **inputs, int n_out, BpTensor **outputs)
{
  if (!bp_test_have_torch ()) {
    g_test_skip ("Debian's python3-torch is not installed: the PyTorch reference check did not run");
    return FALSE;
  }
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("bp-torch-XXXXXX", &error);
  g_assert_no_error (error);

  GString *py = g_string_new ("import torch, numpy as np\n"
                              "torch.set_num_threads(1)\n"
                              "torch.set_default_dtype(torch.float64)\n"
                              "x = []\n");
  for (int k = 0; k < n_in; k++) {
    g_autofree char *path = g_strdup_printf ("%s/in%d.bin", dir, k);
    g_assert_true (g_file_set_contents (path, (const char *) inputs[k]->data,
                                        (gssize) (inputs[k]->numel * sizeof (float)), NULL));
    g_string_append_printf (py, "x.append(torch.from_numpy(np.fromfile('%s', dtype=np.float32)"
                                ".astype(np.float64)).reshape([", path);
    for (int d = 0; d < inputs[k]->ndim; d++)
      g_string_append_printf (py, "%s%" G_GINT64_FORMAT, d ? "," : "", inputs[k]->shape[d]);
    g_string_append (py, "]).requires_grad_(True))\n");
  }
  g_string_append (py, code);
  g_string_append_printf (py, "\nassert len(out) == %d, 'expected %d outputs'\n"
                              "for i, t in enumerate(out):\n"
                              "    t.detach().to(torch.float32).contiguous().numpy().tofile('%s/out%%d.bin' %% i)\n",
                          n_out, n_out, dir);
  g_autofree char *script = g_strdup_printf ("%s/ref.py", dir);
  g_assert_true (g_file_set_contents (script, py->str, -1, NULL));
  g_string_free (py, TRUE);

  const char *argv[] = {torch_python (), script, NULL};
  g_autofree char *err_text = NULL;
  int status = 0;
  g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL,
                               NULL, &err_text, &status, &error));
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("the PyTorch reference script failed:\n%s", err_text);

  for (int k = 0; k < n_out; k++) {
    g_autofree char *path = g_strdup_printf ("%s/out%d.bin", dir, k);
    g_autofree char *contents = NULL;
    gsize len = 0;
    g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
    if ((gint64) len != outputs[k]->numel * (gint64) sizeof (float))
      g_error ("PyTorch output %d has %" G_GSIZE_FORMAT " values, expected %" G_GINT64_FORMAT, k,
               len / sizeof (float), outputs[k]->numel);
    memcpy (outputs[k]->data, contents, len);
    g_unlink (path);
  }
  for (int k = 0; k < n_in; k++) {
    g_autofree char *path = g_strdup_printf ("%s/in%d.bin", dir, k);
    g_unlink (path);
  }
  g_unlink (script);
  g_rmdir (dir);
  return TRUE;
}

/* ---- files ---- */

char *
bp_test_temp_dir (const char *parent)
{
  g_autofree char *tmpl = g_build_filename (parent, "XXXXXX", NULL);
  char *dir = g_mkdtemp (tmpl);
  g_assert_nonnull (dir);
  g_chmod (dir, 0755);
  return g_strdup (dir);
}

void
bp_test_remove_tree (const char *path)
{
  GStatBuf sb;
  if (g_lstat (path, &sb) != 0)
    return;
  if (S_ISDIR (sb.st_mode)) {
    g_chmod (path, 0700);
    g_autoptr (GDir) d = g_dir_open (path, 0, NULL);
    const char *name;
    while (d && (name = g_dir_read_name (d))) {
      g_autofree char *child = g_build_filename (path, name, NULL);
      bp_test_remove_tree (child);
    }
    g_rmdir (path);
  } else {
    g_unlink (path);
  }
}

GBytes *
bp_test_read_bytes (const char *path)
{
  char *data = NULL;
  gsize len = 0;
  g_assert_true (g_file_get_contents (path, &data, &len, NULL));
  return g_bytes_new_take (data, len);
}

/* ---- the backprop command ---- */

BpTestCli
bp_test_cli_run (const char *const *env, GSpawnChildSetupFunc setup, const char *const *args)
{
  const char *cli = g_getenv ("BP_CLI");
  g_assert_nonnull (cli);
  GPtrArray *argv = g_ptr_array_new ();
  g_ptr_array_add (argv, (gpointer) cli);
  for (int k = 0; args[k]; k++)
    g_ptr_array_add (argv, (gpointer) args[k]);
  g_ptr_array_add (argv, NULL);
  char **envp = g_get_environ ();
  for (int k = 0; env && env[k]; k += 2)
    envp = g_environ_setenv (envp, env[k], env[k + 1], TRUE);
  BpTestCli r = {0};
  g_autoptr (GError) error = NULL;
  g_assert_true (g_spawn_sync (NULL, (char **) argv->pdata, envp, G_SPAWN_DEFAULT, setup, NULL,
                               &r.out, &r.err, &r.status, &error));
  g_assert_no_error (error);
  r.status = WIFEXITED (r.status) ? WEXITSTATUS (r.status) : 128 + WTERMSIG (r.status);
  g_strfreev (envp);
  g_ptr_array_unref (argv);
  return r;
}

void
bp_test_cli_clear (BpTestCli *r)
{
  g_free (r->out);
  g_free (r->err);
  memset (r, 0, sizeof *r);
}

void
bp_test_cli_assert_ok (const BpTestCli *r, const char *what)
{
  if (r->status != 0)
    g_error ("%s: exit %d, stderr:\n%s\nstdout:\n%s", what, r->status, r->err, r->out);
}

void
bp_test_cli_assert_error (const BpTestCli *r, int status, const char *prefix, const char *needle)
{
  int lines = 0;
  for (const char *p = r->err; *p; p++)
    lines += *p == '\n';
  if (r->status != status || lines != 1 || !strstr (r->err, needle) ||
      !g_str_has_prefix (r->err, prefix))
    g_error ("expected exit %d and one line \"%s...\" with \"%s\", got exit %d and stderr:\n%s",
             status, prefix, needle, r->status, r->err);
  g_test_message ("%s", r->err);
}

/* ---- the reversal task ---- */

BpModel *
bp_test_train_reverser (int steps, BpSeqTask **task_out, double *last_loss)
{
  g_autoptr (GError) error = NULL;
  const int64_t t = 8, v = 10, batch = 64;
  BpSeqTask *task = bp_seq_task_copy (4096, t, v, TRUE, 11, &error);
  g_assert_no_error (error);
  const char *json =
    "{\"format\": \"backprop-lab-model\", \"version\": 2, \"name\": \"reverser\", \"nodes\": ["
    "{\"id\": \"x\", \"type\": \"Input\", \"shape\": [8], \"vocab_size\": 10},"
    "{\"id\": \"emb\", \"type\": \"Embedding\", \"inputs\": [\"x\"], \"embedding_dim\": 32},"
    "{\"id\": \"pos\", \"type\": \"PositionalEncoding\", \"inputs\": [\"emb\"], \"encoding\": \"learned\", \"max_len\": 8},"
    "{\"id\": \"attn\", \"type\": \"MultiheadAttention\", \"inputs\": [\"pos\"], \"num_heads\": 1},"
    "{\"id\": \"head\", \"type\": \"Linear\", \"inputs\": [\"attn\"], \"out_features\": 10},"
    "{\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"head\"]}]}";
  bp_rng_seed (3);
  BpModel *m = bp_spec_build (json, &error);
  g_assert_no_error (error);
  /* learned positions start at N(0, 0.02): larger ones let the alignment form sooner */
  bp_tensor_normal (bp_model_find (m, "pos")->weight, 0.0f, 1.0f);
  BpTensor **params;
  int n_params = bp_model_parameters (m, &params);
  BpOptimConfig oc = bp_optim_config_default (BP_OPTIM_ADAM);
  oc.lr = 1e-2f;
  BpOptimizer *opt = bp_optimizer_new (&oc, n_params, params);
  int64_t idx[64];
  for (int step = 0; step < steps; step++) {
    for (int64_t i = 0; i < batch; i++)
      idx[i] = (int64_t) bp_rng_below (4000);
    BpTensor *x, *y;
    g_assert_true (bp_seq_task_batch (task, idx, batch, &x, &y, &error));
    BpTensor *logits = bp_model_forward (m, x);
    BpTensor *flat = bp_reshape (logits, 2, (int64_t[]){-1, v});
    BpTensor *targets = bp_reshape (y, 1, (int64_t[]){-1});
    BpTensor *loss = bp_cross_entropy (flat, targets, 0.0f);
    g_assert_cmpint (bp_backward (loss), ==, BP_OK);
    g_assert_cmpint (bp_optimizer_step (opt), ==, BP_OK);
    bp_optimizer_zero_grad (opt);
    bp_tape_clear ();
    *last_loss = loss->data[0];
    BpTensor *tmp[] = {x, y, logits, flat, targets, loss};
    for (int k = 0; k < 6; k++)
      bp_tensor_unref (tmp[k]);
  }
  bp_optimizer_free (opt);
  free (params);
  *task_out = task;
  return m;
}
