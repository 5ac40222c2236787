/* bp-build-page.c: BpBuildPage edits a BpSpec: every edit (add, delete, paste, connect,
 * disconnect, rename, a parameter) first saves the spec's JSON on the undo stack, then the page
 * checks the spec (bp_spec_check) and redraws the canvas, the inspector, the code view and the
 * Train button from the result. */
#include "config.h"

#include "bp-build-page.h"

#include <adwaita.h>
#include <glib/gi18n.h>
#include <string.h>

#include "bp-build-inspector.h"
#include "bp-build-palette.h"
#include "bp-engine-strings.h"
#include "bp-model-canvas.h"
#include "bp-train-page.h"
#include "bp-window.h"

#define MAX_UNDO 200

typedef struct {
  char *json;
  char *selected;
} Snapshot;

struct _BpBuildPage {
  GtkWidget parent_instance;

  /* template children */
  GtkWidget *main_box, *train_button, *code_button;
  BpBuildPalette *palette;
  BpModelCanvas *canvas;
  BpBuildInspector *inspector;
  GtkStack *view_stack;
  GtkTextView *code_view;
  GtkWidget *error_banner;
  GtkLabel *error_label;
  GMenu *presets_section;

  BpSpec *spec;
  BpSpecInfo *info;
  char *selected;          /* the selected block's id, NULL for none */
  GPtrArray *undo, *redo;  /* of Snapshot */
  char *coalesce;          /* the last edit's key: typing into one field is one undo step */
  BpLayerSpec clip;        /* the copied block */
  gboolean has_clip;
  char *code;
  char *blocker;           /* why the model cannot be trained, NULL when it can */
  gboolean syncing;        /* the page is setting the canvas's selection */
  GtkNativeDialog *chooser;
};

G_DEFINE_FINAL_TYPE (BpBuildPage, bp_build_page, GTK_TYPE_WIDGET)

static void refresh (BpBuildPage *self);

/* ---- helpers ---- */

static void
snapshot_free (Snapshot *s)
{
  g_free (s->json);
  g_free (s->selected);
  g_free (s);
}

static void
toast (BpBuildPage *self, const char *text)
{
  GtkWidget *overlay = gtk_widget_get_ancestor (GTK_WIDGET (self), ADW_TYPE_TOAST_OVERLAY);
  if (overlay)
    adw_toast_overlay_add_toast (ADW_TOAST_OVERLAY (overlay), adw_toast_new (text));
  else
    g_message ("%s", text);
}

static int
find_node (const BpSpec *spec, const char *id)
{
  for (int k = 0; id && k < spec->n_nodes; k++)
    if (g_str_equal (spec->nodes[k].id, id))
      return k;
  return -1;
}

static int
selected_index (BpBuildPage *self)
{
  return find_node (self->spec, self->selected);
}

static void
set_selected (BpBuildPage *self, const char *id)
{
  if (id == self->selected)
    return;
  char *copy = g_strdup (id);
  g_free (self->selected);
  self->selected = copy;
}

/* Where a new block goes when none is selected: after the block the Output reads, else after
 * the last block. */
static int
default_anchor (BpBuildPage *self)
{
  for (int k = 0; k < self->spec->n_nodes; k++)
    if (self->spec->nodes[k].kind == BP_LAYER_OUTPUT && self->spec->nodes[k].n_inputs > 0) {
      int a = find_node (self->spec, self->spec->nodes[k].inputs[0]);
      if (a >= 0)
        return a;
    }
  return self->spec->n_nodes - 1;
}

/* Moves node `from` to position `to` of the spec's list (the order of the saved file). */
static void
move_node (BpSpec *spec, int from, int to)
{
  if (from == to || from < 0 || to < 0 || from >= spec->n_nodes || to >= spec->n_nodes)
    return;
  BpLayerSpec node = spec->nodes[from];
  char *type = spec->types[from], *error = spec->errors[from];
  int step = to > from ? 1 : -1;
  for (int k = from; k != to; k += step) {
    spec->nodes[k] = spec->nodes[k + step];
    spec->types[k] = spec->types[k + step];
    spec->errors[k] = spec->errors[k + step];
  }
  spec->nodes[to] = node;
  spec->types[to] = type;
  spec->errors[to] = error;
}

static const struct {
  const char *type, *prefix;
} id_prefixes[] = {
  {"Input", "input"}, {"Output", "output"}, {"Conv2d", "conv"}, {"ConvTranspose2d", "deconv"},
  {"MaxPool2d", "pool"}, {"AvgPool2d", "avgpool"}, {"AdaptiveAvgPool2d", "gap"},
  {"BatchNorm1d", "bn"}, {"BatchNorm2d", "bn"}, {"LayerNorm", "ln"}, {"ReLU", "relu"},
  {"LeakyReLU", "lrelu"}, {"GELU", "gelu"}, {"Tanh", "tanh"}, {"Sigmoid", "sigmoid"},
  {"Linear", "fc"}, {"Dropout", "drop"}, {"Flatten", "flatten"}, {"Add", "add"},
  {"Concat", "cat"}, {"Embedding", "embed"}, {"RNN", "rnn"}, {"LSTM", "lstm"}, {"GRU", "gru"},
  {"MultiheadAttention", "attn"}, {"PositionalEncoding", "pos"},
  {"TransformerEncoderLayer", "encoder"}, {"TransformerDecoderLayer", "decoder"},
  {"SequencePool", "seqpool"},
};

