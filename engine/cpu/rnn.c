/* cpu/rnn.c: CPU kernels of the recurrent family: RNN (tanh/ReLU), LSTM and GRU, multi-layer,
 * bidirectional, with inter-layer dropout and variable lengths, forward and backward. The input
 * projections of all time steps are one GEMM per layer and direction; each step is a GEMM for
 * the recurrent projection and one pass of pointwise gate math, the time loops of the
 * directions and of blocks of batch rows running on separate threads. A second table runs
 * every product with bfloat16 operands. */
#include "cpu-kernels.h"
#include "../bp-ops-rnn.h"
#include "../bp-rng.h"
#include "../bp-rnn-reserve.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static inline float
sigmoidf (float x)
{
  return 1.0f / (1.0f + expf (-x));
}

/* The reserve's layout: engine/bp-rnn-reserve.h. */
static int64_t
cpu_reserve_size (const BpRnnDesc *d)
{
  return bp_rnn_reserve_floats (d);
}

/* (B,T,C) <-> (T,B,C); accumulate adds into dst. */
static void
transpose_bt (float *dst, const float *src, int64_t b, int64_t t, int64_t c, bool to_time_major,
              bool accumulate)
{
#pragma omp parallel for schedule(static) if (b * t * c > 65536)
  for (int64_t bi = 0; bi < b; bi++)
    for (int64_t ti = 0; ti < t; ti++) {
      const float *s = to_time_major ? src + (bi * t + ti) * c : src + (ti * b + bi) * c;
      float *o = to_time_major ? dst + (ti * b + bi) * c : dst + (bi * t + ti) * c;
      if (accumulate)
        for (int64_t j = 0; j < c; j++)
          o[j] += s[j];
      else
        memcpy (o, s, (size_t) c * sizeof (float));
    }
}

static inline int64_t
seq_len_of (const float *lengths, int64_t b, int64_t t)
{
  return lengths ? (int64_t) lengths[b] : t;
}

/* dst (cols) += column sums of m (rows, cols); one thread per block of columns, rows summed in
 * order (the same bits for any thread count) */
static void
col_sums (float *dst, const float *m, int64_t rows, int64_t cols)
{
  const int64_t block = 64;
  int64_t nblocks = (cols + block - 1) / block;
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
  for (int64_t blk = 0; blk < nblocks; blk++) {
    int64_t j0 = blk * block, nj = j0 + block < cols ? block : cols - j0;
    float acc[64] = {0};
    for (int64_t r = 0; r < rows; r++) {
      const float *row = m + r * cols + j0;
#pragma omp simd
      for (int64_t j = 0; j < nj; j++)
        acc[j] += row[j];
    }
    for (int64_t j = 0; j < nj; j++)
      dst[j0 + j] += acc[j];
  }
}

/* The time loop runs on independent pieces of work, one per thread: a direction and a block
 * of batch rows, each with its own single-threaded step GEMMs (OpenBLAS runs one thread inside
 * a parallel region). One parallel region per layer instead of several per step: many small
 * regions cost more than the work on a loaded machine. */
static int64_t
row_blocks (int64_t b, int64_t dirs)
{
  int64_t threads = omp_get_max_threads ();
  int64_t per_dir = (threads + dirs - 1) / dirs;
  int64_t most = b / 8 > 0 ? b / 8 : 1; /* at least 8 rows per block */
  return per_dir < most ? per_dir : most;
}

typedef struct {
  const BpRnnDesc *d;
  const BpRnnLayout *s;
  const float *lengths;
  BpCpuGemm gemm; /* float32 or bfloat16 operands */
} StepCtx;

/* Forward time loop of one direction on batch rows [b0, b1): gates (T,B,GH) hold the input
 * projections and become the activated gates; hs, cs (T,B,H); y (T,B,DH). */
