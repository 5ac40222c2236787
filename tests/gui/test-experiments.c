/* test-experiments.c: drives the Experiments place under Xvfb: runs trained on the Train page are
 * stored and listed, one is opened, two are compared, delete with and without Undo, a corrupt
 * database, screenshots in English and zh_TW. */
#include "config.h"

#include <adwaita.h>
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "bp-application.h"
#include "bp-experiments-page.h"
#include "bp-gui-test.h"
#include "bp-plot.h"
#include "bp-series.h"
#include "bp-store.h"
#include "bp-train-page.h"
#include "bp-window.h"

static GtkApplication *app;
static char *tmp_dir;

typedef struct {
  BpWindow *window;
  BpTrainPage *train;
  BpExperimentsPage *page;
} Fixture;

static GtkWidget *
train_child (Fixture *f, const char *name)
{
  return bp_gui_template_child (f->train, BP_TYPE_TRAIN_PAGE, name);
}

static void
fixture_open (Fixture *f)
{
  f->window = bp_window_new (app);
  gtk_window_present (GTK_WINDOW (f->window));
  g_assert_true (bp_gui_wait (bp_gui_is_mapped, f->window, 5000));
  f->train = BP_TRAIN_PAGE (bp_window_get_page (f->window, "train"));
  f->page = BP_EXPERIMENTS_PAGE (bp_window_get_page (f->window, "experiments"));
  g_assert_true (BP_IS_EXPERIMENTS_PAGE (f->page));
}

/* Trains the MLP for one epoch on 256 images through the Train page, as a user would. */
static void
train_short_run (Fixture *f, double lr)
{
  g_assert_true (bp_window_set_place (f->window, "train"));
  AdwComboRow *model_row = ADW_COMBO_ROW (train_child (f, "model_row"));
  GListModel *models = adw_combo_row_get_model (model_row);
  guint k = 0;
  for (; k < g_list_model_get_n_items (models); k++) {
    g_autoptr (GtkStringObject) item = g_list_model_get_item (models, k);
    if (g_str_equal (gtk_string_object_get_string (item), "mlp"))
      break;
  }
  g_assert_cmpuint (k, <, g_list_model_get_n_items (models));
  adw_combo_row_set_selected (model_row, k);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (train_child (f, "limit_train_spin")), 256);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (train_child (f, "limit_test_spin")), 200);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (train_child (f, "epochs_spin")), 1);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (train_child (f, "batch_size_spin")), 64);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (train_child (f, "lr_spin")), lr);
  adw_combo_row_set_selected (ADW_COMBO_ROW (train_child (f, "device_row")), 1); /* CPU */
  g_signal_emit_by_name (train_child (f, "start_button"), "clicked");
  g_assert_true (bp_gui_wait (bp_gui_run_ended, f->train, 60000));
  g_assert_cmpint (bp_train_run_get_state (bp_train_page_get_run (f->train)), ==,
                   BP_TRAIN_STATE_FINISHED);
}

static guint
n_shown (Fixture *f)
{
  return bp_experiments_page_get_shown_runs (f->page)->len;
}

static gint64
shown (Fixture *f, guint i)
{
  return g_array_index (bp_experiments_page_get_shown_runs (f->page), gint64, i);
}

static gboolean
no_toast (gpointer data)
{
  return bp_experiments_page_get_toast (data) == NULL;
}

