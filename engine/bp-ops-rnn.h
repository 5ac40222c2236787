/* bp-ops-rnn.h: recurrent layers as torch.nn.RNN / LSTM / GRU: multi-layer, bidirectional,
 * inter-layer dropout, batch_first, initial and final states, variable-length sequences. */
#pragma once

#include "bp-tensor.h"

typedef enum {
  BP_RNN_TANH = 0, /* h' = tanh (W_ih x + b_ih + W_hh h + b_hh) */
  BP_RNN_RELU,     /* the same with ReLU */
  BP_RNN_LSTM,     /* gates i, f, g, o (PyTorch's order) */
  BP_RNN_GRU,      /* gates r, z, n (PyTorch's order) */
} BpRnnMode;

/* Gates per mode: 1, 1, 4, 3. */
int bp_rnn_gates (BpRnnMode mode);

/* What one call computes; filled by the front-end for the kernels. */
typedef struct {
  BpRnnMode mode;
  int64_t batch, seq_len, input_size, hidden_size;
  int num_layers, num_directions;
  bool bias;
  bool batch_first;     /* x and out are (B,T,.) instead of (T,B,.) */
  bool training;        /* inter-layer dropout on */
  float dropout;        /* probability on the outputs of every layer but the last */
  uint64_t dropout_key; /* layer l draws with bp_rng_hash_uniform (bp_rng_hash (key, l), i) */
} BpRnnDesc;

/* Kernels of this family that a backend provides (filled in engine/cpu/rnn.c). Pointers are
 * device pointers except the arrays of weight pointers (host arrays of device pointers);
 * backward kernels ACCUMULATE (+=) into every gradient that is not NULL.
 *
 * Weights come per layer and direction in PyTorch's order: w[k*P + 0] weight_ih (G*H, I_l),
 * w[k*P + 1] weight_hh (G*H, H), and with bias w[k*P + 2] bias_ih (G*H), w[k*P + 3] bias_hh
 * (G*H), for k = layer * D + direction, P = 4 with bias and 2 without, G the gates, I_l the
 * input size of layer l (input_size, then D*H). lengths (B) are the sequence lengths as
 * floats in [1, T] or NULL (all T): a sequence's outputs past its length are 0 and its final
 * state is the one after its last valid step (packed-sequence semantics). */
struct BpRnnKernels {
  /* Floats of the reserve the forward keeps for the backward. */
  int64_t (*reserve_size) (const BpRnnDesc *d);
  /* out (B,T,D*H) or (T,B,D*H), h_n (L*D,B,H), c_n (L*D,B,H) (LSTM; else NULL), reserve,
   * x (B,T,I) or (T,B,I), h0 (L*D,B,H) or NULL (zeros), c0 likewise (LSTM). */
  BpStatus (*forward) (float *out, float *h_n, float *c_n, float *reserve, const float *x,
                       const float *h0, const float *c0, const float *const *w,
                       const float *lengths, const BpRnnDesc *d);
  /* dx, dh0, dc0, dw[] +=, from dout (like out), dh_n and dc_n (either may be NULL: no
   * gradient), the reserve the forward filled and the forward's inputs. */
  BpStatus (*backward) (float *dx, float *dh0, float *dc0, float *const *dw, const float *dout,
                        const float *dh_n, const float *dc_n, const float *reserve,
                        const float *x, const float *h0, const float *c0, const float *const *w,
                        const float *lengths, const BpRnnDesc *d);
};

/* The layer's hyper-parameters, as torch.nn.RNN/LSTM/GRU's constructor. */
typedef struct {
  BpRnnMode mode;
  int64_t input_size, hidden_size;
  int num_layers;     /* >= 1 */
  bool bias;
  bool batch_first;
  bool bidirectional;
  float dropout;      /* in [0, 1): on the outputs of every layer but the last, in training */
} BpRnnParams;

/* Number of weight tensors: num_layers * directions * (bias ? 4 : 2). */
int bp_rnn_n_weights (const BpRnnParams *p);
/* Name and shape of weight k in PyTorch's order ("weight_ih_l0", "bias_hh_l1_reverse"). */
void bp_rnn_weight_info (const BpRnnParams *p, int k, char *name, size_t len, int64_t shape[2],
                         int *ndim);

/* out (B,T,D*H) with batch_first, else (T,B,D*H), from x (B,T,I) / (T,B,I) and the weights in
 * PyTorch's order (bp_rnn_weight_info). h0, c0 (L*D,B,H) may be NULL (zeros); c0 is for LSTM
 * only. lengths (B, host) may be NULL; else every length is in [1, T]. h_n, c_n (may be NULL)
 * receive the final states (L*D,B,H) (c_n: LSTM only). All outputs take part in autograd.
 * Dropout between layers draws one key from the engine RNG when training and dropout > 0. */
BpTensor *bp_rnn (const BpRnnParams *p, BpTensor *x, BpTensor *const *weights, BpTensor *h0,
                  BpTensor *c0, const int64_t *lengths, bool training, BpTensor **h_n,
                  BpTensor **c_n);

/* The accessor front-ends use: the backend's table, or the CPU's where the CPU backend table
 * does not list it yet. NULL (with the error set) where the device has none. */
const struct BpRnnKernels *bp_rnn_kernels (BpDevice device);

/* The CPU backend's table (engine/cpu/rnn.c). */
extern const struct BpRnnKernels bp_cpu_rnn_kernels;

/* One vector per sequence: x (B, T, ...) -> (B, ...) holding time step T-1 (mode 0), the mean
 * over time (mode 1) or time step 0 (mode 2): a classifier's head on a recurrent output. */
BpTensor *bp_seq_pool (BpTensor *x, int mode);
