"""Shape rules and argument checks, in one place for the ops and every backend.

``ops.py`` calls these *before* any backend runs, so every backend reports the same errors and
the ops themselves stay short; the CUDA backend uses the same rules for its own layouts.

Every function has two wordings for its errors: with ``what`` (the name of the dlkit operation,
e.g. ``"add (+)"``) the message names the operation and says what to do; without it the message
is numpy's, which a backend imitating numpy needs.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, Sequence

import numpy as np

Shape = tuple[int, ...]

FLOAT_DTYPES = (np.dtype("float32"), np.dtype("float64"))

__all__ = [
    "Shape", "FLOAT_DTYPES", "prod", "broadcast_shapes", "normalize_axis", "normalize_axes",
    "keepdims_shape", "resolve_shape", "check_permutation", "check_broadcast_to",
    "check_index", "check_matmul", "check_same_dtype", "check_stack", "check_concatenate",
    "check_cross_entropy", "is_scalar",
]


def prod(xs: Iterable[int]) -> int:
    """The product of some sizes (1 for none), as a Python int."""
    return math.prod(int(x) for x in xs)


def is_scalar(x: Any) -> bool:
    """A Python or numpy number (not an array): the operand of the scalar ops."""
    return isinstance(x, (numbers.Number, np.generic)) and not isinstance(x, np.ndarray)


# ------------------------------------------------------------------------------ broadcasting
def broadcast_shapes(*shapes: Shape, what: str | None = None) -> Shape:
    """numpy's broadcasting rule: align from the right; sizes must match or be 1."""
    if len(shapes) == 2:
        a, b = shapes
        if a == b:
            return tuple(a)
        if len(b) <= len(a) and tuple(a[len(a) - len(b):]) == tuple(b):    # (m, n) and a bias (n,)
            return tuple(a)
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for d in range(-ndim, 0):
        sizes = {s[d] for s in shapes if len(s) >= -d} - {1}
        if len(sizes) > 1:
            if what is None:
                listed = " ".join(str(tuple(s)) for s in shapes)
                raise ValueError(f"operands could not be broadcast together with shapes {listed}")
            listed = " and ".join(str(tuple(s)) for s in shapes)
            got = " vs ".join(str(s[d]) if len(s) >= -d else "-" for s in shapes)
            raise ValueError(f"{what}: shapes {listed} cannot be broadcast together "
                             f"(axis {d}: {got})")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def check_broadcast_to(shape: Shape, target: Shape) -> None:
    """``shape`` can be broadcast to exactly ``target`` (new axes in front, or size-1 axes)."""
    ok = len(target) >= len(shape) and all(
        n == t or n == 1 for n, t in zip(shape, target[len(target) - len(shape):]))
    if not ok:
        raise ValueError(f"broadcast_to: cannot broadcast shape {tuple(shape)} to {tuple(target)}")


# ------------------------------------------------------------------------------ axes
def normalize_axis(axis: int, ndim: int, what: str | None = None) -> int:
    """One axis as a non-negative int; negative axes count from the end."""
    if what is None:                       # numpy's rule and error
        if not -ndim <= axis < ndim:
            raise np.exceptions.AxisError(axis, ndim)
        return int(axis) % ndim
    if not -ndim <= axis < max(ndim, 1) or (ndim == 0 and axis not in (0, -1)):
        raise ValueError(f"{what}: axis {axis} is out of range for a tensor with {ndim} dims")
    return int(axis) % max(ndim, 1)


def normalize_axes(axis: Any, ndim: int, what: str | None = None) -> tuple[int, ...]:
    """None -> all axes; an int or a tuple -> a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = [normalize_axis(int(ax), ndim, what) for ax in axes]
    if len(set(out)) != len(out):
        raise ValueError("duplicate value in 'axis'" if what is None
                         else f"{what}: repeated axis in {axis}")
    return tuple(sorted(out))


def keepdims_shape(shape: Shape, axes: Sequence[int]) -> Shape:
    """``shape`` with the reduced ``axes`` kept as size 1 (what ``keepdims=True`` gives)."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def check_permutation(axes: Sequence[int] | None, ndim: int, shape: Shape) -> tuple[int, ...]:
    """The axes of a transpose (default: reversed), checked to be a permutation."""
    if axes is None:
        return tuple(range(ndim))[::-1]
    out = tuple(int(ax) % ndim if ndim else int(ax) for ax in axes)
    if sorted(out) != list(range(ndim)):
        raise ValueError(f"transpose: axes {tuple(axes)} are not a permutation of the "
                         f"{ndim} axes of a tensor of shape {tuple(shape)}")
    return out


