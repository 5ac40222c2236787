/* test-lessons.c: the guided lessons (doc/lessons.md): every lesson of lessons/ loads with both
 * languages (zh_TW in Traditional characters), valid actions and models; malformed lessons
 * are skipped with a warning naming them while the others load; the goal evaluator on made-up
 * events; every runnable lesson's quick experiment (its test budget) reaches its test goals;
 * `backprop lessons` and `backprop lesson run|show` end to end ($BP_CLI). */
#include "config.h"

#include "bp-test.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>
#include <sys/wait.h>

#include "bp-backend.h"
#include "bp-lesson.h"
#include "bp-spec.h"
#include "bp-text.h"
#include "bp-trainer.h"

static char *lessons_dir; /* the source tree's lessons/ */
static char *test_root;   /* removed at the end */

static BpLessonSet *
load_source_lessons (void)
{
  g_autoptr (GError) error = NULL;
  BpLessonSet *set = bp_lesson_set_load (lessons_dir, &error);
  g_assert_no_error (error);
  g_assert_nonnull (set);
  return set;
}

static void
write_file (const char *dir, const char *name, const char *text)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autoptr (GError) error = NULL;
  g_assert_true (g_file_set_contents (path, text, -1, &error));
  g_assert_no_error (error);
}

/* ---- the lessons of the source tree ---- */

/* Characters of Simplified Chinese that Traditional (Taiwan) text does not use. */
static const char *const simplified[] = {
  "们", "这", "说", "学", "习", "练", "数", "据", "损", "确", "证", "层", "络", "术", "个", "为",
  "时", "会", "还", "没", "点", "间", "对", "与", "从", "实", "验", "类", "图", "输", "计", "让",
  "长", "开", "变", "结", "样", "观", "记", "线", "经", "过", "页", "边", "读", "写", "权", "值得",
  NULL};

static gboolean
has_cjk (const char *s)
{
  for (const char *p = s; *p; p = g_utf8_next_char (p)) {
    gunichar c = g_utf8_get_char (p);
    if (c >= 0x4E00 && c <= 0x9FFF)
      return TRUE;
  }
  return FALSE;
}

static void
check_traditional (const char *what, const char *text)
{
  g_assert_true (has_cjk (text));
  for (int k = 0; simplified[k]; k++)
    if (strstr (text, simplified[k]))
      g_error ("%s: Simplified character \"%s\" in the zh_TW text", what, simplified[k]);
}

static void
check_text_pair (const char *what, const BpLessonText *t)
{
  g_assert_nonnull (t->en);
  g_assert_nonnull (t->zh_TW);
  g_assert_cmpstr (t->en, !=, "");
  g_assert_cmpstr (t->zh_TW, !=, "");
  check_traditional (what, t->zh_TW);
}

static void
test_source_lessons (void)
{
  g_autoptr (BpLessonSet) set = load_source_lessons ();
  for (guint k = 0; k < set->warnings->len; k++)
    g_printerr ("warning: %s\n", (const char *) set->warnings->pdata[k]);
  g_assert_cmpuint (set->warnings->len, ==, 0);
  g_assert_cmpuint (set->modules->len, >=, 3);
  g_autoptr (GPtrArray) all = bp_lesson_set_list (set);
  g_assert_cmpuint (all->len, >=, 15);
  guint runnable = 0;
  for (guint k = 0; k < set->modules->len; k++) {
    BpLessonModule *m = set->modules->pdata[k];
    g_assert_cmpint (m->number, ==, (int) k + 1);
    check_text_pair (m->id, &m->title);
    g_assert_cmpuint (m->lessons->len, >, 0);
  }
  for (guint k = 0; k < all->len; k++) {
    const BpLesson *l = all->pdata[k];
    check_text_pair (l->id, &l->title);
    g_assert_true (bp_lesson_set_find (set, l->id) == l);
    g_assert_true (bp_lesson_set_find (set, l->number) == l);
    /* both texts, with the sections every lesson has */
    g_autoptr (GError) error = NULL;
    g_autofree char *en = bp_lesson_read_text (l, "en", &error);
    g_assert_no_error (error);
    g_autofree char *zh = bp_lesson_read_text (l, "zh_TW", &error);
    g_assert_no_error (error);
    g_assert_true (g_str_has_prefix (en, "# "));
    g_assert_true (g_str_has_prefix (zh, "# "));
    g_assert_nonnull (strstr (en, "## What to watch"));
    g_assert_nonnull (strstr (zh, "## 觀察重點"));
    check_traditional (l->id, zh);
    /* English text (a language model's lesson may quote its corpus) */
    if (!l->experiment || !bp_train_dataset_is_text (l->experiment->dataset))
      g_assert_false (has_cjk (en));
    for (guint s = 0; s < l->steps->len; s++) {
      const BpLessonStep *step = l->steps->pdata[s];
      check_text_pair (l->id, &step->text);
      const BpLessonAction *a = &step->action;
      g_assert_cmpint (a->kind, >=, BP_LESSON_ACTION_NONE);
      g_assert_cmpint (a->kind, <=, BP_LESSON_ACTION_COMPARE_RUNS);
      if (a->variant)
        g_assert_nonnull (bp_lesson_find_variant (l, a->variant));
      if (a->kind == BP_LESSON_ACTION_OPEN_VIEW)
        g_assert_true (g_strv_contains (bp_lesson_view_names (), a->view));
    }
    if (!l->experiment) {
      /* not runnable: said why, in both languages, and no goals to check */
      check_text_pair (l->id, &l->not_runnable);
      g_assert_cmpuint (l->goals->len, ==, 0);
      BpTrainConfig c;
      g_assert_false (bp_lesson_make_config (l, NULL, TRUE, &c, &error));
      g_assert_error (error, BP_LESSON_ERROR, BP_LESSON_ERROR_NOT_RUNNABLE);
      continue;
    }
    runnable++;
    g_assert_cmpuint (l->goals->len, >, 0);
    g_assert_nonnull (strstr (en, "## The figure"));
    g_assert_nonnull (strstr (zh, "## 目標數字"));
    g_assert_cmpstr (l->not_runnable.en, ==, "");
    GPtrArray *vs = l->experiment->variants;
    for (guint v = 0; v < vs->len; v++) {
      const BpLessonVariant *var = vs->pdata[v];
      if (vs->len > 1)
        check_text_pair (var->id, &var->title);
      if (l->experiment->function) {
        /* gradient descent on a function: no model, no training config */
        BpDescentConfig d;
        g_assert_true (bp_lesson_make_descent_config (l, var->id, &d, &error));
        g_assert_no_error (error);
        g_assert_nonnull (bp_descent_function_find (d.function));
        g_assert_null (var->model);
        g_assert_null (var->spec_json);
        BpTrainConfig c;
        g_assert_false (bp_lesson_make_config (l, var->id, TRUE, &c, &error));
        g_assert_error (error, BP_LESSON_ERROR, BP_LESSON_ERROR_INVALID);
        g_clear_error (&error);
        continue;
      }
      /* a preset or a spec that builds */
      if (var->model) {
        g_assert_nonnull (bp_preset_find (var->model));
      } else {
        BpModel *m = bp_spec_build (var->spec_json, &error);
        g_assert_no_error (error);
        bp_model_free (m);
      }
      BpTrainConfig full, quick;
      g_assert_true (bp_lesson_make_config (l, var->id, FALSE, &full, &error));
      g_assert_no_error (error);
      g_assert_true (bp_lesson_make_config (l, var->id, TRUE, &quick, &error));
      g_assert_no_error (error);
      /* the test budget is small: the quick runs of every lesson fit in this test */
      if (!bp_train_dataset_is_text (quick.dataset)) {
        g_assert_cmpint (quick.limit_train, >, 0);
        g_assert_cmpint (quick.limit_train, <=, 2000);
        g_assert_cmpint (quick.limit_train * quick.epochs, <=, 20000);
        g_assert_cmpint (quick.limit_test, >, 0);
        g_assert_cmpint (quick.limit_test, <=, 500);
      } else {
        g_assert_cmpint (quick.steps_per_epoch, >, 0);
        g_assert_cmpint (quick.steps_per_epoch * quick.epochs, <=, 100);
      }
    }
    /* every goal names runs the experiment has */
    GPtrArray *lists[] = {l->goals, l->test_goals};
    for (int j = 0; j < 2; j++)
      for (guint g = 0; g < lists[j]->len; g++) {
        const BpLessonGoal *goal = lists[j]->pdata[g];
        if (goal->kind == BP_LESSON_GOAL_COMPARE) {
          g_assert_nonnull (bp_lesson_find_variant (l, goal->a));
          g_assert_nonnull (bp_lesson_find_variant (l, goal->b));
        } else {
          g_assert_nonnull (bp_lesson_find_variant (l, goal->variant));
        }
        g_autofree char *what = bp_lesson_goal_describe (goal);
        g_assert_nonnull (strstr (what, goal->metric));
      }
  }
  g_assert_cmpuint (runnable, >=, 10);
}

