"""Hidden checks for 00_arrays_broadcasting (points: broadcast_shape 3, unbroadcast 4, linear_forward 2)."""
from __future__ import annotations

import re

import numpy as np

from autograder.api import load_reference, check, diagnose, expect_array, fail


ref = load_reference(__file__)


# -- broadcast_shape ---------------------------------------------------------------------------

def _expect_shape(got, sa, sb):
    want = ref.broadcast_shape(sa, sb)
    if type(got) is not tuple:
        fail(f"broadcast_shape({sa}, {sb}) should return a tuple (like numpy's .shape), "
             f"but returned a {type(got).__name__}.", got=got, expected=want)
    if got != want:
        hint = None
        padded_right = None
        try:
            n = max(len(sa), len(sb))
            a = tuple(sa) + (1,) * (n - len(sa))
            b = tuple(sb) + (1,) * (n - len(sb))
            padded_right = tuple(max(x, y) for x, y in zip(a, b))
        except Exception:  # noqa: BLE001
            pass
        try:
            n = max(len(sa), len(sb))
            maxed = tuple(max(x, y) for x, y in zip((1,) * (n - len(sa)) + tuple(sa), (1,) * (n - len(sb)) + tuple(sb)))
        except Exception:  # noqa: BLE001
            maxed = None
        if got == maxed:
            hint = ("each pair of sizes was combined with max(): a size-1 axis takes the OTHER size (even 0), "
                    "and two different sizes that are both != 1 must raise ValueError")
        elif got == padded_right and len(sa) != len(sb):
            hint = "the shapes were aligned on the LEFT; numpy aligns trailing dimensions (pad with 1s on the left)"
        elif len(got) == min(len(sa), len(sb)) != len(want):
            hint = "the extra leading dimensions of the longer shape were dropped"
        fail(f"broadcast_shape({sa}, {sb}) is wrong.", got=got, expected=want, hint=hint)


@check("broadcast_shape", points=1)
def test_broadcast_shape_same_rank(student):
    for sa, sb in [((3, 1), (1, 4)), ((3, 4), (3, 4)), ((1, 1), (1, 1)), ((5, 1, 2), (1, 7, 2)),
                   ((0, 3), (1, 3)), ((2, 1, 6), (2, 5, 1))]:
        _expect_shape(student.call("broadcast_shape", sa, sb), sa, sb)


@check("broadcast_shape", points=1)
def test_broadcast_shape_different_rank(student):
    for sa, sb in [((5, 4), (4,)), ((4,), (5, 4)), ((8, 1, 6, 1), (7, 1, 5)), ((), (3, 2)), ((3, 2), ()),
                   ((2, 1, 3), (4, 1)), ((1,), (6, 1, 1)), ((9, 2, 3), (1,))]:
        _expect_shape(student.call("broadcast_shape", sa, sb), sa, sb)


_RAISES = '''
def entry(sa, sb):
    try:
        result = broadcast_shape(tuple(sa), tuple(sb))
    except Exception as exc:
        return [type(exc).__name__, str(exc)[:2000], isinstance(exc, ValueError)]
    return ["returned", repr(result)[:200], False]
'''


def _names_shape(message: str, shape: tuple) -> bool:
    """Whether ``message`` mentions ``shape`` (as a tuple, a list, or its sizes in order)."""
    if str(tuple(shape)) in message or str(list(shape)) in message:
        return True
    numbers = [int(n) for n in re.findall(r"\d+", message)]
    it = iter(numbers)
    return all(any(n == s for n in it) for s in shape)


