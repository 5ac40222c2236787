/* test-data.c: IDX files (round trips and every malformed case), data sets (real Fashion-MNIST,
 * IDX pairs, the installed-set finder), validation splits and the batch loader. */
#include "config.h"

#include "bp-test.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>
#include <zlib.h>

#include "bp-backend.h"
#include "bp-dataset.h"
#include "bp-idx.h"
#include "bp-loader.h"
#include "bp-rng.h"

/* ---- helpers ---- */

static char *
make_tmp_dir (void)
{
  GError *error = NULL;
  char *dir = g_dir_make_tmp ("bp-test-data-XXXXXX", &error);
  g_assert_no_error (error);
  return dir;
}

static void
write_file (const char *path, const void *data, size_t len, gboolean compress)
{
  if (compress) {
    gzFile gz = gzopen (path, "wb1");
    g_assert_nonnull (gz);
    if (len > 0)
      g_assert_cmpint (gzwrite (gz, data, (unsigned) len), ==, (int) len);
    g_assert_cmpint (gzclose (gz), ==, Z_OK);
  } else {
    GError *error = NULL;
    g_file_set_contents (path, data, (gssize) len, &error);
    g_assert_no_error (error);
  }
}

/* An IDX file image: magic (declaring ndim dimensions), the first n_dims of dims big-endian,
 * then `payload` bytes as given. */
static GByteArray *
idx_bytes_n (guint8 type, int ndim, int n_dims, const guint32 *dims, const void *payload,
             size_t payload_len)
{
  GByteArray *b = g_byte_array_new ();
  guint8 magic[4] = {0, 0, type, (guint8) ndim};
  g_byte_array_append (b, magic, 4);
  for (int d = 0; d < n_dims; d++) {
    guint32 be = GUINT32_TO_BE (dims[d]);
    g_byte_array_append (b, (const guint8 *) &be, 4);
  }
  if (payload_len)
    g_byte_array_append (b, payload, (guint) payload_len);
  return b;
}

/* The same with all ndim dimensions (none when dims is NULL). */
static GByteArray *
idx_bytes (guint8 type, int ndim, const guint32 *dims, const void *payload, size_t payload_len)
{
  return idx_bytes_n (type, ndim, dims ? ndim : 0, dims, payload, payload_len);
}

static void
assert_error_names_file (const GError *error, int code, const char *path, const char *what)
{
  g_assert_nonnull (error);
  if (error->domain != BP_DATA_ERROR || error->code != code || !strstr (error->message, path) ||
      !strstr (error->message, what))
    g_error ("expected a data error %d naming %s and saying '%s', got %d: %s", code, path, what,
             error->code, error->message);
}

/* A toy data set: example i has every value equal to i + k / 1000 (k its position), label
 * i % n_classes. */
static BpDataset *
toy_dataset (int64_t n, int ndim, const int64_t *shape, int n_classes)
{
  GError *error = NULL;
  BpDataset *ds = bp_dataset_new ("toy", n, ndim, shape, n_classes, NULL, &error);
  g_assert_no_error (error);
  for (int64_t i = 0; i < n; i++) {
    for (int64_t k = 0; k < ds->example_numel; k++)
      ds->x[i * ds->example_numel + k] = (float) i + (float) k / 1000.0f;
    ds->y[i] = (float) (i % n_classes);
  }
  return ds;
}

/* ---- IDX files ---- */

