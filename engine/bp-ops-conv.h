/* bp-ops-conv.h: 2-d convolution and pooling on NCHW tensors. */
#pragma once

#include "bp-tensor.h"

/* The sizes of one conv2d call, worked out and checked by the front-end. */
typedef struct {
  int64_t n, c_in, h, w;       /* input (N,Cin,H,W) */
  int64_t c_out, h_out, w_out; /* output (N,Cout,Ho,Wo); weight (Cout,Cin/groups,Kh,Kw) */
  int kh, kw;
  int stride[2], padding[2], dilation[2]; /* (h, w) */
  int groups;
} BpConv2dShape;

/* The sizes of one pooling call: input (N,C,H,W), output (N,C,Ho,Wo). Adaptive pooling uses
 * only the sizes. */
typedef struct {
  int64_t n, c, h, w, h_out, w_out;
  int kh, kw;
  int stride[2], padding[2]; /* (h, w) */
  bool count_include_pad;    /* average pooling: divide by the full window size */
} BpPool2dShape;

/* Kernels of this family that a backend provides (filled in engine/cpu/conv.c). Device
 * pointers; outputs first, then inputs, then sizes. "+=" kernels accumulate into a gradient.
 * Kernels that need scratch memory return BP_ERR_NOMEM (with the error set) when it fails. */
struct BpConvKernels {
  /* out (N,Cout,Ho,Wo) = conv (x (N,Cin,H,W), w (Cout,Cin/g,Kh,Kw)) + bias (Cout), bias may be
   * NULL */
  BpStatus (*conv2d_forward) (float *out, const float *x, const float *w, const float *bias,
                              const BpConv2dShape *s);
  /* dx (N,Cin,H,W) += conv2d's input gradient, dw (Cout,Cin/g,Kh,Kw) += its weight gradient,
   * from dout (N,Cout,Ho,Wo); either of dx, dw may be NULL (not wanted) */
  BpStatus (*conv2d_backward) (float *dx, float *dw, const float *dout, const float *x,
                               const float *w, const BpConv2dShape *s);
  /* db (Cout) += sum of dout (N,Cout,Ho,Wo) over N, Ho, Wo */
  void (*conv2d_backward_bias) (float *db, const float *dout, const BpConv2dShape *s);
  /* out (N,C,Ho,Wo) = window maxima of x (N,C,H,W); argmax (N,C,Ho,Wo), may be NULL, gets the
   * position (h * W + w) of each maximum in its input plane (the first one on ties) */
  void (*max_pool2d_forward) (float *out, int32_t *argmax, const float *x,
                              const BpPool2dShape *s);
  /* dx (N,C,H,W) += dout (N,C,Ho,Wo) routed to the argmax positions */
  void (*max_pool2d_backward) (float *dx, const float *dout, const int32_t *argmax,
                               const BpPool2dShape *s);
  /* out (N,C,Ho,Wo) = window means of x (N,C,H,W), zero padding */
  void (*avg_pool2d_forward) (float *out, const float *x, const BpPool2dShape *s);
  /* dx (N,C,H,W) += dout (N,C,Ho,Wo) spread evenly over each window */
  void (*avg_pool2d_backward) (float *dx, const float *dout, const BpPool2dShape *s);
  /* out (N,C,Ho,Wo) = means over the windows [floor (i H / Ho), ceil ((i + 1) H / Ho)) */
  void (*adaptive_avg_pool2d_forward) (float *out, const float *x, const BpPool2dShape *s);
  /* dx (N,C,H,W) += dout (N,C,Ho,Wo) spread evenly over those windows */
  void (*adaptive_avg_pool2d_backward) (float *dx, const float *dout, const BpPool2dShape *s);
};

typedef struct {
  int stride[2];   /* (h, w), at least 1 */
  int padding[2];  /* zero padding (h, w) */
  int dilation[2]; /* at least 1 */
  int groups;      /* in and out channels divisible by it */
} BpConv2dParams;

/* PyTorch's defaults: stride 1, padding 0, dilation 1, groups 1. */
BpConv2dParams bp_conv2d_params_default (void);

/* out (N,Cout,Ho,Wo) = conv (x (N,Cin,H,W), weight (Cout,Cin/groups,Kh,Kw)) + bias (Cout);
 * bias may be NULL, p may be NULL (the defaults). A shape that does not fit is an error naming
 * both shapes. */
BpTensor *bp_conv2d (BpTensor *x, BpTensor *weight, BpTensor *bias, const BpConv2dParams *p);

/* Pooling windows (h, w); padding pads with -inf for max and zeros for average. stride may be
 * NULL (the kernel size, PyTorch's default) and padding may be NULL (0); padding is at most
 * half the kernel, as in PyTorch. Max pooling records the arg-max positions for backward. */
BpTensor *bp_max_pool2d (BpTensor *x, const int kernel[2], const int stride[2],
                         const int padding[2]);
/* count_include_pad as in PyTorch (default true there). */
BpTensor *bp_avg_pool2d (BpTensor *x, const int kernel[2], const int stride[2],
                         const int padding[2], bool count_include_pad);
/* torch.nn.functional.adaptive_avg_pool2d. */
BpTensor *bp_adaptive_avg_pool2d (BpTensor *x, int out_h, int out_w);
