/* cpu/conv.c: CPU kernels of the conv family: conv2d as im2col + OpenBLAS GEMM over fixed
 * chunks of images spread over OpenMP threads, and the pooling loops. Results do not depend
 * on the thread count: the chunking depends only on the shapes, and sums over images are
 * reduced in a fixed order. */
#include "cpu-kernels.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

/* ---- conv2d ----
 * For group g and a chunk of nb images, the column matrix col (K, nb*P) holds in row
 * (c, ky, kx) and column (b, oy, ox) the input value x[b][g*Cin_g + c][iy][ix] under that
 * kernel tap (0 in the padding), K = Cin_g*Kh*Kw, P = Ho*Wo. Then
 *   out_g (Cout_g, nb*P) = w_g (Cout_g, K) @ col          (forward)
 *   dcol (K, nb*P) = w_g^T @ dout_g, scattered back onto dx (input gradient)
 *   dw_g (Cout_g, K) += dout_g @ col^T                      (weight gradient)
 * One big GEMM per chunk runs far better than one per image (P is only 49 on a 7x7 map). */

/* Column-matrix floats per chunk: about 1 MiB, so that col stays in the L2/L3 cache. */
#define COL_BUDGET (256 * 1024)
/* At least this many chunks when there are enough images, to share them over threads. */
#define MIN_CHUNKS 8
/* Weight-gradient partial sums: one per slot of consecutive chunks, summed in slot order. */
#define MAX_SLOTS 8

typedef struct {
  int64_t cin_g, cout_g; /* channels per group */
  int64_t k;             /* rows of col: Cin_g*Kh*Kw */
  int64_t p;             /* output positions per image: Ho*Wo */
  int64_t chunk;         /* images per chunk */
  int64_t n_chunks;
  bool pointwise;        /* 1x1, stride 1, no padding: col is the input itself */
} ConvPlan;

static ConvPlan
conv_plan (const BpConv2dShape *s)
{
  ConvPlan pl;
  pl.cin_g = s->c_in / s->groups;
  pl.cout_g = s->c_out / s->groups;
  pl.k = pl.cin_g * s->kh * s->kw;
  pl.p = s->h_out * s->w_out;
  pl.pointwise = s->kh == 1 && s->kw == 1 && s->stride[0] == 1 && s->stride[1] == 1 &&
                 s->padding[0] == 0 && s->padding[1] == 0;
  int64_t per_image = pl.k * pl.p > 0 ? pl.k * pl.p : 1;
  int64_t chunk = COL_BUDGET / per_image;
  int64_t spread = (s->n + MIN_CHUNKS - 1) / MIN_CHUNKS;
  if (chunk > spread)
    chunk = spread;
  pl.chunk = chunk < 1 ? 1 : chunk;
  pl.n_chunks = (s->n + pl.chunk - 1) / pl.chunk;
  return pl;
}

/* OpenBLAS's own threads split these small products badly (about half the speed of one
 * single-threaded GEMM per OpenMP thread on 2 cores), so the kernels that spread chunks over
 * threads make it single-threaded meanwhile. Returns the count to restore. */
static int
blas_serial_begin (bool parallel)
{
  int n = openblas_get_num_threads ();
  if (parallel && n > 1)
    openblas_set_num_threads (1);
  return n;
}

static void
blas_serial_end (bool parallel, int n)
{
  if (parallel && n > 1)
    openblas_set_num_threads (n);
}

/* The output columns [lo, hi) whose input column ox*stride + off lies inside [0, size). */
static void
valid_range (int64_t size, int64_t off, int stride, int64_t n_out, int64_t *lo, int64_t *hi)
{
  int64_t a = off >= 0 ? 0 : (-off + stride - 1) / stride;
  int64_t b = size - off <= 0 ? 0 : (size - 1 - off) / stride + 1;
  *lo = a < n_out ? a : n_out;
  *hi = b < n_out ? b : n_out;
  if (*hi < *lo)
    *hi = *lo;
}

