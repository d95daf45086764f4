"""The API hidden checks are written against (the contract with ``autograder/<ID>/``).

A hidden check is a plain pytest test function in ``autograder/<ID>/test_*.py``, decorated with
:func:`check` and taking the ``student`` fixture: a proxy bound to ONE submission whose code runs
in a sandboxed worker process.  Everything the check computes (inputs, reference results) stays
in the trusted grader process; only inputs cross into the sandbox, only plain data comes back.

    import numpy as np
    from autograder.api import check, expect_array, fail, diagnose

    @check("matmul_vjp", points=2)
    def test_matmul_vjp_rectangular(student):
        rng = np.random.default_rng(0)
        A, B, G = rng.standard_normal((3, 4)), rng.standard_normal((4, 5)), rng.standard_normal((3, 5))
        dA, dB = student.call("matmul_vjp", A, B, G)
        dA = expect_array(dA, shape=(3, 4), dtype_kind="f", name="dA")
        ref = G @ B.T
        if not np.allclose(dA, ref, rtol=1e-6, atol=1e-8):
            fail("dA is wrong for A (3,4), B (4,5)", got=dA, expected=ref,
                 hint=diagnose(dA, {"forgot the transpose: G @ B.T vs G @ B": lambda: G @ B}))

Scoring: a submission's score is the sum of ``points`` of the checks that PASSED. A check that
fails, errors (including a :class:`StudentError` it lets escape), is skipped or has no result
scores 0.  The message of a :class:`CheckFailure` / :class:`StudentError` is shown to the
student, so write it for them; any other exception is reported as an internal error of the check
(without its traceback, which would reveal the hidden check).

``student`` (see :class:`Student`):

* ``student.call(name, *args, **kwargs)`` runs ``name(*args, **kwargs)`` in the sandbox.
* ``student.run(driver_source, entry, *args, **kwargs)`` executes TRUSTED driver code (a string
  defining function ``entry``) in the sandbox, in a namespace where the student's definitions are
  globals (plus ``np``, ``math``, ``dlkit`` — the student edition), and returns
  ``entry(*args, **kwargs)``.  Use it for stateful things (optimizers, modules).
* ``student.has(name)``, ``student.defined_names()``.

Helpers for function pieces: :func:`call_pure` runs ``name(*args)`` through a driver that sends
the arguments back and fails if the student changed one in place (GRADED.md: no side effects);
:func:`expect_float64` checks the float64 contract; :func:`known_mistake` names the one known
mistake a wrong answer matches, within the check's own tolerance, never one equal to the answer.

Plain data, both directions: ``numpy.ndarray`` (bool/int/uint/float dtypes, bounded size),
``int``, ``float``, ``bool``, ``str``, ``None``, and ``list`` / ``tuple`` / ``dict`` of those
(dict keys: str, int, float, bool or None).  Numpy scalars come back as Python scalars.
Arguments may also be a ``numpy.random.Generator`` (PCG64): the sandbox gets a new generator
in the same state, so the trusted side can replay the same draws with its own copy.  Nothing is
ever pickled; anything else is refused (:class:`StudentError` for a return value the student
produced, ``TypeError`` for an argument the check produced).

Each check has two budgets covering all its sandbox calls: CPU time of the student's code
(``@check(..., cpu=1)``, the default; a check declaring ``timeout=T`` gets T) and wall-clock time
(``timeout=5``, the default; it stops code that sleeps or blocks).  CPU time is measured on the
sandbox's process tree, so an honest answer gets the same budget on an idle or a loaded grader,
and an infinite loop costs about 1 s instead of 5.  When either is exceeded the call raises
:class:`StudentTimeout`.  A function that already ran out of time, or killed its worker (exit,
signal, memory), in an earlier check of the same submission gets short budgets in later checks
(0.2 s of CPU, ``max(0.5 s, timeout / 10)`` of wall time), so one infinite loop costs one full
budget.  A worker that dies (exit, signal, memory) raises :class:`StudentCrash`; the next check
gets a fresh worker.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Mapping, NoReturn, Protocol, TypeVar

import numpy as np

__all__ = [
    "load_reference",
    "check", "CheckInfo", "check_info", "CheckFailure", "StudentError", "StudentTimeout",
    "StudentCrash", "Student", "fail", "expect_array", "expect_scalar", "diagnose",
    "DEFAULT_TIMEOUT", "DEFAULT_CPU", "QUICK_FRACTION", "QUICK_MIN_WALL_S", "call_pure", "expect_float64", "known_mistake",
]

#: Default wall-clock budget (seconds) of one check's sandbox calls (graded functions on small
#: inputs take milliseconds; declare more with ``@check(..., timeout=...)`` for training loops).
DEFAULT_TIMEOUT = 5.0
#: Default CPU-time budget (seconds) of one check's sandbox calls when the check declares no
#: ``timeout``: the reference solutions use at most ~45 ms per check on the CI machine (under
#: load), so 1 s is over 20x that, and, being CPU time, the same on an idle or a loaded grader.
#: A check declaring ``timeout=T`` gets T of CPU time too unless it declares ``cpu=``.
DEFAULT_CPU = 1.0
#: Budgets of a function that already ran out of time, or killed its worker, in an earlier check
#: of the same submission: CPU seconds, and wall seconds as a fraction of the check's (at least
#: 0.5 s).
RERUN_CPU = 0.2
RERUN_WALL_FRACTION = 0.1
#: The batch's QUICK PASS grades every submission first with this fraction of each check's CPU
#: time (0.1 s by default: the reference solutions use at most ~40 ms per check) and wall time
#: (at least QUICK_MIN_WALL_S), and of the sandbox's memory cgroup; a submission whose code runs
#: out of one of them, or crashes its worker, is not scored there but graded again with the full
#: budgets after all the others (:mod:`autograder.batch`).  Scores never depend on it: a
#: quick-pass result that is kept ran out of nothing, so the full budgets give the same one.
QUICK_FRACTION = 0.1
QUICK_MIN_WALL_S = 1.0

F = TypeVar("F", bound=Callable[..., Any])


# --------------------------------------------------------------------------------------------
# Exceptions
# --------------------------------------------------------------------------------------------
class CheckFailure(AssertionError):
    """The student's result is wrong; ``str(exc)`` is the message shown to the student."""


