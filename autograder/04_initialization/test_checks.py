"""Hidden checks for 04_initialization (2 points per initializer).

Each initializer gets two checks:

* exact: with a seeded generator the result must equal the documented draw
  (``a * (2 * generator.random(shape) - 1)`` or ``std * generator.standard_normal(shape)``) to
  rtol 1e-6, for several fans / gains / nonlinearities / modes; a deterministic fake with the right
  mean and variance fails here;
* statistical: on a large matrix the empirical variance (and, for uniform, the range) must match
  the scheme's; a wrong scale fails both.

When a value is wrong the message names the known mistake whose scale the result matches.
"""
from __future__ import annotations

import math

import numpy as np

from autograder.api import load_reference, check, expect_array, fail


ref = load_reference(__file__)


def _call(student, name, fan_in, fan_out, seed, **kwargs):
    W = student.call(name, fan_in, fan_out, generator=np.random.default_rng(seed), **kwargs)
    args = ", ".join([str(fan_in), str(fan_out)] + [f"{k}={v!r}" for k, v in kwargs.items()])
    what = f"{name}({args}, generator=np.random.default_rng({seed}))"
    if type(W) is np.ndarray and W.shape == (fan_out, fan_in) and fan_in != fan_out:
        fail(f"{what} has shape {W.shape}; the shape must be (fan_in, fan_out) = ({fan_in}, {fan_out}) "
             "(the lecture's W in Z W + b), drawn in that shape.")
    return expect_array(W, shape=(fan_in, fan_out), dtype_kind="f", name=what), what


def _scale_hint(got_scale, want_scale, known):
    """Name the known mistake whose scale ``got_scale`` matches (within 3%)."""
    for description, scale in known.items():
        if scale and abs(got_scale / scale - 1) < 0.03 and abs(scale / want_scale - 1) > 0.03:
            return description
    return None


def _same(a, b):
    return a.shape == b.shape and np.allclose(a, b, rtol=1e-6, atol=1e-12)


def _exact(student, name, fan_in, fan_out, seed, kind, scale, known, **kwargs):
    W, what = _call(student, name, fan_in, fan_out, seed, **kwargs)
    want = (ref.uniform_draw if kind == "uniform" else ref.normal_draw)(scale, (fan_in, fan_out), seed)
    if np.allclose(W, want, rtol=1e-6, atol=1e-12):
        return
    draw = ("a * (2 * generator.random((fan_in, fan_out)) - 1)" if kind == "uniform"
            else "std * generator.standard_normal((fan_in, fan_out))")
    hint = None
    # Same draws, different scale? Then the ratio is constant and tells which scale was used.
    base = want / scale
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = W / base
    if np.isfinite(ratios).all() and np.allclose(ratios, ratios.flat[0], rtol=1e-6):
        hint = _scale_hint(abs(float(ratios.flat[0])), scale, known) or (
            f"the draws are right but the scale is {abs(float(ratios.flat[0])):.6g} instead of {scale:.6g}")
    elif kind == "uniform" and np.allclose(W, scale * np.random.default_rng(seed).random((fan_in, fan_out)), rtol=1e-6):
        hint = "drew from U(0, a): use a * (2 * r - 1) to get U(-a, a)"
    elif _same(W, (ref.uniform_draw if kind == "uniform" else ref.normal_draw)(scale, (fan_out, fan_in), seed).T):
        hint = "drew in the shape (fan_out, fan_in) and transposed; draw (fan_in, fan_out) directly"
    elif kind == "uniform" and _same(W, scale / math.sqrt(3.0) * np.random.default_rng(seed).standard_normal(W.shape)):
        hint = "normal draws (generator.standard_normal) were used; this initializer is uniform: a * (2 * r - 1)"
    elif kind == "normal" and _same(W, scale * math.sqrt(3.0) * (2 * np.random.default_rng(seed).random(W.shape) - 1)):
        hint = "uniform draws (generator.random) were used; this initializer is normal: std * standard_normal"
    fail(f"{what} does not match the documented draw {draw} with "
         f"{'a' if kind == 'uniform' else 'std'} = {scale:.6g} (values must be reproducible from the generator, "
         "in this draw order).", got=W, expected=want, hint=hint)


