/* bp-lesson.c: loading and checking the lessons folder, the configs of a lesson's runs and
 * the evaluation of its goals against training events (doc/lessons.md). */
#include "config.h"

#include "bp-lesson.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

#include "bp-spec.h"
#include "bp-text.h"

G_DEFINE_QUARK (bp-lesson-error-quark, bp_lesson_error)

/* ---- small things ---- */

const char *
bp_lesson_text_get (const BpLessonText *text, const char *lang)
{
  g_return_val_if_fail (text != NULL, "");
  if (lang && g_ascii_strncasecmp (lang, "zh", 2) == 0 && text->zh_TW)
    return text->zh_TW;
  return text->en ? text->en : "";
}

static void
text_clear (BpLessonText *t)
{
  g_clear_pointer (&t->en, g_free);
  g_clear_pointer (&t->zh_TW, g_free);
}

static const char *const op_names[] = {">=", "<=", ">", "<"};

const char *
bp_lesson_op_to_string (BpLessonOp op)
{
  return (guint) op < G_N_ELEMENTS (op_names) ? op_names[op] : "?";
}

static const char *const action_names[] = {"none", "load-model", "set-config", "start-training",
                                           "open-view", "compare-runs"};

const char *
bp_lesson_action_kind_to_string (BpLessonActionKind kind)
{
  return (guint) kind < G_N_ELEMENTS (action_names) ? action_names[kind] : "?";
}

static const char *const view_names[] = {"builder", "train", "curves", "confusion-matrix",
                                         "attention-heatmap", "samples", "experiments",
                                         "generate", NULL};

const char *const *
bp_lesson_view_names (void)
{
  return view_names;
}

static const char *const metric_names[] = {"train_loss", "train_accuracy", "val_loss",
                                           "val_accuracy", "test_loss", "test_accuracy",
                                           "val_class_accuracy", "val_r2", "test_r2", NULL};
static const char *const descent_metric_names[] = {"value", "distance", "grad_error", NULL};

static gboolean
str_in (const char *s, const char *const *list)
{
  for (int k = 0; list[k]; k++)
    if (g_strcmp0 (s, list[k]) == 0)
      return TRUE;
  return FALSE;
}

gboolean
bp_lesson_metric_is_descent (const char *metric)
{
  return str_in (metric, descent_metric_names);
}

static gboolean
metric_is_test (const char *metric)
{
  return g_str_has_prefix (metric, "test_");
}

static gboolean
metric_is_loss (const char *metric)
{
  return g_str_has_suffix (metric, "_loss");
}

static void
goal_free (gpointer p)
{
  BpLessonGoal *g = p;
  g_free (g->metric);
  g_free (g->class_name);
  g_free (g->variant);
  g_free (g->a);
  g_free (g->b);
  g_free (g);
}

static void
variant_free (gpointer p)
{
  BpLessonVariant *v = p;
  g_free (v->id);
  text_clear (&v->title);
  g_free (v->model);
  g_free (v->spec_file);
  g_free (v->spec_json);
  g_free (v->config_json);
  g_free (v);
}

static void
experiment_free (BpLessonExperiment *x)
{
  if (!x)
    return;
  g_free (x->dataset);
  g_free (x->function);
  g_free (x->config_json);
  g_free (x->test_budget_json);
  g_ptr_array_unref (x->variants);
  g_free (x);
}

static void
step_free (gpointer p)
{
  BpLessonStep *s = p;
  text_clear (&s->text);
  g_free (s->action.variant);
  g_free (s->action.config_json);
  g_free (s->action.view);
  g_free (s);
}

static void
lesson_free (gpointer p)
{
  BpLesson *l = p;
  if (!l)
    return;
  g_free (l->id);
  g_free (l->number);
  g_free (l->module_id);
  g_free (l->dir);
  text_clear (&l->title);
  experiment_free (l->experiment);
  text_clear (&l->not_runnable);
  g_ptr_array_unref (l->steps);
  g_ptr_array_unref (l->goals);
  g_ptr_array_unref (l->test_goals);
  g_free (l);
}

static void
module_free (gpointer p)
{
  BpLessonModule *m = p;
  g_free (m->id);
  text_clear (&m->title);
  g_free (m->dir);
  g_ptr_array_unref (m->lessons);
  g_free (m);
}

void
bp_lesson_set_free (BpLessonSet *set)
{
  if (!set)
    return;
  g_free (set->dir);
  g_ptr_array_unref (set->modules);
  g_ptr_array_unref (set->warnings);
  g_free (set);
}

static char *
format_number (double v)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  return g_strdup (g_ascii_formatd (buf, sizeof buf, "%g", v));
}

char *
bp_lesson_goal_describe (const BpLessonGoal *g)
{
  g_return_val_if_fail (g != NULL, NULL);
  GString *s = g_string_new (g->metric);
  if (g->class_name)
    g_string_append_printf (s, "[%s]", g->class_name);
  if (g->kind == BP_LESSON_GOAL_COMPARE) {
    /* the threshold is b + margin for >= and >, b - margin for <= and < */
    double offset = g->op == BP_LESSON_OP_GE || g->op == BP_LESSON_OP_GT ? g->margin : -g->margin;
    g_autofree char *margin = format_number (fabs (offset));
    g_string_append_printf (s, " of run %s %s run %s's", g->a, bp_lesson_op_to_string (g->op),
                            g->b);
    if (offset != 0)
      g_string_append_printf (s, " %s %s", offset > 0 ? "+" : "-", margin);
    return g_string_free (s, FALSE);
  }
  g_autofree char *value = format_number (fabs (g->value));
  g_string_append_printf (s, " %s ", bp_lesson_op_to_string (g->op));
  if (g->baseline) {
    g_string_append (s, "the unigram baseline");
    if (g->value != 0)
      g_string_append_printf (s, " %s %s", g->value < 0 ? "-" : "+", value);
  } else {
    g_autofree char *v = format_number (g->value);
    g_string_append (s, v);
  }
  if (g->within_epochs > 0)
    g_string_append_printf (s, " within %d %s%s", g->within_epochs,
                            bp_lesson_metric_is_descent (g->metric) ? "step" : "epoch",
                            g->within_epochs == 1 ? "" : "s");
  if (g->variant)
    g_string_append_printf (s, " (run %s)", g->variant);
  return g_string_free (s, FALSE);
}

/* ---- JSON written back as text ----
 * json-glib 1.6 can write doubles as invalid JSON ("1e+20.0"); configs travel as text to
 * bp_train_config_from_json, so they are written here. */

static void
write_json (GString *s, JsonNode *n)
{
  switch (json_node_get_node_type (n)) {
  case JSON_NODE_OBJECT: {
    JsonObject *o = json_node_get_object (n);
    g_autoptr (GList) members = json_object_get_members (o);
    g_string_append_c (s, '{');
    for (GList *l = members; l; l = l->next) {
      g_autoptr (JsonNode) key = json_node_init_string (json_node_alloc (), l->data);
      g_autofree char *k = json_to_string (key, FALSE);
      g_string_append_printf (s, "%s%s:", l == members ? "" : ",", k);
      write_json (s, json_object_get_member (o, l->data));
    }
    g_string_append_c (s, '}');
    break;
  }
  case JSON_NODE_ARRAY: {
    JsonArray *a = json_node_get_array (n);
    g_string_append_c (s, '[');
    for (guint k = 0; k < json_array_get_length (a); k++) {
      if (k)
        g_string_append_c (s, ',');
      write_json (s, json_array_get_element (a, k));
    }
    g_string_append_c (s, ']');
    break;
  }
  case JSON_NODE_VALUE:
    if (json_node_get_value_type (n) == G_TYPE_DOUBLE) {
      char buf[G_ASCII_DTOSTR_BUF_SIZE];
      g_string_append (s, g_ascii_formatd (buf, sizeof buf, "%.17g", json_node_get_double (n)));
    } else {
      g_autofree char *t = json_to_string (n, FALSE);
      g_string_append (s, t);
    }
    break;
  case JSON_NODE_NULL:
    g_string_append (s, "null");
    break;
  }
}

