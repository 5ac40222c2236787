/* bp-train-page.c: BpTrainPage turns its settings into a BpTrainRun and shows the run's progress,
 * curves, sample predictions and confusion matrix as the run's signals arrive; for language
 * models it offers the text corpora, shows the live attention heatmap and generates text from
 * the trained model on a worker thread. */
#include "config.h"

#include "bp-train-page.h"

#include <adwaita.h>
#include <glib/gi18n.h>
#include <math.h>
#include <stdio.h>
#include <unistd.h>

#include "bp-attention-map.h"
#include "bp-backend.h"
#include "bp-confusion-matrix.h"
#include "bp-engine-strings.h"
#include "bp-image-grid.h"
#include "bp-plot.h"
#include "bp-recorder.h"
#include "bp-run-recording.h"
#include "bp-store.h"
#include "bp-spec.h"
#include "bp-plane-view.h"
#include "bp-text.h"

#define N_SAMPLES 12 /* 3 rows of 4 */
#define CLASS_CONTEXT "Fashion-MNIST class"

struct _BpTrainPage {
  GtkWidget parent_instance;

  /* template children */
  GtkWidget *main_box;
  AdwComboRow *dataset_row, *model_row, *optimizer_row, *schedule_row, *device_row;
  AdwComboRow *precision_row;
  GtkWidget *limit_train_row, *limit_test_row, *lr_row, *weight_decay_row, *batch_size_row;
  GtkWidget *epochs_row, *seed_row;
  GtkSpinButton *limit_train_spin, *limit_test_spin, *lr_spin, *weight_decay_spin;
  GtkSpinButton *batch_size_spin, *epochs_spin, *seed_spin;
  GtkWidget *dropout_row;
  GtkSpinButton *dropout_spin;
  char *dropout_json; /* the chosen spec with the Dropout row's p (bp_train_page_get_config) */
  GtkWidget *apply_lr_button, *start_button, *pause_button, *resume_button, *stop_button;
  GtkRevealer *error_revealer;
  GtkLabel *error_label, *status_label;
  GtkProgressBar *progress_bar;
  GtkLabel *throughput_label, *lr_label, *val_accuracy_label, *device_label, *memory_label;
  GtkLabel *params_label;
  BpPlot *loss_plot, *accuracy_plot, *lr_plot;
  BpImageGrid *sample_grid;
  BpConfusionMatrix *confusion;
  /* language models */
  GtkWidget *context_row, *steps_row, *attention_row;
  GtkSpinButton *context_spin, *steps_spin, *attention_spin;
  GtkWidget *samples_card, *confusion_card, *attention_card, *generate_card, *boundary_card;
  GtkLabel *val_metric_title;
  BpPlaneView *boundary_view;
  gboolean run_is_regression;   /* the run on show: R² instead of accuracy */
  BpAttentionMap *attention_map;
  GtkLabel *attention_step_label, *generate_message;
  GtkEntry *prompt_entry;
  GtkSpinButton *temperature_spin, *top_k_spin, *length_spin;
  GtkTextView *generate_view;
  GtkWidget *generate_button, *stop_generate_button;

