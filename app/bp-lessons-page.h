/* bp-lessons-page.h: the Lessons place: the guided lessons (lessons/), one shown with its text,
 * its steps' buttons (load the model, start the run) and its goals ticked live. */
#pragma once

#include <gtk/gtk.h>

#include "bp-lesson.h"
#include "bp-plane-view.h"
#include "bp-train-run.h"

G_BEGIN_DECLS

#define BP_TYPE_LESSONS_PAGE (bp_lessons_page_get_type ())
G_DECLARE_FINAL_TYPE (BpLessonsPage, bp_lessons_page, BP, LESSONS_PAGE, GtkWidget)

GtkWidget *bp_lessons_page_new (void);

/* The lessons listed (NULL when the folder could not be read). */
const BpLessonSet *bp_lessons_page_get_set (BpLessonsPage *self);
/* The language the lessons are shown in ("en" or "zh_TW": the interface's). */
const char *bp_lessons_page_get_language (BpLessonsPage *self);
/* Shows a lesson by id or number; FALSE when there is none. */
gboolean bp_lessons_page_open (BpLessonsPage *self, const char *id);
const BpLesson *bp_lessons_page_get_shown (BpLessonsPage *self);
GtkTextView *bp_lessons_page_get_text_view (BpLessonsPage *self);
/* The note above the steps: why the lesson cannot run yet, or how its runs go ("" for none). */
const char *bp_lessons_page_get_note (BpLessonsPage *self);
/* Does what step k of the shown lesson's button does; FALSE with a message when it cannot. */
gboolean bp_lessons_page_activate_step (BpLessonsPage *self, guint k, GError **error);
/* The state of goal k of the shown lesson in its latest run (PENDING before any). */
BpLessonGoalState bp_lessons_page_get_goal_state (BpLessonsPage *self, guint k);
/* The panel with the lesson in progress (the last one whose step was used: its steps' buttons
 * and its goals), for the window to place beside its pages; shown on Build and Train until its
 * close button hides it (the next step shows it again). */
GtkWidget *bp_lessons_page_get_panel (BpLessonsPage *self);
/* The window's place changed (the panel's visibility follows). */
void bp_lessons_page_place_changed (BpLessonsPage *self, const char *place);
/* A function experiment's surface with its runs' paths (hidden for other lessons). */
BpPlaneView *bp_lessons_page_get_plane (BpLessonsPage *self);
/* Whether a function experiment's path is still being drawn (its goals fed point by point). */
gboolean bp_lessons_page_is_drawing (BpLessonsPage *self);
/* The run started from the lessons (NULL before one). */
BpTrainRun *bp_lessons_page_get_run (BpLessonsPage *self);
/* "not-started", "started" or "done" (its goals met). */
const char *bp_lessons_page_get_progress (BpLessonsPage *self, const char *id);

G_END_DECLS
