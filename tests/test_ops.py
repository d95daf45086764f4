"""Every op: forward against numpy, VJP against central differences (dlkit.gradcheck).

Shapes and broadcasting patterns come from hypothesis strategies; values from seeded
numpy Generators, kept away from kinks (relu, max) and poles (log, division).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dlkit
from dlkit import ops

pytestmark = pytest.mark.usefixtures("numpy_backend")
FAST = settings(max_examples=15, deadline=None)

shapes = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)
seeds = st.integers(0, 2**31 - 1)


@st.composite
def broadcastable_pairs(draw):
    """Two shapes that broadcast: the second drops leading axes and sets some axes to 1."""
    full = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple))
    drop = draw(st.integers(0, len(full)))
    ones = draw(st.lists(st.booleans(), min_size=len(full) - drop, max_size=len(full) - drop))
    small = tuple(1 if o else n for o, n in zip(ones, full[drop:]))
    return (full, small) if draw(st.booleans()) else (small, full)


def values(seed, shape, away_from_zero=False, positive=False):
    x = np.asarray(np.random.default_rng(seed).standard_normal(shape))
    if away_from_zero or positive:
        x = np.where(x < 0, -1.0, 1.0) * (0.2 + np.abs(x))   # |x| >= 0.2: no kink or pole
    return np.abs(x) if positive else x


def check(fn, *inputs, **kw):
    result = dlkit.gradcheck(fn, *inputs, **kw)
    assert result, repr(result)


def t64(x, requires_grad=False):
    return dlkit.tensor(x, dtype="float64", requires_grad=requires_grad)


# --------------------------------------------------------------------------- elementwise
UNARY = {
    "exp": (ops.exp, np.exp, {}),
    "log": (ops.log, np.log, {"positive": True}),
    "relu": (ops.relu, lambda x: np.maximum(x, 0), {"away_from_zero": True}),
    "tanh": (ops.tanh, np.tanh, {}),
    "sigmoid": (ops.sigmoid, lambda x: 1 / (1 + np.exp(-x)), {}),
    "neg": (lambda t: -t, np.negative, {}),
    "square": (lambda t: t ** 2, np.square, {}),
    "cube": (lambda t: t ** 3, lambda x: x ** 3, {}),
    "sqrt": (lambda t: t ** 0.5, np.sqrt, {"positive": True}),
    "reciprocal": (lambda t: 1 / t, lambda x: 1 / x, {"away_from_zero": True}),
    "scalar_mix": (lambda t: 1.0 - t * 2.0 + 3 - t / 4.0, lambda x: 1 - 2 * x + 3 - x / 4, {}),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@FAST
@given(shape=shapes, seed=seeds)
def test_unary(name, shape, seed):
    fn, ref, kw = UNARY[name]
    x = values(seed, shape, **kw)
    np.testing.assert_allclose(fn(t64(x)).numpy(), ref(x), rtol=1e-12, atol=1e-300)
    check(fn, x)


BINARY = {
    "add": (lambda a, b: a + b, np.add, {}),
    "sub": (lambda a, b: a - b, np.subtract, {}),
    "mul": (lambda a, b: a * b, np.multiply, {}),
    "div": (lambda a, b: a / b, np.divide, {"away_from_zero": True}),
    "maximum": (ops.maximum, np.maximum, {}),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@FAST
@given(pair=broadcastable_pairs(), seed=seeds)
def test_binary_broadcasting(name, pair, seed):
    fn, ref, kw = BINARY[name]
    a = values(seed, pair[0])
    b = values(seed + 1, pair[1], **kw)
    out = fn(t64(a), t64(b))
    assert out.shape == np.broadcast_shapes(*pair)
    np.testing.assert_allclose(out.numpy(), ref(a, b), rtol=1e-12)
    check(fn, a, b)


@FAST
@given(pair=broadcastable_pairs(), seed=seeds)
def test_where_routes_gradient_and_not_cond(pair, seed):
    a, b = values(seed, pair[0]), values(seed + 1, pair[1])
    cond = np.random.default_rng(seed).random(pair[1]) < 0.5
    out = ops.where(dlkit.tensor(cond, dtype="bool"), t64(a), t64(b))
    np.testing.assert_array_equal(out.numpy(), np.where(cond, a, b))
    check(lambda x, y: ops.where(dlkit.tensor(cond, dtype="bool"), x, y), a, b)


def test_maximum_with_scalar_and_ties_go_to_first():
    x = t64([-1.0, 0.5, 2.0], requires_grad=True)
    ops.maximum(x, 0.5).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 1, 1])


# --------------------------------------------------------------------------- reductions
@st.composite
def shape_and_axis(draw):
    shape = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple))
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        axis = None
    elif kind == "int":
        axis = draw(st.integers(-len(shape), len(shape) - 1))
    else:
        axis = tuple(draw(st.sets(st.integers(0, len(shape) - 1), min_size=1)))
    return shape, axis, draw(st.booleans())


REDUCTIONS = {
    "sum": (lambda t, ax, k: t.sum(axis=ax, keepdims=k), np.sum),
    "mean": (lambda t, ax, k: t.mean(axis=ax, keepdims=k), np.mean),
    "max": (lambda t, ax, k: t.max(axis=ax, keepdims=k), np.max),
    "logsumexp": (lambda t, ax, k: t.logsumexp(axis=ax, keepdims=k),
                  lambda x, axis, keepdims: np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@FAST
@given(case=shape_and_axis(), seed=seeds)
def test_reductions(name, case, seed):
    shape, axis, keepdims = case
    fn, ref = REDUCTIONS[name]
    x = values(seed, shape)
    out = fn(t64(x), axis, keepdims)
    np.testing.assert_allclose(out.numpy(), ref(x, axis=axis, keepdims=keepdims), rtol=1e-12)
    check(lambda t: fn(t, axis, keepdims), x)


def test_max_splits_gradient_between_ties():
    x = t64([[1.0, 3.0, 3.0], [0.0, -1.0, 2.0]], requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0.5, 0.5], [0, 0, 1]])


@pytest.mark.parametrize("op,ref", [
    (ops.softmax, lambda x, ax: np.exp(x) / np.exp(x).sum(axis=ax, keepdims=True)),
    (ops.log_softmax, lambda x, ax: x - np.log(np.exp(x).sum(axis=ax, keepdims=True))),
])
@FAST
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple), seed=seeds,
       data=st.data())
def test_softmax_family(op, ref, shape, seed, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = values(seed, shape)
    np.testing.assert_allclose(op(t64(x), axis).numpy(), ref(x, axis), rtol=1e-12, atol=1e-15)
    check(lambda t: op(t, axis), x)


# --------------------------------------------------------------------------- shapes
@FAST
@given(shape=shapes, seed=seeds, data=st.data())
def test_reshape_transpose(shape, seed, data):
    x = values(seed, shape)
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    np.testing.assert_array_equal(t64(x).transpose(perm).numpy(), x.transpose(perm))
    check(lambda t: t.transpose(perm) * 1.5, x)
    flat = (-1,) if shape else ()
    np.testing.assert_array_equal(t64(x).reshape(flat).numpy(), x.reshape(flat))
    check(lambda t: t.reshape(flat) * t.reshape(flat), x)


@FAST
@given(pair=broadcastable_pairs(), seed=seeds)
def test_broadcast_to_sums_back(pair, seed):
    small, big = sorted(pair, key=lambda s: (len(s), np.prod(s)))
    if np.broadcast_shapes(small, big) != big:
        small, big = big, small
    x = values(seed, small)
    np.testing.assert_array_equal(t64(x).broadcast_to(big).numpy(), np.broadcast_to(x, big))
    check(lambda t: t.broadcast_to(big) ** 2, x)


INDICES = [0, -1, (1, 2), slice(1, 3), (slice(None), slice(None, None, 2)), (Ellipsis, 1),
           (None, 0), (slice(None, None, -1), None, slice(1, None)), (1, Ellipsis, slice(0, 1))]


@pytest.mark.parametrize("index", INDICES, ids=repr)
def test_getitem(index):
    x = values(3, (3, 4, 2))
    np.testing.assert_array_equal(t64(x)[index].numpy(), x[index])
    check(lambda t: t[index] * 2.0, x)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_stack_and_concatenate(axis):
    a, b = values(1, (2, 3)), values(2, (2, 3))
    np.testing.assert_array_equal(dlkit.stack([t64(a), t64(b)], axis).numpy(), np.stack([a, b], axis))
    check(lambda x, y: dlkit.stack([x, y * y], axis=axis), a, b)
    c = values(3, (2, 5)) if axis != 0 else values(3, (4, 3))
    np.testing.assert_array_equal(dlkit.concatenate([t64(a), t64(c)], axis).numpy(),
                                  np.concatenate([a, c], axis))
    check(lambda x, y: dlkit.concatenate([x, y], axis=axis) ** 2, a, c)


# --------------------------------------------------------------------------- matmul
@st.composite
def matmul_shapes(draw):
    m, n, k = (draw(st.integers(1, 4)) for _ in range(3))
    batch = draw(st.lists(st.integers(1, 3), max_size=2).map(tuple))
    ones_a = draw(st.lists(st.booleans(), min_size=len(batch), max_size=len(batch)))
    a_batch = tuple(1 if o else n_ for o, n_ in zip(ones_a, batch))[draw(st.integers(0, len(batch))):]
    return a_batch + (m, n), batch + (n, k)


@FAST
@given(shapes_=matmul_shapes(), seed=seeds, swap=st.booleans())
def test_matmul_batched_broadcast(shapes_, seed, swap):
    sa, sb = shapes_
    a, b = values(seed, sa), values(seed + 1, sb)
    if swap:        # put the broadcast batch dims on the right operand instead
        a, b = np.swapaxes(b, -1, -2).copy(), np.swapaxes(a, -1, -2).copy()
    np.testing.assert_allclose((t64(a) @ t64(b)).numpy(), a @ b, rtol=1e-12)
    check(lambda x, y: x @ y, a, b)


@pytest.mark.parametrize("sa,sb", [((3,), (3, 2)), ((2, 3), (3,)), ((4,), (4,)), ((2, 2, 3), (3,))])
def test_matmul_with_vectors(sa, sb):
    a, b = values(1, sa), values(2, sb)
    out = t64(a) @ t64(b)
    assert out.shape == np.matmul(a, b).shape
    np.testing.assert_allclose(out.numpy(), np.matmul(a, b), rtol=1e-12)
    check(lambda x, y: x @ y, a, b)


# --------------------------------------------------------------------------- losses
def test_softmax_cross_entropy_value_and_gradient():
    rng = np.random.default_rng(4)
    z, y = rng.standard_normal((5, 3)), rng.integers(0, 3, size=5)
    labels = dlkit.tensor(y, dtype="int64")
    loss = ops.softmax_cross_entropy(t64(z), labels)
    direct = np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(5), y])
    assert loss.shape == () and loss.item() == pytest.approx(direct, rel=1e-12)
    check(lambda t: ops.softmax_cross_entropy(t, labels), z)
    # the fused gradient equals the composite definition's gradient
    x = t64(z, requires_grad=True)
    (g_fused,) = dlkit.grad(ops.softmax_cross_entropy(x, labels), [x])
    composite = -(ops.log_softmax(x, 1) * ops.one_hot(labels, 3, "float64")).sum(axis=1).mean()
    (g_comp,) = dlkit.grad(composite, [x])
    np.testing.assert_allclose(g_fused.numpy(), g_comp.numpy(), rtol=1e-12, atol=1e-15)


def test_softmax_cross_entropy_errors():
    z = dlkit.tensor(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"\(3,\).*\(4, 3\)"):
        ops.softmax_cross_entropy(z, dlkit.tensor([0, 1, 2], dtype="int64"))
    with pytest.raises(TypeError, match="integers"):
        ops.softmax_cross_entropy(z, dlkit.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match=r"\(4,\)"):
        ops.softmax_cross_entropy(dlkit.tensor(np.zeros(4)), dlkit.tensor([0], dtype="int64"))


def test_one_hot():
    out = ops.one_hot(dlkit.tensor([2, 0, 1], dtype="int64"), 4)
    assert out.dtype == np.float32 and not out.requires_grad
    np.testing.assert_array_equal(out.numpy(), np.eye(4)[[2, 0, 1]])


# --------------------------------------------------------------------------- comparisons
@pytest.mark.parametrize("op,ref", [
    (lambda a, b: a == b, np.equal), (lambda a, b: a != b, np.not_equal),
    (lambda a, b: a < b, np.less), (lambda a, b: a <= b, np.less_equal),
    (lambda a, b: a > b, np.greater), (lambda a, b: a >= b, np.greater_equal)])
def test_comparisons_are_bool_and_not_differentiable(op, ref):
    a = np.array([[1.0, 2.0, 3.0]])
    b = np.array([[2.0], [2.0]])
    x = dlkit.tensor(a, requires_grad=True)
    out = op(x, dlkit.tensor(b))
    assert out.dtype == np.bool_ and not out.requires_grad and out.op is None
    np.testing.assert_array_equal(out.numpy(), ref(a, b))
    np.testing.assert_array_equal(op(x, 2.0).numpy(), ref(a, 2.0))


# --------------------------------------------------------------------------- validation
def test_matmul_shape_error_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        dlkit.tensor(np.ones((2, 3))) @ dlkit.tensor(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"\(2, 2, 3\).*\(3, 3, 1\)"):
        dlkit.tensor(np.ones((2, 2, 3))) @ dlkit.tensor(np.ones((3, 3, 1)))


def test_broadcast_error_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
        dlkit.tensor(np.ones((2, 3))) + dlkit.tensor(np.ones(4))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        dlkit.tensor(np.ones((2, 3))).broadcast_to((3, 2))


def test_mixing_float32_and_float64_names_both_dtypes():
    a, b = dlkit.tensor([1.0]), dlkit.tensor([1.0], dtype="float64")
    with pytest.raises(TypeError, match="float32.*float64"):
        a * b
    with pytest.raises(TypeError, match="float64.*float32"):
        b @ dlkit.tensor([[1.0]])


def test_scalars_keep_dtype():
    x = dlkit.tensor([1.0, 2.0])
    for out in (x * 2.0, 1 - x, x ** 3, 2 / x, x + np.float64(1.5), np.float64(2) * x, x * 2):
        assert out.dtype == np.float32
    assert (np.ones(2) * x).dtype == np.float32          # ndarray on the left defers to Tensor


def test_int_and_bool_operands_take_the_float_dtype():
    x = dlkit.tensor([1.0, 2.0], requires_grad=True)
    mask = x > 1.5
    out = x * mask + dlkit.tensor([1, 2], dtype="int64")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.numpy(), [1.0, 4.0])


def test_indexing_errors():
    x = dlkit.tensor(np.ones((2, 3)))
    with pytest.raises(IndexError, match="out of bounds.*axis 1.*size 3"):
        x[0, 3]
    with pytest.raises(IndexError, match="too many"):
        x[0, 0, 0]
    with pytest.raises(TypeError, match="only ints, slices"):
        x[[0, 1]]


def test_reshape_stack_concat_errors():
    x = dlkit.tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 2\)"):
        x.reshape(4, 2)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        dlkit.stack([x, x.transpose()])
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 2\)"):
        dlkit.concatenate([x, dlkit.tensor(np.ones((2, 2)))], axis=0)
    with pytest.raises(ValueError, match="axis 2"):
        x.sum(axis=2)


# --------------------------------------------------------------------------- dlkit.shapes
def test_shape_rules_match_numpy():
    from dlkit import shapes
    for pair in [((3, 4), (4,)), ((2, 1, 3), (4, 1)), ((), (2,)), ((5,), (5,)), ((1,), (3, 1))]:
        assert shapes.broadcast_shapes(*pair) == np.broadcast_shapes(*pair)
        assert shapes.broadcast_shapes(*pair, what="add") == np.broadcast_shapes(*pair)
    with pytest.raises(ValueError, match="could not be broadcast"):
        shapes.broadcast_shapes((3,), (4,))
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4,\).*axis -1: 3 vs 4"):
        shapes.broadcast_shapes((2, 3), (4,), what="add")
    assert shapes.normalize_axes(None, 3) == (0, 1, 2)
    assert shapes.normalize_axes((-1, 0), 3, "sum") == (0, 2)
    with pytest.raises(np.exceptions.AxisError):
        shapes.normalize_axes(3, 3)
    with pytest.raises(ValueError, match="sum: axis 3 is out of range"):
        shapes.normalize_axes(3, 3, "sum")
    with pytest.raises(ValueError, match="repeated axis"):
        shapes.normalize_axes((0, -2), 2, "sum")
    assert shapes.resolve_shape(12, (3, -1)) == (3, 4) == np.empty(12).reshape(3, -1).shape
    with pytest.raises(ValueError, match="cannot reshape array of size 12"):
        shapes.resolve_shape(12, (5, -1))
    assert shapes.check_index((0, Ellipsis), (2, 3, 4)) == (0, slice(None), slice(None))
    assert shapes.check_permutation(None, 3, (1, 2, 3)) == (2, 1, 0)


def test_the_cuda_layout_uses_the_same_shape_rules():
    from dlkit import shapes
    from dlkit.backend import cuda_layout
    assert cuda_layout.broadcast_shapes is shapes.broadcast_shapes
    assert cuda_layout.normalize_axes is shapes.normalize_axes
    assert cuda_layout.resolve_shape is shapes.resolve_shape


def test_cross_entropy_of_the_student_kit_equals_the_fused_one():
    """The kit drops the fused pass (a WITHHELD region); what is left computes the same loss and,
    through the ops' own VJPs, the same gradient."""
    import types
    from pathlib import Path
    from autograder.kit import strip_withheld_regions
    source, _ = strip_withheld_regions(Path(ops.__file__).read_text(encoding="utf-8"), "ops.py")
    assert "SoftmaxCrossEntropy" not in source
    kit_ops = types.ModuleType("dlkit._kit_ops")
    kit_ops.__package__ = "dlkit"
    exec(compile(source, "kit ops.py", "exec"), kit_ops.__dict__)
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((6, 4)) * 3
    labels = rng.integers(0, 4, 6)
    grads = []
    for fn in (ops.softmax_cross_entropy, kit_ops.softmax_cross_entropy):
        z = dlkit.tensor(logits, requires_grad=True, dtype="float64")
        loss = fn(z, dlkit.tensor(labels, dtype="int64"))
        loss.backward()
        grads.append((loss.item(), z.grad.numpy()))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-12)
    np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-10, atol=1e-12)
