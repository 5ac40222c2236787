/* rnn.cu: CUDA kernels of the recurrent family: RNN (tanh/ReLU), LSTM and GRU, multi-layer,
 * bidirectional, with inter-layer dropout (the CPU's hash mask) and variable lengths, forward
 * and backward. The input projections of all time steps are one cuBLAS GEMM per layer and
 * direction; each step is one GEMM for the recurrent product and one fused kernel of gate
 * math, the directions one after the other on the backend's stream. The formulas, the order of
 * the work and the reserve's layout are those of engine/cpu/rnn.c. A second table runs every
 * product with bfloat16 operands (BP_PRECISION_BF16). */
#include "cuda-device.cuh"
#include "../bp-rnn-reserve.h"

/* The reserve's layout: engine/bp-rnn-reserve.h. */
static int64_t
cuda_reserve_size (const BpRnnDesc *d)
{
  return bp_rnn_reserve_floats (d);
}

/* ---- kernels ---- */

__device__ __forceinline__ float
sigmoid_of (float x)
{
  return 1.0f / (1.0f + expf (-x));
}

__device__ __forceinline__ bool
is_active (const float *lengths, int64_t b, int64_t t)
{
  return !lengths || t < (int64_t) lengths[b];
}

__global__ static void
transpose_bt_kernel (float *dst, const float *src, int64_t b, int64_t t, int64_t c,
                     bool to_time_major, bool accumulate)
{
  /* dst (T,B,C) = src (B,T,C) when to_time_major, else dst (B,T,C) = (or +=) src (T,B,C) */
  BP_GRID_LOOP (i, b * t * c) {
    int64_t row = i / c, j = i - row * c, src_row;
    if (to_time_major) {
      int64_t ti = row / b, bi = row - ti * b;
      src_row = bi * t + ti;
    } else {
      int64_t bi = row / t, ti = row - bi * t;
      src_row = ti * b + bi;
    }
    float v = src[src_row * c + j];
    dst[i] = accumulate ? dst[i] + v : v;
  }
}

__global__ static void
add_kernel (float *dst, const float *src, int64_t n)
{
  /* dst (n) += src (n) */
  BP_GRID_LOOP (i, n)
    dst[i] += src[i];
}

__global__ static void
bias_rows_kernel (float *gates, const float *b_ih, const float *b_hh, int64_t rows, int64_t gh,
                  int64_t h, bool gru)
{
  /* gates (rows, GH) = b_ih + b_hh on every row; GRU's n gate takes b_ih only (its b_hn stays
   * inside r * (W_hn h + b_hn)) */
  BP_GRID_LOOP (i, rows * gh) {
    int64_t j = i % gh;
    gates[i] = b_ih[j] + (gru && j >= 2 * h ? 0.0f : b_hh[j]);
  }
}

__global__ static void
dropout_kernel (float *dst, const float *src, int64_t n, float p, float scale, uint64_t key)
{
  /* dst (n) = src / (1 - p) where the element's draw is >= p, else 0 (bp_rng_hash_uniform) */
  BP_GRID_LOOP (i, n)
    dst[i] = bp_cuda_hash_uniform (key, (uint64_t) i) >= p ? src[i] * scale : 0.0f;
}

/* One forward step of one direction at time t, one thread per (b, j) of (B,H).
 * gates_t (B,GH) holds the input projections and becomes the activated gates; hh (B,GH) is
 * h_prev W_hh^T, or NULL when there is no previous state (zeros); h_prev, c_prev (B,H) or NULL
 * (zeros); h_t, c_t (B,H) receive the carried state (c_t: LSTM cell, GRU W_hn h + b_hn); y_t
 * is this direction's first column of the output rows (DH floats apart). */
