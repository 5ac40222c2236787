/* data/bp-idx.c: IDX (MNIST format) reader and writer, plain or gzip, that checks the header
 * against the data before allocating and reads gzip data in growing chunks. */
#include "bp-idx.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

G_DEFINE_QUARK (bp-data-error-quark, bp_data_error)

/* gzip data is read in chunks: the buffer starts at this size and doubles up to what the
 * header declares, so a header that lies costs at most twice the data really present. */
#define FIRST_CHUNK ((size_t) 1 << 16)
/* gzread takes an unsigned int length. */
#define MAX_GZREAD ((size_t) 1 << 30)

size_t
bp_idx_type_size (BpIdxType type)
{
  switch (type) {
  case BP_IDX_U8: return 1;
  case BP_IDX_I8: return 1;
  case BP_IDX_I16: return 2;
  case BP_IDX_I32: return 4;
  case BP_IDX_F32: return 4;
  case BP_IDX_F64: return 8;
  }
  return 0;
}

const char *
bp_idx_type_name (BpIdxType type)
{
  switch (type) {
  case BP_IDX_U8: return "ubyte";
  case BP_IDX_I8: return "byte";
  case BP_IDX_I16: return "short";
  case BP_IDX_I32: return "int";
  case BP_IDX_F32: return "float";
  case BP_IDX_F64: return "double";
  }
  return "unknown";
}

/* An open IDX file: the gzip handle (zlib reads plain files transparently) and what the
 * messages need. */
typedef struct {
  gzFile gz;
  char *name;        /* display name for messages */
  gboolean plain;    /* not gzip: the file size tells how much data there is */
  int64_t file_size; /* bytes on disk */
} IdxFile;

static void G_GNUC_PRINTF (4, 5)
file_error (GError **error, BpDataError code, const IdxFile *f, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, BP_DATA_ERROR, code, "%s: %s", f->name, msg);
  g_free (msg);
}

/* A message for the gzip handle's error state, or NULL when there is none. */
static const char *
gz_problem (gzFile gz)
{
  int errnum = Z_OK;
  const char *msg = gzerror (gz, &errnum);
  if (errnum == Z_OK)
    return NULL;
  if (errnum == Z_ERRNO)
    return g_strerror (errno);
  return msg && *msg ? msg : "damaged gzip data";
}

static void
idx_close (IdxFile *f)
{
  if (f->gz)
    gzclose_r (f->gz);
  g_free (f->name);
  memset (f, 0, sizeof *f);
}

/* Reads up to n bytes; returns the count read, or -1 after setting error. A short count means
 * the end of the data. */
static int64_t
idx_read (IdxFile *f, void *dst, size_t n, GError **error)
{
  size_t have = 0;
  while (have < n) {
    size_t chunk = MIN (n - have, MAX_GZREAD);
    int r = gzread (f->gz, (char *) dst + have, (unsigned) chunk);
    if (r < 0) {
      file_error (error, BP_DATA_ERROR_FORMAT, f, "cannot read: %s", gz_problem (f->gz));
      return -1;
    }
    if (r == 0)
      break;
    have += (size_t) r;
  }
  return (int64_t) have;
}

