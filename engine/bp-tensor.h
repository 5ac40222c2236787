/* bp-tensor.h: n-dimensional float32 tensors, status codes and the autograd tape. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BP_MAX_DIMS 6

typedef enum {
  BP_OK = 0,
  BP_ERR_INVALID,     /* a bad argument or impossible shape */
  BP_ERR_NOMEM,       /* an allocation failed */
  BP_ERR_IO,          /* reading or writing a file failed */
  BP_ERR_FORMAT,      /* a file's contents are malformed */
  BP_ERR_DEVICE,      /* the device (GPU, driver, library) failed */
  BP_ERR_UNSUPPORTED, /* the operation is not available on this backend */
  BP_ERR_NUMERIC,     /* NaN or infinity where a finite value is needed */
} BpStatus;

typedef enum {
  BP_DEVICE_CPU = 0,
  BP_DEVICE_CUDA = 1,
  BP_DEVICE_COUNT
} BpDevice;

const char *bp_status_name (BpStatus status);

/* The last error message of this thread: set by functions that return an error status. */
void bp_set_error (BpStatus status, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
const char *bp_last_error (void);
BpStatus bp_last_status (void);
void bp_clear_error (void);

typedef struct BpNode BpNode;

typedef struct BpTensor {
  int ndim;
  int64_t shape[BP_MAX_DIMS];
  int64_t numel;
  BpDevice device;
  float *data;        /* numel floats on `device` */
  float *grad;        /* NULL until a gradient flows into it */
  int refcount;
  bool requires_grad; /* leaf that wants a gradient, or output of a recorded op */
  BpNode *node;       /* the recorded op that produced it, NULL for leaves */
} BpTensor;

/* Creation: zero-filled. Returns NULL (and sets the error) on a bad shape or no memory. */
BpTensor *bp_tensor_new (int ndim, const int64_t *shape);
BpTensor *bp_tensor_new_on (BpDevice device, int ndim, const int64_t *shape);
BpTensor *bp_tensor_new_like (const BpTensor *t);
BpTensor *bp_tensor_from_data (int ndim, const int64_t *shape, const float *data);
BpTensor *bp_tensor_new_1d (int64_t a);
BpTensor *bp_tensor_new_2d (int64_t a, int64_t b);
BpTensor *bp_tensor_new_4d (int64_t a, int64_t b, int64_t c, int64_t d);
BpTensor *bp_tensor_ref (BpTensor *t);
void bp_tensor_unref (BpTensor *t);
/* Copies data (not the gradient) to a new tensor on `device`. */
BpTensor *bp_tensor_to (const BpTensor *t, BpDevice device);
/* Moves t's data (and gradient, if any) to `device` in place, so holders of the tensor (a
 * model's layers, an optimizer) keep their pointer. On failure t is unchanged. */
BpStatus bp_tensor_move_to (BpTensor *t, BpDevice device);

/* The gradient buffer, allocated and zeroed on first use. */
float *bp_tensor_grad (BpTensor *t);
void bp_tensor_zero_grad (BpTensor *t);
bool bp_tensor_same_shape (const BpTensor *a, const BpTensor *b);
/* Writes "[2, 3, 4]" into buf. */
const char *bp_shape_str (const BpTensor *t, char *buf, size_t len);
int64_t bp_shape_numel (int ndim, const int64_t *shape);

/* Fills (CPU tensors): uniform in [lo, hi), normal, constant. */
void bp_tensor_fill (BpTensor *t, float value);
void bp_tensor_uniform (BpTensor *t, float lo, float hi);
void bp_tensor_normal (BpTensor *t, float mean, float std);

/* ---- autograd tape ----
 * Ops record a node when gradients are enabled and any input requires a gradient.
 * bp_backward (loss) walks the tape of this thread in reverse; every recorded tensor
 * (inputs, intermediates, parameters) then holds its gradient in ->grad until
 * bp_tape_clear () drops the tape and the intermediates it kept alive. */
typedef void (*BpBackwardFunc) (BpNode *node);

#define BP_NODE_MAX_INPUTS 6

struct BpNode {
  const char *op;
  BpBackwardFunc backward;
  BpTensor *out;
  BpTensor *in[BP_NODE_MAX_INPUTS];
  int n_in;
  void *ctx;                  /* op-specific saved state */
  void (*ctx_free) (void *ctx);
  double f[8];                /* small saved scalars */
  int64_t i[8];               /* small saved integers */
};

bool bp_grad_enabled (void);
/* Returns the previous state. */
bool bp_set_grad_enabled (bool enabled);

/* ---- precision of the matrix products ----
 * With BP_PRECISION_BF16 the ops whose work is a matrix product (linear, matmul, conv2d, the
 * RNN layers, attention) round both operands of every product to bfloat16 (round to nearest
 * even) and accumulate in float32, forward and backward; everything else (elementwise,
 * norms, softmax, losses, optimizers) stays float32, and every tensor stays float32 (the
 * parameters are the float32 master weights). Like torch.autocast (dtype=torch.bfloat16), but
 * the products' outputs are not rounded (except cuDNN's convolutions on the GPU: doc/cuda.md).
 * A setting of the calling thread, like the grad mode; an op's backward uses the precision its
 * forward ran with. */
typedef enum {
  BP_PRECISION_FP32 = 0,
  BP_PRECISION_BF16,
} BpPrecision;

BpPrecision bp_get_precision (void);
/* Returns the previous setting. */
BpPrecision bp_set_precision (BpPrecision precision);
/* "float32" or "bfloat16". */
const char *bp_precision_name (BpPrecision precision);
/* "float32" / "fp32" and "bfloat16" / "bf16"; false for anything else. */
bool bp_precision_parse (const char *name, BpPrecision *precision);
/* Whether an op with these inputs should be recorded. */
bool bp_needs_grad (int n, BpTensor *const *inputs);
/* Records a node producing `out` from the inputs; takes references. Returns the node so the
 * op can fill ctx / f / i. */
BpNode *bp_tape_record (const char *op, BpBackwardFunc backward, BpTensor *out, int n_in,
                        BpTensor *const *inputs);
BpStatus bp_backward (BpTensor *loss);
/* Like bp_backward but seeds the output gradient with `grad_out` (same shape as out). */
BpStatus bp_backward_with (BpTensor *out, const float *grad_out);
void bp_tape_clear (void);
size_t bp_tape_length (void);

/* Accumulates `n` values of src into t's gradient, allocating it: helper for backwards. */
void bp_grad_accumulate (BpTensor *t, const float *src);