__global__ static void
step_forward_kernel (float *gates_t, float *h_t, float *c_t, float *y_t, const float *hh,
                     const float *h_prev, const float *c_prev, const float *b_hh,
                     const float *lengths, int64_t t, int64_t nb, int64_t h, int64_t dh,
                     BpRnnMode mode)
{
  int64_t gh = (mode == BP_RNN_LSTM ? 4 : mode == BP_RNN_GRU ? 3 : 1) * h;
  BP_GRID_LOOP (i, nb * h) {
    int64_t b = i / h, j = i - b * h;
    bool active = is_active (lengths, b, t);
    float *g = gates_t + b * gh;
    const float *q = hh ? hh + b * gh : NULL;
    float hp = h_prev ? h_prev[i] : 0.0f, hv;
    if (mode == BP_RNN_LSTM) {
      float cp = c_prev ? c_prev[i] : 0.0f;
      float ig = sigmoid_of (g[j] + (q ? q[j] : 0.0f));
      float fg = sigmoid_of (g[h + j] + (q ? q[h + j] : 0.0f));
      float gg = tanhf (g[2 * h + j] + (q ? q[2 * h + j] : 0.0f));
      float og = sigmoid_of (g[3 * h + j] + (q ? q[3 * h + j] : 0.0f));
      g[j] = ig;
      g[h + j] = fg;
      g[2 * h + j] = gg;
      g[3 * h + j] = og;
      float c = fg * cp + ig * gg;
      hv = og * tanhf (c);
      c_t[i] = active ? c : cp;
    } else if (mode == BP_RNN_GRU) {
      float r = sigmoid_of (g[j] + (q ? q[j] : 0.0f));
      float z = sigmoid_of (g[h + j] + (q ? q[h + j] : 0.0f));
      float hn = (q ? q[2 * h + j] : 0.0f) + (b_hh ? b_hh[2 * h + j] : 0.0f);
      float n = tanhf (g[2 * h + j] + r * hn);
      g[j] = r;
      g[h + j] = z;
      g[2 * h + j] = n;
      c_t[i] = hn;
      hv = (1.0f - z) * n + z * hp;
    } else {
      float a = g[j] + (q ? q[j] : 0.0f);
      hv = mode == BP_RNN_TANH ? tanhf (a) : (a > 0.0f ? a : 0.0f);
      g[j] = hv;
    }
    h_t[i] = active ? hv : hp;
    y_t[b * dh + j] = active ? hv : 0.0f;
  }
}

/* One backward step of one direction at time t, one thread per (b, j) of (B,H). dh, dc (B,H)
 * hold the gradients carried from the step after (in processing order); dy_t is this
 * direction's first column of the output gradient rows (DH floats apart). Writes the gate
 * gradients dg_ih_t (B,GH) (GRU also the recurrent side dg_hh_t; otherwise dg_hh_t is the same
 * buffer), the cell carry dc, and into dh the part of the previous state's gradient that does
 * not go through W_hh (GRU: dh z; else 0): the caller then adds dg_hh_t W_hh. Rows past their
 * length get zero gate gradients and keep their carries. h_prev_t (B,H): the state the step
 * started from; c_prev (B,H) the cell it started from (LSTM) or NULL (zeros); c_t: the
 * forward's cs at t (LSTM cell, GRU W_hn h + b_hn). */
