/* bp-nn.c: sequential models: shape inference, PyTorch default initialisation, forward pass. */
#include "bp-nn.h"

#include "bp-ops-eltwise.h"
#include "bp-ops-linear.h"
#include "bp-ops-norm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *kind_names[BP_LAYER_KIND_COUNT] = {
  [BP_LAYER_LINEAR] = "Linear",
  [BP_LAYER_CONV2D] = "Conv2d",
  [BP_LAYER_BATCHNORM1D] = "BatchNorm1d",
  [BP_LAYER_BATCHNORM2D] = "BatchNorm2d",
  [BP_LAYER_LAYERNORM] = "LayerNorm",
  [BP_LAYER_RELU] = "ReLU",
  [BP_LAYER_LEAKY_RELU] = "LeakyReLU",
  [BP_LAYER_GELU] = "GELU",
  [BP_LAYER_TANH] = "Tanh",
  [BP_LAYER_SIGMOID] = "Sigmoid",
  [BP_LAYER_MAXPOOL2D] = "MaxPool2d",
  [BP_LAYER_AVGPOOL2D] = "AvgPool2d",
  [BP_LAYER_ADAPTIVE_AVGPOOL2D] = "AdaptiveAvgPool2d",
  [BP_LAYER_DROPOUT] = "Dropout",
  [BP_LAYER_FLATTEN] = "Flatten",
};

const char *
bp_layer_kind_name (BpLayerKind kind)
{
  return kind >= 0 && kind < BP_LAYER_KIND_COUNT ? kind_names[kind] : "unknown";
}

int
bp_layer_kind_from_name (const char *name)
{
  for (int k = 0; k < BP_LAYER_KIND_COUNT; k++)
    if (strcmp (kind_names[k], name) == 0)
      return k;
  return -1;
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
    .output_size = {1, 1},
    .start_dim = 1,
  };
  if (kind == BP_LAYER_MAXPOOL2D || kind == BP_LAYER_AVGPOOL2D)
    s.stride[0] = s.stride[1] = 0; /* 0 = same as the kernel, PyTorch's stride=None */
  return s;
}

static int64_t
shape_numel (int ndim, const int64_t *shape)
{
  int64_t n = 1;
  for (int d = 0; d < ndim; d++)
    n *= shape[d];
  return n;
}

static BpTensor *
param_uniform (int ndim, const int64_t *shape, float bound, BpDevice device)
{
  BpTensor *t = bp_tensor_new (ndim, shape);
  if (!t)
    return NULL;
  bp_tensor_uniform (t, -bound, bound);
  t->requires_grad = true;
  if (device != BP_DEVICE_CPU) {
    BpTensor *d = bp_tensor_to (t, device);
    bp_tensor_unref (t);
    if (d)
      d->requires_grad = true;
    return d;
  }
  return t;
}

static BpTensor *
param_const (int64_t n, float value, bool requires_grad)
{
  BpTensor *t = bp_tensor_new (1, &n);
  if (!t)
    return NULL;
  bp_tensor_fill (t, value);
  t->requires_grad = requires_grad;
  return t;
}

#define LAYER_ERROR(idx, kind, ...)                                                           \
  do {                                                                                        \
    char msg_[256];                                                                           \
    snprintf (msg_, sizeof msg_, __VA_ARGS__);                                                \
    bp_set_error (BP_ERR_INVALID, "layer %d (%s): %s", (idx), bp_layer_kind_name (kind),     \
                  msg_);                                                                      \
    return false;                                                                             \
  } while (0)

/* Largest parameter tensor a layer may ask for: 2^31 floats (8 GiB). */
#define MAX_PARAM_NUMEL ((int64_t) 1 << 31)

