/* test-nn.c: model presets and specs: parameter counts, whole-model forward and backward against
 * PyTorch, spec errors, and bit-for-bit repeatable training. */
#include "bp-test.h"

#include <math.h>
#include <string.h>

#include "bp-backend.h"
#include "bp-dataset.h"
#include "bp-ops-eltwise.h"
#include "bp-ops-loss.h"
#include "bp-optim.h"
#include "bp-rng.h"
#include "bp-spec.h"
#include "bp-trainer.h"

/* The PyTorch twin of each preset comes from bench/torch_bench.py, so the benchmark and the
 * tests compare against the same modules. */
static char *
torch_preamble (const char *model, gboolean train, gboolean no_dropout)
{
  g_autofree char *bench = g_build_filename (g_getenv ("G_TEST_SRCDIR"), "..", "bench", NULL);
  return g_strdup_printf ("import sys\nsys.path.insert(0, '%s')\n"
                          "from torch_bench import model\n"
                          "m = model('%s')\n"
                          "m.train(%s)\n"
                          "for mod in m.modules():\n"
                          "    if %s and isinstance(mod, torch.nn.Dropout): mod.p = 0.0\n"
                          "params = list(m.parameters())\n"
                          "with torch.no_grad():\n"
                          "    for p, src in zip(params, x[2:]): p.copy_(src.reshape(p.shape))\n",
                          bench, model, train ? "True" : "False", no_dropout ? "True" : "False");
}

static void
test_param_counts (void)
{
  int n;
  const BpPreset *presets = bp_presets (&n);
  g_assert_cmpint (n, >=, 4);
  BpTensor *counts = bp_tensor_new_1d (n), *engine = bp_tensor_new_1d (n);
  g_autoptr (GString) names = g_string_new (NULL);
  for (int k = 0; k < n; k++) {
    g_autoptr (GError) error = NULL;
    BpModel *m = bp_spec_build (presets[k].json, &error);
    g_assert_no_error (error);
    engine->data[k] = (float) bp_model_num_parameters (m);
    g_string_append_printf (names, "%s'%s'", k ? ", " : "", presets[k].name);
    bp_model_free (m);
  }
  /* all twins in one PyTorch run */
  g_autofree char *bench = g_build_filename (g_getenv ("G_TEST_SRCDIR"), "..", "bench", NULL);
  g_autofree char *code = g_strdup_printf (
    "import sys\nsys.path.insert(0, '%s')\nfrom torch_bench import model\n"
    "out = [torch.tensor([float(sum(p.numel() for p in model(n).parameters())) for n in [%s]])]\n",
    bench, names->str);
  if (bp_test_torch (code, 1, &engine, 1, &counts))
    for (int k = 0; k < n; k++)
      g_assert_cmpfloat (counts->data[k], ==, engine->data[k]);
  bp_tensor_unref (counts);
  bp_tensor_unref (engine);
  /* the published sizes */
  g_autoptr (GError) error = NULL;
  BpModel *mlp = bp_spec_build (bp_preset_find ("mlp")->json, &error);
  g_assert_cmpint (bp_model_num_parameters (mlp), ==, 247766);
  bp_model_free (mlp);
  BpModel *cnn = bp_spec_build (bp_preset_find ("simple-cnn")->json, &error);
  g_assert_cmpint (bp_model_num_parameters (cnn), ==, 688586);
  bp_model_free (cnn);
  BpModel *lenet = bp_spec_build (bp_preset_find ("lenet5")->json, &error);
  g_assert_cmpint (bp_model_num_parameters (lenet), ==, 61706);
  bp_model_free (lenet);
}