/* Opens path and reads and checks the header into idx (data stays NULL). */
static gboolean
idx_open (const char *path, IdxFile *f, BpIdx *idx, GError **error)
{
  memset (f, 0, sizeof *f);
  memset (idx, 0, sizeof *idx);
  f->name = g_filename_display_name (path);

  int fd = g_open (path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) {
    int e = errno;
    file_error (error, e == ENOENT ? BP_DATA_ERROR_NOT_FOUND : BP_DATA_ERROR_IO, f,
                "cannot open: %s", g_strerror (e));
    return FALSE;
  }
  struct stat st;
  if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode)) {
    file_error (error, BP_DATA_ERROR_IO, f, "not a regular file");
    close (fd);
    return FALSE;
  }
  f->file_size = (int64_t) st.st_size;
  f->gz = gzdopen (fd, "rb");
  if (!f->gz) {
    file_error (error, BP_DATA_ERROR_NOMEM, f, "cannot open: out of memory");
    close (fd);
    return FALSE;
  }
  gzbuffer (f->gz, 256 * 1024);

  /* magic: 0x00 0x00 <type> <ndim> */
  guint8 magic[4];
  int64_t r = idx_read (f, magic, 4, error);
  if (r < 0)
    return FALSE;
  f->plain = gzdirect (f->gz);
  idx->compressed = !f->plain;
  if (r == 0) {
    file_error (error, BP_DATA_ERROR_FORMAT, f, "the file is empty");
    return FALSE;
  }
  if (r < 4) {
    file_error (error, BP_DATA_ERROR_FORMAT, f, "truncated header (%d of 4 magic bytes)", (int) r);
    return FALSE;
  }
  if (magic[0] != 0 || magic[1] != 0) {
    file_error (error, BP_DATA_ERROR_FORMAT, f,
                "not an IDX file (magic bytes %02x %02x %02x %02x, expected 00 00 <type> <ndim>)",
                magic[0], magic[1], magic[2], magic[3]);
    return FALSE;
  }
  idx->type = (BpIdxType) magic[2];
  size_t esize = bp_idx_type_size (idx->type);
  if (esize == 0) {
    file_error (error, BP_DATA_ERROR_FORMAT, f, "unknown IDX data type 0x%02x", magic[2]);
    return FALSE;
  }
  idx->ndim = magic[3];
  if (idx->ndim < 1 || idx->ndim > BP_IDX_MAX_DIMS) {
    file_error (error, BP_DATA_ERROR_FORMAT, f, "unsupported number of dimensions %d (1 to %d)",
                idx->ndim, BP_IDX_MAX_DIMS);
    return FALSE;
  }

  guint32 dims[BP_IDX_MAX_DIMS];
  r = idx_read (f, dims, (size_t) idx->ndim * 4, error);
  if (r < 0)
    return FALSE;
  if (r < idx->ndim * 4) {
    file_error (error, BP_DATA_ERROR_FORMAT, f, "truncated header (%d of %d dimension bytes)",
                (int) r, idx->ndim * 4);
    return FALSE;
  }
  /* The product is checked against the absurd limit before every step, so it never
   * overflows. Zero dimensions are refused first: they would hide an absurd one. */
  for (int d = 0; d < idx->ndim; d++) {
    idx->shape[d] = GUINT32_FROM_BE (dims[d]);
    if (idx->shape[d] == 0) {
      file_error (error, BP_DATA_ERROR_FORMAT, f, "dimension %d of the header is 0", d);
      return FALSE;
    }
  }
  int64_t bytes = (int64_t) esize;
  for (int d = 0; d < idx->ndim; d++) {
    if (bytes > BP_IDX_MAX_BYTES / idx->shape[d]) {
      GString *s = g_string_new (NULL);
      for (int k = 0; k < idx->ndim; k++)
        g_string_append_printf (s, "%s%u", k ? " x " : "", GUINT32_FROM_BE (dims[k]));
      file_error (error, BP_DATA_ERROR_FORMAT, f,
                  "absurd header: %s %s values is more than %lld GiB", s->str,
                  bp_idx_type_name (idx->type), (long long) (BP_IDX_MAX_BYTES >> 30));
      g_string_free (s, TRUE);
      return FALSE;
    }
    bytes *= idx->shape[d];
  }
  idx->file_count = idx->shape[0];
  idx->numel = bytes / (int64_t) esize;
  return TRUE;
}

static int64_t
header_bytes (const BpIdx *idx)
{
  return 4 + 4 * (int64_t) idx->ndim;
}

static void
swap_to_host (BpIdx *idx)
{
  size_t esize = bp_idx_type_size (idx->type);
  if (G_BYTE_ORDER == G_BIG_ENDIAN || esize == 1)
    return;
  if (esize == 2) {
    guint16 *p = idx->data;
    for (int64_t i = 0; i < idx->numel; i++)
      p[i] = GUINT16_FROM_BE (p[i]);
  } else if (esize == 4) {
    guint32 *p = idx->data;
    for (int64_t i = 0; i < idx->numel; i++)
      p[i] = GUINT32_FROM_BE (p[i]);
  } else {
    guint64 *p = idx->data;
    for (int64_t i = 0; i < idx->numel; i++)
      p[i] = GUINT64_FROM_BE (p[i]);
  }
}

BpIdx *
bp_idx_read_header (const char *path, GError **error)
{
  IdxFile f;
  BpIdx *idx = g_new0 (BpIdx, 1);
  gboolean ok = idx_open (path, &f, idx, error);
  idx_close (&f);
  if (!ok) {
    g_free (idx);
    return NULL;
  }
  return idx;
}