static void
test_idx_roundtrip (void)
{
  const BpIdxType types[] = {BP_IDX_U8, BP_IDX_I8, BP_IDX_I16, BP_IDX_I32, BP_IDX_F32, BP_IDX_F64};
  const int64_t shape[] = {5, 3, 2};
  const int64_t numel = 30;
  char *dir = make_tmp_dir ();
  for (size_t t = 0; t < G_N_ELEMENTS (types); t++) {
    size_t esize = bp_idx_type_size (types[t]);
    guint8 *data = g_malloc (numel * esize);
    float want[30];
    for (int64_t i = 0; i < numel; i++) {
      /* distinctive values that use every byte of the wider types */
      switch (types[t]) {
      case BP_IDX_U8: ((guint8 *) data)[i] = (guint8) (i * 37 + 3); break;
      case BP_IDX_I8: ((gint8 *) data)[i] = (gint8) (i * 9 - 120); break;
      case BP_IDX_I16: ((gint16 *) data)[i] = (gint16) (i * 1031 - 15000); break;
      case BP_IDX_I32: ((gint32 *) data)[i] = (gint32) (i * 70001 - 1000000); break;
      case BP_IDX_F32: ((float *) data)[i] = (float) i * 0.37f - 3.0f; break;
      case BP_IDX_F64: ((double *) data)[i] = (double) i * 0.37 - 3.0; break;
      }
    }
    BpIdx tmp = {.type = types[t], .numel = numel, .data = data};
    bp_idx_to_float (&tmp, want);
    g_assert_cmpfloat (want[1], !=, want[2]);

    for (int compress = 0; compress < 2; compress++) {
      char *name = g_strdup_printf ("t%02x-%d.idx", types[t], compress);
      char *path = g_build_filename (dir, name, NULL);
      GError *error = NULL;
      g_assert_true (bp_idx_write (path, types[t], 3, shape, data, compress, &error));
      g_assert_no_error (error);

      /* the file starts with the gzip magic exactly when compressed */
      guint8 head[2] = {0};
      FILE *fp = fopen (path, "rb");
      g_assert_cmpint (fread (head, 1, 2, fp), ==, 2);
      fclose (fp);
      g_assert_cmpint (head[0] == 0x1f && head[1] == 0x8b, ==, compress);

      BpIdx *idx = bp_idx_read (path, &error);
      g_assert_no_error (error);
      g_assert_cmpint (idx->type, ==, types[t]);
      g_assert_cmpint (idx->ndim, ==, 3);
      g_assert_cmpint (idx->shape[0], ==, 5);
      g_assert_cmpint (idx->shape[1], ==, 3);
      g_assert_cmpint (idx->shape[2], ==, 2);
      g_assert_cmpint (idx->file_count, ==, 5);
      g_assert_cmpint (idx->numel, ==, numel);
      g_assert_cmpint (idx->compressed, ==, compress);
      g_assert_cmpmem (idx->data, numel * esize, data, numel * esize);
      float got[30];
      bp_idx_to_float (idx, got);
      g_assert_cmpmem (got, sizeof got, want, sizeof want);
      bp_idx_free (idx);

      /* a limit reads a prefix of the items and remembers the declared count */
      idx = bp_idx_read_limit (path, 2, &error);
      g_assert_no_error (error);
      g_assert_cmpint (idx->shape[0], ==, 2);
      g_assert_cmpint (idx->file_count, ==, 5);
      g_assert_cmpint (idx->numel, ==, 12);
      g_assert_cmpmem (idx->data, 12 * esize, data, 12 * esize);
      bp_idx_free (idx);
      idx = bp_idx_read_limit (path, 99, &error);
      g_assert_no_error (error);
      g_assert_cmpint (idx->shape[0], ==, 5);
      bp_idx_free (idx);

      idx = bp_idx_read_header (path, &error);
      g_assert_no_error (error);
      g_assert_null (idx->data);
      g_assert_cmpint (idx->numel, ==, numel);
      g_assert_cmpint (idx->compressed, ==, compress);
      bp_idx_free (idx);
      g_unlink (path);
      g_free (path);
      g_free (name);
    }
    g_free (data);
  }

  /* big-endian on disk, read by hand: 0x0102 = 258, -2 */
  char *path = g_build_filename (dir, "be.idx", NULL);
  const guint8 payload[] = {0x01, 0x02, 0xff, 0xfe};
  GByteArray *b = idx_bytes (BP_IDX_I16, 1, (guint32[]){2}, payload, sizeof payload);
  write_file (path, b->data, b->len, FALSE);
  g_byte_array_unref (b);
  GError *error = NULL;
  BpIdx *idx = bp_idx_read (path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (((gint16 *) idx->data)[0], ==, 258);
  g_assert_cmpint (((gint16 *) idx->data)[1], ==, -2);
  bp_idx_free (idx);
  g_unlink (path);
  g_free (path);

  /* the writer refuses what it cannot write */
  path = g_build_filename (dir, "bad.idx", NULL);
  guint8 one = 0;
  g_assert_false (bp_idx_write (path, BP_IDX_U8, 1, (int64_t[]){0}, &one, FALSE, &error));
  assert_error_names_file (error, BP_DATA_ERROR_INVALID, path, "dimension 0");
  g_clear_error (&error);
  g_assert_false (bp_idx_write (path, (BpIdxType) 0x07, 1, (int64_t[]){1}, &one, FALSE, &error));
  assert_error_names_file (error, BP_DATA_ERROR_INVALID, path, "type");
  g_clear_error (&error);
  g_free (path);
  path = g_build_filename (dir, "no-such-dir", "x.idx", NULL);
  g_assert_false (bp_idx_write (path, BP_IDX_U8, 1, (int64_t[]){1}, &one, TRUE, &error));
  assert_error_names_file (error, BP_DATA_ERROR_IO, path, "cannot create");
  g_clear_error (&error);
  g_free (path);

  bp_test_remove_tree (dir);
  g_free (dir);
}

typedef struct {
  const char *what;     /* test case */
  GByteArray *bytes;    /* file contents (before compression) */
  int code;             /* expected error code */
  const char *message;  /* expected words in the message */
} MalformedCase;

static void
test_idx_malformed (void)
{
  char *dir = make_tmp_dir ();
  guint8 pixels[100];
  for (int i = 0; i < 100; i++)
    pixels[i] = (guint8) i;
  MalformedCase cases[] = {
    {"empty", g_byte_array_new (), BP_DATA_ERROR_FORMAT, "empty"},
    {"short magic", NULL, BP_DATA_ERROR_FORMAT, "truncated header (3 of 4"},
    {"short dims", idx_bytes_n (BP_IDX_U8, 3, 2, (guint32[]){5, 4}, NULL, 0),
     BP_DATA_ERROR_FORMAT, "truncated header (8 of 12"},
    {"wrong magic", NULL, BP_DATA_ERROR_FORMAT, "not an IDX file"},
    {"unknown type", idx_bytes (0x07, 1, (guint32[]){4}, pixels, 4), BP_DATA_ERROR_FORMAT,
     "unknown IDX data type 0x07"},
    {"no dims", idx_bytes (BP_IDX_U8, 0, NULL, pixels, 4), BP_DATA_ERROR_FORMAT,
     "number of dimensions 0"},
    {"too many dims", idx_bytes (BP_IDX_U8, 200, NULL, pixels, 4), BP_DATA_ERROR_FORMAT,
     "number of dimensions 200"},
    {"zero count", idx_bytes (BP_IDX_U8, 3, (guint32[]){0, 28, 28}, pixels, 4),
     BP_DATA_ERROR_FORMAT, "dimension 0 of the header is 0"},
    {"zero width", idx_bytes (BP_IDX_U8, 3, (guint32[]){10, 28, 0}, pixels, 4),
     BP_DATA_ERROR_FORMAT, "dimension 2 of the header is 0"},
    {"absurd dims", idx_bytes (BP_IDX_U8, 3, (guint32[]){0xffffffffu, 0xffffffffu, 28}, pixels, 4),
     BP_DATA_ERROR_FORMAT, "absurd header"},
    {"absurd doubles", idx_bytes (BP_IDX_F64, 2, (guint32[]){0x7fffffffu, 64}, pixels, 4),
     BP_DATA_ERROR_FORMAT, "absurd header"},
    {"truncated data", idx_bytes (BP_IDX_U8, 2, (guint32[]){10, 4}, pixels, 20),
     BP_DATA_ERROR_FORMAT, "truncated data"},
    {"lying count", idx_bytes (BP_IDX_U8, 3, (guint32[]){1000000, 28, 28}, pixels, 100),
     BP_DATA_ERROR_FORMAT, "truncated data"},
    /* 60 GB declared (below the absurd limit): allocating it up front would fail or abort */
    {"lying huge", idx_bytes (BP_IDX_U8, 3, (guint32[]){15000, 1000, 4000}, pixels, 100),
     BP_DATA_ERROR_FORMAT, "truncated data"},
    {"truncated ints", idx_bytes (BP_IDX_I32, 1, (guint32[]){25}, pixels, 99),
     BP_DATA_ERROR_FORMAT, "truncated data"},
    {"extra data", idx_bytes (BP_IDX_U8, 2, (guint32[]){2, 4}, pixels, 20), BP_DATA_ERROR_FORMAT,
     "do not match the data"},
  };
  cases[1].bytes = g_byte_array_new ();
  g_byte_array_append (cases[1].bytes, (const guint8 *) "\0\0\x08", 3);
  cases[3].bytes = g_byte_array_new ();
  g_byte_array_append (cases[3].bytes, (const guint8 *) "PK\x03\x04 not idx at all", 20);

  for (size_t c = 0; c < G_N_ELEMENTS (cases); c++) {
    for (int compress = 0; compress < 2; compress++) {
      char *name = g_strdup_printf ("case%zu%s", c, compress ? ".gz" : "");
      char *path = g_build_filename (dir, name, NULL);
      write_file (path, cases[c].bytes->data, cases[c].bytes->len, compress);
      GError *error = NULL;
      g_test_message ("%s (%s)", cases[c].what, compress ? "gzip" : "plain");
      BpIdx *idx = bp_idx_read (path, &error);
      g_assert_null (idx);
      assert_error_names_file (error, cases[c].code, path, cases[c].message);
      g_clear_error (&error);
      /* the header reader finds the header problems and ignores the data */
      idx = bp_idx_read_header (path, &error);
      if (c < 11) {
        g_assert_null (idx);
        assert_error_names_file (error, cases[c].code, path, cases[c].message);
        g_clear_error (&error);
      } else {
        g_assert_no_error (error);
        bp_idx_free (idx);
      }
      g_unlink (path);
      g_free (path);
      g_free (name);
    }
    g_byte_array_unref (cases[c].bytes);
  }

  /* gzip damage: a valid file cut short, and one with its deflate data overwritten */
  guint8 *big = g_malloc (64 * 64 * 16);
  for (int i = 0; i < 64 * 64 * 16; i++)
    big[i] = (guint8) ((i * 7919) >> 5);
  char *path = g_build_filename (dir, "images.gz", NULL);
  GError *error = NULL;
  g_assert_true (bp_idx_write (path, BP_IDX_U8, 3, (int64_t[]){16, 64, 64}, big, TRUE, &error));
  g_assert_no_error (error);
  char *contents;
  gsize len;
  g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
  g_assert_cmpuint (len, >, 200);
  write_file (path, contents, len / 2, FALSE);
  g_assert_null (bp_idx_read (path, &error));
  assert_error_names_file (error, BP_DATA_ERROR_FORMAT, path, "truncated");
  g_clear_error (&error);
  write_file (path, contents, len - 4, FALSE); /* all the data, trailer cut */
  g_assert_null (bp_idx_read (path, &error));
  assert_error_names_file (error, BP_DATA_ERROR_FORMAT, path, "gzip");
  g_clear_error (&error);
  for (gsize i = len / 2; i < len / 2 + 64; i++)
    contents[i] ^= 0x5a;
  write_file (path, contents, len, FALSE);
  g_assert_null (bp_idx_read (path, &error));
  g_assert_error (error, BP_DATA_ERROR, BP_DATA_ERROR_FORMAT);
  g_assert_nonnull (strstr (error->message, path));
  g_clear_error (&error);
  g_free (contents);
  g_free (big);
  g_unlink (path);
  g_free (path);

  /* missing file, a folder */
  path = g_build_filename (dir, "missing-images-idx3-ubyte.gz", NULL);
  g_assert_null (bp_idx_read (path, &error));
  assert_error_names_file (error, BP_DATA_ERROR_NOT_FOUND, path, "No such file");
  g_clear_error (&error);
  g_free (path);
  g_assert_null (bp_idx_read (dir, &error));
  assert_error_names_file (error, BP_DATA_ERROR_IO, dir, "not a regular file");
  g_clear_error (&error);

  bp_test_remove_tree (dir);
  g_free (dir);
}

/* ---- data sets from IDX pairs ---- */

static void
write_pair (const char *images, const char *labels, int64_t n, int64_t h, int64_t w,
            gboolean compress)
{
  guint8 *pix = g_malloc (n * h * w);
  guint8 *lab = g_malloc (n);
  for (int64_t i = 0; i < n * h * w; i++)
    pix[i] = (guint8) ((i * 31) % 256);
  for (int64_t i = 0; i < n; i++)
    lab[i] = (guint8) ((i * 3) % 5);
  GError *error = NULL;
  g_assert_true (bp_idx_write (images, BP_IDX_U8, 3, (int64_t[]){n, h, w}, pix, compress, &error));
  g_assert_true (bp_idx_write (labels, BP_IDX_U8, 1, (int64_t[]){n}, lab, compress, &error));
  g_assert_no_error (error);
  g_free (pix);
  g_free (lab);
}

static void
test_dataset_idx_pair (void)
{
  char *dir = make_tmp_dir ();
  char *images = g_build_filename (dir, "imgs.gz", NULL);
  char *labels = g_build_filename (dir, "labs.gz", NULL);
  write_pair (images, labels, 7, 4, 3, TRUE);
  GError *error = NULL;

  BpDataset *ds = bp_dataset_load_idx (images, labels, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (ds->name, ==, "imgs.gz");
  g_assert_cmpint (ds->n, ==, 7);
  g_assert_cmpint (ds->example_ndim, ==, 3);
  g_assert_cmpint (ds->example_shape[0], ==, 1);
  g_assert_cmpint (ds->example_shape[1], ==, 4);
  g_assert_cmpint (ds->example_shape[2], ==, 3);
  g_assert_cmpint (ds->example_numel, ==, 12);
  g_assert_cmpint (ds->n_classes, ==, 5);
  g_assert_cmpuint (g_strv_length (ds->class_names), ==, 5);
  g_assert_cmpstr (ds->class_names[4], ==, "4");
  for (int64_t i = 0; i < 7 * 12; i++)
    g_assert_cmpfloat_with_epsilon (ds->x[i], (float) ((i * 31) % 256) / 255.0f, 1e-6);
  for (int64_t i = 0; i < 7; i++)
    g_assert_cmpfloat (ds->y[i], ==, (float) ((i * 3) % 5));
  bp_dataset_unref (ds);

  /* own normalisation and a limit */
  BpDatasetOptions opts = BP_DATASET_OPTIONS_INIT;
  opts.limit = 3;
  opts.custom_norm = TRUE;
  opts.mean = 0.5f;
  opts.std = 0.25f;
  ds = bp_dataset_load_idx (images, labels, &opts, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ds->n, ==, 3);
  g_assert_cmpfloat (ds->mean, ==, 0.5f);
  g_assert_cmpfloat (ds->std, ==, 0.25f);
  for (int64_t i = 0; i < 3 * 12; i++)
    g_assert_cmpfloat_with_epsilon (ds->x[i], ((float) ((i * 31) % 256) / 255.0f - 0.5f) / 0.25f,
                                    1e-5);
  g_assert_cmpfloat (ds->y[2], ==, 1.0f);
  double mean, std;
  bp_dataset_stats (ds, &mean, &std);
  g_assert_cmpfloat (std, >, 0.5);
  bp_dataset_unref (ds);

  /* features (n, F) as float32 keep their values; labels as int32 */
  float feats[4 * 3];
  gint32 flab[4] = {0, 2, 1, 2};
  for (int i = 0; i < 12; i++)
    feats[i] = (float) i * 1.5f - 4.0f;
  char *fpath = g_build_filename (dir, "feats.idx", NULL);
  char *lpath = g_build_filename (dir, "flabs.idx", NULL);
  g_assert_true (bp_idx_write (fpath, BP_IDX_F32, 2, (int64_t[]){4, 3}, feats, FALSE, &error));
  g_assert_true (bp_idx_write (lpath, BP_IDX_I32, 1, (int64_t[]){4}, flab, FALSE, &error));
  ds = bp_dataset_load_idx (fpath, lpath, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ds->example_ndim, ==, 1);
  g_assert_cmpint (ds->example_shape[0], ==, 3);
  g_assert_cmpint (ds->n_classes, ==, 3);
  g_assert_cmpmem (ds->x, sizeof feats, feats, sizeof feats);
  g_assert_cmpfloat (ds->y[1], ==, 2.0f);
  bp_dataset_unref (ds);
  g_unlink (fpath);
  g_unlink (lpath);
  g_free (fpath);
  g_free (lpath);

  g_unlink (images);
  g_unlink (labels);
  g_free (images);
  g_free (labels);
  bp_test_remove_tree (dir);
  g_free (dir);
}

static void
test_dataset_idx_errors (void)
{
  char *dir = make_tmp_dir ();
  char *images = g_build_filename (dir, "imgs", NULL);
  char *labels = g_build_filename (dir, "labs", NULL);
  char *other = g_build_filename (dir, "labs6.gz", NULL);
  write_pair (images, labels, 7, 4, 3, FALSE);
  GError *error = NULL;

  /* labels count differs from the images: named both, with or without a limit */
  guint8 lab[7] = {0, 1, 2, 3, 4, 5, 6};
  g_assert_true (bp_idx_write (other, BP_IDX_U8, 1, (int64_t[]){6}, lab, TRUE, &error));
  g_assert_null (bp_dataset_load_idx (images, other, NULL, &error));
  assert_error_names_file (error, BP_DATA_ERROR_MISMATCH, other, "6 labels");
  g_assert_nonnull (strstr (error->message, images));
  g_assert_nonnull (strstr (error->message, "7 examples"));
  g_clear_error (&error);
  BpDatasetOptions opts = BP_DATASET_OPTIONS_INIT;
  opts.limit = 2;
  g_assert_null (bp_dataset_load_idx (images, other, &opts, &error));
  g_assert_error (error, BP_DATA_ERROR, BP_DATA_ERROR_MISMATCH);
  g_clear_error (&error);

  /* labels that are not class indices */
  gint8 neg[7] = {0, 1, -1, 0, 0, 0, 0};
  g_assert_true (bp_idx_write (other, BP_IDX_I8, 1, (int64_t[]){7}, neg, FALSE, &error));
  g_assert_null (bp_dataset_load_idx (images, other, NULL, &error));
  assert_error_names_file (error, BP_DATA_ERROR_FORMAT, other, "label -1 of example 2");
  g_clear_error (&error);
  float frac[7] = {0, 1, 2, 1.5f, 0, 0, 0};
  g_assert_true (bp_idx_write (other, BP_IDX_F32, 1, (int64_t[]){7}, frac, FALSE, &error));
  g_assert_null (bp_dataset_load_idx (images, other, NULL, &error));
  assert_error_names_file (error, BP_DATA_ERROR_FORMAT, other, "label 1.5 of example 3");
  g_clear_error (&error);
  guint8 two_d[14] = {0};
  g_assert_true (bp_idx_write (other, BP_IDX_U8, 2, (int64_t[]){7, 2}, two_d, FALSE, &error));
  g_assert_null (bp_dataset_load_idx (images, other, NULL, &error));
  assert_error_names_file (error, BP_DATA_ERROR_FORMAT, other, "1 dimension");
  g_clear_error (&error);

  /* a broken images file (data cut short) reports the images file */
  char *contents;
  gsize len;
  g_assert_true (g_file_get_contents (images, &contents, &len, NULL));
  write_file (images, contents, len - 5, FALSE);
  g_free (contents);
  g_assert_null (bp_dataset_load_idx (images, labels, NULL, &error));
  assert_error_names_file (error, BP_DATA_ERROR_FORMAT, images, "truncated data");
  g_clear_error (&error);
  g_unlink (images);
  g_assert_null (bp_dataset_load_idx (images, labels, NULL, &error));
  assert_error_names_file (error, BP_DATA_ERROR_NOT_FOUND, images, "cannot open");
  g_clear_error (&error);

  /* bad options */
  write_pair (images, labels, 7, 4, 3, FALSE);
  opts.limit = -1;
  g_assert_null (bp_dataset_load_idx (images, labels, &opts, &error));
  g_assert_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID);
  g_clear_error (&error);
  opts.limit = 0;
  opts.custom_norm = TRUE;
  opts.std = 0.0f;
  g_assert_null (bp_dataset_load_idx (images, labels, &opts, &error));
  g_assert_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID);
  g_clear_error (&error);

  /* caller-made data sets check their sizes */
  g_assert_null (bp_dataset_new ("bad", 5, 0, NULL, 2, NULL, &error));
  g_assert_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_null (bp_dataset_new ("bad", 5, 1, (int64_t[]){-3}, 2, NULL, &error));
  g_assert_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_null (bp_dataset_new ("huge", (int64_t) 1 << 40, 1, (int64_t[]){1 << 20}, 2, NULL,
                                 &error));
  g_assert_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID);
  g_clear_error (&error);
  const char *names[] = {"a", "b", NULL};
  g_assert_null (bp_dataset_new ("names", 5, 1, (int64_t[]){2}, 3, names, &error));
  g_assert_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID);
  g_clear_error (&error);

  g_unlink (images);
  g_unlink (labels);
  g_unlink (other);
  g_free (images);
  g_free (labels);
  g_free (other);
  bp_test_remove_tree (dir);
  g_free (dir);
}

