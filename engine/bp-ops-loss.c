/* bp-ops-loss.c: placeholder until implemented. */
#include "bp-tensor.h"
