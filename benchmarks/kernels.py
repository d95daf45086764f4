"""How fast are dlkit's hand-written CUDA kernels?  One run prints every figure side by side.

    python benchmarks/kernels.py            # needs the cuda backend (pycuda + an NVIDIA GPU)
    python benchmarks/kernels.py --quick    # fewer repetitions, smaller MLP timing loop
    python benchmarks/kernels.py --json OUT.json   # also write every figure (gpu_results.py reads it)

Without a usable GPU it prints ``skipped: <reason>`` and exits 0.

What is measured (CUDA events around the launches, after warm-up, median of several runs):
  * matmul GFLOP/s (2*M*N*K / time) for 1024^2, 2048^2, 4096^2 float32 squares, next to cuBLAS
    in the same process (CuPy ``cupy.matmul``, else ``torch.matmul`` with TF32 off);
  * element-wise (add, relu, bias broadcast) and reductions (sum of all, row sums) on 64 MiB
    float32 operands in GB/s, against the device's peak DRAM bandwidth and a measured
    device-to-device copy (cuMemcpyDtoD, counting read + write);
  * the fused Adam step (16 Mi parameters; 28 bytes moved per parameter) in GB/s;
  * one training step of a 784-256-128-10 ReLU MLP at batch 1024 (forward, softmax
    cross-entropy, backward by hand through the backend, Adam on 6 parameters), cuda vs numpy.

Targets
  * matmul:                       >= 50% of cuBLAS at 4096^2
  * element-wise / reduction / Adam: >= 70% of peak DRAM bandwidth
  * MLP step:                     >= 10x the numpy backend at batch 1024
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dlkit.backend import BackendUnavailable  # noqa: E402
from dlkit.backend import cuda as cuda_mod  # noqa: E402
from dlkit.backend.numpy_backend import NumpyBackend  # noqa: E402

MIB = 1 << 20


@dataclass
class Sizes:
    """Problem sizes (the defaults are the ones the targets refer to)."""

    matmul: tuple[int, ...] = (1024, 2048, 4096)
    stream_mib: int = 64          # bytes per operand of the bandwidth-bound kernels
    rows: int = 4096              # row count of the (rows, n / rows) reduction / bias cases
    batch: int = 1024             # MLP batch
    repeat: int = 20

#: Datasheet DRAM bandwidth (GB/s) when the driver's attributes do not give it.
DATASHEET_GBPS = {"H100 SXM": 3350, "H100 NVL": 3900, "H100 PCIe": 2000, "H100": 3350,
                  "H200": 4800, "A100-SXM4-80GB": 2039, "A100": 1555, "L4": 300, "A10": 600}


def gpu_timer(be, fn: Callable[[], object], repeat: int, warmup: int = 3) -> float:
    """Median seconds of ``fn()`` timed with CUDA events on the default stream."""
    drv = be._drv
    for _ in range(warmup):
        fn()
    drv.Context.synchronize()
    times = []
    for _ in range(repeat):
        start, end = drv.Event(), drv.Event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.time_till(end) * 1e-3)
    return statistics.median(times)


def cpu_timer(fn: Callable[[], object], repeat: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_bandwidth(be) -> tuple[float, str]:
    """(GB/s, where the figure comes from) for the device's DRAM."""
    name = be.device_name
    for key, gbps in DATASHEET_GBPS.items():
        if key in name:
            return float(gbps), f"datasheet ({key})"
    try:
        import pycuda.driver as drv
        dev = drv.Device(0)
        clock_khz = dev.get_attribute(drv.device_attribute.MEMORY_CLOCK_RATE)
        bus_bits = dev.get_attribute(drv.device_attribute.GLOBAL_MEMORY_BUS_WIDTH)
        return 2 * clock_khz * 1e3 * bus_bits / 8 / 1e9, "driver attributes (2 x clock x bus)"
    except Exception as exc:   # noqa: BLE001
        return float("nan"), f"unknown ({exc})"


def cublas_matmul():
    """(name, f(a_host, b_host) -> timed callable) for a cuBLAS FP32 reference, or None."""
    try:
        import cupy as cp

        def prepare(a, b):
            da, db = cp.asarray(a), cp.asarray(b)
            return lambda: cp.matmul(da, db)
        return "cuBLAS (cupy.matmul)", prepare
    except Exception:   # noqa: BLE001
        pass
    try:
        import torch
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

        def prepare(a, b):
            da, db = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
            return lambda: torch.matmul(da, db)
        return "cuBLAS (torch.matmul, TF32 off)", prepare
    except Exception:   # noqa: BLE001
        return None


