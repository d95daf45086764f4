"""Mutants for 00_arrays_broadcasting (see tests/mutants/__init__.py)."""

MUTANTS: dict[str, dict[str, str]] = {
    "broadcast_shape": {
        "does not raise for incompatible shapes (takes the max of each pair)": '''
def broadcast_shape(shape_a, shape_b):
    a, b = tuple(shape_a), tuple(shape_b)
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + a
    b = (1,) * (n - len(b)) + b
    return tuple(max(x, y) for x, y in zip(a, b))
''',
        "aligns the shapes on the left (pads with 1s on the right)": '''
def broadcast_shape(shape_a, shape_b):
    a, b = tuple(shape_a), tuple(shape_b)
    n = max(len(a), len(b))
    a = a + (1,) * (n - len(a))
    b = b + (1,) * (n - len(b))
    out = []
    for x, y in zip(a, b):
        if x != y and x != 1 and y != 1:
            raise ValueError(f"shapes {shape_a} and {shape_b} are not broadcastable")
        out.append(max(x, y))
    return tuple(out)
''',
        "a size-1 dimension does not stretch (requires equal sizes or fails)": '''
def broadcast_shape(shape_a, shape_b):
    a, b = tuple(shape_a), tuple(shape_b)
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + a
    b = (1,) * (n - len(b)) + b
    out = []
    for x, y in zip(a, b):
        if x != y:
            raise ValueError(f"shapes {shape_a} and {shape_b} are not broadcastable")
        out.append(x)
    return tuple(out)
''',
        "drops the extra leading dimensions of the longer shape (zip without padding)": '''
def broadcast_shape(shape_a, shape_b):
    out = []
    for x, y in zip(tuple(shape_a)[::-1], tuple(shape_b)[::-1]):
        if x != y and x != 1 and y != 1:
            raise ValueError(f"shapes {shape_a} and {shape_b} are not broadcastable")
        out.append(y if x == 1 else x)
    return tuple(out[::-1])
''',
        "raises an error that does not name the shapes (and is not a ValueError)": '''
def broadcast_shape(shape_a, shape_b):
    a, b = tuple(shape_a), tuple(shape_b)
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + a
    b = (1,) * (n - len(b)) + b
    out = []
    for x, y in zip(a, b):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise RuntimeError("not broadcastable")
    return tuple(out)
''',
        "returns a list instead of a tuple": '''
def broadcast_shape(shape_a, shape_b):
    a, b = tuple(shape_a), tuple(shape_b)
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + a
    b = (1,) * (n - len(b)) + b
    out = []
    for x, y in zip(a, b):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise ValueError(f"shapes {shape_a} and {shape_b} are not broadcastable")
    return out
''',
        "checks compatibility but combines sizes with max(), so 0 against 1 gives 1": '''
def broadcast_shape(shape_a, shape_b):
    a, b = tuple(shape_a), tuple(shape_b)
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + a
    b = (1,) * (n - len(b)) + b
    out = []
    for x, y in zip(a, b):
        if x != y and x != 1 and y != 1:
            raise ValueError(f"shapes {tuple(shape_a)} and {tuple(shape_b)} are not broadcastable")
        out.append(max(x, y))
    return tuple(out)
''',
        "hands the work to np.broadcast_shapes (the task asks for the rule itself)": '''
def broadcast_shape(shape_a, shape_b):
    return tuple(int(s) for s in np.broadcast_shapes(tuple(shape_a), tuple(shape_b)))
''',
        "imports numpy's helper under its own name at the top of the cell": '''
from numpy import broadcast_shapes as _numpy_rule

def broadcast_shape(shape_a, shape_b):
    return tuple(_numpy_rule(tuple(shape_a), tuple(shape_b)))
''',
        "adds two arrays of those shapes and reads the result's shape": '''
def broadcast_shape(shape_a, shape_b):
    try:
        return (np.zeros(shape_a) + np.zeros(shape_b)).shape
    except ValueError:
        raise ValueError(f"shapes {tuple(shape_a)} and {tuple(shape_b)} are not broadcastable") from None
''',
    },
    "unbroadcast": {
        "only sums the leading axes (forgets the size-1 axes)": '''
def unbroadcast(grad, shape):
    shape = tuple(shape)
    lead = grad.ndim - len(shape)
    if lead > 0:
        grad = grad.sum(axis=tuple(range(lead)))
    return grad
''',
        "only sums the size-1 axes (forgets the leading axes)": '''
def unbroadcast(grad, shape):
    shape = tuple(shape)
    lead = grad.ndim - len(shape)
    axes = tuple(lead + i for i, s in enumerate(shape) if s == 1 and grad.shape[lead + i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad
''',
        "averages instead of summing": '''
def unbroadcast(grad, shape):
    shape = tuple(shape)
    lead = grad.ndim - len(shape)
    if lead > 0:
        grad = grad.mean(axis=tuple(range(lead)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.mean(axis=axes, keepdims=True)
    return grad
''',
        "sums the size-1 axes without keepdims and never restores the shape": '''
def unbroadcast(grad, shape):
    shape = tuple(shape)
    lead = grad.ndim - len(shape)
    if lead > 0:
        grad = grad.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes)
    return grad
''',
        "sums the trailing axes instead of the leading ones": '''
def unbroadcast(grad, shape):
    shape = tuple(shape)
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(grad.ndim - extra, grad.ndim)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad
''',
        "sums the size-1 axes first, at their positions in shape, without the offset of the leading axes": '''
def unbroadcast(grad, shape):
    shape = tuple(shape)
    axes = tuple(i for i, s in enumerate(shape) if s == 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    lead = grad.ndim - len(shape)
    if lead > 0:
        grad = grad.sum(axis=tuple(range(lead)))
    return grad.reshape(shape)
''',
        "right values, but accumulates into the caller's grad in place (grad[0] += grad[i])": '''
def unbroadcast(grad, shape):
    shape = tuple(shape)
    for _ in range(grad.ndim - len(shape)):
        for i in range(1, grad.shape[0]):
            grad[0] += grad[i]
        grad = grad[0]
    for axis, s in enumerate(shape):
        if s == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return np.asarray(grad).reshape(shape)
''',
        "squeezes the result (np.squeeze) instead of keeping the size-1 axes": '''
def unbroadcast(grad, shape):
    shape = tuple(shape)
    lead = grad.ndim - len(shape)
    if lead > 0:
        grad = grad.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return np.squeeze(grad)
''',
        "returns float32 (converts the result)": '''
def unbroadcast(grad, shape):
    shape = tuple(shape)
    lead = grad.ndim - len(shape)
    if lead:
        grad = grad.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return np.asarray(grad, dtype=np.float32).reshape(shape)
''',
    },
    "linear_forward": {
        "forgets the bias": '''
def linear_forward(Z, W, b):
    return Z @ W
''',
        "forms 1 b^T with b as a column (b[:, None]): adds b[i] to row i": '''
def linear_forward(Z, W, b):
    return Z @ W + b[:, None]
''',
        "adds the sum of the bias to every entry": '''
def linear_forward(Z, W, b):
    return Z @ W + b.sum()
''',
        "multiplies by W transposed": '''
def linear_forward(Z, W, b):
    return Z @ W.T + b
''',
        "tiles the bias with the wrong number of rows (k = out_features instead of m)": '''
def linear_forward(Z, W, b):
    return Z @ W + np.tile(b, (W.shape[1], 1))
''',
            "right values, but reshapes the caller's b in place (b.shape = (1, k))": '''
def linear_forward(Z, W, b):
    b.shape = (1, b.shape[0])
    return Z @ W + b
''',
        "adds the bias before multiplying by W": '''
def linear_forward(Z, W, b):
    return (Z + b) @ W
''',
        "adds only the first bias entry (b[0]) to every output": '''
def linear_forward(Z, W, b):
    return Z @ W + b[0]
''',
    },
}

