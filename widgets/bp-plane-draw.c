/* bp-plane-draw.c: a region of the plane with Cairo: a field in colour with contour lines,
 * class regions, data points, paths and axes. */
#include "config.h"

#include "bp-plane-draw.h"

#include <math.h>

#include "bp-heatmap-draw.h"

void
bp_plane_init (BpPlane *p)
{
  *p = (BpPlane){
    .x0 = -1.0,
    .x1 = 1.0,
    .y0 = -1.0,
    .y1 = 1.0,
    .equal_aspect = TRUE,
    .fg = {0.1, 0.1, 0.1, 1.0},
    .bg = {1.0, 1.0, 1.0, 1.0},
  };
}

void
bp_plane_class_color (int c, double *r, double *g, double *b)
{
  /* Tableau 10 */
  static const double palette[10][3] = {
    {0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173}, {0.839, 0.153, 0.157},
    {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294}, {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498},
    {0.737, 0.741, 0.133}, {0.090, 0.745, 0.812},
  };
  const double *k = palette[(c % 10 + 10) % 10];
  *r = k[0];
  *g = k[1];
  *b = k[2];
}

void
bp_plane_path_color (int k, double *r, double *g, double *b)
{
  static const double palette[4][3] = {
    {1.0, 0.3, 0.2}, {0.3, 0.85, 1.0}, {1.0, 0.35, 0.9}, {1.0, 1.0, 1.0},
  };
  const double *c = palette[(k % 4 + 4) % 4];
  *r = c[0];
  *g = c[1];
  *b = c[2];
}

/* ---- layout ---- */

static void
text_size (PangoLayout *layout, const char *text, double *w, double *h)
{
  pango_layout_set_text (layout, text, -1);
  int pw, ph;
  pango_layout_get_pixel_size (layout, &pw, &ph);
  *w = pw;
  *h = ph;
}

static void
draw_text (cairo_t *cr, PangoLayout *layout, const char *text, double x, double y)
{
  pango_layout_set_text (layout, text, -1);
  cairo_move_to (cr, x, y);
  pango_cairo_show_layout (cr, layout);
}

/* A tick step of 1, 2 or 5 times a power of ten giving about `want` ticks over span. */
static double
nice_step (double span, int want)
{
  double raw = span / MAX (1, want);
  double mag = pow (10.0, floor (log10 (raw)));
  double f = raw / mag;
  return (f < 1.5 ? 1.0 : f < 3.5 ? 2.0 : f < 7.5 ? 5.0 : 10.0) * mag;
}

static void
compute_geometry (const BpPlane *p, double width, double height, double label_h,
                  double label_w, BpPlaneGeometry *g)
{
  double top = (p->title ? label_h + 8.0 : 0.0) + 6.0;
  double left = label_w + 10.0, bottom = label_h + 8.0, right = 8.0;
  double w = MAX (1.0, width - left - right), h = MAX (1.0, height - top - bottom);
  if (p->equal_aspect) {
    double aspect = (p->x1 - p->x0) / (p->y1 - p->y0);
    if (w / h > aspect)
      w = h * aspect;
    else
      h = w / aspect;
  }
  g->left = left;
  g->top = top;
  g->width = w;
  g->height = h;
}

void
bp_plane_to_pixel (const BpPlane *p, const BpPlaneGeometry *g, double x, double y, double *px,
                   double *py)
{
  *px = g->left + (x - p->x0) / (p->x1 - p->x0) * g->width;
  *py = g->top + (p->y1 - y) / (p->y1 - p->y0) * g->height;
}

void
bp_plane_from_pixel (const BpPlane *p, const BpPlaneGeometry *g, double px, double py, double *x,
                     double *y)
{
  *x = p->x0 + (px - g->left) / g->width * (p->x1 - p->x0);
  *y = p->y1 - (py - g->top) / g->height * (p->y1 - p->y0);
}

/* ---- the field ---- */

static double
field_scale (const BpPlane *p, double v)
{
  return p->field_log ? log10 (MAX (v, 0.0) + 1e-3) : v;
}

/* An n x n RGB image of the cells, image row 0 at the top (cell row n - 1): color gives the
 * colour of cell (i, j) of the plane, row i from y0 upwards. */
