/* bp-build-palette.c: BpBuildPalette lists bp_layer_types () under their groups' headings; a
 * row activates build.add-layer with its type name, is a drag source of that name, and the
 * search box filters the rows (Enter adds the first match). */
#include "config.h"

#include "bp-build-palette.h"

#include <glib/gi18n.h>

#include "bp-engine-strings.h"
#include "bp-model-canvas.h"
#include "bp-nn.h"

struct _BpBuildPalette {
  GtkWidget parent_instance;
  GtkWidget *search, *scroller, *list;
  char *filter;
};

G_DEFINE_FINAL_TYPE (BpBuildPalette, bp_build_palette, GTK_TYPE_WIDGET)

static const BpLayerType *
row_type (GtkListBoxRow *row)
{
  return g_object_get_data (G_OBJECT (row), "bp-layer-type");
}

static gboolean
contains_casefold (const char *haystack, const char *needle)
{
  if (!haystack)
    return FALSE;
  g_autofree char *h = g_utf8_casefold (haystack, -1);
  return strstr (h, needle) != NULL;
}

static gboolean
filter_func (GtkListBoxRow *row, gpointer data)
{
  BpBuildPalette *self = data;
  const BpLayerType *t = row_type (row);
  if (!self->filter || !*self->filter)
    return TRUE;
  return contains_casefold (t->name, self->filter) || contains_casefold (t->group, self->filter) ||
         contains_casefold (bp_engine_group_title (t->group), self->filter) ||
         contains_casefold (bp_engine_text (t->help), self->filter);
}

static void
header_func (GtkListBoxRow *row, GtkListBoxRow *before, gpointer data)
{
  const BpLayerType *t = row_type (row);
  if (before && g_str_equal (row_type (before)->group, t->group)) {
    gtk_list_box_row_set_header (row, NULL);
    return;
  }
  GtkWidget *label = gtk_label_new (bp_engine_group_title (t->group));
  gtk_label_set_xalign (GTK_LABEL (label), 0.0);
  gtk_label_set_ellipsize (GTK_LABEL (label), PANGO_ELLIPSIZE_END);
  gtk_widget_set_tooltip_text (label, bp_engine_group_title (t->group));
  gtk_widget_add_css_class (label, "heading");
  gtk_widget_add_css_class (label, "dim-label");
  gtk_widget_set_margin_start (label, 12);
  gtk_widget_set_margin_top (label, before ? 12 : 6);
  gtk_widget_set_margin_bottom (label, 2);
  gtk_list_box_row_set_header (row, label);
}

static void
draw_dot (GtkDrawingArea *area, cairo_t *cr, int width, int height, gpointer data)
{
  GdkRGBA rgba;
  bp_model_canvas_get_color (GPOINTER_TO_INT (data), &rgba);
  gdk_cairo_set_source_rgba (cr, &rgba);
  cairo_arc (cr, width / 2.0, height / 2.0, MIN (width, height) / 2.0, 0, 2 * G_PI);
  cairo_fill (cr);
}

static GdkContentProvider *
drag_prepare_cb (GtkDragSource *source, double x, double y, GtkListBoxRow *row)
{
  GtkWidget *widget = GTK_WIDGET (row);
  g_autoptr (GdkPaintable) icon = gtk_widget_paintable_new (widget);
  gtk_drag_source_set_icon (source, icon, (int) x, (int) y);
  return gdk_content_provider_new_typed (G_TYPE_STRING, row_type (row)->name);
}

static GtkWidget *
make_row (const BpLayerType *t)
{
  GtkWidget *row = gtk_list_box_row_new ();
  g_object_set_data (G_OBJECT (row), "bp-layer-type", (gpointer) t);
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 8);
  GtkWidget *dot = gtk_drawing_area_new ();
  gtk_widget_set_size_request (dot, 8, 8);
  gtk_widget_set_valign (dot, GTK_ALIGN_CENTER);
  gtk_drawing_area_set_draw_func (GTK_DRAWING_AREA (dot), draw_dot,
                                  GINT_TO_POINTER (bp_engine_group_color (t->group)), NULL);
  gtk_box_append (GTK_BOX (box), dot);
  GtkWidget *label = gtk_label_new (t->name);
  gtk_label_set_xalign (GTK_LABEL (label), 0.0);
  gtk_label_set_ellipsize (GTK_LABEL (label), PANGO_ELLIPSIZE_END);
  gtk_widget_set_hexpand (label, TRUE);
  gtk_box_append (GTK_BOX (box), label);
  gtk_list_box_row_set_child (GTK_LIST_BOX_ROW (row), box);
  /* TRANSLATORS: tooltip of a palette row: the layer's class name and what it does */
  g_autofree char *tip = g_strdup_printf (_("%s: %s"), t->name, bp_engine_text (t->help));
  if (t->kind < 0) {
    GtkWidget *planned = gtk_label_new (_("planned"));
    gtk_label_set_ellipsize (GTK_LABEL (planned), PANGO_ELLIPSIZE_END);
    gtk_widget_add_css_class (planned, "dim-label");
    gtk_widget_add_css_class (planned, "caption");
    gtk_box_append (GTK_BOX (box), planned);
    gtk_widget_set_sensitive (row, FALSE);
  } else {
    gtk_actionable_set_action_name (GTK_ACTIONABLE (row), "build.add-layer");
    gtk_actionable_set_action_target (GTK_ACTIONABLE (row), "s", t->name);
    GtkDragSource *source = gtk_drag_source_new ();
    gtk_drag_source_set_actions (source, GDK_ACTION_COPY);
    g_signal_connect (source, "prepare", G_CALLBACK (drag_prepare_cb), row);
    gtk_widget_add_controller (row, GTK_EVENT_CONTROLLER (source));
  }
  gtk_widget_set_tooltip_text (row, tip);
  return row;
}

