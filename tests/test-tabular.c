/* test-tabular.c: scikit-learn's tabular data sets against scikit-learn itself, their fixed
 * splits and malformed copies, the generated 2-D sets, and training on them: digits with an
 * MLP, diabetes regression against scikit-learn's LinearRegression, two spirals with the
 * decision boundary, resuming a regression, the recorder's R² and the CLI. */
#include "config.h"

#include "bp-test.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>
#include <zlib.h>

#include "bp-backend.h"
#include "bp-dataset.h"
#include "bp-rng.h"
#include "bp-recorder.h"
#include "bp-store.h"
#include "bp-trainer.h"
#include "cuda/bp-cuda.h"

static const char *const sklearn_sets[] = {"digits", "iris", "wine", "breast-cancer", "diabetes"};

/* ---- scikit-learn as the reference ---- */

static const char *
python_path (void)
{
  const char *env = g_getenv ("BP_TEST_PYTHON");
  return env && *env ? env : "/usr/bin/python3";
}

/* Runs `code` in Python with numpy and scikit-learn and returns its standard output; NULL with
 * the test skipped (and a message saying why) when they are not installed. */
static char *
run_sklearn (const char *code)
{
  if (!g_file_test (python_path (), G_FILE_TEST_IS_EXECUTABLE)) {
    g_test_skip ("python3 is not installed: the scikit-learn reference needs it");
    return NULL;
  }
  g_autofree char *full = g_strconcat ("import sys\n"
                                       "try:\n"
                                       "    import numpy, sklearn, sklearn.datasets\n"
                                       "except ImportError:\n"
                                       "    print('NO-SKLEARN')\n"
                                       "    sys.exit(0)\n",
                                       code, NULL);
  const char *argv[] = {python_path (), "-c", full, NULL};
  char *out = NULL, *err = NULL;
  int status = 0;
  g_autoptr (GError) error = NULL;
  g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out,
                               &err, &status, &error));
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("the scikit-learn reference failed:\n%s", err);
  g_free (err);
  if (g_str_has_prefix (out, "NO-SKLEARN")) {
    g_free (out);
    g_test_skip ("python3-sklearn (numpy and scikit-learn) is not installed: apt install "
                 "python3-sklearn");
    return NULL;
  }
  return out;
}

/* A data set as scikit-learn's load_* function gives it. */
typedef struct {
  int64_t n;
  int f;
  double *x, *y;
  char **names; /* target_names; empty for a regression */
} Reference;

static void
reference_free (Reference *r)
{
  g_free (r->x);
  g_free (r->y);
  g_strfreev (r->names);
  g_free (r);
}

static Reference *
reference_load (const char *name)
{
  const char *fn = strcmp (name, "breast-cancer") == 0 ? "load_breast_cancer()"
                   : strcmp (name, "diabetes") == 0    ? "load_diabetes(scaled=False)"
                                                       : NULL;
  g_autofree char *call = fn ? g_strdup (fn) : g_strdup_printf ("load_%s()", name);
  g_autofree char *code = g_strdup_printf (
    "d = sklearn.datasets.%s\n"
    "print(d.data.shape[0], d.data.shape[1])\n"
    "print('\\t'.join(str(v) for v in getattr(d, 'target_names', [])))\n"
    "for row, t in zip(d.data, d.target):\n"
    "    print(' '.join(repr(float(v)) for v in row), repr(float(t)))\n", call);
  g_autofree char *out = run_sklearn (code);
  if (!out)
    return NULL;
  g_auto (GStrv) lines = g_strsplit (out, "\n", -1);
  Reference *r = g_new0 (Reference, 1);
  g_assert_cmpint (sscanf (lines[0], "%" G_GINT64_FORMAT " %d", &r->n, &r->f), ==, 2);
  r->names = *lines[1] ? g_strsplit (lines[1], "\t", -1) : g_new0 (char *, 1);
  r->x = g_new (double, r->n * r->f);
  r->y = g_new (double, r->n);
  for (int64_t i = 0; i < r->n; i++) {
    g_auto (GStrv) v = g_strsplit (lines[2 + i], " ", -1);
    g_assert_cmpint (g_strv_length (v), ==, r->f + 1);
    for (int j = 0; j < r->f; j++)
      r->x[i * r->f + j] = g_ascii_strtod (v[j], NULL);
    r->y[i] = g_ascii_strtod (v[r->f], NULL);
  }
  return r;
}

static BpDataset *
load_split (const char *name, const char *split)
{
  g_autoptr (GError) error = NULL;
  BpDataset *ds = bp_dataset_load (name, split, &error);
  g_assert_no_error (error);
  g_assert_nonnull (ds);
  return ds;
}

/* Every file against scikit-learn: counts, classes, each example's values and label through
 * its source row, the train split's statistics, and splits that are disjoint and cover it. */
static void
test_sklearn (gconstpointer data)
{
  const char *name = data;
  const BpDatasetInfo *info = bp_dataset_info (name);
  g_assert_nonnull (info);
  Reference *ref = reference_load (name);
  if (!ref)
    return;
  g_assert_cmpint (ref->n, ==, info->n_train + info->n_test);
  g_assert_cmpint (info->n_test, ==, ref->n / 5);
  g_assert_cmpint (ref->f, ==, bp_shape_numel (info->example_ndim, info->example_shape));

  BpDataset *sets[2] = {load_split (name, "train"), load_split (name, "test")};
  guint8 *seen = g_new0 (guint8, ref->n);
  for (int s = 0; s < 2; s++) {
    BpDataset *ds = sets[s];
    g_assert_cmpstr (ds->name, ==, name);
    g_assert_cmpint (ds->n, ==, s == 0 ? info->n_train : info->n_test);
    g_assert_cmpint (ds->example_numel, ==, ref->f);
    g_assert_cmpint (ds->example_ndim, ==, info->example_ndim);
    g_assert_cmpint (ds->task, ==, info->task);
    g_assert_cmpint (ds->n_classes, ==, info->n_classes);
    g_assert_nonnull (ds->source_rows);
    if (info->task == BP_TASK_CLASSIFICATION) {
      g_assert_cmpint (g_strv_length (ref->names), ==, ds->n_classes);
      for (int c = 0; c < ds->n_classes; c++)
        g_assert_cmpstr (ds->class_names[c], ==, ref->names[c]);
    }
    for (int64_t i = 0; i < ds->n; i++) {
      int64_t row = ds->source_rows[i];
      g_assert_cmpint (row, >=, 0);
      g_assert_cmpint (row, <, ref->n);
      g_assert_cmpint (seen[row], ==, 0); /* disjoint splits */
      seen[row] = 1;
      if (i > 0)
        g_assert_cmpint (row, >, ds->source_rows[i - 1]);
      const float *x = ds->x + i * ref->f;
      const double *want = ref->x + row * ref->f;
      for (int j = 0; j < ref->f; j++) {
        if (info->kind == BP_DATASET_IMAGES) {
          g_assert_null (ds->feature_mean);
          g_assert_cmpfloat ((double) x[j] * 16.0, ==, want[j]);
        } else {
          double back = (double) x[j] * ds->feature_std[j] + ds->feature_mean[j];
          double tol = 1e-4 * MAX (1.0, MAX (fabs (want[j]), fabs (ds->feature_mean[j])));
          if (fabs (back - want[j]) > tol)
            g_error ("%s row %" G_GINT64_FORMAT " feature %d: %.9g back from the data set, "
                     "scikit-learn has %.9g", name, row, j, back, want[j]);
        }
      }
      if (info->task == BP_TASK_REGRESSION) {
        double back = ds->y[i] * ds->target_std + ds->target_mean;
        g_assert_cmpfloat (fabs (back - ref->y[row]), <=, 1e-4 * fabs (ref->y[row]));
      } else {
        g_assert_cmpfloat (ds->y[i], ==, ref->y[row]);
      }
    }
  }
  for (int64_t r = 0; r < ref->n; r++)
    g_assert_cmpint (seen[r], ==, 1); /* together they cover the file */

  /* the statistics are the train split's (population std), computed here from
   * scikit-learn's values; both splits use them */
  BpDataset *train = sets[0];
  if (info->kind == BP_DATASET_TABULAR) {
    for (int j = 0; j < ref->f; j++) {
      double sum = 0.0, sq = 0.0;
      for (int64_t i = 0; i < train->n; i++)
        sum += ref->x[train->source_rows[i] * ref->f + j];
      double m = sum / (double) train->n;
      for (int64_t i = 0; i < train->n; i++) {
        double d = ref->x[train->source_rows[i] * ref->f + j] - m;
        sq += d * d;
      }
      double sd = sqrt (sq / (double) train->n);
      g_assert_cmpfloat (fabs (train->feature_mean[j] - m), <=, 1e-6 * MAX (1.0, fabs (m)));
      g_assert_cmpfloat (fabs (train->feature_std[j] - sd), <=, 1e-6 * MAX (1.0, sd));
      g_assert_cmpfloat (sets[1]->feature_mean[j], ==, train->feature_mean[j]);
      g_assert_cmpfloat (sets[1]->feature_std[j], ==, train->feature_std[j]);
    }
    g_assert_cmpfloat (train->mean, ==, 0.0f);
    g_assert_cmpfloat (train->std, ==, 1.0f);
  }
  if (info->task == BP_TASK_REGRESSION) {
    double sum = 0.0;
    for (int64_t i = 0; i < train->n; i++)
      sum += ref->y[train->source_rows[i]];
    g_assert_cmpfloat (fabs (train->target_mean - sum / (double) train->n), <, 1e-9);
    g_assert_cmpfloat (sets[1]->target_mean, ==, train->target_mean);
    g_assert_cmpfloat (sets[1]->target_std, ==, train->target_std);
  } else {
    g_assert_cmpfloat (train->target_mean, ==, 0.0);
    g_assert_cmpfloat (train->target_std, ==, 1.0);
  }
  g_free (seen);
  bp_dataset_unref (sets[0]);
  bp_dataset_unref (sets[1]);
  reference_free (ref);
}

