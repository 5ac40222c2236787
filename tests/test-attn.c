/* test-attn.c: attention against finite differences and PyTorch: scaled dot-product attention
 * with masks and dropout, MultiheadAttention, Transformer encoder and decoder layers (pre- and
 * post-norm), RoPE and sinusoidal tables against their formulas, KV-cache decoding, sampling. */
#include "bp-test.h"

#include <math.h>
#include <string.h>

#include "bp-backend.h"
#include "bp-ops-attn.h"
#include "bp-ops-eltwise.h"
#include "bp-ops-linear.h"
#include "bp-rng.h"

static BpTensor *
copy_grad (BpTensor *t)
{
  BpTensor *g = bp_tensor_new_like (t);
  if (t->grad)
    memcpy (g->data, t->grad, (size_t) t->numel * sizeof (float));
  return g;
}

/* ---- finite differences ---- */

typedef struct {
  int heads;
  bool causal, use_mask, use_padding, packed, training;
  float dropout;
  BpTensor *mask, *padding;
} SdpaCase;

/* inputs: q, k, v (or one packed qkv in q) */
static BpTensor *
fwd_sdpa (BpTensor **in, void *user)
{
  SdpaCase *c = user;
  BpAttnOptions o = BP_ATTN_OPTIONS_INIT;
  o.causal = c->causal;
  o.attn_mask = c->use_mask ? c->mask : NULL;
  o.key_padding = c->use_padding ? c->padding : NULL;
  o.dropout = c->dropout;
  o.training = c->training;
  if (c->training)
    bp_rng_seed (77);
  if (c->packed)
    return bp_attention_packed (in[0], c->heads, &o, NULL);
  return bp_attention (in[0], in[1], in[2], c->heads, &o, NULL);
}

static void
test_sdpa_grad (void)
{
  bp_rng_seed (1);
  int64_t b = 2, tq = 4, tk = 5, e = 6;
  BpTensor *mask = bp_test_rand (2, (int64_t[]){tq, tk}, -1, 1, false);
  mask->data[3] = -INFINITY;
  BpTensor *pad = bp_tensor_new_2d (b, tk);
  pad->data[4] = 1.0f; /* batch 0 ignores key 4 */
  pad->data[tk + 1] = 1.0f;
  SdpaCase cases[] = {
    {2, false, false, false, false, false, 0.0f, NULL, NULL},
    {3, false, true, true, false, false, 0.0f, NULL, NULL},
    {2, true, false, true, false, false, 0.0f, NULL, NULL},
    {1, false, true, false, false, true, 0.3f, NULL, NULL},
  };
  for (gsize k = 0; k < G_N_ELEMENTS (cases); k++) {
    cases[k].mask = mask;
    cases[k].padding = pad;
    int64_t tkk = cases[k].causal ? tq : tk; /* causal: self-attention lengths */
    BpTensor *in[] = {bp_test_rand (3, (int64_t[]){b, tq, e}, -1, 1, true),
                      bp_test_rand (3, (int64_t[]){b, tkk, e}, -1, 1, true),
                      bp_test_rand (3, (int64_t[]){b, tkk, e}, -1, 1, true)};
    if (cases[k].causal) {
      /* the causal case with a padding mask of its own length */
      cases[k].use_padding = false;
    }
    bp_test_check_grad (fwd_sdpa, 3, in, &cases[k], 1e-2f, 1e-2, 30);
    for (int j = 0; j < 3; j++)
      bp_tensor_unref (in[j]);
  }
  /* packed: q, k and v are column blocks of one tensor, the causal mask on top */
  SdpaCase pc = {2, true, false, false, true, false, 0.0f, mask, pad};
  BpTensor *qkv = bp_test_rand (3, (int64_t[]){b, tq, 3 * e}, -1, 1, true);
  bp_test_check_grad (fwd_sdpa, 1, &qkv, &pc, 1e-2f, 1e-2, 60);
  bp_tensor_unref (qkv);
  bp_tensor_unref (mask);
  bp_tensor_unref (pad);
}

/* ---- PyTorch: MultiheadAttention ---- */

