"""Mutants for 05_normalization_regularization (see tests/mutants/__init__.py).

The Modules are dlkit's own pieces (``class Linear(dlkit.nn.Module)`` ...); each mutant is a whole
answer cell with one plausible mistake, written from a correct template.  ``batchnorm_backward`` is
the numpy-only closed form ``(dout, x, gamma, eps=1e-5) -> (dx, dgamma, dbeta)``.
"""


def _linear(init_w: str = "bound * (2.0 * g.random((in_features, out_features)) - 1.0)",
            init_b: str = "bound * (2.0 * g.random(out_features) - 1.0)",
            order: str = "wb", bound: str = "1.0 / math.sqrt(in_features)",
            forward: str = "x @ self.weight + self.bias if self.bias is not None else x @ self.weight",
            bias_param: str = "dlkit.nn.Parameter(b, dtype=dtype) if bias else None",
            init_bias: str = "np.zeros(out_features)") -> str:
    draws = (f"            W = {init_w}\n            b = {init_b}\n" if order == "wb"
             else f"            b = {init_b}\n            W = {init_w}\n")
    return f'''
class Linear(dlkit.nn.Module):
    def __init__(self, in_features, out_features, bias=True, generator=None, dtype="float32", initializer=None):
        g = np.random.default_rng() if generator is None else generator
        bound = {bound}
        if initializer is None:
{draws}        else:
            W = initializer(in_features, out_features, generator=g)
            W = W.numpy() if isinstance(W, dlkit.Tensor) else W
            b = {init_bias}
        self.weight = dlkit.nn.Parameter(W, dtype=dtype)
        self.bias = {bias_param}

    def forward(self, x):
        return {forward}
'''


def _bn(train: str = "((x - mean) / (var + self.eps) ** 0.5) * self.weight + self.bias",
        mean: str = "x.mean(axis=0)", var: str = "((x - mean) * (x - mean)).mean(axis=0)",
        run_var: str = "var.numpy() * m / (m - 1) if self.unbiased_running_var else var.numpy()",
        update: str = "(1 - self.momentum) * old + self.momentum * new",
        evaluate: str = "((x - self.running_mean) / (self.running_var + self.eps) ** 0.5) * self.weight + self.bias",
        running_var0: str = "np.ones(num_features)", params: str = "", eval_updates: str = "") -> str:
    return f'''
class BatchNorm1d(dlkit.nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, unbiased_running_var=True, dtype="float32"):
        self.eps, self.momentum, self.unbiased_running_var = eps, momentum, unbiased_running_var
        self.weight = dlkit.nn.Parameter(np.ones(num_features), dtype=dtype)
        self.bias = dlkit.nn.Parameter(np.zeros(num_features), dtype=dtype)
        self.register_buffer("running_mean", dlkit.tensor(np.zeros(num_features), dtype=dtype))
        self.register_buffer("running_var", dlkit.tensor({running_var0}, dtype=dtype)){params}

    def _update(self, name, new):
        old = getattr(self, name).numpy()
        getattr(self, name).data = {update}

    def forward(self, x):
        m = x.shape[0]
        if not self.training:{eval_updates}
            return {evaluate}
        mean = {mean}
        var = {var}
        self._update("running_mean", mean.numpy())
        self._update("running_var", {run_var})
        return {train}
'''


def _bnb(dx: str = "inv * (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0))",
         dgamma: str = "(dout * xhat).sum(axis=0)", dbeta: str = "dout.sum(axis=0)",
         dxhat: str = "dout * gamma", var: str = "x.var(axis=0)", pre: str = "") -> str:
    return f'''
def batchnorm_backward(dout, x, gamma, eps=1e-5):
{pre}    mu = x.mean(axis=0)
    inv = 1.0 / np.sqrt({var} + eps)
    xhat = (x - mu) * inv
    dxhat = {dxhat}
    return {dx}, {dgamma}, {dbeta}
'''


