/* bp-series.h: a named series of (x, y) points that a chart draws and producers append to. */
#pragma once

#include <gdk/gdk.h>

G_BEGIN_DECLS

#define BP_TYPE_SERIES (bp_series_get_type ())
G_DECLARE_FINAL_TYPE (BpSeries, bp_series, BP, SERIES, GObject)

BpSeries *bp_series_new (const char *name, const GdkRGBA *color);

const char *bp_series_get_name (BpSeries *self);
void bp_series_set_name (BpSeries *self, const char *name);
const GdkRGBA *bp_series_get_color (BpSeries *self);
/* Markers: a dot at every point (for sparse series such as per-epoch metrics). */
gboolean bp_series_get_markers (BpSeries *self);
void bp_series_set_markers (BpSeries *self, gboolean markers);
/* Whether the chart's EMA smoothing applies to this series (default TRUE). */
gboolean bp_series_get_smooth (BpSeries *self);
void bp_series_set_smooth (BpSeries *self, gboolean smooth);

/* Appends a point; x should not decrease (charts look points up by x). Emits ::changed. */
void bp_series_append (BpSeries *self, double x, double y);
void bp_series_append_many (BpSeries *self, guint n, const double *xs, const double *ys);
void bp_series_clear (BpSeries *self);

guint bp_series_get_n_points (BpSeries *self);
const double *bp_series_get_xs (BpSeries *self);
const double *bp_series_get_ys (BpSeries *self);
/* The index of the point whose x is nearest to x, or -1 for an empty series. */
int bp_series_find_nearest (BpSeries *self, double x);

/* Exponential moving average with TensorBoard's debiasing, weight in [0, 1): out[i] for each
 * point (non-finite points are passed through and do not enter the average). */
void bp_series_smooth (BpSeries *self, double weight, double *out);

G_END_DECLS
