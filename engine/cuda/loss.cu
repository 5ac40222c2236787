/* loss.cu: CUDA kernels of the loss family: softmax, log-softmax, cross-entropy with label
 * smoothing (fused forward and backward), MSE, BCE with logits, target checks and accuracy.
 * Row kernels give each row one warp (sums in double, as on the CPU); the losses are summed
 * with the repeatable two-pass sum of cuda-device.cuh. */
#include "cuda-device.cuh"

/* Rows per block of the row kernels: one warp each. */
#define WARPS (BP_BLOCK / 32)

/* for (r = this warp's first row; r < rows; r += all warps of the grid) */
#define ROW_LOOP(r, rows)                                                                      \
  for (int64_t r = (int64_t) blockIdx.x * WARPS + (threadIdx.x >> 5); r < (rows);             \
       r += (int64_t) gridDim.x * WARPS)

/* The row's maximum and sum of exp (x - max), on every lane of the warp. */
__device__ __forceinline__ void
row_max_sumexp (const float *xr, int64_t cols, float *max_out, double *sum_out)
{
  int lane = threadIdx.x & 31;
  float mx = -INFINITY;
  for (int64_t j = lane; j < cols; j += 32)
    mx = fmaxf (mx, xr[j]);
  mx = bp_warp_max (mx);
  double sum = 0.0;
  for (int64_t j = lane; j < cols; j += 32)
    sum += expf (xr[j] - mx);
  *max_out = mx;
  *sum_out = bp_warp_sum (sum);
}

__global__ static void
softmax_kernel (float *out, const float *x, int64_t rows, int64_t cols, bool take_log)
{
  /* out (R,C) = softmax or log-softmax of each row of x (R,C) */
  int lane = threadIdx.x & 31;
  ROW_LOOP (r, rows) {
    const float *xr = x + r * cols;
    float *orow = out + r * cols;
    float mx;
    double sum;
    row_max_sumexp (xr, cols, &mx, &sum);
    if (take_log) {
      float shift = mx + (float) log (sum);
      for (int64_t j = lane; j < cols; j += 32)
        orow[j] = xr[j] - shift;
    } else {
      float inv = (float) (1.0 / sum);
      for (int64_t j = lane; j < cols; j += 32)
        orow[j] = expf (xr[j] - mx) * inv;
    }
  }
}

__global__ static void
softmax_backward_kernel (float *dx, const float *dy, const float *y, int64_t rows, int64_t cols)
{
  /* dx (R,C) += y * (dy - sum_j dy*y) */
  int lane = threadIdx.x & 31;
  ROW_LOOP (r, rows) {
    const float *yr = y + r * cols, *gr = dy + r * cols;
    float *dr = dx + r * cols;
    double dot = 0.0;
    for (int64_t j = lane; j < cols; j += 32)
      dot += (double) (gr[j] * yr[j]);
    float d = (float) bp_warp_sum (dot);
    for (int64_t j = lane; j < cols; j += 32)
      dr[j] += yr[j] * (gr[j] - d);
  }
}

__global__ static void
log_softmax_backward_kernel (float *dx, const float *dy, const float *y, int64_t rows,
                             int64_t cols)
{
  /* dx (R,C) += dy - exp (y) * sum_j dy */
  int lane = threadIdx.x & 31;
  ROW_LOOP (r, rows) {
    const float *yr = y + r * cols, *gr = dy + r * cols;
    float *dr = dx + r * cols;
    double sum = 0.0;
    for (int64_t j = lane; j < cols; j += 32)
      sum += gr[j];
    float s = (float) bp_warp_sum (sum);
    for (int64_t j = lane; j < cols; j += 32)
      dr[j] += gr[j] - expf (yr[j]) * s;
  }
}

