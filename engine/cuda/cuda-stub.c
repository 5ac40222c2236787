/* cuda-stub.c: the CUDA entry points of a build without CUDA: everything reports why. */
#include "bp-cuda.h"

#include <stdio.h>
#include <string.h>

#define WHY "CUDA is not compiled in: rebuild with meson -Dcuda=enabled where nvcc, cuBLAS " \
            "and cuDNN are installed"

bool
bp_cuda_compiled (void)
{
  return false;
}

BpStatus
bp_cuda_init (char *why, size_t len)
{
  bp_set_error (BP_ERR_UNSUPPORTED, "%s", WHY);
  if (why && len)
    snprintf (why, len, "%s", WHY);
  return BP_ERR_UNSUPPORTED;
}

bool
bp_cuda_available (void)
{
  return false;
}

const char *
bp_cuda_note (void)
{
  return "";
}

void
bp_cuda_shutdown (void)
{
}

BpStatus
bp_cuda_query (BpCudaInfo *info)
{
  memset (info, 0, sizeof *info);
  snprintf (info->why, sizeof info->why, "%s", WHY);
  return BP_ERR_UNSUPPORTED;
}

void
bp_cuda_set_tf32 (bool on)
{
}

bool
bp_cuda_get_tf32 (void)
{
  return false;
}

void
bp_cuda_set_bf16_gemm (bool on)
{
}

bool
bp_cuda_get_bf16_gemm (void)
{
  return false;
}

void
bp_cuda_set_cudnn_batch_norm (bool on)
{
}

bool
bp_cuda_get_cudnn_batch_norm (void)
{
  return false;
}

void
bp_cuda_alloc_stats (BpCudaAllocStats *stats)
{
  memset (stats, 0, sizeof *stats);
}

void
bp_cuda_empty_cache (void)
{
}

BpStatus
bp_cuda_capture_begin (void)
{
  bp_set_error (BP_ERR_UNSUPPORTED, "%s", WHY);
  return BP_ERR_UNSUPPORTED;
}

BpCudaGraph *
bp_cuda_capture_end (void)
{
  bp_set_error (BP_ERR_UNSUPPORTED, "%s", WHY);
  return NULL;
}

bool
bp_cuda_capturing (void)
{
  return false;
}

void
bp_cuda_capture_refuse (const char *why)
{
  (void) why;
}

BpStatus
bp_cuda_graph_launch (BpCudaGraph *g)
{
  (void) g;
  bp_set_error (BP_ERR_UNSUPPORTED, "%s", WHY);
  return BP_ERR_UNSUPPORTED;
}

void
bp_cuda_graph_free (BpCudaGraph *g)
{
  (void) g;
}

int
bp_cuda_graph_n_keys (const BpCudaGraph *g)
{
  (void) g;
  return 0;
}

size_t
bp_cuda_graph_n_blocks (const BpCudaGraph *g)
{
  (void) g;
  return 0;
}

BpCudaPrefetch *
bp_cuda_prefetch_new (size_t bytes)
{
  (void) bytes;
  bp_set_error (BP_ERR_UNSUPPORTED, "%s", WHY);
  return NULL;
}

void
bp_cuda_prefetch_free (BpCudaPrefetch *p)
{
  (void) p;
}

void *
bp_cuda_prefetch_slot (BpCudaPrefetch *p)
{
  (void) p;
  return NULL;
}

BpStatus
bp_cuda_prefetch_send (BpCudaPrefetch *p, size_t bytes)
{
  (void) p;
  (void) bytes;
  bp_set_error (BP_ERR_UNSUPPORTED, "%s", WHY);
  return BP_ERR_UNSUPPORTED;
}

BpStatus
bp_cuda_prefetch_take (BpCudaPrefetch *p, void *dst_a, size_t bytes_a, void *dst_b,
                       size_t bytes_b)
{
  (void) p;
  (void) dst_a;
  (void) bytes_a;
  (void) dst_b;
  (void) bytes_b;
  bp_set_error (BP_ERR_UNSUPPORTED, "%s", WHY);
  return BP_ERR_UNSUPPORTED;
}

void
bp_cuda_prefetch_discard (BpCudaPrefetch *p)
{
  (void) p;
}

BpStatus
bp_cuda_bench_gemm (int64_t n, int repeats, double *engine_tflops, double *cublas_tflops)
{
  (void) n;
  (void) repeats;
  *engine_tflops = *cublas_tflops = 0.0;
  bp_set_error (BP_ERR_UNSUPPORTED, "%s", WHY);
  return BP_ERR_UNSUPPORTED;
}
