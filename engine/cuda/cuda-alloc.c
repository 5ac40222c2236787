/* cuda-alloc.c: the CUDA backend's caching device allocator: size-bucketed free lists, so a
 * training step that allocates the same sizes every time calls cudaMalloc only in its first
 * step and cudaFree never (cudaMalloc and cudaFree synchronise the device and cost tens of
 * microseconds each).
 *
 * Sizes round up to a bucket: multiples of 512 bytes up to 1 MiB, then four buckets per power
 * of two (at most 25% waste). A freed block goes on its bucket's list; an allocation takes the
 * first block of its bucket or calls cudaMalloc for the bucket's size. All work runs on the
 * backend's one stream, so a block freed while kernels still use it can be handed out again at
 * once: the next user's work is queued after them. When cudaMalloc fails the cache is given
 * back to the driver and the call retried once; then the error says how much was asked and how
 * much is free. $BP_CUDA_NO_CACHE=1 turns the cache off (for compute-sanitizer).
 *
 * A CUDA graph replays the device addresses it was captured with, so while a capture runs
 * (bp_cuda_pool_begin) every block handed out joins a private pool, and blocks of a live pool
 * go back to the pool's own lists when freed: nothing outside the graph gets them while the
 * graph may still be replayed. Freeing the pool (bp_cuda_pool_free) returns its free blocks to
 * the cache; blocks still in use then go to the cache when they are freed. */
#include "cuda-internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SMALL_STEP ((size_t) 512)
#define SMALL_LIMIT ((size_t) 1 << 20)
#define N_SMALL ((int) (SMALL_LIMIT / SMALL_STEP))      /* 512 B .. 1 MiB */
#define MAX_LOG 46                                       /* cached up to 64 TiB */
#define N_BUCKETS (N_SMALL + (MAX_LOG - 20) * 4)
#define MIB (1024.0 * 1024.0)

typedef struct Block {
  void *ptr;
  struct Block *next;
} Block;