static char *
json_text (JsonNode *n)
{
  GString *s = g_string_new (NULL);
  write_json (s, n);
  return g_string_free (s, FALSE);
}

/* ---- reading lesson.json and module.json ----
 * The reader keeps the first problem (with where it is); every reading function does nothing
 * once one was found, so a file is read straight through and checked once at the end. */

typedef struct {
  char *problem;
  char *file; /* the file the problem is in, when not the one being read */
} Reader;

static void
bad (Reader *r, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static void
bad (Reader *r, const char *fmt, ...)
{
  if (r->problem)
    return;
  va_list ap;
  va_start (ap, fmt);
  r->problem = g_strdup_vprintf (fmt, ap);
  va_end (ap);
}

/* Every member of o must be in allowed. */
static void
check_keys (Reader *r, JsonObject *o, const char *where, const char *const *allowed)
{
  if (r->problem)
    return;
  g_autoptr (GList) members = json_object_get_members (o);
  for (GList *l = members; l; l = l->next)
    if (!str_in (l->data, allowed)) {
      bad (r, "unknown field \"%s\"%s%s", (const char *) l->data, *where ? " in " : "", where);
      return;
    }
}

static JsonNode *
get_member (Reader *r, JsonObject *o, const char *where, const char *key, gboolean required)
{
  if (r->problem)
    return NULL;
  JsonNode *n = json_object_get_member (o, key);
  if (!n && required)
    bad (r, "missing field \"%s\"%s%s", key, *where ? " in " : "", where);
  return n;
}

static const char *
get_string (Reader *r, JsonObject *o, const char *where, const char *key, gboolean required)
{
  JsonNode *n = get_member (r, o, where, key, required);
  if (!n)
    return NULL;
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING ||
      !*json_node_get_string (n)) {
    bad (r, "\"%s\"%s%s must be a non-empty string", key, *where ? " in " : "", where);
    return NULL;
  }
  return json_node_get_string (n);
}

static double
get_number (Reader *r, JsonObject *o, const char *where, const char *key, gboolean required,
            double fallback)
{
  JsonNode *n = get_member (r, o, where, key, required);
  if (!n)
    return fallback;
  if (!JSON_NODE_HOLDS_VALUE (n) || (json_node_get_value_type (n) != G_TYPE_DOUBLE &&
                                     json_node_get_value_type (n) != G_TYPE_INT64)) {
    bad (r, "\"%s\"%s%s must be a number", key, *where ? " in " : "", where);
    return fallback;
  }
  double v = json_node_get_double (n);
  if (!isfinite (v))
    bad (r, "\"%s\"%s%s must be a finite number", key, *where ? " in " : "", where);
  return v;
}

static JsonObject *
get_object (Reader *r, JsonObject *o, const char *where, const char *key, gboolean required)
{
  JsonNode *n = get_member (r, o, where, key, required);
  if (!n)
    return NULL;
  if (!JSON_NODE_HOLDS_OBJECT (n)) {
    bad (r, "\"%s\"%s%s must be an object", key, *where ? " in " : "", where);
    return NULL;
  }
  return json_node_get_object (n);
}

static JsonArray *
get_array (Reader *r, JsonObject *o, const char *where, const char *key)
{
  JsonNode *n = get_member (r, o, where, key, FALSE);
  if (!n)
    return NULL;
  if (!JSON_NODE_HOLDS_ARRAY (n)) {
    bad (r, "\"%s\"%s%s must be a list", key, *where ? " in " : "", where);
    return NULL;
  }
  return json_node_get_array (n);
}

/* {"en": "...", "zh_TW": "..."}, both non-empty */
static void
get_text (Reader *r, JsonObject *o, const char *where, const char *key, BpLessonText *out)
{
  static const char *const langs[] = {"en", "zh_TW", NULL};
  g_autofree char *inner = g_strdup_printf ("\"%s\"%s%s", key, *where ? " of " : "", where);
  JsonObject *t = get_object (r, o, where, key, TRUE);
  if (!t)
    return;
  check_keys (r, t, inner, langs);
  const char *en = get_string (r, t, inner, "en", TRUE);
  const char *zh = get_string (r, t, inner, "zh_TW", TRUE);
  if (r->problem)
    return;
  out->en = g_strdup (en);
  out->zh_TW = g_strdup (zh);
}

static gboolean
valid_id (const char *id)
{
  if (!id || !*id || strlen (id) > 64 || !g_ascii_isalnum (*id))
    return FALSE;
  for (const char *p = id; *p; p++)
    if (!g_ascii_islower (*p) && !g_ascii_isdigit (*p) && *p != '-')
      return FALSE;
  return TRUE;
}

/* The number of a folder named "NN-name" (-1 when it is not so named). */
static int
folder_number (const char *name)
{
  if (!g_ascii_isdigit (name[0]))
    return -1;
  char *end = NULL;
  guint64 v = g_ascii_strtoull (name, &end, 10);
  if (!end || *end != '-' || !end[1] || v < 1 || v > 999)
    return -1;
  return (int) v;
}

/* ---- training configs ---- */

static const char *const config_keys[] = {
  "epochs", "batch_size", "optimizer", "schedule", "clip_norm", "label_smoothing", "seed",
  "limit_train", "limit_test", "val_fraction", "eval_batch_size", "context", "steps_per_epoch",
  "eval_batches", "attention_every", NULL};
static const char *const optimizer_keys[] = {"name", "lr", "momentum", "dampening", "nesterov",
                                             "beta1", "beta2", "eps", "weight_decay", "l1",
                                             NULL};
static const char *const schedule_keys[] = {"name", "step_size", "gamma", "t_max", "eta_min",
                                            "factor", "patience", "threshold", "min_lr",
                                            "warmup_epochs", NULL};

/* A config object of a lesson: only the trainer's fields (the model, the data set and the
 * device are not set here), as text for bp_train_config_from_json. */
static char *
get_config (Reader *r, JsonObject *o, const char *where, const char *key)
{
  JsonObject *c = get_object (r, o, where, key, FALSE);
  if (!c)
    return NULL;
  g_autofree char *inner = g_strdup_printf ("\"%s\"%s%s", key, *where ? " of " : "", where);
  check_keys (r, c, inner, config_keys);
  JsonObject *opt = get_object (r, c, inner, "optimizer", FALSE);
  if (opt)
    check_keys (r, opt, "\"optimizer\"", optimizer_keys);
  JsonObject *sch = get_object (r, c, inner, "schedule", FALSE);
  if (sch)
    check_keys (r, sch, "\"schedule\"", schedule_keys);
  if (r->problem)
    return NULL;
  return json_text (json_object_get_member (o, key));
}

/* Reads one config object over c. Naming an optimizer or a schedule starts from its
 * defaults; *t_max_set tells whether a cosine t_max was given. */
static gboolean
apply_config (const char *json, BpTrainConfig *c, gboolean *t_max_set, GError **error)
{
  if (!json)
    return TRUE;
  g_autoptr (JsonNode) root = json_from_string (json, NULL);
  JsonObject *o = root && JSON_NODE_HOLDS_OBJECT (root) ? json_node_get_object (root) : NULL;
  static const char *const optim[] = {"sgd", "adam", "adamw", NULL};
  static const char *const sched[] = {"constant", "step", "cosine", "plateau", NULL};
  JsonObject *g;
  if (o && json_object_has_member (o, "optimizer") &&
      JSON_NODE_HOLDS_OBJECT (json_object_get_member (o, "optimizer")) &&
      (g = json_object_get_object_member (o, "optimizer")) && json_object_has_member (g, "name")) {
    const char *name = json_node_get_string (json_object_get_member (g, "name"));
    for (int k = 0; name && optim[k]; k++)
      if (strcmp (name, optim[k]) == 0)
        c->optim = bp_optim_config_default ((BpOptimKind) k);
  }
  if (o && json_object_has_member (o, "schedule") &&
      JSON_NODE_HOLDS_OBJECT (json_object_get_member (o, "schedule")) &&
      (g = json_object_get_object_member (o, "schedule"))) {
    if (json_object_has_member (g, "name")) {
      const char *name = json_node_get_string (json_object_get_member (g, "name"));
      for (int k = 0; name && sched[k]; k++)
        if (strcmp (name, sched[k]) == 0) {
          c->sched = bp_sched_config_default ((BpSchedKind) k);
          *t_max_set = FALSE;
        }
    }
    if (json_object_has_member (g, "t_max"))
      *t_max_set = TRUE;
  }
  return bp_train_config_from_json (json, c, error);
}

