/* bp-backend.c: the registry that maps a device to its backend table, the CPU thread count
 * and bfloat16 rounding. */
#include "bp-backend.h"

#include <omp.h>

static const BpBackend *backends[BP_DEVICE_COUNT];

const BpBackend *
bp_backend (BpDevice device)
{
  if (device == BP_DEVICE_CPU)
    return &bp_cpu_backend;
  if (device < 0 || device >= BP_DEVICE_COUNT)
    return NULL;
  return backends[device];
}

void
bp_backend_register (const BpBackend *backend)
{
  backends[backend->device] = backend;
}

void
bp_bf16_round_n (float *dst, const float *src, int64_t n)
{
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++)
    dst[i] = bp_bf16_round (src[i]);
}

const char *
bp_device_name (BpDevice device)
{
  switch (device) {
  case BP_DEVICE_CPU: return "cpu";
  case BP_DEVICE_CUDA: return "cuda";
  default: return "unknown";
  }
}

extern void openblas_set_num_threads (int n);

static int num_threads;

void
bp_set_num_threads (int n)
{
  if (n <= 0)
    n = omp_get_num_procs ();
  num_threads = n;
  omp_set_num_threads (n);
  openblas_set_num_threads (n);
}

int
bp_get_num_threads (void)
{
  return num_threads > 0 ? num_threads : omp_get_max_threads ();
}