/* A new id for a block of a type: "conv1", "conv2", ...; "input" and "output" bare at first. */
static void
unique_id (const BpSpec *spec, const char *type, char id[BP_LAYER_ID_MAX + 1])
{
  char prefix[24] = "";
  for (guint i = 0; i < G_N_ELEMENTS (id_prefixes); i++)
    if (g_str_equal (id_prefixes[i].type, type))
      g_strlcpy (prefix, id_prefixes[i].prefix, sizeof prefix);
  if (!prefix[0]) {
    int n = 0;
    for (const char *c = type; *c && n < 20; c++)
      if (g_ascii_isalnum (*c))
        prefix[n++] = g_ascii_tolower (*c);
    prefix[n] = '\0';
    if (!g_ascii_isalpha (prefix[0]))
      g_strlcpy (prefix, "layer", sizeof prefix);
  }
  if ((g_str_equal (prefix, "input") || g_str_equal (prefix, "output")) &&
      find_node (spec, prefix) < 0) {
    g_strlcpy (id, prefix, BP_LAYER_ID_MAX + 1);
    return;
  }
  for (int n = 1;; n++) {
    g_snprintf (id, BP_LAYER_ID_MAX + 1, "%s%d", prefix, n);
    if (find_node (spec, id) < 0)
      return;
  }
}

/* Values for the parameters a new block must have, so that it works at once (PyTorch has no
 * defaults for these); the inspector changes them. */
static const struct {
  const char *type, *param, *json;
} starters[] = {
  {"Input", "shape", "[1, 28, 28]"},
  {"Conv2d", "out_channels", "16"},
  {"Conv2d", "kernel_size", "3"},
  {"ConvTranspose2d", "out_channels", "16"},
  {"ConvTranspose2d", "kernel_size", "2"},
  {"MaxPool2d", "kernel_size", "2"},
  {"AvgPool2d", "kernel_size", "2"},
  {"AdaptiveAvgPool2d", "output_size", "1"},
  {"Linear", "out_features", "10"},
  {"Embedding", "embedding_dim", "64"},
  {"RNN", "hidden_size", "64"},
  {"LSTM", "hidden_size", "64"},
  {"GRU", "hidden_size", "64"},
  {"MultiheadAttention", "num_heads", "4"},
  {"TransformerEncoderLayer", "nhead", "4"},
  {"TransformerDecoderLayer", "nhead", "4"},
};

static void
apply_starters (BpLayerSpec *node, const char *type)
{
  for (guint i = 0; i < G_N_ELEMENTS (starters); i++)
    if (g_str_equal (starters[i].type, type))
      bp_layer_spec_set_param (node, starters[i].param, starters[i].json, NULL);
}

/* ---- the undo stack ---- */

static Snapshot *
take_snapshot (BpBuildPage *self)
{
  Snapshot *s = g_new0 (Snapshot, 1);
  s->json = bp_spec_to_json (self->spec);
  s->selected = g_strdup (self->selected);
  return s;
}

/* Saves the spec before an edit. Edits with the same key in a row (typing into one field)
 * make one step. */
static void
begin_edit (BpBuildPage *self, const char *key)
{
  if (key && g_strcmp0 (key, self->coalesce) == 0)
    return;
  g_ptr_array_add (self->undo, take_snapshot (self));
  if (self->undo->len > MAX_UNDO)
    g_ptr_array_remove_index (self->undo, 0);
  g_ptr_array_set_size (self->redo, 0);
  g_free (self->coalesce);
  self->coalesce = g_strdup (key);
}

static void
restore (BpBuildPage *self, Snapshot *s)
{
  g_autoptr (GError) error = NULL;
  BpSpec *spec = bp_spec_parse (s->json, &error);
  g_assert_no_error (error); /* it was written by bp_spec_to_json */
  bp_spec_free (self->spec);
  self->spec = spec;
  set_selected (self, s->selected);
  g_clear_pointer (&self->coalesce, g_free);
  bp_build_inspector_reset (self->inspector);
}

static void
undo_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  BpBuildPage *self = BP_BUILD_PAGE (widget);
  GPtrArray *from = g_str_equal (action_name, "build.undo") ? self->undo : self->redo;
  GPtrArray *to = from == self->undo ? self->redo : self->undo;
  if (from->len == 0)
    return;
  g_ptr_array_add (to, take_snapshot (self));
  Snapshot *s = g_ptr_array_steal_index (from, from->len - 1);
  restore (self, s);
  snapshot_free (s);
  refresh (self);
}

/* ---- refreshing the views ---- */

/* "16, kernel_size=3, padding=1": the parameters that differ from PyTorch's defaults, as the
 * exported code writes them. */
static char *
node_summary (const BpLayerSpec *node)
{
  const BpLayerType *type = bp_layer_kind_type (node->kind);
  if (!type)
    return NULL;
  GString *s = g_string_new (NULL);
  for (int k = 0; k < type->n_params; k++) {
    const BpParamInfo *p = &type->params[k];
    if (!bp_param_is_set (node, p))
      continue;
    const char *v = (const char *) node + p->offset;
    char buf[160];
    if (p->type == BP_PARAM_LOSS)
      g_strlcpy (buf, bp_loss_name (*(const int *) v), sizeof buf);
    else if (p->type == BP_PARAM_NODE)
      g_strlcpy (buf, v, sizeof buf);
    else if (p->type == BP_PARAM_CHOICE)
      bp_param_format (node, p, false, buf, sizeof buf);
    else
      bp_param_format (node, p, true, buf, sizeof buf);
    if (s->len)
      g_string_append (s, ", ");
    if (p->flags & BP_PARAM_POSITIONAL)
      g_string_append (s, buf);
    else
      g_string_append_printf (s, "%s=%s", p->name, buf);
  }
  return g_string_free (s, FALSE);
}

