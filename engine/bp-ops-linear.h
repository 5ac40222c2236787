/* bp-ops-linear.h: matrix products: matmul and the Linear layer's affine map. */
#pragma once

#include "bp-tensor.h"

/* out (M,N) = a (M,K) @ b (K,N). */
BpTensor *bp_matmul (BpTensor *a, BpTensor *b);
/* out (N,out) = x (N,in) @ weight (out,in)^T + bias (out); bias may be NULL. Like
 * torch.nn.functional.linear; x may have more leading dimensions, flattened as rows. */
BpTensor *bp_linear (BpTensor *x, BpTensor *weight, BpTensor *bias);
