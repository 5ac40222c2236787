/* test-build.c: drives the Build page of the real lab window under Xvfb by the actions that its
 * clicks trigger: a CNN built from an empty canvas and trained, a residual connection and a
 * mismatched one, undo/redo/copy/paste/delete, the PyTorch code view, files, presets, zh_TW. */
#include "config.h"

#include <adwaita.h>
#include <glib/gstdio.h>
#include <string.h>

#include "bp-application.h"
#include "bp-build-inspector.h"
#include "bp-build-page.h"
#include "bp-build-palette.h"
#include "bp-gui-test.h"
#include "bp-model-canvas.h"
#include "bp-train-page.h"
#include "bp-window.h"

static GtkApplication *app;

typedef struct {
  BpWindow *window;
  BpBuildPage *page;
  BpModelCanvas *canvas;
  BpBuildInspector *inspector;
} Fixture;

static GtkWidget *
child (gpointer page, GType type, const char *name)
{
  return bp_gui_template_child (page, type, name);
}

static void
fixture_open (Fixture *f)
{
  f->window = bp_window_new (app);
  gtk_window_set_default_size (GTK_WINDOW (f->window), 1400, 900);
  gtk_window_present (GTK_WINDOW (f->window));
  g_assert_true (bp_gui_wait (bp_gui_is_mapped, f->window, 5000));
  g_assert_true (bp_window_set_place (f->window, "build"));
  f->page = BP_BUILD_PAGE (bp_window_get_page (f->window, "build"));
  g_assert_true (BP_IS_BUILD_PAGE (f->page));
  f->canvas = BP_MODEL_CANVAS (child (f->page, BP_TYPE_BUILD_PAGE, "canvas"));
  f->inspector = BP_BUILD_INSPECTOR (child (f->page, BP_TYPE_BUILD_PAGE, "inspector"));
  bp_gui_spin (400); /* the stack's transition */
}

static void
fixture_close (Fixture *f)
{
  bp_gui_destroy_window (GTK_WIDGET (f->window));
}

static void
act (Fixture *f, const char *action, const char *arg)
{
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->page), action, arg ? "s" : NULL, arg));
}

/* What a click on a palette row does: the row's action with its layer name. */
static void
add (Fixture *f, const char *type)
{
  int n = bp_build_page_get_spec (f->page)->n_nodes;
  act (f, "build.add-layer", type);
  g_assert_cmpint (bp_build_page_get_spec (f->page)->n_nodes, ==, n + 1);
}

/* Typing into an inspector row. */
static void
type_param (Fixture *f, const char *name, const char *text)
{
  GtkWidget *editor = bp_build_inspector_get_editor (f->inspector, name);
  g_assert_nonnull (editor);
  g_assert_true (GTK_IS_EDITABLE (editor));
  gtk_editable_set_text (GTK_EDITABLE (editor), text);
}

static int
node_index (Fixture *f, const char *id)
{
  const BpSpec *spec = bp_build_page_get_spec (f->page);
  for (int k = 0; k < spec->n_nodes; k++)
    if (g_str_equal (spec->nodes[k].id, id))
      return k;
  g_error ("no node %s", id);
  return -1;
}

static const BpLayerSpec *
node (Fixture *f, const char *id)
{
  return &bp_build_page_get_spec (f->page)->nodes[node_index (f, id)];
}

static const char *
edge_label (Fixture *f, const char *from, const char *to)
{
  const char *label = bp_model_canvas_get_edge_label (f->canvas, node_index (f, from),
                                                      node_index (f, to));
  if (!label)
    g_error ("no edge %s -> %s", from, to);
  return label;
}

/* The page's total and per-node counts against bp_spec_analyze of its JSON. */
static gint64
check_against_analyze (Fixture *f, gboolean valid)
{
  g_autofree char *json = bp_build_page_get_json (f->page);
  g_autoptr (BpSpecInfo) info = NULL;
  g_autoptr (GError) error = NULL;
  g_assert_cmpint (bp_spec_analyze (json, &info, &error), ==, valid);
  g_assert_nonnull (info);
  const BpSpecInfo *shown = bp_build_page_get_info (f->page);
  g_assert_cmpint (shown->n_params, ==, info->n_params);
  g_assert_cmpint (shown->n_nodes, ==, info->n_nodes);
  for (int k = 0; k < info->n_nodes; k++) {
    g_assert_cmpint (shown->nodes[k].n_params, ==, info->nodes[k].n_params);
    g_assert_cmpstr (shown->nodes[k].error, ==, info->nodes[k].error);
  }
  return info->n_params;
}

