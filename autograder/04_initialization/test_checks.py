"""Hidden checks for 04_initialization (2 points per initializer).

The graded pieces are dlkit's own initializers (``dlkit.init.xavier_uniform`` ...): the student's
answer cell defines each with the library's signature
``(fan_in, fan_out, <scheme args>, generator=None, dtype="float32") -> dlkit.Tensor`` and the
library's draw contract (notebooks/GRADED.md): ONE draw of shape ``(fan_in, fan_out)`` from
``generator`` (``generator.random`` for uniform, mapped by ``a * (2 * r - 1)``;
``generator.standard_normal`` for normal, scaled by ``std``), computed in float64 and cast to
``dtype`` once at the end.

Each initializer gets two checks:

* draws (default dtype): a float32 Tensor equal to the documented draw for several fans / gains /
  nonlinearities / modes; a deterministic fake with the right mean and variance fails here, and so
  does a float32 draw (``generator.random(shape, dtype=np.float32)``: other numbers);
* float64 and statistics: ``dtype="float64"`` gives a float64 Tensor equal to the float64 draw to
  1e-12 (a float32 computation cast up fails), ``generator=None`` works, and on large matrices the
  mean, variance and range (uniform) or kurtosis (normal) are the scheme's.

The initializer runs through a trusted driver in the sandbox that turns every OTHER random draw of
dlkit into an error while it runs (``dlkit.init.uniform``, ``normal``, ``lecun_*``, the helpers
``nn.Linear`` draws with, and the graded initializers themselves): an initializer draws from the
generator itself, so ``return dlkit.init.normal(shape, 0, std, generator)`` scores 0 even where it
gives the same numbers.  Hints name a known mistake only when the result equals that mistake's
scale to 1e-5 and that scale differs from the right one.
"""
from __future__ import annotations

import math

import numpy as np

from autograder.api import load_reference, check, expect_array, fail


ref = load_reference(__file__)

# Trusted driver, executed in the sandbox beside the student's definitions.
_DRIVER = r'''
_FORBIDDEN_DRAWS = ("uniform", "normal", "_symmetric_uniform", "lecun_uniform", "lecun_normal",
                    "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal")


def _call_initializer(name, fan_in, fan_out, generator, kwargs):
    import dlkit
    import dlkit.init as library
    calls = []
    library.__dict__["__dlkit_forbidden_draws__"] = calls
    saved = []
    for fname in _FORBIDDEN_DRAWS:
        f = library.__dict__.get(fname)
        code = getattr(f, "__code__", None)
        if code is None or code.co_freevars:
            continue
        trap = {}
        exec("def _trap(*args, **kwargs):\n"
             f"    __dlkit_forbidden_draws__.append({fname!r})\n"
             f"    raise RuntimeError('dlkit.init.{fname} is switched off while a graded initializer runs')\n",
             trap)
        saved.append((f, code))
        f.__code__ = trap["_trap"].__code__
    try:
        fn = globals().get(name)
        if fn is None:
            return ["missing", name]
        try:
            W = fn(fan_in, fan_out, generator=generator, **kwargs)
        except Exception:
            if calls:
                return ["forbidden", calls[0]]
            raise
    finally:
        for f, code in saved:
            f.__code__ = code
        library.__dict__.pop("__dlkit_forbidden_draws__", None)
    if calls:
        return ["forbidden", calls[0]]
    if not isinstance(W, dlkit.Tensor):
        return ["type", type(W).__module__ + "." + type(W).__qualname__]
    return ["ok", str(W.dtype), W.numpy()]
'''