/* ---- malformed lessons ---- */

static const char good_lesson[] =
  "{\"format\": 1, \"id\": \"%s\", \"title\": {\"en\": \"A\", \"zh_TW\": \"甲\"},\n"
  " \"experiment\": {\"model\": \"mlp\", \"config\": {\"epochs\": 1}%s},\n"
  " \"steps\": [{\"text\": {\"en\": \"Go.\", \"zh_TW\": \"開始。\"}, \"action\": {\"type\": \"%s\"}}],\n"
  " \"goals\": [{\"metric\": \"%s\", \"op\": \">=\", \"value\": 0.5}]}\n";

/* A lesson folder NN-name in module dir with lesson.json (NULL: none) and its texts. */
static void
make_lesson (const char *module, const char *name, const char *json, gboolean en, gboolean zh)
{
  g_autofree char *dir = g_build_filename (module, name, NULL);
  g_assert_cmpint (g_mkdir_with_parents (dir, 0755), ==, 0);
  if (json)
    write_file (dir, "lesson.json", json);
  if (en)
    write_file (dir, "en.md", "# A\n\n## What to watch\n\nThe loss.\n");
  if (zh)
    write_file (dir, "zh_TW.md", "# 甲\n\n## 觀察重點\n\n損失。\n");
}

/* The one warning that names path (as a part), which must also hold reason. */
static void
assert_warning (BpLessonSet *set, const char *path, const char *reason)
{
  int found = 0;
  for (guint k = 0; k < set->warnings->len; k++) {
    const char *w = set->warnings->pdata[k];
    if (strstr (w, path)) {
      found++;
      if (!strstr (w, reason))
        g_error ("the warning \"%s\" does not say \"%s\"", w, reason);
    }
  }
  if (found != 1)
    g_error ("%d warnings name %s (want 1)", found, path);
}

static char *
malformed_tree (void)
{
  char *root = bp_test_temp_dir (test_root);
  g_autofree char *m1 = g_build_filename (root, "01-basics", NULL);
  g_autofree char *m2 = g_build_filename (root, "02-broken-module", NULL);
  g_autofree char *m3 = g_build_filename (root, "03-more", NULL);
  g_mkdir_with_parents (m1, 0755);
  g_mkdir_with_parents (m2, 0755);
  g_mkdir_with_parents (m3, 0755);
  write_file (m1, "module.json",
              "{\"format\": 1, \"id\": \"basics\", \"title\": {\"en\": \"Basics\", \"zh_TW\": \"基礎\"}}");
  write_file (m2, "module.json", "{\"format\": 1, \"id\": \"broken\", \"title\": {\"en\": \"B\"}}");
  write_file (m3, "module.json",
              "{\"format\": 1, \"id\": \"more\", \"title\": {\"en\": \"More\", \"zh_TW\": \"更多\"}}");
  g_autofree char *ok1 = g_strdup_printf (good_lesson, "good-one", "", "start-training", "val_accuracy");
  g_autofree char *ok2 = g_strdup_printf (good_lesson, "good-two", "", "load-model", "test_accuracy");
  g_autofree char *action = g_strdup_printf (good_lesson, "bad-action", "", "open-door", "val_accuracy");
  g_autofree char *metric = g_strdup_printf (good_lesson, "bad-metric", "", "load-model", "val_happiness");
  g_autofree char *dup = g_strdup_printf (good_lesson, "good-one", "", "load-model", "val_accuracy");
  g_autofree char *cfg = g_strdup_printf (good_lesson, "bad-config", ", \"test_budget\": {\"learning_rate\": 1}",
                                          "load-model", "val_accuracy");
  g_autofree char *lr = g_strdup_printf (good_lesson, "bad-lr",
                                         ", \"variants\": [{\"id\": \"a\", \"title\": {\"en\": \"a\", \"zh_TW\": \"甲\"}}, "
                                         "{\"id\": \"b\", \"title\": {\"en\": \"b\", \"zh_TW\": \"乙\"}, "
                                         "\"config\": {\"optimizer\": {\"lr\": -1}}}]",
                                         "load-model", "val_accuracy");
  make_lesson (m1, "01-good", ok1, TRUE, TRUE);
  make_lesson (m1, "02-bad-json", "{\"format\": 1, \"id\": \"bad-json\",", TRUE, TRUE);
  make_lesson (m1, "03-no-zh", ok2, TRUE, FALSE);
  make_lesson (m1, "04-bad-action", action, TRUE, TRUE);
  make_lesson (m1, "05-bad-preset",
               "{\"format\": 1, \"id\": \"bad-preset\", \"title\": {\"en\": \"A\", \"zh_TW\": \"甲\"},"
               " \"experiment\": {\"model\": \"resnet-9000\"}, \"goals\": []}", TRUE, TRUE);
  make_lesson (m1, "06-bad-metric", metric, TRUE, TRUE);
  make_lesson (m1, "07-duplicate", dup, TRUE, TRUE);
  make_lesson (m1, "08-bad-config", cfg, TRUE, TRUE);
  make_lesson (m1, "09-newer",
               "{\"format\": 2, \"id\": \"newer\", \"title\": {\"en\": \"A\", \"zh_TW\": \"甲\"}}", TRUE, TRUE);
  make_lesson (m1, "10-bad-lr", lr, TRUE, TRUE);
  make_lesson (m1, "11-no-json", NULL, TRUE, TRUE);
  make_lesson (m1, "notes", NULL, FALSE, FALSE);
  make_lesson (m2, "01-lost", ok2, TRUE, TRUE);
  make_lesson (m3, "01-good-two", ok2, TRUE, TRUE);
  return root;
}

