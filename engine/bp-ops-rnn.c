/* bp-ops-rnn.c: the recurrent layers' front-end: shape checks, the tape (one node for the whole
 * stack of layers, final states tied to it) and dispatch to the backend's rnn kernels (its
 * rnn_bf16 table under BP_PRECISION_BF16). */
#include "bp-ops-rnn.h"
#include "bp-backend.h"
#include "bp-device-step.h"
#include "bp-ops-eltwise.h"
#include "bp-rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
bp_rnn_gates (BpRnnMode mode)
{
  return mode == BP_RNN_LSTM ? 4 : mode == BP_RNN_GRU ? 3 : 1;
}

const BpRnnKernels *
bp_rnn_kernels (BpDevice device)
{
  const BpBackend *be = bp_backend (device);
  if (be && be->rnn)
    return be->rnn;
  if (device == BP_DEVICE_CPU)
    return &bp_cpu_rnn_kernels;
  bp_set_error (BP_ERR_UNSUPPORTED, "rnn: the %s backend has no recurrent kernels yet",
                bp_device_name (device));
  return NULL;
}

/* The kernels at a precision: with bfloat16 the backend's rnn_bf16 table where it has one (the
 * CPU's when the backend has no rnn table at all). */
static const BpRnnKernels *
rnn_kernels_at (BpDevice device, BpPrecision precision)
{
  const BpBackend *be = bp_backend (device);
  if (precision == BP_PRECISION_BF16 && be && be->rnn_bf16)
    return be->rnn_bf16;
  return bp_rnn_kernels (device);
}

int
bp_rnn_n_weights (const BpRnnParams *p)
{
  return p->num_layers * (p->bidirectional ? 2 : 1) * (p->bias ? 4 : 2);
}

void
bp_rnn_weight_info (const BpRnnParams *p, int k, char *name, size_t len, int64_t shape[2],
                    int *ndim)
{
  static const char *const kinds[] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
  int per = p->bias ? 4 : 2, dirs = p->bidirectional ? 2 : 1;
  int which = k % per, ld = k / per, layer = ld / dirs, dir = ld % dirs;
  int64_t gh = bp_rnn_gates (p->mode) * p->hidden_size;
  snprintf (name, len, "%s_l%d%s", kinds[which], layer, dir ? "_reverse" : "");
  shape[0] = gh;
  shape[1] = which == 0 ? (layer == 0 ? p->input_size : dirs * p->hidden_size) : p->hidden_size;
  *ndim = which < 2 ? 2 : 1;
}

/* What the backward needs: the call's description, the reserve the forward filled, every
 * weight (more than a node holds), the final states and the lengths. */
typedef struct {
  BpRnnDesc desc;
  BpPrecision precision; /* the forward's: the backward's products use the same */
  int n_w;
  BpTensor **w;
  BpTensor *reserve, *lengths, *h_n, *c_n;
} RnnCtx;

static void
rnn_ctx_free (void *p)
{
  RnnCtx *c = p;
  for (int k = 0; k < c->n_w; k++)
    bp_tensor_unref (c->w[k]);
  free (c->w);
  bp_tensor_unref (c->reserve);
  bp_tensor_unref (c->lengths);
  bp_tensor_unref (c->h_n);
  bp_tensor_unref (c->c_n);
  free (c);
}

static void
rnn_backward (BpNode *node)
{
  /* out, h_n, c_n = rnn (x, h0, c0, w): every gradient from the kernel in one pass */
  RnnCtx *c = node->ctx;
  BpTensor *x = node->in[0], *h0 = node->in[1], *c0 = node->in[2], *out = node->out;
  const BpRnnKernels *k = rnn_kernels_at (out->device, c->precision);
  const float **w = malloc (sizeof (float *) * (size_t) c->n_w);
  float **dw = malloc (sizeof (float *) * (size_t) c->n_w);
  if (!k || !w || !dw) {
    free (w);
    free (dw);
    return;
  }
  for (int j = 0; j < c->n_w; j++) {
    w[j] = c->w[j]->data;
    dw[j] = c->w[j]->requires_grad ? bp_tensor_grad (c->w[j]) : NULL;
  }
  float *dx = x->requires_grad ? bp_tensor_grad (x) : NULL;
  float *dh0 = h0 && h0->requires_grad ? bp_tensor_grad (h0) : NULL;
  float *dc0 = c0 && c0->requires_grad ? bp_tensor_grad (c0) : NULL;
  k->backward (dx, dh0, dc0, dw, out->grad, c->h_n->grad, c->c_n ? c->c_n->grad : NULL,
               c->reserve->data, x->data, h0 ? h0->data : NULL, c0 ? c0->data : NULL, w,
               c->lengths ? c->lengths->data : NULL, &c->desc);
  free (w);
  free (dw);
}

