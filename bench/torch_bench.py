#!/usr/bin/env python3
# torch_bench.py: the PyTorch side of `bench/run`: the same presets, batches and optimizer as
# `backprop bench`, timed the same way (images per second over the timed steps).
import argparse
import gzip
import json
import math
import time

import numpy as np
import torch
from torch import nn

MEAN, STD = 0.2860, 0.3530


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1, self.relu1 = nn.Linear(784, 256), nn.ReLU()
        self.fc2, self.relu2 = nn.Linear(256, 128), nn.ReLU()
        self.fc3, self.relu3 = nn.Linear(128, 100), nn.ReLU()
        self.fc4 = nn.Linear(100, 10)

    def forward(self, x):
        x = self.relu1(self.fc1(self.flatten(x)))
        x = self.relu2(self.fc2(x))
        x = self.relu3(self.fc3(x))
        return self.fc4(x)


class SimpleCNN(nn.Module):
    def __init__(self):
        super().__init__()
        for i, (cin, cout) in enumerate([(1, 32), (32, 64), (64, 128)], 1):
            setattr(self, f"conv{i}", nn.Conv2d(cin, cout, 3, padding=1))
            setattr(self, f"bn{i}", nn.BatchNorm2d(cout))
            setattr(self, f"relu{i}", nn.ReLU())
            setattr(self, f"pool{i}", nn.MaxPool2d(2))
        self.flatten = nn.Flatten()
        self.fc1, self.relu4 = nn.Linear(128 * 3 * 3, 512), nn.ReLU()
        self.dropout = nn.Dropout(0.5)
        self.fc2 = nn.Linear(512, 10)

    def forward(self, x):
        for i in range(1, 4):
            x = getattr(self, f"pool{i}")(getattr(self, f"relu{i}")(
                getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x))))
        x = self.dropout(self.relu4(self.fc1(self.flatten(x))))
        return self.fc2(x)


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.tanh1, self.pool1 = nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2)
        self.conv2, self.tanh2, self.pool2 = nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1, self.tanh3 = nn.Linear(16 * 5 * 5, 120), nn.Tanh()
        self.fc2, self.tanh4 = nn.Linear(120, 84), nn.Tanh()
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool1(self.tanh1(self.conv1(x)))
        x = self.pool2(self.tanh2(self.conv2(x)))
        x = self.tanh3(self.fc1(self.flatten(x)))
        return self.fc3(self.tanh4(self.fc2(x)))