def mlp_step(be, params, state, x, y, step: int) -> None:
    """One training step: forward, fused softmax cross-entropy, backward, Adam (6 tensors)."""
    (w1, b1, w2, b2, w3, b3) = params
    z1 = be.add(be.matmul(x, w1), b1)
    h1 = be.relu(z1)
    z2 = be.add(be.matmul(h1, w2), b2)
    h2 = be.relu(z2)
    logits = be.add(be.matmul(h2, w3), b3)
    _, d3 = be.softmax_cross_entropy(logits, y)
    g_w3, g_b3 = be.matmul(be.transpose(h2), d3), be.sum(d3, axis=0)
    d2 = be.where(be.greater(z2, 0.0), be.matmul(d3, be.transpose(w3)), 0.0)
    g_w2, g_b2 = be.matmul(be.transpose(h1), d2), be.sum(d2, axis=0)
    d1 = be.where(be.greater(z1, 0.0), be.matmul(d2, be.transpose(w2)), 0.0)
    g_w1, g_b1 = be.matmul(be.transpose(x), d1), be.sum(d1, axis=0)
    for p, g, (m, v) in zip(params, (g_w1, g_b1, g_w2, g_b2, g_w3, g_b3), state):
        be.adam_step(p, g, m, v, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                     step=step, bias_correction=True, decoupled=False)


def make_mlp(be, rng: np.random.Generator, batch: int):
    sizes = [784, 256, 128, 10]
    params, state = [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        w = (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2 / fan_in)).astype(np.float32)
        for arr in (w, np.zeros(fan_out, np.float32)):
            params.append(be.array(arr, np.float32))
            state.append((be.zeros(arr.shape, np.float32), be.zeros(arr.shape, np.float32)))
    x = be.array(rng.standard_normal((batch, 784)).astype(np.float32), np.float32)
    y = be.array(rng.integers(0, 10, batch), np.int64)
    return params, state, x, y


