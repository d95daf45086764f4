"""Check an autodiff gradient against central finite differences.

For a function ``y = fn(x_1, ..., x_n)`` with any output shape, gradcheck draws a fixed random
upstream gradient ``u`` (seeded) and compares, entry by entry, two ways of computing the
gradient of the scalar ``s(x) = Σ u ∘ fn(x)``:

* analytic: one reverse-mode pass, ``dlkit.grad(fn(x), x, out_grad=u)`` (the VJP);
* numeric:  ``(s(x + ε e_j) − s(x − ε e_j)) / 2ε`` for every entry j (error O(ε²)).

A random ``u`` tests the whole Jacobian: a wrong entry J_ij shows up unless u_i happens to
be 0.  Everything runs in float64.  The relative error of an entry is
``|a − n| / max(|a|, |n|, atol / rtol)`` and the check passes when every entry's relative
error is at most ``rtol`` (so tiny gradients are compared absolutely, up to ``atol``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .autograd import Tensor, grad


@dataclass
class GradcheckResult:
    """Outcome of :func:`gradcheck`; truthy when the check passed."""

    ok: bool
    max_rel_error: float
    input_index: int | None          # which input holds the worst entry
    element_index: tuple | None      # where in that input
    analytic: float                  # autodiff value at the worst entry
    numeric: float                   # finite-difference value there
    checked: int = 0                 # how many entries were compared
    settings: dict = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        s = self.settings
        tol = f"rtol={s.get('rtol'):g}, atol={s.get('atol'):g}, eps={s.get('eps'):g}"
        if self.input_index is None:
            return f"GradcheckResult(ok={self.ok}): nothing to check ({tol})"
        where = f"input {self.input_index}, element {self.element_index}"
        head = ("PASSED: autodiff matches central differences" if self.ok else
                "FAILED: autodiff disagrees with central differences")
        return (f"GradcheckResult(ok={self.ok}) {head}\n"
                f"  max relative error {self.max_rel_error:.3g} over {self.checked} entries ({tol})\n"
                f"  worst entry: {where}: analytic {self.analytic:.8g}, numeric {self.numeric:.8g}, "
                f"difference {abs(self.analytic - self.numeric):.3g}")

    __str__ = __repr__


def _prepare(inputs: tuple) -> tuple[list[np.ndarray | Any], list[int]]:
    """Host float64 copies of the float inputs, and the positions to check."""
    values, floats, marked = [], [], []
    for i, x in enumerate(inputs):
        arr = x.numpy() if isinstance(x, Tensor) else np.asarray(x)
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float64)
            floats.append(i)
            if isinstance(x, Tensor) and x.requires_grad:
                marked.append(i)
        values.append(arr)
    return values, marked or floats


def gradcheck(fn: Callable[..., Tensor], *inputs: Any, eps: float = 1e-6, rtol: float = 1e-4,
              atol: float = 1e-6, seed: int = 0, max_elements: int | None = 512,
              raise_on_fail: bool = False) -> GradcheckResult:
    """Compare ``fn``'s autodiff VJP with central differences (all in float64).

    Args:
        fn: takes Tensors (in the order of ``inputs``), returns a float Tensor of any shape.
        inputs: Tensors or array-likes.  Checked are the inputs with ``requires_grad=True``
            if there are any, else every floating-point input; integer inputs (labels) are
            passed through unchanged.
        eps: finite-difference step.  rtol, atol: tolerances (see module docstring).
        seed: seeds the upstream gradient and the sample of entries.
        max_elements: check at most this many entries per input (a seeded random sample);
            None checks every entry.
        raise_on_fail: raise AssertionError with the report instead of returning a failure.
    """
    values, wrt = _prepare(inputs)
    rng = np.random.default_rng(seed)

    def make(vals: list) -> list[Tensor]:
        return [Tensor(v, dtype=v.dtype, requires_grad=(i in wrt)) for i, v in enumerate(vals)]

    tensors = make(values)
    out = fn(*tensors)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    if out.dtype != np.float64:
        raise TypeError(f"gradcheck: fn turned float64 inputs into a {out.dtype} output; "
                        f"finite differences need float64 throughout")
    upstream = rng.standard_normal(out.shape)
    if out.requires_grad:
        analytic = grad(out, [tensors[i] for i in wrt], out_grad=upstream, allow_unused=True)
    else:
        analytic = [None] * len(wrt)

    def objective(vals: list) -> float:        # recorded, in case fn itself calls grad()
        return float(np.sum(upstream * fn(*make(vals)).numpy()))

    settings = dict(eps=eps, rtol=rtol, atol=atol, seed=seed)
    worst = GradcheckResult(True, 0.0, None, None, 0.0, 0.0, 0, settings)
    worst_score = -1.0
    floor = atol / rtol
    for i, g in zip(wrt, analytic):
        x = values[i]
        a_all = np.zeros(x.shape) if g is None else g.numpy()
        entries = list(np.ndindex(*x.shape))
        if max_elements is not None and len(entries) > max_elements:
            picks = rng.choice(len(entries), size=max_elements, replace=False)
            entries = [entries[k] for k in sorted(picks)]
        for j in entries:
            old = x[j]
            x[j] = old + eps
            f_plus = objective(values)
            x[j] = old - eps
            f_minus = objective(values)
            x[j] = old
            n, a = (f_plus - f_minus) / (2 * eps), float(a_all[j])
            rel = abs(a - n) / max(abs(a), abs(n), floor)
            rel = rel if np.isfinite(rel) else np.inf
            worst.checked += 1
            if rel > worst_score:
                worst_score = rel
                worst.input_index, worst.element_index = i, tuple(int(k) for k in j)
                worst.analytic, worst.numeric = a, n
    worst.max_rel_error = max(worst_score, 0.0)
    worst.ok = worst.max_rel_error <= rtol and bool(np.isfinite(worst.max_rel_error))
    if raise_on_fail and not worst.ok:
        raise AssertionError(repr(worst))
    return worst
