/* test-spec.c: model specs as graphs: presets round trip and equal their exported PyTorch
 * modules, version 1 conversion, per-node analysis, residual graph gradients, malformed specs
 * (tests/data/specs) with named errors, random damage without crashes, the layer tables. */
#include "bp-test.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "bp-backend.h"
#include "bp-rng.h"
#include "bp-spec.h"

/* Graphs beyond the presets that together use every layer type and most parameters: the
 * export and the engine must agree on them too. */
static const char *const zoo[] = {
  "{\"format\": \"backprop-lab-model\", \"version\": 2, \"name\": \"branches\", \"nodes\": ["
  "{\"id\": \"x\", \"type\": \"Input\", \"shape\": [3, 12, 12]},"
  "{\"id\": \"a\", \"type\": \"Conv2d\", \"inputs\": [\"x\"], \"out_channels\": 8, \"kernel_size\": 3, \"padding\": 1},"
  "{\"id\": \"b\", \"type\": \"Conv2d\", \"inputs\": [\"x\"], \"in_channels\": 3, \"out_channels\": 4, \"kernel_size\": [3, 5], \"padding\": [1, 2]},"
  "{\"id\": \"g\", \"type\": \"Conv2d\", \"inputs\": [\"x\"], \"out_channels\": 6, \"kernel_size\": 3, \"padding\": 2, \"dilation\": 2, \"groups\": 3, \"bias\": false},"
  "{\"id\": \"cat\", \"type\": \"Concat\", \"inputs\": [\"a\", \"b\", \"g\"]},"
  "{\"id\": \"bn\", \"type\": \"BatchNorm2d\", \"inputs\": [\"cat\"], \"eps\": 0.001, \"momentum\": 0.2},"
  "{\"id\": \"lrelu\", \"type\": \"LeakyReLU\", \"inputs\": [\"bn\"], \"negative_slope\": 0.2},"
  "{\"id\": \"mp\", \"type\": \"MaxPool2d\", \"inputs\": [\"lrelu\"], \"kernel_size\": 3, \"stride\": 2, \"padding\": 1},"
  "{\"id\": \"ap\", \"type\": \"AvgPool2d\", \"inputs\": [\"mp\"], \"kernel_size\": 2, \"stride\": 1, \"padding\": 1, \"count_include_pad\": false},"
  "{\"id\": \"ad\", \"type\": \"AdaptiveAvgPool2d\", \"inputs\": [\"ap\"], \"output_size\": [3, 2]},"
  "{\"id\": \"fl\", \"type\": \"Flatten\", \"inputs\": [\"ad\"], \"start_dim\": 2},"
  "{\"id\": \"ln\", \"type\": \"LayerNorm\", \"inputs\": [\"fl\"]},"
  "{\"id\": \"gelu\", \"type\": \"GELU\", \"inputs\": [\"ln\"]},"
  "{\"id\": \"fl2\", \"type\": \"Flatten\", \"inputs\": [\"gelu\"]},"
  "{\"id\": \"bn1\", \"type\": \"BatchNorm1d\", \"inputs\": [\"fl2\"], \"affine\": false},"
  "{\"id\": \"lin\", \"type\": \"Linear\", \"inputs\": [\"bn1\"], \"out_features\": 20},"
  "{\"id\": \"sig\", \"type\": \"Sigmoid\", \"inputs\": [\"lin\"]},"
  "{\"id\": \"th\", \"type\": \"Tanh\", \"inputs\": [\"lin\"]},"
  "{\"id\": \"sum\", \"type\": \"Add\", \"inputs\": [\"sig\", \"th\", \"lin\"]},"
  "{\"id\": \"drop\", \"type\": \"Dropout\", \"inputs\": [\"sum\"], \"p\": 0.3},"
  "{\"id\": \"cat2\", \"type\": \"Concat\", \"inputs\": [\"drop\", \"sum\"], \"dim\": -1},"
  "{\"id\": \"fc\", \"type\": \"Linear\", \"inputs\": [\"cat2\"], \"out_features\": 5, \"bias\": false},"
  "{\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"fc\"]}]}",

  "{\"format\": \"backprop-lab-model\", \"version\": 2, \"name\": \"sequence\", \"nodes\": ["
  "{\"id\": \"x\", \"type\": \"Input\", \"shape\": [4, 6]},"
  "{\"id\": \"bn\", \"type\": \"BatchNorm1d\", \"inputs\": [\"x\"], \"num_features\": 4},"
  "{\"id\": \"ln\", \"type\": \"LayerNorm\", \"inputs\": [\"bn\"], \"normalized_shape\": [4, 6], \"eps\": 1e-4},"
  "{\"id\": \"fc\", \"type\": \"Linear\", \"inputs\": [\"ln\"], \"out_features\": 3},"
  "{\"id\": \"relu\", \"type\": \"ReLU\", \"inputs\": [\"fc\"]},"
  "{\"id\": \"skip\", \"type\": \"Linear\", \"inputs\": [\"x\"], \"in_features\": 6, \"out_features\": 3},"
  "{\"id\": \"add\", \"type\": \"Add\", \"inputs\": [\"relu\", \"skip\"]},"
  "{\"id\": \"fl\", \"type\": \"Flatten\", \"inputs\": [\"add\"], \"start_dim\": 1, \"end_dim\": 2},"
  "{\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"fl\"], \"loss\": \"MSELoss\"}]}",

  "{\"format\": \"backprop-lab-model\", \"version\": 2, \"name\": \"identity\", \"nodes\": ["
  "{\"id\": \"x\", \"type\": \"Input\", \"shape\": [5]},"
  "{\"id\": \"y\", \"type\": \"Output\", \"inputs\": [\"x\"], \"loss\": \"BCEWithLogitsLoss\"}]}",

  "{\"format\": \"backprop-lab-model\", \"version\": 2, \"name\": \"recurrent\", \"nodes\": ["
  "{\"id\": \"x\", \"type\": \"Input\", \"shape\": [6, 5]},"
  "{\"id\": \"rnn\", \"type\": \"RNN\", \"inputs\": [\"x\"], \"input_size\": 5, \"hidden_size\": 4, \"num_layers\": 2, \"nonlinearity\": \"relu\", \"bias\": false, \"bidirectional\": true},"
  "{\"id\": \"gru\", \"type\": \"GRU\", \"inputs\": [\"x\"], \"hidden_size\": 3},"
  "{\"id\": \"cat\", \"type\": \"Concat\", \"inputs\": [\"rnn\", \"gru\"], \"dim\": -1},"
  "{\"id\": \"lstm\", \"type\": \"LSTM\", \"inputs\": [\"cat\"], \"hidden_size\": 5, \"num_layers\": 2, \"dropout\": 0.3},"
  "{\"id\": \"first\", \"type\": \"SequencePool\", \"inputs\": [\"lstm\"], \"mode\": \"first\"},"
  "{\"id\": \"mean\", \"type\": \"SequencePool\", \"inputs\": [\"gru\"], \"mode\": \"mean\"},"
  "{\"id\": \"both\", \"type\": \"Concat\", \"inputs\": [\"first\", \"mean\"]},"
  "{\"id\": \"fc\", \"type\": \"Linear\", \"inputs\": [\"both\"], \"out_features\": 4},"
  "{\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"fc\"]}]}",

  "{\"format\": \"backprop-lab-model\", \"version\": 2, \"name\": \"seq2seq\", \"nodes\": ["
  "{\"id\": \"x\", \"type\": \"Input\", \"shape\": [7, 8]},"
  "{\"id\": \"src\", \"type\": \"Linear\", \"inputs\": [\"x\"], \"out_features\": 8},"
  "{\"id\": \"pos\", \"type\": \"PositionalEncoding\", \"inputs\": [\"src\"], \"max_len\": 16},"
  "{\"id\": \"attn\", \"type\": \"MultiheadAttention\", \"inputs\": [\"pos\"], \"num_heads\": 2, \"bias\": false, \"causal\": true},"
  "{\"id\": \"enc\", \"type\": \"TransformerEncoderLayer\", \"inputs\": [\"attn\"], \"nhead\": 2, \"dim_feedforward\": 16},"
  "{\"id\": \"dec\", \"type\": \"TransformerDecoderLayer\", \"inputs\": [\"pos\", \"enc\"], \"nhead\": 4, \"dim_feedforward\": 12, \"dropout\": 0.2, \"activation\": \"gelu\", \"layer_norm_eps\": 0.0001, \"norm_first\": true, \"causal\": true, \"rope\": true},"
  "{\"id\": \"last\", \"type\": \"SequencePool\", \"inputs\": [\"dec\"]},"
  "{\"id\": \"fc\", \"type\": \"Linear\", \"inputs\": [\"last\"], \"out_features\": 3},"
  "{\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"fc\"]}]}",

  "{\"format\": \"backprop-lab-model\", \"version\": 2, \"name\": \"tokens\", \"nodes\": ["
  "{\"id\": \"x\", \"type\": \"Input\", \"shape\": [9], \"vocab_size\": 20},"
  "{\"id\": \"emb\", \"type\": \"Embedding\", \"inputs\": [\"x\"], \"num_embeddings\": 20, \"embedding_dim\": 8},"
  "{\"id\": \"pos\", \"type\": \"PositionalEncoding\", \"inputs\": [\"emb\"], \"d_model\": 8, \"encoding\": \"learned\", \"max_len\": 12, \"dropout\": 0.1},"
  "{\"id\": \"block\", \"type\": \"TransformerEncoderLayer\", \"inputs\": [\"pos\"], \"d_model\": 8, \"nhead\": 2, \"dim_feedforward\": 16, \"activation\": \"gelu\", \"norm_first\": true, \"causal\": true},"
  "{\"id\": \"norm\", \"type\": \"LayerNorm\", \"inputs\": [\"block\"]},"
  "{\"id\": \"head\", \"type\": \"Linear\", \"inputs\": [\"norm\"], \"tied_to\": \"emb\"},"
  "{\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"head\"]}]}",

  "{\"format\": \"backprop-lab-model\", \"version\": 2, \"name\": \"rope-gpt\", \"nodes\": ["
  "{\"id\": \"x\", \"type\": \"Input\", \"shape\": [10], \"vocab_size\": 30},"
  "{\"id\": \"emb\", \"type\": \"Embedding\", \"inputs\": [\"x\"], \"embedding_dim\": 12, \"init_std\": 0.5},"
  "{\"id\": \"block\", \"type\": \"TransformerEncoderLayer\", \"inputs\": [\"emb\"], \"nhead\": 2, \"dim_feedforward\": 24, \"activation\": \"gelu\", \"norm_first\": true, \"causal\": true, \"rope\": true},"
  "{\"id\": \"post\", \"type\": \"TransformerEncoderLayer\", \"inputs\": [\"block\"], \"nhead\": 3, \"dim_feedforward\": 8, \"rope\": true},"
  "{\"id\": \"attn\", \"type\": \"MultiheadAttention\", \"inputs\": [\"post\"], \"num_heads\": 3, \"causal\": true, \"rope\": true},"
  "{\"id\": \"add\", \"type\": \"Add\", \"inputs\": [\"attn\", \"post\"]},"
  "{\"id\": \"head\", \"type\": \"Linear\", \"inputs\": [\"add\"], \"bias\": false, \"tied_to\": \"emb\"},"
  "{\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"head\"]}]}",

  "{\"format\": \"backprop-lab-model\", \"version\": 2, \"name\": \"inits\", \"nodes\": ["
  "{\"id\": \"x\", \"type\": \"Input\", \"shape\": [4, 6, 6]},"
  "{\"id\": \"conv\", \"type\": \"Conv2d\", \"inputs\": [\"x\"], \"out_channels\": 6, \"kernel_size\": 3, \"groups\": 2, \"init\": \"kaiming_normal\"},"
  "{\"id\": \"conv0\", \"type\": \"Conv2d\", \"inputs\": [\"conv\"], \"out_channels\": 4, \"kernel_size\": 3, \"init\": \"zeros\"},"
  "{\"id\": \"flat\", \"type\": \"Flatten\", \"inputs\": [\"conv0\"]},"
  "{\"id\": \"fc1\", \"type\": \"Linear\", \"inputs\": [\"flat\"], \"out_features\": 12, \"init\": \"xavier_uniform\"},"
  "{\"id\": \"fc2\", \"type\": \"Linear\", \"inputs\": [\"fc1\"], \"out_features\": 8, \"bias\": false, \"init\": \"normal\", \"init_std\": 0.02},"
  "{\"id\": \"fc3\", \"type\": \"Linear\", \"inputs\": [\"fc2\"], \"out_features\": 7, \"init\": \"kaiming_uniform\"},"
  "{\"id\": \"fc4\", \"type\": \"Linear\", \"inputs\": [\"fc3\"], \"out_features\": 3, \"init\": \"xavier_normal\"},"
  "{\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"fc4\"]}]}",
};

