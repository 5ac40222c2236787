/* bp-window.c: BpWindow builds its places from one table, remembers its size and last place in
 * GSettings and hosts the pages in a GtkStack beside a sidebar (an AdwLeaflet when narrow). */
#include "config.h"

#include "bp-window.h"

#include <glib/gi18n.h>

#include "bp-build-page.h"
#include "bp-experiments-page.h"
#include "bp-icon-pin.h"
#include "bp-lessons-page.h"
#include "bp-train-page.h"

/* The places of the window, in sidebar order: adding a place is one line here. */
typedef struct {
  const char *name;
  const char *title; /* translated when shown */
  const char *icon_name;
  GType (*get_type) (void);
} BpPlace;

static const BpPlace places[] = {
  {"lessons", N_("Lessons"), "accessories-dictionary-symbolic", bp_lessons_page_get_type},
  {"build", N_("Build"), "network-workgroup-symbolic", bp_build_page_get_type},
  {"train", N_("Train"), "media-playback-start-symbolic", bp_train_page_get_type},
  {"experiments", N_("Experiments"), "view-list-symbolic", bp_experiments_page_get_type},
};

struct _BpWindow {
  AdwApplicationWindow parent_instance;

  AdwLeaflet *leaflet;
  GtkWidget *sidebar, *content;
  GtkListBox *places_list;
  AdwWindowTitle *place_title;
  AdwToastOverlay *toast_overlay;
  GtkWidget *main_box; /* the stack, then the lesson panel (beside Build and Train) */
  GtkStack *stack;

  GSettings *settings;
};

G_DEFINE_FINAL_TYPE (BpWindow, bp_window, ADW_TYPE_APPLICATION_WINDOW)

static const BpPlace *
find_place (const char *name)
{
  for (guint i = 0; i < G_N_ELEMENTS (places); i++)
    if (g_strcmp0 (places[i].name, name) == 0)
      return &places[i];
  return NULL;
}

static void
place_activated_cb (BpWindow *self, GtkListBoxRow *row)
{
  const char *name = g_object_get_data (G_OBJECT (row), "bp-place");
  bp_window_set_place (self, name);
  adw_leaflet_navigate (self->leaflet, ADW_NAVIGATION_DIRECTION_FORWARD);
}

static void
back_clicked_cb (BpWindow *self)
{
  adw_leaflet_navigate (self->leaflet, ADW_NAVIGATION_DIRECTION_BACK);
}

static void
place_changed_cb (BpWindow *self)
{
  const char *name = gtk_stack_get_visible_child_name (self->stack);
  const BpPlace *place = find_place (name);
  if (!place)
    return;
  adw_window_title_set_title (self->place_title, _(place->title));
  for (GtkWidget *row = gtk_widget_get_first_child (GTK_WIDGET (self->places_list)); row;
       row = gtk_widget_get_next_sibling (row))
    if (GTK_IS_LIST_BOX_ROW (row) &&
        g_strcmp0 (g_object_get_data (G_OBJECT (row), "bp-place"), name) == 0)
      gtk_list_box_select_row (self->places_list, GTK_LIST_BOX_ROW (row));
  g_settings_set_string (self->settings, "last-place", name);
  GtkWidget *lessons = gtk_stack_get_child_by_name (self->stack, "lessons");
  if (lessons)
    bp_lessons_page_place_changed (BP_LESSONS_PAGE (lessons), name);
}

static GtkWidget *
place_row (const BpPlace *place)
{
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 12);
  gtk_box_append (GTK_BOX (box), gtk_image_new_from_icon_name (place->icon_name));
  GtkWidget *label = gtk_label_new (_(place->title));
  gtk_label_set_xalign (GTK_LABEL (label), 0.0);
  gtk_box_append (GTK_BOX (box), label);
  GtkWidget *row = gtk_list_box_row_new ();
  gtk_list_box_row_set_child (GTK_LIST_BOX_ROW (row), box);
  g_object_set_data (G_OBJECT (row), "bp-place", (gpointer) place->name);
  return row;
}

static void
scale_factor_cb (GtkWidget *self)
{
  bp_icon_pin_for_widget (self);
}

static gboolean
bp_window_close_request (GtkWindow *window)
{
  BpWindow *self = BP_WINDOW (window);
  int width, height;
  gtk_window_get_default_size (window, &width, &height);
  g_settings_delay (self->settings);
  g_settings_set_boolean (self->settings, "window-maximized", gtk_window_is_maximized (window));
  if (!gtk_window_is_maximized (window) && width > 0 && height > 0) {
    g_settings_set_int (self->settings, "window-width", width);
    g_settings_set_int (self->settings, "window-height", height);
  }
  g_settings_apply (self->settings);
  return GTK_WINDOW_CLASS (bp_window_parent_class)->close_request (window);
}

