"""Conformance suite for dlkit backends: every Backend method against plain numpy.

Parametrized over
* ``numpy``    -- the reference backend (always runs);
* ``cuda-sim`` -- the real ``CudaBackend`` Python code (views, strides, Layout packing,
  reduction plans, matmul strides, kernel names and argument formats) on a simulated driver
  whose "kernels" are numpy re-implementations of kernels/*.cu (tests/cudasim.py);
* ``cuda-emu`` -- the same backend code launching the real kernels/*.cu, compiled for the CPU
  by tests/cudaemu: checks the CUDA C's values, bounds (guard pages) and barriers; skipped
  with the reason when there is no C++ compiler;
* ``cuda``     -- the real GPU backend, skipped with the reason when no device is usable.

Sizes 1, 17, 1000 and 1025 (around the 256-thread block and 1024-element boundaries),
broadcast, transposed and sliced inputs; float32 tolerances.
"""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from dlkit.backend import BackendUnavailable
from dlkit.backend import cuda as cuda_mod
from dlkit.backend.numpy_backend import NumpyBackend
from tests.cudaemu import EmulatorUnavailable
from tests.cudasim import make_emu_backend, make_sim_backend

SIZES = (1, 17, 1000, 1025)
RTOL, ATOL = 2e-5, 1e-6


# =======================================================================================
# Fixtures and helpers
# =======================================================================================
@pytest.fixture(params=["numpy", "cuda-sim", "cuda-emu", "cuda"])
def be(request):
    if request.param == "numpy":
        return NumpyBackend()
    if request.param == "cuda-sim":
        return make_sim_backend()
    if request.param == "cuda-emu":
        try:
            return make_emu_backend()
        except EmulatorUnavailable as exc:
            pytest.skip(f"CUDA emulator unavailable: {exc}")
    try:
        return cuda_mod.create()
    except BackendUnavailable as exc:
        pytest.skip(f"no CUDA device: {exc}")


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def put(be, x: np.ndarray):
    x = np.asarray(x)
    return be.array(x, x.dtype)


def get(be, a) -> np.ndarray:
    return np.array(be.to_numpy(a))


def close(be, a, expected, rtol: float = RTOL, atol: float = ATOL) -> None:
    got = get(be, a)
    expected = np.asarray(expected)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    if expected.dtype.kind in "biu":
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)


def layouts(be, x: np.ndarray):
    """(name, backend array, numpy twin) for x itself, its transpose and a strided slice."""
    yield "contiguous", put(be, x), x
    if x.ndim >= 2:
        xt = np.ascontiguousarray(x.T)
        yield "transposed", be.transpose(put(be, xt)), xt.T
        big = np.concatenate([x, x[::-1]], axis=-1)
        yield "sliced", be.getitem(put(be, big), (Ellipsis, slice(None, None, 2))), big[..., ::2]
    else:
        big = np.repeat(x, 3)[::-1].copy()
        yield "sliced", be.getitem(put(be, big), slice(None, None, -3)), big[::-3]


# =======================================================================================
# Creation and transfer
# =======================================================================================
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "bool"])
@pytest.mark.parametrize("n", SIZES)
def test_array_roundtrip(be, dtype, n):
    x = (rng(n).standard_normal((n, 3)) * 5).astype(dtype)
    a = be.array(x, dtype)
    assert a.shape == (n, 3) and a.dtype == np.dtype(dtype) and a.ndim == 2 and a.size == 3 * n
    close(be, a, x)


def test_array_from_list_and_scalar(be):
    close(be, be.array([[1, 2], [3, 4]], "float32"), np.array([[1, 2], [3, 4]], np.float32))
    close(be, be.array(2.5, "float64"), np.array(2.5))


@pytest.mark.parametrize("shape", [(), (1,), (17,), (4, 1025)])
def test_zeros_ones_full(be, shape):
    close(be, be.zeros(shape, "float32"), np.zeros(shape, np.float32))
    close(be, be.ones(shape, "float64"), np.ones(shape))
    close(be, be.full(shape, -1.5, "float32"), np.full(shape, -1.5, np.float32))
    close(be, be.full(shape, 7, "int64"), np.full(shape, 7, np.int64))


@pytest.mark.parametrize("src", ["float32", "float64", "int64", "bool"])
@pytest.mark.parametrize("dst", ["float32", "float64", "int64", "bool"])
def test_astype(be, src, dst):
    x = np.array([-2.7, -1, 0, 0.5, 3.9, 1e3], dtype=np.float64).astype(src)
    close(be, be.astype(put(be, x), dst), x.astype(dst))


