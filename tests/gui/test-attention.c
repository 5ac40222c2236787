/* test-attention.c: the attention heatmap: bp-heatmap-draw (colours, token labels, layout,
 * PNG), the BpAttentionMap widget (layers, heads and their mean, drop-downs, hover cells,
 * Chinese tokens, 64 tokens, export), the reversal task learned by one attention layer, whose
 * weights the map shows as the anti-diagonal, and the Train page with a language model: the
 * corpora, the live heatmap, text generated on a worker thread, its refusals and Stop. */
#include "config.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "bp-attention-map.h"
#include "bp-backend.h"
#include <adwaita.h>

#include "bp-gui-test.h"
#include "bp-test.h"
#include "bp-heatmap-draw.h"
#include "bp-ops-eltwise.h"
#include "bp-text.h"
#include "bp-train-page.h"

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

static void
close_window (GtkWidget *window, GtkWidget *widget)
{
  g_object_ref (widget);
  gtk_window_set_child (GTK_WINDOW (window), NULL);
  bp_gui_destroy_window (window);
  g_assert_finalize_object (widget);
}

/* The cells reachable in the widget (sampled every 2 pixels): a len x len mask; returns how
 * many distinct cells were hit. */
static int
reachable_cells (BpAttentionMap *map, int len, gboolean *hit)
{
  memset (hit, 0, sizeof (gboolean) * len * len);
  int w = gtk_widget_get_width (GTK_WIDGET (map)), h = gtk_widget_get_height (GTK_WIDGET (map));
  int n = 0;
  for (int y = 0; y < h; y += 2)
    for (int x = 0; x < w; x += 2) {
      int q, k;
      if (bp_attention_map_cell_at (map, x + 0.5, y + 0.5, &q, &k) && !hit[q * len + k]) {
        g_assert_cmpint (q, <, len);
        g_assert_cmpint (k, <, len);
        hit[q * len + k] = TRUE;
        n++;
      }
    }
  return n;
}

/* A point of the widget inside cell (q, k), found by sampling. */
static gboolean
point_in_cell (BpAttentionMap *map, int q, int k, double *px, double *py)
{
  int w = gtk_widget_get_width (GTK_WIDGET (map)), h = gtk_widget_get_height (GTK_WIDGET (map));
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      int a, b;
      if (bp_attention_map_cell_at (map, x + 0.5, y + 0.5, &a, &b) && a == q && b == k) {
        *px = x + 0.5;
        *py = y + 0.5;
        return TRUE;
      }
    }
  return FALSE;
}

static void
collect_of_type (GtkWidget *widget, GType type, GPtrArray *out)
{
  for (GtkWidget *c = gtk_widget_get_first_child (widget); c; c = gtk_widget_get_next_sibling (c)) {
    if (G_TYPE_CHECK_INSTANCE_TYPE (c, type))
      g_ptr_array_add (out, c);
    collect_of_type (c, type, out);
  }
}

/* The nth descendant of the type, depth first. */
static GtkWidget *
find_child_of_type (GtkWidget *widget, GType type, guint nth)
{
  g_autoptr (GPtrArray) all = g_ptr_array_new ();
  collect_of_type (widget, type, all);
  return nth < all->len ? g_ptr_array_index (all, nth) : NULL;
}

/* ---- bp-heatmap-draw ---- */