/* ---- installed data sets ---- */

static void
test_dataset_not_installed (void)
{
  char *saved = g_strdup (g_getenv ("BP_DATASETS_DIR"));
  char *dir = make_tmp_dir ();
  g_setenv ("BP_DATASETS_DIR", dir, TRUE);
  g_assert_cmpstr (bp_datasets_dir (), ==, dir);
  GError *error = NULL;
  g_assert_null (bp_dataset_load ("fashion-mnist", "train", &error));
  g_assert_error (error, BP_DATA_ERROR, BP_DATA_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "dataset-fashion-mnist"));
  g_assert_nonnull (strstr (error->message, dir));
  g_assert_nonnull (strstr (error->message, "train-images-idx3-ubyte"));
  g_test_message ("%s", error->message);
  g_clear_error (&error);
  /* the check without loading says the same */
  g_assert_false (bp_dataset_check_installed ("fashion-mnist", &error));
  g_assert_error (error, BP_DATA_ERROR, BP_DATA_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "apt install dataset-fashion-mnist"));
  g_assert_nonnull (strstr (error->message, dir));
  g_clear_error (&error);
  /* generated sets need no folder */
  g_assert_true (bp_dataset_check_installed ("moons", &error));
  g_assert_no_error (error);

  /* an unknown name: the message lists every known one */
  g_assert_null (bp_dataset_load ("imagenet", "train", &error));
  g_assert_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "imagenet"));
  for (const char *const *n = bp_dataset_names (); *n; n++)
    g_assert_nonnull (strstr (error->message, *n));
  g_assert_nonnull (strstr (error->message, "fashion-mnist"));
  g_assert_nonnull (strstr (error->message, "two-spirals"));
  g_clear_error (&error);
  g_assert_false (bp_dataset_check_installed ("imagenet", &error));
  g_assert_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_null (bp_dataset_load ("two-spirals", "validation", &error));
  g_assert_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_null (bp_dataset_load ("fashion-mnist", "validation", &error));
  g_assert_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "validation"));
  g_clear_error (&error);

  /* an empty variable means the default folder */
  g_setenv ("BP_DATASETS_DIR", "", TRUE);
  g_assert_cmpstr (bp_datasets_dir (), ==, BP_DATASETS_DIR);

  if (saved)
    g_setenv ("BP_DATASETS_DIR", saved, TRUE);
  else
    g_unsetenv ("BP_DATASETS_DIR");
  g_free (saved);
  bp_test_remove_tree (dir);
  g_free (dir);
}