static void
refresh_canvas (BpBuildPage *self)
{
  const BpSpec *spec = self->spec;
  int n = spec->n_nodes;
  g_autoptr (GPtrArray) strings = g_ptr_array_new_with_free_func (g_free);
  BpModelCanvasNode *nodes = g_new0 (BpModelCanvasNode, MAX (n, 1));
  GArray *edges = g_array_new (FALSE, FALSE, sizeof (BpModelCanvasEdge));
  for (int k = 0; k < n; k++) {
    const BpSpecNodeInfo *ni = &self->info->nodes[k];
    const BpLayerType *type = bp_layer_kind_type (spec->nodes[k].kind);
    char *detail = node_summary (&spec->nodes[k]);
    char *caption = ni->ndim > 0 ? bp_format_n_params (ni->n_params) : NULL;
    g_ptr_array_add (strings, detail);
    g_ptr_array_add (strings, caption);
    nodes[k] = (BpModelCanvasNode) {
      .title = ni->type ? ni->type : spec->types[k],
      .tag = spec->nodes[k].id,
      .detail = detail,
      .caption = caption,
      .error = ni->error ? ni->error : spec->errors[k],
      .color = type ? bp_engine_group_color (type->group) : -1,
    };
    for (int j = 0; j < spec->nodes[k].n_inputs; j++) {
      int src = find_node (spec, spec->nodes[k].inputs[j]);
      if (src < 0)
        continue;
      char *label = bp_format_shape (self->info->nodes[src].ndim, self->info->nodes[src].shape);
      g_ptr_array_add (strings, label);
      BpModelCanvasEdge e = {src, k, label};
      g_array_append_val (edges, e);
    }
  }
  bp_model_canvas_set_graph (self->canvas, n, nodes, (int) edges->len,
                             (BpModelCanvasEdge *) edges->data);
  g_free (nodes);
  g_array_free (edges, TRUE);

  g_autofree char *params = bp_format_n_params (self->info->n_params);
  g_autofree char *header = NULL;
  if (self->info->n_errors > 0) {
    g_autofree char *errors = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "%d error",
                                                            "%d errors", self->info->n_errors),
                                               self->info->n_errors);
    header = g_strdup_printf ("%s · %s · %s", spec->name, params, errors);
  } else {
    header = g_strdup_printf ("%s · %s", spec->name, params);
  }
  bp_model_canvas_set_header (self->canvas, header);
  self->syncing = TRUE;
  bp_model_canvas_set_selected (self->canvas, selected_index (self));
  self->syncing = FALSE;
}

static void
refresh_code (BpBuildPage *self)
{
  g_autoptr (GError) error = NULL;
  g_free (self->code);
  self->code = self->spec->n_nodes > 0 ? bp_spec_export_pytorch (self->spec, &error) : NULL;
  if (!self->code)
    self->code = g_strdup_printf ("# %s\n# %s\n", _("The model cannot be written as PyTorch code yet:"),
                                  error ? error->message : _("the model has no blocks"));
  gtk_text_buffer_set_text (gtk_text_view_get_buffer (self->code_view), self->code, -1);
}

static void
update_actions (BpBuildPage *self)
{
  GtkWidget *w = GTK_WIDGET (self);
  gboolean selected = selected_index (self) >= 0;
  gtk_widget_action_set_enabled (w, "build.undo", self->undo->len > 0);
  gtk_widget_action_set_enabled (w, "build.redo", self->redo->len > 0);
  gtk_widget_action_set_enabled (w, "build.delete", selected);
  gtk_widget_action_set_enabled (w, "build.copy", selected);
  gtk_widget_action_set_enabled (w, "build.paste", self->has_clip);
  gtk_widget_action_set_enabled (w, "build.connect-from", selected && self->spec->n_nodes > 1);
  gtk_widget_action_set_enabled (w, "build.connect", selected);
  gtk_widget_action_set_enabled (w, "build.train", self->blocker == NULL);
}

static void
refresh (BpBuildPage *self)
{
  g_clear_pointer (&self->info, bp_spec_info_free);
  self->info = bp_spec_check (self->spec);
  if (self->selected && selected_index (self) < 0)
    set_selected (self, NULL);
  refresh_canvas (self);
  bp_build_inspector_show (self->inspector, self->spec, selected_index (self), self->info);
  refresh_code (self);

  g_clear_pointer (&self->blocker, g_free);
  if (self->spec->n_nodes == 0)
    self->blocker = g_strdup (_("The model is empty: add an Input from the palette, or start from a preset."));
  else if (self->info->error)
    /* TRANSLATORS: the engine's reason follows (in English) */
    self->blocker = g_strdup_printf (_("Cannot train yet: %s"), self->info->error);
  /* one line (the full text in its tooltip, the node's own error on its block) */
  gtk_label_set_text (self->error_label, self->blocker && self->spec->n_nodes > 0 ? self->blocker : "");
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->error_label), self->blocker);
  gtk_widget_set_visible (self->error_banner, self->blocker && self->spec->n_nodes > 0);
  gtk_widget_set_tooltip_text (self->train_button,
                               self->blocker ? self->blocker
                                             : _("Open the Train page with this model"));
  update_actions (self);
}

/* ---- edits ---- */

/* Adds a block after node `anchor` (-1: none): it reads the anchor, and what read the anchor
 * reads it instead (an Output keeps its place at the end). */
static void
insert_node (BpBuildPage *self, const BpLayerSpec *node, int anchor)
{
  BpSpec *spec = self->spec;
  const BpLayerType *type = bp_layer_kind_type (node->kind);
  gboolean takes_inputs = type && type->max_inputs > 0;
  if (anchor >= 0 && spec->nodes[anchor].kind == BP_LAYER_OUTPUT && node->kind != BP_LAYER_OUTPUT)
    /* not after the Output: between it and what it reads */
    anchor = spec->nodes[anchor].n_inputs > 0 ? find_node (spec, spec->nodes[anchor].inputs[0]) : -1;
  char anchor_id[BP_LAYER_ID_MAX + 1] = "";
  if (anchor >= 0)
    g_strlcpy (anchor_id, spec->nodes[anchor].id, sizeof anchor_id);
  BpLayerSpec *n = bp_spec_add_node (spec, node->kind, NULL, NULL);
  *n = *node;
  n->n_inputs = 0;
  if (takes_inputs && anchor_id[0]) {
    g_strlcpy (n->inputs[0], anchor_id, BP_LAYER_ID_MAX + 1);
    n->n_inputs = 1;
  }
  char new_id[BP_LAYER_ID_MAX + 1];
  g_strlcpy (new_id, n->id, sizeof new_id);
  int added = spec->n_nodes - 1;
  if (takes_inputs && anchor_id[0] && node->kind != BP_LAYER_OUTPUT) {
    for (int k = 0; k < added; k++)
      for (int j = 0; j < spec->nodes[k].n_inputs; j++)
        if (g_str_equal (spec->nodes[k].inputs[j], anchor_id))
          g_strlcpy (spec->nodes[k].inputs[j], new_id, BP_LAYER_ID_MAX + 1);
  }
  /* in the file: an Input first, others after their anchor */
  if (node->kind == BP_LAYER_INPUT)
    move_node (spec, added, 0);
  else if (anchor >= 0)
    move_node (spec, added, anchor + 1);
  set_selected (self, new_id);
}

