"""dlkit.init: scales against variance theory, exact draw order, gains, the depth experiment."""
from __future__ import annotations

import math

import numpy as np
import pytest

import dlkit
from dlkit import init, nn, optim
from dlkit.viz import layer_stats

BIG = (1000, 800)  # 800k draws: the sample variance is within ~0.3 % of the truth


def test_calculate_gain_matches_pytorch():
    assert init.calculate_gain("linear") == 1.0
    assert init.calculate_gain("identity") == 1.0
    assert init.calculate_gain("conv2d") == 1.0
    assert init.calculate_gain("sigmoid") == 1.0
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError, match="unsupported nonlinearity 'gelu'"):
        init.calculate_gain("gelu")


def test_lecture_gain_table():
    # the lectures' table: tanh r = √(6/(n_in+n_out)), sigmoid 4×, ReLU √2×
    a = math.sqrt(6 / (30 + 50))
    for name, factor in (("tanh", 1.0), ("sigmoid", 4.0), ("relu", math.sqrt(2))):
        W = init.xavier_uniform(30, 50, gain=init.lecture_gain(name), generator=np.random.default_rng(0))
        assert np.abs(W.numpy()).max() <= factor * a
        assert np.abs(W.numpy()).max() > 0.99 * factor * a
    with pytest.raises(ValueError, match="no lecture gain for 'selu'"):
        init.lecture_gain("selu")


THEORY = {  # name → (callable(rng) → Tensor of shape BIG, theoretical variance)
    "xavier_uniform": (lambda g: init.xavier_uniform(*BIG, gain=1.5, generator=g), 1.5**2 * 2 / sum(BIG)),
    "xavier_normal": (lambda g: init.xavier_normal(*BIG, gain=0.5, generator=g), 0.5**2 * 2 / sum(BIG)),
    "kaiming_uniform": (lambda g: init.kaiming_uniform(*BIG, generator=g), 2 / BIG[0]),
    "kaiming_normal": (lambda g: init.kaiming_normal(*BIG, generator=g), 2 / BIG[0]),
    "kaiming_normal_fan_out_tanh": (lambda g: init.kaiming_normal(*BIG, nonlinearity="tanh", mode="fan_out",
                                                                  generator=g), (5 / 3) ** 2 / BIG[1]),
    "kaiming_uniform_fan_out": (lambda g: init.kaiming_uniform(*BIG, mode="fan_out", generator=g), 2 / BIG[1]),
    "lecun_uniform": (lambda g: init.lecun_uniform(*BIG, generator=g), 1 / (3 * BIG[0])),
    "lecun_normal": (lambda g: init.lecun_normal(*BIG, generator=g), 1 / BIG[0]),
    "uniform": (lambda g: init.uniform(BIG, -2.0, 2.0, generator=g), 16 / 12),
    "normal": (lambda g: init.normal(BIG, 0.0, 3.0, generator=g), 9.0),
}


@pytest.mark.parametrize("name", sorted(THEORY))
def test_empirical_variance_matches_theory(name):
    make, variance = THEORY[name]
    W = make(np.random.default_rng(7))
    assert W.shape == BIG and W.dtype == np.float32
    w = W.numpy().astype(np.float64)
    assert abs(w.mean()) < 0.01 * math.sqrt(variance)
    assert w.var() == pytest.approx(variance, rel=0.02)


@pytest.mark.parametrize("name, bound", [
    ("xavier_uniform", math.sqrt(6 / 7)), ("kaiming_uniform", math.sqrt(2) * math.sqrt(3 / 3)),
    ("lecun_uniform", 1 / math.sqrt(3)),
])
def test_uniform_bounds(name, bound):
    w = getattr(init, name)(3, 4, generator=np.random.default_rng(0)).numpy()
    assert np.all(np.abs(w) <= np.float32(bound))


