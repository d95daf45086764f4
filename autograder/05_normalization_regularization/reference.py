"""Trusted reference for 05_normalization_regularization (hidden checks only; never sent to the sandbox).

Closed forms in float64 for what the student's dlkit Modules must compute, and for the gradients the
student's engine must produce through them; ``ANSWERS`` are correct answer cells written differently
from the notebook's solutions (they must keep full marks).
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


ANSWERS: dict[str, str] = {
    "Linear": '''
class Linear(dlkit.nn.Module):
    def __init__(self, in_features, out_features, bias=True, generator=None, dtype="float32", initializer=None):
        self.in_features, self.out_features = in_features, out_features
        g = generator if generator is not None else np.random.default_rng()
        if initializer is not None:
            W = initializer(in_features, out_features, generator=g)
            self.weight = dlkit.nn.Parameter(W.numpy() if isinstance(W, dlkit.Tensor) else W, dtype=dtype)
            self.bias = dlkit.nn.Parameter(np.zeros(out_features), dtype=dtype) if bias else None
        else:
            self.weight = dlkit.nn.Parameter(dlkit.init.lecun_uniform(in_features, out_features, generator=g,
                                                                     dtype="float64"), dtype=dtype)
            k = 1 / math.sqrt(in_features)
            self.bias = dlkit.nn.Parameter(k * (2 * g.random(out_features) - 1), dtype=dtype) if bias else None

    def forward(self, x):
        if not isinstance(x, dlkit.Tensor):
            x = dlkit.tensor(np.asarray(x), dtype=self.weight.dtype)
        y = x @ self.weight
        if self.bias is None:
            return y
        return y + self.bias
''',
    "BatchNorm1d": '''
class BatchNorm1d(dlkit.nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, unbiased_running_var=True, dtype="float32"):
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.unbiased_running_var = unbiased_running_var
        self.weight = dlkit.nn.Parameter(np.ones(num_features), dtype=dtype)
        self.bias = dlkit.nn.Parameter(np.zeros(num_features), dtype=dtype)
        self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_var", np.ones(num_features, dtype=dtype))

    def forward(self, x):
        if not self.training:
            return self.weight * ((x - self.running_mean) / (self.running_var + self.eps) ** 0.5) + self.bias
        m = x.shape[0]
        mu = x.sum(axis=0) / m
        d = x - mu
        var = (d ** 2).sum(axis=0) / m
        y = d * (var + self.eps) ** -0.5
        mu_np, var_np = mu.numpy(), var.numpy()
        if self.unbiased_running_var:
            var_np = var_np * m / (m - 1)
        a = self.momentum
        self.running_mean = dlkit.tensor(self.running_mean.numpy() + a * (mu_np - self.running_mean.numpy()),
                                         dtype=self.running_mean.dtype)
        self.running_var = dlkit.tensor(self.running_var.numpy() + a * (var_np - self.running_var.numpy()),
                                        dtype=self.running_var.dtype)
        return y * self.weight + self.bias
''',
    "batchnorm_backward": '''
def batchnorm_backward(dout, x, gamma, eps=1e-5):
    m = x.shape[0]
    mu = x.sum(axis=0) / m
    xc = x - mu
    std = np.sqrt((xc ** 2).sum(axis=0) / m + eps)
    xhat = xc / std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dxhat = dout * gamma
    dx = (m * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0)) / (m * std)
    return dx, dgamma, dbeta
''',
    "LayerNorm1d": '''
class LayerNorm1d(dlkit.nn.Module):
    def __init__(self, dim, eps=1e-5, dtype="float32"):
        self.dim, self.eps = dim, eps
        self.weight = dlkit.nn.Parameter(np.ones(dim), dtype=dtype)
        self.bias = dlkit.nn.Parameter(np.zeros(dim), dtype=dtype)

    def forward(self, x):
        n = x.shape[-1]
        mu = x.sum(axis=-1, keepdims=True) / n
        centered = x - mu
        std = ((centered * centered).sum(axis=-1, keepdims=True) / n + self.eps) ** 0.5
        return self.weight * (centered / std) + self.bias
''',
    "Dropout": '''
class Dropout(dlkit.nn.Module):
    def __init__(self, p=0.5, generator=None):
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p
        self.generator = np.random.default_rng() if generator is None else generator

    def forward(self, x):
        if self.training and self.p > 0:
            keep = self.generator.random(x.shape) >= self.p
            scale = np.where(keep, 1.0 / (1.0 - self.p), 0.0)
            return x * dlkit.tensor(scale, dtype=x.dtype)
        return x
''',
}
