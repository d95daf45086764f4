"""Hidden checks for 01_autodiff_backprop.

Points: matmul_vjp 2, relu_vjp 1, logsumexp_vjp 3, mlp_backward 5 (the notebook's test cells).
"""
from __future__ import annotations

import numpy as np

from autograder.api import load_reference, check, diagnose, expect_array, fail


ref = load_reference(__file__)


def _pair(result, what):
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        fail(f"{what} should return a pair (dA, dB); got {type(result).__name__}"
             + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else "") + ".")
    return result


# -- matmul_vjp --------------------------------------------------------------------------------

def _check_matmul(student, m, n, p, seed):
    rng = np.random.default_rng(seed)
    A, B, G = rng.standard_normal((m, n)), rng.standard_normal((n, p)), rng.standard_normal((m, p))
    case = f"A {A.shape}, B {B.shape}, G {G.shape}"
    dA, dB = _pair(student.call("matmul_vjp", A, B, G), "matmul_vjp")
    want_A, want_B = ref.matmul_vjp(A, B, G)
    mistakes = lambda which: {  # noqa: E731
        "dA and dB are swapped (return (dA, dB) in that order)": lambda: want_B if which == "A" else want_A,
        "the transposes are missing (G @ B / A @ G)": lambda: (G @ B) if which == "A" else (A @ G),
        "G^T @ A instead of A^T @ G": lambda: (G.T @ A),
        "divided by the batch size m (there is no mean in C = A @ B)":
            lambda: (want_A if which == "A" else want_B) / m,
        "the upstream gradient G was ignored": lambda: (np.ones_like(G) @ B.T) if which == "A" else (A.T @ np.ones_like(G)),
    }
    dA = expect_array(dA, shape=(m, n), dtype_kind="f", name=f"dA for {case}")
    if not np.allclose(dA, want_A, rtol=1e-9, atol=1e-10):
        fail(f"dA is wrong for {case}.", got=dA, expected=want_A, hint=diagnose(dA, mistakes("A")))
    dB = expect_array(dB, shape=(n, p), dtype_kind="f", name=f"dB for {case}")
    if not np.allclose(dB, want_B, rtol=1e-9, atol=1e-10):
        fail(f"dB is wrong for {case}.", got=dB, expected=want_B, hint=diagnose(dB, mistakes("B")))


@check("matmul_vjp", points=1)
def test_matmul_vjp_rectangular(student):
    _check_matmul(student, 3, 4, 5, seed=0)
    _check_matmul(student, 6, 2, 3, seed=1)


@check("matmul_vjp", points=1)
def test_matmul_vjp_edge_shapes(student):
    for m, n, p, seed in [(1, 4, 3, 2), (4, 4, 4, 3), (5, 1, 1, 4), (1, 1, 1, 5), (2, 7, 1, 6)]:
        _check_matmul(student, m, n, p, seed)


# -- relu_vjp ----------------------------------------------------------------------------------

@check("relu_vjp", points=1)
def test_relu_vjp(student):
    rng = np.random.default_rng(10)
    cases = [np.array([[-2.0, 0.0, 3.0], [0.5, -0.0, 0.0]]), rng.standard_normal((4, 5, 3)),
             rng.standard_normal(7), np.zeros((2, 2))]
    cases[1][0, 0, 0] = 0.0
    cases[1][1, 2, 1] = 0.0
    for X in cases:
        G = rng.standard_normal(X.shape) + 0.5
        got = expect_array(student.call("relu_vjp", X, G), shape=X.shape, dtype_kind="f",
                           name=f"dX for X of shape {X.shape}")
        want = ref.relu_vjp(X, G)
        if not np.allclose(got, want, rtol=1e-12, atol=0):
            fail(f"relu_vjp is wrong for X of shape {X.shape} (X has entries exactly 0).", got=got, expected=want,
                 hint=diagnose(got, {
                     "the mask used X >= 0: relu'(0) is 0 here, use X > 0": lambda: G * (X >= 0),
                     "multiplied by relu(X) (the output) instead of its derivative": lambda: G * np.maximum(X, 0),
                     "the upstream gradient G was dropped (returned the mask)": lambda: (X > 0).astype(float),
                     "masked by the sign of G instead of X": lambda: G * (G > 0),
                 }, rtol=1e-12, atol=0))


# -- logsumexp_vjp -----------------------------------------------------------------------------

def _check_lse(student, X, G, case):
    got = expect_array(student.call("logsumexp_vjp", X, G), shape=X.shape, dtype_kind="f",
                       name=f"dX for {case}")
    want = ref.logsumexp_vjp(X, G)
    if not np.allclose(got, want, rtol=1e-8, atol=1e-12):
        S = ref.softmax_rows(X)
        fail(f"logsumexp_vjp is wrong for {case}.", got=got, expected=want, hint=diagnose(got, {
            "the upstream scaling G[:, None] is missing (returned softmax(X))": lambda: S,
            "softmax over the wrong axis (axis=0)": lambda: G[:, None] * ref.softmax_rows(X.T).T,
            "exp(X) was not normalised by its row sum": lambda: G[:, None] * np.exp(X - X.max(axis=1, keepdims=True)),
            "G was broadcast along the wrong axis (G[None, :])": lambda: G[None, :] * S,
        }))