static BpStatus
forward_rows (const StepCtx *sc, int64_t dir, int64_t b0, int64_t b1, float *gates, float *hs,
              float *cs, float *y, const float *w_hh, const float *b_hh, const float *h0k,
              const float *c0k, float *h_n_k, float *c_n_k)
{
  const BpRnnLayout *s = sc->s;
  BpRnnMode mode = sc->d->mode;
  int64_t T = s->t, B = s->b, H = s->h, GH = s->g * H, DH = s->d * H, nb = b1 - b0;
  float *hh = malloc (sizeof (float) * (size_t) (nb * GH + nb * H));
  if (!hh)
    return BP_ERR_NOMEM;
  float *zeros = hh + nb * GH;
  memset (zeros, 0, sizeof (float) * (size_t) (nb * H));
  const float *h_prev = h0k ? h0k + b0 * H : zeros;
  const float *c_prev = c0k ? c0k + b0 * H : zeros;
  int64_t ld_prev = H;
  for (int64_t step = 0; step < T; step++) {
    int64_t t = dir == 0 ? step : T - 1 - step;
    /* hh (nb, GH) = h_prev @ w_hh^T */
    sc->gemm (false, true, nb, GH, H, 1.0f, h_prev, ld_prev, w_hh, H, 0.0f, hh, GH);
    float *gt = gates + (t * B + b0) * GH, *ht = hs + (t * B + b0) * H, *ct = cs + (t * B + b0) * H;
    for (int64_t bi = 0; bi < nb; bi++) {
      bool active = t < seq_len_of (sc->lengths, b0 + bi, T);
      float *g = gt + bi * GH;
      const float *q = hh + bi * GH, *hp = h_prev + bi * H, *cpv = c_prev + bi * H;
      float *hr = ht + bi * H, *yr = y + (t * B + b0 + bi) * DH + dir * H;
      for (int64_t j = 0; j < H; j++) {
        float h;
        if (mode == BP_RNN_LSTM) {
          float ig = sigmoidf (g[j] + q[j]), fg = sigmoidf (g[H + j] + q[H + j]);
          float gg = tanhf (g[2 * H + j] + q[2 * H + j]);
          float og = sigmoidf (g[3 * H + j] + q[3 * H + j]);
          g[j] = ig;
          g[H + j] = fg;
          g[2 * H + j] = gg;
          g[3 * H + j] = og;
          float c = fg * cpv[j] + ig * gg;
          h = og * tanhf (c);
          ct[bi * H + j] = active ? c : cpv[j];
        } else if (mode == BP_RNN_GRU) {
          float r = sigmoidf (g[j] + q[j]), z = sigmoidf (g[H + j] + q[H + j]);
          float hn = q[2 * H + j] + (b_hh ? b_hh[2 * H + j] : 0.0f);
          float n = tanhf (g[2 * H + j] + r * hn);
          g[j] = r;
          g[H + j] = z;
          g[2 * H + j] = n;
          ct[bi * H + j] = hn;
          h = (1.0f - z) * n + z * hp[j];
        } else {
          float a = g[j] + q[j];
          h = mode == BP_RNN_TANH ? tanhf (a) : (a > 0.0f ? a : 0.0f);
          g[j] = h;
        }
        hr[j] = active ? h : hp[j];
        yr[j] = active ? h : 0.0f;
      }
    }
    h_prev = ht;
    if (mode == BP_RNN_LSTM)
      c_prev = ct;
  }
  memcpy (h_n_k + b0 * H, h_prev, sizeof (float) * (size_t) (nb * H));
  if (mode == BP_RNN_LSTM && c_n_k)
    memcpy (c_n_k + b0 * H, c_prev, sizeof (float) * (size_t) (nb * H));
  free (hh);
  return BP_OK;
}

