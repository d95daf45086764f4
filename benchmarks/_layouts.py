"""Layout-robust timing, shared by train_step.py and autodiff_overhead.py.

Where the stack, the heap and the arrays land in memory shifts with the size of argv and the
environment, and that alone can move a timing ratio by 30 % run after run (Mytkowicz et al.,
"Producing wrong data without doing anything obviously wrong!", ASPLOS 2009). So by default a
benchmark re-runs its own script in K fresh child processes whose environments differ only by
a padding variable (``DLKIT_BENCH_PAD``, ``i * 521 % 4096`` bytes: spread over a page, a
different offset modulo a cache line each) and by heap padding of index-dependent size kept
alive in the child (env padding alone left most layouts at one spelling of argv 1.5x, at
another 1.13x), and every other child times the variants in reverse order. Each child does the interleaved warm-up + repeats and prints one JSON line; the
parent prints one row per layout and the median over layouts of the per-layout ratio (the
headline), its min and max, and the ratio of the pooled medians. ``--layouts 1`` is the old
single in-process run. Importing this module loads nothing heavy (no numpy).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Callable

CHILD = "DLKIT_BENCH_LAYOUT"   # set in a child process: its layout index
PAD = "DLKIT_BENCH_PAD"


def add_argument(parser) -> None:
    parser.add_argument("--layouts", type=int, default=8, metavar="K",
                        help="fresh child processes with differently padded environments "
                             "(default 8; 1 = a single in-process run)")


def child_index() -> int | None:
    """This process's layout index when it is a child, else None."""
    value = os.environ.get(CHILD)
    return None if value is None else int(value)


def pad_bytes(i: int) -> int:
    return i * 521 % 4096


def interleave(steps: dict[str, Callable[[], object]], repeats: int, warmup: int,
               reverse: bool = False) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Warm-up rounds, then ``repeats`` rounds that time every step once, in order (or reversed).

    Returns ({name: wall seconds per repeat}, {name: main-thread cpu seconds per repeat}).
    """
    order = list(steps)[::-1] if reverse else list(steps)
    for _ in range(warmup):
        for name in order:
            steps[name]()
    wall: dict[str, list[float]] = {name: [] for name in steps}
    cpu: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name in order:
            c0, t0 = time.thread_time(), time.perf_counter()
            steps[name]()
            t1, c1 = time.perf_counter(), time.thread_time()
            wall[name].append(t1 - t0)
            cpu[name].append(c1 - c0)
    return wall, cpu


def reversed_order() -> bool:
    """Children with an odd index time the variants in reverse order."""
    i = child_index()
    return i is not None and i % 2 == 1


def emit(wall: dict[str, list[float]], **extra) -> None:
    """A child's result: its medians (ms), its raw times (s) and any extras, as one JSON line."""
    medians = {name: statistics.median(ts) * 1e3 for name, ts in wall.items()}
    print(json.dumps({"median_ms": medians, "times": wall, **extra}), flush=True)


def run(k: int, base: str, other: str, target: float) -> list[dict]:
    """Run this script in k fresh children, print the per-layout table and the summary.

    Returns the children's results (dicts from ``emit``, plus ``layout``, ``pad``, ``ratio``).
    """
    print(f"{k} layouts: fresh processes, {PAD} of 0-4095 bytes, variant order alternating")
    print(f"  {'layout':>6} {'pad':>5}  {'first':<6} {base + ' ms':>12} {other + ' ms':>12} "
          f"{'ratio':>7}", flush=True)
    results = []
    for i in range(k):
        env = dict(os.environ, **{CHILD: str(i), PAD: "x" * pad_bytes(i)})
        proc = subprocess.run([sys.executable, sys.argv[0], *sys.argv[1:]], env=env,
                              stdout=subprocess.PIPE, text=True)
        lines = proc.stdout.splitlines()
        for line in lines[:-1]:                  # a child's warnings, if any
            print(f"  layout {i}: {line}")
        if proc.returncode or not lines:
            raise SystemExit(f"layout {i}: child failed (exit status {proc.returncode})")
        res = json.loads(lines[-1])
        med = res["median_ms"]
        res.update(layout=i, pad=pad_bytes(i), ratio=med[other] / med[base])
        results.append(res)
        first = other if i % 2 else base
        print(f"  {i:>6} {res['pad']:>5}  {first.split()[0]:<6} {med[base]:12.3f} "
              f"{med[other]:12.3f} {res['ratio']:6.2f}x", flush=True)
    ratios = [r["ratio"] for r in results]
    pooled = (statistics.median(t for r in results for t in r["times"][other])
              / statistics.median(t for r in results for t in r["times"][base]))
    headline = statistics.median(ratios)
    print(f"{other} / {base}: median over {k} layouts {headline:.2f}x "
          f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x), pooled median {pooled:.2f}x")
    print(f"target <= {target}x (median over layouts): {'met' if headline <= target else 'NOT met'}")
    return results


# a child also shifts its heap: small objects (pymalloc pools) and one malloc block, both sized by
# the layout index, stay alive for the whole run
if child_index() is not None:
    _HEAP_PAD = ([bytes(48) for _ in range(child_index() * 37 % 256)],
                 bytearray(pad_bytes(child_index()) * 16))
