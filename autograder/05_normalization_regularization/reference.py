"""Trusted reference for 05_normalization_regularization (hidden checks only; never sent to the sandbox)."""
from __future__ import annotations

import numpy as np


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


def dropout_mask(shape, p, seed):
    return np.random.default_rng(seed).random(shape) >= p


def dropout_forward(x, p, seed, train=True):
    if not train:
        return x.copy(), np.ones(x.shape, dtype=bool)
    mask = dropout_mask(x.shape, p, seed)
    return x * mask / (1.0 - p), mask


def dropout_backward(dout, mask, p):
    return dout * mask / (1.0 - p)


ANSWERS: dict[str, str] = {
    "batchnorm_forward": '''
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    m = x.shape[0]
    mu = x.sum(axis=0) / m
    xc = x - mu
    var = (xc ** 2).sum(axis=0) / m
    std = np.sqrt(var + eps)
    xhat = xc / std
    return gamma * xhat + beta, {"xhat": xhat, "std": std, "gamma": gamma}
''',
    "batchnorm_backward": '''
def batchnorm_backward(dout, cache):
    xhat, std, gamma = cache["xhat"], cache["std"], cache["gamma"]
    m = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dxhat = dout * gamma
    dx = (m * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0)) / (m * std)
    return dx, dgamma, dbeta
''',
    "dropout_forward": '''
def dropout_forward(x, p, generator, train=True):
    if not train:
        return x, np.ones_like(x, dtype=bool)
    mask = generator.random(x.shape) >= p
    return np.where(mask, x / (1 - p), 0.0), mask
''',
    "dropout_backward": '''
def dropout_backward(dout, mask, p):
    return np.where(mask, dout / (1 - p), 0.0)
''',
}
