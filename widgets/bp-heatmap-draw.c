/* bp-heatmap-draw.c: a labelled T x T heatmap with a colour scale legend, drawn with Cairo and
 * Pango (shared by the BpAttentionMap widget and the `backprop attention` command). */
#include "config.h"

#include "bp-heatmap-draw.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define PAD 4.0
#define LEGEND_GAP 14.0
#define LEGEND_BAR 12.0

/* matplotlib's viridis at nine evenly spaced points */
static const unsigned char viridis[9][3] = {
  {0x44, 0x01, 0x54}, {0x47, 0x2d, 0x7b}, {0x3b, 0x52, 0x8b}, {0x2c, 0x72, 0x8e},
  {0x21, 0x91, 0x8c}, {0x28, 0xae, 0x80}, {0x5e, 0xc9, 0x62}, {0xad, 0xdc, 0x30},
  {0xfd, 0xe7, 0x25},
};

void
bp_heatmap_init (BpHeatmap *heatmap)
{
  g_return_if_fail (heatmap != NULL);
  memset (heatmap, 0, sizeof *heatmap);
  heatmap->fg[0] = heatmap->fg[1] = heatmap->fg[2] = 0.15;
  heatmap->fg[3] = 1.0;
  heatmap->bg[0] = heatmap->bg[1] = heatmap->bg[2] = heatmap->bg[3] = 1.0;
  heatmap->hover_row = heatmap->hover_col = -1;
}

void
bp_heatmap_color (double t, double *r, double *g, double *b)
{
  if (!(t > 0.0)) /* NaN too */
    t = 0.0;
  if (t > 1.0)
    t = 1.0;
  double x = t * 8.0;
  int i = MIN ((int) x, 7);
  double f = x - i;
  *r = ((1.0 - f) * viridis[i][0] + f * viridis[i + 1][0]) / 255.0;
  *g = ((1.0 - f) * viridis[i][1] + f * viridis[i + 1][1]) / 255.0;
  *b = ((1.0 - f) * viridis[i][2] + f * viridis[i + 1][2]) / 255.0;
}

double
bp_heatmap_scale_max (const BpHeatmap *heatmap)
{
  if (heatmap->vmax > 0.0)
    return heatmap->vmax;
  double m = 0.0;
  int64_t nn = (int64_t) heatmap->n * heatmap->n;
  for (int64_t k = 0; heatmap->values && k < nn; k++)
    if (heatmap->values[k] > m) /* NaN is skipped */
      m = heatmap->values[k];
  return MAX (m, 1e-6);
}

char *
bp_heatmap_token_label (const char *token)
{
  if (!token || !*token)
    return g_strdup ("∅");
  GString *s = g_string_new (NULL);
  const char *end = NULL;
  if (!g_utf8_validate (token, -1, &end)) {
    g_string_free (s, TRUE);
    return g_strdup ("\xef\xbf\xbd");
  }
  /* a space alone is a token to see; inside a longer label ("row 1") it stays a space */
  gboolean spaces_only = strspn (token, " ") == strlen (token);
  for (const char *p = token; *p; p = g_utf8_next_char (p)) {
    gunichar c = g_utf8_get_char (p);
    if (c == ' ' && spaces_only)
      g_string_append (s, "␣");
    else if (c == '\n')
      g_string_append (s, "↵");
    else if (c == '\t')
      g_string_append (s, "⇥");
    else if (g_unichar_iscntrl (c) || !g_unichar_isdefined (c))
      g_string_append (s, "\xef\xbf\xbd");
    else
      g_string_append_unichar (s, c);
  }
  return g_string_free (s, FALSE);
}

