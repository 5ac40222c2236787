/* bp-ops-attn.c: attention front-ends: shape checks, the tape and dispatch to the backend's
 * attention kernels (its attn_bf16 table, products with bfloat16 operands, under
 * BP_PRECISION_BF16); multi-head attention, Transformer layers and the KV cache composed from
 * the ops; sampling from logits. */
#include "bp-ops-attn.h"
#include "bp-backend.h"
#include "bp-ops-linear.h"
#include "bp-ops-norm.h"
#include "bp-rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const BpAttnKernels *
bp_attn_kernels (BpDevice device)
{
  const BpBackend *be = bp_backend (device);
  if (be && be->attn)
    return be->attn;
  if (device == BP_DEVICE_CPU)
    return &bp_cpu_attn_kernels;
  bp_set_error (BP_ERR_UNSUPPORTED, "attention: the %s backend has no attention kernels yet",
                bp_device_name (device));
  return NULL;
}

/* The kernels of the attention products at a precision: with bfloat16 the backend's attn_bf16
 * table where it has one. */
static const BpAttnKernels *
attn_kernels_at (BpDevice device, BpPrecision precision)
{
  const BpBackend *be = bp_backend (device);
  if (precision == BP_PRECISION_BF16 && be && be->attn_bf16)
    return be->attn_bf16;
  return bp_attn_kernels (device);
}

/* ---- narrow ---- */

static void
narrow_backward (BpNode *node)
{
  /* out = t[start : start + len] (rows of `inner` floats): dt[rows] += dout */
  BpTensor *t = node->in[0], *out = node->out;
  bp_backend (out->device)->axpy (out->numel, 1.0f, out->grad, bp_tensor_grad (t) + node->i[0]);
}

BpTensor *
bp_narrow (BpTensor *t, int64_t start, int64_t len)
{
  char st[64];
  if (t->ndim < 1 || start < 0 || len < 1 || start + len > t->shape[0]) {
    bp_set_error (BP_ERR_INVALID, "narrow: rows [%lld, %lld) are outside %s", (long long) start,
                  (long long) (start + len), bp_shape_str (t, st, sizeof st));
    return NULL;
  }
  int64_t shape[BP_MAX_DIMS];
  memcpy (shape, t->shape, sizeof shape);
  shape[0] = len;
  BpTensor *out = bp_tensor_new_on (t->device, t->ndim, shape);
  if (!out)
    return NULL;
  int64_t inner = t->numel / t->shape[0];
  bp_backend (t->device)->copy (out->data, t->data + start * inner,
                                sizeof (float) * (size_t) out->numel);
  if (bp_needs_grad (1, &t))
    bp_tape_record ("narrow", narrow_backward, out, 1, &t)->i[0] = start * inner;
  return out;
}

/* ---- scaled dot-product attention ---- */

/* A (B, T, C) tensor seen from column `off` (q, k or v inside a packed projection). */
typedef struct {
  BpTensor *t;
  int64_t off;
} View;

typedef struct {
  BpAttnDesc desc;
  BpPrecision precision; /* the forward's: the backward's products use the same */
  BpTensor *lse, *mask, *padding;
  int64_t q_off, k_off, v_off;
} AttnCtx;

static void
attn_ctx_free (void *p)
{
  AttnCtx *c = p;
  bp_tensor_unref (c->lse);
  bp_tensor_unref (c->mask);
  bp_tensor_unref (c->padding);
  free (c);
}

static void
attn_backward (BpNode *node)
{
  AttnCtx *c = node->ctx;
  BpTensor *q = node->in[0], *k = node->in[1], *v = node->in[2], *out = node->out;
  const BpAttnKernels *kern = attn_kernels_at (out->device, c->precision);
  if (!kern)
    return;
  float *dq = q->requires_grad ? bp_tensor_grad (q) + c->q_off : NULL;
  float *dk = k->requires_grad ? bp_tensor_grad (k) + c->k_off : NULL;
  float *dv = v->requires_grad ? bp_tensor_grad (v) + c->v_off : NULL;
  kern->backward (dq, dk, dv, out->grad, q->data + c->q_off, k->data + c->k_off,
                  v->data + c->v_off, c->mask ? c->mask->data : NULL,
                  c->padding ? c->padding->data : NULL, c->lse->data, &c->desc);
}

/* q (B,Tq,*) from column q.off, k and v (B,Tk_all,*) of which the first tk rows are used;
 * e = heads * head_dim columns each. causal_offset: cached positions before the queries. */
