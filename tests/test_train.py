"""dlkit.train: the fit loop, early stopping, evaluation, and an MLP that learns the digits."""
from __future__ import annotations

import numpy as np
import pytest

from dlkit import data, nn, optim
from dlkit.train import History, evaluate, fit


def test_mlp_learns_digits_to_97_percent():
    rng = np.random.default_rng(0)
    (X, y), (Xt, yt) = data.load_digits("train"), data.load_digits("test")
    model = nn.MLP([64, 128, 10], normalization="batch", generator=rng)
    opt = optim.AdamW(model.parameters(), lr=1e-2)
    loader = data.DataLoader(data.TensorDataset(X, y), batch_size=64, shuffle=True, generator=rng)
    test_loader = data.DataLoader(data.TensorDataset(Xt, yt), batch_size=512)
    history = fit(model, nn.CrossEntropyLoss(), opt, loader, epochs=20, val_loader=test_loader,
                  scheduler=optim.CosineAnnealingLR(opt, T_max=20), progress=False)
    result = evaluate(model, test_loader, nn.CrossEntropyLoss())
    assert result["accuracy"] >= 0.97, result
    assert history["val_acc"][-1] == result["accuracy"]
    assert history["train_loss"][-1] < 0.1 * history["train_loss"][0]
    assert len(history["lr"]) == 20 and history["lr"][0] == 1e-2 and history["lr"][-1] < 1e-3


class GradientAscent(optim.Optimizer):
    """Makes the loss worse every step, so the best epoch is the first."""

    def __init__(self, params, lr):
        super().__init__(params, lr=lr)

    def step(self):
        for p in self.params:
            p.data = p.data + self.lr * p.grad


def test_early_stopping_restores_the_best_weights():
    X = np.array([[1.0], [2.0]], dtype=np.float32)
    Y = np.array([[2.0], [4.0]], dtype=np.float32)
    model = nn.Linear(1, 1, bias=False)
    model.weight.data = np.array([[1.0]])
    loader = data.DataLoader(data.TensorDataset(X, Y), batch_size=2)
    history = fit(model, nn.MSELoss(), GradientAscent(model.parameters(), lr=0.1), loader, epochs=10,
                  val_loader=loader, early_stopping=2, progress=False)
    # epoch 0: w = 1 + 0.1·dL/dw, dL/dw = mean(2(w x − y)x) = −5 at w = 1 → w₁ = 0.5 (best)
    assert history.best_epoch == 0 and history.stopped_early and history.epochs == 3
    np.testing.assert_allclose(model.weight.numpy(), [[0.5]], rtol=1e-6)
    assert history["val_loss"][0] < history["val_loss"][1] < history["val_loss"][2]
    assert history["train_acc"] == [None, None, None]          # regression: no accuracy


def test_history_without_validation_monitors_training_loss():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3)).astype(np.float32), rng.integers(0, 2, 40)
    model = nn.MLP([3, 8, 2], generator=rng)
    history = fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1),
                  data.DataLoader(data.TensorDataset(X, y), batch_size=8), epochs=3, progress=False)
    assert isinstance(history, History) and set(history) == {"train_loss", "train_acc", "val_loss", "val_acc", "lr"}
    assert len(history.train_loss) == 3 and history.val_loss == [] and history.best_epoch is not None
    assert all(0.0 <= a <= 1.0 for a in history["train_acc"])


def test_progress_bars_are_quiet_when_disabled(capsys):
    X, y = np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1])
    model = nn.Linear(2, 2)
    loader = data.DataLoader(data.TensorDataset(X, y), batch_size=2)
    fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), loader, epochs=2, progress=False)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), loader, epochs=2, progress=True)
    assert "epochs" in capsys.readouterr().err


def test_evaluate_restores_mode_and_uses_eval_statistics():
    model = nn.MLP([2, 4, 2], normalization="batch", dropout=0.5, generator=np.random.default_rng(0))
    X = np.random.default_rng(1).standard_normal((6, 2)).astype(np.float32)
    loader = data.DataLoader(data.TensorDataset(X, np.array([0, 1] * 3)), batch_size=1)  # batch 1: eval only
    result = evaluate(model, loader, nn.CrossEntropyLoss())
    assert model.training and 0.0 <= result["accuracy"] <= 1.0 and result["loss"] > 0
    assert evaluate(model, loader)["loss"] is None


def test_evaluate_averages_over_examples_not_batches():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((7, 3)).astype(np.float32), rng.integers(0, 2, 7)
    model = nn.MLP([3, 4, 2], generator=rng)
    full = float(nn.CrossEntropyLoss()(model(X), y).item())
    uneven = data.DataLoader(data.TensorDataset(X, y), batch_size=3)     # batches of 3, 3, 1
    assert evaluate(model, uneven, nn.CrossEntropyLoss())["loss"] == pytest.approx(full, rel=1e-5)
    correct = np.mean(model(X).numpy().argmax(1) == y)
    assert evaluate(model, uneven)["accuracy"] == pytest.approx(correct)


def test_fit_argument_errors():
    model = nn.Linear(2, 2)
    loader = data.DataLoader(data.TensorDataset(np.zeros((2, 2), np.float32), np.array([0, 1])))
    with pytest.raises(ValueError, match="early_stopping is a patience"):
        fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), loader, early_stopping=0)
    with pytest.raises(ValueError, match="epochs must be a non-negative integer"):
        fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), loader, epochs=-1)


def test_fit_keeps_nothing_of_a_batch_alive_into_the_next_forward():
    import gc
    import weakref

    class Watched(nn.Module):
        """An MLP that checks, at each forward, that the previous batch's graph is gone."""

        def __init__(self):
            self.net = nn.MLP([4, 8, 3], generator=np.random.default_rng(0))
            self.previous = []                  # weakrefs to the last output and its hidden layer

        def forward(self, x):
            assert all(r() is None for r in self.previous), "the previous batch is still alive"
            hidden = self.net[0](x)
            out = self.net[2](self.net[1](hidden))
            self.previous = [weakref.ref(out), weakref.ref(hidden)]
            return out

    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((32, 4)).astype(np.float32), rng.integers(0, 3, 32)
    model = Watched()
    gc.disable()                                # refcounting alone must free it
    try:
        fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1),
            data.DataLoader(data.TensorDataset(X, y), batch_size=8), epochs=2, progress=False)
    finally:
        gc.enable()
