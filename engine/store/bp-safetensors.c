/* store/bp-safetensors.c: safetensors checkpoints: u64 little-endian header length, a JSON
 * header, then the raw little-endian tensor data. Atomic writes, fully validated reads. */
#include "bp-safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

G_DEFINE_QUARK (bp-safetensors-error-quark, bp_safetensors_error)

/* ---- writing ---- */

/* Appends s as a JSON string literal. */
static void
append_json_string (GString *out, const char *s)
{
  g_string_append_c (out, '"');
  for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
    switch (*p) {
    case '"': g_string_append (out, "\\\""); break;
    case '\\': g_string_append (out, "\\\\"); break;
    case '\n': g_string_append (out, "\\n"); break;
    case '\r': g_string_append (out, "\\r"); break;
    case '\t': g_string_append (out, "\\t"); break;
    default:
      if (*p < 0x20)
        g_string_append_printf (out, "\\u%04x", *p);
      else
        g_string_append_c (out, (char) *p);
    }
  }
  g_string_append_c (out, '"');
}

static gboolean
write_all (int fd, const void *buf, size_t len)
{
  const char *p = buf;
  while (len > 0) {
    ssize_t w = write (fd, p, len > (1u << 30) ? (1u << 30) : len);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return FALSE;
    p += w;
    len -= (size_t) w;
  }
  return TRUE;
}

/* Writes n floats little-endian. */
static gboolean
write_floats (int fd, const float *data, int64_t n)
{
#if G_BYTE_ORDER == G_LITTLE_ENDIAN
  return write_all (fd, data, (size_t) n * sizeof (float));
#else
  guint32 buf[4096];
  for (int64_t i = 0; i < n; i += 4096) {
    int64_t m = MIN (4096, n - i);
    for (int64_t k = 0; k < m; k++) {
      guint32 u;
      memcpy (&u, data + i + k, 4);
      buf[k] = GUINT32_TO_LE (u);
    }
    if (!write_all (fd, buf, (size_t) m * 4))
      return FALSE;
  }
  return TRUE;
#endif
}

/* Makes the rename of a file in `dir` durable. Failure only loses durability, not atomicity. */
static void
fsync_dir (const char *dir)
{
  int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    fsync (fd);
    close (fd);
  }
}

static int
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* The header JSON, padded with spaces to a multiple of 8, or NULL after setting the error. */
static GString *
build_header (const char *path, int n, const char *const *names, BpTensor *const *tensors,
              GHashTable *metadata, GError **error)
{
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  for (int k = 0; k < n; k++) {
    const char *name = names[k];
    if (!name || !name[0] || !g_utf8_validate (name, -1, NULL) || !strcmp (name, "__metadata__")) {
      g_set_error (error, BP_SAFETENSORS_ERROR, BP_SAFETENSORS_ERROR_INVALID,
                   "%s: tensor %d has an empty, non-UTF-8 or reserved name", path, k);
      return NULL;
    }
    if (!g_hash_table_add (seen, (gpointer) name)) {
      g_set_error (error, BP_SAFETENSORS_ERROR, BP_SAFETENSORS_ERROR_INVALID,
                   "%s: two tensors are named \"%s\"", path, name);
      return NULL;
    }
    if (!tensors[k]) {
      g_set_error (error, BP_SAFETENSORS_ERROR, BP_SAFETENSORS_ERROR_INVALID,
                   "%s: tensor \"%s\" is NULL", path, name);
      return NULL;
    }
  }

  GString *h = g_string_new ("{");
  gboolean first = TRUE;
  if (metadata && g_hash_table_size (metadata) > 0) {
    g_autofree gpointer *keys = g_hash_table_get_keys_as_array (metadata, NULL);
    guint nk = g_hash_table_size (metadata);
    qsort (keys, nk, sizeof *keys, compare_strings);
    g_string_append (h, "\"__metadata__\":{");
    for (guint i = 0; i < nk; i++) {
      const char *v = g_hash_table_lookup (metadata, keys[i]);
      if (!v || !g_utf8_validate (keys[i], -1, NULL) || !g_utf8_validate (v, -1, NULL)) {
        g_set_error (error, BP_SAFETENSORS_ERROR, BP_SAFETENSORS_ERROR_INVALID,
                     "%s: metadata key or value is NULL or not UTF-8", path);
        g_string_free (h, TRUE);
        return NULL;
      }
      if (i > 0)
        g_string_append_c (h, ',');
      append_json_string (h, keys[i]);
      g_string_append_c (h, ':');
      append_json_string (h, v);
    }
    g_string_append_c (h, '}');
    first = FALSE;
  }
  guint64 offset = 0;
  for (int k = 0; k < n; k++) {
    const BpTensor *t = tensors[k];
    guint64 bytes = (guint64) t->numel * sizeof (float);
    if (!first)
      g_string_append_c (h, ',');
    first = FALSE;
    append_json_string (h, names[k]);
    g_string_append (h, ":{\"dtype\":\"F32\",\"shape\":[");
    for (int d = 0; d < t->ndim; d++)
      g_string_append_printf (h, d ? ",%" G_GINT64_FORMAT : "%" G_GINT64_FORMAT, t->shape[d]);
    g_string_append_printf (h, "],\"data_offsets\":[%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT "]}",
                            offset, offset + bytes);
    offset += bytes;
  }
  g_string_append_c (h, '}');
  while (h->len % 8)
    g_string_append_c (h, ' ');
  if (h->len > BP_SAFETENSORS_MAX_HEADER) {
    g_set_error (error, BP_SAFETENSORS_ERROR, BP_SAFETENSORS_ERROR_INVALID,
                 "%s: the header would be %zu bytes, more than the format's limit of %d", path,
                 h->len, BP_SAFETENSORS_MAX_HEADER);
    g_string_free (h, TRUE);
    return NULL;
  }
  return h;
}