static BpTensor *
attention_views (View q, View k, View v, int64_t e, int num_heads, int64_t tk,
                 int64_t causal_offset, const BpAttnOptions *o, BpTensor **weights)
{
  char sq[64], sk[64], sv[64];
  BpTensor *qt = q.t, *kt = k.t, *vt = v.t;
  if (weights)
    *weights = NULL;
  bool shapes = qt->ndim == 3 && kt->ndim == 3 && vt->ndim == 3 &&
                kt->shape[0] == qt->shape[0] && vt->shape[0] == qt->shape[0] &&
                kt->shape[1] == vt->shape[1] && q.off + e <= qt->shape[2] &&
                k.off + e <= kt->shape[2] && v.off + e <= vt->shape[2] && tk <= kt->shape[1] &&
                qt->device == kt->device && qt->device == vt->device;
  if (!shapes || num_heads < 1 || e % num_heads != 0 || e < 1) {
    bp_set_error (BP_ERR_INVALID, "attention: q %s, k %s and v %s do not fit %d heads of "
                  "%lld features (B, T, E each)", bp_shape_str (qt, sq, sizeof sq),
                  bp_shape_str (kt, sk, sizeof sk), bp_shape_str (vt, sv, sizeof sv),
                  num_heads, (long long) e);
    return NULL;
  }
  int64_t b = qt->shape[0], tq = qt->shape[1];
  if (!(o->dropout >= 0.0f && o->dropout < 1.0f)) {
    bp_set_error (BP_ERR_INVALID, "attention: dropout %g is not in [0, 1)", (double) o->dropout);
    return NULL;
  }
  const BpTensor *mask = o->attn_mask, *pad = o->key_padding;
  if (mask && (mask->ndim != 2 || mask->shape[0] != tq || mask->shape[1] != tk ||
               mask->device != qt->device)) {
    bp_set_error (BP_ERR_INVALID, "attention: attn_mask %s is not (Tq, Tk) = [%lld, %lld]",
                  bp_shape_str (mask, sq, sizeof sq), (long long) tq, (long long) tk);
    return NULL;
  }
  if (pad && (pad->ndim != 2 || pad->shape[0] != b || pad->shape[1] != tk ||
              pad->device != qt->device)) {
    bp_set_error (BP_ERR_INVALID, "attention: key_padding_mask %s is not (B, Tk) = [%lld, %lld]",
                  bp_shape_str (pad, sq, sizeof sq), (long long) b, (long long) tk);
    return NULL;
  }
  BpPrecision precision = bp_get_precision ();
  const BpAttnKernels *kern = attn_kernels_at (qt->device, precision);
  if (!kern)
    return NULL;
  int64_t dh = e / num_heads;
  BpAttnDesc d = {
    .batch = b,
    .heads = num_heads,
    .tq = tq,
    .tk = tk,
    .head_dim = dh,
    .q_bs = tq * qt->shape[2],
    .q_ld = qt->shape[2],
    .k_bs = kt->shape[1] * kt->shape[2],
    .k_ld = kt->shape[2],
    .v_bs = vt->shape[1] * vt->shape[2],
    .v_ld = vt->shape[2],
    .o_bs = tq * e,
    .o_ld = e,
    .scale = o->scale > 0.0f ? o->scale : 1.0f / sqrtf ((float) dh),
    .causal = o->causal,
    .causal_offset = causal_offset,
    .dropout = o->training ? o->dropout : 0.0f,
    .weights_mode = weights ? o->weights_mode : 0,
  };
  if (d.dropout > 0.0f)
    d.dropout_key = bp_rng_u64 ();
  BpTensor *out = bp_tensor_new_on (qt->device, 3, (int64_t[]){b, tq, e});
  BpTensor *lse = bp_tensor_new_on (qt->device, 1, (int64_t[]){b * num_heads * tq});
  BpTensor *w = NULL;
  if (d.weights_mode == 1)
    w = bp_tensor_new_on (qt->device, 4, (int64_t[]){b, num_heads, tq, tk});
  else if (d.weights_mode == 2)
    w = bp_tensor_new_on (qt->device, 3, (int64_t[]){b, tq, tk});
  if (!out || !lse || (d.weights_mode && !w)) {
    bp_tensor_unref (out);
    bp_tensor_unref (lse);
    bp_tensor_unref (w);
    return NULL;
  }
  kern->forward (out->data, lse->data, w ? w->data : NULL, qt->data + q.off, kt->data + k.off,
                 vt->data + v.off, mask ? mask->data : NULL, pad ? pad->data : NULL, &d);
  BpTensor *in[] = {qt, kt, vt};
  if (bp_needs_grad (3, in)) {
    AttnCtx *c = calloc (1, sizeof *c);
    if (!c) {
      bp_set_error (BP_ERR_NOMEM, "attention: out of memory");
      bp_tensor_unref (out);
      bp_tensor_unref (lse);
      bp_tensor_unref (w);
      return NULL;
    }
    c->desc = d;
    c->precision = precision;
    c->lse = lse;
    c->mask = bp_tensor_ref ((BpTensor *) mask);
    c->padding = bp_tensor_ref ((BpTensor *) pad);
    c->q_off = q.off;
    c->k_off = k.off;
    c->v_off = v.off;
    BpNode *node = bp_tape_record ("attention", attn_backward, out, 3, in);
    node->ctx = c;
    node->ctx_free = attn_ctx_free;
  } else {
    bp_tensor_unref (lse);
  }
  if (weights)
    *weights = w;
  return out;
}

