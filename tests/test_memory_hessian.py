"""Issue 16 items 3 and 4: memory in flight during backward, and the batched Hessian.

Memory: ``Tensor.backward`` and ``dlkit.grad`` drop each tensor's gradient once its op's VJP has
consumed it (and, with ``retain_graph=False``, the tensor's link to its inputs), ``nn.Linear``
records one fused node, ReLU's VJP makes no float mask.  Checked with weak references seen from
inside a VJP (what is still alive while the sweep runs) and with tracemalloc byte counts, never
with timings.

Hessian: ``dlkit.hessian`` runs one backward sweep whose out_grad has a leading batch axis
through the library's own batched VJP rules, and the old row-by-row loop for graphs with any
other op; both paths agree with each other, with closed forms and with finite differences.
"""
from __future__ import annotations

import gc
import tracemalloc
import weakref

import numpy as np
import pytest

import dlkit
from dlkit import autograd, nn, ops
from dlkit.autograd import Op, Tensor


def t64(a, requires_grad=False):
    return dlkit.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad, dtype="float64")


class Probe(Op):
    """Identity whose VJP runs ``self.check()`` and returns a *new* gradient tensor (G * 1)."""

    def __init__(self, check=None, seen=None):
        self.check, self.seen = check, seen

    def compute(self, a):
        return a.copy()

    def gradient(self, g, node):
        if self.seen is not None:
            self.seen.append(weakref.ref(g))
        if self.check is not None:
            self.check()
        return (g * 1.0,)


# ------------------------------------------------------------------------------------ memory
def test_backward_drops_each_intermediate_gradient_once_consumed():
    """With the graph kept (the default), the gradients of intermediate tensors are gone as soon
    as the VJP that reads them has run: at the last VJP only its own out_grad is alive."""
    seen: list = []
    alive_at_end: list = []

    def check():
        gc.collect()
        alive_at_end.extend(r for r in seen[:-1] if r() is not None)

    x = t64(np.arange(4.0), requires_grad=True)
    h = Probe(check, seen)(x)                     # its VJP runs last
    for _ in range(4):
        h = Probe(seen=seen)(h)
    y = h.sum()
    y.backward()                                  # retain_graph=True: only gradients are dropped
    assert len(seen) == 5 and alive_at_end == []
    np.testing.assert_array_equal(x.grad.numpy(), np.ones(4))
    y.backward()                                  # the graph is still there
    np.testing.assert_array_equal(x.grad.numpy(), 2 * np.ones(4))


def test_grad_drops_intermediate_gradients_but_returns_the_requested_ones():
    seen: list = []
    alive_at_end: list = []

    def check():
        gc.collect()
        alive_at_end.extend(r for r in seen[:-1] if r() is not None)

    x = t64([1.0, -2.0], requires_grad=True)
    mid = Probe(seen=seen)(Probe(seen=seen)(Probe(check, seen)(x) * 3.0))
    y = (Probe(seen=seen)(mid) ** 2).sum()
    gmid, gx = dlkit.grad(y, [mid, x])
    assert len(alive_at_end) == 1 and alive_at_end[0]() is gmid     # only the requested one
    np.testing.assert_allclose(gmid.numpy(), 2 * mid.numpy())
    np.testing.assert_allclose(gx.numpy(), 18 * x.numpy())


def test_retain_graph_false_frees_activations_during_the_sweep():
    """An activation only the graph holds goes as soon as the last VJP reading it has run, not
    after the whole sweep: at the VJP nearest the leaf the later activations are gone."""
    refs: dict = {}
    alive: list = []

    def check():
        gc.collect()
        alive.extend(name for name, r in refs.items() if r() is not None)

    x = t64(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=True)
    p = Probe(check)(x)
    h = p * 2.0
    e = ops.exp(h)
    s = e * h
    refs.update(h=weakref.ref(h), e=weakref.ref(e), s=weakref.ref(s))
    y = s.sum()
    del h, e, s
    y.backward(retain_graph=False)
    assert alive == []
    xv = x.numpy()
    np.testing.assert_allclose(x.grad.numpy(), np.exp(2 * xv) * (2 + 4 * xv), rtol=1e-12)
    assert y.inputs == () and p.inputs == ()     # no dangling links to the graph
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_a_replaced_engine_piece_still_runs_through_backward(monkeypatch):
    """The lean sweep is the library engine's: replace either piece and backward runs them."""
    calls = []
    sweep = autograd.backward_sweep
    monkeypatch.setattr(autograd, "backward_sweep", lambda *a: calls.append(1) or sweep(*a))
    x = t64([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=False)
    assert calls == [1] and y.inputs == ()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])