/* A new data set: classification, no per-column statistics or source rows, target mean 0 and
 * std 1; a regression set is made by changing the task. */
static void
test_dataset_new_defaults (void)
{
  GError *error = NULL;
  BpDataset *ds = bp_dataset_new ("toy", 4, 1, (const int64_t[]){3}, 2, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ds->task, ==, BP_TASK_CLASSIFICATION);
  g_assert_null (ds->feature_mean);
  g_assert_null (ds->feature_std);
  g_assert_null (ds->source_rows);
  g_assert_cmpfloat (ds->target_mean, ==, 0.0);
  g_assert_cmpfloat (ds->target_std, ==, 1.0);
  g_assert_cmpfloat (ds->mean, ==, 0.0f);
  g_assert_cmpfloat (ds->std, ==, 1.0f);
  bp_dataset_unref (ds);
  ds = bp_dataset_new ("reg", 4, 1, (const int64_t[]){3}, 0, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ds->n_classes, ==, 0);
  g_assert_nonnull (ds->class_names);
  g_assert_null (ds->class_names[0]);
  /* the loader hands a regression's real-valued targets through as they are */
  ds->task = BP_TASK_REGRESSION;
  for (int i = 0; i < 4; i++)
    ds->y[i] = -1.5f + 0.75f * (float) i;
  BpLoaderOptions o = BP_LOADER_OPTIONS_INIT;
  o.batch_size = 4;
  BpLoader *l = bp_loader_new (ds, NULL, &o, &error);
  g_assert_no_error (error);
  BpTensor *x, *y;
  g_assert_true (bp_loader_next (l, &x, &y));
  g_assert_cmpmem (y->data, 4 * sizeof (float), ds->y, 4 * sizeof (float));
  bp_loader_free (l);
  bp_dataset_unref (ds);
}

