/* bp-attention-map.c: BpAttentionMap shows one attention layer's weights (a head or the mean
 * of the heads) as a heatmap drawn by bp-heatmap-draw, with layer and head drop-downs, a
 * colour scale and a tooltip naming the query and key tokens and the weight of a cell. */
#include "config.h"

#include "bp-attention-map.h"

#include <glib/gi18n-lib.h>
#include <string.h>

#include "bp-heatmap-draw.h"

struct _BpAttentionMap {
  GtkWidget parent_instance;
  GtkWidget *header, *layer_drop, *head_drop, *canvas;
  GtkStringList *layer_list, *head_list;

  int n_layers, n_heads, len;
  float *weights;  /* n_layers x n_heads x len x len */
  gsize weights_cap;
  float *matrix;   /* len x len: what is on show */
  gsize matrix_cap;
  char **labels;   /* len tokens as drawn */
  char **layer_ids;
  int layer, head; /* head -1: the mean of the heads */
  guint n_updates;
  char *placeholder;

  /* drawing state kept between frames */
  cairo_surface_t *cells; /* len x len pixels, refilled when the matrix changes */
  PangoLayout *layout;
  BpHeatmapGeometry geometry; /* as last drawn */
  int hover_row, hover_col;
  gboolean syncing; /* drop-downs being set from code */
};

G_DEFINE_FINAL_TYPE (BpAttentionMap, bp_attention_map, GTK_TYPE_WIDGET)

enum { PROP_0, PROP_LAYER, PROP_HEAD, N_PROPS };
static GParamSpec *properties[N_PROPS];

/* ---- drawing ---- */

static PangoLayout *
get_layout (BpAttentionMap *self)
{
  if (!self->layout) {
    self->layout = gtk_widget_create_pango_layout (self->canvas, NULL);
    PangoAttrList *attrs = pango_attr_list_new ();
    pango_attr_list_insert (attrs, pango_attr_scale_new (PANGO_SCALE_SMALL));
    pango_layout_set_attributes (self->layout, attrs);
    pango_attr_list_unref (attrs);
  }
  return self->layout;
}

static void
heatmap_of (BpAttentionMap *self, BpHeatmap *h)
{
  bp_heatmap_init (h);
  h->n = self->matrix && self->len > 0 ? self->len : 0;
  h->values = self->matrix;
  h->labels = (const char *const *) self->labels;
  h->row_title = _("Query");
  h->col_title = _("Key");
  h->empty_text = self->placeholder ? self->placeholder : _("No attention weights yet");
  h->cells = self->cells;
  h->hover_row = self->hover_row;
  h->hover_col = self->hover_col;
}

static void
canvas_draw (GtkDrawingArea *area, cairo_t *cr, int width, int height, gpointer data)
{
  BpAttentionMap *self = BP_ATTENTION_MAP (data);
  BpHeatmap h;
  heatmap_of (self, &h);
  GdkRGBA fg;
  gtk_style_context_get_color (gtk_widget_get_style_context (GTK_WIDGET (self)), &fg);
  h.fg[0] = fg.red, h.fg[1] = fg.green, h.fg[2] = fg.blue, h.fg[3] = fg.alpha;
  bp_heatmap_draw (cr, get_layout (self), &h, width, height, &self->geometry);
}

/* The natural size: cells of 28 pixels for short sequences down to 8 for long ones. */
static void
update_natural_size (BpAttentionMap *self)
{
  BpHeatmap h;
  heatmap_of (self, &h);
  int w = 240, ht = 180;
  if (h.n > 0)
    bp_heatmap_size_for_cell (get_layout (self), &h, CLAMP (360.0 / h.n, 8.0, 28.0), &w, &ht);
  gtk_drawing_area_set_content_width (GTK_DRAWING_AREA (self->canvas), MAX (w, 240));
  gtk_drawing_area_set_content_height (GTK_DRAWING_AREA (self->canvas), MAX (ht, 180));
}

