/* bp-build-palette.h: the Build page's palette: the engine's layer types grouped as the course
 * groups them, with a search box; a row adds its layer (build.add-layer) or drags its name. */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define BP_TYPE_BUILD_PALETTE (bp_build_palette_get_type ())
G_DECLARE_FINAL_TYPE (BpBuildPalette, bp_build_palette, BP, BUILD_PALETTE, GtkWidget)

GtkWidget *bp_build_palette_new (void);
/* Filters the rows (name, group, help; case-insensitive), as typing in the search box does. */
void bp_build_palette_set_filter (BpBuildPalette *self, const char *text);
/* The layer types shown under the current filter, in order (free with g_strfreev). */
char **bp_build_palette_get_visible (BpBuildPalette *self);
void bp_build_palette_focus_search (BpBuildPalette *self);

G_END_DECLS
