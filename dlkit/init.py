"""Weight initialization: the scales that keep signals alive through depth.

Every initializer returns a new :class:`dlkit.Tensor` of shape ``(fan_in, fan_out)``, the
lecture's ``W`` in ``Z W + b``, with dtype ``dtype`` (``"float32"`` by default, like PyTorch's
weights; ``requires_grad`` False: :class:`dlkit.nn.Parameter` wraps it).

Randomness comes only from ``generator`` (a ``numpy.random.Generator``); ``generator=None``
draws from a fresh ``numpy.random.default_rng()`` (unseeded, so not reproducible).  Each
initializer makes exactly one draw of shape ``(fan_in, fan_out)``; values are computed in
float64 and cast to ``dtype`` once, at the end (notebooks/GRADED.md; notebook 04 grades this):

* uniform on ``[-a, a]``: ``a * (2 * generator.random(shape) - 1)``
* normal ``N(0, std²)``:  ``std * generator.standard_normal(shape)``

Scales (n_in = fan_in, n_out = fan_out):

============  =====================================  =====================================
scheme        uniform bound a                        normal std
============  =====================================  =====================================
Xavier        gain·√(6/(n_in+n_out))                 gain·√(2/(n_in+n_out))
Kaiming       gain·√(3/fan)                          gain/√fan      (fan = n_in or n_out)
LeCun         1/√n_in  (PyTorch's Linear default)    1/√n_in
============  =====================================  =====================================

Gains: :func:`calculate_gain` is PyTorch's (tanh 5/3, relu √2, ...).  The lectures use a
different per-activation table *relative to the Xavier scale* — tanh ×1, sigmoid ×4,
ReLU ×√2 — available as :data:`LECTURE_GAINS` / :func:`lecture_gain`, e.g.
``xavier_uniform(n_in, n_out, gain=lecture_gain("sigmoid"))`` gives r = 4·√(6/(n_in+n_out)).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ._graded import graded
from .autograd import Tensor, tensor

__all__ = [
    "calculate_gain", "lecture_gain", "LECTURE_GAINS", "uniform", "normal", "zeros", "ones",
    "constant", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal",
    "lecun_uniform", "lecun_normal",
]

Shape = int | Sequence[int]

#: The lectures' table: multiply the Xavier (linear) scale by this factor per activation.
LECTURE_GAINS: dict[str, float] = {"linear": 1.0, "tanh": 1.0, "sigmoid": 4.0, "relu": math.sqrt(2.0)}


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """PyTorch's recommended gain for ``nonlinearity``.

    linear / identity / conv* / sigmoid → 1, tanh → 5/3, relu → √2,
    leaky_relu → √(2/(1+slope²)) with slope ``param`` (default 0.01), selu → 3/4.
    """
    linear = ("linear", "identity", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
              "conv_transpose2d", "conv_transpose3d")
    if nonlinearity in linear or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, bool) or not isinstance(param, (int, float)):
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a number")
        else:
            slope = float(param)
        return math.sqrt(2.0 / (1.0 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4.0
    raise ValueError(
        f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; choose linear, identity, "
        "conv1d/2d/3d, sigmoid, tanh, relu, leaky_relu or selu"
    )


def lecture_gain(nonlinearity: str) -> float:
    """The lectures' factor on the Xavier scale: tanh 1, sigmoid 4, relu √2 (linear 1)."""
    try:
        return LECTURE_GAINS[nonlinearity]
    except KeyError:
        raise ValueError(
            f"lecture_gain: no lecture gain for {nonlinearity!r}; choose one of "
            f"{', '.join(LECTURE_GAINS)}"
        ) from None


# -- helpers ----------------------------------------------------------------------------------

def _rng(generator: np.random.Generator | None) -> np.random.Generator:
    if generator is None:
        return np.random.default_rng()
    if not isinstance(generator, np.random.Generator):
        raise TypeError(
            f"generator must be a numpy.random.Generator (e.g. numpy.random.default_rng(0)), "
            f"got {type(generator).__name__}"
        )
    return generator


def _shape(shape: Shape) -> tuple[int, ...]:
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if any(int(s) < 0 for s in shape):
        raise ValueError(f"shape must have non-negative sizes, got {shape}")
    return tuple(int(s) for s in shape)


