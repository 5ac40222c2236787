/* cpu/optim.c: CPU kernels of the optim family (placeholder until implemented). */
#include "cpu-kernels.h"

const BpOptimKernels bp_cpu_optim_kernels = {0};
