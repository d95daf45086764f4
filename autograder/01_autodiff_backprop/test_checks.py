"""Hidden checks for 01_autodiff_backprop: the reverse-mode engine and the VJPs of the core ops.

Every answer is a piece of dlkit (notebooks/GRADED.md), so the checks drive it the way dlkit
does: a trusted driver (``COMMON`` + one entry, run in the sandbox beside the student's definitions) builds
tensors and graphs, calls the student's piece and sends back plain data (arrays, indices,
flags).  All expected values are computed here, in the trusted process, in numpy: closed forms
checked against central differences (``reference.py``).  The engine is exercised on graphs of
the driver's own small ops (sin, cos, product, sum, scale, a "first" op whose VJP gives None,
a total), so its checks do not depend on the student's VJPs, and dlkit's own engine and VJPs
are withheld from the sandbox kit.

Points: topological_order 3, backward_sweep 4, sum_to_shape 2, matmul_gradient 2,
logsumexp_gradient 2, every other VJP 1 (the notebook's test cells).
"""
from __future__ import annotations

import numpy as np

from autograder.api import check, expect_array, fail, load_reference

ref = load_reference(__file__)

COMMON = r'''
import numpy as np
import dlkit
from dlkit.autograd import Op, Tensor


class _Sin(Op):
    def compute(self, a): return np.sin(a)
    def gradient(self, g, node): return (_EMul()(g, _Cos()(node.inputs[0])),)


class _Cos(Op):
    def compute(self, a): return np.cos(a)
    def gradient(self, g, node): return (_Scale(-1.0)(_EMul()(g, _Sin()(node.inputs[0]))),)


class _EMul(Op):
    def compute(self, a, b): return a * b
    def gradient(self, g, node):
        a, b = node.inputs
        return _EMul()(g, b), _EMul()(g, a)


class _Plus(Op):
    def compute(self, a, b): return a + b
    def gradient(self, g, node): return g, g


class _Scale(Op):
    def __init__(self, c): self.c = c
    def compute(self, a): return self.c * a
    def gradient(self, g, node): return (_Scale(self.c)(g),)


class _First(Op):
    def compute(self, a, b): return a.copy()
    def gradient(self, g, node): return g, None


class _Total(Op):
    def compute(self, a): return np.asarray(a.sum())
    def gradient(self, g, node): return (_Fill(node.inputs[0].shape)(g),)


class _Fill(Op):
    def __init__(self, shape): self.shape = shape
    def compute(self, g): return np.broadcast_to(g, self.shape).copy()
    def gradient(self, g, node): return (_Total()(g),)


_MAKE = {"sin": lambda c: _Sin(), "cos": lambda c: _Cos(), "emul": lambda c: _EMul(),
         "plus": lambda c: _Plus(), "scale": lambda c: _Scale(c), "first": lambda c: _First(),
         "total": lambda c: _Total()}


def _plug_own(*names):
    """The library path calls the student's own earlier pieces (as the notebook's plugs do)."""
    for name in names:
        obj = globals().get(name)
        if callable(obj):
            try:
                dlkit.student.plug(name, obj)
            except Exception:          # e.g. the library's own stand-in: left unplugged
                pass


def _same_shape_sum(self, g, node):
    # the engine's sums of contributions are Adds of two equal shapes; differentiating them
    # (create_graph) must not depend on the student's add_gradient
    return g, g


def _build(spec):
    ts = []
    for node in spec:
        if node[0] == "leaf":
            ts.append(dlkit.tensor(np.asarray(node[1]), requires_grad=bool(node[2]),
                                   dtype="float64"))
        else:
            ts.append(_MAKE[node[0]](node[2])(*[ts[i] for i in node[1]]))
    return ts


def _reaches(t, targets):
    """Which of ``targets`` the graph of ``t`` reaches through .inputs (t itself included)."""
    ids = {id(x): k for k, x in enumerate(targets)}
    seen, todo, found = {id(t)}, [t], set()
    while todo:
        x = todo.pop()
        if id(x) in ids:
            found.add(ids[id(x)])
        for y in getattr(x, "inputs", ()):
            if id(y) not in seen:
                seen.add(id(y))
                todo.append(y)
    return sorted(found)


def _desc(x, targets=()):
    if x is None:
        return None
    if not isinstance(x, Tensor):
        return {"type": type(x).__name__}
    return {"type": "Tensor", "array": np.array(x.numpy(), dtype=np.float64),
            "dtype": str(x.dtype), "shape": list(x.shape), "requires_grad": bool(x.requires_grad),
            "reaches": _reaches(x, targets) if targets else []}


'''