/* A batch of random inputs for a model: token ids below its vocab_size, or values in [-1, 1). */
static BpTensor *
model_input (const BpModel *m, int64_t batch)
{
  int64_t shape[BP_LAYER_MAX_DIMS + 1] = {batch};
  memcpy (shape + 1, m->in_shape, sizeof (int64_t) * (size_t) m->in_ndim);
  BpTensor *x = bp_test_rand (m->in_ndim + 1, shape, -1, 1, false);
  int64_t v = bp_model_vocab_size (m);
  for (int64_t i = 0; v > 0 && i < x->numel; i++)
    x->data[i] = (float) bp_rng_below ((uint64_t) v);
  return x;
}

/* A residual graph small enough for finite differences: conv, Add skip, three-way Concat. */
static const char *grad_spec =
  "{\"format\": \"backprop-lab-model\", \"version\": 2, \"name\": \"tiny-residual\", \"nodes\": ["
  "{\"id\": \"x\", \"type\": \"Input\", \"shape\": [2, 4, 4]},"
  "{\"id\": \"conv\", \"type\": \"Conv2d\", \"inputs\": [\"x\"], \"out_channels\": 2, \"kernel_size\": 3, \"padding\": 1},"
  "{\"id\": \"t\", \"type\": \"Tanh\", \"inputs\": [\"conv\"]},"
  "{\"id\": \"add\", \"type\": \"Add\", \"inputs\": [\"t\", \"x\"]},"
  "{\"id\": \"cat\", \"type\": \"Concat\", \"inputs\": [\"add\", \"x\", \"t\"]},"
  "{\"id\": \"pool\", \"type\": \"AvgPool2d\", \"inputs\": [\"cat\"], \"kernel_size\": 2},"
  "{\"id\": \"flat\", \"type\": \"Flatten\", \"inputs\": [\"pool\"]},"
  "{\"id\": \"norm\", \"type\": \"LayerNorm\", \"inputs\": [\"flat\"]},"
  "{\"id\": \"fc\", \"type\": \"Linear\", \"inputs\": [\"norm\"], \"out_features\": 3},"
  "{\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"fc\"]}]}";

/* The presets as version 1 specs (before the graph format): they must still build. */
static const char *v1_mlp =
  "{\"format\":\"backprop-lab-model\",\"version\":1,\"name\":\"mlp\",\"input\":[1,28,28],"
  "\"layers\":[{\"type\":\"Flatten\"},"
  "{\"type\":\"Linear\",\"out_features\":256},{\"type\":\"ReLU\"},"
  "{\"type\":\"Linear\",\"out_features\":128},{\"type\":\"ReLU\"},"
  "{\"type\":\"Linear\",\"out_features\":100},{\"type\":\"ReLU\"},"
  "{\"type\":\"Linear\",\"out_features\":10}]}";
static const char *v1_cnn =
  "{\"format\":\"backprop-lab-model\",\"version\":1,\"name\":\"simple-cnn\",\"input\":[1,28,28],"
  "\"layers\":["
  "{\"type\":\"Conv2d\",\"out_channels\":32,\"kernel_size\":3,\"padding\":1},"
  "{\"type\":\"BatchNorm2d\"},{\"type\":\"ReLU\"},{\"type\":\"MaxPool2d\",\"kernel_size\":2},"
  "{\"type\":\"Conv2d\",\"out_channels\":64,\"kernel_size\":3,\"padding\":1},"
  "{\"type\":\"BatchNorm2d\"},{\"type\":\"ReLU\"},{\"type\":\"MaxPool2d\",\"kernel_size\":2},"
  "{\"type\":\"Conv2d\",\"out_channels\":128,\"kernel_size\":3,\"padding\":1},"
  "{\"type\":\"BatchNorm2d\"},{\"type\":\"ReLU\"},{\"type\":\"MaxPool2d\",\"kernel_size\":2},"
  "{\"type\":\"Flatten\"},"
  "{\"type\":\"Linear\",\"out_features\":512},{\"type\":\"ReLU\"},"
  "{\"type\":\"Dropout\",\"p\":0.5},"
  "{\"type\":\"Linear\",\"out_features\":10}]}";

static void
test_presets_round_trip (void)
{
  int n;
  const BpPreset *presets = bp_presets (&n);
  g_assert_cmpint (n, ==, 11);
  for (int k = 0; k < n; k++) {
    g_autoptr (GError) error = NULL;
    g_autoptr (BpSpec) spec = bp_spec_parse (presets[k].json, &error);
    g_assert_no_error (error);
    g_assert_cmpint (spec->version, ==, BP_SPEC_VERSION);
    g_assert_cmpstr (spec->name, ==, presets[k].name);
    g_assert_cmpstr (spec->description, ==, presets[k].description);
    /* the preset text is canonical: save gives it back byte for byte, and so does a reload */
    g_autofree char *saved = bp_spec_to_json (spec);
    g_assert_cmpstr (saved, ==, presets[k].json);
    g_autofree char *again = bp_spec_canonical (saved, &error);
    g_assert_no_error (error);
    g_assert_cmpstr (again, ==, saved);

    BpModel *m = bp_spec_build_model (spec, &error);
    g_assert_no_error (error);
    g_autofree char *from_model = bp_model_to_json (m);
    g_assert_cmpstr (from_model, ==, presets[k].json);
    g_autoptr (BpSpecInfo) info = bp_spec_check (spec);
    g_assert_null (info->error);
    g_assert_cmpint (info->n_errors, ==, 0);
    g_assert_cmpint (info->n_params, ==, bp_model_num_parameters (m));
    /* state names are unique and start with a node id */
    BpNamedTensor *state;
    int n_state = bp_model_state (m, &state);
    for (int i = 0; i < n_state; i++) {
      for (int j = 0; j < i; j++)
        g_assert_cmpstr (state[i].name, !=, state[j].name);
      g_autofree char *id = g_strndup (state[i].name, strcspn (state[i].name, "."));
      g_assert_nonnull (bp_model_find (m, id));
    }
    free (state);
    bp_model_free (m);
  }
  g_assert_nonnull (bp_preset_find ("small-resnet"));
  g_assert_nonnull (bp_preset_find ("bilstm"));
  g_assert_nonnull (bp_preset_find ("char-gpt-tiny"));
  g_assert_null (bp_preset_find ("lstm"));
}

/* Randomises the batch norms' running statistics and the norms' scales so that comparing
 * eval-mode outputs tests them. */
static void
randomise_norms (BpModel *m)
{
  for (int k = 0; k < m->n_layers; k++) {
    BpLayer *l = &m->layers[k];
    BpLayerKind kind = l->spec.kind;
    if (kind != BP_LAYER_BATCHNORM1D && kind != BP_LAYER_BATCHNORM2D && kind != BP_LAYER_LAYERNORM)
      continue;
    if (l->running_mean)
      bp_tensor_uniform (l->running_mean, -0.5f, 0.5f);
    if (l->running_var)
      bp_tensor_uniform (l->running_var, 0.5f, 1.5f);
    if (l->weight)
      bp_tensor_uniform (l->weight, 0.5f, 1.5f);
    if (l->bias)
      bp_tensor_uniform (l->bias, -0.5f, 0.5f);
  }
}

/* Every preset and zoo graph: the exported module has the engine's state_dict names in the
 * engine's order and its parameter count, and with the engine's weights computes the same
 * eval-mode output. One PyTorch run for all. */
