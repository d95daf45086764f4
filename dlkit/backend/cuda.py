"""The CUDA backend: dlkit arrays in GPU memory, computed by the kernels in ``kernels/*.cu``.

How it fits together
--------------------
* :func:`create` probes the GPU stack once per process (pycuda importable? driver loads?
  ``cuda.init()`` works? a device present? kernels compile?) and returns a
  :class:`CudaBackend`, or raises ``BackendUnavailable`` naming the first step that failed.
  pycuda is imported only there (cuda_probe.py), so ``import dlkit`` never touches it.
* A :class:`DeviceArray` is a *view*: (allocation, offset, shape, strides, dtype), strides and
  offset counted in elements.  ``reshape`` / ``transpose`` / ``broadcast_to`` / ``getitem``
  only make new views; a kernel that needs contiguous input gets a compacted copy.
* Element-wise kernels take the output shape and every operand's strides (a :data:`Layout`)
  and do numpy broadcasting themselves.  Reductions, softmax and matmul bring their input
  into the shape the kernel expects (see ``kernels/reduce.cu``).
* Only :meth:`CudaBackend.array`, :meth:`CudaBackend.assign` from a host array and
  :meth:`CudaBackend.to_numpy` cross the PCIe bus (plus the 16-byte label range check of
  ``softmax_cross_entropy``); parameters and optimizer state stay on the device.

The backend is split over four files, each read on its own:

* ``cuda_kernels.py`` -- the kernel table: kernel files, names, argument formats, constants
  shared with the CUDA C (``MAX_DIMS``, ``BLOCK``, matmul tiles).
* ``cuda_layout.py`` -- the pure shape / stride / broadcast / launch-geometry helpers; they
  need neither pycuda nor a GPU, and the tests check them against numpy on every CI run.
* ``cuda_probe.py`` -- :func:`create`: importing pycuda, probing the device, compiling.
* ``cuda.py`` (this file) -- :class:`DeviceArray` and :class:`CudaBackend`, the Backend
  methods.  It re-exports the names of the other three, so ``dlkit.backend.cuda.create()``,
  ``cuda.MAX_DIMS``, ``cuda.coalesce`` and so on work as they always did.
"""
from __future__ import annotations

import atexit  # noqa: F401  (re-exported: tests patch cuda.atexit.register)
import math
from typing import Any, Callable, Sequence

import numpy as np

from .._graded import withheld

from .base import Axis, Backend, Shape
# Re-exported so that every name other modules and tests import from dlkit.backend.cuda stays.
from .cuda_kernels import (  # noqa: F401
    BINARY_OPS, BLOCK, COMPARE_OPS, INT_BINARY_OPS, INT_UNARY_OPS, KERNEL_FILES, KERNELS_DIR,
    LAYOUT_FIELDS, MATMUL_THREADS, MATMUL_TILES, MAX_DIMS, REDUCE_OPS, SCALAR_FORMAT, SUFFIX,
    UNARY_OPS, kernel_signatures)
from .cuda_layout import (  # noqa: F401
    Strides, broadcast_shapes, broadcast_strides, coalesce, contiguous_strides,
    flat_batch_stride, grid_size, index_view, is_contiguous, matmul_plan,
    normalize_axes, normalize_axis, pack_layout, prod, reduce_parts, reduce_threads,
    reshape_strides, resolve_shape)
from .cuda_probe import cache_dir, create, reset  # noqa: F401


# =======================================================================================
# Device arrays
# =======================================================================================
class DeviceArray:
    """A view of device memory: ``shape``, ``dtype``, ``strides`` and ``offset`` in elements.

    ``buffer`` is the allocation (kept alive by every view of it); ``ptr`` is the device
    address of element (0, ..., 0).  Create them with the backend, never directly.
    """

    __slots__ = ("shape", "dtype", "strides", "offset", "buffer", "__weakref__")

    def __init__(self, shape: Shape, dtype: np.dtype, buffer: Any,
                 strides: Strides | None = None, offset: int = 0) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self.strides = contiguous_strides(self.shape) if strides is None else tuple(strides)
        self.offset = int(offset)
        self.buffer = buffer

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return prod(self.shape)

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.size * self.itemsize

    @property
    def ptr(self) -> int:
        return 0 if self.buffer is None else int(self.buffer) + self.offset * self.itemsize

    @property
    def is_contiguous(self) -> bool:
        return is_contiguous(self.shape, self.strides)

    def view(self, shape: Shape, strides: Strides, offset: int | None = None) -> "DeviceArray":
        return DeviceArray(shape, self.dtype, self.buffer, strides,
                           self.offset if offset is None else offset)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __repr__(self) -> str:
        layout = "" if self.is_contiguous else f", strides={self.strides}"
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype}{layout})"


