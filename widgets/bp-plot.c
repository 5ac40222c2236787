/* bp-plot.c: BpPlot, a line chart drawn with Cairo from BpSeries models (data apart from drawing). */
#include "config.h"

#include "bp-plot.h"

#include <glib/gi18n-lib.h>
#include <math.h>
#include <string.h>

#define MARGIN_LEFT 62.0
#define MARGIN_RIGHT 14.0
#define MARGIN_TOP 10.0
#define MARGIN_BOTTOM 40.0
#define DRAG_MIN 6.0
#define MAX_SMOOTHING 0.99

struct _BpPlot {
  GtkWidget parent_instance;

  GtkWidget *header, *footer;
  GtkWidget *title_label;
  GtkAdjustment *smoothing_adjustment;
  GtkWidget *smoothing_label, *smoothing_scale;
  GtkWidget *canvas;

  GPtrArray *series; /* BpSeries */
  char *title, *x_label, *y_label;
  double smoothing;
  gboolean log_scale;

  /* zoom rectangle, in the transformed space (y is log10 y on a log scale) */
  gboolean zoomed;
  double zx0, zx1, zy0, zy1;

  gboolean hovering;
  double hover_px, hover_py;
  gboolean dragging;
  double drag_x0, drag_y0, drag_x1, drag_y1;

  gboolean has_marker;
  double marker_x;
  char *marker_label;

  GtkFileChooserNative *chooser;
  gboolean chooser_png;
};

G_DEFINE_FINAL_TYPE (BpPlot, bp_plot, GTK_TYPE_WIDGET)

enum { PROP_0, PROP_TITLE, PROP_SMOOTHING, PROP_LOG_SCALE, PROP_ZOOMED, N_PROPS };
static GParamSpec *properties[N_PROPS];

enum { EXPORTED, N_SIGNALS };
static guint signals[N_SIGNALS];

/* The mapping between data and pixels for one drawing size. */
typedef struct {
  double x0, x1, y0, y1;           /* visible range (y transformed) */
  double left, top, right, bottom; /* plot area in pixels */
} View;

typedef struct {
  GdkRGBA fg, bg;
  gboolean fill_bg;
} Colors;

static gboolean
transform_y (BpPlot *self, double y, double *ty)
{
  if (!isfinite (y))
    return FALSE;
  if (self->log_scale) {
    if (y <= 0.0)
      return FALSE;
    *ty = log10 (y);
  } else {
    *ty = y;
  }
  return TRUE;
}

static double
untransform_y (BpPlot *self, double ty)
{
  return self->log_scale ? pow (10.0, ty) : ty;
}

/* The automatic range around every point (and the marker). Returns FALSE with no points. */
static gboolean
data_range (BpPlot *self, double *x0, double *x1, double *y0, double *y1)
{
  gboolean any = FALSE;
  *x0 = *y0 = INFINITY;
  *x1 = *y1 = -INFINITY;
  for (guint s = 0; s < self->series->len; s++) {
    BpSeries *series = g_ptr_array_index (self->series, s);
    const double *xs = bp_series_get_xs (series), *ys = bp_series_get_ys (series);
    for (guint i = 0; i < bp_series_get_n_points (series); i++) {
      double ty;
      if (!isfinite (xs[i]) || !transform_y (self, ys[i], &ty))
        continue;
      any = TRUE;
      *x0 = MIN (*x0, xs[i]);
      *x1 = MAX (*x1, xs[i]);
      *y0 = MIN (*y0, ty);
      *y1 = MAX (*y1, ty);
    }
  }
  if (self->has_marker && isfinite (self->marker_x) && any) {
    *x0 = MIN (*x0, self->marker_x);
    *x1 = MAX (*x1, self->marker_x);
  }
  if (!any) {
    *x0 = 0.0, *x1 = 1.0, *y0 = 0.0, *y1 = 1.0;
    return FALSE;
  }
  if (*x1 - *x0 < 1e-12) {
    *x0 -= 0.5;
    *x1 += 0.5;
  }
  double pad = (*y1 - *y0) * 0.05;
  if (pad < 1e-12)
    pad = self->log_scale ? 0.5 : *y0 != 0.0 ? fabs (*y0) * 0.1 : 0.5;
  *y0 -= pad;
  *y1 += pad;
  return TRUE;
}

static void
compute_view (BpPlot *self, double width, double height, View *v)
{
  if (self->zoomed) {
    v->x0 = self->zx0, v->x1 = self->zx1, v->y0 = self->zy0, v->y1 = self->zy1;
  } else {
    data_range (self, &v->x0, &v->x1, &v->y0, &v->y1);
  }
  v->left = MARGIN_LEFT;
  v->top = MARGIN_TOP;
  v->right = MAX (v->left + 1.0, width - MARGIN_RIGHT);
  v->bottom = MAX (v->top + 1.0, height - MARGIN_BOTTOM);
}

static double
px_x (const View *v, double x)
{
  return v->left + (x - v->x0) / (v->x1 - v->x0) * (v->right - v->left);
}

static double
px_y (const View *v, double ty)
{
  return v->bottom - (ty - v->y0) / (v->y1 - v->y0) * (v->bottom - v->top);
}

static double
data_x (const View *v, double px)
{
  return v->x0 + (px - v->left) / (v->right - v->left) * (v->x1 - v->x0);
}

static double
data_ty (const View *v, double py)
{
  return v->y0 + (v->bottom - py) / (v->bottom - v->top) * (v->y1 - v->y0);
}

/* A 1-2-5 step that gives about `target` ticks over the range. */
static double
nice_step (double range, int target)
{
  double raw = range / MAX (target, 1);
  double mag = pow (10.0, floor (log10 (raw)));
  double f = raw / mag;
  return (f < 1.5 ? 1.0 : f < 3.5 ? 2.0 : f < 7.5 ? 5.0 : 10.0) * mag;
}

