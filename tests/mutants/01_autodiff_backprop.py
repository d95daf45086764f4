"""Mutants for 01_autodiff_backprop (see tests/mutants/__init__.py).

``MUTANTS``: mistakes students make when they build the engine and the VJPs; each must lose
points for its piece.  ``CORRECT``: right answers written differently from the reference; each
must keep full marks (tests/test_autograder_01.py).  ``SHORTCUTS``: answers that hand the work
to dlkit's own engine or VJPs; the student kit withholds those, so each must score 0 there.
``ANSWERS``: the reference answers every mutant is measured against.
"""

MUTANTS: dict[str, dict[str, str]] = {
    "topological_order": {
        "reversed DFS pre-order (a node placed before all its inputs are)": '''
def topological_order(output):
    order, visited, stack = [], set(), [output]
    while stack:
        node = stack.pop()
        if node in visited:
            continue
        visited.add(node)
        order.append(node)
        stack.extend(x for x in node.inputs if x.requires_grad)
    return order[::-1]
''',
        "no visited set: a tensor used twice is listed twice": '''
def topological_order(output):
    order = []
    def visit(node):
        for x in node.inputs:
            if x.requires_grad:
                visit(x)
        order.append(node)
    visit(output)
    return order
''',
        "reversed breadth-first levels from the output": '''
def topological_order(output):
    order, frontier, seen = [output], [output], {output}
    while frontier:
        nxt = []
        for node in frontier:
            for x in node.inputs:
                if x.requires_grad and x not in seen:
                    seen.add(x)
                    nxt.append(x)
        order += nxt
        frontier = nxt
    return order[::-1]
''',
        "includes constants (tensors that do not require grad)": '''
def topological_order(output):
    order, visited = [], {output}
    stack = [(output, iter(output.inputs))]
    while stack:
        node, inputs = stack[-1]
        for x in inputs:
            if x not in visited:
                visited.add(x)
                stack.append((x, iter(x.inputs)))
                break
        else:
            stack.pop()
            order.append(node)
    return order
''',
        "recursive post-order: fails on deep graphs": '''
def topological_order(output):
    order, visited = [], set()
    def visit(node):
        visited.add(node)
        for x in node.inputs:
            if x.requires_grad and x not in visited:
                visit(x)
        order.append(node)
    visit(output)
    return order
''',
        "output first (post-order returned reversed)": '''
def topological_order(output):
    order, visited = [], {output}
    stack = [(output, iter(output.inputs))]
    while stack:
        node, inputs = stack[-1]
        for x in inputs:
            if x.requires_grad and x not in visited:
                visited.add(x)
                stack.append((x, iter(x.inputs)))
                break
        else:
            stack.pop()
            order.append(node)
    return order[::-1]
''',
        "marks visited tensors through .grad (changes the graph)": '''
def topological_order(output):
    order, stack = [], [(output, iter(output.inputs))]
    output.grad = 0.0
    while stack:
        node, inputs = stack[-1]
        for x in inputs:
            if x.requires_grad and x.grad is None:
                x.grad = 0.0
                stack.append((x, iter(x.inputs)))
                break
        else:
            stack.pop()
            order.append(node)
    return order
''',
        "leaves left out (only tensors made by ops)": '''
def topological_order(output):
    order, visited = [], {output}
    stack = [(output, iter(output.inputs))]
    while stack:
        node, inputs = stack[-1]
        for x in inputs:
            if x.requires_grad and x not in visited:
                visited.add(x)
                stack.append((x, iter(x.inputs)))
                break
        else:
            stack.pop()
            if node.op is not None:
                order.append(node)
    return order
''',
    },
    "backward_sweep": {
        "overwrites a tensor's gradient instead of summing the contributions": '''
def backward_sweep(output, out_grad, create_graph=False):
    grads = {output: out_grad}
    with dlkit.autograd.set_grad_enabled(create_graph):
        for node in reversed(topological_order(output)):
            if node.op is None or node not in grads:
                continue
            for x, gx in zip(node.inputs, node.op.gradient(grads[node], node)):
                if gx is not None and x.requires_grad:
                    grads[x] = gx
    return grads
''',
        "ignores create_graph (never records the VJPs)": '''
def backward_sweep(output, out_grad, create_graph=False):
    grads = {output: out_grad}
    with dlkit.no_grad():
        for node in reversed(topological_order(output)):
            if node.op is None or node not in grads:
                continue
            for x, gx in zip(node.inputs, node.op.gradient(grads[node], node)):
                if gx is not None and x.requires_grad:
                    grads[x] = grads[x] + gx if x in grads else gx
    return grads
''',
        "never switches recording (create_graph=False still records when the caller does)": '''
def backward_sweep(output, out_grad, create_graph=False):
    grads = {output: out_grad}
    for node in reversed(topological_order(output)):
        if node.op is None or node not in grads:
            continue
        for x, gx in zip(node.inputs, node.op.gradient(grads[node], node)):
            if gx is not None and x.requires_grad:
                grads[x] = grads[x] + gx if x in grads else gx
    return grads
''',
        "starts from ones instead of out_grad": '''
def backward_sweep(output, out_grad, create_graph=False):
    grads = {output: dlkit.tensor(np.ones(output.shape), dtype=output.dtype)}
    with dlkit.autograd.set_grad_enabled(create_graph):
        for node in reversed(topological_order(output)):
            if node.op is None or node not in grads:
                continue
            for x, gx in zip(node.inputs, node.op.gradient(grads[node], node)):
                if gx is not None and x.requires_grad:
                    grads[x] = grads[x] + gx if x in grads else gx
    return grads
''',
        "walks the order forwards (inputs first)": '''
def backward_sweep(output, out_grad, create_graph=False):
    grads = {output: out_grad}
    with dlkit.autograd.set_grad_enabled(create_graph):
        for node in topological_order(output):
            if node.op is None or node not in grads:
                continue
            for x, gx in zip(node.inputs, node.op.gradient(grads[node], node)):
                if gx is not None and x.requires_grad:
                    grads[x] = grads[x] + gx if x in grads else gx
    return grads
''',
        "returns the leaves' gradients only": '''
def backward_sweep(output, out_grad, create_graph=False):
    grads = {output: out_grad}
    with dlkit.autograd.set_grad_enabled(create_graph):
        for node in reversed(topological_order(output)):
            if node.op is None or node not in grads:
                continue
            for x, gx in zip(node.inputs, node.op.gradient(grads[node], node)):
                if gx is not None and x.requires_grad:
                    grads[x] = grads[x] + gx if x in grads else gx
    return {t: g for t, g in grads.items() if t.op is None}
''',
        "turns a None gradient into zeros (the input gets an entry)": '''
def backward_sweep(output, out_grad, create_graph=False):
    grads = {output: out_grad}
    with dlkit.autograd.set_grad_enabled(create_graph):
        for node in reversed(topological_order(output)):
            if node.op is None or node not in grads:
                continue
            for x, gx in zip(node.inputs, node.op.gradient(grads[node], node)):
                if not x.requires_grad:
                    continue
                if gx is None:
                    gx = dlkit.tensor(np.zeros(x.shape), dtype=x.dtype)
                grads[x] = grads[x] + gx if x in grads else gx
    return grads
''',
        "accumulates in place (overwrites out_grad, shared by several inputs)": '''
def backward_sweep(output, out_grad, create_graph=False):
    grads = {output: out_grad}
    with dlkit.autograd.set_grad_enabled(create_graph):
        for node in reversed(topological_order(output)):
            if node.op is None or node not in grads:
                continue
            for x, gx in zip(node.inputs, node.op.gradient(grads[node], node)):
                if gx is not None and x.requires_grad:
                    if x in grads:
                        grads[x].data = grads[x] + gx
                    else:
                        grads[x] = gx
    return grads
''',
        "writes .grad itself": '''
def backward_sweep(output, out_grad, create_graph=False):
    grads = {output: out_grad}
    with dlkit.autograd.set_grad_enabled(create_graph):
        for node in reversed(topological_order(output)):
            if node not in grads:
                continue
            if node.op is None:
                node.grad = grads[node]
                continue
            for x, gx in zip(node.inputs, node.op.gradient(grads[node], node)):
                if gx is not None and x.requires_grad:
                    grads[x] = grads[x] + gx if x in grads else gx
    return grads
''',
    },
    "sum_to_shape": {
        "sums the leading axes only (forgets the size-1 axes)": '''
def sum_to_shape(grad, shape):
    lead = grad.ndim - len(shape)
    return grad.sum(axis=tuple(range(lead))) if lead else grad
''',
        "drops the size-1 axes (no keepdims)": '''
def sum_to_shape(grad, shape):
    shape = tuple(shape)
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape)
                                      if n == 1 and grad.shape[lead + i] != 1)
    return grad.sum(axis=axes) if axes else grad
''',
        "averages instead of summing": '''
def sum_to_shape(grad, shape):
    shape = tuple(shape)
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape)
                                      if n == 1 and grad.shape[lead + i] != 1)
    return grad.mean(axis=axes, keepdims=True).reshape(shape) if axes else grad
''',
        "sums the trailing axes instead of the leading ones": '''
def sum_to_shape(grad, shape):
    shape = tuple(shape)
    extra = tuple(range(len(shape), grad.ndim))
    g = grad.sum(axis=extra) if extra else grad
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g
''',
        "computed in numpy (not differentiable, float32)": '''
def sum_to_shape(grad, shape):
    g = grad.numpy()
    lead = g.ndim - len(shape)
    g = g.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return dlkit.tensor(g.sum(axis=axes, keepdims=True) if axes else g)
''',
        "returns grad unchanged": '''
def sum_to_shape(grad, shape):
    return grad
''',
    },
    "add_gradient": {
        "no sum back to the input shapes": '''
def add_gradient(self, out_grad, node):
    return out_grad, out_grad
''',
        "one gradient for two inputs": '''
def add_gradient(self, out_grad, node):
    return (sum_to_shape(out_grad, node.inputs[0].shape),)
''',
        "b's gradient summed to a's shape (copy-paste)": '''
def add_gradient(self, out_grad, node):
    a, b = node.inputs
    return sum_to_shape(out_grad, a.shape), sum_to_shape(out_grad, a.shape)
''',
        "subtraction's VJP (−G for b)": '''
def add_gradient(self, out_grad, node):
    a, b = node.inputs
    return sum_to_shape(out_grad, a.shape), sum_to_shape(-out_grad, b.shape)
''',
        "splits the gradient between the inputs (G/2 each)": '''
def add_gradient(self, out_grad, node):
    a, b = node.inputs
    return sum_to_shape(out_grad * 0.5, a.shape), sum_to_shape(out_grad * 0.5, b.shape)
''',
        "returns numpy arrays": '''
def add_gradient(self, out_grad, node):
    a, b = node.inputs
    return sum_to_shape(out_grad, a.shape).numpy(), sum_to_shape(out_grad, b.shape).numpy()
''',
    },
    "mul_gradient": {
        "the two gradients swapped (G∘a for a)": '''
def mul_gradient(self, out_grad, node):
    a, b = node.inputs
    return sum_to_shape(out_grad * a, a.shape), sum_to_shape(out_grad * b, b.shape)
''',
        "no sum back to the input shapes": '''
def mul_gradient(self, out_grad, node):
    a, b = node.inputs
    return out_grad * b, out_grad * a
''',
        "addition's VJP (G for both)": '''
def mul_gradient(self, out_grad, node):
    a, b = node.inputs
    return sum_to_shape(out_grad, a.shape), sum_to_shape(out_grad, b.shape)
''',
        "b detached (second derivatives lose the a-b term)": '''
def mul_gradient(self, out_grad, node):
    a, b = node.inputs
    return sum_to_shape(out_grad * b.detach(), a.shape), sum_to_shape(out_grad * a.detach(), b.shape)
''',
        "None for b even when it requires grad": '''
def mul_gradient(self, out_grad, node):
    a, b = node.inputs
    return sum_to_shape(out_grad * b, a.shape), None
''',
        "forgets out_grad": '''
def mul_gradient(self, out_grad, node):
    a, b = node.inputs
    return sum_to_shape(b + 0 * out_grad, a.shape), sum_to_shape(a + 0 * out_grad, b.shape)
''',
    },
    "div_gradient": {
        "sign of b's gradient flipped": '''
def div_gradient(self, out_grad, node):
    a, b = node.inputs
    return sum_to_shape(out_grad / b, a.shape), sum_to_shape(out_grad * a / (b * b), b.shape)
''',
        "b's gradient without a (−G/b²)": '''
def div_gradient(self, out_grad, node):
    a, b = node.inputs
    return sum_to_shape(out_grad / b, a.shape), sum_to_shape(-out_grad / (b * b), b.shape)
''',
        "b's gradient with b instead of b² (−G a/b)": '''
def div_gradient(self, out_grad, node):
    a, b = node.inputs
    return sum_to_shape(out_grad / b, a.shape), sum_to_shape(-out_grad * a / b, b.shape)
''',
        "a's gradient G∘b (multiplication's)": '''
def div_gradient(self, out_grad, node):
    a, b = node.inputs
    return sum_to_shape(out_grad * b, a.shape), sum_to_shape(-out_grad * a / (b * b), b.shape)
''',
        "no sum back to the input shapes": '''
def div_gradient(self, out_grad, node):
    a, b = node.inputs
    return out_grad / b, -out_grad * a / (b * b)
''',
    },
    "negate_gradient": {
        "forgets the minus": '''
def negate_gradient(self, out_grad, node):
    return (out_grad,)
''',
        "a bare Tensor, not a tuple": '''
def negate_gradient(self, out_grad, node):
    return -out_grad
''',
        "the output instead of the gradient": '''
def negate_gradient(self, out_grad, node):
    return (node * out_grad,)
''',
        "made in numpy (float32, not differentiable)": '''
def negate_gradient(self, out_grad, node):
    return (dlkit.tensor(-out_grad.numpy()),)
''',
        "minus the input": '''
def negate_gradient(self, out_grad, node):
    return (-node.inputs[0],)
''',
    },
    "power_gradient": {
        "forgets the −1 in the exponent (p a^p)": '''
def power_gradient(self, out_grad, node):
    a = node.inputs[0]
    return (out_grad * self.p * a ** self.p,)
''',
        "forgets the factor p": '''
def power_gradient(self, out_grad, node):
    a = node.inputs[0]
    return (out_grad * a ** (self.p - 1),)
''',
        "forgets out_grad": '''
def power_gradient(self, out_grad, node):
    a = node.inputs[0]
    return (a ** (self.p - 1) * self.p + 0 * out_grad,)
''',
        "(p − 1) a^p": '''
def power_gradient(self, out_grad, node):
    a = node.inputs[0]
    return (out_grad * (self.p - 1) * a ** self.p,)
''',
        "treats p = 2 as the only case (2a)": '''
def power_gradient(self, out_grad, node):
    return (out_grad * node.inputs[0] * 2.0,)
''',
    },
    "exp_gradient": {
        "forgets the factor exp(a)": '''
def exp_gradient(self, out_grad, node):
    return (out_grad,)
''',
        "forgets out_grad": '''
def exp_gradient(self, out_grad, node):
    return (node + 0 * out_grad,)
''',
        "G∘a instead of G∘exp(a)": '''
def exp_gradient(self, out_grad, node):
    return (out_grad * node.inputs[0],)
''',
        "exp(a) detached (second derivative lost)": '''
def exp_gradient(self, out_grad, node):
    return (out_grad * node.detach(),)
''',
        "made in numpy (float32, not differentiable)": '''
def exp_gradient(self, out_grad, node):
    return (dlkit.tensor(out_grad.numpy() * np.exp(node.inputs[0].numpy())),)
''',
    },
    "log_gradient": {
        "G∘a instead of G/a": '''
def log_gradient(self, out_grad, node):
    return (out_grad * node.inputs[0],)
''',
        "divides by the output log(a)": '''
def log_gradient(self, out_grad, node):
    return (out_grad / node,)
''',
        "forgets out_grad": '''
def log_gradient(self, out_grad, node):
    return (1.0 / node.inputs[0] + 0 * out_grad,)
''',
        "G∘log(a)": '''
def log_gradient(self, out_grad, node):
    return (out_grad * node,)
''',
        "minus sign": '''
def log_gradient(self, out_grad, node):
    return (-out_grad / node.inputs[0],)
''',
    },
    "relu_gradient": {
        "mask a >= 0 (gradient 1 at exactly 0)": '''
def relu_gradient(self, out_grad, node):
    return (out_grad * (node.inputs[0] >= 0),)
''',
        "multiplies by the output relu(a)": '''
def relu_gradient(self, out_grad, node):
    return (out_grad * node,)
''',
        "the mask alone (forgets out_grad)": '''
def relu_gradient(self, out_grad, node):
    return ((node.inputs[0] > 0) + 0 * out_grad,)
''',
        "masked by the sign of out_grad": '''
def relu_gradient(self, out_grad, node):
    return (out_grad * (out_grad > 0),)
''',
        "mask made as a float64 constant (breaks float32 models)": '''
def relu_gradient(self, out_grad, node):
    mask = (node.inputs[0].numpy() > 0).astype(np.float64)
    return (out_grad * dlkit.tensor(mask, dtype="float64"),)
''',
        "mask flipped (a < 0)": '''
def relu_gradient(self, out_grad, node):
    return (out_grad * (node.inputs[0] < 0),)
''',
    },
    "matmul_gradient": {
        "forgets the transposes (G B, A G)": '''
def matmul_gradient(self, out_grad, node):
    a, b = node.inputs
    return out_grad @ b, a @ out_grad
''',
        "returns (dB, dA)": '''
def matmul_gradient(self, out_grad, node):
    a, b = node.inputs
    swap = lambda t: t.transpose(tuple(range(t.ndim - 2)) + (t.ndim - 1, t.ndim - 2))
    return sum_to_shape(swap(a) @ out_grad, b.shape), sum_to_shape(out_grad @ swap(b), a.shape)
''',
        "transposes all axes (.T), wrong for batches": '''
def matmul_gradient(self, out_grad, node):
    a, b = node.inputs
    return sum_to_shape(out_grad @ b.T, a.shape), sum_to_shape(a.T @ out_grad, b.shape)
''',
        "no sum over broadcast batch axes": '''
def matmul_gradient(self, out_grad, node):
    a, b = node.inputs
    swap = lambda t: t.transpose(tuple(range(t.ndim - 2)) + (t.ndim - 1, t.ndim - 2))
    return out_grad @ swap(b), swap(a) @ out_grad
''',
        "G^T A for B's gradient": '''
def matmul_gradient(self, out_grad, node):
    a, b = node.inputs
    swap = lambda t: t.transpose(tuple(range(t.ndim - 2)) + (t.ndim - 1, t.ndim - 2))
    return sum_to_shape(out_grad @ swap(b), a.shape), sum_to_shape(swap(out_grad) @ a, b.shape)
''',
        "divides by the number of rows (there is no mean in A @ B)": '''
def matmul_gradient(self, out_grad, node):
    a, b = node.inputs
    m = a.shape[-2]
    swap = lambda t: t.transpose(tuple(range(t.ndim - 2)) + (t.ndim - 1, t.ndim - 2))
    return (sum_to_shape(out_grad @ swap(b), a.shape) / m,
            sum_to_shape(swap(a) @ out_grad, b.shape) / m)
''',
    },
    "summation_gradient": {
        "broadcasts without restoring the summed axes": '''
def summation_gradient(self, out_grad, node):
    return (out_grad.broadcast_to(node.inputs[0].shape),)
''',
        "returns out_grad unchanged": '''
def summation_gradient(self, out_grad, node):
    return (out_grad,)
''',
        "divides by the number of summed entries (mean's gradient)": '''
def summation_gradient(self, out_grad, node):
    shape = node.inputs[0].shape
    kept = tuple(1 if i in self.axes else n for i, n in enumerate(shape))
    count = 1
    for i in self.axes:
        count *= shape[i]
    return (out_grad.reshape(kept).broadcast_to(shape) / count,)
''',
        "assumes the last axis was summed": '''
def summation_gradient(self, out_grad, node):
    shape = node.inputs[0].shape
    return (out_grad.reshape(shape[:-1] + (1,)).broadcast_to(shape),)
''',
        "keepdims=True handled as 'nothing to do'": '''
def summation_gradient(self, out_grad, node):
    shape = node.inputs[0].shape
    if self.keepdims:
        return (out_grad,)
    kept = tuple(1 if i in self.axes else n for i, n in enumerate(shape))
    return (out_grad.reshape(kept).broadcast_to(shape),)
''',
    },
    "broadcast_to_gradient": {
        "returns out_grad unchanged": '''
def broadcast_to_gradient(self, out_grad, node):
    return (out_grad,)
''',
        "sums the new leading axes only": '''
def broadcast_to_gradient(self, out_grad, node):
    lead = out_grad.ndim - node.inputs[0].ndim
    return (out_grad.sum(axis=tuple(range(lead))) if lead else out_grad,)
''',
        "averages instead of summing": '''
def broadcast_to_gradient(self, out_grad, node):
    shape = node.inputs[0].shape
    s = sum_to_shape(out_grad, shape)
    return (s * (s.size / out_grad.size),)
''',
        "sums axis 0 only": '''
def broadcast_to_gradient(self, out_grad, node):
    return (out_grad.sum(axis=0),)
''',
        "picks one copy instead of summing them": '''
def broadcast_to_gradient(self, out_grad, node):
    shape = node.inputs[0].shape
    lead = out_grad.ndim - len(shape)
    index = (0,) * lead + tuple(slice(0, 1) if n == 1 else slice(None) for n in shape)
    return (out_grad[index],)
''',
    },
    "reshape_gradient": {
        "returns out_grad unchanged (the output's shape)": '''
def reshape_gradient(self, out_grad, node):
    return (out_grad,)
''',
        "reshapes to the output shape": '''
def reshape_gradient(self, out_grad, node):
    return (out_grad.reshape(self.shape),)
''',
        "transposes instead of reshaping": '''
def reshape_gradient(self, out_grad, node):
    shape = node.inputs[0].shape
    return (out_grad.reshape(shape[::-1]).transpose(),)
''',
        "flattens": '''
def reshape_gradient(self, out_grad, node):
    return (out_grad.reshape(-1),)
''',
        "sums to the input shape": '''
def reshape_gradient(self, out_grad, node):
    return (sum_to_shape(out_grad, node.inputs[0].shape),)
''',
    },
    "transpose_gradient": {
        "applies the same permutation again (not its inverse)": '''
def transpose_gradient(self, out_grad, node):
    return (out_grad.transpose(self.axes),)
''',
        "returns out_grad unchanged": '''
def transpose_gradient(self, out_grad, node):
    return (out_grad,)
''',
        "reverses all axes": '''
def transpose_gradient(self, out_grad, node):
    return (out_grad.transpose(),)
''',
        "reshapes back instead of permuting": '''
def transpose_gradient(self, out_grad, node):
    return (out_grad.reshape(node.inputs[0].shape),)
''',
        "the permutation applied twice (its square, right only for 3-cycles)": '''
def transpose_gradient(self, out_grad, node):
    return (out_grad.transpose(tuple(self.axes[i] for i in self.axes)),)
''',
    },
    "logsumexp_gradient": {
        "forgets out_grad (softmax alone)": '''
def logsumexp_gradient(self, out_grad, node):
    a = node.inputs[0]
    kept = tuple(1 if i == self.axis else n for i, n in enumerate(a.shape))
    return (dlkit.exp(a - node.reshape(kept)) + 0 * out_grad.sum(),)
''',
        "softmax without shifting (overflows for large entries)": '''
def logsumexp_gradient(self, out_grad, node):
    a = node.inputs[0]
    kept = tuple(1 if i == self.axis else n for i, n in enumerate(a.shape))
    e = dlkit.exp(a)
    return (out_grad.reshape(kept) * e / e.sum(axis=self.axis, keepdims=True),)
''',
        "out_grad not reshaped to keep the summed axis": '''
def logsumexp_gradient(self, out_grad, node):
    a = node.inputs[0]
    kept = tuple(1 if i == self.axis else n for i, n in enumerate(a.shape))
    return ((out_grad * dlkit.exp(a - node.reshape(kept)).transpose()).transpose(),)
''',
        "exp(a) not normalised": '''
def logsumexp_gradient(self, out_grad, node):
    a = node.inputs[0]
    kept = tuple(1 if i == self.axis else n for i, n in enumerate(a.shape))
    return (out_grad.reshape(kept) * dlkit.exp(a - a.max(axis=self.axis, keepdims=True)),)
''',
        "softmax over the last axis whatever self.axis is": '''
def logsumexp_gradient(self, out_grad, node):
    a = node.inputs[0]
    kept = tuple(1 if i == self.axis else n for i, n in enumerate(a.shape))
    return (out_grad.reshape(kept) * dlkit.softmax(a, axis=-1),)
''',
    },
}

