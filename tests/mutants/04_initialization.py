"""Mutants for 04_initialization (see tests/mutants/__init__.py).

The graded pieces are dlkit's initializers: ``(fan_in, fan_out, ..., generator=None,
dtype="float32") -> dlkit.Tensor``.  Besides wrong scales and draws, each has mutants that break
the dtype contract (float64 computation cast once to ``dtype``) and one that hands the work to
another dlkit draw (``dlkit.init.uniform`` / ``normal`` / ``lecun_*``): same numbers, but the
hidden checks switch those off while a graded initializer runs, so it scores 0.
"""


def _xu(bound: str, draw: str = "bound * (2 * generator.random(shape) - 1)", shape: str = "(fan_in, fan_out)",
        ret: str = "dlkit.tensor(W, dtype=dtype)") -> str:
    return f'''
def xavier_uniform(fan_in, fan_out, gain=1.0, generator=None, dtype="float32"):
    generator = np.random.default_rng() if generator is None else generator
    shape = {shape}
    bound = {bound}
    W = {draw}
    return {ret}
'''


def _xn(std: str, draw: str = "std * generator.standard_normal(shape)", shape: str = "(fan_in, fan_out)",
        ret: str = "dlkit.tensor(W, dtype=dtype)") -> str:
    return f'''
def xavier_normal(fan_in, fan_out, gain=1.0, generator=None, dtype="float32"):
    generator = np.random.default_rng() if generator is None else generator
    shape = {shape}
    std = {std}
    W = {draw}
    return {ret}
'''


_XU_OK = "gain * math.sqrt(6.0 / (fan_in + fan_out))"
_XN_OK = "gain * math.sqrt(2.0 / (fan_in + fan_out))"


def _ku(bound: str = "gain * math.sqrt(3.0 / fan)", fan: str = 'fan_in if mode == "fan_in" else fan_out',
        gain: str = "dlkit.init.calculate_gain(nonlinearity)",
        draw: str = "bound * (2 * generator.random((fan_in, fan_out)) - 1)",
        ret: str = "dlkit.tensor(W, dtype=dtype)") -> str:
    return f'''
def kaiming_uniform(fan_in, fan_out, nonlinearity="relu", mode="fan_in", generator=None, dtype="float32"):
    generator = np.random.default_rng() if generator is None else generator
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {{mode!r}}")
    fan = {fan}
    gain = {gain}
    bound = {bound}
    W = {draw}
    return {ret}
'''


def _kn(std: str = "gain / math.sqrt(fan)", fan: str = 'fan_in if mode == "fan_in" else fan_out',
        gain: str = "dlkit.init.calculate_gain(nonlinearity)",
        draw: str = "std * generator.standard_normal((fan_in, fan_out))",
        ret: str = "dlkit.tensor(W, dtype=dtype)") -> str:
    return f'''
def kaiming_normal(fan_in, fan_out, nonlinearity="relu", mode="fan_in", generator=None, dtype="float32"):
    generator = np.random.default_rng() if generator is None else generator
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {{mode!r}}")
    fan = {fan}
    gain = {gain}
    std = {std}
    W = {draw}
    return {ret}
'''


