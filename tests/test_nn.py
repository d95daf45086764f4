"""dlkit.nn: layers against closed forms, gradcheck and hand-computed running statistics."""
from __future__ import annotations

import math

import numpy as np
import pytest

import dlkit
from dlkit import nn


def _t(a, requires_grad=False, dtype="float64"):
    return dlkit.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad, dtype=dtype)


# -- Module mechanics -------------------------------------------------------------------------

class Block(nn.Module):
    def __init__(self, g):
        self.first = nn.Linear(3, 4, generator=g)
        self.extra = [nn.Linear(4, 4, generator=g), nn.ReLU()]
        self.scale = nn.Parameter(np.ones(4))
        self.shared = self.first          # the same module twice: its parameters count once
        self.not_a_param = dlkit.tensor([1.0])

    def forward(self, x):
        return self.extra[1](self.extra[0](self.first(x))) * self.scale


def test_parameter_discovery_through_attributes_lists_and_sequential():
    g = np.random.default_rng(0)
    model = nn.Sequential(Block(g), nn.Linear(4, 2, generator=g))
    names = [n for n, _ in model.named_parameters()]
    assert names == ["0.scale", "0.first.weight", "0.first.bias", "0.extra.0.weight", "0.extra.0.bias",
                     "1.weight", "1.bias"]
    assert len(model.parameters()) == 7
    assert all(p.requires_grad and isinstance(p, nn.Parameter) for p in model.parameters())
    assert model(np.ones((5, 3))).shape == (5, 2)


def test_train_eval_flags_are_recursive():
    model = nn.MLP([3, 4, 2], normalization="batch", dropout=0.5, generator=np.random.default_rng(0))
    assert all(m.training for m in model.modules())
    assert model.eval() is model and not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_state_dict_round_trip_and_npz(tmp_path):
    a = nn.MLP([3, 5, 2], normalization="batch", generator=np.random.default_rng(0))
    a(np.random.default_rng(1).standard_normal((8, 3)))   # moves the running statistics
    b = nn.MLP([3, 5, 2], normalization="batch", generator=np.random.default_rng(1))
    state = a.state_dict()
    assert list(state) == ["0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias",
                           "1.running_mean", "1.running_var"]
    b.load_state_dict(state)
    for (k, v), w in zip(state.items(), b.state_dict().values()):
        np.testing.assert_array_equal(v, w, err_msg=k)
    state["0.weight"][:] = 99.0                              # a copy, not a view of the model
    assert not np.any(a.state_dict()["0.weight"] == 99.0)
    c = nn.MLP([3, 5, 2], normalization="batch", generator=np.random.default_rng(2))
    a.save(tmp_path / "model.npz")
    c.load(tmp_path / "model.npz")
    x = np.random.default_rng(3).standard_normal((4, 3))
    a.eval(), c.eval()
    np.testing.assert_array_equal(a(x).numpy(), c(x).numpy())
    a.save(tmp_path / "noext")                               # numpy appends .npz; load finds it
    c.load(tmp_path / "noext")


def test_load_state_dict_errors():
    model = nn.Linear(2, 3, generator=np.random.default_rng(0))
    with pytest.raises(KeyError, match=r"missing keys \['bias'\], unexpected keys \['b'\]"):
        model.load_state_dict({"weight": np.zeros((2, 3)), "b": np.zeros(3)})
    with pytest.raises(ValueError, match=r"'weight' has shape \(3, 2\), the model expects \(2, 3\)"):
        model.load_state_dict({"weight": np.zeros((3, 2)), "bias": np.zeros(3)})


# -- discovery through dicts, nested containers, cycles (issue 18) -----------------------------

class Needle(nn.Module):
    """CMU dlsys hw2's eval-switch model: children kept in a dict holding a list."""

    def __init__(self, g):
        self.stuff = {"layer1": nn.Linear(4, 4, generator=g),
                      "layer2": [nn.Dropout(0.5, generator=g), nn.Sequential(nn.Linear(4, 4, generator=g))]}

    def forward(self, x):
        x = self.stuff["layer1"](x)
        for m in self.stuff["layer2"]:
            x = m(x)
        return x