static void
test_export_matches_engine (void)
{
  int n_presets;
  const BpPreset *presets = bp_presets (&n_presets);
  int n_models = n_presets + (int) G_N_ELEMENTS (zoo);
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("bp-export-XXXXXX", &error);
  g_assert_no_error (error);
  GPtrArray *inputs = g_ptr_array_new ();
  GPtrArray *outputs = g_ptr_array_new_with_free_func ((GDestroyNotify) bp_tensor_unref);
  GPtrArray *engine = g_ptr_array_new_with_free_func ((GDestroyNotify) bp_tensor_unref);
  GPtrArray *paths = g_ptr_array_new_with_free_func (g_free);
  BpModel **models = g_new0 (BpModel *, n_models);
  GString *code = g_string_new (NULL);
  bp_rng_seed (3);
  for (int k = 0; k < n_models; k++) {
    const char *json = k < n_presets ? presets[k].json : zoo[k - n_presets];
    BpModel *m = models[k] = bp_spec_build (json, &error);
    g_assert_no_error (error);
    randomise_norms (m);
    bp_model_set_training (m, false);
    g_autofree char *py = bp_spec_to_pytorch (json, &error);
    g_assert_no_error (error);
    g_assert_nonnull (strstr (py, "class "));
    char *path = g_strdup_printf ("%s/model%d.py", dir, k);
    g_assert_true (g_file_set_contents (path, py, -1, NULL));
    g_ptr_array_add (paths, path);

    BpTensor *x = model_input (m, bp_model_num_parameters (m) > 1000000 ? 2 : 3);
    BpTensor *y = bp_model_forward (m, x);
    g_assert_nonnull (y);
    g_ptr_array_add (engine, x);
    g_ptr_array_add (engine, y);
    int base = (int) inputs->len;
    g_ptr_array_add (inputs, x);
    BpNamedTensor *state;
    int n_state = bp_model_state (m, &state);
    GString *names = g_string_new (NULL);
    for (int i = 0; i < n_state; i++) {
      g_ptr_array_add (inputs, state[i].tensor);
      g_string_append_printf (names, "%s'%s'", i ? ", " : "", state[i].name);
    }
    free (state);
    g_string_append_printf (
      code,
      "ns = {'__name__': 'exported'}\n"
      "exec(compile(open('%s').read(), '%s', 'exec'), ns)\n"
      "m = ns['model']()\n"
      "m.eval()\n"
      "names = [%s]\n"
      "sd = m.state_dict()\n"
      "keys = [k for k in sd if not k.endswith('num_batches_tracked')]\n"
      "assert keys == names, f'model %d: state_dict {keys} is not the engine state {names}'\n"
      "with torch.no_grad():\n"
      "    for i, name in enumerate(names):\n"
      "        sd[name].copy_(x[%d + 1 + i].reshape(sd[name].shape))\n"
      "    out.append(m(x[%d].detach()))\n"
      "out.append(torch.tensor([float(sum(p.numel() for p in m.parameters()))]))\n",
      path, path, names->str, k, base, base);
    g_string_free (names, TRUE);
    g_ptr_array_add (outputs, bp_tensor_new_like (y));
    g_ptr_array_add (outputs, bp_tensor_new_1d (1));
  }
  g_string_prepend (code, "out = []\n");
  if (bp_test_torch (code->str, (int) inputs->len, (BpTensor **) inputs->pdata,
                     (int) outputs->len, (BpTensor **) outputs->pdata)) {
    for (int k = 0; k < n_models; k++) {
      BpTensor *y = engine->pdata[2 * k + 1], *ref = outputs->pdata[2 * k];
      BpTensor *count = outputs->pdata[2 * k + 1];
      g_autofree char *what = g_strdup_printf ("exported %s", models[k]->name);
      bp_test_assert_close (what, y->data, ref->data, y->numel, 1e-4);
      g_assert_cmpfloat (count->data[0], ==, (float) bp_model_num_parameters (models[k]));
    }
  }
  for (int k = 0; k < n_models; k++)
    bp_model_free (models[k]);
  g_free (models);
  for (guint k = 0; k < paths->len; k++)
    g_unlink (paths->pdata[k]);
  g_rmdir (dir);
  g_ptr_array_unref (paths);
  g_ptr_array_unref (inputs);
  g_ptr_array_unref (outputs);
  g_ptr_array_unref (engine);
  g_string_free (code, TRUE);
}

static void
test_export_text (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *py = bp_spec_to_pytorch (bp_preset_find ("small-resnet")->json, &error);
  g_assert_no_error (error);
  const char *needles[] = {
    "class SmallResnet(nn.Module):",
    "self.stem_conv = nn.Conv2d(1, 16, kernel_size=3, padding=1, bias=False)",
    "self.b2_down_conv = nn.Conv2d(16, 32, kernel_size=1, stride=2, bias=False)",
    "self.pool = nn.AdaptiveAvgPool2d(output_size=1)",
    "self.fc = nn.Linear(64, 10)",
    "def forward(self, x):",
    "b1_add = b1_bn2 + stem_relu  # (N, 16, 28, 28)",
    "return fc  # (N, 10)",
    "INPUT_SHAPE = (1, 28, 28)",
    "loss_fn = nn.CrossEntropyLoss()",
  };
  for (gsize k = 0; k < G_N_ELEMENTS (needles); k++)
    if (!strstr (py, needles[k]))
      g_error ("the exported code lacks \"%s\":\n%s", needles[k], py);
  g_autofree char *seq = bp_spec_to_pytorch (zoo[1], &error);
  g_assert_no_error (error);
  g_assert_nonnull (strstr (seq, "self.ln = nn.LayerNorm((4, 6), eps=0.0001)"));
  g_assert_nonnull (strstr (seq, "self.fl = nn.Flatten(end_dim=2)"));
  g_assert_nonnull (strstr (seq, "loss_fn = nn.MSELoss()"));
  g_autofree char *branches = bp_spec_to_pytorch (zoo[0], &error);
  g_assert_no_error (error);
  g_assert_nonnull (strstr (branches, "cat = torch.cat([a, b, g], dim=1)"));
  g_assert_nonnull (strstr (branches, "nn.Conv2d(3, 4, kernel_size=(3, 5), padding=(1, 2))"));
  g_assert_nonnull (strstr (branches, "nn.AvgPool2d(kernel_size=2, stride=1, padding=1, "
                                      "count_include_pad=False)"));
  g_autofree char *identity = bp_spec_to_pytorch (zoo[2], &error);
  g_assert_no_error (error);
  g_assert_nonnull (strstr (identity, "INPUT_SHAPE = (5,)"));
  g_assert_nonnull (strstr (identity, "        pass\n"));
  /* a spec that cannot be built exports nothing */
  g_autofree char *bad = bp_spec_to_pytorch ("{\"format\": \"backprop-lab-model\", \"version\": 2, "
                                             "\"nodes\": []}", &error);
  g_assert_null (bad);
  g_assert_nonnull (strstr (error->message, "no nodes"));
}

static BpTensor *
forward_model (BpTensor **inputs, void *user)
{
  return bp_model_forward (user, inputs[0]);
}

/* Gradients through the skip connections (a tensor read by three nodes) and the Concat,
 * for the input and every parameter, against finite differences. */
static void
test_graph_gradients (void)
{
  g_autoptr (GError) error = NULL;
  bp_rng_seed (5);
  BpModel *m = bp_spec_build (grad_spec, &error);
  g_assert_no_error (error);
  BpTensor **params;
  int n_params = bp_model_parameters (m, &params);
  g_assert_cmpint (n_params, ==, 6); /* conv, norm, fc: weights and biases */
  BpTensor **in = g_new (BpTensor *, n_params + 1);
  in[0] = bp_test_rand (4, (int64_t[]){3, 2, 4, 4}, -1, 1, true);
  for (int k = 0; k < n_params; k++)
    in[1 + k] = params[k];
  bp_test_check_grad (forward_model, n_params + 1, in, m, 1e-2f, 5e-3, 40);
  bp_tape_clear ();
  bp_tensor_unref (in[0]);
  g_free (in);
  free (params);
  bp_model_free (m);
}