static void
im2col (float *col, const float *x, int64_t nb, int64_t c0, const BpConv2dShape *s,
        const ConvPlan *pl)
{
  /* col (K, nb*P), x (nb,Cin,H,W) from channel c0 */
  int64_t hw = s->h * s->w, ld = nb * pl->p;
  for (int64_t c = 0; c < pl->cin_g; c++)
    for (int ky = 0; ky < s->kh; ky++)
      for (int kx = 0; kx < s->kw; kx++) {
        float *row = col + ((c * s->kh + ky) * s->kw + kx) * ld;
        int64_t ix0 = (int64_t) kx * s->dilation[1] - s->padding[1];
        int64_t lo, hi;
        valid_range (s->w, ix0, s->stride[1], s->w_out, &lo, &hi);
        for (int64_t b = 0; b < nb; b++) {
          const float *xp = x + (b * s->c_in + c0 + c) * hw;
          float *dst = row + b * pl->p;
          for (int64_t oy = 0; oy < s->h_out; oy++, dst += s->w_out) {
            int64_t iy = oy * s->stride[0] - s->padding[0] + (int64_t) ky * s->dilation[0];
            if (iy < 0 || iy >= s->h) {
              memset (dst, 0, (size_t) s->w_out * sizeof (float));
              continue;
            }
            /* input column of output column ox: ox*stride + ix0 */
            const float *src = xp + iy * s->w;
            for (int64_t ox = 0; ox < lo; ox++)
              dst[ox] = 0.0f;
            if (s->stride[1] == 1)
              memcpy (dst + lo, src + lo + ix0, (size_t) (hi - lo) * sizeof (float));
            else
              for (int64_t ox = lo; ox < hi; ox++)
                dst[ox] = src[ox * s->stride[1] + ix0];
            for (int64_t ox = hi; ox < s->w_out; ox++)
              dst[ox] = 0.0f;
          }
        }
      }
}

static void
col2im_add (float *dx, const float *col, int64_t nb, int64_t c0, const BpConv2dShape *s,
            const ConvPlan *pl)
{
  /* dx (nb,Cin,H,W) from channel c0 += col (K, nb*P) summed back onto the input positions */
  int64_t hw = s->h * s->w, ld = nb * pl->p;
  for (int64_t b = 0; b < nb; b++)
    for (int64_t c = 0; c < pl->cin_g; c++) {
      float *dp = dx + (b * s->c_in + c0 + c) * hw;
      for (int ky = 0; ky < s->kh; ky++)
        for (int kx = 0; kx < s->kw; kx++) {
          const float *src = col + ((c * s->kh + ky) * s->kw + kx) * ld + b * pl->p;
          int64_t ix0 = (int64_t) kx * s->dilation[1] - s->padding[1];
          int64_t lo, hi;
          valid_range (s->w, ix0, s->stride[1], s->w_out, &lo, &hi);
          for (int64_t oy = 0; oy < s->h_out; oy++, src += s->w_out) {
            int64_t iy = oy * s->stride[0] - s->padding[0] + (int64_t) ky * s->dilation[0];
            if (iy < 0 || iy >= s->h)
              continue;
            float *d = dp + iy * s->w;
            if (s->stride[1] == 1)
              for (int64_t ox = lo; ox < hi; ox++)
                d[ox + ix0] += src[ox];
            else
              for (int64_t ox = lo; ox < hi; ox++)
                d[ox * s->stride[1] + ix0] += src[ox];
          }
        }
    }
}

/* Scratch memory: `per_thread` floats for each of `threads` threads plus `shared` floats. */
typedef struct {
  float *base;
  size_t bytes;
} Scratch;

static bool
scratch_alloc (Scratch *sc, int64_t floats)
{
  sc->bytes = (size_t) (floats > 0 ? floats : 1) * sizeof (float);
  sc->base = bp_cpu_backend.alloc (sc->bytes);
  return sc->base != NULL;
}

static void
scratch_free (Scratch *sc)
{
  bp_cpu_backend.free (sc->base, sc->bytes);
}