static BpStatus
rnn_forward (BpCpuGemm gemm, float *out, float *h_n, float *c_n, float *reserve, const float *x,
             const float *h0, const float *c0, const float *const *w, const float *lengths,
             const BpRnnDesc *d)
{
  BpRnnLayout s = bp_rnn_layout (d);
  int64_t T = s.t, B = s.b, H = s.h, G = s.g, D = s.d, GH = G * H, DH = D * H;
  int P = d->bias ? 4 : 2;
  BpRnnMode mode = d->mode;
  StepCtx sc = {d, &s, lengths, gemm};
  int64_t nblk = row_blocks (B, D);

  if (d->batch_first)
    transpose_bt (reserve + s.off_x0, x, B, T, s.i, true, false);
  else
    memcpy (reserve + s.off_x0, x, sizeof (float) * (size_t) (T * B * s.i));

  for (int64_t l = 0; l < s.l; l++) {
    const float *in = bp_rnn_res_in (reserve, &s, l);
    int64_t in_size = l == 0 ? s.i : DH;
    float *y = bp_rnn_res_y (reserve, &s, l);
    /* the input projections of every step: gates (T*B, GH) = in @ w_ih^T + b_ih (+ b_hh but
     * for GRU's n gate, which keeps b_hn inside r * (W_hn h + b_hn)) */
    for (int64_t dir = 0; dir < D; dir++) {
      int64_t k = l * D + dir;
      const float *b_ih = d->bias ? w[k * P + 2] : NULL, *b_hh = d->bias ? w[k * P + 3] : NULL;
      float *gates = bp_rnn_res_k (reserve, &s, k);
      if (d->bias) {
#pragma omp parallel for schedule(static) if (T * B * GH > 65536)
        for (int64_t r = 0; r < T * B; r++)
          for (int64_t j = 0; j < GH; j++)
            gates[r * GH + j] = b_ih[j] + (mode == BP_RNN_GRU && j >= 2 * H ? 0.0f : b_hh[j]);
      }
      gemm (false, true, T * B, GH, in_size, 1.0f, in, in_size, w[k * P], in_size,
            d->bias ? 1.0f : 0.0f, gates, GH);
    }
    int failed = 0;
#pragma omp parallel for schedule(static) if (D * nblk > 1) reduction(| : failed)
    for (int64_t item = 0; item < D * nblk; item++) {
      int64_t dir = item / nblk, blk = item % nblk;
      int64_t b0 = B * blk / nblk, b1 = B * (blk + 1) / nblk;
      int64_t k = l * D + dir;
      float *gates = bp_rnn_res_k (reserve, &s, k);
      float *hs = gates + T * B * GH;
      float *cs = hs + T * B * H; /* LSTM: the cells; GRU: hn */
      BpStatus st = forward_rows (&sc, dir, b0, b1, gates, hs, cs, y, w[k * P + 1],
                                  d->bias ? w[k * P + 3] : NULL, h0 ? h0 + k * B * H : NULL,
                                  c0 ? c0 + k * B * H : NULL, h_n + k * B * H,
                                  c_n ? c_n + k * B * H : NULL);
      failed |= st != BP_OK;
    }
    if (failed) {
      bp_set_error (BP_ERR_NOMEM, "rnn: out of memory for the step buffers");
      return BP_ERR_NOMEM;
    }
    if (s.drop && l < s.l - 1) {
      float *dst = bp_rnn_res_in (reserve, &s, l + 1);
      uint64_t key = bp_rng_hash (d->dropout_key, (uint64_t) l);
      float p = d->dropout, scale = 1.0f / (1.0f - p);
      int64_t n = T * B * DH;
#pragma omp parallel for schedule(static) if (n > 65536)
      for (int64_t i = 0; i < n; i++)
        dst[i] = bp_rng_hash_uniform (key, (uint64_t) i) >= p ? y[i] * scale : 0.0f;
    }
  }
  const float *top = bp_rnn_res_y (reserve, &s, s.l - 1);
  if (d->batch_first)
    transpose_bt (out, top, B, T, DH, false, false);
  else
    memcpy (out, top, sizeof (float) * (size_t) (T * B * DH));
  return BP_OK;
}

/* Per direction, what the backward's time loop writes: the gate gradients of every step (the
 * input side and, for GRU, the recurrent side), the state each step started from, and the
 * carries (B,H). */
typedef struct {
  float *dg_ih, *dg_hh, *hprev, *dh, *dc, *dnew, *direct;
} DirGrads;

