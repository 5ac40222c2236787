/* bp-lessons-page.c: BpLessonsPage lists the guided lessons by module with their progress, shows
 * one (its Markdown text rendered with cmark into text tags, its steps' buttons, its goals) and
 * runs its experiment on the Train page, ticking the goals off as the run's epochs arrive. */
#include "config.h"

#include "bp-lessons-page.h"

#include <cmark.h>
#include <glib/gi18n.h>
#include <math.h>
#include <string.h>

#include "bp-build-page.h"
#include "bp-descent.h"
#include "bp-experiments-page.h"
#include "bp-plane-draw.h"
#include "bp-plane-view.h"
#include "bp-spec.h"
#include "bp-train-page.h"
#include "bp-window.h"

struct _BpLessonsPage {
  GtkWidget parent_instance;

  GtkWidget *paned;
  GtkListBox *list;
  GtkLabel *title_label, *note_label, *status_label;
  GtkTextView *text_view;
  GtkBox *steps_box, *goals_box;
  GtkWidget *steps_heading, *goals_heading;

  BpLessonSet *set;
  GPtrArray *lessons; /* BpLesson, course order (owned by set) */
  const BpLesson *shown;
  char *lang;
  GSettings *settings;
  GHashTable *progress; /* id -> "started" or "done" */

  /* the lesson whose run is (or was last) training, and its goals */
  const BpLesson *active;
  BpLessonEval *eval;
  BpTrainRun *run;
  char *run_variant;
  char *next_variant; /* chosen by a set action for the next start */
  char *next_config;  /* a set action's own settings (JSON), read over the next start's */
  double baseline;    /* the run's corpus's unigram loss (NaN: image data or unknown) */

  /* the lesson in progress beside Build and Train: its steps and goals */
  GtkWidget *panel;
  GtkLabel *panel_title, *panel_status;
  GtkBox *panel_steps, *panel_goals;
  const BpLesson *panel_lesson; /* the lesson whose step was last used (NULL: none) */
  gboolean panel_closed;        /* hidden by its close button until the next step */
  char *place;                  /* the window's place */

  /* a function experiment's runs: the surface with the paths, drawn a few points a frame */
  BpPlaneView *plane;
  GArray *descent;        /* BpDescentPoint: the run being drawn */
  guint descent_shown;    /* points of it drawn (and fed to the goals) so far */
  int descent_path;
  guint descent_source;
};

G_DEFINE_FINAL_TYPE (BpLessonsPage, bp_lessons_page, GTK_TYPE_WIDGET)

static gboolean
quick (void)
{
  return g_strcmp0 (g_getenv ("BP_LESSON_QUICK"), "1") == 0;
}

/* ---- progress ---- */

static void
load_progress (BpLessonsPage *self)
{
  g_auto (GStrv) items = g_settings_get_strv (self->settings, "lesson-progress");
  for (guint i = 0; items[i]; i++) {
    char *colon = strrchr (items[i], ':');
    if (colon && (g_str_equal (colon + 1, "started") || g_str_equal (colon + 1, "done")))
      g_hash_table_insert (self->progress, g_strndup (items[i], colon - items[i]),
                           g_strdup (colon + 1));
  }
}

static void update_list (BpLessonsPage *self);

static void
set_progress (BpLessonsPage *self, const BpLesson *lesson, const char *state)
{
  const char *now = g_hash_table_lookup (self->progress, lesson->id);
  if (g_strcmp0 (now, state) == 0 || (g_strcmp0 (now, "done") == 0))
    return;
  g_hash_table_insert (self->progress, g_strdup (lesson->id), g_strdup (state));
  g_autoptr (GStrvBuilder) builder = g_strv_builder_new ();
  GHashTableIter iter;
  gpointer key, value;
  g_hash_table_iter_init (&iter, self->progress);
  while (g_hash_table_iter_next (&iter, &key, &value)) {
    g_autofree char *item = g_strdup_printf ("%s:%s", (char *) key, (char *) value);
    g_strv_builder_add (builder, item);
  }
  g_auto (GStrv) items = g_strv_builder_end (builder);
  g_settings_set_strv (self->settings, "lesson-progress", (const char *const *) items);
  update_list (self);
}

const char *
bp_lessons_page_get_progress (BpLessonsPage *self, const char *id)
{
  g_return_val_if_fail (BP_IS_LESSONS_PAGE (self), NULL);
  const char *state = g_hash_table_lookup (self->progress, id);
  return state ? state : "not-started";
}

/* ---- Markdown ---- */

typedef struct {
  GtkTextBuffer *buffer;
  GPtrArray *tags; /* GtkTextTag stack */
} Render;

static void
insert (Render *r, const char *text, GtkTextTag *extra)
{
  GtkTextIter end;
  gtk_text_buffer_get_end_iter (r->buffer, &end);
  int start = gtk_text_iter_get_offset (&end);
  gtk_text_buffer_insert (r->buffer, &end, text, -1);
  GtkTextIter from;
  gtk_text_buffer_get_iter_at_offset (r->buffer, &from, start);
  gtk_text_buffer_get_end_iter (r->buffer, &end);
  for (guint i = 0; i < r->tags->len; i++)
    gtk_text_buffer_apply_tag (r->buffer, r->tags->pdata[i], &from, &end);
  if (extra)
    gtk_text_buffer_apply_tag (r->buffer, extra, &from, &end);
}

/* Ends the text with at least n newlines (none at the start). */
static void
ensure_newlines (Render *r, int n)
{
  GtkTextIter end;
  gtk_text_buffer_get_end_iter (r->buffer, &end);
  if (gtk_text_iter_is_start (&end))
    return;
  int have = 0;
  GtkTextIter it = end;
  while (have < n && gtk_text_iter_backward_char (&it) && gtk_text_iter_get_char (&it) == '\n')
    have++;
  for (; have < n; have++)
    insert (r, "\n", NULL);
}

static GtkTextTag *
tag (Render *r, const char *name)
{
  return gtk_text_tag_table_lookup (gtk_text_buffer_get_tag_table (r->buffer), name);
}

static gboolean
looks_like_table (cmark_node *paragraph)
{
  cmark_node *first = cmark_node_first_child (paragraph);
  const char *text = first && cmark_node_get_type (first) == CMARK_NODE_TEXT
                       ? cmark_node_get_literal (first)
                       : NULL;
  return text && text[0] == '|';
}

/* The paragraph's text as written (cells keep their words, not their emphasis). */
static void
plain_text (cmark_node *node, GString *out)
{
  for (cmark_node *c = cmark_node_first_child (node); c; c = cmark_node_next (c)) {
    switch (cmark_node_get_type (c)) {
    case CMARK_NODE_TEXT:
    case CMARK_NODE_CODE:
    case CMARK_NODE_HTML_INLINE:
      g_string_append (out, cmark_node_get_literal (c));
      break;
    case CMARK_NODE_SOFTBREAK:
    case CMARK_NODE_LINEBREAK:
      g_string_append_c (out, '\n');
      break;
    default:
      plain_text (c, out);
      break;
    }
  }
}

/* Columns a string takes in a monospace font (East Asian wide characters take two). */
static int
text_columns (const char *s)
{
  int n = 0;
  for (; *s; s = g_utf8_next_char (s))
    n += g_unichar_iswide (g_utf8_get_char (s)) ? 2 : 1;
  return n;
}

static gboolean
is_rule_cell (const char *cell)
{
  if (!*cell)
    return FALSE;
  for (; *cell; cell++)
    if (*cell != '-' && *cell != ':')
      return FALSE;
  return TRUE;
}

/* A GitHub-style table (| a | b | lines, a |---| rule under the header) drawn as aligned
 * monospace columns, the header in bold; cmark itself knows no tables. */