def test_exact_draw_order():
    """uniform: a·(2·random(shape) − 1); normal: std·standard_normal(shape) — then float32."""
    fi, fo = 5, 3
    g = lambda: np.random.default_rng(42)  # noqa: E731
    cases = {
        "xavier_uniform": (init.xavier_uniform(fi, fo, generator=g()),
                           math.sqrt(6 / 8) * (2 * g().random((fi, fo)) - 1)),
        "xavier_normal": (init.xavier_normal(fi, fo, gain=2.0, generator=g()),
                          2.0 * math.sqrt(2 / 8) * g().standard_normal((fi, fo))),
        "kaiming_uniform": (init.kaiming_uniform(fi, fo, generator=g()),
                            math.sqrt(2) * math.sqrt(3 / fi) * (2 * g().random((fi, fo)) - 1)),
        "kaiming_normal": (init.kaiming_normal(fi, fo, mode="fan_out", generator=g()),
                           math.sqrt(2) / math.sqrt(fo) * g().standard_normal((fi, fo))),
        "lecun_uniform": (init.lecun_uniform(fi, fo, generator=g()),
                          1 / math.sqrt(fi) * (2 * g().random((fi, fo)) - 1)),
    }
    for name, (got, expected) in cases.items():
        np.testing.assert_array_equal(got.numpy(), expected.astype(np.float32), err_msg=name)


def test_dtype_keyword_and_default_generator():
    W = init.kaiming_normal(4, 6, dtype="float64", generator=np.random.default_rng(0))
    assert W.dtype == np.float64 and W.shape == (4, 6)
    a, b = init.xavier_uniform(4, 6), init.xavier_uniform(4, 6)  # fresh unseeded generators
    assert a.shape == (4, 6) and not np.array_equal(a.numpy(), b.numpy())
    assert np.all(init.zeros((2, 3)).numpy() == 0) and np.all(init.ones(4).numpy() == 1)


@pytest.mark.parametrize("call, message", [
    (lambda: init.xavier_uniform(0, 3), "fan_in must be a positive integer"),
    (lambda: init.kaiming_normal(3, -1), "fan_out must be a positive integer"),
    (lambda: init.kaiming_uniform(3, 3, mode="fan_avg"), "mode must be 'fan_in' or 'fan_out'"),
    (lambda: init.kaiming_normal(3, 3, nonlinearity="swish"), "unsupported nonlinearity"),
    (lambda: init.normal((2, 2), std=-1.0), "std must be >= 0"),
    (lambda: init.uniform((2, 2), 1.0, 0.0), "low <= high"),
])
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_graded_initializers_are_marked_for_the_release():
    for name in ("xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal"):
        assert getattr(init, name).__dlkit_graded__ == "04_initialization"
    assert not hasattr(init.lecun_uniform, "__dlkit_graded__")  # nn.Linear's default stays whole


# -- symmetry: why we initialize randomly -------------------------------------------------------

def _train_steps(model, steps=5, seed=0):
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((32, 4)), rng.integers(0, 3, 32)
    opt = optim.SGD(model.parameters(), lr=0.5)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(X), y).backward()
        opt.step()


def test_zero_init_hidden_weights_never_move():
    model = nn.MLP([4, 6, 3], activation="tanh", initializer="zeros", generator=np.random.default_rng(0))
    _train_steps(model)
    W1, W2 = model[0].weight, model[2].weight
    assert np.all(W1.numpy() == 0) and np.all(W2.numpy() == 0)      # stuck: gradients are 0
    assert np.all(W1.grad.numpy() == 0)
    assert np.any(model[2].bias.numpy() != 0)                          # only the output bias learns


def test_constant_init_keeps_hidden_units_identical():
    same = lambda fi, fo, generator=None: np.full((fi, fo), 0.3)  # noqa: E731
    model = nn.MLP([4, 6, 3], activation="tanh", initializer=same, generator=np.random.default_rng(0))
    start = model[0].weight.numpy().copy()
    _train_steps(model)
    W1, G1, W2 = model[0].weight.numpy(), model[0].weight.grad.numpy(), model[2].weight.numpy()
    assert not np.allclose(W1, start)                                  # the weights do move ...
    np.testing.assert_array_equal(W1, np.repeat(W1[:, :1], 6, axis=1))  # ... but every hidden unit alike
    np.testing.assert_array_equal(G1, np.repeat(G1[:, :1], 6, axis=1))
    np.testing.assert_array_equal(W2, np.repeat(W2[:1], 6, axis=0))


