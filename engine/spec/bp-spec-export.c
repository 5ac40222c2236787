/* bp-spec-export.c: a model spec as PyTorch code: an nn.Module whose attributes are the
 * spec's nodes (so its state_dict names are the engine's) and whose forward wires the graph. */
#include "bp-spec.h"

#include <gio/gio.h>
#include <string.h>

/* "simple-cnn" -> "SimpleCnn"; a name without letters gives "Model". */
static char *
class_name (const char *name)
{
  GString *s = g_string_new (NULL);
  gboolean up = TRUE;
  for (const char *c = name; *c; c++) {
    if (!g_ascii_isalnum (*c)) {
      up = TRUE;
      continue;
    }
    if (s->len == 0 && g_ascii_isdigit (*c))
      g_string_append (s, "Model");
    g_string_append_c (s, up ? g_ascii_toupper (*c) : *c);
    up = FALSE;
  }
  if (s->len == 0)
    g_string_append (s, "Model");
  return g_string_free (s, FALSE);
}

/* Text as a Python comment: one "# " line per line, control characters dropped. */
static void
append_comment (GString *out, const char *text)
{
  g_string_append (out, "# ");
  for (const unsigned char *c = (const unsigned char *) text; *c; c++) {
    if (*c == '\n')
      g_string_append (out, "\n# ");
    else if (*c >= 0x20 && *c != 0x7f)
      g_string_append_c (out, (char) *c);
  }
  g_string_append_c (out, '\n');
}

static void
append_shape (GString *out, const BpShape *s)
{
  g_string_append (out, "(N");
  for (int d = 0; d < s->ndim; d++)
    g_string_append_printf (out, ", %lld", (long long) s->d[d]);
  g_string_append_c (out, ')');
}

/* Parameters that are not constructor arguments: they shape forward (causal), the weights
 * after construction (tied_to, init, init_std). */
static gboolean
is_constructor_param (const BpLayerSpec *s, const BpParamInfo *p)
{
  if (strcmp (p->name, "causal") == 0 && s->rope && s->kind != BP_LAYER_MULTIHEAD_ATTENTION)
    return TRUE; /* the RoPE layer classes take it in their constructor */
  return strcmp (p->name, "causal") != 0 && strcmp (p->name, "tied_to") != 0 &&
         strcmp (p->name, "init") != 0 && strcmp (p->name, "init_std") != 0 &&
         strcmp (p->name, "rope") != 0;
}

/* The torch.nn.init calls that give a Linear's or Conv2d's weights its init (none for the
 * default: the constructor's reset_parameters is PyTorch's own). */
static void
append_init (GString *out, const BpLayerSpec *s)
{
  const char *w = s->id;
  char v[32];
  switch ((BpInit) s->init) {
  case BP_INIT_KAIMING_UNIFORM:
  case BP_INIT_KAIMING_NORMAL:
    g_string_append_printf (out,
                            "        nn.init.kaiming_%s_(self.%s.weight, nonlinearity=\"relu\")\n",
                            s->init == BP_INIT_KAIMING_UNIFORM ? "uniform" : "normal", w);
    break;
  case BP_INIT_XAVIER_UNIFORM:
  case BP_INIT_XAVIER_NORMAL:
    g_string_append_printf (out, "        nn.init.xavier_%s_(self.%s.weight)\n",
                            s->init == BP_INIT_XAVIER_UNIFORM ? "uniform" : "normal", w);
    break;
  case BP_INIT_NORMAL:
    bp_float_format (s->init_std, v, sizeof v);
    g_string_append_printf (out, "        nn.init.normal_(self.%s.weight, std=%s)\n", w, v);
    break;
  case BP_INIT_ZEROS:
    g_string_append_printf (out, "        nn.init.zeros_(self.%s.weight)\n", w);
    if (s->bias)
      g_string_append_printf (out, "        nn.init.zeros_(self.%s.bias)\n", w);
    break;
  case BP_INIT_DEFAULT:
  case BP_INIT_COUNT:
    break;
  }
}