TOPO = r'''
def topo(spec, out):
    ts = _build(spec)
    order = topological_order(ts[out])
    if not isinstance(order, (list, tuple)):
        return {"type": type(order).__name__}
    index = {id(t): i for i, t in enumerate(ts)}
    graph = [[[index.get(id(p), -1) for p in t.inputs], bool(t.requires_grad), t.grad is None,
              np.array(t.numpy(), dtype=np.float64)] for t in ts]
    return {"type": "list", "items": [index.get(id(t), -1) if isinstance(t, Tensor) else -2
                                      for t in order], "graph": graph}
'''

CHAIN = r'''
def chain(n):
    x = dlkit.tensor(np.ones(2), requires_grad=True, dtype="float64")
    ts = [x]
    for k in range(n):
        ts.append(_Scale(1.0001)(ts[-1]))
    order = topological_order(ts[-1])
    index = {id(t): i for i, t in enumerate(ts)}
    return [index.get(id(t), -1) for t in order] if isinstance(order, (list, tuple)) else None
'''

SWEEP = r'''
def sweep(spec, out, seed, create_graph, weights=None):
    ts = _build(spec)
    leaf_before = [t.numpy() for t in ts]
    g = dlkit.tensor(np.asarray(seed, dtype=np.float64).reshape(ts[out].shape), dtype="float64")
    g_before = g.numpy()
    _plug_own("topological_order")
    if weights is not None:
        dlkit.student.plug("add_gradient", _same_shape_sum)
    ambient = bool(len(spec) % 2) and not create_graph      # the sweep must set the mode itself
    with dlkit.autograd.set_grad_enabled(ambient):
        grads = backward_sweep(ts[out], g, create_graph)
    res = {"type": type(grads).__name__}
    if not isinstance(grads, dict):
        return res
    index = {id(t): i for i, t in enumerate(ts)}
    res["grads"] = [[index.get(id(k), -1) if isinstance(k, Tensor) else -2, _desc(v)]
                    for k, v in grads.items()]
    res["grad_attr"] = [i for i, t in enumerate(ts) if t.grad is not None]
    res["changed"] = [i for i, t in enumerate(ts) if not np.array_equal(t.numpy(), leaf_before[i])]
    res["seed_changed"] = not np.array_equal(g.numpy(), g_before)
    if weights is not None:
        total = None
        for i, w in weights:
            gi = grads.get(ts[i])
            if isinstance(gi, Tensor):
                w = dlkit.tensor(np.asarray(w, dtype=np.float64).reshape(gi.shape), dtype="float64")
                term = _Total()(_EMul()(gi, w))
                total = term if total is None else _Plus()(total, term)
        if total is None or not total.requires_grad:
            res["second"] = "not recorded"
        else:
            try:
                second = backward_sweep(total, dlkit.tensor(1.0, dtype="float64"), False)
            finally:
                dlkit.student.reset()           # the stand-in add gradient is for this call only
            res["second"] = [[index.get(id(k), -1), _desc(v)] for k, v in second.items()
                             if isinstance(k, Tensor)] if isinstance(second, dict) else "not a dict"
    return res
'''

BACKWARD = r'''
def through_backward(spec, out, seed):
    # the library path: Tensor.backward running the student's two plugged pieces, twice
    dlkit.student.plug("topological_order", topological_order)
    dlkit.student.plug("backward_sweep", backward_sweep)
    ts = _build(spec)
    g = dlkit.tensor(np.asarray(seed, dtype=np.float64).reshape(ts[out].shape), dtype="float64")
    ts[out].backward(g)
    ts[out].backward(g)
    return [[i, None if t.grad is None else np.array(t.grad.numpy(), dtype=np.float64)]
            for i, t in enumerate(ts) if spec[i][0] == "leaf"]
'''

VJP = r'''
def vjp(kind, params, arrays, shapes, requires, G, record, dtype="float64"):
    _plug_own("sum_to_shape")
    fn = TARGET
    ts = [dlkit.tensor(np.asarray(a, dtype=np.float64).reshape(tuple(s)), requires_grad=bool(r),
                       dtype=dtype) for a, s, r in zip(arrays, shapes, requires)]
    op = getattr(dlkit.ops, kind)(*[tuple(p) if isinstance(p, list) else p for p in params])
    node = op(*ts)
    g = dlkit.tensor(np.asarray(G, dtype=np.float64).reshape(node.shape), requires_grad=record,
                     dtype=dtype)
    node_before = node.numpy()
    with dlkit.autograd.set_grad_enabled(record):
        out = fn(op, g, node)
    res = {"type": type(out).__name__, "inputs_after": [t.numpy() for t in ts],
           "g_after": g.numpy(), "node_before": node_before, "node_after": node.numpy()}
    if isinstance(out, (tuple, list)):
        res["items"] = [_desc(x, ts + [g]) for x in out]
    return res
'''

TO_SHAPE = r'''
def to_shape(G, shape, record):
    g = dlkit.tensor(np.asarray(G), requires_grad=record, dtype="float64")
    with dlkit.autograd.set_grad_enabled(record):
        out = TARGET(g, tuple(shape))
    return {"out": _desc(out, [g]), "g_after": g.numpy()}
'''


