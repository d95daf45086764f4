"""Hidden checks for 05_normalization_regularization.

Points (as the notebook's test cells): Linear 2, BatchNorm1d 4, batchnorm_backward 3, LayerNorm1d 2,
Dropout 3.

The four Modules are dlkit's own pieces (``dlkit.nn.Linear`` ...): the student's classes run inside the
sandbox through trusted drivers that build them, check their structure first (a ``dlkit.nn.Module``;
``weight`` / ``bias`` are ``dlkit.nn.Parameter`` s found by ``parameters()``; buffers in
``state_dict``), feed them private copies of seeded inputs, run the backward pass through the engine
(``y.backward(dout)``: in the sandbox the engine is the 01 solution pack), and report plain data; the
trusted side compares with closed forms computed here.  Inputs must not be modified in place.
The drivers construct the student's class directly and never plug it, so a class that only forwards
to the kit (``class Dropout(dlkit.nn.Dropout)``, ``BatchNorm1d = dlkit.nn.BatchNorm1d``) fails: in the
student kit those stand-ins resolve to the plugged piece, and nothing is plugged while grading.

``batchnorm_backward(dout, x, gamma, eps=1e-5) -> (dx, dgamma, dbeta)`` is numpy-only (imports policy
``numpy``: no dlkit, hence no autodiff) and is compared with the exact gradient, itself verified against
central differences of the trusted forward.
"""
from __future__ import annotations

import numpy as np

from autograder.api import load_reference, check, diagnose, expect_array, fail


ref = load_reference(__file__)

_MODULE_TOOLS = r'''
def _param_names(module, named):
    """For each p in module.parameters(): the attribute name it is, or "other"."""
    names = []
    for p in module.parameters():
        hit = [n for n, v in named.items() if v is p]
        names.append(hit[0] if hit else "other")
    return names


def _student_class(name):
    """The student's class, or a reason it cannot be graded."""
    cls = globals().get(name)
    if not isinstance(cls, type):
        return None, "missing"
    for base in cls.__mro__:
        if vars(base).get("__dlkit_graded__") or vars(base).get("__dlkit_stub__"):
            return None, "library:" + base.__module__ + "." + base.__qualname__
    return cls, None


def _array(t):
    return t.numpy() if isinstance(t, dlkit.Tensor) else ("missing" if t is None else "type:" + type(t).__name__)


def _structure(module, attrs):
    out = {"is_module": isinstance(module, dlkit.nn.Module),
           "params": _param_names(module, {a: getattr(module, a, None) for a in attrs})}
    for a in attrs:
        v = getattr(module, a, None)
        out[a + "_is_param"] = isinstance(v, dlkit.nn.Parameter)
        out[a] = _array(v)
    return out


def _forward(module, x, dtype, grad=True):
    xt = dlkit.tensor(x, requires_grad=grad, dtype=dtype)
    y = module(xt)
    if not isinstance(y, dlkit.Tensor):
        return xt, None, "type:" + type(y).__module__ + "." + type(y).__qualname__
    return xt, y, y.numpy()


def _grad(t):
    if not isinstance(t, dlkit.Tensor):
        return "missing"
    return None if t.grad is None else t.grad.numpy()
'''

_LINEAR = _MODULE_TOOLS + r'''
def _linear(in_f, out_f, kwargs, generator, x, dout, initializer_scale):
    cls, why = _student_class("Linear")
    if cls is None:
        return {"missing": why}
    kwargs = dict(kwargs)
    calls = []
    if initializer_scale is not None:
        def initializer(fan_in, fan_out, generator=None):
            calls.append([fan_in, fan_out, generator is not None])
            return dlkit.tensor(initializer_scale * np.arange(fan_in * fan_out, dtype=np.float64).reshape(fan_in, fan_out)
                                - 1.0, dtype="float64")
        kwargs["initializer"] = initializer
    x_private, dout_private = x.copy(), dout.copy()
    layer = cls(in_f, out_f, generator=generator, **kwargs)
    out = _structure(layer, ["weight", "bias"])
    out["initializer_calls"] = calls
    dtype = kwargs.get("dtype", "float32")
    xt, y, out["y"] = _forward(layer, x, dtype)
    if y is not None:
        if y.requires_grad:   # else every .grad stays None and the check says why
            y.backward(dlkit.tensor(dout, dtype=y.dtype))
        out["dx"], out["dW"], out["db"] = _grad(xt), _grad(layer.weight), _grad(getattr(layer, "bias", None))
    as_given = dlkit.tensor(x_private, dtype=dtype).numpy()
    out["x_unchanged"] = bool(np.array_equal(xt.numpy(), as_given) and np.array_equal(x, x_private)
                              and np.array_equal(dout, dout_private))
    return out


_LOADS = lambda: Linear   # the harness loads the answer cells whose names the driver mentions
'''

