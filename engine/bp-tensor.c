/* bp-tensor.c: tensor lifetime, thread-local error messages and the reverse-mode autograd tape. */
#include "bp-tensor.h"
#include "bp-backend.h"
#include "bp-device-step.h"
#include "bp-rng.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors ---- */

static _Thread_local char error_message[512];
static _Thread_local BpStatus error_status;

const char *
bp_status_name (BpStatus status)
{
  switch (status) {
  case BP_OK: return "ok";
  case BP_ERR_INVALID: return "invalid argument";
  case BP_ERR_NOMEM: return "out of memory";
  case BP_ERR_IO: return "input/output error";
  case BP_ERR_FORMAT: return "malformed data";
  case BP_ERR_DEVICE: return "device error";
  case BP_ERR_UNSUPPORTED: return "unsupported";
  case BP_ERR_NUMERIC: return "numeric error";
  }
  return "unknown error";
}

void
bp_set_error (BpStatus status, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (error_message, sizeof error_message, fmt, ap);
  va_end (ap);
  error_status = status;
}

const char *
bp_last_error (void)
{
  return error_message[0] ? error_message : bp_status_name (error_status);
}

BpStatus
bp_last_status (void)
{
  return error_status;
}

void
bp_clear_error (void)
{
  error_message[0] = '\0';
  error_status = BP_OK;
}

/* ---- tensors ---- */

int64_t
bp_shape_numel (int ndim, const int64_t *shape)
{
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 0 || (shape[d] > 0 && n > INT64_MAX / shape[d]))
      return -1;
    n *= shape[d];
  }
  return n;
}

BpTensor *
bp_tensor_new_on (BpDevice device, int ndim, const int64_t *shape)
{
  const BpBackend *be = bp_backend (device);
  if (!be) {
    bp_set_error (BP_ERR_DEVICE, "device %s is not available", bp_device_name (device));
    return NULL;
  }
  if (ndim < 0 || ndim > BP_MAX_DIMS) {
    bp_set_error (BP_ERR_INVALID, "a tensor has 0 to %d dimensions, not %d", BP_MAX_DIMS, ndim);
    return NULL;
  }
  int64_t numel = bp_shape_numel (ndim, shape);
  /* 2^40 floats (4 TiB) is far beyond any machine: treat it as a bad shape. */
  if (numel < 0 || numel > ((int64_t) 1 << 40)) {
    bp_set_error (BP_ERR_INVALID, "impossible tensor shape (negative or too large)");
    return NULL;
  }
  BpTensor *t = calloc (1, sizeof *t);
  if (!t) {
    bp_set_error (BP_ERR_NOMEM, "out of memory for a tensor header");
    return NULL;
  }
  t->ndim = ndim;
  for (int d = 0; d < ndim; d++)
    t->shape[d] = shape[d];
  t->numel = numel;
  t->device = device;
  t->refcount = 1;
  size_t bytes = (size_t) (numel > 0 ? numel : 1) * sizeof (float);
  t->data = be->alloc (bytes);
  if (!t->data) {
    free (t);
    return NULL;
  }
  be->fill (t->data, 0.0f, numel);
  return t;
}

BpTensor *
bp_tensor_new (int ndim, const int64_t *shape)
{
  return bp_tensor_new_on (BP_DEVICE_CPU, ndim, shape);
}

BpTensor *
bp_tensor_new_like (const BpTensor *t)
{
  return bp_tensor_new_on (t->device, t->ndim, t->shape);
}

BpTensor *
bp_tensor_from_data (int ndim, const int64_t *shape, const float *data)
{
  BpTensor *t = bp_tensor_new (ndim, shape);
  if (t && t->numel > 0)
    memcpy (t->data, data, (size_t) t->numel * sizeof (float));
  return t;
}

BpTensor *
bp_tensor_new_1d (int64_t a)
{
  return bp_tensor_new (1, (int64_t[]){a});
}

BpTensor *
bp_tensor_new_2d (int64_t a, int64_t b)
{
  return bp_tensor_new (2, (int64_t[]){a, b});
}

BpTensor *
bp_tensor_new_4d (int64_t a, int64_t b, int64_t c, int64_t d)
{
  return bp_tensor_new (4, (int64_t[]){a, b, c, d});
}

BpTensor *
bp_tensor_ref (BpTensor *t)
{
  if (t)
    t->refcount++;
  return t;
}

void
bp_tensor_unref (BpTensor *t)
{
  if (!t || --t->refcount > 0)
    return;
  const BpBackend *be = bp_backend (t->device);
  size_t bytes = (size_t) (t->numel > 0 ? t->numel : 1) * sizeof (float);
  if (be) {
    be->free (t->data, bytes);
    if (t->grad)
      be->free (t->grad, bytes);
  }
  free (t);
}