__global__ static void
step_backward_kernel (float *dg_ih_t, float *dg_hh_t, float *dh, float *dc,
                      const float *gates_t, const float *c_t, const float *c_prev,
                      const float *h_prev_t, const float *dy_t, const float *lengths, int64_t t,
                      int64_t nb, int64_t h, int64_t dh_cols, BpRnnMode mode)
{
  int ng = mode == BP_RNN_LSTM ? 4 : mode == BP_RNN_GRU ? 3 : 1;
  int64_t gh = ng * h;
  bool gru = mode == BP_RNN_GRU;
  BP_GRID_LOOP (i, nb * h) {
    int64_t b = i / h, j = i - b * h;
    float *gi = dg_ih_t + b * gh, *gq = dg_hh_t + b * gh;
    if (!is_active (lengths, b, t)) {
      for (int k = 0; k < ng; k++) {
        gi[k * h + j] = 0.0f;
        if (gru)
          gq[k * h + j] = 0.0f;
      }
      continue;
    }
    const float *gr = gates_t + b * gh;
    float dht = dh[i] + dy_t[b * dh_cols + j];
    if (mode == BP_RNN_LSTM) {
      float ig = gr[j], fg = gr[h + j], gg = gr[2 * h + j], og = gr[3 * h + j];
      float c = c_t[i], tc = tanhf (c);
      float cprev = c_prev ? c_prev[i] : 0.0f;
      float dct = dc[i] + dht * og * (1.0f - tc * tc);
      gi[j] = dct * gg * ig * (1.0f - ig);
      gi[h + j] = dct * cprev * fg * (1.0f - fg);
      gi[2 * h + j] = dct * ig * (1.0f - gg * gg);
      gi[3 * h + j] = dht * tc * og * (1.0f - og);
      dc[i] = dct * fg;
      dh[i] = 0.0f;
    } else if (gru) {
      float r = gr[j], z = gr[h + j], n = gr[2 * h + j], hn = c_t[i];
      float hprv = h_prev_t[i];
      float dn = dht * (1.0f - z) * (1.0f - n * n);
      float dz = dht * (hprv - n) * z * (1.0f - z);
      float dr = dn * hn * r * (1.0f - r);
      gi[j] = gq[j] = dr;
      gi[h + j] = gq[h + j] = dz;
      gi[2 * h + j] = dn;
      gq[2 * h + j] = dn * r;
      dh[i] = dht * z;
    } else {
      float hv = gr[j];
      gi[j] = mode == BP_RNN_TANH ? dht * (1.0f - hv * hv) : (hv > 0.0f ? dht : 0.0f);
      dh[i] = 0.0f;
    }
  }
}

/* ---- repeatable column sums (bias gradients) ----
 * Slice p of P adds rows [R p / P, R (p + 1) / P) of every column in double (P depends only
 * on R); then one thread per column adds the P partial sums in order. */

#define COL_ROWS_PER_SLICE 256
#define COL_MAX_SLICES 64

__global__ static void
col_partials_kernel (double *partial, const float *m, int64_t rows, int64_t cols)
{
  /* partial (P, cols) from m (rows, cols); slice p = blockIdx.y */
  int64_t j = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= cols)
    return;
  int64_t p = blockIdx.y, np = gridDim.y;
  int64_t r0 = rows * p / np, r1 = rows * (p + 1) / np;
  double s = 0.0;
  for (int64_t r = r0; r < r1; r++)
    s += m[r * cols + j];
  partial[p * cols + j] = s;
}

__global__ static void
col_finish_kernel (float *dst, const double *partial, int np, int64_t cols)
{
  /* dst (cols) += the sum over p of partial (P, cols), in order */
  BP_GRID_LOOP (j, cols) {
    double s = 0.0;
    for (int p = 0; p < np; p++)
      s += partial[p * cols + j];
    dst[j] += (float) s;
  }
}

#define GRID(n) bp_cuda_grid ((n), BP_BLOCK), BP_BLOCK, 0, bp_cuda_ctx.stream

/* dst (cols) += column sums of m (rows, cols) */
static BpStatus
col_sums (float *dst, const float *m, int64_t rows, int64_t cols)
{
  int64_t np = (rows + COL_ROWS_PER_SLICE - 1) / COL_ROWS_PER_SLICE;
  np = np < 1 ? 1 : np > COL_MAX_SLICES ? COL_MAX_SLICES : np;
  size_t bytes = (size_t) (np * cols) * sizeof (double);
  double *partial = (double *) bp_cuda_alloc (bytes);
  if (!partial)
    return bp_last_status ();
  dim3 grid ((unsigned) ((cols + BP_BLOCK - 1) / BP_BLOCK), (unsigned) np);
  col_partials_kernel<<<grid, BP_BLOCK, 0, bp_cuda_ctx.stream>>> (partial, m, rows, cols);
  BpStatus s = BP_CUDA_LAUNCH_TRY ("rnn bias gradient");
  if (s == BP_OK) {
    col_finish_kernel<<<GRID (cols)>>> (dst, partial, (int) np, cols);
    s = BP_CUDA_LAUNCH_TRY ("rnn bias gradient");
  }
  bp_cuda_free (partial, bytes); /* stream order: the kernels above run before any reuse */
  return s;
}