gboolean
bp_safetensors_save (const char *path, int n, const char *const *names, BpTensor *const *tensors,
                     GHashTable *metadata, GError **error)
{
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (n >= 0, FALSE);
  g_return_val_if_fail (n == 0 || (names && tensors), FALSE);

  g_autofree char *display = g_filename_display_name (path);
  GString *header = build_header (display, n, names, tensors, metadata, error);
  if (!header)
    return FALSE;

  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *base = g_path_get_basename (path);
  g_autofree char *tmp_name = g_strdup_printf (".%s.tmp-XXXXXX", base);
  g_autofree char *tmp = g_build_filename (dir, tmp_name, NULL);
  int fd = g_mkstemp_full (tmp, O_RDWR | O_CLOEXEC, 0666);
  if (fd < 0) {
    int e = errno;
    g_set_error (error, BP_SAFETENSORS_ERROR, BP_SAFETENSORS_ERROR_IO,
                 "%s: cannot create a temporary file in %s: %s", display, dir, g_strerror (e));
    g_string_free (header, TRUE);
    return FALSE;
  }

  gboolean ok = TRUE;
  const char *what = "write";
  guint64 len_le = GUINT64_TO_LE ((guint64) header->len);
  ok = write_all (fd, &len_le, 8) && write_all (fd, header->str, header->len);
  g_string_free (header, TRUE);
  for (int k = 0; ok && k < n; k++) {
    BpTensor *t = tensors[k];
    if (t->numel == 0)
      continue;
    if (t->device == BP_DEVICE_CPU) {
      ok = write_floats (fd, t->data, t->numel);
    } else {
      BpTensor *c = bp_tensor_to (t, BP_DEVICE_CPU);
      if (!c) {
        g_set_error (error, BP_SAFETENSORS_ERROR, BP_SAFETENSORS_ERROR_IO,
                     "%s: cannot copy tensor \"%s\" to the CPU: %s", display, names[k],
                     bp_last_error ());
        close (fd);
        g_unlink (tmp);
        return FALSE;
      }
      ok = write_floats (fd, c->data, c->numel);
      bp_tensor_unref (c);
    }
  }
  if (ok) {
    what = "flush";
    ok = fsync (fd) == 0;
  }
  int e = errno;
  if (close (fd) != 0 && ok) {
    e = errno;
    what = "close";
    ok = FALSE;
  }
  if (ok && g_rename (tmp, path) != 0) {
    e = errno;
    what = "rename the temporary file to";
    ok = FALSE;
  }
  if (!ok) {
    g_set_error (error, BP_SAFETENSORS_ERROR, BP_SAFETENSORS_ERROR_IO, "cannot %s %s: %s", what,
                 display, g_strerror (e));
    g_unlink (tmp);
    return FALSE;
  }
  fsync_dir (dir);
  return TRUE;
}