static void
render_table (Render *r, cmark_node *paragraph)
{
  g_autoptr (GString) text = g_string_new (NULL);
  plain_text (paragraph, text);
  g_auto (GStrv) lines = g_strsplit (text->str, "\n", -1);
  g_autoptr (GPtrArray) rows = g_ptr_array_new_with_free_func ((GDestroyNotify) g_strfreev);
  int widths[32] = {0}, n_cols = 0;
  gboolean header = FALSE;
  for (int i = 0; lines[i]; i++) {
    char *line = g_strstrip (lines[i]);
    if (!*line)
      continue;
    if (*line == '|')
      line++;
    gsize len = strlen (line);
    if (len && line[len - 1] == '|')
      line[len - 1] = '\0';
    char **cells = g_strsplit (line, "|", 32);
    gboolean rule = TRUE;
    for (int c = 0; cells[c]; c++)
      rule = is_rule_cell (g_strstrip (cells[c])) && rule;
    if (rule) {
      header = rows->len == 1;
      g_strfreev (cells);
      continue;
    }
    for (int c = 0; cells[c] && c < 32; c++) {
      widths[c] = MAX (widths[c], text_columns (cells[c]));
      n_cols = MAX (n_cols, c + 1);
    }
    g_ptr_array_add (rows, cells);
  }
  for (guint i = 0; i < rows->len; i++) {
    char **cells = rows->pdata[i];
    g_autoptr (GString) line = g_string_new (NULL);
    for (int c = 0; c < n_cols; c++) {
      const char *cell = c < (int) g_strv_length (cells) ? cells[c] : "";
      g_string_append (line, cell);
      if (c + 1 < n_cols)
        for (int pad = text_columns (cell); pad < widths[c] + 3; pad++)
          g_string_append_c (line, ' ');
    }
    if (i > 0)
      insert (r, "\n", NULL);
    insert (r, line->str, header && i == 0 ? tag (r, "strong") : NULL);
  }
}

static void
render_markdown (GtkTextBuffer *buffer, const char *markdown)
{
  gtk_text_buffer_set_text (buffer, "", 0);
  cmark_node *doc = cmark_parse_document (markdown, strlen (markdown), CMARK_OPT_DEFAULT);
  cmark_iter *iter = cmark_iter_new (doc);
  Render r = {buffer, g_ptr_array_new ()};
  cmark_event_type ev;
  while ((ev = cmark_iter_next (iter)) != CMARK_EVENT_DONE) {
    cmark_node *node = cmark_iter_get_node (iter);
    gboolean enter = ev == CMARK_EVENT_ENTER;
    cmark_node *parent = cmark_node_parent (node);
    switch (cmark_node_get_type (node)) {
    case CMARK_NODE_HEADING:
      if (enter) {
        ensure_newlines (&r, 2);
        int level = CLAMP (cmark_node_get_heading_level (node), 1, 3);
        g_autofree char *name = g_strdup_printf ("h%d", level);
        g_ptr_array_add (r.tags, tag (&r, name));
      } else {
        g_ptr_array_remove_index (r.tags, r.tags->len - 1);
      }
      break;
    case CMARK_NODE_PARAGRAPH:
      if (enter) {
        if (!parent || cmark_node_get_type (parent) != CMARK_NODE_ITEM)
          ensure_newlines (&r, 2);
        if (looks_like_table (node)) {
          g_ptr_array_add (r.tags, tag (&r, "table"));
          render_table (&r, node);
          g_ptr_array_remove_index (r.tags, r.tags->len - 1);
          cmark_iter_reset (iter, node, CMARK_EVENT_EXIT); /* its text is drawn */
        }
      }
      break;
    case CMARK_NODE_BLOCK_QUOTE:
    case CMARK_NODE_EMPH:
    case CMARK_NODE_STRONG:
    case CMARK_NODE_LINK: {
      cmark_node_type type = cmark_node_get_type (node);
      const char *name = type == CMARK_NODE_BLOCK_QUOTE ? "quote"
                         : type == CMARK_NODE_EMPH      ? "emph"
                         : type == CMARK_NODE_STRONG    ? "strong"
                                                        : "link";
      if (enter)
        g_ptr_array_add (r.tags, tag (&r, name));
      else
        g_ptr_array_remove_index (r.tags, r.tags->len - 1);
      break;
    }
    case CMARK_NODE_LIST:
      if (enter)
        ensure_newlines (&r, parent && cmark_node_get_type (parent) == CMARK_NODE_ITEM ? 1 : 2);
      break;
    case CMARK_NODE_ITEM:
      if (enter) {
        ensure_newlines (&r, 1);
        int depth = 0;
        for (cmark_node *p = parent; p; p = cmark_node_parent (p))
          depth += cmark_node_get_type (p) == CMARK_NODE_LIST;
        GString *bullet = g_string_new (NULL);
        for (int d = 1; d < depth; d++)
          g_string_append (bullet, "    ");
        if (cmark_node_get_list_type (parent) == CMARK_ORDERED_LIST) {
          int k = cmark_node_get_list_start (parent);
          for (cmark_node *s = cmark_node_previous (node); s; s = cmark_node_previous (s))
            k++;
          g_string_append_printf (bullet, "%d. ", k);
        } else {
          g_string_append (bullet, "•  ");
        }
        insert (&r, bullet->str, NULL);
        g_string_free (bullet, TRUE);
      }
      break;
    case CMARK_NODE_CODE_BLOCK: {
      ensure_newlines (&r, 2);
      g_autofree char *code = g_strdup (cmark_node_get_literal (node));
      g_strchomp (code);
      insert (&r, code, tag (&r, "codeblock"));
      break;
    }
    case CMARK_NODE_THEMATIC_BREAK:
      ensure_newlines (&r, 2);
      insert (&r, "————", NULL);
      break;
    case CMARK_NODE_TEXT:
      insert (&r, cmark_node_get_literal (node), NULL);
      break;
    case CMARK_NODE_CODE:
      insert (&r, cmark_node_get_literal (node), tag (&r, "code"));
      break;
    case CMARK_NODE_SOFTBREAK: {
      /* a line break inside a Chinese sentence joins its lines without a space */
      GtkTextIter last;
      gtk_text_buffer_get_end_iter (buffer, &last);
      gboolean wide = gtk_text_iter_backward_char (&last) &&
                      g_unichar_iswide (gtk_text_iter_get_char (&last));
      insert (&r, wide ? "" : " ", NULL);
      break;
    }
    case CMARK_NODE_LINEBREAK:
      insert (&r, "\n", NULL);
      break;
    case CMARK_NODE_HTML_INLINE:
    case CMARK_NODE_HTML_BLOCK:
      insert (&r, cmark_node_get_literal (node), tag (&r, "code"));
      break;
    default:
      break;
    }
  }
  g_ptr_array_free (r.tags, TRUE);
  cmark_iter_free (iter);
  cmark_node_free (doc);
}

static void
create_tags (GtkTextBuffer *buffer)
{
  gtk_text_buffer_create_tag (buffer, "h1", "weight", PANGO_WEIGHT_BOLD, "scale", 1.6,
                              "pixels-below-lines", 6, NULL);
  gtk_text_buffer_create_tag (buffer, "h2", "weight", PANGO_WEIGHT_BOLD, "scale", 1.3,
                              "pixels-below-lines", 4, NULL);
  gtk_text_buffer_create_tag (buffer, "h3", "weight", PANGO_WEIGHT_BOLD, "scale", 1.1, NULL);
  gtk_text_buffer_create_tag (buffer, "emph", "style", PANGO_STYLE_ITALIC, NULL);
  gtk_text_buffer_create_tag (buffer, "strong", "weight", PANGO_WEIGHT_BOLD, NULL);
  gtk_text_buffer_create_tag (buffer, "code", "family", "monospace", NULL);
  gtk_text_buffer_create_tag (buffer, "codeblock", "family", "monospace", "left-margin", 24,
                              NULL);
  gtk_text_buffer_create_tag (buffer, "table", "family", "monospace", NULL);
  gtk_text_buffer_create_tag (buffer, "quote", "style", PANGO_STYLE_ITALIC, "left-margin", 24,
                              NULL);
  gtk_text_buffer_create_tag (buffer, "link", "underline", PANGO_UNDERLINE_SINGLE, NULL);
}