void
bp_heatmap_fill_cells (const BpHeatmap *heatmap, cairo_surface_t *surface)
{
  g_return_if_fail (heatmap != NULL && surface != NULL);
  g_return_if_fail (cairo_image_surface_get_format (surface) == CAIRO_FORMAT_ARGB32);
  int n = heatmap->n;
  g_return_if_fail (cairo_image_surface_get_width (surface) >= n &&
                    cairo_image_surface_get_height (surface) >= n);
  double vmax = bp_heatmap_scale_max (heatmap);
  cairo_surface_flush (surface);
  unsigned char *data = cairo_image_surface_get_data (surface);
  int stride = cairo_image_surface_get_stride (surface);
  for (int i = 0; i < n; i++) {
    guint32 *row = (guint32 *) (data + (gsize) i * stride);
    for (int j = 0; j < n; j++) {
      float v = heatmap->values[(gsize) i * n + j];
      double r, g, b;
      if (isnan (v))
        r = g = b = 0.5;
      else
        bp_heatmap_color (v / vmax, &r, &g, &b);
      row[j] = 0xff000000u | (guint32) lround (r * 255) << 16 | (guint32) lround (g * 255) << 8 |
               (guint32) lround (b * 255);
    }
  }
  cairo_surface_mark_dirty (surface);
}

/* ---- layout ---- */

static void
text_size (PangoLayout *layout, const char *text, int *w, int *h)
{
  pango_layout_set_text (layout, text, -1);
  pango_layout_get_pixel_size (layout, w, h);
}

static const char *
format_tick (char *buf, double v, double vmax)
{
  return g_ascii_formatd (buf, G_ASCII_DTOSTR_BUF_SIZE, vmax >= 0.1 ? "%.2f" : "%.3f", v);
}

/* The label of row / column i: in buf (16 bytes) or *owned (free it) or borrowed. */
static const char *
token_text (const BpHeatmap *heatmap, int i, char *buf, char **owned)
{
  *owned = NULL;
  if (heatmap->labels)
    return heatmap->labels[i];
  if (!heatmap->tokens) {
    g_snprintf (buf, 16, "%d", i + 1);
    return buf;
  }
  return *owned = bp_heatmap_token_label (heatmap->tokens[i]);
}

/* Sizes that do not depend on the cell size: the label and title bands, the legend's width. */
typedef struct {
  int line_h, label_w, tick_w;
  gboolean col_rotated;
  double top, left, legend_total;
} Bands;

static void
measure_bands (PangoLayout *layout, const BpHeatmap *heatmap, Bands *b)
{
  int w, h;
  text_size (layout, "Ag國", &w, &h);
  b->line_h = MAX (h, 6);
  b->label_w = 0;
  for (int i = 0; i < heatmap->n; i++) {
    char buf[16];
    g_autofree char *owned = NULL;
    text_size (layout, token_text (heatmap, i, buf, &owned), &w, &h);
    b->label_w = MAX (b->label_w, w);
  }
  double vmax = bp_heatmap_scale_max (heatmap);
  char tick[G_ASCII_DTOSTR_BUF_SIZE];
  text_size (layout, format_tick (tick, vmax, vmax), &b->tick_w, &h);
  /* single characters stand upright over their columns, longer labels are turned */
  b->col_rotated = b->label_w > 1.6 * b->line_h;
  b->top = PAD;
  if (heatmap->title)
    b->top += b->line_h + PAD;
  if (heatmap->col_title)
    b->top += b->line_h + 2;
  b->top += (b->col_rotated ? b->label_w : b->line_h) + 3;
  b->left = PAD;
  if (heatmap->row_title)
    b->left += b->line_h + 4;
  b->left += b->label_w + 5;
  b->legend_total = LEGEND_GAP + LEGEND_BAR + 4 + b->tick_w + PAD;
}

