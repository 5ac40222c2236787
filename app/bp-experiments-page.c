/* bp-experiments-page.c: BpExperimentsPage lists the runs of the experiment store (polled every
 * second on the main thread with its own connection), shows one run, compares several runs and
 * deletes runs behind an Undo toast. */
#include "config.h"

#include "bp-experiments-page.h"

#include <glib/gi18n.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bp-run-recording.h"
#include "bp-series.h"
#include "bp-recorder.h"
#include "bp-store.h"
#include "bp-train-page.h"
#include "bp-window.h"

struct _BpExperimentsPage {
  GtkWidget parent_instance;

  AdwToastOverlay *overlay;
  GtkStack *stack;
  AdwStatusPage *error_page;
  /* list */
  GtkSearchEntry *search;
  GtkDropDown *sort_drop, *status_drop;
  GtkListBox *list;
  GtkLabel *count_label;
  /* one run */
  GtkEntry *name_entry, *tags_entry;
  GtkLabel *info_label, *config_label, *checkpoints_label;
  GtkTextView *note_view;
  BpPlot *loss_plot, *accuracy_plot;
  gint64 open_id, open_signature;
  /* comparison */
  GtkDropDown *metric_drop;
  BpPlot *compare_plot;
  GtkGrid *params_grid, *finals_grid;
  GArray *compare_ids;
  char **differing;

  char *path;
  BpStore *store;        /* the main thread's connection */
  char *error;
  GPtrArray *runs;       /* BpRun, newest first */
  char *signature;       /* of the runs listed, to rebuild the list only when it changed */
  GHashTable *selected;  /* run ids (gint64 *) */
  GArray *shown;         /* gint64 */
  gint64 pending_delete; /* hidden, deleted when the toast goes away */
  AdwToast *toast;
  guint timer;
};

G_DEFINE_FINAL_TYPE (BpExperimentsPage, bp_experiments_page, GTK_TYPE_WIDGET)

/* The comparable metrics: split, name, title. */
static const struct {
  const char *split, *name, *title;
} metrics[] = {
  {BP_SPLIT_VAL, BP_METRIC_ACCURACY, N_("Validation accuracy")},
  {BP_SPLIT_VAL, BP_METRIC_LOSS, N_("Validation loss")},
  {BP_SPLIT_TRAIN, BP_METRIC_LOSS, N_("Training loss")},
  {BP_SPLIT_TRAIN, "epoch_accuracy", N_("Training accuracy")},
  {BP_SPLIT_VAL, BP_METRIC_R2, N_("Validation R²")}, /* last: load_comparison picks it for regressions */
};

static const GdkRGBA palette[] = {
  {0.11, 0.44, 0.85, 1}, {0.90, 0.38, 0.00, 1}, {0.18, 0.63, 0.26, 1},
  {0.75, 0.11, 0.16, 1}, {0.57, 0.25, 0.67, 1}, {0.40, 0.40, 0.40, 1},
};

static void rebuild_list (BpExperimentsPage *self);

/* ---- text ---- */

static const char *
status_text (BpRunStatus status)
{
  switch (status) {
  case BP_RUN_RUNNING: return _("Running");
  case BP_RUN_FINISHED: return _("Finished");
  case BP_RUN_STOPPED: return _("Stopped");
  case BP_RUN_FAILED: return _("Failed");
  case BP_RUN_INTERRUPTED: return _("Interrupted");
  }
  return "";
}

static double
run_seconds (const BpRun *run)
{
  gint64 end = run->ended_us > 0 ? run->ended_us
               : run->heartbeat_us > 0 ? run->heartbeat_us : g_get_real_time ();
  return MAX (0, end - run->created_us) / 1e6;
}

static char *
duration_text (double seconds)
{
  int s = (int) round (seconds);
  if (s < 60)
    return g_strdup_printf (_("%d s"), s);
  if (s < 3600)
    return g_strdup_printf (_("%d min %02d s"), s / 60, s % 60);
  return g_strdup_printf (_("%d h %02d min"), s / 3600, s % 3600 / 60);
}

static char *
date_text (gint64 us)
{
  g_autoptr (GDateTime) t = g_date_time_new_from_unix_local (us / G_USEC_PER_SEC);
  return t ? g_date_time_format (t, "%Y-%m-%d %H:%M") : g_strdup ("–");
}

static char *
percent_text (double v)
{
  return isnan (v) ? g_strdup ("–") : g_strdup_printf ("%.2f %%", 100 * v);
}

/* An accuracy as a percentage; a regression's R² (acc NaN) as "R² 0.47". */
static char *
score_text (double acc, double r2)
{
  return isnan (acc) && !isnan (r2) ? g_strdup_printf ("R² %.3f", r2) : percent_text (acc);
}

static char *
value_text (double v)
{
  return isnan (v) ? g_strdup ("–") : g_strdup_printf ("%.4g", v);
}

/* ---- the store ---- */

static void
show_error (BpExperimentsPage *self, const char *message)
{
  g_free (self->error);
  self->error = g_strdup (message);
  adw_status_page_set_description (self->error_page, message);
  gtk_stack_set_visible_child_name (self->stack, "error");
}

static gboolean
ensure_store (BpExperimentsPage *self)
{
  if (self->store)
    return TRUE;
  g_autoptr (GError) error = NULL;
  self->store = bp_store_open (self->path, &error);
  if (!self->store) {
    show_error (self, error->message);
    return FALSE;
  }
  return TRUE;
}

/* The store failed: close the connection (a later refresh tries again) and say why. */
static void
store_failed (BpExperimentsPage *self, const GError *error)
{
  g_clear_pointer (&self->store, bp_store_close);
  show_error (self, error->message);
}

static const BpRun *
find_run (BpExperimentsPage *self, gint64 id)
{
  for (guint i = 0; self->runs && i < self->runs->len; i++) {
    const BpRun *run = g_ptr_array_index (self->runs, i);
    if (run->id == id)
      return run;
  }
  return NULL;
}

static char *
runs_signature (GPtrArray *runs)
{
  GString *s = g_string_new (NULL);
  for (guint i = 0; i < runs->len; i++) {
    const BpRun *r = g_ptr_array_index (runs, i);
    g_autofree char *tags = g_strjoinv (",", r->tags);
    g_string_append_printf (s, "%" G_GINT64_FORMAT "|%s|%d|%g|%" G_GINT64_FORMAT "|%s|%"
                            G_GINT64_FORMAT ";", r->id, r->name, r->status,
                            r->best_val_accuracy, r->last_step, tags, r->ended_us);
  }
  return g_string_free (s, FALSE);
}

/* ---- one run ---- */

static void
add_points (BpPlot *plot, GArray *points, const char *split, const char *name,
            const char *title, const GdkRGBA *color)
{
  g_autoptr (BpSeries) series = bp_series_new (title, color);
  for (guint i = 0; i < points->len; i++) {
    const BpMetricPoint *p = &g_array_index (points, BpMetricPoint, i);
    if (g_str_equal (p->split, split) && g_str_equal (p->name, name) && !isnan (p->value))
      bp_series_append (series, p->step, p->value);
  }
  bp_series_set_markers (series, bp_series_get_n_points (series) < 30);
  bp_plot_add_series (plot, series);
}

static GHashTable *config_values (const char *json);

static int
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* The config as sorted "key = value" lines. */
static char *
config_text (const char *json)
{
  g_autoptr (GHashTable) values = config_values (json);
  g_autofree gpointer *keys = g_hash_table_get_keys_as_array (values, NULL);
  guint n = g_hash_table_size (values);
  qsort (keys, n, sizeof *keys, compare_strings);
  GString *s = g_string_new (NULL);
  for (guint i = 0; i < n; i++)
    g_string_append_printf (s, "%s = %s\n", (char *) keys[i],
                            (char *) g_hash_table_lookup (values, keys[i]));
  return g_strchomp (g_string_free (s, FALSE));
}

