/* norm.cu: CUDA kernels of the norm family. Batch norm in training runs through cuDNN
 * (cudnnBatchNormalizationForwardTraining / Backward, spatial mode; its running variance is
 * the unbiased one, as PyTorch's) unless bp_cuda_set_cudnn_batch_norm (false); the own kernels
 * below do eval mode, the cases cuDNN's call cannot express (no input gradient wanted, sizes
 * above 2^31) and everything with cuDNN switched off. Layer norm is own kernels: one block per
 * row, column sums for the parameter gradients in a fixed order. */
#include "cuda-device.cuh"

#include <limits.h>

/* ---- batch norm, own kernels: x (N,C,S), channel c's values are N runs of S ---- */

struct BnSumTerm {
  const float *x;
  __device__ double2 operator() (int64_t ch, int64_t idx) const
  {
    return make_double2 ((double) x[idx], 0.0);
  }
};

struct BnVarTerm {
  const float *x, *mean;
  __device__ double2 operator() (int64_t ch, int64_t idx) const
  {
    float d = x[idx] - mean[ch];
    return make_double2 ((double) (d * d), 0.0);
  }
};

struct BnGradTerm {
  const float *dout, *x, *mean;
  __device__ double2 operator() (int64_t ch, int64_t idx) const
  {
    float g = dout[idx];
    return make_double2 ((double) g, (double) (g * (x[idx] - mean[ch])));
  }
};

__global__ static void
bn_mean_kernel (float *save_mean, const double2 *partial, int split, int64_t c, int64_t m)
{
  /* save_mean (C) = channel sums / M */
  BP_GRID_LOOP (ch, c)
    save_mean[ch] = (float) (bp_chan_total (partial, ch, split).x / (double) m);
}

__global__ static void
bn_var_kernel (float *save_invstd, float *running_mean, float *running_var,
               const float *save_mean, const double2 *partial, int split, int64_t c, int64_t m,
               float momentum, float eps)
{
  /* save_invstd (C) = 1 / sqrt (biased var + eps); running statistics (C) updated with the
   * unbiased variance (when not NULL) */
  BP_GRID_LOOP (ch, c) {
    double var = bp_chan_total (partial, ch, split).x / (double) m;
    save_invstd[ch] = (float) (1.0 / sqrt (var + (double) eps));
    if (running_mean) {
      double unbiased = m > 1 ? var * (double) m / (double) (m - 1) : var;
      running_mean[ch] = (1.0f - momentum) * running_mean[ch] + momentum * save_mean[ch];
      running_var[ch] = (1.0f - momentum) * running_var[ch] + momentum * (float) unbiased;
    }
  }
}

__global__ static void
bn_eval_stats_kernel (float *save_mean, float *save_invstd, const float *running_mean,
                      const float *running_var, int64_t c, float eps)
{
  /* save_mean, save_invstd (C) from the running statistics */
  BP_GRID_LOOP (ch, c) {
    save_mean[ch] = running_mean[ch];
    save_invstd[ch] = (float) (1.0 / sqrt ((double) running_var[ch] + (double) eps));
  }
}

__global__ static void
bn_apply_kernel (float *out, const float *x, const float *mean, const float *invstd,
                 const float *weight, const float *bias, int64_t total, int64_t c, int64_t s)
{
  /* out (N,C,S) = x * scale + shift, scale = weight * invstd, shift = bias - mean * scale */
  BP_GRID_LOOP (i, total) {
    int64_t ch = (i / s) % c;
    float scale = (weight ? weight[ch] : 1.0f) * invstd[ch];
    float shift = (bias ? bias[ch] : 0.0f) - mean[ch] * scale;
    out[i] = x[i] * scale + shift;
  }
}

__global__ static void
bn_grad_finish_kernel (float *coef, float *dweight, float *dbias, const double2 *partial,
                       int split, const float *mean, const float *invstd, const float *weight,
                       int64_t c, int64_t m, bool training)
{
  /* dweight, dbias (C) += sum (dy * xhat), sum (dy); coef (3, C) = a, b, k of
   * dx = a dy + b x + k (cpu/norm.c's bn_backward_coefs), when coef is not NULL */
  BP_GRID_LOOP (ch, c) {
    double2 t = bp_chan_total (partial, ch, split);
    double sum_dy = t.x, sum_dyxc = t.y;
    if (dweight)
      dweight[ch] += (float) (sum_dyxc * invstd[ch]);
    if (dbias)
      dbias[ch] += (float) sum_dy;
    if (!coef)
      continue;
    float is = invstd[ch], a = (weight ? weight[ch] : 1.0f) * is, b = 0.0f, k = 0.0f;
    if (training) {
      b = (float) (-(double) a * is * is * sum_dyxc / (double) m);
      k = (float) (-(double) a * sum_dy / (double) m - (double) b * mean[ch]);
    }
    coef[ch] = a;
    coef[c + ch] = b;
    coef[2 * c + ch] = k;
  }
}

