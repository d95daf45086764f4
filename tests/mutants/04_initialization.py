"""Mutants for 04_initialization (see tests/mutants/__init__.py)."""


def _xu(bound: str, draw: str = "bound * (2 * generator.random(shape) - 1)", shape: str = "(fan_in, fan_out)") -> str:
    return f'''
def xavier_uniform(fan_in, fan_out, gain=1.0, generator=None):
    generator = np.random.default_rng() if generator is None else generator
    shape = {shape}
    bound = {bound}
    return {draw}
'''


def _xn(std: str, draw: str = "std * generator.standard_normal(shape)", shape: str = "(fan_in, fan_out)") -> str:
    return f'''
def xavier_normal(fan_in, fan_out, gain=1.0, generator=None):
    generator = np.random.default_rng() if generator is None else generator
    shape = {shape}
    std = {std}
    return {draw}
'''


def _ku(bound: str, fan: str = 'fan_in if mode == "fan_in" else fan_out',
        gain: str = "dlkit.init.calculate_gain(nonlinearity)",
        draw: str = "bound * (2 * generator.random((fan_in, fan_out)) - 1)") -> str:
    return f'''
def kaiming_uniform(fan_in, fan_out, nonlinearity="relu", mode="fan_in", generator=None):
    generator = np.random.default_rng() if generator is None else generator
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {{mode!r}}")
    fan = {fan}
    gain = {gain}
    bound = {bound}
    return {draw}
'''


def _kn(std: str, fan: str = 'fan_in if mode == "fan_in" else fan_out',
        gain: str = "dlkit.init.calculate_gain(nonlinearity)",
        draw: str = "std * generator.standard_normal((fan_in, fan_out))") -> str:
    return f'''
def kaiming_normal(fan_in, fan_out, nonlinearity="relu", mode="fan_in", generator=None):
    generator = np.random.default_rng() if generator is None else generator
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {{mode!r}}")
    fan = {fan}
    gain = {gain}
    std = {std}
    return {draw}
'''


MUTANTS: dict[str, dict[str, str]] = {
    "xavier_uniform": {
        "Xavier with only fan_in: sqrt(6 / fan_in)": _xu("gain * math.sqrt(6.0 / fan_in)"),
        "the normal std used as the uniform bound: sqrt(2 / (fan_in + fan_out))":
            _xu("gain * math.sqrt(2.0 / (fan_in + fan_out))"),
        "bound without the 6: sqrt(1 / (fan_in + fan_out))": _xu("gain * math.sqrt(1.0 / (fan_in + fan_out))"),
        "ignores the gain": _xu("math.sqrt(6.0 / (fan_in + fan_out))"),
        "draws in the transposed shape (fan_out, fan_in) and transposes": _xu(
            "gain * math.sqrt(6.0 / (fan_in + fan_out))", shape="(fan_out, fan_in)",
            draw="(bound * (2 * generator.random(shape) - 1)).T"),
        "draws uniform on [0, a) instead of [-a, a)": _xu(
            "gain * math.sqrt(6.0 / (fan_in + fan_out))", draw="bound * generator.random(shape)"),
        "right scale, wrong distribution (normal draws)": _xu(
            "gain * math.sqrt(2.0 / (fan_in + fan_out))", draw="bound * generator.standard_normal(shape)"),
    },
    "xavier_normal": {
        "Xavier with only fan_in: sqrt(1 / fan_in)": _xn("gain * math.sqrt(1.0 / fan_in)"),
        "the uniform bound used as the std: sqrt(6 / (fan_in + fan_out))":
            _xn("gain * math.sqrt(6.0 / (fan_in + fan_out))"),
        "the variance used as the std: 2 / (fan_in + fan_out)": _xn("gain * 2.0 / (fan_in + fan_out)"),
        "ignores the gain": _xn("math.sqrt(2.0 / (fan_in + fan_out))"),
        "gain squared: gain^2 sqrt(2 / (fan_in + fan_out))": _xn("gain ** 2 * math.sqrt(2.0 / (fan_in + fan_out))"),
        "right std, wrong distribution (uniform with that variance)": _xn(
            "gain * math.sqrt(2.0 / (fan_in + fan_out))",
            draw="std * math.sqrt(3.0) * (2 * generator.random(shape) - 1)"),
    },
    "kaiming_uniform": {
        "always uses fan_out": _ku("gain * math.sqrt(3.0 / fan)", fan="fan_out"),
        "always uses fan_in (ignores mode)": _ku("gain * math.sqrt(3.0 / fan)", fan="fan_in"),
        "bound without the sqrt(3): gain / sqrt(fan)": _ku("gain / math.sqrt(fan)"),
        "the std used as the bound with the relu factor doubled: sqrt(6 / fan) * gain": _ku("gain * math.sqrt(6.0 / fan)"),
        "gain hard-coded to sqrt(2) (ignores nonlinearity)": _ku("gain * math.sqrt(3.0 / fan)", gain="math.sqrt(2.0)"),
        "gain^2 instead of gain": _ku("gain ** 2 * math.sqrt(3.0 / fan)"),
    },
    "kaiming_normal": {
        "always uses fan_out": _kn("gain / math.sqrt(fan)", fan="fan_out"),
        "the uniform bound used as the std: gain sqrt(3 / fan)": _kn("gain * math.sqrt(3.0 / fan)"),
        "the variance used as the std: gain^2 / fan": _kn("gain ** 2 / fan"),
        "gain hard-coded to sqrt(2) (ignores nonlinearity)": _kn("gain / math.sqrt(fan)", gain="math.sqrt(2.0)"),
        "modes swapped (fan_in <-> fan_out)": _kn("gain / math.sqrt(fan)", fan='fan_out if mode == "fan_in" else fan_in'),
        "right std, wrong distribution (uniform with that variance)": _kn(
            "gain / math.sqrt(fan)", draw="std * math.sqrt(3.0) * (2 * generator.random((fan_in, fan_out)) - 1)"),
    },
}
