"""dlkit.gradcheck: passes correct VJPs, catches deliberately wrong ones, reports readably."""
from __future__ import annotations

import numpy as np
import pytest

import dlkit
from dlkit import ops

pytestmark = pytest.mark.usefixtures("numpy_backend")


def test_passes_and_reports_fields():
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    result = dlkit.gradcheck(lambda a, b: ops.tanh(a @ b), A, B)
    assert result and result.ok
    assert result.max_rel_error < 1e-6
    assert result.checked == A.size + B.size
    assert result.input_index in (0, 1)
    assert "PASSED" in repr(result) and "max relative error" in repr(result)


def test_float32_inputs_are_checked_in_float64():
    x = dlkit.tensor([[0.3, -1.2], [2.0, 0.7]])          # float32
    assert dlkit.gradcheck(lambda t: (t * t).sum(axis=1), x)


def test_only_inputs_requiring_grad_are_checked_when_marked():
    a = dlkit.tensor([1.0, 2.0], requires_grad=True)
    b = dlkit.tensor([3.0, 4.0, 5.0])                    # not marked: treated as a constant
    result = dlkit.gradcheck(lambda x, y: x.sum() * y, a, b)
    assert result and result.checked == 2


def test_int_labels_pass_through():
    rng = np.random.default_rng(1)
    labels = dlkit.tensor([0, 2, 1], dtype="int64")
    assert dlkit.gradcheck(ops.softmax_cross_entropy, rng.standard_normal((3, 3)), labels)


def test_wrong_matmul_vjp_is_caught(monkeypatch):
    """The classic mistake: forgetting the transposes in ∂(AB)/∂A = G Bᵀ, ∂/∂B = Aᵀ G."""
    def wrong(self, g, node):
        a, b = node.inputs
        return g @ b, a @ g                               # shapes fit for square matrices

    rng = np.random.default_rng(2)
    A, B = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    assert dlkit.gradcheck(lambda a, b: a @ b, A, B)     # the real VJP passes
    monkeypatch.setattr(ops.MatMul, "gradient", wrong)
    result = dlkit.gradcheck(lambda a, b: a @ b, A, B)
    assert not result and result.max_rel_error > 1e-2
    assert "FAILED" in repr(result)
    with pytest.raises(AssertionError, match="FAILED.*\n.*\n.*worst entry: input"):
        dlkit.gradcheck(lambda a, b: a @ b, A, B, raise_on_fail=True)


def test_wrong_relu_mask_is_caught(monkeypatch):
    def wrong(self, g, node):
        (a,) = node.inputs
        return (g * (a < 0).astype(a.dtype),)            # mask flipped

    x = np.array([[-1.0, 0.5], [2.0, -0.3]])
    assert dlkit.gradcheck(ops.relu, x)
    monkeypatch.setattr(ops.ReLU, "gradient", wrong)
    result = dlkit.gradcheck(ops.relu, x)
    assert not result
    assert result.analytic != pytest.approx(result.numeric)


def test_scaled_gradient_is_caught(monkeypatch):
    """An off-by-a-factor VJP (tanh' written as 1 - tanh instead of 1 - tanh²)."""
    monkeypatch.setattr(ops.Tanh, "gradient", lambda self, g, node: (g * (1.0 - node),))
    assert not dlkit.gradcheck(ops.tanh, np.array([0.4, -0.9, 1.5]))


def test_sampling_large_inputs_and_errors():
    x = np.random.default_rng(3).standard_normal((30, 30))
    result = dlkit.gradcheck(lambda t: (t ** 2).sum(), x, max_elements=20)
    assert result and result.checked == 20
    with pytest.raises(TypeError, match="must return a Tensor"):
        dlkit.gradcheck(lambda t: 1.0, x)
    with pytest.raises(TypeError, match="float32"):
        dlkit.gradcheck(lambda t: t.astype("float32"), x)


def test_repr_names_worst_entry_for_students(monkeypatch):
    monkeypatch.setattr(ops.Exp, "gradient", lambda self, g, node: (g * 2.0,))
    x = np.array([0.0, 1.0, 2.0])
    result = dlkit.gradcheck(ops.exp, x)
    assert not result and result.input_index == 0 and result.element_index == (2,)
    text = repr(result)
    assert "input 0, element (2,)" in text and "analytic" in text and "numeric" in text
