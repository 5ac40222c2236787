/* test-runs.c: training runs kept as experiments, through the real `backprop` program ($BP_CLI)
 * on small subsets of Fashion-MNIST, each test with its own database: runs, show, compare and
 * its plot, tags, notes, rm; CSV and PyTorch export (logits checked in Debian's torch); exact
 * resume after --epochs and after Ctrl-C; SIGKILL at random moments; refused databases and
 * checkpoints leaving everything unchanged.
 *
 * Environment: BP_TEST_QUICK=1 does fewer kills (for sanitizer builds); BP_TEST_KILLS=N sets
 * the number of kills (default 20). */
#include "bp-test.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bp-backend.h"
#include "bp-rng.h"
#include "bp-safetensors.h"
#include "bp-store.h"
#include "bp-trainer.h"

static char *test_root; /* removed at the end of main */

/* A small model with every kind of state a resume must restore: batch-norm buffers and
 * num_batches_tracked (1d and 2d) and dropout (the engine RNG). */
static const char tiny_spec[] =
  "{\"format\": \"backprop-lab-model\", \"version\": 2, \"name\": \"tiny\", \"nodes\": [\n"
  " {\"id\": \"x\", \"type\": \"Input\", \"shape\": [1, 28, 28]},\n"
  " {\"id\": \"conv\", \"type\": \"Conv2d\", \"inputs\": [\"x\"], \"out_channels\": 4, \"kernel_size\": 3, \"stride\": 2},\n"
  " {\"id\": \"bn2d\", \"type\": \"BatchNorm2d\", \"inputs\": [\"conv\"]},\n"
  " {\"id\": \"relu0\", \"type\": \"ReLU\", \"inputs\": [\"bn2d\"]},\n"
  " {\"id\": \"flatten\", \"type\": \"Flatten\", \"inputs\": [\"relu0\"]},\n"
  " {\"id\": \"fc1\", \"type\": \"Linear\", \"inputs\": [\"flatten\"], \"out_features\": 32},\n"
  " {\"id\": \"bn\", \"type\": \"BatchNorm1d\", \"inputs\": [\"fc1\"]},\n"
  " {\"id\": \"relu\", \"type\": \"ReLU\", \"inputs\": [\"bn\"]},\n"
  " {\"id\": \"drop\", \"type\": \"Dropout\", \"inputs\": [\"relu\"], \"p\": 0.3},\n"
  " {\"id\": \"fc2\", \"type\": \"Linear\", \"inputs\": [\"drop\"], \"out_features\": 10},\n"
  " {\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"fc2\"]}]}\n";

/* ---- helpers ---- */

static gboolean
have_fashion_mnist (void)
{
  if (g_file_test ("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
                   G_FILE_TEST_EXISTS))
    return TRUE;
  g_test_skip ("Fashion-MNIST (dataset-fashion-mnist) is not installed");
  return FALSE;
}

typedef BpTestCli Result;

#define result_clear bp_test_cli_clear

static void
drop_to_nobody (gpointer user_data)
{
  if (setgid (65534) != 0 || setuid (65534) != 0)
    _exit (99);
  prctl (PR_SET_DUMPABLE, 1);
}

/* Runs backprop with argv (NULL-terminated); env: NULL-terminated name/value pairs. */
static Result
run_argv (const char *const *env, gboolean as_nobody, const char *const *args)
{
  return bp_test_cli_run (env, as_nobody ? drop_to_nobody : NULL, args);
}

#define RUN(...) run_argv (NULL, FALSE, (const char *const[]){__VA_ARGS__, NULL})
#define RUN_ENV(env, ...) run_argv (env, FALSE, (const char *const[]){__VA_ARGS__, NULL})
#define RUN_NOBODY(...) run_argv (NULL, TRUE, (const char *const[]){__VA_ARGS__, NULL})

#define assert_ok bp_test_cli_assert_ok

static int
count_lines (const char *s)
{
  int n = 0;
  for (; *s; s++)
    n += *s == '\n';
  return n;
}

#define assert_one_line_error(r, status, needle) \
  bp_test_cli_assert_error (r, status, "backprop", needle)

static JsonNode *
parse_json (const char *text)
{
  g_autoptr (GError) error = NULL;
  JsonNode *node = json_from_string (text, &error);
  if (!node)
    g_error ("not JSON (%s): %s", error->message, text);
  return node;
}

/* The run object with this id in `runs --json` output (borrowed from root), or NULL. */
static JsonObject *
find_run (JsonNode *root, gint64 id)
{
  JsonArray *a = json_node_get_array (root);
  for (guint k = 0; k < json_array_get_length (a); k++) {
    JsonObject *o = json_array_get_object_element (a, k);
    if (json_object_get_int_member (o, "id") == id)
      return o;
  }
  return NULL;
}

/* Common arguments of a quick run. */
#define QUICK "--limit-train", "512", "--limit-test", "200", "--device", "cpu"

static char *
write_spec (const char *dir)
{
  char *path = g_build_filename (dir, "tiny.json", NULL);
  g_assert_true (g_file_set_contents (path, tiny_spec, -1, NULL));
  return path;
}

/* The values of one series of a run, read through the store API. */
static GArray *
series (const char *db, gint64 run, const char *split, const char *name)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (BpStore) store = bp_store_open_full (db, BP_STORE_OPEN_READ_ONLY, 0, &error);
  g_assert_no_error (error);
  GArray *pts = bp_store_get_metrics (store, run, split, name, &error);
  g_assert_no_error (error);
  return pts;
}

static void
assert_same_series (const char *db, gint64 a, gint64 b, const char *split, const char *name)
{
  g_autoptr (GArray) x = series (db, a, split, name);
  g_autoptr (GArray) y = series (db, b, split, name);
  g_assert_cmpuint (x->len, >, 0);
  if (x->len != y->len)
    g_error ("%s/%s: run %" G_GINT64_FORMAT " has %u points, run %" G_GINT64_FORMAT " %u", split,
             name, a, x->len, b, y->len);
  for (guint k = 0; k < x->len; k++) {
    BpMetricPoint *p = &g_array_index (x, BpMetricPoint, k), *q = &g_array_index (y, BpMetricPoint, k);
    if (p->step != q->step || p->epoch != q->epoch || memcmp (&p->value, &q->value, sizeof (double)))
      g_error ("%s/%s point %u: run %" G_GINT64_FORMAT " has step %" G_GINT64_FORMAT " value %.17g, "
               "run %" G_GINT64_FORMAT " step %" G_GINT64_FORMAT " value %.17g",
               split, name, k, a, p->step, p->value, b, q->step, q->value);
  }
}

/* "train_loss" of each epoch line of --json output, in order. */
static GArray *
epoch_losses (const char *out)
{
  GArray *a = g_array_new (FALSE, FALSE, sizeof (double));
  g_auto (GStrv) lines = g_strsplit (out, "\n", -1);
  for (int k = 0; lines[k]; k++) {
    if (!strstr (lines[k], "\"event\":\"epoch\""))
      continue;
    g_autoptr (JsonNode) n = parse_json (lines[k]);
    double v = json_object_get_double_member (json_node_get_object (n), "train_loss");
    g_array_append_val (a, v);
  }
  return a;
}