const BpLessonVariant *
bp_lesson_find_variant (const BpLesson *lesson, const char *id)
{
  g_return_val_if_fail (lesson != NULL, NULL);
  if (!lesson->experiment)
    return NULL;
  GPtrArray *vs = lesson->experiment->variants;
  if (!id)
    return vs->pdata[0];
  for (guint k = 0; k < vs->len; k++) {
    BpLessonVariant *v = vs->pdata[k];
    if (g_strcmp0 (v->id, id) == 0)
      return v;
  }
  return NULL;
}

/* The lesson's run `variant` (NULL: the first), or NULL with BP_LESSON_ERROR_NOT_FOUND. */
static const BpLessonVariant *
find_run (const BpLesson *lesson, const char *variant, GError **error)
{
  const BpLessonVariant *v = bp_lesson_find_variant (lesson, variant);
  if (!v)
    g_set_error (error, BP_LESSON_ERROR, BP_LESSON_ERROR_NOT_FOUND,
                 "lesson %s has no run \"%s\"", lesson->id, variant);
  return v;
}

/* Reads config layers (NULL ones skipped) over c, in order. */
static gboolean
apply_layers (const char *const *layers, gsize n, BpTrainConfig *c, gboolean *t_max_set,
              GError **error)
{
  for (gsize k = 0; k < n; k++) {
    g_autoptr (GError) local = NULL;
    if (!apply_config (layers[k], c, t_max_set, &local)) {
      g_set_error (error, BP_LESSON_ERROR, BP_LESSON_ERROR_INVALID, "%s", local->message);
      return FALSE;
    }
  }
  return TRUE;
}

gboolean
bp_lesson_make_config (const BpLesson *lesson, const char *variant, gboolean quick,
                       BpTrainConfig *config, GError **error)
{
  return bp_lesson_make_config_with (lesson, variant, NULL, quick, config, error);
}

gboolean
bp_lesson_make_config_with (const BpLesson *lesson, const char *variant, const char *extra_json,
                            gboolean quick, BpTrainConfig *config, GError **error)
{
  g_return_val_if_fail (lesson != NULL && config != NULL, FALSE);
  if (!lesson->experiment) {
    g_set_error (error, BP_LESSON_ERROR, BP_LESSON_ERROR_NOT_RUNNABLE,
                 "lesson %s has no experiment the trainer can run yet: %s", lesson->id,
                 lesson->not_runnable.en);
    return FALSE;
  }
  if (lesson->experiment->function) {
    g_set_error (error, BP_LESSON_ERROR, BP_LESSON_ERROR_INVALID,
                 "lesson %s's experiment is gradient descent on a function, not a training run",
                 lesson->id);
    return FALSE;
  }
  const BpLessonVariant *v = find_run (lesson, variant, error);
  if (!v)
    return FALSE;
  BpTrainConfig c = bp_train_config_default ();
  c.model = v->model; /* NULL with a spec: the trainer builds model_json */
  c.model_json = v->spec_json;
  c.dataset = lesson->experiment->dataset;
  gboolean t_max_set = FALSE;
  const char *layers[] = {lesson->experiment->config_json, v->config_json, extra_json,
                          quick ? lesson->experiment->test_budget_json : NULL};
  if (!apply_layers (layers, G_N_ELEMENTS (layers), &c, &t_max_set, error))
    return FALSE;
  if (c.sched.kind == BP_SCHED_COSINE && !t_max_set)
    c.sched.t_max = MAX (1, c.epochs - c.sched.warmup_epochs);
  g_autoptr (GError) local = NULL;
  if (!bp_train_config_check (&c, &local)) {
    g_set_error (error, BP_LESSON_ERROR, BP_LESSON_ERROR_INVALID, "%s%s: %s",
                 v->id ? "run " : "", v->id ? v->id : "the run", local->message);
    return FALSE;
  }
  *config = c;
  return TRUE;
}

gboolean
bp_lesson_make_descent_config (const BpLesson *lesson, const char *variant,
                               BpDescentConfig *config, GError **error)
{
  g_return_val_if_fail (lesson != NULL && config != NULL, FALSE);
  const BpLessonExperiment *x = lesson->experiment;
  if (!x || !x->function) {
    g_set_error (error, BP_LESSON_ERROR, BP_LESSON_ERROR_INVALID,
                 "lesson %s has no function experiment", lesson->id);
    return FALSE;
  }
  const BpLessonVariant *v = find_run (lesson, variant, error);
  if (!v)
    return FALSE;
  /* the optimizer as a training config reads it: SGD lr 0.01 unless the layers say */
  BpTrainConfig t = bp_train_config_default ();
  t.optim = bp_optim_config_default (BP_OPTIM_SGD);
  gboolean t_max_set = FALSE;
  const char *layers[] = {x->config_json, v->config_json};
  if (!apply_layers (layers, G_N_ELEMENTS (layers), &t, &t_max_set, error))
    return FALSE;
  g_autoptr (GError) local = NULL;
  if (!bp_train_config_check (&t, &local)) {
    g_set_error (error, BP_LESSON_ERROR, BP_LESSON_ERROR_INVALID, "%s%s: %s",
                 v->id ? "run " : "", v->id ? v->id : "the run", local->message);
    return FALSE;
  }
  BpDescentConfig c = bp_descent_config_default ();
  c.function = x->function;
  c.start[0] = x->start[0];
  c.start[1] = x->start[1];
  c.steps = x->steps;
  c.optim = t.optim;
  *config = c;
  return TRUE;
}

/* ---- goals, variants, steps ---- */

static BpLessonOp
get_op (Reader *r, JsonObject *o, const char *where)
{
  const char *op = get_string (r, o, where, "op", TRUE);
  for (guint k = 0; op && k < G_N_ELEMENTS (op_names); k++)
    if (strcmp (op, op_names[k]) == 0)
      return (BpLessonOp) k;
  if (op)
    bad (r, "unknown op \"%s\" in %s (>=, <=, > or <)", op, where);
  return BP_LESSON_OP_GE;
}

static gboolean
has_variant (const BpLessonExperiment *x, const char *id)
{
  for (guint k = 0; k < x->variants->len; k++)
    if (g_strcmp0 (((BpLessonVariant *) x->variants->pdata[k])->id, id) == 0)
      return TRUE;
  return FALSE;
}

