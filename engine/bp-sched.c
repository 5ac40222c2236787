/* bp-sched.c: placeholder until implemented. */
#include "bp-tensor.h"
