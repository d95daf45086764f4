"""Mutants for 02_fully_connected (see tests/mutants/__init__.py)."""

_ACT = '''
def _act(Z, activation):
    if activation == "relu":
        return np.maximum(Z, 0)
    if activation == "tanh":
        return np.tanh(Z)
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-Z))
    raise ValueError(f"unknown activation {activation!r}")
'''

MUTANTS: dict[str, dict[str, str]] = {
    "mlp_forward": {
        "applies the activation on the last layer too": _ACT + '''
def mlp_forward(X, weights, biases, activation="relu"):
    Z = X
    for W, b in zip(weights, biases):
        Z = _act(Z @ W + b, activation)
    return Z
''',
        "ignores the activation argument (always ReLU)": _ACT + '''
def mlp_forward(X, weights, biases, activation="relu"):
    Z = X
    L = len(weights)
    for i, (W, b) in enumerate(zip(weights, biases)):
        Z = Z @ W + b
        if i < L - 1:
            Z = np.maximum(Z, 0)
    return Z
''',
        "forgets the biases": _ACT + '''
def mlp_forward(X, weights, biases, activation="relu"):
    Z = X
    L = len(weights)
    for i, W in enumerate(weights):
        Z = Z @ W
        if i < L - 1:
            Z = _act(Z, activation)
    return Z
''',
        "adds the bias after the activation": _ACT + '''
def mlp_forward(X, weights, biases, activation="relu"):
    Z = X
    L = len(weights)
    for i, (W, b) in enumerate(zip(weights, biases)):
        Z = Z @ W
        if i < L - 1:
            Z = _act(Z, activation)
        Z = Z + b
    return Z
''',
        "sigmoid with the wrong sign: 1 / (1 + exp(Z))": '''
def _act(Z, activation):
    if activation == "relu":
        return np.maximum(Z, 0)
    if activation == "tanh":
        return np.tanh(Z)
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(Z))
    raise ValueError(f"unknown activation {activation!r}")

def mlp_forward(X, weights, biases, activation="relu"):
    Z = X
    L = len(weights)
    for i, (W, b) in enumerate(zip(weights, biases)):
        Z = Z @ W + b
        if i < L - 1:
            Z = _act(Z, activation)
    return Z
''',
        "skips the activation after the first hidden layer (off by one)": _ACT + '''
def mlp_forward(X, weights, biases, activation="relu"):
    Z = X
    L = len(weights)
    for i, (W, b) in enumerate(zip(weights, biases)):
        Z = Z @ W + b
        if 0 < i < L - 1:
            Z = _act(Z, activation)
    return Z
''',
        "right logits, but pops the last layer off the caller's weights and biases lists": _ACT + '''
def mlp_forward(X, weights, biases, activation="relu"):
    W_last, b_last = weights.pop(), biases.pop()
    Z = X
    for W, b in zip(weights, biases):
        Z = _act(Z @ W + b, activation)
    return Z @ W_last + b_last
''',
        "applies the activation to the input too (before every layer instead of after the hidden ones)": _ACT + '''
def mlp_forward(X, weights, biases, activation="relu"):
    Z = X
    for W, b in zip(weights, biases):
        Z = _act(Z, activation) @ W + b
    return Z
''',
        "an unknown activation silently falls back to ReLU": '''
def mlp_forward(X, weights, biases, activation="relu"):
    acts = {"tanh": np.tanh, "sigmoid": lambda A: 1.0 / (1.0 + np.exp(-A))}
    sigma = acts.get(activation, lambda A: np.maximum(A, 0))
    Z = X
    L = len(weights)
    for i, (W, b) in enumerate(zip(weights, biases)):
        Z = Z @ W + b
        if i < L - 1:
            Z = sigma(Z)
    return Z
''',
        "sigmoid written with tanh but without halving the argument: (1 + tanh(Z)) / 2": _ACT.replace(
            "1.0 / (1.0 + np.exp(-Z))", "0.5 * (1.0 + np.tanh(Z))") + '''
def mlp_forward(X, weights, biases, activation="relu"):
    Z = X
    L = len(weights)
    for i, (W, b) in enumerate(zip(weights, biases)):
        Z = Z @ W + b
        if i < L - 1:
            Z = _act(Z, activation)
    return Z
''',
        "ReLU written as np.max(Z, 0) (a reduction over axis 0, not an elementwise maximum)": '''
def mlp_forward(X, weights, biases, activation="relu"):
    acts = {"relu": lambda A: np.max(A, 0), "tanh": np.tanh, "sigmoid": lambda A: 1.0 / (1.0 + np.exp(-A))}
    if activation not in acts:
        raise ValueError(activation)
    Z = X
    for i, (W, b) in enumerate(zip(weights, biases)):
        Z = Z @ W + b
        if i < len(weights) - 1:
            Z = acts[activation](Z)
    return Z
''',
        "stops before the last layer (returns the last hidden activations)": _ACT + '''
def mlp_forward(X, weights, biases, activation="relu"):
    Z = X
    for W, b in zip(weights[:-1], biases[:-1]):
        Z = _act(Z @ W + b, activation)
    return Z
''',
        "casts the logits to float32": _ACT + '''
def mlp_forward(X, weights, biases, activation="relu"):
    Z = X
    for i, (W, b) in enumerate(zip(weights, biases)):
        Z = Z @ W + b
        if i < len(weights) - 1:
            Z = _act(Z, activation)
    return Z.astype(np.float32)
''',
    },
    "count_parameters": {
        "forgets the biases": '''
def count_parameters(widths):
    return sum(int(a) * int(b) for a, b in zip(widths[:-1], widths[1:]))
''',
        "counts a bias for every input unit instead of every output unit": '''
def count_parameters(widths):
    return sum(int(a) * int(b) + int(a) for a, b in zip(widths[:-1], widths[1:]))
''',
        "counts biases for every layer width including the input layer": '''
def count_parameters(widths):
    return sum(int(a) * int(b) for a, b in zip(widths[:-1], widths[1:])) + sum(int(w) for w in widths)
''',
        "returns a float": '''
def count_parameters(widths):
    return float(sum(int(a) * int(b) + int(b) for a, b in zip(widths[:-1], widths[1:])))
''',
        "squares each width (n_i * n_i weights)": '''
def count_parameters(widths):
    return sum(int(b) * int(b) + int(b) for b in widths[1:])
''',
        "right count, but pops the input width off the caller's list": '''
def count_parameters(widths):
    total = 0
    prev = widths.pop(0)
    for w in widths:
        total += prev * w + w
        prev = w
    return total
''',
        "skips the last layer (range(len(widths) - 2))": '''
def count_parameters(widths):
    return sum(widths[i] * widths[i + 1] + widths[i + 1] for i in range(len(widths) - 2))
''',
        "counts the weights of consecutive layers but one bias per layer": '''
def count_parameters(widths):
    return sum(a * b + 1 for a, b in zip(widths[:-1], widths[1:]))
''',
    },
}