/* A final state's node: its gradient is read by rnn_backward (through the context); this
 * node only makes sure the rnn node runs when nothing but the state is used. */
static void
state_backward (BpNode *node)
{
  bp_tensor_grad (node->in[0]);
}

static bool
has_shape3 (const BpTensor *t, int64_t a, int64_t b, int64_t c, BpDevice device)
{
  return t->ndim == 3 && t->shape[0] == a && t->shape[1] == b && t->shape[2] == c &&
         t->device == device;
}

BpTensor *
bp_rnn (const BpRnnParams *p, BpTensor *x, BpTensor *const *weights, BpTensor *h0,
        BpTensor *c0, const int64_t *lengths, bool training, BpTensor **h_n, BpTensor **c_n)
{
  static const char *const names[] = {"rnn_tanh", "rnn_relu", "lstm", "gru"};
  char sx[64], sw[64];
  if (h_n)
    *h_n = NULL;
  if (c_n)
    *c_n = NULL;
  if (p->mode < BP_RNN_TANH || p->mode > BP_RNN_GRU || p->input_size < 1 ||
      p->hidden_size < 1 || p->num_layers < 1 || !(p->dropout >= 0.0f && p->dropout < 1.0f)) {
    bp_set_error (BP_ERR_INVALID, "rnn: bad parameters (input_size %lld, hidden_size %lld, "
                  "num_layers %d, dropout %g)", (long long) p->input_size,
                  (long long) p->hidden_size, p->num_layers, (double) p->dropout);
    return NULL;
  }
  const char *op = names[p->mode];
  if (x->ndim != 3 || x->shape[2] != p->input_size) {
    bp_set_error (BP_ERR_INVALID, "%s: input %s is not %s with %lld features", op,
                  bp_shape_str (x, sx, sizeof sx), p->batch_first ? "(B, T, I)" : "(T, B, I)",
                  (long long) p->input_size);
    return NULL;
  }
  int64_t b = p->batch_first ? x->shape[0] : x->shape[1];
  int64_t t = p->batch_first ? x->shape[1] : x->shape[0];
  int dirs = p->bidirectional ? 2 : 1;
  int64_t hsz = p->hidden_size, states = (int64_t) p->num_layers * dirs;
  if (b < 1 || t < 1) {
    bp_set_error (BP_ERR_INVALID, "%s: input %s has no batch or no time steps", op,
                  bp_shape_str (x, sx, sizeof sx));
    return NULL;
  }
  int n_w = bp_rnn_n_weights (p);
  for (int k = 0; k < n_w; k++) {
    char name[48];
    int64_t shape[2];
    int ndim;
    bp_rnn_weight_info (p, k, name, sizeof name, shape, &ndim);
    const BpTensor *wk = weights[k];
    bool ok = wk && wk->ndim == ndim && wk->shape[0] == shape[0] &&
              (ndim == 1 || wk->shape[1] == shape[1]) && wk->device == x->device;
    if (!ok) {
      char want[64];
      if (ndim == 2)
        snprintf (want, sizeof want, "[%lld, %lld]", (long long) shape[0], (long long) shape[1]);
      else
        snprintf (want, sizeof want, "[%lld]", (long long) shape[0]);
      bp_set_error (BP_ERR_INVALID, "%s: %s is %s, expected %s on the input's device", op, name,
                    wk ? bp_shape_str (wk, sw, sizeof sw) : "missing", want);
      return NULL;
    }
  }
  if ((h0 && !has_shape3 (h0, states, b, hsz, x->device)) ||
      (c0 && !has_shape3 (c0, states, b, hsz, x->device))) {
    const BpTensor *bad = h0 && !has_shape3 (h0, states, b, hsz, x->device) ? h0 : c0;
    bp_set_error (BP_ERR_INVALID, "%s: initial state %s is not (num_layers * directions, B, H) "
                  "= [%lld, %lld, %lld] for input %s", op, bp_shape_str (bad, sw, sizeof sw),
                  (long long) states, (long long) b, (long long) hsz,
                  bp_shape_str (x, sx, sizeof sx));
    return NULL;
  }
  if (c0 && p->mode != BP_RNN_LSTM) {
    bp_set_error (BP_ERR_INVALID, "%s: only LSTM takes an initial cell state c0", op);
    return NULL;
  }
  if (lengths) {
    for (int64_t i = 0; i < b; i++)
      if (lengths[i] < 1 || lengths[i] > t) {
        bp_set_error (BP_ERR_INVALID, "%s: length %lld of sequence %lld is not in [1, %lld] "
                      "(input %s)", op, (long long) lengths[i], (long long) i, (long long) t,
                      bp_shape_str (x, sx, sizeof sx));
        return NULL;
      }
  }
  BpPrecision precision = bp_get_precision ();
  const BpRnnKernels *kern = rnn_kernels_at (x->device, precision);
  if (!kern)
    return NULL;

  BpRnnDesc d = {
    .mode = p->mode,
    .batch = b,
    .seq_len = t,
    .input_size = p->input_size,
    .hidden_size = hsz,
    .num_layers = p->num_layers,
    .num_directions = dirs,
    .bias = p->bias,
    .batch_first = p->batch_first,
    .training = training,
    .dropout = p->dropout,
  };
  if (training && p->dropout > 0.0f && p->num_layers > 1) {
    bp_device_step_note ("the recurrent layers' dropout draws its masks on the host");
    d.dropout_key = bp_rng_u64 ();
  }

  int64_t out_shape[3] = {x->shape[0], x->shape[1], dirs * hsz};
  int64_t st_shape[3] = {states, b, hsz};
  BpTensor *out = bp_tensor_new_on (x->device, 3, out_shape);
  BpTensor *hn = bp_tensor_new_on (x->device, 3, st_shape);
  BpTensor *cn = p->mode == BP_RNN_LSTM ? bp_tensor_new_on (x->device, 3, st_shape) : NULL;
  BpTensor *reserve = bp_tensor_new_on (x->device, 1, (int64_t[]){kern->reserve_size (&d)});
  BpTensor *len_t = NULL;
  if (lengths) {
    bp_device_step_note ("the recurrent layers' sequence lengths are copied from host memory");
    len_t = bp_tensor_new_on (x->device, 1, &b);
    float *host = malloc (sizeof (float) * (size_t) b);
    if (len_t && host) {
      for (int64_t i = 0; i < b; i++)
        host[i] = (float) lengths[i];
      bp_backend (x->device)->upload (len_t->data, host, sizeof (float) * (size_t) b);
    }
    if (!host) {
      bp_tensor_unref (len_t);
      len_t = NULL;
    }
    free (host);
  }
  const float **w = malloc (sizeof (float *) * (size_t) n_w);
  BpStatus st = BP_ERR_NOMEM;
  if (out && hn && (cn || p->mode != BP_RNN_LSTM) && reserve && (len_t || !lengths) && w) {
    for (int k = 0; k < n_w; k++)
      w[k] = weights[k]->data;
    st = kern->forward (out->data, hn->data, cn ? cn->data : NULL, reserve->data, x->data,
                        h0 ? h0->data : NULL, c0 ? c0->data : NULL, w,
                        len_t ? len_t->data : NULL, &d);
  }
  free (w);
  if (st != BP_OK) {
    if (st == BP_ERR_NOMEM && bp_last_status () != BP_ERR_NOMEM)
      bp_set_error (BP_ERR_NOMEM, "%s: out of memory", op);
    bp_tensor_unref (out);
    bp_tensor_unref (hn);
    bp_tensor_unref (cn);
    bp_tensor_unref (reserve);
    bp_tensor_unref (len_t);
    return NULL;
  }

  bool record = bp_needs_grad (1, &x) || bp_needs_grad (1, &h0) || bp_needs_grad (1, &c0) ||
                bp_needs_grad (n_w, weights);
  RnnCtx *c = record ? calloc (1, sizeof *c) : NULL;
  BpTensor **wrefs = record ? calloc ((size_t) n_w, sizeof *wrefs) : NULL;
  if (record && (!c || !wrefs)) {
    free (c);
    free (wrefs);
    bp_set_error (BP_ERR_NOMEM, "%s: out of memory", op);
    bp_tensor_unref (out);
    bp_tensor_unref (hn);
    bp_tensor_unref (cn);
    bp_tensor_unref (reserve);
    bp_tensor_unref (len_t);
    return NULL;
  }
  if (record) {
    c->desc = d;
    c->precision = precision;
    c->n_w = n_w;
    c->w = wrefs;
    for (int k = 0; k < n_w; k++)
      c->w[k] = bp_tensor_ref (weights[k]);
    c->reserve = reserve;
    c->lengths = len_t;
    c->h_n = bp_tensor_ref (hn);
    c->c_n = bp_tensor_ref (cn);
    BpTensor *in[] = {x, h0, c0};
    BpNode *node = bp_tape_record (op, rnn_backward, out, 3, in);
    node->ctx = c;
    node->ctx_free = rnn_ctx_free;
    if (h_n)
      bp_tape_record ("rnn_h_n", state_backward, hn, 1, &out);
    if (c_n && cn)
      bp_tape_record ("rnn_c_n", state_backward, cn, 1, &out);
  } else {
    bp_tensor_unref (reserve);
    bp_tensor_unref (len_t);
  }
  if (h_n)
    *h_n = hn;
  else
    bp_tensor_unref (hn);
  if (c_n)
    *c_n = cn;
  else
    bp_tensor_unref (cn);
  return out;
}

