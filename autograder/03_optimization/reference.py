"""Trusted reference for 03_optimization (hidden checks only; never sent to the sandbox).

Optimizers are simulated in plain numpy on separable quadratics: every parameter θ has its own
loss ½ Σ c·θ² + d·θ (c, d linspace arrays), so g = c·θ + d is recomputed from θ at every step and
a wrong update changes every later gradient.  Keyword switches produce the known mistakes.
"""
from __future__ import annotations

import numpy as np


# -- gradient descent and Newton on f(θ) = ½ θᵀPθ + qᵀθ -------------------------------------------

def gradient_descent(P, q, theta0, lr, steps, *, sign=-1.0, use_q=True, half=False):
    theta = np.array(theta0, dtype=np.float64)
    rows = [theta.copy()]
    for _ in range(steps):
        g = (0.5 if half else 1.0) * (P @ theta) + (q if use_q else 0.0)
        theta = theta + sign * lr * g
        rows.append(theta.copy())
    return np.array(rows)


def newton_step(P, q, theta, lr=1.0):
    return theta - lr * np.linalg.solve(P, P @ theta + q)


# -- optimizers ----------------------------------------------------------------------------------

def simulate(update, inits, curv, lin, steps):
    """Trajectory ``[[θ_1 after step t for each param] for t in 1..steps]`` of ``update``.

    ``update(i, g, t, state) -> delta`` (θ ← θ − delta); ``state`` is a per-parameter dict.
    """
    thetas = [np.array(x, dtype=np.float64) for x in inits]
    states = [{} for _ in thetas]
    traj = []
    for t in range(1, steps + 1):
        for i, (th, c, d) in enumerate(zip(thetas, curv, lin)):
            g = c * th + d
            thetas[i] = th - update(i, g, t, states[i])
        traj.append([th.copy() for th in thetas])
    return traj


def momentum(lr, beta=0.9, unbias=False, *, form="ema", unbias_power="t", stateless=False):
    def update(i, g, t, st):
        u = st.get("u", np.zeros_like(g))
        if stateless:
            u = np.zeros_like(g)
        if form == "ema":
            u = beta * u + (1 - beta) * g
        elif form == "plain":            # u ← βu + g
            u = beta * u + g
        elif form == "swapped":          # u ← (1−β)u + βg
            u = (1 - beta) * u + beta * g
        st["u"] = u
        if unbias:
            denom = {"t": 1 - beta ** t, "one": 1 - beta, "t+1": 1 - beta ** (t + 1), "none": 1.0}[unbias_power]
            return lr * u / denom
        return lr * u
    return update


def nesterov(lr, beta=0.9, *, variant="ref"):
    def update(i, g, t, st):
        u_old = st.get("u", np.zeros_like(g))
        if variant == "stateless":
            u_old = np.zeros_like(g)
        if variant == "plain_form":
            u = beta * u_old + g
            st["u"] = u
            return lr * (beta * u + g)
        u = beta * u_old + (1 - beta) * g
        st["u"] = u
        if variant == "no_lookahead":
            return lr * u
        if variant == "old_u":
            return lr * (beta * u_old + (1 - beta) * g)
        if variant == "undamped":
            return lr * (beta * u + g)
        return lr * (beta * u + (1 - beta) * g)
    return update


def rmsprop(lr=1e-2, alpha=0.99, eps=1e-8, *, variant="ref"):
    def update(i, g, t, st):
        s = st.get("s", np.zeros_like(g))
        if variant == "stateless":
            s = np.zeros_like(g)
        if variant == "abs":
            s = alpha * s + (1 - alpha) * np.abs(g)
        elif variant == "no_one_minus":
            s = alpha * s + g * g
        else:
            s = alpha * s + (1 - alpha) * g * g
        st["s"] = s
        if variant == "eps_inside":
            return lr * g / np.sqrt(s + eps)
        if variant == "bias_corrected":
            return lr * g / (np.sqrt(s / (1 - alpha ** t)) + eps)
        if variant == "no_sqrt":
            return lr * g / (s + eps)
        return lr * g / (np.sqrt(s) + eps)
    return update


def adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, bias_correction=True, *, variant="ref"):
    b1, b2 = betas
    if variant == "swapped":
        b1, b2 = b2, b1

    def update(i, g, t, st):
        m = st.get("m", np.zeros_like(g))
        v = st.get("v", np.zeros_like(g))
        if variant == "stateless":
            m, v = np.zeros_like(g), np.zeros_like(g)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * (np.abs(g) if variant == "abs" else g * g)
        st["m"], st["v"] = m, v
        correct = {"no_correction": False, "always_correct": True}.get(variant, bias_correction)
        if correct:
            p = t + 1 if variant == "power_t+1" else t
            m, v = m / (1 - b1 ** p), v / (1 - b2 ** p)
        if variant == "eps_inside":
            return lr * m / np.sqrt(v + eps)
        return lr * m / (np.sqrt(v) + eps)
    return update


ANSWERS: dict[str, str] = {
    "gradient_descent": '''
def gradient_descent(P, q, theta0, lr, steps):
    out = np.empty((steps + 1, len(theta0)))
    out[0] = theta0
    for k in range(steps):
        out[k + 1] = out[k] - lr * (P @ out[k] + q)
    return out
''',
    "newton_step": '''
def newton_step(P, q, theta, lr=1.0):
    return theta - lr * np.linalg.solve(P, P @ theta + q)
''',
    "Momentum": '''
class Momentum(dlkit.optim.Optimizer):
    def __init__(self, params, lr, beta=0.9, unbias=False):
        super().__init__(params, lr=lr, beta=beta, unbias=unbias)

    def step(self):
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            state = self.state[i]
            state["t"] = state.get("t", 0) + 1
            u = self.beta * state.get("u", 0.0) + (1 - self.beta) * p.grad.numpy()
            state["u"] = u
            if self.unbias:
                u = u / (1 - self.beta ** state["t"])
            p.data = p.numpy() - self.lr * u
''',
    "Nesterov": '''
class Nesterov(dlkit.optim.Optimizer):
    def __init__(self, params, lr, beta=0.9):
        super().__init__(params, lr=lr, beta=beta)

    def step(self):
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad.numpy()
            u = self.beta * self.state[i].get("u", 0.0) + (1 - self.beta) * g
            self.state[i]["u"] = u
            p.data = p.numpy() - self.lr * (self.beta * u + (1 - self.beta) * g)
''',
    "RMSprop": '''
class RMSprop(dlkit.optim.Optimizer):
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8):
        super().__init__(params, lr=lr, alpha=alpha, eps=eps)

    def step(self):
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad.numpy()
            s = self.alpha * self.state[i].get("s", 0.0) + (1 - self.alpha) * g ** 2
            self.state[i]["s"] = s
            p.data = p.numpy() - self.lr * g / (np.sqrt(s) + self.eps)
''',
    "Adam": '''
class Adam(dlkit.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, bias_correction=True):
        super().__init__(params, lr=lr, betas=betas, eps=eps, bias_correction=bias_correction)

    def step(self):
        b1, b2 = self.betas
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad.numpy()
            st = self.state[i]
            t = st["t"] = st.get("t", 0) + 1
            m = st["m"] = b1 * st.get("m", 0.0) + (1 - b1) * g
            v = st["v"] = b2 * st.get("v", 0.0) + (1 - b2) * g ** 2
            if self.bias_correction:
                m, v = m / (1 - b1 ** t), v / (1 - b2 ** t)
            p.data = p.numpy() - self.lr * m / (np.sqrt(v) + self.eps)
''',
}
