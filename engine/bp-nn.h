/* bp-nn.h: layers with PyTorch's names and default initialisation, and models built from a
 * graph of layers: checks, shape inference, parameter counts and the forward pass. */
#pragma once

#include "bp-ops-conv.h"
#include "bp-tensor.h"

typedef enum {
  BP_LAYER_INPUT,
  BP_LAYER_CONV2D,
  BP_LAYER_MAXPOOL2D,
  BP_LAYER_AVGPOOL2D,
  BP_LAYER_ADAPTIVE_AVGPOOL2D,
  BP_LAYER_BATCHNORM1D,
  BP_LAYER_BATCHNORM2D,
  BP_LAYER_LAYERNORM,
  BP_LAYER_RELU,
  BP_LAYER_LEAKY_RELU,
  BP_LAYER_GELU,
  BP_LAYER_TANH,
  BP_LAYER_SIGMOID,
  BP_LAYER_LINEAR,
  BP_LAYER_DROPOUT,
  BP_LAYER_FLATTEN,
  BP_LAYER_ADD,
  BP_LAYER_CONCAT,
  BP_LAYER_OUTPUT,
  /* sequence layers (issue 7) */
  BP_LAYER_EMBEDDING,
  BP_LAYER_RNN,
  BP_LAYER_LSTM,
  BP_LAYER_GRU,
  BP_LAYER_MULTIHEAD_ATTENTION,
  BP_LAYER_POSITIONAL_ENCODING,
  BP_LAYER_TRANSFORMER_ENCODER_LAYER,
  BP_LAYER_TRANSFORMER_DECODER_LAYER,
  BP_LAYER_SEQUENCE_POOL,
  BP_LAYER_KIND_COUNT
} BpLayerKind;

/* The loss an Output node names (PyTorch class names). */
typedef enum {
  BP_LOSS_CROSS_ENTROPY, /* "CrossEntropyLoss": the output is (C) scores per example */
  BP_LOSS_MSE,           /* "MSELoss" */
  BP_LOSS_BCE_WITH_LOGITS, /* "BCEWithLogitsLoss" */
  BP_LOSS_COUNT
} BpLossKind;

const char *bp_loss_name (BpLossKind loss);
int bp_loss_from_name (const char *name); /* -1 if unknown */

/* The PyTorch class name of a layer kind ("Conv2d"), and the kind of a name (-1 if unknown,
 * also for the planned layers that the engine cannot build yet). */
const char *bp_layer_kind_name (BpLayerKind kind);
int bp_layer_kind_from_name (const char *name);

#define BP_LAYER_ID_MAX 32     /* characters in a node id */
#define BP_LAYER_MAX_INPUTS 16 /* inputs of one node (Add, Concat) */
#define BP_LAYER_MAX_DIMS 4    /* dimensions of one example (the batch dimension not counted) */

/* One example's shape; ndim 0 means unknown. vocab > 0 marks token ids in [0, vocab) (an
 * Input with vocab_size, read by Embedding). */
typedef struct {
  int ndim;
  int64_t d[BP_LAYER_MAX_DIMS];
  int64_t vocab;
} BpShape;

/* Choices of the string-valued parameters, stored as ints. */
typedef enum { BP_NONLINEARITY_TANH, BP_NONLINEARITY_RELU } BpNonlinearity;
typedef enum { BP_ENCODING_SINUSOIDAL, BP_ENCODING_LEARNED } BpEncoding;
typedef enum { BP_POOL_LAST, BP_POOL_MEAN, BP_POOL_FIRST } BpPoolMode;
typedef enum { BP_FF_RELU, BP_FF_GELU } BpFeedForwardActivation;

/* The weight initialisation of Linear and Conv2d (their "init"), as torch.nn.init with
 * fan_in = weight.size (1) * kernel area and fan_out = weight.size (0) * kernel area. The bias
 * keeps PyTorch's default U(-1/sqrt (fan_in), 1/sqrt (fan_in)) except with zeros. */