def driver(entry: str, target: str | None = None) -> str:
    """The driver source for one entry point: the common ops and helpers, the entry, and (for the
    VJPs) ``TARGET``, bound to the student's piece by name (so the harness loads that cell)."""
    return COMMON + entry + (f"\n\nTARGET = {target}\n" if target else "")


RTOL, ATOL = 1e-7, 1e-9


def _arr(d: dict) -> np.ndarray:
    """A described tensor's values in its own shape (the wire sends 0-d arrays as shape (1,))."""
    a = np.asarray(d["array"])
    shape = tuple(d["shape"])
    return a.reshape(shape) if a.size == int(np.prod(shape)) else a


def _same(a, b) -> bool:
    """Equal values, whatever the wire did to 0-d shapes."""
    a, b = np.asarray(a), np.asarray(b)
    return a.size == b.size and np.array_equal(a.ravel(), b.ravel())


def _close(got, want):
    return got.shape == want.shape and np.allclose(got, want, rtol=RTOL, atol=ATOL)


# ================================================================================ the engine
def _order_ok(spec, out, result, what):
    """``result`` (indices) is a topological order of the nodes that reach ``out``."""
    if result.get("type") != "list":
        fail(f"topological_order should return a list of tensors; it returned a {result.get('type')} "
             f"({what}).")
    req = ref.requires(spec)
    values = ref.graph_forward(spec)
    for i, (inputs, requires_grad, no_grad_attr, value) in enumerate(result["graph"]):
        node = spec[i]
        recorded = list(node[1]) if node[0] != "leaf" and req[i] else []   # constants: none
        if (list(inputs) != recorded
                or requires_grad != req[i] or not no_grad_attr
                or not _same(value, values[i])):
            fail(f"topological_order changed the graph ({what}): the tensors' inputs, values, "
                 f"requires_grad and .grad must stay as they were.")
    items = result["items"]
    if -2 in items:
        fail(f"topological_order returned something that is not a Tensor in its list ({what}).")
    if -1 in items:
        fail(f"topological_order returned a tensor that is not part of the graph ({what}).")
    if len(items) != len(set(items)):
        twice = sorted({i for i in items if items.count(i) > 1})
        fail(f"topological_order lists {len(twice)} tensor(s) more than once ({what}): a tensor "
             f"used by several ops must appear exactly once.")
    want = ref.reachable(spec, out)
    extra = [i for i in items if i not in want]
    if any(not req[i] for i in extra):
        fail(f"topological_order includes tensors that do not require grad ({what}); the order "
             f"holds only tensors that require grad.")
    missing = want - set(items)
    if missing or extra:
        fail(f"topological_order returned {len(items)} tensors; the graph has {len(want)} that "
             f"require grad and reach the output ({what}): "
             + ("some are missing." if missing else "it holds others."))
    pos = {i: k for k, i in enumerate(items)}
    for i in items:
        if spec[i][0] != "leaf":
            for j in spec[i][1]:
                if req[j] and pos[j] > pos[i]:
                    fail(f"topological_order puts a tensor before one of its inputs ({what}): "
                         f"every tensor must come after all of its inputs (the output last).")


def _graphs(seed, count, shape=(3,), constants=1):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        n_leaves, n_ops = int(rng.integers(1, 4)), int(rng.integers(4, 12))
        out.append(ref.random_graph(rng, n_leaves, n_ops, shape, constants=constants))
    return out


# Hand-made shapes of graph: a diamond, a node used twice by one op, a node used by ops at
# different depths (DFS pre-order and reversed BFS both get it wrong), a leaf only reached
# through an input whose VJP is None.
def _diamond():
    return [("leaf", np.array([0.3, -1.2]), True), ("sin", [0], 0.0), ("cos", [0], 0.0),
            ("emul", [1, 2], 0.0), ("total", [3], 0.0)]


def _reused():
    return [("leaf", np.array([0.7, 0.2, -0.4]), True), ("emul", [0, 0], 0.0),
            ("plus", [1, 1], 0.0), ("scale", [2], 1.5), ("plus", [3, 0], 0.0)]


def _uneven():
    return [("leaf", np.array([0.5, -0.6]), True), ("sin", [0], 0.0), ("sin", [1], 0.0),
            ("sin", [2], 0.0), ("emul", [0, 3], 0.0), ("plus", [4, 1], 0.0), ("cos", [5], 0.0)]


def _with_none():
    return [("leaf", np.array([1.1, -0.3]), True), ("leaf", np.array([0.4, 2.0]), True),
            ("leaf", np.array([0.5, 0.5]), False), ("first", [0, 1], 0.0),
            ("emul", [3, 2], 0.0), ("sin", [4], 0.0)]


