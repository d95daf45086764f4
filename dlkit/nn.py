"""Neural-network building blocks in the lectures' matrix form.

A batch is a matrix X of shape (m, n); :class:`Linear` computes ``X W + b`` with W of shape
(in_features, out_features) and b of shape (out_features,) broadcast over the rows.

:class:`Module` finds its sub-modules and parameters by walking its attributes, in assignment
order, through lists, tuples and dicts nested to any depth (dicts in insertion order): a
:class:`Parameter` or a sub-Module found there is part of the model, as in PyTorch and needle.
Names (the keys of ``state_dict``) join the attribute name, list/tuple indices and dict keys with
dots: ``self.stuff = {"layer2": [Dropout(), Sequential(Linear(2, 2))]}`` gives
``stuff.layer2.1.0.weight``.  A module or parameter reachable twice (shared, or a cycle such as a
child keeping a reference to its parent) is visited once, under the first name found.  Sets and
objects that are not Modules are not walked (a set has no stable order).  :class:`ModuleList` and
:class:`ModuleDict` are there for readers who know PyTorch's names; plain lists and dicts work
the same.  Buffers (running statistics, saved but not trained) are registered with
:meth:`Module.register_buffer`.

:class:`Linear`, :class:`BatchNorm1d`, :class:`LayerNorm1d` and :class:`Dropout` are pieces students
write in notebook 05 (marked ``@graded``): in the student kit they forward to the student's own
classes (``dlkit.student.plug``), so :class:`MLP` and everything built on it runs the student's layers.

Conventions (keywords where references differ):

* ``BatchNorm1d``: running = (1 − momentum)·running + momentum·batch (PyTorch's direction;
  momentum=0.1 keeps 90 % of the old value); the running variance is the *unbiased* batch
  variance (÷(m−1)) unless ``unbiased_running_var=False``; normalization in training always
  uses the biased batch variance (÷m).
* ``Dropout(p)``: p is the probability to **drop**; kept activations are scaled by 1/(1−p)
  (inverted dropout) so eval mode is the identity.
"""
from __future__ import annotations

import math
import os
from collections import OrderedDict
from functools import partial
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from . import init
from ._graded import graded
from .autograd import Tensor, no_grad, tensor
# BEGIN WITHHELD: the fused Linear node
from .ops import _affine
# END WITHHELD

__all__ = [
    "Parameter", "Module", "ModuleList", "ModuleDict", "Linear", "ReLU", "Tanh", "Sigmoid",
    "Identity", "Sequential",
    "Residual", "Flatten", "BatchNorm1d", "LayerNorm1d", "Dropout", "CrossEntropyLoss", "MSELoss",
    "MLP",
]


class Parameter(Tensor):
    """A trainable Tensor (``requires_grad=True``) that Modules collect in ``parameters()``.

    ``data``: array-like or Tensor (copied).  ``dtype``: float32 unless given, or the Tensor's own.
    """

    def __init__(self, data: Any, dtype: Any = None) -> None:
        if dtype is None:
            dtype = data.dtype if isinstance(data, Tensor) else "float32"
        super().__init__(data, requires_grad=True, dtype=dtype)

    def __repr__(self) -> str:
        return "Parameter(" + super().__repr__() + ")"


def _as_input(x: Any, like: Tensor | None, who: str) -> Tensor:
    """Inputs may be Tensors or array-likes (converted to the layer's dtype)."""
    if isinstance(x, Tensor):
        return x
    try:
        return tensor(np.asarray(x), dtype=like.dtype if like is not None else "float32")
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{who}: input must be a Tensor or array, got {type(x).__name__}") from exc


# -- Module ------------------------------------------------------------------------------------

