/* train/bp-trainer.c: placeholder until implemented. */
#include "bp-tensor.h"
