"""Differentiable operations: each forward pass next to its vector-Jacobian product.

Every op is a small class with two methods (see :class:`dlkit.autograd.Op`):

* ``compute(*arrays)`` runs the forward pass on backend arrays (``self.backend``);
* ``gradient(G, node)`` maps ``G = ∂loss/∂node`` to ``∂loss/∂input`` for each input, written
  with Tensor ops, so gradients can be differentiated again.

The lowercase functions at the bottom of each section (``add``, ``matmul``, ...) are what
users call: they validate shapes and dtypes *before* any backend runs, so every backend
reports the same errors, then apply the op.

Broadcasting follows numpy.  If ``a`` (shape (n,)) was broadcast to (m, n) in the forward
pass, each of its elements was used m times, so its gradient is ``G`` summed over the
broadcast axes: :func:`sum_to_shape`.
"""
from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np

from .autograd import FLOAT_DTYPES, Op, Tensor, is_grad_enabled

Shape = tuple[int, ...]
Scalar = int | float


# =========================================================================== helpers
def _py_scalar(x: Any) -> Scalar:
    """numpy scalars -> Python scalars, which never change a tensor's dtype (numpy 2 rules)."""
    return x.item() if isinstance(x, np.generic) else x


def _as_tensor(x: Any, like: Tensor) -> Tensor:
    """Wrap an array-like operand as a constant on ``like``'s backend (float data -> like's dtype)."""
    if isinstance(x, Tensor):
        return x
    arr = np.asarray(x)
    dtype = like.dtype if arr.dtype.kind == "f" or like.dtype in FLOAT_DTYPES else arr.dtype
    return Tensor(arr, dtype=dtype, backend=like.backend)


def broadcast_shapes(a: Shape, b: Shape, what: str = "operands") -> Shape:
    """numpy's broadcast rule: align from the right; sizes must match or be 1."""
    if a == b:
        return a
    if len(b) <= len(a) and a[len(a) - len(b):] == b:       # e.g. (m, n) with a bias (n,)
        return a
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x != y and x != 1 and y != 1:
            raise ValueError(f"{what}: shapes {a} and {b} cannot be broadcast together "
                             f"(axis -{i}: {x} vs {y})")
        out.append(y if x == 1 else x)
    return tuple(reversed(out))


def _binary(a: Any, b: Any, what: str, broadcast: bool = True) -> tuple[Tensor, Tensor]:
    """Validate two tensor operands: compatible dtypes (and shapes, if ``broadcast``)."""
    if not isinstance(a, Tensor):
        a = _as_tensor(a, b)
    if not isinstance(b, Tensor):
        b = _as_tensor(b, a)
    da, db = a._array.dtype, b._array.dtype
    if da == db and a._array.shape == b._array.shape:       # the common case, checked first
        return a, b
    if da != db:
        fa, fb = da in FLOAT_DTYPES, db in FLOAT_DTYPES
        if fa and fb:
            raise TypeError(f"{what}: cannot mix {da} and {db} tensors; convert one with "
                            f".astype('{da}') or .astype('{db}')")
        if fa:                                   # int/bool with float: use the float dtype
            b = astype(b, da)
        elif fb:
            a = astype(a, db)
    if broadcast and a.shape != b.shape:
        broadcast_shapes(a.shape, b.shape, what)
    return a, b


def sum_to_shape(g: Tensor, shape: Shape) -> Tensor:
    """Sum ``g`` over the axes that broadcasting added or stretched, giving ``shape``.

    Leading axes (that ``shape`` lacks) are summed away; axes where ``shape`` has 1 but ``g``
    does not are summed with keepdims.  The VJP of every broadcast.
    """
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    stretched = tuple(lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1)
    if not stretched:
        return Summation(tuple(range(lead)), False)(g)
    return reshape(Summation(tuple(range(lead)) + stretched, True)(g), shape)


