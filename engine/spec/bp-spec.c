/* bp-spec.c: model spec JSON: reading (versions 1 and 2) with per-node errors, checking,
 * building models and writing canonical JSON. */
#include "bp-spec.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

#define SPEC_ERROR(error, ...) g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, __VA_ARGS__)

/* Largest number of nodes a spec may have (bp_graph_check's limit). */
#define MAX_SPEC_NODES 4096

/* ---- reading values ---- */

/* The JSON text of a value for messages, shortened. */
static char *
value_text (JsonNode *v)
{
  char *s = json_to_string (v, FALSE);
  if (strlen (s) > 40) {
    s[37] = s[38] = s[39] = '.';
    s[40] = '\0';
  }
  return s;
}

static gboolean
json_integer (JsonNode *v, gint64 *out)
{
  if (!v || !JSON_NODE_HOLDS_VALUE (v))
    return FALSE;
  GType t = json_node_get_value_type (v);
  if (t == G_TYPE_INT64) {
    *out = json_node_get_int (v);
    return TRUE;
  }
  if (t == G_TYPE_DOUBLE) {
    double d = json_node_get_double (v);
    if (d == floor (d) && fabs (d) < 9e15) {
      *out = (gint64) d;
      return TRUE;
    }
  }
  return FALSE;
}

static gboolean
json_number (JsonNode *v, double *out)
{
  if (!v || !JSON_NODE_HOLDS_VALUE (v))
    return FALSE;
  GType t = json_node_get_value_type (v);
  if (t != G_TYPE_INT64 && t != G_TYPE_DOUBLE)
    return FALSE;
  *out = json_node_get_double (v);
  return isfinite (*out);
}

static char *
range_text (const BpParamInfo *p)
{
  if (p->type == BP_PARAM_FLOAT)
    return g_strdup_printf ("a number in %c%g, %g%c", p->flags & BP_PARAM_MIN_OPEN ? '(' : '[',
                            p->min, p->max, p->flags & BP_PARAM_MAX_OPEN ? ')' : ']');
  return g_strdup_printf ("from %.0f to %.0f", p->min, p->max);
}

static gboolean
in_range (const BpParamInfo *p, double v)
{
  if (p->flags & BP_PARAM_MIN_OPEN ? !(v > p->min) : !(v >= p->min))
    return FALSE;
  if (p->flags & BP_PARAM_MAX_OPEN ? !(v < p->max) : !(v <= p->max))
    return FALSE;
  return TRUE;
}

