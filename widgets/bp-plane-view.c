/* bp-plane-view.c: BpPlaneView, a GtkDrawingArea that draws a BpPlane (bp-plane-draw.c) from
 * copies of its data and reads out the point under the pointer. */
#include "config.h"

#include "bp-plane-view.h"

#include <glib/gi18n-lib.h>
#include <math.h>
#include <string.h>

#include "bp-plane-draw.h"

typedef struct {
  GArray *xy; /* double pairs */
  char *label;
  GdkRGBA color;
} Path;

struct _BpPlaneView {
  GtkDrawingArea parent_instance;
  double x0, x1, y0, y1;
  gboolean equal_aspect;
  char *title, *placeholder;
  int size, n_classes;
  float *field;   /* size x size, or NULL */
  gboolean field_log;
  float *probs;   /* size x size x n_classes, or NULL */
  int64_t n_points;
  float *points, *point_classes;
  GArray *marks;  /* double pairs */
  GArray *paths;  /* Path */
  BpPlanePath *draw_paths;
  guint n_updates;
  PangoLayout *layout;
  BpPlaneGeometry geometry; /* as last drawn */
};

G_DEFINE_FINAL_TYPE (BpPlaneView, bp_plane_view, GTK_TYPE_DRAWING_AREA)

static void
plane_of (BpPlaneView *self, BpPlane *p)
{
  bp_plane_init (p);
  p->x0 = self->x0;
  p->x1 = self->x1;
  p->y0 = self->y0;
  p->y1 = self->y1;
  p->equal_aspect = self->equal_aspect;
  p->title = self->title;
  p->empty_text = self->placeholder;
  p->field_size = self->size;
  p->field = self->field;
  p->field_log = self->field_log;
  p->n_classes = self->n_classes;
  p->probs = self->probs;
  p->n_points = self->n_points;
  p->points = self->points;
  p->point_classes = self->point_classes;
  p->n_marks = (int) (self->marks->len / 2);
  p->marks = (const double *) (void *) self->marks->data;
  self->draw_paths = g_renew (BpPlanePath, self->draw_paths, MAX (1, self->paths->len));
  for (guint k = 0; k < self->paths->len; k++) {
    const Path *src = &g_array_index (self->paths, Path, k);
    BpPlanePath *d = &self->draw_paths[k];
    d->xy = (const double *) (void *) src->xy->data;
    d->n = (int) (src->xy->len / 2);
    d->rgba[0] = src->color.red;
    d->rgba[1] = src->color.green;
    d->rgba[2] = src->color.blue;
    d->rgba[3] = src->color.alpha;
    d->label = src->label;
  }
  p->n_paths = (int) self->paths->len;
  p->paths = self->draw_paths;
}

static void
draw (GtkDrawingArea *area, cairo_t *cr, int width, int height, gpointer data)
{
  BpPlaneView *self = BP_PLANE_VIEW (area);
  if (!self->layout) {
    self->layout = gtk_widget_create_pango_layout (GTK_WIDGET (self), NULL);
    PangoAttrList *attrs = pango_attr_list_new ();
    pango_attr_list_insert (attrs, pango_attr_scale_new (PANGO_SCALE_SMALL));
    pango_layout_set_attributes (self->layout, attrs);
    pango_attr_list_unref (attrs);
  }
  BpPlane p;
  plane_of (self, &p);
  GdkRGBA fg;
  gtk_style_context_get_color (gtk_widget_get_style_context (GTK_WIDGET (self)), &fg);
  p.fg[0] = fg.red, p.fg[1] = fg.green, p.fg[2] = fg.blue, p.fg[3] = fg.alpha;
  bp_plane_draw (cr, self->layout, &p, width, height, &self->geometry);
}