def _call(student, name, fan_in, fan_out, seed, dtype=None, **kwargs):
    """Run the student's initializer; return (values, description).  Checks type, dtype, shape."""
    if dtype is not None:
        kwargs["dtype"] = dtype
    args = ", ".join([str(fan_in), str(fan_out)] + [f"{k}={v!r}" for k, v in kwargs.items()])
    gen = "None" if seed is None else f"np.random.default_rng({seed})"
    what = f"{name}({args}, generator={gen})"
    generator = None if seed is None else np.random.default_rng(seed)
    # the harness loads the answer cells whose names the driver mentions
    driver = _DRIVER + f"\n_LOADS = lambda: {name}\n"
    result = student.run(driver, "_call_initializer", name, fan_in, fan_out, generator, kwargs)
    if not isinstance(result, list) or not result:
        fail(f"{what}: the driver got no result.")
    status = result[0]
    if status == "missing":
        fail(f"{name} is not defined: run its answer cell (keep the name {name}).")
    if status == "forbidden":
        fail(f"{what} called dlkit.init.{result[1]}. A graded initializer draws from `generator` itself "
             "(one draw of shape (fan_in, fan_out), see the task statement); it may not hand the work to "
             "another dlkit initializer or random helper.")
    if status == "type":
        extra = " (wrap your array with dlkit.tensor(values, dtype=dtype))" if result[1].startswith("numpy.") else ""
        fail(f"{what} returned a {result[1]}; dlkit's initializers return a dlkit.Tensor{extra}.")
    if status != "ok" or len(result) != 3:
        fail(f"{what}: unexpected result from the driver.")
    want_dtype = dtype or "float32"
    if result[1] != want_dtype:
        fail(f"{what} returned a Tensor of dtype {result[1]}; expected {want_dtype} "
             f"({'the default dtype is float32, like the library' if dtype is None else 'honour the dtype argument'}: "
             "compute in float64, then cast once with dlkit.tensor(values, dtype=dtype)).")
    W = result[2]
    if type(W) is np.ndarray and W.shape == (fan_out, fan_in) and fan_in != fan_out:
        fail(f"{what} has shape {W.shape}; the shape must be (fan_in, fan_out) = ({fan_in}, {fan_out}) "
             "(the lecture's W in Z W + b), drawn in that shape.")
    return expect_array(W, shape=(fan_in, fan_out), dtype_kind="f", name=what), what


def _scale_hint(got_scale, want_scale, known, rtol=1e-5):
    """The known mistake whose scale equals ``got_scale`` (to rtol) and differs from the right one."""
    for description, scale in known.items():
        if scale and abs(got_scale / scale - 1) < rtol and abs(scale / want_scale - 1) > 1e-3:
            return description
    return None


def _base(kind, shape, seed):
    g = np.random.default_rng(seed)
    return 2.0 * g.random(shape) - 1.0 if kind == "uniform" else g.standard_normal(shape)


def _exact(student, name, fan_in, fan_out, seed, kind, scale, known, dtype=None, **kwargs):
    W, what = _call(student, name, fan_in, fan_out, seed, dtype=dtype, **kwargs)
    base = _base(kind, (fan_in, fan_out), seed)
    want = scale * base
    rtol = 1e-12 if dtype == "float64" else 1e-6        # float32: one rounding of the float64 value
    if np.allclose(W, want, rtol=rtol, atol=rtol * scale * 1e-3):
        return
    draw = ("a * (2 * generator.random((fan_in, fan_out)) - 1)" if kind == "uniform"
            else "std * generator.standard_normal((fan_in, fan_out))")
    hint, note = None, ""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = W.astype(np.float64) / base
    if np.isfinite(ratios).all() and np.allclose(ratios, ratios.flat[0], rtol=1e-5):
        got = abs(float(ratios.flat[0]))
        if abs(got / scale - 1) > 1e-5:
            hint = _scale_hint(got, scale, known)
            note = (f" The draws are right but the {'bound a' if kind == 'uniform' else 'std'} is {got:.6g} "
                    f"instead of {scale:.6g}.")
        elif dtype == "float64":
            hint = ("the right scale at float32 precision: compute in float64 and cast once at the end "
                    "(dlkit.tensor(values, dtype=dtype))")
    elif kind == "uniform" and np.allclose(W, scale * np.random.default_rng(seed).random((fan_in, fan_out)),
                                           rtol=1e-5, atol=1e-7 * scale):
        hint = "drew from U(0, a): map r = generator.random(...) to a * (2 * r - 1) to get U(-a, a)"
    elif np.allclose(W, scale * _base(kind, (fan_out, fan_in), seed).T, rtol=1e-5, atol=1e-7 * scale):
        hint = "drew in the shape (fan_out, fan_in) and transposed; draw (fan_in, fan_out) directly"
    fail(f"{what} does not match the documented draw {draw} with "
         f"{'a' if kind == 'uniform' else 'std'} = {scale:.6g} (values must be reproducible from the generator: "
         "one draw, in this form, computed in float64)." + note, got=W, expected=want, hint=hint)


def _statistical(student, name, fan_in, fan_out, seed, kind, scale, **kwargs):
    W, what = _call(student, name, fan_in, fan_out, seed, dtype="float64", **kwargs)
    target_var = scale ** 2 / 3.0 if kind == "uniform" else scale ** 2
    var = float(np.mean(W ** 2))
    mean = float(np.mean(W))
    if abs(mean) > 5 * math.sqrt(target_var / W.size) + 1e-12:
        fail(f"{what}: the mean of the entries is {mean:.4g}; it should be about 0 (a distribution centred at 0).")
    if abs(var / target_var - 1) > 0.05:
        fail(f"{what}: the variance of the entries is {var:.6g}; expected {target_var:.6g}.")
    if kind == "uniform":
        if np.abs(W).max() > scale * (1 + 1e-9):
            fail(f"{what}: values reach {np.abs(W).max():.6g}, outside [-a, a] with a = {scale:.6g}.")
        if np.abs(W).max() < 0.99 * scale:
            fail(f"{what}: the largest |value| is {np.abs(W).max():.6g}; U(-a, a) with a = {scale:.6g} "
                 "on this many entries comes within 1% of a.")
    else:
        kurt = float(np.mean(W ** 4) / var ** 2)
        if abs(kurt - 3.0) > 0.3:
            fail(f"{what}: the entries do not look normally distributed (kurtosis {kurt:.3f}, a normal "
                 "distribution has 3; a uniform one 1.8). Use generator.standard_normal.")


