"""PyTorch's optimizers: same names, arguments, state keys and numerics as ``torch.optim``.

Each ``step()`` is written with plain Tensor arithmetic, one parameter at a time (PyTorch's
``_single_tensor_*`` form).  ``SGD`` and ``Adam`` / ``AdamW`` also have a fast path, chosen by
setting ``opt.fused = True`` after construction (PyTorch's ``fused=True``): the whole update of
one parameter then runs as one backend kernel (``backend.sgd_step`` / ``adam_step``; Adam hands
all parameters to ``backend.adam_step_many`` in one call) with the same state; on the numpy backend
that kernel is a C loop doing the readable step's operations (its results bit for bit) where a C
compiler is, numpy passes otherwise; ``tests/test_optim.py`` and ``tests/test_native_optim.py``
prove the paths equal.  (An attribute, not a constructor
argument: the constructors are the students' contract, and the student kit has no fused path.)

Conventions: ``weight_decay`` is coupled L2 (g ← g + λθ, so Adam rescales it) everywhere except
:class:`AdamW`, which decays decoupled (θ ← θ(1 − lr·λ) before the Adam step).  ``eps`` is added
outside the square root, ``m̂/(√v̂ + eps)``.  A parameter whose ``grad`` is None is skipped: no
decay, no state change, its step counter does not advance.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from .._graded import graded
from ..autograd import Tensor
from .base import Optimizer, check_any, check_lr, check_nonneg, check_unit, clone, full_like, zeros_like

__all__ = ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"]


@graded("03_optimization", "SGD")
class SGD(Optimizer):
    """PyTorch ``torch.optim.SGD``.

    g ← g + λθ (``weight_decay`` λ);  with ``momentum`` μ ≠ 0: b ← g on a parameter's first
    step (undamped), then b ← μb + (1 − dampening)·g;  d = g + μb (``nesterov``) or d = b;
    θ ← θ − lr·d.  State per parameter: ``momentum_buffer`` b (only when μ ≠ 0).
    """

    fused = False  # True: one backend kernel per parameter (dlkit.optim.fused)

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        lr = check_lr(lr)
        momentum = check_nonneg("momentum", momentum)
        dampening = check_any("dampening", dampening)
        weight_decay = check_nonneg("weight_decay", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov=True requires momentum > 0 and dampening = 0")
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay, nesterov=bool(nesterov))

    def step(self) -> None:
        if self.fused:
            from .fused import sgd_step
            return sgd_step(self)
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad
            if self.weight_decay != 0:
                g = g + self.weight_decay * p
            if self.momentum != 0:
                state = self.state[i]
                if "momentum_buffer" not in state:
                    buf = clone(g)
                else:
                    buf = self.momentum * state["momentum_buffer"] + (1 - self.dampening) * g
                state["momentum_buffer"] = buf
                g = g + self.momentum * buf if self.nesterov else buf
            p.data = p - self.lr * g


@graded("03_optimization", "Adam")
class Adam(Optimizer):
    """PyTorch ``torch.optim.Adam``; ``bias_correction=False`` is the lectures' plain form.

    g ← g + λθ;  t ← t + 1;  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;
    m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ) (m̂ = m, v̂ = v without bias correction);
    θ ← θ − lr·m̂/(√v̂ + eps).  State per parameter: ``step`` t, ``exp_avg`` m, ``exp_avg_sq`` v.
    """

    decoupled = False  # AdamW: θ ← θ(1 − lr·λ), and the gradient is used as it is
    fused = False      # True: one backend kernel per parameter (dlkit.optim.fused)

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, betas: Sequence[float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, bias_correction: bool = True) -> None:
        lr = check_lr(lr)
        if len(tuple(betas)) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        betas = (check_unit("betas[0]", betas[0]), check_unit("betas[1]", betas[1]))
        super().__init__(params, lr=lr, betas=betas, eps=check_nonneg("eps", eps),
                         weight_decay=check_nonneg("weight_decay", weight_decay),
                         bias_correction=bool(bias_correction))

    def step(self) -> None:
        if self.fused:
            from .fused import adam_step
            return adam_step(self)
        beta1, beta2 = self.betas
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad
            state = self.state[i]
            if not state:
                state["step"] = 0
                state["exp_avg"] = zeros_like(p)
                state["exp_avg_sq"] = zeros_like(p)
            state["step"] += 1
            t = state["step"]
            if self.weight_decay != 0 and self.decoupled:
                p.data = p * (1 - self.lr * self.weight_decay)
            elif self.weight_decay != 0:
                g = g + self.weight_decay * p
            m = state["exp_avg"] = beta1 * state["exp_avg"] + (1 - beta1) * g
            v = state["exp_avg_sq"] = beta2 * state["exp_avg_sq"] + (1 - beta2) * g * g
            if self.bias_correction:
                m, v = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
            p.data = p - self.lr * m / (v ** 0.5 + self.eps)


@graded("03_optimization", "AdamW")
class AdamW(Adam):
    """PyTorch ``torch.optim.AdamW``: Adam with decoupled weight decay (default λ = 1e-2).

    θ ← θ·(1 − lr·λ), then the Adam step with the raw gradient (no λθ in m or v).
    Same state as :class:`Adam`.
    """

    decoupled = True

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, betas: Sequence[float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, bias_correction: bool = True) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         bias_correction=bias_correction)


@graded("03_optimization", "RMSprop")
class RMSprop(Optimizer):
    """PyTorch ``torch.optim.RMSprop``.

    g ← g + λθ;  s ← αs + (1−α)g²;  ``centered``: ḡ ← αḡ + (1−α)g and s̃ = s − ḡ², else s̃ = s;
    d = √s̃ + eps;  ``momentum`` μ > 0: b ← μb + g/d, θ ← θ − lr·b;  else θ ← θ − lr·g/d.
    State per parameter: ``step``, ``square_avg`` s, ``momentum_buffer`` b (μ > 0),
    ``grad_avg`` ḡ (centered).
    """

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False) -> None:
        super().__init__(params, lr=check_lr(lr), alpha=check_nonneg("alpha", alpha),
                         eps=check_nonneg("eps", eps), weight_decay=check_nonneg("weight_decay", weight_decay),
                         momentum=check_nonneg("momentum", momentum), centered=bool(centered))

    def step(self) -> None:
        a = self.alpha
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad
            state = self.state[i]
            if not state:
                state["step"] = 0
                state["square_avg"] = zeros_like(p)
                if self.momentum > 0:
                    state["momentum_buffer"] = zeros_like(p)
                if self.centered:
                    state["grad_avg"] = zeros_like(p)
            state["step"] += 1
            if self.weight_decay != 0:
                g = g + self.weight_decay * p
            s = state["square_avg"] = a * state["square_avg"] + (1 - a) * g * g
            if self.centered:
                g_avg = state["grad_avg"] = a * state["grad_avg"] + (1 - a) * g
                s = s - g_avg * g_avg
            d = s ** 0.5 + self.eps
            if self.momentum > 0:
                buf = state["momentum_buffer"] = self.momentum * state["momentum_buffer"] + g / d
                p.data = p - self.lr * buf
            else:
                p.data = p - self.lr * g / d


@graded("03_optimization", "Adagrad")
class Adagrad(Optimizer):
    """PyTorch ``torch.optim.Adagrad`` (the lectures' per-coordinate preconditioning).

    t ← t + 1;  g ← g + λθ;  lr_t = lr/(1 + (t−1)·lr_decay);  s ← s + g²
    (s₀ = ``initial_accumulator_value``);  θ ← θ − lr_t·g/(√s + eps).
    State per parameter, created in ``__init__`` as PyTorch does: ``step`` t (0), ``sum`` s.
    """

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0, eps: float = 1e-10) -> None:
        super().__init__(params, lr=check_lr(lr), lr_decay=check_nonneg("lr_decay", lr_decay),
                         weight_decay=check_nonneg("weight_decay", weight_decay),
                         initial_accumulator_value=check_nonneg("initial_accumulator_value",
                                                                initial_accumulator_value),
                         eps=check_nonneg("eps", eps))
        for i, p in enumerate(self.params):
            self.state[i] = {"step": 0, "sum": full_like(p, self.initial_accumulator_value)}

    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad
            state = self.state[i]
            state["step"] += 1
            if self.weight_decay != 0:
                g = g + self.weight_decay * p
            lr_t = self.lr / (1 + (state["step"] - 1) * self.lr_decay)
            s = state["sum"] = state["sum"] + g * g
            p.data = p - lr_t * g / (s ** 0.5 + self.eps)
