"""Stand-ins for a GPU, so the CUDA backend's code runs in tests on any machine.

Two drivers share one device-memory model (:class:`SimMemory`: allocations addressed by
integers, every access bounds-checked):

* ``make_sim_backend()``  -- "cuda-sim": each kernel is re-implemented with numpy from the
  SAME arguments cuda.py passes (decoded from the prepared-call format).  Fast; checks
  everything in cuda.py -- views, strides, Layout packing, reduction plans, launch
  geometry, kernel names and argument types -- but not the CUDA C.
* ``make_emu_backend()``  -- "cuda-emu": each launch runs the real kernels/*.cu, compiled
  for the CPU by tests/cudaemu (fibers for threads, guard pages after every buffer).  Checks
  the CUDA C itself: values, bounds, barriers.
"""
from __future__ import annotations

import bisect
import ctypes
import struct
import weakref
from typing import Any

import numpy as np

from dlkit.backend import cuda as cuda_mod
from dlkit.backend.cuda_kernels import format_items
from tests.cudaemu import KernelError, load

# =======================================================================================
# The simulated driver: device memory is a set of numpy byte buffers, and every kernel is
# re-implemented with numpy from the SAME arguments (decoded from the prepared-call format).
# =======================================================================================
class _Allocation:
    def __init__(self, address: int) -> None:
        self.address = address

    def __int__(self) -> int:
        return self.address


class SimMemory:
    """Device memory: numpy byte buffers at made-up addresses, never freed."""

    def __init__(self) -> None:
        self.bases: list[int] = []
        self.buffers: dict[int, np.ndarray] = {}
        self.next = 1 << 20

    def _new_buffer(self, nbytes: int) -> tuple[int, np.ndarray]:
        base = self.next
        self.next += (nbytes + 511) // 256 * 256      # 256-byte aligned, with a gap
        return base, np.empty(nbytes, dtype=np.uint8)

    def allocate(self, nbytes: int) -> _Allocation:
        assert nbytes > 0, "cuda.py must not allocate 0 bytes"
        base, buf = self._new_buffer(nbytes)
        buf[:] = 0xAB                                  # garbage, like cudaMalloc
        self.buffers[base] = buf
        bisect.insort(self.bases, base)
        return _Allocation(base)

    def owner(self, address: int) -> tuple[int, int] | None:
        """(base, size) of the allocation holding ``address``, or of the one just before it."""
        i = bisect.bisect_right(self.bases, address) - 1
        if i < 0:
            return None
        base = self.bases[i]
        return base, self.buffers[base].size

    def typed(self, ptr: int, dtype: np.dtype) -> tuple[np.ndarray, int]:
        """(whole allocation viewed as dtype, element index of ptr)."""
        assert ptr != 0, "NULL pointer dereferenced"
        i = bisect.bisect_right(self.bases, ptr) - 1
        base = self.bases[i]
        buf = self.buffers[base]
        assert ptr < base + buf.size, "pointer outside every allocation"
        assert (ptr - base) % dtype.itemsize == 0, "misaligned pointer"
        n = buf.size // dtype.itemsize
        return buf[: n * dtype.itemsize].view(dtype), (ptr - base) // dtype.itemsize

    def gather(self, ptr: int, dtype: Any, offsets: np.ndarray) -> np.ndarray:
        arr, start = self.typed(ptr, np.dtype(dtype))
        idx = start + np.asarray(offsets, dtype=np.int64)
        assert idx.size == 0 or (idx.min() >= 0 and idx.max() < arr.size), "out-of-bounds read"
        return arr[idx]

    def scatter(self, ptr: int, dtype: Any, offsets: np.ndarray, values: np.ndarray,
                check_unique: bool = True) -> None:
        arr, start = self.typed(ptr, np.dtype(dtype))
        idx = start + np.asarray(offsets, dtype=np.int64)
        assert idx.size == 0 or (idx.min() >= 0 and idx.max() < arr.size), "out-of-bounds write"
        if check_unique and idx.size > 1:
            assert (np.diff(np.sort(idx)) != 0).all(), "two threads write the same element"
        arr[idx] = values