/* A capture's blocks (see the top of the file). */
struct BpCudaPool {
  Block *buckets[N_BUCKETS]; /* the pool's free blocks */
  void **owned;              /* every block the pool has handed out, free or not */
  int n_owned, cap_owned;
  struct BpCudaPool *next;   /* the live pools */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static Block *buckets[N_BUCKETS]; /* free blocks of each bucket's size */
static BpCudaPool *pools;         /* live pools */
static BpCudaPool *capturing;     /* the pool new blocks join, NULL outside a capture */
static Block *spare;              /* unused list nodes, so freeing does not malloc */
static bool cache_off;
static BpCudaAllocStats stats;

/* The bucket of a request and the size actually allocated; -1 for requests too large to
 * cache (they get exactly `rounded` bytes and go straight back to the driver). */
static int
bucket_of (size_t bytes, size_t *rounded)
{
  if (bytes <= SMALL_LIMIT) {
    size_t q = bytes ? (bytes + SMALL_STEP - 1) / SMALL_STEP : 1;
    *rounded = q * SMALL_STEP;
    return (int) q - 1;
  }
  /* 2^e < bytes <= 2^(e+1): four steps of 2^(e-2) */
  int e = 63 - __builtin_clzll ((unsigned long long) (bytes - 1));
  if (e >= MAX_LOG) {
    *rounded = (bytes + SMALL_LIMIT - 1) / SMALL_LIMIT * SMALL_LIMIT;
    return -1;
  }
  size_t base = (size_t) 1 << e, step = base >> 2;
  size_t q = (bytes - base + step - 1) / step; /* 1..4 */
  *rounded = base + q * step;
  return N_SMALL + (e - 20) * 4 + (int) q - 1;
}

/* The size of the blocks in bucket b (the inverse of bucket_of). */
static size_t
bucket_size (int b)
{
  if (b < N_SMALL)
    return (size_t) (b + 1) * SMALL_STEP;
  int e = 20 + (b - N_SMALL) / 4, q = (b - N_SMALL) % 4 + 1;
  return ((size_t) 1 << e) + (size_t) q * ((size_t) 1 << (e - 2));
}

static void
note_peak (void)
{
  size_t total = stats.in_use_bytes + stats.cached_bytes;
  if (total > stats.peak_bytes)
    stats.peak_bytes = total;
}

/* Gives every cached block back; the caller holds the lock. */
static void
empty_locked (void)
{
  for (int b = 0; b < N_BUCKETS; b++) {
    while (buckets[b]) {
      Block *blk = buckets[b];
      buckets[b] = blk->next;
      cudaFree (blk->ptr); /* a failure here (dead context) leaves nothing to recover */
      stats.n_device_frees++;
      stats.cached_bytes -= bucket_size (b);
      blk->next = spare;
      spare = blk;
    }
  }
  cudaGetLastError ();
}

void
bp_cuda_empty_cache (void)
{
  pthread_mutex_lock (&lock);
  empty_locked ();
  pthread_mutex_unlock (&lock);
}

/* Records that `pool` handed out p; false when out of host memory. The caller holds the lock. */
static bool
pool_own (BpCudaPool *pool, void *p)
{
  if (pool->n_owned == pool->cap_owned) {
    int cap = pool->cap_owned ? 2 * pool->cap_owned : 256;
    void **owned = realloc (pool->owned, sizeof *owned * (size_t) cap);
    if (!owned)
      return false;
    pool->owned = owned;
    pool->cap_owned = cap;
  }
  pool->owned[pool->n_owned++] = p;
  return true;
}

/* The live pool that handed out p, or NULL. The caller holds the lock. */
static BpCudaPool *
pool_of (const void *p)
{
  for (BpCudaPool *pool = pools; pool; pool = pool->next)
    for (int k = 0; k < pool->n_owned; k++)
      if (pool->owned[k] == p)
        return pool;
  return NULL;
}

/* Pops a block of bucket b from `lists`, or NULL. The caller holds the lock. */
static void *
pop_block (Block **lists, int b)
{
  Block *blk = lists[b];
  if (!blk)
    return NULL;
  lists[b] = blk->next;
  blk->next = spare;
  spare = blk;
  return blk->ptr;
}

/* Pushes p on bucket b of `lists`; false when no list node could be had. The caller holds
 * the lock. */
static bool
push_block (Block **lists, int b, void *p)
{
  Block *blk = spare;
  if (blk)
    spare = blk->next;
  else
    blk = malloc (sizeof *blk);
  if (!blk)
    return false;
  blk->ptr = p;
  blk->next = lists[b];
  lists[b] = blk;
  return true;
}

/* cudaMalloc, also inside a stream capture: the capture's thread-local mode forbids calls that
 * may synchronise, and cudaMalloc is one; a block made while capturing is not part of the graph,
 * so the mode is relaxed around it (as PyTorch's allocator does). */
static cudaError_t
device_malloc (void **p, size_t bytes)
{
  enum cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
  cudaThreadExchangeStreamCaptureMode (&mode);
  cudaError_t err = cudaMalloc (p, bytes);
  cudaThreadExchangeStreamCaptureMode (&mode);
  return err;
}

void *
bp_cuda_alloc (size_t bytes)
{
  size_t rounded;
  int b = bucket_of (bytes, &rounded);
  pthread_mutex_lock (&lock);
  BpCudaPool *pool = capturing;
  void *p = NULL;
  if (b >= 0 && pool)
    p = pop_block (pool->buckets, b); /* the pool's own blocks stay its own */
  if (!p && b >= 0) {
    p = pop_block (buckets, b);
    if (p && pool && !pool_own (pool, p)) {
      push_block (buckets, b, p);
      p = NULL;
      pthread_mutex_unlock (&lock);
      bp_set_error (BP_ERR_NOMEM, "out of host memory for the CUDA graph's block list");
      return NULL;
    }
  }
  if (p) {
    stats.cached_bytes -= rounded;
    stats.in_use_bytes += rounded;
    stats.n_cache_hits++;
    pthread_mutex_unlock (&lock);
    return p;
  }
  pthread_mutex_unlock (&lock);

  bp_cuda_enter ();
  cudaError_t err = device_malloc (&p, rounded);
  /* giving the cache back frees memory (cudaFree), which a capture forbids: a capture that
   * runs out fails, and its step, run eagerly, gets the retry */
  if (err == cudaErrorMemoryAllocation && !capturing) {
    cudaGetLastError ();
    bp_cuda_empty_cache ();
    err = device_malloc (&p, rounded);
  }
  if (err != cudaSuccess) {
    cudaGetLastError (); /* an allocation failure is not sticky: clear it for later checks */
    if (err == cudaErrorMemoryAllocation) {
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo (&free_b, &total_b);
      cudaGetLastError ();
      bp_set_error (BP_ERR_NOMEM, "out of GPU memory: asked %.1f MiB, %.1f MiB free (of %.1f MiB)",
                    bytes / MIB, free_b / MIB, total_b / MIB);
    } else {
      bp_cuda_fail_rt (err, "cudaMalloc", __FILE__, __LINE__);
    }
    return NULL;
  }
  pthread_mutex_lock (&lock);
  stats.n_device_mallocs++;
  stats.in_use_bytes += rounded;
  note_peak ();
  bool owned = !capturing || pool_own (capturing, p);
  pthread_mutex_unlock (&lock);
  if (!owned) {
    bp_cuda_free (p, bytes);
    bp_set_error (BP_ERR_NOMEM, "out of host memory for the CUDA graph's block list");
    return NULL;
  }
  return p;
}

void
bp_cuda_free (void *ptr, size_t bytes)
{
  if (!ptr)
    return;
  size_t rounded;
  int b = bucket_of (bytes, &rounded);
  pthread_mutex_lock (&lock);
  stats.in_use_bytes -= rounded;
  BpCudaPool *pool = pools ? pool_of (ptr) : NULL;
  /* a pool's block is kept by the pool even with the cache off: the graph replays it; and
   * during a capture every block is kept (cudaFree would end the capture) */
  if (b >= 0 && (pool || !cache_off || capturing) &&
      push_block (pool ? pool->buckets : buckets, b, ptr)) {
    stats.cached_bytes += rounded;
    pthread_mutex_unlock (&lock);
    return;
  }
  stats.n_device_frees++;
  pthread_mutex_unlock (&lock);
  cudaFree (ptr);
  cudaGetLastError ();
}

BpCudaPool *
bp_cuda_pool_begin (void)
{
  BpCudaPool *pool = calloc (1, sizeof *pool);
  if (!pool) {
    bp_set_error (BP_ERR_NOMEM, "out of host memory for a CUDA graph's memory pool");
    return NULL;
  }
  pthread_mutex_lock (&lock);
  pool->next = pools;
  pools = pool;
  capturing = pool;
  pthread_mutex_unlock (&lock);
  return pool;
}

void
bp_cuda_pool_end (void)
{
  pthread_mutex_lock (&lock);
  capturing = NULL;
  pthread_mutex_unlock (&lock);
}

void
bp_cuda_pool_free (BpCudaPool *pool)
{
  if (!pool)
    return;
  pthread_mutex_lock (&lock);
  if (capturing == pool)
    capturing = NULL;
  for (BpCudaPool **at = &pools; *at; at = &(*at)->next)
    if (*at == pool) {
      *at = pool->next;
      break;
    }
  /* the free blocks go to the cache (to the driver with the cache off); those still in use
   * go there when freed */
  for (int b = 0; b < N_BUCKETS; b++) {
    while (pool->buckets[b]) {
      Block *blk = pool->buckets[b];
      pool->buckets[b] = blk->next;
      if (cache_off) {
        cudaFree (blk->ptr);
        stats.n_device_frees++;
        stats.cached_bytes -= bucket_size (b);
        blk->next = spare;
        spare = blk;
      } else {
        blk->next = buckets[b];
        buckets[b] = blk;
      }
    }
  }
  cudaGetLastError ();
  pthread_mutex_unlock (&lock);
  free (pool->owned);
  free (pool);
}

size_t
bp_cuda_pool_blocks (const BpCudaPool *pool)
{
  pthread_mutex_lock (&lock);
  size_t n = pool ? (size_t) pool->n_owned : 0;
  pthread_mutex_unlock (&lock);
  return n;
}

void
bp_cuda_alloc_stats (BpCudaAllocStats *out)
{
  pthread_mutex_lock (&lock);
  *out = stats;
  pthread_mutex_unlock (&lock);
}

void
bp_cuda_alloc_setup (void)
{
  const char *env = getenv ("BP_CUDA_NO_CACHE");
  pthread_mutex_lock (&lock);
  cache_off = env && env[0] && strcmp (env, "0") != 0;
  pthread_mutex_unlock (&lock);
}

void
bp_cuda_alloc_teardown (void)
{
  pthread_mutex_lock (&lock);
  empty_locked ();
  while (spare) {
    Block *blk = spare;
    spare = blk->next;
    free (blk);
  }
  pthread_mutex_unlock (&lock);
}
