/* bp-model-canvas.c: BpModelCanvas lays out a graph in layers (the longest chain in column 0,
 * branches beside it, layer-skipping arrows in lanes around the blocks) and draws it with Cairo;
 * drag pans, ctrl+scroll zooms, a drag from a block's output port asks to connect two blocks. */
#include "config.h"

#include "bp-model-canvas.h"

#include <math.h>
#include <string.h>

/* Layout in graph units (pixels at zoom 1). */
#define MARGIN 24.0
#define HEADER_SPACE 30.0 /* room above the graph for the header line */
#define ROW_GAP 46.0      /* between layers: an arrow and its label */
#define COL_GAP 96.0      /* between columns: a slanted arrow and its label */
#define LANE_GAP 28.0     /* from the blocks to the first lane */
#define LANE_STEP 18.0    /* between lanes */
#define CORNER 8.0        /* radius of lane corners */
#define PAD_X 12.0
#define PAD_Y 8.0
#define STRIPE 5.0
#define RADIUS 8.0
#define MIN_WIDTH 200.0
#define MAX_WIDTH 260.0
#define PORT_RADIUS 4.0
#define PORT_HIT 10.0     /* screen pixels around a port that start a connection */
#define MIN_ZOOM 0.2
#define MAX_ZOOM 3.0
#define ZOOM_STEP 1.2
#define READABLE_ZOOM 0.7 /* the least zoom a new graph is shown at */

typedef struct {
  char *title, *tag, *detail, *caption, *error;
  int color;
  int row, col;
  double x, y, w, h;        /* graph units */
  double title_h, detail_h, caption_h, error_h;
  int lane_out, lane_in;    /* lane edges leaving / entering it (spreads their ends) */
} Node;

typedef struct {
  gboolean curve;
  double x0, y0, x1, y1, x2, y2, x3, y3; /* line: (x0,y0)-(x3,y3); curve: with controls 1, 2 */
} Seg;

#define MAX_SEGS 6

typedef struct {
  int from, to;
  char *label;
  int n_segs;
  Seg segs[MAX_SEGS];
  double tip_x, tip_y, dir_x, dir_y; /* arrow tip and its direction */
  int side, lane;                    /* side -1 left, +1 right, 0 not in a lane */
  graphene_rect_t label_rect;        /* graph units; empty when no label */
  gboolean label_pill;               /* drawn on a background over the line */
} Edge;

struct _BpModelCanvas {
  GtkWidget parent_instance;

  int n_nodes, n_edges;
  Node *nodes;
  Edge *edges;
  int *order;         /* display order: by row, then x (Tab) */
  char *header, *placeholder;
  double graph_w, graph_h;
  gboolean layout_dirty;

  int selected, hovered;
  double zoom, tx, ty; /* screen = t + zoom * graph */
  gboolean fit_pending, fit_whole;

  /* dragging: panning the view or connecting from a port */
  gboolean panning, connecting;
  int connect_from, connect_target;
  double drag_x0, drag_y0, drag_tx0, drag_ty0, pointer_x, pointer_y;
};

G_DEFINE_FINAL_TYPE (BpModelCanvas, bp_model_canvas, GTK_TYPE_WIDGET)

enum { PROP_0, PROP_SELECTED, PROP_ZOOM, N_PROPS };
static GParamSpec *properties[N_PROPS];

enum { CONNECT, N_SIGNALS };
static guint signals[N_SIGNALS];

/* GNOME palette: blue, green, yellow, orange, red, purple, brown, teal, pink, slate. */
static const char *const stripe_colors[BP_MODEL_CANVAS_N_COLORS] = {
  "#3584e4", "#2ec27e", "#e5a50a", "#ff7800", "#e01b24",
  "#9141ac", "#986a44", "#2190a4", "#c061cb", "#77767b",
};

typedef struct {
  GdkRGBA fg, view_bg, card_bg, accent, error;
} Colors;

static void
get_colors (GtkWidget *widget, Colors *c)
{
  GtkStyleContext *style = gtk_widget_get_style_context (widget);
  gtk_style_context_get_color (style, &c->fg);
  G_GNUC_BEGIN_IGNORE_DEPRECATIONS
  if (!gtk_style_context_lookup_color (style, "view_bg_color", &c->view_bg))
    gdk_rgba_parse (&c->view_bg, "#ffffff");
  if (!gtk_style_context_lookup_color (style, "card_bg_color", &c->card_bg))
    gdk_rgba_parse (&c->card_bg, "#ffffff");
  if (!gtk_style_context_lookup_color (style, "accent_color", &c->accent))
    gdk_rgba_parse (&c->accent, "#1c71d8");
  if (!gtk_style_context_lookup_color (style, "error_color", &c->error))
    gdk_rgba_parse (&c->error, "#c01c28");
  G_GNUC_END_IGNORE_DEPRECATIONS
}

static void
set_color (cairo_t *cr, const GdkRGBA *c, double alpha)
{
  cairo_set_source_rgba (cr, c->red, c->green, c->blue, c->alpha * alpha);
}

static PangoLayout *
make_layout (GtkWidget *widget, gboolean small, gboolean bold)
{
  PangoLayout *layout = gtk_widget_create_pango_layout (widget, NULL);
  PangoAttrList *attrs = pango_attr_list_new ();
  if (small)
    pango_attr_list_insert (attrs, pango_attr_scale_new (PANGO_SCALE_SMALL));
  if (bold)
    pango_attr_list_insert (attrs, pango_attr_weight_new (PANGO_WEIGHT_BOLD));
  pango_attr_list_insert (attrs, pango_attr_font_features_new ("tnum"));
  pango_layout_set_attributes (layout, attrs);
  pango_attr_list_unref (attrs);
  return layout;
}

static void
text_size (PangoLayout *layout, const char *text, double *w, double *h)
{
  int pw, ph;
  pango_layout_set_text (layout, text ? text : "", -1);
  pango_layout_get_pixel_size (layout, &pw, &ph);
  *w = pw;
  *h = ph;
}

/* ---- layout ---- */

static void
free_graph (BpModelCanvas *self)
{
  for (int i = 0; i < self->n_nodes; i++) {
    Node *n = &self->nodes[i];
    g_free (n->title);
    g_free (n->tag);
    g_free (n->detail);
    g_free (n->caption);
    g_free (n->error);
  }
  for (int i = 0; i < self->n_edges; i++)
    g_free (self->edges[i].label);
  g_clear_pointer (&self->nodes, g_free);
  g_clear_pointer (&self->edges, g_free);
  g_clear_pointer (&self->order, g_free);
  self->n_nodes = self->n_edges = 0;
}

static gboolean
edge_valid (BpModelCanvas *self, const Edge *e)
{
  return e->from >= 0 && e->from < self->n_nodes && e->to >= 0 && e->to < self->n_nodes;
}

/* Rows: a topological order (stable: the lowest index first), each node one row below its
 * lowest input; nodes on cycles come after, below the inputs placed before them. */
static int
assign_rows (BpModelCanvas *self)
{
  int n = self->n_nodes;
  g_autofree int *indeg = g_new0 (int, n);
  g_autofree int *pos = g_new (int, n);
  g_autofree gboolean *done = g_new0 (gboolean, n);
  for (int i = 0; i < self->n_edges; i++)
    if (edge_valid (self, &self->edges[i]) && self->edges[i].from != self->edges[i].to)
      indeg[self->edges[i].to]++;
  int k = 0;
  while (k < n) {
    int next = -1;
    for (int v = 0; v < n && next < 0; v++)
      if (!done[v] && indeg[v] == 0)
        next = v;
    if (next < 0) /* a cycle: take the lowest index left */
      for (int v = 0; v < n && next < 0; v++)
        if (!done[v])
          next = v;
    done[next] = TRUE;
    pos[next] = k;
    self->order[k++] = next;
    for (int i = 0; i < self->n_edges; i++) {
      Edge *e = &self->edges[i];
      if (edge_valid (self, e) && e->from == next && e->to != next && !done[e->to])
        indeg[e->to]--;
    }
  }
  int max_row = 0;
  for (k = 0; k < n; k++) {
    int v = self->order[k], row = 0;
    for (int i = 0; i < self->n_edges; i++) {
      Edge *e = &self->edges[i];
      if (edge_valid (self, e) && e->to == v && e->from != v && pos[e->from] < k)
        row = MAX (row, self->nodes[e->from].row + 1);
    }
    self->nodes[v].row = row;
    max_row = MAX (max_row, row);
  }
  return max_row + 1;
}

