/* cpu-kernels.h: the CPU backend's kernel tables, one per op family (engine/cpu/<family>.c). */
#pragma once

#include "../bp-backend.h"
#include "../bp-ops-eltwise.h"
#include "../bp-ops-conv.h"
#include "../bp-ops-norm.h"
#include "../bp-ops-loss.h"
#include "../bp-optim.h"
#include "../bp-ops-rnn.h"
#include "../bp-ops-attn.h"

extern const BpEltwiseKernels bp_cpu_eltwise_kernels;
extern const BpConvKernels bp_cpu_conv_kernels;
extern const BpNormKernels bp_cpu_norm_kernels;
extern const BpLossKernels bp_cpu_loss_kernels;
extern const BpOptimKernels bp_cpu_optim_kernels;

void bp_cpu_gemm (bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                  const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                  int64_t ldc);