static gboolean
is_custom_class (BpLayerKind kind)
{
  return kind == BP_LAYER_POSITIONAL_ENCODING || kind == BP_LAYER_SEQUENCE_POOL;
}

/* PyTorch's sequence layers here always take (N, T, features) batches. */
static gboolean
takes_batch_first (BpLayerKind kind)
{
  return kind == BP_LAYER_RNN || kind == BP_LAYER_LSTM || kind == BP_LAYER_GRU ||
         kind == BP_LAYER_MULTIHEAD_ATTENTION || kind == BP_LAYER_TRANSFORMER_ENCODER_LAYER ||
         kind == BP_LAYER_TRANSFORMER_DECODER_LAYER;
}

/* The constructor call of a module node: "nn.Conv2d(1, 32, kernel_size=3, padding=1)". in and
 * out are the node's input and output shapes (inferred sizes are filled in from them). */
static void
append_constructor (GString *out, const BpLayerSpec *s, const BpShape *in, const BpShape *outs)
{
  const BpLayerType *type = bp_layer_kind_type (s->kind);
  if (s->rope && s->kind != BP_LAYER_MULTIHEAD_ATTENTION)
    g_string_append_printf (out, "Rope%s(", type->name);
  else
    g_string_append_printf (out, "%s%s(", is_custom_class (s->kind) ? "" : "nn.", type->name);
  gboolean first = TRUE;
  for (int k = 0; k < type->n_params; k++) {
    const BpParamInfo *p = &type->params[k];
    char value[128];
    if (!is_constructor_param (s, p))
      continue;
    if (p->flags & BP_PARAM_POSITIONAL) {
      if ((p->flags & BP_PARAM_INFERRED) && !bp_param_is_set (s, p)) {
        /* PyTorch needs the sizes the engine infers */
        BpLayerSpec filled = *s;
        int64_t last = in->d[in->ndim - 1];
        switch (s->kind) {
        case BP_LAYER_LINEAR:
          filled.in_features = last;
          filled.out_features = outs->d[outs->ndim - 1];
          break;
        case BP_LAYER_LAYERNORM:
          filled.normalized_shape = (BpShape){1, {last}, 0};
          break;
        case BP_LAYER_CONV2D:
          filled.in_channels = in->d[0];
          break;
        case BP_LAYER_EMBEDDING:
          filled.num_embeddings = in->vocab;
          break;
        case BP_LAYER_RNN:
        case BP_LAYER_LSTM:
        case BP_LAYER_GRU:
          filled.input_size = last;
          break;
        case BP_LAYER_MULTIHEAD_ATTENTION:
          filled.embed_dim = last;
          break;
        case BP_LAYER_POSITIONAL_ENCODING:
        case BP_LAYER_TRANSFORMER_ENCODER_LAYER:
        case BP_LAYER_TRANSFORMER_DECODER_LAYER:
          filled.d_model = last;
          break;
        default:
          filled.num_features = in->d[0];
        }
        bp_param_format (&filled, p, true, value, sizeof value);
      } else {
        bp_param_format (s, p, true, value, sizeof value);
      }
      g_string_append_printf (out, "%s%s", first ? "" : ", ", value);
    } else if (bp_param_is_set (s, p)) {
      bp_param_format (s, p, true, value, sizeof value);
      g_string_append_printf (out, "%s%s=%s", first ? "" : ", ", p->name, value);
    } else {
      continue;
    }
    first = FALSE;
  }
  if (takes_batch_first (s->kind))
    g_string_append_printf (out, "%sbatch_first=True", first ? "" : ", ");
  g_string_append_c (out, ')');
}

static gboolean
is_module (BpLayerKind kind)
{
  return kind != BP_LAYER_INPUT && kind != BP_LAYER_OUTPUT && kind != BP_LAYER_ADD &&
         kind != BP_LAYER_CONCAT;
}