char *
bp_plane_view_describe_point (BpPlaneView *self, double px, double py)
{
  g_return_val_if_fail (BP_IS_PLANE_VIEW (self), NULL);
  const BpPlaneGeometry *g = &self->geometry;
  if (g->width <= 0 || px < g->left || py < g->top || px > g->left + g->width ||
      py > g->top + g->height)
    return NULL;
  BpPlane p;
  plane_of (self, &p);
  double x, y;
  bp_plane_from_pixel (&p, g, px, py, &x, &y);
  int j = CLAMP ((int) ((x - self->x0) / (self->x1 - self->x0) * self->size), 0, self->size - 1);
  int i = CLAMP ((int) ((y - self->y0) / (self->y1 - self->y0) * self->size), 0, self->size - 1);
  size_t cell = (size_t) i * (size_t) self->size + (size_t) j;
  if (self->field)
    /* TRANSLATORS: a point of the plane and the function's value there */
    return g_strdup_printf (_("x = %.3g, y = %.3g: f = %.4g"), x, y, self->field[cell]);
  if (self->probs) {
    int best = 0;
    for (int c = 1; c < self->n_classes; c++)
      if (self->probs[cell * self->n_classes + c] > self->probs[cell * self->n_classes + best])
        best = c;
    /* TRANSLATORS: a point of the plane, the class the model predicts there and how sure */
    return g_strdup_printf (_("x = %.3g, y = %.3g: class %d (%.0f%%)"), x, y, best,
                            100.0 * self->probs[cell * self->n_classes + best]);
  }
  return g_strdup_printf ("x = %.3g, y = %.3g", x, y);
}

static gboolean
query_tooltip (GtkWidget *widget, int x, int y, gboolean keyboard, GtkTooltip *tooltip,
               gpointer data)
{
  g_autofree char *text = bp_plane_view_describe_point (BP_PLANE_VIEW (widget), x, y);
  if (!text)
    return FALSE;
  gtk_tooltip_set_text (tooltip, text);
  return TRUE;
}

