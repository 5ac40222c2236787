/* bp-lesson.h: guided lessons (doc/lessons.md): loading and checking the lessons/ folder
 * (modules, lessons, their experiments, steps and goals), the training configs of a lesson's
 * runs, and the evaluator that ticks a lesson's goals off as its runs' events arrive. */
#pragma once

#include <glib.h>

#include "bp-descent.h"
#include "bp-trainer.h"

G_BEGIN_DECLS

#define BP_LESSON_ERROR (bp_lesson_error_quark ())
GQuark bp_lesson_error_quark (void);

typedef enum {
  BP_LESSON_ERROR_NOT_FOUND,    /* no lessons folder, no such lesson or variant */
  BP_LESSON_ERROR_NOT_RUNNABLE, /* the lesson has no experiment the trainer can run yet */
  BP_LESSON_ERROR_INVALID,      /* a config that the trainer refuses */
} BpLessonError;

/* The lesson format this program reads (lesson.json and module.json "format"). */
#define BP_LESSON_FORMAT 1

/* A text in both languages of the lessons. */
typedef struct {
  char *en;
  char *zh_TW;
} BpLessonText;

/* The text in a language: "zh_TW" (also "zh_TW.UTF-8", "zh-TW", "zh"...) gives zh_TW,
 * anything else (NULL included) en. */
const char *bp_lesson_text_get (const BpLessonText *text, const char *lang);

typedef enum {
  BP_LESSON_OP_GE,
  BP_LESSON_OP_LE,
  BP_LESSON_OP_GT,
  BP_LESSON_OP_LT,
} BpLessonOp;

typedef enum {
  BP_LESSON_GOAL_METRIC,  /* a run's metric op value (within N epochs) */
  BP_LESSON_GOAL_COMPARE, /* run a's final metric op run b's (plus or minus a margin) */
} BpLessonGoalKind;

typedef struct {
  BpLessonGoalKind kind;
  char *metric;        /* train_loss, train_accuracy, val_loss, val_accuracy, test_loss,
                        * test_accuracy, val_class_accuracy, val_r2, test_r2 (a regression's
                        * coefficient of determination); a function experiment's: value,
                        * distance, grad_error (bp_lesson_metric_is_descent) */
  char *class_name;    /* val_class_accuracy: the class ("Shirt") */
  BpLessonOp op;
  /* METRIC */
  char *variant;       /* the run it is about (NULL: the lesson's only run) */
  double value;        /* the threshold; with baseline: an offset added to the baseline */
  gboolean baseline;   /* the threshold is the corpus's unigram baseline loss (+ value) */
  int within_epochs;   /* met at an epoch <= this (0: any epoch of the run); a function
                        * experiment's goals: at a step <= this ("within_steps") */
  /* COMPARE */
  char *a, *b;         /* variant ids */
  double margin;       /* >= and >: a op b + margin; <= and <: a op b - margin (negative:
                        * a may fall short of b by that much) */
} BpLessonGoal;

/* The goal in English, e.g. "val_accuracy >= 0.87 within 3 epochs (run right)" (free it). */
char *bp_lesson_goal_describe (const BpLessonGoal *goal);
const char *bp_lesson_op_to_string (BpLessonOp op);

/* One run of a lesson's experiment. A lesson without variants has one, with id NULL. */
typedef struct {
  char *id;
  BpLessonText title;   /* empty strings for the implicit variant */
  char *model;          /* preset, or NULL when spec_json is set */
  char *spec_file;      /* the spec file's path (absolute), NULL for a preset */
  char *spec_json;      /* its text */
  char *config_json;    /* the variant's config object (NULL: none), read over the lesson's */
} BpLessonVariant;

typedef struct {
  char *dataset;          /* "fashion-mnist" or a text corpus name; NULL for a function */
  /* a function experiment (the autograd lesson): gradient descent on a two-variable function
   * (bp-descent.h) instead of a model's training; its runs differ in their optimizer only */
  char *function;         /* NULL for a model's experiment */
  double start[2];        /* NaN: the function's default start */
  int steps;
  char *config_json;      /* the config object, NULL when none */
  char *test_budget_json; /* read over the config for the quick (test) run, NULL when none */
  GPtrArray *variants;    /* BpLessonVariant, at least one */
} BpLessonExperiment;

