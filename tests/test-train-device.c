/* test-train-device.c: placeholder until implemented. */
#include "bp-test.h"

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  return g_test_run ();
}