#: Correct answers written differently: they must keep full marks (tests/test_checks_do_nothing.py).
CORRECT: dict[str, dict[str, str]] = {
    "mlp_forward": {
        "hidden layers in a loop, the last one apart; sigmoid through tanh": '''
def mlp_forward(X, weights, biases, activation="relu"):
    if activation == "relu":
        sigma = lambda A: np.where(A > 0, A, 0.0)
    elif activation == "tanh":
        sigma = np.tanh
    elif activation == "sigmoid":
        sigma = lambda A: 0.5 * (1.0 + np.tanh(0.5 * A))
    else:
        raise ValueError("activation must be relu, tanh or sigmoid, not " + repr(activation))
    H = X
    for W, b in zip(weights[:-1], biases[:-1]):
        H = sigma(H @ W + b)
    return H @ weights[-1] + biases[-1]
''',
        "recursion": '''
import math

def mlp_forward(X, weights, biases, activation="relu"):
    acts = {"relu": lambda A: A * (A > 0), "tanh": np.tanh, "sigmoid": lambda A: np.exp(-np.logaddexp(0, -A))}
    if activation not in acts:
        raise ValueError(f"unknown activation {activation}")
    Z = X @ weights[0] + biases[0]
    if len(weights) == 1:
        return Z
    return mlp_forward(acts[activation](Z), weights[1:], biases[1:], activation)
''',
        "functools.reduce over the layers, with np.maximum writing into a new array": '''
from functools import reduce

def mlp_forward(X, weights, biases, activation="relu"):
    if activation not in ("relu", "tanh", "sigmoid"):
        raise ValueError(activation)
    def sigma(A):
        if activation == "relu":
            return np.maximum(A, 0, out=np.empty_like(A))
        if activation == "tanh":
            return np.tanh(A)
        return 1 / (1 + np.exp(-A))
    L = len(weights)
    return reduce(lambda Z, i: (lambda A: A if i == L - 1 else sigma(A))(Z @ weights[i] + biases[i]), range(L), X)
''',
    },
    "count_parameters": {
        "a loop over consecutive pairs": '''
def count_parameters(widths):
    total = 0
    for i in range(1, len(widths)):
        total += widths[i - 1] * widths[i] + widths[i]
    return total
''',
        "numpy dot products": '''
def count_parameters(widths):
    w = np.asarray(widths, dtype=np.int64)
    return int(np.dot(w[:-1], w[1:]) + w[1:].sum())
''',
        "factored: (n_in + 1) * n_out per layer": '''
def count_parameters(widths):
    return sum((n_in + 1) * n_out for n_in, n_out in zip(widths, widths[1:]))
''',
    },
}

#: Shortcuts through what the import policy (GRADED.md: numpy) does not allow: they score 0.
POLICY_SHORTCUTS: dict[str, dict[str, str]] = {
    "count_parameters": {
        "counts the parameters of dlkit's nn.MLP": '''
def count_parameters(widths):
    import dlkit
    if len(widths) < 2:
        return 0
    return int(sum(p.size for p in dlkit.nn.MLP(list(widths)).parameters()))
''',
    },
    "mlp_forward": {
        "runs dlkit's tensors (pre-bound dlkit)": '''
def mlp_forward(X, weights, biases, activation="relu"):
    if activation not in ("relu", "tanh", "sigmoid"):
        raise ValueError(activation)
    Z = dlkit.tensor(X, dtype="float64")
    for i, (W, b) in enumerate(zip(weights, biases)):
        Z = Z @ dlkit.tensor(W, dtype="float64") + dlkit.tensor(b, dtype="float64")
        if i < len(weights) - 1:
            Z = {"relu": Z.relu, "tanh": Z.tanh, "sigmoid": Z.sigmoid}[activation]()
    return Z.numpy().astype(np.float64)
''',
    },
}