/* ---- the list ---- */

static const char *
progress_text (const char *state)
{
  if (g_strcmp0 (state, "done") == 0)
    return _("Goals met");
  if (g_strcmp0 (state, "started") == 0)
    return _("Started");
  return "";
}

static GtkWidget *
lesson_row (BpLessonsPage *self, const BpLesson *lesson)
{
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 8);
  g_autofree char *text = g_strdup_printf ("%s  %s", lesson->number,
                                           bp_lesson_text_get (&lesson->title, self->lang));
  GtkWidget *label = gtk_label_new (text);
  gtk_label_set_xalign (GTK_LABEL (label), 0.0);
  gtk_label_set_ellipsize (GTK_LABEL (label), PANGO_ELLIPSIZE_END);
  gtk_widget_set_hexpand (label, TRUE);
  gtk_box_append (GTK_BOX (box), label);
  GtkWidget *mark = gtk_label_new (progress_text (g_hash_table_lookup (self->progress,
                                                                       lesson->id)));
  gtk_widget_add_css_class (mark, "dim-label");
  gtk_widget_add_css_class (mark, "caption");
  gtk_box_append (GTK_BOX (box), mark);
  GtkWidget *row = gtk_list_box_row_new ();
  gtk_widget_set_margin_start (box, 12);
  gtk_widget_set_margin_end (box, 8);
  gtk_widget_set_margin_top (box, 6);
  gtk_widget_set_margin_bottom (box, 6);
  gtk_list_box_row_set_child (GTK_LIST_BOX_ROW (row), box);
  g_object_set_data (G_OBJECT (row), "bp-lesson", (gpointer) lesson);
  g_object_set_data (G_OBJECT (row), "bp-mark", mark);
  return row;
}

static void
fill_list (BpLessonsPage *self)
{
  for (guint m = 0; self->set && m < self->set->modules->len; m++) {
    BpLessonModule *module = self->set->modules->pdata[m];
    if (module->lessons->len == 0)
      continue;
    g_autofree char *text = g_strdup_printf ("%d  %s", module->number,
                                             bp_lesson_text_get (&module->title, self->lang));
    GtkWidget *heading = gtk_label_new (text);
    gtk_label_set_xalign (GTK_LABEL (heading), 0.0);
    gtk_widget_add_css_class (heading, "heading");
    gtk_widget_set_margin_start (heading, 8);
    gtk_widget_set_margin_top (heading, 12);
    gtk_widget_set_margin_bottom (heading, 4);
    GtkWidget *row = gtk_list_box_row_new ();
    gtk_list_box_row_set_child (GTK_LIST_BOX_ROW (row), heading);
    gtk_list_box_row_set_activatable (GTK_LIST_BOX_ROW (row), FALSE);
    gtk_list_box_row_set_selectable (GTK_LIST_BOX_ROW (row), FALSE);
    gtk_list_box_append (self->list, row);
    for (guint l = 0; l < module->lessons->len; l++)
      gtk_list_box_append (self->list, lesson_row (self, module->lessons->pdata[l]));
  }
}

static void
update_list (BpLessonsPage *self)
{
  for (GtkWidget *row = gtk_widget_get_first_child (GTK_WIDGET (self->list)); row;
       row = gtk_widget_get_next_sibling (row)) {
    const BpLesson *lesson = g_object_get_data (G_OBJECT (row), "bp-lesson");
    if (lesson)
      gtk_label_set_text (g_object_get_data (G_OBJECT (row), "bp-mark"),
                          progress_text (g_hash_table_lookup (self->progress, lesson->id)));
  }
}

/* ---- the lesson ---- */

static void
clear_box (GtkBox *box)
{
  GtkWidget *child;
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (box))))
    gtk_box_remove (box, child);
}

static BpLessonEval *
shown_eval (BpLessonsPage *self)
{
  return self->shown && self->shown == self->active ? self->eval : NULL;
}

static const struct {
  const char *name, *title;
} metric_titles[] = {
  {"train_loss", N_("training loss")},
  {"train_accuracy", N_("training accuracy")},
  {"val_loss", N_("validation loss")},
  {"val_accuracy", N_("validation accuracy")},
  {"test_loss", N_("test loss")},
  {"test_accuracy", N_("test accuracy")},
  {"val_class_accuracy", N_("validation accuracy")},
  {"val_r2", N_("validation R²")},
  {"test_r2", N_("test R²")},
  {"value", N_("f at the point")},
  {"distance", N_("distance to the minimum")},
  {"grad_error", N_("autograd's difference from the formula")},
};

static const char *
variant_title (BpLessonsPage *self, const BpLesson *lesson, const char *id)
{
  const BpLessonVariant *v = bp_lesson_find_variant (lesson, id);
  const char *title = v ? bp_lesson_text_get (&v->title, self->lang) : NULL;
  return title && *title ? title : id;
}

/* A goal in the interface's language, e.g. "validation accuracy ≥ 0.87 within 3 epochs". */
static char *
describe_goal (BpLessonsPage *self, const BpLesson *lesson, const BpLessonGoal *g)
{
  const char *metric = g->metric;
  for (guint i = 0; i < G_N_ELEMENTS (metric_titles); i++)
    if (g_strcmp0 (g->metric, metric_titles[i].name) == 0)
      metric = _(metric_titles[i].title);
  GString *s = g_string_new (NULL);
  if (g->class_name)
    g_string_printf (s, _("%s of class %s"), metric, g->class_name);
  else
    g_string_assign (s, metric);
  const char *op = bp_lesson_op_to_string (g->op);
  if (g->kind == BP_LESSON_GOAL_COMPARE) {
    g_string_append_printf (s, ": %s %s %s", variant_title (self, lesson, g->a), op,
                            variant_title (self, lesson, g->b));
    /* >= and >: a op b + margin; <= and <: a op b - margin */
    double offset = g->op == BP_LESSON_OP_GE || g->op == BP_LESSON_OP_GT ? g->margin
                                                                          : -g->margin;
    if (offset != 0)
      g_string_append_printf (s, " %s %g", offset > 0 ? "+" : "−", fabs (offset));
    return g_string_free (s, FALSE);
  }
  if (g->baseline && g->value != 0)
    g_string_append_printf (s, " %s %s %+g", op, _("the unigram baseline"), g->value);
  else if (g->baseline)
    g_string_append_printf (s, " %s %s", op, _("the unigram baseline"));
  else
    g_string_append_printf (s, " %s %g", op, g->value);
  if (g->within_epochs > 0) {
    g_string_append_c (s, ' ');
    if (bp_lesson_metric_is_descent (g->metric))
      g_string_append_printf (s, g_dngettext (NULL, "within %d step", "within %d steps",
                                              g->within_epochs),
                              g->within_epochs);
    else
      g_string_append_printf (s, g_dngettext (NULL, "within %d epoch", "within %d epochs",
                                              g->within_epochs),
                              g->within_epochs);
  }
  if (g->variant) {
    g_string_append_c (s, ' ');
    g_string_append_printf (s, _("(run %s)"), variant_title (self, lesson, g->variant));
  }
  return g_string_free (s, FALSE);
}

