/* conv.cu: CUDA kernels of the conv family: conv2d forward, backward-data and backward-filter
 * through cuDNN (algorithms chosen once per shape and precision by cudnnFind* and cached,
 * workspaces from the caching allocator, TF32 following bp_cuda_get_tf32; with
 * BP_PRECISION_BF16 bfloat16 tensors and float32 compute, converted in and out), the bias add
 * and bias gradient,
 * and own pooling kernels with the CPU table's contract (max pooling keeps arg-max indices;
 * backward kernels gather per input element, so no atomics and repeatable sums). */
#include "cuda-device.cuh"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>

/* ---- bias ---- */

__global__ static void
bias_fill_kernel (float *out, const float *bias, int64_t total, int64_t c, int64_t p)
{
  /* out (N,C,P) = bias[c], or 0 without bias (a convolution with no input channels) */
  BP_GRID_LOOP (i, total)
    out[i] = bias ? bias[(i / p) % c] : 0.0f;
}

__global__ static void
bias_add_kernel (float *out, const float *bias, int64_t total, int64_t c, int64_t p)
{
  /* out (N,C,P) += bias (C) */
  BP_GRID_LOOP (i, total)
    out[i] += bias[(i / p) % c];
}

/* A term of the bias gradient: dout at (n, c, position). */
struct BiasGradTerm {
  const float *dout;
  __device__ double2 operator() (int64_t ch, int64_t idx) const
  {
    return make_double2 ((double) dout[idx], 0.0);
  }
};

__global__ static void
bias_grad_finish_kernel (float *db, const double2 *partial, int64_t c, int split)
{
  /* db (C) += the channel sums */
  BP_GRID_LOOP (ch, c)
    db[ch] += (float) bp_chan_total (partial, ch, split).x;
}

/* ---- pooling: one thread per output (forward) or per input element (backward) ---- */

__global__ static void
max_pool_forward_kernel (float *out, int32_t *argmax, const float *x, BpPool2dShape s)
{
  /* out, argmax (N,C,Ho,Wo), x (N,C,H,W); the CPU's rule: the first maximum, or the last NaN */
  int64_t ohw = s.h_out * s.w_out;
  BP_GRID_LOOP (i, s.n * s.c * ohw) {
    int64_t plane = i / ohw, o = i - plane * ohw, oy = o / s.w_out, ox = o - oy * s.w_out;
    int64_t y0 = oy * s.stride[0] - s.padding[0], y1 = y0 + s.kh;
    int64_t x0 = ox * s.stride[1] - s.padding[1], x1 = x0 + s.kw;
    y0 = y0 < 0 ? 0 : y0;
    y1 = y1 > s.h ? s.h : y1;
    x0 = x0 < 0 ? 0 : x0;
    x1 = x1 > s.w ? s.w : x1;
    const float *xp = x + plane * s.h * s.w;
    float best = -INFINITY;
    int64_t at = y0 * s.w + x0;
    for (int64_t iy = y0; iy < y1; iy++)
      for (int64_t ix = x0; ix < x1; ix++) {
        float v = xp[iy * s.w + ix];
        if (v > best || isnan (v)) {
          best = v;
          at = iy * s.w + ix;
        }
      }
    out[i] = best;
    if (argmax)
      argmax[i] = (int32_t) at;
  }
}

/* The outputs [*lo, *hi) along one axis whose window (start o*stride - pad, length k)
 * contains input position h. */
__device__ __forceinline__ void
windows_over (int64_t h, int k, int stride, int pad, int64_t n_out, int64_t *lo, int64_t *hi)
{
  int64_t first = h + pad - k + 1; /* o * stride >= first */
  *lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  int64_t last = (h + pad) / stride + 1;
  *hi = last < n_out ? last : n_out;
}

__global__ static void
max_pool_backward_kernel (float *dx, const float *dout, const int32_t *argmax, BpPool2dShape s)
{
  /* dx (N,C,H,W) += the dout (N,C,Ho,Wo) of the windows whose arg-max is this element */
  int64_t hw = s.h * s.w, ohw = s.h_out * s.w_out;
  BP_GRID_LOOP (i, s.n * s.c * hw) {
    int64_t plane = i / hw, pos = i - plane * hw, h = pos / s.w, w = pos - h * s.w;
    int64_t oy0, oy1, ox0, ox1;
    windows_over (h, s.kh, s.stride[0], s.padding[0], s.h_out, &oy0, &oy1);
    windows_over (w, s.kw, s.stride[1], s.padding[1], s.w_out, &ox0, &ox1);
    const int32_t *ap = argmax + plane * ohw;
    const float *gp = dout + plane * ohw;
    float acc = 0.0f;
    for (int64_t oy = oy0; oy < oy1; oy++)
      for (int64_t ox = ox0; ox < ox1; ox++)
        if (ap[oy * s.w_out + ox] == (int32_t) pos)
          acc += gp[oy * s.w_out + ox];
    dx[i] += acc;
  }
}