_BATCHNORM = _MODULE_TOOLS + r'''
def _batchnorm(d, kwargs, batches, dout, x_eval):
    cls, why = _student_class("BatchNorm1d")
    if cls is None:
        return {"missing": why}
    privates = [b.copy() for b in batches]
    bn = cls(d, **kwargs)
    out = _structure(bn, ["weight", "bias"])
    out["training"] = bool(getattr(bn, "training", None))
    state = bn.state_dict()
    out["state_keys"] = sorted(state)
    out["state0"] = {k: v for k, v in state.items() if k in ("running_mean", "running_var")}
    dtype = kwargs.get("dtype", "float32")
    xt, y, out["y_train"] = _forward(bn, batches[0], dtype)
    if y is None:
        return out
    if y.requires_grad:   # else every .grad stays None and the check says why
        y.backward(dlkit.tensor(dout, dtype=y.dtype))
    out["dx"], out["dgamma"], out["dbeta"] = _grad(xt), _grad(bn.weight), _grad(bn.bias)
    out["x_unchanged"] = bool(np.array_equal(xt.numpy(), privates[0]))
    running = []
    for b in batches[1:]:
        bt, _, _ = _forward(bn, b, dtype, grad=False)
        running.append({k: v for k, v in bn.state_dict().items() if k in ("running_mean", "running_var")})
    out["running"] = running
    holder = dlkit.nn.Sequential(bn)
    holder.eval()
    out["training_after_eval"] = bool(bn.training)
    _, _, out["y_eval"] = _forward(bn, x_eval, dtype, grad=False)
    _, _, out["y_eval_again"] = _forward(bn, x_eval[:1], dtype, grad=False)
    out["running_after_eval"] = {k: v for k, v in bn.state_dict().items() if k in ("running_mean", "running_var")}
    holder.train()
    _, _, out["y_train_again"] = _forward(bn, batches[0], dtype, grad=False)
    out["inputs_unchanged"] = bool(all(np.array_equal(b, p) for b, p in zip(batches, privates)))
    return out


_LOADS = lambda: BatchNorm1d   # the harness loads the answer cells whose names the driver mentions
'''

_LAYERNORM = _MODULE_TOOLS + r'''
def _layernorm(d, kwargs, x, dout):
    cls, why = _student_class("LayerNorm1d")
    if cls is None:
        return {"missing": why}
    x_private = x.copy()
    ln = cls(d, **kwargs)
    out = _structure(ln, ["weight", "bias"])
    dtype = kwargs.get("dtype", "float32")
    xt, y, out["y"] = _forward(ln, x, dtype)
    if y is None:
        return out
    if y.requires_grad:   # else every .grad stays None and the check says why
        y.backward(dlkit.tensor(dout, dtype=y.dtype))
    out["dx"], out["dgamma"], out["dbeta"] = _grad(xt), _grad(ln.weight), _grad(ln.bias)
    ln.eval()
    _, _, out["y_eval"] = _forward(ln, x, dtype, grad=False)
    out["x_unchanged"] = bool(np.array_equal(xt.numpy(), x_private) and np.array_equal(x, x_private))
    return out


_LOADS = lambda: LayerNorm1d   # the harness loads the answer cells whose names the driver mentions
'''

_DROPOUT = _MODULE_TOOLS + r'''
def _dropout(p, generator, xs, modes, dout):
    cls, why = _student_class("Dropout")
    if cls is None:
        return {"missing": why}
    privates = [x.copy() for x in xs]
    drop = cls(p, generator=generator)
    out = {"is_module": isinstance(drop, dlkit.nn.Module), "params": len(drop.parameters()), "ys": []}
    for x, mode in zip(xs, modes):
        drop.train(mode == "train")
        xt, y, arr = _forward(drop, x, "float64")
        out["ys"].append(arr)
        if y is None:
            return out
    # the gradient of the last call (a training-mode call in every case the checks build)
    if y.requires_grad:   # else every .grad stays None and the check says why
        y.backward(dlkit.tensor(dout, dtype=y.dtype))
    out["dx"] = _grad(xt)
    out["inputs_unchanged"] = bool(all(np.array_equal(x, q) for x, q in zip(xs, privates)))
    out["probe"] = float(generator.random())
    return out


_LOADS = lambda: Dropout   # the harness loads the answer cells whose names the driver mentions
'''