@check("topological_order", points=1)
def test_topological_order_small_graphs(student):
    for name, spec in [("a diamond", _diamond()), ("a tensor used twice by one op", _reused()),
                       ("a tensor used at two depths", _uneven()),
                       ("a graph with constants", _with_none())]:
        out = len(spec) - 1
        _order_ok(spec, out, student.run(driver(TOPO), "topo", spec, out), name)
    # the order of an intermediate tensor holds only what reaches it
    spec = _uneven()
    _order_ok(spec, 3, student.run(driver(TOPO), "topo", spec, 3), "ordering an intermediate tensor")


@check("topological_order", points=1)
def test_topological_order_random_graphs(student):
    for k, spec in enumerate(_graphs(seed=101, count=8)):
        out = len(spec) - 1
        if not ref.requires(spec)[out]:
            continue
        _order_ok(spec, out, student.run(driver(TOPO), "topo", spec, out), f"random graph {k}")


@check("topological_order", points=1, timeout=10)
def test_topological_order_deep_chain(student):
    n = 3000
    got = student.run(driver(CHAIN), "chain", n)
    if got is None:
        fail("topological_order should return a list of tensors.")
    if got != list(range(n + 1)):
        fail(f"topological_order is wrong on a chain of {n} ops (x -> y1 -> ... -> y{n}): "
             f"expected the {n + 1} tensors from x to the output"
             + (f", got {len(got)} entries." if len(got) != n + 1 else ", in that order.")
             + " Graphs this deep are common (long loops, RNNs): Python stops recursion at "
               "about 1000 nested calls.")


def _sweep_ok(spec, out, seed, create_graph, result, what, weights=None):
    if result.get("type") != "dict":
        fail(f"backward_sweep should return a dict {{tensor: gradient}}; it returned a "
             f"{result.get('type')} ({what}).")
    if result["seed_changed"] or result["changed"]:
        fail(f"backward_sweep modified a tensor in place ({what}): out_grad and the graph's "
             f"values must stay as they were.")
    if result["grad_attr"]:
        fail(f"backward_sweep set .grad ({what}); it only returns the dict (Tensor.backward "
             f"accumulates the leaves' .grad from it).")
    want = ref.graph_gradients(spec, out, seed)
    req = ref.requires(spec)
    got: dict[int, dict] = {}
    for i, d in result["grads"]:
        if i == -2:
            fail(f"backward_sweep's dict has a key that is not a Tensor ({what}).")
        if i == -1:
            fail(f"backward_sweep's dict has a tensor that is not part of the graph ({what}).")
        if req[i]:
            got[i] = d
    missing = set(want) - set(got)
    if missing:
        kind = "leaf" if all(spec[i][0] == "leaf" for i in missing) else "tensor"
        fail(f"backward_sweep's dict has no gradient for {len(missing)} {kind}(s) of the graph "
             f"({what}); every tensor of topological_order(output) that receives a "
             f"contribution needs one (intermediate tensors too).")
    extra = set(got) - set(want)
    if extra:
        fail(f"backward_sweep's dict has an entry for a tensor that receives no gradient ({what}): "
             f"when an op's gradient returns None for an input, that input gets no contribution "
             f"(leave it out of the dict: its .grad stays None).")
    for i, w in sorted(want.items()):
        d = got[i]
        if d is None or d.get("type") != "Tensor":
            fail(f"the gradient of a tensor is a {None if d is None else d.get('type')}, "
                 f"expected a Tensor ({what}).")
        g = _arr(d)
        if tuple(d["shape"]) != w.shape:
            fail(f"a gradient has shape {tuple(d['shape'])}, expected {w.shape}: each gradient "
                 f"has the shape of its tensor ({what}).")
        if not _close(g, w):
            which = "the output" if i == out else ("a leaf" if spec[i][0] == "leaf" else
                                                   "an intermediate tensor")
            fail(f"the gradient of {which} is wrong ({what}). Contributions that reach a tensor "
                 f"along different paths (and from every use of it) must be summed.",
                 got=g, expected=w)
        if not create_graph and d["requires_grad"]:
            fail(f"with create_graph=False the gradients must not be recorded (they require "
                 f"grad here) ({what}): run the VJPs with recording switched off.")
    if weights is not None:
        second = result.get("second")
        expect = ref.graph_second(spec, out, seed, dict(weights))
        if second == "not recorded":
            if all(np.allclose(v, 0, atol=1e-9) for v in expect.values()):
                return
            fail(f"with create_graph=True the gradients must be recorded, so that they can be "
                 f"differentiated again ({what}).")
        if not isinstance(second, list):
            fail(f"backward_sweep did not return a dict when differentiating a gradient ({what}).")
        got2 = {i: d for i, d in second if i >= 0 and d is not None and d.get("type") == "Tensor"}
        for i, w in expect.items():
            g = _arr(got2[i]) if i in got2 else np.zeros_like(w)
            if g.shape != w.shape or not np.allclose(g, w, rtol=1e-5, atol=1e-6):
                fail(f"second derivatives are wrong: the gradients that backward_sweep returns "
                     f"with create_graph=True do not differentiate correctly ({what}).",
                     got=g, expected=w)