static void
geometry_from_bands (const BpHeatmap *heatmap, const Bands *b, double cell,
                     BpHeatmapGeometry *g)
{
  int n = heatmap->n;
  g->n = n;
  g->left = b->left;
  g->top = b->top;
  g->cell = cell;
  g->legend_x = b->left + n * cell + LEGEND_GAP;
  g->legend_y = b->top;
  g->legend_w = LEGEND_BAR;
  g->legend_h = MAX (n * cell, 3.0 * b->line_h);
  g->vmax = bp_heatmap_scale_max (heatmap);
  g->col_rotated = b->col_rotated;
  g->line_h = b->line_h;
  g->label_w = b->label_w;
  g->row_step = cell > 0 ? MAX (1, (int) ceil ((b->line_h - 1) / cell)) : 1;
  double col_need = b->col_rotated ? b->line_h - 1 : b->label_w + 2;
  g->col_step = cell > 0 ? MAX (1, (int) ceil (col_need / cell)) : 1;
}

static PangoLayout *
default_layout (cairo_t *cr)
{
  PangoLayout *layout = pango_cairo_create_layout (cr);
  PangoFontDescription *desc = pango_font_description_from_string ("Sans 9");
  pango_layout_set_font_description (layout, desc);
  pango_font_description_free (desc);
  return layout;
}

/* A layout for measuring when the caller gave none and there is no cairo_t. */
static PangoLayout *
measuring_layout (void)
{
  cairo_surface_t *s = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, 1, 1);
  cairo_t *cr = cairo_create (s);
  PangoLayout *layout = default_layout (cr);
  cairo_destroy (cr);
  cairo_surface_destroy (s);
  return layout;
}

void
bp_heatmap_layout (PangoLayout *layout, const BpHeatmap *heatmap, double width, double height,
                   BpHeatmapGeometry *geometry)
{
  g_return_if_fail (heatmap != NULL && geometry != NULL);
  PangoLayout *own = layout ? NULL : measuring_layout ();
  Bands b;
  measure_bands (layout ? layout : own, heatmap, &b);
  double cell = 0.0;
  if (heatmap->n > 0) {
    cell = MIN ((width - b.left - b.legend_total) / heatmap->n,
                (height - b.top - PAD) / heatmap->n);
    if (cell >= 3.0)
      cell = floor (cell);
    cell = MAX (cell, 1.0);
  }
  geometry_from_bands (heatmap, &b, cell, geometry);
  g_clear_object (&own);
}

void
bp_heatmap_size_for_cell (PangoLayout *layout, const BpHeatmap *heatmap, double cell, int *width,
                          int *height)
{
  g_return_if_fail (heatmap != NULL);
  PangoLayout *own = layout ? NULL : measuring_layout ();
  Bands b;
  measure_bands (layout ? layout : own, heatmap, &b);
  int n = MAX (heatmap->n, 1);
  if (width)
    *width = (int) ceil (b.left + n * cell + b.legend_total);
  if (height)
    *height = (int) ceil (b.top + MAX (n * cell, 3.0 * b.line_h) + PAD);
  g_clear_object (&own);
}

gboolean
bp_heatmap_cell_at (const BpHeatmapGeometry *geometry, double x, double y, int *row, int *col)
{
  g_return_val_if_fail (geometry != NULL, FALSE);
  const BpHeatmapGeometry *g = geometry;
  if (g->n <= 0 || g->cell <= 0)
    return FALSE;
  double fx = (x - g->left) / g->cell, fy = (y - g->top) / g->cell;
  if (!(fx >= 0 && fy >= 0 && fx < g->n && fy < g->n))
    return FALSE;
  if (row)
    *row = (int) fy;
  if (col)
    *col = (int) fx;
  return TRUE;
}

/* ---- drawing ---- */

static void
set_fg (cairo_t *cr, const BpHeatmap *h, double alpha)
{
  cairo_set_source_rgba (cr, h->fg[0], h->fg[1], h->fg[2], h->fg[3] * alpha);
}

/* Draws text with its (ax, ay) anchor (0..1 of its extent) at (x, y). */
static void
draw_text (cairo_t *cr, PangoLayout *layout, const char *text, double x, double y, double ax,
           double ay)
{
  int w, h;
  text_size (layout, text, &w, &h);
  cairo_move_to (cr, x - ax * w, y - ay * h);
  pango_cairo_show_layout (cr, layout);
}