typedef enum {
  BP_INIT_DEFAULT,         /* PyTorch's reset_parameters: kaiming_uniform_ (a=sqrt (5)),
                            * U(-1/sqrt (fan_in), 1/sqrt (fan_in)) */
  BP_INIT_KAIMING_UNIFORM, /* kaiming_uniform_ (nonlinearity="relu"): U(-b, b),
                            * b = sqrt (6/fan_in) */
  BP_INIT_KAIMING_NORMAL,  /* kaiming_normal_ (nonlinearity="relu"): N(0, std² = 2/fan_in) */
  BP_INIT_XAVIER_UNIFORM,  /* xavier_uniform_: U(-b, b), b = sqrt (6/(fan_in + fan_out)) */
  BP_INIT_XAVIER_NORMAL,   /* xavier_normal_: N(0, std² = 2/(fan_in + fan_out)) */
  BP_INIT_NORMAL,          /* normal_ (std=init_std): N(0, init_std²) */
  BP_INIT_ZEROS,           /* zeros_: weight and bias all 0 (no symmetry breaking) */
  BP_INIT_COUNT
} BpInit;

/* One node of a model graph: its id, its kind, the ids of its inputs (in order) and its
 * hyper-parameters as in PyTorch's constructors. Which kind reads which field is in the
 * parameter table (bp_layer_types). Sizes marked "0 = inferred" come from the input. */
typedef struct {
  BpLayerKind kind;
  char id[BP_LAYER_ID_MAX + 1];
  int n_inputs;
  char inputs[BP_LAYER_MAX_INPUTS][BP_LAYER_ID_MAX + 1];
  BpShape shape;            /* Input: one example's shape */
  BpShape normalized_shape; /* LayerNorm; ndim 0 = the last input dimension */
  int64_t in_features;      /* Linear; 0 = inferred */
  int64_t out_features;     /* Linear */
  int64_t in_channels;      /* Conv2d; 0 = inferred */
  int64_t out_channels;     /* Conv2d */
  int64_t num_features;     /* BatchNorm; 0 = inferred */
  int kernel_size[2];       /* Conv2d, pools */
  int stride[2];            /* Conv2d (default 1), pools (0 = the kernel size, PyTorch's None) */
  int padding[2];
  int dilation[2];
  int64_t groups;
  bool bias;                /* Linear, Conv2d */
  bool affine;              /* BatchNorm affine, LayerNorm elementwise_affine */
  bool count_include_pad;   /* AvgPool2d */
  float eps, momentum;      /* norms */
  float p;                  /* Dropout */
  float negative_slope;     /* LeakyReLU */
  int output_size[2];       /* AdaptiveAvgPool2d */
  int64_t start_dim;        /* Flatten (default 1: the batch dimension is 0, as in PyTorch) */
  int64_t end_dim;          /* Flatten (default -1) */
  int64_t dim;              /* Concat (default 1: channels) */
  int loss;                 /* Output: a BpLossKind */
  /* sequence layers */
  int64_t vocab_size;       /* Input: token ids in [0, vocab_size) (0: not tokens) */
  int64_t num_embeddings;   /* Embedding; 0 = inferred from the Input's vocab_size */
  int64_t embedding_dim;    /* Embedding */
  int init;                 /* Linear, Conv2d: the weight initialisation, a BpInit */
  float init_std;           /* Embedding: initial N(0, init_std) (PyTorch: 1); Linear, Conv2d:
                             * the std of init normal (nn.init.normal_'s default: 1) */
  int64_t input_size;       /* RNN, LSTM, GRU; 0 = inferred */
  int64_t hidden_size;      /* RNN, LSTM, GRU */
  int64_t num_layers;       /* RNN, LSTM, GRU (default 1) */
  int nonlinearity;         /* RNN: a BpNonlinearity */
  bool bidirectional;       /* RNN, LSTM, GRU */
  float dropout;            /* RNN/LSTM/GRU between layers, attention weights, Transformer
                             * layers (default 0, Transformer layers 0.1) */
  int64_t embed_dim;        /* MultiheadAttention; 0 = inferred */
  int64_t num_heads;        /* MultiheadAttention (nhead of the Transformer layers) */
  bool causal;              /* MultiheadAttention, Transformer layers: a causal mask */
  bool rope;                /* MultiheadAttention, Transformer layers: rotary positions (RoPE)
                             * on the self-attention's queries and keys */
  int encoding;             /* PositionalEncoding: a BpEncoding */
  int64_t max_len;          /* PositionalEncoding: the longest sequence (the context) */
  int64_t d_model;          /* Transformer layers; 0 = inferred */
  int64_t dim_feedforward;  /* Transformer layers (default 2048) */
  int activation;           /* Transformer layers: a BpFeedForwardActivation */
  float layer_norm_eps;     /* Transformer layers (default 1e-5) */
  bool norm_first;          /* Transformer layers: pre-norm */
  int mode;                 /* SequencePool: a BpPoolMode */
  char tied_to[BP_LAYER_ID_MAX + 1]; /* Linear: the Embedding whose weight it shares, "" none */
} BpLayerSpec;