static char *
format_value (double v)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  if (v != 0.0 && (fabs (v) < 1e-3 || fabs (v) >= 1e5))
    return g_strdup (g_ascii_formatd (buf, sizeof buf, "%.2e", v));
  return g_strdup (g_ascii_formatd (buf, sizeof buf, "%.4g", v));
}

/* A tick label: decimals enough for the step, or scientific notation for tiny or huge values. */
static char *
format_tick (double v, double step)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE], fmt[16];
  if (fabs (v) < step * 1e-9)
    v = 0.0;
  if (step < 1e-4 || fabs (v) >= 1e5)
    return g_strdup (g_ascii_formatd (buf, sizeof buf, "%.2e", v));
  int decimals = CLAMP ((int) -floor (log10 (step) + 1e-9), 0, 6);
  g_snprintf (fmt, sizeof fmt, "%%.%df", decimals);
  return g_strdup (g_ascii_formatd (buf, sizeof buf, fmt, v));
}

static PangoLayout *
make_layout (BpPlot *self, cairo_t *cr, double scale)
{
  PangoLayout *layout = pango_cairo_create_layout (cr);
  const PangoFontDescription *base =
    pango_context_get_font_description (gtk_widget_get_pango_context (GTK_WIDGET (self)));
  PangoFontDescription *desc = pango_font_description_copy (base);
  int size = pango_font_description_get_size (desc);
  if (size <= 0)
    size = 10 * PANGO_SCALE;
  if (pango_font_description_get_size_is_absolute (desc))
    pango_font_description_set_absolute_size (desc, size * scale);
  else
    pango_font_description_set_size (desc, (int) (size * scale));
  pango_layout_set_font_description (layout, desc);
  pango_font_description_free (desc);
  return layout;
}

/* Draws text with its (ax, ay) anchor (0..1 of its extent) at (x, y). */
static void
draw_text (cairo_t *cr, PangoLayout *layout, const char *text, double x, double y, double ax,
           double ay)
{
  int w, h;
  pango_layout_set_text (layout, text, -1);
  pango_layout_get_pixel_size (layout, &w, &h);
  cairo_move_to (cr, x - ax * w, y - ay * h);
  pango_cairo_show_layout (cr, layout);
}

static void
set_color (cairo_t *cr, const GdkRGBA *c, double alpha)
{
  cairo_set_source_rgba (cr, c->red, c->green, c->blue, c->alpha * alpha);
}

/* One polyline through the finite points, broken at gaps (NaN, or y <= 0 on a log scale). */
static void
draw_line (BpPlot *self, cairo_t *cr, const View *v, guint n, const double *xs, const double *ys)
{
  gboolean pen = FALSE;
  for (guint i = 0; i < n; i++) {
    double ty;
    if (!isfinite (xs[i]) || !transform_y (self, ys[i], &ty)) {
      pen = FALSE;
      continue;
    }
    double x = px_x (v, xs[i]), y = px_y (v, ty);
    if (pen)
      cairo_line_to (cr, x, y);
    else
      cairo_move_to (cr, x, y);
    pen = TRUE;
  }
  cairo_stroke (cr);
}

static void
draw_markers (BpPlot *self, cairo_t *cr, const View *v, guint n, const double *xs,
              const double *ys)
{
  for (guint i = 0; i < n; i++) {
    double ty;
    if (!isfinite (xs[i]) || !transform_y (self, ys[i], &ty))
      continue;
    cairo_new_sub_path (cr);
    cairo_arc (cr, px_x (v, xs[i]), px_y (v, ty), 3.0, 0, 2 * G_PI);
  }
  cairo_fill (cr);
}

static void
draw_axes (BpPlot *self, cairo_t *cr, const View *v, const Colors *colors, PangoLayout *layout)
{
  cairo_set_line_width (cr, 1.0);
  /* x ticks */
  double step = nice_step (v->x1 - v->x0, MAX (2, (int) ((v->right - v->left) / 90.0)));
  for (double x = ceil (v->x0 / step) * step; x <= v->x1 + step * 1e-6; x += step) {
    double px = round (px_x (v, x)) + 0.5;
    set_color (cr, &colors->fg, 0.1);
    cairo_move_to (cr, px, v->top);
    cairo_line_to (cr, px, v->bottom);
    cairo_stroke (cr);
    g_autofree char *label = format_tick (x, step);
    set_color (cr, &colors->fg, 0.7);
    draw_text (cr, layout, label, px, v->bottom + 3, 0.5, 0.0);
  }
  /* y ticks: on a log scale at 1-2-5 steps of the exponent, labelled with the value */
  double ystep = nice_step (v->y1 - v->y0, MAX (2, (int) ((v->bottom - v->top) / 45.0)));
  if (self->log_scale && ystep < 1.0 && v->y1 - v->y0 >= 2.0)
    ystep = 1.0;
  for (double ty = ceil (v->y0 / ystep) * ystep; ty <= v->y1 + ystep * 1e-6; ty += ystep) {
    double py = round (px_y (v, ty)) + 0.5;
    set_color (cr, &colors->fg, 0.1);
    cairo_move_to (cr, v->left, py);
    cairo_line_to (cr, v->right, py);
    cairo_stroke (cr);
    double value = fabs (ty) < ystep * 1e-9 ? 0.0 : ty;
    g_autofree char *label = self->log_scale ? format_value (untransform_y (self, value))
                                             : format_tick (value, ystep);
    set_color (cr, &colors->fg, 0.7);
    draw_text (cr, layout, label, v->left - 5, py, 1.0, 0.5);
  }
  /* frame and axis titles */
  set_color (cr, &colors->fg, 0.35);
  cairo_rectangle (cr, v->left + 0.5, v->top + 0.5, v->right - v->left - 1, v->bottom - v->top - 1);
  cairo_stroke (cr);
  set_color (cr, &colors->fg, 0.8);
  if (self->x_label)
    draw_text (cr, layout, self->x_label, (v->left + v->right) / 2, v->bottom + 20, 0.5, 0.0);
  if (self->y_label) {
    cairo_save (cr);
    cairo_translate (cr, 4, (v->top + v->bottom) / 2);
    cairo_rotate (cr, -G_PI / 2);
    draw_text (cr, layout, self->y_label, 0, 0, 0.5, 0.0);
    cairo_restore (cr);
  }
}

