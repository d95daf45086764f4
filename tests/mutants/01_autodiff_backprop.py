"""Mutants for 01_autodiff_backprop (see tests/mutants/__init__.py)."""

MUTANTS: dict[str, dict[str, str]] = {
    "matmul_vjp": {
        "forgets the transposes: (G B, A G)": '''
def matmul_vjp(A, B, G):
    return G @ B, A @ G
''',
        "transposes the wrong factor for dB: G^T A": '''
def matmul_vjp(A, B, G):
    return G @ B.T, G.T @ A
''',
        "returns (dB, dA) swapped": '''
def matmul_vjp(A, B, G):
    return A.T @ G, G @ B.T
''',
        "averages over the batch (divides by m)": '''
def matmul_vjp(A, B, G):
    m = A.shape[0]
    return G @ B.T / m, A.T @ G / m
''',
        "uses the gradient of a sum-of-entries loss (ignores G: ones @ B^T, A^T @ ones)": '''
def matmul_vjp(A, B, G):
    ones = np.ones_like(G)
    return ones @ B.T, A.T @ ones
''',
    },
    "relu_vjp": {
        "mask uses X >= 0 (gradient 1 at exactly 0)": '''
def relu_vjp(X, G):
    return G * (X >= 0)
''',
        "multiplies by the ReLU output instead of its derivative": '''
def relu_vjp(X, G):
    return G * np.maximum(X, 0)
''',
        "returns the mask only (forgets the upstream gradient G)": '''
def relu_vjp(X, G):
    return (X > 0).astype(float)
''',
        "masks by the sign of G instead of X": '''
def relu_vjp(X, G):
    return G * (G > 0)
''',
    },
    "logsumexp_vjp": {
        "forgets the upstream scaling (returns softmax(X))": '''
def logsumexp_vjp(X, G):
    Z = X - X.max(axis=1, keepdims=True)
    E = np.exp(Z)
    return E / E.sum(axis=1, keepdims=True)
''',
        "softmax over the wrong axis (columns)": '''
def logsumexp_vjp(X, G):
    Z = X - X.max(axis=0, keepdims=True)
    E = np.exp(Z)
    return G[:, None] * E / E.sum(axis=0, keepdims=True)
''',
        "exp(X) without normalising": '''
def logsumexp_vjp(X, G):
    return G[:, None] * np.exp(X - X.max(axis=1, keepdims=True))
''',
        "softmax without subtracting the max (overflows for large X)": '''
def logsumexp_vjp(X, G):
    with np.errstate(over="ignore", invalid="ignore"):
        E = np.exp(X)
        return G[:, None] * E / E.sum(axis=1, keepdims=True)
''',
        "broadcasts G along the wrong axis (G[None, :])": '''
def logsumexp_vjp(X, G):
    Z = X - X.max(axis=1, keepdims=True)
    E = np.exp(Z)
    S = E / E.sum(axis=1, keepdims=True)
    return (G[None, :] * S.T).T if S.shape[0] != S.shape[1] else G[None, :] * S
''',
    },
    "mlp_backward": {
        "forgets the ReLU derivative mask in the recursion": '''
def mlp_backward(X, y, weights):
    Zs = [X]
    for i, W in enumerate(weights):
        Z = Zs[-1] @ W
        Zs.append(np.maximum(Z, 0) if i < len(weights) - 1 else Z)
    logits = Zs[-1]
    m = X.shape[0]
    S = np.exp(logits - logits.max(axis=1, keepdims=True))
    S /= S.sum(axis=1, keepdims=True)
    S[np.arange(m), y] -= 1
    G = S / m
    grads = [None] * len(weights)
    for i in range(len(weights) - 1, -1, -1):
        grads[i] = Zs[i].T @ G
        if i > 0:
            G = G @ weights[i].T
    return grads
''',
        "forgets the 1/m of the mean (sums the loss)": '''
def mlp_backward(X, y, weights):
    Zs = [X]
    for i, W in enumerate(weights):
        Z = Zs[-1] @ W
        Zs.append(np.maximum(Z, 0) if i < len(weights) - 1 else Z)
    logits = Zs[-1]
    m = X.shape[0]
    S = np.exp(logits - logits.max(axis=1, keepdims=True))
    S /= S.sum(axis=1, keepdims=True)
    S[np.arange(m), y] -= 1
    G = S
    grads = [None] * len(weights)
    for i in range(len(weights) - 1, -1, -1):
        grads[i] = Zs[i].T @ G
        if i > 0:
            G = (G @ weights[i].T) * (Zs[i] > 0)
    return grads
''',
        "forgets to subtract the one-hot labels (uses softmax alone)": '''
def mlp_backward(X, y, weights):
    Zs = [X]
    for i, W in enumerate(weights):
        Z = Zs[-1] @ W
        Zs.append(np.maximum(Z, 0) if i < len(weights) - 1 else Z)
    logits = Zs[-1]
    m = X.shape[0]
    S = np.exp(logits - logits.max(axis=1, keepdims=True))
    S /= S.sum(axis=1, keepdims=True)
    G = S / m
    grads = [None] * len(weights)
    for i in range(len(weights) - 1, -1, -1):
        grads[i] = Zs[i].T @ G
        if i > 0:
            G = (G @ weights[i].T) * (Zs[i] > 0)
    return grads
''',
        "applies ReLU to the last layer too": '''
def mlp_backward(X, y, weights):
    Zs = [X]
    for W in weights:
        Zs.append(np.maximum(Zs[-1] @ W, 0))
    logits = Zs[-1]
    m = X.shape[0]
    S = np.exp(logits - logits.max(axis=1, keepdims=True))
    S /= S.sum(axis=1, keepdims=True)
    S[np.arange(m), y] -= 1
    G = S / m * (logits > 0)
    grads = [None] * len(weights)
    for i in range(len(weights) - 1, -1, -1):
        grads[i] = Zs[i].T @ G
        if i > 0:
            G = (G @ weights[i].T) * (Zs[i] > 0)
    return grads
''',
        "returns the gradients in reverse order (last layer first)": '''
def mlp_backward(X, y, weights):
    Zs = [X]
    for i, W in enumerate(weights):
        Z = Zs[-1] @ W
        Zs.append(np.maximum(Z, 0) if i < len(weights) - 1 else Z)
    logits = Zs[-1]
    m = X.shape[0]
    S = np.exp(logits - logits.max(axis=1, keepdims=True))
    S /= S.sum(axis=1, keepdims=True)
    S[np.arange(m), y] -= 1
    G = S / m
    grads = []
    for i in range(len(weights) - 1, -1, -1):
        grads.append(Zs[i].T @ G)
        if i > 0:
            G = (G @ weights[i].T) * (Zs[i] > 0)
    return grads
''',
    },
}