static void
load_run (BpExperimentsPage *self)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (BpRun) run = bp_store_get_run (self->store, self->open_id, &error);
  g_autoptr (GArray) points = run ? bp_store_get_metrics (self->store, self->open_id, NULL,
                                                          NULL, &error) : NULL;
  g_autoptr (GPtrArray) checkpoints = points ? bp_store_list_checkpoints (self->store,
                                                                          self->open_id,
                                                                          &error) : NULL;
  if (!checkpoints) {
    store_failed (self, error);
    return;
  }
  self->open_signature = run->last_step * 8 + run->status;

  bp_plot_remove_all_series (self->loss_plot);
  add_points (self->loss_plot, points, BP_SPLIT_TRAIN, BP_METRIC_LOSS, _("Training loss"),
              &palette[0]);
  add_points (self->loss_plot, points, BP_SPLIT_VAL, BP_METRIC_LOSS, _("Validation loss"),
              &palette[1]);
  bp_plot_remove_all_series (self->accuracy_plot);
  /* a regression's R² where a classifier's accuracies go */
  gboolean regression = isnan (run->best_val_accuracy) && !isnan (run->best_val_r2);
  bp_plot_set_title (self->accuracy_plot, regression ? _("R² (coefficient of determination)")
                                                     : _("Accuracy"));
  bp_plot_set_axis_labels (self->accuracy_plot, _("Step"), regression ? "R²" : _("Accuracy"));
  if (regression) {
    add_points (self->accuracy_plot, points, BP_SPLIT_VAL, BP_METRIC_R2, _("Validation R²"),
                &palette[1]);
  } else {
    add_points (self->accuracy_plot, points, BP_SPLIT_TRAIN, "epoch_accuracy",
                _("Training accuracy"), &palette[0]);
    add_points (self->accuracy_plot, points, BP_SPLIT_VAL, BP_METRIC_ACCURACY,
                _("Validation accuracy"), &palette[1]);
  }

  if (!gtk_widget_has_focus (GTK_WIDGET (self->name_entry)))
    gtk_editable_set_text (GTK_EDITABLE (self->name_entry), run->name);
  g_autofree char *duration = duration_text (run_seconds (run));
  g_autofree char *date = date_text (run->created_us);
  g_autofree char *best = score_text (run->best_val_accuracy, run->best_val_r2);
  GString *info = g_string_new (NULL);
  g_string_append_printf (info, _("Model: %s"), run->model_name ? run->model_name : "–");
  g_string_append_c (info, '\n');
  g_string_append_printf (info, _("Data set: %s"), run->dataset ? run->dataset : "–");
  g_string_append_c (info, '\n');
  g_string_append_printf (info, _("Status: %s"), status_text (run->status));
  if (run->status_reason && *run->status_reason)
    g_string_append_printf (info, " (%s)", run->status_reason);
  g_string_append_c (info, '\n');
  g_string_append_printf (info, _("Best validation accuracy: %s"), best);
  g_string_append_c (info, '\n');
  g_string_append_printf (info, _("Duration: %s"), duration);
  g_string_append_c (info, '\n');
  g_string_append_printf (info, _("Started: %s"), date);
  gtk_label_set_text (self->info_label, info->str);
  g_string_free (info, TRUE);

  g_autofree char *config = config_text (run->config_json);
  gtk_label_set_text (self->config_label, config);

  GString *cps = g_string_new (NULL);
  for (guint i = 0; i < checkpoints->len; i++) {
    const BpCheckpoint *c = g_ptr_array_index (checkpoints, i);
    g_autofree char *base = g_path_get_basename (c->path);
    g_autofree char *metric = percent_text (c->val_metric);
    g_string_append_printf (cps, _("Epoch %d, step %d, validation accuracy %s"),
                            (int) c->epoch, (int) c->step, metric);
    g_string_append_printf (cps, "%s\n", c->is_best ? _(" (best)") : "");
    g_string_append_printf (cps, "    %s\n", base);
  }
  if (checkpoints->len == 0)
    g_string_append (cps, _("No checkpoints"));
  gtk_label_set_text (self->checkpoints_label, g_strchomp (cps->str));
  g_string_free (cps, TRUE);

  if (!gtk_widget_has_focus (GTK_WIDGET (self->tags_entry))) {
    g_autofree char *tags = g_strjoinv (", ", run->tags);
    gtk_editable_set_text (GTK_EDITABLE (self->tags_entry), tags);
  }
  if (!gtk_widget_has_focus (GTK_WIDGET (self->note_view)))
    gtk_text_buffer_set_text (gtk_text_view_get_buffer (self->note_view), run->note, -1);
}

gboolean
bp_experiments_page_open_run (BpExperimentsPage *self, gint64 run_id)
{
  g_return_val_if_fail (BP_IS_EXPERIMENTS_PAGE (self), FALSE);
  if (!ensure_store (self) || !find_run (self, run_id) || run_id == self->pending_delete)
    return FALSE;
  self->open_id = run_id;
  gtk_widget_grab_focus (GTK_WIDGET (self->stack));
  load_run (self);
  if (!self->store)
    return FALSE;
  gtk_stack_set_visible_child_name (self->stack, "run");
  return TRUE;
}

/* ---- comparison ---- */

/* Each leaf of a JSON object as text, named by its path ("optimizer.lr"). */
static void
flatten (GHashTable *values, const char *prefix, JsonObject *object)
{
  g_autoptr (GList) members = json_object_get_members (object);
  for (GList *l = members; l; l = l->next) {
    JsonNode *node = json_object_get_member (object, l->data);
    char *key = prefix ? g_strconcat (prefix, ".", l->data, NULL) : g_strdup (l->data);
    if (JSON_NODE_HOLDS_OBJECT (node)) {
      flatten (values, key, json_node_get_object (node));
      g_free (key);
      continue;
    }
    char *text;
    GType type = JSON_NODE_HOLDS_VALUE (node) ? json_node_get_value_type (node) : G_TYPE_NONE;
    if (type == G_TYPE_STRING)
      text = g_strdup (json_node_get_string (node));
    else if (type == G_TYPE_DOUBLE)
      text = g_strdup_printf ("%.7g", json_node_get_double (node));
    else
      text = json_to_string (node, FALSE);
    g_hash_table_insert (values, key, text);
  }
}

static GHashTable *
config_values (const char *json)
{
  GHashTable *values = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_autoptr (JsonParser) parser = json_parser_new ();
  if (json && json_parser_load_from_data (parser, json, -1, NULL) &&
      JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    flatten (values, NULL, json_node_get_object (json_parser_get_root (parser)));
  return values;
}

static void
clear_grid (GtkGrid *grid)
{
  GtkWidget *child;
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (grid))))
    gtk_grid_remove (grid, child);
}

static void
grid_label (GtkGrid *grid, int col, int row, const char *text, gboolean heading)
{
  GtkWidget *label = gtk_label_new (text);
  gtk_label_set_xalign (GTK_LABEL (label), 0);
  gtk_label_set_selectable (GTK_LABEL (label), !heading);
  gtk_label_set_ellipsize (GTK_LABEL (label), PANGO_ELLIPSIZE_END);
  gtk_label_set_max_width_chars (GTK_LABEL (label), 28);
  if (heading)
    gtk_widget_add_css_class (label, "heading");
  gtk_grid_attach (grid, label, col, row, 1, 1);
}

static double
last_value (GArray *points, const char *split, const char *name)
{
  double v = NAN;
  for (guint i = 0; i < points->len; i++) {
    const BpMetricPoint *p = &g_array_index (points, BpMetricPoint, i);
    if (g_str_equal (p->split, split) && g_str_equal (p->name, name))
      v = p->value;
  }
  return v;
}

