"""dlkit.viz: every plot returns a Figure; matplotlib is imported lazily."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from dlkit import data, nn, viz
from dlkit.train import History


def test_import_dlkit_does_not_import_matplotlib():
    code = "import sys, dlkit, dlkit.viz; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_plot_history():
    h = History()
    h["train_loss"] += [1.0, 0.5, 0.4]
    h["val_loss"] += [1.1, 0.6, 0.7]
    h["train_acc"] += [0.5, 0.8, 0.9]
    h["val_acc"] += [0.4, 0.7, 0.6]
    h.best_epoch = 1
    fig = viz.plot_history(h)
    assert type(fig).__name__ == "Figure" and len(fig.axes) == 2
    assert len(fig.axes[0].get_lines()) == 3                 # train, val, best-epoch marker
    fig = viz.plot_history({"train_loss": [1.0, 0.5], "train_acc": [None, None]})
    assert len(fig.axes) == 1


def test_plot_trajectories():
    q = data.quadratic(2, condition=10.0, generator=np.random.default_rng(0))
    path = np.array([[1.0, 1.0], [0.5, 0.2], list(q.minimizer)])
    fig = viz.plot_trajectories(q.f, {"GD": path, "Newton": path[[0, 2]]}, title="quadratic")
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["GD", "Newton"]
    np.testing.assert_allclose(ax.get_lines()[0].get_xydata(), path)
    one_point = viz.plot_trajectories(lambda p: float(p @ p), {"x": path}, xlim=(-2, 2), ylim=(-2, 2))
    assert one_point.axes[0].get_xlim() == (-2, 2)
    with pytest.raises(ValueError, match=r"must have shape \(T, 2\)"):
        viz.plot_trajectories(q.f, {"bad": np.zeros((3, 3))})


def test_layer_stats_and_plot():
    rng = np.random.default_rng(0)
    model = nn.MLP([5, 7, 7, 3], activation="tanh", generator=rng)
    X, y = rng.standard_normal((9, 5)), rng.integers(0, 3, 9)
    stats = viz.layer_stats(model, X, y, nn.CrossEntropyLoss())
    assert list(stats["layer"]) == [1, 2, 3]
    h1 = np.tanh(X @ model[0].weight.numpy() + model[0].bias.numpy())
    assert stats["activation_norm"][0] == pytest.approx(np.linalg.norm(h1), rel=1e-5)
    assert all(p.grad is None for p in model.parameters())            # .grad untouched
    model(X.astype(np.float32)).sum()  # still usable
    loss = nn.CrossEntropyLoss()(model(X), y)
    loss.backward()
    assert stats["gradient_norm"][2] == pytest.approx(np.linalg.norm(model[4].weight.grad.numpy()), rel=1e-5)
    fig = viz.plot_layer_stats({"a": stats, "b": stats})
    assert len(fig.axes) == 2 and len(fig.axes[0].get_lines()) == 2 and fig.axes[0].get_yscale() == "log"
    assert len(viz.plot_layer_stats(stats).axes[1].get_lines()) == 1
    with pytest.raises(TypeError, match="no Linear layers"):
        viz.layer_stats(nn.ReLU(), X, y, nn.CrossEntropyLoss())