/* Reads one parameter value into *spec; on a bad value returns the reason (free it). */
static char *
read_param (BpLayerSpec *spec, const BpParamInfo *p, JsonNode *v)
{
  char *dst = (char *) spec + p->offset;
  g_autofree char *range = range_text (p);
  g_autofree char *given = value_text (v);
  switch (p->type) {
  case BP_PARAM_INT: {
    gint64 i;
    if (!json_integer (v, &i) || !in_range (p, (double) i))
      return g_strdup_printf ("%s must be an integer %s, not %s", p->name, range, given);
    *(int64_t *) dst = i;
    return NULL;
  }
  case BP_PARAM_PAIR: {
    int pair[2];
    gint64 i;
    if ((p->flags & BP_PARAM_NONE_ZERO) && JSON_NODE_HOLDS_NULL (v)) {
      pair[0] = pair[1] = 0;
    } else if (json_integer (v, &i) && in_range (p, (double) i)) {
      pair[0] = pair[1] = (int) i;
    } else if (JSON_NODE_HOLDS_ARRAY (v) && json_array_get_length (json_node_get_array (v)) == 2) {
      for (guint d = 0; d < 2; d++) {
        JsonNode *e = json_array_get_element (json_node_get_array (v), d);
        if (!json_integer (e, &i) || !in_range (p, (double) i))
          goto bad_pair;
        pair[d] = (int) i;
      }
    } else {
      goto bad_pair;
    }
    memcpy (dst, pair, sizeof pair);
    return NULL;
  bad_pair:
    return g_strdup_printf ("%s must be an integer or a pair [h, w] of integers %s%s, not %s",
                            p->name, range,
                            p->flags & BP_PARAM_NONE_ZERO ? " (or null: the kernel size)" : "",
                            given);
  }
  case BP_PARAM_FLOAT: {
    double d;
    if (!json_number (v, &d) || !in_range (p, d))
      return g_strdup_printf ("%s must be %s, not %s", p->name, range, given);
    *(float *) dst = (float) d;
    return NULL;
  }
  case BP_PARAM_BOOL:
    if (!JSON_NODE_HOLDS_VALUE (v) || json_node_get_value_type (v) != G_TYPE_BOOLEAN)
      return g_strdup_printf ("%s must be true or false, not %s", p->name, given);
    *(bool *) dst = json_node_get_boolean (v);
    return NULL;
  case BP_PARAM_SHAPE: {
    BpShape s = {0};
    gint64 i;
    if (json_integer (v, &i) && in_range (p, (double) i)) {
      s.ndim = 1;
      s.d[0] = i;
    } else if (JSON_NODE_HOLDS_ARRAY (v)) {
      JsonArray *a = json_node_get_array (v);
      guint n = json_array_get_length (a);
      if (n < 1 || n > BP_LAYER_MAX_DIMS)
        goto bad_shape;
      for (guint d = 0; d < n; d++) {
        if (!json_integer (json_array_get_element (a, d), &i) || !in_range (p, (double) i))
          goto bad_shape;
        s.d[s.ndim++] = i;
      }
    } else {
      goto bad_shape;
    }
    *(BpShape *) dst = s;
    return NULL;
  bad_shape:
    return g_strdup_printf ("%s must be a list of 1 to %d integers %s, not %s", p->name,
                            BP_LAYER_MAX_DIMS, range, given);
  }
  case BP_PARAM_LOSS: {
    int loss = -1;
    if (JSON_NODE_HOLDS_VALUE (v) && json_node_get_value_type (v) == G_TYPE_STRING)
      loss = bp_loss_from_name (json_node_get_string (v));
    if (loss < 0) {
      GString *names = g_string_new (NULL);
      for (int k = 0; k < BP_LOSS_COUNT; k++)
        g_string_append_printf (names, "%s\"%s\"", k ? ", " : "", bp_loss_name ((BpLossKind) k));
      char *msg = g_strdup_printf ("%s must be one of %s, not %s", p->name, names->str, given);
      g_string_free (names, TRUE);
      return msg;
    }
    *(int *) dst = loss;
    return NULL;
  }
  case BP_PARAM_CHOICE: {
    const char *str = JSON_NODE_HOLDS_VALUE (v) && json_node_get_value_type (v) == G_TYPE_STRING
                        ? json_node_get_string (v)
                        : NULL;
    for (int k = 0; str && p->choices && p->choices[k]; k++)
      if (strcmp (p->choices[k], str) == 0) {
        *(int *) dst = k;
        return NULL;
      }
    GString *names = g_string_new (NULL);
    for (int k = 0; p->choices && p->choices[k]; k++)
      g_string_append_printf (names, "%s\"%s\"", k ? ", " : "", p->choices[k]);
    char *msg = g_strdup_printf ("%s must be one of %s, not %s", p->name, names->str, given);
    g_string_free (names, TRUE);
    return msg;
  }
  case BP_PARAM_NODE: {
    const char *str = JSON_NODE_HOLDS_VALUE (v) && json_node_get_value_type (v) == G_TYPE_STRING
                        ? json_node_get_string (v)
                        : NULL;
    if (!str || strlen (str) > BP_LAYER_ID_MAX)
      return g_strdup_printf ("%s must be the id of a node (a string), not %s", p->name, given);
    g_strlcpy (dst, str, BP_LAYER_ID_MAX + 1);
    return NULL;
  }
  }
  return g_strdup ("unknown parameter type");
}

/* Edit distance, for "did you mean" hints. */
static int
edit_distance (const char *a, const char *b)
{
  size_t la = strlen (a), lb = strlen (b);
  if (la > 40 || lb > 40)
    return 99;
  int row[41];
  for (size_t j = 0; j <= lb; j++)
    row[j] = (int) j;
  for (size_t i = 1; i <= la; i++) {
    int diag = row[0];
    row[0] = (int) i;
    for (size_t j = 1; j <= lb; j++) {
      int up = row[j];
      int cost = g_ascii_tolower (a[i - 1]) != g_ascii_tolower (b[j - 1]);
      row[j] = MIN (MIN (row[j] + 1, row[j - 1] + 1), diag + cost);
      diag = up;
    }
  }
  return row[lb];
}

static char *
unknown_param_text (const BpLayerType *type, const char *name)
{
  GString *s = g_string_new (NULL);
  g_string_append_printf (s, "unknown parameter \"%s\"", name);
  const char *best = NULL;
  int best_d = 3;
  for (int k = 0; k < type->n_params; k++) {
    int d = edit_distance (name, type->params[k].name);
    if (d < best_d) {
      best_d = d;
      best = type->params[k].name;
    }
  }
  if (best)
    g_string_append_printf (s, " (did you mean \"%s\"?)", best);
  if (type->n_params == 0) {
    g_string_append_printf (s, "; %s has no parameters", type->name);
  } else {
    g_string_append_printf (s, "; %s takes ", type->name);
    for (int k = 0; k < type->n_params; k++)
      g_string_append_printf (s, "%s%s", k ? ", " : "", type->params[k].name);
  }
  return g_string_free (s, FALSE);
}

