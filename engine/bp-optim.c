/* bp-optim.c: placeholder until implemented. */
#include "bp-tensor.h"