static gint64
cell_key (int row, int col)
{
  return (gint64) row * 65536 + col;
}

static gboolean
cell_taken (GHashTable *cells, int row, int col)
{
  gint64 key = cell_key (row, col);
  return g_hash_table_contains (cells, &key);
}

static void
take_cell (GHashTable *cells, int row, int col)
{
  gint64 *key = g_new (gint64, 1);
  *key = cell_key (row, col);
  g_hash_table_add (cells, key);
}

/* Columns: the longest chain ending at the lowest node in column 0 (following first inputs
 * where there is a choice), every other node at its first input's column or the nearest free
 * one to the right. */
static int
assign_columns (BpModelCanvas *self, GHashTable *cells)
{
  int n = self->n_nodes, n_cols = 1;
  for (int i = 0; i < n; i++)
    self->nodes[i].col = -1;
  int end = -1;
  for (int k = 0; k < n; k++) {
    int v = self->order[k];
    if (end < 0 || self->nodes[v].row >= self->nodes[end].row)
      end = v;
  }
  for (int v = end; v >= 0;) {
    self->nodes[v].col = 0;
    take_cell (cells, self->nodes[v].row, 0);
    int prev = -1;
    for (int i = 0; i < self->n_edges && prev < 0; i++) {
      Edge *e = &self->edges[i];
      if (edge_valid (self, e) && e->to == v && self->nodes[e->from].row == self->nodes[v].row - 1 &&
          self->nodes[e->from].col < 0)
        prev = e->from;
    }
    v = prev;
  }
  for (int k = 0; k < n; k++) {
    int v = self->order[k];
    Node *node = &self->nodes[v];
    if (node->col >= 0)
      continue;
    int pref = -1;
    for (int i = 0; i < self->n_edges && pref < 0; i++) {
      Edge *e = &self->edges[i];
      if (edge_valid (self, e) && e->to == v && self->nodes[e->from].col >= 0)
        pref = self->nodes[e->from].col;
    }
    for (int i = 0; i < self->n_edges && pref < 0; i++) {
      Edge *e = &self->edges[i];
      if (edge_valid (self, e) && e->from == v && self->nodes[e->to].col >= 0)
        pref = self->nodes[e->to].col;
    }
    int col = MAX (pref, 0);
    while (cell_taken (cells, node->row, col))
      col++;
    node->col = col;
    take_cell (cells, node->row, col);
    n_cols = MAX (n_cols, col + 1);
  }
  return n_cols;
}

static gboolean
column_free (GHashTable *cells, int col, int row0, int row1)
{
  for (int r = row0; r <= row1; r++)
    if (cell_taken (cells, r, col))
      return FALSE;
  return TRUE;
}

/* Whether nothing lies beside a node on one side (dir -1 left, +1 right) in its row. */
static gboolean
side_clear (GHashTable *cells, int n_cols, const Node *node, int dir)
{
  for (int c = node->col + dir; c >= 0 && c < n_cols; c += dir)
    if (cell_taken (cells, node->row, c))
      return FALSE;
  return TRUE;
}

static void
add_line (Edge *e, double x0, double y0, double x1, double y1)
{
  if (e->n_segs >= MAX_SEGS || (x0 == x1 && y0 == y1))
    return;
  e->segs[e->n_segs++] = (Seg) {FALSE, x0, y0, 0, 0, 0, 0, x1, y1};
}

static void
add_curve (Edge *e, double x0, double y0, double x1, double y1, double x2, double y2, double x3,
           double y3)
{
  if (e->n_segs >= MAX_SEGS)
    return;
  e->segs[e->n_segs++] = (Seg) {TRUE, x0, y0, x1, y1, x2, y2, x3, y3};
}

/* A vertical connection from (x0, y0) down to (x1, y1): straight, or an S-curve. */
static void
add_drop (Edge *e, double x0, double y0, double x1, double y1)
{
  if (fabs (x0 - x1) < 0.5) {
    add_line (e, x0, y0, x1, y1);
  } else {
    double m = (y1 - y0) / 2;
    add_curve (e, x0, y0, x0, y0 + m, x1, y1 - m, x1, y1);
  }
}

static void
finish_edge (Edge *e)
{
  if (e->n_segs == 0)
    return;
  Seg *s = &e->segs[e->n_segs - 1];
  double dx = s->curve ? s->x3 - s->x2 : s->x3 - s->x0;
  double dy = s->curve ? s->y3 - s->y2 : s->y3 - s->y0;
  double len = hypot (dx, dy);
  if (len < 1e-6 && s->curve)
    dx = s->x3 - s->x0, dy = s->y3 - s->y0, len = hypot (dx, dy);
  e->tip_x = s->x3;
  e->tip_y = s->y3;
  e->dir_x = len > 0 ? dx / len : 0;
  e->dir_y = len > 0 ? dy / len : 1;
}

static void
place_label (Edge *e, PangoLayout *small, double cx, double cy, int align, gboolean pill)
{
  double w, h;
  if (!e->label || !*e->label) {
    e->label_rect = GRAPHENE_RECT_INIT (cx, cy, 0, 0);
    return;
  }
  text_size (small, e->label, &w, &h);
  if (pill)
    w += 12, h += 2;
  double x = align < 0 ? cx - w : align > 0 ? cx : cx - w / 2;
  e->label_rect = GRAPHENE_RECT_INIT (x, cy - h / 2, w, h);
  e->label_pill = pill;
}

/* Routes edge e between its blocks; lane edges only get their side and interval here. */
static void
route_edge (BpModelCanvas *self, Edge *e, GHashTable *cells, int n_cols, const double *row_y,
            const double *row_h, PangoLayout *small)
{
  Node *u = &self->nodes[e->from], *v = &self->nodes[e->to];
  double ux = u->x + u->w / 2, uy = u->y + u->h, vx = v->x + v->w / 2, vy = v->y;
  e->n_segs = 0;
  e->side = 0;
  if (v->row == u->row + 1) {
    add_drop (e, ux, uy, vx, vy);
  } else if (v->row > u->row + 1 && column_free (cells, v->col, u->row + 1, v->row - 1)) {
    /* over to the target's column in the first gap, then straight down */
    double y = row_y[u->row + 1];
    add_drop (e, ux, uy, vx, y);
    add_line (e, vx, y, vx, vy);
  } else if (v->row > u->row + 1 && column_free (cells, u->col, u->row + 1, v->row - 1)) {
    /* straight down the source's column, over in the last gap */
    double y = row_y[v->row - 1] + row_h[v->row - 1];
    add_line (e, ux, uy, ux, y);
    add_drop (e, ux, y, vx, vy);
  } else {
    /* around the blocks: on the left where both ends are free on that side */
    if (v->row <= u->row)
      e->side = 1; /* an arrow back up (a cycle) */
    else if (side_clear (cells, n_cols, u, -1) && side_clear (cells, n_cols, v, -1))
      e->side = -1;
    else if (side_clear (cells, n_cols, u, 1) && side_clear (cells, n_cols, v, 1))
      e->side = 1;
    else
      e->side = -1;
    u->lane_out++;
    v->lane_in++;
    return;
  }
  finish_edge (e);
  /* the label beside the arrow's first stretch, or on it where that stretch slants */
  Seg *s = &e->segs[0];
  double gap_mid = (uy + row_y[u->row + 1]) / 2;
  if (!s->curve)
    place_label (e, small, ux + 7, gap_mid, 1, FALSE);
  else
    place_label (e, small, (s->x0 + s->x3) / 2, (s->y0 + s->y3) / 2, 0, TRUE);
}

typedef struct {
  Edge *edge;
  int lo, hi;
} LaneItem;

static int
lane_item_cmp (gconstpointer a, gconstpointer b)
{
  const LaneItem *x = a, *y = b;
  int dx = x->hi - x->lo, dy = y->hi - y->lo;
  if (dx != dy)
    return dx - dy;
  return x->lo - y->lo;
}

