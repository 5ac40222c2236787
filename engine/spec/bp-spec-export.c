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

/* The constructor call of a module node: "nn.Conv2d(1, 32, kernel_size=3, padding=1)". */
static void
append_constructor (GString *out, const BpLayerSpec *s, const BpShape *in)
{
  const BpLayerType *type = bp_layer_kind_type (s->kind);
  g_string_append_printf (out, "nn.%s(", type->name);
  gboolean first = TRUE;
  for (int k = 0; k < type->n_params; k++) {
    const BpParamInfo *p = &type->params[k];
    char value[128];
    if (p->flags & BP_PARAM_POSITIONAL) {
      if ((p->flags & BP_PARAM_INFERRED) && !bp_param_is_set (s, p)) {
        /* PyTorch needs the sizes the engine infers */
        BpLayerSpec filled = *s;
        if (s->kind == BP_LAYER_LINEAR)
          filled.in_features = in->d[in->ndim - 1];
        else if (s->kind == BP_LAYER_LAYERNORM)
          filled.normalized_shape = (BpShape){1, {in->d[in->ndim - 1]}};
        else if (s->kind == BP_LAYER_CONV2D)
          filled.in_channels = in->d[0];
        else
          filled.num_features = in->d[0];
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
  g_string_append_c (out, ')');
}

static gboolean
is_module (BpLayerKind kind)
{
  return kind != BP_LAYER_INPUT && kind != BP_LAYER_OUTPUT && kind != BP_LAYER_ADD &&
         kind != BP_LAYER_CONCAT;
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
  g_string_append (out, "import torch\nfrom torch import nn\n\n");
  g_string_append (out, "INPUT_SHAPE = (");
  for (int d = 0; d < input->shape.ndim; d++)
    g_string_append_printf (out, "%s%lld", d ? ", " : "", (long long) input->shape.d[d]);
  if (input->shape.ndim == 1)
    g_string_append_c (out, ',');
  g_string_append (out, ")  # one example; a batch is ");
  append_shape (out, &input->shape);
  g_string_append_printf (out, "\n\n\nclass %s(nn.Module):\n", cls);
  g_string_append (out, "    def __init__(self):\n        super().__init__()\n");
  int n_modules = 0;
  for (int o = 0; o < g->n_order; o++) {
    int k = g->order[o];
    const BpLayerSpec *s = &nodes[k];
    if (!is_module (s->kind))
      continue;
    g_string_append_printf (out, "        self.%s = ", s->id);
    append_constructor (out, s, &g->layers[g->layers[k].inputs[0]].out);
    g_string_append_c (out, '\n');
    n_modules++;
  }
  if (n_modules == 0)
    g_string_append (out, "        pass\n");

  g_string_append_printf (out, "\n    def forward(self, %s):\n", input->id);
  for (int o = 0; o < g->n_order; o++) {
    int k = g->order[o];
    const BpLayerSpec *s = &nodes[k];
    if (s->kind == BP_LAYER_INPUT || s->kind == BP_LAYER_OUTPUT)
      continue;
    g_string_append_printf (out, "        %s = ", s->id);
    if (s->kind == BP_LAYER_ADD) {
      for (int e = 0; e < s->n_inputs; e++)
        g_string_append_printf (out, "%s%s", e ? " + " : "", s->inputs[e]);
    } else if (s->kind == BP_LAYER_CONCAT) {
      g_string_append (out, "torch.cat([");
      for (int e = 0; e < s->n_inputs; e++)
        g_string_append_printf (out, "%s%s", e ? ", " : "", s->inputs[e]);
      g_string_append_printf (out, "], dim=%lld)", (long long) s->dim);
    } else {
      g_string_append_printf (out, "self.%s(%s)", s->id, s->inputs[0]);
    }
    g_string_append (out, "  # ");
    append_shape (out, &g->layers[k].out);
    g_string_append_c (out, '\n');
  }
  g_string_append_printf (out, "        return %s  # ", output->inputs[0]);
  append_shape (out, &g->layers[g->output].out);
  g_string_append_printf (out,
                          "\n\n\ndef model():\n"
                          "    \"\"\"A new %s, initialised as PyTorch does.\"\"\"\n"
                          "    return %s()\n\n\n"
                          "loss_fn = nn.%s()\n\n"
                          "if __name__ == \"__main__\":\n"
                          "    m = model()\n"
                          "    print(m)\n"
                          "    print(sum(p.numel() for p in m.parameters()), \"parameters\")\n"
                          "    y = m(torch.zeros(2, *INPUT_SHAPE))\n"
                          "    print(\"output shape:\", tuple(y.shape))\n",
                          cls, cls, bp_loss_name ((BpLossKind) output->loss));
  bp_graph_info_free (g);
  return g_string_free (out, FALSE);
}

char *
bp_spec_to_pytorch (const char *json, GError **error)
{
  g_autoptr (BpSpec) spec = bp_spec_parse (json, error);
  return spec ? bp_spec_export_pytorch (spec, error) : NULL;
}
