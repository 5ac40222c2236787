/* bp-ops-eltwise.h: elementwise ops, activations, dropout, reshapes, concat, embedding, sums. */
#pragma once

#include "bp-tensor.h"

/* The activations that share one forward and one backward kernel. */
typedef enum {
  BP_ACT_RELU = 0,
  BP_ACT_LEAKY_RELU, /* uses the slope argument */
  BP_ACT_GELU,       /* exact: 0.5 x (1 + erf (x / sqrt 2)) */
  BP_ACT_TANH,
  BP_ACT_SIGMOID,
} BpActivation;

/* Kernels of this family that a backend provides (filled in engine/cpu/eltwise.c).
 * All pointers are device pointers of n (or the stated number of) floats; outputs first,
 * then inputs, then sizes and parameters. "+=" kernels accumulate into a gradient. */
struct BpEltwiseKernels {
  /* out = a + alpha * b (add: alpha 1, sub: alpha -1) */
  void (*add) (float *out, const float *a, const float *b, float alpha, int64_t n);
  /* out = a * b */
  void (*mul) (float *out, const float *a, const float *b, int64_t n);
  /* da += dout * b (the backward of mul, once per factor) */
  void (*mul_backward) (float *da, const float *dout, const float *b, int64_t n);
  /* out = s * x */
  void (*scale) (float *out, const float *x, float s, int64_t n);
  /* out = act (x) */
  void (*activation) (float *out, const float *x, int64_t n, BpActivation act, float slope);
  /* dx += dout * act' (x); out = act (x) is passed too (tanh and sigmoid use it) */
  void (*activation_backward) (float *dx, const float *dout, const float *x, const float *out,
                               int64_t n, BpActivation act, float slope);
  /* out = x / (1 - p) where bp_rng_hash_uniform (key, i) >= p, else 0 */
  void (*dropout) (float *out, const float *x, int64_t n, float p, uint64_t key);
  /* dx += dout / (1 - p) on the same kept elements as dropout with that key */
  void (*dropout_backward) (float *dx, const float *dout, int64_t n, float p, uint64_t key);
  /* Copies x (outer, inner) into the columns [offset, offset + inner) of out (outer, out_inner);
   * concat's forward, once per input. */
  void (*concat_copy) (float *out, const float *x, int64_t outer, int64_t inner,
                       int64_t out_inner, int64_t offset);
  /* dx (outer, inner) += dout (outer, out_inner) columns [offset, offset + inner) */
  void (*concat_backward) (float *dx, const float *dout, int64_t outer, int64_t inner,
                           int64_t out_inner, int64_t offset);
  /* out (n,d) = weight (v,d) rows picked by indices (n). Returns -1, or the position of the
   * first index that is not an integer in [0, v) (then out is left unwritten). */
  int64_t (*embedding) (float *out, const float *weight, const float *indices, int64_t n,
                        int64_t v, int64_t d);
  /* out (n,d) = weight (v,d) rows picked by indices (n) that the caller guarantees to be
   * integers in [0, v): no check and nothing read back (a CUDA graph can contain it) */
  void (*gather_rows) (float *out, const float *weight, const float *indices, int64_t n,
                       int64_t d);
  /* dweight (v,d) += dout (n,d) rows scattered to indices (n), in index order (deterministic) */
  void (*embedding_backward) (float *dweight, const float *dout, const float *indices, int64_t n,
                              int64_t v, int64_t d);
  /* out[0] = scale * sum (x), summed in double in a fixed order (same for any thread count) */
  void (*sum) (float *out, const float *x, int64_t n, float scale);
  /* dx += scale * dout[0] */
  void (*sum_backward) (float *dx, const float *dout, int64_t n, float scale);
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
 * from the engine RNG (so the result does not depend on the thread count); identity in eval
 * and for p = 0 (no key is drawn then). p outside [0, 1) is an error. */
BpTensor *bp_dropout (BpTensor *x, float p, bool training);

/* Same data, new shape (numel must match; one dimension may be -1). The data is copied into
 * the new tensor (one pass over memory; tensors own their storage). */
BpTensor *bp_reshape (BpTensor *x, int ndim, const int64_t *shape);
/* torch.flatten (x, start_dim): dimensions from start_dim on become one (negative counts from
 * the end). Copies like bp_reshape. */
BpTensor *bp_flatten (BpTensor *x, int start_dim);
/* Concatenation along dim (negative counts from the end). Shapes must agree except on dim. */
BpTensor *bp_concat (int n, BpTensor *const *xs, int dim);
/* Rows of weight (V,D) picked by indices (any shape, integral values stored as float):
 * out (*indices.shape, D). An index outside [0, V) or not an integer is an error. Only the
 * weight gets a gradient. */
BpTensor *bp_embedding (BpTensor *weight, BpTensor *indices);
/* Whether bp_embedding on this thread skips its index check (which reads the answer back from
 * the device: a host synchronisation that a CUDA graph cannot contain). For callers that
 * checked every index beforehand (the trainer checks its training inputs once). Returns the
 * previous setting; off by default. */
bool bp_set_indices_trusted (bool trusted);
/* The rows of src (V, D) at indices (N) as a new (N, D) tensor, for indices the caller knows to
 * be integers in [0, V) (they are not checked: the check would wait for the device). No
 * gradient: src must not require one. NULL (error set) on bad shapes or devices. */
BpTensor *bp_gather_rows (BpTensor *src, BpTensor *indices);

/* Reductions to a scalar (shape [1]). */
BpTensor *bp_sum (BpTensor *x);
BpTensor *bp_mean (BpTensor *x);