static void
test_v1_specs (void)
{
  g_autoptr (GError) error = NULL;
  BpModel *mlp = bp_spec_build (v1_mlp, &error);
  g_assert_no_error (error);
  g_assert_cmpint (bp_model_num_parameters (mlp), ==, 247766);
  g_assert_nonnull (bp_model_find (mlp, "linear_1"));
  bp_model_free (mlp);

  g_autoptr (BpSpec) spec = bp_spec_parse (v1_cnn, &error);
  g_assert_no_error (error);
  g_assert_cmpint (spec->version, ==, 1);
  g_assert_cmpint (spec->n_nodes, ==, 19); /* Input, 17 layers, Output */
  g_assert_cmpstr (spec->nodes[0].id, ==, "input");
  g_assert_cmpstr (spec->nodes[1].id, ==, "conv2d_0");
  g_assert_cmpstr (spec->nodes[2].inputs[0], ==, "conv2d_0");
  g_assert_cmpstr (spec->nodes[18].id, ==, "output");
  BpModel *cnn = bp_spec_build_model (spec, &error);
  g_assert_no_error (error);
  g_assert_cmpint (bp_model_num_parameters (cnn), ==, 688586);
  BpNamedTensor *state;
  int n_state = bp_model_state (cnn, &state);
  g_assert_cmpstr (state[0].name, ==, "conv2d_0.weight");
  g_assert_cmpstr (state[n_state - 1].name, ==, "linear_16.bias");
  free (state);
  bp_model_free (cnn);

  /* converted, written as version 2, read back: the same text */
  g_autofree char *v2 = bp_spec_to_json (spec);
  g_assert_nonnull (strstr (v2, "\"version\": 2"));
  g_autofree char *again = bp_spec_canonical (v2, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (again, ==, v2);

  /* v1's optional output_size and LayerNorm's "affine" */
  BpModel *m = bp_spec_build ("{\"format\":\"backprop-lab-model\",\"version\":1,\"input\":[2,3,3],"
                              "\"layers\":[{\"type\":\"AdaptiveAvgPool2d\"},{\"type\":\"Flatten\"},"
                              "{\"type\":\"LayerNorm\",\"affine\":false},"
                              "{\"type\":\"Linear\",\"out_features\":4}]}", &error);
  g_assert_no_error (error);
  g_assert_cmpint (bp_model_find (m, "adaptiveavgpool2d_0")->out_shape[1], ==, 1);
  g_assert_null (bp_model_find (m, "layernorm_2")->weight);
  g_assert_cmpint (bp_model_num_parameters (m), ==, 12);
  bp_model_free (m);
}

/* A graph given out of order is built in topological order and saved in it. */
static void
test_out_of_order (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (BpSpec) spec = bp_spec_parse (bp_preset_find ("small-resnet")->json, &error);
  g_assert_no_error (error);
  for (int i = 0, j = spec->n_nodes - 1; i < j; i++, j--) {
    BpLayerSpec t = spec->nodes[i];
    spec->nodes[i] = spec->nodes[j];
    spec->nodes[j] = t;
  }
  g_autofree char *reversed = bp_spec_to_json (spec);
  g_assert_cmpstr (reversed, !=, bp_preset_find ("small-resnet")->json);
  BpModel *m = bp_spec_build (reversed, &error);
  g_assert_no_error (error);
  g_assert_cmpint (bp_model_num_parameters (m), ==, 77754);
  g_assert_cmpint (m->layers[0].spec.kind, ==, BP_LAYER_INPUT);
  g_assert_cmpint (m->layers[m->n_layers - 1].spec.kind, ==, BP_LAYER_OUTPUT);
  for (int k = 0; k < m->n_layers; k++)
    for (int e = 0; e < m->layers[k].n_inputs; e++)
      g_assert_cmpint (m->layers[k].inputs[e], <, k);
  g_autofree char *saved = bp_model_to_json (m);
  g_autoptr (BpSpec) back = bp_spec_parse (saved, &error);
  g_assert_no_error (error);
  g_autoptr (BpSpecInfo) info = bp_spec_check (back);
  g_assert_null (info->error);
  g_assert_cmpint (info->n_params, ==, 77754);
  bp_model_free (m);
}

static const BpSpecNodeInfo *
info_node (const BpSpecInfo *info, const char *id)
{
  for (int k = 0; k < info->n_nodes; k++)
    if (g_strcmp0 (info->nodes[k].id, id) == 0)
      return &info->nodes[k];
  g_error ("no node \"%s\" in the analysis", id);
  return NULL;
}

static void
test_analyze (void)
{
  g_autoptr (GError) error = NULL;
  BpSpecInfo *info = NULL;
  g_assert_true (bp_spec_analyze (bp_preset_find ("simple-cnn")->json, &info, &error));
  g_assert_no_error (error);
  g_assert_cmpint (info->n_nodes, ==, 19);
  g_assert_cmpint (info->n_params, ==, 688586);
  const BpSpecNodeInfo *pool1 = info_node (info, "pool1");
  g_assert_cmpint (pool1->ndim, ==, 3);
  g_assert_cmpint (pool1->shape[0], ==, 32);
  g_assert_cmpint (pool1->shape[1], ==, 14);
  g_assert_cmpint (pool1->shape[2], ==, 14);
  g_assert_cmpstr (pool1->type, ==, "MaxPool2d");
  g_assert_cmpint (info_node (info, "conv1")->n_params, ==, 32 * 9 + 32);
  g_assert_cmpint (info_node (info, "bn1")->n_params, ==, 64);
  g_assert_cmpint (info_node (info, "flatten")->shape[0], ==, 1152);
  g_assert_cmpint (info_node (info, "flatten")->ndim, ==, 1);
  for (int k = 0; k < info->n_nodes; k++)
    g_assert_null (info->nodes[k].error);
  bp_spec_info_free (info);

  /* an invalid graph: shapes above the error known, the node named, the ones after unknown
   * without errors of their own */
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "data", "specs",
                                                 "06-add-shape-mismatch.json", NULL);
  g_autofree char *json = NULL;
  g_assert_true (g_file_get_contents (path, &json, NULL, NULL));
  g_assert_false (bp_spec_analyze (json, &info, &error));
  g_assert_nonnull (strstr (error->message, "node \"skip\" (Add)"));
  g_clear_error (&error);
  g_assert_nonnull (info);
  g_assert_cmpint (info->n_errors, ==, 1);
  g_assert_cmpint (info_node (info, "conv2")->shape[0], ==, 16);
  g_assert_cmpint (info_node (info, "conv2")->n_params, ==, 16 * 8 * 9 + 16);
  g_assert_nonnull (strstr (info_node (info, "skip")->error, "[8, 8, 8]"));
  g_assert_nonnull (strstr (info_node (info, "skip")->error, "[16, 8, 8]"));
  g_assert_cmpint (info_node (info, "skip")->ndim, ==, 0);
  g_assert_cmpint (info_node (info, "fc")->ndim, ==, 0);
  g_assert_null (info_node (info, "fc")->error);
  g_assert_cmpint (info->n_params, ==, 8 * 9 + 8 + 16 * 8 * 9 + 16);
  bp_spec_info_free (info);

  /* not a spec at all: no info */
  g_assert_false (bp_spec_analyze ("{\"format\": \"x\"}", &info, &error));
  g_assert_null (info);
  g_assert_nonnull (error);
}

/* Each file in tests/data/specs, the node whose error it must give (its index in the spec,
 * -1 for a problem of the whole spec) and words of the message. */
static const struct {
  const char *file;
  int node;
  const char *needle;
} malformed[] = {
  {"01-cycle.json", 2, "node \"add\" (Add): the graph has a cycle of 3 nodes: add -> relu1 -> relu2 -> add"},
  {"02-self-loop.json", 2, "node \"loop\" (Add): the graph has a cycle of 1 node: loop -> loop"},
  {"03-dangling-input.json", 2, "node \"fc2\" (Linear): its input \"fc_1\" is not a node"},
  {"04-no-inputs.json", 1, "node \"fc1\" (Linear): it has no input"},
  {"05-two-inputs-to-linear.json", 2, "node \"fc\" (Linear): it takes one input, not 2"},
  {"06-add-shape-mismatch.json", 3, "input 2 \"conv1\" has shape [8, 8, 8] but input 1 \"conv2\" has [16, 8, 8]"},
  {"07-concat-mismatch.json", 3, "node \"cat\" (Concat): input 2 \"b\" has shape [4, 6, 6], which does not fit"},
  {"08-linear-1e12-parameters.json", 1, "node \"huge\" (Linear): 1000000 x 1000000 weights: 1e+12 parameters"},
  {"09-conv-absurd-channels.json", 1, "node \"conv\" (Conv2d): 2.458e+13 parameters are more than a layer may have"},
  {"10-input-too-large.json", 0, "node \"x\" (Input): its output [1048576, 1048576] has 1.1e+12 values"},
  {"11-no-input-node.json", -1, "the graph has no Input node"},
  {"12-two-input-nodes.json", 1, "node \"y\" (Input): a second Input node"},
  {"13-no-output-node.json", -1, "the graph has no Output node"},
  {"14-two-output-nodes.json", 3, "node \"output2\" (Output): a second Output node"},
  {"15-unused-branch.json", 2, "node \"side\" (ReLU): its output does not lead to the Output node"},
  {"16-unknown-layer-type.json", 1, "node \"conv\": unknown layer type \"Conv3d\" (did you mean \"Conv2d\"?)"},
  {"17-planned-layer.json", 1, "node \"up\": ConvTranspose2d is not available yet"},
  {"18-unknown-parameter.json", 1, "node \"conv\" (Conv2d): unknown parameter \"kernal_size\" (did you mean \"kernel_size\"?)"},
  {"19-integer-as-string.json", 1, "node \"fc\" (Linear): out_features must be an integer"},
  {"20-bool-as-number.json", 1, "node \"fc\" (Linear): bias must be true or false, not 1"},
  {"21-negative-kernel.json", 1, "node \"pool\" (MaxPool2d): kernel_size must be an integer or a pair"},
  {"22-dropout-p-one.json", 1, "node \"drop\" (Dropout): p must be a number in [0, 1), not 1.0"},
  {"23-missing-required.json", 1, "node \"fc\" (Linear): Linear needs out_features"},
  {"24-duplicate-id.json", 2, "node \"fc\" (Linear): the id \"fc\" is used by node 2 too"},
  {"25-id-not-a-name.json", 1, "node \"2fc\" (Linear): the id must start with a letter"},
  {"26-reserved-id.json", 1, "node \"forward\" (Linear): the id is reserved"},
  {"27-conv-on-flat-input.json", 1, "node \"conv\" (Conv2d): needs a (C, H, W) input, not [784]"},
  {"28-kernel-larger-than-input.json", 1, "node \"conv\" (Conv2d): the 7x7 kernel (dilation 1, padding 0) does not fit"},
  {"29-in-features-mismatch.json", 1, "node \"fc\" (Linear): in_features is 100 but the input [784] has 784"},
  {"30-cross-entropy-on-image.json", 2, "node \"output\" (Output): CrossEntropyLoss needs one score per class"},
  {"31-unknown-top-level-field.json", -1, "unknown field \"nodez\" in the model spec"},
  {"32-node-not-an-object.json", 1, "node 2: it is not a JSON object"},
  {"33-inputs-not-a-list.json", 1, "node \"fc\" (Linear): \"inputs\" must be a list of node ids"},
  {"34-missing-id.json", 1, "node 2 (Linear): it has no \"id\""},
  {"35-flatten-batch-dimension.json", 1, "node \"flat\" (Flatten): start_dim 0 would flatten the batch dimension"},
  {"36-input-with-inputs.json", 0, "node \"x\" (Input): an Input node takes no inputs"},
  {"37-groups-do-not-divide.json", 1, "node \"conv\" (Conv2d): in_channels 3 and out_channels 8 must be divisible by groups 2"},
  {"38-layernorm-shape.json", 1, "node \"norm\" (LayerNorm): normalized_shape [5] does not match the end of the input shape [4, 6]"},
  {"39-unknown-loss.json", 2, "node \"output\" (Output): loss must be one of"},
  {"40-pool-padding-too-large.json", 1, "node \"pool\" (MaxPool2d): padding 2 is more than half the kernel size 2"},
  {"41-batchnorm2d-on-vector.json", 1, "node \"bn\" (BatchNorm2d): needs a (C, H, W) input, not [784]"},
  {"42-float-kernel-size.json", 1, "node \"conv\" (Conv2d): kernel_size must be an integer or a pair"},
  {"43-too-many-inputs.json", 18, "node \"sum\" (Add): it has 17 inputs, more than 16"},
  {"44-not-json.json", -1, "the model spec is not valid JSON"},
  {"45-tied-to-not-embedding.json", 3, "node \"head\" (Linear): tied_to \"proj\" is a Linear, not an Embedding"},
  {"46-embedding-without-vocab.json", 1, "node \"emb\" (Embedding): num_embeddings is needed: the input [16] holds no token ids"},
  {"47-lstm-on-image.json", 1, "node \"lstm\" (LSTM): needs a (T, features) sequence, not [1, 28, 28]"},
  {"48-heads-do-not-divide.json", 1, "node \"enc\" (TransformerEncoderLayer): 30 features are not divisible by nhead 4"},
  {"49-context-longer-than-max-len.json", 2, "node \"pos\" (PositionalEncoding): the input [128, 16] is longer than max_len 64"},
  {"50-decoder-memory-mismatch.json", 2, "node \"dec\" (TransformerDecoderLayer): input 2 \"mem\" (the memory) has shape [6, 12], not (S, 8)"},
  {"51-unknown-choice.json", 1, "node \"rnn\" (RNN): nonlinearity must be one of \"tanh\", \"relu\", not \"sigmoid\""},
};