static const char mha_code[] =
  "import torch.nn.functional as F\n"
  "def mha_case(a, E, H, mode, causal, pad, avg):\n"
  "    m = torch.nn.MultiheadAttention(E, H, batch_first=True).double()\n"
  "    ps = list(m.parameters())\n"
  "    q, k, v, kpm = a[0], a[1], a[2], a[3]\n"
  "    with torch.no_grad():\n"
  "        for p, s in zip(ps, a[4:8]): p.copy_(s)\n"
  "    gy = a[8]\n"
  "    if mode == 'self': k = v = q\n"
  "    if mode == 'kv': v = k\n"
  "    T, S = q.shape[1], k.shape[1]\n"
  "    am = torch.triu(torch.ones(T, S, dtype=torch.bool), 1) if causal else None\n"
  "    y, w = m(q, k, v, key_padding_mask=(kpm.detach() != 0) if pad else None, attn_mask=am,\n"
  "             need_weights=True, average_attn_weights=avg)\n"
  "    (y * gy).sum().backward()\n"
  "    z = lambda t: t.grad if t.grad is not None else torch.zeros_like(t)\n"
  "    return [y, w, z(a[0]), z(a[1]), z(a[2])] + [p.grad for p in ps]\n"
  "out = []\n";

typedef struct {
  const char *mode; /* "self", "kv" (key = value), "qkv" (three tensors) */
  int heads;
  int64_t b, t, s, e;
  bool causal, pad, avg;
} MhaCase;

static void
test_mha_torch (void)
{
  bp_rng_seed (2);
  const MhaCase cases[] = {
    {"self", 2, 3, 5, 5, 8, false, false, true},
    {"self", 4, 2, 6, 6, 8, true, true, false},
    {"kv", 2, 2, 4, 7, 6, false, true, true},
    {"qkv", 3, 2, 3, 5, 9, false, true, false},
    {"qkv", 1, 1, 4, 4, 4, true, false, true},
  };
  enum { N_CASES = G_N_ELEMENTS (cases), N_IN = 9, N_OUT = 9 };
  BpTensor *args[N_CASES * N_IN], *got[N_CASES * N_OUT], *ref[N_CASES * N_OUT];
  GString *code = g_string_new (mha_code);
  for (int c = 0; c < N_CASES; c++) {
    const MhaCase *mc = &cases[c];
    int64_t e = mc->e;
    BpTensor **a = args + c * N_IN, **g = got + c * N_OUT;
    a[0] = bp_test_rand (3, (int64_t[]){mc->b, mc->t, e}, -1, 1, true);
    int64_t s = strcmp (mc->mode, "self") == 0 ? mc->t : mc->s;
    a[1] = bp_test_rand (3, (int64_t[]){mc->b, s, e}, -1, 1, true);
    a[2] = bp_test_rand (3, (int64_t[]){mc->b, s, e}, -1, 1, true);
    a[3] = bp_tensor_new_2d (mc->b, s);
    for (int64_t i = 0; i < mc->b; i++)
      a[3]->data[i * s + (i * 3 + 1) % s] = 1.0f; /* one padded key per sequence, never the first */
    float bound = sqrtf (6.0f / (float) (4 * e));
    a[4] = bp_test_rand (2, (int64_t[]){3 * e, e}, -bound, bound, true);
    a[5] = bp_test_rand (1, (int64_t[]){3 * e}, -0.1f, 0.1f, true);
    a[6] = bp_test_rand (2, (int64_t[]){e, e}, -0.3f, 0.3f, true);
    a[7] = bp_test_rand (1, (int64_t[]){e}, -0.1f, 0.1f, true);
    a[8] = bp_test_rand (3, (int64_t[]){mc->b, mc->t, e}, -1, 1, false);
    BpMhaWeights w = {a[4], a[5], a[6], a[7]};
    BpMhaParams p = {mc->heads, false, 10000.0f};
    BpAttnOptions o = BP_ATTN_OPTIONS_INIT;
    o.causal = mc->causal;
    o.key_padding = mc->pad ? a[3] : NULL;
    o.weights_mode = mc->avg ? 2 : 1;
    BpTensor *wts = NULL, *y;
    if (strcmp (mc->mode, "self") == 0)
      y = bp_mha_self (&p, &w, a[0], &o, NULL, &wts);
    else if (strcmp (mc->mode, "kv") == 0)
      y = bp_mha (&p, &w, a[0], a[1], a[1], &o, &wts);
    else
      y = bp_mha (&p, &w, a[0], a[1], a[2], &o, &wts);
    g_assert_nonnull (y);
    g_assert_nonnull (wts);
    g_assert_cmpint (bp_backward_with (y, a[8]->data), ==, BP_OK);
    g[0] = y;
    g[1] = wts;
    for (int k = 0; k < 3; k++)
      g[2 + k] = copy_grad (a[k]);
    for (int k = 0; k < 4; k++)
      g[5 + k] = copy_grad (a[4 + k]);
    bp_tape_clear ();
    for (int k = 0; k < N_OUT; k++)
      ref[c * N_OUT + k] = bp_tensor_new_like (g[k]);
    g_string_append_printf (code, "out += mha_case(x[%d:%d], %lld, %d, '%s', %s, %s, %s)\n",
                            c * N_IN, (c + 1) * N_IN, (long long) e, mc->heads, mc->mode,
                            mc->causal ? "True" : "False", mc->pad ? "True" : "False",
                            mc->avg ? "True" : "False");
  }
  static const char *names[N_OUT] = {"y", "weights", "dquery", "dkey", "dvalue",
                                     "din_proj_weight", "din_proj_bias", "dout_proj_weight",
                                     "dout_proj_bias"};
  if (bp_test_torch (code->str, N_CASES * N_IN, args, N_CASES * N_OUT, ref))
    for (int k = 0; k < N_CASES * N_OUT; k++) {
      char *what = g_strdup_printf ("mha case %d (%s) %s", k / N_OUT, cases[k / N_OUT].mode,
                                    names[k % N_OUT]);
      bp_test_assert_close (what, got[k]->data, ref[k]->data, got[k]->numel, 1e-4);
      g_free (what);
    }
  for (int k = 0; k < N_CASES * N_IN; k++)
    bp_tensor_unref (args[k]);
  for (int k = 0; k < N_CASES * N_OUT; k++) {
    bp_tensor_unref (got[k]);
    bp_tensor_unref (ref[k]);
  }
  g_string_free (code, TRUE);
}