/* Gives the lane edges of one side their lanes (shorter spans inside) and paths. */
static double
route_lanes (BpModelCanvas *self, int side, double base_x, PangoLayout *small)
{
  GArray *items = g_array_new (FALSE, FALSE, sizeof (LaneItem));
  for (int i = 0; i < self->n_edges; i++) {
    Edge *e = &self->edges[i];
    if (!edge_valid (self, e) || e->side != side || e->from == e->to)
      continue;
    int a = self->nodes[e->from].row, b = self->nodes[e->to].row;
    LaneItem it = {e, MIN (a, b), MAX (a, b)};
    g_array_append_val (items, it);
  }
  g_array_sort (items, lane_item_cmp);
  int n_lanes = 0;
  for (guint i = 0; i < items->len; i++) {
    LaneItem *it = &g_array_index (items, LaneItem, i);
    int lane = 0;
    for (;; lane++) {
      gboolean clash = FALSE;
      for (guint j = 0; j < i && !clash; j++) {
        LaneItem *o = &g_array_index (items, LaneItem, j);
        clash = o->edge->lane == lane && !(o->hi < it->lo || it->hi < o->lo);
      }
      if (!clash)
        break;
    }
    it->edge->lane = lane;
    n_lanes = MAX (n_lanes, lane + 1);
  }
  /* ends spread over the blocks' sides */
  g_autofree int *out_used = g_new0 (int, self->n_nodes);
  g_autofree int *in_used = g_new0 (int, self->n_nodes);
  for (guint i = 0; i < items->len; i++) {
    Edge *e = g_array_index (items, LaneItem, i).edge;
    Node *u = &self->nodes[e->from], *v = &self->nodes[e->to];
    double lx = base_x + side * (LANE_GAP + e->lane * LANE_STEP);
    int nu = u->lane_out + u->lane_in, nv = v->lane_out + v->lane_in;
    int ku = out_used[e->from]++, kv = v->lane_out + in_used[e->to]++;
    double yu = u->y + u->h / 2 + (ku - (nu - 1) / 2.0) * 8;
    double yv = v->y + v->h / 2 + (kv - (nv - 1) / 2.0) * 8;
    double sx_u = side < 0 ? u->x : u->x + u->w, sx_v = side < 0 ? v->x : v->x + v->w;
    double dir = yv >= yu ? 1 : -1;
    double r = MIN (CORNER, fabs (yv - yu) / 2);
    e->n_segs = 0;
    add_line (e, sx_u, yu, lx - side * r, yu);
    add_curve (e, lx - side * r, yu, lx, yu, lx, yu, lx, yu + dir * r);
    add_line (e, lx, yu + dir * r, lx, yv - dir * r);
    add_curve (e, lx, yv - dir * r, lx, yv, lx, yv, lx - side * r, yv);
    add_line (e, lx - side * r, yv, sx_v, yv);
    finish_edge (e);
    place_label (e, small, lx, (yu + yv) / 2, 0, TRUE);
  }
  g_array_free (items, TRUE);
  return n_lanes;
}

static void
offset_rect (graphene_rect_t *r, double dx, double dy)
{
  r->origin.x += dx;
  r->origin.y += dy;
}

/* Moves labels down (within reason) off blocks and earlier labels. */
static void
separate_labels (BpModelCanvas *self)
{
  for (int i = 0; i < self->n_edges; i++) {
    Edge *e = &self->edges[i];
    if (!edge_valid (self, e) || e->label_rect.size.width <= 0)
      continue;
    for (int tries = 0; tries < 6; tries++) {
      gboolean clash = FALSE;
      for (int j = 0; j < i && !clash; j++)
        clash = edge_valid (self, &self->edges[j]) && self->edges[j].label_rect.size.width > 0 &&
                graphene_rect_intersection (&e->label_rect, &self->edges[j].label_rect, NULL);
      for (int k = 0; k < self->n_nodes && !clash; k++) {
        Node *n = &self->nodes[k];
        graphene_rect_t r = GRAPHENE_RECT_INIT (n->x, n->y, n->w, n->h);
        clash = graphene_rect_intersection (&e->label_rect, &r, NULL);
      }
      if (!clash)
        break;
      offset_rect (&e->label_rect, 0, e->label_rect.size.height + 3);
    }
  }
}

static void
relayout (BpModelCanvas *self)
{
  GtkWidget *widget = GTK_WIDGET (self);
  self->layout_dirty = FALSE;
  int n = self->n_nodes;
  self->graph_w = self->graph_h = 0;
  if (n == 0)
    return;
  PangoLayout *bold = make_layout (widget, FALSE, TRUE);
  PangoLayout *small = make_layout (widget, TRUE, FALSE);

  int n_rows = assign_rows (self);
  GHashTable *cells = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  int n_cols = assign_columns (self, cells);

  /* one width for all blocks: the widest title and tag, or detail (up to MAX_WIDTH) */
  double width = MIN_WIDTH, w, h, tw, th;
  for (int i = 0; i < n; i++) {
    Node *node = &self->nodes[i];
    text_size (bold, node->title, &w, &h);
    text_size (small, node->tag, &tw, &th);
    width = MAX (width, STRIPE + 2 * PAD_X + w + (node->tag ? 12 + tw : 0));
    if (node->detail) {
      text_size (small, node->detail, &w, &h);
      width = MAX (width, STRIPE + 2 * PAD_X + w);
    }
  }
  width = MIN (width, MAX_WIDTH);
  double inner = width - STRIPE - 2 * PAD_X;
  g_autofree double *row_h = g_new0 (double, n_rows);
  g_autofree double *row_y = g_new0 (double, n_rows + 1);
  for (int i = 0; i < n; i++) {
    Node *node = &self->nodes[i];
    node->w = width;
    text_size (bold, node->title, &w, &node->title_h);
    node->detail_h = node->caption_h = node->error_h = 0;
    if (node->detail)
      text_size (small, node->detail, &w, &node->detail_h);
    if (node->caption)
      text_size (small, node->caption, &w, &node->caption_h);
    if (node->error) {
      pango_layout_set_width (small, (int) (inner * PANGO_SCALE));
      pango_layout_set_wrap (small, PANGO_WRAP_WORD_CHAR);
      pango_layout_set_height (small, -4);
      pango_layout_set_ellipsize (small, PANGO_ELLIPSIZE_END);
      text_size (small, node->error, &w, &node->error_h);
      pango_layout_set_width (small, -1);
      pango_layout_set_height (small, -1);
      pango_layout_set_ellipsize (small, PANGO_ELLIPSIZE_NONE);
      node->error_h += 4;
    }
    node->h = 2 * PAD_Y + node->title_h + (node->detail ? 2 + node->detail_h : 0) +
              (node->caption ? 2 + node->caption_h : 0) + node->error_h;
    row_h[node->row] = MAX (row_h[node->row], node->h);
    node->lane_in = node->lane_out = 0;
  }
  for (int r = 0; r < n_rows; r++)
    row_y[r + 1] = row_y[r] + row_h[r] + ROW_GAP;
  for (int i = 0; i < n; i++) {
    Node *node = &self->nodes[i];
    node->x = node->col * (width + COL_GAP);
    node->y = row_y[node->row];
  }

  /* arrows: direct ones now, lane ones once all are known */
  for (int i = 0; i < self->n_edges; i++) {
    Edge *e = &self->edges[i];
    e->n_segs = 0;
    e->side = 0;
    e->lane = 0;
    e->label_pill = FALSE;
    e->label_rect = GRAPHENE_RECT_INIT (0, 0, 0, 0);
    if (!edge_valid (self, e))
      continue;
    if (e->from == e->to) {
      e->side = 1;
      Node *u = &self->nodes[e->from];
      double x = u->x + u->w, y = u->y + u->h / 2;
      add_curve (e, x, y - 8, x + 30, y - 20, x + 30, y + 20, x, y + 8);
      finish_edge (e);
      place_label (e, small, x + 34, y, 1, FALSE);
      continue;
    }
    route_edge (self, e, cells, n_cols, row_y, row_h, small);
  }
  route_lanes (self, -1, 0.0, small);
  route_lanes (self, 1, n_cols * (width + COL_GAP) - COL_GAP, small);
  separate_labels (self);

  /* the bounding box, moved to the origin with margins */
  double x0 = 0, y0 = 0, x1 = n_cols * (width + COL_GAP) - COL_GAP, y1 = row_y[n_rows] - ROW_GAP;
  for (int i = 0; i < self->n_edges; i++) {
    Edge *e = &self->edges[i];
    for (int s = 0; s < e->n_segs; s++) {
      x0 = MIN (x0, MIN (e->segs[s].x0, e->segs[s].x3) - 2);
      x1 = MAX (x1, MAX (e->segs[s].x0, e->segs[s].x3) + 2);
      if (e->segs[s].curve) {
        x1 = MAX (x1, MAX (e->segs[s].x1, e->segs[s].x2));
      }
    }
    if (e->label_rect.size.width > 0) {
      x0 = MIN (x0, e->label_rect.origin.x);
      x1 = MAX (x1, e->label_rect.origin.x + e->label_rect.size.width);
      y1 = MAX (y1, e->label_rect.origin.y + e->label_rect.size.height);
    }
  }
  double dx = MARGIN - x0, dy = MARGIN + HEADER_SPACE - y0;
  for (int i = 0; i < n; i++) {
    self->nodes[i].x += dx;
    self->nodes[i].y += dy;
  }
  for (int i = 0; i < self->n_edges; i++) {
    Edge *e = &self->edges[i];
    for (int s = 0; s < e->n_segs; s++) {
      Seg *g = &e->segs[s];
      g->x0 += dx, g->x1 += dx, g->x2 += dx, g->x3 += dx;
      g->y0 += dy, g->y1 += dy, g->y2 += dy, g->y3 += dy;
    }
    e->tip_x += dx;
    e->tip_y += dy;
    offset_rect (&e->label_rect, dx, dy);
  }
  self->graph_w = x1 - x0 + 2 * MARGIN;
  self->graph_h = y1 - y0 + 2 * MARGIN + HEADER_SPACE;

  /* display order: rows, then left to right */
  for (int k = 0; k < n; k++)
    for (int j = k; j > 0; j--) {
      Node *a = &self->nodes[self->order[j - 1]], *b = &self->nodes[self->order[j]];
      if (a->row < b->row || (a->row == b->row && a->x <= b->x))
        break;
      int t = self->order[j];
      self->order[j] = self->order[j - 1];
      self->order[j - 1] = t;
    }

  g_hash_table_unref (cells);
  g_object_unref (bold);
  g_object_unref (small);
}