def _unseeded(student, name, **kwargs):
    """generator=None draws from a fresh generator: the call works and gives the right shape."""
    _call(student, name, 3, 4, None, **kwargs)


# -- Xavier --------------------------------------------------------------------------------------

def _xavier_known(fan_in, fan_out, gain, kind):
    c = 6.0 if kind == "uniform" else 2.0
    return {
        "Xavier with only fan_in in the denominator (it is fan_in + fan_out)": gain * math.sqrt(c / fan_in),
        "Xavier with only fan_out in the denominator (it is fan_in + fan_out)": gain * math.sqrt(c / fan_out),
        ("the normal std sqrt(2 / (fan_in + fan_out)) was used as the uniform bound (a = sqrt(3) * std)"
         if kind == "uniform" else "the uniform bound sqrt(6 / (fan_in + fan_out)) was used as the std"):
            gain * math.sqrt((2.0 if kind == "uniform" else 6.0) / (fan_in + fan_out)),
        "LeCun's fan-in scale (variance 1 / fan_in), not Xavier's": gain * math.sqrt(c / 2.0 / fan_in),
        "the gain was ignored": math.sqrt(c / (fan_in + fan_out)),
        "the gain was squared": gain ** 2 * math.sqrt(c / (fan_in + fan_out)),
        "the variance was used as the scale (no square root)": gain * c / (fan_in + fan_out),
    }


_XU_CASES = [(30, 20, 1.0, 0), (7, 13, 2.0, 1), (1, 5, 0.5, 2), (16, 16, 5.0 / 3.0, 3)]
_XN_CASES = [(30, 20, 1.0, 4), (9, 4, 3.0, 5), (1, 1, 1.5, 6), (12, 12, 0.25, 7)]


def _gain_kwargs(gain):
    return {} if gain == 1.0 else {"gain": gain}


@check("xavier_uniform", points=1)
def test_xavier_uniform_draws(student):
    for fan_in, fan_out, gain, seed in _XU_CASES:
        _exact(student, "xavier_uniform", fan_in, fan_out, seed, "uniform", ref.xavier_uniform_bound(fan_in, fan_out, gain),
               _xavier_known(fan_in, fan_out, gain, "uniform"), **_gain_kwargs(gain))


@check("xavier_uniform", points=1)
def test_xavier_uniform_float64_and_statistics(student):
    for fan_in, fan_out, gain, seed in [(5, 8, 1.0, 8), (11, 3, 2.5, 9)]:
        _exact(student, "xavier_uniform", fan_in, fan_out, seed, "uniform", ref.xavier_uniform_bound(fan_in, fan_out, gain),
               _xavier_known(fan_in, fan_out, gain, "uniform"), dtype="float64", **_gain_kwargs(gain))
    for fan_in, fan_out, gain, seed in [(400, 200, 1.0, 10), (100, 500, 3.0, 11)]:
        _statistical(student, "xavier_uniform", fan_in, fan_out, seed, "uniform",
                     ref.xavier_uniform_bound(fan_in, fan_out, gain), gain=gain)
    _unseeded(student, "xavier_uniform")


@check("xavier_normal", points=1)
def test_xavier_normal_draws(student):
    for fan_in, fan_out, gain, seed in _XN_CASES:
        _exact(student, "xavier_normal", fan_in, fan_out, seed, "normal", ref.xavier_normal_std(fan_in, fan_out, gain),
               _xavier_known(fan_in, fan_out, gain, "normal"), **_gain_kwargs(gain))


@check("xavier_normal", points=1)
def test_xavier_normal_float64_and_statistics(student):
    for fan_in, fan_out, gain, seed in [(6, 10, 1.0, 12), (4, 9, 0.5, 13)]:
        _exact(student, "xavier_normal", fan_in, fan_out, seed, "normal", ref.xavier_normal_std(fan_in, fan_out, gain),
               _xavier_known(fan_in, fan_out, gain, "normal"), dtype="float64", **_gain_kwargs(gain))
    for fan_in, fan_out, gain, seed in [(400, 200, 1.0, 14), (150, 600, 2.0, 15)]:
        _statistical(student, "xavier_normal", fan_in, fan_out, seed, "normal",
                     ref.xavier_normal_std(fan_in, fan_out, gain), gain=gain)
    _unseeded(student, "xavier_normal")


