/* data/bp-loader.c: placeholder until implemented. */
#include "bp-tensor.h"