static void
test_malformed (void)
{
  g_autofree char *root = malformed_tree ();
  g_autoptr (GError) error = NULL;
  g_autoptr (BpLessonSet) set = bp_lesson_set_load (root, &error);
  g_assert_no_error (error);
  /* the good lessons load, in both modules that can be read */
  g_assert_cmpuint (set->modules->len, ==, 2);
  g_autoptr (GPtrArray) all = bp_lesson_set_list (set);
  g_assert_cmpuint (all->len, ==, 2);
  g_assert_cmpstr (((BpLesson *) all->pdata[0])->id, ==, "good-one");
  g_assert_cmpstr (((BpLesson *) all->pdata[0])->number, ==, "1.1");
  g_assert_cmpstr (((BpLesson *) all->pdata[1])->id, ==, "good-two");
  g_assert_cmpstr (((BpLesson *) all->pdata[1])->number, ==, "3.1");
  /* one warning per skipped file, naming it and why */
  assert_warning (set, "02-bad-json/lesson.json", "");
  assert_warning (set, "03-no-zh/zh_TW.md", "missing");
  assert_warning (set, "04-bad-action/lesson.json", "unknown action \"open-door\"");
  assert_warning (set, "05-bad-preset/lesson.json", "unknown model preset \"resnet-9000\"");
  assert_warning (set, "06-bad-metric/lesson.json", "unknown metric \"val_happiness\"");
  assert_warning (set, "07-duplicate", "another lesson has the id \"good-one\"");
  assert_warning (set, "08-bad-config/lesson.json", "unknown field \"learning_rate\"");
  assert_warning (set, "09-newer/lesson.json", "newer");
  assert_warning (set, "10-bad-lr/lesson.json", "lr");
  assert_warning (set, "11-no-json/lesson.json", "missing");
  assert_warning (set, "01-basics/notes", "NN-name");
  assert_warning (set, "02-broken-module/module.json", "zh_TW");
  g_assert_cmpuint (set->warnings->len, ==, 12);
  bp_test_remove_tree (root);

  /* a folder that cannot be read at all */
  g_autofree char *missing = g_build_filename (test_root, "no-such-folder", NULL);
  BpLessonSet *none = bp_lesson_set_load (missing, &error);
  g_assert_null (none);
  g_assert_error (error, BP_LESSON_ERROR, BP_LESSON_ERROR_NOT_FOUND);
}

/* ---- the evaluator on made-up events ---- */

static const char eval_lesson[] =
  "{\"format\": 1, \"id\": \"eval\", \"title\": {\"en\": \"E\", \"zh_TW\": \"評\"},\n"
  " \"experiment\": {\"model\": \"mlp\", \"config\": {\"epochs\": 3},\n"
  "   \"variants\": [{\"id\": \"a\", \"title\": {\"en\": \"a\", \"zh_TW\": \"甲\"}},\n"
  "                  {\"id\": \"b\", \"title\": {\"en\": \"b\", \"zh_TW\": \"乙\"}}]},\n"
  " \"goals\": [\n"
  "  {\"metric\": \"val_accuracy\", \"op\": \">=\", \"value\": 0.8, \"within_epochs\": 2, \"variant\": \"a\"},\n"
  "  {\"metric\": \"val_accuracy\", \"op\": \">=\", \"value\": 0.8, \"within_epochs\": 2, \"variant\": \"b\"},\n"
  "  {\"metric\": \"test_accuracy\", \"op\": \">\", \"value\": 0.85, \"variant\": \"a\"},\n"
  "  {\"metric\": \"train_loss\", \"op\": \"<=\", \"value\": 0.5, \"variant\": \"b\"},\n"
  "  {\"type\": \"compare\", \"metric\": \"val_accuracy\", \"a\": \"a\", \"op\": \">=\", \"b\": \"b\", \"margin\": 0.05},\n"
  "  {\"type\": \"compare\", \"metric\": \"val_loss\", \"a\": \"a\", \"op\": \"<\", \"b\": \"b\", \"margin\": 0.5},\n"
  "  {\"metric\": \"val_class_accuracy\", \"class\": \"Shirt\", \"op\": \"<=\", \"value\": 0.6, \"variant\": \"a\"}]}\n";

static BpTrainEvent
epoch_event (int epoch, double train_loss, double val_loss, double val_acc)
{
  BpTrainEvent ev = {0};
  ev.kind = BP_TRAIN_EVENT_EPOCH;
  ev.epoch = epoch;
  ev.epochs = 3;
  ev.train_loss = train_loss;
  ev.val_loss = val_loss;
  ev.val_accuracy = val_acc;
  ev.test_loss = ev.test_accuracy = NAN;
  ev.baseline_loss = NAN;
  return ev;
}