static void
add_layer (BpBuildPage *self, const char *type_name, int anchor)
{
  const BpLayerType *type = bp_layer_type_find (type_name);
  if (!type || type->kind < 0) {
    g_autofree char *text = g_strdup_printf (_("%s is not available yet"), type_name);
    toast (self, text);
    return;
  }
  begin_edit (self, NULL);
  BpLayerSpec node = bp_layer_spec_default (type->kind);
  unique_id (self->spec, type->name, node.id);
  apply_starters (&node, type->name);
  insert_node (self, &node, anchor);
  refresh (self);
  bp_model_canvas_scroll_to (self->canvas, selected_index (self));
}

static void
add_layer_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  BpBuildPage *self = BP_BUILD_PAGE (widget);
  int anchor = selected_index (self);
  add_layer (self, g_variant_get_string (param, NULL), anchor >= 0 ? anchor : default_anchor (self));
}

/* Removes a block; what read it reads its first input instead. */
static void
delete_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  BpBuildPage *self = BP_BUILD_PAGE (widget);
  int index = selected_index (self);
  if (index < 0)
    return;
  begin_edit (self, NULL);
  BpSpec *spec = self->spec;
  char id[BP_LAYER_ID_MAX + 1], first[BP_LAYER_ID_MAX + 1] = "";
  g_strlcpy (id, spec->nodes[index].id, sizeof id);
  if (spec->nodes[index].n_inputs > 0)
    g_strlcpy (first, spec->nodes[index].inputs[0], sizeof first);
  bp_spec_remove_node (spec, index);
  for (int k = 0; k < spec->n_nodes; k++) {
    BpLayerSpec *c = &spec->nodes[k];
    for (int j = 0; j < c->n_inputs; j++) {
      if (!g_str_equal (c->inputs[j], id))
        continue;
      gboolean has_first = FALSE;
      for (int i = 0; i < c->n_inputs; i++)
        has_first = has_first || (first[0] && g_str_equal (c->inputs[i], first));
      if (first[0] && !has_first) {
        g_strlcpy (c->inputs[j], first, BP_LAYER_ID_MAX + 1);
      } else {
        memmove (c->inputs[j], c->inputs[j + 1],
                 sizeof c->inputs[0] * (size_t) (c->n_inputs - j - 1));
        c->n_inputs--;
        j--;
      }
    }
  }
  set_selected (self, first[0] && find_node (spec, first) >= 0 ? first : NULL);
  refresh (self);
}

static void
copy_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  BpBuildPage *self = BP_BUILD_PAGE (widget);
  int index = selected_index (self);
  if (index < 0)
    return;
  self->clip = self->spec->nodes[index];
  self->has_clip = TRUE;
  /* the block also goes to the clipboard as a one-block spec */
  g_autoptr (BpSpec) one = bp_spec_new (self->spec->name);
  BpLayerSpec *n = bp_spec_add_node (one, self->clip.kind, NULL, NULL);
  *n = self->clip;
  g_autofree char *json = bp_spec_to_json (one);
  gdk_clipboard_set_text (gtk_widget_get_clipboard (widget), json);
  update_actions (self);
}

static void
paste_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  BpBuildPage *self = BP_BUILD_PAGE (widget);
  if (!self->has_clip)
    return;
  const BpLayerType *type = bp_layer_kind_type (self->clip.kind);
  begin_edit (self, NULL);
  BpLayerSpec node = self->clip;
  unique_id (self->spec, type ? type->name : "layer", node.id);
  int anchor = selected_index (self);
  insert_node (self, &node, anchor >= 0 ? anchor : default_anchor (self));
  refresh (self);
  bp_model_canvas_scroll_to (self->canvas, selected_index (self));
}

/* Block `to` reads block `from`'s output too (merges: a further input) or instead (others: it
 * replaces the last input). */
static void
connect_nodes (BpBuildPage *self, int from, int to)
{
  BpSpec *spec = self->spec;
  if (from < 0 || to < 0)
    return;
  const BpLayerType *type = bp_layer_kind_type (spec->nodes[to].kind);
  int max = type ? type->max_inputs : 1;
  if (from == to) {
    toast (self, _("A block cannot read its own output"));
    return;
  }
  if (max == 0) {
    g_autofree char *text = g_strdup_printf (_("%s takes no inputs"), spec->nodes[to].id);
    toast (self, text);
    return;
  }
  BpLayerSpec *n = &spec->nodes[to];
  for (int j = 0; j < n->n_inputs; j++)
    if (g_str_equal (n->inputs[j], spec->nodes[from].id))
      return; /* already */
  begin_edit (self, NULL);
  int j = n->n_inputs < max ? n->n_inputs++ : n->n_inputs - 1;
  g_strlcpy (n->inputs[j], spec->nodes[from].id, BP_LAYER_ID_MAX + 1);
}

static void
connect_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  BpBuildPage *self = BP_BUILD_PAGE (widget);
  const char *from = g_variant_get_string (param, NULL);
  if (find_node (self->spec, from) < 0) {
    g_autofree char *text = g_strdup_printf (_("There is no block “%s”"), from);
    toast (self, text);
    return;
  }
  connect_nodes (self, find_node (self->spec, from), selected_index (self));
  refresh (self);
}

static void
canvas_connect_cb (BpModelCanvas *canvas, int from, int to, BpBuildPage *self)
{
  if (from < self->spec->n_nodes && to < self->spec->n_nodes) {
    set_selected (self, self->spec->nodes[to].id);
    connect_nodes (self, from, to);
    g_clear_pointer (&self->coalesce, g_free);
    refresh (self);
  }
}

