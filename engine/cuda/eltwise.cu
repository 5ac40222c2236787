/* eltwise.cu: CUDA kernels of the eltwise family: arithmetic, activations, dropout (the same
 * mask as the CPU: bp_rng_hash_uniform per element), concat, embedding and sums. Same formulas
 * as engine/cpu/eltwise.c; the activations use CUDA's erfcf, expf and tanhf. */
#include "cuda-device.cuh"

/* ---- kernels ---- */

__global__ static void
add_kernel (float *out, const float *a, const float *b, float alpha, int64_t n)
{
  /* out (n) = a (n) + alpha * b (n) */
  BP_GRID_LOOP (i, n)
    out[i] = a[i] + alpha * b[i];
}

__global__ static void
mul_kernel (float *out, const float *a, const float *b, int64_t n)
{
  BP_GRID_LOOP (i, n)
    out[i] = a[i] * b[i];
}

__global__ static void
mul_backward_kernel (float *da, const float *dout, const float *b, int64_t n)
{
  BP_GRID_LOOP (i, n)
    da[i] += dout[i] * b[i];
}

__global__ static void
scale_kernel (float *out, const float *x, float s, int64_t n)
{
  BP_GRID_LOOP (i, n)
    out[i] = s * x[i];
}

/* Phi (x), the standard normal CDF */
__device__ __forceinline__ float
normal_cdf (float x)
{
  return 0.5f * erfcf (-x * 0.70710678118654752f);
}

__global__ static void
activation_kernel (float *out, const float *x, int64_t n, BpActivation act, float slope)
{
  /* out (n) = act (x (n)) */
  BP_GRID_LOOP (i, n) {
    float v = x[i], y = v;
    switch (act) {
    case BP_ACT_RELU: y = v > 0.0f ? v : 0.0f; break;
    case BP_ACT_LEAKY_RELU: y = v > 0.0f ? v : slope * v; break;
    case BP_ACT_GELU: y = v * normal_cdf (v); break;
    case BP_ACT_TANH: y = tanhf (v); break;
    case BP_ACT_SIGMOID: y = 1.0f / (1.0f + expf (-v)); break;
    }
    out[i] = y;
  }
}

__global__ static void
activation_backward_kernel (float *dx, const float *dout, const float *x, const float *out,
                            int64_t n, BpActivation act, float slope)
{
  /* dx (n) += dout (n) * act' (x (n)); tanh and sigmoid use out = act (x) */
  BP_GRID_LOOP (i, n) {
    float g = dout[i], v = x[i], d = 0.0f;
    switch (act) {
    case BP_ACT_RELU: d = v > 0.0f ? g : 0.0f; break;
    case BP_ACT_LEAKY_RELU: d = v > 0.0f ? g : slope * g; break;
    case BP_ACT_GELU:
      /* d/dx x Phi (x) = Phi (x) + x phi (x) */
      d = g * (normal_cdf (v) + v * 0.3989422804014327f * expf (-0.5f * v * v));
      break;
    case BP_ACT_TANH: d = g * (1.0f - out[i] * out[i]); break;
    case BP_ACT_SIGMOID: d = g * out[i] * (1.0f - out[i]); break;
    }
    dx[i] += d;
  }
}

__global__ static void
dropout_kernel (float *out, const float *x, int64_t n, float p, float scale, uint64_t key,
                const uint64_t *key_at)
{
  /* out (n) = x / (1 - p) where the element's own draw is >= p, else 0; the key from key_at
   * when given (a CUDA graph's replays change it there) */
  if (key_at)
    key = *key_at;
  BP_GRID_LOOP (i, n)
    out[i] = bp_cuda_hash_uniform (key, (uint64_t) i) >= p ? x[i] * scale : 0.0f;
}

__global__ static void
dropout_backward_kernel (float *dx, const float *dout, int64_t n, float p, float scale,
                         uint64_t key, const uint64_t *key_at)
{
  if (key_at)
    key = *key_at;
  BP_GRID_LOOP (i, n)
    if (bp_cuda_hash_uniform (key, (uint64_t) i) >= p)
      dx[i] += dout[i] * scale;
}

__global__ static void
concat_copy_kernel (float *out, const float *x, int64_t outer, int64_t inner, int64_t out_inner,
                    int64_t offset)
{
  /* out (outer, out_inner)[:, offset:offset+inner] = x (outer, inner) */
  BP_GRID_LOOP (i, outer * inner) {
    int64_t r = i / inner, j = i - r * inner;
    out[r * out_inner + offset + j] = x[i];
  }
}

__global__ static void
concat_backward_kernel (float *dx, const float *dout, int64_t outer, int64_t inner,
                        int64_t out_inner, int64_t offset)
{
  /* dx (outer, inner) += dout (outer, out_inner)[:, offset:offset+inner] */
  BP_GRID_LOOP (i, outer * inner) {
    int64_t r = i / inner, j = i - r * inner;
    dx[i] += dout[r * out_inner + offset + j];
  }
}

__device__ __forceinline__ bool
is_index (float f, int64_t v)
{
  return f >= 0.0f && f < (float) v && f == floorf (f);
}