def _normalize_axes(axis: Any, ndim: int, what: str) -> tuple[int, ...]:
    """None -> all axes; int or tuple -> sorted non-negative tuple (checked against ndim)."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for ax in axes:
        if not -ndim <= ax < max(ndim, 1) or (ndim == 0 and ax not in (0, -1)):
            raise ValueError(f"{what}: axis {ax} is out of range for a tensor with {ndim} dims")
        out.append(int(ax) % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{what}: repeated axis in {axis}")
    return tuple(sorted(out))


def _keepdims_shape(shape: Shape, axes: tuple[int, ...]) -> Shape:
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _const(array: Any, like: Tensor) -> Tensor:
    return Tensor._wrap(array, like.backend)


# =========================================================================== elementwise
class Add(Op):
    """a + b (broadcast).  ∂/∂a = G, ∂/∂b = G, each summed back to its shape."""
    def compute(self, a, b): return self.backend.add(a, b)
    def gradient(self, g, node):
        a, b = node.inputs
        return sum_to_shape(g, a.shape), sum_to_shape(g, b.shape)


class Sub(Op):
    """a − b.  ∂/∂a = G, ∂/∂b = −G."""
    def compute(self, a, b): return self.backend.sub(a, b)
    def gradient(self, g, node):
        a, b = node.inputs
        return sum_to_shape(g, a.shape), sum_to_shape(-g, b.shape)


class Mul(Op):
    """a ∘ b.  ∂/∂a = G ∘ b, ∂/∂b = G ∘ a."""
    def compute(self, a, b): return self.backend.mul(a, b)
    def gradient(self, g, node):
        a, b = node.inputs
        return (sum_to_shape(g * b, a.shape) if a.requires_grad else None,
                sum_to_shape(g * a, b.shape) if b.requires_grad else None)


class Div(Op):
    """a / b.  ∂/∂a = G / b, ∂/∂b = −G ∘ a / b²."""
    def compute(self, a, b): return self.backend.div(a, b)
    def gradient(self, g, node):
        a, b = node.inputs
        return (sum_to_shape(g / b, a.shape) if a.requires_grad else None,
                sum_to_shape(-g * a / (b * b), b.shape) if b.requires_grad else None)


class AddScalar(Op):
    """a + c for a Python number c.  ∂/∂a = G."""
    def __init__(self, c: Scalar): self.c = c
    def compute(self, a): return self.backend.add(a, self.c)
    def gradient(self, g, node): return (g,)


class MulScalar(Op):
    """c · a.  ∂/∂a = c · G."""
    def __init__(self, c: Scalar): self.c = c
    def compute(self, a): return self.backend.mul(a, self.c)
    def gradient(self, g, node): return (g * self.c,)


class PowerScalar(Op):
    """a ** p for a Python number p.  ∂/∂a = G ∘ p a^(p−1)."""
    def __init__(self, p: Scalar): self.p = p
    def compute(self, a): return self.backend.power(a, self.p)
    def gradient(self, g, node):
        a = node.inputs[0]
        if self.p == 2:
            return (g * a * 2.0,)
        return (g * (a ** (self.p - 1)) * self.p,)


class Negate(Op):
    """−a.  ∂/∂a = −G."""
    def compute(self, a): return self.backend.neg(a)
    def gradient(self, g, node): return (-g,)


class Exp(Op):
    """exp(a).  ∂/∂a = G ∘ exp(a) (the output itself)."""
    def compute(self, a): return self.backend.exp(a)
    def gradient(self, g, node): return (g * node,)


class Log(Op):
    """log(a).  ∂/∂a = G / a."""
    def compute(self, a): return self.backend.log(a)
    def gradient(self, g, node): return (g / node.inputs[0],)


class ReLU(Op):
    """max(a, 0).  ∂/∂a = G ∘ 1[a > 0] (the mask is constant, so 2nd derivative is 0)."""
    def compute(self, a): return self.backend.relu(a)
    def gradient(self, g, node):
        a = node.inputs[0]
        be = self.backend
        mask = _const(be.astype(be.greater(a._array, 0), a.dtype), a)
        return (g * mask,)


class Tanh(Op):
    """tanh(a).  ∂/∂a = G ∘ (1 − tanh²(a))."""
    def compute(self, a): return self.backend.tanh(a)
    def gradient(self, g, node): return (g * (1.0 - node * node),)


class Sigmoid(Op):
    """σ(a) = 1 / (1 + e^(−a)).  ∂/∂a = G ∘ σ(a)(1 − σ(a))."""
    def compute(self, a): return self.backend.sigmoid(a)
    def gradient(self, g, node): return (g * node * (1.0 - node),)


class Maximum(Op):
    """max(a, b) elementwise (broadcast).  G goes to a where a ≥ b, else to b."""
    def compute(self, a, b): return self.backend.maximum(a, b)
    def gradient(self, g, node):
        a, b = node.inputs
        be = self.backend
        a_wins = be.astype(be.greater_equal(a._array, b._array), g.dtype)
        b_wins = be.sub(be.ones(a_wins.shape, g.dtype), a_wins)
        return (sum_to_shape(g * _const(a_wins, g), a.shape),
                sum_to_shape(g * _const(b_wins, g), b.shape))


class Where(Op):
    """cond ? a : b.  G goes to a where cond, to b elsewhere; cond gets no gradient."""
    def compute(self, cond, a, b): return self.backend.where(cond, a, b)
    def gradient(self, g, node):
        cond, a, b = node.inputs
        zeros = _const(self.backend.zeros(g.shape, g.dtype), g)
        return (None, sum_to_shape(where(cond, g, zeros), a.shape),
                sum_to_shape(where(cond, zeros, g), b.shape))


class AsType(Op):
    """Convert to another dtype.  ∂/∂a = G converted back to a's dtype."""
    def __init__(self, dtype: np.dtype): self.dtype = dtype
    def compute(self, a): return self.backend.astype(a, self.dtype)
    def gradient(self, g, node): return (astype(g, node.inputs[0].dtype),)


