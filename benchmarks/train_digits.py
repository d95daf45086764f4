"""Train an MLP on scikit-learn's 8×8 digits end to end and print wall time and test accuracy.

Model: ``nn.MLP([64, 128, 10], normalization="batch")`` (Linear → BatchNorm1d → ReLU → Linear),
AdamW (lr 1e-2, PyTorch's default weight decay 1e-2) with cosine annealing over 20 epochs,
batch 64, seeded.  Target: test accuracy >= 97 % in < 30 s on 2 CPU cores.
Run: ``python benchmarks/train_digits.py [--epochs 20] [--seed 0] [--blas-threads N]``.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import _setup  # noqa: E402,F401  (repo on sys.path, backend, --blas-threads: before numpy)

import numpy as np  # noqa: E402

import dlkit  # noqa: E402
from dlkit import data, nn, optim  # noqa: E402
from dlkit.train import evaluate, fit  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--blas-threads", type=int, default=None)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()

    start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    (X, y), (Xt, yt) = data.load_digits("train"), data.load_digits("test")
    model = nn.MLP([64, 128, 10], normalization="batch", generator=rng)
    opt = optim.AdamW(model.parameters(), lr=1e-2)
    train_loader = data.DataLoader(data.TensorDataset(X, y), batch_size=64, shuffle=True, generator=rng)
    test_loader = data.DataLoader(data.TensorDataset(Xt, yt), batch_size=512)
    fit(model, nn.CrossEntropyLoss(), opt, train_loader, epochs=args.epochs,
        scheduler=optim.CosineAnnealingLR(opt, T_max=args.epochs), progress=args.progress)
    result = evaluate(model, test_loader, nn.CrossEntropyLoss())
    wall = time.perf_counter() - start

    print(f"digits MLP 64-128-10 + BatchNorm, AdamW, {args.epochs} epochs, seed {args.seed}, "
          f"{len(y)} train / {len(yt)} test")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}, "
          f"BLAS threads {os.environ.get('OPENBLAS_NUM_THREADS', 'default')}, backend {dlkit.get_backend().name}")
    print(f"  wall time      {wall:6.2f} s   (target < 30 s, data loading included)")
    print(f"  test accuracy  {result['accuracy'] * 100:6.2f} %  (target >= 97 %)")
    print(f"  test loss      {result['loss']:.4f}")
    return 0 if result["accuracy"] >= 0.97 else 1


if __name__ == "__main__":
    raise SystemExit(main())