/* ---- forward ---- */

/* hh: scratch (B, G*H) for the recurrent products. */
static BpStatus
rnn_forward (BpPrecision pr, float *out, float *h_n, float *c_n, float *reserve, const float *x,
             const float *h0, const float *c0, const float *const *w, const float *lengths,
             const BpRnnDesc *d, float *hh)
{
  cudaStream_t st = bp_cuda_ctx.stream;
  BpRnnLayout s = bp_rnn_layout (d);
  int64_t T = s.t, B = s.b, H = s.h, D = s.d, GH = s.g * H, DH = D * H, TB = T * B;
  int P = d->bias ? 4 : 2;
  BpRnnMode mode = d->mode;
  bool lstm = mode == BP_RNN_LSTM, gru = mode == BP_RNN_GRU;
  size_t state_bytes = sizeof (float) * (size_t) (B * H);

  float *x0 = reserve + s.off_x0;
  if (d->batch_first) {
    transpose_bt_kernel<<<GRID (TB * s.i)>>> (x0, x, B, T, s.i, true, false);
    BP_CUDA_CHECK_LAUNCH ("rnn input transpose");
  } else {
    BP_CUDA_CHECK (cudaMemcpyAsync (x0, x, sizeof (float) * (size_t) (TB * s.i),
                                    cudaMemcpyDeviceToDevice, st));
  }

  for (int64_t l = 0; l < s.l; l++) {
    const float *in = bp_rnn_res_in (reserve, &s, l);
    int64_t in_size = l == 0 ? s.i : DH;
    float *y = bp_rnn_res_y (reserve, &s, l);
    for (int64_t dir = 0; dir < D; dir++) {
      int64_t k = l * D + dir;
      const float *w_ih = w[k * P], *w_hh = w[k * P + 1];
      const float *b_ih = d->bias ? w[k * P + 2] : NULL, *b_hh = d->bias ? w[k * P + 3] : NULL;
      float *gates = bp_rnn_res_k (reserve, &s, k);
      float *hs = gates + TB * GH, *cs = hs + TB * H;
      /* the input projections of every step: gates (T*B, GH) = in @ w_ih^T + biases */
      if (d->bias) {
        bias_rows_kernel<<<GRID (TB * GH)>>> (gates, b_ih, b_hh, TB, GH, H, gru);
        BP_CUDA_CHECK_LAUNCH ("rnn bias");
      }
      BpStatus e = bp_cuda_gemm_at (pr, false, true, TB, GH, in_size, 1.0f, in, in_size, w_ih,
                                    in_size, d->bias ? 1.0f : 0.0f, gates, GH);
      if (e != BP_OK)
        return e;
      /* the time loop: hh (B,GH) = h_prev @ w_hh^T, then the gate math */
      const float *h_prev = h0 ? h0 + k * B * H : NULL;
      const float *c_prev = lstm && c0 ? c0 + k * B * H : NULL;
      for (int64_t step = 0; step < T; step++) {
        int64_t t = dir == 0 ? step : T - 1 - step;
        if (h_prev) {
          e = bp_cuda_gemm_at (pr, false, true, B, GH, H, 1.0f, h_prev, H, w_hh, H, 0.0f, hh,
                               GH);
          if (e != BP_OK)
            return e;
        }
        step_forward_kernel<<<GRID (B * H)>>> (gates + t * B * GH, hs + t * B * H,
                                               cs + t * B * H, y + t * B * DH + dir * H,
                                               h_prev ? hh : NULL, h_prev, c_prev, b_hh,
                                               lengths, t, B, H, DH, mode);
        BP_CUDA_CHECK_LAUNCH ("rnn step");
        h_prev = hs + t * B * H;
        if (lstm)
          c_prev = cs + t * B * H;
      }
      BP_CUDA_CHECK (cudaMemcpyAsync (h_n + k * B * H, h_prev, state_bytes,
                                      cudaMemcpyDeviceToDevice, st));
      if (lstm && c_n)
        BP_CUDA_CHECK (cudaMemcpyAsync (c_n + k * B * H, c_prev, state_bytes,
                                        cudaMemcpyDeviceToDevice, st));
    }
    if (s.drop && l < s.l - 1) {
      /* the layer's key is derived on the host: a graph's replays could not change it */
      bp_cuda_capture_refuse ("the recurrent layers' dropout draws its masks on the host");
      uint64_t key = bp_rng_hash (d->dropout_key, (uint64_t) l);
      float p = d->dropout, scale = 1.0f / (1.0f - p);
      dropout_kernel<<<GRID (TB * DH)>>> (bp_rnn_res_in (reserve, &s, l + 1), y, TB * DH, p, scale,
                                          key);
      BP_CUDA_CHECK_LAUNCH ("rnn dropout");
    }
  }
  const float *top = bp_rnn_res_y (reserve, &s, s.l - 1);
  if (d->batch_first) {
    transpose_bt_kernel<<<GRID (TB * DH)>>> (out, top, B, T, DH, false, false);
    BP_CUDA_CHECK_LAUNCH ("rnn output transpose");
  } else {
    BP_CUDA_CHECK (cudaMemcpyAsync (out, top, sizeof (float) * (size_t) (TB * DH),
                                    cudaMemcpyDeviceToDevice, st));
  }
  return BP_OK;
}

