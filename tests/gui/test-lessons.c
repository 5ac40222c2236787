/* test-lessons.c: drives the Lessons place under Xvfb: lesson 1.1 shown with its Markdown
 * rendered, its model loaded into the builder, its quick run started and its goal ticked, the
 * run tagged in the store, progress remembered; a broken lesson folder still lists the others;
 * screenshots in English and zh_TW. */
#include "config.h"

#include <adwaita.h>
#include <math.h>
#include <string.h>

#include "bp-application.h"
#include "bp-build-page.h"
#include "bp-experiments-page.h"
#include "bp-gui-test.h"
#include "bp-lessons-page.h"
#include "bp-plot.h"
#include "bp-run-recording.h"
#include "bp-spec.h"
#include "bp-store.h"
#include "bp-text.h"
#include "bp-train-page.h"
#include "bp-window.h"

static GtkApplication *app;
static char *tmp_dir;

static BpWindow *
open_window (BpLessonsPage **page)
{
  BpWindow *window = bp_window_new (app);
  gtk_window_present (GTK_WINDOW (window));
  g_assert_true (bp_gui_wait (bp_gui_is_mapped, window, 5000));
  g_assert_true (bp_window_set_place (window, "lessons"));
  *page = BP_LESSONS_PAGE (bp_window_get_page (window, "lessons"));
  g_assert_true (BP_IS_LESSONS_PAGE (*page));
  g_assert_true (bp_gui_wait (bp_gui_is_mapped, *page, 2000));
  return window;
}

static gboolean
has_tag_at_start (GtkTextBuffer *buffer, const char *name)
{
  GtkTextIter start;
  gtk_text_buffer_get_start_iter (buffer, &start);
  GtkTextTag *tag = gtk_text_tag_table_lookup (gtk_text_buffer_get_tag_table (buffer), name);
  return tag && gtk_text_iter_has_tag (&start, tag);
}

/* Whether some text of the buffer carries the tag. */
static gboolean
has_tag (GtkTextBuffer *buffer, const char *name)
{
  GtkTextIter it;
  gtk_text_buffer_get_start_iter (buffer, &it);
  GtkTextTag *tag = gtk_text_tag_table_lookup (gtk_text_buffer_get_tag_table (buffer), name);
  return tag && (gtk_text_iter_has_tag (&it, tag) || gtk_text_iter_forward_to_tag_toggle (&it, tag));
}

/* The first widget below w (w included) that is a GtkImage of icon name, or a GtkButton whose
 * icon is name. */
static GtkWidget *
find_icon (GtkWidget *w, const char *name)
{
  if (GTK_IS_IMAGE (w) && g_strcmp0 (gtk_image_get_icon_name (GTK_IMAGE (w)), name) == 0)
    return w;
  if (GTK_IS_BUTTON (w) && g_strcmp0 (gtk_button_get_icon_name (GTK_BUTTON (w)), name) == 0)
    return w;
  for (GtkWidget *c = gtk_widget_get_first_child (w); c; c = gtk_widget_get_next_sibling (c)) {
    GtkWidget *found = find_icon (c, name);
    if (found)
      return found;
  }
  return NULL;
}

/* Whether a GtkLabel below w has text containing part. */
static gboolean
has_label (GtkWidget *w, const char *part)
{
  if (GTK_IS_LABEL (w) && strstr (gtk_label_get_text (GTK_LABEL (w)), part))
    return TRUE;
  for (GtkWidget *c = gtk_widget_get_first_child (w); c; c = gtk_widget_get_next_sibling (c))
    if (has_label (c, part))
      return TRUE;
  return FALSE;
}