__global__ static void
embedding_check_kernel (unsigned long long *first_bad, const float *indices, int64_t n,
                        int64_t v)
{
  /* first_bad[0] = min of the positions i of indices (n) that are not integers in [0, v)
   * (integer atomics: the answer does not depend on the order) */
  BP_GRID_LOOP (i, n)
    if (!is_index (indices[i], v))
      atomicMin (first_bad, (unsigned long long) i);
}

__global__ static void
embedding_kernel (float *out, const float *weight, const float *indices, int64_t n, int64_t d)
{
  /* out (n,d) = weight (v,d)[indices (n)] */
  BP_GRID_LOOP (i, n * d) {
    int64_t r = i / d, j = i - r * d;
    out[i] = weight[(int64_t) indices[r] * d + j];
  }
}

__global__ static void
embedding_backward_kernel (float *dweight, const float *dout, const float *indices, int64_t n,
                           int64_t v, int64_t d)
{
  /* dweight (v,d)[indices[i]] += dout (n,d)[i]. Thread (column j, block row y) owns the rows
   * [v y / Y, v (y + 1) / Y) of column j and walks all indices in order: repeated indices add
   * up in index order, as on the CPU, with no atomics. */
  int64_t j = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;
  int64_t v0 = v * blockIdx.y / gridDim.y, v1 = v * (blockIdx.y + 1) / gridDim.y;
  if (j >= d)
    return;
  for (int64_t i = 0; i < n; i++) {
    int64_t row = (int64_t) indices[i];
    if (row >= v0 && row < v1)
      dweight[row * d + j] += dout[i * d + j];
  }
}

__global__ static void
sum_backward_kernel (float *dx, const float *dout, int64_t n, float scale)
{
  /* dx (n) += scale * dout[0] */
  float g = dout[0] * scale;
  BP_GRID_LOOP (i, n)
    dx[i] += g;
}

/* A term of sum: x[i] in double. */
struct SumTerm {
  const float *x;
  __device__ double operator() (int64_t i) const { return (double) x[i]; }
};

/* ---- the table: launchers on the backend's stream ---- */

#define GRID(n) bp_cuda_grid ((n), BP_BLOCK), BP_BLOCK, 0, bp_cuda_ctx.stream

/* Launches a grid-stride kernel over n elements and keeps a launch error for synchronize. */
#define LAUNCH(name, kernel, n, ...)                                                           \
  do {                                                                                         \
    if ((n) <= 0 || !bp_cuda_begin ())                                                         \
      return;                                                                                  \
    kernel<<<GRID (n)>>> (__VA_ARGS__);                                                        \
    bp_cuda_defer (BP_CUDA_LAUNCH_TRY (name));                                                 \
  } while (0)

static void
cuda_add (float *out, const float *a, const float *b, float alpha, int64_t n)
{
  LAUNCH ("add", add_kernel, n, out, a, b, alpha, n);
}

static void
cuda_mul (float *out, const float *a, const float *b, int64_t n)
{
  LAUNCH ("mul", mul_kernel, n, out, a, b, n);
}

static void
cuda_mul_backward (float *da, const float *dout, const float *b, int64_t n)
{
  LAUNCH ("mul_backward", mul_backward_kernel, n, da, dout, b, n);
}

static void
cuda_scale (float *out, const float *x, float s, int64_t n)
{
  LAUNCH ("scale", scale_kernel, n, out, x, s, n);
}

static void
cuda_activation (float *out, const float *x, int64_t n, BpActivation act, float slope)
{
  LAUNCH ("activation", activation_kernel, n, out, x, n, act, slope);
}

static void
cuda_activation_backward (float *dx, const float *dout, const float *x, const float *out,
                          int64_t n, BpActivation act, float slope)
{
  LAUNCH ("activation_backward", activation_backward_kernel, n, dx, dout, x, out, n, act, slope);
}

static void
cuda_dropout (float *out, const float *x, int64_t n, float p, uint64_t key)
{
  float scale = 1.0f / (1.0f - p); /* computed as on the CPU */
  LAUNCH ("dropout", dropout_kernel, n, out, x, n, p, scale, key, bp_cuda_capture_key (key));
}

static void
cuda_dropout_backward (float *dx, const float *dout, int64_t n, float p, uint64_t key)
{
  float scale = 1.0f / (1.0f - p);
  LAUNCH ("dropout_backward", dropout_backward_kernel, n, dx, dout, n, p, scale, key,
          bp_cuda_capture_key (key));
}

static void
cuda_concat_copy (float *out, const float *x, int64_t outer, int64_t inner, int64_t out_inner,
                  int64_t offset)
{
  LAUNCH ("concat_copy", concat_copy_kernel, outer * inner, out, x, outer, inner, out_inner,
          offset);
}

static void
cuda_concat_backward (float *dx, const float *dout, int64_t outer, int64_t inner,
                      int64_t out_inner, int64_t offset)
{
  LAUNCH ("concat_backward", concat_backward_kernel, outer * inner, dx, dout, outer, inner,
          out_inner, offset);
}

