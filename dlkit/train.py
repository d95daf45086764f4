"""The training loop: ``fit`` runs epochs with a progress bar and returns a ``History``.

One epoch = for every minibatch (X, y): ``loss = loss_fn(model(X), y)``,
``optimizer.zero_grad()``, ``loss.backward()``, ``optimizer.step()``.  Losses are averaged
over examples (batch losses weighted by batch size); accuracy is reported when the model
outputs (m, k) scores and the labels are integers.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from .autograd import Tensor, no_grad
from .nn import Module

__all__ = ["History", "fit", "evaluate"]


class History(dict):
    """Per-epoch metrics: ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``, ``lr`` (lists).

    Attributes: ``best_epoch`` (0-based index of the lowest monitored loss: validation loss
    when there is a validation set, else training loss), ``stopped_early`` (bool).
    """

    def __init__(self) -> None:
        super().__init__(train_loss=[], train_acc=[], val_loss=[], val_acc=[], lr=[])
        self.best_epoch: int | None = None
        self.stopped_early = False

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def epochs(self) -> int:
        return len(self["train_loss"])


def _batch_stats(out: Tensor, y: Tensor) -> int | None:
    """Number of correct argmax predictions, or None when accuracy does not apply."""
    if out.ndim != 2 or y.ndim != 1 or y.dtype.kind not in "iu":
        return None
    return int(np.sum(out.numpy().argmax(axis=1) == y.numpy()))


def _run_epoch(model: Module, loss_fn, loader: Iterable, optimizer=None, bar=None) -> tuple[float, float | None]:
    """One pass over ``loader``; trains when ``optimizer`` is given.  Returns (mean loss, accuracy)."""
    total_loss, correct, n, acc_ok = 0.0, 0, 0, True
    for batch in loader:
        X, y = batch[0], batch[1]
        m = X.shape[0]
        out = model(X)
        loss = loss_fn(out, y) if loss_fn is not None else None
        if optimizer is not None:
            optimizer.zero_grad()
            loss.backward(retain_graph=False)    # frees the graph before the update
            optimizer.step()
        if loss is not None:
            value = float(loss.item())
            total_loss += value * m
        c = _batch_stats(out, y)
        acc_ok = acc_ok and c is not None
        correct += c or 0
        n += m
        if bar is not None:
            bar.update(1)
            if loss is not None:
                bar.set_postfix(loss=f"{value:.4f}", refresh=False)
        del out, loss                           # nothing of this batch lives into the next forward
    if n == 0:
        raise ValueError("the data loader yielded no batches (empty dataset, or drop_last with "
                         "fewer examples than batch_size)")
    return (total_loss / n if loss_fn is not None else math.nan), (correct / n if acc_ok else None)


def evaluate(model: Module, loader: Iterable, loss_fn=None) -> dict[str, float | None]:
    """``{"loss", "accuracy"}`` of ``model`` on ``loader`` in eval mode, without gradients.

    ``loss`` is None without ``loss_fn``; ``accuracy`` is None for non-classification outputs.
    The model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            loss, acc = _run_epoch(model, loss_fn, loader)
    finally:
        model.train(was_training)
    return {"loss": loss if loss_fn is not None else None, "accuracy": acc}


def fit(model: Module, loss_fn, optimizer, train_loader: Iterable, epochs: int = 10,
        val_loader: Iterable | None = None, early_stopping: int | None = None, progress: bool = True,
        scheduler=None) -> History:
    """Train ``model`` for ``epochs`` epochs and return its :class:`History`.

    ``val_loader``: evaluated after every epoch (eval mode, no gradients).
    ``early_stopping``: patience — stop after that many epochs without a lower monitored loss
    (validation loss if ``val_loader`` else training loss), then restore the best weights.
    ``scheduler``: its ``step()`` is called after every epoch.
    ``progress``: two tqdm bars, one over epochs and one over the current epoch's batches (reset
    each epoch, so a long run draws two widgets, not one per epoch); False is silent.
    """
    from tqdm.auto import tqdm

    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"fit: epochs must be a non-negative integer, got {epochs!r}")
    if early_stopping is not None and (not isinstance(early_stopping, (int, np.integer)) or early_stopping < 1):
        raise ValueError(f"fit: early_stopping is a patience (a positive integer of epochs), got {early_stopping!r}")
    history = History()
    best_loss, best_state, waited = math.inf, None, 0
    n_batches = len(train_loader) if hasattr(train_loader, "__len__") else None
    epoch_bar = tqdm(range(epochs), desc="epochs", disable=not progress, leave=True)
    batch_bar = tqdm(total=n_batches, desc="batches", leave=False, disable=not progress)
    for epoch in epoch_bar:
        model.train()
        batch_bar.reset(total=n_batches)
        batch_bar.set_description(f"epoch {epoch + 1}")
        train_loss, train_acc = _run_epoch(model, loss_fn, train_loader, optimizer, batch_bar)
        history["train_loss"].append(train_loss)
        history["train_acc"].append(train_acc)
        history["lr"].append(getattr(optimizer, "lr", None))
        monitored = train_loss
        if val_loader is not None:
            val = evaluate(model, val_loader, loss_fn)
            history["val_loss"].append(val["loss"])
            history["val_acc"].append(val["accuracy"])
            monitored = val["loss"]
        if scheduler is not None:
            scheduler.step()
        if monitored < best_loss:
            best_loss, history.best_epoch, waited = monitored, epoch, 0
            if early_stopping is not None:
                best_state = model.state_dict()
        else:
            waited += 1
        postfix = {"loss": f"{train_loss:.4f}"}
        if train_acc is not None:
            postfix["acc"] = f"{train_acc:.3f}"
        if val_loader is not None:
            postfix["val_loss"] = f"{history['val_loss'][-1]:.4f}"
            if history["val_acc"][-1] is not None:
                postfix["val_acc"] = f"{history['val_acc'][-1]:.3f}"
        epoch_bar.set_postfix(postfix)
        if early_stopping is not None and waited >= early_stopping:
            history.stopped_early = True
            break
    batch_bar.close()
    epoch_bar.close()
    if early_stopping is not None and best_state is not None:
        model.load_state_dict(best_state)
    return history