def _scalar_operand(b: Any) -> bool:
    return isinstance(b, (numbers.Number, np.generic)) and not isinstance(b, np.ndarray)


def add(a: Tensor, b: Tensor | Scalar) -> Tensor:
    if _scalar_operand(b):
        return AddScalar(_py_scalar(b))(a)
    return Add()(*_binary(a, b, "add (+)"))


def sub(a: Tensor, b: Tensor | Scalar) -> Tensor:
    if _scalar_operand(b):
        return AddScalar(-_py_scalar(b))(a)
    return Sub()(*_binary(a, b, "subtract (-)"))


def rsub(a: Tensor, b: Tensor | Scalar) -> Tensor:
    """b − a (for ``2 - x``)."""
    if _scalar_operand(b):
        return AddScalar(_py_scalar(b))(Negate()(a))
    return Sub()(*_binary(b, a, "subtract (-)"))


def mul(a: Tensor, b: Tensor | Scalar) -> Tensor:
    if _scalar_operand(b):
        return MulScalar(_py_scalar(b))(a)
    return Mul()(*_binary(a, b, "multiply (*)"))


def div(a: Tensor, b: Tensor | Scalar) -> Tensor:
    if _scalar_operand(b):
        return MulScalar(1.0 / _py_scalar(b))(a)
    return Div()(*_binary(a, b, "divide (/)"))


def rdiv(a: Tensor, b: Tensor | Scalar) -> Tensor:
    """b / a (for ``1 / x``)."""
    if _scalar_operand(b):
        return MulScalar(_py_scalar(b))(PowerScalar(-1)(a))
    return Div()(*_binary(b, a, "divide (/)"))