/* Fills box with the lesson's goals and their states in eval (NULL: none reached yet). */
static void
fill_goals (BpLessonsPage *self, GtkBox *box, const BpLesson *lesson, BpLessonEval *eval)
{
  clear_box (box);
  GPtrArray *goals = bp_lesson_get_goals (lesson, quick ());
  for (guint k = 0; k < goals->len; k++) {
    const BpLessonGoalResult *res = eval ? bp_lesson_eval_get_result (eval, k) : NULL;
    BpLessonGoalState state = res ? res->state : BP_LESSON_GOAL_PENDING;
    GtkWidget *row = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 8);
    GtkWidget *icon = gtk_image_new_from_icon_name (state == BP_LESSON_GOAL_MET
                                                      ? "emblem-ok-symbolic"
                                                    : state == BP_LESSON_GOAL_MISSED
                                                      ? "window-close-symbolic"
                                                      : "content-loading-symbolic");
    gtk_widget_set_valign (icon, GTK_ALIGN_START);
    gtk_box_append (GTK_BOX (row), icon);
    g_autofree char *describe = describe_goal (self, lesson, goals->pdata[k]);
    GtkWidget *label = gtk_label_new (describe);
    gtk_label_set_xalign (GTK_LABEL (label), 0.0);
    gtk_label_set_wrap (GTK_LABEL (label), TRUE);
    gtk_widget_set_hexpand (label, TRUE);
    gtk_box_append (GTK_BOX (row), label);
    const char *state_text = state == BP_LESSON_GOAL_MET      ? _("Met")
                             : state == BP_LESSON_GOAL_MISSED ? _("Not met")
                                                              : _("Not yet");
    const BpLessonGoal *goal = goals->pdata[k];
    g_autofree char *text =
      res && goal->kind == BP_LESSON_GOAL_COMPARE && isfinite (res->value) &&
          isfinite (res->other)
        ? g_strdup_printf ("%s (%.4g, %.4g)", state_text, res->value, res->other)
      : res && isfinite (res->value) ? g_strdup_printf ("%s (%.4g)", state_text, res->value)
                                     : g_strdup (state_text);
    GtkWidget *state_label = gtk_label_new (text);
    gtk_widget_set_valign (state_label, GTK_ALIGN_START);
    gtk_widget_add_css_class (state_label, state == BP_LESSON_GOAL_MET      ? "success"
                                           : state == BP_LESSON_GOAL_MISSED ? "error"
                                                                            : "dim-label");
    gtk_box_append (GTK_BOX (row), state_label);
    gtk_box_append (box, row);
  }
}

static void
update_goals (BpLessonsPage *self)
{
  const BpLesson *lesson = self->shown;
  if (lesson) {
    fill_goals (self, self->goals_box, lesson, shown_eval (self));
    GPtrArray *goals = bp_lesson_get_goals (lesson, quick ());
    gtk_widget_set_visible (self->goals_heading, goals->len > 0);
  }
  if (self->panel_lesson)
    fill_goals (self, self->panel_goals, self->panel_lesson,
                self->panel_lesson == self->active ? self->eval : NULL);
  if (self->eval && self->active && bp_lesson_eval_all_met (self->eval))
    set_progress (self, self->active, "done");
}

static gboolean activate_step (BpLessonsPage *self, const BpLesson *lesson, guint k,
                               GError **error);

static void
step_clicked_cb (GtkButton *button, BpLessonsPage *self)
{
  guint k = GPOINTER_TO_UINT (g_object_get_data (G_OBJECT (button), "bp-step"));
  const BpLesson *lesson = g_object_get_data (G_OBJECT (button), "bp-lesson");
  g_autoptr (GError) error = NULL;
  if (!activate_step (self, lesson, k, &error)) {
    gtk_label_set_text (self->status_label, error->message);
    gtk_label_set_text (self->panel_status, error->message);
  }
}

static const char *
action_label (BpLessonActionKind kind)
{
  switch (kind) {
  case BP_LESSON_ACTION_LOAD_MODEL:
    return _("Load the model");
  case BP_LESSON_ACTION_SET_CONFIG:
    return _("Use these settings");
  case BP_LESSON_ACTION_START_TRAINING:
    return _("Start training");
  case BP_LESSON_ACTION_OPEN_VIEW:
    return _("Show");
  case BP_LESSON_ACTION_COMPARE_RUNS:
    return _("Compare the runs");
  default:
    return NULL;
  }
}

static void show_function (BpLessonsPage *self, const BpLesson *lesson);

/* Fills box with the lesson's steps and their buttons; compact (the panel): each button under
 * its text. */
static void
fill_steps (BpLessonsPage *self, GtkBox *box, const BpLesson *lesson, gboolean compact)
{
  clear_box (box);
  for (guint k = 0; k < lesson->steps->len; k++) {
    const BpLessonStep *step = lesson->steps->pdata[k];
    GtkWidget *row = gtk_box_new (compact ? GTK_ORIENTATION_VERTICAL : GTK_ORIENTATION_HORIZONTAL,
                                  compact ? 4 : 12);
    g_autofree char *text = g_strdup_printf ("%u. %s", k + 1,
                                             bp_lesson_text_get (&step->text, self->lang));
    GtkWidget *label = gtk_label_new (text);
    gtk_label_set_xalign (GTK_LABEL (label), 0.0);
    gtk_label_set_wrap (GTK_LABEL (label), TRUE);
    gtk_widget_set_hexpand (label, TRUE);
    gtk_box_append (GTK_BOX (row), label);
    const char *button_text = action_label (step->action.kind);
    gboolean needs_run = step->action.kind == BP_LESSON_ACTION_LOAD_MODEL ||
                         step->action.kind == BP_LESSON_ACTION_SET_CONFIG ||
                         step->action.kind == BP_LESSON_ACTION_START_TRAINING ||
                         step->action.kind == BP_LESSON_ACTION_COMPARE_RUNS;
    if (button_text && (lesson->experiment || !needs_run)) {
      GtkWidget *button = gtk_button_new_with_label (button_text);
      gtk_widget_set_valign (button, GTK_ALIGN_CENTER);
      if (compact)
        gtk_widget_set_halign (button, GTK_ALIGN_END);
      if (step->action.kind == BP_LESSON_ACTION_START_TRAINING)
        gtk_widget_add_css_class (button, "suggested-action");
      g_object_set_data (G_OBJECT (button), "bp-step", GUINT_TO_POINTER (k));
      g_object_set_data (G_OBJECT (button), "bp-lesson", (gpointer) lesson);
      g_signal_connect (button, "clicked", G_CALLBACK (step_clicked_cb), self);
      gtk_box_append (GTK_BOX (row), button);
    }
    gtk_box_append (box, row);
  }
}

static void
show_lesson (BpLessonsPage *self, const BpLesson *lesson)
{
  if (self->shown != lesson) {
    /* a set action's choice belongs to its lesson */
    g_clear_pointer (&self->next_variant, g_free);
    g_clear_pointer (&self->next_config, g_free);
  }
  self->shown = lesson;
  /* the text's own heading names the lesson */
  g_autofree char *title = g_strdup_printf (_("Lesson %s"), lesson->number);
  gtk_label_set_text (self->title_label, title);
  gtk_label_set_text (self->status_label, "");
  g_autoptr (GError) error = NULL;
  g_autofree char *markdown = bp_lesson_read_text (lesson, self->lang, &error);
  GtkTextBuffer *buffer = gtk_text_view_get_buffer (self->text_view);
  if (markdown)
    render_markdown (buffer, markdown);
  else
    gtk_text_buffer_set_text (buffer, error->message, -1);

  if (!lesson->experiment) {
    g_autofree char *note = g_strdup_printf (_("Not runnable yet: %s"),
                                             bp_lesson_text_get (&lesson->not_runnable,
                                                                 self->lang));
    gtk_label_set_text (self->note_label, note);
  } else if (lesson->experiment->variants->len > 1) {
    gtk_label_set_text (self->note_label,
                        _("This lesson compares several runs: start them one after another with "
                          "their buttons; the goals are ticked as each run reports."));
  } else {
    gtk_label_set_text (self->note_label, "");
  }
  gtk_widget_set_visible (GTK_WIDGET (self->note_label),
                          *gtk_label_get_text (self->note_label) != '\0');

  fill_steps (self, self->steps_box, lesson, FALSE);
  gtk_widget_set_visible (self->steps_heading, lesson->steps->len > 0);
  show_function (self, lesson);
  update_goals (self);
}

