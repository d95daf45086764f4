"""Hidden checks for 00_arrays_broadcasting (points: broadcast_shape 3, unbroadcast 4, linear_forward 2)."""
from __future__ import annotations

import re

import numpy as np

from autograder.api import (load_reference, check, expect_array, fail, call_pure,
                            expect_float64, known_mistake)


ref = load_reference(__file__)


# -- broadcast_shape ---------------------------------------------------------------------------
# The task asks for the rule itself, on tuples: while the grader runs broadcast_shape, numpy's
# broadcasting helpers and array constructors are disabled (in numpy, numpy.lib.stride_tricks and
# wherever the submission bound them to its own names), and a call to one fails the check.

_DISABLED = ("broadcast_shapes", "broadcast", "broadcast_to", "broadcast_arrays", "array", "asarray",
             "asanyarray", "ascontiguousarray", "empty", "zeros", "ones", "full", "arange")

_BROADCAST_DRIVER = '''
def entry(sa, sb):
    import numpy
    import numpy.lib.stride_tricks as stride_tricks
    used = []

    def disabled(fname):
        def fn(*args, **kwargs):
            used.append(fname)
            raise RuntimeError(f"np.{fname} is disabled while broadcast_shape is graded "
                               "(the task asks for the rule on tuples, without numpy's helpers or arrays)")
        return fn

    originals = {f: getattr(numpy, f) for f in DISABLED if hasattr(numpy, f)}
    patched = []
    for space in (vars(numpy), vars(stride_tricks), getattr(broadcast_shape, "__globals__", {})):
        for key, value in list(space.items()):
            for fname, original in originals.items():
                if value is original:
                    patched.append((space, key, value))
                    space[key] = disabled(fname)
    try:
        try:
            result = broadcast_shape(sa, sb)
        except Exception as exc:
            return ["raised", type(exc).__name__, str(exc)[:2000], isinstance(exc, ValueError), used]
        return ["returned", result, None, False, used]
    finally:
        for space, key, value in reversed(patched):
            space[key] = value
'''.replace("DISABLED", repr(_DISABLED))


def _run_broadcast_shape(student, sa, sb):
    """``[kind, result or exception type, message, is ValueError]`` of the student's call."""
    back = student.run(_BROADCAST_DRIVER, "entry", tuple(sa), tuple(sb))
    if type(back) is not list or len(back) != 5 or type(back[4]) is not list:
        fail(f"broadcast_shape{(tuple(sa), tuple(sb))} could not be checked: the grader's driver got an "
             "unexpected reply.")
    if back[4]:
        fail(f"broadcast_shape{(tuple(sa), tuple(sb))} called np.{back[4][0]}, which is disabled while this "
             "function is graded: the task asks you to apply the broadcasting rule to the tuples yourself "
             "(no numpy broadcasting helpers, no arrays).")
    return back[:4]


def _expect_shape(student, sa, sb):
    kind, got, message, _ = _run_broadcast_shape(student, sa, sb)
    want = ref.broadcast_shape(sa, sb)
    if kind == "raised":
        fail(f"broadcast_shape({sa}, {sb}) raised {got}: {message}; these shapes are compatible, "
             f"expected {want}.")
    if type(got) is not tuple:
        fail(f"broadcast_shape({sa}, {sb}) should return a tuple (like numpy's .shape), "
             f"but returned a {type(got).__name__}.", got=got, expected=want)
    if len(got) != len(want):
        dropped = len(got) == min(len(sa), len(sb))
        fail(f"broadcast_shape({sa}, {sb}) has {len(got)} dimensions, expected {len(want)}.",
             got=got, expected=want,
             hint="the extra leading dimensions of the longer shape were dropped" if dropped else None)
    if not all(type(v) is int for v in got):
        fail(f"broadcast_shape({sa}, {sb}) should return a tuple of Python ints, got {got!r}.",
             expected=want)
    if got != want:
        n = len(want)
        left = tuple(sa) + (1,) * (n - len(sa)), tuple(sb) + (1,) * (n - len(sb))
        right = (1,) * (n - len(sa)) + tuple(sa), (1,) * (n - len(sb)) + tuple(sb)
        variants = {
            "each pair of sizes was combined with max(): a size-1 axis takes the OTHER size, even 0 "
            "(1 against 0 gives 0)":
                tuple(max(x, y) for x, y in zip(*right)),
            "the shapes were aligned on the LEFT; numpy aligns trailing dimensions (pad with 1s on the left)":
                tuple(y if x == 1 else x for x, y in zip(*left)),
        }
        found = [d for d, v in variants.items() if v != want and v == got]
        fail(f"broadcast_shape({sa}, {sb}) is wrong.", got=got, expected=want,
             hint=found[0] if len(found) == 1 else None)