_BN_BACKWARD = r'''
def _numpy_only(fn, allowed):
    """fn run under imports policy `numpy` (np, math; no dlkit), as the sandbox runs numpy-policy cells."""
    import builtins, types
    def _import(name, *args, **kwargs):
        if name.split(".")[0] not in allowed:
            raise ImportError(f"{fn.__name__} may import only {', '.join(allowed)} (imports policy `numpy`, "
                              f"see notebooks/GRADED.md); it imported {name}")
        return builtins.__import__(name, *args, **kwargs)
    env = {k: v for k, v in fn.__globals__.items() if k != "dlkit"}
    env["__builtins__"] = dict(vars(builtins), __import__=_import)
    return types.FunctionType(fn.__code__, env, fn.__name__, fn.__defaults__, fn.__closure__)


def _bn_backward(dout, x, gamma, eps, allowed):
    privates = (dout.copy(), x.copy(), gamma.copy())
    fn = globals().get("batchnorm_backward")
    if not isinstance(fn, types_function()):
        return ["bad", "missing function", True]
    fn = _numpy_only(fn, allowed)
    result = fn(dout, x, gamma) if eps is None else fn(dout, x, gamma, eps=eps)
    unchanged = all(np.array_equal(a, b) for a, b in zip((dout, x, gamma), privates))
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        return ["bad", type(result).__name__, unchanged]
    return ["ok", list(result), unchanged]


def types_function():
    import types
    return types.FunctionType


_LOADS = lambda: batchnorm_backward   # the harness loads the answer cells whose names the driver mentions
'''

_NUMPY_POLICY = tuple(__import__("dlkit.student", fromlist=["POLICIES"]).POLICIES["numpy"])


def _run_module(student, driver, entry, *args):
    out = student.run(driver, entry, *args)
    if not isinstance(out, dict):
        fail("the trusted driver got no result from your class.")
    if out.get("missing"):
        name = {"_linear": "Linear", "_batchnorm": "BatchNorm1d", "_layernorm": "LayerNorm1d", "_dropout": "Dropout"}[entry]
        why = str(out["missing"])
        if why.startswith("library:"):
            fail(f"{name} is (or derives from) {why[8:]}, the library's own piece, which in the student kit only "
                 f"forwards to your {name}: write the class yourself, deriving from dlkit.nn.Module.")
        fail(f"{name} is not defined as a class: run its answer cell (keep the name {name}).")
    return out


def _expect_structure(out, who, shapes, values=None):
    """Module, Parameters found by parameters() in order, shapes and initial values."""
    if not out.get("is_module"):
        fail(f"{who} must be a dlkit.nn.Module (class ...(dlkit.nn.Module)) so that train()/eval(), "
             "parameters() and state_dict() work.")
    names = list(shapes)
    for name, shape in shapes.items():
        v = out.get(name)
        if shape is None:
            if isinstance(v, np.ndarray):
                fail(f"{who}: with bias=False, self.bias must be None.")
            continue
        if not isinstance(v, np.ndarray):
            fail(f"{who}: self.{name} must be a dlkit.nn.Parameter; found {v}.")
        if not out.get(name + "_is_param"):
            fail(f"{who}: self.{name} is a Tensor but not a dlkit.nn.Parameter, so parameters() and the "
                 "optimizers do not see it.")
        expect_array(v, shape=shape, dtype_kind="f", name=f"{who}.{name}")
        if values is not None and name in values and not np.allclose(v, values[name], rtol=1e-6, atol=1e-7):
            fail(f"{who}: self.{name} starts wrong.", got=v, expected=values[name])
    want = [n for n in names if shapes[n] is not None]
    if out.get("params") != want:
        fail(f"{who}: parameters() should return exactly {', '.join('self.' + n for n in want)} (in that order); "
             f"it returned {out.get('params')} ('other' = something that is not one of them).")


def _expect_close(got, want, what, rtol, atol, hint=None):
    got = expect_array(got, shape=want.shape, dtype_kind="f", name=what)
    if not np.allclose(got, want, rtol=rtol, atol=atol):
        fail(f"{what} is wrong.", got=got, expected=want, hint=hint)
    return got


def _expect_grad(got, want, what, rtol=1e-6, atol=1e-8, hint=None):
    if got is None:
        fail(f"{what} is None after y.backward(dout): build the output from Tensor operations on the input "
             "and the Parameters (no .numpy() round trip), so the engine can differentiate it.")
    if isinstance(got, str):
        fail(f"{what}: {got}.")
    return _expect_close(got, want, what, rtol, atol, hint)


# -- Linear --------------------------------------------------------------------------------------

def _linear_case(seed, m, n_in, n_out):
    g = np.random.default_rng(seed)
    return g.standard_normal((m, n_in)), g.standard_normal((m, n_out))


