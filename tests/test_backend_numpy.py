"""NumpyBackend: fused numerics and optimizer steps against hand-derived values and formulas."""
from __future__ import annotations

import math

import numpy as np
import pytest

from dlkit.backend.base import Backend
from dlkit.backend.numpy_backend import NumpyBackend

B = NumpyBackend()


def test_every_interface_method_is_implemented():
    missing = [name for name, fn in vars(Backend).items()
               if callable(fn) and not name.startswith("_") and getattr(NumpyBackend, name) is fn]
    assert missing == []


# --------------------------------------------------------------------------- SGD
def sgd_run(steps, grads, p0, **kw):
    p = np.array(p0, dtype=np.float64)
    buf = np.zeros_like(p)
    out = []
    for t in range(steps):
        B.sgd_step(p, np.array(grads[t], dtype=np.float64), buf, first_step=(t == 0), **kw)
        out.append(p.copy())
    return out


def test_sgd_plain_is_p_minus_lr_g():
    (p1,) = sgd_run(1, [[1.0, -2.0]], [0.5, 0.5], lr=0.1, momentum=0, dampening=0,
                    weight_decay=0, nesterov=False)
    np.testing.assert_allclose(p1, [0.4, 0.7])


def test_sgd_momentum_hand_derived():
    # g = 1 every step, momentum 0.5, lr 0.1: buf = 1, 1.5, 1.75 -> p = -0.1, -0.25, -0.425
    ps = sgd_run(3, [[1.0]] * 3, [0.0], lr=0.1, momentum=0.5, dampening=0,
                 weight_decay=0, nesterov=False)
    np.testing.assert_allclose(np.ravel(ps), [-0.1, -0.25, -0.425])


def test_sgd_nesterov_hand_derived():
    # buf = 1, 1.5; d = g + 0.5 buf = 1.5, 1.75 -> p = -0.15, -0.325
    ps = sgd_run(2, [[1.0]] * 2, [0.0], lr=0.1, momentum=0.5, dampening=0,
                 weight_decay=0, nesterov=True)
    np.testing.assert_allclose(np.ravel(ps), [-0.15, -0.325])


def test_sgd_dampening_not_applied_on_first_step_and_weight_decay():
    # wd 0.5 at p = 2: d = 1 + 1 = 2; first step buf = d = 2 (no dampening) -> p = 2 - 0.1*2 = 1.8
    # second: d = 1 + 0.9 = 1.9; buf = 0.5*2 + (1-0.25)*1.9 = 2.425 -> p = 1.8 - 0.2425 = 1.5575
    ps = sgd_run(2, [[1.0]] * 2, [2.0], lr=0.1, momentum=0.5, dampening=0.25,
                 weight_decay=0.5, nesterov=False)
    np.testing.assert_allclose(np.ravel(ps), [1.8, 1.5575])


def test_sgd_does_not_modify_grad_and_keeps_float32():
    p = np.ones(3, np.float32)
    g = np.full(3, 0.5, np.float32)
    buf = np.zeros(3, np.float32)
    for t in range(3):
        B.sgd_step(p, g, buf, lr=0.1, momentum=0.9, dampening=0, weight_decay=0.1,
                   nesterov=True, first_step=t == 0)
    assert p.dtype == np.float32 and buf.dtype == np.float32
    np.testing.assert_array_equal(g, 0.5)


# --------------------------------------------------------------------------- Adam
def adam_reference(p, grads, lr, b1, b2, eps, wd, bias_correction, decoupled):
    """Scalar loop written straight from the formulas."""
    m = v = 0.0
    out = []
    for t, g in enumerate(grads, start=1):
        if wd and decoupled:
            p = p * (1 - lr * wd)
        elif wd:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        if bias_correction:
            p = p - lr / (1 - b1 ** t) * m / (math.sqrt(v) / math.sqrt(1 - b2 ** t) + eps)
        else:
            p = p - lr * m / (math.sqrt(v) + eps)
        out.append(p)
    return out