typedef struct {
  BpBuildPage *page;
  GtkDropDown *choice;
  GStrv ids;
} ConnectDialog;

static void
connect_dialog_free (gpointer data, GClosure *closure)
{
  ConnectDialog *d = data;
  g_strfreev (d->ids);
  g_free (d);
}

static void
connect_response_cb (AdwMessageDialog *dialog, const char *response, ConnectDialog *d)
{
  if (g_str_equal (response, "connect")) {
    guint k = gtk_drop_down_get_selected (d->choice);
    if (k != GTK_INVALID_LIST_POSITION && d->ids[k])
      gtk_widget_activate_action (GTK_WIDGET (d->page), "build.connect", "s", d->ids[k]);
  }
}

static void
connect_from_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  BpBuildPage *self = BP_BUILD_PAGE (widget);
  int to = selected_index (self);
  if (to < 0)
    return;
  const BpLayerSpec *target = &self->spec->nodes[to];
  ConnectDialog *d = g_new0 (ConnectDialog, 1);
  d->page = self;
  GStrvBuilder *ids = g_strv_builder_new ();
  GtkStringList *labels = gtk_string_list_new (NULL);
  guint preferred = 0, n = 0;
  for (int k = 0; k < self->spec->n_nodes; k++) {
    const BpLayerSpec *node = &self->spec->nodes[k];
    if (k == to || node->kind == BP_LAYER_OUTPUT)
      continue;
    gboolean already = FALSE;
    for (int j = 0; j < target->n_inputs; j++)
      already = already || g_str_equal (target->inputs[j], node->id);
    if (k < to && !already)
      preferred = n; /* the nearest block above that it does not read yet */
    g_strv_builder_add (ids, node->id);
    g_autofree char *label = g_strdup_printf ("%s (%s)", node->id, self->spec->types[k]);
    gtk_string_list_append (labels, label);
    n++;
  }
  d->ids = g_strv_builder_end (ids);
  g_strv_builder_unref (ids);
  d->choice = GTK_DROP_DOWN (gtk_drop_down_new (G_LIST_MODEL (labels), NULL));
  gtk_drop_down_set_selected (d->choice, preferred);
  GtkRoot *root = gtk_widget_get_root (widget);
  GtkWidget *dialog = adw_message_dialog_new (GTK_IS_WINDOW (root) ? GTK_WINDOW (root) : NULL,
                                              _("Connect From"), NULL);
  adw_message_dialog_format_body (ADW_MESSAGE_DIALOG (dialog),
                                  _("Which block’s output should “%s” read? An Add or a Concat "
                                    "takes one more input; other blocks read the chosen block "
                                    "instead of their input."),
                                  target->id);
  adw_message_dialog_set_extra_child (ADW_MESSAGE_DIALOG (dialog), GTK_WIDGET (d->choice));
  adw_message_dialog_add_responses (ADW_MESSAGE_DIALOG (dialog), "cancel", _("_Cancel"),
                                    "connect", _("C_onnect"), NULL);
  adw_message_dialog_set_response_appearance (ADW_MESSAGE_DIALOG (dialog), "connect",
                                              ADW_RESPONSE_SUGGESTED);
  adw_message_dialog_set_default_response (ADW_MESSAGE_DIALOG (dialog), "connect");
  adw_message_dialog_set_close_response (ADW_MESSAGE_DIALOG (dialog), "cancel");
  g_signal_connect_data (dialog, "response", G_CALLBACK (connect_response_cb), d,
                         connect_dialog_free, 0);
  gtk_window_present (GTK_WINDOW (dialog));
}

/* ---- inspector edits ---- */

static void
set_param_cb (BpBuildInspector *inspector, const char *name, const char *json, BpBuildPage *self)
{
  int index = selected_index (self);
  if (index < 0)
    return;
  BpLayerSpec *node = &self->spec->nodes[index];
  const BpLayerType *type = bp_layer_kind_type (node->kind);
  const BpParamInfo *p = type ? bp_layer_param_find (type, name) : NULL;
  if (!p)
    return;
  BpLayerSpec copy = *node;
  if (json) {
    if (!bp_layer_spec_set_param (&copy, name, json, NULL))
      return; /* the inspector checked it: cannot happen */
  } else {
    bp_layer_spec_reset_param (&copy, p);
  }
  g_autofree char *key = g_strdup_printf ("param:%s:%s", node->id, name);
  begin_edit (self, key);
  self->spec->nodes[index] = copy;
  g_clear_pointer (&self->spec->errors[index], g_free); /* it was about the old text */
  refresh (self);
}

static void
rename_cb (BpBuildInspector *inspector, const char *id, BpBuildPage *self)
{
  int index = selected_index (self);
  if (index < 0 || find_node (self->spec, id) >= 0 || !bp_node_id_is_valid (id))
    return;
  /* one undo step while typing: the key names the position, not the changing id */
  g_autofree char *key = g_strdup_printf ("rename:%d", index);
  begin_edit (self, key);
  BpSpec *spec = self->spec;
  char old[BP_LAYER_ID_MAX + 1];
  g_strlcpy (old, spec->nodes[index].id, sizeof old);
  g_strlcpy (spec->nodes[index].id, id, BP_LAYER_ID_MAX + 1);
  for (int k = 0; k < spec->n_nodes; k++) {
    BpLayerSpec *n = &spec->nodes[k];
    for (int j = 0; j < n->n_inputs; j++)
      if (g_str_equal (n->inputs[j], old))
        g_strlcpy (n->inputs[j], id, BP_LAYER_ID_MAX + 1);
    const BpLayerType *type = bp_layer_kind_type (n->kind);
    for (int p = 0; type && p < type->n_params; p++)
      if (type->params[p].type == BP_PARAM_NODE) {
        char *v = (char *) n + type->params[p].offset;
        if (g_str_equal (v, old))
          g_strlcpy (v, id, BP_LAYER_ID_MAX + 1);
      }
  }
  set_selected (self, id);
  refresh (self);
}