static void
draw_legend (BpPlot *self, cairo_t *cr, const View *v, const Colors *colors, PangoLayout *layout)
{
  int max_w = 0, line_h = 0;
  for (guint s = 0; s < self->series->len; s++) {
    int w, h;
    pango_layout_set_text (layout, bp_series_get_name (g_ptr_array_index (self->series, s)), -1);
    pango_layout_get_pixel_size (layout, &w, &h);
    max_w = MAX (max_w, w);
    line_h = MAX (line_h, h);
  }
  if (self->series->len == 0)
    return;
  double bw = max_w + 34, bh = line_h * self->series->len + 8;
  double bx = v->right - bw - 6, by = v->top + 6;
  GdkRGBA back = colors->fill_bg ? colors->bg : (GdkRGBA) {0.5, 0.5, 0.5, 0.12};
  set_color (cr, &back, colors->fill_bg ? 0.85 : 1.0);
  cairo_rectangle (cr, bx, by, bw, bh);
  cairo_fill (cr);
  for (guint s = 0; s < self->series->len; s++) {
    BpSeries *series = g_ptr_array_index (self->series, s);
    double y = by + 4 + line_h * (s + 0.5);
    set_color (cr, bp_series_get_color (series), 1.0);
    cairo_set_line_width (cr, 2.0);
    cairo_move_to (cr, bx + 6, y);
    cairo_line_to (cr, bx + 24, y);
    cairo_stroke (cr);
    if (bp_series_get_markers (series)) {
      cairo_arc (cr, bx + 15, y, 3.0, 0, 2 * G_PI);
      cairo_fill (cr);
    }
    set_color (cr, &colors->fg, 0.9);
    draw_text (cr, layout, bp_series_get_name (series), bx + 30, y, 0.0, 0.5);
  }
}

static void
draw_readout (BpPlot *self, cairo_t *cr, const View *v, const Colors *colors, PangoLayout *layout)
{
  double x = data_x (v, self->hover_px);
  g_autofree char *text = bp_plot_get_readout (self, x);
  if (!text)
    return;
  /* guide line and the nearest point of each series */
  double gx = -1;
  for (guint s = 0; s < self->series->len; s++) {
    BpSeries *series = g_ptr_array_index (self->series, s);
    int i = bp_series_find_nearest (series, x);
    double ty;
    if (i < 0 || !transform_y (self, bp_series_get_ys (series)[i], &ty))
      continue;
    double px = px_x (v, bp_series_get_xs (series)[i]);
    if (gx < 0)
      gx = px;
    set_color (cr, bp_series_get_color (series), 1.0);
    cairo_arc (cr, px, px_y (v, ty), 4.0, 0, 2 * G_PI);
    cairo_fill (cr);
  }
  set_color (cr, &colors->fg, 0.4);
  cairo_set_line_width (cr, 1.0);
  cairo_move_to (cr, round (self->hover_px) + 0.5, v->top);
  cairo_line_to (cr, round (self->hover_px) + 0.5, v->bottom);
  cairo_stroke (cr);

  int w, h;
  pango_layout_set_text (layout, text, -1);
  pango_layout_get_pixel_size (layout, &w, &h);
  double bx = self->hover_px + 12, by = v->top + 8;
  if (bx + w + 12 > v->right)
    bx = self->hover_px - w - 20;
  cairo_rectangle (cr, bx, by, w + 10, h + 8);
  set_color (cr, &colors->fg, 0.85);
  cairo_fill (cr);
  GdkRGBA inverse = {1.0 - colors->fg.red, 1.0 - colors->fg.green, 1.0 - colors->fg.blue, 1.0};
  set_color (cr, &inverse, 1.0);
  cairo_move_to (cr, bx + 5, by + 4);
  pango_cairo_show_layout (cr, layout);
}

