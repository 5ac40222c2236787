/* bp-window.h: the main window: a sidebar of places (Train, ...) and the current place's page. */
#pragma once

#include <adwaita.h>

G_BEGIN_DECLS

#define BP_TYPE_WINDOW (bp_window_get_type ())
G_DECLARE_FINAL_TYPE (BpWindow, bp_window, BP, WINDOW, AdwApplicationWindow)

BpWindow *bp_window_new (GtkApplication *application);

/* Places by name ("train"); setting an unknown name does nothing and returns FALSE. */
gboolean bp_window_set_place (BpWindow *self, const char *name);
const char *bp_window_get_place (BpWindow *self);
GtkWidget *bp_window_get_page (BpWindow *self, const char *name);
void bp_window_add_toast (BpWindow *self, AdwToast *toast);

G_END_DECLS