static void
ensure_layout (BpModelCanvas *self)
{
  if (self->layout_dirty)
    relayout (self);
}

/* ---- view ---- */

static void
to_graph (BpModelCanvas *self, double x, double y, double *gx, double *gy)
{
  *gx = (x - self->tx) / self->zoom;
  *gy = (y - self->ty) / self->zoom;
}

static void
zoom_about (BpModelCanvas *self, double zoom, double x, double y)
{
  zoom = CLAMP (zoom, MIN_ZOOM, MAX_ZOOM);
  double gx, gy;
  to_graph (self, x, y, &gx, &gy);
  self->zoom = zoom;
  self->tx = x - zoom * gx;
  self->ty = y - zoom * gy;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ZOOM]);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

/* whole: the whole graph (at most at zoom 1); else the top of the graph at a readable zoom,
 * the full width where it fits. */
static void
do_fit (BpModelCanvas *self, gboolean whole)
{
  ensure_layout (self);
  double w = gtk_widget_get_width (GTK_WIDGET (self)), h = gtk_widget_get_height (GTK_WIDGET (self));
  if (w <= 0 || h <= 0) {
    self->fit_pending = TRUE;
    self->fit_whole = whole;
    return;
  }
  self->fit_pending = FALSE;
  double zoom = 1.0;
  if (self->graph_w > 0 && self->graph_h > 0)
    zoom = whole ? MIN (1.0, MIN (w / self->graph_w, h / self->graph_h))
                 : CLAMP (w / self->graph_w, READABLE_ZOOM, 1.0);
  self->zoom = CLAMP (zoom, MIN_ZOOM, MAX_ZOOM);
  self->tx = (w - self->zoom * self->graph_w) / 2;
  self->ty = 0;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ZOOM]);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

/* ---- drawing ---- */

static void
rounded_rect (cairo_t *cr, double x, double y, double w, double h, double r)
{
  r = MIN (r, MIN (w, h) / 2);
  cairo_new_sub_path (cr);
  cairo_arc (cr, x + w - r, y + r, r, -G_PI / 2, 0);
  cairo_arc (cr, x + w - r, y + h - r, r, 0, G_PI / 2);
  cairo_arc (cr, x + r, y + h - r, r, G_PI / 2, G_PI);
  cairo_arc (cr, x + r, y + r, r, G_PI, 3 * G_PI / 2);
  cairo_close_path (cr);
}

static void
edge_path (cairo_t *cr, const Edge *e, double shorten)
{
  for (int s = 0; s < e->n_segs; s++) {
    const Seg *g = &e->segs[s];
    double x3 = g->x3, y3 = g->y3;
    if (s == e->n_segs - 1) { /* stop at the arrowhead's base */
      x3 -= e->dir_x * shorten;
      y3 -= e->dir_y * shorten;
    }
    if (s == 0)
      cairo_move_to (cr, g->x0, g->y0);
    if (g->curve)
      cairo_curve_to (cr, g->x1, g->y1, g->x2, g->y2, x3, y3);
    else
      cairo_line_to (cr, x3, y3);
  }
}

static void
arrowhead (cairo_t *cr, double x, double y, double dx, double dy, double size)
{
  double px = -dy, py = dx;
  cairo_move_to (cr, x, y);
  cairo_line_to (cr, x - dx * size + px * size * 0.55, y - dy * size + py * size * 0.55);
  cairo_line_to (cr, x - dx * size - px * size * 0.55, y - dy * size - py * size * 0.55);
  cairo_close_path (cr);
  cairo_fill (cr);
}

static void
draw_edges (BpModelCanvas *self, cairo_t *cr, const Colors *c, PangoLayout *small)
{
  /* lines first, the selected block's on top; then the labels over all lines */
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < self->n_edges; i++) {
      Edge *e = &self->edges[i];
      if (!edge_valid (self, e) || e->n_segs == 0)
        continue;
      gboolean hot = self->selected >= 0 && (e->from == self->selected || e->to == self->selected);
      if (hot != (pass == 1))
        continue;
      const GdkRGBA *color = hot ? &c->accent : &c->fg;
      double alpha = hot ? 0.95 : 0.45;
      set_color (cr, color, alpha);
      cairo_set_line_width (cr, hot ? 2.0 : 1.5);
      edge_path (cr, e, 6.0);
      cairo_stroke (cr);
      arrowhead (cr, e->tip_x, e->tip_y, e->dir_x, e->dir_y, 8.0);
    }
  for (int i = 0; i < self->n_edges; i++) {
    Edge *e = &self->edges[i];
    if (!edge_valid (self, e) || e->label_rect.size.width <= 0)
      continue;
    graphene_rect_t *r = &e->label_rect;
    gboolean hot = self->selected >= 0 && (e->from == self->selected || e->to == self->selected);
    if (e->label_pill) {
      rounded_rect (cr, r->origin.x, r->origin.y, r->size.width, r->size.height, r->size.height / 2);
      set_color (cr, &c->view_bg, 1.0);
      cairo_fill_preserve (cr);
      set_color (cr, hot ? &c->accent : &c->fg, hot ? 0.6 : 0.18);
      cairo_set_line_width (cr, 1.0);
      cairo_stroke (cr);
    }
    pango_layout_set_text (small, e->label, -1);
    int tw, th;
    pango_layout_get_pixel_size (small, &tw, &th);
    set_color (cr, hot ? &c->accent : &c->fg, hot ? 1.0 : 0.75);
    cairo_move_to (cr, r->origin.x + (r->size.width - tw) / 2, r->origin.y + (r->size.height - th) / 2);
    pango_cairo_show_layout (cr, small);
  }
}

