"""Optimizers: PyTorch's update rules, the lectures' forms, Newton, schedules, clipping.

Every optimizer keeps ``self.params`` (a list of Tensors) and ``self.state``, a list of
per-parameter dicts **indexed like ``self.params``** (``self.state[i]`` belongs to
``self.params[i]``; indices, unlike Tensors, serialize).  Parameters and state stay backend
arrays: ``step()`` never copies them to the host, so the same code runs on the GPU.

PyTorch-identical (same names, arguments and numerics): :class:`SGD`, :class:`Adam`,
:class:`AdamW`, :class:`RMSprop`, :class:`Adagrad`, :class:`StepLR`,
:class:`CosineAnnealingLR`, :func:`clip_grad_norm`.  The lectures' own forms:
:class:`Momentum`, :class:`Nesterov`, ``Adam(bias_correction=False)``, :class:`Newton`.

Conventions, each an explicit keyword
-------------------------------------
*Momentum, three ways of writing it* (g = gradient, α = lr, constant α):

====================  ==================================  ====================================
form                  update                              same trajectory as
====================  ==================================  ====================================
PyTorch ``SGD``       b ← μb + (1−d)g (b₁ = g); θ ← θ−αb    —
velocity (CS231n)     v ← μv − αg;  θ ← θ + v             ``SGD(lr=α, momentum=μ)``; v = −αb
lectures' EMA         u ← βu + (1−β)g (u₀ = 0); θ ← θ−αu   ``SGD(lr=α(1−β), momentum=β)``; u = (1−β)b
====================  ==================================  ====================================

``Momentum(lr=α, beta=β)`` equals ``SGD(lr=α·(1−β), momentum=β)`` step for step, and
``Nesterov(lr=α, beta=β)`` equals ``SGD(lr=α·(1−β), momentum=β, nesterov=True)``.
(PyTorch's dampening d is not the EMA: its first step sets b₁ = g undamped.)

*Weight decay*: ``weight_decay`` on SGD / Adam / RMSprop / Adagrad is coupled L2 (g ← g + λθ,
so Adam rescales it); :class:`AdamW` decays decoupled (θ ← θ(1 − αλ) before the Adam step).
``exclude_1d=True`` exempts parameters with ndim ≤ 1 (biases, norm weights) from decay.

*eps*: Adam / RMSprop add eps outside the square root, ``m/(√v + eps)`` (PyTorch);
``eps_inside_sqrt=True`` uses ``m/√(v + eps)`` instead.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ._graded import graded
from .autograd import Tensor, grad as autograd_grad, no_grad

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Momentum", "Nesterov", "Newton",
    "LRScheduler", "StepLR", "CosineAnnealingLR", "clip_grad_norm",
]


# -- access to the backend arrays behind a Tensor -----------------------------------------------

def _arr(t: Tensor) -> Any:
    """The backend array holding a Tensor's values (shared, not copied)."""
    return t._array


def _be(t: Tensor):
    """The backend a Tensor lives on."""
    return t.backend


# -- argument checks ----------------------------------------------------------------------------

def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _check_lr(lr: Any) -> float:
    lr = _number("lr", lr)
    if lr <= 0:
        raise ValueError(f"lr must be a positive finite number, got {lr}")
    return lr


