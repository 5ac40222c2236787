/* bp-ops-conv.c: placeholder until implemented. */
#include "bp-tensor.h"
