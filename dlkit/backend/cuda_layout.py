"""Pure host-side helpers of the CUDA backend: shapes, strides, broadcasting, launch geometry.

A :class:`~dlkit.backend.cuda.DeviceArray` is a view (shape, strides, offset) of device
memory; everything that can be worked out from those numbers alone lives here: merging dims
that operands walk contiguously (:func:`coalesce`), packing the ``Layout`` struct the
element-wise kernels read (:func:`pack_layout`), no-copy reshape and basic indexing as new
views, and how many blocks / threads / which matmul tile a launch uses.  The shape rules shared
with the ops (broadcasting, axes, ``-1`` in reshape) live in :mod:`dlkit.shapes` and are
re-exported here.

None of this needs pycuda or a GPU; tests/test_cuda_fallback.py checks it against numpy on
every CI run.  Strides and offsets are counted in ELEMENTS (numpy's are in bytes).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..shapes import (  # noqa: F401  (re-exported for the CUDA backend)
    broadcast_shapes, normalize_axes, normalize_axis, prod, resolve_shape)
from .base import Shape
from .cuda_kernels import LAYOUT_FIELDS, MATMUL_TILES, MAX_DIMS

Strides = tuple[int, ...]


# =======================================================================================
# Pure layout helpers (no GPU needed).  Strides are in ELEMENTS, numpy's are in bytes.
# =======================================================================================
def contiguous_strides(shape: Shape) -> Strides:
    """Row-major (C order) strides, in elements, of a contiguous array of ``shape``."""
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


def is_contiguous(shape: Shape, strides: Strides) -> bool:
    """True when the elements lie in C order without gaps (dims of extent 1 are ignored)."""
    if prod(shape) == 0:
        return True
    expected = 1
    for n, s in zip(reversed(shape), reversed(strides)):
        if n != 1 and s != expected:
            return False
        expected *= n
    return True


def broadcast_strides(shape: Shape, strides: Strides, out_shape: Shape) -> Strides:
    """Strides that read an array of ``shape`` as if broadcast to ``out_shape`` (0 where repeated)."""
    if len(shape) > len(out_shape):
        raise ValueError(f"cannot broadcast shape {tuple(shape)} to {tuple(out_shape)}")
    lead = len(out_shape) - len(shape)
    result = [0] * lead
    for n, s, m in zip(shape, strides, out_shape[lead:]):
        if n == m:
            result.append(s if m != 1 else 0)
        elif n == 1:
            result.append(0)
        else:
            raise ValueError(f"cannot broadcast shape {tuple(shape)} to {tuple(out_shape)}")
    return tuple(result)


def coalesce(shape: Shape, strides_list: Sequence[Strides]) -> tuple[Shape, list[Strides]]:
    """Merge neighbouring dims that every operand walks through contiguously.

    Dims (extent E, stride S) followed by (n, s) merge into (E*n, s) when S == s*n for *every*
    operand; extent-1 dims are dropped.  A contiguous (1024, 256) array with a contiguous
    same-shape partner becomes one dim of 262144, so the kernel does no division at all.
    Returns at least one dim (``(1,)`` with zero strides for a single element).
    """
    keep = [d for d, n in enumerate(shape) if n != 1]
    if not keep:
        return (1,), [(0,) for _ in strides_list]
    new_shape = [shape[keep[0]]]
    new_strides = [[s[keep[0]]] for s in strides_list]
    for d in keep[1:]:
        n = shape[d]
        if all(ns[-1] == s[d] * n for ns, s in zip(new_strides, strides_list)):
            new_shape[-1] *= n
            for ns, s in zip(new_strides, strides_list):
                ns[-1] = s[d]
        else:
            new_shape.append(n)
            for ns, s in zip(new_strides, strides_list):
                ns.append(s[d])
    return tuple(new_shape), [tuple(ns) for ns in new_strides]


def pack_layout(shape: Shape, strides_list: Sequence[Strides]) -> np.ndarray:
    """The ``Layout`` struct of kernels/common.cuh as an int64 array (after :func:`coalesce`).

    ``strides_list[0]`` is the output's, then up to three inputs'.  Dims are right-aligned in
    the MAX_DIMS slots; unused slots have extent 1 and stride 0.
    """
    if len(strides_list) > 4:
        raise ValueError("a Layout holds at most 4 operands")
    cshape, cstrides = coalesce(shape, strides_list)
    ndim = len(cshape)
    if ndim > MAX_DIMS:
        raise ValueError(f"cuda backend: element-wise kernels support at most {MAX_DIMS} "
                         f"non-mergeable dims; got shape {tuple(shape)}")
    layout = np.zeros(LAYOUT_FIELDS, dtype=np.int64)
    layout[0] = ndim
    layout[1] = prod(shape)
    first = MAX_DIMS - ndim
    layout[2:2 + MAX_DIMS] = 1
    layout[2 + first:2 + MAX_DIMS] = cshape
    for k, st in enumerate(cstrides):
        base = 2 + MAX_DIMS * (1 + k)
        layout[base + first:base + MAX_DIMS] = st
    return layout


def reshape_strides(shape: Shape, strides: Strides, new_shape: Shape) -> Strides | None:
    """Strides that view the same elements with ``new_shape`` in C order, or None if a copy is needed.

    numpy's no-copy reshape: walk the old and new dims in step, grouping dims until the
    extents match; a group of old dims can be re-split only if it is contiguous in itself.
    """
    if prod(shape) == 0 or prod(new_shape) <= 1:
        return contiguous_strides(new_shape)
    old = [(n, s) for n, s in zip(shape, strides) if n != 1]
    new_strides = [0] * len(new_shape)
    oi, oj, ni, nj = 0, 1, 0, 1
    while ni < len(new_shape) and oi < len(old):
        np_, op = new_shape[ni], old[oi][0]
        while np_ != op:
            if np_ < op:
                np_ *= new_shape[nj]
                nj += 1
            else:
                op *= old[oj][0]
                oj += 1
        for ok in range(oi, oj - 1):
            if old[ok][1] != old[ok + 1][0] * old[ok + 1][1]:
                return None
        new_strides[nj - 1] = old[oj - 1][1]
        for nk in range(nj - 1, ni, -1):
            new_strides[nk - 1] = new_strides[nk] * new_shape[nk]
        ni, nj = nj, nj + 1
        oi, oj = oj, oj + 1
    return tuple(new_strides)     # trailing extent-1 dims keep stride 0


def index_view(shape: Shape, strides: Strides, index: Any) -> tuple[Shape, Strides, int]:
    """Basic indexing: (shape, strides, element offset) of ``a[index]`` for a view of ``shape``."""
    items = index if isinstance(index, tuple) else (index,)
    for it in items:
        if not (it is None or it is Ellipsis or isinstance(it, slice)
                or (isinstance(it, (int, np.integer)) and not isinstance(it, (bool, np.bool_)))):
            raise IndexError(f"cuda backend: only basic indexing (ints, slices, None, ...) is "
                             f"supported; got {type(it).__name__}")
    if sum(it is Ellipsis for it in items) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    consumed = sum(1 for it in items if it is not None and it is not Ellipsis)
    if consumed > len(shape):
        raise IndexError(f"too many indices for array: array is {len(shape)}-dimensional, "
                         f"but {consumed} were indexed")
    fill = (slice(None),) * (len(shape) - consumed)
    if Ellipsis in [it for it in items if it is Ellipsis]:
        k = next(i for i, it in enumerate(items) if it is Ellipsis)
        items = items[:k] + fill + items[k + 1:]
    else:
        items = items + fill
    out_shape: list[int] = []
    out_strides: list[int] = []
    offset, d = 0, 0
    for it in items:
        if it is None:
            out_shape.append(1)
            out_strides.append(0)
            continue
        n, s = shape[d], strides[d]
        if isinstance(it, slice):
            start, stop, step = it.indices(n)
            length = len(range(start, stop, step))
            if length:
                offset += start * s
            out_shape.append(length)
            out_strides.append(s * step)
        else:
            i = int(it)
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for axis {d} with size {n}")
            offset += (i % n) * s
        d += 1
    return tuple(out_shape), tuple(out_strides), offset


def grid_size(n: int, block: int, max_blocks: int) -> int:
    """Blocks for a grid-stride loop over ``n`` items: enough to cover n, at most max_blocks."""
    return max(1, min(-(-n // block), max_blocks))


def reduce_threads(cols: int) -> int:
    """Block size of a row reduction: a power of two in [32, 256], no bigger than the row needs."""
    t = 32
    while t < cols and t < 256:
        t *= 2
    return t


def reduce_parts(rows: int, cols: int, threads: int, target_blocks: int) -> int:
    """How many blocks share one row: >1 only when there are too few rows to fill the GPU."""
    if rows >= target_blocks:
        return 1
    parts = min(-(-target_blocks // rows), -(-cols // (4 * threads)), 65535)
    return max(1, parts)


def matmul_plan(m: int, n: int, batch: int, dtype: np.dtype, sm_count: int) -> tuple[str, tuple[int, int, int]]:
    """Kernel name and grid (x over N tiles, y over M tiles, z over the batch) for C = A @ B.

    float32 uses the 128x128 tile when that still gives at least one block per SM, else the
    64x64 tile (four times as many blocks for a small problem); float64 always 64x64.
    """
    if dtype == np.float64:
        name = "matmul_64x64_f64"
    else:
        tiles = -(-m // 128) * -(-n // 128) * batch
        name = "matmul_128x128_f32" if tiles >= sm_count else "matmul_64x64_f32"
    bm, bn = MATMUL_TILES[name]
    gy = -(-m // bm)
    if gy > 65535:
        raise ValueError(f"matmul: {m} rows exceed the cuda backend's grid limit ({65535 * bm})")
    return name, (-(-n // bn), gy, min(batch, 65535))


def flat_batch_stride(batch_shape: Shape, batch_strides: Strides) -> int | None:
    """One stride walking all batch dims in C order (0 if broadcast), or None if there is none."""
    if prod(batch_shape) <= 1:
        return 0
    cshape, (cstrides,) = coalesce(batch_shape, [batch_strides])
    return cstrides[0] if len(cshape) == 1 else None