class SimDriver:
    def __init__(self, mem: SimMemory) -> None:
        self.mem = mem

        class Context:
            @staticmethod
            def synchronize() -> None:
                pass

        self.Context = Context

    class Event:                              # CUDA events: every timing reads 1 ms
        def record(self) -> None:
            pass

        def synchronize(self) -> None:
            pass

        def time_till(self, other) -> float:
            return 1.0

    def memcpy_dtod(self, dst: int, src: int, nbytes: int) -> None:
        idx = np.arange(nbytes)
        self.mem.scatter(dst, np.uint8, idx, self.mem.gather(src, np.uint8, idx), check_unique=False)

    def memcpy_htod(self, ptr: int, host: np.ndarray) -> None:
        assert host.flags.c_contiguous
        raw = host.reshape(-1).view(np.uint8)
        self.mem.scatter(ptr, np.uint8, np.arange(raw.size), raw, check_unique=False)

    def memcpy_dtoh(self, host: np.ndarray, ptr: int) -> None:
        assert host.flags.c_contiguous
        host.reshape(-1).view(np.uint8)[:] = self.mem.gather(ptr, np.uint8, np.arange(host.nbytes))


_T = {"f32": np.float32, "f64": np.float64, "i64": np.int64, "u8": np.uint8}
_UNARY = {"neg": np.negative, "exp": np.exp, "log": np.log, "tanh": np.tanh, "sqrt": np.sqrt,
          "sigmoid": lambda a: (0.5 * (1 + np.tanh(0.5 * a))).astype(a.dtype),
          "relu": lambda a: np.where((a > 0) | np.isnan(a), a, 0).astype(a.dtype)}
_BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
           "pow": np.power, "maximum": np.maximum}
_CMP = {"eq": np.equal, "ne": np.not_equal, "gt": np.greater, "ge": np.greater_equal,
        "lt": np.less, "le": np.less_equal}


def _layout_offsets(layout: np.ndarray, nops: int) -> list[np.ndarray]:
    """Vectorised twin of layout_offsets() in kernels/common.cuh, for every output element."""
    D = cuda_mod.MAX_DIMS
    ndim, size = int(layout[0]), int(layout[1])
    assert 1 <= ndim <= D
    shape = layout[2:2 + D]
    assert (shape[: D - ndim] == 1).all()
    i = np.arange(size, dtype=np.int64)
    offs = [np.zeros(size, dtype=np.int64) for _ in range(nops)]
    for s in range(D - 1, D - ndim - 1, -1):
        c, i = i % shape[s], i // shape[s]
        for k in range(nops):
            offs[k] += c * layout[2 + D * (1 + k) + s]
    assert (i == 0).all(), "Layout.size larger than the product of its shape"
    return offs


def layout_offsets(layout: np.ndarray, i: int, nops: int) -> list[int]:
    """What ``layout_offsets`` in common.cuh computes for output element ``i`` (scalar twin)."""
    D = cuda_mod.MAX_DIMS
    ndim = int(layout[0])
    off = [0] * nops
    for s in range(D - 1, D - ndim - 1, -1):
        extent = int(layout[2 + s])
        c, i = i % extent, i // extent
        for k in range(nops):
            off[k] += c * int(layout[2 + D * (1 + k) + s])
    return off


