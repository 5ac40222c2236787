/* bp-series.c: a growable (x, y) point list with a name, a colour and a ::changed signal. */
#include "bp-series.h"

#include <math.h>

struct _BpSeries {
  GObject parent_instance;
  char *name;
  GdkRGBA color;
  gboolean markers, smooth;
  GArray *xs, *ys; /* double */
};

G_DEFINE_FINAL_TYPE (BpSeries, bp_series, G_TYPE_OBJECT)

enum { PROP_0, PROP_NAME, PROP_MARKERS, PROP_SMOOTH, N_PROPS };
static GParamSpec *properties[N_PROPS];

enum { CHANGED, N_SIGNALS };
static guint signals[N_SIGNALS];

static void
bp_series_finalize (GObject *object)
{
  BpSeries *self = BP_SERIES (object);
  g_free (self->name);
  g_array_unref (self->xs);
  g_array_unref (self->ys);
  G_OBJECT_CLASS (bp_series_parent_class)->finalize (object);
}

static void
bp_series_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  BpSeries *self = BP_SERIES (object);
  switch (prop_id) {
  case PROP_NAME: g_value_set_string (value, self->name); break;
  case PROP_MARKERS: g_value_set_boolean (value, self->markers); break;
  case PROP_SMOOTH: g_value_set_boolean (value, self->smooth); break;
  default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
}

static void
bp_series_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  BpSeries *self = BP_SERIES (object);
  switch (prop_id) {
  case PROP_NAME: bp_series_set_name (self, g_value_get_string (value)); break;
  case PROP_MARKERS: bp_series_set_markers (self, g_value_get_boolean (value)); break;
  case PROP_SMOOTH: bp_series_set_smooth (self, g_value_get_boolean (value)); break;
  default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
}

static void
bp_series_class_init (BpSeriesClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  object_class->finalize = bp_series_finalize;
  object_class->get_property = bp_series_get_property;
  object_class->set_property = bp_series_set_property;

  properties[PROP_NAME] = g_param_spec_string ("name", NULL, NULL, NULL,
                                               G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY |
                                               G_PARAM_STATIC_STRINGS);
  properties[PROP_MARKERS] = g_param_spec_boolean ("markers", NULL, NULL, FALSE,
                                                   G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY |
                                                   G_PARAM_STATIC_STRINGS);
  properties[PROP_SMOOTH] = g_param_spec_boolean ("smooth", NULL, NULL, TRUE,
                                                  G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY |
                                                  G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /* Points were appended or removed, or the look changed. */
  signals[CHANGED] = g_signal_new ("changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                                   NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static void
bp_series_init (BpSeries *self)
{
  self->xs = g_array_new (FALSE, FALSE, sizeof (double));
  self->ys = g_array_new (FALSE, FALSE, sizeof (double));
  self->smooth = TRUE;
  self->color = (GdkRGBA) {0.21, 0.52, 0.89, 1.0};
}

BpSeries *
bp_series_new (const char *name, const GdkRGBA *color)
{
  BpSeries *self = g_object_new (BP_TYPE_SERIES, "name", name, NULL);
  if (color)
    self->color = *color;
  return self;
}

const char *
bp_series_get_name (BpSeries *self)
{
  g_return_val_if_fail (BP_IS_SERIES (self), NULL);
  return self->name;
}

void
bp_series_set_name (BpSeries *self, const char *name)
{
  g_return_if_fail (BP_IS_SERIES (self));
  if (g_strcmp0 (self->name, name) == 0)
    return;
  g_free (self->name);
  self->name = g_strdup (name);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_NAME]);
  g_signal_emit (self, signals[CHANGED], 0);
}

const GdkRGBA *
bp_series_get_color (BpSeries *self)
{
  g_return_val_if_fail (BP_IS_SERIES (self), NULL);
  return &self->color;
}

gboolean
bp_series_get_markers (BpSeries *self)
{
  g_return_val_if_fail (BP_IS_SERIES (self), FALSE);
  return self->markers;
}

void
bp_series_set_markers (BpSeries *self, gboolean markers)
{
  g_return_if_fail (BP_IS_SERIES (self));
  markers = !!markers;
  if (self->markers == markers)
    return;
  self->markers = markers;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_MARKERS]);
  g_signal_emit (self, signals[CHANGED], 0);
}

gboolean
bp_series_get_smooth (BpSeries *self)
{
  g_return_val_if_fail (BP_IS_SERIES (self), FALSE);
  return self->smooth;
}

void
bp_series_set_smooth (BpSeries *self, gboolean smooth)
{
  g_return_if_fail (BP_IS_SERIES (self));
  smooth = !!smooth;
  if (self->smooth == smooth)
    return;
  self->smooth = smooth;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SMOOTH]);
  g_signal_emit (self, signals[CHANGED], 0);
}

void
bp_series_append (BpSeries *self, double x, double y)
{
  bp_series_append_many (self, 1, &x, &y);
}

void
bp_series_append_many (BpSeries *self, guint n, const double *xs, const double *ys)
{
  g_return_if_fail (BP_IS_SERIES (self));
  g_return_if_fail (n == 0 || (xs && ys));
  if (n == 0)
    return;
  g_array_append_vals (self->xs, xs, n);
  g_array_append_vals (self->ys, ys, n);
  g_signal_emit (self, signals[CHANGED], 0);
}

void
bp_series_clear (BpSeries *self)
{
  g_return_if_fail (BP_IS_SERIES (self));
  if (self->xs->len == 0)
    return;
  g_array_set_size (self->xs, 0);
  g_array_set_size (self->ys, 0);
  g_signal_emit (self, signals[CHANGED], 0);
}

guint
bp_series_get_n_points (BpSeries *self)
{
  g_return_val_if_fail (BP_IS_SERIES (self), 0);
  return self->xs->len;
}

const double *
bp_series_get_xs (BpSeries *self)
{
  g_return_val_if_fail (BP_IS_SERIES (self), NULL);
  return (const double *) self->xs->data;
}

const double *
bp_series_get_ys (BpSeries *self)
{
  g_return_val_if_fail (BP_IS_SERIES (self), NULL);
  return (const double *) self->ys->data;
}

int
bp_series_find_nearest (BpSeries *self, double x)
{
  g_return_val_if_fail (BP_IS_SERIES (self), -1);
  const double *xs = (const double *) self->xs->data;
  guint n = self->xs->len;
  if (n == 0)
    return -1;
  /* Binary search for the first point with xs[i] >= x (points come in increasing x). */
  guint lo = 0, hi = n;
  while (lo < hi) {
    guint mid = lo + (hi - lo) / 2;
    if (xs[mid] < x)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == n)
    return (int) n - 1;
  if (lo > 0 && fabs (xs[lo - 1] - x) <= fabs (xs[lo] - x))
    return (int) lo - 1;
  return (int) lo;
}

void
bp_series_smooth (BpSeries *self, double weight, double *out)
{
  g_return_if_fail (BP_IS_SERIES (self));
  const double *ys = (const double *) self->ys->data;
  double last = 0.0;
  int seen = 0;
  for (guint i = 0; i < self->ys->len; i++) {
    double y = ys[i];
    if (!isfinite (y) || weight <= 0.0) {
      out[i] = y;
      continue;
    }
    last = last * weight + (1.0 - weight) * y;
    seen++;
    out[i] = last / (1.0 - pow (weight, seen));
  }
}