__global__ static void
check_targets_kernel (unsigned long long *first_bad, const float *targets, int64_t n,
                      int64_t classes)
{
  /* first_bad[0] = min of the positions whose target is not an integer in [0, classes) */
  BP_GRID_LOOP (i, n) {
    float t = targets[i];
    if (!(isfinite (t) && t >= 0.0f && t < (float) classes && t == floorf (t)))
      atomicMin (first_bad, (unsigned long long) i);
  }
}

__global__ static void
cross_entropy_rows_kernel (double *row_loss, float *lse, const float *logits,
                           const float *targets, int64_t n, int64_t c, float label_smoothing)
{
  /* row_loss (N) = (1-ls) * (lse - x[t]) + ls * (lse - mean_j x[j]), lse (N) */
  int lane = threadIdx.x & 31;
  double ls = label_smoothing;
  ROW_LOOP (r, n) {
    const float *xr = logits + r * c;
    float mx;
    double sum;
    row_max_sumexp (xr, c, &mx, &sum);
    double l = (double) mx + log (sum);
    double nll = l - xr[(int64_t) targets[r]];
    if (ls > 0.0) {
      double sx = 0.0;
      for (int64_t j = lane; j < c; j += 32)
        sx += xr[j];
      sx = bp_warp_sum (sx);
      nll = (1.0 - ls) * nll + ls * (l - sx / (double) c);
    }
    if (lane == 0) {
      lse[r] = (float) l;
      row_loss[r] = nll;
    }
  }
}

struct RowLossTerm {
  const double *row_loss;
  __device__ double operator() (int64_t i) const { return row_loss[i]; }
};

__global__ static void
cross_entropy_backward_kernel (float *dlogits, const float *dloss, const float *logits,
                               const float *lse, const float *targets, int64_t n, int64_t c,
                               float label_smoothing)
{
  /* dlogits (N,C) += dloss / N * (softmax - ((1-ls) * onehot (t) + ls / C)) */
  float g = dloss[0] / (float) n;
  float off = label_smoothing / (float) c, on = 1.0f - label_smoothing + off;
  BP_GRID_LOOP (i, n * c) {
    int64_t r = i / c, j = i - r * c;
    float d = g * (expf (logits[i] - lse[r]) - off);
    if (j == (int64_t) targets[r])
      d -= g * (on - off);
    dlogits[i] += d;
  }
}

struct MseTerm {
  const float *pred, *target;
  __device__ double operator() (int64_t i) const
  {
    float d = pred[i] - target[i];
    return (double) (d * d);
  }
};

__global__ static void
mse_backward_kernel (float *dpred, float *dtarget, const float *dloss, const float *pred,
                     const float *target, int64_t n)
{
  /* dpred += 2 (pred - target) / n * dloss, dtarget -= the same */
  float g = 2.0f * dloss[0] / (float) n;
  BP_GRID_LOOP (i, n) {
    float d = g * (pred[i] - target[i]);
    if (dpred)
      dpred[i] += d;
    if (dtarget)
      dtarget[i] -= d;
  }
}

struct BceTerm {
  const float *logits, *target;
  __device__ double operator() (int64_t i) const
  {
    float x = logits[i];
    return (double) (fmaxf (x, 0.0f) - x * target[i] + log1pf (expf (-fabsf (x))));
  }
};

__global__ static void
bce_backward_kernel (float *dlogits, float *dtarget, const float *dloss, const float *logits,
                     const float *target, int64_t n)
{
  /* dlogits += (sigmoid (x) - t) / n * dloss, dtarget -= x / n * dloss */
  float g = dloss[0] / (float) n;
  BP_GRID_LOOP (i, n) {
    float x = logits[i];
    float e = expf (-fabsf (x)); /* sigmoid without overflow */
    float sig = x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    if (dlogits)
      dlogits[i] += g * (sig - target[i]);
    if (dtarget)
      dtarget[i] -= g * x;
  }
}

