/* test-safetensors.c: the safetensors reader and writer: the reference test vector byte for
 * byte, round trips, other float dtypes, every malformed header, fuzzing, atomic writes, and
 * interchange with Python's safetensors package when it is installed. */
#include "bp-test.h"

#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "bp-backend.h"
#include "bp-rng.h"
#include "bp-safetensors.h"

static char *test_root; /* removed at the end of main */

/* Plain writes to a new file: g_file_set_contents would fsync every fuzzed file, and ext4
 * flushes a file truncated by "wb" when it is closed. */
static void
write_bytes (const char *path, const void *data, gsize len)
{
  g_unlink (path);
  FILE *f = g_fopen (path, "wb");
  g_assert_nonnull (f);
  g_assert_cmpuint (fwrite (data, 1, len, f), ==, len);
  g_assert_cmpint (fclose (f), ==, 0);
}

/* Writes u64 LE header length + header (as given, no padding) + data. */
static void
write_raw (const char *path, const char *header, const void *data, gsize data_len)
{
  gsize hlen = strlen (header);
  guint64 n = GUINT64_TO_LE ((guint64) hlen);
  g_autoptr (GByteArray) b = g_byte_array_new ();
  g_byte_array_append (b, (const guint8 *) &n, 8);
  g_byte_array_append (b, (const guint8 *) header, (guint) hlen);
  if (data_len)
    g_byte_array_append (b, data, (guint) data_len);
  write_bytes (path, b->data, b->len);
}

