"""The fast path of ``SGD(fused=True)`` and ``Adam(fused=True)`` / ``AdamW(fused=True)``.

One backend kernel per parameter (``backend.sgd_step``; for Adam one ``backend.adam_step_many`` call
over all parameters, which is ``adam_step`` per parameter unless a backend does better), in place,
instead of one op per arithmetic operation, as PyTorch's ``fused=True``.  Same state (Tensors under
PyTorch's keys) as the readable ``step()`` of each class, so the two paths can be mixed;
``tests/test_optim.py`` checks they agree, and ``tests/test_native_optim.py`` that the numpy
backend's C loops give the readable steps' results bit for bit.  The student edition has no fused
path.
"""
from __future__ import annotations

from typing import Any

from .._graded import withheld
from .base import zeros_like


@withheld("computes SGD's update (graded in 03_optimization) in one kernel")
def sgd_step(opt: Any) -> None:
    for i, p in enumerate(opt.params):
        if p.grad is None:
            continue
        state = opt.state[i]
        first = "momentum_buffer" not in state
        if opt.momentum != 0 and first:
            state["momentum_buffer"] = zeros_like(p)
        buf = state.get("momentum_buffer")
        p.backend.sgd_step(p._array, p.grad._array, None if buf is None else buf._array, lr=opt.lr,
                           momentum=opt.momentum, dampening=opt.dampening, weight_decay=opt.weight_decay,
                           nesterov=opt.nesterov, first_step=first)


@withheld("computes Adam's update (graded in 03_optimization) in one kernel")
def adam_step(opt: Any) -> None:
    # one backend call per backend for all parameters (multi-tensor, as PyTorch's fused Adam): the
    # per-parameter Python and call overhead was a third of the update of a small MLP
    groups: dict[Any, tuple[list, list, list, list, list]] = {}
    for p, state in zip(opt.params, opt.state):
        grad = p.grad
        if grad is None:
            continue
        if not state:
            state["step"] = 0
            state["exp_avg"] = zeros_like(p)
            state["exp_avg_sq"] = zeros_like(p)
        state["step"] += 1
        group = groups.setdefault(p._backend, ([], [], [], [], []))
        group[0].append(p._array)
        group[1].append(grad._array)
        group[2].append(state["exp_avg"]._array)
        group[3].append(state["exp_avg_sq"]._array)
        group[4].append(state["step"])
    beta1, beta2 = opt.betas
    for backend, (params, grads, ms, vs, steps) in groups.items():
        backend.adam_step_many(params, grads, ms, vs, steps, lr=opt.lr, beta1=beta1, beta2=beta2,
                               eps=opt.eps, weight_decay=opt.weight_decay,
                               bias_correction=opt.bias_correction, decoupled=opt.decoupled)