static void
disconnect_cb (BpBuildInspector *inspector, int input, BpBuildPage *self)
{
  int index = selected_index (self);
  if (index < 0 || input < 0 || input >= self->spec->nodes[index].n_inputs)
    return;
  begin_edit (self, NULL);
  BpLayerSpec *n = &self->spec->nodes[index];
  memmove (n->inputs[input], n->inputs[input + 1],
           sizeof n->inputs[0] * (size_t) (n->n_inputs - input - 1));
  n->n_inputs--;
  refresh (self);
}

static void
set_model_name_cb (BpBuildInspector *inspector, const char *name, BpBuildPage *self)
{
  if (g_strcmp0 (name, self->spec->name) == 0)
    return;
  begin_edit (self, "model-name");
  g_free (self->spec->name);
  self->spec->name = g_strdup (name);
  refresh (self);
}

static void
set_model_description_cb (BpBuildInspector *inspector, const char *text, BpBuildPage *self)
{
  if (g_strcmp0 (text && *text ? text : NULL, self->spec->description) == 0)
    return;
  begin_edit (self, "model-description");
  g_free (self->spec->description);
  self->spec->description = text && *text ? g_strdup (text) : NULL;
  refresh (self);
}

static void
canvas_selected_cb (BpModelCanvas *canvas, GParamSpec *pspec, BpBuildPage *self)
{
  if (self->syncing)
    return;
  int index = bp_model_canvas_get_selected (canvas);
  set_selected (self, index >= 0 && index < self->spec->n_nodes ? self->spec->nodes[index].id : NULL);
  g_clear_pointer (&self->coalesce, g_free);
  bp_build_inspector_show (self->inspector, self->spec, selected_index (self), self->info);
  update_actions (self);
}

/* ---- whole models: presets, files ---- */

static gboolean
replace_spec (BpBuildPage *self, const char *json, GError **error)
{
  BpSpec *spec = bp_spec_parse (json, error);
  if (!spec)
    return FALSE;
  begin_edit (self, NULL);
  bp_spec_free (self->spec);
  self->spec = spec;
  g_clear_pointer (&self->coalesce, g_free);
  set_selected (self, NULL);
  bp_build_inspector_reset (self->inspector);
  refresh (self);
  bp_model_canvas_reset_view (self->canvas);
  return TRUE;
}

static void
new_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  BpBuildPage *self = BP_BUILD_PAGE (widget);
  g_autoptr (BpSpec) empty = bp_spec_new ("model");
  g_autofree char *json = bp_spec_to_json (empty);
  replace_spec (self, json, NULL);
}

static void
load_preset_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  BpBuildPage *self = BP_BUILD_PAGE (widget);
  const BpPreset *preset = bp_preset_find (g_variant_get_string (param, NULL));
  if (preset)
    replace_spec (self, preset->json, NULL);
}

static void
chooser_response_cb (GtkNativeDialog *dialog, int response, BpBuildPage *self)
{
  gboolean save = gtk_file_chooser_get_action (GTK_FILE_CHOOSER (dialog)) == GTK_FILE_CHOOSER_ACTION_SAVE;
  g_autoptr (GFile) file = response == GTK_RESPONSE_ACCEPT
                             ? gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog))
                             : NULL;
  g_clear_object (&self->chooser);
  if (!file)
    return;
  g_autoptr (GError) error = NULL;
  g_autofree char *name = g_file_get_basename (file);
  if (save ? bp_build_page_save_file (self, file, &error) : bp_build_page_load_file (self, file, &error)) {
    if (save) {
      g_autofree char *text = g_strdup_printf (_("Saved %s"), name);
      toast (self, text);
    }
    return;
  }
  g_autofree char *text = save ? g_strdup_printf (_("Could not save %s: %s"), name, error->message)
                               : g_strdup_printf (_("Could not open %s: %s"), name, error->message);
  toast (self, text);
}

static void
file_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  BpBuildPage *self = BP_BUILD_PAGE (widget);
  gboolean save = g_str_equal (action_name, "build.save");
  if (self->chooser)
    return;
  GtkRoot *root = gtk_widget_get_root (widget);
  GtkFileChooserNative *chooser = gtk_file_chooser_native_new (
    save ? _("Save Model") : _("Open Model"), GTK_IS_WINDOW (root) ? GTK_WINDOW (root) : NULL,
    save ? GTK_FILE_CHOOSER_ACTION_SAVE : GTK_FILE_CHOOSER_ACTION_OPEN, save ? _("_Save") : _("_Open"),
    _("_Cancel"));
  GtkFileFilter *filter = gtk_file_filter_new ();
  gtk_file_filter_set_name (filter, _("Model specs (JSON)"));
  gtk_file_filter_add_suffix (filter, "json");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (chooser), filter);
  g_object_unref (filter);
  if (save) {
    g_autofree char *name = g_strdup_printf ("%s.json", self->spec->name);
    gtk_file_chooser_set_current_name (GTK_FILE_CHOOSER (chooser), name);
  }
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (chooser), TRUE);
  g_signal_connect (chooser, "response", G_CALLBACK (chooser_response_cb), self);
  self->chooser = GTK_NATIVE_DIALOG (chooser);
  gtk_native_dialog_show (self->chooser);
}

/* ---- view, code, training ---- */

static void
zoom_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  BpBuildPage *self = BP_BUILD_PAGE (widget);
  if (g_str_equal (action_name, "build.zoom-in"))
    bp_model_canvas_zoom_in (self->canvas);
  else if (g_str_equal (action_name, "build.zoom-out"))
    bp_model_canvas_zoom_out (self->canvas);
  else
    bp_model_canvas_zoom_fit (self->canvas);
}

static void
copy_code_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  BpBuildPage *self = BP_BUILD_PAGE (widget);
  gdk_clipboard_set_text (gtk_widget_get_clipboard (widget), self->code);
  toast (self, _("Copied the PyTorch code"));
}

