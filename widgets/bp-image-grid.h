/* bp-image-grid.h: a grid of small images with captions; wrong ones get a red mark. */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define BP_TYPE_IMAGE_GRID (bp_image_grid_get_type ())
G_DECLARE_FINAL_TYPE (BpImageGrid, bp_image_grid, BP, IMAGE_GRID, GtkWidget)

GtkWidget *bp_image_grid_new (void);

/* Replaces the images: n images of width x height pixels with 1 (grey) or 3 (RGB) channels,
 * 8 bits each, stored image after image, row after row (pixels is copied). captions (n strings,
 * may hold a newline) and wrong (n flags) may be NULL. Images are upscaled without smoothing. */
void bp_image_grid_set_images (BpImageGrid *self, int n, int width, int height, int channels,
                               const guint8 *pixels, const char *const *captions,
                               const gboolean *wrong);
void bp_image_grid_clear (BpImageGrid *self);

int bp_image_grid_get_n_images (BpImageGrid *self);
const char *bp_image_grid_get_caption (BpImageGrid *self, int index);
gboolean bp_image_grid_get_wrong (BpImageGrid *self, int index);

/* Images per row (default 6). */
int bp_image_grid_get_columns (BpImageGrid *self);
void bp_image_grid_set_columns (BpImageGrid *self, int columns);

G_END_DECLS
