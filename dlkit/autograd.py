"""Tensors and reverse-mode automatic differentiation.

The idea in five lines
----------------------
1. Every operation on Tensors (``ops.py``) computes its result from backend arrays *and*
   remembers how it was made: the output Tensor stores its ``op`` and its ``inputs``.
   Together these records form a directed acyclic graph, the computational graph.
2. Each op also knows its vector-Jacobian product (VJP): given the gradient ``G`` of a
   scalar loss with respect to its output, ``op.gradient(G, node)`` returns the gradient with
   respect to each input, e.g. for ``C = A @ B``: ``(G @ Bᵀ, Aᵀ @ G)``.
3. ``loss.backward()`` sorts the graph topologically (:func:`topological_order`: inputs
   before outputs), then walks it from the loss back to the leaves (:func:`backward_sweep`),
   applying each op's VJP and *summing* the contributions that reach a tensor along different
   paths (the multivariate chain rule).
4. The VJPs are themselves written with Tensor ops, so with ``create_graph=True`` the
   backward pass records a graph of its own and can be differentiated again (Hessians).
5. Leaves (tensors you created with ``requires_grad=True``) receive ``.grad``; it accumulates
   over ``backward`` calls until you reset it (``t.grad = None``), as in PyTorch.

Shapes: a gradient always has exactly the shape of the tensor it belongs to.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ._graded import graded
from .backend import Backend, get_backend
from .shapes import FLOAT_DTYPES

_GRAD_ENABLED = True


# --------------------------------------------------------------------------- grad mode
def is_grad_enabled() -> bool:
    """True when new operations are recorded in the graph (the default)."""
    return _GRAD_ENABLED


class no_grad:
    """Context manager (or decorator) that stops recording the graph.

    >>> with dlkit.no_grad():
    ...     w.data = w - 0.1 * w.grad        # plain arithmetic, nothing recorded
    """

    def __init__(self, enabled: bool = False):
        self._enabled = enabled

    def __enter__(self) -> "no_grad":
        global _GRAD_ENABLED
        self._previous, _GRAD_ENABLED = _GRAD_ENABLED, self._enabled
        return self

    def __exit__(self, *exc: Any) -> None:
        global _GRAD_ENABLED
        _GRAD_ENABLED = self._previous

    def __call__(self, fn):
        def wrapper(*args, **kwargs):
            with no_grad(self._enabled):
                return fn(*args, **kwargs)

        wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
        return wrapper


class set_grad_enabled(no_grad):
    """``with set_grad_enabled(flag):`` records the graph inside the block iff ``flag``.

    The backward sweep runs under ``set_grad_enabled(create_graph)``: the VJPs it applies are
    recorded (and can be differentiated again) only when asked for.
    """

    def __init__(self, mode: bool):
        super().__init__(bool(mode))


# --------------------------------------------------------------------------- ops
class Op:
    """One differentiable operation (one instance per call).  Subclasses define the forward and
    the VJP side by side.

    * ``compute(*arrays)``: the forward pass on backend arrays; returns a backend array.
    * ``gradient(out_grad, node)``: ``out_grad`` is ∂loss/∂node (a Tensor shaped like
      ``node``); returns a tuple with ∂loss/∂input for every input, each a Tensor shaped like
      that input, built from Tensor ops (so it is differentiable again).  An entry may be
      ``None`` for an input that does not require grad (saves work, e.g. ``X`` in ``X @ W``).
    """

    backend: Backend        # set just before compute(): the inputs' backend

    def __call__(self, *inputs: "Tensor") -> "Tensor":
        """Run the forward pass; record (op, inputs) on the output if any input needs grad."""
        backend = inputs[0]._backend
        for x in inputs:
            if x._backend is not backend:
                _check_same_backend(inputs)
        self.backend = backend
        out = Tensor._wrap(self.compute(*[x._array for x in inputs]), backend)
        if _GRAD_ENABLED:
            for x in inputs:
                if x._requires_grad:
                    out._op, out._inputs, out._requires_grad = self, inputs, True
                    break
        return out

    def compute(self, *arrays: Any) -> Any:
        raise NotImplementedError

    def gradient(self, out_grad: "Tensor", node: "Tensor") -> tuple["Tensor | None", ...]:
        raise NotImplementedError(f"{type(self).__name__} is not differentiable")


# --------------------------------------------------------------------------- tensor
def _check_same_backend(inputs: Sequence["Tensor"]) -> Backend:
    backend = inputs[0]._backend
    for t in inputs[1:]:
        if t._backend is not backend and t._backend.name != backend.name:
            raise ValueError(f"tensors live on different backends ({backend.name!r} and "
                             f"{t._backend.name!r}); move one with .to({backend.name!r})")
    return backend


class Tensor:
    """An n-dimensional array that remembers how it was computed.

    Attributes: ``shape``, ``dtype``, ``ndim``, ``size``, ``requires_grad``, ``grad`` (a Tensor
    or None), ``backend`` (the :class:`~dlkit.backend.Backend` holding the values).
    """

    __slots__ = ("_array", "_backend", "_op", "_inputs", "_requires_grad", "grad", "__weakref__")
    __array_ufunc__ = None          # `ndarray * Tensor` calls Tensor.__rmul__, not numpy

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = "float32",
                 backend: Backend | None = None):
        backend = backend or get_backend()
        if isinstance(data, Tensor):
            data = data._backend.to_numpy(data._array)
        self._array = backend.array(data, np.dtype(dtype))
        self._backend = backend
        self._op: Op | None = None
        self._inputs: tuple[Tensor, ...] = ()
        self._requires_grad = False
        self.grad: Tensor | None = None
        self.requires_grad = requires_grad

    # -- construction used by ops (no copies, no checks) -----------------------------
    @staticmethod
    def _wrap(array: Any, backend: Backend) -> "Tensor":
        """A constant (non-differentiable) Tensor around an existing backend array."""
        t = object.__new__(Tensor)
        t._array, t._backend, t._op, t._inputs = array, backend, None, ()
        t._requires_grad, t.grad = False, None
        return t

    # -- basic properties ---------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._array.shape

    @property
    def dtype(self) -> np.dtype:
        return self._array.dtype

    @property
    def ndim(self) -> int:
        return self._array.ndim

    @property
    def size(self) -> int:
        return math.prod(self._array.shape)

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def op(self) -> Op | None:
        """The op that produced this tensor (None for leaves and constants)."""
        return self._op

    @property
    def inputs(self) -> tuple["Tensor", ...]:
        return self._inputs

    @property
    def is_leaf(self) -> bool:
        return self._op is None

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if value and self.dtype not in FLOAT_DTYPES:
            raise TypeError(f"only float32/float64 tensors can require grad; this tensor is "
                            f"{self.dtype} (labels and masks never need gradients)")
        if self._op is not None:
            raise RuntimeError("requires_grad can only be changed on leaf tensors; "
                               "use .detach() to cut a computed tensor out of the graph")
        self._requires_grad = bool(value)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    # -- values ---------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """A host ``numpy.ndarray`` copy of the values (never shares memory with the tensor)."""
        out = self._backend.to_numpy(self._array)
        return out.copy() if out is self._array else out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self.numpy()
        return out if dtype is None else out.astype(dtype)

    def item(self) -> float | int | bool:
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element; shape is {self.shape}")
        return self.numpy().reshape(()).item()

    def __bool__(self) -> bool:
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def detach(self) -> "Tensor":
        """A new constant Tensor sharing this tensor's storage, outside any graph."""
        return Tensor._wrap(self._array, self._backend)

    @property
    def data(self) -> "Tensor":
        """The values as a detached Tensor (shared storage).  Assigning replaces them in place:
        ``p.data = new_values`` keeps ``p``'s shape, dtype and identity (how optimizers update)."""
        return self.detach()

    @data.setter
    def data(self, value: "Tensor | np.ndarray") -> None:
        if isinstance(value, Tensor):
            src = value._array if value._backend is self._backend else value.numpy()
        else:
            src = np.asarray(value)
        if tuple(src.shape) != self.shape:
            raise ValueError(f"cannot assign values of shape {tuple(src.shape)} to .data of a "
                             f"tensor of shape {self.shape}; shapes must match exactly")
        if src.dtype != self.dtype:
            src = src.astype(self.dtype)
        self._backend.assign(self._array, src)

    def astype(self, dtype: Any) -> "Tensor":
        from . import ops
        return ops.astype(self, dtype)

    def to(self, backend: "str | Backend") -> "Tensor":
        """A new leaf tensor with the same values on another backend (``"numpy"``/``"cuda"``).

        The copy goes through host memory and keeps ``dtype`` and ``requires_grad``; it is not
        connected to this tensor's graph.
        """
        if isinstance(backend, str):
            from .backend import _resolve
            backend = _resolve(backend)
        host = self._backend.to_numpy(self._array)
        out = Tensor._wrap(backend.array(host, host.dtype), backend)
        out._requires_grad = self._requires_grad
        return out

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(")
        extra = f", dtype={self.dtype}"
        if self._op is not None:
            extra += f", op={type(self._op).__name__}"       # made by an op: part of a graph
        elif self._requires_grad:
            extra += ", requires_grad=True"
        if self._backend.name != "numpy":
            extra += f", backend={self._backend.name!r}"
        return f"tensor({body}{extra})"

    __hash__ = object.__hash__     # `==` builds a tensor, so hashing is by identity

    # -- autodiff ---------------------------------------------------------------------
    def backward(self, out_grad: "Tensor | np.ndarray | None" = None,
                 create_graph: bool = False, retain_graph: bool = True) -> None:
        """Accumulate ∂self/∂leaf (contracted with ``out_grad``) into every leaf's ``.grad``.

        ``out_grad`` defaults to 1 for a scalar; a non-scalar output needs one of its shape.
        ``retain_graph=False`` (and no ``create_graph``) frees the graph: every tensor of it
        forgets its inputs, so the activations it kept alive can go (``fit`` does this; the
        instructor edition frees each tensor as soon as its VJP has run, and drops every
        intermediate gradient once consumed); another backward through it then raises.  The
        default keeps the graph, so that calling ``backward`` twice accumulates twice (PyTorch
        frees by default).
        """
        if not self._requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad: no input of "
                               "its graph was created with requires_grad=True (or it was "
                               "computed under no_grad / from .detach())")
        seed = _seed_gradient(self, out_grad, "backward()")
        free = not retain_graph and not create_graph
        grads = None
        # BEGIN WITHHELD: the instructor engine's lean sweep (the kit runs backward_sweep)
        if _own_engine():
            grads = _lean_sweep(self, seed, create_graph, free, _is_leaf, "backward()")
            free = False                        # done during the sweep
        # END WITHHELD
        if grads is None:
            grads = _checked(backward_sweep(self, seed, create_graph), "backward()")
        seen: set[int] = set()
        with set_grad_enabled(create_graph):
            for leaf, g in grads.items():
                if leaf._op is not None or not leaf._requires_grad:
                    continue
                if not create_graph:
                    # .grad must own its memory: optimizers may update it in place, so it must
                    # not be the caller's out_grad, another leaf's .grad, or a (numpy) view
                    arr = g._array
                    if g is seed or id(arr) in seen or getattr(arr, "base", None) is not None:
                        g = Tensor._wrap(g._backend.copy(arr), g._backend)
                    seen.add(id(g._array))
                leaf.grad = g if leaf.grad is None else leaf.grad + g
        if free:
            _free_graph(grads)

    # -- operators (implemented in ops.py) --------------------------------------------
    def __add__(self, other): return _ops().add(self, other)
    def __radd__(self, other): return _ops().add(self, other)
    def __sub__(self, other): return _ops().sub(self, other)
    def __rsub__(self, other): return _ops().rsub(self, other)
    def __mul__(self, other): return _ops().mul(self, other)
    def __rmul__(self, other): return _ops().mul(self, other)
    def __truediv__(self, other): return _ops().div(self, other)
    def __rtruediv__(self, other): return _ops().rdiv(self, other)
    def __pow__(self, exponent): return _ops().power(self, exponent)
    def __neg__(self): return _ops().negate(self)
    def __matmul__(self, other): return _ops().matmul(self, other)
    def __rmatmul__(self, other): return _ops().matmul(other, self)
    def __getitem__(self, index): return _ops().getitem(self, index)
    def __eq__(self, other): return _ops().equal(self, other)           # type: ignore[override]
    def __ne__(self, other): return _ops().not_equal(self, other)       # type: ignore[override]
    def __lt__(self, other): return _ops().less(self, other)
    def __le__(self, other): return _ops().less_equal(self, other)
    def __gt__(self, other): return _ops().greater(self, other)
    def __ge__(self, other): return _ops().greater_equal(self, other)

    def sum(self, axis=None, keepdims=False): return _ops().summation(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return _ops().mean(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return _ops().amax(self, axis, keepdims)
    def reshape(self, *shape): return _ops().reshape(self, _shape_arg(shape))
    def transpose(self, axes=None): return _ops().transpose(self, axes)
    def broadcast_to(self, shape): return _ops().broadcast_to(self, shape)
    def exp(self): return _ops().exp(self)
    def log(self): return _ops().log(self)
    def relu(self): return _ops().relu(self)
    def tanh(self): return _ops().tanh(self)
    def sigmoid(self): return _ops().sigmoid(self)
    def logsumexp(self, axis=None, keepdims=False): return _ops().logsumexp(self, axis, keepdims)
    def log_softmax(self, axis=-1): return _ops().log_softmax(self, axis)
    def softmax(self, axis=-1): return _ops().softmax(self, axis)
    def argmax(self, axis=None): return _ops().argmax(self, axis)

    @property
    def T(self) -> "Tensor":
        """Reverse all axes (``transpose()``)."""
        return _ops().transpose(self)


def _shape_arg(shape: tuple) -> tuple[int, ...]:
    """``t.reshape(2, 3)`` and ``t.reshape((2, 3))`` both work."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


_OPS = None


def _ops():
    """ops.py imports this module, so the operators look it up lazily (once)."""
    global _OPS
    if _OPS is None:
        from . import ops
        _OPS = ops
    return _OPS


def tensor(data: Any, requires_grad: bool = False, dtype: Any = "float32") -> Tensor:
    """A new leaf Tensor holding a copy of ``data`` (array-like) on the active backend.

    dtype: ``"float32"`` (default), ``"float64"``, or ``"int64"``/``"bool"`` for labels and masks
    (those can never require grad).
    """
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


# --------------------------------------------------------------------------- backward
_SEEDS: dict[tuple[int, np.dtype], Any] = {}


def _unit_seed(backend: Backend, dtype: np.dtype) -> Any:
    """The 0-d array 1 of ``dtype`` that starts a scalar's backward, made once per backend and
    dtype (host arrays are read-only, so nothing can change the shared value)."""
    key = (id(backend), dtype)
    seed = _SEEDS.get(key)
    if seed is None:
        seed = backend.ones((), dtype)
        if isinstance(seed, np.ndarray):
            seed.flags.writeable = False
            _SEEDS[key] = seed
    return seed


def _seed_gradient(output: Tensor, out_grad: Any, who: str) -> Tensor:
    """The gradient to start the reverse sweep from: 1 for a scalar, else ``out_grad``."""
    if out_grad is None:
        if output.shape != ():
            raise ValueError(f"{who} on a non-scalar tensor of shape {output.shape} needs "
                             f"out_grad (a tensor of that shape); only scalars default to 1")
        return Tensor._wrap(_unit_seed(output._backend, output.dtype), output._backend)
    if not isinstance(out_grad, Tensor):
        out_grad = Tensor(np.asarray(out_grad), dtype=output.dtype, backend=output._backend)
    if out_grad.shape != output.shape:
        raise ValueError(f"{who}: out_grad has shape {out_grad.shape} but the output has shape "
                         f"{output.shape}; they must match")
    if out_grad.dtype != output.dtype:
        out_grad = out_grad.astype(output.dtype)
    return out_grad


@graded("01_autodiff_backprop", "topological_order")
def topological_order(output: Tensor) -> list[Tensor]:
    """Every tensor that requires grad and reaches ``output`` (itself included), each once,
    every tensor after all of its inputs: a depth-first post-order, without recursion."""
    order: list[Tensor] = []
    visited = {output}
    stack = [(output, iter(output.inputs))]
    while stack:
        node, inputs = stack[-1]
        for x in inputs:
            if x.requires_grad and x not in visited:
                visited.add(x)
                stack.append((x, iter(x.inputs)))
                break
        else:                           # all of node's inputs are placed: node comes next
            stack.pop()
            order.append(node)
    return order


@graded("01_autodiff_backprop", "backward_sweep")
def backward_sweep(output: Tensor, out_grad: Tensor,
                   create_graph: bool = False) -> dict[Tensor, Tensor]:
    """``{tensor: ∂⟨out_grad, output⟩/∂tensor}`` for the tensors of ``topological_order(output)``.

    Walks the order backwards; a tensor's gradient is complete once every consumer (all later
    in the order) has added its VJP contribution.  The VJPs are recorded iff ``create_graph``.
    """
    grads = {output: out_grad}
    with set_grad_enabled(create_graph):
        for node in reversed(topological_order(output)):
            g = grads.get(node)
            if g is None or node.op is None:
                continue
            for x, gx in zip(node.inputs, node.op.gradient(g, node)):
                if gx is not None and x.requires_grad:
                    grads[x] = grads[x] + gx if x in grads else gx
    return grads


class FreedOp(Op):
    """Stands in for the op of a tensor whose graph ``backward(retain_graph=False)`` freed."""

    def __init__(self, op: Op):
        self.name = type(op).__name__

    def gradient(self, out_grad: Tensor, node: Tensor):
        raise RuntimeError(f"backward through a graph a second time: the first backward freed it "
                           f"(retain_graph=False), so the inputs of this {self.name} are gone; "
                           f"call backward(retain_graph=True) the first time, or recompute")


def _free_graph(grads: dict[Tensor, Tensor]) -> None:
    """Cut every computed tensor of a finished sweep off its inputs (non-graded engine code)."""
    for node in grads:
        if node._op is not None:
            node._op, node._inputs = FreedOp(node._op), ()


# BEGIN WITHHELD: the instructor engine's lean sweep is a backward_sweep (a graded piece)
def _is_leaf(t: Tensor) -> bool:
    return t._op is None


def _lean_sweep(output: Tensor, out_grad: Tensor, create_graph: bool, free: bool,
                keep: Any, who: str = "backward()") -> dict[Tensor, Tensor]:
    """``backward_sweep`` for callers that need only some gradients (``Tensor.backward``: the
    leaves'; ``grad``: its inputs'): ``{tensor: gradient}`` for the tensors with ``keep(t)``.

    Memory in flight is what the graded sweep's dict keeps alive: every tensor's gradient until
    the sweep ends.  Here a tensor's gradient is dropped as soon as its op's VJP has consumed it,
    and with ``free`` (``backward(retain_graph=False)``) the tensor is cut off its inputs at the
    same moment (as :func:`_free_graph` does afterwards), so an activation that only the graph
    held goes as soon as the last VJP that reads it has run, not after the whole sweep.  The
    order list drops each tensor when it is reached.  Same VJPs, same order, same sums as
    :func:`backward_sweep`, so the same values; a VJP result of the wrong shape is reported
    naming its op.
    """
    order = topological_order(output)
    grads = {output: out_grad}
    kept: dict[Tensor, Tensor] = {}
    with set_grad_enabled(create_graph):
        for i in range(len(order) - 1, -1, -1):
            node = order[i]
            order[i] = None
            g = grads.pop(node, None)
            op = node._op
            if g is None:
                if free and op is not None:
                    node._op, node._inputs = FreedOp(op), ()
                continue
            if keep(node):
                kept[node] = g
            if op is None:
                continue
            inputs = node._inputs
            results = op.gradient(g, node)
            if free:
                node._op, node._inputs = FreedOp(op), ()
            g = None
            for x, gx in zip(inputs, results):
                if gx is None or not x._requires_grad:
                    continue
                if not isinstance(gx, Tensor) or gx.shape != x.shape:
                    raise _shape_error(who, x, gx, [type(op).__name__])
                prev = grads.get(x)
                grads[x] = gx if prev is None else prev + gx
            inputs = results = gx = prev = None
    return kept


_OWN_ENGINE = (topological_order, backward_sweep)


def _own_engine() -> bool:
    """True while the engine's two pieces are the library's own (not replaced, e.g. by a test)."""
    return (topological_order, backward_sweep) == _OWN_ENGINE
# END WITHHELD


def _shape_error(who: str, node: Tensor, g: Any, users: list[str]) -> RuntimeError:
    made_by = f"made by {type(node._op).__name__}" if node._op else "a leaf"
    got = f"shape {g.shape}" if isinstance(g, Tensor) else f"a {type(g).__name__}"
    return RuntimeError(f"{who}: the gradient of a tensor of shape {node.shape} "
                        f"({made_by}) is {got}; it comes from the gradient method of "
                        f"{' / '.join(users) or 'an op'}, which must return one gradient "
                        f"shaped like each input")


def _checked(grads: Any, who: str) -> dict[Tensor, Tensor]:
    """The sweep's result, with a clear error where a gradient has the wrong shape or type."""
    if not isinstance(grads, dict):
        raise TypeError(f"{who}: backward_sweep returned a {type(grads).__name__}, "
                        f"expected a dict {{tensor: gradient}}")
    for node, g in grads.items():
        if not isinstance(g, Tensor) or g.shape != node.shape:
            users = sorted({type(t._op).__name__ for t in grads
                            if t._op is not None and any(x is node for x in t._inputs)})
            raise _shape_error(who, node, g, users)
    return grads


def grad(outputs: "Tensor | Sequence[Tensor]", inputs: "Tensor | Sequence[Tensor]",
         out_grad: "Tensor | Sequence[Tensor | None] | None" = None, create_graph: bool = False,
         retain_graph: bool | None = None, allow_unused: bool = False) -> list[Tensor | None]:
    """Gradients of ``outputs`` w.r.t. ``inputs``, returned as a list; ``.grad`` is untouched.

    Computes Σ_k out_grad_k · ∂outputs_k/∂inputs_j for every input j.  With
    ``create_graph=True`` the results are recorded in the graph, so they can be
    differentiated again (second derivatives, Hessian-vector products).  ``retain_graph`` is
    accepted for PyTorch compatibility: dlkit graphs are always kept while referenced.
    An input that does not influence the outputs raises ValueError unless ``allow_unused``
    (then its entry is None).
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if out_grad is None:
        out_grads = [None] * len(outputs)
    elif isinstance(out_grad, (Tensor, np.ndarray)):
        out_grads = [out_grad]
    else:
        out_grads = list(out_grad)
    if len(out_grads) != len(outputs):
        raise ValueError(f"grad(): got {len(out_grads)} out_grads for {len(outputs)} outputs; "
                         f"give one per output")
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor):
            raise TypeError(f"grad(): inputs[{i}] is a {type(x).__name__}, not a Tensor")
        if not x.requires_grad:
            raise ValueError(f"grad(): inputs[{i}] (shape {x.shape}, {x.dtype}) does not require "
                             f"grad; create it with requires_grad=True")
    totals: dict[Tensor, Tensor] = {}
    wanted = set(inputs)
    for k, (y, gy) in enumerate(zip(outputs, out_grads)):
        if not y.requires_grad:
            continue
        seed = _seed_gradient(y, gy, f"grad() (output {k})")
        grads = None
        # BEGIN WITHHELD: the instructor engine's lean sweep (the kit runs backward_sweep)
        if _own_engine():
            grads = _lean_sweep(y, seed, create_graph, False, wanted.__contains__, "grad()")
        # END WITHHELD
        if grads is None:
            grads = _checked(backward_sweep(y, seed, create_graph), "grad()")
        with set_grad_enabled(create_graph):
            for x in wanted:
                g = grads.get(x)
                if g is seed:                   # x is the output itself: never hand out the seed
                    g = Tensor._wrap(g._backend.copy(g._array), g._backend)
                if g is not None:
                    totals[x] = totals[x] + g if x in totals else g
    kept = totals
    result: list[Tensor | None] = []
    for i, x in enumerate(inputs):
        g = kept.get(x)
        if g is None and not allow_unused:
            raise ValueError(f"grad(): inputs[{i}] (shape {x.shape}) is not connected to the "
                             f"outputs; pass allow_unused=True to get None for it")
        result.append(g)
    return result


def hessian(fn, x: Tensor) -> Tensor:
    """The full Hessian ∂²fn/∂x² of a scalar function, shape ``x.shape + x.shape``.

    Differentiates the gradient once per element of ``x`` (the vector-Jacobian product of the
    gradient with each basis vector: one backward sweep per row), so it is meant for small
    problems such as Newton's method on a few parameters.  The instructor edition does all rows
    in one sweep, an out_grad with a leading batch axis, where every op of the gradient's graph
    is one of dlkit's own (numpy backend); the values are the same.  ``x`` must be a float
    tensor; it need not require grad.
    """
    x = Tensor._wrap(x._array, x._backend)
    x._requires_grad = True
    y = fn(x)
    if y.shape != ():
        raise ValueError(f"hessian(): fn must return a scalar; it returned shape {y.shape}")
    (g,) = grad(y, [x], create_graph=True)
    n = math.prod(x.shape)
    basis = np.eye(n, dtype=x.dtype)
    # BEGIN WITHHELD: one batched sweep when every op of the gradient's graph has a batched VJP
    H = _batched_vjp(g, x, basis.reshape((n,) + g.shape))
    if H is not None:
        return Tensor(H.reshape(x.shape + x.shape), dtype=x.dtype, backend=x._backend)
    # END WITHHELD
    rows = []
    for i in range(n):              # row i = the VJP of the gradient with the basis vector e_i
        (row,) = grad(g, [x], out_grad=basis[i].reshape(x.shape), allow_unused=True)
        rows.append(np.zeros(x.shape, x.dtype) if row is None else row.numpy())
    return Tensor(np.stack(rows).reshape(x.shape + x.shape), dtype=x.dtype, backend=x._backend)


# BEGIN WITHHELD: a batched backward sweep (the library's own batched VJPs, see ops._BATCHED)
def _batched_vjp(output: Tensor, x: Tensor, out_grads: np.ndarray) -> np.ndarray | None:
    """∂⟨out_grads[k], output⟩/∂x for every k in one sweep, shape (B, *x.shape); None when an
    op of the graph has no batched rule (a user's op, a replaced gradient method, another
    backend), so the caller takes one sweep per row.  ``out_grads`` is (B, *output.shape)."""
    if not _own_engine() or not output._requires_grad:
        return None
    rule_of = _ops()._batched_rule
    order = topological_order(output)
    rules = {}
    for node in order:
        if node._op is not None:
            rule = rule_of(node._op)
            if rule is None:
                return None
            rules[node] = rule
    grads = {output: out_grads}
    for node in reversed(order):
        G = grads.pop(node, None)
        if G is None:
            continue
        if node is x:
            return np.array(G, dtype=x.dtype)
        if node._op is None:
            continue
        for inp, gi in zip(node._inputs, rules[node](node._op, G, node)):
            if gi is None or not inp._requires_grad:
                continue
            prev = grads.get(inp)
            grads[inp] = gi if prev is None else prev + gi
    return np.zeros((len(out_grads),) + x.shape, x.dtype)   # x does not reach the output
# END WITHHELD