@check("backward_sweep", points=1)
def test_backward_sweep_diamonds_and_reuse(student):
    for name, spec in [("a diamond", _diamond()), ("a tensor used twice by one op", _reused()),
                       ("a tensor used at two depths", _uneven())]:
        out = len(spec) - 1
        seed = np.ones(ref.graph_forward(spec)[out].shape)
        if spec[out][0] != "total":
            seed = np.random.default_rng(len(spec)).standard_normal(seed.shape)
        r = student.run(driver(SWEEP), "sweep", spec, out, seed, False)
        _sweep_ok(spec, out, seed, False, r, name)


@check("backward_sweep", points=1)
def test_backward_sweep_none_gradients_and_constants(student):
    spec = _with_none()
    out = len(spec) - 1
    seed = np.array([0.7, -1.3])
    r = student.run(driver(SWEEP), "sweep", spec, out, seed, False)
    _sweep_ok(spec, out, seed, False, r, "an op whose gradient is None for one input, "
                                         "and a constant")
    # and through Tensor.backward (called twice: .grad accumulates), your pieces plugged in
    got = dict((i, g) for i, g in student.run(driver(BACKWARD), "through_backward", spec, out, seed))
    want = ref.graph_gradients(spec, out, seed)
    for i, node in enumerate(spec):
        if node[0] != "leaf":
            continue
        if i in want and node[2]:
            if got.get(i) is None or not _close(np.asarray(got[i]).reshape(want[i].shape), 2 * want[i]):
                fail("Tensor.backward running your topological_order and backward_sweep gives a "
                     "wrong .grad (after two backward calls, .grad holds twice the gradient).")
        elif got.get(i) is not None:
            fail("Tensor.backward running your pieces gave a .grad to a tensor that receives no "
                 "gradient (a parameter whose gradient is None, or a constant): it must stay None.")


@check("backward_sweep", points=1)
def test_backward_sweep_random_graphs(student):
    rng = np.random.default_rng(202)
    for k, spec in enumerate(_graphs(seed=203, count=8, shape=(2, 2))):
        out = len(spec) - 1
        if not ref.requires(spec)[out]:
            continue
        seed = rng.standard_normal((2, 2))
        r = student.run(driver(SWEEP), "sweep", spec, out, seed, False)
        _sweep_ok(spec, out, seed, False, r, f"random graph {k} with a random out_grad")
        mids = sorted(i for i in ref.reachable(spec, out) if spec[i][0] != "leaf" and i != out)
        if mids:
            mid = mids[-1]
            r = student.run(driver(SWEEP), "sweep", spec, mid, seed, False)
            _sweep_ok(spec, mid, seed, False, r, f"random graph {k}, from an intermediate tensor")


@check("backward_sweep", points=1, timeout=10)
def test_backward_sweep_create_graph(student):
    rng = np.random.default_rng(303)
    cases = [("a diamond", _diamond()), ("a tensor used at two depths", _uneven())]
    cases += [(f"random graph {k}", s) for k, s in enumerate(_graphs(seed=304, count=3, shape=(2,),
                                                                         constants=0))]
    for name, spec in cases:
        out = len(spec) - 1
        if not ref.requires(spec)[out]:
            continue
        seed = np.ones(ref.graph_forward(spec)[out].shape)
        leaves = [i for i, n in enumerate(spec) if n[0] == "leaf" and n[2]]
        weights = [(i, rng.standard_normal(np.shape(spec[i][1]))) for i in leaves]
        r = student.run(driver(SWEEP), "sweep", spec, out, seed, True, weights)
        _sweep_ok(spec, out, seed, True, r, f"{name}, create_graph=True", weights=weights)