static void
test_heatmap_draw (void)
{
  double r, g, b;
  bp_heatmap_color (0.0, &r, &g, &b);
  g_assert_cmpfloat_with_epsilon (r, 0x44 / 255.0, 1e-9); /* viridis: dark purple ... */
  g_assert_cmpfloat_with_epsilon (b, 0x54 / 255.0, 1e-9);
  bp_heatmap_color (1.0, &r, &g, &b);
  g_assert_cmpfloat_with_epsilon (r, 0xfd / 255.0, 1e-9); /* ... to yellow */
  g_assert_cmpfloat_with_epsilon (g, 0xe7 / 255.0, 1e-9);
  bp_heatmap_color (NAN, &r, &g, &b);
  g_assert_cmpfloat_with_epsilon (r, 0x44 / 255.0, 1e-9);
  bp_heatmap_color (7.0, &r, &g, &b);
  g_assert_cmpfloat_with_epsilon (r, 0xfd / 255.0, 1e-9);

  const char *tokens[] = {" ", "\n", "\t", "床", "", "a\x01", "row 1", "  "};
  const char *want[] = {"␣", "↵", "⇥", "床", "∅", "a\xef\xbf\xbd", "row 1", "␣␣"};
  for (int k = 0; k < 8; k++) {
    g_autofree char *label = bp_heatmap_token_label (tokens[k]);
    g_assert_cmpstr (label, ==, want[k]);
  }
  g_autofree char *null_label = bp_heatmap_token_label (NULL);
  g_assert_cmpstr (null_label, ==, "∅");

  /* a 3 x 3 map: layout inside the rectangle, cells found back, colours of the cells */
  float values[9] = {1, 0, 0, 0.5f, 0.5f, 0, 0.2f, 0.3f, 0.5f};
  const char *toks[] = {"床", "前", "月"};
  BpHeatmap h;
  bp_heatmap_init (&h);
  h.n = 3;
  h.values = values;
  h.tokens = toks;
  h.row_title = "Query";
  h.col_title = "Key";
  g_assert_cmpfloat (bp_heatmap_scale_max (&h), ==, 1.0);
  BpHeatmapGeometry geo;
  bp_heatmap_layout (NULL, &h, 300, 200, &geo);
  g_assert_cmpint (geo.n, ==, 3);
  g_assert_false (geo.col_rotated);
  g_assert_cmpfloat (geo.cell, >=, 20);
  g_assert_cmpfloat (geo.left + 3 * geo.cell, <=, geo.legend_x);
  g_assert_cmpfloat (geo.legend_x + geo.legend_w, <=, 300);
  g_assert_cmpfloat (geo.top + 3 * geo.cell, <=, 200);
  int row, col;
  g_assert_true (bp_heatmap_cell_at (&geo, geo.left + 2.5 * geo.cell, geo.top + 0.5 * geo.cell,
                                     &row, &col));
  g_assert_cmpint (row, ==, 0);
  g_assert_cmpint (col, ==, 2);
  g_assert_false (bp_heatmap_cell_at (&geo, geo.left - 1, geo.top + 1, &row, &col));
  g_assert_false (bp_heatmap_cell_at (&geo, geo.left + 1, geo.top + 3 * geo.cell + 1, &row, &col));

  cairo_surface_t *cells = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, 3, 3);
  bp_heatmap_fill_cells (&h, cells);
  const guint32 *px = (const guint32 *) cairo_image_surface_get_data (cells);
  int stride = cairo_image_surface_get_stride (cells) / 4;
  g_assert_cmphex (px[0], ==, 0xfffde725);          /* 1: yellow */
  g_assert_cmphex (px[1], ==, 0xff440154);          /* 0: purple */
  g_assert_cmphex (px[stride + 1], ==, 0xff21918c); /* 0.5: the middle (teal) */
  cairo_surface_destroy (cells);

  /* long labels stand turned above their columns */
  const char *rows[] = {"row 1", "row 2", "row 3"};
  h.tokens = rows;
  bp_heatmap_layout (NULL, &h, 300, 200, &geo);
  g_assert_true (geo.col_rotated);

  /* the PNG: a size for the length, and the drawn cells where the geometry says */
  g_autofree char *dir = g_dir_make_tmp ("bp-heatmap-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "map.png", NULL);
  g_autoptr (GError) error = NULL;
  h.tokens = toks;
  int pw, ph;
  g_assert_true (bp_heatmap_write_png (&h, path, 0, 0, &pw, &ph, &geo, &error));
  g_assert_no_error (error);
  g_assert_cmpfloat (geo.cell, ==, 36); /* 640 / 3, at most 36 */
  cairo_surface_t *png = cairo_image_surface_create_from_png (path);
  g_assert_cmpint (cairo_surface_status (png), ==, CAIRO_STATUS_SUCCESS);
  g_assert_cmpint (cairo_image_surface_get_width (png), ==, pw);
  g_assert_cmpint (cairo_image_surface_get_height (png), ==, ph);
  g_assert_cmpint (pw, >=, geo.legend_x + geo.legend_w);
  /* every cell's middle has its colour */
  const guint32 *pix = (const guint32 *) cairo_image_surface_get_data (png);
  int pstride = cairo_image_surface_get_stride (png) / 4;
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) {
      guint32 c = pix[(int) (geo.top + (i + 0.5) * geo.cell) * pstride +
                      (int) (geo.left + (j + 0.5) * geo.cell)];
      bp_heatmap_color (values[i * 3 + j], &r, &g, &b);
      g_assert_cmpint (abs ((int) ((c >> 16) & 0xff) - (int) lround (r * 255)), <=, 1);
      g_assert_cmpint (abs ((int) ((c >> 8) & 0xff) - (int) lround (g * 255)), <=, 1);
      g_assert_cmpint (abs ((int) (c & 0xff) - (int) lround (b * 255)), <=, 1);
    }
  /* the background is white */
  g_assert_cmphex (pix[0] & 0xffffff, ==, 0xffffff);
  cairo_surface_destroy (png);
  g_autofree char *bad = g_build_filename (dir, "no", "such", "map.png", NULL);
  g_assert_false (bp_heatmap_write_png (&h, bad, 100, 100, NULL, NULL, NULL, &error));
  g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
  g_assert_nonnull (strstr (error->message, "No such file or directory"));
  g_unlink (path);
  g_rmdir (dir);
}