typedef void (*CellColor) (const BpPlane *p, int i, int j, double lo, double hi, double *r,
                           double *g, double *b);

static cairo_surface_t *
cells_image (const BpPlane *p, CellColor color, double lo, double hi)
{
  int n = p->field_size;
  cairo_surface_t *s = cairo_image_surface_create (CAIRO_FORMAT_RGB24, n, n);
  unsigned char *data = cairo_image_surface_get_data (s);
  int stride = cairo_image_surface_get_stride (s);
  for (int i = 0; i < n; i++) {
    uint32_t *row = (uint32_t *) (void *) (data + (size_t) i * (size_t) stride);
    for (int j = 0; j < n; j++) {
      double r, g, b;
      color (p, n - 1 - i, j, lo, hi, &r, &g, &b);
      row[j] = (uint32_t) (r * 255.0) << 16 | (uint32_t) (g * 255.0) << 8 | (uint32_t) (b * 255.0);
    }
  }
  cairo_surface_mark_dirty (s);
  return s;
}

/* A field's cell: its value's place between the smallest and the largest, on viridis. */
static void
field_color (const BpPlane *p, int i, int j, double lo, double hi, double *r, double *g,
             double *b)
{
  double v = field_scale (p, p->field[(size_t) i * (size_t) p->field_size + (size_t) j]);
  double t = hi > lo ? (v - lo) / (hi - lo) : 0.0;
  bp_heatmap_color (CLAMP (t, 0.0, 1.0), r, g, b);
}

/* A class region's cell: the classes' colours mixed by probability, halfway to white so that
 * the points stand out. */
static void
class_color (const BpPlane *p, int i, int j, double lo, double hi, double *r, double *g,
             double *b)
{
  const float *q = p->probs + ((size_t) i * (size_t) p->field_size + (size_t) j) *
                                (size_t) p->n_classes;
  double sr = 0, sg = 0, sb = 0;
  for (int c = 0; c < p->n_classes; c++) {
    double cr, cg, cb;
    bp_plane_class_color (c, &cr, &cg, &cb);
    sr += q[c] * cr;
    sg += q[c] * cg;
    sb += q[c] * cb;
  }
  *r = 0.5 + 0.5 * CLAMP (sr, 0.0, 1.0);
  *g = 0.5 + 0.5 * CLAMP (sg, 0.0, 1.0);
  *b = 0.5 + 0.5 * CLAMP (sb, 0.0, 1.0);
}

/* Marching squares: the line where value(i, j) == level, over the cells' centres. */
static void
contour (cairo_t *cr, const BpPlane *p, const BpPlaneGeometry *g, double (*value) (const BpPlane *,
                                                                                   int, int),
         double level)
{
  int n = p->field_size;
  double cell_w = (p->x1 - p->x0) / n, cell_h = (p->y1 - p->y0) / n;
  for (int i = 0; i + 1 < n; i++)
    for (int j = 0; j + 1 < n; j++) {
      /* corners counter-clockwise from the bottom left: (i, j) (i, j+1) (i+1, j+1) (i+1, j) */
      double v[4] = {value (p, i, j), value (p, i, j + 1), value (p, i + 1, j + 1),
                     value (p, i + 1, j)};
      static const int ci[4] = {0, 0, 1, 1}, cj[4] = {0, 1, 1, 0};
      double ex[4], ey[4];
      int m = 0;
      for (int e = 0; e < 4; e++) {
        int a = e, b = (e + 1) % 4;
        if ((v[a] < level) == (v[b] < level) || !isfinite (v[a]) || !isfinite (v[b]))
          continue;
        double t = (level - v[a]) / (v[b] - v[a]);
        double gi = i + ci[a] + t * (ci[b] - ci[a]), gj = j + cj[a] + t * (cj[b] - cj[a]);
        bp_plane_to_pixel (p, g, p->x0 + (gj + 0.5) * cell_w, p->y0 + (gi + 0.5) * cell_h,
                           &ex[m], &ey[m]);
        m++;
      }
      /* two crossings: one segment; four (a saddle): two, paired in order */
      for (int s = 0; s + 1 < m; s += 2) {
        cairo_move_to (cr, ex[s], ey[s]);
        cairo_line_to (cr, ex[s + 1], ey[s + 1]);
      }
    }
  cairo_stroke (cr);
}

