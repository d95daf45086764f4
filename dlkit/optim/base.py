"""The optimizer base class: parameters, per-parameter state, hyperparameters, ``state_dict``.

An optimizer keeps ``self.params`` (a list of Tensors) and ``self.state``, a list of per-parameter
dicts **indexed like ``self.params``** (``self.state[i]`` belongs to ``self.params[i]``; indices,
unlike Tensors, serialize).  Keyword hyperparameters passed to ``Optimizer.__init__`` become
attributes (``self.lr``, ``self.betas``, ...) and are saved by :meth:`Optimizer.state_dict`.

A subclass writes ``step()`` with plain Tensor arithmetic; the base class runs every ``step()``
under :class:`dlkit.no_grad` (as PyTorch's optimizers do), so nothing an update computes is
recorded in a graph, and ``p.data = new_values`` updates a parameter in place::

    class SignSGD(Optimizer):
        def __init__(self, params, lr):
            super().__init__(params, lr=lr)

        def step(self):
            for i, p in enumerate(self.params):
                if p.grad is None:          # PyTorch: parameters without a gradient are skipped
                    continue
                sign = 2.0 * (p.grad > 0).astype(p.dtype) - 1.0   # sign(g), 0 counted as -1
                p.data = p - self.lr * sign
"""
from __future__ import annotations

import functools
import math
import types
from typing import Any, Iterable

import numpy as np

from ..autograd import Tensor, no_grad

__all__ = ["Optimizer", "zeros_like", "full_like", "clone"]


# -- small Tensor helpers used by the optimizers (and available to students) -------------------------

def zeros_like(p: Tensor) -> Tensor:
    """A constant Tensor of zeros with ``p``'s shape, dtype and backend (fresh storage)."""
    return Tensor._wrap(p.backend.zeros(tuple(p.shape), p.dtype), p.backend)


def full_like(p: Tensor, value: float) -> Tensor:
    """A constant Tensor filled with ``value``, with ``p``'s shape, dtype and backend."""
    return Tensor._wrap(p.backend.full(tuple(p.shape), float(value), p.dtype), p.backend)


def clone(t: Tensor) -> Tensor:
    """A constant copy of ``t`` (fresh storage: later in-place changes of ``t`` do not reach it)."""
    out = zeros_like(t)
    out.backend.assign(out._array, t._array)
    return out


# -- argument checks (used by the constructors, kept out of the update code) -------------------------

def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def check_lr(lr: Any) -> float:
    lr = _number("lr", lr)
    if lr <= 0:
        raise ValueError(f"lr must be a positive finite number, got {lr}")
    return lr