/* Forward logits, loss and every parameter gradient of a preset against PyTorch. */
static void
check_model_against_torch (const char *name, const char *bn_id, gboolean train)
{
  g_autoptr (GError) error = NULL;
  bp_rng_seed (11);
  BpModel *m = bp_spec_build (bp_preset_find (name)->json, &error);
  g_assert_no_error (error);
  /* dropout draws differ between the engines: compare without it */
  BpLayer *dropout = bp_model_find (m, "dropout");
  if (dropout)
    dropout->spec.p = 0.0f;
  /* the first batch norm's running statistics after one training step */
  BpLayer *bn = bp_model_find (m, bn_id);
  bp_model_set_training (m, train);
  BpTensor **params;
  int n_params = bp_model_parameters (m, &params);

  const int64_t batch = 6;
  BpTensor *x = bp_test_rand (4, (int64_t[]){batch, 1, 28, 28}, -1, 2, FALSE);
  BpTensor *y = bp_tensor_new_1d (batch);
  for (int64_t i = 0; i < batch; i++)
    y->data[i] = (float) ((i * 7) % 10);
  BpTensor *logits = bp_model_forward (m, x);
  g_assert_nonnull (logits);
  BpTensor *loss = bp_cross_entropy (logits, y, 0.0f);
  g_assert_cmpint (bp_backward (loss), ==, BP_OK);

  int n_in = 2 + n_params;
  BpTensor **in = g_new (BpTensor *, n_in);
  in[0] = x;
  in[1] = y;
  for (int k = 0; k < n_params; k++)
    in[2 + k] = params[k];
  gboolean stats = train && bn;
  int n_out = 2 + n_params + (stats ? 2 : 0);
  BpTensor **ref = g_new (BpTensor *, n_out);
  ref[0] = bp_tensor_new_like (logits);
  ref[1] = bp_tensor_new_1d (1);
  for (int k = 0; k < n_params; k++)
    ref[2 + k] = bp_tensor_new_like (params[k]);
  if (stats) {
    ref[n_out - 2] = bp_tensor_new_like (bn->running_mean);
    ref[n_out - 1] = bp_tensor_new_like (bn->running_var);
  }
  g_autofree char *pre = torch_preamble (name, train, TRUE);
  g_autofree char *stats_code =
    stats ? g_strdup_printf ("out += [m.%s.running_mean, m.%s.running_var]\n", bn_id, bn_id)
          : g_strdup ("");
  g_autofree char *code = g_strdup_printf (
    "%s"
    "logits = m(x[0].detach())\n"
    "loss = torch.nn.functional.cross_entropy(logits, x[1].detach().long())\n"
    "loss.backward()\n"
    "out = [logits, loss.reshape(1)] + [p.grad for p in params]\n"
    "%s",
    pre, stats_code);
  if (bp_test_torch (code, n_in, in, n_out, ref)) {
    bp_test_assert_close ("logits", logits->data, ref[0]->data, logits->numel, 1e-4);
    bp_test_assert_close ("loss", loss->data, ref[1]->data, 1, 1e-5);
    for (int k = 0; k < n_params; k++) {
      g_autofree char *what = g_strdup_printf ("%s gradient of parameter %d", name, k);
      g_assert_nonnull (params[k]->grad);
      bp_test_assert_close (what, params[k]->grad, ref[2 + k]->data, params[k]->numel, 1e-4);
    }
    if (stats) {
      bp_test_assert_close ("running_mean", bn->running_mean->data, ref[n_out - 2]->data,
                            ref[n_out - 2]->numel, 1e-5);
      bp_test_assert_close ("running_var", bn->running_var->data, ref[n_out - 1]->data,
                            ref[n_out - 1]->numel, 1e-5);
    }
  }
  bp_tape_clear ();
  for (int k = 0; k < n_out; k++)
    bp_tensor_unref (ref[k]);
  g_free (ref);
  g_free (in);
  free (params);
  bp_tensor_unref (loss);
  bp_tensor_unref (logits);
  bp_tensor_unref (x);
  bp_tensor_unref (y);
  bp_model_free (m);
}

static void
test_mlp_torch (void)
{
  check_model_against_torch ("mlp", NULL, FALSE);
}

static void
test_cnn_torch_eval (void)
{
  check_model_against_torch ("simple-cnn", "bn1", FALSE);
}

static void
test_cnn_torch_train (void)
{
  check_model_against_torch ("simple-cnn", "bn1", TRUE);
}

/* the residual graph in training mode: batch statistics, Adds and the gradients through the
 * skip connections */
static void
test_resnet_torch_train (void)
{
  check_model_against_torch ("small-resnet", "b2_down_bn", TRUE);
}


/* The sequence presets (recurrent and Transformer classifiers on image rows, a character GPT)
 * against their PyTorch twins in training mode without dropout: logits, loss and every
 * parameter gradient, all in one PyTorch run. */