static void
conv_forward_chunk (float *out, const float *x, const float *w, const float *bias, int64_t nb,
                    const BpConv2dShape *s, const ConvPlan *pl, float *col, float *tmp)
{
  /* out (nb,Cout,Ho,Wo), x (nb,Cin,H,W); col (K, nb*P), tmp (Cout_g, nb*P) scratch */
  int64_t p = pl->p, ld = nb * p;
  for (int g = 0; g < s->groups; g++) {
    const float *wg = w + g * pl->cout_g * pl->k;
    if (pl->pointwise) {
      for (int64_t b = 0; b < nb; b++)
        bp_cpu_gemm (false, false, pl->cout_g, p, pl->k, 1.0f, wg, pl->k,
                     x + (b * s->c_in + g * pl->cin_g) * p, p, 0.0f,
                     out + (b * s->c_out + g * pl->cout_g) * p, p);
      if (bias)
        for (int64_t b = 0; b < nb; b++)
          for (int64_t oc = 0; oc < pl->cout_g; oc++) {
            float *o = out + (b * s->c_out + g * pl->cout_g + oc) * p, bv = bias[g * pl->cout_g + oc];
            for (int64_t i = 0; i < p; i++)
              o[i] += bv;
          }
      continue;
    }
    im2col (col, x, nb, g * pl->cin_g, s, pl);
    bp_cpu_gemm (false, false, pl->cout_g, ld, pl->k, 1.0f, wg, pl->k, col, ld, 0.0f, tmp, ld);
    for (int64_t oc = 0; oc < pl->cout_g; oc++) {
      float bv = bias ? bias[g * pl->cout_g + oc] : 0.0f;
      for (int64_t b = 0; b < nb; b++) {
        const float *t = tmp + oc * ld + b * p;
        float *o = out + (b * s->c_out + g * pl->cout_g + oc) * p;
        for (int64_t i = 0; i < p; i++)
          o[i] = t[i] + bv;
      }
    }
  }
}

static BpStatus
conv2d_forward (float *out, const float *x, const float *w, const float *bias,
                const BpConv2dShape *s)
{
  ConvPlan pl = conv_plan (s);
  int threads = omp_get_max_threads ();
  bool parallel = pl.n_chunks > 1 && threads > 1;
  if (!parallel)
    threads = 1;
  int64_t cols = pl.chunk * pl.p;
  int64_t per_thread = pl.pointwise ? 0 : (pl.k + pl.cout_g) * cols;
  Scratch sc;
  if (!scratch_alloc (&sc, per_thread * threads))
    return BP_ERR_NOMEM;
  int blas_threads = blas_serial_begin (parallel);
  int64_t in_image = s->c_in * s->h * s->w, out_image = s->c_out * pl.p;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t c = 0; c < pl.n_chunks; c++) {
    float *col = sc.base + omp_get_thread_num () * per_thread;
    int64_t b0 = c * pl.chunk, nb = s->n - b0 < pl.chunk ? s->n - b0 : pl.chunk;
    conv_forward_chunk (out + b0 * out_image, x + b0 * in_image, w, bias, nb, s, &pl, col,
                        col + pl.k * cols);
  }
  blas_serial_end (parallel, blas_threads);
  scratch_free (&sc);
  return BP_OK;
}

static void
conv_backward_chunk (float *dx, float *dw_part, const float *dout, const float *x,
                     const float *w, int64_t nb, const BpConv2dShape *s, const ConvPlan *pl,
                     float *col, float *dcol, float *tmp)
{
  /* dx (nb,Cin,H,W) +=, dw_part (Cout,K) += this chunk's share; dout (nb,Cout,Ho,Wo),
   * x (nb,Cin,H,W); col, dcol (K, nb*P) and tmp (Cout_g, nb*P) scratch */
  int64_t p = pl->p, ld = nb * p;
  for (int g = 0; g < s->groups; g++) {
    const float *wg = w + g * pl->cout_g * pl->k;
    if (pl->pointwise) {
      for (int64_t b = 0; b < nb; b++) {
        const float *dg = dout + (b * s->c_out + g * pl->cout_g) * p;
        const float *xg = x + (b * s->c_in + g * pl->cin_g) * p;
        if (dw_part)
          bp_cpu_gemm (false, true, pl->cout_g, pl->k, p, 1.0f, dg, p, xg, p, 1.0f,
                       dw_part + g * pl->cout_g * pl->k, pl->k);
        if (dx)
          bp_cpu_gemm (true, false, pl->k, p, pl->cout_g, 1.0f, wg, pl->k, dg, p, 1.0f,
                       dx + (b * s->c_in + g * pl->cin_g) * p, p);
      }
      continue;
    }
    /* gather dout_g (Cout_g, nb*P) */
    for (int64_t oc = 0; oc < pl->cout_g; oc++)
      for (int64_t b = 0; b < nb; b++)
        memcpy (tmp + oc * ld + b * p, dout + (b * s->c_out + g * pl->cout_g + oc) * p,
                (size_t) p * sizeof (float));
    if (dw_part) {
      im2col (col, x, nb, g * pl->cin_g, s, pl);
      bp_cpu_gemm (false, true, pl->cout_g, pl->k, ld, 1.0f, tmp, ld, col, ld, 1.0f,
                   dw_part + g * pl->cout_g * pl->k, pl->k);
    }
    if (dx) {
      bp_cpu_gemm (true, false, pl->k, ld, pl->cout_g, 1.0f, wg, pl->k, tmp, ld, 0.0f, dcol, ld);
      col2im_add (dx, dcol, nb, g * pl->cin_g, s, pl);
    }
  }
}

