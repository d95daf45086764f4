"""How much does dlkit's autodiff cost over hand-written numpy backprop?

One training-step gradient of a 3-layer MLP (batch 128, widths 784-256-128-10, float32,
ReLU, mean softmax cross-entropy) computed two ways in the same process:

* numpy: the forward pass and the manual backward pass written out (the lecture's G_i
  recursion with biases), exactly the same arithmetic;
* dlkit: the forward pass with Tensors, then ``loss.backward()``.

Both are timed interleaved (warm-up first, then alternating repeats) and the medians are
compared, by default in 8 fresh child processes with differently padded environments and
alternating order (see _layouts.py): the headline is the median over layouts of dlkit / numpy.
Run: ``python benchmarks/autodiff_overhead.py [--repeats 300] [--blas-threads N] [--layouts K]``
(``--blas-threads 1`` pins BLAS to one thread: steadier figures on a busy machine;
``--layouts 1``: one in-process run, as before).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import _setup  # noqa: E402,F401  (repo on sys.path, backend, --blas-threads: before numpy)
import _layouts  # noqa: E402  (fresh child processes with differently padded environments)

import numpy as np  # noqa: E402

import dlkit  # noqa: E402
from dlkit import ops  # noqa: E402

WIDTHS = (784, 256, 128, 10)
BATCH = 128


def make_problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((BATCH, WIDTHS[0])).astype(np.float32)
    y = rng.integers(0, WIDTHS[-1], size=BATCH)
    Ws = [(rng.standard_normal((n, k)) * np.sqrt(2.0 / n)).astype(np.float32)
          for n, k in zip(WIDTHS[:-1], WIDTHS[1:])]
    bs = [np.zeros(k, np.float32) for k in WIDTHS[1:]]
    return X, y, Ws, bs


def numpy_step(X, y, Ws, bs):
    """Forward + manual backward; returns (loss, [dW], [db])."""
    Z = [X]
    pre = []
    for i, (W, b) in enumerate(zip(Ws, bs)):
        H = Z[-1] @ W + b
        pre.append(H)
        Z.append(np.maximum(H, 0) if i < len(Ws) - 1 else H)
    logits = Z[-1]
    m = logits.shape[0]
    rows = np.arange(m)
    shifted = logits - logits.max(axis=1, keepdims=True)
    picked = shifted[rows, y]
    e = np.exp(shifted)
    s = e.sum(axis=1, keepdims=True)
    loss = (np.log(s).sum() - picked.sum()) / m
    G = e / s
    G[rows, y] -= 1
    G *= 1.0 / m
    dWs, dbs = [None] * len(Ws), [None] * len(Ws)
    for i in reversed(range(len(Ws))):
        if i < len(Ws) - 1:
            G = G * (pre[i] > 0)                   # through the ReLU
        dWs[i] = Z[i].T @ G
        dbs[i] = G.sum(axis=0)
        if i > 0:
            G = G @ Ws[i].T
    return loss, dWs, dbs


def dlkit_step(X, y, Ws, bs):
    """The same computation with dlkit Tensors; gradients land in .grad."""
    for p in Ws + bs:
        p.grad = None
    h = X
    for i, (W, b) in enumerate(zip(Ws, bs)):
        h = h @ W + b
        if i < len(Ws) - 1:
            h = ops.relu(h)
    loss = ops.softmax_cross_entropy(h, y)
    loss.backward()
    return loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="BLAS threads (default: the library's own choice)")
    _layouts.add_argument(parser)
    args = parser.parse_args()

    child = _layouts.child_index()
    if child is None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus "
              f"(load average {load:.1f}), numpy {np.__version__}, "
              f"backend {dlkit.get_backend().name}, BLAS threads {args.blas_threads or 'default'}")
        print(f"MLP {'-'.join(map(str, WIDTHS))}, batch {BATCH}, float32, forward+backward, "
              f"median of {args.repeats} interleaved repeats")
        if args.layouts > 1:
            results = _layouts.run(args.layouts, "numpy", "dlkit", target=1.15)
            print(f"  same result in every layout: loss {results[0]['loss']:.6f}, max relative "
                  f"gradient difference {max(r['err'] for r in results):.1e}")
            return

    X, y, Ws, bs = make_problem()
    tX, ty = dlkit.tensor(X), dlkit.tensor(y, dtype="int64")
    tWs = [dlkit.tensor(W, requires_grad=True) for W in Ws]
    tbs = [dlkit.tensor(b, requires_grad=True) for b in bs]

    # same numbers first
    loss, dWs, dbs = numpy_step(X, y, Ws, bs)
    tloss = dlkit_step(tX, ty, tWs, tbs)
    err = max(np.abs(t.grad.numpy() - g).max() / (np.abs(g).max() + 1e-12)
              for t, g in zip(tWs + tbs, dWs + dbs))
    assert abs(tloss.item() - loss) < 1e-5 and err < 1e-5, (tloss.item(), loss, err)

    steps = {"numpy": lambda: numpy_step(X, y, Ws, bs), "dlkit": lambda: dlkit_step(tX, ty, tWs, tbs)}
    wall, cpu = _layouts.interleave(steps, args.repeats, args.warmup, _layouts.reversed_order())
    if child is not None:
        _layouts.emit(wall, loss=float(tloss.item()), err=float(err))
        return
    t_np, t_dl, c_np, c_dl = wall["numpy"], wall["dlkit"], cpu["numpy"], cpu["dlkit"]
    med_np, med_dl = statistics.median(t_np), statistics.median(t_dl)
    cpu_np, cpu_dl = statistics.mean(c_np), statistics.mean(c_dl)
    print(f"{'':21s}{'median':>10s}{'min':>10s}{'cpu/step':>12s}")
    print(f"  hand-written numpy {med_np * 1e3:8.3f} ms{min(t_np) * 1e3:7.3f} ms"
          f"{cpu_np * 1e3:9.3f} ms")
    print(f"  dlkit autodiff     {med_dl * 1e3:8.3f} ms{min(t_dl) * 1e3:7.3f} ms"
          f"{cpu_dl * 1e3:9.3f} ms")
    print(f"  ratio dlkit/numpy  {med_dl / med_np:8.3f}x  {min(t_dl) / min(t_np):7.3f}x"
          f"{cpu_dl / cpu_np:9.3f}x   (target <= 1.15x)")
    print("  (min and main-thread cpu time are steadier than the median on a busy machine; "
          "cpu/step counts BLAS work only with --blas-threads 1)")
    print(f"  same result: loss {tloss.item():.6f}, max relative gradient difference {err:.1e}")

if __name__ == "__main__":
    main()
