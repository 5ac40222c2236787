/* bp-nn.c: layer and parameter tables, graph checks with shape inference, PyTorch default
 * initialisation and the forward pass of models built from a graph of layers. */
#include "bp-nn.h"

#include "bp-ops-attn.h"
#include "bp-ops-eltwise.h"
#include "bp-ops-linear.h"
#include "bp-ops-norm.h"
#include "bp-ops-rnn.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest parameter count of one layer and of a model: 2^30 floats (4 GiB). A spec asking for
 * more is refused before anything is allocated. */
#define MAX_PARAMS ((int64_t) 1 << 30)
/* Largest number of values in one example's activation at any node (1 GiB of floats). */
#define MAX_ACTIVATION ((int64_t) 1 << 28)
/* Largest number of nodes in a graph. */
#define MAX_NODES 4096

/* ---- tables ---- */

#define OFF(field) offsetof (BpLayerSpec, field)
#define BIG 2147483647.0 /* 2^31 - 1 */
#define KMAX 65536.0     /* kernel sizes, strides, paddings */

static const char *const init_choices[] = {"default", "kaiming_uniform", "kaiming_normal",
                                           "xavier_uniform", "xavier_normal", "normal", "zeros",
                                           NULL};
/* Linear's and Conv2d's weight initialisation */
#define INIT_PARAMS                                                                            \
  {"init", BP_PARAM_CHOICE, 0, OFF (init), 0, BP_INIT_COUNT - 1,                               \
   "weight initialisation: default (PyTorch's), kaiming or xavier (uniform or normal), normal "  \
   "(std init_std) or zeros (the bias too)",                                                   \
   init_choices},                                                                              \
  {"init_std", BP_PARAM_FLOAT, BP_PARAM_MIN_OPEN, OFF (init_std), 0, 100,                      \
   "standard deviation of the weights with init normal"}

static const BpParamInfo input_params[] = {
  {"shape", BP_PARAM_SHAPE, BP_PARAM_REQUIRED, OFF (shape), 1, 1 << 20,
   "one example's shape without the batch dimension, e.g. [1, 28, 28]"},
  {"vocab_size", BP_PARAM_INT, 0, OFF (vocab_size), 0, 1 << 24,
   "the input holds token ids in [0, vocab_size) (0: not tokens); set from the corpus"},
};
static const BpParamInfo conv2d_params[] = {
  {"in_channels", BP_PARAM_INT, BP_PARAM_INFERRED | BP_PARAM_POSITIONAL, OFF (in_channels), 1, BIG,
   "input channels; taken from the input when left out"},
  {"out_channels", BP_PARAM_INT, BP_PARAM_REQUIRED | BP_PARAM_POSITIONAL, OFF (out_channels), 1,
   BIG, "output channels (the number of filters)"},
  {"kernel_size", BP_PARAM_PAIR, BP_PARAM_REQUIRED, OFF (kernel_size), 1, KMAX,
   "filter size: an integer or [height, width]"},
  {"stride", BP_PARAM_PAIR, 0, OFF (stride), 1, KMAX, "step between filter positions"},
  {"padding", BP_PARAM_PAIR, 0, OFF (padding), 0, KMAX, "zeros added on each side"},
  {"dilation", BP_PARAM_PAIR, 0, OFF (dilation), 1, KMAX, "spacing between filter taps"},
  {"groups", BP_PARAM_INT, 0, OFF (groups), 1, BIG,
   "channel groups; in_channels and out_channels must be divisible by it"},
  {"bias", BP_PARAM_BOOL, 0, OFF (bias), 0, 1, "learn a bias per output channel"},
  INIT_PARAMS,
};
static const BpParamInfo maxpool_params[] = {
  {"kernel_size", BP_PARAM_PAIR, BP_PARAM_REQUIRED, OFF (kernel_size), 1, KMAX,
   "window size: an integer or [height, width]"},
  {"stride", BP_PARAM_PAIR, BP_PARAM_NONE_ZERO, OFF (stride), 1, KMAX,
   "step between windows; the kernel size when left out"},
  {"padding", BP_PARAM_PAIR, 0, OFF (padding), 0, KMAX,
   "implicit -infinity padding on each side, at most half the kernel"},
};
static const BpParamInfo avgpool_params[] = {
  {"kernel_size", BP_PARAM_PAIR, BP_PARAM_REQUIRED, OFF (kernel_size), 1, KMAX,
   "window size: an integer or [height, width]"},
  {"stride", BP_PARAM_PAIR, BP_PARAM_NONE_ZERO, OFF (stride), 1, KMAX,
   "step between windows; the kernel size when left out"},
  {"padding", BP_PARAM_PAIR, 0, OFF (padding), 0, KMAX,
   "zero padding on each side, at most half the kernel"},
  {"count_include_pad", BP_PARAM_BOOL, 0, OFF (count_include_pad), 0, 1,
   "count the padding zeros in the average"},
};
static const BpParamInfo adaptive_params[] = {
  {"output_size", BP_PARAM_PAIR, BP_PARAM_REQUIRED, OFF (output_size), 1, KMAX,
   "output height and width: an integer or [height, width]"},
};
static const BpParamInfo batchnorm_params[] = {
  {"num_features", BP_PARAM_INT, BP_PARAM_INFERRED | BP_PARAM_POSITIONAL, OFF (num_features), 1,
   BIG, "channels; taken from the input when left out"},
  {"eps", BP_PARAM_FLOAT, BP_PARAM_MIN_OPEN, OFF (eps), 0, 1,
   "added to the variance for numerical stability"},
  {"momentum", BP_PARAM_FLOAT, 0, OFF (momentum), 0, 1,
   "weight of the new batch in the running statistics"},
  {"affine", BP_PARAM_BOOL, 0, OFF (affine), 0, 1, "learn a scale and a shift per channel"},
};
static const BpParamInfo layernorm_params[] = {
  {"normalized_shape", BP_PARAM_SHAPE, BP_PARAM_INFERRED | BP_PARAM_POSITIONAL,
   OFF (normalized_shape), 1, 1 << 28,
   "trailing dimensions to normalise over; the last input dimension when left out"},
  {"eps", BP_PARAM_FLOAT, BP_PARAM_MIN_OPEN, OFF (eps), 0, 1,
   "added to the variance for numerical stability"},
  {"elementwise_affine", BP_PARAM_BOOL, 0, OFF (affine), 0, 1,
   "learn a scale and a shift per element"},
};
static const BpParamInfo leaky_relu_params[] = {
  {"negative_slope", BP_PARAM_FLOAT, 0, OFF (negative_slope), -1e6, 1e6,
   "slope for negative inputs"},
};
static const BpParamInfo linear_params[] = {
  {"in_features", BP_PARAM_INT, BP_PARAM_INFERRED | BP_PARAM_POSITIONAL, OFF (in_features), 1, BIG,
   "input size (the last input dimension); taken from the input when left out"},
  {"out_features", BP_PARAM_INT, BP_PARAM_INFERRED | BP_PARAM_POSITIONAL, OFF (out_features), 1,
   BIG, "output size (required unless tied_to gives it)"},
  {"bias", BP_PARAM_BOOL, 0, OFF (bias), 0, 1, "learn a bias per output"},
  {"tied_to", BP_PARAM_NODE, 0, OFF (tied_to), 0, 0,
   "an Embedding node whose weight this layer shares (weight tying): out_features is its "
   "num_embeddings"},
  INIT_PARAMS,
};
static const char *const nonlinearity_choices[] = {"tanh", "relu", NULL};
static const char *const encoding_choices[] = {"sinusoidal", "learned", NULL};
static const char *const pool_choices[] = {"last", "mean", "first", NULL};
static const char *const activation_choices[] = {"relu", "gelu", NULL};
static const BpParamInfo embedding_params[] = {
  {"num_embeddings", BP_PARAM_INT, BP_PARAM_INFERRED | BP_PARAM_POSITIONAL, OFF (num_embeddings),
   1, 1 << 24, "vocabulary size; the Input's vocab_size when left out"},
  {"embedding_dim", BP_PARAM_INT, BP_PARAM_REQUIRED | BP_PARAM_POSITIONAL, OFF (embedding_dim),
   1, BIG, "size of each token's vector"},
  {"init_std", BP_PARAM_FLOAT, BP_PARAM_MIN_OPEN, OFF (init_std), 0, 100,
   "standard deviation of the initial vectors (PyTorch: 1; GPTs use 0.02)"},
};
#define RNN_COMMON_PARAMS                                                                      \
  {"input_size", BP_PARAM_INT, BP_PARAM_INFERRED | BP_PARAM_POSITIONAL, OFF (input_size), 1, BIG, \
   "features per time step (the last input dimension); inferred when left out"},               \
  {"hidden_size", BP_PARAM_INT, BP_PARAM_REQUIRED | BP_PARAM_POSITIONAL, OFF (hidden_size), 1,  \
   BIG, "features of the hidden state"},                                                       \
  {"num_layers", BP_PARAM_INT, 0, OFF (num_layers), 1, 64, "stacked recurrent layers"}
#define RNN_TAIL_PARAMS                                                                        \
  {"bias", BP_PARAM_BOOL, 0, OFF (bias), 0, 1, "learn the biases b_ih and b_hh"},              \
  {"dropout", BP_PARAM_FLOAT, BP_PARAM_MAX_OPEN, OFF (dropout), 0, 1,                          \
   "dropout on the outputs of every layer but the last, in training"},                        \
  {"bidirectional", BP_PARAM_BOOL, 0, OFF (bidirectional), 0, 1,                               \
   "also run the sequence backwards; the output joins both directions"}
static const BpParamInfo rnn_params[] = {
  RNN_COMMON_PARAMS,
  {"nonlinearity", BP_PARAM_CHOICE, 0, OFF (nonlinearity), 0, 1, "tanh or relu", nonlinearity_choices},
  RNN_TAIL_PARAMS,
};
static const BpParamInfo lstm_params[] = {RNN_COMMON_PARAMS, RNN_TAIL_PARAMS};
static const BpParamInfo mha_params[] = {
  {"embed_dim", BP_PARAM_INT, BP_PARAM_INFERRED | BP_PARAM_POSITIONAL, OFF (embed_dim), 1, BIG,
   "features (the last input dimension); inferred when left out"},
  {"num_heads", BP_PARAM_INT, BP_PARAM_REQUIRED | BP_PARAM_POSITIONAL, OFF (num_heads), 1, 4096,
   "attention heads; embed_dim must be divisible by it"},
  {"dropout", BP_PARAM_FLOAT, BP_PARAM_MAX_OPEN, OFF (dropout), 0, 1,
   "dropout on the attention weights, in training"},
  {"bias", BP_PARAM_BOOL, 0, OFF (bias), 0, 1, "learn in_proj_bias and out_proj.bias"},
  {"causal", BP_PARAM_BOOL, 0, OFF (causal), 0, 1,
   "each position attends to itself and the positions before (a language model's mask)"},
  {"rope", BP_PARAM_BOOL, 0, OFF (rope), 0, 1,
   "rotary position embeddings (RoPE) on queries and keys; the head size must be even"},
};
static const BpParamInfo posenc_params[] = {
  {"d_model", BP_PARAM_INT, BP_PARAM_INFERRED | BP_PARAM_POSITIONAL, OFF (d_model), 2, BIG,
   "features (the last input dimension); inferred when left out"},
  {"encoding", BP_PARAM_CHOICE, 0, OFF (encoding), 0, 1,
   "sinusoidal (fixed, as in \"Attention is all you need\") or learned (a table of vectors)",
   encoding_choices},
  {"max_len", BP_PARAM_INT, 0, OFF (max_len), 1, 1 << 20,
   "the longest sequence: the model's context"},
  {"dropout", BP_PARAM_FLOAT, BP_PARAM_MAX_OPEN, OFF (dropout), 0, 1,
   "dropout after adding the positions, in training"},
};
#define TRANSFORMER_PARAMS                                                                     \
  {"d_model", BP_PARAM_INT, BP_PARAM_INFERRED | BP_PARAM_POSITIONAL, OFF (d_model), 1, BIG,     \
   "features (the last input dimension); inferred when left out"},                            \
  {"nhead", BP_PARAM_INT, BP_PARAM_REQUIRED | BP_PARAM_POSITIONAL, OFF (num_heads), 1, 4096,    \
   "attention heads; d_model must be divisible by it"},                                        \
  {"dim_feedforward", BP_PARAM_INT, 0, OFF (dim_feedforward), 1, BIG,                          \
   "hidden size of the feed-forward block"},                                                   \
  {"dropout", BP_PARAM_FLOAT, BP_PARAM_MAX_OPEN, OFF (dropout), 0, 1,                          \
   "dropout on attention weights and after every sub-layer, in training"},                    \
  {"activation", BP_PARAM_CHOICE, 0, OFF (activation), 0, 1,                                   \
   "the feed-forward activation: relu or gelu", activation_choices},                           \
  {"layer_norm_eps", BP_PARAM_FLOAT, BP_PARAM_MIN_OPEN, OFF (layer_norm_eps), 0, 1,            \
   "added to the variance in the layer norms"},                                                \
  {"norm_first", BP_PARAM_BOOL, 0, OFF (norm_first), 0, 1,                                     \
   "layer norm before each sub-layer (pre-norm, as GPT) instead of after"},                    \
  {"causal", BP_PARAM_BOOL, 0, OFF (causal), 0, 1,                                             \
   "a causal self-attention mask (GPT blocks, decoders); passed as the mask in forward"},      \
  {"rope", BP_PARAM_BOOL, 0, OFF (rope), 0, 1,                                                 \
   "rotary position embeddings (RoPE) in the self-attention; the head size must be even"}