/* Checks the indices on the GPU and waits for the answer (the caller needs it now). */
static BpStatus
embedding_check (int64_t *bad, const float *indices, int64_t n, int64_t v)
{
  *bad = -1;
  if (bp_cuda_refuse_read_back ("the embedding's index check"))
    return BP_OK;
  cudaStream_t st = bp_cuda_ctx.stream;
  size_t bytes = sizeof (unsigned long long);
  unsigned long long *d_bad = (unsigned long long *) bp_cuda_alloc (bytes), h_bad = 0;
  if (!d_bad)
    return bp_last_status ();
  BpStatus s = BP_CUDA_TRY (cudaMemsetAsync (d_bad, 0xff, bytes, st)); /* ULLONG_MAX: none */
  if (s == BP_OK) {
    embedding_check_kernel<<<bp_cuda_grid (n, BP_BLOCK), BP_BLOCK, 0, st>>> (d_bad, indices, n,
                                                                            v);
    s = BP_CUDA_LAUNCH_TRY ("embedding check");
  }
  if (s == BP_OK)
    s = BP_CUDA_TRY (cudaMemcpyAsync (&h_bad, d_bad, bytes, cudaMemcpyDeviceToHost, st));
  if (s == BP_OK)
    s = BP_CUDA_TRY (cudaStreamSynchronize (st));
  bp_cuda_free (d_bad, bytes);
  *bad = s == BP_OK && h_bad < (unsigned long long) n ? (int64_t) h_bad : -1;
  return s;
}

static int64_t
cuda_embedding (float *out, const float *weight, const float *indices, int64_t n, int64_t v,
                int64_t d)
{
  /* A device failure answers -1 ("all valid"): the error is kept and reported by the next
   * synchronize or download, and the output is garbage by then anyway. */
  if (n <= 0 || !bp_cuda_begin ())
    return -1;
  int64_t bad = -1;
  BpStatus s = embedding_check (&bad, indices, n, v);
  if (s != BP_OK) {
    bp_cuda_defer (s);
    return -1;
  }
  if (bad >= 0)
    return bad;
  if (d > 0) {
    embedding_kernel<<<GRID (n * d)>>> (out, weight, indices, n, d);
    bp_cuda_defer (BP_CUDA_LAUNCH_TRY ("embedding"));
  }
  return -1;
}

static void
cuda_gather_rows (float *out, const float *weight, const float *indices, int64_t n, int64_t d)
{
  if (n <= 0 || d <= 0 || !bp_cuda_begin ())
    return;
  embedding_kernel<<<GRID (n * d)>>> (out, weight, indices, n, d);
  bp_cuda_defer (BP_CUDA_LAUNCH_TRY ("gather_rows"));
}

static void
cuda_embedding_backward (float *dweight, const float *dout, const float *indices, int64_t n,
                         int64_t v, int64_t d)
{
  if (n <= 0 || d <= 0 || v <= 0 || !bp_cuda_begin ())
    return;
  /* enough row slices to keep the device busy: about 64 K threads */
  int64_t col_blocks = (d + BP_BLOCK - 1) / BP_BLOCK;
  int64_t slices = (65536 / BP_BLOCK + col_blocks - 1) / col_blocks;
  slices = slices < 1 ? 1 : slices > v ? v : slices > 65535 ? 65535 : slices;
  dim3 grid ((unsigned) col_blocks, (unsigned) slices);
  embedding_backward_kernel<<<grid, BP_BLOCK, 0, bp_cuda_ctx.stream>>> (dweight, dout, indices,
                                                                        n, v, d);
  bp_cuda_defer (BP_CUDA_LAUNCH_TRY ("embedding_backward"));
}

static void
cuda_sum (float *out, const float *x, int64_t n, float scale)
{
  if (!bp_cuda_begin ())
    return;
  bp_cuda_defer (bp_cuda_sum (bp_cuda_ctx.stream, n, SumTerm{x}, (double) scale, out, NULL));
}

static void
cuda_sum_backward (float *dx, const float *dout, int64_t n, float scale)
{
  LAUNCH ("sum_backward", sum_backward_kernel, n, dx, dout, n, scale);
}

extern "C" float
bp_cuda_hash_uniform_host (uint64_t key, uint64_t k)
{
  return bp_cuda_hash_uniform (key, k);
}

const BpEltwiseKernels bp_cuda_eltwise_kernels = {
  .add = cuda_add,
  .mul = cuda_mul,
  .mul_backward = cuda_mul_backward,
  .scale = cuda_scale,
  .activation = cuda_activation,
  .activation_backward = cuda_activation_backward,
  .dropout = cuda_dropout,
  .dropout_backward = cuda_dropout_backward,
  .concat_copy = cuda_concat_copy,
  .concat_backward = cuda_concat_backward,
  .embedding = cuda_embedding,
  .gather_rows = cuda_gather_rows,
  .embedding_backward = cuda_embedding_backward,
  .sum = cuda_sum,
  .sum_backward = cuda_sum_backward,
};
