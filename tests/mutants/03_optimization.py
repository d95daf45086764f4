"""Mutants for 03_optimization (see tests/mutants/__init__.py).

Optimizer mutants subclass ``dlkit.optim.Optimizer`` the way a student does, some with numpy on
the host (``p.grad.numpy()``, ``p.data = ndarray``), some with Tensor arithmetic.  Besides the
wrong formulas: do-nothing optimizers (``params.clear()`` in ``__init__``, issue 10), optimizers
that treat a missing gradient as zero, that count steps globally, or that change ``p.grad``.

``ANSWERS`` is one independent right answer per piece (the generic suite grades it and applies the
mutants to the notebook's), ``CORRECT`` holds more right answers written differently from the notebook's and reference.py's (they
must keep full marks), and ``SHORTCUTS`` answers that hand the work to something in dlkit (they
must score 0 in the sandbox, where the student kit has those pieces withheld).
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

# -- optimizer templates: {body} computes the new theta `new` from `theta`, `g`, state `st` ---------

_HEAD = '''
class {name}(dlkit.optim.Optimizer):
    def __init__(self, params, {sig}):
        super().__init__(params, {kw})
{extra_init}
    def step(self):
        for i, p in enumerate(self.params):
{skip}
            g = {grad}
            theta = p.numpy().astype(np.float64)
            st = self.state[i]
{body}
            p.data = new
'''

_SKIP = '''            if p.grad is None:
                continue'''
_SKIP_AS_ZERO = '''            if p.grad is None:
                p.grad = dlkit.tensor(np.zeros(p.shape), dtype="float64")'''

_SIGS = {
    "SGD": ("lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False",
            "lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov"),
    "Momentum": ("lr, beta=0.9, unbias=False", "lr=lr, beta=beta, unbias=unbias"),
    "Nesterov": ("lr, beta=0.9", "lr=lr, beta=beta"),
    "Adagrad": ("lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10",
                "lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, "
                "initial_accumulator_value=initial_accumulator_value, eps=eps"),
    "RMSprop": ("lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False",
                "lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered"),
    "Adam": ("lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, bias_correction=True",
             "lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, bias_correction=bias_correction"),
    "AdamW": ("lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, bias_correction=True",
              "lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, bias_correction=bias_correction"),
}


def _opt(name, body, *, skip=_SKIP, grad="p.grad.numpy().astype(np.float64)", extra_init="", sig=None):
    s, kw = _SIGS[name]
    if sig is not None:
        s, kw = sig
    body = "\n".join("            " + line if line else "" for line in body.strip("\n").split("\n"))
    return _HEAD.format(name=name, sig=s, kw=kw, extra_init=extra_init, skip=skip, grad=grad, body=body)


# issue 10: clears the list it was handed and keeps it (the old driver's own list) as its parameters
_CLEAR = "        params.clear()\n        self.params = params\n"

# correct bodies, reused by the mutants that change one thing around them
_SGD_BODY = '''
d = g + self.weight_decay * theta
if self.momentum:
    if "momentum_buffer" in st:
        st["momentum_buffer"] = self.momentum * st["momentum_buffer"] + (1 - self.dampening) * d
    else:
        st["momentum_buffer"] = d.copy()
    d = d + self.momentum * st["momentum_buffer"] if self.nesterov else st["momentum_buffer"]
new = theta - self.lr * d
'''

_MOMENTUM_BODY = '''
st["step"] = st.get("step", 0) + 1
st["u"] = self.beta * st.get("u", 0.0) + (1 - self.beta) * g
u = st["u"] / (1 - self.beta ** st["step"]) if self.unbias else st["u"]
new = theta - self.lr * u
'''

_NESTEROV_BODY = '''
st["u"] = self.beta * st.get("u", 0.0) + (1 - self.beta) * g
new = theta - self.lr * (self.beta * st["u"] + (1 - self.beta) * g)
'''

_ADAGRAD_BODY = '''
st["step"] = st.get("step", 0) + 1
g = g + self.weight_decay * theta
st["sum"] = st.get("sum", self.initial_accumulator_value) + g * g
lr_t = self.lr / (1 + (st["step"] - 1) * self.lr_decay)
new = theta - lr_t * g / (np.sqrt(st["sum"]) + self.eps)
'''

_RMSPROP_BODY = '''
st["step"] = st.get("step", 0) + 1
g = g + self.weight_decay * theta
st["square_avg"] = self.alpha * st.get("square_avg", 0.0) + (1 - self.alpha) * g * g
s = st["square_avg"]
if self.centered:
    st["grad_avg"] = self.alpha * st.get("grad_avg", 0.0) + (1 - self.alpha) * g
    s = s - st["grad_avg"] ** 2
d = np.sqrt(s) + self.eps
if self.momentum > 0:
    st["momentum_buffer"] = self.momentum * st.get("momentum_buffer", 0.0) + g / d
    new = theta - self.lr * st["momentum_buffer"]
else:
    new = theta - self.lr * g / d
'''

_ADAM_BODY = '''
b1, b2 = self.betas
t = st["step"] = st.get("step", 0) + 1
{decay}
st["exp_avg"] = b1 * st.get("exp_avg", 0.0) + (1 - b1) * g
st["exp_avg_sq"] = b2 * st.get("exp_avg_sq", 0.0) + (1 - b2) * g * g
m, v = st["exp_avg"], st["exp_avg_sq"]
if self.bias_correction:
    m, v = m / (1 - b1 ** t), v / (1 - b2 ** t)
new = theta - self.lr * m / (np.sqrt(v) + self.eps)
'''
_COUPLED = "g = g + self.weight_decay * theta"
_DECOUPLED = "theta = theta * (1 - self.lr * self.weight_decay)"


def _adam(decay=_COUPLED, body=_ADAM_BODY, name="Adam", **kw):
    return _opt(name, body.replace("{decay}", decay), **kw)


def _replace(text, old, new):
    assert old in text, (old, text)
    return text.replace(old, new)


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
        "updates theta0 in place (the caller's array changes)": '''
def gradient_descent(P, q, theta0, lr, steps):
    theta = theta0
    rows = [theta.copy()]
    for _ in range(steps):
        theta -= lr * (P @ theta + q)
        rows.append(theta.copy())
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
        "updates theta in place and returns it": '''
def newton_step(P, q, theta, lr=1.0):
    theta -= lr * np.linalg.solve(P, P @ theta + q)
    return theta
''',
    },
    "SGD": {
        "the first momentum step is damped (buffer starts at 0 instead of g)": _opt("SGD", _replace(
            _SGD_BODY, 'st["momentum_buffer"] = d.copy()',
            'st["momentum_buffer"] = (1 - self.dampening) * d')),
        "dampening ignored": _opt("SGD", _replace(_SGD_BODY, "(1 - self.dampening) * d", "d")),
        "nesterov ignored": _opt("SGD", _replace(_SGD_BODY, "d + self.momentum * st[\"momentum_buffer\"] if self.nesterov else ", "")),
        "nesterov with the buffer from before this step": _opt("SGD", '''
d = g + self.weight_decay * theta
if self.momentum:
    old = st.get("momentum_buffer", 0.0 * d)
    st["momentum_buffer"] = self.momentum * old + (1 - self.dampening) * d if "momentum_buffer" in st else d.copy()
    d = d + self.momentum * old if self.nesterov else st["momentum_buffer"]
new = theta - self.lr * d
'''),
        "weight decay ignored": _opt("SGD", _replace(_SGD_BODY, "d = g + self.weight_decay * theta", "d = g")),
        "weight decay decoupled (theta shrinks after the momentum step)": _opt("SGD", _replace(
            _replace(_SGD_BODY, "d = g + self.weight_decay * theta", "d = g"),
            "new = theta - self.lr * d", "new = theta - self.lr * d - self.lr * self.weight_decay * theta")),
        "a missing gradient counts as zero (momentum keeps moving a parameter without grad)":
            _opt("SGD", _SGD_BODY, skip=_SKIP_AS_ZERO),
        "weight decay added into p.grad in place": _opt("SGD", _replace(
            _SGD_BODY, "d = g + self.weight_decay * theta",
            "p.grad.data = p.grad + self.weight_decay * p\nd = p.grad.numpy()")),
        "do-nothing: clears the parameter list it was handed and keeps it": _opt("SGD", _SGD_BODY, extra_init=_CLEAR),
    },
    "Momentum": {
        "the other momentum form: u <- beta u + g": _opt("Momentum", _replace(
            _MOMENTUM_BODY, "(1 - self.beta) * g", "g")),
        "unbias divides by (1 - beta) instead of (1 - beta^t)": _opt("Momentum", _replace(
            _MOMENTUM_BODY, "(1 - self.beta ** st[\"step\"])", "(1 - self.beta)")),
        "stateless: u = (1 - beta) g every step (right for one step only)": _opt("Momentum", _replace(
            _MOMENTUM_BODY, 'st.get("u", 0.0)', "0.0")),
        "unbias ignored": _opt("Momentum", _replace(_MOMENTUM_BODY, "if self.unbias", "if False")),
        "bias correction with the wrong power (1 - beta^(t+1))": _opt("Momentum", _replace(
            _MOMENTUM_BODY, 'self.beta ** st["step"]', 'self.beta ** (st["step"] + 1)')),
        "weights the EMA the wrong way round: u <- (1 - beta) u + beta g": _opt("Momentum", _replace(
            _MOMENTUM_BODY, 'self.beta * st.get("u", 0.0) + (1 - self.beta) * g',
            '(1 - self.beta) * st.get("u", 0.0) + self.beta * g')),
        "one step counter for all parameters (t advances for a parameter without grad)": _opt("Momentum", _replace(
            _MOMENTUM_BODY, 'st["step"] = st.get("step", 0) + 1', 'st["step"] = self.calls'),
            extra_init="        self.calls = 0\n",
            skip="            if i == 0:\n                self.calls += 1\n" + _SKIP),
        "a missing gradient counts as zero": _opt("Momentum", _MOMENTUM_BODY, skip=_SKIP_AS_ZERO),
        "do-nothing: clears the parameter list it was handed and keeps it": _opt("Momentum", _MOMENTUM_BODY, extra_init=_CLEAR),
    },
    "Nesterov": {
        "plain momentum (no look-ahead)": _opt("Nesterov", _replace(
            _NESTEROV_BODY, '(self.beta * st["u"] + (1 - self.beta) * g)', 'st["u"]')),
        "look-ahead with the old u: beta u_old + (1 - beta) g (which is plain momentum again)": _opt("Nesterov", '''
old = st.get("u", 0.0)
st["u"] = self.beta * old + (1 - self.beta) * g
new = theta - self.lr * (self.beta * old + (1 - self.beta) * g)
'''),
        "look-ahead without damping the gradient: beta u + g": _opt("Nesterov", _replace(
            _NESTEROV_BODY, '(self.beta * st["u"] + (1 - self.beta) * g)', '(self.beta * st["u"] + g)')),
        "stateless (u is not kept between steps)": _opt("Nesterov", _replace(_NESTEROV_BODY, 'st.get("u", 0.0)', "0.0")),
        "the other momentum form inside: u <- beta u + g": _opt("Nesterov", '''
st["u"] = self.beta * st.get("u", 0.0) + g
new = theta - self.lr * (self.beta * st["u"] + g)
'''),
        "a missing gradient counts as zero": _opt("Nesterov", _NESTEROV_BODY, skip=_SKIP_AS_ZERO),
        "do-nothing: clears the parameter list it was handed and keeps it": _opt("Nesterov", _NESTEROV_BODY, extra_init=_CLEAR),
    },
    "Adagrad": {
        "eps inside the square root": _opt("Adagrad", _replace(
            _ADAGRAD_BODY, '(np.sqrt(st["sum"]) + self.eps)', 'np.sqrt(st["sum"] + self.eps)')),
        "lr_decay counted from t (lr / (1 + t lr_decay))": _opt("Adagrad", _replace(
            _ADAGRAD_BODY, '(st["step"] - 1)', 'st["step"]')),
        "initial_accumulator_value ignored": _opt("Adagrad", _replace(
            _ADAGRAD_BODY, "self.initial_accumulator_value", "0.0")),
        "weight decay ignored": _opt("Adagrad", _replace(_ADAGRAD_BODY, "g = g + self.weight_decay * theta", "")),
        "an EMA of g^2 (RMSprop) instead of the sum": _opt("Adagrad", _replace(
            _ADAGRAD_BODY, 'st.get("sum", self.initial_accumulator_value) + g * g',
            '0.99 * st.get("sum", self.initial_accumulator_value) + 0.01 * g * g')),
        "one step counter for all parameters": _opt("Adagrad", _replace(
            _ADAGRAD_BODY, 'st["step"] = st.get("step", 0) + 1', 'st["step"] = self.calls'),
            extra_init="        self.calls = 0\n",
            skip="            if i == 0:\n                self.calls += 1\n" + _SKIP),
        "default eps = 1e-8 (PyTorch's Adagrad uses 1e-10)": _opt("Adagrad", _ADAGRAD_BODY, sig=(
            _SIGS["Adagrad"][0].replace("eps=1e-10", "eps=1e-8"), _SIGS["Adagrad"][1])),
        "do-nothing: clears the parameter list it was handed and keeps it": _opt("Adagrad", _ADAGRAD_BODY, extra_init=_CLEAR),
    },
    "RMSprop": {
        "eps inside the square root": _opt("RMSprop", _replace(
            _RMSPROP_BODY, "d = np.sqrt(s) + self.eps", "d = np.sqrt(s + self.eps)")),
        "forgets to square the gradient": _opt("RMSprop", _replace(
            _RMSPROP_BODY, "(1 - self.alpha) * g * g", "(1 - self.alpha) * np.abs(g)")),
        "accumulates without (1 - alpha): s <- alpha s + g^2": _opt("RMSprop", _replace(
            _RMSPROP_BODY, "(1 - self.alpha) * g * g", "g * g")),
        "stateless: s = (1 - alpha) g^2 every step": _opt("RMSprop", _replace(
            _RMSPROP_BODY, 'st.get("square_avg", 0.0)', "0.0")),
        "adds Adam's bias correction s / (1 - alpha^t)": _opt("RMSprop", _replace(
            _RMSPROP_BODY, 's = st["square_avg"]\n', 's = st["square_avg"] / (1 - self.alpha ** st["step"])\n')),
        "divides by s instead of sqrt(s)": _opt("RMSprop", _replace(
            _RMSPROP_BODY, "d = np.sqrt(s) + self.eps", "d = s + self.eps")),
        "momentum buffer of g, divided afterwards": _opt("RMSprop", _replace(
            _replace(_RMSPROP_BODY, "+ g / d\n", "+ g\n"), 'self.lr * st["momentum_buffer"]',
            'self.lr * st["momentum_buffer"] / d')),
        "centered ignored": _opt("RMSprop", _replace(_RMSPROP_BODY, "if self.centered:", "if False:")),
        "weight decay ignored": _opt("RMSprop", _replace(_RMSPROP_BODY, "g = g + self.weight_decay * theta", "")),
        "do-nothing: clears the parameter list it was handed and keeps it": _opt("RMSprop", _RMSPROP_BODY, extra_init=_CLEAR),
    },
    "Adam": {
        "no bias correction (even when bias_correction=True)": _adam(body=_replace(
            _ADAM_BODY, "if self.bias_correction:", "if False:")),
        "always bias-corrects (ignores bias_correction=False)": _adam(body=_replace(
            _ADAM_BODY, "if self.bias_correction:", "if True:")),
        "bias correction with the wrong power (beta^(t+1))": _adam(body=_replace(
            _ADAM_BODY, "m / (1 - b1 ** t), v / (1 - b2 ** t)", "m / (1 - b1 ** (t + 1)), v / (1 - b2 ** (t + 1))")),
        "eps inside the square root": _adam(body=_replace(
            _ADAM_BODY, "(np.sqrt(v) + self.eps)", "np.sqrt(v + self.eps)")),
        "second moment of |g|, not g^2": _adam(body=_replace(_ADAM_BODY, "(1 - b2) * g * g", "(1 - b2) * np.abs(g)")),
        "betas swapped (beta2 for m, beta1 for v)": _adam(body=_replace(_ADAM_BODY, "b1, b2 = self.betas", "b2, b1 = self.betas")),
        "stateless: m and v restart every step (right for one step only)": _adam(body=_replace(_replace(
            _ADAM_BODY, 'st.get("exp_avg", 0.0)', "0.0"), 'st.get("exp_avg_sq", 0.0)', "0.0")),
        "default betas (0.9, 0.99)": _adam(sig=(_SIGS["Adam"][0].replace("0.999", "0.99"), _SIGS["Adam"][1])),
        "default eps 1e-6": _adam(sig=(_SIGS["Adam"][0].replace("eps=1e-8", "eps=1e-6"), _SIGS["Adam"][1])),
        "decoupled weight decay in Adam (that is AdamW)": _adam(decay=_DECOUPLED),
        "one step counter for all parameters": _adam(body=_replace(
            _ADAM_BODY, 't = st["step"] = st.get("step", 0) + 1', 't = st["step"] = self.calls'),
            extra_init="        self.calls = 0\n", skip="            if i == 0:\n                self.calls += 1\n" + _SKIP),
        "a missing gradient counts as zero": _adam(skip=_SKIP_AS_ZERO),
        "do-nothing: clears the parameter list it was handed and keeps it": _adam(extra_init=_CLEAR),
    },
    "AdamW": {
        "coupled weight decay (that is Adam with weight_decay)": _adam(decay=_COUPLED, name="AdamW"),
        "decay after the Adam step": _adam(decay="", name="AdamW", body=_ADAM_BODY + "new = new - self.lr * self.weight_decay * new\n"),
        "decay without lr: theta (1 - weight_decay)": _adam(decay="theta = theta * (1 - self.weight_decay)", name="AdamW"),
        "default weight_decay 0": _adam(decay=_DECOUPLED, name="AdamW",
                                        sig=(_SIGS["AdamW"][0].replace("weight_decay=1e-2", "weight_decay=0.0"),
                                             _SIGS["AdamW"][1])),
        "bias_correction ignored (always corrected)": _adam(decay=_DECOUPLED, name="AdamW", body=_replace(
            _ADAM_BODY, "if self.bias_correction:", "if True:")),
        "decays a parameter whose grad is None": _adam(decay=_DECOUPLED, name="AdamW", skip='''            if p.grad is None:
                p.data = p.numpy() * (1 - self.lr * self.weight_decay)
                continue'''),
        "do-nothing: clears the parameter list it was handed and keeps it": _adam(decay=_DECOUPLED, name="AdamW", extra_init=_CLEAR),
    },
}


# -- correct answers written differently (must keep full marks) ------------------------------------

CORRECT: dict[str, dict[str, str]] = {
    "SGD": {
        "numpy on the host, the library's own layout": _opt("SGD", _SGD_BODY),
        "Tensor arithmetic, PyTorch's order of operations": '''
class SGD(dlkit.optim.Optimizer):
    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay, nesterov=nesterov)

    def step(self):
        for p, state in zip(self.params, self.state):
            if p.grad is None:
                continue
            d_p = p.grad if self.weight_decay == 0 else p.grad + p * self.weight_decay
            if self.momentum != 0:
                buf = state.get("momentum_buffer")
                buf = d_p * 1.0 if buf is None else buf * self.momentum + d_p * (1 - self.dampening)
                state["momentum_buffer"] = buf
                d_p = d_p + buf * self.momentum if self.nesterov else buf
            p.data = p + d_p * (-self.lr)
''',
    },
    "Momentum": {"numpy on the host": _opt("Momentum", _MOMENTUM_BODY)},
    "Nesterov": {"numpy on the host": _opt("Nesterov", _NESTEROV_BODY)},
    "Adagrad": {
        "numpy on the host, lazy state": _opt("Adagrad", _ADAGRAD_BODY),
        "Tensor arithmetic, eager state": '''
class Adagrad(dlkit.optim.Optimizer):
    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
        super().__init__(params, lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                         initial_accumulator_value=initial_accumulator_value, eps=eps)
        for i, p in enumerate(self.params):
            self.state[i]["step"] = 0
            self.state[i]["sum"] = dlkit.optim.full_like(p, initial_accumulator_value)

    def step(self):
        for i, p in enumerate(self.params):
            if p.grad is not None:
                st = self.state[i]
                st["step"] += 1
                g = p.grad + self.weight_decay * p
                st["sum"] = st["sum"] + g ** 2
                p.data = p - self.lr / (1 + (st["step"] - 1) * self.lr_decay) * g / (st["sum"] ** 0.5 + self.eps)
''',
    },
    "RMSprop": {"numpy on the host": _opt("RMSprop", _RMSPROP_BODY)},
    "Adam": {"numpy on the host": _adam()},
    "AdamW": {
        "numpy on the host, standalone": _adam(decay=_DECOUPLED, name="AdamW"),
        "a subclass of the student's Adam that decays first and passes weight_decay=0 on": '''
class AdamW(Adam):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, bias_correction=True):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         bias_correction=bias_correction)

    def step(self):
        decay = self.weight_decay
        for p in self.params:
            if p.grad is not None:
                p.data = p * (1 - self.lr * decay)
        self.weight_decay = 0.0
        try:
            super().step()
        finally:
            self.weight_decay = decay
''',
    },
}


# -- shortcuts through dlkit (score 0 in the sandbox, where the kit withholds them) ---------------

SHORTCUTS: dict[str, str] = {
    "RMSprop": "RMSprop = dlkit.optim.RMSprop\n",
    "Adagrad": '''
class Adagrad(dlkit.optim.Adagrad):
    pass
''',
    "Nesterov": '''
class Nesterov(dlkit.optim.Optimizer):
    def __init__(self, params, lr, beta=0.9):
        super().__init__(params, lr=lr, beta=beta)
        self.inner = dlkit.optim.SGD(params, lr=lr * (1 - beta), momentum=beta, nesterov=True)

    def step(self):
        self.inner.step()
''',
    "Adam": '''
class Adam(dlkit.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, bias_correction=True):
        super().__init__(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                         bias_correction=bias_correction)

    def step(self):
        b1, b2 = self.betas
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            st = self.state[i]
            if not st:
                st["step"] = 0
                st["exp_avg"] = dlkit.optim.zeros_like(p)
                st["exp_avg_sq"] = dlkit.optim.zeros_like(p)
            st["step"] += 1
            p.backend.adam_step(p._array, p.grad._array, st["exp_avg"]._array, st["exp_avg_sq"]._array,
                                lr=self.lr, beta1=b1, beta2=b2, eps=self.eps, weight_decay=self.weight_decay,
                                step=st["step"], bias_correction=self.bias_correction, decoupled=False)
''',
    "SGD": '''
class SGD(dlkit.optim.Optimizer):
    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay, nesterov=nesterov)
        self.inner = dlkit.optim.SGD(params, lr, momentum, dampening, weight_decay, nesterov)

    def step(self):
        self.inner.step()
''',
}


# -- independent reference answers (tests/test_autograder_checks.py): numpy on the host, own layout ----

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
    "SGD": '''
class SGD(dlkit.optim.Optimizer):
    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay, nesterov=nesterov)

    def step(self):
        for p, st in zip(self.params, self.state):
            if p.grad is None:
                continue
            theta = p.numpy().astype(np.float64)
            d = p.grad.numpy().astype(np.float64) + self.weight_decay * theta
            if self.momentum:
                if "momentum_buffer" in st:
                    st["momentum_buffer"] = self.momentum * st["momentum_buffer"] + (1 - self.dampening) * d
                else:
                    st["momentum_buffer"] = d.copy()
                d = d + self.momentum * st["momentum_buffer"] if self.nesterov else st["momentum_buffer"]
            p.data = theta - self.lr * d
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
            state["step"] = state.get("step", 0) + 1
            u = self.beta * state.get("u", 0.0) + (1 - self.beta) * p.grad.numpy()
            state["u"] = u
            if self.unbias:
                u = u / (1 - self.beta ** state["step"])
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
    "Adagrad": '''
class Adagrad(dlkit.optim.Optimizer):
    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
        super().__init__(params, lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                         initial_accumulator_value=initial_accumulator_value, eps=eps)
        for i, p in enumerate(self.params):
            self.state[i] = {"step": 0, "sum": np.full(p.shape, float(initial_accumulator_value))}

    def step(self):
        for p, st in zip(self.params, self.state):
            if p.grad is None:
                continue
            st["step"] += 1
            theta = p.numpy()
            g = p.grad.numpy() + self.weight_decay * theta
            st["sum"] = st["sum"] + np.square(g)
            clr = self.lr / (1 + (st["step"] - 1) * self.lr_decay)
            p.data = theta - clr * g / (np.sqrt(st["sum"]) + self.eps)
''',
    "RMSprop": '''
class RMSprop(dlkit.optim.Optimizer):
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
        super().__init__(params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                         momentum=momentum, centered=centered)

    def step(self):
        a = self.alpha
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            st = self.state[i]
            st["step"] = st.get("step", 0) + 1
            theta = p.numpy()
            g = p.grad.numpy() + self.weight_decay * theta
            st["square_avg"] = a * st.get("square_avg", 0.0) + (1 - a) * g ** 2
            s = st["square_avg"]
            if self.centered:
                st["grad_avg"] = a * st.get("grad_avg", 0.0) + (1 - a) * g
                s = s - st["grad_avg"] ** 2
            step = g / (np.sqrt(s) + self.eps)
            if self.momentum > 0:
                st["momentum_buffer"] = self.momentum * st.get("momentum_buffer", 0.0) + step
                step = st["momentum_buffer"]
            p.data = theta - self.lr * step
''',
    "Adam": '''
class Adam(dlkit.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, bias_correction=True):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         bias_correction=bias_correction)

    def _decay(self, theta, g):
        return theta, g + self.weight_decay * theta

    def step(self):
        b1, b2 = self.betas
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            st = self.state[i]
            t = st["step"] = st.get("step", 0) + 1
            theta, g = self._decay(p.numpy(), p.grad.numpy())
            m = st["exp_avg"] = b1 * st.get("exp_avg", 0.0) + (1 - b1) * g
            v = st["exp_avg_sq"] = b2 * st.get("exp_avg_sq", 0.0) + (1 - b2) * g ** 2
            if self.bias_correction:
                m, v = m / (1 - b1 ** t), v / (1 - b2 ** t)
            p.data = theta - self.lr * m / (np.sqrt(v) + self.eps)
''',
    "AdamW": '''
class AdamW(Adam):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, bias_correction=True):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         bias_correction=bias_correction)

    def _decay(self, theta, g):
        return theta * (1 - self.lr * self.weight_decay), g
''',
}
