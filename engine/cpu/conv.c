/* cpu/conv.c: CPU kernels of the conv family. conv2d takes one of four paths: direct AVX2
 * loops for stride-1 convolutions with few taps (first layers, depthwise), Winograd
 * F(2x2, 3x3) for the forward and input gradient of 3x3 stride-1 ones, im2col + OpenBLAS GEMM
 * for the rest (and every weight gradient but the direct path's), over fixed chunks of images
 * spread over OpenMP threads; then the pooling loops. Results do not depend on the thread
 * count: the chunking depends only on the shapes, and sums over images are reduced in a fixed
 * order. The bfloat16 table rounds the operands into copies and takes the same paths. */
#include "cpu-kernels.h"

#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
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
/* Winograd scratch floats per chunk (2 MiB), and the fewest channels it is used for. */
#define WINO_BUDGET (512 * 1024)
#define WINO_MIN_CHANNELS 8
/* Winograd data of one pass (input, V and M): about 1 MiB. Smaller passes stay in L2 but
 * stream all of U (16 Cin Cout floats) from L3 once per pass: measured slightly slower. */
#define WINO_PASS (256 * 1024)
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
  bool wino;             /* 3x3, stride 1: Winograd for the forward and input gradient */
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
  pl.wino = s->kh == 3 && s->kw == 3 && s->stride[0] == 1 && s->stride[1] == 1 &&
            s->dilation[0] == 1 && s->dilation[1] == 1 && s->padding[0] == s->padding[1] &&
            s->padding[0] <= 2 && pl.cin_g >= WINO_MIN_CHANNELS &&
            pl.cout_g >= WINO_MIN_CHANNELS;
  int64_t per_image = pl.k * pl.p > 0 ? pl.k * pl.p : 1;
  int64_t chunk = COL_BUDGET / per_image;
  if (pl.wino) {
    /* V and M of the Winograd GEMMs (16 (Cin_g + Cout_g) floats per 2x2 tile) and the
     * padded input */
    int64_t th = (s->h_out + 1) / 2, tw = (s->w_out + 1) / 2;
    int64_t wino_image = 16 * (pl.cin_g + pl.cout_g) * th * tw +
                         (2 * th + 2) * (2 * tw + 2) * pl.cin_g;
    int64_t wino_chunk = WINO_BUDGET / wino_image;
    chunk = wino_chunk < chunk ? wino_chunk : chunk;
  }
  int64_t spread = (s->n + MIN_CHUNKS - 1) / MIN_CHUNKS;
  if (chunk > spread)
    chunk = spread;
  pl.chunk = chunk < 1 ? 1 : chunk;
  pl.n_chunks = (s->n + pl.chunk - 1) / pl.chunk;
  return pl;
}

/* OpenBLAS's own threads split these small products badly (about half the speed of one
 * single-threaded GEMM per OpenMP thread on 2 cores), so the kernels spread chunks over
 * OpenMP threads and call single-threaded GEMMs. The OpenMP build of OpenBLAS does that by
 * itself inside a parallel region (and setting its thread count would reallocate its
 * buffers); the pthreads build is told to use one thread meanwhile. Returns the count to
 * restore, 0 for nothing to restore. */
static int
blas_serial_begin (bool parallel)
{
  int n = openblas_get_num_threads ();
  if (!parallel || n <= 1 || openblas_get_parallel () != 1)
    return 0;
  openblas_set_num_threads (1);
  return n;
}