  GSettings *settings;
  GtkStringList *model_names;
  GtkStringList *dataset_names;
  GPtrArray *dataset_ids;       /* the data set names behind dataset_names */
  gboolean is_lm, has_attention; /* what the chosen model is */
  int64_t input_numel;           /* values of one example its Input reads (0: unknown) */
  gboolean run_is_lm;           /* what the run on show trains */
  gboolean gen_hint;            /* the Generate panel's message is the hint, not an error */
  struct GenJob *gen;           /* the text being generated, or NULL */
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

/* ---- data sets, what the model is ---- */

/* The data sets (bp_dataset_names) and text corpora (bp_text_corpus_names) as the data set
 * list shows them. */
static const struct {
  const char *name, *title;
} data_titles[] = {
  {"fashion-mnist", N_("Fashion-MNIST")},
  {"digits", N_("Handwritten digits, 8 × 8 (scikit-learn)")},
  {"iris", N_("Iris flowers (scikit-learn)")},
  {"wine", N_("Wines (scikit-learn)")},
  {"breast-cancer", N_("Breast cancer diagnoses (scikit-learn)")},
  {"diabetes", N_("Diabetes progression, regression (scikit-learn)")},
  {"two-spirals", N_("Two spirals (generated, 2-D)")},
  {"moons", N_("Two moons (generated, 2-D)")},
  {"tang300", N_("Tang poems (tang300)")},
  {"song100", N_("Song ci (song100)")},
  {"chinese", N_("Chinese sayings (chinese)")},
  {"fortunes-zh", N_("All the Chinese texts (fortunes-zh)")},
  {"fortunes", N_("English fortunes (fortunes)")},
};

static const char *
data_title (const char *name)
{
  for (gsize k = 0; k < G_N_ELEMENTS (data_titles); k++)
    if (g_str_equal (data_titles[k].name, name))
      return _(data_titles[k].title);
  return name;
}

/* The spec of the model chosen (borrowed), or NULL. */
static const char *
selected_model_json (BpTrainPage *self)
{
  guint k = adw_combo_row_get_selected (self->model_row);
  int n;
  const BpPreset *presets = bp_presets (&n);
  if (k < (guint) n)
    return presets[k].json;
  return self->custom_json;
}

/* Whether a spec reads characters (an Input of token ids along one axis), whether it has
 * attention layers to show, the p of its first Dropout layer (-1: none) and (input_numel may be
 * NULL) how many values of one example its Input reads (0: unknown). */
static void
spec_kind (const char *json, gboolean *lm, gboolean *attention, double *dropout,
           int64_t *input_numel)
{
  *lm = *attention = FALSE;
  *dropout = -1;
  if (input_numel)
    *input_numel = 0;
  g_autoptr (BpSpec) spec = json ? bp_spec_parse (json, NULL) : NULL;
  for (int k = 0; spec && k < spec->n_nodes; k++) {
    const BpLayerSpec *node = &spec->nodes[k];
    if (node->kind == BP_LAYER_DROPOUT && *dropout < 0)
      *dropout = node->p;
    if (node->kind == BP_LAYER_INPUT && node->vocab_size > 0 && node->shape.ndim == 1)
      *lm = TRUE;
    if (node->kind == BP_LAYER_INPUT && input_numel && node->shape.ndim > 0)
      *input_numel = bp_shape_numel (node->shape.ndim, node->shape.d);
    if (node->kind == BP_LAYER_MULTIHEAD_ATTENTION ||
        node->kind == BP_LAYER_TRANSFORMER_ENCODER_LAYER)
      *attention = TRUE;
  }
}

/* The data set list: the text corpora for a language model, else the data sets whose examples
 * the model reads (all of them when none fits: training then says why). */
static void
fill_datasets (BpTrainPage *self)
{
  guint selected = adw_combo_row_get_selected (self->dataset_row);
  const char *was =
    selected < self->dataset_ids->len ? g_ptr_array_index (self->dataset_ids, selected) : NULL;
  g_ptr_array_set_size (self->dataset_ids, 0);
  g_autoptr (GPtrArray) titles = g_ptr_array_new ();
  if (self->is_lm) {
    for (const char *const *name = bp_text_corpus_names (); *name; name++) {
      g_ptr_array_add (self->dataset_ids, (gpointer) *name);
      g_ptr_array_add (titles, (gpointer) data_title (*name));
    }
  } else {
    for (int pass = 0; pass < 2 && self->dataset_ids->len == 0; pass++)
      for (const char *const *name = bp_dataset_names (); *name; name++) {
        const BpDatasetInfo *info = bp_dataset_info (*name);
        if (pass == 1 ||
            bp_shape_numel (info->example_ndim, info->example_shape) == self->input_numel) {
          g_ptr_array_add (self->dataset_ids, (gpointer) *name);
          g_ptr_array_add (titles, (gpointer) data_title (*name));
        }
      }
  }
  g_ptr_array_add (titles, NULL);
  guint n = g_list_model_get_n_items (G_LIST_MODEL (self->dataset_names));
  gtk_string_list_splice (self->dataset_names, 0, n, (const char *const *) titles->pdata);
  guint keep = 0;
  for (guint k = 0; was && k < self->dataset_ids->len; k++)
    if (g_str_equal (g_ptr_array_index (self->dataset_ids, k), was))
      keep = k;
  adw_combo_row_set_selected (self->dataset_row, keep);
}

/* Shows the settings and cards that fit the model chosen. */
static void
update_model_kind (BpTrainPage *self)
{
  gboolean lm, attention;
  double dropout;
  spec_kind (selected_model_json (self), &lm, &attention, &dropout, &self->input_numel);
  /* the row shows the model's own p; a change applies to all its Dropout layers */
  gtk_widget_set_visible (self->dropout_row, dropout >= 0);
  if (dropout >= 0)
    gtk_spin_button_set_value (self->dropout_spin, dropout);
  self->is_lm = lm;
  self->has_attention = attention;
  /* the data sets follow the model's input */
  fill_datasets (self);
  gtk_widget_set_visible (self->limit_train_row, !lm);
  gtk_widget_set_visible (self->limit_test_row, !lm);
  gtk_widget_set_visible (self->context_row, lm);
  gtk_widget_set_visible (self->steps_row, lm);
  gtk_widget_set_visible (self->attention_row, attention);
}

/* The cards of the run on show: the image cards, the confusion matrix (classification), the
 * decision boundary (2-D data), the attention card, the Generate panel; and whether the
 * accuracy places show a regression's R². */
static void
update_cards (BpTrainPage *self, gboolean lm, gboolean attention, const char *dataset)
{
  const BpDatasetInfo *info = lm ? NULL : bp_dataset_info (dataset);
  gboolean images = info && info->kind == BP_DATASET_IMAGES;
  gboolean regression = info && info->task == BP_TASK_REGRESSION;
  gboolean plane = info && info->task == BP_TASK_CLASSIFICATION && info->example_ndim == 1 &&
                   info->example_shape[0] == 2;
  gtk_widget_set_visible (self->samples_card, images);
  gtk_widget_set_visible (self->confusion_card, info && !regression);
  gtk_widget_set_visible (self->boundary_card, plane);
  gtk_widget_set_visible (self->attention_card, attention);
  gtk_widget_set_visible (self->generate_card, lm);
  self->run_is_regression = regression;
  gtk_label_set_text (self->val_metric_title,
                      regression ? _("Validation R²") : _("Validation accuracy"));
  bp_plot_set_title (self->accuracy_plot, regression ? _("R² (coefficient of determination)")
                                                     : _("Accuracy"));
  bp_plot_set_axis_labels (self->accuracy_plot, _("Epoch"), regression ? "R²" : _("Accuracy"));
  /* R² has no training figure: only the validation series then */
  if (self->train_accuracy && self->val_accuracy) {
    bp_plot_remove_all_series (self->accuracy_plot);
    if (!regression)
      bp_plot_add_series (self->accuracy_plot, self->train_accuracy);
    bp_plot_add_series (self->accuracy_plot, self->val_accuracy);
  }
}

/* ---- generating text ---- */

/* One generation on a worker thread. The thread appends the pieces to `pending` and schedules
 * one idle callback at a time, which moves them into the text view on the main loop; the
 * widgets are never touched off the main thread. References: the page's (while it waits for
 * the text) and the thread's (dropped by the idle callback that sees `done`, on the main
 * thread, as is the last reference of the run that owns the model). */
typedef struct GenJob {
  gatomicrefcount ref;
  BpTrainPage *page;       /* main thread; NULL once the page no longer waits */
  BpTrainRun *run;         /* owns the model */
  BpModel *model;
  const BpVocab *vocab;
  char *prompt;
  BpGenerateOptions options;
  GMutex lock;
  GString *pending;        /* under lock */
  gboolean stop, done;     /* under lock */
  guint idle_id;           /* under lock */
  GError *error;           /* set by the thread before done */
  gint64 n_pieces;         /* main thread */
} GenJob;

static GenJob *
gen_job_ref (GenJob *job)
{
  g_atomic_ref_count_inc (&job->ref);
  return job;
}

static void
gen_job_unref (GenJob *job)
{
  if (!g_atomic_ref_count_dec (&job->ref))
    return;
  g_object_unref (job->run);
  g_free (job->prompt);
  g_string_free (job->pending, TRUE);
  g_clear_error (&job->error);
  g_mutex_clear (&job->lock);
  g_free (job);
}

static gboolean gen_flush_cb (gpointer data);

/* Under lock: makes sure an idle callback will run. */
static void
gen_schedule (GenJob *job)
{
  if (!job->idle_id)
    job->idle_id = g_idle_add (gen_flush_cb, job);
}

static gboolean
gen_piece_cb (const char *piece, int64_t id, gpointer data)
{
  GenJob *job = data;
  g_mutex_lock (&job->lock);
  g_string_append (job->pending, piece);
  gen_schedule (job);
  gboolean go_on = !job->stop;
  g_mutex_unlock (&job->lock);
  return go_on;
}

static gpointer
gen_thread (gpointer data)
{
  GenJob *job = data;
  GError *error = NULL;
  char *text = bp_generate (job->model, job->vocab, job->prompt, &job->options, gen_piece_cb,
                            job, NULL, &error);
  g_free (text);
  g_mutex_lock (&job->lock);
  job->error = error;
  job->done = TRUE;
  gen_schedule (job); /* its callback drops this thread's reference */
  g_mutex_unlock (&job->lock);
  return NULL;
}

static void update_generate_controls (BpTrainPage *self);
static void update_controls (BpTrainPage *self);

static void
show_generate_message (BpTrainPage *self, const char *text, gboolean error)
{
  self->gen_hint = FALSE;
  gtk_label_set_text (self->generate_message, text ? text : "");
  gtk_widget_set_visible (GTK_WIDGET (self->generate_message), text && *text);
  if (error) {
    gtk_widget_add_css_class (GTK_WIDGET (self->generate_message), "error");
    gtk_widget_remove_css_class (GTK_WIDGET (self->generate_message), "dim-label");
  } else {
    gtk_widget_remove_css_class (GTK_WIDGET (self->generate_message), "error");
    gtk_widget_add_css_class (GTK_WIDGET (self->generate_message), "dim-label");
  }
}

static gboolean
gen_flush_cb (gpointer data)
{
  GenJob *job = data;
  g_mutex_lock (&job->lock);
  job->idle_id = 0;
  g_autofree char *text = g_string_free (job->pending, FALSE);
  job->pending = g_string_new (NULL);
  gboolean done = job->done;
  g_mutex_unlock (&job->lock);

  BpTrainPage *self = job->page;
  if (self && *text) {
    GtkTextBuffer *buffer = gtk_text_view_get_buffer (self->generate_view);
    GtkTextIter end;
    gtk_text_buffer_get_end_iter (buffer, &end);
    gtk_text_buffer_insert (buffer, &end, text, -1);
    job->n_pieces++;
  }
  if (done) {
    if (self) {
      if (job->error && !g_error_matches (job->error, BP_TEXT_ERROR, BP_TEXT_ERROR_INVALID)) {
        /* TRANSLATORS: the engine's reason follows */
        g_autofree char *message = g_strdup_printf (_("The text cannot be generated: %s"),
                                                    job->error->message);
        show_generate_message (self, message, TRUE);
      } else {
        show_generate_message (self, job->stop ? _("Stopped.") : NULL, FALSE);
      }
      self->gen = NULL;
      job->page = NULL;
      gen_job_unref (job); /* the page's */
      update_generate_controls (self);
      update_controls (self);
    }
    gen_job_unref (job); /* the thread's */
  }
  return G_SOURCE_REMOVE;
}

/* The model to generate with: the last run's, once it has ended. */
static BpModel *
generation_model (BpTrainPage *self, const BpVocab **vocab)
{
  if (!self->run || bp_train_run_is_active (self->run))
    return NULL;
  return bp_train_run_get_language_model (self->run, vocab);
}

static void
update_generate_controls (BpTrainPage *self)
{
  GtkWidget *widget = GTK_WIDGET (self);
  BpModel *model = generation_model (self, NULL);
  gtk_widget_action_set_enabled (widget, "train.generate", model && !self->gen);
  gtk_widget_action_set_enabled (widget, "train.stop-generating", self->gen != NULL);
  gboolean shown = gtk_widget_get_visible (GTK_WIDGET (self->generate_message));
  if (!self->gen && !model && (!shown || self->gen_hint)) {
    show_generate_message (self, _("Train a language model here to generate text with it."),
                           FALSE);
    self->gen_hint = TRUE;
  } else if (model && self->gen_hint) {
    show_generate_message (self, NULL, FALSE);
  }
}

static void
generate_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  BpTrainPage *self = BP_TRAIN_PAGE (widget);
  const BpVocab *vocab = NULL;
  BpModel *model = generation_model (self, &vocab);
  if (self->gen || !model)
    return;
  const char *prompt = gtk_editable_get_text (GTK_EDITABLE (self->prompt_entry));
  /* the mistakes a user can make, said before any work */
  g_autofree char *unknown = bp_vocab_unknown_chars (vocab, prompt);
  if (*unknown) {
    GString *list = g_string_new (NULL);
    for (const char *p = unknown; *p; p = g_utf8_next_char (p)) {
      gunichar c = g_utf8_get_char (p);
      if (list->len)
        g_string_append (list, _(", "));
      if (c == ' ')
        g_string_append (list, _("space"));
      else if (c == '\n')
        g_string_append (list, _("line break"));
      else
        g_string_append_printf (list, "“%.*s”", (int) (g_utf8_next_char (p) - p), p);
    }
    /* TRANSLATORS: the prompt's characters that the model never saw, e.g. “Q”, “嗎” */
    g_autofree char *message = g_strdup_printf (_("The model does not know these characters of "
                                                  "the prompt: %s. Leave them out."), list->str);
    g_string_free (list, TRUE);
    show_generate_message (self, message, TRUE);
    return;
  }
  glong n = g_utf8_strlen (prompt, -1);
  int64_t context = bp_model_context_length (model);
  if (n > context) {
    /* TRANSLATORS: the prompt's length and the model's context, in characters */
    g_autofree char *message = g_strdup_printf (_("The prompt has %ld characters; the model reads "
                                                  "at most %ld."), n, (long) context);
    show_generate_message (self, message, TRUE);
    return;
  }
  show_generate_message (self, NULL, FALSE);