/* PyTorch's defaults for a kind (id and inputs empty). */
BpLayerSpec bp_layer_spec_default (BpLayerKind kind);

/* ---- the layer and parameter tables (the builder's palette and inspector use them) ---- */

typedef enum {
  BP_PARAM_INT,   /* int64_t */
  BP_PARAM_PAIR,  /* int[2]: an integer, or [h, w] */
  BP_PARAM_FLOAT, /* float */
  BP_PARAM_BOOL,  /* bool */
  BP_PARAM_SHAPE, /* BpShape: an integer or a list of 1 to 4 integers */
  BP_PARAM_LOSS,  /* int: a BpLossKind, written as its class name */
  BP_PARAM_CHOICE, /* int: an index into the parameter's choices, written as the string */
  BP_PARAM_NODE,  /* char[BP_LAYER_ID_MAX + 1]: a node id, "" for none */
} BpParamType;

enum {
  BP_PARAM_REQUIRED = 1 << 0,   /* no default: the spec must give it */
  BP_PARAM_INFERRED = 1 << 1,   /* optional: 0 (or no dims) = taken from the input */
  BP_PARAM_NONE_ZERO = 1 << 2,  /* 0 stands for PyTorch's None (pools' stride) */
  BP_PARAM_MIN_OPEN = 1 << 3,   /* the value must be above min, not equal */
  BP_PARAM_MAX_OPEN = 1 << 4,   /* the value must be below max, not equal */
  BP_PARAM_POSITIONAL = 1 << 5, /* written positionally in PyTorch code */
};

typedef struct {
  const char *name; /* PyTorch's keyword */
  BpParamType type;
  unsigned flags;
  size_t offset;    /* of the value in BpLayerSpec */
  double min, max;  /* allowed values (pairs and shapes: each element) */
  const char *help; /* one line, English */
  const char *const *choices; /* BP_PARAM_CHOICE: the names, NULL-terminated */
} BpParamInfo;

typedef struct {
  const char *name;     /* PyTorch class name: "Conv2d" */
  int kind;             /* a BpLayerKind, or -1 for a planned layer */
  const char *group;    /* palette group: "input", "convolution", "pooling", "normalisation",
                         * "activation", "recurrent", "attention", "dense", "regularisation",
                         * "reshape", "merge", "output" */
  int min_inputs, max_inputs;
  const char *help;     /* one line, English */
  int n_params;
  const BpParamInfo *params;
} BpLayerType;

/* Every layer type, the planned ones (kind -1) included, in palette order. */
const BpLayerType *bp_layer_types (int *n);
/* The type of a class name, planned ones included; NULL if unknown. */
const BpLayerType *bp_layer_type_find (const char *name);
const BpLayerType *bp_layer_kind_type (BpLayerKind kind);
const BpParamInfo *bp_layer_param_find (const BpLayerType *type, const char *name);