def test_eval_reaches_modules_in_dicts_and_nested_lists():
    model = Needle(np.random.default_rng(0))
    inner = [model.stuff["layer1"], *model.stuff["layer2"], model.stuff["layer2"][1][0]]
    assert all(m.training for m in inner)
    model.eval()
    assert not any(m.training for m in inner), [type(m).__name__ for m in inner if m.training]
    x = np.ones((3, 4), dtype=np.float32)
    np.testing.assert_array_equal(model(x).numpy(), model(x).numpy())   # dropout is off
    model.train()
    assert all(m.training for m in inner)
    assert [n for n, _ in model.named_modules()] == ["", "stuff.layer1", "stuff.layer2.0", "stuff.layer2.1",
                                                     "stuff.layer2.1.0"]
    assert [n for n, _ in model.named_children()] == ["stuff.layer1", "stuff.layer2.0", "stuff.layer2.1"]


class Deep(nn.Module):
    """Parameters and modules in every kind of container, nested, plus a shared module and cycles."""

    def __init__(self, g):
        self.blocks = {"a": [nn.Linear(3, 3, generator=g), (nn.Linear(3, 2, generator=g), nn.ReLU())],
                       "b": {"norm": nn.BatchNorm1d(2), "scales": [nn.Parameter(np.ones(2))]}}
        self.head = nn.ModuleList([nn.Linear(2, 2, generator=g)])
        self.heads = nn.ModuleDict({"left": nn.Linear(2, 1, generator=g)})
        self.alias = self.blocks["a"][0]                 # shared: counted once, under its first name
        self.loop = [1.0]
        self.loop.append(self.loop)                      # a list that contains itself
        self.head[0].owner = self                        # a child that points back to its parent

    def forward(self, x):
        x = self.blocks["a"][0](x)
        x = self.blocks["a"][1][1](self.blocks["a"][1][0](x))
        x = self.blocks["b"]["norm"](x) * self.blocks["b"]["scales"][0]
        return self.heads["left"](self.head[0](x))


def test_nested_containers_give_stable_readable_keys_once_each():
    g = np.random.default_rng(1)
    model = Deep(g)
    keys = list(model.state_dict())
    assert keys == ["blocks.b.scales.0",
                    "blocks.a.0.weight", "blocks.a.0.bias", "blocks.a.1.0.weight", "blocks.a.1.0.bias",
                    "blocks.b.norm.weight", "blocks.b.norm.bias", "head.0.weight", "head.0.bias",
                    "heads.left.weight", "heads.left.bias",
                    "blocks.b.norm.running_mean", "blocks.b.norm.running_var"]
    assert keys == list(Deep(np.random.default_rng(2)).state_dict())      # deterministic
    assert len(model.parameters()) == len({id(p) for p in model.parameters()}) == 11
    assert len(list(model.modules())) == len({id(m) for m in model.modules()}) == 9
    assert model.eval() is model and not any(m.training for m in model.modules())


def test_nested_models_round_trip_through_state_dict(tmp_path):
    a, b = Deep(np.random.default_rng(3)), Deep(np.random.default_rng(4))
    x = np.random.default_rng(5).standard_normal((6, 3)).astype(np.float32)
    a(x)                                                 # moves the running statistics
    a.blocks["b"]["scales"][0].data = np.array([2.0, 3.0], dtype=np.float32)
    b.load_state_dict(a.state_dict())
    for (k, v), (k2, w) in zip(a.state_dict().items(), b.state_dict().items()):
        assert k == k2
        np.testing.assert_array_equal(v, w, err_msg=k)
    a.eval(), b.eval()
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    c = Deep(np.random.default_rng(6))
    a.save(tmp_path / "deep.npz")
    c.load(tmp_path / "deep.npz").eval()
    np.testing.assert_array_equal(a(x).numpy(), c(x).numpy())
    with pytest.raises(KeyError, match="blocks.b.scales.0"):
        c.load_state_dict({k: v for k, v in a.state_dict().items() if k != "blocks.b.scales.0"})