/* The whole sklearn set is there (else the test is skipped). */
static gboolean
have_sklearn_files (void)
{
  for (size_t k = 0; k < G_N_ELEMENTS (sklearn_sets); k++)
    if (!bp_dataset_check_installed (sklearn_sets[k], NULL)) {
      g_test_skip ("scikit-learn's data files are not installed: apt install python3-sklearn");
      return FALSE;
    }
  return TRUE;
}

/* The splits are the same in every run, whatever the engine's random numbers, and a limit
 * takes the first examples of the split. */
static void
test_split_stable (void)
{
  if (!have_sklearn_files ())
    return;
  for (size_t k = 0; k < G_N_ELEMENTS (sklearn_sets); k++) {
    bp_rng_seed (1);
    BpDataset *a = load_split (sklearn_sets[k], "test");
    bp_rng_seed (987654321);
    (void) bp_rng_u64 ();
    BpDataset *b = load_split (sklearn_sets[k], "test");
    g_assert_cmpint (a->n, ==, b->n);
    g_assert_cmpmem (a->source_rows, a->n * sizeof (int64_t), b->source_rows,
                     b->n * sizeof (int64_t));
    g_assert_cmpmem (a->x, a->n * a->example_numel * sizeof (float), b->x,
                     b->n * b->example_numel * sizeof (float));
    /* not simply the first or last rows of the file */
    g_assert_cmpint (a->source_rows[0], <, 20);
    g_assert_cmpint (a->source_rows[a->n - 1], >, bp_dataset_info (sklearn_sets[k])->n_train);

    BpDatasetOptions o = BP_DATASET_OPTIONS_INIT;
    o.limit = 7;
    g_autoptr (GError) error = NULL;
    BpDataset *c = bp_dataset_load_full (sklearn_sets[k], "test", &o, &error);
    g_assert_no_error (error);
    g_assert_cmpint (c->n, ==, 7);
    g_assert_cmpmem (c->x, 7 * c->example_numel * sizeof (float), a->x,
                     7 * a->example_numel * sizeof (float));
    bp_dataset_unref (a);
    bp_dataset_unref (b);
    bp_dataset_unref (c);
  }
  /* tabular sets take no custom normalisation; digits does (an image set) */
  BpDatasetOptions o = BP_DATASET_OPTIONS_INIT;
  o.custom_norm = TRUE;
  o.mean = 0.5f;
  o.std = 0.25f;
  g_autoptr (GError) error = NULL;
  g_assert_null (bp_dataset_load_full ("iris", "train", &o, &error));
  g_assert_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "iris"));
  g_clear_error (&error);
  BpDataset *d = bp_dataset_load_full ("digits", "train", &o, &error);
  g_assert_no_error (error);
  BpDataset *plain = load_split ("digits", "train");
  for (int64_t i = 0; i < 64 * 20; i++)
    g_assert_cmpfloat (fabsf (d->x[i] - (plain->x[i] - 0.5f) / 0.25f), <, 1e-6f);
  g_assert_cmpfloat (d->mean, ==, 0.5f);
  bp_dataset_unref (d);
  bp_dataset_unref (plain);
}

/* ---- malformed files ---- */

static void
write_text (const char *dir, const char *file, const char *text, gboolean gz)
{
  g_autofree char *path = g_build_filename (dir, file, NULL);
  if (gz) {
    gzFile f = gzopen (path, "wb6");
    g_assert_nonnull (f);
    g_assert_cmpint (gzwrite (f, text, (unsigned) strlen (text)), ==, (int) strlen (text));
    g_assert_cmpint (gzclose (f), ==, Z_OK);
  } else {
    g_autoptr (GError) error = NULL;
    g_file_set_contents (path, text, -1, &error);
    g_assert_no_error (error);
  }
}

/* A file of `rows` rows made by row (i) (0-based), after a header line when not NULL; row
 * index bad (0-based data row) replaced by `bad` when not NULL. */
typedef char *(*RowFunc) (int i);

static char *
make_text (const char *header, int rows, RowFunc row, int bad, const char *bad_text)
{
  GString *s = g_string_new (header ? header : "");
  if (header)
    g_string_append_c (s, '\n');
  for (int i = 0; i < rows; i++) {
    if (i == bad && bad_text) {
      g_string_append_printf (s, "%s\n", bad_text);
    } else {
      char *r = row (i);
      g_string_append_printf (s, "%s\n", r);
      g_free (r);
    }
  }
  return g_string_free (s, FALSE);
}

static char *
iris_row (int i)
{
  return g_strdup_printf ("%.1f,%.1f,%.1f,%.1f,%d", 4.0 + i % 30 * 0.1, 3.0, 1.0 + i % 7 * 0.3,
                          0.2 * (i % 5), i % 3);
}

static char *
digits_row (int i)
{
  GString *s = g_string_new (NULL);
  for (int j = 0; j < 64; j++)
    g_string_append_printf (s, "%d,", (i + j) % 17);
  g_string_append_printf (s, "%d", i % 10);
  return g_string_free (s, FALSE);
}

static char *
diabetes_row (int i)
{
  return g_strdup_printf ("%d %d %.1f %.1f %d %.1f %.1f %.1f %.4f %d", 20 + i % 50, 1 + i % 2,
                          20.0 + i % 13, 80.0 + i % 17, 150 + i % 40, 90.0 + i % 11, 40.0 + i % 9,
                          3.0 + i % 4, 4.0 + i % 10 * 0.1, 80 + i % 20);
}

static char *
target_row (int i)
{
  return g_strdup_printf ("%d.000000000000000000e+00", 25 + i % 300);
}

/* Loads `name` from the folder; the error must be `code`, name the file (its path in the
 * folder) and say each of the needles. */
static void
assert_load_error (const char *dir, const char *name, int code, const char *file,
                   const char *const *needles)
{
  g_autoptr (GError) error = NULL;
  BpDataset *ds = bp_dataset_load (name, "train", &error);
  g_assert_null (ds);
  g_autofree char *path = g_build_filename (dir, file, NULL);
  g_assert_nonnull (error);
  gboolean ok = error->domain == BP_DATA_ERROR && error->code == code &&
                strstr (error->message, path);
  for (int k = 0; ok && needles && needles[k]; k++)
    ok = strstr (error->message, needles[k]) != NULL;
  if (!ok)
    g_error ("%s: expected data error %d naming %s%s%s, got %d: %s", name, code, path,
             needles ? " and saying " : "", needles ? needles[0] : "", error->code,
             error->message);
  g_test_message ("%s", error->message);
}

static void
assert_loads (const char *name, int64_t n)
{
  g_autoptr (GError) error = NULL;
  BpDataset *ds = bp_dataset_load (name, "train", &error);
  g_assert_no_error (error);
  g_assert_cmpint (ds->n, ==, n);
  bp_dataset_unref (ds);
}

#define IRIS_HEADER "150,4,setosa,versicolor,virginica"