static void
test_sequence_presets_torch (void)
{
  static const char *const names[] = {"bilstm", "gru", "transformer-classifier", "char-gpt-tiny"};
  enum { N = G_N_ELEMENTS (names) };
  g_autofree char *bench = g_build_filename (g_getenv ("G_TEST_SRCDIR"), "..", "bench", NULL);
  GString *code = g_string_new (NULL);
  g_string_append_printf (code,
    "import sys\nsys.path.insert(0, '%s')\nfrom torch_bench import model\nout = []\n"
    "def case(name, a):\n"
    "    m = model(name)\n"
    "    m.train(True)\n"
    "    for mod in m.modules():\n"
    "        if isinstance(mod, torch.nn.Dropout): mod.p = 0.0\n"
    "        if isinstance(mod, (torch.nn.MultiheadAttention, torch.nn.RNNBase)): mod.dropout = 0.0\n"
    "    ps = list(m.parameters())\n"
    "    with torch.no_grad():\n"
    "        for p, src in zip(ps, a[2:]): p.copy_(src.reshape(p.shape))\n"
    "    logits = m(a[0].detach())\n"
    "    loss = torch.nn.functional.cross_entropy(logits.flatten(0, -2), a[1].detach().flatten().long())\n"
    "    loss.backward()\n"
    "    return [logits, loss.reshape(1)] + [p.grad for p in ps]\n", bench);
  GPtrArray *args = g_ptr_array_new ();
  GPtrArray *refs = g_ptr_array_new_with_free_func ((GDestroyNotify) bp_tensor_unref);
  BpModel *models[N];
  BpTensor *xs[N], *ys[N], *logits[N], *losses[N];
  int n_params[N];
  BpTensor **params[N];
  for (int c = 0; c < N; c++) {
    g_autoptr (GError) error = NULL;
    bp_rng_seed (20 + c);
    BpModel *m = models[c] = bp_spec_build (bp_preset_find (names[c])->json, &error);
    g_assert_no_error (error);
    for (int k = 0; k < m->n_layers; k++) {
      BpLayerSpec *s = &m->layers[k].spec;
      s->p = s->kind == BP_LAYER_DROPOUT ? 0.0f : s->p;
      s->dropout = 0.0f;
    }
    int64_t b = 3, v = bp_model_vocab_size (m);
    int64_t shape[BP_LAYER_MAX_DIMS + 1] = {b};
    memcpy (shape + 1, m->in_shape, sizeof (int64_t) * (size_t) m->in_ndim);
    xs[c] = bp_test_rand (m->in_ndim + 1, shape, -1, 1, FALSE);
    if (v > 0) {
      for (int64_t i = 0; i < xs[c]->numel; i++)
        xs[c]->data[i] = (float) bp_rng_below ((uint64_t) v);
      ys[c] = bp_tensor_new_2d (b, m->in_shape[0]);
      for (int64_t i = 0; i < ys[c]->numel; i++)
        ys[c]->data[i] = (float) bp_rng_below ((uint64_t) v);
    } else {
      ys[c] = bp_tensor_new_1d (b);
      for (int64_t i = 0; i < b; i++)
        ys[c]->data[i] = (float) ((i * 7 + c) % 10);
    }
    logits[c] = bp_model_forward (m, xs[c]);
    g_assert_nonnull (logits[c]);
    int64_t classes = logits[c]->shape[logits[c]->ndim - 1];
    BpTensor *flat = bp_reshape (logits[c], 2, (int64_t[]){-1, classes});
    BpTensor *targets = bp_reshape (ys[c], 1, (int64_t[]){-1});
    losses[c] = bp_cross_entropy (flat, targets, 0.0f);
    g_assert_cmpint (bp_backward (losses[c]), ==, BP_OK);
    bp_tape_clear (); /* the next case's backward must not run this one's nodes again */
    bp_tensor_unref (flat);
    bp_tensor_unref (targets);
    n_params[c] = bp_model_parameters (m, &params[c]);
    int base = (int) args->len;
    g_ptr_array_add (args, xs[c]);
    g_ptr_array_add (args, ys[c]);
    for (int k = 0; k < n_params[c]; k++)
      g_ptr_array_add (args, params[c][k]);
    g_ptr_array_add (refs, bp_tensor_new_like (logits[c]));
    g_ptr_array_add (refs, bp_tensor_new_1d (1));
    for (int k = 0; k < n_params[c]; k++)
      g_ptr_array_add (refs, bp_tensor_new_like (params[c][k]));
    g_string_append_printf (code, "out += case('%s', x[%d:%d])\n", names[c], base,
                            (int) args->len);
  }
  if (bp_test_torch (code->str, (int) args->len, (BpTensor **) args->pdata, (int) refs->len,
                     (BpTensor **) refs->pdata)) {
    int at = 0;
    for (int c = 0; c < N; c++) {
      BpTensor *r = refs->pdata[at++];
      g_autofree char *what = g_strdup_printf ("%s logits", names[c]);
      bp_test_assert_close (what, logits[c]->data, r->data, r->numel, 1e-4);
      r = refs->pdata[at++];
      bp_test_assert_close ("loss", losses[c]->data, r->data, 1, 1e-5);
      for (int k = 0; k < n_params[c]; k++) {
        r = refs->pdata[at++];
        g_autofree char *gw = g_strdup_printf ("%s gradient of parameter %d", names[c], k);
        g_assert_nonnull (params[c][k]->grad);
        bp_test_assert_close (gw, params[c][k]->grad, r->data, r->numel, 2e-4);
      }
    }
  }
  bp_tape_clear ();
  for (int c = 0; c < N; c++) {
    bp_tensor_unref (xs[c]);
    bp_tensor_unref (ys[c]);
    bp_tensor_unref (logits[c]);
    bp_tensor_unref (losses[c]);
    free (params[c]);
    bp_model_free (models[c]);
  }
  g_ptr_array_unref (args);
  g_ptr_array_unref (refs);
  g_string_free (code, TRUE);
}

