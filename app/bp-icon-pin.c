/* bp-icon-pin.c: holds a reference to each icon the lab shows, under the keys GtkImage and
 * GtkButton look them up with, so that GTK 4.8's icon loader threads never drop the last one.
 *
 * The race it guards against (GTK 4.8 gtkicontheme.c): a widget's lookup with
 * GTK_ICON_LOOKUP_PRELOAD starts a thread that loads the icon's texture and holds the icon.
 * When the icon has meanwhile left the theme's LRU and its widget has let go (windows
 * and pages come and go), that thread drops the last reference; while its finalizer waits for
 * the cache lock, the main thread can find the dying icon in the cache and g_object_ref it:
 * "g_object_ref: assertion '!object_already_finalized' failed", then a NULL dereference. An
 * icon held here is never finalized on a loader thread, and once its texture is loaded no
 * thread is started for it at all.
 *
 * The pins live on the display's GtkIconTheme, one set per scale and text direction, and are
 * taken again when the theme changes (a change empties GTK's cache). */
#include "config.h"

#include "bp-icon-pin.h"

typedef struct {
  const char *name;
  int size;
} BpIconUse;

/* The lab's own icons and the ones GTK and libadwaita show in its window (spin buttons, drop
 * downs, search entries, window controls, status pages), as found by tracing
 * gtk_icon_theme_lookup_icon through the GUI tests. An icon added to the window belongs here
 * too (at the size it is shown). */
static const BpIconUse icon_uses[] = {
  {"accessories-dictionary-symbolic", 16},
  {"content-loading-symbolic", 16},
  {"dialog-error-symbolic", 16},
  {"dialog-warning-symbolic", 16},
  {"dialog-warning-symbolic", 128},
  {"document-save-symbolic", 16},
  {"edit-clear-symbolic", 16},
  {"edit-delete-symbolic", 16},
  {"edit-find-symbolic", 16},
  {"edit-find-symbolic", 72},
  {"edit-find-symbolic", 128},
  {"edit-redo-symbolic", 16},
  {"edit-undo-symbolic", 16},
  {"emblem-ok-symbolic", 16},
  {"go-next-symbolic", 16},
  {"go-previous-symbolic", 16},
  {"insert-link-symbolic", 16},
  {"list-add-symbolic", 16},
  {"list-remove-symbolic", 16},
  {"media-playback-start-symbolic", 16},
  {"network-workgroup-symbolic", 16},
  {"object-select-symbolic", 16},
  {"open-menu-symbolic", 16},
  {"pan-down-symbolic", 16},
  {"preferences-system-symbolic", 16},
  {"system-search-symbolic", 16},
  {"value-decrease-symbolic", 16},
  {"value-increase-symbolic", 16},
  {"view-list-symbolic", 16},
  {"window-close-symbolic", 16},
  {"window-maximize-symbolic", 16},
  {"window-minimize-symbolic", 16},
  {"window-restore-symbolic", 16},
  {"zoom-fit-best-symbolic", 16},
  {"zoom-in-symbolic", 16},
  {"zoom-original-symbolic", 16},
  {"zoom-out-symbolic", 16},
};

/* What GtkIconHelper passes: the plain lookup at snapshot time and the preloading one at
 * measure time (the flags are part of the cache key). */
static const GtkIconLookupFlags pin_flags[] = {0, GTK_ICON_LOOKUP_PRELOAD};

#define PINS_KEY "bp-icon-pins"

/* One held set: the icons of icon_uses for one scale and direction. */
static GPtrArray *
pin_set (GtkIconTheme *theme, int scale, GtkTextDirection dir)
{
  GPtrArray *held = g_ptr_array_new_with_free_func (g_object_unref);
  for (guint i = 0; i < G_N_ELEMENTS (icon_uses); i++) {
    g_autoptr (GIcon) icon = g_themed_icon_new (icon_uses[i].name);
    for (guint f = 0; f < G_N_ELEMENTS (pin_flags); f++) {
      GtkIconPaintable *paintable = gtk_icon_theme_lookup_by_gicon (theme, icon,
                                                                    icon_uses[i].size, scale,
                                                                    dir, pin_flags[f]);
      if (paintable)
        g_ptr_array_add (held, paintable);
    }
  }
  return held;
}

/* A set's key in the table of sets: its scale and direction in one int (GTK has three
 * directions). */
#define SET_KEY(scale, dir) GINT_TO_POINTER ((scale) * 4 + (int) (dir))

/* The theme changed: GTK dropped its cache, so the held icons are no longer the ones a lookup
 * finds. Take each set again. */
static void
theme_changed_cb (GtkIconTheme *theme, GHashTable *sets)
{
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, sets);
  while (g_hash_table_iter_next (&it, &key, NULL)) {
    int k = GPOINTER_TO_INT (key);
    g_hash_table_iter_replace (&it, pin_set (theme, k / 4, (GtkTextDirection) (k % 4)));
  }
}

/* Pins the lab's icons for the widget's display, scale and direction (once per combination). */
void
bp_icon_pin_for_widget (GtkWidget *widget)
{
  g_return_if_fail (GTK_IS_WIDGET (widget));
  GtkIconTheme *theme = gtk_icon_theme_get_for_display (gtk_widget_get_display (widget));
  GHashTable *sets = g_object_get_data (G_OBJECT (theme), PINS_KEY);
  if (!sets) {
    sets = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) g_ptr_array_unref);
    g_object_set_data_full (G_OBJECT (theme), PINS_KEY, sets,
                            (GDestroyNotify) g_hash_table_unref);
    g_signal_connect (theme, "changed", G_CALLBACK (theme_changed_cb), sets);
  }
  int scale = gtk_widget_get_scale_factor (widget);
  GtkTextDirection dir = gtk_widget_get_direction (widget);
  if (!g_hash_table_contains (sets, SET_KEY (scale, dir)))
    g_hash_table_insert (sets, SET_KEY (scale, dir), pin_set (theme, scale, dir));
}