static void
code_toggled_cb (BpBuildPage *self)
{
  gboolean code = gtk_toggle_button_get_active (GTK_TOGGLE_BUTTON (self->code_button));
  gtk_stack_set_visible_child_name (self->view_stack, code ? "code" : "graph");
}

static void
focus_search_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  bp_build_palette_focus_search (BP_BUILD_PAGE (widget)->palette);
}

static void
train_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  BpBuildPage *self = BP_BUILD_PAGE (widget);
  if (self->blocker)
    return;
  GtkWidget *window = gtk_widget_get_ancestor (widget, BP_TYPE_WINDOW);
  GtkWidget *train = window ? bp_window_get_page (BP_WINDOW (window), "train") : NULL;
  if (!train)
    return;
  g_autofree char *json = bp_spec_to_json (self->spec);
  bp_train_page_set_custom_model (BP_TRAIN_PAGE (train), json, self->spec->name);
  bp_window_set_place (BP_WINDOW (window), "train");
}

static gboolean
drop_cb (GtkDropTarget *target, const GValue *value, double x, double y, BpBuildPage *self)
{
  if (!G_VALUE_HOLDS_STRING (value))
    return FALSE;
  int at = bp_model_canvas_node_at (self->canvas, x, y);
  if (at < 0)
    at = selected_index (self) >= 0 ? selected_index (self) : default_anchor (self);
  add_layer (self, g_value_get_string (value), at);
  return TRUE;
}

/* ---- set-up ---- */

static void
bp_build_page_dispose (GObject *object)
{
  BpBuildPage *self = BP_BUILD_PAGE (object);
  if (self->chooser) {
    g_signal_handlers_disconnect_by_data (self->chooser, self);
    gtk_native_dialog_destroy (self->chooser);
    g_clear_object (&self->chooser);
  }
  gtk_widget_dispose_template (GTK_WIDGET (self), BP_TYPE_BUILD_PAGE);
  g_clear_pointer (&self->spec, bp_spec_free);
  g_clear_pointer (&self->info, bp_spec_info_free);
  g_clear_pointer (&self->undo, g_ptr_array_unref);
  g_clear_pointer (&self->redo, g_ptr_array_unref);
  g_clear_pointer (&self->selected, g_free);
  g_clear_pointer (&self->coalesce, g_free);
  g_clear_pointer (&self->code, g_free);
  g_clear_pointer (&self->blocker, g_free);
  G_OBJECT_CLASS (bp_build_page_parent_class)->dispose (object);
}

static void
bp_build_page_class_init (BpBuildPageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->dispose = bp_build_page_dispose;

  g_type_ensure (BP_TYPE_BUILD_PALETTE);
  g_type_ensure (BP_TYPE_BUILD_INSPECTOR);
  g_type_ensure (BP_TYPE_MODEL_CANVAS);
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/backproplab/Lab/ui/bp-build-page.ui");
#define CHILD(name) gtk_widget_class_bind_template_child (widget_class, BpBuildPage, name)
  CHILD (main_box);
  CHILD (train_button);
  CHILD (code_button);
  CHILD (palette);
  CHILD (canvas);
  CHILD (inspector);
  CHILD (view_stack);
  CHILD (code_view);
  CHILD (error_banner);
  CHILD (error_label);
  CHILD (presets_section);
#undef CHILD
  gtk_widget_class_bind_template_callback (widget_class, code_toggled_cb);

  gtk_widget_class_install_action (widget_class, "build.add-layer", "s", add_layer_action);
  gtk_widget_class_install_action (widget_class, "build.delete", NULL, delete_action);
  gtk_widget_class_install_action (widget_class, "build.copy", NULL, copy_action);
  gtk_widget_class_install_action (widget_class, "build.paste", NULL, paste_action);
  gtk_widget_class_install_action (widget_class, "build.undo", NULL, undo_action);
  gtk_widget_class_install_action (widget_class, "build.redo", NULL, undo_action);
  gtk_widget_class_install_action (widget_class, "build.connect", "s", connect_action);
  gtk_widget_class_install_action (widget_class, "build.connect-from", NULL, connect_from_action);
  gtk_widget_class_install_action (widget_class, "build.new", NULL, new_action);
  gtk_widget_class_install_action (widget_class, "build.load-preset", "s", load_preset_action);
  gtk_widget_class_install_action (widget_class, "build.open", NULL, file_action);
  gtk_widget_class_install_action (widget_class, "build.save", NULL, file_action);
  gtk_widget_class_install_action (widget_class, "build.zoom-in", NULL, zoom_action);
  gtk_widget_class_install_action (widget_class, "build.zoom-out", NULL, zoom_action);
  gtk_widget_class_install_action (widget_class, "build.zoom-fit", NULL, zoom_action);
  gtk_widget_class_install_action (widget_class, "build.copy-code", NULL, copy_code_action);
  gtk_widget_class_install_action (widget_class, "build.focus-search", NULL, focus_search_action);
  gtk_widget_class_install_action (widget_class, "build.train", NULL, train_action);

  static const struct {
    guint key;
    GdkModifierType mods;
    const char *action;
  } keys[] = {
    {GDK_KEY_z, GDK_CONTROL_MASK, "build.undo"},
    {GDK_KEY_z, GDK_CONTROL_MASK | GDK_SHIFT_MASK, "build.redo"},
    {GDK_KEY_Z, GDK_CONTROL_MASK | GDK_SHIFT_MASK, "build.redo"},
    {GDK_KEY_y, GDK_CONTROL_MASK, "build.redo"},
    {GDK_KEY_c, GDK_CONTROL_MASK, "build.copy"},
    {GDK_KEY_v, GDK_CONTROL_MASK, "build.paste"},
    {GDK_KEY_Delete, 0, "build.delete"},
    {GDK_KEY_KP_Delete, 0, "build.delete"},
    {GDK_KEY_BackSpace, 0, "build.delete"},
    {GDK_KEY_l, GDK_CONTROL_MASK, "build.connect-from"},
    {GDK_KEY_o, GDK_CONTROL_MASK, "build.open"},
    {GDK_KEY_s, GDK_CONTROL_MASK, "build.save"},
    {GDK_KEY_plus, GDK_CONTROL_MASK, "build.zoom-in"},
    {GDK_KEY_equal, GDK_CONTROL_MASK, "build.zoom-in"},
    {GDK_KEY_KP_Add, GDK_CONTROL_MASK, "build.zoom-in"},
    {GDK_KEY_minus, GDK_CONTROL_MASK, "build.zoom-out"},
    {GDK_KEY_KP_Subtract, GDK_CONTROL_MASK, "build.zoom-out"},
    {GDK_KEY_0, GDK_CONTROL_MASK, "build.zoom-fit"},
    {GDK_KEY_f, GDK_CONTROL_MASK, "build.focus-search"},
    {GDK_KEY_Return, GDK_CONTROL_MASK, "build.train"},
  };
  for (guint i = 0; i < G_N_ELEMENTS (keys); i++)
    gtk_widget_class_add_binding_action (widget_class, keys[i].key, keys[i].mods, keys[i].action,
                                         NULL);

  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
  gtk_widget_class_set_css_name (widget_class, "bp-build-page");
}