def test_optimizer_from_parameters_updates_every_nested_parameter_once():
    model = Deep(np.random.default_rng(7))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    x = np.random.default_rng(8).standard_normal((5, 3)).astype(np.float32)
    model(x).sum().backward()
    grads = {n: p.grad.numpy().copy() for n, p in model.named_parameters()}
    assert set(grads) == {k for k in before if "running" not in k}
    dlkit.optim.SGD(model.parameters(), lr=0.5).step()
    after = model.state_dict()
    for name, g in grads.items():
        np.testing.assert_allclose(after[name], before[name] - 0.5 * g, rtol=1e-6, atol=1e-7, err_msg=name)


def test_module_list_and_dict_behave_like_pytorchs():
    g = np.random.default_rng(9)
    layers = nn.ModuleList([nn.Linear(2, 2, generator=g)]).append(nn.ReLU())
    layers.insert(0, nn.Identity())
    assert [type(m).__name__ for m in layers] == ["Identity", "Linear", "ReLU"] and len(layers) == 3
    assert [n for n, _ in layers.named_parameters()] == ["1.weight", "1.bias"]
    heads = nn.ModuleDict({"a": nn.Linear(2, 1, generator=g)})
    heads["b"] = nn.Linear(2, 3, generator=g)
    assert list(heads) == ["a", "b"] and "b" in heads and len(heads) == 2
    assert [n for n, _ in heads.named_parameters()] == ["a.weight", "a.bias", "b.weight", "b.bias"]
    with pytest.raises(TypeError, match="not a Module"):
        layers.append(np.ones(2))
    with pytest.raises(TypeError, match="not a Module"):
        heads["c"] = "relu"
    with pytest.raises(KeyError, match="without '.'"):
        heads["c.d"] = nn.ReLU()
    with pytest.raises(NotImplementedError, match="ModuleList does not implement forward"):
        layers(np.ones(2))


# -- Linear -------------------------------------------------------------------------------------

def test_linear_default_init_is_pytorch_and_draws_weights_then_biases():
    lin = nn.Linear(5, 3, generator=np.random.default_rng(0))
    rng = np.random.default_rng(0)
    bound = 1 / math.sqrt(5)
    W = bound * (2 * rng.random((5, 3)) - 1)
    b = bound * (2 * rng.random(3) - 1)
    np.testing.assert_array_equal(lin.weight.numpy(), W.astype(np.float32))
    np.testing.assert_array_equal(lin.bias.numpy(), b.astype(np.float32))
    assert lin.weight.shape == (5, 3) and lin.bias.shape == (3,) and lin.weight.dtype == np.float32


def test_linear_forward_backward_matches_matrix_form():
    rng = np.random.default_rng(1)
    lin = nn.Linear(4, 3, generator=rng, dtype="float64")
    X = rng.standard_normal((6, 4))
    out = lin(_t(X))
    np.testing.assert_allclose(out.numpy(), X @ lin.weight.numpy() + lin.bias.numpy())
    G = rng.standard_normal((6, 3))
    out.backward(G)
    np.testing.assert_allclose(lin.weight.grad.numpy(), X.T @ G)
    np.testing.assert_allclose(lin.bias.grad.numpy(), G.sum(axis=0))
    assert nn.Linear(4, 3, bias=False).bias is None


def test_linear_shape_error_names_layer_expected_and_got():
    lin = nn.Linear(4, 3)
    with pytest.raises(ValueError, match=r"Linear\(in_features=4, out_features=3\): expected input of "
                                         r"shape \(m, 4\), got \(2, 5\)"):
        lin(np.ones((2, 5)))
    with pytest.raises(TypeError, match=r"Linear\(in_features=4, out_features=3\): input dtype float64 "
                                        r"differs from the weights' float32"):
        lin(dlkit.tensor(np.ones((2, 4)), dtype="float64"))
    with pytest.raises(ValueError, match="in_features must be a positive integer"):
        nn.Linear(0, 3)


