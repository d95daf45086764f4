"""Trusted reference for 02_fully_connected (hidden checks only; never sent to the sandbox)."""
from __future__ import annotations

import numpy as np

ACTIVATIONS = {
    "relu": lambda Z: np.maximum(Z, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda Z: 0.5 * (1.0 + np.tanh(0.5 * Z)),   # = 1 / (1 + exp(-Z)), overflow-free
}


def mlp_forward(X, weights, biases, activation="relu", *, last=False, use_bias=True, act_override=None,
                bias_after=False):
    """Reference forward; the keyword switches produce the known mistakes for diagnosis."""
    sigma = act_override or ACTIVATIONS[activation]
    Z = X
    L = len(weights)
    for i, (W, b) in enumerate(zip(weights, biases)):
        Z = Z @ W
        if use_bias and not bias_after:
            Z = Z + b
        if i < L - 1 or last:
            Z = sigma(Z)
        if use_bias and bias_after:
            Z = Z + b
    return Z


def count_parameters(widths):
    return int(sum(a * b + b for a, b in zip(widths[:-1], widths[1:])))


ANSWERS: dict[str, str] = {
    "mlp_forward": '''
def mlp_forward(X, weights, biases, activation="relu"):
    table = {"relu": lambda Z: np.maximum(Z, 0.0), "tanh": np.tanh,
             "sigmoid": lambda Z: 1.0 / (1.0 + np.exp(-Z))}
    if activation not in table:
        raise ValueError(f"unknown activation {activation!r}")
    sigma = table[activation]
    Z = X
    for i, (W, b) in enumerate(zip(weights, biases)):
        Z = Z @ W + b
        if i < len(weights) - 1:
            Z = sigma(Z)
    return Z
''',
    "count_parameters": '''
def count_parameters(widths):
    return sum(n_in * n_out + n_out for n_in, n_out in zip(widths[:-1], widths[1:]))
''',
}