static gint64
done_run_id (const char *out)
{
  const char *line = strstr (out, "{\"event\":\"done\"");
  g_assert_nonnull (line);
  g_autofree char *text = g_strndup (line, strcspn (line, "\n"));
  g_autoptr (JsonNode) n = parse_json (text);
  return json_object_get_int_member (json_node_get_object (n), "run_id");
}

/* ---- runs, show, compare, plot, tag, note, rm ---- */

static void
test_list_compare (void)
{
  if (!have_fashion_mnist ())
    return;
  g_autofree char *dir = bp_test_temp_dir (test_root);
  g_autofree char *db = g_build_filename (dir, "exp.db", NULL);
  Result r = RUN ("train", "--model", "mlp", QUICK, "--epochs", "3", "--lr", "0.001", "--db", db);
  assert_ok (&r, "train lr 0.001");
  g_assert_nonnull (strstr (r.out, "run 1 (finished) stored in"));
  g_assert_nonnull (strstr (r.out, db));
  result_clear (&r);
  r = RUN ("train", "--model", "mlp", QUICK, "--epochs", "3", "--lr", "0.003", "--db", db,
           "--name", "faster", "--json");
  assert_ok (&r, "train lr 0.003");
  g_assert_cmpint (done_run_id (r.out), ==, 2);
  g_assert_nonnull (strstr (r.out, "\"db\":"));
  result_clear (&r);

  /* runs: both, newest first, with their best validation accuracy */
  r = RUN ("runs", "--db", db, "--json");
  assert_ok (&r, "runs --json");
  g_autoptr (JsonNode) runs = parse_json (r.out);
  g_assert_cmpuint (json_array_get_length (json_node_get_array (runs)), ==, 2);
  for (gint64 id = 1; id <= 2; id++) {
    JsonObject *o = find_run (runs, id);
    g_assert_nonnull (o);
    g_assert_cmpstr (json_object_get_string_member (o, "status"), ==, "finished");
    g_assert_cmpstr (json_object_get_string_member (o, "model"), ==, "mlp");
    g_assert_cmpstr (json_object_get_string_member (o, "dataset"), ==, "fashion-mnist");
    g_assert_cmpint (json_object_get_int_member (o, "epochs"), ==, 3);
    double acc = json_object_get_double_member (o, "best_val_accuracy");
    g_assert_cmpfloat (acc, >, 0.3);
    g_assert_cmpfloat (acc, <=, 1.0);
  }
  g_assert_cmpstr (json_object_get_string_member (find_run (runs, 2), "name"), ==, "faster");
  result_clear (&r);
  r = RUN ("runs", "--db", db);
  assert_ok (&r, "runs");
  g_assert_nonnull (strstr (r.out, "faster"));
  g_assert_nonnull (strstr (r.out, "BEST VAL"));
  g_assert_cmpint (count_lines (r.out), ==, 3);
  result_clear (&r);

  /* show: the curves are stored, one row per epoch, with checkpoints */
  r = RUN ("show", "faster", "--db", db, "--json");
  assert_ok (&r, "show --json");
  {
    g_autoptr (JsonNode) n = parse_json (r.out);
    JsonObject *o = json_node_get_object (n);
    JsonArray *epochs = json_object_get_array_member (o, "epochs_table");
    g_assert_cmpuint (json_array_get_length (epochs), ==, 3);
    for (guint e = 0; e < 3; e++) {
      JsonObject *row = json_array_get_object_element (epochs, e);
      g_assert_cmpint (json_object_get_int_member (row, "epoch"), ==, e + 1);
      g_assert_cmpint (json_object_get_int_member (row, "step"), ==, 8 * (e + 1));
      g_assert_cmpfloat (json_object_get_double_member (row, "train_loss"), >, 0);
      g_assert_cmpfloat (json_object_get_double_member (row, "val_accuracy"), >, 0);
      g_assert_cmpfloat (json_object_get_double_member (row, "lr"), ==, 0.003);
    }
    JsonObject *config = json_object_get_object_member (o, "config");
    g_assert_cmpint (json_object_get_int_member (config, "limit_train"), ==, 512);
    g_assert_cmpint (json_object_get_int_member (config, "seed"), ==, 1);
    g_assert_cmpstr (json_object_get_string_member (config, "device"), ==, "cpu");
    g_assert_cmpstr (json_object_get_string_member (json_object_get_object_member (o, "spec"), "name"),
                     ==, "mlp");
    g_assert_true (json_object_has_member (json_object_get_object_member (o, "versions"), "backprop"));
    JsonArray *cps = json_object_get_array_member (o, "checkpoints");
    g_assert_cmpuint (json_array_get_length (cps), ==, 3); /* keep 3 */
    g_assert_cmpfloat (json_object_get_double_member (json_node_get_object (json_object_get_member (o, "final")),
                                                      "test_accuracy"), >, 0.3);
  }
  result_clear (&r);
  r = RUN ("show", "1", "--db", db);
  assert_ok (&r, "show");
  g_assert_nonnull (strstr (r.out, "optimizer.lr"));
  g_assert_nonnull (strstr (r.out, "VAL ACC"));
  g_assert_nonnull (strstr (r.out, "epoch-0003-step-000000024.safetensors"));
  result_clear (&r);

  /* compare: the learning rate is the one setting that differs */
  r = RUN ("compare", "1", "faster", "--db", db, "--json");
  assert_ok (&r, "compare --json");
  {
    g_autoptr (JsonNode) n = parse_json (r.out);
    JsonObject *o = json_node_get_object (n);
    JsonObject *settings = json_object_get_object_member (o, "settings");
    g_assert_cmpuint (json_object_get_size (settings), ==, 1);
    JsonArray *lr = json_object_get_array_member (settings, "optimizer.lr");
    g_assert_cmpstr (json_array_get_string_element (lr, 0), ==, "0.001");
    g_assert_cmpstr (json_array_get_string_element (lr, 1), ==, "0.003");
    JsonArray *acc = json_object_get_array_member (json_object_get_object_member (o, "final"),
                                                   "best_val_accuracy");
    g_assert_cmpuint (json_array_get_length (acc), ==, 2);
  }
  result_clear (&r);
  r = RUN ("compare", "1", "2", "--db", db);
  assert_ok (&r, "compare");
  g_assert_nonnull (strstr (r.out, "optimizer.lr"));
  g_assert_nonnull (strstr (r.out, "test accuracy"));
  g_assert_null (strstr (r.out, "optimizer.beta1")); /* the same in both */
  result_clear (&r);

  /* one PNG with both curves, for each metric */
  const char *metrics[] = {"val_accuracy", "train_loss", "val_loss"};
  for (gsize k = 0; k < G_N_ELEMENTS (metrics); k++) {
    g_autofree char *png = g_strdup_printf ("%s/%s.png", dir, metrics[k]);
    /* fontconfig (under Cairo's text) keeps its caches to the end: not our leak */
    g_autofree char *supp = g_build_filename (dir, "lsan.supp", NULL);
    g_assert_true (g_file_set_contents (supp, "leak:libfontconfig.so\n", -1, NULL));
    g_autofree char *lsan = g_strdup_printf ("suppressions=%s:print_suppressions=0", supp);
    const char *env[] = {"LSAN_OPTIONS", lsan, NULL};
    r = RUN_ENV (env, "compare", "1", "2", "--db", db, "--plot", png, "--metric", metrics[k]);
    if (r.status == 1 && strstr (r.err, "without Cairo"))
      g_error ("this backprop was built without Cairo: link it with cairo (engine/cli/meson.build)");
    assert_ok (&r, "compare --plot");
    g_autoptr (GBytes) bytes = bp_test_read_bytes (png);
    gsize len;
    const guint8 *data = g_bytes_get_data (bytes, &len);
    static const guint8 signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    g_assert_cmpuint (len, >, 5000);
    g_assert_cmpmem (data, 8, signature, 8);
    g_assert_cmpmem (data + 12, 4, "IHDR", 4);
    g_test_message ("%s: %" G_GSIZE_FORMAT " bytes", png, len);
    result_clear (&r);
  }

  /* tags, notes, rm */
  r = RUN ("tag", "1", "baseline", "slow lr", "--db", db);
  assert_ok (&r, "tag");
  g_assert_nonnull (strstr (r.out, "baseline, slow lr"));
  result_clear (&r);
  r = RUN ("runs", "--db", db, "--tag", "baseline", "--json");
  assert_ok (&r, "runs --tag");
  {
    g_autoptr (JsonNode) n = parse_json (r.out);
    g_assert_cmpuint (json_array_get_length (json_node_get_array (n)), ==, 1);
    g_assert_nonnull (find_run (n, 1));
  }
  result_clear (&r);
  r = RUN ("tag", "1", "--remove", "slow lr", "--db", db, "--json");
  assert_ok (&r, "tag --remove");
  g_assert_cmpstr (g_strstrip (r.out), ==, "[\"baseline\"]");
  result_clear (&r);
  r = RUN ("note", "faster", "three", "times", "the", "rate", "--db", db);
  assert_ok (&r, "note");
  result_clear (&r);
  r = RUN ("note", "2", "--db", db);
  assert_ok (&r, "note (read)");
  g_assert_cmpstr (r.out, ==, "three times the rate\n");
  result_clear (&r);
  r = RUN ("show", "2", "--db", db);
  g_assert_nonnull (strstr (r.out, "note: three times the rate"));
  result_clear (&r);

  g_autofree char *cp_dir = g_build_filename (dir, "checkpoints", "2", NULL);
  g_assert_true (g_file_test (cp_dir, G_FILE_TEST_IS_DIR));
  r = RUN ("rm", "faster", "--db", db);
  assert_ok (&r, "rm");
  g_assert_cmpstr (r.out, ==, "removed run 2\n");
  result_clear (&r);
  g_assert_false (g_file_test (cp_dir, G_FILE_TEST_EXISTS));
  r = RUN ("runs", "--db", db, "--json");
  {
    g_autoptr (JsonNode) n = parse_json (r.out);
    g_assert_cmpuint (json_array_get_length (json_node_get_array (n)), ==, 1);
  }
  result_clear (&r);
  r = RUN ("show", "2", "--db", db);
  assert_one_line_error (&r, 1, "no run 2");
  result_clear (&r);
  bp_test_remove_tree (dir);
}