@check("Linear", points=1)
def test_linear_init_and_structure(student):
    for n_in, n_out, seed in [(5, 3, 0), (1, 4, 1), (8, 8, 2)]:
        x, dout = _linear_case(seed + 10, 4, n_in, n_out)
        out = _run_module(student, _LINEAR, "_linear", n_in, n_out, {}, np.random.default_rng(seed), x, dout, None)
        W, b = ref.linear_init(n_in, n_out, seed)
        who = f"Linear({n_in}, {n_out}, generator=np.random.default_rng({seed}))"
        _expect_structure(out, who, {"weight": (n_in, n_out), "bias": (n_out,)})
        if out["weight"].dtype != np.float32:
            fail(f"{who}.weight has dtype {out['weight'].dtype}; dlkit's default dtype is float32.")
        for name, want in (("weight", W), ("bias", b)):
            if not np.allclose(out[name], want, rtol=1e-6, atol=1e-7):
                hint = None
                g = np.random.default_rng(seed)
                first_bias = 1 / np.sqrt(n_in) * (2 * g.random(n_out) - 1)
                if name == "weight" and np.allclose(out["bias"], first_bias, rtol=1e-6, atol=1e-7):
                    hint = "the bias was drawn before the weights: draw the weights first, then the bias"
                fail(f"{who}.{name} does not match the documented initialization: weight, then bias, each "
                     "bound * (2 * generator.random(shape) - 1) with bound = 1 / sqrt(in_features).",
                     got=out[name], expected=want, hint=hint)
    x, dout = _linear_case(13, 3, 4, 2)
    out = _run_module(student, _LINEAR, "_linear", 4, 2, {"bias": False}, np.random.default_rng(3), x, dout, None)
    _expect_structure(out, "Linear(4, 2, bias=False)", {"weight": (4, 2), "bias": None})


@check("Linear", points=1)
def test_linear_forward_backward_and_initializer(student):
    for n_in, n_out, m, seed, kwargs in [(5, 3, 4, 20, {"dtype": "float64"}), (3, 6, 1, 21, {"dtype": "float64"}),
                                         (4, 2, 7, 22, {"dtype": "float64", "bias": False}), (6, 5, 3, 23, {})]:
        x, dout = _linear_case(seed + 10, m, n_in, n_out)
        out = _run_module(student, _LINEAR, "_linear", n_in, n_out, kwargs, np.random.default_rng(seed), x, dout, None)
        who = f"Linear({n_in}, {n_out}{''.join(f', {k}={v!r}' for k, v in kwargs.items())})"
        bias = kwargs.get("bias", True)
        W, b = out["weight"].astype(np.float64), (out["bias"].astype(np.float64) if bias else None)
        tol = (1e-10, 1e-12) if kwargs.get("dtype") == "float64" else (1e-5, 1e-6)
        if isinstance(out.get("y"), str):
            fail(f"{who}(x) returned a {out['y'][5:]}; forward must return a dlkit.Tensor.")
        want = x @ W + (b if bias else 0.0)
        _expect_close(out["y"], want, f"{who}(x) for x of shape {x.shape}", *tol,
                      hint=diagnose(out["y"], {"the bias was left out": lambda: x @ W}, rtol=tol[0], atol=tol[1])
                      if bias else None)
        _expect_grad(out["dx"], dout @ W.T, f"x.grad of {who}", *tol)
        _expect_grad(out["dW"], x.T @ dout, f"weight.grad of {who}", *tol)
        if bias:
            _expect_grad(out["db"], dout.sum(axis=0), f"bias.grad of {who}", *tol)
        if not out["x_unchanged"]:
            fail(f"{who} modified its input in place; a layer's forward must leave x unchanged.")
    x, dout = _linear_case(30, 2, 3, 4)
    out = _run_module(student, _LINEAR, "_linear", 3, 4, {"dtype": "float64"}, np.random.default_rng(4), x, dout, 0.5)
    want_W = 0.5 * np.arange(12, dtype=np.float64).reshape(3, 4) - 1.0
    if out["initializer_calls"] != [[3, 4, True]]:
        fail("Linear(3, 4, initializer=f, generator=g) should call f(3, 4, generator=g) once for the weight; "
             f"the calls were {out['initializer_calls']}.")
    _expect_close(out["weight"], want_W, "Linear(..., initializer=f).weight (what f returned)", 1e-12, 0)
    _expect_close(out["bias"], np.zeros(4), "Linear(..., initializer=f).bias (zeros when an initializer is given)", 0, 0)


# -- BatchNorm1d ---------------------------------------------------------------------------------

def _bn_batches(seed, m, d, steps=3, small_feature=True):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(steps):
        x = rng.standard_normal((m, d)) * np.linspace(0.5, 3.0, d) + np.linspace(-2.0, 2.0, d) + k
        if small_feature and d > 1:
            x[:, 0] = 1e-3 * rng.standard_normal(m) + 4.0   # variance ~1e-6 << eps: eps placement matters
        out.append(x)
    return out


def _bn_run(student, seed, m, d, kwargs, steps=3, small_feature=True):
    batches = _bn_batches(seed, m, d, steps, small_feature)
    dout = np.random.default_rng(seed + 100).standard_normal((m, d))
    x_eval = np.random.default_rng(seed + 200).standard_normal((5, d)) * 2.0 + 1.0
    kwargs = dict({"dtype": "float64"}, **kwargs)
    out = _run_module(student, _BATCHNORM, "_batchnorm", d, kwargs, batches, dout, x_eval)
    who = f"BatchNorm1d({d}{''.join(f', {k}={v!r}' for k, v in kwargs.items())})"
    _expect_structure(out, who, {"weight": (d,), "bias": (d,)}, {"weight": np.ones(d), "bias": np.zeros(d)})
    if not {"running_mean", "running_var"} <= set(out.get("state_keys", [])):
        fail(f"{who}: state_dict() must contain the buffers running_mean and running_var (register them with "
             f"self.register_buffer); it has {out.get('state_keys')}.")
    for k, v in (("running_mean", np.zeros(d)), ("running_var", np.ones(d))):
        _expect_close(out["state0"][k], v, f"{who}: the initial {k}", 0, 0)
    if not out["training"]:
        fail(f"{who}: a new module is in training mode (module.training is True).")
    if isinstance(out.get("y_train"), str):
        fail(f"{who}(x) returned a {out['y_train'][5:]}; forward must return a dlkit.Tensor.")
    return out, batches, dout, x_eval, who


