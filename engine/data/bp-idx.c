/* data/bp-idx.c: placeholder until implemented. */
#include "bp-tensor.h"
