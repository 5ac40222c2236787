/* bp-presets.c: the built-in model presets as canonical spec JSON (doc/model-spec.md). */
#include "bp-spec.h"

/* Each text is what bp_spec_to_json writes for it (tests/test-spec.c checks), so a preset
 * saved by the builder is byte-for-byte the preset. The course's bidirectional LSTM and
 * Transformer encoder classifiers join once LSTM and MultiheadAttention layers exist. */
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
