/* bp-plane-view.h: BpPlaneView draws a region of the plane (bp-plane-draw.h): a function's
 * contours with gradient-descent paths growing on them, or a classifier's regions with its
 * decision boundary and the data points. A tooltip reads out the point under the pointer. */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define BP_TYPE_PLANE_VIEW (bp_plane_view_get_type ())
G_DECLARE_FINAL_TYPE (BpPlaneView, bp_plane_view, BP, PLANE_VIEW, GtkDrawingArea)

GtkWidget *bp_plane_view_new (void);

/* The region shown (x0 < x1, y0 < y1) and whether one unit is as long on both axes. */
void bp_plane_view_set_region (BpPlaneView *self, double x0, double x1, double y0, double y1,
                               gboolean equal_aspect);
void bp_plane_view_get_region (BpPlaneView *self, double *x0, double *x1, double *y0,
                               double *y1);
void bp_plane_view_set_title (BpPlaneView *self, const char *title);
void bp_plane_view_set_placeholder (BpPlaneView *self, const char *text);

/* A function's values: size x size at the cells' centres, row 0 at y0 (copied); log: colours
 * and contours on a log scale. Replaces class regions. NULL clears. */
void bp_plane_view_set_field (BpPlaneView *self, int size, const float *values, gboolean log);
/* Class probabilities: size x size x n_classes (copied). Replaces a field. NULL clears. */
void bp_plane_view_set_classes (BpPlaneView *self, int size, int n_classes, const float *probs);
/* Data points (n x 2) and their classes (n, may be NULL), copied. */
void bp_plane_view_set_points (BpPlaneView *self, int64_t n, const float *xy,
                               const float *classes);
/* Crosses at n points (x, y), e.g. a function's minima (copied). */
void bp_plane_view_set_marks (BpPlaneView *self, int n, const double *xy);

/* Paths: a new, empty one (returns its index), points appended one at a time. */
int bp_plane_view_add_path (BpPlaneView *self, const char *label, const GdkRGBA *color);
void bp_plane_view_path_append (BpPlaneView *self, int path, double x, double y);
void bp_plane_view_clear_paths (BpPlaneView *self);
int bp_plane_view_get_n_paths (BpPlaneView *self);
int bp_plane_view_get_path_length (BpPlaneView *self, int path);
/* How many times the data changed (live views' updates). */
guint bp_plane_view_get_n_updates (BpPlaneView *self);

/* The text the tooltip shows at widget coordinates (x, y), NULL outside the plot; free it. */
char *bp_plane_view_describe_point (BpPlaneView *self, double x, double y);

G_END_DECLS
