/* bp-cmd-lessons.c: `backprop lessons` lists the guided lessons with their goals;
 * `backprop lesson show ID` prints one; `backprop lesson run ID` runs its experiment headless
 * (stored as runs tagged lesson:ID) and reports each goal as met or not (doc/lessons.md). */
#include "config.h"

#include "bp-cmd-lessons.h"

#include "bp-cli.h"

#include <errno.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bp-backend.h"
#include "bp-lesson.h"
#include "bp-plane-draw.h"
#include "bp-recorder.h"
#include "bp-store.h"
#include "bp-trainer.h"
#include "cuda/bp-cuda.h"

/* ---- JSON output, written by hand (json-glib 1.6 can write doubles as invalid JSON) ---- */

static void
put_string (GString *s, const char *key, const char *v)
{
  if (key)
    g_string_append_printf (s, "\"%s\":", key);
  if (!v) {
    g_string_append (s, "null");
    return;
  }
  g_autoptr (JsonNode) node = json_node_init_string (json_node_alloc (), v);
  g_autofree char *text = json_to_string (node, FALSE);
  g_string_append (s, text);
}

static void
put_number (GString *s, const char *key, double v)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE] = "null";
  if (isfinite (v))
    g_ascii_formatd (buf, sizeof buf, "%.6g", v);
  g_string_append_printf (s, "\"%s\":%s", key, buf);
}

/* "k0":v0,"k1":v1,... for the n keys and values (put_number each). */
static void
put_numbers (GString *s, int n, const char *const *keys, const double *values)
{
  for (int i = 0; i < n; i++) {
    if (i)
      g_string_append_c (s, ',');
    put_number (s, keys[i], values[i]);
  }
}

static void
put_text (GString *s, const char *key, const BpLessonText *t, const char *lang)
{
  put_string (s, key, bp_lesson_text_get (t, lang));
}

static void
put_goal (GString *s, const BpLessonGoal *g)
{
  g_autofree char *what = bp_lesson_goal_describe (g);
  g_string_append_c (s, '{');
  put_string (s, "type", g->kind == BP_LESSON_GOAL_COMPARE ? "compare" : "metric");
  g_string_append_c (s, ',');
  put_string (s, "metric", g->metric);
  if (g->class_name) {
    g_string_append_c (s, ',');
    put_string (s, "class", g->class_name);
  }
  g_string_append_c (s, ',');
  put_string (s, "op", bp_lesson_op_to_string (g->op));
  g_string_append_c (s, ',');
  if (g->kind == BP_LESSON_GOAL_COMPARE) {
    put_string (s, "a", g->a);
    g_string_append_c (s, ',');
    put_string (s, "b", g->b);
    g_string_append_c (s, ',');
    put_number (s, "margin", g->margin);
  } else {
    if (g->baseline) {
      put_string (s, "value", "unigram_baseline");
      g_string_append_c (s, ',');
      put_number (s, "offset", g->value);
    } else {
      put_number (s, "value", g->value);
    }
    g_string_append_printf (s, ",\"%s\":%d,",
                            bp_lesson_metric_is_descent (g->metric) ? "within_steps"
                                                                    : "within_epochs",
                            g->within_epochs);
    put_string (s, "variant", g->variant);
  }
  g_string_append_c (s, ',');
  put_string (s, "description", what);
  g_string_append_c (s, '}');
}

static void
put_goals (GString *s, const char *key, GPtrArray *goals)
{
  g_string_append_printf (s, "\"%s\":[", key);
  for (guint k = 0; k < goals->len; k++) {
    if (k)
      g_string_append_c (s, ',');
    put_goal (s, goals->pdata[k]);
  }
  g_string_append_c (s, ']');
}

/* ---- loading ---- */

static BpLessonSet *
load_lessons (const char *cmd, gboolean quiet)
{
  g_autoptr (GError) error = NULL;
  BpLessonSet *set = bp_lesson_set_load (NULL, &error);
  if (!set) {
    bp_cli_fail (cmd, error->message);
    return NULL;
  }
  for (guint k = 0; !quiet && k < set->warnings->len; k++)
    fprintf (stderr, "backprop %s: skipped %s\n", cmd, (const char *) set->warnings->pdata[k]);
  return set;
}

static gboolean
check_lang (const char *lang)
{
  return !lang || !strcmp (lang, "en") || !strcmp (lang, "zh_TW");
}

/* "mlp" or "spec model.json" */
static char *
variant_model (const BpLessonVariant *v)
{
  if (v->model)
    return g_strdup (v->model);
  g_autofree char *base = g_path_get_basename (v->spec_file);
  return g_strdup_printf ("spec %s", base);
}

/* ---- lessons ---- */