static void
changed (BpPlaneView *self)
{
  self->n_updates++;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

static void
path_clear (gpointer p)
{
  Path *path = p;
  g_array_unref (path->xy);
  g_free (path->label);
}

static void
bp_plane_view_finalize (GObject *object)
{
  BpPlaneView *self = BP_PLANE_VIEW (object);
  g_free (self->title);
  g_free (self->placeholder);
  g_free (self->field);
  g_free (self->probs);
  g_free (self->points);
  g_free (self->point_classes);
  g_array_unref (self->marks);
  g_array_unref (self->paths);
  g_free (self->draw_paths);
  g_clear_object (&self->layout);
  G_OBJECT_CLASS (bp_plane_view_parent_class)->finalize (object);
}

static void
bp_plane_view_class_init (BpPlaneViewClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = bp_plane_view_finalize;
}

static void
bp_plane_view_init (BpPlaneView *self)
{
  self->x0 = self->y0 = -1.0;
  self->x1 = self->y1 = 1.0;
  self->equal_aspect = TRUE;
  self->marks = g_array_new (FALSE, FALSE, sizeof (double));
  self->paths = g_array_new (FALSE, TRUE, sizeof (Path));
  g_array_set_clear_func (self->paths, path_clear);
  gtk_drawing_area_set_content_width (GTK_DRAWING_AREA (self), 420);
  gtk_drawing_area_set_content_height (GTK_DRAWING_AREA (self), 300);
  gtk_drawing_area_set_draw_func (GTK_DRAWING_AREA (self), draw, NULL, NULL);
  gtk_widget_set_has_tooltip (GTK_WIDGET (self), TRUE);
  g_signal_connect (self, "query-tooltip", G_CALLBACK (query_tooltip), NULL);
}

GtkWidget *
bp_plane_view_new (void)
{
  return g_object_new (BP_TYPE_PLANE_VIEW, NULL);
}

void
bp_plane_view_set_region (BpPlaneView *self, double x0, double x1, double y0, double y1,
                          gboolean equal_aspect)
{
  g_return_if_fail (BP_IS_PLANE_VIEW (self));
  g_return_if_fail (x1 > x0 && y1 > y0);
  self->x0 = x0;
  self->x1 = x1;
  self->y0 = y0;
  self->y1 = y1;
  self->equal_aspect = equal_aspect;
  changed (self);
}

void
bp_plane_view_get_region (BpPlaneView *self, double *x0, double *x1, double *y0, double *y1)
{
  g_return_if_fail (BP_IS_PLANE_VIEW (self));
  *x0 = self->x0;
  *x1 = self->x1;
  *y0 = self->y0;
  *y1 = self->y1;
}

void
bp_plane_view_set_title (BpPlaneView *self, const char *title)
{
  g_return_if_fail (BP_IS_PLANE_VIEW (self));
  g_free (self->title);
  self->title = g_strdup (title);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
bp_plane_view_set_placeholder (BpPlaneView *self, const char *text)
{
  g_return_if_fail (BP_IS_PLANE_VIEW (self));
  g_free (self->placeholder);
  self->placeholder = g_strdup (text);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
bp_plane_view_set_field (BpPlaneView *self, int size, const float *values, gboolean log)
{
  g_return_if_fail (BP_IS_PLANE_VIEW (self));
  g_clear_pointer (&self->field, g_free);
  g_clear_pointer (&self->probs, g_free);
  self->size = values && size > 1 ? size : 0;
  if (self->size)
    self->field = g_memdup2 (values, sizeof (float) * (gsize) size * (gsize) size);
  self->field_log = log;
  changed (self);
}

void
bp_plane_view_set_classes (BpPlaneView *self, int size, int n_classes, const float *probs)
{
  g_return_if_fail (BP_IS_PLANE_VIEW (self));
  g_clear_pointer (&self->field, g_free);
  g_clear_pointer (&self->probs, g_free);
  self->size = probs && size > 1 && n_classes > 0 ? size : 0;
  self->n_classes = self->size ? n_classes : 0;
  if (self->size)
    self->probs = g_memdup2 (probs, sizeof (float) * (gsize) size * (gsize) size *
                                      (gsize) n_classes);
  changed (self);
}

void
bp_plane_view_set_points (BpPlaneView *self, int64_t n, const float *xy, const float *classes)
{
  g_return_if_fail (BP_IS_PLANE_VIEW (self));
  g_clear_pointer (&self->points, g_free);
  g_clear_pointer (&self->point_classes, g_free);
  self->n_points = xy && n > 0 ? n : 0;
  if (self->n_points) {
    self->points = g_memdup2 (xy, sizeof (float) * 2 * (gsize) n);
    if (classes)
      self->point_classes = g_memdup2 (classes, sizeof (float) * (gsize) n);
  }
  changed (self);
}

void
bp_plane_view_set_marks (BpPlaneView *self, int n, const double *xy)
{
  g_return_if_fail (BP_IS_PLANE_VIEW (self));
  g_array_set_size (self->marks, 0);
  if (xy && n > 0)
    g_array_append_vals (self->marks, xy, 2 * (guint) n);
  changed (self);
}

int
bp_plane_view_add_path (BpPlaneView *self, const char *label, const GdkRGBA *color)
{
  g_return_val_if_fail (BP_IS_PLANE_VIEW (self) && color != NULL, -1);
  Path p = {g_array_new (FALSE, FALSE, sizeof (double)), g_strdup (label), *color};
  g_array_append_val (self->paths, p);
  changed (self);
  return (int) self->paths->len - 1;
}

void
bp_plane_view_path_append (BpPlaneView *self, int path, double x, double y)
{
  g_return_if_fail (BP_IS_PLANE_VIEW (self));
  g_return_if_fail (path >= 0 && (guint) path < self->paths->len);
  Path *p = &g_array_index (self->paths, Path, path);
  double xy[2] = {x, y};
  g_array_append_vals (p->xy, xy, 2);
  changed (self);
}

void
bp_plane_view_clear_paths (BpPlaneView *self)
{
  g_return_if_fail (BP_IS_PLANE_VIEW (self));
  g_array_set_size (self->paths, 0);
  changed (self);
}

int
bp_plane_view_get_n_paths (BpPlaneView *self)
{
  g_return_val_if_fail (BP_IS_PLANE_VIEW (self), 0);
  return (int) self->paths->len;
}

int
bp_plane_view_get_path_length (BpPlaneView *self, int path)
{
  g_return_val_if_fail (BP_IS_PLANE_VIEW (self), 0);
  g_return_val_if_fail (path >= 0 && (guint) path < self->paths->len, 0);
  return (int) (g_array_index (self->paths, Path, path).xy->len / 2);
}

guint
bp_plane_view_get_n_updates (BpPlaneView *self)
{
  g_return_val_if_fail (BP_IS_PLANE_VIEW (self), 0);
  return self->n_updates;
}