static char *
unknown_type_text (const char *name)
{
  int n;
  const BpLayerType *types = bp_layer_types (&n);
  const char *best = NULL;
  int best_d = 3;
  for (int k = 0; k < n; k++) {
    int d = edit_distance (name, types[k].name);
    if (d < best_d) {
      best_d = d;
      best = types[k].name;
    }
  }
  if (best)
    return g_strdup_printf ("unknown layer type \"%s\" (did you mean \"%s\"?)", name, best);
  return g_strdup_printf ("unknown layer type \"%s\" (the types are listed in doc/model-spec.md)",
                          name);
}

gboolean
bp_layer_spec_set_param (BpLayerSpec *spec, const char *name, const char *json_value,
                         GError **error)
{
  const BpLayerType *type = bp_layer_kind_type (spec->kind);
  if (!type) {
    SPEC_ERROR (error, "unknown layer kind %d", (int) spec->kind);
    return FALSE;
  }
  const BpParamInfo *p = bp_layer_param_find (type, name);
  if (!p) {
    g_autofree char *msg = unknown_param_text (type, name);
    SPEC_ERROR (error, "%s", msg);
    return FALSE;
  }
  g_autoptr (JsonParser) parser = json_parser_new ();
  if (!json_value || !json_parser_load_from_data (parser, json_value, -1, NULL) ||
      !json_parser_get_root (parser)) {
    SPEC_ERROR (error, "%s: \"%s\" is not a JSON value", name, json_value ? json_value : "");
    return FALSE;
  }
  BpLayerSpec copy = *spec;
  g_autofree char *why = read_param (&copy, p, json_parser_get_root (parser));
  if (why) {
    SPEC_ERROR (error, "%s", why);
    return FALSE;
  }
  *spec = copy;
  return TRUE;
}

/* ---- reading specs ---- */