static void
test_malformed (void)
{
  char *tmp = g_dir_make_tmp ("bp-test-tabular-XXXXXX", NULL);
  g_assert_nonnull (tmp);
  g_setenv ("BP_SKLEARN_DATA_DIR", tmp, TRUE);

  /* nothing installed: every file set says what to install and where it looked */
  for (size_t k = 0; k < G_N_ELEMENTS (sklearn_sets); k++) {
    g_autoptr (GError) error = NULL;
    g_assert_false (bp_dataset_check_installed (sklearn_sets[k], &error));
    g_assert_error (error, BP_DATA_ERROR, BP_DATA_ERROR_NOT_FOUND);
    const char *want[] = {"apt install python3-sklearn", "BP_SKLEARN_DATA_DIR", NULL};
    const char *file = !strcmp (sklearn_sets[k], "digits")          ? "digits.csv.gz"
                       : !strcmp (sklearn_sets[k], "iris")          ? "iris.csv"
                       : !strcmp (sklearn_sets[k], "wine")          ? "wine_data.csv"
                       : !strcmp (sklearn_sets[k], "breast-cancer") ? "breast_cancer.csv"
                                                                    : "diabetes_data_raw.csv.gz";
    g_assert_nonnull (strstr (error->message, file));
    assert_load_error (tmp, sklearn_sets[k], BP_DATA_ERROR_NOT_FOUND, "", want);
  }
  g_assert_true (bp_dataset_check_installed ("two-spirals", NULL));

  /* iris: a good file loads; then one defect at a time */
  char *good = make_text (IRIS_HEADER, 150, iris_row, -1, NULL);
  write_text (tmp, "iris.csv", good, FALSE);
  assert_loads ("iris", 120);
  g_free (good);
  struct {
    const char *header;
    int rows, bad;
    const char *text;
    const char *needle1, *needle2;
  } iris_cases[] = {
    {"151,4,setosa,versicolor,virginica", 150, -1, NULL, "iris.csv:1:", "151 rows"},
    {"150,4,setosa,versicolor", 150, -1, NULL, "iris.csv:1:", "2 classes"},
    {"rows and columns", 150, -1, NULL, "iris.csv:1:", "header"},
    {IRIS_HEADER, 149, -1, NULL, "iris.csv:150:", "149 data rows"},
    {IRIS_HEADER, 150, 3, "5.1,3.5,1.4,0", "iris.csv:5:", "4 values"},
    {IRIS_HEADER, 150, 5, "5.1,abc,1.4,0.2,0", "iris.csv:7:", "\"abc\""},
    {IRIS_HEADER, 150, 7, "5.1,3.5,1.4,0.2,3", "iris.csv:9:", "class 3"},
    {IRIS_HEADER, 150, 8, "5.1,3.5,1.4,0.2,0,7", "iris.csv:10:", "more than 5 values"},
    {IRIS_HEADER, 150, 2, "5.1,nan,1.4,0.2,0", "iris.csv:4:", "not a number"},
    {IRIS_HEADER, 150, 60, "", "iris.csv:62:", "0 values"},
  };
  for (size_t k = 0; k < G_N_ELEMENTS (iris_cases); k++) {
    char *text = make_text (iris_cases[k].header, iris_cases[k].rows, iris_row,
                            iris_cases[k].bad, iris_cases[k].text);
    write_text (tmp, "iris.csv", text, FALSE);
    g_free (text);
    const char *needles[] = {iris_cases[k].needle1, iris_cases[k].needle2,
                             "reinstall python3-sklearn", NULL};
    assert_load_error (tmp, "iris", BP_DATA_ERROR_FORMAT, "iris.csv", needles);
  }

  /* digits, gzip-compressed */
  good = make_text (NULL, 1797, digits_row, -1, NULL);
  write_text (tmp, "digits.csv.gz", good, TRUE);
  assert_loads ("digits", 1438);
  /* the same text uncompressed reads the same */
  write_text (tmp, "digits.csv.gz", good, FALSE);
  assert_loads ("digits", 1438);
  {
    /* a truncated gzip file */
    g_autofree char *path = g_build_filename (tmp, "digits.csv.gz", NULL);
    write_text (tmp, "digits.csv.gz", good, TRUE);
    gchar *bytes;
    gsize len;
    g_assert_true (g_file_get_contents (path, &bytes, &len, NULL));
    g_assert_true (g_file_set_contents (path, bytes, (gssize) (len / 2), NULL));
    g_free (bytes);
    const char *needles[] = {"damaged", NULL};
    assert_load_error (tmp, "digits", BP_DATA_ERROR_FORMAT, "digits.csv.gz", needles);
  }
  g_free (good);
  char *text = make_text (NULL, 1797, digits_row, 1, "0,17,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,"
                          "0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,"
                          "0,0,0,0,0,0,0,0,0,3");
  write_text (tmp, "digits.csv.gz", text, TRUE);
  g_free (text);
  const char *pixel[] = {"digits.csv.gz:2:", "pixel value 17", NULL};
  assert_load_error (tmp, "digits", BP_DATA_ERROR_FORMAT, "digits.csv.gz", pixel);
  text = make_text (NULL, 1796, digits_row, -1, NULL);
  write_text (tmp, "digits.csv.gz", text, TRUE);
  g_free (text);
  const char *short_file[] = {"1796 data rows", "1797", NULL};
  assert_load_error (tmp, "digits", BP_DATA_ERROR_FORMAT, "digits.csv.gz", short_file);

  /* diabetes: blank-separated rows and a separate target file */
  good = make_text (NULL, 442, diabetes_row, -1, NULL);
  write_text (tmp, "diabetes_data_raw.csv.gz", good, TRUE);
  const char *no_target[] = {"diabetes_target.csv.gz", "apt install python3-sklearn", NULL};
  assert_load_error (tmp, "diabetes", BP_DATA_ERROR_NOT_FOUND, "", no_target);
  char *targets = make_text (NULL, 442, target_row, -1, NULL);
  write_text (tmp, "diabetes_target.csv.gz", targets, TRUE);
  assert_loads ("diabetes", 354);
  g_free (targets);
  targets = make_text (NULL, 441, target_row, -1, NULL);
  write_text (tmp, "diabetes_target.csv.gz", targets, TRUE);
  g_free (targets);
  const char *few[] = {"441 targets", "442 rows", NULL};
  assert_load_error (tmp, "diabetes", BP_DATA_ERROR_FORMAT, "diabetes_target.csv.gz", few);
  targets = make_text (NULL, 442, target_row, 9, "151 12");
  write_text (tmp, "diabetes_target.csv.gz", targets, TRUE);
  g_free (targets);
  const char *two[] = {"diabetes_target.csv.gz:10:", "one number", NULL};
  assert_load_error (tmp, "diabetes", BP_DATA_ERROR_FORMAT, "diabetes_target.csv.gz", two);
  targets = make_text (NULL, 442, target_row, -1, NULL);
  write_text (tmp, "diabetes_target.csv.gz", targets, TRUE);
  g_free (targets);
  text = make_text (NULL, 442, diabetes_row, 3, "59 2 32.1 101.0 157 93.2 38.0 4.0 4.8598");
  write_text (tmp, "diabetes_data_raw.csv.gz", text, TRUE);
  g_free (text);
  const char *nine[] = {"diabetes_data_raw.csv.gz:4:", "9 values", NULL};
  assert_load_error (tmp, "diabetes", BP_DATA_ERROR_FORMAT, "diabetes_data_raw.csv.gz", nine);
  g_free (good);

  g_unsetenv ("BP_SKLEARN_DATA_DIR");
  bp_test_remove_tree (tmp);
  g_free (tmp);
}

/* ---- names ---- */

static void
test_names (void)
{
  const char *want[] = {"fashion-mnist", "digits", "iris", "wine", "breast-cancer", "diabetes",
                        "two-spirals", "moons", NULL};
  const char *const *names = bp_dataset_names ();
  g_assert_cmpint (g_strv_length ((char **) names), ==, G_N_ELEMENTS (want) - 1);
  for (int k = 0; want[k]; k++) {
    g_assert_cmpstr (names[k], ==, want[k]);
    g_assert_true (bp_dataset_is_known (want[k]));
    g_assert_cmpstr (bp_dataset_info (want[k])->name, ==, want[k]);
  }
  g_assert_false (bp_dataset_is_known ("tang300"));
  g_assert_false (bp_dataset_is_known (NULL));
  g_assert_null (bp_dataset_info ("mnist"));
  g_autoptr (GError) error = NULL;
  g_assert_null (bp_dataset_load ("mnist", "train", &error));
  g_assert_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID);
  for (int k = 0; want[k]; k++)
    g_assert_nonnull (strstr (error->message, want[k]));
  g_assert_cmpint (bp_dataset_info ("diabetes")->task, ==, BP_TASK_REGRESSION);
  g_assert_cmpint (bp_dataset_info ("diabetes")->n_classes, ==, 0);
  g_assert_cmpstr (bp_dataset_kind_name (bp_dataset_info ("moons")->kind), ==, "synthetic");
  g_assert_cmpstr (bp_task_name (BP_TASK_REGRESSION), ==, "regression");

  /* the trainer's message lists the text corpora too */
  BpTrainConfig c = bp_train_config_default ();
  c.dataset = "mnist";
  g_clear_error (&error);
  g_assert_null (bp_trainer_new (&c, &error));
  g_assert_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_DATA);
  g_assert_nonnull (strstr (error->message, "two-spirals"));
  g_assert_nonnull (strstr (error->message, "tang300"));
}

/* ---- generated sets ---- */

