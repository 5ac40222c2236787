/* bp-ops-norm.c: placeholder until implemented. */
#include "bp-tensor.h"
