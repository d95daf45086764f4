"""Backend selection when the GPU stack is missing or broken, simulated without a GPU.

Each way pycuda can fail (measured in /work/shared/GPU.md) is faked with stand-in modules:
pycuda not installed, no driver library, cuda.init() failing, zero devices, kernels that do
not compile.  In every case ``auto`` falls back to numpy with one message naming the reason,
an explicit ``cuda`` raises ``BackendUnavailable`` naming it, and ``import dlkit`` works.
The end of the file checks the CUDA backend's pure shape/stride/launch helpers against numpy.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import dlkit
import dlkit.backend as backend_mod
from dlkit.backend import BackendUnavailable, cuda

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def fresh_probe(monkeypatch):
    """Every test probes afresh and leaves the active backend as it found it."""
    monkeypatch.setattr(backend_mod, "_current", backend_mod._current)
    cuda.reset()
    yield
    cuda.reset()


def fake_pycuda(monkeypatch, *, init_error: str | None = None, count: int = 1,
                compile_error: str | None = None) -> dict:
    """Install stand-ins for pycuda, pycuda.driver, pycuda.compiler and pycuda.tools."""
    calls: dict = {"init": 0, "push": 0, "pop": 0, "modules": [], "free_held": 0}
    pkg = types.ModuleType("pycuda")
    pkg.__path__ = []
    drv = types.ModuleType("pycuda.driver")

    class Error(Exception):
        pass

    class LogicError(Error):
        pass

    class CudaRuntimeError(Error):   # pycuda.driver.RuntimeError is NOT the builtin one
        pass

    CudaRuntimeError.__name__ = "RuntimeError"

    class CompileError(Error):
        def __init__(self, msg, command_line, stdout=None, stderr=None):
            super().__init__(msg)
            self.msg, self.command_line, self.stdout, self.stderr = msg, command_line, stdout, stderr

    def init(flags: int = 0) -> None:
        calls["init"] += 1
        if init_error:
            raise CudaRuntimeError(init_error)

    class Context:
        def push(self) -> None:
            calls["push"] += 1

        def pop(self) -> None:
            calls["pop"] += 1

        @staticmethod
        def synchronize() -> None:
            pass

    class Device:
        @staticmethod
        def count() -> int:
            return count

        def __init__(self, ordinal: int) -> None:
            assert ordinal == 0

        def compute_capability(self) -> tuple[int, int]:
            return (9, 0)

        def name(self) -> str:
            return "Fake H100"

        def get_attribute(self, attr) -> int:
            assert attr == "MULTIPROCESSOR_COUNT"
            return 132

        def retain_primary_context(self) -> Context:
            return Context()

    drv.Error, drv.LogicError, drv.RuntimeError, drv.CompileError = (
        Error, LogicError, CudaRuntimeError, CompileError)
    drv.init, drv.Device, drv.Context = init, Device, Context
    drv.device_attribute = types.SimpleNamespace(MULTIPROCESSOR_COUNT="MULTIPROCESSOR_COUNT")

    compiler = types.ModuleType("pycuda.compiler")

    class SourceModule:
        def __init__(self, source, **kwargs):
            calls["modules"].append(kwargs)
            if compile_error:
                raise CompileError("nvcc compilation of kernel.cu failed", ["nvcc"],
                                   stderr=compile_error)

        def get_function(self, name):
            raise AssertionError("not launched in these tests")

    compiler.SourceModule = SourceModule
    tools = types.ModuleType("pycuda.tools")

    class DeviceMemoryPool:
        def allocate(self, nbytes):
            raise AssertionError("not allocated in these tests")

        def free_held(self):
            calls["free_held"] += 1

    tools.DeviceMemoryPool = DeviceMemoryPool
    pkg.driver, pkg.compiler, pkg.tools = drv, compiler, tools
    for name, mod in (("pycuda", pkg), ("pycuda.driver", drv), ("pycuda.compiler", compiler),
                      ("pycuda.tools", tools)):
        monkeypatch.setitem(sys.modules, name, mod)
    return calls


def assert_fallback(reason: str) -> None:
    """auto -> numpy with one warning naming ``reason``; explicit cuda -> BackendUnavailable."""
    with pytest.warns(UserWarning, match="using the numpy backend") as record:
        chosen = dlkit.set_backend("auto")
    assert chosen.name == "numpy"
    assert len(record) == 1 and reason in str(record[0].message)
    with pytest.raises(BackendUnavailable, match=re.escape(reason)):
        dlkit.set_backend("cuda")
    assert dlkit.available_backends()["cuda"] != "ok"
    assert reason in dlkit.available_backends()["cuda"]


# -- the failure modes -------------------------------------------------------------------------
def test_pycuda_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "pycuda", None)       # `import pycuda` -> ImportError
    assert_fallback("pycuda is not installed")


def test_no_driver_library(monkeypatch):
    fake_pycuda(monkeypatch)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)   # `import pycuda.driver` -> ImportError
    assert_fallback("no NVIDIA driver")


@pytest.fixture
def no_pycuda_modules():
    """Remove (and afterwards drop again) every pycuda* entry of sys.modules, so that an
    on-disk fake package is imported fresh and does not leak into later tests."""
    def drop() -> None:
        for name in [m for m in sys.modules if m == "pycuda" or m.startswith("pycuda.")]:
            del sys.modules[name]
    saved = {m: mod for m, mod in sys.modules.items() if m == "pycuda" or m.startswith("pycuda.")}
    drop()
    yield
    drop()
    sys.modules.update(saved)


@pytest.mark.usefixtures("no_pycuda_modules")
def test_driver_import_error_message_is_kept(monkeypatch, tmp_path):
    """A real package whose driver import fails the way a missing libcuda.so.1 does."""
    pkg = tmp_path / "pycuda"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "driver.py").write_text(
        'raise ImportError("libcuda.so.1: cannot open shared object file: No such file or directory")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert_fallback("libcuda.so.1")


def test_driver_init_fails(monkeypatch):
    calls = fake_pycuda(monkeypatch, init_error="cuInit failed: no CUDA-capable device is detected")
    assert_fallback("cuda.init() raised RuntimeError: cuInit failed")
    assert calls["init"] == 1, "the verdict must be cached: one probe per process"


@pytest.mark.usefixtures("no_pycuda_modules")
def test_pycuda_import_raises_something_else(monkeypatch, tmp_path):
    (tmp_path / "pycuda").mkdir()
    (tmp_path / "pycuda" / "__init__.py").write_text('raise OSError("broken install")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert_fallback("importing it failed: OSError: broken install")


def test_zero_devices(monkeypatch):
    fake_pycuda(monkeypatch, count=0)
    assert_fallback("0 devices")


def test_kernel_compilation_fails(monkeypatch):
    calls = fake_pycuda(monkeypatch, compile_error='kernel.cu(12): error: identifier "x" is undefined\n'
                                                   "1 error detected")
    assert_fallback("compiling kernels/elementwise.cu for sm_90 failed")
    with pytest.raises(BackendUnavailable, match='identifier "x" is undefined'):
        dlkit.set_backend("cuda")
    assert calls["push"] == calls["pop"] == 1, "the context pushed for the probe is popped again"


def test_environment_variable_selects_cuda(monkeypatch):
    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setenv("DLKIT_BACKEND", "cuda")
    monkeypatch.setattr(backend_mod, "_current", None)
    with pytest.raises(BackendUnavailable, match="pycuda is not installed"):
        dlkit.get_backend()


def test_unknown_backend_name():
    with pytest.raises(ValueError, match="unknown dlkit backend 'tpu'"):
        dlkit.set_backend("tpu")


# -- the happy path, with stand-ins ------------------------------------------------------------
def test_successful_probe_with_fake_driver(monkeypatch):
    calls = fake_pycuda(monkeypatch)
    exits = []
    monkeypatch.setattr(cuda.atexit, "register", lambda fn, *a: exits.append(fn))
    be = cuda.create()
    assert isinstance(be, cuda.CudaBackend) and be.name == "cuda"
    assert (be.arch, be.sm_count, be.device_name) == ("sm_90", 132, "Fake H100")
    assert cuda.create() is be, "one backend per process"
    assert calls["init"] == 1 and calls["push"] == 1 and calls["pop"] == 0
    assert len(calls["modules"]) == len(cuda.KERNEL_FILES)
    for kwargs in calls["modules"]:
        assert kwargs["no_extern_c"] is True and kwargs["arch"] == "sm_90"
        assert Path(kwargs["cache_dir"]).is_dir()
        assert str(cuda.KERNELS_DIR) in kwargs["include_dirs"]
    assert dlkit.set_backend("auto") is be
    (shutdown,) = exits
    shutdown()
    assert calls["pop"] == 1 and calls["free_held"] == 1


# -- importing dlkit never imports pycuda ---------------------------------------------------
@pytest.mark.parametrize("pycuda_init", [
    None,                                                         # not installed
    'raise ImportError("libcuda.so.1: cannot open shared object file")',
    'raise RuntimeError("a broken install")',                    # falls back all the same
])
def test_import_dlkit_does_not_touch_pycuda(tmp_path, pycuda_init):
    if pycuda_init is not None:
        (tmp_path / "pycuda").mkdir()
        (tmp_path / "pycuda" / "__init__.py").write_text(pycuda_init + "\n")
    code = textwrap.dedent("""
        import sys, warnings
        import dlkit
        assert "pycuda" not in sys.modules, "import dlkit imported pycuda"
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            x = dlkit.tensor([1.0, 2.0])
            print(dlkit.get_backend().name, len(w))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
           "DLKIT_BACKEND": "auto"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["numpy", "1"], proc.stdout