/* Backward time loop of one direction on batch rows [b0, b1). */
static void
backward_rows (const StepCtx *sc, int64_t dir, int64_t b0, int64_t b1, const DirGrads *g,
               const float *gates, const float *hs, const float *cs, const float *dy,
               const float *w_hh, const float *h_init, const float *c_init)
{
  const BpRnnLayout *s = sc->s;
  BpRnnMode mode = sc->d->mode;
  bool gru = mode == BP_RNN_GRU, lstm = mode == BP_RNN_LSTM;
  int64_t T = s->t, B = s->b, H = s->h, GH = s->g * H, DH = s->d * H, nb = b1 - b0;
  float *dh = g->dh + b0 * H, *dc = g->dc + b0 * H, *dnew = g->dnew + b0 * H;
  float *direct = g->direct + b0 * H;
  for (int64_t step = T - 1; step >= 0; step--) {
    int64_t t = dir == 0 ? step : T - 1 - step;
    int64_t tp = dir == 0 ? t - 1 : t + 1; /* the step before in processing order */
    bool first = step == 0;
    const float *hp = first ? (h_init ? h_init + b0 * H : NULL) : hs + (tp * B + b0) * H;
    const float *cp = first ? (c_init ? c_init + b0 * H : NULL) : cs + (tp * B + b0) * H;
    float *hpr = g->hprev + (t * B + b0) * H;
    if (hp)
      memcpy (hpr, hp, sizeof (float) * (size_t) (nb * H));
    else
      memset (hpr, 0, sizeof (float) * (size_t) (nb * H));
    const float *gt = gates + (t * B + b0) * GH, *ct = cs + (t * B + b0) * H;
    float *gi = g->dg_ih + (t * B + b0) * GH, *gh = g->dg_hh + (t * B + b0) * GH;
    for (int64_t bi = 0; bi < nb; bi++) {
      bool active = t < seq_len_of (sc->lengths, b0 + bi, T);
      float *gir = gi + bi * GH, *ghr = gh + bi * GH;
      if (!active) {
        memset (gir, 0, sizeof (float) * (size_t) GH);
        if (gru)
          memset (ghr, 0, sizeof (float) * (size_t) GH);
        for (int64_t j = 0; j < H; j++)
          direct[bi * H + j] = 0.0f;
        continue;
      }
      const float *gr = gt + bi * GH, *dyr = dy + (t * B + b0 + bi) * DH + dir * H;
      for (int64_t j = 0; j < H; j++) {
        float dht = dh[bi * H + j] + dyr[j];
        if (lstm) {
          float ig = gr[j], fg = gr[H + j], gg = gr[2 * H + j], og = gr[3 * H + j];
          float c = ct[bi * H + j], tc = tanhf (c);
          float cprev = cp ? cp[bi * H + j] : 0.0f;
          float dct = dc[bi * H + j] + dht * og * (1.0f - tc * tc);
          gir[j] = dct * gg * ig * (1.0f - ig);
          gir[H + j] = dct * cprev * fg * (1.0f - fg);
          gir[2 * H + j] = dct * ig * (1.0f - gg * gg);
          gir[3 * H + j] = dht * tc * og * (1.0f - og);
          dc[bi * H + j] = dct * fg; /* the carry to the step before */
          direct[bi * H + j] = 0.0f;
        } else if (gru) {
          float r = gr[j], z = gr[H + j], n = gr[2 * H + j], hn = ct[bi * H + j];
          float hprv = hp ? hp[bi * H + j] : 0.0f;
          float dn = dht * (1.0f - z) * (1.0f - n * n);
          float dz = dht * (hprv - n) * z * (1.0f - z);
          float dr = dn * hn * r * (1.0f - r);
          gir[j] = ghr[j] = dr;
          gir[H + j] = ghr[H + j] = dz;
          gir[2 * H + j] = dn;
          ghr[2 * H + j] = dn * r;
          direct[bi * H + j] = dht * z;
        } else {
          float h = gr[j];
          gir[j] = mode == BP_RNN_TANH ? dht * (1.0f - h * h) : (h > 0.0f ? dht : 0.0f);
          direct[bi * H + j] = 0.0f;
        }
      }
    }
    /* dnew (nb,H) = dg_hh (nb,GH) @ w_hh (GH,H) */
    sc->gemm (false, false, nb, H, GH, 1.0f, gh, GH, w_hh, H, 0.0f, dnew, H);
    for (int64_t bi = 0; bi < nb; bi++) {
      if (t >= seq_len_of (sc->lengths, b0 + bi, T))
        continue; /* the carries pass an inactive step unchanged */
      for (int64_t j = 0; j < H; j++)
        dh[bi * H + j] = dnew[bi * H + j] + direct[bi * H + j];
    }
  }
}

