/* bp-preferences-window.h: the Preferences window (theme, language, default device). */
#pragma once

#include <adwaita.h>

G_BEGIN_DECLS

#define BP_TYPE_PREFERENCES_WINDOW (bp_preferences_window_get_type ())
G_DECLARE_FINAL_TYPE (BpPreferencesWindow, bp_preferences_window, BP, PREFERENCES_WINDOW,
                      AdwPreferencesWindow)

/* Edits `settings` (schema org.backproplab.Lab) directly. */
GtkWidget *bp_preferences_window_new (GSettings *settings);

G_END_DECLS