static const BpParamInfo transformer_params[] = {TRANSFORMER_PARAMS};
static const BpParamInfo pool_params[] = {
  {"mode", BP_PARAM_CHOICE, 0, OFF (mode), 0, 2,
   "last: the last time step, mean: the mean over time, first: the first step", pool_choices},
};
static const BpParamInfo dropout_params[] = {
  {"p", BP_PARAM_FLOAT, BP_PARAM_MAX_OPEN, OFF (p), 0, 1,
   "probability of zeroing an element in training"},
};
static const BpParamInfo flatten_params[] = {
  {"start_dim", BP_PARAM_INT, 0, OFF (start_dim), -5, 4,
   "first dimension to flatten (the batch dimension is 0)"},
  {"end_dim", BP_PARAM_INT, 0, OFF (end_dim), -5, 4,
   "last dimension to flatten (-1: the last one)"},
};
static const BpParamInfo concat_params[] = {
  {"dim", BP_PARAM_INT, 0, OFF (dim), -5, 4,
   "dimension to join along (the batch dimension is 0; 1: channels)"},
};
static const BpParamInfo output_params[] = {
  {"loss", BP_PARAM_LOSS, 0, OFF (loss), 0, BP_LOSS_COUNT - 1,
   "the training loss: CrossEntropyLoss, MSELoss or BCEWithLogitsLoss"},
};

#define PARAMS(a) (int) (sizeof a / sizeof a[0]), a
#define NO_PARAMS 0, NULL

static const BpLayerType layer_types[] = {
  {"Input", BP_LAYER_INPUT, "input", 0, 0, "the model's input: one example's shape",
   PARAMS (input_params)},
  {"Conv2d", BP_LAYER_CONV2D, "convolution", 1, 1, "2-D convolution", PARAMS (conv2d_params)},
  {"ConvTranspose2d", -1, "convolution", 1, 1, "transposed 2-D convolution (planned)", NO_PARAMS},
  {"MaxPool2d", BP_LAYER_MAXPOOL2D, "pooling", 1, 1, "2-D max pooling", PARAMS (maxpool_params)},
  {"AvgPool2d", BP_LAYER_AVGPOOL2D, "pooling", 1, 1, "2-D average pooling",
   PARAMS (avgpool_params)},
  {"AdaptiveAvgPool2d", BP_LAYER_ADAPTIVE_AVGPOOL2D, "pooling", 1, 1,
   "average pooling to a fixed output size", PARAMS (adaptive_params)},
  {"BatchNorm1d", BP_LAYER_BATCHNORM1D, "normalisation", 1, 1,
   "batch normalisation of (C) or (C, L) inputs", PARAMS (batchnorm_params)},
  {"BatchNorm2d", BP_LAYER_BATCHNORM2D, "normalisation", 1, 1,
   "batch normalisation of (C, H, W) inputs", PARAMS (batchnorm_params)},
  {"LayerNorm", BP_LAYER_LAYERNORM, "normalisation", 1, 1,
   "layer normalisation over the trailing dimensions", PARAMS (layernorm_params)},
  {"ReLU", BP_LAYER_RELU, "activation", 1, 1, "max (0, x)", NO_PARAMS},
  {"LeakyReLU", BP_LAYER_LEAKY_RELU, "activation", 1, 1, "x, or negative_slope * x below 0",
   PARAMS (leaky_relu_params)},
  {"GELU", BP_LAYER_GELU, "activation", 1, 1, "x * Phi (x) (exact)", NO_PARAMS},
  {"Tanh", BP_LAYER_TANH, "activation", 1, 1, "hyperbolic tangent", NO_PARAMS},
  {"Sigmoid", BP_LAYER_SIGMOID, "activation", 1, 1, "1 / (1 + exp (-x))", NO_PARAMS},
  {"RNN", BP_LAYER_RNN, "recurrent", 1, 1, "Elman recurrent layer over a (T, features) sequence",
   PARAMS (rnn_params)},
  {"LSTM", BP_LAYER_LSTM, "recurrent", 1, 1, "long short-term memory over a (T, features) sequence",
   PARAMS (lstm_params)},
  {"GRU", BP_LAYER_GRU, "recurrent", 1, 1, "gated recurrent unit over a (T, features) sequence",
   PARAMS (lstm_params)},
  {"MultiheadAttention", BP_LAYER_MULTIHEAD_ATTENTION, "attention", 1, 1,
   "multi-head self-attention over a (T, features) sequence", PARAMS (mha_params)},
  {"PositionalEncoding", BP_LAYER_POSITIONAL_ENCODING, "attention", 1, 1,
   "adds position vectors (sinusoidal or learned) to a (T, features) sequence",
   PARAMS (posenc_params)},
  {"TransformerEncoderLayer", BP_LAYER_TRANSFORMER_ENCODER_LAYER, "attention", 1, 1,
   "self-attention and feed-forward block with residuals and layer norms (GPT blocks with causal)",
   PARAMS (transformer_params)},
  {"TransformerDecoderLayer", BP_LAYER_TRANSFORMER_DECODER_LAYER, "attention", 2, 2,
   "decoder block: self-attention, attention to the memory (input 2), feed-forward",
   PARAMS (transformer_params)},
  {"Linear", BP_LAYER_LINEAR, "dense", 1, 1, "fully connected layer on the last dimension",
   PARAMS (linear_params)},
  {"Embedding", BP_LAYER_EMBEDDING, "dense", 1, 1, "lookup table of token vectors",
   PARAMS (embedding_params)},
  {"Dropout", BP_LAYER_DROPOUT, "regularisation", 1, 1,
   "zeroes elements at random in training", PARAMS (dropout_params)},
  {"Flatten", BP_LAYER_FLATTEN, "reshape", 1, 1, "joins dimensions into one",
   PARAMS (flatten_params)},
  {"SequencePool", BP_LAYER_SEQUENCE_POOL, "reshape", 1, 1,
   "one vector from a (T, features) sequence: its last step, first step or mean",
   PARAMS (pool_params)},
  {"Add", BP_LAYER_ADD, "merge", 2, BP_LAYER_MAX_INPUTS,
   "sum of inputs of equal shape (residual connections)", NO_PARAMS},
  {"Concat", BP_LAYER_CONCAT, "merge", 2, BP_LAYER_MAX_INPUTS,
   "joins inputs along a dimension (torch.cat)", PARAMS (concat_params)},
  {"Output", BP_LAYER_OUTPUT, "output", 1, 1, "the model's output and its training loss",
   PARAMS (output_params)},
};

static const char *loss_names[BP_LOSS_COUNT] = {
  [BP_LOSS_CROSS_ENTROPY] = "CrossEntropyLoss",
  [BP_LOSS_MSE] = "MSELoss",
  [BP_LOSS_BCE_WITH_LOGITS] = "BCEWithLogitsLoss",
};

const char *
bp_loss_name (BpLossKind loss)
{
  return loss >= 0 && loss < BP_LOSS_COUNT ? loss_names[loss] : "unknown";
}

int
bp_loss_from_name (const char *name)
{
  for (int k = 0; k < BP_LOSS_COUNT; k++)
    if (name && strcmp (loss_names[k], name) == 0)
      return k;
  return -1;
}

const BpLayerType *
bp_layer_types (int *n)
{
  *n = (int) (sizeof layer_types / sizeof layer_types[0]);
  return layer_types;
}

const BpLayerType *
bp_layer_type_find (const char *name)
{
  for (size_t k = 0; name && k < sizeof layer_types / sizeof layer_types[0]; k++)
    if (strcmp (layer_types[k].name, name) == 0)
      return &layer_types[k];
  return NULL;
}

const BpLayerType *
bp_layer_kind_type (BpLayerKind kind)
{
  for (size_t k = 0; k < sizeof layer_types / sizeof layer_types[0]; k++)
    if (layer_types[k].kind == (int) kind && layer_types[k].kind >= 0)
      return &layer_types[k];
  return NULL;
}

const BpParamInfo *
bp_layer_param_find (const BpLayerType *type, const char *name)
{
  for (int k = 0; type && k < type->n_params; k++)
    if (strcmp (type->params[k].name, name) == 0)
      return &type->params[k];
  return NULL;
}

const char *
bp_layer_kind_name (BpLayerKind kind)
{
  const BpLayerType *t = bp_layer_kind_type (kind);
  return t ? t->name : "unknown";
}

int
bp_layer_kind_from_name (const char *name)
{
  const BpLayerType *t = bp_layer_type_find (name);
  return t ? t->kind : -1;
}

BpLayerSpec
bp_layer_spec_default (BpLayerKind kind)
{
  BpLayerSpec s = {
    .kind = kind,
    .stride = {1, 1},
    .dilation = {1, 1},
    .groups = 1,
    .bias = true,
    .affine = true,
    .count_include_pad = true,
    .eps = 1e-5f,
    .momentum = 0.1f,
    .p = 0.5f,
    .negative_slope = 0.01f,
    .start_dim = 1,
    .end_dim = -1,
    .dim = 1,
    .loss = BP_LOSS_CROSS_ENTROPY,
    .num_layers = 1,
    .init_std = 1.0f,
    .max_len = 5000,
    .dim_feedforward = 2048,
    .layer_norm_eps = 1e-5f,
  };
  if (kind == BP_LAYER_TRANSFORMER_ENCODER_LAYER || kind == BP_LAYER_TRANSFORMER_DECODER_LAYER)
    s.dropout = 0.1f;
  if (kind == BP_LAYER_MAXPOOL2D || kind == BP_LAYER_AVGPOOL2D)
    s.stride[0] = s.stride[1] = 0; /* 0 = same as the kernel, PyTorch's stride=None */
  return s;
}

/* ---- parameter values as text ---- */

bool
bp_param_is_set (const BpLayerSpec *spec, const BpParamInfo *param)
{
  const char *v = (const char *) spec + param->offset;
  if (param->flags & BP_PARAM_REQUIRED)
    return true;
  if (param->flags & BP_PARAM_INFERRED) {
    if (param->type == BP_PARAM_SHAPE)
      return ((const BpShape *) v)->ndim > 0;
    return *(const int64_t *) v != 0;
  }
  BpLayerSpec def = bp_layer_spec_default (spec->kind);
  const char *d = (const char *) &def + param->offset;
  switch (param->type) {
  case BP_PARAM_INT:
    return *(const int64_t *) v != *(const int64_t *) d;
  case BP_PARAM_PAIR:
    return memcmp (v, d, 2 * sizeof (int)) != 0;
  case BP_PARAM_FLOAT:
    return *(const float *) v != *(const float *) d;
  case BP_PARAM_BOOL:
    return *(const bool *) v != *(const bool *) d;
  case BP_PARAM_SHAPE:
    return ((const BpShape *) v)->ndim > 0;
  case BP_PARAM_LOSS:
  case BP_PARAM_CHOICE:
    return *(const int *) v != *(const int *) d;
  case BP_PARAM_NODE:
    return v[0] != '\0';
  }
  return true;
}

void
bp_float_format (float v, char *buf, size_t len)
{
  for (int prec = 1; prec <= 9; prec++) {
    snprintf (buf, len, "%.*g", prec, (double) v);
    if (strtof (buf, NULL) == v)
      return;
  }
}