#: Correct answers written differently: they must keep full marks (tests/test_checks_do_nothing.py).
CORRECT: dict[str, dict[str, str]] = {
    "broadcast_shape": {
        "itertools.zip_longest from the right": '''
from itertools import zip_longest

def broadcast_shape(shape_a, shape_b):
    out = []
    for x, y in zip_longest(reversed(shape_a), reversed(shape_b), fillvalue=1):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise ValueError("cannot broadcast shapes %s and %s" % (tuple(shape_a), tuple(shape_b)))
    return tuple(reversed(out))
''',
        "recursive, on the last dimension": '''
def broadcast_shape(shape_a, shape_b):
    def rec(a, b):
        if not a or not b:
            return tuple(a or b)
        x, y = a[-1], b[-1]
        if x != y and 1 not in (x, y):
            raise ValueError(f"incompatible shapes: {tuple(shape_a)} vs {tuple(shape_b)}")
        return rec(a[:-1], b[:-1]) + ((y if x == 1 else x),)
    return rec(list(shape_a), list(shape_b))
''',
        "index arithmetic with a while loop, shapes given as lists are fine too": '''
def broadcast_shape(shape_a, shape_b):
    i, j = len(shape_a) - 1, len(shape_b) - 1
    out = []
    while i >= 0 or j >= 0:
        x = shape_a[i] if i >= 0 else 1
        y = shape_b[j] if j >= 0 else 1
        if x != 1 and y != 1 and x != y:
            raise ValueError(f"shape mismatch between {tuple(shape_a)!r} and {tuple(shape_b)!r}")
        out.insert(0, int(y if x == 1 else x))
        i, j = i - 1, j - 1
    return tuple(out)
''',
    },
    "unbroadcast": {
        "one sum over all axes with keepdims, then a reshape": '''
def unbroadcast(grad, shape):
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape) if axes else grad.copy()
''',
        "while loops; a scalar shape returns np.array(grad.sum()), a 0-d array": '''
def unbroadcast(grad, shape):
    shape = tuple(shape)
    if shape == ():
        return np.array(grad.sum())
    out = grad
    while out.ndim > len(shape):
        out = out.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and out.shape[axis] != 1:
            out = np.sum(out, axis=axis, keepdims=True)
    return out
''',
        "np.add.reduce, returning the input itself when nothing was broadcast": '''
def unbroadcast(grad, shape):
    shape = tuple(shape)
    if grad.shape == shape:
        return grad
    result = grad
    for _ in range(grad.ndim - len(shape)):
        result = np.add.reduce(result, axis=0)
    for axis, size in enumerate(shape):
        if size == 1:
            result = np.add.reduce(result, axis=axis, keepdims=True)
    return np.asarray(result, dtype=np.float64)
''',
    },
    "linear_forward": {
        "np.dot and a reshaped bias": '''
def linear_forward(Z, W, b):
    return np.dot(Z, W) + b.reshape(1, -1)
''',
        "einsum": '''
def linear_forward(Z, W, b):
    return np.einsum("mn,nk->mk", Z, W) + b[np.newaxis, :]
''',
        "transposes of the single-example form": '''
def linear_forward(Z, W, b):
    return (W.T @ Z.T).T + b
''',
        "into a fresh output array": '''
def linear_forward(Z, W, b):
    out = np.matmul(Z, W)
    out += b
    return out
''',
    },
}

#: Shortcuts through what the import policy (GRADED.md: numpy) does not allow: they score 0.
POLICY_SHORTCUTS: dict[str, dict[str, str]] = {
    "unbroadcast": {
        "dlkit's autodiff of a broadcast (pre-bound dlkit)": '''
def unbroadcast(grad, shape):
    x = dlkit.tensor(np.zeros(shape), requires_grad=True, dtype="float64")
    y = x + dlkit.tensor(np.zeros(grad.shape), dtype="float64")
    (y * dlkit.tensor(grad, dtype="float64")).sum().backward()
    return x.grad.numpy().astype(np.float64).reshape(shape)
''',
        "dlkit's autodiff of a broadcast (imported)": '''
def unbroadcast(grad, shape):
    import dlkit as dk
    x = dk.tensor(np.zeros(shape), requires_grad=True, dtype="float64")
    y = x + dk.tensor(np.zeros(grad.shape), dtype="float64")
    (y * dk.tensor(grad, dtype="float64")).sum().backward()
    return x.grad.numpy().astype(np.float64).reshape(shape)
''',
    },
}
