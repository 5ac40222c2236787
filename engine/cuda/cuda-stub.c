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