BpIdx *
bp_idx_read_limit (const char *path, int64_t limit, GError **error)
{
  IdxFile f;
  BpIdx *idx = g_new0 (BpIdx, 1);
  if (!idx_open (path, &f, idx, error))
    goto fail;

  size_t esize = bp_idx_type_size (idx->type);
  int64_t item_bytes = (idx->numel / idx->file_count) * (int64_t) esize;
  int64_t data_bytes = idx->file_count * item_bytes; /* what the header declares */
  int64_t count = limit > 0 ? MIN (limit, idx->file_count) : idx->file_count;
  size_t want = (size_t) (count * item_bytes);

  if (f.plain) {
    /* The file size says how much data there is: check it before allocating anything. */
    int64_t present = f.file_size - header_bytes (idx);
    if (present < data_bytes) {
      file_error (error, BP_DATA_ERROR_FORMAT, &f,
                  "truncated data: the header declares %lld items of %lld bytes (%lld bytes) "
                  "but only %lld bytes follow it",
                  (long long) idx->file_count, (long long) item_bytes, (long long) data_bytes,
                  (long long) present);
      goto fail;
    }
    if (present > data_bytes) {
      file_error (error, BP_DATA_ERROR_FORMAT, &f,
                  "the header declares %lld items of %lld bytes (%lld bytes) but %lld bytes "
                  "follow it: its dimensions do not match the data",
                  (long long) idx->file_count, (long long) item_bytes, (long long) data_bytes,
                  (long long) present);
      goto fail;
    }
    idx->data = g_try_malloc (want);
    if (!idx->data) {
      file_error (error, BP_DATA_ERROR_NOMEM, &f, "out of memory for %zu bytes", want);
      goto fail;
    }
    int64_t r = idx_read (&f, idx->data, want, error);
    if (r < 0)
      goto fail;
    if ((size_t) r < want) {
      file_error (error, BP_DATA_ERROR_IO, &f, "the file shrank while it was read");
      goto fail;
    }
  } else {
    /* gzip: the uncompressed size is known only by decompressing, so grow the buffer as the
     * data arrives and never beyond what the header declares. */
    size_t cap = MIN (want, FIRST_CHUNK), have = 0;
    idx->data = g_try_malloc (cap);
    if (!idx->data) {
      file_error (error, BP_DATA_ERROR_NOMEM, &f, "out of memory for %zu bytes", cap);
      goto fail;
    }
    while (have < want) {
      if (have == cap) {
        cap = MIN (want, cap * 2);
        void *grown = g_try_realloc (idx->data, cap);
        if (!grown) {
          file_error (error, BP_DATA_ERROR_NOMEM, &f, "out of memory for %zu bytes", cap);
          goto fail;
        }
        idx->data = grown;
      }
      int64_t r = idx_read (&f, (char *) idx->data + have, cap - have, error);
      if (r < 0)
        goto fail;
      have += (size_t) r;
      if (have < cap)
        break; /* end of the data */
    }
    if (have < want) {
      const char *why = gz_problem (f.gz);
      file_error (error, BP_DATA_ERROR_FORMAT, &f,
                  "truncated data: the header declares %lld items of %lld bytes (%lld bytes) "
                  "but the data ends after %zu bytes%s%s",
                  (long long) idx->file_count, (long long) item_bytes, (long long) data_bytes,
                  have, why ? ": " : "", why ? why : "");
      goto fail;
    }
    if (count == idx->file_count) {
      /* All of it was read: there must be nothing more, and the gzip trailer must check. */
      guint8 extra[4096];
      int64_t more = 0, r;
      while ((r = idx_read (&f, extra, sizeof extra, error)) > 0)
        more += r;
      if (r < 0)
        goto fail;
      if (more > 0) {
        file_error (error, BP_DATA_ERROR_FORMAT, &f,
                    "the header declares %lld items of %lld bytes (%lld bytes) but at least "
                    "%lld more bytes follow: its dimensions do not match the data",
                    (long long) idx->file_count, (long long) item_bytes, (long long) data_bytes,
                    (long long) more);
        goto fail;
      }
      const char *why = gz_problem (f.gz);
      if (why) {
        file_error (error, BP_DATA_ERROR_FORMAT, &f, "damaged or truncated gzip data: %s", why);
        goto fail;
      }
    }
  }
  idx->shape[0] = count;
  idx->numel = count * (item_bytes / (int64_t) esize);
  swap_to_host (idx);
  idx_close (&f);
  return idx;

fail:
  idx_close (&f);
  bp_idx_free (idx);
  return NULL;
}

