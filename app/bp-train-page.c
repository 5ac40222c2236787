/* bp-train-page.c: BpTrainPage turns its settings into a BpTrainRun and shows the run's progress,
 * curves, sample predictions and confusion matrix as the run's signals arrive. */
#include "config.h"

#include "bp-train-page.h"

#include <adwaita.h>
#include <glib/gi18n.h>
#include <math.h>
#include <stdio.h>
#include <unistd.h>

#include "bp-backend.h"
#include "bp-confusion-matrix.h"
#include "bp-engine-strings.h"
#include "bp-image-grid.h"
#include "bp-plot.h"
#include "bp-recorder.h"
#include "bp-run-recording.h"
#include "bp-store.h"
#include "bp-spec.h"

#define N_SAMPLES 12 /* 3 rows of 4 */
#define CLASS_CONTEXT "Fashion-MNIST class"

struct _BpTrainPage {
  GtkWidget parent_instance;

  /* template children */
  GtkWidget *main_box;
  AdwComboRow *dataset_row, *model_row, *optimizer_row, *schedule_row, *device_row;
  GtkWidget *limit_train_row, *limit_test_row, *lr_row, *weight_decay_row, *batch_size_row;
  GtkWidget *epochs_row, *seed_row;
  GtkSpinButton *limit_train_spin, *limit_test_spin, *lr_spin, *weight_decay_spin;
  GtkSpinButton *batch_size_spin, *epochs_spin, *seed_spin;
  GtkWidget *apply_lr_button, *start_button, *pause_button, *resume_button, *stop_button;
  GtkRevealer *error_revealer;
  GtkLabel *error_label, *status_label;
  GtkProgressBar *progress_bar;
  GtkLabel *throughput_label, *lr_label, *val_accuracy_label, *device_label, *memory_label;
  GtkLabel *params_label;
  BpPlot *loss_plot, *accuracy_plot, *lr_plot;
  BpImageGrid *sample_grid;
  BpConfusionMatrix *confusion;

  GSettings *settings;
  GtkStringList *model_names;
  char *custom_json, *custom_name; /* the model handed over by the Build page */
  BpTrainRun *run;
  BpSeries *train_loss, *val_loss, *train_accuracy, *val_accuracy, *lr_series;
  double last_x;
  gboolean pause_pending;
  gint64 memory_updated;
};

G_DEFINE_FINAL_TYPE (BpTrainPage, bp_train_page, GTK_TYPE_WIDGET)

enum { RUN_CREATED, N_SIGNALS };
static guint signals[N_SIGNALS];

/* Translations of Fashion-MNIST's class names. */
static const char *const class_names_for_translation[] G_GNUC_UNUSED = {
  NC_ ("Fashion-MNIST class", "T-shirt/top"), NC_ ("Fashion-MNIST class", "Trouser"),
  NC_ ("Fashion-MNIST class", "Pullover"),    NC_ ("Fashion-MNIST class", "Dress"),
  NC_ ("Fashion-MNIST class", "Coat"),        NC_ ("Fashion-MNIST class", "Sandal"),
  NC_ ("Fashion-MNIST class", "Shirt"),       NC_ ("Fashion-MNIST class", "Sneaker"),
  NC_ ("Fashion-MNIST class", "Bag"),         NC_ ("Fashion-MNIST class", "Ankle boot"),
};

static const char *
class_name (char **names, int n, int k)
{
  if (!names || k < 0 || k >= n || !names[k])
    return "?";
  return g_dpgettext2 (GETTEXT_PACKAGE, CLASS_CONTEXT, names[k]);
}

static const char *
state_text (BpTrainState state)
{
  switch (state) {
  case BP_TRAIN_STATE_IDLE: return _("Ready");
  case BP_TRAIN_STATE_LOADING: return _("Loading data…");
  case BP_TRAIN_STATE_RUNNING: return C_("training state", "Training");
  case BP_TRAIN_STATE_PAUSED: return _("Paused");
  case BP_TRAIN_STATE_FINISHED: return _("Finished");
  case BP_TRAIN_STATE_STOPPED: return _("Stopped");
  case BP_TRAIN_STATE_FAILED: return _("Failed");
  default: return "";
  }
}

