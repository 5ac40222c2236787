/* bp-build-page.h: the Build place: build a model spec by clicking (palette, canvas, inspector),
 * with undo, copy and paste, presets, files, PyTorch code, and "Train this model". */
#pragma once

#include <gtk/gtk.h>

#include "bp-spec.h"

G_BEGIN_DECLS

#define BP_TYPE_BUILD_PAGE (bp_build_page_get_type ())
G_DECLARE_FINAL_TYPE (BpBuildPage, bp_build_page, BP, BUILD_PAGE, GtkWidget)

GtkWidget *bp_build_page_new (void);

/* The spec being edited and what checking it found (valid until the next edit). */
const BpSpec *bp_build_page_get_spec (BpBuildPage *self);
const BpSpecInfo *bp_build_page_get_info (BpBuildPage *self);
/* The spec as canonical JSON (free it). */
char *bp_build_page_get_json (BpBuildPage *self);
/* Replaces the model (one undoable edit); FALSE and error when json is not a model spec. */
gboolean bp_build_page_set_json (BpBuildPage *self, const char *json, GError **error);

/* What Open and Save As do once a file is chosen. */
gboolean bp_build_page_load_file (BpBuildPage *self, GFile *file, GError **error);
gboolean bp_build_page_save_file (BpBuildPage *self, GFile *file, GError **error);

/* The selected block's id (NULL for none); selecting an unknown id selects nothing. */
const char *bp_build_page_get_selected (BpBuildPage *self);
void bp_build_page_select (BpBuildPage *self, const char *id);

/* The code view's text: bp_spec_to_pytorch of the spec, or why it cannot be written yet. */
const char *bp_build_page_get_code (BpBuildPage *self);
/* Why "Train this model" is disabled, NULL when it is enabled. */
const char *bp_build_page_get_train_blocker (BpBuildPage *self);

G_END_DECLS