# ================================================================================ the VJPs
def _vjp_cases_ok(student, fname, kind, cases, dependencies):
    """Each case: (params, arrays, requires, G).  Checks values against the closed form
    (itself checked by central differences), structure first; then that with recording on the
    result is built from Tensor ops that reach what it depends on."""
    for params, arrays, requires, G in cases:
        arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
        G = np.asarray(G, dtype=np.float64)
        want = ref.vjp(kind, params, arrays, G)
        numeric = ref.numerical_vjp(lambda xs: ref.forward(kind, params, xs), arrays, G)
        if kind == "ReLU":                    # no derivative at the kink: 0 by convention
            numeric = [np.where(arrays[0] == 0, w, n) for w, n in zip(want, numeric)]
        assert all(_close_fd(w, n) for w, n in zip(want, numeric)), f"reference {kind} disagrees"
        shapes = " and ".join(str(a.shape) for a in arrays)
        what = f"{kind} of input(s) of shape {shapes}" + (f" with {params}" if params else "")
        for record in (False, True):
            req = requires if not record else [True] * len(arrays)
            r = student.run(driver(VJP, fname), "vjp", kind, params, arrays,
                            [list(a.shape) for a in arrays], req, G, record)
            if "items" not in r:
                fail(f"{fname} should return a tuple with one gradient per input of the op; it "
                     f"returned a {r['type']} ({what}).")
            items = r["items"]
            if len(items) != len(arrays):
                fail(f"{fname} returned {len(items)} gradient(s) for an op with {len(arrays)} "
                     f"input(s) ({what}).")
            for k, (d, w) in enumerate(zip(items, want)):
                name = f"the gradient of input {k}" if len(arrays) > 1 else "the gradient"
                if d is None:
                    if not req[k]:
                        continue
                    fail(f"{fname}: {name} is None but that input requires grad ({what}).")
                if d.get("type") != "Tensor":
                    fail(f"{fname}: {name} is a {d.get('type')}, expected a dlkit Tensor ({what}); "
                         f"build gradients with Tensor operations.")
                if tuple(d["shape"]) != w.shape:
                    fail(f"{fname}: {name} has shape {tuple(d['shape'])}, expected {w.shape} "
                         f"(the shape of that input) ({what}).")
                if d["dtype"] != "float64":
                    fail(f"{fname}: {name} has dtype {d['dtype']}; the inputs are float64 "
                         f"({what}).")
                got = expect_array(_arr(d), shape=w.shape, name=f"{name} ({what})")
                if not _close(got, w):
                    fail(f"{fname}: {name} is wrong ({what}).", got=got, expected=w)
                if record:
                    missing = [x for x in dependencies[k] if x not in d["reaches"]]
                    if missing:
                        names = ["out_grad" if x == len(arrays) else f"input {x}" for x in missing]
                        fail(f"{fname}: {name} is correct but not built from Tensor operations on "
                             f"{' and '.join(names)} ({what}): with create_graph=True it must be "
                             f"differentiable again (no .numpy(), .detach() or new tensors made "
                             f"from values).")
            if any(not _same(a, b) for a, b in zip(r["inputs_after"], arrays)) \
                    or not _same(r["g_after"], G):
                fail(f"{fname} modified its inputs or out_grad in place ({what}).")
            if not _same(r["node_after"], r["node_before"]):
                fail(f"{fname} modified the op's output (node) in place ({what}).")
    # float32 (dlkit's default dtype, what models train in): gradients stay float32
    params, arrays, requires, G = cases[0]
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    G = np.asarray(G, dtype=np.float64)
    want = ref.vjp(kind, params, [a.astype(np.float32).astype(np.float64) for a in arrays],
                   G.astype(np.float32).astype(np.float64))
    r = student.run(driver(VJP, fname), "vjp", kind, params, arrays,
                    [list(a.shape) for a in arrays], requires, G, False, "float32")
    for k, (d, w) in enumerate(zip(r.get("items") or [], want)):
        if d is None and not requires[k]:
            continue
        if d is None or d.get("type") != "Tensor" or d["dtype"] != "float32":
            got = None if d is None else d.get("dtype", d.get("type"))
            fail(f"{fname}: for float32 inputs (dlkit's default) the gradient of input {k} is "
                 f"{got}, expected a float32 Tensor: build constants in the inputs' dtype.")
        if not np.allclose(_arr(d), w, rtol=1e-3, atol=1e-4):
            fail(f"{fname}: wrong for float32 inputs (gradient of input {k}).", got=_arr(d),
                 expected=w)
    if "items" not in r or len(r["items"]) != len(arrays):
        fail(f"{fname}: wrong result for float32 inputs.")


def _close_fd(w, n):
    return w.shape == n.shape and np.allclose(w, n, rtol=1e-5, atol=1e-6)


def _rng(seed):
    return np.random.default_rng(seed)


def _pairs(seed, pairs):
    rng = _rng(seed)
    out = []
    for sa, sb in pairs:
        a, b = rng.standard_normal(sa), rng.standard_normal(sb)
        G = rng.standard_normal(np.broadcast_shapes(sa, sb))
        out.append(([], [a, b], [True, True], G))
    return out


BROADCAST = [((3, 4), (3, 4)), ((3, 4), (4,)), ((5,), (2, 5)), ((2, 1, 3), (4, 1)),
             ((1,), (3,)), ((), (2, 3)), ((2, 3), (2, 1))]
G_ = 2          # index of out_grad among the reachable targets of a two-input op