/* ---- function experiments: gradient descent drawn on the function's contours ---- */

#define FIELD_SIZE 160

static void
show_function (BpLessonsPage *self, const BpLesson *lesson)
{
  const BpDescentFunction *f = lesson->experiment && lesson->experiment->function
                                 ? bp_descent_function_find (lesson->experiment->function)
                                 : NULL;
  gtk_widget_set_visible (GTK_WIDGET (self->plane), f != NULL);
  if (!f)
    return;
  float *values = g_new (float, FIELD_SIZE * FIELD_SIZE);
  bp_descent_sample (f, FIELD_SIZE, values);
  bp_plane_view_set_region (self->plane, f->x0, f->x1, f->y0, f->y1, TRUE);
  bp_plane_view_set_field (self->plane, FIELD_SIZE, values, TRUE);
  bp_plane_view_set_marks (self->plane, f->n_minima, &f->minima[0][0]);
  bp_plane_view_set_title (self->plane, f->formula);
  bp_plane_view_clear_paths (self->plane);
  g_free (values);
}

/* Draws (and feeds to the goals) the path's points up to `upto`; at the end, the run ends. */
static void
descent_advance (BpLessonsPage *self, guint upto)
{
  GArray *a = self->descent;
  for (; self->descent_shown < MIN (upto, a->len); self->descent_shown++) {
    const BpDescentPoint *p = &g_array_index (a, BpDescentPoint, self->descent_shown);
    if (!p->diverged)
      bp_plane_view_path_append (self->plane, self->descent_path, p->x, p->y);
    if (self->eval)
      bp_lesson_eval_descent (self->eval, self->run_variant, p);
  }
  if (self->descent_shown >= a->len) {
    const BpDescentPoint *last = a->len ? &g_array_index (a, BpDescentPoint, a->len - 1) : NULL;
    if (last && last->diverged)
      gtk_label_set_text (self->status_label,
                          _("The path left the finite numbers: the run stopped there."));
    g_clear_handle_id (&self->descent_source, g_source_remove);
    g_clear_pointer (&self->descent, g_array_unref);
    if (self->eval)
      bp_lesson_eval_run_ended (self->eval, self->run_variant);
  }
  update_goals (self);
}