static void
test_synthetic (void)
{
  const char *sets[] = {"two-spirals", "moons"};
  for (int k = 0; k < 2; k++) {
    bp_rng_seed (5);
    BpDataset *a = load_split (sets[k], "train");
    bp_rng_seed (6);
    BpDataset *b = load_split (sets[k], "train");
    BpDataset *t = load_split (sets[k], "test");
    g_assert_cmpint (a->n, ==, 1000);
    g_assert_cmpint (t->n, ==, 1000);
    g_assert_cmpint (a->example_ndim, ==, 1);
    g_assert_cmpint (a->example_shape[0], ==, 2);
    g_assert_cmpint (a->n_classes, ==, 2);
    g_assert_cmpint (a->task, ==, BP_TASK_CLASSIFICATION);
    g_assert_null (a->source_rows);
    /* deterministic, and the test split differs from the training split */
    g_assert_cmpmem (a->x, 2000 * sizeof (float), b->x, 2000 * sizeof (float));
    g_assert_cmpmem (a->y, 1000 * sizeof (float), b->y, 1000 * sizeof (float));
    int same = 0, count[2] = {0, 0};
    for (int i = 0; i < 1000; i++) {
      same += a->x[2 * i] == t->x[2 * i];
      g_assert_true (a->y[i] == 0.0f || a->y[i] == 1.0f);
      count[(int) a->y[i]]++;
      g_assert_true (isfinite (a->x[2 * i]) && isfinite (a->x[2 * i + 1]));
    }
    g_assert_cmpint (same, <, 5);
    g_assert_cmpint (count[0], ==, 500);
    g_assert_cmpint (count[1], ==, 500);
    bp_dataset_unref (a);
    bp_dataset_unref (b);
    bp_dataset_unref (t);
  }

  /* without noise every point lies on its curve: spiral c at radius r has the angle
   * 3 pi r + c pi (mod 2 pi); moon 0 on the unit circle's upper half, moon 1 on the circle
   * around (1, 0.5)'s lower half */
  g_autoptr (GError) error = NULL;
  BpDataset *s = bp_dataset_two_spirals (400, 77, 0.0, &error);
  g_assert_no_error (error);
  for (int i = 0; i < 400; i++) {
    double x = s->x[2 * i], y = s->x[2 * i + 1], r = hypot (x, y);
    g_assert_cmpfloat (r, >=, 0.1 - 1e-6);
    g_assert_cmpfloat (r, <=, 1.0 + 1e-6);
    double d = remainder (atan2 (y, x) - (3.0 * G_PI * r + s->y[i] * G_PI), 2.0 * G_PI);
    g_assert_cmpfloat (fabs (d), <, 1e-4);
  }
  bp_dataset_unref (s);
  BpDataset *m = bp_dataset_moons (400, 78, 0.0, &error);
  g_assert_no_error (error);
  for (int i = 0; i < 400; i++) {
    double x = m->x[2 * i], y = m->x[2 * i + 1];
    if (m->y[i] == 0.0f) {
      g_assert_cmpfloat (fabs (hypot (x, y) - 1.0), <, 1e-5);
      g_assert_cmpfloat (y, >=, -1e-6);
    } else {
      g_assert_cmpfloat (fabs (hypot (x - 1.0, y - 0.5) - 1.0), <, 1e-5);
      g_assert_cmpfloat (y, <=, 0.5 + 1e-6);
    }
  }
  bp_dataset_unref (m);
  /* the noise has the std asked for: distances from the noiseless points */
  BpDataset *clean = bp_dataset_moons (2000, 9, 0.0, NULL);
  BpDataset *noisy = bp_dataset_moons (2000, 9, 0.1, NULL);
  double sq = 0.0;
  for (int i = 0; i < 4000; i++)
    sq += pow (noisy->x[i] - clean->x[i], 2);
  g_assert_cmpfloat (fabs (sqrt (sq / 4000) - 0.1), <, 0.005);
  bp_dataset_unref (clean);
  bp_dataset_unref (noisy);
  g_assert_null (bp_dataset_two_spirals (0, 1, 0.1, &error));
  g_assert_error (error, BP_DATA_ERROR, BP_DATA_ERROR_INVALID);
}

/* ---- training ---- */

#define DIGITS_MLP                                                                        \
  "{\"format\":\"backprop-lab-model\",\"version\":2,\"name\":\"digits-mlp\",\"nodes\":["  \
  "{\"id\":\"x\",\"type\":\"Input\",\"shape\":[1,8,8]},"                                  \
  "{\"id\":\"flat\",\"type\":\"Flatten\",\"inputs\":[\"x\"]},"                            \
  "{\"id\":\"fc1\",\"type\":\"Linear\",\"inputs\":[\"flat\"],\"out_features\":64},"       \
  "{\"id\":\"relu\",\"type\":\"ReLU\",\"inputs\":[\"fc1\"]},"                             \
  "{\"id\":\"fc2\",\"type\":\"Linear\",\"inputs\":[\"relu\"],\"out_features\":10},"       \
  "{\"id\":\"output\",\"type\":\"Output\",\"inputs\":[\"fc2\"]}]}"

#define LINEAR_SPEC(in, out)                                                              \
  "{\"format\":\"backprop-lab-model\",\"version\":2,\"name\":\"linear\",\"nodes\":["      \
  "{\"id\":\"x\",\"type\":\"Input\",\"shape\":[" in "]},"                                  \
  "{\"id\":\"fc\",\"type\":\"Linear\",\"inputs\":[\"x\"],\"out_features\":" out "},"      \
  "{\"id\":\"output\",\"type\":\"Output\",\"inputs\":[\"fc\"]}]}"

#define SPIRAL_MLP                                                                        \
  "{\"format\":\"backprop-lab-model\",\"version\":2,\"name\":\"spiral-mlp\",\"nodes\":["  \
  "{\"id\":\"x\",\"type\":\"Input\",\"shape\":[2]},"                                      \
  "{\"id\":\"fc1\",\"type\":\"Linear\",\"inputs\":[\"x\"],\"out_features\":64},"          \
  "{\"id\":\"a1\",\"type\":\"Tanh\",\"inputs\":[\"fc1\"]},"                               \
  "{\"id\":\"fc2\",\"type\":\"Linear\",\"inputs\":[\"a1\"],\"out_features\":64},"         \
  "{\"id\":\"a2\",\"type\":\"Tanh\",\"inputs\":[\"fc2\"]},"                               \
  "{\"id\":\"fc3\",\"type\":\"Linear\",\"inputs\":[\"a2\"],\"out_features\":2},"          \
  "{\"id\":\"output\",\"type\":\"Output\",\"inputs\":[\"fc3\"]}]}"

static BpTrainConfig
config_for (const char *dataset, const char *spec, int epochs, float lr, int64_t batch)
{
  BpTrainConfig c = bp_train_config_default ();
  c.dataset = dataset;
  c.model_json = spec;
  c.epochs = epochs;
  c.optim.lr = lr;
  c.batch_size = batch;
  c.seed = 1;
  return c;
}

/* What a run's events said; the decision boundary of its DONE event copied. */
typedef struct {
  int epochs_seen, boundaries;
  gboolean step_had_boundary;
  BpTrainEvent last_epoch, done;
  float *probs, *points, *classes;
  int stop_after;          /* return FALSE after this EPOCH (0: never) */
  BpTrainer *trainer;      /* to checkpoint at stop_after */
  const char *checkpoint;
} Run;

static void
check_boundary (const BpTrainEvent *ev)
{
  g_assert_cmpint (ev->boundary_size, ==, 96);
  g_assert_cmpfloat (ev->boundary_x1, >, ev->boundary_x0);
  g_assert_cmpfloat (ev->boundary_y1, >, ev->boundary_y0);
  g_assert_nonnull (ev->boundary_probs);
  int64_t cells = (int64_t) ev->boundary_size * ev->boundary_size;
  for (int64_t r = 0; r < cells; r++) {
    double sum = 0.0;
    for (int c = 0; c < ev->n_classes; c++) {
      float p = ev->boundary_probs[r * ev->n_classes + c];
      g_assert_true (p >= 0.0f && p <= 1.0f);
      sum += p;
    }
    g_assert_cmpfloat (fabs (sum - 1.0), <, 1e-5);
  }
  g_assert_cmpint (ev->n_points, >, 0);
  g_assert_nonnull (ev->points);
  g_assert_nonnull (ev->point_classes);
}

static gboolean
on_event (const BpTrainEvent *ev, gpointer user)
{
  Run *run = user;
  switch (ev->kind) {
  case BP_TRAIN_EVENT_STEP:
    if (ev->boundary_size || ev->boundary_probs || ev->points)
      run->step_had_boundary = TRUE;
    break;
  case BP_TRAIN_EVENT_EPOCH:
    run->epochs_seen++;
    run->last_epoch = *ev;
    if (ev->boundary_size) {
      check_boundary (ev);
      run->boundaries++;
    }
    if (run->stop_after && ev->epoch == run->stop_after) {
      g_autoptr (GError) error = NULL;
      g_assert_true (bp_trainer_save_checkpoint (run->trainer, run->checkpoint, NULL, &error));
      g_assert_no_error (error);
      return FALSE;
    }
    break;
  case BP_TRAIN_EVENT_DONE:
    run->done = *ev;
    if (ev->boundary_size) {
      check_boundary (ev);
      int64_t cells = (int64_t) ev->boundary_size * ev->boundary_size;
      run->probs = g_memdup2 (ev->boundary_probs, sizeof (float) * cells * ev->n_classes);
      run->points = g_memdup2 (ev->points, sizeof (float) * 2 * ev->n_points);
      run->classes = g_memdup2 (ev->point_classes, sizeof (float) * ev->n_points);
    }
    break;
  default:
    break;
  }
  return TRUE;
}

