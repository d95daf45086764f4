"""Tensor and reverse-mode autodiff: the graph, backward, grad(), higher derivatives, errors."""
from __future__ import annotations

import numpy as np
import pytest

import dlkit
from dlkit import ops
from dlkit.autograd import Tensor
from dlkit.backend.numpy_backend import NumpyBackend

pytestmark = pytest.mark.usefixtures("numpy_backend")


def t64(x, requires_grad=False):
    return dlkit.tensor(x, dtype="float64", requires_grad=requires_grad)


# --------------------------------------------------------------------------- tensors
def test_tensor_creation_and_properties():
    x = dlkit.tensor([[1, 2, 3], [4, 5, 6]])
    assert x.dtype == np.float32 and x.shape == (2, 3) and x.ndim == 2 and x.size == 6
    assert not x.requires_grad and x.grad is None and x.is_leaf
    assert dlkit.tensor([1.0], dtype="float64").dtype == np.float64
    assert dlkit.tensor([1, 2], dtype="int64").dtype == np.int64
    assert x.backend.name == "numpy"


def test_numpy_returns_a_copy():
    x = dlkit.tensor([1.0, 2.0])
    host = x.numpy()
    host[0] = 99
    assert x.numpy()[0] == 1.0
    data = np.array([1.0, 2.0])
    y = dlkit.tensor(data)
    data[0] = 5
    assert y.numpy()[0] == 1.0                       # tensor() copies its input too


@pytest.mark.parametrize("dtype", ["int64", "bool"])
def test_int_and_bool_tensors_cannot_require_grad(dtype):
    with pytest.raises(TypeError, match=f"{dtype}"):
        dlkit.tensor([1, 0], dtype=dtype, requires_grad=True)
    x = dlkit.tensor([1, 0], dtype=dtype)
    with pytest.raises(TypeError, match="float32/float64"):
        x.requires_grad = True


def test_repr_shows_values_dtype_and_grad_flag():
    text = repr(dlkit.tensor([1.5, 2.0], requires_grad=True))
    assert "1.5" in text and "float32" in text and "requires_grad=True" in text
    assert "op=Mul" in repr(dlkit.tensor([1.0], requires_grad=True) * 2.0)


# --------------------------------------------------------------------------- backward
def test_backward_simple_chain_rule():
    # f = sum(x * x + 3x) -> df/dx = 2x + 3 (x used twice: contributions add)
    x = dlkit.tensor([1.0, -2.0, 0.5], requires_grad=True)
    (x * x + 3 * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0, -1.0, 4.0])
    assert x.grad.dtype == np.float32 and not x.grad.requires_grad


def test_grad_accumulates_across_backward_calls_and_resets():
    w = dlkit.tensor([2.0], requires_grad=True)
    (w * 3.0).sum().backward()
    (w * w).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [3.0 + 4.0])
    w.grad = None
    (w * 3.0).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [3.0])


def test_leaf_grads_never_share_memory():
    a = dlkit.tensor([1.0, 2.0], requires_grad=True)
    b = dlkit.tensor([3.0, 4.0], requires_grad=True)
    seed = dlkit.tensor([1.0, 1.0])
    (a + b).backward(seed)
    a.grad.data = np.zeros(2)
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 1.0])
    np.testing.assert_array_equal(seed.numpy(), [1.0, 1.0])


def test_leaf_grads_are_writable_and_not_views():
    # w.sum() gives w a broadcast (read-only) gradient, w.reshape a view of the upstream one
    w = dlkit.tensor([1.0, 2.0], requires_grad=True)
    v = dlkit.tensor([3.0, 4.0], requires_grad=True)
    (w.sum() + (v.reshape(2, 1) * dlkit.tensor([[1.0], [1.0]])).sum()).backward()
    for p in (w, v):
        p.grad.data = p.grad * 0.5                      # in place, as gradient clipping does
    np.testing.assert_array_equal(w.grad.numpy(), [0.5, 0.5])
    np.testing.assert_array_equal(v.grad.numpy(), [0.5, 0.5])


def test_backward_with_out_grad_is_a_vjp():
    rng = np.random.default_rng(0)
    A, v = rng.standard_normal((3, 4)), rng.standard_normal(3)
    x = t64(rng.standard_normal(4), requires_grad=True)
    (t64(A) @ x).backward(v)
    np.testing.assert_allclose(x.grad.numpy(), A.T @ v, rtol=1e-12)


def test_backward_errors():
    x = dlkit.tensor(np.ones((2, 3)), requires_grad=True)
    y = x * 2.0
    with pytest.raises(ValueError, match=r"non-scalar.*\(2, 3\)"):
        y.backward()
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(2, 3\)"):
        y.backward(np.ones((3, 2)))
    with pytest.raises(RuntimeError, match="does not require grad"):
        dlkit.tensor([1.0]).sum().backward()


