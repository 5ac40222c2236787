/* bp-device-step.c: the per-thread watch of bp-device-step.h. */
#include "bp-device-step.h"

#include <stdio.h>

static _Thread_local bool watching;
static _Thread_local char first[200];

void
bp_device_step_begin (void)
{
  watching = true;
  first[0] = '\0';
}

const char *
bp_device_step_end (void)
{
  watching = false;
  return first[0] ? first : NULL;
}

void
bp_device_step_note (const char *what)
{
  if (watching && !first[0])
    snprintf (first, sizeof first, "%s", what);
}