MUTANTS: dict[str, dict[str, str]] = {
    "xavier_uniform": {
        "Xavier with only fan_in: sqrt(6 / fan_in)": _xu("gain * math.sqrt(6.0 / fan_in)"),
        "the normal std used as the uniform bound: sqrt(2 / (fan_in + fan_out))": _xu(_XN_OK),
        "bound without the 6: sqrt(1 / (fan_in + fan_out))": _xu("gain * math.sqrt(1.0 / (fan_in + fan_out))"),
        "ignores the gain": _xu("math.sqrt(6.0 / (fan_in + fan_out))"),
        "draws in the transposed shape (fan_out, fan_in) and transposes": _xu(
            _XU_OK, shape="(fan_out, fan_in)", draw="(bound * (2 * generator.random(shape) - 1)).T"),
        "draws uniform on [0, a) instead of [-a, a)": _xu(_XU_OK, draw="bound * generator.random(shape)"),
        "right scale, wrong distribution (normal draws)": _xu(_XN_OK, draw="bound * generator.standard_normal(shape)"),
        "returns the numpy array (the library returns a Tensor)": _xu(_XU_OK, ret="W"),
        "ignores dtype (always float32)": _xu(_XU_OK, ret='dlkit.tensor(W, dtype="float32")'),
        "draws in float32 (generator.random(shape, dtype=np.float32))": _xu(
            _XU_OK, draw="bound * (2 * generator.random(shape, dtype=np.float32) - 1)"),
        "computes in float32, then casts to dtype": _xu(
            _XU_OK, draw="(np.float32(bound) * (2 * generator.random(shape) - 1).astype(np.float32))"),
        "shortcut through dlkit.init.uniform (same numbers, not its own draw)": _xu(
            _XU_OK, draw="None", ret="dlkit.init.uniform(shape, -bound, bound, generator=generator, dtype=dtype)"),
    },
    "xavier_normal": {
        "Xavier with only fan_in: sqrt(1 / fan_in)": _xn("gain * math.sqrt(1.0 / fan_in)"),
        "the uniform bound used as the std: sqrt(6 / (fan_in + fan_out))": _xn(_XU_OK),
        "the variance used as the std: 2 / (fan_in + fan_out)": _xn("gain * 2.0 / (fan_in + fan_out)"),
        "ignores the gain": _xn("math.sqrt(2.0 / (fan_in + fan_out))"),
        "gain squared: gain^2 sqrt(2 / (fan_in + fan_out))": _xn("gain ** 2 * math.sqrt(2.0 / (fan_in + fan_out))"),
        "right std, wrong distribution (uniform with that variance)": _xn(
            _XN_OK, draw="std * math.sqrt(3.0) * (2 * generator.random(shape) - 1)"),
        "returns the numpy array (the library returns a Tensor)": _xn(_XN_OK, ret="W"),
        "returns float64 by default (dtype default ignored)": _xn(_XN_OK, ret="dlkit.tensor(W, dtype='float64')"),
        "draws in float32 (standard_normal(shape, dtype=np.float32))": _xn(
            _XN_OK, draw="std * generator.standard_normal(shape, dtype=np.float32)"),
        "shortcut through dlkit.init.normal (same numbers, not its own draw)": _xn(
            _XN_OK, draw="None", ret="dlkit.init.normal(shape, 0.0, std, generator=generator, dtype=dtype)"),
        "shortcut through dlkit.init.lecun_normal, rescaled": _xn(
            _XN_OK, draw="None",
            ret="dlkit.init.lecun_normal(fan_in, fan_out, generator=generator, dtype=dtype) * (std * math.sqrt(fan_in))"),
    },
    "kaiming_uniform": {
        "always uses fan_out": _ku(fan="fan_out"),
        "always uses fan_in (ignores mode)": _ku(fan="fan_in"),
        "bound without the sqrt(3): gain / sqrt(fan)": _ku("gain / math.sqrt(fan)"),
        "the relu factor doubled: gain * sqrt(6 / fan)": _ku("gain * math.sqrt(6.0 / fan)"),
        "gain hard-coded to sqrt(2) (ignores nonlinearity)": _ku(gain="math.sqrt(2.0)"),
        "gain^2 instead of gain": _ku("gain ** 2 * math.sqrt(3.0 / fan)"),
        "the lectures' gain table (sigmoid 4, tanh 1) instead of calculate_gain": _ku(
            gain='{"sigmoid": 4.0, "tanh": 1.0}.get(nonlinearity, dlkit.init.calculate_gain(nonlinearity))'),
        "returns the numpy array (the library returns a Tensor)": _ku(ret="W"),
        "ignores dtype (always float32)": _ku(ret="dlkit.tensor(W)"),
        "shortcut through dlkit.init.uniform": _ku(
            draw="None", ret="dlkit.init.uniform((fan_in, fan_out), -bound, bound, generator=generator, dtype=dtype)"),
        "shortcut through dlkit.init.lecun_uniform, rescaled": _ku(
            draw="None",
            ret="dlkit.init.lecun_uniform(fan_in, fan_out, generator=generator, dtype=dtype) * (bound * math.sqrt(fan_in))"),
    },
    "kaiming_normal": {
        "always uses fan_out": _kn(fan="fan_out"),
        "the uniform bound used as the std: gain sqrt(3 / fan)": _kn("gain * math.sqrt(3.0 / fan)"),
        "the variance used as the std: gain^2 / fan": _kn("gain ** 2 / fan"),
        "gain hard-coded to sqrt(2) (ignores nonlinearity)": _kn(gain="math.sqrt(2.0)"),
        "modes swapped (fan_in <-> fan_out)": _kn(fan='fan_out if mode == "fan_in" else fan_in'),
        "right std, wrong distribution (uniform with that variance)": _kn(
            draw="std * math.sqrt(3.0) * (2 * generator.random((fan_in, fan_out)) - 1)"),
        "returns the numpy array (the library returns a Tensor)": _kn(ret="W"),
        "draws in float32": _kn(draw="std * generator.standard_normal((fan_in, fan_out), dtype=np.float32)"),
        "shortcut through dlkit.init.normal": _kn(
            draw="None", ret="dlkit.init.normal((fan_in, fan_out), 0.0, std, generator=generator, dtype=dtype)"),
        "shortcut through dlkit.init.kaiming_normal (the library's own, withheld in the kit)": '''
def kaiming_normal(fan_in, fan_out, nonlinearity="relu", mode="fan_in", generator=None, dtype="float32"):
    return dlkit.init.kaiming_normal(fan_in, fan_out, nonlinearity, mode, generator=generator, dtype=dtype)
''',
    },
}


