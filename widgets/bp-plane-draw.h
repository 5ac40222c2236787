/* bp-plane-draw.h: a region of the plane drawn with Cairo and Pango (no GTK): a function's
 * values as colour with contour lines and gradient-descent paths on top (the autograd lesson),
 * or a classifier's regions with its decision boundary and the data points (two spirals).
 * The BpPlaneView widget draws with it; so could a PNG writer.
 *
 *   BpPlane p;
 *   bp_plane_init (&p);
 *   p.x0 = -5; p.x1 = 5; p.y0 = -3; p.y1 = 3;
 *   p.field = values; p.field_size = 128; p.field_log = TRUE;
 *   p.paths = paths; p.n_paths = 2;
 *   bp_plane_draw (cr, NULL, &p, width, height, &geometry);
 */
#pragma once

#include <cairo.h>
#include <glib.h>
#include <pango/pangocairo.h>
#include <stdint.h>

G_BEGIN_DECLS

/* A path in data units: n points (x, y) as doubles, drawn in colour rgba. */
typedef struct {
  const double *xy;
  int n;
  double rgba[4];
  const char *label; /* in the legend (NULL: none) */
} BpPlanePath;

typedef struct {
  double x0, x1, y0, y1;  /* the region, in data units (x0 < x1, y0 < y1) */
  gboolean equal_aspect;  /* one unit as long on both axes (the default) */
  /* a scalar field: field_size x field_size values at the cells' centres, row-major, row 0 at
   * y0; drawn as colour (viridis, low dark) with contour lines */
  int field_size;
  const float *field;
  gboolean field_log;     /* colours and contour levels on a log scale (values must be >= 0) */
  /* class regions: field_size x field_size x n_classes probabilities (same layout), each cell
   * tinted with the classes' colours by their probability; two classes: the 0.5 line drawn */
  int n_classes;
  const float *probs;
  /* data points: n_points (x, y) and their classes (as floats) */
  int64_t n_points;
  const float *points;
  const float *point_classes;
  int n_paths;
  const BpPlanePath *paths;
  int n_marks;             /* crosses, e.g. a function's minima */
  const double *marks;     /* n_marks (x, y) */
  const char *title;       /* above (NULL: none) */
  const char *empty_text;  /* in the middle when there is nothing to draw (NULL: none) */
  double fg[4];            /* text and frame */
  double bg[4];
  gboolean fill_bg;
} BpPlane;

/* Where the plot went: its rectangle in pixels (the region maps onto it). */
typedef struct {
  double left, top, width, height;
} BpPlaneGeometry;

/* An empty region [-1, 1]², equal aspect, dark text on no background. */
void bp_plane_init (BpPlane *plane);

/* The colour of class c (a qualitative palette that repeats after 10). */
void bp_plane_class_color (int c, double *r, double *g, double *b);

/* The colour of path k (a palette that stands out on the field's colours, repeating after 4). */
void bp_plane_path_color (int k, double *r, double *g, double *b);

/* Lays out and draws into (0, 0, width, height). layout: the labels' font (its text is
 * changed), or NULL for "Sans 9". geometry may be NULL. */
void bp_plane_draw (cairo_t *cr, PangoLayout *layout, const BpPlane *plane, double width,
                    double height, BpPlaneGeometry *geometry);

/* Draws the plane on white into a PNG file of width x height pixels. */
gboolean bp_plane_write_png (const BpPlane *plane, const char *path, int width, int height,
                             GError **error);

/* Data units to pixels and back, for the geometry of a drawn plane. */
void bp_plane_to_pixel (const BpPlane *plane, const BpPlaneGeometry *geometry, double x, double y,
                        double *px, double *py);
void bp_plane_from_pixel (const BpPlane *plane, const BpPlaneGeometry *geometry, double px,
                          double py, double *x, double *y);

G_END_DECLS