static void
draw_node (BpModelCanvas *self, cairo_t *cr, int i, const Colors *c, PangoLayout *bold,
           PangoLayout *small)
{
  Node *n = &self->nodes[i];
  gboolean selected = i == self->selected;
  gboolean hovered = i == self->hovered || (self->connecting && i == self->connect_target);

  /* shadow, body, stripe */
  rounded_rect (cr, n->x, n->y + 1, n->w, n->h, RADIUS);
  set_color (cr, &c->fg, 0.07);
  cairo_fill (cr);
  rounded_rect (cr, n->x, n->y, n->w, n->h, RADIUS);
  set_color (cr, &c->view_bg, 1.0);
  cairo_fill_preserve (cr);
  set_color (cr, &c->card_bg, 1.0);
  cairo_fill_preserve (cr);
  if (n->color >= 0 && n->color < BP_MODEL_CANVAS_N_COLORS) {
    GdkRGBA stripe;
    gdk_rgba_parse (&stripe, stripe_colors[n->color]);
    cairo_save (cr);
    cairo_clip (cr);
    set_color (cr, &stripe, 1.0);
    cairo_rectangle (cr, n->x, n->y, STRIPE, n->h);
    cairo_fill (cr);
    cairo_restore (cr);
    rounded_rect (cr, n->x, n->y, n->w, n->h, RADIUS);
  }
  if (n->error) {
    set_color (cr, &c->error, 1.0);
    cairo_set_line_width (cr, 2.0);
  } else {
    set_color (cr, &c->fg, hovered ? 0.4 : 0.15);
    cairo_set_line_width (cr, 1.0);
  }
  cairo_stroke (cr);
  if (selected || (self->connecting && i == self->connect_target)) {
    rounded_rect (cr, n->x - 3.5, n->y - 3.5, n->w + 7, n->h + 7, RADIUS + 3);
    set_color (cr, &c->accent, 0.9);
    cairo_set_line_width (cr, 2.0);
    cairo_stroke (cr);
  }

  /* text: title and tag, detail, caption, error */
  double inner = n->w - STRIPE - 2 * PAD_X, x = n->x + STRIPE + PAD_X, y = n->y + PAD_Y;
  int tw, th;
  pango_layout_set_text (small, n->tag ? n->tag : "", -1);
  pango_layout_get_pixel_size (small, &tw, &th);
  pango_layout_set_text (bold, n->title ? n->title : "", -1);
  pango_layout_set_width (bold, (int) (MAX (inner - (n->tag ? tw + 12 : 0), 20) * PANGO_SCALE));
  pango_layout_set_ellipsize (bold, PANGO_ELLIPSIZE_END);
  set_color (cr, &c->fg, 1.0);
  cairo_move_to (cr, x, y);
  pango_cairo_show_layout (cr, bold);
  pango_layout_set_width (bold, -1);
  if (n->tag) {
    double tag_w = MIN (tw, inner * 0.6);
    pango_layout_set_width (small, (int) (tag_w * PANGO_SCALE));
    pango_layout_set_ellipsize (small, PANGO_ELLIPSIZE_START);
    pango_layout_set_alignment (small, PANGO_ALIGN_RIGHT);
    set_color (cr, &c->fg, 0.55);
    cairo_move_to (cr, x + inner - tag_w, y + (n->title_h - th) / 2 + 1);
    pango_cairo_show_layout (cr, small);
    pango_layout_set_alignment (small, PANGO_ALIGN_LEFT);
  }
  y += n->title_h;
  pango_layout_set_width (small, (int) (inner * PANGO_SCALE));
  pango_layout_set_ellipsize (small, PANGO_ELLIPSIZE_END);
  if (n->detail) {
    y += 2;
    pango_layout_set_text (small, n->detail, -1);
    set_color (cr, &c->fg, 0.8);
    cairo_move_to (cr, x, y);
    pango_cairo_show_layout (cr, small);
    y += n->detail_h;
  }
  if (n->caption) {
    y += 2;
    pango_layout_set_text (small, n->caption, -1);
    set_color (cr, &c->fg, 0.55);
    cairo_move_to (cr, x, y);
    pango_cairo_show_layout (cr, small);
    y += n->caption_h;
  }
  if (n->error) {
    y += 4;
    pango_layout_set_wrap (small, PANGO_WRAP_WORD_CHAR);
    pango_layout_set_height (small, -4);
    pango_layout_set_text (small, n->error, -1);
    set_color (cr, &c->error, 1.0);
    cairo_move_to (cr, x, y);
    pango_cairo_show_layout (cr, small);
    pango_layout_set_height (small, -1);
  }
  pango_layout_set_width (small, -1);
  pango_layout_set_ellipsize (small, PANGO_ELLIPSIZE_NONE);

  /* the output port: drag from it to connect */
  cairo_new_path (cr);
  cairo_arc (cr, n->x + n->w / 2, n->y + n->h, PORT_RADIUS, 0, 2 * G_PI);
  set_color (cr, &c->view_bg, 1.0);
  cairo_fill_preserve (cr);
  if (hovered || selected || (self->connecting && i == self->connect_from)) {
    set_color (cr, &c->accent, 1.0);
    cairo_fill_preserve (cr);
  }
  set_color (cr, &c->fg, 0.5);
  cairo_set_line_width (cr, 1.2);
  cairo_stroke (cr);
}

static void
draw_pill_text (cairo_t *cr, PangoLayout *layout, const char *text, double x, double y,
                const Colors *c)
{
  int tw, th;
  pango_layout_set_text (layout, text, -1);
  pango_layout_get_pixel_size (layout, &tw, &th);
  rounded_rect (cr, x, y, tw + 20, th + 10, (th + 10) / 2.0);
  set_color (cr, &c->view_bg, 0.92);
  cairo_fill_preserve (cr);
  set_color (cr, &c->card_bg, 1.0);
  cairo_fill_preserve (cr);
  set_color (cr, &c->fg, 0.15);
  cairo_set_line_width (cr, 1.0);
  cairo_stroke (cr);
  set_color (cr, &c->fg, 0.9);
  cairo_move_to (cr, x + 10, y + 5);
  pango_cairo_show_layout (cr, layout);
}

static void
bp_model_canvas_snapshot (GtkWidget *widget, GtkSnapshot *snapshot)
{
  BpModelCanvas *self = BP_MODEL_CANVAS (widget);
  int width = gtk_widget_get_width (widget), height = gtk_widget_get_height (widget);
  if (width <= 0 || height <= 0)
    return;
  ensure_layout (self);
  Colors c;
  get_colors (widget, &c);
  cairo_t *cr = gtk_snapshot_append_cairo (snapshot, &GRAPHENE_RECT_INIT (0, 0, width, height));

  /* background with a dot grid that moves with the graph */
  set_color (cr, &c.view_bg, 1.0);
  cairo_paint (cr);
  double step = 24.0 * self->zoom;
  while (step < 12.0)
    step *= 2;
  set_color (cr, &c.fg, 0.12);
  for (double gx = fmod (self->tx, step) - step; gx < width + step; gx += step)
    for (double gy = fmod (self->ty, step) - step; gy < height + step; gy += step)
      cairo_rectangle (cr, gx, gy, 1.2, 1.2);
  cairo_fill (cr);

  PangoLayout *bold = make_layout (widget, FALSE, TRUE);
  PangoLayout *small = make_layout (widget, TRUE, FALSE);

  if (self->n_nodes == 0 && self->placeholder) {
    PangoLayout *layout = make_layout (widget, FALSE, FALSE);
    pango_layout_set_width (layout, (int) (MIN (width - 40, 420) * PANGO_SCALE));
    pango_layout_set_wrap (layout, PANGO_WRAP_WORD);
    pango_layout_set_alignment (layout, PANGO_ALIGN_CENTER);
    pango_layout_set_text (layout, self->placeholder, -1);
    int tw, th;
    pango_layout_get_pixel_size (layout, &tw, &th);
    set_color (cr, &c.fg, 0.55);
    cairo_move_to (cr, (width - MIN (width - 40, 420)) / 2.0, (height - th) / 2.0);
    pango_cairo_show_layout (cr, layout);
    g_object_unref (layout);
  }

  cairo_save (cr);
  cairo_translate (cr, self->tx, self->ty);
  cairo_scale (cr, self->zoom, self->zoom);
  draw_edges (self, cr, &c, small);
  for (int i = 0; i < self->n_nodes; i++)
    draw_node (self, cr, i, &c, bold, small);
  if (self->connecting && self->connect_from >= 0 && self->connect_from < self->n_nodes) {
    static const double dash[] = {6.0, 4.0};
    Node *n = &self->nodes[self->connect_from];
    double gx, gy;
    to_graph (self, self->pointer_x, self->pointer_y, &gx, &gy);
    set_color (cr, &c.accent, 1.0);
    cairo_set_line_width (cr, 2.0);
    cairo_set_dash (cr, dash, 2, 0);
    cairo_move_to (cr, n->x + n->w / 2, n->y + n->h);
    cairo_line_to (cr, gx, gy);
    cairo_stroke (cr);
    cairo_set_dash (cr, NULL, 0, 0);
  }
  cairo_restore (cr);

  if (self->header && *self->header && self->n_nodes > 0)
    draw_pill_text (cr, bold, self->header, 10, 8, &c);

  g_object_unref (bold);
  g_object_unref (small);
  cairo_destroy (cr);
}