def adam_run(p0, grads, **kw):
    p = np.array([p0], dtype=np.float64)
    m, v = np.zeros(1), np.zeros(1)
    out = []
    for t, g in enumerate(grads, start=1):
        B.adam_step(p, np.array([g]), m, v, step=t, **kw)
        out.append(p[0])
    return out


def test_adam_constant_gradient_moves_lr_per_step_with_bias_correction():
    # m̂ = v̂ = 1 at every step for g = 1, so each step is lr / (1 + eps)
    ps = adam_run(0.0, [1.0] * 4, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0,
                  bias_correction=True, decoupled=False)
    np.testing.assert_allclose(ps, [-0.1 / (1 + 1e-8) * k for k in range(1, 5)], rtol=1e-12)


def test_adam_without_bias_correction_first_step():
    # m = 0.1, v = 0.001: step = 0.1 * 0.1 / sqrt(0.001) = 0.316227...
    (p1,) = adam_run(0.0, [1.0], lr=0.1, beta1=0.9, beta2=0.999, eps=0.0, weight_decay=0,
                     bias_correction=False, decoupled=False)
    assert p1 == pytest.approx(-0.1 * 0.1 / math.sqrt(0.001), rel=1e-12)


@pytest.mark.parametrize("decoupled", [False, True])
@pytest.mark.parametrize("bias_correction", [False, True])
def test_adam_matches_scalar_reference(decoupled, bias_correction):
    grads = [0.3, -1.2, 0.7, 2.0, -0.1]
    kw = dict(lr=0.05, b1=0.8, b2=0.95, eps=1e-6, wd=0.1, bias_correction=bias_correction,
              decoupled=decoupled)
    expected = adam_reference(1.5, grads, **kw)
    got = adam_run(1.5, grads, lr=0.05, beta1=0.8, beta2=0.95, eps=1e-6, weight_decay=0.1,
                   bias_correction=bias_correction, decoupled=decoupled)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_adamw_decays_before_the_update():
    # decoupled: p = 2 * (1 - 0.1*0.5) = 1.9, then the bias-corrected step of size lr
    (p1,) = adam_run(2.0, [1.0], lr=0.1, beta1=0.9, beta2=0.999, eps=0.0, weight_decay=0.5,
                     bias_correction=True, decoupled=True)
    assert p1 == pytest.approx(1.8, rel=1e-12)


def test_adam_keeps_float32():
    p, g = np.ones(4, np.float32), np.full(4, 0.25, np.float32)
    m, v = np.zeros(4, np.float32), np.zeros(4, np.float32)
    B.adam_step(p, g, m, v, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01,
                step=1, bias_correction=True, decoupled=False)
    assert p.dtype == m.dtype == v.dtype == np.float32
    np.testing.assert_array_equal(g, 0.25)


def _reference_adam(p, g, m, v, *, lr, beta1, beta2, eps, weight_decay, step, bias_correction, decoupled):
    """The readable step of dlkit.optim.Adam, in numpy, operation by operation (fresh arrays)."""
    if weight_decay and decoupled:
        p = p * (1 - lr * weight_decay)
    elif weight_decay:
        g = g + weight_decay * p
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    mh, vh = m, v
    if bias_correction:
        mh, vh = m * (1.0 / (1 - beta1 ** step)), v * (1.0 / (1 - beta2 ** step))
    return p - lr * mh / (vh ** 0.5 + eps), m, v


@pytest.fixture(params=["native kernel", "numpy passes"])
def adam_path(request, monkeypatch):
    """Both ways adam_step computes: the C loop (where a compiler is) and the numpy passes."""
    from dlkit.backend import numpy_backend
    kernels = numpy_backend._native_kernels()
    if request.param == "native kernel" and kernels is None:
        pytest.skip(f"no native kernel: {numpy_backend._native_state.get('error')}")
    if request.param == "numpy passes":
        monkeypatch.setitem(numpy_backend._native_state, "loaded", None)
    return request.param


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 2e-6)])
@pytest.mark.parametrize("weight_decay, decoupled, bias_correction",
                         [(0, False, True), (0.1, False, True), (0.1, True, True), (0.05, False, False)])