static BpStatus
conv2d_backward (float *dx, float *dw, const float *dout, const float *x, const float *w,
                 const BpConv2dShape *s)
{
  ConvPlan pl = conv_plan (s);
  int64_t slots = pl.n_chunks < MAX_SLOTS ? pl.n_chunks : MAX_SLOTS;
  int threads = omp_get_max_threads ();
  bool parallel = slots > 1 && threads > 1;
  if (!parallel)
    threads = 1;
  int64_t cols = pl.chunk * pl.p, wsize = s->c_out * pl.k;
  int64_t per_thread = pl.pointwise ? 0 : (2 * pl.k + pl.cout_g) * cols;
  int64_t shared = dw ? slots * wsize : 0;
  Scratch sc;
  if (!scratch_alloc (&sc, per_thread * threads + shared))
    return BP_ERR_NOMEM;
  float *parts = sc.base + per_thread * threads;
  if (shared)
    memset (parts, 0, (size_t) shared * sizeof (float));
  int blas_threads = blas_serial_begin (parallel);
  int64_t in_image = s->c_in * s->h * s->w, out_image = s->c_out * pl.p;
  /* slot j runs chunks [j*n_chunks/slots, (j+1)*n_chunks/slots) in order into parts[j] */
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t j = 0; j < slots; j++) {
    float *col = sc.base + omp_get_thread_num () * per_thread;
    for (int64_t c = j * pl.n_chunks / slots; c < (j + 1) * pl.n_chunks / slots; c++) {
      int64_t b0 = c * pl.chunk, nb = s->n - b0 < pl.chunk ? s->n - b0 : pl.chunk;
      conv_backward_chunk (dx ? dx + b0 * in_image : NULL, dw ? parts + j * wsize : NULL,
                           dout + b0 * out_image, x + b0 * in_image, w, nb, s, &pl, col,
                           col + pl.k * cols, col + 2 * pl.k * cols);
    }
  }
  blas_serial_end (parallel, blas_threads);
  if (dw) {
#pragma omp parallel for schedule(static) if (wsize > 16384)
    for (int64_t i = 0; i < wsize; i++) {
      float sum = 0.0f;
      for (int64_t j = 0; j < slots; j++)
        sum += parts[j * wsize + i];
      dw[i] += sum;
    }
  }
  scratch_free (&sc);
  return BP_OK;
}

static void
conv2d_backward_bias (float *db, const float *dout, const BpConv2dShape *s)
{
  /* db (Cout) += sum of dout (N,Cout,Ho,Wo) over N, Ho, Wo; 8 running sums per channel */
  int64_t p = s->h_out * s->w_out;
#pragma omp parallel for schedule(static) if (s->n * s->c_out * p > 65536)
  for (int64_t oc = 0; oc < s->c_out; oc++) {
    float acc[8] = {0};
    for (int64_t b = 0; b < s->n; b++) {
      const float *d = dout + (b * s->c_out + oc) * p;
      int64_t i = 0;
      for (; i + 8 <= p; i += 8)
        for (int l = 0; l < 8; l++)
          acc[l] += d[i + l];
      for (; i < p; i++)
        acc[i & 7] += d[i];
    }
    db[oc] += ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  }
}

/* ---- pooling: one input plane (n, c) per loop iteration, so planes never race ---- */