static void
load_comparison (BpExperimentsPage *self)
{
  guint metric = gtk_drop_down_get_selected (self->metric_drop);
  if (metric >= G_N_ELEMENTS (metrics))
    metric = 0;
  guint n = self->compare_ids->len;
  g_autoptr (GPtrArray) runs = g_ptr_array_new_with_free_func ((GDestroyNotify) bp_run_free);
  g_autoptr (GPtrArray) points = g_ptr_array_new_with_free_func ((GDestroyNotify) g_array_unref);
  g_autoptr (GPtrArray) configs = g_ptr_array_new_with_free_func (
    (GDestroyNotify) g_hash_table_unref);
  for (guint i = 0; i < n; i++) {
    g_autoptr (GError) error = NULL;
    gint64 id = g_array_index (self->compare_ids, gint64, i);
    BpRun *run = bp_store_get_run (self->store, id, &error);
    GArray *p = run ? bp_store_get_metrics (self->store, id, NULL, NULL, &error) : NULL;
    if (!p) {
      g_clear_pointer (&run, bp_run_free);
      store_failed (self, error);
      return;
    }
    g_ptr_array_add (runs, run);
    g_ptr_array_add (points, p);
    g_ptr_array_add (configs, config_values (run->config_json));
  }

  /* regressions have no accuracy: their R² in its place */
  gboolean all_regression = n > 0;
  for (guint i = 0; i < n; i++) {
    const BpRun *run = g_ptr_array_index (runs, i);
    all_regression &= isnan (run->best_val_accuracy) && !isnan (run->best_val_r2);
  }
  if (all_regression && metric == 0)
    metric = G_N_ELEMENTS (metrics) - 1;
  bp_plot_remove_all_series (self->compare_plot);
  bp_plot_set_title (self->compare_plot, _(metrics[metric].title));
  bp_plot_set_axis_labels (self->compare_plot, _("Step"), _(metrics[metric].title));
  for (guint i = 0; i < n; i++) {
    const BpRun *run = g_ptr_array_index (runs, i);
    g_autofree char *label = g_strdup_printf ("%s #%" G_GINT64_FORMAT, run->name, run->id);
    add_points (self->compare_plot, g_ptr_array_index (points, i), metrics[metric].split,
                metrics[metric].name, label, &palette[i % G_N_ELEMENTS (palette)]);
  }

  /* the hyper-parameters that differ: keys of any config whose texts are not all equal */
  g_autoptr (GHashTable) keys = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < n; i++) {
    GHashTableIter it;
    gpointer key;
    g_hash_table_iter_init (&it, g_ptr_array_index (configs, i));
    while (g_hash_table_iter_next (&it, &key, NULL))
      g_hash_table_add (keys, key);
  }
  GPtrArray *differing = g_ptr_array_new ();
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, keys);
  while (g_hash_table_iter_next (&it, &key, NULL)) {
    const char *first = g_hash_table_lookup (g_ptr_array_index (configs, 0), key);
    for (guint i = 1; i < n; i++)
      if (g_strcmp0 (first, g_hash_table_lookup (g_ptr_array_index (configs, i), key)) != 0) {
        g_ptr_array_add (differing, g_strdup (key));
        break;
      }
  }
  g_ptr_array_sort (differing, compare_strings);
  g_ptr_array_add (differing, NULL);
  g_strfreev (self->differing);
  self->differing = (char **) g_ptr_array_free (differing, FALSE);

  clear_grid (self->params_grid);
  clear_grid (self->finals_grid);
  grid_label (self->params_grid, 0, 0, _("Hyper-parameter"), TRUE);
  grid_label (self->finals_grid, 0, 0, _("Metric"), TRUE);
  for (guint i = 0; i < n; i++) {
    const BpRun *run = g_ptr_array_index (runs, i);
    g_autofree char *label = g_strdup_printf ("%s #%" G_GINT64_FORMAT, run->name, run->id);
    grid_label (self->params_grid, i + 1, 0, label, TRUE);
    grid_label (self->finals_grid, i + 1, 0, label, TRUE);
  }
  for (int k = 0; self->differing[k]; k++) {
    grid_label (self->params_grid, 0, k + 1, self->differing[k], FALSE);
    for (guint i = 0; i < n; i++) {
      const char *v = g_hash_table_lookup (g_ptr_array_index (configs, i), self->differing[k]);
      grid_label (self->params_grid, i + 1, k + 1, v ? v : "–", FALSE);
    }
  }
  if (!self->differing[0])
    grid_label (self->params_grid, 0, 1, _("The runs have the same hyper-parameters."), FALSE);

  const char *final_names[] = {N_("Best validation accuracy"), N_("Final validation accuracy"),
                               N_("Final validation loss"), N_("Final training loss"),
                               N_("Test accuracy"), N_("Epochs"), N_("Duration")};
  for (guint r = 0; r < G_N_ELEMENTS (final_names); r++) {
    grid_label (self->finals_grid, 0, r + 1, _(final_names[r]), FALSE);
    for (guint i = 0; i < n; i++) {
      const BpRun *run = g_ptr_array_index (runs, i);
      GArray *p = g_ptr_array_index (points, i);
      g_autofree char *text = NULL;
      switch (r) {
      case 0: text = score_text (run->best_val_accuracy, run->best_val_r2); break;
      case 1:
        text = score_text (last_value (p, BP_SPLIT_VAL, BP_METRIC_ACCURACY),
                           last_value (p, BP_SPLIT_VAL, BP_METRIC_R2));
        break;
      case 2: text = value_text (last_value (p, BP_SPLIT_VAL, BP_METRIC_LOSS)); break;
      case 3: text = value_text (last_value (p, BP_SPLIT_TRAIN, "epoch_loss")); break;
      case 4: text = score_text (run->last_test_accuracy, run->last_test_r2); break;
      case 5: text = g_strdup_printf ("%" G_GINT64_FORMAT, MAX (run->last_epoch, 0)); break;
      default: text = duration_text (run_seconds (run)); break;
      }
      grid_label (self->finals_grid, i + 1, r + 1, text, FALSE);
    }
  }
}

gboolean
bp_experiments_page_compare (BpExperimentsPage *self)
{
  g_return_val_if_fail (BP_IS_EXPERIMENTS_PAGE (self), FALSE);
  if (!ensure_store (self))
    return FALSE;
  g_array_set_size (self->compare_ids, 0);
  /* in the order shown */
  for (guint i = 0; i < self->shown->len; i++) {
    gint64 id = g_array_index (self->shown, gint64, i);
    if (g_hash_table_contains (self->selected, &id))
      g_array_append_val (self->compare_ids, id);
  }
  if (self->compare_ids->len < 2)
    return FALSE;
  load_comparison (self);
  if (!self->store)
    return FALSE;
  gtk_stack_set_visible_child_name (self->stack, "compare");
  return TRUE;
}

gboolean
bp_experiments_page_export_comparison (BpExperimentsPage *self, const char *png_path,
                                       const char *csv_path, GError **error)
{
  g_return_val_if_fail (BP_IS_EXPERIMENTS_PAGE (self), FALSE);
  if (png_path && !bp_plot_export_png (self->compare_plot, png_path, 1000, 600, error))
    return FALSE;
  return !csv_path || bp_plot_export_csv (self->compare_plot, csv_path, error);
}

/* ---- the list ---- */