static const BpAttnOptions default_options = BP_ATTN_OPTIONS_INIT;

BpTensor *
bp_attention (BpTensor *q, BpTensor *k, BpTensor *v, int num_heads, const BpAttnOptions *o,
              BpTensor **weights)
{
  char sq[64], sk[64];
  o = o ? o : &default_options;
  if (q->ndim != 3 || k->ndim != 3 || v->ndim != 3 || k->shape[2] != q->shape[2] ||
      v->shape[2] != q->shape[2]) {
    bp_set_error (BP_ERR_INVALID, "attention: q %s and k %s (and v) need (B, T, E) with one E",
                  bp_shape_str (q, sq, sizeof sq), bp_shape_str (k, sk, sizeof sk));
    return NULL;
  }
  return attention_views ((View){q, 0}, (View){k, 0}, (View){v, 0}, q->shape[2], num_heads,
                          k->shape[1], 0, o, weights);
}

BpTensor *
bp_attention_packed (BpTensor *qkv, int num_heads, const BpAttnOptions *o, BpTensor **weights)
{
  char s[64];
  o = o ? o : &default_options;
  if (qkv->ndim != 3 || qkv->shape[2] % 3 != 0) {
    bp_set_error (BP_ERR_INVALID, "attention: packed qkv %s is not (B, T, 3E)",
                  bp_shape_str (qkv, s, sizeof s));
    return NULL;
  }
  int64_t e = qkv->shape[2] / 3;
  return attention_views ((View){qkv, 0}, (View){qkv, e}, (View){qkv, 2 * e}, e, num_heads,
                          qkv->shape[1], 0, o, weights);
}

/* ---- position encodings ---- */

static void
rope_backward (BpNode *node)
{
  /* out = R x: dx += R^T dout */
  BpTensor *x = node->in[0], *out = node->out;
  const BpAttnKernels *k = bp_attn_kernels (out->device);
  if (k)
    k->rope (bp_tensor_grad (x), out->grad, x->shape[0], x->shape[1], x->shape[2], node->i[0],
             node->i[1], node->i[2], (float) node->f[0], true, true);
}

BpTensor *
bp_rope (BpTensor *x, int64_t n_heads, int64_t head_dim, int64_t pos_offset, float base)
{
  char sx[64];
  if (x->ndim != 3 || head_dim < 2 || head_dim % 2 || n_heads < 1 ||
      n_heads * head_dim > x->shape[2] || pos_offset < 0 || !(base > 1.0f)) {
    bp_set_error (BP_ERR_INVALID, "rope: cannot rotate %lld heads of %lld (even) features of %s "
                  "(base %g, offset %lld)", (long long) n_heads, (long long) head_dim,
                  bp_shape_str (x, sx, sizeof sx), (double) base, (long long) pos_offset);
    return NULL;
  }
  const BpAttnKernels *k = bp_attn_kernels (x->device);
  if (!k)
    return NULL;
  BpTensor *out = bp_tensor_new_like (x);
  if (!out)
    return NULL;
  k->rope (out->data, x->data, x->shape[0], x->shape[1], x->shape[2], n_heads, head_dim,
           pos_offset, base, false, false);
  if (bp_needs_grad (1, &x)) {
    BpNode *node = bp_tape_record ("rope", rope_backward, out, 1, &x);
    node->i[0] = n_heads;
    node->i[1] = head_dim;
    node->i[2] = pos_offset;
    node->f[0] = base;
  }
  return out;
}

