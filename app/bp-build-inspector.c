/* bp-build-inspector.c: BpBuildInspector builds one row per parameter of the selected block
 * from the engine's parameter table, checks every typed value with bp_layer_spec_set_param on
 * a copy of the node and reports the values that pass; it also edits the block's name and
 * inputs, and the model's name and description. */
#include "config.h"

#include "bp-build-inspector.h"

#include <adwaita.h>
#include <glib/gi18n.h>
#include <string.h>

#include "bp-engine-strings.h"

/* A row: the name and its editor on one line, the help (or the error) below over the row's
 * whole width. */
typedef struct {
  char *name;               /* a parameter, "id", "model-name" or "model-description" */
  const BpParamInfo *param; /* NULL for the rows that are not parameters */
  GtkWidget *row, *editor, *help;
  char *subtitle;           /* the help shown when the value is fine */
  char *error;
} Editor;

struct _BpBuildInspector {
  GtkWidget parent_instance;

  GtkWidget *box;
  GtkWidget *title_label, *help_label;
  GtkWidget *block_group, *inputs_group, *params_group;
  GtkWidget *shape_label, *count_label, *error_label;
  GPtrArray *input_rows;
  GPtrArray *editors;

  int shown_index, shown_kind; /* -2: nothing built yet; kind -1: the model */
  BpLayerSpec node;            /* a copy of the node shown */
  char **ids;                  /* the ids of all nodes, for names and node choices */
  gboolean updating;
  Editor *changing;            /* the row whose value is being changed (not refreshed meanwhile) */
};

G_DEFINE_FINAL_TYPE (BpBuildInspector, bp_build_inspector, GTK_TYPE_WIDGET)

enum { SET_PARAM, RENAME, DISCONNECT, SET_MODEL_NAME, SET_MODEL_DESCRIPTION, N_SIGNALS };
static guint signals[N_SIGNALS];

static void
editor_free (Editor *e)
{
  g_free (e->name);
  g_free (e->subtitle);
  g_free (e->error);
  g_free (e);
}

static Editor *
find_editor (BpBuildInspector *self, const char *name)
{
  for (guint i = 0; i < self->editors->len; i++) {
    Editor *e = g_ptr_array_index (self->editors, i);
    if (g_str_equal (e->name, name))
      return e;
  }
  return NULL;
}

/* ---- helpers shared with the page ---- */

static size_t
param_size (const BpParamInfo *p)
{
  switch (p->type) {
  case BP_PARAM_INT: return sizeof (int64_t);
  case BP_PARAM_PAIR: return 2 * sizeof (int);
  case BP_PARAM_FLOAT: return sizeof (float);
  case BP_PARAM_BOOL: return sizeof (bool);
  case BP_PARAM_SHAPE: return sizeof (BpShape);
  case BP_PARAM_LOSS:
  case BP_PARAM_CHOICE: return sizeof (int);
  case BP_PARAM_NODE: return BP_LAYER_ID_MAX + 1;
  }
  return 0;
}

void
bp_layer_spec_reset_param (BpLayerSpec *node, const BpParamInfo *param)
{
  g_return_if_fail (node && param);
  BpLayerSpec d = bp_layer_spec_default (node->kind);
  memcpy ((char *) node + param->offset, (const char *) &d + param->offset, param_size (param));
}