def _statistical(student, name, fan_in, fan_out, seed, kind, scale, known, **kwargs):
    W, what = _call(student, name, fan_in, fan_out, seed, **kwargs)
    target_var = scale ** 2 / 3.0 if kind == "uniform" else scale ** 2
    var = float(np.mean(W ** 2))
    mean = float(np.mean(W))
    if abs(mean) > 5 * math.sqrt(target_var / W.size) + 1e-12:
        fail(f"{what}: the mean of the entries is {mean:.4g}; it should be about 0 (a distribution centred at 0).")
    if abs(var / target_var - 1) > 0.05:
        got_scale = math.sqrt(3 * var) if kind == "uniform" else math.sqrt(var)
        fail(f"{what}: the variance of the entries is {var:.6g}; expected {target_var:.6g} "
             f"({'a^2 / 3 for U(-a, a), a' if kind == 'uniform' else 'std^2, std'} = {scale:.6g}).",
             hint=_scale_hint(got_scale, scale, known))
    if kind == "uniform":
        if np.abs(W).max() > scale * (1 + 1e-9):
            fail(f"{what}: values reach {np.abs(W).max():.6g}, outside [-a, a] with a = {scale:.6g}.",
                 hint=_scale_hint(float(np.abs(W).max()), scale, known))
        if np.abs(W).max() < 0.99 * scale:
            fail(f"{what}: the largest |value| is {np.abs(W).max():.6g}; U(-a, a) with a = {scale:.6g} "
                 "on this many entries comes within 1% of a.")
    else:
        kurt = float(np.mean(W ** 4) / var ** 2)
        if abs(kurt - 3.0) > 0.3:
            fail(f"{what}: the entries do not look normally distributed (kurtosis {kurt:.3f}, a normal "
                 "distribution has 3; a uniform one 1.8). Use generator.standard_normal.")


# -- Xavier --------------------------------------------------------------------------------------

def _xavier_known(fan_in, fan_out, gain, kind):
    return {
        "Xavier with only fan_in (the scale uses fan_in + fan_out)":
            gain * math.sqrt((6.0 if kind == "uniform" else 2.0) / fan_in) * (1 if kind == "uniform" else 1),
        "Xavier with only fan_out": gain * math.sqrt((6.0 if kind == "uniform" else 2.0) / fan_out),
        "the normal std sqrt(2 / (fan_in + fan_out)) was used as the uniform bound a (a = sqrt(3) * std)"
        if kind == "uniform" else "the uniform bound sqrt(6 / (fan_in + fan_out)) was used as the std":
            gain * math.sqrt((2.0 if kind == "uniform" else 6.0) / (fan_in + fan_out)),
        "the 6 is missing from the bound" if kind == "uniform" else "the 2 is missing from the variance":
            gain * math.sqrt(1.0 / (fan_in + fan_out)),
        "the gain was ignored": math.sqrt((6.0 if kind == "uniform" else 2.0) / (fan_in + fan_out)),
        "the gain was squared": gain ** 2 * math.sqrt((6.0 if kind == "uniform" else 2.0) / (fan_in + fan_out)),
        "the variance was used as the std": gain * 2.0 / (fan_in + fan_out),
        "Xavier with only fan_in: sqrt(1 / fan_in)": gain * math.sqrt(1.0 / fan_in),
    }


@check("xavier_uniform", points=1)
def test_xavier_uniform_exact_draws(student):
    for fan_in, fan_out, gain, seed in [(30, 20, 1.0, 0), (7, 13, 2.0, 1), (1, 5, 0.5, 2), (16, 16, 5.0 / 3.0, 3)]:
        kwargs = {} if gain == 1.0 else {"gain": gain}
        _exact(student, "xavier_uniform", fan_in, fan_out, seed, "uniform",
               ref.xavier_uniform_bound(fan_in, fan_out, gain), _xavier_known(fan_in, fan_out, gain, "uniform"),
               **kwargs)


@check("xavier_uniform", points=1)
def test_xavier_uniform_statistics(student):
    for fan_in, fan_out, gain, seed in [(400, 200, 1.0, 10), (100, 500, 3.0, 11)]:
        _statistical(student, "xavier_uniform", fan_in, fan_out, seed, "uniform",
                     ref.xavier_uniform_bound(fan_in, fan_out, gain),
                     _xavier_known(fan_in, fan_out, gain, "uniform"), gain=gain)


@check("xavier_normal", points=1)
def test_xavier_normal_exact_draws(student):
    for fan_in, fan_out, gain, seed in [(30, 20, 1.0, 4), (9, 4, 3.0, 5), (1, 1, 1.5, 6), (12, 12, 0.25, 7)]:
        kwargs = {} if gain == 1.0 else {"gain": gain}
        _exact(student, "xavier_normal", fan_in, fan_out, seed, "normal",
               ref.xavier_normal_std(fan_in, fan_out, gain), _xavier_known(fan_in, fan_out, gain, "normal"),
               **kwargs)