static gboolean
train_enabled (Fixture *f)
{
  return gtk_widget_is_sensitive (child (f->page, BP_TYPE_BUILD_PAGE, "train_button"));
}

/* ---- the Train page ---- */

static GtkWidget *
train_child (BpTrainPage *page, const char *name)
{
  return child (page, BP_TYPE_TRAIN_PAGE, name);
}

static gboolean
run_ended (gpointer data)
{
  BpTrainRun *run = bp_train_page_get_run (data);
  return run && !bp_train_run_is_active (run);
}

/* ---- tests ---- */

static void
test_cnn (void)
{
  Fixture f;
  fixture_open (&f);
  g_assert_cmpint (bp_build_page_get_spec (f.page)->n_nodes, ==, 0);
  g_assert_false (train_enabled (&f));
  g_assert_nonnull (bp_build_page_get_train_blocker (f.page));

  /* the palette lists the engine's layer types; the search box filters them */
  BpBuildPalette *palette = BP_BUILD_PALETTE (child (f.page, BP_TYPE_BUILD_PAGE, "palette"));
  bp_build_palette_set_filter (palette, "pool");
  g_auto (GStrv) pools = bp_build_palette_get_visible (palette);
  g_assert_true (g_strv_contains ((const char *const *) pools, "MaxPool2d"));
  g_assert_false (g_strv_contains ((const char *const *) pools, "Linear"));
  bp_build_palette_set_filter (palette, NULL);

  add (&f, "Input");
  g_assert_cmpstr (bp_build_page_get_selected (f.page), ==, "input");
  add (&f, "Conv2d");
  g_assert_cmpstr (bp_build_page_get_selected (f.page), ==, "conv1");
  g_assert_cmpstr (node (&f, "conv1")->inputs[0], ==, "input");
  type_param (&f, "out_channels", "8");
  type_param (&f, "padding", "1");
  g_assert_cmpint (node (&f, "conv1")->out_channels, ==, 8);
  g_assert_cmpint (node (&f, "conv1")->padding[0], ==, 1);

  /* a bad value shows its error in its row and leaves the spec as it was */
  type_param (&f, "out_channels", "eight");
  g_assert_nonnull (bp_build_inspector_get_error (f.inspector, "out_channels"));
  g_assert_cmpint (node (&f, "conv1")->out_channels, ==, 8);
  type_param (&f, "out_channels", "0");
  g_test_message ("out_channels 0: %s", bp_build_inspector_get_error (f.inspector, "out_channels"));
  g_assert_nonnull (strstr (bp_build_inspector_get_error (f.inspector, "out_channels"), "out_channels"));
  g_assert_cmpint (node (&f, "conv1")->out_channels, ==, 8);
  type_param (&f, "kernel_size", "");
  g_assert_nonnull (bp_build_inspector_get_error (f.inspector, "kernel_size"));
  type_param (&f, "kernel_size", "3");
  type_param (&f, "out_channels", "8");
  g_assert_null (bp_build_inspector_get_error (f.inspector, "out_channels"));
  g_assert_null (bp_build_inspector_get_error (f.inspector, "kernel_size"));

  add (&f, "ReLU");
  add (&f, "MaxPool2d");
  add (&f, "Flatten");
  add (&f, "Linear");
  add (&f, "Output");
  g_assert_cmpstr (node (&f, "output")->inputs[0], ==, "fc1");

  /* the shapes on the edges, the total against bp_spec_analyze */
  g_assert_cmpstr (edge_label (&f, "input", "conv1"), ==, "1×28×28");
  g_assert_cmpstr (edge_label (&f, "conv1", "relu1"), ==, "8×28×28");
  g_assert_cmpstr (edge_label (&f, "relu1", "pool1"), ==, "8×28×28");
  g_assert_cmpstr (edge_label (&f, "pool1", "flatten1"), ==, "8×14×14");
  g_assert_cmpstr (edge_label (&f, "flatten1", "fc1"), ==, "1568");
  g_assert_cmpstr (edge_label (&f, "fc1", "output"), ==, "10");
  gint64 total = check_against_analyze (&f, TRUE);
  g_assert_cmpint (total, ==, (8 * 9 + 8) + (1568 * 10 + 10));
  g_assert_nonnull (strstr (bp_model_canvas_get_header (f.canvas), "15,770 parameters"));
  g_assert_true (train_enabled (&f));
  g_assert_null (bp_build_page_get_train_blocker (f.page));
  bp_model_canvas_zoom_fit (f.canvas);
  g_free (bp_gui_screenshot (GTK_WIDGET (f.window), "build-cnn-en"));

  /* "Train this model" opens the Train page with it; a short run trains it */
  g_signal_emit_by_name (child (f.page, BP_TYPE_BUILD_PAGE, "train_button"), "clicked");
  g_assert_cmpstr (bp_window_get_place (f.window), ==, "train");
  BpTrainPage *train = BP_TRAIN_PAGE (bp_window_get_page (f.window, "train"));
  AdwComboRow *model_row = ADW_COMBO_ROW (train_child (train, "model_row"));
  g_autoptr (GtkStringObject) item = g_list_model_get_item (adw_combo_row_get_model (model_row),
                                                            adw_combo_row_get_selected (model_row));
  g_assert_cmpstr (gtk_string_object_get_string (item), ==, "Custom model from the builder");
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (train_child (train, "limit_train_spin")), 256);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (train_child (train, "limit_test_spin")), 100);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (train_child (train, "epochs_spin")), 1);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (train_child (train, "batch_size_spin")), 32);
  adw_combo_row_set_selected (ADW_COMBO_ROW (train_child (train, "device_row")), 1); /* CPU */
  BpTrainConfig config = bp_train_page_get_config (train);
  g_autofree char *json = bp_build_page_get_json (f.page);
  g_assert_cmpstr (config.model_json, ==, json);
  g_signal_emit_by_name (train_child (train, "start_button"), "clicked");
  g_assert_nonnull (bp_train_page_get_run (train));
  g_assert_true (bp_gui_wait (run_ended, train, 60000));
  BpTrainRun *run = bp_train_page_get_run (train);
  if (bp_train_run_get_state (run) != BP_TRAIN_STATE_FINISHED)
    g_error ("the run did not finish: %s",
             bp_train_run_get_error (run) ? bp_train_run_get_error (run)->message : "?");
  const BpTrainProgress *p = bp_train_run_get_progress (run);
  g_assert_cmpint (p->n_params, ==, total);
  g_assert_cmpint (p->global_step, >=, 256 * 9 / 10 / 32);
  g_test_message ("the built CNN trained %" G_GINT64_FORMAT " steps, test accuracy %.3f",
                  p->global_step, p->test_accuracy);
  g_free (bp_gui_screenshot (GTK_WIDGET (f.window), "build-cnn-trained-en"));
  fixture_close (&f);
}