def _bn_forward_hint(x, gamma, beta, e):
    return {
        "the unbiased variance (divide by m - 1); batch norm normalises with the biased one (divide by m)":
            lambda: ref.batchnorm_forward(x, gamma, beta, e, ddof=1),
        "eps outside the square root: use (x - mean) / sqrt(var + eps)":
            lambda: ref.batchnorm_forward(x, gamma, beta, e, eps_outside=True),
        "eps was left out": lambda: ref.batchnorm_forward(x, gamma, beta, e, use_eps=False),
        "normalised over the features of each row (axis=1); normalise each feature over the batch (axis=0)":
            lambda: ref.batchnorm_forward(x, gamma, beta, e, axis=1),
        "divided by the variance, not the standard deviation":
            lambda: ref.batchnorm_forward(x, gamma, beta, e, no_sqrt=True),
        "training mode used the running statistics instead of the batch's":
            lambda: ref.batchnorm_eval(x, gamma, beta, np.zeros(x.shape[1]), np.ones(x.shape[1]), e),
    }


@check("BatchNorm1d", points=1)
def test_batchnorm1d_structure_and_training_forward(student):
    for seed, m, d, kwargs, small in [(0, 8, 4, {}, False), (1, 6, 5, {}, True), (2, 2, 1, {}, False),
                                      (3, 3, 7, {"eps": 0.1}, True)]:
        out, batches, _, _, who = _bn_run(student, seed, m, d, kwargs, small_feature=small)
        x, e = batches[0], kwargs.get("eps", 1e-5)
        gamma, beta = np.ones(d), np.zeros(d)
        _expect_close(out["y_train"], ref.batchnorm_forward(x, gamma, beta, e),
                      f"{who}(x) in training mode, x of shape {x.shape}", 1e-7, 1e-9,
                      hint=diagnose(out["y_train"], _bn_forward_hint(x, gamma, beta, e), rtol=1e-7, atol=1e-9))
        if not out["x_unchanged"] or not out["inputs_unchanged"]:
            fail(f"{who} modified its input in place; forward must leave x unchanged.")


@check("BatchNorm1d", points=1)
def test_batchnorm1d_backward_through_the_batch_statistics(student):
    for seed, m, d, kwargs, small in [(10, 4, 3, {}, False), (11, 16, 5, {}, True), (12, 3, 8, {"eps": 1e-2}, True),
                                      (13, 2, 1, {}, False)]:
        out, batches, dout, _, who = _bn_run(student, seed, m, d, kwargs, small_feature=small)
        x, e = batches[0], kwargs.get("eps", 1e-5)
        want = ref.batchnorm_backward(dout, x, np.ones(d), e)
        variants = {
            "the gradient does not flow through the batch mean and variance (they were detached or "
            "computed outside the graph)": "no_mean_terms",
            "the gradient does not flow through the batch variance": "no_var_term",
            "the gradient does not flow through the batch mean": "no_mean_term",
        }
        for k, name in enumerate(("dx", "dgamma", "dbeta")):
            label = {"dx": "x.grad", "dgamma": "weight.grad", "dbeta": "bias.grad"}[name]
            _expect_grad(out[name], want[k], f"{label} after {who}(x).backward(dout), x of shape {x.shape}",
                         1e-6, 1e-8, hint=diagnose(out[name], {
                             d_: (lambda v=v: ref.batchnorm_backward(dout, x, np.ones(d), e, variant=v)[k])
                             for d_, v in variants.items()}) if name == "dx" else None)