static gboolean
run_matches (BpExperimentsPage *self, const BpRun *run)
{
  if (run->id == self->pending_delete)
    return FALSE;
  guint status = gtk_drop_down_get_selected (self->status_drop);
  if (status > 0 && status != GTK_INVALID_LIST_POSITION && run->status != (BpRunStatus) (status - 1))
    return FALSE;
  const char *text = gtk_editable_get_text (GTK_EDITABLE (self->search));
  if (!text || !*text)
    return TRUE;
  g_autofree char *needle = g_utf8_casefold (text, -1);
  g_autofree char *name = g_utf8_casefold (run->name, -1);
  if (strstr (name, needle))
    return TRUE;
  for (int k = 0; run->tags && run->tags[k]; k++) {
    g_autofree char *tag = g_utf8_casefold (run->tags[k], -1);
    if (strstr (tag, needle))
      return TRUE;
  }
  return FALSE;
}

static guint sort_key;

static int
compare_runs (gconstpointer a, gconstpointer b)
{
  const BpRun *x = *(BpRun *const *) a, *y = *(BpRun *const *) b;
  switch (sort_key) {
  case 1: return (x->created_us > y->created_us) - (x->created_us < y->created_us);
  case 2: {
    g_autofree char *kx = g_utf8_collate_key (x->name, -1);
    g_autofree char *ky = g_utf8_collate_key (y->name, -1);
    return strcmp (kx, ky);
  }
  case 3: {
    double ax = isnan (x->best_val_accuracy) ? -1 : x->best_val_accuracy;
    double ay = isnan (y->best_val_accuracy) ? -1 : y->best_val_accuracy;
    return (ax < ay) - (ax > ay);
  }
  default: return (x->created_us < y->created_us) - (x->created_us > y->created_us);
  }
}

static void
check_toggled (GtkCheckButton *check, BpExperimentsPage *self)
{
  gint64 id = GPOINTER_TO_SIZE (g_object_get_data (G_OBJECT (check), "run-id"));
  bp_experiments_page_set_selected (self, id, gtk_check_button_get_active (check));
}

static GtkWidget *
cell (GtkWidget *box, const char *text, int chars, gboolean expand)
{
  GtkWidget *label = gtk_label_new (text);
  gtk_label_set_xalign (GTK_LABEL (label), 0);
  gtk_label_set_ellipsize (GTK_LABEL (label), PANGO_ELLIPSIZE_END);
  gtk_label_set_width_chars (GTK_LABEL (label), chars);
  gtk_label_set_max_width_chars (GTK_LABEL (label), chars);
  gtk_widget_set_hexpand (label, expand);
  gtk_box_append (GTK_BOX (box), label);
  return label;
}

static GtkWidget *
header_row (void)
{
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 12);
  gtk_widget_set_margin_start (box, 12 + 16 + 12);
  gtk_widget_set_margin_end (box, 12);
  const char *titles[] = {N_("Name"), N_("Model"), N_("Data set"), N_("Status"),
                          N_("Best val. accuracy"), N_("Duration"), N_("Date")};
  const int chars[] = {20, 14, 14, 11, 12, 11, 16};
  for (guint i = 0; i < G_N_ELEMENTS (titles); i++)
    gtk_widget_add_css_class (cell (box, _(titles[i]), chars[i], i == 0), "heading");
  return box;
}

static GtkWidget *
run_row (BpExperimentsPage *self, const BpRun *run)
{
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 12);
  gtk_widget_set_margin_start (box, 12);
  gtk_widget_set_margin_end (box, 12);
  gtk_widget_set_margin_top (box, 6);
  gtk_widget_set_margin_bottom (box, 6);
  GtkWidget *check = gtk_check_button_new ();
  gtk_check_button_set_active (GTK_CHECK_BUTTON (check),
                               g_hash_table_contains (self->selected, &run->id));
  gtk_widget_set_tooltip_text (check, _("Select to compare"));
  g_object_set_data (G_OBJECT (check), "run-id", GSIZE_TO_POINTER ((gsize) run->id));
  g_signal_connect (check, "toggled", G_CALLBACK (check_toggled), self);
  gtk_box_append (GTK_BOX (box), check);

  g_autofree char *best = score_text (run->best_val_accuracy, run->best_val_r2);
  g_autofree char *duration = duration_text (run_seconds (run));
  g_autofree char *date = date_text (run->created_us);
  GtkWidget *name = cell (box, run->name, 20, TRUE);
  gtk_widget_add_css_class (name, "heading");
  if (run->tags && run->tags[0]) {
    g_autofree char *tags = g_strjoinv (", ", run->tags);
    gtk_widget_set_tooltip_text (name, tags);
  }
  cell (box, run->model_name ? run->model_name : "–", 14, FALSE);
  cell (box, run->dataset ? run->dataset : "–", 14, FALSE);
  GtkWidget *status = cell (box, status_text (run->status), 11, FALSE);
  if (run->status == BP_RUN_FAILED || run->status == BP_RUN_INTERRUPTED) {
    gtk_widget_add_css_class (status, "error");
    gtk_widget_set_tooltip_text (status, run->status_reason);
  } else if (run->status == BP_RUN_RUNNING) {
    gtk_widget_add_css_class (status, "accent");
  }
  cell (box, best, 12, FALSE);
  cell (box, duration, 11, FALSE);
  cell (box, date, 16, FALSE);

  GtkWidget *row = gtk_list_box_row_new ();
  gtk_list_box_row_set_child (GTK_LIST_BOX_ROW (row), box);
  g_object_set_data (G_OBJECT (row), "run-id", GSIZE_TO_POINTER ((gsize) run->id));
  return row;
}

static void
update_compare_button (BpExperimentsPage *self)
{
  guint n = 0;
  for (guint i = 0; i < self->shown->len; i++)
    n += g_hash_table_contains (self->selected, &g_array_index (self->shown, gint64, i));
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "experiments.compare", n >= 2);
}

static void
rebuild_list (BpExperimentsPage *self)
{
  GtkWidget *child;
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self->list))))
    gtk_list_box_remove (self->list, child);
  g_array_set_size (self->shown, 0);
  if (!self->runs)
    return;
  g_autoptr (GPtrArray) rows = g_ptr_array_new ();
  for (guint i = 0; i < self->runs->len; i++)
    if (run_matches (self, g_ptr_array_index (self->runs, i)))
      g_ptr_array_add (rows, g_ptr_array_index (self->runs, i));
  sort_key = gtk_drop_down_get_selected (self->sort_drop);
  g_ptr_array_sort (rows, compare_runs);
  for (guint i = 0; i < rows->len; i++) {
    const BpRun *run = g_ptr_array_index (rows, i);
    g_array_append_val (self->shown, run->id);
    gtk_list_box_append (self->list, run_row (self, run));
  }
  guint total = self->runs->len - (find_run (self, self->pending_delete) ? 1 : 0);
  g_autofree char *count = g_strdup_printf (ngettext ("%u of %u run", "%u of %u runs", total),
                                            rows->len, total);
  gtk_label_set_text (self->count_label, count);
  update_compare_button (self);
}

gboolean
bp_experiments_page_refresh (BpExperimentsPage *self)
{
  g_return_val_if_fail (BP_IS_EXPERIMENTS_PAGE (self), FALSE);
  if (!ensure_store (self))
    return FALSE;
  g_autoptr (GError) error = NULL;
  GPtrArray *runs = bp_store_list_runs (self->store, &error);
  if (!runs) {
    store_failed (self, error);
    return FALSE;
  }
  g_clear_pointer (&self->runs, g_ptr_array_unref);
  self->runs = runs;
  g_autofree char *signature = runs_signature (runs);
  gboolean was_error = self->error != NULL;
  g_clear_pointer (&self->error, g_free);
  if (was_error)
    gtk_stack_set_visible_child_name (self->stack, "list");
  if (was_error || g_strcmp0 (signature, self->signature) != 0) {
    g_free (self->signature);
    self->signature = g_steal_pointer (&signature);
    rebuild_list (self);
  }
  /* a live run shown: follow it */
  const char *view = gtk_stack_get_visible_child_name (self->stack);
  const BpRun *open = find_run (self, self->open_id);
  if (g_strcmp0 (view, "run") == 0) {
    if (!open)
      gtk_stack_set_visible_child_name (self->stack, "list");
    else if (open->last_step * 8 + open->status != self->open_signature)
      load_run (self);
  }
  return self->store != NULL;
}