static BpStatus
rnn_forward_at (BpPrecision pr, float *out, float *h_n, float *c_n, float *reserve,
                const float *x, const float *h0, const float *c0, const float *const *w,
                const float *lengths, const BpRnnDesc *d)
{
  if (!bp_cuda_begin ())
    return BP_ERR_DEVICE;
  size_t bytes = sizeof (float) * (size_t) (d->batch * bp_rnn_gates (d->mode) * d->hidden_size);
  float *hh = (float *) bp_cuda_alloc (bytes);
  if (!hh)
    return bp_last_status ();
  BpStatus s = rnn_forward (pr, out, h_n, c_n, reserve, x, h0, c0, w, lengths, d, hh);
  bp_cuda_free (hh, bytes);
  return s;
}

/* ---- backward ---- */

/* The backward's scratch: dy (T,B,DH) the gradient of the current layer's output, dxl
 * (T,B,in_max) the gradient of its input, and for the direction in work dg_ih (T,B,GH), dg_hh
 * (T,B,GH; GRU only, else dg_ih), hprev (T,B,H) the state every step started from, and the
 * carries dh, dc (B,H). */
typedef struct {
  float *dy, *dxl, *dg_ih, *dg_hh, *hprev, *dh, *dc;
} Scratch;

static int64_t
scratch_floats (const BpRnnDesc *d)
{
  BpRnnLayout s = bp_rnn_layout (d);
  int64_t TB = s.t * s.b, GH = s.g * s.h, DH = s.d * s.h, in_max = s.i > DH ? s.i : DH;
  return TB * DH + TB * in_max + TB * GH * (d->mode == BP_RNN_GRU ? 2 : 1) + TB * s.h
         + 2 * s.b * s.h;
}

/* hprev (T,B,H): the state each step of direction dir started from, from the carried states
 * hs (T,B,H) and the initial state h0k (B,H) or zeros. */