static void
read_goals (Reader *r, JsonObject *root, const char *key, const BpLessonExperiment *x,
            GPtrArray *out)
{
  static const char *const metric_keys[] = {"type", "metric", "class", "op", "value", "offset",
                                            "within_epochs", "variant", NULL};
  static const char *const descent_keys[] = {"type", "metric", "op", "value", "within_steps",
                                             "variant", NULL};
  static const char *const compare_keys[] = {"type", "metric", "class", "op", "a", "b",
                                             "margin", NULL};
  JsonArray *a = get_array (r, root, "", key);
  if (!a)
    return;
  gboolean text = x && bp_train_dataset_is_text (x->dataset);
  gboolean descent = x && x->function;
  gboolean several = x && x->variants->len > 1;
  for (guint k = 0; k < json_array_get_length (a) && !r->problem; k++) {
    g_autofree char *where = g_strdup_printf ("%s[%u]", key, k);
    JsonNode *n = json_array_get_element (a, k);
    if (!JSON_NODE_HOLDS_OBJECT (n)) {
      bad (r, "%s must be an object", where);
      return;
    }
    JsonObject *o = json_node_get_object (n);
    BpLessonGoal *g = g_new0 (BpLessonGoal, 1);
    g_ptr_array_add (out, g);
    const char *type = json_object_has_member (o, "type") ? get_string (r, o, where, "type", TRUE)
                                                          : "metric";
    if (g_strcmp0 (type, "compare") == 0)
      g->kind = BP_LESSON_GOAL_COMPARE;
    else if (type && strcmp (type, "metric") != 0)
      bad (r, "unknown goal type \"%s\" in %s (metric or compare)", type, where);
    check_keys (r, o, where, g->kind == BP_LESSON_GOAL_COMPARE ? compare_keys
                             : descent                         ? descent_keys
                                                               : metric_keys);
    g->metric = g_strdup (get_string (r, o, where, "metric", TRUE));
    if (g->metric && descent && !str_in (g->metric, descent_metric_names))
      bad (r, "unknown metric \"%s\" in %s (a function experiment's: value, distance, "
              "grad_error)", g->metric, where);
    else if (g->metric && !descent && !str_in (g->metric, metric_names))
      bad (r, "unknown metric \"%s\" in %s%s", g->metric, where,
           str_in (g->metric, descent_metric_names) ? " (it is a function experiment's)" : "");
    g->class_name = g_strdup (get_string (r, o, where, "class",
                                          g_strcmp0 (g->metric, "val_class_accuracy") == 0));
    if (g->class_name && g_strcmp0 (g->metric, "val_class_accuracy") != 0)
      bad (r, "\"class\" in %s is only for val_class_accuracy", where);
    if (g->class_name && text)
      bad (r, "val_class_accuracy in %s needs an image data set", where);
    /* a regression has R² and no accuracies; a classifier the other way round */
    const BpDatasetInfo *info = x && x->dataset ? bp_dataset_info (x->dataset) : NULL;
    gboolean r2 = g->metric && g_str_has_suffix (g->metric, "_r2");
    gboolean regression = info && info->task == BP_TASK_REGRESSION;
    if (g->metric && !descent && r2 && !regression)
      bad (r, "%s in %s is a regression's metric, and %s is not a regression", g->metric, where,
           x ? x->dataset : "the data set");
    else if (g->metric && regression && strstr (g->metric, "accuracy"))
      bad (r, "%s in %s: %s is a regression, it has R² (val_r2, test_r2) instead of accuracies",
           g->metric, where, x->dataset);
    g->op = get_op (r, o, where);
    if (!x) {
      bad (r, "%s: a lesson without an experiment has no goals", where);
      return;
    }
    if (r->problem)
      return;
    if (g->kind == BP_LESSON_GOAL_COMPARE) {
      g->a = g_strdup (get_string (r, o, where, "a", TRUE));
      g->b = g_strdup (get_string (r, o, where, "b", TRUE));
      g->margin = get_number (r, o, where, "margin", FALSE, 0);
      if (r->problem)
        return;
      if (!has_variant (x, g->a) || !has_variant (x, g->b))
        bad (r, "%s compares run \"%s\" with run \"%s\": the experiment has no such run", where,
             has_variant (x, g->a) ? g->b : g->a, has_variant (x, g->a) ? g->a : g->b);
      else if (strcmp (g->a, g->b) == 0)
        bad (r, "%s compares run \"%s\" with itself", where, g->a);
      continue;
    }
    JsonNode *value = get_member (r, o, where, "value", TRUE);
    if (value && JSON_NODE_HOLDS_VALUE (value) &&
        json_node_get_value_type (value) == G_TYPE_STRING) {
      if (strcmp (json_node_get_string (value), "unigram_baseline") != 0)
        bad (r, "\"value\" in %s must be a number or \"unigram_baseline\"", where);
      else if (!text || !metric_is_loss (g->metric))
        bad (r, "%s: \"unigram_baseline\" is for the loss of a language model (a text data set)",
             where);
      g->baseline = TRUE;
      g->value = get_number (r, o, where, "offset", FALSE, 0);
    } else {
      g->value = get_number (r, o, where, "value", TRUE, 0);
      if (json_object_has_member (o, "offset"))
        bad (r, "\"offset\" in %s goes with \"value\": \"unigram_baseline\"", where);
    }
    const char *within_key = descent ? "within_steps" : "within_epochs";
    double within = get_number (r, o, where, within_key, FALSE, 0);
    if (within != 0 && (within < 1 || within > 100000 || within != floor (within)))
      bad (r, "\"%s\" in %s must be a whole number of at least 1", within_key, where);
    g->within_epochs = (int) within;
    g->variant = g_strdup (get_string (r, o, where, "variant", FALSE));
    if (g->variant && !has_variant (x, g->variant))
      bad (r, "%s is about run \"%s\": the experiment has no such run", where, g->variant);
    if (!g->variant && several)
      bad (r, "%s must say which run (\"variant\"): the experiment has several", where);
  }
}

static void
read_variant (Reader *r, JsonObject *o, const char *where, const char *dir, BpLessonVariant *v)
{
  const char *model = get_string (r, o, where, "model", FALSE);
  const char *spec = get_string (r, o, where, "spec", FALSE);
  if (r->problem)
    return;
  if (model && spec) {
    bad (r, "%s gives both \"model\" and \"spec\"", *where ? where : "the experiment");
    return;
  }
  if (model) {
    if (!bp_preset_find (model)) {
      bad (r, "unknown model preset \"%s\"%s%s (see `backprop models`)", model,
           *where ? " in " : "", where);
      return;
    }
    v->model = g_strdup (model);
  } else if (spec) {
    if (strchr (spec, '/') || strchr (spec, '\\') || spec[0] == '.') {
      bad (r, "\"spec\" must name a file in the lesson's folder, not \"%s\"", spec);
      return;
    }
    v->spec_file = g_build_filename (dir, spec, NULL);
    g_autoptr (GError) error = NULL;
    if (!g_file_get_contents (v->spec_file, &v->spec_json, NULL, &error)) {
      bad (r, "spec %s: %s", spec, error->message);
      return;
    }
    g_autoptr (BpSpecInfo) info = NULL;
    if (!bp_spec_analyze (v->spec_json, &info, &error))
      bad (r, "spec %s: %s", spec, error->message);
  }
  v->config_json = get_config (r, o, where, "config");
}

/* A config object of a function experiment names an optimizer and nothing else. */
static void
check_descent_config (Reader *r, const char *json, const char *where)
{
  static const char *const keys[] = {"optimizer", NULL};
  if (!json || r->problem)
    return;
  g_autoptr (JsonNode) n = json_from_string (json, NULL);
  if (n && JSON_NODE_HOLDS_OBJECT (n))
    check_keys (r, json_node_get_object (n), where, keys);
}

/* "function": {"name", "start": [x, y], "steps"} of a function experiment. */
static void
read_function (Reader *r, JsonObject *o, BpLessonExperiment *x)
{
  static const char *const keys[] = {"name", "start", "steps", NULL};
  static const char *const others[] = {"model", "spec", "dataset", "test_budget", NULL};
  const char *where = "\"function\"";
  JsonObject *f = get_object (r, o, "\"experiment\"", "function", TRUE);
  if (!f)
    return;
  for (int k = 0; others[k] && !r->problem; k++)
    if (json_object_has_member (o, others[k]))
      bad (r, "an experiment with a \"function\" has no \"%s\"", others[k]);
  check_keys (r, f, where, keys);
  const char *name = get_string (r, f, where, "name", TRUE);
  if (name && !bp_descent_function_find (name)) {
    g_autofree char *names = g_strjoinv (", ", (char **) bp_descent_function_names ());
    bad (r, "unknown function \"%s\" (%s)", name, names);
  }
  x->function = g_strdup (name);
  double steps = get_number (r, f, where, "steps", TRUE, 0);
  if (!r->problem && (steps < 1 || steps > 100000 || steps != floor (steps)))
    bad (r, "\"steps\" in %s must be a whole number between 1 and 100000", where);
  x->steps = (int) steps;
  x->start[0] = x->start[1] = NAN;
  JsonArray *start = get_array (r, f, where, "start");
  if (start) {
    JsonNode *a = json_array_get_length (start) == 2 ? json_array_get_element (start, 0) : NULL;
    JsonNode *b = a ? json_array_get_element (start, 1) : NULL;
    if (!a || !b || !JSON_NODE_HOLDS_VALUE (a) || !JSON_NODE_HOLDS_VALUE (b) ||
        json_node_get_value_type (a) == G_TYPE_STRING ||
        json_node_get_value_type (b) == G_TYPE_STRING ||
        json_node_get_value_type (a) == G_TYPE_BOOLEAN ||
        json_node_get_value_type (b) == G_TYPE_BOOLEAN)
      bad (r, "\"start\" in %s must be two numbers [x, y]", where);
    else {
      x->start[0] = json_node_get_double (a);
      x->start[1] = json_node_get_double (b);
      if (fabs (x->start[0]) > 1e6 || fabs (x->start[1]) > 1e6)
        bad (r, "\"start\" in %s must be within 1e6 of the origin", where);
    }
  }
  check_descent_config (r, x->config_json, "\"config\" of a function experiment");
}