def _check_nonneg(name: str, value: Any) -> float:
    value = _number(name, value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _check_unit(name: str, value: Any) -> float:
    """A coefficient in [0, 1): betas, EMA factors."""
    value = _number(name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return value


# -- base class ------------------------------------------------------------------------------------

class Optimizer:
    """Base class: holds the parameters and their per-parameter state.

    Subclasses implement ``step()``: for every ``i, p in enumerate(self.params)`` with a
    gradient ``p.grad``, update ``p`` in place and keep whatever they need in
    ``self.state[i]`` (a dict).  Hyperparameters passed to ``__init__`` as keywords become
    attributes (``self.lr``, ...) and are saved by :meth:`state_dict`.
    """

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

    def _decay(self, i: int) -> float:
        """The weight decay for parameter i (0 for ndim ≤ 1 when ``exclude_1d``)."""
        wd = getattr(self, "weight_decay", 0.0)
        if wd and getattr(self, "exclude_1d", False) and len(self.params[i].shape) <= 1:
            return 0.0
        return wd

    def state_dict(self) -> dict[str, Any]:
        """``{"state": {i: {name: ndarray | number}}, "hyperparameters": {...}}`` (host copies)."""
        state = {}
        for i, entry in enumerate(self.state):
            if entry:
                state[i] = {k: v if isinstance(v, (bool, int, float)) else np.array(_be(self.params[i]).to_numpy(v))
                            for k, v in entry.items()}
        return {"state": state, "hyperparameters": {k: getattr(self, k) for k in self._hyper}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (for the same parameter list)."""
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
                if isinstance(v, np.ndarray) and v.ndim > 0:
                    if tuple(v.shape) != tuple(p.shape):
                        raise ValueError(f"{type(self).__name__}.load_state_dict: state {k!r} of parameter {i} "
                                         f"has shape {v.shape}, expected {tuple(p.shape)}")
                    v = _be(p).array(v, p.dtype)
                elif isinstance(v, np.ndarray):
                    v = v.item()
                self.state[i][k] = v

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._hyper)
        return f"{type(self).__name__}({len(self.params)} parameters, {hyper})"


def _with_grad(opt: Optimizer):
    """``(i, param, param_array, grad_array, backend)`` for every parameter with a gradient."""
    for i, p in enumerate(opt.params):
        if p.grad is not None:
            yield i, p, _arr(p), _arr(p.grad), _be(p)


# -- PyTorch's optimizers ----------------------------------------------------------------------

class SGD(Optimizer):
    """PyTorch ``torch.optim.SGD``.

    g ← g + λθ (weight_decay λ);  with momentum μ: b ← g on the first step, then
    b ← μb + (1−dampening)g;  d = g + μb (nesterov) or b;  θ ← θ − lr·d.
    Runs as the backend's fused ``sgd_step``.
    """

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, exclude_1d: bool = False) -> None:
        lr = _check_lr(lr)
        momentum = _check_nonneg("momentum", momentum)
        dampening = _number("dampening", dampening)
        weight_decay = _check_nonneg("weight_decay", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov=True requires momentum > 0 and dampening = 0")
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay, nesterov=bool(nesterov), exclude_1d=bool(exclude_1d))

    def step(self) -> None:
        for i, p, theta, g, b in _with_grad(self):
            state = self.state[i]
            first = "momentum_buffer" not in state
            if self.momentum != 0 and first:
                state["momentum_buffer"] = b.zeros(tuple(p.shape), theta.dtype)
            b.sgd_step(theta, g, state.get("momentum_buffer"), lr=self.lr, momentum=self.momentum,
                       dampening=self.dampening, weight_decay=self._decay(i), nesterov=self.nesterov,
                       first_step=first)


class Adam(Optimizer):
    """Adam (PyTorch ``torch.optim.Adam``; ``bias_correction=False`` is the lectures' plain form).

    g ← g + λθ;  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  t ← t + 1;
    m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ) (or m, v without bias correction);
    θ ← θ − lr·m̂/(√v̂ + eps)   (``eps_inside_sqrt``: θ ← θ − lr·m̂/√(v̂ + eps)).
    State per parameter: ``step`` (int), ``exp_avg`` m, ``exp_avg_sq`` v.
    """

    decoupled = False  # AdamW sets True: θ ← θ(1 − lr·λ), g unchanged

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, betas: Sequence[float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, bias_correction: bool = True,
                 eps_inside_sqrt: bool = False, exclude_1d: bool = False) -> None:
        lr = _check_lr(lr)
        if len(tuple(betas)) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        betas = (_check_unit("betas[0]", betas[0]), _check_unit("betas[1]", betas[1]))
        super().__init__(params, lr=lr, betas=betas, eps=_check_nonneg("eps", eps),
                         weight_decay=_check_nonneg("weight_decay", weight_decay),
                         bias_correction=bool(bias_correction), eps_inside_sqrt=bool(eps_inside_sqrt),
                         exclude_1d=bool(exclude_1d))

    @graded("03_optimization")
    def step(self) -> None:
        beta1, beta2 = self.betas
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            theta, g, b = p._array, p.grad._array, p.backend
            state = self.state[i]
            if not state:
                state["step"] = 0
                state["exp_avg"] = b.zeros(tuple(p.shape), theta.dtype)
                state["exp_avg_sq"] = b.zeros(tuple(p.shape), theta.dtype)
            state["step"] += 1
            t, m, v, wd = state["step"], state["exp_avg"], state["exp_avg_sq"], self._decay(i)
            if not self.eps_inside_sqrt:  # PyTorch's form, fused on the device
                b.adam_step(theta, g, m, v, lr=self.lr, beta1=beta1, beta2=beta2, eps=self.eps,
                            weight_decay=wd, step=t, bias_correction=self.bias_correction,
                            decoupled=self.decoupled)
                continue
            if wd and self.decoupled:
                b.assign(theta, b.mul(theta, 1.0 - self.lr * wd))
            elif wd:
                g = b.add(g, b.mul(theta, wd))
            b.assign(m, b.add(b.mul(m, beta1), b.mul(g, 1.0 - beta1)))
            b.assign(v, b.add(b.mul(v, beta2), b.mul(b.mul(g, g), 1.0 - beta2)))
            c1, c2 = (1.0 - beta1**t, 1.0 - beta2**t) if self.bias_correction else (1.0, 1.0)
            denom = b.sqrt(b.add(b.div(v, c2), self.eps))
            b.assign(theta, b.sub(theta, b.mul(b.div(m, denom), self.lr / c1)))


class AdamW(Adam):
    """PyTorch ``torch.optim.AdamW``: Adam with decoupled weight decay (default λ = 1e-2).

    θ ← θ·(1 − lr·λ), then the Adam step with the raw gradient (no λθ in m or v).
    """

    decoupled = True

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, betas: Sequence[float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, bias_correction: bool = True,
                 eps_inside_sqrt: bool = False, exclude_1d: bool = False) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         bias_correction=bias_correction, eps_inside_sqrt=eps_inside_sqrt,
                         exclude_1d=exclude_1d)


class RMSprop(Optimizer):
    """PyTorch ``torch.optim.RMSprop``.

    g ← g + λθ;  s ← αs + (1−α)g²;  centered: ḡ ← αḡ + (1−α)g, s̃ = s − ḡ², else s̃ = s;
    d = √s̃ + eps (``eps_inside_sqrt``: √(s̃ + eps));
    momentum μ > 0: b ← μb + g/d, θ ← θ − lr·b;  else θ ← θ − lr·g/d.
    """

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 eps_inside_sqrt: bool = False, exclude_1d: bool = False) -> None:
        super().__init__(params, lr=_check_lr(lr), alpha=_check_nonneg("alpha", alpha),
                         eps=_check_nonneg("eps", eps), weight_decay=_check_nonneg("weight_decay", weight_decay),
                         momentum=_check_nonneg("momentum", momentum), centered=bool(centered),
                         eps_inside_sqrt=bool(eps_inside_sqrt), exclude_1d=bool(exclude_1d))

    def step(self) -> None:
        a = self.alpha
        for i, p, theta, g, b in _with_grad(self):
            state = self.state[i]
            if not state:
                state["step"] = 0
                state["square_avg"] = b.zeros(tuple(p.shape), theta.dtype)
                if self.momentum > 0:
                    state["momentum_buffer"] = b.zeros(tuple(p.shape), theta.dtype)
                if self.centered:
                    state["grad_avg"] = b.zeros(tuple(p.shape), theta.dtype)
            state["step"] += 1
            wd = self._decay(i)
            if wd:
                g = b.add(g, b.mul(theta, wd))
            s = state["square_avg"]
            b.assign(s, b.add(b.mul(s, a), b.mul(b.mul(g, g), 1.0 - a)))
            s_tilde = s
            if self.centered:
                gbar = state["grad_avg"]
                b.assign(gbar, b.add(gbar, b.mul(b.sub(g, gbar), 1.0 - a)))  # lerp, as PyTorch
                s_tilde = b.sub(s, b.mul(gbar, gbar))
            if self.eps_inside_sqrt:
                denom = b.sqrt(b.add(s_tilde, self.eps))
            else:
                denom = b.add(b.sqrt(s_tilde), self.eps)
            if self.momentum > 0:
                buf = state["momentum_buffer"]
                b.assign(buf, b.add(b.mul(buf, self.momentum), b.div(g, denom)))
                b.assign(theta, b.sub(theta, b.mul(buf, self.lr)))
            else:
                b.assign(theta, b.sub(theta, b.mul(b.div(g, denom), self.lr)))


class Adagrad(Optimizer):
    """PyTorch ``torch.optim.Adagrad`` (the lectures' per-coordinate preconditioning).

    t ← t + 1;  g ← g + λθ;  lr_t = lr/(1 + (t−1)·lr_decay);  s ← s + g² (s₀ =
    initial_accumulator_value);  θ ← θ − lr_t·g/(√s + eps).
    """

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0, eps: float = 1e-10,
                 exclude_1d: bool = False) -> None:
        super().__init__(params, lr=_check_lr(lr), lr_decay=_check_nonneg("lr_decay", lr_decay),
                         weight_decay=_check_nonneg("weight_decay", weight_decay),
                         initial_accumulator_value=_check_nonneg("initial_accumulator_value",
                                                                 initial_accumulator_value),
                         eps=_check_nonneg("eps", eps), exclude_1d=bool(exclude_1d))
        for i, p in enumerate(self.params):  # PyTorch creates the accumulator eagerly
            self.state[i] = {"step": 0, "sum": _be(p).full(tuple(p.shape), self.initial_accumulator_value,
                                                           _arr(p).dtype)}

    def step(self) -> None:
        for i, p, theta, g, b in _with_grad(self):
            state = self.state[i]
            state["step"] += 1
            wd = self._decay(i)
            if wd:
                g = b.add(g, b.mul(theta, wd))
            clr = self.lr / (1.0 + (state["step"] - 1) * self.lr_decay)
            s = state["sum"]
            b.assign(s, b.add(s, b.mul(g, g)))
            b.assign(theta, b.sub(theta, b.mul(b.div(g, b.add(b.sqrt(s), self.eps)), clr)))


# -- the lectures' forms ------------------------------------------------------------------------

class Momentum(Optimizer):
    """The lectures' momentum (an exponential moving average of gradients).

    u ← βu + (1−β)g with u₀ = 0, t ← t + 1;  θ ← θ − lr·u, or with ``unbias=True``
    θ ← θ − lr·u/(1−βᵗ).  Equals ``SGD(lr=lr·(1−β), momentum=β)`` when not unbiased.
    State per parameter: ``u``, ``step``.
    """

    def __init__(self, params: Iterable[Tensor], lr: float, beta: float = 0.9, unbias: bool = False) -> None:
        super().__init__(params, lr=_check_lr(lr), beta=_check_unit("beta", beta), unbias=bool(unbias))

    @graded("03_optimization")
    def step(self) -> None:
        beta = self.beta
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            theta, g, b = p._array, p.grad._array, p.backend
            state = self.state[i]
            if not state:
                state["step"] = 0
                state["u"] = b.zeros(tuple(p.shape), theta.dtype)
            state["step"] += 1
            u = state["u"]
            b.assign(u, b.add(b.mul(u, beta), b.mul(g, 1.0 - beta)))
            scale = self.lr / (1.0 - beta ** state["step"]) if self.unbias else self.lr
            b.assign(theta, b.sub(theta, b.mul(u, scale)))


class Nesterov(Optimizer):
    """The lectures' Nesterov momentum in EMA form, rewritten to use the current gradient.

    u ← βu + (1−β)g (u₀ = 0);  θ ← θ − lr·(βu + (1−β)g) with the new u (the "look-ahead"
    rewrite).  Equals ``SGD(lr=lr·(1−β), momentum=β, nesterov=True)``.  State: ``u``.
    """

    def __init__(self, params: Iterable[Tensor], lr: float, beta: float = 0.9) -> None:
        super().__init__(params, lr=_check_lr(lr), beta=_check_unit("beta", beta))

    @graded("03_optimization")
    def step(self) -> None:
        beta = self.beta
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            theta, g, b = p._array, p.grad._array, p.backend
            state = self.state[i]
            if not state:
                state["u"] = b.zeros(tuple(p.shape), theta.dtype)
            u = state["u"]
            b.assign(u, b.add(b.mul(u, beta), b.mul(g, 1.0 - beta)))
            direction = b.add(b.mul(u, beta), b.mul(g, 1.0 - beta))
            b.assign(theta, b.sub(theta, b.mul(direction, self.lr)))


class Newton(Optimizer):
    """Damped Newton's method: θ ← θ − lr·(H + damping·I)⁻¹ ∇f(θ), all parameters flattened.

    ``step(closure)``: ``closure()`` recomputes and returns the (scalar Tensor) loss; the
    gradient and the Hessian come from dlkit's autodiff (one ``grad`` per Hessian row), and the
    linear system is solved on the host in float64.  For small problems only (n parameters:
    n backward passes and an n×n solve).  On a quadratic, lr = 1 reaches the minimizer in one step.
    """

    def __init__(self, params: Iterable[Tensor], lr: float = 1.0, damping: float = 0.0) -> None:
        super().__init__(params, lr=_check_lr(lr), damping=_check_nonneg("damping", damping))

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor:  # type: ignore[override]
        if closure is None:
            raise ValueError("Newton.step needs a closure that recomputes and returns the loss")
        loss = closure()
        if tuple(loss.shape) not in ((), (1,)):
            raise ValueError(f"Newton.step: the closure must return a scalar loss, got shape {tuple(loss.shape)}")
        sizes = [int(np.prod(p.shape, dtype=np.int64)) for p in self.params]
        grads = autograd_grad(loss, self.params, create_graph=True, allow_unused=True)
        flat = [(gi if gi is not None else p * 0.0).reshape((size,))  # unused parameter: zero gradient
                for gi, p, size in zip(grads, self.params, sizes)]
        n = sum(sizes)
        g_host = np.concatenate([fi.numpy().astype(np.float64).ravel() for fi in flat])
        H = np.zeros((n, n))
        row = 0
        for fi, size in zip(flat, sizes):
            for k in range(size):
                second = autograd_grad(fi[k], self.params, allow_unused=True)
                H[row] = np.concatenate([
                    (s.numpy() if s is not None else np.zeros(p.shape)).astype(np.float64).ravel()
                    for s, p in zip(second, self.params)])
                row += 1
        H = 0.5 * (H + H.T)
        try:
            delta = np.linalg.solve(H + self.damping * np.eye(n), g_host)
        except np.linalg.LinAlgError as exc:
            raise np.linalg.LinAlgError(
                f"Newton.step: the Hessian is singular ({exc}); use damping > 0") from exc
        offset = 0
        with no_grad():
            for p, size in zip(self.params, sizes):
                update = delta[offset:offset + size].reshape(p.shape)
                offset += size
                b = _be(p)
                b.assign(_arr(p), b.sub(_arr(p), b.array(self.lr * update, _arr(p).dtype)))
        return loss


# -- learning-rate schedules --------------------------------------------------------------------

class LRScheduler:
    """Base schedule: call ``scheduler.step()`` once per epoch, after ``optimizer.step()``.

    ``last_epoch`` counts the calls; the optimizer's ``lr`` is set on every call.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"{type(self).__name__}: the optimizer has no 'lr' attribute to schedule")
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr)
        self.last_epoch = 0

    def get_lr(self) -> float:
        raise NotImplementedError

    def step(self) -> None:
        self.last_epoch += 1
        self.optimizer.lr = self.get_lr()

    def get_last_lr(self) -> float:
        return self.optimizer.lr

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "optimizer"}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        vars(self).update(state)


class StepLR(LRScheduler):
    """PyTorch ``StepLR``: multiply lr by ``gamma`` every ``step_size`` epochs
    (lr = base·γ^⌊epoch/step_size⌋, computed recursively as PyTorch does)."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        if isinstance(step_size, bool) or not isinstance(step_size, (int, np.integer)) or step_size < 1:
            raise ValueError(f"StepLR: step_size must be a positive integer, got {step_size!r}")
        super().__init__(optimizer)
        self.step_size, self.gamma = int(step_size), _check_nonneg("gamma", gamma)

    def get_lr(self) -> float:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self.optimizer.lr
        return self.optimizer.lr * self.gamma


class CosineAnnealingLR(LRScheduler):
    """PyTorch ``CosineAnnealingLR``: lr_t = η_min + (base − η_min)(1 + cos(πt/T_max))/2.

    Uses PyTorch's recursive form (so values match it to the last bit); after T_max the
    schedule rises again, as PyTorch's does.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        if isinstance(T_max, bool) or not isinstance(T_max, (int, np.integer)) or T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be a positive integer, got {T_max!r}")
        super().__init__(optimizer)
        self.T_max, self.eta_min = int(T_max), _check_nonneg("eta_min", eta_min)

    def get_lr(self) -> float:
        t, T, lr, eta = self.last_epoch, self.T_max, self.optimizer.lr, self.eta_min
        if t == 0:
            return lr
        if (t - 1 - T) % (2 * T) == 0:
            return lr + (self.base_lr - eta) * (1 - math.cos(math.pi / T)) / 2
        return (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T)) * (lr - eta) + eta


# -- gradient clipping ----------------------------------------------------------------------------

def clip_grad_norm(params: Iterable[Tensor], max_norm: float) -> float:
    """Scale all gradients by min(1, max_norm/(‖g‖ + 1e-6)) and return ‖g‖ (as PyTorch).

    ‖g‖ is the 2-norm of all gradients concatenated.  Parameters without a gradient are skipped.
    """
    max_norm = _check_nonneg("max_norm", max_norm)
    params = [p for p in params if p.grad is not None]
    if not params:
        return 0.0
    total_sq = 0.0
    for p in params:
        g, b = _arr(p.grad), _be(p)
        total_sq += float(b.to_numpy(b.sum(b.mul(g, g))))
    total = math.sqrt(total_sq)
    coef = min(1.0, max_norm / (total + 1e-6))
    if coef < 1.0:
        for p in params:
            g, b = _arr(p.grad), _be(p)
            b.assign(g, b.mul(g, coef))
    return total