static void
blas_serial_end (int n)
{
  if (n > 0)
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

/* Scratch memory from the backend's caching allocator (no system call after the first step). */
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

/* ---- direct path: stride 1 and few taps (K = Cin_g*Kh*Kw <= DIRECT_MAX_K) ----
 * A GEMM with K = 9 (a first layer on grey images, a depthwise conv) wastes most of its time
 * packing. Here each input plane is copied into a zero-padded plane of width Wp = W + 2*pw;
 * output position (y, x) of the padded-width grid q = y*Wp + x then reads tap (c, ky, kx) at
 * q + off[tap], off = c*plane + ky*dh*Wp + kx*dw, so every tap is one contiguous run (the
 * columns x >= Wo are computed and dropped). */
#define DIRECT_MAX_K 32
/* Padded input images the weight gradient keeps at a time (floats): 4 MiB. */
#define DIRECT_PAD_BUDGET (1024 * 1024)
/* Outputs per register block: 8 vectors of 8 floats. */
#define QB 64

typedef struct {
  int64_t wp;                /* padded width */
  int64_t plane;             /* floats per padded plane, with room for the overrun */
  int64_t nq;                /* positions computed per output plane: Ho*Wp rounded up to QB */
  int64_t off[DIRECT_MAX_K]; /* per tap */
} DirectPlan;

static bool
direct_fits (const BpConv2dShape *s, const ConvPlan *pl)
{
  return s->stride[0] == 1 && s->stride[1] == 1 && pl->k <= DIRECT_MAX_K && !pl->pointwise;
}

static DirectPlan
direct_plan (const BpConv2dShape *s, const ConvPlan *pl)
{
  DirectPlan d;
  int64_t hp = s->h + 2 * s->padding[0];
  d.wp = s->w + 2 * s->padding[1];
  d.nq = (s->h_out * d.wp + QB - 1) / QB * QB;
  /* the last tap of the last position: nq - 1 + (hp - Ho)*wp + (kw - 1)*dw */
  d.plane = hp * d.wp + (d.nq - s->h_out * d.wp) + (int64_t) (s->kw - 1) * s->dilation[1];
  d.plane = (d.plane + 15) / 16 * 16;
  for (int64_t c = 0; c < pl->cin_g; c++)
    for (int ky = 0; ky < s->kh; ky++)
      for (int kx = 0; kx < s->kw; kx++)
        d.off[(c * s->kh + ky) * s->kw + kx] =
          c * d.plane + (int64_t) ky * s->dilation[0] * d.wp + (int64_t) kx * s->dilation[1];
  return d;
}

static void
pad_planes (float *xp, const float *x, int64_t planes, const BpConv2dShape *s,
            const DirectPlan *d)
{
  /* xp (planes, plane) = x (planes, H, W) zero-padded */
  for (int64_t c = 0; c < planes; c++) {
    float *dst = xp + c * d->plane;
    memset (dst, 0, (size_t) d->plane * sizeof (float));
    for (int64_t y = 0; y < s->h; y++)
      memcpy (dst + (y + s->padding[0]) * d->wp + s->padding[1], x + (c * s->h + y) * s->w,
              (size_t) s->w * sizeof (float));
  }
}

static void
pad_grad_plane (float *dp, const float *dout, const BpConv2dShape *s, const DirectPlan *d)
{
  /* dp (nq) on the padded-width grid = dout (Ho, Wo), zero in the dropped columns */
  memset (dp, 0, (size_t) d->nq * sizeof (float));
  for (int64_t y = 0; y < s->h_out; y++)
    memcpy (dp + y * d->wp, dout + y * s->w_out, (size_t) s->w_out * sizeof (float));
}

/* The three inner loops: plain C, and AVX2 + FMA when the CPU has it. nq is a multiple of
 * QB. */
static void
direct_forward_plane_base (float *restrict outp, const float *restrict xp,
                           const float *restrict wk, float bias, int64_t k, const int64_t *off,
                           int64_t nq)
{
  /* outp (nq) = bias + sum over taps t of wk[t] * xp[off[t] + q] */
  for (int64_t q = 0; q < nq; q++)
    outp[q] = bias;
  for (int64_t t = 0; t < k; t++)
    for (int64_t q = 0; q < nq; q++)
      outp[q] += wk[t] * xp[off[t] + q];
}

static void
direct_weight_plane_base (float *restrict acc, const float *restrict dp,
                          const float *restrict xp, int64_t k, const int64_t *off, int64_t nq)
{
  /* acc (k, 8) += lane sums of dp[q] * xp[off[t] + q] (lane q % 8) */
  for (int64_t t = 0; t < k; t++)
    for (int64_t q = 0; q < nq; q++)
      acc[t * 8 + q % 8] += dp[q] * xp[off[t] + q];
}

static void
direct_input_plane_base (float *restrict dxp, const float *restrict dp,
                         const float *restrict wk, int64_t k, const int64_t *off, int64_t nq)
{
  /* dxp[off[t] + q] += wk[t] * dp[q] */
  for (int64_t t = 0; t < k; t++)
    for (int64_t q = 0; q < nq; q++)
      dxp[off[t] + q] += wk[t] * dp[q];
}

#define AVX2 __attribute__ ((target ("avx2,fma")))

static bool avx2_usable;
static pthread_once_t avx2_once = PTHREAD_ONCE_INIT;

static void
avx2_check (void)
{
  /* BP_CPU_NO_AVX2=1 forces the portable loops (for testing them) */
  const char *off = getenv ("BP_CPU_NO_AVX2");
  avx2_usable = __builtin_cpu_supports ("avx2") && __builtin_cpu_supports ("fma") &&
                !(off && *off && *off != '0');
}

static bool
have_avx2 (void)
{
  pthread_once (&avx2_once, avx2_check);
  return avx2_usable;
}

AVX2 static void
direct_forward_plane_avx2 (float *restrict outp, const float *restrict xp,
                           const float *restrict wk, float bias, int64_t k, const int64_t *off,
                           int64_t nq)
{
  /* QB = 64 outputs in 8 registers; each tap adds one broadcast weight times 8 loads */
  for (int64_t q0 = 0; q0 < nq; q0 += QB) {
    __m256 a0 = _mm256_set1_ps (bias), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
           a7 = a0;
    for (int64_t t = 0; t < k; t++) {
      const float *src = xp + off[t] + q0;
      __m256 w = _mm256_broadcast_ss (wk + t);
      a0 = _mm256_fmadd_ps (w, _mm256_loadu_ps (src), a0);
      a1 = _mm256_fmadd_ps (w, _mm256_loadu_ps (src + 8), a1);
      a2 = _mm256_fmadd_ps (w, _mm256_loadu_ps (src + 16), a2);
      a3 = _mm256_fmadd_ps (w, _mm256_loadu_ps (src + 24), a3);
      a4 = _mm256_fmadd_ps (w, _mm256_loadu_ps (src + 32), a4);
      a5 = _mm256_fmadd_ps (w, _mm256_loadu_ps (src + 40), a5);
      a6 = _mm256_fmadd_ps (w, _mm256_loadu_ps (src + 48), a6);
      a7 = _mm256_fmadd_ps (w, _mm256_loadu_ps (src + 56), a7);
    }
    float *o = outp + q0;
    _mm256_storeu_ps (o, a0);
    _mm256_storeu_ps (o + 8, a1);
    _mm256_storeu_ps (o + 16, a2);
    _mm256_storeu_ps (o + 24, a3);
    _mm256_storeu_ps (o + 32, a4);
    _mm256_storeu_ps (o + 40, a5);
    _mm256_storeu_ps (o + 48, a6);
    _mm256_storeu_ps (o + 56, a7);
  }
}

AVX2 static void
direct_weight_plane_avx2 (float *restrict acc, const float *restrict dp,
                          const float *restrict xp, int64_t k, const int64_t *off, int64_t nq)
{
  /* taps four at a time (a missing fourth repeats a tap and is dropped), two running sums
   * per tap; lane l of acc (k, 8) gathers positions q = l mod 8 */
  for (int64_t t0 = 0; t0 < k; t0 += 4) {
    int64_t nt = k - t0 < 4 ? k - t0 : 4;
    const float *s0 = xp + off[t0], *s1 = xp + off[t0 + (nt > 1)],
                *s2 = xp + off[t0 + (nt > 2) * 2], *s3 = xp + off[t0 + (nt > 3) * 3];
    __m256 a0 = _mm256_setzero_ps (), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0,
           b3 = a0;
    for (int64_t q = 0; q < nq; q += 16) {
      __m256 d = _mm256_loadu_ps (dp + q), e = _mm256_loadu_ps (dp + q + 8);
      a0 = _mm256_fmadd_ps (d, _mm256_loadu_ps (s0 + q), a0);
      a1 = _mm256_fmadd_ps (d, _mm256_loadu_ps (s1 + q), a1);
      a2 = _mm256_fmadd_ps (d, _mm256_loadu_ps (s2 + q), a2);
      a3 = _mm256_fmadd_ps (d, _mm256_loadu_ps (s3 + q), a3);
      b0 = _mm256_fmadd_ps (e, _mm256_loadu_ps (s0 + q + 8), b0);
      b1 = _mm256_fmadd_ps (e, _mm256_loadu_ps (s1 + q + 8), b1);
      b2 = _mm256_fmadd_ps (e, _mm256_loadu_ps (s2 + q + 8), b2);
      b3 = _mm256_fmadd_ps (e, _mm256_loadu_ps (s3 + q + 8), b3);
    }
    __m256 sums[4] = {_mm256_add_ps (a0, b0), _mm256_add_ps (a1, b1), _mm256_add_ps (a2, b2),
                      _mm256_add_ps (a3, b3)};
    for (int64_t t = 0; t < nt; t++)
      _mm256_storeu_ps (acc + (t0 + t) * 8,
                        _mm256_add_ps (_mm256_loadu_ps (acc + (t0 + t) * 8), sums[t]));
  }
}

AVX2 static void
direct_input_plane_avx2 (float *restrict dxp, const float *restrict dp,
                         const float *restrict wk, int64_t k, const int64_t *off, int64_t nq)
{
  /* dxp[off[t] + q] += wk[t] * dp[q] */
  for (int64_t t = 0; t < k; t++) {
    float *dst = dxp + off[t];
    __m256 w = _mm256_broadcast_ss (wk + t);
    for (int64_t q = 0; q < nq; q += 16) {
      _mm256_storeu_ps (dst + q, _mm256_fmadd_ps (w, _mm256_loadu_ps (dp + q),
                                                  _mm256_loadu_ps (dst + q)));
      _mm256_storeu_ps (dst + q + 8, _mm256_fmadd_ps (w, _mm256_loadu_ps (dp + q + 8),
                                                      _mm256_loadu_ps (dst + q + 8)));
    }
  }
}

typedef struct {
  void (*forward) (float *, const float *, const float *, float, int64_t, const int64_t *,
                   int64_t);
  void (*weight) (float *, const float *, const float *, int64_t, const int64_t *, int64_t);
  void (*input) (float *, const float *, const float *, int64_t, const int64_t *, int64_t);
} DirectLoops;

static DirectLoops
direct_loops (void)
{
  if (have_avx2 ())
    return (DirectLoops){direct_forward_plane_avx2, direct_weight_plane_avx2,
                         direct_input_plane_avx2};
  return (DirectLoops){direct_forward_plane_base, direct_weight_plane_base,
                       direct_input_plane_base};
}

static BpStatus
direct_forward (float *out, const float *x, const float *w, const float *bias,
                const BpConv2dShape *s, const ConvPlan *pl)
{
  /* out (N,Cout,Ho,Wo), x (N,Cin,H,W): one (image, group) per loop iteration */
  DirectPlan d = direct_plan (s, pl);
  DirectLoops loops = direct_loops ();
  int threads = omp_get_max_threads ();
  int64_t per_thread = pl->cin_g * d.plane + d.nq;
  Scratch sc;
  if (!scratch_alloc (&sc, per_thread * threads))
    return BP_ERR_NOMEM;
  int64_t units = s->n * s->groups, p = pl->p;
#pragma omp parallel for schedule(static) if (units > 1 && s->n * s->c_out * p > 32768)
  for (int64_t u = 0; u < units; u++) {
    float *xp = sc.base + omp_get_thread_num () * per_thread, *outp = xp + pl->cin_g * d.plane;
    int64_t b = u / s->groups, g = u % s->groups;
    pad_planes (xp, x + (b * s->c_in + g * pl->cin_g) * s->h * s->w, pl->cin_g, s, &d);
    for (int64_t oc = g * pl->cout_g; oc < (g + 1) * pl->cout_g; oc++) {
      loops.forward (outp, xp, w + oc * pl->k, bias ? bias[oc] : 0.0f, pl->k, d.off, d.nq);
      float *o = out + (b * s->c_out + oc) * p;
      for (int64_t y = 0; y < s->h_out; y++)
        memcpy (o + y * s->w_out, outp + y * d.wp, (size_t) s->w_out * sizeof (float));
    }
  }
  scratch_free (&sc);
  return BP_OK;
}

static BpStatus
direct_backward (float *dx, float *dw, const float *dout, const float *x, const float *w,
                 const BpConv2dShape *s, const ConvPlan *pl)
{
  DirectPlan d = direct_plan (s, pl);
  DirectLoops loops = direct_loops ();
  int threads = omp_get_max_threads ();
  int64_t p = pl->p, hw = s->h * s->w;
  bool par = s->n * s->c_out * p > 32768;
  if (dw) {
    /* images padded a block at a time, then one output channel per iteration over the
     * block's images in order: acc (Cout, K, 8 lanes) += sums over images and positions */
    int64_t image = s->c_in * d.plane, block = DIRECT_PAD_BUDGET / image;
    block = block < 1 ? 1 : block > s->n ? s->n : block;
    int64_t accs = s->c_out * pl->k * 8;
    Scratch sc;
    if (!scratch_alloc (&sc, block * image + accs + d.nq * threads))
      return BP_ERR_NOMEM;
    float *xp = sc.base, *acc = xp + block * image, *work = acc + accs;
    memset (acc, 0, (size_t) accs * sizeof (float));
    for (int64_t b0 = 0; b0 < s->n; b0 += block) {
      int64_t nb = s->n - b0 < block ? s->n - b0 : block;
#pragma omp parallel for schedule(static) if (par)
      for (int64_t b = 0; b < nb; b++)
        pad_planes (xp + b * image, x + (b0 + b) * s->c_in * hw, s->c_in, s, &d);
#pragma omp parallel for schedule(static) if (par)
      for (int64_t oc = 0; oc < s->c_out; oc++) {
        float *dp = work + omp_get_thread_num () * d.nq;
        int64_t g = oc / pl->cout_g;
        for (int64_t b = 0; b < nb; b++) {
          pad_grad_plane (dp, dout + ((b0 + b) * s->c_out + oc) * p, s, &d);
          loops.weight (acc + oc * pl->k * 8, dp, xp + b * image + g * pl->cin_g * d.plane,
                        pl->k, d.off, d.nq);
        }
      }
    }
    for (int64_t i = 0; i < s->c_out * pl->k; i++) {
      const float *a = acc + i * 8;
      dw[i] += ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    }
    scratch_free (&sc);
  }
  if (dx) {
    /* one (image, group) per iteration: scatter every output channel's taps onto a padded
     * accumulator, then add its interior to dx */
    int64_t per_thread = pl->cin_g * d.plane + d.nq, units = s->n * s->groups;
    Scratch sc;
    if (!scratch_alloc (&sc, per_thread * threads))
      return BP_ERR_NOMEM;
#pragma omp parallel for schedule(static) if (units > 1 && par)
    for (int64_t u = 0; u < units; u++) {
      float *dxp = sc.base + omp_get_thread_num () * per_thread, *dp = dxp + pl->cin_g * d.plane;
      int64_t b = u / s->groups, g = u % s->groups;
      memset (dxp, 0, (size_t) (pl->cin_g * d.plane) * sizeof (float));
      for (int64_t oc = g * pl->cout_g; oc < (g + 1) * pl->cout_g; oc++) {
        pad_grad_plane (dp, dout + (b * s->c_out + oc) * p, s, &d);
        loops.input (dxp, dp, w + oc * pl->k, pl->k, d.off, d.nq);
      }
      for (int64_t c = 0; c < pl->cin_g; c++) {
        float *dst = dx + (b * s->c_in + g * pl->cin_g + c) * hw;
        const float *src = dxp + c * d.plane + s->padding[0] * d.wp + s->padding[1];
        for (int64_t y = 0; y < s->h; y++)
          for (int64_t xx = 0; xx < s->w; xx++)
            dst[y * s->w + xx] += src[y * d.wp + xx];
      }
    }
    scratch_free (&sc);
  }
  return BP_OK;
}

/* ---- Winograd F(2x2, 3x3): 3x3 stride-1 convolutions with enough channels ----
 * Each 2x2 output tile comes from a 4x4 input tile d: Y = A^T [(G g G^T) .* (B^T d B)] A. Over
 * channels the elementwise product becomes, for each of the 16 positions xi, one GEMM
 *   M[xi] (T, Cout) = V[xi] (T, Cin) @ U[xi] (Cin, Cout)       (T tiles in the chunk)
 * which does 16 instead of 36 multiply-adds per tile and channel pair. The transforms run on
 * channel-last copies so that their loops run over channels. The input gradient is the same
 * computation on dout with the kernels flipped and in and out channels swapped. */

typedef struct {
  int64_t cin, cout;           /* channels of this convolution (one group) */
  int64_t in_image, out_image; /* floats per image in the input and output tensors */
  int64_t h, w, ho, wo;        /* input and output planes */
  int64_t pad;                 /* zero padding, both sides and both axes */
  int64_t th, tw, tiles;       /* tiles per image: th x tw */
  int64_t hp, wp;              /* padded input plane: (2 th + 2) x (2 tw + 2) */
  int64_t coutp;               /* cout rounded up to 8: the row length of U and M */
  int64_t sub;                 /* images per pass, so that a pass's data stays in L2 */
} Wino;

/* Tiles of a chunk rounded up to the GEMM kernel's 6 rows. */
static inline int64_t
wino_rows (const Wino *wg, int64_t nb)
{
  return (nb * wg->tiles + 5) / 6 * 6;
}

static Wino
wino_geometry (int64_t cin, int64_t cout, int64_t in_image, int64_t out_image, int64_t h,
               int64_t w, int64_t ho, int64_t wo, int64_t pad)
{
  Wino wg = {.cin = cin, .cout = cout, .in_image = in_image, .out_image = out_image, .h = h,
             .w = w, .ho = ho, .wo = wo, .pad = pad};
  wg.th = (ho + 1) / 2;
  wg.tw = (wo + 1) / 2;
  wg.tiles = wg.th * wg.tw;
  wg.hp = 2 * wg.th + 2;
  wg.wp = 2 * wg.tw + 2;
  wg.coutp = (cout + 7) / 8 * 8;
  int64_t per_image = wg.hp * wg.wp * cin + 16 * (cin + wg.coutp) * wg.tiles;
  wg.sub = WINO_PASS / per_image > 1 ? WINO_PASS / per_image : 1;
  return wg;
}

/* Scratch floats for a chunk of nb images: padded channel-last input, V, M of a pass, and
 * one output image. */
static int64_t
wino_scratch (const Wino *wg, int64_t nb)
{
  nb = nb < wg->sub ? nb : wg->sub;
  return nb * wg->hp * wg->wp * wg->cin + 16 * (wg->cin + wg->coutp) * wino_rows (wg, nb) +
         4 * wg->tiles * wg->cout;
}

/* u[xi * plane + at] for xi < 16 = G g G^T of the 3x3 kernel g (taps in k[0..8]) */
static void
wino_kernel (float *u, int64_t plane, const float *k)
{
  float t[4][3];
  for (int j = 0; j < 3; j++) {
    t[0][j] = k[j];
    t[1][j] = 0.5f * (k[j] + k[3 + j] + k[6 + j]);
    t[2][j] = 0.5f * (k[j] - k[3 + j] + k[6 + j]);
    t[3][j] = k[6 + j];
  }
  for (int i = 0; i < 4; i++) {
    float r[4] = {t[i][0], 0.5f * (t[i][0] + t[i][1] + t[i][2]),
                  0.5f * (t[i][0] - t[i][1] + t[i][2]), t[i][2]};
    for (int j = 0; j < 4; j++)
      u[(i * 4 + j) * plane] = r[j];
  }
}

AVX2 static void
wino_kernels8_avx2 (float *u, int64_t plane, const float *g, int64_t stride, bool flip)
{
  /* wino_kernel for 8 kernels, kernel l at g + l*stride, written to u[l] */
  __m256i idx = _mm256_mullo_epi32 (_mm256_setr_epi32 (0, 1, 2, 3, 4, 5, 6, 7),
                                    _mm256_set1_epi32 ((int) stride));
  __m256 half = _mm256_set1_ps (0.5f), k[9], t[4][3];
  for (int i = 0; i < 9; i++)
    k[i] = _mm256_i32gather_ps (g + (flip ? 8 - i : i), idx, 4);
  for (int j = 0; j < 3; j++) {
    t[0][j] = k[j];
    t[1][j] = _mm256_mul_ps (half, _mm256_add_ps (_mm256_add_ps (k[j], k[3 + j]), k[6 + j]));
    t[2][j] = _mm256_mul_ps (half, _mm256_add_ps (_mm256_sub_ps (k[j], k[3 + j]), k[6 + j]));
    t[3][j] = k[6 + j];
  }
  for (int i = 0; i < 4; i++) {
    __m256 r1 = _mm256_mul_ps (half, _mm256_add_ps (_mm256_add_ps (t[i][0], t[i][1]), t[i][2]));
    __m256 r2 = _mm256_mul_ps (half, _mm256_add_ps (_mm256_sub_ps (t[i][0], t[i][1]), t[i][2]));
    _mm256_storeu_ps (u + (i * 4) * plane, t[i][0]);
    _mm256_storeu_ps (u + (i * 4 + 1) * plane, r1);
    _mm256_storeu_ps (u + (i * 4 + 2) * plane, r2);
    _mm256_storeu_ps (u + (i * 4 + 3) * plane, t[i][2]);
  }
}

/* Where row p, column col of one plane (k, cols) of U lies: row-major for OpenBLAS, or
 * packed for wino_gemm_avx2 in panels of 16 columns (k rows of 16 floats each), then one of 8
 * columns when cols is not a multiple of 16, so that the kernel reads every row's 16 (or 8)
 * columns in sequence. */
static inline int64_t
wino_upos (int64_t p, int64_t col, int64_t k, int64_t cols, bool packed)
{
  if (!packed)
    return p * cols + col;
  int64_t full = cols / 16 * 16;
  if (col < full)
    return (col / 16) * 16 * k + p * 16 + col % 16;
  return full * k + p * 8 + (col - full);
}

static void
wino_weights (float *u, const float *w, int64_t cout, int64_t cin, bool flip)
{
  /* u (16, Cin, Coutp) = G g G^T of w (Cout, Cin, 3, 3); with flip, u (16, Cout, Cinp) of
   * the kernels turned by 180 degrees: the weights of the input gradient's convolution.
   * Columns padded with zeros to a multiple of 8; each plane packed for the GEMM kernel
   * (wino_upos). */
  int64_t rows = flip ? cout : cin, cols = flip ? cin : cout, ld = (cols + 7) / 8 * 8;
  int64_t plane = rows * ld;
  /* along a row of u the kernels are 9 floats apart (flip) or 9 Cin (forward) */
  int64_t stride = flip ? 9 : 9 * cin;
  bool avx2 = have_avx2 ();
#pragma omp parallel for schedule(static) if (plane > 4096)
  for (int64_t row = 0; row < rows; row++) {
    const float *g = w + (flip ? row * cin : row) * 9;
    for (int xi = 0; xi < 16; xi++)
      for (int64_t col = cols; col < ld; col++)
        u[xi * plane + wino_upos (row, col, rows, ld, avx2)] = 0.0f;
    int64_t col = 0;
    for (; avx2 && stride * 8 < INT32_MAX && col + 8 <= cols; col += 8)
      wino_kernels8_avx2 (u + wino_upos (row, col, rows, ld, avx2), plane, g + col * stride, stride,
                          flip);
    for (; col < cols; col++) {
      float k[9];
      for (int i = 0; i < 9; i++)
        k[i] = g[col * stride + (flip ? 8 - i : i)];
      wino_kernel (u + wino_upos (row, col, rows, ld, avx2), plane, k);
    }
  }
}

/* 8x8 transpose in registers: r[i] holds row i on entry, column i on return. */
AVX2 static inline void
transpose8_avx2 (__m256 r[8])
{
  __m256 t[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps (r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps (r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps (t[i], t[i + 2], 0x44);
    r[i + 1] = _mm256_shuffle_ps (t[i], t[i + 2], 0xee);
    r[i + 2] = _mm256_shuffle_ps (t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm256_shuffle_ps (t[i + 1], t[i + 3], 0xee);
  }
  /* r[0..3] hold columns (0|4, 1|5, 2|6, 3|7) of rows 0-3 in their halves, r[4..7] of 4-7 */
  for (int i = 0; i < 4; i++) {
    t[i] = _mm256_permute2f128_ps (r[i], r[i + 4], 0x20);
    t[i + 4] = _mm256_permute2f128_ps (r[i], r[i + 4], 0x31);
  }
  for (int i = 0; i < 8; i++)
    r[i] = t[i];
}

AVX2 static void
to_channel_last_avx2 (float *dst, const float *src, int64_t cin, int64_t hw, int64_t w,
                      int64_t wp, int64_t pad)
{
  /* dst[((q / w + pad) * wp + q % w + pad) * cin + c] = src[c * hw + q] for the blocks of 8
   * channels and 8 positions */
  for (int64_t c = 0; c + 8 <= cin; c += 8)
    for (int64_t q = 0; q + 8 <= hw; q += 8) {
      __m256 r[8];
      for (int i = 0; i < 8; i++)
        r[i] = _mm256_loadu_ps (src + (c + i) * hw + q);
      transpose8_avx2 (r);
      int64_t y = q / w, x = q % w;
      for (int j = 0; j < 8; j++) {
        _mm256_storeu_ps (dst + ((y + pad) * wp + x + pad) * cin + c, r[j]);
        if (++x == w) {
          x = 0;
          y++;
        }
      }
    }
}

AVX2 static void
from_channel_last_avx2 (float *out, const float *y, int64_t cout, int64_t ho, int64_t wo,
                        int64_t wy, const float *bias, bool accumulate)
{
  /* out[c * ho*wo + q] = (or +=) y[((q / wo) * wy + q % wo) * cout + c] + bias[c] for the
   * blocks of 8 channels and 8 positions */
  int64_t hw = ho * wo;
  for (int64_t c = 0; c + 8 <= cout; c += 8)
    for (int64_t q = 0; q + 8 <= hw; q += 8) {
      __m256 r[8];
      int64_t yy = q / wo, x = q % wo;
      for (int j = 0; j < 8; j++) {
        r[j] = _mm256_loadu_ps (y + (yy * wy + x) * cout + c);
        if (++x == wo) {
          x = 0;
          yy++;
        }
      }
      transpose8_avx2 (r);
      for (int i = 0; i < 8; i++) {
        float *o = out + (c + i) * hw + q;
        __m256 v = _mm256_add_ps (r[i], _mm256_set1_ps (bias ? bias[c + i] : 0.0f));
        _mm256_storeu_ps (o, accumulate ? _mm256_add_ps (_mm256_loadu_ps (o), v) : v);
      }
    }
}

static void
wino_pad_input (float *xp, const float *in, int64_t nb, const Wino *wg)
{
  /* xp (nb, hp, wp, Cin) = in (nb, Cin, H, W) zero-padded and channel-last */
  int64_t cin = wg->cin, plane = wg->hp * wg->wp * cin, hw = wg->h * wg->w;
  bool avx2 = have_avx2 ();
  /* what the 8x8 blocks leave: channels from c8, positions from q8 */
  int64_t c8 = avx2 ? cin / 8 * 8 : 0, q8 = avx2 ? hw / 8 * 8 : 0;
  for (int64_t b = 0; b < nb; b++) {
    float *xb = xp + b * plane;
    const float *src = in + b * wg->in_image;
    memset (xb, 0, (size_t) plane * sizeof (float));
    if (avx2)
      to_channel_last_avx2 (xb, src, cin, hw, wg->w, wg->wp, wg->pad);
    for (int64_t q = 0; q < hw; q++) {
      float *dst = xb + ((q / wg->w + wg->pad) * wg->wp + q % wg->w + wg->pad) * cin;
      for (int64_t c = q < q8 ? c8 : 0; c < cin; c++)
        dst[c] = src[c * hw + q];
    }
  }
}

/* One tile's input transform for channels [c0, c1): o[xi * xs + c] = (B^T d B)[xi] where
 * row i of the tile d is d_i (channel-last, cin floats per column). */
static void
wino_tile_in (float *o, const float *d0, const float *d1, const float *d2, const float *d3,
              int64_t cin, int64_t xs, int64_t c0, int64_t c1)
{
  for (int64_t c = c0; c < c1; c++) {
    float r[4][4];
    for (int j = 0; j < 4; j++) {
      float a0 = d0[j * cin + c], a1 = d1[j * cin + c], a2 = d2[j * cin + c],
            a3 = d3[j * cin + c];
      r[0][j] = a0 - a2;
      r[1][j] = a1 + a2;
      r[2][j] = a2 - a1;
      r[3][j] = a1 - a3;
    }
    for (int i = 0; i < 4; i++) {
      o[(4 * i) * xs + c] = r[i][0] - r[i][2];
      o[(4 * i + 1) * xs + c] = r[i][1] + r[i][2];
      o[(4 * i + 2) * xs + c] = r[i][2] - r[i][1];
      o[(4 * i + 3) * xs + c] = r[i][1] - r[i][3];
    }
  }
}

/* One tile's output transform for channels [c0, c1): the 2x2 A^T m A into y0 (top row, two
 * positions of cout floats) and y1 (bottom row); m[xi * xs + c]. */
static void
wino_tile_out (float *y0, float *y1, const float *m, int64_t cout, int64_t xs, int64_t c0,
               int64_t c1)
{
  for (int64_t c = c0; c < c1; c++) {
    float s[4], d[4];
    for (int j = 0; j < 4; j++) {
      float m0 = m[j * xs + c], m1 = m[(4 + j) * xs + c];
      float m2 = m[(8 + j) * xs + c], m3 = m[(12 + j) * xs + c];
      s[j] = m0 + m1 + m2;
      d[j] = m1 - m2 - m3;
    }
    y0[c] = s[0] + s[1] + s[2];
    y0[cout + c] = s[1] - s[2] - s[3];
    y1[c] = d[0] + d[1] + d[2];
    y1[cout + c] = d[1] - d[2] - d[3];
  }
}

AVX2 static int64_t
wino_tile_in_avx2 (float *o, const float *d0, const float *d1, const float *d2,
                   const float *d3, int64_t cin, int64_t xs)
{
  /* wino_tile_in on 8 channels at a time; returns how many channels it did */
  int64_t c = 0;
  for (; c + 8 <= cin; c += 8) {
    __m256 r[4][4];
    for (int j = 0; j < 4; j++) {
      __m256 a0 = _mm256_loadu_ps (d0 + j * cin + c), a1 = _mm256_loadu_ps (d1 + j * cin + c);
      __m256 a2 = _mm256_loadu_ps (d2 + j * cin + c), a3 = _mm256_loadu_ps (d3 + j * cin + c);
      r[0][j] = _mm256_sub_ps (a0, a2);
      r[1][j] = _mm256_add_ps (a1, a2);
      r[2][j] = _mm256_sub_ps (a2, a1);
      r[3][j] = _mm256_sub_ps (a1, a3);
    }
    for (int i = 0; i < 4; i++) {
      _mm256_storeu_ps (o + (4 * i) * xs + c, _mm256_sub_ps (r[i][0], r[i][2]));
      _mm256_storeu_ps (o + (4 * i + 1) * xs + c, _mm256_add_ps (r[i][1], r[i][2]));
      _mm256_storeu_ps (o + (4 * i + 2) * xs + c, _mm256_sub_ps (r[i][2], r[i][1]));
      _mm256_storeu_ps (o + (4 * i + 3) * xs + c, _mm256_sub_ps (r[i][1], r[i][3]));
    }
  }
  return c;
}

AVX2 static int64_t
wino_tile_out_avx2 (float *y0, float *y1, const float *m, int64_t cout, int64_t xs)
{
  /* wino_tile_out on 8 channels at a time; returns how many channels it did */
  int64_t c = 0;
  for (; c + 8 <= cout; c += 8) {
    __m256 s[4], d[4];
    for (int j = 0; j < 4; j++) {
      __m256 m0 = _mm256_loadu_ps (m + j * xs + c), m1 = _mm256_loadu_ps (m + (4 + j) * xs + c);
      __m256 m2 = _mm256_loadu_ps (m + (8 + j) * xs + c);
      __m256 m3 = _mm256_loadu_ps (m + (12 + j) * xs + c);
      s[j] = _mm256_add_ps (_mm256_add_ps (m0, m1), m2);
      d[j] = _mm256_sub_ps (_mm256_sub_ps (m1, m2), m3);
    }
    _mm256_storeu_ps (y0 + c, _mm256_add_ps (_mm256_add_ps (s[0], s[1]), s[2]));
    _mm256_storeu_ps (y0 + cout + c, _mm256_sub_ps (_mm256_sub_ps (s[1], s[2]), s[3]));
    _mm256_storeu_ps (y1 + c, _mm256_add_ps (_mm256_add_ps (d[0], d[1]), d[2]));
    _mm256_storeu_ps (y1 + cout + c, _mm256_sub_ps (_mm256_sub_ps (d[1], d[2]), d[3]));
  }
  return c;
}

static void
wino_input (float *v, float *xp, const float *in, int64_t nb, const Wino *wg)
{
  /* v (16, rows, Cin) = B^T d B of every 4x4 tile d of the padded input, zero in the rows
   * past nb*tiles */
  int64_t cin = wg->cin, t_all = nb * wg->tiles, xs = wino_rows (wg, nb) * cin;
  int64_t row = wg->wp * cin;
  bool avx2 = have_avx2 ();
  for (int xi = 0; xi < 16; xi++) /* the GEMM's padding rows */
    memset (v + xi * xs + t_all * cin, 0, (size_t) (xs - t_all * cin) * sizeof (float));
  wino_pad_input (xp, in, nb, wg);
  for (int64_t b = 0; b < nb; b++)
    for (int64_t ty = 0; ty < wg->th; ty++)
      for (int64_t tx = 0; tx < wg->tw; tx++) {
        const float *d0 = xp + ((b * wg->hp + 2 * ty) * wg->wp + 2 * tx) * cin;
        float *o = v + (b * wg->tiles + ty * wg->tw + tx) * cin;
        int64_t done = avx2 ? wino_tile_in_avx2 (o, d0, d0 + row, d0 + 2 * row, d0 + 3 * row,
                                                 cin, xs) : 0;
        wino_tile_in (o, d0, d0 + row, d0 + 2 * row, d0 + 3 * row, cin, xs, done, cin);
      }
}

static void
wino_output (float *out, float *y, const float *m, const float *bias, bool accumulate,
             int64_t nb, const Wino *wg)
{
  /* out (nb, Cout, Ho, Wo) = (or +=) A^T m A of every tile, m (16, rows, Coutp), through
   * y (2 th, 2 tw, Cout) one image at a time */
  int64_t cout = wg->cout, xs = wino_rows (wg, nb) * wg->coutp, wy = 2 * wg->tw;
  bool avx2 = have_avx2 ();
  for (int64_t b = 0; b < nb; b++) {
    for (int64_t ty = 0; ty < wg->th; ty++)
      for (int64_t tx = 0; tx < wg->tw; tx++) {
        const float *mp = m + (b * wg->tiles + ty * wg->tw + tx) * wg->coutp;
        float *y0 = y + (2 * ty * wy + 2 * tx) * cout, *y1 = y0 + wy * cout;
        int64_t done = avx2 ? wino_tile_out_avx2 (y0, y1, mp, cout, xs) : 0;
        wino_tile_out (y0, y1, mp, cout, xs, done, cout);
      }
    /* back to channel-first: 8x8 blocks, then what they leave */
    float *ob = out + b * wg->out_image;
    int64_t hw = wg->ho * wg->wo, c8 = avx2 ? cout / 8 * 8 : 0, q8 = avx2 ? hw / 8 * 8 : 0;
    if (avx2)
      from_channel_last_avx2 (ob, y, cout, wg->ho, wg->wo, wy, bias, accumulate);
    for (int64_t oc = 0; oc < cout; oc++) {
      float bv = bias ? bias[oc] : 0.0f, *op = ob + oc * hw;
      for (int64_t q = oc < c8 ? q8 : 0; q < hw; q++) {
        float val = y[((q / wg->wo) * wy + q % wg->wo) * cout + oc] + bv;
        op[q] = accumulate ? op[q] + val : val;
      }
    }
  }
}

/* m (rows, cols) = v (rows, k) @ u (k, cols), rows a multiple of 6 and cols of 8, m and v
 * row-major, u packed in panels of 16 columns (wino_upos). Six rows times 16 (or 8) columns
 * stay in 12 registers over the k loop; v is read in place (a broadcast per row) and a panel
 * of u in sequence: K is only the channel count here, too short to pay for packing v. */
AVX2 static void
wino_gemm_avx2 (float *m, const float *v, const float *u, int64_t rows, int64_t k,
                int64_t cols)
{
  int64_t j = 0;
  for (; j + 16 <= cols; j += 16)
    for (int64_t i = 0; i < rows; i += 6) {
      const float *a = v + i * k, *b = u + j * k;
      __m256 c00 = _mm256_setzero_ps (), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
             c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
      for (int64_t p = 0; p < k; p++, b += 16) {
        __m256 b0 = _mm256_loadu_ps (b), b1 = _mm256_loadu_ps (b + 8), ar;
        ar = _mm256_broadcast_ss (a + p);
        c00 = _mm256_fmadd_ps (ar, b0, c00);
        c01 = _mm256_fmadd_ps (ar, b1, c01);
        ar = _mm256_broadcast_ss (a + k + p);
        c10 = _mm256_fmadd_ps (ar, b0, c10);
        c11 = _mm256_fmadd_ps (ar, b1, c11);
        ar = _mm256_broadcast_ss (a + 2 * k + p);
        c20 = _mm256_fmadd_ps (ar, b0, c20);
        c21 = _mm256_fmadd_ps (ar, b1, c21);
        ar = _mm256_broadcast_ss (a + 3 * k + p);
        c30 = _mm256_fmadd_ps (ar, b0, c30);
        c31 = _mm256_fmadd_ps (ar, b1, c31);
        ar = _mm256_broadcast_ss (a + 4 * k + p);
        c40 = _mm256_fmadd_ps (ar, b0, c40);
        c41 = _mm256_fmadd_ps (ar, b1, c41);
        ar = _mm256_broadcast_ss (a + 5 * k + p);
        c50 = _mm256_fmadd_ps (ar, b0, c50);
        c51 = _mm256_fmadd_ps (ar, b1, c51);
      }
      float *c = m + i * cols + j;
      _mm256_storeu_ps (c, c00);
      _mm256_storeu_ps (c + 8, c01);
      _mm256_storeu_ps (c + cols, c10);
      _mm256_storeu_ps (c + cols + 8, c11);
      _mm256_storeu_ps (c + 2 * cols, c20);
      _mm256_storeu_ps (c + 2 * cols + 8, c21);
      _mm256_storeu_ps (c + 3 * cols, c30);
      _mm256_storeu_ps (c + 3 * cols + 8, c31);
      _mm256_storeu_ps (c + 4 * cols, c40);
      _mm256_storeu_ps (c + 4 * cols + 8, c41);
      _mm256_storeu_ps (c + 5 * cols, c50);
      _mm256_storeu_ps (c + 5 * cols + 8, c51);
    }
  if (j < cols) /* the last 8 columns */
    for (int64_t i = 0; i < rows; i += 6) {
      const float *a = v + i * k, *b = u + j * k;
      __m256 c0 = _mm256_setzero_ps (), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
      for (int64_t p = 0; p < k; p++, b += 8) {
        __m256 b0 = _mm256_loadu_ps (b);
        c0 = _mm256_fmadd_ps (_mm256_broadcast_ss (a + p), b0, c0);
        c1 = _mm256_fmadd_ps (_mm256_broadcast_ss (a + k + p), b0, c1);
        c2 = _mm256_fmadd_ps (_mm256_broadcast_ss (a + 2 * k + p), b0, c2);
        c3 = _mm256_fmadd_ps (_mm256_broadcast_ss (a + 3 * k + p), b0, c3);
        c4 = _mm256_fmadd_ps (_mm256_broadcast_ss (a + 4 * k + p), b0, c4);
        c5 = _mm256_fmadd_ps (_mm256_broadcast_ss (a + 5 * k + p), b0, c5);
      }
      float *c = m + i * cols + j;
      _mm256_storeu_ps (c, c0);
      _mm256_storeu_ps (c + cols, c1);
      _mm256_storeu_ps (c + 2 * cols, c2);
      _mm256_storeu_ps (c + 3 * cols, c3);
      _mm256_storeu_ps (c + 4 * cols, c4);
      _mm256_storeu_ps (c + 5 * cols, c5);
    }
}

static void
wino_pass (float *out, const float *in, const float *u, const float *bias, bool accumulate,
           int64_t nb, const Wino *wg, float *scratch)
{
  /* out (nb, Cout, Ho, Wo) = (or +=) conv3x3 (in (nb, Cin, H, W)) with u (16, Cin, Coutp) */
  int64_t rows = wino_rows (wg, nb), cin = wg->cin, coutp = wg->coutp;
  float *xp = scratch, *v = xp + nb * wg->hp * wg->wp * cin, *m = v + 16 * cin * rows;
  float *y = m + 16 * coutp * rows;
  wino_input (v, xp, in, nb, wg);
  for (int xi = 0; xi < 16; xi++) {
    float *mx = m + xi * rows * coutp;
    const float *vx = v + xi * rows * cin, *ux = u + xi * cin * coutp;
    if (have_avx2 ())
      wino_gemm_avx2 (mx, vx, ux, rows, cin, coutp);
    else
      bp_cpu_gemm (false, false, rows, coutp, cin, 1.0f, vx, cin, ux, coutp, 0.0f, mx, coutp);
  }
  wino_output (out, y, m, bias, accumulate, nb, wg);
}

static void
wino_chunk (float *out, const float *in, const float *u, const float *bias, bool accumulate,
            int64_t nb, const Wino *wg, float *scratch)
{
  /* wino_pass over the chunk's images, wg->sub at a time */
  for (int64_t b0 = 0; b0 < nb; b0 += wg->sub)
    wino_pass (out + b0 * wg->out_image, in + b0 * wg->in_image, u, bias, accumulate,
               nb - b0 < wg->sub ? nb - b0 : wg->sub, wg, scratch);
}

/* ---- Winograd weight gradient ----
 * Y = A^T [U .* V] A is linear in U = G g G^T, so dL/dU = sum over tiles of (A dY A^T) .* V
 * and dL/dg = G^T (dL/dU) G: per xi one GEMM dU[xi] (Cout, Cin) += Z[xi]^T @ V[xi] over the
 * tiles, Z the transform of dout's 2x2 tiles and V the forward's input transform. */

/* One tile's dout transform for channels [c0, c1): o[xi * xs + c] = (A dy A^T)[xi], dy's rows
 * d0, d1 channel-last (n floats per column). */
static void
wino_tile_dout (float *o, const float *d0, const float *d1, int64_t n, int64_t xs, int64_t c0,
                int64_t c1)
{
  for (int64_t c = c0; c < c1; c++) {
    float a = d0[c], b = d0[n + c], e = d1[c], f = d1[n + c];
    float r[4][2] = {{a, b}, {a + e, b + f}, {a - e, b - f}, {-e, -f}};
    for (int i = 0; i < 4; i++) {
      o[(4 * i) * xs + c] = r[i][0];
      o[(4 * i + 1) * xs + c] = r[i][0] + r[i][1];
      o[(4 * i + 2) * xs + c] = r[i][0] - r[i][1];
      o[(4 * i + 3) * xs + c] = -r[i][1];
    }
  }
}

AVX2 static int64_t
wino_tile_dout_avx2 (float *o, const float *d0, const float *d1, int64_t n, int64_t xs)
{
  /* wino_tile_dout on 8 channels at a time; returns how many channels it did */
  __m256 zero = _mm256_setzero_ps ();
  int64_t c = 0;
  for (; c + 8 <= n; c += 8) {
    __m256 a = _mm256_loadu_ps (d0 + c), b = _mm256_loadu_ps (d0 + n + c);
    __m256 e = _mm256_loadu_ps (d1 + c), f = _mm256_loadu_ps (d1 + n + c);
    __m256 r[4][2] = {{a, b},
                      {_mm256_add_ps (a, e), _mm256_add_ps (b, f)},
                      {_mm256_sub_ps (a, e), _mm256_sub_ps (b, f)},
                      {_mm256_sub_ps (zero, e), _mm256_sub_ps (zero, f)}};
    for (int i = 0; i < 4; i++) {
      _mm256_storeu_ps (o + (4 * i) * xs + c, r[i][0]);
      _mm256_storeu_ps (o + (4 * i + 1) * xs + c, _mm256_add_ps (r[i][0], r[i][1]));
      _mm256_storeu_ps (o + (4 * i + 2) * xs + c, _mm256_sub_ps (r[i][0], r[i][1]));
      _mm256_storeu_ps (o + (4 * i + 3) * xs + c, _mm256_sub_ps (zero, r[i][1]));
    }
  }
  return c;
}

static void
wino_dout_tiles (float *z, float *dp, const float *dout, int64_t nb, const Wino *wd)
{
  /* z (16, rows, Cout) = A dy A^T of every 2x2 tile dy of dout (nb, Cout, Ho, Wo), zero past
   * the edges and in the rows past nb*tiles; wd describes dout as an input (cin = Cout) */
  int64_t n = wd->cin, t_all = nb * wd->tiles, xs = wino_rows (wd, nb) * n, row = wd->wp * n;
  bool avx2 = have_avx2 ();
  for (int xi = 0; xi < 16; xi++)
    memset (z + xi * xs + t_all * n, 0, (size_t) (xs - t_all * n) * sizeof (float));
  wino_pad_input (dp, dout, nb, wd);
  for (int64_t b = 0; b < nb; b++)
    for (int64_t ty = 0; ty < wd->th; ty++)
      for (int64_t tx = 0; tx < wd->tw; tx++) {
        const float *d0 = dp + ((b * wd->hp + 2 * ty) * wd->wp + 2 * tx) * n;
        float *o = z + (b * wd->tiles + ty * wd->tw + tx) * n;
        int64_t done = avx2 ? wino_tile_dout_avx2 (o, d0, d0 + row, n, xs) : 0;
        wino_tile_dout (o, d0, d0 + row, n, xs, done, n);
      }
}

/* Scratch floats of wino_weight_grad for nb images. */
static int64_t
wino_wgrad_scratch (const Wino *wf, const Wino *wd, int64_t nb)
{
  int64_t rows = wino_rows (wf, nb);
  return nb * wf->hp * wf->wp * wf->cin + 16 * rows * wf->cin + nb * wd->hp * wd->wp * wd->cin +
         16 * rows * wd->cin;
}

static void
wino_weight_grad (float *du, const float *dout, const float *x, int64_t nb, const Wino *wf,
                  const Wino *wd, float *scratch)
{
  /* du (16, Cout, Cin) += Z[xi]^T V[xi] over the chunk's tiles; x (nb, Cin, H, W) and
   * dout (nb, Cout, Ho, Wo) of one group */
  int64_t rows = wino_rows (wf, nb), cin = wf->cin, cout = wd->cin;
  float *xp = scratch, *v = xp + nb * wf->hp * wf->wp * cin, *dp = v + 16 * rows * cin;
  float *z = dp + nb * wd->hp * wd->wp * cout;
  wino_input (v, xp, x, nb, wf);
  wino_dout_tiles (z, dp, dout, nb, wd);
  for (int xi = 0; xi < 16; xi++)
    bp_cpu_gemm (true, false, cout, cin, rows, 1.0f, z + xi * rows * cout, cout,
                 v + xi * rows * cin, cin, 1.0f, du + xi * cout * cin, cin);
}

static void
wino_weight_grad_out (float *dw, const float *du, int64_t cout, int64_t cin)
{
  /* dw (Cout, Cin, 3, 3) += G^T du G, du (16, Cout, Cin) */
  int64_t plane = cout * cin;
#pragma omp parallel for schedule(static) if (plane > 4096)
  for (int64_t i = 0; i < plane; i++) {
    float z[4][4], t[3][4];
    for (int xi = 0; xi < 16; xi++)
      z[xi / 4][xi % 4] = du[xi * plane + i];
    for (int j = 0; j < 4; j++) {
      t[0][j] = z[0][j] + 0.5f * (z[1][j] + z[2][j]);
      t[1][j] = 0.5f * (z[1][j] - z[2][j]);
      t[2][j] = 0.5f * (z[1][j] + z[2][j]) + z[3][j];
    }
    float *g = dw + i * 9;
    for (int a = 0; a < 3; a++) {
      g[a * 3] += t[a][0] + 0.5f * (t[a][1] + t[a][2]);
      g[a * 3 + 1] += 0.5f * (t[a][1] - t[a][2]);
      g[a * 3 + 2] += 0.5f * (t[a][1] + t[a][2]) + t[a][3];
    }
  }
}

/* Floats of one group's Winograd weights, forward or (backward) for the input gradient. */
static int64_t
wino_usize (const ConvPlan *pl, bool backward)
{
  return backward ? 16 * pl->cout_g * ((pl->cin_g + 7) / 8 * 8)
                  : 16 * pl->cin_g * ((pl->cout_g + 7) / 8 * 8);
}

/* The Winograd geometry of conv2d's forward (backward false) or of its input gradient. */
static Wino
conv_wino (const BpConv2dShape *s, const ConvPlan *pl, bool backward)
{
  int64_t in_image = s->c_in * s->h * s->w, out_image = s->c_out * pl->p;
  if (!backward)
    return wino_geometry (pl->cin_g, pl->cout_g, in_image, out_image, s->h, s->w, s->h_out,
                          s->w_out, s->padding[0]);
  return wino_geometry (pl->cout_g, pl->cin_g, out_image, in_image, s->h_out, s->w_out, s->h,
                        s->w, 2 - s->padding[0]);
}

/* conv2d's dout seen as a Winograd input for the weight gradient: Cout_g channels on the
 * forward's output tiles. */
static Wino
conv_wino_dout (const BpConv2dShape *s, const ConvPlan *pl)
{
  return wino_geometry (pl->cout_g, pl->cin_g, s->c_out * pl->p, 0, s->h_out, s->w_out,
                        s->h_out, s->w_out, 0);
}

static void
conv_forward_chunk (float *out, const float *x, const float *w, const float *u,
                    const float *bias, int64_t nb, const BpConv2dShape *s, const ConvPlan *pl,
                    float *col, float *tmp)
{
  /* out (nb,Cout,Ho,Wo), x (nb,Cin,H,W); col (K, nb*P), tmp (Cout_g, nb*P) scratch, or for
   * Winograd u (groups, 16, Cout_g, Cin_g) and col its scratch */
  int64_t p = pl->p, ld = nb * p;
  for (int g = 0; g < s->groups; g++) {
    const float *wg = w + g * pl->cout_g * pl->k;
    if (pl->wino) {
      Wino wgeo = conv_wino (s, pl, false);
      wino_chunk (out + g * pl->cout_g * p, x + g * pl->cin_g * s->h * s->w,
                  u + g * wino_usize (pl, false), bias ? bias + g * pl->cout_g : NULL,
                  false, nb, &wgeo, col);
      continue;
    }
    if (pl->pointwise) {
      for (int64_t b = 0; b < nb; b++)
        bp_cpu_gemm (false, false, pl->cout_g, p, pl->k, 1.0f, wg, pl->k,
                     x + (b * s->c_in + g * pl->cin_g) * p, p, 0.0f,
                     out + (b * s->c_out + g * pl->cout_g) * p, p);
      if (bias)
        for (int64_t b = 0; b < nb; b++)
          for (int64_t oc = 0; oc < pl->cout_g; oc++) {
            float *o = out + (b * s->c_out + g * pl->cout_g + oc) * p;
            float bv = bias[g * pl->cout_g + oc];
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
  if (direct_fits (s, &pl))
    return direct_forward (out, x, w, bias, s, &pl);
  int threads = omp_get_max_threads ();
  bool parallel = pl.n_chunks > 1 && threads > 1;
  if (!parallel)
    threads = 1;
  int64_t cols = pl.chunk * pl.p;
  int64_t per_thread = pl.pointwise ? 0 : (pl.k + pl.cout_g) * cols;
  int64_t usize = pl.wino ? s->groups * wino_usize (&pl, false) : 0;
  if (pl.wino) {
    Wino wgeo = conv_wino (s, &pl, false);
    per_thread = wino_scratch (&wgeo, pl.chunk);
  }
  Scratch sc;
  if (!scratch_alloc (&sc, per_thread * threads + usize))
    return BP_ERR_NOMEM;
  float *u = sc.base + per_thread * threads;
  for (int g = 0; g < s->groups && pl.wino; g++)
    wino_weights (u + g * wino_usize (&pl, false), w + g * pl.cout_g * pl.k, pl.cout_g,
                  pl.cin_g, false);
  int blas_threads = blas_serial_begin (parallel);
  int64_t in_image = s->c_in * s->h * s->w, out_image = s->c_out * pl.p;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t c = 0; c < pl.n_chunks; c++) {
    float *col = sc.base + omp_get_thread_num () * per_thread;
    int64_t b0 = c * pl.chunk, nb = s->n - b0 < pl.chunk ? s->n - b0 : pl.chunk;
    conv_forward_chunk (out + b0 * out_image, x + b0 * in_image, w, u, bias, nb, s, &pl, col,
                        col + pl.k * cols);
  }
  blas_serial_end (blas_threads);
  scratch_free (&sc);
  return BP_OK;
}

static void
conv_backward_chunk (float *dx, float *dw_part, const float *dout, const float *x,
                     const float *w, const float *u, int64_t nb, const BpConv2dShape *s,
                     const ConvPlan *pl, float *col, float *dcol, float *tmp)
{
  /* dx (nb,Cin,H,W) +=, dw_part (Cout,K) += this chunk's share; dout (nb,Cout,Ho,Wo),
   * x (nb,Cin,H,W); col, dcol (K, nb*P) and tmp (Cout_g, nb*P) scratch. With Winograd,
   * dw_part is (groups, 16, Cout_g, Cin_g) with col its scratch, and the input gradient uses
   * u (groups, 16, Cout_g, Cin_g) with dcol its scratch */
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
    if (pl->wino) {
      if (dw_part) {
        Wino wf = conv_wino (s, pl, false), wd = conv_wino_dout (s, pl);
        wino_weight_grad (dw_part + g * 16 * pl->cout_g * pl->cin_g, dout + g * pl->cout_g * p,
                          x + g * pl->cin_g * s->h * s->w, nb, &wf, &wd, col);
      }
      if (dx) {
        Wino wgeo = conv_wino (s, pl, true);
        wino_chunk (dx + g * pl->cin_g * s->h * s->w, dout + g * pl->cout_g * p,
                    u + g * wino_usize (pl, true), NULL, true, nb, &wgeo, dcol);
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
  if (s->n == 0)
    return BP_OK;
  if (direct_fits (s, &pl))
    return direct_backward (dx, dw, dout, x, w, s, &pl);
  int64_t slots = pl.n_chunks < MAX_SLOTS ? pl.n_chunks : MAX_SLOTS;
  int threads = omp_get_max_threads ();
  bool parallel = slots > 1 && threads > 1;
  if (!parallel)
    threads = 1;
  int64_t cols = pl.chunk * pl.p, wsize = s->c_out * pl.k;
  /* per thread: col, dcol, tmp, or the Winograd scratch of the weight and input gradients */
  int64_t col_size = pl.k * cols, dcol_size = pl.k * cols, tmp_size = pl.cout_g * cols;
  if (pl.wino) {
    Wino wf = conv_wino (s, &pl, false), wd = conv_wino_dout (s, &pl);
    Wino wb = conv_wino (s, &pl, true);
    col_size = dw ? wino_wgrad_scratch (&wf, &wd, pl.chunk) : 0;
    dcol_size = dx ? wino_scratch (&wb, pl.chunk) : 0;
    tmp_size = 0;
    wsize = s->c_out * 16 * pl.cin_g; /* dU (groups, 16, Cout_g, Cin_g) */
  }
  int64_t per_thread = pl.pointwise ? 0 : col_size + dcol_size + tmp_size;
  int64_t shared = dw ? slots * wsize : 0;
  int64_t usize = pl.wino && dx ? s->groups * wino_usize (&pl, true) : 0;
  Scratch sc;
  if (!scratch_alloc (&sc, per_thread * threads + shared + usize))
    return BP_ERR_NOMEM;
  float *parts = sc.base + per_thread * threads, *u = parts + shared;
  if (shared)
    memset (parts, 0, (size_t) shared * sizeof (float));
  for (int g = 0; g < s->groups && usize; g++)
    wino_weights (u + g * wino_usize (&pl, true), w + g * pl.cout_g * pl.k, pl.cout_g,
                  pl.cin_g, true);
  int blas_threads = blas_serial_begin (parallel);
  int64_t in_image = s->c_in * s->h * s->w, out_image = s->c_out * pl.p;
  /* slot j runs chunks [j*n_chunks/slots, (j+1)*n_chunks/slots) in order into parts[j] */
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t j = 0; j < slots; j++) {
    float *col = sc.base + omp_get_thread_num () * per_thread;
    for (int64_t c = j * pl.n_chunks / slots; c < (j + 1) * pl.n_chunks / slots; c++) {
      int64_t b0 = c * pl.chunk, nb = s->n - b0 < pl.chunk ? s->n - b0 : pl.chunk;
      conv_backward_chunk (dx ? dx + b0 * in_image : NULL, dw ? parts + j * wsize : NULL,
                           dout + b0 * out_image, x + b0 * in_image, w, u, nb, s, &pl, col,
                           col + col_size, col + col_size + dcol_size);
    }
  }
  blas_serial_end (blas_threads);
  if (dw && pl.wino) {
    /* slot sums into parts[0], then back from the Winograd domain */
#pragma omp parallel for schedule(static) if (wsize > 16384)
    for (int64_t i = 0; i < wsize; i++)
      for (int64_t j = 1; j < slots; j++)
        parts[i] += parts[j * wsize + i];
    for (int g = 0; g < s->groups; g++)
      wino_weight_grad_out (dw + g * pl.cout_g * pl.k, parts + g * 16 * pl.cout_g * pl.cin_g,
                            pl.cout_g, pl.cin_g);
  } else if (dw) {
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

/* The 2x2 stride-2 unpadded case (after most convolutions): the window's four values in
 * PyTorch's scan order, the later one winning only when larger (or NaN). Written as selects
 * so that it vectorises; compiled for AVX2 too. */
static inline __attribute__ ((always_inline)) void
max_pool_2x2_body (float *restrict op, int32_t *restrict ap, const float *restrict xp,
                   const BpPool2dShape *s)
{
  for (int64_t oy = 0; oy < s->h_out; oy++) {
    const float *r0 = xp + 2 * oy * s->w, *r1 = r0 + s->w;
    float *o = op + oy * s->w_out;
    int32_t *a = ap ? ap + oy * s->w_out : NULL, base = (int32_t) (2 * oy * s->w);
    for (int64_t ox = 0; ox < s->w_out; ox++) {
      float v0 = r0[2 * ox], v1 = r0[2 * ox + 1], v2 = r1[2 * ox], v3 = r1[2 * ox + 1];
      float m = v0;
      int32_t i = 0;
      bool t1 = v1 > m || v1 != v1;
      m = t1 ? v1 : m;
      i = t1 ? 1 : i;
      bool t2 = v2 > m || v2 != v2;
      m = t2 ? v2 : m;
      i = t2 ? (int32_t) s->w : i;
      bool t3 = v3 > m || v3 != v3;
      m = t3 ? v3 : m;
      i = t3 ? (int32_t) s->w + 1 : i;
      o[ox] = m;
      if (a)
        a[ox] = base + 2 * (int32_t) ox + i;
    }
  }
}

AVX2 static void
max_pool_2x2_avx2 (float *op, int32_t *ap, const float *xp, const BpPool2dShape *s)
{
  max_pool_2x2_body (op, ap, xp, s);
}

static void
max_pool_2x2_base (float *op, int32_t *ap, const float *xp, const BpPool2dShape *s)
{
  max_pool_2x2_body (op, ap, xp, s);
}

static void
max_pool2d_forward (float *out, int32_t *argmax, const float *x, const BpPool2dShape *s)
{
  /* out, argmax (N,C,Ho,Wo), x (N,C,H,W) */
  int64_t planes = s->n * s->c, hw = s->h * s->w, ohw = s->h_out * s->w_out;
  bool two = s->kh == 2 && s->kw == 2 && s->stride[0] == 2 && s->stride[1] == 2 &&
             s->padding[0] == 0 && s->padding[1] == 0, avx2 = have_avx2 ();
#pragma omp parallel for schedule(static) if (planes * hw > 32768)
  for (int64_t pl = 0; pl < planes; pl++) {
    const float *xp = x + pl * hw;
    float *op = out + pl * ohw;
    int32_t *ap = argmax ? argmax + pl * ohw : NULL;
    if (two) {
      if (avx2)
        max_pool_2x2_avx2 (op, ap, xp, s);
      else
        max_pool_2x2_base (op, ap, xp, s);
      continue;
    }
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

/* ---- conv2d with bfloat16 operands ----
 * The operands rounded to bfloat16 into scratch copies, then the float32 paths above: the
 * products of two bfloat16 values are exact in float32, so this is a bfloat16-input,
 * float32-accumulate convolution (up to the order of the sums, and Winograd's own rounding). */

static BpStatus
conv2d_forward_bf16 (float *out, const float *x, const float *w, const float *bias,
                     const BpConv2dShape *s)
{
  int64_t nx = s->n * s->c_in * s->h * s->w, nw = s->c_out * (s->c_in / s->groups) * s->kh * s->kw;
  Scratch sc;
  if (!scratch_alloc (&sc, nx + nw))
    return BP_ERR_NOMEM;
  float *xr = sc.base, *wr = sc.base + nx;
  bp_bf16_round_n (xr, x, nx);
  bp_bf16_round_n (wr, w, nw);
  BpStatus status = conv2d_forward (out, xr, wr, bias, s);
  scratch_free (&sc);
  return status;
}

static BpStatus
conv2d_backward_bf16 (float *dx, float *dw, const float *dout, const float *x, const float *w,
                      const BpConv2dShape *s)
{
  /* dx from dout and w, dw from dout and x: round only what is needed */
  int64_t nx = dw ? s->n * s->c_in * s->h * s->w : 0;
  int64_t nw = dx ? s->c_out * (s->c_in / s->groups) * s->kh * s->kw : 0;
  int64_t ng = s->n * s->c_out * s->h_out * s->w_out;
  if (!dx && !dw)
    return BP_OK;
  Scratch sc;
  if (!scratch_alloc (&sc, ng + nx + nw))
    return BP_ERR_NOMEM;
  float *gr = sc.base, *xr = gr + ng, *wr = xr + nx;
  bp_bf16_round_n (gr, dout, ng);
  if (dw)
    bp_bf16_round_n (xr, x, nx);
  if (dx)
    bp_bf16_round_n (wr, w, nw);
  BpStatus status = conv2d_backward (dx, dw, gr, dw ? xr : x, dx ? wr : w, s);
  scratch_free (&sc);
  return status;
}

const BpConvKernels bp_cpu_conv_bf16_kernels = {
  .conv2d_forward = conv2d_forward_bf16,
  .conv2d_backward = conv2d_backward_bf16,
  .conv2d_backward_bias = conv2d_backward_bias,
  .max_pool2d_forward = max_pool2d_forward,
  .max_pool2d_backward = max_pool2d_backward,
  .avg_pool2d_forward = avg_pool2d_forward,
  .avg_pool2d_backward = avg_pool2d_backward,
  .adaptive_avg_pool2d_forward = adaptive_avg_pool2d_forward,
  .adaptive_avg_pool2d_backward = adaptive_avg_pool2d_backward,
};

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