static void
test_dataset_override_dir (void)
{
  /* a small fake Fashion-MNIST: train as gzip files, test as plain ones */
  char *saved = g_strdup (g_getenv ("BP_DATASETS_DIR"));
  char *dir = make_tmp_dir ();
  char *sub = g_build_filename (dir, "fashion-mnist", NULL);
  g_assert_cmpint (g_mkdir (sub, 0700), ==, 0);
  char *tri = g_build_filename (sub, "train-images-idx3-ubyte.gz", NULL);
  char *trl = g_build_filename (sub, "train-labels-idx1-ubyte.gz", NULL);
  char *tei = g_build_filename (sub, "t10k-images-idx3-ubyte", NULL);
  char *tel = g_build_filename (sub, "t10k-labels-idx1-ubyte", NULL);
  write_pair (tri, trl, 9, 28, 28, TRUE);
  write_pair (tei, tel, 4, 28, 28, FALSE);
  g_setenv ("BP_DATASETS_DIR", dir, TRUE);

  GError *error = NULL;
  BpDataset *ds = bp_dataset_load ("fashion-mnist", "train", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (ds->name, ==, "fashion-mnist");
  g_assert_cmpint (ds->n, ==, 9);
  g_assert_cmpint (ds->n_classes, ==, 10); /* although these labels only reach 4 */
  g_assert_cmpstr (ds->class_names[0], ==, "T-shirt/top");
  g_assert_cmpstr (ds->class_names[9], ==, "Ankle boot");
  g_assert_null (ds->class_names[10]);
  g_assert_cmpfloat (ds->mean, ==, BP_FASHION_MNIST_MEAN);
  g_assert_cmpfloat (ds->std, ==, BP_FASHION_MNIST_STD);
  g_assert_cmpfloat_with_epsilon (ds->x[5], ((155.0f / 255.0f) - 0.2860f) / 0.3530f, 1e-5);
  bp_dataset_unref (ds);
  BpDatasetOptions opts = BP_DATASET_OPTIONS_INIT;
  opts.limit = 2;
  ds = bp_dataset_load_full ("fashion-mnist", "test", &opts, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ds->n, ==, 2);
  bp_dataset_unref (ds);

  /* a label beyond the ten classes */
  guint8 lab[4] = {0, 1, 10, 2};
  g_assert_true (bp_idx_write (tel, BP_IDX_U8, 1, (int64_t[]){4}, lab, FALSE, &error));
  g_assert_null (bp_dataset_load ("fashion-mnist", "test", &error));
  assert_error_names_file (error, BP_DATA_ERROR_FORMAT, tel, "label 10 of example 2");
  g_clear_error (&error);
  /* a missing labels file names the labels file */
  g_unlink (tel);
  g_assert_null (bp_dataset_load ("fashion-mnist", "test", &error));
  g_assert_error (error, BP_DATA_ERROR, BP_DATA_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "t10k-labels-idx1-ubyte"));
  g_clear_error (&error);

  if (saved)
    g_setenv ("BP_DATASETS_DIR", saved, TRUE);
  else
    g_unsetenv ("BP_DATASETS_DIR");
  g_free (saved);
  g_free (tri);
  g_free (trl);
  g_free (tei);
  g_free (tel);
  g_free (sub);
  bp_test_remove_tree (dir);
  g_free (dir);
}

/* Known facts of the real files: counts, the first labels, pixels 300..305 of image 0 and the
 * pixel statistics (computed with Python from the same files). */
typedef struct {
  const char *split;
  int64_t n;
  float first_labels[10];
  guint8 pixels[6];
  double mean, std;
} FashionFacts;