char *
bp_param_text_to_json (const BpParamInfo *param, const char *text)
{
  g_return_val_if_fail (param, NULL);
  g_autofree char *t = g_strstrip (g_strdup (text ? text : ""));
  if (!*t)
    return NULL;
  if (g_ascii_strcasecmp (t, "none") == 0 || g_str_equal (t, "null"))
    return g_strdup ("null");
  switch (param->type) {
  case BP_PARAM_PAIR:
  case BP_PARAM_SHAPE: {
    /* "3, 5", "3 5", "3x5", "(3, 5)" and "[3, 5]" all mean [3, 5] */
    GString *s = g_string_new (NULL);
    for (const char *c = t; *c; c = g_utf8_next_char (c)) {
      gunichar u = g_utf8_get_char (c);
      if (u == '(' || u == ')' || u == '[' || u == ']')
        continue;
      if (u == 'x' || u == 'X' || u == 0x00D7 /* × */ || u == ' ' || u == ',')
        u = ',';
      if (u == ',' && (s->len == 0 || s->str[s->len - 1] == ','))
        continue;
      g_string_append_unichar (s, u);
    }
    if (s->len && s->str[s->len - 1] == ',')
      g_string_truncate (s, s->len - 1);
    gboolean list = strchr (s->str, ',') || t[0] == '[' || t[0] == '(';
    char *json = list ? g_strdup_printf ("[%s]", s->str) : g_strdup (s->str);
    g_string_free (s, TRUE);
    return json;
  }
  case BP_PARAM_FLOAT:
  case BP_PARAM_INT:
    /* JSON wants a digit before the point: ".5" is 0.5 */
    if (t[0] == '.')
      return g_strdup_printf ("0%s", t);
    if (t[0] == '-' && t[1] == '.')
      return g_strdup_printf ("-0%s", t + 1);
    return g_strdup (t);
  case BP_PARAM_BOOL:
    if (g_ascii_strcasecmp (t, "true") == 0)
      return g_strdup ("true");
    if (g_ascii_strcasecmp (t, "false") == 0)
      return g_strdup ("false");
    return g_strdup (t);
  case BP_PARAM_LOSS:
  case BP_PARAM_CHOICE:
  case BP_PARAM_NODE:
    return t[0] == '"' ? g_strdup (t) : g_strdup_printf ("\"%s\"", t);
  }
  return g_strdup (t);
}

gboolean
bp_node_id_is_valid (const char *id)
{
  if (!id || !g_ascii_isalpha (id[0]) || strlen (id) > BP_LAYER_ID_MAX)
    return FALSE;
  for (const char *c = id; *c; c++)
    if (!g_ascii_isalnum (*c) && *c != '_')
      return FALSE;
  return TRUE;
}

/* ---- rows ---- */

static void
set_row_error (Editor *e, const char *error)
{
  if (g_strcmp0 (e->error, error) == 0)
    return;
  g_free (e->error);
  e->error = g_strdup (error);
  gtk_label_set_text (GTK_LABEL (e->help), error ? error : e->subtitle ? e->subtitle : "");
  gtk_widget_set_visible (e->help, error || e->subtitle);
  if (error) {
    gtk_widget_add_css_class (e->help, "error");
    gtk_widget_remove_css_class (e->help, "dim-label");
    gtk_widget_add_css_class (e->editor, "error");
  } else {
    gtk_widget_remove_css_class (e->help, "error");
    gtk_widget_add_css_class (e->help, "dim-label");
    gtk_widget_remove_css_class (e->editor, "error");
  }
}

static void
emit_param (BpBuildInspector *self, Editor *e, const char *json)
{
  const BpParamInfo *p = e->param;
  BpLayerSpec copy = self->node;
  if (!json) {
    if (p->flags & BP_PARAM_REQUIRED) {
      set_row_error (e, _("A value is required"));
      return;
    }
    bp_layer_spec_reset_param (&copy, p);
  } else {
    g_autoptr (GError) error = NULL;
    if (!bp_layer_spec_set_param (&copy, p->name, json, &error)) {
      set_row_error (e, error->message);
      return;
    }
  }
  set_row_error (e, NULL);
  self->node = copy;
  g_signal_emit (self, signals[SET_PARAM], 0, p->name, json);
}

static void entry_changed (BpBuildInspector *self, Editor *e, const char *text);

static void
entry_changed_cb (GtkEditable *editable, Editor *e)
{
  BpBuildInspector *self = g_object_get_data (G_OBJECT (editable), "bp-inspector");
  if (self->updating)
    return;
  self->changing = e;
  entry_changed (self, e, gtk_editable_get_text (editable));
  self->changing = NULL;
}

