"""Mutants for 03_optimization (see tests/mutants/__init__.py).

Optimizer mutants subclass ``dlkit.optim.Optimizer`` the way a student does: read
``p.grad.numpy()``, keep per-parameter state in ``self.state[i]``, write ``p.data = ...``.
"""

_GD = '''
def gradient_descent(P, q, theta0, lr, steps):
    theta = np.array(theta0, dtype=float)
    rows = [theta.copy()]
    for _ in range(steps):
        {update}
        rows.append(theta.copy())
    return np.array(rows)
'''


def _momentum(update: str, unbias_expr: str = "1.0 - self.beta ** t") -> str:
    return f'''
class Momentum(dlkit.optim.Optimizer):
    def __init__(self, params, lr, beta=0.9, unbias=False):
        super().__init__(params, lr=lr, beta=beta, unbias=unbias)

    def step(self):
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad.numpy().astype(np.float64)
            st = self.state[i]
            if not st:
                st["u"] = np.zeros_like(g)
                st["t"] = 0
            st["t"] += 1
            t = st["t"]
            u = st["u"]
{update}
            st["u"] = u
            scale = self.lr / ({unbias_expr}) if self.unbias else self.lr
            p.data = p.numpy().astype(np.float64) - scale * u
'''


def _nesterov(body: str) -> str:
    return f'''
class Nesterov(dlkit.optim.Optimizer):
    def __init__(self, params, lr, beta=0.9):
        super().__init__(params, lr=lr, beta=beta)

    def step(self):
        b = self.beta
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad.numpy().astype(np.float64)
            st = self.state[i]
            if not st:
                st["u"] = np.zeros_like(g)
{body}
            p.data = p.numpy().astype(np.float64) - self.lr * d
'''


def _rmsprop(body: str) -> str:
    return f'''
class RMSprop(dlkit.optim.Optimizer):
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8):
        super().__init__(params, lr=lr, alpha=alpha, eps=eps)

    def step(self):
        a, eps = self.alpha, self.eps
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad.numpy().astype(np.float64)
            st = self.state[i]
            if not st:
                st["s"] = np.zeros_like(g)
                st["t"] = 0
            st["t"] += 1
            t = st["t"]
{body}
            p.data = p.numpy().astype(np.float64) - self.lr * d
'''


def _adam(body: str) -> str:
    return f'''
class Adam(dlkit.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, bias_correction=True):
        super().__init__(params, lr=lr, betas=tuple(betas), eps=eps, bias_correction=bias_correction)

    def step(self):
        b1, b2 = self.betas
        eps = self.eps
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad.numpy().astype(np.float64)
            st = self.state[i]
            if not st:
                st["m"] = np.zeros_like(g)
                st["v"] = np.zeros_like(g)
                st["t"] = 0
            st["t"] += 1
            t = st["t"]
{body}
            p.data = p.numpy().astype(np.float64) - self.lr * d
'''