static const char *
string_member (JsonObject *o, const char *key)
{
  JsonNode *n = json_object_get_member (o, key);
  if (!n || !JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (n);
}

typedef struct {
  GArray *nodes;  /* BpLayerSpec */
  GPtrArray *types;
  GPtrArray *errors;
} NodeList;

/* Appends a node; its first problem goes into errors. */
static BpLayerSpec *
node_list_add (NodeList *l, BpLayerKind kind, const char *type)
{
  BpLayerSpec s = bp_layer_spec_default (kind);
  g_array_append_val (l->nodes, s);
  g_ptr_array_add (l->types, g_strdup (type ? type : "?"));
  g_ptr_array_add (l->errors, NULL);
  return &g_array_index (l->nodes, BpLayerSpec, l->nodes->len - 1);
}

static void __attribute__ ((format (printf, 2, 3)))
node_list_error (NodeList *l, const char *fmt, ...)
{
  char **slot = (char **) &g_ptr_array_index (l->errors, l->errors->len - 1);
  if (*slot)
    return;
  va_list ap;
  va_start (ap, fmt);
  *slot = g_strdup_vprintf (fmt, ap);
  va_end (ap);
}

static void
copy_id (char dst[BP_LAYER_ID_MAX + 1], const char *src)
{
  g_strlcpy (dst, src, BP_LAYER_ID_MAX + 1);
}

/* Reads a node's type and its parameters from the members of o other than the ones in skip
 * (v1 layers rename LayerNorm's "affine"). */
static void
read_node_params (NodeList *l, BpLayerSpec *s, const BpLayerType *type, JsonObject *o,
                  const char *const *skip, gboolean v1)
{
  g_autoptr (GList) members = json_object_get_members (o);
  for (GList *m = members; m; m = m->next) {
    const char *key = m->data;
    gboolean skipped = FALSE;
    for (int k = 0; skip[k]; k++)
      skipped |= strcmp (skip[k], key) == 0;
    if (skipped)
      continue;
    const char *name = key;
    if (v1 && s->kind == BP_LAYER_LAYERNORM && strcmp (key, "affine") == 0)
      name = "elementwise_affine";
    const BpParamInfo *p = bp_layer_param_find (type, name);
    if (!p) {
      g_autofree char *msg = unknown_param_text (type, key);
      node_list_error (l, "%s", msg);
      continue;
    }
    g_autofree char *why = read_param (s, p, json_object_get_member (o, key));
    if (why)
      node_list_error (l, "%s", why);
  }
  for (int k = 0; k < type->n_params; k++) {
    const BpParamInfo *p = &type->params[k];
    if ((p->flags & BP_PARAM_REQUIRED) && !json_object_has_member (o, p->name))
      node_list_error (l, "%s needs %s", type->name, p->name);
  }
}

/* Resolves a type name: the layer type, or NULL with the node's error set. */
static const BpLayerType *
node_type (NodeList *l, JsonObject *o)
{
  JsonNode *tn = json_object_get_member (o, "type");
  const char *name = string_member (o, "type");
  if (!tn) {
    node_list_error (l, "it has no \"type\"");
    return NULL;
  }
  if (!name) {
    node_list_error (l, "\"type\" must be a string with a layer type");
    return NULL;
  }
  const BpLayerType *type = bp_layer_type_find (name);
  if (!type) {
    g_autofree char *msg = unknown_type_text (name);
    node_list_error (l, "%s", msg);
    return NULL;
  }
  if (type->kind < 0) {
    node_list_error (l, "%s is not available yet (planned; see doc/model-spec.md)", name);
    return NULL;
  }
  return type;
}

static void
read_v2_node (NodeList *l, JsonNode *node)
{
  if (!JSON_NODE_HOLDS_OBJECT (node)) {
    node_list_add (l, BP_LAYER_KIND_COUNT, NULL);
    node_list_error (l, "it is not a JSON object");
    return;
  }
  JsonObject *o = json_node_get_object (node);
  const char *type_name = string_member (o, "type");
  BpLayerSpec *s = node_list_add (l, BP_LAYER_KIND_COUNT, type_name);
  /* the id and the inputs first: they hold the graph together even where the rest is wrong */
  JsonNode *idn = json_object_get_member (o, "id");
  const char *id = string_member (o, "id");
  if (!idn)
    node_list_error (l, "it has no \"id\"");
  else if (!id)
    node_list_error (l, "\"id\" must be a string");
  else if (strlen (id) > BP_LAYER_ID_MAX)
    node_list_error (l, "the id \"%.40s...\" is longer than %d characters", id, BP_LAYER_ID_MAX);
  else
    copy_id (s->id, id);
  JsonNode *in = json_object_get_member (o, "inputs");
  if (in) {
    JsonArray *a = JSON_NODE_HOLDS_ARRAY (in) ? json_node_get_array (in) : NULL;
    guint n = a ? json_array_get_length (a) : 0;
    if (!a) {
      node_list_error (l, "\"inputs\" must be a list of node ids");
    } else if (n > BP_LAYER_MAX_INPUTS) {
      node_list_error (l, "it has %u inputs, more than %d", n, BP_LAYER_MAX_INPUTS);
    } else {
      for (guint k = 0; k < n; k++) {
        JsonNode *e = json_array_get_element (a, k);
        if (!JSON_NODE_HOLDS_VALUE (e) || json_node_get_value_type (e) != G_TYPE_STRING) {
          node_list_error (l, "\"inputs\" must be a list of node ids (strings)");
          break;
        }
        const char *ref = json_node_get_string (e);
        if (strlen (ref) > BP_LAYER_ID_MAX) {
          node_list_error (l, "its input \"%.40s...\" is not a node id (too long)", ref);
          break;
        }
        copy_id (s->inputs[s->n_inputs++], ref);
      }
    }
  }
  const BpLayerType *type = node_type (l, o);
  if (!type)
    return;
  BpLayerSpec fresh = bp_layer_spec_default ((BpLayerKind) type->kind);
  memcpy (fresh.id, s->id, sizeof fresh.id);
  fresh.n_inputs = s->n_inputs;
  memcpy (fresh.inputs, s->inputs, sizeof fresh.inputs);
  *s = fresh;
  static const char *const skip[] = {"id", "type", "inputs", NULL};
  read_node_params (l, s, type, o, skip, FALSE);
}

/* A v1 spec: {"input": [..], "layers": [{"type": .., params}, ..]} as a chain of nodes. */
static gboolean
read_v1 (NodeList *l, JsonObject *o, GError **error)
{
  JsonNode *input = json_object_get_member (o, "input");
  JsonNode *layers = json_object_get_member (o, "layers");
  if (!input || !layers || !JSON_NODE_HOLDS_ARRAY (layers)) {
    SPEC_ERROR (error, "a version 1 model spec needs \"input\" (a shape) and \"layers\" (a list)");
    return FALSE;
  }
  guint n = json_array_get_length (json_node_get_array (layers));
  if (n == 0) {
    SPEC_ERROR (error, "the model spec has no layers");
    return FALSE;
  }
  if (n > MAX_SPEC_NODES - 2) {
    SPEC_ERROR (error, "the model spec has %u layers, more than %d", n, MAX_SPEC_NODES - 2);
    return FALSE;
  }
  BpLayerSpec *s = node_list_add (l, BP_LAYER_INPUT, "Input");
  copy_id (s->id, "input");
  const BpLayerType *input_type = bp_layer_kind_type (BP_LAYER_INPUT);
  g_autofree char *why = read_param (s, &input_type->params[0], input);
  if (why)
    node_list_error (l, "%s", why);
  char prev[BP_LAYER_ID_MAX + 1] = "input";
  for (guint k = 0; k < n; k++) {
    JsonNode *node = json_array_get_element (json_node_get_array (layers), k);
    JsonObject *lo = JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
    const char *type_name = lo ? string_member (lo, "type") : NULL;
    s = node_list_add (l, BP_LAYER_KIND_COUNT, type_name);
    const BpLayerType *type = lo ? bp_layer_type_find (type_name) : NULL;
    if (type && type->kind >= 0) {
      g_autofree char *lower = g_ascii_strdown (type->name, -1);
      g_snprintf (s->id, sizeof s->id, "%s_%u", lower, k);
    } else {
      g_snprintf (s->id, sizeof s->id, "layer_%u", k);
    }
    copy_id (s->inputs[0], prev);
    s->n_inputs = 1;
    copy_id (prev, s->id);
    if (!lo) {
      node_list_error (l, "it is not a JSON object");
      continue;
    }
    type = node_type (l, lo);
    if (!type)
      continue;
    BpLayerSpec fresh = bp_layer_spec_default ((BpLayerKind) type->kind);
    memcpy (fresh.id, s->id, sizeof fresh.id);
    fresh.n_inputs = 1;
    memcpy (fresh.inputs, s->inputs, sizeof fresh.inputs);
    if (type->kind == BP_LAYER_ADAPTIVE_AVGPOOL2D)
      fresh.output_size[0] = fresh.output_size[1] = 1; /* v1's default */
    *s = fresh;
    static const char *const skip[] = {"type", NULL};
    if (type->kind == BP_LAYER_ADAPTIVE_AVGPOOL2D && !json_object_has_member (lo, "output_size")) {
      /* v1 did not require it: keep the default without the "needs" error */
      JsonObject *copy = json_object_new ();
      g_autoptr (GList) members = json_object_get_members (lo);
      for (GList *m = members; m; m = m->next)
        json_object_set_member (copy, m->data,
                                json_node_copy (json_object_get_member (lo, m->data)));
      json_object_set_int_member (copy, "output_size", 1);
      read_node_params (l, s, type, copy, skip, TRUE);
      json_object_unref (copy);
    } else {
      read_node_params (l, s, type, lo, skip, TRUE);
    }
  }
  s = node_list_add (l, BP_LAYER_OUTPUT, "Output");
  copy_id (s->id, "output");
  copy_id (s->inputs[0], prev);
  s->n_inputs = 1;
  return TRUE;
}

BpSpec *
bp_spec_new (const char *name)
{
  BpSpec *spec = g_new0 (BpSpec, 1);
  spec->name = g_strdup (name ? name : "model");
  spec->version = BP_SPEC_VERSION;
  spec->types = g_new0 (char *, 1);
  spec->errors = g_new0 (char *, 1);
  spec->nodes = g_new0 (BpLayerSpec, 1);
  return spec;
}

BpSpec *
bp_spec_copy (const BpSpec *spec)
{
  BpSpec *c = g_new0 (BpSpec, 1);
  c->name = g_strdup (spec->name);
  c->description = g_strdup (spec->description);
  c->version = spec->version;
  c->n_nodes = spec->n_nodes;
  c->nodes = g_memdup2 (spec->nodes, sizeof (BpLayerSpec) * (gsize) MAX (spec->n_nodes, 1));
  c->types = g_new0 (char *, MAX (spec->n_nodes, 1));
  c->errors = g_new0 (char *, MAX (spec->n_nodes, 1));
  for (int k = 0; k < spec->n_nodes; k++) {
    c->types[k] = g_strdup (spec->types[k]);
    c->errors[k] = g_strdup (spec->errors[k]);
  }
  return c;
}

BpLayerSpec *
bp_spec_add_node (BpSpec *spec, BpLayerKind kind, const char *id, const char *input)
{
  int n = spec->n_nodes + 1;
  spec->nodes = g_renew (BpLayerSpec, spec->nodes, n);
  spec->types = g_renew (char *, spec->types, n);
  spec->errors = g_renew (char *, spec->errors, n);
  BpLayerSpec *s = &spec->nodes[n - 1];
  *s = bp_layer_spec_default (kind);
  copy_id (s->id, id ? id : "");
  if (input) {
    copy_id (s->inputs[0], input);
    s->n_inputs = 1;
  }
  spec->types[n - 1] = g_strdup (bp_layer_kind_name (kind));
  spec->errors[n - 1] = NULL;
  spec->n_nodes = n;
  return s;
}

void
bp_spec_remove_node (BpSpec *spec, int index)
{
  if (index < 0 || index >= spec->n_nodes)
    return;
  g_free (spec->types[index]);
  g_free (spec->errors[index]);
  int tail = spec->n_nodes - index - 1;
  memmove (&spec->nodes[index], &spec->nodes[index + 1], sizeof (BpLayerSpec) * (size_t) tail);
  memmove (&spec->types[index], &spec->types[index + 1], sizeof (char *) * (size_t) tail);
  memmove (&spec->errors[index], &spec->errors[index + 1], sizeof (char *) * (size_t) tail);
  spec->n_nodes--;
}

void
bp_spec_free (BpSpec *spec)
{
  if (!spec)
    return;
  for (int k = 0; k < spec->n_nodes; k++) {
    g_free (spec->types[k]);
    g_free (spec->errors[k]);
  }
  g_free (spec->types);
  g_free (spec->errors);
  g_free (spec->nodes);
  g_free (spec->name);
  g_free (spec->description);
  g_free (spec);
}

BpSpec *
bp_spec_parse (const char *json, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) local = NULL;
  if (!json || !json_parser_load_from_data (parser, json, -1, &local)) {
    SPEC_ERROR (error, "the model spec is not valid JSON: %s",
                local ? local->message : "no text");
    return NULL;
  }
  JsonNode *root = json_parser_get_root (parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root)) {
    SPEC_ERROR (error, "the model spec is not a JSON object");
    return NULL;
  }
  JsonObject *o = json_node_get_object (root);
  if (g_strcmp0 (string_member (o, "format"), BP_SPEC_FORMAT)) {
    SPEC_ERROR (error, "not a Backprop Lab model spec (\"format\" is not \"" BP_SPEC_FORMAT "\")");
    return NULL;
  }
  gint64 version = 0;
  if (!json_integer (json_object_get_member (o, "version"), &version) || version < 1 ||
      version > BP_SPEC_VERSION) {
    g_autofree char *given = json_object_has_member (o, "version")
                               ? value_text (json_object_get_member (o, "version"))
                               : g_strdup ("missing");
    SPEC_ERROR (error, "model spec version %s is not supported (this program reads 1 to %d)",
                given, BP_SPEC_VERSION);
    return NULL;
  }
  static const char *const fields_v1[] = {"format", "version", "name", "description", "input",
                                          "layers", NULL};
  static const char *const fields_v2[] = {"format", "version", "name", "description", "nodes",
                                          NULL};
  const char *const *fields = version == 1 ? fields_v1 : fields_v2;
  g_autoptr (GList) members = json_object_get_members (o);
  for (GList *m = members; m; m = m->next)
    if (!g_strv_contains (fields, m->data)) {
      g_autofree char *list = g_strjoinv (", ", (char **) fields);
      SPEC_ERROR (error, "unknown field \"%s\" in the model spec (version %d has %s)",
                  (const char *) m->data, (int) version, list);
      return NULL;
    }
  JsonNode *name = json_object_get_member (o, "name");
  JsonNode *desc = json_object_get_member (o, "description");
  if ((name && !string_member (o, "name")) || (desc && !string_member (o, "description"))) {
    SPEC_ERROR (error, "the model spec's \"name\" and \"description\" must be strings");
    return NULL;
  }

  NodeList l = {
    g_array_new (FALSE, TRUE, sizeof (BpLayerSpec)),
    g_ptr_array_new (),
    g_ptr_array_new (),
  };
  gboolean ok = TRUE;
  if (version == 1) {
    ok = read_v1 (&l, o, error);
  } else {
    JsonNode *nodes = json_object_get_member (o, "nodes");
    if (!nodes || !JSON_NODE_HOLDS_ARRAY (nodes)) {
      SPEC_ERROR (error, "the model spec needs \"nodes\", a list of nodes");
      ok = FALSE;
    } else {
      JsonArray *a = json_node_get_array (nodes);
      guint n = json_array_get_length (a);
      if (n > MAX_SPEC_NODES) {
        SPEC_ERROR (error, "the model spec has %u nodes, more than %d", n, MAX_SPEC_NODES);
        ok = FALSE;
      }
      for (guint k = 0; ok && k < n; k++)
        read_v2_node (&l, json_array_get_element (a, k));
    }
  }
  if (!ok) {
    for (guint k = 0; k < l.types->len; k++) {
      g_free (l.types->pdata[k]);
      g_free (l.errors->pdata[k]);
    }
    g_ptr_array_free (l.types, TRUE);
    g_ptr_array_free (l.errors, TRUE);
    g_array_free (l.nodes, TRUE);
    return NULL;
  }
  BpSpec *spec = g_new0 (BpSpec, 1);
  spec->name = g_strdup (name ? string_member (o, "name") : "model");
  spec->description = desc ? g_strdup (string_member (o, "description")) : NULL;
  spec->version = (int) version;
  spec->n_nodes = (int) l.nodes->len;
  spec->nodes = (BpLayerSpec *) g_array_free (l.nodes, FALSE);
  spec->types = (char **) g_ptr_array_free (l.types, FALSE);
  spec->errors = (char **) g_ptr_array_free (l.errors, FALSE);
  return spec;
}