def _ln(mean: str = "x.mean(axis=-1, keepdims=True)",
        var: str = "((x - mean) * (x - mean)).mean(axis=-1, keepdims=True)",
        out: str = "(x - mean) / (var + self.eps) ** 0.5 * self.weight + self.bias", extra: str = "") -> str:
    return f'''
class LayerNorm1d(dlkit.nn.Module):
    def __init__(self, dim, eps=1e-5, dtype="float32"):
        self.eps = eps
        self.weight = dlkit.nn.Parameter(np.ones(dim), dtype=dtype)
        self.bias = dlkit.nn.Parameter(np.zeros(dim), dtype=dtype){extra}

    def forward(self, x):
        mean = {mean}
        var = {var}
        return {out}
'''


def _drop(mask: str = "self.generator.random(x.shape) >= self.p", scale: str = "1.0 / (1.0 - self.p)",
          eval_: str = "x", generator: str = "np.random.default_rng() if generator is None else generator",
          draw_gen: str = "self.generator", cond: str = "not self.training or self.p == 0") -> str:
    return f'''
class Dropout(dlkit.nn.Module):
    def __init__(self, p=0.5, generator=None):
        self.p = p
        self.generator = {generator}

    def forward(self, x):
        if {cond}:
            return {eval_}
        gen = {draw_gen}
        mask = {mask.replace("self.generator", "gen")}
        return x * dlkit.tensor(mask.astype(float) * ({scale}), dtype=x.dtype)
'''


