/* bp-gui-test.c: the GUI tests' helpers (display check, main-loop waiting, PNG screenshots). */
#include "bp-gui-test.h"

#include <adwaita.h>
#include <stdio.h>

#include "bp-lab.h"
#include "bp-train-page.h"

gboolean
bp_gui_test_init (int *argc, char ***argv)
{
  if (!g_getenv ("DISPLAY") && !g_getenv ("WAYLAND_DISPLAY")) {
    printf ("1..0 # SKIP no display: run under xvfb-run (package xvfb)\n");
    return FALSE;
  }
  bp_lab_init ();
  gtk_test_init (argc, argv, NULL);
  adw_init ();
  return TRUE;
}

static gboolean
timeout_cb (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

gboolean
bp_gui_wait (gboolean (*cond) (gpointer data), gpointer data, guint timeout_ms)
{
  gboolean timed_out = FALSE;
  guint id = g_timeout_add (timeout_ms, timeout_cb, &timed_out);
  gboolean ok;
  while (!(ok = cond (data)) && !timed_out)
    g_main_context_iteration (NULL, TRUE);
  if (!timed_out)
    g_source_remove (id);
  return ok;
}

static gboolean
never (gpointer data)
{
  return FALSE;
}

void
bp_gui_spin (guint ms)
{
  bp_gui_wait (never, NULL, ms);
}

char *
bp_gui_screenshot (GtkWidget *window, const char *name)
{
  /* let pending layout and drawing happen first */
  bp_gui_spin (150);
  GtkWidget *content = ADW_IS_APPLICATION_WINDOW (window)
                         ? adw_application_window_get_content (ADW_APPLICATION_WINDOW (window))
                         : gtk_window_get_child (GTK_WINDOW (window));
  g_assert_nonnull (content);
  int width = gtk_widget_get_width (content), height = gtk_widget_get_height (content);
  g_assert_cmpint (width, >, 0);
  g_assert_cmpint (height, >, 0);

  GdkPaintable *paintable = gtk_widget_paintable_new (content);
  GtkSnapshot *snapshot = gtk_snapshot_new ();
  /* the window's background is drawn by the window, not by its content */
  GdkRGBA background;
  GtkStyleContext *style = gtk_widget_get_style_context (window);
  G_GNUC_BEGIN_IGNORE_DEPRECATIONS
  if (!gtk_style_context_lookup_color (style, "window_bg_color", &background))
    gdk_rgba_parse (&background, "#fafafa");
  G_GNUC_END_IGNORE_DEPRECATIONS
  gtk_snapshot_append_color (snapshot, &background, &GRAPHENE_RECT_INIT (0, 0, width, height));
  gdk_paintable_snapshot (paintable, snapshot, width, height);
  GskRenderNode *node = gtk_snapshot_free_to_node (snapshot);
  g_assert_nonnull (node);
  GskRenderer *renderer = gtk_native_get_renderer (GTK_NATIVE (window));
  GdkTexture *texture =
    gsk_renderer_render_texture (renderer, node, &GRAPHENE_RECT_INIT (0, 0, width, height));

  const char *dir = g_getenv ("G_TEST_BUILDDIR");
  g_autofree char *folder = g_build_filename (dir ? dir : ".", "screenshots", NULL);
  g_mkdir_with_parents (folder, 0755);
  g_autofree char *file = g_strconcat (name, ".png", NULL);
  char *path = g_build_filename (folder, file, NULL);
  g_assert_true (gdk_texture_save_to_png (texture, path));
  g_test_message ("screenshot: %s", path);

  g_object_unref (texture);
  gsk_render_node_unref (node);
  g_object_unref (paintable);
  return path;
}

static gboolean
is_null (gpointer data)
{
  return *(gpointer *) data == NULL;
}

void
bp_gui_destroy_window (GtkWidget *window)
{
  gpointer weak = window;
  g_object_add_weak_pointer (G_OBJECT (window), &weak);
  gtk_window_destroy (GTK_WINDOW (window));
  bp_gui_wait (is_null, &weak, 5000);
  if (weak)
    g_object_remove_weak_pointer (G_OBJECT (window), &weak);
  g_assert_null (weak);
}

gboolean
bp_gui_has_message_dialog (gpointer data)
{
  for (GList *l = gtk_window_list_toplevels (); l; l = g_list_delete_link (l, l))
    if (ADW_IS_MESSAGE_DIALOG (l->data) && gtk_widget_get_visible (l->data)) {
      *(gpointer *) data = l->data;
      g_list_free (l);
      return TRUE;
    }
  return FALSE;
}

gboolean
bp_gui_is_mapped (gpointer widget)
{
  return gtk_widget_get_mapped (GTK_WIDGET (widget));
}

gboolean
bp_gui_run_ended (gpointer train_page)
{
  BpTrainRun *run = bp_train_page_get_run (BP_TRAIN_PAGE (train_page));
  return run && !bp_train_run_is_active (run);
}

GtkWidget *
bp_gui_template_child (gpointer widget, GType type, const char *name)
{
  GObject *object = gtk_widget_get_template_child (GTK_WIDGET (widget), type, name);
  g_assert_nonnull (object);
  return GTK_WIDGET (object);
}