def test_astype_of_transposed_view(be):
    x = rng(1).standard_normal((17, 5)).astype(np.float32)
    close(be, be.astype(be.transpose(put(be, x)), "float64"), x.T.astype(np.float64))


def test_copy_is_independent(be):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    a = put(be, x)
    c = be.copy(a)
    be.assign(c, np.zeros((2, 3), np.float32))
    close(be, a, x)
    close(be, c, np.zeros((2, 3), np.float32))


def test_assign_from_host_device_and_into_view(be):
    a = be.zeros((3, 4), "float32")
    be.assign(a, np.arange(12, dtype=np.float64).reshape(3, 4))      # host, cast to float32
    close(be, a, np.arange(12, dtype=np.float32).reshape(3, 4))
    be.assign(a, put(be, np.ones((3, 4), np.float32)))               # device
    close(be, a, np.ones((3, 4), np.float32))
    view = be.getitem(a, (slice(None), slice(1, None, 2)))            # columns 1 and 3
    be.assign(view, np.full((3, 2), 5, np.float32))
    expected = np.ones((3, 4), np.float32)
    expected[:, 1::2] = 5
    close(be, a, expected)


def test_assign_shape_mismatch(be):
    a = be.zeros((3, 4), "float32")
    with pytest.raises(ValueError, match=r"assign: destination shape \(3, 4\) != source shape \(4, 3\)"):
        be.assign(a, np.zeros((4, 3), np.float32))


# =======================================================================================
# Movement
# =======================================================================================
@pytest.mark.parametrize("shape,new", [((2, 3, 4), (6, 4)), ((2, 3, 4), (4, -1)),
                                       ((12,), (3, 1, 4)), ((1025,), (5, 205)), ((1,), ())])
def test_reshape(be, shape, new):
    x = rng(2).standard_normal(shape).astype(np.float32)
    close(be, be.reshape(put(be, x), new), x.reshape(new))


def test_reshape_of_transposed_needs_a_copy(be):
    x = rng(3).standard_normal((17, 6)).astype(np.float32)
    t = be.transpose(put(be, x))
    close(be, be.reshape(t, (6 * 17,)), x.T.reshape(-1))
    close(be, be.reshape(t, (3, 2, 17)), x.T.reshape(3, 2, 17))


@pytest.mark.parametrize("axes", [None, (1, 0, 2), (2, 0, 1), (-1, 0, 1)])
def test_transpose(be, axes):
    x = rng(4).standard_normal((3, 17, 5)).astype(np.float32)
    close(be, be.transpose(put(be, x), axes), x.transpose(axes))


@pytest.mark.parametrize("shape,target", [((1,), (17,)), ((17, 1), (17, 1025)),
                                          ((5,), (3, 4, 5)), ((), (2, 2))])
def test_broadcast_to(be, shape, target):
    x = rng(5).standard_normal(shape).astype(np.float32)
    close(be, be.broadcast_to(put(be, x), target), np.broadcast_to(x, target))


INDICES = [3, -1, (slice(None), 2), (slice(1, None, 2), slice(None, None, -1)),
           (None, Ellipsis, 0), (Ellipsis, slice(2, 5)), (slice(7, 2, -2), None, slice(None)),
           (2, slice(0, 0))]


@pytest.mark.parametrize("index", INDICES, ids=str)
def test_getitem(be, index):
    x = rng(6).standard_normal((9, 8)).astype(np.float32)
    close(be, be.getitem(put(be, x), index), x[index])


@pytest.mark.parametrize("index", INDICES, ids=str)
def test_getitem_backward(be, index):
    x = rng(7).standard_normal((9, 8)).astype(np.float32)
    g = (np.arange(x[index].size, dtype=np.float32) + 1).reshape(x[index].shape)
    expected = np.zeros((9, 8), np.float32)
    expected[index] = g
    close(be, be.getitem_backward(put(be, g), (9, 8), index), expected)


def test_getitem_of_a_view(be):
    x = rng(8).standard_normal((6, 10)).astype(np.float32)
    t = be.transpose(put(be, x))
    close(be, be.getitem(be.getitem(t, slice(1, None, 3)), (slice(None), -2)), x.T[1::3][:, -2])


