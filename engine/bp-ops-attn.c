/* bp-ops-attn.c: placeholder until implemented. */
#include "bp-tensor.h"