static void
test_residual (void)
{
  Fixture f;
  fixture_open (&f);
  add (&f, "Input");
  add (&f, "Conv2d");
  type_param (&f, "out_channels", "8");
  type_param (&f, "padding", "1");
  add (&f, "ReLU");
  add (&f, "Conv2d");
  type_param (&f, "out_channels", "8");
  type_param (&f, "padding", "1");
  add (&f, "Add");
  g_assert_cmpint (node (&f, "add1")->n_inputs, ==, 1);
  g_assert_nonnull (bp_build_page_get_info (f.page)->nodes[node_index (&f, "add1")].error);
  add (&f, "Flatten");
  add (&f, "Linear");
  add (&f, "Output");

  /* the skip connection through the Connect From dialog: relu1 is offered first */
  bp_build_page_select (f.page, "add1");
  g_assert_cmpstr (bp_build_page_get_selected (f.page), ==, "add1");
  act (&f, "build.connect-from", NULL);
  AdwMessageDialog *dialog = NULL;
  g_assert_true (bp_gui_wait (bp_gui_has_message_dialog, &dialog, 5000));
  g_free (bp_gui_screenshot (GTK_WIDGET (dialog), "build-connect-dialog-en"));
  adw_message_dialog_response (dialog, "connect");
  bp_gui_spin (100);
  const BpLayerSpec *a = node (&f, "add1");
  g_assert_cmpint (a->n_inputs, ==, 2);
  g_assert_cmpstr (a->inputs[0], ==, "conv2");
  g_assert_cmpstr (a->inputs[1], ==, "relu1");
  g_assert_cmpstr (edge_label (&f, "relu1", "add1"), ==, "8×28×28");
  g_assert_cmpstr (edge_label (&f, "conv2", "add1"), ==, "8×28×28");
  g_assert_cmpstr (edge_label (&f, "add1", "flatten1"), ==, "8×28×28");
  check_against_analyze (&f, TRUE);
  g_assert_true (train_enabled (&f));
  bp_model_canvas_zoom_fit (f.canvas);
  g_free (bp_gui_screenshot (GTK_WIDGET (f.window), "build-residual-en"));

  /* a mismatched residual: the error is on the Add block and Train says why it is disabled */
  bp_build_page_select (f.page, "conv2");
  type_param (&f, "out_channels", "16");
  const BpSpecInfo *info = bp_build_page_get_info (f.page);
  const char *add_error = info->nodes[node_index (&f, "add1")].error;
  g_test_message ("Add error: %s", add_error);
  g_assert_nonnull (add_error);
  g_assert_nonnull (strstr (add_error, "[16, 28, 28]"));
  g_assert_nonnull (strstr (add_error, "[8, 28, 28]"));
  g_assert_null (info->nodes[node_index (&f, "conv2")].error);
  check_against_analyze (&f, FALSE);
  g_assert_false (train_enabled (&f));
  const char *blocker = bp_build_page_get_train_blocker (f.page);
  g_assert_nonnull (strstr (blocker, "node \"add1\" (Add)"));
  g_assert_cmpstr (gtk_widget_get_tooltip_text (child (f.page, BP_TYPE_BUILD_PAGE, "train_button")), ==,
                   blocker);
  g_assert_true (gtk_widget_get_visible (child (f.page, BP_TYPE_BUILD_PAGE, "error_banner")));
  bp_build_page_select (f.page, "add1");
  bp_model_canvas_zoom_fit (f.canvas);
  g_free (bp_gui_screenshot (GTK_WIDGET (f.window), "build-residual-error-en"));

  /* the same model in dark mode */
  adw_style_manager_set_color_scheme (adw_style_manager_get_default (), ADW_COLOR_SCHEME_FORCE_DARK);
  bp_gui_spin (100);
  g_free (bp_gui_screenshot (GTK_WIDGET (f.window), "build-residual-error-dark"));
  adw_style_manager_set_color_scheme (adw_style_manager_get_default (), ADW_COLOR_SCHEME_DEFAULT);

  /* a 1x1 projection on the skip path fixes it: relu1 -> proj -> add1 */
  bp_build_page_select (f.page, "relu1");
  act (&f, "build.add-layer", "Conv2d"); /* goes between relu1 and both its readers */
  g_assert_cmpstr (node (&f, "conv3")->inputs[0], ==, "relu1");
  g_assert_cmpstr (node (&f, "conv2")->inputs[0], ==, "conv3");
  act (&f, "build.undo", NULL);
  /* connect a new block to the Add by dragging its port: the canvas's connect signal */
  bp_build_page_select (f.page, "add1");
  act (&f, "build.add-layer", "Conv2d"); /* add1 -> conv3 -> flatten1 */
  act (&f, "build.undo", NULL);
  g_assert_cmpint (bp_build_page_get_spec (f.page)->n_nodes, ==, 8);
  BpSpec *edit = bp_spec_copy (bp_build_page_get_spec (f.page));
  BpLayerSpec *proj = bp_spec_add_node (edit, BP_LAYER_CONV2D, "proj", "relu1");
  proj->out_channels = 16;
  proj->kernel_size[0] = proj->kernel_size[1] = 1;
  g_autofree char *with_proj = bp_spec_to_json (edit);
  bp_spec_free (edit);
  g_assert_true (bp_build_page_set_json (f.page, with_proj, NULL));
  g_signal_emit_by_name (f.canvas, "connect", node_index (&f, "proj"), node_index (&f, "add1"));
  /* an Add takes up to 16 inputs: a third one, whose shape differs from relu1's */
  g_assert_cmpstr (bp_build_page_get_selected (f.page), ==, "add1");
  a = node (&f, "add1");
  g_assert_cmpint (a->n_inputs, ==, 3);
  g_assert_cmpstr (a->inputs[2], ==, "proj");
  g_assert_false (train_enabled (&f));
  /* the inspector's Disconnect on input 2 (relu1) */
  g_signal_emit_by_name (f.inspector, "disconnect", 1);
  a = node (&f, "add1");
  g_assert_cmpint (a->n_inputs, ==, 2);
  g_assert_cmpstr (a->inputs[0], ==, "conv2");
  g_assert_cmpstr (a->inputs[1], ==, "proj");
  check_against_analyze (&f, TRUE);
  g_assert_true (train_enabled (&f));
  g_assert_cmpstr (edge_label (&f, "proj", "add1"), ==, "16×28×28");
  fixture_close (&f);
}