/* Text turned a quarter to the left (reading upwards); the anchor is in the turned text's
 * own frame: ax along the text, ay across it. */
static void
draw_text_up (cairo_t *cr, PangoLayout *layout, const char *text, double x, double y, double ax,
              double ay)
{
  int w, h;
  text_size (layout, text, &w, &h);
  cairo_save (cr);
  cairo_translate (cr, x, y);
  cairo_rotate (cr, -G_PI / 2);
  cairo_move_to (cr, -ax * w, -ay * h);
  pango_cairo_update_layout (cr, layout);
  pango_cairo_show_layout (cr, layout);
  cairo_restore (cr);
  pango_cairo_update_layout (cr, layout);
}

static void
draw_row_label (cairo_t *cr, PangoLayout *layout, const BpHeatmap *h, const BpHeatmapGeometry *g,
                int i)
{
  char buf[16];
  g_autofree char *owned = NULL;
  const char *text = token_text (h, i, buf, &owned);
  draw_text (cr, layout, text, g->left - 5, g->top + (i + 0.5) * g->cell, 1.0, 0.5);
}

static void
draw_col_label (cairo_t *cr, PangoLayout *layout, const BpHeatmap *h, const BpHeatmapGeometry *g,
                int j)
{
  char buf[16];
  g_autofree char *owned = NULL;
  const char *text = token_text (h, j, buf, &owned);
  double x = g->left + (j + 0.5) * g->cell;
  if (g->col_rotated)
    draw_text_up (cr, layout, text, x, g->top - 3, 0.0, 0.5);
  else
    draw_text (cr, layout, text, x, g->top - 3, 0.5, 1.0);
}

static void
draw_legend (cairo_t *cr, PangoLayout *layout, const BpHeatmap *h, const BpHeatmapGeometry *g)
{
  double x = g->legend_x, y = g->legend_y, w = g->legend_w, hh = g->legend_h;
  /* the scale in bands of about two pixels, bottom (0) to top (vmax) */
  int bands = CLAMP ((int) (hh / 2), 2, 128);
  for (int k = 0; k < bands; k++) {
    double r, gg, b;
    bp_heatmap_color ((k + 0.5) / bands, &r, &gg, &b);
    cairo_set_source_rgb (cr, r, gg, b);
    double y0 = y + hh - hh * (k + 1) / bands, y1 = y + hh - hh * k / bands;
    cairo_rectangle (cr, x, floor (y0), w, ceil (y1) - floor (y0));
    cairo_fill (cr);
  }
  set_fg (cr, h, 0.5);
  cairo_set_line_width (cr, 1.0);
  cairo_rectangle (cr, x + 0.5, y + 0.5, w - 1, hh - 1);
  cairo_stroke (cr);
  set_fg (cr, h, 0.85);
  for (int k = 0; k <= 2; k++) {
    double v = g->vmax * k / 2.0, ty = y + hh - hh * k / 2.0;
    char buf[G_ASCII_DTOSTR_BUF_SIZE];
    const char *tick = format_tick (buf, v, g->vmax);
    cairo_move_to (cr, x + w, round (ty) + 0.5);
    cairo_line_to (cr, x + w + 3, round (ty) + 0.5);
    cairo_stroke (cr);
    draw_text (cr, layout, tick, x + w + 4, ty, 0.0, k == 0 ? 1.0 : k == 2 ? 0.0 : 0.5);
  }
}

