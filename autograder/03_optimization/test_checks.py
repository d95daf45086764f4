"""Hidden checks for 03_optimization.

RNG-free and exact: linspace inputs, multi-step trajectories (so an optimizer without state, or
with the wrong state, is caught), gradients whose size and sign change from step to step (so
EMA factors such as Adam's β₂ = 0.999 vs 0.99 are told apart), a parameter with tiny gradients
(so eps and where it goes matter), and parameters whose ``grad`` is None on some steps (skipped,
as in PyTorch).  The optimizers are the student's ``dlkit.optim.Optimizer`` subclasses, run in the
sandbox by a trusted driver that keeps its own copies of everything it hands over: the optimizer
gets a fresh list of the parameters, the driver keeps the original list and the gradients it set.
Only plain data comes back; its structure (lengths, types, shapes) is checked before any value
is compared with the trajectory simulated here (reference.py).

Points (as the notebook's test cells): gradient_descent 2, newton_step 2, SGD 4, Momentum 3,
Nesterov 2, Adagrad 2, RMSprop 3, Adam 4, AdamW 2.
"""
from __future__ import annotations

import numpy as np

from autograder.api import check, diagnose, expect_array, fail, load_reference

ref = load_reference(__file__)

RTOL, ATOL = 1e-6, 1e-9


def _hint(got, want, variants, rtol=RTOL, atol=ATOL):
    """The first known mistake ``got`` matches, never one equal to the right answer on this case."""
    def differs(make):
        try:
            value = np.asarray(make() if callable(make) else make)
        except Exception:  # noqa: BLE001 - a variant that cannot be built is no hint
            return False
        return value.shape != np.shape(want) or not np.allclose(value, want, rtol=rtol, atol=atol)

    return diagnose(got, {k: v for k, v in variants.items() if differs(v)}, rtol=rtol, atol=atol)


# A 3-d quadratic with a non-diagonal, well-conditioned P (hand-checkable: integer entries).
P3 = np.array([[4.0, 1.0, 0.0], [1.0, 3.0, -1.0], [0.0, -1.0, 2.0]])
q3 = np.array([1.0, -2.0, 0.5])
P2 = np.array([[2.0, 0.5], [0.5, 1.0]])
q2 = np.array([-1.0, 1.0])

# Runs a numpy function on copies it keeps, so that changes to the inputs are seen.
_CALL_DRIVER = '''
def _call_checked(args, kwargs):
    import numpy as _np
    kept = [_np.array(a, copy=True) for a in args]
    result = {name}(*args, **kwargs)
    changed = [i for i, (a, k) in enumerate(zip(args, kept)) if not _np.array_equal(a, k)]
    return {{"result": result, "changed": changed}}
'''


def _call(student, name, args, kwargs, arg_names):
    got = student.run(_CALL_DRIVER.format(name=name), "_call_checked", list(args), dict(kwargs))
    if type(got) is not dict or set(got) != {"result", "changed"}:
        fail(f"internal: unexpected reply from the driver of {name}")
    changed = got["changed"]
    if type(changed) is not list or changed:
        which = ", ".join(arg_names[i] for i in changed if type(i) is int and 0 <= i < len(arg_names))
        fail(f"{name} changed its input(s) {which or changed!r} in place; the contract says answers have no "
             "side effects (work on a copy, e.g. theta = np.array(theta0, dtype=float)).")
    return got["result"]


# -- gradient_descent ----------------------------------------------------------------------------

