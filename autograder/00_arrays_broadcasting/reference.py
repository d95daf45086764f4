"""Trusted reference for 00_arrays_broadcasting (used by the hidden checks; never sent to the sandbox).

Independent of the notebook's solutions.  ``ANSWERS`` holds the same implementations as answer
cells (source text), which the project's tests use as a known-good submission.
"""
from __future__ import annotations

import numpy as np


def broadcast_shape(shape_a, shape_b):
    return tuple(int(s) for s in np.broadcast_shapes(tuple(shape_a), tuple(shape_b)))


def unbroadcast(grad, shape):
    grad = np.asarray(grad, dtype=np.float64)
    shape = tuple(shape)
    lead = grad.ndim - len(shape)
    out = grad.sum(axis=tuple(range(lead))) if lead else grad
    axes = tuple(i for i, s in enumerate(shape) if s == 1)
    if axes:
        out = out.sum(axis=axes, keepdims=True)
    return np.asarray(out).reshape(shape)


def linear_forward(Z, W, b):
    return Z @ W + b[None, :]


# -- known mistakes (the same ones as tests/mutants/00_arrays_broadcasting.py) --------------------

def unbroadcast_leading_only(grad, shape):
    lead = grad.ndim - len(shape)
    return grad.sum(axis=tuple(range(lead))) if lead else grad


def unbroadcast_size1_only(grad, shape):
    lead = grad.ndim - len(shape)
    axes = tuple(lead + i for i, s in enumerate(shape) if s == 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


def unbroadcast_mean(grad, shape):
    lead = grad.ndim - len(shape)
    out = grad.mean(axis=tuple(range(lead))) if lead else grad
    axes = tuple(i for i, s in enumerate(shape) if s == 1)
    return out.mean(axis=axes, keepdims=True) if axes else out


ANSWERS: dict[str, str] = {
    "broadcast_shape": '''
def broadcast_shape(shape_a, shape_b):
    a, b = tuple(shape_a), tuple(shape_b)
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + a
    b = (1,) * (n - len(b)) + b
    out = []
    for x, y in zip(a, b):
        if x != y and x != 1 and y != 1:
            raise ValueError(f"shapes {tuple(shape_a)} and {tuple(shape_b)} are not broadcastable")
        out.append(y if x == 1 else x)
    return tuple(out)
''',
    "unbroadcast": '''
def unbroadcast(grad, shape):
    shape = tuple(shape)
    lead = grad.ndim - len(shape)
    if lead:
        grad = grad.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return np.asarray(grad).reshape(shape)
''',
    "linear_forward": '''
def linear_forward(Z, W, b):
    return Z @ W + b
''',
}