static gboolean
poll_cb (gpointer data)
{
  BpExperimentsPage *self = data;
  if (gtk_widget_get_mapped (GTK_WIDGET (self)))
    bp_experiments_page_refresh (self);
  return G_SOURCE_CONTINUE;
}

const char *
bp_experiments_page_get_error (BpExperimentsPage *self)
{
  return self->error;
}

GArray *
bp_experiments_page_get_shown_runs (BpExperimentsPage *self)
{
  return self->shown;
}

void
bp_experiments_page_set_search (BpExperimentsPage *self, const char *text)
{
  gtk_editable_set_text (GTK_EDITABLE (self->search), text);
  rebuild_list (self); /* at once, not after the entry's delay */
}

void
bp_experiments_page_set_selected (BpExperimentsPage *self, gint64 run_id, gboolean selected)
{
  if (selected)
    g_hash_table_add (self->selected, g_memdup2 (&run_id, sizeof run_id));
  else
    g_hash_table_remove (self->selected, &run_id);
  for (GtkWidget *row = gtk_widget_get_first_child (GTK_WIDGET (self->list)); row;
       row = gtk_widget_get_next_sibling (row)) {
    if ((gint64) GPOINTER_TO_SIZE (g_object_get_data (G_OBJECT (row), "run-id")) != run_id)
      continue;
    GtkWidget *box = gtk_list_box_row_get_child (GTK_LIST_BOX_ROW (row));
    GtkCheckButton *check = GTK_CHECK_BUTTON (gtk_widget_get_first_child (box));
    if (gtk_check_button_get_active (check) != selected)
      gtk_check_button_set_active (check, selected);
  }
  update_compare_button (self);
}

const char *
bp_experiments_page_get_view (BpExperimentsPage *self)
{
  return gtk_stack_get_visible_child_name (self->stack);
}

BpPlot *
bp_experiments_page_get_run_plot (BpExperimentsPage *self, gboolean accuracy)
{
  return accuracy ? self->accuracy_plot : self->loss_plot;
}

BpPlot *
bp_experiments_page_get_compare_plot (BpExperimentsPage *self)
{
  return self->compare_plot;
}

char **
bp_experiments_page_get_differing_params (BpExperimentsPage *self)
{
  return g_strdupv (self->differing);
}

AdwToast *
bp_experiments_page_get_toast (BpExperimentsPage *self)
{
  return self->toast;
}

/* ---- delete with Undo ---- */

static void
commit_delete (BpExperimentsPage *self)
{
  gint64 id = self->pending_delete;
  self->pending_delete = 0;
  g_autoptr (GError) error = NULL;
  if (id && self->store && !bp_store_delete_run (self->store, id, &error))
    adw_toast_overlay_add_toast (self->overlay, adw_toast_new (error->message));
}

static void
toast_dismissed (AdwToast *toast, BpExperimentsPage *self)
{
  if (toast != self->toast)
    return;
  self->toast = NULL;
  commit_delete (self);
  bp_experiments_page_refresh (self);
}

void
bp_experiments_page_delete_run (BpExperimentsPage *self, gint64 run_id)
{
  const BpRun *run = find_run (self, run_id);
  if (!run || run_id == self->pending_delete)
    return;
  if (self->toast)
    adw_toast_dismiss (self->toast); /* deletes the run before */
  self->pending_delete = run_id;
  g_hash_table_remove (self->selected, &run_id);
  if (self->open_id == run_id)
    gtk_stack_set_visible_child_name (self->stack, "list");
  self->toast = adw_toast_new_format (_("“%s” deleted"), run->name);
  adw_toast_set_button_label (self->toast, _("Undo"));
  adw_toast_set_action_name (self->toast, "experiments.undo");
  adw_toast_set_timeout (self->toast, 8);
  g_signal_connect (self->toast, "dismissed", G_CALLBACK (toast_dismissed), self);
  adw_toast_overlay_add_toast (self->overlay, self->toast);
  rebuild_list (self);
}

/* ---- actions ---- */

static void
undo_action (GtkWidget *widget, const char *name, GVariant *param)
{
  BpExperimentsPage *self = BP_EXPERIMENTS_PAGE (widget);
  AdwToast *toast = self->toast;
  self->pending_delete = 0;
  self->toast = NULL;
  if (toast)
    adw_toast_dismiss (toast);
  rebuild_list (self);
}

static void
delete_action (GtkWidget *widget, const char *name, GVariant *param)
{
  BpExperimentsPage *self = BP_EXPERIMENTS_PAGE (widget);
  bp_experiments_page_delete_run (self, self->open_id);
}

static void
compare_action (GtkWidget *widget, const char *name, GVariant *param)
{
  bp_experiments_page_compare (BP_EXPERIMENTS_PAGE (widget));
}

static void
back_action (GtkWidget *widget, const char *name, GVariant *param)
{
  BpExperimentsPage *self = BP_EXPERIMENTS_PAGE (widget);
  gtk_stack_set_visible_child_name (self->stack, "list");
  bp_experiments_page_refresh (self);
}

static void
report (BpExperimentsPage *self, const GError *error)
{
  if (error)
    adw_toast_overlay_add_toast (self->overlay, adw_toast_new (error->message));
}

static void
rename_action (GtkWidget *widget, const char *name, GVariant *param)
{
  BpExperimentsPage *self = BP_EXPERIMENTS_PAGE (widget);
  g_autoptr (GError) error = NULL;
  const char *text = gtk_editable_get_text (GTK_EDITABLE (self->name_entry));
  if (self->store && !bp_store_rename_run (self->store, self->open_id, text, &error))
    report (self, error);
  bp_experiments_page_refresh (self);
}

/* ---- continue training ---- */

int
bp_experiments_page_continue_epochs (BpExperimentsPage *self, gint64 run_id)
{
  g_return_val_if_fail (BP_IS_EXPERIMENTS_PAGE (self), 0);
  if (!ensure_store (self))
    return 0;
  g_autoptr (BpRun) run = bp_store_get_run (self->store, run_id, NULL);
  if (!run)
    return 0;
  g_autoptr (GHashTable) values = config_values (run->config_json);
  const char *text = g_hash_table_lookup (values, "epochs");
  gint64 epochs = text ? g_ascii_strtoll (text, NULL, 10) : 0;
  /* an unfinished run goes on to its epochs; a finished one gets five more */
  return (int) (run->last_epoch < epochs ? epochs : MAX (run->last_epoch, 0) + 5);
}

gboolean
bp_experiments_page_continue_run (BpExperimentsPage *self, gint64 run_id, int epochs,
                                  GError **error)
{
  g_return_val_if_fail (BP_IS_EXPERIMENTS_PAGE (self), FALSE);
  GtkWidget *window = gtk_widget_get_ancestor (GTK_WIDGET (self), BP_TYPE_WINDOW);
  GtkWidget *train = window ? bp_window_get_page (BP_WINDOW (window), "train") : NULL;
  if (!train) {
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, _("There is no Train page."));
    return FALSE;
  }
  if (!bp_train_page_continue_run (BP_TRAIN_PAGE (train), run_id, epochs, error))
    return FALSE;
  bp_window_set_place (BP_WINDOW (window), "train");
  return TRUE;
}