/* The divisor of average-pooling output (oy, ox), as in cpu/conv.c's avg_window. */
__device__ __forceinline__ float
avg_divisor (const BpPool2dShape &s, int64_t oy, int64_t ox, int64_t *y0, int64_t *y1,
             int64_t *x0, int64_t *x1)
{
  int64_t a = oy * s.stride[0] - s.padding[0], b = ox * s.stride[1] - s.padding[1];
  int64_t a1 = a + s.kh, b1 = b + s.kw;
  *y0 = a < 0 ? 0 : a;
  *y1 = a1 > s.h ? s.h : a1;
  *x0 = b < 0 ? 0 : b;
  *x1 = b1 > s.w ? s.w : b1;
  if (s.count_include_pad)
    return (float) (s.kh * s.kw);
  return (float) ((*y1 - *y0) * (*x1 - *x0));
}

__global__ static void
avg_pool_forward_kernel (float *out, const float *x, BpPool2dShape s)
{
  /* out (N,C,Ho,Wo) = window sums of x (N,C,H,W) / divisor */
  int64_t ohw = s.h_out * s.w_out;
  BP_GRID_LOOP (i, s.n * s.c * ohw) {
    int64_t plane = i / ohw, o = i - plane * ohw, oy = o / s.w_out, ox = o - oy * s.w_out;
    int64_t y0, y1, x0, x1;
    float div = avg_divisor (s, oy, ox, &y0, &y1, &x0, &x1);
    const float *xp = x + plane * s.h * s.w;
    float sum = 0.0f;
    for (int64_t iy = y0; iy < y1; iy++)
      for (int64_t ix = x0; ix < x1; ix++)
        sum += xp[iy * s.w + ix];
    out[i] = sum / div;
  }
}

__global__ static void
avg_pool_backward_kernel (float *dx, const float *dout, BpPool2dShape s)
{
  /* dx (N,C,H,W) += sum over the windows holding this element of dout / divisor */
  int64_t hw = s.h * s.w, ohw = s.h_out * s.w_out;
  BP_GRID_LOOP (i, s.n * s.c * hw) {
    int64_t plane = i / hw, pos = i - plane * hw, h = pos / s.w, w = pos - h * s.w;
    int64_t oy0, oy1, ox0, ox1;
    windows_over (h, s.kh, s.stride[0], s.padding[0], s.h_out, &oy0, &oy1);
    windows_over (w, s.kw, s.stride[1], s.padding[1], s.w_out, &ox0, &ox1);
    const float *gp = dout + plane * ohw;
    float acc = 0.0f;
    for (int64_t oy = oy0; oy < oy1; oy++)
      for (int64_t ox = ox0; ox < ox1; ox++) {
        int64_t y0, y1, x0, x1;
        acc += gp[oy * s.w_out + ox] / avg_divisor (s, oy, ox, &y0, &y1, &x0, &x1);
      }
    dx[i] += acc;
  }
}

/* PyTorch's adaptive windows: [floor (i in / out), ceil ((i + 1) in / out)). */
__device__ __forceinline__ int64_t
adaptive_start (int64_t i, int64_t in, int64_t out)
{
  return i * in / out;
}

__device__ __forceinline__ int64_t
adaptive_end (int64_t i, int64_t in, int64_t out)
{
  return ((i + 1) * in + out - 1) / out;
}

__global__ static void
adaptive_avg_forward_kernel (float *out, const float *x, BpPool2dShape s)
{
  /* out (N,C,Ho,Wo) = means of x (N,C,H,W) over the adaptive windows */
  int64_t ohw = s.h_out * s.w_out;
  BP_GRID_LOOP (i, s.n * s.c * ohw) {
    int64_t plane = i / ohw, o = i - plane * ohw, oy = o / s.w_out, ox = o - oy * s.w_out;
    int64_t y0 = adaptive_start (oy, s.h, s.h_out), y1 = adaptive_end (oy, s.h, s.h_out);
    int64_t x0 = adaptive_start (ox, s.w, s.w_out), x1 = adaptive_end (ox, s.w, s.w_out);
    const float *xp = x + plane * s.h * s.w;
    float sum = 0.0f;
    for (int64_t iy = y0; iy < y1; iy++)
      for (int64_t ix = x0; ix < x1; ix++)
        sum += xp[iy * s.w + ix];
    out[i] = sum / (float) ((y1 - y0) * (x1 - x0));
  }
}

__global__ static void
adaptive_avg_backward_kernel (float *dx, const float *dout, BpPool2dShape s)
{
  /* dx (N,C,H,W) += sum over the adaptive windows holding this element of dout / size; those
   * are the outputs [floor (h Ho / H), ceil ((h + 1) Ho / H)), tested one by one */
  int64_t hw = s.h * s.w, ohw = s.h_out * s.w_out;
  BP_GRID_LOOP (i, s.n * s.c * hw) {
    int64_t plane = i / hw, pos = i - plane * hw, h = pos / s.w, w = pos - h * s.w;
    int64_t oy0 = h * s.h_out / s.h, oy1 = ((h + 1) * s.h_out + s.h - 1) / s.h;
    int64_t ox0 = w * s.w_out / s.w, ox1 = ((w + 1) * s.w_out + s.w - 1) / s.w;
    oy1 = oy1 < s.h_out ? oy1 : s.h_out;
    ox1 = ox1 < s.w_out ? ox1 : s.w_out;
    const float *gp = dout + plane * ohw;
    float acc = 0.0f;
    for (int64_t oy = oy0; oy < oy1; oy++) {
      int64_t y0 = adaptive_start (oy, s.h, s.h_out), y1 = adaptive_end (oy, s.h, s.h_out);
      if (h < y0 || h >= y1)
        continue;
      for (int64_t ox = ox0; ox < ox1; ox++) {
        int64_t x0 = adaptive_start (ox, s.w, s.w_out), x1 = adaptive_end (ox, s.w, s.w_out);
        if (w >= x0 && w < x1)
          acc += gp[oy * s.w_out + ox] / (float) ((y1 - y0) * (x1 - x0));
      }
    }
    dx[i] += acc;
  }
}