void
bp_heatmap_draw (cairo_t *cr, PangoLayout *layout, const BpHeatmap *heatmap, double width,
                 double height, BpHeatmapGeometry *geometry)
{
  g_return_if_fail (cr != NULL && heatmap != NULL);
  g_return_if_fail (heatmap->n == 0 || heatmap->values != NULL);
  const BpHeatmap *h = heatmap;
  PangoLayout *own = layout ? NULL : default_layout (cr);
  if (!layout)
    layout = own;
  pango_cairo_update_layout (cr, layout);
  BpHeatmapGeometry g;
  bp_heatmap_layout (layout, h, width, height, &g);
  if (geometry)
    *geometry = g;

  cairo_save (cr);
  if (h->fill_bg) {
    cairo_set_source_rgba (cr, h->bg[0], h->bg[1], h->bg[2], h->bg[3]);
    cairo_paint (cr);
  }
  if (h->n == 0) {
    if (h->empty_text) {
      set_fg (cr, h, 0.5);
      draw_text (cr, layout, h->empty_text, width / 2, height / 2, 0.5, 0.5);
    }
    cairo_restore (cr);
    g_clear_object (&own);
    return;
  }

  int n = h->n;
  double grid = n * g.cell, line_h = g.line_h;

  /* titles */
  set_fg (cr, h, 0.9);
  double y = PAD;
  if (h->title) {
    draw_text (cr, layout, h->title, g.left + grid / 2, y, 0.5, 0.0);
    y += line_h + PAD;
  }
  set_fg (cr, h, 0.65);
  if (h->col_title)
    draw_text (cr, layout, h->col_title, g.left + grid / 2, y, 0.5, 0.0);
  if (h->row_title)
    draw_text_up (cr, layout, h->row_title, PAD, g.top + grid / 2, 0.5, 0.0);

  /* the cells: one pixel each, scaled up without smoothing */
  cairo_surface_t *cells = h->cells;
  if (!cells) {
    cells = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, n, n);
    bp_heatmap_fill_cells (h, cells);
  }
  cairo_save (cr);
  cairo_translate (cr, g.left, g.top);
  cairo_scale (cr, g.cell, g.cell);
  cairo_set_source_surface (cr, cells, 0, 0);
  cairo_pattern_set_filter (cairo_get_source (cr), CAIRO_FILTER_NEAREST);
  cairo_rectangle (cr, 0, 0, n, n);
  cairo_fill (cr);
  cairo_restore (cr);
  if (!h->cells)
    cairo_surface_destroy (cells);

  /* labels: every row_step-th (col_step-th), and always the hovered ones */
  gboolean hover = h->hover_row >= 0 && h->hover_row < n && h->hover_col >= 0 && h->hover_col < n;
  set_fg (cr, h, 0.85);
  for (int i = 0; i < n; i++) {
    if (i % g.row_step == 0 && !(hover && abs (i - h->hover_row) < g.row_step && i != h->hover_row))
      draw_row_label (cr, layout, h, &g, i);
    if (i % g.col_step == 0 && !(hover && abs (i - h->hover_col) < g.col_step && i != h->hover_col))
      draw_col_label (cr, layout, h, &g, i);
  }
  if (hover) {
    /* the hovered cell outlined, its row and column marked along the labels */
    double x0 = g.left + h->hover_col * g.cell, y0 = g.top + h->hover_row * g.cell;
    cairo_set_source_rgba (cr, 0.21, 0.52, 0.89, 0.25);
    cairo_rectangle (cr, g.left - 7 - g.label_w, y0, g.label_w + 7, g.cell);
    double band = (g.col_rotated ? g.label_w : line_h) + 3;
    cairo_rectangle (cr, x0, g.top - band, g.cell, band);
    cairo_fill (cr);
    set_fg (cr, h, 1.0);
    if (h->hover_row % g.row_step != 0)
      draw_row_label (cr, layout, h, &g, h->hover_row);
    if (h->hover_col % g.col_step != 0)
      draw_col_label (cr, layout, h, &g, h->hover_col);
    cairo_set_line_width (cr, 2.0);
    cairo_set_source_rgb (cr, 1, 1, 1);
    cairo_rectangle (cr, x0, y0, g.cell, g.cell);
    cairo_stroke (cr);
    cairo_set_line_width (cr, 1.0);
    cairo_set_source_rgb (cr, 0, 0, 0);
    cairo_rectangle (cr, x0 - 1.5, y0 - 1.5, g.cell + 3, g.cell + 3);
    cairo_stroke (cr);
  }
  /* a frame around the grid */
  set_fg (cr, h, 0.35);
  cairo_set_line_width (cr, 1.0);
  cairo_rectangle (cr, g.left - 0.5, g.top - 0.5, grid + 1, grid + 1);
  cairo_stroke (cr);

  draw_legend (cr, layout, h, &g);
  cairo_restore (cr);
  g_clear_object (&own);
}