/* ---- PyTorch: Transformer encoder and decoder layers ---- */

/* Parameters in the order of the PyTorch module's parameters (): encoder 12, decoder 18. */
static int
layer_weights (bool decoder, int64_t e, int64_t ff, BpTensor **w, BpTransformerWeights *tw)
{
  int n = 0;
  float bound = sqrtf (6.0f / (float) (4 * e));
  BpMhaWeights *mw[2] = {&tw->self_attn, &tw->cross_attn};
  for (int m = 0; m < (decoder ? 2 : 1); m++) {
    mw[m]->in_proj_weight = w[n++] = bp_test_rand (2, (int64_t[]){3 * e, e}, -bound, bound, true);
    mw[m]->in_proj_bias = w[n++] = bp_test_rand (1, (int64_t[]){3 * e}, -0.1f, 0.1f, true);
    mw[m]->out_proj_weight = w[n++] = bp_test_rand (2, (int64_t[]){e, e}, -0.3f, 0.3f, true);
    mw[m]->out_proj_bias = w[n++] = bp_test_rand (1, (int64_t[]){e}, -0.1f, 0.1f, true);
  }
  float b1 = 1.0f / sqrtf ((float) e), b2 = 1.0f / sqrtf ((float) ff);
  tw->linear1_weight = w[n++] = bp_test_rand (2, (int64_t[]){ff, e}, -b1, b1, true);
  tw->linear1_bias = w[n++] = bp_test_rand (1, (int64_t[]){ff}, -b1, b1, true);
  tw->linear2_weight = w[n++] = bp_test_rand (2, (int64_t[]){e, ff}, -b2, b2, true);
  tw->linear2_bias = w[n++] = bp_test_rand (1, (int64_t[]){e}, -b2, b2, true);
  BpTensor **norms[6] = {&tw->norm1_weight, &tw->norm1_bias, &tw->norm2_weight,
                         &tw->norm2_bias, &tw->norm3_weight, &tw->norm3_bias};
  for (int k = 0; k < (decoder ? 6 : 4); k++)
    *norms[k] = w[n++] = bp_test_rand (1, (int64_t[]){e}, k % 2 ? -0.2f : 0.8f,
                                       k % 2 ? 0.2f : 1.2f, true);
  return n;
}

