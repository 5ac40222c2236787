/* bp-ops-eltwise.h: elementwise ops, activations, dropout, reshapes, concat, embedding, sums. */
#pragma once

#include "bp-tensor.h"

/* Kernels of this family that a backend provides (filled in engine/cpu/eltwise.c). */
struct BpEltwiseKernels {
  int placeholder; /* replaced by the real kernel pointers */
};

/* Same-shape arithmetic. */
BpTensor *bp_add (BpTensor *a, BpTensor *b);
BpTensor *bp_sub (BpTensor *a, BpTensor *b);
BpTensor *bp_mul (BpTensor *a, BpTensor *b);
BpTensor *bp_scale (BpTensor *x, float s);

/* Activations (PyTorch semantics; GELU is the exact erf form). */
BpTensor *bp_relu (BpTensor *x);
BpTensor *bp_leaky_relu (BpTensor *x, float negative_slope);
BpTensor *bp_gelu (BpTensor *x);
BpTensor *bp_tanh (BpTensor *x);
BpTensor *bp_sigmoid (BpTensor *x);

/* Inverted dropout: in training zeroes with probability p and scales by 1/(1-p), using one key
 * from the engine RNG (so the result does not depend on the thread count); identity in eval. */
BpTensor *bp_dropout (BpTensor *x, float p, bool training);

/* Same data, new shape (numel must match; one dimension may be -1). */
BpTensor *bp_reshape (BpTensor *x, int ndim, const int64_t *shape);
/* torch.flatten (x, start_dim): dimensions from start_dim on become one. */
BpTensor *bp_flatten (BpTensor *x, int start_dim);
/* Concatenation along dim (negative counts from the end). */
BpTensor *bp_concat (int n, BpTensor *const *xs, int dim);
/* Rows of weight (V,D) picked by indices (any shape, integral values stored as float):
 * out (*indices.shape, D). An index outside [0, V) is an error. */
BpTensor *bp_embedding (BpTensor *weight, BpTensor *indices);

/* Reductions to a scalar (shape [1]). */
BpTensor *bp_sum (BpTensor *x);
BpTensor *bp_mean (BpTensor *x);