@pytest.mark.parametrize("axis", [0, 1, -1, 2])
def test_stack(be, axis):
    xs = [rng(i).standard_normal((4, 17)).astype(np.float32) for i in range(3)]
    close(be, be.stack([put(be, x) for x in xs], axis), np.stack(xs, axis))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate(be, axis):
    shapes = [(3, 5, 2), (3, 5, 2), (3, 5, 2)]
    sizes = [1, 17, 4]
    xs = []
    for i, (s, k) in enumerate(zip(shapes, sizes)):
        s = list(s)
        s[axis] = k
        xs.append(rng(i).standard_normal(s).astype(np.float32))
    arrays = [put(be, x) for x in xs]
    arrays[1] = be.transpose(put(be, np.ascontiguousarray(xs[1].T)))   # a non-contiguous input
    close(be, be.concatenate(arrays, axis), np.concatenate(xs, axis))


# =======================================================================================
# Element-wise
# =======================================================================================
UNARY = {"neg": np.negative, "exp": np.exp, "tanh": np.tanh, "relu": lambda x: np.maximum(x, 0),
         "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "log": np.log, "sqrt": np.sqrt}


@pytest.mark.parametrize("op", sorted(UNARY))
@pytest.mark.parametrize("n", SIZES)
def test_unary(be, op, n):
    x = rng(n).standard_normal((n, 2)).astype(np.float32) * 3
    if op in ("log", "sqrt"):
        x = np.abs(x) + 0.1
    for name, a, xx in layouts(be, x):
        close(be, getattr(be, op)(a), UNARY[op](xx.astype(np.float64)).astype(np.float32))


def test_unary_float64(be):
    x = np.linspace(-3, 3, 17)
    close(be, be.tanh(put(be, x)), np.tanh(x), rtol=1e-12, atol=1e-14)
    close(be, be.sigmoid(put(be, x)), 1 / (1 + np.exp(-x)), rtol=1e-12, atol=1e-14)


def test_sigmoid_extremes(be):
    x = np.array([-100, -30, 0, 30, 100], np.float32)
    close(be, be.sigmoid(put(be, x)), np.array([0, 9.357623e-14, 0.5, 1, 1], np.float32), atol=1e-7)


BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
          "maximum": np.maximum}
BROADCASTS = [((1,), (1,)), ((17,), (17,)), ((1000,), (1,)), ((1025,), ()), ((17, 1), (1, 33)),
              ((4, 1, 5), (3, 1)), ((2, 3, 4, 5), (5,))]


@pytest.mark.parametrize("op", sorted(BINARY))
@pytest.mark.parametrize("sa,sb", BROADCASTS, ids=str)
def test_binary_broadcast(be, op, sa, sb):
    x = rng(1).standard_normal(sa).astype(np.float32)
    y = rng(2).standard_normal(sb).astype(np.float32) + 3
    close(be, getattr(be, op)(put(be, x), put(be, y)), BINARY[op](x, y))


@pytest.mark.parametrize("op", sorted(BINARY))
def test_binary_strided_operands(be, op):
    x = rng(3).standard_normal((17, 33)).astype(np.float32)
    y = rng(4).standard_normal((33, 17)).astype(np.float32) + 3
    for (_, a, xa), (_, b, yb) in zip(layouts(be, x), layouts(be, y.T.copy())):
        close(be, getattr(be, op)(a, b), BINARY[op](xa, yb))


@pytest.mark.parametrize("op", sorted(BINARY))
def test_binary_with_scalar(be, op):
    x = rng(5).standard_normal((1025,)).astype(np.float32) + 3
    a = put(be, x)
    close(be, getattr(be, op)(a, 2.5), BINARY[op](x, np.float32(2.5)))
    close(be, getattr(be, op)(2.5, a), BINARY[op](np.float32(2.5), x))


def test_binary_keeps_float32_with_python_scalar(be):
    a = be.mul(put(be, np.ones(3, np.float32)), 0.1)
    assert a.dtype == np.float32


@pytest.mark.parametrize("p", [2, 3, 0.5, -1.0])
def test_power(be, p):
    x = np.abs(rng(6).standard_normal((17, 3)).astype(np.float32)) + 0.5
    close(be, be.power(put(be, x), p), np.power(x, np.float32(p)), rtol=1e-5)


CMP = {"equal": np.equal, "not_equal": np.not_equal, "greater": np.greater,
       "greater_equal": np.greater_equal, "less": np.less, "less_equal": np.less_equal}