static BpStatus
gather_hprev (float *hprev, const float *hs, const float *h0k, int64_t dir, int64_t T,
              int64_t BH)
{
  cudaStream_t st = bp_cuda_ctx.stream;
  /* forward direction: hprev[0] = h0, hprev[t] = hs[t-1]; reverse: hprev[T-1] = h0,
   * hprev[t] = hs[t+1] */
  float *first = dir == 0 ? hprev : hprev + (T - 1) * BH;
  float *rest = dir == 0 ? hprev + BH : hprev;
  const float *from = dir == 0 ? hs : hs + BH;
  size_t bytes = sizeof (float) * (size_t) BH;
  if (h0k)
    BP_CUDA_CHECK (cudaMemcpyAsync (first, h0k, bytes, cudaMemcpyDeviceToDevice, st));
  else
    BP_CUDA_CHECK (cudaMemsetAsync (first, 0, bytes, st));
  if (T > 1)
    BP_CUDA_CHECK (cudaMemcpyAsync (rest, from, bytes * (size_t) (T - 1),
                                    cudaMemcpyDeviceToDevice, st));
  return BP_OK;
}

static BpStatus
rnn_backward (BpPrecision pr, float *dx, float *dh0, float *dc0, float *const *dw,
              const float *dout, const float *dh_n, const float *dc_n, float *reserve,
              const float *h0, const float *c0, const float *const *w, const float *lengths,
              const BpRnnDesc *d, const Scratch *g)
{
  cudaStream_t st = bp_cuda_ctx.stream;
  BpRnnLayout s = bp_rnn_layout (d);
  int64_t T = s.t, B = s.b, H = s.h, D = s.d, GH = s.g * H, DH = D * H, TB = T * B, BH = B * H;
  int P = d->bias ? 4 : 2;
  BpRnnMode mode = d->mode;
  bool lstm = mode == BP_RNN_LSTM;
  size_t state_bytes = sizeof (float) * (size_t) BH;
  BpStatus e;

  if (d->batch_first) {
    transpose_bt_kernel<<<GRID (TB * DH)>>> (g->dy, dout, B, T, DH, true, false);
    BP_CUDA_CHECK_LAUNCH ("rnn output gradient transpose");
  } else {
    BP_CUDA_CHECK (cudaMemcpyAsync (g->dy, dout, sizeof (float) * (size_t) (TB * DH),
                                    cudaMemcpyDeviceToDevice, st));
  }

  for (int64_t l = s.l - 1; l >= 0; l--) {
    const float *in = bp_rnn_res_in (reserve, &s, l);
    int64_t in_size = l == 0 ? s.i : DH;
    bool need_dx = l > 0 || dx;
    for (int64_t dir = 0; dir < D; dir++) {
      int64_t k = l * D + dir;
      const float *w_ih = w[k * P], *w_hh = w[k * P + 1];
      const float *gates = bp_rnn_res_k (reserve, &s, k);
      const float *hs = gates + TB * GH, *cs = hs + TB * H;
      const float *h0k = h0 ? h0 + k * BH : NULL, *c0k = c0 ? c0 + k * BH : NULL;
      if (dh_n)
        BP_CUDA_CHECK (cudaMemcpyAsync (g->dh, dh_n + k * BH, state_bytes,
                                        cudaMemcpyDeviceToDevice, st));
      else
        BP_CUDA_CHECK (cudaMemsetAsync (g->dh, 0, state_bytes, st));
      if (lstm && dc_n)
        BP_CUDA_CHECK (cudaMemcpyAsync (g->dc, dc_n + k * BH, state_bytes,
                                        cudaMemcpyDeviceToDevice, st));
      else
        BP_CUDA_CHECK (cudaMemsetAsync (g->dc, 0, state_bytes, st));
      if ((e = gather_hprev (g->hprev, hs, h0k, dir, T, BH)) != BP_OK)
        return e;

      /* the time loop, in reverse processing order */
      for (int64_t step = T - 1; step >= 0; step--) {
        int64_t t = dir == 0 ? step : T - 1 - step;
        int64_t tp = dir == 0 ? t - 1 : t + 1; /* the step before in processing order */
        const float *c_prev = NULL;
        if (lstm)
          c_prev = step == 0 ? c0k : cs + tp * BH;
        step_backward_kernel<<<GRID (BH)>>> (g->dg_ih + t * B * GH, g->dg_hh + t * B * GH, g->dh,
                                             g->dc, gates + t * B * GH, cs + t * BH, c_prev,
                                             g->hprev + t * BH, g->dy + t * B * DH + dir * H,
                                             lengths, t, B, H, DH, mode);
        BP_CUDA_CHECK_LAUNCH ("rnn step backward");
        /* dh (B,H) += dg_hh (B,GH) @ w_hh (GH,H); rows past their length add zeros */
        e = bp_cuda_gemm_at (pr, false, false, B, H, GH, 1.0f, g->dg_hh + t * B * GH, GH, w_hh,
                             H, 1.0f, g->dh, H);
        if (e != BP_OK)
          return e;
      }
      if (dh0) {
        add_kernel<<<GRID (BH)>>> (dh0 + k * BH, g->dh, BH);
        BP_CUDA_CHECK_LAUNCH ("rnn dh0");
      }
      if (lstm && dc0) {
        add_kernel<<<GRID (BH)>>> (dc0 + k * BH, g->dc, BH);
        BP_CUDA_CHECK_LAUNCH ("rnn dc0");
      }
      /* weight gradients over all steps at once */
      float *dw_ih = dw ? dw[k * P] : NULL, *dw_hh = dw ? dw[k * P + 1] : NULL;
      float *db_ih = dw && d->bias ? dw[k * P + 2] : NULL;
      float *db_hh = dw && d->bias ? dw[k * P + 3] : NULL;
      if (dw_ih && (e = bp_cuda_gemm_at (pr, true, false, GH, in_size, TB, 1.0f, g->dg_ih, GH,
                                         in, in_size, 1.0f, dw_ih, in_size)) != BP_OK)
        return e;
      if (dw_hh && (e = bp_cuda_gemm_at (pr, true, false, GH, H, TB, 1.0f, g->dg_hh, GH,
                                         g->hprev, H, 1.0f, dw_hh, H)) != BP_OK)
        return e;
      if (db_ih && (e = col_sums (db_ih, g->dg_ih, TB, GH)) != BP_OK)
        return e;
      if (db_hh && (e = col_sums (db_hh, g->dg_hh, TB, GH)) != BP_OK)
        return e;
      /* dxl (T*B, in) = the sum over the directions of dg_ih @ w_ih */
      if (need_dx && (e = bp_cuda_gemm_at (pr, false, false, TB, in_size, GH, 1.0f, g->dg_ih, GH,
                                           w_ih, in_size, dir == 0 ? 0.0f : 1.0f, g->dxl,
                                           in_size)) != BP_OK)
        return e;
    }
    if (l > 0) {
      /* the gradient of layer l-1's output, through the dropout between them */
      if (s.drop) {
        uint64_t key = bp_rng_hash (d->dropout_key, (uint64_t) (l - 1));
        float p = d->dropout, scale = 1.0f / (1.0f - p);
        dropout_kernel<<<GRID (TB * DH)>>> (g->dy, g->dxl, TB * DH, p, scale, key);
        BP_CUDA_CHECK_LAUNCH ("rnn dropout backward");
      } else {
        BP_CUDA_CHECK (cudaMemcpyAsync (g->dy, g->dxl, sizeof (float) * (size_t) (TB * DH),
                                        cudaMemcpyDeviceToDevice, st));
      }
    } else if (dx) {
      if (d->batch_first)
        transpose_bt_kernel<<<GRID (TB * s.i)>>> (dx, g->dxl, B, T, s.i, false, true);
      else
        add_kernel<<<GRID (TB * s.i)>>> (dx, g->dxl, TB * s.i);
      BP_CUDA_CHECK_LAUNCH ("rnn input gradient");
    }
  }
  return BP_OK;
}