static void
add_position_backward (BpNode *node)
{
  /* out = x + pe[offset : offset + T]: dx += dout, dpe rows += sum over the batch */
  BpTensor *x = node->in[0], *pe = node->in[1], *out = node->out;
  const BpBackend *be = bp_backend (out->device);
  if (x->requires_grad)
    be->axpy (out->numel, 1.0f, out->grad, bp_tensor_grad (x));
  const BpAttnKernels *k = bp_attn_kernels (out->device);
  if (pe->requires_grad && k)
    k->add_position_backward (bp_tensor_grad (pe), out->grad, x->shape[0], x->shape[1],
                              x->shape[2], node->i[0]);
}

BpTensor *
bp_add_position (BpTensor *x, BpTensor *pe, int64_t offset)
{
  char sx[64], sp[64];
  if (x->ndim != 3 || pe->ndim != 2 || pe->shape[1] != x->shape[2] || x->device != pe->device ||
      offset < 0) {
    bp_set_error (BP_ERR_INVALID, "position encoding: input %s does not fit the table %s "
                  "(needs (B, T, E) and (max_len, E))", bp_shape_str (x, sx, sizeof sx),
                  bp_shape_str (pe, sp, sizeof sp));
    return NULL;
  }
  if (offset + x->shape[1] > pe->shape[0]) {
    bp_set_error (BP_ERR_INVALID, "position encoding: positions up to %lld, but the model's "
                  "context is %lld (input %s)", (long long) (offset + x->shape[1]),
                  (long long) pe->shape[0], bp_shape_str (x, sx, sizeof sx));
    return NULL;
  }
  const BpAttnKernels *k = bp_attn_kernels (x->device);
  if (!k)
    return NULL;
  BpTensor *out = bp_tensor_new_like (x);
  if (!out)
    return NULL;
  k->add_position (out->data, x->data, pe->data, x->shape[0], x->shape[1], x->shape[2], offset);
  BpTensor *in[] = {x, pe};
  if (bp_needs_grad (2, in))
    bp_tape_record ("add_position", add_position_backward, out, 2, in)->i[0] = offset;
  return out;
}

BpTensor *
bp_sinusoid_table (BpDevice device, int64_t p, int64_t e)
{
  const BpAttnKernels *k = bp_attn_kernels (device);
  if (!k)
    return NULL;
  if (p < 1 || e < 2 || e % 2) {
    bp_set_error (BP_ERR_INVALID, "sinusoidal position encoding: %lld positions of %lld "
                  "features (needs an even size)", (long long) p, (long long) e);
    return NULL;
  }
  BpTensor *pe = bp_tensor_new_on (device, 2, (int64_t[]){p, e});
  if (pe)
    k->sinusoid (pe->data, p, e);
  return pe;
}

/* ---- KV cache ---- */

BpKVCache *
bp_kv_cache_new (BpDevice device, int64_t batch, int64_t max_len, int64_t embed_dim)
{
  BpKVCache *c = calloc (1, sizeof *c);
  if (!c) {
    bp_set_error (BP_ERR_NOMEM, "kv cache: out of memory");
    return NULL;
  }
  int64_t shape[3] = {batch, max_len, embed_dim};
  c->k = bp_tensor_new_on (device, 3, shape);
  c->v = bp_tensor_new_on (device, 3, shape);
  c->max_len = max_len;
  if (!c->k || !c->v) {
    bp_kv_cache_free (c);
    return NULL;
  }
  return c;
}

void
bp_kv_cache_free (BpKVCache *cache)
{
  if (!cache)
    return;
  bp_tensor_unref (cache->k);
  bp_tensor_unref (cache->v);
  free (cache);
}

void
bp_kv_cache_reset (BpKVCache *cache)
{
  if (cache)
    cache->len = 0;
}

/* ---- multi-head attention ---- */

/* Temporaries of a composed op, dropped at the end. */
typedef struct {
  BpTensor *t[48];
  int n;
} Temps;

static BpTensor *
keep (Temps *s, BpTensor *t)
{
  if (t && s->n < (int) (sizeof s->t / sizeof s->t[0]))
    s->t[s->n++] = t;
  return t;
}