class Module:
    """Base class of layers and models: ``model(x)`` calls ``model.forward(x)``."""

    training: bool = True

    def forward(self, *args: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # -- discovery ------------------------------------------------------------------------
    def register_buffer(self, name: str, value: Tensor | np.ndarray) -> None:
        """Keep ``value`` as ``self.<name>``: saved in ``state_dict`` but never trained."""
        if "_buffer_names" not in vars(self):
            self._buffer_names: list[str] = []
        if name not in self._buffer_names:
            self._buffer_names.append(name)
        setattr(self, name, value if isinstance(value, Tensor) else tensor(value, dtype=np.asarray(value).dtype))

    #: Attributes that are bookkeeping, never part of the model.
    _NOT_WALKED = frozenset({"training", "_buffer_names"})

    def _walk_roots(self) -> Iterator[tuple[str, Any]]:
        """The ``(name, value)`` pairs discovery starts from: this module's attributes."""
        for name, value in vars(self).items():
            if name not in self._NOT_WALKED:
                yield name, value

    def _named_members(self) -> Iterator[tuple[str, "Module | Parameter"]]:
        """Sub-Modules and Parameters held by this module, depth first, each object once.

        Walks attributes and, inside them, lists / tuples (by index) and dicts (by key, in
        insertion order) at any depth; does not look inside the sub-Modules it finds (they walk
        their own attributes).  A container met twice (shared, or containing itself) is walked once.
        """
        seen: set[int] = set()

        def walk(path: str, value: Any) -> Iterator[tuple[str, Any]]:
            if isinstance(value, (Module, Parameter)):
                if id(value) not in seen:
                    seen.add(id(value))
                    yield path, value
                return
            if isinstance(value, dict):
                items: Any = ((str(k), v) for k, v in list(value.items()))
            elif isinstance(value, (list, tuple)):
                items = ((str(i), v) for i, v in enumerate(list(value)))
            else:
                return
            if id(value) in seen:
                return
            seen.add(id(value))
            for key, item in items:
                yield from walk(f"{path}.{key}" if path else key, item)

        seen.add(id(self))
        for name, value in self._walk_roots():
            yield from walk(name, value)

    def _named_children(self) -> Iterator[tuple[str, "Module"]]:
        for name, value in self._named_members():
            if isinstance(value, Module):
                yield name, value

    def _own_parameters(self) -> Iterator[tuple[str, Parameter]]:
        for name, value in self._named_members():
            if isinstance(value, Parameter):
                yield name, value

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """This module and every descendant, with dotted names ("" for this one), each once.

        Pre-order (a module before its children, children in discovery order).  A module
        reachable twice keeps the first name; a cycle back to an ancestor is not followed.
        """
        memo: set[int] = set()

        def visit(name: str, module: "Module") -> Iterator[tuple[str, "Module"]]:
            memo.add(id(module))
            yield name, module
            for child_name, child in module._named_children():
                if id(child) not in memo:
                    yield from visit(f"{name}.{child_name}" if name else child_name, child)

        yield from visit(prefix, self)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def children(self) -> Iterator["Module"]:
        """The direct sub-modules (found in attributes and the containers they hold), each once."""
        for _, m in self._named_children():
            yield m

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        """``(dotted name, module)`` for each direct sub-module, e.g. ``("stuff.layer2.0", Dropout)``."""
        yield from self._named_children()

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """``(dotted name, Parameter)`` pairs, each parameter once, in definition order."""
        seen: set[int] = set()
        for prefix, module in self.named_modules():
            for name, p in module._own_parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{prefix}.{name}" if prefix else name), p

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def named_buffers(self) -> Iterator[tuple[str, Tensor]]:
        for prefix, module in self.named_modules():
            for name in vars(module).get("_buffer_names", []):
                yield (f"{prefix}.{name}" if prefix else name), getattr(module, name)

    # -- modes ------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Training mode (batch statistics, dropout on) for this module and all descendants."""
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self) -> "Module":
        """Evaluation mode (running statistics, dropout off)."""
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    # -- saving -----------------------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Host copies of every parameter and buffer, keyed by dotted name."""
        out: OrderedDict[str, np.ndarray] = OrderedDict()
        for name, t in list(self.named_parameters()) + list(self.named_buffers()):
            out[name] = t.numpy().copy()
        return out

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Copy values into the existing parameters/buffers in place (shapes must match).

        ``strict=True`` raises ``KeyError`` listing missing and unexpected names.
        """
        targets = dict(list(self.named_parameters()) + list(self.named_buffers()))
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        if strict and (missing or unexpected):
            raise KeyError(f"{type(self).__name__}.load_state_dict: missing keys {missing}, "
                           f"unexpected keys {unexpected}")
        for name, t in targets.items():
            if name not in state:
                continue
            value = np.asarray(state[name].numpy() if isinstance(state[name], Tensor) else state[name])
            if tuple(value.shape) != tuple(t.shape):
                raise ValueError(f"{type(self).__name__}.load_state_dict: {name!r} has shape "
                                 f"{tuple(value.shape)}, the model expects {tuple(t.shape)}")
            t.data = value.astype(t.dtype)

    def save(self, path: str | os.PathLike) -> None:
        """Write ``state_dict()`` to an ``.npz`` file (numpy adds ``.npz`` if missing)."""
        np.savez(path, **self.state_dict())

    def load(self, path: str | os.PathLike) -> "Module":
        """Load an ``.npz`` written by :meth:`save` (no pickle)."""
        path = os.fspath(path)
        if not os.path.exists(path) and os.path.exists(path + ".npz"):
            path = path + ".npz"
        with np.load(path, allow_pickle=False) as f:
            self.load_state_dict({k: f[k] for k in f.files})
        return self

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        children = list(self._named_children())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"  ({name}): " + repr(child).replace("\n", "\n  ") for name, child in children]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


# -- layers ------------------------------------------------------------------------------------

def _shape_error(layer: str, expected: str, got: tuple) -> ValueError:
    return ValueError(f"{layer}: expected input of shape {expected}, got {tuple(got)}")


@graded("05_normalization_regularization", "Linear")
class Linear(Module):
    """Affine map ``X W + b``: X (m, in_features) → (m, out_features).

    W: (in_features, out_features), b: (out_features,).  Default initialization is PyTorch's:
    W and b uniform on ±1/√in_features (:func:`dlkit.init.lecun_uniform`), drawn from
    ``generator`` weights first, then biases.  ``initializer(fan_in, fan_out, generator=...)``
    (returning a Tensor or array of shape (in, out)) replaces the weight draw; the bias is
    then zero.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 generator: np.random.Generator | None = None, dtype: str = "float32",
                 initializer: Callable[..., Any] | None = None) -> None:
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Linear: {name} must be a positive integer, got {value!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        rng = np.random.default_rng() if generator is None else generator
        if initializer is None:
            W = init.lecun_uniform(self.in_features, self.out_features, generator=rng, dtype=dtype)
            b = init._symmetric_uniform((self.out_features,), 1.0 / math.sqrt(self.in_features), rng, dtype)
        else:
            W = initializer(self.in_features, self.out_features, generator=rng)
            W = W.numpy() if isinstance(W, Tensor) else np.asarray(W)
            if W.shape != (self.in_features, self.out_features):
                raise ValueError(f"Linear: initializer returned shape {W.shape}, expected "
                                 f"{(self.in_features, self.out_features)}")
            b = np.zeros(self.out_features)
        self.weight = Parameter(W, dtype=dtype)
        self.bias = Parameter(b, dtype=dtype) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        x = _as_input(x, self.weight, "Linear")
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise _shape_error(f"Linear(in_features={self.in_features}, out_features={self.out_features})",
                               f"(m, {self.in_features})", x.shape)
        if x.dtype != self.weight.dtype:
            raise TypeError(f"Linear(in_features={self.in_features}, out_features={self.out_features}): "
                            f"input dtype {x.dtype} differs from the weights' {self.weight.dtype}; "
                            f"convert with x.astype('{self.weight.dtype}')")
        # BEGIN WITHHELD: the instructor Linear records one fused node (matmul + bias)
        return _affine(x, self.weight, self.bias)
        # END WITHHELD
        out = x @ self.weight
        return out + self.bias if self.bias is not None else out

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class ReLU(Module):
    """max(x, 0) elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return _as_input(x, None, "ReLU").relu()


class Tanh(Module):
    """tanh(x) elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return _as_input(x, None, "Tanh").tanh()


class Sigmoid(Module):
    """σ(x) = 1/(1 + e^{−x}) elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return _as_input(x, None, "Sigmoid").sigmoid()


class Identity(Module):
    """Returns its input."""

    def forward(self, x: Tensor) -> Tensor:
        return x


class Sequential(Module):
    """Apply ``modules`` in order; parameters are named ``"0.weight"``, ``"1.bias"``, ..."""

    def __init__(self, *modules: Module) -> None:
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: item {i} is a {type(m).__name__}, not a Module")
        self.layers = list(modules)

    def _walk_roots(self) -> Iterator[tuple[str, Any]]:
        for i, m in enumerate(self.layers):
            yield str(i), m

    def forward(self, x: Tensor) -> Tensor:
        for m in self.layers:
            x = m(x)
        return x

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)


class ModuleList(Module):
    """A list of Modules, named ``"0"``, ``"1"``, ... (PyTorch's ``nn.ModuleList``).

    A plain Python list in an attribute is discovered just the same; this class adds the
    name and type checks.  It has no ``forward``: index it or iterate over it.
    """

    def __init__(self, modules: Sequence[Module] = ()) -> None:
        self._items: list[Module] = []
        self.extend(modules)

    @staticmethod
    def _checked(m: Any, where: str) -> Module:
        if not isinstance(m, Module):
            raise TypeError(f"ModuleList: {where} is a {type(m).__name__}, not a Module")
        return m

    def _walk_roots(self) -> Iterator[tuple[str, Any]]:
        for i, m in enumerate(self._items):
            yield str(i), m

    def append(self, module: Module) -> "ModuleList":
        self._items.append(self._checked(module, f"item {len(self._items)}"))
        return self

    def extend(self, modules: Sequence[Module]) -> "ModuleList":
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        self._items.insert(index, self._checked(module, f"item {index}"))

    def __getitem__(self, i: int) -> Module:
        return self._items[i]

    def __setitem__(self, i: int, module: Module) -> None:
        self._items[i] = self._checked(module, f"item {i}")

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._items)


class ModuleDict(Module):
    """Modules by name, in insertion order (PyTorch's ``nn.ModuleDict``); keys are strings.

    A plain dict in an attribute is discovered just the same; this class adds the checks.
    """

    def __init__(self, modules: dict[str, Module] | None = None) -> None:
        self._items: dict[str, Module] = {}
        for key, m in (modules or {}).items():
            self[key] = m

    def _walk_roots(self) -> Iterator[tuple[str, Any]]:
        yield from self._items.items()

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(key, str) or not key or "." in key:
            raise KeyError(f"ModuleDict: keys must be non-empty strings without '.', got {key!r}")
        if not isinstance(module, Module):
            raise TypeError(f"ModuleDict: {key!r} is a {type(module).__name__}, not a Module")
        self._items[key] = module

    def __getitem__(self, key: str) -> Module:
        return self._items[key]

    def __delitem__(self, key: str) -> None:
        del self._items[key]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def keys(self):
        return self._items.keys()

    def values(self):
        return self._items.values()

    def items(self):
        return self._items.items()


class Residual(Module):
    """``fn(x) + x`` (fn must preserve the shape)."""

    def __init__(self, fn: Module) -> None:
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        out = self.fn(x)
        if out.shape != x.shape:
            raise ValueError(f"Residual: fn changed the shape from {x.shape} to {out.shape}; "
                             "a residual connection needs fn(x) shaped like x")
        return out + x


class Flatten(Module):
    """(m, d1, d2, ...) → (m, d1·d2·...)."""

    def forward(self, x: Tensor) -> Tensor:
        x = _as_input(x, None, "Flatten")
        if x.ndim < 1:
            raise _shape_error("Flatten", "(m, ...)", x.shape)
        return x.reshape((x.shape[0], int(np.prod(x.shape[1:], dtype=np.int64))))


@graded("05_normalization_regularization", "BatchNorm1d")
class BatchNorm1d(Module):
    """Batch normalization over the batch axis: x (m, num_features).

    Training: μ = mean_rows(x), σ² = mean_rows((x−μ)²) (biased), y = γ·(x−μ)/√(σ²+eps) + β,
    and running ← (1−momentum)·running + momentum·batch for the mean and for the variance
    (unbiased σ²·m/(m−1) unless ``unbiased_running_var=False``).  Eval: y uses the running
    statistics.  γ (``weight``, ones) and β (``bias``, zeros) have shape (num_features,).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 unbiased_running_var: bool = True, dtype: str = "float32") -> None:
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm1d: momentum must be in [0, 1], got {momentum}")
        if not eps > 0:
            raise ValueError(f"BatchNorm1d: eps must be > 0, got {eps}")
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), float(momentum)
        self.unbiased_running_var = bool(unbiased_running_var)
        self.weight = Parameter(np.ones(self.num_features), dtype=dtype)
        self.bias = Parameter(np.zeros(self.num_features), dtype=dtype)
        self.register_buffer("running_mean", tensor(np.zeros(self.num_features), dtype=dtype))
        self.register_buffer("running_var", tensor(np.ones(self.num_features), dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        x = _as_input(x, self.weight, "BatchNorm1d")
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise _shape_error(f"BatchNorm1d(num_features={self.num_features})",
                               f"(m, {self.num_features})", x.shape)
        if not self.training:
            xhat = (x - self.running_mean) / (self.running_var + self.eps) ** 0.5
            return xhat * self.weight + self.bias
        m = x.shape[0]
        if m < 2:
            raise ValueError(f"BatchNorm1d: batch size {m} in training mode; batch statistics need "
                             "at least 2 rows (use a larger batch, or model.eval())")
        mean = x.mean(axis=0)
        centered = x - mean
        var = (centered * centered).mean(axis=0)
        xhat = centered / (var + self.eps) ** 0.5
        with no_grad():
            mom = self.momentum
            batch_var = var * (m / (m - 1)) if self.unbiased_running_var else var
            self.running_mean.data = self.running_mean * (1 - mom) + mean.detach() * mom
            self.running_var.data = self.running_var * (1 - mom) + batch_var.detach() * mom
        return xhat * self.weight + self.bias

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


@graded("05_normalization_regularization", "LayerNorm1d")
class LayerNorm1d(Module):
    """Layer normalization over the last axis: x (..., dim).

    μ, σ² (biased) per row over the last axis; y = γ·(x−μ)/√(σ²+eps) + β with γ, β of shape
    (dim,).  Same in training and eval.
    """

    def __init__(self, dim: int, eps: float = 1e-5, dtype: str = "float32") -> None:
        if not eps > 0:
            raise ValueError(f"LayerNorm1d: eps must be > 0, got {eps}")
        self.dim, self.eps = int(dim), float(eps)
        self.weight = Parameter(np.ones(self.dim), dtype=dtype)
        self.bias = Parameter(np.zeros(self.dim), dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        x = _as_input(x, self.weight, "LayerNorm1d")
        if x.ndim < 1 or x.shape[-1] != self.dim:
            raise _shape_error(f"LayerNorm1d(dim={self.dim})", f"(m, {self.dim})", x.shape)
        mean = x.mean(axis=-1, keepdims=True)
        centered = x - mean
        var = (centered * centered).mean(axis=-1, keepdims=True)
        return centered / (var + self.eps) ** 0.5 * self.weight + self.bias

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"


@graded("05_normalization_regularization", "Dropout")
class Dropout(Module):
    """Inverted dropout: in training, y = x·mask/(1−p) with mask = ``generator.random(x.shape) >= p``.

    p is the probability to **drop** a unit (PyTorch's convention), so E[y] = x.  In eval mode
    (or p = 0) y = x.  ``generator=None``: a fresh unseeded generator, created once.
    """

    def __init__(self, p: float = 0.5, generator: np.random.Generator | None = None) -> None:
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p (the drop probability) must be in [0, 1), got {p!r}")
        self.p = float(p)
        self.generator = np.random.default_rng() if generator is None else generator

    def forward(self, x: Tensor) -> Tensor:
        x = _as_input(x, None, "Dropout")
        if not self.training or self.p == 0.0:
            return x
        mask = self.generator.random(x.shape) >= self.p
        return (x * tensor(mask, dtype=x.dtype)) / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


# -- losses ------------------------------------------------------------------------------------

class CrossEntropyLoss(Module):
    """Mean softmax cross-entropy: logits (m, k), int labels (m,) in [0, k).

    ℓ = mean_i [logsumexp(z_i) − z_i,y_i], computed stably by the fused
    :func:`dlkit.ops.softmax_cross_entropy` (gradient (softmax − onehot)/m).
    """

    def forward(self, logits: Tensor, labels: Tensor | np.ndarray) -> Tensor:
        from .ops import softmax_cross_entropy

        logits = _as_input(logits, None, "CrossEntropyLoss")
        if isinstance(labels, Tensor):
            if labels.dtype.kind not in "iu":
                raise TypeError(f"CrossEntropyLoss: labels must be integer class indices, got {labels.dtype}")
        else:
            labels_np = np.asarray(labels)
            if labels_np.dtype.kind not in "iu":
                raise TypeError(f"CrossEntropyLoss: labels must be integer class indices, got {labels_np.dtype}")
            labels = tensor(labels_np.astype(np.int64), dtype="int64")
        if logits.ndim != 2 or tuple(labels.shape) != (logits.shape[0],):
            raise ValueError(f"CrossEntropyLoss: expected logits (m, k) and labels (m,), got "
                             f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)}")
        return softmax_cross_entropy(logits, labels)


class MSELoss(Module):
    """Mean squared error over all elements: mean((prediction − target)²); shapes must match."""

    def forward(self, prediction: Tensor, target: Tensor | np.ndarray) -> Tensor:
        prediction = _as_input(prediction, None, "MSELoss")
        target = _as_input(target, prediction, "MSELoss")
        if tuple(prediction.shape) != tuple(target.shape):
            raise ValueError(f"MSELoss: prediction shape {tuple(prediction.shape)} != target shape "
                             f"{tuple(target.shape)} (no silent broadcasting)")
        diff = prediction - target
        return (diff * diff).mean()


# -- the MLP builder ----------------------------------------------------------------------------

_ACTIVATIONS: dict[str, type[Module]] = {
    "relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, "identity": Identity, "linear": Identity,
}
_INITIALIZERS = ("xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal",
                 "lecun_uniform", "lecun_normal", "zeros")


def _initializer(spec: str | Callable | None, nonlinearity: str) -> Callable | None:
    """Resolve MLP's ``initializer`` for a layer followed by ``nonlinearity``."""
    if spec is None or callable(spec):
        return spec
    if spec not in _INITIALIZERS:
        raise ValueError(f"MLP: unknown initializer {spec!r}; choose one of {', '.join(_INITIALIZERS)} "
                         "or pass a callable(fan_in, fan_out, generator=...)")
    if spec == "zeros":
        return lambda fan_in, fan_out, generator=None: np.zeros((fan_in, fan_out))
    fn = getattr(init, spec)
    if spec.startswith("kaiming"):
        gain_name = nonlinearity if nonlinearity in ("relu", "tanh", "sigmoid") else "linear"
        return partial(fn, nonlinearity=gain_name)
    return fn


class MLP(Sequential):
    """A fully connected network with layer widths ``[n_0, n_1, ..., n_L]``.

    Each hidden block is Linear → (BatchNorm1d | LayerNorm1d) → activation → (Dropout); the
    last layer is Linear only (logits).  ``initializer``: None (PyTorch's default, see
    :class:`Linear`), a name from :mod:`dlkit.init` ("xavier_uniform", "kaiming_normal",
    "lecun_normal", "zeros", ...; Kaiming uses the block's activation for its gain and
    "linear" for the last layer; biases start at zero), or a callable
    ``f(fan_in, fan_out, generator=...)``.  All randomness comes from ``generator``.
    """

    def __init__(self, widths: Sequence[int], activation: str = "relu",
                 initializer: str | Callable | None = None, normalization: str | None = None,
                 dropout: float = 0.0, generator: np.random.Generator | None = None,
                 bias: bool = True, dtype: str = "float32") -> None:
        widths = [int(w) for w in widths]
        if len(widths) < 2 or min(widths) < 1:
            raise ValueError(f"MLP: widths must list at least input and output sizes (all >= 1), got {widths}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"MLP: unknown activation {activation!r}; choose one of {', '.join(_ACTIVATIONS)}")
        if normalization not in (None, "batch", "layer"):
            raise ValueError(f"MLP: normalization must be None, 'batch' or 'layer', got {normalization!r}")
        rng = np.random.default_rng() if generator is None else generator
        self.widths, self.activation = widths, activation
        layers: list[Module] = []
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
            last = i == len(widths) - 2
            init_fn = _initializer(initializer, "linear" if last else activation)
            layers.append(Linear(n_in, n_out, bias=bias, generator=rng, dtype=dtype, initializer=init_fn))
            if last:
                break
            if normalization == "batch":
                layers.append(BatchNorm1d(n_out, dtype=dtype))
            elif normalization == "layer":
                layers.append(LayerNorm1d(n_out, dtype=dtype))
            layers.append(_ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(Dropout(dropout, generator=rng))
        super().__init__(*layers)
