/* cuda-graph.c: a training step recorded once as a CUDA graph and replayed.
 *
 * While bp_cuda_capture_begin ... bp_cuda_capture_end runs, the backend's stream is captured
 * (cudaStreamBeginCapture, thread-local mode): the table entries queue their work as usual, but
 * nothing runs; the work becomes a graph that bp_cuda_graph_launch replays with one call. A
 * replay uses the device addresses, kernel arguments and library calls of the capture, so:
 *
 * - the memory the step allocates comes from a private pool of the allocator (cuda-alloc.c),
 *   which the graph keeps until it is freed;
 * - cuBLAS gets a fixed workspace (cublasSetWorkspace) instead of its own allocations;
 * - dropout keys, drawn on the host by every eager step, are read by the captured kernels from
 *   a device array (bp_cuda_capture_key); before each replay the graph draws as many keys from
 *   bp_rng_u64 as the captured step drew, in the same order, so a replayed step uses the masks
 *   an eager step would have used;
 * - what a graph cannot contain (a host read-back, a copy from pageable host memory, a step
 *   that draws random numbers for anything but dropout masks) makes bp_cuda_capture_end fail
 *   with the reason, and the caller runs the step eagerly instead. The captured work never ran;
 * - other threads using the backend (a second window's training) wait at their next entry
 *   until the capture ends (bp_cuda_gate): the work any thread queues on the capturing stream
 *   would be recorded into the graph, and the blocks it allocates would join the graph's pool. */
#include "cuda-internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Dropout masks a captured step may draw. */
#define MAX_KEYS 256
/* cuBLAS's workspace: NVIDIA recommends 32 MiB on Hopper (4 MiB before). */
#define CUBLAS_WORKSPACE_BYTES ((size_t) 32 << 20)

struct BpCudaGraph {
  cudaGraphExec_t exec;
  BpCudaPool *pool;
  uint64_t *keys_dev;       /* MAX_KEYS keys in device memory, read by the replayed kernels */
  uint64_t keys[MAX_KEYS];  /* their values for the next replay */
  int n_keys;
  uint64_t rng_begin;       /* the generator's state when the capture began */
  int64_t launches;
};

static struct {
  BpCudaGraph *g;           /* the graph being captured, NULL otherwise */
  char refused[256];        /* why it cannot be, "" while it can */
} cap;

static void *cublas_workspace;

/* The capture gate: closed by the capturing thread from the start of a capture to its end. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_opened = PTHREAD_COND_INITIALIZER;
static atomic_bool gate_closed;
static pthread_t gate_owner;

void
bp_cuda_gate (void)
{
  if (!atomic_load_explicit (&gate_closed, memory_order_acquire))
    return;
  pthread_mutex_lock (&gate_lock);
  while (atomic_load_explicit (&gate_closed, memory_order_relaxed) &&
         !pthread_equal (gate_owner, pthread_self ()))
    pthread_cond_wait (&gate_opened, &gate_lock);
  pthread_mutex_unlock (&gate_lock);
}

/* Closes the gate for this thread, after another thread's capture has ended; false when this
 * thread has closed it already (a capture inside its own capture). */
static bool
gate_close (void)
{
  pthread_mutex_lock (&gate_lock);
  if (atomic_load_explicit (&gate_closed, memory_order_relaxed) &&
      pthread_equal (gate_owner, pthread_self ())) {
    pthread_mutex_unlock (&gate_lock);
    return false;
  }
  while (atomic_load_explicit (&gate_closed, memory_order_relaxed))
    pthread_cond_wait (&gate_opened, &gate_lock);
  gate_owner = pthread_self ();
  atomic_store_explicit (&gate_closed, true, memory_order_release);
  pthread_mutex_unlock (&gate_lock);
  return true;
}

static void
gate_open (void)
{
  pthread_mutex_lock (&gate_lock);
  atomic_store_explicit (&gate_closed, false, memory_order_release);
  pthread_cond_broadcast (&gate_opened);
  pthread_mutex_unlock (&gate_lock);
}

