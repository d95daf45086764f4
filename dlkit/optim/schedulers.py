"""Learning-rate schedules (PyTorch's ``StepLR`` and ``CosineAnnealingLR``, same values)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .base import Optimizer, check_nonneg

__all__ = ["LRScheduler", "StepLR", "CosineAnnealingLR"]


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
        self.step_size, self.gamma = int(step_size), check_nonneg("gamma", gamma)

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
        self.T_max, self.eta_min = int(T_max), check_nonneg("eta_min", eta_min)

    def get_lr(self) -> float:
        t, T, lr, eta = self.last_epoch, self.T_max, self.optimizer.lr, self.eta_min
        if t == 0:
            return lr
        if (t - 1 - T) % (2 * T) == 0:
            return lr + (self.base_lr - eta) * (1 - math.cos(math.pi / T)) / 2
        return (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T)) * (lr - eta) + eta
