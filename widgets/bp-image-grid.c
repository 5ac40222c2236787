/* bp-image-grid.c: BpImageGrid draws images through Cairo image surfaces with nearest-neighbour
 * upscaling, a caption under each and a red frame and cross on the wrong ones. */
#include "bp-image-grid.h"

#define CELL_MIN 36
#define CELL_NATURAL 76
#define CELL_MAX 120
#define GAP 6

typedef struct {
  cairo_surface_t *surface;
  char *caption;
  gboolean wrong;
} Item;

struct _BpImageGrid {
  GtkWidget parent_instance;
  GArray *items; /* Item */
  int columns;
};

G_DEFINE_FINAL_TYPE (BpImageGrid, bp_image_grid, GTK_TYPE_WIDGET)

enum { PROP_0, PROP_COLUMNS, PROP_N_IMAGES, N_PROPS };
static GParamSpec *properties[N_PROPS];

static void
item_clear (gpointer data)
{
  Item *item = data;
  g_clear_pointer (&item->surface, cairo_surface_destroy);
  g_clear_pointer (&item->caption, g_free);
}

/* Height of the caption area under each image: two lines of the widget's font. */
static int
caption_height (BpImageGrid *self)
{
  PangoLayout *layout = gtk_widget_create_pango_layout (GTK_WIDGET (self), "Ag\nAg");
  int w, h;
  pango_layout_get_pixel_size (layout, &w, &h);
  g_object_unref (layout);
  return h + 2;
}

static int
n_rows (BpImageGrid *self)
{
  return ((int) self->items->len + self->columns - 1) / self->columns;
}

static void
bp_image_grid_measure (GtkWidget *widget, GtkOrientation orientation, int for_size, int *minimum,
                       int *natural, int *minimum_baseline, int *natural_baseline)
{
  BpImageGrid *self = BP_IMAGE_GRID (widget);
  int rows = MAX (1, n_rows (self));
  if (orientation == GTK_ORIENTATION_HORIZONTAL) {
    *minimum = self->columns * (CELL_MIN + GAP);
    *natural = self->columns * (CELL_NATURAL + GAP);
  } else {
    int cell = CELL_NATURAL;
    if (for_size > 0)
      cell = CLAMP (for_size / self->columns - GAP, CELL_MIN, CELL_MAX);
    *minimum = rows * (CELL_MIN + caption_height (self) + GAP);
    *natural = rows * (cell + caption_height (self) + GAP);
  }
}

static GtkSizeRequestMode
bp_image_grid_get_request_mode (GtkWidget *widget)
{
  return GTK_SIZE_REQUEST_HEIGHT_FOR_WIDTH;
}