/* Draws the whole chart into a width x height area; shared by the widget and the PNG export. */
static void
bp_plot_draw (BpPlot *self, cairo_t *cr, int width, int height, const Colors *colors,
              gboolean interactive)
{
  View v;
  compute_view (self, width, height, &v);
  if (colors->fill_bg) {
    set_color (cr, &colors->bg, 1.0);
    cairo_paint (cr);
  }
  PangoLayout *layout = make_layout (self, cr, 0.85);
  draw_axes (self, cr, &v, colors, layout);

  gboolean any = FALSE;
  cairo_save (cr);
  cairo_rectangle (cr, v.left, v.top, v.right - v.left, v.bottom - v.top);
  cairo_clip (cr);
  cairo_set_line_join (cr, CAIRO_LINE_JOIN_ROUND);
  for (guint s = 0; s < self->series->len; s++) {
    BpSeries *series = g_ptr_array_index (self->series, s);
    guint n = bp_series_get_n_points (series);
    const double *xs = bp_series_get_xs (series), *ys = bp_series_get_ys (series);
    if (n == 0)
      continue;
    any = TRUE;
    const GdkRGBA *c = bp_series_get_color (series);
    gboolean smooth = self->smoothing > 0.0 && bp_series_get_smooth (series) && n > 1;
    cairo_set_line_width (cr, 1.5);
    set_color (cr, c, smooth ? 0.25 : 1.0);
    draw_line (self, cr, &v, n, xs, ys);
    if (smooth) {
      double *sm = g_new (double, n);
      bp_series_smooth (series, self->smoothing, sm);
      cairo_set_line_width (cr, 2.0);
      set_color (cr, c, 1.0);
      draw_line (self, cr, &v, n, xs, sm);
      g_free (sm);
    }
    if (bp_series_get_markers (series)) {
      set_color (cr, c, 1.0);
      draw_markers (self, cr, &v, n, xs, ys);
    }
  }
  if (self->has_marker) {
    static const double dash[] = {5.0, 4.0};
    double px = round (px_x (&v, self->marker_x)) + 0.5;
    GdkRGBA red = {0.88, 0.11, 0.14, 1.0};
    set_color (cr, &red, 1.0);
    cairo_set_line_width (cr, 1.5);
    cairo_set_dash (cr, dash, 2, 0);
    cairo_move_to (cr, px, v.top);
    cairo_line_to (cr, px, v.bottom);
    cairo_stroke (cr);
    cairo_set_dash (cr, NULL, 0, 0);
    if (self->marker_label)
      draw_text (cr, layout, self->marker_label, px - 4, v.bottom - 4, 1.0, 1.0);
  }
  if (interactive && self->dragging) {
    GdkRGBA accent = {0.21, 0.52, 0.89, 1.0};
    double x0 = MIN (self->drag_x0, self->drag_x1), y0 = MIN (self->drag_y0, self->drag_y1);
    double w = fabs (self->drag_x1 - self->drag_x0), h = fabs (self->drag_y1 - self->drag_y0);
    if (h < DRAG_MIN) /* a horizontal drag zooms x only */
      y0 = v.top, h = v.bottom - v.top;
    set_color (cr, &accent, 0.15);
    cairo_rectangle (cr, x0, y0, w, h);
    cairo_fill_preserve (cr);
    set_color (cr, &accent, 0.8);
    cairo_set_line_width (cr, 1.0);
    cairo_stroke (cr);
  }
  cairo_restore (cr);

  if (!any) {
    set_color (cr, &colors->fg, 0.5);
    draw_text (cr, layout, _("No data yet"), (v.left + v.right) / 2, (v.top + v.bottom) / 2, 0.5,
               0.5);
  } else {
    draw_legend (self, cr, &v, colors, layout);
    if (interactive && self->hovering && !self->dragging && self->hover_px >= v.left &&
        self->hover_px <= v.right)
      draw_readout (self, cr, &v, colors, layout);
  }
  g_object_unref (layout);
}

static void
canvas_draw (GtkDrawingArea *area, cairo_t *cr, int width, int height, gpointer data)
{
  BpPlot *self = BP_PLOT (data);
  Colors colors = {.fill_bg = FALSE};
  gtk_style_context_get_color (gtk_widget_get_style_context (GTK_WIDGET (self)), &colors.fg);
  bp_plot_draw (self, cr, width, height, &colors, TRUE);
}

static void
queue_canvas_draw (BpPlot *self)
{
  gtk_widget_queue_draw (self->canvas);
}

static void
current_view (BpPlot *self, View *v)
{
  compute_view (self, gtk_widget_get_width (self->canvas), gtk_widget_get_height (self->canvas), v);
}

static void
set_zoom (BpPlot *self, double x0, double x1, double ty0, double ty1)
{
  if (!(x1 - x0 > 1e-12) || !(ty1 - ty0 > 1e-12) || !isfinite (x0 + x1 + ty0 + ty1))
    return;
  gboolean was = self->zoomed;
  self->zoomed = TRUE;
  self->zx0 = x0, self->zx1 = x1, self->zy0 = ty0, self->zy1 = ty1;
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "plot.reset-zoom", TRUE);
  if (!was)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ZOOMED]);
  queue_canvas_draw (self);
}

/* ---- input ---- */

static void
motion_cb (GtkEventControllerMotion *controller, double x, double y, BpPlot *self)
{
  self->hovering = TRUE;
  self->hover_px = x;
  self->hover_py = y;
  queue_canvas_draw (self);
}

static void
leave_cb (GtkEventControllerMotion *controller, BpPlot *self)
{
  self->hovering = FALSE;
  queue_canvas_draw (self);
}

static void
drag_begin_cb (GtkGestureDrag *gesture, double x, double y, BpPlot *self)
{
  self->dragging = TRUE;
  self->drag_x0 = self->drag_x1 = x;
  self->drag_y0 = self->drag_y1 = y;
}

static void
drag_update_cb (GtkGestureDrag *gesture, double dx, double dy, BpPlot *self)
{
  self->drag_x1 = self->drag_x0 + dx;
  self->drag_y1 = self->drag_y0 + dy;
  queue_canvas_draw (self);
}

static void
drag_end_cb (GtkGestureDrag *gesture, double dx, double dy, BpPlot *self)
{
  self->dragging = FALSE;
  queue_canvas_draw (self);
  if (fabs (dx) < DRAG_MIN)
    return;
  View v;
  current_view (self, &v);
  double xa = data_x (&v, self->drag_x0), xb = data_x (&v, self->drag_x0 + dx);
  double ya = v.y0, yb = v.y1;
  if (fabs (dy) >= DRAG_MIN) {
    ya = data_ty (&v, self->drag_y0 + dy);
    yb = data_ty (&v, self->drag_y0);
  }
  set_zoom (self, MIN (xa, xb), MAX (xa, xb), MIN (ya, yb), MAX (ya, yb));
}

