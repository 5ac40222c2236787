/* bp-experiments-page.h: the Experiments place: every run of the experiment store, one run's
 * curves and details, and several runs compared. */
#pragma once

#include <adwaita.h>

#include "bp-plot.h"

G_BEGIN_DECLS

#define BP_TYPE_EXPERIMENTS_PAGE (bp_experiments_page_get_type ())
G_DECLARE_FINAL_TYPE (BpExperimentsPage, bp_experiments_page, BP, EXPERIMENTS_PAGE, GtkWidget)

GtkWidget *bp_experiments_page_new (void);

/* Reads the store now (the page also polls it every second). FALSE when the database cannot
 * be opened or read: the page then shows why. */
gboolean bp_experiments_page_refresh (BpExperimentsPage *self);
/* The error shown instead of the runs, or NULL. */
const char *bp_experiments_page_get_error (BpExperimentsPage *self);

/* Run ids of the rows shown (after search, filter and sort), in order. */
GArray *bp_experiments_page_get_shown_runs (BpExperimentsPage *self);
void bp_experiments_page_set_search (BpExperimentsPage *self, const char *text);
void bp_experiments_page_set_selected (BpExperimentsPage *self, gint64 run_id, gboolean selected);

/* "list", "run", "compare" or "error". */
const char *bp_experiments_page_get_view (BpExperimentsPage *self);
/* Shows one run (its curves, config, checkpoints, note and tags). */
gboolean bp_experiments_page_open_run (BpExperimentsPage *self, gint64 run_id);
BpPlot *bp_experiments_page_get_run_plot (BpExperimentsPage *self, gboolean accuracy);

/* The compare view of the selected runs (action experiments.compare does it too). */
gboolean bp_experiments_page_compare (BpExperimentsPage *self);
BpPlot *bp_experiments_page_get_compare_plot (BpExperimentsPage *self);
/* The config keys whose values differ between the compared runs (NULL-terminated, free it). */
char **bp_experiments_page_get_differing_params (BpExperimentsPage *self);
gboolean bp_experiments_page_export_comparison (BpExperimentsPage *self, const char *png_path,
                                                const char *csv_path, GError **error);

/* Hides the run and shows a toast with Undo (action experiments.undo); the run is deleted from
 * the store when the toast goes away without Undo. */
void bp_experiments_page_delete_run (BpExperimentsPage *self, gint64 run_id);
/* Continues a stored run on the Train page (which the window then shows) from its newest
 * checkpoint, to epochs in all (action experiments.continue asks for them). */
gboolean bp_experiments_page_continue_run (BpExperimentsPage *self, gint64 run_id, int epochs,
                                           GError **error);
/* The epochs that dialog proposes: the run's own when it has not trained them all, else five
 * more than it has (0: the run cannot be read). */
int bp_experiments_page_continue_epochs (BpExperimentsPage *self, gint64 run_id);
/* The delete toast on screen, or NULL. */
AdwToast *bp_experiments_page_get_toast (BpExperimentsPage *self);

G_END_DECLS