@check("broadcast_shape", points=1)
def test_broadcast_shape_same_rank(student):
    for sa, sb in [((3, 1), (1, 4)), ((3, 4), (3, 4)), ((1, 1), (1, 1)), ((5, 1, 2), (1, 7, 2)),
                   ((0, 3), (1, 3)), ((2, 1, 6), (2, 5, 1)), ((1, 0), (4, 1))]:
        _expect_shape(student, sa, sb)


@check("broadcast_shape", points=1)
def test_broadcast_shape_different_rank(student):
    for sa, sb in [((5, 4), (4,)), ((4,), (5, 4)), ((8, 1, 6, 1), (7, 1, 5)), ((), (3, 2)), ((3, 2), ()),
                   ((2, 1, 3), (4, 1)), ((1,), (6, 1, 1)), ((9, 2, 3), (1,)), ((), ())]:
        _expect_shape(student, sa, sb)


def _names_shape(message: str, shape: tuple) -> bool:
    """Whether ``message`` mentions ``shape`` (as a tuple, a list, or its sizes in order)."""
    if str(tuple(shape)) in message or str(list(shape)) in message:
        return True
    numbers = [int(n) for n in re.findall(r"\d+", message)]
    it = iter(numbers)
    return all(any(n == s for n in it) for s in shape)


@check("broadcast_shape", points=1)
def test_broadcast_shape_raises_value_error_naming_shapes(student):
    # Raising is worth the point only from a function that also answers compatible shapes.
    for sa, sb in [((7, 1), (4,)), ((2, 3), (1,))]:
        _expect_shape(student, sa, sb)
    for sa, sb in [((7, 3), (4,)), ((2, 3), (3, 2)), ((6, 5, 4), (9, 1)), ((0,), (3,))]:
        kind, result, message, is_value_error = _run_broadcast_shape(student, sa, sb)
        if kind == "returned":
            fail(f"broadcast_shape({sa}, {sb}) should raise ValueError (sizes differ and neither is 1), "
                 f"but returned {result!r}.",
                 hint="the size check is missing: two sizes are compatible only if equal or one is 1")
        if not is_value_error:
            fail(f"broadcast_shape({sa}, {sb}) raised {result}: {message!r}; expected a ValueError.")
        if not (_names_shape(message, sa) and _names_shape(message, sb)):
            fail(f"the ValueError for broadcast_shape({sa}, {sb}) should name both shapes, "
                 f"so that the error tells the user what went wrong; the message was {message!r}.")


# -- unbroadcast -------------------------------------------------------------------------------

def _expect_unbroadcast(student, grad, shape):
    got = call_pure(student, "unbroadcast", ("grad", "shape"), grad, shape)
    name = f"unbroadcast(grad of shape {grad.shape}, {shape})"
    if shape == () and type(got) in (float, int):
        got = np.asarray(float(got))
    if shape == () and type(got) is np.ndarray and got.shape == (1,):
        # A 0-d array may arrive as shape (1,) (np.ascontiguousarray in the transport); accept it.
        got = got.reshape(())
    got = expect_float64(got, shape, name)
    want = ref.unbroadcast(grad, shape)
    rtol, atol = 1e-9, 1e-9
    if not np.allclose(got, want, rtol=rtol, atol=atol):
        fail(f"{name} is wrong.", got=got, expected=want,
             hint=known_mistake(got, want, {
                 "only the leading axes were summed (the size-1 axes were not)":
                     lambda: ref.unbroadcast_leading_only(grad, shape),
                 "only the size-1 axes were summed (the leading axes were not)":
                     lambda: ref.unbroadcast_size1_only(grad, shape),
                 "averaged instead of summed (the VJP of a broadcast is a sum)":
                     lambda: ref.unbroadcast_mean(grad, shape),
             }, rtol=rtol, atol=atol))


