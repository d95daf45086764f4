"""Do the students' pieces, plugged through dlkit.student, cost more than the library's own?

    python benchmarks/pack_pieces.py [--rounds 6] [--steps 60]

A later notebook runs on pieces resolved by ``dlkit.student`` (the student's own, or a published
solution pack) through the kit's stand-ins. This compares two processes doing the same work:

* library: the instructor dlkit (its own reference pieces);
* pack: the student kit (``make release``'s ``release/kit``) with every solution pack published
  (``DLKIT_PACKS``), so the engine, the VJPs, the modules and the optimizer all come from packs.

Work per step: forward + backward of the 784-256-128-10 MLP (batch 128, float32, built with
``nn.Linear`` / ReLU) and one readable ``optim.Adam`` step. Both processes are timed
alternately over ``--rounds`` rounds (``--steps`` steps each, after warm-up); the figure is the
median per-step time of each and their ratio. Target (issue 11): pack ≤ 1.2× library.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r'''
import json, sys, time
import numpy as np
import dlkit
from dlkit import nn, optim
steps = int(sys.argv[1])
rng = np.random.default_rng(0)
X = dlkit.tensor(rng.standard_normal((128, 784)).astype(np.float32))
y = dlkit.tensor(rng.integers(0, 10, 128), dtype="int64")
g = np.random.default_rng(1)
model = nn.Sequential(nn.Linear(784, 256, generator=g), nn.ReLU(), nn.Linear(256, 128, generator=g),
                      nn.ReLU(), nn.Linear(128, 10, generator=g))
loss_fn = nn.CrossEntropyLoss()
opt = optim.Adam(model.parameters(), lr=1e-3)
def step():
    opt.zero_grad()
    loss = loss_fn(model(X), y)
    loss.backward()
    opt.step()
    return loss
for _ in range(10):
    first = float(step().numpy())
times = []
for _ in range(steps):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
print(json.dumps({"median_s": sorted(times)[len(times) // 2], "first_loss": first,
                  "dlkit": dlkit.__file__}))
'''


def _run(env: dict[str, str], steps: int) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(steps)], env=env, capture_output=True,
                          text=True, cwd=tempfile.gettempdir())
    if done.returncode:
        raise SystemExit(f"pack_pieces: a child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from autograder.kit import student_dlkit
    from autograder.release import assignments, write_packs

    base = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
            "DLKIT_BACKEND": "numpy"}
    base.pop("DLKIT_PACKS", None)
    with tempfile.TemporaryDirectory() as tmp:
        kit = student_dlkit(Path(tmp) / "kit")
        packs = Path(tmp) / "packs"
        write_packs(packs, assignments())
        envs = {"library": {**base, "PYTHONPATH": str(REPO)},
                "pack": {**base, "PYTHONPATH": str(kit), "DLKIT_PACKS": str(packs),
                         "DLKIT_NOTEBOOKS": str(Path(tmp) / "no-notebooks")}}
        times: dict[str, list[float]] = {k: [] for k in envs}
        seen = {}
        for r in range(args.rounds):
            order = list(envs) if r % 2 == 0 else list(reversed(envs))
            for name in order:
                out = _run(envs[name], args.steps)
                times[name].append(out["median_s"])
                seen[name] = out
    assert str(REPO / "dlkit") in seen["library"]["dlkit"] and "kit" in seen["pack"]["dlkit"]
    if abs(seen["library"]["first_loss"] - seen["pack"]["first_loss"]) > 1e-4:
        raise SystemExit(f"pack_pieces: the two paths disagree: {seen}")
    lib, pack = statistics.median(times["library"]), statistics.median(times["pack"])
    load = os.getloadavg()[0]
    print(f"MLP 784-256-128-10, batch 128, forward + backward + readable Adam, 1 BLAS thread; "
          f"{args.rounds} rounds x {args.steps} steps; load {load:.1f}")
    print(f"  library pieces  {lib * 1e3:8.3f} ms/step   (rounds: "
          + ", ".join(f"{t * 1e3:.2f}" for t in times["library"]) + ")")
    print(f"  pack pieces     {pack * 1e3:8.3f} ms/step   (rounds: "
          + ", ".join(f"{t * 1e3:.2f}" for t in times["pack"]) + ")")
    print(f"  pack / library  {pack / lib:.2f}x   (target <= 1.2x: {'met' if pack / lib <= 1.2 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