def _check_gd(student, P, q, theta0, lr, steps, case):
    got = _call(student, "gradient_descent", (P, q, theta0, lr, steps), {}, ["P", "q", "theta0"])
    want = ref.gradient_descent(P, q, theta0, lr, steps)
    variants = {
        "row 0 (theta0) is missing: return steps + 1 rows starting with theta0": lambda: want[1:],
        "one step too many (steps + 2 rows)": lambda: ref.gradient_descent(P, q, theta0, lr, steps + 1),
        "the sign is flipped (theta + lr * gradient climbs the function)":
            lambda: ref.gradient_descent(P, q, theta0, lr, steps, sign=+1.0),
        "q is missing from the gradient (the gradient of 1/2 θᵀPθ + qᵀθ is Pθ + q)":
            lambda: ref.gradient_descent(P, q, theta0, lr, steps, use_q=False),
        "the 1/2 was kept in the gradient (the gradient is Pθ + q, not ½Pθ + q)":
            lambda: ref.gradient_descent(P, q, theta0, lr, steps, half=True),
        "every row is the final theta: rows alias one array updated in place (append a copy)":
            lambda: np.repeat(want[-1:], steps + 1, axis=0),
    }
    if type(got) is np.ndarray and got.shape != want.shape:
        fail(f"gradient_descent for {case} should return shape {want.shape} (steps + 1 rows, row 0 = theta0); "
             f"got {got.shape}.", got=got, expected=want, hint=_hint(got, want, variants))
    got = expect_array(got, shape=want.shape, dtype_kind="f", name=f"the trajectory for {case}")
    if not np.allclose(got, want, rtol=RTOL, atol=ATOL):
        bad = int(np.argmax(~np.all(np.isclose(got, want, rtol=RTOL, atol=ATOL), axis=1)))
        fail(f"gradient_descent is wrong for {case}: the first wrong row is row {bad}.", got=got, expected=want,
             hint=_hint(got, want, variants))


@check("gradient_descent", points=1)
def test_gradient_descent_three_steps(student):
    _check_gd(student, P2, q2, np.array([1.0, -1.0]), 0.25, 3, "P (2, 2), lr 0.25, 3 steps")
    _check_gd(student, P3, q3, np.linspace(-1.0, 1.0, 3), 0.1, 5, "P (3, 3), lr 0.1, 5 steps")


@check("gradient_descent", points=1)
def test_gradient_descent_edge_cases(student):
    _check_gd(student, P3, q3, np.array([0.5, 0.0, -0.5]), 0.2, 0, "steps = 0 (only theta0)")
    _check_gd(student, np.array([[3.0]]), np.array([-1.5]), np.array([2.0]), 0.5, 4, "n = 1, 4 steps")
    _check_gd(student, np.diag(np.linspace(1.0, 4.0, 4)), np.linspace(-1.0, 1.0, 4), np.zeros(4), 0.3, 1,
              "diagonal P (4, 4), one step from 0")


# -- newton_step ---------------------------------------------------------------------------------

def _check_newton(student, P, q, theta, lr, case):
    kwargs = {} if lr is None else {"lr": lr}
    got = _call(student, "newton_step", (P, q, theta), kwargs, ["P", "q", "theta"])
    lr_ = 1.0 if lr is None else lr
    want = ref.newton_step(P, q, theta, lr_)
    got = expect_array(got, shape=theta.shape, dtype_kind="f", name=f"theta_next for {case}")
    if not np.allclose(got, want, rtol=1e-8, atol=1e-10):
        g = P @ theta + q
        fail(f"newton_step is wrong for {case}.", got=got, expected=want, hint=_hint(got, want, {
            "the sign is flipped (theta + lr P^-1 g)": lambda: theta + lr_ * np.linalg.solve(P, g),
            "q is missing from the gradient Pθ + q": lambda: theta - lr_ * np.linalg.solve(P, P @ theta),
            "multiplied by P instead of solving with P (P^-1 g, not P g)": lambda: theta - lr_ * (P @ g),
            "lr was ignored (a full Newton step)": lambda: theta - np.linalg.solve(P, g),
            "a plain gradient step (no Hessian)": lambda: theta - lr_ * g,
        }, rtol=1e-8, atol=1e-10))


@check("newton_step", points=1)
def test_newton_step_full_step_reaches_minimum(student):
    theta = np.linspace(-2.0, 2.0, 3)
    _check_newton(student, P3, q3, theta, None, "P (3, 3), default lr = 1 (lands on -P^-1 q)")
    _check_newton(student, P2, q2, np.array([3.0, -4.0]), 1.0, "P (2, 2), lr = 1")


@check("newton_step", points=1)
def test_newton_step_damped(student):
    _check_newton(student, P3, q3, np.array([1.0, 1.0, 1.0]), 0.5, "P (3, 3), lr = 0.5")
    _check_newton(student, P2, q2, np.array([0.25, 0.75]), 0.1, "P (2, 2), lr = 0.1")
    _check_newton(student, np.array([[5.0]]), np.array([2.0]), np.array([1.0]), 0.3, "n = 1, lr = 0.3")