CORRECT: dict[str, dict[str, str]] = {
    "topological_order": {
        "iterative post-order with one stack of (tensor, expanded) pairs": '''
def topological_order(output):
    order, done, stack = [], set(), [(output, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            if node not in done:
                done.add(node)
                order.append(node)
            continue
        if node in done:
            continue
        stack.append((node, True))
        for x in node.inputs:
            if x.requires_grad and x not in done:
                stack.append((x, False))
    return order
''',
        "Kahn's algorithm on consumer counts": '''
def topological_order(output):
    consumers, seen, todo = {output: 0}, {output}, [output]
    while todo:
        node = todo.pop()
        for x in node.inputs:
            if x.requires_grad:
                consumers[x] = consumers.get(x, 0) + 1
                if x not in seen:
                    seen.add(x)
                    todo.append(x)
    order, ready = [], [output]
    while ready:
        node = ready.pop()
        order.append(node)
        for x in node.inputs:
            if x.requires_grad:
                consumers[x] -= 1
                if consumers[x] == 0:
                    ready.append(x)
    return order[::-1]
''',
    },
    "backward_sweep": {
        "dict.get with an explicit mode switch": '''
def backward_sweep(output, out_grad, create_graph=False):
    grads = {output: out_grad}
    mode = dlkit.autograd.set_grad_enabled(create_graph)
    with mode:
        for node in topological_order(output)[::-1]:
            g = grads.get(node)
            if g is None or node.is_leaf:
                continue
            contributions = node.op.gradient(g, node)
            for i in range(len(node.inputs)):
                x, gx = node.inputs[i], contributions[i]
                if gx is None or not x.requires_grad:
                    continue
                if x in grads:
                    grads[x] = grads[x] + gx
                else:
                    grads[x] = gx
    return grads
''',
    },
    "sum_to_shape": {
        "one sum with keepdims, then a reshape": '''
def sum_to_shape(grad, shape):
    shape = tuple(shape)
    if grad.shape == shape:
        return grad
    padded = (1,) * (grad.ndim - len(shape)) + shape
    axes = tuple(i for i, n in enumerate(padded) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape)
''',
    },
    "div_gradient": {
        "b's gradient from the output: −G∘(a/b)/b": '''
def div_gradient(self, out_grad, node):
    a, b = node.inputs
    return sum_to_shape(out_grad / b, a.shape), sum_to_shape(-out_grad * node / b, b.shape)
''',
    },
    "negate_gradient": {
        "0 − G": '''
def negate_gradient(self, out_grad, node):
    return [0 - out_grad]
''',
    },
    "power_gradient": {
        "via exp and log (a > 0)": '''
def power_gradient(self, out_grad, node):
    a = node.inputs[0]
    return (out_grad * self.p * dlkit.exp((self.p - 1) * dlkit.log(a)),)
''',
    },
    "exp_gradient": {
        "recomputes exp(a)": '''
def exp_gradient(self, out_grad, node):
    return (out_grad * dlkit.exp(node.inputs[0]),)
''',
    },
    "log_gradient": {
        "a to the power −1": '''
def log_gradient(self, out_grad, node):
    return (out_grad * node.inputs[0] ** -1,)
''',
    },
    "relu_gradient": {
        "mask from the output (relu(a) > 0 iff a > 0)": '''
def relu_gradient(self, out_grad, node):
    return (dlkit.where(node > 0, out_grad, 0.0),)
''',
    },
    "matmul_gradient": {
        "matmul_gradient written with an explicit permutation per operand": '''
def matmul_gradient(self, out_grad, node):
    a, b = node.inputs
    def mT(t):
        axes = list(range(t.ndim))
        axes[-1], axes[-2] = axes[-2], axes[-1]
        return t.transpose(tuple(axes))
    da = out_grad @ mT(b)
    db = mT(a) @ out_grad
    return sum_to_shape(da, a.shape), sum_to_shape(db, b.shape)
''',
    },
    "summation_gradient": {
        "expand the axes one by one": '''
def summation_gradient(self, out_grad, node):
    shape = node.inputs[0].shape
    g = out_grad
    if not self.keepdims:
        kept = list(g.shape)
        for ax in sorted(self.axes):
            kept.insert(ax, 1)
        g = g.reshape(tuple(kept))
    return (dlkit.broadcast_to(g, shape),)
''',
    },
    "transpose_gradient": {
        "inverse permutation with argsort": '''
def transpose_gradient(self, out_grad, node):
    return (out_grad.transpose(tuple(int(i) for i in np.argsort(self.axes))),)
''',
    },
    "logsumexp_gradient": {
        "G times the softmax along the axis": '''
def logsumexp_gradient(self, out_grad, node):
    a = node.inputs[0]
    kept = tuple(1 if i == self.axis else n for i, n in enumerate(a.shape))
    return (out_grad.reshape(kept) * dlkit.softmax(a, axis=self.axis),)
''',
    },
}

