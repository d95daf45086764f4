"""Trusted reference for 05_normalization_regularization (hidden checks only; never sent to the sandbox).

Closed forms in float64 for what the student's dlkit Modules must compute, and for the gradients the
student's engine must produce through them.
"""
from __future__ import annotations

import numpy as np


# -- batch norm ---------------------------------------------------------------------------------

def batchnorm_forward(x, gamma, beta, eps=1e-5, *, ddof=0, eps_outside=False, use_eps=True, axis=0,
                      affine=True, no_sqrt=False):
    """Training-mode batch norm; the keyword switches produce the known mistakes for diagnosis."""
    mu = x.mean(axis=axis, keepdims=True)
    var = x.var(axis=axis, ddof=ddof, keepdims=True)
    e = eps if use_eps else 0.0
    if no_sqrt:
        xhat = (x - mu) / (var + e)
    elif eps_outside:
        xhat = (x - mu) / (np.sqrt(var) + e)
    else:
        xhat = (x - mu) / np.sqrt(var + e)
    return gamma * xhat + beta if affine else xhat


def batchnorm_eval(x, gamma, beta, running_mean, running_var, eps=1e-5):
    return gamma * (x - running_mean) / np.sqrt(running_var + eps) + beta


def batchnorm_backward(dout, x, gamma, eps=1e-5, *, variant="ref"):
    """Exact gradients of sum(dout * batchnorm_forward(x, gamma, beta, eps)); variants = mistakes."""
    m = x.shape[0]
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    inv = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * inv
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dxhat = dout * (gamma if variant != "no_gamma" else 1.0)
    if variant == "no_mean_terms":
        dx = dxhat * inv
    elif variant == "no_var_term":
        dx = inv * (dxhat - dxhat.mean(axis=0))
    elif variant == "no_mean_term":
        dx = inv * (dxhat - xhat * (dxhat * xhat).mean(axis=0))
    elif variant == "unbiased_var_term":
        dx = inv * (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).sum(axis=0) / (m - 1))
    else:
        dx = inv * (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0))
    if variant == "dgamma_no_xhat":
        dgamma = dout.sum(axis=0)
    if variant == "dbeta_mean":
        dbeta = dout.mean(axis=0)
    return dx, dgamma, dbeta


def numerical_batchnorm_grads(dout, x, gamma, beta, eps=1e-5, h=1e-6):
    """Central differences of sum(dout * batchnorm_forward(...)) w.r.t. x, gamma, beta."""
    def loss(x_, g_, b_):
        return float(np.sum(dout * batchnorm_forward(x_, g_, b_, eps)))
    out = []
    for k, arr in enumerate((x, gamma, beta)):
        grad = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            args = [x.copy(), gamma.copy(), beta.copy()]
            args[k][idx] += h
            fp = loss(*args)
            args[k][idx] -= 2 * h
            fm = loss(*args)
            grad[idx] = (fp - fm) / (2 * h)
        out.append(grad)
    return out


def running_statistics(batches, momentum=0.1, unbiased=True, num_features=None):
    """PyTorch's convention: running = (1 - momentum) running + momentum batch (var unbiased)."""
    d = batches[0].shape[1] if num_features is None else num_features
    mean, var = np.zeros(d), np.ones(d)
    for b in batches:
        m = b.shape[0]
        mean = (1 - momentum) * mean + momentum * b.mean(axis=0)
        var = (1 - momentum) * var + momentum * b.var(axis=0, ddof=1 if unbiased else 0)
    return mean, var


# -- layer norm ---------------------------------------------------------------------------------

def layernorm_forward(x, gamma, beta, eps=1e-5, *, axis=-1, ddof=0):
    mu = x.mean(axis=axis, keepdims=True)
    var = x.var(axis=axis, ddof=ddof, keepdims=True)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta


def layernorm_backward(dout, x, gamma, eps=1e-5):
    """Exact gradients of sum(dout * layernorm_forward(x, gamma, beta)) (normalised over the last axis)."""
    mu = x.mean(axis=-1, keepdims=True)
    inv = 1.0 / np.sqrt(x.var(axis=-1, keepdims=True) + eps)
    xhat = (x - mu) * inv
    dxhat = dout * gamma
    dx = inv * (dxhat - dxhat.mean(axis=-1, keepdims=True) - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
    lead = tuple(range(x.ndim - 1))
    return dx, (dout * xhat).sum(axis=lead), dout.sum(axis=lead)


# -- dropout ------------------------------------------------------------------------------------

def dropout_masks(shape, p, seed, calls):
    """The masks of ``calls`` training-mode forwards on one generator: random(shape) >= p each."""
    g = np.random.default_rng(seed)
    return [g.random(shape) >= p for _ in range(calls)]


# -- linear -------------------------------------------------------------------------------------

def linear_init(in_features, out_features, seed, bias=True):
    """dlkit.nn.Linear's default: weight then bias, each U(-1/sqrt(in), 1/sqrt(in)) as bound * (2r - 1)."""
    g = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(in_features)
    W = bound * (2.0 * g.random((in_features, out_features)) - 1.0)
    b = bound * (2.0 * g.random((out_features,)) - 1.0) if bias else None
    return W, b