template <typename Count>
__global__ static void
count_correct_kernel (Count *correct, const float *logits, const float *targets, int64_t n,
                      int64_t c)
{
  /* correct[0] += rows of logits (N,C) whose first arg-max is the target. The CPU's rule
   * (best = 0; best = j where x[j] > x[best]) is the first maximum of the non-NaN values, or
   * 0 when x[0] is NaN. */
  int lane = threadIdx.x & 31;
  ROW_LOOP (r, n) {
    const float *xr = logits + r * c;
    float bv = 0.0f;
    int64_t bi = -1;
    for (int64_t j = lane; j < c; j += 32) {
      float v = xr[j];
      if (!isnan (v) && (bi < 0 || v > bv)) {
        bv = v;
        bi = j;
      }
    }
    for (int o = 16; o > 0; o >>= 1) {
      float ov = __shfl_xor_sync (0xffffffffu, bv, o);
      int64_t oi = (int64_t) __shfl_xor_sync (0xffffffffu, (long long) bi, o);
      if (oi >= 0 && (bi < 0 || ov > bv || (ov == bv && oi < bi))) {
        bv = ov;
        bi = oi;
      }
    }
    if (bi < 0 || isnan (xr[0]))
      bi = 0;
    if (lane == 0 && (float) bi == targets[r])
      atomicAdd (correct, (Count) 1); /* a float counter holds integers: exact, any order */
  }
}

/* ---- the table ---- */

#define GRID(n) bp_cuda_grid ((n), BP_BLOCK), BP_BLOCK, 0, bp_cuda_ctx.stream
#define ROW_GRID(rows) bp_cuda_grid ((rows), WARPS), BP_BLOCK, 0, bp_cuda_ctx.stream

static void
cuda_softmax_forward (float *out, const float *x, int64_t rows, int64_t cols)
{
  if (rows <= 0 || cols <= 0 || !bp_cuda_begin ())
    return;
  softmax_kernel<<<ROW_GRID (rows)>>> (out, x, rows, cols, false);
  bp_cuda_defer (BP_CUDA_LAUNCH_TRY ("softmax"));
}

static void
cuda_log_softmax_forward (float *out, const float *x, int64_t rows, int64_t cols)
{
  if (rows <= 0 || cols <= 0 || !bp_cuda_begin ())
    return;
  softmax_kernel<<<ROW_GRID (rows)>>> (out, x, rows, cols, true);
  bp_cuda_defer (BP_CUDA_LAUNCH_TRY ("log_softmax"));
}

static void
cuda_softmax_backward (float *dx, const float *dy, const float *y, int64_t rows, int64_t cols)
{
  if (rows <= 0 || cols <= 0 || !bp_cuda_begin ())
    return;
  softmax_backward_kernel<<<ROW_GRID (rows)>>> (dx, dy, y, rows, cols);
  bp_cuda_defer (BP_CUDA_LAUNCH_TRY ("softmax backward"));
}

static void
cuda_log_softmax_backward (float *dx, const float *dy, const float *y, int64_t rows,
                           int64_t cols)
{
  if (rows <= 0 || cols <= 0 || !bp_cuda_begin ())
    return;
  log_softmax_backward_kernel<<<ROW_GRID (rows)>>> (dx, dy, y, rows, cols);
  bp_cuda_defer (BP_CUDA_LAUNCH_TRY ("log_softmax backward"));
}