/* ---- sequence pooling ---- */

static const BpEltwiseKernels *
eltwise (const BpTensor *t)
{
  return bp_backend (t->device)->eltwise;
}

static void
seq_pool_backward (BpNode *node)
{
  /* out (B,C) = x[:, t] (last, first) or mean_t x[:, t]: dx[:, t] += dout (/ T) */
  BpTensor *x = node->in[0], *out = node->out;
  int64_t b = x->shape[0], t = x->shape[1], c = out->numel / b;
  int mode = (int) node->i[0];
  const BpBackend *be = bp_backend (out->device);
  BpTensor *spread = bp_tensor_new_on (x->device, x->ndim, x->shape);
  BpTensor *scaled = mode == 1 ? bp_tensor_new_like (out) : NULL;
  if (!spread || (mode == 1 && !scaled)) {
    bp_tensor_unref (spread);
    bp_tensor_unref (scaled);
    return;
  }
  const float *g = out->grad;
  if (mode == 1) {
    eltwise (out)->scale (scaled->data, out->grad, 1.0f / (float) t, out->numel);
    g = scaled->data;
  }
  for (int64_t ti = 0; ti < t; ti++)
    if (mode == 1 || ti == (mode == 0 ? t - 1 : 0))
      eltwise (out)->concat_copy (spread->data, g, b, c, t * c, ti * c);
  be->axpy (x->numel, 1.0f, spread->data, bp_tensor_grad (x));
  bp_tensor_unref (spread);
  bp_tensor_unref (scaled);
}