static BpLessonExperiment *
read_experiment (Reader *r, JsonObject *o, const char *dir)
{
  static const char *const keys[] = {"model", "spec", "dataset", "function", "config",
                                     "test_budget", "variants", NULL};
  static const char *const variant_keys[] = {"id", "title", "model", "spec", "config", NULL};
  static const char *const function_variant_keys[] = {"id", "title", "config", NULL};
  BpLessonExperiment *x = g_new0 (BpLessonExperiment, 1);
  x->variants = g_ptr_array_new_with_free_func (variant_free);
  check_keys (r, o, "\"experiment\"", keys);
  gboolean function = json_object_has_member (o, "function");
  const char *dataset = get_string (r, o, "\"experiment\"", "dataset", FALSE);
  x->dataset = function ? NULL : g_strdup (dataset ? dataset : "fashion-mnist");
  if (!r->problem && x->dataset && !bp_dataset_is_known (x->dataset) &&
      !str_in (x->dataset, bp_text_corpus_names ())) {
    g_autofree char *sets = g_strjoinv (", ", (char **) bp_dataset_names ());
    g_autofree char *names = g_strjoinv (", ", (char **) bp_text_corpus_names ());
    bad (r, "unknown dataset \"%s\" (%s, or a text corpus: %s)", x->dataset, sets, names);
  }
  x->config_json = get_config (r, o, "\"experiment\"", "config");
  x->test_budget_json = get_config (r, o, "\"experiment\"", "test_budget");
  if (function)
    read_function (r, o, x);

  /* the experiment's own model, the default of its variants */
  BpLessonVariant base = {0};
  if (!function)
    read_variant (r, o, "", dir, &base);
  g_clear_pointer (&base.config_json, g_free); /* "config" is the experiment's (above) */
  JsonArray *vs = get_array (r, o, "\"experiment\"", "variants");
  guint n = vs ? json_array_get_length (vs) : 0;
  if (vs && n < 2)
    bad (r, "\"variants\" needs at least two runs (leave it out for one)");
  for (guint k = 0; k < n && !r->problem; k++) {
    g_autofree char *where = g_strdup_printf ("variants[%u]", k);
    JsonNode *vn = json_array_get_element (vs, k);
    if (!JSON_NODE_HOLDS_OBJECT (vn)) {
      bad (r, "%s must be an object", where);
      break;
    }
    JsonObject *vo = json_node_get_object (vn);
    BpLessonVariant *v = g_new0 (BpLessonVariant, 1);
    g_ptr_array_add (x->variants, v);
    check_keys (r, vo, where, function ? function_variant_keys : variant_keys);
    v->id = g_strdup (get_string (r, vo, where, "id", TRUE));
    if (v->id && !valid_id (v->id))
      bad (r, "%s: id \"%s\" must be lower-case letters, digits and '-'", where, v->id);
    for (guint j = 0; v->id && j + 1 < x->variants->len; j++)
      if (g_strcmp0 (((BpLessonVariant *) x->variants->pdata[j])->id, v->id) == 0)
        bad (r, "%s: two runs are called \"%s\"", where, v->id);
    get_text (r, vo, where, "title", &v->title);
    if (function) {
      v->config_json = get_config (r, vo, where, "config");
      g_autofree char *cw = g_strdup_printf ("\"config\" of %s", where);
      check_descent_config (r, v->config_json, cw);
      continue;
    }
    read_variant (r, vo, where, dir, v);
    if (!v->model && !v->spec_json && !r->problem) {
      v->model = g_strdup (base.model);
      v->spec_file = g_strdup (base.spec_file);
      v->spec_json = g_strdup (base.spec_json);
    }
  }
  if (!vs) {
    BpLessonVariant *v = g_new0 (BpLessonVariant, 1);
    *v = base;
    v->title.en = g_strdup ("");
    v->title.zh_TW = g_strdup ("");
    memset (&base, 0, sizeof base);
    g_ptr_array_add (x->variants, v);
  } else {
    g_free (base.model);
    g_free (base.spec_file);
    g_free (base.spec_json);
  }
  for (guint k = 0; !function && k < x->variants->len && !r->problem; k++) {
    BpLessonVariant *v = x->variants->pdata[k];
    if (!v->model && !v->spec_json)
      bad (r, "the experiment%s%s needs a \"model\" (a preset) or a \"spec\" (a file)",
           v->id ? "'s run " : "", v->id ? v->id : "");
  }
  return x;
}

static void
read_steps (Reader *r, JsonObject *root, BpLesson *l)
{
  static const char *const step_keys[] = {"text", "action", NULL};
  static const char *const action_keys[] = {"type", "variant", "config", "view", NULL};
  JsonArray *a = get_array (r, root, "", "steps");
  for (guint k = 0; a && k < json_array_get_length (a) && !r->problem; k++) {
    g_autofree char *where = g_strdup_printf ("steps[%u]", k);
    JsonNode *n = json_array_get_element (a, k);
    if (!JSON_NODE_HOLDS_OBJECT (n)) {
      bad (r, "%s must be an object", where);
      return;
    }
    JsonObject *o = json_node_get_object (n);
    BpLessonStep *s = g_new0 (BpLessonStep, 1);
    g_ptr_array_add (l->steps, s);
    check_keys (r, o, where, step_keys);
    get_text (r, o, where, "text", &s->text);
    JsonObject *ao = get_object (r, o, where, "action", FALSE);
    if (!ao)
      continue;
    g_autofree char *aw = g_strdup_printf ("the action of %s", where);
    check_keys (r, ao, aw, action_keys);
    const char *type = get_string (r, ao, aw, "type", TRUE);
    BpLessonAction *act = &s->action;
    for (guint j = 1; type && j < G_N_ELEMENTS (action_names); j++)
      if (strcmp (type, action_names[j]) == 0)
        act->kind = (BpLessonActionKind) j;
    if (type && act->kind == BP_LESSON_ACTION_NONE) {
      bad (r, "unknown action \"%s\" in %s (load-model, set-config, start-training, open-view "
              "or compare-runs)", type, where);
      return;
    }
    act->variant = g_strdup (get_string (r, ao, aw, "variant", FALSE));
    act->view = g_strdup (get_string (r, ao, aw, "view", act->kind == BP_LESSON_ACTION_OPEN_VIEW));
    act->config_json = get_config (r, ao, aw, "config");
    if (r->problem)
      return;
    gboolean uses_run = act->kind == BP_LESSON_ACTION_LOAD_MODEL ||
                        act->kind == BP_LESSON_ACTION_SET_CONFIG ||
                        act->kind == BP_LESSON_ACTION_START_TRAINING ||
                        act->kind == BP_LESSON_ACTION_COMPARE_RUNS;
    if (uses_run && !l->experiment)
      bad (r, "%s: action %s needs the lesson's experiment, and it has none", where, type);
    else if (l->experiment && l->experiment->function &&
             (act->kind == BP_LESSON_ACTION_LOAD_MODEL ||
              act->kind == BP_LESSON_ACTION_COMPARE_RUNS))
      bad (r, "%s: action %s needs a model's experiment; this lesson's is a function", where,
           type);
    else if (l->experiment && l->experiment->function && act->config_json)
      bad (r, "%s: set-config of a function experiment takes a \"variant\"", where);
    else if (act->variant && !uses_run)
      bad (r, "%s: action %s takes no \"variant\"", where, type);
    else if (act->variant && act->kind == BP_LESSON_ACTION_COMPARE_RUNS)
      bad (r, "%s: action compare-runs takes no \"variant\"", where);
    else if (act->variant && !bp_lesson_find_variant (l, act->variant))
      bad (r, "%s: the experiment has no run \"%s\"", where, act->variant);
    else if (act->view && act->kind != BP_LESSON_ACTION_OPEN_VIEW)
      bad (r, "%s: only open-view takes a \"view\"", where);
    else if (act->view && !str_in (act->view, view_names))
      bad (r, "%s: unknown view \"%s\" (%s)", where, act->view,
           "builder, train, curves, confusion-matrix, attention-heatmap, samples, experiments "
           "or generate");
    else if (act->config_json && act->kind != BP_LESSON_ACTION_SET_CONFIG)
      bad (r, "%s: only set-config takes a \"config\"", where);
    else if (act->kind == BP_LESSON_ACTION_SET_CONFIG && !act->config_json == !act->variant)
      bad (r, "%s: set-config takes either a \"variant\" or a \"config\"", where);
    else if (act->kind == BP_LESSON_ACTION_SET_CONFIG && act->config_json) {
      BpTrainConfig c = bp_train_config_default ();
      gboolean t_max_set = FALSE;
      g_autoptr (GError) error = NULL;
      if (!apply_config (act->config_json, &c, &t_max_set, &error))
        bad (r, "%s: %s", where, error->message);
    }
  }
}