def test_linear_records_one_fused_node_with_the_two_op_values():
    rng = np.random.default_rng(0)
    lin = nn.Linear(5, 3, generator=rng, dtype="float64")
    X = t64(rng.standard_normal((4, 5)), requires_grad=True)
    out = lin(X)
    assert len(out.inputs) == 3 and out.inputs[0] is X
    assert out.inputs[1] is lin.weight and out.inputs[2] is lin.bias
    G = rng.standard_normal((4, 3))
    out.backward(t64(G))
    X2 = t64(X.numpy(), requires_grad=True)
    W2, b2 = t64(lin.weight.numpy(), True), t64(lin.bias.numpy(), True)
    ref = X2 @ W2 + b2
    ref.backward(t64(G))
    np.testing.assert_array_equal(out.numpy(), ref.numpy())
    for a, b in ((X, X2), (lin.weight, W2), (lin.bias, b2)):
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())


@pytest.mark.parametrize("shape", [(5,), (2, 4, 5)])
def test_linear_other_shapes_and_no_bias_take_the_plain_ops(shape):
    rng = np.random.default_rng(1)
    lin = nn.Linear(5, 3, generator=rng, dtype="float64")
    X = t64(rng.standard_normal(shape), requires_grad=True)
    out = lin(X)
    np.testing.assert_allclose(out.numpy(), X.numpy() @ lin.weight.numpy() + lin.bias.numpy())
    out.sum().backward()
    np.testing.assert_allclose(lin.bias.grad.numpy(), np.full(3, np.prod(shape[:-1])))
    nobias = nn.Linear(5, 3, bias=False, generator=rng, dtype="float64")
    Y = nobias(t64(rng.standard_normal((2, 5))))
    assert len(Y.inputs) == 2
    Y.sum().backward()
    np.testing.assert_allclose(nobias.weight.grad.numpy(), np.tile(Y.inputs[0].numpy().sum(0)[:, None], 3))


def test_second_derivatives_through_linear():
    rng = np.random.default_rng(2)
    lin = nn.Linear(3, 2, generator=rng, dtype="float64")
    x0 = rng.standard_normal((1, 3))

    def f(x):
        return (ops.tanh(lin(x)) ** 2).sum()

    H = dlkit.hessian(f, t64(x0)).numpy().reshape(3, 3)

    def grad_at(v):
        x = t64(v.reshape(1, 3), requires_grad=True)
        return dlkit.grad(f(x), [x])[0].numpy().ravel()

    eps = 1e-6
    numeric = np.stack([(grad_at(x0.ravel() + eps * e) - grad_at(x0.ravel() - eps * e)) / (2 * eps)
                        for e in np.eye(3)])
    np.testing.assert_allclose(H, numeric, rtol=1e-6, atol=1e-8)


def test_relu_vjp_makes_no_float_mask():
    """ReLU's gradient G * (a > 0) allocates its result and a bool mask, not also a float copy
    of the mask (a float tensor times a bool tensor multiplies the two dtypes directly)."""
    a = dlkit.tensor(np.random.default_rng(3).standard_normal((256, 256)), requires_grad=True)
    y = ops.relu(a)
    g = dlkit.tensor(np.ones((256, 256)))
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        (ga,) = y.op.gradient(g, y)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    nbytes = 256 * 256 * 4
    # the result, the bool mask and numpy's casting buffer (8192 elements), not a float mask
    assert peak < nbytes + nbytes // 4 + 65536
    np.testing.assert_array_equal(ga.numpy(), (a.numpy() > 0).astype(np.float32))


def test_float_times_bool_mask_keeps_the_float_dtype_and_gradients():
    x = t64([[-1.0, 2.0], [3.0, -4.0]], requires_grad=True)
    mask = x > 0
    for y in (x * mask, mask * x):
        assert y.dtype == np.float64
        np.testing.assert_array_equal(y.numpy(), [[0.0, 2.0], [3.0, 0.0]])
    (g,) = dlkit.grad((x * mask * x).sum(), [x], create_graph=True)
    np.testing.assert_array_equal(g.numpy(), [[0.0, 4.0], [6.0, 0.0]])
    (h,) = dlkit.grad(g.sum(), [x])
    np.testing.assert_array_equal(h.numpy(), [[0.0, 2.0], [2.0, 0.0]])
    row = dlkit.tensor([True, False], dtype="bool")
    np.testing.assert_array_equal((x * row).numpy(), [[-1.0, 0.0], [3.0, 0.0]])
    with pytest.raises(ValueError):
        x * dlkit.tensor([True, False, True], dtype="bool")


