/* bp-ops-eltwise.c: placeholder until implemented. */
#include "bp-tensor.h"