static const char layer_code[] =
  "def layer_case(a, dec, E, H, FF, act, nf, causal, pad):\n"
  "    kw = dict(dim_feedforward=FF, dropout=0.0, activation=act, batch_first=True, norm_first=nf)\n"
  "    m = (torch.nn.TransformerDecoderLayer if dec else torch.nn.TransformerEncoderLayer)(E, H, **kw).double()\n"
  "    ps = list(m.parameters())\n"
  "    x, mem, kpm, gy = a[0], a[1], a[2], a[3]\n"
  "    with torch.no_grad():\n"
  "        for p, s in zip(ps, a[4:]): p.copy_(s)\n"
  "    T = x.shape[1]\n"
  "    cm = torch.triu(torch.ones(T, T, dtype=torch.bool), 1) if causal else None\n"
  "    kp = (kpm.detach() != 0) if pad else None\n"
  "    if dec: y = m(x, mem, tgt_mask=cm, memory_key_padding_mask=kp)\n"
  "    else: y = m(x, src_mask=cm, src_key_padding_mask=kp)\n"
  "    (y * gy).sum().backward()\n"
  "    z = lambda t: t.grad if t.grad is not None else torch.zeros_like(t)\n"
  "    return [y, z(x), z(mem)] + [p.grad for p in ps]\n"
  "out = []\n";

typedef struct {
  bool decoder, norm_first, causal, pad, gelu;
  int heads;
  int64_t b, t, s, e, ff;
} LayerCase;

static void
test_transformer_torch (void)
{
  bp_rng_seed (3);
  const LayerCase cases[] = {
    {false, false, false, true, false, 2, 2, 5, 5, 8, 16},
    {false, true, true, false, true, 4, 3, 4, 4, 8, 12},
    {false, true, false, true, true, 2, 2, 6, 6, 6, 10},
    {true, false, true, true, false, 2, 2, 4, 6, 8, 16},
    {true, true, true, false, true, 2, 3, 5, 3, 6, 12},
  };
  enum { N_CASES = G_N_ELEMENTS (cases), MAX_W = 18 };
  GPtrArray *args = g_ptr_array_new_with_free_func ((GDestroyNotify) bp_tensor_unref);
  GPtrArray *got = g_ptr_array_new_with_free_func ((GDestroyNotify) bp_tensor_unref);
  GPtrArray *ref = g_ptr_array_new_with_free_func ((GDestroyNotify) bp_tensor_unref);
  GString *code = g_string_new (layer_code);
  int n_out[N_CASES];
  for (int c = 0; c < N_CASES; c++) {
    const LayerCase *lc = &cases[c];
    BpTensor *x = bp_test_rand (3, (int64_t[]){lc->b, lc->t, lc->e}, -1, 1, true);
    BpTensor *mem = bp_test_rand (3, (int64_t[]){lc->b, lc->s, lc->e}, -1, 1, lc->decoder);
    int64_t kl = lc->decoder ? lc->s : lc->t;
    BpTensor *kpm = bp_tensor_new_2d (lc->b, kl);
    for (int64_t i = 0; i < lc->b; i++)
      kpm->data[i * kl + kl - 1 - i % 2] = 1.0f;
    BpTensor *gy = bp_test_rand (3, (int64_t[]){lc->b, lc->t, lc->e}, -1, 1, false);
    BpTensor *w[MAX_W];
    BpTransformerWeights tw = {0};
    int nw = layer_weights (lc->decoder, lc->e, lc->ff, w, &tw);
    BpTransformerParams p = {lc->heads, lc->ff, 0.0f, lc->gelu ? BP_ACT_GELU : BP_ACT_RELU,
                             1e-5f, lc->norm_first, lc->causal, false};
    BpTensor *y = lc->decoder
                    ? bp_transformer_decoder_layer (&p, &tw, x, mem, NULL, lc->pad ? kpm : NULL,
                                                    true)
                    : bp_transformer_encoder_layer (&p, &tw, x, lc->pad ? kpm : NULL, true, NULL,
                                                    0, NULL);
    g_assert_nonnull (y);
    g_assert_cmpint (bp_backward_with (y, gy->data), ==, BP_OK);
    int base = (int) args->len;
    BpTensor *in[] = {x, mem, kpm, gy};
    for (int k = 0; k < 4; k++)
      g_ptr_array_add (args, in[k]);
    for (int k = 0; k < nw; k++)
      g_ptr_array_add (args, w[k]);
    g_ptr_array_add (got, y);
    g_ptr_array_add (got, copy_grad (x));
    g_ptr_array_add (got, copy_grad (mem));
    for (int k = 0; k < nw; k++)
      g_ptr_array_add (got, copy_grad (w[k]));
    n_out[c] = 3 + nw;
    bp_tape_clear ();
    g_string_append_printf (code, "out += layer_case(x[%d:%d], %s, %lld, %d, %lld, '%s', %s, %s, %s)\n",
                            base, (int) args->len, lc->decoder ? "True" : "False",
                            (long long) lc->e, lc->heads, (long long) lc->ff,
                            lc->gelu ? "gelu" : "relu", lc->norm_first ? "True" : "False",
                            lc->causal ? "True" : "False", lc->pad ? "True" : "False");
  }
  for (guint k = 0; k < got->len; k++)
    g_ptr_array_add (ref, bp_tensor_new_like (got->pdata[k]));
  if (bp_test_torch (code->str, (int) args->len, (BpTensor **) args->pdata, (int) ref->len,
                     (BpTensor **) ref->pdata)) {
    int at = 0;
    for (int c = 0; c < N_CASES; c++)
      for (int o = 0; o < n_out[c]; o++, at++) {
        BpTensor *g = got->pdata[at], *r = ref->pdata[at];
        char *what = g_strdup_printf ("%s layer case %d output %d",
                                      cases[c].decoder ? "decoder" : "encoder", c, o);
        bp_test_assert_close (what, g->data, r->data, g->numel, 2e-4);
        g_free (what);
      }
  }
  g_ptr_array_unref (args);
  g_ptr_array_unref (got);
  g_ptr_array_unref (ref);
  g_string_free (code, TRUE);
}

