/* store/bp-store.c: placeholder until implemented. */
#include "bp-tensor.h"
