/* bp-icon-pin.h: holds the lab's icons in GTK's icon cache (a guard against a GTK 4.8 race). */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

void bp_icon_pin_for_widget (GtkWidget *widget);

G_END_DECLS