static void
bp_image_grid_snapshot (GtkWidget *widget, GtkSnapshot *snapshot)
{
  BpImageGrid *self = BP_IMAGE_GRID (widget);
  int width = gtk_widget_get_width (widget), height = gtk_widget_get_height (widget);
  if (self->items->len == 0 || width <= 0 || height <= 0)
    return;
  int cap_h = caption_height (self), rows = n_rows (self);
  int cell = MIN (width / self->columns - GAP, height / rows - cap_h - GAP);
  cell = CLAMP (cell, 8, CELL_MAX);
  int pitch_x = cell + GAP, pitch_y = cell + cap_h + GAP;
  double off_x = MAX (0, (width - pitch_x * self->columns) / 2);

  GdkRGBA fg;
  gtk_style_context_get_color (gtk_widget_get_style_context (widget), &fg);
  cairo_t *cr = gtk_snapshot_append_cairo (snapshot, &GRAPHENE_RECT_INIT (0, 0, width, height));
  PangoLayout *layout = gtk_widget_create_pango_layout (widget, NULL);
  pango_layout_set_alignment (layout, PANGO_ALIGN_CENTER);
  pango_layout_set_width (layout, (pitch_x - 2) * PANGO_SCALE);
  pango_layout_set_ellipsize (layout, PANGO_ELLIPSIZE_END);
  PangoAttrList *attrs = pango_attr_list_new ();
  pango_attr_list_insert (attrs, pango_attr_scale_new (PANGO_SCALE_SMALL));
  pango_layout_set_attributes (layout, attrs);
  pango_attr_list_unref (attrs);

  for (guint i = 0; i < self->items->len; i++) {
    Item *item = &g_array_index (self->items, Item, i);
    double x = off_x + (double) (i % self->columns) * pitch_x + GAP / 2.0;
    double y = (double) (i / self->columns) * pitch_y;
    int iw = cairo_image_surface_get_width (item->surface);
    int ih = cairo_image_surface_get_height (item->surface);
    double scale = (double) cell / MAX (iw, ih);

    cairo_save (cr);
    cairo_translate (cr, x + (cell - iw * scale) / 2, y + (cell - ih * scale) / 2);
    cairo_scale (cr, scale, scale);
    cairo_set_source_surface (cr, item->surface, 0, 0);
    cairo_pattern_set_filter (cairo_get_source (cr), CAIRO_FILTER_NEAREST);
    cairo_rectangle (cr, 0, 0, iw, ih);
    cairo_fill (cr);
    cairo_restore (cr);

    if (item->wrong) {
      cairo_set_source_rgb (cr, 0.88, 0.11, 0.14);
      cairo_set_line_width (cr, 3.0);
      cairo_rectangle (cr, x + 1.5, y + 1.5, cell - 3, cell - 3);
      cairo_stroke (cr);
      /* a small cross in the top-right corner */
      double c = MAX (8.0, cell * 0.18);
      cairo_rectangle (cr, x + cell - c - 3, y + 3, c, c);
      cairo_fill (cr);
      cairo_set_source_rgb (cr, 1, 1, 1);
      cairo_set_line_width (cr, 1.5);
      cairo_move_to (cr, x + cell - c - 1, y + 5);
      cairo_line_to (cr, x + cell - 5, y + c + 1);
      cairo_move_to (cr, x + cell - 5, y + 5);
      cairo_line_to (cr, x + cell - c - 1, y + c + 1);
      cairo_stroke (cr);
    }
    if (item->caption) {
      pango_layout_set_text (layout, item->caption, -1);
      if (item->wrong)
        cairo_set_source_rgb (cr, 0.88, 0.11, 0.14);
      else
        cairo_set_source_rgba (cr, fg.red, fg.green, fg.blue, fg.alpha * 0.85);
      cairo_move_to (cr, x - GAP / 2.0 + 1, y + cell + 1);
      pango_cairo_show_layout (cr, layout);
    }
  }
  g_object_unref (layout);
  cairo_destroy (cr);
}

static void
bp_image_grid_finalize (GObject *object)
{
  BpImageGrid *self = BP_IMAGE_GRID (object);
  g_array_unref (self->items);
  G_OBJECT_CLASS (bp_image_grid_parent_class)->finalize (object);
}

static void
bp_image_grid_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  BpImageGrid *self = BP_IMAGE_GRID (object);
  switch (prop_id) {
  case PROP_COLUMNS: g_value_set_int (value, self->columns); break;
  case PROP_N_IMAGES: g_value_set_int (value, (int) self->items->len); break;
  default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
}