__global__ static void
bn_dx_kernel (float *dx, const float *dout, const float *x, const float *coef, int64_t total,
              int64_t c, int64_t s)
{
  /* dx (N,C,S) += a dy + b x + k */
  BP_GRID_LOOP (i, total) {
    int64_t ch = (i / s) % c;
    dx[i] += coef[ch] * dout[i] + coef[c + ch] * x[i] + coef[2 * c + ch];
  }
}

#define GRID(n) bp_cuda_grid ((n), BP_BLOCK), BP_BLOCK, 0, st

static BpStatus
bn_forward_own (float *out, float *save_mean, float *save_invstd, float *running_mean,
                float *running_var, const float *x, const float *weight, const float *bias,
                int64_t n, int64_t c, int64_t s, bool training, float momentum, float eps)
{
  cudaStream_t st = bp_cuda_ctx.stream;
  int64_t m = n * s;
  if (training) {
    int split;
    size_t bytes;
    double2 *partial = bp_cuda_chan_partials (st, n, c, s, BnSumTerm{x}, &split, &bytes);
    if (!partial)
      return bp_last_status ();
    bn_mean_kernel<<<GRID (c)>>> (save_mean, partial, split, c, m);
    BpStatus status = BP_CUDA_LAUNCH_TRY ("batch_norm mean");
    bp_cuda_free (partial, bytes);
    if (status != BP_OK)
      return status;
    partial = bp_cuda_chan_partials (st, n, c, s, BnVarTerm{x, save_mean}, &split, &bytes);
    if (!partial)
      return bp_last_status ();
    bn_var_kernel<<<GRID (c)>>> (save_invstd, running_mean, running_var, save_mean, partial,
                                 split, c, m, momentum, eps);
    status = BP_CUDA_LAUNCH_TRY ("batch_norm variance");
    bp_cuda_free (partial, bytes);
    if (status != BP_OK)
      return status;
  } else {
    bn_eval_stats_kernel<<<GRID (c)>>> (save_mean, save_invstd, running_mean, running_var, c,
                                        eps);
    BP_CUDA_CHECK_LAUNCH ("batch_norm eval statistics");
  }
  if (n * c * s > 0) {
    bn_apply_kernel<<<GRID (n * c * s)>>> (out, x, save_mean, save_invstd, weight, bias,
                                           n * c * s, c, s);
    BP_CUDA_CHECK_LAUNCH ("batch_norm");
  }
  return BP_OK;
}

static BpStatus
bn_backward_own (float *dx, float *dweight, float *dbias, const float *dout, const float *x,
                 const float *mean, const float *invstd, const float *weight, int64_t n,
                 int64_t c, int64_t s, bool training)
{
  cudaStream_t st = bp_cuda_ctx.stream;
  int split;
  size_t bytes, coef_bytes = (size_t) (3 * c) * sizeof (float);
  float *coef = NULL;
  if (dx && !(coef = (float *) bp_cuda_alloc (coef_bytes)))
    return bp_last_status ();
  double2 *partial = bp_cuda_chan_partials (st, n, c, s, BnGradTerm{dout, x, mean}, &split,
                                            &bytes);
  BpStatus status = partial ? BP_OK : bp_last_status ();
  if (status == BP_OK) {
    bn_grad_finish_kernel<<<GRID (c)>>> (coef, dweight, dbias, partial, split, mean, invstd,
                                         weight, c, n * s, training);
    status = BP_CUDA_LAUNCH_TRY ("batch_norm backward sums");
    bp_cuda_free (partial, bytes);
  }
  if (status == BP_OK && dx && n * c * s > 0) {
    bn_dx_kernel<<<GRID (n * c * s)>>> (dx, dout, x, coef, n * c * s, c, s);
    status = BP_CUDA_LAUNCH_TRY ("batch_norm backward");
  }
  if (coef)
    bp_cuda_free (coef, coef_bytes);
  return status;
}

/* ---- batch norm through cuDNN ---- */

/* Descriptors for x viewed as (N,C,S,1) and the per-channel tensors (1,C,1,1). */
typedef struct {
  cudnnTensorDescriptor_t x, ch;
} BnDescs;