static void
entry_changed (BpBuildInspector *self, Editor *e, const char *text)
{
  if (e->param) {
    g_autofree char *json = bp_param_text_to_json (e->param, text);
    emit_param (self, e, json);
    return;
  }
  if (g_str_equal (e->name, "id")) {
    if (g_str_equal (text, self->node.id)) {
      set_row_error (e, NULL);
      return;
    }
    if (!bp_node_id_is_valid (text)) {
      set_row_error (e, _("A name starts with a letter and has letters, digits and _ (at most 32)"));
      return;
    }
    if (self->ids && g_strv_contains ((const char *const *) self->ids, text)) {
      set_row_error (e, _("Another block has this name"));
      return;
    }
    set_row_error (e, NULL);
    g_strlcpy (self->node.id, text, sizeof self->node.id);
    g_signal_emit (self, signals[RENAME], 0, text);
  } else if (g_str_equal (e->name, "model-name")) {
    if (!*text) {
      set_row_error (e, _("A value is required"));
      return;
    }
    set_row_error (e, NULL);
    g_signal_emit (self, signals[SET_MODEL_NAME], 0, text);
  } else if (g_str_equal (e->name, "model-description")) {
    g_signal_emit (self, signals[SET_MODEL_DESCRIPTION], 0, text);
  }
}

static void
switch_cb (GtkSwitch *sw, GParamSpec *pspec, Editor *e)
{
  BpBuildInspector *self = g_object_get_data (G_OBJECT (sw), "bp-inspector");
  if (!self->updating)
    emit_param (self, e, gtk_switch_get_active (sw) ? "true" : "false");
}

static void
drop_down_cb (GtkDropDown *dd, GParamSpec *pspec, Editor *e)
{
  BpBuildInspector *self = g_object_get_data (G_OBJECT (dd), "bp-inspector");
  if (self->updating)
    return;
  guint k = gtk_drop_down_get_selected (dd);
  GListModel *model = gtk_drop_down_get_model (dd);
  if (k == GTK_INVALID_LIST_POSITION)
    return;
  g_autofree char *json = NULL;
  if (e->param->type == BP_PARAM_NODE && k == 0) {
    json = g_strdup ("\"\"");
  } else {
    g_autoptr (GtkStringObject) item = g_list_model_get_item (model, k);
    json = g_strdup_printf ("\"%s\"", gtk_string_object_get_string (item));
  }
  emit_param (self, e, json);
}

static Editor *
add_row (BpBuildInspector *self, GtkWidget *group, const char *name, const BpParamInfo *param,
         const char *title, const char *subtitle, GtkWidget *editor)
{
  Editor *e = g_new0 (Editor, 1);
  e->name = g_strdup (name);
  e->param = param;
  e->editor = editor;
  e->subtitle = g_strdup (subtitle);
  e->row = adw_preferences_row_new ();
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (e->row), title);
  gtk_list_box_row_set_activatable (GTK_LIST_BOX_ROW (e->row), FALSE);
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 2);
  gtk_widget_set_margin_start (box, 12);
  gtk_widget_set_margin_end (box, 12);
  gtk_widget_set_margin_top (box, 8);
  gtk_widget_set_margin_bottom (box, 8);
  GtkWidget *line = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 12);
  GtkWidget *label = gtk_label_new (title);
  gtk_label_set_xalign (GTK_LABEL (label), 0.0);
  gtk_label_set_ellipsize (GTK_LABEL (label), PANGO_ELLIPSIZE_END);
  gtk_widget_set_hexpand (label, TRUE);
  if (param)
    gtk_widget_add_css_class (label, "param-name");
  gtk_box_append (GTK_BOX (line), label);
  gtk_widget_set_valign (editor, GTK_ALIGN_CENTER);
  gtk_box_append (GTK_BOX (line), editor);
  gtk_box_append (GTK_BOX (box), line);
  e->help = gtk_label_new (subtitle);
  gtk_label_set_xalign (GTK_LABEL (e->help), 0.0);
  gtk_label_set_wrap (GTK_LABEL (e->help), TRUE);
  gtk_label_set_wrap_mode (GTK_LABEL (e->help), PANGO_WRAP_WORD_CHAR);
  gtk_widget_add_css_class (e->help, "caption");
  gtk_widget_add_css_class (e->help, "dim-label");
  gtk_widget_set_visible (e->help, subtitle != NULL);
  gtk_box_append (GTK_BOX (box), e->help);
  gtk_list_box_row_set_child (GTK_LIST_BOX_ROW (e->row), box);
  gtk_accessible_update_relation (GTK_ACCESSIBLE (editor), GTK_ACCESSIBLE_RELATION_LABELLED_BY,
                                  label, NULL, GTK_ACCESSIBLE_RELATION_DESCRIBED_BY, e->help,
                                  NULL, -1);
  g_object_set_data (G_OBJECT (editor), "bp-inspector", self);
  if (GTK_IS_EDITABLE (editor))
    g_signal_connect (editor, "changed", G_CALLBACK (entry_changed_cb), e);
  else if (GTK_IS_SWITCH (editor))
    g_signal_connect (editor, "notify::active", G_CALLBACK (switch_cb), e);
  else if (GTK_IS_DROP_DOWN (editor))
    g_signal_connect (editor, "notify::selected", G_CALLBACK (drop_down_cb), e);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), e->row);
  g_ptr_array_add (self->editors, e);
  return e;
}