# =======================================================================================
# The backend
# =======================================================================================
class CudaBackend(Backend):
    """Backend whose arrays are :class:`DeviceArray` views of GPU memory.

    ``driver`` is ``pycuda.driver`` (memcpy functions), ``modules`` maps each kernels/*.cu
    stem to its compiled module, ``allocate(nbytes)`` returns an allocation (``int()`` gives
    its address).  :func:`create` builds it; tests may pass stand-ins.
    """

    name = "cuda"

    def __init__(self, driver: Any, modules: dict[str, Any], allocate: Callable[[int], Any],
                 sm_count: int, device_name: str = "GPU", arch: str = "") -> None:
        self._drv = driver
        self._modules = modules
        self._allocate = allocate
        self.sm_count = int(sm_count)
        self.device_name = device_name
        self.arch = arch
        self._signatures = kernel_signatures()
        self._functions: dict[str, Any] = {}
        self._max_blocks = 32 * self.sm_count

    def __repr__(self) -> str:
        return f"CudaBackend({self.device_name}, {self.arch}, {self.sm_count} SMs)"

    # -- plumbing ----------------------------------------------------------------------
    def _kernel(self, module: str, name: str) -> Any:
        """The prepared pycuda Function ``name`` of kernels/<module>.cu."""
        fn = self._functions.get(name)
        if fn is None:
            fmt = self._signatures[module].get(name)
            if fmt is None:   # a launch the signature table (and so the tests) do not know
                raise KeyError(f"cuda backend: kernel {name!r} is not declared for {module}.cu")
            fn = self._modules[module].get_function(name)
            fn.prepare(fmt)
            self._functions[name] = fn
        return fn

    def _has_kernel(self, module: str, name: str) -> bool:
        return name in self._signatures[module]

    def _launch(self, module: str, name: str, grid: tuple[int, ...], block: int, *args: Any) -> None:
        grid3 = tuple(grid) + (1,) * (3 - len(grid))
        self._kernel(module, name).prepared_call(grid3, (block, 1, 1), *args)

    def _empty(self, shape: Shape, dtype: Any) -> DeviceArray:
        dtype = _check_dtype(dtype)
        nbytes = prod(shape) * dtype.itemsize
        return DeviceArray(shape, dtype, self._allocate(nbytes) if nbytes else None)

    def _suffix(self, dtype: np.dtype) -> str:
        return SUFFIX[np.dtype(dtype)]

    def _scalar(self, value: Any, dtype: np.dtype) -> Any:
        """A Python scalar converted to the kernel's scalar type (numpy's casting rules)."""
        return np.array(value).astype(dtype).item() if dtype != np.bool_ else int(bool(value))

    def _ew(self, name: str, out: DeviceArray, inputs: Sequence[DeviceArray | None],
            scalars: Sequence[Any] = ()) -> None:
        """Launch an element-wise kernel over ``out`` (a view of any strides).

        ``inputs`` are arrays broadcastable to ``out.shape`` (or None where the kernel takes a
        scalar instead); their broadcast strides go into the Layout.
        """
        if out.size == 0:
            return
        strides = [out.strides]
        for x in inputs:
            strides.append((0,) * out.ndim if x is None
                           else broadcast_strides(x.shape, x.strides, out.shape))
        layout = pack_layout(out.shape, strides).tobytes()
        ptrs = [out.ptr] + [0 if x is None else x.ptr for x in inputs]
        self._launch("elementwise", name, (grid_size(out.size, BLOCK, self._max_blocks),),
                     BLOCK, layout, *ptrs, *scalars)

    def _to_device(self, x: Any) -> DeviceArray:
        return x if isinstance(x, DeviceArray) else self.array(x, np.asarray(x).dtype)

    def _contiguous(self, a: DeviceArray) -> DeviceArray:
        """``a`` itself if contiguous, else a compacted copy."""
        return a if a.is_contiguous else self.copy(a)

    def _copy_into(self, dst: DeviceArray, src: DeviceArray) -> None:
        """dst[...] = src (src broadcast to dst.shape, cast to dst.dtype); dst may be a view."""
        self._ew(f"cast_{self._suffix(src.dtype)}_{self._suffix(dst.dtype)}", dst, [src])

    # -- creation and transfer ------------------------------------------------------------
    def array(self, data: Any, dtype) -> DeviceArray:
        if isinstance(data, DeviceArray):
            return self.astype(data, data.dtype if dtype is None else dtype)
        host = np.array(data, dtype=dtype, order="C")   # (ascontiguousarray would make 0-d 1-d)
        _check_dtype(host.dtype)
        out = self._empty(host.shape, host.dtype)
        if out.size:
            self._drv.memcpy_htod(out.ptr, host)
        return out

    def to_numpy(self, a: DeviceArray) -> np.ndarray:
        a = self._contiguous(a)
        host = np.empty(a.shape, dtype=a.dtype)
        if a.size:
            self._drv.memcpy_dtoh(host, a.ptr)
        return host

    def full(self, shape: Shape, value: float, dtype) -> DeviceArray:
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        out = self._empty(shape, dtype)
        if out.size:
            sfx = self._suffix(out.dtype)
            self._launch("elementwise", f"fill_{sfx}",
                         (grid_size(out.size, BLOCK, self._max_blocks),), BLOCK,
                         out.ptr, out.size, self._scalar(value, out.dtype))
        return out

    def zeros(self, shape: Shape, dtype) -> DeviceArray:
        return self.full(shape, 0, dtype)

    def ones(self, shape: Shape, dtype) -> DeviceArray:
        return self.full(shape, 1, dtype)

    def astype(self, a: DeviceArray, dtype) -> DeviceArray:
        out = self._empty(a.shape, dtype)
        self._copy_into(out, a)
        return out

    def copy(self, a: DeviceArray) -> DeviceArray:
        return self.astype(a, a.dtype)

    def assign(self, dst: DeviceArray, src: Any) -> None:
        if dst.shape != np.shape(src) and not (isinstance(src, DeviceArray) and dst.shape == src.shape):
            src_shape = src.shape if isinstance(src, DeviceArray) else np.shape(src)
            raise ValueError(f"assign: destination shape {dst.shape} != source shape {src_shape}")
        if not isinstance(src, DeviceArray):
            host = np.array(np.asarray(src), dtype=dst.dtype, order="C")
            if dst.is_contiguous:
                if dst.size:
                    self._drv.memcpy_htod(dst.ptr, host)
                return
            src = self.array(host, dst.dtype)
        self._copy_into(dst, src)

    # -- movement (views) ------------------------------------------------------------------
    def reshape(self, a: DeviceArray, shape: Shape) -> DeviceArray:
        shape = resolve_shape(a.size, shape)
        strides = reshape_strides(a.shape, a.strides, shape)
        if strides is None:   # not expressible as a view: compact first
            a = self.copy(a)
            strides = contiguous_strides(shape)
        return a.view(shape, strides)

    def transpose(self, a: DeviceArray, axes: Sequence[int] | None = None) -> DeviceArray:
        if axes is None:
            axes = tuple(reversed(range(a.ndim)))
        axes = tuple(normalize_axis(int(x), a.ndim) for x in axes)
        if sorted(axes) != list(range(a.ndim)):
            raise ValueError("axes don't match array")
        return a.view(tuple(a.shape[x] for x in axes), tuple(a.strides[x] for x in axes))

    def broadcast_to(self, a: DeviceArray, shape: Shape) -> DeviceArray:
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        return a.view(shape, broadcast_strides(a.shape, a.strides, shape))

    def getitem(self, a: DeviceArray, index: Any) -> DeviceArray:
        shape, strides, offset = index_view(a.shape, a.strides, index)
        return a.view(shape, strides, a.offset + offset)

    def getitem_backward(self, grad: Any, shape: Shape, index: Any) -> DeviceArray:
        grad = self._to_device(grad)
        out = self.zeros(shape, grad.dtype)
        target = self.getitem(out, index)
        broadcast_shapes(target.shape, grad.shape)     # numpy's error if they do not fit
        self._copy_into(target, grad)   # basic indexing never repeats an element: a copy suffices
        return out

    def concatenate(self, arrays: Sequence[Any], axis: int) -> DeviceArray:
        arrays = [self._to_device(x) for x in arrays]
        if not arrays:
            raise ValueError("need at least one array to concatenate")
        first = arrays[0]
        if first.ndim == 0:
            raise ValueError("zero-dimensional arrays cannot be concatenated")
        axis = normalize_axis(axis, first.ndim)
        for i, x in enumerate(arrays[1:], start=1):
            if x.ndim != first.ndim:
                raise ValueError(
                    "all the input array dimensions except for the concatenation axis must "
                    f"match exactly, but the array at index 0 has {first.ndim} dimension(s) "
                    f"and the array at index {i} has {x.ndim} dimension(s)")
            for d in range(first.ndim):
                if d != axis and x.shape[d] != first.shape[d]:
                    raise ValueError(
                        "all the input array dimensions except for the concatenation axis must "
                        f"match exactly, but along dimension {d}, the array at index 0 has size "
                        f"{first.shape[d]} and the array at index {i} has size {x.shape[d]}")
        dtype = np.result_type(*[x.dtype for x in arrays])
        shape = list(first.shape)
        shape[axis] = sum(x.shape[axis] for x in arrays)
        out = self._empty(tuple(shape), dtype)
        start = 0
        for x in arrays:     # each input is copied into its slab of the output (a strided view)
            index = (slice(None),) * axis + (slice(start, start + x.shape[axis]),)
            self._copy_into(self.getitem(out, index), x)
            start += x.shape[axis]
        return out

    def stack(self, arrays: Sequence[Any], axis: int) -> DeviceArray:
        arrays = [self._to_device(x) for x in arrays]
        if not arrays:
            raise ValueError("need at least one array to stack")
        if any(x.shape != arrays[0].shape for x in arrays):
            raise ValueError("all input arrays must have the same shape")
        axis = normalize_axis(axis, arrays[0].ndim + 1)
        expanded = [self.getitem(x, (slice(None),) * axis + (None,)) for x in arrays]
        return self.concatenate(expanded, axis)

    # -- elementwise ------------------------------------------------------------------------
    def _unary(self, op: str, a: DeviceArray) -> DeviceArray:
        a = self._to_device(a)
        if a.dtype == np.bool_ or a.dtype == np.int64:
            if op in ("exp", "log", "tanh", "sqrt", "sigmoid"):   # numpy computes these in float64
                a = self.astype(a, np.float64)
        name = f"unary_{op}_{self._suffix(a.dtype)}"
        if not self._has_kernel("elementwise", name):
            raise TypeError(f"cuda backend: {op} is not supported for {a.dtype}")
        out = self._empty(a.shape, a.dtype)
        self._ew(name, out, [a])
        return out

    def _operands(self, *xs: Any) -> tuple[np.dtype, list[DeviceArray | None], list[Any], Shape]:
        """Common dtype (numpy 2 promotion: Python scalars are weak), device operands cast to it
        (None for scalars), the scalars (0 for arrays) and the broadcast shape."""
        arrays = [x for x in xs if isinstance(x, DeviceArray)]
        for x in xs:
            if not isinstance(x, DeviceArray) and np.ndim(x) != 0:
                raise TypeError(f"cuda backend: operands must be device arrays or scalars, "
                                f"got a {type(x).__name__} of shape {np.shape(x)}")
        if not arrays:
            raise TypeError("cuda backend: at least one operand must be a device array")
        weak = [x.item() if isinstance(x, (np.generic, np.ndarray)) else x
                for x in xs if not isinstance(x, DeviceArray)]
        dtype = np.result_type(*[a.dtype for a in arrays], *weak)
        shape = broadcast_shapes(*[a.shape for a in arrays])
        devs: list[DeviceArray | None] = []
        scalars: list[Any] = []
        for x in xs:
            if isinstance(x, DeviceArray):
                devs.append(x if x.dtype == dtype else self.astype(x, dtype))
                scalars.append(0)
            else:
                devs.append(None)
                scalars.append(self._scalar(x.item() if isinstance(x, (np.generic, np.ndarray)) else x, dtype))
        return np.dtype(dtype), devs, scalars, shape

    def _binary(self, op: str, a: Any, b: Any) -> DeviceArray:
        dtype, (da, db), scalars, shape = self._operands(a, b)
        if dtype == np.bool_ or (dtype == np.int64 and op in ("div", "pow")):
            dtype = np.dtype(np.float64) if op in ("div", "pow") else np.dtype(np.int64)
            da, db = (None if x is None else self.astype(x, dtype) for x in (da, db))
            scalars = [self._scalar(s, dtype) for s in scalars]
        name = f"binary_{op}_{self._suffix(dtype)}"
        if not self._has_kernel("elementwise", name):
            raise TypeError(f"cuda backend: {op} is not supported for {dtype}")
        out = self._empty(shape, dtype)
        self._ew(name, out, [da, db], scalars)
        return out

    def _compare(self, op: str, a: Any, b: Any) -> DeviceArray:
        dtype, (da, db), scalars, shape = self._operands(a, b)
        out = self._empty(shape, np.bool_)
        self._ew(f"cmp_{op}_{self._suffix(dtype)}", out, [da, db], scalars)
        return out

    def add(self, a, b): return self._binary("add", a, b)
    def sub(self, a, b): return self._binary("sub", a, b)
    def mul(self, a, b): return self._binary("mul", a, b)
    def div(self, a, b): return self._binary("div", a, b)
    def maximum(self, a, b): return self._binary("maximum", a, b)
    def neg(self, a): return self._unary("neg", a)
    def exp(self, a): return self._unary("exp", a)
    def log(self, a): return self._unary("log", a)
    def tanh(self, a): return self._unary("tanh", a)
    def sigmoid(self, a): return self._unary("sigmoid", a)
    def relu(self, a): return self._unary("relu", a)
    def sqrt(self, a): return self._unary("sqrt", a)

    def power(self, a, exponent):
        if not isinstance(exponent, DeviceArray) and exponent == 2:
            return self._binary("mul", a, a)     # exact square, like numpy's fast path
        return self._binary("pow", a, exponent)

    def equal(self, a, b): return self._compare("eq", a, b)
    def not_equal(self, a, b): return self._compare("ne", a, b)
    def greater(self, a, b): return self._compare("gt", a, b)
    def greater_equal(self, a, b): return self._compare("ge", a, b)
    def less(self, a, b): return self._compare("lt", a, b)
    def less_equal(self, a, b): return self._compare("le", a, b)

    def where(self, cond, a, b):
        cond = self._to_device(cond)
        if cond.dtype != np.bool_:
            cond = self.astype(cond, np.bool_)
        dtype, (da, db), scalars, shape = self._operands(a, b)
        shape = broadcast_shapes(cond.shape, shape)
        out = self._empty(shape, dtype)
        self._ew(f"where_{self._suffix(dtype)}", out, [cond, da, db], scalars)
        return out

    # -- reductions --------------------------------------------------------------------------
    def _reduce_rows(self, op: str, src: DeviceArray, rows: int, cols: int) -> DeviceArray:
        """Reduce each row of the contiguous (rows, cols) ``src``; returns a contiguous (rows,)."""
        threads = reduce_threads(cols)
        parts = reduce_parts(rows, cols, threads, 8 * self.sm_count)
        seg = -(-cols // parts)
        parts = -(-cols // seg)            # no empty segment
        out = self._empty((rows, parts), src.dtype)
        self._launch("reduce", f"reduce_rows_{op}_{self._suffix(src.dtype)}", (rows, parts),
                     threads, src.ptr, out.ptr, rows, cols, seg)
        if parts > 1:                      # second pass over the per-block partial results
            return self._reduce_rows(op, out, rows, parts)
        return out.view((rows,), (1,))

    def _reduce(self, op: str, a: DeviceArray, axis: Axis, keepdims: bool) -> DeviceArray:
        a = self._to_device(a)
        axes = normalize_axes(axis, a.ndim)
        kept = [d for d in range(a.ndim) if d not in axes]
        out_shape = tuple(a.shape[d] for d in kept)
        keep_shape = tuple(1 if d in axes else n for d, n in enumerate(a.shape))
        final = keep_shape if keepdims else out_shape
        if a.dtype == np.bool_:            # numpy: sum of bools counts (int64); max stays bool
            result = self._reduce(op, self.astype(a, np.int64), axis, keepdims)
            return result if op == "sum" else self.astype(result, np.bool_)
        if a.dtype not in (np.float32, np.float64, np.int64):
            raise TypeError(f"cuda backend: {op} is not supported for {a.dtype}")
        R = prod(a.shape[d] for d in axes)
        if R == 0 and op != "sum" and prod(out_shape) != 0:
            name = {"max": "maximum", "min": "minimum"}[op]
            raise ValueError(f"zero-size array to reduction operation {name} which has no identity")
        if prod(out_shape) == 0 or R == 0:
            return self.zeros(final, a.dtype)
        if not axes:
            return self.reshape(self.copy(a), final)
        rows = prod(out_shape)
        sfx = self._suffix(a.dtype)
        consecutive = list(axes) == list(range(axes[0], axes[-1] + 1))
        inner = prod(a.shape[axes[-1] + 1:])
        if a.is_contiguous and consecutive and inner > 1 and (R <= 64 or rows >= 32768):
            # "middle" form (outer, R, inner): one thread per output, coalesced along inner
            out = self._empty(out_shape, a.dtype)
            outer = rows // inner
            self._launch("reduce", f"reduce_mid_{op}_{sfx}",
                         (grid_size(rows, BLOCK, self._max_blocks),), BLOCK,
                         a.ptr, out.ptr, outer, R, inner)
        else:
            # "rows" form: kept axes first, reduced axes last, compacted to (rows, R)
            src = self._contiguous(self.transpose(a, kept + list(axes)))
            out = self._reduce_rows(op, src, rows, R)
        return self.reshape(out, final)

    def sum(self, a, axis: Axis = None, keepdims: bool = False):
        return self._reduce("sum", a, axis, keepdims)

    def max(self, a, axis: Axis = None, keepdims: bool = False):
        return self._reduce("max", a, axis, keepdims)

    def argmax(self, a, axis: int | None = None):
        a = self._to_device(a)
        if a.dtype == np.bool_:
            a = self.astype(a, np.int64)
        if axis is None:
            src, rows, cols, out_shape = self._contiguous(a), 1, a.size, ()
        else:
            axis = normalize_axis(axis, a.ndim)
            kept = [d for d in range(a.ndim) if d != axis]
            src = self._contiguous(self.transpose(a, kept + [axis]))
            rows, cols = prod(a.shape[d] for d in kept), a.shape[axis]
            out_shape = tuple(a.shape[d] for d in kept)
        if cols == 0:
            raise ValueError("attempt to get argmax of an empty sequence")
        out = self._empty(out_shape, np.int64)
        if rows:
            self._launch("reduce", f"argmax_rows_{self._suffix(a.dtype)}", (rows,),
                         reduce_threads(cols), src.ptr, out.ptr, rows, cols)
        return out

    # -- linear algebra -----------------------------------------------------------------------
    def matmul(self, a, b):
        a, b = self._to_device(a), self._to_device(b)
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError("matmul: Input operand does not have enough dimensions")
        dtype = np.result_type(a.dtype, b.dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"cuda backend: matmul is not supported for {dtype}")
        a = a if a.dtype == dtype else self.astype(a, dtype)
        b = b if b.dtype == dtype else self.astype(b, dtype)
        a2 = self.reshape(a, (1, a.shape[0])) if a.ndim == 1 else a
        b2 = self.reshape(b, (b.shape[0], 1)) if b.ndim == 1 else b
        (m, k), (k2, n) = a2.shape[-2:], b2.shape[-2:]
        if k != k2:
            raise ValueError(
                "matmul: Input operand 1 has a mismatch in its core dimension 0, with gufunc "
                f"signature (n?,k),(k,m?)->(n?,m?) (size {k2} is different from {k})")
        batch = broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        nbatch = prod(batch)
        out = self._empty(batch + (m, n), dtype)
        if out.size:
            operands = []
            for x, core in ((a2, (m, k)), (b2, (k, n))):
                x = self.broadcast_to(x, batch + core)
                bstride = flat_batch_stride(batch, x.strides[:-2])
                if bstride is None:          # batch dims not walkable with one stride: compact
                    x = self.copy(x)
                    bstride = flat_batch_stride(batch, x.strides[:-2])
                operands.append((x, bstride))
            (xa, sab), (xb, sbb) = operands
            name, grid = matmul_plan(m, n, nbatch, np.dtype(dtype), self.sm_count)
            item = np.dtype(dtype).itemsize
            for z0 in range(0, nbatch, 65535):   # grid.z is limited to 65535
                zb = min(65535, nbatch - z0)
                self._launch("matmul", name, grid[:2] + (zb,), MATMUL_THREADS,
                             xa.ptr + z0 * sab * item, xb.ptr + z0 * sbb * item,
                             out.ptr + z0 * m * n * item, m, n, k,
                             sab, xa.strides[-2], xa.strides[-1],
                             sbb, xb.strides[-2], xb.strides[-1])
        if a.ndim == 1:
            out = self.reshape(out, out.shape[:-2] + out.shape[-1:])
        if b.ndim == 1:
            out = self.reshape(out, out.shape[:-1])
        return out

    # -- fused numerics ---------------------------------------------------------------------
    def _rows_last(self, a: DeviceArray, axes: tuple[int, ...]) -> tuple[DeviceArray, int, int, list[int]]:
        """``a`` with ``axes`` moved last and compacted: (src, rows, cols, permutation)."""
        kept = [d for d in range(a.ndim) if d not in axes]
        perm = kept + list(axes)
        src = self._contiguous(self.transpose(a, perm))
        return src, prod(a.shape[d] for d in kept), prod(a.shape[d] for d in axes), perm

    def _float(self, a: Any) -> DeviceArray:
        a = self._to_device(a)
        return a if a.dtype in (np.float32, np.float64) else self.astype(a, np.float64)

    def logsumexp(self, a, axis: Axis, keepdims: bool = False):
        a = self._float(a)
        axes = normalize_axes(axis, a.ndim)
        src, rows, cols, _ = self._rows_last(a, axes)
        keep_shape = tuple(1 if d in axes else n for d, n in enumerate(a.shape))
        out_shape = tuple(n for d, n in enumerate(a.shape) if d not in axes)
        if cols == 0 and rows:
            raise ValueError("zero-size array to reduction operation maximum which has no identity")
        out = self._empty((rows,), a.dtype)
        if rows:
            self._launch("softmax_xent", f"logsumexp_rows_{self._suffix(a.dtype)}", (rows,),
                         reduce_threads(cols), src.ptr, out.ptr, rows, cols)
        return self.reshape(out, keep_shape if keepdims else out_shape)

    def log_softmax(self, a, axis: int = -1):
        a = self._float(a)
        axes = normalize_axes(axis, a.ndim)
        src, rows, cols, perm = self._rows_last(a, axes)
        out = self._empty(src.shape, a.dtype)
        if rows and cols:
            self._launch("softmax_xent", f"log_softmax_rows_{self._suffix(a.dtype)}", (rows,),
                         reduce_threads(cols), src.ptr, out.ptr, rows, cols)
        inverse = [perm.index(d) for d in range(a.ndim)]
        return self.transpose(out, inverse)   # a view back in the caller's axis order

    @withheld("fused softmax cross-entropy: its gradient is (softmax - onehot)/m, what notebook 01 asks for")
    def softmax_cross_entropy(self, logits, labels):
        logits = self._float(logits)
        labels = self._to_device(labels)
        if logits.ndim != 2:
            raise ValueError(f"softmax_cross_entropy: logits must be 2-D (m, k); got shape {logits.shape}")
        m, k = logits.shape
        if labels.shape != (m,):
            raise ValueError(f"softmax_cross_entropy: labels must have shape ({m},); got {labels.shape}")
        if labels.dtype != np.int64:
            if labels.dtype.kind not in "iub":
                raise IndexError("arrays used as indices must be of integer (or boolean) type")
            labels = self.astype(labels, np.int64)
        labels = self._contiguous(labels)
        logits = self._contiguous(logits)
        if m:
            # the one check that has to look at device data: 16 bytes come back to the host
            lo_hi = self.to_numpy(self.concatenate([self._reduce("min", labels, None, True),
                                                    self._reduce("max", labels, None, True)], 0))
            lo, hi = int(lo_hi[0]), int(lo_hi[1])
            if lo < 0 or hi >= k:
                raise ValueError(f"softmax_cross_entropy: labels must lie in [0, {k}); "
                                 f"got values from {lo} to {hi}")
        dlogits = self._empty((m, k), logits.dtype)
        if m == 0:
            return self.full((), np.nan, logits.dtype), dlogits
        loss_rows = self._empty((m,), logits.dtype)
        sfx = self._suffix(logits.dtype)
        self._launch("softmax_xent", f"softmax_xent_rows_{sfx}", (m,), reduce_threads(k),
                     logits.ptr, labels.ptr, loss_rows.ptr, dlogits.ptr, m, k,
                     self._scalar(1.0 / m, logits.dtype))
        loss = self._binary("mul", self._reduce_rows("sum", loss_rows, 1, m), 1.0 / m)
        return self.reshape(loss, ()), dlogits

    def one_hot(self, labels, num_classes: int, dtype):
        labels = self._to_device(labels)
        if labels.dtype != np.int64:
            labels = self.astype(labels, np.int64)
        labels = self._contiguous(labels)
        out = self._empty(labels.shape + (int(num_classes),), dtype)
        if out.size:
            self._launch("elementwise", f"one_hot_{self._suffix(out.dtype)}",
                         (grid_size(out.size, BLOCK, self._max_blocks),), BLOCK,
                         out.ptr, labels.ptr, labels.size, int(num_classes))
        return out

    # -- fused optimizer updates (in place) ----------------------------------------------------
    def _check_state(self, who: str, param: Any, **arrays: Any) -> dict[str, DeviceArray]:
        if not isinstance(param, DeviceArray) or not param.is_contiguous:
            raise ValueError(f"{who}: param must be a contiguous cuda array")
        if param.dtype not in (np.float32, np.float64):
            raise TypeError(f"{who}: param must be float32 or float64, not {param.dtype}")
        checked = {}
        for name, x in arrays.items():
            x = self._to_device(x)
            if x.shape != param.shape:
                raise ValueError(f"{who}: {name} has shape {x.shape} but param has shape {param.shape}")
            if name != "grad" and (x.dtype != param.dtype or not x.is_contiguous):
                raise ValueError(f"{who}: state {name} must be a contiguous {param.dtype} array")
            if name == "grad":
                x = self._contiguous(x if x.dtype == param.dtype else self.astype(x, param.dtype))
            checked[name] = x
        return checked

    @withheld("fused SGD step: the optimizers of notebook 03")
    def sgd_step(self, param, grad, buf, *, lr: float, momentum: float, dampening: float,
                 weight_decay: float, nesterov: bool, first_step: bool) -> None:
        arrays = {"grad": grad} if momentum == 0 else {"grad": grad, "buf": buf}
        st = self._check_state("sgd_step", param, **arrays)
        if param.size == 0:
            return
        sc = lambda x: self._scalar(x, param.dtype)   # noqa: E731
        self._launch("optim", f"sgd_step_{self._suffix(param.dtype)}",
                     (grid_size(param.size, BLOCK, self._max_blocks),), BLOCK,
                     param.ptr, st["grad"].ptr, st["buf"].ptr if "buf" in st else 0, param.size,
                     sc(lr), sc(momentum), sc(dampening), sc(weight_decay),
                     int(bool(nesterov)), int(bool(first_step)))

    @withheld("fused Adam step: the optimizers of notebook 03")
    def adam_step(self, param, grad, m, v, *, lr: float, beta1: float, beta2: float, eps: float,
                  weight_decay: float, step: int, bias_correction: bool, decoupled: bool) -> None:
        st = self._check_state("adam_step", param, grad=grad, m=m, v=v)
        if param.size == 0:
            return
        if bias_correction:
            bc1, bc2_sqrt = 1 - beta1 ** step, math.sqrt(1 - beta2 ** step)
        else:
            bc1, bc2_sqrt = 1.0, 1.0
        sc = lambda x: self._scalar(x, param.dtype)   # noqa: E731
        self._launch("optim", f"adam_step_{self._suffix(param.dtype)}",
                     (grid_size(param.size, BLOCK, self._max_blocks),), BLOCK,
                     param.ptr, st["grad"].ptr, st["m"].ptr, st["v"].ptr, param.size,
                     sc(lr), sc(beta1), sc(beta2), sc(eps), sc(weight_decay), sc(bc1),
                     sc(bc2_sqrt), int(bool(decoupled)))

    # -- extras used by benchmarks -------------------------------------------------------------
    def synchronize(self) -> None:
        """Wait for every launched kernel to finish (kernels are asynchronous)."""
        self._drv.Context.synchronize()


def _check_dtype(dtype: Any) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in SUFFIX:
        raise TypeError(f"cuda backend: dtype {dtype} is not supported "
                        f"(use float32, float64, int64 or bool)")
    return dtype