static void
bn_descs_free (BnDescs *d)
{
  if (d->x)
    cudnnDestroyTensorDescriptor (d->x);
  if (d->ch)
    cudnnDestroyTensorDescriptor (d->ch);
}

static BpStatus
bn_descs (BnDescs *d, int64_t n, int64_t c, int64_t s)
{
  d->x = d->ch = NULL;
  BP_CUDNN_CHECK (cudnnCreateTensorDescriptor (&d->x));
  BP_CUDNN_CHECK (cudnnCreateTensorDescriptor (&d->ch));
  BP_CUDNN_CHECK (cudnnSetTensor4dDescriptor (d->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int) n,
                                              (int) c, (int) s, 1));
  BP_CUDNN_CHECK (cudnnSetTensor4dDescriptor (d->ch, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1,
                                              (int) c, 1, 1));
  return BP_OK;
}

/* Whether cuDNN takes this shape (it wants int sizes). */
static bool
cudnn_bn_fits (int64_t n, int64_t c, int64_t s)
{
  return bp_cuda_ctx.cudnn_batch_norm && n > 0 && c > 0 && s > 0 && n <= INT_MAX &&
         c <= INT_MAX && s <= INT_MAX && n * c * s <= INT_MAX;
}

/* c floats of `value` for a NULL weight or bias; freed by the caller (c floats). */
static float *
channel_constant (int64_t c, float value)
{
  float *p = (float *) bp_cuda_alloc ((size_t) c * sizeof (float));
  if (p && bp_cuda_fill (bp_cuda_ctx.stream, p, value, c) != BP_OK) {
    bp_cuda_free (p, (size_t) c * sizeof (float));
    p = NULL;
  }
  return p;
}

static BpStatus
bn_forward_cudnn (float *out, float *save_mean, float *save_invstd, float *running_mean,
                  float *running_var, const float *x, const float *weight, const float *bias,
                  int64_t n, int64_t c, int64_t s, float momentum, float eps)
{
  size_t cb = (size_t) c * sizeof (float);
  float *ones = weight ? NULL : channel_constant (c, 1.0f);
  float *zeros = bias ? NULL : channel_constant (c, 0.0f);
  BnDescs d = { NULL, NULL };
  BpStatus status = (weight || ones) && (bias || zeros) ? BP_OK : bp_last_status ();
  if (status == BP_OK)
    status = bn_descs (&d, n, c, s);
  if (status == BP_OK) {
    const float one = 1.0f, zero = 0.0f;
    /* running = (1 - momentum) running + momentum batch, the variance unbiased */
    status = BP_CUDNN_TRY (cudnnBatchNormalizationForwardTraining (
        bp_cuda_ctx.cudnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero, d.x, x, d.x, out, d.ch,
        weight ? weight : ones, bias ? bias : zeros, (double) momentum, running_mean,
        running_var, (double) eps, save_mean, save_invstd));
  }
  bn_descs_free (&d);
  if (ones)
    bp_cuda_free (ones, cb);
  if (zeros)
    bp_cuda_free (zeros, cb);
  return status;
}

static BpStatus
bn_backward_cudnn (float *dx, float *dweight, float *dbias, const float *dout, const float *x,
                   const float *mean, const float *invstd, const float *weight, int64_t n,
                   int64_t c, int64_t s)
{
  /* cuDNN always writes dx and both parameter gradients: scratch stands in for the ones not
   * wanted (and ones for a NULL weight). Every output accumulates (beta = 1). */
  size_t cb = (size_t) c * sizeof (float);
  float *ones = weight ? NULL : channel_constant (c, 1.0f);
  float *dw_tmp = dweight ? NULL : (float *) bp_cuda_alloc (cb);
  float *db_tmp = dbias ? NULL : (float *) bp_cuda_alloc (cb);
  BnDescs d = { NULL, NULL };
  BpStatus status = (weight || ones) && (dweight || dw_tmp) && (dbias || db_tmp)
                      ? BP_OK
                      : bp_last_status ();
  if (status == BP_OK)
    status = bn_descs (&d, n, c, s);
  if (status == BP_OK) {
    const float one = 1.0f;
    /* the saved mean and 1/std already hold eps: cuDNN's epsilon argument is not used with
     * them, but must be valid */
    status = BP_CUDNN_TRY (cudnnBatchNormalizationBackward (
        bp_cuda_ctx.cudnn, CUDNN_BATCHNORM_SPATIAL, &one, &one, &one, &one, d.x, x, d.x, dout,
        d.x, dx, d.ch, weight ? weight : ones, dweight ? dweight : dw_tmp,
        dbias ? dbias : db_tmp, 1e-5, mean, invstd));
  }
  bn_descs_free (&d);
  if (ones)
    bp_cuda_free (ones, cb);
  if (dw_tmp)
    bp_cuda_free (dw_tmp, cb);
  if (db_tmp)
    bp_cuda_free (db_tmp, cb);
  return status;
}