def main(argv: list[str] | None = None, backend=None, sizes: Sizes | None = None) -> int:
    """Run every benchmark; ``backend`` / ``sizes`` let the tests run it on a simulator."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    args = parser.parse_args(argv)
    figures: dict = {"matmul": [], "bandwidth": [], "mlp": {}, "targets": {}}
    sizes = sizes or Sizes(repeat=5 if args.quick else 20)
    be = backend
    if be is None:
        try:
            be = cuda_mod.create()
        except BackendUnavailable as exc:
            print(f"skipped: {exc}")
            return 0
    repeat = sizes.repeat
    rng = np.random.default_rng(0)
    peak, peak_src = peak_bandwidth(be)
    print(f"device: {be.device_name} ({be.arch}, {be.sm_count} SMs); peak DRAM {peak:.0f} GB/s "
          f"[{peak_src}]")
    figures["device"] = {"name": be.device_name, "arch": be.arch, "sm_count": be.sm_count,
                         "peak_gbps": peak, "peak_source": peak_src}

    # -- matmul -----------------------------------------------------------------------------
    ref = cublas_matmul()
    print("\nmatmul float32 (GFLOP/s)")
    print(f"  {'size':>6} {'dlkit':>10} {ref[0] if ref else 'cuBLAS':>32} {'ratio':>7}")
    ratio_4096 = float("nan")
    for n in sizes.matmul:
        a = rng.standard_normal((n, n)).astype(np.float32)
        b = rng.standard_normal((n, n)).astype(np.float32)
        da, db = be.array(a, np.float32), be.array(b, np.float32)
        flops = 2.0 * n ** 3
        ours = flops / gpu_timer(be, lambda: be.matmul(da, db), repeat) / 1e9
        theirs = flops / gpu_timer(be, ref[1](a, b), repeat) / 1e9 if ref else float("nan")
        ratio = ours / theirs
        ratio_4096 = ratio          # the last (largest) size is the one with a target
        print(f"  {n:>6} {ours:>10.0f} {theirs:>32.0f} {ratio:>7.1%}")
        figures["matmul"].append({"n": n, "dlkit_gflops": ours, "reference_gflops": theirs,
                                  "reference": ref[0] if ref else None, "ratio": ratio})

    # -- bandwidth-bound kernels ----------------------------------------------------------------
    n = sizes.stream_mib * MIB // 4                      # 16 Mi float32 = 64 MiB per operand
    x = be.array(rng.standard_normal(n).astype(np.float32), np.float32)
    y = be.array(rng.standard_normal(n).astype(np.float32), np.float32)
    dst = be.zeros((n,), np.float32)
    copy_s = gpu_timer(be, lambda: be._drv.memcpy_dtod(dst.ptr, x.ptr, 4 * n), repeat)
    copy_gbps = 2 * 4 * n / copy_s / 1e9
    R = sizes.rows
    rows = be.reshape(x, (R, n // R))
    bias = be.array(rng.standard_normal(n // R).astype(np.float32), np.float32)
    cases = [  # (name, callable, bytes moved)
        ("d2d copy (memcpy, reference)", lambda: be._drv.memcpy_dtod(dst.ptr, x.ptr, 4 * n), 8 * n),
        ("add  x + y", lambda: be.add(x, y), 12 * n),
        ("relu x", lambda: be.relu(x), 8 * n),
        (f"bias {rows.shape} + {bias.shape}", lambda: be.add(rows, bias), 8 * n),
        ("sum  all of x", lambda: be.sum(x), 4 * n),
        (f"sum  rows of {rows.shape}", lambda: be.sum(rows, axis=1), 4 * n),
        (f"max  rows of {rows.shape}", lambda: be.max(rows, axis=1), 4 * n),
    ]
    p, g = be.copy(x), be.copy(y)
    m, v = be.zeros((n,), np.float32), be.zeros((n,), np.float32)
    adam = lambda: be.adam_step(p, g, m, v, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,  # noqa: E731
                                weight_decay=0.0, step=10, bias_correction=True, decoupled=False)
    cases.append((f"adam step ({n} params)", adam, 28 * n))
    print(f"\nbandwidth-bound kernels, {sizes.stream_mib} MiB float32 operands")
    print(f"  {'kernel':<32} {'GB/s':>8} {'% peak':>8} {'% copy':>8}")
    ratios = []
    for name, fn, nbytes in cases:
        gbps = nbytes / gpu_timer(be, fn, repeat) / 1e9
        if not name.startswith("d2d"):
            ratios.append(gbps / peak)
        print(f"  {name:<32} {gbps:>8.0f} {gbps / peak:>8.1%} {gbps / copy_gbps:>8.1%}")
        figures["bandwidth"].append({"kernel": name, "gbps": gbps, "of_peak": gbps / peak,
                                     "of_copy": gbps / copy_gbps})

    # -- one MLP training step --------------------------------------------------------------------
    batch = sizes.batch
    cpu = NumpyBackend()
    step_counter = iter(range(1, 10 ** 9))
    gpu_model = make_mlp(be, np.random.default_rng(1), batch)
    cpu_model = make_mlp(cpu, np.random.default_rng(1), batch)
    t_gpu = gpu_timer(be, lambda: mlp_step(be, *gpu_model, next(step_counter)), repeat)
    t_cpu = cpu_timer(lambda: mlp_step(cpu, *cpu_model, next(step_counter)), 3 if args.quick else 7)
    print(f"\nMLP 784-256-128-10 training step, batch {batch}")
    print(f"  cuda  {t_gpu * 1e3:8.3f} ms\n  numpy {t_cpu * 1e3:8.3f} ms\n  speed-up {t_cpu / t_gpu:.1f}x")

    figures["mlp"] = {"batch": batch, "cuda_ms": t_gpu * 1e3, "numpy_ms": t_cpu * 1e3,
                      "speedup": t_cpu / t_gpu}
    worst = float(np.min(ratios))           # NaN when the peak is unknown
    print("\ntargets")
    print(f"  matmul >= 50% of cuBLAS at {sizes.matmul[-1]}:            {ratio_4096:.1%}  "
          f"{'MET' if ratio_4096 >= 0.5 else 'MISSED'}")
    print(f"  bandwidth kernels >= 70% of peak (worst):   {worst:.1%}  "
          f"{'MET' if worst >= 0.7 else 'MISSED'}")
    print(f"  MLP step >= 10x numpy:                      {t_cpu / t_gpu:.1f}x  "
          f"{'MET' if t_cpu / t_gpu >= 10 else 'MISSED'}")
    figures["targets"] = {
        "matmul_vs_cublas": {"value": ratio_4096, "target": 0.5, "met": bool(ratio_4096 >= 0.5)},
        "bandwidth_worst_of_peak": {"value": worst, "target": 0.7, "met": bool(worst >= 0.7)},
        "mlp_speedup": {"value": t_cpu / t_gpu, "target": 10.0, "met": bool(t_cpu / t_gpu >= 10)},
    }
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1, default=float), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