# -- optimizers: the trusted driver ----------------------------------------------------------------

# The class is named in the driver's text (not looked up by a string) so that the harness sees
# which answer cell the driver needs.  The driver imports its own numpy / dlkit (the student's
# cells may rebind `np`), hands the optimizer a fresh list of the parameters and keeps its own,
# and records the gradients it set, to see whether step() changed them.
_DRIVER = '''
def _drive(kwargs, inits, curv, lin, scales, mask):
    import numpy as _np
    import dlkit as _dlkit
    cls = {cls_name}
    try:
        from dlkit._graded import is_graded as _is_graded
    except ImportError:
        _is_graded = None
    if _is_graded is not None and _is_graded(cls):
        return {{"error": "{cls_name} is dlkit.optim.{cls_name} itself, which in the student kit only forwards to "
                 "your {cls_name}: it resolves to itself. Write the class yourself: "
                 "class {cls_name}(dlkit.optim.Optimizer): ..."}}
    params = [_dlkit.tensor(_np.array(x, dtype=_np.float64), requires_grad=True, dtype="float64") for x in inits]
    opt = cls(list(params), **kwargs)
    if not isinstance(opt, _dlkit.optim.Optimizer):
        return {{"error": "{cls_name}(...) did not make a dlkit.optim.Optimizer (it made a "
                 + type(opt).__name__ + "); write class {cls_name}(dlkit.optim.Optimizer): ..."}}
    trajectory, touched = [], []
    for t in range(len(scales)):
        handed = []
        for i in range(len(params)):
            if mask[t][i]:
                g = _np.asarray(curv[i]) * params[i].numpy().astype(_np.float64) + scales[t] * _np.asarray(lin[i])
                params[i].grad = _dlkit.tensor(g, dtype="float64")
                handed.append(g)
            else:
                params[i].grad = None
                handed.append(None)
        opt.step()
        trajectory.append([_np.array(p.numpy(), dtype=_np.float64) for p in params])
        for i in range(len(params)):
            grad = params[i].grad
            if handed[i] is not None and grad is not None and not _np.array_equal(grad.numpy(), handed[i]):
                touched.append([t, i])
    try:
        state = []
        for i in range(len(params)):
            entry, out = opt.state[i], {{}}
            for key in list(entry)[:16]:
                if type(key) is str:
                    value = entry[key]
                    try:
                        value = _np.array(value.numpy() if hasattr(value, "numpy") else value, dtype=_np.float64)
                    except Exception:
                        out[key] = "a " + type(value).__name__
                        continue
                    out[key] = float(value) if value.ndim == 0 else value
            state.append(out)
    except Exception as exc:
        state = type(exc).__name__
    return {{"trajectory": trajectory, "touched": touched, "state": state}}
'''

# Parameters: a weight matrix, a bias, a parameter with tiny gradients (c = 0, |d| ~ 1e-7, so eps
# matters) and one with large, sign-changing gradients.
BASE = {
    "inits": [np.linspace(-1.0, 1.0, 6).reshape(2, 3), np.linspace(0.5, -0.5, 3), np.linspace(0.2, -0.1, 2),
              np.linspace(3.0, -2.0, 4)],
    "curv": [np.linspace(0.5, 2.0, 6).reshape(2, 3), np.linspace(1.0, 3.0, 3), np.zeros(2), np.linspace(0.1, 0.4, 4)],
    "lin": [np.linspace(-0.3, 0.2, 6).reshape(2, 3), np.linspace(0.1, -0.1, 3), np.array([2e-7, -5e-8]),
            np.linspace(4.0, -6.0, 4)],
}
SCALES = [1.0, -3.0, 0.5, 2.0, -0.25, 4.0, 1.0, -1.5, 0.1, 3.0, -2.0, 0.75]


