/* bp-cuda.h: the CUDA backend's public face: start-up, device listing, allocator statistics.
 * Plain C with no CUDA headers, so the CLI and the tests include it whether or not CUDA is
 * compiled in (without CUDA every function reports "built without CUDA"). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "../bp-tensor.h"

#define BP_CUDA_MAX_DEVICES 16

typedef struct {
  int index;
  char name[256];
  size_t total_bytes;
  size_t free_bytes;          /* 0 when the device could not be opened (see why) */
  int cc_major, cc_minor;     /* compute capability */
  int multiprocessors;
  bool usable;                /* this build has code for it and it opened */
  char why[256];              /* why it is not usable, "" when it is */
} BpCudaDeviceInfo;

typedef struct {
  bool compiled;              /* built with CUDA */
  int driver_version;         /* cudaDriverGetVersion: 13000 = CUDA 13.0; 0 = no driver */
  int runtime_version;        /* cudaRuntimeGetVersion of the linked runtime */
  size_t cudnn_version;       /* cudnnGetVersion at run time: 91400 = 9.14.0 */
  size_t cudnn_compiled;      /* CUDNN_VERSION of the headers this was built with */
  int cublas_version;         /* 130100 = 13.1.0 */
  int n_devices;
  BpCudaDeviceInfo devices[BP_CUDA_MAX_DEVICES];
  char why[256];              /* why no device can be used, "" when one can */
  char note[256];             /* a warning that does not stop use (e.g. cuDNN minor version) */
} BpCudaInfo;

/* Whether the CUDA backend is compiled in (the same as BP_HAVE_CUDA in config.h). */
bool bp_cuda_compiled (void);

/* Starts the backend on device $BP_CUDA_DEVICE (default 0): checks the driver, runtime and
 * cuDNN versions, creates the stream and the cuBLAS and cuDNN handles, runs a tiny kernel and
 * registers the table so bp_backend (BP_DEVICE_CUDA) returns it. Safe to call again: later
 * calls return the first result. On failure returns an error status, sets bp_set_error and
 * writes a one-line reason into why (when why is not NULL), e.g. "no CUDA device:
 * cudaGetDeviceCount: no CUDA-capable device is detected". A note (see bp_cuda_note) does not
 * make it fail. */
BpStatus bp_cuda_init (char *why, size_t len);
/* Whether bp_cuda_init succeeded. */
bool bp_cuda_available (void);
/* A warning from bp_cuda_init that did not stop it ("" when none). */
const char *bp_cuda_note (void);
/* Releases the cached memory, the handles and the stream; the backend is unregistered. For
 * leak checks at exit: tensors on the device must all be freed first. */
void bp_cuda_shutdown (void);

/* Fills info for `backprop devices`: versions, every device, or why none can be used.
 * Returns BP_OK when at least one device is usable. Does not need bp_cuda_init. */
BpStatus bp_cuda_query (BpCudaInfo *info);
/* Writes the listing as text lines (what `backprop devices` prints). */
void bp_cuda_info_print (const BpCudaInfo *info, void (*print) (const char *line, void *user),
                         void *user);

/* TF32 tensor cores for float32 GEMM and convolution: on by default, off with $BP_CUDA_TF32=0
 * or this call (about 1e-3 relative error when on, float32 accuracy when off). */
void bp_cuda_set_tf32 (bool on);
bool bp_cuda_get_tf32 (void);

/* GEMM with float32 storage and accumulation but inputs rounded to bfloat16 on the tensor
 * cores (cuBLAS's CUBLAS_COMPUTE_32F_FAST_16BF): about twice the TF32 speed, about 1e-2
 * relative error. Off by default; on with $BP_CUDA_BF16_GEMM=1 or this call. Convolutions are
 * not affected. */
void bp_cuda_set_bf16_gemm (bool on);
bool bp_cuda_get_bf16_gemm (void);

/* Batch norm in training through cuDNN (on by default; off with $BP_CUDA_CUDNN_BN=0 or this
 * call): off, the backend's own kernels run it, as they always do in eval mode. */
void bp_cuda_set_cudnn_batch_norm (bool on);
bool bp_cuda_get_cudnn_batch_norm (void);