static char *
format_duration (double seconds)
{
  if (!isfinite (seconds) || seconds < 0)
    return g_strdup ("–");
  long s = lround (seconds);
  if (s >= 3600)
    return g_strdup_printf ("%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  return g_strdup_printf ("%ld:%02ld", s / 60, s % 60);
}

static char *
format_lr (double lr)
{
  if (!isfinite (lr))
    return g_strdup ("–");
  return g_strdup_printf ("%.3g", lr);
}

/* Resident memory of this process, from /proc/self/statm. */
static gint64
resident_bytes (void)
{
  g_autofree char *text = NULL;
  if (!g_file_get_contents ("/proc/self/statm", &text, NULL, NULL))
    return -1;
  long long size = 0, resident = 0;
  if (sscanf (text, "%lld %lld", &size, &resident) != 2)
    return -1;
  return (gint64) resident * (gint64) sysconf (_SC_PAGESIZE);
}

/* ---- state and actions ---- */

static void
update_controls (BpTrainPage *self)
{
  BpTrainState state = self->run ? bp_train_run_get_state (self->run) : BP_TRAIN_STATE_IDLE;
  gboolean active = self->run && bp_train_run_is_active (self->run);
  gboolean paused = active && state == BP_TRAIN_STATE_PAUSED;
  GtkWidget *widget = GTK_WIDGET (self);

  gtk_widget_action_set_enabled (widget, "train.start", !active);
  gtk_widget_action_set_enabled (widget, "train.pause", active && !paused && !self->pause_pending);
  gtk_widget_action_set_enabled (widget, "train.resume", paused);
  gtk_widget_action_set_enabled (widget, "train.stop", active);
  gtk_widget_action_set_enabled (widget, "train.set-lr", paused);
  gtk_widget_set_visible (self->pause_button, !paused);
  gtk_widget_set_visible (self->resume_button, paused);
  gtk_widget_set_visible (self->apply_lr_button, paused);

  GtkWidget *rows[] = {
    GTK_WIDGET (self->dataset_row), GTK_WIDGET (self->model_row), self->limit_train_row,
    self->limit_test_row, GTK_WIDGET (self->optimizer_row), GTK_WIDGET (self->schedule_row),
    self->weight_decay_row, self->batch_size_row, self->epochs_row, self->seed_row,
    GTK_WIDGET (self->device_row),
  };
  for (guint i = 0; i < G_N_ELEMENTS (rows); i++)
    gtk_widget_set_sensitive (rows[i], !active);
  gtk_widget_set_sensitive (self->lr_row, !active || paused);

  const char *text = state_text (state);
  if (self->pause_pending && state == BP_TRAIN_STATE_RUNNING)
    text = _("Pausing…");
  gtk_label_set_text (self->status_label, text);
}

static void
show_error (BpTrainPage *self, const GError *error)
{
  /* a translated sentence for the kind of failure, then the engine's details */
  const char *title = _("Training failed.");
  if (error->domain == BP_TRAIN_ERROR) {
    switch (error->code) {
    case BP_TRAIN_ERROR_DATA: title = _("The data set cannot be loaded."); break;
    case BP_TRAIN_ERROR_NUMERIC: title = _("Training diverged: the loss is no longer a number."); break;
    case BP_TRAIN_ERROR_MODEL: title = _("The model cannot be built."); break;
    case BP_TRAIN_ERROR_INVALID: title = _("A setting is not valid."); break;
    case BP_TRAIN_ERROR_DONE: title = _("The run cannot continue."); break;
    default: break;
    }
  }
  g_autofree char *markup = g_markup_printf_escaped ("<b>%s</b> %s", title, error->message);
  gtk_label_set_markup (self->error_label, markup);
  gtk_revealer_set_reveal_child (self->error_revealer, TRUE);
}

static void
dismiss_error_cb (BpTrainPage *self)
{
  gtk_revealer_set_reveal_child (self->error_revealer, FALSE);
}

static const char *
device_choice (BpTrainPage *self)
{
  static const char *const choices[] = {"auto", "cpu", "cuda"};
  return choices[MIN (adw_combo_row_get_selected (self->device_row), 2)];
}

static void
show_device (BpTrainPage *self, const BpTrainProgress *p)
{
  const char *text = p->device == BP_DEVICE_CUDA ? _("CUDA GPU")
                     : p->device_fallback          ? _("CPU (no usable GPU)")
                                                   : _("CPU");
  gtk_label_set_text (self->device_label, text);
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->device_label),
                               p->device_fallback ? p->device_note : NULL);
}