static void
test_vector (void)
{
  g_autofree char *dir = bp_test_temp_dir (test_root);
  g_autofree char *path = g_build_filename (dir, "vector.safetensors", NULL);
  float v[6] = {0, 1, 2, 3, 4, 5};
  BpTensor *t = bp_tensor_from_data (3, (int64_t[]){1, 2, 3}, v);
  const char *names[] = {"attn.0"};
  g_autoptr (GError) error = NULL;
  g_assert_true (bp_safetensors_save (path, 1, names, &t, NULL, &error));
  g_assert_no_error (error);

  /* the bytes Python's safetensors 0.4 writes for the same tensor */
  static const char header[] = "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}";
  G_STATIC_ASSERT (sizeof header - 1 == 64);
  guint8 want[96] = {64, 0, 0, 0, 0, 0, 0, 0};
  memcpy (want + 8, header, 64);
  for (int i = 0; i < 6; i++) {
    guint32 u;
    memcpy (&u, &v[i], 4);
    u = GUINT32_TO_LE (u);
    memcpy (want + 72 + 4 * i, &u, 4);
  }
  g_autoptr (GBytes) got = bp_test_read_bytes (path);
  g_assert_cmpmem (g_bytes_get_data (got, NULL), g_bytes_get_size (got), want, sizeof want);

  /* with metadata: "__metadata__" first, header padded with one space to 96 bytes */
  g_autoptr (GHashTable) meta = g_hash_table_new (g_str_hash, g_str_equal);
  g_hash_table_insert (meta, "format", "pt");
  g_assert_true (bp_safetensors_save (path, 1, names, &t, meta, &error));
  static const char header2[] = "{\"__metadata__\":{\"format\":\"pt\"},\"attn.0\":{\"dtype\":\"F32\","
                                "\"shape\":[1,2,3],\"data_offsets\":[0,24]}} ";
  G_STATIC_ASSERT (sizeof header2 - 1 == 96);
  g_autoptr (GBytes) got2 = bp_test_read_bytes (path);
  g_assert_cmpuint (g_bytes_get_size (got2), ==, 8 + 96 + 24);
  const guint8 *g2 = g_bytes_get_data (got2, NULL);
  g_assert_cmpint (g2[0], ==, 96);
  g_assert_cmpmem (g2 + 8, 96, header2, 96);
  g_assert_cmpmem (g2 + 104, 24, want + 72, 24);

  /* and it reads back */
  g_autoptr (BpSafetensors) st = bp_safetensors_load (path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (st->n, ==, 1);
  g_assert_cmpstr (st->names[0], ==, "attn.0");
  BpTensor *r = bp_safetensors_get (st, "attn.0");
  g_assert_nonnull (r);
  g_assert_cmpint (r->ndim, ==, 3);
  g_assert_cmpint (r->shape[2], ==, 3);
  g_assert_cmpmem (r->data, 24, v, 24);
  g_assert_cmpstr (g_hash_table_lookup (st->metadata, "format"), ==, "pt");
  g_assert_null (bp_safetensors_get (st, "attn.1"));
  bp_tensor_unref (t);
}

static void
test_round_trip (void)
{
  g_autofree char *dir = bp_test_temp_dir (test_root);
  g_autofree char *path = g_build_filename (dir, "model.safetensors", NULL);
  bp_rng_seed (7);
  BpTensor *t[] = {
    bp_test_rand (4, (int64_t[]){3, 2, 5, 5}, -1, 1, false),
    bp_test_rand (1, (int64_t[]){3}, -1, 1, false),
    bp_tensor_new (0, NULL),                     /* a scalar */
    bp_tensor_new (2, (int64_t[]){0, 7}),        /* empty */
    bp_test_rand (6, (int64_t[]){1, 2, 1, 3, 1, 2}, -100, 100, false),
  };
  t[2]->data[0] = -0.0f;
  t[0]->data[5] = INFINITY;
  t[0]->data[6] = NAN;
  t[0]->data[7] = 1e-42f; /* subnormal */
  const char *names[] = {"layers.0.weight", "layers.0.bias", "\"quoted\\name\"\n", "empty",
                         "名字.ünïcode"};
  g_autoptr (GHashTable) meta = g_hash_table_new (g_str_hash, g_str_equal);
  g_hash_table_insert (meta, "epoch", "3");
  g_hash_table_insert (meta, "spec", "{\"name\": \"mlp\", \"x\": [1, 2]}\t\x01");
  g_hash_table_insert (meta, "", "empty key");
  g_autoptr (GError) error = NULL;
  g_assert_true (bp_safetensors_save (path, 5, names, t, meta, &error));
  g_assert_no_error (error);

  /* no temporary file left behind */
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  int n_files = 0;
  while (g_dir_read_name (d))
    n_files++;
  g_assert_cmpint (n_files, ==, 1);

  g_autoptr (BpSafetensors) st = bp_safetensors_load (path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (st->n, ==, 5);
  for (int k = 0; k < 5; k++) {
    g_assert_cmpstr (st->names[k], ==, names[k]); /* data-offset order = written order */
    BpTensor *r = st->tensors[k];
    g_assert_cmpint (r->ndim, ==, t[k]->ndim);
    for (int dd = 0; dd < r->ndim; dd++)
      g_assert_cmpint (r->shape[dd], ==, t[k]->shape[dd]);
    g_assert_cmpint (r->numel, ==, t[k]->numel);
    g_assert_cmpmem (r->data, r->numel * 4, t[k]->data, t[k]->numel * 4); /* bit exact, NaN too */
  }
  g_assert_true (signbit (st->tensors[2]->data[0]));
  g_assert_cmpuint (g_hash_table_size (st->metadata), ==, 3);
  GHashTableIter it;
  gpointer key, value;
  g_hash_table_iter_init (&it, meta);
  while (g_hash_table_iter_next (&it, &key, &value))
    g_assert_cmpstr (g_hash_table_lookup (st->metadata, key), ==, value);

  /* the header is a multiple of 8 bytes */
  g_autoptr (GBytes) bytes = bp_test_read_bytes (path);
  guint64 hlen;
  memcpy (&hlen, g_bytes_get_data (bytes, NULL), 8);
  g_assert_cmpuint (GUINT64_FROM_LE (hlen) % 8, ==, 0);

  /* zero tensors, no metadata: "{}" padded */
  g_assert_true (bp_safetensors_save (path, 0, NULL, NULL, NULL, &error));
  g_autoptr (BpSafetensors) none = bp_safetensors_load (path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (none->n, ==, 0);
  g_assert_cmpuint (g_hash_table_size (none->metadata), ==, 0);

  /* a model's named state */
  BpNamedTensor state[2] = {{"fc.weight", t[0]}, {"fc.bias", t[1]}};
  g_assert_true (bp_safetensors_save_state (path, 2, state, NULL, &error));
  g_autoptr (BpSafetensors) sd = bp_safetensors_load (path, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (bp_safetensors_get (sd, "fc.bias")->data, 12, t[1]->data, 12);

  for (int k = 0; k < 5; k++)
    bp_tensor_unref (t[k]);
}

static void
test_writer_errors (void)
{
  g_autofree char *dir = bp_test_temp_dir (test_root);
  g_autofree char *path = g_build_filename (dir, "keep.safetensors", NULL);
  BpTensor *t = bp_tensor_new_1d (4);
  bp_tensor_fill (t, 2.0f);
  const char *one[] = {"w"};
  g_autoptr (GError) error = NULL;
  g_assert_true (bp_safetensors_save (path, 1, one, &t, NULL, &error));
  g_autoptr (GBytes) before = bp_test_read_bytes (path);

  struct { const char *names[2]; const char *what; } cases[] = {
    {{"a", "a"}, "two tensors"},
    {{"", "b"}, "reserved name"},
    {{"__metadata__", "b"}, "reserved name"},
    {{"a", "\xff\xfe"}, "reserved name"},
  };
  BpTensor *two[] = {t, t};
  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    g_clear_error (&error);
    g_assert_false (bp_safetensors_save (path, 2, cases[c].names, two, NULL, &error));
    g_assert_error (error, BP_SAFETENSORS_ERROR, BP_SAFETENSORS_ERROR_INVALID);
    g_assert_nonnull (strstr (error->message, cases[c].what));
    g_assert_nonnull (strstr (error->message, "keep.safetensors"));
  }
  g_autoptr (GHashTable) meta = g_hash_table_new (g_str_hash, g_str_equal);
  g_hash_table_insert (meta, "k", "\xc3\x28");
  g_clear_error (&error);
  g_assert_false (bp_safetensors_save (path, 1, one, &t, meta, &error));
  g_assert_error (error, BP_SAFETENSORS_ERROR, BP_SAFETENSORS_ERROR_INVALID);

  /* a folder that does not exist */
  g_autofree char *missing = g_build_filename (dir, "no", "such", "x.safetensors", NULL);
  g_clear_error (&error);
  g_assert_false (bp_safetensors_save (missing, 1, one, &t, NULL, &error));
  g_assert_error (error, BP_SAFETENSORS_ERROR, BP_SAFETENSORS_ERROR_IO);
  g_test_message ("%s", error->message);

  /* a folder in the way of the final name: the rename fails and the temporary file goes */
  g_autofree char *in_the_way = g_build_filename (dir, "folder.safetensors", NULL);
  g_assert_cmpint (g_mkdir (in_the_way, 0700), ==, 0);
  g_autofree char *inside = g_build_filename (in_the_way, "x", NULL);
  write_bytes (inside, "x", 1);
  g_clear_error (&error);
  g_assert_false (bp_safetensors_save (in_the_way, 1, one, &t, NULL, &error));
  g_assert_error (error, BP_SAFETENSORS_ERROR, BP_SAFETENSORS_ERROR_IO);
  g_test_message ("%s", error->message);

  /* the original file is untouched and no temporary file is left */
  g_autoptr (GBytes) after = bp_test_read_bytes (path);
  g_assert_true (g_bytes_equal (before, after));
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;
  while ((name = g_dir_read_name (d)))
    g_assert_true (!strcmp (name, "keep.safetensors") || !strcmp (name, "folder.safetensors"));
  bp_tensor_unref (t);
}

static void
test_other_dtypes (void)
{
  g_autofree char *dir = bp_test_temp_dir (test_root);
  g_autofree char *path = g_build_filename (dir, "dtypes.safetensors", NULL);
  /* F16: 1, -2, 0.5, 65504, 2^-24 (subnormal), inf, -0, 2^-14 (smallest normal) */
  guint16 h[8] = {15360, 49152, 14336, 31743, 1, 31744, 32768, 1024};
  float hf[8] = {1, -2, 0.5f, 65504, 5.9604645e-08f, INFINITY, -0.0f, 6.1035156e-05f};
  /* BF16: 1, -3.5, 2^100 */
  guint16 b[3] = {0x3f80, 0xc060, 0x7180};
  float bf[3] = {1, -3.5f, 1.2676506e+30f};
  double dd[2] = {0.1, -1e300};
  g_autoptr (GByteArray) data = g_byte_array_new ();
  for (int i = 0; i < 8; i++) {
    guint16 le = GUINT16_TO_LE (h[i]);
    g_byte_array_append (data, (guint8 *) &le, 2);
  }
  for (int i = 0; i < 3; i++) {
    guint16 le = GUINT16_TO_LE (b[i]);
    g_byte_array_append (data, (guint8 *) &le, 2);
  }
  for (int i = 0; i < 2; i++) {
    guint64 u;
    memcpy (&u, &dd[i], 8);
    u = GUINT64_TO_LE (u);
    g_byte_array_append (data, (guint8 *) &u, 8);
  }
  write_raw (path,
             "{\"half\":{\"dtype\":\"F16\",\"shape\":[2,4],\"data_offsets\":[0,16]},"
             "\"brain\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[16,22]},"
             "\"double\":{\"dtype\":\"F64\",\"shape\":[2,1],\"data_offsets\":[22,38]}}",
             data->data, data->len);
  g_autoptr (GError) error = NULL;
  g_autoptr (BpSafetensors) st = bp_safetensors_load (path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (st->n, ==, 3);
  g_assert_cmpstr (st->names[0], ==, "half");
  g_assert_cmpstr (st->names[2], ==, "double");
  g_assert_cmpmem (bp_safetensors_get (st, "half")->data, 32, hf, 32);
  g_assert_cmpmem (bp_safetensors_get (st, "brain")->data, 12, bf, 12);
  BpTensor *d64 = bp_safetensors_get (st, "double");
  g_assert_cmpfloat (d64->data[0], ==, 0.1f);
  g_assert_true (isinf (d64->data[1]) && d64->data[1] < 0);
}

typedef struct {
  const char *header;
  gsize data_len;
  int code;
  const char *expect; /* a piece of the message */
} BadCase;

static void
check_bad_file (const char *path, int code, const char *expect)
{
  g_autoptr (GError) error = NULL;
  BpSafetensors *st = bp_safetensors_load (path, &error);
  g_assert_null (st);
  g_assert_nonnull (error);
  g_test_message ("%s", error->message);
  g_assert_true (error->domain == BP_SAFETENSORS_ERROR);
  g_assert_cmpint (error->code, ==, code);
  g_autofree char *base = g_path_get_basename (path);
  g_assert_nonnull (strstr (error->message, base));
  if (!strstr (error->message, expect))
    g_error ("message \"%s\" lacks \"%s\"", error->message, expect);
}

static void
test_malformed (void)
{
  g_autofree char *dir = bp_test_temp_dir (test_root);
  g_autofree char *path = g_build_filename (dir, "bad.safetensors", NULL);
  const int F = BP_SAFETENSORS_ERROR_FORMAT, U = BP_SAFETENSORS_ERROR_UNSUPPORTED;
  static const BadCase cases[] = {
    {"{abc", 0, F, "not valid JSON"},
    {"[1, 2]  ", 0, F, "not a JSON object"},
    {"\"text\"", 0, F, "not a JSON object"},
    {"{\"a\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, U, "dtype \"Q7\""},
    {"{\"a\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, U, "dtype \"I32\""},
    {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, F, "no \"dtype\""},
    {"{\"a\":{\"dtype\":3,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, F, "no \"dtype\""},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20, F, "need 24"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1,3],\"data_offsets\":[0,12]}}", 12, F, "negative dimension"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, F, "not an integer"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", 8, F, "no \"shape\""},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, U, "7 dimensions"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1000],\"data_offsets\":[0,4000]}}", 8, F, "beyond"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, F, "impossible"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, F, "impossible"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8, F, "data_offsets"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0.0,4]}}", 4, F, "data_offsets"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, F, "overlaps"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", 20, F, "gap"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, F, "gap"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 12, F, "cover 4 bytes"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, F, "\"a\" twice"},
    {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, F, "twice"},
    {"{\"a\":[1,2]}", 0, F, "not a JSON object"},
    {"{\"__metadata__\":{\"k\":1}}", 0, F, "metadata \"k\""},
    {"{\"__metadata__\":[]}", 0, F, "\"__metadata__\" is not"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,16]}}", 16, F,
     "need more than"},
    {"{\"a\xff\":1}", 0, F, "not UTF-8"},
  };
  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    guint8 data[64] = {0};
    g_assert_cmpuint (cases[c].data_len, <=, sizeof data);
    write_raw (path, cases[c].header, data, cases[c].data_len);
    check_bad_file (path, cases[c].code, cases[c].expect);
  }
  /* a NUL inside the header */
  static const char nul_header[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}\0   ";
  {
    guint64 n = GUINT64_TO_LE ((guint64) sizeof nul_header - 1);
    g_autoptr (GByteArray) b = g_byte_array_new ();
    g_byte_array_append (b, (guint8 *) &n, 8);
    g_byte_array_append (b, (const guint8 *) nul_header, sizeof nul_header - 1);
    g_byte_array_append (b, (const guint8 *) "\0\0\0\0", 4);
    write_bytes (path, b->data, b->len);
    check_bad_file (path, BP_SAFETENSORS_ERROR_FORMAT, "not UTF-8");
  }

  /* header length problems, checked before anything is read or allocated */
  write_bytes (path, "", 0);
  check_bad_file (path, BP_SAFETENSORS_ERROR_FORMAT, "too short");
  write_bytes (path, "\x10\0\0", 3);
  check_bad_file (path, BP_SAFETENSORS_ERROR_FORMAT, "too short");
  guint8 big[16] = {0xe8, 0x03}; /* 1000 */
  write_bytes (path, big, sizeof big);
  check_bad_file (path, BP_SAFETENSORS_ERROR_FORMAT, "beyond the end of the file");
  guint64 huge = GUINT64_TO_LE ((guint64) 1 << 40);
  memcpy (big, &huge, 8);
  write_bytes (path, big, sizeof big);
  check_bad_file (path, BP_SAFETENSORS_ERROR_FORMAT, "limit of 100000000");
  guint64 over = GUINT64_TO_LE ((guint64) 100000001);
  memcpy (big, &over, 8);
  write_bytes (path, big, sizeof big);
  check_bad_file (path, BP_SAFETENSORS_ERROR_FORMAT, "limit");
  guint64 maxed = G_MAXUINT64;
  memcpy (big, &maxed, 8);
  write_bytes (path, big, sizeof big);
  check_bad_file (path, BP_SAFETENSORS_ERROR_FORMAT, "limit");

  /* not a file */
  g_autofree char *missing = g_build_filename (dir, "missing.safetensors", NULL);
  check_bad_file (missing, BP_SAFETENSORS_ERROR_IO, "cannot open");
  g_autofree char *folder = g_build_filename (dir, "folder.safetensors", NULL);
  g_assert_cmpint (g_mkdir (folder, 0700), ==, 0);
  check_bad_file (folder, BP_SAFETENSORS_ERROR_IO, "not a regular file");
}

