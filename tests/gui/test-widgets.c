/* test-widgets.c: the reusable widgets: BpPlot (series, smoothing, log scale, zoom, read-out,
 * CSV and PNG export), BpImageGrid and BpConfusionMatrix, drawn in a real window. */
#include "config.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "bp-confusion-matrix.h"
#include "bp-gui-test.h"
#include "bp-image-grid.h"
#include "bp-plot.h"

static gboolean
is_mapped (gpointer data)
{
  return gtk_widget_get_mapped (GTK_WIDGET (data));
}

static GtkWidget *
show_in_window (GtkWidget *widget, int width, int height)
{
  GtkWidget *window = gtk_window_new ();
  gtk_window_set_default_size (GTK_WINDOW (window), width, height);
  gtk_window_set_child (GTK_WINDOW (window), widget);
  gtk_window_present (GTK_WINDOW (window));
  g_assert_true (bp_gui_wait (is_mapped, widget, 5000));
  return window;
}

/* Takes the widget out of its window and checks that nothing else holds it. */
static void
close_window (GtkWidget *window, GtkWidget *widget)
{
  g_object_ref (widget);
  gtk_window_set_child (GTK_WINDOW (window), NULL);
  bp_gui_destroy_window (window);
  g_assert_finalize_object (widget);
}

static void
test_series (void)
{
  BpSeries *s = bp_series_new ("loss", NULL);
  g_assert_cmpstr (bp_series_get_name (s), ==, "loss");
  g_assert_cmpint (bp_series_find_nearest (s, 1.0), ==, -1);
  double xs[] = {0, 1, 2, 3}, ys[] = {1, 3, NAN, 5};
  bp_series_append_many (s, 4, xs, ys);
  g_assert_cmpuint (bp_series_get_n_points (s), ==, 4);
  g_assert_cmpint (bp_series_find_nearest (s, 1.4), ==, 1);
  g_assert_cmpint (bp_series_find_nearest (s, 1.6), ==, 2);
  g_assert_cmpint (bp_series_find_nearest (s, -5), ==, 0);
  g_assert_cmpint (bp_series_find_nearest (s, 50), ==, 3);
  /* TensorBoard's debiased EMA, weight 0.5: 1, (0.25 + 1.5) / 0.75, NaN passed through, ... */
  double out[4];
  bp_series_smooth (s, 0.5, out);
  g_assert_cmpfloat_with_epsilon (out[0], 1.0, 1e-12);
  g_assert_cmpfloat_with_epsilon (out[1], 1.75 / 0.75, 1e-12);
  g_assert_true (isnan (out[2]));
  g_assert_cmpfloat_with_epsilon (out[3], (1.75 * 0.5 + 2.5) / 0.875, 1e-12);
  bp_series_smooth (s, 0.0, out);
  g_assert_cmpfloat (out[1], ==, 3.0);
  bp_series_clear (s);
  g_assert_cmpuint (bp_series_get_n_points (s), ==, 0);
  g_assert_finalize_object (s);
}