@pytest.mark.parametrize("op", sorted(CMP))
def test_comparisons(be, op):
    x = rng(7).integers(-2, 3, (17, 5)).astype(np.float32)
    y = rng(8).integers(-2, 3, (5,)).astype(np.float32)
    close(be, getattr(be, op)(put(be, x), put(be, y)), CMP[op](x, y))
    close(be, getattr(be, op)(put(be, x), 0.0), CMP[op](x, 0.0))
    labels = np.array([0, 3, 2, 2], np.int64)                  # accuracy: argmax == labels
    close(be, getattr(be, op)(put(be, labels), put(be, labels[::-1].copy())), CMP[op](labels, labels[::-1]))


def test_where(be):
    x = rng(9).standard_normal((17, 33)).astype(np.float32)
    y = rng(10).standard_normal((33,)).astype(np.float32)
    cond = x > 0
    close(be, be.where(put(be, cond), put(be, x), put(be, y)), np.where(cond, x, y))
    close(be, be.where(put(be, cond), put(be, x), 0.0), np.where(cond, x, np.float32(0)))
    t = be.transpose(put(be, np.ascontiguousarray(cond.T)))
    close(be, be.where(t, put(be, x), put(be, y)), np.where(cond, x, y))


def test_nan_propagation(be):
    x = np.array([1.0, np.nan, -1.0], np.float32)
    close(be, be.maximum(put(be, x), 0.0), np.maximum(x, 0))
    close(be, be.relu(put(be, x)), np.maximum(x, 0))
    close(be, be.max(put(be, x)), np.max(x))


# =======================================================================================
# Reductions
# =======================================================================================
REDUCE_CASES = [((1,), None), ((17,), 0), ((1000,), None), ((1025,), -1), ((100_003,), None),
                ((17, 1025), 0), ((17, 1025), 1), ((1000, 17), 0), ((3, 4, 5), (0, 2)),
                ((8, 50, 7), 1), ((64, 600), 0), ((2, 3, 4, 5), (1, 2)), ((5, 6), ())]


@pytest.mark.parametrize("op", ["sum", "max"])
@pytest.mark.parametrize("shape,axis", REDUCE_CASES, ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions(be, op, shape, axis, keepdims):
    x = rng(len(shape)).standard_normal(shape).astype(np.float32)
    ref = getattr(np, op)(x.astype(np.float64), axis=axis, keepdims=keepdims).astype(np.float32)
    scale = np.sqrt(x.shape[0] if x.ndim else 1)
    close(be, getattr(be, op)(put(be, x), axis=axis, keepdims=keepdims), ref, rtol=1e-4,
          atol=1e-5 * scale * (1 if op == "max" else np.sqrt(x.size)))


@pytest.mark.parametrize("op", ["sum", "max"])
def test_reductions_on_views(be, op):
    x = rng(11).standard_normal((17, 33)).astype(np.float32)
    for name, a, xx in layouts(be, x):
        for axis in (None, 0, 1):
            close(be, getattr(be, op)(a, axis=axis), getattr(np, op)(xx, axis=axis), rtol=1e-4,
                  atol=1e-5)


def test_sum_of_int_and_bool(be):
    labels = np.array([[1, 2, 3], [4, 5, 6]], np.int64)
    close(be, be.sum(put(be, labels), axis=0), labels.sum(axis=0))
    mask = np.array([True, False, True, True])
    close(be, be.sum(put(be, mask)), mask.sum())


def test_sum_float64(be):
    x = rng(12).standard_normal(100_003)
    close(be, be.sum(put(be, x)), x.sum(), rtol=1e-10)


@pytest.mark.parametrize("shape,axis", [((1025,), None), ((17, 33), 0), ((17, 33), 1),
                                        ((3, 4, 5), 1), ((3, 4, 5), None)], ids=str)
def test_argmax(be, shape, axis):
    x = rng(13).integers(0, 4, shape).astype(np.float32)     # many ties: the first one wins
    close(be, be.argmax(put(be, x), axis), np.argmax(x, axis))
    t = be.transpose(put(be, np.ascontiguousarray(x.T)))
    close(be, be.argmax(t, axis), np.argmax(x, axis))


# =======================================================================================
# Matmul
# =======================================================================================
MATMUL_SHAPES = [((1, 1), (1, 1)), ((17, 33), (33, 5)), ((130, 70), (70, 129)),
                 ((64, 64), (64, 64)), ((1, 1025), (1025, 1)), ((3, 17, 8), (8, 5)),
                 ((2, 1, 4, 5), (3, 5, 6)), ((7,), (7, 3)), ((4, 7), (7,)), ((7,), (7,)),
                 ((5, 0), (0, 3))]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=str)