class SimFunction:
    def __init__(self, mem: SimMemory, stem: str, name: str) -> None:
        self.mem, self.stem, self.name = mem, stem, name
        self.fmt: str | None = None

    def prepare(self, fmt: str) -> "SimFunction":
        self.fmt = fmt
        return self

    def prepared_call(self, grid: tuple, block: tuple, *args: Any) -> None:
        assert self.fmt is not None, "prepared_call before prepare"
        assert len(grid) == 3 and all(isinstance(g, int) and g >= 1 for g in grid)
        assert grid[1] <= 65535 and grid[2] <= 65535 and grid[0] < 2 ** 31
        assert block[1:] == (1, 1) and block[0] % 32 == 0 and 32 <= block[0] <= 1024
        items = format_items(self.fmt)
        assert len(items) == len(args), f"{self.name}: {len(args)} args for format {self.fmt!r}"
        struct.pack("@" + self.fmt, *args)   # the values fit their C types
        decoded = []
        for (n, c), a in zip(items, args):
            if c == "s":
                assert isinstance(a, bytes) and len(a) == n
                decoded.append(np.frombuffer(a, dtype=np.int64))
            else:
                assert isinstance(a, (int, float)) and not isinstance(a, bool), (self.name, a)
                decoded.append(a)
        self._run(grid, block, args, decoded)

    def _run(self, grid: tuple, block: tuple, args: tuple, decoded: list) -> None:
        getattr(self, "_" + self.stem)(grid, block[0], *decoded)

    # -- elementwise.cu ---------------------------------------------------------------
    def _elementwise(self, grid, block, *args):
        m, name = self.mem, self.name
        family, _, sfx = name.rpartition("_")
        if family.startswith("cast_"):
            src, dst = name.split("_")[1:]
            L, out, a = args
            o0, o1 = _layout_offsets(L, 2)
            x = m.gather(a, _T[src], o1)
            y = (x != 0).astype(np.uint8) if dst == "u8" else x.astype(_T[dst])
            m.scatter(out, _T[dst], o0, y)
            return
        t = _T[sfx]
        if family == "fill":
            out, n, value = args
            m.scatter(out, t, np.arange(n), np.full(n, value, dtype=t))
        elif family == "one_hot":
            out, labels, n, k = args
            lab = m.gather(labels, np.int64, np.arange(n))
            m.scatter(out, t, np.arange(n * k), (lab[:, None] == np.arange(k)).astype(t).reshape(-1))
        elif family.startswith("unary_"):
            L, out, a = args
            o0, o1 = _layout_offsets(L, 2)
            with np.errstate(all="ignore"):
                m.scatter(out, t, o0, _UNARY[family[6:]](m.gather(a, t, o1)).astype(t))
        elif family.startswith(("binary_", "cmp_")):
            L, out, a, b, sa, sb = args
            o0, o1, o2 = _layout_offsets(L, 3)
            x = m.gather(a, t, o1) if a else np.full(o0.size, sa, dtype=t)
            y = m.gather(b, t, o2) if b else np.full(o0.size, sb, dtype=t)
            with np.errstate(all="ignore"):
                if family.startswith("binary_"):
                    m.scatter(out, t, o0, _BINARY[family[7:]](x, y).astype(t))
                else:
                    m.scatter(out, np.uint8, o0, _CMP[family[4:]](x, y).astype(np.uint8))
        elif family == "where":
            L, out, c, a, b, sa, sb = args
            o0, o1, o2, o3 = _layout_offsets(L, 4)
            x = m.gather(a, t, o2) if a else np.full(o0.size, sa, dtype=t)
            y = m.gather(b, t, o3) if b else np.full(o0.size, sb, dtype=t)
            m.scatter(out, t, o0, np.where(m.gather(c, np.uint8, o1) != 0, x, y))
        else:
            raise AssertionError(f"no simulation for {name}")

    # -- reduce.cu ------------------------------------------------------------------------
    def _reduce(self, grid, block, *args):
        m, name = self.mem, self.name
        sfx = name.rsplit("_", 1)[1]
        t = _T[sfx]
        op = name.split("_")[2]
        fn = {"sum": np.sum, "max": np.max, "min": np.min}.get(op)
        ident = {"sum": 0, "max": -np.inf if t != np.int64 else np.iinfo(np.int64).min,
                 "min": np.inf if t != np.int64 else np.iinfo(np.int64).max}.get(op)
        if name.startswith("reduce_rows_"):
            src, out, rows, cols, seg = args
            parts = grid[1]
            assert grid[0] == rows and parts * seg >= cols
            x = m.gather(src, t, np.arange(rows * cols)).reshape(rows, cols)
            res = np.empty((rows, parts), dtype=t)
            for p in range(parts):
                part = x[:, p * seg: min((p + 1) * seg, cols)]
                res[:, p] = fn(part, axis=1) if part.shape[1] else ident
            m.scatter(out, t, np.arange(rows * parts), res.reshape(-1))
        elif name.startswith("reduce_mid_"):
            src, out, outer, R, inner = args
            x = m.gather(src, t, np.arange(outer * R * inner)).reshape(outer, R, inner)
            m.scatter(out, t, np.arange(outer * inner), fn(x, axis=1).astype(t).reshape(-1))
        elif name.startswith("argmax_rows_"):
            src, out, rows, cols = args
            assert grid[0] == rows
            x = m.gather(src, t, np.arange(rows * cols)).reshape(rows, cols)
            m.scatter(out, np.int64, np.arange(rows), np.argmax(x, axis=1))
        else:
            raise AssertionError(f"no simulation for {name}")

    # -- softmax_xent.cu -------------------------------------------------------------------
    def _softmax_xent(self, grid, block, *args):
        m, name = self.mem, self.name
        t = _T[name.rsplit("_", 1)[1]]
        src, rows, cols = args[0], args[-3 if "xent" in name else -2], args[-2 if "xent" in name else -1]
        assert grid[0] == rows
        x = m.gather(src, t, np.arange(rows * cols)).reshape(rows, cols)
        mx = np.max(x, axis=1, keepdims=True)
        mx = np.where(np.isfinite(mx), mx, 0).astype(t)
        with np.errstate(all="ignore"):
            lse = (mx + np.log(np.sum(np.exp(x - mx), axis=1, keepdims=True))).astype(t)
        if name.startswith("logsumexp_rows_"):
            m.scatter(args[1], t, np.arange(rows), lse.reshape(-1))
        elif name.startswith("log_softmax_rows_"):
            m.scatter(args[1], t, np.arange(rows * cols), (x - lse).reshape(-1))
        else:
            _, labels, loss, dx, _, _, inv_m = args
            y = m.gather(labels, np.int64, np.arange(rows))
            m.scatter(loss, t, np.arange(rows), (lse[:, 0] - x[np.arange(rows), y]).astype(t))
            g = np.exp(x - lse)
            g[np.arange(rows), y] -= 1
            m.scatter(dx, t, np.arange(rows * cols), (g * t(inv_m)).astype(t).reshape(-1))

    # -- matmul.cu ---------------------------------------------------------------------------
    def _matmul(self, grid, block, A, B, C, M, N, K, sAb, sAm, sAk, sBb, sBk, sBn):
        bm, bn = cuda_mod.MATMUL_TILES[self.name]
        assert block == cuda_mod.MATMUL_THREADS
        assert grid[0] * bn >= N and grid[1] * bm >= M, "grid does not cover C"
        assert (grid[0] - 1) * bn < N and (grid[1] - 1) * bm < M, "grid has idle block rows"
        t = np.float64 if self.name.endswith("f64") else np.float32
        z, i, k = np.meshgrid(np.arange(grid[2]), np.arange(M), np.arange(K), indexing="ij")
        a = self.mem.gather(A, t, z * sAb + i * sAm + k * sAk) if K else np.zeros((grid[2], M, 0), t)
        z, k, j = np.meshgrid(np.arange(grid[2]), np.arange(K), np.arange(N), indexing="ij")
        b = self.mem.gather(B, t, z * sBb + k * sBk + j * sBn) if K else np.zeros((grid[2], 0, N), t)
        self.mem.scatter(C, t, np.arange(grid[2] * M * N), np.matmul(a, b).astype(t).reshape(-1))

    # -- optim.cu ------------------------------------------------------------------------------
    def _optim(self, grid, block, *args):
        m = self.mem
        t = _T[self.name.rsplit("_", 1)[1]]
        if self.name.startswith("sgd_step_"):
            p, g, buf, n, lr, mom, damp, wd, nesterov, first = args
            idx = np.arange(n)
            P, G = m.gather(p, t, idx), m.gather(g, t, idx)
            d = G + t(wd) * P if wd else G
            if mom:
                b = d if first else t(mom) * m.gather(buf, t, idx) + (1 - t(damp)) * d
                m.scatter(buf, t, idx, b.astype(t))
                d = d + t(mom) * b if nesterov else b
            m.scatter(p, t, idx, (P - t(lr) * d).astype(t))
        else:
            p, g, m1, v1, n, lr, b1, b2, eps, wd, bc1, bc2s, decoupled = args
            idx = np.arange(n)
            P, G = m.gather(p, t, idx), m.gather(g, t, idx)
            if wd:
                if decoupled:
                    P = P * (1 - t(lr) * t(wd))
                else:
                    G = G + t(wd) * P
            mi = t(b1) * m.gather(m1, t, idx) + (1 - t(b1)) * G
            vi = t(b2) * m.gather(v1, t, idx) + (1 - t(b2)) * G * G
            m.scatter(m1, t, idx, mi.astype(t))
            m.scatter(v1, t, idx, vi.astype(t))
            denom = np.sqrt(vi) / t(bc2s) + t(eps)
            m.scatter(p, t, idx, (P - (t(lr) / t(bc1)) * (mi / denom)).astype(t))