static void
test_eval (void)
{
  g_autofree char *root = bp_test_temp_dir (test_root);
  g_autofree char *module = g_build_filename (root, "01-m", NULL);
  g_mkdir_with_parents (module, 0755);
  write_file (module, "module.json", "{\"format\": 1, \"id\": \"m\", \"title\": {\"en\": \"M\", \"zh_TW\": \"模\"}}");
  make_lesson (module, "01-eval", eval_lesson, TRUE, TRUE);
  g_autoptr (GError) error = NULL;
  g_autoptr (BpLessonSet) set = bp_lesson_set_load (root, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (set->warnings->len, ==, 0);
  const BpLesson *l = bp_lesson_set_find (set, "eval");
  g_assert_nonnull (l);
  g_autoptr (BpLessonEval) e = bp_lesson_eval_new (l, TRUE); /* no test goals: the goals */
  g_assert_cmpuint (bp_lesson_eval_get_n_goals (e), ==, 7);
  g_assert_cmpuint (bp_lesson_eval_count (e, BP_LESSON_GOAL_PENDING), ==, 7);

  /* run a: 0.7 then 0.82 (met at epoch 2), test 0.86; Shirt right 5 of 10 */
  const char *names[] = {"T-shirt/top", "Shirt", NULL};
  int64_t confusion[] = {9, 1, 5, 5};
  BpTrainEvent ev = epoch_event (1, 0.9, 0.8, 0.7);
  ev.n_classes = 2;
  ev.class_names = names;
  ev.confusion = confusion;
  g_assert_true (bp_lesson_eval_event (e, "a", &ev));  /* the Shirt goal: 0.5 <= 0.6 */
  const BpLessonGoalResult *r = bp_lesson_eval_get_result (e, 6);
  g_assert_cmpint (r->state, ==, BP_LESSON_GOAL_MET);
  g_assert_cmpfloat_with_epsilon (r->value, 0.5, 1e-12);
  r = bp_lesson_eval_get_result (e, 0);
  g_assert_cmpint (r->state, ==, BP_LESSON_GOAL_PENDING);
  g_assert_cmpfloat_with_epsilon (r->value, 0.7, 1e-12);
  ev = epoch_event (2, 0.6, 0.5, 0.82);
  g_assert_true (bp_lesson_eval_event (e, "a", &ev));
  g_assert_cmpint (r->state, ==, BP_LESSON_GOAL_MET);
  g_assert_cmpint (r->epoch, ==, 2);
  g_assert_cmpfloat_with_epsilon (r->value, 0.82, 1e-12);
  ev = epoch_event (3, 0.4, 0.45, 0.85);
  bp_lesson_eval_event (e, "a", &ev);
  BpTrainEvent done = {0};
  done.kind = BP_TRAIN_EVENT_DONE;
  done.epoch = 3;
  done.test_accuracy = 0.86;
  done.test_loss = 0.4;
  done.baseline_loss = NAN;
  g_assert_true (bp_lesson_eval_event (e, "a", &done));
  g_assert_cmpint (bp_lesson_eval_get_result (e, 2)->state, ==, BP_LESSON_GOAL_MET);
  bp_lesson_eval_run_ended (e, "a");
  /* the compare goals wait for run b */
  g_assert_cmpint (bp_lesson_eval_get_result (e, 4)->state, ==, BP_LESSON_GOAL_PENDING);

  /* run b: 0.75, 0.78 (missed at epoch 2, within 2), 0.9; train loss reaches 0.5 at epoch 3 */
  ev = epoch_event (1, 1.0, 0.9, 0.75);
  bp_lesson_eval_event (e, "b", &ev);
  r = bp_lesson_eval_get_result (e, 1);
  g_assert_cmpint (r->state, ==, BP_LESSON_GOAL_PENDING);
  ev = epoch_event (2, 0.7, 0.8, 0.78);
  g_assert_true (bp_lesson_eval_event (e, "b", &ev));
  g_assert_cmpint (r->state, ==, BP_LESSON_GOAL_MISSED);
  g_assert_cmpfloat_with_epsilon (r->value, 0.78, 1e-12); /* the best reached */
  ev = epoch_event (3, 0.5, 1.0, 0.9);
  bp_lesson_eval_event (e, "b", &ev);
  g_assert_cmpint (r->state, ==, BP_LESSON_GOAL_MISSED); /* too late */
  r = bp_lesson_eval_get_result (e, 3);
  g_assert_cmpint (r->state, ==, BP_LESSON_GOAL_MET);
  g_assert_cmpint (r->epoch, ==, 3);
  g_assert_true (bp_lesson_eval_run_ended (e, "b"));
  /* a's last val accuracy 0.85 is not >= 0.9 + 0.05; a's last val loss 0.45 < 1.0 - 0.5 */
  r = bp_lesson_eval_get_result (e, 4);
  g_assert_cmpint (r->state, ==, BP_LESSON_GOAL_MISSED);
  g_assert_cmpfloat_with_epsilon (r->value, 0.85, 1e-12);
  g_assert_cmpfloat_with_epsilon (r->other, 0.9, 1e-12);
  g_assert_cmpfloat_with_epsilon (r->target, 0.95, 1e-12);
  r = bp_lesson_eval_get_result (e, 5);
  g_assert_cmpint (r->state, ==, BP_LESSON_GOAL_MET);
  g_assert_cmpfloat_with_epsilon (r->target, 0.5, 1e-12);
  g_assert_cmpuint (bp_lesson_eval_count (e, BP_LESSON_GOAL_MET), ==, 5);
  g_assert_cmpuint (bp_lesson_eval_count (e, BP_LESSON_GOAL_MISSED), ==, 2);
  g_assert_false (bp_lesson_eval_all_met (e));

  /* a run that ends early (failed, diverged) misses its pending goals */
  g_autoptr (BpLessonEval) e2 = bp_lesson_eval_new (l, FALSE);
  ev = epoch_event (1, 0.9, 0.8, 0.7);
  bp_lesson_eval_event (e2, "a", &ev);
  g_assert_true (bp_lesson_eval_run_ended (e2, "a"));
  g_assert_cmpint (bp_lesson_eval_get_result (e2, 0)->state, ==, BP_LESSON_GOAL_MISSED);
  g_assert_cmpint (bp_lesson_eval_get_result (e2, 2)->state, ==, BP_LESSON_GOAL_MISSED);
  g_assert_cmpint (bp_lesson_eval_get_result (e2, 1)->state, ==, BP_LESSON_GOAL_PENDING);

  /* configs: layers read over each other, the quick budget last */
  BpTrainConfig c;
  g_assert_true (bp_lesson_make_config (l, "b", FALSE, &c, &error));
  g_assert_no_error (error);
  g_assert_cmpint (c.epochs, ==, 3);
  g_assert_cmpstr (c.model, ==, "mlp");
  g_assert_cmpstr (c.dataset, ==, "fashion-mnist");
  g_assert_false (bp_lesson_make_config (l, "c", FALSE, &c, &error));
  g_assert_error (error, BP_LESSON_ERROR, BP_LESSON_ERROR_NOT_FOUND);
  bp_test_remove_tree (root);
}

static void
test_goal_text (void)
{
  BpLessonGoal g = {0};
  g.kind = BP_LESSON_GOAL_METRIC;
  g.metric = (char *) "val_loss";
  g.op = BP_LESSON_OP_LT;
  g.baseline = TRUE;
  g.value = -0.5;
  g.within_epochs = 1;
  g_autofree char *a = bp_lesson_goal_describe (&g);
  g_assert_cmpstr (a, ==, "val_loss < the unigram baseline - 0.5 within 1 epoch");
  g.kind = BP_LESSON_GOAL_COMPARE;
  g.metric = (char *) "val_accuracy";
  g.op = BP_LESSON_OP_GE;
  g.a = (char *) "right";
  g.b = (char *) "too-small";
  g.margin = 0.05;
  g_autofree char *b = bp_lesson_goal_describe (&g);
  g_assert_cmpstr (b, ==, "val_accuracy of run right >= run too-small's + 0.05");
}

/* ---- every runnable lesson's quick experiment ---- */

/* The data the lessons train on: Fashion-MNIST (dataset-fashion-mnist) and the corpora of
 * fortunes-zh (with OpenCC), which ./lab installs. */
static gboolean
have_fashion_mnist (void)
{
  g_autofree char *path = g_build_filename (BP_DATASETS_DIR, "fashion-mnist",
                                            "train-images-idx3-ubyte.gz", NULL);
  return g_file_test (path, G_FILE_TEST_EXISTS);
}

static gboolean
have_corpus (const char *name)
{
  g_autofree char *path = g_build_filename (bp_text_fortunes_dir (), name, NULL);
  return g_file_test (path, G_FILE_TEST_EXISTS) && bp_text_have_opencc ();
}

typedef struct {
  BpLessonEval *eval;
  const char *variant;
} QuickRun;

static gboolean
quick_event (const BpTrainEvent *ev, gpointer user_data)
{
  QuickRun *q = user_data;
  bp_lesson_eval_event (q->eval, q->variant, ev);
  return TRUE;
}

static gboolean
descent_point (const BpDescentPoint *p, gpointer data)
{
  QuickRun *q = data;
  bp_lesson_eval_descent (q->eval, q->variant, p);
  return TRUE;
}

/* A function experiment's runs, all of them in order, fed to a new evaluator. */
static BpLessonEval *
descend_all (const BpLesson *l)
{
  BpLessonEval *eval = bp_lesson_eval_new (l, TRUE);
  GPtrArray *vs = l->experiment->variants;
  for (guint v = 0; v < vs->len; v++) {
    const BpLessonVariant *var = vs->pdata[v];
    BpDescentConfig c;
    g_autoptr (GError) error = NULL;
    g_assert_true (bp_lesson_make_descent_config (l, var->id, &c, &error));
    QuickRun q = {eval, var->id};
    g_assert_true (bp_descent_run (&c, descent_point, &q, &error));
    g_assert_no_error (error);
    bp_lesson_eval_run_ended (eval, var->id);
  }
  return eval;
}

/* A function experiment's runs (fast: no test budget) against its goals. */
static void
run_descent_lesson (const BpLesson *l)
{
  g_autoptr (BpLessonEval) eval = descend_all (l);
  for (guint g = 0; g < bp_lesson_eval_get_n_goals (eval); g++) {
    const BpLessonGoalResult *r = bp_lesson_eval_get_result (eval, g);
    g_autofree char *what = bp_lesson_goal_describe (bp_lesson_eval_get_goal (eval, g));
    if (r->state != BP_LESSON_GOAL_MET)
      g_error ("lesson %s %s: misses \"%s\": %g (target %g)", l->number, l->id, what, r->value,
               r->target);
  }
}

static void
test_quick_runs (void)
{
  if (!have_fashion_mnist ()) {
    g_test_skip ("Fashion-MNIST (dataset-fashion-mnist) is not installed");
    return;
  }
  g_autoptr (BpLessonSet) set = load_source_lessons ();
  g_autoptr (GPtrArray) all = bp_lesson_set_list (set);
  /* one thread: the quick runs are small, and on a loaded machine OpenMP workers waiting for
   * each other cost far more than they save */
  bp_set_num_threads (1);
  const char *only = g_getenv ("BP_TEST_LESSON");
  for (guint k = 0; k < all->len; k++) {
    const BpLesson *l = all->pdata[k];
    if (!l->experiment || (only && strcmp (only, l->id) && strcmp (only, l->number)))
      continue;
    const char *dataset = l->experiment->dataset;
    if (l->experiment->function) {
      run_descent_lesson (l);
      continue;
    }
    if (bp_train_dataset_is_text (dataset) && !have_corpus (dataset)) {
      g_test_message ("%s %s: skipped, the corpus %s (fortunes-zh, OpenCC) is missing", l->number,
                      l->id, dataset);
      continue;
    }
    gint64 t0 = g_get_monotonic_time ();
    g_autoptr (BpLessonEval) eval = bp_lesson_eval_new (l, TRUE);
    GPtrArray *vs = l->experiment->variants;
    for (guint v = 0; v < vs->len; v++) {
      const BpLessonVariant *var = vs->pdata[v];
      BpTrainConfig c;
      g_autoptr (GError) error = NULL;
      g_assert_true (bp_lesson_make_config (l, var->id, TRUE, &c, &error));
      g_assert_no_error (error);
      BpTrainer *t = bp_trainer_new (&c, &error);
      g_assert_no_error (error);
      QuickRun q = {eval, var->id};
      gboolean ok = bp_trainer_run (t, quick_event, &q, &error);
      /* a run may diverge (a learning rate too large); anything else is a failure */
      if (!ok)
        g_assert_error (error, BP_TRAIN_ERROR, BP_TRAIN_ERROR_NUMERIC);
      bp_lesson_eval_run_ended (eval, var->id);
      bp_trainer_free (t);
    }
    for (guint g = 0; g < bp_lesson_eval_get_n_goals (eval); g++) {
      const BpLessonGoalResult *r = bp_lesson_eval_get_result (eval, g);
      g_autofree char *what = bp_lesson_goal_describe (bp_lesson_eval_get_goal (eval, g));
      g_test_message ("%s %s: %s: %.4f (other %.4f, target %.4f)", l->number, l->id, what,
                      r->value, r->other, r->target);
      if (r->state != BP_LESSON_GOAL_MET)
        g_error ("lesson %s %s: the quick run misses \"%s\": %.4f (other %.4f, target %.4f)",
                 l->number, l->id, what, r->value, r->other, r->target);
    }
    g_test_message ("%s %s: %.1f s", l->number, l->id,
                    (double) (g_get_monotonic_time () - t0) / 1e6);
  }
}

/* ---- the commands ---- */

typedef struct {
  char *out, *err;
  int status;
} Result;

static void
result_clear (Result *r)
{
  g_free (r->out);
  g_free (r->err);
}

static Result
run_cli (const char *dir, ...)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_ptr_array_add (argv, (gpointer) g_getenv ("BP_CLI"));
  va_list ap;
  va_start (ap, dir);
  const char *a;
  while ((a = va_arg (ap, const char *)))
    g_ptr_array_add (argv, (gpointer) a);
  va_end (ap);
  g_ptr_array_add (argv, NULL);
  char **envp = g_get_environ ();
  envp = g_environ_setenv (envp, "BP_LESSONS_DIR", dir, TRUE);
  envp = g_environ_setenv (envp, "XDG_DATA_HOME", test_root, TRUE);
  /* `lesson run --png` draws with Pango: fontconfig keeps its caches to the end by design */
  g_autofree char *supp = g_test_build_filename (G_TEST_DIST, "gui", "lsan.supp", NULL);
  g_autofree char *lsan = g_strdup_printf ("suppressions=%s:print_suppressions=0", supp);
  envp = g_environ_setenv (envp, "LSAN_OPTIONS", lsan, TRUE);
  Result r = {0};
  g_autoptr (GError) error = NULL;
  g_assert_true (g_spawn_sync (NULL, (char **) argv->pdata, envp, G_SPAWN_DEFAULT, NULL, NULL,
                               &r.out, &r.err, &r.status, &error));
  g_assert_no_error (error);
  r.status = WIFEXITED (r.status) ? WEXITSTATUS (r.status) : 128 + WTERMSIG (r.status);
  g_strfreev (envp);
  return r;
}

