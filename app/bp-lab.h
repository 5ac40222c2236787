/* bp-lab.h: process set-up of the lab window: resources, translations and build-tree paths. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Call once, first thing in main () (and in tests): when the program runs from the build tree
 * it points GSettings at the build's compiled schema; it applies the language preference,
 * sets the locale, binds the text domain ($BP_LOCALEDIR, else the build's po folder when run
 * from the build tree, else the installed locale dir) and registers the GResource bundle. */
void bp_lab_init (void);

/* Where the translations are read from (after bp_lab_init). */
const char *bp_lab_get_localedir (void);

/* Registers the GResource bundle (idempotent; bp_lab_init does it). */
void bp_lab_register_resources (void);

G_END_DECLS
