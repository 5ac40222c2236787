/* test-cli.c: the `backprop` command as a user runs it: help, presets, a short training run with
 * --json (stored in the default database under $XDG_DATA_HOME, here a temporary folder), and
 * one-line errors with the right exit status for bad input. The experiment commands are tested
 * in test-runs.c. */
#include "bp-test.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

static char *data_home; /* $XDG_DATA_HOME of the runs: the default database goes there */

typedef BpTestCli Result;

#define result_clear bp_test_cli_clear

/* Runs backprop with the arguments (NULL-terminated) and optional extra environment. */
static Result
run_cli (const char *const *env_extra, ...)
{
  GPtrArray *args = g_ptr_array_new ();
  va_list ap;
  va_start (ap, env_extra);
  const char *a;
  while ((a = va_arg (ap, const char *)))
    g_ptr_array_add (args, (gpointer) a);
  va_end (ap);
  g_ptr_array_add (args, NULL);
  Result r = bp_test_cli_run (env_extra, NULL, (const char *const *) args->pdata);
  g_ptr_array_unref (args);
  return r;
}

static int
count_lines (const char *s)
{
  int n = 0;
  for (; *s; s++)
    n += *s == '\n';
  return n;
}

static void
assert_one_line_error (Result *r, int status, const char *needle)
{
  if (r->status != status || count_lines (r->err) != 1 || !strstr (r->err, needle))
    g_error ("expected exit %d and one line with \"%s\", got exit %d and stderr:\n%s", status,
             needle, r->status, r->err);
  g_assert_true (g_str_has_prefix (r->err, "backprop"));
}

static void
test_help (void)
{
  Result r = run_cli (NULL, "--help", NULL);
  g_assert_cmpint (r.status, ==, 0);
  const char *commands[] = {"train", "runs", "show", "compare", "export", "rm", "tag", "note",
                            "models", "bench", "devices"};
  for (gsize k = 0; k < G_N_ELEMENTS (commands); k++)
    if (!strstr (r.out, commands[k]))
      g_error ("--help does not list %s", commands[k]);
  result_clear (&r);
  r = run_cli (NULL, "train", "--help", NULL);
  g_assert_cmpint (r.status, ==, 0);
  const char *flags[] = {"--model", "--dataset", "--epochs", "--batch-size", "--optimizer", "--lr",
                         "--seed", "--device", "--limit-train", "--json", "--scheduler",
                         "--weight-decay", "--clip-norm", "--l1", "--momentum", "--nesterov",
                         "--spec", "--db", "--name", "--tag", "--no-store", "--checkpoint-every",
                         "--keep-checkpoints", "--resume"};
  for (gsize k = 0; k < G_N_ELEMENTS (flags); k++)
    if (!strstr (r.out, flags[k]))
      g_error ("train --help does not describe %s", flags[k]);
  result_clear (&r);
  r = run_cli (NULL, "frobnicate", NULL);
  assert_one_line_error (&r, 2, "unknown command");
  result_clear (&r);
}

static void
test_models (void)
{
  Result r = run_cli (NULL, "models", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "mlp"));
  g_assert_nonnull (strstr (r.out, "247766"));
  g_assert_nonnull (strstr (r.out, "simple-cnn"));
  g_assert_nonnull (strstr (r.out, "688586"));
  result_clear (&r);
  r = run_cli (NULL, "models", "--json", NULL);
  g_autoptr (JsonParser) p = json_parser_new ();
  g_assert_true (json_parser_load_from_data (p, r.out, -1, NULL));
  g_assert_true (JSON_NODE_HOLDS_ARRAY (json_parser_get_root (p)));
  result_clear (&r);
}

static void
test_bad_flags (void)
{
  static const struct {
    const char *flag, *value, *needle;
  } cases[] = {
    {"--lr", "-1", "--lr"},
    {"--lr", "abc", "--lr"},
    {"--lr", "nan", "--lr"},
    {"--batch-size", "0", "--batch-size"},
    {"--batch-size", "12x", "--batch-size"},
    {"--epochs", "0", "--epochs"},
    {"--model", "no-such-model", "unknown model"},
    {"--optimizer", "rmsprop", "--optimizer"},
    {"--device", "tpu", "--device"},
    {"--cuda-graph", "maybe", "--cuda-graph"},
    {"--label-smoothing", "1", "--label-smoothing"},
    {"--frobnicate", "1", "frobnicate"},
  };
  for (gsize k = 0; k < G_N_ELEMENTS (cases); k++) {
    Result r = run_cli (NULL, "train", cases[k].flag, cases[k].value, NULL);
    assert_one_line_error (&r, 2, cases[k].needle);
    result_clear (&r);
  }
}