typedef enum {
  BP_LESSON_ACTION_NONE,
  BP_LESSON_ACTION_LOAD_MODEL,     /* load a variant's model (default the first) into the builder */
  BP_LESSON_ACTION_SET_CONFIG,     /* set the Train page's settings: a variant's, or config */
  BP_LESSON_ACTION_START_TRAINING, /* start a variant's run (default the first) */
  BP_LESSON_ACTION_OPEN_VIEW,      /* show a place or panel (view) */
  BP_LESSON_ACTION_COMPARE_RUNS,   /* open Experiments comparing this lesson's runs */
} BpLessonActionKind;

typedef struct {
  BpLessonActionKind kind;
  char *variant;     /* LOAD_MODEL, SET_CONFIG, START_TRAINING: NULL or a variant id */
  char *config_json; /* SET_CONFIG: settings to set (NULL when variant is given) */
  char *view;        /* OPEN_VIEW: one of bp_lesson_view_names () */
} BpLessonAction;

const char *bp_lesson_action_kind_to_string (BpLessonActionKind kind);
/* The views an open-view action may name (NULL-terminated). */
const char *const *bp_lesson_view_names (void);

typedef struct {
  BpLessonText text;     /* a short instruction */
  BpLessonAction action; /* kind NONE: a step without a button */
} BpLessonStep;

typedef struct {
  char *id;             /* "learning-rate"; runs are tagged "lesson:<id>" */
  char *number;         /* "1.3": module number . lesson number (from the folder names) */
  int module_number, lesson_number;
  char *module_id;
  char *dir;            /* the lesson's folder (absolute) */
  BpLessonText title;
  BpLessonExperiment *experiment; /* NULL: not runnable yet (see not_runnable) */
  BpLessonText not_runnable;      /* why there is no experiment (empty strings when there is) */
  GPtrArray *steps;      /* BpLessonStep */
  GPtrArray *goals;      /* BpLessonGoal: the full run's */
  GPtrArray *test_goals; /* BpLessonGoal: the quick run's (the goals when none are given) */
} BpLesson;

/* The lesson's text (Markdown, its en.md or zh_TW.md as for bp_lesson_text_get); free it. */
char *bp_lesson_read_text (const BpLesson *lesson, const char *lang, GError **error);
/* The tag of the runs started from a lesson: "lesson:<id>" (free it). */
char *bp_lesson_run_tag (const BpLesson *lesson);
const BpLessonVariant *bp_lesson_find_variant (const BpLesson *lesson, const char *id);

/* The training config of a run of the lesson: the trainer's defaults, the variant's model,
 * the dataset, the lesson's config, the variant's config and (quick) the test budget, each
 * read over the one before (an object that names an optimizer or a schedule starts from that
 * kind's defaults; a cosine schedule without t_max anneals over the epochs after warm-up).
 * Strings point into the lesson or are interned. variant NULL: the first. */
gboolean bp_lesson_make_config (const BpLesson *lesson, const char *variant, gboolean quick,
                                BpTrainConfig *config, GError **error);
/* The same with one more layer read after the variant's config (a set-config action's
 * "config"), before the test budget. */
gboolean bp_lesson_make_config_with (const BpLesson *lesson, const char *variant,
                                     const char *extra_json, gboolean quick,
                                     BpTrainConfig *config, GError **error);

/* A function experiment's run: the function, start and steps of the experiment, the optimizer
 * of its config layers (as bp_lesson_make_config reads them; only "optimizer" is allowed
 * there). */
gboolean bp_lesson_make_descent_config (const BpLesson *lesson, const char *variant,
                                        BpDescentConfig *config, GError **error);

/* Whether a goal metric is one of a function experiment's (value, distance, grad_error). */
gboolean bp_lesson_metric_is_descent (const char *metric);

typedef struct {
  char *id;      /* "foundations" */
  int number;    /* from the folder name "01-foundations" */
  BpLessonText title;
  char *dir;
  GPtrArray *lessons; /* BpLesson, in order */
} BpLessonModule;