/* Every language's text file is there, UTF-8 and not empty. */
static void
check_texts (Reader *r, const char *dir)
{
  static const char *const files[] = {"en.md", "zh_TW.md"};
  for (gsize k = 0; k < G_N_ELEMENTS (files) && !r->problem; k++) {
    g_autofree char *path = g_build_filename (dir, files[k], NULL);
    g_autofree char *text = NULL;
    gsize len = 0;
    if (!g_file_get_contents (path, &text, &len, NULL))
      bad (r, "missing (a lesson has its text in en.md and zh_TW.md)");
    else if (!g_utf8_validate (text, (gssize) len, NULL))
      bad (r, "not UTF-8 text");
    else if (!*g_strstrip (text))
      bad (r, "empty");
    if (r->problem)
      r->file = g_steal_pointer (&path);
  }
}

/* Reads root's "format": BP_LESSON_FORMAT. */
static void
check_format (Reader *r, JsonObject *root)
{
  double format = get_number (r, root, "", "format", TRUE, 0);
  if (!r->problem && format != BP_LESSON_FORMAT)
    bad (r, "format %g: this program reads lesson format %d%s", format, BP_LESSON_FORMAT,
         format > BP_LESSON_FORMAT ? " (the file is for a newer Backprop Lab)" : "");
}

static JsonObject *
parse_file (Reader *r, const char *path, JsonParser *p)
{
  g_autoptr (GError) error = NULL;
  if (!json_parser_load_from_file (p, path, &error)) {
    bad (r, "%s", error->message);
    return NULL;
  }
  if (!JSON_NODE_HOLDS_OBJECT (json_parser_get_root (p))) {
    bad (r, "not a JSON object");
    return NULL;
  }
  return json_node_get_object (json_parser_get_root (p));
}

static BpLesson *
load_lesson (const char *dir, const BpLessonModule *m, int number, char **problem)
{
  static const char *const keys[] = {"format", "id", "title", "experiment", "not_runnable",
                                     "steps", "goals", "test_goals", NULL};
  Reader r = {0};
  g_autofree char *path = g_build_filename (dir, "lesson.json", NULL);
  g_autoptr (JsonParser) p = json_parser_new ();
  BpLesson *l = g_new0 (BpLesson, 1);
  l->dir = g_strdup (dir);
  l->module_id = g_strdup (m->id);
  l->module_number = m->number;
  l->lesson_number = number;
  l->number = g_strdup_printf ("%d.%d", m->number, number);
  l->steps = g_ptr_array_new_with_free_func (step_free);
  l->goals = g_ptr_array_new_with_free_func (goal_free);
  l->test_goals = g_ptr_array_new_with_free_func (goal_free);

  JsonObject *root = g_file_test (path, G_FILE_TEST_EXISTS) ? parse_file (&r, path, p) : NULL;
  if (!root && !r.problem)
    bad (&r, "missing (every lesson folder has a lesson.json)");
  if (root) {
    check_format (&r, root);
    check_keys (&r, root, "", keys);
    l->id = g_strdup (get_string (&r, root, "", "id", TRUE));
    if (l->id && !valid_id (l->id))
      bad (&r, "id \"%s\" must be lower-case letters, digits and '-'", l->id);
    get_text (&r, root, "", "title", &l->title);
    JsonNode *xn = get_member (&r, root, "", "experiment", TRUE);
    if (xn && JSON_NODE_HOLDS_OBJECT (xn)) {
      l->experiment = read_experiment (&r, json_node_get_object (xn), dir);
      if (json_object_has_member (root, "not_runnable"))
        bad (&r, "\"not_runnable\" is for a lesson whose \"experiment\" is null");
    } else if (xn && JSON_NODE_HOLDS_NULL (xn)) {
      get_text (&r, root, "", "not_runnable", &l->not_runnable);
    } else if (xn) {
      bad (&r, "\"experiment\" must be an object, or null with a \"not_runnable\" reason");
    }
    if (!l->not_runnable.en) {
      l->not_runnable.en = g_strdup ("");
      l->not_runnable.zh_TW = g_strdup ("");
    }
    read_steps (&r, root, l);
    read_goals (&r, root, "goals", l->experiment, l->goals);
    read_goals (&r, root, "test_goals", l->experiment, l->test_goals);
    if (!r.problem && l->experiment && l->goals->len == 0)
      bad (&r, "a lesson with an experiment needs \"goals\"");
    if (!r.problem && !l->experiment && json_object_has_member (root, "test_goals"))
      bad (&r, "a lesson without an experiment has no test goals");
    /* every run's config, full and quick, must be one the trainer accepts */
    for (guint k = 0; l->experiment && !r.problem && k < l->experiment->variants->len; k++)
      for (int quick = 0; quick < 2 && !r.problem; quick++) {
        BpLessonVariant *v = l->experiment->variants->pdata[k];
        BpTrainConfig c;
        BpDescentConfig d;
        g_autoptr (GError) error = NULL;
        if (l->experiment->function ? !bp_lesson_make_descent_config (l, v->id, &d, &error)
                                    : !bp_lesson_make_config (l, v->id, quick, &c, &error))
          bad (&r, "%s%s", quick ? "with the test budget: " : "", error->message);
      }
    if (!r.problem)
      check_texts (&r, dir);
  }
  if (r.problem) {
    g_autofree char *shown = g_filename_display_name (r.file ? r.file : path);
    *problem = g_strdup_printf ("%s: %s", shown, r.problem);
    g_free (r.problem);
    g_free (r.file);
    lesson_free (l);
    return NULL;
  }
  return l;
}

static BpLessonModule *
load_module (const char *dir, int number, char **problem)
{
  static const char *const keys[] = {"format", "id", "title", NULL};
  Reader r = {0};
  g_autofree char *path = g_build_filename (dir, "module.json", NULL);
  g_autoptr (JsonParser) p = json_parser_new ();
  JsonObject *root = g_file_test (path, G_FILE_TEST_EXISTS) ? parse_file (&r, path, p) : NULL;
  if (!root && !r.problem)
    bad (&r, "missing (every module folder has a module.json)");
  BpLessonModule *m = g_new0 (BpLessonModule, 1);
  m->number = number;
  m->dir = g_strdup (dir);
  m->lessons = g_ptr_array_new_with_free_func (lesson_free);
  if (root) {
    check_format (&r, root);
    check_keys (&r, root, "", keys);
    m->id = g_strdup (get_string (&r, root, "", "id", TRUE));
    if (m->id && !valid_id (m->id))
      bad (&r, "id \"%s\" must be lower-case letters, digits and '-'", m->id);
    get_text (&r, root, "", "title", &m->title);
  }
  if (r.problem) {
    g_autofree char *shown = g_filename_display_name (path);
    *problem = g_strdup_printf ("%s: %s", shown, r.problem);
    g_free (r.problem);
    module_free (m);
    return NULL;
  }
  return m;
}