/* The attention weights of a chosen node: per head and averaged, rows summing to 1, causal
 * ones zero above the diagonal; tied weights appear twice in the state, once in the
 * parameters. */
static void
test_attention_capture (void)
{
  g_autoptr (GError) error = NULL;
  bp_rng_seed (30);
  BpModel *m = bp_spec_build (bp_preset_find ("char-gpt-tiny")->json, &error);
  g_assert_no_error (error);
  bp_model_set_training (m, false);
  g_assert_cmpint (bp_model_to_device (m, BP_DEVICE_CPU), ==, BP_OK);
  g_assert_cmpint (bp_model_data_device (m), ==, BP_DEVICE_CPU);
  BpTensor *x = bp_tensor_new_2d (2, 64);
  for (int64_t i = 0; i < x->numel; i++)
    x->data[i] = (float) (i % 65);
  bp_model_capture_attention (m, "block2", 1);
  BpTensor *y = bp_model_forward (m, x);
  BpTensor *w = bp_model_attention (m);
  g_assert_nonnull (w);
  g_assert_cmpint (w->ndim, ==, 4);
  g_assert_cmpint (w->shape[1], ==, 2); /* heads */
  g_assert_cmpint (w->shape[2], ==, 64);
  for (int64_t r = 0; r < 2 * 2 * 64; r++) {
    double sum = 0;
    int64_t i = r % 64;
    for (int64_t j = 0; j < 64; j++) {
      float a = w->data[r * 64 + j];
      sum += a;
      if (j > i)
        g_assert_cmpfloat (a, ==, 0.0f);
    }
    g_assert_cmpfloat_with_epsilon (sum, 1.0, 1e-5);
  }
  bp_tensor_unref (y);
  bp_model_capture_attention (m, "block1", 2);
  y = bp_model_forward (m, x);
  g_assert_cmpint (bp_model_attention (m)->ndim, ==, 3);
  bp_tensor_unref (y);
  bp_model_capture_attention (m, NULL, 0);
  y = bp_model_forward (m, x);
  g_assert_null (bp_model_attention (m));
  BpNamedTensor *state;
  int n_state = bp_model_state (m, &state);
  BpTensor *tok = NULL, *head = NULL;
  for (int k = 0; k < n_state; k++) {
    if (strcmp (state[k].name, "tok.weight") == 0)
      tok = state[k].tensor;
    if (strcmp (state[k].name, "head.weight") == 0)
      head = state[k].tensor;
  }
  g_assert_nonnull (tok);
  g_assert_true (tok == head);
  free (state);
  BpTensor **params;
  int n_params = bp_model_parameters (m, &params);
  int seen = 0;
  for (int k = 0; k < n_params; k++)
    seen += params[k] == tok;
  g_assert_cmpint (seen, ==, 1);
  free (params);
  bp_tensor_unref (y);
  bp_tensor_unref (x);
  bp_model_free (m);
}

