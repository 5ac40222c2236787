/* cpu/norm.c: CPU kernels of the norm family (placeholder until implemented). */
#include "cpu-kernels.h"

const BpNormKernels bp_cpu_norm_kernels = {0};
