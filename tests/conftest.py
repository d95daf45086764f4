"""Shared pytest fixtures (keep this file minimal)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def numpy_backend():
    """Run a module's tests on the numpy backend, restoring the previous choice afterwards."""
    from dlkit import backend

    previous = backend._current
    yield backend.set_backend("numpy")
    backend._current = previous