class StudentError(Exception):
    """The student's code raised (or returned something that is not plain data).

    ``str(exc)`` names the exception type and text plus a short traceback of the student's own
    lines; it is shown to the student.
    """


class StudentTimeout(StudentError):
    """The student's code exceeded the check's wall-clock budget (or its CPU-time limit)."""


class StudentCrash(StudentError):
    """The sandbox worker died: ``sys.exit``/``os._exit``, a signal, the memory limit, ..."""


# --------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckInfo:
    """What :func:`check` records on a check function."""

    function: str       # graded name from notebooks/GRADED.md, e.g. "matmul_vjp"
    points: float       # points this check is worth
    timeout: float      # wall-clock budget (s) of all sandbox calls made by this check
    cpu: float = DEFAULT_CPU   # CPU-time budget (s) of the student's code (never above timeout)


_ATTR = "__autograder_check__"


def check(function: str, points: float, *, timeout: float | None = None,
          cpu: float | None = None) -> Callable[[F], F]:
    """Declare a pytest test as a hidden check of graded ``function`` worth ``points``.

    ``timeout``: wall-clock seconds for all the check's sandbox calls (default
    :data:`DEFAULT_TIMEOUT`); ``cpu``: CPU seconds the student's code may use over them (default
    :data:`DEFAULT_CPU`, or ``timeout`` when the check declares one).  The information is stored
    on the test function itself (no global registry), so a check module may be imported any
    number of times.
    """
    if cpu is None:
        cpu = DEFAULT_CPU if timeout is None else timeout
    if timeout is None:
        timeout = DEFAULT_TIMEOUT
    if not isinstance(function, str) or not function.isidentifier():
        raise ValueError(f"@check: function must be a graded name (an identifier), got {function!r}")
    if isinstance(points, bool) or not isinstance(points, (int, float)) or not points > 0:
        raise ValueError(f"@check({function!r}): points must be a positive number, got {points!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"@check({function!r}): timeout must be a positive number of seconds")
    if isinstance(cpu, bool) or not isinstance(cpu, (int, float)) or not cpu > 0:
        raise ValueError(f"@check({function!r}): cpu must be a positive number of seconds")

    def mark(fn: F) -> F:
        setattr(fn, _ATTR, CheckInfo(function, float(points), float(timeout), float(min(cpu, timeout))))
        return fn

    return mark


def check_info(fn: Any) -> CheckInfo | None:
    """The :class:`CheckInfo` of a check function (unwrapping decorators), or None."""
    seen = 0
    while fn is not None and seen < 10:
        info = getattr(fn, _ATTR, None)
        if isinstance(info, CheckInfo):
            return info
        fn = getattr(fn, "__wrapped__", None)
        seen += 1
    return None


# --------------------------------------------------------------------------------------------
# The student proxy (implemented by autograder.harness; this is its interface)
# --------------------------------------------------------------------------------------------
class Student(Protocol):
    """The ``student`` fixture: one submission, executed in a sandbox."""

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run the student's ``name(*args, **kwargs)``; return plain data."""

    def run(self, driver_source: str, entry: str, *args: Any, **kwargs: Any) -> Any:
        """Execute trusted ``driver_source`` beside the student's definitions; return ``entry(...)``."""

    def has(self, name: str) -> bool:
        """Whether the submission's answer cells define ``name``."""

    def defined_names(self) -> list[str]:
        """Names defined at top level by the submission's answer cells (sorted)."""


# --------------------------------------------------------------------------------------------
# Failing with a message for students
# --------------------------------------------------------------------------------------------
_KIND_WORDS = {"f": "float", "i": "signed integer", "u": "unsigned integer", "b": "bool",
               "c": "complex"}


def _describe(x: Any, limit: int = 6) -> str:
    """A short description of a value: shape, dtype and a few entries."""
    if isinstance(x, np.ndarray):
        flat = x.ravel()
        with np.printoptions(precision=6, suppress=False, threshold=limit, edgeitems=3):
            values = np.array2string(flat[:limit], separator=", ")
        more = f" ... ({flat.size} values)" if flat.size > limit else ""
        return f"array of shape {x.shape}, dtype {x.dtype}: {values}{more}"
    text = repr(x)
    if len(text) > 200:
        text = text[:200] + " ..."
    return f"{type(x).__name__} {text}"


def fail(message: str, got: Any = None, expected: Any = None, hint: str | None = None) -> NoReturn:
    """Raise :class:`CheckFailure` with ``message`` plus what was got / expected.

    For arrays the message shows shapes, a few values and the max abs error; ``hint`` (e.g. from
    :func:`diagnose`) adds "Your result matches a known mistake: <hint>".
    """
    lines = [message.rstrip()]
    if got is not None:
        lines.append(f"  got:      {_describe(got)}")
    if expected is not None:
        lines.append(f"  expected: {_describe(expected)}")
    if isinstance(got, np.ndarray) and isinstance(expected, np.ndarray):
        if got.shape == expected.shape and got.size:
            try:
                err = np.abs(got.astype(np.float64) - expected.astype(np.float64))
                idx = np.unravel_index(int(np.nanargmax(err)) if np.isfinite(err).any() else 0, err.shape)
                lines.append(f"  max abs error: {float(np.nanmax(err)):.3g} at index {tuple(int(i) for i in idx)}")
            except (TypeError, ValueError):  # pragma: no cover - exotic dtypes
                pass
        elif got.shape != expected.shape:
            lines.append(f"  shapes differ: {got.shape} vs expected {expected.shape}")
    if hint:
        lines.append(f"Your result matches a known mistake: {hint}")
    raise CheckFailure("\n".join(lines))


# --------------------------------------------------------------------------------------------
# Validating what came back from the sandbox
# --------------------------------------------------------------------------------------------
#: Largest array (elements) accepted by expect_array unless max_size says otherwise.
MAX_ARRAY_SIZE = 10_000_000


def expect_array(
    x: Any,
    shape: tuple[int, ...] | None = None,
    dtype_kind: str | None = "f",
    name: str = "result",
    *,
    finite: bool = True,
    max_size: int = MAX_ARRAY_SIZE,
) -> np.ndarray:
    """Validate that ``x`` is a plain ndarray of the right kind/shape with finite values.

    ``dtype_kind``: accepted ``dtype.kind`` letters, e.g. ``"f"`` (float), ``"fi"``, ``"b"``; None
    accepts any of bool/int/uint/float.  ``shape``: exact shape, or None; an entry may be None to
    accept any length on that axis.  Raises :class:`CheckFailure` with a teaching message, else
    returns ``x`` unchanged.
    """
    if type(x) is not np.ndarray:
        kind = type(x).__name__
        extra = ""
        if isinstance(x, (list, tuple)):
            extra = " (a list/tuple; return a numpy array, e.g. np.array(...))"
        elif isinstance(x, (int, float, bool)):
            extra = " (a scalar; did you reduce over an axis you should have kept?)"
        elif x is None:
            extra = " (did you forget a return statement?)"
        fail(f"{name} should be a numpy.ndarray, but your code returned {kind}{extra}.")
    if x.dtype.kind not in "biuf":
        fail(f"{name} has dtype {x.dtype}; expected a numeric array.")
    if dtype_kind is not None and x.dtype.kind not in dtype_kind:
        want = " or ".join(_KIND_WORDS.get(k, k) for k in dtype_kind)
        fail(f"{name} has dtype {x.dtype} ({_KIND_WORDS.get(x.dtype.kind, x.dtype.kind)}); "
             f"expected a {want} array.")
    if x.size > max_size:
        fail(f"{name} has {x.size} elements, far more than expected (at most {max_size}).")
    if shape is not None:
        ok = len(x.shape) == len(shape) and all(
            want is None or int(have) == int(want) for have, want in zip(x.shape, shape))
        if not ok:
            shown = tuple("any" if s is None else s for s in shape)
            fail(f"{name} has shape {x.shape}, expected {shown}. "
                 "Check which axes you reduce over, keepdims, and whether a transpose is missing.")
    if finite and x.dtype.kind == "f" and x.size and not np.isfinite(x).all():
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        fail(f"{name} contains {bad} NaN/inf value(s); expected finite numbers "
             "(look for a division by zero, log of 0, or exp overflow).", got=x)
    return x


def expect_scalar(x: Any, kind: str = "float", name: str = "result", *, finite: bool = True) -> Any:
    """Validate a Python scalar: ``kind`` is "float" (int accepted), "int" or "bool".

    Numpy scalars arrive as Python scalars (the protocol converts them); a 0-d or size-1
    array is NOT accepted: return a Python number.  Returns the value as float/int/bool.
    """
    if kind not in ("float", "int", "bool"):
        raise ValueError(f"expect_scalar: kind must be 'float', 'int' or 'bool', got {kind!r}")
    t = type(x)
    if kind == "bool":
        if t is not bool:
            fail(f"{name} should be a bool (True/False), but your code returned {_describe(x)}.")
        return x
    if kind == "int":
        if t is not int:
            fail(f"{name} should be an int, but your code returned {_describe(x)}.")
        return x
    if t is bool or t not in (int, float):
        fail(f"{name} should be a float (a Python number), but your code returned {_describe(x)}.")
    value = float(x)
    if finite and not np.isfinite(value):
        fail(f"{name} is {value}; expected a finite number.")
    return value


def diagnose(
    got: Any,
    variants: Mapping[str, Any],
    *,
    rtol: float = 1e-6,
    atol: float = 1e-8,
) -> str | None:
    """Name of the first known-wrong variant that ``got`` matches, or None.

    ``variants`` maps a description of a mistake (e.g. "forgot the transpose") to the array that
    mistake produces, or to a zero-argument callable computing it (evaluated lazily, so a variant
    that raises, e.g. on a shape mismatch, is simply skipped).  A match needs the same shape and
    ``np.allclose``.  Use the result as ``fail(..., hint=diagnose(...))``.
    """
    if type(got) is not np.ndarray:
        return None
    for description, variant in variants.items():
        try:
            value = variant() if callable(variant) else variant
            value = np.asarray(value)
            if value.shape == got.shape and value.dtype.kind in "biuf" and np.allclose(
                    got, value, rtol=rtol, atol=atol, equal_nan=False):
                return description
        except Exception:  # noqa: BLE001 - a variant that cannot be built is not a match
            continue
    return None


def load_reference(checks_file: str) -> Any:
    """The trusted ``reference.py`` beside a checks module, loaded once per process.

    Each assignment's folder name starts with a digit, so it is no importable package: the checks
    call ``ref = load_reference(__file__)``.  Reference code stays in the trusted process.
    """
    import importlib.util
    import sys
    from pathlib import Path

    folder = Path(checks_file).resolve().parent
    name = f"autograder_reference_{folder.name}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, folder / "reference.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# --------------------------------------------------------------------------------------------
# Calling the student's function: structure first, and no side effects
# --------------------------------------------------------------------------------------------
# GRADED.md: an answer has no side effects, so it must leave its arguments exactly as it got them.
# The trusted driver below hands the arguments to the student's function inside the sandbox and
# sends them back after the call; they are compared here with the grader's private copies.

def _pure_driver(name: str) -> str:
    return (f"def entry(args, kwargs):\n"
            f"    out = {name}(*args, **kwargs)\n"
            f"    return [out, args, kwargs]\n")


def _same(a, b) -> bool:
    """Exactly equal plain data: same types, shapes, dtypes and values (NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if type(a) is np.ndarray:
        return a.dtype == b.dtype and a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b or (a != a and b != b)


def _change(before, now) -> str:
    if type(before) is np.ndarray and type(now) is np.ndarray:
        if before.shape != now.shape or before.dtype != now.dtype:
            return f"it was an array of shape {before.shape}, dtype {before.dtype}; afterwards {now.shape}, {now.dtype}"
        changed = int(np.count_nonzero(before != now))
        return f"{changed} of its {before.size} entries changed"
    if type(before) is list and type(now) is list and len(before) != len(now):
        return f"it was a list of length {len(before)}; afterwards of length {len(now)}"
    return "its contents changed"


def call_pure(student, name: str, params: tuple[str, ...], *args, **kwargs):
    """``name(*args, **kwargs)`` run by the student, failing if it modified any argument in place."""
    private = copy.deepcopy(args), copy.deepcopy(kwargs)
    back = student.run(_pure_driver(name), "entry", list(args), dict(kwargs))
    if type(back) is not list or len(back) != 3 or type(back[1]) is not list or len(back[1]) != len(args) \
            or type(back[2]) is not dict or back[2].keys() != kwargs.keys():
        fail(f"{name}(...) could not be checked: the grader's driver got an unexpected reply.")
    out = back[0]
    pairs = list(zip(params, private[0], back[1])) + [(k, private[1][k], back[2][k]) for k in kwargs]
    for pname, before, now in pairs:
        if not _same(before, now):
            fail(f"{name} modified its argument `{pname}` in place ({_change(before, now)}). Answers must "
                 "not change their inputs (GRADED.md: no side effects; the caller still needs them): "
                 "compute into a new array (e.g. `x = x - m` instead of `x -= m`, or work on `x.copy()`), "
                 "and do not append to, pop from or reorder a list you were given.")
    return out


def expect_float64(x, shape, name):
    """A float64 ndarray of ``shape`` (GRADED.md: arrays are float64 unless stated)."""
    x = expect_array(x, shape=shape, dtype_kind="f", name=name)
    if x.dtype != np.float64:
        fail(f"{name} has dtype {x.dtype}; the contract is float64 (GRADED.md), so do not convert the "
             "result (e.g. .astype(np.float32)): numpy keeps float64 when the inputs are float64.")
    return x


def known_mistake(got, want, variants, *, rtol: float, atol: float):
    """The one known mistake ``got`` matches, using the check's own tolerance, or None.

    A mistake that gives the correct answer on this case (within the same tolerance) is never
    named, and neither is any when ``got`` matches several of them.
    """
    if type(got) is not np.ndarray:
        return None
    found = []
    for description, make in variants.items():
        try:
            value = np.asarray(make() if callable(make) else make)
        except Exception:  # noqa: BLE001 - a variant that cannot be built is no match
            continue
        if value.shape != got.shape or value.dtype.kind not in "biuf":
            continue
        if value.shape == np.shape(want) and np.allclose(value, want, rtol=rtol, atol=atol):
            continue
        if np.allclose(got, value, rtol=rtol, atol=atol):
            found.append(description)
    return found[0] if len(found) == 1 else None