static void
bp_build_page_init (BpBuildPage *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  self->spec = bp_spec_new ("model");
  self->undo = g_ptr_array_new_with_free_func ((GDestroyNotify) snapshot_free);
  self->redo = g_ptr_array_new_with_free_func ((GDestroyNotify) snapshot_free);

  int n;
  const BpPreset *presets = bp_presets (&n);
  for (int k = 0; k < n; k++) {
    g_autoptr (GMenuItem) item = g_menu_item_new (presets[k].name, NULL);
    g_menu_item_set_action_and_target (item, "build.load-preset", "s", presets[k].name);
    g_menu_append_item (self->presets_section, item);
  }

  bp_model_canvas_set_placeholder (
    self->canvas, _("An empty model. Click a layer in the palette to add it — an Input first — "
                    "or start from a preset in the Model menu."));
  g_signal_connect (self->canvas, "notify::selected", G_CALLBACK (canvas_selected_cb), self);
  g_signal_connect (self->canvas, "connect", G_CALLBACK (canvas_connect_cb), self);
  GtkDropTarget *drop = gtk_drop_target_new (G_TYPE_STRING, GDK_ACTION_COPY);
  g_signal_connect (drop, "drop", G_CALLBACK (drop_cb), self);
  gtk_widget_add_controller (GTK_WIDGET (self->canvas), GTK_EVENT_CONTROLLER (drop));

  g_signal_connect (self->inspector, "set-param", G_CALLBACK (set_param_cb), self);
  g_signal_connect (self->inspector, "rename", G_CALLBACK (rename_cb), self);
  g_signal_connect (self->inspector, "disconnect", G_CALLBACK (disconnect_cb), self);
  g_signal_connect (self->inspector, "set-model-name", G_CALLBACK (set_model_name_cb), self);
  g_signal_connect (self->inspector, "set-model-description",
                    G_CALLBACK (set_model_description_cb), self);
  refresh (self);
}

/* ---- public API ---- */

GtkWidget *
bp_build_page_new (void)
{
  return g_object_new (BP_TYPE_BUILD_PAGE, NULL);
}

const BpSpec *
bp_build_page_get_spec (BpBuildPage *self)
{
  g_return_val_if_fail (BP_IS_BUILD_PAGE (self), NULL);
  return self->spec;
}

const BpSpecInfo *
bp_build_page_get_info (BpBuildPage *self)
{
  g_return_val_if_fail (BP_IS_BUILD_PAGE (self), NULL);
  return self->info;
}

char *
bp_build_page_get_json (BpBuildPage *self)
{
  g_return_val_if_fail (BP_IS_BUILD_PAGE (self), NULL);
  return bp_spec_to_json (self->spec);
}

gboolean
bp_build_page_set_json (BpBuildPage *self, const char *json, GError **error)
{
  g_return_val_if_fail (BP_IS_BUILD_PAGE (self), FALSE);
  g_return_val_if_fail (json, FALSE);
  return replace_spec (self, json, error);
}

gboolean
bp_build_page_load_file (BpBuildPage *self, GFile *file, GError **error)
{
  g_return_val_if_fail (BP_IS_BUILD_PAGE (self), FALSE);
  g_return_val_if_fail (G_IS_FILE (file), FALSE);
  g_autofree char *text = NULL;
  gsize length;
  if (!g_file_load_contents (file, NULL, &text, &length, NULL, error))
    return FALSE;
  if (!g_utf8_validate (text, (gssize) length, NULL)) {
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, _("The file is not UTF-8 text"));
    return FALSE;
  }
  return replace_spec (self, text, error);
}

gboolean
bp_build_page_save_file (BpBuildPage *self, GFile *file, GError **error)
{
  g_return_val_if_fail (BP_IS_BUILD_PAGE (self), FALSE);
  g_return_val_if_fail (G_IS_FILE (file), FALSE);
  g_autofree char *json = bp_spec_to_json (self->spec);
  return g_file_replace_contents (file, json, strlen (json), NULL, FALSE, G_FILE_CREATE_NONE, NULL,
                                  NULL, error);
}

const char *
bp_build_page_get_selected (BpBuildPage *self)
{
  g_return_val_if_fail (BP_IS_BUILD_PAGE (self), NULL);
  return self->selected;
}

void
bp_build_page_select (BpBuildPage *self, const char *id)
{
  g_return_if_fail (BP_IS_BUILD_PAGE (self));
  bp_model_canvas_set_selected (self->canvas, find_node (self->spec, id));
  bp_model_canvas_scroll_to (self->canvas, find_node (self->spec, id));
}

const char *
bp_build_page_get_code (BpBuildPage *self)
{
  g_return_val_if_fail (BP_IS_BUILD_PAGE (self), NULL);
  return self->code;
}

const char *
bp_build_page_get_train_blocker (BpBuildPage *self)
{
  g_return_val_if_fail (BP_IS_BUILD_PAGE (self), NULL);
  return self->blocker;
}
