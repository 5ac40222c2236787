/* backprop.c: the `backprop` command (placeholder until implemented). */
#include <stdio.h>

int
main (int argc, char **argv)
{
  fprintf (stderr, "backprop: not built yet\n");
  return 1;
}