@check("xavier_normal", points=1)
def test_xavier_normal_statistics(student):
    for fan_in, fan_out, gain, seed in [(400, 200, 1.0, 12), (150, 600, 2.0, 13)]:
        _statistical(student, "xavier_normal", fan_in, fan_out, seed, "normal",
                     ref.xavier_normal_std(fan_in, fan_out, gain),
                     _xavier_known(fan_in, fan_out, gain, "normal"), gain=gain)


# -- Kaiming -------------------------------------------------------------------------------------

def _kaiming_known(fan_in, fan_out, nonlinearity, mode, kind):
    gain = ref.GAINS[nonlinearity]
    fan = fan_in if mode == "fan_in" else fan_out
    other = fan_out if mode == "fan_in" else fan_in
    c = 3.0 if kind == "uniform" else 1.0
    return {
        f"the wrong fan: used {'fan_out' if mode == 'fan_in' else 'fan_in'} although mode={mode!r}":
            gain * math.sqrt(c / other),
        "the uniform bound was computed without the sqrt(3) (that is the std, a = sqrt(3) * std)"
        if kind == "uniform" else "the uniform bound gain * sqrt(3 / fan) was used as the std":
            gain * math.sqrt((1.0 if kind == "uniform" else 3.0) / fan),
        "sqrt(6 / fan) * gain: the relu factor 2 counted twice (the gain already holds sqrt(2))":
            gain * math.sqrt(6.0 / fan),
        f"the gain was hard-coded to sqrt(2) (relu) although nonlinearity={nonlinearity!r}":
            math.sqrt(2.0) * math.sqrt(c / fan),
        "the variance gain^2 / fan was used as the std" if kind == "normal" else "the gain was squared":
            gain ** 2 / fan if kind == "normal" else gain ** 2 * math.sqrt(c / fan),
        "the gain was squared": gain ** 2 * math.sqrt(c / fan),
    }


_KAIMING_CASES = [(50, 20, "relu", "fan_in"), (20, 50, "relu", "fan_out"), (8, 24, "tanh", "fan_in"),
                  (24, 6, "tanh", "fan_out"), (10, 3, "linear", "fan_in"), (1, 9, "relu", "fan_in")]


def _kaiming_kwargs(nonlinearity, mode):
    kwargs = {}
    if nonlinearity != "relu":
        kwargs["nonlinearity"] = nonlinearity
    if mode != "fan_in":
        kwargs["mode"] = mode
    return kwargs


@check("kaiming_uniform", points=1)
def test_kaiming_uniform_exact_draws(student):
    for seed, (fan_in, fan_out, nl, mode) in enumerate(_KAIMING_CASES, start=20):
        _exact(student, "kaiming_uniform", fan_in, fan_out, seed, "uniform",
               ref.kaiming_uniform_bound(fan_in, fan_out, nl, mode),
               _kaiming_known(fan_in, fan_out, nl, mode, "uniform"), **_kaiming_kwargs(nl, mode))


@check("kaiming_uniform", points=1)
def test_kaiming_uniform_statistics(student):
    for seed, (fan_in, fan_out, nl, mode) in enumerate([(400, 200, "relu", "fan_in"), (100, 800, "tanh", "fan_out")],
                                                        start=30):
        _statistical(student, "kaiming_uniform", fan_in, fan_out, seed, "uniform",
                     ref.kaiming_uniform_bound(fan_in, fan_out, nl, mode),
                     _kaiming_known(fan_in, fan_out, nl, mode, "uniform"), nonlinearity=nl, mode=mode)


@check("kaiming_normal", points=1)
def test_kaiming_normal_exact_draws(student):
    for seed, (fan_in, fan_out, nl, mode) in enumerate(_KAIMING_CASES, start=40):
        _exact(student, "kaiming_normal", fan_in, fan_out, seed, "normal",
               ref.kaiming_normal_std(fan_in, fan_out, nl, mode),
               _kaiming_known(fan_in, fan_out, nl, mode, "normal"), **_kaiming_kwargs(nl, mode))


@check("kaiming_normal", points=1)
def test_kaiming_normal_statistics(student):
    for seed, (fan_in, fan_out, nl, mode) in enumerate([(400, 200, "relu", "fan_in"), (120, 700, "tanh", "fan_out")],
                                                        start=50):
        _statistical(student, "kaiming_normal", fan_in, fan_out, seed, "normal",
                     ref.kaiming_normal_std(fan_in, fan_out, nl, mode),
                     _kaiming_known(fan_in, fan_out, nl, mode, "normal"), nonlinearity=nl, mode=mode)
