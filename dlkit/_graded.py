"""Marks the reference implementations that students write themselves.

``@graded("04_initialization")`` is a no-op in the instructor edition.  ``make release``
(``python -m autograder release``) rewrites every decorated function's body into
``raise NotImplementedError(...)`` naming the notebook, producing the student edition.
"""
from __future__ import annotations

from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)


def graded(assignment: str, name: str | None = None) -> Callable[[F], F]:
    """Record that ``assignment`` asks students to implement the decorated function."""

    def mark(fn: F) -> F:
        fn.__dlkit_graded__ = assignment
        fn.__dlkit_piece__ = name or fn.__name__
        return fn

    return mark