/* ---- export --csv ---- */

static void
test_export_csv (void)
{
  if (!have_fashion_mnist ())
    return;
  g_autofree char *dir = bp_test_temp_dir (test_root);
  g_autofree char *db = g_build_filename (dir, "exp.db", NULL);
  g_autofree char *csv = g_build_filename (dir, "points.csv", NULL);
  Result r = RUN ("train", "--model", "mlp", QUICK, "--epochs", "2", "--db", db, "--name", "a,\"quoted\" name");
  assert_ok (&r, "train");
  result_clear (&r);
  r = RUN ("export", "1", "--db", db, "--csv", csv);
  assert_ok (&r, "export --csv");
  result_clear (&r);
  g_autofree char *text = NULL;
  g_assert_true (g_file_get_contents (csv, &text, NULL, NULL));
  r = RUN ("export", "1", "--db", db, "--csv", "-");
  assert_ok (&r, "export --csv -");
  g_assert_cmpstr (r.out, ==, text);
  result_clear (&r);

  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  g_assert_cmpstr (lines[0], ==, "run_id,step,epoch,split,name,value,wall_time_us");
  g_autoptr (GArray) all = series (db, 1, NULL, NULL);
  /* 2 epochs x 8 steps of train/loss, 7 per epoch, 2 test */
  g_assert_cmpuint (all->len, ==, 2 * 8 + 2 * 7 + 2);
  g_assert_cmpuint (g_strv_length (lines), ==, all->len + 2); /* header, final empty line */
  for (guint k = 0; k < all->len; k++) {
    BpMetricPoint *p = &g_array_index (all, BpMetricPoint, k);
    g_auto (GStrv) f = g_strsplit (lines[k + 1], ",", -1);
    g_assert_cmpuint (g_strv_length (f), ==, 7);
    g_assert_cmpstr (f[0], ==, "1");
    g_assert_cmpint (g_ascii_strtoll (f[1], NULL, 10), ==, p->step);
    g_assert_cmpint (g_ascii_strtoll (f[2], NULL, 10), ==, p->epoch);
    g_assert_cmpstr (f[3], ==, p->split);
    g_assert_cmpstr (f[4], ==, p->name);
    g_assert_true (g_ascii_strtod (f[5], NULL) == p->value); /* exact */
    g_assert_cmpint (g_ascii_strtoll (f[6], NULL, 10), ==, p->wall_us);
  }
  bp_test_remove_tree (dir);
}

/* ---- export --pytorch ---- */