gboolean
bp_safetensors_save_state (const char *path, int n, const BpNamedTensor *state,
                           GHashTable *metadata, GError **error)
{
  g_return_val_if_fail (n == 0 || state != NULL, FALSE);
  g_autofree const char **names = g_new (const char *, MAX (n, 1));
  g_autofree BpTensor **tensors = g_new (BpTensor *, MAX (n, 1));
  for (int k = 0; k < n; k++) {
    names[k] = state[k].name;
    tensors[k] = state[k].tensor;
  }
  return bp_safetensors_save (path, n, names, tensors, metadata, error);
}

/* ---- reading ---- */

typedef enum { DT_F32, DT_F64, DT_F16, DT_BF16 } Dtype;

typedef struct {
  const char *name;   /* borrowed from the parsed JSON */
  Dtype dtype;
  int ndim;
  int64_t shape[BP_MAX_DIMS];
  guint64 begin, end;
} Entry;

static int
itemsize (Dtype d)
{
  return d == DT_F64 ? 8 : d == DT_F32 ? 4 : 2;
}

static float
half_to_float (guint16 h)
{
  guint32 sign = (guint32) (h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp == 0) {
    float f = ldexpf ((float) mant, -24); /* zero or subnormal */
    return sign ? -f : f;
  }
  guint32 bits = exp == 31 ? sign | 0x7f800000u | (mant << 13)
                           : sign | ((exp + 112) << 23) | (mant << 13);
  float f;
  memcpy (&f, &bits, 4);
  return f;
}

/* Converts n little-endian values of dtype d in src to float. */
static void
convert (float *out, const guint8 *src, size_t n, Dtype d)
{
  for (size_t i = 0; i < n; i++) {
    switch (d) {
    case DT_F32: {
      guint32 u;
      memcpy (&u, src + 4 * i, 4);
      u = GUINT32_FROM_LE (u);
      memcpy (out + i, &u, 4);
      break;
    }
    case DT_F64: {
      guint64 u;
      double v;
      memcpy (&u, src + 8 * i, 8);
      u = GUINT64_FROM_LE (u);
      memcpy (&v, &u, 8);
      out[i] = (float) v;
      break;
    }
    case DT_F16: {
      guint16 u;
      memcpy (&u, src + 2 * i, 2);
      out[i] = half_to_float (GUINT16_FROM_LE (u));
      break;
    }
    case DT_BF16: {
      guint16 u;
      memcpy (&u, src + 2 * i, 2);
      guint32 bits = (guint32) GUINT16_FROM_LE (u) << 16;
      memcpy (out + i, &bits, 4);
      break;
    }
    }
  }
}

static gboolean
read_all (FILE *f, void *buf, size_t len)
{
  return len == 0 || fread (buf, 1, len, f) == len;
}

/* json-glib keeps the last of duplicate keys silently: remember every (object, key) pair as
 * it is parsed and note the first key seen twice. */
typedef struct {
  GHashTable *pairs;
  char *duplicate;
} DupCheck;

static void
on_object_member (JsonParser *parser, JsonObject *object, const char *member, gpointer user)
{
  DupCheck *dc = user;
  char *key = g_strdup_printf ("%p/%s", (void *) object, member);
  if (!g_hash_table_add (dc->pairs, key) && !dc->duplicate)
    dc->duplicate = g_strdup (member);
}

static gboolean
json_int (JsonNode *n, gint64 *out)
{
  if (!n || !JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_INT64)
    return FALSE;
  *out = json_node_get_int (n);
  return TRUE;
}

static int
compare_entries (const void *a, const void *b)
{
  const Entry *x = a, *y = b;
  if (x->begin != y->begin)
    return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end)
    return x->end < y->end ? -1 : 1;
  return 0;
}

#define FAIL(code, ...)                                                                            \
  do {                                                                                             \
    g_autofree char *msg_ = g_strdup_printf (__VA_ARGS__);                                         \
    g_set_error (error, BP_SAFETENSORS_ERROR, code, "%s: %s", display, msg_);                      \
    goto fail;                                                                                     \
  } while (0)