typedef struct {
  size_t in_use_bytes;        /* handed out and not yet freed */
  size_t cached_bytes;        /* freed blocks kept for reuse */
  size_t peak_bytes;          /* largest in_use + cached seen */
  size_t n_device_mallocs;    /* cudaMalloc calls so far */
  size_t n_device_frees;      /* cudaFree calls so far */
  size_t n_cache_hits;        /* allocations served from the cache */
} BpCudaAllocStats;

void bp_cuda_alloc_stats (BpCudaAllocStats *stats);
/* Gives every cached block back to the driver (cudaFree). */
void bp_cuda_empty_cache (void);

/* ---- CUDA graphs (cuda-graph.c) ----
 * A training step recorded once and replayed with one launch: no per-kernel launch cost, no
 * allocation. Between bp_cuda_capture_begin and bp_cuda_capture_end the backend's work is
 * recorded, not run; the graph keeps the memory the step allocated (a private pool of the
 * caching allocator) until bp_cuda_graph_free. Replays use the captured addresses and
 * arguments, so the caller keeps the step's inputs and outputs in the same tensors (copying new
 * data into them before each launch) and keeps the shapes. Dropout masks are drawn afresh for
 * every replay, in the eager order (a replay equals an eager step from the same generator
 * state). */
typedef struct BpCudaGraph BpCudaGraph;

/* Starts recording the backend's stream. */
BpStatus bp_cuda_capture_begin (void);
/* Ends the recording: the graph, or NULL (error BP_ERR_UNSUPPORTED, "the step cannot be
 * captured as a CUDA graph: <why>") when the recorded work cannot be replayed: it read a value
 * back, copied from pageable host memory, drew random numbers other than dropout masks, or a
 * call failed. The recorded work has not run either way. */
BpCudaGraph *bp_cuda_capture_end (void);
/* Whether a capture is running (entries that cannot be captured refuse). */
bool bp_cuda_capturing (void);
/* During a capture: marks it as impossible, for the reason `why` (the first reason is kept);
 * nothing otherwise. */
void bp_cuda_capture_refuse (const char *why);
/* Queues one replay (the first runs the captured step itself). */
BpStatus bp_cuda_graph_launch (BpCudaGraph *g);
/* Waits for queued replays, then frees the graph and gives its memory back to the cache. */
void bp_cuda_graph_free (BpCudaGraph *g);
/* The dropout masks one replay draws, and the memory blocks the graph holds (for tests). */
int bp_cuda_graph_n_keys (const BpCudaGraph *g);
size_t bp_cuda_graph_n_blocks (const BpCudaGraph *g);

/* ---- batch prefetch (cuda-prefetch.c) ----
 * Two slots of `bytes`, each a pinned host buffer and a device buffer, and a second stream:
 * the host writes a batch into bp_cuda_prefetch_slot (which waits until the slot's previous
 * copy has left it), send queues its copy to the GPU on the second stream, and take makes the
 * backend's stream wait for it and copies it into the step's tensors (dst_a gets the first
 * bytes_a bytes, dst_b the next bytes_b; device to device). Slots are filled and taken in turn;
 * discard forgets a sent batch that will not be taken. */
typedef struct BpCudaPrefetch BpCudaPrefetch;
BpCudaPrefetch *bp_cuda_prefetch_new (size_t bytes);
void bp_cuda_prefetch_free (BpCudaPrefetch *p);
void *bp_cuda_prefetch_slot (BpCudaPrefetch *p);
BpStatus bp_cuda_prefetch_send (BpCudaPrefetch *p, size_t bytes);
BpStatus bp_cuda_prefetch_take (BpCudaPrefetch *p, void *dst_a, size_t bytes_a, void *dst_b,
                                size_t bytes_b);
void bp_cuda_prefetch_discard (BpCudaPrefetch *p);

/* ---- GEMM benchmark (cuda-bench.c) ----
 * `backprop bench --gemm N`: an N x N x N float32 product C = A B (random operands) through
 * the table's gemm and through a direct cublasSgemm (cublasGemmEx with
 * CUBLAS_COMPUTE_32F_FAST_16BF under bp_cuda_set_bf16_gemm) on the same handle, stream and math
 * mode (TF32 per bp_cuda_get_tf32), timed with CUDA events: after one untimed call of each,
 * `repeats` alternating timings of enough calls for about 50 ms each; the best of each in
 * TFLOP/s (2 N^3 per product). Needs bp_cuda_init; N from 1 to 32768. */
BpStatus bp_cuda_bench_gemm (int64_t n, int repeats, double *engine_tflops,
                             double *cublas_tflops);