static void
max_pool2d_forward (float *out, int32_t *argmax, const float *x, const BpPool2dShape *s)
{
  /* out, argmax (N,C,Ho,Wo), x (N,C,H,W) */
  int64_t planes = s->n * s->c, hw = s->h * s->w, ohw = s->h_out * s->w_out;
#pragma omp parallel for schedule(static) if (planes * hw > 32768)
  for (int64_t pl = 0; pl < planes; pl++) {
    const float *xp = x + pl * hw;
    float *op = out + pl * ohw;
    int32_t *ap = argmax ? argmax + pl * ohw : NULL;
    for (int64_t oy = 0; oy < s->h_out; oy++) {
      int64_t y0 = oy * s->stride[0] - s->padding[0], y1 = y0 + s->kh;
      y0 = y0 < 0 ? 0 : y0;
      y1 = y1 > s->h ? s->h : y1;
      for (int64_t ox = 0; ox < s->w_out; ox++) {
        int64_t x0 = ox * s->stride[1] - s->padding[1], x1 = x0 + s->kw;
        x0 = x0 < 0 ? 0 : x0;
        x1 = x1 > s->w ? s->w : x1;
        float best = -INFINITY;
        int64_t at = y0 * s->w + x0;
        for (int64_t iy = y0; iy < y1; iy++)
          for (int64_t ix = x0; ix < x1; ix++) {
            float v = xp[iy * s->w + ix];
            if (v > best || isnan (v)) {
              best = v;
              at = iy * s->w + ix;
            }
          }
        op[oy * s->w_out + ox] = best;
        if (ap)
          ap[oy * s->w_out + ox] = (int32_t) at;
      }
    }
  }
}

static void
max_pool2d_backward (float *dx, const float *dout, const int32_t *argmax, const BpPool2dShape *s)
{
  /* dx (N,C,H,W) += dout (N,C,Ho,Wo) at argmax */
  int64_t planes = s->n * s->c, hw = s->h * s->w, ohw = s->h_out * s->w_out;
#pragma omp parallel for schedule(static) if (planes * hw > 32768)
  for (int64_t pl = 0; pl < planes; pl++) {
    float *dp = dx + pl * hw;
    const float *gp = dout + pl * ohw;
    const int32_t *ap = argmax + pl * ohw;
    for (int64_t i = 0; i < ohw; i++)
      dp[ap[i]] += gp[i];
  }
}

/* Window [y0, y1) x [x0, x1) of output (oy, ox), clipped to the input, and its divisor. */
static float
avg_window (const BpPool2dShape *s, int64_t oy, int64_t ox, int64_t *y0, int64_t *y1,
            int64_t *x0, int64_t *x1)
{
  int64_t a = oy * s->stride[0] - s->padding[0], b = ox * s->stride[1] - s->padding[1];
  int64_t a1 = a + s->kh, b1 = b + s->kw;
  *y0 = a < 0 ? 0 : a;
  *y1 = a1 > s->h ? s->h : a1;
  *x0 = b < 0 ? 0 : b;
  *x1 = b1 > s->w ? s->w : b1;
  if (s->count_include_pad)
    return (float) (s->kh * s->kw);
  return (float) ((*y1 - *y0) * (*x1 - *x0));
}

static void
avg_pool2d_forward (float *out, const float *x, const BpPool2dShape *s)
{
  /* out (N,C,Ho,Wo), x (N,C,H,W) */
  int64_t planes = s->n * s->c, hw = s->h * s->w, ohw = s->h_out * s->w_out;
#pragma omp parallel for schedule(static) if (planes * hw > 32768)
  for (int64_t pl = 0; pl < planes; pl++) {
    const float *xp = x + pl * hw;
    for (int64_t oy = 0; oy < s->h_out; oy++)
      for (int64_t ox = 0; ox < s->w_out; ox++) {
        int64_t y0, y1, x0, x1;
        float div = avg_window (s, oy, ox, &y0, &y1, &x0, &x1);
        float sum = 0.0f;
        for (int64_t iy = y0; iy < y1; iy++)
          for (int64_t ix = x0; ix < x1; ix++)
            sum += xp[iy * s->w + ix];
        out[pl * ohw + oy * s->w_out + ox] = sum / div;
      }
  }
}