class SmallResNet(nn.Module):
    """A 16-channel stem and three BasicBlocks (16, 32 and 64 channels) with residual adds;
    attribute names b<k>_conv1 ... follow the preset's node ids."""

    def __init__(self):
        super().__init__()
        self.stem_conv = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.stem_bn, self.stem_relu = nn.BatchNorm2d(16), nn.ReLU()
        cin = 16
        for b, (cout, stride) in enumerate([(16, 1), (32, 2), (64, 2)], 1):
            setattr(self, f"b{b}_conv1", nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False))
            setattr(self, f"b{b}_bn1", nn.BatchNorm2d(cout))
            setattr(self, f"b{b}_relu1", nn.ReLU())
            setattr(self, f"b{b}_conv2", nn.Conv2d(cout, cout, 3, padding=1, bias=False))
            setattr(self, f"b{b}_bn2", nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout:
                setattr(self, f"b{b}_down_conv", nn.Conv2d(cin, cout, 1, stride=stride, bias=False))
                setattr(self, f"b{b}_down_bn", nn.BatchNorm2d(cout))
            setattr(self, f"b{b}_relu2", nn.ReLU())
            cin = cout
        self.pool, self.flatten = nn.AdaptiveAvgPool2d(1), nn.Flatten()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.stem_relu(self.stem_bn(self.stem_conv(x)))
        for b in range(1, 4):
            m = lambda name: getattr(self, f"b{b}_{name}")
            y = m("bn2")(m("conv2")(m("relu1")(m("bn1")(m("conv1")(x)))))
            if hasattr(self, f"b{b}_down_conv"):
                x = m("down_bn")(m("down_conv")(x))
            x = m("relu2")(y + x)
        return self.fc(self.flatten(self.pool(x)))


class RowsLSTM(nn.Module):
    """The course's bidirectional LSTM classifier: 28 rows of 28 pixels, two bidirectional
    layers of 128, the last step's output, Linear 10 (preset "bilstm")."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(28, 128, num_layers=2, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(256, 10)

    def forward(self, x):
        out, _ = self.lstm(x.reshape(-1, 28, 28))
        return self.fc(out[:, -1])


class RowsGRU(nn.Module):
    """Two GRU layers of 128 over the 28 rows, the last step's output, Linear 10 ("gru")."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(28, 128, num_layers=2, batch_first=True)
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        out, _ = self.gru(x.reshape(-1, 28, 28))
        return self.fc(out[:, -1])


class LearnedPositions(nn.Module):
    """Learned position vectors added to a (N, T, E) batch (the preset's PositionalEncoding)."""

    def __init__(self, max_len, d_model, dropout=0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(max_len, d_model) * 0.02)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(x + self.weight[: x.shape[1]])


def causal_mask(t, device=None):
    return torch.triu(torch.full((t, t), float("-inf"), device=device), 1)


class RowsTransformer(nn.Module):
    """The rows as tokens: Linear 64, learned positions, two pre-norm encoder layers (4 heads,
    GELU, feed-forward 128), LayerNorm, the mean over rows, Linear 10 ("transformer-classifier")."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(28, 64)
        self.pos = LearnedPositions(28, 64)
        for i in (1, 2):
            setattr(self, f"enc{i}", nn.TransformerEncoderLayer(
                64, 4, dim_feedforward=128, activation="gelu", batch_first=True, norm_first=True))
        self.norm = nn.LayerNorm(64)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        h = self.pos(self.embed(x.reshape(-1, 28, 28)))
        h = self.norm(self.enc2(self.enc1(h)))
        return self.fc(h.mean(dim=1))


class CharGPT(nn.Module):
    """nanoGPT-style character model: token embedding, learned positions, pre-norm causal
    blocks (GELU, 4x feed-forward), final LayerNorm, output tied to the embedding ("char-gpt",
    "char-gpt-tiny"). Attribute names are the presets' node ids."""

    def __init__(self, vocab=65, context=256, width=384, heads=6, layers=6, dropout=0.2):
        super().__init__()
        self.tok = nn.Embedding(vocab, width)
        nn.init.normal_(self.tok.weight, std=0.02)
        self.pos = LearnedPositions(context, width, dropout)
        self.n_layers = layers
        for i in range(1, layers + 1):
            setattr(self, f"block{i}", nn.TransformerEncoderLayer(
                width, heads, dim_feedforward=4 * width, dropout=dropout, activation="gelu",
                batch_first=True, norm_first=True))
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.tok.weight

    def forward(self, idx):
        h = self.pos(self.tok(idx.long()))
        mask = causal_mask(idx.shape[1], idx.device).to(h.dtype)
        for i in range(1, self.n_layers + 1):
            h = getattr(self, f"block{i}")(h, src_mask=mask)
        return self.head(self.ln_f(h))


class DigitsMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1, self.relu1 = nn.Linear(64, 128), nn.ReLU()
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        return self.fc2(self.relu1(self.fc1(self.flatten(x))))


class PlaneMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.relu1 = nn.Linear(2, 32), nn.ReLU()
        self.fc2, self.relu2 = nn.Linear(32, 32), nn.ReLU()
        self.fc3 = nn.Linear(32, 2)

    def forward(self, x):
        return self.fc3(self.relu2(self.fc2(self.relu1(self.fc1(x)))))


# The PyTorch twins of the engine's presets (engine/spec/bp-presets.c), written by hand: their
# attribute names are the presets' node ids, so state_dict names and the parameters () order
# equal the engine's (tests/test-nn.c and tests/test-spec.c check both).
TWINS = {"mlp": MLP, "simple-cnn": SimpleCNN, "lenet5": LeNet5, "small-resnet": SmallResNet,
         "digits-mlp": DigitsMLP, "plane-mlp": PlaneMLP,
         "bilstm": RowsLSTM, "gru": RowsGRU, "transformer-classifier": RowsTransformer,
         "char-gpt": CharGPT,
         "char-gpt-tiny": lambda: CharGPT(context=64, width=64, heads=2, layers=2, dropout=0.0)}


def model(name):
    if name not in TWINS:
        raise SystemExit(f"unknown model {name}")
    return TWINS[name]()


def load(datasets, n):
    base = f"{datasets}/fashion-mnist/train-"
    with gzip.open(base + "images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16)[: n * 784]
    with gzip.open(base + "labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)[:n]
    x = (x.astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(x.reshape(-1, 1, 28, 28).copy()), torch.from_numpy(y.astype(np.int64))


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="simple-cnn")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--datasets", default="/usr/share/datasets")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    n = min(60000, a.batch_size * (a.steps + a.warmup))
    x, y = load(a.datasets, n)
    nb = n // a.batch_size
    m = model(a.model)
    m.train()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    t0 = 0.0
    for s in range(a.steps + a.warmup):
        if s == a.warmup:
            t0 = time.perf_counter()
        b = s % nb
        xb = x[b * a.batch_size:(b + 1) * a.batch_size]
        yb = y[b * a.batch_size:(b + 1) * a.batch_size]
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(m(xb), yb)
        loss.backward()
        opt.step()
    secs = time.perf_counter() - t0
    print(json.dumps({"engine": "pytorch", "version": torch.__version__, "model": a.model,
                      "batch_size": a.batch_size, "threads": torch.get_num_threads(),
                      "steps": a.steps, "images_per_second": round(a.steps * a.batch_size / secs, 1),
                      "last_loss": round(loss.item(), 5)}))


if __name__ == "__main__":
    main()