# -- Kaiming -------------------------------------------------------------------------------------

def _kaiming_known(fan_in, fan_out, nonlinearity, mode, kind):
    gain = ref.GAINS[nonlinearity]
    fan = fan_in if mode == "fan_in" else fan_out
    other = fan_out if mode == "fan_in" else fan_in
    c = 3.0 if kind == "uniform" else 1.0
    return {
        f"the wrong fan: used {'fan_out' if mode == 'fan_in' else 'fan_in'} although mode={mode!r}":
            gain * math.sqrt(c / other),
        ("the bound was computed without the sqrt(3) (that is the std; a = sqrt(3) * std)"
         if kind == "uniform" else "the uniform bound gain * sqrt(3 / fan) was used as the std"):
            gain * math.sqrt((1.0 if kind == "uniform" else 3.0) / fan),
        "the relu factor 2 counted twice (the gain already holds sqrt(2))": gain * math.sqrt(2.0 * c / fan),
        f"the gain was hard-coded to sqrt(2) (relu) although nonlinearity={nonlinearity!r}":
            math.sqrt(2.0) * math.sqrt(c / fan),
        f"the lectures' gain table was used; gain = dlkit.init.calculate_gain({nonlinearity!r}) here":
            {"sigmoid": 4.0, "tanh": 1.0}.get(nonlinearity, gain) * math.sqrt(c / fan),
        "the gain was squared": gain ** 2 * math.sqrt(c / fan),
        "the variance was used as the scale (no square root)": gain ** 2 * c / fan,
    }


_KAIMING_CASES = [(50, 20, "relu", "fan_in"), (20, 50, "relu", "fan_out"), (8, 24, "tanh", "fan_in"),
                  (24, 6, "tanh", "fan_out"), (10, 3, "linear", "fan_in"), (1, 9, "relu", "fan_in"),
                  (7, 5, "sigmoid", "fan_in")]


def _kaiming_kwargs(nonlinearity, mode):
    kwargs = {}
    if nonlinearity != "relu":
        kwargs["nonlinearity"] = nonlinearity
    if mode != "fan_in":
        kwargs["mode"] = mode
    return kwargs


def _kaiming_exact(student, name, kind, cases, start, dtype=None):
    scale_of = ref.kaiming_uniform_bound if kind == "uniform" else ref.kaiming_normal_std
    for seed, (fan_in, fan_out, nl, mode) in enumerate(cases, start=start):
        _exact(student, name, fan_in, fan_out, seed, kind, scale_of(fan_in, fan_out, nl, mode),
               _kaiming_known(fan_in, fan_out, nl, mode, kind), dtype=dtype, **_kaiming_kwargs(nl, mode))


@check("kaiming_uniform", points=1)
def test_kaiming_uniform_draws(student):
    _kaiming_exact(student, "kaiming_uniform", "uniform", _KAIMING_CASES, 20)


@check("kaiming_uniform", points=1)
def test_kaiming_uniform_float64_and_statistics(student):
    _kaiming_exact(student, "kaiming_uniform", "uniform", [(6, 4, "relu", "fan_out"), (5, 7, "tanh", "fan_in")],
                   30, dtype="float64")
    for seed, (fan_in, fan_out, nl, mode) in enumerate([(400, 200, "relu", "fan_in"), (100, 800, "tanh", "fan_out")],
                                                        start=32):
        _statistical(student, "kaiming_uniform", fan_in, fan_out, seed, "uniform",
                     ref.kaiming_uniform_bound(fan_in, fan_out, nl, mode), nonlinearity=nl, mode=mode)
    _unseeded(student, "kaiming_uniform")


@check("kaiming_normal", points=1)
def test_kaiming_normal_draws(student):
    _kaiming_exact(student, "kaiming_normal", "normal", _KAIMING_CASES, 40)


@check("kaiming_normal", points=1)
def test_kaiming_normal_float64_and_statistics(student):
    _kaiming_exact(student, "kaiming_normal", "normal", [(6, 4, "relu", "fan_out"), (5, 7, "sigmoid", "fan_in")],
                   50, dtype="float64")
    for seed, (fan_in, fan_out, nl, mode) in enumerate([(400, 200, "relu", "fan_in"), (120, 700, "tanh", "fan_out")],
                                                        start=52):
        _statistical(student, "kaiming_normal", fan_in, fan_out, seed, "normal",
                     ref.kaiming_normal_std(fan_in, fan_out, nl, mode), nonlinearity=nl, mode=mode)
    _unseeded(student, "kaiming_normal")