/* ---- checking and building ---- */

static BpGraphInfo *
spec_graph (const BpSpec *spec)
{
  return bp_graph_check (spec->n_nodes, spec->nodes, (const char *const *) spec->errors);
}

BpSpecInfo *
bp_spec_check (const BpSpec *spec)
{
  BpGraphInfo *g = spec_graph (spec);
  BpSpecInfo *info = g_new0 (BpSpecInfo, 1);
  info->name = g_strdup (spec->name);
  info->n_nodes = spec->n_nodes;
  info->nodes = g_new0 (BpSpecNodeInfo, MAX (spec->n_nodes, 1));
  for (int k = 0; k < spec->n_nodes; k++) {
    BpSpecNodeInfo *ni = &info->nodes[k];
    const BpLayerInfo *li = &g->layers[k];
    ni->id = g_strdup (spec->nodes[k].id);
    const BpLayerType *type = bp_layer_kind_type (spec->nodes[k].kind);
    ni->type = g_strdup (type ? type->name : spec->types[k]);
    ni->ndim = li->out.ndim;
    memcpy (ni->shape, li->out.d, sizeof ni->shape);
    ni->n_params = li->n_params;
    ni->error = li->error[0] ? g_strdup (li->error) : NULL;
  }
  info->n_params = g->n_params;
  info->n_errors = g->n_errors;
  info->error = g->error[0] ? g_strdup (g->error) : NULL;
  bp_graph_info_free (g);
  return info;
}

