/* bp-spec-export.c: placeholder until implemented. */
#include "bp-tensor.h"