bool
bp_cuda_capturing (void)
{
  return cap.g != NULL;
}

void
bp_cuda_capture_refuse (const char *why)
{
  if (cap.g && !cap.refused[0])
    snprintf (cap.refused, sizeof cap.refused, "%s", why);
}

bool
bp_cuda_refuse_read_back (const char *what)
{
  if (!cap.g)
    return false;
  char why[200];
  snprintf (why, sizeof why, "%s reads a value back from the GPU", what);
  bp_cuda_capture_refuse (why);
  return true;
}

const uint64_t *
bp_cuda_capture_key (uint64_t key)
{
  BpCudaGraph *g = cap.g;
  if (!g)
    return NULL;
  for (int k = 0; k < g->n_keys; k++)
    if (g->keys[k] == key)
      return g->keys_dev + k; /* the backward of a dropout reads its forward's key */
  if (g->n_keys == MAX_KEYS) {
    bp_cuda_capture_refuse ("the step draws more than 256 dropout masks");
    return g->keys_dev;
  }
  g->keys[g->n_keys] = key;
  return g->keys_dev + g->n_keys++;
}

/* cuBLAS allocates a workspace of its own unless it is given one; a graph must not. */
static BpStatus
setup_workspace (void)
{
  if (cublas_workspace)
    return BP_OK;
  BP_CUDA_CHECK (cudaMalloc (&cublas_workspace, CUBLAS_WORKSPACE_BYTES));
  BpStatus s = BP_CUBLAS_TRY (
    cublasSetWorkspace (bp_cuda_ctx.cublas, cublas_workspace, CUBLAS_WORKSPACE_BYTES));
  if (s != BP_OK) {
    cudaFree (cublas_workspace);
    cublas_workspace = NULL;
  }
  return s;
}

void
bp_cuda_graph_teardown (void)
{
  if (!cublas_workspace)
    return;
  if (bp_cuda_ctx.cublas)
    cublasSetWorkspace (bp_cuda_ctx.cublas, NULL, 0);
  cudaFree (cublas_workspace);
  cudaGetLastError ();
  cublas_workspace = NULL;
}

void
bp_cuda_graph_free (BpCudaGraph *g)
{
  if (!g)
    return;
  if (g->exec) {
    /* a replay may still be queued: let it finish before its memory is handed out again */
    cudaStreamSynchronize (bp_cuda_ctx.stream);
    cudaGraphExecDestroy (g->exec);
  }
  bp_cuda_pool_free (g->pool);
  bp_cuda_free (g->keys_dev, sizeof (uint64_t) * MAX_KEYS);
  cudaGetLastError ();
  free (g);
}

/* The capture's start, with the gate closed: the graph, its key array, its pool, then the
 * stream's capture. */
static BpStatus
start_capture (void)
{
  /* an earlier error must not be taken for the capture's: it stays kept for synchronize */
  BpStatus s = bp_cuda_take_deferred ();
  if (s != BP_OK) {
    bp_cuda_defer (s);
    return s;
  }
  s = setup_workspace ();
  if (s != BP_OK)
    return s;
  BpCudaGraph *g = calloc (1, sizeof *g);
  if (!g) {
    bp_set_error (BP_ERR_NOMEM, "out of host memory for a CUDA graph");
    return BP_ERR_NOMEM;
  }
  g->keys_dev = bp_cuda_alloc (sizeof (uint64_t) * MAX_KEYS); /* outside the pool */
  g->pool = g->keys_dev ? bp_cuda_pool_begin () : NULL;
  if (!g->pool) {
    bp_cuda_graph_free (g);
    return bp_last_status ();
  }
  s = BP_CUDA_TRY (cudaStreamBeginCapture (bp_cuda_ctx.stream, cudaStreamCaptureModeThreadLocal));
  if (s != BP_OK) {
    bp_cuda_pool_end ();
    bp_cuda_graph_free (g);
    return s;
  }
  g->rng_begin = bp_rng_state ();
  cap.g = g;
  cap.refused[0] = '\0';
  return BP_OK;
}