/* Encoder-layer gradients against finite differences (pre-norm, causal, dropout). */
typedef struct {
  BpTransformerParams p;
  bool decoder;
} LayerFd;

static BpTensor *
fwd_layer (BpTensor **in, void *user)
{
  LayerFd *f = user;
  BpTransformerWeights tw = {
    .self_attn = {in[2], in[3], in[4], in[5]},
    .linear1_weight = in[6], .linear1_bias = in[7], .linear2_weight = in[8],
    .linear2_bias = in[9], .norm1_weight = in[10], .norm1_bias = in[11],
    .norm2_weight = in[12], .norm2_bias = in[13],
  };
  bp_rng_seed (55);
  return bp_transformer_encoder_layer (&f->p, &tw, in[0], NULL, true, NULL, 0, NULL);
}

static void
test_transformer_grad (void)
{
  bp_rng_seed (4);
  BpTensor *w[MAX (18, 14)];
  BpTransformerWeights tw = {0};
  int nw = layer_weights (false, 4, 6, w, &tw);
  BpTensor *in[14];
  in[0] = bp_test_rand (3, (int64_t[]){2, 3, 4}, -1, 1, true);
  in[1] = NULL;
  for (int k = 0; k < nw; k++)
    in[2 + k] = w[k];
  LayerFd f = {{2, 6, 0.2f, BP_ACT_GELU, 1e-5f, true, true, false}, false};
  bp_test_check_grad (fwd_layer, 2 + nw, in, &f, 1e-2f, 2e-2, 16);
  f.p.norm_first = false;
  f.p.dropout = 0.0f;
  f.p.rope = true;
  bp_test_check_grad (fwd_layer, 2 + nw, in, &f, 1e-2f, 2e-2, 16);
  for (int k = 0; k < 2 + nw; k++)
    bp_tensor_unref (in[k]);
}

/* ---- position encodings ---- */

static BpTensor *
fwd_rope (BpTensor **in, void *user)
{
  int64_t *a = user;
  return bp_rope (in[0], a[0], a[1], a[2], 10000.0f);
}

static BpTensor *
fwd_add_position (BpTensor **in, void *user)
{
  return bp_add_position (in[0], in[1], *(int64_t *) user);
}

