/* bp-train-page.h: the Train place: run settings, Start/Pause/Resume/Stop and the live dashboard. */
#pragma once

#include <gtk/gtk.h>

#include "bp-train-run.h"

G_BEGIN_DECLS

#define BP_TYPE_TRAIN_PAGE (bp_train_page_get_type ())
G_DECLARE_FINAL_TYPE (BpTrainPage, bp_train_page, BP, TRAIN_PAGE, GtkWidget)

GtkWidget *bp_train_page_new (void);
/* The current (or last) run, or NULL before the first start. */
BpTrainRun *bp_train_page_get_run (BpTrainPage *self);
/* Adds (or replaces) the "Custom model from the builder" choice with a model spec (JSON) and
 * selects it. */
void bp_train_page_set_custom_model (BpTrainPage *self, const char *json, const char *name);
/* Continues stored run run_id (the lab's store) from its newest checkpoint, to epochs in all
 * (0: the epochs it was last given), with its own settings, on the dashboard. FALSE with a
 * message when a run is training here or the run's settings cannot be read; a checkpoint that
 * cannot be resumed fails the run (shown on the page). */
gboolean bp_train_page_continue_run (BpTrainPage *self, gint64 run_id, int epochs,
                                     GError **error);
/* The configuration the page's settings describe now. */
BpTrainConfig bp_train_page_get_config (BpTrainPage *self);
/* Shows config's settings on the page (model, data set, optimizer and its learning rate and
 * weight decay, schedule, epochs, batch size, seed, limits or context): what Start then
 * trains. Settings the page has no row for (momentum, label smoothing, ...) are not shown and
 * not kept. FALSE with the reason for a config the trainer refuses. */
gboolean bp_train_page_set_config (BpTrainPage *self, const BpTrainConfig *config,
                                   GError **error);
/* Starts a run of config (a lesson's) on the dashboard, its stored run tagged with tags (may be
 * NULL); FALSE with a message when a run is training or the config is refused. */
gboolean bp_train_page_start_config (BpTrainPage *self, const BpTrainConfig *config,
                                     const char *const *tags, GError **error);

G_END_DECLS
