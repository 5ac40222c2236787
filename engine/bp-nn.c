/* bp-nn.c: placeholder until implemented. */
#include "bp-tensor.h"