/* ---- layer norm: x (R,D), one block per row ---- */

#define LN_BLOCK 256

__global__ static void
ln_forward_kernel (float *out, float *save_mean, float *save_invstd, const float *x,
                   const float *weight, const float *bias, int64_t d, float eps)
{
  /* row blockIdx.x of out (R,D), save_mean (R), save_invstd (R) */
  int64_t r = blockIdx.x;
  const float *xr = x + r * d;
  float *orow = out + r * d;
  double sum = 0.0;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
    sum += xr[j];
  float mean = (float) (bp_block_sum (sum) / (double) d);
  double sq = 0.0;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    float c = xr[j] - mean;
    sq += (double) (c * c);
  }
  float invstd = (float) (1.0 / sqrt (bp_block_sum (sq) / (double) d + (double) eps));
  if (threadIdx.x == 0) {
    save_mean[r] = mean;
    save_invstd[r] = invstd;
  }
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    float y = (xr[j] - mean) * invstd;
    if (weight)
      y *= weight[j];
    if (bias)
      y += bias[j];
    orow[j] = y;
  }
}

__global__ static void
ln_backward_dx_kernel (float *dx, const float *dout, const float *x, const float *mean,
                       const float *invstd, const float *weight, int64_t d)
{
  /* row blockIdx.x: with g = dout * weight and xhat = (x - mean) * invstd,
   * dx += invstd * (g - mean (g) - xhat * mean (g * xhat)) */
  int64_t r = blockIdx.x;
  const float *xr = x + r * d, *gr = dout + r * d;
  float *dr = dx + r * d;
  float mu = mean[r], is = invstd[r];
  double sum_g = 0.0, sum_gx = 0.0;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    float g = weight ? gr[j] * weight[j] : gr[j];
    sum_g += g;
    sum_gx += (double) (g * (xr[j] - mu) * is);
  }
  float mean_g = (float) (bp_block_sum (sum_g) / (double) d);
  float mean_gx = (float) (bp_block_sum (sum_gx) / (double) d);
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    float g = weight ? gr[j] * weight[j] : gr[j];
    dr[j] += is * (g - mean_g - (xr[j] - mu) * is * mean_gx);
  }
}

/* Column sums for the parameter gradients: block (column block, p) of (., P) sums the rows
 * [R p / P, R (p + 1) / P); then one thread per column adds the P partials in order. */
#define LN_MAX_SPLIT 64
#define LN_ROWS_PER_SPLIT 64

__global__ static void
ln_param_partials_kernel (double2 *partial, const float *dout, const float *x,
                          const float *mean, const float *invstd, int64_t rows, int64_t d)
{
  /* partial (P, D): sums of dout * xhat and dout for column j */
  int64_t j = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;
  int p = blockIdx.y, n_split = gridDim.y;
  if (j >= d)
    return;
  int64_t r0 = rows * p / n_split, r1 = rows * (p + 1) / n_split;
  double aw = 0.0, ab = 0.0;
  for (int64_t r = r0; r < r1; r++) {
    float g = dout[r * d + j];
    aw += (double) (g * (x[r * d + j] - mean[r]) * invstd[r]);
    ab += g;
  }
  partial[(int64_t) p * d + j] = make_double2 (aw, ab);
}

__global__ static void
ln_param_finish_kernel (float *dweight, float *dbias, const double2 *partial, int split,
                        int64_t d)
{
  /* dweight, dbias (D) += the column sums */
  BP_GRID_LOOP (j, d) {
    double aw = 0.0, ab = 0.0;
    for (int p = 0; p < split; p++) {
      aw += partial[(int64_t) p * d + j].x;
      ab += partial[(int64_t) p * d + j].y;
    }
    if (dweight)
      dweight[j] += (float) aw;
    if (dbias)
      dbias[j] += (float) ab;
  }
}