BpTensor *
bp_seq_pool (BpTensor *x, int mode)
{
  char sx[64];
  if (x->ndim < 3 || mode < 0 || mode > 2 || x->shape[1] < 1) {
    bp_set_error (BP_ERR_INVALID, "sequence pool: input %s is not (B, T, ...) (or mode %d is "
                  "not last, mean or first)", bp_shape_str (x, sx, sizeof sx), mode);
    return NULL;
  }
  int64_t b = x->shape[0], t = x->shape[1], c = x->numel / (b * t > 0 ? b * t : 1);
  int64_t shape[BP_MAX_DIMS];
  shape[0] = b;
  for (int d = 2; d < x->ndim; d++)
    shape[d - 1] = x->shape[d];
  BpTensor *out = bp_tensor_new_on (x->device, x->ndim - 1, shape);
  if (!out)
    return NULL;
  /* out += x columns [ti*c, (ti+1)*c) of the (B, T*C) view, for the steps pooled */
  for (int64_t ti = 0; ti < t; ti++)
    if (mode == 1 || ti == (mode == 0 ? t - 1 : 0))
      eltwise (x)->concat_backward (out->data, x->data, b, c, t * c, ti * c);
  if (mode == 1)
    eltwise (x)->scale (out->data, out->data, 1.0f / (float) t, out->numel);
  if (bp_needs_grad (1, &x))
    bp_tape_record ("seq_pool", seq_pool_backward, out, 1, &x)->i[0] = mode;
  return out;
}