static void
run_clear (Run *run)
{
  g_free (run->probs);
  g_free (run->points);
  g_free (run->classes);
}

static BpTrainer *
train (const BpTrainConfig *c, Run *run)
{
  g_autoptr (GError) error = NULL;
  BpTrainer *t = bp_trainer_new (c, &error);
  g_assert_no_error (error);
  run->trainer = t;
  g_assert_true (bp_trainer_run (t, on_event, run, &error));
  g_assert_no_error (error);
  return t;
}

/* The model's outputs on n examples of ds (rows of ds->x), in eval mode; free them. */
static float *
predict (BpTrainer *t, const BpDataset *ds, const float *x, int64_t n, int64_t *out_cols)
{
  BpModel *m = bp_trainer_get_model (t);
  int64_t shape[BP_MAX_DIMS] = {n};
  for (int d = 0; d < m->in_ndim; d++)
    shape[d + 1] = m->in_shape[d];
  BpTensor *in = bp_tensor_new (m->in_ndim + 1, shape);
  memcpy (in->data, x, sizeof (float) * (size_t) (n * ds->example_numel));
  bool was = bp_set_grad_enabled (false);
  bp_model_set_training (m, false);
  BpTensor *out = bp_model_forward (m, in);
  bp_model_set_training (m, true);
  bp_set_grad_enabled (was);
  g_assert_nonnull (out);
  g_assert_cmpint (out->device, ==, BP_DEVICE_CPU);
  *out_cols = out->numel / n;
  float *v = g_memdup2 (out->data, sizeof (float) * (size_t) out->numel);
  bp_tensor_unref (out);
  bp_tensor_unref (in);
  return v;
}

static int
argmax (const float *v, int64_t n)
{
  int best = 0;
  for (int k = 1; k < n; k++)
    if (v[k] > v[best])
      best = k;
  return best;
}

static void
test_train_digits (void)
{
  if (!bp_dataset_check_installed ("digits", NULL)) {
    g_test_skip ("scikit-learn's digits are not installed: apt install python3-sklearn");
    return;
  }
  BpTrainConfig c = config_for ("digits", DIGITS_MLP, 10, 3e-3f, 64);
  Run run = {0};
  gint64 t0 = g_get_monotonic_time ();
  BpTrainer *t = train (&c, &run);
  double seconds = (double) (g_get_monotonic_time () - t0) / 1e6;
  g_test_message ("digits: 64-64-10 MLP, Adam 3e-3, 10 epochs: test accuracy %.4f (val %.4f), "
                  "%.2f s", run.done.test_accuracy, run.last_epoch.val_accuracy, seconds);
  g_assert_cmpint (run.epochs_seen, ==, 10);
  g_assert_cmpint (run.done.task, ==, BP_TASK_CLASSIFICATION);
  g_assert_cmpfloat (run.done.test_accuracy, >=, 0.9);
  g_assert_true (isnan (run.done.test_r2) && isnan (run.last_epoch.val_r2));
  g_assert_cmpint (run.done.n_test, ==, 359);
  /* no boundary: the examples have 64 values */
  g_assert_cmpint (run.boundaries, ==, 0);
  g_assert_cmpint (run.done.boundary_size, ==, 0);
  g_assert_null (run.done.boundary_probs);

  /* the test accuracy is the model's on the test split, counted here */
  BpDataset *test = load_split ("digits", "test");
  int64_t cols, right = 0;
  float *out = predict (t, test, test->x, test->n, &cols);
  g_assert_cmpint (cols, ==, 10);
  for (int64_t i = 0; i < test->n; i++)
    right += argmax (out + i * 10, 10) == (int) test->y[i];
  g_assert_cmpfloat (fabs ((double) right / test->n - run.done.test_accuracy), <, 1e-9);
  g_free (out);
  bp_dataset_unref (test);
  bp_trainer_free (t);

  /* a model reading other examples: the message gives both shapes */
  c.model_json = LINEAR_SPEC ("10", "10");
  g_autoptr (GError) error = NULL;
  g_assert_null (bp_trainer_new (&c, &error));
  g_assert_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_MODEL);
  g_assert_nonnull (strstr (error->message, "(1, 8, 8)"));
  g_assert_nonnull (strstr (error->message, "(10)"));
  g_assert_nonnull (strstr (error->message, "digits"));
  /* a flat MLP reads the 64 pixels as they are */
  g_clear_error (&error);
  c.model_json = LINEAR_SPEC ("64", "10");
  c.epochs = 1;
  BpTrainer *flat = bp_trainer_new (&c, &error);
  g_assert_no_error (error);
  bp_trainer_free (flat);
  /* too few outputs for the classes */
  c.model_json = LINEAR_SPEC ("64", "5");
  g_assert_null (bp_trainer_new (&c, &error));
  g_assert_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_MODEL);
  g_assert_nonnull (strstr (error->message, "10 classes"));
}

/* R^2 = 1 - SSE / SST of predictions p against targets y. */
static double
r2_score (const float *p, const float *y, int64_t n)
{
  double mean = 0.0, sse = 0.0, sst = 0.0;
  for (int64_t i = 0; i < n; i++)
    mean += y[i];
  mean /= (double) n;
  for (int64_t i = 0; i < n; i++) {
    sse += pow ((double) p[i] - y[i], 2);
    sst += pow ((double) y[i] - mean, 2);
  }
  return 1.0 - sse / sst;
}

static void
test_train_diabetes (void)
{
  if (!bp_dataset_check_installed ("diabetes", NULL)) {
    g_test_skip ("scikit-learn's diabetes files are not installed: apt install python3-sklearn");
    return;
  }
  BpTrainConfig c = config_for ("diabetes", LINEAR_SPEC ("10", "1"), 50, 0.01f, 32);
  Run run = {0};
  BpTrainer *t = train (&c, &run);
  g_assert_cmpint (bp_trainer_get_task (t), ==, BP_TASK_REGRESSION);
  g_assert_cmpint (run.done.task, ==, BP_TASK_REGRESSION);
  g_assert_true (isnan (run.done.test_accuracy) && isnan (run.last_epoch.val_accuracy) &&
                 isnan (run.last_epoch.train_accuracy));
  g_assert_null (run.last_epoch.confusion);
  g_assert_cmpint (run.last_epoch.n_classes, ==, 0);
  g_assert_cmpint (run.boundaries, ==, 0);
  g_assert_true (isfinite (run.last_epoch.val_r2));

  /* test_r2 and test_loss are the model's on the test split, computed here */
  BpDataset *train_set = load_split ("diabetes", "train");
  BpDataset *test = load_split ("diabetes", "test");
  int64_t cols;
  float *p = predict (t, test, test->x, test->n, &cols);
  g_assert_cmpint (cols, ==, 1);
  double r2 = r2_score (p, test->y, test->n), mse = 0.0;
  for (int64_t i = 0; i < test->n; i++)
    mse += pow ((double) p[i] - test->y[i], 2) / (double) test->n;
  g_free (p);
  g_assert_cmpfloat (fabs (r2 - run.done.test_r2), <, 1e-5);
  g_assert_cmpfloat (fabs (mse - run.done.test_loss), <, 1e-5);
  double loss, acc, r2_again;
  g_autoptr (GError) error = NULL;
  g_assert_true (bp_trainer_evaluate_test_full (t, &loss, &acc, &r2_again, &error));
  g_assert_cmpfloat (r2_again, ==, run.done.test_r2);
  g_assert_true (isnan (acc));
  g_assert_true (bp_trainer_evaluate_test (t, &loss, &acc, &error));
  g_assert_cmpfloat (loss, ==, run.done.test_loss);

  /* scikit-learn's LinearRegression fitted on the same training examples (the validation
   * split left out as the trainer does) and scored on the same test rows */
  BpIndices *tr, *val;
  int64_t n_val = (int64_t) (c.val_fraction * (double) train_set->n);
  g_assert_true (bp_dataset_split (train_set, n_val, c.seed, &tr, &val, NULL));
  GString *code = g_string_new ("train = [");
  for (int64_t i = 0; i < tr->n; i++)
    g_string_append_printf (code, "%" G_GINT64_FORMAT ",", train_set->source_rows[tr->idx[i]]);
  g_string_append (code, "]\ntest = [");
  for (int64_t i = 0; i < test->n; i++)
    g_string_append_printf (code, "%" G_GINT64_FORMAT ",", test->source_rows[i]);
  g_string_append (code, "]\n"
                         "from sklearn.linear_model import LinearRegression\n"
                         "X, y = sklearn.datasets.load_diabetes(return_X_y=True)\n"
                         "m = LinearRegression().fit(X[train], y[train])\n"
                         "print(repr(m.score(X[test], y[test])))\n");
  char *out = run_sklearn (code->str);
  g_string_free (code, TRUE);
  bp_indices_free (tr);
  bp_indices_free (val);
  if (out) {
    double sk = g_ascii_strtod (out, NULL);
    g_free (out);
    g_test_message ("diabetes: Linear(10, 1), Adam 0.01, batch 32, 50 epochs: test R2 %.4f; "
                    "scikit-learn LinearRegression on the same split %.4f", run.done.test_r2, sk);
    g_assert_cmpfloat (sk, >, 0.3);
    g_assert_cmpfloat (fabs (run.done.test_r2 - sk), <, 0.05);
  }
  g_assert_cmpfloat (run.done.test_r2, >=, 0.35);
  bp_dataset_unref (train_set);
  bp_dataset_unref (test);
  bp_trainer_free (t);

  /* a model with more than one output per example is refused with a message naming it, its
   * output shape and the data set */
  c.model_json = LINEAR_SPEC ("10", "3");
  g_clear_error (&error);
  g_assert_null (bp_trainer_new (&c, &error));
  g_assert_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_MODEL);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "model linear"));
  g_assert_nonnull (strstr (error->message, "(3)"));
  g_assert_nonnull (strstr (error->message, "diabetes"));
  g_assert_nonnull (strstr (error->message, "one value per example"));
}