static void
temps_free (Temps *s)
{
  for (int k = 0; k < s->n; k++)
    bp_tensor_unref (s->t[k]);
  s->n = 0;
}

static bool
check_mha (const BpMhaWeights *w, const BpTensor *x, int num_heads)
{
  char sx[64], sw[64];
  if (x->ndim != 3) {
    bp_set_error (BP_ERR_INVALID, "multi-head attention: input %s is not (B, T, E)",
                  bp_shape_str (x, sx, sizeof sx));
    return false;
  }
  int64_t e = x->shape[2];
  bool ok = w->in_proj_weight && w->in_proj_weight->ndim == 2 &&
            w->in_proj_weight->shape[0] == 3 * e && w->in_proj_weight->shape[1] == e &&
            w->out_proj_weight && w->out_proj_weight->ndim == 2 &&
            w->out_proj_weight->shape[0] == e && w->out_proj_weight->shape[1] == e &&
            (!w->in_proj_bias || (w->in_proj_bias->ndim == 1 && w->in_proj_bias->shape[0] == 3 * e)) &&
            (!w->out_proj_bias || (w->out_proj_bias->ndim == 1 && w->out_proj_bias->shape[0] == e));
  if (!ok) {
    bp_set_error (BP_ERR_INVALID, "multi-head attention: weights (in_proj_weight %s) do not fit "
                  "input %s: in_proj (3E, E), out_proj (E, E) with E = %lld",
                  w->in_proj_weight ? bp_shape_str (w->in_proj_weight, sw, sizeof sw) : "missing",
                  bp_shape_str (x, sx, sizeof sx), (long long) e);
    return false;
  }
  if (num_heads < 1 || e % num_heads) {
    bp_set_error (BP_ERR_INVALID, "multi-head attention: embed_dim %lld is not divisible by "
                  "num_heads %d", (long long) e, num_heads);
    return false;
  }
  return true;
}

#define STEP(expr)                                                                             \
  do {                                                                                         \
    if (!(expr))                                                                               \
      goto fail;                                                                               \
  } while (0)

BpTensor *
bp_mha_self (const BpMhaParams *p, const BpMhaWeights *w, BpTensor *x, const BpAttnOptions *o,
             BpKVCache *cache, BpTensor **weights)
{
  o = o ? o : &default_options;
  if (weights)
    *weights = NULL;
  if (!check_mha (w, x, p->num_heads))
    return NULL;
  int64_t b = x->shape[0], t = x->shape[1], e = x->shape[2], dh = e / p->num_heads;
  if (cache && (cache->k->shape[0] != b || cache->k->shape[2] != e || o->key_padding ||
                o->attn_mask)) {
    bp_set_error (BP_ERR_INVALID, "multi-head attention: the KV cache is for batch %lld and %lld "
                  "features (and takes no masks but causal), not %lld and %lld",
                  (long long) cache->k->shape[0], (long long) cache->k->shape[2], (long long) b,
                  (long long) e);
    return NULL;
  }
  if (cache && cache->len + t > cache->max_len) {
    bp_set_error (BP_ERR_INVALID, "multi-head attention: %lld cached and %lld new positions are "
                  "more than the context of %lld", (long long) cache->len, (long long) t,
                  (long long) cache->max_len);
    return NULL;
  }
  if (p->rope && dh % 2) {
    bp_set_error (BP_ERR_INVALID, "multi-head attention: RoPE needs an even head size, not %lld",
                  (long long) dh);
    return NULL;
  }
  Temps s = {0};
  BpTensor *out = NULL, *a = NULL;
  int64_t offset = cache ? cache->len : 0;
  BpTensor *qkv;
  STEP (qkv = keep (&s, bp_linear (x, w->in_proj_weight, w->in_proj_bias)));
  if (p->rope)
    STEP (qkv = keep (&s, bp_rope (qkv, 2 * p->num_heads, dh, offset,
                                   p->rope_base > 1.0f ? p->rope_base : 10000.0f)));
  if (cache) {
    const BpAttnKernels *k = bp_attn_kernels (x->device);
    STEP (k);
    k->cache_write (cache->k->data, qkv->data, b, t, e, 3 * e, e, cache->max_len, cache->len);
    k->cache_write (cache->v->data, qkv->data, b, t, e, 3 * e, 2 * e, cache->max_len,
                    cache->len);
    bool was = bp_set_grad_enabled (false);
    a = attention_views ((View){qkv, 0}, (View){cache->k, 0}, (View){cache->v, 0}, e,
                         p->num_heads, cache->len + t, cache->len, o, weights);
    bp_set_grad_enabled (was);
    STEP (keep (&s, a));
    cache->len += t;
  } else {
    STEP (a = keep (&s, bp_attention_packed (qkv, p->num_heads, o, weights)));
  }
  out = bp_linear (a, w->out_proj_weight, w->out_proj_bias);
fail:
  temps_free (&s);
  if (!out && weights && *weights) {
    bp_tensor_unref (*weights);
    *weights = NULL;
  }
  return out;
}

