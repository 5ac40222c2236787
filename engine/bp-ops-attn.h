/* bp-ops-attn.h: attention: scaled dot-product attention, torch.nn.MultiheadAttention,
 * position encodings (sinusoidal, learned, rotary), Transformer encoder and decoder layers as
 * torch.nn.TransformerEncoderLayer / TransformerDecoderLayer, a KV cache for incremental
 * decoding, and sampling from logits (temperature, top-k, top-p). */
#pragma once

#include "bp-ops-eltwise.h"
#include "bp-tensor.h"

/* One attention call for the kernels. q, k, v and out are (B, T, H*Dh) row-major layouts seen
 * through strides: element (b, t, h, d) of q is q[b * q_bs + t * q_ld + h * head_dim + d]
 * (likewise k, v, out), so a packed (B, T, 3E) projection is read in place. */
typedef struct {
  int64_t batch, heads, tq, tk, head_dim;
  int64_t q_bs, q_ld, k_bs, k_ld, v_bs, v_ld, o_bs, o_ld;
  float scale;           /* on q.k, usually 1/sqrt (head_dim) */
  bool causal;           /* query i (at position causal_offset + i) sees keys j <= its position */
  int64_t causal_offset; /* the number of cached positions before the queries */
  float dropout;         /* on the attention weights (training); mask from dropout_key */
  uint64_t dropout_key;  /* element (b,h,i,j) kept where bp_rng_hash_uniform (key,
                          * ((b*H + h)*Tq + i)*Tk + j) >= dropout */
  int weights_mode;      /* 0: none, 1: per head (B,H,Tq,Tk), 2: averaged over heads (B,Tq,Tk) */
} BpAttnDesc;

/* Kernels of this family that a backend provides (filled in engine/cpu/attn.c). Pointers are
 * device pointers; backward kernels ACCUMULATE (+=) into every gradient that is not NULL. */
struct BpAttnKernels {
  /* out = softmax (scale q k^T + mask + padding + causal) v per batch and head, with dropout on
   * the weights. lse (B,H,Tq): every row's log-sum-exp (the backward recomputes the weights
   * from it). weights: the softmax weights before dropout (weights_mode) or NULL. mask (Tq,Tk)
   * is added (may hold -inf) or NULL; key_padding (B,Tk): nonzero = that key is ignored, or
   * NULL. A row with no key left gives zeros (PyTorch gives NaN). */
  void (*forward) (float *out, float *lse, float *weights, const float *q, const float *k,
                   const float *v, const float *mask, const float *key_padding,
                   const BpAttnDesc *d);
  /* dq, dk, dv (any may be NULL) +=, from dout (like out) and the forward's inputs and lse */
  void (*backward) (float *dq, float *dk, float *dv, const float *dout, const float *q,
                    const float *k, const float *v, const float *mask, const float *key_padding,
                    const float *lse, const BpAttnDesc *d);
  /* Rotary position embedding on rows of x (B*T rows of ld floats, row r at position
   * pos_offset + r % T): the first n_heads * head_dim columns, in head_dim chunks, are rotated
   * (pairs (i, i + head_dim/2), angle pos * base^(-2i/head_dim)); the other columns are copied.
   * inverse rotates back (the backward); accumulate adds into out. */
  void (*rope) (float *out, const float *x, int64_t batch, int64_t t, int64_t ld,
                int64_t n_heads, int64_t head_dim, int64_t pos_offset, float base, bool inverse,
                bool accumulate);
  /* out (B,T,E) = x (B,T,E) + pe rows [offset, offset + T) of pe (P,E) */
  void (*add_position) (float *out, const float *x, const float *pe, int64_t batch, int64_t t,
                        int64_t e, int64_t offset);
  /* dpe rows [offset, offset + T) += the sum over the batch of dout (B,T,E) */
  void (*add_position_backward) (float *dpe, const float *dout, int64_t batch, int64_t t,
                                 int64_t e, int64_t offset);
  /* pe (P,E): the sinusoidal table, pe[p, 2i] = sin (p / 10000^(2i/E)), pe[p, 2i+1] = cos */
  void (*sinusoid) (float *pe, int64_t p, int64_t e);
  /* cache (B, max_len, C) rows [at, at + T) of every batch = src columns [src_off, src_off + C)
   * of src (B, T, src_ld) */
  void (*cache_write) (float *cache, const float *src, int64_t batch, int64_t t, int64_t c,
                       int64_t src_ld, int64_t src_off, int64_t max_len, int64_t at);
};

/* The accessor front-ends use: the backend's table, or the CPU's where the CPU backend does
 * not list it yet. NULL (with the error set) where the device has none. */
const struct BpAttnKernels *bp_attn_kernels (BpDevice device);
extern const struct BpAttnKernels bp_cpu_attn_kernels;

/* ---- ops ---- */

/* Rows [start, start + len) of t along its first dimension (a weight slice that keeps its
 * gradient: in_proj_weight's q part). */
BpTensor *bp_narrow (BpTensor *t, int64_t start, int64_t len);

typedef struct {
  const BpTensor *attn_mask;   /* (Tq, Tk) added to the scores (-inf: not allowed), or NULL */
  const BpTensor *key_padding; /* (B, Tk): nonzero where a key is padding, or NULL */
  bool causal;                 /* query i sees keys j <= i (+ the cached positions) */
  float dropout;               /* on the weights, in training */
  bool training;
  float scale;                 /* 0: 1/sqrt (head_dim) */
  int weights_mode;            /* see BpAttnDesc: 0, 1 (per head) or 2 (averaged) */
} BpAttnOptions;

#define BP_ATTN_OPTIONS_INIT {NULL, NULL, false, 0.0f, false, 0.0f, 0}

