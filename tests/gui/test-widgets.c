/* test-widgets.c: the reusable widgets: BpPlot (series, smoothing, log scale, zoom, read-out,
 * CSV and PNG export), BpImageGrid, BpConfusionMatrix and BpModelCanvas (layout without
 * overlaps, selection, zoom), drawn in a real window. */
#include "config.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "bp-confusion-matrix.h"
#include "bp-gui-test.h"
#include "bp-image-grid.h"
#include "bp-model-canvas.h"
#include "bp-plane-draw.h"
#include "bp-plane-view.h"
#include "bp-plot.h"

static GtkWidget *
show_in_window (GtkWidget *widget, int width, int height)
{
  GtkWidget *window = gtk_window_new ();
  gtk_window_set_default_size (GTK_WINDOW (window), width, height);
  gtk_window_set_child (GTK_WINDOW (window), widget);
  gtk_window_present (GTK_WINDOW (window));
  g_assert_true (bp_gui_wait (bp_gui_is_mapped, widget, 5000));
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

/* The RGB of pixel (x, y) of an ARGB32 surface. */
static void
pixel_rgb (cairo_surface_t *s, int x, int y, int *r, int *g, int *b)
{
  cairo_surface_flush (s);
  const guint32 *row = (const guint32 *) (void *) (cairo_image_surface_get_data (s) +
                                                   y * cairo_image_surface_get_stride (s));
  guint32 v = row[x];
  *r = (int) (v >> 16 & 0xff);
  *g = (int) (v >> 8 & 0xff);
  *b = (int) (v & 0xff);
}

/* bp-plane-draw on an image surface: a field's colours follow its values, a path is drawn
 * where its points are, classes tint their regions, and pixel and data coordinates invert. */
static void
test_plane_draw (void)
{
  enum { N = 64, W = 420, H = 300 };
  float *field = g_new (float, N * N);
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      double x = -2 + (j + 0.5) * 4.0 / N, y = -1 + (i + 0.5) * 2.0 / N;
      field[i * N + j] = (float) (x * x + 4 * y * y);
    }
  double xy[] = {-1.8, 0.8, -1.0, 0.0, 0.0, 0.0};
  BpPlanePath path = {xy, 3, {1.0, 0.0, 0.0, 1.0}, NULL};
  double mark[] = {0.0, 0.0};
  BpPlane p;
  bp_plane_init (&p);
  p.x0 = -2, p.x1 = 2, p.y0 = -1, p.y1 = 1;
  p.field = field;
  p.field_size = N;
  p.field_log = TRUE;
  p.paths = &path;
  p.n_paths = 1;
  p.marks = mark;
  p.n_marks = 1;
  p.fill_bg = TRUE;
  cairo_surface_t *s = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, W, H);
  cairo_t *cr = cairo_create (s);
  BpPlaneGeometry g;
  bp_plane_draw (cr, NULL, &p, W, H, &g);
  /* equal aspect: 4 units wide, 2 high */
  g_assert_cmpfloat (fabs (g.width / g.height - 2.0), <, 0.02);
  double px, py, x, y;
  bp_plane_to_pixel (&p, &g, 1.5, -0.5, &px, &py);
  bp_plane_from_pixel (&p, &g, px, py, &x, &y);
  g_assert_cmpfloat (fabs (x - 1.5) + fabs (y + 0.5), <, 1e-9);
  /* high values bright (viridis yellow), low values dark: a corner against a point near the
   * minimum that no line crosses */
  int r, gg, b, r2, g2, b2;
  bp_plane_to_pixel (&p, &g, 1.9, 0.9, &px, &py);
  pixel_rgb (s, (int) px, (int) py, &r, &gg, &b);
  bp_plane_to_pixel (&p, &g, 0.3, -0.3, &px, &py);
  pixel_rgb (s, (int) px, (int) py, &r2, &g2, &b2);
  g_assert_cmpint (r + gg + b, >, r2 + g2 + b2 + 100);
  /* the path in red, halfway along its first segment */
  bp_plane_to_pixel (&p, &g, -1.4, 0.4, &px, &py);
  pixel_rgb (s, (int) lround (px), (int) lround (py), &r, &gg, &b);
  g_assert_cmpint (r, >, 200);
  g_assert_cmpint (gg, <, 80);
  g_assert_cmpint (b, <, 80);
  cairo_destroy (cr);

  /* class regions: class 0 left of x = 0, class 1 right */
  float *probs = g_new (float, N * N * 2);
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      probs[(i * N + j) * 2 + 1] = j < N / 2 ? 0.0f : 1.0f;
      probs[(i * N + j) * 2] = 1.0f - probs[(i * N + j) * 2 + 1];
    }
  bp_plane_init (&p);
  p.x0 = -2, p.x1 = 2, p.y0 = -1, p.y1 = 1;
  p.probs = probs;
  p.n_classes = 2;
  p.field_size = N;
  p.fill_bg = TRUE;
  cr = cairo_create (s);
  bp_plane_draw (cr, NULL, &p, W, H, &g);
  double cr0, cg0, cb0, cr1, cg1, cb1;
  bp_plane_class_color (0, &cr0, &cg0, &cb0);
  bp_plane_class_color (1, &cr1, &cg1, &cb1);
  bp_plane_to_pixel (&p, &g, -1.0, 0.0, &px, &py);
  pixel_rgb (s, (int) px, (int) py, &r, &gg, &b);
  /* halfway to white */
  g_assert_cmpint (abs (r - (int) (255 * (0.5 + 0.5 * cr0))), <=, 2);
  g_assert_cmpint (abs (b - (int) (255 * (0.5 + 0.5 * cb0))), <=, 2);
  bp_plane_to_pixel (&p, &g, 1.0, 0.0, &px, &py);
  pixel_rgb (s, (int) px, (int) py, &r, &gg, &b);
  g_assert_cmpint (abs (r - (int) (255 * (0.5 + 0.5 * cr1))), <=, 2);
  cairo_destroy (cr);
  cairo_surface_destroy (s);
  g_free (probs);
  g_free (field);
}