/* Recomputes the matrix on show and its cells from the weights, layer and head. */
static void
update_matrix (BpAttentionMap *self)
{
  if (self->len <= 0 || !self->weights) {
    gtk_widget_queue_draw (self->canvas);
    return;
  }
  gsize tt = (gsize) self->len * self->len;
  const float *base = self->weights + (gsize) self->layer * self->n_heads * tt;
  if (self->head >= 0) {
    memcpy (self->matrix, base + (gsize) self->head * tt, tt * sizeof (float));
  } else {
    /* a layer with fewer heads than the others comes with zero rows for the missing ones:
     * the mean is over the heads whose first row holds weight */
    memset (self->matrix, 0, tt * sizeof (float));
    int used = 0;
    for (int hh = 0; hh < self->n_heads; hh++) {
      const float *m = base + (gsize) hh * tt;
      float row0 = 0.0f;
      for (int j = 0; j < self->len; j++)
        row0 += m[j];
      if (!(row0 > 0.0f) && hh > 0)
        continue;
      for (gsize k = 0; k < tt; k++)
        self->matrix[k] += m[k];
      used++;
    }
    for (gsize k = 0; k < tt; k++)
      self->matrix[k] /= used;
  }
  if (self->cells && cairo_image_surface_get_width (self->cells) != self->len)
    g_clear_pointer (&self->cells, cairo_surface_destroy);
  if (!self->cells)
    self->cells = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, self->len, self->len);
  BpHeatmap h;
  heatmap_of (self, &h);
  h.cells = NULL;
  bp_heatmap_fill_cells (&h, self->cells);
  gtk_widget_queue_draw (self->canvas);
}

/* ---- the drop-downs ---- */

static int
head_of_index (BpAttentionMap *self, guint index)
{
  return self->n_heads > 1 ? (int) index - 1 : 0;
}

static guint
index_of_head (BpAttentionMap *self, int head)
{
  return self->n_heads > 1 ? (guint) (head + 1) : 0;
}

static void
sync_dropdowns (BpAttentionMap *self)
{
  self->syncing = TRUE;
  gtk_drop_down_set_selected (GTK_DROP_DOWN (self->layer_drop), (guint) self->layer);
  gtk_drop_down_set_selected (GTK_DROP_DOWN (self->head_drop), index_of_head (self, self->head));
  gtk_widget_set_sensitive (self->header, self->len > 0);
  self->syncing = FALSE;
}

static void
layer_selected_cb (GObject *drop, GParamSpec *pspec, BpAttentionMap *self)
{
  guint k = gtk_drop_down_get_selected (GTK_DROP_DOWN (drop));
  if (!self->syncing && k != GTK_INVALID_LIST_POSITION)
    bp_attention_map_set_layer (self, (int) k);
}

static void
head_selected_cb (GObject *drop, GParamSpec *pspec, BpAttentionMap *self)
{
  guint k = gtk_drop_down_get_selected (GTK_DROP_DOWN (drop));
  if (!self->syncing && k != GTK_INVALID_LIST_POSITION)
    bp_attention_map_set_head (self, head_of_index (self, k));
}

/* Replaces the items of a string list (the drop-down keeps its model). */
static void
set_items (GtkStringList *list, const char *const *items)
{
  guint n = g_list_model_get_n_items (G_LIST_MODEL (list));
  gtk_string_list_splice (list, 0, n, items);
}

/* ---- hover ---- */

static void
set_hover (BpAttentionMap *self, int row, int col)
{
  if (row == self->hover_row && col == self->hover_col)
    return;
  self->hover_row = row;
  self->hover_col = col;
  gtk_widget_queue_draw (self->canvas);
}

static void
motion_cb (GtkEventControllerMotion *controller, double x, double y, BpAttentionMap *self)
{
  int row, col;
  if (self->len > 0 && bp_heatmap_cell_at (&self->geometry, x, y, &row, &col))
    set_hover (self, row, col);
  else
    set_hover (self, -1, -1);
}

static void
leave_cb (GtkEventControllerMotion *controller, BpAttentionMap *self)
{
  set_hover (self, -1, -1);
}