static void
search_changed_cb (GtkSearchEntry *entry, BpBuildPalette *self)
{
  bp_build_palette_set_filter (self, gtk_editable_get_text (GTK_EDITABLE (entry)));
}

static void
search_activate_cb (GtkSearchEntry *entry, BpBuildPalette *self)
{
  for (GtkWidget *row = gtk_widget_get_first_child (self->list); row;
       row = gtk_widget_get_next_sibling (row))
    if (GTK_IS_LIST_BOX_ROW (row) && gtk_widget_get_child_visible (row) &&
        gtk_widget_is_sensitive (row) && filter_func (GTK_LIST_BOX_ROW (row), self)) {
      gtk_widget_activate (row);
      return;
    }
}

static void
bp_build_palette_dispose (GObject *object)
{
  BpBuildPalette *self = BP_BUILD_PALETTE (object);
  g_clear_pointer (&self->search, gtk_widget_unparent);
  g_clear_pointer (&self->scroller, gtk_widget_unparent);
  g_clear_pointer (&self->filter, g_free);
  G_OBJECT_CLASS (bp_build_palette_parent_class)->dispose (object);
}

static void
bp_build_palette_class_init (BpBuildPaletteClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->dispose = bp_build_palette_dispose;
  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BOX_LAYOUT);
  gtk_widget_class_set_css_name (widget_class, "bp-build-palette");
}

static void
bp_build_palette_init (BpBuildPalette *self)
{
  GtkWidget *widget = GTK_WIDGET (self);
  GtkLayoutManager *layout = gtk_widget_get_layout_manager (widget);
  gtk_orientable_set_orientation (GTK_ORIENTABLE (layout), GTK_ORIENTATION_VERTICAL);

  self->search = gtk_search_entry_new ();
  g_object_set (self->search, "placeholder-text", _("Search layers"), NULL);
  gtk_editable_set_width_chars (GTK_EDITABLE (self->search), 6);
  gtk_widget_set_margin_start (self->search, 8);
  gtk_widget_set_margin_end (self->search, 8);
  gtk_widget_set_margin_top (self->search, 8);
  gtk_widget_set_margin_bottom (self->search, 4);
  gtk_widget_set_parent (self->search, widget);
  g_signal_connect (self->search, "search-changed", G_CALLBACK (search_changed_cb), self);
  g_signal_connect (self->search, "activate", G_CALLBACK (search_activate_cb), self);

  self->scroller = gtk_scrolled_window_new ();
  gtk_scrolled_window_set_policy (GTK_SCROLLED_WINDOW (self->scroller), GTK_POLICY_NEVER,
                                  GTK_POLICY_AUTOMATIC);
  gtk_widget_set_vexpand (self->scroller, TRUE);
  gtk_widget_set_parent (self->scroller, widget);
  self->list = gtk_list_box_new ();
  gtk_list_box_set_selection_mode (GTK_LIST_BOX (self->list), GTK_SELECTION_NONE);
  gtk_widget_add_css_class (self->list, "navigation-sidebar");
  gtk_list_box_set_filter_func (GTK_LIST_BOX (self->list), filter_func, self, NULL);
  gtk_list_box_set_header_func (GTK_LIST_BOX (self->list), header_func, NULL, NULL);
  gtk_accessible_update_property (GTK_ACCESSIBLE (self->list), GTK_ACCESSIBLE_PROPERTY_LABEL,
                                  _("Layers"), -1);
  gtk_scrolled_window_set_child (GTK_SCROLLED_WINDOW (self->scroller), self->list);

  int n;
  const BpLayerType *types = bp_layer_types (&n);
  for (int i = 0; i < n; i++)
    gtk_list_box_append (GTK_LIST_BOX (self->list), make_row (&types[i]));
}

GtkWidget *
bp_build_palette_new (void)
{
  return g_object_new (BP_TYPE_BUILD_PALETTE, NULL);
}

void
bp_build_palette_set_filter (BpBuildPalette *self, const char *text)
{
  g_return_if_fail (BP_IS_BUILD_PALETTE (self));
  g_free (self->filter);
  self->filter = text && *text ? g_utf8_casefold (text, -1) : NULL;
  if (g_strcmp0 (gtk_editable_get_text (GTK_EDITABLE (self->search)), text ? text : "") != 0)
    gtk_editable_set_text (GTK_EDITABLE (self->search), text ? text : "");
  gtk_list_box_invalidate_filter (GTK_LIST_BOX (self->list));
}

char **
bp_build_palette_get_visible (BpBuildPalette *self)
{
  g_return_val_if_fail (BP_IS_BUILD_PALETTE (self), NULL);
  GStrvBuilder *b = g_strv_builder_new ();
  for (GtkWidget *row = gtk_widget_get_first_child (self->list); row;
       row = gtk_widget_get_next_sibling (row))
    if (GTK_IS_LIST_BOX_ROW (row) && filter_func (GTK_LIST_BOX_ROW (row), self))
      g_strv_builder_add (b, row_type (GTK_LIST_BOX_ROW (row))->name);
  char **names = g_strv_builder_end (b);
  g_strv_builder_unref (b);
  return names;
}

void
bp_build_palette_focus_search (BpBuildPalette *self)
{
  g_return_if_fail (BP_IS_BUILD_PALETTE (self));
  gtk_widget_grab_focus (self->search);
}
