/* bp-spec.h: the model spec (a versioned JSON graph, doc/model-spec.md): reading, checking,
 * building models, writing canonical JSON and PyTorch code, and the built-in presets. */
#pragma once

#include <glib.h>

#include "bp-nn.h"

#define BP_SPEC_FORMAT "backprop-lab-model"
#define BP_SPEC_VERSION 2

/* A spec as read: its nodes in the spec's order, each with what reading it found wrong.
 * Version 1 specs (a "layers" list) are converted to the graph form: an Input "input", the
 * layers with ids "<type in lower case>_<index>" ("conv2d_0") each reading the one before,
 * and an Output "output". */
typedef struct {
  char *name;         /* "model" when the spec names none */
  char *description;  /* NULL when none */
  int version;        /* the version the spec was written in */
  int n_nodes;
  BpLayerSpec *nodes;
  char **types;       /* per node, the type as written (nodes of an unknown type keep it) */
  char **errors;      /* per node, why it cannot be read (NULL where nothing) */
                      /* (both arrays have n_nodes entries; an editor that changes node k
                       * frees and clears errors[k], which was about the old text) */
} BpSpec;

/* An empty spec to fill in: the builder's empty canvas. */
BpSpec *bp_spec_new (const char *name);
BpSpec *bp_spec_copy (const BpSpec *spec);
/* Appends a node of a kind with PyTorch's defaults, the given id and (when input is not NULL)
 * one input; returns it, valid until the node list changes. */
BpLayerSpec *bp_spec_add_node (BpSpec *spec, BpLayerKind kind, const char *id, const char *input);
/* Removes node `index` (the nodes reading it keep the now dangling reference). */
void bp_spec_remove_node (BpSpec *spec, int index);

/* Reads a spec. Fails (NULL and error) only where the text is not a model spec at all: not
 * JSON, another format or version, unknown top-level fields, no node list. Problems of single
 * nodes (unknown type or field, a bad value) are kept in spec->errors, so that a half-edited
 * spec can still be shown; bp_spec_check and bp_spec_build_model report them. */
BpSpec *bp_spec_parse (const char *json, GError **error);
void bp_spec_free (BpSpec *spec);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (BpSpec, bp_spec_free)

/* What checking a spec found: per node its output shape, parameter count and error, as the
 * builder's canvas shows them. No parameter is allocated. */
typedef struct {
  char *id;
  char *type;          /* as written */
  int ndim;            /* one example's output shape; ndim 0 where unknown */
  int64_t shape[BP_LAYER_MAX_DIMS];
  int64_t n_params;
  char *error;         /* why this node cannot be built (without its name), NULL when fine */
} BpSpecNodeInfo;

typedef struct {
  char *name;
  int n_nodes;
  BpSpecNodeInfo *nodes; /* in the spec's order */
  int64_t n_params;      /* total */
  int n_errors;
  char *error;           /* the first error naming its node, NULL when the model can be built */
} BpSpecInfo;

BpSpecInfo *bp_spec_check (const BpSpec *spec);
void bp_spec_info_free (BpSpecInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (BpSpecInfo, bp_spec_info_free)

/* Reads and checks spec JSON. Returns TRUE when a model can be built from it. *info gets the
 * per-node results whenever the text is a model spec at all (also when it cannot be built);
 * otherwise it is set to NULL. On FALSE, error holds the first error. */
gboolean bp_spec_analyze (const char *json, BpSpecInfo **info, GError **error);

/* Builds a model from spec JSON or a read spec. Errors name the node (id and type) and the
 * reason; nothing is allocated for a spec that fails the checks. */
BpModel *bp_spec_build (const char *json, GError **error);
BpModel *bp_spec_build_model (const BpSpec *spec, GError **error);

/* Canonical spec JSON (version 2, one node per line, parameters in the documented order,
 * only the ones that differ from PyTorch's defaults): load -> save -> load gives the same
 * text. A model's nodes come in its topological order. */
char *bp_spec_to_json (const BpSpec *spec);
char *bp_model_to_json (const BpModel *model);
/* Reads spec JSON (any version) and writes it canonically; NULL and error where it is not a
 * model spec (see bp_spec_parse). */
char *bp_spec_canonical (const char *json, GError **error);

/* Python source of an nn.Module equivalent to the spec: __init__ creates the layers as
 * attributes named by the node ids, forward wires the graph. Its state_dict () names are
 * bp_model_state's (plus the batch norms' num_batches_tracked). The file defines the class,
 * model () returning a new instance, INPUT_SHAPE and loss_fn. NULL and error where the spec
 * cannot be built. */
char *bp_spec_to_pytorch (const char *json, GError **error);
char *bp_spec_export_pytorch (const BpSpec *spec, GError **error);

/* Sets one parameter of a node from JSON text ("3", "[3, 5]", "true", "\"MSELoss\"", "null"
 * for a pool's stride), validated as the spec reader does: for the builder's inspector.
 * Leaves the node unchanged on FALSE. */
gboolean bp_layer_spec_set_param (BpLayerSpec *spec, const char *name, const char *json_value,
                                  GError **error);

/* Sets a language model's vocabulary from its corpus: the Input's vocab_size, and
 * num_embeddings of Embedding nodes that give it explicitly (tied output layers follow their
 * Embedding). FALSE with an error where the spec has no Input or v < 1. */
gboolean bp_spec_set_vocab_size (BpSpec *spec, int64_t v, GError **error);
/* The same on spec JSON: the canonical JSON of the changed spec (free it), or NULL. */
char *bp_spec_json_with_vocab_size (const char *json, int64_t v, GError **error);

typedef struct {
  const char *name;
  const char *description; /* one line, English (translated by the callers that show it) */
  const char *json;        /* the model spec, canonical */
} BpPreset;

const BpPreset *bp_presets (int *n);
const BpPreset *bp_preset_find (const char *name);
