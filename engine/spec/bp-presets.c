/* bp-presets.c: the model spec parser and the built-in preset specs. */
#include "bp-spec.h"

#include <json-glib/json-glib.h>
#include <string.h>

static const BpPreset presets[] = {
  {"mlp", "Multilayer perceptron 784-256-128-100-10 (the Fashion-MNIST benchmark's MLP)",
   "{\"format\":\"backprop-lab-model\",\"version\":1,\"name\":\"mlp\",\"input\":[1,28,28],"
   "\"layers\":["
   "{\"type\":\"Flatten\"},"
   "{\"type\":\"Linear\",\"out_features\":256},{\"type\":\"ReLU\"},"
   "{\"type\":\"Linear\",\"out_features\":128},{\"type\":\"ReLU\"},"
   "{\"type\":\"Linear\",\"out_features\":100},{\"type\":\"ReLU\"},"
   "{\"type\":\"Linear\",\"out_features\":10}]}"},
  {"simple-cnn",
   "The course's SimpleCNN: three conv-BN-ReLU-maxpool blocks (32/64/128), Linear 512, "
   "dropout 0.5, Linear 10",
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
   "{\"type\":\"Linear\",\"out_features\":10}]}"},
};

const BpPreset *
bp_presets (int *n)
{
  *n = G_N_ELEMENTS (presets);
  return presets;
}

const BpPreset *
bp_preset_find (const char *name)
{
  for (gsize k = 0; k < G_N_ELEMENTS (presets); k++)
    if (g_strcmp0 (presets[k].name, name) == 0)
      return &presets[k];
  return NULL;
}

static const char *
string_member (JsonObject *o, const char *key)
{
  JsonNode *n = json_object_get_member (o, key);
  if (!n || !JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (n);
}

/* Reads an int or a [h, w] pair into out[2]. */
static gboolean
read_pair (JsonObject *o, const char *key, int out[2], int idx, const char *type, GError **error)
{
  if (!json_object_has_member (o, key))
    return TRUE;
  JsonNode *n = json_object_get_member (o, key);
  if (JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_INT64) {
    gint64 v = json_node_get_int (n);
    if (v < 0 || v > 1 << 20)
      goto bad;
    out[0] = out[1] = (int) v;
    return TRUE;
  }
  if (JSON_NODE_HOLDS_ARRAY (n) && json_array_get_length (json_node_get_array (n)) == 2) {
    for (int d = 0; d < 2; d++) {
      JsonNode *e = json_array_get_element (json_node_get_array (n), (guint) d);
      if (!JSON_NODE_HOLDS_VALUE (e) || json_node_get_value_type (e) != G_TYPE_INT64)
        goto bad;
      gint64 v = json_node_get_int (e);
      if (v < 0 || v > 1 << 20)
        goto bad;
      out[d] = (int) v;
    }
    return TRUE;
  }
bad:
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
               "layer %d (%s): %s must be a non-negative integer or a pair of them", idx, type, key);
  return FALSE;
}

static gboolean
read_number (JsonObject *o, const char *key, double *out, int idx, const char *type, GError **error)
{
  if (!json_object_has_member (o, key))
    return TRUE;
  JsonNode *n = json_object_get_member (o, key);
  GType t = JSON_NODE_HOLDS_VALUE (n) ? json_node_get_value_type (n) : G_TYPE_INVALID;
  if (t != G_TYPE_INT64 && t != G_TYPE_DOUBLE) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "layer %d (%s): %s must be a number",
                 idx, type, key);
    return FALSE;
  }
  *out = json_node_get_double (n);
  return TRUE;
}

static gboolean
read_bool (JsonObject *o, const char *key, bool *out, int idx, const char *type, GError **error)
{
  if (!json_object_has_member (o, key))
    return TRUE;
  JsonNode *n = json_object_get_member (o, key);
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_BOOLEAN) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "layer %d (%s): %s must be true or false",
                 idx, type, key);
    return FALSE;
  }
  *out = json_node_get_boolean (n);
  return TRUE;
}