/* Every truncation and many random corruptions of a valid file load or fail cleanly. */
static void
test_fuzz (void)
{
  g_autofree char *dir = bp_test_temp_dir (test_root);
  g_autofree char *good = g_build_filename (dir, "good.safetensors", NULL);
  g_autofree char *path = g_build_filename (dir, "fuzz.safetensors", NULL);
  bp_rng_seed (3);
  BpTensor *t[] = {bp_test_rand (2, (int64_t[]){3, 4}, -1, 1, false),
                   bp_test_rand (1, (int64_t[]){5}, -1, 1, false)};
  const char *names[] = {"w", "b"};
  g_autoptr (GHashTable) meta = g_hash_table_new (g_str_hash, g_str_equal);
  g_hash_table_insert (meta, "format", "pt");
  g_assert_true (bp_safetensors_save (good, 2, names, t, meta, NULL));
  g_autoptr (GBytes) bytes = bp_test_read_bytes (good);
  gsize len;
  const guint8 *src = g_bytes_get_data (bytes, &len);

  for (gsize cut = 0; cut < len; cut++) {
    write_bytes (path, src, cut);
    g_autoptr (GError) error = NULL;
    BpSafetensors *st = bp_safetensors_load (path, &error);
    g_assert_null (st);
    g_assert_error (error, BP_SAFETENSORS_ERROR, BP_SAFETENSORS_ERROR_FORMAT);
  }
  g_autoptr (GRand) rand = g_rand_new_with_seed (11);
  g_autofree guint8 *buf = g_malloc (len);
  int n_ok = 0, n_err = 0;
  for (int it = 0; it < 1500; it++) {
    memcpy (buf, src, len);
    int flips = g_rand_int_range (rand, 1, 4);
    for (int f = 0; f < flips; f++) {
      /* mostly the header, where the parsing happens */
      gsize at = (gsize) g_rand_int_range (rand, 0, it % 4 == 0 ? (gint32) len : 8 + 100);
      buf[at] = (guint8) g_rand_int_range (rand, 0, 256);
    }
    write_bytes (path, buf, len);
    g_autoptr (GError) error = NULL;
    BpSafetensors *st = bp_safetensors_load (path, &error);
    if (st) {
      g_assert_no_error (error);
      n_ok++;
      bp_safetensors_free (st);
    } else {
      g_assert_nonnull (error);
      g_assert_true (error->domain == BP_SAFETENSORS_ERROR);
      n_err++;
    }
  }
  g_test_message ("fuzz: %d loaded, %d rejected", n_ok, n_err);
  g_assert_cmpint (n_err, >, 100);
  bp_tensor_unref (t[0]);
  bp_tensor_unref (t[1]);
}

