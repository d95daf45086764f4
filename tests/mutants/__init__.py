"""Known-wrong implementations ("mutants") of every graded function, per assignment.

``tests/mutants/<ID>.py`` defines ``MUTANTS: dict[str, dict[str, str]]`` =
``{graded name: {description of the mistake: full replacement answer-cell source}}``.
A replacement source is self-contained like an answer cell (it may use ``np``, ``math`` and
``dlkit`` pre-imported) and defines the graded name with the signature of notebooks/GRADED.md.
It replaces the answer cell whose ``grade_id`` is that name.

A few replacement sources also redefine a companion name *before* the wrong function (e.g. a
``batchnorm_backward`` mutant re-defines a correct ``batchnorm_forward`` so that the cache format
it reads is its own).  Answer cells run in notebook order, so the redefinition wins.

The hidden checks in ``autograder/<ID>/`` must score every mutant below full marks for its
function (tests/test_autograder_checks.py asserts it and prints the kill rate); notebooks'
visible tests may use them too::

    from tests.mutants import load_mutants
    for description, source in load_mutants("03_optimization")["Adam"].items(): ...
"""
from __future__ import annotations

import importlib

ASSIGNMENTS = (
    "00_arrays_broadcasting",
    "01_autodiff_backprop",
    "02_fully_connected",
    "03_optimization",
    "04_initialization",
    "05_normalization_regularization",
    "06_gpu_kernels",
    "07_putting_together",
)

__all__ = ["ASSIGNMENTS", "load_mutants", "all_mutants"]


def load_mutants(assignment: str) -> dict[str, dict[str, str]]:
    """``MUTANTS`` of one assignment (module names start with a digit, hence importlib)."""
    if assignment not in ASSIGNMENTS:
        raise KeyError(f"unknown assignment {assignment!r}; known: {', '.join(ASSIGNMENTS)}")
    return importlib.import_module(f"{__name__}.{assignment}").MUTANTS


def all_mutants() -> list[tuple[str, str, str, str]]:
    """Every mutant as ``(assignment, graded name, description, source)``."""
    out = []
    for a in ASSIGNMENTS:
        for name, variants in load_mutants(a).items():
            for desc, src in variants.items():
                out.append((a, name, desc, src))
    return out
