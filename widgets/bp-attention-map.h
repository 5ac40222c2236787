/* bp-attention-map.h: attention weights as a heatmap (query rows, key columns, the tokens
 * along both axes) with a choice of layer and head (or the mean of the heads). */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define BP_TYPE_ATTENTION_MAP (bp_attention_map_get_type ())
G_DECLARE_FINAL_TYPE (BpAttentionMap, bp_attention_map, BP, ATTENTION_MAP, GtkWidget)

GtkWidget *bp_attention_map_new (void);

/* weights: n_layers x n_heads x len x len, row-major (per layer and head: query rows, key
 * columns), copied; tokens: len UTF-8 strings; layer_ids: n_layers names (NULL: "1", "2", ...).
 * The chosen layer and head stay when the layers and heads stay the same (live updates). */
void bp_attention_map_set_data (BpAttentionMap *self, int n_layers, int n_heads, int len,
                                const char *const *tokens, const char *const *layer_ids,
                                const float *weights);
void bp_attention_map_clear (BpAttentionMap *self);
/* The text shown while there are no weights. */
void bp_attention_map_set_placeholder (BpAttentionMap *self, const char *text);

int bp_attention_map_get_n_layers (BpAttentionMap *self);
int bp_attention_map_get_n_heads (BpAttentionMap *self);
int bp_attention_map_get_length (BpAttentionMap *self);
/* How many times set_data was called (a live view's refreshes). */
guint bp_attention_map_get_n_updates (BpAttentionMap *self);

/* The layer on show (0-based), and the head (0-based; -1: the mean of the heads). Also the
 * properties "layer" and "head", and the header's drop-downs. */
int bp_attention_map_get_layer (BpAttentionMap *self);
void bp_attention_map_set_layer (BpAttentionMap *self, int layer);
int bp_attention_map_get_head (BpAttentionMap *self);
void bp_attention_map_set_head (BpAttentionMap *self, int head);

/* The len x len matrix on show (the chosen layer and head, or the mean of the heads), NULL
 * when there are no weights. */
const float *bp_attention_map_get_matrix (BpAttentionMap *self);
/* The cell under a point in the widget's coordinates (as last drawn); FALSE outside the grid. */
gboolean bp_attention_map_cell_at (BpAttentionMap *self, double x, double y, int *query,
                                   int *key);
/* The hover text of a cell: query position and token → key position and token: weight. */
char *bp_attention_map_describe_cell (BpAttentionMap *self, int query, int key);

/* Draws the heatmap on white into a PNG; width or height <= 0: a size for the length. */
gboolean bp_attention_map_export_png (BpAttentionMap *self, const char *path, int width,
                                      int height, GError **error);

G_END_DECLS