void
bp_param_format (const BpLayerSpec *spec, const BpParamInfo *param, bool python, char *buf,
                 size_t len)
{
  const char *v = (const char *) spec + param->offset;
  switch (param->type) {
  case BP_PARAM_INT:
    snprintf (buf, len, "%lld", (long long) *(const int64_t *) v);
    break;
  case BP_PARAM_PAIR: {
    const int *p = (const int *) v;
    if (p[0] == p[1])
      snprintf (buf, len, "%d", p[0]);
    else
      snprintf (buf, len, python ? "(%d, %d)" : "[%d, %d]", p[0], p[1]);
    break;
  }
  case BP_PARAM_FLOAT:
    bp_float_format (*(const float *) v, buf, len);
    break;
  case BP_PARAM_BOOL:
    snprintf (buf, len, "%s", *(const bool *) v ? (python ? "True" : "true")
                                                : (python ? "False" : "false"));
    break;
  case BP_PARAM_SHAPE: {
    const BpShape *s = (const BpShape *) v;
    if (python && s->ndim == 1) {
      snprintf (buf, len, "%lld", (long long) s->d[0]);
      break;
    }
    size_t off = (size_t) snprintf (buf, len, python ? "(" : "[");
    for (int d = 0; d < s->ndim && off < len; d++)
      off += (size_t) snprintf (buf + off, len - off, d ? ", %lld" : "%lld", (long long) s->d[d]);
    if (off < len)
      snprintf (buf + off, len - off, python ? ")" : "]");
    break;
  }
  case BP_PARAM_LOSS:
    snprintf (buf, len, python ? "nn.%s()" : "\"%s\"", bp_loss_name (*(const int *) v));
    break;
  case BP_PARAM_CHOICE: {
    int c = *(const int *) v;
    int n = 0;
    while (param->choices && param->choices[n])
      n++;
    snprintf (buf, len, "\"%s\"", c >= 0 && c < n ? param->choices[c] : "?");
    break;
  }
  case BP_PARAM_NODE:
    snprintf (buf, len, "\"%s\"", v);
    break;
  }
}

/* ---- graph checks ---- */

static void
shape_text (const BpShape *s, char *buf, size_t len)
{
  size_t off = (size_t) snprintf (buf, len, "[");
  for (int d = 0; d < s->ndim && off < len; d++)
    off += (size_t) snprintf (buf + off, len - off, d ? ", %lld" : "%lld", (long long) s->d[d]);
  if (off < len)
    snprintf (buf + off, len - off, "]");
}

static double
shape_numel_f (const BpShape *s)
{
  double n = 1.0;
  for (int d = 0; d < s->ndim; d++)
    n *= (double) s->d[d];
  return n;
}

/* Which check is running: an error found by an earlier check is more likely the cause of the
 * others, so the first error reported is the first of the earliest check. */
enum { CHECK_NODES, CHECK_CYCLES, CHECK_SHAPES, CHECK_USED, CHECK_COUNT };

/* Records the first error of node k (later ones are dropped). */
static void __attribute__ ((format (printf, 4, 5)))
node_error (BpGraphInfo *g, int k, int check, const char *fmt, ...)
{
  BpLayerInfo *li = &g->layers[k];
  if (li->error[0])
    return;
  li->check = check;
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (li->error, sizeof li->error, fmt, ap);
  va_end (ap);
  g->n_errors++;
}

static void __attribute__ ((format (printf, 2, 3)))
graph_error (BpGraphInfo *g, const char *fmt, ...)
{
  g->n_errors++;
  if (g->error[0])
    return;
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (g->error, sizeof g->error, fmt, ap);
  va_end (ap);
}

static const char *const reserved_ids[] = {
  /* Python keywords */
  "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class",
  "continue", "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if",
  "import", "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try",
  "while", "with", "yield",
  /* names the exported code uses */
  "self", "torch", "nn",
  /* nn.Module attributes a submodule of that name would shadow */
  "training", "forward", "parameters", "named_parameters", "buffers", "named_buffers",
  "children", "named_children", "modules", "named_modules", "state_dict", "load_state_dict",
  "train", "eval", "to", "cuda", "cpu", "xpu", "ipu", "float", "double", "half", "bfloat16",
  "type", "apply", "zero_grad", "register_buffer", "register_parameter", "add_module",
  "register_module", "get_submodule", "get_parameter", "get_buffer", "get_extra_state",
  "set_extra_state", "requires_grad_", "share_memory", "extra_repr", "dump_patches",
  "to_empty", "register_forward_hook", "register_forward_pre_hook", "register_backward_hook",
  "register_full_backward_hook", "register_full_backward_pre_hook",
  "register_load_state_dict_post_hook", "register_state_dict_pre_hook", "call_super_init",
  "T_destination",
};

/* Why an id cannot name a node (it becomes a Python attribute and a state_dict prefix), or
 * NULL when it can. */
static const char *
id_problem (const char *id)
{
  if (!id[0])
    return "the node has no id";
  if (strlen (id) > BP_LAYER_ID_MAX)
    return "the id is longer than 32 characters";
  if (id[0] == '_')
    return "the id must start with a letter";
  if (!isalpha ((unsigned char) id[0]) || !isascii ((unsigned char) id[0]))
    return "the id must start with a letter (ids are Python names: letters, digits and _)";
  for (const char *c = id; *c; c++)
    if (!isascii ((unsigned char) *c) || !(isalnum ((unsigned char) *c) || *c == '_'))
      return "the id may only hold letters, digits and _ (ids are Python names)";
  for (size_t k = 0; k < sizeof reserved_ids / sizeof reserved_ids[0]; k++)
    if (strcmp (reserved_ids[k], id) == 0)
      return "the id is reserved (a Python keyword or an nn.Module attribute)";
  return NULL;
}

static int64_t
window_out (int64_t in, int k, int s, int p, int d)
{
  return (in + 2 * (int64_t) p - (int64_t) d * (k - 1) - 1) / s + 1;
}

/* Whether both sizes of a pair are in [lo, 65536]. */
static bool
pair_ok (const int v[2], int lo)
{
  return v[0] >= lo && v[1] >= lo && v[0] <= KMAX && v[1] <= KMAX;
}

#define FAIL(...)                                                                              \
  do {                                                                                         \
    snprintf (err, err_len, __VA_ARGS__);                                                      \
    return false;                                                                              \
  } while (0)

/* Checks the init and init_std of a Linear or Conv2d (a spec made in C may hold any value). */
static bool
init_check (const BpLayerSpec *s, char *err, size_t err_len)
{
  if (s->init < 0 || s->init >= BP_INIT_COUNT) {
    size_t off = (size_t) snprintf (err, err_len, "init must be one of ");
    for (int k = 0; init_choices[k] && off < err_len; k++)
      off += (size_t) snprintf (err + off, err_len - off, "%s\"%s\"", k ? ", " : "",
                                init_choices[k]);
    return false;
  }
  if (!(s->init_std > 0.0f) || !isfinite (s->init_std))
    FAIL ("init_std must be a positive number");
  if (s->init_std != 1.0f && s->init != BP_INIT_NORMAL)
    FAIL ("init_std is read only with init \"normal\", not with \"%s\"", init_choices[s->init]);
  return true;
}

/* Infers one node's output shape and parameter count from its inputs' shapes. */
/* Parameters of one MultiheadAttention of width e (in_proj, out_proj, their biases). */
static double
mha_param_count (int64_t e, bool bias)
{
  return 4.0 * (double) e * (double) e + (bias ? 4.0 * (double) e : 0.0);
}

/* Parameters of a recurrent stack. */
static double
rnn_param_count (const BpLayerSpec *s, int64_t in_size)
{
  int g = s->kind == BP_LAYER_LSTM ? 4 : s->kind == BP_LAYER_GRU ? 3 : 1;
  int dirs = s->bidirectional ? 2 : 1;
  double h = (double) s->hidden_size, total = 0.0;
  for (int64_t l = 0; l < s->num_layers; l++) {
    double in_l = l == 0 ? (double) in_size : dirs * h;
    total += dirs * (g * h * (in_l + h) + (s->bias ? 2.0 * g * h : 0.0));
  }
  return total;
}

/* tied_v, tied_e: the vocabulary and width of the Embedding a Linear's tied_to names (0 when
 * it names none). */