MUTANTS: dict[str, dict[str, str]] = {
    "gradient_descent": {
        "off by one: returns `steps` rows (forgets row 0 = theta0)": '''
def gradient_descent(P, q, theta0, lr, steps):
    theta = np.array(theta0, dtype=float)
    rows = []
    for _ in range(steps):
        theta = theta - lr * (P @ theta + q)
        rows.append(theta.copy())
    return np.array(rows)
''',
        "off by one: takes steps + 1 steps (steps + 2 rows)": _GD.replace("range(steps)", "range(steps + 1)")
            .format(update="theta = theta - lr * (P @ theta + q)"),
        "gradient sign flipped (ascends)": _GD.format(update="theta = theta + lr * (P @ theta + q)"),
        "forgets q in the gradient": _GD.format(update="theta = theta - lr * (P @ theta)"),
        "gradient with the 1/2 kept: 1/2 P theta + q": _GD.format(update="theta = theta - lr * (0.5 * P @ theta + q)"),
        "every row aliases the same array (in-place update, no copy)": '''
def gradient_descent(P, q, theta0, lr, steps):
    theta = np.array(theta0, dtype=float)
    rows = [theta]
    for _ in range(steps):
        theta -= lr * (P @ theta + q)
        rows.append(theta)
    return np.array(rows)
''',
    },
    "newton_step": {
        "sign flipped: theta + lr P^-1 (P theta + q)": '''
def newton_step(P, q, theta, lr=1.0):
    return theta + lr * np.linalg.solve(P, P @ theta + q)
''',
        "forgets q in the gradient": '''
def newton_step(P, q, theta, lr=1.0):
    return theta - lr * np.linalg.solve(P, P @ theta)
''',
        "multiplies by P instead of solving with P (a gradient step on P g)": '''
def newton_step(P, q, theta, lr=1.0):
    return theta - lr * (P @ (P @ theta + q))
''',
        "ignores lr (always a full step)": '''
def newton_step(P, q, theta, lr=1.0):
    return theta - np.linalg.solve(P, P @ theta + q)
''',
        "plain gradient step (no Hessian)": '''
def newton_step(P, q, theta, lr=1.0):
    return theta - lr * (P @ theta + q)
''',
    },
    "Momentum": {
        "the other momentum form: u <- beta u + g": _momentum("            u = self.beta * u + g"),
        "unbias divides by (1 - beta) instead of (1 - beta^t)": _momentum(
            "            u = self.beta * u + (1 - self.beta) * g", unbias_expr="1.0 - self.beta"),
        "stateless: u = (1 - beta) g every step (right for one step only)": _momentum(
            "            u = (1 - self.beta) * g"),
        "unbias ignored": _momentum("            u = self.beta * u + (1 - self.beta) * g",
                                    unbias_expr="1.0"),
        "bias correction with the wrong power (1 - beta^(t+1))": _momentum(
            "            u = self.beta * u + (1 - self.beta) * g", unbias_expr="1.0 - self.beta ** (t + 1)"),
        "weights the EMA the wrong way round: u <- (1 - beta) u + beta g": _momentum(
            "            u = (1 - self.beta) * u + self.beta * g"),
    },
    "Nesterov": {
        "plain momentum (no look-ahead)": _nesterov('''            st["u"] = b * st["u"] + (1 - b) * g
            d = st["u"]'''),
        "look-ahead with the old u: beta u_old + (1 - beta) g (which is plain momentum again)": _nesterov('''            d = b * st["u"] + (1 - b) * g
            st["u"] = b * st["u"] + (1 - b) * g'''),
        "look-ahead without damping the gradient: beta u + g": _nesterov('''            st["u"] = b * st["u"] + (1 - b) * g
            d = b * st["u"] + g'''),
        "stateless (u is not kept between steps)": _nesterov('''            u = (1 - b) * g
            d = b * u + (1 - b) * g'''),
        "the other momentum form inside: u <- beta u + g": _nesterov('''            st["u"] = b * st["u"] + g
            d = b * st["u"] + g'''),
    },
    "RMSprop": {
        "eps inside the square root": _rmsprop('''            st["s"] = a * st["s"] + (1 - a) * g * g
            d = g / np.sqrt(st["s"] + eps)'''),
        "forgets to square the gradient": _rmsprop('''            st["s"] = a * st["s"] + (1 - a) * np.abs(g)
            d = g / (np.sqrt(st["s"]) + eps)'''),
        "accumulates without (1 - alpha): s <- alpha s + g^2": _rmsprop('''            st["s"] = a * st["s"] + g * g
            d = g / (np.sqrt(st["s"]) + eps)'''),
        "stateless: s = (1 - alpha) g^2 every step": _rmsprop('''            s = (1 - a) * g * g
            d = g / (np.sqrt(s) + eps)'''),
        "adds Adam's bias correction s / (1 - alpha^t)": _rmsprop('''            st["s"] = a * st["s"] + (1 - a) * g * g
            d = g / (np.sqrt(st["s"] / (1 - a ** t)) + eps)'''),
        "divides by s instead of sqrt(s)": _rmsprop('''            st["s"] = a * st["s"] + (1 - a) * g * g
            d = g / (st["s"] + eps)'''),
    },
    "Adam": {
        "no bias correction (even when bias_correction=True)": _adam('''            st["m"] = b1 * st["m"] + (1 - b1) * g
            st["v"] = b2 * st["v"] + (1 - b2) * g * g
            d = st["m"] / (np.sqrt(st["v"]) + eps)'''),
        "always bias-corrects (ignores bias_correction=False)": _adam('''            st["m"] = b1 * st["m"] + (1 - b1) * g
            st["v"] = b2 * st["v"] + (1 - b2) * g * g
            d = (st["m"] / (1 - b1 ** t)) / (np.sqrt(st["v"] / (1 - b2 ** t)) + eps)'''),
        "bias correction with the wrong power (beta^(t+1))": _adam('''            st["m"] = b1 * st["m"] + (1 - b1) * g
            st["v"] = b2 * st["v"] + (1 - b2) * g * g
            if self.bias_correction:
                d = (st["m"] / (1 - b1 ** (t + 1))) / (np.sqrt(st["v"] / (1 - b2 ** (t + 1))) + eps)
            else:
                d = st["m"] / (np.sqrt(st["v"]) + eps)'''),
        "eps inside the square root": _adam('''            st["m"] = b1 * st["m"] + (1 - b1) * g
            st["v"] = b2 * st["v"] + (1 - b2) * g * g
            if self.bias_correction:
                d = (st["m"] / (1 - b1 ** t)) / np.sqrt(st["v"] / (1 - b2 ** t) + eps)
            else:
                d = st["m"] / np.sqrt(st["v"] + eps)'''),
        "second moment of g, not g^2 (v <- beta2 v + (1 - beta2) |g|)": _adam('''            st["m"] = b1 * st["m"] + (1 - b1) * g
            st["v"] = b2 * st["v"] + (1 - b2) * np.abs(g)
            if self.bias_correction:
                d = (st["m"] / (1 - b1 ** t)) / (np.sqrt(st["v"] / (1 - b2 ** t)) + eps)
            else:
                d = st["m"] / (np.sqrt(st["v"]) + eps)'''),
        "betas swapped (beta2 for m, beta1 for v)": _adam('''            st["m"] = b2 * st["m"] + (1 - b2) * g
            st["v"] = b1 * st["v"] + (1 - b1) * g * g
            if self.bias_correction:
                d = (st["m"] / (1 - b2 ** t)) / (np.sqrt(st["v"] / (1 - b1 ** t)) + eps)
            else:
                d = st["m"] / (np.sqrt(st["v"]) + eps)'''),
        "stateless: m and v restart every step (right for one step only)": _adam('''            m = (1 - b1) * g
            v = (1 - b2) * g * g
            if self.bias_correction:
                d = (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
            else:
                d = m / (np.sqrt(v) + eps)'''),
    },
}