BpTrainConfig
bp_train_page_get_config (BpTrainPage *self)
{
  BpTrainConfig c = bp_train_config_default ();
  g_return_val_if_fail (BP_IS_TRAIN_PAGE (self), c);
  guint model = adw_combo_row_get_selected (self->model_row);
  int n_presets;
  const BpPreset *presets = bp_presets (&n_presets);
  if (model < (guint) n_presets) {
    c.model = presets[model].name;
  } else if (self->custom_json) {
    c.model = self->custom_name;
    c.model_json = self->custom_json;
  }
  c.dataset = "fashion-mnist";
  c.limit_train = gtk_spin_button_get_value_as_int (self->limit_train_spin);
  c.limit_test = gtk_spin_button_get_value_as_int (self->limit_test_spin);
  static const BpOptimKind kinds[] = {BP_OPTIM_SGD, BP_OPTIM_ADAM, BP_OPTIM_ADAMW};
  guint optim = MIN (adw_combo_row_get_selected (self->optimizer_row), 2);
  c.optim = bp_optim_config_default (kinds[optim]);
  if (kinds[optim] == BP_OPTIM_SGD)
    c.optim.momentum = 0.9f;
  c.optim.lr = (float) gtk_spin_button_get_value (self->lr_spin);
  c.optim.weight_decay = (float) gtk_spin_button_get_value (self->weight_decay_spin);
  c.epochs = gtk_spin_button_get_value_as_int (self->epochs_spin);
  c.batch_size = gtk_spin_button_get_value_as_int (self->batch_size_spin);
  c.seed = (uint64_t) gtk_spin_button_get_value_as_int (self->seed_spin);
  static const BpSchedKind scheds[] = {BP_SCHED_CONSTANT, BP_SCHED_STEP, BP_SCHED_COSINE,
                                       BP_SCHED_PLATEAU};
  c.sched = bp_sched_config_default (scheds[MIN (adw_combo_row_get_selected (self->schedule_row), 3)]);
  c.sched.t_max = MAX (c.epochs, 1);
  c.sched.step_size = MAX (c.epochs / 3, 1);
  c.sched.patience = 2;
  return c;
}

static void
clear_dashboard (BpTrainPage *self)
{
  BpSeries *all[] = {self->train_loss, self->val_loss, self->train_accuracy, self->val_accuracy,
                     self->lr_series};
  for (guint i = 0; i < G_N_ELEMENTS (all); i++)
    bp_series_clear (all[i]);
  bp_plot_clear_marker (self->loss_plot);
  bp_plot_clear_marker (self->accuracy_plot);
  bp_plot_clear_marker (self->lr_plot);
  bp_plot_reset_zoom (self->loss_plot);
  bp_plot_reset_zoom (self->accuracy_plot);
  bp_plot_reset_zoom (self->lr_plot);
  bp_image_grid_clear (self->sample_grid);
  bp_confusion_matrix_clear (self->confusion);
  gtk_progress_bar_set_fraction (self->progress_bar, 0.0);
  gtk_progress_bar_set_text (self->progress_bar, NULL);
  gtk_label_set_text (self->throughput_label, "–");
  gtk_label_set_text (self->val_accuracy_label, "–");
  gtk_label_set_text (self->params_label, "–");
  gtk_revealer_set_reveal_child (self->error_revealer, FALSE);
  self->last_x = 0.0;
}

/* ---- run signals ---- */

