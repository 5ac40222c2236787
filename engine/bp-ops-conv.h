/* bp-ops-conv.h: 2-d convolution and pooling on NCHW tensors. */
#pragma once

#include "bp-tensor.h"

struct BpConvKernels {
  int placeholder; /* replaced by the real kernel pointers */
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
 * bias may be NULL. A shape that does not fit is an error naming both shapes. */
BpTensor *bp_conv2d (BpTensor *x, BpTensor *weight, BpTensor *bias, const BpConv2dParams *p);

/* Pooling windows (h, w); padding pads with -inf for max and zeros for average. */
BpTensor *bp_max_pool2d (BpTensor *x, const int kernel[2], const int stride[2],
                         const int padding[2]);
/* count_include_pad as in PyTorch (default true there). */
BpTensor *bp_avg_pool2d (BpTensor *x, const int kernel[2], const int stride[2],
                         const int padding[2], bool count_include_pad);
/* torch.nn.functional.adaptive_avg_pool2d. */
BpTensor *bp_adaptive_avg_pool2d (BpTensor *x, int out_h, int out_w);
