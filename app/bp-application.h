/* bp-application.h: the lab's AdwApplication (org.backproplab.Lab): app actions and settings. */
#pragma once

#include <adwaita.h>

G_BEGIN_DECLS

#define BP_TYPE_APPLICATION (bp_application_get_type ())
G_DECLARE_FINAL_TYPE (BpApplication, bp_application, BP, APPLICATION, AdwApplication)

BpApplication *bp_application_new (void);
GSettings *bp_application_get_settings (BpApplication *self);

G_END_DECLS