static void
run_steps_cb (BpTrainRun *run, GArray *points, BpTrainPage *self)
{
  guint n = points->len;
  g_autofree double *xs = g_new (double, n), *loss = g_new (double, n), *lr = g_new (double, n);
  for (guint i = 0; i < n; i++) {
    const BpTrainPoint *p = &g_array_index (points, BpTrainPoint, i);
    xs[i] = p->x;
    loss[i] = p->loss;
    lr[i] = p->lr;
  }
  bp_series_append_many (self->train_loss, n, xs, loss);
  bp_series_append_many (self->lr_series, n, xs, lr);
  self->last_x = MAX (self->last_x, xs[n - 1]);
}

static void
run_epoch_cb (BpTrainRun *run, BpTrainEpoch *e, BpTrainPage *self)
{
  bp_series_append (self->val_loss, e->x, e->val_loss);
  bp_series_append (self->train_accuracy, e->x, e->train_accuracy);
  bp_series_append (self->val_accuracy, e->x, e->val_accuracy);
  self->last_x = MAX (self->last_x, e->x);
  if (isfinite (e->val_accuracy)) {
    g_autofree char *text = g_strdup_printf ("%.1f%%", 100.0 * e->val_accuracy);
    gtk_label_set_text (self->val_accuracy_label, text);
  }
  if (e->confusion) {
    const char **names = g_new0 (const char *, e->n_classes + 1);
    for (int k = 0; k < e->n_classes; k++)
      names[k] = class_name (e->class_names, e->n_classes, k);
    bp_confusion_matrix_set (self->confusion, e->n_classes, e->confusion, names);
    g_free (names);
  }
}

static void
run_samples_cb (BpTrainRun *run, BpTrainSamples *s, BpTrainPage *self)
{
  char **captions = g_new0 (char *, s->n + 1);
  gboolean *wrong = g_new0 (gboolean, s->n);
  for (int i = 0; i < s->n; i++) {
    const char *predicted = class_name (s->class_names, s->n_classes, s->predicted[i]);
    wrong[i] = s->predicted[i] != s->truth[i];
    if (wrong[i])
      /* TRANSLATORS: caption of a wrongly classified image: the prediction, then the truth */
      captions[i] = g_strdup_printf (_("%s\n(is %s)"), predicted,
                                     class_name (s->class_names, s->n_classes, s->truth[i]));
    else
      captions[i] = g_strdup (predicted);
  }
  bp_image_grid_set_images (self->sample_grid, s->n, s->width, s->height, 1, s->pixels,
                            (const char *const *) captions, wrong);
  g_strfreev (captions);
  g_free (wrong);
}

static void
run_progress_cb (BpTrainRun *run, BpTrainPage *self)
{
  const BpTrainProgress *p = bp_train_run_get_progress (run);
  if (p->state == BP_TRAIN_STATE_LOADING) {
    gtk_progress_bar_pulse (self->progress_bar);
    gtk_progress_bar_set_text (self->progress_bar, _("Loading the data set and building the model"));
  } else if (p->steps_per_epoch > 0) {
    gint64 total = (gint64) p->epochs * p->steps_per_epoch;
    gtk_progress_bar_set_fraction (self->progress_bar,
                                   CLAMP ((double) p->global_step / (double) total, 0.0, 1.0));
    g_autofree char *eta = format_duration (p->eta_seconds);
    /* TRANSLATORS: progress bar text: epoch, epochs, step, steps per epoch, time left (m:ss) */
    g_autofree char *text = g_strdup_printf (_("Epoch %d of %d · step %d of %d · %s left"),
                                             MAX (p->epoch, 1), p->epochs, (int) p->step,
                                             (int) p->steps_per_epoch, eta);
    gtk_progress_bar_set_text (self->progress_bar, text);
  }
  if (p->images_per_second > 0) {
    /* TRANSLATORS: training throughput */
    g_autofree char *text = g_strdup_printf (_("%.0f images/s"), p->images_per_second);
    gtk_label_set_text (self->throughput_label, text);
  }
  if (p->state != BP_TRAIN_STATE_LOADING)
    show_device (self, p);
  g_autofree char *lr = format_lr (p->lr);
  gtk_label_set_text (self->lr_label, lr);
  if (p->n_params > 0) {
    g_autofree char *text = g_strdup_printf ("%'" G_GINT64_FORMAT, p->n_params);
    gtk_label_set_text (self->params_label, text);
  }
  gint64 now = g_get_monotonic_time ();
  if (now - self->memory_updated > 500000) {
    self->memory_updated = now;
    gint64 rss = resident_bytes ();
    if (rss >= 0) {
      g_autofree char *text = g_format_size ((guint64) rss);
      gtk_label_set_text (self->memory_label, text);
    }
  }
}

