/* bp-idx.h: reading and writing IDX files (the MNIST file format), plain or gzip-compressed,
 * and the error domain of the data layer.
 *
 * An IDX file is a 4-byte magic (0x00 0x00 <type> <ndim>), ndim big-endian uint32 dimensions,
 * then the values in row-major order, big-endian. The reader accepts a plain or a gzip file
 * (told apart by the gzip magic bytes) and checks every claim of the header against the data
 * that is actually there before it allocates: a truncated file, a header whose dimensions do
 * not match the data, a wrong magic, an unknown type, zero or absurd dimensions and an empty
 * or missing file all give a GError (domain BP_DATA_ERROR) whose message starts with the file
 * name. gzip data is decompressed in growing chunks, so a lying header never makes the reader
 * allocate much more than the data that is present. */
#pragma once

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

/* Errors of the data layer (IDX files, data sets, loaders). */
#define BP_DATA_ERROR (bp_data_error_quark ())
GQuark bp_data_error_quark (void);

typedef enum {
  BP_DATA_ERROR_NOT_FOUND, /* a file or an installed data set is missing */
  BP_DATA_ERROR_IO,        /* reading or writing failed */
  BP_DATA_ERROR_FORMAT,    /* a file's contents are malformed (header, truncation, gzip) */
  BP_DATA_ERROR_MISMATCH,  /* two files that belong together disagree (image / label counts) */
  BP_DATA_ERROR_INVALID,   /* a bad argument (unknown data set, bad split, bad batch size) */
  BP_DATA_ERROR_NOMEM,     /* the data does not fit in memory */
} BpDataError;

/* IDX value types (the third magic byte). */
typedef enum {
  BP_IDX_U8 = 0x08,  /* unsigned byte */
  BP_IDX_I8 = 0x09,  /* signed byte */
  BP_IDX_I16 = 0x0B, /* short, 2 bytes */
  BP_IDX_I32 = 0x0C, /* int, 4 bytes */
  BP_IDX_F32 = 0x0D, /* float, 4 bytes */
  BP_IDX_F64 = 0x0E, /* double, 8 bytes */
} BpIdxType;

/* The reader accepts 1 to BP_IDX_MAX_DIMS dimensions. */
#define BP_IDX_MAX_DIMS 8
/* Files whose header declares more data than this (64 GiB) are refused as absurd. */
#define BP_IDX_MAX_BYTES ((int64_t) 1 << 36)

/* Bytes per value of a type, 0 for an unknown type. */
size_t bp_idx_type_size (BpIdxType type);
/* "ubyte", "byte", "short", "int", "float", "double" or "unknown". */
const char *bp_idx_type_name (BpIdxType type);

typedef struct {
  BpIdxType type;
  int ndim;
  int64_t shape[BP_IDX_MAX_DIMS]; /* as loaded: shape[0] is below file_count with a limit */
  int64_t file_count;             /* shape[0] as the file's header declares it */
  int64_t numel;                  /* product of shape: the number of values in data */
  gboolean compressed;            /* the file was gzip-compressed */
  void *data;                     /* numel values of `type` in host byte order; NULL from
                                   * bp_idx_read_header */
} BpIdx;

/* Reads a whole IDX file. The data must match the header exactly: missing or extra bytes
 * are an error. Returns NULL and sets error on failure. Free with bp_idx_free. */
BpIdx *bp_idx_read (const char *path, GError **error);

/* Reads only the first min (limit, count) items along dimension 0 (limit <= 0: all of them).
 * A plain file is still checked against its full size; a gzip file is checked only as far as
 * it is read (decompressing the rest just to check it would defeat the limit). */
BpIdx *bp_idx_read_limit (const char *path, int64_t limit, GError **error);

/* Reads and checks only the header (type, shape, compressed); data stays NULL. */
BpIdx *bp_idx_read_header (const char *path, GError **error);

void bp_idx_free (BpIdx *idx);

/* Converts all numel values to float (dst holds numel floats). */
void bp_idx_to_float (const BpIdx *idx, float *dst);

/* Writes an IDX file: data holds prod (shape) values of `type` in host byte order. With
 * compress the file is gzip-compressed (the reader does not care about the file name). */
gboolean bp_idx_write (const char *path, BpIdxType type, int ndim, const int64_t *shape,
                       const void *data, gboolean compress, GError **error);

G_END_DECLS