def power(a: Tensor, p: Scalar) -> Tensor:
    if not _scalar_operand(p):
        raise TypeError(f"** needs a Python number exponent, got {type(p).__name__}; "
                        f"use exp(b * log(a)) for a tensor exponent")
    return PowerScalar(_py_scalar(p))(a)


def negate(a: Tensor) -> Tensor: return Negate()(a)
def exp(a: Tensor) -> Tensor: return Exp()(a)
def log(a: Tensor) -> Tensor: return Log()(a)
def relu(a: Tensor) -> Tensor: return ReLU()(a)
def tanh(a: Tensor) -> Tensor: return Tanh()(a)
def sigmoid(a: Tensor) -> Tensor: return Sigmoid()(a)


def maximum(a: Tensor, b: Tensor | Scalar) -> Tensor:
    """Elementwise max of two tensors (or a tensor and a number), broadcasting."""
    if not isinstance(a, Tensor):
        a, b = b, a
    return Maximum()(*_binary(a, b, "maximum"))


def where(cond: Tensor, a: Tensor | Scalar, b: Tensor | Scalar) -> Tensor:
    """Pick ``a`` where ``cond`` is true, else ``b`` (all three broadcast together)."""
    like = next((t for t in (a, b, cond) if isinstance(t, Tensor)), None)
    if like is None:
        raise TypeError("where: at least one argument must be a Tensor")
    if not isinstance(cond, Tensor):
        cond = Tensor(np.asarray(cond), dtype="bool", backend=like.backend)
    if cond.dtype != np.bool_:
        raise TypeError(f"where: cond must be a bool tensor (e.g. x > 0), got {cond.dtype}")
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError("where: a or b must be a Tensor")
    a, b = _binary(a, b, "where")
    broadcast_shapes(cond.shape, broadcast_shapes(a.shape, b.shape, "where"), "where (cond)")
    return Where()(cond, a, b)


def astype(a: Tensor, dtype: Any) -> Tensor:
    """``a`` converted to ``dtype`` (differentiable between float dtypes)."""
    dtype = np.dtype(dtype)
    if a.dtype == dtype:
        return a
    if a.requires_grad and dtype not in FLOAT_DTYPES:
        return _const(a.backend.astype(a._array, dtype), a)
    return AsType(dtype)(a)


# comparisons: plain bool tensors, never part of the graph
def _compare(fn_name: str, symbol: str):
    def compare(a: Tensor, b: Tensor | Scalar) -> Tensor:
        if _scalar_operand(b):
            return _const(getattr(a.backend, fn_name)(a._array, _py_scalar(b)), a)
        a, b = _binary(a, b, f"comparison ({symbol})")
        return _const(getattr(a.backend, fn_name)(a._array, b._array), a)
    compare.__name__ = fn_name
    compare.__doc__ = f"``a {symbol} b`` elementwise as a bool tensor (not differentiable)."
    return compare


equal = _compare("equal", "==")
not_equal = _compare("not_equal", "!=")
less = _compare("less", "<")
less_equal = _compare("less_equal", "<=")
greater = _compare("greater", ">")
greater_equal = _compare("greater_equal", ">=")


# =========================================================================== linear algebra
def _swap_last(x: Tensor) -> Tensor:
    """Transpose the last two axes (the matrix transpose of each batch element)."""
    n = x._array.ndim
    return Transpose(tuple(range(n - 2)) + (n - 1, n - 2))(x)