static void
run_state_cb (BpTrainRun *run, GParamSpec *pspec, BpTrainPage *self)
{
  BpTrainState state = bp_train_run_get_state (run);
  if (state == BP_TRAIN_STATE_PAUSED) {
    self->pause_pending = FALSE;
    /* the learning rate box shows the rate in force, ready to be changed */
    gtk_spin_button_set_value (self->lr_spin, bp_train_run_get_progress (run)->lr);
  }
  update_controls (self);
}

static void
run_finished_cb (BpTrainRun *run, BpTrainPage *self)
{
  const BpTrainProgress *p = bp_train_run_get_progress (run);
  BpTrainState state = p->state;
  self->pause_pending = FALSE;
  update_controls (self);
  if (state == BP_TRAIN_STATE_FAILED) {
    const GError *error = bp_train_run_get_error (run);
    g_autoptr (GError) unknown = g_error_new_literal (BP_TRAIN_ERROR, BP_TRAIN_ERROR_ENGINE,
                                                      _("unknown error"));
    show_error (self, error ? error : unknown);
  }
  if (state == BP_TRAIN_STATE_FAILED || state == BP_TRAIN_STATE_STOPPED) {
    /* the curves show where the run ended */
    const char *label = state == BP_TRAIN_STATE_FAILED ? _("Failed here") : _("Stopped here");
    if (bp_series_get_n_points (self->train_loss) > 0) {
      bp_plot_set_marker (self->loss_plot, self->last_x, label);
      bp_plot_set_marker (self->accuracy_plot, self->last_x, label);
      bp_plot_set_marker (self->lr_plot, self->last_x, label);
    }
  }
  if (state == BP_TRAIN_STATE_FINISHED && isfinite (p->test_accuracy)) {
    g_autofree char *text = g_strdup_printf (_("Finished: test accuracy %.1f%%"),
                                             100.0 * p->test_accuracy);
    gtk_progress_bar_set_text (self->progress_bar, text);
    gtk_progress_bar_set_fraction (self->progress_bar, 1.0);
  } else if (state != BP_TRAIN_STATE_FINISHED) {
    gtk_progress_bar_set_text (self->progress_bar, state_text (state));
  }
}

static void
disconnect_run (BpTrainPage *self)
{
  if (!self->run)
    return;
  g_signal_handlers_disconnect_by_data (self->run, self);
  if (bp_train_run_is_active (self->run))
    bp_train_run_stop (self->run);
  g_clear_object (&self->run);
}

/* ---- actions ---- */

/* Starts a run of config on the dashboard; resume_id > 0 continues that stored run. */
static void
start_run (BpTrainPage *self, const BpTrainConfig *config, const char *device, gint64 resume_id)
{
  gtk_label_set_text (self->device_label, "–");
  disconnect_run (self);
  self->run = bp_train_run_new (config, N_SAMPLES);
  bp_train_run_set_device (self->run, device);
  g_signal_connect (self->run, "steps", G_CALLBACK (run_steps_cb), self);
  g_signal_connect (self->run, "epoch", G_CALLBACK (run_epoch_cb), self);
  g_signal_connect (self->run, "samples", G_CALLBACK (run_samples_cb), self);
  g_signal_connect (self->run, "progress", G_CALLBACK (run_progress_cb), self);
  g_signal_connect (self->run, "notify::state", G_CALLBACK (run_state_cb), self);
  g_signal_connect (self->run, "finished", G_CALLBACK (run_finished_cb), self);
  /* the experiment store records it; listeners may attach more before the thread starts */
  if (resume_id > 0)
    bp_run_recording_attach_resume (self->run, resume_id);
  else
    bp_run_recording_attach (self->run);
  g_signal_emit (self, signals[RUN_CREATED], 0, self->run);
  self->pause_pending = FALSE;
  bp_train_run_start (self->run);
  update_controls (self);
}

