/* bp-engine-strings.c: the translations of the engine's English table texts (layer groups,
 * layer and parameter help, preset descriptions), and the app's way of writing shapes and
 * parameter counts. The list below is the engine's texts when it was written: texts added to
 * the engine later show in English until they are added here and translated. */
#include "config.h"

#include "bp-engine-strings.h"

#include <glib/gi18n.h>
#include <string.h>

/* The engine's help texts and preset descriptions, for xgettext. */
static const char *const engine_texts[] G_GNUC_UNUSED = {
  N_ ("the model's input: one example's shape"),
  N_ ("one example's shape without the batch dimension, e.g. [1, 28, 28]"),
  N_ ("the input holds token ids in [0, vocab_size) (0: not tokens); set from the corpus"),
  N_ ("2-D convolution"),
  N_ ("input channels; taken from the input when left out"),
  N_ ("output channels (the number of filters)"),
  N_ ("filter size: an integer or [height, width]"),
  N_ ("step between filter positions"),
  N_ ("zeros added on each side"),
  N_ ("spacing between filter taps"),
  N_ ("channel groups; in_channels and out_channels must be divisible by it"),
  N_ ("learn a bias per output channel"),
  N_ ("transposed 2-D convolution (planned)"),
  N_ ("2-D max pooling"),
  N_ ("window size: an integer or [height, width]"),
  N_ ("step between windows; the kernel size when left out"),
  N_ ("implicit -infinity padding on each side, at most half the kernel"),
  N_ ("2-D average pooling"),
  N_ ("zero padding on each side, at most half the kernel"),
  N_ ("count the padding zeros in the average"),
  N_ ("average pooling to a fixed output size"),
  N_ ("output height and width: an integer or [height, width]"),
  N_ ("batch normalisation of (C) or (C, L) inputs"),
  N_ ("channels; taken from the input when left out"),
  N_ ("added to the variance for numerical stability"),
  N_ ("weight of the new batch in the running statistics"),
  N_ ("learn a scale and a shift per channel"),
  N_ ("batch normalisation of (C, H, W) inputs"),
  N_ ("layer normalisation over the trailing dimensions"),
  N_ ("trailing dimensions to normalise over; the last input dimension when left out"),
  N_ ("learn a scale and a shift per element"),
  N_ ("max (0, x)"),
  N_ ("x, or negative_slope * x below 0"),
  N_ ("slope for negative inputs"),
  N_ ("x * Phi (x) (exact)"),
  N_ ("hyperbolic tangent"),
  N_ ("1 / (1 + exp (-x))"),
  N_ ("Elman recurrent layer over a (T, features) sequence"),
  N_ ("features per time step (the last input dimension); inferred when left out"),
  N_ ("features of the hidden state"),
  N_ ("stacked recurrent layers"),
  N_ ("tanh or relu"),
  N_ ("learn the biases b_ih and b_hh"),
  N_ ("dropout on the outputs of every layer but the last, in training"),
  N_ ("also run the sequence backwards; the output joins both directions"),
  N_ ("long short-term memory over a (T, features) sequence"),
  N_ ("gated recurrent unit over a (T, features) sequence"),
  N_ ("multi-head self-attention over a (T, features) sequence"),
  N_ ("features (the last input dimension); inferred when left out"),
  N_ ("attention heads; embed_dim must be divisible by it"),
  N_ ("dropout on the attention weights, in training"),
  N_ ("learn in_proj_bias and out_proj.bias"),
  N_ ("each position attends to itself and the positions before (a language model's mask)"),
  N_ ("adds position vectors (sinusoidal or learned) to a (T, features) sequence"),
  N_ ("sinusoidal (fixed, as in \"Attention is all you need\") or learned (a table of vectors)"),
  N_ ("the longest sequence: the model's context"),
  N_ ("dropout after adding the positions, in training"),
  N_ ("self-attention and feed-forward block with residuals and layer norms (GPT blocks with causal)"),
  N_ ("attention heads; d_model must be divisible by it"),
  N_ ("hidden size of the feed-forward block"),
  N_ ("dropout on attention weights and after every sub-layer, in training"),
  N_ ("the feed-forward activation: relu or gelu"),
  N_ ("added to the variance in the layer norms"),
  N_ ("layer norm before each sub-layer (pre-norm, as GPT) instead of after"),
  N_ ("a causal self-attention mask (GPT blocks, decoders); passed as the mask in forward"),
  N_ ("decoder block: self-attention, attention to the memory (input 2), feed-forward"),
  N_ ("fully connected layer on the last dimension"),
  N_ ("input size (the last input dimension); taken from the input when left out"),
  N_ ("output size (required unless tied_to gives it)"),
  N_ ("learn a bias per output"),
  N_ ("an Embedding node whose weight this layer shares (weight tying): out_features is its num_embeddings"),
  N_ ("lookup table of token vectors"),
  N_ ("vocabulary size; the Input's vocab_size when left out"),
  N_ ("size of each token's vector"),
  N_ ("standard deviation of the initial vectors (PyTorch: 1; GPTs use 0.02)"),
  N_ ("weight initialisation: default (PyTorch's), kaiming or xavier (uniform or normal), "
      "normal (std init_std) or zeros (the bias too)"),
  N_ ("standard deviation of the weights with init normal"),
  N_ ("zeroes elements at random in training"),
  N_ ("probability of zeroing an element in training"),
  N_ ("joins dimensions into one"),
  N_ ("first dimension to flatten (the batch dimension is 0)"),
  N_ ("last dimension to flatten (-1: the last one)"),
  N_ ("one vector from a (T, features) sequence: its last step, first step or mean"),
  N_ ("last: the last time step, mean: the mean over time, first: the first step"),
  N_ ("sum of inputs of equal shape (residual connections)"),
  N_ ("joins inputs along a dimension (torch.cat)"),
  N_ ("dimension to join along (the batch dimension is 0; 1: channels)"),
  N_ ("the model's output and its training loss"),
  N_ ("the training loss: CrossEntropyLoss, MSELoss or BCEWithLogitsLoss"),
  N_ ("Multilayer perceptron 784-256-128-100-10 (the Fashion-MNIST benchmark's MLP)"),
  N_ ("The course's SimpleCNN: three conv-BN-ReLU-maxpool blocks (32/64/128), Linear 512, dropout 0.5, Linear 10"),
  N_ ("MLP for scikit-learn's 8x8 digits: 64 pixels, 128 ReLU units, 10 classes"),
  N_ ("MLP for points of the plane (two-spirals, moons): 2-32-32-2 with ReLU"),
  N_ ("LeNet-5 (LeCun et al. 1998) for 28x28 images: two tanh convolution and average-pooling stages (6 and 16 channels, the first padded by 2), Linear 120-84-10"),
  N_ ("A small ResNet: a 16-channel stem and three BasicBlocks (16, 32 and 64 channels, the last two with stride 2 and a 1x1 projection) joined by residual Adds, global average pooling, Linear 10"),
  N_ ("The course's bidirectional LSTM classifier: a Fashion-MNIST image read as 28 rows of 28 pixels, two bidirectional LSTM layers of 128, the last step's output, Linear 10"),
  N_ ("A GRU classifier: a Fashion-MNIST image read as 28 rows of 28 pixels, two GRU layers of 128, the last step's output, Linear 10"),
  N_ ("A Transformer encoder classifier: the 28 rows of a Fashion-MNIST image as tokens, Linear 64, learned positions, two pre-norm encoder layers (4 heads, GELU), the mean over rows, Linear 10"),
  N_ ("A character-level GPT (the size of nanoGPT's shakespeare_char): 6 pre-norm causal Transformer blocks of 384 with 6 heads, context 256, dropout 0.2, learned positions, the output layer tied to the token embedding; vocab_size is set from the corpus"),
  N_ ("A small character-level GPT for the CPU: 2 pre-norm causal Transformer blocks of 64 with 2 heads, context 64, learned positions, the output layer tied to the token embedding; vocab_size is set from the corpus"),
};