static void
list_json (const BpLessonSet *set, const char *lang)
{
  GString *s = g_string_new ("{");
  put_string (s, "dir", set->dir);
  g_string_append (s, ",\"modules\":[");
  for (guint k = 0; k < set->modules->len; k++) {
    BpLessonModule *m = set->modules->pdata[k];
    g_string_append_printf (s, "%s{", k ? "," : "");
    put_string (s, "id", m->id);
    g_string_append_printf (s, ",\"number\":%d,", m->number);
    put_text (s, "title", &m->title, lang);
    g_string_append (s, ",\"lessons\":[");
    for (guint j = 0; j < m->lessons->len; j++) {
      BpLesson *l = m->lessons->pdata[j];
      g_string_append_printf (s, "%s{", j ? "," : "");
      put_string (s, "id", l->id);
      g_string_append_c (s, ',');
      put_string (s, "number", l->number);
      g_string_append_c (s, ',');
      put_text (s, "title", &l->title, lang);
      g_string_append_printf (s, ",\"runnable\":%s,", l->experiment ? "true" : "false");
      put_string (s, "not_runnable", l->experiment ? NULL : bp_lesson_text_get (&l->not_runnable, lang));
      if (l->experiment && l->experiment->function) {
        g_string_append_c (s, ',');
        put_string (s, "function", l->experiment->function);
        g_string_append_printf (s, ",\"steps\":%d,\"runs\":[", l->experiment->steps);
        for (guint v = 0; v < l->experiment->variants->len; v++) {
          BpLessonVariant *var = l->experiment->variants->pdata[v];
          BpDescentConfig d;
          g_string_append_printf (s, "%s{", v ? "," : "");
          put_string (s, "id", var->id);
          g_string_append_c (s, ',');
          put_text (s, "title", &var->title, lang);
          if (bp_lesson_make_descent_config (l, var->id, &d, NULL)) {
            g_string_append_c (s, ',');
            put_string (s, "optimizer", bp_optim_kind_name (d.optim.kind));
            g_string_append_c (s, ',');
            put_number (s, "lr", d.optim.lr);
          }
          g_string_append_c (s, '}');
        }
        g_string_append_c (s, ']');
      } else if (l->experiment) {
        g_string_append_c (s, ',');
        put_string (s, "dataset", l->experiment->dataset);
        g_string_append (s, ",\"runs\":[");
        for (guint v = 0; v < l->experiment->variants->len; v++) {
          BpLessonVariant *var = l->experiment->variants->pdata[v];
          BpTrainConfig full, quick;
          g_autofree char *model = variant_model (var);
          g_string_append_printf (s, "%s{", v ? "," : "");
          put_string (s, "id", var->id);
          g_string_append_c (s, ',');
          put_text (s, "title", &var->title, lang);
          g_string_append_c (s, ',');
          put_string (s, "model", model);
          if (bp_lesson_make_config (l, var->id, FALSE, &full, NULL) &&
              bp_lesson_make_config (l, var->id, TRUE, &quick, NULL))
            g_string_append_printf (s, ",\"epochs\":%d,\"test_epochs\":%d", full.epochs,
                                    quick.epochs);
          g_string_append_c (s, '}');
        }
        g_string_append_c (s, ']');
      }
      g_string_append_c (s, ',');
      put_goals (s, "goals", l->goals);
      g_string_append_c (s, ',');
      put_goals (s, "test_goals", bp_lesson_get_goals (l, TRUE));
      g_string_append_printf (s, ",\"steps\":%u}", l->steps->len);
    }
    g_string_append (s, "]}");
  }
  g_string_append (s, "],\"warnings\":[");
  for (guint k = 0; k < set->warnings->len; k++) {
    if (k)
      g_string_append_c (s, ',');
    put_string (s, NULL, set->warnings->pdata[k]);
  }
  g_string_append (s, "]}");
  printf ("%s\n", s->str);
  g_string_free (s, TRUE);
}

static void
list_text (const BpLessonSet *set, const char *lang)
{
  for (guint k = 0; k < set->modules->len; k++) {
    BpLessonModule *m = set->modules->pdata[k];
    printf ("%s%d  %s\n", k ? "\n" : "", m->number, bp_lesson_text_get (&m->title, lang));
    for (guint j = 0; j < m->lessons->len; j++) {
      BpLesson *l = m->lessons->pdata[j];
      printf ("  %-5s %-24s %s\n", l->number, l->id, bp_lesson_text_get (&l->title, lang));
      if (!l->experiment) {
        printf ("        not runnable yet: %s\n", bp_lesson_text_get (&l->not_runnable, lang));
        continue;
      }
      GPtrArray *vs = l->experiment->variants;
      BpTrainConfig c;
      if (l->experiment->function) {
        printf ("        gradient descent on %s, %d step%s", l->experiment->function,
                l->experiment->steps, l->experiment->steps == 1 ? "" : "s");
      } else if (bp_lesson_make_config (l, NULL, FALSE, &c, NULL)) {
        g_autofree char *model = variant_model (vs->pdata[0]);
        printf ("        %s on %s, %d epoch%s", model, l->experiment->dataset, c.epochs,
                c.epochs == 1 ? "" : "s");
      } else {
        continue;
      }
      if (vs->len > 1) {
        printf ("; runs");
        for (guint v = 0; v < vs->len; v++)
          printf ("%s %s", v ? "," : "", ((BpLessonVariant *) vs->pdata[v])->id);
      }
      printf ("\n");
      for (guint g = 0; g < l->goals->len; g++) {
        g_autofree char *what = bp_lesson_goal_describe (l->goals->pdata[g]);
        printf ("        goal: %s\n", what);
      }
    }
  }
}