static JsonNode *
parse_json (const char *text)
{
  g_autoptr (GError) error = NULL;
  JsonNode *n = json_from_string (text, &error);
  g_assert_no_error (error);
  g_assert_nonnull (n);
  return n;
}

static void
test_cli_list (void)
{
  if (!g_getenv ("BP_CLI")) {
    g_test_skip ("BP_CLI is not set");
    return;
  }
  Result r = run_cli (lessons_dir, "lessons", "--json", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_autoptr (JsonNode) root = parse_json (r.out);
  JsonObject *o = json_node_get_object (root);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (o, "warnings")), ==, 0);
  JsonArray *modules = json_object_get_array_member (o, "modules");
  g_assert_cmpuint (json_array_get_length (modules), >=, 3);
  JsonObject *m1 = json_array_get_object_element (modules, 0);
  g_assert_cmpstr (json_object_get_string_member (m1, "id"), ==, "foundations");
  JsonArray *ls = json_object_get_array_member (m1, "lessons");
  gboolean saw_model = FALSE, saw_function = FALSE;
  for (guint k = 0; k < json_array_get_length (ls); k++) {
    JsonObject *l = json_array_get_object_element (ls, k);
    if (json_object_get_boolean_member (l, "runnable")) {
      g_assert_cmpuint (json_array_get_length (json_object_get_array_member (l, "goals")), >, 0);
      JsonArray *runs = json_object_get_array_member (l, "runs");
      g_assert_cmpuint (json_array_get_length (runs), >, 0);
      if (json_object_has_member (l, "function")) {
        /* the autograd lesson: gradient descent on the bowl, runs differing in lr */
        saw_function = TRUE;
        g_assert_cmpstr (json_object_get_string_member (l, "function"), ==, "bowl");
        g_assert_false (json_object_has_member (l, "dataset"));
        JsonObject *run = json_array_get_object_element (runs, 0);
        g_assert_cmpstr (json_object_get_string_member (run, "optimizer"), ==, "sgd");
        g_assert_cmpfloat (json_object_get_double_member (run, "lr"), >, 0);
      } else {
        saw_model = TRUE;
        g_assert_nonnull (json_object_get_string_member (l, "dataset"));
      }
    } else {
      g_assert_cmpstr (json_object_get_string_member (l, "not_runnable"), !=, "");
    }
  }
  g_assert_true (saw_model && saw_function);
  result_clear (&r);

  /* zh_TW titles; text listing */
  r = run_cli (lessons_dir, "lessons", "--lang", "zh_TW", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "學習率"));
  g_assert_nonnull (strstr (r.out, "1.3"));
  result_clear (&r);
  r = run_cli (lessons_dir, "lessons", "--lang", "fr", NULL);
  g_assert_cmpint (r.status, ==, 2);
  result_clear (&r);

  /* show */
  r = run_cli (lessons_dir, "lesson", "show", "1.3", "--lang", "zh_TW", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "## 觀察重點"));
  g_assert_nonnull (strstr (r.out, "start-training too-small"));
  result_clear (&r);

  /* errors: an unknown lesson, a lesson without an experiment */
  r = run_cli (lessons_dir, "lesson", "run", "no-such-lesson", "--no-store", NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, "no lesson \"no-such-lesson\""));
  result_clear (&r);

  /* malformed lessons: listed as warnings (stderr, or in the JSON), the others still listed */
  g_autofree char *bad = malformed_tree ();
  r = run_cli (bad, "lessons", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "good-one"));
  g_assert_nonnull (strstr (r.err, "04-bad-action/lesson.json: unknown action \"open-door\""));
  result_clear (&r);
  r = run_cli (bad, "lessons", "--json", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_autoptr (JsonNode) broot = parse_json (r.out);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (json_node_get_object (broot), "warnings")), ==, 12);
  result_clear (&r);
  bp_test_remove_tree (bad);
}