static void
bp_image_grid_set_property (GObject *object, guint prop_id, const GValue *value,
                            GParamSpec *pspec)
{
  BpImageGrid *self = BP_IMAGE_GRID (object);
  switch (prop_id) {
  case PROP_COLUMNS: bp_image_grid_set_columns (self, g_value_get_int (value)); break;
  default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
}

static void
bp_image_grid_class_init (BpImageGridClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->finalize = bp_image_grid_finalize;
  object_class->get_property = bp_image_grid_get_property;
  object_class->set_property = bp_image_grid_set_property;
  widget_class->measure = bp_image_grid_measure;
  widget_class->get_request_mode = bp_image_grid_get_request_mode;
  widget_class->snapshot = bp_image_grid_snapshot;

  properties[PROP_COLUMNS] = g_param_spec_int ("columns", NULL, NULL, 1, 64, 6,
                                               G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY |
                                               G_PARAM_STATIC_STRINGS);
  properties[PROP_N_IMAGES] = g_param_spec_int ("n-images", NULL, NULL, 0, G_MAXINT, 0,
                                                G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);
  gtk_widget_class_set_css_name (widget_class, "bp-image-grid");
}

static void
bp_image_grid_init (BpImageGrid *self)
{
  self->items = g_array_new (FALSE, TRUE, sizeof (Item));
  g_array_set_clear_func (self->items, item_clear);
  self->columns = 6;
}

GtkWidget *
bp_image_grid_new (void)
{
  return g_object_new (BP_TYPE_IMAGE_GRID, NULL);
}

void
bp_image_grid_set_images (BpImageGrid *self, int n, int width, int height, int channels,
                          const guint8 *pixels, const char *const *captions,
                          const gboolean *wrong)
{
  g_return_if_fail (BP_IS_IMAGE_GRID (self));
  g_return_if_fail (n >= 0 && width > 0 && height > 0);
  g_return_if_fail (channels == 1 || channels == 3);
  g_return_if_fail (n == 0 || pixels != NULL);

  g_array_set_size (self->items, 0);
  for (int i = 0; i < n; i++) {
    Item item = {0};
    item.surface = cairo_image_surface_create (CAIRO_FORMAT_RGB24, width, height);
    cairo_surface_flush (item.surface);
    guint8 *dst = cairo_image_surface_get_data (item.surface);
    int stride = cairo_image_surface_get_stride (item.surface);
    const guint8 *src = pixels + (gsize) i * width * height * channels;
    for (int r = 0; r < height; r++) {
      guint32 *row = (guint32 *) (dst + (gsize) r * stride);
      for (int c = 0; c < width; c++) {
        const guint8 *p = src + ((gsize) r * width + c) * channels;
        guint32 red = p[0], green = channels == 3 ? p[1] : p[0], blue = channels == 3 ? p[2] : p[0];
        row[c] = 0xff000000u | red << 16 | green << 8 | blue;
      }
    }
    cairo_surface_mark_dirty (item.surface);
    item.caption = captions ? g_strdup (captions[i]) : NULL;
    item.wrong = wrong ? wrong[i] : FALSE;
    g_array_append_val (self->items, item);
  }
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_N_IMAGES]);
  gtk_widget_queue_resize (GTK_WIDGET (self));
}

void
bp_image_grid_clear (BpImageGrid *self)
{
  g_return_if_fail (BP_IS_IMAGE_GRID (self));
  g_array_set_size (self->items, 0);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_N_IMAGES]);
  gtk_widget_queue_resize (GTK_WIDGET (self));
}

int
bp_image_grid_get_n_images (BpImageGrid *self)
{
  g_return_val_if_fail (BP_IS_IMAGE_GRID (self), 0);
  return (int) self->items->len;
}

const char *
bp_image_grid_get_caption (BpImageGrid *self, int index)
{
  g_return_val_if_fail (BP_IS_IMAGE_GRID (self), NULL);
  g_return_val_if_fail (index >= 0 && (guint) index < self->items->len, NULL);
  return g_array_index (self->items, Item, index).caption;
}

gboolean
bp_image_grid_get_wrong (BpImageGrid *self, int index)
{
  g_return_val_if_fail (BP_IS_IMAGE_GRID (self), FALSE);
  g_return_val_if_fail (index >= 0 && (guint) index < self->items->len, FALSE);
  return g_array_index (self->items, Item, index).wrong;
}

int
bp_image_grid_get_columns (BpImageGrid *self)
{
  g_return_val_if_fail (BP_IS_IMAGE_GRID (self), 0);
  return self->columns;
}

void
bp_image_grid_set_columns (BpImageGrid *self, int columns)
{
  g_return_if_fail (BP_IS_IMAGE_GRID (self));
  columns = CLAMP (columns, 1, 64);
  if (self->columns == columns)
    return;
  self->columns = columns;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_COLUMNS]);
  gtk_widget_queue_resize (GTK_WIDGET (self));
}
