"""Trusted reference for 01_autodiff_backprop (hidden checks only; never sent to the sandbox)."""
from __future__ import annotations

import numpy as np


def matmul_vjp(A, B, G):
    return G @ B.T, A.T @ G


def relu_vjp(X, G):
    return np.where(X > 0, G, 0.0)


def softmax_rows(X):
    E = np.exp(X - X.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def logsumexp_rows(X):
    c = X.max(axis=1)
    return c + np.log(np.exp(X - c[:, None]).sum(axis=1))


def logsumexp_vjp(X, G):
    return G[:, None] * softmax_rows(X)


def mlp_loss(X, y, weights):
    """Mean softmax cross-entropy of the bias-free ReLU MLP (last layer linear)."""
    Z = X
    for i, W in enumerate(weights):
        Z = Z @ W
        if i < len(weights) - 1:
            Z = np.maximum(Z, 0.0)
    return float(np.mean(logsumexp_rows(Z) - Z[np.arange(len(y)), y]))


def mlp_backward(X, y, weights, *, mask=True, mean=True, onehot=True, relu_last=False):
    """Reference gradients; the keyword switches produce the known mistakes for diagnosis."""
    L = len(weights)
    Zs, pre = [X], []
    for i, W in enumerate(weights):
        A = Zs[-1] @ W
        pre.append(A)
        Zs.append(np.maximum(A, 0.0) if (i < L - 1 or relu_last) else A)
    S = softmax_rows(Zs[-1])
    if onehot:
        S = S - np.eye(S.shape[1])[y]
    G = S / X.shape[0] if mean else S
    grads = [None] * L
    for i in range(L - 1, -1, -1):
        D = G * (pre[i] > 0) if (mask and (i < L - 1 or relu_last)) else G
        grads[i] = Zs[i].T @ D
        G = D @ weights[i].T
    return grads


def numerical_gradients(X, y, weights, eps=1e-6):
    """Central differences of :func:`mlp_loss` (trusted, independent of the analytic formula)."""
    out = []
    for k, W in enumerate(weights):
        g = np.zeros_like(W)
        for idx in np.ndindex(W.shape):
            Ws = [w.copy() for w in weights]
            Ws[k][idx] += eps
            fp = mlp_loss(X, y, Ws)
            Ws[k][idx] -= 2 * eps
            fm = mlp_loss(X, y, Ws)
            g[idx] = (fp - fm) / (2 * eps)
        out.append(g)
    return out


ANSWERS: dict[str, str] = {
    "matmul_vjp": '''
def matmul_vjp(A, B, G):
    return G @ B.T, A.T @ G
''',
    "relu_vjp": '''
def relu_vjp(X, G):
    return np.where(X > 0, G, 0.0)
''',
    "logsumexp_vjp": '''
def logsumexp_vjp(X, G):
    Z = X - X.max(axis=1, keepdims=True)
    P = np.exp(Z)
    P /= P.sum(axis=1, keepdims=True)
    return P * G[:, None]
''',
    "mlp_backward": '''
def mlp_backward(X, y, weights):
    hidden = [X]
    for W in weights[:-1]:
        hidden.append(np.maximum(hidden[-1] @ W, 0.0))
    logits = hidden[-1] @ weights[-1]
    P = np.exp(logits - logits.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    P[np.arange(X.shape[0]), y] -= 1.0
    G = P / X.shape[0]
    grads = []
    for i in range(len(weights) - 1, -1, -1):
        grads.append(hidden[i].T @ G)
        if i > 0:
            G = (G @ weights[i].T) * (hidden[i] > 0)
    return grads[::-1]
''',
}
