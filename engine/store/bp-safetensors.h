/* bp-safetensors.h: reading and writing checkpoints in the safetensors format (named tensors
 * plus string metadata), validated before anything is allocated and written atomically. */
#pragma once

#include <glib.h>

#include "bp-nn.h"
#include "bp-tensor.h"

G_BEGIN_DECLS

#define BP_SAFETENSORS_ERROR (bp_safetensors_error_quark ())
GQuark bp_safetensors_error_quark (void);

typedef enum {
  BP_SAFETENSORS_ERROR_IO,          /* the file cannot be opened, read, written or renamed */
  BP_SAFETENSORS_ERROR_FORMAT,      /* the file is not valid safetensors */
  BP_SAFETENSORS_ERROR_UNSUPPORTED, /* valid, but a dtype or rank this program cannot load */
  BP_SAFETENSORS_ERROR_INVALID,     /* bad arguments to the writer (names, metadata) */
  BP_SAFETENSORS_ERROR_NOMEM,       /* a tensor could not be allocated */
} BpSafetensorsError;

/* Largest header the reader accepts (the format's own limit). */
#define BP_SAFETENSORS_MAX_HEADER 100000000

/* Writes n tensors (float32, any device: non-CPU tensors are copied to the CPU one at a time)
 * under the given names, plus metadata (str -> str, may be NULL), as `path`. The header lists
 * "__metadata__" first (keys sorted), then the tensors in the order given, with contiguous
 * data offsets in that order; it is padded with spaces to a multiple of 8 bytes.
 * The file is written to a temporary file in the same folder (".NAME.tmp-XXXXXX"), flushed
 * with fsync and renamed over `path`, so `path` is either the old file or the complete new
 * one, never a partial write. Names must be non-empty UTF-8, unique, and not "__metadata__". */
gboolean bp_safetensors_save (const char *path, int n, const char *const *names,
                              BpTensor *const *tensors, GHashTable *metadata, GError **error);

/* The same for a model's named state (bp_model_state). */
gboolean bp_safetensors_save_state (const char *path, int n, const BpNamedTensor *state,
                                    GHashTable *metadata, GError **error);

/* A loaded file: tensors on the CPU in data-offset order, and the metadata. */
typedef struct {
  int n;
  char **names;          /* n names */
  BpTensor **tensors;    /* n float32 CPU tensors, one reference each held by this struct */
  GHashTable *metadata;  /* str -> str, never NULL (empty without "__metadata__") */
} BpSafetensors;

/* Reads a file. F32 is read as is; F64, F16 and BF16 are converted to float32. The header is
 * checked completely (length, JSON, dtypes, shapes, offsets: in range, contiguous, matching
 * the shape, covering the data exactly; unique names) before any tensor is allocated; every
 * problem is a GError that names the file and what is wrong. */
BpSafetensors *bp_safetensors_load (const char *path, GError **error);
void bp_safetensors_free (BpSafetensors *st);
/* The tensor called `name` (borrowed), or NULL. */
BpTensor *bp_safetensors_get (const BpSafetensors *st, const char *name);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (BpSafetensors, bp_safetensors_free)

G_END_DECLS