BpTensor *
bp_mha (const BpMhaParams *p, const BpMhaWeights *w, BpTensor *query, BpTensor *key,
        BpTensor *value, const BpAttnOptions *o, BpTensor **weights)
{
  char sq[64], sk[64];
  o = o ? o : &default_options;
  if (weights)
    *weights = NULL;
  if (!check_mha (w, query, p->num_heads))
    return NULL;
  int64_t e = query->shape[2];
  if (key->ndim != 3 || value->ndim != 3 || key->shape[2] != e || value->shape[2] != e ||
      key->shape[0] != query->shape[0] || value->shape[0] != query->shape[0] ||
      key->shape[1] != value->shape[1]) {
    bp_set_error (BP_ERR_INVALID, "multi-head attention: key %s (and value) do not fit query %s",
                  bp_shape_str (key, sk, sizeof sk), bp_shape_str (query, sq, sizeof sq));
    return NULL;
  }
  if (p->rope) {
    bp_set_error (BP_ERR_UNSUPPORTED, "multi-head attention: RoPE is for self-attention only");
    return NULL;
  }
  Temps s = {0};
  BpTensor *out = NULL, *a = NULL, *q, *wq, *bq = NULL;
  STEP (wq = keep (&s, bp_narrow (w->in_proj_weight, 0, e)));
  if (w->in_proj_bias)
    STEP (bq = keep (&s, bp_narrow (w->in_proj_bias, 0, e)));
  STEP (q = keep (&s, bp_linear (query, wq, bq)));
  if (key == value) {
    BpTensor *wkv, *bkv = NULL, *kv;
    STEP (wkv = keep (&s, bp_narrow (w->in_proj_weight, e, 2 * e)));
    if (w->in_proj_bias)
      STEP (bkv = keep (&s, bp_narrow (w->in_proj_bias, e, 2 * e)));
    STEP (kv = keep (&s, bp_linear (key, wkv, bkv)));
    STEP (a = keep (&s, attention_views ((View){q, 0}, (View){kv, 0}, (View){kv, e}, e,
                                         p->num_heads, kv->shape[1], 0, o, weights)));
  } else {
    BpTensor *wk, *wv, *bk = NULL, *bv = NULL, *k, *v;
    STEP (wk = keep (&s, bp_narrow (w->in_proj_weight, e, e)));
    STEP (wv = keep (&s, bp_narrow (w->in_proj_weight, 2 * e, e)));
    if (w->in_proj_bias) {
      STEP (bk = keep (&s, bp_narrow (w->in_proj_bias, e, e)));
      STEP (bv = keep (&s, bp_narrow (w->in_proj_bias, 2 * e, e)));
    }
    STEP (k = keep (&s, bp_linear (key, wk, bk)));
    STEP (v = keep (&s, bp_linear (value, wv, bv)));
    STEP (a = keep (&s, bp_attention (q, k, v, p->num_heads, o, weights)));
  }
  out = bp_linear (a, w->out_proj_weight, w->out_proj_bias);
fail:
  temps_free (&s);
  if (!out && weights && *weights) {
    bp_tensor_unref (*weights);
    *weights = NULL;
  }
  return out;
}

/* ---- Transformer layers ---- */

static BpTensor *
activation (BpActivation act, BpTensor *x)
{
  return act == BP_ACT_GELU ? bp_gelu (x) : bp_relu (x);
}

