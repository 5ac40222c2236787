/* bp-lab.c: process set-up of backprop-lab: build-tree detection, language, gettext, resources. */
#include "config.h"

#include "bp-lab.h"

#include <gio/gio.h>
#include <gtk/gtk.h>
#include <glib/gi18n.h>
#include <locale.h>
#include <string.h>

#include "bp-lab-resources.h"

static char *localedir;

void
bp_lab_register_resources (void)
{
  static gsize once = 0;
  if (g_once_init_enter (&once)) {
    bp_lab_register_resource ();
    g_once_init_leave (&once, 1);
  }
}

/* Whether this executable lies inside the build tree (run without `meson install`). */
static gboolean
running_from_build_tree (void)
{
  g_autofree char *exe = g_file_read_link ("/proc/self/exe", NULL);
  if (!exe)
    return FALSE;
  g_autofree char *root = g_canonicalize_filename (BP_BUILD_ROOT, NULL);
  return g_str_has_prefix (exe, root) && exe[strlen (root)] == '/';
}

/* The "language" preference, when the schema can be found. */
static char *
language_preference (void)
{
  GSettingsSchemaSource *source = g_settings_schema_source_get_default ();
  g_autoptr (GSettingsSchema) schema =
    source ? g_settings_schema_source_lookup (source, BP_APP_ID, TRUE) : NULL;
  if (!schema)
    return NULL;
  g_autoptr (GSettings) settings = g_settings_new (BP_APP_ID);
  return g_settings_get_string (settings, "language");
}

void
bp_lab_init (void)
{
  static gboolean done;
  if (done)
    return;
  done = TRUE;

  gboolean uninstalled = running_from_build_tree ();
  if (uninstalled && !g_getenv ("GSETTINGS_SCHEMA_DIR"))
    g_setenv ("GSETTINGS_SCHEMA_DIR", BP_BUILD_SCHEMA_DIR, TRUE);

  /* an explicit language choice overrides the locale's (gettext reads LANGUAGE first) */
  g_autofree char *language = language_preference ();
  gboolean chosen = language && !g_str_equal (language, "system");
  if (chosen)
    g_setenv ("LANGUAGE", language, TRUE);
  const char *locale = setlocale (LC_ALL, "");
  const char *messages = setlocale (LC_MESSAGES, NULL);
  /* gettext ignores LANGUAGE in the C locale: use C.UTF-8 for messages then */
  if ((chosen || g_getenv ("LANGUAGE")) &&
      (!locale || g_strcmp0 (messages, "C") == 0 || g_strcmp0 (messages, "POSIX") == 0))
    setlocale (LC_MESSAGES, "C.UTF-8");
  gtk_disable_setlocale (); /* gtk_init would undo the above */

  const char *env = g_getenv ("BP_LOCALEDIR");
  if (env && *env)
    localedir = g_strdup (env);
  else
    localedir = g_strdup (uninstalled ? BP_BUILD_LOCALEDIR : BP_LOCALEDIR);
  bindtextdomain (GETTEXT_PACKAGE, localedir);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);

  bp_lab_register_resources ();
}

const char *
bp_lab_get_localedir (void)
{
  return localedir;
}
