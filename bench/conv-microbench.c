/* conv-microbench.c: scratch timing of conv2d forward + backward and 2x2 max pooling on
 * SimpleCNN's layers (batch 64; the first layer's input needs no gradient, as in training).
 * Not built by meson; with a build directory B:
 *   cc -O3 -fopenmp -I engine -I B bench/conv-microbench.c B/engine/libbackprop.a \
 *      -L/usr/lib/x86_64-linux-gnu/openblas-openmp -lopenblas -lm \
 *      $(pkg-config --libs glib-2.0 gio-2.0 json-glib-1.0 sqlite3 zlib)
 *   ./a.out THREADS REPS [LAYER]    (best of REPS; BP_CPUTIME=1 times process CPU time)
 * The PyTorch side of the comparison (Debian's 1.13, oneDNN):
 *   torch.set_num_threads(T); conv = torch.nn.Conv2d(cin, cout, 3, padding=1)
 *   x = torch.randn(64, cin, hw, hw, requires_grad=cin > 1); gy = torch.randn(64, cout, hw, hw)
 *   time: y = conv(x); y.backward(gy)        (and conv(x) under torch.no_grad() for fwd) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bp-backend.h"
#include "bp-ops-conv.h"

static double
now (void)
{
  struct timespec t;
  clock_gettime (getenv ("BP_CPUTIME") ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static BpTensor *
rand_tensor (int64_t a, int64_t b, int64_t c, int64_t d)
{
  BpTensor *t = bp_tensor_new_4d (a, b, c, d);
  bp_tensor_uniform (t, -1.0f, 1.0f);
  return t;
}

int
main (int argc, char **argv)
{
  int threads = argc > 1 ? atoi (argv[1]) : 2;
  int reps = argc > 2 ? atoi (argv[2]) : 20;
  int only = argc > 3 ? atoi (argv[3]) : -1; /* one layer, 0 to 2 */
  bp_set_num_threads (threads);
  struct { int cin, cout, hw; bool grad_x; } layers[] = {{1, 32, 28, false}, {32, 64, 14, true},
                                                        {64, 128, 7, true}};
  double total_fwd = 0, total_step = 0;
  for (int l = 0; l < 3; l++) {
    if (only >= 0 && l != only)
      continue;
    BpTensor *x = rand_tensor (64, layers[l].cin, layers[l].hw, layers[l].hw);
    BpTensor *w = rand_tensor (layers[l].cout, layers[l].cin, 3, 3);
    BpTensor *b = bp_tensor_new_1d (layers[l].cout);
    BpTensor *gy = rand_tensor (64, layers[l].cout, layers[l].hw, layers[l].hw);
    x->requires_grad = layers[l].grad_x;
    w->requires_grad = b->requires_grad = true;
    BpConv2dParams p = bp_conv2d_params_default ();
    p.padding[0] = p.padding[1] = 1;
    double best_fwd = 1e9, best_step = 1e9;
    for (int r = 0; r < reps + 5; r++) {
      bool was = bp_set_grad_enabled (false);
      double t0 = now ();
      BpTensor *y = bp_conv2d (x, w, b, &p);
      double t1 = now ();
      bp_tensor_unref (y);
      bp_set_grad_enabled (was);
      double t2 = now ();
      y = bp_conv2d (x, w, b, &p);
      bp_backward_with (y, gy->data);
      double t3 = now ();
      bp_tape_clear ();
      bp_tensor_unref (y);
      if (r >= 5) {
        best_fwd = t1 - t0 < best_fwd ? t1 - t0 : best_fwd;
        best_step = t3 - t2 < best_step ? t3 - t2 : best_step;
      }
    }
    printf ("%d->%d %dx%d fwd: %.3f ms fwd+bwd: %.3f ms\n", layers[l].cin, layers[l].cout,
            layers[l].hw, layers[l].hw, best_fwd * 1e3, best_step * 1e3);
    total_fwd += best_fwd;
    total_step += best_step;
    bp_tensor_unref (x);
    bp_tensor_unref (w);
    bp_tensor_unref (b);
    bp_tensor_unref (gy);
  }
  printf ("total fwd: %.3f ms fwd+bwd: %.3f ms\n", total_fwd * 1e3, total_step * 1e3);
  /* max pooling 2x2 after each layer */
  for (int l = 0; l < 3; l++) {
    if (only >= 0 && l != only)
      continue;
    BpTensor *x = rand_tensor (64, layers[l].cout, layers[l].hw, layers[l].hw);
    x->requires_grad = true;
    int k2[2] = {2, 2};
    double best = 1e9;
    for (int r = 0; r < reps + 5; r++) {
      double t0 = now ();
      BpTensor *y = bp_max_pool2d (x, k2, NULL, NULL);
      float *g = calloc (y->numel, sizeof (float));
      double t1 = now ();
      bp_backward_with (y, g);
      double t2 = now ();
      bp_tape_clear ();
      bp_tensor_unref (y);
      free (g);
      bp_tensor_zero_grad (x);
      if (r >= 5 && (t1 - t0) + (t2 - t1) < best)
        best = (t1 - t0) + (t2 - t1);
    }
    printf ("max_pool2d 2x2 on %d x %d x %d fwd+bwd: %.3f ms\n", layers[l].cout, layers[l].hw,
            layers[l].hw, best * 1e3);
    bp_tensor_unref (x);
  }
  return 0;
}