static cairo_status_t
write_file (void *closure, const unsigned char *data, unsigned int length)
{
  return fwrite (data, 1, length, closure) == length ? CAIRO_STATUS_SUCCESS
                                                     : CAIRO_STATUS_WRITE_ERROR;
}

static PangoLayout *
png_layout (cairo_t *cr)
{
  PangoLayout *layout = pango_cairo_create_layout (cr);
  PangoFontDescription *desc = pango_font_description_from_string ("Sans 10");
  pango_layout_set_font_description (layout, desc);
  pango_font_description_free (desc);
  return layout;
}

typedef struct {
  const BpHeatmap *heatmap;
  BpHeatmapGeometry *geometry;
} HeatmapPng;

static void
draw_heatmap_png (cairo_t *cr, PangoLayout *layout, int width, int height, gpointer data)
{
  HeatmapPng *png = data;
  bp_heatmap_draw (cr, layout, png->heatmap, width, height, png->geometry);
}

gboolean
bp_heatmap_write_png (const BpHeatmap *heatmap, const char *path, int width, int height,
                      int *width_out, int *height_out, BpHeatmapGeometry *geometry,
                      GError **error)
{
  g_return_val_if_fail (heatmap != NULL && path != NULL, FALSE);
  BpHeatmap h = *heatmap;
  if (!h.fill_bg) {
    h.fill_bg = TRUE;
    h.bg[0] = h.bg[1] = h.bg[2] = h.bg[3] = 1.0;
  }
  if (width <= 0 || height <= 0) {
    cairo_surface_t *s = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, 1, 1);
    cairo_t *cr = cairo_create (s);
    PangoLayout *layout = png_layout (cr);
    bp_heatmap_size_for_cell (layout, &h, CLAMP (640.0 / MAX (h.n, 1), 12.0, 36.0), &width,
                              &height);
    g_object_unref (layout);
    cairo_destroy (cr);
    cairo_surface_destroy (s);
  }
  if (width_out)
    *width_out = width;
  if (height_out)
    *height_out = height;
  HeatmapPng png = {&h, geometry};
  return bp_png_write (path, width, height, draw_heatmap_png, &png, error);
}

gboolean
bp_png_write (const char *path, int width, int height, BpPngDrawFunc draw, gpointer data,
              GError **error)
{
  g_return_val_if_fail (path != NULL && width > 0 && height > 0 && draw != NULL, FALSE);
  cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, width, height);
  cairo_t *cr = cairo_create (surface);
  PangoLayout *layout = png_layout (cr);
  draw (cr, layout, width, height, data);
  g_object_unref (layout);
  cairo_status_t status = cairo_status (cr);
  cairo_destroy (cr);
  g_autofree char *display = g_filename_display_name (path);
  FILE *f = status == CAIRO_STATUS_SUCCESS ? g_fopen (path, "wb") : NULL;
  if (status == CAIRO_STATUS_SUCCESS && !f) {
    int saved = errno;
    g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved), "cannot write %s: %s",
                 display, g_strerror (saved));
    cairo_surface_destroy (surface);
    return FALSE;
  }
  if (status == CAIRO_STATUS_SUCCESS)
    status = cairo_surface_write_to_png_stream (surface, write_file, f);
  if (f && fclose (f) != 0 && status == CAIRO_STATUS_SUCCESS)
    status = CAIRO_STATUS_WRITE_ERROR;
  cairo_surface_destroy (surface);
  if (status != CAIRO_STATUS_SUCCESS) {
    g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "cannot write %s: %s", display,
                 cairo_status_to_string (status));
    return FALSE;
  }
  return TRUE;
}
