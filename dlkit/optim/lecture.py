"""The lectures' own optimizers: momentum and Nesterov in EMA form, and Newton's method.

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
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from .._graded import graded
from ..autograd import Tensor, grad as autograd_grad, no_grad
from .base import Optimizer, check_lr, check_nonneg, check_unit, zeros_like

__all__ = ["Momentum", "Nesterov", "Newton"]


@graded("03_optimization", "Momentum")
class Momentum(Optimizer):
    """The lectures' momentum (an exponential moving average of gradients).

    t ← t + 1;  u ← βu + (1−β)g with u₀ = 0;  θ ← θ − lr·u, or with ``unbias=True``
    θ ← θ − lr·u/(1−βᵗ).  Equals ``SGD(lr=lr·(1−β), momentum=β)`` when not unbiased.
    State per parameter: ``step`` t (its own updates), ``u``.
    """

    def __init__(self, params: Iterable[Tensor], lr: float, beta: float = 0.9, unbias: bool = False) -> None:
        super().__init__(params, lr=check_lr(lr), beta=check_unit("beta", beta), unbias=bool(unbias))

    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            state = self.state[i]
            if not state:
                state["step"] = 0
                state["u"] = zeros_like(p)
            state["step"] += 1
            u = state["u"] = self.beta * state["u"] + (1 - self.beta) * p.grad
            if self.unbias:
                u = u / (1 - self.beta ** state["step"])
            p.data = p - self.lr * u


@graded("03_optimization", "Nesterov")
class Nesterov(Optimizer):
    """The lectures' Nesterov momentum in EMA form, rewritten to use the current gradient.

    u ← βu + (1−β)g (u₀ = 0);  θ ← θ − lr·(βu + (1−β)g) with the new u (the look-ahead
    rewrite).  Equals ``SGD(lr=lr·(1−β), momentum=β, nesterov=True)``.  State: ``u``.
    """

    def __init__(self, params: Iterable[Tensor], lr: float, beta: float = 0.9) -> None:
        super().__init__(params, lr=check_lr(lr), beta=check_unit("beta", beta))

    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad
            state = self.state[i]
            if "u" not in state:
                state["u"] = zeros_like(p)
            u = state["u"] = self.beta * state["u"] + (1 - self.beta) * g
            p.data = p - self.lr * (self.beta * u + (1 - self.beta) * g)


class Newton(Optimizer):
    """Damped Newton's method: θ ← θ − lr·(H + damping·I)⁻¹ ∇f(θ), all parameters flattened.

    ``step(closure)``: ``closure()`` recomputes and returns the (scalar Tensor) loss; the
    gradient and the Hessian come from dlkit's autodiff (one ``grad`` per Hessian row), and the
    linear system is solved on the host in float64.  For small problems only (n parameters:
    n backward passes and an n×n solve).  On a quadratic, lr = 1 reaches the minimizer in one step.
    """

    step_records_graph = True  # the Hessian comes from differentiating the gradient

    def __init__(self, params: Iterable[Tensor], lr: float = 1.0, damping: float = 0.0) -> None:
        super().__init__(params, lr=check_lr(lr), damping=check_nonneg("damping", damping))

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
                p.data = p.numpy() - self.lr * update
        return loss