BpTensor *
bp_tensor_to (const BpTensor *t, BpDevice device)
{
  BpTensor *r = bp_tensor_new_on (device, t->ndim, t->shape);
  if (!r)
    return NULL;
  size_t bytes = (size_t) t->numel * sizeof (float);
  BpStatus s = BP_OK;
  if (t->device != device)
    bp_device_step_note ("a tensor is copied between host and device memory");
  if (t->device == device)
    s = bp_backend (device)->copy (r->data, t->data, bytes);
  else if (t->device == BP_DEVICE_CPU)
    s = bp_backend (device)->upload (r->data, t->data, bytes);
  else if (device == BP_DEVICE_CPU)
    s = bp_backend (t->device)->download (r->data, t->data, bytes);
  else
    s = BP_ERR_UNSUPPORTED;
  if (s != BP_OK) {
    bp_tensor_unref (r);
    return NULL;
  }
  return r;
}

BpStatus
bp_tensor_move_to (BpTensor *t, BpDevice device)
{
  if (t->device == device)
    return BP_OK;
  BpTensor *data = bp_tensor_to (t, device);
  if (!data)
    return bp_last_status () != BP_OK ? bp_last_status () : BP_ERR_DEVICE;
  BpTensor *grad = NULL;
  if (t->grad) {
    BpTensor view = *t;
    view.data = t->grad;
    grad = bp_tensor_to (&view, device);
    if (!grad) {
      bp_tensor_unref (data);
      return bp_last_status () != BP_OK ? bp_last_status () : BP_ERR_DEVICE;
    }
  }
  /* swap the storage: the old buffers leave with the temporary tensors */
  float *old = t->data, *old_grad = t->grad;
  BpDevice old_device = t->device;
  t->data = data->data;
  t->grad = grad ? grad->data : NULL;
  t->device = device;
  data->data = old;
  data->device = old_device;
  bp_tensor_unref (data);
  if (grad) {
    grad->data = old_grad;
    grad->device = old_device;
    bp_tensor_unref (grad);
  }
  return BP_OK;
}

float *
bp_tensor_grad (BpTensor *t)
{
  if (!t->grad) {
    const BpBackend *be = bp_backend (t->device);
    t->grad = be->alloc ((size_t) (t->numel > 0 ? t->numel : 1) * sizeof (float));
    if (t->grad)
      be->fill (t->grad, 0.0f, t->numel);
  }
  return t->grad;
}

void
bp_tensor_zero_grad (BpTensor *t)
{
  if (t->grad)
    bp_backend (t->device)->fill (t->grad, 0.0f, t->numel);
}

void
bp_grad_accumulate (BpTensor *t, const float *src)
{
  float *g = bp_tensor_grad (t);
  if (g)
    bp_backend (t->device)->axpy (t->numel, 1.0f, src, g);
}

bool
bp_tensor_same_shape (const BpTensor *a, const BpTensor *b)
{
  if (a->ndim != b->ndim)
    return false;
  for (int d = 0; d < a->ndim; d++)
    if (a->shape[d] != b->shape[d])
      return false;
  return true;
}

const char *
bp_shape_str (const BpTensor *t, char *buf, size_t len)
{
  size_t off = (size_t) snprintf (buf, len, "[");
  for (int d = 0; d < t->ndim && off < len; d++)
    off += (size_t) snprintf (buf + off, len - off, d ? ", %lld" : "%lld", (long long) t->shape[d]);
  if (off < len)
    snprintf (buf + off, len - off, "]");
  return buf;
}

void
bp_tensor_fill (BpTensor *t, float value)
{
  bp_backend (t->device)->fill (t->data, value, t->numel);
}

void
bp_tensor_uniform (BpTensor *t, float lo, float hi)
{
  for (int64_t i = 0; i < t->numel; i++)
    t->data[i] = lo + (hi - lo) * bp_rng_uniform ();
}

void
bp_tensor_normal (BpTensor *t, float mean, float std)
{
  for (int64_t i = 0; i < t->numel; i++)
    t->data[i] = mean + std * bp_rng_normal ();
}

/* ---- autograd tape ---- */

typedef struct {
  BpNode **nodes;
  size_t len, cap;
} BpTape;

static _Thread_local BpTape tape;
static _Thread_local bool grad_disabled;

/* A thread that ends frees its tape's node array (pthread key destructor), so worker threads
 * that train and exit leak nothing. */
static pthread_key_t tape_key;
static pthread_once_t tape_key_once = PTHREAD_ONCE_INIT;

static void
tape_array_free (void *nodes)
{
  free (nodes);
}

static void
tape_key_create (void)
{
  pthread_key_create (&tape_key, tape_array_free);
}