static void
start_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  BpTrainPage *self = BP_TRAIN_PAGE (widget);
  if (self->run && bp_train_run_is_active (self->run))
    return;
  BpTrainConfig config = bp_train_page_get_config (self);
  g_autoptr (GError) error = NULL;
  clear_dashboard (self);
  if (!bp_train_config_check (&config, &error)) {
    show_error (self, error);
    return;
  }
  start_run (self, &config, device_choice (self), 0);
}

gboolean
bp_train_page_continue_run (BpTrainPage *self, gint64 run_id, int epochs, GError **error)
{
  g_return_val_if_fail (BP_IS_TRAIN_PAGE (self), FALSE);
  if (self->run && bp_train_run_is_active (self->run)) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_INVALID,
                 _("A run is training: stop it before continuing another."));
    return FALSE;
  }
  g_autofree char *path = bp_lab_store_path ();
  /* a short busy timeout: the main loop must not wait on a writer for long */
  g_autoptr (BpStore) store = bp_store_open_full (path, BP_STORE_OPEN_READ_ONLY, 250, error);
  BpTrainConfig config = bp_train_config_default ();
  if (!store || !bp_recorder_run_config (store, run_id, &config, error))
    return FALSE;
  if (epochs > 0)
    config.epochs = epochs;
  if (!bp_train_config_check (&config, error))
    return FALSE;
  clear_dashboard (self);
  gtk_spin_button_set_value (self->epochs_spin, config.epochs);
  start_run (self, &config, config.device == BP_DEVICE_CUDA ? "cuda" : "cpu", run_id);
  return TRUE;
}

static void
pause_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  BpTrainPage *self = BP_TRAIN_PAGE (widget);
  if (!self->run || !bp_train_run_is_active (self->run))
    return;
  self->pause_pending = TRUE;
  bp_train_run_pause (self->run);
  update_controls (self);
}

static void
resume_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  BpTrainPage *self = BP_TRAIN_PAGE (widget);
  if (!self->run)
    return;
  self->pause_pending = FALSE;
  bp_train_run_resume (self->run);
}

static void
stop_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  BpTrainPage *self = BP_TRAIN_PAGE (widget);
  if (!self->run)
    return;
  bp_train_run_stop (self->run);
}

static void
set_lr_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  BpTrainPage *self = BP_TRAIN_PAGE (widget);
  if (!self->run || bp_train_run_get_state (self->run) != BP_TRAIN_STATE_PAUSED)
    return;
  gtk_spin_button_update (self->lr_spin);
  bp_train_run_set_lr (self->run, gtk_spin_button_get_value (self->lr_spin));
}

/* ---- set-up ---- */

static void
model_selected_cb (BpTrainPage *self)
{
  guint k = adw_combo_row_get_selected (self->model_row);
  int n;
  const BpPreset *presets = bp_presets (&n);
  if (k < (guint) n) {
    adw_action_row_set_subtitle (ADW_ACTION_ROW (self->model_row),
                                 bp_engine_text (presets[k].description));
  } else if (self->custom_json) {
    /* TRANSLATORS: subtitle of the model chosen on the Train page: the model's name */
    g_autofree char *text = g_strdup_printf (_("“%s”, built on the Build page"), self->custom_name);
    g_autofree char *markup = g_markup_escape_text (text, -1);
    adw_action_row_set_subtitle (ADW_ACTION_ROW (self->model_row), markup);
  }
}

static void
plot_exported_cb (BpPlot *plot, const char *path, const GError *error, BpTrainPage *self)
{
  GtkWidget *overlay = gtk_widget_get_ancestor (GTK_WIDGET (self), ADW_TYPE_TOAST_OVERLAY);
  g_autofree char *name = g_filename_display_basename (path);
  g_autofree char *text = error ? g_strdup_printf (_("Export failed: %s"), error->message)
                                : g_strdup_printf (_("Saved %s"), name);
  if (overlay)
    adw_toast_overlay_add_toast (ADW_TOAST_OVERLAY (overlay), adw_toast_new (text));
}