static GtkWidget *
make_entry (int width_chars, const char *accessible_name)
{
  GtkWidget *entry = gtk_entry_new ();
  gtk_editable_set_width_chars (GTK_EDITABLE (entry), width_chars);
  gtk_editable_set_max_width_chars (GTK_EDITABLE (entry), width_chars);
  gtk_accessible_update_property (GTK_ACCESSIBLE (entry), GTK_ACCESSIBLE_PROPERTY_LABEL,
                                  accessible_name, -1);
  return entry;
}

static GtkWidget *
param_editor (BpBuildInspector *self, const BpParamInfo *p)
{
  switch (p->type) {
  case BP_PARAM_BOOL:
    return gtk_switch_new ();
  case BP_PARAM_LOSS: {
    const char *names[BP_LOSS_COUNT + 1];
    for (int k = 0; k < BP_LOSS_COUNT; k++)
      names[k] = bp_loss_name (k);
    names[BP_LOSS_COUNT] = NULL;
    return gtk_drop_down_new_from_strings (names);
  }
  case BP_PARAM_CHOICE:
    return gtk_drop_down_new_from_strings ((const char *const *) p->choices);
  case BP_PARAM_NODE: {
    GtkStringList *list = gtk_string_list_new (NULL);
    gtk_string_list_append (list, _("none"));
    for (int k = 0; self->ids && self->ids[k]; k++)
      gtk_string_list_append (list, self->ids[k]);
    return gtk_drop_down_new (G_LIST_MODEL (list), NULL);
  }
  default: {
    GtkWidget *entry = make_entry (p->type == BP_PARAM_SHAPE ? 12 : 8, p->name);
    if (p->flags & BP_PARAM_INFERRED)
      gtk_entry_set_placeholder_text (GTK_ENTRY (entry), _("inferred"));
    else if (p->flags & BP_PARAM_NONE_ZERO)
      gtk_entry_set_placeholder_text (GTK_ENTRY (entry), "None");
    return entry;
  }
  }
}

static GtkWidget *
info_row (GtkWidget *group, const char *title, GtkWidget **value)
{
  GtkWidget *row = adw_action_row_new ();
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), title);
  *value = gtk_label_new ("–");
  gtk_label_set_selectable (GTK_LABEL (*value), TRUE);
  gtk_widget_add_css_class (*value, "numeric");
  adw_action_row_add_suffix (ADW_ACTION_ROW (row), *value);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), row);
  return row;
}