class MatMul(Op):
    """A @ B (numpy.matmul; batch axes broadcast).  ∂/∂A = G Bᵀ, ∂/∂B = Aᵀ G."""
    def compute(self, a, b): return self.backend.matmul(a, b)
    def gradient(self, g, node):
        a, b = node.inputs
        db = sum_to_shape(_swap_last(a) @ g, b.shape) if b.requires_grad else None
        da = sum_to_shape(g @ _swap_last(b), a.shape) if a.requires_grad else None
        return da, db


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product: (m, n) @ (n, k) -> (m, k); batched (..., m, n) @ (..., n, k) with
    broadcast batch axes; a 1-D operand is treated as a row (left) or column (right) vector."""
    a, b = _binary(a, b, "matmul (@)", broadcast=False)
    sa, sb = a._array.shape, b._array.shape
    if len(sa) == 2 and len(sb) == 2 and sa[1] == sb[0]:      # plain matrices: done checking
        return MatMul()(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul (@): operands must have at least 1 dim; got shapes "
                         f"{a.shape} and {b.shape} (use * for scalars)")
    if a.ndim == 1 or b.ndim == 1:
        a2 = reshape(a, (1,) + a.shape) if a.ndim == 1 else a
        b2 = reshape(b, b.shape + (1,)) if b.ndim == 1 else b
        out = matmul(a2, b2)
        drop = (out.ndim - 2,) * (a.ndim == 1) + (out.ndim - 1,) * (b.ndim == 1)
        return reshape(out, tuple(n for i, n in enumerate(out.shape) if i not in drop))
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul (@): shapes {a.shape} and {b.shape} are not aligned: "
                         f"{a.shape[-1]} (last dim of the left) != {b.shape[-2]} "
                         f"(second-to-last dim of the right)")
    if a.ndim > 2 or b.ndim > 2:
        broadcast_shapes(a.shape[:-2], b.shape[:-2], f"matmul (@) batch dims of {a.shape} and {b.shape}")
    return MatMul()(a, b)


# =========================================================================== reductions
class Summation(Op):
    """Σ over ``axes``.  ∂/∂a = G broadcast back over the summed axes."""
    def __init__(self, axes: tuple[int, ...], keepdims: bool):
        self.axes, self.keepdims = axes, keepdims
    def compute(self, a): return self.backend.sum(a, self.axes, self.keepdims)
    def gradient(self, g, node):
        shape = node.inputs[0].shape
        if not self.keepdims:
            g = reshape(g, _keepdims_shape(shape, self.axes))
        return (broadcast_to(g, shape),)


class Max(Op):
    """max over ``axes``.  G goes to the maximal entries (split evenly between ties)."""
    def __init__(self, axes: tuple[int, ...], keepdims: bool):
        self.axes, self.keepdims = axes, keepdims
    def compute(self, a): return self.backend.max(a, self.axes, self.keepdims)
    def gradient(self, g, node):
        a = node.inputs[0]
        be = self.backend
        kshape = _keepdims_shape(a.shape, self.axes)
        top = be.reshape(node._array, kshape)
        mask = be.astype(be.equal(a._array, top), a.dtype)
        mask = be.div(mask, be.sum(mask, self.axes, True))
        return (reshape(g, kshape) * _const(mask, a),)


def summation(a: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Sum over ``axis`` (int, tuple or None = all)."""
    return Summation(_normalize_axes(axis, a.ndim, "sum"), keepdims)(a)