static gboolean
descent_tick (gpointer data)
{
  BpLessonsPage *self = data;
  /* about two seconds for a whole path */
  guint per_tick = MAX (1, self->descent->len / 60);
  guint upto = self->descent_shown + per_tick;
  if (upto >= self->descent->len)
    self->descent_source = 0; /* this source ends with the run: G_SOURCE_REMOVE below */
  descent_advance (self, upto);
  return self->descent_source != 0 ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

static gboolean
collect_point (const BpDescentPoint *p, gpointer data)
{
  g_array_append_val ((GArray *) data, *p);
  return TRUE;
}

static void disconnect_run (BpLessonsPage *self);

static gboolean
start_descent (BpLessonsPage *self, const BpLesson *lesson, const char *variant, GError **error)
{
  BpDescentConfig c;
  if (!bp_lesson_make_descent_config (lesson, variant, &c, error))
    return FALSE;
  /* a run still being drawn is finished at once */
  if (self->descent)
    descent_advance (self, G_MAXUINT);
  GArray *points = g_array_new (FALSE, FALSE, sizeof (BpDescentPoint));
  if (!bp_descent_run (&c, collect_point, points, error)) {
    g_array_unref (points);
    return FALSE;
  }
  if (self->active != lesson) {
    /* another lesson's training run goes on on the Train page, no longer followed here */
    disconnect_run (self);
    g_clear_pointer (&self->eval, bp_lesson_eval_free);
    self->eval = bp_lesson_eval_new (lesson, quick ());
    self->active = lesson;
  }
  const BpLessonVariant *v = bp_lesson_find_variant (lesson, variant);
  g_free (self->run_variant);
  self->run_variant = g_strdup (v ? v->id : NULL);
  /* each run in its own colour; the first run, or one run again, starts a fresh drawing */
  guint index = 0;
  for (guint k = 0; k < lesson->experiment->variants->len; k++)
    if (lesson->experiment->variants->pdata[k] == v)
      index = k;
  const char *title = v ? bp_lesson_text_get (&v->title, self->lang) : NULL;
  if (index == 0 || bp_plane_view_get_n_paths (self->plane) > (int) index)
    bp_plane_view_clear_paths (self->plane);
  double r, g, b;
  bp_plane_path_color ((int) index, &r, &g, &b);
  GdkRGBA color = {(float) r, (float) g, (float) b, 1.0f};
  self->descent_path = bp_plane_view_add_path (self->plane, title && *title ? title : NULL,
                                               &color);
  self->descent = points;
  self->descent_shown = 0;
  gtk_label_set_text (self->status_label, "");
  self->descent_source = g_timeout_add (33, descent_tick, self);
  update_goals (self);
  return TRUE;
}

static void
row_selected_cb (BpLessonsPage *self, GtkListBoxRow *row)
{
  const BpLesson *lesson = row ? g_object_get_data (G_OBJECT (row), "bp-lesson") : NULL;
  if (lesson && lesson != self->shown)
    show_lesson (self, lesson);
}

/* ---- actions ---- */

static BpWindow *
window (BpLessonsPage *self)
{
  GtkWidget *w = gtk_widget_get_ancestor (GTK_WIDGET (self), BP_TYPE_WINDOW);
  return w ? BP_WINDOW (w) : NULL;
}

static void
disconnect_run (BpLessonsPage *self)
{
  if (!self->run)
    return;
  g_signal_handlers_disconnect_by_data (self->run, self);
  g_clear_object (&self->run);
}

static void
run_epoch_cb (BpTrainRun *run, BpTrainEpoch *e, BpLessonsPage *self)
{
  BpTrainEvent event = {0};
  event.kind = BP_TRAIN_EVENT_EPOCH;
  event.epoch = e->epoch;
  event.train_loss = e->train_loss;
  event.train_accuracy = e->train_accuracy;
  event.val_loss = e->val_loss;
  event.val_accuracy = e->val_accuracy;
  event.task = e->task;
  event.val_r2 = e->val_r2;
  event.test_loss = event.test_accuracy = event.test_r2 = NAN;
  event.lr = e->lr;
  if (isfinite (e->baseline_loss))
    self->baseline = e->baseline_loss;
  event.baseline_loss = self->baseline;
  event.n_classes = e->n_classes;
  event.confusion = (const int64_t *) e->confusion;
  event.class_names = (const char *const *) e->class_names;
  if (self->eval && bp_lesson_eval_event (self->eval, self->run_variant, &event))
    update_goals (self);
}

static void
run_finished_cb (BpTrainRun *run, BpLessonsPage *self)
{
  const BpTrainProgress *p = bp_train_run_get_progress (run);
  if (self->eval && bp_train_run_get_state (run) == BP_TRAIN_STATE_FINISHED) {
    BpTrainEvent event = {0};
    event.kind = BP_TRAIN_EVENT_DONE;
    event.epoch = event.epochs = p->epochs;
    event.train_loss = event.train_accuracy = event.val_loss = event.val_accuracy = NAN;
    event.test_loss = p->test_loss;
    event.test_accuracy = p->test_accuracy;
    event.test_r2 = p->test_r2;
    event.val_r2 = NAN;
    event.baseline_loss = self->baseline;
    bp_lesson_eval_event (self->eval, self->run_variant, &event);
  }
  if (self->eval)
    bp_lesson_eval_run_ended (self->eval, self->run_variant);
  update_goals (self);
  disconnect_run (self);
}

static gboolean
start_training (BpLessonsPage *self, const BpLesson *lesson, const char *variant, GError **error)
{
  BpWindow *win = window (self);
  BpTrainPage *train = win ? BP_TRAIN_PAGE (bp_window_get_page (win, "train")) : NULL;
  if (!train) {
    g_set_error (error, BP_LESSON_ERROR, BP_LESSON_ERROR_NOT_FOUND, _("There is no Train page."));
    return FALSE;
  }
  BpTrainConfig config;
  if (!bp_lesson_make_config_with (lesson, variant, self->next_config, quick (), &config, error))
    return FALSE;
  /* goals against the unigram baseline get it from the run's epochs (the trainer's corpus) */
  self->baseline = NAN;
  g_autofree char *tag = bp_lesson_run_tag (lesson);
  const char *tags[] = {tag, quick () ? "quick" : NULL, NULL};
  /* a run that has ended without its ::finished handled yet is counted first, and a function's
   * path still being drawn is finished */
  if (self->run && !bp_train_run_is_active (self->run))
    run_finished_cb (self->run, self);
  if (self->descent)
    descent_advance (self, G_MAXUINT);
  if (!bp_train_page_start_config (train, &config, tags, error))
    return FALSE;
  if (self->active != lesson) {
    g_clear_pointer (&self->eval, bp_lesson_eval_free);
    self->eval = bp_lesson_eval_new (lesson, quick ());
    self->active = lesson;
  }
  disconnect_run (self);
  self->run = g_object_ref (bp_train_page_get_run (train));
  g_free (self->run_variant);
  const BpLessonVariant *v = bp_lesson_find_variant (lesson, variant);
  self->run_variant = g_strdup (v ? v->id : NULL);
  g_signal_connect (self->run, "epoch", G_CALLBACK (run_epoch_cb), self);
  g_signal_connect (self->run, "finished", G_CALLBACK (run_finished_cb), self);
  bp_window_set_place (win, "train");
  update_goals (self);
  return TRUE;
}

/* ---- the panel beside Build and Train ---- */

static void
update_panel (BpLessonsPage *self)
{
  const BpLesson *lesson = self->panel_lesson;
  gboolean beside = g_strcmp0 (self->place, "build") == 0 || g_strcmp0 (self->place, "train") == 0;
  gtk_widget_set_visible (self->panel, lesson && beside && !self->panel_closed);
}

/* The lesson of the step just used goes into the panel. */
static void
set_panel_lesson (BpLessonsPage *self, const BpLesson *lesson)
{
  if (self->panel_lesson != lesson) {
    self->panel_lesson = lesson;
    g_autofree char *title = g_strdup_printf (_("Lesson %s: %s"), lesson->number,
                                              bp_lesson_text_get (&lesson->title, self->lang));
    gtk_label_set_text (self->panel_title, title);
    fill_steps (self, self->panel_steps, lesson, TRUE);
  }
  gtk_label_set_text (self->panel_status, "");
  self->panel_closed = FALSE;
  update_goals (self);
  update_panel (self);
}

static void
panel_close_cb (BpLessonsPage *self)
{
  self->panel_closed = TRUE;
  update_panel (self);
}

static void
panel_open_lesson_cb (BpLessonsPage *self)
{
  BpWindow *win = window (self);
  if (self->panel_lesson && win) {
    bp_lessons_page_open (self, self->panel_lesson->id);
    bp_window_set_place (win, "lessons");
  }
}

static GtkWidget *
create_panel (BpLessonsPage *self)
{
  GtkWidget *panel = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 0);
  gtk_box_append (GTK_BOX (panel), gtk_separator_new (GTK_ORIENTATION_VERTICAL));
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 8);
  gtk_widget_set_size_request (box, 300, -1);
  gtk_widget_set_margin_start (box, 12);
  gtk_widget_set_margin_end (box, 12);
  gtk_widget_set_margin_top (box, 12);
  gtk_widget_set_margin_bottom (box, 12);
  GtkWidget *header = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
  self->panel_title = GTK_LABEL (gtk_label_new (""));
  gtk_label_set_xalign (self->panel_title, 0.0);
  gtk_label_set_wrap (self->panel_title, TRUE);
  gtk_widget_set_hexpand (GTK_WIDGET (self->panel_title), TRUE);
  gtk_widget_add_css_class (GTK_WIDGET (self->panel_title), "heading");
  gtk_box_append (GTK_BOX (header), GTK_WIDGET (self->panel_title));
  GtkWidget *close = gtk_button_new_from_icon_name ("window-close-symbolic");
  gtk_widget_add_css_class (close, "flat");
  gtk_widget_set_valign (close, GTK_ALIGN_START);
  gtk_widget_set_tooltip_text (close, _("Hide the lesson"));
  g_signal_connect_swapped (close, "clicked", G_CALLBACK (panel_close_cb), self);
  gtk_box_append (GTK_BOX (header), close);
  gtk_box_append (GTK_BOX (box), header);

  GtkWidget *inner = gtk_box_new (GTK_ORIENTATION_VERTICAL, 8);
  GtkWidget *steps = gtk_label_new (_("Steps"));
  gtk_label_set_xalign (GTK_LABEL (steps), 0.0);
  gtk_widget_add_css_class (steps, "title-4");
  gtk_box_append (GTK_BOX (inner), steps);
  self->panel_steps = GTK_BOX (gtk_box_new (GTK_ORIENTATION_VERTICAL, 10));
  gtk_box_append (GTK_BOX (inner), GTK_WIDGET (self->panel_steps));
  GtkWidget *goals = gtk_label_new (_("Goals"));
  gtk_label_set_xalign (GTK_LABEL (goals), 0.0);
  gtk_widget_add_css_class (goals, "title-4");
  gtk_widget_set_margin_top (goals, 8);
  gtk_box_append (GTK_BOX (inner), goals);
  self->panel_goals = GTK_BOX (gtk_box_new (GTK_ORIENTATION_VERTICAL, 6));
  gtk_box_append (GTK_BOX (inner), GTK_WIDGET (self->panel_goals));
  self->panel_status = GTK_LABEL (gtk_label_new (""));
  gtk_label_set_xalign (self->panel_status, 0.0);
  gtk_label_set_wrap (self->panel_status, TRUE);
  gtk_widget_add_css_class (GTK_WIDGET (self->panel_status), "dim-label");
  gtk_box_append (GTK_BOX (inner), GTK_WIDGET (self->panel_status));
  GtkWidget *scroll = gtk_scrolled_window_new ();
  gtk_scrolled_window_set_policy (GTK_SCROLLED_WINDOW (scroll), GTK_POLICY_NEVER,
                                  GTK_POLICY_AUTOMATIC);
  gtk_scrolled_window_set_child (GTK_SCROLLED_WINDOW (scroll), inner);
  gtk_widget_set_vexpand (scroll, TRUE);
  gtk_box_append (GTK_BOX (box), scroll);
  GtkWidget *read = gtk_button_new_with_label (_("Read the lesson"));
  g_signal_connect_swapped (read, "clicked", G_CALLBACK (panel_open_lesson_cb), self);
  gtk_box_append (GTK_BOX (box), read);
  gtk_box_append (GTK_BOX (panel), box);
  gtk_widget_set_visible (panel, FALSE);
  return g_object_ref_sink (panel);
}

GtkWidget *
bp_lessons_page_get_panel (BpLessonsPage *self)
{
  g_return_val_if_fail (BP_IS_LESSONS_PAGE (self), NULL);
  return self->panel;
}