/* linear2 (dropout (act (linear1 (x)))), then dropout: the feed-forward block */
static BpTensor *
ff_block (const BpTransformerParams *p, const BpTransformerWeights *w, BpTensor *x,
          bool training)
{
  Temps s = {0};
  BpTensor *out = NULL, *h;
  STEP (h = keep (&s, bp_linear (x, w->linear1_weight, w->linear1_bias)));
  STEP (h = keep (&s, activation (p->activation, h)));
  STEP (h = keep (&s, bp_dropout (h, p->dropout, training)));
  STEP (h = keep (&s, bp_linear (h, w->linear2_weight, w->linear2_bias)));
  out = bp_dropout (h, p->dropout, training);
fail:
  temps_free (&s);
  return out;
}

static BpTensor *
norm (BpTensor *x, BpTensor *weight, BpTensor *bias, float eps)
{
  return bp_layer_norm (x, 1, weight, bias, eps);
}

/* x + block or norm (x + block): the residual wiring of one sub-layer */
static BpTensor *
residual (BpTensor *x, BpTensor *block)
{
  return bp_add (x, block);
}

static bool
check_transformer (const BpTransformerParams *p, const BpTransformerWeights *w, const BpTensor *x)
{
  char sx[64];
  if (x->ndim != 3 || !w->linear1_weight || w->linear1_weight->ndim != 2 ||
      w->linear1_weight->shape[1] != x->shape[2] || p->activation > BP_ACT_GELU ||
      p->activation == BP_ACT_LEAKY_RELU) {
    bp_set_error (BP_ERR_INVALID, "transformer layer: input %s is not (B, T, d_model) with the "
                  "layer's d_model (or the activation is not relu or gelu)",
                  bp_shape_str (x, sx, sizeof sx));
    return false;
  }
  return true;
}

BpTensor *
bp_transformer_encoder_layer (const BpTransformerParams *p, const BpTransformerWeights *w,
                              BpTensor *x, const BpTensor *key_padding, bool training,
                              BpKVCache *cache, int weights_mode, BpTensor **weights)
{
  if (weights)
    *weights = NULL;
  if (!check_transformer (p, w, x))
    return NULL;
  BpMhaParams mp = {p->nhead, p->rope, 10000.0f};
  BpAttnOptions o = BP_ATTN_OPTIONS_INIT;
  o.key_padding = key_padding;
  o.causal = p->causal;
  o.dropout = p->dropout;
  o.training = training;
  o.weights_mode = weights_mode;
  Temps s = {0};
  BpTensor *out = NULL, *h, *a, *x1;
  if (p->norm_first) {
    STEP (h = keep (&s, norm (x, w->norm1_weight, w->norm1_bias, p->layer_norm_eps)));
    STEP (a = keep (&s, bp_mha_self (&mp, &w->self_attn, h, &o, cache, weights)));
    STEP (a = keep (&s, bp_dropout (a, p->dropout, training)));
    STEP (x1 = keep (&s, residual (x, a)));
    STEP (h = keep (&s, norm (x1, w->norm2_weight, w->norm2_bias, p->layer_norm_eps)));
    STEP (h = keep (&s, ff_block (p, w, h, training)));
    out = residual (x1, h);
  } else {
    STEP (a = keep (&s, bp_mha_self (&mp, &w->self_attn, x, &o, cache, weights)));
    STEP (a = keep (&s, bp_dropout (a, p->dropout, training)));
    STEP (h = keep (&s, residual (x, a)));
    STEP (x1 = keep (&s, norm (h, w->norm1_weight, w->norm1_bias, p->layer_norm_eps)));
    STEP (h = keep (&s, ff_block (p, w, x1, training)));
    STEP (h = keep (&s, residual (x1, h)));
    out = norm (h, w->norm2_weight, w->norm2_bias, p->layer_norm_eps);
  }
fail:
  temps_free (&s);
  if (!out && weights && *weights) {
    bp_tensor_unref (*weights);
    *weights = NULL;
  }
  return out;
}

