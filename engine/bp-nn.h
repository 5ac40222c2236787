/* bp-nn.h: layers with PyTorch's names and default initialisation, and sequential models. */
#pragma once

#include "bp-ops-conv.h"
#include "bp-tensor.h"

typedef enum {
  BP_LAYER_LINEAR,
  BP_LAYER_CONV2D,
  BP_LAYER_BATCHNORM1D,
  BP_LAYER_BATCHNORM2D,
  BP_LAYER_LAYERNORM,
  BP_LAYER_RELU,
  BP_LAYER_LEAKY_RELU,
  BP_LAYER_GELU,
  BP_LAYER_TANH,
  BP_LAYER_SIGMOID,
  BP_LAYER_MAXPOOL2D,
  BP_LAYER_AVGPOOL2D,
  BP_LAYER_ADAPTIVE_AVGPOOL2D,
  BP_LAYER_DROPOUT,
  BP_LAYER_FLATTEN,
  BP_LAYER_KIND_COUNT
} BpLayerKind;

/* The PyTorch class name of a layer kind ("Conv2d"), and the kind of a name (-1 if unknown). */
const char *bp_layer_kind_name (BpLayerKind kind);
int bp_layer_kind_from_name (const char *name);

/* One layer's hyper-parameters, as in PyTorch's constructors. Sizes of the input are inferred
 * from the previous layer's output shape when the model is built. */
typedef struct {
  BpLayerKind kind;
  int64_t out_features;   /* Linear */
  int64_t out_channels;   /* Conv2d */
  int kernel_size[2];     /* Conv2d, pools */
  int stride[2];          /* Conv2d (default 1), pools (default = kernel) */
  int padding[2];
  int dilation[2];
  int groups;
  bool bias;              /* Linear, Conv2d */
  bool affine;            /* norms */
  bool count_include_pad; /* AvgPool2d */
  float eps, momentum;    /* norms */
  float p;                /* Dropout */
  float negative_slope;   /* LeakyReLU */
  int output_size[2];     /* AdaptiveAvgPool2d */
  int start_dim;          /* Flatten (default 1) */
} BpLayerSpec;

/* PyTorch's defaults for a kind. */
BpLayerSpec bp_layer_spec_default (BpLayerKind kind);

typedef struct {
  BpLayerSpec spec;
  BpTensor *weight, *bias;              /* NULL where the layer has none */
  BpTensor *running_mean, *running_var; /* batch norm buffers */
  int64_t num_batches_tracked;
  int in_ndim, out_ndim;                /* one example's shape (without the batch) */
  int64_t in_shape[4], out_shape[4];
} BpLayer;

typedef struct {
  char *name;
  int n_layers;
  BpLayer *layers;
  int in_ndim;
  int64_t in_shape[4]; /* one example's shape, e.g. 1x28x28 */
  bool training;
  BpDevice device;
} BpModel;

/* Builds a model from layer specs for inputs of one example's shape, inferring every layer's
 * input size and initialising parameters as PyTorch does (from the engine RNG). On a spec that
 * cannot be built returns NULL with an error naming the layer (index and type) and why. */
BpModel *bp_model_new (const char *name, int in_ndim, const int64_t *in_shape, int n_layers,
                       const BpLayerSpec *specs);
void bp_model_free (BpModel *model);
void bp_model_set_training (BpModel *model, bool training);
/* x (N, *in_shape) -> logits; records on the tape when gradients are enabled. */
BpTensor *bp_model_forward (BpModel *model, BpTensor *x);

/* Trainable parameters in PyTorch's order; the array is owned by the caller (free ()),
 * the tensors by the model. */
int bp_model_parameters (BpModel *model, BpTensor ***params);
int64_t bp_model_num_parameters (const BpModel *model);

/* Named state (parameters and buffers) with PyTorch state_dict names "layers.3.weight",
 * "layers.1.running_mean", ... for checkpoints and export. num_batches_tracked is not a float
 * tensor and is kept apart. */
typedef struct {
  char name[48];
  BpTensor *tensor;
} BpNamedTensor;
int bp_model_state (BpModel *model, BpNamedTensor **state);