@check("sum_to_shape", points=1)
def test_sum_to_shape_values(student):
    rng = _rng(401)
    for big, small in [((3, 4), (4,)), ((2, 3, 4), (3, 1)), ((4, 3), (1, 3)), ((2, 5), ()),
                       ((3, 4), (3, 4)), ((2, 3, 1, 4), (1, 1, 1, 4)), ((5, 1), (1,))]:
        G = rng.standard_normal(big)
        r = student.run(driver(TO_SHAPE, "sum_to_shape"), "to_shape", G, list(small), False)
        d = r["out"]
        if d is None or d.get("type") != "Tensor":
            fail(f"sum_to_shape should return a Tensor; it returned "
                 f"{None if d is None else d.get('type')} (grad {big}, shape {small}).")
        want = ref.unbroadcast(G, small)
        if tuple(d["shape"]) != tuple(small):
            fail(f"sum_to_shape(grad of shape {big}, {small}) has shape {tuple(d['shape'])}, "
                 f"expected {small}.")
        if not _close(_arr(d), want):
            fail(f"sum_to_shape(grad of shape {big}, {small}) has the right shape but wrong "
                 f"values.", got=_arr(d), expected=want)
        if not _same(r["g_after"], G):
            fail("sum_to_shape modified grad in place.")


@check("sum_to_shape", points=1)
def test_sum_to_shape_is_differentiable(student):
    G = _rng(402).standard_normal((2, 3, 4))
    for small in [(3, 1), (4,), (2, 3, 4)]:
        r = student.run(driver(TO_SHAPE, "sum_to_shape"), "to_shape", G, list(small), True)
        d = r["out"]
        if d is None or d.get("type") != "Tensor" or not _close(_arr(d), ref.unbroadcast(G, small)):
            fail(f"sum_to_shape is wrong with recording on (grad {G.shape}, shape {small}).")
        if 0 not in d["reaches"]:
            fail(f"sum_to_shape must build its result from Tensor operations on grad, so that "
                 f"create_graph=True can differentiate it (grad {G.shape}, shape {small}).")


@check("add_gradient", points=1)
def test_add_gradient(student):
    _vjp_cases_ok(student, "add_gradient", "Add", _pairs(411, BROADCAST), [[G_], [G_]])


@check("mul_gradient", points=1)
def test_mul_gradient(student):
    cases = _pairs(412, BROADCAST)
    a, b = _rng(413).standard_normal((3, 2)), _rng(414).standard_normal((3, 2))
    cases.append(([], [a, b], [True, False], _rng(415).standard_normal((3, 2))))
    _vjp_cases_ok(student, "mul_gradient", "Mul", cases, [[G_, 1], [G_, 0]])


@check("div_gradient", points=1)
def test_div_gradient(student):
    cases = []
    for params, (a, b), req, G in _pairs(416, BROADCAST):
        cases.append((params, [a, np.sign(b) * (0.5 + np.abs(b))], req, G))
    _vjp_cases_ok(student, "div_gradient", "Div", cases, [[G_, 1], [G_, 0, 1]])


def _unary(seed, shapes, positive=False, params=()):
    rng = _rng(seed)
    out = []
    for shape in shapes:
        a = rng.standard_normal(shape)
        if positive:
            a = 0.3 + np.abs(a)
        out.append((list(params), [a], [True], rng.standard_normal(shape)))
    return out


UNARY_SHAPES = [(4,), (3, 5), (2, 3, 2), ()]


@check("negate_gradient", points=1)
def test_negate_gradient(student):
    _vjp_cases_ok(student, "negate_gradient", "Negate", _unary(421, UNARY_SHAPES), [[1]])


@check("power_gradient", points=1)
def test_power_gradient(student):
    cases = []
    for k, p in enumerate([2, 3, 0.5, -1.5, 1]):
        cases += _unary(422 + k, [(3, 4), (5,)], positive=True, params=[p])
    deps = {0: [1, 0]}
    for case in cases:       # p = 1: the gradient is out_grad itself, it needs no input
        _vjp_cases_ok(student, "power_gradient", "PowerScalar", [case],
                      [[1] if case[0][0] == 1 else deps[0]])


@check("exp_gradient", points=1)
def test_exp_gradient(student):
    _vjp_cases_ok(student, "exp_gradient", "Exp", _unary(431, UNARY_SHAPES), [[1, 0]])


@check("log_gradient", points=1)
def test_log_gradient(student):
    _vjp_cases_ok(student, "log_gradient", "Log", _unary(432, UNARY_SHAPES, positive=True),
                  [[1, 0]])


@check("relu_gradient", points=1)
def test_relu_gradient(student):
    cases = _unary(433, [(4, 5), (2, 3, 2)])
    a = np.array([[-2.0, 0.0, 3.0], [0.5, -0.0, 0.0]])
    cases.append(([], [a], [True], np.array([[1.0, 2.0, -3.0], [4.0, 5.0, 6.0]])))
    for case in cases[:2]:
        case[1][0].flat[::4] = 0.0            # exact zeros: the derivative there is 0
    _vjp_cases_ok(student, "relu_gradient", "ReLU", cases, [[1]])


