"""Marks the reference implementations that students write themselves.

``@graded("03_optimization", "Adam")`` is a no-op in the instructor edition (it only records the
assignment and the piece name).  ``make release`` (``python -m autograder release``) replaces every
decorated object in the student edition, producing the kit with holes.
"""
from __future__ import annotations

from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)


def graded(assignment: str, name: str | None = None) -> Callable[[F], F]:
    """Record that ``assignment`` asks students to implement the decorated function or class."""

    def mark(obj: F) -> F:
        obj.__dlkit_graded__ = assignment
        obj.__dlkit_piece__ = name or obj.__name__
        return obj

    return mark