/* Parses and checks one tensor entry of the header. */
static gboolean
parse_entry (const char *display, const char *name, JsonNode *node, guint64 data_len, Entry *e,
             GError **error)
{
  e->name = name;
  if (!JSON_NODE_HOLDS_OBJECT (node))
    FAIL (BP_SAFETENSORS_ERROR_FORMAT, "tensor \"%s\" is not a JSON object", name);
  JsonObject *o = json_node_get_object (node);
  JsonNode *dn = json_object_get_member (o, "dtype");
  const char *dtype = dn && JSON_NODE_HOLDS_VALUE (dn) && json_node_get_value_type (dn) == G_TYPE_STRING
                          ? json_node_get_string (dn)
                          : NULL;
  if (!dtype)
    FAIL (BP_SAFETENSORS_ERROR_FORMAT, "tensor \"%s\" has no \"dtype\" string", name);
  if (!strcmp (dtype, "F32"))
    e->dtype = DT_F32;
  else if (!strcmp (dtype, "F64"))
    e->dtype = DT_F64;
  else if (!strcmp (dtype, "F16"))
    e->dtype = DT_F16;
  else if (!strcmp (dtype, "BF16"))
    e->dtype = DT_BF16;
  else
    FAIL (BP_SAFETENSORS_ERROR_UNSUPPORTED,
          "tensor \"%s\" has dtype \"%s\"; this program reads F32, F64, F16 and BF16", name, dtype);

  JsonNode *sn = json_object_get_member (o, "shape");
  if (!sn || !JSON_NODE_HOLDS_ARRAY (sn))
    FAIL (BP_SAFETENSORS_ERROR_FORMAT, "tensor \"%s\" has no \"shape\" array", name);
  JsonArray *sa = json_node_get_array (sn);
  guint ndim = json_array_get_length (sa);
  if (ndim > BP_MAX_DIMS)
    FAIL (BP_SAFETENSORS_ERROR_UNSUPPORTED, "tensor \"%s\" has %u dimensions; at most %d are supported",
          name, ndim, BP_MAX_DIMS);
  e->ndim = (int) ndim;
  guint64 numel = 1;
  gboolean overflow = FALSE;
  for (guint d = 0; d < ndim; d++) {
    gint64 v;
    if (!json_int (json_array_get_element (sa, d), &v))
      FAIL (BP_SAFETENSORS_ERROR_FORMAT, "tensor \"%s\": shape element %u is not an integer", name, d);
    if (v < 0)
      FAIL (BP_SAFETENSORS_ERROR_FORMAT, "tensor \"%s\" has a negative dimension (%" G_GINT64_FORMAT ")",
            name, v);
    e->shape[d] = v;
    if (v > 0 && numel > G_MAXUINT64 / 8 / (guint64) v)
      overflow = TRUE;
    else
      numel *= (guint64) v;
  }

  JsonNode *on = json_object_get_member (o, "data_offsets");
  JsonArray *oa = on && JSON_NODE_HOLDS_ARRAY (on) ? json_node_get_array (on) : NULL;
  gint64 begin, end;
  if (!oa || json_array_get_length (oa) != 2 || !json_int (json_array_get_element (oa, 0), &begin) ||
      !json_int (json_array_get_element (oa, 1), &end))
    FAIL (BP_SAFETENSORS_ERROR_FORMAT, "tensor \"%s\" has no \"data_offsets\" pair of integers", name);
  if (begin < 0 || end < begin)
    FAIL (BP_SAFETENSORS_ERROR_FORMAT,
          "tensor \"%s\" has impossible data offsets [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT "]", name,
          begin, end);
  if ((guint64) end > data_len)
    FAIL (BP_SAFETENSORS_ERROR_FORMAT,
          "tensor \"%s\" ends at byte %" G_GINT64_FORMAT " of the data, beyond its %" G_GUINT64_FORMAT
          " bytes", name, end, data_len);
  if (overflow || (guint64) (end - begin) != numel * (guint64) itemsize (e->dtype))
    FAIL (BP_SAFETENSORS_ERROR_FORMAT,
          "tensor \"%s\": data offsets [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT "] hold %" G_GINT64_FORMAT
          " bytes, but the shape and dtype %s need %s%" G_GUINT64_FORMAT, name, begin, end, end - begin,
          dtype, overflow ? "more than " : "", overflow ? G_MAXUINT64 / 8 : numel * (guint64) itemsize (e->dtype));
  e->begin = (guint64) begin;
  e->end = (guint64) end;
  return TRUE;
