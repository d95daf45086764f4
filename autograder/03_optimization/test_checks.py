"""Hidden checks for 03_optimization.

RNG-free and exact (CS231n style): linspace inputs, hand-checkable multi-step trajectories (at
least 3 steps, so an optimizer without state, or with the wrong state, is caught), with and without
``unbias`` / ``bias_correction``.  Optimizers are the student's ``dlkit.optim.Optimizer``
subclasses, run inside the sandbox by a trusted driver on separable quadratics; only the
trajectory comes back, the expected one is simulated here (reference.py).

Points (as the notebook's test cells): gradient_descent 2, newton_step 2, Momentum 3, Nesterov 3,
RMSprop 2, Adam 4.
"""
from __future__ import annotations

import numpy as np

from autograder.api import load_reference, check, diagnose, expect_array, fail


ref = load_reference(__file__)

RTOL, ATOL = 1e-6, 1e-9

# A 3-d quadratic with a non-diagonal, well-conditioned P (hand-checkable: integer entries).
P3 = np.array([[4.0, 1.0, 0.0], [1.0, 3.0, -1.0], [0.0, -1.0, 2.0]])
q3 = np.array([1.0, -2.0, 0.5])
P2 = np.array([[2.0, 0.5], [0.5, 1.0]])
q2 = np.array([-1.0, 1.0])


# -- gradient_descent ----------------------------------------------------------------------------

def _check_gd(student, P, q, theta0, lr, steps, case):
    got = student.call("gradient_descent", P, q, theta0, lr, steps)
    want = ref.gradient_descent(P, q, theta0, lr, steps)
    variants = {
        "row 0 (theta0) is missing: return steps + 1 rows starting with theta0":
            lambda: want[1:],
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
             f"got {got.shape}.", got=got, expected=want, hint=diagnose(got, variants))
    got = expect_array(got, shape=want.shape, dtype_kind="f", name=f"the trajectory for {case}")
    if not np.allclose(got, want, rtol=RTOL, atol=ATOL):
        bad = int(np.argmax(~np.all(np.isclose(got, want, rtol=RTOL, atol=ATOL), axis=1)))
        fail(f"gradient_descent is wrong for {case}: the first wrong row is row {bad}.", got=got, expected=want,
             hint=diagnose(got, variants))


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
    got = student.call("newton_step", P, q, theta) if lr is None else student.call("newton_step", P, q, theta, lr=lr)
    lr_ = 1.0 if lr is None else lr
    want = ref.newton_step(P, q, theta, lr_)
    got = expect_array(got, shape=theta.shape, dtype_kind="f", name=f"theta_next for {case}")
    if not np.allclose(got, want, rtol=1e-8, atol=1e-10):
        g = P @ theta + q
        fail(f"newton_step is wrong for {case}.", got=got, expected=want, hint=diagnose(got, {
            "the sign is flipped (theta + lr P^-1 g)": lambda: theta + lr_ * np.linalg.solve(P, g),
            "q is missing from the gradient Pθ + q": lambda: theta - lr_ * np.linalg.solve(P, P @ theta),
            "multiplied by P instead of solving with P (P^-1 g, not P g)": lambda: theta - lr_ * (P @ g),
            "lr was ignored (a full Newton step)": lambda: theta - np.linalg.solve(P, g),
            "a plain gradient step (no Hessian)": lambda: theta - lr_ * g,
        }))


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


# -- optimizers: the trusted driver and the comparison ---------------------------------------------

# The class is named in the driver's text (not looked up by a string) so that the harness sees
# which answer cell the driver needs.
_DRIVER = '''
def _run_optimizer(kwargs, inits, curv, lin, steps):
    cls = {cls_name}
    params = [dlkit.tensor(np.array(x, dtype=np.float64), requires_grad=True, dtype="float64") for x in inits]
    opt = cls(params, **kwargs)
    if not isinstance(opt, dlkit.optim.Optimizer):
        return "not an Optimizer"
    trajectory = []
    for _ in range(steps):
        for p, c, d in zip(params, curv, lin):
            p.grad = dlkit.tensor(c * p.numpy().astype(np.float64) + d, dtype="float64")
        opt.step()
        trajectory.append([np.asarray(p.numpy(), dtype=np.float64) for p in params])
    return trajectory
'''