static void
test_malformed (void)
{
  g_autofree char *dir = g_test_build_filename (G_TEST_DIST, "data", "specs", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (GDir) d = g_dir_open (dir, 0, &error);
  g_assert_no_error (error);
  /* every file has an expectation and every expectation a file */
  guint n_files = 0;
  for (const char *name; (name = g_dir_read_name (d));) {
    if (!g_str_has_suffix (name, ".json"))
      continue;
    gboolean known = FALSE;
    for (gsize k = 0; k < G_N_ELEMENTS (malformed); k++)
      known |= strcmp (malformed[k].file, name) == 0;
    if (!known)
      g_error ("tests/data/specs/%s has no expected error in test-spec.c", name);
    n_files++;
  }
  g_assert_cmpuint (n_files, ==, G_N_ELEMENTS (malformed));
  g_assert_cmpuint (n_files, >=, 30);

  int node_errors = 0;
  for (gsize k = 0; k < G_N_ELEMENTS (malformed); k++) {
    g_autofree char *path = g_build_filename (dir, malformed[k].file, NULL);
    g_autofree char *json = NULL;
    g_assert_true (g_file_get_contents (path, &json, NULL, NULL));
    g_autoptr (GError) build_error = NULL;
    BpModel *m = bp_spec_build (json, &build_error);
    if (m || !build_error || !strstr (build_error->message, malformed[k].needle))
      g_error ("%s: expected an error with \"%s\", got %s", malformed[k].file, malformed[k].needle,
               build_error ? build_error->message : "a model");
    /* the analysis gives the same error and puts it on the node */
    g_autoptr (GError) analyze_error = NULL;
    BpSpecInfo *info = NULL;
    g_assert_false (bp_spec_analyze (json, &info, &analyze_error));
    g_assert_cmpstr (analyze_error->message, ==, build_error->message);
    if (malformed[k].node >= 0) {
      g_assert_nonnull (info);
      g_assert_cmpint (malformed[k].node, <, info->n_nodes);
      const BpSpecNodeInfo *ni = &info->nodes[malformed[k].node];
      if (!ni->error)
        g_error ("%s: node %d carries no error", malformed[k].file, malformed[k].node + 1);
      g_assert_nonnull (strstr (build_error->message, ni->error));
      node_errors++;
    }
    bp_spec_info_free (info);
    /* nor does it export */
    g_autoptr (GError) export_error = NULL;
    g_autofree char *py = bp_spec_to_pytorch (json, &export_error);
    g_assert_null (py);
    g_assert_nonnull (export_error);
    /* a readable spec can still be written out (the builder saves work in progress) */
    g_autoptr (BpSpec) spec = bp_spec_parse (json, NULL);
    if (spec) {
      g_autofree char *saved = bp_spec_to_json (spec);
      g_autoptr (BpSpec) back = bp_spec_parse (saved, NULL);
      g_assert_nonnull (back);
      g_assert_cmpint (back->n_nodes, ==, spec->n_nodes);
    }
  }
  g_assert_cmpint (node_errors, >=, 30);
}

static void
test_planned_layers (void)
{
  int n;
  const BpLayerType *types = bp_layer_types (&n);
  int planned = 0;
  for (int k = 0; k < n; k++) {
    if (types[k].kind >= 0)
      continue;
    planned++;
    g_autofree char *json = g_strdup_printf (
      "{\"format\": \"backprop-lab-model\", \"version\": 2, \"nodes\": ["
      "{\"id\": \"x\", \"type\": \"Input\", \"shape\": [8, 8]},"
      "{\"id\": \"layer\", \"type\": \"%s\", \"inputs\": [\"x\"]},"
      "{\"id\": \"out\", \"type\": \"Output\", \"inputs\": [\"layer\"], \"loss\": \"MSELoss\"}]}",
      types[k].name);
    g_autoptr (GError) error = NULL;
    g_assert_null (bp_spec_build (json, &error));
    g_autofree char *want = g_strdup_printf ("node \"layer\": %s is not available yet", types[k].name);
    if (!strstr (error->message, want))
      g_error ("%s: \"%s\" lacks \"%s\"", types[k].name, error->message, want);
  }
  g_assert_cmpint (planned, >=, 1);
  g_assert_nonnull (bp_layer_type_find ("ConvTranspose2d"));
  g_assert_cmpint (bp_layer_kind_from_name ("ConvTranspose2d"), ==, -1);
  /* the sequence layers are built now */
  for (const char *const *name = (const char *const[]){"RNN", "LSTM", "GRU", "MultiheadAttention",
                                                       "Embedding", "PositionalEncoding",
                                                       "TransformerEncoderLayer",
                                                       "TransformerDecoderLayer", "SequencePool",
                                                       NULL};
       *name; name++)
    g_assert_cmpint (bp_layer_kind_from_name (*name), >=, 0);
}

static void
test_layer_tables (void)
{
  int n;
  const BpLayerType *types = bp_layer_types (&n);
  g_autofree char *doc_path = g_test_build_filename (G_TEST_DIST, "..", "doc", "model-spec.md",
                                                     NULL);
  g_autofree char *doc = NULL;
  g_assert_true (g_file_get_contents (doc_path, &doc, NULL, NULL));
  int kinds_seen[BP_LAYER_KIND_COUNT] = {0};
  for (int k = 0; k < n; k++) {
    const BpLayerType *t = &types[k];
    g_assert_true (bp_layer_type_find (t->name) == t);
    g_assert_nonnull (t->group);
    g_assert_nonnull (t->help);
    /* the doc describes every type and parameter */
    g_autofree char *quoted = g_strdup_printf ("`%s`", t->name);
    if (!strstr (doc, quoted))
      g_error ("doc/model-spec.md does not mention %s", quoted);
    if (t->kind < 0)
      continue;
    kinds_seen[t->kind]++;
    g_assert_cmpstr (bp_layer_kind_name ((BpLayerKind) t->kind), ==, t->name);
    g_assert_true (bp_layer_kind_type ((BpLayerKind) t->kind) == t);
    BpLayerSpec def = bp_layer_spec_default ((BpLayerKind) t->kind);
    for (int j = 0; j < t->n_params; j++) {
      const BpParamInfo *p = &t->params[j];
      g_assert_true (bp_layer_param_find (t, p->name) == p);
      g_assert_cmpuint (p->offset, <, sizeof (BpLayerSpec));
      g_autofree char *param = g_strdup_printf ("`%s`", p->name);
      if (!strstr (doc, param))
        g_error ("doc/model-spec.md does not mention %s's %s", t->name, param);
      /* defaults are not written; required ones always are */
      g_assert_true (bp_param_is_set (&def, p) == !!(p->flags & BP_PARAM_REQUIRED));
    }
  }
  for (int k = 0; k < BP_LAYER_KIND_COUNT; k++)
    g_assert_cmpint (kinds_seen[k], ==, 1);
  g_assert_cmpint (bp_layer_kind_from_name ("Nothing"), ==, -1);
  g_assert_cmpint (bp_loss_from_name ("MSELoss"), ==, BP_LOSS_MSE);
  g_assert_cmpint (bp_loss_from_name ("L1Loss"), ==, -1);

  char buf[32];
  bp_float_format (1e-5f, buf, sizeof buf);
  g_assert_cmpstr (buf, ==, "1e-05");
  bp_float_format (0.1f, buf, sizeof buf);
  g_assert_cmpstr (buf, ==, "0.1");
  bp_float_format (0.3f, buf, sizeof buf);
  g_assert_cmpfloat (strtof (buf, NULL), ==, 0.3f);
}

/* The inspector's setter: validated like the reader, unchanged on errors. */
static void
test_set_param (void)
{
  BpLayerSpec conv = bp_layer_spec_default (BP_LAYER_CONV2D);
  g_autoptr (GError) error = NULL;
  g_assert_true (bp_layer_spec_set_param (&conv, "kernel_size", "[3, 5]", &error));
  g_assert_no_error (error);
  g_assert_cmpint (conv.kernel_size[0], ==, 3);
  g_assert_cmpint (conv.kernel_size[1], ==, 5);
  g_assert_true (bp_layer_spec_set_param (&conv, "bias", "false", &error));
  g_assert_false (conv.bias);
  g_assert_false (bp_layer_spec_set_param (&conv, "kernel_size", "0", &error));
  g_assert_nonnull (strstr (error->message, "kernel_size must be"));
  g_clear_error (&error);
  g_assert_cmpint (conv.kernel_size[1], ==, 5);
  g_assert_false (bp_layer_spec_set_param (&conv, "stride", "\"two\"", &error));
  g_clear_error (&error);
  g_assert_false (bp_layer_spec_set_param (&conv, "stride", "[1, 2", &error));
  g_assert_nonnull (strstr (error->message, "not a JSON value"));
  g_clear_error (&error);
  g_assert_false (bp_layer_spec_set_param (&conv, "strides", "2", &error));
  g_assert_nonnull (strstr (error->message, "did you mean \"stride\""));
  g_clear_error (&error);
  g_assert_cmpint (conv.stride[0], ==, 1);

  BpLayerSpec pool = bp_layer_spec_default (BP_LAYER_MAXPOOL2D);
  g_assert_true (bp_layer_spec_set_param (&pool, "stride", "3", &error));
  g_assert_cmpint (pool.stride[0], ==, 3);
  g_assert_true (bp_layer_spec_set_param (&pool, "stride", "null", &error));
  g_assert_cmpint (pool.stride[0], ==, 0);

  BpLayerSpec out = bp_layer_spec_default (BP_LAYER_OUTPUT);
  g_assert_true (bp_layer_spec_set_param (&out, "loss", "\"MSELoss\"", &error));
  g_assert_cmpint (out.loss, ==, BP_LOSS_MSE);
  BpLayerSpec relu = bp_layer_spec_default (BP_LAYER_RELU);
  g_assert_false (bp_layer_spec_set_param (&relu, "inplace", "true", &error));
  g_assert_nonnull (strstr (error->message, "ReLU has no parameters"));
}

/* ---- weight initialisation ---- */

static const char *const init_names[BP_INIT_COUNT] = {
  "default", "kaiming_uniform", "kaiming_normal", "xavier_uniform", "xavier_normal", "normal",
  "zeros",
};

/* A grouped Conv2d and two Linears, all with the same init: a (128, 8, 5, 5) conv weight (fan_in
 * 200, fan_out 3200), fc1 (512, 128) and fc2 (400, 512). */
static char *
init_spec (BpInit init)
{
  g_autofree char *with = init == BP_INIT_DEFAULT ? g_strdup ("")
                          : init == BP_INIT_NORMAL
                            ? g_strdup (", \"init\": \"normal\", \"init_std\": 0.05")
                            : g_strdup_printf (", \"init\": \"%s\"", init_names[init]);
  return g_strdup_printf (
    "{\"format\": \"backprop-lab-model\", \"version\": 2, \"name\": \"init-%s\", \"nodes\": ["
    "{\"id\": \"x\", \"type\": \"Input\", \"shape\": [16, 8, 8]},"
    "{\"id\": \"conv\", \"type\": \"Conv2d\", \"inputs\": [\"x\"], \"out_channels\": 128, "
    "\"kernel_size\": 5, \"groups\": 2%s},"
    "{\"id\": \"pool\", \"type\": \"AdaptiveAvgPool2d\", \"inputs\": [\"conv\"], \"output_size\": 1},"
    "{\"id\": \"flat\", \"type\": \"Flatten\", \"inputs\": [\"pool\"]},"
    "{\"id\": \"fc1\", \"type\": \"Linear\", \"inputs\": [\"flat\"], \"out_features\": 512%s},"
    "{\"id\": \"fc2\", \"type\": \"Linear\", \"inputs\": [\"fc1\"], \"out_features\": 400%s},"
    "{\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"fc2\"]}]}",
    init_names[init], with, with, with);
}

/* The state of init_spec's model, in bp_model_state's order, with the fans of each tensor. */
static const struct {
  const char *name;
  int64_t numel;
  double fan_in, fan_out; /* of the layer's weight (a bias follows its weight's fan_in) */
  gboolean bias;
} init_tensors[] = {
  {"conv.weight", 128 * 8 * 5 * 5, 200, 3200, FALSE}, {"conv.bias", 128, 200, 3200, TRUE},
  {"fc1.weight", 512 * 128, 128, 512, FALSE},         {"fc1.bias", 512, 128, 512, TRUE},
  {"fc2.weight", 400 * 512, 512, 400, FALSE},         {"fc2.bias", 400, 512, 400, TRUE},
};
#define N_MOMENTS 5 /* mean, std, kurtosis, min, max */

static void
moments (const float *v, int64_t n, double out[N_MOMENTS])
{
  double mean = 0, m2 = 0, m4 = 0, lo = v[0], hi = v[0];
  for (int64_t i = 0; i < n; i++) {
    mean += v[i];
    lo = MIN (lo, v[i]);
    hi = MAX (hi, v[i]);
  }
  mean /= (double) n;
  for (int64_t i = 0; i < n; i++) {
    double c = v[i] - mean;
    m2 += c * c;
    m4 += c * c * c * c;
  }
  m2 /= (double) n;
  m4 /= (double) n;
  out[0] = mean;
  out[1] = sqrt (m2);
  out[2] = m2 > 0 ? m4 / (m2 * m2) : 0;
  out[3] = lo;
  out[4] = hi;
}

/* Asserts that the moments m of n values fit the distribution init gives tensor t (weights by
 * torch.nn.init's formulas, biases U(-1/sqrt (fan_in), 1/sqrt (fan_in)) but 0 with zeros), with
 * tolerances of 6 standard errors of each statistic for n draws. */
static void
assert_init_moments (const char *who, BpInit init, int t, int64_t n, const double m[N_MOMENTS])
{
  double fi = init_tensors[t].fan_in, fo = init_tensors[t].fan_out;
  double bound = 0, std = 0; /* uniform on [-bound, bound], or normal with std */
  if (init == BP_INIT_ZEROS) {
    for (int k = 0; k < N_MOMENTS; k++)
      if (m[k] != 0)
        g_error ("%s %s (init zeros): moment %d is %g, not 0", who, init_tensors[t].name, k, m[k]);
    return;
  }
  if (init_tensors[t].bias || init == BP_INIT_DEFAULT)
    bound = 1 / sqrt (fi);
  else if (init == BP_INIT_KAIMING_UNIFORM)
    bound = sqrt (6 / fi);
  else if (init == BP_INIT_XAVIER_UNIFORM)
    bound = sqrt (6 / (fi + fo));
  else if (init == BP_INIT_KAIMING_NORMAL)
    std = sqrt (2 / fi);
  else if (init == BP_INIT_XAVIER_NORMAL)
    std = sqrt (2 / (fi + fo));
  else
    std = 0.05;
  double kurtosis = bound > 0 ? 1.8 : 3.0;
  double sigma = bound > 0 ? bound / sqrt (3) : std;
  /* standard errors: the mean sigma / sqrt (n), the std sigma sqrt ((kurtosis - 1) / 4n), the
   * kurtosis sqrt (24 / n) for a normal (less for a uniform) */
  double se_mean = sigma / sqrt ((double) n);
  double se_std = sigma * sqrt ((kurtosis - 1) / (4.0 * (double) n));
  double se_kurt = sqrt (24.0 / (double) n);
  g_test_message ("%s %s %s: mean %.3g std %.5g (want %.5g) kurtosis %.3f (want %.1f) range [%.4g, "
                  "%.4g]", who, init_names[init], init_tensors[t].name, m[0], m[1], sigma, m[2],
                  kurtosis, m[3], m[4]);
  if (fabs (m[0]) > 6 * se_mean || fabs (m[1] - sigma) > 6 * se_std ||
      fabs (m[2] - kurtosis) > MAX (6 * se_kurt, 0.05))
    g_error ("%s %s (init %s, %" G_GINT64_FORMAT " values): mean %g, std %g, kurtosis %g do not "
             "fit mean 0, std %g, kurtosis %g", who, init_tensors[t].name, init_names[init], n,
             m[0], m[1], m[2], sigma, kurtosis);
  if (bound > 0) {
    /* inside the bounds, and reaching near both ends: P (max < b (1 - 40/n)) is about e^-20 */
    g_assert_cmpfloat (m[3], >=, -bound * (1 + 1e-6));
    g_assert_cmpfloat (m[4], <=, bound * (1 + 1e-6));
    g_assert_cmpfloat (m[3], <, -bound * (1 - 40.0 / (double) n));
    g_assert_cmpfloat (m[4], >, bound * (1 - 40.0 / (double) n));
  } else {
    /* a normal reaches 3.5 std both ways in so many draws */
    g_assert_cmpfloat (m[3], <, -3.5 * std);
    g_assert_cmpfloat (m[4], >, 3.5 * std);
  }
}

/* Each init gives the distribution torch.nn.init's formula says (PyTorch's fans, grouped
 * convolutions included), biases keep PyTorch's rule (zeros: 0), the same seed gives the same
 * weights; the exported module, run in PyTorch, has the engine's state_dict shapes and its
 * nn.init calls give the same distributions. */
static void
test_init_distributions (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("bp-init-XXXXXX", &error);
  g_assert_no_error (error);
  GString *code = g_string_new ("out = []\n");
  GPtrArray *paths = g_ptr_array_new_with_free_func (g_free);
  BpTensor *dummy = bp_tensor_new_1d (1);
  BpTensor *torch_moments[BP_INIT_COUNT];
  for (int init = 0; init < BP_INIT_COUNT; init++) {
    g_autofree char *json = init_spec ((BpInit) init);
    bp_rng_seed (100 + (uint64_t) init);
    BpModel *m = bp_spec_build (json, &error);
    g_assert_no_error (error);
    bp_rng_seed (100 + (uint64_t) init);
    BpModel *same = bp_spec_build (json, &error);
    BpModel *other = bp_spec_build (json, &error); /* the RNG has moved on */
    BpNamedTensor *state, *state_same, *state_other;
    int n_state = bp_model_state (m, &state);
    g_assert_cmpint (n_state, ==, G_N_ELEMENTS (init_tensors));
    g_assert_cmpint (bp_model_state (same, &state_same), ==, n_state);
    g_assert_cmpint (bp_model_state (other, &state_other), ==, n_state);
    GString *shapes = g_string_new (NULL);
    for (int t = 0; t < n_state; t++) {
      BpTensor *w = state[t].tensor;
      g_assert_cmpstr (state[t].name, ==, init_tensors[t].name);
      g_assert_cmpint (w->numel, ==, init_tensors[t].numel);
      double mo[N_MOMENTS];
      moments (w->data, w->numel, mo);
      assert_init_moments ("engine", (BpInit) init, t, w->numel, mo);
      g_assert_true (memcmp (w->data, state_same[t].tensor->data,
                             sizeof (float) * (size_t) w->numel) == 0);
      gboolean differs = memcmp (w->data, state_other[t].tensor->data,
                                 sizeof (float) * (size_t) w->numel) != 0;
      g_assert_true (differs == (init != BP_INIT_ZEROS));
      g_string_append_printf (shapes, "%s'%s': [", t ? ", " : "", state[t].name);
      for (int d = 0; d < w->ndim; d++)
        g_string_append_printf (shapes, "%s%" G_GINT64_FORMAT, d ? ", " : "", w->shape[d]);
      g_string_append_c (shapes, ']');
    }
    free (state);
    free (state_same);
    free (state_other);
    bp_model_free (m);
    bp_model_free (same);
    bp_model_free (other);

    g_autofree char *py = bp_spec_to_pytorch (json, &error);
    g_assert_no_error (error);
    char *path = g_strdup_printf ("%s/init%d.py", dir, init);
    g_assert_true (g_file_set_contents (path, py, -1, NULL));
    g_ptr_array_add (paths, path);
    g_string_append_printf (
      code,
      "ns = {'__name__': 'exported'}\n"
      "exec(compile(open('%s').read(), '%s', 'exec'), ns)\n"
      "torch.manual_seed(%d)\n"
      "m = ns['model']()\n"
      "sd = m.state_dict()\n"
      "want = {%s}\n"
      "got = {k: list(v.shape) for k, v in sd.items()}\n"
      "assert got == want, f'init %s: state_dict shapes {got} are not the engine\\'s {want}'\n"
      "assert m(torch.zeros(2, *ns['INPUT_SHAPE'])).shape == (2, 400)\n"
      "st = []\n"
      "for v in sd.values():\n"
      "    v = v.detach().double().flatten()\n"
      "    c = v - v.mean()\n"
      "    var = (c * c).mean()\n"
      "    st += [v.mean(), var.sqrt(), (c ** 4).mean() / var ** 2 if var > 0 else var, v.min(), "
      "v.max()]\n"
      "out.append(torch.stack(st))\n",
      path, path, init, shapes->str, init_names[init]);
    g_string_free (shapes, TRUE);
    torch_moments[init] = bp_tensor_new_1d (N_MOMENTS * (int64_t) G_N_ELEMENTS (init_tensors));
  }
  if (bp_test_torch (code->str, 1, &dummy, BP_INIT_COUNT, torch_moments)) {
    for (int init = 0; init < BP_INIT_COUNT; init++)
      for (gsize t = 0; t < G_N_ELEMENTS (init_tensors); t++) {
        double mo[N_MOMENTS];
        for (int k = 0; k < N_MOMENTS; k++)
          mo[k] = torch_moments[init]->data[t * N_MOMENTS + k];
        assert_init_moments ("PyTorch", (BpInit) init, (int) t, init_tensors[t].numel, mo);
      }
  }
  for (int init = 0; init < BP_INIT_COUNT; init++)
    bp_tensor_unref (torch_moments[init]);
  bp_tensor_unref (dummy);
  for (guint k = 0; k < paths->len; k++)
    g_unlink (paths->pdata[k]);
  g_rmdir (dir);
  g_ptr_array_unref (paths);
  g_string_free (code, TRUE);
}

/* init in the spec: canonical JSON writes it only when not "default" (old specs read and write
 * unchanged), the export calls torch.nn.init, the table offers the choices to the inspector,
 * and a bad value is an error that names the node and the allowed values. */
static void
test_init_spec (void)
{
  static const char *json =
    "{\"format\": \"backprop-lab-model\", \"version\": 2, \"name\": \"inits\", \"nodes\": ["
    "{\"id\": \"x\", \"type\": \"Input\", \"shape\": [1, 8, 8]},"
    "{\"id\": \"conv\", \"type\": \"Conv2d\", \"inputs\": [\"x\"], \"out_channels\": 4, "
    "\"kernel_size\": 3, \"init_std\": 0.02, \"init\": \"normal\"},"
    "{\"id\": \"flat\", \"type\": \"Flatten\", \"inputs\": [\"conv\"]},"
    "{\"id\": \"fc1\", \"type\": \"Linear\", \"inputs\": [\"flat\"], \"out_features\": 16, "
    "\"init\": \"xavier_uniform\"},"
    "{\"id\": \"fc2\", \"type\": \"Linear\", \"inputs\": [\"fc1\"], \"out_features\": 16, "
    "\"init\": \"default\"},"
    "{\"id\": \"fc3\", \"type\": \"Linear\", \"inputs\": [\"fc2\"], \"out_features\": 3, "
    "\"init\": \"zeros\"},"
    "{\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"fc3\"]}]}";
  g_autoptr (GError) error = NULL;
  g_autoptr (BpSpec) spec = bp_spec_parse (json, &error);
  g_assert_no_error (error);
  g_assert_cmpint (spec->nodes[1].init, ==, BP_INIT_NORMAL);
  g_assert_cmpfloat (spec->nodes[1].init_std, ==, 0.02f);
  g_assert_cmpint (spec->nodes[3].init, ==, BP_INIT_XAVIER_UNIFORM);
  g_assert_cmpint (spec->nodes[4].init, ==, BP_INIT_DEFAULT);
  g_assert_cmpint (spec->nodes[5].init, ==, BP_INIT_ZEROS);
  g_autofree char *saved = bp_spec_to_json (spec);
  const char *lines[] = {
    "{\"id\": \"conv\", \"type\": \"Conv2d\", \"inputs\": [\"x\"], \"out_channels\": 4, "
    "\"kernel_size\": 3, \"init\": \"normal\", \"init_std\": 0.02}",
    "{\"id\": \"fc1\", \"type\": \"Linear\", \"inputs\": [\"flat\"], \"out_features\": 16, "
    "\"init\": \"xavier_uniform\"}",
    "{\"id\": \"fc2\", \"type\": \"Linear\", \"inputs\": [\"fc1\"], \"out_features\": 16}",
    "{\"id\": \"fc3\", \"type\": \"Linear\", \"inputs\": [\"fc2\"], \"out_features\": 3, "
    "\"init\": \"zeros\"}",
  };
  for (gsize k = 0; k < G_N_ELEMENTS (lines); k++)
    if (!strstr (saved, lines[k]))
      g_error ("the canonical spec lacks\n%s\n:\n%s", lines[k], saved);
  g_autofree char *again = bp_spec_canonical (saved, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (again, ==, saved);
  BpModel *m = bp_spec_build_model (spec, &error);
  g_assert_no_error (error);
  g_autofree char *from_model = bp_model_to_json (m);
  g_assert_cmpstr (from_model, ==, saved);
  /* zeros: weight and bias; the others keep a random bias */
  BpLayer *fc3 = bp_model_find (m, "fc3"), *fc1 = bp_model_find (m, "fc1");
  for (int64_t i = 0; i < fc3->weight->numel; i++)
    g_assert_cmpfloat (fc3->weight->data[i], ==, 0.0f);
  for (int64_t i = 0; i < fc3->bias->numel; i++)
    g_assert_cmpfloat (fc3->bias->data[i], ==, 0.0f);
  g_assert_cmpfloat (fabsf (fc1->bias->data[0]) + fabsf (fc1->bias->data[1]), >, 0.0f);
  bp_model_free (m);
  /* old specs carry no init and write none */
  int n;
  const BpPreset *presets = bp_presets (&n);
  for (int k = 0; k < n; k++)
    g_assert_null (strstr (presets[k].json, "\"init\""));

  /* the export sets the weights after the constructors, which take no init */
  g_autofree char *py = bp_spec_export_pytorch (spec, &error);
  g_assert_no_error (error);
  const char *needles[] = {
    "self.conv = nn.Conv2d(1, 4, kernel_size=3)\n",
    "self.fc2 = nn.Linear(16, 16)\n",
    "        nn.init.normal_(self.conv.weight, std=0.02)\n",
    "        nn.init.xavier_uniform_(self.fc1.weight)\n",
    "        nn.init.zeros_(self.fc3.weight)\n        nn.init.zeros_(self.fc3.bias)\n",
  };
  for (gsize k = 0; k < G_N_ELEMENTS (needles); k++)
    if (!strstr (py, needles[k]))
      g_error ("the exported code lacks \"%s\":\n%s", needles[k], py);
  g_assert_null (strstr (py, "self.fc2.weight"));
  g_assert_null (strstr (py, "init="));
  for (int init = BP_INIT_KAIMING_UNIFORM; init <= BP_INIT_XAVIER_NORMAL; init++) {
    spec->nodes[4].init = init;
    g_autofree char *code = bp_spec_export_pytorch (spec, &error);
    g_autofree char *call = g_strdup_printf (
      "        nn.init.%s_(self.fc2.weight%s)\n", init_names[init],
      init <= BP_INIT_KAIMING_NORMAL ? ", nonlinearity=\"relu\"" : "");
    if (!strstr (code, call))
      g_error ("the exported code lacks \"%s\":\n%s", call, code);
  }

  /* the inspector offers it like any choice */
  for (BpLayerKind kind = BP_LAYER_CONV2D; kind != BP_LAYER_KIND_COUNT;
       kind = kind == BP_LAYER_CONV2D ? BP_LAYER_LINEAR : BP_LAYER_KIND_COUNT) {
    const BpParamInfo *p = bp_layer_param_find (bp_layer_kind_type (kind), "init");
    g_assert_nonnull (p);
    g_assert_cmpint (p->type, ==, BP_PARAM_CHOICE);
    for (int k = 0; k < BP_INIT_COUNT; k++)
      g_assert_cmpstr (p->choices[k], ==, init_names[k]);
    g_assert_null (p->choices[BP_INIT_COUNT]);
    g_assert_nonnull (bp_layer_param_find (bp_layer_kind_type (kind), "init_std"));
  }
  BpLayerSpec lin = bp_layer_spec_default (BP_LAYER_LINEAR);
  g_assert_true (bp_layer_spec_set_param (&lin, "init", "\"kaiming_normal\"", &error));
  g_assert_no_error (error);
  g_assert_cmpint (lin.init, ==, BP_INIT_KAIMING_NORMAL);
  g_assert_false (bp_layer_spec_set_param (&lin, "init", "\"Kaiming\"", &error));
  g_assert_nonnull (strstr (error->message, "init must be one of \"default\", \"kaiming_uniform\""));
  g_clear_error (&error);
  g_assert_cmpint (lin.init, ==, BP_INIT_KAIMING_NORMAL);

  /* errors name the node */
  static const struct {
    const char *node;
    const char *needle;
  } cases[] = {
    {"{\"id\": \"fc\", \"type\": \"Linear\", \"inputs\": [\"x\"], \"out_features\": 4, \"init\": \"he\"}",
     "node \"fc\" (Linear): init must be one of \"default\", \"kaiming_uniform\", \"kaiming_normal\", "
     "\"xavier_uniform\", \"xavier_normal\", \"normal\", \"zeros\", not \"he\""},
    {"{\"id\": \"fc\", \"type\": \"Linear\", \"inputs\": [\"x\"], \"out_features\": 4, \"init\": 2}",
     "node \"fc\" (Linear): init must be one of \"default\""},
    {"{\"id\": \"c\", \"type\": \"Conv2d\", \"inputs\": [\"x\"], \"out_channels\": 2, \"kernel_size\": 1, \"init\": \"ones\"}",
     "node \"c\" (Conv2d): init must be one of"},
    {"{\"id\": \"c\", \"type\": \"Conv2d\", \"inputs\": [\"x\"], \"out_channels\": 2, \"kernel_size\": 1, \"init_std\": 0.1}",
     "node \"c\" (Conv2d): init_std is read only with init \"normal\", not with \"default\""},
    {"{\"id\": \"fc\", \"type\": \"Linear\", \"inputs\": [\"x\"], \"out_features\": 4, \"init\": \"xavier_normal\", \"init_std\": 2}",
     "node \"fc\" (Linear): init_std is read only with init \"normal\", not with \"xavier_normal\""},
    {"{\"id\": \"fc\", \"type\": \"Linear\", \"inputs\": [\"x\"], \"out_features\": 4, \"init\": \"normal\", \"init_std\": 0}",
     "node \"fc\" (Linear): init_std must be a number in (0, 100]"},
  };
  for (gsize k = 0; k < G_N_ELEMENTS (cases); k++) {
    g_autofree char *bad = g_strdup_printf (
      "{\"format\": \"backprop-lab-model\", \"version\": 2, \"nodes\": ["
      "{\"id\": \"x\", \"type\": \"Input\", \"shape\": [1, 4, 4]}, %s,"
      "{\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"%s\"], \"loss\": \"MSELoss\"}]}",
      cases[k].node, cases[k].node[8] == 'f' ? "fc" : "c");
    g_assert_null (bp_spec_build (bad, &error));
    if (!strstr (error->message, cases[k].needle))
      g_error ("init case %" G_GSIZE_FORMAT ": \"%s\" lacks \"%s\"", k, error->message,
               cases[k].needle);
    g_clear_error (&error);
  }
  /* a tied weight is the Embedding's */
  g_autofree char *tied = g_strdup (zoo[5]);
  char *head = strstr (tied, "\"tied_to\": \"emb\"}");
  g_assert_nonnull (head);
  g_autofree char *tied_init = g_strdup_printf ("%.*s\"tied_to\": \"emb\", \"init\": \"zeros\"}%s",
                                                (int) (head - tied), tied,
                                                head + strlen ("\"tied_to\": \"emb\"}"));
  g_assert_null (bp_spec_build (tied_init, &error));
  g_assert_nonnull (strstr (error->message, "node \"head\" (Linear): init \"zeros\" cannot apply "
                                            "to a tied weight"));
  g_clear_error (&error);
  /* a value set in C outside the choices */
  spec->nodes[3].init = 42;
  g_autoptr (BpSpecInfo) info = bp_spec_check (spec);
  g_assert_nonnull (strstr (info->error, "node \"fc1\" (Linear): init must be one of \"default\""));
  g_assert_null (bp_spec_build_model (spec, &error));
  g_assert_nonnull (strstr (error->message, "node \"fc1\" (Linear): init must be one of"));
}

/* What the Build page does from an empty canvas: add nodes, set parameters as typed, connect,
 * see shapes and errors, add a residual connection, build and run. */
static void
test_build_from_empty (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (BpSpec) spec = bp_spec_new ("my-cnn");
  g_autoptr (BpSpecInfo) empty = bp_spec_check (spec);
  g_assert_nonnull (strstr (empty->error, "no nodes"));
  bp_spec_add_node (spec, BP_LAYER_INPUT, "x", NULL)->shape = (BpShape){3, {1, 28, 28}};
  BpLayerSpec *conv = bp_spec_add_node (spec, BP_LAYER_CONV2D, "conv1", "x");
  g_assert_true (bp_layer_spec_set_param (conv, "out_channels", "8", &error));
  g_assert_true (bp_layer_spec_set_param (conv, "kernel_size", "3", &error));
  g_assert_true (bp_layer_spec_set_param (conv, "padding", "1", &error));
  bp_spec_add_node (spec, BP_LAYER_RELU, "relu1", "conv1");
  g_assert_true (bp_layer_spec_set_param (bp_spec_add_node (spec, BP_LAYER_MAXPOOL2D, "pool1",
                                                            "relu1"),
                                          "kernel_size", "2", &error));
  bp_spec_add_node (spec, BP_LAYER_FLATTEN, "flatten", "pool1");
  BpLayerSpec *fc = bp_spec_add_node (spec, BP_LAYER_LINEAR, "fc", "flatten");
  /* a Linear without out_features: the canvas shows the error on it */
  BpSpecInfo *info = bp_spec_check (spec);
  g_assert_nonnull (strstr (info->nodes[5].error, "Linear needs out_features"));
  g_assert_cmpint (info->nodes[4].shape[0], ==, 8 * 14 * 14);
  bp_spec_info_free (info);
  fc = &spec->nodes[5];
  g_assert_true (bp_layer_spec_set_param (fc, "out_features", "10", &error));
  info = bp_spec_check (spec);
  g_assert_nonnull (strstr (info->error, "no Output node"));
  bp_spec_info_free (info);
  bp_spec_add_node (spec, BP_LAYER_OUTPUT, "output", "fc");
  info = bp_spec_check (spec);
  g_assert_null (info->error);
  g_assert_cmpint (info->n_params, ==, 8 * 9 + 8 + 8 * 14 * 14 * 10 + 10);
  bp_spec_info_free (info);

  /* a residual connection around a second conv: Add (pool1, relu2) */
  g_autoptr (BpSpec) before = bp_spec_copy (spec);
  BpLayerSpec *conv2 = bp_spec_add_node (spec, BP_LAYER_CONV2D, "conv2", "pool1");
  conv2->out_channels = 8;
  conv2->kernel_size[0] = conv2->kernel_size[1] = 3;
  bp_spec_add_node (spec, BP_LAYER_RELU, "relu2", "conv2");
  BpLayerSpec *add = bp_spec_add_node (spec, BP_LAYER_ADD, "add", "relu2");
  g_strlcpy (add->inputs[add->n_inputs++], "pool1", sizeof add->inputs[0]);
  g_strlcpy (spec->nodes[4].inputs[0], "add", sizeof spec->nodes[4].inputs[0]);
  info = bp_spec_check (spec);
  /* no padding: 14x14 -> 12x12 does not add to 14x14 */
  g_assert_nonnull (strstr (info->error, "node \"add\" (Add): input 2 \"pool1\" has shape [8, 14, 14] "
                                         "but input 1 \"relu2\" has [8, 12, 12]"));
  bp_spec_info_free (info);
  spec->nodes[7].padding[0] = spec->nodes[7].padding[1] = 1;
  BpModel *m = bp_spec_build_model (spec, &error);
  g_assert_no_error (error);
  /* conv1 8x1x3x3 + 8, conv2 8x8x3x3 + 8, fc 10x1568 + 10 */
  g_assert_cmpint (bp_model_num_parameters (m), ==, 80 + 584 + 15690);
  BpTensor *x = bp_test_rand (4, (int64_t[]){2, 1, 28, 28}, -1, 1, false);
  BpTensor *y = bp_model_forward (m, x);
  g_assert_nonnull (y);
  g_assert_cmpint (y->shape[1], ==, 10);
  bp_tape_clear ();
  bp_tensor_unref (x);
  bp_tensor_unref (y);
  bp_model_free (m);
  /* its saved form reads back as the same graph; the copy taken before is unchanged */
  g_autofree char *json = bp_spec_to_json (spec);
  g_autofree char *again = bp_spec_canonical (json, &error);
  g_assert_cmpstr (again, ==, json);
  g_assert_cmpint (before->n_nodes, ==, 7);
  bp_spec_remove_node (spec, 9);
  bp_spec_remove_node (spec, 99);
  g_assert_cmpint (spec->n_nodes, ==, 9);
  info = bp_spec_check (spec);
  g_assert_nonnull (strstr (info->error, "node \"flatten\" (Flatten): its input \"add\" is not a node"));
  bp_spec_info_free (info);
}

/* Damaged presets (cut, doubled, changed characters) never crash the reader, the checks,
 * the writers or the builder. */
static void
test_damaged_specs (void)
{
  GRand *rand = g_rand_new_with_seed (7);
  static const char alphabet[] = "{}[]\",:0123456789-.eEtnx ";
  int n_presets, built = 0;
  const BpPreset *presets = bp_presets (&n_presets);
  for (int round = 0; round < 600; round++) {
    const char *base = presets[round % n_presets].json;
    GString *s = g_string_new (base);
    int edits = g_rand_int_range (rand, 1, 4);
    for (int e = 0; e < edits; e++) {
      gsize pos = (gsize) g_rand_int_range (rand, 0, (gint32) s->len);
      switch (g_rand_int_range (rand, 0, 4)) {
      case 0: {
        /* (MIN evaluates its arguments twice: draw first) */
        gint32 cut = g_rand_int_range (rand, 1, 30);
        g_string_erase (s, (gssize) pos, MIN (cut, (gint32) (s->len - pos)));
        break;
      }
      case 1:
        g_string_insert_c (s, (gssize) pos, alphabet[g_rand_int_range (rand, 0, sizeof alphabet - 1)]);
        break;
      case 2:
        if (g_ascii_isdigit (s->str[pos]))
          g_string_insert (s, (gssize) pos, g_rand_boolean (rand) ? "99999999" : "-");
        break;
      default: {
        gsize want = (gsize) g_rand_int_range (rand, 1, 80);
        gsize len = MIN (want, s->len - pos);
        g_autofree char *copy = g_strndup (s->str + pos, len);
        g_string_insert (s, (gssize) g_rand_int_range (rand, 0, (gint32) s->len), copy);
      }
      }
    }
    BpSpecInfo *info = NULL;
    g_autoptr (GError) error = NULL;
    gboolean ok = bp_spec_analyze (s->str, &info, &error);
    g_assert_true (ok == (error == NULL));
    if (info) {
      for (int k = 0; k < info->n_nodes; k++)
        g_assert_true (info->nodes[k].ndim >= 0 && info->nodes[k].ndim <= BP_LAYER_MAX_DIMS);
      g_autoptr (BpSpec) spec = bp_spec_parse (s->str, NULL);
      g_free (bp_spec_to_json (spec));
      g_free (bp_spec_export_pytorch (spec, NULL));
      if (ok && info->n_params < 3000000) {
        BpModel *m = bp_spec_build_model (spec, NULL);
        g_assert_nonnull (m);
        bp_model_free (m);
        built++;
      }
    }
    bp_spec_info_free (info);
    g_string_free (s, TRUE);
  }
  g_assert_cmpint (built, >, 0);
  g_rand_free (rand);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  bp_set_num_threads (2);
  g_test_add_func ("/spec/presets-round-trip", test_presets_round_trip);
  g_test_add_func ("/spec/export-matches-engine", test_export_matches_engine);
  g_test_add_func ("/spec/export-text", test_export_text);
  g_test_add_func ("/spec/graph-gradients", test_graph_gradients);
  g_test_add_func ("/spec/v1-specs", test_v1_specs);
  g_test_add_func ("/spec/out-of-order", test_out_of_order);
  g_test_add_func ("/spec/analyze", test_analyze);
  g_test_add_func ("/spec/malformed", test_malformed);
  g_test_add_func ("/spec/planned-layers", test_planned_layers);
  g_test_add_func ("/spec/layer-tables", test_layer_tables);
  g_test_add_func ("/spec/set-param", test_set_param);
  g_test_add_func ("/spec/build-from-empty", test_build_from_empty);
  g_test_add_func ("/spec/damaged-specs", test_damaged_specs);
  g_test_add_func ("/spec/init-distributions", test_init_distributions);
  g_test_add_func ("/spec/init-spec", test_init_spec);
  return g_test_run ();
}