static void
test_plot (void)
{
  GtkWidget *widget = bp_plot_new ();
  BpPlot *plot = BP_PLOT (widget);
  bp_plot_set_title (plot, "Loss, \"train\"");
  bp_plot_set_axis_labels (plot, "Epoch", "Loss");
  GtkWidget *window = show_in_window (widget, 640, 400);
  g_assert_null (bp_plot_get_readout (plot, 1.0));

  GdkRGBA blue = {0.2, 0.4, 0.9, 1}, orange = {0.9, 0.4, 0.1, 1};
  g_autoptr (BpSeries) train = bp_series_new ("train", &blue);
  g_autoptr (BpSeries) val = bp_series_new ("val, held out", &orange);
  bp_series_set_markers (val, TRUE);
  bp_series_set_smooth (val, FALSE);
  bp_plot_add_series (plot, train);
  bp_plot_add_series (plot, val);
  g_assert_cmpuint (bp_plot_get_n_series (plot), ==, 2);
  for (int i = 0; i < 100; i++)
    bp_series_append (train, i / 50.0, 2.0 * exp (-i / 40.0) + 0.1 * sin (i));
  bp_series_append (val, 1.0, 0.9);
  bp_series_append (val, 2.0, 0.5);

  /* automatic range covers the points */
  double x0, x1, y0, y1;
  bp_plot_get_view (plot, &x0, &x1, &y0, &y1);
  g_assert_cmpfloat (x0, <=, 0.0);
  g_assert_cmpfloat (x1, >=, 1.98);
  g_assert_cmpfloat (y1, >=, 2.0);

  /* hover read-out: the exact values of the nearest points */
  g_autofree char *readout = bp_plot_get_readout (plot, 1.01);
  g_assert_nonnull (strstr (readout, "Epoch = 1"));
  g_assert_true (strstr (readout, "val, held out: 0.9\n") || g_str_has_suffix (readout, "val, held out: 0.9"));
  g_autofree char *elsewhere = bp_plot_get_readout (plot, 1.3);
  g_assert_nonnull (strstr (elsewhere, "val, held out: 0.9 (Epoch 1)"));

  /* smoothing: a property, bound to the chart's slider, shown in the read-out */
  bp_plot_set_smoothing (plot, 0.8);
  g_assert_cmpfloat (bp_plot_get_smoothing (plot), ==, 0.8);
  bp_plot_set_smoothing (plot, 5.0);
  g_assert_cmpfloat (bp_plot_get_smoothing (plot), ==, 0.99);
  bp_plot_set_smoothing (plot, 0.6);
  g_autofree char *smoothed = bp_plot_get_readout (plot, 1.0);
  g_assert_nonnull (strstr (smoothed, "smoothed"));

  /* log scale from the chart's action; points <= 0 are left out of the range */
  bp_series_append (val, 3.0, -1.0);
  g_assert_true (gtk_widget_activate_action (widget, "plot.log-scale", NULL));
  g_assert_true (bp_plot_get_log_scale (plot));
  bp_plot_get_view (plot, NULL, NULL, &y0, &y1);
  g_assert_cmpfloat (y0, >, 0.0);
  g_assert_cmpfloat (y1, >=, 2.0);
  g_free (bp_gui_screenshot (window, "plot-log"));
  bp_plot_set_log_scale (plot, FALSE);

  /* zoom and reset */
  bp_plot_zoom_to (plot, 0.5, 1.0, 0.2, 1.2);
  g_assert_true (bp_plot_get_zoomed (plot));
  bp_plot_get_view (plot, &x0, &x1, &y0, &y1);
  g_assert_cmpfloat_with_epsilon (x0, 0.5, 1e-12);
  g_assert_cmpfloat_with_epsilon (y1, 1.2, 1e-12);
  g_assert_true (gtk_widget_activate_action (widget, "plot.reset-zoom", NULL));
  g_assert_false (bp_plot_get_zoomed (plot));

  bp_plot_set_marker (plot, 1.5, "Stopped here");
  g_free (bp_gui_screenshot (window, "plot-smoothed"));

  /* hovering the chart draws the read-out (the pointer as the motion controller reports it) */
  GtkWidget *canvas = NULL;
  for (GtkWidget *c = gtk_widget_get_first_child (widget); c; c = gtk_widget_get_next_sibling (c))
    if (GTK_IS_DRAWING_AREA (c))
      canvas = c;
  g_assert_nonnull (canvas);
  GListModel *controllers = gtk_widget_observe_controllers (canvas);
  for (guint i = 0; i < g_list_model_get_n_items (controllers); i++) {
    g_autoptr (GObject) controller = g_list_model_get_item (controllers, i);
    if (GTK_IS_EVENT_CONTROLLER_MOTION (controller))
      g_signal_emit_by_name (controller, "motion", gtk_widget_get_width (canvas) * 0.45,
                             gtk_widget_get_height (canvas) * 0.5);
  }
  g_object_unref (controllers);
  g_free (bp_gui_screenshot (window, "plot-hover"));

  /* CSV: every point, with the smoothed value; names quoted where needed */
  g_autofree char *dir = g_dir_make_tmp ("bp-plot-XXXXXX", NULL);
  g_autofree char *csv_path = g_build_filename (dir, "loss.csv", NULL);
  g_autoptr (GError) error = NULL;
  g_assert_true (bp_plot_export_csv (plot, csv_path, &error));
  g_assert_no_error (error);
  g_autofree char *csv = NULL;
  g_assert_true (g_file_get_contents (csv_path, &csv, NULL, NULL));
  g_auto (GStrv) lines = g_strsplit (csv, "\n", -1);
  g_assert_cmpstr (lines[0], ==, "series,x,y,smoothed");
  g_assert_cmpstr (lines[1], ==, "train,0,2,2");
  g_assert_cmpuint (g_strv_length (lines), ==, 1 + 100 + 3 + 1);
  g_assert_cmpstr (lines[101], ==, "\"val, held out\",1,0.90000000000000002,0.90000000000000002");
  g_assert_cmpstr (lines[103], ==, "\"val, held out\",3,-1,-1");
  g_assert_cmpstr (lines[104], ==, "");
  /* the second train row: raw and the debiased EMA (weight 0.6) */
  g_auto (GStrv) row = g_strsplit (lines[2], ",", -1);
  double y = g_ascii_strtod (row[2], NULL), s = g_ascii_strtod (row[3], NULL);
  g_assert_cmpfloat_with_epsilon (y, 2.0 * exp (-1 / 40.0) + 0.1 * sin (1), 1e-15);
  g_assert_cmpfloat_with_epsilon (s, (0.6 * 0.4 * 2.0 + 0.4 * y) / (1 - 0.36), 1e-12);

  /* PNG at a given size, and at the widget's size */
  g_autofree char *png_path = g_build_filename (dir, "loss.png", NULL);
  g_assert_true (bp_plot_export_png (plot, png_path, 900, 500, &error));
  g_autoptr (GdkTexture) texture = gdk_texture_new_from_filename (png_path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (gdk_texture_get_width (texture), ==, 900);
  g_assert_cmpint (gdk_texture_get_height (texture), ==, 500);
  g_assert_true (bp_plot_export_png (plot, png_path, 0, 0, &error));
  g_autofree char *bad = g_build_filename (dir, "no", "such", "dir.png", NULL);
  g_assert_false (bp_plot_export_png (plot, bad, 100, 100, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_FAILED);
  g_clear_error (&error);
  g_unlink (csv_path);
  g_unlink (png_path);
  g_rmdir (dir);

  bp_plot_remove_all_series (plot);
  g_assert_cmpuint (bp_plot_get_n_series (plot), ==, 0);
  close_window (window, widget);
}

static void
test_image_grid (void)
{
  GtkWidget *widget = bp_image_grid_new ();
  BpImageGrid *grid = BP_IMAGE_GRID (widget);
  bp_image_grid_set_columns (grid, 4);
  guint8 pixels[6 * 8 * 8];
  for (guint i = 0; i < sizeof pixels; i++)
    pixels[i] = (guint8) ((i % 8) * 32 + (i / 64) * 8);
  const char *captions[] = {"Sneaker", "Bag", "Coat\n(is Shirt)", "Dress", "Bag", "Sandal"};
  gboolean wrong[] = {FALSE, FALSE, TRUE, FALSE, FALSE, TRUE};
  bp_image_grid_set_images (grid, 6, 8, 8, 1, pixels, captions, wrong);
  g_assert_cmpint (bp_image_grid_get_n_images (grid), ==, 6);
  g_assert_cmpstr (bp_image_grid_get_caption (grid, 2), ==, "Coat\n(is Shirt)");
  g_assert_true (bp_image_grid_get_wrong (grid, 2));
  g_assert_false (bp_image_grid_get_wrong (grid, 1));
  GtkWidget *window = show_in_window (widget, 420, 300);
  g_free (bp_gui_screenshot (window, "image-grid"));
  bp_image_grid_clear (grid);
  g_assert_cmpint (bp_image_grid_get_n_images (grid), ==, 0);
  close_window (window, widget);
}

static void
test_confusion_matrix (void)
{
  GtkWidget *widget = bp_confusion_matrix_new ();
  BpConfusionMatrix *m = BP_CONFUSION_MATRIX (widget);
  g_assert_true (isnan (bp_confusion_matrix_get_accuracy (m)));
  gint64 counts[9] = {8, 1, 1, 0, 9, 1, 2, 0, 8};
  const char *names[] = {"cat", "dog", "bird"};
  bp_confusion_matrix_set (m, 3, counts, names);
  g_assert_cmpint (bp_confusion_matrix_get_n_classes (m), ==, 3);
  g_assert_cmpint (bp_confusion_matrix_get_count (m, 2, 0), ==, 2);
  g_assert_cmpfloat_with_epsilon (bp_confusion_matrix_get_accuracy (m), 25.0 / 30.0, 1e-12);
  GtkWidget *window = show_in_window (widget, 360, 300);
  g_free (bp_gui_screenshot (window, "confusion-matrix"));
  close_window (window, widget);
}

int
main (int argc, char **argv)
{
  if (!bp_gui_test_init (&argc, &argv))
    return 0;
  g_test_add_func ("/widgets/series", test_series);
  g_test_add_func ("/widgets/plot", test_plot);
  g_test_add_func ("/widgets/image-grid", test_image_grid);
  g_test_add_func ("/widgets/confusion-matrix", test_confusion_matrix);
  return g_test_run ();
}