static double
field_value (const BpPlane *p, int i, int j)
{
  return field_scale (p, p->field[(size_t) i * (size_t) p->field_size + (size_t) j]);
}

static double
class1_value (const BpPlane *p, int i, int j)
{
  return p->probs[((size_t) i * (size_t) p->field_size + (size_t) j) * (size_t) p->n_classes + 1];
}

static void
paint_image (cairo_t *cr, cairo_surface_t *s, int n, const BpPlaneGeometry *g)
{
  cairo_save (cr);
  cairo_rectangle (cr, g->left, g->top, g->width, g->height);
  cairo_clip (cr);
  cairo_translate (cr, g->left, g->top);
  cairo_scale (cr, g->width / n, g->height / n);
  cairo_set_source_surface (cr, s, 0, 0);
  cairo_pattern_set_filter (cairo_get_source (cr), CAIRO_FILTER_BILINEAR);
  cairo_pattern_set_extend (cairo_get_source (cr), CAIRO_EXTEND_PAD);
  cairo_paint (cr);
  cairo_restore (cr);
}

static void
draw_field (cairo_t *cr, const BpPlane *p, const BpPlaneGeometry *g)
{
  int n = p->field_size;
  double lo = INFINITY, hi = -INFINITY;
  for (size_t k = 0; k < (size_t) n * (size_t) n; k++) {
    double v = field_scale (p, p->field[k]);
    if (isfinite (v)) {
      lo = MIN (lo, v);
      hi = MAX (hi, v);
    }
  }
  if (!isfinite (lo))
    return;
  cairo_surface_t *s = cells_image (p, field_color, lo, hi);
  paint_image (cr, s, n, g);
  cairo_surface_destroy (s);
  /* contour lines: every half decade on a log scale, twelve levels otherwise */
  cairo_save (cr);
  cairo_rectangle (cr, g->left, g->top, g->width, g->height);
  cairo_clip (cr);
  cairo_set_line_width (cr, 0.8);
  cairo_set_source_rgba (cr, 1.0, 1.0, 1.0, 0.45);
  double step = p->field_log ? 0.5 : (hi - lo) / 12.0;
  if (step > 0)
    for (double level = p->field_log ? ceil (lo / step) * step : lo + step; level < hi;
         level += step)
      contour (cr, p, g, field_value, level);
  cairo_restore (cr);
}

static void
draw_classes (cairo_t *cr, const BpPlane *p, const BpPlaneGeometry *g)
{
  cairo_surface_t *s = cells_image (p, class_color, 0.0, 1.0);
  paint_image (cr, s, p->field_size, g);
  cairo_surface_destroy (s);
  if (p->n_classes == 2) {
    cairo_save (cr);
    cairo_rectangle (cr, g->left, g->top, g->width, g->height);
    cairo_clip (cr);
    cairo_set_line_width (cr, 1.5);
    cairo_set_source_rgba (cr, 0.1, 0.1, 0.1, 0.8);
    contour (cr, p, g, class1_value, 0.5);
    cairo_restore (cr);
  }
}

static void
draw_points (cairo_t *cr, const BpPlane *p, const BpPlaneGeometry *g)
{
  double radius = CLAMP (g->width / 160.0, 1.5, 3.5);
  cairo_save (cr);
  cairo_rectangle (cr, g->left, g->top, g->width, g->height);
  cairo_clip (cr);
  cairo_set_line_width (cr, 0.6);
  for (int64_t k = 0; k < p->n_points; k++) {
    double px, py, r = 0.3, gg = 0.3, b = 0.3;
    bp_plane_to_pixel (p, g, p->points[2 * k], p->points[2 * k + 1], &px, &py);
    if (p->point_classes)
      bp_plane_class_color ((int) p->point_classes[k], &r, &gg, &b);
    cairo_arc (cr, px, py, radius, 0, 2 * G_PI);
    cairo_set_source_rgb (cr, r, gg, b);
    cairo_fill_preserve (cr);
    cairo_set_source_rgba (cr, 0.0, 0.0, 0.0, 0.6);
    cairo_stroke (cr);
  }
  cairo_restore (cr);
}