def test_fused_adam_equals_the_readable_formula(adam_path, dtype, rtol, weight_decay, decoupled, bias_correction):
    rng = np.random.default_rng(3)
    kw = dict(lr=1e-2, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=weight_decay,
              bias_correction=bias_correction, decoupled=decoupled)
    p = rng.standard_normal((7, 5)).astype(dtype)
    m, v = np.zeros_like(p), np.zeros_like(p)
    rp, rm, rv = p.copy(), m.copy(), v.copy()
    for t in range(1, 9):
        g = rng.standard_normal(p.shape).astype(dtype)
        g_before = g.copy()
        B.adam_step(p, g, m, v, step=t, **kw)
        rp, rm, rv = _reference_adam(rp, g, rm, rv, step=t, **kw)
        np.testing.assert_array_equal(g, g_before)              # the gradient is left alone
        assert p.dtype == m.dtype == v.dtype == dtype
        if weight_decay == 0 or decoupled:                      # m, v do not see p's rounding:
            np.testing.assert_array_equal(m, rm)                # same operations, same results
            np.testing.assert_array_equal(v, rv)
        np.testing.assert_allclose(m, rm, rtol=rtol, atol=0)
        np.testing.assert_allclose(v, rv, rtol=rtol, atol=0)
        np.testing.assert_allclose(p, rp, rtol=rtol, atol=0)


def test_fused_steps_allocate_nothing_after_the_first(adam_path):
    import tracemalloc
    p = np.ones((256, 128), np.float32)
    g, m, v, buf = np.full_like(p, 0.5), np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    adam = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, bias_correction=True,
                decoupled=False)
    sgd = dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01, nesterov=False)
    B.adam_step(p, g, m, v, step=1, **adam)                     # grows the scratch buffers once
    B.sgd_step(p, g, buf, first_step=True, **sgd)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for t in range(2, 5):
            B.adam_step(p, g, m, v, step=t, **adam)
            B.sgd_step(p, g, buf, first_step=False, **sgd)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak - before < p.nbytes // 4, f"a fused step allocated {peak - before} bytes"


# --------------------------------------------------------------------------- fused numerics
def test_softmax_cross_entropy_matches_direct_formula():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((6, 4))
    y = rng.integers(0, 4, size=6)
    loss, dz = B.softmax_cross_entropy(z, y)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    assert loss.shape == () and loss.dtype == np.float64
    assert float(loss) == pytest.approx(-np.mean(np.log(p[np.arange(6), y])), rel=1e-12)
    onehot = np.eye(4)[y]
    np.testing.assert_allclose(dz, (p - onehot) / 6, rtol=1e-12, atol=1e-15)


def test_softmax_cross_entropy_is_stable_and_keeps_float32():
    z = np.array([[1000.0, 0.0, -1000.0], [-500.0, 500.0, 0.0]], np.float32)
    loss, dz = B.softmax_cross_entropy(z, np.array([0, 0]))
    assert loss.dtype == dz.dtype == np.float32
    assert float(loss) == pytest.approx(1000 / 2, rel=1e-6)        # row 2 costs 1000, row 1 costs 0
    assert np.all(np.isfinite(dz))


def test_softmax_cross_entropy_rejects_out_of_range_labels():
    with pytest.raises(ValueError, match=r"\[0, 3\).*-1 to 2"):
        B.softmax_cross_entropy(np.zeros((2, 3)), np.array([-1, 2]))
    with pytest.raises(ValueError, match="3"):
        B.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3]))


def test_logsumexp_and_log_softmax():
    a = np.array([[0.0, np.log(3.0)], [800.0, 800.0], [-np.inf, 0.0]])
    np.testing.assert_allclose(B.logsumexp(a, 1), [np.log(4.0), 800 + np.log(2.0), 0.0])
    assert B.logsumexp(a, 1, keepdims=True).shape == (3, 1)
    np.testing.assert_allclose(np.exp(B.log_softmax(a[:2], 1)).sum(axis=1), 1.0)
    assert B.logsumexp(np.full((1, 2), -np.inf), 1)[0] == -np.inf