static bool
layer_infer (const BpLayerSpec *s, int n_in, const BpShape *const *in, const char *const *in_ids,
             int64_t tied_v, int64_t tied_e, BpShape *out, int64_t *n_params, char *err,
             size_t err_len)
{
  char a[48], b[48];
  double params = 0.0;
  const BpShape *x = n_in > 0 ? in[0] : NULL;
  if (x)
    *out = *x;
  switch (s->kind) {
  case BP_LAYER_INPUT: {
    if (s->shape.ndim < 1 || s->shape.ndim > BP_LAYER_MAX_DIMS)
      FAIL ("shape needs 1 to %d sizes, not %d", BP_LAYER_MAX_DIMS, s->shape.ndim);
    for (int d = 0; d < s->shape.ndim; d++)
      if (s->shape.d[d] < 1 || s->shape.d[d] > (1 << 20))
        FAIL ("shape size %lld is not in [1, 1048576]", (long long) s->shape.d[d]);
    if (s->vocab_size < 0)
      FAIL ("vocab_size must not be negative");
    *out = s->shape;
    out->vocab = s->vocab_size;
    break;
  }
  case BP_LAYER_CONV2D: {
    if (!init_check (s, err, err_len))
      return false;
    shape_text (x, a, sizeof a);
    if (x->ndim != 3)
      FAIL ("needs a (C, H, W) input, not %s", a);
    int64_t cin = x->d[0];
    if (s->in_channels && s->in_channels != cin)
      FAIL ("in_channels is %lld but the input %s has %lld channels", (long long) s->in_channels,
            a, (long long) cin);
    if (s->out_channels < 1)
      FAIL ("out_channels must be positive, not %lld", (long long) s->out_channels);
    if (s->groups < 1 || cin % s->groups || s->out_channels % s->groups)
      FAIL ("in_channels %lld and out_channels %lld must be divisible by groups %lld",
            (long long) cin, (long long) s->out_channels, (long long) s->groups);
    if (!pair_ok (s->kernel_size, 1) || !pair_ok (s->stride, 1) || !pair_ok (s->dilation, 1) ||
        !pair_ok (s->padding, 0))
      FAIL ("kernel_size, stride and dilation must be 1 to 65536, padding 0 to 65536");
    params = (double) s->out_channels * (double) (cin / s->groups) * s->kernel_size[0] *
             s->kernel_size[1];
    if (s->bias)
      params += (double) s->out_channels;
    if (params > (double) MAX_PARAMS)
      FAIL ("%.4g parameters are more than a layer may have (%lld)", params,
            (long long) MAX_PARAMS);
    out->d[0] = s->out_channels;
    for (int d = 0; d < 2; d++) {
      out->d[1 + d] = window_out (x->d[1 + d], s->kernel_size[d], s->stride[d], s->padding[d],
                                  s->dilation[d]);
      if (out->d[1 + d] <= 0)
        FAIL ("the %dx%d kernel (dilation %d, padding %d) does not fit the %s input",
              s->kernel_size[0], s->kernel_size[1], s->dilation[d], s->padding[d], a);
    }
    break;
  }
  case BP_LAYER_MAXPOOL2D:
  case BP_LAYER_AVGPOOL2D: {
    shape_text (x, a, sizeof a);
    if (x->ndim != 3)
      FAIL ("needs a (C, H, W) input, not %s", a);
    if (!pair_ok (s->kernel_size, 1) || !pair_ok (s->padding, 0) || s->stride[0] < 0 ||
        s->stride[1] < 0 || s->stride[0] > KMAX || s->stride[1] > KMAX)
      FAIL ("kernel_size and stride must be 1 to 65536, padding 0 to 65536");
    for (int d = 0; d < 2; d++) {
      int stride = s->stride[d] ? s->stride[d] : s->kernel_size[d];
      if (2 * s->padding[d] > s->kernel_size[d])
        FAIL ("padding %d is more than half the kernel size %d", s->padding[d],
              s->kernel_size[d]);
      out->d[1 + d] = window_out (x->d[1 + d], s->kernel_size[d], stride, s->padding[d], 1);
      if (out->d[1 + d] <= 0)
        FAIL ("the %dx%d window does not fit the %s input", s->kernel_size[0],
              s->kernel_size[1], a);
    }
    break;
  }
  case BP_LAYER_ADAPTIVE_AVGPOOL2D:
    shape_text (x, a, sizeof a);
    if (x->ndim != 3)
      FAIL ("needs a (C, H, W) input, not %s", a);
    if (!pair_ok (s->output_size, 1))
      FAIL ("output_size must be 1 to 65536");
    out->d[1] = s->output_size[0];
    out->d[2] = s->output_size[1];
    break;
  case BP_LAYER_BATCHNORM1D:
  case BP_LAYER_BATCHNORM2D: {
    shape_text (x, a, sizeof a);
    if (s->kind == BP_LAYER_BATCHNORM2D && x->ndim != 3)
      FAIL ("needs a (C, H, W) input, not %s (BatchNorm1d takes (C) and (C, L))", a);
    if (s->kind == BP_LAYER_BATCHNORM1D && x->ndim != 1 && x->ndim != 2)
      FAIL ("needs a (C) or (C, L) input, not %s (BatchNorm2d takes (C, H, W))", a);
    if (s->num_features && s->num_features != x->d[0])
      FAIL ("num_features is %lld but the input %s has %lld", (long long) s->num_features, a,
            (long long) x->d[0]);
    if (!(s->eps > 0.0f && s->eps <= 1.0f) || !(s->momentum >= 0.0f && s->momentum <= 1.0f))
      FAIL ("eps must be in (0, 1] and momentum in [0, 1]");
    params = s->affine ? 2.0 * (double) x->d[0] : 0.0;
    break;
  }
  case BP_LAYER_LAYERNORM: {
    shape_text (x, a, sizeof a);
    BpShape ns = s->normalized_shape;
    if (ns.ndim == 0) {
      ns.ndim = 1;
      ns.d[0] = x->d[x->ndim - 1];
    }
    bool fits = ns.ndim <= x->ndim;
    for (int d = 0; fits && d < ns.ndim; d++)
      fits = ns.d[d] == x->d[x->ndim - ns.ndim + d];
    shape_text (&ns, b, sizeof b);
    if (!fits)
      FAIL ("normalized_shape %s does not match the end of the input shape %s", b, a);
    if (!(s->eps > 0.0f && s->eps <= 1.0f))
      FAIL ("eps must be in (0, 1]");
    params = s->affine ? 2.0 * shape_numel_f (&ns) : 0.0;
    break;
  }
  case BP_LAYER_RELU:
  case BP_LAYER_GELU:
  case BP_LAYER_TANH:
  case BP_LAYER_SIGMOID:
    break;
  case BP_LAYER_LEAKY_RELU:
    if (!isfinite (s->negative_slope))
      FAIL ("negative_slope must be a finite number");
    break;
  case BP_LAYER_DROPOUT:
    if (!(s->p >= 0.0f && s->p < 1.0f))
      FAIL ("p must be in [0, 1), not %g", (double) s->p);
    break;
  case BP_LAYER_LINEAR: {
    if (!init_check (s, err, err_len))
      return false;
    if (s->tied_to[0] && s->init != BP_INIT_DEFAULT)
      FAIL ("init \"%s\" cannot apply to a tied weight: tied_to \"%s\" initialises it",
            init_choices[s->init], s->tied_to);
    shape_text (x, a, sizeof a);
    int64_t in_f = x->d[x->ndim - 1];
    if (s->in_features && s->in_features != in_f)
      FAIL ("in_features is %lld but the input %s has %lld features (its last dimension)",
            (long long) s->in_features, a, (long long) in_f);
    int64_t out_f = s->out_features;
    if (s->tied_to[0]) {
      if (in_f != tied_e)
        FAIL ("tied_to \"%s\" has %lld-wide vectors but the input %s has %lld features",
              s->tied_to, (long long) tied_e, a, (long long) in_f);
      if (out_f && out_f != tied_v)
        FAIL ("out_features is %lld but tied_to \"%s\" has %lld embeddings", (long long) out_f,
              s->tied_to, (long long) tied_v);
      out_f = tied_v;
    } else if (out_f == 0) {
      FAIL ("Linear needs out_features (or tied_to an Embedding)");
    }
    if (out_f < 1)
      FAIL ("out_features must be positive, not %lld", (long long) out_f);
    params = (s->tied_to[0] ? 0.0 : (double) in_f * (double) out_f) +
             (s->bias ? (double) out_f : 0);
    if ((double) in_f * (double) out_f > (double) MAX_PARAMS)
      FAIL ("%lld x %lld weights: %.4g parameters are more than a layer may have (%lld)",
            (long long) out_f, (long long) in_f, (double) in_f * (double) out_f,
            (long long) MAX_PARAMS);
    out->d[x->ndim - 1] = out_f;
    break;
  }
  case BP_LAYER_EMBEDDING: {
    shape_text (x, a, sizeof a);
    int64_t v = s->num_embeddings ? s->num_embeddings : x->vocab;
    if (v == 0)
      FAIL ("num_embeddings is needed: the input %s holds no token ids (give the Input a "
            "vocab_size)", a);
    if (s->num_embeddings && x->vocab && s->num_embeddings != x->vocab)
      FAIL ("num_embeddings is %lld but the input's vocab_size is %lld",
            (long long) s->num_embeddings, (long long) x->vocab);
    if (s->embedding_dim < 1)
      FAIL ("embedding_dim must be positive, not %lld", (long long) s->embedding_dim);
    if (x->ndim >= BP_LAYER_MAX_DIMS)
      FAIL ("the input %s has too many dimensions for one more", a);
    if (!(s->init_std > 0.0f))
      FAIL ("init_std must be positive");
    params = (double) v * (double) s->embedding_dim;
    if (params > (double) MAX_PARAMS)
      FAIL ("%lld x %lld vectors: %.4g parameters are more than a layer may have (%lld)",
            (long long) v, (long long) s->embedding_dim, params, (long long) MAX_PARAMS);
    out->d[out->ndim++] = s->embedding_dim;
    break;
  }
  case BP_LAYER_RNN:
  case BP_LAYER_LSTM:
  case BP_LAYER_GRU: {
    shape_text (x, a, sizeof a);
    if (x->ndim != 2)
      FAIL ("needs a (T, features) sequence, not %s", a);
    if (s->input_size && s->input_size != x->d[1])
      FAIL ("input_size is %lld but the input %s has %lld features", (long long) s->input_size,
            a, (long long) x->d[1]);
    if (s->hidden_size < 1 || s->num_layers < 1)
      FAIL ("hidden_size and num_layers must be positive");
    if (!(s->dropout >= 0.0f && s->dropout < 1.0f))
      FAIL ("dropout must be in [0, 1), not %g", (double) s->dropout);
    params = rnn_param_count (s, x->d[1]);
    if (params > (double) MAX_PARAMS)
      FAIL ("%.4g parameters are more than a layer may have (%lld)", params,
            (long long) MAX_PARAMS);
    out->d[1] = (s->bidirectional ? 2 : 1) * s->hidden_size;
    break;
  }
  case BP_LAYER_MULTIHEAD_ATTENTION:
  case BP_LAYER_TRANSFORMER_ENCODER_LAYER:
  case BP_LAYER_TRANSFORMER_DECODER_LAYER: {
    shape_text (x, a, sizeof a);
    bool mha = s->kind == BP_LAYER_MULTIHEAD_ATTENTION;
    int64_t want = mha ? s->embed_dim : s->d_model;
    if (x->ndim != 2)
      FAIL ("needs a (T, features) sequence, not %s", a);
    int64_t e = x->d[1];
    if (want && want != e)
      FAIL ("%s is %lld but the input %s has %lld features", mha ? "embed_dim" : "d_model",
            (long long) want, a, (long long) e);
    if (s->num_heads < 1 || e % s->num_heads)
      FAIL ("%lld features are not divisible by %s %lld", (long long) e,
            mha ? "num_heads" : "nhead", (long long) s->num_heads);
    if (s->rope && (e / s->num_heads) % 2)
      FAIL ("rope needs an even head size, not %lld (%lld features, %lld heads)",
            (long long) (e / s->num_heads), (long long) e, (long long) s->num_heads);
    if (!(s->dropout >= 0.0f && s->dropout < 1.0f))
      FAIL ("dropout must be in [0, 1), not %g", (double) s->dropout);
    if (mha) {
      params = mha_param_count (e, s->bias);
      break;
    }
    if (s->dim_feedforward < 1 || !(s->layer_norm_eps > 0.0f && s->layer_norm_eps <= 1.0f))
      FAIL ("dim_feedforward must be positive and layer_norm_eps in (0, 1]");
    bool dec = s->kind == BP_LAYER_TRANSFORMER_DECODER_LAYER;
    if (dec) {
      shape_text (in[1], b, sizeof b);
      if (in[1]->ndim != 2 || in[1]->d[1] != e)
        FAIL ("input 2 \"%s\" (the memory) has shape %s, not (S, %lld)", in_ids[1], b,
              (long long) e);
    }
    double ff = (double) s->dim_feedforward;
    params = (dec ? 2 : 1) * mha_param_count (e, true) + 2.0 * ff * (double) e + ff +
             (double) e + (dec ? 6.0 : 4.0) * (double) e;
    if (params > (double) MAX_PARAMS)
      FAIL ("%.4g parameters are more than a layer may have (%lld)", params,
            (long long) MAX_PARAMS);
    break;
  }
  case BP_LAYER_POSITIONAL_ENCODING: {
    shape_text (x, a, sizeof a);
    if (x->ndim != 2)
      FAIL ("needs a (T, features) sequence, not %s", a);
    if (s->d_model && s->d_model != x->d[1])
      FAIL ("d_model is %lld but the input %s has %lld features", (long long) s->d_model, a,
            (long long) x->d[1]);
    if (s->max_len < x->d[0])
      FAIL ("the input %s is longer than max_len %lld (the context)", a,
            (long long) s->max_len);
    if (s->encoding == BP_ENCODING_SINUSOIDAL && x->d[1] % 2)
      FAIL ("sinusoidal encoding needs an even number of features, not %lld",
            (long long) x->d[1]);
    if (!(s->dropout >= 0.0f && s->dropout < 1.0f))
      FAIL ("dropout must be in [0, 1), not %g", (double) s->dropout);
    if (s->encoding == BP_ENCODING_LEARNED)
      params = (double) s->max_len * (double) x->d[1];
    if (params > (double) MAX_PARAMS)
      FAIL ("%.4g parameters are more than a layer may have (%lld)", params,
            (long long) MAX_PARAMS);
    break;
  }
  case BP_LAYER_SEQUENCE_POOL:
    shape_text (x, a, sizeof a);
    if (x->ndim < 2)
      FAIL ("needs a (T, ...) sequence, not %s", a);
    out->ndim = x->ndim - 1;
    for (int d = 0; d < out->ndim; d++)
      out->d[d] = x->d[d + 1];
    break;
  case BP_LAYER_FLATTEN: {
    /* dimensions counted with the batch as 0, as in nn.Flatten */
    shape_text (x, a, sizeof a);
    int nd = x->ndim + 1;
    int64_t sd = s->start_dim < 0 ? s->start_dim + nd : s->start_dim;
    int64_t ed = s->end_dim < 0 ? s->end_dim + nd : s->end_dim;
    if (sd < 0 || sd >= nd || ed < 0 || ed >= nd)
      FAIL ("start_dim %lld or end_dim %lld is outside the %d dimensions of a batch of %s",
            (long long) s->start_dim, (long long) s->end_dim, nd, a);
    if (sd == 0)
      FAIL ("start_dim 0 would flatten the batch dimension");
    if (sd > ed)
      FAIL ("start_dim %lld comes after end_dim %lld", (long long) s->start_dim,
            (long long) s->end_dim);
    out->ndim = 0;
    for (int d = 0; d < x->ndim; d++) {
      int bd = d + 1; /* with the batch */
      if (bd <= sd || bd > ed)
        out->d[out->ndim++] = x->d[d];
      else
        out->d[out->ndim - 1] *= x->d[d];
    }
    break;
  }
  case BP_LAYER_ADD:
    shape_text (x, a, sizeof a);
    for (int k = 1; k < n_in; k++) {
      bool same = in[k]->ndim == x->ndim;
      for (int d = 0; same && d < x->ndim; d++)
        same = in[k]->d[d] == x->d[d];
      shape_text (in[k], b, sizeof b);
      if (!same)
        FAIL ("input %d \"%s\" has shape %s but input 1 \"%s\" has %s: Add needs equal shapes",
              k + 1, in_ids[k], b, in_ids[0], a);
    }
    break;
  case BP_LAYER_CONCAT: {
    shape_text (x, a, sizeof a);
    int nd = x->ndim + 1;
    int64_t dim = s->dim < 0 ? s->dim + nd : s->dim;
    if (dim < 0 || dim >= nd)
      FAIL ("dim %lld is outside the %d dimensions of a batch of %s", (long long) s->dim, nd, a);
    if (dim == 0)
      FAIL ("dim 0 is the batch dimension; 1 joins channels");
    for (int k = 1; k < n_in; k++) {
      bool fits = in[k]->ndim == x->ndim;
      for (int d = 0; fits && d < x->ndim; d++)
        fits = d == dim - 1 || in[k]->d[d] == x->d[d];
      shape_text (in[k], b, sizeof b);
      if (!fits)
        FAIL ("input %d \"%s\" has shape %s, which does not fit input 1 \"%s\" %s along dim %lld",
              k + 1, in_ids[k], b, in_ids[0], a, (long long) s->dim);
      out->d[dim - 1] += in[k]->d[dim - 1];
    }
    break;
  }
  case BP_LAYER_OUTPUT:
    shape_text (x, a, sizeof a);
    if (s->loss < 0 || s->loss >= BP_LOSS_COUNT)
      FAIL ("unknown loss %d", s->loss);
    if (s->loss == BP_LOSS_CROSS_ENTROPY && x->ndim != 1 && x->ndim != 2)
      FAIL ("CrossEntropyLoss needs one score per class, a (C) input, or per time step, "
            "(T, C), not %s (add Flatten and Linear before the Output)", a);
    break;
  default:
    FAIL ("unknown layer kind %d", (int) s->kind);
  }
  for (int d = out->ndim; d < BP_LAYER_MAX_DIMS; d++)
    out->d[d] = 0;
  if (s->kind != BP_LAYER_INPUT && s->kind != BP_LAYER_DROPOUT)
    out->vocab = 0;
  double numel = shape_numel_f (out);
  if (numel > (double) MAX_ACTIVATION) {
    shape_text (out, a, sizeof a);
    FAIL ("its output %s has %.4g values per example, more than the limit (%lld)", a, numel,
          (long long) MAX_ACTIVATION);
  }
  *n_params = (int64_t) params;
  return true;
}