void
bp_lessons_page_place_changed (BpLessonsPage *self, const char *place)
{
  g_return_if_fail (BP_IS_LESSONS_PAGE (self));
  g_free (self->place);
  self->place = g_strdup (place);
  update_panel (self);
}

gboolean
bp_lessons_page_activate_step (BpLessonsPage *self, guint k, GError **error)
{
  g_return_val_if_fail (BP_IS_LESSONS_PAGE (self), FALSE);
  return activate_step (self, self->shown, k, error);
}

static gboolean
activate_step (BpLessonsPage *self, const BpLesson *lesson, guint k, GError **error)
{
  g_return_val_if_fail (lesson && k < lesson->steps->len, FALSE);
  const BpLessonAction *action = &((BpLessonStep *) lesson->steps->pdata[k])->action;
  BpWindow *win = window (self);
  g_return_val_if_fail (win != NULL, FALSE);
  switch (action->kind) {
  case BP_LESSON_ACTION_LOAD_MODEL: {
    const BpLessonVariant *v = bp_lesson_find_variant (lesson, action->variant);
    const BpPreset *preset = v && v->model ? bp_preset_find (v->model) : NULL;
    const char *json = v ? (v->spec_json ? v->spec_json : preset ? preset->json : NULL) : NULL;
    if (!json) {
      g_set_error (error, BP_LESSON_ERROR, BP_LESSON_ERROR_NOT_RUNNABLE,
                   _("This lesson has no model to load."));
      return FALSE;
    }
    BpBuildPage *build = BP_BUILD_PAGE (bp_window_get_page (win, "build"));
    if (!bp_build_page_set_json (build, json, error))
      return FALSE;
    bp_window_set_place (win, "build");
    break;
  }
  case BP_LESSON_ACTION_SET_CONFIG: {
    if (!lesson->experiment) {
      g_set_error (error, BP_LESSON_ERROR, BP_LESSON_ERROR_NOT_RUNNABLE,
                   _("This lesson has no run to set up."));
      return FALSE;
    }
    g_free (self->next_variant);
    self->next_variant = g_strdup (action->variant);
    if (lesson->experiment->function) {
      gtk_label_set_text (self->status_label,
                          _("The lesson's settings are used when you start its run from here."));
      break;
    }
    /* the run's settings on the Train page, where Start trains them */
    BpTrainConfig config;
    if (!bp_lesson_make_config_with (lesson, action->variant, action->config_json, quick (),
                                     &config, error))
      return FALSE;
    BpTrainPage *train = BP_TRAIN_PAGE (bp_window_get_page (win, "train"));
    if (!bp_train_page_set_config (train, &config, error))
      return FALSE;
    g_free (self->next_config);
    self->next_config = g_strdup (action->config_json);
    gtk_label_set_text (self->status_label,
                        _("The Train page now has the lesson's settings: start the run here, or "
                          "change them there first."));
    break;
  }
  case BP_LESSON_ACTION_START_TRAINING: {
    const char *variant = action->variant ? action->variant : self->next_variant;
    if (lesson->experiment && lesson->experiment->function
          ? !start_descent (self, lesson, variant, error)
          : !start_training (self, lesson, variant, error))
      return FALSE;
    break;
  }
  case BP_LESSON_ACTION_OPEN_VIEW:
    bp_window_set_place (win, g_strcmp0 (action->view, "builder") == 0       ? "build"
                              : g_strcmp0 (action->view, "experiments") == 0 ? "experiments"
                                                                             : "train");
    break;
  case BP_LESSON_ACTION_COMPARE_RUNS: {
    /* the Experiments list, searched for the lesson's runs */
    g_autofree char *tag = bp_lesson_run_tag (lesson);
    bp_experiments_page_set_search (BP_EXPERIMENTS_PAGE (bp_window_get_page (win,
                                                                             "experiments")),
                                    tag);
    bp_window_set_place (win, "experiments");
    break;
  }
  default:
    return TRUE;
  }
  set_progress (self, lesson, "started");
  set_panel_lesson (self, lesson);
  return TRUE;
}

/* ---- the widget ---- */

static GtkWidget *
heading (const char *text)
{
  GtkWidget *label = gtk_label_new (text);
  gtk_label_set_xalign (GTK_LABEL (label), 0.0);
  gtk_widget_add_css_class (label, "title-4");
  gtk_widget_set_margin_top (label, 12);
  return label;
}

static void
bp_lessons_page_dispose (GObject *object)
{
  BpLessonsPage *self = BP_LESSONS_PAGE (object);
  disconnect_run (self);
  g_clear_handle_id (&self->descent_source, g_source_remove);
  g_clear_pointer (&self->descent, g_array_unref);
  g_clear_pointer (&self->paned, gtk_widget_unparent);
  g_clear_pointer (&self->eval, bp_lesson_eval_free);
  g_clear_pointer (&self->lessons, g_ptr_array_unref);
  g_clear_pointer (&self->set, bp_lesson_set_free);
  g_clear_pointer (&self->progress, g_hash_table_unref);
  g_clear_object (&self->settings);
  g_clear_pointer (&self->lang, g_free);
  g_clear_pointer (&self->run_variant, g_free);
  g_clear_pointer (&self->next_variant, g_free);
  g_clear_pointer (&self->next_config, g_free);
  g_clear_pointer (&self->place, g_free);
  g_clear_object (&self->panel);
  self->shown = self->active = self->panel_lesson = NULL;
  G_OBJECT_CLASS (bp_lessons_page_parent_class)->dispose (object);
}

static void
bp_lessons_page_class_init (BpLessonsPageClass *klass)
{
  G_OBJECT_CLASS (klass)->dispose = bp_lessons_page_dispose;
  gtk_widget_class_set_layout_manager_type (GTK_WIDGET_CLASS (klass), GTK_TYPE_BIN_LAYOUT);
}