/* Two stored runs, compared: what both tests share. */
static void
train_and_compare (Fixture *f)
{
  train_short_run (f, 0.001);
  train_short_run (f, 0.003);
  g_assert_true (bp_window_set_place (f->window, "experiments"));
  g_assert_true (bp_gui_wait (bp_gui_is_mapped, f->page, 2000));
  g_assert_true (bp_experiments_page_refresh (f->page));
  g_assert_cmpuint (n_shown (f), ==, 2);
  g_assert_cmpstr (bp_experiments_page_get_view (f->page), ==, "list");

  /* compare is enabled only with two runs selected */
  g_assert_false (gtk_widget_activate_action (GTK_WIDGET (f->page), "experiments.compare", NULL)
                  && g_str_equal (bp_experiments_page_get_view (f->page), "compare"));
  bp_experiments_page_set_selected (f->page, shown (f, 0), TRUE);
  bp_experiments_page_set_selected (f->page, shown (f, 1), TRUE);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->page), "experiments.compare", NULL));
  g_assert_cmpstr (bp_experiments_page_get_view (f->page), ==, "compare");
  BpPlot *plot = bp_experiments_page_get_compare_plot (f->page);
  g_assert_cmpuint (bp_plot_get_n_series (plot), ==, 2);
  for (guint i = 0; i < 2; i++)
    g_assert_cmpuint (bp_series_get_n_points (bp_plot_get_series (plot, i)), >=, 1);
  g_auto (GStrv) differing = bp_experiments_page_get_differing_params (f->page);
  g_assert_true (g_strv_contains ((const char *const *) differing, "optimizer.lr"));
  g_assert_false (g_strv_contains ((const char *const *) differing, "epochs"));
  bp_gui_spin (300);
}