void
bp_spec_info_free (BpSpecInfo *info)
{
  if (!info)
    return;
  for (int k = 0; k < info->n_nodes; k++) {
    g_free (info->nodes[k].id);
    g_free (info->nodes[k].type);
    g_free (info->nodes[k].error);
  }
  g_free (info->nodes);
  g_free (info->name);
  g_free (info->error);
  g_free (info);
}

gboolean
bp_spec_analyze (const char *json, BpSpecInfo **info, GError **error)
{
  *info = NULL;
  g_autoptr (BpSpec) spec = bp_spec_parse (json, error);
  if (!spec)
    return FALSE;
  *info = bp_spec_check (spec);
  if ((*info)->error) {
    SPEC_ERROR (error, "%s", (*info)->error);
    return FALSE;
  }
  return TRUE;
}

BpModel *
bp_spec_build_model (const BpSpec *spec, GError **error)
{
  /* bp_model_new checks again, but without the reading errors: check with them first */
  BpGraphInfo *g = spec_graph (spec);
  if (g->n_errors) {
    SPEC_ERROR (error, "%s", g->error);
    bp_graph_info_free (g);
    return NULL;
  }
  bp_graph_info_free (g);
  BpModel *m = bp_model_new (spec->name, spec->n_nodes, spec->nodes);
  if (!m) {
    SPEC_ERROR (error, "%s", bp_last_error ());
    return NULL;
  }
  m->description = spec->description ? strdup (spec->description) : NULL;
  return m;
}