static void
test_spec_errors (void)
{
  static const struct {
    const char *json;
    const char *needle;
  } cases[] = {
    {"not json", NULL},
    {"[1,2]", "not a JSON object"},
    {"{\"format\":\"other\",\"version\":1}", "not a Backprop Lab model spec"},
    {"{\"format\":\"backprop-lab-model\",\"version\":99,\"input\":[1],\"layers\":[]}", "version 99"},
    {"{\"format\":\"backprop-lab-model\",\"version\":1,\"input\":[0,4],\"layers\":[{\"type\":\"ReLU\"}]}", "shape must be a list of 1 to 4 integers"},
    {"{\"format\":\"backprop-lab-model\",\"version\":1,\"input\":\"x\",\"layers\":[{\"type\":\"ReLU\"}]}", "input"},
    {"{\"format\":\"backprop-lab-model\",\"version\":1,\"input\":[4],\"layers\":[]}", "no layers"},
    {"{\"format\":\"backprop-lab-model\",\"version\":1,\"input\":[4],\"layers\":[{\"type\":\"Magic\"}]}", "node \"layer_0\": unknown layer type \"Magic\""},
    {"{\"format\":\"backprop-lab-model\",\"version\":1,\"input\":[4],\"layers\":[{\"type\":\"Linear\",\"out_features\":0}]}", "node \"linear_0\" (Linear): out_features must be"},
    {"{\"format\":\"backprop-lab-model\",\"version\":1,\"input\":[4],\"layers\":[{\"type\":\"Linear\",\"out_features\":\"ten\"}]}", "out_features must be an integer"},
    {"{\"format\":\"backprop-lab-model\",\"version\":1,\"input\":[1000000],\"layers\":[{\"type\":\"Linear\",\"out_features\":1000000000}]}", "more than a layer may have"},
    {"{\"format\":\"backprop-lab-model\",\"version\":1,\"input\":[784],\"layers\":[{\"type\":\"Conv2d\",\"out_channels\":8,\"kernel_size\":3}]}", "node \"conv2d_0\" (Conv2d): needs a (C, H, W) input"},
    {"{\"format\":\"backprop-lab-model\",\"version\":1,\"input\":[1,4,4],\"layers\":[{\"type\":\"Conv2d\",\"out_channels\":8,\"kernel_size\":7}]}", "does not fit"},
    {"{\"format\":\"backprop-lab-model\",\"version\":1,\"input\":[3,8,8],\"layers\":[{\"type\":\"Conv2d\",\"out_channels\":8,\"kernel_size\":3,\"groups\":2}]}", "divisible by groups"},
    {"{\"format\":\"backprop-lab-model\",\"version\":1,\"input\":[1,8,8],\"layers\":[{\"type\":\"MaxPool2d\",\"kernel_size\":[2,-1]}]}", "kernel_size"},
    {"{\"format\":\"backprop-lab-model\",\"version\":1,\"input\":[8],\"layers\":[{\"type\":\"Dropout\",\"p\":1.5}]}", "p must be a number in [0, 1)"},
    {"{\"format\":\"backprop-lab-model\",\"version\":1,\"input\":[8],\"layers\":[{\"type\":\"BatchNorm2d\"}]}", "node \"batchnorm2d_0\" (BatchNorm2d)"},
    {"{\"format\":\"backprop-lab-model\",\"version\":1,\"input\":[8],\"layers\":[{\"type\":\"Linear\",\"out_features\":4,\"bias\":3}]}", "bias must be true or false"},
  };
  for (gsize k = 0; k < G_N_ELEMENTS (cases); k++) {
    g_autoptr (GError) error = NULL;
    BpModel *m = bp_spec_build (cases[k].json, &error);
    g_assert_null (m);
    g_assert_nonnull (error);
    if (cases[k].needle && !strstr (error->message, cases[k].needle))
      g_error ("spec case %" G_GSIZE_FORMAT ": message \"%s\" lacks \"%s\"", k, error->message,
               cases[k].needle);
  }
}

