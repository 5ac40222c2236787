/* bp-heatmap-draw.h: a labelled T x T heatmap (attention weights: query rows, key columns)
 * drawn with Cairo and Pango on any cairo_t, with a colour scale legend; no GTK, so both the
 * BpAttentionMap widget and the `backprop attention` PNG use it.
 *
 *   BpHeatmap h;
 *   bp_heatmap_init (&h);
 *   h.n = t; h.values = weights; h.tokens = tokens; h.row_title = "Query"; h.col_title = "Key";
 *   bp_heatmap_draw (cr, NULL, &h, width, height, &geometry);
 */
#pragma once

#include <cairo.h>
#include <glib.h>
#include <pango/pangocairo.h>

G_BEGIN_DECLS

typedef struct {
  int n;                     /* rows = columns */
  const float *values;       /* n x n, row-major: rows are queries, columns keys */
  const char *const *tokens; /* n UTF-8 tokens, or NULL for "1", "2", ... */
  const char *const *labels; /* optional: the tokens already through bp_heatmap_token_label
                              * (saves doing it on every draw) */
  const char *title;         /* a line above everything (NULL: none) */
  const char *row_title;     /* beside the row labels, e.g. "Query" (NULL: none) */
  const char *col_title;     /* above the column labels, e.g. "Key" (NULL: none) */
  const char *empty_text;    /* shown when n is 0 (NULL: nothing) */
  double vmax;               /* the value of the top colour; <= 0: the largest value */
  double fg[4];              /* RGBA of text and lines */
  double bg[4];              /* RGBA painted first when fill_bg */
  gboolean fill_bg;
  int hover_row, hover_col;  /* the cell outlined (-1: none) */
  cairo_surface_t *cells;    /* optional: an n x n image surface already filled by
                              * bp_heatmap_fill_cells (saves building it on every draw) */
} BpHeatmap;

/* Where the parts went (bp_heatmap_draw fills it): the grid's top-left corner and cell size,
 * and the legend's colour bar. */
typedef struct {
  int n;
  double left, top, cell;
  double legend_x, legend_y, legend_w, legend_h;
  double vmax;        /* the value of the top colour */
  int row_step;       /* every row_step-th row label is drawn (they would overlap) */
  int col_step;
  gboolean col_rotated; /* column labels drawn vertically (labels wider than one character) */
  double line_h;        /* a label's height */
  double label_w;       /* the widest label's width */
} BpHeatmapGeometry;

/* Zero n and values, no titles, dark text on no background, no hover. */
void bp_heatmap_init (BpHeatmap *heatmap);

/* The colour of t in [0, 1] on the colour scale (viridis: dark blue to yellow). */
void bp_heatmap_color (double t, double *r, double *g, double *b);

/* The largest value shown (vmax, or the largest of the values when vmax <= 0; at least 1e-6). */
double bp_heatmap_scale_max (const BpHeatmap *heatmap);

/* A token as drawn: tab and newline become visible symbols (⇥ ↵), and so do spaces in a token
 * of spaces only (␣); other control characters become U+FFFD, an empty or NULL token "∅".
 * Free it. */
char *bp_heatmap_token_label (const char *token);

/* Fills an ARGB32 image surface of n x n pixels with the cells' colours. */
void bp_heatmap_fill_cells (const BpHeatmap *heatmap, cairo_surface_t *surface);

/* Lays out and draws into the rectangle (0, 0, width, height) of cr. layout: the font of the
 * labels (its text is changed), or NULL for "Sans 9" on cr. geometry may be NULL. */
void bp_heatmap_draw (cairo_t *cr, PangoLayout *layout, const BpHeatmap *heatmap, double width,
                      double height, BpHeatmapGeometry *geometry);

/* Only the layout (nothing drawn); layout as in bp_heatmap_draw (NULL: "Sans 9"). */
void bp_heatmap_layout (PangoLayout *layout, const BpHeatmap *heatmap, double width,
                        double height, BpHeatmapGeometry *geometry);

/* The cell under (x, y), if any. */
gboolean bp_heatmap_cell_at (const BpHeatmapGeometry *geometry, double x, double y, int *row,
                             int *col);

/* The size that gives cells of `cell` pixels (labels, titles and legend around them). */
void bp_heatmap_size_for_cell (PangoLayout *layout, const BpHeatmap *heatmap, double cell,
                               int *width, int *height);

/* Draws on a background of heatmap->bg (white when fill_bg is FALSE) into a PNG file with
 * "Sans 10" labels; width or height <= 0: the size for cells of CLAMP (640 / n, 12, 36)
 * pixels. The size used and the geometry (both may be NULL) tell where the cells went. */
gboolean bp_heatmap_write_png (const BpHeatmap *heatmap, const char *path, int width, int height,
                               int *width_out, int *height_out, BpHeatmapGeometry *geometry,
                               GError **error);

/* Draws width x height pixels with draw (its layout has the PNG writers' font, "Sans 10") and
 * writes them to a PNG file; the message of a failure names the file. */
typedef void (*BpPngDrawFunc) (cairo_t *cr, PangoLayout *layout, int width, int height,
                               gpointer data);
gboolean bp_png_write (const char *path, int width, int height, BpPngDrawFunc draw, gpointer data,
                       GError **error);

G_END_DECLS