/* RoPE and the sinusoidal table against their formulas, written out in the PyTorch script. */
static void
test_positions (void)
{
  bp_rng_seed (5);
  int64_t b = 2, t = 5, c = 20, heads = 2, dh = 8, off = 3;
  BpTensor *x = bp_test_rand (3, (int64_t[]){b, t, c}, -1, 1, true);
  BpTensor *y = bp_rope (x, heads, dh, off, 10000.0f);
  g_assert_nonnull (y);
  BpTensor *pe = bp_sinusoid_table (BP_DEVICE_CPU, 7, 6);
  g_assert_nonnull (pe);
  BpTensor *ry = bp_tensor_new_like (y), *rpe = bp_tensor_new_like (pe);
  BpTensor *args[] = {x};
  BpTensor *refs[] = {ry, rpe};
  const char *code =
    "import math\n"
    "X = x[0].detach()\n"
    "Y = X.clone()\n"
    "B, T, C = X.shape\n"
    "H, D, off = 2, 8, 3\n"
    "for t in range(T):\n"
    "    for h in range(H):\n"
    "        for i in range(D // 2):\n"
    "            ang = (off + t) * 10000.0 ** (-2.0 * i / D)\n"
    "            a, b = h * D + i, h * D + i + D // 2\n"
    "            x1, x2 = X[:, t, a], X[:, t, b]\n"
    "            Y[:, t, a] = x1 * math.cos(ang) - x2 * math.sin(ang)\n"
    "            Y[:, t, b] = x2 * math.cos(ang) + x1 * math.sin(ang)\n"
    "P, E = 7, 6\n"
    "pos = torch.arange(P).unsqueeze(1).double()\n"
    "div = torch.exp(torch.arange(0, E, 2).double() * (-math.log(10000.0) / E))\n"
    "pe = torch.zeros(P, E)\n"
    "pe[:, 0::2] = torch.sin(pos * div)\n"
    "pe[:, 1::2] = torch.cos(pos * div)\n"
    "out = [Y, pe]\n";
  if (bp_test_torch (code, 1, args, 2, refs)) {
    bp_test_assert_close ("rope", y->data, ry->data, y->numel, 1e-5);
    bp_test_assert_close ("sinusoid", pe->data, rpe->data, pe->numel, 1e-6);
  }
  /* the columns past the rotated heads pass through */
  for (int64_t r = 0; r < b * t; r++)
    for (int64_t j = heads * dh; j < c; j++)
      g_assert_cmpfloat (y->data[r * c + j], ==, x->data[r * c + j]);
  /* rotations keep norms; offset 0 leaves position 0 alone */
  BpTensor *y0 = bp_rope (x, heads, dh, 0, 10000.0f);
  for (int64_t j = 0; j < c; j++)
    g_assert_cmpfloat_with_epsilon (y0->data[j], x->data[j], 1e-6);
  int64_t rope_args[3] = {heads, dh, off};
  bp_test_check_grad (fwd_rope, 1, &x, rope_args, 1e-2f, 1e-3, 40);
  /* a learned table: gradients to the rows used */
  BpTensor *table = bp_test_rand (2, (int64_t[]){9, c}, -1, 1, true);
  BpTensor *in[] = {x, table};
  bp_test_check_grad (fwd_add_position, 2, in, &off, 1e-2f, 1e-3, 60);
  BpTensor *all[] = {x, y, pe, ry, rpe, y0, table};
  for (gsize k = 0; k < G_N_ELEMENTS (all); k++)
    bp_tensor_unref (all[k]);
}

/* ---- KV cache ---- */

/* Two causal pre-norm layers (one with RoPE): the full forward's last rows equal decoding one
 * token at a time through the cache, and a prompt of several tokens then single tokens. */