  GenJob *job = g_new0 (GenJob, 1);
  g_atomic_ref_count_init (&job->ref);
  g_mutex_init (&job->lock);
  job->page = self;
  job->run = g_object_ref (self->run);
  job->model = model;
  job->vocab = vocab;
  job->prompt = g_strdup (prompt);
  job->pending = g_string_new (NULL);
  BpGenerateOptions options = BP_GENERATE_OPTIONS_INIT;
  options.max_new = gtk_spin_button_get_value_as_int (self->length_spin);
  options.temperature = (float) gtk_spin_button_get_value (self->temperature_spin);
  options.top_k = gtk_spin_button_get_value_as_int (self->top_k_spin);
  options.strict = TRUE;
  job->options = options;
  self->gen = job;

  /* the prompt in bold, then the text as it comes */
  GtkTextBuffer *buffer = gtk_text_view_get_buffer (self->generate_view);
  gtk_text_buffer_set_text (buffer, "", 0);
  GtkTextIter end;
  gtk_text_buffer_get_end_iter (buffer, &end);
  gtk_text_buffer_insert_with_tags_by_name (buffer, &end, prompt, -1, "prompt", NULL);
  update_generate_controls (self);
  update_controls (self);
  GThread *thread = g_thread_new ("bp-generate", gen_thread, gen_job_ref (job));
  g_thread_unref (thread);
}