static void
test_shapes_inferred (void)
{
  g_autoptr (GError) error = NULL;
  BpModel *m = bp_spec_build (bp_preset_find ("simple-cnn")->json, &error);
  g_assert_no_error (error);
  /* 28 -> 14 -> 7 -> 3 after the three pools; Flatten gives 128*3*3 */
  g_assert_cmpint (bp_model_find (m, "pool1")->out_shape[1], ==, 14);
  g_assert_cmpint (bp_model_find (m, "pool3")->out_shape[1], ==, 3);
  g_assert_cmpint (bp_model_find (m, "flatten")->out_ndim, ==, 1);
  g_assert_cmpint (bp_model_find (m, "flatten")->out_shape[0], ==, 1152);
  g_assert_cmpint (bp_model_find (m, "fc2")->out_shape[0], ==, 10);
  g_assert_cmpint (m->out_ndim, ==, 1);
  g_assert_cmpint (m->out_shape[0], ==, 10);
  g_assert_null (bp_model_find (m, "nothing"));
  /* the Input first, the Output last, in the preset's order */
  g_assert_cmpint (m->layers[0].spec.kind, ==, BP_LAYER_INPUT);
  g_assert_cmpint (m->layers[m->n_layers - 1].spec.kind, ==, BP_LAYER_OUTPUT);
  g_assert_cmpstr (m->layers[1].spec.id, ==, "conv1");
  /* a wrong input is an error naming the model, not a crash */
  BpTensor *x = bp_tensor_new_4d (2, 3, 28, 28);
  g_assert_null (bp_model_forward (m, x));
  g_assert_nonnull (strstr (bp_last_error (), "simple-cnn"));
  bp_tensor_unref (x);
  bp_model_free (m);
}

static gboolean
collect_losses (const BpTrainEvent *ev, gpointer user)
{
  if (ev->kind == BP_TRAIN_EVENT_STEP)
    g_array_append_val ((GArray *) user, ev->loss);
  return TRUE;
}

static GArray *
train_losses (uint64_t seed)
{
  BpTrainConfig c = bp_train_config_default ();
  c.model = "simple-cnn";
  c.epochs = 1;
  c.limit_train = 640;
  c.limit_test = 100;
  c.seed = seed;
  g_autoptr (GError) error = NULL;
  BpTrainer *t = bp_trainer_new (&c, &error);
  if (!t)
    return NULL;
  GArray *losses = g_array_new (FALSE, FALSE, sizeof (double));
  g_assert_true (bp_trainer_run (t, collect_losses, losses, &error));
  g_assert_no_error (error);
  bp_trainer_free (t);
  return losses;
}

static void
test_training_repeatable (void)
{
  GArray *a = train_losses (5);
  if (!a) {
    g_test_skip ("Fashion-MNIST (dataset-fashion-mnist) is not installed");
    return;
  }
  GArray *b = train_losses (5);
  GArray *c = train_losses (6);
  g_assert_cmpuint (a->len, ==, 9); /* 576 training examples in batches of 64 */
  g_assert_cmpuint (b->len, ==, a->len);
  gboolean differs = FALSE;
  for (guint i = 0; i < a->len; i++) {
    g_assert_cmpfloat (g_array_index (a, double, i), ==, g_array_index (b, double, i));
    differs |= g_array_index (a, double, i) != g_array_index (c, double, i);
  }
  g_assert_true (differs);
  /* it learns: the last loss is below the first */
  g_assert_cmpfloat (g_array_index (a, double, a->len - 1), <, g_array_index (a, double, 0));
  g_array_unref (a);
  g_array_unref (b);
  g_array_unref (c);
}

/* The lesson "MLP training tricks: initialisation": a deep ReLU MLP (Flatten, 6 x Linear 256 +
 * ReLU, Linear 2) on 28x28 inputs, every Linear with the given init ("" for the default). */
