/* bp-preferences-window.c: BpPreferencesWindow binds its combo rows to the string keys of the
 * settings (choice index <-> key value). */
#include "config.h"

#include "bp-preferences-window.h"

struct _BpPreferencesWindow {
  AdwPreferencesWindow parent_instance;
  AdwComboRow *theme_row, *language_row, *device_row;
  GSettings *settings;
};

G_DEFINE_FINAL_TYPE (BpPreferencesWindow, bp_preferences_window, ADW_TYPE_PREFERENCES_WINDOW)

/* The key values in the order of each row's items (NULL-terminated). */
static const char *const theme_values[] = {"system", "light", "dark", NULL};
static const char *const language_values[] = {"system", "en", "zh_TW", NULL};
static const char *const device_values[] = {"auto", "cpu", "cuda", NULL};

static gboolean
get_mapping (GValue *value, GVariant *variant, gpointer data)
{
  const char *const *values = data;
  const char *s = g_variant_get_string (variant, NULL);
  for (guint i = 0; values[i]; i++)
    if (g_str_equal (values[i], s)) {
      g_value_set_uint (value, i);
      return TRUE;
    }
  g_value_set_uint (value, 0);
  return TRUE;
}

static GVariant *
set_mapping (const GValue *value, const GVariantType *type, gpointer data)
{
  const char *const *values = data;
  guint i = g_value_get_uint (value);
  if (i >= g_strv_length ((char **) values))
    return NULL;
  return g_variant_new_string (values[i]);
}

static void
bind_row (BpPreferencesWindow *self, AdwComboRow *row, const char *key, const char *const *values)
{
  g_settings_bind_with_mapping (self->settings, key, row, "selected", G_SETTINGS_BIND_DEFAULT,
                                get_mapping, set_mapping, (gpointer) values, NULL);
}

static void
bp_preferences_window_dispose (GObject *object)
{
  BpPreferencesWindow *self = BP_PREFERENCES_WINDOW (object);
  gtk_widget_dispose_template (GTK_WIDGET (self), BP_TYPE_PREFERENCES_WINDOW);
  g_clear_object (&self->settings);
  G_OBJECT_CLASS (bp_preferences_window_parent_class)->dispose (object);
}

static void
bp_preferences_window_class_init (BpPreferencesWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->dispose = bp_preferences_window_dispose;
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/backproplab/Lab/ui/bp-preferences-window.ui");
  gtk_widget_class_bind_template_child (widget_class, BpPreferencesWindow, theme_row);
  gtk_widget_class_bind_template_child (widget_class, BpPreferencesWindow, language_row);
  gtk_widget_class_bind_template_child (widget_class, BpPreferencesWindow, device_row);
}

static void
bp_preferences_window_init (BpPreferencesWindow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
}

GtkWidget *
bp_preferences_window_new (GSettings *settings)
{
  g_return_val_if_fail (G_IS_SETTINGS (settings), NULL);
  BpPreferencesWindow *self = g_object_new (BP_TYPE_PREFERENCES_WINDOW, NULL);
  self->settings = g_object_ref (settings);
  bind_row (self, self->theme_row, "theme", theme_values);
  bind_row (self, self->language_row, "language", language_values);
  bind_row (self, self->device_row, "device", device_values);
  return GTK_WIDGET (self);
}