@check("BatchNorm1d", points=1)
def test_batchnorm1d_running_statistics(student):
    for seed, m, d, kwargs in [(20, 8, 3, {}), (21, 5, 4, {"momentum": 0.3}),
                               (22, 6, 2, {"unbiased_running_var": False}), (23, 4, 3, {"momentum": 1.0})]:
        out, batches, _, _, who = _bn_run(student, seed, m, d, kwargs, steps=4)
        mom, unbiased = kwargs.get("momentum", 0.1), kwargs.get("unbiased_running_var", True)
        for k in range(1, len(batches)):
            mean, var = ref.running_statistics(batches[:k + 1], mom, unbiased)
            got = out["running"][k - 1]
            hints = {
                "the momentum convention is reversed: running = (1 - momentum) * running + momentum * batch":
                    ref.running_statistics(batches[:k + 1], 1 - mom, unbiased) if mom != 0.5 else None,
                ("the running variance must use the unbiased batch variance (divide by m - 1)" if unbiased else
                 "with unbiased_running_var=False the running variance uses the biased batch variance"):
                    ref.running_statistics(batches[:k + 1], mom, not unbiased),
            }
            for j, (key, want) in enumerate((("running_mean", mean), ("running_var", var))):
                g = expect_array(got.get(key), shape=(d,), dtype_kind="f", name=f"{who}.{key} after {k + 1} steps")
                if not np.allclose(g, want, rtol=1e-7, atol=1e-9):
                    hint = None
                    for desc, cand in hints.items():
                        if cand is not None and np.allclose(g, cand[j], rtol=1e-7, atol=1e-9):
                            hint = desc
                            break
                    fail(f"{who}.{key} after {k + 1} training steps is wrong "
                         f"(running = (1 - momentum) * running + momentum * batch statistic).",
                         got=g, expected=want, hint=hint)
        for key in ("running_mean", "running_var"):
            if not np.allclose(out["running_after_eval"][key], out["running"][-1][key], rtol=0, atol=0):
                fail(f"{who}: {key} changed in eval mode; only training-mode forwards update the running statistics.")


@check("BatchNorm1d", points=1)
def test_batchnorm1d_eval_mode(student):
    for seed, m, d, kwargs in [(30, 8, 3, {}), (31, 5, 4, {"momentum": 0.3, "eps": 0.01})]:
        out, batches, _, x_eval, who = _bn_run(student, seed, m, d, kwargs, steps=3)
        if out["training_after_eval"]:
            fail(f"{who}: after Sequential(bn).eval(), bn.training must be False (use the Module base class).")
        mean, var = ref.running_statistics(batches, kwargs.get("momentum", 0.1))
        e = kwargs.get("eps", 1e-5)
        want = ref.batchnorm_eval(x_eval, np.ones(d), np.zeros(d), mean, var, e)
        _expect_close(out["y_eval"], want, f"{who}(x) in eval mode (uses the running statistics)", 1e-7, 1e-9,
                      hint=diagnose(out["y_eval"], {
                          "eval mode used the batch statistics; it must use running_mean and running_var":
                              lambda: ref.batchnorm_forward(x_eval, np.ones(d), np.zeros(d), e),
                      }, rtol=1e-7, atol=1e-9))
        _expect_close(out["y_eval_again"], want[:1], f"{who}(x) in eval mode on a batch of ONE row", 1e-7, 1e-9)
        _expect_close(out["y_train_again"], ref.batchnorm_forward(batches[0], np.ones(d), np.zeros(d), e),
                      f"{who}(x) after .train() again (batch statistics)", 1e-7, 1e-9)


# -- batchnorm_backward (numpy only) -------------------------------------------------------------

def _check_bn_backward(student, seed, m, d, eps, case, small_feature=True):
    x = _bn_batches(seed, m, d, 1, small_feature)[0]
    gamma = np.linspace(0.5, 2.0, d)
    dout = np.random.default_rng(seed + 100).standard_normal((m, d))
    status, grads, unchanged = student.run(_BN_BACKWARD, "_bn_backward", dout, x, gamma, eps, list(_NUMPY_POLICY))
    if status != "ok":
        fail(f"batchnorm_backward should be a function returning a tuple (dx, dgamma, dbeta); got a {grads}.")
    if not unchanged:
        fail(f"batchnorm_backward modified dout, x or gamma in place for {case}; it must not change its inputs.")
    e = 1e-5 if eps is None else eps
    want = ref.batchnorm_backward(dout, x, gamma, e)
    if m * d <= 24:   # the trusted reference agrees with finite differences of the trusted forward
        num = ref.numerical_batchnorm_grads(dout, x, gamma, np.zeros(d), e)
        assert all(np.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(want, num)), "reference vs finite differences"
    variants = {
        "the mean terms are missing (mu and var were treated as constants)": "no_mean_terms",
        "the variance term (through var) is missing": "no_var_term",
        "the term through the mean (- mean of dxhat) is missing": "no_mean_term",
        "dgamma should be sum(dout * xhat), not sum(dout)": "dgamma_no_xhat",
        "dbeta should be the SUM of dout over the batch, not the mean": "dbeta_mean",
        "gamma is missing from dx (dxhat = dout * gamma)": "no_gamma",
        "m - 1 in the variance term; the biased variance divides by m": "unbiased_var_term",
    }
    for k, (name, shape) in enumerate([("dx", (m, d)), ("dgamma", (d,)), ("dbeta", (d,))]):
        g = expect_array(grads[k], shape=shape, dtype_kind="f", name=f"{name} for {case}")
        if not np.allclose(g, want[k], rtol=1e-6, atol=1e-8):
            fail(f"{name} is wrong for {case} (compared with the exact gradient of sum(dout * out), "
                 "which matches finite differences).", got=g, expected=want[k],
                 hint=diagnose(g, {desc: (lambda v=v, k=k: ref.batchnorm_backward(dout, x, gamma, e, variant=v)[k])
                                   for desc, v in variants.items()}, rtol=1e-6, atol=1e-8))