static void
clear_rows (BpBuildInspector *self)
{
  GtkWidget *child;
  while ((child = gtk_widget_get_first_child (self->box)))
    gtk_box_remove (GTK_BOX (self->box), child);
  g_ptr_array_set_size (self->editors, 0);
  g_ptr_array_set_size (self->input_rows, 0);
  self->block_group = self->inputs_group = self->params_group = NULL;
  self->shape_label = self->count_label = self->error_label = NULL;
}

static void
build_header (BpBuildInspector *self)
{
  self->title_label = gtk_label_new (NULL);
  gtk_label_set_xalign (GTK_LABEL (self->title_label), 0.0);
  gtk_label_set_selectable (GTK_LABEL (self->title_label), TRUE);
  gtk_widget_add_css_class (self->title_label, "title-2");
  gtk_box_append (GTK_BOX (self->box), self->title_label);
  self->help_label = gtk_label_new (NULL);
  gtk_label_set_xalign (GTK_LABEL (self->help_label), 0.0);
  gtk_label_set_wrap (GTK_LABEL (self->help_label), TRUE);
  gtk_widget_add_css_class (self->help_label, "dim-label");
  gtk_box_append (GTK_BOX (self->box), self->help_label);
}

static void
build_model_rows (BpBuildInspector *self)
{
  build_header (self);
  gtk_label_set_text (GTK_LABEL (self->title_label), _("Model"));
  gtk_label_set_text (GTK_LABEL (self->help_label),
                      _("Click a layer in the palette to add it after the selected block. "
                        "Select a block to edit its parameters."));
  self->block_group = adw_preferences_group_new ();
  gtk_box_append (GTK_BOX (self->box), self->block_group);
  add_row (self, self->block_group, "model-name", NULL, _("Name"),
           _("Also the class name of the PyTorch module"), make_entry (14, _("Name")));
  add_row (self, self->block_group, "model-description", NULL, _("Description"), NULL,
           make_entry (14, _("Description")));
  info_row (self->block_group, _("Layers"), &self->shape_label);
  info_row (self->block_group, _("Parameters"), &self->count_label);
}

static void
build_node_rows (BpBuildInspector *self, const BpLayerType *type)
{
  build_header (self);
  self->block_group = adw_preferences_group_new ();
  gtk_box_append (GTK_BOX (self->box), self->block_group);
  add_row (self, self->block_group, "id", NULL, _("Name"),
           _("The attribute name in the PyTorch module"), make_entry (12, _("Name")));
  info_row (self->block_group, _("Output shape"), &self->shape_label);
  info_row (self->block_group, _("Parameters"), &self->count_label);
  self->error_label = gtk_label_new (NULL);
  gtk_label_set_xalign (GTK_LABEL (self->error_label), 0.0);
  gtk_label_set_wrap (GTK_LABEL (self->error_label), TRUE);
  gtk_label_set_wrap_mode (GTK_LABEL (self->error_label), PANGO_WRAP_WORD_CHAR);
  gtk_label_set_selectable (GTK_LABEL (self->error_label), TRUE);
  gtk_widget_add_css_class (self->error_label, "error");
  gtk_widget_set_margin_top (self->error_label, 6);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (self->block_group), self->error_label);

  if (type && type->max_inputs > 0) {
    self->inputs_group = adw_preferences_group_new ();
    adw_preferences_group_set_title (ADW_PREFERENCES_GROUP (self->inputs_group), _("Inputs"));
    GtkWidget *connect = gtk_button_new_from_icon_name ("list-add-symbolic");
    gtk_widget_add_css_class (connect, "flat");
    gtk_widget_set_tooltip_text (connect, _("Connect From…"));
    gtk_actionable_set_action_name (GTK_ACTIONABLE (connect), "build.connect-from");
    adw_preferences_group_set_header_suffix (ADW_PREFERENCES_GROUP (self->inputs_group), connect);
    gtk_box_append (GTK_BOX (self->box), self->inputs_group);
  }

  if (type && type->n_params > 0) {
    self->params_group = adw_preferences_group_new ();
    adw_preferences_group_set_title (ADW_PREFERENCES_GROUP (self->params_group),
                                     C_("inspector group", "Parameters"));
    adw_preferences_group_set_description (ADW_PREFERENCES_GROUP (self->params_group),
                                           _("PyTorch's names; an empty value is the default"));
    gtk_box_append (GTK_BOX (self->box), self->params_group);
    for (int k = 0; k < type->n_params; k++) {
      const BpParamInfo *p = &type->params[k];
      add_row (self, self->params_group, p->name, p, p->name, bp_engine_text (p->help),
               param_editor (self, p));
    }
  }
}