def test_deep_graph_needs_no_recursion():
    x = dlkit.tensor([1.0], dtype="float64", requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.sum().backward()
    assert x.grad.numpy()[0] == pytest.approx(1.0001 ** 5000, rel=1e-9)


def test_diamond_graph_visits_each_node_once():
    # z = a*b with a, b both from x: dz/dx = d(x^2 * e^x)/dx = (2x + x^2) e^x
    x = t64([0.7], requires_grad=True)
    a, b = x * x, ops.exp(x)
    (a * b).sum().backward()
    assert x.grad.numpy()[0] == pytest.approx((2 * 0.7 + 0.49) * np.exp(0.7), rel=1e-12)


# --------------------------------------------------------------------------- modes and views
def test_no_grad_records_nothing_and_restores():
    x = dlkit.tensor([1.0], requires_grad=True)
    assert dlkit.is_grad_enabled()
    with dlkit.no_grad():
        assert not dlkit.is_grad_enabled()
        y = x * 2
    assert dlkit.is_grad_enabled() and not y.requires_grad and y.op is None
    with pytest.raises(KeyError):
        with dlkit.no_grad():
            raise KeyError
    assert dlkit.is_grad_enabled()

    @dlkit.no_grad()
    def f(t):
        return t * 3

    assert not f(x).requires_grad and dlkit.is_grad_enabled()


def test_detach_shares_storage_outside_the_graph():
    x = dlkit.tensor([1.0, 2.0], requires_grad=True)
    d = (x * 1.0).detach()
    assert not d.requires_grad and d.op is None
    e = x.detach()
    e.data = np.array([5.0, 6.0])
    np.testing.assert_array_equal(x.numpy(), [5.0, 6.0])


def test_data_setter_updates_in_place():
    w = dlkit.tensor([[1.0, 2.0]], requires_grad=True)
    ident = id(w)
    w.data = w.data - 0.5 * dlkit.tensor([[2.0, 2.0]])
    assert id(w) == ident and w.requires_grad and w.dtype == np.float32 and w.is_leaf
    np.testing.assert_array_equal(w.numpy(), [[0.0, 1.0]])
    w.data = np.array([[3.0, 4.0]])                   # float64 host values are cast
    assert w.dtype == np.float32
    np.testing.assert_array_equal(w.numpy(), [[3.0, 4.0]])
    with pytest.raises(ValueError, match=r"\(2,\).*\(1, 2\)"):
        w.data = np.zeros(2)


def test_requires_grad_only_on_leaves():
    x = dlkit.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        (x * 2).requires_grad = False


# --------------------------------------------------------------------------- backends
class OtherBackend(NumpyBackend):
    name = "other"


def test_mixing_backends_raises_naming_both():
    x = dlkit.tensor([1.0])
    y = Tensor([1.0], backend=OtherBackend())
    with pytest.raises(ValueError, match="'numpy'.*'other'"):
        x + y


def test_to_returns_new_tensor_on_target_backend():
    x = dlkit.tensor([[1.0, 2.0]], requires_grad=True)
    y = x.to(OtherBackend())
    assert y is not x and y.backend.name == "other" and y.requires_grad and y.is_leaf
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    z = x.to("numpy")
    assert z is not x and z.backend.name == "numpy" and z.dtype == np.float32


# --------------------------------------------------------------------------- grad()
def test_grad_leaves_dot_grad_alone():
    x = t64([1.0, 2.0], requires_grad=True)
    (g,) = dlkit.grad((x ** 3).sum(), [x])
    np.testing.assert_allclose(g.numpy(), [3.0, 12.0])
    assert x.grad is None and not g.requires_grad


def test_grad_of_several_outputs_and_inputs():
    x, y = t64([2.0], requires_grad=True), t64([3.0], requires_grad=True)
    gx, gy = dlkit.grad([(x * y).sum(), (x * x).sum()], [x, y])
    assert gx.numpy()[0] == pytest.approx(3.0 + 4.0) and gy.numpy()[0] == pytest.approx(2.0)


def test_grad_errors_name_the_input():
    x = t64([1.0], requires_grad=True)
    unused = t64([1.0, 2.0], requires_grad=True)
    constant = t64([1.0, 2.0, 3.0])
    y = (x * 2).sum()
    with pytest.raises(ValueError, match=r"inputs\[1\].*\(3,\).*does not require grad"):
        dlkit.grad(y, [x, constant])
    with pytest.raises(ValueError, match=r"inputs\[1\].*\(2,\).*not connected"):
        dlkit.grad(y, [x, unused])
    gx, gu = dlkit.grad(y, [x, unused], allow_unused=True)
    assert gu is None and gx.numpy()[0] == 2.0


# --------------------------------------------------------------------------- higher order
def test_hessian_of_quadratic_is_P_and_newton_lands_on_minimizer():
    rng = np.random.default_rng(0)
    M = rng.standard_normal((4, 4))
    P, q = M @ M.T + 4 * np.eye(4), rng.standard_normal(4)
    Pt, qt = t64(P), t64(q)

    def f(theta):
        return 0.5 * (theta @ (Pt @ theta)) + (qt * theta).sum()

    theta = t64(rng.standard_normal(4), requires_grad=True)
    H = dlkit.hessian(f, theta)
    np.testing.assert_allclose(H.numpy(), P, rtol=1e-12)
    (g,) = dlkit.grad(f(theta), [theta])
    newton = theta.numpy() - np.linalg.solve(H.numpy(), g.numpy())
    np.testing.assert_allclose(newton, -np.linalg.solve(P, q), rtol=1e-10)


def test_hessian_of_nonquadratic_matches_differences_of_the_gradient():
    x0 = np.array([0.3, -0.8, 1.1])

    def f(x):
        return (ops.tanh(x) ** 3).sum() + (x[0] * x[1] * x[2])

    def gradient(v):
        x = t64(v, requires_grad=True)
        return dlkit.grad(f(x), [x])[0].numpy()

    eps = 1e-6
    numeric = np.stack([(gradient(x0 + eps * e) - gradient(x0 - eps * e)) / (2 * eps)
                        for e in np.eye(3)])
    H = dlkit.hessian(f, t64(x0)).numpy()
    np.testing.assert_allclose(H, numeric, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(H, H.T, rtol=1e-12)


def test_hessian_vector_product_with_create_graph():
    rng = np.random.default_rng(2)
    x = t64(rng.standard_normal(5), requires_grad=True)
    v = t64(rng.standard_normal(5))

    def f(t):
        return ops.logsumexp(t, axis=0) + (ops.sigmoid(t) * t).sum()

    (g,) = dlkit.grad(f(x), [x], create_graph=True)
    assert g.requires_grad
    (hv,) = dlkit.grad((g * v).sum(), [x])
    np.testing.assert_allclose(hv.numpy(), dlkit.hessian(f, x).numpy() @ v.numpy(), rtol=1e-10)


def test_backward_create_graph_gives_differentiable_grad():
    x = t64([2.0], requires_grad=True)
    (x ** 4).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    (g2,) = dlkit.grad(x.grad.sum(), [x])            # d/dx 4x^3 = 12 x^2
    assert g2.numpy()[0] == pytest.approx(48.0)


# --------------------------------------------------------------------------- manual backprop
def softmax_rows(Z):
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_mlp_manual_backprop_equals_autodiff(activation):
    """Lecture recursion: Z_{i+1} = σ(Z_i W_i); G_i = (G_{i+1} ∘ σ'(Z_i W_i)) W_iᵀ,
    ∇W_i = Z_iᵀ (G_{i+1} ∘ σ'(Z_i W_i)); softmax loss on the last (linear) layer."""
    rng = np.random.default_rng(7)
    m, widths = 6, [5, 4, 3, 3]
    X = rng.standard_normal((m, widths[0]))
    y = rng.integers(0, widths[-1], size=m)
    Ws = [rng.standard_normal((a, b)) for a, b in zip(widths[:-1], widths[1:])]
    sigma = {"relu": lambda u: np.maximum(u, 0), "tanh": np.tanh}[activation]
    dsigma = {"relu": lambda u: (u > 0).astype(float), "tanh": lambda u: 1 - np.tanh(u) ** 2}[activation]
    L = len(Ws)

    Z = [X]
    for i in range(L):
        U = Z[i] @ Ws[i]
        Z.append(sigma(U) if i < L - 1 else U)
    G = (softmax_rows(Z[L]) - np.eye(widths[-1])[y]) / m          # G_L = ∂ℓ/∂Z_L
    manual = [None] * L
    for i in reversed(range(L)):
        deriv = dsigma(Z[i] @ Ws[i]) if i < L - 1 else 1.0
        manual[i] = Z[i].T @ (G * deriv)
        G = (G * deriv) @ Ws[i].T

    tW = [t64(W, requires_grad=True) for W in Ws]
    h = t64(X)
    for i, W in enumerate(tW):
        h = h @ W
        if i < L - 1:
            h = ops.relu(h) if activation == "relu" else ops.tanh(h)
    ops.softmax_cross_entropy(h, dlkit.tensor(y, dtype="int64")).backward()
    for W, expected in zip(tW, manual):
        np.testing.assert_allclose(W.grad.numpy(), expected, rtol=1e-10, atol=1e-14)


# --------------------------------------------------------------------------- the engine's two pieces
def test_backward_and_grad_run_exactly_the_two_engine_pieces(monkeypatch):
    from dlkit import autograd
    calls = []
    sweep, order = autograd.backward_sweep, autograd.topological_order
    monkeypatch.setattr(autograd, "backward_sweep",
                        lambda *a: calls.append("sweep") or sweep(*a))
    monkeypatch.setattr(autograd, "topological_order",
                        lambda *a: calls.append("order") or order(*a))
    x = t64([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    dlkit.grad((x * 3.0).sum(), x)
    assert calls == ["sweep", "order", "sweep", "order"]
    assert x.grad.numpy().tolist() == [2.0, 4.0]


def test_topological_order_lists_each_tensor_once_inputs_first():
    from dlkit.autograd import topological_order
    x, c = t64([0.5], requires_grad=True), t64([2.0])
    a = x * c                       # c is a constant: not in the order
    b = ops.exp(x)
    y = a * b + x
    order = topological_order(y)
    assert len(order) == len({id(t) for t in order}) == 5
    place = {id(t): i for i, t in enumerate(order)}
    assert id(c) not in place and order[-1] is y
    for t in order:
        assert all(place[id(p)] < place[id(t)] for p in t.inputs if p.requires_grad)


def test_backward_sweep_returns_every_tensors_gradient_and_sets_no_grad():
    from dlkit.autograd import backward_sweep
    x = t64([0.7, -0.2], requires_grad=True)
    h = x * x
    y = ops.exp(h)
    seed = t64([1.0, 3.0])
    grads = backward_sweep(y, seed)
    np.testing.assert_allclose(grads[h].numpy(), seed.numpy() * np.exp([0.49, 0.04]))
    np.testing.assert_allclose(grads[x].numpy(), grads[h].numpy() * 2 * x.numpy())
    assert x.grad is None and not grads[x].requires_grad
    with dlkit.no_grad():       # create_graph records even inside no_grad
        g = backward_sweep(y, seed, True)[x]
    assert g.requires_grad


def test_a_wrong_shaped_vjp_is_reported_naming_the_op(monkeypatch):
    monkeypatch.setattr(ops.Negate, "gradient", lambda self, g, node: (g.sum(),))
    x = t64([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"shape \(2,\) \(a leaf\) is shape \(\).*of Negate"):
        (-x).backward(t64([1.0, 1.0]))


def test_set_grad_enabled_switches_recording_both_ways():
    x = t64([1.0], requires_grad=True)
    with dlkit.autograd.set_grad_enabled(False):
        assert not (x * 2).requires_grad
        with dlkit.autograd.set_grad_enabled(True):
            assert (x * 2).requires_grad
    assert dlkit.is_grad_enabled()


# -- freeing the graph (retain_graph=False) -----------------------------------------------------
def test_backward_keeps_the_graph_by_default_so_a_second_backward_accumulates():
    x = dlkit.tensor([1.0, 2.0], requires_grad=True, dtype="float64")
    y = (x * x).sum()
    y.backward()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])


def test_backward_with_retain_graph_false_frees_the_graph():
    import gc
    import weakref
    x = dlkit.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True, dtype="float64")
    h = x * 2.0
    ref = weakref.ref(h)
    y = (h.exp() * x).sum()
    del h
    gc.collect()
    assert ref() is not None                    # the graph keeps the intermediate alive
    y.backward(retain_graph=False)
    assert ref() is None                        # freed at once (no cycles: plain refcounting)
    want = np.exp(2 * x.numpy()) * (1 + 2 * x.numpy())
    np.testing.assert_allclose(x.grad.numpy(), want)
    assert not y.is_leaf and y.requires_grad and y.inputs == ()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_create_graph_keeps_the_graph_even_with_retain_graph_false():
    x = dlkit.tensor([3.0], requires_grad=True, dtype="float64")
    y = (x ** 3).sum()
    y.backward(create_graph=True, retain_graph=False)
    (g2,) = dlkit.grad(x.grad.sum(), [x])
    np.testing.assert_allclose(g2.numpy(), [18.0])


def test_the_shared_unit_seed_never_reaches_the_caller():
    x = dlkit.tensor(3.0, requires_grad=True, dtype="float64")
    x.backward()
    (g,) = dlkit.grad(x, [x])
    for t in (x.grad, g):
        t.data = np.array(5.0)                  # writable, and owned by the caller
    y = (x * 2.0)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 7.0)
    (g2,) = dlkit.grad(x, [x])
    np.testing.assert_allclose(g2.numpy(), 1.0)