static void
test_fashion_mnist (gconstpointer data)
{
  const FashionFacts *facts = data;
  char *images = g_build_filename (bp_datasets_dir (), "fashion-mnist",
                                   "train-images-idx3-ubyte.gz", NULL);
  gboolean installed = g_file_test (images, G_FILE_TEST_EXISTS);
  if (!installed) {
    char *msg = g_strdup_printf ("Fashion-MNIST is not installed (%s not found): install the "
                                 "package dataset-fashion-mnist", images);
    g_test_skip (msg);
    g_free (msg);
    g_free (images);
    return;
  }
  g_free (images);
  GError *error = NULL;
  gint64 t0 = g_get_monotonic_time ();
  BpDataset *ds = bp_dataset_load ("fashion-mnist", facts->split, &error);
  double secs = (double) (g_get_monotonic_time () - t0) / 1e6;
  g_assert_no_error (error);
  g_test_message ("loaded Fashion-MNIST %s (%lld images) in %.3f s", facts->split,
                  (long long) ds->n, secs);
  g_assert_cmpint (ds->n, ==, facts->n);
  g_assert_cmpint (ds->example_ndim, ==, 3);
  g_assert_cmpint (ds->example_shape[0], ==, 1);
  g_assert_cmpint (ds->example_shape[1], ==, 28);
  g_assert_cmpint (ds->example_shape[2], ==, 28);
  g_assert_cmpint (ds->n_classes, ==, 10);
  g_assert_cmpstr (ds->class_names[7], ==, "Sneaker");
  for (int i = 0; i < 10; i++)
    g_assert_cmpfloat (ds->y[i], ==, facts->first_labels[i]);
  for (int i = 0; i < 6; i++)
    g_assert_cmpfloat_with_epsilon (ds->x[300 + i],
                                    ((float) facts->pixels[i] / 255.0f - 0.2860f) / 0.3530f, 1e-5);
  /* the classes are balanced */
  int64_t counts[10] = {0};
  for (int64_t i = 0; i < ds->n; i++)
    counts[(int) ds->y[i]]++;
  for (int c = 0; c < 10; c++)
    g_assert_cmpint (counts[c], ==, ds->n / 10);
  /* statistics of the [0, 1] pixels, recovered from the normalised ones */
  double mean, std;
  bp_dataset_stats (ds, &mean, &std);
  double raw_mean = mean * ds->std + ds->mean, raw_std = std * ds->std;
  g_test_message ("pixel mean %.5f std %.5f", raw_mean, raw_std);
  g_assert_cmpfloat (fabs (raw_mean - facts->mean), <, 1e-4);
  g_assert_cmpfloat (fabs (raw_std - facts->std), <, 1e-4);

  /* a full shuffled epoch in batches of 128 */
  BpLoaderOptions lo = BP_LOADER_OPTIONS_INIT;
  lo.batch_size = 128;
  lo.shuffle = TRUE;
  lo.seed = 1;
  BpLoader *loader = bp_loader_new (ds, NULL, &lo, &error);
  g_assert_no_error (error);
  BpTensor *x, *y;
  int64_t seen = 0, batches = 0;
  t0 = g_get_monotonic_time ();
  while (bp_loader_next (loader, &x, &y)) {
    seen += x->shape[0];
    batches++;
  }
  secs = (double) (g_get_monotonic_time () - t0) / 1e6;
  g_test_message ("one epoch of %lld batches in %.3f s", (long long) batches, secs);
  g_assert_cmpint (seen, ==, ds->n);
  g_assert_cmpint (batches, ==, bp_loader_n_batches (loader));
  bp_loader_free (loader);
  bp_dataset_unref (ds);

  /* a limit reads only the first examples */
  BpDatasetOptions opts = BP_DATASET_OPTIONS_INIT;
  opts.limit = 100;
  ds = bp_dataset_load_full ("fashion-mnist", facts->split, &opts, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ds->n, ==, 100);
  for (int i = 0; i < 10; i++)
    g_assert_cmpfloat (ds->y[i], ==, facts->first_labels[i]);
  bp_dataset_unref (ds);
}

static const FashionFacts fashion_train = {
  "train", 60000, {9, 0, 0, 3, 0, 2, 7, 2, 5, 5}, {210, 211, 213, 223, 220, 243},
  0.2860406, 0.3530242,
};
static const FashionFacts fashion_test = {
  "test", 10000, {9, 2, 1, 1, 6, 1, 4, 6, 5, 7}, {157, 166, 135, 154, 168, 140},
  0.2868493, 0.3524442,
};

/* ---- splits ---- */

static void
test_split (void)
{
  BpDataset *ds = toy_dataset (1000, 1, (int64_t[]){2}, 3);
  GError *error = NULL;
  BpIndices *train, *val;
  g_assert_true (bp_dataset_split (ds, 100, 7, &train, &val, &error));
  g_assert_no_error (error);
  g_assert_cmpint (train->n, ==, 900);
  g_assert_cmpint (val->n, ==, 100);
  /* disjoint, covering, each in increasing order */
  guint8 *seen = g_malloc0 (1000);
  for (int64_t i = 0; i < train->n; i++) {
    g_assert_cmpint (seen[train->idx[i]]++, ==, 0);
    if (i)
      g_assert_cmpint (train->idx[i - 1], <, train->idx[i]);
  }
  for (int64_t i = 0; i < val->n; i++) {
    g_assert_cmpint (seen[val->idx[i]]++, ==, 0);
    if (i)
      g_assert_cmpint (val->idx[i - 1], <, val->idx[i]);
  }
  for (int i = 0; i < 1000; i++)
    g_assert_cmpint (seen[i], ==, 1);
  /* the validation examples are spread over the set, not its first 100 */
  g_assert_cmpint (val->idx[val->n - 1], >, 500);

  /* the same seed gives the same split, whatever the engine RNG did in between */
  bp_rng_seed (99);
  bp_rng_u64 ();
  BpIndices *train2, *val2;
  g_assert_true (bp_dataset_split (ds, 100, 7, &train2, &val2, &error));
  g_assert_cmpmem (val2->idx, 100 * sizeof (int64_t), val->idx, 100 * sizeof (int64_t));
  g_assert_cmpmem (train2->idx, 900 * sizeof (int64_t), train->idx, 900 * sizeof (int64_t));
  bp_indices_free (train2);
  bp_indices_free (val2);
  /* another seed, another split */
  g_assert_true (bp_dataset_split (ds, 100, 8, &train2, &val2, &error));
  g_assert_true (memcmp (val2->idx, val->idx, 100 * sizeof (int64_t)) != 0);
  bp_indices_free (train2);
  bp_indices_free (val2);

  /* edges and errors */
  g_assert_true (bp_dataset_split (ds, 0, 1, &train2, &val2, &error));
  g_assert_cmpint (val2->n, ==, 0);
  g_assert_cmpint (train2->n, ==, 1000);
  g_assert_cmpint (train2->idx[999], ==, 999);
  bp_indices_free (train2);
  bp_indices_free (val2);
  g_assert_true (bp_dataset_split (ds, 1000, 1, &train2, &val2, &error));
  g_assert_cmpint (val2->n, ==, 1000);
  g_assert_cmpint (train2->n, ==, 0);
  bp_indices_free (train2);
  bp_indices_free (val2);
  train2 = val2 = NULL;
  g_assert_false (bp_dataset_split (ds, 1001, 1, &train2, &val2, &error));
  g_assert_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "1001"));
  g_clear_error (&error);
  g_assert_false (bp_dataset_split (ds, -1, 1, &train2, &val2, &error));
  g_assert_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_null (train2);

  g_free (seen);
  bp_indices_free (train);
  bp_indices_free (val);
  bp_dataset_unref (ds);
}

/* ---- loader ---- */

/* Runs one epoch and returns the visited indices (checking each batch's contents against the
 * data set). */