static gboolean
scroll_cb (GtkEventControllerScroll *controller, double dx, double dy, BpPlot *self)
{
  if (dy == 0.0)
    return FALSE;
  View v;
  current_view (self, &v);
  double cx = self->hovering ? data_x (&v, self->hover_px) : (v.x0 + v.x1) / 2;
  double cy = self->hovering ? data_ty (&v, self->hover_py) : (v.y0 + v.y1) / 2;
  double f = pow (1.25, CLAMP (dy, -5.0, 5.0)); /* > 1 zooms out */
  set_zoom (self, cx - (cx - v.x0) * f, cx + (v.x1 - cx) * f, cy - (cy - v.y0) * f,
            cy + (v.y1 - cy) * f);
  return TRUE;
}

static void
click_cb (GtkGestureClick *gesture, int n_press, double x, double y, BpPlot *self)
{
  if (n_press == 2)
    bp_plot_reset_zoom (self);
}

/* ---- export actions ---- */

static void
chooser_response_cb (GtkNativeDialog *dialog, int response, BpPlot *self)
{
  if (response == GTK_RESPONSE_ACCEPT) {
    g_autoptr (GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
    g_autofree char *path = file ? g_file_get_path (file) : NULL;
    g_autoptr (GError) error = NULL;
    if (path) {
      gboolean ok = self->chooser_png ? bp_plot_export_png (self, path, 0, 0, &error)
                                      : bp_plot_export_csv (self, path, &error);
      g_signal_emit (self, signals[EXPORTED], 0, path, ok ? NULL : error);
    }
  }
  g_clear_object (&self->chooser);
}

static void
export_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  BpPlot *self = BP_PLOT (widget);
  gboolean png = g_str_equal (action_name, "plot.export-png");
  if (self->chooser)
    return;
  GtkRoot *root = gtk_widget_get_root (widget);
  self->chooser_png = png;
  self->chooser = gtk_file_chooser_native_new (png ? _("Export Chart as PNG")
                                                   : _("Export Chart Data as CSV"),
                                               GTK_IS_WINDOW (root) ? GTK_WINDOW (root) : NULL,
                                               GTK_FILE_CHOOSER_ACTION_SAVE, _("_Export"),
                                               _("_Cancel"));
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (self->chooser), TRUE);
  g_autofree char *base = g_strdup (self->title ? self->title : "chart");
  g_strdelimit (base, "/\\:", '-');
  g_autofree char *name = g_strconcat (base, png ? ".png" : ".csv", NULL);
  gtk_file_chooser_set_current_name (GTK_FILE_CHOOSER (self->chooser), name);
  g_signal_connect (self->chooser, "response", G_CALLBACK (chooser_response_cb), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (self->chooser));
}

static void
reset_zoom_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  bp_plot_reset_zoom (BP_PLOT (widget));
}

/* ---- GObject ---- */

static void
bp_plot_dispose (GObject *object)
{
  BpPlot *self = BP_PLOT (object);
  if (self->chooser) {
    gtk_native_dialog_destroy (GTK_NATIVE_DIALOG (self->chooser));
    g_clear_object (&self->chooser);
  }
  GtkWidget *child;
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self))))
    gtk_widget_unparent (child);
  self->header = self->footer = self->title_label = self->canvas = NULL;
  self->smoothing_label = self->smoothing_scale = NULL;
  if (self->series) {
    for (guint s = 0; s < self->series->len; s++)
      g_signal_handlers_disconnect_by_data (g_ptr_array_index (self->series, s), self);
    g_ptr_array_set_size (self->series, 0);
  }
  G_OBJECT_CLASS (bp_plot_parent_class)->dispose (object);
}

static void
bp_plot_finalize (GObject *object)
{
  BpPlot *self = BP_PLOT (object);
  g_ptr_array_unref (self->series);
  g_free (self->title);
  g_free (self->x_label);
  g_free (self->y_label);
  g_free (self->marker_label);
  G_OBJECT_CLASS (bp_plot_parent_class)->finalize (object);
}

static void
bp_plot_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  BpPlot *self = BP_PLOT (object);
  switch (prop_id) {
  case PROP_TITLE: g_value_set_string (value, self->title); break;
  case PROP_SMOOTHING: g_value_set_double (value, self->smoothing); break;
  case PROP_LOG_SCALE: g_value_set_boolean (value, self->log_scale); break;
  case PROP_ZOOMED: g_value_set_boolean (value, self->zoomed); break;
  default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
}

static void
bp_plot_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  BpPlot *self = BP_PLOT (object);
  switch (prop_id) {
  case PROP_TITLE: bp_plot_set_title (self, g_value_get_string (value)); break;
  case PROP_SMOOTHING: bp_plot_set_smoothing (self, g_value_get_double (value)); break;
  case PROP_LOG_SCALE: bp_plot_set_log_scale (self, g_value_get_boolean (value)); break;
  default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
}

static void
bp_plot_class_init (BpPlotClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = bp_plot_dispose;
  object_class->finalize = bp_plot_finalize;
  object_class->get_property = bp_plot_get_property;
  object_class->set_property = bp_plot_set_property;

  properties[PROP_TITLE] = g_param_spec_string ("title", NULL, NULL, NULL,
                                                G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY |
                                                G_PARAM_STATIC_STRINGS);
  properties[PROP_SMOOTHING] = g_param_spec_double ("smoothing", NULL, NULL, 0.0, MAX_SMOOTHING,
                                                    0.0,
                                                    G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY |
                                                    G_PARAM_STATIC_STRINGS);
  properties[PROP_LOG_SCALE] = g_param_spec_boolean ("log-scale", NULL, NULL, FALSE,
                                                     G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY |
                                                     G_PARAM_STATIC_STRINGS);
  properties[PROP_ZOOMED] = g_param_spec_boolean ("zoomed", NULL, NULL, FALSE,
                                                  G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /* An export from the chart's menu finished: the path, and the error or NULL. */
  signals[EXPORTED] = g_signal_new ("exported", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                                    NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_ERROR);

  gtk_widget_class_install_action (widget_class, "plot.reset-zoom", NULL, reset_zoom_action);
  gtk_widget_class_install_action (widget_class, "plot.export-png", NULL, export_action);
  gtk_widget_class_install_action (widget_class, "plot.export-csv", NULL, export_action);
  gtk_widget_class_install_property_action (widget_class, "plot.log-scale", "log-scale");

  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BOX_LAYOUT);
  gtk_widget_class_set_css_name (widget_class, "bp-plot");
}

