/* bp-rnn-reserve.h: the layout of the recurrent family's reserve (what the forward keeps for
 * the backward), shared by the CPU and CUDA kernels so that both read the same floats.
 *
 * The parts of the reserve, all time-major ((T,B,.) rows):
 *   x0           (T,B,I)       the input (a copy, time-major)
 *   y[l]         (T,B,D*H)     every layer's output (0 past a sequence's length)
 *   drop[l]      (T,B,D*H)     the dropped output that layer l+1 reads (with dropout only)
 *   per layer and direction k:
 *     gates[k]   (T,B,G*H)     the activated gates (RNN: the new state)
 *     hs[k]      (T,B,H)       the state carried after every step
 *     cs[k]      (T,B,H)       LSTM: the cell carried after every step; GRU: W_hn h + b_hn of
 *                              every step */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "bp-ops-rnn.h"

typedef struct {
  int64_t t, b, i, h, g, d, l;
  bool drop;
  int64_t off_x0, off_y, off_drop, off_k;
  int64_t per_k; /* floats per layer-direction */
} BpRnnLayout;

/* Inter-layer dropout applies: training, p > 0 and more than one layer. */
static inline bool
bp_rnn_dropout_on (const BpRnnDesc *d)
{
  return d->training && d->dropout > 0.0f && d->num_layers > 1;
}

static inline BpRnnLayout
bp_rnn_layout (const BpRnnDesc *d)
{
  BpRnnLayout s;
  s.t = d->seq_len;
  s.b = d->batch;
  s.i = d->input_size;
  s.h = d->hidden_size;
  s.g = bp_rnn_gates (d->mode);
  s.d = d->num_directions;
  s.l = d->num_layers;
  s.drop = bp_rnn_dropout_on (d);
  int64_t tb = s.t * s.b;
  s.off_x0 = 0;
  s.off_y = tb * s.i;
  s.off_drop = s.off_y + s.l * tb * s.d * s.h;
  s.off_k = s.off_drop + (s.drop ? (s.l - 1) * tb * s.d * s.h : 0);
  s.per_k = tb * (s.g * s.h + s.h);
  if (d->mode == BP_RNN_LSTM || d->mode == BP_RNN_GRU)
    s.per_k += tb * s.h;
  return s;
}

/* Floats of the whole reserve. */
static inline int64_t
bp_rnn_reserve_floats (const BpRnnDesc *d)
{
  BpRnnLayout s = bp_rnn_layout (d);
  return s.off_k + s.l * s.d * s.per_k;
}

/* Layer l's output y[l]. */
static inline float *
bp_rnn_res_y (float *r, const BpRnnLayout *s, int64_t l)
{
  return r + s->off_y + l * s->t * s->b * s->d * s->h;
}

/* The input of layer l (T,B,I_l): x0, the previous output, or its dropped copy. */
static inline float *
bp_rnn_res_in (float *r, const BpRnnLayout *s, int64_t l)
{
  if (l == 0)
    return r + s->off_x0;
  if (s->drop)
    return r + s->off_drop + (l - 1) * s->t * s->b * s->d * s->h;
  return bp_rnn_res_y (r, s, l - 1);
}

/* The part of layer-direction k (gates, hs, then cs). */
static inline float *
bp_rnn_res_k (float *r, const BpRnnLayout *s, int64_t k)
{
  return r + s->off_k + k * s->per_k;
}