@check("batchnorm_backward", points=1)
def test_batchnorm_backward_small(student):
    _check_bn_backward(student, 40, 4, 3, None, "x (4, 3), default eps", small_feature=False)


@check("batchnorm_backward", points=1)
def test_batchnorm_backward_larger_batch(student):
    _check_bn_backward(student, 41, 16, 5, None, "x (16, 5) with a feature of variance ~1e-6")
    _check_bn_backward(student, 42, 3, 8, 1e-2, "x (3, 8), eps = 1e-2")


@check("batchnorm_backward", points=1)
def test_batchnorm_backward_edge_cases(student):
    _check_bn_backward(student, 43, 2, 1, None, "x (2, 1): m = 2, one feature", small_feature=False)
    _check_bn_backward(student, 44, 6, 6, 0.5, "x (6, 6), eps = 0.5")


# -- LayerNorm1d ---------------------------------------------------------------------------------

def _ln_run(student, seed, shape, kwargs):
    rng = np.random.default_rng(seed)
    d = shape[-1]
    x = rng.standard_normal(shape) * np.linspace(0.5, 3.0, d) + np.linspace(-1.0, 2.0, d)
    dout = rng.standard_normal(shape)
    kwargs = dict({"dtype": "float64"}, **kwargs)
    out = _run_module(student, _LAYERNORM, "_layernorm", d, kwargs, x, dout)
    who = f"LayerNorm1d({d}{''.join(f', {k}={v!r}' for k, v in kwargs.items())})"
    _expect_structure(out, who, {"weight": (d,), "bias": (d,)}, {"weight": np.ones(d), "bias": np.zeros(d)})
    if isinstance(out.get("y"), str):
        fail(f"{who}(x) returned a {out['y'][5:]}; forward must return a dlkit.Tensor.")
    return out, x, dout, who


@check("LayerNorm1d", points=1)
def test_layernorm1d_forward(student):
    for seed, shape, kwargs in [(50, (4, 5), {}), (51, (1, 3), {}), (52, (2, 3, 4), {"eps": 0.1}), (53, (6, 2), {})]:
        out, x, _, who = _ln_run(student, seed, shape, kwargs)
        d, e = shape[-1], kwargs.get("eps", 1e-5)
        want = ref.layernorm_forward(x, np.ones(d), np.zeros(d), e)
        _expect_close(out["y"], want, f"{who}(x) for x of shape {shape}", 1e-7, 1e-9, hint=diagnose(out["y"], {
            "normalised each feature over the batch (axis 0, batch norm); layer norm normalises each row "
            "over its features (the last axis)": lambda: ref.layernorm_forward(x, np.ones(d), np.zeros(d), e, axis=0),
            "the unbiased variance (divide by d - 1); layer norm uses the biased one":
                lambda: ref.layernorm_forward(x, np.ones(d), np.zeros(d), e, ddof=1),
        }, rtol=1e-7, atol=1e-9))
        _expect_close(out["y_eval"], want, f"{who}(x) in eval mode (the same as in training)", 1e-7, 1e-9)
        if not out["x_unchanged"]:
            fail(f"{who} modified its input in place; forward must leave x unchanged.")


@check("LayerNorm1d", points=1)
def test_layernorm1d_backward(student):
    for seed, shape, kwargs in [(60, (4, 5), {}), (61, (3, 2, 4), {}), (62, (5, 3), {"eps": 0.5})]:
        out, x, dout, who = _ln_run(student, seed, shape, kwargs)
        d, e = shape[-1], kwargs.get("eps", 1e-5)
        want = ref.layernorm_backward(dout, x, np.ones(d), e)
        for k, name in enumerate(("dx", "dgamma", "dbeta")):
            label = {"dx": "x.grad", "dgamma": "weight.grad", "dbeta": "bias.grad"}[name]
            _expect_grad(out[name], want[k], f"{label} after {who}(x).backward(dout), x of shape {shape}")


# -- Dropout -------------------------------------------------------------------------------------

def _dropout_run(student, p, seed, shapes, modes):
    rng = np.random.default_rng(seed + 1000)
    xs = [rng.standard_normal(s) + 0.5 for s in shapes]
    dout = rng.standard_normal(shapes[-1])
    out = _run_module(student, _DROPOUT, "_dropout", p, np.random.default_rng(seed), xs, modes, dout)
    who = f"Dropout({p}, generator=np.random.default_rng({seed}))"
    if not out.get("is_module"):
        fail(f"{who} must be a dlkit.nn.Module (class Dropout(dlkit.nn.Module)) so that train()/eval() work.")
    if out.get("params") != 0:
        fail(f"{who} has no parameters; parameters() returned {out.get('params')} of them.")
    for y in out["ys"]:
        if isinstance(y, str):
            fail(f"{who}(x) returned a {y[5:]}; forward must return a dlkit.Tensor.")
    # the expected outputs: one draw generator.random(x.shape) per training-mode call with p > 0
    g = np.random.default_rng(seed)
    want = []
    for x, mode in zip(xs, modes):
        if mode == "train" and p > 0:
            want.append(x * (g.random(x.shape) >= p) / (1 - p))
        else:
            want.append(x)
    return out, xs, dout, want, who, g