@check("unbroadcast", points=1)
def test_unbroadcast_leading_axes(student):
    rng = np.random.default_rng(10)
    for gshape, shape in [((2, 3, 4), (3, 4)), ((5, 4), (4,)), ((2, 3, 4), (4,)), ((3, 2), (3, 2))]:
        _expect_unbroadcast(student, rng.standard_normal(gshape), shape)


@check("unbroadcast", points=1)
def test_unbroadcast_size_one_axes(student):
    rng = np.random.default_rng(11)
    for gshape, shape in [((3, 4), (3, 1)), ((3, 4), (1, 4)), ((3, 4), (1, 1)), ((2, 5, 3), (2, 1, 3)),
                          ((1, 4), (1, 4)), ((4, 1), (1, 1))]:
        _expect_unbroadcast(student, rng.standard_normal(gshape), shape)


@check("unbroadcast", points=2)
def test_unbroadcast_leading_and_size_one(student):
    rng = np.random.default_rng(12)
    for gshape, shape in [((2, 3, 4), (3, 1)), ((2, 5, 3, 4), (5, 1, 4)), ((4, 3), ()), ((4, 3), (1,)),
                          ((6, 1, 2), (1, 1)), ((1, 7), (1,)), ((2, 3, 4), (1, 3, 1))]:
        _expect_unbroadcast(student, rng.standard_normal(gshape), shape)
    # the defining property <grad, broadcast(x)> == <unbroadcast(grad), x>, on a random case
    grad = rng.standard_normal((3, 4, 2, 5))
    _expect_unbroadcast(student, grad, (4, 1, 5))


# -- linear_forward ----------------------------------------------------------------------------

def _expect_linear(student, m, n, k, seed):
    rng = np.random.default_rng(seed)
    Z, W, b = rng.standard_normal((m, n)), rng.standard_normal((n, k)), rng.standard_normal(k)
    case = f"Z {Z.shape}, W {W.shape}, b {b.shape}"
    got = expect_float64(call_pure(student, "linear_forward", ("Z", "W", "b"), Z, W, b), (m, k),
                         f"linear_forward for {case}")
    want = ref.linear_forward(Z, W, b)
    rtol, atol = 1e-9, 1e-9
    if not np.allclose(got, want, rtol=rtol, atol=atol):
        fail(f"linear_forward is wrong for {case}.", got=got, expected=want,
             hint=known_mistake(got, want, {
                 "the bias is missing": lambda: Z @ W,
                 "b was added as a column (b[:, None]): row i got b[i]; 1 b^T puts b in every ROW":
                     lambda: Z @ W + b[:, None],
                 "the sum of b was added to every entry": lambda: Z @ W + b.sum(),
                 "W was transposed": lambda: Z @ W.T + b,
                 "the bias was added before multiplying by W": lambda: (Z + b) @ W,
             }, rtol=rtol, atol=atol))


@check("linear_forward", points=1)
def test_linear_forward_rectangular(student):
    _expect_linear(student, 5, 3, 4, seed=20)
    _expect_linear(student, 2, 6, 7, seed=21)


@check("linear_forward", points=1)
def test_linear_forward_edge_shapes(student):
    for m, n, k, seed in [(1, 3, 2, 22), (4, 4, 4, 23), (3, 1, 1, 24), (6, 2, 6, 25), (1, 1, 1, 26),
                          (3, 3, 3, 27)]:
        _expect_linear(student, m, n, k, seed)