/* A process killed while it rewrites a checkpoint leaves either the old or the new file, whole. */
static void
test_atomic_kill (void)
{
  const int64_t n = 1 << 18; /* 1 MiB per version */
  if (g_test_subprocess ()) {
    g_autofree char *path = g_build_filename (g_getenv ("BP_TEST_ROOT"), "atomic",
                                              "last.safetensors", NULL);
    BpTensor *t = bp_tensor_new_1d (n);
    const char *names[] = {"w"};
    for (int k = 1;; k++) {
      bp_tensor_fill (t, (float) k);
      g_assert_true (bp_safetensors_save (path, 1, names, &t, NULL, NULL));
    }
  }
  /* a fixed folder the subprocess finds through BP_TEST_ROOT (set in main) */
  g_autofree char *dir = g_build_filename (test_root, "atomic", NULL);
  g_assert_cmpint (g_mkdir (dir, 0700), ==, 0);
  g_autofree char *path = g_build_filename (dir, "last.safetensors", NULL);
  int checked = 0;
  for (int round = 0; round < 8 && (round < 3 || checked == 0); round++) {
    g_test_trap_subprocess (NULL, 300000 + 70000 * round, G_TEST_SUBPROCESS_DEFAULT);
    g_assert_false (g_test_trap_has_passed ()); /* killed at the timeout */
    if (!g_file_test (path, G_FILE_TEST_EXISTS))
      continue; /* killed before the first rename (a slow start) */
    checked++;
    g_autoptr (GError) error = NULL;
    g_autoptr (BpSafetensors) st = bp_safetensors_load (path, &error);
    g_assert_no_error (error);
    BpTensor *w = bp_safetensors_get (st, "w");
    g_assert_cmpint (w->numel, ==, n);
    for (int64_t i = 1; i < n; i++)
      g_assert_cmpfloat (w->data[i], ==, w->data[0]);
    g_test_message ("round %d: checkpoint version %g intact", round, w->data[0]);
  }
  g_assert_cmpint (checked, >, 0);
}