static void
bp_model_canvas_size_allocate (GtkWidget *widget, int width, int height, int baseline)
{
  BpModelCanvas *self = BP_MODEL_CANVAS (widget);
  if (self->fit_pending && width > 0 && height > 0)
    do_fit (self, self->fit_whole);
}

static void
bp_model_canvas_measure (GtkWidget *widget, GtkOrientation orientation, int for_size,
                         int *minimum, int *natural, int *minimum_baseline, int *natural_baseline)
{
  *minimum = 200;
  *natural = orientation == GTK_ORIENTATION_HORIZONTAL ? 600 : 500;
}

/* ---- input ---- */

static gboolean
on_port (BpModelCanvas *self, double x, double y, int *index)
{
  for (int i = self->n_nodes - 1; i >= 0; i--) {
    Node *n = &self->nodes[i];
    double px = self->tx + self->zoom * (n->x + n->w / 2);
    double py = self->ty + self->zoom * (n->y + n->h);
    if (hypot (x - px, y - py) <= PORT_HIT) {
      *index = i;
      return TRUE;
    }
  }
  return FALSE;
}

static void
click_pressed_cb (GtkGestureClick *gesture, int n_press, double x, double y, BpModelCanvas *self)
{
  gtk_widget_grab_focus (GTK_WIDGET (self));
  int port;
  if (on_port (self, x, y, &port))
    return; /* a connection may start here */
  bp_model_canvas_set_selected (self, bp_model_canvas_node_at (self, x, y));
}

static void
drag_begin_cb (GtkGestureDrag *gesture, double x, double y, BpModelCanvas *self)
{
  int port;
  self->drag_x0 = self->pointer_x = x;
  self->drag_y0 = self->pointer_y = y;
  if (on_port (self, x, y, &port)) {
    self->connecting = TRUE;
    self->connect_from = port;
    self->connect_target = -1;
  } else {
    self->panning = TRUE;
    self->drag_tx0 = self->tx;
    self->drag_ty0 = self->ty;
  }
}

