"""One full training step: dlkit vs hand-written numpy.

Step = forward + mean softmax cross-entropy + backward + Adam update, for an MLP
784-256-128-10 (ReLU, biases) on a batch of 128, float32:

* dlkit:  ``nn.MLP`` + ``nn.CrossEntropyLoss`` + ``loss.backward()`` + ``optim.Adam.step()`` with
          ``opt.fused = True`` (the backend's in-place ``adam_step``, the library's fast path;
          ``--readable`` times the readable Tensor-arithmetic step students write instead);
* numpy:  the same arithmetic written out by hand (G_i recursion, PyTorch's Adam in place).

PyTorch is compared in ``vs_torch.py`` (its default and fused Adam, each library in its own
process when BLAS uses more than one thread): timed in this process beside numpy, torch's idle
OpenMP threads spin on the cores numpy's BLAS needs.

The variants are timed interleaved (warm-up, then alternating repeats) and medians compared,
by default in 8 fresh child processes with differently padded environments and alternating
variant order (see _layouts.py): the headline is the median over layouts of dlkit / numpy.
Run: ``python benchmarks/train_step.py [--repeats 200] [--blas-threads N] [--layouts K]``
(``--blas-threads 1`` pins BLAS to one thread: steadier figures on a busy machine;
``--layouts 1``: one in-process run, as before).
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time

import _setup  # noqa: E402,F401  (repo on sys.path, backend, --blas-threads: before numpy)
import _layouts  # noqa: E402  (fresh child processes with differently padded environments)

import numpy as np  # noqa: E402

import dlkit  # noqa: E402
from dlkit import nn, optim  # noqa: E402

WIDTHS = (784, 256, 128, 10)
BATCH = 128
LR, BETA1, BETA2, EPS = 1e-3, 0.9, 0.999, 1e-8


class NumpyMLP:
    """The same MLP and Adam, by hand: parameters and moments are float32 ndarrays."""

    def __init__(self, Ws: list[np.ndarray], bs: list[np.ndarray]) -> None:
        self.params = [a.copy() for pair in zip(Ws, bs) for a in pair]   # W1, b1, W2, b2, ...
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0

    def step(self, X: np.ndarray, y: np.ndarray) -> float:
        Ws, bs = self.params[0::2], self.params[1::2]
        Z, L = [X], len(Ws)
        for i in range(L):                                    # forward
            H = Z[-1] @ Ws[i] + bs[i]
            Z.append(np.maximum(H, 0) if i < L - 1 else H)
        logits, m = Z[-1], X.shape[0]
        rows = np.arange(m)
        shifted = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        s = e.sum(axis=1, keepdims=True)
        loss = float(np.log(s).sum() - shifted[rows, y].sum()) / m
        G = e / s                                             # (softmax − onehot)/m
        G[rows, y] -= 1
        G *= 1.0 / m
        grads: list[np.ndarray] = [None] * (2 * L)            # type: ignore[list-item]
        for i in reversed(range(L)):                          # backward: the G_i recursion
            grads[2 * i] = Z[i].T @ G
            grads[2 * i + 1] = G.sum(axis=0)
            if i:
                G = (G @ Ws[i].T) * (Z[i] > 0)
        self.t += 1                                           # PyTorch's Adam, in place
        c1, c2 = 1 - BETA1**self.t, math.sqrt(1 - BETA2**self.t)
        for p, g, m1, v1 in zip(self.params, grads, self.m, self.v):
            m1 *= BETA1
            m1 += (1 - BETA1) * g
            v1 *= BETA2
            v1 += (1 - BETA2) * np.square(g)
            denom = np.sqrt(v1)
            denom /= c2
            denom += EPS
            update = np.divide(m1, denom, out=denom)
            update *= LR / c1
            p -= update
        return loss


def make_problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.random((BATCH, WIDTHS[0]), dtype=np.float32)
    y = rng.integers(0, WIDTHS[-1], size=BATCH)
    model = nn.MLP(list(WIDTHS), generator=rng)
    return X, y, model


def dlkit_stepper(X: np.ndarray, y: np.ndarray, model: nn.Module, fused: bool = True):
    opt = optim.Adam(model.parameters(), lr=LR, betas=(BETA1, BETA2), eps=EPS)
    opt.fused = fused
    loss_fn = nn.CrossEntropyLoss()
    Xt, yt = dlkit.tensor(X), dlkit.tensor(y, dtype="int64")

    def step() -> float:
        loss = loss_fn(model(Xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.item())

    return step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--blas-threads", type=int, default=None)
    parser.add_argument("--readable", action="store_true",
                        help="time dlkit's readable Adam step instead of its fused one")
    _layouts.add_argument(parser)
    args = parser.parse_args()

    child = _layouts.child_index()
    if child is None:
        print(f"training step: MLP {'-'.join(map(str, WIDTHS))}, batch {BATCH}, float32, "
              f"dlkit Adam {'readable' if args.readable else 'fused'} (median of {args.repeats}, interleaved)")
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores "
              f"(load average {os.getloadavg()[0]:.1f}), numpy {np.__version__}, "
              f"BLAS threads {os.environ.get('OPENBLAS_NUM_THREADS', 'default')}, "
              f"backend {dlkit.get_backend().name}")
        if args.layouts > 1:
            _layouts.run(args.layouts, "numpy (by hand)", "dlkit", target=1.2)
            return 0

    X, y, model = make_problem()
    numpy_model = NumpyMLP([m.weight.numpy() for m in model if isinstance(m, nn.Linear)],
                           [m.bias.numpy() for m in model if isinstance(m, nn.Linear)])
    steppers = {"numpy (by hand)": lambda: numpy_model.step(X, y)}
    steppers["dlkit"] = dlkit_stepper(X, y, model, fused=not args.readable)

    # the same math: the first few losses agree across implementations
    first = {name: [step() for _ in range(3)] for name, step in steppers.items()}
    for name, losses in first.items():
        if not np.allclose(losses, first["numpy (by hand)"], rtol=1e-4):
            print(f"warning: {name} losses {losses} differ from numpy {first['numpy (by hand)']}")

    times, _ = _layouts.interleave(steppers, args.repeats, args.warmup, _layouts.reversed_order())
    if child is not None:
        _layouts.emit(times)
        return 0
    base = statistics.median(times["numpy (by hand)"])
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:<16} {med * 1e3:8.3f} ms   {med / base:5.2f}x numpy")
    ratio = statistics.median(times["dlkit"]) / base
    print(f"dlkit / numpy = {ratio:.2f} (target <= 1.2)")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