static BpStatus
rnn_backward (BpCpuGemm gemm, float *dx, float *dh0, float *dc0, float *const *dw,
              const float *dout, const float *dh_n, const float *dc_n, const float *reserve_c,
              const float *x, const float *h0, const float *c0, const float *const *w,
              const float *lengths, const BpRnnDesc *d)
{
  float *reserve = (float *) reserve_c; /* read only: res_* helpers take it unqualified */
  BpRnnLayout s = bp_rnn_layout (d);
  int64_t T = s.t, B = s.b, H = s.h, G = s.g, D = s.d, GH = G * H, DH = D * H, TB = T * B;
  int P = d->bias ? 4 : 2;
  bool gru = d->mode == BP_RNN_GRU, lstm = d->mode == BP_RNN_LSTM;
  StepCtx sc = {d, &s, lengths, gemm};
  int64_t nblk = row_blocks (B, D);
  int64_t in_max = s.i > DH ? s.i : DH;
  /* scratch: dy (T,B,DH), dxl (T,B,in_max), and per direction dg_ih (T,B,GH), dg_hh (GRU),
   * hprev (T,B,H), carries dh, dc, dnew, direct (B,H each) */
  int64_t per_dir = TB * GH * (gru ? 2 : 1) + TB * H + 4 * B * H;
  size_t n_scratch = (size_t) (TB * DH + TB * in_max + D * per_dir);
  float *scratch = malloc (sizeof (float) * n_scratch);
  if (!scratch) {
    bp_set_error (BP_ERR_NOMEM, "rnn backward: out of memory for %zu floats", n_scratch);
    return BP_ERR_NOMEM;
  }
  float *dy = scratch, *dxl = dy + TB * DH;
  DirGrads g[2];
  for (int64_t dir = 0; dir < D; dir++) {
    float *base = dxl + TB * in_max + dir * per_dir;
    g[dir].dg_ih = base;
    g[dir].dg_hh = gru ? base + TB * GH : base;
    g[dir].hprev = base + TB * GH * (gru ? 2 : 1);
    g[dir].dh = g[dir].hprev + TB * H;
    g[dir].dc = g[dir].dh + B * H;
    g[dir].dnew = g[dir].dc + B * H;
    g[dir].direct = g[dir].dnew + B * H;
  }

  if (d->batch_first)
    transpose_bt (dy, dout, B, T, DH, true, false);
  else
    memcpy (dy, dout, sizeof (float) * (size_t) (TB * DH));

  for (int64_t l = s.l - 1; l >= 0; l--) {
    const float *in = bp_rnn_res_in (reserve, &s, l);
    int64_t in_size = l == 0 ? s.i : DH;
    bool need_dx = l > 0 || dx;
    for (int64_t dir = 0; dir < D; dir++) {
      int64_t k = l * D + dir;
      if (dh_n)
        memcpy (g[dir].dh, dh_n + k * B * H, sizeof (float) * (size_t) (B * H));
      else
        memset (g[dir].dh, 0, sizeof (float) * (size_t) (B * H));
      if (lstm && dc_n)
        memcpy (g[dir].dc, dc_n + k * B * H, sizeof (float) * (size_t) (B * H));
      else
        memset (g[dir].dc, 0, sizeof (float) * (size_t) (B * H));
    }
#pragma omp parallel for schedule(static) if (D * nblk > 1)
    for (int64_t item = 0; item < D * nblk; item++) {
      int64_t dir = item / nblk, blk = item % nblk;
      int64_t b0 = B * blk / nblk, b1 = B * (blk + 1) / nblk;
      int64_t k = l * D + dir;
      const float *gates = bp_rnn_res_k (reserve, &s, k);
      const float *hs = gates + TB * GH, *cs = hs + TB * H;
      backward_rows (&sc, dir, b0, b1, &g[dir], gates, hs, cs, dy, w[k * P + 1],
                     h0 ? h0 + k * B * H : NULL, c0 ? c0 + k * B * H : NULL);
    }
    if (need_dx)
      memset (dxl, 0, sizeof (float) * (size_t) (TB * in_size));
    for (int64_t dir = 0; dir < D; dir++) {
      int64_t k = l * D + dir;
      if (dh0)
        for (int64_t i = 0; i < B * H; i++)
          dh0[k * B * H + i] += g[dir].dh[i];
      if (lstm && dc0)
        for (int64_t i = 0; i < B * H; i++)
          dc0[k * B * H + i] += g[dir].dc[i];
      /* weight gradients over all steps at once */
      float *dw_ih = dw ? dw[k * P] : NULL, *dw_hh = dw ? dw[k * P + 1] : NULL;
      float *db_ih = dw && d->bias ? dw[k * P + 2] : NULL;
      float *db_hh = dw && d->bias ? dw[k * P + 3] : NULL;
      if (dw_ih)
        gemm (true, false, GH, in_size, TB, 1.0f, g[dir].dg_ih, GH, in, in_size, 1.0f, dw_ih,
              in_size);
      if (dw_hh)
        gemm (true, false, GH, H, TB, 1.0f, g[dir].dg_hh, GH, g[dir].hprev, H, 1.0f, dw_hh, H);
      if (db_ih)
        col_sums (db_ih, g[dir].dg_ih, TB, GH);
      if (db_hh)
        col_sums (db_hh, g[dir].dg_hh, TB, GH);
      if (need_dx)
        gemm (false, false, TB, in_size, GH, 1.0f, g[dir].dg_ih, GH, w[k * P], in_size, 1.0f,
              dxl, in_size);
    }
    if (l > 0) {
      /* the gradient of layer l-1's output, through the dropout between them */
      if (s.drop) {
        uint64_t key = bp_rng_hash (d->dropout_key, (uint64_t) (l - 1));
        float p = d->dropout, scale = 1.0f / (1.0f - p);
        int64_t n = TB * DH;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t i = 0; i < n; i++)
          dy[i] = bp_rng_hash_uniform (key, (uint64_t) i) >= p ? dxl[i] * scale : 0.0f;
      } else {
        memcpy (dy, dxl, sizeof (float) * (size_t) (TB * DH));
      }
    } else if (dx) {
      if (d->batch_first)
        transpose_bt (dx, dxl, B, T, s.i, false, true);
      else
        for (int64_t i = 0; i < TB * s.i; i++)
          dx[i] += dxl[i];
    }
  }
  (void) x;
  free (scratch);
  return BP_OK;
}