static const struct {
  const char *group, *title;
  int color; /* a BpModelCanvas colour */
} groups[] = {
  {"input", N_("Input"), 0},
  {"convolution", N_("Convolution"), 1},
  {"pooling", N_("Pooling"), 7},
  {"normalisation", N_("Normalization"), 3},
  {"activation", N_("Activation"), 4},
  {"recurrent", N_("Recurrent"), 5},
  {"attention", N_("Attention"), 8},
  {"dense", N_("Dense"), 2},
  {"regularisation", N_("Regularization"), 9},
  {"reshape", N_("Reshape"), 6},
  {"merge", N_("Merge: Add and Concatenate"), 6},
  {"output", N_("Output and Loss"), 0},
};

const char *
bp_engine_group_title (const char *group)
{
  for (guint i = 0; i < G_N_ELEMENTS (groups); i++)
    if (g_strcmp0 (groups[i].group, group) == 0)
      return _(groups[i].title);
  return group;
}

int
bp_engine_group_color (const char *group)
{
  for (guint i = 0; i < G_N_ELEMENTS (groups); i++)
    if (g_strcmp0 (groups[i].group, group) == 0)
      return groups[i].color;
  return -1;
}

const char *
bp_engine_text (const char *english)
{
  return english && *english ? _(english) : "";
}

char *
bp_format_shape (int ndim, const gint64 *d)
{
  if (ndim <= 0)
    return g_strdup ("?");
  GString *s = g_string_new (NULL);
  for (int k = 0; k < ndim; k++)
    g_string_append_printf (s, k ? "×%" G_GINT64_FORMAT : "%" G_GINT64_FORMAT, d[k]);
  return g_string_free (s, FALSE);
}

char *
bp_format_count (gint64 n)
{
  char digits[32];
  g_snprintf (digits, sizeof digits, "%" G_GINT64_FORMAT, n < 0 ? -n : n);
  GString *s = g_string_new (n < 0 ? "-" : "");
  int len = (int) strlen (digits);
  for (int k = 0; k < len; k++) {
    if (k > 0 && (len - k) % 3 == 0)
      g_string_append_c (s, ',');
    g_string_append_c (s, digits[k]);
  }
  return g_string_free (s, FALSE);
}

char *
bp_format_n_params (gint64 n)
{
  g_autofree char *count = bp_format_count (n);
  /* TRANSLATORS: a block's or a model's parameter count, e.g. "1,234 parameters" */
  return g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "%s parameter", "%s parameters",
                                       (gulong) MIN (n, 1000000)),
                          count);
}
