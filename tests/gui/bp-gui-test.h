/* bp-gui-test.h: helpers of the GUI tests: start-up under a display, waiting, screenshots. */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

/* Prints a TAP skip and returns FALSE when no display is reachable; else sets up the lab
 * (bp_lab_init), GTK (gtk_test_init) and libadwaita. */
gboolean bp_gui_test_init (int *argc, char ***argv);

/* Iterates the main context until cond (data) is TRUE or timeout_ms pass; returns cond's value. */
gboolean bp_gui_wait (gboolean (*cond) (gpointer data), gpointer data, guint timeout_ms);
/* Iterates the main context for ms milliseconds. */
void bp_gui_spin (guint ms);

/* Saves a PNG of the window's content into $G_TEST_BUILDDIR/screenshots/NAME.png and returns
 * its path (free it). */
char *bp_gui_screenshot (GtkWidget *window, const char *name);

/* Destroys the window and checks that it is finalized (no reference leaked). */
void bp_gui_destroy_window (GtkWidget *window);
/* A bp_gui_wait condition: a visible AdwMessageDialog exists; it is stored in *(gpointer *) data. */
gboolean bp_gui_has_message_dialog (gpointer data);

/* Conditions for bp_gui_wait: the widget is mapped; the BpTrainPage's run has ended. */
gboolean bp_gui_is_mapped (gpointer widget);
gboolean bp_gui_run_ended (gpointer train_page);

/* A template child of a widget of type (asserted to exist). */
GtkWidget *bp_gui_template_child (gpointer widget, GType type, const char *name);

G_END_DECLS