def problem(steps=8, mask=None, n=4, scales=SCALES):
    """``steps`` steps of the first ``n`` parameters of BASE; ``mask`` (default all present)."""
    scales = [scales[k % len(scales)] * (1.0 + 0.01 * (k // len(scales))) for k in range(steps)]
    if mask is None:
        mask = [[True] * n for _ in range(steps)]
    return {"inits": BASE["inits"][:n], "curv": BASE["curv"][:n], "lin": BASE["lin"][:n],
            "scales": scales, "mask": mask}


def skipping_problem(steps=7):
    """Parameter 1 has no gradient on steps 2, 3 and 6; parameter 3 never has one."""
    mask = [[True, k not in (1, 2, 5), True, False] for k in range(steps)]
    return problem(steps, mask=mask)


def _describe_problem(prob):
    shapes = [tuple(np.shape(x)) for x in prob["inits"]]
    none = sorted({i for row in prob["mask"] for i, present in enumerate(row) if not present})
    text = f"{len(shapes)} parameters of shapes {shapes}, {len(prob['scales'])} steps"
    if none:
        text += f"; parameter(s) {none} have grad None on some steps (skip them, as PyTorch does)"
    return text


def _flat(trajectory):
    return np.concatenate([np.concatenate([np.ravel(p) for p in step]) for step in trajectory])


def _run(student, cls_name, kwargs, prob):
    """Run the student's optimizer; return ``(trajectory, state)`` after checking their structure."""
    args = "".join(f", {k}={v!r}" for k, v in kwargs.items())
    case = f"{cls_name}(params{args}) on {_describe_problem(prob)}"
    got = student.run(_DRIVER.replace("{cls_name}", cls_name).replace("{{", "{").replace("}}", "}"), "_drive",
                      dict(kwargs), [np.array(x) for x in prob["inits"]], [np.array(x) for x in prob["curv"]],
                      [np.array(x) for x in prob["lin"]], list(prob["scales"]), [list(r) for r in prob["mask"]])
    if type(got) is dict and type(got.get("error")) is str:
        fail(got["error"][:300])
    if type(got) is not dict or not {"trajectory", "touched", "state"} <= set(got):
        fail(f"{case}: the driver's reply was replaced or damaged (the optimizer must not change the code that runs it).")
    steps, n = len(prob["scales"]), len(prob["inits"])
    trajectory = got["trajectory"]
    if type(trajectory) is not list or len(trajectory) != steps:
        fail(f"{case}: expected {steps} steps to be recorded, got "
             f"{len(trajectory) if type(trajectory) is list else type(trajectory).__name__}.")
    for t, row in enumerate(trajectory, start=1):
        if type(row) is not list or len(row) != n:
            fail(f"{case}: after step {t} there should be {n} parameters.")
        for i, value in enumerate(row):
            expect_array(value, shape=np.shape(prob["inits"][i]), dtype_kind="f",
                         name=f"parameter {i} after step {t} of {case}")
    touched = got["touched"]
    if type(touched) is not list or touched:
        t, i = (touched[0] if type(touched) is list and type(touched[0]) is list and len(touched[0]) == 2
                else ("?", "?"))
        fail(f"{case}: step() changed the gradient of parameter {i} (step {t + 1 if type(t) is int else t}). "
             "An optimizer reads p.grad and leaves it as it is (compute g = p.grad + ... into a new tensor).")
    return case, trajectory, got["state"]


def _check_trajectory(student, cls_name, kwargs, update, variants, prob):
    case, got, state = _run(student, cls_name, kwargs, prob)
    want, want_states = ref.simulate(update, prob)
    for t, (got_t, want_t) in enumerate(zip(got, want), start=1):      # lengths checked by _run
        for i, (g, w) in enumerate(zip(got_t, want_t)):
            if not np.allclose(g, w, rtol=RTOL, atol=ATOL):
                hint = _hint(_flat(got), _flat(want),
                             {k: (lambda u=u: _flat(ref.simulate(u, prob)[0])) for k, u in variants.items()})
                if any(not prob["mask"][k][i] for k in range(t)):
                    later = (f" (parameter {i} had grad None on an earlier step: such a step skips it entirely, "
                             "and its own state and step count stay as they are)")
                elif t > 1:
                    later = " (step 1 is right, so look at the state kept between steps)"
                else:
                    later = ""
                fail(f"{case}: parameter {i} is wrong after step {t}{later}. The gradient of parameter i at "
                     f"step t is g = c_i * theta_i + s_t * d_i for fixed arrays c_i, d_i and a scale s_t "
                     f"that changes from step to step.", got=g, expected=w, hint=hint)
    return state, want_states


def _check_state(state, want_states, keys, cls_name, prob):
    """``opt.state[i]`` holds the library's keys with the right values; untouched where never updated."""
    described = ", ".join(f"'{k}'" for k in keys)
    if type(state) is not list or len(state) != len(prob["inits"]):
        fail(f"{cls_name}: self.state should stay a list with one dict per parameter (self.state[i] belongs "
             f"to self.params[i]); got {state if type(state) is str else type(state).__name__}.")
    for i, (got, want) in enumerate(zip(state, want_states)):
        if type(got) is not dict:
            fail(f"{cls_name}: self.state[{i}] should be a dict.")
        if not want:                   # never updated: empty, or created eagerly but untouched
            if got.get("step", 0) != 0:
                fail(f"{cls_name}: parameter {i} never had a gradient, but its state says step = {got.get('step')}; "
                     "a parameter whose grad is None is skipped entirely.")
            continue
        for key in keys:
            if key not in got:
                fail(f"{cls_name}: after several steps self.state[{i}] has keys {sorted(got)}; it should hold "
                     f"{described} (the library's state keys, as in PyTorch: see the task).")
            value, expected = got[key], want[key]
            if key == "step":
                if type(value) is not float or value != expected:
                    fail(f"{cls_name}: self.state[{i}]['step'] is {value!r}, expected {expected} (the number of "
                         "updates of this parameter: steps where its grad was None do not count).")
                continue
            if type(value) is str:
                fail(f"{cls_name}: self.state[{i}][{key!r}] is {value}; keep Tensors or arrays in the state.")
            value = expect_array(np.asarray(value) if type(value) is float else value, shape=np.shape(expected),
                                 dtype_kind="f", name=f"self.state[{i}][{key!r}]")
            if not np.allclose(value, expected, rtol=RTOL, atol=ATOL):
                fail(f"{cls_name}: self.state[{i}][{key!r}] is wrong after {len(prob['scales'])} steps.",
                     got=value, expected=np.asarray(expected))


def _check_skipping_and_state(student, cls_name, kwargs, update, variants, keys, steps=7):
    prob = skipping_problem(steps)
    state, want_states = _check_trajectory(student, cls_name, kwargs, update, variants, prob)
    _check_state(state, want_states, keys, cls_name, prob)


# -- SGD -----------------------------------------------------------------------------------------

def _sgd_variants(lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    named = [
        ("the first momentum step is damped: PyTorch sets the buffer to g on a parameter's first step", "zero_init"),
        ("dampening was ignored (b <- mu b + g)", "no_dampening"),
        ("the lectures' EMA (b <- mu b + (1 - mu) g) instead of PyTorch's b <- mu b + (1 - dampening) g", "ema"),
        ("nesterov=True was ignored (d = g + mu b with the NEW buffer)", "no_nesterov"),
        ("the Nesterov step used the buffer from before this step", "nesterov_old_buf"),
        ("weight_decay was ignored (g <- g + weight_decay * theta)", "no_decay"),
        ("weight decay with the wrong sign", "decay_sign"),
    ]
    return {k: ref.sgd(lr, momentum, dampening, weight_decay, nesterov, variant=v) for k, v in named}


def _sgd(student, **kw):
    _check_trajectory(student, "SGD", kw, ref.sgd(**kw), _sgd_variants(**kw), problem(8))


@check("SGD", points=1)
def test_sgd_plain_and_weight_decay(student):
    _sgd(student, lr=0.1)
    _sgd(student, lr=0.05, weight_decay=0.1)


@check("SGD", points=1)
def test_sgd_momentum_and_dampening(student):
    _sgd(student, lr=0.05, momentum=0.9)
    _sgd(student, lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.05)


@check("SGD", points=1)
def test_sgd_nesterov(student):
    _sgd(student, lr=0.05, momentum=0.9, nesterov=True)
    _sgd(student, lr=0.02, momentum=0.5, nesterov=True, weight_decay=0.2)


@check("SGD", points=1)
def test_sgd_skips_parameters_without_grad_and_keeps_state(student):
    kw = dict(lr=0.05, momentum=0.7, dampening=0.1, weight_decay=0.1)
    _check_skipping_and_state(student, "SGD", kw, ref.sgd(**kw), _sgd_variants(**kw), ["momentum_buffer"])


# -- Momentum ------------------------------------------------------------------------------------

def _momentum_variants(lr, beta, unbias):
    return {
        "the other momentum form u <- beta u + g (the lectures' EMA is u <- beta u + (1 - beta) g)":
            ref.momentum(lr, beta, unbias, form="plain"),
        "the EMA weights are swapped: u <- (1 - beta) u + beta g": ref.momentum(lr, beta, unbias, form="swapped"),
        "no state: u is recomputed from the current gradient only (right for one step)":
            ref.momentum(lr, beta, unbias, stateless=True),
        "unbiased by (1 - beta) instead of (1 - beta^t)": ref.momentum(lr, beta, unbias, unbias_power="one"),
        "bias correction with the wrong power (1 - beta^(t+1)): t counts the steps taken, starting at 1":
            ref.momentum(lr, beta, unbias, unbias_power="t+1"),
        "unbias=True was ignored": ref.momentum(lr, beta, False),
        "unbiased although unbias=False": ref.momentum(lr, beta, True),
        "one step counter for all parameters: t must count the updates of each parameter":
            ref.momentum(lr, beta, unbias, global_step=True),
    }


@check("Momentum", points=1)
def test_momentum_ema(student):
    _check_trajectory(student, "Momentum", {"lr": 0.1, "beta": 0.9}, ref.momentum(0.1, 0.9),
                      _momentum_variants(0.1, 0.9, False), problem(8))
    _check_trajectory(student, "Momentum", {"lr": 0.2}, ref.momentum(0.2, 0.9),
                      _momentum_variants(0.2, 0.9, False), problem(4, n=2))


@check("Momentum", points=1)
def test_momentum_unbias(student):
    _check_trajectory(student, "Momentum", {"lr": 0.1, "beta": 0.5, "unbias": True},
                      ref.momentum(0.1, 0.5, True), _momentum_variants(0.1, 0.5, True), problem(6))
    _check_trajectory(student, "Momentum", {"lr": 0.05, "beta": 0.75, "unbias": False},
                      ref.momentum(0.05, 0.75), _momentum_variants(0.05, 0.75, False), problem(5, n=2))


@check("Momentum", points=1)
def test_momentum_skips_parameters_without_grad_and_keeps_state(student):
    _check_skipping_and_state(student, "Momentum", {"lr": 0.1, "beta": 0.6, "unbias": True},
                              ref.momentum(0.1, 0.6, True), _momentum_variants(0.1, 0.6, True), ["step", "u"])


# -- Nesterov ------------------------------------------------------------------------------------

def _nesterov_variants(lr, beta):
    return {
        "plain momentum: no look-ahead (theta <- theta - lr u)": ref.nesterov(lr, beta, variant="no_lookahead"),
        "the look-ahead uses the OLD u (update u first, then use the new u)": ref.nesterov(lr, beta, variant="old_u"),
        "the look-ahead's gradient term is not damped: beta u + g instead of beta u + (1 - beta) g":
            ref.nesterov(lr, beta, variant="undamped"),
        "no state: u is not kept between steps": ref.nesterov(lr, beta, variant="stateless"),
        "the other momentum form u <- beta u + g": ref.nesterov(lr, beta, variant="plain_form"),
    }


@check("Nesterov", points=1)
def test_nesterov(student):
    _check_trajectory(student, "Nesterov", {"lr": 0.1, "beta": 0.9}, ref.nesterov(0.1, 0.9),
                      _nesterov_variants(0.1, 0.9), problem(8))
    _check_trajectory(student, "Nesterov", {"lr": 0.2}, ref.nesterov(0.2, 0.9), _nesterov_variants(0.2, 0.9),
                      problem(4, n=2))


@check("Nesterov", points=1)
def test_nesterov_skips_parameters_without_grad_and_keeps_state(student):
    _check_skipping_and_state(student, "Nesterov", {"lr": 0.3, "beta": 0.5}, ref.nesterov(0.3, 0.5),
                              _nesterov_variants(0.3, 0.5), ["u"])


# -- Adagrad -------------------------------------------------------------------------------------

def _adagrad_variants(**kw):
    named = [
        ("eps inside the square root: sqrt(s + eps) instead of sqrt(s) + eps", "eps_inside"),
        ("lr_decay counted from t instead of t - 1: lr_t = lr / (1 + (t - 1) lr_decay)", "decay_t"),
        ("lr_decay applied as lr (1 - (t - 1) lr_decay)", "decay_mult"),
        ("initial_accumulator_value was ignored (s starts at it)", "no_init"),
        ("weight_decay was ignored", "no_decay"),
        ("an EMA of g^2 (that is RMSprop): Adagrad sums", "ema"),
        ("s accumulates |g| instead of g^2", "abs"),
        ("one step counter for all parameters: t counts the updates of each parameter", "global_step"),
    ]
    return {k: ref.adagrad(**kw, variant=v) for k, v in named}


@check("Adagrad", points=1)
def test_adagrad(student):
    for kw in ({}, {"lr": 0.1, "lr_decay": 0.1, "weight_decay": 0.1, "initial_accumulator_value": 0.5},
               {"lr": 0.05, "eps": 1e-3}):
        _check_trajectory(student, "Adagrad", kw, ref.adagrad(**kw), _adagrad_variants(**kw), problem(8))


@check("Adagrad", points=1)
def test_adagrad_skips_parameters_without_grad_and_keeps_state(student):
    kw = {"lr": 0.1, "lr_decay": 0.05, "initial_accumulator_value": 0.1}
    _check_skipping_and_state(student, "Adagrad", kw, ref.adagrad(**kw), _adagrad_variants(**kw), ["step", "sum"])


# -- RMSprop -------------------------------------------------------------------------------------

def _rmsprop_variants(**kw):
    named = [
        ("eps inside the square root: sqrt(s + eps) instead of sqrt(s) + eps", "eps_inside"),
        ("the gradient is not squared in s", "abs"),
        ("(1 - alpha) is missing: s <- alpha s + g^2", "no_one_minus"),
        ("no state: s is recomputed from the current gradient only", "stateless"),
        ("Adam's bias correction was added (RMSprop has none)", "bias_corrected"),
        ("divided by s instead of sqrt(s)", "no_sqrt"),
        ("weight_decay was ignored", "no_decay"),
        ("momentum was ignored", "no_momentum"),
        ("the momentum buffer accumulates g, not g / (sqrt(s) + eps) (PyTorch: b <- mu b + g / d)", "momentum_of_g"),
        ("centered=True was ignored (s - g_avg^2)", "not_centered"),
        ("centered subtracts g_avg instead of g_avg^2", "centered_no_square"),
    ]
    return {k: ref.rmsprop(**kw, variant=v) for k, v in named}


def _rmsprop(student, prob, **kw):
    _check_trajectory(student, "RMSprop", kw, ref.rmsprop(**kw), _rmsprop_variants(**kw), prob)


@check("RMSprop", points=1)
def test_rmsprop(student):
    _rmsprop(student, problem(8), lr=0.01, alpha=0.9, eps=1e-8)
    _rmsprop(student, problem(6))
    _rmsprop(student, problem(5, n=2), lr=0.05, alpha=0.5, eps=0.1)   # sqrt(s) + eps vs sqrt(s + eps)


@check("RMSprop", points=1)
def test_rmsprop_weight_decay_momentum_centered(student):
    _rmsprop(student, problem(8), lr=0.01, alpha=0.9, weight_decay=0.1)
    _rmsprop(student, problem(8), lr=0.01, alpha=0.9, momentum=0.8)
    _rmsprop(student, problem(8, n=2), lr=0.01, alpha=0.8, eps=1e-6, weight_decay=0.05, momentum=0.5, centered=True)


@check("RMSprop", points=1)
def test_rmsprop_skips_parameters_without_grad_and_keeps_state(student):
    kw = {"lr": 0.01, "alpha": 0.9, "momentum": 0.5, "centered": True}
    _check_skipping_and_state(student, "RMSprop", kw, ref.rmsprop(**kw), _rmsprop_variants(**kw),
                              ["step", "square_avg", "momentum_buffer", "grad_avg"])


# -- Adam / AdamW --------------------------------------------------------------------------------

def _adam_variants(**kw):
    named = [
        ("Adam without bias correction", "no_correction"),
        ("bias correction applied although bias_correction=False", "always_correct"),
        ("bias correction with the wrong power (1 - beta^(t+1)): t counts the steps taken, starting at 1",
         "power_t+1"),
        ("eps inside the square root: sqrt(v_hat + eps) instead of sqrt(v_hat) + eps", "eps_inside"),
        ("v tracks |g| instead of g^2", "abs"),
        ("beta1 and beta2 swapped (beta1 is for m, beta2 for v)", "swapped"),
        ("no state: m and v restart at every step (right for one step only)", "stateless"),
        ("one step counter for all parameters: t counts the updates of each parameter", "global_step"),
        ("weight_decay was ignored", "no_decay"),
        ("coupled and decoupled weight decay confused (Adam adds weight_decay * theta to g; AdamW shrinks theta "
         "by (1 - lr * weight_decay) first)", "decay_swapped"),
        ("decoupled decay applied after the Adam step instead of before it", "decay_after"),
        ("decoupled decay without lr: theta <- theta (1 - lr * weight_decay)", "decay_no_lr"),
    ]
    out = {k: ref.adam(**kw, variant=v) for k, v in named}
    defaults = {"betas": (0.9, 0.999), "eps": 1e-8, "lr": 1e-3}
    for key, wrong in [("betas", (0.9, 0.99)), ("eps", 1e-6), ("lr", 1e-2)]:
        if kw.get(key, defaults[key]) != wrong:
            out[f"{key} = {wrong} was used; the default is {key} = {defaults[key]}"] = ref.adam(**{**kw, key: wrong})
    return out


def _adam(student, prob, cls_name="Adam", **kw):
    sim = {**kw, "decoupled": cls_name == "AdamW"}
    if cls_name == "AdamW":
        sim.setdefault("weight_decay", 1e-2)
    _check_trajectory(student, cls_name, kw, ref.adam(**sim), _adam_variants(**sim), prob)


@check("Adam", points=1)
def test_adam_bias_correction(student):
    _adam(student, problem(8), lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    _adam(student, problem(6), lr=0.05, betas=(0.5, 0.75), eps=0.1)


@check("Adam", points=1)
def test_adam_defaults_over_many_steps(student):
    # 30 steps with gradients that change size: beta2 = 0.999 and 0.99 give different v_hat;
    # parameter 2's gradients are ~1e-7, so eps = 1e-8 and its place matter
    _adam(student, problem(30))


@check("Adam", points=1)
def test_adam_without_bias_correction_and_coupled_decay(student):
    _adam(student, problem(8), lr=0.1, betas=(0.8, 0.9), eps=1e-8, bias_correction=False)
    _adam(student, problem(8), lr=0.05, weight_decay=0.1)


@check("Adam", points=1)
def test_adam_skips_parameters_without_grad_and_keeps_state(student):
    kw = {"lr": 0.05, "betas": (0.8, 0.9), "weight_decay": 0.05}
    sim = {**kw, "decoupled": False}
    _check_skipping_and_state(student, "Adam", kw, ref.adam(**sim), _adam_variants(**sim),
                              ["step", "exp_avg", "exp_avg_sq"])


@check("AdamW", points=1)
def test_adamw_decoupled_decay(student):
    _adam(student, problem(10), "AdamW", lr=0.05)                      # default weight_decay = 1e-2
    _adam(student, problem(8), "AdamW", lr=0.1, betas=(0.8, 0.95), weight_decay=0.5)


@check("AdamW", points=1)
def test_adamw_skips_parameters_without_grad_and_keeps_state(student):
    kw = {"lr": 0.05, "weight_decay": 0.3, "bias_correction": False}
    sim = {**kw, "decoupled": True}
    _check_skipping_and_state(student, "AdamW", kw, ref.adam(**sim), _adam_variants(**sim),
                              ["step", "exp_avg", "exp_avg_sq"])