static void
test_kv_cache (void)
{
  bp_rng_seed (6);
  int64_t b = 2, t = 7, e = 8, ff = 16;
  BpTensor *w[2][18];
  BpTransformerWeights tw[2];
  memset (tw, 0, sizeof tw);
  int nw[2];
  for (int l = 0; l < 2; l++)
    nw[l] = layer_weights (false, e, ff, w[l], &tw[l]);
  BpTransformerParams p[2] = {{2, ff, 0.1f, BP_ACT_GELU, 1e-5f, true, true, false},
                              {4, ff, 0.1f, BP_ACT_RELU, 1e-5f, true, true, true}};
  BpTensor *x = bp_test_rand (3, (int64_t[]){b, t, e}, -1, 1, false);
  bool was = bp_set_grad_enabled (false);
  BpTensor *h1 = bp_transformer_encoder_layer (&p[0], &tw[0], x, NULL, false, NULL, 0, NULL);
  BpTensor *full = bp_transformer_encoder_layer (&p[1], &tw[1], h1, NULL, false, NULL, 0, NULL);
  g_assert_nonnull (full);
  for (int split = 1; split <= 3; split += 2) {
    BpKVCache *cache[2] = {bp_kv_cache_new (BP_DEVICE_CPU, b, t, e),
                           bp_kv_cache_new (BP_DEVICE_CPU, b, t, e)};
    int64_t pos = 0;
    while (pos < t) {
      int64_t n = pos == 0 ? split : 1;
      BpTensor *xs = bp_tensor_new (3, (int64_t[]){b, n, e});
      for (int64_t bi = 0; bi < b; bi++)
        memcpy (xs->data + bi * n * e, x->data + (bi * t + pos) * e, sizeof (float) * n * e);
      BpTensor *a = bp_transformer_encoder_layer (&p[0], &tw[0], xs, NULL, false, cache[0], 0,
                                                  NULL);
      BpTensor *y = bp_transformer_encoder_layer (&p[1], &tw[1], a, NULL, false, cache[1], 0,
                                                  NULL);
      g_assert_nonnull (y);
      for (int64_t bi = 0; bi < b; bi++) {
        char *what = g_strdup_printf ("cached decode, prompt %d, position %lld", split,
                                      (long long) pos);
        bp_test_assert_close (what, y->data + bi * n * e, full->data + (bi * t + pos) * e,
                              n * e, 1e-5);
        g_free (what);
      }
      pos += n;
      BpTensor *tmp[] = {xs, a, y};
      for (int k = 0; k < 3; k++)
        bp_tensor_unref (tmp[k]);
    }
    g_assert_cmpint (cache[0]->len, ==, t);
    /* one more position does not fit the context */
    BpTensor *one = bp_tensor_new (3, (int64_t[]){b, 1, e});
    g_assert_null (bp_transformer_encoder_layer (&p[0], &tw[0], one, NULL, false, cache[0], 0,
                                                 NULL));
    g_assert_nonnull (strstr (bp_last_error (), "more than the context of 7"));
    bp_tensor_unref (one);
    bp_kv_cache_free (cache[0]);
    bp_kv_cache_free (cache[1]);
  }
  bp_set_grad_enabled (was);
  bp_tensor_unref (x);
  bp_tensor_unref (h1);
  bp_tensor_unref (full);
  for (int l = 0; l < 2; l++)
    for (int k = 0; k < nw[l]; k++)
      bp_tensor_unref (w[l][k]);
}

/* ---- sampling ---- */

static void
test_sampling (void)
{
  bp_rng_seed (7);
  enum { V = 10, N = 20000 };
  float logits[V] = {0.5f, 2.0f, -1.0f, 1.5f, 0.0f, 3.0f, -2.0f, 1.0f, 2.5f, -0.5f};
  /* temperature -> 0 is the arg-max, without drawing */
  uint64_t state = bp_rng_state ();
  g_assert_cmpint (bp_sample_logits (logits, V, 0.0f, 0, 1.0f), ==, 5);
  g_assert_cmpint (bp_sample_logits (logits, V, 1.0f, 1, 1.0f), ==, 5);
  g_assert_cmpuint (bp_rng_state (), ==, state);
  int counts[V] = {0};
  for (int k = 0; k < N; k++)
    counts[bp_sample_logits (logits, V, 1e-4f, 0, 1.0f)]++;
  g_assert_cmpint (counts[5], ==, N);
  /* top-k never picks outside the k largest (5, 8, 1) */
  memset (counts, 0, sizeof counts);
  for (int k = 0; k < N; k++)
    counts[bp_sample_logits (logits, V, 2.0f, 3, 1.0f)]++;
  for (int i = 0; i < V; i++)
    if (i != 5 && i != 8 && i != 1)
      g_assert_cmpint (counts[i], ==, 0);
  g_assert_cmpint (counts[1], >, 0);
  /* temperature 1, no cut: frequencies follow the softmax (5 sigma) */
  memset (counts, 0, sizeof counts);
  for (int k = 0; k < N; k++)
    counts[bp_sample_logits (logits, V, 1.0f, 0, 1.0f)]++;
  double z = 0;
  for (int i = 0; i < V; i++)
    z += exp (logits[i]);
  for (int i = 0; i < V; i++) {
    double p = exp (logits[i]) / z, sd = sqrt (N * p * (1 - p));
    g_assert_cmpfloat (fabs (counts[i] - N * p), <=, 5 * sd + 1);
  }
  /* top-p: the nucleus of 0.6 holds indices 5 and 8 (p 0.43 and 0.26) */
  memset (counts, 0, sizeof counts);
  for (int k = 0; k < N; k++)
    counts[bp_sample_logits (logits, V, 1.0f, 0, 0.6f)]++;
  for (int i = 0; i < V; i++)
    if (i != 5 && i != 8)
      g_assert_cmpint (counts[i], ==, 0);
  g_assert_cmpint (counts[8], >, N / 4);
  /* the same seed draws the same tokens */
  bp_rng_seed (8);
  int64_t a = bp_sample_logits (logits, V, 1.0f, 0, 1.0f);
  bp_rng_seed (8);
  g_assert_cmpint (bp_sample_logits (logits, V, 1.0f, 0, 1.0f), ==, a);
}

