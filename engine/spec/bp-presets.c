/* spec/bp-presets.c: placeholder until implemented. */
#include "bp-tensor.h"
