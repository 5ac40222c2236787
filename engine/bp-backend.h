/* bp-backend.h: the table of function pointers every compute backend (CPU, CUDA) fills in. */
#pragma once

#include "bp-tensor.h"

/* Kernel tables of the op families: each is declared in its family's header
 * (bp-ops-eltwise.h, bp-ops-conv.h, bp-ops-norm.h, bp-ops-loss.h, bp-optim.h). */
typedef struct BpEltwiseKernels BpEltwiseKernels;
typedef struct BpConvKernels BpConvKernels;
typedef struct BpNormKernels BpNormKernels;
typedef struct BpLossKernels BpLossKernels;
typedef struct BpOptimKernels BpOptimKernels;
typedef struct BpRnnKernels BpRnnKernels;   /* bp-ops-rnn.h */
typedef struct BpAttnKernels BpAttnKernels; /* bp-ops-attn.h */

typedef struct BpBackend {
  const char *name;
  BpDevice device;

  /* memory: sizes in bytes; alloc returns NULL (with the error set) when out of memory */
  void *(*alloc) (size_t bytes);
  void (*free) (void *ptr, size_t bytes);
  BpStatus (*upload) (void *dst, const void *host_src, size_t bytes);
  BpStatus (*download) (void *host_dst, const void *src, size_t bytes);
  BpStatus (*copy) (void *dst, const void *src, size_t bytes);
  void (*fill) (float *dst, float value, int64_t n);
  /* y += a * x */
  void (*axpy) (int64_t n, float a, const float *x, float *y);
  /* Row-major C (m,n) = alpha * op(A) (m,k) * op(B) (k,n) + beta * C. */
  void (*gemm) (bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                int64_t ldc);
  /* Waits for queued work (no-op on the CPU). */
  BpStatus (*synchronize) (void);

  const BpEltwiseKernels *eltwise;
  const BpConvKernels *conv;
  const BpNormKernels *norm;
  const BpLossKernels *loss;
  const BpOptimKernels *optim;
  const BpRnnKernels *rnn;   /* NULL where the backend has none yet */
  const BpAttnKernels *attn; /* NULL where the backend has none yet */
} BpBackend;

/* The backend for a device, or NULL when it is not compiled in or not usable. */
const BpBackend *bp_backend (BpDevice device);
/* Registered by the CUDA backend at start-up when a device is usable. */
void bp_backend_register (const BpBackend *backend);
const char *bp_device_name (BpDevice device);

/* Thread count for CPU kernels (OpenMP and OpenBLAS). 0 = all cores. */
void bp_set_num_threads (int n);
int bp_get_num_threads (void);

extern const BpBackend bp_cpu_backend;
