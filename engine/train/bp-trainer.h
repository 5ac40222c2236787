/* bp-trainer.h: the training loop: data, model, optimizer, schedule, evaluation and events. */
#pragma once

#include <glib.h>

#include "bp-nn.h"
#include "bp-optim.h"

G_BEGIN_DECLS

#define BP_TRAIN_ERROR (bp_train_error_quark ())
GQuark bp_train_error_quark (void);

typedef enum {
  BP_TRAIN_ERROR_INVALID, /* a bad configuration value */
  BP_TRAIN_ERROR_MODEL,   /* the model cannot be built */
  BP_TRAIN_ERROR_DATA,    /* the data set cannot be loaded */
  BP_TRAIN_ERROR_NUMERIC, /* the loss became NaN or infinite */
  BP_TRAIN_ERROR_ENGINE,  /* an op failed (out of memory, device error) */
} BpTrainError;

typedef struct {
  const char *model;      /* preset name, used when model_json is NULL */
  const char *model_json; /* a model spec */
  const char *dataset;    /* "fashion-mnist" */
  int epochs;
  int64_t batch_size;
  BpOptimConfig optim;
  BpSchedConfig sched;
  float clip_norm;        /* 0: no clipping */
  float label_smoothing;
  uint64_t seed;
  BpDevice device;
  int64_t limit_train;    /* 0: the whole training set */
  int64_t limit_test;     /* 0: the whole test set */
  double val_fraction;    /* share of the (limited) training set held out for validation */
  int64_t eval_batch_size;
} BpTrainConfig;

/* Defaults: simple-cnn on fashion-mnist, 10 epochs, batch 64, Adam 1e-3, seed 1, 10% val. */
BpTrainConfig bp_train_config_default (void);
/* Checks the values a user can get wrong; the message names the option. */
gboolean bp_train_config_check (const BpTrainConfig *config, GError **error);

typedef enum {
  BP_TRAIN_EVENT_START, /* model built, data loaded */
  BP_TRAIN_EVENT_STEP,
  BP_TRAIN_EVENT_EPOCH,
  BP_TRAIN_EVENT_DONE,
} BpTrainEventKind;

typedef struct {
  BpTrainEventKind kind;
  int epoch, epochs;          /* epoch counts from 1 */
  int64_t step, steps_per_epoch, global_step;
  int64_t n_train, n_val, n_test;
  int64_t n_params;
  double loss;                /* STEP: this batch's loss */
  double train_loss, train_accuracy;
  double val_loss, val_accuracy;
  double test_loss, test_accuracy;
  double lr;
  double seconds;             /* since the start of training (EPOCH: of this epoch) */
  double images_per_second;
  /* EPOCH: the validation confusion matrix, n_classes x n_classes row-major, rows = true
   * class, columns = predicted; valid only during the callback. NULL without a validation set. */
  int n_classes;
  const int64_t *confusion;
  const char *const *class_names;
} BpTrainEvent;

/* Return FALSE to stop training after this event (the run then ends with DONE). */
typedef gboolean (*BpTrainCallback) (const BpTrainEvent *event, gpointer user_data);

typedef struct BpTrainer BpTrainer;

BpTrainer *bp_trainer_new (const BpTrainConfig *config, GError **error);
void bp_trainer_free (BpTrainer *trainer);
BpModel *bp_trainer_get_model (BpTrainer *trainer);
/* Trains for the configured epochs, calling back after every step and epoch. */
gboolean bp_trainer_run (BpTrainer *trainer, BpTrainCallback callback, gpointer user_data,
                         GError **error);
/* Changes the learning rate; call it from the callback (the training thread), e.g. while a
 * user has paused training. */
void bp_trainer_set_lr (BpTrainer *trainer, float lr);
BpOptimizer *bp_trainer_get_optimizer (BpTrainer *trainer);

/* Loss and accuracy of the model on the test set. */
gboolean bp_trainer_evaluate_test (BpTrainer *trainer, double *loss, double *accuracy,
                                   GError **error);

G_END_DECLS