# =======================================================================================
# Pure helpers of the CUDA backend, checked against numpy (no GPU involved)
# =======================================================================================
shapes = st.lists(st.integers(1, 5), min_size=0, max_size=4).map(tuple)


@settings(max_examples=60, deadline=None)
@given(shape=shapes, data=st.data())
def test_layout_offsets_match_numpy_broadcasting(shape, data):
    """pack_layout + the kernel's offset formula address the same elements numpy reads."""
    from tests.cudasim import layout_offsets
    # an operand: drop some leading dims, set some dims to 1 (broadcast), maybe transpose
    lead = data.draw(st.integers(0, len(shape)))
    small = tuple(1 if data.draw(st.booleans()) else n for n in shape[lead:])
    base = np.arange(max(1, int(np.prod(small)))).reshape(small).astype(np.int64)
    operand = base.T.copy().T if data.draw(st.booleans()) else base   # Fortran-ordered twin
    out_strides = cuda.contiguous_strides(shape)
    op_strides = tuple(s // 8 for s in operand.strides)
    layout = cuda.pack_layout(shape, [out_strides, cuda.broadcast_strides(small, op_strides, shape)])
    expected = np.broadcast_to(operand, shape).reshape(-1)
    memory = np.empty(operand.size, np.int64)      # the operand as device memory holds it
    for idx in np.ndindex(operand.shape):
        memory[sum(i * s for i, s in zip(idx, op_strides))] = operand[idx]
    for i in range(int(np.prod(shape))):
        off_out, off_in = layout_offsets(layout, i, 2)
        assert off_out == i
        assert memory[off_in] == expected[i]


def test_coalesce_merges_contiguous_dims():
    assert cuda.coalesce((1024, 256), [(256, 1), (256, 1)]) == ((262144,), [(1,), (1,)])
    # bias broadcast over rows cannot merge: the operand restarts every row
    assert cuda.coalesce((4, 5), [(5, 1), (0, 1)]) == ((4, 5), [(5, 1), (0, 1)])
    assert cuda.coalesce((1, 1), [(1, 1)]) == ((1,), [(0,)])
    assert cuda.coalesce((3, 1, 4), [(4, 99, 1)]) == ((12,), [(1,)])


@settings(max_examples=80, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple), data=st.data())
def test_reshape_strides_agree_with_numpy(shape, data):
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    perm = data.draw(st.permutations(range(len(shape))))
    steps = tuple(data.draw(st.sampled_from([1, 1, 2, -1])) for _ in shape)
    view = x.transpose(perm)[tuple(slice(None, None, s) for s in steps)]
    n = view.size
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    a = data.draw(st.sampled_from(divisors))
    new_shape = data.draw(st.sampled_from([(n,), (a, n // a), (n // a, 1, a), (1, n)]))
    strides = cuda.reshape_strides(view.shape, tuple(s // 4 for s in view.strides), new_shape)
    try:
        np_view = np.reshape(view, new_shape, copy=False)
    except ValueError:
        assert strides is None, "a copy is needed but reshape_strides returned a view"
        return
    assert strides is not None, "numpy reshapes without a copy, reshape_strides did not"
    # our strides address the same elements as numpy's view
    memory = x.reshape(-1)
    start = (view.__array_interface__["data"][0] - x.__array_interface__["data"][0]) // 4
    for idx in np.ndindex(new_shape):
        assert memory[start + sum(i * s for i, s in zip(idx, strides))] == np_view[idx]


INDEXES = [0, -1, slice(None), slice(1, None, 2), slice(None, None, -1), slice(5, 1, -2),
           (None, 1), (Ellipsis, 0), (1, Ellipsis, slice(0, 2)), (slice(0, 0),), (None, Ellipsis, None)]


@pytest.mark.parametrize("index", INDEXES, ids=str)
def test_index_view_agrees_with_numpy(index):
    x = np.arange(4 * 6 * 5, dtype=np.float64).reshape(4, 6, 5)
    shape, strides, offset = cuda.index_view(x.shape, tuple(s // 8 for s in x.strides), index)
    expected = x[index]
    assert shape == expected.shape
    flat = x.reshape(-1)
    for idx in np.ndindex(shape):
        assert flat[offset + sum(i * s for i, s in zip(idx, strides))] == expected[idx]


@pytest.mark.parametrize("index,error", [((0, 0, 0, 0), "too many indices"),
                                         ((Ellipsis, Ellipsis), "single ellipsis"),
                                         (7, "out of bounds for axis 0 with size 4"),
                                         ([0, 1], "only basic indexing"),
                                         (True, "only basic indexing")])
def test_index_view_errors(index, error):
    with pytest.raises(IndexError, match=error):
        cuda.index_view((4, 6, 5), (30, 5, 1), index)


def test_broadcast_errors_name_both_shapes():
    with pytest.raises(ValueError, match=r"\(3,\) \(4,\)"):
        cuda.broadcast_shapes((3,), (4,))
    assert cuda.broadcast_shapes((17, 1), (1, 33), ()) == (17, 33)


@pytest.mark.parametrize("n,block,max_blocks,expected", [(1, 256, 4224, 1), (256, 256, 4224, 1),
                                                         (257, 256, 4224, 2), (10**9, 256, 4224, 4224)])
def test_grid_size(n, block, max_blocks, expected):
    assert cuda.grid_size(n, block, max_blocks) == expected


def test_reduction_plans():
    assert [cuda.reduce_threads(c) for c in (1, 10, 33, 200, 5000)] == [32, 32, 64, 256, 256]
    assert cuda.reduce_parts(rows=10_000, cols=100, threads=32, target_blocks=1056) == 1
    parts = cuda.reduce_parts(rows=1, cols=16 * 2**20, threads=256, target_blocks=1056)
    assert parts == 1056           # a 64 MiB sum is spread over the whole GPU
    assert cuda.reduce_parts(rows=1, cols=1000, threads=256, target_blocks=1056) == 1


def test_matmul_plan_covers_the_output():
    for m, n, batch in [(1, 1, 1), (4096, 4096, 1), (1024, 256, 1), (130, 129, 3)]:
        name, (gx, gy, gz) = cuda.matmul_plan(m, n, batch, np.dtype(np.float32), sm_count=132)
        bm, bn = cuda.MATMUL_TILES[name]
        assert gx * bn >= n > (gx - 1) * bn and gy * bm >= m > (gy - 1) * bm and gz == batch
    assert cuda.matmul_plan(4096, 4096, 1, np.dtype(np.float32), 132)[0] == "matmul_128x128_f32"
    assert cuda.matmul_plan(1024, 256, 1, np.dtype(np.float32), 132)[0] == "matmul_64x64_f32"
    assert cuda.matmul_plan(64, 64, 1, np.dtype(np.float64), 132)[0] == "matmul_64x64_f64"
    assert cuda.flat_batch_stride((2, 3), (15, 5)) == 5
    assert cuda.flat_batch_stride((2, 3), (0, 0)) == 0
    assert cuda.flat_batch_stride((2, 3), (0, 5)) is None
