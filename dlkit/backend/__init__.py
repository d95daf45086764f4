"""Backend selection: which device dlkit's arrays live on.

``DLKIT_BACKEND=auto|numpy|cuda`` (read at first use) or ``dlkit.set_backend(name)``.

* ``numpy`` is always available.
* ``cuda`` needs pycuda, an NVIDIA driver and a device, and compiles ``kernels/*.cu``.
  Asking for it explicitly when any of those is missing raises ``BackendUnavailable``
  whose message says which one it was.
* ``auto`` (the default) uses CUDA only when it works, else numpy, and says why once.

Importing dlkit never touches the GPU stack; the CUDA probe runs on first use.
"""
from __future__ import annotations

import os
import warnings

from .base import Backend
from .numpy_backend import NumpyBackend

__all__ = ["Backend", "BackendUnavailable", "BackendFallbackWarning", "get_backend", "set_backend",
           "available_backends"]

CHOICES = ("auto", "numpy", "cuda")


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run here; the message says why."""


class BackendFallbackWarning(UserWarning):
    """``auto`` chose numpy because CUDA cannot run here (one readable line, once per process)."""


def _one_line(message, category, filename, lineno, line=None):  # noqa: ARG001 - formatwarning's
    return f"{message}\n"


def _announce_fallback(reason: BackendUnavailable) -> None:
    """Say once, as one plain line (no file name, no source line), why auto chose numpy.

    It stays a warning (``BackendFallbackWarning``, a ``UserWarning``) so that filters and
    ``pytest.warns`` see it; only its printed form is shortened.
    """
    text = (f"dlkit: using the numpy backend ({reason}). Set DLKIT_BACKEND=numpy to choose it "
            f"explicitly and hide this note.")
    shown = warnings.formatwarning
    warnings.formatwarning = _one_line
    try:
        warnings.warn(text, BackendFallbackWarning, stacklevel=4)
    finally:
        warnings.formatwarning = shown


_numpy = NumpyBackend()
_current: Backend | None = None


def _cuda_backend() -> Backend:
    """Build the CUDA backend or raise BackendUnavailable naming the reason."""
    from . import cuda  # cuda.py imports pycuda lazily inside its functions

    return cuda.create()


def _resolve(name: str) -> Backend:
    name = name.strip().lower()
    if name not in CHOICES:
        raise ValueError(f"unknown dlkit backend {name!r}; choose one of {', '.join(CHOICES)}")
    if name == "numpy":
        return _numpy
    if name == "cuda":
        return _cuda_backend()
    try:
        return _cuda_backend()
    except BackendUnavailable as exc:
        _announce_fallback(exc)
        return _numpy


def set_backend(name: str) -> Backend:
    """Select the backend by name (``auto``, ``numpy`` or ``cuda``) and return it.

    Tensors created earlier keep the backend they were created on.
    """
    global _current
    _current = _resolve(name)
    return _current


def get_backend() -> Backend:
    """The active backend, choosing it from ``DLKIT_BACKEND`` on first call."""
    global _current
    if _current is None:
        _current = _resolve(os.environ.get("DLKIT_BACKEND", "auto"))
    return _current


def available_backends() -> dict[str, str]:
    """``{name: "ok" | reason}`` for every backend, without changing the active one."""
    report = {"numpy": "ok"}
    try:
        _cuda_backend()
        report["cuda"] = "ok"
    except BackendUnavailable as exc:
        report["cuda"] = str(exc)
    return report