bool
bp_grad_enabled (void)
{
  return !grad_disabled;
}

bool
bp_set_grad_enabled (bool enabled)
{
  bool was = !grad_disabled;
  grad_disabled = !enabled;
  return was;
}

static _Thread_local BpPrecision precision_mode;

BpPrecision
bp_get_precision (void)
{
  return precision_mode;
}

BpPrecision
bp_set_precision (BpPrecision precision)
{
  BpPrecision was = precision_mode;
  precision_mode = precision == BP_PRECISION_BF16 ? BP_PRECISION_BF16 : BP_PRECISION_FP32;
  return was;
}

const char *
bp_precision_name (BpPrecision precision)
{
  return precision == BP_PRECISION_BF16 ? "bfloat16" : "float32";
}

bool
bp_precision_parse (const char *name, BpPrecision *precision)
{
  if (!name)
    return false;
  if (strcmp (name, "float32") == 0 || strcmp (name, "fp32") == 0) {
    *precision = BP_PRECISION_FP32;
    return true;
  }
  if (strcmp (name, "bfloat16") == 0 || strcmp (name, "bf16") == 0) {
    *precision = BP_PRECISION_BF16;
    return true;
  }
  return false;
}

bool
bp_needs_grad (int n, BpTensor *const *inputs)
{
  if (grad_disabled)
    return false;
  for (int k = 0; k < n; k++)
    if (inputs[k] && inputs[k]->requires_grad)
      return true;
  return false;
}

BpNode *
bp_tape_record (const char *op, BpBackwardFunc backward, BpTensor *out, int n_in,
                BpTensor *const *inputs)
{
  if (tape.len == tape.cap) {
    size_t cap = tape.cap ? tape.cap * 2 : 256;
    BpNode **nodes = realloc (tape.nodes, cap * sizeof *nodes);
    if (!nodes)
      abort (); /* the tape is tiny next to the tensors it describes */
    tape.nodes = nodes;
    tape.cap = cap;
    pthread_once (&tape_key_once, tape_key_create);
    pthread_setspecific (tape_key, nodes);
  }
  if (n_in > BP_NODE_MAX_INPUTS)
    abort (); /* a programming error: ops with more inputs keep the rest in ctx */
  BpNode *node = calloc (1, sizeof *node);
  if (!node)
    abort ();
  node->op = op;
  node->backward = backward;
  node->out = bp_tensor_ref (out);
  node->n_in = n_in;
  for (int k = 0; k < n_in; k++)
    node->in[k] = bp_tensor_ref (inputs[k]);
  out->requires_grad = true;
  out->node = node;
  tape.nodes[tape.len++] = node;
  return node;
}

size_t
bp_tape_length (void)
{
  return tape.len;
}

static BpStatus
run_backward (void)
{
  for (size_t k = tape.len; k-- > 0;) {
    BpNode *node = tape.nodes[k];
    if (!node->out->grad)
      continue; /* nothing flowed into this node */
    node->backward (node);
  }
  return BP_OK;
}

BpStatus
bp_backward (BpTensor *loss)
{
  if (loss->numel != 1) {
    bp_set_error (BP_ERR_INVALID, "backward needs a scalar loss, or use bp_backward_with");
    return BP_ERR_INVALID;
  }
  /* the seed is written on the loss's device: no upload, so a CUDA graph can hold it */
  float *g = bp_tensor_grad (loss);
  if (!g)
    return BP_ERR_NOMEM;
  bp_backend (loss->device)->fill (g, 1.0f, 1);
  return run_backward ();
}

BpStatus
bp_backward_with (BpTensor *out, const float *grad_out)
{
  float *g = bp_tensor_grad (out);
  if (!g)
    return BP_ERR_NOMEM;
  size_t bytes = (size_t) out->numel * sizeof (float);
  const BpBackend *be = bp_backend (out->device);
  bp_device_step_note ("the output gradient is copied from host memory");
  BpStatus s = out->device == BP_DEVICE_CPU ? be->copy (g, grad_out, bytes)
                                             : be->upload (g, grad_out, bytes);
  if (s != BP_OK)
    return s;
  return run_backward ();
}

void
bp_tape_clear (void)
{
  for (size_t k = tape.len; k-- > 0;) {
    BpNode *node = tape.nodes[k];
    node->out->node = NULL;
    bp_tensor_unref (node->out);
    for (int j = 0; j < node->n_in; j++)
      bp_tensor_unref (node->in[j]);
    if (node->ctx_free)
      node->ctx_free (node->ctx);
    free (node);
  }
  tape.len = 0;
  if (tape.cap > 4096) {
    free (tape.nodes);
    tape.nodes = NULL;
    tape.cap = 0;
    pthread_setspecific (tape_key, NULL);
  }
}