def _mlp_step_peak(retain: bool) -> int:
    """Bytes in flight (tracemalloc) during forward + backward of an MLP at batch 256."""
    rng = np.random.default_rng(4)
    model = nn.MLP([128, 64, 32, 10], generator=rng)
    X = dlkit.tensor(rng.random((256, 128), dtype=np.float32))
    y = dlkit.tensor(rng.integers(0, 10, 256), dtype="int64")
    loss_fn = nn.CrossEntropyLoss()

    def step():
        model.zero_grad()
        loss = loss_fn(model(X), y)
        loss.backward(retain_graph=retain)

    step()
    tracemalloc.start()
    try:
        step()
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        step()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_mlp_backward_holds_less_than_the_graded_sweep(monkeypatch):
    """The library path against the same step through the graded backward_sweep (a stand-in
    wrapper turns the lean sweep off): at most 3/4 of its bytes in flight."""
    lean = _mlp_step_peak(retain=False)
    sweep = autograd.backward_sweep
    monkeypatch.setattr(autograd, "backward_sweep", lambda *a: sweep(*a))
    graded = _mlp_step_peak(retain=False)
    assert lean <= 0.75 * graded, (lean, graded)


def test_mlp_backward_in_flight_below_activations_plus_gradients():
    """A bound from the sizes (batch 256, widths 128-64-32-10, float32): the activations the
    graph keeps (Linear and ReLU outputs of the two hidden layers, the logits and the loss's
    two (256, 10) arrays) plus, at the first ReLU's VJP, its out_grad, its result and the bool
    mask, plus 32 KiB for Python objects and small arrays.  The graded sweep's dict (all
    gradients to the end) exceeds it, and so did the unfused Linear (its X W product kept)."""
    m, widths = 256, (128, 64, 32, 10)
    acts = 2 * 4 * m * (widths[1] + widths[2]) + 3 * 4 * m * widths[3]
    relu_vjp = 2 * 4 * m * widths[1] + m * widths[1]
    assert _mlp_step_peak(retain=False) <= acts + relu_vjp + 32 * 1024


# ----------------------------------------------------------------------------------- hessian
def _loop_hessian(monkeypatch, fn, x):
    """dlkit.hessian through the row-by-row path (no batched rule for any op)."""
    with monkeypatch.context() as m:
        m.setattr(ops, "_batched_rule", lambda op: None)
        return dlkit.hessian(fn, x).numpy()


def _count_sweeps(monkeypatch, fn, x):
    calls = []
    grad = autograd.grad
    with monkeypatch.context() as m:
        m.setattr(autograd, "grad", lambda *a, **k: calls.append(1) or grad(*a, **k))
        H = dlkit.hessian(fn, x).numpy()
    return H, len(calls)