static void
draw_paths (cairo_t *cr, PangoLayout *layout, const BpPlane *p, const BpPlaneGeometry *g)
{
  cairo_save (cr);
  cairo_rectangle (cr, g->left, g->top, g->width, g->height);
  cairo_clip (cr);
  cairo_set_line_join (cr, CAIRO_LINE_JOIN_ROUND);
  for (int k = 0; k < p->n_marks; k++) {
    double px, py;
    bp_plane_to_pixel (p, g, p->marks[2 * k], p->marks[2 * k + 1], &px, &py);
    cairo_set_source_rgb (cr, 1.0, 1.0, 1.0);
    cairo_set_line_width (cr, 2.0);
    cairo_move_to (cr, px - 5, py - 5);
    cairo_line_to (cr, px + 5, py + 5);
    cairo_move_to (cr, px - 5, py + 5);
    cairo_line_to (cr, px + 5, py - 5);
    cairo_stroke (cr);
  }
  for (int k = 0; k < p->n_paths; k++) {
    const BpPlanePath *path = &p->paths[k];
    if (path->n < 1)
      continue;
    cairo_set_source_rgba (cr, path->rgba[0], path->rgba[1], path->rgba[2], path->rgba[3]);
    cairo_set_line_width (cr, 2.0);
    for (int i = 0; i < path->n; i++) {
      double px, py;
      bp_plane_to_pixel (p, g, path->xy[2 * i], path->xy[2 * i + 1], &px, &py);
      /* far outside: clamp, so that Cairo's fixed point does not wrap */
      px = CLAMP (px, -1e5, 1e5);
      py = CLAMP (py, -1e5, 1e5);
      if (i == 0)
        cairo_move_to (cr, px, py);
      else
        cairo_line_to (cr, px, py);
    }
    cairo_stroke (cr);
    /* every point as a dot, the start as a ring */
    for (int i = 0; i < path->n; i++) {
      double px, py;
      bp_plane_to_pixel (p, g, path->xy[2 * i], path->xy[2 * i + 1], &px, &py);
      if (fabs (px) > 1e5 || fabs (py) > 1e5)
        continue;
      cairo_arc (cr, px, py, i == 0 ? 4.5 : 2.2, 0, 2 * G_PI);
      if (i == 0) {
        cairo_set_line_width (cr, 2.0);
        cairo_stroke (cr);
      } else {
        cairo_fill (cr);
      }
    }
  }
  cairo_restore (cr);
  /* the legend, top right inside the plot */
  double y = g->top + 6;
  for (int k = 0; k < p->n_paths; k++) {
    const BpPlanePath *path = &p->paths[k];
    if (!path->label)
      continue;
    double w, h;
    text_size (layout, path->label, &w, &h);
    double x = g->left + g->width - w - 26;
    cairo_set_source_rgba (cr, 1.0, 1.0, 1.0, 0.8);
    cairo_rectangle (cr, x - 4, y - 1, w + 26, h + 2);
    cairo_fill (cr);
    cairo_set_source_rgba (cr, path->rgba[0], path->rgba[1], path->rgba[2], 1.0);
    cairo_set_line_width (cr, 3.0);
    cairo_move_to (cr, x, y + h / 2);
    cairo_line_to (cr, x + 16, y + h / 2);
    cairo_stroke (cr);
    cairo_set_source_rgb (cr, 0.1, 0.1, 0.1);
    draw_text (cr, layout, path->label, x + 20, y);
    y += h + 4;
  }
}