/* Whether a parameter belongs in a written spec: required ones always, the others when they
 * differ from PyTorch's default (inferred ones: when given). */
bool bp_param_is_set (const BpLayerSpec *spec, const BpParamInfo *param);
/* Writes a parameter's value as JSON ("[3, 3]", "true", "\"MSELoss\"") or, with python set,
 * as Python ("(3, 3)", "True"); pairs of equal values as one integer. */
void bp_param_format (const BpLayerSpec *spec, const BpParamInfo *param, bool python, char *buf,
                      size_t len);
/* The shortest text that reads back as the same float ("1e-05", "0.5"). */
void bp_float_format (float v, char *buf, size_t len);

/* ---- checking a graph ---- */

/* What checking found out about one node. */
typedef struct {
  BpShape out;          /* one example's output shape; ndim 0 where unknown (an error here
                         * or upstream) */
  int64_t n_params;     /* parameters it creates (known once its input shape is) */
  int n_inputs;
  int inputs[BP_LAYER_MAX_INPUTS]; /* the inputs' node indices, -1 where the id is unknown */
  char error[256];      /* why the node cannot be built (without its name); "" when fine */
  int check;            /* which check found it (internal: orders the errors) */
} BpLayerInfo;

typedef struct {
  int n;
  BpLayerInfo *layers; /* per node, in the given order */
  int n_order;
  int *order;          /* the nodes outside cycles in topological order (stable: a graph given
                        * in topological order keeps its order) */
  int input, output;   /* the Input and Output nodes, -1 where there is none */
  int64_t n_params;    /* total */
  int n_errors;        /* node errors and graph errors */
  char error[512];     /* the first error, naming the node ("node \"conv1\" (Conv2d): ..."),
                        * "" when the graph can be built; errors that are likely causes (bad
                        * values, references) come before their consequences (unused nodes) */
} BpGraphInfo;

/* Checks a graph of n nodes without allocating any parameter: ids, input references, one
 * Input and one Output, cycles, parameter values, shapes (inferred in topological order),
 * sizes (refusing absurd ones), and that every node leads to the Output. node_errors, which
 * may be NULL, holds errors found earlier (while reading a spec) per node, NULL where none;
 * such a node counts as broken. Never fails: free the result with bp_graph_info_free. */
BpGraphInfo *bp_graph_check (int n, const BpLayerSpec *specs, const char *const *node_errors);
void bp_graph_info_free (BpGraphInfo *info);

/* ---- models ---- */

/* A parameter or buffer of a layer beyond weight and bias (an RNN's weight_ih_l0, a
 * Transformer layer's self_attn.in_proj_weight), named as in the PyTorch module. */
#define BP_LAYER_MAX_TENSORS 48
typedef struct {
  char name[40];    /* the state_dict name after "<id>." */
  BpTensor *tensor;
} BpLayerTensor;

typedef struct {
  BpLayerSpec spec;
  int n_inputs;
  int inputs[BP_LAYER_MAX_INPUTS];      /* indices of earlier layers in model->layers */
  int n_uses;                           /* how many inputs of later layers read this one */
  BpTensor *weight, *bias;              /* NULL where the layer has none */
  BpTensor *running_mean, *running_var; /* batch norm buffers */
  int64_t num_batches_tracked;
  bool weight_tied;                     /* weight is another layer's (Linear tied_to) */
  int n_tensors;                        /* further parameters, in PyTorch's order */
  BpLayerTensor tensors[BP_LAYER_MAX_TENSORS];
  BpTensor *table;                      /* PositionalEncoding sinusoidal: the (max_len, E)
                                         * table (a buffer outside the state) */
  int64_t n_params;
  int in_ndim, out_ndim;                /* one example's shapes (without the batch); the input */
  int64_t in_shape[4], out_shape[4];    /* is the first input's */
} BpLayer;