@check("matmul_gradient", points=1)
def test_matmul_gradient_matrices(student):
    rng = _rng(441)
    cases = []
    for m, n, p in [(3, 4, 5), (1, 3, 1), (4, 4, 4), (2, 1, 3)]:
        a, b = rng.standard_normal((m, n)), rng.standard_normal((n, p))
        cases.append(([], [a, b], [True, True], rng.standard_normal((m, p))))
    a, b = rng.standard_normal((5, 3)), rng.standard_normal((3, 2))
    cases.append(([], [a, b], [False, True], rng.standard_normal((5, 2))))
    _vjp_cases_ok(student, "matmul_gradient", "MatMul", cases, [[G_, 1], [G_, 0]])


@check("matmul_gradient", points=1)
def test_matmul_gradient_batched(student):
    rng = _rng(442)
    cases = []
    for sa, sb in [((2, 3, 4), (2, 4, 5)), ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 2)),
                   ((2, 1, 3, 4), (3, 4, 2)), ((1, 2, 3), (4, 3, 2))]:
        a, b = rng.standard_normal(sa), rng.standard_normal(sb)
        G = rng.standard_normal(np.matmul(a, b).shape)
        cases.append(([], [a, b], [True, True], G))
    _vjp_cases_ok(student, "matmul_gradient", "MatMul", cases, [[G_, 1], [G_, 0]])


@check("summation_gradient", points=1)
def test_summation_gradient(student):
    rng = _rng(451)
    cases = []
    for shape, axes, keep in [((3, 4), [1], False), ((3, 4), [0], True), ((2, 3, 4), [0, 2], False),
                              ((2, 3, 4), [1], True), ((3, 4), [0, 1], False), ((5,), [0], False),
                              ((2, 3, 4), [0, 1, 2], True)]:
        a = rng.standard_normal(shape)
        out = a.sum(axis=tuple(axes), keepdims=keep)
        cases.append(([axes, keep], [a], [True], rng.standard_normal(out.shape)))
    _vjp_cases_ok(student, "summation_gradient", "Summation", cases, [[1]])


@check("broadcast_to_gradient", points=1)
def test_broadcast_to_gradient(student):
    rng = _rng(452)
    cases = []
    for small, big in [((4,), (3, 4)), ((3, 1), (3, 5)), ((1, 4), (2, 3, 4)), ((), (2, 2)),
                       ((2, 1, 3), (4, 2, 5, 3))]:
        cases.append(([list(big)], [rng.standard_normal(small)], [True], rng.standard_normal(big)))
    _vjp_cases_ok(student, "broadcast_to_gradient", "BroadcastTo", cases, [[1]])


@check("reshape_gradient", points=1)
def test_reshape_gradient(student):
    rng = _rng(453)
    cases = []
    for old, new in [((3, 4), (4, 3)), ((2, 3, 4), (6, 4)), ((6,), (2, 3)), ((2, 2), (4,)),
                     ((1, 5), (5, 1))]:
        cases.append(([list(new)], [rng.standard_normal(old)], [True], rng.standard_normal(new)))
    _vjp_cases_ok(student, "reshape_gradient", "Reshape", cases, [[1]])


@check("transpose_gradient", points=1)
def test_transpose_gradient(student):
    rng = _rng(454)
    cases = []
    for shape, axes in [((3, 4), (1, 0)), ((2, 3, 4), (1, 2, 0)), ((2, 3, 4), (2, 0, 1)),
                        ((2, 3, 4, 5), (0, 3, 1, 2)), ((2, 3, 4), (0, 2, 1)),
                        ((2, 3, 4, 5), (1, 2, 3, 0))]:
        a = rng.standard_normal(shape)
        cases.append(([list(axes)], [a], [True], rng.standard_normal(a.transpose(axes).shape)))
    _vjp_cases_ok(student, "transpose_gradient", "Transpose", cases, [[1]])


@check("logsumexp_gradient", points=1)
def test_logsumexp_gradient(student):
    rng = _rng(461)
    cases = []
    for shape, axis, keep in [((4, 3), 1, False), ((4, 3), 0, False), ((3, 3), 1, True),
                              ((2, 3, 4), 1, False), ((5,), 0, False), ((2, 3, 4), 2, True)]:
        a = 2 * rng.standard_normal(shape)
        cases.append(([axis, keep], [a], [True], rng.standard_normal(ref.forward(
            "LogSumExp", [axis, keep], [a]).shape)))
    _vjp_cases_ok(student, "logsumexp_gradient", "LogSumExp", cases, [[1, 0]])


@check("logsumexp_gradient", points=1)
def test_logsumexp_gradient_large_inputs(student):
    rng = _rng(462)
    a = rng.standard_normal((3, 4)) + np.array([[800.0], [-800.0], [300.0]])
    cases = [([1, False], [a], [True], np.array([1.0, -2.0, 0.5])),
             ([0, True], [a.T.copy()], [True], rng.standard_normal((1, 3)))]
    _vjp_cases_ok(student, "logsumexp_gradient", "LogSumExp", cases, [[1, 0]])
