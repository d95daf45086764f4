"""Optimizers: PyTorch's update rules, the lectures' forms, Newton, schedules, clipping.

* :mod:`~dlkit.optim.base` — :class:`Optimizer` (parameters, per-parameter state indexed like
  the parameters, hyperparameters as attributes, ``state_dict``), and Tensor helpers.
* :mod:`~dlkit.optim.torch_family` — :class:`SGD`, :class:`Adam`, :class:`AdamW`,
  :class:`RMSprop`, :class:`Adagrad`: identical to PyTorch's (names, arguments, state keys,
  numerics), written with Tensor arithmetic; ``opt.fused = True`` on ``SGD`` / ``Adam`` / ``AdamW``
  selects one backend kernel per parameter instead (:mod:`~dlkit.optim.fused`, not in the student kit).
* :mod:`~dlkit.optim.lecture` — the lectures' forms: :class:`Momentum`, :class:`Nesterov` (EMA
  form), :class:`Newton`; ``Adam(bias_correction=False)`` is the lectures' plain Adam.
* :mod:`~dlkit.optim.schedulers` — :class:`StepLR`, :class:`CosineAnnealingLR`;
  :mod:`~dlkit.optim.clip` — :func:`clip_grad_norm`.

Students write the optimizers themselves in notebook 03 (``dlkit.student.plug`` puts theirs here).
"""
from .base import Optimizer, clone, full_like, zeros_like
from .clip import clip_grad_norm
from .lecture import Momentum, Nesterov, Newton
from .schedulers import CosineAnnealingLR, LRScheduler, StepLR
from .torch_family import SGD, Adagrad, Adam, AdamW, RMSprop

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Momentum", "Nesterov", "Newton",
    "LRScheduler", "StepLR", "CosineAnnealingLR", "clip_grad_norm", "zeros_like", "full_like", "clone",
]