static void
disconnect_clicked_cb (GtkButton *button, BpBuildInspector *self)
{
  int k = GPOINTER_TO_INT (g_object_get_data (G_OBJECT (button), "bp-input"));
  g_signal_emit (self, signals[DISCONNECT], 0, k);
}

static void
refresh_inputs (BpBuildInspector *self, const BpSpec *spec, const BpSpecInfo *info)
{
  if (!self->inputs_group)
    return;
  for (guint i = 0; i < self->input_rows->len; i++)
    adw_preferences_group_remove (ADW_PREFERENCES_GROUP (self->inputs_group),
                                  g_ptr_array_index (self->input_rows, i));
  g_ptr_array_set_size (self->input_rows, 0);
  for (int k = 0; k < self->node.n_inputs; k++) {
    const char *id = self->node.inputs[k];
    GtkWidget *row = adw_action_row_new ();
    /* TRANSLATORS: a block's input, numbered from 1 */
    g_autofree char *title = g_strdup_printf (_("Input %d"), k + 1);
    adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), title);
    int src = -1;
    for (int j = 0; j < spec->n_nodes; j++)
      if (g_str_equal (spec->nodes[j].id, id))
        src = j;
    g_autofree char *shape = src >= 0 && info ? bp_format_shape (info->nodes[src].ndim,
                                                                 info->nodes[src].shape)
                                              : NULL;
    /* TRANSLATORS: an input row's subtitle: the block read, and its output shape */
    g_autofree char *text = src < 0 ? g_strdup_printf (_("%s (no such block)"), id)
                                    : g_strdup_printf (_("%s, shape %s"), id, shape);
    g_autofree char *markup = g_markup_escape_text (text, -1);
    adw_action_row_set_subtitle (ADW_ACTION_ROW (row), markup);
    GtkWidget *remove = gtk_button_new_from_icon_name ("list-remove-symbolic");
    gtk_widget_set_valign (remove, GTK_ALIGN_CENTER);
    gtk_widget_add_css_class (remove, "flat");
    gtk_widget_set_tooltip_text (remove, _("Disconnect"));
    g_object_set_data (G_OBJECT (remove), "bp-input", GINT_TO_POINTER (k));
    g_signal_connect (remove, "clicked", G_CALLBACK (disconnect_clicked_cb), self);
    adw_action_row_add_suffix (ADW_ACTION_ROW (row), remove);
    adw_preferences_group_add (ADW_PREFERENCES_GROUP (self->inputs_group), row);
    g_ptr_array_add (self->input_rows, row);
  }
  if (self->node.n_inputs == 0) {
    GtkWidget *row = adw_action_row_new ();
    adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), _("Not connected"));
    adw_action_row_set_subtitle (ADW_ACTION_ROW (row), _("Use Connect From… or drag from a block's output port"));
    adw_preferences_group_add (ADW_PREFERENCES_GROUP (self->inputs_group), row);
    g_ptr_array_add (self->input_rows, row);
  }
}

/* Whether the keyboard focus is in w (a value being typed). */
static gboolean
is_editing (GtkWidget *w)
{
  GtkRoot *root = gtk_widget_get_root (w);
  GtkWidget *focus = root ? gtk_root_get_focus (root) : NULL;
  return focus && (focus == w || gtk_widget_is_ancestor (focus, w));
}