static void
avg_pool2d_backward (float *dx, const float *dout, const BpPool2dShape *s)
{
  /* dx (N,C,H,W) += dout (N,C,Ho,Wo) / divisor over each window */
  int64_t planes = s->n * s->c, hw = s->h * s->w, ohw = s->h_out * s->w_out;
#pragma omp parallel for schedule(static) if (planes * hw > 32768)
  for (int64_t pl = 0; pl < planes; pl++) {
    float *dp = dx + pl * hw;
    for (int64_t oy = 0; oy < s->h_out; oy++)
      for (int64_t ox = 0; ox < s->w_out; ox++) {
        int64_t y0, y1, x0, x1;
        float g = dout[pl * ohw + oy * s->w_out + ox] / avg_window (s, oy, ox, &y0, &y1, &x0, &x1);
        for (int64_t iy = y0; iy < y1; iy++)
          for (int64_t ix = x0; ix < x1; ix++)
            dp[iy * s->w + ix] += g;
      }
  }
}

/* PyTorch's adaptive windows: [floor (i*in/out), ceil ((i+1)*in/out)). */
static inline int64_t
adaptive_start (int64_t i, int64_t in, int64_t out)
{
  return i * in / out;
}

static inline int64_t
adaptive_end (int64_t i, int64_t in, int64_t out)
{
  return ((i + 1) * in + out - 1) / out;
}

static void
adaptive_avg_pool2d_forward (float *out, const float *x, const BpPool2dShape *s)
{
  /* out (N,C,Ho,Wo), x (N,C,H,W) */
  int64_t planes = s->n * s->c, hw = s->h * s->w, ohw = s->h_out * s->w_out;
#pragma omp parallel for schedule(static) if (planes * hw > 32768)
  for (int64_t pl = 0; pl < planes; pl++) {
    const float *xp = x + pl * hw;
    for (int64_t oy = 0; oy < s->h_out; oy++) {
      int64_t y0 = adaptive_start (oy, s->h, s->h_out), y1 = adaptive_end (oy, s->h, s->h_out);
      for (int64_t ox = 0; ox < s->w_out; ox++) {
        int64_t x0 = adaptive_start (ox, s->w, s->w_out), x1 = adaptive_end (ox, s->w, s->w_out);
        float sum = 0.0f;
        for (int64_t iy = y0; iy < y1; iy++)
          for (int64_t ix = x0; ix < x1; ix++)
            sum += xp[iy * s->w + ix];
        out[pl * ohw + oy * s->w_out + ox] = sum / (float) ((y1 - y0) * (x1 - x0));
      }
    }
  }
}

static void
adaptive_avg_pool2d_backward (float *dx, const float *dout, const BpPool2dShape *s)
{
  /* dx (N,C,H,W) += dout (N,C,Ho,Wo) spread evenly over each window */
  int64_t planes = s->n * s->c, hw = s->h * s->w, ohw = s->h_out * s->w_out;
#pragma omp parallel for schedule(static) if (planes * hw > 32768)
  for (int64_t pl = 0; pl < planes; pl++) {
    float *dp = dx + pl * hw;
    for (int64_t oy = 0; oy < s->h_out; oy++) {
      int64_t y0 = adaptive_start (oy, s->h, s->h_out), y1 = adaptive_end (oy, s->h, s->h_out);
      for (int64_t ox = 0; ox < s->w_out; ox++) {
        int64_t x0 = adaptive_start (ox, s->w, s->w_out), x1 = adaptive_end (ox, s->w, s->w_out);
        float g = dout[pl * ohw + oy * s->w_out + ox] / (float) ((y1 - y0) * (x1 - x0));
        for (int64_t iy = y0; iy < y1; iy++)
          for (int64_t ix = x0; ix < x1; ix++)
            dp[iy * s->w + ix] += g;
      }
    }
  }
}

const BpConvKernels bp_cpu_conv_kernels = {
  .conv2d_forward = conv2d_forward,
  .conv2d_backward = conv2d_backward,
  .conv2d_backward_bias = conv2d_backward_bias,
  .max_pool2d_forward = max_pool2d_forward,
  .max_pool2d_backward = max_pool2d_backward,
  .avg_pool2d_forward = avg_pool2d_forward,
  .avg_pool2d_backward = avg_pool2d_backward,
  .adaptive_avg_pool2d_forward = adaptive_avg_pool2d_forward,
  .adaptive_avg_pool2d_backward = adaptive_avg_pool2d_backward,
};