BpTensor *
bp_transformer_decoder_layer (const BpTransformerParams *p, const BpTransformerWeights *w,
                              BpTensor *tgt, BpTensor *memory, const BpTensor *tgt_padding,
                              const BpTensor *memory_padding, bool training)
{
  if (!check_transformer (p, w, tgt))
    return NULL;
  BpMhaParams mp = {p->nhead, p->rope, 10000.0f}, cp = {p->nhead, false, 10000.0f};
  BpAttnOptions so = BP_ATTN_OPTIONS_INIT, co = BP_ATTN_OPTIONS_INIT;
  so.key_padding = tgt_padding;
  so.causal = p->causal;
  so.dropout = co.dropout = p->dropout;
  so.training = co.training = training;
  co.key_padding = memory_padding;
  Temps s = {0};
  BpTensor *out = NULL, *h, *a, *x1, *x2;
  float eps = p->layer_norm_eps;
  if (p->norm_first) {
    STEP (h = keep (&s, norm (tgt, w->norm1_weight, w->norm1_bias, eps)));
    STEP (a = keep (&s, bp_mha_self (&mp, &w->self_attn, h, &so, NULL, NULL)));
    STEP (a = keep (&s, bp_dropout (a, p->dropout, training)));
    STEP (x1 = keep (&s, residual (tgt, a)));
    STEP (h = keep (&s, norm (x1, w->norm2_weight, w->norm2_bias, eps)));
    STEP (a = keep (&s, bp_mha (&cp, &w->cross_attn, h, memory, memory, &co, NULL)));
    STEP (a = keep (&s, bp_dropout (a, p->dropout, training)));
    STEP (x2 = keep (&s, residual (x1, a)));
    STEP (h = keep (&s, norm (x2, w->norm3_weight, w->norm3_bias, eps)));
    STEP (h = keep (&s, ff_block (p, w, h, training)));
    out = residual (x2, h);
  } else {
    STEP (a = keep (&s, bp_mha_self (&mp, &w->self_attn, tgt, &so, NULL, NULL)));
    STEP (a = keep (&s, bp_dropout (a, p->dropout, training)));
    STEP (h = keep (&s, residual (tgt, a)));
    STEP (x1 = keep (&s, norm (h, w->norm1_weight, w->norm1_bias, eps)));
    STEP (a = keep (&s, bp_mha (&cp, &w->cross_attn, x1, memory, memory, &co, NULL)));
    STEP (a = keep (&s, bp_dropout (a, p->dropout, training)));
    STEP (h = keep (&s, residual (x1, a)));
    STEP (x2 = keep (&s, norm (h, w->norm2_weight, w->norm2_bias, eps)));
    STEP (h = keep (&s, ff_block (p, w, x2, training)));
    STEP (h = keep (&s, residual (x2, h)));
    out = norm (h, w->norm3_weight, w->norm3_bias, eps);
  }
fail:
  temps_free (&s);
  return out;
}

/* ---- sampling ---- */

typedef struct {
  float v;
  int64_t i;
} Scored;

static int
scored_cmp (const void *a, const void *b)
{
  const Scored *x = a, *y = b;
  if (x->v != y->v)
    return x->v < y->v ? 1 : -1; /* descending */
  return (x->i > y->i) - (x->i < y->i);
}

int64_t
bp_sample_logits (const float *logits, int64_t v, float temperature, int64_t top_k, float top_p)
{
  if (v < 1)
    return -1;
  int64_t best = 0;
  for (int64_t i = 1; i < v; i++)
    if (logits[i] > logits[best])
      best = i;
  if (!(temperature > 0.0f) || top_k == 1)
    return best;
  Scored *s = malloc (sizeof *s * (size_t) v);
  if (!s)
    return best;
  for (int64_t i = 0; i < v; i++)
    s[i] = (Scored){logits[i] / temperature, i};
  qsort (s, (size_t) v, sizeof *s, scored_cmp);
  int64_t n = top_k > 0 && top_k < v ? top_k : v;
  /* softmax over the n best, then the nucleus: the smallest prefix reaching top_p */
  double total = 0.0;
  double *p = malloc (sizeof *p * (size_t) n);
  if (!p) {
    free (s);
    return best;
  }
  for (int64_t i = 0; i < n; i++) {
    p[i] = isfinite (s[i].v) ? exp ((double) s[i].v - (double) s[0].v) : 0.0;
    total += p[i];
  }
  if (top_p > 0.0f && top_p < 1.0f) {
    double cum = 0.0;
    int64_t keep_n = n;
    for (int64_t i = 0; i < n; i++) {
      cum += p[i] / total;
      if (cum >= top_p) {
        keep_n = i + 1;
        break;
      }
    }
    n = keep_n;
    total = 0.0;
    for (int64_t i = 0; i < n; i++)
      total += p[i];
  }
  double u = (double) bp_rng_uniform () * total, cum = 0.0;
  int64_t pick = s[n - 1].i;
  for (int64_t i = 0; i < n; i++) {
    cum += p[i];
    if (u < cum) {
      pick = s[i].i;
      break;
    }
  }
  free (p);
  free (s);
  return pick;
}