static GArray *
run_epoch (BpLoader *l)
{
  BpDataset *ds = bp_loader_dataset (l);
  GArray *order = g_array_new (FALSE, FALSE, sizeof (int64_t));
  BpTensor *x, *y;
  int64_t epoch = bp_loader_epoch (l);
  while (bp_loader_next (l, &x, &y)) {
    int64_t b;
    const int64_t *idx = bp_loader_batch_indices (l, &b);
    g_assert_cmpint (b, ==, x->shape[0]);
    g_assert_cmpint (b, ==, y->shape[0]);
    g_assert_cmpint (y->ndim, ==, 1);
    for (int64_t k = 0; k < b; k++) {
      g_assert_cmpmem (x->data + k * ds->example_numel, ds->example_numel * sizeof (float),
                       ds->x + idx[k] * ds->example_numel, ds->example_numel * sizeof (float));
      g_assert_cmpfloat (y->data[k], ==, ds->y[idx[k]]);
    }
    g_array_append_vals (order, idx, (guint) b);
  }
  g_assert_null (x);
  g_assert_null (y);
  g_assert_cmpint (bp_loader_epoch (l), ==, epoch + 1);
  return order;
}

static void
test_loader_cover (void)
{
  BpDataset *ds = toy_dataset (103, 2, (int64_t[]){2, 3}, 7);
  GError *error = NULL;
  BpLoaderOptions o = BP_LOADER_OPTIONS_INIT;
  o.batch_size = 10;
  o.shuffle = TRUE;
  o.seed = 3;
  BpLoader *l = bp_loader_new (ds, NULL, &o, &error);
  g_assert_no_error (error);
  g_assert_cmpint (bp_loader_n_examples (l), ==, 103);
  g_assert_cmpint (bp_loader_n_batches (l), ==, 11);
  for (int epoch = 0; epoch < 3; epoch++) {
    GArray *order = run_epoch (l);
    g_assert_cmpuint (order->len, ==, 103);
    int seen[103] = {0};
    for (guint i = 0; i < order->len; i++)
      seen[g_array_index (order, int64_t, i)]++;
    for (int i = 0; i < 103; i++)
      g_assert_cmpint (seen[i], ==, 1);
    g_array_unref (order);
  }
  bp_loader_free (l);

  /* drop_last: 10 full batches, 100 different examples, none repeated */
  o.drop_last = TRUE;
  l = bp_loader_new (ds, NULL, &o, &error);
  g_assert_cmpint (bp_loader_n_batches (l), ==, 10);
  GArray *order = run_epoch (l);
  g_assert_cmpuint (order->len, ==, 100);
  int seen[103] = {0};
  for (guint i = 0; i < order->len; i++)
    g_assert_cmpint (seen[g_array_index (order, int64_t, i)]++, ==, 0);
  g_array_unref (order);
  bp_loader_free (l);

  /* over a training split: exactly its members, each once */
  BpIndices *train, *val;
  g_assert_true (bp_dataset_split (ds, 23, 5, &train, &val, &error));
  o.drop_last = FALSE;
  l = bp_loader_new (ds, train, &o, &error);
  g_assert_no_error (error);
  g_assert_cmpint (bp_loader_n_examples (l), ==, 80);
  order = run_epoch (l);
  g_assert_cmpuint (order->len, ==, 80);
  int in_train[103] = {0};
  for (int64_t i = 0; i < train->n; i++)
    in_train[train->idx[i]] = 1;
  memset (seen, 0, sizeof seen);
  for (guint i = 0; i < order->len; i++) {
    int64_t k = g_array_index (order, int64_t, i);
    g_assert_true (in_train[k]);
    g_assert_cmpint (seen[k]++, ==, 0);
  }
  g_array_unref (order);
  bp_loader_free (l);
  bp_indices_free (train);
  bp_indices_free (val);
  bp_dataset_unref (ds);
}

static void
test_loader_repeatable (void)
{
  BpDataset *ds = toy_dataset (50, 1, (int64_t[]){4}, 5);
  GError *error = NULL;
  BpLoaderOptions o = BP_LOADER_OPTIONS_INIT;
  o.batch_size = 8;
  o.shuffle = TRUE;
  o.seed = 11;
  BpLoader *a = bp_loader_new (ds, NULL, &o, &error);
  BpLoader *b = bp_loader_new (ds, NULL, &o, &error);
  o.seed = 12;
  BpLoader *c = bp_loader_new (ds, NULL, &o, &error);
  g_assert_no_error (error);
  GArray *first = NULL;
  for (int epoch = 0; epoch < 3; epoch++) {
    GArray *oa = run_epoch (a);
    bp_rng_seed ((uint64_t) epoch + 1000); /* the engine RNG does not matter */
    GArray *ob = run_epoch (b);
    GArray *oc = run_epoch (c);
    g_assert_cmpmem (oa->data, oa->len * sizeof (int64_t), ob->data, ob->len * sizeof (int64_t));
    g_assert_true (memcmp (oa->data, oc->data, oa->len * sizeof (int64_t)) != 0);
    if (epoch == 0) {
      first = g_array_ref (oa);
      /* shuffled: not the identity order */
      gboolean identity = TRUE;
      for (guint i = 0; i < oa->len; i++)
        identity = identity && g_array_index (oa, int64_t, i) == (int64_t) i;
      g_assert_false (identity);
    } else {
      /* each epoch has an order of its own */
      g_assert_true (memcmp (oa->data, first->data, oa->len * sizeof (int64_t)) != 0);
    }
    if (epoch == 1) {
      /* a resumed run: a fresh loader set to epoch 1 repeats it */
      o.seed = 11;
      BpLoader *r = bp_loader_new (ds, NULL, &o, &error);
      bp_loader_set_epoch (r, 1);
      GArray *orr = run_epoch (r);
      g_assert_cmpmem (orr->data, orr->len * sizeof (int64_t), oa->data,
                       oa->len * sizeof (int64_t));
      g_array_unref (orr);
      bp_loader_free (r);
    }
    g_array_unref (oa);
    g_array_unref (ob);
    g_array_unref (oc);
  }
  /* back to epoch 0 gives the first order again */
  bp_loader_set_epoch (a, 0);
  GArray *again = run_epoch (a);
  g_assert_cmpmem (again->data, again->len * sizeof (int64_t), first->data,
                   first->len * sizeof (int64_t));
  g_array_unref (again);
  g_array_unref (first);
  bp_loader_free (a);
  bp_loader_free (b);
  bp_loader_free (c);

  /* without shuffle: the subset's own order, every epoch */
  BpIndices *sub = bp_indices_new_range (5);
  const int64_t pick[5] = {42, 3, 17, 3, 0};
  memcpy (sub->idx, pick, sizeof pick);
  o.shuffle = FALSE;
  o.batch_size = 2;
  BpLoader *s = bp_loader_new (ds, sub, &o, &error);
  g_assert_no_error (error);
  for (int epoch = 0; epoch < 2; epoch++) {
    GArray *os = run_epoch (s);
    g_assert_cmpmem (os->data, os->len * sizeof (int64_t), pick, sizeof pick);
    g_array_unref (os);
  }
  bp_loader_free (s);
  bp_indices_free (sub);
  bp_dataset_unref (ds);
}