static void
test_runs (void)
{
  Fixture f;
  fixture_open (&f);
  train_and_compare (&f);
  g_free (bp_gui_screenshot (GTK_WIDGET (f.window), "experiments-compare-en"));

  /* the comparison exports */
  g_autofree char *png = g_build_filename (tmp_dir, "comparison.png", NULL);
  g_autofree char *csv = g_build_filename (tmp_dir, "comparison.csv", NULL);
  g_autoptr (GError) error = NULL;
  g_assert_true (bp_experiments_page_export_comparison (f.page, png, csv, &error));
  g_assert_no_error (error);
  g_autofree char *text = NULL;
  g_assert_true (g_file_get_contents (csv, &text, NULL, NULL));
  g_assert_nonnull (strstr (text, "series,x,y"));
  g_assert_true (g_file_test (png, G_FILE_TEST_IS_REGULAR));

  /* the metric choice changes the chart */
  gtk_widget_activate_action (GTK_WIDGET (f.page), "experiments.back", NULL);
  g_assert_cmpstr (bp_experiments_page_get_view (f.page), ==, "list");

  /* search by name and by tag */
  gint64 first = shown (&f, 0), second = shown (&f, 1);
  g_autoptr (BpStore) store = bp_store_open (g_getenv ("BP_DB"), &error);
  g_assert_no_error (error);
  g_assert_true (bp_store_add_tag (store, second, "baseline", &error));
  g_assert_true (bp_experiments_page_refresh (f.page));
  bp_experiments_page_set_search (f.page, "BASEL");
  g_assert_cmpuint (n_shown (&f), ==, 1);
  g_assert_cmpint (shown (&f, 0), ==, second);
  bp_experiments_page_set_search (f.page, "no such run");
  g_assert_cmpuint (n_shown (&f), ==, 0);
  bp_experiments_page_set_search (f.page, "");
  g_assert_cmpuint (n_shown (&f), ==, 2);

  /* continue a finished run from its checkpoint on the Train page: same run, one more epoch */
  g_assert_cmpint (bp_experiments_page_continue_epochs (f.page, second), ==, 1 + 5);
  g_assert_true (bp_experiments_page_continue_run (f.page, second, 2, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (bp_window_get_place (f.window), ==, "train");
  g_assert_true (bp_gui_wait (bp_gui_run_ended, f.train, 60000));
  g_assert_cmpint (bp_train_run_get_state (bp_train_page_get_run (f.train)), ==,
                   BP_TRAIN_STATE_FINISHED);
  {
    g_autoptr (BpRun) continued = bp_store_get_run (store, second, &error);
    g_assert_no_error (error);
    g_assert_cmpint (continued->status, ==, BP_RUN_FINISHED);
    g_assert_cmpint (continued->last_epoch, ==, 2);
  }
  /* asking for epochs it has already trained fails the run with the reason; nothing is lost */
  g_assert_true (bp_experiments_page_continue_run (f.page, second, 2, &error));
  g_assert_true (bp_gui_wait (bp_gui_run_ended, f.train, 60000));
  BpTrainRun *refused = bp_train_page_get_run (f.train);
  g_assert_cmpint (bp_train_run_get_state (refused), ==, BP_TRAIN_STATE_FAILED);
  g_assert_error (bp_train_run_get_error (refused), BP_TRAIN_ERROR, BP_TRAIN_ERROR_DONE);
  g_test_message ("continuing to 2 epochs again: %s", bp_train_run_get_error (refused)->message);
  {
    g_autoptr (BpRun) kept_run = bp_store_get_run (store, second, &error);
    g_assert_no_error (error);
    g_assert_cmpint (kept_run->status, ==, BP_RUN_FINISHED);
    g_assert_cmpint (kept_run->last_epoch, ==, 2);
  }
  g_assert_true (bp_window_set_place (f.window, "experiments"));
  g_assert_true (bp_experiments_page_refresh (f.page));
  g_assert_cmpuint (n_shown (&f), ==, 2);
  /* the button asks for the epochs in all, offering five more and no fewer than one more */
  g_assert_true (bp_experiments_page_open_run (f.page, second));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f.page), "experiments.continue", NULL));
  AdwMessageDialog *dialog = NULL;
  g_assert_true (bp_gui_wait (bp_gui_has_message_dialog, &dialog, 2000));
  GtkSpinButton *spin = GTK_SPIN_BUTTON (adw_message_dialog_get_extra_child (dialog));
  g_assert_cmpint (gtk_spin_button_get_value_as_int (spin), ==, 2 + 5);
  double lo, hi;
  gtk_spin_button_get_range (spin, &lo, &hi);
  g_assert_cmpfloat (lo, ==, 3);
  bp_gui_spin (200);
  g_free (bp_gui_screenshot (GTK_WIDGET (dialog), "experiments-continue-en"));
  adw_message_dialog_response (dialog, "cancel");
  gtk_window_destroy (GTK_WINDOW (dialog));
  g_assert_cmpstr (bp_window_get_place (f.window), ==, "experiments");
  gtk_widget_activate_action (GTK_WIDGET (f.page), "experiments.back", NULL);

  /* open a run: its curves from the store; rename it */
  g_assert_true (bp_experiments_page_open_run (f.page, first));
  g_assert_cmpstr (bp_experiments_page_get_view (f.page), ==, "run");
  BpPlot *loss = bp_experiments_page_get_run_plot (f.page, FALSE);
  g_assert_cmpuint (bp_plot_get_n_series (loss), ==, 2);
  g_assert_cmpuint (bp_series_get_n_points (bp_plot_get_series (loss, 0)), >=, 4);
  g_assert_cmpuint (bp_series_get_n_points (bp_plot_get_series (loss, 1)), ==, 1);
  bp_gui_spin (300);
  g_free (bp_gui_screenshot (GTK_WIDGET (f.window), "experiments-run-en"));
  g_autoptr (GPtrArray) checkpoints = bp_store_list_checkpoints (store, first, &error);
  g_assert_cmpuint (checkpoints->len, >=, 1); /* the recorder's checkpoint at the end */

  /* delete, then Undo: the run stays */
  gtk_widget_activate_action (GTK_WIDGET (f.page), "experiments.delete", NULL);
  g_assert_cmpstr (bp_experiments_page_get_view (f.page), ==, "list");
  g_assert_nonnull (bp_experiments_page_get_toast (f.page));
  g_assert_cmpuint (n_shown (&f), ==, 1);
  bp_gui_spin (200);
  g_free (bp_gui_screenshot (GTK_WIDGET (f.window), "experiments-delete-en"));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f.page), "experiments.undo", NULL));
  g_assert_true (bp_gui_wait (no_toast, f.page, 2000));
  g_assert_true (bp_experiments_page_refresh (f.page));
  g_assert_cmpuint (n_shown (&f), ==, 2);
  g_autoptr (BpRun) kept = bp_store_get_run (store, first, &error);
  g_assert_no_error (error);
  g_assert_nonnull (kept);

  /* delete without Undo: gone when the toast goes */
  bp_experiments_page_delete_run (f.page, first);
  g_assert_cmpuint (n_shown (&f), ==, 1);
  adw_toast_dismiss (bp_experiments_page_get_toast (f.page));
  g_assert_true (bp_gui_wait (no_toast, f.page, 2000));
  g_assert_cmpuint (n_shown (&f), ==, 1);
  g_autoptr (BpRun) gone = bp_store_get_run (store, first, &error);
  g_assert_null (gone);
  g_assert_error (error, BP_STORE_ERROR, BP_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_free (bp_gui_screenshot (GTK_WIDGET (f.window), "experiments-list-en"));
  bp_gui_destroy_window (GTK_WIDGET (f.window));
}

