"""Trusted reference for 03_optimization (hidden checks only; never sent to the sandbox).

Optimizers are simulated in plain numpy float64, with PyTorch's semantics and state keys, on a
*problem*: parameters θ_i, gradients g_i = c_i·θ_i + s_t·d_i recomputed from the current θ at
every step t (s_t a per-step scale, so gradient sizes and signs vary), and a mask saying which
parameters have a gradient at step t (a parameter without one is skipped: no decay, no state
change, its own step counter does not advance).  Keyword switches produce the known mistakes
that the checks name in hints.
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

def simulate(update, problem):
    """``(trajectory, states)``: θ of every parameter after every step, and the final states.

    ``update(theta, g, st, k) -> new theta``; ``st`` is the parameter's state dict (library keys),
    ``k`` the number of ``step()`` calls so far (1-based; for the "global counter" mistakes).
    """
    thetas = [np.array(x, dtype=np.float64) for x in problem["inits"]]
    states = [{} for _ in thetas]
    trajectory = []
    with np.errstate(all="ignore"):      # a mistake's variant may produce NaN: it is then no match
        _steps(update, problem, thetas, states, trajectory)
    return trajectory, states


def _steps(update, problem, thetas, states, trajectory):
    for k, (scale, present) in enumerate(zip(problem["scales"], problem["mask"]), start=1):
        for i, (c, d) in enumerate(zip(problem["curv"], problem["lin"])):
            if present[i]:
                g = np.asarray(c) * thetas[i] + scale * np.asarray(d)
                thetas[i] = update(thetas[i], g, states[i], k)
        trajectory.append([th.copy() for th in thetas])


def _tick(st, k, global_step=False):
    st["step"] = k if global_step else st.get("step", 0) + 1
    return st["step"]


def sgd(lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *, variant="ref"):
    def update(theta, g, st, k):
        if weight_decay and variant != "no_decay":
            g = g + (-1.0 if variant == "decay_sign" else 1.0) * weight_decay * theta
        if momentum != 0:
            if "momentum_buffer" not in st and variant != "zero_init":
                buf = g.copy()
            else:
                old = st.get("momentum_buffer", np.zeros_like(g))
                if variant == "ema":
                    buf = momentum * old + (1 - momentum) * g
                elif variant == "no_dampening":
                    buf = momentum * old + g
                else:
                    buf = momentum * old + (1 - dampening) * g
            old_buf = st.get("momentum_buffer", np.zeros_like(g))
            st["momentum_buffer"] = buf
            if nesterov and variant == "nesterov_old_buf":
                g = g + momentum * old_buf
            elif nesterov and variant != "no_nesterov":
                g = g + momentum * buf
            else:
                g = buf
        return theta - lr * g
    return update


def momentum(lr, beta=0.9, unbias=False, *, form="ema", unbias_power="t", stateless=False, global_step=False):
    def update(theta, g, st, k):
        t = _tick(st, k, global_step)
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
            return theta - lr * u / denom
        return theta - lr * u
    return update


def nesterov(lr, beta=0.9, *, variant="ref"):
    def update(theta, g, st, k):
        u_old = st.get("u", np.zeros_like(g))
        if variant == "stateless":
            u_old = np.zeros_like(g)
        if variant == "plain_form":
            u = beta * u_old + g
            st["u"] = u
            return theta - lr * (beta * u + g)
        u = beta * u_old + (1 - beta) * g
        st["u"] = u
        if variant == "no_lookahead":
            return theta - lr * u
        if variant == "old_u":
            return theta - lr * (beta * u_old + (1 - beta) * g)
        if variant == "undamped":
            return theta - lr * (beta * u + g)
        return theta - lr * (beta * u + (1 - beta) * g)
    return update


def adagrad(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10, *, variant="ref"):
    def update(theta, g, st, k):
        t = _tick(st, k, variant == "global_step")
        if weight_decay and variant != "no_decay":
            g = g + weight_decay * theta
        init = 0.0 if variant == "no_init" else initial_accumulator_value
        s = st.get("sum", np.full_like(g, init))
        if variant == "ema":
            s = 0.99 * s + 0.01 * g * g
        elif variant == "abs":
            s = s + np.abs(g)
        else:
            s = s + g * g
        st["sum"] = s
        lr_t = lr / (1 + (t if variant == "decay_t" else t - 1) * lr_decay)
        if variant == "decay_mult":
            lr_t = lr * (1 - (t - 1) * lr_decay)
        if variant == "eps_inside":
            return theta - lr_t * g / np.sqrt(s + eps)
        return theta - lr_t * g / (np.sqrt(s) + eps)
    return update


def rmsprop(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, *, variant="ref"):
    def update(theta, g, st, k):
        t = _tick(st, k)
        if weight_decay and variant != "no_decay":
            g = g + weight_decay * theta
        s = st.get("square_avg", np.zeros_like(g))
        if variant == "stateless":
            s = np.zeros_like(g)
        if variant == "abs":
            s = alpha * s + (1 - alpha) * np.abs(g)
        elif variant == "no_one_minus":
            s = alpha * s + g * g
        else:
            s = alpha * s + (1 - alpha) * g * g
        st["square_avg"] = s
        if variant == "bias_corrected":
            s = s / (1 - alpha ** t)
        if centered:
            ga = alpha * st.get("grad_avg", np.zeros_like(g)) + (1 - alpha) * g
            st["grad_avg"] = ga
            if variant == "centered_no_square":
                s = s - ga
            elif variant != "not_centered":
                s = s - ga * ga
        if variant == "eps_inside":
            d = np.sqrt(s + eps)
        elif variant == "no_sqrt":
            d = s + eps
        else:
            d = np.sqrt(np.maximum(s, 0.0) if variant == "clamped" else s) + eps
        if momentum > 0 and variant != "no_momentum":
            buf = st.get("momentum_buffer", np.zeros_like(g))
            if variant == "momentum_of_g":
                buf = momentum * buf + g
                st["momentum_buffer"] = buf
                return theta - lr * buf / d
            buf = momentum * buf + g / d
            st["momentum_buffer"] = buf
            return theta - lr * buf
        return theta - lr * g / d
    return update


def adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, bias_correction=True, decoupled=False, *,
         variant="ref"):
    b1, b2 = betas
    if variant == "swapped":
        b1, b2 = b2, b1

    def update(theta, g, st, k):
        t = _tick(st, k, variant == "global_step")
        wd_decoupled = decoupled if variant != "decay_swapped" else not decoupled
        if weight_decay and variant != "no_decay":
            if wd_decoupled and variant == "decay_after":
                pass
            elif wd_decoupled:
                theta = theta * (1 - (1.0 if variant == "decay_no_lr" else lr) * weight_decay)
            else:
                g = g + weight_decay * theta
        m = st.get("exp_avg", np.zeros_like(g))
        v = st.get("exp_avg_sq", np.zeros_like(g))
        if variant == "stateless":
            m, v = np.zeros_like(g), np.zeros_like(g)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * (np.abs(g) if variant == "abs" else g * g)
        st["exp_avg"], st["exp_avg_sq"] = m, v
        correct = {"no_correction": False, "always_correct": True}.get(variant, bias_correction)
        if correct:
            p = t + 1 if variant == "power_t+1" else t
            m, v = m / (1 - b1 ** p), v / (1 - b2 ** p)
        if variant == "eps_inside":
            new = theta - lr * m / np.sqrt(v + eps)
        else:
            new = theta - lr * m / (np.sqrt(v) + eps)
        if weight_decay and wd_decoupled and variant == "decay_after":
            new = new - lr * weight_decay * new
        return new
    return update