BpModel *
bp_spec_build (const char *json, GError **error)
{
  g_autoptr (BpSpec) spec = bp_spec_parse (json, error);
  return spec ? bp_spec_build_model (spec, error) : NULL;
}

/* ---- writing ---- */

static void
append_string (GString *out, const char *s)
{
  g_string_append_c (out, '"');
  for (const unsigned char *c = (const unsigned char *) s; *c; c++) {
    switch (*c) {
    case '"':
      g_string_append (out, "\\\"");
      break;
    case '\\':
      g_string_append (out, "\\\\");
      break;
    case '\n':
      g_string_append (out, "\\n");
      break;
    case '\t':
      g_string_append (out, "\\t");
      break;
    case '\r':
      g_string_append (out, "\\r");
      break;
    default:
      if (*c < 0x20)
        g_string_append_printf (out, "\\u%04x", *c);
      else
        g_string_append_c (out, (char) *c);
    }
  }
  g_string_append_c (out, '"');
}

static char *
write_spec (const char *name, const char *description, int n, const BpLayerSpec *nodes,
            char *const *types)
{
  GString *out = g_string_new ("{\n  \"format\": \"" BP_SPEC_FORMAT "\",\n");
  g_string_append_printf (out, "  \"version\": %d,\n  \"name\": ", BP_SPEC_VERSION);
  append_string (out, name ? name : "model");
  if (description) {
    g_string_append (out, ",\n  \"description\": ");
    append_string (out, description);
  }
  g_string_append (out, ",\n  \"nodes\": [");
  for (int k = 0; k < n; k++) {
    const BpLayerSpec *s = &nodes[k];
    const BpLayerType *type = bp_layer_kind_type (s->kind);
    g_string_append (out, k ? ",\n    {\"id\": " : "\n    {\"id\": ");
    append_string (out, s->id);
    g_string_append (out, ", \"type\": ");
    append_string (out, type ? type->name : types ? types[k] : "?");
    if (s->n_inputs > 0 || s->kind != BP_LAYER_INPUT) {
      g_string_append (out, ", \"inputs\": [");
      for (int e = 0; e < s->n_inputs; e++) {
        if (e)
          g_string_append (out, ", ");
        append_string (out, s->inputs[e]);
      }
      g_string_append_c (out, ']');
    }
    for (int j = 0; type && j < type->n_params; j++) {
      const BpParamInfo *p = &type->params[j];
      if (!bp_param_is_set (s, p))
        continue;
      char value[128];
      bp_param_format (s, p, false, value, sizeof value);
      g_string_append_printf (out, ", \"%s\": %s", p->name, value);
    }
    g_string_append_c (out, '}');
  }
  g_string_append (out, n ? "\n  ]\n}\n" : "]\n}\n");
  return g_string_free (out, FALSE);
}