def test_matmul(be, sa, sb):
    a = rng(1).standard_normal(sa).astype(np.float32)
    b = rng(2).standard_normal(sb).astype(np.float32)
    ref = np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.float32)
    close(be, be.matmul(put(be, a), put(be, b)), ref, rtol=1e-4, atol=1e-4)


def test_matmul_transposed_operands(be):
    a = rng(3).standard_normal((33, 130)).astype(np.float32)    # used as a.T: (130, 33)
    b = rng(4).standard_normal((129, 33)).astype(np.float32)    # used as b.T: (33, 129)
    ref = (a.T.astype(np.float64) @ b.T.astype(np.float64)).astype(np.float32)
    close(be, be.matmul(be.transpose(put(be, a)), be.transpose(put(be, b))), ref, rtol=1e-4, atol=1e-4)


def test_matmul_sliced_operand(be):
    a = rng(5).standard_normal((40, 30)).astype(np.float32)
    b = rng(6).standard_normal((15, 8)).astype(np.float32)
    ref = (a[::2, ::2].astype(np.float64) @ b).astype(np.float32)
    close(be, be.matmul(be.getitem(put(be, a), (slice(None, None, 2), slice(None, None, 2))),
                        put(be, b)), ref, rtol=1e-4, atol=1e-4)


def test_matmul_float64(be):
    a = rng(7).standard_normal((65, 31))
    b = rng(8).standard_normal((31, 66))
    close(be, be.matmul(put(be, a), put(be, b)), a @ b, rtol=1e-12, atol=1e-12)


# =======================================================================================
# Fused numerics
# =======================================================================================
def _lse(x: np.ndarray, axis) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(x - m), axis=axis))


@pytest.mark.parametrize("shape,axis", [((1, 1), 1), ((17, 10), 1), ((17, 10), 0),
                                        ((3, 1025), -1), ((2, 3, 4), (0, 2))], ids=str)
def test_logsumexp(be, shape, axis):
    x = (rng(14).standard_normal(shape) * 10).astype(np.float32)
    ref = _lse(x.astype(np.float64), axis).astype(np.float32)
    close(be, be.logsumexp(put(be, x), axis), ref, rtol=1e-5)
    close(be, be.logsumexp(put(be, x), axis, keepdims=True),
          np.expand_dims(ref, axis) if isinstance(axis, int) else np.expand_dims(ref, axis), rtol=1e-5)


def test_logsumexp_large_and_infinite(be):
    x = np.array([[1000, 1000], [-np.inf, -np.inf], [-np.inf, 0]], np.float32)
    close(be, be.logsumexp(put(be, x), 1), np.array([1000 + np.log(2), -np.inf, 0], np.float32))


@pytest.mark.parametrize("shape,axis", [((17, 10), -1), ((17, 10), 0), ((3, 4, 1025), 1),
                                        ((3, 4, 5), 0)], ids=str)   # (1, 2, 0) is not its own inverse
def test_log_softmax(be, shape, axis):
    x = (rng(15).standard_normal(shape) * 5).astype(np.float32)
    xx = x.astype(np.float64)
    ref = (xx - np.expand_dims(_lse(xx, axis), axis)).astype(np.float32)
    close(be, be.log_softmax(put(be, x), axis), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("m,k", [(1, 1), (17, 10), (1000, 10), (3, 1025)])
def test_softmax_cross_entropy(be, m, k):
    logits = (rng(16).standard_normal((m, k)) * 3).astype(np.float32)
    labels = rng(17).integers(0, k, m).astype(np.int64)
    x = logits.astype(np.float64)
    lse = _lse(x, 1)
    loss = np.mean(lse - x[np.arange(m), labels])
    p = np.exp(x - lse[:, None])
    p[np.arange(m), labels] -= 1
    got_loss, got_d = be.softmax_cross_entropy(put(be, logits), put(be, labels))
    close(be, got_loss, np.array(loss, np.float32), rtol=1e-5)
    close(be, got_d, (p / m).astype(np.float32), rtol=1e-4, atol=1e-7)


def test_softmax_cross_entropy_rejects_bad_labels(be):
    logits = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\); got values from 0 to 4"):
        be.softmax_cross_entropy(put(be, logits), put(be, np.array([0, 4, 1], np.int64)))