/* BpPlaneView in a window: paths grow point by point, the tooltip reads the field. */
static void
test_plane_view (void)
{
  GtkWidget *widget = bp_plane_view_new ();
  BpPlaneView *v = BP_PLANE_VIEW (widget);
  float field[4] = {1, 2, 3, 4};
  bp_plane_view_set_region (v, 0, 2, 0, 2, TRUE);
  bp_plane_view_set_field (v, 2, field, FALSE);
  GdkRGBA red = {1, 0, 0, 1};
  int k = bp_plane_view_add_path (v, "path", &red);
  g_assert_cmpint (k, ==, 0);
  for (int i = 0; i < 5; i++)
    bp_plane_view_path_append (v, k, 0.2 * i, 0.1 * i);
  g_assert_cmpint (bp_plane_view_get_path_length (v, k), ==, 5);
  double marks[] = {1.0, 1.0, 0.5, 0.5};
  bp_plane_view_set_marks (v, 2, marks);
  GtkWidget *window = show_in_window (widget, 400, 400);
  bp_gui_spin (100);
  int w = gtk_widget_get_width (widget), h = gtk_widget_get_height (widget);
  /* the plot's lower-left quarter holds the cell (0, 0) of value 1 */
  g_autofree char *text = NULL;
  for (double f = 0.3; f < 0.5 && !text; f += 0.05)
    text = bp_plane_view_describe_point (v, w * f, h * (1 - f));
  g_assert_nonnull (text);
  g_assert_nonnull (strstr (text, "f = 1"));
  g_assert_null (bp_plane_view_describe_point (v, 0, 0));
  g_free (bp_gui_screenshot (window, "plane-view"));
  bp_plane_view_clear_paths (v);
  g_assert_cmpint (bp_plane_view_get_n_paths (v), ==, 0);
  close_window (window, widget);
}

static gboolean
rects_overlap (const graphene_rect_t *a, const graphene_rect_t *b)
{
  graphene_rect_t r;
  return graphene_rect_intersection (a, b, &r) && r.size.width > 0.5 && r.size.height > 0.5;
}