# ------------------------------------------------------------------------------ reshape
def resolve_shape(size: int, shape: Any, what: str | None = None, old: Shape | None = None) -> Shape:
    """``shape`` (an int or a sequence; one entry may be -1) for ``size`` elements."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(n) for n in shape)

    def bad() -> ValueError:
        if what is None:
            return ValueError(f"cannot reshape array of size {size} into shape {shape}")
        return ValueError(f"{what}: cannot reshape a tensor of shape {old} ({size} elements) "
                          f"into shape {shape}")

    if shape.count(-1) > 1:
        raise ValueError("can only specify one unknown dimension") if what is None else bad()
    if -1 in shape:
        known = prod(n for n in shape if n != -1)
        if known == 0 or size % known:
            raise bad()
        shape = tuple(size // known if n == -1 else n for n in shape)
    if prod(shape) != size or any(n < 0 for n in shape):
        raise bad()
    return shape


# ------------------------------------------------------------------------------ indexing
def check_index(index: Any, shape: Shape) -> tuple:
    """Normalise a basic index (ints, slices, None, Ellipsis) and check it against ``shape``."""
    index = index if isinstance(index, tuple) else (index,)
    out = []
    for item in index:
        if isinstance(item, (bool, np.bool_)) or not (
                item is None or item is Ellipsis or isinstance(item, (slice, int, np.integer))):
            raise TypeError(f"indexing: only ints, slices, None and ... are supported, got "
                            f"{type(item).__name__}; use where() or one_hot() instead of masks "
                            f"or index arrays")
        out.append(int(item) if isinstance(item, np.integer) else item)
    if out.count(Ellipsis) > 1:
        raise IndexError("indexing: an index can only have a single ellipsis (...)")
    used = sum(1 for item in out if item is not None and item is not Ellipsis)
    if used > len(shape):
        raise IndexError(f"indexing: too many indices ({used}) for a tensor of shape {shape}")
    if Ellipsis in out:
        at = out.index(Ellipsis)
        out[at:at + 1] = [slice(None)] * (len(shape) - used)
    axis = 0
    for item in out:
        if item is None:
            continue
        if isinstance(item, int) and not -shape[axis] <= item < shape[axis]:
            raise IndexError(f"indexing: index {item} is out of bounds for axis {axis} "
                             f"with size {shape[axis]} (tensor shape {shape})")
        axis += 1
    return tuple(out)


# ------------------------------------------------------------------------------ operands
def check_same_dtype(da: np.dtype, db: np.dtype, what: str) -> None:
    """Two float dtypes may not be mixed (convert one explicitly)."""
    if da != db and da in FLOAT_DTYPES and db in FLOAT_DTYPES:
        raise TypeError(f"{what}: cannot mix {da} and {db} tensors; convert one with "
                        f".astype('{da}') or .astype('{db}')")


def check_matmul(sa: Shape, sb: Shape) -> None:
    """Operands of ``@``: at least 1 dim each; for >= 2 dims, aligned inner sizes and
    broadcastable batch axes (1-D operands are reshaped to matrices before the second check)."""
    if len(sa) == 0 or len(sb) == 0:
        raise ValueError(f"matmul (@): operands must have at least 1 dim; got shapes "
                         f"{sa} and {sb} (use * for scalars)")
    if len(sa) == 1 or len(sb) == 1:
        return
    if sa[-1] != sb[-2]:
        raise ValueError(f"matmul (@): shapes {sa} and {sb} are not aligned: "
                         f"{sa[-1]} (last dim of the left) != {sb[-2]} "
                         f"(second-to-last dim of the right)")
    if len(sa) > 2 or len(sb) > 2:
        broadcast_shapes(sa[:-2], sb[:-2], what=f"matmul (@) batch dims of {sa} and {sb}")


def check_stack(shapes: Sequence[Shape], dtypes: Sequence[np.dtype], axis: int, what: str) -> int:
    """Tensors of one shape and dtype, and a valid new ``axis``; returns it non-negative."""
    _check_many(shapes, dtypes, what)
    shape = shapes[0]
    for i, s in enumerate(shapes):
        if s != shape:
            raise ValueError(f"{what}: all tensors need the same shape; tensors[0] has {shape}, "
                             f"tensors[{i}] has {s}")
    if not -len(shape) - 1 <= axis <= len(shape):
        raise ValueError(f"{what}: axis {axis} is out of range for {len(shape) + 1} dims")
    return axis % (len(shape) + 1)


def check_concatenate(shapes: Sequence[Shape], dtypes: Sequence[np.dtype], axis: int) -> int:
    """Tensors whose shapes match except on ``axis``; returns it non-negative."""
    what = "concatenate"
    _check_many(shapes, dtypes, what)
    shape = shapes[0]
    if not shape:
        raise ValueError(f"{what}: zero-dimensional tensors cannot be concatenated")
    if not -len(shape) <= axis < len(shape):
        raise ValueError(f"{what}: axis {axis} is out of range for {len(shape)} dims")
    axis %= len(shape)
    for i, s in enumerate(shapes):
        if len(s) != len(shape) or any(n != m for k, (n, m) in enumerate(zip(s, shape)) if k != axis):
            raise ValueError(f"{what}: shapes must match except on axis {axis}; "
                             f"tensors[0] has {shape}, tensors[{i}] has {s}")
    return axis


def _check_many(shapes: Sequence[Shape], dtypes: Sequence[np.dtype], what: str) -> None:
    if not shapes:
        raise TypeError(f"{what}: needs a non-empty sequence of Tensors")
    if len(set(dtypes)) > 1:
        raise TypeError(f"{what}: cannot mix dtypes {sorted(map(str, set(dtypes)))}")


def check_cross_entropy(logits_shape: Shape, logits_dtype: np.dtype, labels_shape: Shape,
                        labels_dtype: np.dtype) -> None:
    """Logits (m, k) float, labels (m,) integer."""
    what = "softmax_cross_entropy"
    if len(logits_shape) != 2:
        raise ValueError(f"{what}: logits must be (m, k), got shape {logits_shape}")
    if logits_dtype not in FLOAT_DTYPES:
        raise TypeError(f"{what}: logits must be float32/float64, got {logits_dtype}")
    if labels_dtype.kind not in "iu":
        raise TypeError(f"{what}: labels must be integers (class indices), got {labels_dtype}")
    if labels_shape != logits_shape[:1]:
        raise ValueError(f"{what}: labels shape {labels_shape} does not match logits shape "
                         f"{logits_shape}; expected ({logits_shape[0]},)")
