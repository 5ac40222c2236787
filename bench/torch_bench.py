#!/usr/bin/env python3
# torch_bench.py: the PyTorch side of `bench/run`: the same presets, batches and optimizer as
# `backprop bench`, timed the same way (images per second over the timed steps).
import argparse
import gzip
import json
import time

import numpy as np
import torch
from torch import nn

MEAN, STD = 0.2860, 0.3530


def model(name):
    if name == "mlp":
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 256), nn.ReLU(),
            nn.Linear(256, 128), nn.ReLU(),
            nn.Linear(128, 100), nn.ReLU(),
            nn.Linear(100, 10))
    if name == "simple-cnn":
        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                    nn.MaxPool2d(2)]
        return nn.Sequential(
            *block(1, 32), *block(32, 64), *block(64, 128),
            nn.Flatten(),
            nn.Linear(128 * 3 * 3, 512), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(512, 10))
    raise SystemExit(f"unknown model {name}")


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