static void
bp_plot_init (BpPlot *self)
{
  GtkWidget *widget = GTK_WIDGET (self);
  self->series = g_ptr_array_new_with_free_func (g_object_unref);
  GtkLayoutManager *layout = gtk_widget_get_layout_manager (widget);
  gtk_orientable_set_orientation (GTK_ORIENTABLE (layout), GTK_ORIENTATION_VERTICAL);
  gtk_box_layout_set_spacing (GTK_BOX_LAYOUT (layout), 4);

  /* header: title, smoothing, log scale, reset zoom, export */
  self->header = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
  gtk_widget_set_parent (self->header, widget);
  self->title_label = gtk_label_new (NULL);
  gtk_label_set_xalign (GTK_LABEL (self->title_label), 0.0);
  gtk_widget_set_hexpand (self->title_label, TRUE);
  gtk_widget_add_css_class (self->title_label, "heading");
  gtk_box_append (GTK_BOX (self->header), self->title_label);

  GtkWidget *log_button = gtk_toggle_button_new_with_label (_("Log"));
  gtk_actionable_set_action_name (GTK_ACTIONABLE (log_button), "plot.log-scale");
  gtk_widget_set_tooltip_text (log_button, _("Logarithmic y axis"));
  gtk_widget_add_css_class (log_button, "flat");
  gtk_box_append (GTK_BOX (self->header), log_button);

  GtkWidget *reset = gtk_button_new_from_icon_name ("zoom-original-symbolic");
  gtk_actionable_set_action_name (GTK_ACTIONABLE (reset), "plot.reset-zoom");
  gtk_widget_set_tooltip_text (reset, _("Reset zoom (drag to zoom in, scroll to zoom)"));
  gtk_widget_add_css_class (reset, "flat");
  gtk_box_append (GTK_BOX (self->header), reset);

  g_autoptr (GMenu) menu = g_menu_new ();
  g_menu_append (menu, _("Export as PNG…"), "plot.export-png");
  g_menu_append (menu, _("Export as CSV…"), "plot.export-csv");
  GtkWidget *export = gtk_menu_button_new ();
  gtk_menu_button_set_icon_name (GTK_MENU_BUTTON (export), "document-save-symbolic");
  gtk_menu_button_set_menu_model (GTK_MENU_BUTTON (export), G_MENU_MODEL (menu));
  gtk_widget_set_tooltip_text (export, _("Export"));
  gtk_widget_add_css_class (export, "flat");
  gtk_box_append (GTK_BOX (self->header), export);

  /* the chart */
  self->canvas = gtk_drawing_area_new ();
  gtk_widget_set_size_request (self->canvas, 180, 130);
  gtk_widget_set_hexpand (self->canvas, TRUE);
  gtk_widget_set_vexpand (self->canvas, TRUE);
  gtk_drawing_area_set_draw_func (GTK_DRAWING_AREA (self->canvas), canvas_draw, self, NULL);
  gtk_widget_set_parent (self->canvas, widget);

  /* footer: the smoothing slider */
  self->footer = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
  gtk_widget_set_parent (self->footer, widget);
  self->smoothing_label = gtk_label_new (_("Smoothing"));
  gtk_widget_add_css_class (self->smoothing_label, "dim-label");
  gtk_box_append (GTK_BOX (self->footer), self->smoothing_label);
  self->smoothing_adjustment = gtk_adjustment_new (0.0, 0.0, MAX_SMOOTHING, 0.01, 0.1, 0.0);
  GtkWidget *scale = self->smoothing_scale =
    gtk_scale_new (GTK_ORIENTATION_HORIZONTAL, self->smoothing_adjustment);
  gtk_scale_set_draw_value (GTK_SCALE (scale), TRUE);
  gtk_scale_set_value_pos (GTK_SCALE (scale), GTK_POS_RIGHT);
  gtk_scale_set_digits (GTK_SCALE (scale), 2);
  gtk_widget_set_hexpand (scale, TRUE);
  gtk_widget_set_tooltip_text (scale, _("Exponential moving average; the raw curve stays faintly behind"));
  gtk_box_append (GTK_BOX (self->footer), scale);
  g_object_bind_property (self->smoothing_adjustment, "value", self, "smoothing",
                          G_BINDING_BIDIRECTIONAL | G_BINDING_SYNC_CREATE);


  GtkEventController *motion = gtk_event_controller_motion_new ();
  g_signal_connect (motion, "motion", G_CALLBACK (motion_cb), self);
  g_signal_connect (motion, "leave", G_CALLBACK (leave_cb), self);
  gtk_widget_add_controller (self->canvas, motion);
  GtkGesture *drag = gtk_gesture_drag_new ();
  gtk_gesture_single_set_button (GTK_GESTURE_SINGLE (drag), GDK_BUTTON_PRIMARY);
  g_signal_connect (drag, "drag-begin", G_CALLBACK (drag_begin_cb), self);
  g_signal_connect (drag, "drag-update", G_CALLBACK (drag_update_cb), self);
  g_signal_connect (drag, "drag-end", G_CALLBACK (drag_end_cb), self);
  gtk_widget_add_controller (self->canvas, GTK_EVENT_CONTROLLER (drag));
  GtkGesture *click = gtk_gesture_click_new ();
  g_signal_connect (click, "pressed", G_CALLBACK (click_cb), self);
  gtk_widget_add_controller (self->canvas, GTK_EVENT_CONTROLLER (click));
  GtkEventController *scroll =
    gtk_event_controller_scroll_new (GTK_EVENT_CONTROLLER_SCROLL_VERTICAL);
  g_signal_connect (scroll, "scroll", G_CALLBACK (scroll_cb), self);
  gtk_widget_add_controller (self->canvas, scroll);

  gtk_widget_action_set_enabled (widget, "plot.reset-zoom", FALSE);
}