static void
check_pytorch_export (const char *dir, const char *db, const char *const *model_args,
                      gboolean run_main)
{
  g_autofree char *out_dir = g_build_filename (dir, "export", NULL);
  g_autoptr (GPtrArray) args = g_ptr_array_new ();
  const char *fixed[] = {"train", "--db", db, "--device", "cpu", "--epochs", "1", "--limit-train",
                         "160", "--limit-test", "50", "--batch-size", "32", "--json"};
  for (gsize k = 0; k < G_N_ELEMENTS (fixed); k++)
    g_ptr_array_add (args, (gpointer) fixed[k]);
  for (int k = 0; model_args[k]; k++)
    g_ptr_array_add (args, (gpointer) model_args[k]);
  g_ptr_array_add (args, NULL);
  Result r = run_argv (NULL, FALSE, (const char *const *) args->pdata);
  assert_ok (&r, "train");
  gint64 id = done_run_id (r.out);
  result_clear (&r);
  g_autofree char *id_text = g_strdup_printf ("%" G_GINT64_FORMAT, id);
  r = RUN ("export", id_text, "--db", db, "--pytorch", out_dir);
  assert_ok (&r, "export --pytorch");
  g_assert_nonnull (strstr (r.out, "model.py"));
  result_clear (&r);

  /* the engine's logits from the run's checkpoint */
  g_autoptr (GError) error = NULL;
  g_autofree char *checkpoint = NULL;
  {
    g_autoptr (BpStore) store = bp_store_open_full (db, BP_STORE_OPEN_READ_ONLY, 0, &error);
    g_assert_no_error (error);
    g_autoptr (GPtrArray) cps = bp_store_list_checkpoints (store, id, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (cps->len, >, 0);
    checkpoint = g_strdup (((BpCheckpoint *) g_ptr_array_index (cps, cps->len - 1))->path);
  }
  BpModel *m = bp_checkpoint_load_model (checkpoint, NULL, &error);
  g_assert_no_error (error);
  bp_rng_seed (42);
  const int64_t shape[4] = {6, 1, 28, 28};
  BpTensor *x = bp_test_rand (4, shape, -1.0f, 2.5f, false);
  bool was = bp_set_grad_enabled (false);
  BpTensor *logits = bp_model_forward (m, x);
  bp_set_grad_enabled (was);
  g_assert_nonnull (logits);
  g_assert_cmpint (logits->numel, ==, 60);

  /* the exported script's, in Debian's torch */
  g_autofree char *in_path = g_build_filename (dir, "in.bin", NULL);
  g_autofree char *out_path = g_build_filename (dir, "out.bin", NULL);
  g_assert_true (g_file_set_contents (in_path, (const char *) x->data,
                                      (gssize) (sizeof (float) * (size_t) x->numel), NULL));
  g_autofree char *script = g_build_filename (out_dir, "model.py", NULL);
  const char *py = g_getenv ("BP_TORCH_PYTHON") ? g_getenv ("BP_TORCH_PYTHON") : "/usr/bin/python3";
  const char *pargv[] = {py, script, "--input", in_path, "--output", out_path, NULL};
  g_autofree char *pout = NULL, *perr = NULL;
  int status;
  g_assert_true (g_spawn_sync (NULL, (char **) pargv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &pout,
                               &perr, &status, &error));
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("%s failed:\n%s", script, perr);
  g_autoptr (GBytes) got = bp_test_read_bytes (out_path);
  g_assert_cmpuint (g_bytes_get_size (got), ==, sizeof (float) * 60);
  double err = bp_test_max_rel_err (g_bytes_get_data (got, NULL), logits->data, 60);
  g_test_message ("%s: max relative error of the exported model's logits %.3g", model_args[1], err);
  bp_test_assert_close ("exported logits", g_bytes_get_data (got, NULL), logits->data, 60, 1e-4);

  /* without arguments the script runs on its own */
  if (run_main) {
    const char *pargv2[] = {py, script, NULL};
    g_free (pout);
    g_free (perr);
    g_assert_true (g_spawn_sync (NULL, (char **) pargv2, NULL, G_SPAWN_DEFAULT, NULL, NULL, &pout,
                                 &perr, &status, &error));
    if (!g_spawn_check_wait_status (status, NULL))
      g_error ("%s (no arguments) failed:\n%s", script, perr);
    g_assert_nonnull (strstr (pout, "predicted classes"));
  }

  bp_tensor_unref (logits);
  bp_tensor_unref (x);
  bp_model_free (m);
  bp_tape_clear ();
  bp_test_remove_tree (out_dir);
}

static void
test_export_pytorch (void)
{
  if (!have_fashion_mnist ())
    return;
  if (!bp_test_have_torch ()) {
    g_test_skip ("Debian's python3-torch is not installed");
    return;
  }
  g_autofree char *dir = bp_test_temp_dir (test_root);
  g_autofree char *db = g_build_filename (dir, "exp.db", NULL);
  g_autofree char *spec = write_spec (dir);
  const char *mlp[] = {"--model", "mlp", NULL};
  const char *cnn[] = {"--model", "simple-cnn", NULL};
  const char *tiny[] = {"--spec", spec, NULL};
  check_pytorch_export (dir, db, mlp, TRUE);
  check_pytorch_export (dir, db, cnn, FALSE);
  check_pytorch_export (dir, db, tiny, FALSE);
  bp_test_remove_tree (dir);
}

/* ---- resume ---- */

static void
test_resume_exact (void)
{
  if (!have_fashion_mnist ())
    return;
  g_autofree char *dir = bp_test_temp_dir (test_root);
  g_autofree char *db = g_build_filename (dir, "exp.db", NULL);
  g_autofree char *spec = write_spec (dir);
#define TINY "--spec", spec, QUICK, "--batch-size", "50", "--db", db, "--json"

  Result full = RUN ("train", TINY, "--epochs", "4");
  assert_ok (&full, "train 4 epochs");
  g_autoptr (GArray) want = epoch_losses (full.out);
  g_assert_cmpuint (want->len, ==, 4);
  result_clear (&full);

  /* stopped after epoch 2 by --epochs, resumed to 4 */
  Result r = RUN ("train", TINY, "--epochs", "2");
  assert_ok (&r, "train 2 epochs");
  g_autoptr (GArray) first = epoch_losses (r.out);
  result_clear (&r);
  r = RUN ("train", "--resume", "2", "--epochs", "4", "--db", db, "--json");
  assert_ok (&r, "resume to 4 epochs");
  g_assert_nonnull (strstr (r.out, "\"event\":\"resume\",\"run_id\":2,\"epochs_done\":2"));
  g_autoptr (GArray) second = epoch_losses (r.out);
  result_clear (&r);
  g_assert_cmpuint (first->len, ==, 2);
  g_assert_cmpuint (second->len, ==, 2);
  for (int e = 0; e < 4; e++) {
    double got = e < 2 ? g_array_index (first, double, e) : g_array_index (second, double, e - 2);
    if (memcmp (&got, &g_array_index (want, double, e), sizeof got) != 0)
      g_error ("epoch %d: train loss %.17g after resuming, %.17g without", e + 1, got,
               g_array_index (want, double, e));
  }
  /* the stored curves are the same, point for point */
  const char *series_names[][2] = {{"train", "loss"}, {"train", "epoch_loss"},
                                   {"train", "epoch_accuracy"}, {"val", "loss"},
                                   {"val", "accuracy"}, {"train", "lr"}};
  for (gsize k = 0; k < G_N_ELEMENTS (series_names); k++)
    assert_same_series (db, 1, 2, series_names[k][0], series_names[k][1]);
  /* resuming a run that has its epochs is a usage error */
  r = RUN ("train", "--resume", "2", "--db", db);
  assert_one_line_error (&r, 2, "already trained 4 epochs");
  result_clear (&r);
  r = RUN ("train", "--resume", "2", "--db", db, "--lr", "0.1");
  assert_one_line_error (&r, 2, "--lr cannot be given with --resume");
  result_clear (&r);

  /* trained for 1 epoch, resumed to 3, stopped with Ctrl-C early in epoch 2, resumed (to the
   * 3 epochs it was last given) */
  r = RUN ("train", TINY, "--epochs", "1", "--limit-train", "1536", "--name", "interrupted");
  assert_ok (&r, "train 1 epoch of 1536");
  result_clear (&r);
  g_autofree char *cli = g_strdup (g_getenv ("BP_CLI"));
  const char *argv[] = {cli, "train", "--resume", "interrupted", "--epochs", "3", "--db", db,
                        "--json", NULL};
  GPid pid;
  int out_fd;
  g_autoptr (GError) error = NULL;
  g_assert_true (g_spawn_async_with_pipes (NULL, (char **) argv, NULL,
                                           G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDERR_TO_DEV_NULL,
                                           NULL, NULL, &pid, NULL, &out_fd, NULL, &error));
  GString *out = g_string_new (NULL);
  char buf[4096];
  ssize_t n;
  while (!strstr (out->str, "\"event\":\"epoch\"") && (n = read (out_fd, buf, sizeof buf)) > 0)
    g_string_append_len (out, buf, n);
  kill (pid, SIGINT); /* early in the second epoch: it stops after the step it is in */
  while ((n = read (out_fd, buf, sizeof buf)) > 0)
    g_string_append_len (out, buf, n);
  close (out_fd);
  int status;
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  g_spawn_close_pid (pid);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 130);
  g_assert_nonnull (strstr (out->str, "\"status\":\"stopped\""));
  g_string_free (out, TRUE);
  r = RUN ("runs", "--db", db, "--json");
  {
    g_autoptr (JsonNode) list = parse_json (r.out);
    JsonObject *o = find_run (list, 3);
    g_assert_cmpstr (json_object_get_string_member (o, "status"), ==, "stopped");
    g_assert_nonnull (strstr (json_object_get_string_member (o, "status_reason"), "SIGINT"));
  }
  result_clear (&r);
  r = RUN ("train", "--resume", "interrupted", "--db", db, "--json");
  assert_ok (&r, "resume after Ctrl-C");
  g_test_message ("%.*s", (int) strcspn (r.out, "\n"), r.out);
  g_assert_nonnull (strstr (r.out, "\"epochs_done\":3,"));
  result_clear (&r);
  r = RUN ("train", TINY, "--epochs", "3", "--limit-train", "1536", "--name", "uninterrupted");
  assert_ok (&r, "train 3 epochs of 1536");
  result_clear (&r);
  for (gsize k = 0; k < G_N_ELEMENTS (series_names); k++)
    assert_same_series (db, 3, 4, series_names[k][0], series_names[k][1]);
#undef TINY
  bp_test_remove_tree (dir);
}