SHORTCUTS: dict[str, str] = {
    "topological_order": '''
def topological_order(output):
    return dlkit.autograd.topological_order(output)
''',
    "backward_sweep": '''
def backward_sweep(output, out_grad, create_graph=False):
    return dlkit.autograd.backward_sweep(output, out_grad, create_graph)
''',
    "sum_to_shape": '''
sum_to_shape = dlkit.ops.sum_to_shape
''',
    "add_gradient": '''
add_gradient = dlkit.ops.Add.gradient
''',
    "mul_gradient": '''
def mul_gradient(self, out_grad, node):
    return dlkit.ops.Mul.gradient(self, out_grad, node)
''',
    "matmul_gradient": '''
def matmul_gradient(self, out_grad, node):
    a, b = node.inputs
    want = [x for x in (a, b) if x.requires_grad]
    got = iter(dlkit.grad(node, want, out_grad=out_grad, create_graph=True))
    return tuple(next(got) if x.requires_grad else None for x in (a, b))
''',
    "relu_gradient": '''
def relu_gradient(self, out_grad, node):
    return dlkit.ops.ReLU().gradient(out_grad, node)
''',
    "logsumexp_gradient": '''
def logsumexp_gradient(self, out_grad, node):
    a = node.inputs[0]
    (g,) = dlkit.grad(node, [a], out_grad=out_grad, create_graph=dlkit.is_grad_enabled())
    return (g,)
''',
    "summation_gradient": '''
def summation_gradient(self, out_grad, node):
    return type(self).gradient(self, out_grad, node)
''',
}


