/* cuda-info.c: prints the CUDA device listing (`backprop devices`); built with or without CUDA. */
#include "bp-cuda.h"

#include <stdio.h>

#define GIB (1024.0 * 1024.0 * 1024.0)

static void
version3 (char *buf, size_t len, long v, long unit)
{
  snprintf (buf, len, "%ld.%ld.%ld", v / unit, v % unit / 100, v % 100);
}

void
bp_cuda_info_print (const BpCudaInfo *info, void (*print) (const char *line, void *user),
                    void *user)
{
  char line[640];
  if (!info->compiled) {
    print (info->why, user);
    return;
  }
  char cudnn[32], cudnn_built[32], cublas[32];
  long cu_unit = info->cudnn_version >= 10000 ? 10000 : 1000;
  version3 (cudnn, sizeof cudnn, (long) info->cudnn_version, cu_unit);
  version3 (cudnn_built, sizeof cudnn_built, (long) info->cudnn_compiled, 10000);
  version3 (cublas, sizeof cublas, info->cublas_version, 10000);
  if (info->driver_version)
    snprintf (line, sizeof line, "CUDA driver %d.%d, runtime %d.%d, cuBLAS %s, cuDNN %s (built with %s)",
              info->driver_version / 1000, info->driver_version % 1000 / 10,
              info->runtime_version / 1000, info->runtime_version % 1000 / 10, cublas, cudnn,
              cudnn_built);
  else
    snprintf (line, sizeof line, "CUDA driver none, runtime %d.%d, cuBLAS %s, cuDNN %s (built with %s)",
              info->runtime_version / 1000, info->runtime_version % 1000 / 10, cublas, cudnn,
              cudnn_built);
  print (line, user);
  for (int i = 0; i < info->n_devices; i++) {
    const BpCudaDeviceInfo *d = &info->devices[i];
    char tail[300] = "";
    if (!d->usable)
      snprintf (tail, sizeof tail, "  (not usable: %s)", d->why);
    if (d->name[0])
      snprintf (line, sizeof line, "cuda:%d  %s  compute %d.%d, %d SMs, %.1f GiB, %.1f GiB free%s",
                d->index, d->name, d->cc_major, d->cc_minor, d->multiprocessors,
                d->total_bytes / GIB, d->free_bytes / GIB, tail);
    else
      snprintf (line, sizeof line, "cuda:%d%s", d->index, tail);
    print (line, user);
  }
  if (info->note[0]) {
    snprintf (line, sizeof line, "note: %s", info->note);
    print (line, user);
  }
  if (info->why[0])
    print (info->why, user);
}