/* ---- the widget ---- */

#define T 6

static void
test_attention_map (void)
{
  GtkWidget *widget = bp_attention_map_new ();
  BpAttentionMap *map = BP_ATTENTION_MAP (widget);
  GtkWidget *window = show_in_window (widget, 560, 460);
  g_assert_null (bp_attention_map_get_matrix (map));
  g_assert_cmpint (bp_attention_map_get_length (map), ==, 0);
  g_assert_false (bp_attention_map_cell_at (map, 100, 100, NULL, NULL));
  g_free (bp_gui_screenshot (window, "attention-map-empty"));

  /* 2 layers x 2 heads: layer 0 head 0 the diagonal, head 1 the previous token; layer 1 the
   * causal mean (1 / (i + 1) on j <= i) in both heads */
  const char *tokens[T] = {"床", "前", "明", "月", "光", " "};
  const char *layers[] = {"block1", "block2"};
  float w[2 * 2 * T * T] = {0};
  for (int i = 0; i < T; i++) {
    w[(0 * T + i) * T + i] = 1.0f;
    w[(1 * T + i) * T + MAX (i - 1, 0)] = 1.0f;
    for (int j = 0; j <= i; j++)
      for (int hh = 0; hh < 2; hh++)
        w[((2 + hh) * T + i) * T + j] = 1.0f / (i + 1);
  }
  bp_attention_map_set_data (map, 2, 2, T, tokens, layers, w);
  g_assert_cmpint (bp_attention_map_get_n_layers (map), ==, 2);
  g_assert_cmpint (bp_attention_map_get_n_heads (map), ==, 2);
  g_assert_cmpint (bp_attention_map_get_length (map), ==, T);
  g_assert_cmpuint (bp_attention_map_get_n_updates (map), ==, 1);
  /* the first layer, the mean of its heads */
  g_assert_cmpint (bp_attention_map_get_layer (map), ==, 0);
  g_assert_cmpint (bp_attention_map_get_head (map), ==, -1);
  const float *m = bp_attention_map_get_matrix (map);
  g_assert_cmpfloat (m[0], ==, 1.0f);
  g_assert_cmpfloat (m[3 * T + 3], ==, 0.5f);
  g_assert_cmpfloat (m[3 * T + 2], ==, 0.5f);
  g_assert_cmpfloat (m[3 * T + 4], ==, 0.0f);

  /* the drop-downs choose the head and the layer, and follow the properties */
  GtkWidget *layer_drop = find_child_of_type (widget, GTK_TYPE_DROP_DOWN, 0);
  GtkWidget *head_drop = find_child_of_type (widget, GTK_TYPE_DROP_DOWN, 1);
  g_assert_nonnull (layer_drop);
  g_assert_nonnull (head_drop);
  g_assert_true (gtk_widget_is_sensitive (head_drop));
  GListModel *heads = gtk_drop_down_get_model (GTK_DROP_DOWN (head_drop));
  g_assert_cmpuint (g_list_model_get_n_items (heads), ==, 3);
  g_assert_cmpstr (gtk_string_list_get_string (GTK_STRING_LIST (heads), 0), ==, "Mean of heads");
  g_assert_cmpstr (gtk_string_list_get_string (GTK_STRING_LIST (heads), 2), ==, "Head 2");
  GListModel *layer_model = gtk_drop_down_get_model (GTK_DROP_DOWN (layer_drop));
  g_assert_cmpstr (gtk_string_list_get_string (GTK_STRING_LIST (layer_model), 1), ==, "block2");
  gtk_drop_down_set_selected (GTK_DROP_DOWN (head_drop), 2);
  g_assert_cmpint (bp_attention_map_get_head (map), ==, 1);
  m = bp_attention_map_get_matrix (map);
  g_assert_cmpfloat (m[3 * T + 2], ==, 1.0f);
  g_assert_cmpfloat (m[3 * T + 3], ==, 0.0f);
  gtk_drop_down_set_selected (GTK_DROP_DOWN (layer_drop), 1);
  g_assert_cmpint (bp_attention_map_get_layer (map), ==, 1);
  g_assert_cmpint (bp_attention_map_get_head (map), ==, 1);
  m = bp_attention_map_get_matrix (map);
  g_assert_cmpfloat_with_epsilon (m[3 * T + 0], 0.25, 1e-7);
  g_object_set (map, "head", 0, "layer", 0, NULL);
  g_assert_cmpuint (gtk_drop_down_get_selected (GTK_DROP_DOWN (head_drop)), ==, 1);
  g_assert_cmpuint (gtk_drop_down_get_selected (GTK_DROP_DOWN (layer_drop)), ==, 0);
  m = bp_attention_map_get_matrix (map);
  g_assert_cmpfloat (m[4 * T + 4], ==, 1.0f);

  /* a live update with the same shape keeps the choice */
  w[(0 * T + 4) * T + 4] = 0.25f;
  bp_attention_map_set_data (map, 2, 2, T, tokens, layers, w);
  g_assert_cmpint (bp_attention_map_get_head (map), ==, 0);
  g_assert_cmpfloat (bp_attention_map_get_matrix (map)[4 * T + 4], ==, 0.25f);
  g_assert_cmpuint (bp_attention_map_get_n_updates (map), ==, 2);
  bp_attention_map_set_head (map, -1);

  /* every cell can be pointed at, and says what it is */
  bp_gui_spin (100);
  gboolean hit[T * T];
  g_assert_cmpint (reachable_cells (map, T, hit), ==, T * T);
  g_assert_false (bp_attention_map_cell_at (map, 1, 1, NULL, NULL));
  double x = 0, y = 0;
  g_assert_true (point_in_cell (map, 3, 2, &x, &y));
  int q, k;
  g_assert_true (bp_attention_map_cell_at (map, x, y, &q, &k));
  g_assert_cmpint (q, ==, 3);
  g_assert_cmpint (k, ==, 2);
  g_autofree char *text = bp_attention_map_describe_cell (map, 3, 2);
  g_assert_cmpstr (text, ==, "query 4 “月” → key 3 “明”: 0.500");
  g_autofree char *space = bp_attention_map_describe_cell (map, 5, 4);
  g_assert_cmpstr (space, ==, "query 6 “␣” → key 5 “光”: 0.500");
  g_assert_null (bp_attention_map_describe_cell (map, T, 0));

  /* Chinese tokens render with a real font (the set-up installs one), not boxes */
  PangoLayout *layout = gtk_widget_create_pango_layout (widget, "床前明月光");
  g_assert_cmpint (pango_layout_get_unknown_glyphs_count (layout), ==, 0);
  g_object_unref (layout);

  /* hovering: the pointer as the motion controller reports it (the cell is outlined) */
  GtkWidget *canvas = find_child_of_type (widget, GTK_TYPE_DRAWING_AREA, 0);
  g_assert_nonnull (canvas);
  graphene_point_t cp;
  g_assert_true (gtk_widget_compute_point (widget, canvas, &GRAPHENE_POINT_INIT (x, y), &cp));
  GListModel *controllers = gtk_widget_observe_controllers (canvas);
  for (guint i = 0; i < g_list_model_get_n_items (controllers); i++) {
    g_autoptr (GObject) controller = g_list_model_get_item (controllers, i);
    if (GTK_IS_EVENT_CONTROLLER_MOTION (controller))
      g_signal_emit_by_name (controller, "motion", (double) cp.x, (double) cp.y);
  }
  g_object_unref (controllers);
  g_free (bp_gui_screenshot (window, "attention-map"));

  /* PNG export */
  g_autofree char *dir = g_dir_make_tmp ("bp-attention-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "map.png", NULL);
  g_autoptr (GError) error = NULL;
  g_assert_true (bp_attention_map_export_png (map, path, 0, 0, &error));
  g_assert_no_error (error);
  g_autoptr (GdkTexture) texture = gdk_texture_new_from_filename (path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (gdk_texture_get_width (texture), >, T * 36);
  g_autofree char *bad = g_build_filename (dir, "no", "such", "map.png", NULL);
  g_assert_false (bp_attention_map_export_png (map, bad, 200, 200, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_FAILED);
  g_clear_error (&error);
  g_unlink (path);
  g_rmdir (dir);

  /* 64 tokens in one layer of one head: every cell still on screen, no head mean offered */
  enum { L = 64 };
  char *many[L];
  float *big = g_new0 (float, L * L);
  for (int i = 0; i < L; i++) {
    many[i] = g_strdup_printf ("%c", "abcdefghijklmnopqrstuvwxyz .,"[i % 29]);
    for (int j = 0; j <= i; j++)
      big[i * L + j] = (j == i ? 0.5f : 0.0f) + 0.5f / (i + 1);
  }
  bp_attention_map_set_data (map, 1, 1, L, (const char *const *) many, NULL, big);
  g_assert_cmpint (bp_attention_map_get_head (map), ==, 0);
  g_assert_cmpuint (g_list_model_get_n_items (heads), ==, 1);
  g_assert_cmpstr (gtk_string_list_get_string (GTK_STRING_LIST (layer_model), 0), ==, "1");
  bp_gui_spin (200);
  gboolean *hit_many = g_new (gboolean, L * L);
  g_assert_cmpint (reachable_cells (map, L, hit_many), ==, L * L);
  g_free (hit_many);
  g_free (bp_gui_screenshot (window, "attention-map-64"));
  for (int i = 0; i < L; i++)
    g_free (many[i]);
  g_free (big);

  /* image rows as tokens ("row 1" ...): turned column labels */
  char *rows[28];
  float *img = g_new0 (float, 28 * 28);
  for (int i = 0; i < 28; i++) {
    rows[i] = g_strdup_printf ("row %d", i + 1);
    for (int j = 0; j < 28; j++)
      img[i * 28 + j] = 1.0f / 28;
  }
  bp_attention_map_set_data (map, 1, 1, 28, (const char *const *) rows, NULL, img);
  g_free (bp_gui_screenshot (window, "attention-map-rows"));
  for (int i = 0; i < 28; i++)
    g_free (rows[i]);
  g_free (img);

  bp_attention_map_clear (map);
  g_assert_null (bp_attention_map_get_matrix (map));
  g_assert_false (gtk_widget_is_sensitive (head_drop));
  close_window (window, widget);
}

/* ---- the reversal task ---- */

/* One attention layer learns to reverse 8 tokens (the recipe of tests/test-text.c); the map
 * shows a held-out sequence's weights: every query row's largest weight is on key T-1-i. */
static void
test_reversal (void)
{
  g_autoptr (GError) error = NULL;
  const int64_t t = 8;
  BpSeqTask *task;
  double loss_value = 0;
  BpModel *m = bp_test_train_reverser (200, &task, &loss_value);
  int64_t idx[1];

  /* one held-out sequence through the model, its weights per head (1, H, T, T) */
  bp_model_set_training (m, false);
  idx[0] = 4000;
  BpTensor *x, *y;
  g_assert_true (bp_seq_task_batch (task, idx, 1, &x, &y, &error));
  bp_model_capture_attention (m, "attn", 1);
  bool was = bp_set_grad_enabled (false);
  BpTensor *logits = bp_model_forward (m, x);
  bp_set_grad_enabled (was);
  BpTensor *w = bp_model_attention (m);
  g_assert_nonnull (w);
  g_assert_cmpint (w->ndim, ==, 4);
  g_assert_cmpint (w->shape[1], ==, 1);
  g_assert_cmpint (w->shape[2], ==, t);
  char *tokens[8];
  for (int i = 0; i < t; i++)
    tokens[i] = g_strdup_printf ("%d", (int) x->data[i]);
  const char *ids[] = {"attn"};

  GtkWidget *widget = bp_attention_map_new ();
  BpAttentionMap *map = BP_ATTENTION_MAP (widget);
  GtkWidget *window = show_in_window (widget, 420, 380);
  bp_attention_map_set_data (map, 1, 1, (int) t, (const char *const *) tokens, ids, w->data);
  const float *mat = bp_attention_map_get_matrix (map);
  g_assert_nonnull (mat);
  double anti = 0;
  for (int i = 0; i < t; i++) {
    int best = 0;
    for (int j = 1; j < t; j++)
      if (mat[i * t + j] > mat[i * t + best])
        best = j;
    g_assert_cmpint (best, ==, t - 1 - i);
    anti += mat[i * t + t - 1 - i];
  }
  g_test_message ("reversal: loss %.3f after 200 steps, mean weight on the anti-diagonal %.3f",
                  loss_value, anti / t);
  g_autofree char *cell = bp_attention_map_describe_cell (map, 0, (int) t - 1);
  g_assert_true (g_str_has_prefix (cell, "query 1 “"));
  g_free (bp_gui_screenshot (window, "attention-reversal"));
  close_window (window, widget);

  for (int i = 0; i < t; i++)
    g_free (tokens[i]);
  bp_model_capture_attention (m, NULL, 0);
  bp_tensor_unref (x);
  bp_tensor_unref (y);
  bp_tensor_unref (logits);
  bp_model_free (m);
  bp_seq_task_free (task);
}

/* ---- the Train page with a language model ---- */

static GtkWidget *
page_child (BpTrainPage *page, const char *name)
{
  return bp_gui_template_child (page, BP_TYPE_TRAIN_PAGE, name);
}

static void
select_item (AdwComboRow *row, const char *text)
{
  GListModel *model = adw_combo_row_get_model (row);
  for (guint k = 0; k < g_list_model_get_n_items (model); k++) {
    g_autoptr (GtkStringObject) item = g_list_model_get_item (model, k);
    if (g_str_equal (gtk_string_object_get_string (item), text)) {
      adw_combo_row_set_selected (row, k);
      return;
    }
  }
  g_error ("no item \"%s\"", text);
}

static gboolean
two_heatmaps (gpointer data)
{
  return bp_attention_map_get_n_updates (data) >= 2;
}

static gboolean
run_ended (gpointer data)
{
  BpTrainRun *run = bp_train_page_get_run (data);
  return run && !bp_train_run_is_active (run);
}

/* The Generate button follows the action train.generate. */
static gboolean
can_generate (gpointer data)
{
  return gtk_widget_is_sensitive (page_child (data, "generate_button"));
}

static int
buffer_chars (BpTrainPage *page)
{
  return gtk_text_buffer_get_char_count (
    gtk_text_view_get_buffer (GTK_TEXT_VIEW (page_child (page, "generate_view"))));
}

typedef struct {
  BpTrainPage *page;
  int chars;
} Waiting;

static gboolean
has_chars (gpointer data)
{
  Waiting *w = data;
  return buffer_chars (w->page) >= w->chars;
}

static void
test_train_page (void)
{
  g_autofree char *tang = g_build_filename (bp_text_fortunes_dir (), "tang300", NULL);
  if (!g_file_test (tang, G_FILE_TEST_EXISTS)) {
    g_test_skip ("fortunes-zh is not installed: no Chinese corpus to train on");
    return;
  }
  GtkWidget *widget = bp_train_page_new ();
  BpTrainPage *page = BP_TRAIN_PAGE (widget);
  GtkWidget *window = show_in_window (widget, 1500, 1000);
  GtkWidget *gen_card = page_child (page, "generate_card");
  GtkWidget *attn_card = page_child (page, "attention_card");
  g_assert_false (gtk_widget_get_visible (gen_card));
  g_assert_true (gtk_widget_get_visible (page_child (page, "limit_train_row")));
  g_assert_false (gtk_widget_get_visible (page_child (page, "context_row")));

  /* a language model: the corpora, its own settings; a few steps of char-gpt-tiny */
  select_item (ADW_COMBO_ROW (page_child (page, "model_row")), "char-gpt-tiny");
  AdwComboRow *dataset_row = ADW_COMBO_ROW (page_child (page, "dataset_row"));
  GListModel *datasets = adw_combo_row_get_model (dataset_row);
  g_assert_cmpuint (g_list_model_get_n_items (datasets), ==, 5);
  select_item (dataset_row, "Tang poems (tang300)");
  g_assert_false (gtk_widget_get_visible (page_child (page, "limit_train_row")));
  g_assert_true (gtk_widget_get_visible (page_child (page, "context_row")));
  g_assert_true (gtk_widget_get_visible (page_child (page, "steps_row")));
  g_assert_true (gtk_widget_get_visible (page_child (page, "attention_row")));
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (page_child (page, "context_spin")), 32);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (page_child (page, "steps_spin")), 12);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (page_child (page, "attention_spin")), 4);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (page_child (page, "batch_size_spin")), 8);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (page_child (page, "epochs_spin")), 1);
  adw_combo_row_set_selected (ADW_COMBO_ROW (page_child (page, "device_row")), 1); /* CPU */
  BpTrainConfig config = bp_train_page_get_config (page);
  g_assert_cmpstr (config.dataset, ==, "tang300");
  g_assert_cmpint (config.context, ==, 32);
  g_assert_cmpint (config.steps_per_epoch, ==, 12);
  g_assert_cmpint (config.attention_every, ==, 4);
  g_assert_cmpint (config.limit_train, ==, 0);
  g_assert_false (can_generate (widget));

  g_assert_true (gtk_widget_activate_action (widget, "train.start", NULL));
  g_assert_true (gtk_widget_get_visible (gen_card));
  g_assert_true (gtk_widget_get_visible (attn_card));
  g_assert_false (gtk_widget_get_visible (page_child (page, "samples_card")));
  g_assert_false (gtk_widget_get_visible (page_child (page, "confusion_card")));

  /* the heatmap follows the run: the probe's 32 characters, 2 blocks of 2 heads, causal */
  BpAttentionMap *map = BP_ATTENTION_MAP (page_child (page, "attention_map"));
  g_assert_true (bp_gui_wait (two_heatmaps, map, 90000));
  g_assert_cmpint (bp_attention_map_get_length (map), ==, 32);
  g_assert_cmpint (bp_attention_map_get_n_layers (map), ==, 2);
  g_assert_cmpint (bp_attention_map_get_n_heads (map), ==, 2);
  const float *m = bp_attention_map_get_matrix (map);
  for (int i = 0; i < 32; i++) {
    double sum = 0;
    for (int j = 0; j < 32; j++) {
      sum += m[i * 32 + j];
      if (j > i)
        g_assert_cmpfloat (m[i * 32 + j], ==, 0.0f);
    }
    g_assert_cmpfloat_with_epsilon (sum, 1.0, 1e-4);
  }
  const char *step = gtk_label_get_text (GTK_LABEL (page_child (page, "attention_step_label")));
  g_assert_true (g_str_has_prefix (step, "at step "));
  g_assert_true (bp_gui_wait (run_ended, page, 90000));
  g_assert_cmpint (bp_train_run_get_state (bp_train_page_get_run (page)), ==,
                   BP_TRAIN_STATE_FINISHED);
  g_assert_cmpuint (bp_attention_map_get_n_updates (map), >=, 3); /* steps 4, 8, 12, the end */

  /* generating: refusals first, said in the panel */
  g_assert_true (can_generate (widget));
  GtkLabel *message = GTK_LABEL (page_child (page, "generate_message"));
  GtkEditable *prompt = GTK_EDITABLE (page_child (page, "prompt_entry"));
  gtk_editable_set_text (prompt, "床前QZ");
  g_assert_true (gtk_widget_activate_action (widget, "train.generate", NULL));
  g_assert_true (gtk_widget_get_visible (GTK_WIDGET (message)));
  g_assert_nonnull (strstr (gtk_label_get_text (message), "“Q”, “Z”"));
  g_assert_true (gtk_widget_has_css_class (GTK_WIDGET (message), "error"));
  g_autoptr (GString) longer = g_string_new (NULL);
  for (int k = 0; k < 33; k++)
    g_string_append (longer, "床");
  gtk_editable_set_text (prompt, longer->str);
  g_assert_true (gtk_widget_activate_action (widget, "train.generate", NULL));
  g_assert_nonnull (strstr (gtk_label_get_text (message), "33 characters"));
  g_assert_true (can_generate (widget));

  /* text streams in from the worker thread; Start waits while it does */
  gtk_editable_set_text (prompt, "床前明月光");
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (page_child (page, "length_spin")), 40);
  g_assert_true (gtk_widget_activate_action (widget, "train.generate", NULL));
  g_assert_false (gtk_widget_get_visible (GTK_WIDGET (message)));
  g_assert_false (can_generate (widget));
  Waiting w = {page, 5 + 40};
  g_assert_true (bp_gui_wait (has_chars, &w, 30000));
  g_assert_true (bp_gui_wait (can_generate, widget, 30000));
  g_assert_cmpint (buffer_chars (page), ==, 5 + 40);
  GtkTextBuffer *buffer =
    gtk_text_view_get_buffer (GTK_TEXT_VIEW (page_child (page, "generate_view")));
  GtkTextIter a, b;
  gtk_text_buffer_get_bounds (buffer, &a, &b);
  g_autofree char *text = gtk_text_buffer_get_text (buffer, &a, &b, FALSE);
  g_assert_true (g_str_has_prefix (text, "床前明月光"));
  g_test_message ("generated: %s", text);
  g_free (bp_gui_screenshot (window, "train-page-language-model"));

  /* Stop: a long text ends early, and says so */
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (page_child (page, "length_spin")), 10000);
  g_assert_true (gtk_widget_activate_action (widget, "train.generate", NULL));
  g_assert_false (gtk_widget_is_sensitive (page_child (page, "start_button")));
  w.chars = 5 + 3;
  g_assert_true (bp_gui_wait (has_chars, &w, 30000));
  g_assert_true (gtk_widget_activate_action (widget, "train.stop-generating", NULL));
  g_assert_true (bp_gui_wait (can_generate, widget, 30000));
  g_assert_cmpint (buffer_chars (page), <, 5 + 10000);
  g_assert_cmpstr (gtk_label_get_text (message), ==, "Stopped.");
  g_assert_true (gtk_widget_is_sensitive (page_child (page, "start_button")));

  /* a page that goes while the text comes: the thread stops and cleans up */
  g_assert_true (gtk_widget_activate_action (widget, "train.generate", NULL));
  close_window (window, widget);
  bp_gui_spin (300);
}