class SimModule:
    def __init__(self, mem: SimMemory, stem: str) -> None:
        self.mem, self.stem = mem, stem

    def get_function(self, name: str) -> SimFunction:
        return SimFunction(self.mem, self.stem, name)


def make_sim_backend(sm_count: int = 4) -> cuda_mod.CudaBackend:
    """A CudaBackend on the simulated driver (a small SM count exercises multi-block plans)."""
    mem = SimMemory()
    modules = {stem: SimModule(mem, stem) for stem in cuda_mod.KERNEL_FILES}
    return cuda_mod.CudaBackend(SimDriver(mem), modules, mem.allocate, sm_count, "simulated", "sm_sim")


# =======================================================================================
# The emulated driver: the same memory model, but the memory is real (the kernels run on
# it), each buffer ends at a guard page, and a launch runs the compiled CUDA C.
# =======================================================================================
class EmuMemory(SimMemory):
    """Device memory from the emulator: freed when cuda.py drops the allocation, like pycuda."""

    def __init__(self, emu) -> None:
        super().__init__()
        self.emu = emu

    def _new_buffer(self, nbytes: int) -> tuple[int, np.ndarray]:
        base = self.emu.alloc(nbytes)
        return base, np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(base))

    def allocate(self, nbytes: int) -> _Allocation:
        allocation = super().allocate(nbytes)
        weakref.finalize(allocation, self._free, allocation.address, nbytes)
        return allocation

    def _free(self, base: int, nbytes: int) -> None:
        del self.buffers[base]
        self.bases.remove(base)
        self.emu.free(base, nbytes)