#undef FAIL

static void
node_label (const BpLayerSpec *s, int k, char *buf, size_t len)
{
  bool known = s->kind >= 0 && s->kind < BP_LAYER_KIND_COUNT;
  if (s->id[0] && known)
    snprintf (buf, len, "node \"%s\" (%s)", s->id, bp_layer_kind_name (s->kind));
  else if (s->id[0])
    snprintf (buf, len, "node \"%s\"", s->id);
  else if (known)
    snprintf (buf, len, "node %d (%s)", k + 1, bp_layer_kind_name (s->kind));
  else
    snprintf (buf, len, "node %d", k + 1);
}

/* Consumer lists (CSR): the nodes reading node i are user[first[i] .. first[i + 1]), once
 * per input slot. */
typedef struct {
  int *first, *user;
} Users;

static Users
users_new (const BpGraphInfo *g)
{
  int n = g->n, n_edges = 0;
  Users u = {calloc ((size_t) n + 1, sizeof (int)), NULL};
  for (int k = 0; k < n; k++)
    for (int e = 0; e < g->layers[k].n_inputs; e++)
      if (g->layers[k].inputs[e] >= 0) {
        u.first[g->layers[k].inputs[e] + 1]++;
        n_edges++;
      }
  for (int i = 0; i < n; i++)
    u.first[i + 1] += u.first[i];
  u.user = malloc (sizeof (int) * (size_t) (n_edges > 0 ? n_edges : 1));
  int *fill = malloc (sizeof (int) * (size_t) n);
  memcpy (fill, u.first, sizeof (int) * (size_t) n);
  for (int k = 0; k < n; k++)
    for (int e = 0; e < g->layers[k].n_inputs; e++)
      if (g->layers[k].inputs[e] >= 0)
        u.user[fill[g->layers[k].inputs[e]]++] = k;
  free (fill);
  return u;
}

static void
users_free (Users *u)
{
  free (u->first);
  free (u->user);
}

/* Marks the nodes on a cycle through k (a path among the nodes in `left`) with an error that
 * spells the cycle out. */
static void
report_cycle (BpGraphInfo *g, const BpLayerSpec *specs, const Users *u, const bool *left, int k)
{
  int n = g->n;
  int *parent = malloc (sizeof (int) * (size_t) n);
  int *queue = malloc (sizeof (int) * (size_t) n);
  for (int j = 0; j < n; j++)
    parent[j] = -2;
  /* breadth-first from k along producer -> consumer edges until k comes back */
  int head = 0, tail = 0, found = -1;
  queue[tail++] = k;
  parent[k] = -1;
  while (head < tail && found < 0) {
    int i = queue[head++];
    for (int c = u->first[i]; c < u->first[i + 1] && found < 0; c++) {
      int j = u->user[c];
      if (!left[j])
        continue;
      if (j == k)
        found = i;
      else if (parent[j] == -2) {
        parent[j] = i;
        queue[tail++] = j;
      }
    }
  }
  if (found >= 0) {
    /* the path k -> ... -> found, collected backwards, then back to k */
    int len = 0;
    for (int j = found; j >= 0; j = parent[j])
      queue[len++] = j;
    char text[200];
    size_t off = 0;
    for (int j = len - 1; j >= 0 && off < sizeof text; j--) {
      /* a long cycle as its first four and last three nodes */
      if (len > 8 && j == len - 5) {
        off += (size_t) snprintf (text + off, sizeof text - off, "... -> ");
        j = 2;
      }
      off += (size_t) snprintf (text + off, sizeof text - off, "%s -> ", specs[queue[j]].id);
    }
    if (off < sizeof text)
      snprintf (text + off, sizeof text - off, "%s", specs[k].id);
    for (int j = 0; j < len; j++)
      node_error (g, queue[j], CHECK_CYCLES, "the graph has a cycle of %d node%s: %s", len,
                  len > 1 ? "s" : "", text);
  }
  free (parent);
  free (queue);
}

typedef struct {
  const char *id;
  int index;
} IdEntry;

