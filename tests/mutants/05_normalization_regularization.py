"""Mutants for 05_normalization_regularization (see tests/mutants/__init__.py).

``batchnorm_backward`` mutants first re-define a correct ``batchnorm_forward`` (so the cache is
in their own format; answer cells run in order, so this definition wins), then the wrong backward.
"""

def _bnf(var: str = "x.var(axis=0)", norm: str = "(x - mu) / np.sqrt(var + eps)",
         out: str = "gamma * xhat + beta", axis: str = "0") -> str:
    return f'''
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis={axis}, keepdims=True)
    var = {var}
    xhat = {norm}
    out = {out}
    cache = (x, xhat, mu, var, gamma, eps)
    return out, cache
'''


_FWD = _bnf(var="x.var(axis=0, keepdims=True)")


def _bnb(body: str) -> str:
    return _FWD + f'''
def batchnorm_backward(dout, cache):
    x, xhat, mu, var, gamma, eps = cache
    m = x.shape[0]
    inv_std = 1.0 / np.sqrt(var + eps)
{body}
    return dx, dgamma, dbeta
'''


_DGB = '''    dgamma = (dout * xhat).sum(axis=0)
    dbeta = dout.sum(axis=0)'''

MUTANTS: dict[str, dict[str, str]] = {
    "batchnorm_forward": {
        "unbiased variance (divides by m - 1)": _bnf(var="x.var(axis=0, ddof=1, keepdims=True)"),
        "eps outside the square root": _bnf(var="x.var(axis=0, keepdims=True)",
                                            norm="(x - mu) / (np.sqrt(var) + eps)"),
        "normalises each row (axis=1) instead of each feature over the batch": _bnf(
            var="x.var(axis=1, keepdims=True)", axis="1"),
        "forgets gamma and beta": _bnf(var="x.var(axis=0, keepdims=True)", out="xhat"),
        "divides by the variance instead of the standard deviation": _bnf(
            var="x.var(axis=0, keepdims=True)", norm="(x - mu) / (var + eps)"),
        "forgets eps": _bnf(var="x.var(axis=0, keepdims=True)", norm="(x - mu) / np.sqrt(var)"),
    },
    "batchnorm_backward": {
        "missing the mean terms (treats mu and var as constants)": _bnb(_DGB + '''
    dx = dout * gamma * inv_std'''),
        "missing only the variance term": _bnb(_DGB + '''
    dxhat = dout * gamma
    dx = inv_std * (dxhat - dxhat.mean(axis=0))'''),
        "missing only the mean-of-gradient term": _bnb(_DGB + '''
    dxhat = dout * gamma
    dx = inv_std * (dxhat - xhat * (dxhat * xhat).mean(axis=0))'''),
        "dgamma without xhat (sums dout)": _bnb('''    dgamma = dout.sum(axis=0)
    dbeta = dout.sum(axis=0)
    dxhat = dout * gamma
    dx = inv_std * (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0))'''),
        "dbeta as a mean instead of a sum": _bnb('''    dgamma = (dout * xhat).sum(axis=0)
    dbeta = dout.mean(axis=0)
    dxhat = dout * gamma
    dx = inv_std * (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0))'''),
        "forgets gamma in dx": _bnb(_DGB + '''
    dxhat = dout
    dx = inv_std * (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0))'''),
        "uses m - 1 (unbiased) in the variance term": _bnb(_DGB + '''
    dxhat = dout * gamma
    dx = inv_std * (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).sum(axis=0) / (m - 1))'''),
    },
    "dropout_forward": {
        "no rescaling by 1 / (1 - p)": '''
def dropout_forward(x, p, generator, train=True):
    if not train:
        return x.copy(), np.ones(x.shape, dtype=bool)
    mask = generator.random(x.shape) >= p
    return x * mask, mask
''',
        "keep and drop swapped (mask = r < p)": '''
def dropout_forward(x, p, generator, train=True):
    if not train:
        return x.copy(), np.ones(x.shape, dtype=bool)
    mask = generator.random(x.shape) < p
    return x * mask / (1 - p), mask
''',
        "p treated as the keep probability (mask = r < p, scaled by 1 / p)": '''
def dropout_forward(x, p, generator, train=True):
    if not train:
        return x.copy(), np.ones(x.shape, dtype=bool)
    mask = generator.random(x.shape) < p
    return x * mask / p, mask
''',
        "right keep rate but wrong draw order (mask = r < 1 - p)": '''
def dropout_forward(x, p, generator, train=True):
    if not train:
        return x.copy(), np.ones(x.shape, dtype=bool)
    mask = generator.random(x.shape) < 1 - p
    return x * mask / (1 - p), mask
''',
        "eval mode still drops": '''
def dropout_forward(x, p, generator, train=True):
    mask = generator.random(x.shape) >= p
    return x * mask / (1 - p), mask
''',
        "eval mode scales by (1 - p) (the non-inverted dropout convention)": '''
def dropout_forward(x, p, generator, train=True):
    if not train:
        return x * (1 - p), np.ones(x.shape, dtype=bool)
    mask = generator.random(x.shape) >= p
    return x * mask / (1 - p), mask
''',
        "mask returned as floats instead of bool": '''
def dropout_forward(x, p, generator, train=True):
    if not train:
        return x.copy(), np.ones(x.shape)
    mask = (generator.random(x.shape) >= p).astype(float)
    return x * mask / (1 - p), mask
''',
    },
    "dropout_backward": {
        "no rescaling by 1 / (1 - p)": '''
def dropout_backward(dout, mask, p):
    return dout * mask
''',
        "uses the dropped units (~mask)": '''
def dropout_backward(dout, mask, p):
    return dout * ~mask / (1 - p)
''',
        "divides by p instead of 1 - p": '''
def dropout_backward(dout, mask, p):
    return dout * mask / p
''',
        "ignores the mask": '''
def dropout_backward(dout, mask, p):
    return dout / (1 - p)
''',
    },
}