static BpStatus
cpu_rnn_forward (float *out, float *h_n, float *c_n, float *reserve, const float *x,
                 const float *h0, const float *c0, const float *const *w, const float *lengths,
                 const BpRnnDesc *d)
{
  return rnn_forward (bp_cpu_gemm, out, h_n, c_n, reserve, x, h0, c0, w, lengths, d);
}

static BpStatus
cpu_rnn_backward (float *dx, float *dh0, float *dc0, float *const *dw, const float *dout,
                  const float *dh_n, const float *dc_n, const float *reserve, const float *x,
                  const float *h0, const float *c0, const float *const *w, const float *lengths,
                  const BpRnnDesc *d)
{
  return rnn_backward (bp_cpu_gemm, dx, dh0, dc0, dw, dout, dh_n, dc_n, reserve, x, h0, c0, w,
                       lengths, d);
}

/* Every product (input projections, recurrent steps, weight and input gradients) with
 * bfloat16 operands; gates, states and sums stay float32. */
static BpStatus
cpu_rnn_forward_bf16 (float *out, float *h_n, float *c_n, float *reserve, const float *x,
                      const float *h0, const float *c0, const float *const *w,
                      const float *lengths, const BpRnnDesc *d)
{
  return rnn_forward (bp_cpu_gemm_bf16, out, h_n, c_n, reserve, x, h0, c0, w, lengths, d);
}

static BpStatus
cpu_rnn_backward_bf16 (float *dx, float *dh0, float *dc0, float *const *dw, const float *dout,
                       const float *dh_n, const float *dc_n, const float *reserve,
                       const float *x, const float *h0, const float *c0,
                       const float *const *w, const float *lengths, const BpRnnDesc *d)
{
  return rnn_backward (bp_cpu_gemm_bf16, dx, dh0, dc0, dw, dout, dh_n, dc_n, reserve, x, h0, c0,
                       w, lengths, d);
}

const BpRnnKernels bp_cpu_rnn_kernels = {
  .reserve_size = cpu_reserve_size,
  .forward = cpu_rnn_forward,
  .backward = cpu_rnn_backward,
};

const BpRnnKernels bp_cpu_rnn_bf16_kernels = {
  .reserve_size = cpu_reserve_size,
  .forward = cpu_rnn_forward_bf16,
  .backward = cpu_rnn_backward_bf16,
};