static BpStatus
rnn_backward_at (BpPrecision pr, float *dx, float *dh0, float *dc0, float *const *dw,
                 const float *dout, const float *dh_n, const float *dc_n, const float *reserve,
                 const float *x, const float *h0, const float *c0, const float *const *w,
                 const float *lengths, const BpRnnDesc *d)
{
  /* the status is also kept for synchronize: the tape's backward functions return nothing */
  (void) x; /* the reserve holds its time-major copy */
  if (!bp_cuda_begin ())
    return BP_ERR_DEVICE;
  BpRnnLayout s = bp_rnn_layout (d);
  int64_t TB = s.t * s.b, GH = s.g * s.h, DH = s.d * s.h, in_max = s.i > DH ? s.i : DH;
  size_t bytes = sizeof (float) * (size_t) scratch_floats (d);
  float *base = (float *) bp_cuda_alloc (bytes);
  if (!base) {
    BpStatus s_nomem = bp_last_status ();
    bp_cuda_defer (s_nomem);
    return s_nomem;
  }
  Scratch g;
  g.dy = base;
  g.dxl = g.dy + TB * DH;
  g.dg_ih = g.dxl + TB * in_max;
  g.dg_hh = d->mode == BP_RNN_GRU ? g.dg_ih + TB * GH : g.dg_ih;
  g.hprev = g.dg_hh + TB * GH;
  g.dh = g.hprev + TB * s.h;
  g.dc = g.dh + s.b * s.h;
  BpStatus st = rnn_backward (pr, dx, dh0, dc0, dw, dout, dh_n, dc_n, (float *) reserve, h0, c0,
                              w, lengths, d, &g);
  bp_cuda_free (base, bytes); /* stream order: the work above runs before any reuse */
  bp_cuda_defer (st);
  return st;
}