static const char causal_mask_code[] =
  "def causal_mask(x):\n"
  "    \"\"\"The causal attention mask for a (N, T, E) batch: -inf above the diagonal.\"\"\"\n"
  "    t = x.shape[1]\n"
  "    return torch.triu(torch.full((t, t), float(\"-inf\"), dtype=x.dtype, device=x.device), 1)\n"
  "\n\n";

static const char posenc_code[] =
  "class PositionalEncoding(nn.Module):\n"
  "    \"\"\"Adds position vectors to a (N, T, d_model) batch: sinusoidal (a fixed table, as in\n"
  "    \"Attention is all you need\") or learned (a parameter, initialised N(0, 0.02)).\"\"\"\n"
  "\n"
  "    def __init__(self, d_model, encoding=\"sinusoidal\", max_len=5000, dropout=0.0):\n"
  "        super().__init__()\n"
  "        self.dropout = nn.Dropout(dropout)\n"
  "        if encoding == \"learned\":\n"
  "            self.weight = nn.Parameter(torch.randn(max_len, d_model) * 0.02)\n"
  "        else:\n"
  "            pos = torch.arange(max_len).unsqueeze(1).double()\n"
  "            div = torch.exp(torch.arange(0, d_model, 2).double() * (-math.log(10000.0) / d_model))\n"
  "            pe = torch.zeros(max_len, d_model, dtype=torch.double)\n"
  "            pe[:, 0::2] = torch.sin(pos * div)\n"
  "            pe[:, 1::2] = torch.cos(pos * div)\n"
  "            self.register_buffer(\"pe\", pe.float(), persistent=False)\n"
  "\n"
  "    def forward(self, x):\n"
  "        table = self.weight if hasattr(self, \"weight\") else self.pe\n"
  "        return self.dropout(x + table[: x.shape[1]].to(x.dtype))\n"
  "\n\n";

static const char rope_code[] =
  "def rotate(x, heads, base=10000.0):\n"
  "    \"\"\"RoPE on a (N, T, heads * D) batch: in each head the pairs (i, i + D/2) turn by the angle\n"
  "    position * base^(-2i/D) (the rotate-half pairing of GPT-NeoX and LLaMA).\"\"\"\n"
  "    n, t, c = x.shape\n"
  "    d = c // heads\n"
  "    half = d // 2\n"
  "    pos = torch.arange(t, dtype=torch.float64, device=x.device).unsqueeze(1)\n"
  "    freq = base ** (-torch.arange(half, dtype=torch.float64, device=x.device) * 2.0 / d)\n"
  "    ang = (pos * freq).unsqueeze(1)  # (T, 1, D/2)\n"
  "    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)\n"
  "    x = x.view(n, t, heads, d)\n"
  "    x1, x2 = x[..., :half], x[..., half:]\n"
  "    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).view(n, t, c)\n"
  "\n\n"
  "def rope_attention(mha, x, causal):\n"
  "    \"\"\"nn.MultiheadAttention (batch_first) as self-attention on x with RoPE on queries and keys.\"\"\"\n"
  "    n, t, e = x.shape\n"
  "    h = mha.num_heads\n"
  "    d = e // h\n"
  "    q, k, v = nn.functional.linear(x, mha.in_proj_weight, mha.in_proj_bias).split(e, dim=-1)\n"
  "    q, k = rotate(q, h), rotate(k, h)\n"
  "    q, k, v = (z.reshape(n, t, h, d).transpose(1, 2) for z in (q, k, v))\n"
  "    s = q @ k.transpose(-2, -1) / math.sqrt(d)\n"
  "    if causal:\n"
  "        s = s + causal_mask(x)\n"
  "    a = nn.functional.dropout(s.softmax(-1), mha.dropout, mha.training)\n"
  "    return mha.out_proj((a @ v).transpose(1, 2).reshape(n, t, e))\n"
  "\n\n";

