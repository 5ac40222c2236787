/* bp-confusion-matrix.c: BpConfusionMatrix draws counts as a heatmap (colour by the share of the
 * true class's row) with the class names on the left and their indices above. */
#include "config.h"

#include "bp-confusion-matrix.h"

#include <glib/gi18n-lib.h>
#include <math.h>

struct _BpConfusionMatrix {
  GtkWidget parent_instance;
  int n;
  gint64 *counts;
  char **names;
};

G_DEFINE_FINAL_TYPE (BpConfusionMatrix, bp_confusion_matrix, GTK_TYPE_WIDGET)

static PangoLayout *
small_layout (GtkWidget *widget)
{
  PangoLayout *layout = gtk_widget_create_pango_layout (widget, NULL);
  PangoAttrList *attrs = pango_attr_list_new ();
  pango_attr_list_insert (attrs, pango_attr_scale_new (PANGO_SCALE_SMALL));
  pango_layout_set_attributes (layout, attrs);
  pango_attr_list_unref (attrs);
  return layout;
}

/* Width of the widest row label ("9 Ankle boot") and the line height. */
static void
label_extent (BpConfusionMatrix *self, int *label_w, int *line_h)
{
  PangoLayout *layout = small_layout (GTK_WIDGET (self));
  *label_w = 0;
  *line_h = 12;
  for (int i = 0; i < self->n; i++) {
    g_autofree char *text = g_strdup_printf ("%d %s", i, self->names[i]);
    int w, h;
    pango_layout_set_text (layout, text, -1);
    pango_layout_get_pixel_size (layout, &w, &h);
    *label_w = MAX (*label_w, w);
    *line_h = MAX (*line_h, h);
  }
  g_object_unref (layout);
}

static void
bp_confusion_matrix_measure (GtkWidget *widget, GtkOrientation orientation, int for_size,
                             int *minimum, int *natural, int *minimum_baseline,
                             int *natural_baseline)
{
  BpConfusionMatrix *self = BP_CONFUSION_MATRIX (widget);
  /* an empty matrix reserves the room of ten classes */
  int label_w, line_h, n = self->n > 0 ? self->n : 10;
  label_extent (self, &label_w, &line_h);
  if (self->n == 0)
    label_w = 80;
  if (orientation == GTK_ORIENTATION_HORIZONTAL) {
    *minimum = label_w + 8 + n * 12;
    *natural = label_w + 8 + n * 30;
  } else {
    *minimum = 2 * line_h + 8 + n * 12;
    *natural = 2 * line_h + 8 + n * 26;
  }
}

static void
bp_confusion_matrix_snapshot (GtkWidget *widget, GtkSnapshot *snapshot)
{
  BpConfusionMatrix *self = BP_CONFUSION_MATRIX (widget);
  int width = gtk_widget_get_width (widget), height = gtk_widget_get_height (widget);
  GdkRGBA fg;
  gtk_style_context_get_color (gtk_widget_get_style_context (widget), &fg);
  cairo_t *cr = gtk_snapshot_append_cairo (snapshot, &GRAPHENE_RECT_INIT (0, 0, width, height));
  PangoLayout *layout = small_layout (widget);
  int tw, th;

  if (self->n == 0) {
    pango_layout_set_text (layout, _("Shown after the first epoch"), -1);
    pango_layout_get_pixel_size (layout, &tw, &th);
    cairo_set_source_rgba (cr, fg.red, fg.green, fg.blue, 0.5);
    cairo_move_to (cr, (width - tw) / 2.0, (height - th) / 2.0);
    pango_cairo_show_layout (cr, layout);
    g_object_unref (layout);
    cairo_destroy (cr);
    return;
  }

  int label_w, line_h;
  label_extent (self, &label_w, &line_h);
  double top = 2.0 * line_h + 4, left = label_w + 8;
  double cell = MIN ((width - left - 2) / self->n, (height - top - 2) / self->n);
  cell = MAX (cell, 4.0);

  /* titles: "Predicted" over the columns, "True" over the row labels */
  cairo_set_source_rgba (cr, fg.red, fg.green, fg.blue, 0.7);
  pango_layout_set_text (layout, _("Predicted"), -1);
  pango_layout_get_pixel_size (layout, &tw, &th);
  cairo_move_to (cr, left + (cell * self->n - tw) / 2, 0);
  pango_cairo_show_layout (cr, layout);
  pango_layout_set_text (layout, _("True"), -1);
  pango_layout_get_pixel_size (layout, &tw, &th);
  cairo_move_to (cr, left - tw - 6, line_h + 2);
  pango_cairo_show_layout (cr, layout);

  for (int i = 0; i < self->n; i++) {
    gint64 row_sum = 0;
    for (int j = 0; j < self->n; j++)
      row_sum += self->counts[i * self->n + j];
    /* row label and column index */
    g_autofree char *label = g_strdup_printf ("%d %s", i, self->names[i]);
    pango_layout_set_text (layout, label, -1);
    pango_layout_get_pixel_size (layout, &tw, &th);
    cairo_set_source_rgba (cr, fg.red, fg.green, fg.blue, 0.85);
    cairo_move_to (cr, left - tw - 6, top + i * cell + (cell - th) / 2);
    pango_cairo_show_layout (cr, layout);
    g_autofree char *index = g_strdup_printf ("%d", i);
    pango_layout_set_text (layout, index, -1);
    pango_layout_get_pixel_size (layout, &tw, &th);
    cairo_move_to (cr, left + i * cell + (cell - tw) / 2, top - th - 1);
    pango_cairo_show_layout (cr, layout);

    for (int j = 0; j < self->n; j++) {
      gint64 count = self->counts[i * self->n + j];
      double share = row_sum > 0 ? (double) count / (double) row_sum : 0.0;
      double x = left + j * cell, y = top + i * cell;
      /* diagonal cells in blue, confusions in red; intensity by the row share */
      if (i == j)
        cairo_set_source_rgba (cr, 0.11, 0.44, 0.85, 0.08 + 0.92 * share);
      else
        cairo_set_source_rgba (cr, 0.88, 0.11, 0.14, count ? 0.08 + 0.92 * sqrt (share) : 0.03);
      cairo_rectangle (cr, x + 0.5, y + 0.5, cell - 1, cell - 1);
      cairo_fill (cr);
      if (count > 0 && cell >= 14) {
        g_autofree char *text = g_strdup_printf ("%" G_GINT64_FORMAT, count);
        pango_layout_set_text (layout, text, -1);
        pango_layout_get_pixel_size (layout, &tw, &th);
        if (tw <= cell - 2) {
          double strong = i == j ? share : sqrt (share);
          if (strong > 0.5)
            cairo_set_source_rgb (cr, 1, 1, 1);
          else
            cairo_set_source_rgba (cr, fg.red, fg.green, fg.blue, 0.9);
          cairo_move_to (cr, x + (cell - tw) / 2, y + (cell - th) / 2);
          pango_cairo_show_layout (cr, layout);
        }
      }
    }
  }
  g_object_unref (layout);
  cairo_destroy (cr);
}

