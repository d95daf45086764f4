"""Hidden checks for 02_fully_connected (points: mlp_forward 3, count_parameters 2)."""
from __future__ import annotations

import numpy as np

from autograder.api import load_reference, check, diagnose, expect_array, expect_scalar, fail


ref = load_reference(__file__)


def _case(seed, widths, m):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, widths[0]))
    Ws = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in zip(widths[:-1], widths[1:])]
    bs = [rng.standard_normal(b) for b in widths[1:]]
    return X, Ws, bs


def _check_forward(student, X, Ws, bs, activation, case):
    kwargs = {} if activation is None else {"activation": activation}
    act = activation or "relu"
    got = student.call("mlp_forward", X, Ws, bs, **kwargs)
    want = ref.mlp_forward(X, Ws, bs, act)
    got = expect_array(got, shape=want.shape, dtype_kind="f", name=f"logits for {case}")
    if not np.allclose(got, want, rtol=1e-9, atol=1e-10):
        fail(f"mlp_forward is wrong for {case}.", got=got, expected=want, hint=diagnose(got, {
            "the activation was applied to the last layer too (logits are linear)":
                lambda: ref.mlp_forward(X, Ws, bs, act, last=True),
            "the activation argument was ignored (ReLU used)": lambda: ref.mlp_forward(X, Ws, bs, "relu"),
            "the biases are missing": lambda: ref.mlp_forward(X, Ws, bs, act, use_bias=False),
            "the bias was added after the activation": lambda: ref.mlp_forward(X, Ws, bs, act, bias_after=True),
            "sigmoid with the wrong sign, 1/(1 + exp(+Z))":
                lambda: ref.mlp_forward(X, Ws, bs, act, act_override=lambda Z: 1.0 / (1.0 + np.exp(Z))),
        }))


@check("mlp_forward", points=1)
def test_mlp_forward_relu(student):
    X, Ws, bs = _case(0, [4, 6, 3], m=5)
    _check_forward(student, X, Ws, bs, None, "widths [4, 6, 3], default activation (relu)")
    X, Ws, bs = _case(1, [3, 5, 5, 2], m=7)
    _check_forward(student, X, Ws, bs, "relu", "widths [3, 5, 5, 2], relu")


@check("mlp_forward", points=1)
def test_mlp_forward_tanh_sigmoid(student):
    X, Ws, bs = _case(2, [5, 7, 4, 3], m=6)
    _check_forward(student, X, Ws, bs, "tanh", "widths [5, 7, 4, 3], tanh")
    X, Ws, bs = _case(3, [2, 8, 8, 4], m=9)
    _check_forward(student, X, Ws, bs, "sigmoid", "widths [2, 8, 8, 4], sigmoid")


@check("mlp_forward", points=1)
def test_mlp_forward_edge_cases(student):
    X, Ws, bs = _case(4, [3, 2], m=4)
    _check_forward(student, X, Ws, bs, "tanh", "a single linear layer (no activation at all)")
    X, Ws, bs = _case(5, [6, 4, 1], m=1)
    _check_forward(student, X, Ws, bs, "sigmoid", "one example (m = 1), one output")
    X, Ws, bs = _case(6, [4, 4, 4, 4, 4], m=4)
    _check_forward(student, X, Ws, bs, "relu", "square layers, widths [4, 4, 4, 4, 4]")


def _check_count(student, widths):
    got = expect_scalar(student.call("count_parameters", list(widths)), "int",
                        name=f"count_parameters({list(widths)})")
    want = ref.count_parameters(widths)
    if got != want:
        pairs = list(zip(widths[:-1], widths[1:]))
        known = {
            sum(a * b for a, b in pairs): "the biases were forgotten (each layer has n_out biases)",
            sum(a * b + a for a, b in pairs): "a bias was counted per INPUT unit; a layer has one per output unit",
            sum(a * b for a, b in pairs) + sum(widths): "biases were counted for the input layer too",
            sum(b * b + b for b in widths[1:]): "n_i * n_i weights instead of n_in * n_out",
        }
        fail(f"count_parameters({list(widths)}) is wrong.", got=got, expected=want, hint=known.get(got))


@check("count_parameters", points=1)
def test_count_parameters_small(student):
    for widths in [[2, 3], [784, 100, 10], [4, 4]]:
        _check_count(student, widths)


@check("count_parameters", points=1)
def test_count_parameters_deep_and_uneven(student):
    for widths in [[3, 5, 7, 2], [1, 1], [10, 1, 10, 1], [64, 128, 128, 128, 10]]:
        _check_count(student, widths)
