/* cpu/conv.c: CPU kernels of the conv family (placeholder until implemented). */
#include "cpu-kernels.h"

const BpConvKernels bp_cpu_conv_kernels = {0};