static void
bp_window_dispose (GObject *object)
{
  BpWindow *self = BP_WINDOW (object);
  gtk_widget_dispose_template (GTK_WIDGET (self), BP_TYPE_WINDOW);
  g_clear_object (&self->settings);
  G_OBJECT_CLASS (bp_window_parent_class)->dispose (object);
}

static void
bp_window_class_init (BpWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  GtkWindowClass *window_class = GTK_WINDOW_CLASS (klass);
  object_class->dispose = bp_window_dispose;
  window_class->close_request = bp_window_close_request;

  gtk_widget_class_set_template_from_resource (widget_class, "/org/backproplab/Lab/ui/bp-window.ui");
  gtk_widget_class_bind_template_child (widget_class, BpWindow, leaflet);
  gtk_widget_class_bind_template_child (widget_class, BpWindow, sidebar);
  gtk_widget_class_bind_template_child (widget_class, BpWindow, content);
  gtk_widget_class_bind_template_child (widget_class, BpWindow, places_list);
  gtk_widget_class_bind_template_child (widget_class, BpWindow, place_title);
  gtk_widget_class_bind_template_child (widget_class, BpWindow, toast_overlay);
  gtk_widget_class_bind_template_child (widget_class, BpWindow, stack);
  gtk_widget_class_bind_template_child (widget_class, BpWindow, main_box);
  gtk_widget_class_bind_template_callback (widget_class, place_activated_cb);
  gtk_widget_class_bind_template_callback (widget_class, back_clicked_cb);
  gtk_widget_class_bind_template_callback (widget_class, place_changed_cb);
}

static void
bp_window_init (BpWindow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  /* before any of the window's icons is looked up; again if the window moves to another scale */
  bp_icon_pin_for_widget (GTK_WIDGET (self));
  g_signal_connect (self, "notify::scale-factor", G_CALLBACK (scale_factor_cb), NULL);
  self->settings = g_settings_new ("org.backproplab.Lab");

  gtk_window_set_default_size (GTK_WINDOW (self), g_settings_get_int (self->settings, "window-width"),
                               g_settings_get_int (self->settings, "window-height"));
  if (g_settings_get_boolean (self->settings, "window-maximized"))
    gtk_window_maximize (GTK_WINDOW (self));

  g_autofree char *last = g_settings_get_string (self->settings, "last-place");
  for (guint i = 0; i < G_N_ELEMENTS (places); i++) {
    GtkWidget *page = g_object_new (places[i].get_type (), NULL);
    gtk_stack_add_titled (self->stack, page, places[i].name, _(places[i].title));
    gtk_list_box_append (self->places_list, place_row (&places[i]));
  }
  /* the lesson in progress as a panel beside Build and Train */
  GtkWidget *panel = bp_lessons_page_get_panel (BP_LESSONS_PAGE (bp_window_get_page (self,
                                                                                   "lessons")));
  gtk_box_append (GTK_BOX (self->main_box), panel);
  if (!bp_window_set_place (self, last))
    bp_window_set_place (self, places[0].name);
  place_changed_cb (self);
  adw_leaflet_set_visible_child (self->leaflet, self->content);
}

BpWindow *
bp_window_new (GtkApplication *application)
{
  return g_object_new (BP_TYPE_WINDOW, "application", application, NULL);
}

gboolean
bp_window_set_place (BpWindow *self, const char *name)
{
  g_return_val_if_fail (BP_IS_WINDOW (self), FALSE);
  if (!find_place (name))
    return FALSE;
  gtk_stack_set_visible_child_name (self->stack, name);
  return TRUE;
}

const char *
bp_window_get_place (BpWindow *self)
{
  g_return_val_if_fail (BP_IS_WINDOW (self), NULL);
  return gtk_stack_get_visible_child_name (self->stack);
}

GtkWidget *
bp_window_get_page (BpWindow *self, const char *name)
{
  g_return_val_if_fail (BP_IS_WINDOW (self), NULL);
  return gtk_stack_get_child_by_name (self->stack, name);
}

void
bp_window_add_toast (BpWindow *self, AdwToast *toast)
{
  g_return_if_fail (BP_IS_WINDOW (self));
  adw_toast_overlay_add_toast (self->toast_overlay, toast);
}