BpIdx *
bp_idx_read (const char *path, GError **error)
{
  return bp_idx_read_limit (path, 0, error);
}

void
bp_idx_free (BpIdx *idx)
{
  if (!idx)
    return;
  g_free (idx->data);
  g_free (idx);
}

void
bp_idx_to_float (const BpIdx *idx, float *dst)
{
  int64_t n = idx->numel;
  switch (idx->type) {
  case BP_IDX_U8: {
    const guint8 *p = idx->data;
    for (int64_t i = 0; i < n; i++)
      dst[i] = (float) p[i];
    break;
  }
  case BP_IDX_I8: {
    const gint8 *p = idx->data;
    for (int64_t i = 0; i < n; i++)
      dst[i] = (float) p[i];
    break;
  }
  case BP_IDX_I16: {
    const gint16 *p = idx->data;
    for (int64_t i = 0; i < n; i++)
      dst[i] = (float) p[i];
    break;
  }
  case BP_IDX_I32: {
    const gint32 *p = idx->data;
    for (int64_t i = 0; i < n; i++)
      dst[i] = (float) p[i];
    break;
  }
  case BP_IDX_F32:
    memcpy (dst, idx->data, (size_t) n * sizeof (float));
    break;
  case BP_IDX_F64: {
    const double *p = idx->data;
    for (int64_t i = 0; i < n; i++)
      dst[i] = (float) p[i];
    break;
  }
  }
}

gboolean
bp_idx_write (const char *path, BpIdxType type, int ndim, const int64_t *shape,
              const void *data, gboolean compress, GError **error)
{
  char *name = g_filename_display_name (path);
  size_t esize = bp_idx_type_size (type);
  int64_t numel = 1;
  gboolean ok = FALSE;
  gzFile gz = NULL;
  guint8 *buf = NULL;

  if (esize == 0 || ndim < 1 || ndim > BP_IDX_MAX_DIMS) {
    g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID,
                 "%s: cannot write type 0x%02x with %d dimensions", name, (unsigned) type, ndim);
    goto out;
  }
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 1 || shape[d] > G_MAXUINT32 || numel > BP_IDX_MAX_BYTES / shape[d]) {
      g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID,
                   "%s: cannot write dimension %d of size %lld", name, d, (long long) shape[d]);
      goto out;
    }
    numel *= shape[d];
  }

  /* "T" writes a plain file through the same interface. */
  gz = gzopen (path, compress ? "wb6" : "wbT");
  if (!gz) {
    g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_IO, "%s: cannot create: %s", name,
                 g_strerror (errno));
    goto out;
  }
  guint8 header[4 + 4 * BP_IDX_MAX_DIMS] = {0, 0, (guint8) type, (guint8) ndim};
  for (int d = 0; d < ndim; d++) {
    guint32 be = GUINT32_TO_BE ((guint32) shape[d]);
    memcpy (header + 4 + 4 * d, &be, 4);
  }
  if (gzwrite (gz, header, (unsigned) (4 + 4 * ndim)) != 4 + 4 * ndim)
    goto write_failed;

  /* values in big-endian order, a chunk at a time */
  const size_t chunk_values = 65536;
  buf = g_malloc (chunk_values * esize);
  for (int64_t i = 0; i < numel; i += (int64_t) chunk_values) {
    size_t m = (size_t) MIN ((int64_t) chunk_values, numel - i);
    const guint8 *src = (const guint8 *) data + (size_t) i * esize;
    for (size_t k = 0; k < m; k++)
      for (size_t b = 0; b < esize; b++)
        buf[k * esize + b] = G_BYTE_ORDER == G_BIG_ENDIAN ? src[k * esize + b]
                                                          : src[k * esize + esize - 1 - b];
    if (gzwrite (gz, buf, (unsigned) (m * esize)) != (int) (m * esize))
      goto write_failed;
  }
  int rc = gzclose_w (gz);
  gz = NULL;
  if (rc != Z_OK) {
    g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_IO, "%s: cannot finish writing", name);
    goto out;
  }
  ok = TRUE;
  goto out;

write_failed:
  g_set_error (error, BP_DATA_ERROR, BP_DATA_ERROR_IO, "%s: cannot write: %s", name,
               gz_problem (gz) ? gz_problem (gz) : "unknown error");
out:
  if (gz)
    gzclose_w (gz);
  g_free (buf);
  g_free (name);
  return ok;
}