@check("broadcast_shape", points=1)
def test_broadcast_shape_raises_value_error_naming_shapes(student):
    for sa, sb in [((7, 3), (4,)), ((2, 3), (3, 2)), ((6, 5, 4), (9, 1))]:
        kind, message, is_value_error = student.run(_RAISES, "entry", list(sa), list(sb))
        if kind == "returned":
            fail(f"broadcast_shape({sa}, {sb}) should raise ValueError (sizes differ and neither is 1), "
                 f"but returned {message}.",
                 hint="the size check is missing: two sizes are compatible only if equal or one is 1")
        if not is_value_error:
            fail(f"broadcast_shape({sa}, {sb}) raised {kind}: {message!r}; expected a ValueError.")
        if not (_names_shape(message, sa) and _names_shape(message, sb)):
            fail(f"the ValueError for broadcast_shape({sa}, {sb}) should name both shapes, "
                 f"so that the error tells the user what went wrong; the message was {message!r}.")


# -- unbroadcast -------------------------------------------------------------------------------

def _expect_unbroadcast(student, grad, shape):
    got = student.call("unbroadcast", grad, shape)
    if shape == () and type(got) in (float, int):
        got = np.asarray(float(got))
    if shape == () and type(got) is np.ndarray and got.shape == (1,):
        # A 0-d array may arrive as shape (1,) (np.ascontiguousarray in the transport); accept it.
        got = got.reshape(())
    got = expect_array(got, shape=shape, dtype_kind="f",
                       name=f"unbroadcast(grad of shape {grad.shape}, {shape})")
    want = ref.unbroadcast(grad, shape)
    if not np.allclose(got, want, rtol=1e-9, atol=1e-9):
        fail(f"unbroadcast(grad of shape {grad.shape}, {shape}) is wrong.", got=got, expected=want,
             hint=diagnose(got, {
                 "only the leading axes were summed (the size-1 axes were not)":
                     lambda: ref.unbroadcast_leading_only(grad, shape),
                 "only the size-1 axes were summed (the leading axes were not)":
                     lambda: ref.unbroadcast_size1_only(grad, shape),
                 "averaged instead of summed (the VJP of a broadcast is a sum)":
                     lambda: ref.unbroadcast_mean(grad, shape),
             }))


@check("unbroadcast", points=1)
def test_unbroadcast_leading_axes(student):
    rng = np.random.default_rng(10)
    for gshape, shape in [((2, 3, 4), (3, 4)), ((5, 4), (4,)), ((2, 3, 4), (4,)), ((3, 2), (3, 2))]:
        _expect_unbroadcast(student, rng.standard_normal(gshape), shape)


@check("unbroadcast", points=1)
def test_unbroadcast_size_one_axes(student):
    rng = np.random.default_rng(11)
    for gshape, shape in [((3, 4), (3, 1)), ((3, 4), (1, 4)), ((3, 4), (1, 1)), ((2, 5, 3), (2, 1, 3))]:
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
    got = expect_array(student.call("linear_forward", Z, W, b), shape=(m, k), dtype_kind="f",
                       name=f"linear_forward for Z {Z.shape}, W {W.shape}, b {b.shape}")
    want = ref.linear_forward(Z, W, b)
    if not np.allclose(got, want, rtol=1e-9, atol=1e-9):
        fail(f"linear_forward is wrong for Z {Z.shape}, W {W.shape}, b {b.shape}.", got=got, expected=want,
             hint=diagnose(got, {
                 "the bias is missing": lambda: Z @ W,
                 "b was added as a column (b[:, None]): row i got b[i]; 1 b^T puts b in every ROW":
                     lambda: Z @ W + b[:, None],
                 "the sum of b was added to every entry": lambda: Z @ W + b.sum(),
                 "W was transposed": lambda: Z @ W.T + b,
             }))


@check("linear_forward", points=1)
def test_linear_forward_rectangular(student):
    _expect_linear(student, 5, 3, 4, seed=20)
    _expect_linear(student, 2, 6, 7, seed=21)


@check("linear_forward", points=1)
def test_linear_forward_edge_shapes(student):
    for m, n, k, seed in [(1, 3, 2, 22), (4, 4, 4, 23), (3, 1, 1, 24), (6, 2, 6, 25), (1, 1, 1, 26)]:
        _expect_linear(student, m, n, k, seed)