static gboolean
query_tooltip_cb (GtkWidget *canvas, int x, int y, gboolean keyboard, GtkTooltip *tooltip,
                  BpAttentionMap *self)
{
  int row, col;
  if (keyboard || self->len <= 0 || !bp_heatmap_cell_at (&self->geometry, x, y, &row, &col))
    return FALSE;
  g_autofree char *text = bp_attention_map_describe_cell (self, row, col);
  gtk_tooltip_set_text (tooltip, text);
  const BpHeatmapGeometry *g = &self->geometry;
  GdkRectangle cell = {(int) (g->left + col * g->cell), (int) (g->top + row * g->cell),
                       MAX ((int) g->cell, 1), MAX ((int) g->cell, 1)};
  gtk_tooltip_set_tip_area (tooltip, &cell);
  return TRUE;
}

/* ---- GObject ---- */

static void
bp_attention_map_css_changed (GtkWidget *widget, GtkCssStyleChange *change)
{
  BpAttentionMap *self = BP_ATTENTION_MAP (widget);
  GTK_WIDGET_CLASS (bp_attention_map_parent_class)->css_changed (widget, change);
  g_clear_object (&self->layout); /* the font may have changed */
  gtk_widget_queue_draw (self->canvas);
}

static void
bp_attention_map_system_setting_changed (GtkWidget *widget, GtkSystemSetting setting)
{
  BpAttentionMap *self = BP_ATTENTION_MAP (widget);
  GTK_WIDGET_CLASS (bp_attention_map_parent_class)->system_setting_changed (widget, setting);
  g_clear_object (&self->layout);
  gtk_widget_queue_draw (self->canvas);
}

static void
bp_attention_map_dispose (GObject *object)
{
  BpAttentionMap *self = BP_ATTENTION_MAP (object);
  GtkWidget *child;
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self))))
    gtk_widget_unparent (child);
  self->header = self->layer_drop = self->head_drop = self->canvas = NULL;
  g_clear_object (&self->layout);
  G_OBJECT_CLASS (bp_attention_map_parent_class)->dispose (object);
}

static void
bp_attention_map_finalize (GObject *object)
{
  BpAttentionMap *self = BP_ATTENTION_MAP (object);
  g_free (self->weights);
  g_free (self->matrix);
  g_strfreev (self->labels);
  g_strfreev (self->layer_ids);
  g_free (self->placeholder);
  g_clear_pointer (&self->cells, cairo_surface_destroy);
  g_clear_object (&self->layer_list);
  g_clear_object (&self->head_list);
  G_OBJECT_CLASS (bp_attention_map_parent_class)->finalize (object);
}

static void
bp_attention_map_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  BpAttentionMap *self = BP_ATTENTION_MAP (object);
  switch (prop_id) {
  case PROP_LAYER: g_value_set_int (value, self->layer); break;
  case PROP_HEAD: g_value_set_int (value, self->head); break;
  default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
}