def mean(a: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Average over ``axis``: the sum divided by the number of summed entries."""
    axes = _normalize_axes(axis, a.ndim, "mean")
    count = int(np.prod([a.shape[i] for i in axes]))
    if count == 0:
        raise ValueError(f"mean over an empty axis of a tensor of shape {a.shape}")
    return Summation(axes, keepdims)(a) * (1.0 / count)


def amax(a: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Largest entry over ``axis`` (int, tuple or None = all); ``Tensor.max``."""
    axes = _normalize_axes(axis, a.ndim, "max")
    if any(a.shape[i] == 0 for i in axes):
        raise ValueError(f"max over an empty axis of a tensor of shape {a.shape}")
    return Max(axes, keepdims)(a)


def argmax(a: Tensor, axis: int | None = None) -> Tensor:
    """Index of the largest entry (int64 tensor, not differentiable)."""
    return _const(a.backend.argmax(a._array, axis), a)


# =========================================================================== shapes
class Reshape(Op):
    """Same values, new shape.  ∂/∂a = G reshaped back."""
    def __init__(self, shape: Shape): self.shape = shape
    def compute(self, a): return self.backend.reshape(a, self.shape)
    def gradient(self, g, node): return (reshape(g, node.inputs[0].shape),)


class Transpose(Op):
    """Permute axes.  ∂/∂a = G permuted by the inverse permutation."""
    def __init__(self, axes: tuple[int, ...]): self.axes = axes
    def compute(self, a): return self.backend.transpose(a, self.axes)
    def gradient(self, g, node): return (transpose(g, tuple(np.argsort(self.axes).tolist())),)


class BroadcastTo(Op):
    """Repeat along new / size-1 axes.  ∂/∂a = G summed back (``sum_to_shape``)."""
    def __init__(self, shape: Shape): self.shape = shape
    def compute(self, a): return self.backend.broadcast_to(a, self.shape)
    def gradient(self, g, node): return (sum_to_shape(g, node.inputs[0].shape),)


def reshape(a: Tensor, shape: Sequence[int]) -> Tensor:
    """View ``a`` with a new shape of the same size (one entry may be -1)."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(n) for n in shape)
    if shape == a.shape:
        return a
    size = int(np.prod(a.shape))
    if shape.count(-1) == 1:
        rest = int(np.prod([n for n in shape if n != -1]))
        if rest and size % rest == 0:
            shape = tuple(size // rest if n == -1 else n for n in shape)
    if int(np.prod(shape)) != size or any(n < 0 for n in shape):
        raise ValueError(f"reshape: cannot reshape a tensor of shape {a.shape} "
                         f"({size} elements) into shape {shape}")
    return Reshape(shape)(a)


def transpose(a: Tensor, axes: Sequence[int] | None = None) -> Tensor:
    """Permute the axes (default: reverse them, the matrix transpose for 2-D)."""
    if axes is None:
        axes = tuple(range(a.ndim))[::-1]
    axes = tuple(int(ax) % a.ndim if a.ndim else int(ax) for ax in axes)
    if sorted(axes) != list(range(a.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the "
                         f"{a.ndim} axes of a tensor of shape {a.shape}")
    return Transpose(axes)(a)


def broadcast_to(a: Tensor, shape: Sequence[int]) -> Tensor:
    """Repeat ``a`` to ``shape`` under numpy's broadcasting rule."""
    shape = tuple(int(n) for n in shape)
    if shape == a.shape:
        return a
    if len(shape) < a.ndim or broadcast_shapes(a.shape, shape, "broadcast_to") != shape:
        raise ValueError(f"broadcast_to: cannot broadcast shape {a.shape} to {shape}")
    return BroadcastTo(shape)(a)


# =========================================================================== indexing
class GetItem(Op):
    """a[index] with basic indexing.  ∂/∂a = zeros of a's shape with G placed at index."""
    def __init__(self, index: tuple): self.index = index
    def compute(self, a): return self.backend.getitem(a, self.index)
    def gradient(self, g, node): return (ScatterSlice(node.inputs[0].shape, self.index)(g),)


class ScatterSlice(Op):
    """The VJP of GetItem as an op: zeros of ``shape`` with the input at ``index``.
    It is linear, so its own VJP is GetItem again."""
    def __init__(self, shape: Shape, index: tuple): self.shape, self.index = shape, index
    def compute(self, g): return self.backend.getitem_backward(g, self.shape, self.index)
    def gradient(self, g, node): return (GetItem(self.index)(g),)


def _check_index(index: Any, shape: Shape) -> tuple:
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


def getitem(a: Tensor, index: Any) -> Tensor:
    """``a[index]`` for basic indexing (``t[0]``, ``t[1:3, ::2]``, ``t[None]``, ``t[..., 0]``)."""
    return GetItem(_check_index(index, a.shape))(a)


class Stack(Op):
    """Stack equal-shape tensors along a new axis.  ∂/∂a_i = G[..., i, ...]."""
    def __init__(self, axis: int): self.axis = axis
    def compute(self, *arrays): return self.backend.stack(arrays, self.axis)
    def gradient(self, g, node):
        lead = (slice(None),) * self.axis
        return tuple(getitem(g, lead + (i,)) for i in range(len(node.inputs)))


class Concatenate(Op):
    """Join tensors along an existing axis.  ∂/∂a_i = the slice of G that a_i filled."""
    def __init__(self, axis: int): self.axis = axis
    def compute(self, *arrays): return self.backend.concatenate(arrays, self.axis)
    def gradient(self, g, node):
        lead, start, out = (slice(None),) * self.axis, 0, []
        for x in node.inputs:
            stop = start + x.shape[self.axis]
            out.append(getitem(g, lead + (slice(start, stop),)))
            start = stop
        return tuple(out)


def _check_many(tensors: Sequence[Tensor], what: str) -> list[Tensor]:
    tensors = list(tensors)
    if not tensors or not all(isinstance(t, Tensor) for t in tensors):
        raise TypeError(f"{what}: needs a non-empty sequence of Tensors")
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) > 1:
        raise TypeError(f"{what}: cannot mix dtypes {sorted(map(str, dtypes))}")
    return tensors


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Stack tensors of one shape along a new ``axis`` (result has one more dim)."""
    tensors = _check_many(tensors, "stack")
    shape = tensors[0].shape
    for i, t in enumerate(tensors):
        if t.shape != shape:
            raise ValueError(f"stack: all tensors need the same shape; tensors[0] has {shape}, "
                             f"tensors[{i}] has {t.shape}")
    if not -len(shape) - 1 <= axis <= len(shape):
        raise ValueError(f"stack: axis {axis} is out of range for {len(shape) + 1} dims")
    return Stack(axis % (len(shape) + 1))(*tensors)


def concatenate(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing ``axis`` (other axes must match)."""
    tensors = _check_many(tensors, "concatenate")
    shape = tensors[0].shape
    if not shape:
        raise ValueError("concatenate: zero-dimensional tensors cannot be concatenated")
    if not -len(shape) <= axis < len(shape):
        raise ValueError(f"concatenate: axis {axis} is out of range for {len(shape)} dims")
    axis %= len(shape)
    for i, t in enumerate(tensors):
        if t.ndim != len(shape) or any(n != m for k, (n, m) in enumerate(zip(t.shape, shape)) if k != axis):
            raise ValueError(f"concatenate: shapes must match except on axis {axis}; "
                             f"tensors[0] has {shape}, tensors[{i}] has {t.shape}")
    return Concatenate(axis)(*tensors)