def test_sigmoid_relu_one_hot():
    x = np.array([-100.0, -1.0, 0.0, 2.0, 100.0], np.float32)
    s = B.sigmoid(x)
    assert s.dtype == np.float32
    np.testing.assert_allclose(s, 1 / (1 + np.exp(-x.astype(np.float64))), rtol=1e-6, atol=1e-30)
    np.testing.assert_array_equal(B.relu(x), [0, 0, 0, 2, 100])
    np.testing.assert_array_equal(B.one_hot(np.array([2, 0]), 3, np.float32),
                                  [[0, 0, 1], [1, 0, 0]])


@pytest.mark.parametrize("index", [(slice(1, 3), slice(None, None, 2)), (0,), (Ellipsis, 1),
                                   (None, slice(None), -1), (1, slice(None, None, -1))])
def test_getitem_backward_places_grad_at_index(index):
    shape = (4, 5)
    rng = np.random.default_rng(1)
    base = np.zeros(shape)
    grad = rng.standard_normal(base[index].shape)
    out = B.getitem_backward(grad, shape, index)
    expected = np.zeros(shape)
    mask = np.zeros(shape, bool)
    np.copyto(expected[index], grad)                 # place by hand through the view
    mask[index] = True
    np.testing.assert_array_equal(out, expected)
    assert np.all(out[~mask] == 0) and out.shape == shape


def test_assign_in_place_and_shape_check():
    dst = np.zeros((2, 2), np.float32)
    ref = dst
    B.assign(dst, np.ones((2, 2)))
    assert ref is dst and dst.dtype == np.float32 and np.all(dst == 1)
    with pytest.raises(ValueError, match=r"\(2, 2\).*\(3,\)"):
        B.assign(dst, np.ones(3))


def test_elementwise_results_are_arrays_and_keep_dtype():
    a = np.array(2.0, np.float32)                     # 0-d: numpy would return a scalar
    for out in (B.add(a, 1.0), B.mul(a, a), B.exp(a), B.sum(np.ones(3, np.float32))):
        assert type(out) is np.ndarray and out.dtype == np.float32


@pytest.mark.parametrize("sa, sb", [((5, 1), (1, 4)), ((2, 3, 1), (1, 1, 4)), ((3, 1), (2, 1, 4)),
                                    ((1, 1), (1, 7)), ((6, 1), (1, 1)), ((0, 1), (1, 3))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_with_a_contracted_dimension_of_one_is_exact(sa, sb, dtype):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(sa).astype(dtype), rng.standard_normal(sb).astype(dtype)
    got = B.matmul(a, b)
    want = np.matmul(a, b)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    at = rng.standard_normal(sa[::-1]).astype(dtype).T      # a transposed view, as in Xᵀ G
    np.testing.assert_array_equal(B.matmul(at, b), np.matmul(at, b))


def test_adam_step_many_default_is_adam_step_per_parameter(adam_path):
    # the base class's multi-tensor step (what a backend without its own, like CUDA's, runs) and the
    # numpy override give what adam_step gives parameter by parameter, steps counted per parameter
    rng = np.random.default_rng(4)
    shapes, steps = [(5, 3), (3,), (2, 2)], [3, 1, 2]
    kw = dict(lr=1e-2, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=0.1, bias_correction=True,
              decoupled=False)
    start = [[rng.standard_normal(s) for s in shapes] for _ in range(4)]   # p, g, m, v
    start[3] = [np.abs(v) for v in start[3]]
    results = []
    for how in ("one by one", "base default", "numpy override"):
        p, g, m, v = ([a.copy() for a in arrays] for arrays in start)
        if how == "one by one":
            for i in range(3):
                B.adam_step(p[i], g[i], m[i], v[i], step=steps[i], **kw)
        elif how == "base default":
            Backend.adam_step_many(B, p, g, m, v, steps, **kw)
        else:
            B.adam_step_many(p, g, m, v, steps, **kw)
        results.append(p + m + v)
    for other in results[1:]:
        for a, b in zip(other, results[0]):
            np.testing.assert_array_equal(a, b)