static void
test_edit (void)
{
  Fixture f;
  fixture_open (&f);
  act (&f, "build.load-preset", "mlp");
  g_autofree char *json0 = bp_build_page_get_json (f.page);
  g_assert_cmpstr (json0, ==, bp_preset_find ("mlp")->json);
  int n0 = bp_build_page_get_spec (f.page)->n_nodes;

  /* copy fc2, paste after relu2: a new fc between relu2 and fc3 */
  bp_build_page_select (f.page, "fc2");
  act (&f, "build.copy", NULL);
  bp_build_page_select (f.page, "relu2");
  act (&f, "build.paste", NULL);
  const char *pasted = bp_build_page_get_selected (f.page);
  g_assert_cmpstr (pasted, ==, "fc5");
  g_assert_nonnull (pasted);
  g_autofree char *pasted_id = g_strdup (pasted);
  g_assert_cmpint (bp_build_page_get_spec (f.page)->n_nodes, ==, n0 + 1);
  g_assert_cmpint (node (&f, pasted_id)->out_features, ==, 128);
  g_assert_cmpstr (node (&f, pasted_id)->inputs[0], ==, "relu2");
  g_assert_cmpstr (node (&f, "fc3")->inputs[0], ==, pasted_id);
  g_autofree char *json1 = bp_build_page_get_json (f.page);
  g_assert_cmpstr (json1, !=, json0);

  /* undo, redo */
  act (&f, "build.undo", NULL);
  g_autofree char *undone = bp_build_page_get_json (f.page);
  g_assert_cmpstr (undone, ==, json0);
  act (&f, "build.redo", NULL);
  g_autofree char *redone = bp_build_page_get_json (f.page);
  g_assert_cmpstr (redone, ==, json1);

  /* delete the pasted block: its reader reads its input again */
  bp_build_page_select (f.page, pasted_id);
  act (&f, "build.delete", NULL);
  g_autofree char *deleted = bp_build_page_get_json (f.page);
  g_assert_cmpstr (deleted, ==, json0);
  g_assert_cmpstr (bp_build_page_get_selected (f.page), ==, "relu2");
  act (&f, "build.undo", NULL);
  g_autofree char *back = bp_build_page_get_json (f.page);
  g_assert_cmpstr (back, ==, json1);
  g_assert_cmpstr (bp_build_page_get_selected (f.page), ==, pasted_id);

  /* typing one value is one undo step; a rename follows the references */
  bp_build_page_select (f.page, "fc4");
  type_param (&f, "out_features", "1");
  type_param (&f, "out_features", "12");
  type_param (&f, "out_features", "128");
  g_assert_cmpint (node (&f, "fc4")->out_features, ==, 128);
  act (&f, "build.undo", NULL);
  g_assert_cmpint (node (&f, "fc4")->out_features, ==, 10);
  bp_build_page_select (f.page, "fc4");
  type_param (&f, "id", "2bad");
  g_assert_nonnull (bp_build_inspector_get_error (f.inspector, "id"));
  type_param (&f, "id", "fc3");
  g_assert_nonnull (bp_build_inspector_get_error (f.inspector, "id"));
  type_param (&f, "id", "classifier");
  g_assert_null (bp_build_inspector_get_error (f.inspector, "id"));
  g_assert_cmpstr (node (&f, "output")->inputs[0], ==, "classifier");
  act (&f, "build.undo", NULL);
  g_assert_cmpstr (node (&f, "output")->inputs[0], ==, "fc4");

  /* a parameter back to its default with an empty value; a switch */
  bp_build_page_select (f.page, "fc4");
  GtkWidget *bias = bp_build_inspector_get_editor (f.inspector, "bias");
  g_assert_true (GTK_IS_SWITCH (bias));
  gtk_switch_set_active (GTK_SWITCH (bias), FALSE);
  g_assert_false (node (&f, "fc4")->bias);
  act (&f, "build.undo", NULL);
  g_assert_true (node (&f, "fc4")->bias);
  bp_build_page_select (f.page, "x");
  type_param (&f, "shape", "3, 32, 32");
  g_assert_cmpint (node (&f, "x")->shape.ndim, ==, 3);
  g_assert_cmpint (node (&f, "x")->shape.d[0], ==, 3);
  g_assert_cmpstr (edge_label (&f, "flatten", "fc1"), ==, "3072");
  act (&f, "build.undo", NULL);

  /* the model's name */
  bp_model_canvas_set_selected (f.canvas, -1);
  g_assert_null (bp_build_page_get_selected (f.page));
  type_param (&f, "model-name", "my-mlp");
  g_assert_cmpstr (bp_build_page_get_spec (f.page)->name, ==, "my-mlp");
  act (&f, "build.undo", NULL);
  g_assert_cmpstr (bp_build_page_get_spec (f.page)->name, ==, "mlp");

  fixture_close (&f);
}