static void
test_attn_errors (void)
{
  BpTensor *q = bp_tensor_new (3, (int64_t[]){2, 3, 8});
  BpTensor *k = bp_tensor_new (3, (int64_t[]){2, 4, 6});
  BpTensor *k2 = bp_tensor_new (3, (int64_t[]){3, 4, 8});
  BpTensor *m = bp_tensor_new_2d (3, 3);
  g_assert_null (bp_attention (q, k, k, 2, NULL, NULL));
  g_assert_cmpint (bp_last_status (), ==, BP_ERR_INVALID);
  g_assert_nonnull (strstr (bp_last_error (), "[2, 4, 6]"));
  g_assert_null (bp_attention (q, k2, k2, 2, NULL, NULL));
  g_assert_null (bp_attention (q, q, q, 3, NULL, NULL));
  g_assert_nonnull (strstr (bp_last_error (), "3 heads"));
  BpAttnOptions o = BP_ATTN_OPTIONS_INIT;
  o.attn_mask = m;
  BpTensor *qq = bp_tensor_new (3, (int64_t[]){2, 4, 8});
  g_assert_null (bp_attention (qq, qq, qq, 2, &o, NULL));
  g_assert_nonnull (strstr (bp_last_error (), "attn_mask [3, 3]"));
  o.attn_mask = NULL;
  o.key_padding = m;
  g_assert_null (bp_attention (qq, qq, qq, 2, &o, NULL));
  g_assert_nonnull (strstr (bp_last_error (), "key_padding_mask"));
  g_assert_null (bp_attention_packed (q, 2, NULL, NULL));
  g_assert_null (bp_rope (q, 2, 3, 0, 10000.0f));
  g_assert_null (bp_rope (q, 2, 8, 0, 10000.0f));
  /* a context longer than the table */
  BpTensor *pe = bp_sinusoid_table (BP_DEVICE_CPU, 3, 8);
  BpTensor *y = bp_add_position (q, pe, 0);
  g_assert_nonnull (y);
  g_assert_null (bp_add_position (q, pe, 1));
  g_assert_nonnull (strstr (bp_last_error (), "context is 3"));
  g_assert_null (bp_sinusoid_table (BP_DEVICE_CPU, 3, 7));
  g_assert_null (bp_narrow (m, 2, 2));
  /* a fully masked row gives zeros, not NaN */
  BpTensor *mask = bp_tensor_new_2d (4, 4);
  for (int j = 0; j < 4; j++)
    mask->data[j] = -INFINITY;
  bp_tensor_uniform (qq, -1, 1);
  o.key_padding = NULL;
  o.attn_mask = mask;
  BpTensor *z = bp_attention (qq, qq, qq, 2, &o, NULL);
  g_assert_nonnull (z);
  for (int j = 0; j < 8; j++)
    g_assert_cmpfloat (z->data[j], ==, 0.0f);
  for (int64_t j = 8; j < z->numel; j++)
    g_assert_true (isfinite (z->data[j]));
  BpTensor *all[] = {q, k, k2, m, qq, pe, y, mask, z};
  for (gsize j = 0; j < G_N_ELEMENTS (all); j++)
    bp_tensor_unref (all[j]);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  bp_set_num_threads (1);
  g_test_add_func ("/attn/sdpa-grad", test_sdpa_grad);
  g_test_add_func ("/attn/mha-torch", test_mha_torch);
  g_test_add_func ("/attn/transformer-torch", test_transformer_torch);
  g_test_add_func ("/attn/transformer-grad", test_transformer_grad);
  g_test_add_func ("/attn/positions", test_positions);
  g_test_add_func ("/attn/kv-cache", test_kv_cache);
  g_test_add_func ("/attn/sampling", test_sampling);
  g_test_add_func ("/attn/errors", test_attn_errors);
  return g_test_run ();
}