static void
set_entry_text (BpBuildInspector *self, Editor *e, const char *text)
{
  if (e == self->changing || is_editing (e->editor) || e->error)
    return; /* keep what is being typed (and its error) */
  if (!g_str_equal (gtk_editable_get_text (GTK_EDITABLE (e->editor)), text))
    gtk_editable_set_text (GTK_EDITABLE (e->editor), text);
}

static void
refresh_param (BpBuildInspector *self, Editor *e)
{
  const BpParamInfo *p = e->param;
  const char *v = (const char *) &self->node + p->offset;
  char buf[256];
  switch (p->type) {
  case BP_PARAM_BOOL:
    gtk_switch_set_active (GTK_SWITCH (e->editor), *(const bool *) v);
    break;
  case BP_PARAM_LOSS:
  case BP_PARAM_CHOICE:
    gtk_drop_down_set_selected (GTK_DROP_DOWN (e->editor), (guint) MAX (*(const int *) v, 0));
    break;
  case BP_PARAM_NODE: {
    GtkStringList *list = gtk_string_list_new (NULL);
    gtk_string_list_append (list, _("none"));
    guint selected = 0;
    for (int k = 0; self->ids && self->ids[k]; k++) {
      if (g_str_equal (self->ids[k], self->node.id))
        continue;
      gtk_string_list_append (list, self->ids[k]);
      if (g_str_equal (self->ids[k], v))
        selected = g_list_model_get_n_items (G_LIST_MODEL (list)) - 1;
    }
    gtk_drop_down_set_model (GTK_DROP_DOWN (e->editor), G_LIST_MODEL (list));
    gtk_drop_down_set_selected (GTK_DROP_DOWN (e->editor), selected);
    g_object_unref (list);
    break;
  }
  default:
    if (((p->flags & BP_PARAM_INFERRED) && !bp_param_is_set (&self->node, p)) ||
        ((p->flags & BP_PARAM_NONE_ZERO) && p->type == BP_PARAM_PAIR && ((const int *) v)[0] == 0))
      buf[0] = '\0';
    else
      bp_param_format (&self->node, p, false, buf, sizeof buf);
    set_entry_text (self, e, buf);
  }
}

static void
bp_build_inspector_dispose (GObject *object)
{
  BpBuildInspector *self = BP_BUILD_INSPECTOR (object);
  g_clear_pointer (&self->box, gtk_widget_unparent);
  g_clear_pointer (&self->editors, g_ptr_array_unref);
  g_clear_pointer (&self->input_rows, g_ptr_array_unref);
  g_clear_pointer (&self->ids, g_strfreev);
  G_OBJECT_CLASS (bp_build_inspector_parent_class)->dispose (object);
}

static void
bp_build_inspector_class_init (BpBuildInspectorClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->dispose = bp_build_inspector_dispose;

  signals[SET_PARAM] = g_signal_new ("set-param", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                     0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING,
                                     G_TYPE_STRING);
  signals[RENAME] = g_signal_new ("rename", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL,
                                  NULL, NULL, G_TYPE_NONE, 1, G_TYPE_STRING);
  signals[DISCONNECT] = g_signal_new ("disconnect", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                      0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_INT);
  signals[SET_MODEL_NAME] = g_signal_new ("set-model-name", G_TYPE_FROM_CLASS (klass),
                                          G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 1,
                                          G_TYPE_STRING);
  signals[SET_MODEL_DESCRIPTION] = g_signal_new ("set-model-description",
                                                 G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                                                 NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_STRING);

  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
  gtk_widget_class_set_css_name (widget_class, "bp-build-inspector");
}

static void
bp_build_inspector_init (BpBuildInspector *self)
{
  self->box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 12);
  gtk_widget_set_margin_start (self->box, 12);
  gtk_widget_set_margin_end (self->box, 12);
  gtk_widget_set_margin_top (self->box, 12);
  gtk_widget_set_margin_bottom (self->box, 12);
  gtk_widget_set_parent (self->box, GTK_WIDGET (self));
  self->editors = g_ptr_array_new_with_free_func ((GDestroyNotify) editor_free);
  self->input_rows = g_ptr_array_new ();
  self->shown_index = self->shown_kind = -2;
}