static void
run_lesson_1_1 (const char *lang, const char *title, const char *screenshot)
{
  BpLessonsPage *page;
  BpWindow *window = open_window (&page);
  g_assert_cmpstr (bp_lessons_page_get_language (page), ==, lang);
  g_autoptr (GSettings) settings = g_settings_new ("org.backproplab.Lab");
  g_settings_reset (settings, "lesson-progress");
  g_assert_cmpstr (bp_lessons_page_get_progress (page, "tensors-and-shapes"), ==, "not-started");

  g_assert_false (bp_lessons_page_open (page, "no-such-lesson"));
  g_assert_true (bp_lessons_page_open (page, "1.1"));
  const BpLesson *lesson = bp_lessons_page_get_shown (page);
  g_assert_cmpstr (lesson->id, ==, "tensors-and-shapes");
  g_assert_cmpstr (bp_lessons_page_get_note (page), ==, ""); /* runnable, one run */

  /* the Markdown is rendered: a heading first, code and table text in monospace */
  GtkTextBuffer *buffer = gtk_text_view_get_buffer (bp_lessons_page_get_text_view (page));
  GtkTextIter start, end;
  gtk_text_buffer_get_bounds (buffer, &start, &end);
  g_autofree char *text = gtk_text_buffer_get_text (buffer, &start, &end, FALSE);
  g_assert_true (g_str_has_prefix (text, title));
  g_assert_null (strstr (text, "# ")); /* no Markdown syntax left */
  g_assert_true (has_tag_at_start (buffer, "h1"));
  g_assert_true (has_tag (buffer, "h2"));
  g_assert_true (has_tag (buffer, "code"));
  g_assert_true (has_tag (buffer, "table"));
  /* the table is drawn as columns: no pipes, no rule line, the cells kept */
  g_assert_null (strstr (text, "|"));
  g_assert_null (strstr (text, "---"));
  g_assert_nonnull (strstr (text, "784 × 256 + 256 = 200,960"));
  /* lines of a Chinese paragraph join without a space */
  for (const char *p = text; *p; p = g_utf8_next_char (p)) {
    const char *q = g_utf8_next_char (p);
    if (g_unichar_iswide (g_utf8_get_char (p)) && *q == ' ')
      g_assert_false (g_unichar_iswide (g_utf8_get_char (q + 1)));
  }
  if (g_str_equal (lang, "zh_TW"))
    g_assert_nonnull (strstr (text, "張量"));
  bp_gui_spin (300);

  /* step 1: the MLP goes to the builder */
  g_autoptr (GError) error = NULL;
  g_assert_true (bp_lessons_page_activate_step (page, 0, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (bp_window_get_place (window), ==, "build");
  const BpSpec *spec = bp_build_page_get_spec (BP_BUILD_PAGE (bp_window_get_page (window,
                                                                                 "build")));
  g_autoptr (BpSpec) mlp = bp_spec_parse (bp_preset_find ("mlp")->json, NULL);
  g_assert_cmpint (spec->n_nodes, ==, mlp->n_nodes);
  g_assert_cmpstr (bp_lessons_page_get_progress (page, "tensors-and-shapes"), ==, "started");

  /* step 3: its quick run on the Train page; the goal is ticked when the epoch reports */
  BpTrainPage *train = BP_TRAIN_PAGE (bp_window_get_page (window, "train"));
  g_assert_cmpint (bp_lessons_page_get_goal_state (page, 0), ==, BP_LESSON_GOAL_PENDING);
  g_assert_true (bp_lessons_page_activate_step (page, 2, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (bp_window_get_place (window), ==, "train");
  /* a second start while it trains is refused with a message */
  g_assert_false (bp_lessons_page_activate_step (page, 2, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  g_assert_true (bp_gui_wait (bp_gui_run_ended, train, 60000));
  BpTrainRun *run = bp_train_page_get_run (train);
  g_assert_cmpint (bp_train_run_get_state (run), ==, BP_TRAIN_STATE_FINISHED);
  g_assert_cmpint (bp_train_run_get_config (run)->limit_train, ==, 2000);
  g_assert_cmpstr (bp_train_run_get_config (run)->model, ==, "mlp");
  bp_gui_spin (200);
  g_assert_cmpint (bp_lessons_page_get_goal_state (page, 0), ==, BP_LESSON_GOAL_MET);
  g_assert_cmpstr (bp_lessons_page_get_progress (page, "tensors-and-shapes"), ==, "done");
  g_auto (GStrv) progress = g_settings_get_strv (settings, "lesson-progress");
  g_assert_true (g_strv_contains ((const char *const *) progress, "tensors-and-shapes:done"));

  /* the lesson beside the Train page: its title, its steps' buttons, the goal ticked */
  GtkWidget *panel = bp_lessons_page_get_panel (page);
  g_assert_true (gtk_widget_get_visible (panel));
  g_assert_true (gtk_widget_get_mapped (panel));
  g_assert_true (has_label (panel, bp_lesson_text_get (&lesson->title, lang)));
  g_assert_nonnull (find_icon (panel, "emblem-ok-symbolic"));
  g_autofree char *panel_shot = g_strconcat (screenshot, "-panel", NULL);
  g_free (bp_gui_screenshot (GTK_WIDGET (window), panel_shot));
  /* not beside Experiments; hidden by its close button until the next step */
  g_assert_true (bp_window_set_place (window, "experiments"));
  g_assert_false (gtk_widget_get_visible (panel));
  g_assert_true (bp_window_set_place (window, "train"));
  g_assert_true (gtk_widget_get_visible (panel));
  GtkWidget *close = find_icon (panel, "window-close-symbolic");
  g_assert_true (GTK_IS_BUTTON (close));
  g_signal_emit_by_name (close, "clicked");
  g_assert_false (gtk_widget_get_visible (panel));

  /* the run is stored, tagged with the lesson */
  g_autofree char *db = bp_lab_store_path ();
  g_autoptr (BpStore) store = bp_store_open (db, &error);
  g_assert_no_error (error);
  g_autoptr (GPtrArray) runs = bp_store_list_runs (store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (runs->len, >=, 1);
  BpRun *newest = runs->pdata[0];
  g_assert_true (g_strv_contains ((const char *const *) newest->tags, "lesson:tensors-and-shapes"));
  g_assert_true (g_strv_contains ((const char *const *) newest->tags, "quick"));

  /* the step's open-view shows the curves on the Train page */
  g_assert_true (bp_window_set_place (window, "lessons"));
  g_assert_true (bp_lessons_page_activate_step (page, 3, &error));
  g_assert_cmpstr (bp_window_get_place (window), ==, "train");
  g_assert_true (gtk_widget_get_visible (panel));
  g_assert_true (bp_window_set_place (window, "lessons"));
  bp_gui_spin (300);
  g_free (bp_gui_screenshot (GTK_WIDGET (window), screenshot));
  bp_gui_destroy_window (GTK_WIDGET (window));

  /* a new window remembers the progress (the settings) */
  window = open_window (&page);
  g_assert_cmpstr (bp_lessons_page_get_progress (page, "tensors-and-shapes"), ==, "done");
  g_assert_cmpstr (bp_lessons_page_get_progress (page, "autograd"), ==, "not-started");
  bp_gui_destroy_window (GTK_WIDGET (window));
  g_settings_reset (settings, "lesson-progress");
}

static void
test_run (void)
{
  run_lesson_1_1 ("en", "Tensors and shapes", "lessons-en");
}

static void
test_zh_tw (void)
{
  run_lesson_1_1 ("zh_TW", "張量與形狀", "lessons-zh_TW");
}

/* Lesson 1.3 runs three variants one after another; its compare goals are decided once the
 * runs they compare have ended, and Compare the runs lists them in Experiments. */
static void
test_variants (void)
{
  BpLessonsPage *page;
  BpWindow *window = open_window (&page);
  BpTrainPage *train = BP_TRAIN_PAGE (bp_window_get_page (window, "train"));
  g_assert_true (bp_lessons_page_open (page, "learning-rate"));
  const BpLesson *lesson = bp_lessons_page_get_shown (page);
  g_assert_cmpuint (lesson->test_goals->len, ==, 2);
  g_autoptr (GError) error = NULL;
  for (guint k = 0; k < 3; k++) {
    g_assert_true (bp_lessons_page_activate_step (page, k, &error));
    g_assert_no_error (error);
    g_assert_true (bp_gui_wait (bp_gui_run_ended, train, 60000));
    g_assert_cmpint (bp_train_run_get_state (bp_train_page_get_run (train)), ==,
                     BP_TRAIN_STATE_FINISHED);
    bp_gui_spin (100);
    /* right >= too-small is decided once both have run, right >= too-large after the third */
    g_assert_cmpint (bp_lessons_page_get_goal_state (page, 0), ==,
                     k == 0 ? BP_LESSON_GOAL_PENDING : BP_LESSON_GOAL_MET);
    g_assert_cmpint (bp_lessons_page_get_goal_state (page, 1), ==,
                     k < 2 ? BP_LESSON_GOAL_PENDING : BP_LESSON_GOAL_MET);
  }
  g_assert_cmpfloat (bp_train_run_get_config (bp_train_page_get_run (train))->optim.lr, ==, 0.1f);
  g_assert_cmpstr (bp_lessons_page_get_progress (page, "learning-rate"), ==, "done");
  g_assert_true (bp_window_set_place (window, "lessons"));
  bp_gui_spin (300);
  g_free (bp_gui_screenshot (GTK_WIDGET (window), "lessons-variants-en"));
  g_assert_true (bp_lessons_page_activate_step (page, 3, &error));
  g_assert_cmpstr (bp_window_get_place (window), ==, "experiments");
  BpExperimentsPage *experiments = BP_EXPERIMENTS_PAGE (bp_window_get_page (window,
                                                                           "experiments"));
  g_assert_true (bp_gui_wait (bp_gui_is_mapped, experiments, 2000));
  g_assert_true (bp_experiments_page_refresh (experiments));
  g_assert_cmpuint (bp_experiments_page_get_shown_runs (experiments)->len, ==, 3);
  bp_gui_destroy_window (GTK_WIDGET (window));
}

/* A language model's goal against the unigram baseline, decided from the run's own epochs. */
static void
test_baseline (void)
{
  g_autofree char *tang = g_build_filename (bp_text_fortunes_dir (), "tang300", NULL);
  if (!g_file_test (tang, G_FILE_TEST_EXISTS) || !bp_text_have_opencc ()) {
    g_test_skip ("the Tang poems (fortunes-zh) or OpenCC are not installed");
    return;
  }
  BpLessonsPage *page;
  BpWindow *window = open_window (&page);
  BpTrainPage *train = BP_TRAIN_PAGE (bp_window_get_page (window, "train"));
  g_assert_true (bp_lessons_page_open (page, "char-gpt-tang"));
  g_autoptr (GError) error = NULL;
  g_assert_true (bp_lessons_page_activate_step (page, 1, &error)); /* start training */
  g_assert_no_error (error);
  g_assert_cmpint (bp_lessons_page_get_goal_state (page, 0), ==, BP_LESSON_GOAL_PENDING);
  g_assert_true (bp_gui_wait (bp_gui_run_ended, train, 60000));
  g_assert_cmpint (bp_train_run_get_state (bp_train_page_get_run (train)), ==,
                   BP_TRAIN_STATE_FINISHED);
  bp_gui_spin (100);
  g_assert_cmpint (bp_lessons_page_get_goal_state (page, 0), ==, BP_LESSON_GOAL_MET);
  bp_gui_destroy_window (GTK_WIDGET (window));
}

static gboolean
is_not_drawing (gpointer data)
{
  return !bp_lessons_page_is_drawing (data);
}

/* The autograd lesson: gradient descent paths drawn point by point on the bowl's contours,
 * the goals ticked as the points arrive. */
static void
test_function (void)
{
  BpLessonsPage *page;
  BpWindow *window = open_window (&page);
  g_assert_true (bp_lessons_page_open (page, "autograd"));
  BpPlaneView *plane = bp_lessons_page_get_plane (page);
  g_assert_true (bp_gui_wait (bp_gui_is_mapped, plane, 2000));
  g_assert_cmpint (bp_plane_view_get_n_paths (plane), ==, 0);
  g_autoptr (GError) error = NULL;
  for (guint k = 1; k <= 3; k++) {
    guint updates = bp_plane_view_get_n_updates (plane);
    g_assert_true (bp_lessons_page_activate_step (page, k, &error));
    g_assert_no_error (error);
    /* drawn over several frames, not at once */
    g_assert_true (bp_lessons_page_is_drawing (page));
    g_assert_cmpint (bp_plane_view_get_path_length (plane, (int) k - 1), <, 101);
    g_assert_true (bp_gui_wait (is_not_drawing, page, 10000));
    g_assert_cmpint (bp_plane_view_get_n_paths (plane), ==, (int) k);
    g_assert_cmpint (bp_plane_view_get_path_length (plane, (int) k - 1), ==, 101);
    g_assert_cmpuint (bp_plane_view_get_n_updates (plane), >, updates + 20);
    bp_gui_spin (50);
  }
  for (guint g = 0; g < 4; g++)
    g_assert_cmpint (bp_lessons_page_get_goal_state (page, g), ==, BP_LESSON_GOAL_MET);
  g_assert_cmpstr (bp_lessons_page_get_progress (page, "autograd"), ==, "done");
  /* the tooltip reads the function at the pointer: the middle of the plot is near (0, 0) */
  int w = gtk_widget_get_width (GTK_WIDGET (plane)), h = gtk_widget_get_height (GTK_WIDGET (plane));
  g_autofree char *at = bp_plane_view_describe_point (plane, w / 2.0, h / 2.0);
  g_assert_nonnull (at);
  g_assert_nonnull (strstr (at, "f = "));
  g_assert_null (bp_plane_view_describe_point (plane, 1, 1));
  bp_gui_spin (200);
  g_free (bp_gui_screenshot (GTK_WIDGET (window), "lessons-autograd-en"));

  /* starting the first run again clears the drawing */
  g_assert_true (bp_lessons_page_activate_step (page, 1, &error));
  g_assert_cmpint (bp_plane_view_get_n_paths (plane), ==, 1);
  g_assert_true (bp_gui_wait (is_not_drawing, page, 10000));
  bp_gui_destroy_window (GTK_WIDGET (window));
}

static GtkWidget *
train_child (BpTrainPage *train, const char *name)
{
  return bp_gui_template_child (train, BP_TYPE_TRAIN_PAGE, name);
}

/* Two spirals: the Train page draws the MLP's decision boundary over the points after every
 * epoch; the diabetes regression shows R² where a classifier shows its accuracy. */
static void
test_tabular (void)
{
  BpLessonsPage *page;
  BpWindow *window = open_window (&page);
  BpTrainPage *train = BP_TRAIN_PAGE (bp_window_get_page (window, "train"));
  g_assert_true (bp_lessons_page_open (page, "two-spirals"));
  g_autoptr (GError) error = NULL;
  g_assert_true (bp_lessons_page_activate_step (page, 2, &error)); /* train the MLP */
  g_assert_no_error (error);
  g_assert_true (bp_gui_wait (bp_gui_run_ended, train, 60000));
  g_assert_cmpint (bp_train_run_get_state (bp_train_page_get_run (train)), ==,
                   BP_TRAIN_STATE_FINISHED);
  bp_gui_spin (200);
  g_assert_true (gtk_widget_get_visible (train_child (train, "boundary_card")));
  g_assert_false (gtk_widget_get_visible (train_child (train, "samples_card")));
  BpPlaneView *plane = BP_PLANE_VIEW (train_child (train, "boundary_view"));
  g_assert_cmpuint (bp_plane_view_get_n_updates (plane), >, 3);
  /* the spirals' region; the MLP is sure of its class where the points are */
  double x0, x1, y0, y1;
  bp_plane_view_get_region (plane, &x0, &x1, &y0, &y1);
  g_assert_cmpfloat (x0, <, -1.0);
  g_assert_cmpfloat (x1, >, 1.0);
  g_assert_cmpfloat (y1 - y0, >, 2.0);
  int w = gtk_widget_get_width (GTK_WIDGET (plane)), h = gtk_widget_get_height (GTK_WIDGET (plane));
  g_autofree char *at = bp_plane_view_describe_point (plane, w / 2.0, h / 2.0);
  g_assert_nonnull (at);
  g_assert_nonnull (strstr (at, "class "));
  g_assert_cmpint (bp_lessons_page_get_goal_state (page, 1), ==, BP_LESSON_GOAL_MET);
  g_free (bp_gui_screenshot (GTK_WIDGET (window), "train-two-spirals-en"));

  g_assert_true (bp_lessons_page_open (page, "regression"));
  g_assert_true (bp_window_set_place (window, "lessons"));
  g_assert_true (bp_lessons_page_activate_step (page, 2, &error)); /* the linear model */
  g_assert_no_error (error);
  g_assert_true (bp_gui_wait (bp_gui_run_ended, train, 60000));
  g_assert_cmpint (bp_train_run_get_state (bp_train_page_get_run (train)), ==,
                   BP_TRAIN_STATE_FINISHED);
  bp_gui_spin (200);
  g_assert_cmpstr (gtk_label_get_text (GTK_LABEL (train_child (train, "val_metric_title"))), ==,
                   "Validation R²");
  double r2 = g_ascii_strtod (gtk_label_get_text (GTK_LABEL (train_child (train,
                                                                          "val_accuracy_label"))),
                              NULL);
  g_assert_cmpfloat (r2, >, 0.3);
  g_assert_cmpfloat (r2, <, 0.7);
  g_assert_false (gtk_widget_get_visible (train_child (train, "confusion_card")));
  g_assert_false (gtk_widget_get_visible (train_child (train, "boundary_card")));
  /* the R² chart: the validation series only */
  g_assert_cmpuint (bp_plot_get_n_series (BP_PLOT (train_child (train, "accuracy_plot"))), ==, 1);
  const char *done = gtk_progress_bar_get_text (GTK_PROGRESS_BAR (train_child (train,
                                                                               "progress_bar")));
  g_assert_nonnull (strstr (done, "test R²"));
  g_assert_true (isfinite (bp_train_run_get_progress (bp_train_page_get_run (train))->test_r2));
  g_assert_cmpint (bp_lessons_page_get_goal_state (page, 0), ==, BP_LESSON_GOAL_MET);
  g_free (bp_gui_screenshot (GTK_WIDGET (window), "train-regression-en"));

  /* the MLP too; Experiments plots a regression's R², and compares two by it */
  g_assert_true (bp_lessons_page_activate_step (page, 3, &error));
  g_assert_no_error (error);
  g_assert_true (bp_gui_wait (bp_gui_run_ended, train, 60000));
  bp_gui_spin (200);
  BpExperimentsPage *experiments = BP_EXPERIMENTS_PAGE (bp_window_get_page (window,
                                                                           "experiments"));
  g_assert_true (bp_window_set_place (window, "experiments"));
  bp_experiments_page_set_search (experiments, "lesson:regression");
  g_assert_true (bp_experiments_page_refresh (experiments));
  GArray *shown = bp_experiments_page_get_shown_runs (experiments);
  g_assert_cmpuint (shown->len, ==, 2);
  gint64 ids[2];
  g_autofree char *db = bp_lab_store_path ();
  g_autoptr (BpStore) store = bp_store_open (db, &error);
  g_assert_no_error (error);
  for (guint k = 0; k < 2; k++) {
    ids[k] = g_array_index (shown, gint64, k);
    g_autoptr (BpRun) run = bp_store_get_run (store, ids[k], &error);
    g_assert_no_error (error);
    g_assert_true (isnan (run->best_val_accuracy));
    g_assert_cmpfloat (run->best_val_r2, >, 0.3);
  }
  g_assert_true (bp_experiments_page_open_run (experiments, ids[0]));
  BpPlot *plot = bp_experiments_page_get_run_plot (experiments, TRUE);
  g_assert_cmpstr (bp_plot_get_title (plot), ==, "R² (coefficient of determination)");
  g_assert_cmpuint (bp_plot_get_n_series (plot), ==, 1);
  g_assert_cmpint (bp_series_get_n_points (bp_plot_get_series (plot, 0)), >=, 50);
  for (guint k = 0; k < 2; k++)
    bp_experiments_page_set_selected (experiments, ids[k], TRUE);
  g_assert_true (bp_experiments_page_compare (experiments));
  BpPlot *compare = bp_experiments_page_get_compare_plot (experiments);
  g_assert_cmpstr (bp_plot_get_title (compare), ==, "Validation R²");
  g_assert_cmpuint (bp_plot_get_n_series (compare), ==, 2);
  bp_gui_destroy_window (GTK_WIDGET (window));
}

/* A set-config action puts the run's settings on the Train page; the next Start trains them. */
static void
test_set_config (void)
{
  BpLessonsPage *page;
  BpWindow *window = open_window (&page);
  BpTrainPage *train = BP_TRAIN_PAGE (bp_window_get_page (window, "train"));
  g_assert_true (bp_lessons_page_open (page, "weight-decay"));
  const BpLesson *lesson = bp_lessons_page_get_shown (page);
  const BpLessonStep *set = lesson->steps->pdata[2];
  g_assert_cmpint (set->action.kind, ==, BP_LESSON_ACTION_SET_CONFIG);
  BpTrainConfig before = bp_train_page_get_config (train);
  g_assert_cmpfloat (before.optim.weight_decay, !=, 0.5f);
  g_autoptr (GError) error = NULL;
  g_assert_true (bp_lessons_page_activate_step (page, 2, &error));
  g_assert_no_error (error);
  BpTrainConfig shown = bp_train_page_get_config (train);
  g_assert_cmpint (shown.optim.kind, ==, BP_OPTIM_ADAMW);
  g_assert_cmpfloat (fabs (shown.optim.weight_decay - 0.5), <, 1e-6);
  g_assert_cmpfloat (fabs (shown.optim.lr - 0.001), <, 1e-7);
  g_assert_cmpstr (shown.model, ==, "mlp");
  g_assert_cmpstr (shown.dataset, ==, "fashion-mnist");
  g_assert_cmpint (shown.epochs, ==, 20); /* the test budget's */
  g_assert_cmpint (shown.limit_train, ==, 1000);
  g_assert_cmpint (shown.batch_size, ==, 64);
  /* the following Start (no run named) trains the run the action chose */
  const BpLessonStep *start = lesson->steps->pdata[3];
  g_assert_cmpint (start->action.kind, ==, BP_LESSON_ACTION_START_TRAINING);
  g_assert_null (start->action.variant);
  g_assert_true (bp_lessons_page_activate_step (page, 3, &error));
  g_assert_no_error (error);
  BpTrainRun *run = bp_train_page_get_run (train);
  g_assert_cmpfloat (fabs (bp_train_run_get_config (run)->optim.weight_decay - 0.5), <, 1e-6);
  g_assert_true (bp_gui_wait (bp_gui_run_ended, train, 60000));
  bp_gui_destroy_window (GTK_WIDGET (window));
}

/* A lessons folder copied from the source tree, for a test to change (free the path). */
static char *
copy_lessons (const char *name)
{
  char *dir = g_build_filename (tmp_dir, name, NULL);
  g_autofree char *cp = g_strdup_printf ("cp -r '%s' '%s'", bp_lessons_default_dir (), dir);
  int status = -1;
  g_assert_true (g_spawn_command_line_sync (cp, NULL, NULL, &status, NULL));
  g_assert_cmpint (status, ==, 0);
  return dir;
}

/* A lesson that is not runnable yet says why and has no Start. */
static void
test_not_runnable (void)
{
  g_autofree char *dir = copy_lessons ("lessons-not-runnable");
  g_autofree char *json = g_build_filename (dir, "01-foundations", "02-autograd", "lesson.json",
                                            NULL);
  g_assert_true (g_file_set_contents (
    json,
    "{\"format\": 1, \"id\": \"autograd\", \"title\": {\"en\": \"Autograd\", \"zh_TW\": \"自動微分\"},\n"
    " \"experiment\": null,\n"
    " \"not_runnable\": {\"en\": \"the surface view is switched off in this test\",\n"
    "                    \"zh_TW\": \"這個測試把曲面檢視關掉了\"},\n"
    " \"steps\": [{\"text\": {\"en\": \"Work it by hand.\", \"zh_TW\": \"用手算。\"}}]}\n",
    -1, NULL));
  g_setenv ("BP_LESSONS_DIR", dir, TRUE);
  BpLessonsPage *page;
  BpWindow *window = open_window (&page);
  g_assert_cmpuint (bp_lessons_page_get_set (page)->warnings->len, ==, 0);
  g_assert_true (bp_lessons_page_open (page, "autograd"));
  const BpLesson *lesson = bp_lessons_page_get_shown (page);
  g_assert_null (lesson->experiment);
  g_assert_nonnull (strstr (bp_lessons_page_get_note (page),
                            "the surface view is switched off in this test"));
  /* no surface, and its one step has no button */
  g_assert_false (gtk_widget_get_visible (GTK_WIDGET (bp_lessons_page_get_plane (page))));
  g_autoptr (GError) error = NULL;
  g_assert_true (bp_lessons_page_activate_step (page, 0, &error));
  g_assert_no_error (error);
  g_assert_cmpint (bp_lessons_page_get_goal_state (page, 0), ==, BP_LESSON_GOAL_PENDING);
  bp_gui_destroy_window (GTK_WIDGET (window));
  g_unsetenv ("BP_LESSONS_DIR");
}

static void
test_broken_folder (void)
{
  g_autofree char *dir = copy_lessons ("lessons");
  g_autofree char *json = g_build_filename (dir, "01-foundations", "02-autograd", "lesson.json",
                                            NULL);
  g_assert_true (g_file_set_contents (json, "{\"format\": 1, \"id\": ", -1, NULL));
  g_setenv ("BP_LESSONS_DIR", dir, TRUE);

  BpLessonsPage *page;
  BpWindow *window = open_window (&page);
  const BpLessonSet *set = bp_lessons_page_get_set (page);
  g_assert_nonnull (set);
  g_assert_cmpuint (set->warnings->len, >=, 1);
  g_assert_false (bp_lessons_page_open (page, "autograd"));
  g_assert_true (bp_lessons_page_open (page, "tensors-and-shapes"));
  g_assert_true (bp_lessons_page_open (page, "learning-rate"));
  GPtrArray *all = bp_lesson_set_list (set);
  g_assert_cmpuint (all->len, >=, 10);
  g_ptr_array_unref (all);
  bp_gui_destroy_window (GTK_WIDGET (window));

  /* a folder that cannot be read: the page says so and lists nothing */
  g_autofree char *missing = g_build_filename (tmp_dir, "no-lessons", NULL);
  g_setenv ("BP_LESSONS_DIR", missing, TRUE);
  window = open_window (&page);
  g_assert_null (bp_lessons_page_get_set (page));
  g_assert_false (bp_lessons_page_open (page, "tensors-and-shapes"));
  bp_gui_destroy_window (GTK_WIDGET (window));
  g_unsetenv ("BP_LESSONS_DIR");
}

int
main (int argc, char **argv)
{
  tmp_dir = g_dir_make_tmp ("bp-lessons-XXXXXX", NULL);
  g_assert_nonnull (tmp_dir);
  g_autofree char *db = g_build_filename (tmp_dir, "experiments.db", NULL);
  g_setenv ("BP_DB", db, TRUE);
  g_setenv ("BP_LESSON_QUICK", "1", TRUE);
  if (!bp_gui_test_init (&argc, &argv))
    return 0;
  app = GTK_APPLICATION (bp_application_new ());
  g_autoptr (GError) error = NULL;
  g_assert_true (g_application_register (G_APPLICATION (app), NULL, &error));
  g_assert_no_error (error);

  g_test_add_func ("/lessons/run", test_run);
  g_test_add_func ("/lessons/variants", test_variants);
  g_test_add_func ("/lessons/baseline", test_baseline);
  g_test_add_func ("/lessons/not-runnable", test_not_runnable);
  g_test_add_func ("/lessons/function", test_function);
  g_test_add_func ("/lessons/set-config", test_set_config);
  g_test_add_func ("/lessons/tabular", test_tabular);
  g_test_add_func ("/lessons/broken-folder", test_broken_folder);
  g_test_add_func ("/lessons/zh_TW", test_zh_tw);
  int status = g_test_run ();
  g_object_unref (app);
  g_autofree char *rm = g_strdup_printf ("rm -rf '%s'", tmp_dir);
  g_spawn_command_line_sync (rm, NULL, NULL, NULL, NULL);
  g_free (tmp_dir);
  return status;
}