fail:
  return FALSE;
}

BpSafetensors *
bp_safetensors_load (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);

  g_autofree char *display = g_filename_display_name (path);
  g_autofree char *header = NULL;
  g_autofree Entry *entries = NULL;
  g_autofree guint8 *buf = NULL;
  g_autoptr (JsonParser) parser = NULL;
  g_autoptr (GError) jerr = NULL;
  g_autoptr (GList) members = NULL;
  DupCheck dc = {g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL), NULL};
  BpSafetensors *st = NULL;

  FILE *f = g_fopen (path, "rb");
  if (!f) {
    int e = errno;
    g_set_error (error, BP_SAFETENSORS_ERROR, BP_SAFETENSORS_ERROR_IO, "cannot open %s: %s", display,
                 g_strerror (e));
    g_hash_table_unref (dc.pairs);
    return NULL;
  }
  GStatBuf sb;
  if (fstat (fileno (f), &sb) != 0 || !S_ISREG (sb.st_mode))
    FAIL (BP_SAFETENSORS_ERROR_IO, "not a regular file");
  guint64 file_size = (guint64) sb.st_size;

  /* header length: within the limit and the file, before reading it */
  guint64 n_le;
  if (file_size < 8 || !read_all (f, &n_le, 8))
    FAIL (BP_SAFETENSORS_ERROR_FORMAT, "the file is %" G_GUINT64_FORMAT " bytes long, too short for "
          "a safetensors header", file_size);
  guint64 hlen = GUINT64_FROM_LE (n_le);
  if (hlen > BP_SAFETENSORS_MAX_HEADER)
    FAIL (BP_SAFETENSORS_ERROR_FORMAT, "header length %" G_GUINT64_FORMAT " is larger than the "
          "format's limit of %d bytes", hlen, BP_SAFETENSORS_MAX_HEADER);
  if (hlen > file_size - 8)
    FAIL (BP_SAFETENSORS_ERROR_FORMAT, "header length %" G_GUINT64_FORMAT " goes beyond the end of "
          "the file (%" G_GUINT64_FORMAT " bytes)", hlen, file_size);
  if (hlen < 2)
    FAIL (BP_SAFETENSORS_ERROR_FORMAT, "header length %" G_GUINT64_FORMAT " is too short for a JSON "
          "object", hlen);
  guint64 data_len = file_size - 8 - hlen;

  header = g_malloc (hlen + 1);
  if (!read_all (f, header, hlen))
    FAIL (BP_SAFETENSORS_ERROR_IO, "cannot read the header");
  header[hlen] = '\0';
  if (!g_utf8_validate (header, (gssize) hlen, NULL))
    FAIL (BP_SAFETENSORS_ERROR_FORMAT, "the header is not UTF-8 text");

  parser = json_parser_new ();
  g_signal_connect (parser, "object-member", G_CALLBACK (on_object_member), &dc);
  if (!json_parser_load_from_data (parser, header, (gssize) hlen, &jerr))
    FAIL (BP_SAFETENSORS_ERROR_FORMAT, "the header is not valid JSON: %s", jerr->message);
  if (dc.duplicate)
    FAIL (BP_SAFETENSORS_ERROR_FORMAT, "the header has the key \"%s\" twice", dc.duplicate);
  JsonNode *root = json_parser_get_root (parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root))
    FAIL (BP_SAFETENSORS_ERROR_FORMAT, "the header is not a JSON object");
  JsonObject *ro = json_node_get_object (root);

  /* every entry: dtype, shape, offsets against the shape and the data length */
  members = json_object_get_members (ro);
  guint n_members = json_object_get_size (ro);
  entries = g_new0 (Entry, MAX (n_members, 1));
  int n = 0;
  JsonObject *meta = NULL;
  for (GList *l = members; l; l = l->next) {
    const char *name = l->data;
    JsonNode *node = json_object_get_member (ro, name);
    if (!strcmp (name, "__metadata__")) {
      if (!JSON_NODE_HOLDS_OBJECT (node))
        FAIL (BP_SAFETENSORS_ERROR_FORMAT, "\"__metadata__\" is not a JSON object");
      meta = json_node_get_object (node);
      g_autoptr (GList) keys = json_object_get_members (meta);
      for (GList *k = keys; k; k = k->next) {
        JsonNode *v = json_object_get_member (meta, k->data);
        if (!JSON_NODE_HOLDS_VALUE (v) || json_node_get_value_type (v) != G_TYPE_STRING)
          FAIL (BP_SAFETENSORS_ERROR_FORMAT, "metadata \"%s\" is not a string", (char *) k->data);
      }
      continue;
    }
    if (!parse_entry (display, name, node, data_len, &entries[n], error))
      goto fail;
    n++;
  }

  /* the data regions tile the data exactly: sorted, no overlap, no gap, nothing after */
  qsort (entries, (size_t) n, sizeof *entries, compare_entries);
  guint64 pos = 0;
  for (int k = 0; k < n; k++) {
    if (entries[k].begin < pos)
      FAIL (BP_SAFETENSORS_ERROR_FORMAT, "tensor \"%s\" overlaps tensor \"%s\" in the data",
            entries[k].name, entries[k - 1].name);
    if (entries[k].begin > pos)
      FAIL (BP_SAFETENSORS_ERROR_FORMAT, "tensor \"%s\" starts at byte %" G_GUINT64_FORMAT " of the "
            "data, leaving a gap after byte %" G_GUINT64_FORMAT, entries[k].name, entries[k].begin, pos);
    pos = entries[k].end;
  }
  if (pos != data_len)
    FAIL (BP_SAFETENSORS_ERROR_FORMAT, "the tensors cover %" G_GUINT64_FORMAT " bytes of data but the "
          "file holds %" G_GUINT64_FORMAT, pos, data_len);

  /* now allocate and read */
  st = g_new0 (BpSafetensors, 1);
  st->metadata = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  if (meta) {
    g_autoptr (GList) keys = json_object_get_members (meta);
    for (GList *k = keys; k; k = k->next)
      g_hash_table_insert (st->metadata, g_strdup (k->data),
                           g_strdup (json_object_get_string_member (meta, k->data)));
  }
  st->names = g_new0 (char *, n + 1);
  st->tensors = g_new0 (BpTensor *, MAX (n, 1));
  const size_t chunk = 1 << 16;
  buf = g_malloc (chunk * 8);
  for (int k = 0; k < n; k++) {
    const Entry *e = &entries[k];
    BpTensor *t = bp_tensor_new (e->ndim, e->shape);
    if (!t)
      FAIL (BP_SAFETENSORS_ERROR_NOMEM, "cannot allocate tensor \"%s\": %s", e->name, bp_last_error ());
    st->names[k] = g_strdup (e->name);
    st->tensors[k] = t;
    st->n = k + 1;
    size_t isz = (size_t) itemsize (e->dtype);
#if G_BYTE_ORDER == G_LITTLE_ENDIAN
    if (e->dtype == DT_F32) {
      if (!read_all (f, t->data, (size_t) t->numel * 4))
        FAIL (BP_SAFETENSORS_ERROR_IO, "cannot read the data of tensor \"%s\"", e->name);
      continue;
    }
#endif
    for (int64_t i = 0; i < t->numel; i += (int64_t) chunk) {
      size_t m = (size_t) MIN ((int64_t) chunk, t->numel - i);
      if (!read_all (f, buf, m * isz))
        FAIL (BP_SAFETENSORS_ERROR_IO, "cannot read the data of tensor \"%s\"", e->name);
      convert (t->data + i, buf, m, e->dtype);
    }
  }
  fclose (f);
  g_hash_table_unref (dc.pairs);
  return st;

fail:
  fclose (f);
  g_hash_table_unref (dc.pairs);
  g_free (dc.duplicate);
  bp_safetensors_free (st);
  return NULL;
}

void
bp_safetensors_free (BpSafetensors *st)
{
  if (!st)
    return;
  for (int k = 0; k < st->n; k++)
    bp_tensor_unref (st->tensors[k]);
  g_strfreev (st->names);
  g_free (st->tensors);
  if (st->metadata)
    g_hash_table_unref (st->metadata);
  g_free (st);
}

BpTensor *
bp_safetensors_get (const BpSafetensors *st, const char *name)
{
  for (int k = 0; st && k < st->n; k++)
    if (!strcmp (st->names[k], name))
      return st->tensors[k];
  return NULL;
}
