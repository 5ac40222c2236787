/* bp-build-inspector.h: the Build page's inspector: the selected block's name, inputs, shape,
 * parameter count, error and parameters (PyTorch names and defaults, validated as typed), or
 * the model's name and description when no block is selected. */
#pragma once

#include <gtk/gtk.h>

#include "bp-spec.h"

G_BEGIN_DECLS

#define BP_TYPE_BUILD_INSPECTOR (bp_build_inspector_get_type ())
G_DECLARE_FINAL_TYPE (BpBuildInspector, bp_build_inspector, BP, BUILD_INSPECTOR, GtkWidget)

GtkWidget *bp_build_inspector_new (void);

/* Shows node `index` of spec with what checking found (index -1: the model). Keeps no pointer
 * into spec or info. The rows are made again when another node or kind is shown; otherwise
 * their values are refreshed, except the one being typed in.
 *
 * Signals, emitted only for values that pass the checks (a bad value shows its error in its
 * row and emits nothing):
 *   ::set-param (name, json): a parameter's new value as JSON text; json NULL puts the
 *     parameter back to its default (or "inferred");
 *   ::rename (id), ::disconnect (input index), ::set-model-name (name),
 *   ::set-model-description (text). */
void bp_build_inspector_show (BpBuildInspector *self, const BpSpec *spec, int index,
                              const BpSpecInfo *info);

/* Makes the rows again at the next show (after undo, or when another spec was loaded), dropping
 * any value being typed. */
void bp_build_inspector_reset (BpBuildInspector *self);

/* The widget editing a parameter ("out_channels"; "id" for the block's name, "model-name" and
 * "model-description" for the model): a GtkEditable, GtkSwitch or GtkDropDown. NULL if none. */
GtkWidget *bp_build_inspector_get_editor (BpBuildInspector *self, const char *name);
/* The error its row shows, NULL when its value is fine. */
const char *bp_build_inspector_get_error (BpBuildInspector *self, const char *name);

/* Puts one parameter of a node back to PyTorch's default (inferred sizes: to "inferred"). */
void bp_layer_spec_reset_param (BpLayerSpec *node, const BpParamInfo *param);
/* The text a user types for a parameter ("3", "3, 5", "[1, 28, 28]", "None") as JSON text;
 * NULL for an empty text (the default). */
char *bp_param_text_to_json (const BpParamInfo *param, const char *text);
/* Whether id can name a node: a letter, then letters, digits and _, at most 32 characters. */
gboolean bp_node_id_is_valid (const char *id);

G_END_DECLS
