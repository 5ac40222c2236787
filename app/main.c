/* main.c: backprop-lab, the lab window's entry point. */
#include "config.h"

#include "bp-application.h"
#include "bp-lab.h"

int
main (int argc, char **argv)
{
  bp_lab_init ();
  g_autoptr (BpApplication) app = bp_application_new ();
  return g_application_run (G_APPLICATION (app), argc, argv);
}
