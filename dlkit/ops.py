"""Differentiable operations: each forward pass next to its vector-Jacobian product.

Every op is a small class with two methods (see :class:`dlkit.autograd.Op`):

* ``compute(*arrays)`` runs the forward pass on backend arrays (``self.backend``);
* ``gradient(out_grad, node)`` maps ``out_grad = ∂loss/∂node`` to ``∂loss/∂input`` for each
  input, written with Tensor ops, so gradients can be differentiated again.

The lowercase functions of each section (``add``, ``matmul``, ...) are what users call: they
check their arguments with the rules of :mod:`dlkit.shapes` *before* any backend runs (so
every backend reports the same errors), then apply the op.

Broadcasting follows numpy.  If ``a`` (shape (n,)) was broadcast to (m, n) in the forward
pass, each of its elements was used m times, so its gradient is ``out_grad`` summed over the
broadcast axes: :func:`sum_to_shape`.

The ``gradient`` methods marked ``@graded`` are what notebook 01 asks students to write.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import shapes
from ._graded import graded
from .autograd import FLOAT_DTYPES, Op, Tensor, is_grad_enabled
from .shapes import Shape, broadcast_shapes, is_scalar, keepdims_shape

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


def _binary(a: Any, b: Any, what: str, broadcast: bool = True) -> tuple[Tensor, Tensor]:
    """Two tensor operands of one dtype (int/bool operands take the float one), shapes checked."""
    if not isinstance(a, Tensor):
        a = _as_tensor(a, b)
    if not isinstance(b, Tensor):
        b = _as_tensor(b, a)
    da, db = a._array.dtype, b._array.dtype
    if da == db and a._array.shape == b._array.shape:       # the common case, checked first
        return a, b
    if da != db:
        shapes.check_same_dtype(da, db, what)
        if da in FLOAT_DTYPES:
            b = astype(b, da)
        elif db in FLOAT_DTYPES:
            a = astype(a, db)
    if broadcast and a.shape != b.shape:
        broadcast_shapes(a.shape, b.shape, what=what)
    return a, b


def _const(array: Any, like: Tensor) -> Tensor:
    return Tensor._wrap(array, like.backend)


@graded("01_autodiff_backprop", "sum_to_shape")
def sum_to_shape(grad: Tensor, shape: Shape) -> Tensor:
    """Sum ``grad`` over the axes that broadcasting added or stretched, giving ``shape``.

    Leading axes (that ``shape`` lacks) are summed away; axes where ``shape`` has 1 but ``grad``
    does not are summed with keepdims.  The VJP of every broadcast.
    """
    shape = tuple(shape)
    lead = grad.ndim - len(shape)
    if lead:                                   # axes broadcasting added in front
        grad = grad.sum(axis=tuple(range(lead)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:                              # size-1 axes broadcasting stretched
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


# =========================================================================== elementwise
class Add(Op):
    """a + b (broadcast)."""
    def compute(self, a, b): return self.backend.add(a, b)

    @graded("01_autodiff_backprop", "add_gradient")
    def gradient(self, out_grad, node):
        a, b = node.inputs
        return sum_to_shape(out_grad, a.shape), sum_to_shape(out_grad, b.shape)


class Sub(Op):
    """a − b.  ∂/∂a = G, ∂/∂b = −G."""
    def compute(self, a, b): return self.backend.sub(a, b)
    def gradient(self, g, node):
        a, b = node.inputs
        return sum_to_shape(g, a.shape), sum_to_shape(-g, b.shape)


class Mul(Op):
    """a ∘ b (broadcast)."""
    def compute(self, a, b): return self.backend.mul(a, b)

    @graded("01_autodiff_backprop", "mul_gradient")
    def gradient(self, out_grad, node):
        a, b = node.inputs
        return (sum_to_shape(out_grad * b, a.shape) if a.requires_grad else None,
                sum_to_shape(out_grad * a, b.shape) if b.requires_grad else None)


class Div(Op):
    """a / b (broadcast)."""
    def compute(self, a, b): return self.backend.div(a, b)

    @graded("01_autodiff_backprop", "div_gradient")
    def gradient(self, out_grad, node):
        a, b = node.inputs
        return (sum_to_shape(out_grad / b, a.shape) if a.requires_grad else None,
                sum_to_shape(-out_grad * a / (b * b), b.shape) if b.requires_grad else None)


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
    """a ** p for a Python number ``self.p``."""
    def __init__(self, p: Scalar): self.p = p
    def compute(self, a): return self.backend.power(a, self.p)

    @graded("01_autodiff_backprop", "power_gradient")
    def gradient(self, out_grad, node):
        a = node.inputs[0]
        return (out_grad * self.p * a ** (self.p - 1),)


class Negate(Op):
    """−a."""
    def compute(self, a): return self.backend.neg(a)

    @graded("01_autodiff_backprop", "negate_gradient")
    def gradient(self, out_grad, node):
        return (-out_grad,)


class Exp(Op):
    """exp(a)."""
    def compute(self, a): return self.backend.exp(a)

    @graded("01_autodiff_backprop", "exp_gradient")
    def gradient(self, out_grad, node):
        return (out_grad * node,)


class Log(Op):
    """log(a)."""
    def compute(self, a): return self.backend.log(a)

    @graded("01_autodiff_backprop", "log_gradient")
    def gradient(self, out_grad, node):
        return (out_grad / node.inputs[0],)


class ReLU(Op):
    """max(a, 0); its derivative at 0 is taken as 0."""
    def compute(self, a): return self.backend.relu(a)

    @graded("01_autodiff_backprop", "relu_gradient")
    def gradient(self, out_grad, node):
        return (out_grad * (node.inputs[0] > 0),)


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


def add(a: Tensor, b: Tensor | Scalar) -> Tensor:
    if is_scalar(b):
        return AddScalar(_py_scalar(b))(a)
    return Add()(*_binary(a, b, "add (+)"))


def sub(a: Tensor, b: Tensor | Scalar) -> Tensor:
    if is_scalar(b):
        return AddScalar(-_py_scalar(b))(a)
    return Sub()(*_binary(a, b, "subtract (-)"))


def rsub(a: Tensor, b: Tensor | Scalar) -> Tensor:
    """b − a (for ``2 - x``)."""
    if is_scalar(b):
        return AddScalar(_py_scalar(b))(Negate()(a))
    return Sub()(*_binary(b, a, "subtract (-)"))


def mul(a: Tensor, b: Tensor | Scalar) -> Tensor:
    if is_scalar(b):
        return MulScalar(_py_scalar(b))(a)
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        masked = _bool_mask_product(a, b)
        if masked is not None:
            return masked
    return Mul()(*_binary(a, b, "multiply (*)"))


def _bool_mask_product(a: Tensor, b: Tensor) -> Tensor | None:
    """A float tensor times a bool mask (ReLU's VJP ``G * (a > 0)``) on the numpy backend: numpy
    multiplies the two dtypes directly, so the mask is not first converted into a float array as
    large as the product (same values: the mask's True / False are 1.0 / 0.0)."""
    fa, fb = a._array.dtype, b._array.dtype
    if not ((fa in FLOAT_DTYPES and fb == np.bool_) or (fb in FLOAT_DTYPES and fa == np.bool_)):
        return None
    if a._backend is not b._backend or a._backend.name != "numpy":
        return None
    if a.shape != b.shape:
        broadcast_shapes(a.shape, b.shape, what="multiply (*)")
    return Mul()(a, b)


def div(a: Tensor, b: Tensor | Scalar) -> Tensor:
    if is_scalar(b):
        return MulScalar(1.0 / _py_scalar(b))(a)
    return Div()(*_binary(a, b, "divide (/)"))


def rdiv(a: Tensor, b: Tensor | Scalar) -> Tensor:
    """b / a (for ``1 / x``)."""
    if is_scalar(b):
        return MulScalar(_py_scalar(b))(PowerScalar(-1)(a))
    return Div()(*_binary(b, a, "divide (/)"))


def power(a: Tensor, p: Scalar) -> Tensor:
    if not is_scalar(p):
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
    broadcast_shapes(cond.shape, broadcast_shapes(a.shape, b.shape, what="where"),
                     what="where (cond)")
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
        if is_scalar(b):
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
class MatMul(Op):
    """A @ B (numpy.matmul; the batch axes in front of the last two broadcast)."""
    def compute(self, a, b): return self.backend.matmul(a, b)

    @graded("01_autodiff_backprop", "matmul_gradient")
    def gradient(self, out_grad, node):
        a, b = node.inputs
        da = sum_to_shape(out_grad @ _matrix_transpose(b), a.shape) if a.requires_grad else None
        db = sum_to_shape(_matrix_transpose(a) @ out_grad, b.shape) if b.requires_grad else None
        return da, db


def _matrix_transpose(x: Tensor) -> Tensor:
    """Swap the last two axes (the transpose of every matrix of a batch)."""
    n = x.ndim
    return x.transpose(tuple(range(n - 2)) + (n - 1, n - 2))


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product: (m, n) @ (n, k) -> (m, k); batched (..., m, n) @ (..., n, k) with
    broadcast batch axes; a 1-D operand is treated as a row (left) or column (right) vector."""
    a, b = _binary(a, b, "matmul (@)", broadcast=False)
    sa, sb = a._array.shape, b._array.shape
    if len(sa) == 2 and len(sb) == 2 and sa[1] == sb[0]:      # plain matrices: done checking
        return MatMul()(a, b)
    shapes.check_matmul(sa, sb)
    if a.ndim == 1 or b.ndim == 1:
        a2 = reshape(a, (1,) + a.shape) if a.ndim == 1 else a
        b2 = reshape(b, b.shape + (1,)) if b.ndim == 1 else b
        out = matmul(a2, b2)
        drop = (out.ndim - 2,) * (a.ndim == 1) + (out.ndim - 1,) * (b.ndim == 1)
        return reshape(out, tuple(n for i, n in enumerate(out.shape) if i not in drop))
    return MatMul()(a, b)


# BEGIN WITHHELD: the fused Linear node computes matmul_gradient and add_gradient's answers
class _Affine(Op):
    """X W + b in one node, X (m, n), W (n, k), b (k,) (or X W without b): what the instructor
    ``nn.Linear`` records.  The bias is added in place into the product, so the unfused path's
    (m, k) product never outlives the forward; the VJP is MatMul's and Add's, the bias gradient a
    column sum: ∂/∂X = G Wᵀ, ∂/∂W = Xᵀ G, ∂/∂b = Σ_rows G (same values as the two-op graph)."""
    def compute(self, x, w, b=None):
        out = self.backend.matmul(x, w)
        if b is None:
            return out
        if isinstance(out, np.ndarray) and out.flags.writeable and out.base is None:
            return np.add(out, b, out=out)
        return self.backend.add(out, b)

    def gradient(self, g, node):
        x, w = node.inputs[0], node.inputs[1]
        if not is_grad_enabled():
            # no graph to record (backward without create_graph): the same backend calls as the
            # Tensor expressions below, without a Tensor and an Op per transpose and product
            be, G = self.backend, g._array
            wrap = Tensor._wrap
            dx = wrap(be.matmul(G, be.transpose(w._array, (1, 0))), be) if x.requires_grad else None
            dw = wrap(be.matmul(be.transpose(x._array, (1, 0)), G), be) if w.requires_grad else None
            if len(node.inputs) == 2:
                return dx, dw
            return dx, dw, (wrap(be.sum(G, (0,), False), be) if node.inputs[2].requires_grad else None)
        dx = g @ transpose(w) if x.requires_grad else None
        dw = transpose(x) @ g if w.requires_grad else None
        if len(node.inputs) == 2:
            return dx, dw
        b = node.inputs[2]
        return dx, dw, (summation(g, 0) if b.requires_grad else None)


def _affine(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """``x @ w + b`` for a 2-D ``x`` whose dtype and width the caller (``nn.Linear``) checked:
    one fused node; any other shape takes the two ops."""
    if (x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[0] or x.dtype != w.dtype
            or (b is not None and (b.shape != (w.shape[1],) or b.dtype != w.dtype))):
        out = x @ w
        return out if b is None else out + b
    return _Affine()(x, w) if b is None else _Affine()(x, w, b)
# END WITHHELD


# =========================================================================== reductions
class Summation(Op):
    """Σ over ``self.axes`` (a sorted tuple of non-negative axes), ``self.keepdims``."""
    def __init__(self, axes: tuple[int, ...], keepdims: bool):
        self.axes, self.keepdims = axes, keepdims
    def compute(self, a): return self.backend.sum(a, self.axes, self.keepdims)

    @graded("01_autodiff_backprop", "summation_gradient")
    def gradient(self, out_grad, node):
        shape = node.inputs[0].shape
        kept = out_grad.reshape(keepdims_shape(shape, self.axes))
        return (kept.broadcast_to(shape),)


class Max(Op):
    """max over ``axes``.  G goes to the maximal entries (split evenly between ties)."""
    def __init__(self, axes: tuple[int, ...], keepdims: bool):
        self.axes, self.keepdims = axes, keepdims
    def compute(self, a): return self.backend.max(a, self.axes, self.keepdims)
    def gradient(self, g, node):
        a = node.inputs[0]
        be = self.backend
        kshape = keepdims_shape(a.shape, self.axes)
        top = be.reshape(node._array, kshape)
        mask = be.astype(be.equal(a._array, top), a.dtype)
        mask = be.div(mask, be.sum(mask, self.axes, True))
        return (reshape(g, kshape) * _const(mask, a),)


def summation(a: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Sum over ``axis`` (int, tuple or None = all)."""
    return Summation(shapes.normalize_axes(axis, a.ndim, "sum"), keepdims)(a)


def mean(a: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Average over ``axis``: the sum divided by the number of summed entries."""
    axes = shapes.normalize_axes(axis, a.ndim, "mean")
    count = shapes.prod(a.shape[i] for i in axes)
    if count == 0:
        raise ValueError(f"mean over an empty axis of a tensor of shape {a.shape}")
    return Summation(axes, keepdims)(a) * (1.0 / count)


def amax(a: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Largest entry over ``axis`` (int, tuple or None = all); ``Tensor.max``."""
    axes = shapes.normalize_axes(axis, a.ndim, "max")
    if any(a.shape[i] == 0 for i in axes):
        raise ValueError(f"max over an empty axis of a tensor of shape {a.shape}")
    return Max(axes, keepdims)(a)


def argmax(a: Tensor, axis: int | None = None) -> Tensor:
    """Index of the largest entry (int64 tensor, not differentiable)."""
    return _const(a.backend.argmax(a._array, axis), a)


# =========================================================================== shapes
class Reshape(Op):
    """Same values in a new shape ``self.shape``."""
    def __init__(self, shape: Shape): self.shape = shape
    def compute(self, a): return self.backend.reshape(a, self.shape)

    @graded("01_autodiff_backprop", "reshape_gradient")
    def gradient(self, out_grad, node):
        return (out_grad.reshape(node.inputs[0].shape),)


class Transpose(Op):
    """Permute the axes: output axis i is input axis ``self.axes[i]``."""
    def __init__(self, axes: tuple[int, ...]): self.axes = axes
    def compute(self, a): return self.backend.transpose(a, self.axes)

    @graded("01_autodiff_backprop", "transpose_gradient")
    def gradient(self, out_grad, node):
        inverse = [0] * len(self.axes)
        for i, ax in enumerate(self.axes):
            inverse[ax] = i
        return (out_grad.transpose(tuple(inverse)),)


class BroadcastTo(Op):
    """Repeat along new or size-1 axes up to ``self.shape``."""
    def __init__(self, shape: Shape): self.shape = shape
    def compute(self, a): return self.backend.broadcast_to(a, self.shape)

    @graded("01_autodiff_backprop", "broadcast_to_gradient")
    def gradient(self, out_grad, node):
        return (sum_to_shape(out_grad, node.inputs[0].shape),)


def reshape(a: Tensor, shape: Sequence[int]) -> Tensor:
    """View ``a`` with a new shape of the same size (one entry may be -1)."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(n) for n in shape)
    if shape == a.shape:
        return a
    return Reshape(shapes.resolve_shape(a.size, shape, "reshape", a.shape))(a)


def transpose(a: Tensor, axes: Sequence[int] | None = None) -> Tensor:
    """Permute the axes (default: reverse them, the matrix transpose for 2-D)."""
    return Transpose(shapes.check_permutation(axes, a.ndim, a.shape))(a)


def broadcast_to(a: Tensor, shape: Sequence[int]) -> Tensor:
    """Repeat ``a`` to ``shape`` under numpy's broadcasting rule."""
    shape = tuple(int(n) for n in shape)
    if shape == a.shape:
        return a
    shapes.check_broadcast_to(a.shape, shape)
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


def getitem(a: Tensor, index: Any) -> Tensor:
    """``a[index]`` for basic indexing (``t[0]``, ``t[1:3, ::2]``, ``t[None]``, ``t[..., 0]``)."""
    return GetItem(shapes.check_index(index, a.shape))(a)


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


def _tensors(tensors: Sequence[Tensor], what: str) -> list[Tensor]:
    tensors = list(tensors)
    if not all(isinstance(t, Tensor) for t in tensors):
        raise TypeError(f"{what}: needs a non-empty sequence of Tensors")
    return tensors


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Stack tensors of one shape along a new ``axis`` (result has one more dim)."""
    tensors = _tensors(tensors, "stack")
    axis = shapes.check_stack([t.shape for t in tensors], [t.dtype for t in tensors], axis, "stack")
    return Stack(axis)(*tensors)


def concatenate(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing ``axis`` (other axes must match)."""
    tensors = _tensors(tensors, "concatenate")
    axis = shapes.check_concatenate([t.shape for t in tensors], [t.dtype for t in tensors], axis)
    return Concatenate(axis)(*tensors)


# =========================================================================== softmax family
def _one_axis(a: Tensor, axis: Any, what: str) -> int:
    if not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{what}: axis must be an int, got {axis!r}")
    return shapes.normalize_axis(int(axis), a.ndim, what)


class LogSumExp(Op):
    """log Σ exp(a) along one axis ``self.axis`` (non-negative), ``self.keepdims``; stable."""
    def __init__(self, axis: int, keepdims: bool): self.axis, self.keepdims = axis, keepdims
    def compute(self, a): return self.backend.logsumexp(a, self.axis, self.keepdims)

    @graded("01_autodiff_backprop", "logsumexp_gradient")
    def gradient(self, out_grad, node):
        a = node.inputs[0]
        kept = keepdims_shape(a.shape, (self.axis,))
        return (out_grad.reshape(kept) * exp(a - node.reshape(kept)),)


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
    axes = shapes.normalize_axes(axis, a.ndim, "logsumexp")
    if len(axes) == 1:
        return LogSumExp(axes[0], keepdims)(a)
    # several axes: move them to the end, flatten them into one, reduce that one
    rest = tuple(i for i in range(a.ndim) if i not in axes)
    moved = transpose(a, rest + axes) if rest + axes != tuple(range(a.ndim)) else a
    flat = reshape(moved, tuple(a.shape[i] for i in rest) + (-1,))
    out = LogSumExp(len(rest), False)(flat)
    return reshape(out, keepdims_shape(a.shape, axes)) if keepdims else out


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


# BEGIN WITHHELD: the backend's fused loss-and-gradient pass is not in the student kit
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
# END WITHHELD


def softmax_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of ``logits`` (m, k) against int ``labels`` (m,), a 0-d tensor."""
    if not isinstance(labels, Tensor):
        labels = Tensor(np.asarray(labels), dtype="int64", backend=logits.backend)
    shapes.check_cross_entropy(logits.shape, logits.dtype, labels.shape, labels.dtype)
    # BEGIN WITHHELD: the instructor dlkit takes the fused pass
    return SoftmaxCrossEntropy()(logits, labels)
    # END WITHHELD
    # the same loss from differentiable ops (the student kit: its gradient comes from the VJPs
    # of logsumexp, *, sum and mean that notebook 01 asks for)
    picked = (logits * one_hot(labels, logits.shape[1], logits.dtype)).sum(axis=1)
    return (logsumexp(logits, axis=1) - picked).mean()


# BEGIN WITHHELD: batched VJPs (they compute the graded VJPs' answers, for many out_grads at once)
# ``dlkit.hessian`` differentiates the gradient g(x) with every basis vector at once: one backward
# sweep whose out_grad has a leading batch axis B (the rows of the identity).  Each rule maps the
# batch G (B, *node.shape) of a library op to the batches (B, *input.shape) of its inputs (None
# where an input needs no gradient), on host arrays, nothing recorded: the same formulas as the
# op's VJP with the batch axis carried in front (broadcasting does that for elementwise ops,
# numpy.matmul for matrix products; sums to an input's shape skip axis 0).  A graph with any
# other op (a user's Op subclass, a replaced gradient method) takes the row-by-row path.
def _bsum(G: np.ndarray, shape: Shape) -> np.ndarray:
    """sum_to_shape for a batch: G (B, *s) -> (B, *shape), axis 0 kept."""
    lead = G.ndim - 1 - len(shape)
    if lead:
        G = G.sum(axis=tuple(range(1, 1 + lead)))
    stretched = tuple(i + 1 for i, n in enumerate(shape) if n == 1 and G.shape[i + 1] != 1)
    if stretched:
        G = G.sum(axis=stretched, keepdims=True)
    return G


def _swap(a: np.ndarray) -> np.ndarray:
    return np.swapaxes(a, -1, -2)


def _two(node, da, db):
    a, b = node.inputs
    return (da() if a.requires_grad else None), (db() if b.requires_grad else None)


def _b_matmul(op, G, node):
    a, b = (t._array for t in node.inputs)
    return _two(node, lambda: _bsum(np.matmul(G, _swap(b)), a.shape),
                lambda: _bsum(np.matmul(_swap(a), G), b.shape))


def _b_affine(op, G, node):
    x, w = node.inputs[0]._array, node.inputs[1]._array
    out = [np.matmul(G, w.T) if node.inputs[0].requires_grad else None,
           np.matmul(x.T, G) if node.inputs[1].requires_grad else None]
    if len(node.inputs) == 3:
        out.append(G.sum(axis=1) if node.inputs[2].requires_grad else None)
    return tuple(out)


def _b_summation(op, G, node):
    shape = node.inputs[0].shape
    kept = G.reshape((G.shape[0],) + keepdims_shape(shape, op.axes))
    return (np.broadcast_to(kept, (G.shape[0],) + shape),)


def _b_transpose(op, G, node):
    inverse = [0] * len(op.axes)
    for i, ax in enumerate(op.axes):
        inverse[ax] = i
    return (G.transpose((0,) + tuple(i + 1 for i in inverse)),)


def _b_getitem(op, G, node):
    out = np.zeros((G.shape[0],) + node.inputs[0].shape, G.dtype)
    out[(slice(None),) + op.index] = G
    return (out,)


def _b_logsumexp(op, G, node):
    a = node.inputs[0]._array
    kept = keepdims_shape(a.shape, (op.axis,))
    return (G.reshape((G.shape[0],) + kept) * np.exp(a - node._array.reshape(kept)),)


def _b_max(op, G, node):
    a = node.inputs[0]._array
    kshape = keepdims_shape(a.shape, op.axes)
    mask = (a == node._array.reshape(kshape)).astype(a.dtype)
    mask = mask / mask.sum(axis=op.axes, keepdims=True)
    return (G.reshape((G.shape[0],) + kshape) * mask,)


def _b_where(op, G, node):
    cond, a, b = node.inputs
    c = cond._array
    return (None, _bsum(np.where(c, G, 0), a.shape) if a.requires_grad else None,
            _bsum(np.where(c, 0, G), b.shape) if b.requires_grad else None)


def _b_maximum(op, G, node):
    a, b = (t._array for t in node.inputs)
    wins = np.greater_equal(a, b)
    return _two(node, lambda: _bsum(G * wins.astype(G.dtype), a.shape),
                lambda: _bsum(G * (1 - wins.astype(G.dtype)), b.shape))


def _b_stack(op, G, node):
    lead = (slice(None),) * (op.axis + 1)
    return tuple(G[lead + (i,)] for i in range(len(node.inputs)))


def _b_concatenate(op, G, node):
    lead, start, out = (slice(None),) * (op.axis + 1), 0, []
    for x in node.inputs:
        stop = start + x.shape[op.axis]
        out.append(G[lead + (slice(start, stop),)])
        start = stop
    return tuple(out)


def _node(node):
    return node._array


def _in(node, i=0):
    return node.inputs[i]._array


_BATCHED = {
    Add: lambda op, G, n: _two(n, lambda: _bsum(G, n.inputs[0].shape), lambda: _bsum(G, n.inputs[1].shape)),
    Sub: lambda op, G, n: _two(n, lambda: _bsum(G, n.inputs[0].shape), lambda: _bsum(-G, n.inputs[1].shape)),
    Mul: lambda op, G, n: _two(n, lambda: _bsum(G * _in(n, 1), n.inputs[0].shape),
                               lambda: _bsum(G * _in(n, 0), n.inputs[1].shape)),
    Div: lambda op, G, n: _two(n, lambda: _bsum(G / _in(n, 1), n.inputs[0].shape),
                               lambda: _bsum(-G * _in(n, 0) / (_in(n, 1) * _in(n, 1)), n.inputs[1].shape)),
    AddScalar: lambda op, G, n: (G,),
    MulScalar: lambda op, G, n: (G * op.c,),
    PowerScalar: lambda op, G, n: (G * op.p * _in(n) ** (op.p - 1),),
    Negate: lambda op, G, n: (-G,),
    Exp: lambda op, G, n: (G * _node(n),),
    Log: lambda op, G, n: (G / _in(n),),
    ReLU: lambda op, G, n: (np.where(_in(n) > 0, G, 0),),
    Tanh: lambda op, G, n: (G * (1.0 - _node(n) * _node(n)),),
    Sigmoid: lambda op, G, n: (G * _node(n) * (1.0 - _node(n)),),
    AsType: lambda op, G, n: (G.astype(n.inputs[0].dtype),),
    MatMul: _b_matmul,
    _Affine: _b_affine,
    Summation: _b_summation,
    Reshape: lambda op, G, n: (G.reshape((G.shape[0],) + n.inputs[0].shape),),
    Transpose: _b_transpose,
    BroadcastTo: lambda op, G, n: (_bsum(G, n.inputs[0].shape),),
    GetItem: _b_getitem,
    ScatterSlice: lambda op, G, n: (G[(slice(None),) + op.index],),
    LogSumExp: _b_logsumexp,
    LogSoftmax: lambda op, G, n: (G - np.exp(_node(n)) * G.sum(axis=op.axis + 1, keepdims=True),),
    Softmax: lambda op, G, n: (_node(n) * (G - (G * _node(n)).sum(axis=op.axis + 1, keepdims=True)),),
    Max: _b_max,
    Where: _b_where,
    Maximum: _b_maximum,
    Stack: _b_stack,
    Concatenate: _b_concatenate,
}
#: the gradient method each rule stands for: a rule applies only while it is still the op's own
_BATCHED_FOR = {cls: cls.gradient for cls in _BATCHED}


def _batched_rule(op: Op):
    """The batched VJP of ``op``, or None (not a library op, or its gradient method replaced)."""
    cls = type(op)
    rule = _BATCHED.get(cls)
    if rule is None or cls.gradient is not _BATCHED_FOR[cls] or op.backend.name != "numpy":
        return None
    return rule
# END WITHHELD