static void
test_cli_run (void)
{
  if (!g_getenv ("BP_CLI")) {
    g_test_skip ("BP_CLI is not set");
    return;
  }
  if (!have_fashion_mnist ()) {
    g_test_skip ("Fashion-MNIST (dataset-fashion-mnist) is not installed");
    return;
  }
  Result r = run_cli (lessons_dir, "lesson", "run", "1.1", "--quick", "--no-store", "--json",
                      "--device", "cpu", "--threads", "1", NULL);
  if (r.status != 0)
    g_printerr ("%s%s", r.out, r.err);
  g_assert_cmpint (r.status, ==, 0);
  g_auto (GStrv) lines = g_strsplit (g_strstrip (r.out), "\n", -1);
  guint n = g_strv_length (lines);
  g_assert_cmpuint (n, >=, 5);
  int epochs = 0, goals = 0;
  for (guint k = 0; k < n; k++) {
    g_autoptr (JsonNode) node = parse_json (lines[k]);
    JsonObject *o = json_node_get_object (node);
    const char *ev = json_object_get_string_member (o, "event");
    if (!strcmp (ev, "epoch"))
      epochs++;
    if (!strcmp (ev, "goal")) {
      goals++;
      g_assert_cmpstr (json_object_get_string_member (o, "state"), ==, "met");
      g_assert_cmpfloat (json_object_get_double_member (o, "value"), >=, 0.6);
    }
    if (k == n - 1) {
      g_assert_cmpstr (ev, ==, "summary");
      g_assert_true (json_object_get_boolean_member (o, "all_met"));
    }
  }
  g_assert_cmpint (epochs, ==, 1);
  g_assert_cmpint (goals, ==, 1);
  result_clear (&r);

  /* stored, tagged with the lesson; a goal not met gives exit status 1 */
  g_autofree char *dir = bp_test_temp_dir (test_root);
  g_autofree char *module = g_build_filename (dir, "01-m", NULL);
  g_mkdir_with_parents (module, 0755);
  write_file (module, "module.json", "{\"format\": 1, \"id\": \"m\", \"title\": {\"en\": \"M\", \"zh_TW\": \"模\"}}");
  make_lesson (module, "01-hard",
               "{\"format\": 1, \"id\": \"hard\", \"title\": {\"en\": \"H\", \"zh_TW\": \"難\"},\n"
               " \"experiment\": {\"model\": \"mlp\", \"config\": {\"epochs\": 1, \"limit_train\": 300, \"limit_test\": 100}},\n"
               " \"goals\": [{\"metric\": \"val_accuracy\", \"op\": \">=\", \"value\": 0.99},\n"
               "           {\"metric\": \"train_loss\", \"op\": \"<\", \"value\": 100}]}\n",
               TRUE, TRUE);
  g_autofree char *db = g_build_filename (dir, "runs.db", NULL);
  r = run_cli (dir, "lesson", "run", "hard", "--db", db, "--device", "cpu", "--threads", "1", NULL);
  g_assert_cmpint (r.status, ==, 1);
  g_assert_nonnull (strstr (r.out, "NOT MET  val_accuracy >= 0.99"));
  g_assert_nonnull (strstr (r.out, "met      train_loss < 100"));
  g_assert_nonnull (strstr (r.out, "1 of 2 goals met"));
  result_clear (&r);
  r = run_cli (dir, "runs", "--db", db, "--json", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "\"lesson:hard\""));
  g_assert_nonnull (strstr (r.out, "\"name\":\"hard\""));
  result_clear (&r);
  bp_test_remove_tree (dir);
}