def test_one_hot(be):
    labels = np.array([[0, 3], [2, 5]], np.int64)      # 5 is out of range: a row of zeros
    ref = np.equal(labels[..., None], np.arange(4)).astype(np.float32)
    close(be, be.one_hot(put(be, labels), 4, np.dtype("float32")), ref)


# =======================================================================================
# Fused optimizer steps: RNG-free inputs, PyTorch's formulas written out in float64
# =======================================================================================
def _opt_inputs(n: int = 1025):
    p = np.linspace(-1, 1, n)
    g = np.linspace(0.5, -0.3, n) ** 3
    return p, g


def _sgd_ref(p, g, buf, lr, momentum, dampening, wd, nesterov, first):
    d = g + wd * p
    if momentum:
        buf = d.copy() if first else momentum * buf + (1 - dampening) * d
        d = d + momentum * buf if nesterov else buf
    return p - lr * d, buf


@pytest.mark.parametrize("momentum,dampening,wd,nesterov",
                         [(0, 0, 0, False), (0, 0, 0.01, False), (0.9, 0, 0, False),
                          (0.9, 0.1, 0.01, False), (0.9, 0, 0.05, True)])
def test_sgd_step(be, momentum, dampening, wd, nesterov):
    p, g = _opt_inputs()
    param = put(be, p.astype(np.float32))
    buf = be.zeros(p.shape, "float32")
    ref_p, ref_buf = p.copy(), np.zeros_like(p)
    for step in range(3):
        grad = g * (step + 1)
        be.sgd_step(param, put(be, grad.astype(np.float32)), buf, lr=0.1, momentum=momentum,
                    dampening=dampening, weight_decay=wd, nesterov=nesterov, first_step=step == 0)
        ref_p, ref_buf = _sgd_ref(ref_p, grad, ref_buf, 0.1, momentum, dampening, wd, nesterov, step == 0)
        close(be, param, ref_p.astype(np.float32), rtol=1e-5, atol=1e-6)
        if momentum:
            close(be, buf, ref_buf.astype(np.float32), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("wd,decoupled,bias_correction",
                         [(0, False, True), (0.01, False, True), (0.01, True, True),
                          (0, False, False), (0.1, True, False)])
def test_adam_step(be, wd, decoupled, bias_correction):
    p, g = _opt_inputs()
    param = put(be, p.astype(np.float32))
    m, v = be.zeros(p.shape, "float32"), be.zeros(p.shape, "float32")
    rp, rm, rv = p.copy(), np.zeros_like(p), np.zeros_like(p)
    lr, b1, b2, eps = 1e-2, 0.9, 0.999, 1e-8
    for step in range(1, 4):
        grad = g * step
        be.adam_step(param, put(be, grad.astype(np.float32)), m, v, lr=lr, beta1=b1, beta2=b2,
                     eps=eps, weight_decay=wd, step=step, bias_correction=bias_correction,
                     decoupled=decoupled)
        gg = grad
        if wd and decoupled:
            rp = rp * (1 - lr * wd)
        elif wd:
            gg = grad + wd * rp
        rm = b1 * rm + (1 - b1) * gg
        rv = b2 * rv + (1 - b2) * gg * gg
        if bias_correction:
            bc1, bc2 = 1 - b1 ** step, 1 - b2 ** step
        else:
            bc1, bc2 = 1.0, 1.0
        rp = rp - (lr / bc1) * rm / (np.sqrt(rv) / math.sqrt(bc2) + eps)
        close(be, param, rp.astype(np.float32), rtol=1e-5, atol=1e-6)
        close(be, m, rm.astype(np.float32), rtol=1e-5, atol=1e-7)
        close(be, v, rv.astype(np.float32), rtol=1e-5, atol=1e-9)


def test_optimizer_state_stays_on_the_backend(be):
    """Fused steps mutate their arguments in place and return None."""
    param = put(be, np.ones(17, np.float32))
    assert be.sgd_step(param, put(be, np.ones(17, np.float32)), None, lr=0.5, momentum=0,
                       dampening=0, weight_decay=0, nesterov=False, first_step=True) is None
    close(be, param, np.full(17, 0.5, np.float32))


# =======================================================================================
# A whole MLP training step (forward, backward by hand, SGD) matches numpy end to end
# =======================================================================================
def test_mlp_step_matches_numpy(be):
    ref = NumpyBackend()
    r = rng(20)
    X = r.standard_normal((64, 20)).astype(np.float32)
    y = r.integers(0, 10, 64).astype(np.int64)
    W1 = (r.standard_normal((20, 32)) * 0.2).astype(np.float32)
    W2 = (r.standard_normal((32, 10)) * 0.2).astype(np.float32)
    b1 = np.zeros(32, np.float32)
    results = []
    for bk in (be, ref):
        w1, w2, bb = put(bk, W1), put(bk, W2), put(bk, b1)
        x, labels = put(bk, X), put(bk, y)
        z1 = bk.add(bk.matmul(x, w1), bb)
        h = bk.relu(z1)
        loss, dz2 = bk.softmax_cross_entropy(bk.matmul(h, w2), labels)
        gw2 = bk.matmul(bk.transpose(h), dz2)
        dh = bk.matmul(dz2, bk.transpose(w2))
        dz1 = bk.where(bk.greater(z1, 0.0), dh, 0.0)
        gw1 = bk.matmul(bk.transpose(x), dz1)
        gb1 = bk.sum(dz1, axis=0)
        for p, gr in ((w1, gw1), (w2, gw2), (bb, gb1)):
            bk.sgd_step(p, gr, None, lr=0.1, momentum=0, dampening=0, weight_decay=0,
                        nesterov=False, first_step=True)
        results.append([np.array(bk.to_numpy(a)) for a in (loss, w1, w2, bb)])
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


# =======================================================================================
# benchmarks/kernels.py runs end to end (tiny sizes, on the simulated and emulated drivers)
# =======================================================================================
@pytest.mark.parametrize("device", ["cuda-sim", "cuda-emu"])
def test_kernel_benchmark_smoke(monkeypatch, capsys, device):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "kernels.py"
    spec = importlib.util.spec_from_file_location("bench_kernels", path)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_kernels", bench)   # dataclasses look the module up
    spec.loader.exec_module(bench)
    monkeypatch.setattr(bench, "cublas_matmul", lambda: None)
    sizes = bench.Sizes(matmul=(16, 40), stream_mib=1, rows=64, batch=32, repeat=2)
    if device == "cuda-sim":
        backend = make_sim_backend()
    else:
        try:
            backend = make_emu_backend()
        except EmulatorUnavailable as exc:
            pytest.skip(f"CUDA emulator unavailable: {exc}")
    assert bench.main([], backend=backend, sizes=sizes) == 0
    out = capsys.readouterr().out
    for heading in ("matmul float32", "bandwidth-bound kernels", "adam step", "MLP 784-256-128-10",
                    "targets"):
        assert heading in out, out


# =======================================================================================
# The CUDA backend under dlkit's Tensor layer: nn + optim train identically to numpy
# =======================================================================================
@pytest.mark.parametrize("make_opt", [lambda ps: __import__("dlkit").optim.Adam(ps, lr=1e-2),
                                      lambda ps: __import__("dlkit").optim.SGD(
                                          ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)],
                         ids=["adam", "sgd-nesterov"])
def test_tensor_training_matches_numpy(be, make_opt, monkeypatch):
    import dlkit
    import dlkit.backend as backend_mod
    from dlkit import nn

    r = rng(30)
    X, y = r.standard_normal((64, 20)).astype(np.float32), r.integers(0, 5, 64)
    histories = []
    for backend in (be, NumpyBackend()):
        monkeypatch.setattr(backend_mod, "_current", backend)
        model = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 5))
        for i, p in enumerate(model.parameters()):   # the same weights on both backends
            w = np.linspace(-0.5, 0.5, int(np.prod(p.shape))).reshape(p.shape) * (i + 1)
            p.data = dlkit.tensor(w, dtype="float32")
        opt = make_opt(model.parameters())
        loss_fn = nn.CrossEntropyLoss()
        xt, yt = dlkit.tensor(X), dlkit.tensor(y, dtype="int64")
        losses = []
        for _ in range(4):
            opt.zero_grad()
            loss = loss_fn(model(xt), yt)
            loss.backward()
            opt.step()
            losses.append(float(loss.numpy()))
        histories.append((losses, [p.numpy() for p in model.parameters()]))
    (l1, p1), (l2, p2) = histories
    np.testing.assert_allclose(l1, l2, rtol=1e-5)
    for a, b in zip(p1, p2):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