@check("Dropout", points=1)
def test_dropout_masks_follow_the_draw_order(student):
    for p, seed, shapes in [(0.3, 0, [(4, 5), (4, 5), (2, 3)]), (0.5, 1, [(2, 3, 4)]), (0.8, 2, [(7,), (7,)])]:
        out, xs, _, want, who, _ = _dropout_run(student, p, seed, shapes, ["train"] * len(shapes))
        for k, (x, y, w) in enumerate(zip(xs, out["ys"], want)):
            r = np.random.default_rng(seed)
            for _ in range(k):
                r.random(xs[_].shape)
            r = r.random(x.shape)
            hint = diagnose(y, {
                "keep and drop are swapped: p is the DROP probability, keep where generator.random(x.shape) >= p":
                    x * (r < p) / (1 - p),
                "no rescaling: inverted dropout divides the kept units by 1 - p": x * (r >= p),
                "scaled by 1 / p instead of 1 / (1 - p) (p is the drop probability)": x * (r >= p) / p,
                "the right keep rate but not the documented draw: keep where generator.random(x.shape) >= p":
                    x * (r < 1 - p) / (1 - p),
                "the generator was re-seeded or copied: each call must continue the same generator":
                    x * (np.random.default_rng(seed).random(x.shape) >= p) / (1 - p) if k else None,
            }, rtol=1e-12, atol=1e-12)
            _expect_close(y, w, f"call {k + 1} of {who} in training mode on x of shape {x.shape} "
                                f"(mask = generator.random(x.shape) >= p, kept units / (1 - p))", 1e-12, 1e-12,
                          hint=hint)
        if not out["inputs_unchanged"]:
            fail(f"{who} modified its input in place; forward must leave x unchanged.")


@check("Dropout", points=1)
def test_dropout_eval_mode_and_p_zero(student):
    for p, seed, modes in [(0.4, 3, ["eval", "train"]), (0.6, 4, ["train", "eval", "eval", "train"])]:
        shapes = [(3, 4)] * len(modes)
        out, xs, _, want, who, g = _dropout_run(student, p, seed, shapes, modes)
        for k, (x, y, w, mode) in enumerate(zip(xs, out["ys"], want, modes)):
            what = (f"call {k + 1} of {who} in {mode} mode" +
                    (" (eval mode is the identity and draws nothing)" if mode == "eval" else
                     " (after eval-mode calls, which must not draw from the generator)"))
            _expect_close(y, w, what, 1e-12, 1e-12, hint=diagnose(y, {
                "eval mode scaled x by (1 - p); with inverted dropout eval mode returns x unchanged": x * (1 - p),
            }, rtol=1e-12, atol=1e-12) if mode == "eval" else None)
    out, xs, _, want, who, _ = _dropout_run(student, 0.0, 5, [(4, 3)], ["train"])
    _expect_close(out["ys"][0], xs[0], f"{who}(x): p = 0 drops nothing", 1e-12, 1e-12)


@check("Dropout", points=1)
def test_dropout_backward_and_expectation(student):
    for p, seed, shape in [(0.25, 6, (5, 6)), (0.75, 7, (2, 3, 4))]:
        out, xs, dout, want, who, _ = _dropout_run(student, p, seed, [shape], ["train"])
        mask = np.random.default_rng(seed).random(shape) >= p
        _expect_grad(out["dx"], dout * mask / (1 - p), f"x.grad after {who}(x).backward(dout)", 1e-12, 1e-12,
                     hint=diagnose(out["dx"], {"the gradient was not scaled by 1 / (1 - p)": dout * mask},
                                   rtol=1e-12, atol=1e-12) if isinstance(out["dx"], np.ndarray) else None)
    for p, seed in [(0.2, 8), (0.6, 9)]:
        out, xs, _, want, who, _ = _dropout_run(student, p, seed, [(200, 250)], ["train"])
        y = expect_array(out["ys"][0], shape=(200, 250), dtype_kind="f", name=f"{who}(x) on x (200, 250)")
        keep = float(np.mean(y != 0))
        if abs(keep - (1 - p)) > 0.01:
            fail(f"with p = {p} (the DROP probability) about {1 - p:.0%} of the units should be kept; "
                 f"your Dropout keeps {keep:.1%}.")
        _expect_close(y, want[0], f"{who}(x) on x (200, 250)", 1e-12, 1e-12)