static void
draw_axes (cairo_t *cr, PangoLayout *layout, const BpPlane *p, const BpPlaneGeometry *g)
{
  cairo_set_source_rgba (cr, p->fg[0], p->fg[1], p->fg[2], p->fg[3]);
  cairo_set_line_width (cr, 1.0);
  cairo_rectangle (cr, g->left + 0.5, g->top + 0.5, g->width - 1, g->height - 1);
  cairo_stroke (cr);
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  double step = nice_step (p->x1 - p->x0, MAX (2, (int) (g->width / 70)));
  for (double v = ceil (p->x0 / step) * step; v <= p->x1 + 1e-9 * step; v += step) {
    double px, py, w, h;
    bp_plane_to_pixel (p, g, v, p->y0, &px, &py);
    g_ascii_formatd (buf, sizeof buf, "%g", fabs (v) < 1e-9 * step ? 0.0 : v);
    text_size (layout, buf, &w, &h);
    draw_text (cr, layout, buf, px - w / 2, py + 3);
    cairo_move_to (cr, px, py);
    cairo_line_to (cr, px, py - 4);
    cairo_stroke (cr);
  }
  step = nice_step (p->y1 - p->y0, MAX (2, (int) (g->height / 50)));
  for (double v = ceil (p->y0 / step) * step; v <= p->y1 + 1e-9 * step; v += step) {
    double px, py, w, h;
    bp_plane_to_pixel (p, g, p->x0, v, &px, &py);
    g_ascii_formatd (buf, sizeof buf, "%g", fabs (v) < 1e-9 * step ? 0.0 : v);
    text_size (layout, buf, &w, &h);
    draw_text (cr, layout, buf, px - w - 4, py - h / 2);
    cairo_move_to (cr, px, py);
    cairo_line_to (cr, px + 4, py);
    cairo_stroke (cr);
  }
}

static void
draw_plane_png (cairo_t *cr, PangoLayout *layout, int width, int height, gpointer data)
{
  bp_plane_draw (cr, layout, data, width, height, NULL);
}

gboolean
bp_plane_write_png (const BpPlane *plane, const char *path, int width, int height,
                    GError **error)
{
  g_return_val_if_fail (plane != NULL && path != NULL && width > 0 && height > 0, FALSE);
  BpPlane p = *plane;
  p.fill_bg = TRUE;
  p.bg[0] = p.bg[1] = p.bg[2] = p.bg[3] = 1.0;
  return bp_png_write (path, width, height, draw_plane_png, &p, error);
}

void
bp_plane_draw (cairo_t *cr, PangoLayout *layout, const BpPlane *p, double width, double height,
               BpPlaneGeometry *geometry)
{
  g_return_if_fail (cr != NULL && p != NULL);
  g_return_if_fail (p->x1 > p->x0 && p->y1 > p->y0);
  PangoLayout *own = NULL;
  if (!layout) {
    own = pango_cairo_create_layout (cr);
    PangoFontDescription *font = pango_font_description_from_string ("Sans 9");
    pango_layout_set_font_description (own, font);
    pango_font_description_free (font);
    layout = own;
  }
  cairo_save (cr);
  if (p->fill_bg) {
    cairo_set_source_rgba (cr, p->bg[0], p->bg[1], p->bg[2], p->bg[3]);
    cairo_paint (cr);
  }
  /* the widest y label decides the left margin */
  double lw = 0, lh = 0, w, h;
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  const double ends[] = {p->y0, p->y1, (p->y0 + p->y1) / 2};
  for (int k = 0; k < 3; k++) {
    text_size (layout, g_ascii_formatd (buf, sizeof buf, "%g", ends[k]), &w, &h);
    lw = MAX (lw, w + 6);
    lh = MAX (lh, h);
  }
  BpPlaneGeometry g;
  compute_geometry (p, width, height, lh, lw, &g);
  if (p->title) {
    cairo_set_source_rgba (cr, p->fg[0], p->fg[1], p->fg[2], p->fg[3]);
    draw_text (cr, layout, p->title, g.left, 2);
  }
  gboolean empty = TRUE;
  if (p->field && p->field_size > 1) {
    draw_field (cr, p, &g);
    empty = FALSE;
  } else if (p->probs && p->field_size > 1 && p->n_classes > 0) {
    draw_classes (cr, p, &g);
    empty = FALSE;
  }
  if (p->n_points > 0 && p->points) {
    draw_points (cr, p, &g);
    empty = FALSE;
  }
  draw_paths (cr, layout, p, &g);
  draw_axes (cr, layout, p, &g);
  if (empty && !p->n_paths && p->empty_text) {
    text_size (layout, p->empty_text, &w, &h);
    cairo_set_source_rgba (cr, p->fg[0], p->fg[1], p->fg[2], 0.6 * p->fg[3]);
    draw_text (cr, layout, p->empty_text, g.left + (g.width - w) / 2, g.top + (g.height - h) / 2);
  }
  cairo_restore (cr);
  if (geometry)
    *geometry = g;
  if (own)
    g_object_unref (own);
}