static void
continue_response (AdwMessageDialog *dialog, const char *response, BpExperimentsPage *self)
{
  if (g_str_equal (response, "continue")) {
    GtkSpinButton *spin = GTK_SPIN_BUTTON (adw_message_dialog_get_extra_child (dialog));
    g_autoptr (GError) error = NULL;
    if (!bp_experiments_page_continue_run (self, self->open_id,
                                           gtk_spin_button_get_value_as_int (spin), &error))
      report (self, error);
  }
  g_object_unref (self);
}

static void
continue_action (GtkWidget *widget, const char *name, GVariant *param)
{
  BpExperimentsPage *self = BP_EXPERIMENTS_PAGE (widget);
  int epochs = bp_experiments_page_continue_epochs (self, self->open_id);
  const BpRun *run = find_run (self, self->open_id);
  if (epochs <= 0 || !run)
    return;
  GtkWidget *dialog = adw_message_dialog_new (
    GTK_WINDOW (gtk_widget_get_root (widget)), _("Continue Training"),
    _("The run goes on from its newest checkpoint with its own settings, until it has trained "
      "this many epochs in all."));
  /* only more epochs than it has trained */
  GtkWidget *spin = gtk_spin_button_new_with_range (MAX (run->last_epoch, 0) + 1, 10000, 1);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (spin), epochs);
  gtk_widget_set_halign (spin, GTK_ALIGN_CENTER);
  gtk_accessible_update_property (GTK_ACCESSIBLE (spin), GTK_ACCESSIBLE_PROPERTY_LABEL,
                                  _("Epochs in all"), -1);
  adw_message_dialog_set_extra_child (ADW_MESSAGE_DIALOG (dialog), spin);
  adw_message_dialog_add_responses (ADW_MESSAGE_DIALOG (dialog), "cancel", _("_Cancel"),
                                    "continue", _("C_ontinue"), NULL);
  adw_message_dialog_set_response_appearance (ADW_MESSAGE_DIALOG (dialog), "continue",
                                              ADW_RESPONSE_SUGGESTED);
  adw_message_dialog_set_default_response (ADW_MESSAGE_DIALOG (dialog), "continue");
  g_signal_connect (dialog, "response", G_CALLBACK (continue_response), g_object_ref (self));
  gtk_window_present (GTK_WINDOW (dialog));
}

static void
save_note_action (GtkWidget *widget, const char *name, GVariant *param)
{
  BpExperimentsPage *self = BP_EXPERIMENTS_PAGE (widget);
  g_autoptr (GError) error = NULL;
  GtkTextBuffer *buffer = gtk_text_view_get_buffer (self->note_view);
  GtkTextIter a, b;
  gtk_text_buffer_get_bounds (buffer, &a, &b);
  g_autofree char *note = gtk_text_buffer_get_text (buffer, &a, &b, FALSE);
  if (self->store && !bp_store_set_note (self->store, self->open_id, note, &error))
    report (self, error);
  else
    adw_toast_overlay_add_toast (self->overlay, adw_toast_new (_("Note saved")));
}

static void
save_tags_action (GtkWidget *widget, const char *name, GVariant *param)
{
  BpExperimentsPage *self = BP_EXPERIMENTS_PAGE (widget);
  g_autoptr (GError) error = NULL;
  if (!self->store)
    return;
  g_auto (GStrv) old = bp_store_list_tags (self->store, self->open_id, &error);
  g_auto (GStrv) parts = g_strsplit (gtk_editable_get_text (GTK_EDITABLE (self->tags_entry)),
                                     ",", -1);
  for (int k = 0; parts[k]; k++)
    g_strstrip (parts[k]);
  for (int k = 0; old && old[k] && !error; k++)
    if (!g_strv_contains ((const char *const *) parts, old[k]))
      bp_store_remove_tag (self->store, self->open_id, old[k], &error);
  for (int k = 0; parts[k] && !error; k++)
    if (*parts[k])
      bp_store_add_tag (self->store, self->open_id, parts[k], &error);
  report (self, error);
  bp_experiments_page_refresh (self);
}

static void
export_response (GtkNativeDialog *dialog, int response, BpExperimentsPage *self)
{
  if (response == GTK_RESPONSE_ACCEPT) {
    g_autoptr (GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
    g_autofree char *path = g_file_get_path (file);
    gboolean csv = GPOINTER_TO_INT (g_object_get_data (G_OBJECT (dialog), "csv"));
    g_autoptr (GError) error = NULL;
    if (!bp_experiments_page_export_comparison (self, csv ? NULL : path, csv ? path : NULL,
                                                &error))
      report (self, error);
  }
  g_object_unref (dialog);
}

static void
export_action (GtkWidget *widget, const char *name, GVariant *param)
{
  BpExperimentsPage *self = BP_EXPERIMENTS_PAGE (widget);
  gboolean csv = g_str_equal (g_variant_get_string (param, NULL), "csv");
  GtkRoot *root = gtk_widget_get_root (widget);
  GtkFileChooserNative *dialog = gtk_file_chooser_native_new (
    csv ? _("Export the comparison as CSV") : _("Export the comparison as PNG"),
    GTK_IS_WINDOW (root) ? GTK_WINDOW (root) : NULL, GTK_FILE_CHOOSER_ACTION_SAVE, _("_Export"),
    NULL);
  gtk_file_chooser_set_current_name (GTK_FILE_CHOOSER (dialog),
                                     csv ? "comparison.csv" : "comparison.png");
  g_object_set_data (G_OBJECT (dialog), "csv", GINT_TO_POINTER (csv));
  g_signal_connect (dialog, "response", G_CALLBACK (export_response), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (dialog));
}

/* ---- construction ---- */

static void
row_activated (GtkListBox *list, GtkListBoxRow *row, BpExperimentsPage *self)
{
  bp_experiments_page_open_run (self, GPOINTER_TO_SIZE (g_object_get_data (G_OBJECT (row),
                                                                           "run-id")));
}

static void
list_changed (BpExperimentsPage *self)
{
  rebuild_list (self);
}

static void
metric_changed (BpExperimentsPage *self)
{
  if (self->store && self->compare_ids->len >= 2)
    load_comparison (self);
}

static GtkWidget *
button (const char *label, const char *action, const char *target)
{
  GtkWidget *b = gtk_button_new_with_mnemonic (label);
  gtk_actionable_set_action_name (GTK_ACTIONABLE (b), action);
  if (target)
    gtk_actionable_set_action_target (GTK_ACTIONABLE (b), "s", target);
  return b;
}

static GtkWidget *
section (const char *title, GtkWidget *child)
{
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
  GtkWidget *label = gtk_label_new (title);
  gtk_label_set_xalign (GTK_LABEL (label), 0);
  gtk_widget_add_css_class (label, "heading");
  gtk_box_append (GTK_BOX (box), label);
  gtk_box_append (GTK_BOX (box), child);
  return box;
}

static GtkWidget *
detail_label (void)
{
  GtkWidget *label = gtk_label_new (NULL);
  gtk_label_set_xalign (GTK_LABEL (label), 0);
  gtk_label_set_yalign (GTK_LABEL (label), 0);
  gtk_label_set_selectable (GTK_LABEL (label), TRUE);
  gtk_label_set_wrap (GTK_LABEL (label), TRUE);
  return label;
}

static GtkWidget *
new_plot (BpPlot **out, const char *title, const char *y)
{
  GtkWidget *plot = bp_plot_new ();
  bp_plot_set_title (BP_PLOT (plot), title);
  bp_plot_set_axis_labels (BP_PLOT (plot), _("Step"), y);
  gtk_widget_set_size_request (plot, 360, 260);
  gtk_widget_set_hexpand (plot, TRUE);
  *out = BP_PLOT (plot);
  return plot;
}

static GtkWidget *
build_list_view (BpExperimentsPage *self)
{
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 12);
  GtkWidget *bar = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 8);
  self->search = GTK_SEARCH_ENTRY (gtk_search_entry_new ());
  g_object_set (self->search, "placeholder-text", _("Search by name or tag"), NULL);
  gtk_widget_set_hexpand (GTK_WIDGET (self->search), TRUE);
  g_signal_connect_swapped (self->search, "search-changed", G_CALLBACK (list_changed), self);
  const char *sorts[] = {_("Newest first"), _("Oldest first"), _("Name"),
                         _("Best validation accuracy"), NULL};
  self->sort_drop = GTK_DROP_DOWN (gtk_drop_down_new_from_strings (sorts));
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->sort_drop), _("Sort"));
  g_signal_connect_swapped (self->sort_drop, "notify::selected", G_CALLBACK (list_changed), self);
  const char *statuses[] = {_("All runs"), _("Running"), _("Finished"), _("Stopped"),
                            _("Failed"), _("Interrupted"), NULL};
  self->status_drop = GTK_DROP_DOWN (gtk_drop_down_new_from_strings (statuses));
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->status_drop), _("Filter by status"));
  g_signal_connect_swapped (self->status_drop, "notify::selected", G_CALLBACK (list_changed),
                            self);
  GtkWidget *compare = button (_("_Compare Selected"), "experiments.compare", NULL);
  gtk_widget_add_css_class (compare, "suggested-action");
  gtk_box_append (GTK_BOX (bar), GTK_WIDGET (self->search));
  gtk_box_append (GTK_BOX (bar), GTK_WIDGET (self->sort_drop));
  gtk_box_append (GTK_BOX (bar), GTK_WIDGET (self->status_drop));
  gtk_box_append (GTK_BOX (bar), compare);
  gtk_box_append (GTK_BOX (box), bar);

  gtk_box_append (GTK_BOX (box), header_row ());
  self->list = GTK_LIST_BOX (gtk_list_box_new ());
  gtk_list_box_set_selection_mode (self->list, GTK_SELECTION_NONE);
  gtk_widget_add_css_class (GTK_WIDGET (self->list), "boxed-list");
  GtkWidget *empty = gtk_label_new (_("No runs yet: start one on the Train page."));
  gtk_widget_add_css_class (empty, "dim-label");
  gtk_widget_set_margin_top (empty, 24);
  gtk_widget_set_margin_bottom (empty, 24);
  gtk_list_box_set_placeholder (self->list, empty);
  g_signal_connect (self->list, "row-activated", G_CALLBACK (row_activated), self);
  GtkWidget *scroll = gtk_scrolled_window_new ();
  gtk_scrolled_window_set_child (GTK_SCROLLED_WINDOW (scroll), GTK_WIDGET (self->list));
  gtk_scrolled_window_set_policy (GTK_SCROLLED_WINDOW (scroll), GTK_POLICY_NEVER,
                                  GTK_POLICY_AUTOMATIC);
  gtk_widget_set_vexpand (scroll, TRUE);
  gtk_box_append (GTK_BOX (box), scroll);
  self->count_label = GTK_LABEL (gtk_label_new (NULL));
  gtk_label_set_xalign (self->count_label, 0);
  gtk_widget_add_css_class (GTK_WIDGET (self->count_label), "dim-label");
  gtk_box_append (GTK_BOX (box), GTK_WIDGET (self->count_label));
  return box;
}