# Two parameters of different shapes (a weight matrix and a bias), linspace everything.
INITS = [np.linspace(-1.0, 1.0, 6).reshape(2, 3), np.linspace(0.5, -0.5, 3)]
CURV = [np.linspace(0.5, 2.0, 6).reshape(2, 3), np.linspace(1.0, 3.0, 3)]
LIN = [np.linspace(-0.3, 0.2, 6).reshape(2, 3), np.linspace(0.1, -0.1, 3)]


def _flat(traj):
    return np.concatenate([np.concatenate([np.ravel(p) for p in step]) for step in traj])


def _check_optimizer(student, cls_name, kwargs, update, variants, steps=4, inits=INITS, curv=CURV, lin=LIN):
    args = "".join(f", {k}={v!r}" for k, v in kwargs.items())
    case = f"{cls_name}(params{args}) on two parameters (shapes {[x.shape for x in inits]}), {steps} steps"
    driver = _DRIVER.replace("{cls_name}", cls_name)
    got = student.run(driver, "_run_optimizer", kwargs, list(inits), list(curv), list(lin), steps)
    if got == "not an Optimizer":
        fail(f"{cls_name} must subclass dlkit.optim.Optimizer (class {cls_name}(dlkit.optim.Optimizer): ...).")
    want = ref.simulate(update, inits, curv, lin, steps)
    if not isinstance(got, list) or len(got) != steps:
        fail(f"internal: unexpected trajectory for {case}")
    for t, (got_t, want_t) in enumerate(zip(got, want), start=1):
        for i, (g, w) in enumerate(zip(got_t, want_t)):
            g = expect_array(g, shape=w.shape, dtype_kind="f", name=f"parameter {i} after step {t} of {case}")
            if not np.allclose(g, w, rtol=RTOL, atol=ATOL):
                flat = _flat(got)
                hint = diagnose(flat, {k: (lambda u=u: _flat(ref.simulate(u, inits, curv, lin, steps)))
                                       for k, u in variants.items()}, rtol=RTOL, atol=ATOL)
                first = " (step 1 is right, so the state kept between steps is where to look)" if t > 1 else ""
                fail(f"{case}: parameter {i} is wrong after step {t}{first}. The gradient at every step is "
                     f"g = c * theta + d for fixed arrays c, d.", got=g, expected=w, hint=hint)


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
    }


@check("Momentum", points=1)
def test_momentum_ema(student):
    _check_optimizer(student, "Momentum", {"lr": 0.1, "beta": 0.9}, ref.momentum(0.1, 0.9),
                     _momentum_variants(0.1, 0.9, False))


@check("Momentum", points=1)
def test_momentum_unbias(student):
    _check_optimizer(student, "Momentum", {"lr": 0.1, "beta": 0.5, "unbias": True},
                     ref.momentum(0.1, 0.5, True), _momentum_variants(0.1, 0.5, True), steps=5)


@check("Momentum", points=1)
def test_momentum_defaults_and_unbias_false(student):
    _check_optimizer(student, "Momentum", {"lr": 0.2}, ref.momentum(0.2, 0.9),
                     _momentum_variants(0.2, 0.9, False))
    _check_optimizer(student, "Momentum", {"lr": 0.05, "beta": 0.75, "unbias": False},
                     ref.momentum(0.05, 0.75), _momentum_variants(0.05, 0.75, False), steps=3)


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
    _check_optimizer(student, "Nesterov", {"lr": 0.1, "beta": 0.9}, ref.nesterov(0.1, 0.9),
                     _nesterov_variants(0.1, 0.9))


@check("Nesterov", points=1)
def test_nesterov_other_beta(student):
    _check_optimizer(student, "Nesterov", {"lr": 0.3, "beta": 0.5}, ref.nesterov(0.3, 0.5),
                     _nesterov_variants(0.3, 0.5), steps=5)