/* ---- interchange with Python's safetensors ---- */

static const char *
safetensors_python (void)
{
  static const char *found;
  static gboolean searched;
  if (searched)
    return found;
  searched = TRUE;
  const char *env = g_getenv ("BP_SAFETENSORS_PYTHON");
  const char *candidates[] = {env, "/usr/bin/python3", "python3"};
  for (guint c = 0; c < G_N_ELEMENTS (candidates); c++) {
    if (!candidates[c] || !candidates[c][0])
      continue;
    const char *argv[] = {candidates[c], "-c", "import safetensors.numpy", NULL};
    int status = 0;
    if (g_spawn_sync (NULL, (char **) argv, NULL,
                      G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL,
                      NULL, NULL, NULL, NULL, &status, NULL) &&
        g_spawn_check_wait_status (status, NULL)) {
      found = candidates[c];
      break;
    }
  }
  return found;
}

static char *
run_python (const char *python, const char *code, const char *arg)
{
  const char *argv[] = {python, "-c", code, arg, NULL};
  char *out = NULL, *err = NULL;
  int status = 0;
  g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out,
                               &err, &status, NULL));
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("python failed: %s", err);
  g_free (err);
  return out;
}

static void
test_python (void)
{
  const char *python = safetensors_python ();
  if (!python) {
    g_test_skip ("Python's safetensors package is not installed (set BP_SAFETENSORS_PYTHON to a "
                 "python that has it): the interchange check did not run");
    return;
  }
  g_test_message ("using %s", python);
  g_autofree char *dir = bp_test_temp_dir (test_root);
  g_autofree char *ours = g_build_filename (dir, "ours.safetensors", NULL);
  g_autofree char *theirs = g_build_filename (dir, "theirs.safetensors", NULL);
  bp_rng_seed (5);
  BpTensor *t[] = {bp_test_rand (2, (int64_t[]){3, 4}, -1, 1, false),
                   bp_test_rand (1, (int64_t[]){2}, -1, 1, false), bp_tensor_new (0, NULL)};
  t[2]->data[0] = 42.5f;
  const char *names[] = {"fc.weight", "fc.bias", "scale"};
  g_autoptr (GHashTable) meta = g_hash_table_new (g_str_hash, g_str_equal);
  g_hash_table_insert (meta, "format", "pt");
  g_hash_table_insert (meta, "note", "naïve \"quotes\"");
  g_assert_true (bp_safetensors_save (ours, 3, names, t, meta, NULL));

  /* theirs reads ours: print every value with full precision */
  g_autofree char *out = run_python (python,
      "import sys, json\n"
      "from safetensors.numpy import load_file\n"
      "from safetensors import safe_open\n"
      "d = load_file(sys.argv[1])\n"
      "with safe_open(sys.argv[1], 'np') as f: m = f.metadata()\n"
      "print(json.dumps(m, sort_keys=True))\n"
      "for k in ['fc.weight', 'fc.bias', 'scale']:\n"
      "  a = d[k]\n"
      "  print(k, a.dtype, list(a.shape), ' '.join(repr(float(x)) for x in a.ravel()))\n",
      ours);
  g_auto (GStrv) lines = g_strsplit (out, "\n", 0);
  g_assert_cmpstr (lines[0], ==, "{\"format\": \"pt\", \"note\": \"na\\u00efve \\\"quotes\\\"\"}");
  for (int k = 0; k < 3; k++) {
    g_auto (GStrv) f = g_strsplit (lines[k + 1], " ", 0);
    g_assert_cmpstr (f[0], ==, names[k]);
    g_assert_cmpstr (f[1], ==, "float32");
    guint nf = g_strv_length (f);
    int first = 2;
    while (first < (int) nf && !strchr (f[first], ']'))
      first++;
    first++;
    g_assert_cmpint ((int) nf - first, ==, t[k]->numel);
    for (int64_t i = 0; i < t[k]->numel; i++)
      g_assert_cmpfloat ((float) g_ascii_strtod (f[first + i], NULL), ==, t[k]->data[i]);
  }

  /* ours reads theirs, in the dtypes we convert */
  g_autofree char *out2 = run_python (python,
      "import sys, numpy as np\n"
      "from safetensors.numpy import save_file\n"
      "x = np.linspace(-2, 3, 12)\n"
      "save_file({'f64': x.reshape(3, 4), 'f16': x.astype(np.float16), 'f32': x.astype(np.float32)[::-1].copy()},\n"
      "          sys.argv[1], metadata={'who': 'python'})\n"
      "print('ok')\n",
      theirs);
  g_autoptr (GError) error = NULL;
  g_autoptr (BpSafetensors) st = bp_safetensors_load (theirs, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (g_hash_table_lookup (st->metadata, "who"), ==, "python");
  BpTensor *f64 = bp_safetensors_get (st, "f64"), *f16 = bp_safetensors_get (st, "f16"),
           *f32 = bp_safetensors_get (st, "f32");
  g_assert_true (f64 && f16 && f32);
  g_assert_cmpint (f64->ndim, ==, 2);
  for (int i = 0; i < 12; i++) {
    double x = -2 + 5.0 * i / 11;
    g_assert_cmpfloat (f64->data[i], ==, (float) x);
    g_assert_cmpfloat (fabs (f16->data[i] - x), <=, 2e-3);
    g_assert_cmpfloat (f32->data[11 - i], ==, (float) x);
  }
  for (int k = 0; k < 3; k++)
    bp_tensor_unref (t[k]);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  bp_set_num_threads (1);
  if (!g_test_subprocess ()) {
    test_root = g_dir_make_tmp ("bp-test-safetensors-XXXXXX", NULL);
    g_assert_nonnull (test_root);
    g_setenv ("BP_TEST_ROOT", test_root, TRUE);
  }
  g_test_add_func ("/safetensors/vector", test_vector);
  g_test_add_func ("/safetensors/round-trip", test_round_trip);
  g_test_add_func ("/safetensors/writer-errors", test_writer_errors);
  g_test_add_func ("/safetensors/other-dtypes", test_other_dtypes);
  g_test_add_func ("/safetensors/malformed", test_malformed);
  g_test_add_func ("/safetensors/fuzz", test_fuzz);
  g_test_add_func ("/safetensors/atomic-kill", test_atomic_kill);
  g_test_add_func ("/safetensors/python", test_python);
  int status = g_test_run ();
  if (test_root)
    bp_test_remove_tree (test_root);
  g_free (test_root);
  return status;
}