static void
test_zh_tw (void)
{
  Fixture f;
  fixture_open (&f);
  train_and_compare (&f);
  g_free (bp_gui_screenshot (GTK_WIDGET (f.window), "experiments-compare-zh_TW"));
  gtk_widget_activate_action (GTK_WIDGET (f.page), "experiments.back", NULL);
  bp_gui_spin (300);
  g_free (bp_gui_screenshot (GTK_WIDGET (f.window), "experiments-list-zh_TW"));
  g_assert_true (bp_experiments_page_open_run (f.page, shown (&f, 0)));
  bp_gui_spin (300);
  g_free (bp_gui_screenshot (GTK_WIDGET (f.window), "experiments-run-zh_TW"));
  bp_gui_destroy_window (GTK_WIDGET (f.window));
}

static void
test_corrupt (void)
{
  g_autofree char *old = g_strdup (g_getenv ("BP_DB"));
  g_autofree char *path = g_build_filename (tmp_dir, "corrupt.db", NULL);
  g_assert_true (g_file_set_contents (path, "this is not an experiment store\n", -1, NULL));
  g_setenv ("BP_DB", path, TRUE);
  GtkWidget *window = gtk_window_new ();
  gtk_window_set_default_size (GTK_WINDOW (window), 900, 600);
  GtkWidget *page = bp_experiments_page_new ();
  gtk_window_set_child (GTK_WINDOW (window), page);
  gtk_window_present (GTK_WINDOW (window));
  g_assert_true (bp_gui_wait (bp_gui_is_mapped, window, 5000));
  g_assert_false (bp_experiments_page_refresh (BP_EXPERIMENTS_PAGE (page)));
  g_assert_cmpstr (bp_experiments_page_get_view (BP_EXPERIMENTS_PAGE (page)), ==, "error");
  const char *message = bp_experiments_page_get_error (BP_EXPERIMENTS_PAGE (page));
  g_assert_nonnull (message);
  g_assert_nonnull (strstr (message, "corrupt.db"));
  g_assert_false (bp_experiments_page_open_run (BP_EXPERIMENTS_PAGE (page), 1));
  bp_gui_spin (200);
  g_free (bp_gui_screenshot (window, "experiments-corrupt-en"));
  /* the file is left as it was */
  g_autofree char *text = NULL;
  g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
  g_assert_cmpstr (text, ==, "this is not an experiment store\n");
  bp_gui_destroy_window (window);
  g_setenv ("BP_DB", old, TRUE);
}

int
main (int argc, char **argv)
{
  tmp_dir = g_dir_make_tmp ("bp-experiments-XXXXXX", NULL);
  g_assert_nonnull (tmp_dir);
  g_autofree char *db = g_build_filename (tmp_dir, "experiments.db", NULL);
  g_setenv ("BP_DB", db, TRUE);
  if (!bp_gui_test_init (&argc, &argv))
    return 0;
  app = GTK_APPLICATION (bp_application_new ());
  g_autoptr (GError) error = NULL;
  g_assert_true (g_application_register (G_APPLICATION (app), NULL, &error));
  g_assert_no_error (error);

  g_test_add_func ("/experiments/runs", test_runs);
  g_test_add_func ("/experiments/corrupt", test_corrupt);
  g_test_add_func ("/experiments/zh_TW", test_zh_tw);
  int status = g_test_run ();
  g_object_unref (app);
  g_autofree char *rm = g_strdup_printf ("rm -rf '%s'", tmp_dir);
  g_spawn_command_line_sync (rm, NULL, NULL, NULL, NULL);
  g_free (tmp_dir);
  return status;
}