static void
test_loader_shapes (void)
{
  BpDataset *ds = toy_dataset (7, 3, (int64_t[]){1, 2, 3}, 2);
  GError *error = NULL;
  BpLoaderOptions o = BP_LOADER_OPTIONS_INIT;
  o.batch_size = 3;
  BpLoader *l = bp_loader_new (ds, NULL, &o, &error);
  g_assert_no_error (error);
  BpTensor *x, *y;
  const int64_t sizes[] = {3, 3, 1};
  BpTensor *first_x = NULL;
  for (int e = 0; e < 2; e++) {
    for (int k = 0; k < 3; k++) {
      g_assert_true (bp_loader_next (l, &x, &y));
      g_assert_cmpint (x->ndim, ==, 4);
      g_assert_cmpint (x->shape[0], ==, sizes[k]);
      g_assert_cmpint (x->shape[1], ==, 1);
      g_assert_cmpint (x->shape[2], ==, 2);
      g_assert_cmpint (x->shape[3], ==, 3);
      g_assert_cmpint (x->numel, ==, sizes[k] * 6);
      g_assert_cmpint (y->ndim, ==, 1);
      g_assert_cmpint (y->shape[0], ==, sizes[k]);
      g_assert_cmpint (x->device, ==, BP_DEVICE_CPU);
      /* unshuffled: example 3k first, its values 3k + j / 1000 */
      g_assert_cmpfloat (x->data[0], ==, (float) (3 * k));
      g_assert_cmpfloat (x->data[5], ==, (float) (3 * k) + 0.005f);
      g_assert_cmpfloat (y->data[0], ==, (float) ((3 * k) % 2));
      /* full batches reuse one tensor */
      if (k == 0 && e == 0)
        first_x = x;
      else if (k < 2)
        g_assert_true (x == first_x);
    }
    g_assert_false (bp_loader_next (l, &x, &y));
  }

  /* a batch the caller keeps is not overwritten: the next one goes into a fresh tensor */
  g_assert_true (bp_loader_next (l, &x, &y));
  BpTensor *kept = bp_tensor_ref (x);
  g_assert_true (bp_loader_next (l, &x, &y));
  g_assert_true (x != kept);
  g_assert_cmpfloat (kept->data[0], ==, 0.0f);
  g_assert_cmpfloat (x->data[0], ==, 3.0f);
  bp_tensor_unref (kept);
  /* and one marked for gradients (saliency) is not reused either */
  x->requires_grad = true;
  BpTensor *marked = x;
  g_assert_true (bp_loader_next (l, &x, &y));
  g_assert_cmpint (x->shape[0], ==, 1);
  g_assert_false (bp_loader_next (l, &x, &y));
  g_assert_true (bp_loader_next (l, &x, &y));
  g_assert_true (x != marked);
  g_assert_false (x->requires_grad);
  bp_loader_free (l);

  /* a batch larger than the set: one batch of everything; with drop_last, none */
  o.batch_size = 10;
  l = bp_loader_new (ds, NULL, &o, &error);
  g_assert_cmpint (bp_loader_n_batches (l), ==, 1);
  g_assert_true (bp_loader_next (l, &x, &y));
  g_assert_cmpint (x->shape[0], ==, 7);
  g_assert_false (bp_loader_next (l, &x, &y));
  bp_loader_free (l);
  o.drop_last = TRUE;
  l = bp_loader_new (ds, NULL, &o, &error);
  g_assert_cmpint (bp_loader_n_batches (l), ==, 0);
  g_assert_false (bp_loader_next (l, &x, &y));
  g_assert_cmpint (bp_loader_epoch (l), ==, 1);
  bp_loader_free (l);

  /* an empty subset has no batches */
  BpIndices *none = bp_indices_new_range (0);
  o.drop_last = FALSE;
  l = bp_loader_new (ds, none, &o, &error);
  g_assert_no_error (error);
  g_assert_cmpint (bp_loader_n_batches (l), ==, 0);
  g_assert_false (bp_loader_next (l, &x, &y));
  bp_loader_free (l);
  bp_indices_free (none);

  /* the loader keeps the data set alive */
  l = bp_loader_new (ds, NULL, &o, &error);
  bp_dataset_unref (ds);
  g_assert_true (bp_loader_next (l, &x, &y));
  g_assert_cmpfloat (x->data[6], ==, 1.0f);
  bp_loader_free (l);
}

static void
test_loader_errors (void)
{
  BpDataset *ds = toy_dataset (10, 1, (int64_t[]){3}, 2);
  GError *error = NULL;
  BpLoaderOptions o = BP_LOADER_OPTIONS_INIT;
  o.batch_size = 0;
  g_assert_null (bp_loader_new (ds, NULL, &o, &error));
  g_assert_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "batch size 0"));
  g_clear_error (&error);
  o.batch_size = 4;
  BpIndices *bad = bp_indices_new_range (3);
  bad->idx[1] = 10;
  g_assert_null (bp_loader_new (ds, bad, &o, &error));
  g_assert_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "index 10"));
  g_clear_error (&error);
  bad->idx[1] = -1;
  g_assert_null (bp_loader_new (ds, bad, &o, &error));
  g_assert_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID);
  g_clear_error (&error);
  bp_indices_free (bad);
  g_assert_cmpint (ds->ref_count, ==, 1);
  bp_dataset_unref (ds);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  bp_set_num_threads (1);
  g_test_add_func ("/data/idx/roundtrip", test_idx_roundtrip);
  g_test_add_func ("/data/idx/malformed", test_idx_malformed);
  g_test_add_func ("/data/dataset/idx-pair", test_dataset_idx_pair);
  g_test_add_func ("/data/dataset/idx-errors", test_dataset_idx_errors);
  g_test_add_func ("/data/dataset/not-installed", test_dataset_not_installed);
  g_test_add_func ("/data/dataset/override-dir", test_dataset_override_dir);
  g_test_add_func ("/data/dataset/new-defaults", test_dataset_new_defaults);
  g_test_add_data_func ("/data/fashion-mnist/train", &fashion_train, test_fashion_mnist);
  g_test_add_data_func ("/data/fashion-mnist/test", &fashion_test, test_fashion_mnist);
  g_test_add_func ("/data/split", test_split);
  g_test_add_func ("/data/loader/cover", test_loader_cover);
  g_test_add_func ("/data/loader/repeatable", test_loader_repeatable);
  g_test_add_func ("/data/loader/shapes", test_loader_shapes);
  g_test_add_func ("/data/loader/errors", test_loader_errors);
  return g_test_run ();
}
