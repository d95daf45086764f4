"""The numpy backend's native (C) optimizer kernels: the readable steps' results, bit for bit.

``NumpyBackend.adam_step`` / ``sgd_step`` run the update as one C loop when a C compiler is available
(see the end of dlkit/backend/numpy_backend.py) and as numpy passes otherwise.  The C loops do the
readable ``dlkit.optim.Adam.step`` / ``SGD.step``'s float operations in the same order, so
``opt.fused = True`` must give *identical* parameters and state over many steps; the numpy passes
fold the bias corrections differently and agree to float rounding.  No timing here
(benchmarks/vs_torch.py measures).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dlkit
from dlkit import optim
from dlkit.backend import numpy_backend as nb
from test_backend_numpy import _reference_adam  # the readable Adam step, operation by operation

pytestmark = pytest.mark.usefixtures("numpy_backend")

REPO = Path(__file__).resolve().parents[1]
SHAPES = [(13, 7), (7,), (1,), (), (3, 1, 4)]
CONFIGS = {
    "adam": lambda ps: optim.Adam(ps, lr=1e-2),
    "adam_wd": lambda ps: optim.Adam(ps, lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
    "adam_plain": lambda ps: optim.Adam(ps, lr=1e-2, weight_decay=0.05, bias_correction=False),
    "adamw": lambda ps: optim.AdamW(ps, lr=1e-2),
    "adamw_no_wd": lambda ps: optim.AdamW(ps, lr=1e-2, weight_decay=0.0),
    "adamw_plain_eps0": lambda ps: optim.AdamW(ps, lr=3e-3, eps=0.0, bias_correction=False),
    "sgd": lambda ps: optim.SGD(ps, lr=0.1),
    "sgd_wd": lambda ps: optim.SGD(ps, lr=0.1, weight_decay=0.01),
    "sgd_momentum": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9),
    "sgd_dampening_wd": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.5, weight_decay=0.1),
    "sgd_nesterov_wd": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
}


@pytest.fixture
def native():
    if nb._native_kernels() is None:
        pytest.skip(f"no native kernel: {nb._native_state.get('error')}")


@pytest.fixture
def numpy_passes(monkeypatch):
    """The fallback: the numpy passes, as without a C compiler."""
    nb._native_kernels()
    monkeypatch.setitem(nb._native_state, "loaded", None)


def _params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [dlkit.tensor(rng.standard_normal(s), dtype=dtype, requires_grad=True) for s in SHAPES]


def _run(make, fused, dtype, steps, skip=lambda t, i: False, opt=None, params=None, seed=1):
    """``steps`` steps with random gradients (``skip(t, i)``: parameter i has no grad at step t);
    returns the optimizer and its parameters."""
    rng = np.random.default_rng(seed)
    params = params if params is not None else _params(dtype)
    opt = opt if opt is not None else make(params)
    opt.fused = fused
    for t in range(steps):
        for i, p in enumerate(params):
            g = rng.standard_normal(p.shape)
            p.grad = None if skip(t, i) else dlkit.tensor(g, dtype=dtype)
        opt.step()
    return opt, params


def _snapshot(opt, params):
    out = [p.numpy().copy() for p in params]
    for entry in opt.state:
        for k in sorted(entry):
            v = entry[k]
            out.append(v.numpy().copy() if isinstance(v, dlkit.Tensor) else np.asarray(v))
    return out


def _assert_identical(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


def test_a_machine_with_a_c_compiler_builds_the_kernel():
    if not (shutil.which(os.environ.get("CC") or "cc") or shutil.which("gcc") or shutil.which("clang")):
        pytest.skip("no C compiler here: the numpy passes are the fused path")
    if os.environ.get("DLKIT_NATIVE", "1") == "0":
        pytest.skip("DLKIT_NATIVE=0")
    kernels = nb._native_kernels()
    assert kernels is not None, nb._native_state.get("error")
    assert set(kernels) == {(k, np.dtype(t)) for k in ("adam", "adam_many", "sgd") for t in ("float32", "float64")}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_native_step_is_the_readable_step_bit_for_bit(native, name, dtype):
    readable = _snapshot(*_run(CONFIGS[name], False, dtype, steps=60))
    fused = _snapshot(*_run(CONFIGS[name], True, dtype, steps=60))
    _assert_identical(fused, readable)


def test_one_call_updates_every_parameter_the_kernel_takes(kernel_calls):
    # float32 parameters go in one multi-tensor call; the float64 one, and a float32 one whose array
    # is not C-contiguous, through adam_step (native / numpy passes); results as the readable step's
    def make():
        rng = np.random.default_rng(2)
        ps = [dlkit.tensor(rng.standard_normal(s), requires_grad=True) for s in [(13, 7), (7,), (3, 4)]]
        ps.append(dlkit.tensor(rng.standard_normal(5), dtype="float64", requires_grad=True))
        ps[2]._array = np.asfortranarray(ps[2]._array)
        return ps

    results = []
    for fused in (False, True):
        params = make()
        opt = optim.Adam(params, lr=1e-2, weight_decay=0.1)
        opt.fused = fused
        rng = np.random.default_rng(3)
        del kernel_calls[:]
        for _ in range(4):
            for i, p in enumerate(params):
                p.grad = dlkit.tensor(rng.standard_normal(p.shape), dtype=p.dtype)
                if i == 2:
                    p.grad._array = np.asfortranarray(p.grad._array)
            opt.step()
        results.append((opt, params))
    assert kernel_calls == [("adam", 5), ("adam_many", 2)] * 4
    fo, fp = results[1]
    ro, rp = results[0]
    for i in (0, 1, 3):                                   # the C loops: bit for bit
        np.testing.assert_array_equal(fp[i].numpy(), rp[i].numpy())
        np.testing.assert_array_equal(fo.state[i]["exp_avg_sq"].numpy(), ro.state[i]["exp_avg_sq"].numpy())
    np.testing.assert_allclose(fp[2].numpy(), rp[2].numpy(), rtol=2e-6)   # numpy passes: to rounding


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_parameters_without_grad_are_skipped_alike(native, dtype):
    # parameter i has no gradient on some steps (and parameter 3 never has one)
    skip = lambda t, i: i == 3 or (t + i) % 3 == 0  # noqa: E731
    for name in ("adam_wd", "adamw", "sgd_nesterov_wd"):
        ro, rp = _run(CONFIGS[name], False, dtype, steps=20, skip=skip)
        fo, fp = _run(CONFIGS[name], True, dtype, steps=20, skip=skip)
        _assert_identical(_snapshot(fo, fp), _snapshot(ro, rp))
        assert fo.state[3] == {}
        if name.startswith("adam"):
            assert fo.state[0]["step"] == ro.state[0]["step"] < 20


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["adamw", "adam_wd", "sgd_nesterov_wd"])
def test_switching_paths_and_load_state_dict_keep_the_trajectory(native, name, dtype):
    # reference: 30 readable steps in one go
    reference = _snapshot(*_run(CONFIGS[name], False, dtype, steps=30))
    # the same 30 steps: 10 fused, 10 readable, then a state_dict round trip into a new optimizer
    # over copies of the parameters and 10 fused steps more (same gradient stream)
    opt, params = _run(CONFIGS[name], True, dtype, steps=10)
    rng = np.random.default_rng(1)                      # _run's gradient stream, step by step
    rng_steps = [[rng.standard_normal(p.shape) for p in params] for _ in range(30)]
    opt.fused = False
    for t in range(10, 20):
        for p, g in zip(params, rng_steps[t]):
            p.grad = dlkit.tensor(g, dtype=dtype)
        opt.step()
    saved = opt.state_dict()
    copies = [dlkit.tensor(p.numpy(), dtype=dtype, requires_grad=True) for p in params]
    fresh = CONFIGS[name](copies)
    fresh.load_state_dict(saved)
    fresh.fused = True
    for t in range(20, 30):
        for p, g in zip(copies, rng_steps[t]):
            p.grad = dlkit.tensor(g, dtype=dtype)
        fresh.step()
    _assert_identical(_snapshot(fresh, copies), reference)


@pytest.mark.parametrize("dtype, rtol", [("float32", 2e-6), ("float64", 1e-13)])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_numpy_passes_agree_to_rounding(numpy_passes, name, dtype, rtol):
    ro, rp = _run(CONFIGS[name], False, dtype, steps=8)
    fo, fp = _run(CONFIGS[name], True, dtype, steps=8)
    for x, y in zip(_snapshot(fo, fp), _snapshot(ro, rp)):
        # a value that cancelled to near 0 keeps the absolute error of the larger values around it
        atol = 8 * np.finfo(x.dtype).eps * float(np.max(np.abs(y), initial=0)) if x.dtype.kind == "f" else 0
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


KW = dict(lr=1e-2, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=0.1, bias_correction=True, decoupled=False)


@pytest.fixture
def kernel_calls(native, monkeypatch):
    """Counts the calls of the C kernels."""
    calls = []

    def counting(name, fn):
        size = {"adam": 4, "sgd": 3, "adam_many": 0}[name]  # the size (adam_many: the count) argument
        return lambda *args: (calls.append((name, args[size])), fn(*args))[1]

    kernels = {key: counting(key[0], fn) for key, fn in nb._native_kernels().items()}
    monkeypatch.setitem(nb._native_state, "loaded", kernels)
    return calls


@pytest.mark.parametrize("layout", ["transposed", "C param, F grad", "strided", "readonly grad",
                                    "mixed dtype grad", "empty"])
def test_arrays_the_kernel_does_not_take_go_through_numpy(kernel_calls, layout):
    rng = np.random.default_rng(0)
    base = rng.standard_normal((6, 4)).astype(np.float32)
    g = rng.standard_normal((6, 4)).astype(np.float32)
    p = base.copy()
    if layout == "transposed":
        p, g = base.T.copy().T, g.T.copy().T                   # F-ordered: not C-contiguous
    elif layout == "C param, F grad":
        g = g.T.copy().T
    elif layout == "strided":
        p = np.repeat(base, 2, axis=1)[:, ::2]
    elif layout == "readonly grad":
        g = np.broadcast_to(g[:1], g.shape)
    elif layout == "mixed dtype grad":
        g = g.astype(np.float64)
    elif layout == "empty":
        p, g = np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32)
    m, v = np.zeros_like(p), np.zeros_like(p)
    rp, rm, rv = p.copy(), m.copy(), v.copy()
    for t in range(1, 4):
        nb.NumpyBackend().adam_step(p, g, m, v, step=t, **KW)
        rp, rm, rv = _reference_adam(rp, g.astype(p.dtype), rm, rv, step=t, **KW)
        np.testing.assert_allclose(p, rp, rtol=2e-6, atol=0)
        np.testing.assert_allclose(m, rm, rtol=2e-6, atol=0)
        np.testing.assert_allclose(v, rv, rtol=2e-6, atol=0)
    assert kernel_calls == []


def test_backend_kernel_equals_the_formula_exactly(kernel_calls):
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        for kw in (KW, dict(KW, decoupled=True), dict(KW, weight_decay=0.0), dict(KW, bias_correction=False)):
            p = rng.standard_normal(1000).astype(dtype)
            m, v = np.zeros_like(p), np.zeros_like(p)
            rp, rm, rv = p.copy(), m.copy(), v.copy()
            for t in range(1, 12):
                g = rng.standard_normal(p.shape).astype(dtype)
                nb.NumpyBackend().adam_step(p, g, m, v, step=t, **kw)
                rp, rm, rv = _reference_adam(rp, g, rm, rv, step=t, **kw)
            np.testing.assert_array_equal(p, rp)
            np.testing.assert_array_equal(m, rm)
            np.testing.assert_array_equal(v, rv)
    assert kernel_calls == [("adam", 1000)] * 88        # every step ran in the C loop


def _reference_sgd(p, g, buf, *, lr, momentum, dampening, weight_decay, nesterov, first_step):
    """The readable step of dlkit.optim.SGD in numpy (fresh arrays)."""
    if weight_decay:
        g = g + weight_decay * p
    if momentum:
        buf = g.copy() if first_step else momentum * buf + (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    return p - lr * g, buf


@pytest.mark.parametrize("layout", ["C", "F"])
def test_backend_sgd_kernel_equals_the_formula_exactly(kernel_calls, layout):
    rng = np.random.default_rng(6)
    configs = [dict(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False),
               dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.01, nesterov=False),
               dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.0, nesterov=False),
               dict(lr=0.05, momentum=0.8, dampening=0.0, weight_decay=0.1, nesterov=True)]
    for dtype in (np.float32, np.float64):
        for kw in configs:
            p = rng.standard_normal((40, 25)).astype(dtype)
            p = p if layout == "C" else p.T.copy().T      # F-ordered: the numpy passes take it
            buf = np.zeros_like(p)
            rp, rbuf = p.copy(), buf.copy()
            for t in range(6):
                g = rng.standard_normal(p.shape).astype(dtype)
                nb.NumpyBackend().sgd_step(p, g, buf, first_step=t == 0, **kw)
                rp, rbuf = _reference_sgd(rp, g, rbuf, first_step=t == 0, **kw)
                if layout == "C":
                    np.testing.assert_array_equal(p, rp)
                    if kw["momentum"]:
                        np.testing.assert_array_equal(buf, rbuf)
                else:
                    np.testing.assert_allclose(p, rp, rtol=1e-6)
    assert kernel_calls == ([("sgd", 1000)] * 48 if layout == "C" else [])


_PROBE = """
import json, sys
import numpy as np, dlkit
from dlkit import optim
from dlkit.backend import numpy_backend as nb
p = dlkit.tensor([1.0, -2.0, 3.0], requires_grad=True)
opt = optim.Adam([p], lr=0.1)
opt.fused = True
for _ in range(3):
    p.grad = dlkit.tensor([0.5, 0.5, -1.0])
    opt.step()