/* ---- SIGKILL at random moments ---- */

static void
assert_integrity (const char *db)
{
  sqlite3 *conn;
  g_assert_cmpint (sqlite3_open_v2 (db, &conn, SQLITE_OPEN_READWRITE, NULL), ==, SQLITE_OK);
  sqlite3_stmt *st;
  g_assert_cmpint (sqlite3_prepare_v2 (conn, "PRAGMA integrity_check", -1, &st, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (st), ==, SQLITE_ROW);
  g_assert_cmpstr ((const char *) sqlite3_column_text (st, 0), ==, "ok");
  sqlite3_finalize (st);
  sqlite3_close (conn);
}

/* Every checkpoint file on disk loads; every registered checkpoint is on disk. Returns the
 * newest registered one (or NULL). */
static char *
check_checkpoints (const char *dir, const char *db, int *n_files)
{
  g_autofree char *cp_dir = g_build_filename (dir, "checkpoints", "1", NULL);
  g_autoptr (GDir) d = g_dir_open (cp_dir, 0, NULL);
  const char *name;
  *n_files = 0;
  while (d && (name = g_dir_read_name (d))) {
    if (name[0] == '.')
      continue; /* a temporary file left by the kill: never read */
    g_autofree char *path = g_build_filename (cp_dir, name, NULL);
    g_autoptr (GError) error = NULL;
    g_autoptr (BpSafetensors) st = bp_safetensors_load (path, &error);
    if (!st)
      g_error ("a checkpoint on disk does not load: %s", error->message);
    (*n_files)++;
  }
  g_autoptr (GError) error = NULL;
  g_autoptr (BpStore) store = bp_store_open_full (db, BP_STORE_OPEN_READ_ONLY, 0, &error);
  g_assert_no_error (error);
  g_autoptr (GPtrArray) cps = bp_store_list_checkpoints (store, 1, &error);
  g_assert_no_error (error);
  for (guint k = 0; k < cps->len; k++)
    g_assert_true (g_file_test (((BpCheckpoint *) g_ptr_array_index (cps, k))->path,
                                G_FILE_TEST_IS_REGULAR));
  return cps->len ? g_strdup (((BpCheckpoint *) g_ptr_array_index (cps, cps->len - 1))->path) : NULL;
}

static void
test_kill (void)
{
  if (!have_fashion_mnist ())
    return;
  int kills = g_getenv ("BP_TEST_QUICK") ? 6 : 20;
  if (g_getenv ("BP_TEST_KILLS"))
    kills = atoi (g_getenv ("BP_TEST_KILLS"));
  g_autofree char *dir = bp_test_temp_dir (test_root);
  g_autofree char *db = g_build_filename (dir, "exp.db", NULL);
  g_autofree char *spec = write_spec (dir);
  g_autofree char *cli = g_strdup (g_getenv ("BP_CLI"));
  int resumed = 0, with_run = 0;
  gint64 t0 = g_get_monotonic_time ();
  for (int i = 0; i < kills; i++) {
    gboolean have_run = g_file_test (db, G_FILE_TEST_EXISTS);
    if (have_run) {
      Result r = RUN ("runs", "--db", db, "--json");
      assert_ok (&r, "runs");
      g_autoptr (JsonNode) n = parse_json (r.out);
      have_run = find_run (n, 1) != NULL;
      result_clear (&r);
    }
    const char *fresh[] = {cli, "train", "--spec", spec, QUICK, "--batch-size", "50", "--epochs",
                           "100000", "--db", db, "--json", "--keep-checkpoints", "2", "--threads",
                           "1", NULL};
    const char *resume[] = {cli, "train", "--resume", "1", "--db", db, "--json", "--threads",
                            "1", NULL};
    GPid pid;
    int out_fd;
    g_autoptr (GError) error = NULL;
    g_assert_true (g_spawn_async_with_pipes (NULL, (char **) (have_run ? resume : fresh), NULL,
                                             G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &pid, NULL,
                                             &out_fd, NULL, &error));
    GString *out = g_string_new (NULL);
    char buf[4096];
    ssize_t n;
    if (i == 0) {
      /* the first run lives to its first checkpoint, so that the others resume */
      while (!strstr (out->str, "\"event\":\"epoch\"") && (n = read (out_fd, buf, sizeof buf)) > 0)
        g_string_append_len (out, buf, n);
    }
    int wait_ms = g_test_rand_int_range (20, 2000);
    g_usleep ((gulong) wait_ms * 1000);
    kill (pid, SIGKILL);
    while ((n = read (out_fd, buf, sizeof buf)) > 0)
      g_string_append_len (out, buf, n);
    close (out_fd);
    int status;
    g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
    g_spawn_close_pid (pid);
    if (!WIFSIGNALED (status))
      g_error ("kill %d: the trainer ended by itself (status %d): %s", i, status, out->str);

    /* the database is intact, the run (if any) is interrupted, checkpoints load */
    assert_integrity (db);
    int n_files;
    g_autofree char *newest = check_checkpoints (dir, db, &n_files);
    Result r = RUN ("runs", "--db", db, "--json");
    assert_ok (&r, "runs after a kill");
    g_autoptr (JsonNode) runs = parse_json (r.out);
    JsonObject *run = find_run (runs, 1);
    if (run) {
      with_run++;
      if (g_strcmp0 (json_object_get_string_member (run, "status"), "interrupted") != 0)
        g_error ("kill %d: run 1 is %s, not interrupted", i,
                 json_object_get_string_member (run, "status"));
    }
    result_clear (&r);
    /* a resume that got going started from the newest checkpoint of its time */
    const char *line = strstr (out->str, "{\"event\":\"resume\"");
    if (line) {
      resumed++;
      g_assert_nonnull (strstr (line, "\"checkpoint\":"));
    }
    g_test_message ("kill %d after %d ms (%s): %d checkpoint files, newest %s", i, wait_ms,
                    have_run ? "resuming" : "new run", n_files, newest ? newest : "none");
    g_string_free (out, TRUE);
  }
  g_assert_cmpint (with_run, ==, kills);

  /* resume works from the newest checkpoint, and the curves have no gaps or repeats */
  Result r = RUN ("runs", "--db", db, "--json");
  g_autoptr (JsonNode) runs = parse_json (r.out);
  gint64 epochs = json_object_get_int_member (find_run (runs, 1), "epochs");
  result_clear (&r);
  int n_files;
  g_autofree char *newest = check_checkpoints (dir, db, &n_files);
  g_assert_nonnull (newest);
  g_autofree char *target = g_strdup_printf ("%" G_GINT64_FORMAT, epochs + 1);
  r = RUN ("train", "--resume", "1", "--epochs", target, "--db", db, "--json");
  assert_ok (&r, "resume after the kills");
  g_assert_nonnull (strstr (r.out, newest));
  result_clear (&r);
  g_autoptr (GArray) losses = series (db, 1, "train", "epoch_loss");
  g_assert_cmpuint (losses->len, ==, epochs + 1);
  for (guint k = 0; k < losses->len; k++)
    g_assert_cmpint (g_array_index (losses, BpMetricPoint, k).epoch, ==, k + 1);
  g_autoptr (GArray) steps = series (db, 1, "train", "loss");
  g_assert_cmpuint (steps->len, ==, 10 * (epochs + 1)); /* 461 examples, batches of 50 */
  for (guint k = 0; k < steps->len; k++)
    g_assert_cmpint (g_array_index (steps, BpMetricPoint, k).step, ==, k + 1);
  r = RUN ("runs", "--db", db, "--json");
  {
    g_autoptr (JsonNode) n = parse_json (r.out);
    g_assert_cmpstr (json_object_get_string_member (find_run (n, 1), "status"), ==, "finished");
  }
  result_clear (&r);
  assert_integrity (db);
  g_test_message ("%d kills (%d while resuming) in %.1f s; %" G_GINT64_FORMAT " epochs trained",
                  kills, resumed, (double) (g_get_monotonic_time () - t0) / 1e6, epochs + 1);
  bp_test_remove_tree (dir);
}

/* ---- bad input ---- */

/* What the CLI shows of a database: the runs, one run's details and its points. */
static char *
snapshot (const char *db, gint64 run)
{
  g_autofree char *id = g_strdup_printf ("%" G_GINT64_FORMAT, run);
  Result a = RUN ("runs", "--db", db, "--json");
  Result b = RUN ("show", id, "--db", db, "--json");
  Result c = RUN ("export", id, "--db", db, "--csv", "-");
  assert_ok (&a, "runs");
  assert_ok (&b, "show");
  assert_ok (&c, "export");
  char *s = g_strconcat (a.out, b.out, c.out, NULL);
  result_clear (&a);
  result_clear (&b);
  result_clear (&c);
  return s;
}

static void
test_bad_databases (void)
{
  if (!have_fashion_mnist ())
    return;
  g_autofree char *dir = bp_test_temp_dir (test_root);
  g_autofree char *db = g_build_filename (dir, "exp.db", NULL);
  Result r = RUN ("train", "--model", "mlp", "--epochs", "1", "--limit-train", "256",
                  "--limit-test", "100", "--device", "cpu", "--db", db);
  assert_ok (&r, "train");
  result_clear (&r);
  g_autoptr (GBytes) good = bp_test_read_bytes (db);
  gsize len;
  const guint8 *src = g_bytes_get_data (good, &len);

  /* not SQLite at all */
  g_autofree char *text = g_build_filename (dir, "notes.db", NULL);
  g_assert_true (g_file_set_contents (text, "these are my notes, not a database\n", -1, NULL));
  g_autoptr (GBytes) text_bytes = bp_test_read_bytes (text);
  r = RUN ("train", "--model", "mlp", "--db", text, "--device", "cpu");
  assert_one_line_error (&r, 1, "is not an SQLite database");
  result_clear (&r);
  r = RUN ("runs", "--db", text);
  assert_one_line_error (&r, 1, "is not an SQLite database");
  result_clear (&r);
  g_autoptr (GBytes) text_after = bp_test_read_bytes (text);
  g_assert_true (g_bytes_equal (text_bytes, text_after));

  /* the schema page damaged */
  g_autofree char *broken = g_build_filename (dir, "broken.db", NULL);
  g_autofree guint8 *buf = g_memdup2 (src, len);
  memset (buf + 100, 0xaa, 4096 - 100);
  g_assert_true (g_file_set_contents (broken, (char *) buf, (gssize) len, NULL));
  g_autoptr (GBytes) broken_bytes = bp_test_read_bytes (broken);
  r = RUN ("train", "--model", "mlp", "--db", broken, "--device", "cpu");
  assert_one_line_error (&r, 1, "damaged");
  result_clear (&r);
  r = RUN ("show", "1", "--db", broken);
  assert_one_line_error (&r, 1, "damaged");
  result_clear (&r);
  g_autoptr (GBytes) broken_after = bp_test_read_bytes (broken);
  g_assert_true (g_bytes_equal (broken_bytes, broken_after));

  /* a newer schema */
  g_autofree char *newer = g_build_filename (dir, "newer.db", NULL);
  g_assert_true (g_file_set_contents (newer, (const char *) src, (gssize) len, NULL));
  sqlite3 *conn;
  g_assert_cmpint (sqlite3_open (newer, &conn), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_exec (conn, "PRAGMA user_version = 99", NULL, NULL, NULL), ==, SQLITE_OK);
  sqlite3_close (conn);
  g_autoptr (GBytes) newer_bytes = bp_test_read_bytes (newer);
  r = RUN ("train", "--model", "mlp", "--db", newer, "--device", "cpu");
  assert_one_line_error (&r, 1, "schema version 99, newer than");
  result_clear (&r);
  r = RUN ("tag", "1", "x", "--db", newer);
  assert_one_line_error (&r, 1, "newer than");
  result_clear (&r);
  g_autoptr (GBytes) newer_after = bp_test_read_bytes (newer);
  g_assert_true (g_bytes_equal (newer_bytes, newer_after));

  /* locked by another writer: writers give up after the busy timeout, readers go on */
  g_autofree char *before = snapshot (db, 1);
  g_assert_cmpint (sqlite3_open (db, &conn), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_exec (conn, "BEGIN IMMEDIATE", NULL, NULL, NULL), ==, SQLITE_OK);
  const char *env[] = {"BP_BUSY_TIMEOUT_MS", "300", NULL};
  r = RUN_ENV (env, "train", "--model", "mlp", "--db", db, "--device", "cpu", "--epochs", "1",
               "--limit-train", "256", "--limit-test", "100");
  assert_one_line_error (&r, 1, "locked");
  result_clear (&r);
  r = RUN_ENV (env, "tag", "1", "locked-out", "--db", db);
  assert_one_line_error (&r, 1, "locked");
  result_clear (&r);
  r = RUN_ENV (env, "rm", "1", "--db", db);
  assert_one_line_error (&r, 1, "locked");
  result_clear (&r);
  r = RUN_ENV (env, "runs", "--db", db);
  assert_ok (&r, "runs beside a writer");
  result_clear (&r);
  g_assert_cmpint (sqlite3_exec (conn, "ROLLBACK", NULL, NULL, NULL), ==, SQLITE_OK);
  sqlite3_close (conn);
  g_autofree char *after = snapshot (db, 1);
  g_assert_cmpstr (before, ==, after);

  /* a read-only folder (root ignores permission bits: the checks run as user nobody) */
  if (geteuid () == 0) {
    g_autofree char *ro = g_build_filename (dir, "ro", NULL);
    g_assert_cmpint (g_mkdir (ro, 0755), ==, 0);
    g_autofree char *ro_db = g_build_filename (ro, "exp.db", NULL);
    g_assert_true (g_file_set_contents (ro_db, (const char *) src, (gssize) len, NULL));
    g_chmod (ro_db, 0644);
    g_chmod (ro, 0555);
    g_chmod (dir, 0755);
    g_chmod (test_root, 0755);
    g_autoptr (GBytes) ro_bytes = bp_test_read_bytes (ro_db);
    r = RUN_NOBODY ("train", "--model", "mlp", "--db", ro_db, "--device", "cpu");
    if (r.status == 99) {
      g_test_message ("cannot become user nobody: read-only checks skipped");
    } else {
      assert_one_line_error (&r, 1, "read-only");
      result_clear (&r);
      r = RUN_NOBODY ("tag", "1", "x", "--db", ro_db);
      assert_one_line_error (&r, 1, "read-only");
      result_clear (&r);
      g_autofree char *new_db = g_build_filename (ro, "new.db", NULL);
      r = RUN_NOBODY ("train", "--model", "mlp", "--db", new_db, "--device", "cpu");
      assert_one_line_error (&r, 1, "read-only");
      g_assert_false (g_file_test (new_db, G_FILE_TEST_EXISTS));
      result_clear (&r);
      /* still readable */
      r = RUN_NOBODY ("runs", "--db", ro_db, "--json");
      assert_ok (&r, "runs in a read-only folder");
      g_autoptr (JsonNode) n = parse_json (r.out);
      g_assert_nonnull (find_run (n, 1));
    }
    result_clear (&r);
    g_autoptr (GBytes) ro_after = bp_test_read_bytes (ro_db);
    g_assert_true (g_bytes_equal (ro_bytes, ro_after));
    g_chmod (ro, 0755);
  } else {
    g_test_message ("not root: the read-only checks run in test-store only");
  }
  bp_test_remove_tree (dir);
}

/* A file that is not a checkpoint in place of the newest one: resume refuses, one line,
 * nothing changes; the real file back, it resumes. */
static void
test_bad_checkpoints (void)
{
  if (!have_fashion_mnist ())
    return;
  g_autofree char *dir = bp_test_temp_dir (test_root);
  g_autofree char *db = g_build_filename (dir, "exp.db", NULL);
  Result r = RUN ("train", "--model", "mlp", "--epochs", "2", "--limit-train", "256",
                  "--limit-test", "100", "--device", "cpu", "--db", db);
  assert_ok (&r, "train");
  result_clear (&r);
  g_autofree char *cp = g_build_filename (dir, "checkpoints", "1",
                                          "epoch-0002-step-000000008.safetensors", NULL);
  g_autoptr (GBytes) good = bp_test_read_bytes (cp);
  gsize len;
  const char *src = g_bytes_get_data (good, &len);
  g_autofree char *before = snapshot (db, 1);

  static const char offsets[] =
    "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
  static const char dtype[] =
    "{\"w\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,4]}}  ";
  struct {
    const char *what, *needle;
    GBytes *bytes;
  } cases[] = {
    {"truncated", "beyond", g_bytes_new (src, len / 2)},
    {"header length beyond the file", "header length", NULL},
    {"offsets out of range", "beyond", NULL},
    {"unknown dtype", "Q7", NULL},
    {"another program's safetensors", "not a Backprop Lab checkpoint", NULL},
    {"header length over the format's limit", "limit", NULL},
  };
  for (int k = 0; k < 2; k++) {
    guint64 huge = GUINT64_TO_LE (k ? 1ull << 40 : 1ull << 20);
    GByteArray *b = g_byte_array_new ();
    g_byte_array_append (b, (const guint8 *) &huge, 8);
    g_byte_array_append (b, (const guint8 *) "{}      ", 8);
    cases[k ? 5 : 1].bytes = g_byte_array_free_to_bytes (b);
  }
  const char *headers[] = {offsets, dtype};
  for (int k = 0; k < 2; k++) {
    guint64 n = GUINT64_TO_LE (strlen (headers[k]));
    GByteArray *b = g_byte_array_new ();
    g_byte_array_append (b, (const guint8 *) &n, 8);
    g_byte_array_append (b, (const guint8 *) headers[k], (guint) strlen (headers[k]));
    g_byte_array_append (b, (const guint8 *) "\0\0\0\0\0\0\0\0", 8); /* 8 of 16 bytes */
    cases[2 + k].bytes = g_byte_array_free_to_bytes (b);
  }
  {
    /* a valid safetensors file without our metadata */
    g_autofree char *plain = g_build_filename (dir, "plain.safetensors", NULL);
    const int64_t shape[1] = {3};
    BpTensor *t = bp_tensor_new (1, shape);
    const char *names[] = {"weight"};
    g_autoptr (GError) error = NULL;
    g_assert_true (bp_safetensors_save (plain, 1, names, &t, NULL, &error));
    bp_tensor_unref (t);
    cases[4].bytes = bp_test_read_bytes (plain);
  }
  for (gsize k = 0; k < G_N_ELEMENTS (cases); k++) {
    gsize n;
    const char *data = g_bytes_get_data (cases[k].bytes, &n);
    g_assert_true (g_file_set_contents (cp, data, (gssize) n, NULL));
    r = RUN ("train", "--resume", "1", "--epochs", "3", "--db", db);
    g_test_message ("%s:", cases[k].what);
    assert_one_line_error (&r, 1, "epoch-0002-step-000000008.safetensors");
    if (!strstr (r.err, cases[k].needle))
      g_error ("%s: the message does not say \"%s\": %s", cases[k].what, cases[k].needle, r.err);
    result_clear (&r);
    g_autofree char *after = snapshot (db, 1);
    g_assert_cmpstr (before, ==, after);
    g_autoptr (GBytes) still = bp_test_read_bytes (cp);
    g_assert_true (g_bytes_equal (still, cases[k].bytes));
    g_bytes_unref (cases[k].bytes);
  }
  g_assert_true (g_file_set_contents (cp, src, (gssize) len, NULL));
  r = RUN ("train", "--resume", "1", "--epochs", "3", "--db", db, "--json");
  assert_ok (&r, "resume with the checkpoint back");
  result_clear (&r);
  bp_test_remove_tree (dir);
}

/* One-line usage errors (exit 2) and lookups that fail (exit 1). */
static void
test_bad_flags (void)
{
  g_autofree char *dir = bp_test_temp_dir (test_root);
  g_autofree char *db = g_build_filename (dir, "exp.db", NULL);
  static const struct {
    const char *args[7];
    const char *needle;
  } usage[] = {
    {{"runs", "--status", "bogus"}, "--status"},
    {{"runs", "extra"}, "unexpected argument"},
    {{"show"}, "which run"},
    {{"compare", "1"}, "two or more runs"},
    {{"compare", "1", "2", "--metric", "bogus"}, "--metric"},
    {{"compare", "1", "2", "--metric", "val_loss"}, "--plot"},
    {{"compare", "1", "2", "--plot", "p.jpg"}, ".png"},
    {{"export", "1"}, "--csv"},
    {{"export", "1", "--best", "--csv", "x.csv"}, "--pytorch"},
    {{"train", "--checkpoint-every", "-1"}, "--checkpoint-every"},
    {{"train", "--keep-checkpoints", "0"}, "--keep-checkpoints"},
    {{"train", "--no-store", "--name", "x"}, "--no-store"},
    {{"train", "--resume", "1", "--model", "mlp"}, "--model cannot be given with --resume"},
    {{"train", "--spec", "/nonexistent/spec.json"}, "--spec"},
    {{"train", "--tag", ""}, "--tag"},
    {{"tag"}, "which run"},
    {{"tag", "1", ""}, "tag"},
    {{"note"}, "which run"},
    {{"rm"}, "which runs"},
  };
  for (gsize k = 0; k < G_N_ELEMENTS (usage); k++) {
    const char *args[10];
    int n = 0;
    for (int j = 0; j < 7 && usage[k].args[j]; j++)
      args[n++] = usage[k].args[j];
    args[n++] = "--db";
    args[n++] = db;
    args[n] = NULL;
    Result r = run_argv (NULL, FALSE, args);
    assert_one_line_error (&r, 2, usage[k].needle);
    result_clear (&r);
  }
  /* nothing stored yet: listing is fine, a run is not found */
  Result r = RUN ("runs", "--db", db);
  assert_ok (&r, "runs on no database");
  g_assert_nonnull (strstr (r.out, "no runs"));
  result_clear (&r);
  g_assert_false (g_file_test (db, G_FILE_TEST_EXISTS));
  r = RUN ("show", "7", "--db", db);
  assert_one_line_error (&r, 1, "no run");
  result_clear (&r);
  r = RUN ("train", "--resume", "nonesuch", "--db", db);
  assert_one_line_error (&r, 1, "no run \"nonesuch\": there is no database");
  result_clear (&r);
  r = RUN ("tag", "3", "x", "--db", db);
  assert_one_line_error (&r, 1, "there is no database");
  result_clear (&r);
  g_assert_false (g_file_test (db, G_FILE_TEST_EXISTS));
  /* every command describes its flags */
  static const char *helps[][4] = {
    {"runs", "--db", "--json", "--tag"},         {"show", "--db", "--json", NULL},
    {"compare", "--plot", "--metric", "--json"}, {"export", "--csv", "--pytorch", "--best"},
    {"rm", "--db", "--force", NULL},             {"tag", "--remove", "--json", NULL},
    {"note", "--db", NULL, NULL},
    {"train", "--resume", "--checkpoint-every", "--keep-checkpoints"},
    {"train", "--no-store", "--name", "--db"},
  };
  for (gsize k = 0; k < G_N_ELEMENTS (helps); k++) {
    r = RUN (helps[k][0], "--help");
    assert_ok (&r, "--help");
    for (int j = 1; j < 4 && helps[k][j]; j++)
      if (!strstr (r.out, helps[k][j]))
        g_error ("%s --help does not describe %s", helps[k][0], helps[k][j]);
    result_clear (&r);
  }
  bp_test_remove_tree (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  bp_set_num_threads (2);
  test_root = g_dir_make_tmp ("bp-runs-XXXXXX", NULL);
  g_assert_nonnull (test_root);
  g_chmod (test_root, 0755);
  /* never the user's own store */
  g_setenv ("XDG_DATA_HOME", test_root, TRUE);
  g_test_add_func ("/runs/bad-flags", test_bad_flags);
  g_test_add_func ("/runs/list-compare", test_list_compare);
  g_test_add_func ("/runs/export-csv", test_export_csv);
  g_test_add_func ("/runs/export-pytorch", test_export_pytorch);
  g_test_add_func ("/runs/resume-exact", test_resume_exact);
  g_test_add_func ("/runs/kill", test_kill);
  g_test_add_func ("/runs/bad-databases", test_bad_databases);
  g_test_add_func ("/runs/bad-checkpoints", test_bad_checkpoints);
  int rc = g_test_run ();
  bp_test_remove_tree (test_root);
  g_free (test_root);
  return rc;
}