int
bp_cmd_lessons (int argc, char **argv)
{
  const char *cmd = "lessons";
  gboolean json = FALSE;
  g_autofree char *lang = NULL;
  GOptionEntry entries[] = {
    {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print a JSON object (modules, lessons, goals, warnings)", NULL},
    {"lang", 0, 0, G_OPTION_ARG_STRING, &lang, "Titles in en or zh_TW; default en", "LANG"},
    {NULL},
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- list the guided lessons");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_summary (ctx, "Lists the course's modules and lessons with their experiments and "
                                     "goals, from $BP_LESSONS_DIR or the installed lessons (doc/lessons.md). "
                                     "A malformed lesson is skipped with a warning.");
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return bp_cli_usage_error (cmd, "%s", error->message);
  if (argc > 1)
    return bp_cli_usage_error (cmd, "unexpected argument \"%s\"", argv[1]);
  if (!check_lang (lang))
    return bp_cli_usage_error (cmd, "--lang must be en or zh_TW, not \"%s\"", lang);
  g_autoptr (BpLessonSet) set = load_lessons (cmd, json);
  if (!set)
    return 1;
  if (json)
    list_json (set, lang);
  else
    list_text (set, lang);
  return 0;
}

/* ---- lesson show ---- */

static void
print_action (const BpLessonAction *a)
{
  if (a->kind == BP_LESSON_ACTION_NONE)
    return;
  printf ("     [%s", bp_lesson_action_kind_to_string (a->kind));
  if (a->variant)
    printf (" %s", a->variant);
  if (a->view)
    printf (" %s", a->view);
  if (a->config_json)
    printf (" %s", a->config_json);
  printf ("]\n");
}

static int
lesson_show (const char *cmd, int argc, char **argv)
{
  g_autofree char *lang = NULL;
  GOptionEntry entries[] = {
    {"lang", 0, 0, G_OPTION_ARG_STRING, &lang, "The text in en or zh_TW; default en", "LANG"},
    {NULL},
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("ID - print a lesson");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_summary (ctx, "Prints a lesson (id or number, e.g. 1.3): its text, steps and goals.");
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return bp_cli_usage_error (cmd, "%s", error->message);
  if (argc < 2)
    return bp_cli_usage_error (cmd, "which lesson? (see `backprop lessons`)");
  if (argc > 2)
    return bp_cli_usage_error (cmd, "unexpected argument \"%s\"", argv[2]);
  if (!check_lang (lang))
    return bp_cli_usage_error (cmd, "--lang must be en or zh_TW, not \"%s\"", lang);
  g_autoptr (BpLessonSet) set = load_lessons (cmd, TRUE);
  if (!set)
    return 1;
  const BpLesson *l = bp_lesson_set_find (set, argv[1]);
  if (!l)
    return bp_cli_usage_error (cmd, "no lesson \"%s\" (see `backprop lessons`)", argv[1]);
  g_autofree char *text = bp_lesson_read_text (l, lang, &error);
  if (!text)
    return bp_cli_fail (cmd, error->message);
  printf ("%s %s: %s\n\n%s", l->number, l->id, bp_lesson_text_get (&l->title, lang), text);
  if (!g_str_has_suffix (text, "\n"))
    printf ("\n");
  if (l->steps->len)
    printf ("\nSteps:\n");
  for (guint k = 0; k < l->steps->len; k++) {
    const BpLessonStep *s = l->steps->pdata[k];
    printf ("  %u. %s\n", k + 1, bp_lesson_text_get (&s->text, lang));
    print_action (&s->action);
  }
  if (!l->experiment)
    printf ("\nNot runnable yet: %s\n", bp_lesson_text_get (&l->not_runnable, lang));
  if (l->goals->len)
    printf ("\nGoals (backprop lesson run %s):\n", l->id);
  for (guint k = 0; k < l->goals->len; k++) {
    g_autofree char *what = bp_lesson_goal_describe (l->goals->pdata[k]);
    printf ("  - %s\n", what);
  }
  return 0;
}

/* ---- lesson run ---- */

typedef struct {
  gboolean json, tty;
  const char *variant;
  BpLessonEval *eval;
  BpRecorder *recorder;
  GError *record_error;
  GPtrArray *paths;     /* --png of a function experiment: a GArray of (x, y) per run */
} RunOutput;

/* The share of class c's validation examples predicted right (NaN without any). */
static double
class_accuracy (const BpTrainEvent *ev, int c)
{
  int64_t all = 0;
  for (int j = 0; j < ev->n_classes; j++)
    all += ev->confusion[(gsize) c * ev->n_classes + j];
  return all ? (double) ev->confusion[(gsize) c * ev->n_classes + c] / (double) all : NAN;
}

static gboolean
run_event (const BpTrainEvent *ev, gpointer user_data)
{
  RunOutput *out = user_data;
  if (out->record_error)
    return FALSE;
  if (out->recorder && !bp_recorder_event (out->recorder, ev, &out->record_error))
    return FALSE;
  bp_lesson_eval_event (out->eval, out->variant, ev);
  g_autoptr (GString) s = g_string_new (NULL);
  switch (ev->kind) {
  case BP_TRAIN_EVENT_START:
    if (!out->json)
      printf ("training on %" G_GINT64_FORMAT " %s (%" G_GINT64_FORMAT " for validation), %"
              G_GINT64_FORMAT " parameters\n", ev->n_train,
              isfinite (ev->baseline_loss) ? "characters" : "examples", ev->n_val, ev->n_params);
    break;
  case BP_TRAIN_EVENT_STEP:
    if (!out->json && out->tty && ev->step % 20 == 0) {
      printf ("\repoch %d/%d: %3d%% loss %.4f ", ev->epoch, ev->epochs,
              (int) (100 * ev->step / MAX (1, ev->steps_per_epoch)), ev->loss);
      fflush (stdout);
    }
    break;
  case BP_TRAIN_EVENT_EPOCH:
    if (out->json) {
      g_string_append (s, "{\"event\":\"epoch\",");
      put_string (s, "run", out->variant);
      g_string_append_printf (s, ",\"epoch\":%d,", ev->epoch);
      put_numbers (s, 7,
                   (const char *const[]){"train_loss", "train_accuracy", "val_loss",
                                         "val_accuracy", "val_r2", "baseline_loss", "seconds"},
                   (const double[]){ev->train_loss, ev->train_accuracy, ev->val_loss,
                                    ev->val_accuracy, ev->val_r2, ev->baseline_loss,
                                    ev->seconds});
      if (ev->confusion && ev->class_names) {
        g_string_append (s, ",\"class_accuracy\":{");
        for (int c = 0; c < ev->n_classes; c++) {
          g_string_append (s, c ? "," : "");
          put_number (s, ev->class_names[c], class_accuracy (ev, c));
        }
        g_string_append_c (s, '}');
      }
      g_string_append_c (s, '}');
      printf ("%s\n", s->str);
    } else {
      if (ev->task == BP_TASK_REGRESSION)
        printf ("%sepoch %d/%d: train loss %.4f; val loss %.4f, R² %.4f",
                out->tty ? "\r\033[K" : "", ev->epoch, ev->epochs, ev->train_loss, ev->val_loss,
                ev->val_r2);
      else
        printf ("%sepoch %d/%d: train loss %.4f, accuracy %.4f; val loss %.4f, accuracy %.4f",
                out->tty ? "\r\033[K" : "", ev->epoch, ev->epochs, ev->train_loss,
                ev->train_accuracy, ev->val_loss, ev->val_accuracy);
      if (isfinite (ev->baseline_loss))
        printf (" (unigram baseline %.4f)", ev->baseline_loss);
      printf (" %.1f s\n", ev->seconds);
      /* after the last epoch: which classes the model gets right (the confusion matrix's
       * diagonal over its rows) */
      if (ev->epoch == ev->epochs && ev->confusion && ev->class_names) {
        printf ("val accuracy by class:");
        for (int c = 0; c < ev->n_classes; c++)
          printf ("%s %s %.3f", c ? "," : "", ev->class_names[c], class_accuracy (ev, c));
        printf ("\n");
      }
    }
    break;
  case BP_TRAIN_EVENT_DONE:
    if (out->json) {
      g_string_append (s, "{\"event\":\"done\",");
      put_string (s, "run", out->variant);
      g_string_append_c (s, ',');
      put_numbers (s, 4, (const char *const[]){"test_loss", "test_accuracy", "test_r2", "seconds"},
                   (const double[]){ev->test_loss, ev->test_accuracy, ev->test_r2,
                                    ev->seconds});
      g_string_append_c (s, '}');
      printf ("%s\n", s->str);
    } else if (isfinite (ev->test_r2)) {
      printf ("%stest loss %.4f, test R² %.4f, %.1f s in all\n", out->tty ? "\r\033[K" : "",
              ev->test_loss, ev->test_r2, ev->seconds);
    } else if (isfinite (ev->test_accuracy)) {
      /* a language model has no test split: its final figures are the validation ones */
      printf ("%s%s loss %.4f, %s accuracy %.4f, %.1f s in all\n", out->tty ? "\r\033[K" : "",
              isfinite (ev->baseline_loss) ? "val" : "test", ev->test_loss,
              isfinite (ev->baseline_loss) ? "val" : "test", ev->test_accuracy, ev->seconds);
    }
    break;
  default:
    break;
  }
  fflush (stdout);
  return !bp_cli_stop_signal () && !out->record_error;
}

static const char *
state_name (BpLessonGoalState state)
{
  return state == BP_LESSON_GOAL_MET ? "met" : state == BP_LESSON_GOAL_MISSED ? "not met" : "pending";
}

static void
report_goals (BpLessonEval *eval, gboolean json)
{
  if (!json)
    printf ("\ngoals:\n");
  for (guint k = 0; k < bp_lesson_eval_get_n_goals (eval); k++) {
    const BpLessonGoal *g = bp_lesson_eval_get_goal (eval, k);
    const BpLessonGoalResult *r = bp_lesson_eval_get_result (eval, k);
    g_autofree char *what = bp_lesson_goal_describe (g);
    if (json) {
      g_autoptr (GString) s = g_string_new ("{\"event\":\"goal\",");
      put_string (s, "description", what);
      g_string_append_c (s, ',');
      put_string (s, "state", state_name (r->state));
      g_string_append_printf (s, ",\"met\":%s,", r->state == BP_LESSON_GOAL_MET ? "true" : "false");
      put_number (s, "value", r->value);
      g_string_append_c (s, ',');
      put_number (s, "target", r->target);
      if (g->kind == BP_LESSON_GOAL_COMPARE) {
        g_string_append_c (s, ',');
        put_number (s, "other", r->other);
      } else if (r->state == BP_LESSON_GOAL_MET) {
        g_string_append_printf (s, ",\"%s\":%d",
                                bp_lesson_metric_is_descent (g->metric) ? "step" : "epoch",
                                r->epoch);
      }
      g_string_append (s, ",\"goal\":");
      put_goal (s, g);
      g_string_append_c (s, '}');
      printf ("%s\n", s->str);
      continue;
    }
    printf ("  %-8s %s: ", r->state == BP_LESSON_GOAL_MET ? "met" : "NOT MET", what);
    if (g->kind == BP_LESSON_GOAL_COMPARE)
      printf ("%s %.4f, %s %.4f", g->a, r->value, g->b, r->other);
    else if (r->state == BP_LESSON_GOAL_MET)
      printf ("%.4g at %s %d", r->value,
              bp_lesson_metric_is_descent (g->metric) ? "step" : "epoch", r->epoch);
    else if (isnan (r->value))
      printf ("no figure");
    else
      printf ("best %.4f", r->value);
    if (g->baseline && isfinite (r->target))
      printf (" (target %.4f)", r->target);
    printf ("\n");
  }
}

/* Trains one run of the lesson; FALSE (with error) when the lesson cannot go on. A run whose
 * loss became NaN fails alone: its goals are missed and the next run starts. */
static gboolean
run_variant (const BpLesson *l, const BpLessonVariant *v, guint index, gboolean quick,
             BpDevice device, BpStore *store, RunOutput *out, GError **error)
{
  BpTrainConfig c;
  if (!bp_lesson_make_config (l, v->id, quick, &c, error))
    return FALSE;
  c.device = device;
  guint n = l->experiment->variants->len;
  g_autofree char *model = variant_model (v);
  if (out->json) {
    g_autoptr (GString) s = g_string_new ("{\"event\":\"run\",");
    put_string (s, "run", v->id);
    g_string_append_printf (s, ",\"index\":%u,\"runs\":%u,", index + 1, n);
    put_string (s, "model", model);
    g_string_append_printf (s, ",\"epochs\":%d}", c.epochs);
    printf ("%s\n", s->str);
  } else if (v->id) {
    printf ("\nrun %u of %u, %s: %s (%s, %d epoch%s)\n", index + 1, n, v->id, v->title.en, model,
            c.epochs, c.epochs == 1 ? "" : "s");
  } else {
    printf ("\n%s on %s, %d epoch%s\n", model, c.dataset, c.epochs, c.epochs == 1 ? "" : "s");
  }
  BpTrainer *trainer = bp_trainer_new (&c, error);
  if (!trainer)
    return FALSE;
  g_autofree char *tag = bp_lesson_run_tag (l);
  const char *tags[] = {tag, quick ? "quick" : NULL, NULL};
  g_autofree char *name = v->id ? g_strdup_printf ("%s/%s", l->id, v->id) : g_strdup (l->id);
  BpRecorderOptions ro = BP_RECORDER_OPTIONS_INIT;
  ro.name = name;
  ro.tags = tags;
  ro.checkpoint_every = 0;
  ro.keep_checkpoints = 1;
  ro.threads = bp_get_num_threads ();
  out->variant = v->id;
  out->recorder = store ? bp_recorder_new (store, trainer, &ro, error) : NULL;
  if (store && !out->recorder) {
    bp_trainer_free (trainer);
    return FALSE;
  }
  g_autoptr (GError) train_error = NULL;
  gboolean ok = bp_trainer_run (trainer, run_event, out, &train_error);
  gboolean result = TRUE;
  if (out->record_error) {
    if (out->recorder)
      bp_recorder_finish (out->recorder, BP_RUN_FAILED, out->record_error->message, NULL);
    g_propagate_error (error, g_steal_pointer (&out->record_error));
    result = FALSE;
  } else {
    BpRunStatus status = !ok ? BP_RUN_FAILED
                         : bp_trainer_get_epochs_done (trainer) >= c.epochs ? BP_RUN_FINISHED
                                                                           : BP_RUN_STOPPED;
    if (out->recorder) {
      g_autofree char *reason = !ok ? g_strdup (train_error->message)
                                : bp_cli_stop_signal () ? g_strdup ("stopped by a signal") : NULL;
      if (!bp_recorder_finish (out->recorder, status, reason, error))
        result = FALSE;
      else if (!out->json) {
        g_autofree char *shown = g_filename_display_name (bp_store_get_path (store));
        printf ("run %" G_GINT64_FORMAT " (%s) stored in %s\n",
                bp_recorder_get_run_id (out->recorder), bp_run_status_to_string (status), shown);
      }
    }
    if (!ok && g_error_matches (train_error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_NUMERIC)) {
      /* a diverging run is a lesson's possible outcome (a learning rate too large) */
      if (out->json) {
        g_autoptr (GString) s = g_string_new ("{\"event\":\"diverged\",");
        put_string (s, "run", v->id);
        g_string_append_c (s, ',');
        put_string (s, "error", train_error->message);
        g_string_append_c (s, '}');
        printf ("%s\n", s->str);
      } else {
        printf ("%sthe run diverged: %s\n", out->tty ? "\r\033[K" : "", train_error->message);
      }
    } else if (!ok && result) {
      g_propagate_error (error, g_steal_pointer (&train_error));
      result = FALSE;
    }
  }
  if (!out->json && out->tty && !ok)
    printf ("\n");
  bp_lesson_eval_run_ended (out->eval, v->id);
  bp_recorder_free (out->recorder);
  out->recorder = NULL;
  bp_trainer_free (trainer);
  return result;
}

/* A function experiment's run: prints its path (JSON: every point; text: about ten of them
 * and the last) and feeds the goals. */
static gboolean
descent_point (const BpDescentPoint *p, gpointer user_data)
{
  RunOutput *out = user_data;
  bp_lesson_eval_descent (out->eval, out->variant, p);
  if (out->paths && !p->diverged) {
    GArray *path = out->paths->pdata[out->paths->len - 1];
    double xy[2] = {p->x, p->y};
    g_array_append_vals (path, xy, 2);
  }
  int every = MAX (1, p->steps / 10);
  if (out->json) {
    g_autoptr (GString) s = g_string_new ("{\"event\":\"point\",");
    put_string (s, "run", out->variant);
    g_string_append_printf (s, ",\"step\":%d,", p->step);
    put_numbers (s, 7,
                 (const char *const[]){"x", "y", "value", "grad_x", "grad_y", "distance",
                                       "grad_error"},
                 (const double[]){p->x, p->y, p->value, p->grad_x, p->grad_y, p->distance,
                                  p->grad_error});
    g_string_append_printf (s, ",\"diverged\":%s}", p->diverged ? "true" : "false");
    printf ("%s\n", s->str);
  } else if (p->diverged) {
    printf ("the path left the finite numbers after step %d: stopped there\n", p->step);
  } else if (p->step % every == 0 || p->step == p->steps) {
    printf ("step %4d  x %10.4g  y %10.4g  f %10.4g  gradient (%.4g, %.4g)\n", p->step, p->x,
            p->y, p->value, p->grad_x, p->grad_y);
    if (p->step == p->steps)
      printf ("distance to the minimum %.4g; autograd vs the formula: largest difference %.2g\n",
              p->distance, p->grad_error);
  }
  fflush (stdout);
  return !bp_cli_stop_signal ();
}

static gboolean
run_descent (const BpLesson *l, const BpLessonVariant *v, guint index, RunOutput *out,
             GError **error)
{
  BpDescentConfig c;
  if (!bp_lesson_make_descent_config (l, v->id, &c, error))
    return FALSE;
  const BpDescentFunction *f = bp_descent_function_find (c.function);
  guint n = l->experiment->variants->len;
  if (out->json) {
    g_autoptr (GString) s = g_string_new ("{\"event\":\"run\",");
    put_string (s, "run", v->id);
    g_string_append_printf (s, ",\"index\":%u,\"runs\":%u,", index + 1, n);
    put_string (s, "function", c.function);
    g_string_append_c (s, ',');
    put_string (s, "optimizer", bp_optim_kind_name (c.optim.kind));
    g_string_append_c (s, ',');
    put_number (s, "lr", c.optim.lr);
    g_string_append_printf (s, ",\"steps\":%d}", c.steps);
    printf ("%s\n", s->str);
  } else {
    if (v->id)
      printf ("\nrun %u of %u, %s: %s\n", index + 1, n, v->id, v->title.en);
    else
      printf ("\n");
    printf ("%s, %s lr %g, %d steps\n", f->formula, bp_optim_kind_name (c.optim.kind),
            (double) c.optim.lr, c.steps);
  }
  out->variant = v->id;
  if (out->paths)
    g_ptr_array_add (out->paths, g_array_new (FALSE, FALSE, sizeof (double)));
  gboolean ok = bp_descent_run (&c, descent_point, out, error);
  bp_lesson_eval_run_ended (out->eval, v->id);
  return ok;
}

/* The function's contour lines with the runs' paths, as a PNG. */
static gboolean
write_paths_png (const BpLesson *l, GPtrArray *paths, const char *png, GError **error)
{
  enum { N = 160 };
  const BpDescentFunction *f = bp_descent_function_find (l->experiment->function);
  g_autofree float *field = g_new (float, N * N);
  bp_descent_sample (f, N, field);
  g_autofree BpPlanePath *drawn = g_new0 (BpPlanePath, MAX (paths->len, 1));
  for (guint k = 0; k < paths->len; k++) {
    GArray *a = paths->pdata[k];
    const BpLessonVariant *v = l->experiment->variants->pdata[k];
    drawn[k].xy = (const double *) (void *) a->data;
    drawn[k].n = (int) (a->len / 2);
    drawn[k].label = v->id;
    bp_plane_path_color ((int) k, &drawn[k].rgba[0], &drawn[k].rgba[1], &drawn[k].rgba[2]);
    drawn[k].rgba[3] = 1.0;
  }
  BpPlane p;
  bp_plane_init (&p);
  p.x0 = f->x0, p.x1 = f->x1, p.y0 = f->y0, p.y1 = f->y1;
  p.field = field;
  p.field_size = N;
  p.field_log = TRUE;
  p.paths = drawn;
  p.n_paths = (int) paths->len;
  p.marks = &f->minima[0][0];
  p.n_marks = f->n_minima;
  p.title = f->formula;
  return bp_plane_write_png (&p, png, 900, 620, error);
}

static int
lesson_run (const char *cmd, int argc, char **argv)
{
  gboolean quick = FALSE, json = FALSE, no_store = FALSE;
  g_autofree char *db = NULL, *device = NULL, *s_threads = NULL, *png = NULL;
  GOptionEntry entries[] = {
    {"quick", 0, 0, G_OPTION_ARG_NONE, &quick, "Run the lesson's reduced test budget and check its test goals", NULL},
    {"db", 0, 0, G_OPTION_ARG_FILENAME, &db, "Experiment database; default $XDG_DATA_HOME/backprop-lab/experiments.db", "PATH"},
    {"no-store", 0, 0, G_OPTION_ARG_NONE, &no_store, "Do not store the runs", NULL},
    {"device", 0, 0, G_OPTION_ARG_STRING, &device, "cpu, cuda or auto; default auto", "DEV"},
    {"threads", 0, 0, G_OPTION_ARG_STRING, &s_threads, "CPU threads; default all cores", "N"},
    {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON object per line: runs, epochs, goals, a summary", NULL},
    {"png", 0, 0, G_OPTION_ARG_FILENAME, &png, "A function experiment (lesson 1.2): draw its contour lines with the runs' paths into this PNG file", "FILE"},
    {NULL},
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("ID - run a lesson's experiment and check its goals");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_summary (ctx, "Trains the runs of a lesson's experiment (id or number, e.g. 1.3) headless, "
                                     "stores them tagged lesson:ID, and reports each goal as met or not. "
                                     "Exit status 0 when every goal is met, 1 otherwise.");
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return bp_cli_usage_error (cmd, "%s", error->message);
  if (argc < 2)
    return bp_cli_usage_error (cmd, "which lesson? (see `backprop lessons`)");
  if (argc > 2)
    return bp_cli_usage_error (cmd, "unexpected argument \"%s\"", argv[2]);
  if (no_store && db)
    return bp_cli_usage_error (cmd, "--no-store cannot be used with --db");
  gint64 threads = 0;
  if (s_threads) {
    char *end = NULL;
    errno = 0;
    threads = g_ascii_strtoll (s_threads, &end, 10);
    if (errno || !*s_threads || *end || threads < 1 || threads > 1024)
      return bp_cli_usage_error (
          cmd, "--threads needs a whole number between 1 and 1024, not \"%s\"", s_threads);
  }
  g_autoptr (BpLessonSet) set = load_lessons (cmd, FALSE);
  if (!set)
    return 1;
  const BpLesson *l = bp_lesson_set_find (set, argv[1]);
  if (!l)
    return bp_cli_usage_error (cmd, "no lesson \"%s\" (see `backprop lessons`)", argv[1]);
  if (!l->experiment) {
    g_autofree char *msg = g_strdup_printf ("lesson %s has no experiment the trainer can run yet: %s",
                                            l->id, l->not_runnable.en);
    return bp_cli_fail (cmd, msg);
  }
  BpDevice dev = BP_DEVICE_CPU;
  /* a function experiment runs on the CPU, as the formula is worked out */
  if (!l->experiment->function &&
      !bp_cli_choose_device (device ? device : "auto", &dev, json, &error))
    return bp_cli_usage_error (cmd, "%s", error->message);
  bp_set_num_threads ((int) threads);

  BpStore *store = NULL;
  if (!no_store) {
    store = bp_store_open (db, &error);
    if (!store)
      return bp_cli_fail (cmd, error->message);
  }
  bp_cli_catch_stop_signals ();

  g_autoptr (BpLessonEval) eval = bp_lesson_eval_new (l, quick);
  if (png && !l->experiment->function)
    return bp_cli_usage_error (cmd, "--png draws a function experiment's paths; lesson %s trains "
                                    "a model", l->id);
  g_autoptr (GPtrArray) paths = png ? g_ptr_array_new_with_free_func ((GDestroyNotify) g_array_unref)
                                    : NULL;
  RunOutput out = {json, !json && isatty (STDOUT_FILENO), NULL, eval, NULL, NULL, paths};
  if (json) {
    g_autoptr (GString) s = g_string_new ("{\"event\":\"lesson\",");
    put_string (s, "id", l->id);
    g_string_append_c (s, ',');
    put_string (s, "number", l->number);
    g_string_append_c (s, ',');
    put_string (s, "title", l->title.en);
    g_string_append_printf (s, ",\"quick\":%s,\"runs\":%u}", quick ? "true" : "false",
                            l->experiment->variants->len);
    printf ("%s\n", s->str);
  } else {
    printf ("lesson %s %s: %s%s\n", l->number, l->id, l->title.en,
            quick ? " (quick: the test budget)" : "");
  }
  int rc = 0;
  GPtrArray *vs = l->experiment->variants;
  for (guint k = 0; k < vs->len && !bp_cli_stop_signal (); k++)
    if (l->experiment->function ? !run_descent (l, vs->pdata[k], k, &out, &error)
                                : !run_variant (l, vs->pdata[k], k, quick, dev, store, &out,
                                                &error)) {
      rc = bp_cli_fail (cmd, error->message);
      break;
    }
  bp_store_close (store);
  if (rc)
    return rc;
  if (png && !write_paths_png (l, paths, png, &error))
    return bp_cli_fail (cmd, error->message);
  if (png && !json) {
    g_autofree char *shown = g_filename_display_name (png);
    printf ("drew the paths into %s\n", shown);
  }
  if (bp_cli_stop_signal ())
    return 128 + bp_cli_stop_signal ();
  report_goals (eval, json);
  guint met = bp_lesson_eval_count (eval, BP_LESSON_GOAL_MET);
  guint n = bp_lesson_eval_get_n_goals (eval);
  if (json)
    printf ("{\"event\":\"summary\",\"goals\":%u,\"met\":%u,\"all_met\":%s}\n", n, met,
            met == n ? "true" : "false");
  else
    printf ("%u of %u goal%s met\n", met, n, n == 1 ? "" : "s");
  return met == n ? 0 : 1;
}

int
bp_cmd_lesson (int argc, char **argv)
{
  const char *cmd = "lesson";
  if (argc < 2 || !strcmp (argv[1], "--help") || !strcmp (argv[1], "-h")) {
    FILE *f = argc < 2 ? stderr : stdout;
    fprintf (f, "Usage: backprop lesson show ID [--lang en|zh_TW]\n"
                "       backprop lesson run ID [--quick] [--db PATH] [--no-store] [--json]\n\n"
                "show prints a lesson's text, steps and goals; run trains its experiment headless\n"
                "and reports each goal as met or not (exit status 0 when all are met).\n"
                "ID is a lesson's id or number (see `backprop lessons`).\n");
    return argc < 2 ? BP_CLI_EXIT_USAGE : 0;
  }
  g_autofree char *sub = g_strdup_printf ("lesson %s", argv[1]);
  if (!strcmp (argv[1], "show"))
    return lesson_show (sub, argc - 1, argv + 1);
  if (!strcmp (argv[1], "run"))
    return lesson_run (sub, argc - 1, argv + 1);
  return bp_cli_usage_error (cmd, "unknown sub-command \"%s\" (show or run)", argv[1]);
}