static void
drag_update_cb (GtkGestureDrag *gesture, double dx, double dy, BpModelCanvas *self)
{
  self->pointer_x = self->drag_x0 + dx;
  self->pointer_y = self->drag_y0 + dy;
  if (self->connecting) {
    int target = bp_model_canvas_node_at (self, self->pointer_x, self->pointer_y);
    self->connect_target = target == self->connect_from ? -1 : target;
  } else if (self->panning) {
    self->tx = self->drag_tx0 + dx;
    self->ty = self->drag_ty0 + dy;
  }
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

static void
drag_end_cb (GtkGestureDrag *gesture, double dx, double dy, BpModelCanvas *self)
{
  if (self->connecting) {
    int from = self->connect_from, to = self->connect_target;
    self->connecting = FALSE;
    self->connect_from = self->connect_target = -1;
    gtk_widget_queue_draw (GTK_WIDGET (self));
    if (from >= 0 && to >= 0 && from != to)
      g_signal_emit (self, signals[CONNECT], 0, from, to);
    else if (from >= 0 && hypot (dx, dy) < 4)
      bp_model_canvas_set_selected (self, from); /* a click on the port */
  }
  self->panning = FALSE;
}

static void
motion_cb (GtkEventControllerMotion *controller, double x, double y, BpModelCanvas *self)
{
  int hovered = bp_model_canvas_node_at (self, x, y);
  int port;
  if (hovered < 0 && on_port (self, x, y, &port))
    hovered = port;
  self->pointer_x = x;
  self->pointer_y = y;
  if (hovered != self->hovered) {
    self->hovered = hovered;
    gtk_widget_queue_draw (GTK_WIDGET (self));
  }
  gtk_widget_set_cursor_from_name (GTK_WIDGET (self),
                                   on_port (self, x, y, &port) ? "crosshair"
                                   : self->panning             ? "grabbing"
                                                               : NULL);
}

static void
leave_cb (GtkEventControllerMotion *controller, BpModelCanvas *self)
{
  self->hovered = -1;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

static gboolean
scroll_cb (GtkEventControllerScroll *controller, double dx, double dy, BpModelCanvas *self)
{
  GdkModifierType mods =
    gtk_event_controller_get_current_event_state (GTK_EVENT_CONTROLLER (controller));
  gboolean wheel = gtk_event_controller_scroll_get_unit (controller) == GDK_SCROLL_UNIT_WHEEL;
  if (mods & GDK_CONTROL_MASK) {
    double f = pow (wheel ? ZOOM_STEP : 1.01, -dy);
    zoom_about (self, self->zoom * f, self->pointer_x, self->pointer_y);
    return TRUE;
  }
  double unit = wheel ? 40.0 : 1.0;
  if (mods & GDK_SHIFT_MASK && dx == 0.0)
    dx = dy, dy = 0.0;
  self->tx -= dx * unit;
  self->ty -= dy * unit;
  gtk_widget_queue_draw (GTK_WIDGET (self));
  return TRUE;
}

/* The neighbour of the selected block in a direction: up/down follow the arrows, left/right
 * stay in the row. */
static int
neighbour (BpModelCanvas *self, int from, int dx, int dy)
{
  Node *a = &self->nodes[from];
  int best = -1;
  double best_score = G_MAXDOUBLE;
  if (dy != 0) {
    for (int i = 0; i < self->n_edges; i++) {
      Edge *e = &self->edges[i];
      if (!edge_valid (self, e))
        continue;
      int other = dy > 0 ? (e->from == from ? e->to : -1) : (e->to == from ? e->from : -1);
      if (other < 0 || other == from)
        continue;
      Node *b = &self->nodes[other];
      double score = fabs ((double) (b->row - a->row)) * 10000 + fabs (b->x - a->x);
      if (score < best_score)
        best_score = score, best = other;
    }
    return best;
  }
  for (int i = 0; i < self->n_nodes; i++) {
    Node *b = &self->nodes[i];
    if (i == from || b->row != a->row || (b->x - a->x) * dx <= 0)
      continue;
    double score = fabs (b->x - a->x);
    if (score < best_score)
      best_score = score, best = i;
  }
  return best;
}

/* Moves the selection: "up" and "down" follow the arrows, "left" and "right" stay in the row,
 * "next" and "previous" go in display order, then "first", "last", and "none". FALSE when there
 * was nothing to do with the key (Tab past the last block, Escape without a selection), so
 * that it goes on to other widgets (the focus moves on). */
static gboolean
move_selection (BpModelCanvas *self, const char *where)
{
  if (self->n_nodes == 0)
    return FALSE;
  ensure_layout (self);
  int sel = self->selected, next = -2, pos = -1;
  for (int k = 0; k < self->n_nodes; k++)
    if (self->order[k] == sel)
      pos = k;
  static const struct {
    const char *name;
    int dx, dy;
  } dirs[] = {{"up", 0, -1}, {"down", 0, 1}, {"left", -1, 0}, {"right", 1, 0}};
  for (guint i = 0; i < G_N_ELEMENTS (dirs); i++)
    if (g_str_equal (where, dirs[i].name))
      next = sel < 0 ? self->order[0] : neighbour (self, sel, dirs[i].dx, dirs[i].dy);
  if (g_str_equal (where, "next")) {
    if (pos + 1 >= self->n_nodes)
      return FALSE;
    next = self->order[pos + 1];
  } else if (g_str_equal (where, "previous")) {
    if (pos <= 0)
      return FALSE;
    next = self->order[pos - 1];
  } else if (g_str_equal (where, "first")) {
    next = self->order[0];
  } else if (g_str_equal (where, "last")) {
    next = self->order[self->n_nodes - 1];
  } else if (g_str_equal (where, "none")) {
    if (sel < 0)
      return FALSE;
    bp_model_canvas_set_selected (self, -1);
    return TRUE;
  }
  if (next < 0)
    return TRUE; /* no block that way */
  bp_model_canvas_set_selected (self, next);
  bp_model_canvas_scroll_to (self, next);
  return TRUE;
}

static gboolean
move_shortcut (GtkWidget *widget, GVariant *args, gpointer data)
{
  return move_selection (BP_MODEL_CANVAS (widget), g_variant_get_string (args, NULL));
}

static void
move_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  move_selection (BP_MODEL_CANVAS (widget), g_variant_get_string (param, NULL));
}

/* ---- GObject ---- */

static void
bp_model_canvas_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  BpModelCanvas *self = BP_MODEL_CANVAS (object);
  switch (prop_id) {
  case PROP_SELECTED: g_value_set_int (value, self->selected); break;
  case PROP_ZOOM: g_value_set_double (value, self->zoom); break;
  default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
}

static void
bp_model_canvas_set_property (GObject *object, guint prop_id, const GValue *value,
                              GParamSpec *pspec)
{
  BpModelCanvas *self = BP_MODEL_CANVAS (object);
  switch (prop_id) {
  case PROP_SELECTED: bp_model_canvas_set_selected (self, g_value_get_int (value)); break;
  case PROP_ZOOM: bp_model_canvas_set_zoom (self, g_value_get_double (value)); break;
  default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
}

static void
bp_model_canvas_finalize (GObject *object)
{
  BpModelCanvas *self = BP_MODEL_CANVAS (object);
  free_graph (self);
  g_free (self->header);
  g_free (self->placeholder);
  G_OBJECT_CLASS (bp_model_canvas_parent_class)->finalize (object);
}

static void
bp_model_canvas_class_init (BpModelCanvasClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->finalize = bp_model_canvas_finalize;
  object_class->get_property = bp_model_canvas_get_property;
  object_class->set_property = bp_model_canvas_set_property;
  widget_class->snapshot = bp_model_canvas_snapshot;
  widget_class->measure = bp_model_canvas_measure;
  widget_class->size_allocate = bp_model_canvas_size_allocate;

  properties[PROP_SELECTED] = g_param_spec_int ("selected", NULL, NULL, -1, G_MAXINT, -1,
                                                G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY |
                                                  G_PARAM_STATIC_STRINGS);
  properties[PROP_ZOOM] = g_param_spec_double ("zoom", NULL, NULL, MIN_ZOOM, MAX_ZOOM, 1.0,
                                               G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY |
                                                 G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /* The user dragged from block `from`'s output port onto block `to`. */
  signals[CONNECT] = g_signal_new ("connect", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                                   NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_INT, G_TYPE_INT);

  /* Moves the selection (see move_selection): "up", "down", "left", "right", "next",
   * "previous", "first", "last" or "none"; the arrow keys, Tab, Home, End and Escape. */
  gtk_widget_class_install_action (widget_class, "canvas.move", "s", move_action);
  static const struct {
    guint key;
    GdkModifierType mods;
    const char *where;
  } keys[] = {
    {GDK_KEY_Up, 0, "up"},        {GDK_KEY_KP_Up, 0, "up"},
    {GDK_KEY_Down, 0, "down"},    {GDK_KEY_KP_Down, 0, "down"},
    {GDK_KEY_Left, 0, "left"},    {GDK_KEY_KP_Left, 0, "left"},
    {GDK_KEY_Right, 0, "right"},  {GDK_KEY_KP_Right, 0, "right"},
    {GDK_KEY_Tab, 0, "next"},     {GDK_KEY_KP_Tab, 0, "next"},
    {GDK_KEY_ISO_Left_Tab, GDK_SHIFT_MASK, "previous"},
    {GDK_KEY_Tab, GDK_SHIFT_MASK, "previous"},
    {GDK_KEY_Home, 0, "first"},   {GDK_KEY_End, 0, "last"},
    {GDK_KEY_Escape, 0, "none"},
  };
  for (guint i = 0; i < G_N_ELEMENTS (keys); i++)
    gtk_widget_class_add_binding (widget_class, keys[i].key, keys[i].mods, move_shortcut, "s",
                                  keys[i].where);

  gtk_widget_class_set_css_name (widget_class, "bp-model-canvas");
  gtk_widget_class_set_accessible_role (widget_class, GTK_ACCESSIBLE_ROLE_IMG);
}

static void
bp_model_canvas_init (BpModelCanvas *self)
{
  GtkWidget *widget = GTK_WIDGET (self);
  self->selected = self->hovered = -1;
  self->connect_from = self->connect_target = -1;
  self->zoom = 1.0;
  self->fit_pending = TRUE;
  gtk_widget_set_focusable (widget, TRUE);
  gtk_widget_set_focus_on_click (widget, TRUE);
  gtk_widget_set_overflow (widget, GTK_OVERFLOW_HIDDEN);
  gtk_widget_set_hexpand (widget, TRUE);
  gtk_widget_set_vexpand (widget, TRUE);

  GtkGesture *click = gtk_gesture_click_new ();
  gtk_gesture_single_set_button (GTK_GESTURE_SINGLE (click), GDK_BUTTON_PRIMARY);
  g_signal_connect (click, "pressed", G_CALLBACK (click_pressed_cb), self);
  gtk_widget_add_controller (widget, GTK_EVENT_CONTROLLER (click));
  GtkGesture *drag = gtk_gesture_drag_new ();
  gtk_gesture_single_set_button (GTK_GESTURE_SINGLE (drag), GDK_BUTTON_PRIMARY);
  g_signal_connect (drag, "drag-begin", G_CALLBACK (drag_begin_cb), self);
  g_signal_connect (drag, "drag-update", G_CALLBACK (drag_update_cb), self);
  g_signal_connect (drag, "drag-end", G_CALLBACK (drag_end_cb), self);
  gtk_widget_add_controller (widget, GTK_EVENT_CONTROLLER (drag));
  GtkEventController *motion = gtk_event_controller_motion_new ();
  g_signal_connect (motion, "motion", G_CALLBACK (motion_cb), self);
  g_signal_connect (motion, "leave", G_CALLBACK (leave_cb), self);
  gtk_widget_add_controller (widget, motion);
  GtkEventController *scroll = gtk_event_controller_scroll_new (GTK_EVENT_CONTROLLER_SCROLL_BOTH_AXES);
  g_signal_connect (scroll, "scroll", G_CALLBACK (scroll_cb), self);
  gtk_widget_add_controller (widget, scroll);
}

/* ---- public API ---- */

void
bp_model_canvas_get_color (int index, GdkRGBA *rgba)
{
  g_return_if_fail (rgba);
  gdk_rgba_parse (rgba, index >= 0 && index < BP_MODEL_CANVAS_N_COLORS ? stripe_colors[index]
                                                                        : "#9a9996");
}

GtkWidget *
bp_model_canvas_new (void)
{
  return g_object_new (BP_TYPE_MODEL_CANVAS, NULL);
}

void
bp_model_canvas_set_graph (BpModelCanvas *self, int n_nodes, const BpModelCanvasNode *nodes,
                           int n_edges, const BpModelCanvasEdge *edges)
{
  g_return_if_fail (BP_IS_MODEL_CANVAS (self));
  g_return_if_fail (n_nodes >= 0 && n_edges >= 0);
  g_return_if_fail (n_nodes == 0 || nodes);
  g_return_if_fail (n_edges == 0 || edges);
  gboolean was_empty = self->n_nodes == 0;
  free_graph (self);
  self->n_nodes = n_nodes;
  self->n_edges = n_edges;
  self->nodes = g_new0 (Node, MAX (n_nodes, 1));
  self->edges = g_new0 (Edge, MAX (n_edges, 1));
  self->order = g_new0 (int, MAX (n_nodes, 1));
  for (int i = 0; i < n_nodes; i++) {
    Node *n = &self->nodes[i];
    n->title = g_strdup (nodes[i].title ? nodes[i].title : "");
    n->tag = nodes[i].tag && *nodes[i].tag ? g_strdup (nodes[i].tag) : NULL;
    n->detail = nodes[i].detail && *nodes[i].detail ? g_strdup (nodes[i].detail) : NULL;
    n->caption = nodes[i].caption && *nodes[i].caption ? g_strdup (nodes[i].caption) : NULL;
    n->error = nodes[i].error && *nodes[i].error ? g_strdup (nodes[i].error) : NULL;
    n->color = nodes[i].color;
    self->order[i] = i;
  }
  for (int i = 0; i < n_edges; i++) {
    self->edges[i].from = edges[i].from;
    self->edges[i].to = edges[i].to;
    self->edges[i].label = g_strdup (edges[i].label);
  }
  relayout (self);
  if (self->selected >= n_nodes) {
    self->selected = -1;
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SELECTED]);
  }
  if (self->hovered >= n_nodes)
    self->hovered = -1;
  if (was_empty && n_nodes > 0)
    do_fit (self, FALSE);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

int
bp_model_canvas_get_n_nodes (BpModelCanvas *self)
{
  g_return_val_if_fail (BP_IS_MODEL_CANVAS (self), 0);
  return self->n_nodes;
}

int
bp_model_canvas_get_n_edges (BpModelCanvas *self)
{
  g_return_val_if_fail (BP_IS_MODEL_CANVAS (self), 0);
  return self->n_edges;
}

const char *
bp_model_canvas_get_edge_label (BpModelCanvas *self, int from, int to)
{
  g_return_val_if_fail (BP_IS_MODEL_CANVAS (self), NULL);
  for (int i = 0; i < self->n_edges; i++)
    if (self->edges[i].from == from && self->edges[i].to == to)
      return self->edges[i].label ? self->edges[i].label : "";
  return NULL;
}

void
bp_model_canvas_set_header (BpModelCanvas *self, const char *text)
{
  g_return_if_fail (BP_IS_MODEL_CANVAS (self));
  if (g_strcmp0 (self->header, text) == 0)
    return;
  g_free (self->header);
  self->header = g_strdup (text);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

const char *
bp_model_canvas_get_header (BpModelCanvas *self)
{
  g_return_val_if_fail (BP_IS_MODEL_CANVAS (self), NULL);
  return self->header;
}

void
bp_model_canvas_set_placeholder (BpModelCanvas *self, const char *text)
{
  g_return_if_fail (BP_IS_MODEL_CANVAS (self));
  g_free (self->placeholder);
  self->placeholder = g_strdup (text);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

int
bp_model_canvas_get_selected (BpModelCanvas *self)
{
  g_return_val_if_fail (BP_IS_MODEL_CANVAS (self), -1);
  return self->selected;
}

void
bp_model_canvas_set_selected (BpModelCanvas *self, int index)
{
  g_return_if_fail (BP_IS_MODEL_CANVAS (self));
  if (index < 0 || index >= self->n_nodes)
    index = -1;
  if (index == self->selected)
    return;
  self->selected = index;
  gtk_widget_queue_draw (GTK_WIDGET (self));
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SELECTED]);
}

int
bp_model_canvas_node_at (BpModelCanvas *self, double x, double y)
{
  g_return_val_if_fail (BP_IS_MODEL_CANVAS (self), -1);
  ensure_layout (self);
  double gx, gy;
  to_graph (self, x, y, &gx, &gy);
  for (int i = self->n_nodes - 1; i >= 0; i--) {
    Node *n = &self->nodes[i];
    if (gx >= n->x && gx <= n->x + n->w && gy >= n->y && gy <= n->y + n->h)
      return i;
  }
  return -1;
}

gboolean
bp_model_canvas_get_node_bounds (BpModelCanvas *self, int index, graphene_rect_t *bounds)
{
  g_return_val_if_fail (BP_IS_MODEL_CANVAS (self), FALSE);
  ensure_layout (self);
  if (index < 0 || index >= self->n_nodes)
    return FALSE;
  Node *n = &self->nodes[index];
  *bounds = GRAPHENE_RECT_INIT (self->tx + self->zoom * n->x, self->ty + self->zoom * n->y,
                                self->zoom * n->w, self->zoom * n->h);
  return TRUE;
}

gboolean
bp_model_canvas_get_label_bounds (BpModelCanvas *self, int edge, graphene_rect_t *bounds)
{
  g_return_val_if_fail (BP_IS_MODEL_CANVAS (self), FALSE);
  ensure_layout (self);
  if (edge < 0 || edge >= self->n_edges || self->edges[edge].label_rect.size.width <= 0)
    return FALSE;
  graphene_rect_t *r = &self->edges[edge].label_rect;
  *bounds = GRAPHENE_RECT_INIT (self->tx + self->zoom * r->origin.x,
                                self->ty + self->zoom * r->origin.y, self->zoom * r->size.width,
                                self->zoom * r->size.height);
  return TRUE;
}

void
bp_model_canvas_get_graph_size (BpModelCanvas *self, double *width, double *height)
{
  g_return_if_fail (BP_IS_MODEL_CANVAS (self));
  ensure_layout (self);
  if (width)
    *width = self->graph_w;
  if (height)
    *height = self->graph_h;
}

double
bp_model_canvas_get_zoom (BpModelCanvas *self)
{
  g_return_val_if_fail (BP_IS_MODEL_CANVAS (self), 1.0);
  return self->zoom;
}

void
bp_model_canvas_set_zoom (BpModelCanvas *self, double zoom)
{
  g_return_if_fail (BP_IS_MODEL_CANVAS (self));
  zoom_about (self, zoom, gtk_widget_get_width (GTK_WIDGET (self)) / 2.0,
              gtk_widget_get_height (GTK_WIDGET (self)) / 2.0);
}

void
bp_model_canvas_zoom_in (BpModelCanvas *self)
{
  g_return_if_fail (BP_IS_MODEL_CANVAS (self));
  bp_model_canvas_set_zoom (self, self->zoom * ZOOM_STEP);
}

void
bp_model_canvas_zoom_out (BpModelCanvas *self)
{
  g_return_if_fail (BP_IS_MODEL_CANVAS (self));
  bp_model_canvas_set_zoom (self, self->zoom / ZOOM_STEP);
}

void
bp_model_canvas_zoom_fit (BpModelCanvas *self)
{
  g_return_if_fail (BP_IS_MODEL_CANVAS (self));
  do_fit (self, TRUE);
}

void
bp_model_canvas_reset_view (BpModelCanvas *self)
{
  g_return_if_fail (BP_IS_MODEL_CANVAS (self));
  do_fit (self, FALSE);
}

void
bp_model_canvas_scroll_to (BpModelCanvas *self, int index)
{
  g_return_if_fail (BP_IS_MODEL_CANVAS (self));
  graphene_rect_t r;
  double w = gtk_widget_get_width (GTK_WIDGET (self)), h = gtk_widget_get_height (GTK_WIDGET (self));
  if (w <= 0 || h <= 0 || !bp_model_canvas_get_node_bounds (self, index, &r))
    return;
  const double m = 24.0, top = 48.0; /* below the header */
  double dx = 0, dy = 0;
  /* a block out of sight comes to the middle; one partly in sight just into it */
  gboolean away = r.origin.x + r.size.width < 0 || r.origin.x > w || r.origin.y + r.size.height < 0 ||
                  r.origin.y > h;
  if (away) {
    dx = w / 2 - (r.origin.x + r.size.width / 2);
    dy = h / 2 - (r.origin.y + r.size.height / 2);
  } else {
    if (r.origin.x < m)
      dx = m - r.origin.x;
    else if (r.origin.x + r.size.width > w - m)
      dx = MAX (w - m - (r.origin.x + r.size.width), m - r.origin.x);
    if (r.origin.y < top)
      dy = top - r.origin.y;
    else if (r.origin.y + r.size.height > h - m)
      dy = MAX (h - m - (r.origin.y + r.size.height), top - r.origin.y);
  }
  self->tx += dx;
  self->ty += dy;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}