typedef struct {
  char *name;
  char *description; /* NULL when none */
  int n_layers;
  BpLayer *layers;   /* in topological order: the Input first, the Output last */
  int in_ndim;
  int64_t in_shape[4]; /* one example's shape, e.g. 1x28x28 */
  int out_ndim;
  int64_t out_shape[4];
  BpLossKind loss;   /* the Output node's */
  bool training;
  BpDevice device;
  char capture_id[BP_LAYER_ID_MAX + 1]; /* bp_model_capture_attention */
  int capture_mode;
  BpTensor *captured;
} BpModel;

/* Builds a model from a graph of n nodes (any order), inferring every layer's input size and
 * initialising parameters as PyTorch does (from the engine RNG). On a graph that cannot be
 * built returns NULL with an error naming the node (id and type) and why (bp_graph_check's
 * first error); nothing is allocated for a graph that fails the checks. */
BpModel *bp_model_new (const char *name, int n, const BpLayerSpec *specs);
void bp_model_free (BpModel *model);
void bp_model_set_training (BpModel *model, bool training);
/* The layer with this node id, NULL if none. */
BpLayer *bp_model_find (BpModel *model, const char *id);
/* x (N, *in_shape) -> the Output node's input (logits); records on the tape when gradients
 * are enabled. */
BpTensor *bp_model_forward (BpModel *model, BpTensor *x);

/* Trainable parameters in PyTorch's order (the exported module's parameters ()); the array is
 * owned by the caller (free ()), the tensors by the model. */
int bp_model_parameters (BpModel *model, BpTensor ***params);
int64_t bp_model_num_parameters (const BpModel *model);

/* Named state (parameters and buffers) with the PyTorch state_dict names of the exported
 * module: "<node id>.weight", "<node id>.running_mean", ... for checkpoints and export.
 * num_batches_tracked is not a float tensor and is kept apart (BpLayer). */
typedef struct {
  char name[96];
  BpTensor *tensor;
} BpNamedTensor;
/* A tied weight (Linear tied_to) appears under both names, as in PyTorch's state_dict, and
 * once in bp_model_parameters. */
int bp_model_state (BpModel *model, BpNamedTensor **state);

/* Moves every parameter, buffer and table of the model to a device (in place, gradients
 * included) and records it in model->device. */
BpStatus bp_model_to_device (BpModel *model, BpDevice device);
/* The device the model's parameters are on (model->device, or where its first state tensor
 * lives when they were moved one by one). */
BpDevice bp_model_data_device (const BpModel *model);

/* ---- sequence models ---- */

/* The model's vocabulary (its Input's vocab_size; 0 when it does not read tokens) and context
 * (the smallest PositionalEncoding max_len, or the Input's length when it has none). */
int64_t bp_model_vocab_size (const BpModel *model);
int64_t bp_model_context_length (const BpModel *model);

/* Incremental decoding of a causal model (Input tokens, Embedding, PositionalEncoding,
 * causal MultiheadAttention and TransformerEncoderLayer nodes, position-wise layers): a KV
 * cache per attention node and the position reached. */
typedef struct BpModelCache BpModelCache;
BpModelCache *bp_model_cache_new (BpModel *model, int64_t batch);
void bp_model_cache_free (BpModelCache *cache);
void bp_model_cache_reset (BpModelCache *cache);
int64_t bp_model_cache_position (const BpModelCache *cache);
/* x (B, n) the next n tokens -> the Output node's input for them (B, n, ...), without autograd,
 * the same values as the full forward's rows (tested); a model with a node that cannot decode
 * incrementally, or more positions than the context, is an error. */
BpTensor *bp_model_forward_cached (BpModel *model, BpTensor *x, BpModelCache *cache);

/* The attention weights of one attention node (MultiheadAttention or Transformer layer) in the
 * last bp_model_forward, when asked for before it with bp_model_capture_attention (model,
 * "id", mode) (mode 1: per head (B,H,T,T), 2: averaged (B,T,T); NULL id stops). The model
 * owns the tensor (valid until the next forward). */
void bp_model_capture_attention (BpModel *model, const char *id, int mode);
BpTensor *bp_model_attention (BpModel *model);