static gboolean
have_fashion_mnist (void)
{
  return g_file_test ("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", G_FILE_TEST_EXISTS);
}

static void
test_missing_dataset (void)
{
  g_autofree char *dir = g_dir_make_tmp ("bp-cli-XXXXXX", NULL);
  const char *env[] = {"BP_DATASETS_DIR", dir, NULL};
  Result r = run_cli (env, "train", "--model", "mlp", "--epochs", "1", "--device", "cpu", NULL);
  assert_one_line_error (&r, 1, "dataset-fashion-mnist");
  result_clear (&r);
  g_rmdir (dir);
}

static void
write_gz (const char *path, const void *data, gsize len)
{
  gzFile f = gzopen (path, "wb");
  g_assert_nonnull (f);
  g_assert_cmpint (gzwrite (f, data, (unsigned) len), ==, (int) len);
  gzclose (f);
}

static void
test_truncated_idx (void)
{
  /* a data set folder whose training images stop after 10 of the 100 images the header promises */
  g_autofree char *dir = g_dir_make_tmp ("bp-cli-XXXXXX", NULL);
  g_autofree char *fm = g_build_filename (dir, "fashion-mnist", NULL);
  g_mkdir (fm, 0700);
  guint8 header[16] = {0, 0, 8, 3, 0, 0, 0, 100, 0, 0, 0, 28, 0, 0, 0, 28};
  gsize len = 16 + 10 * 784;
  guint8 *images = g_malloc0 (len);
  memcpy (images, header, 16);
  guint8 labels[8 + 100] = {0, 0, 8, 1, 0, 0, 0, 100};
  const char *names[] = {"train", "t10k"};
  for (int k = 0; k < 2; k++) {
    g_autofree char *ip = g_strdup_printf ("%s/%s-images-idx3-ubyte.gz", fm, names[k]);
    g_autofree char *lp = g_strdup_printf ("%s/%s-labels-idx1-ubyte.gz", fm, names[k]);
    write_gz (ip, images, len);
    write_gz (lp, labels, sizeof labels);
  }
  const char *env[] = {"BP_DATASETS_DIR", dir, NULL};
  Result r = run_cli (env, "train", "--model", "mlp", "--epochs", "1", "--device", "cpu", NULL);
  assert_one_line_error (&r, 1, "train-images-idx3-ubyte.gz");
  result_clear (&r);
  for (int k = 0; k < 2; k++) {
    g_autofree char *ip = g_strdup_printf ("%s/%s-images-idx3-ubyte.gz", fm, names[k]);
    g_autofree char *lp = g_strdup_printf ("%s/%s-labels-idx1-ubyte.gz", fm, names[k]);
    g_unlink (ip);
    g_unlink (lp);
  }
  g_rmdir (fm);
  g_rmdir (dir);
  g_free (images);
}

static void
test_train_json (void)
{
  if (!have_fashion_mnist ()) {
    g_test_skip ("Fashion-MNIST (dataset-fashion-mnist) is not installed");
    return;
  }
  Result r = run_cli (NULL, "train", "--model", "mlp", "--epochs", "2", "--limit-train", "2000",
                      "--limit-test", "500", "--batch-size", "32", "--device", "cpu", "--json",
                      NULL);
  if (r.status != 0)
    g_error ("train failed (%d): %s", r.status, r.err);
  g_auto (GStrv) lines = g_strsplit (g_strstrip (r.out), "\n", -1);
  g_assert_cmpuint (g_strv_length (lines), ==, 3);
  for (int k = 0; k < 3; k++) {
    g_autoptr (JsonParser) p = json_parser_new ();
    g_assert_true (json_parser_load_from_data (p, lines[k], -1, NULL));
    JsonObject *o = json_node_get_object (json_parser_get_root (p));
    const char *ev = json_object_get_string_member (o, "event");
    if (k < 2) {
      g_assert_cmpstr (ev, ==, "epoch");
      g_assert_cmpint (json_object_get_int_member (o, "epoch"), ==, k + 1);
      const char *keys[] = {"train_loss", "val_loss", "val_accuracy", "seconds"};
      for (gsize j = 0; j < G_N_ELEMENTS (keys); j++)
        g_assert_true (json_object_has_member (o, keys[j]));
      double acc = json_object_get_double_member (o, "val_accuracy");
      g_assert_cmpfloat (acc, >, 0.5);
      g_assert_cmpfloat (acc, <=, 1.0);
    } else {
      g_assert_cmpstr (ev, ==, "done");
      /* stored in the default database */
      g_autofree char *db = g_build_filename (data_home, "backprop-lab", "experiments.db", NULL);
      g_assert_cmpstr (json_object_get_string_member (o, "db"), ==, db);
      g_assert_true (g_file_test (db, G_FILE_TEST_IS_REGULAR));
      g_assert_cmpint (json_object_get_int_member (o, "run_id"), >=, 1);
      g_assert_cmpstr (json_object_get_string_member (o, "status"), ==, "finished");
      double acc = json_object_get_double_member (o, "test_accuracy");
      g_assert_cmpfloat (acc, >, 0.6); /* 2000 examples, 2 epochs: about 0.75 */
      g_assert_cmpfloat (json_object_get_double_member (o, "test_loss"), >, 0.0);
      g_assert_cmpfloat (json_object_get_double_member (o, "seconds"), >, 0.0);
    }
  }
  result_clear (&r);
}