def _fans(fan_in: int, fan_out: int) -> tuple[int, int]:
    for name, value in (("fan_in", fan_in), ("fan_out", fan_out)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(fan_in), int(fan_out)


def _symmetric_uniform(shape: Shape, bound: float, generator, dtype: str) -> Tensor:
    """``bound * (2 * generator.random(shape) - 1)``: uniform on [-bound, bound]."""
    draw = bound * (2.0 * _rng(generator).random(_shape(shape)) - 1.0)
    return tensor(draw, dtype=dtype)


# -- elementary initializers --------------------------------------------------------------------

def uniform(shape: Shape, low: float = 0.0, high: float = 1.0,
            generator: np.random.Generator | None = None, dtype: str = "float32") -> Tensor:
    """Uniform on ``[low, high)``: ``low + (high - low) * generator.random(shape)``."""
    if not high >= low:
        raise ValueError(f"uniform: need low <= high, got low={low}, high={high}")
    return tensor(low + (high - low) * _rng(generator).random(_shape(shape)), dtype=dtype)


def normal(shape: Shape, mean: float = 0.0, std: float = 1.0,
           generator: np.random.Generator | None = None, dtype: str = "float32") -> Tensor:
    """``N(mean, std²)``: ``mean + std * generator.standard_normal(shape)``."""
    if not std >= 0:
        raise ValueError(f"normal: std must be >= 0, got {std}")
    return tensor(mean + std * _rng(generator).standard_normal(_shape(shape)), dtype=dtype)


def constant(shape: Shape, value: float, dtype: str = "float32") -> Tensor:
    """Every entry equal to ``value`` (no randomness)."""
    return tensor(np.full(_shape(shape), value, dtype=np.float64), dtype=dtype)


def zeros(shape: Shape, dtype: str = "float32") -> Tensor:
    """All zeros: the lecture's warning example (hidden units stay identical)."""
    return constant(shape, 0.0, dtype)


def ones(shape: Shape, dtype: str = "float32") -> Tensor:
    """All ones."""
    return constant(shape, 1.0, dtype)


# -- variance-preserving schemes ---------------------------------------------------------------

@graded("04_initialization", "xavier_uniform")
def xavier_uniform(fan_in: int, fan_out: int, gain: float = 1.0,
                   generator: np.random.Generator | None = None, dtype: str = "float32") -> Tensor:
    """Glorot/Xavier uniform: U(-a, a) with a = gain·√(6/(fan_in+fan_out)); shape (fan_in, fan_out).

    Var = a²/3 = gain²·2/(fan_in+fan_out), the compromise between keeping forward
    (1/fan_in) and backward (1/fan_out) variances.
    """
    fan_in, fan_out = _fans(fan_in, fan_out)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    rng = np.random.default_rng() if generator is None else generator
    return tensor(a * (2.0 * rng.random((fan_in, fan_out)) - 1.0), dtype=dtype)


@graded("04_initialization", "xavier_normal")
def xavier_normal(fan_in: int, fan_out: int, gain: float = 1.0,
                  generator: np.random.Generator | None = None, dtype: str = "float32") -> Tensor:
    """Glorot/Xavier normal: N(0, std²) with std = gain·√(2/(fan_in+fan_out)); shape (fan_in, fan_out)."""
    fan_in, fan_out = _fans(fan_in, fan_out)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    rng = np.random.default_rng() if generator is None else generator
    return tensor(std * rng.standard_normal((fan_in, fan_out)), dtype=dtype)


@graded("04_initialization", "kaiming_uniform")
def kaiming_uniform(fan_in: int, fan_out: int, nonlinearity: str = "relu", mode: str = "fan_in",
                    generator: np.random.Generator | None = None, dtype: str = "float32") -> Tensor:
    """He/Kaiming uniform: U(-b, b) with b = gain·√(3/fan); shape (fan_in, fan_out).

    ``gain = calculate_gain(nonlinearity)``; ``fan`` is ``fan_in`` (preserves forward
    variance) or ``fan_out`` (preserves backward variance) per ``mode``.  Var = gain²/fan.
    """
    fan_in, fan_out = _fans(fan_in, fan_out)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming_uniform: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = fan_in if mode == "fan_in" else fan_out
    bound = calculate_gain(nonlinearity) * math.sqrt(3.0 / fan)
    rng = np.random.default_rng() if generator is None else generator
    return tensor(bound * (2.0 * rng.random((fan_in, fan_out)) - 1.0), dtype=dtype)


@graded("04_initialization", "kaiming_normal")
def kaiming_normal(fan_in: int, fan_out: int, nonlinearity: str = "relu", mode: str = "fan_in",
                   generator: np.random.Generator | None = None, dtype: str = "float32") -> Tensor:
    """He/Kaiming normal: N(0, std²) with std = gain/√fan; shape (fan_in, fan_out).

    For ReLU (gain √2) this is the lecture's σ² = 2/n that keeps activation norms
    constant through depth.
    """
    fan_in, fan_out = _fans(fan_in, fan_out)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming_normal: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = fan_in if mode == "fan_in" else fan_out
    std = calculate_gain(nonlinearity) / math.sqrt(fan)
    rng = np.random.default_rng() if generator is None else generator
    return tensor(std * rng.standard_normal((fan_in, fan_out)), dtype=dtype)


def lecun_uniform(fan_in: int, fan_out: int, generator: np.random.Generator | None = None,
                  dtype: str = "float32") -> Tensor:
    """U(-r, r) with r = 1/√fan_in; shape (fan_in, fan_out).  Var = 1/(3·fan_in).

    This is PyTorch's ``nn.Linear`` default (kaiming_uniform with a=√5 gives the same bound),
    and :class:`dlkit.nn.Linear` uses it for the weights and, with shape (fan_out,), the bias.
    """
    fan_in, fan_out = _fans(fan_in, fan_out)
    return _symmetric_uniform((fan_in, fan_out), 1.0 / math.sqrt(fan_in), generator, dtype)


def lecun_normal(fan_in: int, fan_out: int, generator: np.random.Generator | None = None,
                 dtype: str = "float32") -> Tensor:
    """N(0, 1/fan_in); shape (fan_in, fan_out): the lecture's σ² = 1/n."""
    fan_in, fan_out = _fans(fan_in, fan_out)
    return normal((fan_in, fan_out), 0.0, 1.0 / math.sqrt(fan_in), generator, dtype)