static void
name_activated (BpExperimentsPage *self)
{
  rename_action (GTK_WIDGET (self), NULL, NULL);
}

static void
tags_activated (BpExperimentsPage *self)
{
  save_tags_action (GTK_WIDGET (self), NULL, NULL);
}

static GtkWidget *
build_run_view (BpExperimentsPage *self)
{
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 12);
  GtkWidget *bar = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 8);
  GtkWidget *back = button (NULL, "experiments.back", NULL);
  gtk_button_set_icon_name (GTK_BUTTON (back), "go-previous-symbolic");
  gtk_widget_set_tooltip_text (back, _("Back to the runs"));
  self->name_entry = GTK_ENTRY (gtk_entry_new ());
  gtk_widget_set_hexpand (GTK_WIDGET (self->name_entry), TRUE);
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->name_entry), _("Name (Enter renames the run)"));
  gtk_widget_add_css_class (GTK_WIDGET (self->name_entry), "title-4");
  g_signal_connect_swapped (self->name_entry, "activate", G_CALLBACK (name_activated), self);
  GtkWidget *rename = button (_("_Rename"), "experiments.rename", NULL);
  GtkWidget *resume = button (_("Continue _Training…"), "experiments.continue", NULL);
  gtk_widget_set_tooltip_text (resume, _("Train this run further from its newest checkpoint"));
  GtkWidget *del = button (_("_Delete"), "experiments.delete", NULL);
  gtk_widget_add_css_class (del, "destructive-action");
  gtk_box_append (GTK_BOX (bar), back);
  gtk_box_append (GTK_BOX (bar), GTK_WIDGET (self->name_entry));
  gtk_box_append (GTK_BOX (bar), rename);
  gtk_box_append (GTK_BOX (bar), resume);
  gtk_box_append (GTK_BOX (bar), del);
  gtk_box_append (GTK_BOX (box), bar);

  GtkWidget *plots = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 12);
  gtk_box_append (GTK_BOX (plots), new_plot (&self->loss_plot, _("Loss"), _("Loss")));
  gtk_box_append (GTK_BOX (plots), new_plot (&self->accuracy_plot, _("Accuracy"),
                                             _("Accuracy")));
  gtk_box_append (GTK_BOX (box), plots);

  GtkWidget *details = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 24);
  GtkWidget *left = gtk_box_new (GTK_ORIENTATION_VERTICAL, 12);
  self->info_label = GTK_LABEL (detail_label ());
  gtk_box_append (GTK_BOX (left), section (_("Run"), GTK_WIDGET (self->info_label)));
  self->checkpoints_label = GTK_LABEL (detail_label ());
  gtk_box_append (GTK_BOX (left), section (_("Checkpoints"),
                                           GTK_WIDGET (self->checkpoints_label)));
  self->tags_entry = GTK_ENTRY (gtk_entry_new ());
  gtk_entry_set_placeholder_text (self->tags_entry, _("Tags, separated by commas"));
  g_signal_connect_swapped (self->tags_entry, "activate", G_CALLBACK (tags_activated), self);
  gtk_box_append (GTK_BOX (left), section (_("Tags"), GTK_WIDGET (self->tags_entry)));
  self->note_view = GTK_TEXT_VIEW (gtk_text_view_new ());
  gtk_text_view_set_wrap_mode (self->note_view, GTK_WRAP_WORD_CHAR);
  gtk_widget_set_size_request (GTK_WIDGET (self->note_view), -1, 80);
  gtk_widget_add_css_class (GTK_WIDGET (self->note_view), "card");
  GtkWidget *note_box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
  gtk_box_append (GTK_BOX (note_box), GTK_WIDGET (self->note_view));
  GtkWidget *save = button (_("_Save Note"), "experiments.save-note", NULL);
  gtk_widget_set_halign (save, GTK_ALIGN_START);
  gtk_box_append (GTK_BOX (note_box), save);
  gtk_box_append (GTK_BOX (left), section (_("Note"), note_box));
  gtk_widget_set_hexpand (left, TRUE);
  gtk_box_append (GTK_BOX (details), left);
  self->config_label = GTK_LABEL (detail_label ());
  gtk_widget_add_css_class (GTK_WIDGET (self->config_label), "monospace");
  gtk_widget_set_hexpand (GTK_WIDGET (self->config_label), TRUE);
  gtk_box_append (GTK_BOX (details), section (_("Configuration"),
                                              GTK_WIDGET (self->config_label)));
  gtk_box_append (GTK_BOX (box), details);

  GtkWidget *scroll = gtk_scrolled_window_new ();
  gtk_scrolled_window_set_child (GTK_SCROLLED_WINDOW (scroll), box);
  gtk_scrolled_window_set_policy (GTK_SCROLLED_WINDOW (scroll), GTK_POLICY_NEVER,
                                  GTK_POLICY_AUTOMATIC);
  return scroll;
}

