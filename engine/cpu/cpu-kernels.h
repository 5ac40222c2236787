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
/* The conv, rnn and attention tables with their products in bfloat16 (BpBackend's conv_bf16,
 * rnn_bf16, attn_bf16). */
extern const BpConvKernels bp_cpu_conv_bf16_kernels;
extern const BpRnnKernels bp_cpu_rnn_bf16_kernels;
extern const BpAttnKernels bp_cpu_attn_bf16_kernels;

void bp_cpu_gemm (bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                  const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                  int64_t ldc);
/* The same product with both operands rounded to bfloat16 (copies), float32 accumulation. */
void bp_cpu_gemm_bf16 (bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                       const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                       float *c, int64_t ldc);

/* The GEMM a kernel runs its products with: bp_cpu_gemm or bp_cpu_gemm_bf16. */
typedef void (*BpCpuGemm) (bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                           float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                           float beta, float *c, int64_t ldc);