static BpModel *
deep_mlp (const char *init)
{
  g_autofree char *with = *init ? g_strdup_printf (", \"init\": \"%s\"", init) : g_strdup ("");
  GString *json = g_string_new ("{\"format\": \"backprop-lab-model\", \"version\": 2, "
                                "\"name\": \"deep-mlp\", \"nodes\": ["
                                "{\"id\": \"x\", \"type\": \"Input\", \"shape\": [1, 28, 28]},"
                                "{\"id\": \"flatten\", \"type\": \"Flatten\", \"inputs\": [\"x\"]}");
  const char *prev = "flatten";
  char ids[6][2][8];
  for (int k = 0; k < 6; k++) {
    g_snprintf (ids[k][0], sizeof ids[k][0], "fc%d", k + 1);
    g_snprintf (ids[k][1], sizeof ids[k][1], "relu%d", k + 1);
    g_string_append_printf (json, ",{\"id\": \"%s\", \"type\": \"Linear\", \"inputs\": [\"%s\"], "
                                  "\"out_features\": 256%s}", ids[k][0], prev, with);
    g_string_append_printf (json, ",{\"id\": \"%s\", \"type\": \"ReLU\", \"inputs\": [\"%s\"]}",
                            ids[k][1], ids[k][0]);
    prev = ids[k][1];
  }
  g_string_append_printf (json, ",{\"id\": \"head\", \"type\": \"Linear\", \"inputs\": [\"%s\"], "
                                "\"out_features\": 2%s},"
                                "{\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"head\"]}]}",
                          prev, with);
  g_autoptr (GError) error = NULL;
  BpModel *m = bp_spec_build (json->str, &error);
  g_assert_no_error (error);
  g_string_free (json, TRUE);
  return m;
}

/* Trains with SGD (lr 0.05, momentum 0.9) on batches of 32 taken in turn from x (N, 1, 28, 28)
 * and y (N); returns the loss on all of x afterwards and the accuracy in *acc. */
static double
train_deep_mlp (BpModel *m, BpTensor *x, BpTensor *y, int steps, double *acc)
{
  const int64_t n = y->numel, b = 32, row = 28 * 28;
  BpTensor **params;
  int n_params = bp_model_parameters (m, &params);
  BpOptimConfig c = bp_optim_config_default (BP_OPTIM_SGD);
  c.lr = 0.05f;
  c.momentum = 0.9f;
  BpOptimizer *opt = bp_optimizer_new (&c, n_params, params);
  free (params);
  BpTensor *xb = bp_tensor_new_4d (b, 1, 28, 28), *yb = bp_tensor_new_1d (b);
  for (int s = 0; s < steps; s++) {
    int64_t first = (s * b) % n;
    memcpy (xb->data, x->data + first * row, sizeof (float) * (size_t) (b * row));
    memcpy (yb->data, y->data + first, sizeof (float) * (size_t) b);
    BpTensor *logits = bp_model_forward (m, xb);
    BpTensor *loss = bp_cross_entropy (logits, yb, 0.0f);
    g_assert_nonnull (loss);
    bp_optimizer_zero_grad (opt);
    g_assert_cmpint (bp_backward (loss), ==, BP_OK);
    g_assert_cmpint (bp_optimizer_step (opt), ==, BP_OK);
    bp_tape_clear ();
    bp_tensor_unref (loss);
    bp_tensor_unref (logits);
  }
  bp_optimizer_free (opt);
  bp_tensor_unref (xb);
  bp_tensor_unref (yb);
  bool was = bp_set_grad_enabled (false);
  BpTensor *logits = bp_model_forward (m, x);
  BpTensor *loss = bp_cross_entropy (logits, y, 0.0f);
  double result = loss->data[0];
  *acc = (double) bp_count_correct (logits, y) / (double) n;
  bp_set_grad_enabled (was);
  bp_tensor_unref (loss);
  bp_tensor_unref (logits);
  return result;
}

/* Largest difference between a Linear's output units: over its weight rows (each compared
 * with the first) and its bias. */