# -- BatchNorm1d ----------------------------------------------------------------------------------

def _bn_reference(x, gamma, beta, eps):
    mu = x.mean(0)
    var = x.var(0)
    xhat = (x - mu) / np.sqrt(var + eps)
    return gamma * xhat + beta, xhat, var


def test_batchnorm_training_forward_and_backward_closed_form():
    rng = np.random.default_rng(0)
    m, d, eps = 8, 3, 1e-5
    x = rng.standard_normal((m, d)) * 3 + 1
    bn = nn.BatchNorm1d(d, dtype="float64")
    bn.weight.data = np.array([1.0, 2.0, -0.5])
    bn.bias.data = np.array([0.0, 1.0, 3.0])
    gamma, beta = bn.weight.numpy(), bn.bias.numpy()
    X = _t(x, requires_grad=True)
    out = bn(X)
    ref, xhat, var = _bn_reference(x, gamma, beta, eps)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12)
    G = rng.standard_normal((m, d))
    out.backward(G)
    # the closed form of the batch-norm backward pass (biased variance)
    dxhat = G * gamma
    dx = (dxhat - dxhat.mean(0) - xhat * (dxhat * xhat).mean(0)) / np.sqrt(var + eps)
    np.testing.assert_allclose(X.grad.numpy(), dx, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(bn.weight.grad.numpy(), (G * xhat).sum(0), rtol=1e-12)
    np.testing.assert_allclose(bn.bias.grad.numpy(), G.sum(0), rtol=1e-12)


def test_batchnorm_gradcheck():
    bn = nn.BatchNorm1d(4, dtype="float64")
    bn.weight.data = np.array([0.5, 1.0, 2.0, -1.0])
    x = _t(np.random.default_rng(1).standard_normal((5, 4)), requires_grad=True)
    result = dlkit.gradcheck(lambda x: bn(x), x)
    assert result.ok, result


def test_batchnorm_running_statistics_hand_computed():
    x1 = np.array([[1.0, 2.0], [3.0, 6.0]])          # mean (2, 4), biased var (1, 4), unbiased (2, 8)
    x2 = np.array([[0.0, 0.0], [0.0, 4.0], [3.0, 2.0]])  # mean (1, 2), unbiased var (3, 4)
    bn = nn.BatchNorm1d(2, momentum=0.1, dtype="float64")
    bn(x1)
    np.testing.assert_allclose(bn.running_mean.numpy(), [0.2, 0.4])          # 0.9·0 + 0.1·mean
    np.testing.assert_allclose(bn.running_var.numpy(), [0.9 + 0.2, 0.9 + 0.8])  # 0.9·1 + 0.1·unbiased
    bn(x2)
    np.testing.assert_allclose(bn.running_mean.numpy(), [0.9 * 0.2 + 0.1, 0.9 * 0.4 + 0.2])
    np.testing.assert_allclose(bn.running_var.numpy(), [0.9 * 1.1 + 0.3, 0.9 * 1.7 + 0.4])
    biased = nn.BatchNorm1d(2, momentum=0.5, unbiased_running_var=False, dtype="float64")
    biased(x1)
    np.testing.assert_allclose(biased.running_var.numpy(), [0.5 + 0.5, 0.5 + 2.0])


def test_batchnorm_eval_uses_running_statistics():
    bn = nn.BatchNorm1d(2, eps=0.0 + 1e-5, dtype="float64")
    bn.running_mean.data = np.array([1.0, -2.0])
    bn.running_var.data = np.array([4.0, 0.25])
    bn.weight.data = np.array([2.0, 1.0])
    bn.bias.data = np.array([0.5, 0.0])
    bn.eval()
    x = np.array([[3.0, -1.0]])                      # batch of one is fine in eval mode
    expected = [2.0 * (3 - 1) / math.sqrt(4 + 1e-5) + 0.5, (-1 + 2) / math.sqrt(0.25 + 1e-5)]
    np.testing.assert_allclose(bn(x).numpy(), [expected], rtol=1e-12)
    np.testing.assert_allclose(bn.running_mean.numpy(), [1.0, -2.0])  # eval does not update


def test_batchnorm_errors():
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match="batch size 1 in training mode"):
        bn(np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"BatchNorm1d\(num_features=3\): expected input of shape \(m, 3\), got \(4, 2\)"):
        bn(np.ones((4, 2)))