/* ---- cuDNN convolution: descriptors and algorithms cached per shape ---- */

/* The math of a convolution: float32 FMA, TF32 tensor cores, or bfloat16 tensors with float32
 * compute (cuDNN's PSEUDO_BFLOAT16 configuration). */
typedef enum {
  CONV_FP32 = 0,
  CONV_TF32 = 1,
  CONV_BF16 = 2,
} ConvMath;

/* The key: the shape's sizes and the math. */
#define KEY_LEN 18
#define N_BUCKETS 64
/* Largest workspace an algorithm may ask for. */
#define MAX_WORKSPACE ((size_t) 2 << 30)

typedef struct {
  int algo;                   /* the direction's cudnnConvolution*Algo_t */
  size_t workspace;           /* bytes */
  cudnnConvolutionDescriptor_t desc; /* with the algorithm's math type */
  bool chosen;
} ConvAlgo;

typedef struct ConvEntry {
  int64_t key[KEY_LEN];
  cudnnTensorDescriptor_t x_desc, y_desc;
  cudnnFilterDescriptor_t w_desc;
  ConvAlgo fwd, bwd_data, bwd_filter;
  struct ConvEntry *next;
} ConvEntry;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static ConvEntry *buckets[N_BUCKETS];

static void
make_key (int64_t *key, const BpConv2dShape *s, ConvMath cm)
{
  int64_t k[KEY_LEN] = {
    s->n, s->c_in, s->h, s->w, s->c_out, s->h_out, s->w_out, s->kh, s->kw,
    s->stride[0], s->stride[1], s->padding[0], s->padding[1], s->dilation[0], s->dilation[1],
    s->groups, cm, 0,
  };
  memcpy (key, k, sizeof k);
}

static void
entry_free (ConvEntry *e)
{
  if (e->x_desc)
    cudnnDestroyTensorDescriptor (e->x_desc);
  if (e->y_desc)
    cudnnDestroyTensorDescriptor (e->y_desc);
  if (e->w_desc)
    cudnnDestroyFilterDescriptor (e->w_desc);
  ConvAlgo *algos[] = { &e->fwd, &e->bwd_data, &e->bwd_filter };
  for (int i = 0; i < 3; i++)
    if (algos[i]->desc)
      cudnnDestroyConvolutionDescriptor (algos[i]->desc);
  free (e);
}

extern "C" void
bp_cuda_conv_teardown (void)
{
  pthread_mutex_lock (&cache_lock);
  for (int b = 0; b < N_BUCKETS; b++) {
    while (buckets[b]) {
      ConvEntry *e = buckets[b];
      buckets[b] = e->next;
      entry_free (e);
    }
  }
  pthread_mutex_unlock (&cache_lock);
}

static bool
fits_int (const BpConv2dShape *s)
{
  int64_t v[] = { s->n, s->c_in, s->h, s->w, s->c_out, s->h_out, s->w_out };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
    if (v[i] > INT_MAX)
      return false;
  return true;
}

/* A convolution descriptor for the shape with the given math type (float32 compute, also for
 * bfloat16 tensors). */
static BpStatus
conv_desc_new (cudnnConvolutionDescriptor_t *desc, const BpConv2dShape *s, cudnnMathType_t math)
{
  BP_CUDNN_CHECK (cudnnCreateConvolutionDescriptor (desc));
  BP_CUDNN_CHECK (cudnnSetConvolution2dDescriptor (*desc, s->padding[0], s->padding[1],
                                                   s->stride[0], s->stride[1], s->dilation[0],
                                                   s->dilation[1], CUDNN_CROSS_CORRELATION,
                                                   CUDNN_DATA_FLOAT));
  BP_CUDNN_CHECK (cudnnSetConvolutionGroupCount (*desc, s->groups));
  BP_CUDNN_CHECK (cudnnSetConvolutionMathType (*desc, math));
  return BP_OK;
}

/* The math type asked for: tensor cores for TF32 and bfloat16, or plain float32 FMA
 * (CUDNN_DEFAULT_MATH would still allow TF32 on Ampere and newer). */
static cudnnMathType_t
wanted_math (ConvMath cm)
{
  return cm == CONV_FP32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
}

/* The tensor and filter descriptors of a new entry (float32, or bfloat16 data); the
 * algorithms come later. */
static BpStatus
entry_setup (ConvEntry *e, const BpConv2dShape *s, ConvMath cm)
{
  cudnnDataType_t t = cm == CONV_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
  BP_CUDNN_CHECK (cudnnCreateTensorDescriptor (&e->x_desc));
  BP_CUDNN_CHECK (cudnnCreateTensorDescriptor (&e->y_desc));
  BP_CUDNN_CHECK (cudnnCreateFilterDescriptor (&e->w_desc));
  BP_CUDNN_CHECK (cudnnSetTensor4dDescriptor (e->x_desc, CUDNN_TENSOR_NCHW, t, (int) s->n,
                                              (int) s->c_in, (int) s->h, (int) s->w));
  BP_CUDNN_CHECK (cudnnSetTensor4dDescriptor (e->y_desc, CUDNN_TENSOR_NCHW, t, (int) s->n,
                                              (int) s->c_out, (int) s->h_out, (int) s->w_out));
  BP_CUDNN_CHECK (cudnnSetFilter4dDescriptor (e->w_desc, t, CUDNN_TENSOR_NCHW, (int) s->c_out,
                                              (int) (s->c_in / s->groups), s->kh, s->kw));
  return BP_OK;
}

