/* bp-plot.h: a reusable Cairo line chart of BpSeries with smoothing, log scale, zoom and export. */
#pragma once

#include <gtk/gtk.h>

#include "bp-series.h"

G_BEGIN_DECLS

#define BP_TYPE_PLOT (bp_plot_get_type ())
G_DECLARE_FINAL_TYPE (BpPlot, bp_plot, BP, PLOT, GtkWidget)

GtkWidget *bp_plot_new (void);

/* The chart keeps a reference and redraws (on the next frame) when a series changes. */
void bp_plot_add_series (BpPlot *self, BpSeries *series);
void bp_plot_remove_all_series (BpPlot *self);
guint bp_plot_get_n_series (BpPlot *self);
BpSeries *bp_plot_get_series (BpPlot *self, guint index);

const char *bp_plot_get_title (BpPlot *self);
void bp_plot_set_title (BpPlot *self, const char *title);
void bp_plot_set_axis_labels (BpPlot *self, const char *x_label, const char *y_label);

/* EMA weight in [0, 0.99]: 0 draws the raw values; above 0 the smoothed curve is drawn over a
 * faint raw curve. */
double bp_plot_get_smoothing (BpPlot *self);
void bp_plot_set_smoothing (BpPlot *self, double smoothing);
/* Whether the header shows the smoothing slider (default TRUE). */
gboolean bp_plot_get_show_smoothing (BpPlot *self);
void bp_plot_set_show_smoothing (BpPlot *self, gboolean show);
/* Logarithmic y axis (points <= 0 are left out). */
gboolean bp_plot_get_log_scale (BpPlot *self);
void bp_plot_set_log_scale (BpPlot *self, gboolean log_scale);

/* A vertical line with a label at x, e.g. where a run stopped. */
void bp_plot_set_marker (BpPlot *self, double x, const char *label);
void bp_plot_clear_marker (BpPlot *self);

/* Zoom to a data rectangle (y in data units); reset returns to the automatic range. */
void bp_plot_zoom_to (BpPlot *self, double x0, double x1, double y0, double y1);
void bp_plot_reset_zoom (BpPlot *self);
gboolean bp_plot_get_zoomed (BpPlot *self);
/* The range on show: the zoom rectangle or the automatic range around all points. */
void bp_plot_get_view (BpPlot *self, double *x0, double *x1, double *y0, double *y1);

/* The hover read-out at data x: "x = ..." then one line per series with its nearest point's
 * exact value (and the smoothed one when smoothing applies). NULL with no points. */
char *bp_plot_get_readout (BpPlot *self, double x);

/* CSV of every point, one row per point: series,x,y,smoothed. */
char *bp_plot_to_csv (BpPlot *self);
gboolean bp_plot_export_csv (BpPlot *self, const char *path, GError **error);
/* Draws the chart on a white background; width or height <= 0: the widget's size (or 800x500). */
gboolean bp_plot_export_png (BpPlot *self, const char *path, int width, int height,
                             GError **error);

G_END_DECLS