/* Finds the first bad target on the GPU and waits for it (the caller needs it now). */
static BpStatus
check_targets (int64_t *at, float *bad_value, const float *targets, int64_t n, int64_t classes)
{
  *at = -1;
  if (bp_cuda_refuse_read_back ("the loss's target check"))
    return BP_OK;
  cudaStream_t st = bp_cuda_ctx.stream;
  size_t bytes = sizeof (unsigned long long);
  unsigned long long *d_bad = (unsigned long long *) bp_cuda_alloc (bytes), h_bad = 0;
  if (!d_bad)
    return bp_last_status ();
  BpStatus s = BP_CUDA_TRY (cudaMemsetAsync (d_bad, 0xff, bytes, st)); /* ULLONG_MAX: none */
  if (s == BP_OK) {
    check_targets_kernel<<<GRID (n)>>> (d_bad, targets, n, classes);
    s = BP_CUDA_LAUNCH_TRY ("cross_entropy target check");
  }
  if (s == BP_OK)
    s = BP_CUDA_TRY (cudaMemcpyAsync (&h_bad, d_bad, bytes, cudaMemcpyDeviceToHost, st));
  if (s == BP_OK)
    s = BP_CUDA_TRY (cudaStreamSynchronize (st));
  if (s == BP_OK && h_bad < (unsigned long long) n) {
    *at = (int64_t) h_bad;
    s = BP_CUDA_TRY (cudaMemcpyAsync (bad_value, targets + h_bad, sizeof (float),
                                      cudaMemcpyDeviceToHost, st));
    if (s == BP_OK)
      s = BP_CUDA_TRY (cudaStreamSynchronize (st));
  }
  bp_cuda_free (d_bad, bytes);
  return s;
}

static int64_t
cuda_check_targets (float *bad_value, const float *targets, int64_t n, int64_t classes)
{
  /* a device failure answers -1 ("all valid"); the error is kept for the next synchronize */
  if (n <= 0 || !bp_cuda_begin ())
    return -1;
  int64_t at = -1;
  BpStatus s = check_targets (&at, bad_value, targets, n, classes);
  if (s != BP_OK) {
    bp_cuda_defer (s);
    return -1;
  }
  return at;
}

static BpStatus
cross_entropy_forward (float *loss, float *lse, const float *logits, const float *targets,
                       int64_t n, int64_t c, float label_smoothing)
{
  size_t bytes = (size_t) n * sizeof (double);
  double *row_loss = (double *) bp_cuda_alloc (bytes);
  if (!row_loss)
    return bp_last_status ();
  cross_entropy_rows_kernel<<<ROW_GRID (n)>>> (row_loss, lse, logits, targets, n, c,
                                               label_smoothing);
  BpStatus s = BP_CUDA_LAUNCH_TRY ("cross_entropy");
  if (s == BP_OK)
    s = bp_cuda_sum (bp_cuda_ctx.stream, n, RowLossTerm{row_loss}, 1.0 / (double) n, loss, NULL);
  bp_cuda_free (row_loss, bytes);
  return s;
}

static void
cuda_cross_entropy_forward (float *loss, float *lse, const float *logits, const float *targets,
                            int64_t n, int64_t c, float label_smoothing)
{
  if (n <= 0 || c <= 0 || !bp_cuda_begin ())
    return;
  bp_cuda_defer (cross_entropy_forward (loss, lse, logits, targets, n, c, label_smoothing));
}

static void
cuda_cross_entropy_backward (float *dlogits, const float *dloss, const float *logits,
                             const float *lse, const float *targets, int64_t n, int64_t c,
                             float label_smoothing)
{
  if (n <= 0 || c <= 0 || !bp_cuda_begin ())
    return;
  cross_entropy_backward_kernel<<<GRID (n * c)>>> (dlogits, dloss, logits, lse, targets, n, c,
                                                   label_smoothing);
  bp_cuda_defer (BP_CUDA_LAUNCH_TRY ("cross_entropy backward"));
}

static void
cuda_mse_forward (float *loss, const float *pred, const float *target, int64_t n)
{
  if (n <= 0 || !bp_cuda_begin ())
    return;
  bp_cuda_defer (bp_cuda_sum (bp_cuda_ctx.stream, n, MseTerm{pred, target}, 1.0 / (double) n,
                              loss, NULL));
}

static void
cuda_mse_backward (float *dpred, float *dtarget, const float *dloss, const float *pred,
                   const float *target, int64_t n)
{
  if (n <= 0 || (!dpred && !dtarget) || !bp_cuda_begin ())
    return;
  mse_backward_kernel<<<GRID (n)>>> (dpred, dtarget, dloss, pred, target, n);
  bp_cuda_defer (BP_CUDA_LAUNCH_TRY ("mse_loss backward"));
}