def check_nonneg(name: str, value: Any) -> float:
    value = _number(name, value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def check_unit(name: str, value: Any) -> float:
    """A coefficient in [0, 1): betas, EMA factors."""
    value = _number(name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return value


def check_any(name: str, value: Any) -> float:
    return _number(name, value)


# -- base class ----------------------------------------------------------------------------------------

class _StepWithoutGrad:
    """``step`` of an Optimizer subclass, run under ``no_grad()``.

    A descriptor holding the subclass's own function as ``__func__`` (like ``staticmethod``), so
    that tools looking for the code a student wrote (``dlkit.student.plug``'s import check,
    ``inspect``) find the student's function, not this wrapper.
    """

    def __init__(self, fn):
        self.__func__ = fn
        functools.update_wrapper(self, fn)

    def __get__(self, obj, objtype=None):
        return self if obj is None else types.MethodType(self, obj)

    def __call__(self, opt, *args, **kwargs):
        with no_grad():
            return self.__func__(opt, *args, **kwargs)


class Optimizer:
    """Base class: holds the parameters and their per-parameter state.

    Subclasses implement ``step()``: for every ``i, p in enumerate(self.params)`` with a
    gradient ``p.grad`` (a parameter whose ``grad`` is None is skipped and its state left
    alone), update ``p`` in place (``p.data = ...``) and keep whatever they need in
    ``self.state[i]`` (a dict, empty at the start).  Hyperparameters passed to ``__init__`` as
    keywords become attributes (``self.lr``, ...) and are saved by :meth:`state_dict`.
    ``step()`` runs under ``dlkit.no_grad()`` (set ``step_records_graph = True`` on a subclass
    whose step differentiates, like :class:`~dlkit.optim.Newton`).
    """

    step_records_graph = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        step = cls.__dict__.get("step")
        if isinstance(step, types.FunctionType) and not cls.step_records_graph:
            cls.step = _StepWithoutGrad(step)

    def __init__(self, params: Iterable[Tensor], **hyperparameters: Any) -> None:
        self.params: list[Tensor] = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        for i, p in enumerate(self.params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: parameter {i} is a {type(p).__name__}, not a dlkit Tensor")
        self.state: list[dict[str, Any]] = [{} for _ in self.params]
        self._hyper = list(hyperparameters)
        for name, value in hyperparameters.items():
            setattr(self, name, value)

    def step(self) -> None:
        """Apply one update to every parameter that has a gradient."""
        raise NotImplementedError(f"{type(self).__name__} does not implement step()")

    def zero_grad(self) -> None:
        """Forget the gradients (``p.grad = None``, like PyTorch's default)."""
        for p in self.params:
            p.grad = None

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """PyTorch's view of the hyperparameters: one group, ``[{"params": [...], "lr": ..., ...}]``.

        A snapshot for reading (to change a hyperparameter, set the attribute, e.g. ``opt.lr``).
        """
        return [{"params": list(self.params), **{k: getattr(self, k) for k in self._hyper}}]

    def state_dict(self) -> dict[str, Any]:
        """``{"state": {i: {name: ndarray | number}}, "hyperparameters": {...}}`` (host copies)."""
        state = {}
        for i, entry in enumerate(self.state):
            if entry:
                state[i] = {k: _host(v) for k, v in entry.items()}
        return {"state": state, "hyperparameters": {k: getattr(self, k) for k in self._hyper}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (for the same parameter list).

        Arrays come back as Tensors on each parameter's backend and dtype (a 0-d float array too,
        for a 0-d parameter); numbers as numbers.
        """
        unknown = set(state_dict) - {"state", "hyperparameters"}
        if unknown:
            raise ValueError(f"{type(self).__name__}.load_state_dict: unexpected keys {sorted(unknown)}")
        for name, value in state_dict.get("hyperparameters", {}).items():
            if name not in self._hyper:
                raise ValueError(f"{type(self).__name__}.load_state_dict: unknown hyperparameter {name!r}")
            setattr(self, name, value)
        self.state = [{} for _ in self.params]
        for i, entry in state_dict.get("state", {}).items():
            i = int(i)
            if not 0 <= i < len(self.params):
                raise ValueError(f"{type(self).__name__}.load_state_dict: state for parameter {i}, "
                                 f"but the optimizer has {len(self.params)}")
            p = self.params[i]
            for k, v in entry.items():
                # state_dict saves a Tensor as an array and a number as a number: a 0-d float array
                # is the state Tensor of a 0-d parameter (its moments), not a number
                if isinstance(v, np.ndarray) and (v.ndim > 0 or (p.ndim == 0 and v.dtype.kind == "f")):
                    if tuple(v.shape) != tuple(p.shape):
                        raise ValueError(f"{type(self).__name__}.load_state_dict: state {k!r} of parameter {i} "
                                         f"has shape {v.shape}, expected {tuple(p.shape)}")
                    v = Tensor._wrap(p.backend.array(v, p.dtype), p.backend)
                elif isinstance(v, np.ndarray):
                    v = v.item()
                self.state[i][k] = v

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._hyper)
        return f"{type(self).__name__}({len(self.params)} parameters, {hyper})"


def _host(v: Any) -> Any:
    """A host copy of one state value (Tensor or array → ndarray; numbers stay numbers)."""
    if isinstance(v, Tensor):
        return v.numpy()
    if isinstance(v, np.ndarray):
        return v.copy()
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    return v