static void
bp_attention_map_set_property (GObject *object, guint prop_id, const GValue *value,
                               GParamSpec *pspec)
{
  BpAttentionMap *self = BP_ATTENTION_MAP (object);
  switch (prop_id) {
  case PROP_LAYER: bp_attention_map_set_layer (self, g_value_get_int (value)); break;
  case PROP_HEAD: bp_attention_map_set_head (self, g_value_get_int (value)); break;
  default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
}

static void
bp_attention_map_class_init (BpAttentionMapClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->dispose = bp_attention_map_dispose;
  object_class->finalize = bp_attention_map_finalize;
  object_class->get_property = bp_attention_map_get_property;
  object_class->set_property = bp_attention_map_set_property;
  widget_class->css_changed = bp_attention_map_css_changed;
  widget_class->system_setting_changed = bp_attention_map_system_setting_changed;

  properties[PROP_LAYER] = g_param_spec_int ("layer", NULL, NULL, 0, G_MAXINT, 0,
                                             G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY |
                                             G_PARAM_STATIC_STRINGS);
  properties[PROP_HEAD] = g_param_spec_int ("head", NULL, NULL, -1, G_MAXINT, -1,
                                            G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY |
                                            G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BOX_LAYOUT);
  gtk_widget_class_set_css_name (widget_class, "bp-attention-map");
}

static void
bp_attention_map_init (BpAttentionMap *self)
{
  GtkWidget *widget = GTK_WIDGET (self);
  GtkLayoutManager *layout = gtk_widget_get_layout_manager (widget);
  gtk_orientable_set_orientation (GTK_ORIENTABLE (layout), GTK_ORIENTATION_VERTICAL);
  gtk_box_layout_set_spacing (GTK_BOX_LAYOUT (layout), 4);
  self->head = -1;
  self->hover_row = self->hover_col = -1;

  /* header: layer and head */
  self->header = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
  gtk_widget_set_parent (self->header, widget);
  GtkWidget *label = gtk_label_new (_("Layer"));
  gtk_widget_add_css_class (label, "dim-label");
  gtk_box_append (GTK_BOX (self->header), label);
  self->layer_list = gtk_string_list_new (NULL);
  self->layer_drop = gtk_drop_down_new (G_LIST_MODEL (g_object_ref (self->layer_list)), NULL);
  gtk_widget_set_tooltip_text (self->layer_drop, _("The attention layer on show"));
  g_signal_connect (self->layer_drop, "notify::selected", G_CALLBACK (layer_selected_cb), self);
  gtk_box_append (GTK_BOX (self->header), self->layer_drop);
  label = gtk_label_new (_("Head"));
  gtk_widget_add_css_class (label, "dim-label");
  gtk_widget_set_margin_start (label, 6);
  gtk_box_append (GTK_BOX (self->header), label);
  self->head_list = gtk_string_list_new (NULL);
  self->head_drop = gtk_drop_down_new (G_LIST_MODEL (g_object_ref (self->head_list)), NULL);
  gtk_widget_set_tooltip_text (self->head_drop,
                               _("One attention head, or the mean of the layer's heads"));
  g_signal_connect (self->head_drop, "notify::selected", G_CALLBACK (head_selected_cb), self);
  gtk_box_append (GTK_BOX (self->header), self->head_drop);
  gtk_widget_set_sensitive (self->header, FALSE);

  /* the heatmap */
  self->canvas = gtk_drawing_area_new ();
  gtk_widget_set_size_request (self->canvas, 160, 120);
  gtk_widget_set_hexpand (self->canvas, TRUE);
  gtk_widget_set_vexpand (self->canvas, TRUE);
  gtk_drawing_area_set_content_width (GTK_DRAWING_AREA (self->canvas), 240);
  gtk_drawing_area_set_content_height (GTK_DRAWING_AREA (self->canvas), 180);
  gtk_drawing_area_set_draw_func (GTK_DRAWING_AREA (self->canvas), canvas_draw, self, NULL);
  gtk_widget_set_parent (self->canvas, widget);
  gtk_widget_set_has_tooltip (self->canvas, TRUE);
  g_signal_connect (self->canvas, "query-tooltip", G_CALLBACK (query_tooltip_cb), self);
  GtkEventController *motion = gtk_event_controller_motion_new ();
  g_signal_connect (motion, "motion", G_CALLBACK (motion_cb), self);
  g_signal_connect (motion, "leave", G_CALLBACK (leave_cb), self);
  gtk_widget_add_controller (self->canvas, motion);
}

/* ---- public API ---- */

GtkWidget *
bp_attention_map_new (void)
{
  return g_object_new (BP_TYPE_ATTENTION_MAP, NULL);
}

static gboolean
same_strings (char **a, const char *const *b, int n)
{
  if (!a || (int) g_strv_length (a) != n)
    return FALSE;
  for (int k = 0; k < n; k++)
    if (g_strcmp0 (a[k], b[k]) != 0)
      return FALSE;
  return TRUE;
}

void
bp_attention_map_set_data (BpAttentionMap *self, int n_layers, int n_heads, int len,
                           const char *const *tokens, const char *const *layer_ids,
                           const float *weights)
{
  g_return_if_fail (BP_IS_ATTENTION_MAP (self));
  g_return_if_fail (n_layers >= 1 && n_heads >= 1 && len >= 1 && len <= 4096);
  g_return_if_fail (tokens != NULL && weights != NULL);

  /* the weights, into buffers that grow only */
  gsize tt = (gsize) len * len, total = (gsize) n_layers * n_heads * tt;
  if (total > self->weights_cap) {
    g_free (self->weights);
    self->weights = g_new (float, total);
    self->weights_cap = total;
  }
  memcpy (self->weights, weights, total * sizeof (float));
  if (tt > self->matrix_cap) {
    g_free (self->matrix);
    self->matrix = g_new (float, tt);
    self->matrix_cap = tt;
  }

  /* the tokens as drawn */
  gboolean resize = len != self->len;
  char **labels = g_new0 (char *, len + 1);
  for (int i = 0; i < len; i++)
    labels[i] = bp_heatmap_token_label (tokens[i]);
  if (!resize && !same_strings (self->labels, (const char *const *) labels, len))
    resize = TRUE; /* other labels may need other room */
  g_strfreev (self->labels);
  self->labels = labels;

  /* the layers' names and the heads: new lists only when they change */
  g_autoptr (GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
  for (int k = 0; k < n_layers; k++)
    g_ptr_array_add (ids, layer_ids && layer_ids[k] ? g_strdup (layer_ids[k])
                                                    : g_strdup_printf ("%d", k + 1));
  g_ptr_array_add (ids, NULL);
  gboolean new_layers = !same_strings (self->layer_ids, (const char *const *) ids->pdata,
                                       n_layers);
  gboolean new_heads = n_heads != self->n_heads;
  self->n_layers = n_layers;
  self->n_heads = n_heads;
  self->len = len;
  self->syncing = TRUE;
  if (new_layers) {
    g_strfreev (self->layer_ids);
    self->layer_ids = g_strdupv ((char **) ids->pdata);
    set_items (self->layer_list, (const char *const *) self->layer_ids);
    self->layer = 0;
  }
  if (new_heads) {
    GPtrArray *items = g_ptr_array_new_with_free_func (g_free);
    if (n_heads > 1)
      g_ptr_array_add (items, g_strdup (_("Mean of heads")));
    for (int k = 0; k < n_heads; k++)
      g_ptr_array_add (items, g_strdup_printf (_("Head %d"), k + 1));
    g_ptr_array_add (items, NULL);
    set_items (self->head_list, (const char *const *) items->pdata);
    g_ptr_array_unref (items);
    self->head = n_heads > 1 ? -1 : 0;
  }
  self->syncing = FALSE;
  self->n_updates++;
  update_matrix (self);
  sync_dropdowns (self);
  if (new_layers)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LAYER]);
  if (new_heads)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_HEAD]);
  if (resize) {
    self->hover_row = self->hover_col = -1;
    update_natural_size (self);
  }
}

