/* bp-ops-rnn.c: placeholder until implemented. */
#include "bp-tensor.h"
