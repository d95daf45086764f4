"""dlkit against PyTorch CPU (default and fused Adam) and hand-written numpy, honestly.

One training step (forward + mean softmax cross-entropy + backward + Adam) of an MLP, float32:

* ``numpy``        the same arithmetic written out by hand (``train_step.NumpyMLP``);
* ``dlkit``        ``nn.MLP`` + ``optim.Adam`` (the readable Tensor-arithmetic step), with
                   ``loss.backward(retain_graph=False)`` as ``fit`` does (torch frees by default);
* ``dlkit fused``  the same with ``opt.fused = True`` (the backend's ``adam_step``);
* ``torch``        ``torch.optim.Adam`` with its defaults (the foreach implementation on CPU);
* ``torch fused``  ``torch.optim.Adam(fused=True)``.

Every comparison shows torch's default *and* fused Adam.  Nets: 784-256-128-10 at batch 1, 8, 32,
128, 1024 and the wide 784-1024-1024-10 at batch 128.  Each configuration runs in fresh child
processes, one after another, never two at once:

* ``--threads 1``: one child per configuration times all five variants interleaved (warm-up,
  then alternating repeats; medians), so a drift of the machine's speed hits them alike;
* ``--threads N > 1``: one child per *variant*, so that no variant's idle worker threads spin
  on the cores another needs (torch beside numpy at 2 threads each slowed numpy's step from 10.4
  to 18.5 ms; dlkit fused beside numpy and readable dlkit took 0.59 ms at batch 1 against
  0.24 ms alone).

``--memory``: memory in flight during one warm step at batch 1024 (the peak of live bytes above
what was live before the step), each variant in its own process, every allocation seen from a
cold start: tracemalloc for numpy / dlkit (numpy reports its buffers to it), the profiler's
allocation and free events for torch (``profile_memory=True``, started before the model is built);
see ``_memory_child``.  ``dlkit fused retain`` is the same step with ``backward()``'s default
``retain_graph=True``, which keeps every activation until the step ends.
``--hessian``: the Hessian of f(x) = ½xᵀPx + qᵀx, x ∈ R^100 (float64): ``dlkit.hessian`` against
``torch.autograd.functional.hessian`` with ``vectorize=True`` and ``False``.

The first lines print the machine, the load average before and after, and the versions.  Rows
give medians; the last column repeats the two ratios for the fastest repeat of each variant
(best-of), steadier than the median on a machine other jobs are using.
Run: ``python benchmarks/vs_torch.py [--threads 1|2] [--repeats 100] [--memory] [--hessian]``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

CHILD = "DLKIT_VS_TORCH_CHILD"
CONFIGS = [((784, 256, 128, 10), b) for b in (1, 8, 32, 128, 1024)] + [((784, 1024, 1024, 10), 128)]
LR, BETA1, BETA2, EPS = 1e-3, 0.9, 0.999, 1e-8
GROUPS = {"numpy": ("numpy", "dlkit", "dlkit fused"), "torch": ("torch", "torch fused")}


# ------------------------------------------------------------------------------------ child side
def _problem(widths, batch):
    import numpy as np
    from dlkit import nn
    rng = np.random.default_rng(0)
    X = rng.random((batch, widths[0]), dtype=np.float32)
    y = rng.integers(0, widths[-1], size=batch)
    model = nn.MLP(list(widths), generator=rng)
    Ws = [m.weight.numpy() for m in model if isinstance(m, nn.Linear)]
    bs = [m.bias.numpy() for m in model if isinstance(m, nn.Linear)]
    return X, y, Ws, bs


def _steppers(names, widths, batch):
    import numpy as np
    X, y, Ws, bs = _problem(widths, batch)
    out = {}
    for name in names:
        if name == "numpy":
            from train_step import NumpyMLP
            net = NumpyMLP(Ws, bs)
            out[name] = lambda net=net: net.step(X, y)
        elif name.startswith("dlkit"):
            import dlkit
            from dlkit import nn, optim
            layers = []
            for W, b in zip(Ws, bs):
                lin = nn.Linear(W.shape[0], W.shape[1])
                lin.weight.data, lin.bias.data = W, b
                layers += [lin, nn.ReLU()]
            model = nn.Sequential(*layers[:-1])
            opt = optim.Adam(model.parameters(), lr=LR, betas=(BETA1, BETA2), eps=EPS)
            opt.fused = "fused" in name
            loss_fn = nn.CrossEntropyLoss()
            Xt, yt = dlkit.tensor(X), dlkit.tensor(y, dtype="int64")
            retain = name.endswith("retain")

            def step(model=model, opt=opt, loss_fn=loss_fn, Xt=Xt, yt=yt, retain=retain):
                loss = loss_fn(model(Xt), yt)
                opt.zero_grad()
                loss.backward(retain_graph=retain)      # as fit does (torch frees by default)
                opt.step()
                return float(loss.item())
            out[name] = step
        else:
            import torch
            torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
            layers = []
            for W, b in zip(Ws, bs):
                lin = torch.nn.Linear(W.shape[0], W.shape[1])
                with torch.no_grad():
                    lin.weight.copy_(torch.from_numpy(W.T.copy()))
                    lin.bias.copy_(torch.from_numpy(b))
                layers += [lin, torch.nn.ReLU()]
            net = torch.nn.Sequential(*layers[:-1])
            opt = torch.optim.Adam(net.parameters(), lr=LR, betas=(BETA1, BETA2), eps=EPS,
                                   fused=True if name.endswith("fused") else None)
            loss_fn = torch.nn.CrossEntropyLoss()
            Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

            def step(net=net, opt=opt, loss_fn=loss_fn, Xt=Xt, yt=yt):
                loss = loss_fn(net(Xt), yt)
                opt.zero_grad()
                loss.backward()
                opt.step()
                return float(loss.item())
            out[name] = step
    return out


def _time_child(spec) -> dict:
    import numpy as np
    from _layouts import interleave
    steppers = _steppers(spec["names"], tuple(spec["widths"]), spec["batch"])
    losses = {name: [step() for _ in range(3)] for name, step in steppers.items()}
    wall, _ = interleave(steppers, spec["repeats"], spec["warmup"])
    return {"median_ms": {k: statistics.median(v) * 1e3 for k, v in wall.items()},
            "min_ms": {k: min(v) * 1e3 for k, v in wall.items()},
            "losses": {k: [float(x) for x in v] for k, v in losses.items()},
            "agree": all(np.allclose(v, next(iter(losses.values())), rtol=1e-4) for v in losses.values())}


def _memory_child(spec) -> dict:
    """Bytes in flight during one warm step: the peak of live bytes above those live before it.

    Both sides see every allocation from a cold start, so every free is seen too:

    * numpy / dlkit: tracemalloc (numpy reports each array's buffer to it), started before the
      problem is built; Python objects (Tensor wrappers, dicts) count too, a few KiB;
    * torch: the profiler with ``profile_memory=True``, started before the model is built (torch
      imported, nothing allocated yet), kept on through the warm-up steps and the measured one.
      Its CPU allocator reports each allocation and each free with its size; a block allocated
      *before* profiling started would be freed invisibly (that is why a profile of one warm step
      gave only a range), so starting cold leaves none. The running sum of those events is the
      live torch heap; the measured step is delimited by a ``record_function`` range.

    A steady step ends with as many bytes live as it started with: ``end_bytes`` (live after the
    step minus live before it) is reported as a check that no free went unseen.
    """
    name = spec["names"][0]
    if name.startswith("torch"):
        import torch
        from torch.profiler import ProfilerActivity, profile, record_function
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            step = _steppers([name], tuple(spec["widths"]), spec["batch"])[name]
            for _ in range(3):
                step()
            with record_function("measured step"):
                step()
        events = prof.profiler.kineto_results.events()
        mark = next(e for e in events if e.name() == "measured step")
        t0, t1 = mark.start_ns(), mark.end_ns()
        live = base = peak = 0
        for e in sorted((e for e in events if e.name() == "[memory]"), key=lambda e: e.start_ns()):
            if e.start_ns() >= t1:
                break
            if e.start_ns() < t0:
                live += e.nbytes()
                base = peak = live
            else:
                live += e.nbytes()
                peak = max(peak, live)
        return {"peak_bytes": peak - base, "end_bytes": live - base}
    import tracemalloc
    tracemalloc.start()
    step = _steppers([name], tuple(spec["widths"]), spec["batch"])[name]
    for _ in range(3):
        step()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    step()
    now, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"peak_bytes": peak - base, "end_bytes": now - base}


def _hessian_child(spec) -> dict:
    import numpy as np
    n, repeats = spec["n"], spec["repeats"]
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n))
    P, q, x0 = A @ A.T / n + np.eye(n), rng.standard_normal(n), rng.standard_normal(n)
    out = {}
    if spec["lib"] == "dlkit":
        import dlkit
        Pt, qt, xt = (dlkit.tensor(a, dtype="float64") for a in (P, q, x0))

        def f(x):
            return 0.5 * (x * (Pt @ x)).sum() + (qt * x).sum()
        variants = {"dlkit.hessian": lambda: dlkit.hessian(f, xt).numpy()}
    else:
        import torch
        from torch.autograd.functional import hessian
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        Pt, qt, xt = (torch.from_numpy(a) for a in (P, q, x0))

        def f(x):
            return 0.5 * (x * (Pt @ x)).sum() + (qt * x).sum()
        variants = {"torch vectorize=True": lambda: hessian(f, xt, vectorize=True).numpy(),
                    "torch vectorize=False": lambda: hessian(f, xt).numpy()}
    for name, fn in variants.items():
        H = fn()
        ok = bool(np.allclose(H, P, rtol=1e-10, atol=1e-12))
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        out[name] = {"median_ms": statistics.median(ts) * 1e3, "correct": ok}
    return out


def _child() -> int:
    spec = json.loads(os.environ[CHILD])
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _setup  # noqa: F401  (repo on sys.path, numpy backend)
    result = {"time": _time_child, "memory": _memory_child, "hessian": _hessian_child}[spec["kind"]](spec)
    print(json.dumps(result), flush=True)
    return 0


# ----------------------------------------------------------------------------------- parent side
def _run_child(spec: dict, threads: int) -> dict:
    env = dict(os.environ, **{CHILD: json.dumps(spec), "DLKIT_BACKEND": "numpy"})
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    proc = subprocess.run([sys.executable, os.path.abspath(__file__)], env=env,
                          stdout=subprocess.PIPE, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode or not lines:
        raise SystemExit(f"child {spec} failed (exit status {proc.returncode})")
    return json.loads(lines[-1])


def _machine(threads: int) -> str:
    import numpy as np
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        import torch
        tv = torch.__version__
    except ImportError:
        tv = "not installed"
    return (f"machine: {cpu}, {os.cpu_count()} cores; python {platform.python_version()}, "
            f"numpy {np.__version__}, torch {tv}; {threads} thread(s) per library")


def _load() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def main() -> int:
    if CHILD in os.environ:
        return _child()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--configs", default="all",
                        help="comma-separated indices into the configurations (default all)")
    parser.add_argument("--memory", action="store_true", help="memory in flight at batch 1024 instead")
    parser.add_argument("--hessian", action="store_true", help="the 100-dim Hessian instead")
    args = parser.parse_args()
    print(_machine(args.threads))
    print(f"before: {_load()}", flush=True)
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
        print("torch not installed: dlkit and numpy only")

    if args.hessian:
        times = {}
        for lib in ("dlkit",) + (("torch",) if have_torch else ()):
            res = _run_child({"kind": "hessian", "lib": lib, "n": 100, "repeats": 20}, args.threads)
            for name, r in res.items():
                times[name] = r["median_ms"]
                print(f"  {name:<24} {r['median_ms']:9.2f} ms  (correct: {r['correct']})", flush=True)
        if have_torch:
            print(f"dlkit.hessian / torch vectorize=True = "
                  f"{times['dlkit.hessian'] / times['torch vectorize=True']:.2f}x (target <= 2)")
    elif args.memory:
        widths, batch = CONFIGS[4]
        names = ["numpy", "dlkit", "dlkit fused", "dlkit fused retain"] + \
            (["torch", "torch fused"] if have_torch else [])
        peaks = {}
        for name in names:
            res = _run_child({"kind": "memory", "names": [name], "widths": widths, "batch": batch},
                             args.threads)
            peaks[name] = res["peak_bytes"]
            print(f"  {name:<18} memory in flight {res['peak_bytes'] / 2**20:8.2f} MiB"
                  f"  (live after - before the step: {res['end_bytes'] / 2**10:+.1f} KiB)", flush=True)
        if have_torch:
            print(f"dlkit fused / torch fused = {peaks['dlkit fused'] / peaks['torch fused']:.2f}x, "
                  f"dlkit / torch = {peaks['dlkit'] / peaks['torch']:.2f}x (target <= 2)")
    else:
        picked = range(len(CONFIGS)) if args.configs == "all" else [int(i) for i in args.configs.split(",")]
        print(f"median ms per step over {args.repeats} interleaved repeats after {args.warmup} warm-up")
        head = f"{'net':<18}{'batch':>6}" + "".join(f"{n:>13}" for n in
                                                   ("numpy", "dlkit", "dlkit fused", "torch", "torch fused"))
        print(head + f"{'fused/torch fused':>19}{'fused/numpy':>13}{'same, best-of':>15}", flush=True)
        for i in picked:
            widths, batch = CONFIGS[i]
            variants = GROUPS["numpy"] + (GROUPS["torch"] if have_torch else ())
            groups = [variants] if args.threads == 1 else [(n,) for n in variants]
            med: dict[str, float] = {}
            best: dict[str, float] = {}
            for names in groups:
                res = _run_child({"kind": "time", "names": list(names), "widths": widths, "batch": batch,
                                  "repeats": args.repeats, "warmup": args.warmup}, args.threads)
                med.update(res["median_ms"])
                best.update(res["min_ms"])
                if not res["agree"]:
                    print(f"warning: first losses differ: {res['losses']}")
            row = f"{'-'.join(map(str, widths)):<18}{batch:>6}" + "".join(
                f"{med[n]:13.3f}" if n in med else f"{'-':>13}"
                for n in ("numpy", "dlkit", "dlkit fused", "torch", "torch fused"))
            tf = f"{med['dlkit fused'] / med['torch fused']:.2f}x" if "torch fused" in med else "-"
            tb = f"{best['dlkit fused'] / best['torch fused']:.2f}x" if "torch fused" in best else "-"
            print(row + f"{tf:>19}{med['dlkit fused'] / med['numpy']:12.2f}x"
                  f"{tb:>9} {best['dlkit fused'] / best['numpy']:.2f}x", flush=True)
    print(f"after: {_load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
