/* data/bp-dataset.c: placeholder until implemented. */
#include "bp-tensor.h"