/* Picks from cuDNN's list (fastest first): the first usable deterministic algorithm, else the
 * first usable one. Usable: it ran, its workspace is at most MAX_WORKSPACE, it never converts
 * to half precision, and in float32 (TF32 off) its math is FMA or default (run as FMA, see
 * choose). -1 if none. */
template <typename Perf>
static int
pick_algo (const Perf *perf, int count, ConvMath cm)
{
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < count; i++) {
      const Perf *p = &perf[i];
      if (p->status != CUDNN_STATUS_SUCCESS || p->memory > MAX_WORKSPACE ||
          p->mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION ||
          (cm == CONV_FP32 && p->mathType == CUDNN_TENSOR_OP_MATH))
        continue;
      if (pass == 0 && p->determinism != CUDNN_DETERMINISTIC)
        continue;
      return i;
    }
  return -1;
}

#define MAX_ALGOS 16

/* Chooses the algorithm of one direction (0 forward, 1 backward data, 2 backward filter):
 * cudnnFind* times them all on the device (once per shape); when that fails (it allocates its
 * own memory) cuDNN's heuristics (Get*_v7) decide, and they alone during a CUDA graph capture,
 * which cannot hold Find's allocations and timing (the trainer's first step at a shape runs
 * eagerly, so its shapes are chosen before). Then sets up the direction's descriptor with the
 * algorithm's math type and its workspace size. */
static BpStatus
choose (ConvEntry *e, ConvAlgo *a, int dir, const BpConv2dShape *s, ConvMath cm)
{
  cudnnHandle_t h = bp_cuda_ctx.cudnn;
  cudnnConvolutionDescriptor_t probe = NULL;
  BpStatus st = conv_desc_new (&probe, s, wanted_math (cm));
  if (st != BP_OK) {
    if (probe)
      cudnnDestroyConvolutionDescriptor (probe);
    return st;
  }
  int algo = -1, count = 0;
  cudnnMathType_t math = wanted_math (cm);
  for (int heuristic = bp_cuda_capturing () ? 1 : 0; heuristic < 2 && algo < 0; heuristic++) {
    cudnnStatus_t cs;
    if (dir == 0) {
      cudnnConvolutionFwdAlgoPerf_t perf[MAX_ALGOS];
      cs = heuristic ? cudnnGetConvolutionForwardAlgorithm_v7 (h, e->x_desc, e->w_desc, probe,
                                                               e->y_desc, MAX_ALGOS, &count,
                                                               perf)
                     : cudnnFindConvolutionForwardAlgorithm (h, e->x_desc, e->w_desc, probe,
                                                             e->y_desc, MAX_ALGOS, &count, perf);
      int i = cs == CUDNN_STATUS_SUCCESS ? pick_algo (perf, count, cm) : -1;
      if (i >= 0) {
        algo = (int) perf[i].algo;
        math = perf[i].mathType;
      }
    } else if (dir == 1) {
      cudnnConvolutionBwdDataAlgoPerf_t perf[MAX_ALGOS];
      cs = heuristic ? cudnnGetConvolutionBackwardDataAlgorithm_v7 (h, e->w_desc, e->y_desc,
                                                                    probe, e->x_desc, MAX_ALGOS,
                                                                    &count, perf)
                     : cudnnFindConvolutionBackwardDataAlgorithm (h, e->w_desc, e->y_desc, probe,
                                                                  e->x_desc, MAX_ALGOS, &count,
                                                                  perf);
      int i = cs == CUDNN_STATUS_SUCCESS ? pick_algo (perf, count, cm) : -1;
      if (i >= 0) {
        algo = (int) perf[i].algo;
        math = perf[i].mathType;
      }
    } else {
      cudnnConvolutionBwdFilterAlgoPerf_t perf[MAX_ALGOS];
      cs = heuristic ? cudnnGetConvolutionBackwardFilterAlgorithm_v7 (h, e->x_desc, e->y_desc,
                                                                      probe, e->w_desc,
                                                                      MAX_ALGOS, &count, perf)
                     : cudnnFindConvolutionBackwardFilterAlgorithm (h, e->x_desc, e->y_desc,
                                                                    probe, e->w_desc, MAX_ALGOS,
                                                                    &count, perf);
      int i = cs == CUDNN_STATUS_SUCCESS ? pick_algo (perf, count, cm) : -1;
      if (i >= 0) {
        algo = (int) perf[i].algo;
        math = perf[i].mathType;
      }
    }
    /* a failed Find may leave a non-sticky error (its own cudaMalloc): clear it */
    cudaGetLastError ();
  }
  cudnnDestroyConvolutionDescriptor (probe);
  if (algo < 0) {
    static const char *const what[] = { "forward", "backward-data", "backward-filter" };
    bp_set_error (BP_ERR_UNSUPPORTED,
                  "conv2d on cuda: cuDNN has no %s algorithm for input [%lld, %lld, %lld, %lld], "
                  "weight [%lld, %lld, %d, %d], groups %d%s",
                  what[dir], (long long) s->n, (long long) s->c_in, (long long) s->h,
                  (long long) s->w, (long long) s->c_out, (long long) (s->c_in / s->groups),
                  s->kh, s->kw, s->groups,
                  cm == CONV_TF32 ? " (TF32)" : cm == CONV_BF16 ? " (bfloat16)" : "");
    return BP_ERR_UNSUPPORTED;
  }
  /* the algorithm's own math type (cuDNN wants algorithm and math type to agree); in float32
   * without TF32 always FMA, as CUDNN_DEFAULT_MATH would allow TF32 on Ampere and newer */
  if (cm == CONV_FP32)
    math = CUDNN_FMA_MATH;
  if ((st = conv_desc_new (&a->desc, s, math)) != BP_OK)
    return st; /* a->desc, if created, is destroyed with the entry or the next try */
  size_t ws = 0;
  if (dir == 0)
    BP_CUDNN_CHECK (cudnnGetConvolutionForwardWorkspaceSize (
        h, e->x_desc, e->w_desc, a->desc, e->y_desc, (cudnnConvolutionFwdAlgo_t) algo, &ws));
  else if (dir == 1)
    BP_CUDNN_CHECK (cudnnGetConvolutionBackwardDataWorkspaceSize (
        h, e->w_desc, e->y_desc, a->desc, e->x_desc, (cudnnConvolutionBwdDataAlgo_t) algo, &ws));
  else
    BP_CUDNN_CHECK (cudnnGetConvolutionBackwardFilterWorkspaceSize (
        h, e->x_desc, e->y_desc, a->desc, e->w_desc, (cudnnConvolutionBwdFilterAlgo_t) algo,
        &ws));
  a->algo = algo;
  a->workspace = ws;
  a->chosen = true;
  return BP_OK;
}