static float
unit_spread (const BpLayer *l)
{
  int64_t out = l->weight->shape[0], in = l->weight->shape[1];
  float spread = 0.0f;
  for (int64_t i = 1; i < out; i++) {
    for (int64_t j = 0; j < in; j++)
      spread = fmaxf (spread, fabsf (l->weight->data[i * in + j] - l->weight->data[j]));
    spread = fmaxf (spread, fabsf (l->bias->data[i] - l->bias->data[0]));
  }
  return spread;
}

/* init "zeros" cannot learn: every hidden unit of a layer computes the same value and gets the
 * same update, so after SGD the units of each hidden layer are still identical and the model
 * predicts the class prior; the default init starts with distinct units and keeps them
 * distinct, and kaiming_normal (He) also learns the task in the same steps. */
static void
test_init_symmetry (void)
{
  /* 256 examples: which half of the image is brighter */
  const int64_t n = 256;
  bp_rng_seed (21);
  BpTensor *x = bp_test_rand (4, (int64_t[]){n, 1, 28, 28}, -1, 1, false);
  BpTensor *y = bp_tensor_new_1d (n);
  int64_t ones = 0;
  for (int64_t e = 0; e < n; e++) {
    double left = 0, right = 0;
    for (int r = 0; r < 28; r++)
      for (int c = 0; c < 28; c++)
        *(c < 14 ? &left : &right) += x->data[e * 784 + r * 28 + c];
    y->data[e] = left > right;
    ones += left > right;
  }
  double prior = (double) MAX (ones, n - ones) / (double) n;
  /* the entropy of the labels: the loss of predicting the class prior */
  double p1 = (double) ones / (double) n, entropy = -p1 * log (p1) - (1 - p1) * log (1 - p1);
  g_assert_cmpfloat (prior, <, 0.6);

  static const char *const hidden[] = {"fc1", "fc2", "fc3", "fc4", "fc5", "fc6"};
  double acc;
  BpModel *zeros = deep_mlp ("zeros");
  double loss = train_deep_mlp (zeros, x, y, 40, &acc);
  for (gsize k = 0; k < G_N_ELEMENTS (hidden); k++) {
    BpLayer *l = bp_model_find (zeros, hidden[k]);
    g_assert_cmpfloat (unit_spread (l), ==, 0.0f);
  }
  /* the output only learns the class prior */
  g_assert_cmpfloat (fabs (loss - entropy), <, 0.02);
  g_assert_cmpfloat (acc, ==, prior);
  bp_model_free (zeros);

  BpModel *def = deep_mlp ("");
  train_deep_mlp (def, x, y, 40, &acc);
  for (gsize k = 0; k < G_N_ELEMENTS (hidden); k++) {
    BpLayer *l = bp_model_find (def, hidden[k]);
    g_assert_cmpfloat (unit_spread (l), >, 0.05f);
  }
  bp_model_free (def);

  BpModel *he = deep_mlp ("kaiming_normal");
  loss = train_deep_mlp (he, x, y, 40, &acc);
  g_test_message ("kaiming_normal: loss %.4f, accuracy %.3f (label entropy %.4f)", loss, acc,
                  entropy);
  g_assert_cmpfloat (loss, <, 0.5 * entropy);
  g_assert_cmpfloat (acc, >, 0.9);
  bp_model_free (he);
  bp_tensor_unref (x);
  bp_tensor_unref (y);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  bp_set_num_threads (2);
  g_test_add_func ("/nn/param-counts", test_param_counts);
  g_test_add_func ("/nn/shapes", test_shapes_inferred);
  g_test_add_func ("/nn/spec-errors", test_spec_errors);
  g_test_add_func ("/nn/mlp-torch", test_mlp_torch);
  g_test_add_func ("/nn/simple-cnn-torch-eval", test_cnn_torch_eval);
  g_test_add_func ("/nn/simple-cnn-torch-train", test_cnn_torch_train);
  g_test_add_func ("/nn/small-resnet-torch-train", test_resnet_torch_train);
  g_test_add_func ("/nn/training-repeatable", test_training_repeatable);
  g_test_add_func ("/nn/sequence-presets-torch", test_sequence_presets_torch);
  g_test_add_func ("/nn/attention-capture", test_attention_capture);
  g_test_add_func ("/nn/init-symmetry", test_init_symmetry);
  return g_test_run ();
}
