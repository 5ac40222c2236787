/* bp-tabular.h: the loaders behind bp_dataset_load for scikit-learn's data files (digits, iris,
 * wine, breast cancer, diabetes) and the generated 2-D sets (two spirals, moons). Callers use
 * bp_dataset_load_full (bp-dataset.h); these are the data layer's own. */
#pragma once

#include <glib.h>

#include "bp-dataset.h"

G_BEGIN_DECLS

/* The facts of the tabular and synthetic sets (NULL-terminated by a NULL name), in the order
 * bp_dataset_names lists them after the image sets of bp-dataset.c. */
extern const BpDatasetInfo bp_tabular_infos[];
extern const int bp_tabular_n_infos;

/* Loads split `train` (TRUE) or test of a set of bp_tabular_infos; options as
 * bp_dataset_load_full (already checked: limit >= 0). */
BpDataset *bp_tabular_load (const BpDatasetInfo *info, gboolean train,
                            const BpDatasetOptions *options, GError **error);

/* Whether its files exist (generated sets: always), else the not-installed error. */
gboolean bp_tabular_check_installed (const BpDatasetInfo *info, GError **error);

G_END_DECLS
