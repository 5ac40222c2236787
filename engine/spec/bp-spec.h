/* bp-spec.h: model spec JSON <-> models, and the built-in presets. */
#pragma once

#include <glib.h>

#include "bp-nn.h"

#define BP_SPEC_FORMAT "backprop-lab-model"
#define BP_SPEC_VERSION 1

/* Builds a model from spec JSON (format documented in doc/model-spec.md). Errors name the
 * layer and the reason. */
BpModel *bp_spec_build (const char *json, GError **error);

typedef struct {
  const char *name;
  const char *description; /* one line, English (translated by the callers that show it) */
  const char *json;        /* the model spec */
} BpPreset;

const BpPreset *bp_presets (int *n);
const BpPreset *bp_preset_find (const char *name);