static int
id_entry_cmp (const void *a, const void *b)
{
  const IdEntry *x = a, *y = b;
  int c = strcmp (x->id, y->id);
  return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* The first node with this id in the sorted table, -1 if none. */
static int
id_lookup (const IdEntry *table, int n, const char *id)
{
  int lo = 0, hi = n;
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (strcmp (table[mid].id, id) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < n && strcmp (table[lo].id, id) == 0 ? table[lo].index : -1;
}

BpGraphInfo *
bp_graph_check (int n, const BpLayerSpec *specs, const char *const *node_errors)
{
  BpGraphInfo *g = calloc (1, sizeof *g);
  if (n > MAX_NODES) {
    g->layers = calloc (1, sizeof *g->layers);
    g->order = calloc (1, sizeof *g->order);
    g->input = g->output = -1;
    graph_error (g, "the graph has %d nodes, more than the limit (%d)", n, MAX_NODES);
    return g;
  }
  if (n < 0)
    n = 0;
  g->n = n;
  g->layers = calloc ((size_t) (n > 0 ? n : 1), sizeof *g->layers);
  g->order = calloc ((size_t) (n > 0 ? n : 1), sizeof *g->order);
  g->input = g->output = -1;
  if (n == 0) {
    graph_error (g, "the graph has no nodes");
    return g;
  }

  /* ids sorted for lookups (a node's id is looked up by every node reading it) */
  IdEntry *ids = malloc (sizeof *ids * (size_t) n);
  for (int k = 0; k < n; k++)
    ids[k] = (IdEntry){specs[k].id, k};
  qsort (ids, (size_t) n, sizeof *ids, id_entry_cmp);

  /* ids, kinds, input references and counts */
  for (int k = 0; k < n; k++) {
    const BpLayerSpec *s = &specs[k];
    BpLayerInfo *li = &g->layers[k];
    if (node_errors && node_errors[k])
      node_error (g, k, CHECK_NODES, "%s", node_errors[k]);
    const BpLayerType *type = bp_layer_kind_type (s->kind);
    if (!type)
      node_error (g, k, CHECK_NODES, "unknown layer kind %d", (int) s->kind);
    const char *why = id_problem (s->id);
    if (why)
      node_error (g, k, CHECK_NODES, "%s", why);
    int first = id_lookup (ids, n, s->id);
    if (!why && first != k)
      node_error (g, k, CHECK_NODES, "the id \"%s\" is used by node %d too", s->id, first + 1);
    if (type && (s->n_inputs < type->min_inputs || s->n_inputs > type->max_inputs)) {
      if (type->max_inputs == 0)
        node_error (g, k, CHECK_NODES, "an Input node takes no inputs");
      else if (s->n_inputs == 0)
        node_error (g, k, CHECK_NODES, "it has no input");
      else if (type->max_inputs == 1)
        node_error (g, k, CHECK_NODES,
                    "it takes one input, not %d (merge inputs with Add or Concat first)",
                    s->n_inputs);
      else
        node_error (g, k, CHECK_NODES, "it takes %d to %d inputs, not %d", type->min_inputs,
                    type->max_inputs, s->n_inputs);
    }
    li->n_inputs = s->n_inputs < 0 ? 0
                   : s->n_inputs > BP_LAYER_MAX_INPUTS ? BP_LAYER_MAX_INPUTS
                                                       : s->n_inputs;
    for (int e = 0; e < li->n_inputs; e++) {
      li->inputs[e] = s->inputs[e][0] ? id_lookup (ids, n, s->inputs[e]) : -1;
      if (li->inputs[e] < 0)
        node_error (g, k, CHECK_NODES, "its input \"%s\" is not a node of the graph", s->inputs[e]);
    }
    if (s->kind == BP_LAYER_INPUT) {
      if (g->input < 0)
        g->input = k;
      else
        node_error (g, k, CHECK_NODES, "a second Input node: a model has one Input (\"%s\")",
                    specs[g->input].id);
    }
    if (s->kind == BP_LAYER_OUTPUT) {
      if (g->output < 0)
        g->output = k;
      else
        node_error (g, k, CHECK_NODES, "a second Output node: a model has one Output (\"%s\")",
                    specs[g->output].id);
    }
  }
  if (g->input < 0)
    graph_error (g, "the graph has no Input node");
  if (g->output < 0)
    graph_error (g, "the graph has no Output node (add one after the last layer)");

  /* topological order (Kahn), taking the lowest ready index first */
  Users u = users_new (g);
  int *pending = calloc ((size_t) n, sizeof *pending);
  bool *done = calloc ((size_t) n, sizeof *done);
  for (int k = 0; k < n; k++)
    for (int e = 0; e < g->layers[k].n_inputs; e++)
      pending[k] += g->layers[k].inputs[e] >= 0;
  for (;;) {
    int next = -1;
    for (int k = 0; k < n && next < 0; k++)
      if (!done[k] && pending[k] == 0)
        next = k;
    if (next < 0)
      break;
    done[next] = true;
    g->order[g->n_order++] = next;
    for (int c = u.first[next]; c < u.first[next + 1]; c++)
      pending[u.user[c]]--;
  }
  if (g->n_order < n) {
    /* the nodes left are on cycles or downstream of one; strip the ones that lead to no other
     * left node (repeatedly), then look for a cycle through each remaining one */
    bool *left = calloc ((size_t) n, sizeof *left);
    for (int k = 0; k < n; k++)
      left[k] = !done[k];
    for (bool stripped = true; stripped;) {
      stripped = false;
      for (int k = 0; k < n; k++) {
        bool leads = false;
        for (int c = u.first[k]; left[k] && c < u.first[k + 1] && !leads; c++)
          leads = left[u.user[c]];
        if (left[k] && !leads) {
          left[k] = false;
          stripped = true;
        }
      }
    }
    for (int k = 0; k < n; k++)
      if (left[k] && !g->layers[k].error[0])
        report_cycle (g, specs, &u, left, k);
    free (left);
  }
  users_free (&u);

  /* shapes in topological order; a node after a broken one stays unknown without an error */
  for (int o = 0; o < g->n_order; o++) {
    int k = g->order[o];
    BpLayerInfo *li = &g->layers[k];
    if (li->error[0])
      continue;
    const BpShape *in[BP_LAYER_MAX_INPUTS];
    const char *in_ids[BP_LAYER_MAX_INPUTS];
    bool known = true;
    for (int e = 0; e < li->n_inputs; e++) {
      int j = li->inputs[e];
      known = known && j >= 0 && g->layers[j].out.ndim > 0;
      if (known) {
        in[e] = &g->layers[j].out;
        in_ids[e] = specs[j].id;
      }
    }
    if (!known)
      continue;
    /* a tied Linear reads its Embedding's sizes: that node must come before it */
    int64_t tied_v = 0, tied_e = 0;
    if (specs[k].kind == BP_LAYER_LINEAR && specs[k].tied_to[0]) {
      int j = id_lookup (ids, n, specs[k].tied_to);
      if (j < 0) {
        node_error (g, k, CHECK_SHAPES, "tied_to \"%s\" is not a node of the graph",
                    specs[k].tied_to);
        continue;
      }
      if (specs[j].kind != BP_LAYER_EMBEDDING) {
        node_error (g, k, CHECK_SHAPES, "tied_to \"%s\" is a %s, not an Embedding",
                    specs[k].tied_to, bp_layer_kind_name (specs[j].kind));
        continue;
      }
      bool before = false;
      for (int b = 0; b < o && !before; b++)
        before = g->order[b] == j;
      if (!before) {
        node_error (g, k, CHECK_SHAPES, "tied_to \"%s\" must come before this node (its output "
                    "leading here)", specs[k].tied_to);
        continue;
      }
      const BpLayerInfo *lj = &g->layers[j];
      if (lj->out.ndim == 0 || lj->n_inputs < 1 || lj->inputs[0] < 0)
        continue; /* broken upstream: no error of its own */
      tied_e = specs[j].embedding_dim;
      tied_v = specs[j].num_embeddings ? specs[j].num_embeddings
                                       : g->layers[lj->inputs[0]].out.vocab;
    }
    char err[sizeof li->error];
    if (!layer_infer (&specs[k], li->n_inputs, in, in_ids, tied_v, tied_e, &li->out,
                      &li->n_params, err, sizeof err)) {
      li->out.ndim = 0;
      li->n_params = 0;
      node_error (g, k, CHECK_SHAPES, "%s", err);
    }
  }

  free (ids);

  /* every node must lead to the Output */
  if (g->output >= 0) {
    bool *used = calloc ((size_t) n, sizeof *used);
    int *stack = malloc (sizeof (int) * (size_t) n);
    int top = 0;
    used[g->output] = true;
    stack[top++] = g->output;
    while (top > 0) {
      int k = stack[--top];
      for (int e = 0; e < g->layers[k].n_inputs; e++) {
        int j = g->layers[k].inputs[e];
        if (j >= 0 && !used[j]) {
          used[j] = true;
          stack[top++] = j;
        }
      }
    }
    for (int k = 0; k < n; k++)
      if (!used[k])
        node_error (g, k, CHECK_USED, "its output does not lead to the Output node \"%s\"",
                    specs[g->output].id);
    free (used);
    free (stack);
  }

  double total = 0.0;
  for (int k = 0; k < n; k++)
    total += (double) g->layers[k].n_params;
  g->n_params = (int64_t) total;
  if (total > (double) MAX_PARAMS)
    graph_error (g, "the model has %.4g parameters, more than the limit (%lld)", total,
                 (long long) MAX_PARAMS);

  /* the first error: a graph error, else the first broken node of the earliest check */
  for (int check = 0; check < CHECK_COUNT; check++)
    for (int k = 0; k < n && !g->error[0]; k++)
      if (g->layers[k].error[0] && g->layers[k].check == check) {
        char label[64];
        node_label (&specs[k], k, label, sizeof label);
        snprintf (g->error, sizeof g->error, "%s: %s", label, g->layers[k].error);
      }
  if (g->n_errors > 1) {
    size_t len = strlen (g->error);
    snprintf (g->error + len, sizeof g->error - len, " (and %d more error%s)", g->n_errors - 1,
              g->n_errors > 2 ? "s" : "");
  }
  free (pending);
  free (done);
  return g;
}

void
bp_graph_info_free (BpGraphInfo *info)
{
  if (!info)
    return;
  free (info->layers);
  free (info->order);
  free (info);
}

/* ---- models ---- */

static BpTensor *
param_uniform (int ndim, const int64_t *shape, float bound)
{
  BpTensor *t = bp_tensor_new (ndim, shape);
  if (!t)
    return NULL;
  bp_tensor_uniform (t, -bound, bound);
  t->requires_grad = true;
  return t;
}

static BpTensor *
param_const (int ndim, const int64_t *shape, float value, bool requires_grad)
{
  BpTensor *t = bp_tensor_new (ndim, shape);
  if (!t)
    return NULL;
  bp_tensor_fill (t, value);
  t->requires_grad = requires_grad;
  return t;
}

static BpTensor *
param_normal (int ndim, const int64_t *shape, float std)
{
  BpTensor *t = bp_tensor_new (ndim, shape);
  if (!t)
    return NULL;
  bp_tensor_normal (t, 0.0f, std);
  t->requires_grad = true;
  return t;
}

/* fan_in of a Linear or Conv2d weight (out, in, kernel...): in * kernel area, as
 * torch.nn.init._calculate_fan_in_and_fan_out; fan_out is out * kernel area. */
static int64_t
weight_fan (int ndim, const int64_t *shape, int which)
{
  int64_t rf = 1;
  for (int d = 2; d < ndim; d++)
    rf *= shape[d];
  return shape[which] * rf;
}

/* A Linear's or Conv2d's weight initialised as its init says (BpInit). */
static BpTensor *
param_weight (int ndim, const int64_t *shape, const BpLayerSpec *s)
{
  int64_t fan_in = weight_fan (ndim, shape, 1), fan_out = weight_fan (ndim, shape, 0);
  switch ((BpInit) s->init) {
  case BP_INIT_KAIMING_UNIFORM:
    return param_uniform (ndim, shape, (float) sqrt (6.0 / (double) fan_in));
  case BP_INIT_KAIMING_NORMAL:
    return param_normal (ndim, shape, (float) sqrt (2.0 / (double) fan_in));
  case BP_INIT_XAVIER_UNIFORM:
    return param_uniform (ndim, shape, (float) sqrt (6.0 / (double) (fan_in + fan_out)));
  case BP_INIT_XAVIER_NORMAL:
    return param_normal (ndim, shape, (float) sqrt (2.0 / (double) (fan_in + fan_out)));
  case BP_INIT_NORMAL:
    return param_normal (ndim, shape, s->init_std);
  case BP_INIT_ZEROS:
    return param_const (ndim, shape, 0.0f, true);
  case BP_INIT_DEFAULT:
  case BP_INIT_COUNT:
    break;
  }
  /* kaiming_uniform_ with a = sqrt (5): gain sqrt (1/3), so the bound is 1/sqrt (fan_in) */
  return param_uniform (ndim, shape, 1.0f / sqrtf ((float) fan_in));
}

/* A Linear's or Conv2d's bias: PyTorch's U(-1/sqrt (fan_in), 1/sqrt (fan_in)), 0 with zeros. */
static BpTensor *
param_bias (int64_t n, int64_t fan_in, const BpLayerSpec *s)
{
  if (s->init == BP_INIT_ZEROS)
    return param_const (1, &n, 0.0f, true);
  return param_uniform (1, &n, 1.0f / sqrtf ((float) fan_in));
}

/* Appends a named tensor (a NULL one is an allocation failure). */
static bool
add_tensor (BpLayer *l, const char *name, BpTensor *t)
{
  if (!t || l->n_tensors >= BP_LAYER_MAX_TENSORS) {
    bp_tensor_unref (t);
    if (t)
      bp_set_error (BP_ERR_INVALID, "layer \"%s\" has too many tensors", l->spec.id);
    return false;
  }
  snprintf (l->tensors[l->n_tensors].name, sizeof l->tensors[0].name, "%.39s", name);
  l->tensors[l->n_tensors++].tensor = t;
  return true;
}

/* The named tensor of a layer, NULL if it has none of that name. */
static BpTensor *
layer_tensor (const BpLayer *l, const char *name)
{
  for (int k = 0; k < l->n_tensors; k++)
    if (strcmp (l->tensors[k].name, name) == 0)
      return l->tensors[k].tensor;
  return NULL;
}

static BpRnnParams
rnn_params_of (const BpLayer *l)
{
  const BpLayerSpec *s = &l->spec;
  BpRnnParams p = {
    .mode = s->kind == BP_LAYER_LSTM  ? BP_RNN_LSTM
            : s->kind == BP_LAYER_GRU ? BP_RNN_GRU
            : s->nonlinearity == BP_NONLINEARITY_RELU ? BP_RNN_RELU
                                                      : BP_RNN_TANH,
    .input_size = l->in_shape[l->in_ndim - 1],
    .hidden_size = s->hidden_size,
    .num_layers = (int) s->num_layers,
    .bias = s->bias,
    .batch_first = true,
    .bidirectional = s->bidirectional,
    .dropout = s->dropout,
  };
  return p;
}

/* MultiheadAttention's tensors under prefix ("self_attn."): xavier in_proj, zero biases,
 * out_proj as a Linear's weight (PyTorch's _reset_parameters). */
static bool
alloc_mha (BpLayer *l, const char *prefix, int64_t e, bool bias)
{
  char name[40];
  float xavier = sqrtf (6.0f / (float) (e + 3 * e)), lin = 1.0f / sqrtf ((float) e);
  snprintf (name, sizeof name, "%sin_proj_weight", prefix);
  if (!add_tensor (l, name, param_uniform (2, (int64_t[]){3 * e, e}, xavier)))
    return false;
  snprintf (name, sizeof name, "%sin_proj_bias", prefix);
  if (bias && !add_tensor (l, name, param_const (1, (int64_t[]){3 * e}, 0.0f, true)))
    return false;
  snprintf (name, sizeof name, "%sout_proj.weight", prefix);
  if (!add_tensor (l, name, param_uniform (2, (int64_t[]){e, e}, lin)))
    return false;
  snprintf (name, sizeof name, "%sout_proj.bias", prefix);
  return !bias || add_tensor (l, name, param_const (1, &e, 0.0f, true));
}

static BpMhaWeights
mha_weights_of (const BpLayer *l, const char *prefix)
{
  char a[40], b[40], c[40], d[40];
  snprintf (a, sizeof a, "%sin_proj_weight", prefix);
  snprintf (b, sizeof b, "%sin_proj_bias", prefix);
  snprintf (c, sizeof c, "%sout_proj.weight", prefix);
  snprintf (d, sizeof d, "%sout_proj.bias", prefix);
  BpMhaWeights w = {layer_tensor (l, a), layer_tensor (l, b), layer_tensor (l, c),
                    layer_tensor (l, d)};
  return w;
}

static BpTransformerWeights
transformer_weights_of (const BpLayer *l)
{
  BpTransformerWeights w = {
    .self_attn = mha_weights_of (l, "self_attn."),
    .cross_attn = mha_weights_of (l, "multihead_attn."),
    .linear1_weight = layer_tensor (l, "linear1.weight"),
    .linear1_bias = layer_tensor (l, "linear1.bias"),
    .linear2_weight = layer_tensor (l, "linear2.weight"),
    .linear2_bias = layer_tensor (l, "linear2.bias"),
    .norm1_weight = layer_tensor (l, "norm1.weight"),
    .norm1_bias = layer_tensor (l, "norm1.bias"),
    .norm2_weight = layer_tensor (l, "norm2.weight"),
    .norm2_bias = layer_tensor (l, "norm2.bias"),
    .norm3_weight = layer_tensor (l, "norm3.weight"),
    .norm3_bias = layer_tensor (l, "norm3.bias"),
  };
  return w;
}

static BpTransformerParams
transformer_params_of (const BpLayer *l)
{
  const BpLayerSpec *s = &l->spec;
  BpTransformerParams p = {
    .nhead = (int) s->num_heads,
    .dim_feedforward = s->dim_feedforward,
    .dropout = s->dropout,
    .activation = s->activation == BP_FF_GELU ? BP_ACT_GELU : BP_ACT_RELU,
    .layer_norm_eps = s->layer_norm_eps,
    .norm_first = s->norm_first,
    .causal = s->causal,
    .rope = s->rope,
  };
  return p;
}

/* Creates a checked layer's parameters and buffers as PyTorch initialises them. */
static bool
layer_alloc (BpModel *m, BpLayer *l)
{
  BpLayerSpec *s = &l->spec;
  switch (s->kind) {
  case BP_LAYER_LINEAR: {
    int64_t in_f = l->in_shape[l->in_ndim - 1], out_f = l->out_shape[l->out_ndim - 1];
    if (s->tied_to[0]) {
      BpLayer *e = bp_model_find (m, s->tied_to);
      l->weight = e ? bp_tensor_ref (e->weight) : NULL;
      l->weight_tied = true;
    } else {
      l->weight = param_weight (2, (int64_t[]){out_f, in_f}, s);
    }
    if (s->bias)
      l->bias = param_bias (out_f, in_f, s);
    return l->weight && (!s->bias || l->bias);
  }
  case BP_LAYER_EMBEDDING: {
    int64_t e = s->embedding_dim, v = s->num_embeddings;
    if (!v) {
      /* the Input's vocabulary: the model's only Input is its first layer */
      v = m->layers[0].spec.vocab_size;
    }
    l->weight = param_normal (2, (int64_t[]){v, e}, s->init_std);
    return l->weight != NULL;
  }
  case BP_LAYER_RNN:
  case BP_LAYER_LSTM:
  case BP_LAYER_GRU: {
    BpRnnParams p = rnn_params_of (l);
    float bound = 1.0f / sqrtf ((float) s->hidden_size);
    for (int k = 0; k < bp_rnn_n_weights (&p); k++) {
      char name[48];
      int64_t shape[2];
      int ndim;
      bp_rnn_weight_info (&p, k, name, sizeof name, shape, &ndim);
      if (!add_tensor (l, name, param_uniform (ndim, shape, bound)))
        return false;
    }
    return true;
  }
  case BP_LAYER_MULTIHEAD_ATTENTION:
    return alloc_mha (l, "", l->in_shape[l->in_ndim - 1], s->bias);
  case BP_LAYER_POSITIONAL_ENCODING: {
    int64_t e = l->in_shape[l->in_ndim - 1];
    if (s->encoding == BP_ENCODING_LEARNED) {
      l->weight = param_normal (2, (int64_t[]){s->max_len, e}, 0.02f);
      return l->weight != NULL;
    }
    l->table = bp_sinusoid_table (m->device, s->max_len, e);
    return l->table != NULL;
  }
  case BP_LAYER_TRANSFORMER_ENCODER_LAYER:
  case BP_LAYER_TRANSFORMER_DECODER_LAYER: {
    int64_t e = l->in_shape[l->in_ndim - 1], ff = s->dim_feedforward;
    bool dec = s->kind == BP_LAYER_TRANSFORMER_DECODER_LAYER;
    if (!alloc_mha (l, "self_attn.", e, true) || (dec && !alloc_mha (l, "multihead_attn.", e, true)))
      return false;
    float b1 = 1.0f / sqrtf ((float) e), b2 = 1.0f / sqrtf ((float) ff);
    if (!add_tensor (l, "linear1.weight", param_uniform (2, (int64_t[]){ff, e}, b1)) ||
        !add_tensor (l, "linear1.bias", param_uniform (1, &ff, b1)) ||
        !add_tensor (l, "linear2.weight", param_uniform (2, (int64_t[]){e, ff}, b2)) ||
        !add_tensor (l, "linear2.bias", param_uniform (1, &e, b2)))
      return false;
    for (int k = 1; k <= (dec ? 3 : 2); k++) {
      char wn[16], bn[16];
      snprintf (wn, sizeof wn, "norm%d.weight", k);
      snprintf (bn, sizeof bn, "norm%d.bias", k);
      if (!add_tensor (l, wn, param_const (1, &e, 1.0f, true)) ||
          !add_tensor (l, bn, param_const (1, &e, 0.0f, true)))
        return false;
    }
    return true;
  }
  case BP_LAYER_CONV2D: {
    int64_t cin = l->in_shape[0];
    int64_t fan_in = cin / s->groups * s->kernel_size[0] * s->kernel_size[1];
    l->weight = param_weight (4, (int64_t[]){s->out_channels, cin / s->groups, s->kernel_size[0],
                                             s->kernel_size[1]},
                              s);
    if (s->bias)
      l->bias = param_bias (s->out_channels, fan_in, s);
    return l->weight && (!s->bias || l->bias);
  }
  case BP_LAYER_BATCHNORM1D:
  case BP_LAYER_BATCHNORM2D: {
    int64_t c = l->in_shape[0];
    if (s->affine) {
      l->weight = param_const (1, &c, 1.0f, true);
      l->bias = param_const (1, &c, 0.0f, true);
    }
    l->running_mean = param_const (1, &c, 0.0f, false);
    l->running_var = param_const (1, &c, 1.0f, false);
    return (!s->affine || (l->weight && l->bias)) && l->running_mean && l->running_var;
  }
  case BP_LAYER_LAYERNORM: {
    BpShape ns = s->normalized_shape;
    if (ns.ndim == 0) {
      ns.ndim = 1;
      ns.d[0] = l->in_shape[l->in_ndim - 1];
    }
    if (s->affine) {
      l->weight = param_const (ns.ndim, ns.d, 1.0f, true);
      l->bias = param_const (ns.ndim, ns.d, 0.0f, true);
      return l->weight && l->bias;
    }
    return true;
  }
  default:
    return true;
  }
}

BpModel *
bp_model_new (const char *name, int n, const BpLayerSpec *specs)
{
  BpGraphInfo *g = bp_graph_check (n, specs, NULL);
  if (g->n_errors) {
    bp_set_error (BP_ERR_INVALID, "%s", g->error);
    bp_graph_info_free (g);
    return NULL;
  }
  BpModel *m = calloc (1, sizeof *m);
  m->name = strdup (name ? name : "model");
  m->layers = calloc ((size_t) n, sizeof *m->layers);
  m->training = true;
  m->device = BP_DEVICE_CPU;
  int *position = malloc (sizeof (int) * (size_t) n); /* spec index -> layer index */
  for (int o = 0; o < n; o++)
    position[g->order[o]] = o;
  for (int o = 0; o < n; o++) {
    int k = g->order[o];
    const BpLayerInfo *li = &g->layers[k];
    BpLayer *l = &m->layers[o];
    l->spec = specs[k];
    l->n_inputs = li->n_inputs;
    for (int e = 0; e < li->n_inputs; e++) {
      l->inputs[e] = position[li->inputs[e]];
      m->layers[l->inputs[e]].n_uses++;
    }
    const BpShape *in = li->n_inputs ? &g->layers[li->inputs[0]].out : &li->out;
    l->in_ndim = in->ndim;
    memcpy (l->in_shape, in->d, sizeof l->in_shape);
    l->out_ndim = li->out.ndim;
    memcpy (l->out_shape, li->out.d, sizeof l->out_shape);
    l->n_params = li->n_params;
  }
  m->n_layers = n;
  free (position);
  bp_graph_info_free (g);

  /* the Input is first and the Output last: every other node has inputs and leads to it */
  BpLayer *input = &m->layers[0], *output = &m->layers[n - 1];
  m->in_ndim = input->out_ndim;
  memcpy (m->in_shape, input->out_shape, sizeof m->in_shape);
  m->out_ndim = output->out_ndim;
  memcpy (m->out_shape, output->out_shape, sizeof m->out_shape);
  m->loss = (BpLossKind) output->spec.loss;
  for (int k = 0; k < n; k++)
    if (!layer_alloc (m, &m->layers[k])) {
      bp_model_free (m);
      return NULL;
    }
  return m;
}

void
bp_model_free (BpModel *model)
{
  if (!model)
    return;
  for (int k = 0; k < model->n_layers; k++) {
    BpLayer *l = &model->layers[k];
    bp_tensor_unref (l->weight);
    bp_tensor_unref (l->bias);
    bp_tensor_unref (l->running_mean);
    bp_tensor_unref (l->running_var);
    bp_tensor_unref (l->table);
    for (int j = 0; j < l->n_tensors; j++)
      bp_tensor_unref (l->tensors[j].tensor);
  }
  bp_tensor_unref (model->captured);
  free (model->layers);
  free (model->name);
  free (model->description);
  free (model);
}

void
bp_model_set_training (BpModel *model, bool training)
{
  model->training = training;
}

BpLayer *
bp_model_find (BpModel *model, const char *id)
{
  for (int k = 0; id && k < model->n_layers; k++)
    if (strcmp (model->layers[k].spec.id, id) == 0)
      return &model->layers[k];
  return NULL;
}

struct BpModelCache {
  BpModel *model;
  int64_t batch, pos, max_len;
  BpKVCache **kv; /* per layer; NULL where the layer keeps none */
};

/* One layer on its inputs x[0 .. n_inputs): a new tensor, or NULL with the error set. With a
 * cache (incremental decoding), layer k attends through its KV cache. */
static BpTensor *
layer_forward (BpModel *m, BpLayer *l, BpTensor **x, BpModelCache *cache, int index)
{
  BpLayerSpec *s = &l->spec;
  BpKVCache *kv = cache ? cache->kv[index] : NULL;
  switch (s->kind) {
  case BP_LAYER_INPUT:
  case BP_LAYER_OUTPUT:
    return bp_tensor_ref (x[0]);
  case BP_LAYER_LINEAR:
    return bp_linear (x[0], l->weight, l->bias);
  case BP_LAYER_CONV2D: {
    BpConv2dParams p = bp_conv2d_params_default ();
    for (int d = 0; d < 2; d++) {
      p.stride[d] = s->stride[d];
      p.padding[d] = s->padding[d];
      p.dilation[d] = s->dilation[d];
    }
    p.groups = (int) s->groups;
    return bp_conv2d (x[0], l->weight, l->bias, &p);
  }
  case BP_LAYER_BATCHNORM1D:
  case BP_LAYER_BATCHNORM2D:
    if (m->training)
      l->num_batches_tracked++;
    return bp_batch_norm (x[0], l->weight, l->bias, l->running_mean, l->running_var, m->training,
                          s->momentum, s->eps);
  case BP_LAYER_LAYERNORM:
    return bp_layer_norm (x[0], s->normalized_shape.ndim ? s->normalized_shape.ndim : 1,
                          l->weight, l->bias, s->eps);
  case BP_LAYER_RELU:
    return bp_relu (x[0]);
  case BP_LAYER_LEAKY_RELU:
    return bp_leaky_relu (x[0], s->negative_slope);
  case BP_LAYER_GELU:
    return bp_gelu (x[0]);
  case BP_LAYER_TANH:
    return bp_tanh (x[0]);
  case BP_LAYER_SIGMOID:
    return bp_sigmoid (x[0]);
  case BP_LAYER_MAXPOOL2D:
  case BP_LAYER_AVGPOOL2D: {
    int stride[2];
    for (int d = 0; d < 2; d++)
      stride[d] = s->stride[d] ? s->stride[d] : s->kernel_size[d];
    if (s->kind == BP_LAYER_MAXPOOL2D)
      return bp_max_pool2d (x[0], s->kernel_size, stride, s->padding);
    return bp_avg_pool2d (x[0], s->kernel_size, stride, s->padding, s->count_include_pad);
  }
  case BP_LAYER_ADAPTIVE_AVGPOOL2D:
    return bp_adaptive_avg_pool2d (x[0], s->output_size[0], s->output_size[1]);
  case BP_LAYER_DROPOUT:
    return bp_dropout (x[0], s->p, m->training);
  case BP_LAYER_FLATTEN: {
    int64_t shape[BP_LAYER_MAX_DIMS + 1] = {x[0]->shape[0]};
    memcpy (shape + 1, l->out_shape, sizeof (int64_t) * (size_t) l->out_ndim);
    return bp_reshape (x[0], l->out_ndim + 1, shape);
  }
  case BP_LAYER_ADD: {
    BpTensor *sum = bp_add (x[0], x[1]);
    for (int k = 2; sum && k < l->n_inputs; k++) {
      BpTensor *next = bp_add (sum, x[k]);
      bp_tensor_unref (sum);
      sum = next;
    }
    return sum;
  }
  case BP_LAYER_CONCAT:
    return bp_concat (l->n_inputs, x, (int) s->dim);
  case BP_LAYER_EMBEDDING:
    return bp_embedding (l->weight, x[0]);
  case BP_LAYER_RNN:
  case BP_LAYER_LSTM:
  case BP_LAYER_GRU: {
    BpRnnParams p = rnn_params_of (l);
    BpTensor *w[BP_LAYER_MAX_TENSORS];
    for (int k = 0; k < l->n_tensors; k++)
      w[k] = l->tensors[k].tensor;
    return bp_rnn (&p, x[0], w, NULL, NULL, NULL, m->training, NULL, NULL);
  }
  case BP_LAYER_MULTIHEAD_ATTENTION:
  case BP_LAYER_TRANSFORMER_ENCODER_LAYER:
  case BP_LAYER_TRANSFORMER_DECODER_LAYER: {
    bool capture = m->capture_mode && strcmp (m->capture_id, s->id) == 0;
    BpTensor *weights = NULL, *y;
    if (s->kind == BP_LAYER_MULTIHEAD_ATTENTION) {
      BpMhaParams p = {(int) s->num_heads, s->rope, 10000.0f};
      BpMhaWeights w = mha_weights_of (l, "");
      BpAttnOptions o = BP_ATTN_OPTIONS_INIT;
      o.causal = s->causal;
      o.dropout = s->dropout;
      o.training = m->training;
      o.weights_mode = capture ? m->capture_mode : 0;
      y = bp_mha_self (&p, &w, x[0], &o, kv, capture ? &weights : NULL);
    } else {
      BpTransformerParams p = transformer_params_of (l);
      BpTransformerWeights w = transformer_weights_of (l);
      if (s->kind == BP_LAYER_TRANSFORMER_DECODER_LAYER)
        y = bp_transformer_decoder_layer (&p, &w, x[0], x[1], NULL, NULL, m->training);
      else
        y = bp_transformer_encoder_layer (&p, &w, x[0], NULL, m->training, kv,
                                          capture ? m->capture_mode : 0,
                                          capture ? &weights : NULL);
    }
    if (weights) {
      bp_tensor_unref (m->captured);
      m->captured = weights;
    }
    return y;
  }
  case BP_LAYER_POSITIONAL_ENCODING: {
    /* the table follows the model's data (a trainer may move the state alone) */
    if (l->table && l->table->device != x[0]->device &&
        bp_tensor_move_to (l->table, x[0]->device) != BP_OK)
      return NULL;
    BpTensor *a = bp_add_position (x[0], l->table ? l->table : l->weight,
                                   cache ? cache->pos : 0);
    if (!a)
      return NULL;
    BpTensor *y = bp_dropout (a, s->dropout, m->training);
    bp_tensor_unref (a);
    return y;
  }
  case BP_LAYER_SEQUENCE_POOL:
    return bp_seq_pool (x[0], s->mode);
  default:
    bp_set_error (BP_ERR_UNSUPPORTED, "layer kind %d has no forward", s->kind);
    return NULL;
  }
}

/* The graph on x, layer by layer (with a cache: incremental decoding). */
static BpTensor *
run_graph (BpModel *model, BpTensor *x, BpModelCache *cache)
{
  int n = model->n_layers;
  /* every layer's output, dropped once the last layer reading it has run */
  BpTensor **h = calloc ((size_t) n, sizeof *h);
  int *uses = malloc (sizeof (int) * (size_t) n);
  if (!h || !uses) {
    free (h);
    free (uses);
    bp_set_error (BP_ERR_NOMEM, "model %s: out of memory", model->name);
    return NULL;
  }
  for (int k = 0; k < n; k++)
    uses[k] = model->layers[k].n_uses;
  BpTensor *result = NULL;
  for (int k = 0; k < n; k++) {
    BpLayer *l = &model->layers[k];
    BpTensor *in[BP_LAYER_MAX_INPUTS];
    for (int e = 0; e < l->n_inputs; e++)
      in[e] = h[l->inputs[e]];
    h[k] = layer_forward (model, l, l->spec.kind == BP_LAYER_INPUT ? &x : in, cache, k);
    for (int e = 0; e < l->n_inputs; e++) {
      int j = l->inputs[e];
      if (--uses[j] == 0) {
        bp_tensor_unref (h[j]);
        h[j] = NULL;
      }
    }
    if (!h[k]) {
      char msg[512];
      snprintf (msg, sizeof msg, "%s", bp_last_error ());
      bp_set_error (bp_last_status (), "model %s, node \"%s\" (%s): %s", model->name, l->spec.id,
                    bp_layer_kind_name (l->spec.kind), msg);
      break;
    }
  }
  if (h[n - 1]) {
    result = h[n - 1];
    h[n - 1] = NULL;
  }
  for (int k = 0; k < n; k++)
    bp_tensor_unref (h[k]);
  free (h);
  free (uses);
  return result;
}

BpTensor *
bp_model_forward (BpModel *model, BpTensor *x)
{
  char sx[64];
  bool fits = x->ndim == model->in_ndim + 1;
  for (int d = 0; fits && d < model->in_ndim; d++)
    fits = x->shape[d + 1] == model->in_shape[d];
  if (!fits) {
    bp_set_error (BP_ERR_INVALID, "model %s: input %s does not match its input shape",
                  model->name, bp_shape_str (x, sx, sizeof sx));
    return NULL;
  }
  return run_graph (model, x, NULL);
}

BpStatus
bp_model_to_device (BpModel *model, BpDevice device)
{
  BpNamedTensor *state;
  int n = bp_model_state (model, &state);
  BpStatus st = BP_OK;
  for (int k = 0; k < n && st == BP_OK; k++)
    st = bp_tensor_move_to (state[k].tensor, device);
  free (state);
  for (int k = 0; k < model->n_layers && st == BP_OK; k++)
    if (model->layers[k].table)
      st = bp_tensor_move_to (model->layers[k].table, device);
  if (st == BP_OK)
    model->device = device;
  return st;
}

BpDevice
bp_model_data_device (const BpModel *model)
{
  for (int k = 0; k < model->n_layers; k++) {
    const BpLayer *l = &model->layers[k];
    if (l->weight)
      return l->weight->device;
    if (l->n_tensors)
      return l->tensors[0].tensor->device;
  }
  return model->device;
}

void
bp_model_capture_attention (BpModel *model, const char *id, int mode)
{
  bp_tensor_unref (model->captured);
  model->captured = NULL;
  model->capture_mode = id && mode >= 1 && mode <= 2 ? mode : 0;
  snprintf (model->capture_id, sizeof model->capture_id, "%s", id ? id : "");
}

BpTensor *
bp_model_attention (BpModel *model)
{
  return model->captured;
}

int64_t
bp_model_vocab_size (const BpModel *model)
{
  return model->n_layers > 0 ? model->layers[0].spec.vocab_size : 0;
}

int64_t
bp_model_context_length (const BpModel *model)
{
  return model->in_ndim >= 1 ? model->in_shape[0] : 0;
}

/* Whether a layer can run on a few positions at a time (position-wise or causal attention). */
static const char *
incremental_problem (const BpLayer *l)
{
  switch (l->spec.kind) {
  case BP_LAYER_INPUT:
  case BP_LAYER_OUTPUT:
  case BP_LAYER_EMBEDDING:
  case BP_LAYER_POSITIONAL_ENCODING:
  case BP_LAYER_LINEAR:
  case BP_LAYER_LAYERNORM:
  case BP_LAYER_DROPOUT:
  case BP_LAYER_RELU:
  case BP_LAYER_LEAKY_RELU:
  case BP_LAYER_GELU:
  case BP_LAYER_TANH:
  case BP_LAYER_SIGMOID:
  case BP_LAYER_ADD:
    return NULL;
  case BP_LAYER_MULTIHEAD_ATTENTION:
  case BP_LAYER_TRANSFORMER_ENCODER_LAYER:
    return l->spec.causal ? NULL : "its attention is not causal";
  default:
    return "it does not work position by position";
  }
}

BpModelCache *
bp_model_cache_new (BpModel *model, int64_t batch)
{
  if (model->in_ndim != 1 || bp_model_vocab_size (model) <= 0) {
    bp_set_error (BP_ERR_INVALID, "model %s: incremental decoding needs a model reading token "
                  "ids (an Input of shape [T] with a vocab_size)", model->name);
    return NULL;
  }
  for (int k = 0; k < model->n_layers; k++) {
    const char *why = incremental_problem (&model->layers[k]);
    if (why) {
      bp_set_error (BP_ERR_UNSUPPORTED, "model %s, node \"%s\" (%s): cannot decode one token at "
                    "a time: %s", model->name, model->layers[k].spec.id,
                    bp_layer_kind_name (model->layers[k].spec.kind), why);
      return NULL;
    }
  }
  BpModelCache *c = calloc (1, sizeof *c);
  if (c)
    c->kv = calloc ((size_t) model->n_layers, sizeof *c->kv);
  if (!c || !c->kv) {
    free (c);
    bp_set_error (BP_ERR_NOMEM, "model %s: out of memory for the cache", model->name);
    return NULL;
  }
  c->model = model;
  c->batch = batch;
  c->max_len = bp_model_context_length (model);
  for (int k = 0; k < model->n_layers; k++) {
    BpLayer *l = &model->layers[k];
    if (l->spec.kind != BP_LAYER_MULTIHEAD_ATTENTION &&
        l->spec.kind != BP_LAYER_TRANSFORMER_ENCODER_LAYER)
      continue;
    c->kv[k] = bp_kv_cache_new (bp_model_data_device (model), batch, c->max_len,
                                l->in_shape[l->in_ndim - 1]);
    if (!c->kv[k]) {
      bp_model_cache_free (c);
      return NULL;
    }
  }
  return c;
}

void
bp_model_cache_free (BpModelCache *cache)
{
  if (!cache)
    return;
  for (int k = 0; k < cache->model->n_layers; k++)
    bp_kv_cache_free (cache->kv[k]);
  free (cache->kv);
  free (cache);
}

void
bp_model_cache_reset (BpModelCache *cache)
{
  cache->pos = 0;
  for (int k = 0; k < cache->model->n_layers; k++)
    bp_kv_cache_reset (cache->kv[k]);
}

int64_t
bp_model_cache_position (const BpModelCache *cache)
{
  return cache->pos;
}

BpTensor *
bp_model_forward_cached (BpModel *model, BpTensor *x, BpModelCache *cache)
{
  char sx[64];
  if (cache->model != model || x->ndim != 2 || x->shape[0] != cache->batch || x->shape[1] < 1) {
    bp_set_error (BP_ERR_INVALID, "model %s: tokens %s do not fit the cache (batch %lld)",
                  model->name, bp_shape_str (x, sx, sizeof sx), (long long) cache->batch);
    return NULL;
  }
  if (cache->pos + x->shape[1] > cache->max_len) {
    bp_set_error (BP_ERR_INVALID, "model %s: %lld positions are longer than the model's context "
                  "of %lld", model->name, (long long) (cache->pos + x->shape[1]),
                  (long long) cache->max_len);
    return NULL;
  }
  bool was = bp_set_grad_enabled (false);
  BpTensor *y = run_graph (model, x, cache);
  bp_set_grad_enabled (was);
  if (y) {
    cache->pos += x->shape[1];
  } else {
    /* layers before the failing one appended their keys: forget them */
    for (int k = 0; k < model->n_layers; k++)
      if (cache->kv[k])
        cache->kv[k]->len = cache->pos;
  }
  return y;
}

int
bp_model_parameters (BpModel *model, BpTensor ***params)
{
  int cap = 1;
  for (int k = 0; k < model->n_layers; k++)
    cap += 2 + model->layers[k].n_tensors;
  BpTensor **p = calloc ((size_t) cap, sizeof *p);
  int n = 0;
  for (int k = 0; k < model->n_layers; k++) {
    BpLayer *l = &model->layers[k];
    if (l->weight && !l->weight_tied)
      p[n++] = l->weight;
    if (l->bias)
      p[n++] = l->bias;
    for (int j = 0; j < l->n_tensors; j++)
      p[n++] = l->tensors[j].tensor;
  }
  *params = p;
  return n;
}

int64_t
bp_model_num_parameters (const BpModel *model)
{
  int64_t n = 0;
  for (int k = 0; k < model->n_layers; k++) {
    const BpLayer *l = &model->layers[k];
    if (l->weight && !l->weight_tied)
      n += l->weight->numel;
    if (l->bias)
      n += l->bias->numel;
    for (int j = 0; j < l->n_tensors; j++)
      n += l->tensors[j].tensor->numel;
  }
  return n;
}

int
bp_model_state (BpModel *model, BpNamedTensor **state)
{
  int cap = 1;
  for (int k = 0; k < model->n_layers; k++)
    cap += 4 + model->layers[k].n_tensors;
  BpNamedTensor *s = calloc ((size_t) cap, sizeof *s);
  int n = 0;
  for (int k = 0; k < model->n_layers; k++) {
    BpLayer *l = &model->layers[k];
    struct {
      const char *suffix;
      BpTensor *t;
    } items[] = {{"weight", l->weight},
                 {"bias", l->bias},
                 {"running_mean", l->running_mean},
                 {"running_var", l->running_var}};
    for (size_t j = 0; j < sizeof items / sizeof items[0]; j++) {
      if (!items[j].t)
        continue;
      snprintf (s[n].name, sizeof s[n].name, "%s.%s", l->spec.id, items[j].suffix);
      s[n].tensor = items[j].t;
      n++;
    }
    for (int j = 0; j < l->n_tensors; j++) {
      snprintf (s[n].name, sizeof s[n].name, "%s.%s", l->spec.id, l->tensors[j].name);
      s[n].tensor = l->tensors[j].tensor;
      n++;
    }
  }
  *state = s;
  return n;
}