static void
stop_generating_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  BpTrainPage *self = BP_TRAIN_PAGE (widget);
  if (!self->gen)
    return;
  g_mutex_lock (&self->gen->lock);
  self->gen->stop = TRUE;
  g_mutex_unlock (&self->gen->lock);
}

static void
prompt_activate_cb (BpTrainPage *self)
{
  gtk_widget_activate_action (GTK_WIDGET (self), "train.generate", NULL);
}

/* The page goes: the thread stops at its next character and cleans up after itself. */
static void
abandon_generation (BpTrainPage *self)
{
  GenJob *job = g_steal_pointer (&self->gen);
  if (!job)
    return;
  g_mutex_lock (&job->lock);
  job->stop = TRUE;
  g_mutex_unlock (&job->lock);
  job->page = NULL;
  gen_job_unref (job);
}

/* ---- state and actions ---- */

static void
update_controls (BpTrainPage *self)
{
  BpTrainState state = self->run ? bp_train_run_get_state (self->run) : BP_TRAIN_STATE_IDLE;
  gboolean active = self->run && bp_train_run_is_active (self->run);
  gboolean paused = active && state == BP_TRAIN_STATE_PAUSED;
  GtkWidget *widget = GTK_WIDGET (self);

  /* generation and training share the engine's random numbers: one at a time */
  gtk_widget_action_set_enabled (widget, "train.start", !active && !self->gen);
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
    GTK_WIDGET (self->device_row), self->context_row, self->steps_row, self->attention_row,
  };
  for (guint i = 0; i < G_N_ELEMENTS (rows); i++)
    gtk_widget_set_sensitive (rows[i], !active);
  gtk_widget_set_sensitive (self->lr_row, !active || paused);

  const char *text = state_text (state);
  if (self->pause_pending && state == BP_TRAIN_STATE_RUNNING)
    text = _("Pausing…");
  gtk_label_set_text (self->status_label, text);
  update_generate_controls (self);
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
  /* the tooltip: why not the GPU, or on the GPU how the steps run (the engine's line) */
  const char *tip = p->device_fallback ? p->device_note
                    : p->device == BP_DEVICE_CUDA && p->step_note[0] ? p->step_note
                                                                     : NULL;
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->device_label), tip);
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
  guint dataset = adw_combo_row_get_selected (self->dataset_row);
  c.dataset = dataset < self->dataset_ids->len ? g_ptr_array_index (self->dataset_ids, dataset)
                                               : "fashion-mnist";
  if (self->is_lm) {
    c.context = gtk_spin_button_get_value_as_int (self->context_spin);
    c.steps_per_epoch = gtk_spin_button_get_value_as_int (self->steps_spin);
  } else {
    c.limit_train = gtk_spin_button_get_value_as_int (self->limit_train_spin);
    c.limit_test = gtk_spin_button_get_value_as_int (self->limit_test_spin);
  }
  c.attention_every = self->has_attention ? gtk_spin_button_get_value_as_int (self->attention_spin)
                                          : 0;
  if (gtk_widget_get_visible (self->dropout_row)) {
    /* the spec with the row's dropout probability in every Dropout layer */
    g_autoptr (BpSpec) spec = bp_spec_parse (selected_model_json (self), NULL);
    float p = (float) gtk_spin_button_get_value (self->dropout_spin);
    gboolean changed = FALSE;
    for (int k = 0; spec && k < spec->n_nodes; k++)
      if (spec->nodes[k].kind == BP_LAYER_DROPOUT && spec->nodes[k].p != p) {
        spec->nodes[k].p = p;
        changed = TRUE;
      }
    if (changed) {
      g_free (self->dropout_json);
      self->dropout_json = bp_spec_to_json (spec);
      c.model_json = self->dropout_json;
    }
  }
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
  c.precision = adw_combo_row_get_selected (self->precision_row) == 1 ? BP_PRECISION_BF16
                                                                     : BP_PRECISION_FP32;
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
  bp_plane_view_set_classes (self->boundary_view, 0, 0, NULL);
  bp_plane_view_set_points (self->boundary_view, 0, NULL, NULL);
  bp_plane_view_set_title (self->boundary_view, NULL);
  bp_attention_map_clear (self->attention_map);
  gtk_label_set_text (self->attention_step_label, "");
  int every = gtk_spin_button_get_value_as_int (self->attention_spin);
  g_autofree char *placeholder =
    every > 0 ? g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "Shown every %d step of training",
                                              "Shown every %d steps of training", every), every)
              : g_strdup (_("Attention heatmaps are off (see the settings)"));
  bp_attention_map_set_placeholder (self->attention_map, placeholder);
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
  self->last_x = MAX (self->last_x, e->x);
  if (e->task == BP_TASK_REGRESSION) {
    /* R² has no training figure: the validation series carries it */
    bp_series_append (self->val_accuracy, e->x, e->val_r2);
    if (isfinite (e->val_r2)) {
      g_autofree char *text = g_strdup_printf ("%.3f", e->val_r2);
      gtk_label_set_text (self->val_accuracy_label, text);
    }
  } else {
    bp_series_append (self->train_accuracy, e->x, e->train_accuracy);
    bp_series_append (self->val_accuracy, e->x, e->val_accuracy);
    if (isfinite (e->val_accuracy)) {
      g_autofree char *text = g_strdup_printf ("%.1f%%", 100.0 * e->val_accuracy);
      gtk_label_set_text (self->val_accuracy_label, text);
    }
  }
  if (e->boundary) {
    const BpTrainBoundary *b = e->boundary;
    bp_plane_view_set_region (self->boundary_view, b->x0, b->x1, b->y0, b->y1, TRUE);
    bp_plane_view_set_classes (self->boundary_view, b->size, b->n_classes, b->probs);
    bp_plane_view_set_points (self->boundary_view, b->n_points, b->points, b->point_classes);
    g_autofree char *title = g_strdup_printf (_("After epoch %d"), e->epoch);
    bp_plane_view_set_title (self->boundary_view, title);
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
run_attention_cb (BpTrainRun *run, BpTrainAttention *a, BpTrainPage *self)
{
  bp_attention_map_set_data (self->attention_map, a->n_layers, a->n_heads, a->len,
                             (const char *const *) a->tokens, (const char *const *) a->layer_ids,
                             a->weights);
  /* TRANSLATORS: when the attention heatmap was taken: the training step */
  g_autofree char *text = g_strdup_printf (_("at step %ld"), (long) a->global_step);
  gtk_label_set_text (self->attention_step_label, text);
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
    /* TRANSLATORS: training throughput (a language model's in characters) */
    g_autofree char *text = g_strdup_printf (self->run_is_lm ? _("%.0f characters/s") : _("%.0f images/s"),
                                             p->images_per_second);
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
  if (state == BP_TRAIN_STATE_FINISHED && isfinite (p->test_r2)) {
    g_autofree char *text = g_strdup_printf (_("Finished: test R² %.3f"), p->test_r2);
    gtk_progress_bar_set_text (self->progress_bar, text);
    gtk_progress_bar_set_fraction (self->progress_bar, 1.0);
  } else if (state == BP_TRAIN_STATE_FINISHED && isfinite (p->test_accuracy)) {
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
  /* the cards follow the model trained (a continued run's may not be the one chosen) */
  const BpPreset *preset = config->model_json ? NULL : bp_preset_find (config->model);
  gboolean attention;
  double dropout;
  spec_kind (config->model_json ? config->model_json : preset ? preset->json : NULL,
             &self->run_is_lm, &attention, &dropout, NULL);
  update_cards (self, self->run_is_lm, attention && config->attention_every > 0,
                config->dataset);
  self->run = bp_train_run_new (config, N_SAMPLES);
  bp_train_run_set_device (self->run, device);
  g_signal_connect (self->run, "steps", G_CALLBACK (run_steps_cb), self);
  g_signal_connect (self->run, "epoch", G_CALLBACK (run_epoch_cb), self);
  g_signal_connect (self->run, "samples", G_CALLBACK (run_samples_cb), self);
  g_signal_connect (self->run, "attention", G_CALLBACK (run_attention_cb), self);
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
  update_model_kind (self);
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
  abandon_generation (self);
  disconnect_run (self);
  gtk_widget_dispose_template (GTK_WIDGET (self), BP_TYPE_TRAIN_PAGE);
  g_clear_object (&self->train_loss);
  g_clear_object (&self->val_loss);
  g_clear_object (&self->train_accuracy);
  g_clear_object (&self->val_accuracy);
  g_clear_object (&self->lr_series);
  g_clear_object (&self->model_names);
  g_clear_object (&self->dataset_names);
  g_clear_pointer (&self->dataset_ids, g_ptr_array_unref);
  g_clear_pointer (&self->custom_json, g_free);
  g_clear_pointer (&self->custom_name, g_free);
  g_clear_pointer (&self->dropout_json, g_free);
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
  g_type_ensure (BP_TYPE_ATTENTION_MAP);
  g_type_ensure (BP_TYPE_PLANE_VIEW);
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
  CHILD (dropout_row);
  CHILD (dropout_spin);
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
  CHILD (context_row);
  CHILD (steps_row);
  CHILD (attention_row);
  CHILD (context_spin);
  CHILD (steps_spin);
  CHILD (attention_spin);
  CHILD (samples_card);
  CHILD (confusion_card);
  CHILD (boundary_card);
  CHILD (boundary_view);
  CHILD (val_metric_title);
  CHILD (precision_row);
  CHILD (attention_card);
  CHILD (generate_card);
  CHILD (attention_map);
  CHILD (attention_step_label);
  CHILD (generate_message);
  CHILD (prompt_entry);
  CHILD (temperature_spin);
  CHILD (top_k_spin);
  CHILD (length_spin);
  CHILD (generate_view);
  CHILD (generate_button);
  CHILD (stop_generate_button);
#undef CHILD
  gtk_widget_class_bind_template_callback (widget_class, dismiss_error_cb);
  gtk_widget_class_bind_template_callback (widget_class, prompt_activate_cb);

  gtk_widget_class_install_action (widget_class, "train.start", NULL, start_action);
  gtk_widget_class_install_action (widget_class, "train.pause", NULL, pause_action);
  gtk_widget_class_install_action (widget_class, "train.resume", NULL, resume_action);
  gtk_widget_class_install_action (widget_class, "train.stop", NULL, stop_action);
  gtk_widget_class_install_action (widget_class, "train.set-lr", NULL, set_lr_action);
  gtk_widget_class_install_action (widget_class, "train.generate", NULL, generate_action);
  gtk_widget_class_install_action (widget_class, "train.stop-generating", NULL,
                                   stop_generating_action);

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

  /* data sets: filled by the model choice (corpora for language models) */
  self->dataset_names = gtk_string_list_new (NULL);
  self->dataset_ids = g_ptr_array_new ();
  adw_combo_row_set_model (self->dataset_row, G_LIST_MODEL (self->dataset_names));
  gtk_text_buffer_create_tag (gtk_text_view_get_buffer (self->generate_view), "prompt",
                              "weight", PANGO_WEIGHT_BOLD, NULL);

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
  update_cards (self, self->is_lm, self->has_attention, "fashion-mnist");

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

gboolean
bp_train_page_set_config (BpTrainPage *self, const BpTrainConfig *c, GError **error)
{
  g_return_val_if_fail (BP_IS_TRAIN_PAGE (self), FALSE);
  if (!bp_train_config_check (c, error))
    return FALSE;
  int n;
  const BpPreset *presets = bp_presets (&n);
  if (c->model_json) {
    bp_train_page_set_custom_model (self, c->model_json, c->model);
  } else {
    for (int k = 0; k < n; k++)
      if (g_strcmp0 (presets[k].name, c->model) == 0)
        adw_combo_row_set_selected (self->model_row, (guint) k);
  }
  /* the model decides the data sets offered */
  for (guint k = 0; k < self->dataset_ids->len; k++)
    if (g_strcmp0 (g_ptr_array_index (self->dataset_ids, k), c->dataset) == 0)
      adw_combo_row_set_selected (self->dataset_row, k);
  static const BpOptimKind kinds[] = {BP_OPTIM_SGD, BP_OPTIM_ADAM, BP_OPTIM_ADAMW};
  for (guint k = 0; k < G_N_ELEMENTS (kinds); k++)
    if (kinds[k] == c->optim.kind)
      adw_combo_row_set_selected (self->optimizer_row, k);
  static const BpSchedKind scheds[] = {BP_SCHED_CONSTANT, BP_SCHED_STEP, BP_SCHED_COSINE,
                                       BP_SCHED_PLATEAU};
  for (guint k = 0; k < G_N_ELEMENTS (scheds); k++)
    if (scheds[k] == c->sched.kind)
      adw_combo_row_set_selected (self->schedule_row, k);
  gtk_spin_button_set_value (self->lr_spin, c->optim.lr);
  gtk_spin_button_set_value (self->weight_decay_spin, c->optim.weight_decay);
  gtk_spin_button_set_value (self->epochs_spin, c->epochs);
  gtk_spin_button_set_value (self->batch_size_spin, (double) c->batch_size);
  gtk_spin_button_set_value (self->seed_spin, (double) c->seed);
  adw_combo_row_set_selected (self->precision_row, c->precision == BP_PRECISION_BF16 ? 1 : 0);
  if (self->is_lm) {
    if (c->context > 0)
      gtk_spin_button_set_value (self->context_spin, (double) c->context);
    if (c->steps_per_epoch > 0)
      gtk_spin_button_set_value (self->steps_spin, (double) c->steps_per_epoch);
  } else {
    gtk_spin_button_set_value (self->limit_train_spin, (double) c->limit_train);
    gtk_spin_button_set_value (self->limit_test_spin, (double) c->limit_test);
  }
  if (self->has_attention && c->attention_every > 0)
    gtk_spin_button_set_value (self->attention_spin, (double) c->attention_every);
  return TRUE;
}

static void
tag_run_created_cb (BpTrainPage *self, BpTrainRun *run, gpointer tags)
{
  bp_run_recording_set_tags (run, tags);
}

gboolean
bp_train_page_start_config (BpTrainPage *self, const BpTrainConfig *config,
                            const char *const *tags, GError **error)
{
  g_return_val_if_fail (BP_IS_TRAIN_PAGE (self), FALSE);
  if (self->run && bp_train_run_is_active (self->run)) {
    g_set_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_INVALID,
                 _("A run is training: stop it before starting another."));
    return FALSE;
  }
  /* the settings show what trains */
  if (!bp_train_page_set_config (self, config, error))
    return FALSE;
  clear_dashboard (self);
  gulong id = tags ? g_signal_connect (self, "run-created", G_CALLBACK (tag_run_created_cb),
                                       (gpointer) tags)
                   : 0;
  start_run (self, config, device_choice (self), 0);
  if (id)
    g_signal_handler_disconnect (self, id);
  return TRUE;
}