char *
bp_spec_to_json (const BpSpec *spec)
{
  return write_spec (spec->name, spec->description, spec->n_nodes, spec->nodes, spec->types);
}

char *
bp_model_to_json (const BpModel *model)
{
  BpLayerSpec *nodes = g_new (BpLayerSpec, MAX (model->n_layers, 1));
  for (int k = 0; k < model->n_layers; k++)
    nodes[k] = model->layers[k].spec;
  char *json = write_spec (model->name, model->description, model->n_layers, nodes, NULL);
  g_free (nodes);
  return json;
}

char *
bp_spec_canonical (const char *json, GError **error)
{
  g_autoptr (BpSpec) spec = bp_spec_parse (json, error);
  return spec ? bp_spec_to_json (spec) : NULL;
}

/* ---- vocabulary ---- */

gboolean
bp_spec_set_vocab_size (BpSpec *spec, int64_t v, GError **error)
{
  if (v < 1 || v > (1 << 24)) {
    SPEC_ERROR (error, "a vocabulary of %lld tokens is not in [1, 16777216]", (long long) v);
    return FALSE;
  }
  BpLayerSpec *input = NULL;
  for (int k = 0; k < spec->n_nodes; k++)
    if (spec->nodes[k].kind == BP_LAYER_INPUT)
      input = &spec->nodes[k];
  if (!input) {
    SPEC_ERROR (error, "the model spec has no Input node to take a vocab_size");
    return FALSE;
  }
  int64_t old = input->vocab_size;
  input->vocab_size = v;
  for (int k = 0; k < spec->n_nodes; k++) {
    BpLayerSpec *s = &spec->nodes[k];
    if (s->kind == BP_LAYER_EMBEDDING && s->num_embeddings && (s->num_embeddings == old || !old))
      s->num_embeddings = v;
  }
  return TRUE;
}

char *
bp_spec_json_with_vocab_size (const char *json, int64_t v, GError **error)
{
  g_autoptr (BpSpec) spec = bp_spec_parse (json, error);
  if (!spec || !bp_spec_set_vocab_size (spec, v, error))
    return NULL;
  return bp_spec_to_json (spec);
}