def test_hessian_of_a_100_dim_quadratic_is_P_in_one_batched_sweep(monkeypatch):
    rng = np.random.default_rng(5)
    n = 100
    A = rng.standard_normal((n, n))
    P, q, x0 = A @ A.T / n + np.eye(n), rng.standard_normal(n), rng.standard_normal(n)
    Pt, qt = t64(P), t64(q)

    def f(x):
        return 0.5 * (x * (Pt @ x)).sum() + (qt * x).sum()

    H, sweeps = _count_sweeps(monkeypatch, f, t64(x0))
    assert sweeps == 1                              # the gradient; the Hessian is one more sweep
    np.testing.assert_allclose(H, P, rtol=1e-12, atol=1e-14)
    loop = _loop_hessian(monkeypatch, f, t64(x0))
    np.testing.assert_allclose(loop, P, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(H, loop, rtol=1e-12, atol=1e-14)


def _numeric_hessian(fn, x0, eps=1e-5):
    def gradient(v):
        x = t64(v, requires_grad=True)
        return dlkit.grad(fn(x), [x])[0].numpy().ravel()

    flat = x0.ravel()
    rows = [(gradient((flat + eps * e).reshape(x0.shape)) - gradient((flat - eps * e).reshape(x0.shape)))
            / (2 * eps) for e in np.eye(flat.size)]
    return np.stack(rows).reshape(x0.shape + x0.shape)


def _many_ops(x):
    """Every op with a batched rule: x has shape (2, 3)."""
    W = t64(np.linspace(-0.5, 0.7, 12).reshape(3, 4))
    b = t64([0.1, -0.2, 0.3, 0.05])
    h = ops.tanh(x @ W + b)                                      # MatMul, Add (broadcast), Tanh
    s = ops.sigmoid(h) * ops.exp(0.3 * h) / (1.5 + h * h)        # Sigmoid, Exp, MulScalar, Div
    z = ops.log(1.0 + s) - ops.relu(h - 0.1) ** 3                # Log, AddScalar, ReLU, PowerScalar
    r = ops.logsumexp(z, axis=1).sum() + ops.log_softmax(z, axis=0)[0, 1]
    r = r + (ops.softmax(z.T, axis=1) * h.T).sum() + z.max(axis=1).sum()
    r = r + ops.maximum(x, 0.2 * x).sum() + ops.where(x > 0, x * x, -x).sum()
    r = r + x.reshape(3, 2)[1:, :].sum() * x[0, 0] - (-x.broadcast_to((4, 2, 3))).mean(axis=(0, 2)).sum()
    r = r + (ops.stack([x[0], x[1] * x[0]], axis=1) ** 2).sum()
    r = r + (ops.concatenate([x, x * x], axis=1) * ops.concatenate([x, x], axis=1)).sum()
    return r + (x ** 2).sum(axis=0, keepdims=True).sum()


def test_hessian_of_a_nonquadratic_function_both_paths(monkeypatch):
    x0 = np.array([[0.3, -0.8, 1.1], [0.5, 0.9, -1.3]])
    H, sweeps = _count_sweeps(monkeypatch, _many_ops, t64(x0))
    assert sweeps == 1
    loop = _loop_hessian(monkeypatch, _many_ops, t64(x0))
    np.testing.assert_allclose(H, loop, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(H, _numeric_hessian(_many_ops, x0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(H.reshape(6, 6), H.reshape(6, 6).T, rtol=1e-10, atol=1e-12)


def test_hessian_through_the_fused_linear_and_a_unused_input(monkeypatch):
    rng = np.random.default_rng(6)
    lin = nn.Linear(4, 3, generator=rng, dtype="float64")
    x0 = rng.standard_normal((2, 4))

    def f(x):
        return (ops.relu(lin(x)) ** 2).sum() + ops.softmax_cross_entropy(lin(x), dlkit.tensor([0, 2], dtype="int64"))

    H, sweeps = _count_sweeps(monkeypatch, f, t64(x0))
    loop = _loop_hessian(monkeypatch, f, t64(x0))
    np.testing.assert_allclose(H, loop, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(H, _numeric_hessian(f, x0), rtol=1e-5, atol=1e-6)
    # a function linear in x: the gradient does not depend on x, the Hessian is 0
    Z = dlkit.hessian(lambda x: (x * 2.0).sum(), t64([1.0, 2.0])).numpy()
    np.testing.assert_array_equal(Z, np.zeros((2, 2)))


def test_hessian_through_a_dtype_conversion(monkeypatch):
    x0 = np.array([0.5, -1.5, 2.0])

    def f(x):
        return (x.astype("float32") ** 3).sum().astype("float64")

    H, sweeps = _count_sweeps(monkeypatch, f, t64(x0))
    assert sweeps == 1
    np.testing.assert_array_equal(H, _loop_hessian(monkeypatch, f, t64(x0)))
    np.testing.assert_allclose(H, np.diag(6 * x0), rtol=1e-6)


class Square(Op):
    """A user's op (no batched rule): a ** 2 with its VJP written in Tensor ops."""

    def compute(self, a):
        return a * a

    def gradient(self, g, node):
        return (g * node.inputs[0] * 2.0,)


def test_hessian_with_a_users_op_or_a_replaced_vjp_takes_the_loop(monkeypatch):
    x0 = np.array([0.4, -1.2, 0.7])

    def f(x):
        return (Square()(ops.tanh(x)) * x).sum()

    H, sweeps = _count_sweeps(monkeypatch, f, t64(x0))
    assert sweeps == 1 + 3                          # the gradient, then one sweep per row
    np.testing.assert_allclose(H, _numeric_hessian(f, x0), rtol=1e-6, atol=1e-8)

    def g(x):
        return (ops.tanh(x) ** 3).sum()

    batched = dlkit.hessian(g, t64(x0)).numpy()
    own = ops.Tanh.gradient
    monkeypatch.setattr(ops.Tanh, "gradient", lambda self, G, node: own(self, G, node))
    H, sweeps = _count_sweeps(monkeypatch, g, t64(x0))
    assert sweeps == 1 + 3
    np.testing.assert_allclose(H, batched, rtol=1e-12, atol=1e-14)