@check("Nesterov", points=1)
def test_nesterov_default_beta_one_parameter(student):
    _check_optimizer(student, "Nesterov", {"lr": 0.2}, ref.nesterov(0.2, 0.9), _nesterov_variants(0.2, 0.9), steps=3,
                     inits=[np.linspace(2.0, -2.0, 5)], curv=[np.linspace(0.2, 1.0, 5)], lin=[np.linspace(0.0, 0.4, 5)])


# -- RMSprop -------------------------------------------------------------------------------------

def _rmsprop_variants(lr, alpha, eps):
    return {name: ref.rmsprop(lr, alpha, eps, variant=v) for name, v in [
        ("eps inside the square root: sqrt(s + eps) instead of sqrt(s) + eps", "eps_inside"),
        ("the gradient is not squared in s", "abs"),
        ("(1 - alpha) is missing: s <- alpha s + g^2", "no_one_minus"),
        ("no state: s is recomputed from the current gradient only", "stateless"),
        ("Adam's bias correction was added (RMSprop has none)", "bias_corrected"),
        ("divided by s instead of sqrt(s)", "no_sqrt"),
    ]}


@check("RMSprop", points=1)
def test_rmsprop(student):
    _check_optimizer(student, "RMSprop", {"lr": 0.01, "alpha": 0.9, "eps": 1e-8},
                     ref.rmsprop(0.01, 0.9, 1e-8), _rmsprop_variants(0.01, 0.9, 1e-8))
    _check_optimizer(student, "RMSprop", {}, ref.rmsprop(), _rmsprop_variants(1e-2, 0.99, 1e-8), steps=3)


@check("RMSprop", points=1)
def test_rmsprop_large_eps(student):
    # eps = 0.1 makes sqrt(s) + eps and sqrt(s + eps) clearly different
    _check_optimizer(student, "RMSprop", {"lr": 0.05, "alpha": 0.5, "eps": 0.1},
                     ref.rmsprop(0.05, 0.5, 0.1), _rmsprop_variants(0.05, 0.5, 0.1), steps=4)


# -- Adam ----------------------------------------------------------------------------------------

def _adam_variants(lr, betas, eps, bc):
    return {name: ref.adam(lr, betas, eps, bc, variant=v) for name, v in [
        ("Adam without bias correction", "no_correction"),
        ("bias correction applied although bias_correction=False", "always_correct"),
        ("bias correction with the wrong power (1 - beta^(t+1)): t counts the steps taken, starting at 1",
         "power_t+1"),
        ("eps inside the square root: sqrt(v_hat + eps) instead of sqrt(v_hat) + eps", "eps_inside"),
        ("v tracks |g| instead of g^2", "abs"),
        ("beta1 and beta2 swapped (beta1 is for m, beta2 for v)", "swapped"),
        ("no state: m and v restart at every step (right for one step only)", "stateless"),
    ]}


@check("Adam", points=1)
def test_adam_bias_correction(student):
    _check_optimizer(student, "Adam", {"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8},
                     ref.adam(0.1, (0.9, 0.999), 1e-8, True), _adam_variants(0.1, (0.9, 0.999), 1e-8, True))


@check("Adam", points=1)
def test_adam_defaults(student):
    _check_optimizer(student, "Adam", {}, ref.adam(), _adam_variants(1e-3, (0.9, 0.999), 1e-8, True), steps=3)


@check("Adam", points=1)
def test_adam_without_bias_correction(student):
    _check_optimizer(student, "Adam", {"lr": 0.1, "betas": (0.8, 0.9), "eps": 1e-8, "bias_correction": False},
                     ref.adam(0.1, (0.8, 0.9), 1e-8, False), _adam_variants(0.1, (0.8, 0.9), 1e-8, False))


@check("Adam", points=1)
def test_adam_large_eps_other_betas(student):
    _check_optimizer(student, "Adam", {"lr": 0.05, "betas": (0.5, 0.75), "eps": 0.1},
                     ref.adam(0.05, (0.5, 0.75), 0.1, True), _adam_variants(0.05, (0.5, 0.75), 0.1, True), steps=5)