# -- LayerNorm1d ----------------------------------------------------------------------------------

def test_layernorm_forward_closed_form_and_gradcheck():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 5)) * 2 + 3
    ln = nn.LayerNorm1d(5, dtype="float64")
    ln.weight.data = rng.standard_normal(5)
    ln.bias.data = rng.standard_normal(5)
    mu, var = x.mean(1, keepdims=True), x.var(1, keepdims=True)
    expected = (x - mu) / np.sqrt(var + 1e-5) * ln.weight.numpy() + ln.bias.numpy()
    np.testing.assert_allclose(ln(x).numpy(), expected, rtol=1e-12)
    assert dlkit.gradcheck(lambda t: ln(t), _t(x, requires_grad=True)).ok
    ln.eval()
    np.testing.assert_allclose(ln(x).numpy(), expected, rtol=1e-12)  # same in eval mode
    with pytest.raises(ValueError, match=r"LayerNorm1d\(dim=5\): expected input of shape \(m, 5\), got \(4, 3\)"):
        ln(np.ones((4, 3)))


# -- Dropout ----------------------------------------------------------------------------------------

def test_dropout_mask_comes_from_the_generator_and_scales_kept_units():
    x = np.arange(1.0, 13.0).reshape(3, 4)
    drop = nn.Dropout(0.25, generator=np.random.default_rng(5))
    out = drop(_t(x)).numpy()
    mask = np.random.default_rng(5).random((3, 4)) >= 0.25
    np.testing.assert_allclose(out, x * mask / 0.75, rtol=1e-15)
    drop.eval()
    np.testing.assert_array_equal(drop(_t(x)).numpy(), x)


def test_dropout_backward_and_mean_preservation():
    drop = nn.Dropout(0.4, generator=np.random.default_rng(0))
    x = _t(np.ones((400, 500)), requires_grad=True)
    out = drop(x)
    kept = out.numpy() != 0
    assert out.numpy().mean() == pytest.approx(1.0, rel=0.01)          # E[y] = x
    assert kept.mean() == pytest.approx(0.6, abs=0.005)
    np.testing.assert_allclose(out.numpy()[kept], 1 / 0.6, rtol=1e-12)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), kept / 0.6, rtol=1e-12)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, "0.5"])
def test_dropout_rejects_bad_probability(p):
    with pytest.raises(ValueError, match="drop probability"):
        nn.Dropout(p)


def test_dropout_zero_is_identity():
    x = _t(np.ones((2, 2)))
    assert nn.Dropout(0.0)(x) is x


# -- losses ---------------------------------------------------------------------------------------

def test_cross_entropy_value_gradient_and_stability():
    rng = np.random.default_rng(3)
    Z = rng.standard_normal((6, 4))
    y = np.array([0, 3, 1, 1, 2, 0])
    logits = _t(Z, requires_grad=True)
    loss = nn.CrossEntropyLoss()(logits, y)
    logp = Z - np.log(np.exp(Z).sum(1, keepdims=True))
    assert loss.shape == () and float(loss.item()) == pytest.approx(-logp[np.arange(6), y].mean(), rel=1e-12)
    loss.backward()
    P = np.exp(logp)
    P[np.arange(6), y] -= 1
    np.testing.assert_allclose(logits.grad.numpy(), P / 6, rtol=1e-10, atol=1e-14)
    assert dlkit.gradcheck(lambda z: nn.CrossEntropyLoss()(z, y), _t(Z, requires_grad=True)).ok
    big = nn.CrossEntropyLoss()(_t([[1e4, 0.0], [0.0, 1e4]], dtype="float32"), np.array([0, 0]))
    assert float(big.item()) == pytest.approx(5e3, rel=1e-6)       # finite: computed stably


