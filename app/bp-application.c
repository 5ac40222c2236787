/* bp-application.c: BpApplication opens the window, installs app.preferences / app.about /
 * app.quit with their accelerators, shows Preferences and About, and follows the theme setting. */
#include "config.h"

#include "bp-application.h"

#include <glib/gi18n.h>

#include "bp-lab.h"
#include "bp-preferences-window.h"
#include "bp-window.h"

struct _BpApplication {
  AdwApplication parent_instance;
  GSettings *settings;
};

G_DEFINE_FINAL_TYPE (BpApplication, bp_application, ADW_TYPE_APPLICATION)

static void
apply_theme (BpApplication *self)
{
  g_autofree char *theme = g_settings_get_string (self->settings, "theme");
  AdwColorScheme scheme = g_str_equal (theme, "light")  ? ADW_COLOR_SCHEME_FORCE_LIGHT
                          : g_str_equal (theme, "dark") ? ADW_COLOR_SCHEME_FORCE_DARK
                                                        : ADW_COLOR_SCHEME_DEFAULT;
  adw_style_manager_set_color_scheme (adw_style_manager_get_default (), scheme);
}

static void
preferences_action (GSimpleAction *action, GVariant *param, gpointer data)
{
  BpApplication *self = data;
  GtkWidget *prefs = bp_preferences_window_new (self->settings);
  gtk_window_set_transient_for (GTK_WINDOW (prefs),
                                gtk_application_get_active_window (GTK_APPLICATION (self)));
  gtk_window_set_application (GTK_WINDOW (prefs), GTK_APPLICATION (self));
  gtk_window_present (GTK_WINDOW (prefs));
}

static void
about_action (GSimpleAction *action, GVariant *param, gpointer data)
{
  BpApplication *self = data;
  static const char *developers[] = {"The Backprop Lab developers", NULL};
  GtkWidget *about = g_object_new (ADW_TYPE_ABOUT_WINDOW,
                                   "transient-for",
                                   gtk_application_get_active_window (GTK_APPLICATION (self)),
                                   "application-name", _("Backprop Lab"),
                                   "application-icon", BP_APP_ID,
                                   "version", PACKAGE_VERSION,
                                   "developer-name", _("The Backprop Lab developers"),
                                   "developers", developers,
                                   "comments", _("Build, train, watch and compare neural networks"),
                                   "license-type", GTK_LICENSE_MIT_X11,
                                   /* TRANSLATORS: your names, one a line */
                                   "translator-credits", _("translator-credits"),
                                   NULL);
  gtk_window_set_application (GTK_WINDOW (about), GTK_APPLICATION (self));
  gtk_window_present (GTK_WINDOW (about));
}

static void
quit_action (GSimpleAction *action, GVariant *param, gpointer data)
{
  GApplication *app = data;
  /* close the windows first, so they save their state */
  GList *windows = gtk_application_get_windows (GTK_APPLICATION (app));
  while (windows) {
    GtkWindow *window = windows->data;
    windows = windows->next;
    gtk_window_close (window);
  }
  g_application_quit (app);
}

static const GActionEntry app_actions[] = {
  {"preferences", preferences_action},
  {"about", about_action},
  {"quit", quit_action},
};

static void
bp_application_startup (GApplication *app)
{
  BpApplication *self = BP_APPLICATION (app);
  G_APPLICATION_CLASS (bp_application_parent_class)->startup (app);
  g_action_map_add_action_entries (G_ACTION_MAP (app), app_actions, G_N_ELEMENTS (app_actions), app);
  gtk_application_set_accels_for_action (GTK_APPLICATION (app), "app.quit",
                                         (const char *[]) {"<Control>q", NULL});
  gtk_application_set_accels_for_action (GTK_APPLICATION (app), "app.preferences",
                                         (const char *[]) {"<Control>comma", NULL});
  self->settings = g_settings_new (BP_APP_ID);
  g_signal_connect_swapped (self->settings, "changed::theme", G_CALLBACK (apply_theme), self);
  apply_theme (self);
}

static void
bp_application_activate (GApplication *app)
{
  GtkWindow *window = gtk_application_get_active_window (GTK_APPLICATION (app));
  if (!window)
    window = GTK_WINDOW (bp_window_new (GTK_APPLICATION (app)));
  gtk_window_present (window);
}

static void
bp_application_dispose (GObject *object)
{
  BpApplication *self = BP_APPLICATION (object);
  g_clear_object (&self->settings);
  G_OBJECT_CLASS (bp_application_parent_class)->dispose (object);
}

static void
bp_application_class_init (BpApplicationClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GApplicationClass *app_class = G_APPLICATION_CLASS (klass);
  object_class->dispose = bp_application_dispose;
  app_class->startup = bp_application_startup;
  app_class->activate = bp_application_activate;
  bp_lab_register_resources ();
}

static void
bp_application_init (BpApplication *self)
{
}

BpApplication *
bp_application_new (void)
{
  return g_object_new (BP_TYPE_APPLICATION,
                       "application-id", BP_APP_ID,
                       "flags", G_APPLICATION_DEFAULT_FLAGS,
                       "resource-base-path", "/org/backproplab/Lab",
                       NULL);
}

GSettings *
bp_application_get_settings (BpApplication *self)
{
  g_return_val_if_fail (BP_IS_APPLICATION (self), NULL);
  return self->settings;
}