class EmuFunction(SimFunction):
    def __init__(self, mem: EmuMemory, stem: str, name: str) -> None:
        super().__init__(mem, stem, name)
        if not mem.emu.has_kernel(name):
            raise AssertionError(f"kernels/{stem}.cu has no kernel {name!r}")

    def _run(self, grid: tuple, block: tuple, args: tuple, decoded: list) -> None:
        code, message, fault = self.mem.emu.launch(self.name, grid, block, self.fmt, args)
        if code == 4:
            message += self._where(fault)
        if code:
            raise KernelError(message)

    def _where(self, address: int) -> str:
        found = self.mem.owner(address)
        if found is None:
            return " (below every allocation)"
        base, size = found
        if address < base + size:
            return f" (inside an allocation of {size} bytes, offset {address - base})"
        return f" ({address - base - size} bytes past the end of an allocation of {size} bytes)"


class EmuModule(SimModule):
    def get_function(self, name: str) -> EmuFunction:
        return EmuFunction(self.mem, self.stem, name)


def make_emu_backend(sm_count: int = 4, emulator=None) -> cuda_mod.CudaBackend:
    """A CudaBackend whose launches run kernels/*.cu on the CPU (raises EmulatorUnavailable).

    ``emulator``: a tests.cudaemu.Emulator built from other sources (default: kernels/).
    """
    mem = EmuMemory(emulator or load())
    modules = {stem: EmuModule(mem, stem) for stem in cuda_mod.KERNEL_FILES}
    return cuda_mod.CudaBackend(SimDriver(mem), modules, mem.allocate, sm_count, "emulated", "sm_emu")