/* A regression stopped after an epoch with a checkpoint continues in a new trainer to the
 * same result as the run never stopped. */
static void
test_resume_regression (void)
{
  if (!bp_dataset_check_installed ("diabetes", NULL)) {
    g_test_skip ("scikit-learn's diabetes files are not installed: apt install python3-sklearn");
    return;
  }
  BpTrainConfig c = config_for ("diabetes", LINEAR_SPEC ("10", "1"), 6, 0.01f, 32);
  Run whole = {0};
  bp_trainer_free (train (&c, &whole));

  g_autofree char *dir = g_dir_make_tmp ("bp-test-tabular-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "half.safetensors", NULL);
  Run first = {.stop_after = 3, .checkpoint = path};
  bp_trainer_free (train (&c, &first));
  g_assert_cmpint (first.epochs_seen, ==, 3);
  g_assert_true (isnan (first.done.test_r2)); /* stopped: no test pass */

  g_autoptr (GError) error = NULL;
  BpTrainer *t = bp_trainer_new (&c, &error);
  g_assert_no_error (error);
  g_assert_true (bp_trainer_load_checkpoint (t, path, &error));
  g_assert_no_error (error);
  g_assert_cmpint (bp_trainer_get_epochs_done (t), ==, 3);
  Run rest = {0};
  g_assert_true (bp_trainer_run (t, on_event, &rest, &error));
  g_assert_cmpint (rest.epochs_seen, ==, 3);
  g_assert_cmpfloat (rest.done.test_r2, ==, whole.done.test_r2);
  g_assert_cmpfloat (rest.done.test_loss, ==, whole.done.test_loss);
  g_assert_cmpfloat (rest.last_epoch.val_r2, ==, whole.last_epoch.val_r2);
  bp_trainer_free (t);
  bp_test_remove_tree (dir);
}

static void
test_train_spirals (void)
{
  BpTrainConfig c = config_for ("two-spirals", SPIRAL_MLP, 30, 0.01f, 32);
  Run run = {0};
  BpTrainer *t = train (&c, &run);
  g_test_message ("two-spirals: 2-64-64-2 tanh MLP, Adam 0.01, batch 32, 30 epochs: test "
                  "accuracy %.4f", run.done.test_accuracy);
  g_assert_cmpfloat (run.done.test_accuracy, >=, 0.95);
  g_assert_cmpint (run.boundaries, ==, 30); /* every epoch */
  g_assert_false (run.step_had_boundary);
  g_assert_nonnull (run.probs);

  /* the range is the training split's plus 10%, the points are the training split */
  BpDataset *ds = load_split ("two-spirals", "train");
  BpIndices *tr, *val;
  g_assert_true (bp_dataset_split (ds, (int64_t) (c.val_fraction * ds->n), c.seed, &tr, &val,
                                   NULL));
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (int64_t k = 0; k < tr->n; k++) {
    x0 = fmin (x0, ds->x[2 * tr->idx[k]]);
    x1 = fmax (x1, ds->x[2 * tr->idx[k]]);
    y0 = fmin (y0, ds->x[2 * tr->idx[k] + 1]);
    y1 = fmax (y1, ds->x[2 * tr->idx[k] + 1]);
  }
  const BpTrainEvent *ev = &run.done;
  g_assert_cmpfloat (fabs (ev->boundary_x0 - (x0 - 0.1 * (x1 - x0))), <, 1e-9);
  g_assert_cmpfloat (fabs (ev->boundary_x1 - (x1 + 0.1 * (x1 - x0))), <, 1e-9);
  g_assert_cmpfloat (fabs (ev->boundary_y0 - (y0 - 0.1 * (y1 - y0))), <, 1e-9);
  g_assert_cmpfloat (fabs (ev->boundary_y1 - (y1 + 0.1 * (y1 - y0))), <, 1e-9);
  g_assert_cmpint (ev->n_points, ==, tr->n);
  for (int64_t k = 0; k < ev->n_points; k++) {
    g_assert_cmpfloat (run.points[2 * k], ==, ds->x[2 * tr->idx[k]]);
    g_assert_cmpfloat (run.points[2 * k + 1], ==, ds->x[2 * tr->idx[k] + 1]);
    g_assert_cmpfloat (run.classes[k], ==, ds->y[tr->idx[k]]);
  }

  /* the grid agrees with the model: the cell holding each training point predicts what the
   * model predicts for the point (the cell's centre is at most half a cell away) */
  int size = ev->boundary_size;
  int64_t cols, agree = 0, right = 0, cells_of[2] = {0, 0};
  float *out = predict (t, ds, run.points, ev->n_points, &cols);
  g_assert_cmpint (cols, ==, 2);
  for (int64_t k = 0; k < ev->n_points; k++) {
    int j = (int) floor ((run.points[2 * k] - ev->boundary_x0) / (ev->boundary_x1 - ev->boundary_x0) * size);
    int i = (int) floor ((run.points[2 * k + 1] - ev->boundary_y0) / (ev->boundary_y1 - ev->boundary_y0) * size);
    g_assert_true (i >= 0 && i < size && j >= 0 && j < size);
    int cell = argmax (run.probs + ((int64_t) i * size + j) * 2, 2);
    agree += cell == argmax (out + 2 * k, 2);
    right += cell == (int) run.classes[k];
  }
  for (int64_t r = 0; r < (int64_t) size * size; r++)
    cells_of[argmax (run.probs + 2 * r, 2)]++;
  g_test_message ("boundary: %.4f of the training points' cells predict the model's class, "
                  "%.4f their true class; cells per class %" G_GINT64_FORMAT " / %" G_GINT64_FORMAT,
                  (double) agree / ev->n_points, (double) right / ev->n_points, cells_of[0],
                  cells_of[1]);
  g_assert_cmpfloat ((double) agree / ev->n_points, >=, 0.95);
  g_assert_cmpfloat ((double) right / ev->n_points, >=, 0.9);
  g_assert_cmpint (cells_of[0], >, size * size / 5);
  g_assert_cmpint (cells_of[1], >, size * size / 5);
  /* row 0 is at y0: the grid's first cell is the model at (x0, y0) + half a cell */
  float corner[2] = {(float) (ev->boundary_x0 + 0.5 * (ev->boundary_x1 - ev->boundary_x0) / size),
                     (float) (ev->boundary_y0 + 0.5 * (ev->boundary_y1 - ev->boundary_y0) / size)};
  float far[2] = {(float) (ev->boundary_x1 - 0.5 * (ev->boundary_x1 - ev->boundary_x0) / size),
                  (float) (ev->boundary_y0 + 0.5 * (ev->boundary_y1 - ev->boundary_y0) / size)};
  float *pc = predict (t, ds, corner, 1, &cols), *pf = predict (t, ds, far, 1, &cols);
  double e0 = exp (pc[0] - fmax (pc[0], pc[1])), e1 = exp (pc[1] - fmax (pc[0], pc[1]));
  g_assert_cmpfloat (fabs (run.probs[0] - e0 / (e0 + e1)), <, 1e-5);
  e0 = exp (pf[0] - fmax (pf[0], pf[1]));
  e1 = exp (pf[1] - fmax (pf[0], pf[1]));
  g_assert_cmpfloat (fabs (run.probs[(size - 1) * 2] - e0 / (e0 + e1)), <, 1e-5);
  g_free (pc);
  g_free (pf);
  g_free (out);
  bp_indices_free (tr);
  bp_indices_free (val);
  bp_dataset_unref (ds);
  bp_trainer_free (t);
  run_clear (&run);

  /* the spirals are not linearly separable: a linear model stays near chance */
  BpTrainConfig lin = config_for ("two-spirals", LINEAR_SPEC ("2", "2"), 10, 0.01f, 32);
  Run lr = {0};
  bp_trainer_free (train (&lin, &lr));
  g_test_message ("two-spirals with a linear model: test accuracy %.4f", lr.done.test_accuracy);
  g_assert_cmpfloat (lr.done.test_accuracy, <, 0.75);
  run_clear (&lr);

  /* moons get one too; at most 2000 points are drawn */
  BpTrainConfig m = config_for ("moons", SPIRAL_MLP, 1, 0.01f, 64);
  m.val_fraction = 0.0;
  Run mr = {0};
  bp_trainer_free (train (&m, &mr));
  g_assert_cmpint (mr.boundaries, ==, 1);
  g_assert_cmpint (mr.done.n_points, ==, 1000);
  run_clear (&mr);
}

/* On a GPU: the boundary and the regression agree with the CPU's. */
static void
test_cuda (void)
{
  char why[256] = "";
  if (bp_cuda_init (why, sizeof why) != BP_OK) {
    g_autofree char *msg = g_strdup_printf ("no usable CUDA device: %s", why);
    g_test_skip (msg);
    return;
  }
  BpTrainConfig c = config_for ("two-spirals", SPIRAL_MLP, 3, 0.01f, 32);
  Run cpu = {0}, gpu = {0};
  bp_trainer_free (train (&c, &cpu));
  c.device = BP_DEVICE_CUDA;
  bp_trainer_free (train (&c, &gpu));
  g_assert_cmpint (gpu.boundaries, ==, 3);
  double worst = 0.0;
  for (int64_t r = 0; r < 96 * 96 * 2; r++)
    worst = fmax (worst, fabs (cpu.probs[r] - gpu.probs[r]));
  g_test_message ("boundary probabilities: largest difference CPU - GPU %.2g", worst);
  g_assert_cmpfloat (worst, <, 0.02);
  g_assert_cmpmem (cpu.points, cpu.done.n_points * 2 * sizeof (float), gpu.points,
                   gpu.done.n_points * 2 * sizeof (float));
  run_clear (&cpu);
  run_clear (&gpu);
  if (!bp_dataset_check_installed ("diabetes", NULL))
    return;
  BpTrainConfig d = config_for ("diabetes", LINEAR_SPEC ("10", "1"), 5, 0.01f, 32);
  Run dc = {0}, dg = {0};
  bp_trainer_free (train (&d, &dc));
  d.device = BP_DEVICE_CUDA;
  bp_trainer_free (train (&d, &dg));
  g_test_message ("diabetes test R2: CPU %.6f, GPU %.6f", dc.done.test_r2, dg.done.test_r2);
  g_assert_cmpfloat (fabs (dc.done.test_r2 - dg.done.test_r2), <, 0.01);
}

/* ---- the store and the command line ---- */

typedef struct {
  BpRecorder *rec;
  Run run;
} Recorded;

static gboolean
on_recorded (const BpTrainEvent *ev, gpointer user)
{
  Recorded *r = user;
  g_autoptr (GError) error = NULL;
  g_assert_true (bp_recorder_event (r->rec, ev, &error));
  g_assert_no_error (error);
  return on_event (ev, &r->run);
}

/* A stored run of c; returns its id. */
static gint64
record (BpStore *store, const BpTrainConfig *c, Run *run)
{
  g_autoptr (GError) error = NULL;
  BpTrainer *t = bp_trainer_new (c, &error);
  g_assert_no_error (error);
  Recorded r = {bp_recorder_new (store, t, NULL, &error)};
  g_assert_no_error (error);
  g_assert_true (bp_trainer_run (t, on_recorded, &r, &error));
  g_assert_no_error (error);
  g_assert_true (bp_recorder_finish (r.rec, BP_RUN_FINISHED, NULL, &error));
  gint64 id = bp_recorder_get_run_id (r.rec);
  bp_recorder_free (r.rec);
  bp_trainer_free (t);
  *run = r.run;
  return id;
}

static guint
n_metrics (BpStore *store, gint64 id, const char *split, const char *name, double *last)
{
  g_autoptr (GError) error = NULL;
  GArray *a = bp_store_get_metrics (store, id, split, name, &error);
  g_assert_no_error (error);
  guint n = a->len;
  if (n && last)
    *last = g_array_index (a, BpMetricPoint, n - 1).value;
  g_array_unref (a);
  return n;
}

/* A regression run keeps val/r2 and test/r2 instead of the accuracies, and its best checkpoint
 * is the best validation R²; a classification run is stored as before. */
static void
test_recorder (void)
{
  if (!bp_dataset_check_installed ("diabetes", NULL)) {
    g_test_skip ("scikit-learn's diabetes files are not installed: apt install python3-sklearn");
    return;
  }
  g_autofree char *dir = g_dir_make_tmp ("bp-test-tabular-XXXXXX", NULL);
  g_autofree char *db = g_build_filename (dir, "runs.db", NULL);
  g_autoptr (GError) error = NULL;
  BpStore *store = bp_store_open (db, &error);
  g_assert_no_error (error);

  BpTrainConfig c = config_for ("diabetes", LINEAR_SPEC ("10", "1"), 3, 0.01f, 32);
  Run run = {0};
  gint64 id = record (store, &c, &run);
  double last = NAN;
  g_assert_cmpint (n_metrics (store, id, BP_SPLIT_VAL, BP_METRIC_R2, &last), ==, 3);
  g_assert_cmpfloat (last, ==, run.last_epoch.val_r2);
  g_assert_cmpint (n_metrics (store, id, BP_SPLIT_TEST, BP_METRIC_R2, &last), ==, 1);
  g_assert_cmpfloat (last, ==, run.done.test_r2);
  g_assert_cmpint (n_metrics (store, id, BP_SPLIT_VAL, BP_METRIC_LOSS, NULL), ==, 3);
  g_assert_cmpint (n_metrics (store, id, BP_SPLIT_TEST, BP_METRIC_LOSS, NULL), ==, 1);
  g_assert_cmpint (n_metrics (store, id, BP_SPLIT_VAL, BP_METRIC_ACCURACY, NULL), ==, 0);
  g_assert_cmpint (n_metrics (store, id, BP_SPLIT_TEST, BP_METRIC_ACCURACY, NULL), ==, 0);
  g_assert_cmpint (n_metrics (store, id, BP_SPLIT_TRAIN, BP_METRIC_EPOCH_ACCURACY, NULL), ==, 0);
  g_assert_cmpint (n_metrics (store, id, BP_SPLIT_TRAIN, BP_METRIC_EPOCH_LOSS, NULL), ==, 3);
  GArray *vals = bp_store_get_metrics (store, id, BP_SPLIT_VAL, BP_METRIC_R2, &error);
  double best = -INFINITY;
  for (guint k = 0; k < vals->len; k++)
    best = fmax (best, g_array_index (vals, BpMetricPoint, k).value);
  g_array_unref (vals);
  GPtrArray *cps = bp_store_list_checkpoints (store, id, &error);
  g_assert_no_error (error);
  gboolean found = FALSE;
  for (guint k = 0; k < cps->len; k++) {
    BpCheckpoint *cp = g_ptr_array_index (cps, k);
    if (cp->is_best) {
      g_assert_cmpfloat (cp->val_metric, ==, best);
      found = TRUE;
    }
  }
  g_assert_true (found);
  g_ptr_array_unref (cps);

  BpTrainConfig s = config_for ("two-spirals", SPIRAL_MLP, 1, 0.01f, 64);
  Run sr = {0};
  id = record (store, &s, &sr);
  g_assert_cmpint (n_metrics (store, id, BP_SPLIT_VAL, BP_METRIC_ACCURACY, &last), ==, 1);
  g_assert_cmpfloat (last, ==, sr.last_epoch.val_accuracy);
  g_assert_cmpint (n_metrics (store, id, BP_SPLIT_TEST, BP_METRIC_ACCURACY, NULL), ==, 1);
  g_assert_cmpint (n_metrics (store, id, BP_SPLIT_TRAIN, BP_METRIC_EPOCH_ACCURACY, NULL), ==, 1);
  g_assert_cmpint (n_metrics (store, id, BP_SPLIT_VAL, BP_METRIC_R2, NULL), ==, 0);
  g_assert_cmpint (n_metrics (store, id, BP_SPLIT_TEST, BP_METRIC_R2, NULL), ==, 0);
  run_clear (&sr);
  bp_store_close (store);
  bp_test_remove_tree (dir);
}

static void
test_cli_train (void)
{
  if (!bp_dataset_check_installed ("diabetes", NULL)) {
    g_test_skip ("scikit-learn's diabetes files are not installed: apt install python3-sklearn");
    return;
  }
  g_autofree char *dir = g_dir_make_tmp ("bp-test-tabular-XXXXXX", NULL);
  g_autofree char *spec = g_build_filename (dir, "linear.json", NULL);
  g_assert_true (g_file_set_contents (spec, LINEAR_SPEC ("10", "1"), -1, NULL));
  const char *json_args[] = {"train", "--no-store", "--device", "cpu", "--dataset", "diabetes",
                             "--spec", spec, "--epochs", "2", "--lr", "0.01", "--json", NULL};
  BpTestCli r = bp_test_cli_run (NULL, NULL, json_args);
  bp_test_cli_assert_ok (&r, "train --json on diabetes");
  g_auto (GStrv) lines = g_strsplit (g_strstrip (r.out), "\n", -1);
  g_assert_cmpint (g_strv_length (lines), ==, 3);
  for (int k = 0; k < 3; k++) {
    g_autoptr (JsonNode) node = json_from_string (lines[k], NULL);
    g_assert_nonnull (node);
    JsonObject *o = json_node_get_object (node);
    const char *key = k < 2 ? "val_r2" : "test_r2";
    g_assert_true (json_object_has_member (o, key));
    double v = json_object_get_double_member (o, key);
    g_assert_true (v > -10.0 && v < 1.0);
    g_assert_true (json_object_get_null_member (o, k < 2 ? "val_accuracy" : "test_accuracy"));
  }
  bp_test_cli_clear (&r);
  const char *text_args[] = {"train", "--no-store", "--device", "cpu", "--dataset", "diabetes",
                             "--spec", spec, "--epochs", "1", NULL};
  r = bp_test_cli_run (NULL, NULL, text_args);
  bp_test_cli_assert_ok (&r, "train on diabetes");
  g_assert_nonnull (strstr (r.out, "val loss"));
  g_assert_nonnull (strstr (r.out, "R²"));
  g_assert_nonnull (strstr (r.out, "test R²"));
  g_assert_null (strstr (r.out, "accuracy"));
  bp_test_cli_clear (&r);
  /* stored: runs, show and compare give R² where a classifier has its accuracy */
  g_autofree char *db = g_build_filename (dir, "runs.db", NULL);
  const char *store_args[] = {"train", "--db", db, "--device", "cpu", "--dataset", "diabetes",
                              "--spec", spec, "--epochs", "3", "--lr", "0.01", NULL};
  for (int k = 0; k < 2; k++) {
    r = bp_test_cli_run (NULL, NULL, store_args);
    bp_test_cli_assert_ok (&r, "train on diabetes, stored");
    bp_test_cli_clear (&r);
  }
  const char *runs_args[] = {"runs", "--db", db, NULL};
  r = bp_test_cli_run (NULL, NULL, runs_args);
  bp_test_cli_assert_ok (&r, "runs");
  g_assert_nonnull (strstr (r.out, "R² "));
  bp_test_cli_clear (&r);
  const char *show_args[] = {"show", "1", "--db", db, NULL};
  r = bp_test_cli_run (NULL, NULL, show_args);
  bp_test_cli_assert_ok (&r, "show");
  g_assert_nonnull (strstr (r.out, "best val R²"));
  g_assert_nonnull (strstr (r.out, "test R²"));
  g_assert_nonnull (strstr (r.out, "VAL R²"));
  g_assert_null (strstr (r.out, "VAL ACC"));
  bp_test_cli_clear (&r);
  const char *show_json[] = {"show", "1", "--db", db, "--json", NULL};
  r = bp_test_cli_run (NULL, NULL, show_json);
  bp_test_cli_assert_ok (&r, "show --json");
  g_assert_nonnull (strstr (r.out, "\"best_val_r2\":"));
  g_assert_nonnull (strstr (r.out, "\"val_r2\":"));
  bp_test_cli_clear (&r);
  const char *compare_args[] = {"compare", "1", "2", "--db", db, NULL};
  r = bp_test_cli_run (NULL, NULL, compare_args);
  bp_test_cli_assert_ok (&r, "compare");
  g_assert_nonnull (strstr (r.out, "test R²"));
  bp_test_cli_clear (&r);
  /* without --model, a preset that reads the data set: plane-mlp (1,218 parameters) for the
   * spirals, digits-mlp (9,610) for the digits */
  static const char *const defaults[][2] = {{"two-spirals", " 1218 parameters"},
                                            {"digits", " 9610 parameters"}};
  for (gsize k = 0; k < G_N_ELEMENTS (defaults); k++) {
    const char *args[] = {"train", "--no-store", "--device", "cpu", "--dataset", defaults[k][0],
                          "--epochs", "1", NULL};
    r = bp_test_cli_run (NULL, NULL, args);
    bp_test_cli_assert_ok (&r, defaults[k][0]);
    g_assert_nonnull (strstr (r.out, defaults[k][1]));
    bp_test_cli_clear (&r);
  }
  /* the wrong model: the trainer's message, on one line */
  const char *wrong[] = {"train", "--no-store", "--device", "cpu", "--dataset", "digits", "--spec",
                         spec, "--epochs", "1", NULL};
  r = bp_test_cli_run (NULL, NULL, wrong);
  bp_test_cli_assert_error (&r, 1, "backprop train: ", "(1, 8, 8)");
  bp_test_cli_clear (&r);
  bp_test_remove_tree (dir);
}

static void
test_cli_datasets (void)
{
  const char *args[] = {"datasets", NULL};
  BpTestCli r = bp_test_cli_run (NULL, NULL, args);
  bp_test_cli_assert_ok (&r, "datasets");
  for (const char *const *n = bp_dataset_names (); *n; n++)
    g_assert_nonnull (strstr (r.out, *n));
  g_assert_nonnull (strstr (r.out, "tang300"));
  g_assert_nonnull (strstr (r.out, "regression"));
  g_assert_nonnull (strstr (r.out, "synthetic"));
  bp_test_cli_clear (&r);

  g_autofree char *empty = g_dir_make_tmp ("bp-test-tabular-XXXXXX", NULL);
  const char *env[] = {"BP_SKLEARN_DATA_DIR", empty, NULL};
  const char *json_args[] = {"datasets", "--json", NULL};
  r = bp_test_cli_run (env, NULL, json_args);
  bp_test_cli_assert_ok (&r, "datasets --json");
  g_autoptr (JsonNode) node = json_from_string (r.out, NULL);
  g_assert_nonnull (node);
  JsonArray *a = json_node_get_array (node);
  g_assert_cmpint (json_array_get_length (a),
                   ==, g_strv_length ((char **) bp_dataset_names ()) +
                         g_strv_length ((char **) bp_text_corpus_names ()));
  for (guint k = 0; k < json_array_get_length (a); k++) {
    JsonObject *o = json_array_get_object_element (a, k);
    const char *name = json_object_get_string_member (o, "name");
    const BpDatasetInfo *info = bp_dataset_info (name);
    if (!info) {
      g_assert_cmpstr (json_object_get_string_member (o, "kind"), ==, "text");
      continue;
    }
    g_assert_cmpstr (json_object_get_string_member (o, "kind"), ==, bp_dataset_kind_name (info->kind));
    g_assert_cmpstr (json_object_get_string_member (o, "task"), ==, bp_task_name (info->task));
    g_assert_cmpint (json_object_get_int_member (o, "train"), ==, info->n_train);
    g_assert_cmpint (json_object_get_int_member (o, "classes"), ==, info->n_classes);
    gboolean installed = json_object_get_boolean_member (o, "installed");
    if (info->package && !strcmp (info->package, "python3-sklearn")) {
      g_assert_false (installed);
      g_assert_nonnull (strstr (json_object_get_string_member (o, "missing"), "python3-sklearn"));
    } else if (info->kind == BP_DATASET_SYNTHETIC) {
      g_assert_true (installed);
    }
  }
  bp_test_cli_clear (&r);
  const char *text_args[] = {"datasets", NULL};
  r = bp_test_cli_run (env, NULL, text_args);
  bp_test_cli_assert_ok (&r, "datasets without scikit-learn's files");
  g_auto (GStrv) lines = g_strsplit (r.out, "\n", -1);
  gboolean seen = FALSE;
  for (int k = 0; lines[k]; k++)
    if (g_str_has_prefix (lines[k], "digits ")) {
      g_assert_nonnull (strstr (lines[k], "no: apt install python3-sklearn"));
      seen = TRUE;
    }
  g_assert_true (seen);
  bp_test_cli_clear (&r);
  bp_test_remove_tree (empty);
  g_free (empty);
  empty = NULL;
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  bp_set_num_threads (2);
  g_test_add_func ("/tabular/names", test_names);
  for (size_t k = 0; k < G_N_ELEMENTS (sklearn_sets); k++) {
    g_autofree char *path = g_strdup_printf ("/tabular/sklearn/%s", sklearn_sets[k]);
    g_test_add_data_func (path, sklearn_sets[k], test_sklearn);
  }
  g_test_add_func ("/tabular/split-stable", test_split_stable);
  g_test_add_func ("/tabular/malformed", test_malformed);
  g_test_add_func ("/tabular/synthetic", test_synthetic);
  g_test_add_func ("/tabular/train/digits", test_train_digits);
  g_test_add_func ("/tabular/train/diabetes", test_train_diabetes);
  g_test_add_func ("/tabular/train/resume", test_resume_regression);
  g_test_add_func ("/tabular/train/spirals", test_train_spirals);
  g_test_add_func ("/tabular/train/cuda", test_cuda);
  g_test_add_func ("/tabular/recorder", test_recorder);
  g_test_add_func ("/tabular/cli/train", test_cli_train);
  g_test_add_func ("/tabular/cli/datasets", test_cli_datasets);
  return g_test_run ();
}
