"""Gradient clipping (PyTorch's ``clip_grad_norm_``, without the underscore)."""
from __future__ import annotations

import math
from typing import Iterable

from ..autograd import Tensor, no_grad
from .base import check_nonneg

__all__ = ["clip_grad_norm"]


def clip_grad_norm(params: Iterable[Tensor], max_norm: float) -> float:
    """Scale all gradients by min(1, max_norm/(‖g‖ + 1e-6)) and return ‖g‖ (as PyTorch).

    ‖g‖ is the 2-norm of all gradients concatenated.  Parameters without a gradient are skipped.
    """
    max_norm = check_nonneg("max_norm", max_norm)
    params = [p for p in params if p.grad is not None]
    if not params:
        return 0.0
    with no_grad():
        total = math.sqrt(sum(float((p.grad * p.grad).sum().item()) for p in params))
        coef = min(1.0, max_norm / (total + 1e-6))
        if coef < 1.0:
            for p in params:
                p.grad.data = p.grad * coef
    return total