static BpSeries *
add_series (BpPlot *plot, const char *name, const char *color, gboolean markers, gboolean smooth)
{
  GdkRGBA rgba;
  gdk_rgba_parse (&rgba, color);
  BpSeries *series = bp_series_new (name, &rgba);
  bp_series_set_markers (series, markers);
  bp_series_set_smooth (series, smooth);
  bp_plot_add_series (plot, series);
  return series;
}

static void
bp_train_page_dispose (GObject *object)
{
  BpTrainPage *self = BP_TRAIN_PAGE (object);
  disconnect_run (self);
  gtk_widget_dispose_template (GTK_WIDGET (self), BP_TYPE_TRAIN_PAGE);
  g_clear_object (&self->train_loss);
  g_clear_object (&self->val_loss);
  g_clear_object (&self->train_accuracy);
  g_clear_object (&self->val_accuracy);
  g_clear_object (&self->lr_series);
  g_clear_object (&self->model_names);
  g_clear_pointer (&self->custom_json, g_free);
  g_clear_pointer (&self->custom_name, g_free);
  g_clear_object (&self->settings);
  G_OBJECT_CLASS (bp_train_page_parent_class)->dispose (object);
}

static void
bp_train_page_class_init (BpTrainPageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->dispose = bp_train_page_dispose;

  /* A run was created and is about to start: connect to it or set its hooks now. */
  signals[RUN_CREATED] = g_signal_new ("run-created", G_TYPE_FROM_CLASS (klass),
                                       G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 1,
                                       BP_TYPE_TRAIN_RUN);

  g_type_ensure (BP_TYPE_PLOT);
  g_type_ensure (BP_TYPE_IMAGE_GRID);
  g_type_ensure (BP_TYPE_CONFUSION_MATRIX);
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/backproplab/Lab/ui/bp-train-page.ui");
#define CHILD(name) gtk_widget_class_bind_template_child (widget_class, BpTrainPage, name)
  CHILD (main_box);
  CHILD (dataset_row);
  CHILD (model_row);
  CHILD (optimizer_row);
  CHILD (schedule_row);
  CHILD (device_row);
  CHILD (limit_train_row);
  CHILD (limit_test_row);
  CHILD (lr_row);
  CHILD (weight_decay_row);
  CHILD (batch_size_row);
  CHILD (epochs_row);
  CHILD (seed_row);
  CHILD (limit_train_spin);
  CHILD (limit_test_spin);
  CHILD (lr_spin);
  CHILD (weight_decay_spin);
  CHILD (batch_size_spin);
  CHILD (epochs_spin);
  CHILD (seed_spin);
  CHILD (apply_lr_button);
  CHILD (start_button);
  CHILD (pause_button);
  CHILD (resume_button);
  CHILD (stop_button);
  CHILD (error_revealer);
  CHILD (error_label);
  CHILD (status_label);
  CHILD (progress_bar);
  CHILD (throughput_label);
  CHILD (lr_label);
  CHILD (val_accuracy_label);
  CHILD (device_label);
  CHILD (memory_label);
  CHILD (params_label);
  CHILD (loss_plot);
  CHILD (accuracy_plot);
  CHILD (lr_plot);
  CHILD (sample_grid);
  CHILD (confusion);
#undef CHILD
  gtk_widget_class_bind_template_callback (widget_class, dismiss_error_cb);

  gtk_widget_class_install_action (widget_class, "train.start", NULL, start_action);
  gtk_widget_class_install_action (widget_class, "train.pause", NULL, pause_action);
  gtk_widget_class_install_action (widget_class, "train.resume", NULL, resume_action);
  gtk_widget_class_install_action (widget_class, "train.stop", NULL, stop_action);
  gtk_widget_class_install_action (widget_class, "train.set-lr", NULL, set_lr_action);

  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Return, GDK_CONTROL_MASK,
                                       "train.start", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_p, GDK_CONTROL_MASK, "train.pause",
                                       NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_r, GDK_CONTROL_MASK, "train.resume",
                                       NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_period, GDK_CONTROL_MASK,
                                       "train.stop", NULL);

  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
  gtk_widget_class_set_css_name (widget_class, "bp-train-page");
}