static gboolean
parse_layer (JsonNode *node, int idx, BpLayerSpec *spec, GError **error)
{
  if (!JSON_NODE_HOLDS_OBJECT (node)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "layer %d is not a JSON object", idx);
    return FALSE;
  }
  JsonObject *o = json_node_get_object (node);
  const char *type = string_member (o, "type");
  int kind = type ? bp_layer_kind_from_name (type) : -1;
  if (kind < 0) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "layer %d: unknown layer type \"%s\"",
                 idx, type ? type : "(missing)");
    return FALSE;
  }
  *spec = bp_layer_spec_default ((BpLayerKind) kind);
  double v;
  v = (double) spec->out_features;
  if (!read_number (o, "out_features", &v, idx, type, error))
    return FALSE;
  spec->out_features = (int64_t) v;
  v = (double) spec->out_channels;
  if (!read_number (o, "out_channels", &v, idx, type, error))
    return FALSE;
  spec->out_channels = (int64_t) v;
  v = spec->groups;
  if (!read_number (o, "groups", &v, idx, type, error))
    return FALSE;
  spec->groups = (int) v;
  struct {
    const char *key;
    float *dst;
  } floats[] = {{"eps", &spec->eps}, {"momentum", &spec->momentum}, {"p", &spec->p},
                {"negative_slope", &spec->negative_slope}};
  for (gsize k = 0; k < G_N_ELEMENTS (floats); k++) {
    v = *floats[k].dst;
    if (!read_number (o, floats[k].key, &v, idx, type, error))
      return FALSE;
    *floats[k].dst = (float) v;
  }
  v = spec->start_dim;
  if (!read_number (o, "start_dim", &v, idx, type, error))
    return FALSE;
  spec->start_dim = (int) v;
  return read_pair (o, "kernel_size", spec->kernel_size, idx, type, error) &&
         read_pair (o, "stride", spec->stride, idx, type, error) &&
         read_pair (o, "padding", spec->padding, idx, type, error) &&
         read_pair (o, "dilation", spec->dilation, idx, type, error) &&
         read_pair (o, "output_size", spec->output_size, idx, type, error) &&
         read_bool (o, "bias", &spec->bias, idx, type, error) &&
         read_bool (o, "affine", &spec->affine, idx, type, error) &&
         read_bool (o, "count_include_pad", &spec->count_include_pad, idx, type, error);
}

static JsonArray *
array_member (JsonObject *o, const char *key)
{
  JsonNode *n = json_object_get_member (o, key);
  return n && JSON_NODE_HOLDS_ARRAY (n) ? json_node_get_array (n) : NULL;
}

static gint64
int_element (JsonArray *a, guint k)
{
  JsonNode *n = json_array_get_element (a, k);
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_INT64)
    return -1;
  return json_node_get_int (n);
}

BpModel *
bp_spec_build (const char *json, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  if (!json_parser_load_from_data (parser, json, -1, error))
    return NULL;
  JsonNode *root = json_parser_get_root (parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "the model spec is not a JSON object");
    return NULL;
  }
  JsonObject *o = json_node_get_object (root);
  if (g_strcmp0 (string_member (o, "format"), BP_SPEC_FORMAT)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                 "not a Backprop Lab model spec (\"format\" is not \"" BP_SPEC_FORMAT "\")");
    return NULL;
  }
  JsonNode *vn = json_object_get_member (o, "version");
  gint64 version = vn && JSON_NODE_HOLDS_VALUE (vn) && json_node_get_value_type (vn) == G_TYPE_INT64
                       ? json_node_get_int (vn)
                       : 0;
  if (version != BP_SPEC_VERSION) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                 "model spec version %" G_GINT64_FORMAT " is not supported (this program reads %d)",
                 version, BP_SPEC_VERSION);
    return NULL;
  }
  JsonArray *input = array_member (o, "input");
  guint in_ndim = input ? json_array_get_length (input) : 0;
  if (in_ndim < 1 || in_ndim > 4) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                 "the model spec needs an \"input\" shape of 1 to 4 positive sizes");
    return NULL;
  }
  int64_t in_shape[4];
  for (guint d = 0; d < in_ndim; d++) {
    in_shape[d] = int_element (input, d);
    if (in_shape[d] <= 0 || in_shape[d] > 1 << 20) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "input size %" G_GINT64_FORMAT " is not a positive size", in_shape[d]);
      return NULL;
    }
  }
  JsonArray *layers = array_member (o, "layers");
  guint n = layers ? json_array_get_length (layers) : 0;
  if (n == 0) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "the model spec has no layers");
    return NULL;
  }
  g_autofree BpLayerSpec *specs = g_new0 (BpLayerSpec, n);
  for (guint k = 0; k < n; k++)
    if (!parse_layer (json_array_get_element (layers, k), (int) k, &specs[k], error))
      return NULL;
  const char *name = string_member (o, "name");
  BpModel *m = bp_model_new (name ? name : "model",
                             (int) in_ndim, in_shape, (int) n, specs);
  if (!m)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s", bp_last_error ());
  return m;
}