# =========================================================================== softmax family
def _one_axis(a: Tensor, axis: Any, what: str) -> int:
    if not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{what}: axis must be an int, got {axis!r}")
    return _normalize_axes(axis, a.ndim, what)[0]


class LogSumExp(Op):
    """log Σ_axis exp(a), computed stably.  ∂/∂a = G ∘ softmax(a) along the axis."""
    def __init__(self, axis: int, keepdims: bool): self.axis, self.keepdims = axis, keepdims
    def compute(self, a): return self.backend.logsumexp(a, self.axis, self.keepdims)
    def gradient(self, g, node):
        a = node.inputs[0]
        kshape = _keepdims_shape(a.shape, (self.axis,))
        return (reshape(g, kshape) * exp(a - reshape(node, kshape)),)


class LogSoftmax(Op):
    """a − logsumexp(a).  ∂/∂a = G − softmax(a) ∘ Σ_axis G."""
    def __init__(self, axis: int): self.axis = axis
    def compute(self, a): return self.backend.log_softmax(a, self.axis)
    def gradient(self, g, node):
        return (g - exp(node) * summation(g, self.axis, keepdims=True),)


class Softmax(Op):
    """s = exp(a) / Σ exp(a).  ∂/∂a = s ∘ (G − Σ_axis G ∘ s)."""
    def __init__(self, axis: int): self.axis = axis
    def compute(self, a): return self.backend.exp(self.backend.log_softmax(a, self.axis))
    def gradient(self, g, node):
        return (node * (g - summation(g * node, self.axis, keepdims=True)),)