/* ---- function experiments (gradient descent, the autograd lesson) ---- */

static const char function_lesson[] =
  "{\"format\": 1, \"id\": \"%s\", \"title\": {\"en\": \"A\", \"zh_TW\": \"甲\"},\n"
  " \"experiment\": {\"function\": {\"name\": \"%s\", \"start\": [-4, 2], \"steps\": 50}%s,\n"
  "  \"variants\": [{\"id\": \"slow\", \"title\": {\"en\": \"s\", \"zh_TW\": \"慢\"}},\n"
  "   {\"id\": \"fast\", \"title\": {\"en\": \"f\", \"zh_TW\": \"快\"}, \"config\": {\"optimizer\": {\"lr\": 0.09}}}]},\n"
  " \"steps\": [{\"text\": {\"en\": \"Go.\", \"zh_TW\": \"開始。\"}, \"action\": {\"type\": \"%s\"}}],\n"
  " \"goals\": [{\"metric\": \"%s\", \"op\": \"<=\", \"value\": 0.01, \"within_steps\": 30, \"variant\": \"fast\"},\n"
  "  {\"type\": \"compare\", \"metric\": \"value\", \"a\": \"fast\", \"op\": \"<\", \"b\": \"slow\"}]}\n";

static char *
function_tree (void)
{
  char *root = bp_test_temp_dir (test_root);
  g_autofree char *m = g_build_filename (root, "01-basics", NULL);
  g_mkdir_with_parents (m, 0755);
  write_file (m, "module.json",
              "{\"format\": 1, \"id\": \"basics\", \"title\": {\"en\": \"Basics\", \"zh_TW\": \"基礎\"}}");
  const char *sgd = ", \"config\": {\"optimizer\": {\"name\": \"sgd\", \"lr\": 0.02}}";
  g_autofree char *good = g_strdup_printf (function_lesson, "descent", "bowl", sgd,
                                           "start-training", "value");
  g_autofree char *fn = g_strdup_printf (function_lesson, "bad-function", "sphere", sgd,
                                         "start-training", "value");
  g_autofree char *metric = g_strdup_printf (function_lesson, "bad-metric", "bowl", sgd,
                                             "start-training", "val_accuracy");
  g_autofree char *epochs = g_strdup_printf (function_lesson, "bad-config", "bowl",
                                             ", \"config\": {\"epochs\": 3}", "start-training",
                                             "value");
  g_autofree char *model = g_strdup_printf (function_lesson, "bad-model", "bowl",
                                            ", \"model\": \"mlp\"", "start-training", "value");
  g_autofree char *load = g_strdup_printf (function_lesson, "bad-action", "bowl", sgd,
                                           "load-model", "value");
  g_autofree char *lr = g_strdup_printf (function_lesson, "bad-lr", "bowl",
                                         ", \"config\": {\"optimizer\": {\"lr\": -2}}",
                                         "start-training", "value");
  g_autofree char *mixed = g_strdup_printf (good_lesson, "model-distance", "", "start-training",
                                            "distance");
  make_lesson (m, "01-descent", good, TRUE, TRUE);
  make_lesson (m, "02-bad-function", fn, TRUE, TRUE);
  make_lesson (m, "03-bad-metric", metric, TRUE, TRUE);
  make_lesson (m, "04-bad-config", epochs, TRUE, TRUE);
  make_lesson (m, "05-bad-model", model, TRUE, TRUE);
  make_lesson (m, "06-bad-action", load, TRUE, TRUE);
  make_lesson (m, "07-bad-lr", lr, TRUE, TRUE);
  make_lesson (m, "08-model-distance", mixed, TRUE, TRUE);
  g_autofree char *r2 = g_strdup_printf (good_lesson, "r2-on-images", "", "start-training",
                                         "val_r2");
  make_lesson (m, "10-r2-on-images", r2, TRUE, TRUE);
  g_autofree char *acc = g_strdup_printf (good_lesson, "accuracy-on-regression",
                                          ", \"dataset\": \"diabetes\"", "start-training",
                                          "val_accuracy");
  make_lesson (m, "11-accuracy-on-regression", acc, TRUE, TRUE);
  make_lesson (m, "09-not-yet",
               "{\"format\": 1, \"id\": \"not-yet\", \"title\": {\"en\": \"A\", \"zh_TW\": \"甲\"},"
               " \"experiment\": null, \"not_runnable\": {\"en\": \"no data yet\", \"zh_TW\": \"還沒有資料\"}}",
               TRUE, TRUE);
  return root;
}