/* The numbered sub-folders of dir ("NN-name"), in number order; others are left out (hidden
 * ones silently, others with a warning). */
typedef struct {
  int number;
  char *name;
} Entry;

static void
entry_clear (gpointer p)
{
  g_free (((Entry *) p)->name);
}

static gint
entry_cmp (gconstpointer a, gconstpointer b)
{
  const Entry *x = a, *y = b;
  return x->number != y->number ? (x->number < y->number ? -1 : 1) : strcmp (x->name, y->name);
}

static GArray *
numbered_folders (const char *dir, GPtrArray *warnings)
{
  GArray *out = g_array_new (FALSE, FALSE, sizeof (Entry));
  g_array_set_clear_func (out, entry_clear);
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;
  while (d && (name = g_dir_read_name (d))) {
    g_autofree char *path = g_build_filename (dir, name, NULL);
    if (name[0] == '.' || !g_file_test (path, G_FILE_TEST_IS_DIR))
      continue;
    int number = folder_number (name);
    if (number < 0) {
      g_autofree char *shown = g_filename_display_name (path);
      g_ptr_array_add (warnings, g_strdup_printf ("%s: not loaded: a module or lesson folder is "
                                                  "named NN-name (01-foundations)", shown));
      continue;
    }
    Entry e = {number, g_strdup (name)};
    g_array_append_val (out, e);
  }
  g_array_sort (out, entry_cmp);
  return out;
}

const char *
bp_lessons_default_dir (void)
{
  const char *env = g_getenv ("BP_LESSONS_DIR");
  if (env && *env)
    return env;
  if (g_file_test (BP_LESSONS_INSTALL_DIR, G_FILE_TEST_IS_DIR))
    return BP_LESSONS_INSTALL_DIR;
  return BP_SOURCE_DIR "/lessons";
}

BpLessonSet *
bp_lesson_set_load (const char *dir, GError **error)
{
  if (!dir)
    dir = bp_lessons_default_dir ();
  g_autoptr (GError) local = NULL;
  g_autoptr (GDir) d = g_dir_open (dir, 0, &local);
  if (!d) {
    g_set_error (error, BP_LESSON_ERROR, BP_LESSON_ERROR_NOT_FOUND,
                 "cannot read the lessons folder: %s", local->message);
    return NULL;
  }
  BpLessonSet *set = g_new0 (BpLessonSet, 1);
  set->dir = g_strdup (dir);
  set->modules = g_ptr_array_new_with_free_func (module_free);
  set->warnings = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GHashTable) ids = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GArray) modules = numbered_folders (dir, set->warnings);
  for (guint k = 0; k < modules->len; k++) {
    Entry *me = &g_array_index (modules, Entry, k);
    g_autofree char *mdir = g_build_filename (dir, me->name, NULL);
    char *problem = NULL;
    BpLessonModule *m = load_module (mdir, me->number, &problem);
    if (m && k > 0 && me->number == g_array_index (modules, Entry, k - 1).number) {
      g_autofree char *shown = g_filename_display_name (mdir);
      problem = g_strdup_printf ("%s: not loaded: another module has the number %d", shown,
                                 me->number);
      module_free (m);
      m = NULL;
    }
    if (!m) {
      g_ptr_array_add (set->warnings, problem);
      continue;
    }
    g_ptr_array_add (set->modules, m);
    g_autoptr (GArray) lessons = numbered_folders (mdir, set->warnings);
    for (guint j = 0; j < lessons->len; j++) {
      Entry *le = &g_array_index (lessons, Entry, j);
      g_autofree char *ldir = g_build_filename (mdir, le->name, NULL);
      BpLesson *l = load_lesson (ldir, m, le->number, &problem);
      if (l && (g_hash_table_contains (ids, l->id) ||
                (j > 0 && le->number == g_array_index (lessons, Entry, j - 1).number))) {
        g_autofree char *shown = g_filename_display_name (ldir);
        problem = g_hash_table_contains (ids, l->id)
                    ? g_strdup_printf ("%s: not loaded: another lesson has the id \"%s\"", shown,
                                       l->id)
                    : g_strdup_printf ("%s: not loaded: another lesson has the number %s", shown,
                                       l->number);
        lesson_free (l);
        l = NULL;
      }
      if (!l) {
        g_ptr_array_add (set->warnings, problem);
        continue;
      }
      g_hash_table_add (ids, l->id);
      g_ptr_array_add (m->lessons, l);
    }
  }
  return set;
}

GPtrArray *
bp_lesson_set_list (const BpLessonSet *set)
{
  g_return_val_if_fail (set != NULL, NULL);
  GPtrArray *all = g_ptr_array_new ();
  for (guint k = 0; k < set->modules->len; k++) {
    BpLessonModule *m = set->modules->pdata[k];
    for (guint j = 0; j < m->lessons->len; j++)
      g_ptr_array_add (all, m->lessons->pdata[j]);
  }
  return all;
}

const BpLesson *
bp_lesson_set_find (const BpLessonSet *set, const char *id)
{
  g_return_val_if_fail (set != NULL, NULL);
  for (guint k = 0; id && k < set->modules->len; k++) {
    BpLessonModule *m = set->modules->pdata[k];
    for (guint j = 0; j < m->lessons->len; j++) {
      BpLesson *l = m->lessons->pdata[j];
      if (strcmp (l->id, id) == 0 || strcmp (l->number, id) == 0)
        return l;
    }
  }
  return NULL;
}

char *
bp_lesson_read_text (const BpLesson *lesson, const char *lang, GError **error)
{
  g_return_val_if_fail (lesson != NULL, NULL);
  gboolean zh = lang && g_ascii_strncasecmp (lang, "zh", 2) == 0;
  g_autofree char *path = g_build_filename (lesson->dir, zh ? "zh_TW.md" : "en.md", NULL);
  char *text = NULL;
  gsize len = 0;
  if (!g_file_get_contents (path, &text, &len, error))
    return NULL;
  if (!g_utf8_validate (text, (gssize) len, NULL)) {
    g_autofree char *shown = g_filename_display_name (path);
    g_set_error (error, BP_LESSON_ERROR, BP_LESSON_ERROR_INVALID, "%s is not UTF-8 text", shown);
    g_free (text);
    return NULL;
  }
  return text;
}

char *
bp_lesson_run_tag (const BpLesson *lesson)
{
  g_return_val_if_fail (lesson != NULL, NULL);
  return g_strconcat ("lesson:", lesson->id, NULL);
}

/* ---- the evaluator ---- */

struct BpLessonEval {
  const BpLesson *lesson;
  GPtrArray *goals;             /* borrowed from the lesson */
  BpLessonGoalResult *results;
  GHashTable *ended;            /* variant ids (the implicit one as "") whose runs ended */
};

GPtrArray *
bp_lesson_get_goals (const BpLesson *lesson, gboolean quick)
{
  g_return_val_if_fail (lesson != NULL, NULL);
  return quick && lesson->test_goals->len ? lesson->test_goals : lesson->goals;
}

BpLessonEval *
bp_lesson_eval_new (const BpLesson *lesson, gboolean quick)
{
  g_return_val_if_fail (lesson != NULL, NULL);
  BpLessonEval *e = g_new0 (BpLessonEval, 1);
  e->lesson = lesson;
  e->goals = bp_lesson_get_goals (lesson, quick);
  e->results = g_new0 (BpLessonGoalResult, MAX (1, e->goals->len));
  for (guint k = 0; k < e->goals->len; k++) {
    BpLessonGoalResult *res = &e->results[k];
    res->value = res->other = res->target = NAN;
  }
  e->ended = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  return e;
}

void
bp_lesson_eval_free (BpLessonEval *eval)
{
  if (!eval)
    return;
  g_free (eval->results);
  g_hash_table_unref (eval->ended);
  g_free (eval);
}

guint
bp_lesson_eval_get_n_goals (BpLessonEval *eval)
{
  g_return_val_if_fail (eval != NULL, 0);
  return eval->goals->len;
}