/* A residual block with a projection branch and a long concatenation skip. */
static void
test_model_canvas (void)
{
  GtkWidget *widget = bp_model_canvas_new ();
  BpModelCanvas *canvas = BP_MODEL_CANVAS (widget);
  const BpModelCanvasNode nodes[] = {
    {"Input", "x", "[3, 32, 32]", "0 parameters", NULL, 0},
    {"Conv2d", "conv1", "16, kernel_size=3", "448 parameters", NULL, 1},
    {"ReLU", "relu1", NULL, "0 parameters", NULL, 4},
    {"Conv2d", "conv2", "32, kernel_size=3, stride=2", "4,640 parameters", NULL, 1},
    {"BatchNorm2d", "bn2", NULL, "64 parameters", NULL, 3},
    {"Conv2d", "proj", "32, kernel_size=1, stride=2", "544 parameters", NULL, 1},
    {"Add", "add", NULL, "0 parameters", "input 2 \"proj\" has shape [32, 16, 16] but input 1 "
     "\"bn2\" has [32, 15, 15]: Add needs equal shapes", 6},
    {"Concat", "cat", "dim=1", "0 parameters", NULL, 6},
    {"Output", "output", NULL, "0 parameters", NULL, 9},
  };
  const BpModelCanvasEdge edges[] = {
    {0, 1, "3×32×32"}, {1, 2, "16×32×32"}, {2, 3, "16×32×32"}, {3, 4, "32×16×16"},
    {2, 5, "16×32×32"}, {4, 6, "32×16×16"}, {5, 6, "32×16×16"}, {6, 7, "32×16×16"},
    {1, 7, "16×32×32"}, {7, 8, "48×16×16"},
  };
  bp_model_canvas_set_header (canvas, "Total: 5,696 parameters");
  bp_model_canvas_set_graph (canvas, G_N_ELEMENTS (nodes), nodes, G_N_ELEMENTS (edges), edges);
  g_assert_cmpint (bp_model_canvas_get_n_nodes (canvas), ==, 9);
  g_assert_cmpint (bp_model_canvas_get_n_edges (canvas), ==, 10);
  g_assert_cmpstr (bp_model_canvas_get_edge_label (canvas, 1, 7), ==, "16×32×32");
  g_assert_null (bp_model_canvas_get_edge_label (canvas, 7, 1));
  GtkWidget *window = show_in_window (widget, 900, 1000);
  bp_model_canvas_zoom_fit (canvas);
  bp_gui_spin (50);

  /* blocks never overlap, labels lie off the blocks and off each other, every edge labelled */
  graphene_rect_t a, b;
  for (int i = 0; i < 9; i++) {
    g_assert_true (bp_model_canvas_get_node_bounds (canvas, i, &a));
    g_assert_cmpint (bp_model_canvas_node_at (canvas, a.origin.x + a.size.width / 2,
                                              a.origin.y + a.size.height / 2), ==, i);
    for (int j = i + 1; j < 9; j++) {
      g_assert_true (bp_model_canvas_get_node_bounds (canvas, j, &b));
      g_assert_false (rects_overlap (&a, &b));
    }
    for (int e = 0; e < (int) G_N_ELEMENTS (edges); e++) {
      g_assert_true (bp_model_canvas_get_label_bounds (canvas, e, &b));
      if (rects_overlap (&a, &b))
        g_error ("the label of edge %d overlaps block %d", e, i);
    }
  }
  for (int e = 0; e < (int) G_N_ELEMENTS (edges); e++)
    for (int f = e + 1; f < (int) G_N_ELEMENTS (edges); f++) {
      g_assert_true (bp_model_canvas_get_label_bounds (canvas, e, &a));
      g_assert_true (bp_model_canvas_get_label_bounds (canvas, f, &b));
      if (rects_overlap (&a, &b))
        g_error ("the labels of edges %d and %d overlap", e, f);
    }
  /* the chain runs down one column; each block lies below its inputs */
  graphene_rect_t input, conv1, add, output;
  bp_model_canvas_get_node_bounds (canvas, 0, &input);
  bp_model_canvas_get_node_bounds (canvas, 1, &conv1);
  bp_model_canvas_get_node_bounds (canvas, 6, &add);
  bp_model_canvas_get_node_bounds (canvas, 8, &output);
  g_assert_cmpfloat (fabs (input.origin.x - output.origin.x), <, 0.5);
  g_assert_cmpfloat (fabs (input.origin.x - add.origin.x), <, 0.5);
  for (int e = 0; e < (int) G_N_ELEMENTS (edges); e++) {
    bp_model_canvas_get_node_bounds (canvas, edges[e].from, &a);
    bp_model_canvas_get_node_bounds (canvas, edges[e].to, &b);
    g_assert_cmpfloat (a.origin.y + a.size.height, <, b.origin.y);
  }
  /* the whole graph fits the view */
  double gw, gh;
  bp_model_canvas_get_graph_size (canvas, &gw, &gh);
  double zoom = bp_model_canvas_get_zoom (canvas);
  g_assert_cmpfloat (gw * zoom, <=, gtk_widget_get_width (widget) + 0.5);
  g_assert_cmpfloat (gh * zoom, <=, gtk_widget_get_height (widget) + 0.5);

  /* selection and zoom */
  bp_model_canvas_set_selected (canvas, 6);
  g_assert_cmpint (bp_model_canvas_get_selected (canvas), ==, 6);
  g_free (bp_gui_screenshot (window, "model-canvas"));
  bp_model_canvas_zoom_in (canvas);
  g_assert_cmpfloat (bp_model_canvas_get_zoom (canvas), >, zoom);
  bp_model_canvas_zoom_out (canvas);
  g_assert_cmpfloat_with_epsilon (bp_model_canvas_get_zoom (canvas), zoom, 1e-9);
  bp_model_canvas_set_selected (canvas, 42);
  g_assert_cmpint (bp_model_canvas_get_selected (canvas), ==, -1);

  /* keyboard navigation (the actions the keys are bound to) */
  const struct {
    const char *where;
    int selected;
  } moves[] = {
    {"down", 0},  /* from nothing: the first block */
    {"down", 1},  {"down", 2}, {"down", 3}, /* relu1 -> conv2 (its row's block first) */
    {"right", 5}, /* proj, beside conv2 */
    {"down", 6},  /* to the Add */
    {"up", 4},    /* bn2: the input in the row just above */
    {"left", 4},  /* nothing left of bn2 */
    {"up", 3},    {"next", 5}, {"previous", 3}, {"last", 8}, {"first", 0}, {"none", -1},
  };
  for (guint i = 0; i < G_N_ELEMENTS (moves); i++) {
    g_assert_true (gtk_widget_activate_action (widget, "canvas.move", "s", moves[i].where));
    if (bp_model_canvas_get_selected (canvas) != moves[i].selected)
      g_error ("move %u (%s): block %d, not %d", i, moves[i].where,
               bp_model_canvas_get_selected (canvas), moves[i].selected);
  }

  /* a smaller graph keeps a valid selection; dark mode draws */
  bp_model_canvas_set_selected (canvas, 2);
  bp_model_canvas_set_graph (canvas, 3, nodes, 2, edges);
  g_assert_cmpint (bp_model_canvas_get_selected (canvas), ==, 2);
  bp_model_canvas_set_graph (canvas, 2, nodes, 2, edges); /* edge 1 -> 2 names no node */
  g_assert_cmpint (bp_model_canvas_get_selected (canvas), ==, -1);
  bp_model_canvas_set_graph (canvas, 0, NULL, 0, NULL);
  bp_model_canvas_set_placeholder (canvas, "Add an Input");
  g_free (bp_gui_screenshot (window, "model-canvas-empty"));
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
  g_test_add_func ("/widgets/model-canvas", test_model_canvas);
  g_test_add_func ("/widgets/plane-draw", test_plane_draw);
  g_test_add_func ("/widgets/plane-view", test_plane_view);
  return g_test_run ();
}
