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