/* ---- public API ---- */

GtkWidget *
bp_plot_new (void)
{
  return g_object_new (BP_TYPE_PLOT, NULL);
}

void
bp_plot_add_series (BpPlot *self, BpSeries *series)
{
  g_return_if_fail (BP_IS_PLOT (self));
  g_return_if_fail (BP_IS_SERIES (series));
  g_ptr_array_add (self->series, g_object_ref (series));
  g_signal_connect_swapped (series, "changed", G_CALLBACK (queue_canvas_draw), self);
  queue_canvas_draw (self);
}

void
bp_plot_remove_all_series (BpPlot *self)
{
  g_return_if_fail (BP_IS_PLOT (self));
  for (guint s = 0; s < self->series->len; s++)
    g_signal_handlers_disconnect_by_data (g_ptr_array_index (self->series, s), self);
  g_ptr_array_set_size (self->series, 0);
  queue_canvas_draw (self);
}

guint
bp_plot_get_n_series (BpPlot *self)
{
  g_return_val_if_fail (BP_IS_PLOT (self), 0);
  return self->series->len;
}

BpSeries *
bp_plot_get_series (BpPlot *self, guint index)
{
  g_return_val_if_fail (BP_IS_PLOT (self), NULL);
  g_return_val_if_fail (index < self->series->len, NULL);
  return g_ptr_array_index (self->series, index);
}

const char *
bp_plot_get_title (BpPlot *self)
{
  g_return_val_if_fail (BP_IS_PLOT (self), NULL);
  return self->title;
}

void
bp_plot_set_title (BpPlot *self, const char *title)
{
  g_return_if_fail (BP_IS_PLOT (self));
  if (g_strcmp0 (self->title, title) == 0)
    return;
  g_free (self->title);
  self->title = g_strdup (title);
  gtk_label_set_text (GTK_LABEL (self->title_label), title ? title : "");
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_TITLE]);
}

gboolean
bp_plot_get_show_smoothing (BpPlot *self)
{
  g_return_val_if_fail (BP_IS_PLOT (self), FALSE);
  return gtk_widget_get_visible (self->footer);
}

void
bp_plot_set_show_smoothing (BpPlot *self, gboolean show)
{
  g_return_if_fail (BP_IS_PLOT (self));
  gtk_widget_set_visible (self->footer, show);
}

void
bp_plot_set_axis_labels (BpPlot *self, const char *x_label, const char *y_label)
{
  g_return_if_fail (BP_IS_PLOT (self));
  g_free (self->x_label);
  g_free (self->y_label);
  self->x_label = g_strdup (x_label);
  self->y_label = g_strdup (y_label);
  queue_canvas_draw (self);
}

double
bp_plot_get_smoothing (BpPlot *self)
{
  g_return_val_if_fail (BP_IS_PLOT (self), 0.0);
  return self->smoothing;
}

void
bp_plot_set_smoothing (BpPlot *self, double smoothing)
{
  g_return_if_fail (BP_IS_PLOT (self));
  smoothing = CLAMP (smoothing, 0.0, MAX_SMOOTHING);
  if (self->smoothing == smoothing)
    return;
  self->smoothing = smoothing;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SMOOTHING]);
  queue_canvas_draw (self);
}

gboolean
bp_plot_get_log_scale (BpPlot *self)
{
  g_return_val_if_fail (BP_IS_PLOT (self), FALSE);
  return self->log_scale;
}

void
bp_plot_set_log_scale (BpPlot *self, gboolean log_scale)
{
  g_return_if_fail (BP_IS_PLOT (self));
  log_scale = !!log_scale;
  if (self->log_scale == log_scale)
    return;
  self->log_scale = log_scale;
  bp_plot_reset_zoom (self); /* the zoom rectangle was in the other y space */
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LOG_SCALE]);
  queue_canvas_draw (self);
}

void
bp_plot_set_marker (BpPlot *self, double x, const char *label)
{
  g_return_if_fail (BP_IS_PLOT (self));
  self->has_marker = TRUE;
  self->marker_x = x;
  g_free (self->marker_label);
  self->marker_label = g_strdup (label);
  queue_canvas_draw (self);
}

void
bp_plot_clear_marker (BpPlot *self)
{
  g_return_if_fail (BP_IS_PLOT (self));
  self->has_marker = FALSE;
  g_clear_pointer (&self->marker_label, g_free);
  queue_canvas_draw (self);
}

void
bp_plot_zoom_to (BpPlot *self, double x0, double x1, double y0, double y1)
{
  g_return_if_fail (BP_IS_PLOT (self));
  double ty0, ty1;
  if (!transform_y (self, y0, &ty0) || !transform_y (self, y1, &ty1))
    return;
  set_zoom (self, MIN (x0, x1), MAX (x0, x1), MIN (ty0, ty1), MAX (ty0, ty1));
}

void
bp_plot_reset_zoom (BpPlot *self)
{
  g_return_if_fail (BP_IS_PLOT (self));
  if (!self->zoomed)
    return;
  self->zoomed = FALSE;
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "plot.reset-zoom", FALSE);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ZOOMED]);
  queue_canvas_draw (self);
}