static void
bp_train_page_init (BpTrainPage *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));

  /* models: the engine's presets, simple-cnn first choice */
  self->model_names = gtk_string_list_new (NULL);
  int n;
  const BpPreset *presets = bp_presets (&n);
  guint simple_cnn = 0;
  for (int k = 0; k < n; k++) {
    gtk_string_list_append (self->model_names, presets[k].name);
    if (g_str_equal (presets[k].name, "simple-cnn"))
      simple_cnn = (guint) k;
  }
  adw_combo_row_set_model (self->model_row, G_LIST_MODEL (self->model_names));
  g_signal_connect_swapped (self->model_row, "notify::selected", G_CALLBACK (model_selected_cb),
                            self);
  adw_combo_row_set_selected (self->model_row, simple_cnn);
  model_selected_cb (self);

  /* the default device from the preferences */
  self->settings = g_settings_new ("org.backproplab.Lab");
  g_autofree char *device = g_settings_get_string (self->settings, "device");
  adw_combo_row_set_selected (self->device_row, g_str_equal (device, "cpu")    ? 1
                                                : g_str_equal (device, "cuda") ? 2
                                                                               : 0);

  /* curves: x in epochs; steps as lines, per-epoch metrics as dots */
  bp_plot_set_title (self->loss_plot, _("Loss"));
  bp_plot_set_axis_labels (self->loss_plot, _("Epoch"), _("Loss"));
  self->train_loss = add_series (self->loss_plot, _("Training"), "#3584e4", FALSE, TRUE);
  self->val_loss = add_series (self->loss_plot, _("Validation"), "#e66100", TRUE, FALSE);
  bp_plot_set_smoothing (self->loss_plot, 0.6);
  bp_plot_set_title (self->accuracy_plot, _("Accuracy"));
  bp_plot_set_axis_labels (self->accuracy_plot, _("Epoch"), _("Accuracy"));
  self->train_accuracy = add_series (self->accuracy_plot, _("Training"), "#3584e4", TRUE, FALSE);
  self->val_accuracy = add_series (self->accuracy_plot, _("Validation"), "#e66100", TRUE, FALSE);
  bp_plot_set_title (self->lr_plot, _("Learning rate"));
  bp_plot_set_axis_labels (self->lr_plot, _("Epoch"), NULL);
  self->lr_series = add_series (self->lr_plot, _("Learning rate"), "#26a269", FALSE, FALSE);
  bp_plot_set_show_smoothing (self->lr_plot, FALSE);
  BpPlot *plots[] = {self->loss_plot, self->accuracy_plot, self->lr_plot};
  for (guint i = 0; i < G_N_ELEMENTS (plots); i++)
    g_signal_connect (plots[i], "exported", G_CALLBACK (plot_exported_cb), self);

  update_controls (self);
}

GtkWidget *
bp_train_page_new (void)
{
  return g_object_new (BP_TYPE_TRAIN_PAGE, NULL);
}

BpTrainRun *
bp_train_page_get_run (BpTrainPage *self)
{
  g_return_val_if_fail (BP_IS_TRAIN_PAGE (self), NULL);
  return self->run;
}

void
bp_train_page_set_custom_model (BpTrainPage *self, const char *json, const char *name)
{
  g_return_if_fail (BP_IS_TRAIN_PAGE (self));
  g_return_if_fail (json);
  int n;
  bp_presets (&n);
  gboolean listed = self->custom_json != NULL;
  g_free (self->custom_json);
  g_free (self->custom_name);
  self->custom_json = g_strdup (json);
  self->custom_name = g_strdup (name && *name ? name : "model");
  if (!listed)
    gtk_string_list_append (self->model_names, _("Custom model from the builder"));
  if (adw_combo_row_get_selected (self->model_row) == (guint) n)
    model_selected_cb (self);
  else
    adw_combo_row_set_selected (self->model_row, (guint) n);
}