/* The cache entry of a shape and precision with the algorithm of direction dir chosen; NULL
 * with the error set when cuDNN cannot do it. */
static ConvEntry *
lookup (const BpConv2dShape *s, int dir, bool bf16)
{
  ConvMath cm = bf16 ? CONV_BF16 : bp_cuda_ctx.tf32 ? CONV_TF32 : CONV_FP32;
  int64_t key[KEY_LEN];
  make_key (key, s, cm);
  unsigned b = bp_cuda_key_bucket (key, KEY_LEN, N_BUCKETS);
  pthread_mutex_lock (&cache_lock);
  ConvEntry *e = buckets[b];
  while (e && memcmp (e->key, key, sizeof key) != 0)
    e = e->next;
  BpStatus st = BP_OK;
  if (!e) {
    e = (ConvEntry *) calloc (1, sizeof *e);
    if (!e) {
      pthread_mutex_unlock (&cache_lock);
      bp_set_error (BP_ERR_NOMEM, "conv2d on cuda: out of memory for the algorithm cache");
      return NULL;
    }
    memcpy (e->key, key, sizeof key);
    st = entry_setup (e, s, cm);
    if (st != BP_OK) {
      entry_free (e);
      pthread_mutex_unlock (&cache_lock);
      return NULL;
    }
    e->next = buckets[b];
    buckets[b] = e;
  }
  ConvAlgo *a = dir == 0 ? &e->fwd : dir == 1 ? &e->bwd_data : &e->bwd_filter;
  if (!a->chosen) {
    if (a->desc) {
      cudnnDestroyConvolutionDescriptor (a->desc);
      a->desc = NULL;
    }
    st = choose (e, a, dir, s, cm);
  }
  pthread_mutex_unlock (&cache_lock);
  return st == BP_OK ? e : NULL;
}

/* Workspace from the caching allocator (NULL for 0 bytes). */
static BpStatus
workspace_get (void **ws, size_t bytes)
{
  *ws = NULL;
  if (bytes == 0)
    return BP_OK;
  *ws = bp_cuda_alloc (bytes);
  return *ws ? BP_OK : bp_last_status ();
}

static BpStatus
conv_shape_check (const BpConv2dShape *s)
{
  if (fits_int (s))
    return BP_OK;
  bp_set_error (BP_ERR_UNSUPPORTED, "conv2d on cuda: sizes above 2^31 (input [%lld, %lld, %lld, "
                "%lld])", (long long) s->n, (long long) s->c_in, (long long) s->h,
                (long long) s->w);
  return BP_ERR_UNSUPPORTED;
}

static BpStatus
conv_forward (float *out, const float *x, const float *w, const float *bias,
              const BpConv2dShape *s)
{
  /* out (N,Cout,Ho,Wo) = conv (x (N,Cin,H,W), w (Cout,Cin/g,Kh,Kw)) + bias (Cout) */
  int64_t p = s->h_out * s->w_out, total = s->n * s->c_out * p;
  cudaStream_t st = bp_cuda_ctx.stream;
  if (total == 0)
    return BP_OK;
  if (s->c_in == 0) {
    bias_fill_kernel<<<bp_cuda_grid (total, BP_BLOCK), BP_BLOCK, 0, st>>> (out, bias, total,
                                                                          s->c_out, p);
    BP_CUDA_CHECK_LAUNCH ("conv2d bias");
    return BP_OK;
  }
  BpStatus status = conv_shape_check (s);
  if (status != BP_OK)
    return status;
  ConvEntry *e = lookup (s, 0, false);
  if (!e)
    return bp_last_status ();
  void *ws;
  if ((status = workspace_get (&ws, e->fwd.workspace)) != BP_OK)
    return status;
  const float one = 1.0f, zero = 0.0f;
  status = BP_CUDNN_TRY (cudnnConvolutionForward (
      bp_cuda_ctx.cudnn, &one, e->x_desc, x, e->w_desc, w, e->fwd.desc,
      (cudnnConvolutionFwdAlgo_t) e->fwd.algo, ws, e->fwd.workspace, &zero, e->y_desc, out));
  if (ws)
    bp_cuda_free (ws, e->fwd.workspace);
  if (status != BP_OK || !bias)
    return status;
  bias_add_kernel<<<bp_cuda_grid (total, BP_BLOCK), BP_BLOCK, 0, st>>> (out, bias, total,
                                                                       s->c_out, p);
  BP_CUDA_CHECK_LAUNCH ("conv2d bias");
  return BP_OK;
}

