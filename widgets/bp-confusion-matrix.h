/* bp-confusion-matrix.h: a confusion-matrix heatmap with class labels and counts. */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define BP_TYPE_CONFUSION_MATRIX (bp_confusion_matrix_get_type ())
G_DECLARE_FINAL_TYPE (BpConfusionMatrix, bp_confusion_matrix, BP, CONFUSION_MATRIX, GtkWidget)

GtkWidget *bp_confusion_matrix_new (void);

/* counts: n x n, row-major, rows = true class, columns = predicted class (copied).
 * class_names: n names, or NULL for "0", "1", ... */
void bp_confusion_matrix_set (BpConfusionMatrix *self, int n, const gint64 *counts,
                              const char *const *class_names);
void bp_confusion_matrix_clear (BpConfusionMatrix *self);

int bp_confusion_matrix_get_n_classes (BpConfusionMatrix *self);
gint64 bp_confusion_matrix_get_count (BpConfusionMatrix *self, int truth, int predicted);
/* Share of the diagonal, or NaN when empty. */
double bp_confusion_matrix_get_accuracy (BpConfusionMatrix *self);

G_END_DECLS