@check("logsumexp_vjp", points=1)
def test_logsumexp_vjp_basic(student):
    rng = np.random.default_rng(20)
    X, G = rng.standard_normal((4, 3)), rng.standard_normal(4)
    _check_lse(student, X, G, "X (4, 3), G (4,)")


@check("logsumexp_vjp", points=1)
def test_logsumexp_vjp_shapes(student):
    rng = np.random.default_rng(21)
    for m, n in [(1, 5), (5, 5), (6, 1), (3, 8)]:
        X, G = rng.standard_normal((m, n)) * 3, rng.standard_normal(m)
        _check_lse(student, X, G, f"X ({m}, {n}), G ({m},)")


@check("logsumexp_vjp", points=1)
def test_logsumexp_vjp_large_inputs_stable(student):
    rng = np.random.default_rng(22)
    X = rng.standard_normal((3, 4)) + np.array([[1000.0], [-1000.0], [750.0]])
    G = np.array([1.0, -2.0, 0.5])
    _check_lse(student, X, G, "large |X| (~1000: subtract the row max before exp)")


# -- mlp_backward ------------------------------------------------------------------------------

def _mlp_case(seed, widths, m):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, widths[0]))
    y = rng.integers(0, widths[-1], size=m)
    Ws = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in zip(widths[:-1], widths[1:])]
    return X, y, Ws


def _check_mlp(student, X, y, Ws, case, *, numerical=False):
    got = student.call("mlp_backward", X, y, Ws)
    if not isinstance(got, (list, tuple)) or len(got) != len(Ws):
        fail(f"mlp_backward should return a list of {len(Ws)} gradients (one per weight matrix) for {case}; "
             f"got {type(got).__name__}" + (f" of length {len(got)}" if isinstance(got, (list, tuple)) else ""))
    want = ref.mlp_backward(X, y, Ws)
    if numerical:
        num = ref.numerical_gradients(X, y, Ws)
        assert all(np.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in zip(want, num)), "reference disagrees with finite differences"
    variants = {
        "the ReLU derivative mask (Z_i W_i > 0) is missing in the recursion": lambda: ref.mlp_backward(X, y, Ws, mask=False),
        "the 1/m of the mean is missing (gradient of the summed loss)": lambda: ref.mlp_backward(X, y, Ws, mean=False),
        "the one-hot labels were not subtracted (softmax alone)": lambda: ref.mlp_backward(X, y, Ws, onehot=False),
        "ReLU applied to the last layer (the last layer is linear)": lambda: ref.mlp_backward(X, y, Ws, relu_last=True),
    }
    for i, (g, w) in enumerate(zip(got, want)):
        name = f"dW[{i}] (of {len(Ws)}) for {case}"
        if type(g) is np.ndarray and g.shape != w.shape and len(Ws) > 1 and g.shape == want[len(Ws) - 1 - i].shape:
            fail(f"{name} has shape {g.shape}, expected {w.shape}: return the gradients in the order of `weights`.")
        g = expect_array(g, shape=w.shape, dtype_kind="f", name=name)
        if not np.allclose(g, w, rtol=1e-6, atol=1e-9):
            fail(f"{name} is wrong.", got=g, expected=w,
                 hint=diagnose(g, {k: (lambda f=f, i=i: f()[i]) for k, f in variants.items()}))


@check("mlp_backward", points=1)
def test_mlp_backward_one_layer(student):
    X, y, Ws = _mlp_case(30, [4, 3], m=5)
    _check_mlp(student, X, y, Ws, "a single linear layer (4 -> 3), m = 5", numerical=True)


@check("mlp_backward", points=2)
def test_mlp_backward_two_layers(student):
    X, y, Ws = _mlp_case(31, [5, 6, 3], m=8)
    _check_mlp(student, X, y, Ws, "widths [5, 6, 3], m = 8", numerical=True)
    X, y, Ws = _mlp_case(32, [3, 4, 4], m=1)
    _check_mlp(student, X, y, Ws, "widths [3, 4, 4], m = 1")


@check("mlp_backward", points=2)
def test_mlp_backward_deep(student):
    X, y, Ws = _mlp_case(33, [6, 8, 7, 5, 4], m=10)
    _check_mlp(student, X, y, Ws, "widths [6, 8, 7, 5, 4], m = 10", numerical=True)
    X, y, Ws = _mlp_case(34, [2, 9, 9, 2], m=12)
    _check_mlp(student, X, y, Ws, "widths [2, 9, 9, 2], m = 12")
