"""dlkit.optim: update sequences against PyTorch's and hand-derived values.

Reference trajectories below were produced once with torch 2.13.0 (CPU, float64): parameter
θ₀ = [1, -2, 3], gradient g = c·θ + d recomputed from the current θ before every step
(c = [0.5, 2, 1], d = [0.1, -0.3, 0.2]), four steps.  The tests never import torch.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import dlkit
from dlkit import optim

THETA0 = [1.0, -2.0, 3.0]
C = np.array([0.5, 2.0, 1.0])
D = np.array([0.1, -0.3, 0.2])

REFERENCE = {
    'sgd': [[0.94, -1.57, 2.68], [0.8829999999999999, -1.226, 2.392], [0.8288499999999999, -0.9508, 2.1328], [0.7774074999999999, -0.73064, 1.89952]],
    'sgd_momentum': [[0.94, -1.57, 2.68], [0.829, -0.839, 2.104], [0.67765, 0.016700000000000118, 1.3552], [0.49755249999999995, 0.8134900000000002, 0.5257599999999998]],
    'sgd_dampening_wd': [[0.93, -1.55, 2.65], [0.8341000000000001, -0.96725, 2.17925], [0.717767, -0.32621375, 1.6257162500000002], [0.58653429, 0.29997131875, 1.0281214812500001]],
    'sgd_nesterov_wd': [[0.8841, -1.1792, 2.3863], [0.73002071, -0.32194352000000015, 1.6287390299999998], [0.551190532201, 0.3892202622879999, 0.8312938071429997], [0.36034096020062306, 0.8523848654114128, 0.08212020280795798]],
    'adam': [[0.9000000016666666, -1.900000000232558, 2.9000000003125], [0.8003208405705653, -1.8001524222844993, 2.800095334453227], [0.7012228243469972, -1.700569748619489, 2.700353798793025], [0.6030064432172777, -1.6013729687191487, 2.6008463274228655]],
    'adam_wd': [[0.9001426533523538, -1.9000222172850478, 2.9000285632676377], [0.8008644816518244, -1.8003267649093362, 2.8002395752261044], [0.7026180687953083, -1.7011173398207597, 2.7007602890399682], [0.605909807740404, -1.6026075441949335, 2.601720877395738]],
    'adamw': [[0.8900000016666666, -1.880000000232558, 2.8700000003125], [0.7814653074584571, -1.7613907838648861, 2.741429553537088], [0.6746771785524928, -1.6442993062622295, 2.6143665125874884], [0.5699589340257635, -1.5288618792344755, 2.4888921906655206]],
    'rmsprop': [[0.900000016666664, -1.9000000023255814, 2.900000003125], [0.8322432168673547, -1.8308110276302547, 2.830240316109168], [0.7783955481538649, -1.7750403008312117, 2.7737088167245876], [0.7327542039604305, -1.7272037763689225, 2.7250105720115987]],
    'rmsprop_centered_momentum_wd': [[0.9666668253960695, -1.9666666913580064, 2.966666698412668], [0.9115299302436004, -1.9113664247292135, 2.9113037377004685], [0.840320851285777, -1.8395832195527555, 2.8393026739933065], [0.7568164809090697, -1.754782939256732, 2.7540178709801664]],
    'adagrad': [[0.9000000000166667, -1.9000000000023256, 2.900000000003125], [0.8324275371726776, -1.830992466646162, 2.8304204784219493], [0.7788691878201235, -1.7755121254644068, 2.774179407431755], [0.7335923536136242, -1.7280473017759252, 2.7258549693895873]],
    'adagrad_decay_wd_init': [[0.9296473529389259, -1.9012121660114474, 2.9019803941207845], [0.8795125784229184, -1.8388656092226778, 2.8393668073546543], [0.8407034209869554, -1.7927257887962131, 2.7927552196541297], [0.8092283475602745, -1.7561346642817484, 2.755647851728833]],
    'momentum_as_sgd': [[0.994, -1.957, 2.968], [0.98263, -1.87616, 2.90752], [0.96648385, -1.7628808, 2.8220128], [0.94611989575, -1.6226719040000002, 2.714836192]],
    'nesterov_as_sgd': [[0.9886, -1.9183000000000001, 2.9392], [0.9724483, -1.8048746000000002, 2.8536352000000003], [0.9521222111500001, -1.6657359052000003, 2.7468606112000002], [0.928159587529075, -1.5067008582824002, 2.6222558464672003]],
}
REFERENCE_F32_ADAM = [[0.9000000357627869, -1.899999976158142, 2.9000000953674316], [0.8003208637237549, -1.8001524209976196, 2.800095319747925], [0.701222836971283, -1.700569748878479, 2.7003538608551025]]
REFERENCE_F32_SGD = [[0.8859999775886536, -1.1829999685287476, 2.3919999599456787], [0.7342299818992615, -0.32815995812416077, 1.6403199434280396], [0.557755172252655, 0.3829568028450012, 0.8474271297454834]]
LR_STEP = [0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125, 0.0125, 0.0125, 0.00625]
LR_COSINE = [0.09140576474687263, 0.06890576474687263, 0.04109423525312736, 0.018594235253127367, 0.01, 0.018594235253127367, 0.04109423525312739, 0.06890576474687267, 0.09140576474687269, 0.10000000000000006, 0.09140576474687272, 0.06890576474687268]
# clip_grad_norm_([p1, p2], 6.5) with grads [3, 4] and [0, 12, 0]: (norm, g1, g2)
CLIP = (13.0, [1.4999998846153937, 1.9999998461538582], [0.0, 5.999999538461575, 0.0])


def _param(values=THETA0, dtype="float64") -> dlkit.Tensor:
    return dlkit.tensor(values, requires_grad=True, dtype=dtype)


def _trajectory(make, steps: int = 4, dtype: str = "float64") -> np.ndarray:
    """Run ``make([p])`` for ``steps`` steps with g = C·θ + D; return θ after each step."""
    p = _param(dtype=dtype)
    opt = make([p])
    out = []
    for _ in range(steps):
        theta = p.numpy().astype(np.float64)
        p.grad = dlkit.tensor(C * theta + D, dtype=dtype)
        opt.step()
        out.append(p.numpy().astype(np.float64))
    return np.array(out)


CONFIGS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.1),
    "sgd_momentum": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
    "sgd_dampening_wd": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.5, weight_decay=0.1),
    "sgd_nesterov_wd": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "adam": lambda ps: optim.Adam(ps, lr=0.1),
    "adam_wd": lambda ps: optim.Adam(ps, lr=0.1, betas=(0.8, 0.99), eps=1e-3, weight_decay=0.1),
    "adamw": lambda ps: optim.AdamW(ps, lr=0.1, weight_decay=0.1),
    "rmsprop": lambda ps: optim.RMSprop(ps, lr=0.01),
    "rmsprop_centered_momentum_wd": lambda ps: optim.RMSprop(ps, lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.1,
                                                             momentum=0.9, centered=True),
    "adagrad": lambda ps: optim.Adagrad(ps, lr=0.1),
    "adagrad_decay_wd_init": lambda ps: optim.Adagrad(ps, lr=0.1, lr_decay=0.1, weight_decay=0.1,
                                                      initial_accumulator_value=0.5),
    # the lectures' EMA forms equal PyTorch SGD with lr·(1 − β) (module docstring of dlkit.optim)
    "momentum_as_sgd": lambda ps: optim.Momentum(ps, lr=0.1, beta=0.9),
    "nesterov_as_sgd": lambda ps: optim.Nesterov(ps, lr=0.1, beta=0.9),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_matches_pytorch_float64(name):
    np.testing.assert_allclose(_trajectory(CONFIGS[name]), REFERENCE[name], rtol=1e-12, atol=1e-14)


def test_matches_pytorch_float32():
    adam = _trajectory(lambda ps: optim.Adam(ps, lr=0.1), steps=3, dtype="float32")
    np.testing.assert_allclose(adam, REFERENCE_F32_ADAM, rtol=2e-6)
    sgd = _trajectory(lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True), steps=3, dtype="float32")
    np.testing.assert_allclose(sgd, REFERENCE_F32_SGD, rtol=2e-6)


def test_parameters_stay_float32_and_in_place():
    p = _param(dtype="float32")
    storage = p._array
    opt = optim.Adam([p], lr=0.1)
    p.grad = dlkit.tensor([1.0, 1.0, 1.0])
    opt.step()
    assert p.dtype == np.float32 and p._array is storage
    assert opt.state[0]["exp_avg"].dtype == np.float32


# -- hand-derived sequences (constant gradient g) -------------------------------------------------

def _constant_grad_run(opt_factory, g: float, steps: int, theta0: float = 0.0) -> list[float]:
    p = _param([theta0])
    opt = opt_factory([p])
    out = []
    for _ in range(steps):
        p.grad = dlkit.tensor([g], dtype="float64")
        opt.step()
        out.append(float(p.numpy()[0]))
    return out


def test_momentum_ema_hand_derived():
    # u_t = (1 − β^t)·g, θ_t = −α·g·Σ_{k≤t}(1 − β^k); β = 0.5, α = 1, g = 1: u = .5, .75, .875
    got = _constant_grad_run(lambda ps: optim.Momentum(ps, lr=1.0, beta=0.5), g=1.0, steps=3)
    np.testing.assert_allclose(got, [-0.5, -1.25, -2.125], rtol=1e-15)


def test_momentum_unbiased_moves_exactly_lr_per_step():
    # u_t/(1 − β^t) = g for a constant g: every step is exactly lr·g
    got = _constant_grad_run(lambda ps: optim.Momentum(ps, lr=0.3, beta=0.9, unbias=True), g=2.0, steps=5)
    np.testing.assert_allclose(got, [-0.6 * k for k in range(1, 6)], rtol=1e-13)


def test_nesterov_hand_derived():
    # u_1 = (1−β)g = .5, step β·u_1 + (1−β)g = .75; u_2 = .75, step .875  (β = .5, g = 1, α = 1)
    got = _constant_grad_run(lambda ps: optim.Nesterov(ps, lr=1.0, beta=0.5), g=1.0, steps=2)
    np.testing.assert_allclose(got, [-0.75, -1.625], rtol=1e-15)


def test_sgd_momentum_hand_derived_first_step_undamped():
    # PyTorch: b_1 = g (no dampening on the first step), b_2 = μ·b_1 + (1 − d)·g
    got = _constant_grad_run(lambda ps: optim.SGD(ps, lr=1.0, momentum=0.5, dampening=0.5), g=1.0, steps=2)
    np.testing.assert_allclose(got, [-1.0, -2.0], rtol=1e-15)  # b_2 = .5 + .5 = 1


def test_adam_bias_correction_hand_derived():
    # constant g: m̂ = g, v̂ = g² every step → step = lr·g/(|g| + eps)
    lr, eps, g = 0.01, 1e-8, 4.0
    got = _constant_grad_run(lambda ps: optim.Adam(ps, lr=lr, eps=eps), g=g, steps=3)
    np.testing.assert_allclose(got, [-lr * g / (g + eps) * k for k in (1, 2, 3)], rtol=1e-12)


def test_adam_without_bias_correction_hand_derived():
    # m_1 = (1−β1)g, v_1 = (1−β2)g² → step_1 = lr·(1−β1)/√(1−β2) for g > 0 (eps = 0)
    b1, b2 = 0.9, 0.99
    got = _constant_grad_run(lambda ps: optim.Adam(ps, lr=1.0, betas=(b1, b2), eps=0.0, bias_correction=False),
                             g=3.0, steps=2)
    step1 = (1 - b1) / math.sqrt(1 - b2)
    step2 = (1 - b1**2) / math.sqrt(1 - b2**2)
    np.testing.assert_allclose(got, [-step1, -step1 - step2], rtol=1e-13)


def test_adagrad_hand_derived():
    # s_t = t·g² → θ_t = −lr·Σ_k g/√(k g²) = −lr·Σ 1/√k (g > 0, eps = 0)
    got = _constant_grad_run(lambda ps: optim.Adagrad(ps, lr=1.0, eps=0.0), g=5.0, steps=3)
    np.testing.assert_allclose(got, np.cumsum([-1.0, -1 / math.sqrt(2), -1 / math.sqrt(3)]), rtol=1e-14)


def test_adamw_decay_is_decoupled():
    # zero gradient: Adam's update vanishes, AdamW still shrinks θ by (1 − lr·λ) per step
    p = _param([2.0])
    opt = optim.AdamW([p], lr=0.1, weight_decay=0.5)
    for _ in range(3):
        p.grad = dlkit.tensor([0.0], dtype="float64")
        opt.step()
    np.testing.assert_allclose(p.numpy(), [2.0 * 0.95**3], rtol=1e-14)


def test_parameters_without_grad_are_skipped_and_zero_grad_clears():
    a, b = _param([1.0]), _param([1.0])
    opt = optim.SGD([a, b], lr=1.0)
    a.grad = dlkit.tensor([1.0], dtype="float64")
    opt.step()
    assert a.numpy()[0] == 0.0 and b.numpy()[0] == 1.0
    opt.zero_grad()
    assert a.grad is None and b.grad is None


# -- quadratics: step-size regimes and Newton ------------------------------------------------------

def _gd_on_quadratic(problem, lr: float, steps: int) -> float:
    theta = dlkit.tensor(np.zeros(2), requires_grad=True, dtype="float64")
    opt = optim.SGD([theta], lr=lr)
    for _ in range(steps):
        theta.grad = dlkit.tensor(problem.grad(theta.numpy()), dtype="float64")
        opt.step()
    return float(np.linalg.norm(theta.numpy() - problem.minimizer))


def test_gd_converges_below_two_over_lambda_max_and_diverges_above():
    problem = dlkit.data.quadratic(n=2, condition=10.0, generator=np.random.default_rng(0))
    lam_max = problem.eigenvalues.max()
    start = float(np.linalg.norm(problem.minimizer))
    assert _gd_on_quadratic(problem, 1.9 / lam_max, 200) < 1e-6 * start
    assert _gd_on_quadratic(problem, 2.1 / lam_max, 200) > 1e3 * start


def test_newton_solves_a_quadratic_in_one_step():
    problem = dlkit.data.quadratic(n=3, condition=100.0, generator=np.random.default_rng(1))
    theta = dlkit.tensor(np.ones(3), requires_grad=True, dtype="float64")
    opt = optim.Newton([theta], lr=1.0)
    opt.step(lambda: problem.loss(theta))
    np.testing.assert_allclose(theta.numpy(), problem.minimizer, rtol=1e-10, atol=1e-12)


def test_damped_newton_takes_a_fraction_of_the_step():
    problem = dlkit.data.quadratic(n=2, condition=5.0, generator=np.random.default_rng(2))
    theta = dlkit.tensor(np.zeros(2), requires_grad=True, dtype="float64")
    optim.Newton([theta], lr=0.5).step(lambda: problem.loss(theta))
    np.testing.assert_allclose(theta.numpy(), 0.5 * problem.minimizer, rtol=1e-10, atol=1e-12)


def test_newton_over_several_parameters_flattens_them():
    # f(a, B) = ½·a² + a·B₀₀ + B₀₀² + 3·B₁₀² − 2·B₀₀ − B₁₀  (a scalar-like (1,), B (2, 1))
    a = dlkit.tensor([5.0], requires_grad=True, dtype="float64")
    B = dlkit.tensor([[1.0], [-1.0]], requires_grad=True, dtype="float64")

    def loss():
        b0, b1 = B[0, 0], B[1, 0]
        return 0.5 * (a * a).sum() + (a * b0).sum() + b0 * b0 + 3.0 * b1 * b1 - 2.0 * b0 - b1

    optim.Newton([a, B]).step(loss)
    # ∇ = 0: a + b0 = 0, a + 2 b0 − 2 = 0 → b0 = 2, a = −2; 6 b1 − 1 = 0 → b1 = 1/6
    np.testing.assert_allclose(a.numpy(), [-2.0], atol=1e-12)
    np.testing.assert_allclose(B.numpy(), [[2.0], [1.0 / 6.0]], atol=1e-12)


def test_newton_with_separate_parameters_and_a_linear_term():
    # f(a, b) = (a − 1)² + b² + 3·b: ∂²f/∂a∂b = 0 (b's gradient never sees a) → a = 1, b = −3/2
    a = dlkit.tensor([4.0], requires_grad=True, dtype="float64")
    b = dlkit.tensor([2.0], requires_grad=True, dtype="float64")
    optim.Newton([a, b]).step(lambda: ((a - 1.0) * (a - 1.0) + b * b + 3.0 * b).sum())
    np.testing.assert_allclose([a.numpy()[0], b.numpy()[0]], [1.0, -1.5], atol=1e-12)
    flat = dlkit.tensor([1.0], requires_grad=True, dtype="float64")
    with pytest.raises(np.linalg.LinAlgError, match="singular.*damping"):
        optim.Newton([flat]).step(lambda: (2.0 * flat).sum())          # linear: H = 0
    with pytest.raises(ValueError, match="needs a closure"):
        optim.Newton([flat]).step()


# -- schedules and clipping --------------------------------------------------------------------

@pytest.mark.parametrize("name", ["step", "cosine"])
def test_schedules_match_pytorch(name):
    p = _param([0.0])
    opt = optim.SGD([p], lr=0.1)
    sched = (optim.StepLR(opt, step_size=3, gamma=0.5) if name == "step"
             else optim.CosineAnnealingLR(opt, T_max=5, eta_min=0.01))
    lrs = []
    for _ in range(12):
        p.grad = dlkit.tensor([0.0], dtype="float64")
        opt.step()
        sched.step()
        lrs.append(opt.lr)
    expected = LR_STEP if name == "step" else LR_COSINE
    np.testing.assert_allclose(lrs, expected, rtol=1e-15, atol=1e-17)


def test_cosine_closed_form_within_a_period():
    p = _param([0.0])
    opt = optim.SGD([p], lr=1.0)
    sched = optim.CosineAnnealingLR(opt, T_max=8)
    for t in range(1, 9):
        sched.step()
        assert opt.lr == pytest.approx(0.5 * (1 + math.cos(math.pi * t / 8)), abs=1e-12)


def test_clip_grad_norm_matches_pytorch():
    p1, p2 = _param([0.0, 0.0]), _param([0.0, 0.0, 0.0])
    p1.grad = dlkit.tensor([3.0, 4.0], dtype="float64")
    p2.grad = dlkit.tensor([0.0, 12.0, 0.0], dtype="float64")
    total = optim.clip_grad_norm([p1, p2], 6.5)
    assert total == pytest.approx(CLIP[0], rel=1e-15)
    np.testing.assert_allclose(p1.grad.numpy(), CLIP[1], rtol=1e-14)
    np.testing.assert_allclose(p2.grad.numpy(), CLIP[2], rtol=1e-14)


def test_clip_grad_norm_leaves_small_gradients():
    p = _param([0.0, 0.0])
    p.grad = dlkit.tensor([0.3, 0.4], dtype="float64")
    assert optim.clip_grad_norm([p], 1.0) == pytest.approx(0.5)
    np.testing.assert_allclose(p.grad.numpy(), [0.3, 0.4])


# -- state and errors ---------------------------------------------------------------------------

def test_state_dict_round_trip_continues_identically():
    reference = _trajectory(CONFIGS["adam_wd"])
    p = _param()
    opt = optim.Adam([p], lr=0.1, betas=(0.8, 0.99), eps=1e-3, weight_decay=0.1)
    for _ in range(2):
        p.grad = dlkit.tensor(C * p.numpy() + D, dtype="float64")
        opt.step()
    saved, theta = opt.state_dict(), p.numpy().copy()
    p.grad = dlkit.tensor([1.0, 1.0, 1.0], dtype="float64")
    opt.step()                                     # the saved state is a copy: unaffected
    q = _param(theta)
    fresh = optim.Adam([q], lr=0.5)
    fresh.load_state_dict(saved)
    assert fresh.lr == 0.1 and fresh.state[0]["step"] == 2
    for _ in range(2):
        q.grad = dlkit.tensor(C * q.numpy() + D, dtype="float64")
        fresh.step()
    np.testing.assert_allclose(q.numpy(), reference[-1], rtol=1e-12)


def test_state_is_indexed_like_params():
    ps = [_param([1.0]), _param([2.0])]
    opt = optim.SGD(ps, lr=0.1, momentum=0.9)
    ps[1].grad = dlkit.tensor([1.0], dtype="float64")
    opt.step()
    assert opt.state[0] == {} and "momentum_buffer" in opt.state[1]


@pytest.mark.parametrize("make, message", [
    (lambda ps: optim.SGD(ps, lr=0.0), "lr"),
    (lambda ps: optim.SGD(ps, lr=-1.0), "lr"),
    (lambda ps: optim.Adam(ps, lr=float("nan")), "lr"),
    (lambda ps: optim.Adam(ps, lr=float("inf")), "lr"),
    (lambda ps: optim.Adam(ps, lr="0.1"), "lr"),
    (lambda ps: optim.Adam(ps, betas=(1.0, 0.999)), "betas[0]"),
    (lambda ps: optim.Adam(ps, betas=(0.9, -0.1)), "betas[1]"),
    (lambda ps: optim.Adam(ps, eps=-1e-8), "eps"),
    (lambda ps: optim.AdamW(ps, weight_decay=-0.1), "weight_decay"),
    (lambda ps: optim.SGD(ps, lr=0.1, weight_decay=-1), "weight_decay"),
    (lambda ps: optim.SGD(ps, lr=0.1, momentum=-0.5), "momentum"),
    (lambda ps: optim.SGD(ps, lr=0.1, nesterov=True), "nesterov"),
    (lambda ps: optim.RMSprop(ps, eps=-1.0), "eps"),
    (lambda ps: optim.Adagrad(ps, lr_decay=-1.0), "lr_decay"),
    (lambda ps: optim.Momentum(ps, lr=0.1, beta=1.5), "beta"),
    (lambda ps: optim.Nesterov(ps, lr=-0.1), "lr"),
])
def test_bad_hyperparameters_raise_naming_the_argument(make, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        make([_param()])


def test_empty_or_wrong_parameter_lists():
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="not a dlkit Tensor"):
        optim.SGD([np.zeros(3)], lr=0.1)


def test_graded_classes_are_marked_for_the_release():
    for name in ("SGD", "Momentum", "Nesterov", "Adagrad", "RMSprop", "Adam", "AdamW"):
        cls = getattr(optim, name)
        assert cls.__dlkit_graded__ == "03_optimization" and cls.__dlkit_piece__ == name
    assert optim.AdamW.__dict__["__dlkit_piece__"] == "AdamW"   # its own mark, not Adam's
    for name in ("Optimizer", "Newton", "StepLR", "CosineAnnealingLR", "clip_grad_norm"):
        assert "__dlkit_graded__" not in vars(getattr(optim, name)), name


def test_student_style_subclass_trains():
    """The base class supports what the notebook asks students to write."""

    class PlainGD(optim.Optimizer):
        def __init__(self, params, lr):
            super().__init__(params, lr=lr)

        def step(self):
            for p in self.params:
                if p.grad is not None:
                    p.data = p.data - self.lr * p.grad

    p = _param([4.0])
    opt = PlainGD([p], lr=0.25)
    for _ in range(2):
        p.grad = dlkit.tensor(2 * p.numpy(), dtype="float64")  # f = θ²
        opt.step()
    np.testing.assert_allclose(p.numpy(), [1.0])  # θ ← θ/2 twice
    assert opt.state_dict()["hyperparameters"] == {"lr": 0.25}


# -- the fused fast path equals the readable step -------------------------------------------------

def _fused(opt, fused):
    opt.fused = fused
    return opt


FUSED = {name: (lambda ps, f, name=name: _fused(CONFIGS[name](ps), f))
         for name in ("sgd", "sgd_momentum", "sgd_dampening_wd", "sgd_nesterov_wd", "adam", "adam_wd", "adamw")}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(FUSED))
def test_fused_path_equals_readable_path(name, dtype):
    readable = _trajectory(lambda ps: FUSED[name](ps, False), steps=6, dtype=dtype)
    fused = _trajectory(lambda ps: FUSED[name](ps, True), steps=6, dtype=dtype)
    rtol = 1e-13 if dtype == "float64" else 2e-6
    np.testing.assert_allclose(fused, readable, rtol=rtol, atol=0)
    if dtype == "float64":
        np.testing.assert_allclose(fused, REFERENCE[name][:4] + list(fused[4:]), rtol=1e-12, atol=1e-14)


def test_fused_and_readable_keep_the_same_state():
    states = []
    for fused in (False, True):
        p = _param()
        opt = optim.Adam([p], lr=0.1, weight_decay=0.1)
        opt.fused = fused
        for _ in range(3):
            p.grad = dlkit.tensor(C * p.numpy() + D, dtype="float64")
            opt.step()
        states.append(opt.state_dict()["state"][0])
    assert set(states[0]) == set(states[1]) == {"step", "exp_avg", "exp_avg_sq"}
    assert states[0]["step"] == states[1]["step"] == 3
    for k in ("exp_avg", "exp_avg_sq"):
        np.testing.assert_allclose(states[1][k], states[0][k], rtol=1e-13)


def test_fused_is_an_attribute_not_a_constructor_argument():
    # the constructors are the students' contract (the student kit has no fused path)
    import inspect
    for name in ("SGD", "Adam", "AdamW"):
        assert "fused" not in inspect.signature(getattr(optim, name)).parameters
        assert getattr(optim, name).fused is False
    opt = optim.Adam([_param()])
    opt.fused = True
    assert "fused" not in opt.state_dict()["hyperparameters"]
    with pytest.raises(TypeError):
        optim.Adam([_param()], fused=True)


# -- PyTorch's state keys, skipped parameters, no graph ---------------------------------------------

STATE_KEYS = {
    "sgd": set(), "sgd_momentum": {"momentum_buffer"}, "adam": {"step", "exp_avg", "exp_avg_sq"},
    "adamw": {"step", "exp_avg", "exp_avg_sq"}, "rmsprop": {"step", "square_avg"},
    "rmsprop_centered_momentum_wd": {"step", "square_avg", "momentum_buffer", "grad_avg"},
    "adagrad": {"step", "sum"}, "momentum_as_sgd": {"step", "u"}, "nesterov_as_sgd": {"u"},
}


@pytest.mark.parametrize("name", sorted(STATE_KEYS))
def test_state_keys_are_pytorchs_and_a_parameter_without_grad_is_skipped(name):
    a, b = _param(), _param([5.0, -5.0])
    opt = CONFIGS[name]([a, b])
    before = opt.state_dict()["state"].get(1)
    for _ in range(3):
        a.grad = dlkit.tensor(C * a.numpy() + D, dtype="float64")
        b.grad = None
        opt.step()
    np.testing.assert_array_equal(b.numpy(), [5.0, -5.0])
    assert set(opt.state[0]) == STATE_KEYS[name]
    after = opt.state_dict()["state"].get(1)
    if before is None:
        assert after is None and opt.state[1] == {}
    else:                                           # Adagrad: created eagerly, untouched
        assert after["step"] == before["step"] == 0
    if "step" in STATE_KEYS[name]:
        assert opt.state[0]["step"] == 3
    # the state holds constants (no graph), although g + λθ involves a parameter that requires grad
    for v in opt.state[0].values():
        if isinstance(v, dlkit.Tensor):
            assert v.op is None and not v.requires_grad


def test_skipped_parameter_keeps_its_own_step_count():
    # PyTorch counts steps per parameter: a parameter without a gradient on step 2 is at t = 2 after 3 steps
    a, b = _param([1.0]), _param([1.0])
    opt = optim.Adam([a, b], lr=0.1)
    for k in range(3):
        a.grad = dlkit.tensor([1.0], dtype="float64")
        b.grad = None if k == 1 else dlkit.tensor([1.0], dtype="float64")
        opt.step()
    assert opt.state[0]["step"] == 3 and opt.state[1]["step"] == 2
    np.testing.assert_allclose(b.numpy(), [1.0 - 2 * 0.1 / (1 + 1e-8)], rtol=1e-12)   # m̂ = v̂^½ = 1


def test_step_runs_without_recording_a_graph_even_in_a_student_subclass():
    class Recorder(optim.Optimizer):
        def __init__(self, params):
            super().__init__(params, lr=0.1)

        def step(self):
            self.seen = dlkit.is_grad_enabled()
            self.state[0]["x"] = self.params[0] * 2.0

    p = _param()
    opt = Recorder([p])
    opt.step()
    assert opt.seen is False and opt.state[0]["x"].op is None
    assert dlkit.is_grad_enabled()
    # what tools find is the student's own code (dlkit.student.plug checks its imports)
    import inspect
    assert Recorder.step.__func__.__code__.co_filename == __file__
    assert "self.seen" in inspect.getsource(Recorder.step)
    assert dlkit.student._cell_source(Recorder) is not None and "class Recorder" in dlkit.student._cell_source(Recorder)
    assert optim.Newton.step_records_graph and optim.Newton.step.__name__ == "step"


def test_param_groups_is_pytorchs_view():
    p = _param()
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    (group,) = opt.param_groups
    assert len(group["params"]) == 1 and group["params"][0] is p
    assert group["lr"] == 0.1 and group["momentum"] == 0.9 and group["nesterov"] is False


def test_the_package_is_split_by_role():
    import importlib
    for module, names in {
        "dlkit.optim.base": ["Optimizer"],
        "dlkit.optim.torch_family": ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"],
        "dlkit.optim.lecture": ["Momentum", "Nesterov", "Newton"],
        "dlkit.optim.schedulers": ["LRScheduler", "StepLR", "CosineAnnealingLR"],
    }.items():
        mod = importlib.import_module(module)
        for name in names:
            assert getattr(optim, name) is getattr(mod, name)
    # the readable steps use no backend kernel; only the fused module does
    import inspect
    for name in ("SGD", "Adam", "RMSprop", "Adagrad", "Momentum", "Nesterov"):
        src = inspect.getsource(getattr(optim, name))
        assert "backend." not in src and "_array" not in src, name


@pytest.mark.parametrize("name, kernel", [("sgd_momentum", "sgd_step"), ("adam", "adam_step_many"),
                                          ("adamw", "adam_step_many")])
def test_fused_flag_selects_the_backend_kernel_and_the_readable_path_uses_none(name, kernel, monkeypatch):
    calls = []
    backend = type(_param().backend)
    original = getattr(backend, kernel)

    def counting(self, *args, **kwargs):
        calls.append(kernel)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(backend, kernel, counting)
    _trajectory(lambda ps: FUSED[name](ps, False), steps=2)
    assert calls == []
    _trajectory(lambda ps: FUSED[name](ps, True), steps=2)
    assert calls == [kernel, kernel]