/* Scaled dot-product attention with num_heads heads: q (B,Tq,E), k (B,Tk,E), v (B,Tk,E) ->
 * (B,Tq,E), each E split into heads of E/num_heads. *weights (when not NULL and weights_mode
 * is set) gets the softmax weights, not part of autograd. */
BpTensor *bp_attention (BpTensor *q, BpTensor *k, BpTensor *v, int num_heads,
                        const BpAttnOptions *o, BpTensor **weights);
/* The same on a packed projection qkv (B,T,3E): q, k, v are its three column blocks. */
BpTensor *bp_attention_packed (BpTensor *qkv, int num_heads, const BpAttnOptions *o,
                               BpTensor **weights);

/* x (B,T,C) with the first n_heads * head_dim columns rotated (RoPE, rotate-half pairing as in
 * GPT-NeoX and LLaMA) for positions pos_offset .. pos_offset + T - 1; base 10000 usually. */
BpTensor *bp_rope (BpTensor *x, int64_t n_heads, int64_t head_dim, int64_t pos_offset,
                   float base);

/* x (B,T,E) + pe[offset : offset + T] for pe (P,E): learned (pe a parameter) or sinusoidal
 * (pe from bp_sinusoid_table). T + offset beyond P is an error naming the context length. */
BpTensor *bp_add_position (BpTensor *x, BpTensor *pe, int64_t offset);
/* The sinusoidal table (P,E) on a device (E even). */
BpTensor *bp_sinusoid_table (BpDevice device, int64_t p, int64_t e);

/* ---- multi-head attention and Transformer layers ---- */

/* torch.nn.MultiheadAttention's parameters (batch_first, kdim = vdim = embed_dim). */
typedef struct {
  BpTensor *in_proj_weight;  /* (3E, E): q, k, v projections stacked */
  BpTensor *in_proj_bias;    /* (3E) or NULL */
  BpTensor *out_proj_weight; /* (E, E) */
  BpTensor *out_proj_bias;   /* (E) or NULL */
} BpMhaWeights;

/* A KV cache of one attention layer: keys and values of the positions seen so far. */
typedef struct {
  BpTensor *k, *v;  /* (B, max_len, E) */
  int64_t len;      /* positions filled */
  int64_t max_len;
} BpKVCache;

BpKVCache *bp_kv_cache_new (BpDevice device, int64_t batch, int64_t max_len, int64_t embed_dim);
void bp_kv_cache_free (BpKVCache *cache);
void bp_kv_cache_reset (BpKVCache *cache);

typedef struct {
  int num_heads;
  bool rope;          /* rotate q and k (RoPE) by position before attending */
  float rope_base;    /* 10000 */
} BpMhaParams;

/* Self-attention as MultiheadAttention (x, x, x): x (B,T,E) -> (B,T,E). With a cache (no
 * autograd; options causal), the T new positions attend to the cached ones and themselves,
 * and are appended to the cache; more positions than its max_len is an error. */
BpTensor *bp_mha_self (const BpMhaParams *p, const BpMhaWeights *w, BpTensor *x,
                       const BpAttnOptions *o, BpKVCache *cache, BpTensor **weights);
/* Attention of query (B,Tq,E) to key = value memory (B,Tk,E) (a decoder's cross-attention);
 * with key != value tensors use bp_mha. */
BpTensor *bp_mha (const BpMhaParams *p, const BpMhaWeights *w, BpTensor *query, BpTensor *key,
                  BpTensor *value, const BpAttnOptions *o, BpTensor **weights);

typedef struct {
  int nhead;
  int64_t dim_feedforward;
  float dropout;
  BpActivation activation; /* BP_ACT_RELU or BP_ACT_GELU */
  float layer_norm_eps;
  bool norm_first;
  bool causal;             /* a causal self-attention mask (GPT blocks, decoders) */
  bool rope;               /* rotary positions in the self-attention */
} BpTransformerParams;

typedef struct {
  BpMhaWeights self_attn, cross_attn;  /* cross_attn: decoder layers only */
  BpTensor *linear1_weight, *linear1_bias, *linear2_weight, *linear2_bias;
  BpTensor *norm1_weight, *norm1_bias, *norm2_weight, *norm2_bias;
  BpTensor *norm3_weight, *norm3_bias; /* decoder layers only */
} BpTransformerWeights;

/* torch.nn.TransformerEncoderLayer (batch_first): x (B,T,E) -> (B,T,E). key_padding (B,T) may
 * be NULL. cache: incremental decoding (causal layers, no autograd). *weights: the
 * self-attention weights as weights_mode (0: none). */
BpTensor *bp_transformer_encoder_layer (const BpTransformerParams *p,
                                        const BpTransformerWeights *w, BpTensor *x,
                                        const BpTensor *key_padding, bool training,
                                        BpKVCache *cache, int weights_mode, BpTensor **weights);
/* torch.nn.TransformerDecoderLayer (batch_first): tgt (B,T,E), memory (B,S,E) -> (B,T,E);
 * the self-attention is causal when p->causal (tgt_mask = the square subsequent mask). */
BpTensor *bp_transformer_decoder_layer (const BpTransformerParams *p,
                                        const BpTransformerWeights *w, BpTensor *tgt,
                                        BpTensor *memory, const BpTensor *tgt_padding,
                                        const BpTensor *memory_padding, bool training);

/* ---- sampling ---- */

/* A token id drawn from logits (V floats, host memory) with the engine RNG: divided by
 * temperature, restricted to the top_k largest (0: all) and to the smallest set whose
 * probability reaches top_p (1: all). temperature <= 0 gives the arg-max (no draw). */
int64_t bp_sample_logits (const float *logits, int64_t v, float temperature, int64_t top_k,
                          float top_p);
