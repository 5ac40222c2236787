/* bp-engine-strings.h: translated names and help of the engine's layer groups, layers,
 * parameters and presets (the engine's tables are English), and how the app writes shapes and
 * parameter counts. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The palette group's title ("convolution" -> "Convolution"), translated. */
const char *bp_engine_group_title (const char *group);
/* The group's colour on the canvas and in the palette (a BpModelCanvas colour index). */
int bp_engine_group_color (const char *group);
/* A help text or preset description of the engine's tables, translated where the catalog has
 * it (texts added to the engine later show in English until they are translated). */
const char *bp_engine_text (const char *english);

/* One example's shape as "16×28×28" ("?" when ndim is 0). */
char *bp_format_shape (int ndim, const gint64 *d);
/* A count with thousands separators: "688,586". */
char *bp_format_count (gint64 n);
/* "688,586 parameters" (translated, with the plural form of n). */
char *bp_format_n_params (gint64 n);

G_END_DECLS