static BpStatus
conv_backward (float *dx, float *dw, const float *dout, const float *x, const float *w,
               const BpConv2dShape *s)
{
  /* dx (N,Cin,H,W) += input gradient, dw (Cout,Cin/g,Kh,Kw) += weight gradient (beta = 1) */
  if (s->n * s->c_out * s->h_out * s->w_out == 0 || s->c_in == 0)
    return BP_OK;
  BpStatus status = conv_shape_check (s);
  if (status != BP_OK)
    return status;
  const float one = 1.0f;
  void *ws;
  if (dx) {
    ConvEntry *e = lookup (s, 1, false);
    if (!e)
      return bp_last_status ();
    if ((status = workspace_get (&ws, e->bwd_data.workspace)) != BP_OK)
      return status;
    status = BP_CUDNN_TRY (cudnnConvolutionBackwardData (
        bp_cuda_ctx.cudnn, &one, e->w_desc, w, e->y_desc, dout, e->bwd_data.desc,
        (cudnnConvolutionBwdDataAlgo_t) e->bwd_data.algo, ws, e->bwd_data.workspace, &one,
        e->x_desc, dx));
    if (ws)
      bp_cuda_free (ws, e->bwd_data.workspace);
    if (status != BP_OK)
      return status;
  }
  if (dw) {
    ConvEntry *e = lookup (s, 2, false);
    if (!e)
      return bp_last_status ();
    if ((status = workspace_get (&ws, e->bwd_filter.workspace)) != BP_OK)
      return status;
    status = BP_CUDNN_TRY (cudnnConvolutionBackwardFilter (
        bp_cuda_ctx.cudnn, &one, e->x_desc, x, e->y_desc, dout, e->bwd_filter.desc,
        (cudnnConvolutionBwdFilterAlgo_t) e->bwd_filter.algo, ws, e->bwd_filter.workspace, &one,
        e->w_desc, dw));
    if (ws)
      bp_cuda_free (ws, e->bwd_filter.workspace);
  }
  return status;
}

/* ---- bfloat16 convolution (BP_PRECISION_BF16) ----
 * cuDNN's legacy API has no bfloat16-input, float32-output configuration: x, w and y are all
 * bfloat16 (PSEUDO_BFLOAT16: float32 compute). So the operands are rounded into a bfloat16
 * workspace, the result comes back as bfloat16 and is widened into the float32 output (or
 * added to the float32 gradient): the products are the CPU's up to the order of the sums,
 * the results additionally rounded to bfloat16 (a relative 2^-9 at most), as in torch.autocast. */

/* Elements rounded up to 128 (256 bytes), so that every part of the workspace is aligned. */
static int64_t
aligned (int64_t n)
{
  return (n + 127) / 128 * 128;
}

static BpStatus
conv_forward_bf16 (float *out, const float *x, const float *w, const float *bias,
                   const BpConv2dShape *s)
{
  /* out (N,Cout,Ho,Wo) = widen (conv (bf16 (x), bf16 (w))) + bias (Cout) */
  int64_t p = s->h_out * s->w_out, total = s->n * s->c_out * p;
  if (total == 0 || s->c_in == 0)
    return conv_forward (out, x, w, bias, s); /* nothing to multiply: the bias alone */
  cudaStream_t st = bp_cuda_ctx.stream;
  BpStatus status = conv_shape_check (s);
  if (status != BP_OK)
    return status;
  ConvEntry *e = lookup (s, 0, true);
  if (!e)
    return bp_last_status ();
  int64_t nx = s->n * s->c_in * s->h * s->w, nw = s->c_out * (s->c_in / s->groups) * s->kh * s->kw;
  size_t bytes = sizeof (uint16_t) * (size_t) (aligned (nx) + aligned (nw) + total);
  uint16_t *xb = (uint16_t *) bp_cuda_alloc (bytes);
  if (!xb)
    return bp_last_status ();
  uint16_t *wb = xb + aligned (nx), *yb = wb + aligned (nw);
  void *ws = NULL;
  status = bp_cuda_to_bf16 (st, xb, x, nx, wb, w, nw);
  if (status == BP_OK)
    status = workspace_get (&ws, e->fwd.workspace);
  if (status == BP_OK) {
    const float one = 1.0f, zero = 0.0f;
    status = BP_CUDNN_TRY (cudnnConvolutionForward (
        bp_cuda_ctx.cudnn, &one, e->x_desc, xb, e->w_desc, wb, e->fwd.desc,
        (cudnnConvolutionFwdAlgo_t) e->fwd.algo, ws, e->fwd.workspace, &zero, e->y_desc, yb));
  }
  if (status == BP_OK)
    status = bp_cuda_from_bf16 (st, out, yb, total, false);
  if (ws)
    bp_cuda_free (ws, e->fwd.workspace);
  bp_cuda_free (xb, bytes); /* stream order: the work above runs before any reuse */
  if (status != BP_OK || !bias)
    return status;
  bias_add_kernel<<<bp_cuda_grid (total, BP_BLOCK), BP_BLOCK, 0, st>>> (out, bias, total,
                                                                       s->c_out, p);
  BP_CUDA_CHECK_LAUNCH ("conv2d bias");
  return BP_OK;
}