MUTANTS: dict[str, dict[str, str]] = {
    "Linear": {
        "bias drawn before the weights": _linear(order="bw"),
        "bound 1 / in_features (no square root)": _linear(bound="1.0 / in_features"),
        "draws U(0, bound) instead of U(-bound, bound)": _linear(init_w="bound * g.random((in_features, out_features))",
                                                                init_b="bound * g.random(out_features)"),
        "weight drawn in the shape (out, in) and transposed": _linear(
            init_w="(bound * (2.0 * g.random((out_features, in_features)) - 1.0)).T"),
        "forward forgets the bias": _linear(forward="x @ self.weight"),
        "forward through numpy (no gradient reaches the parameters)": _linear(
            forward="dlkit.tensor(x.numpy() @ self.weight.numpy() + (self.bias.numpy() if self.bias is not None else 0))"),
        "weight and bias kept as plain Tensors, not Parameters (parameters() misses them)": _linear(
            bias_param="dlkit.tensor(b, dtype=dtype) if bias else None"),
        "bias=False ignored (a bias is always created)": _linear(bias_param="dlkit.nn.Parameter(b, dtype=dtype)"),
        "with an initializer the bias is still drawn": _linear(init_bias="bound * (2.0 * g.random(out_features) - 1.0)"),
        "shortcut: derives from the library's Linear": '''
class Linear(dlkit.nn.Linear):
    pass
''',
    },
    "BatchNorm1d": {
        "normalizes with the unbiased batch variance": _bn(
            var="((x - mean) * (x - mean)).sum(axis=0) / (m - 1)",
            run_var="var.numpy()"),
        "eps outside the square root": _bn(train="((x - mean) / (var ** 0.5 + self.eps)) * self.weight + self.bias"),
        "normalizes each row over its features (axis=1)": _bn(mean="x.mean(axis=1, keepdims=True)",
                                                             var="((x - mean) * (x - mean)).mean(axis=1, keepdims=True)",
                                                             run_var="np.zeros(x.shape[1])"),
        "momentum convention reversed: running = momentum * running + (1 - momentum) * batch": _bn(
            update="self.momentum * old + (1 - self.momentum) * new"),
        "running variance biased although unbiased_running_var=True": _bn(run_var="var.numpy()"),
        "eval mode still uses the batch statistics": _bn(
            evaluate="((x - x.mean(axis=0)) / (((x - x.mean(axis=0)) ** 2).mean(axis=0) + self.eps) ** 0.5) * self.weight + self.bias"),
        "the batch statistics are detached (no gradient through mean and variance)": _bn(
            mean="dlkit.tensor(x.numpy().mean(axis=0), dtype=x.dtype)",
            var="dlkit.tensor(x.numpy().var(axis=0), dtype=x.dtype)"),
        "running_var starts at zeros": _bn(running_var0="np.zeros(num_features)"),
        "eval mode updates the running statistics too": _bn(
            eval_updates='\n            self._update("running_mean", x.numpy().mean(axis=0))'),
        "gamma and beta not applied": _bn(train="(x - mean) / (var + self.eps) ** 0.5"),
        "shortcut: the library's BatchNorm1d under another name": '''
BatchNorm1d = dlkit.nn.BatchNorm1d
''',
    },
    "batchnorm_backward": {
        "the mean terms are missing (mu and var treated as constants)": _bnb(dx="dxhat * inv"),
        "the variance term is missing": _bnb(dx="inv * (dxhat - dxhat.mean(axis=0))"),
        "the mean-of-gradient term is missing": _bnb(dx="inv * (dxhat - xhat * (dxhat * xhat).mean(axis=0))"),
        "dgamma without xhat (sums dout)": _bnb(dgamma="dout.sum(axis=0)"),
        "dbeta as a mean instead of a sum": _bnb(dbeta="dout.mean(axis=0)"),
        "forgets gamma in dx": _bnb(dxhat="dout"),
        "uses m - 1 in the variance term": _bnb(
            dx="inv * (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).sum(axis=0) / (x.shape[0] - 1))"),
        "centres x in place (x -= mean): right gradients, but the caller's x is changed": _bnb(
            pre="    x -= x.mean(axis=0)\n"),
        "shortcut: autodiff through dlkit (not allowed: imports policy numpy)": '''
def batchnorm_backward(dout, x, gamma, eps=1e-5):
    import dlkit
    xt = dlkit.tensor(x, requires_grad=True, dtype="float64")
    g = dlkit.tensor(gamma, requires_grad=True, dtype="float64")
    b = dlkit.tensor(np.zeros_like(gamma), requires_grad=True, dtype="float64")
    mean = xt.mean(axis=0)
    var = ((xt - mean) * (xt - mean)).mean(axis=0)
    y = (xt - mean) / (var + eps) ** 0.5 * g + b
    y.backward(dlkit.tensor(dout, dtype="float64"))
    return xt.grad.numpy(), g.grad.numpy(), b.grad.numpy()
''',
    },
    "LayerNorm1d": {
        "normalizes each feature over the batch (axis 0)": _ln(
            mean="x.mean(axis=0, keepdims=True)", var="((x - mean) * (x - mean)).mean(axis=0, keepdims=True)"),
        "unbiased variance over the features": _ln(
            var="((x - mean) * (x - mean)).sum(axis=-1, keepdims=True) / (x.shape[-1] - 1)"),
        "eps outside the square root": _ln(out="(x - mean) / (var ** 0.5 + self.eps) * self.weight + self.bias"),
        "forgets gamma and beta": _ln(out="(x - mean) / (var + self.eps) ** 0.5"),
        "axis 1 instead of the last axis (wrong for 3-D inputs)": _ln(
            mean="x.mean(axis=1, keepdims=True)", var="((x - mean) * (x - mean)).mean(axis=1, keepdims=True)"),
        "statistics detached (no gradient through mean and variance)": _ln(
            mean="dlkit.tensor(x.numpy().mean(axis=-1, keepdims=True), dtype=x.dtype)",
            var="dlkit.tensor(x.numpy().var(axis=-1, keepdims=True), dtype=x.dtype)"),
        "weight and bias as plain Tensors (not Parameters)": _ln(
            extra="\n        self.weight = dlkit.tensor(np.ones(dim), dtype=dtype, requires_grad=True)"),
    },
    "Dropout": {
        "keep and drop swapped (mask = r < p)": _drop(mask="self.generator.random(x.shape) < self.p"),
        "no rescaling by 1 / (1 - p)": _drop(scale="1.0"),
        "scaled by 1 / p": _drop(scale="1.0 / self.p"),
        "right keep rate, wrong draw (mask = r < 1 - p)": _drop(mask="self.generator.random(x.shape) < 1 - self.p"),
        "eval mode still drops": _drop(cond="self.p == 0"),
        "eval mode scales by (1 - p) (non-inverted convention)": _drop(eval_="x * (1 - self.p) if self.p else x",
                                                                       cond="not self.training or self.p == 0"),
        "re-seeds: a copy of the generator's state every call": _drop(
            draw_gen="__import__('copy').deepcopy(self.generator)"),
        "ignores the given generator": _drop(generator="np.random.default_rng(0)"),
        "shortcut: derives from the library's Dropout": '''
class Dropout(dlkit.nn.Dropout):
    pass
''',
    },
}


#: Correct answers written differently from the notebook's solutions: they must keep full marks.
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