/* Every module and lesson under a folder. */
typedef struct {
  char *dir;
  GPtrArray *modules;  /* BpLessonModule, in order (modules with no loadable lesson are kept) */
  GPtrArray *warnings; /* char *: one per skipped file or folder, naming it and why */
} BpLessonSet;

/* The lessons folder: $BP_LESSONS_DIR when set, else the installed one when it exists, else
 * the source tree's lessons/ (runs from the build folder). */
const char *bp_lessons_default_dir (void);

/* Loads every lesson under dir (NULL: bp_lessons_default_dir ()). A malformed module or lesson
 * (bad JSON, unknown field, action, preset or dataset, a missing en.md or zh_TW.md, a bad
 * goal, a duplicate id) is skipped with a warning naming its file; the others load. NULL and
 * BP_LESSON_ERROR_NOT_FOUND only when dir cannot be read. */
BpLessonSet *bp_lesson_set_load (const char *dir, GError **error);
void bp_lesson_set_free (BpLessonSet *set);
/* A lesson by id or number ("learning-rate" or "1.3"); NULL when none. */
const BpLesson *bp_lesson_set_find (const BpLessonSet *set, const char *id);
/* All lessons in course order (owned by the set; free the array only). */
GPtrArray *bp_lesson_set_list (const BpLessonSet *set);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (BpLessonSet, bp_lesson_set_free)

/* ---- goals against a lesson's runs ---- */

typedef enum {
  BP_LESSON_GOAL_PENDING, /* not reached yet, still possible */
  BP_LESSON_GOAL_MET,
  BP_LESSON_GOAL_MISSED,  /* its run(s) ended, or its epochs passed, without reaching it */
} BpLessonGoalState;

typedef struct {
  BpLessonGoalState state;
  int epoch;       /* METRIC, MET: the first epoch that reached it */
  double value;    /* METRIC: the figure that met it, else the best reached (NaN: none yet);
                    * COMPARE: run a's latest figure */
  double other;    /* COMPARE: run b's latest figure; METRIC: NaN */
  double target;   /* the threshold (baseline + offset; COMPARE: b's figure +- margin) */
} BpLessonGoalResult;

typedef struct BpLessonEval BpLessonEval;

/* The goals a run is checked against: quick, the test goals (the goals when it has none). */
GPtrArray *bp_lesson_get_goals (const BpLesson *lesson, gboolean quick);

/* An evaluator of the lesson's goals (quick: its test goals); the lesson must outlive it. */
BpLessonEval *bp_lesson_eval_new (const BpLesson *lesson, gboolean quick);
void bp_lesson_eval_free (BpLessonEval *eval);
guint bp_lesson_eval_get_n_goals (BpLessonEval *eval);
const BpLessonGoal *bp_lesson_eval_get_goal (BpLessonEval *eval, guint k);
const BpLessonGoalResult *bp_lesson_eval_get_result (BpLessonEval *eval, guint k);
/* Feeds an event of the run of a variant (NULL: the only run). EPOCH events update the
 * train_ and val_ metrics, DONE the test_ ones. Returns TRUE when a goal changed state. */
gboolean bp_lesson_eval_event (BpLessonEval *eval, const char *variant, const BpTrainEvent *event);
/* Feeds a point of a function experiment's run (bp_descent_run): every point updates the
 * metrics; the last one (step == steps, or diverged) decides the run's goals still pending.
 * Returns TRUE when a goal changed state. */
gboolean bp_lesson_eval_descent (BpLessonEval *eval, const char *variant,
                                 const BpDescentPoint *point);
/* The run of a variant has ended (finished, stopped or failed): its goals still pending are
 * missed, and compare goals whose runs have both ended are decided. TRUE when a goal changed. */
gboolean bp_lesson_eval_run_ended (BpLessonEval *eval, const char *variant);
gboolean bp_lesson_eval_all_met (BpLessonEval *eval);
guint bp_lesson_eval_count (BpLessonEval *eval, BpLessonGoalState state);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (BpLessonEval, bp_lesson_eval_free)

G_END_DECLS
