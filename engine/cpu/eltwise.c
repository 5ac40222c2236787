/* cpu/eltwise.c: CPU kernels of the eltwise family (placeholder until implemented). */
#include "cpu-kernels.h"

const BpEltwiseKernels bp_cpu_eltwise_kernels = {0};