static void
test_nan_loss (void)
{
  if (!have_fashion_mnist ()) {
    g_test_skip ("Fashion-MNIST (dataset-fashion-mnist) is not installed");
    return;
  }
  /* a learning rate this large makes SGD diverge within a few steps */
  g_autofree char *dir = g_dir_make_tmp ("bp-cli-XXXXXX", NULL);
  g_autofree char *db = g_build_filename (dir, "exp.db", NULL);
  Result r = run_cli (NULL, "train", "--model", "mlp", "--epochs", "1", "--limit-train", "2000",
                      "--optimizer", "sgd", "--lr", "1000", "--device", "cpu", "--db", db,
                      "--name", "diverges", NULL);
  assert_one_line_error (&r, 1, "the loss became");
  g_assert_nonnull (strstr (r.out, "run 1 (failed) stored in"));
  result_clear (&r);
  /* the run is kept, failed, with the reason */
  r = run_cli (NULL, "runs", "--db", db, "--json", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_autoptr (JsonParser) p = json_parser_new ();
  g_assert_true (json_parser_load_from_data (p, r.out, -1, NULL));
  JsonObject *run = json_array_get_object_element (json_node_get_array (json_parser_get_root (p)), 0);
  g_assert_cmpstr (json_object_get_string_member (run, "name"), ==, "diverges");
  g_assert_cmpstr (json_object_get_string_member (run, "status"), ==, "failed");
  g_assert_nonnull (strstr (json_object_get_string_member (run, "status_reason"), "the loss became"));
  result_clear (&r);
  /* --json says where the failed run went */
  r = run_cli (NULL, "train", "--model", "mlp", "--epochs", "1", "--limit-train", "2000",
               "--optimizer", "sgd", "--lr", "1000", "--device", "cpu", "--db", db, "--json", NULL);
  assert_one_line_error (&r, 1, "the loss became");
  g_assert_nonnull (strstr (r.out, "{\"event\":\"failed\",\"error\":\"the loss became"));
  g_assert_nonnull (strstr (r.out, "\"run_id\":2,"));
  result_clear (&r);
  g_autofree char *cps = g_build_filename (dir, "checkpoints", NULL);
  g_autofree char *cp1 = g_build_filename (cps, "1", NULL);
  g_rmdir (cp1);
  g_rmdir (cps);
  g_unlink (db);
  g_rmdir (dir);
}

static void
test_no_store (void)
{
  if (!have_fashion_mnist ()) {
    g_test_skip ("Fashion-MNIST (dataset-fashion-mnist) is not installed");
    return;
  }
  g_autofree char *dir = g_dir_make_tmp ("bp-cli-XXXXXX", NULL);
  const char *env[] = {"XDG_DATA_HOME", dir, NULL};
  Result r = run_cli (env, "train", "--model", "mlp", "--epochs", "1", "--limit-train", "256",
                      "--limit-test", "100", "--device", "cpu", "--no-store", "--json", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_null (strstr (r.out, "run_id"));
  result_clear (&r);
  g_assert_true (g_rmdir (dir) == 0); /* nothing was written there */
}

/* backprop bench: its flags, refusals and a short CPU run with --json; --device cuda either
 * measures (a usable GPU) or fails with one line saying why (exit 1, not a usage error). */
static void
test_bench (void)
{
  Result r = run_cli (NULL, "bench", "--help", NULL);
  g_assert_cmpint (r.status, ==, 0);
  const char *flags[] = {"--model", "--batch-size", "--steps", "--warmup", "--threads", "--device",
                         "--precision", "--cuda-graph", "--gemm", "--repeats", "--json"};
  for (gsize k = 0; k < G_N_ELEMENTS (flags); k++)
    if (!strstr (r.out, flags[k]))
      g_error ("bench --help does not describe %s", flags[k]);
  result_clear (&r);

  static const struct {
    const char *flag, *value, *needle;
  } cases[] = {
    {"--device", "tpu", "--device"},
    {"--precision", "fp8", "--precision"},
    {"--cuda-graph", "maybe", "--cuda-graph"},
    {"--gemm", "64", "--gemm needs --device cuda"},
    {"--repeats", "0", "--repeats"},
    {"--batch-size", "0", "--batch-size"},
    {"--model", "no-such-model", "unknown model"},
  };
  for (gsize k = 0; k < G_N_ELEMENTS (cases); k++) {
    r = run_cli (NULL, "bench", cases[k].flag, cases[k].value, NULL);
    assert_one_line_error (&r, 2, cases[k].needle);
    result_clear (&r);
  }
  r = run_cli (NULL, "bench", "--device", "cuda", "--gemm", "64", "--precision", "bf16", NULL);
  assert_one_line_error (&r, 2, "--precision");
  result_clear (&r);

  r = run_cli (NULL, "bench", "--device", "cuda", "--gemm", "64", "--repeats", "2", "--json",
               NULL);
  if (r.status == 0) {
    g_autoptr (JsonParser) p = json_parser_new ();
    g_assert_true (json_parser_load_from_data (p, r.out, -1, NULL));
    JsonObject *o = json_node_get_object (json_parser_get_root (p));
    g_assert_cmpint (json_object_get_int_member (o, "gemm"), ==, 64);
    g_assert_cmpfloat (json_object_get_double_member (o, "engine_tflops"), >, 0.0);
    g_assert_cmpfloat (json_object_get_double_member (o, "cublas_tflops"), >, 0.0);
  } else {
    assert_one_line_error (&r, 1, "--device cuda");
  }
  result_clear (&r);

  if (!have_fashion_mnist ()) {
    g_test_skip ("Fashion-MNIST (dataset-fashion-mnist) is not installed");
    return;
  }
  r = run_cli (NULL, "bench", "--model", "mlp", "--batch-size", "16", "--steps", "2", "--warmup",
               "1", "--repeats", "2", "--threads", "1", "--json", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_autoptr (JsonParser) p = json_parser_new ();
  g_assert_true (json_parser_load_from_data (p, r.out, -1, NULL));
  JsonObject *o = json_node_get_object (json_parser_get_root (p));
  g_assert_cmpstr (json_object_get_string_member (o, "engine"), ==, "backprop");
  g_assert_cmpstr (json_object_get_string_member (o, "device"), ==, "cpu");
  g_assert_cmpstr (json_object_get_string_member (o, "precision"), ==, "fp32");
  g_assert_false (json_object_get_boolean_member (o, "cuda_graph"));
  g_assert_cmpint (json_object_get_int_member (o, "steps"), ==, 2);
  g_assert_cmpint (json_object_get_int_member (o, "repeats"), ==, 2);
  g_assert_cmpfloat (json_object_get_double_member (o, "images_per_second"), >, 0.0);
  g_assert_true (isfinite (json_object_get_double_member (o, "last_loss")));
  result_clear (&r);

  r = run_cli (NULL, "bench", "--model", "mlp", "--batch-size", "16", "--steps", "2", "--warmup",
               "1", "--threads", "1", "--device", "cuda", "--json", NULL);
  if (r.status == 0) {
    g_autoptr (JsonParser) q = json_parser_new ();
    g_assert_true (json_parser_load_from_data (q, r.out, -1, NULL));
    o = json_node_get_object (json_parser_get_root (q));
    g_assert_cmpstr (json_object_get_string_member (o, "device"), ==, "cuda");
    g_assert_true (json_object_get_boolean_member (o, "cuda_graph"));
    g_assert_true (strlen (json_object_get_string_member (o, "step_note")) > 0);
  } else {
    assert_one_line_error (&r, 1, "--device cuda");
  }
  result_clear (&r);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  /* never the user's own experiment store */
  data_home = g_dir_make_tmp ("bp-cli-data-XXXXXX", NULL);
  g_setenv ("XDG_DATA_HOME", data_home, TRUE);
  g_test_add_func ("/cli/help", test_help);
  g_test_add_func ("/cli/models", test_models);
  g_test_add_func ("/cli/bad-flags", test_bad_flags);
  g_test_add_func ("/cli/missing-dataset", test_missing_dataset);
  g_test_add_func ("/cli/truncated-idx", test_truncated_idx);
  g_test_add_func ("/cli/train-json", test_train_json);
  g_test_add_func ("/cli/nan-loss", test_nan_loss);
  g_test_add_func ("/cli/no-store", test_no_store);
  g_test_add_func ("/cli/bench", test_bench);
  int rc = g_test_run ();
  bp_test_remove_tree (data_home);
  g_free (data_home);
  return rc;
}