static void
cuda_bce_logits_forward (float *loss, const float *logits, const float *target, int64_t n)
{
  if (n <= 0 || !bp_cuda_begin ())
    return;
  bp_cuda_defer (bp_cuda_sum (bp_cuda_ctx.stream, n, BceTerm{logits, target}, 1.0 / (double) n,
                              loss, NULL));
}

static void
cuda_bce_logits_backward (float *dlogits, float *dtarget, const float *dloss,
                          const float *logits, const float *target, int64_t n)
{
  if (n <= 0 || (!dlogits && !dtarget) || !bp_cuda_begin ())
    return;
  bce_backward_kernel<<<GRID (n)>>> (dlogits, dtarget, dloss, logits, target, n);
  bp_cuda_defer (BP_CUDA_LAUNCH_TRY ("bce_with_logits backward"));
}

static BpStatus
count_correct (int64_t *count, const float *logits, const float *targets, int64_t n, int64_t c)
{
  *count = 0;
  if (bp_cuda_refuse_read_back ("counting the correct predictions"))
    return BP_OK;
  cudaStream_t st = bp_cuda_ctx.stream;
  size_t bytes = sizeof (unsigned long long);
  unsigned long long *d_count = (unsigned long long *) bp_cuda_alloc (bytes), h_count = 0;
  if (!d_count)
    return bp_last_status ();
  BpStatus s = BP_CUDA_TRY (cudaMemsetAsync (d_count, 0, bytes, st));
  if (s == BP_OK) {
    count_correct_kernel<<<ROW_GRID (n)>>> (d_count, logits, targets, n, c);
    s = BP_CUDA_LAUNCH_TRY ("count_correct");
  }
  if (s == BP_OK)
    s = BP_CUDA_TRY (cudaMemcpyAsync (&h_count, d_count, bytes, cudaMemcpyDeviceToHost, st));
  if (s == BP_OK)
    s = BP_CUDA_TRY (cudaStreamSynchronize (st));
  bp_cuda_free (d_count, bytes);
  *count = (int64_t) h_count;
  return s;
}

static int64_t
cuda_count_correct (const float *logits, const float *targets, int64_t n, int64_t c)
{
  /* -1 with the error set (and kept for synchronize) when the device fails */
  if (n <= 0 || c <= 0)
    return 0;
  if (!bp_cuda_begin ())
    return -1;
  int64_t count = 0;
  BpStatus s = count_correct (&count, logits, targets, n, c);
  if (s != BP_OK) {
    bp_cuda_defer (s);
    return -1;
  }
  return count;
}

static void
cuda_count_correct_add (float *acc, const float *logits, const float *targets, int64_t n,
                        int64_t c)
{
  if (n <= 0 || c <= 0 || !bp_cuda_begin ())
    return;
  count_correct_kernel<<<ROW_GRID (n)>>> (acc, logits, targets, n, c);
  bp_cuda_defer (BP_CUDA_LAUNCH_TRY ("count_correct_add"));
}

const BpLossKernels bp_cuda_loss_kernels = {
  .softmax_forward = cuda_softmax_forward,
  .log_softmax_forward = cuda_log_softmax_forward,
  .softmax_backward = cuda_softmax_backward,
  .log_softmax_backward = cuda_log_softmax_backward,
  .check_targets = cuda_check_targets,
  .cross_entropy_forward = cuda_cross_entropy_forward,
  .cross_entropy_backward = cuda_cross_entropy_backward,
  .mse_forward = cuda_mse_forward,
  .mse_backward = cuda_mse_backward,
  .bce_logits_forward = cuda_bce_logits_forward,
  .bce_logits_backward = cuda_bce_logits_backward,
  .count_correct = cuda_count_correct,
  .count_correct_add = cuda_count_correct_add,
};