def test_cross_entropy_errors():
    loss = nn.CrossEntropyLoss()
    with pytest.raises(TypeError, match="labels must be integer class indices"):
        loss(_t(np.zeros((2, 3))), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"expected logits \(m, k\) and labels \(m,\)"):
        loss(_t(np.zeros((2, 3))), np.array([0, 1, 2]))


def test_mse_loss_value_gradient_and_shape_check():
    p = _t([[1.0, 2.0], [3.0, 5.0]], requires_grad=True)
    t = np.array([[0.0, 2.0], [1.0, 1.0]])
    loss = nn.MSELoss()(p, t)
    assert float(loss.item()) == pytest.approx((1 + 0 + 4 + 16) / 4)
    loss.backward()
    np.testing.assert_allclose(p.grad.numpy(), 2 * (p.numpy() - t) / 4)
    with pytest.raises(ValueError, match=r"prediction shape \(2, 2\) != target shape \(2,\)"):
        nn.MSELoss()(p, np.zeros(2))


# -- small modules and the MLP builder --------------------------------------------------------------

def test_activations_identity_residual_flatten():
    x = np.array([[-1.0, 0.5], [2.0, -3.0]])
    np.testing.assert_allclose(nn.ReLU()(_t(x)).numpy(), np.maximum(x, 0))
    np.testing.assert_allclose(nn.Tanh()(_t(x)).numpy(), np.tanh(x))
    np.testing.assert_allclose(nn.Sigmoid()(_t(x)).numpy(), 1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(nn.Identity()(_t(x)).numpy(), x)
    np.testing.assert_allclose(nn.Residual(nn.ReLU())(_t(x)).numpy(), x + np.maximum(x, 0))
    assert nn.Flatten()(_t(np.zeros((2, 3, 4)))).shape == (2, 12)
    with pytest.raises(ValueError, match="Residual: fn changed the shape"):
        nn.Residual(nn.Linear(2, 3))(_t(x, dtype="float32"))


def test_mlp_structure_and_options():
    mlp = nn.MLP([8, 16, 16, 3], activation="tanh", normalization="layer", dropout=0.1,
                 generator=np.random.default_rng(0))
    kinds = [type(m).__name__ for m in mlp]
    assert kinds == ["Linear", "LayerNorm1d", "Tanh", "Dropout", "Linear", "LayerNorm1d", "Tanh", "Dropout", "Linear"]
    assert mlp(np.ones((5, 8))).shape == (5, 3)
    kaiming = nn.MLP([50, 40, 3], initializer="kaiming_normal", generator=np.random.default_rng(1))
    rng = np.random.default_rng(1)
    expected = math.sqrt(2 / 50) * rng.standard_normal((50, 40))
    np.testing.assert_array_equal(kaiming[0].weight.numpy(), expected.astype(np.float32))
    np.testing.assert_array_equal(kaiming[0].bias.numpy(), np.zeros(40))
    last = 1 / math.sqrt(40) * rng.standard_normal((40, 3))       # "linear" gain for the logits layer
    np.testing.assert_array_equal(kaiming[2].weight.numpy(), last.astype(np.float32))
    custom = nn.MLP([2, 3], initializer=lambda fi, fo, generator: np.full((fi, fo), 0.5))
    np.testing.assert_array_equal(custom[0].weight.numpy(), np.full((2, 3), 0.5))


def test_mlp_same_seed_same_model():
    a = nn.MLP([4, 8, 2], generator=np.random.default_rng(9))
    b = nn.MLP([4, 8, 2], generator=np.random.default_rng(9))
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(v, w, err_msg=k)


@pytest.mark.parametrize("kwargs, message", [
    (dict(widths=[4]), "at least input and output"),
    (dict(widths=[4, 2], activation="gelu"), "unknown activation 'gelu'"),
    (dict(widths=[4, 2], normalization="group"), "normalization must be"),
    (dict(widths=[4, 3, 2], initializer="orthogonal"), "unknown initializer 'orthogonal'"),
])
def test_mlp_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        nn.MLP(**kwargs)
