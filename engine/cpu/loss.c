/* cpu/loss.c: CPU kernels of the loss family (placeholder until implemented). */
#include "cpu-kernels.h"

const BpLossKernels bp_cpu_loss_kernels = {0};