static int64_t
pool_out (int64_t in, int k, int s, int p, int d)
{
  return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

/* Infers the layer's output shape from its input shape and creates its parameters. */
static bool
layer_build (BpLayer *l, int idx, int in_ndim, const int64_t *in_shape)
{
  BpLayerSpec *s = &l->spec;
  l->in_ndim = in_ndim;
  memcpy (l->in_shape, in_shape, sizeof (int64_t) * (size_t) in_ndim);
  l->out_ndim = in_ndim;
  memcpy (l->out_shape, in_shape, sizeof (int64_t) * (size_t) in_ndim);
  int64_t *out = l->out_shape;

  switch (s->kind) {
  case BP_LAYER_LINEAR: {
    int64_t in_f = in_shape[in_ndim - 1];
    if (s->out_features <= 0)
      LAYER_ERROR (idx, s->kind, "out_features must be positive, not %lld",
                   (long long) s->out_features);
    if (in_f * s->out_features > MAX_PARAM_NUMEL)
      LAYER_ERROR (idx, s->kind, "%lld x %lld weights is too many parameters", (long long) in_f,
                   (long long) s->out_features);
    out[in_ndim - 1] = s->out_features;
    float bound = 1.0f / sqrtf ((float) in_f);
    l->weight = param_uniform (2, (int64_t[]){s->out_features, in_f}, bound, BP_DEVICE_CPU);
    if (s->bias)
      l->bias = param_uniform (1, &s->out_features, bound, BP_DEVICE_CPU);
    break;
  }
  case BP_LAYER_CONV2D: {
    if (in_ndim != 3)
      LAYER_ERROR (idx, s->kind, "needs a (C,H,W) input, got %d dimensions", in_ndim);
    int64_t cin = in_shape[0];
    if (s->out_channels <= 0 || s->groups <= 0 || cin % s->groups || s->out_channels % s->groups)
      LAYER_ERROR (idx, s->kind, "in_channels %lld and out_channels %lld must be divisible by "
                   "groups %d", (long long) cin, (long long) s->out_channels, s->groups);
    for (int d = 0; d < 2; d++)
      if (s->kernel_size[d] <= 0 || s->stride[d] <= 0 || s->dilation[d] <= 0 || s->padding[d] < 0)
        LAYER_ERROR (idx, s->kind, "kernel_size, stride and dilation must be positive");
    int64_t fan_in = cin / s->groups * s->kernel_size[0] * s->kernel_size[1];
    if (fan_in * s->out_channels > MAX_PARAM_NUMEL)
      LAYER_ERROR (idx, s->kind, "too many parameters");
    out[0] = s->out_channels;
    for (int d = 0; d < 2; d++) {
      out[1 + d] = pool_out (in_shape[1 + d], s->kernel_size[d], s->stride[d], s->padding[d],
                             s->dilation[d]);
      if (out[1 + d] <= 0)
        LAYER_ERROR (idx, s->kind, "a %dx%d kernel does not fit the %lldx%lld input",
                     s->kernel_size[0], s->kernel_size[1], (long long) in_shape[1],
                     (long long) in_shape[2]);
    }
    float bound = 1.0f / sqrtf ((float) fan_in);
    l->weight = param_uniform (4, (int64_t[]){s->out_channels, cin / s->groups, s->kernel_size[0],
                                              s->kernel_size[1]},
                               bound, BP_DEVICE_CPU);
    if (s->bias)
      l->bias = param_uniform (1, &s->out_channels, bound, BP_DEVICE_CPU);
    break;
  }
  case BP_LAYER_BATCHNORM1D:
  case BP_LAYER_BATCHNORM2D: {
    int want = s->kind == BP_LAYER_BATCHNORM2D ? 3 : 1;
    if (in_ndim != want && !(s->kind == BP_LAYER_BATCHNORM1D && in_ndim == 2))
      LAYER_ERROR (idx, s->kind, "does not take a %d-dimensional input", in_ndim);
    int64_t c = in_shape[0];
    if (s->affine) {
      l->weight = param_const (c, 1.0f, true);
      l->bias = param_const (c, 0.0f, true);
    }
    l->running_mean = param_const (c, 0.0f, false);
    l->running_var = param_const (c, 1.0f, false);
    break;
  }
  case BP_LAYER_LAYERNORM: {
    int64_t c = in_shape[in_ndim - 1];
    if (s->affine) {
      l->weight = param_const (c, 1.0f, true);
      l->bias = param_const (c, 0.0f, true);
    }
    break;
  }
  case BP_LAYER_MAXPOOL2D:
  case BP_LAYER_AVGPOOL2D:
    if (in_ndim != 3)
      LAYER_ERROR (idx, s->kind, "needs a (C,H,W) input, got %d dimensions", in_ndim);
    for (int d = 0; d < 2; d++) {
      if (s->stride[d] == 0)
        s->stride[d] = s->kernel_size[d];
      if (s->kernel_size[d] <= 0 || s->stride[d] <= 0 || 2 * s->padding[d] > s->kernel_size[d])
        LAYER_ERROR (idx, s->kind, "bad kernel_size, stride or padding");
      out[1 + d] = pool_out (in_shape[1 + d], s->kernel_size[d], s->stride[d], s->padding[d], 1);
      if (out[1 + d] <= 0)
        LAYER_ERROR (idx, s->kind, "a %dx%d window does not fit the %lldx%lld input",
                     s->kernel_size[0], s->kernel_size[1], (long long) in_shape[1],
                     (long long) in_shape[2]);
    }
    break;
  case BP_LAYER_ADAPTIVE_AVGPOOL2D:
    if (in_ndim != 3)
      LAYER_ERROR (idx, s->kind, "needs a (C,H,W) input, got %d dimensions", in_ndim);
    if (s->output_size[0] <= 0 || s->output_size[1] <= 0)
      LAYER_ERROR (idx, s->kind, "output_size must be positive");
    out[1] = s->output_size[0];
    out[2] = s->output_size[1];
    break;
  case BP_LAYER_FLATTEN: {
    /* start_dim counts the batch dimension as 0, as in nn.Flatten */
    int sd = s->start_dim - 1;
    if (sd < 0 || sd >= in_ndim)
      LAYER_ERROR (idx, s->kind, "start_dim %d is outside the input", s->start_dim);
    out[sd] = shape_numel (in_ndim - sd, in_shape + sd);
    l->out_ndim = sd + 1;
    break;
  }
  case BP_LAYER_DROPOUT:
    if (!(s->p >= 0.0f && s->p < 1.0f))
      LAYER_ERROR (idx, s->kind, "p must be in [0, 1), not %g", (double) s->p);
    break;
  default:
    break;
  }
  if ((s->kind == BP_LAYER_LINEAR || s->kind == BP_LAYER_CONV2D) &&
      (!l->weight || (s->bias && !l->bias)))
    return false;
  return true;
}

BpModel *
bp_model_new (const char *name, int in_ndim, const int64_t *in_shape, int n_layers,
              const BpLayerSpec *specs)
{
  if (in_ndim < 1 || in_ndim > 4) {
    bp_set_error (BP_ERR_INVALID, "the model input has 1 to 4 dimensions, not %d", in_ndim);
    return NULL;
  }
  BpModel *m = calloc (1, sizeof *m);
  m->name = strdup (name ? name : "model");
  m->in_ndim = in_ndim;
  memcpy (m->in_shape, in_shape, sizeof (int64_t) * (size_t) in_ndim);
  m->layers = calloc ((size_t) (n_layers > 0 ? n_layers : 1), sizeof *m->layers);
  m->training = true;
  m->device = BP_DEVICE_CPU;
  int ndim = in_ndim;
  const int64_t *shape = in_shape;
  for (int k = 0; k < n_layers; k++) {
    m->layers[k].spec = specs[k];
    m->n_layers = k + 1;
    if (!layer_build (&m->layers[k], k, ndim, shape)) {
      bp_model_free (m);
      return NULL;
    }
    ndim = m->layers[k].out_ndim;
    shape = m->layers[k].out_shape;
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
  }
  free (model->layers);
  free (model->name);
  free (model);
}

void
bp_model_set_training (BpModel *model, bool training)
{
  model->training = training;
}

static BpTensor *
layer_forward (BpModel *m, BpLayer *l, BpTensor *x)
{
  BpLayerSpec *s = &l->spec;
  switch (s->kind) {
  case BP_LAYER_LINEAR:
    return bp_linear (x, l->weight, l->bias);
  case BP_LAYER_CONV2D: {
    BpConv2dParams p = bp_conv2d_params_default ();
    for (int d = 0; d < 2; d++) {
      p.stride[d] = s->stride[d];
      p.padding[d] = s->padding[d];
      p.dilation[d] = s->dilation[d];
    }
    p.groups = s->groups;
    return bp_conv2d (x, l->weight, l->bias, &p);
  }
  case BP_LAYER_BATCHNORM1D:
  case BP_LAYER_BATCHNORM2D:
    if (m->training)
      l->num_batches_tracked++;
    return bp_batch_norm (x, l->weight, l->bias, l->running_mean, l->running_var, m->training,
                          s->momentum, s->eps);
  case BP_LAYER_LAYERNORM:
    return bp_layer_norm (x, 1, l->weight, l->bias, s->eps);
  case BP_LAYER_RELU:
    return bp_relu (x);
  case BP_LAYER_LEAKY_RELU:
    return bp_leaky_relu (x, s->negative_slope);
  case BP_LAYER_GELU:
    return bp_gelu (x);
  case BP_LAYER_TANH:
    return bp_tanh (x);
  case BP_LAYER_SIGMOID:
    return bp_sigmoid (x);
  case BP_LAYER_MAXPOOL2D:
    return bp_max_pool2d (x, s->kernel_size, s->stride, s->padding);
  case BP_LAYER_AVGPOOL2D:
    return bp_avg_pool2d (x, s->kernel_size, s->stride, s->padding, s->count_include_pad);
  case BP_LAYER_ADAPTIVE_AVGPOOL2D:
    return bp_adaptive_avg_pool2d (x, s->output_size[0], s->output_size[1]);
  case BP_LAYER_DROPOUT:
    return bp_dropout (x, s->p, m->training);
  case BP_LAYER_FLATTEN:
    return bp_flatten (x, s->start_dim);
  default:
    bp_set_error (BP_ERR_UNSUPPORTED, "layer kind %d has no forward", s->kind);
    return NULL;
  }
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
  BpTensor *h = bp_tensor_ref (x);
  for (int k = 0; k < model->n_layers; k++) {
    BpTensor *next = layer_forward (model, &model->layers[k], h);
    bp_tensor_unref (h);
    if (!next)
      return NULL;
    h = next;
  }
  return h;
}

int
bp_model_parameters (BpModel *model, BpTensor ***params)
{
  BpTensor **p = calloc ((size_t) model->n_layers * 2 + 1, sizeof *p);
  int n = 0;
  for (int k = 0; k < model->n_layers; k++) {
    if (model->layers[k].weight)
      p[n++] = model->layers[k].weight;
    if (model->layers[k].bias)
      p[n++] = model->layers[k].bias;
  }
  *params = p;
  return n;
}

int64_t
bp_model_num_parameters (const BpModel *model)
{
  int64_t n = 0;
  for (int k = 0; k < model->n_layers; k++) {
    if (model->layers[k].weight)
      n += model->layers[k].weight->numel;
    if (model->layers[k].bias)
      n += model->layers[k].bias->numel;
  }
  return n;
}

int
bp_model_state (BpModel *model, BpNamedTensor **state)
{
  BpNamedTensor *s = calloc ((size_t) model->n_layers * 4 + 1, sizeof *s);
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
      snprintf (s[n].name, sizeof s[n].name, "layers.%d.%s", k, items[j].suffix);
      s[n].tensor = items[j].t;
      n++;
    }
  }
  *state = s;
  return n;
}