print(json.dumps({"native": nb._native_kernels() is not None, "error": nb._native_state.get("error"),
                  "path": nb._native_state.get("path"), "p": p.numpy().tolist()}))
"""


def _probe(env_extra, tmp_path):
    env = dict(os.environ, DLKIT_BACKEND="numpy", DLKIT_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("DLKIT_NATIVE", None)
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_without_the_kernel_the_fused_step_still_trains(tmp_path):
    expected = [0.7000000476837158, -2.299999952316284, 3.299999952316284]   # three steps of size lr
    off = _probe({"DLKIT_NATIVE": "0"}, tmp_path)
    assert off["native"] is False and "DLKIT_NATIVE" in off["error"]
    no_cc = _probe({"CC": str(tmp_path / "no-such-compiler"), "PATH": str(tmp_path)}, tmp_path)
    assert no_cc["native"] is False and "compiler" in no_cc["error"]
    np.testing.assert_allclose(off["p"], expected, rtol=1e-6)
    np.testing.assert_allclose(no_cc["p"], expected, rtol=1e-6)


def test_the_library_is_built_once_into_the_cache(native, tmp_path):
    first = _probe({}, tmp_path)
    assert first["native"] is True and Path(first["path"]).parent == tmp_path / "cache"
    built = Path(first["path"]).stat().st_mtime_ns
    second = _probe({}, tmp_path)
    assert second["path"] == first["path"] and Path(second["path"]).stat().st_mtime_ns == built
    assert second["p"] == first["p"]
    assert [f.name for f in (tmp_path / "cache").iterdir()] == [Path(first["path"]).name]  # no temp files left


def test_an_unusable_cache_folder_builds_in_a_private_temporary_one(native, tmp_path):
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    got = _probe({"DLKIT_CACHE_DIR": str(blocker / "cache")}, tmp_path)
    assert got["native"] is True and not got["path"].startswith(str(tmp_path))
    assert not Path(got["path"]).exists()                 # removed once loaded


def test_a_compiler_without_cpu_clones_builds_the_baseline(native, tmp_path):
    cc = shutil.which(os.environ.get("CC") or "cc") or shutil.which("gcc") or shutil.which("clang")
    wrapper = tmp_path / "old-cc"
    wrapper.write_text(f'#!/bin/sh\ncase "$*" in *DLKIT_NO_CLONES*) exec "{cc}" "$@";; '
                       f'*) echo "unknown attribute target_clones" >&2; exit 1;; esac\n')
    wrapper.chmod(0o755)
    got = _probe({"CC": str(wrapper), "DLKIT_CACHE_DIR": str(tmp_path / "old")}, tmp_path)
    assert got["native"] is True, got["error"]
    assert got["p"] == _probe({}, tmp_path)["p"]          # the same loop, the same bits
