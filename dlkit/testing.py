"""Helpers for the test cells of notebook 01 (and for anyone testing a VJP or an engine).

* ``Sin``, ``Cos``, ``Times``, ``Plus``, ``First``: small ops that bring their own VJPs (``Times``
  and ``Plus`` take two tensors of one shape, no broadcasting), so an engine can be tested before
  any of dlkit's own VJPs is written.  They compute with numpy (numpy backend).
* ``f64``: a float64 tensor; ``reaches``: does a tensor's graph lead to another tensor;
* ``check_order``: is a list a topological order of given tensors;
* ``numerical_vjp``: a VJP by central differences; ``check_vjp``: runs a ``gradient`` method and
  compares it with central differences, shapes, dtype, recording and side effects included.
"""
from __future__ import annotations

import numpy as np

from .autograd import Op, Tensor, set_grad_enabled, tensor

__all__ = ["Sin", "Cos", "Times", "Plus", "First", "f64", "reaches", "check_order",
           "numerical_vjp", "check_vjp"]


class Sin(Op):
    def compute(self, a):
        return np.sin(a)

    def gradient(self, out_grad, node):
        return (Times()(out_grad, Cos()(node.inputs[0])),)


class Cos(Op):
    def compute(self, a):
        return np.cos(a)

    def gradient(self, out_grad, node):
        return (Times()(out_grad, Sin()(node.inputs[0])) * -1.0,)


class Times(Op):
    # a * b for two tensors of one shape (no broadcasting)
    def compute(self, a, b):
        return a * b

    def gradient(self, out_grad, node):
        a, b = node.inputs
        return Times()(out_grad, b), Times()(out_grad, a)


class Plus(Op):
    # a + b for two tensors of one shape (no broadcasting)
    def compute(self, a, b):
        return a + b

    def gradient(self, out_grad, node):
        return out_grad, out_grad


class First(Op):
    # returns its first input; its VJP gives None for the second (as ops do for integer labels)
    def compute(self, a, b):
        return a.copy()

    def gradient(self, out_grad, node):
        return out_grad, None


def f64(values, requires_grad=False):
    return tensor(np.asarray(values, dtype=np.float64), requires_grad=requires_grad,
                        dtype="float64")


def reaches(t, target):
    # does the graph of t lead to target through .inputs? (t itself included)
    seen, todo = {t}, [t]
    while todo:
        node = todo.pop()
        if node is target:
            return True
        for parent in node.inputs:
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return False


def check_order(order, output, expected):
    # order must hold exactly the tensors of `expected` (a list), each once, inputs first
    assert isinstance(order, list), f"topological_order must return a list, got {type(order).__name__}"
    assert all(isinstance(t, Tensor) for t in order), "the order must hold Tensors only"
    ids = [id(t) for t in order]
    assert len(set(ids)) == len(ids), "a tensor appears more than once in the order"
    assert set(ids) == {id(t) for t in expected}, (
        f"the order holds {len(order)} tensors; expected the {len(expected)} tensors that "
        "require grad and lead to the output (the output and the leaves included)")
    assert all(t.grad is None for t in expected), "topological_order must not change the graph"
    place = {id(t): i for i, t in enumerate(order)}
    for t in order:
        for parent in t.inputs:
            if parent.requires_grad:
                assert place[id(parent)] < place[id(t)], "a tensor comes before one of its inputs"


def numerical_vjp(f, arrays, G, eps=1e-6):
    # the gradient of sum(G * f(*inputs)) by central differences, one input entry at a time
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    grads = []
    for k, a in enumerate(arrays):
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + eps
            plus = np.sum(G * f(*[f64(v) for v in arrays]).numpy())
            a[idx] = old - eps
            minus = np.sum(G * f(*[f64(v) for v in arrays]).numpy())
            a[idx] = old
            g[idx] = (plus - minus) / (2 * eps)
        grads.append(g)
    return grads


def check_vjp(fn, op, arrays, needs, requires=None, expected=None, seed=0):
    # Runs your fn(op, out_grad, node) for node = op(*inputs) and checks, for each input:
    # a float64 Tensor of the input's shape, equal to central differences (or `expected`); with
    # recording on, built from Tensor ops that reach what it depends on (`needs`: per input, a
    # list of "out_grad" and input positions); nothing modified in place.
    name = getattr(fn, "__name__", "your VJP")
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    requires = requires or [True] * len(arrays)
    G = np.random.default_rng(seed).standard_normal(op(*[f64(a) for a in arrays]).shape)
    want = expected or numerical_vjp(op, arrays, G)
    for record in (False, True):
        xs = [f64(a, requires_grad=r or record) for a, r in zip(arrays, requires)]
        node = op(*xs)
        g = f64(G, requires_grad=record)
        before = node.numpy()
        with set_grad_enabled(record):
            grads = fn(op, g, node)
        assert isinstance(grads, (tuple, list)) and len(grads) == len(xs), (
            f"{name} must return a tuple with one gradient per input ({len(xs)})")
        for k, (gk, x, w) in enumerate(zip(grads, xs, want)):
            if gk is None and not x.requires_grad:
                continue
            assert isinstance(gk, Tensor), f"{name}: gradient {k} is a {type(gk).__name__}, not a Tensor"
            assert gk.shape == x.shape, f"{name}: gradient {k} has shape {gk.shape}, the input {x.shape}"
            assert gk.dtype == np.float64, f"{name}: gradient {k} is {gk.dtype}; the inputs are float64"
            err = np.abs(gk.numpy() - w).max() if w.size else 0.0
            assert np.allclose(gk.numpy(), w, rtol=1e-5, atol=1e-7), (
                f"{name}: gradient {k} differs from central differences by up to {err:.2e} "
                f"(input shapes {[a.shape for a in arrays]})")
            if record:
                for need in needs[k]:
                    target = g if need == "out_grad" else xs[need]
                    assert reaches(gk, target), (
                        f"{name}: gradient {k} is right, but its graph does not lead back to "
                        f"{need if need == 'out_grad' else 'input ' + str(need)}: build it with "
                        "Tensor ops only, so that it can be differentiated again")
        unchanged = all(np.array_equal(x.numpy(), a) for x, a in zip(xs, arrays))
        assert unchanged and np.array_equal(g.numpy(), G) and np.array_equal(node.numpy(), before), (
            f"{name} modified a tensor in place")
    # float32, dlkit's default (what models train in): the gradients stay float32
    xs = [tensor(a, requires_grad=r, dtype="float32") for a, r in zip(arrays, requires)]
    node = op(*xs)
    grads = fn(op, tensor(G, dtype="float32"), node)
    for k, (gk, x, w) in enumerate(zip(grads, xs, want)):
        if gk is None and not x.requires_grad:
            continue
        assert isinstance(gk, Tensor) and gk.dtype == np.float32, (
            f"{name}: for float32 inputs gradient {k} must be a float32 Tensor, got "
            f"{getattr(gk, 'dtype', type(gk).__name__)}: build constants in the inputs' dtype")
        assert np.allclose(gk.numpy(), w, rtol=1e-3, atol=1e-4), f"{name}: wrong for float32 inputs"