def logsumexp(a: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """log Σ exp(a) over ``axis`` (int, tuple or None), stable for large entries."""
    axes = _normalize_axes(axis, a.ndim, "logsumexp")
    if len(axes) == 1:
        return LogSumExp(axes[0], keepdims)(a)
    # several axes: move them to the end, flatten them into one, reduce that one
    rest = tuple(i for i in range(a.ndim) if i not in axes)
    moved = transpose(a, rest + axes) if rest + axes != tuple(range(a.ndim)) else a
    flat = reshape(moved, tuple(a.shape[i] for i in rest) + (-1,))
    out = LogSumExp(len(rest), False)(flat)
    return reshape(out, _keepdims_shape(a.shape, axes)) if keepdims else out


def log_softmax(a: Tensor, axis: int = -1) -> Tensor:
    """log softmax(a) along ``axis``: a − logsumexp(a, axis, keepdims=True)."""
    return LogSoftmax(_one_axis(a, axis, "log_softmax"))(a)


def softmax(a: Tensor, axis: int = -1) -> Tensor:
    """exp(a) / Σ exp(a) along ``axis`` (rows sum to 1)."""
    return Softmax(_one_axis(a, axis, "softmax"))(a)


def one_hot(labels: Tensor, num_classes: int, dtype: Any = "float32") -> Tensor:
    """(m,) int labels -> (m, num_classes) rows with a single 1 (not differentiable)."""
    if not isinstance(labels, Tensor):
        labels = Tensor(np.asarray(labels), dtype="int64")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"one_hot: labels must be an integer tensor, got {labels.dtype}")
    return _const(labels.backend.one_hot(labels._array, int(num_classes), np.dtype(dtype)), labels)


class SoftmaxCrossEntropy(Op):
    """ℓ = mean_i [logsumexp(z_i) − z_i[y_i]] for logits Z (m, k), int labels y (m,).

    ∂ℓ/∂Z = (softmax(Z) − onehot(y)) / m, which the backend computes in the same fused pass
    as the loss.  When the backward pass is itself recorded (``create_graph``), the gradient
    is rebuilt from differentiable ops instead.
    """
    def compute(self, logits, labels):
        loss, self.dlogits = self.backend.softmax_cross_entropy(logits, labels)
        return loss

    def gradient(self, g, node):
        z, y = node.inputs
        if is_grad_enabled():           # create_graph: keep the gradient differentiable
            m, k = z.shape
            return ((softmax(z, 1) - one_hot(y, k, z.dtype)) * (g * (1.0 / m)), None)
        return (g * _const(self.dlogits, z), None)


def softmax_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of ``logits`` (m, k) against int ``labels`` (m,), a 0-d tensor."""
    if not isinstance(labels, Tensor):
        labels = Tensor(np.asarray(labels), dtype="int64", backend=logits.backend)
    if logits.ndim != 2:
        raise ValueError(f"softmax_cross_entropy: logits must be (m, k), got shape {logits.shape}")
    if logits.dtype not in FLOAT_DTYPES:
        raise TypeError(f"softmax_cross_entropy: logits must be float32/float64, got {logits.dtype}")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"softmax_cross_entropy: labels must be integers (class indices), "
                        f"got {labels.dtype}")
    if labels.shape != logits.shape[:1]:
        raise ValueError(f"softmax_cross_entropy: labels shape {labels.shape} does not match "
                         f"logits shape {logits.shape}; expected ({logits.shape[0]},)")
    return SoftmaxCrossEntropy()(logits, labels)