BpStatus
bp_cuda_capture_begin (void)
{
  if (!bp_cuda_begin ())
    return bp_last_status ();
  if (!gate_close ()) {
    bp_set_error (BP_ERR_INVALID, "a CUDA graph capture is already running");
    return BP_ERR_INVALID;
  }
  BpStatus s = start_capture ();
  if (s != BP_OK)
    gate_open ();
  return s;
}

/* Whether the random numbers drawn since the capture began are exactly the dropout keys it
 * registered, in order (then replays can draw them afresh the same way). */
static bool
keys_are_the_draws (const BpCudaGraph *g)
{
  uint64_t end = bp_rng_state ();
  bp_rng_set_state (g->rng_begin);
  bool same = true;
  for (int k = 0; k < g->n_keys && same; k++)
    same = bp_rng_u64 () == g->keys[k];
  same = same && bp_rng_state () == end;
  bp_rng_set_state (end);
  return same;
}

BpCudaGraph *
bp_cuda_capture_end (void)
{
  bp_cuda_gate (); /* another thread's capture is not this one's to end */
  BpCudaGraph *g = cap.g;
  if (!g) {
    bp_set_error (BP_ERR_INVALID, "no CUDA graph capture is running");
    return NULL;
  }
  cap.g = NULL;
  bp_cuda_pool_end ();
  cudaGraph_t graph = NULL;
  cudaError_t err = cudaStreamEndCapture (bp_cuda_ctx.stream, &graph);
  gate_open ();
  char why[600] = "";
  /* the first reason wins: a refusal names the entry, a deferred error the failed call */
  if (cap.refused[0])
    snprintf (why, sizeof why, "%s", cap.refused);
  else if (bp_cuda_take_deferred () != BP_OK)
    snprintf (why, sizeof why, "%s", bp_last_error ());
  else if (err != cudaSuccess)
    snprintf (why, sizeof why, "cudaStreamEndCapture: %s", cudaGetErrorString (err));
  else if (!keys_are_the_draws (g))
    snprintf (why, sizeof why, "the step draws random numbers that are not dropout masks");
  if (!why[0]) {
    err = cudaGraphInstantiate (&g->exec, graph, 0);
    if (err != cudaSuccess) {
      g->exec = NULL;
      snprintf (why, sizeof why, "cudaGraphInstantiate: %s", cudaGetErrorString (err));
    }
  }
  bp_cuda_take_deferred (); /* what failed inside the capture is answered by `why` */
  if (graph)
    cudaGraphDestroy (graph);
  cudaGetLastError ();
  if (why[0]) {
    bp_cuda_graph_free (g);
    bp_set_error (BP_ERR_UNSUPPORTED, "the step cannot be captured as a CUDA graph: %s", why);
    return NULL;
  }
  return g;
}

BpStatus
bp_cuda_graph_launch (BpCudaGraph *g)
{
  if (!bp_cuda_begin ())
    return bp_last_status ();
  /* the first replay runs the captured step itself, with the keys drawn while capturing */
  if (g->launches > 0)
    for (int k = 0; k < g->n_keys; k++)
      g->keys[k] = bp_rng_u64 ();
  cudaStream_t st = bp_cuda_ctx.stream;
  /* pageable memory: the call returns once the keys are staged, so they may change after it */
  if (g->n_keys > 0)
    BP_CUDA_CHECK (cudaMemcpyAsync (g->keys_dev, g->keys, sizeof (uint64_t) * (size_t) g->n_keys,
                                    cudaMemcpyHostToDevice, st));
  BP_CUDA_CHECK (cudaGraphLaunch (g->exec, st));
  g->launches++;
  return BP_OK;
}

int
bp_cuda_graph_n_keys (const BpCudaGraph *g)
{
  return g ? g->n_keys : 0;
}

size_t
bp_cuda_graph_n_blocks (const BpCudaGraph *g)
{
  return g ? bp_cuda_pool_blocks (g->pool) : 0;
}