# The reference solutions as answer cells, written apart from the notebook's (the checks must give
# both full marks; tests/test_autograder_checks.py reads them from here).
ANSWERS: dict[str, str] = {
    "topological_order": '''
def topological_order(output):
    order, visited = [], {output}
    stack = [(output, iter(output.inputs))]
    while stack:
        node, inputs = stack[-1]
        for x in inputs:
            if x.requires_grad and x not in visited:
                visited.add(x)
                stack.append((x, iter(x.inputs)))
                break
        else:
            stack.pop()
            order.append(node)
    return order
''',
    "backward_sweep": '''
def backward_sweep(output, out_grad, create_graph=False):
    grads = {output: out_grad}
    with dlkit.autograd.set_grad_enabled(create_graph):
        for node in reversed(topological_order(output)):
            if node.op is None or node not in grads:
                continue
            for x, gx in zip(node.inputs, node.op.gradient(grads[node], node)):
                if gx is not None and x.requires_grad:
                    grads[x] = grads[x] + gx if x in grads else gx
    return grads
''',
    "sum_to_shape": '''
def sum_to_shape(grad, shape):
    shape = tuple(shape)
    lead = grad.ndim - len(shape)
    if lead:
        grad = grad.sum(axis=tuple(range(lead)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad
''',
    "add_gradient": '''
def add_gradient(self, out_grad, node):
    a, b = node.inputs
    return sum_to_shape(out_grad, a.shape), sum_to_shape(out_grad, b.shape)
''',
    "mul_gradient": '''
def mul_gradient(self, out_grad, node):
    a, b = node.inputs
    return sum_to_shape(out_grad * b, a.shape), sum_to_shape(out_grad * a, b.shape)
''',
    "div_gradient": '''
def div_gradient(self, out_grad, node):
    a, b = node.inputs
    return sum_to_shape(out_grad / b, a.shape), sum_to_shape(-out_grad * a / (b * b), b.shape)
''',
    "negate_gradient": '''
def negate_gradient(self, out_grad, node):
    return (-out_grad,)
''',
    "power_gradient": '''
def power_gradient(self, out_grad, node):
    a = node.inputs[0]
    return (out_grad * self.p * a ** (self.p - 1),)
''',
    "matmul_gradient": '''
def matmul_gradient(self, out_grad, node):
    a, b = node.inputs
    swap = lambda t: t.transpose(tuple(range(t.ndim - 2)) + (t.ndim - 1, t.ndim - 2))
    return (sum_to_shape(out_grad @ swap(b), a.shape),
            sum_to_shape(swap(a) @ out_grad, b.shape))
''',
    "summation_gradient": '''
def summation_gradient(self, out_grad, node):
    shape = node.inputs[0].shape
    kept = tuple(1 if i in self.axes else n for i, n in enumerate(shape))
    return (out_grad.reshape(kept).broadcast_to(shape),)
''',
    "broadcast_to_gradient": '''
def broadcast_to_gradient(self, out_grad, node):
    return (sum_to_shape(out_grad, node.inputs[0].shape),)
''',
    "reshape_gradient": '''
def reshape_gradient(self, out_grad, node):
    return (out_grad.reshape(node.inputs[0].shape),)
''',
    "transpose_gradient": '''
def transpose_gradient(self, out_grad, node):
    inverse = [0] * len(self.axes)
    for i, ax in enumerate(self.axes):
        inverse[ax] = i
    return (out_grad.transpose(tuple(inverse)),)
''',
    "exp_gradient": '''
def exp_gradient(self, out_grad, node):
    return (out_grad * node,)
''',
    "log_gradient": '''
def log_gradient(self, out_grad, node):
    return (out_grad / node.inputs[0],)
''',
    "relu_gradient": '''
def relu_gradient(self, out_grad, node):
    return (out_grad * (node.inputs[0] > 0),)
''',
    "logsumexp_gradient": '''
def logsumexp_gradient(self, out_grad, node):
    a = node.inputs[0]
    kept = tuple(1 if i == self.axis else n for i, n in enumerate(a.shape))
    return (out_grad.reshape(kept) * dlkit.exp(a - node.reshape(kept)),)
''',
}
