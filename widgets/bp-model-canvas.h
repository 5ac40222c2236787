/* bp-model-canvas.h: a reusable canvas that lays out and draws a graph of labelled blocks and
 * arrows top to bottom, with pan, zoom, selection and port dragging; it knows nothing of models. */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define BP_TYPE_MODEL_CANVAS (bp_model_canvas_get_type ())
G_DECLARE_FINAL_TYPE (BpModelCanvas, bp_model_canvas, BP, MODEL_CANVAS, GtkWidget)

/* Colours of the blocks' side stripes, after the GNOME palette. */
#define BP_MODEL_CANVAS_N_COLORS 10
/* Colour `index` (for legends drawn elsewhere); grey for an index out of range. */
void bp_model_canvas_get_color (int index, GdkRGBA *rgba);

/* One block. The strings are copied. */
typedef struct {
  const char *title;   /* first line, bold ("Conv2d") */
  const char *tag;     /* beside the title, dimmed ("conv1"); may be NULL */
  const char *detail;  /* second line ("16, kernel_size=3"); may be NULL */
  const char *caption; /* last line, small ("160 parameters"); may be NULL */
  const char *error;   /* drawn in the block with a red outline; NULL when the block is fine */
  int color;           /* stripe colour, 0 to BP_MODEL_CANVAS_N_COLORS - 1; -1 for none */
} BpModelCanvasNode;

/* One arrow from block `from` to block `to`, labelled (a tensor shape) beside its line. */
typedef struct {
  int from, to;
  const char *label; /* may be NULL */
} BpModelCanvasEdge;

GtkWidget *bp_model_canvas_new (void);

/* Replaces the graph and lays it out again: layers top to bottom (a node below all its inputs),
 * the longest chain in one column, branches beside it, and arrows that skip layers routed
 * around the blocks in lanes. The view (zoom and position) is kept; the selection is kept when
 * its index still exists. Edges naming nodes out of range are ignored. */
void bp_model_canvas_set_graph (BpModelCanvas *self, int n_nodes, const BpModelCanvasNode *nodes,
                                int n_edges, const BpModelCanvasEdge *edges);
int bp_model_canvas_get_n_nodes (BpModelCanvas *self);
int bp_model_canvas_get_n_edges (BpModelCanvas *self);
/* The label of the first edge from `from` to `to`, or NULL when there is no such edge. */
const char *bp_model_canvas_get_edge_label (BpModelCanvas *self, int from, int to);

/* A line drawn at the top left of the view (not panned), e.g. the parameter total. */
void bp_model_canvas_set_header (BpModelCanvas *self, const char *text);
const char *bp_model_canvas_get_header (BpModelCanvas *self);
/* Shown in the middle of an empty canvas. */
void bp_model_canvas_set_placeholder (BpModelCanvas *self, const char *text);

/* The selected block (property "selected"), -1 for none. A click selects; the arrow keys (along
 * the arrows, within a row), Tab, Home, End and Escape move it when the canvas has the focus,
 * as the action "canvas.move" does with "up", "down", "left", "right", "next", "previous",
 * "first", "last" or "none". */
int bp_model_canvas_get_selected (BpModelCanvas *self);
void bp_model_canvas_set_selected (BpModelCanvas *self, int index);

/* Hit testing and geometry in widget coordinates (for drops and tests). */
int bp_model_canvas_node_at (BpModelCanvas *self, double x, double y);
gboolean bp_model_canvas_get_node_bounds (BpModelCanvas *self, int index, graphene_rect_t *bounds);
/* The rectangle of edge `edge`'s label (in the order given to set_graph). */
gboolean bp_model_canvas_get_label_bounds (BpModelCanvas *self, int edge, graphene_rect_t *bounds);
/* The whole graph's size at zoom 1. */
void bp_model_canvas_get_graph_size (BpModelCanvas *self, double *width, double *height);

/* Zoom (property "zoom", 0.2 to 3): about the view's centre; fit shows the whole graph (at most
 * at zoom 1); reset_view shows its top at a readable zoom (what a new graph gets); scroll_to
 * moves the view so that a block is visible. */
double bp_model_canvas_get_zoom (BpModelCanvas *self);
void bp_model_canvas_set_zoom (BpModelCanvas *self, double zoom);
void bp_model_canvas_zoom_in (BpModelCanvas *self);
void bp_model_canvas_zoom_out (BpModelCanvas *self);
void bp_model_canvas_zoom_fit (BpModelCanvas *self);
void bp_model_canvas_reset_view (BpModelCanvas *self);
void bp_model_canvas_scroll_to (BpModelCanvas *self, int index);

G_END_DECLS
