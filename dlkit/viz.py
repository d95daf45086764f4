"""Plots the notebooks draw.  Every plotting function returns a matplotlib ``Figure`` (never
shows it).

matplotlib is imported inside the functions, so ``import dlkit`` stays light.  The last section
holds the notebooks' front-end helpers: :func:`interactive` (a figure redrawn in place by
sliders), :func:`implementation` (which implementation of a graded piece ran, for legends) and
:func:`continue_past_unfinished` (an unfinished task's test cell says "not done yet" and "Run All"
goes on).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from .autograd import Tensor, grad, tensor
from .nn import Linear, Module, Sequential

__all__ = ["plot_history", "plot_trajectories", "layer_stats", "plot_layer_stats", "interactive",
           "implementation", "continue_past_unfinished"]


def _figure(ncols: int = 1, figsize: tuple[float, float] | None = None):
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize or (5.0 * ncols, 3.8), layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def plot_history(history: Mapping[str, list]) -> Any:
    """Loss (left) and accuracy (right, when recorded) per epoch, train and validation."""
    has_acc = any(a is not None for a in history.get("train_acc", []) + history.get("val_acc", []))
    fig, axes = _figure(2 if has_acc else 1)
    panels = [("loss", axes[0])] + ([("acc", axes[1])] if has_acc else [])
    for key, ax in panels:
        for split in ("train", "val"):
            values = [v for v in history.get(f"{split}_{key}", []) if v is not None]
            if values:
                ax.plot(np.arange(1, len(values) + 1), values, marker="o", ms=3, label=split)
        best = getattr(history, "best_epoch", None)
        if best is not None:
            ax.axvline(best + 1, color="gray", ls=":", lw=1, label="best epoch")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy" if key == "acc" else "loss")
        ax.legend()
    return fig


def plot_trajectories(f: Callable[[np.ndarray], np.ndarray], trajectories: Mapping[str, np.ndarray],
                      xlim: tuple[float, float] | None = None, ylim: tuple[float, float] | None = None,
                      levels: int = 30, resolution: int = 200, title: str | None = None,
                      minimum: Any = None) -> Any:
    """Contours of a 2-D function with optimizer paths drawn on top.

    ``f`` maps points of shape (N, 2) to values (N,) (one point at a time also works);
    ``trajectories`` maps a label to an array (T, 2) of iterates θ₀, θ₁, ...
    Limits default to the trajectories' bounding box plus a margin.  ``minimum`` (a point (2,))
    is marked with a black star labelled θ*.
    """
    paths = {label: np.asarray(t, dtype=np.float64) for label, t in trajectories.items()}
    for label, t in paths.items():
        if t.ndim != 2 or t.shape[1] != 2:
            raise ValueError(f"plot_trajectories: trajectory {label!r} must have shape (T, 2), got {t.shape}")
    if xlim is None or ylim is None:
        pts = np.concatenate(list(paths.values())) if paths else np.zeros((1, 2))
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        pad = 0.15 * np.maximum(hi - lo, 1e-3) + 0.1
        xlim = xlim or (lo[0] - pad[0], hi[0] + pad[0])
        ylim = ylim or (lo[1] - pad[1], hi[1] + pad[1])
    xs, ys = np.linspace(*xlim, resolution), np.linspace(*ylim, resolution)
    X, Y = np.meshgrid(xs, ys)
    grid = np.column_stack([X.ravel(), Y.ravel()])
    try:
        Z = np.asarray(f(grid), dtype=np.float64).reshape(X.shape)
    except Exception:  # f handles one point at a time
        Z = np.array([float(f(p)) for p in grid]).reshape(X.shape)
    fig, (ax,) = _figure(1, (6.0, 5.0))
    ax.contour(X, Y, Z, levels=levels, cmap="viridis", linewidths=0.8)
    for label, t in paths.items():
        ax.plot(t[:, 0], t[:, 1], marker="o", ms=3, lw=1.5, label=label)
    if minimum is not None:
        ax.plot(*np.asarray(minimum, dtype=np.float64), "k*", ms=14, zorder=5, label="θ* (minimum)")
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    ax.set_xlabel("θ₁")
    ax.set_ylabel("θ₂")
    if title:
        ax.set_title(title)
    if paths or minimum is not None:
        ax.legend()
    return fig


def _flat_layers(model: Module) -> list[Module]:
    if isinstance(model, Sequential):
        return [leaf for m in model.layers for leaf in _flat_layers(m)]
    return [model]


def layer_stats(model: Module, X: Any, y: Any, loss_fn: Callable) -> dict[str, np.ndarray]:
    """Per-Linear-layer activation and gradient norms of a Sequential model (e.g. an MLP).

    For linear layer i (1-based): ``activation_norm[i-1]`` = ‖Z_i‖_F, the Frobenius norm of the
    block output (after its activation, i.e. the input of the next Linear; the logits for the
    last layer), and ``gradient_norm[i-1]`` = ‖∇_{W_i} loss‖_F on the batch (X, y).
    Parameters' ``.grad`` are left untouched.  Returns ``{"layer", "activation_norm",
    "gradient_norm"}`` with arrays of length L.
    """
    layers = _flat_layers(model)
    linears = [m for m in layers if isinstance(m, Linear)]
    if not linears:
        raise TypeError(f"layer_stats: {type(model).__name__} has no Linear layers "
                        "(it expects a Sequential model such as dlkit.nn.MLP)")
    x = X if isinstance(X, Tensor) else tensor(np.asarray(X), dtype=linears[0].weight.dtype)
    norms: list[float] = []
    seen_linear = False
    for layer in layers:
        if isinstance(layer, Linear):
            if seen_linear:
                norms.append(float(np.linalg.norm(x.numpy().astype(np.float64))))
            seen_linear = True
        x = layer(x)
    norms.append(float(np.linalg.norm(x.numpy().astype(np.float64))))
    loss = loss_fn(x, y)
    grads = grad(loss, [m.weight for m in linears])
    gnorms = [float(np.linalg.norm(g.numpy().astype(np.float64))) for g in grads]
    return {"layer": np.arange(1, len(linears) + 1), "activation_norm": np.array(norms),
            "gradient_norm": np.array(gnorms)}


def plot_layer_stats(stats: Mapping[str, Any]) -> Any:
    """Activation norms (left) and weight-gradient norms (right) against depth, log scale.

    ``stats``: one :func:`layer_stats` result, or ``{label: result}`` to compare several runs
    (e.g. σ² = 1/n, 2/n, 3/n).
    """
    runs = {"": stats} if "activation_norm" in stats else dict(stats)
    fig, axes = _figure(2)
    for label, s in runs.items():
        layers = np.asarray(s.get("layer", np.arange(1, len(s["activation_norm"]) + 1)))
        axes[0].plot(layers, s["activation_norm"], label=label or None)
        axes[1].plot(layers, s["gradient_norm"], label=label or None)
    for ax, name in zip(axes, ("activation norm ‖Z_i‖", "gradient norm ‖∇W_i‖")):
        ax.set_yscale("log")
        ax.set_xlabel("layer i")
        ax.set_ylabel(name)
        if len(runs) > 1 or "" not in runs:
            ax.legend()
    return fig


# ------------------------------------------------------------------------------------------------
# Notebook front-end helpers
# ------------------------------------------------------------------------------------------------

def interactive(draw: Callable[..., Any], **controls: Any) -> Any:
    """Show ``draw(**values)`` now, and replace it in place whenever one of the ``controls`` changes.

    ``draw`` returns a matplotlib ``Figure`` (close pyplot figures before returning them, so they
    are not shown a second time); ``controls`` maps ``draw``'s keyword names to ipywidgets (e.g.
    ``FloatSlider``; plain numbers are passed as they are).  The figure is shown once with a display
    id and later figures *update that display*, so a live front end shows exactly one figure under
    the controls.  Without ipywidgets the figure is shown once.  Returns the display handle.
    """
    from IPython.display import display

    def values() -> dict[str, Any]:
        return {k: getattr(c, "value", c) for k, c in controls.items()}

    try:
        import ipywidgets as widgets
    except ImportError:
        widgets = None
    sliders = [c for c in controls.values() if hasattr(c, "observe")]
    if widgets is not None and sliders:
        display(widgets.VBox(sliders))
    handle = display(draw(**values()), display_id=True)

    def redraw(_change: Any = None) -> None:
        fig = draw(**values())
        if handle is not None:
            handle.update(fig)

    for control in sliders:
        control.observe(redraw, names="value")
    return handle


def implementation(name: str, library_obj: Any) -> str:
    """Who wrote the ``name`` that ran: "your <name>" only when it is the student's own piece.

    ``library_obj`` is the library object that was called (e.g. ``dlkit.optim.Adam``).  In the
    instructor's dlkit it is the reference ("dlkit's Adam"); in the student kit it forwards to the
    piece plugged in this kernel or read from the saved notebook ("your Adam"), or to a published
    solution pack ("Adam (solution pack)").
    """
    from . import student
    from ._graded import is_kit_stub

    if not is_kit_stub(library_obj):
        return f"dlkit's {name}"
    source = student.where(name)
    if source in ("plugged", "notebook"):
        return f"your {name}"
    if source == "pack":
        return f"{name} (solution pack)"
    return f"{name} (not done yet)"


def _plugged_name(node: Any) -> str | None:
    """The piece name of a top-level ``dlkit.student.plug("<name>", ...)`` statement, else None."""
    import ast

    call = node.value if isinstance(node, ast.Expr) else None
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Attribute):
        return None
    owner = call.func.value
    if call.func.attr != "plug" or not (isinstance(owner, ast.Attribute) and owner.attr == "student"):
        return None
    first = call.args[0] if call.args else None
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else "?"


def _is_stub_raise(node: Any) -> bool:
    """A top-level ``raise NotImplementedError(...)``: what nbgrader leaves in an answer cell
    that defines a value rather than a function (e.g. a kernel's source string)."""
    import ast

    if not isinstance(node, ast.Raise) or node.exc is None:
        return False
    exc = node.exc
    if isinstance(exc, ast.Call):   # the stub has no message: a demo's own raise keeps failing
        if exc.args or exc.keywords:
            return False
        exc = exc.func
    return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"


class _UnfinishedTask:
    """IPython AST transformer: a check cell (a visible test cell: it has top-level ``assert``
    statements or ends with ``dlkit.student.plug``) whose run raises ``NotImplementedError`` (or a
    ``NameError``: the unfinished answer above defined nothing), and an answer cell that is still
    the bare stub, report "not done yet" instead of failing the cell."""

    def visit(self, tree: Any) -> Any:
        import ast

        body = getattr(tree, "body", [])
        plugged = [n for n in map(_plugged_name, body) if n]
        stub = any(map(_is_stub_raise, body))
        if not plugged and not stub and not any(isinstance(node, ast.Assert) for node in body):
            return tree
        name = plugged[-1] if plugged else None
        caught = "NotImplementedError" if stub and not plugged else "(NotImplementedError, NameError)"
        handler = ast.parse(
            "try:\n    pass\n"
            f"except {caught} as _dlkit_unfinished:\n"
            f"    __import__('dlkit.viz').viz._report_unfinished({name!r}, _dlkit_unfinished)\n"
        ).body[0]
        last = body[-1].end_lineno or body[-1].lineno
        for node in ast.walk(handler):  # tracebacks keep the cell's own line numbers
            if hasattr(node, "lineno"):
                node.lineno = node.end_lineno = last
        handler.body = body
        tree.body = [handler]
        return ast.fix_missing_locations(tree)


def _report_unfinished(name: str | None, exc: BaseException) -> None:
    """Show an unfinished task as an error output (nbgrader scores it 0, it is red) while the cell
    itself succeeds, so "Run All" continues to the next cell."""
    if name is None and isinstance(exc, NameError):  # the unfinished answer defined nothing
        name = getattr(exc, "name", None)
    if name is None:  # the function that raised: the stub's own name, or the piece not done
        name = getattr(exc, "piece", "") or None
        tb = exc.__traceback__
        while name is None and tb is not None:
            if tb.tb_next is None:
                name = tb.tb_frame.f_code.co_name
            tb = tb.tb_next
    if name in (None, "<module>"):
        name = "this answer"
    detail = str(exc).strip() or "its answer cell still raises NotImplementedError"
    text = f"{name} — {detail}. Its checks did not run; the cells below go on without it."
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - only called from inside IPython
        get_ipython = None
    shell = get_ipython() if get_ipython is not None else None
    if shell is None:
        print(f"not done yet: {text}")
        return
    shell._showtraceback(type(exc), exc, [f"\x1b[1;33mnot done yet\x1b[0m: {text}"])


def continue_past_unfinished() -> bool:
    """In an IPython kernel, let "Run All" go past unfinished tasks; True when it is switched on.

    A visible test cell whose answer is still the stub raises ``NotImplementedError``: with this
    switched on, the cell shows a red "not done yet" note (an error output, so nbgrader's
    validate still counts the test as failed) but completes, so the following cells run.  Any
    other exception — a wrong answer failing an assert — still fails the cell and stops "Run All".
    Outside IPython this does nothing.  Calling it twice installs it once.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    if not any(isinstance(t, _UnfinishedTask) for t in shell.ast_transformers):
        shell.ast_transformers.append(_UnfinishedTask())
    return True
