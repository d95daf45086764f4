"""Marks the pieces of dlkit that students write themselves, and what the student kit leaves out.

``@graded("<ID>", name=None)`` marks a function, a method or a class of the instructor dlkit as a
*piece* of assignment ``<ID>``: the notebook ``<ID>`` has an answer cell whose ``grade_id`` is the
piece's name (the object's ``__name__`` unless ``name`` says otherwise) and that defines exactly
that name with the library's own signature.  In the instructor edition the decorator only marks.

``make release`` (``python -m autograder release``) builds the student kit, where every graded
object keeps its signature and docstring but its body forwards to the student's piece::

    def kaiming_normal(fan_in, fan_out, nonlinearity="relu", mode="fan_in", generator=None):
        \"\"\"(docstring kept)\"\"\"
        return _dlkit_resolve("04_initialization", "kaiming_normal")(fan_in, fan_out, nonlinearity, mode, generator)

and a graded class keeps its name, bases and docstring and gets a ``__new__`` (with the
constructor's signature) that returns an instance of the student's class.  ``dlkit.student.resolve``
finds the student's piece (plugged, the student's own notebook, a published solution pack) or
stops with a message naming the notebook and the piece.

``@withheld("<why>")`` marks an object the student kit must not contain at all because it would
compute a graded answer (a backend's fused optimizer step, a fused gradient): the release deletes
its definition.  Callers reach it only behind a flag (``fused=True``) that the kit does not offer.
"""
from __future__ import annotations

from typing import Any, Callable, TypeVar

T = TypeVar("T")

#: ``{(assignment, piece name): qualified name}`` of every graded object imported so far.
PIECES: dict[tuple[str, str], str] = {}

#: ``{qualified name: why}`` of every withheld object imported so far.
WITHHELD: dict[str, str] = {}


def _qualname(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or "?"
    return f"{module}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"


def graded(assignment: str, name: str | None = None) -> Callable[[T], T]:
    """Mark a function, method or class as the piece ``name`` of assignment ``assignment``.

    Sets ``obj.__dlkit_graded__ = assignment`` and ``obj.__dlkit_piece__ = name`` and returns the
    object unchanged.
    """
    if not isinstance(assignment, str) or not assignment:
        raise TypeError(f"graded(assignment): expected an assignment id such as '03_optimization', "
                        f"got {assignment!r}")
    if name is not None and (not isinstance(name, str) or not name.isidentifier()):
        raise TypeError(f"graded(name=...): a piece name is a Python identifier, got {name!r}")

    def mark(obj: T) -> T:
        piece = name or getattr(obj, "__name__", None)
        if not piece:
            raise TypeError(f"@graded({assignment!r}) needs name= for {obj!r}, which has no __name__")
        obj.__dlkit_graded__ = assignment  # type: ignore[attr-defined]
        obj.__dlkit_piece__ = piece  # type: ignore[attr-defined]
        PIECES[(assignment, piece)] = _qualname(obj)
        return obj

    return mark


def withheld(why: str) -> Callable[[T], T]:
    """Mark an object that the student kit leaves out entirely (see the module docstring)."""

    def mark(obj: T) -> T:
        obj.__dlkit_withheld__ = why  # type: ignore[attr-defined]
        WITHHELD[_qualname(obj)] = why
        return obj

    return mark


def is_graded(obj: Any) -> bool:
    """True for a graded library object itself (instructor reference or kit stub), not for a
    subclass of one or a student's object."""
    if isinstance(obj, type):
        return "__dlkit_graded__" in vars(obj)
    fn = getattr(obj, "__func__", obj)
    return hasattr(fn, "__dlkit_graded__")


def is_kit_stub(obj: Any) -> bool:
    """True for the student kit's forwarding stand-in of a graded piece."""
    if isinstance(obj, type):
        return bool(vars(obj).get("__dlkit_stub__"))
    fn = getattr(obj, "__func__", obj)
    code = getattr(fn, "__code__", None)
    return code is not None and hasattr(fn, "__dlkit_graded__") and "_dlkit_resolve" in code.co_names