void
bp_attention_map_clear (BpAttentionMap *self)
{
  g_return_if_fail (BP_IS_ATTENTION_MAP (self));
  self->len = 0;
  self->hover_row = self->hover_col = -1;
  g_clear_pointer (&self->labels, g_strfreev);
  update_natural_size (self);
  gtk_widget_set_sensitive (self->header, FALSE);
  gtk_widget_queue_draw (self->canvas);
}

void
bp_attention_map_set_placeholder (BpAttentionMap *self, const char *text)
{
  g_return_if_fail (BP_IS_ATTENTION_MAP (self));
  g_free (self->placeholder);
  self->placeholder = g_strdup (text);
  gtk_widget_queue_draw (self->canvas);
}

int
bp_attention_map_get_n_layers (BpAttentionMap *self)
{
  g_return_val_if_fail (BP_IS_ATTENTION_MAP (self), 0);
  return self->len > 0 ? self->n_layers : 0;
}

int
bp_attention_map_get_n_heads (BpAttentionMap *self)
{
  g_return_val_if_fail (BP_IS_ATTENTION_MAP (self), 0);
  return self->len > 0 ? self->n_heads : 0;
}

int
bp_attention_map_get_length (BpAttentionMap *self)
{
  g_return_val_if_fail (BP_IS_ATTENTION_MAP (self), 0);
  return self->len;
}

guint
bp_attention_map_get_n_updates (BpAttentionMap *self)
{
  g_return_val_if_fail (BP_IS_ATTENTION_MAP (self), 0);
  return self->n_updates;
}

int
bp_attention_map_get_layer (BpAttentionMap *self)
{
  g_return_val_if_fail (BP_IS_ATTENTION_MAP (self), 0);
  return self->layer;
}

