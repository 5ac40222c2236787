/* cuda-prefetch.c: batches copied to the GPU on a second stream while the backend's stream
 * computes.
 *
 * Two slots, each a pinned host buffer and a device buffer. The host writes a batch into a slot
 * (bp_cuda_prefetch_slot waits until that slot's previous copy has left it), send queues the
 * host-to-device copy on the copy stream, after the backend's stream has finished reading the
 * slot's device buffer (event `consumed`), and marks its arrival (event `arrived`); take makes
 * the backend's stream wait for the arrival and copies the batch from the slot's device buffer
 * into the step's own tensors (device to device, microseconds), then marks the slot consumed.
 * So while step k runs, the batch of step k + 1 is gathered on the host and crosses the bus.
 * The slots' memory is the prefetcher's own (cudaHostAlloc, cudaMalloc), not the caching
 * allocator's: the allocator's blocks may only be used on the backend's stream. */
#include "cuda-internal.h"

#include <stdlib.h>

struct BpCudaPrefetch {
  size_t bytes;
  void *host[2];
  void *dev[2];
  cudaStream_t copy;
  cudaEvent_t arrived[2], consumed[2];
  bool sent[2];
  int fill, take;
};

void
bp_cuda_prefetch_free (BpCudaPrefetch *p)
{
  if (!p)
    return;
  bp_cuda_enter ();
  if (p->copy)
    cudaStreamSynchronize (p->copy);
  if (bp_cuda_ctx.stream)
    cudaStreamSynchronize (bp_cuda_ctx.stream);
  for (int s = 0; s < 2; s++) {
    if (p->host[s])
      cudaFreeHost (p->host[s]);
    if (p->dev[s])
      cudaFree (p->dev[s]);
    if (p->arrived[s])
      cudaEventDestroy (p->arrived[s]);
    if (p->consumed[s])
      cudaEventDestroy (p->consumed[s]);
  }
  if (p->copy)
    cudaStreamDestroy (p->copy);
  cudaGetLastError ();
  free (p);
}

BpCudaPrefetch *
bp_cuda_prefetch_new (size_t bytes)
{
  if (!bp_cuda_begin ())
    return NULL;
  BpCudaPrefetch *p = calloc (1, sizeof *p);
  if (!p) {
    bp_set_error (BP_ERR_NOMEM, "out of host memory for the batch prefetcher");
    return NULL;
  }
  p->bytes = bytes ? bytes : 1;
  BpStatus s = BP_CUDA_TRY (cudaStreamCreateWithFlags (&p->copy, cudaStreamNonBlocking));
  for (int k = 0; k < 2 && s == BP_OK; k++) {
    s = BP_CUDA_TRY (cudaHostAlloc (&p->host[k], p->bytes, cudaHostAllocDefault));
    if (s == BP_OK)
      s = BP_CUDA_TRY (cudaMalloc (&p->dev[k], p->bytes));
    if (s == BP_OK)
      s = BP_CUDA_TRY (cudaEventCreateWithFlags (&p->arrived[k], cudaEventDisableTiming));
    if (s == BP_OK)
      s = BP_CUDA_TRY (cudaEventCreateWithFlags (&p->consumed[k], cudaEventDisableTiming));
  }
  if (s != BP_OK) {
    bp_cuda_prefetch_free (p);
    return NULL;
  }
  return p;
}

void *
bp_cuda_prefetch_slot (BpCudaPrefetch *p)
{
  int k = p->fill;
  /* the slot's last copy must have left its host buffer */
  if (p->sent[k] && BP_CUDA_TRY (cudaEventSynchronize (p->arrived[k])) != BP_OK)
    return NULL;
  return p->host[k];
}

BpStatus
bp_cuda_prefetch_send (BpCudaPrefetch *p, size_t bytes)
{
  if (bytes > p->bytes) {
    bp_set_error (BP_ERR_INVALID, "prefetch: a batch of %zu bytes in slots of %zu", bytes,
                  p->bytes);
    return BP_ERR_INVALID;
  }
  if (!bp_cuda_begin ())
    return bp_last_status ();
  int k = p->fill;
  /* a never-recorded event is complete, so the first send of a slot does not wait */
  BP_CUDA_CHECK (cudaStreamWaitEvent (p->copy, p->consumed[k], 0));
  BP_CUDA_CHECK (cudaMemcpyAsync (p->dev[k], p->host[k], bytes, cudaMemcpyHostToDevice, p->copy));
  BP_CUDA_CHECK (cudaEventRecord (p->arrived[k], p->copy));
  p->sent[k] = true;
  p->fill = 1 - k;
  return BP_OK;
}

BpStatus
bp_cuda_prefetch_take (BpCudaPrefetch *p, void *dst_a, size_t bytes_a, void *dst_b,
                       size_t bytes_b)
{
  if (bytes_a + bytes_b > p->bytes) {
    bp_set_error (BP_ERR_INVALID, "prefetch: %zu bytes taken from slots of %zu",
                  bytes_a + bytes_b, p->bytes);
    return BP_ERR_INVALID;
  }
  if (!bp_cuda_begin ())
    return bp_last_status ();
  int k = p->take;
  cudaStream_t st = bp_cuda_ctx.stream;
  BP_CUDA_CHECK (cudaStreamWaitEvent (st, p->arrived[k], 0));
  if (bytes_a)
    BP_CUDA_CHECK (cudaMemcpyAsync (dst_a, p->dev[k], bytes_a, cudaMemcpyDeviceToDevice, st));
  if (bytes_b)
    BP_CUDA_CHECK (cudaMemcpyAsync (dst_b, (char *) p->dev[k] + bytes_a, bytes_b,
                                    cudaMemcpyDeviceToDevice, st));
  BP_CUDA_CHECK (cudaEventRecord (p->consumed[k], st));
  p->take = 1 - k;
  return BP_OK;
}

void
bp_cuda_prefetch_discard (BpCudaPrefetch *p)
{
  if (p)
    p->take = p->fill;
}