static BpStatus
ln_backward (float *dx, float *dweight, float *dbias, const float *dout, const float *x,
             const float *mean, const float *invstd, const float *weight, int64_t rows,
             int64_t d)
{
  cudaStream_t st = bp_cuda_ctx.stream;
  if (dx) {
    ln_backward_dx_kernel<<<(unsigned) rows, LN_BLOCK, 0, st>>> (dx, dout, x, mean, invstd,
                                                                  weight, d);
    BP_CUDA_CHECK_LAUNCH ("layer_norm backward");
  }
  if (!dweight && !dbias)
    return BP_OK;
  int64_t split = (rows + LN_ROWS_PER_SPLIT - 1) / LN_ROWS_PER_SPLIT;
  split = split < 1 ? 1 : split > LN_MAX_SPLIT ? LN_MAX_SPLIT : split;
  size_t bytes = (size_t) split * (size_t) d * sizeof (double2);
  double2 *partial = (double2 *) bp_cuda_alloc (bytes);
  if (!partial)
    return bp_last_status ();
  dim3 grid ((unsigned) ((d + LN_BLOCK - 1) / LN_BLOCK), (unsigned) split);
  ln_param_partials_kernel<<<grid, LN_BLOCK, 0, st>>> (partial, dout, x, mean, invstd, rows, d);
  BpStatus status = BP_CUDA_LAUNCH_TRY ("layer_norm parameter gradients");
  if (status == BP_OK) {
    ln_param_finish_kernel<<<GRID (d)>>> (dweight, dbias, partial, (int) split, d);
    status = BP_CUDA_LAUNCH_TRY ("layer_norm parameter gradients");
  }
  bp_cuda_free (partial, bytes);
  return status;
}

/* ---- the table ---- */

static void
cuda_batch_norm_forward (float *out, float *save_mean, float *save_invstd, float *running_mean,
                         float *running_var, const float *x, const float *weight,
                         const float *bias, int64_t n, int64_t c, int64_t s, bool training,
                         float momentum, float eps)
{
  if (c <= 0 || !bp_cuda_begin ())
    return;
  BpStatus status;
  if (training && cudnn_bn_fits (n, c, s))
    status = bn_forward_cudnn (out, save_mean, save_invstd, running_mean, running_var, x, weight,
                               bias, n, c, s, momentum, eps);
  else
    status = bn_forward_own (out, save_mean, save_invstd, running_mean, running_var, x, weight,
                             bias, n, c, s, training, momentum, eps);
  bp_cuda_defer (status);
}

static void
cuda_batch_norm_backward (float *dx, float *dweight, float *dbias, const float *dout,
                          const float *x, const float *mean, const float *invstd,
                          const float *weight, int64_t n, int64_t c, int64_t s, bool training)
{
  if (c <= 0 || !bp_cuda_begin ())
    return;
  BpStatus status;
  if (training && dx && cudnn_bn_fits (n, c, s))
    status = bn_backward_cudnn (dx, dweight, dbias, dout, x, mean, invstd, weight, n, c, s);
  else
    status = bn_backward_own (dx, dweight, dbias, dout, x, mean, invstd, weight, n, c, s,
                              training);
  bp_cuda_defer (status);
}

static void
cuda_layer_norm_forward (float *out, float *save_mean, float *save_invstd, const float *x,
                         const float *weight, const float *bias, int64_t rows, int64_t d,
                         float eps)
{
  if (rows <= 0 || d <= 0 || !bp_cuda_begin ())
    return;
  if (rows > INT_MAX) {
    bp_set_error (BP_ERR_UNSUPPORTED, "layer_norm on cuda: more than 2^31 rows");
    bp_cuda_defer (BP_ERR_UNSUPPORTED);
    return;
  }
  ln_forward_kernel<<<(unsigned) rows, LN_BLOCK, 0, bp_cuda_ctx.stream>>> (
      out, save_mean, save_invstd, x, weight, bias, d, eps);
  bp_cuda_defer (BP_CUDA_LAUNCH_TRY ("layer_norm"));
}

static void
cuda_layer_norm_backward (float *dx, float *dweight, float *dbias, const float *dout,
                          const float *x, const float *mean, const float *invstd,
                          const float *weight, int64_t rows, int64_t d)
{
  if (rows <= 0 || d <= 0 || !bp_cuda_begin ())
    return;
  if (rows > INT_MAX) {
    bp_set_error (BP_ERR_UNSUPPORTED, "layer_norm on cuda: more than 2^31 rows");
    bp_cuda_defer (BP_ERR_UNSUPPORTED);
    return;
  }
  bp_cuda_defer (ln_backward (dx, dweight, dbias, dout, x, mean, invstd, weight, rows, d));
}

const BpNormKernels bp_cuda_norm_kernels = {
  .batch_norm_forward = cuda_batch_norm_forward,
  .batch_norm_backward = cuda_batch_norm_backward,
  .layer_norm_forward = cuda_layer_norm_forward,
  .layer_norm_backward = cuda_layer_norm_backward,
};