#: Correct answers written differently from the notebook's solutions: they must keep full marks.
ANSWERS: dict[str, str] = {
    "xavier_uniform": '''
def xavier_uniform(fan_in, fan_out, gain=1.0, generator=None, dtype="float32"):
    generator = generator if generator is not None else np.random.default_rng()
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return dlkit.tensor(a * (2 * generator.random((fan_in, fan_out)) - 1), dtype=dtype)
''',
    "xavier_normal": '''
def xavier_normal(fan_in, fan_out, gain=1.0, generator=None, dtype="float32"):
    generator = generator if generator is not None else np.random.default_rng()
    z = generator.standard_normal((fan_in, fan_out))
    return dlkit.tensor(gain * math.sqrt(2.0 / (fan_in + fan_out)) * z, dtype=dtype)
''',
    "kaiming_uniform": '''
def kaiming_uniform(fan_in, fan_out, nonlinearity="relu", mode="fan_in", generator=None, dtype="float32"):
    generator = generator if generator is not None else np.random.default_rng()
    fan = {"fan_in": fan_in, "fan_out": fan_out}[mode]
    bound = dlkit.init.calculate_gain(nonlinearity) * math.sqrt(3.0 / fan)
    r = generator.random((fan_in, fan_out))
    return dlkit.tensor(2 * bound * r - bound, dtype=dtype)
''',
    "kaiming_normal": '''
def kaiming_normal(fan_in, fan_out, nonlinearity="relu", mode="fan_in", generator=None, dtype="float32"):
    generator = generator if generator is not None else np.random.default_rng()
    fan = {"fan_in": fan_in, "fan_out": fan_out}[mode]
    std = dlkit.init.calculate_gain(nonlinearity) / math.sqrt(fan)
    return dlkit.tensor(std * generator.standard_normal((fan_in, fan_out)), dtype=dtype)
''',
}