GtkWidget *
bp_build_inspector_new (void)
{
  return g_object_new (BP_TYPE_BUILD_INSPECTOR, NULL);
}

void
bp_build_inspector_show (BpBuildInspector *self, const BpSpec *spec, int index,
                         const BpSpecInfo *info)
{
  g_return_if_fail (BP_IS_BUILD_INSPECTOR (self));
  g_return_if_fail (spec);
  if (index >= spec->n_nodes)
    index = -1;
  g_strfreev (self->ids);
  self->ids = g_new0 (char *, spec->n_nodes + 1);
  for (int k = 0; k < spec->n_nodes; k++)
    self->ids[k] = g_strdup (spec->nodes[k].id);
  int kind = index < 0 ? -1 : (int) spec->nodes[index].kind;
  const BpLayerType *type = index < 0 ? NULL : bp_layer_kind_type (spec->nodes[index].kind);
  self->updating = TRUE;
  if (index != self->shown_index || kind != self->shown_kind) {
    clear_rows (self);
    if (index < 0)
      build_model_rows (self);
    else
      build_node_rows (self, type);
    self->shown_index = index;
    self->shown_kind = kind;
  }

  if (index < 0) {
    Editor *name = find_editor (self, "model-name"), *description = find_editor (self, "model-description");
    set_entry_text (self, name, spec->name ? spec->name : "");
    set_entry_text (self, description, spec->description ? spec->description : "");
    g_autofree char *layers = g_strdup_printf ("%d", spec->n_nodes);
    gtk_label_set_text (GTK_LABEL (self->shape_label), layers);
    g_autofree char *count = info ? bp_format_count (info->n_params) : g_strdup ("–");
    gtk_label_set_text (GTK_LABEL (self->count_label), count);
    self->updating = FALSE;
    return;
  }

  self->node = spec->nodes[index];
  const char *type_name = type ? type->name : spec->types[index];
  gtk_label_set_text (GTK_LABEL (self->title_label), type_name);
  gtk_label_set_text (GTK_LABEL (self->help_label), type ? bp_engine_text (type->help) : "");
  set_entry_text (self, find_editor (self, "id"), self->node.id);
  const BpSpecNodeInfo *ni = info && index < info->n_nodes ? &info->nodes[index] : NULL;
  g_autofree char *shape = ni && ni->ndim > 0 ? bp_format_shape (ni->ndim, ni->shape) : g_strdup ("–");
  gtk_label_set_text (GTK_LABEL (self->shape_label), shape);
  g_autofree char *count = ni && ni->ndim > 0 ? bp_format_count (ni->n_params) : g_strdup ("–");
  gtk_label_set_text (GTK_LABEL (self->count_label), count);
  const char *error = ni && ni->error ? ni->error : spec->errors[index];
  gtk_label_set_text (GTK_LABEL (self->error_label), error ? error : "");
  gtk_widget_set_visible (self->error_label, error != NULL);
  for (guint i = 0; i < self->editors->len; i++) {
    Editor *e = g_ptr_array_index (self->editors, i);
    if (e->param)
      refresh_param (self, e);
  }
  refresh_inputs (self, spec, info);
  self->updating = FALSE;
}

void
bp_build_inspector_reset (BpBuildInspector *self)
{
  g_return_if_fail (BP_IS_BUILD_INSPECTOR (self));
  self->shown_index = self->shown_kind = -2;
}

GtkWidget *
bp_build_inspector_get_editor (BpBuildInspector *self, const char *name)
{
  g_return_val_if_fail (BP_IS_BUILD_INSPECTOR (self), NULL);
  Editor *e = find_editor (self, name);
  return e ? e->editor : NULL;
}

const char *
bp_build_inspector_get_error (BpBuildInspector *self, const char *name)
{
  g_return_val_if_fail (BP_IS_BUILD_INSPECTOR (self), NULL);
  Editor *e = find_editor (self, name);
  return e ? e->error : NULL;
}