static BpStatus
conv_backward_bf16 (float *dx, float *dw, const float *dout, const float *x, const float *w,
                    const BpConv2dShape *s)
{
  /* dx (N,Cin,H,W) += widen (conv2d's input gradient from bf16 (dout), bf16 (w)),
   * dw (Cout,Cin/g,Kh,Kw) += widen (its weight gradient from bf16 (dout), bf16 (x)) */
  int64_t ny = s->n * s->c_out * s->h_out * s->w_out;
  if (ny == 0 || s->c_in == 0 || (!dx && !dw))
    return BP_OK;
  cudaStream_t st = bp_cuda_ctx.stream;
  BpStatus status = conv_shape_check (s);
  if (status != BP_OK)
    return status;
  ConvEntry *ed = dx ? lookup (s, 1, true) : NULL, *ef = dw ? lookup (s, 2, true) : NULL;
  if ((dx && !ed) || (dw && !ef))
    return bp_last_status ();
  int64_t nx = s->n * s->c_in * s->h * s->w, nw = s->c_out * (s->c_in / s->groups) * s->kh * s->kw;
  /* dout, w (for dx), x (for dw), and one result buffer used by the two in turn */
  int64_t w_part = dx ? aligned (nw) : 0, x_part = dw ? aligned (nx) : 0;
  int64_t n_res = dx && nx > nw ? nx : nw;
  size_t bytes = sizeof (uint16_t) * (size_t) (aligned (ny) + w_part + x_part + n_res);
  uint16_t *gb = (uint16_t *) bp_cuda_alloc (bytes);
  if (!gb)
    return bp_last_status ();
  uint16_t *wb = gb + aligned (ny), *xb = wb + w_part, *rb = xb + x_part;
  const float one = 1.0f, zero = 0.0f;
  void *ws = NULL;
  status = bp_cuda_to_bf16 (st, gb, dout, ny, dx ? wb : NULL, w, dx ? nw : 0);
  if (status == BP_OK && dx) {
    status = workspace_get (&ws, ed->bwd_data.workspace);
    if (status == BP_OK)
      status = BP_CUDNN_TRY (cudnnConvolutionBackwardData (
          bp_cuda_ctx.cudnn, &one, ed->w_desc, wb, ed->y_desc, gb, ed->bwd_data.desc,
          (cudnnConvolutionBwdDataAlgo_t) ed->bwd_data.algo, ws, ed->bwd_data.workspace, &zero,
          ed->x_desc, rb));
    if (status == BP_OK)
      status = bp_cuda_from_bf16 (st, dx, rb, nx, true);
    if (ws)
      bp_cuda_free (ws, ed->bwd_data.workspace);
    ws = NULL;
  }
  if (status == BP_OK && dw) {
    status = bp_cuda_to_bf16 (st, xb, x, nx, NULL, NULL, 0);
    if (status == BP_OK)
      status = workspace_get (&ws, ef->bwd_filter.workspace);
    if (status == BP_OK)
      status = BP_CUDNN_TRY (cudnnConvolutionBackwardFilter (
          bp_cuda_ctx.cudnn, &one, ef->x_desc, xb, ef->y_desc, gb, ef->bwd_filter.desc,
          (cudnnConvolutionBwdFilterAlgo_t) ef->bwd_filter.algo, ws, ef->bwd_filter.workspace,
          &zero, ef->w_desc, rb));
    if (status == BP_OK)
      status = bp_cuda_from_bf16 (st, dw, rb, nw, true);
    if (ws)
      bp_cuda_free (ws, ef->bwd_filter.workspace);
  }
  bp_cuda_free (gb, bytes); /* stream order: the work above runs before any reuse */
  return status;
}

static BpStatus
bias_grad (float *db, const float *dout, const BpConv2dShape *s)
{
  /* db (Cout) += sum of dout (N,Cout,Ho,Wo) over N, Ho, Wo */
  cudaStream_t st = bp_cuda_ctx.stream;
  int split;
  size_t bytes;
  double2 *partial = bp_cuda_chan_partials (st, s->n, s->c_out, s->h_out * s->w_out,
                                            BiasGradTerm{dout}, &split, &bytes);
  if (!partial)
    return bp_last_status ();
  bias_grad_finish_kernel<<<bp_cuda_grid (s->c_out, BP_BLOCK), BP_BLOCK, 0, st>>> (
      db, partial, s->c_out, split);
  BpStatus status = BP_CUDA_LAUNCH_TRY ("conv2d bias gradient");
  bp_cuda_free (partial, bytes);
  return status;
}

/* ---- the table ---- */

