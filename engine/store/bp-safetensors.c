/* store/bp-safetensors.c: placeholder until implemented. */
#include "bp-tensor.h"