# -- the lecture's depth experiment ------------------------------------------------------------

def _depth_stats(k: float, n: int = 100, depth: int = 50, seed: int = 0):
    """A depth-50 width-100 ReLU net without biases, W ~ N(0, k/n)."""
    rng = np.random.default_rng(seed)
    gaussian = lambda fi, fo, generator: math.sqrt(k / fi) * generator.standard_normal((fi, fo))  # noqa: E731
    model = nn.MLP([n] * (depth + 1), bias=False, initializer=gaussian, generator=rng)
    X, y = rng.standard_normal((64, n)), rng.integers(0, n, 64)
    return layer_stats(model, X, y, nn.CrossEntropyLoss())


def test_depth_experiment_variance_two_over_n_keeps_norms():
    stats = {k: _depth_stats(k) for k in (1.0, 2.0, 3.0)}
    ratio = {k: s["activation_norm"][-1] / s["activation_norm"][0] for k, s in stats.items()}
    # theory: the squared norm is multiplied by k/2 per ReLU layer → (k/2)^(49/2) over the depth
    assert 0.1 < ratio[2.0] < 10.0
    assert ratio[1.0] < 1e-4          # (1/2)^24.5 ≈ 4e-8
    assert ratio[3.0] > 1e3           # (3/2)^24.5 ≈ 2e4
    g = {k: s["gradient_norm"] for k, s in stats.items()}
    assert 0.1 < g[2.0][0] / g[2.0][-1] < 10.0
    assert g[1.0][0] < 1e-4 * g[2.0][0] and g[3.0][0] > 1e3 * g[2.0][0]
    assert len(stats[2.0]["activation_norm"]) == 50 and len(stats[2.0]["gradient_norm"]) == 50


def test_kaiming_normal_is_the_two_over_n_scale():
    W = init.kaiming_normal(100, 100, generator=np.random.default_rng(0)).numpy()
    ref = math.sqrt(2 / 100) * np.random.default_rng(0).standard_normal((100, 100))
    np.testing.assert_array_equal(W, ref.astype(np.float32))


# -- the contract notebook 04 grades (notebooks/GRADED.md): dtype, one draw, float64 then cast once ---

@pytest.mark.parametrize("name,kwargs,kind,scale", [
    ("xavier_uniform", {"gain": 2.0}, "uniform", 2.0 * math.sqrt(6 / 12)),
    ("xavier_normal", {}, "normal", math.sqrt(2 / 12)),
    ("kaiming_uniform", {"nonlinearity": "tanh", "mode": "fan_out"}, "uniform", 5 / 3 * math.sqrt(3 / 7)),
    ("kaiming_normal", {}, "normal", math.sqrt(2) / math.sqrt(5)),
    ("kaiming_normal", {"mode": "fan_out", "nonlinearity": "linear"}, "normal", 1 / math.sqrt(7)),
])
def test_graded_initializers_follow_the_dtype_and_draw_contract(name, kwargs, kind, scale):
    fn = getattr(init, name)
    assert getattr(fn, "__dlkit_piece__", None) == name and fn.__dlkit_graded__ == "04_initialization"
    g = np.random.default_rng(3)
    base = 2 * g.random((5, 7)) - 1 if kind == "uniform" else g.standard_normal((5, 7))
    after_one_draw = g.bit_generator.state
    gen = np.random.default_rng(3)
    W64 = fn(5, 7, generator=gen, dtype="float64", **kwargs)
    assert isinstance(W64, dlkit.Tensor) and W64.dtype == np.float64 and not W64.requires_grad
    np.testing.assert_allclose(W64.numpy(), scale * base, rtol=1e-14, atol=0)
    assert gen.bit_generator.state == after_one_draw, "exactly one draw of shape (fan_in, fan_out)"
    W32 = fn(5, 7, generator=np.random.default_rng(3), **kwargs)
    assert W32.dtype == np.float32
    np.testing.assert_array_equal(W32.numpy(), W64.numpy().astype(np.float32))   # cast once, at the end