static void
bp_confusion_matrix_finalize (GObject *object)
{
  BpConfusionMatrix *self = BP_CONFUSION_MATRIX (object);
  g_free (self->counts);
  g_strfreev (self->names);
  G_OBJECT_CLASS (bp_confusion_matrix_parent_class)->finalize (object);
}

static void
bp_confusion_matrix_class_init (BpConfusionMatrixClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->finalize = bp_confusion_matrix_finalize;
  widget_class->measure = bp_confusion_matrix_measure;
  widget_class->snapshot = bp_confusion_matrix_snapshot;
  gtk_widget_class_set_css_name (widget_class, "bp-confusion-matrix");
}

static void
bp_confusion_matrix_init (BpConfusionMatrix *self)
{
}

GtkWidget *
bp_confusion_matrix_new (void)
{
  return g_object_new (BP_TYPE_CONFUSION_MATRIX, NULL);
}

void
bp_confusion_matrix_set (BpConfusionMatrix *self, int n, const gint64 *counts,
                         const char *const *class_names)
{
  g_return_if_fail (BP_IS_CONFUSION_MATRIX (self));
  g_return_if_fail (n >= 0 && n <= 1000);
  g_return_if_fail (n == 0 || counts != NULL);
  gboolean resize = n != self->n;
  g_free (self->counts);
  g_strfreev (self->names);
  self->n = n;
  self->counts = g_memdup2 (counts, sizeof (gint64) * (gsize) n * (gsize) n);
  self->names = g_new0 (char *, n + 1);
  for (int i = 0; i < n; i++)
    self->names[i] = class_names && class_names[i] ? g_strdup (class_names[i])
                                                   : g_strdup_printf ("%d", i);
  if (resize)
    gtk_widget_queue_resize (GTK_WIDGET (self));
  else
    gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
bp_confusion_matrix_clear (BpConfusionMatrix *self)
{
  bp_confusion_matrix_set (self, 0, NULL, NULL);
}

int
bp_confusion_matrix_get_n_classes (BpConfusionMatrix *self)
{
  g_return_val_if_fail (BP_IS_CONFUSION_MATRIX (self), 0);
  return self->n;
}

gint64
bp_confusion_matrix_get_count (BpConfusionMatrix *self, int truth, int predicted)
{
  g_return_val_if_fail (BP_IS_CONFUSION_MATRIX (self), 0);
  g_return_val_if_fail (truth >= 0 && truth < self->n && predicted >= 0 && predicted < self->n, 0);
  return self->counts[truth * self->n + predicted];
}

double
bp_confusion_matrix_get_accuracy (BpConfusionMatrix *self)
{
  g_return_val_if_fail (BP_IS_CONFUSION_MATRIX (self), NAN);
  gint64 diag = 0, all = 0;
  for (int i = 0; i < self->n; i++)
    for (int j = 0; j < self->n; j++) {
      all += self->counts[i * self->n + j];
      if (i == j)
        diag += self->counts[i * self->n + j];
    }
  return all ? (double) diag / (double) all : NAN;
}