/* In Traditional Chinese (LANGUAGE=zh_TW): the map's header, its hover text and the corpora. */
static void
test_zh_tw (void)
{
  if (g_strcmp0 (g_getenv ("LANGUAGE"), "zh_TW") != 0) {
    g_test_skip ("runs with LANGUAGE=zh_TW (meson test gui-attention-zh_TW)");
    return;
  }
  GtkWidget *widget = bp_attention_map_new ();
  BpAttentionMap *map = BP_ATTENTION_MAP (widget);
  GtkWidget *window = show_in_window (widget, 480, 420);
  const char *tokens[] = {"床", "前", "明", "月"};
  float w[2 * 16] = {0};
  for (int i = 0; i < 4; i++)
    for (int j = 0; j <= i; j++)
      w[i * 4 + j] = w[16 + i * 4 + j] = 1.0f / (i + 1);
  bp_attention_map_set_data (map, 1, 2, 4, tokens, NULL, w);
  GtkWidget *head_drop = find_child_of_type (widget, GTK_TYPE_DROP_DOWN, 1);
  GListModel *heads = gtk_drop_down_get_model (GTK_DROP_DOWN (head_drop));
  g_assert_cmpstr (gtk_string_list_get_string (GTK_STRING_LIST (heads), 0), ==, "各頭平均");
  g_assert_cmpstr (gtk_string_list_get_string (GTK_STRING_LIST (heads), 2), ==, "第 2 個頭");
  g_autofree char *text = bp_attention_map_describe_cell (map, 1, 0);
  g_assert_cmpstr (text, ==, "查詢 2「前」→ 鍵 1「床」：0.500");
  g_free (bp_gui_screenshot (window, "attention-map-zh_TW"));
  close_window (window, widget);

  GtkWidget *page_widget = bp_train_page_new ();
  BpTrainPage *page = BP_TRAIN_PAGE (page_widget);
  window = show_in_window (page_widget, 1400, 900);
  select_item (ADW_COMBO_ROW (page_child (page, "model_row")), "char-gpt-tiny");
  select_item (ADW_COMBO_ROW (page_child (page, "dataset_row")), "唐詩三百首 (tang300)");
  g_assert_cmpstr (bp_train_page_get_config (page).dataset, ==, "tang300");
  close_window (window, page_widget);
}

int
main (int argc, char **argv)
{
  if (!bp_gui_test_init (&argc, &argv))
    return 0;
  bp_set_num_threads (2);
  g_test_add_func ("/attention/heatmap-draw", test_heatmap_draw);
  g_test_add_func ("/attention/map", test_attention_map);
  g_test_add_func ("/attention/reversal", test_reversal);
  g_test_add_func ("/attention/train-page", test_train_page);
  g_test_add_func ("/attention/zh_TW", test_zh_tw);
  return g_test_run ();
}