const BpLessonGoal *
bp_lesson_eval_get_goal (BpLessonEval *eval, guint k)
{
  g_return_val_if_fail (eval != NULL && k < eval->goals->len, NULL);
  return eval->goals->pdata[k];
}

const BpLessonGoalResult *
bp_lesson_eval_get_result (BpLessonEval *eval, guint k)
{
  g_return_val_if_fail (eval != NULL && k < eval->goals->len, NULL);
  return &eval->results[k];
}

static gboolean
holds (BpLessonOp op, double v, double target)
{
  switch (op) {
  case BP_LESSON_OP_GE:
    return v >= target;
  case BP_LESSON_OP_LE:
    return v <= target;
  case BP_LESSON_OP_GT:
    return v > target;
  case BP_LESSON_OP_LT:
    return v < target;
  }
  return FALSE;
}

/* The goal's metric in an event (NaN when the event does not carry it). */
static double
event_value (const BpLessonGoal *g, const BpTrainEvent *ev)
{
  const char *m = g->metric;
  if (!strcmp (m, "train_loss"))
    return ev->train_loss;
  if (!strcmp (m, "train_accuracy"))
    return ev->train_accuracy;
  if (!strcmp (m, "val_loss"))
    return ev->val_loss;
  if (!strcmp (m, "val_accuracy"))
    return ev->val_accuracy;
  if (!strcmp (m, "test_loss"))
    return ev->test_loss;
  if (!strcmp (m, "test_accuracy"))
    return ev->test_accuracy;
  if (!strcmp (m, "val_r2"))
    return ev->val_r2;
  if (!strcmp (m, "test_r2"))
    return ev->test_r2;
  if (!strcmp (m, "val_class_accuracy") && ev->confusion && ev->class_names) {
    for (int c = 0; c < ev->n_classes; c++) {
      if (g_strcmp0 (ev->class_names[c], g->class_name) != 0)
        continue;
      int64_t right = ev->confusion[(gsize) c * ev->n_classes + c], all = 0;
      for (int j = 0; j < ev->n_classes; j++)
        all += ev->confusion[(gsize) c * ev->n_classes + j];
      return all ? (double) right / (double) all : NAN;
    }
  }
  return NAN;
}

/* Whether a is better than b for the goal's direction (NaN is never better). */
static gboolean
better (BpLessonOp op, double a, double b)
{
  if (isnan (a))
    return FALSE;
  if (isnan (b))
    return TRUE;
  return op == BP_LESSON_OP_GE || op == BP_LESSON_OP_GT ? a > b : a < b;
}

static const char *
key_of (const char *variant)
{
  return variant ? variant : "";
}

static gboolean
decide_compare (BpLessonEval *e, const BpLessonGoal *g, BpLessonGoalResult *res)
{
  if (res->state != BP_LESSON_GOAL_PENDING || !g_hash_table_contains (e->ended, g->a) ||
      !g_hash_table_contains (e->ended, g->b))
    return FALSE;
  gboolean up = g->op == BP_LESSON_OP_GE || g->op == BP_LESSON_OP_GT;
  res->target = res->other + (up ? g->margin : -g->margin);
  res->state = isfinite (res->value) && isfinite (res->target) &&
                   holds (g->op, res->value, res->target)
                 ? BP_LESSON_GOAL_MET
                 : BP_LESSON_GOAL_MISSED;
  return TRUE;
}

/* A figure v of the goal's metric from the run of `variant` at `epoch` (a function's: step);
 * last: the run's final figure. TRUE when the goal changed state. */
static gboolean
update_goal (const BpLessonGoal *g, BpLessonGoalResult *res, const char *variant, double v,
             int epoch, double baseline, gboolean last)
{
  if (g->kind == BP_LESSON_GOAL_COMPARE) {
    /* the latest figure of each run; decided when both have ended */
    if (g_strcmp0 (variant, g->a) == 0)
      res->value = v;
    else if (g_strcmp0 (variant, g->b) == 0)
      res->other = v;
    return FALSE;
  }
  if (g_strcmp0 (variant, g->variant) != 0 || res->state != BP_LESSON_GOAL_PENDING)
    return FALSE;
  res->target = g->baseline ? baseline + g->value : g->value;
  if (better (g->op, v, res->value))
    res->value = v;
  if (isfinite (v) && isfinite (res->target) && holds (g->op, v, res->target) &&
      (g->within_epochs == 0 || epoch <= g->within_epochs)) {
    res->state = BP_LESSON_GOAL_MET;
    res->epoch = epoch;
    res->value = v;
    return TRUE;
  }
  if ((g->within_epochs > 0 && epoch >= g->within_epochs) || last) {
    res->state = BP_LESSON_GOAL_MISSED;
    return TRUE;
  }
  return FALSE;
}

gboolean
bp_lesson_eval_event (BpLessonEval *eval, const char *variant, const BpTrainEvent *ev)
{
  g_return_val_if_fail (eval != NULL && ev != NULL, FALSE);
  gboolean changed = FALSE;
  for (guint k = 0; k < eval->goals->len; k++) {
    const BpLessonGoal *g = eval->goals->pdata[k];
    /* train_ and val_ metrics come with EPOCH events, test_ ones with DONE */
    if (bp_lesson_metric_is_descent (g->metric) ||
        ev->kind != (metric_is_test (g->metric) ? BP_TRAIN_EVENT_DONE : BP_TRAIN_EVENT_EPOCH))
      continue;
    changed |= update_goal (g, &eval->results[k], variant, event_value (g, ev), ev->epoch,
                            ev->baseline_loss, ev->kind == BP_TRAIN_EVENT_DONE);
  }
  return changed;
}

gboolean
bp_lesson_eval_descent (BpLessonEval *eval, const char *variant, const BpDescentPoint *p)
{
  g_return_val_if_fail (eval != NULL && p != NULL, FALSE);
  gboolean changed = FALSE;
  for (guint k = 0; k < eval->goals->len; k++) {
    const BpLessonGoal *g = eval->goals->pdata[k];
    if (!bp_lesson_metric_is_descent (g->metric) ||
        (p->diverged && g->kind == BP_LESSON_GOAL_COMPARE))
      continue;
    double v = !strcmp (g->metric, "value")      ? p->value
               : !strcmp (g->metric, "distance") ? p->distance
                                                 : p->grad_error;
    gboolean last = p->diverged || p->step == p->steps;
    /* grad_error is the largest over the path so far: decided by the run's last point */
    if (!strcmp (g->metric, "grad_error") && g->kind == BP_LESSON_GOAL_METRIC && !last) {
      if (g_strcmp0 (variant, g->variant) == 0)
        eval->results[k].value = v;
      continue;
    }
    /* a diverged run's repeated last point decides, without counting as a figure reached */
    changed |= update_goal (g, &eval->results[k], variant, p->diverged ? NAN : v, p->step, NAN,
                            last);
  }
  return changed;
}

gboolean
bp_lesson_eval_run_ended (BpLessonEval *eval, const char *variant)
{
  g_return_val_if_fail (eval != NULL, FALSE);
  g_hash_table_add (eval->ended, g_strdup (key_of (variant)));
  gboolean changed = FALSE;
  for (guint k = 0; k < eval->goals->len; k++) {
    const BpLessonGoal *g = eval->goals->pdata[k];
    BpLessonGoalResult *res = &eval->results[k];
    if (g->kind == BP_LESSON_GOAL_COMPARE)
      changed |= decide_compare (eval, g, res);
    else if (g_strcmp0 (variant, g->variant) == 0 && res->state == BP_LESSON_GOAL_PENDING) {
      res->state = BP_LESSON_GOAL_MISSED;
      changed = TRUE;
    }
  }
  return changed;
}

guint
bp_lesson_eval_count (BpLessonEval *eval, BpLessonGoalState state)
{
  g_return_val_if_fail (eval != NULL, 0);
  guint n = 0;
  for (guint k = 0; k < eval->goals->len; k++)
    n += eval->results[k].state == state;
  return n;
}

gboolean
bp_lesson_eval_all_met (BpLessonEval *eval)
{
  g_return_val_if_fail (eval != NULL, FALSE);
  return bp_lesson_eval_count (eval, BP_LESSON_GOAL_MET) == eval->goals->len;
}