static void
test_function_lessons (void)
{
  g_autofree char *root = function_tree ();
  g_autoptr (GError) error = NULL;
  g_autoptr (BpLessonSet) set = bp_lesson_set_load (root, &error);
  g_assert_no_error (error);
  assert_warning (set, "02-bad-function/lesson.json",
                  "unknown function \"sphere\" (bowl, rosenbrock, himmelblau)");
  assert_warning (set, "03-bad-metric/lesson.json",
                  "unknown metric \"val_accuracy\" in goals[0] (a function experiment's");
  assert_warning (set, "04-bad-config/lesson.json", "unknown field \"epochs\"");
  assert_warning (set, "05-bad-model/lesson.json",
                  "an experiment with a \"function\" has no \"model\"");
  assert_warning (set, "06-bad-action/lesson.json",
                  "action load-model needs a model's experiment");
  assert_warning (set, "07-bad-lr/lesson.json", "lr");
  assert_warning (set, "08-model-distance/lesson.json", "it is a function experiment's");
  assert_warning (set, "10-r2-on-images/lesson.json",
                  "val_r2 in goals[0] is a regression's metric, and fashion-mnist is not a "
                  "regression");
  assert_warning (set, "11-accuracy-on-regression/lesson.json",
                  "val_accuracy in goals[0]: diabetes is a regression, it has R² (val_r2, "
                  "test_r2) instead of accuracies");
  g_assert_cmpuint (set->warnings->len, ==, 9);

  const BpLesson *l = bp_lesson_set_find (set, "descent");
  g_assert_nonnull (l);
  g_assert_cmpstr (l->experiment->function, ==, "bowl");
  g_assert_null (l->experiment->dataset);
  BpDescentConfig c;
  g_assert_true (bp_lesson_make_descent_config (l, "fast", &c, &error));
  g_assert_cmpfloat (c.optim.lr, ==, 0.09f);
  g_assert_cmpint (c.optim.kind, ==, BP_OPTIM_SGD);
  g_assert_cmpint (c.steps, ==, 50);
  g_assert_cmpfloat (c.start[0], ==, -4.0);
  g_autofree char *what = bp_lesson_goal_describe (l->goals->pdata[0]);
  g_assert_cmpstr (what, ==, "value <= 0.01 within 30 steps (run fast)");

  /* the evaluator on real paths: fast reaches f <= 0.01 at step 21, and ends below slow */
  g_autoptr (BpLessonEval) eval = descend_all (l); /* slow, then fast */
  const BpLessonGoalResult *r0 = bp_lesson_eval_get_result (eval, 0);
  g_assert_cmpint (r0->state, ==, BP_LESSON_GOAL_MET);
  g_assert_cmpint (r0->epoch, ==, 21);
  const BpLessonGoalResult *r1 = bp_lesson_eval_get_result (eval, 1);
  g_assert_cmpint (r1->state, ==, BP_LESSON_GOAL_MET);
  g_assert_cmpfloat (r1->value, <, r1->other);

  /* a run that never gets there within the steps misses */
  g_autoptr (BpLessonEval) late = bp_lesson_eval_new (l, FALSE);
  g_assert_true (bp_lesson_make_descent_config (l, "slow", &c, &error));
  QuickRun q = {late, "fast"}; /* slow's path, fed as run fast */
  g_assert_true (bp_descent_run (&c, descent_point, &q, &error));
  g_assert_cmpint (bp_lesson_eval_get_result (late, 0)->state, ==, BP_LESSON_GOAL_MISSED);

  if (g_getenv ("BP_CLI")) {
    Result r = run_cli (root, "lesson", "run", "descent", "--no-store", NULL);
    g_assert_cmpint (r.status, ==, 0);
    g_assert_nonnull (strstr (r.out, "f(x, y) = x² + 10y², sgd lr 0.09, 50 steps"));
    g_assert_nonnull (strstr (r.out, "step    0  x         -4  y          2  f         56"));
    g_assert_nonnull (strstr (r.out, "2 of 2 goals met"));
    g_assert_null (strstr (r.err, "GPU"));
    result_clear (&r);
    r = run_cli (root, "lesson", "run", "descent", "--no-store", "--json", NULL);
    g_assert_cmpint (r.status, ==, 0);
    /* one point per step and run, the start included */
    guint points = 0;
    for (const char *p = r.out; (p = strstr (p, "\"event\":\"point\"")); p++)
      points++;
    g_assert_cmpuint (points, ==, 2 * 51);
    g_assert_nonnull (strstr (r.out, "\"within_steps\":30"));
    result_clear (&r);
    /* --png: the contours and both paths; a PNG of the size asked */
    g_autofree char *png = g_build_filename (root, "paths.png", NULL);
    r = run_cli (root, "lesson", "run", "descent", "--png", png, NULL);
    g_assert_cmpint (r.status, ==, 0);
    g_assert_nonnull (strstr (r.out, "drew the paths into"));
    result_clear (&r);
    g_autofree guchar *bytes = NULL;
    gsize len = 0;
    g_assert_true (g_file_get_contents (png, (char **) &bytes, &len, NULL));
    g_assert_cmpuint (len, >, 10000);
    g_assert_cmpmem (bytes, 8, "\x89PNG\r\n\x1a\n", 8);
    /* IHDR: width and height, big-endian */
    guint32 w = (guint32) bytes[16] << 24 | (guint32) bytes[17] << 16 | bytes[18] << 8 | bytes[19];
    guint32 h = (guint32) bytes[20] << 24 | (guint32) bytes[21] << 16 | bytes[22] << 8 | bytes[23];
    g_assert_cmpuint (w, ==, 900);
    g_assert_cmpuint (h, ==, 620);
    r = run_cli (lessons_dir, "lesson", "run", "1.1", "--png", png, "--no-store", NULL);
    g_assert_cmpint (r.status, ==, 2);
    g_assert_nonnull (strstr (r.err, "--png draws a function experiment's paths"));
    result_clear (&r);
    r = run_cli (root, "lesson", "run", "not-yet", "--no-store", NULL);
    g_assert_cmpint (r.status, ==, 1);
    g_assert_nonnull (strstr (r.err, "no experiment"));
    g_assert_nonnull (strstr (r.err, "no data yet"));
    result_clear (&r);
  }
  bp_test_remove_tree (root);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  lessons_dir = g_test_build_filename (G_TEST_DIST, "..", "lessons", NULL);
  g_autofree char *tmp = g_build_filename (g_get_tmp_dir (), "bp-test-lessons-XXXXXX", NULL);
  test_root = g_strdup (g_mkdtemp (tmp));
  g_assert_nonnull (test_root);
  g_test_add_func ("/lessons/source", test_source_lessons);
  g_test_add_func ("/lessons/malformed", test_malformed);
  g_test_add_func ("/lessons/eval", test_eval);
  g_test_add_func ("/lessons/goal-text", test_goal_text);
  g_test_add_func ("/lessons/quick-runs", test_quick_runs);
  g_test_add_func ("/lessons/cli-list", test_cli_list);
  g_test_add_func ("/lessons/cli-run", test_cli_run);
  g_test_add_func ("/lessons/function", test_function_lessons);
  int rc = g_test_run ();
  bp_test_remove_tree (test_root);
  g_free (test_root);
  g_free (lessons_dir);
  return rc;
}
