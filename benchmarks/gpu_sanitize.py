"""Launch every CUDA kernel dlkit has at edge sizes, for compute-sanitizer to watch.

    compute-sanitizer --tool memcheck python benchmarks/gpu_sanitize.py [--json OUT.json]

Each backend operation below is run at sizes 1, 17 and 1025 (and matmul at tile-edge shapes),
so every kernel named in ``dlkit.backend.cuda_kernels.kernel_signatures()`` is launched at least
once with a partial last block. The script checks the numbers against the numpy backend too, but
its purpose is the sanitizer's verdict (out-of-bounds and misaligned accesses, shared-memory
races, barrier misuse), which the CPU emulator of the tests cannot give for truly parallel runs.
It ends by listing the kernels it did NOT launch; ``gpu_check.sh`` records that list.

``backend=`` lets the tests run it on the simulated driver (tests/cudasim.py).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dlkit.backend import BackendUnavailable  # noqa: E402
from dlkit.backend import cuda as cuda_mod  # noqa: E402
from dlkit.backend.cuda_kernels import kernel_signatures  # noqa: E402
from dlkit.backend.numpy_backend import NumpyBackend  # noqa: E402

SIZES = (1, 17, 1025)
MATMUL_SHAPES = ((1, 1, 1), (17, 33, 65), (129, 130, 131))
FLOATS = (np.float32, np.float64)


def _operations(rng: np.random.Generator):
    """(label, fn(backend, put) -> backend array) for every kernel family, at every edge size."""
    ops = []
    for n in SIZES:
        for dt in FLOATS:
            x = rng.standard_normal(n).astype(dt)
            y = (np.abs(rng.standard_normal(n)) + 0.5).astype(dt)
            m = rng.standard_normal((n, 3)).astype(dt)
            t = dt.__name__
            for name in ("neg", "exp", "tanh", "sigmoid", "relu"):
                ops.append((f"{name} {t}[{n}]", lambda be, put, x=x, f=name: getattr(be, f)(put(x))))
            for name in ("log", "sqrt"):
                ops.append((f"{name} {t}[{n}]", lambda be, put, y=y, f=name: getattr(be, f)(put(y))))
            for name in ("add", "sub", "mul", "div", "maximum"):
                ops.append((f"{name} {t}[{n}]",
                            lambda be, put, x=x, y=y, f=name: getattr(be, f)(put(x), put(y))))
            ops.append((f"power {t}[{n}]", lambda be, put, y=y: be.power(put(y), 1.5)))
            ops.append((f"bias {t}[{n},3]", lambda be, put, m=m: be.add(put(m), put(m[0]))))
            for name in ("equal", "not_equal", "greater", "greater_equal", "less", "less_equal"):
                ops.append((f"{name} {t}[{n}]",
                            lambda be, put, x=x, y=y, f=name: getattr(be, f)(put(x), put(y))))
            ops.append((f"where {t}[{n}]",
                        lambda be, put, x=x, y=y: be.where(be.greater(put(x), 0.0), put(x), put(y))))
            for dst in ("float32", "float64", "int64", "bool"):
                ops.append((f"astype {t}->{dst} [{n}]",
                            lambda be, put, x=x, d=dst: be.astype(put(x), np.dtype(d))))
            ops.append((f"full {t}[{n}]", lambda be, put, n=n, dt=dt: be.full((n,), 2.0, dt)))
            for red in ("sum", "max"):
                ops.append((f"{red} all {t}[{n}]", lambda be, put, x=x, f=red: getattr(be, f)(put(x))))
                ops.append((f"{red} rows {t}[{n},3]",
                            lambda be, put, m=m, f=red: getattr(be, f)(put(m), axis=1)))
                ops.append((f"{red} cols {t}[{n},3]",
                            lambda be, put, m=m, f=red: getattr(be, f)(put(m), axis=0)))
            ops.append((f"argmax rows {t}[{n},3]", lambda be, put, m=m: be.argmax(put(m), axis=1)))
            ops.append((f"logsumexp {t}[{n},3]", lambda be, put, m=m: be.logsumexp(put(m), axis=1)))
            ops.append((f"log_softmax {t}[{n},3]", lambda be, put, m=m: be.log_softmax(put(m), axis=1)))
            labels = (np.arange(n) % 3).astype(np.int64)
            ops.append((f"softmax_xent {t}[{n},3]",
                        lambda be, put, m=m, lab=labels: be.softmax_cross_entropy(put(m), put(lab))[1]))
            ops.append((f"one_hot {t}[{n}]",
                        lambda be, put, lab=labels, dt=dt: be.one_hot(put(lab), 3, dt)))
            ops.append((f"sgd_step {t}[{n}]", lambda be, put, x=x, y=y: _sgd(be, put, x, y)))
            ops.append((f"adam_step {t}[{n}]", lambda be, put, x=x, y=y: _adam(be, put, x, y)))
        xi = (np.arange(n) - n // 2).astype(np.int64)
        for name in ("neg",):
            ops.append((f"{name} int64[{n}]", lambda be, put, xi=xi, f=name: getattr(be, f)(put(xi))))
        for name in ("add", "sub", "mul", "maximum"):
            ops.append((f"{name} int64[{n}]",
                        lambda be, put, xi=xi, f=name: getattr(be, f)(put(xi), put(xi))))
        for red in ("sum", "max"):
            ops.append((f"{red} int64[{n}]", lambda be, put, xi=xi, f=red: getattr(be, f)(put(xi))))
        mi = np.stack([xi, -xi, xi % 5], axis=1)
        for red in ("sum", "max"):
            ops.append((f"{red} cols int64[{n},3]",
                        lambda be, put, mi=mi, f=red: getattr(be, f)(put(mi), axis=0)))
        for arr in (xi, xi > 0):
            t = arr.dtype.name
            for dst in ("float32", "float64", "int64", "bool"):
                ops.append((f"astype {t}->{dst} [{n}]",
                            lambda be, put, a=arr, d=dst: be.astype(put(a), np.dtype(d))))
            for name in ("equal", "not_equal", "greater", "greater_equal", "less", "less_equal"):
                ops.append((f"{name} {t}[{n}]",
                            lambda be, put, a=arr, f=name: getattr(be, f)(put(a), put(a[::-1].copy()))))
            ops.append((f"full {t}[{n}]", lambda be, put, n=n, d=arr.dtype: be.full((n,), 1, d)))
            ops.append((f"one_hot ->{t} [{n}]", lambda be, put, lab=(np.arange(n) % 3).astype(np.int64),
                        d=arr.dtype: be.one_hot(put(lab), 3, d)))
            ops.append((f"where {t}[{n}]", lambda be, put, a=arr, xi=xi: be.where(
                be.greater(put(xi), 0), put(a), put(a[::-1].copy()))))
        for dt in (np.float32, np.float64, np.int64):
            mm = (np.stack([xi, xi % 7, -xi], axis=1)).astype(dt)
            for axis in (0, 1):
                ops.append((f"min axis {axis} {dt.__name__}[{n},3]",
                            lambda be, put, a=mm, ax=axis: _min(be, put(a), ax)))
        ops.append((f"argmax int64[{n},1]",
                    lambda be, put, xi=xi: be.argmax(put(xi.reshape(-1, 1)), axis=1)))
        ops.append((f"where bool[{n}]", lambda be, put, xi=xi: be.where(
            be.greater(put(xi), 0), put(xi > 0), put(xi < 0))))
    for (m, k, n) in MATMUL_SHAPES:
        for dt in FLOATS:
            a = rng.standard_normal((m, k)).astype(dt)
            b = rng.standard_normal((k, n)).astype(dt)
            ops.append((f"matmul {dt.__name__}[{m}x{k}]@[{k}x{n}]",
                        lambda be, put, a=a, b=b: be.matmul(put(a), put(b))))
            ops.append((f"matmul aT {dt.__name__}[{k}x{m}]",
                        lambda be, put, a=a, b=b: be.matmul(be.transpose(put(np.ascontiguousarray(a.T))),
                                                           put(b))))
    big = rng.standard_normal((2048, 2048)).astype(np.float32)
    ops.append(("matmul float32[2048]^2 (big tile)", lambda be, put: be.matmul(put(big), put(big))))
    return ops


def _min(be, a, axis):
    """The min reduction: the cuda backend uses it internally (label range checks) only."""
    if hasattr(be, "_reduce"):
        return be._reduce("min", a, axis, False)
    return be.neg(be.max(be.neg(a), axis=axis))


def _sgd(be, put, x, y):
    p, buf = put(x), be.zeros(x.shape, x.dtype)
    for _ in range(2):
        be.sgd_step(p, put(y), buf, lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.01,
                    nesterov=True, first_step=False)
    return p


def _adam(be, put, x, y):
    p, m, v = put(x), be.zeros(x.shape, x.dtype), be.zeros(x.shape, x.dtype)
    for step in (1, 2):
        be.adam_step(p, put(y), m, v, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                     weight_decay=0.01, step=step, bias_correction=True, decoupled=True)
    return p


def run(be, verbose: bool = True) -> dict:
    """Run every operation on ``be``; return launched / missing kernels and value mismatches."""
    launched: set[str] = set()
    real_launch = be._launch

    def recording_launch(module, name, *args):
        launched.add(name)
        return real_launch(module, name, *args)

    be._launch = recording_launch
    ref = NumpyBackend()
    mismatches, errors = [], []
    for label, op in _operations(np.random.default_rng(0)):
        try:
            got = be.to_numpy(op(be, lambda a: be.array(a, a.dtype)))
            want = ref.to_numpy(op(ref, lambda a: ref.array(a, a.dtype)))
        except Exception as exc:   # noqa: BLE001 - recorded, the sanitizer run goes on
            errors.append(f"{label}: {type(exc).__name__}: {exc}")
            continue
        if got.shape != want.shape or not np.allclose(got, want, rtol=1e-4, atol=1e-4, equal_nan=True):
            mismatches.append(label)
    if hasattr(be, "synchronize"):
        be.synchronize()
    every = {name for table in kernel_signatures().values() for name in table}
    missing = sorted(every - launched)
    report = {"operations": len(_operations(np.random.default_rng(0))), "launched": sorted(launched),
              "missing": missing, "mismatches": mismatches, "errors": errors}
    if verbose:
        print(f"{report['operations']} operations, {len(launched)}/{len(every)} kernels launched")
        for key in ("missing", "mismatches", "errors"):
            print(f"{key}: {', '.join(report[key]) or 'none'}")
    return report


def main(argv: list[str] | None = None, backend=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="write the report as JSON")
    args = parser.parse_args(argv)
    be = backend
    if be is None:
        try:
            be = cuda_mod.create()
        except BackendUnavailable as exc:
            print(f"skipped: {exc}")
            return 0
    report = run(be)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 1 if report["mismatches"] or report["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