gboolean
bp_plot_get_zoomed (BpPlot *self)
{
  g_return_val_if_fail (BP_IS_PLOT (self), FALSE);
  return self->zoomed;
}

void
bp_plot_get_view (BpPlot *self, double *x0, double *x1, double *y0, double *y1)
{
  g_return_if_fail (BP_IS_PLOT (self));
  View v;
  compute_view (self, 100, 100, &v);
  if (x0) *x0 = v.x0;
  if (x1) *x1 = v.x1;
  if (y0) *y0 = untransform_y (self, v.y0);
  if (y1) *y1 = untransform_y (self, v.y1);
}

char *
bp_plot_get_readout (BpPlot *self, double x)
{
  g_return_val_if_fail (BP_IS_PLOT (self), NULL);
  GString *s = NULL;
  double first_x = 0.0;
  for (guint k = 0; k < self->series->len; k++) {
    BpSeries *series = g_ptr_array_index (self->series, k);
    int i = bp_series_find_nearest (series, x);
    if (i < 0)
      continue;
    const double *xs = bp_series_get_xs (series), *ys = bp_series_get_ys (series);
    char xbuf[G_ASCII_DTOSTR_BUF_SIZE], ybuf[G_ASCII_DTOSTR_BUF_SIZE];
    if (!s) {
      first_x = xs[i];
      s = g_string_new (NULL);
      g_string_append_printf (s, "%s = %s", self->x_label ? self->x_label : "x",
                              g_ascii_formatd (xbuf, sizeof xbuf, "%.6g", xs[i]));
    }
    g_string_append_printf (s, "\n%s: %s", bp_series_get_name (series),
                            g_ascii_formatd (ybuf, sizeof ybuf, "%.6g", ys[i]));
    if (xs[i] != first_x) /* this series' nearest point lies elsewhere: say where */
      g_string_append_printf (s, " (%s %s)", self->x_label ? self->x_label : "x",
                              g_ascii_formatd (xbuf, sizeof xbuf, "%.6g", xs[i]));
    guint n = bp_series_get_n_points (series);
    if (self->smoothing > 0.0 && bp_series_get_smooth (series) && n > 1) {
      double *sm = g_new (double, n);
      bp_series_smooth (series, self->smoothing, sm);
      /* TRANSLATORS: the smoothed value of a curve at the hovered point */
      g_string_append_printf (s, _(" (smoothed %s)"),
                              g_ascii_formatd (ybuf, sizeof ybuf, "%.6g", sm[i]));
      g_free (sm);
    }
  }
  return s ? g_string_free (s, FALSE) : NULL;
}

static void
csv_field (GString *s, const char *text)
{
  if (!strpbrk (text, ",\"\n")) {
    g_string_append (s, text);
    return;
  }
  g_string_append_c (s, '"');
  for (const char *p = text; *p; p++) {
    if (*p == '"')
      g_string_append_c (s, '"');
    g_string_append_c (s, *p);
  }
  g_string_append_c (s, '"');
}

char *
bp_plot_to_csv (BpPlot *self)
{
  g_return_val_if_fail (BP_IS_PLOT (self), NULL);
  GString *s = g_string_new ("series,x,y,smoothed\n");
  for (guint k = 0; k < self->series->len; k++) {
    BpSeries *series = g_ptr_array_index (self->series, k);
    guint n = bp_series_get_n_points (series);
    const double *xs = bp_series_get_xs (series), *ys = bp_series_get_ys (series);
    double *sm = g_new (double, MAX (n, 1));
    bp_series_smooth (series, bp_series_get_smooth (series) ? self->smoothing : 0.0, sm);
    for (guint i = 0; i < n; i++) {
      char buf[G_ASCII_DTOSTR_BUF_SIZE];
      csv_field (s, bp_series_get_name (series) ? bp_series_get_name (series) : "");
      g_string_append_printf (s, ",%s", g_ascii_dtostr (buf, sizeof buf, xs[i]));
      g_string_append_printf (s, ",%s", g_ascii_dtostr (buf, sizeof buf, ys[i]));
      g_string_append_printf (s, ",%s\n", g_ascii_dtostr (buf, sizeof buf, sm[i]));
    }
    g_free (sm);
  }
  return g_string_free (s, FALSE);
}

gboolean
bp_plot_export_csv (BpPlot *self, const char *path, GError **error)
{
  g_return_val_if_fail (BP_IS_PLOT (self), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_autofree char *csv = bp_plot_to_csv (self);
  return g_file_set_contents (path, csv, -1, error);
}

gboolean
bp_plot_export_png (BpPlot *self, const char *path, int width, int height, GError **error)
{
  g_return_val_if_fail (BP_IS_PLOT (self), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  if (width <= 0 || height <= 0) {
    width = gtk_widget_get_width (self->canvas);
    height = gtk_widget_get_height (self->canvas);
    if (width < 100 || height < 80)
      width = 800, height = 500;
  }
  cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, width, height);
  cairo_t *cr = cairo_create (surface);
  Colors colors = {.fg = {0.18, 0.20, 0.21, 1.0}, .bg = {1.0, 1.0, 1.0, 1.0}, .fill_bg = TRUE};
  bp_plot_draw (self, cr, width, height, &colors, FALSE);
  cairo_destroy (cr);
  cairo_status_t status = cairo_surface_write_to_png (surface, path);
  cairo_surface_destroy (surface);
  if (status != CAIRO_STATUS_SUCCESS) {
    g_autofree char *display = g_filename_display_name (path);
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, _("Cannot write %s: %s"), display,
                 cairo_status_to_string (status));
    return FALSE;
  }
  return TRUE;
}
