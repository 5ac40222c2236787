/* bp-cmd-attention.h: `backprop attention RUN --text TEXT --png FILE`: a language-model run's
 * attention weights on a text, drawn as a heatmap. */
#pragma once

int bp_cmd_attention (int argc, char **argv);