static void
test_code (void)
{
  Fixture f;
  fixture_open (&f);
  const char *presets[] = {"small-resnet", "simple-cnn", "mlp"};
  for (guint i = 0; i < G_N_ELEMENTS (presets); i++) {
    act (&f, "build.load-preset", presets[i]);
    g_autofree char *json = bp_build_page_get_json (f.page);
    g_autoptr (GError) error = NULL;
    g_autofree char *code = bp_spec_to_pytorch (json, &error);
    g_assert_no_error (error);
    g_assert_cmpstr (bp_build_page_get_code (f.page), ==, code);
    GtkTextBuffer *buffer = gtk_text_view_get_buffer (
      GTK_TEXT_VIEW (child (f.page, BP_TYPE_BUILD_PAGE, "code_view")));
    GtkTextIter start, end;
    gtk_text_buffer_get_bounds (buffer, &start, &end);
    g_autofree char *shown = gtk_text_buffer_get_text (buffer, &start, &end, FALSE);
    g_assert_cmpstr (shown, ==, code);
    check_against_analyze (&f, TRUE);
  }
  gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (child (f.page, BP_TYPE_BUILD_PAGE, "code_button")), TRUE);
  g_assert_cmpstr (gtk_stack_get_visible_child_name (GTK_STACK (child (f.page, BP_TYPE_BUILD_PAGE, "view_stack"))), ==, "code");
  g_free (bp_gui_screenshot (GTK_WIDGET (f.window), "build-code-en"));
  act (&f, "build.copy-code", NULL);
  gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (child (f.page, BP_TYPE_BUILD_PAGE, "code_button")), FALSE);

  /* a model that cannot be built says why instead */
  bp_build_page_select (f.page, "fc4");
  type_param (&f, "in_features", "99");
  g_assert_true (g_str_has_prefix (bp_build_page_get_code (f.page), "# "));
  g_assert_nonnull (strstr (bp_build_page_get_code (f.page), "in_features"));

  /* the ResNet preset draws without overlaps */
  act (&f, "build.load-preset", "small-resnet");
  int n = bp_model_canvas_get_n_nodes (f.canvas);
  for (int i = 0; i < n; i++)
    for (int j = i + 1; j < n; j++) {
      graphene_rect_t a, b, r;
      bp_model_canvas_get_node_bounds (f.canvas, i, &a);
      bp_model_canvas_get_node_bounds (f.canvas, j, &b);
      g_assert_false (graphene_rect_intersection (&a, &b, &r) && r.size.width > 0.5 &&
                      r.size.height > 0.5);
    }
  bp_build_page_select (f.page, "b2_add");
  g_free (bp_gui_screenshot (GTK_WIDGET (f.window), "build-small-resnet-en"));
  fixture_close (&f);
}