static void
bp_lessons_page_init (BpLessonsPage *self)
{
  self->settings = g_settings_new ("org.backproplab.Lab");
  self->baseline = NAN;
  self->progress = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  load_progress (self);
  /* the interface's language: its translation of this string names it */
  self->lang = g_strdup (C_("language of the lessons (en or zh_TW)", "en"));
  g_autoptr (GError) error = NULL;
  self->set = bp_lesson_set_load (NULL, &error);
  for (guint i = 0; self->set && i < self->set->warnings->len; i++)
    g_message ("%s", (char *) self->set->warnings->pdata[i]);
  self->lessons = self->set ? bp_lesson_set_list (self->set) : g_ptr_array_new ();

  self->paned = gtk_paned_new (GTK_ORIENTATION_HORIZONTAL);
  gtk_widget_set_parent (self->paned, GTK_WIDGET (self));
  gtk_paned_set_position (GTK_PANED (self->paned), 300);
  gtk_paned_set_shrink_start_child (GTK_PANED (self->paned), FALSE);

  self->list = GTK_LIST_BOX (gtk_list_box_new ());
  gtk_widget_add_css_class (GTK_WIDGET (self->list), "navigation-sidebar");
  g_signal_connect_swapped (self->list, "row-selected", G_CALLBACK (row_selected_cb), self);
  GtkWidget *list_scroll = gtk_scrolled_window_new ();
  gtk_scrolled_window_set_policy (GTK_SCROLLED_WINDOW (list_scroll), GTK_POLICY_NEVER,
                                  GTK_POLICY_AUTOMATIC);
  gtk_scrolled_window_set_child (GTK_SCROLLED_WINDOW (list_scroll), GTK_WIDGET (self->list));
  gtk_widget_set_size_request (list_scroll, 240, -1);
  gtk_paned_set_start_child (GTK_PANED (self->paned), list_scroll);

  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 8);
  gtk_widget_set_margin_start (box, 24);
  gtk_widget_set_margin_end (box, 24);
  gtk_widget_set_margin_top (box, 18);
  gtk_widget_set_margin_bottom (box, 24);
  self->title_label = GTK_LABEL (gtk_label_new (self->set ? _("Choose a lesson")
                                                          : error->message));
  gtk_label_set_xalign (self->title_label, 0.0);
  gtk_label_set_wrap (self->title_label, TRUE);
  gtk_widget_add_css_class (GTK_WIDGET (self->title_label), "dim-label");
  gtk_box_append (GTK_BOX (box), GTK_WIDGET (self->title_label));
  self->note_label = GTK_LABEL (gtk_label_new (""));
  gtk_label_set_xalign (self->note_label, 0.0);
  gtk_label_set_wrap (self->note_label, TRUE);
  gtk_widget_add_css_class (GTK_WIDGET (self->note_label), "warning");
  gtk_widget_set_visible (GTK_WIDGET (self->note_label), FALSE);
  gtk_box_append (GTK_BOX (box), GTK_WIDGET (self->note_label));


  self->steps_heading = heading (_("Steps"));
  gtk_widget_set_visible (self->steps_heading, FALSE);
  gtk_box_append (GTK_BOX (box), self->steps_heading);
  self->steps_box = GTK_BOX (gtk_box_new (GTK_ORIENTATION_VERTICAL, 6));
  gtk_box_append (GTK_BOX (box), GTK_WIDGET (self->steps_box));
  self->goals_heading = heading (_("Goals"));
  gtk_widget_set_visible (self->goals_heading, FALSE);
  gtk_box_append (GTK_BOX (box), self->goals_heading);
  self->goals_box = GTK_BOX (gtk_box_new (GTK_ORIENTATION_VERTICAL, 6));
  gtk_box_append (GTK_BOX (box), GTK_WIDGET (self->goals_box));
  self->status_label = GTK_LABEL (gtk_label_new (""));
  gtk_label_set_xalign (self->status_label, 0.0);
  gtk_label_set_wrap (self->status_label, TRUE);
  gtk_widget_add_css_class (GTK_WIDGET (self->status_label), "dim-label");
  gtk_box_append (GTK_BOX (box), GTK_WIDGET (self->status_label));
  self->plane = BP_PLANE_VIEW (bp_plane_view_new ());
  gtk_drawing_area_set_content_height (GTK_DRAWING_AREA (self->plane), 360);
  gtk_widget_set_visible (GTK_WIDGET (self->plane), FALSE);
  gtk_box_append (GTK_BOX (box), GTK_WIDGET (self->plane));

  /* the steps and goals first, at hand; then the lesson's text */
  self->text_view = GTK_TEXT_VIEW (gtk_text_view_new ());
  gtk_text_view_set_editable (self->text_view, FALSE);
  gtk_text_view_set_cursor_visible (self->text_view, FALSE);
  gtk_text_view_set_wrap_mode (self->text_view, GTK_WRAP_WORD_CHAR);
  gtk_text_view_set_pixels_below_lines (self->text_view, 2);
  gtk_widget_set_margin_top (GTK_WIDGET (self->text_view), 12);
  gtk_text_view_set_left_margin (self->text_view, 18);
  gtk_text_view_set_right_margin (self->text_view, 18);
  gtk_text_view_set_top_margin (self->text_view, 12);
  gtk_text_view_set_bottom_margin (self->text_view, 18);
  gtk_widget_add_css_class (GTK_WIDGET (self->text_view), "inline");
  create_tags (gtk_text_view_get_buffer (self->text_view));
  gtk_box_append (GTK_BOX (box), GTK_WIDGET (self->text_view));

  GtkWidget *clamp = adw_clamp_new ();
  adw_clamp_set_maximum_size (ADW_CLAMP (clamp), 860);
  adw_clamp_set_child (ADW_CLAMP (clamp), box);
  GtkWidget *scroll = gtk_scrolled_window_new ();
  gtk_scrolled_window_set_policy (GTK_SCROLLED_WINDOW (scroll), GTK_POLICY_NEVER,
                                  GTK_POLICY_AUTOMATIC);
  gtk_scrolled_window_set_child (GTK_SCROLLED_WINDOW (scroll), clamp);
  gtk_widget_set_hexpand (scroll, TRUE);
  gtk_paned_set_end_child (GTK_PANED (self->paned), scroll);

  self->panel = create_panel (self);
  fill_list (self);
  /* the first lesson whose goals are not met yet */
  for (guint i = 0; i < self->lessons->len; i++) {
    const BpLesson *lesson = self->lessons->pdata[i];
    if (g_strcmp0 (g_hash_table_lookup (self->progress, lesson->id), "done") != 0) {
      bp_lessons_page_open (self, lesson->id);
      break;
    }
  }
}

GtkWidget *
bp_lessons_page_new (void)
{
  return g_object_new (BP_TYPE_LESSONS_PAGE, NULL);
}

const BpLessonSet *
bp_lessons_page_get_set (BpLessonsPage *self)
{
  g_return_val_if_fail (BP_IS_LESSONS_PAGE (self), NULL);
  return self->set;
}

const char *
bp_lessons_page_get_language (BpLessonsPage *self)
{
  g_return_val_if_fail (BP_IS_LESSONS_PAGE (self), NULL);
  return self->lang;
}

gboolean
bp_lessons_page_open (BpLessonsPage *self, const char *id)
{
  g_return_val_if_fail (BP_IS_LESSONS_PAGE (self), FALSE);
  const BpLesson *lesson = self->set ? bp_lesson_set_find (self->set, id) : NULL;
  if (!lesson)
    return FALSE;
  for (GtkWidget *row = gtk_widget_get_first_child (GTK_WIDGET (self->list)); row;
       row = gtk_widget_get_next_sibling (row))
    if (g_object_get_data (G_OBJECT (row), "bp-lesson") == lesson)
      gtk_list_box_select_row (self->list, GTK_LIST_BOX_ROW (row));
  if (self->shown != lesson)
    show_lesson (self, lesson);
  return TRUE;
}

const BpLesson *
bp_lessons_page_get_shown (BpLessonsPage *self)
{
  g_return_val_if_fail (BP_IS_LESSONS_PAGE (self), NULL);
  return self->shown;
}

GtkTextView *
bp_lessons_page_get_text_view (BpLessonsPage *self)
{
  g_return_val_if_fail (BP_IS_LESSONS_PAGE (self), NULL);
  return self->text_view;
}

const char *
bp_lessons_page_get_note (BpLessonsPage *self)
{
  g_return_val_if_fail (BP_IS_LESSONS_PAGE (self), NULL);
  return gtk_label_get_text (self->note_label);
}

BpLessonGoalState
bp_lessons_page_get_goal_state (BpLessonsPage *self, guint k)
{
  g_return_val_if_fail (BP_IS_LESSONS_PAGE (self), BP_LESSON_GOAL_PENDING);
  BpLessonEval *eval = shown_eval (self);
  if (!eval || k >= bp_lesson_eval_get_n_goals (eval))
    return BP_LESSON_GOAL_PENDING;
  return bp_lesson_eval_get_result (eval, k)->state;
}

BpPlaneView *
bp_lessons_page_get_plane (BpLessonsPage *self)
{
  g_return_val_if_fail (BP_IS_LESSONS_PAGE (self), NULL);
  return self->plane;
}

gboolean
bp_lessons_page_is_drawing (BpLessonsPage *self)
{
  g_return_val_if_fail (BP_IS_LESSONS_PAGE (self), FALSE);
  return self->descent != NULL;
}

BpTrainRun *
bp_lessons_page_get_run (BpLessonsPage *self)
{
  g_return_val_if_fail (BP_IS_LESSONS_PAGE (self), NULL);
  return self->run;
}