static const char rope_encoder_code[] =
  "class RopeTransformerEncoderLayer(nn.TransformerEncoderLayer):\n"
  "    \"\"\"TransformerEncoderLayer whose self-attention uses RoPE (and a causal mask when asked).\"\"\"\n"
  "\n"
  "    def __init__(self, *args, causal=False, **kwargs):\n"
  "        super().__init__(*args, **kwargs)\n"
  "        self.causal = causal\n"
  "        self.activation_relu_or_gelu = 0  # PyTorch's fused fast path has no RoPE: keep it off\n"
  "\n"
  "    def _sa_block(self, x, attn_mask, key_padding_mask):\n"
  "        return self.dropout1(rope_attention(self.self_attn, x, self.causal))\n"
  "\n\n";

static const char rope_decoder_code[] =
  "class RopeTransformerDecoderLayer(nn.TransformerDecoderLayer):\n"
  "    \"\"\"TransformerDecoderLayer whose self-attention uses RoPE (and a causal mask when asked).\"\"\"\n"
  "\n"
  "    def __init__(self, *args, causal=False, **kwargs):\n"
  "        super().__init__(*args, **kwargs)\n"
  "        self.causal = causal\n"
  "\n"
  "    def _sa_block(self, x, attn_mask, key_padding_mask):\n"
  "        return self.dropout1(rope_attention(self.self_attn, x, self.causal))\n"
  "\n\n";

static const char pool_code[] =
  "class SequencePool(nn.Module):\n"
  "    \"\"\"One vector per sequence of a (N, T, ...) batch: the last step, the mean or the first.\"\"\"\n"
  "\n"
  "    def __init__(self, mode=\"last\"):\n"
  "        super().__init__()\n"
  "        self.mode = mode\n"
  "\n"
  "    def forward(self, x):\n"
  "        if self.mode == \"mean\":\n"
  "            return x.mean(dim=1)\n"
  "        return x[:, -1] if self.mode == \"last\" else x[:, 0]\n"
  "\n\n";

/* One node's line in forward (without the shape comment). */
static void
append_call (GString *out, const BpLayerSpec *s)
{
  const char *x = s->inputs[0];
  switch (s->kind) {
  case BP_LAYER_ADD:
    g_string_append_printf (out, "        %s = ", s->id);
    for (int e = 0; e < s->n_inputs; e++)
      g_string_append_printf (out, "%s%s", e ? " + " : "", s->inputs[e]);
    break;
  case BP_LAYER_CONCAT:
    g_string_append_printf (out, "        %s = torch.cat([", s->id);
    for (int e = 0; e < s->n_inputs; e++)
      g_string_append_printf (out, "%s%s", e ? ", " : "", s->inputs[e]);
    g_string_append_printf (out, "], dim=%lld)", (long long) s->dim);
    break;
  case BP_LAYER_EMBEDDING:
    g_string_append_printf (out, "        %s = self.%s(%s.long())", s->id, s->id, x);
    break;
  case BP_LAYER_RNN:
  case BP_LAYER_LSTM:
  case BP_LAYER_GRU:
    g_string_append_printf (out, "        %s, _ = self.%s(%s)", s->id, s->id, x);
    break;
  case BP_LAYER_MULTIHEAD_ATTENTION:
    if (s->rope) {
      g_string_append_printf (out, "        %s = rope_attention(self.%s, %s, %s)", s->id, s->id, x,
                              s->causal ? "True" : "False");
      break;
    }
    g_string_append_printf (out, "        %s = self.%s(%s, %s, %s, need_weights=False%s%s%s)[0]",
                            s->id, s->id, x, x, x, s->causal ? ", attn_mask=causal_mask(" : "",
                            s->causal ? x : "", s->causal ? ")" : "");
    break;
  case BP_LAYER_TRANSFORMER_ENCODER_LAYER:
    if (s->rope) {
      g_string_append_printf (out, "        %s = self.%s(%s)", s->id, s->id, x);
      break;
    }
    g_string_append_printf (out, "        %s = self.%s(%s%s%s%s)", s->id, s->id, x,
                            s->causal ? ", src_mask=causal_mask(" : "", s->causal ? x : "",
                            s->causal ? ")" : "");
    break;
  case BP_LAYER_TRANSFORMER_DECODER_LAYER:
    if (s->rope) {
      g_string_append_printf (out, "        %s = self.%s(%s, %s)", s->id, s->id, x, s->inputs[1]);
      break;
    }
    g_string_append_printf (out, "        %s = self.%s(%s, %s%s%s%s)", s->id, s->id, x,
                            s->inputs[1], s->causal ? ", tgt_mask=causal_mask(" : "",
                            s->causal ? x : "", s->causal ? ")" : "");
    break;
  default:
    g_string_append_printf (out, "        %s = self.%s(%s)", s->id, s->id, x);
  }
}

