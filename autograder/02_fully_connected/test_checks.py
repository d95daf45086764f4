"""Hidden checks for 02_fully_connected (points: mlp_forward 3, count_parameters 2).

Every call goes through a trusted driver that hands the student's function the arguments inside
the sandbox and sends them back afterwards: an answer that changes its inputs (``weights.pop()``,
an in-place activation on ``X``) fails, because GRADED.md says answers have no side effects.
Results are checked for type and shape before any value is compared.
"""
from __future__ import annotations

import numpy as np

from autograder.api import (load_reference, check, expect_array, expect_scalar, fail,
                            call_pure, expect_float64, known_mistake)


ref = load_reference(__file__)


# -- mlp_forward ---------------------------------------------------------------------------------

def _case(seed, widths, m):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, widths[0]))
    Ws = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in zip(widths[:-1], widths[1:])]
    bs = [rng.standard_normal(b) for b in widths[1:]]
    return X, Ws, bs


def _check_forward(student, X, Ws, bs, activation, case):
    kwargs = {} if activation is None else {"activation": activation}
    act = activation or "relu"
    got = call_pure(student, "mlp_forward", ("X", "weights", "biases"), X, Ws, bs, **kwargs)
    want = ref.mlp_forward(X, Ws, bs, act)
    got = expect_float64(got, want.shape, f"logits for {case}")
    rtol, atol = 1e-9, 1e-10
    if not np.allclose(got, want, rtol=rtol, atol=atol):
        fail(f"mlp_forward is wrong for {case}.", got=got, expected=want, hint=known_mistake(got, want, {
            "the activation was applied to the last layer too (logits are linear)":
                lambda: ref.mlp_forward(X, Ws, bs, act, last=True),
            "the activation argument was ignored (ReLU used)": lambda: ref.mlp_forward(X, Ws, bs, "relu"),
            "the biases are missing": lambda: ref.mlp_forward(X, Ws, bs, act, use_bias=False),
            "the bias was added after the activation": lambda: ref.mlp_forward(X, Ws, bs, act, bias_after=True),
            "sigmoid with the wrong sign, 1/(1 + exp(+Z))":
                lambda: ref.mlp_forward(X, Ws, bs, act, act_override=lambda Z: 1.0 / (1.0 + np.exp(Z))),
        }, rtol=rtol, atol=atol))


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


_UNKNOWN = '''
def entry(X, weights, biases):
    try:
        out = mlp_forward(X, weights, biases, activation="softsign")
    except ValueError:
        return ["ValueError"]
    except Exception as exc:
        return [type(exc).__name__]
    return ["returned", type(out).__name__]
'''


@check("mlp_forward", points=1)
def test_mlp_forward_edge_cases(student):
    X, Ws, bs = _case(4, [3, 2], m=4)
    _check_forward(student, X, Ws, bs, "tanh", "a single linear layer (no activation at all)")
    X, Ws, bs = _case(5, [6, 4, 1], m=1)
    _check_forward(student, X, Ws, bs, "sigmoid", "one example (m = 1), one output")
    X, Ws, bs = _case(6, [4, 4, 4, 4, 4], m=4)
    _check_forward(student, X, Ws, bs, "relu", "square layers, widths [4, 4, 4, 4, 4]")
    X, Ws, bs = _case(7, [3, 5, 2], m=3)
    back = student.run(_UNKNOWN, "entry", X, Ws, bs)
    if back != ["ValueError"]:
        what = f"returned a {back[1]}" if type(back) is list and back[:1] == ["returned"] and len(back) == 2 \
            else f"raised {back[0]}" if type(back) is list and len(back) == 1 else "did something else"
        fail(f"mlp_forward(..., activation=\"softsign\") {what}; an unknown activation must raise ValueError "
             "(a silent fallback to another activation hides typos).")


# -- count_parameters ----------------------------------------------------------------------------

def _check_count(student, widths):
    got = expect_scalar(call_pure(student, "count_parameters", ("widths",), list(widths)), "int",
                        name=f"count_parameters({list(widths)})")
    want = ref.count_parameters(widths)
    if got != want:
        pairs = list(zip(widths[:-1], widths[1:]))
        known = {
            "the biases were forgotten (each layer has n_out biases)": sum(a * b for a, b in pairs),
            "a bias was counted per INPUT unit; a layer has one per output unit": sum(a * b + a for a, b in pairs),
            "biases were counted for the input layer too": sum(a * b for a, b in pairs) + sum(widths),
            "n_i * n_i weights instead of n_in * n_out": sum(b * b + b for b in widths[1:]),
        }
        found = [d for d, v in known.items() if v != want and v == got]
        fail(f"count_parameters({list(widths)}) is wrong.", got=got, expected=want,
             hint=found[0] if len(found) == 1 else None)


@check("count_parameters", points=1)
def test_count_parameters_small(student):
    for widths in [[2, 3], [784, 100, 10], [4, 4]]:
        _check_count(student, widths)


@check("count_parameters", points=1)
def test_count_parameters_deep_and_uneven(student):
    for widths in [[3, 5, 7, 2], [1, 1], [10, 1, 10, 1], [64, 128, 128, 128, 10], [7]]:
        _check_count(student, widths)