static BpStatus
cuda_rnn_forward (float *out, float *h_n, float *c_n, float *reserve, const float *x,
                  const float *h0, const float *c0, const float *const *w, const float *lengths,
                  const BpRnnDesc *d)
{
  return rnn_forward_at (BP_PRECISION_FP32, out, h_n, c_n, reserve, x, h0, c0, w, lengths, d);
}

static BpStatus
cuda_rnn_backward (float *dx, float *dh0, float *dc0, float *const *dw, const float *dout,
                   const float *dh_n, const float *dc_n, const float *reserve, const float *x,
                   const float *h0, const float *c0, const float *const *w,
                   const float *lengths, const BpRnnDesc *d)
{
  return rnn_backward_at (BP_PRECISION_FP32, dx, dh0, dc0, dw, dout, dh_n, dc_n, reserve, x, h0,
                          c0, w, lengths, d);
}

/* Every product with bfloat16 operands (bp_cuda_gemm_at); gates, states and sums float32. */
static BpStatus
cuda_rnn_forward_bf16 (float *out, float *h_n, float *c_n, float *reserve, const float *x,
                       const float *h0, const float *c0, const float *const *w,
                       const float *lengths, const BpRnnDesc *d)
{
  return rnn_forward_at (BP_PRECISION_BF16, out, h_n, c_n, reserve, x, h0, c0, w, lengths, d);
}

static BpStatus
cuda_rnn_backward_bf16 (float *dx, float *dh0, float *dc0, float *const *dw, const float *dout,
                        const float *dh_n, const float *dc_n, const float *reserve,
                        const float *x, const float *h0, const float *c0,
                        const float *const *w, const float *lengths, const BpRnnDesc *d)
{
  return rnn_backward_at (BP_PRECISION_BF16, dx, dh0, dc0, dw, dout, dh_n, dc_n, reserve, x, h0,
                          c0, w, lengths, d);
}

const BpRnnKernels bp_cuda_rnn_kernels = {
  .reserve_size = cuda_reserve_size,
  .forward = cuda_rnn_forward,
  .backward = cuda_rnn_backward,
};

const BpRnnKernels bp_cuda_rnn_bf16_kernels = {
  .reserve_size = cuda_reserve_size,
  .forward = cuda_rnn_forward_bf16,
  .backward = cuda_rnn_backward_bf16,
};