static BpStatus
cuda_conv2d_forward (float *out, const float *x, const float *w, const float *bias,
                     const BpConv2dShape *s)
{
  if (!bp_cuda_begin ())
    return BP_ERR_DEVICE;
  return conv_forward (out, x, w, bias, s);
}

static BpStatus
cuda_conv2d_backward (float *dx, float *dw, const float *dout, const float *x, const float *w,
                      const BpConv2dShape *s)
{
  if (!bp_cuda_begin ())
    return BP_ERR_DEVICE;
  /* the backward pass does not look at the status: keep it for synchronize too */
  BpStatus status = conv_backward (dx, dw, dout, x, w, s);
  bp_cuda_defer (status);
  return status;
}

static BpStatus
cuda_conv2d_forward_bf16 (float *out, const float *x, const float *w, const float *bias,
                          const BpConv2dShape *s)
{
  if (!bp_cuda_begin ())
    return BP_ERR_DEVICE;
  return conv_forward_bf16 (out, x, w, bias, s);
}

static BpStatus
cuda_conv2d_backward_bf16 (float *dx, float *dw, const float *dout, const float *x,
                           const float *w, const BpConv2dShape *s)
{
  if (!bp_cuda_begin ())
    return BP_ERR_DEVICE;
  BpStatus status = conv_backward_bf16 (dx, dw, dout, x, w, s);
  bp_cuda_defer (status);
  return status;
}

static void
cuda_conv2d_backward_bias (float *db, const float *dout, const BpConv2dShape *s)
{
  if (s->c_out > 0 && bp_cuda_begin ())
    bp_cuda_defer (bias_grad (db, dout, s));
}

#define POOL_LAUNCH(name, kernel, n, ...)                                                      \
  do {                                                                                         \
    if ((n) <= 0 || !bp_cuda_begin ())                                                         \
      return;                                                                                  \
    kernel<<<bp_cuda_grid ((n), BP_BLOCK), BP_BLOCK, 0, bp_cuda_ctx.stream>>> (__VA_ARGS__);  \
    bp_cuda_defer (BP_CUDA_LAUNCH_TRY (name));                                                 \
  } while (0)

static void
cuda_max_pool2d_forward (float *out, int32_t *argmax, const float *x, const BpPool2dShape *s)
{
  POOL_LAUNCH ("max_pool2d", max_pool_forward_kernel, s->n * s->c * s->h_out * s->w_out, out,
               argmax, x, *s);
}

static void
cuda_max_pool2d_backward (float *dx, const float *dout, const int32_t *argmax,
                          const BpPool2dShape *s)
{
  POOL_LAUNCH ("max_pool2d backward", max_pool_backward_kernel, s->n * s->c * s->h * s->w, dx,
               dout, argmax, *s);
}

static void
cuda_avg_pool2d_forward (float *out, const float *x, const BpPool2dShape *s)
{
  POOL_LAUNCH ("avg_pool2d", avg_pool_forward_kernel, s->n * s->c * s->h_out * s->w_out, out, x,
               *s);
}

static void
cuda_avg_pool2d_backward (float *dx, const float *dout, const BpPool2dShape *s)
{
  POOL_LAUNCH ("avg_pool2d backward", avg_pool_backward_kernel, s->n * s->c * s->h * s->w, dx,
               dout, *s);
}

static void
cuda_adaptive_avg_pool2d_forward (float *out, const float *x, const BpPool2dShape *s)
{
  POOL_LAUNCH ("adaptive_avg_pool2d", adaptive_avg_forward_kernel,
               s->n * s->c * s->h_out * s->w_out, out, x, *s);
}

static void
cuda_adaptive_avg_pool2d_backward (float *dx, const float *dout, const BpPool2dShape *s)
{
  POOL_LAUNCH ("adaptive_avg_pool2d backward", adaptive_avg_backward_kernel,
               s->n * s->c * s->h * s->w, dx, dout, *s);
}

const BpConvKernels bp_cuda_conv_kernels = {
  .conv2d_forward = cuda_conv2d_forward,
  .conv2d_backward = cuda_conv2d_backward,
  .conv2d_backward_bias = cuda_conv2d_backward_bias,
  .max_pool2d_forward = cuda_max_pool2d_forward,
  .max_pool2d_backward = cuda_max_pool2d_backward,
  .avg_pool2d_forward = cuda_avg_pool2d_forward,
  .avg_pool2d_backward = cuda_avg_pool2d_backward,
  .adaptive_avg_pool2d_forward = cuda_adaptive_avg_pool2d_forward,
  .adaptive_avg_pool2d_backward = cuda_adaptive_avg_pool2d_backward,
};

const BpConvKernels bp_cuda_conv_bf16_kernels = {
  .conv2d_forward = cuda_conv2d_forward_bf16,
  .conv2d_backward = cuda_conv2d_backward_bf16,
  .conv2d_backward_bias = cuda_conv2d_backward_bias,
  .max_pool2d_forward = cuda_max_pool2d_forward,
  .max_pool2d_backward = cuda_max_pool2d_backward,
  .avg_pool2d_forward = cuda_avg_pool2d_forward,
  .avg_pool2d_backward = cuda_avg_pool2d_backward,
  .adaptive_avg_pool2d_forward = cuda_adaptive_avg_pool2d_forward,
  .adaptive_avg_pool2d_backward = cuda_adaptive_avg_pool2d_backward,
};
