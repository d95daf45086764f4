"""Trusted references for 01_autodiff_backprop (hidden checks only; never sent to the sandbox).

Everything here is numpy in the grader's own process:

* ``forward(kind, params, arrays)`` and ``vjp(kind, params, arrays, G)``: each op's forward pass
  and its vector-Jacobian product in closed form; ``numerical_vjp`` gives the same by central
  differences, so every closed form is checked against an independent derivation before use.
* the small graphs the engine checks build in the sandbox (``GRAPH_OPS``), evaluated and
  differentiated here (``graph_forward`` / ``graph_gradients`` / ``graph_second``).
"""
from __future__ import annotations

import numpy as np

ID = "01_autodiff_backprop"


# ----------------------------------------------------------------------------- single ops
def _lse(X, axis, keepdims):
    c = X.max(axis=axis, keepdims=True)
    out = c + np.log(np.exp(X - c).sum(axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


def forward(kind: str, params: list, arrays: list[np.ndarray]) -> np.ndarray:
    """What ``dlkit.ops.<kind>(*params)(*arrays)`` computes."""
    a = arrays[0]
    if kind == "Add":
        return a + arrays[1]
    if kind == "Mul":
        return a * arrays[1]
    if kind == "Div":
        return a / arrays[1]
    if kind == "Negate":
        return -a
    if kind == "PowerScalar":
        return a ** params[0]
    if kind == "MatMul":
        return np.matmul(a, arrays[1])
    if kind == "Summation":
        return a.sum(axis=tuple(params[0]), keepdims=params[1])
    if kind == "BroadcastTo":
        return np.broadcast_to(a, tuple(params[0])).copy()
    if kind == "Reshape":
        return a.reshape(tuple(params[0]))
    if kind == "Transpose":
        return a.transpose(tuple(params[0]))
    if kind == "Exp":
        return np.exp(a)
    if kind == "Log":
        return np.log(a)
    if kind == "ReLU":
        return np.maximum(a, 0.0)
    if kind == "LogSumExp":
        return _lse(a, params[0], params[1])
    raise KeyError(kind)


def unbroadcast(G: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``G`` back to ``shape`` (the VJP of broadcasting)."""
    shape = tuple(shape)
    lead = G.ndim - len(shape)
    G = G.sum(axis=tuple(range(lead))) if lead else G
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and G.shape[i] != 1)
    return G.sum(axis=axes, keepdims=True) if axes else G


def _swap(x):
    return np.swapaxes(x, -1, -2)


def vjp(kind: str, params: list, arrays: list[np.ndarray], G: np.ndarray) -> list[np.ndarray]:
    """The gradient with respect to every input of ``forward(kind, params, arrays)``."""
    a = arrays[0]
    if kind == "Add":
        return [unbroadcast(G, a.shape), unbroadcast(G, arrays[1].shape)]
    if kind == "Mul":
        b = arrays[1]
        return [unbroadcast(G * b, a.shape), unbroadcast(G * a, b.shape)]
    if kind == "Div":
        b = arrays[1]
        return [unbroadcast(G / b, a.shape), unbroadcast(-G * a / b ** 2, b.shape)]
    if kind == "Negate":
        return [-G]
    if kind == "PowerScalar":
        p = params[0]
        return [G * p * a ** (p - 1)]
    if kind == "MatMul":
        b = arrays[1]
        return [unbroadcast(np.matmul(G, _swap(b)), a.shape), unbroadcast(np.matmul(_swap(a), G), b.shape)]
    if kind == "Summation":
        axes, keepdims = tuple(params[0]), params[1]
        Gk = G if keepdims else np.expand_dims(G, axes)
        return [np.broadcast_to(Gk, a.shape).copy()]
    if kind == "BroadcastTo":
        return [unbroadcast(G, a.shape)]
    if kind == "Reshape":
        return [G.reshape(a.shape)]
    if kind == "Transpose":
        return [G.transpose(np.argsort(params[0]))]
    if kind == "Exp":
        return [G * np.exp(a)]
    if kind == "Log":
        return [G / a]
    if kind == "ReLU":
        return [np.where(a > 0, G, 0.0)]
    if kind == "LogSumExp":
        axis, keepdims = params
        Gk = G if keepdims else np.expand_dims(G, axis)
        E = np.exp(a - a.max(axis=axis, keepdims=True))
        return [Gk * E / E.sum(axis=axis, keepdims=True)]
    raise KeyError(kind)


def numerical_vjp(F, arrays: list[np.ndarray], G: np.ndarray, eps: float = 1e-6) -> list[np.ndarray]:
    """⟨G, F(arrays)⟩ differentiated by central differences, input by input."""
    out = []
    for k in range(len(arrays)):
        X = [np.array(x, dtype=np.float64) for x in arrays]
        g = np.zeros_like(X[k])
        for idx in np.ndindex(X[k].shape):
            old = X[k][idx]
            X[k][idx] = old + eps
            plus = np.sum(G * F(X))
            X[k][idx] = old - eps
            minus = np.sum(G * F(X))
            X[k][idx] = old
            g[idx] = (plus - minus) / (2 * eps)
        out.append(g)
    return out


# ----------------------------------------------------------------------------- graphs
# A graph spec is a list of nodes: ("leaf", value, requires_grad) or (op, [input indices], c).
# Ops (the sandbox driver defines the same ones as dlkit Ops, with their own VJPs):
#   sin, cos (elementwise), emul (a*b, same shapes), plus (a+b, same shapes), scale (c*a),
#   first (returns a; its VJP gives None for b), total (sum of all entries, 0-d).
GRAPH_OPS = ("sin", "cos", "emul", "plus", "scale", "first", "total")


def graph_forward(spec: list) -> list[np.ndarray]:
    vals: list[np.ndarray] = []
    for node in spec:
        if node[0] == "leaf":
            vals.append(np.asarray(node[1], dtype=np.float64))
            continue
        op, ins, c = node
        x = [vals[i] for i in ins]
        vals.append({
            "sin": lambda: np.sin(x[0]), "cos": lambda: np.cos(x[0]),
            "emul": lambda: x[0] * x[1], "plus": lambda: x[0] + x[1],
            "scale": lambda: c * x[0], "first": lambda: x[0].copy(),
            "total": lambda: np.asarray(x[0].sum()),
        }[op]())
    return vals


def requires(spec: list) -> list[bool]:
    """Which nodes require grad (a leaf's flag; an op's output iff one of its inputs does)."""
    req: list[bool] = []
    for node in spec:
        req.append(bool(node[2]) if node[0] == "leaf" else any(req[i] for i in node[1]))
    return req


def graph_gradients(spec: list, out: int, seed: np.ndarray) -> dict[int, np.ndarray]:
    """``{node: gradient}`` of ⟨seed, value[out]⟩ for every node that requires grad, reaches
    ``out`` and receives a contribution (``first`` gives none to its second input)."""
    vals, req = graph_forward(spec), requires(spec)
    grads: dict[int, np.ndarray] = {out: np.asarray(seed, dtype=np.float64)}
    for i in range(out, -1, -1):
        if i not in grads or spec[i][0] == "leaf":
            continue
        op, ins, c = spec[i]
        g, x = grads[i], [vals[j] for j in ins]
        contrib = {
            "sin": lambda: [g * np.cos(x[0])], "cos": lambda: [-g * np.sin(x[0])],
            "emul": lambda: [g * x[1], g * x[0]], "plus": lambda: [g, g],
            "scale": lambda: [c * g], "first": lambda: [g, None],
            "total": lambda: [np.broadcast_to(g, x[0].shape).copy()],
        }[op]()
        for j, gj in zip(ins, contrib):
            if gj is not None and req[j]:
                grads[j] = grads[j] + gj if j in grads else gj
    return grads


def reachable(spec: list, out: int) -> set[int]:
    """Nodes that require grad and from which ``out`` can be reached (``out`` included)."""
    req = requires(spec)
    seen, todo = {out}, [out]
    while todo:
        i = todo.pop()
        if spec[i][0] != "leaf":
            for j in spec[i][1]:
                if req[j] and j not in seen:
                    seen.add(j)
                    todo.append(j)
    return seen


def with_values(spec: list, leaves: dict[int, np.ndarray]) -> list:
    return [("leaf", leaves[i], n[2]) if i in leaves else n for i, n in enumerate(spec)]


def graph_second(spec: list, out: int, seed: np.ndarray, weights: dict[int, np.ndarray],
                 eps: float = 1e-6) -> dict[int, np.ndarray]:
    """Gradient of h = Σ_leaf ⟨weights[leaf], ∂⟨seed, out⟩/∂leaf⟩ with respect to every leaf
    that requires grad, by central differences of the trusted first derivatives."""
    leaves = [i for i, n in enumerate(spec) if n[0] == "leaf" and n[2]]

    def h(values):
        g = graph_gradients(with_values(spec, values), out, seed)
        return sum(float(np.sum(weights[i] * g[i])) for i in weights if i in g)

    base = {i: np.array(spec[i][1], dtype=np.float64) for i in leaves}
    out_grads = {}
    for i in leaves:
        d = np.zeros_like(base[i])
        for idx in np.ndindex(d.shape):
            plus = {k: v.copy() for k, v in base.items()}
            minus = {k: v.copy() for k, v in base.items()}
            plus[i][idx] += eps
            minus[i][idx] -= eps
            d[idx] = (h(plus) - h(minus)) / (2 * eps)
        out_grads[i] = d
    return out_grads


def random_graph(rng: np.random.Generator, n_leaves: int, n_ops: int, shape: tuple,
                 constants: int = 0) -> list:
    """A random DAG over ``shape``-d values: every op reads earlier nodes, the last op reads
    the previous one (so everything tends to reach it), some nodes are used several times."""
    spec: list = []
    for k in range(n_leaves + constants):
        spec.append(("leaf", rng.standard_normal(shape), k < n_leaves))
    kinds = ("sin", "cos", "emul", "plus", "scale", "first")
    for k in range(n_ops):
        op = kinds[int(rng.integers(len(kinds)))]
        n = len(spec)
        if op in ("emul", "plus", "first"):
            ins = [n - 1, int(rng.integers(n))] if k == n_ops - 1 or rng.random() < .5 \
                else [int(rng.integers(n)), int(rng.integers(n))]
        else:
            ins = [n - 1 if rng.random() < .6 else int(rng.integers(n))]
        spec.append((op, ins, float(np.round(rng.uniform(-2, 2), 3))))
    return spec
