#!/usr/bin/env python3
# torch_bench.py: the PyTorch side of `bench/run` and `bench/gpu`: the same presets, batches and
# optimizer as `backprop bench`, timed the same way (images per second over the timed steps).
# On the GPU (--device cuda) the data set is uploaded once and the batches are sliced there, as
# the engine's trainer keeps it resident; --compile runs the model through torch.compile
# (PyTorch 2.x), --amp bf16 under torch.autocast, and TF32 is on like the engine's default.
import argparse
import contextlib
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


COMPILE_MODES = ("none", "default", "max-autotune", "reduce-overhead")


def set_tf32(on):
    """TF32 for float32 matrix products and convolutions on the GPU (the engine's default;
    BP_CUDA_TF32=0 turns it off there, --no-tf32 here). PyTorch 2.9 and newer have the
    fp32_precision settings and refuse a mix of them with the older allow_tf32 flags (and
    set_float32_matmul_precision), so only one of the two kinds is used."""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    try:
        new_api = matmul.fp32_precision is not None
    except (AttributeError, AssertionError):  # PyTorch before 2.9 asserts on unknown names
        new_api = False
    if new_api:
        p = "tf32" if on else "ieee"
        matmul.fp32_precision = p
        # the cuDNN setting does not reach conv and rnn by itself: all three, kept equal
        for b in (cudnn, getattr(cudnn, "conv", None), getattr(cudnn, "rnn", None)):
            if b is not None and hasattr(b, "fp32_precision"):
                b.fp32_precision = p
    else:
        matmul.allow_tf32 = on
        cudnn.allow_tf32 = on


def make_step(net, opt, loss_fn, amp, scope, mode, set_to_none):
    """One training step (zero_grad, forward and loss, backward, Adam) as a function of the
    batch; with scope "step" the whole function goes through torch.compile."""
    amp_ctx = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp == "bf16" \
        else contextlib.nullcontext

    def step(xb, yb):
        opt.zero_grad(set_to_none=set_to_none)
        with amp_ctx():
            loss = loss_fn(net(xb), yb)
        loss.backward()
        opt.step()
        return loss

    if scope == "step" and mode != "none":
        return torch.compile(step, mode=None if mode == "default" else mode)
    return step


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="simple-cnn")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=1,
                   help="timed stretches of --steps steps in this one run, the best reported")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--datasets", default="/usr/share/datasets")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--compile", choices=COMPILE_MODES, default="none",
                   help="torch.compile mode (PyTorch 2.x); none: eager")
    p.add_argument("--compile-scope", choices=("model", "step"), default="model",
                   help="compile the model (forward and backward; the default) or the whole "
                        "step function (zero_grad, forward, backward and optimizer)")
    p.add_argument("--amp", choices=("none", "bf16"), default="none",
                   help="bf16: forward and loss under torch.autocast(bfloat16) (GPU only)")
    p.add_argument("--no-tf32", action="store_true",
                   help="float32 matrix products and convolutions without TF32 (GPU)")
    p.add_argument("--adam", choices=("default", "fused"), default=None,
                   help="Adam implementation: PyTorch's default (foreach on the GPU) or "
                        "fused=True; default: fused on the GPU, default on the CPU")
    a = p.parse_args()
    cuda = a.device == "cuda"
    if a.compile != "none" and not hasattr(torch, "compile"):
        raise SystemExit(f"torch_bench.py: --compile {a.compile} needs PyTorch 2.0 or newer "
                         f"(torch.compile); this is PyTorch {torch.__version__}")
    if cuda and not torch.cuda.is_available():
        raise SystemExit(f"torch_bench.py: --device cuda: PyTorch {torch.__version__} sees no "
                         "usable CUDA device")
    if a.amp != "none" and not cuda:
        raise SystemExit("torch_bench.py: --amp bf16 is for --device cuda")
    adam = a.adam or ("fused" if cuda else "default")
    if adam == "fused" and not cuda:
        raise SystemExit("torch_bench.py: --adam fused is for --device cuda")
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    if cuda:
        set_tf32(not a.no_tf32)
    if a.steps < 1 or a.warmup < 0 or a.repeats < 1:
        raise SystemExit("torch_bench.py: --steps and --repeats must be at least 1, --warmup 0")
    total = a.warmup + a.repeats * a.steps
    n = min(60000, a.batch_size * total)
    x, y = load(a.datasets, n)
    nb = n // a.batch_size
    if nb < 1:
        raise SystemExit("torch_bench.py: --batch-size must be at most 60000")
    dev = torch.device(a.device)
    x, y = x.to(dev), y.to(dev)  # once: batches are slices of the resident data
    m = model(a.model).to(dev)
    m.train()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3, **({"fused": True} if adam == "fused" else {}))
    loss_fn = nn.CrossEntropyLoss()
    mode = None if a.compile == "default" else a.compile
    net = torch.compile(m, mode=mode) if a.compile != "none" and a.compile_scope == "model" else m
    # the CPU keeps the gradients' memory as bench/run always measured it; the GPU frees them
    # (PyTorch's default), which CUDA graphs (reduce-overhead) need
    step = make_step(net, opt, loss_fn, a.amp, a.compile_scope, a.compile, set_to_none=cuda)
    # both modes replay CUDA graphs on the GPU (max-autotune too): a new step, whose outputs may
    # overwrite the last one's
    mark = (torch.compiler.cudagraph_mark_step_begin
            if cuda and a.compile in ("reduce-overhead", "max-autotune") else None)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    sync()
    t_warm = time.perf_counter()
    marks = []  # the times of the stretch boundaries, synchronised on the GPU
    for s in range(total + 1):
        if s >= a.warmup and (s - a.warmup) % a.steps == 0:
            sync()
            marks.append(time.perf_counter())
        if s == total:
            break
        b = s % nb
        xb = x[b * a.batch_size:(b + 1) * a.batch_size]
        yb = y[b * a.batch_size:(b + 1) * a.batch_size]
        if mark:
            mark()
        loss = step(xb, yb)
    secs = min(t1 - t0 for t0, t1 in zip(marks, marks[1:]))
    out = {"engine": "pytorch", "version": torch.__version__, "model": a.model,
           "batch_size": a.batch_size, "threads": torch.get_num_threads(),
           "steps": a.steps, "repeats": a.repeats,
           "images_per_second": round(a.steps * a.batch_size / secs, 1),
           "last_loss": round(loss.item(), 5), "device": a.device, "compile": a.compile,
           "amp": a.amp}
    if cuda or a.compile != "none":
        # the warm-up steps: compilation, autotuning, CUDA graph recording
        out["compile_seconds"] = round(marks[0] - t_warm, 2)
    if a.compile != "none":
        out["compile_scope"] = a.compile_scope
    if cuda:
        out.update({"tf32": not a.no_tf32, "adam": adam, "gpu": torch.cuda.get_device_name()})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