static void
test_files (void)
{
  Fixture f;
  fixture_open (&f);
  act (&f, "build.load-preset", "small-resnet");
  bp_build_page_select (f.page, "fc");
  type_param (&f, "out_features", "7");
  g_autofree char *original = bp_build_page_get_json (f.page);
  g_autofree char *dir = g_dir_make_tmp ("bp-build-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "resnet7.json", NULL);
  g_autoptr (GFile) file = g_file_new_for_path (path);
  g_autoptr (GError) error = NULL;
  g_assert_true (bp_build_page_save_file (f.page, file, &error));
  g_assert_no_error (error);
  g_autofree char *saved = NULL;
  g_assert_true (g_file_get_contents (path, &saved, NULL, NULL));
  g_assert_cmpstr (saved, ==, original);

  act (&f, "build.new", NULL);
  g_assert_cmpint (bp_build_page_get_spec (f.page)->n_nodes, ==, 0);
  g_assert_true (bp_build_page_load_file (f.page, file, &error));
  g_assert_no_error (error);
  g_autofree char *reopened = bp_build_page_get_json (f.page);
  g_assert_cmpstr (reopened, ==, original);
  check_against_analyze (&f, TRUE);

  /* files that are not model specs are refused with a message; the model stays */
  g_autofree char *bad = g_build_filename (dir, "bad.json", NULL);
  g_assert_true (g_file_set_contents (bad, "{\"format\": \"something-else\"}", -1, NULL));
  g_autoptr (GFile) bad_file = g_file_new_for_path (bad);
  g_assert_false (bp_build_page_load_file (f.page, bad_file, &error));
  g_test_message ("bad file: %s", error->message);
  g_clear_error (&error);
  g_autoptr (GFile) missing = g_file_new_for_path ("/nonexistent/model.json");
  g_assert_false (bp_build_page_load_file (f.page, missing, &error));
  g_clear_error (&error);
  g_autofree char *still = bp_build_page_get_json (f.page);
  g_assert_cmpstr (still, ==, original);

  g_unlink (bad);
  g_unlink (path);
  g_rmdir (dir);
  fixture_close (&f);
}

static void
test_zh_tw (void)
{
  if (g_strcmp0 (g_getenv ("LANGUAGE"), "zh_TW") != 0) {
    g_test_skip ("runs with LANGUAGE=zh_TW (the gui-build-zh_TW test)");
    return;
  }
  Fixture f;
  fixture_open (&f);
  g_assert_cmpstr (gtk_button_get_label (GTK_BUTTON (child (f.page, BP_TYPE_BUILD_PAGE, "train_button"))),
                   ==, "訓練這個模型(_T)");
  act (&f, "build.load-preset", "small-resnet");
  g_assert_nonnull (strstr (bp_model_canvas_get_header (f.canvas), "個參數"));
  bp_build_page_select (f.page, "b2_conv1");
  g_free (bp_gui_screenshot (GTK_WIDGET (f.window), "build-small-resnet-zh_TW"));
  fixture_close (&f);
}

int
main (int argc, char **argv)
{
  if (!bp_gui_test_init (&argc, &argv))
    return 0;
  app = GTK_APPLICATION (bp_application_new ());
  g_autoptr (GError) error = NULL;
  g_assert_true (g_application_register (G_APPLICATION (app), NULL, &error));
  g_assert_no_error (error);

  g_test_add_func ("/build/cnn", test_cnn);
  g_test_add_func ("/build/residual", test_residual);
  g_test_add_func ("/build/edit", test_edit);
  g_test_add_func ("/build/code", test_code);
  g_test_add_func ("/build/files", test_files);
  g_test_add_func ("/build/zh_TW", test_zh_tw);
  int status = g_test_run ();
  g_object_unref (app);
  return status;
}
