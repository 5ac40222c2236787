/* bp-presets.c: the built-in model presets as canonical spec JSON (doc/model-spec.md). */
#include "bp-spec.h"

/* Each text is what bp_spec_to_json writes for it (tests/test-spec.c checks), so a preset
 * saved by the builder is byte-for-byte the preset. The sequence models read Fashion-MNIST
 * images as 28 rows of 28 pixels ((28, 28) inputs); the GPTs read character ids (their
 * vocab_size is set from the corpus with bp_spec_set_vocab_size). */
static const BpPreset presets[] = {
  {"mlp",
   "Multilayer perceptron 784-256-128-100-10 (the Fashion-MNIST benchmark's MLP)",
   "{\n"
   "  \"format\": \"backprop-lab-model\",\n"
   "  \"version\": 2,\n"
   "  \"name\": \"mlp\",\n"
   "  \"description\": \"Multilayer perceptron 784-256-128-100-10 (the Fashion-MNIST benchmark's MLP)\",\n"
   "  \"nodes\": [\n"
   "    {\"id\": \"x\", \"type\": \"Input\", \"shape\": [1, 28, 28]},\n"
   "    {\"id\": \"flatten\", \"type\": \"Flatten\", \"inputs\": [\"x\"]},\n"
   "    {\"id\": \"fc1\", \"type\": \"Linear\", \"inputs\": [\"flatten\"], \"out_features\": 256},\n"
   "    {\"id\": \"relu1\", \"type\": \"ReLU\", \"inputs\": [\"fc1\"]},\n"
   "    {\"id\": \"fc2\", \"type\": \"Linear\", \"inputs\": [\"relu1\"], \"out_features\": 128},\n"
   "    {\"id\": \"relu2\", \"type\": \"ReLU\", \"inputs\": [\"fc2\"]},\n"
   "    {\"id\": \"fc3\", \"type\": \"Linear\", \"inputs\": [\"relu2\"], \"out_features\": 100},\n"
   "    {\"id\": \"relu3\", \"type\": \"ReLU\", \"inputs\": [\"fc3\"]},\n"
   "    {\"id\": \"fc4\", \"type\": \"Linear\", \"inputs\": [\"relu3\"], \"out_features\": 10},\n"
   "    {\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"fc4\"]}\n"
   "  ]\n"
   "}\n"},
  {"simple-cnn",
   "The course's SimpleCNN: three conv-BN-ReLU-maxpool blocks (32/64/128), Linear 512, dropout 0.5, Linear 10",
   "{\n"
   "  \"format\": \"backprop-lab-model\",\n"
   "  \"version\": 2,\n"
   "  \"name\": \"simple-cnn\",\n"
   "  \"description\": \"The course's SimpleCNN: three conv-BN-ReLU-maxpool blocks (32/64/128), Linear 512, dropout 0.5, Linear 10\",\n"
   "  \"nodes\": [\n"
   "    {\"id\": \"x\", \"type\": \"Input\", \"shape\": [1, 28, 28]},\n"
   "    {\"id\": \"conv1\", \"type\": \"Conv2d\", \"inputs\": [\"x\"], \"out_channels\": 32, \"kernel_size\": 3, \"padding\": 1},\n"
   "    {\"id\": \"bn1\", \"type\": \"BatchNorm2d\", \"inputs\": [\"conv1\"]},\n"
   "    {\"id\": \"relu1\", \"type\": \"ReLU\", \"inputs\": [\"bn1\"]},\n"
   "    {\"id\": \"pool1\", \"type\": \"MaxPool2d\", \"inputs\": [\"relu1\"], \"kernel_size\": 2},\n"
   "    {\"id\": \"conv2\", \"type\": \"Conv2d\", \"inputs\": [\"pool1\"], \"out_channels\": 64, \"kernel_size\": 3, \"padding\": 1},\n"
   "    {\"id\": \"bn2\", \"type\": \"BatchNorm2d\", \"inputs\": [\"conv2\"]},\n"
   "    {\"id\": \"relu2\", \"type\": \"ReLU\", \"inputs\": [\"bn2\"]},\n"
   "    {\"id\": \"pool2\", \"type\": \"MaxPool2d\", \"inputs\": [\"relu2\"], \"kernel_size\": 2},\n"
   "    {\"id\": \"conv3\", \"type\": \"Conv2d\", \"inputs\": [\"pool2\"], \"out_channels\": 128, \"kernel_size\": 3, \"padding\": 1},\n"
   "    {\"id\": \"bn3\", \"type\": \"BatchNorm2d\", \"inputs\": [\"conv3\"]},\n"
   "    {\"id\": \"relu3\", \"type\": \"ReLU\", \"inputs\": [\"bn3\"]},\n"
   "    {\"id\": \"pool3\", \"type\": \"MaxPool2d\", \"inputs\": [\"relu3\"], \"kernel_size\": 2},\n"
   "    {\"id\": \"flatten\", \"type\": \"Flatten\", \"inputs\": [\"pool3\"]},\n"
   "    {\"id\": \"fc1\", \"type\": \"Linear\", \"inputs\": [\"flatten\"], \"out_features\": 512},\n"
   "    {\"id\": \"relu4\", \"type\": \"ReLU\", \"inputs\": [\"fc1\"]},\n"
   "    {\"id\": \"dropout\", \"type\": \"Dropout\", \"inputs\": [\"relu4\"]},\n"
   "    {\"id\": \"fc2\", \"type\": \"Linear\", \"inputs\": [\"dropout\"], \"out_features\": 10},\n"
   "    {\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"fc2\"]}\n"
   "  ]\n"
   "}\n"},
  {"lenet5",
   "LeNet-5 (LeCun et al. 1998) for 28x28 images: two tanh convolution and average-pooling stages (6 and 16 channels, the first padded by 2), Linear 120-84-10",
   "{\n"
   "  \"format\": \"backprop-lab-model\",\n"
   "  \"version\": 2,\n"
   "  \"name\": \"lenet5\",\n"
   "  \"description\": \"LeNet-5 (LeCun et al. 1998) for 28x28 images: two tanh convolution and average-pooling stages (6 and 16 channels, the first padded by 2), Linear 120-84-10\",\n"
   "  \"nodes\": [\n"
   "    {\"id\": \"x\", \"type\": \"Input\", \"shape\": [1, 28, 28]},\n"
   "    {\"id\": \"conv1\", \"type\": \"Conv2d\", \"inputs\": [\"x\"], \"out_channels\": 6, \"kernel_size\": 5, \"padding\": 2},\n"
   "    {\"id\": \"tanh1\", \"type\": \"Tanh\", \"inputs\": [\"conv1\"]},\n"
   "    {\"id\": \"pool1\", \"type\": \"AvgPool2d\", \"inputs\": [\"tanh1\"], \"kernel_size\": 2},\n"
   "    {\"id\": \"conv2\", \"type\": \"Conv2d\", \"inputs\": [\"pool1\"], \"out_channels\": 16, \"kernel_size\": 5},\n"
   "    {\"id\": \"tanh2\", \"type\": \"Tanh\", \"inputs\": [\"conv2\"]},\n"
   "    {\"id\": \"pool2\", \"type\": \"AvgPool2d\", \"inputs\": [\"tanh2\"], \"kernel_size\": 2},\n"
   "    {\"id\": \"flatten\", \"type\": \"Flatten\", \"inputs\": [\"pool2\"]},\n"
   "    {\"id\": \"fc1\", \"type\": \"Linear\", \"inputs\": [\"flatten\"], \"out_features\": 120},\n"
   "    {\"id\": \"tanh3\", \"type\": \"Tanh\", \"inputs\": [\"fc1\"]},\n"
   "    {\"id\": \"fc2\", \"type\": \"Linear\", \"inputs\": [\"tanh3\"], \"out_features\": 84},\n"
   "    {\"id\": \"tanh4\", \"type\": \"Tanh\", \"inputs\": [\"fc2\"]},\n"
   "    {\"id\": \"fc3\", \"type\": \"Linear\", \"inputs\": [\"tanh4\"], \"out_features\": 10},\n"
   "    {\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"fc3\"]}\n"
   "  ]\n"
   "}\n"},
  {"small-resnet",
   "A small ResNet: a 16-channel stem and three BasicBlocks (16, 32 and 64 channels, the last two with stride 2 and a 1x1 projection) joined by residual Adds, global average pooling, Linear 10",
   "{\n"
   "  \"format\": \"backprop-lab-model\",\n"
   "  \"version\": 2,\n"
   "  \"name\": \"small-resnet\",\n"
   "  \"description\": \"A small ResNet: a 16-channel stem and three BasicBlocks (16, 32 and 64 channels, the last two with stride 2 and a 1x1 projection) joined by residual Adds, global average pooling, Linear 10\",\n"
   "  \"nodes\": [\n"
   "    {\"id\": \"x\", \"type\": \"Input\", \"shape\": [1, 28, 28]},\n"
   "    {\"id\": \"stem_conv\", \"type\": \"Conv2d\", \"inputs\": [\"x\"], \"out_channels\": 16, \"kernel_size\": 3, \"padding\": 1, \"bias\": false},\n"
   "    {\"id\": \"stem_bn\", \"type\": \"BatchNorm2d\", \"inputs\": [\"stem_conv\"]},\n"
   "    {\"id\": \"stem_relu\", \"type\": \"ReLU\", \"inputs\": [\"stem_bn\"]},\n"
   "    {\"id\": \"b1_conv1\", \"type\": \"Conv2d\", \"inputs\": [\"stem_relu\"], \"out_channels\": 16, \"kernel_size\": 3, \"padding\": 1, \"bias\": false},\n"
   "    {\"id\": \"b1_bn1\", \"type\": \"BatchNorm2d\", \"inputs\": [\"b1_conv1\"]},\n"
   "    {\"id\": \"b1_relu1\", \"type\": \"ReLU\", \"inputs\": [\"b1_bn1\"]},\n"
   "    {\"id\": \"b1_conv2\", \"type\": \"Conv2d\", \"inputs\": [\"b1_relu1\"], \"out_channels\": 16, \"kernel_size\": 3, \"padding\": 1, \"bias\": false},\n"
   "    {\"id\": \"b1_bn2\", \"type\": \"BatchNorm2d\", \"inputs\": [\"b1_conv2\"]},\n"
   "    {\"id\": \"b1_add\", \"type\": \"Add\", \"inputs\": [\"b1_bn2\", \"stem_relu\"]},\n"
   "    {\"id\": \"b1_relu2\", \"type\": \"ReLU\", \"inputs\": [\"b1_add\"]},\n"
   "    {\"id\": \"b2_conv1\", \"type\": \"Conv2d\", \"inputs\": [\"b1_relu2\"], \"out_channels\": 32, \"kernel_size\": 3, \"stride\": 2, \"padding\": 1, \"bias\": false},\n"
   "    {\"id\": \"b2_bn1\", \"type\": \"BatchNorm2d\", \"inputs\": [\"b2_conv1\"]},\n"
   "    {\"id\": \"b2_relu1\", \"type\": \"ReLU\", \"inputs\": [\"b2_bn1\"]},\n"
   "    {\"id\": \"b2_conv2\", \"type\": \"Conv2d\", \"inputs\": [\"b2_relu1\"], \"out_channels\": 32, \"kernel_size\": 3, \"padding\": 1, \"bias\": false},\n"
   "    {\"id\": \"b2_bn2\", \"type\": \"BatchNorm2d\", \"inputs\": [\"b2_conv2\"]},\n"
   "    {\"id\": \"b2_down_conv\", \"type\": \"Conv2d\", \"inputs\": [\"b1_relu2\"], \"out_channels\": 32, \"kernel_size\": 1, \"stride\": 2, \"bias\": false},\n"
   "    {\"id\": \"b2_down_bn\", \"type\": \"BatchNorm2d\", \"inputs\": [\"b2_down_conv\"]},\n"
   "    {\"id\": \"b2_add\", \"type\": \"Add\", \"inputs\": [\"b2_bn2\", \"b2_down_bn\"]},\n"
   "    {\"id\": \"b2_relu2\", \"type\": \"ReLU\", \"inputs\": [\"b2_add\"]},\n"
   "    {\"id\": \"b3_conv1\", \"type\": \"Conv2d\", \"inputs\": [\"b2_relu2\"], \"out_channels\": 64, \"kernel_size\": 3, \"stride\": 2, \"padding\": 1, \"bias\": false},\n"
   "    {\"id\": \"b3_bn1\", \"type\": \"BatchNorm2d\", \"inputs\": [\"b3_conv1\"]},\n"
   "    {\"id\": \"b3_relu1\", \"type\": \"ReLU\", \"inputs\": [\"b3_bn1\"]},\n"
   "    {\"id\": \"b3_conv2\", \"type\": \"Conv2d\", \"inputs\": [\"b3_relu1\"], \"out_channels\": 64, \"kernel_size\": 3, \"padding\": 1, \"bias\": false},\n"
   "    {\"id\": \"b3_bn2\", \"type\": \"BatchNorm2d\", \"inputs\": [\"b3_conv2\"]},\n"
   "    {\"id\": \"b3_down_conv\", \"type\": \"Conv2d\", \"inputs\": [\"b2_relu2\"], \"out_channels\": 64, \"kernel_size\": 1, \"stride\": 2, \"bias\": false},\n"
   "    {\"id\": \"b3_down_bn\", \"type\": \"BatchNorm2d\", \"inputs\": [\"b3_down_conv\"]},\n"
   "    {\"id\": \"b3_add\", \"type\": \"Add\", \"inputs\": [\"b3_bn2\", \"b3_down_bn\"]},\n"
   "    {\"id\": \"b3_relu2\", \"type\": \"ReLU\", \"inputs\": [\"b3_add\"]},\n"
   "    {\"id\": \"pool\", \"type\": \"AdaptiveAvgPool2d\", \"inputs\": [\"b3_relu2\"], \"output_size\": 1},\n"
   "    {\"id\": \"flatten\", \"type\": \"Flatten\", \"inputs\": [\"pool\"]},\n"
   "    {\"id\": \"fc\", \"type\": \"Linear\", \"inputs\": [\"flatten\"], \"out_features\": 10},\n"
   "    {\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"fc\"]}\n"
   "  ]\n"
   "}\n"},
  {"digits-mlp",
   "MLP for scikit-learn's 8x8 digits: 64 pixels, 128 ReLU units, 10 classes",
   "{\n"
   "  \"format\": \"backprop-lab-model\",\n"
   "  \"version\": 2,\n"
   "  \"name\": \"digits-mlp\",\n"
   "  \"description\": \"MLP for scikit-learn's 8x8 digits: 64 pixels, 128 ReLU units, 10 classes\",\n"
   "  \"nodes\": [\n"
   "    {\"id\": \"x\", \"type\": \"Input\", \"shape\": [1, 8, 8]},\n"
   "    {\"id\": \"flatten\", \"type\": \"Flatten\", \"inputs\": [\"x\"]},\n"
   "    {\"id\": \"fc1\", \"type\": \"Linear\", \"inputs\": [\"flatten\"], \"out_features\": 128},\n"
   "    {\"id\": \"relu1\", \"type\": \"ReLU\", \"inputs\": [\"fc1\"]},\n"
   "    {\"id\": \"fc2\", \"type\": \"Linear\", \"inputs\": [\"relu1\"], \"out_features\": 10},\n"
   "    {\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"fc2\"]}\n"
   "  ]\n"
   "}\n"},
  {"plane-mlp",
   "MLP for points of the plane (two-spirals, moons): 2-32-32-2 with ReLU",
   "{\n"
   "  \"format\": \"backprop-lab-model\",\n"
   "  \"version\": 2,\n"
   "  \"name\": \"plane-mlp\",\n"
   "  \"description\": \"MLP for points of the plane (two-spirals, moons): 2-32-32-2 with ReLU\",\n"
   "  \"nodes\": [\n"
   "    {\"id\": \"x\", \"type\": \"Input\", \"shape\": [2]},\n"
   "    {\"id\": \"fc1\", \"type\": \"Linear\", \"inputs\": [\"x\"], \"out_features\": 32},\n"
   "    {\"id\": \"relu1\", \"type\": \"ReLU\", \"inputs\": [\"fc1\"]},\n"
   "    {\"id\": \"fc2\", \"type\": \"Linear\", \"inputs\": [\"relu1\"], \"out_features\": 32},\n"
   "    {\"id\": \"relu2\", \"type\": \"ReLU\", \"inputs\": [\"fc2\"]},\n"
   "    {\"id\": \"fc3\", \"type\": \"Linear\", \"inputs\": [\"relu2\"], \"out_features\": 2},\n"
   "    {\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"fc3\"]}\n"
   "  ]\n"
   "}\n"},
  {"bilstm",
   "The course's bidirectional LSTM classifier: a Fashion-MNIST image read as 28 rows of 28 pixels, two bidirectional LSTM layers of 128, the last step's output, Linear 10",
   "{\n"
   "  \"format\": \"backprop-lab-model\",\n"
   "  \"version\": 2,\n"
   "  \"name\": \"bilstm\",\n"
   "  \"description\": \"The course's bidirectional LSTM classifier: a Fashion-MNIST image read as 28 rows of 28 pixels, two bidirectional LSTM layers of 128, the last step's output, Linear 10\",\n"
   "  \"nodes\": [\n"
   "    {\"id\": \"x\", \"type\": \"Input\", \"shape\": [28, 28]},\n"
   "    {\"id\": \"lstm\", \"type\": \"LSTM\", \"inputs\": [\"x\"], \"hidden_size\": 128, \"num_layers\": 2, \"bidirectional\": true},\n"
   "    {\"id\": \"last\", \"type\": \"SequencePool\", \"inputs\": [\"lstm\"]},\n"
   "    {\"id\": \"fc\", \"type\": \"Linear\", \"inputs\": [\"last\"], \"out_features\": 10},\n"
   "    {\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"fc\"]}\n"
   "  ]\n"
   "}\n"},
  {"gru",
   "A GRU classifier: a Fashion-MNIST image read as 28 rows of 28 pixels, two GRU layers of 128, the last step's output, Linear 10",
   "{\n"
   "  \"format\": \"backprop-lab-model\",\n"
   "  \"version\": 2,\n"
   "  \"name\": \"gru\",\n"
   "  \"description\": \"A GRU classifier: a Fashion-MNIST image read as 28 rows of 28 pixels, two GRU layers of 128, the last step's output, Linear 10\",\n"
   "  \"nodes\": [\n"
   "    {\"id\": \"x\", \"type\": \"Input\", \"shape\": [28, 28]},\n"
   "    {\"id\": \"gru\", \"type\": \"GRU\", \"inputs\": [\"x\"], \"hidden_size\": 128, \"num_layers\": 2},\n"
   "    {\"id\": \"last\", \"type\": \"SequencePool\", \"inputs\": [\"gru\"]},\n"
   "    {\"id\": \"fc\", \"type\": \"Linear\", \"inputs\": [\"last\"], \"out_features\": 10},\n"
   "    {\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"fc\"]}\n"
   "  ]\n"
   "}\n"},
  {"transformer-classifier",
   "A Transformer encoder classifier: the 28 rows of a Fashion-MNIST image as tokens, Linear 64, learned positions, two pre-norm encoder layers (4 heads, GELU), the mean over rows, Linear 10",
   "{\n"
   "  \"format\": \"backprop-lab-model\",\n"
   "  \"version\": 2,\n"
   "  \"name\": \"transformer-classifier\",\n"
   "  \"description\": \"A Transformer encoder classifier: the 28 rows of a Fashion-MNIST image as tokens, Linear 64, learned positions, two pre-norm encoder layers (4 heads, GELU), the mean over rows, Linear 10\",\n"
   "  \"nodes\": [\n"
   "    {\"id\": \"x\", \"type\": \"Input\", \"shape\": [28, 28]},\n"
   "    {\"id\": \"embed\", \"type\": \"Linear\", \"inputs\": [\"x\"], \"out_features\": 64},\n"
   "    {\"id\": \"pos\", \"type\": \"PositionalEncoding\", \"inputs\": [\"embed\"], \"encoding\": \"learned\", \"max_len\": 28},\n"
   "    {\"id\": \"enc1\", \"type\": \"TransformerEncoderLayer\", \"inputs\": [\"pos\"], \"nhead\": 4, \"dim_feedforward\": 128, \"activation\": \"gelu\", \"norm_first\": true},\n"
   "    {\"id\": \"enc2\", \"type\": \"TransformerEncoderLayer\", \"inputs\": [\"enc1\"], \"nhead\": 4, \"dim_feedforward\": 128, \"activation\": \"gelu\", \"norm_first\": true},\n"
   "    {\"id\": \"norm\", \"type\": \"LayerNorm\", \"inputs\": [\"enc2\"]},\n"
   "    {\"id\": \"mean\", \"type\": \"SequencePool\", \"inputs\": [\"norm\"], \"mode\": \"mean\"},\n"
   "    {\"id\": \"fc\", \"type\": \"Linear\", \"inputs\": [\"mean\"], \"out_features\": 10},\n"
   "    {\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"fc\"]}\n"
   "  ]\n"
   "}\n"},
  {"char-gpt",
   "A character-level GPT (the size of nanoGPT's shakespeare_char): 6 pre-norm causal Transformer blocks of 384 with 6 heads, context 256, dropout 0.2, learned positions, the output layer tied to the token embedding; vocab_size is set from the corpus",
   "{\n"
   "  \"format\": \"backprop-lab-model\",\n"
   "  \"version\": 2,\n"
   "  \"name\": \"char-gpt\",\n"
   "  \"description\": \"A character-level GPT (the size of nanoGPT's shakespeare_char): 6 pre-norm causal Transformer blocks of 384 with 6 heads, context 256, dropout 0.2, learned positions, the output layer tied to the token embedding; vocab_size is set from the corpus\",\n"
   "  \"nodes\": [\n"
   "    {\"id\": \"x\", \"type\": \"Input\", \"shape\": [256], \"vocab_size\": 65},\n"
   "    {\"id\": \"tok\", \"type\": \"Embedding\", \"inputs\": [\"x\"], \"embedding_dim\": 384, \"init_std\": 0.02},\n"
   "    {\"id\": \"pos\", \"type\": \"PositionalEncoding\", \"inputs\": [\"tok\"], \"encoding\": \"learned\", \"max_len\": 256, \"dropout\": 0.2},\n"
   "    {\"id\": \"block1\", \"type\": \"TransformerEncoderLayer\", \"inputs\": [\"pos\"], \"nhead\": 6, \"dim_feedforward\": 1536, \"dropout\": 0.2, \"activation\": \"gelu\", \"norm_first\": true, \"causal\": true},\n"
   "    {\"id\": \"block2\", \"type\": \"TransformerEncoderLayer\", \"inputs\": [\"block1\"], \"nhead\": 6, \"dim_feedforward\": 1536, \"dropout\": 0.2, \"activation\": \"gelu\", \"norm_first\": true, \"causal\": true},\n"
   "    {\"id\": \"block3\", \"type\": \"TransformerEncoderLayer\", \"inputs\": [\"block2\"], \"nhead\": 6, \"dim_feedforward\": 1536, \"dropout\": 0.2, \"activation\": \"gelu\", \"norm_first\": true, \"causal\": true},\n"
   "    {\"id\": \"block4\", \"type\": \"TransformerEncoderLayer\", \"inputs\": [\"block3\"], \"nhead\": 6, \"dim_feedforward\": 1536, \"dropout\": 0.2, \"activation\": \"gelu\", \"norm_first\": true, \"causal\": true},\n"
   "    {\"id\": \"block5\", \"type\": \"TransformerEncoderLayer\", \"inputs\": [\"block4\"], \"nhead\": 6, \"dim_feedforward\": 1536, \"dropout\": 0.2, \"activation\": \"gelu\", \"norm_first\": true, \"causal\": true},\n"
   "    {\"id\": \"block6\", \"type\": \"TransformerEncoderLayer\", \"inputs\": [\"block5\"], \"nhead\": 6, \"dim_feedforward\": 1536, \"dropout\": 0.2, \"activation\": \"gelu\", \"norm_first\": true, \"causal\": true},\n"
   "    {\"id\": \"ln_f\", \"type\": \"LayerNorm\", \"inputs\": [\"block6\"]},\n"
   "    {\"id\": \"head\", \"type\": \"Linear\", \"inputs\": [\"ln_f\"], \"bias\": false, \"tied_to\": \"tok\"},\n"
   "    {\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"head\"]}\n"
   "  ]\n"
   "}\n"},
  {"char-gpt-tiny",
   "A small character-level GPT for the CPU: 2 pre-norm causal Transformer blocks of 64 with 2 heads, context 64, learned positions, the output layer tied to the token embedding; vocab_size is set from the corpus",
   "{\n"
   "  \"format\": \"backprop-lab-model\",\n"
   "  \"version\": 2,\n"
   "  \"name\": \"char-gpt-tiny\",\n"
   "  \"description\": \"A small character-level GPT for the CPU: 2 pre-norm causal Transformer blocks of 64 with 2 heads, context 64, learned positions, the output layer tied to the token embedding; vocab_size is set from the corpus\",\n"
   "  \"nodes\": [\n"
   "    {\"id\": \"x\", \"type\": \"Input\", \"shape\": [64], \"vocab_size\": 65},\n"
   "    {\"id\": \"tok\", \"type\": \"Embedding\", \"inputs\": [\"x\"], \"embedding_dim\": 64, \"init_std\": 0.02},\n"
   "    {\"id\": \"pos\", \"type\": \"PositionalEncoding\", \"inputs\": [\"tok\"], \"encoding\": \"learned\", \"max_len\": 64},\n"
   "    {\"id\": \"block1\", \"type\": \"TransformerEncoderLayer\", \"inputs\": [\"pos\"], \"nhead\": 2, \"dim_feedforward\": 256, \"dropout\": 0, \"activation\": \"gelu\", \"norm_first\": true, \"causal\": true},\n"
   "    {\"id\": \"block2\", \"type\": \"TransformerEncoderLayer\", \"inputs\": [\"block1\"], \"nhead\": 2, \"dim_feedforward\": 256, \"dropout\": 0, \"activation\": \"gelu\", \"norm_first\": true, \"causal\": true},\n"
   "    {\"id\": \"ln_f\", \"type\": \"LayerNorm\", \"inputs\": [\"block2\"]},\n"
   "    {\"id\": \"head\", \"type\": \"Linear\", \"inputs\": [\"ln_f\"], \"bias\": false, \"tied_to\": \"tok\"},\n"
   "    {\"id\": \"output\", \"type\": \"Output\", \"inputs\": [\"head\"]}\n"
   "  ]\n"
   "}\n"},
};

const BpPreset *
bp_presets (int *n)
{
  *n = G_N_ELEMENTS (presets);
  return presets;
}

const BpPreset *
bp_preset_find (const char *name)
{
  for (gsize k = 0; k < G_N_ELEMENTS (presets); k++)
    if (g_strcmp0 (presets[k].name, name) == 0)
      return &presets[k];
  return NULL;
}