char *
bp_spec_export_pytorch (const BpSpec *spec, GError **error)
{
  BpGraphInfo *g = bp_graph_check (spec->n_nodes, spec->nodes,
                                   (const char *const *) spec->errors);
  if (g->n_errors) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s", g->error);
    bp_graph_info_free (g);
    return NULL;
  }
  const BpLayerSpec *nodes = spec->nodes;
  const BpLayerSpec *input = &nodes[g->input], *output = &nodes[g->output];
  g_autofree char *cls = class_name (spec->name);
  GString *out = g_string_new (NULL);
  g_autofree char *title = g_strdup_printf ("Model \"%s\", exported from Backprop Lab (model "
                                            "spec version %d).", spec->name, BP_SPEC_VERSION);
  append_comment (out, title);
  if (spec->description)
    append_comment (out, spec->description);
  gboolean uses_causal = FALSE, uses_posenc = FALSE, uses_pool = FALSE, uses_rope = FALSE;
  gboolean rope_enc = FALSE, rope_dec = FALSE;
  for (int k = 0; k < spec->n_nodes; k++) {
    const BpLayerSpec *s = &nodes[k];
    gboolean attn = s->kind == BP_LAYER_MULTIHEAD_ATTENTION ||
                    s->kind == BP_LAYER_TRANSFORMER_ENCODER_LAYER ||
                    s->kind == BP_LAYER_TRANSFORMER_DECODER_LAYER;
    uses_rope |= attn && s->rope;
    rope_enc |= s->rope && s->kind == BP_LAYER_TRANSFORMER_ENCODER_LAYER;
    rope_dec |= s->rope && s->kind == BP_LAYER_TRANSFORMER_DECODER_LAYER;
    uses_causal |= s->causal && (s->kind == BP_LAYER_MULTIHEAD_ATTENTION ||
                                 s->kind == BP_LAYER_TRANSFORMER_ENCODER_LAYER ||
                                 s->kind == BP_LAYER_TRANSFORMER_DECODER_LAYER);
    uses_posenc |= s->kind == BP_LAYER_POSITIONAL_ENCODING;
    uses_pool |= s->kind == BP_LAYER_SEQUENCE_POOL;
  }
  uses_causal |= uses_rope; /* rope_attention builds its own mask */
  g_string_append (out, uses_posenc || uses_rope ? "import math\n\nimport torch\nfrom torch import nn\n\n"
                                                 : "import torch\nfrom torch import nn\n\n");
  g_string_append (out, "INPUT_SHAPE = (");
  for (int d = 0; d < input->shape.ndim; d++)
    g_string_append_printf (out, "%s%lld", d ? ", " : "", (long long) input->shape.d[d]);
  if (input->shape.ndim == 1)
    g_string_append_c (out, ',');
  g_string_append (out, ")  # one example; a batch is ");
  append_shape (out, &input->shape);
  if (input->vocab_size > 0)
    g_string_append_printf (out, " of token ids below %lld", (long long) input->vocab_size);
  g_string_append (out, "\n\n\n");
  if (uses_causal)
    g_string_append (out, causal_mask_code);
  if (uses_rope)
    g_string_append (out, rope_code);
  if (rope_enc)
    g_string_append (out, rope_encoder_code);
  if (rope_dec)
    g_string_append (out, rope_decoder_code);
  if (uses_posenc)
    g_string_append (out, posenc_code);
  if (uses_pool)
    g_string_append (out, pool_code);
  g_string_append_printf (out, "class %s(nn.Module):\n", cls);
  g_string_append (out, "    def __init__(self):\n        super().__init__()\n");
  int n_modules = 0;
  for (int o = 0; o < g->n_order; o++) {
    int k = g->order[o];
    const BpLayerSpec *s = &nodes[k];
    if (!is_module (s->kind))
      continue;
    g_string_append_printf (out, "        self.%s = ", s->id);
    append_constructor (out, s, &g->layers[g->layers[k].inputs[0]].out, &g->layers[k].out);
    g_string_append_c (out, '\n');
    n_modules++;
  }
  /* what PyTorch does after construction: shared weights, a non-default initialisation */
  for (int o = 0; o < g->n_order; o++) {
    const BpLayerSpec *s = &nodes[g->order[o]];
    if (s->kind == BP_LAYER_LINEAR && s->tied_to[0])
      g_string_append_printf (out, "        self.%s.weight = self.%s.weight  # weight tying\n",
                              s->id, s->tied_to);
    if (s->kind == BP_LAYER_EMBEDDING && s->init_std != 1.0f) {
      char v[32];
      bp_float_format (s->init_std, v, sizeof v);
      g_string_append_printf (out, "        nn.init.normal_(self.%s.weight, std=%s)\n", s->id, v);
    }
    if (s->kind == BP_LAYER_LINEAR || s->kind == BP_LAYER_CONV2D)
      append_init (out, s);
  }
  if (n_modules == 0)
    g_string_append (out, "        pass\n");

  g_string_append_printf (out, "\n    def forward(self, %s):\n", input->id);
  for (int o = 0; o < g->n_order; o++) {
    int k = g->order[o];
    const BpLayerSpec *s = &nodes[k];
    if (s->kind == BP_LAYER_INPUT || s->kind == BP_LAYER_OUTPUT)
      continue;
    append_call (out, s);
    g_string_append (out, "  # ");
    append_shape (out, &g->layers[k].out);
    g_string_append_c (out, '\n');
  }
  /* cross-entropy per time step on (N, T, C) logits and (N, T) targets */
  const BpShape *logits = &g->layers[g->output].out;
  g_autofree char *loss_line =
    output->loss == BP_LOSS_CROSS_ENTROPY && logits->ndim == 2
      ? g_strdup ("def loss_fn(logits, target):\n"
                  "    \"\"\"Cross-entropy of every time step: (N, T, C) logits, (N, T) targets.\"\"\"\n"
                  "    return nn.functional.cross_entropy(logits.flatten(0, -2), target.flatten().long())")
      : g_strdup_printf ("loss_fn = nn.%s()", bp_loss_name ((BpLossKind) output->loss));
  g_string_append_printf (out, "        return %s  # ", output->inputs[0]);
  append_shape (out, &g->layers[g->output].out);
  g_string_append_printf (out,
                          "\n\n\ndef model():\n"
                          "    \"\"\"A new %s, initialised as PyTorch does.\"\"\"\n"
                          "    return %s()\n\n\n"
                          "%s\n\n"
                          "if __name__ == \"__main__\":\n"
                          "    m = model()\n"
                          "    print(m)\n"
                          "    print(sum(p.numel() for p in m.parameters()), \"parameters\")\n"
                          "    y = m(torch.zeros(2, *INPUT_SHAPE))\n"
                          "    print(\"output shape:\", tuple(y.shape))\n",
                          cls, cls, loss_line);
  bp_graph_info_free (g);
  return g_string_free (out, FALSE);
}

char *
bp_spec_to_pytorch (const char *json, GError **error)
{
  g_autoptr (BpSpec) spec = bp_spec_parse (json, error);
  return spec ? bp_spec_export_pytorch (spec, error) : NULL;
}