void
bp_attention_map_set_layer (BpAttentionMap *self, int layer)
{
  g_return_if_fail (BP_IS_ATTENTION_MAP (self));
  g_return_if_fail (layer >= 0);
  if (self->len > 0 && layer >= self->n_layers) {
    g_warning ("bp_attention_map_set_layer: layer %d of %d", layer, self->n_layers);
    return;
  }
  if (layer == self->layer)
    return;
  self->layer = layer;
  update_matrix (self);
  sync_dropdowns (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LAYER]);
}

int
bp_attention_map_get_head (BpAttentionMap *self)
{
  g_return_val_if_fail (BP_IS_ATTENTION_MAP (self), -1);
  return self->head;
}

void
bp_attention_map_set_head (BpAttentionMap *self, int head)
{
  g_return_if_fail (BP_IS_ATTENTION_MAP (self));
  g_return_if_fail (head >= -1);
  if (self->len > 0 && head >= self->n_heads) {
    g_warning ("bp_attention_map_set_head: head %d of %d", head, self->n_heads);
    return;
  }
  if (self->n_heads == 1 && head == -1)
    head = 0; /* the mean of one head is that head */
  if (head == self->head)
    return;
  self->head = head;
  update_matrix (self);
  sync_dropdowns (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_HEAD]);
}

const float *
bp_attention_map_get_matrix (BpAttentionMap *self)
{
  g_return_val_if_fail (BP_IS_ATTENTION_MAP (self), NULL);
  return self->len > 0 ? self->matrix : NULL;
}

gboolean
bp_attention_map_cell_at (BpAttentionMap *self, double x, double y, int *query, int *key)
{
  g_return_val_if_fail (BP_IS_ATTENTION_MAP (self), FALSE);
  graphene_point_t p;
  if (self->len <= 0 ||
      !gtk_widget_compute_point (GTK_WIDGET (self), self->canvas, &GRAPHENE_POINT_INIT (x, y), &p))
    return FALSE;
  return bp_heatmap_cell_at (&self->geometry, p.x, p.y, query, key);
}

char *
bp_attention_map_describe_cell (BpAttentionMap *self, int query, int key)
{
  g_return_val_if_fail (BP_IS_ATTENTION_MAP (self), NULL);
  if (self->len <= 0 || query < 0 || key < 0 || query >= self->len || key >= self->len)
    return NULL;
  char weight[G_ASCII_DTOSTR_BUF_SIZE];
  g_ascii_formatd (weight, sizeof weight, "%.3f", self->matrix[(gsize) query * self->len + key]);
  /* TRANSLATORS: a cell of the attention heatmap: the query position and token, the key
   * position and token, the attention weight */
  return g_strdup_printf (_("query %d “%s” → key %d “%s”: %s"), query + 1, self->labels[query],
                          key + 1, self->labels[key], weight);
}

gboolean
bp_attention_map_export_png (BpAttentionMap *self, const char *path, int width, int height,
                             GError **error)
{
  g_return_val_if_fail (BP_IS_ATTENTION_MAP (self), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  BpHeatmap h;
  heatmap_of (self, &h);
  h.hover_row = h.hover_col = -1;
  h.fill_bg = TRUE;
  PangoLayout *layout = get_layout (self);
  if (width <= 0 || height <= 0)
    bp_heatmap_size_for_cell (layout, &h, CLAMP (640.0 / MAX (h.n, 1), 12.0, 36.0), &width,
                              &height);
  cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, width, height);
  cairo_t *cr = cairo_create (surface);
  bp_heatmap_draw (cr, layout, &h, width, height, NULL);
  cairo_status_t status = cairo_status (cr);
  cairo_destroy (cr);
  if (status == CAIRO_STATUS_SUCCESS)
    status = cairo_surface_write_to_png (surface, path);
  cairo_surface_destroy (surface);
  if (status != CAIRO_STATUS_SUCCESS) {
    g_autofree char *display = g_filename_display_name (path);
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, _("Cannot write %s: %s"), display,
                 cairo_status_to_string (status));
    return FALSE;
  }
  return TRUE;
}