static GtkWidget *
build_compare_view (BpExperimentsPage *self)
{
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 12);
  GtkWidget *bar = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 8);
  GtkWidget *back = button (NULL, "experiments.back", NULL);
  gtk_button_set_icon_name (GTK_BUTTON (back), "go-previous-symbolic");
  gtk_widget_set_tooltip_text (back, _("Back to the runs"));
  GtkWidget *title = gtk_label_new (_("Comparison"));
  gtk_widget_add_css_class (title, "title-4");
  gtk_label_set_xalign (GTK_LABEL (title), 0);
  gtk_widget_set_hexpand (title, TRUE);
  const char *names[G_N_ELEMENTS (metrics) + 1] = {NULL};
  for (guint i = 0; i < G_N_ELEMENTS (metrics); i++)
    names[i] = _(metrics[i].title);
  self->metric_drop = GTK_DROP_DOWN (gtk_drop_down_new_from_strings (names));
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->metric_drop), _("Metric"));
  g_signal_connect_swapped (self->metric_drop, "notify::selected", G_CALLBACK (metric_changed),
                            self);
  gtk_box_append (GTK_BOX (bar), back);
  gtk_box_append (GTK_BOX (bar), title);
  gtk_box_append (GTK_BOX (bar), GTK_WIDGET (self->metric_drop));
  gtk_box_append (GTK_BOX (bar), button (_("Export _PNG…"), "experiments.export", "png"));
  gtk_box_append (GTK_BOX (bar), button (_("Export C_SV…"), "experiments.export", "csv"));
  gtk_box_append (GTK_BOX (box), bar);
  GtkWidget *plot = new_plot (&self->compare_plot, NULL, NULL);
  gtk_widget_set_size_request (plot, 480, 320);
  gtk_box_append (GTK_BOX (box), plot);
  GtkWidget *tables = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 36);
  self->params_grid = GTK_GRID (gtk_grid_new ());
  self->finals_grid = GTK_GRID (gtk_grid_new ());
  for (int i = 0; i < 2; i++) {
    GtkGrid *grid = i ? self->finals_grid : self->params_grid;
    gtk_grid_set_column_spacing (grid, 18);
    gtk_grid_set_row_spacing (grid, 4);
  }
  gtk_box_append (GTK_BOX (tables), section (_("Hyper-parameters that differ"),
                                             GTK_WIDGET (self->params_grid)));
  gtk_box_append (GTK_BOX (tables), section (_("Final metrics"),
                                             GTK_WIDGET (self->finals_grid)));
  gtk_box_append (GTK_BOX (box), tables);
  GtkWidget *scroll = gtk_scrolled_window_new ();
  gtk_scrolled_window_set_child (GTK_SCROLLED_WINDOW (scroll), box);
  gtk_scrolled_window_set_policy (GTK_SCROLLED_WINDOW (scroll), GTK_POLICY_NEVER,
                                  GTK_POLICY_AUTOMATIC);
  return scroll;
}

static void
bp_experiments_page_init (BpExperimentsPage *self)
{
  self->path = bp_lab_store_path ();
  self->selected = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  self->shown = g_array_new (FALSE, FALSE, sizeof (gint64));
  self->compare_ids = g_array_new (FALSE, FALSE, sizeof (gint64));
  self->differing = g_new0 (char *, 1);

  self->stack = GTK_STACK (gtk_stack_new ());
  gtk_stack_set_transition_type (self->stack, GTK_STACK_TRANSITION_TYPE_CROSSFADE);
  GtkWidget *views[] = {build_list_view (self), build_run_view (self),
                        build_compare_view (self)};
  const char *view_names[] = {"list", "run", "compare"};
  for (int i = 0; i < 3; i++) {
    gtk_widget_set_margin_start (views[i], 18);
    gtk_widget_set_margin_end (views[i], 18);
    gtk_widget_set_margin_top (views[i], 18);
    gtk_widget_set_margin_bottom (views[i], 18);
    gtk_stack_add_named (self->stack, views[i], view_names[i]);
  }
  self->error_page = ADW_STATUS_PAGE (adw_status_page_new ());
  adw_status_page_set_icon_name (self->error_page, "dialog-warning-symbolic");
  adw_status_page_set_title (self->error_page, _("The experiment database cannot be read"));
  gtk_stack_add_named (self->stack, GTK_WIDGET (self->error_page), "error");
  gtk_stack_set_visible_child_name (self->stack, "list");

  self->overlay = ADW_TOAST_OVERLAY (adw_toast_overlay_new ());
  adw_toast_overlay_set_child (self->overlay, GTK_WIDGET (self->stack));
  gtk_widget_set_parent (GTK_WIDGET (self->overlay), GTK_WIDGET (self));

  gtk_widget_action_set_enabled (GTK_WIDGET (self), "experiments.compare", FALSE);
  self->timer = g_timeout_add_seconds (1, poll_cb, self);
  g_signal_connect (self, "map", G_CALLBACK (bp_experiments_page_refresh), NULL);
}

static void
bp_experiments_page_dispose (GObject *object)
{
  BpExperimentsPage *self = BP_EXPERIMENTS_PAGE (object);
  g_clear_handle_id (&self->timer, g_source_remove);
  if (self->toast) {
    g_signal_handlers_disconnect_by_data (self->toast, self);
    self->toast = NULL;
    commit_delete (self);
  }
  g_clear_pointer ((GtkWidget **) &self->overlay, gtk_widget_unparent);
  G_OBJECT_CLASS (bp_experiments_page_parent_class)->dispose (object);
}

static void
bp_experiments_page_finalize (GObject *object)
{
  BpExperimentsPage *self = BP_EXPERIMENTS_PAGE (object);
  g_clear_pointer (&self->store, bp_store_close);
  g_clear_pointer (&self->runs, g_ptr_array_unref);
  g_hash_table_unref (self->selected);
  g_array_unref (self->shown);
  g_array_unref (self->compare_ids);
  g_strfreev (self->differing);
  g_free (self->signature);
  g_free (self->error);
  g_free (self->path);
  G_OBJECT_CLASS (bp_experiments_page_parent_class)->finalize (object);
}

static void
bp_experiments_page_class_init (BpExperimentsPageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->dispose = bp_experiments_page_dispose;
  object_class->finalize = bp_experiments_page_finalize;
  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
  gtk_widget_class_install_action (widget_class, "experiments.compare", NULL, compare_action);
  gtk_widget_class_install_action (widget_class, "experiments.back", NULL, back_action);
  gtk_widget_class_install_action (widget_class, "experiments.undo", NULL, undo_action);
  gtk_widget_class_install_action (widget_class, "experiments.delete", NULL, delete_action);
  gtk_widget_class_install_action (widget_class, "experiments.rename", NULL, rename_action);
  gtk_widget_class_install_action (widget_class, "experiments.continue", NULL, continue_action);
  gtk_widget_class_install_action (widget_class, "experiments.save-note", NULL,
                                   save_note_action);
  gtk_widget_class_install_action (widget_class, "experiments.save-tags", NULL,
                                   save_tags_action);
  gtk_widget_class_install_action (widget_class, "experiments.export", "s", export_action);
}

GtkWidget *
bp_experiments_page_new (void)
{
  return g_object_new (BP_TYPE_EXPERIMENTS_PAGE, NULL);
}
