"""A tiny self-contained assignment for the autograder's own tests.

``make_checks(root)`` writes hidden checks for assignment ``99_fixture`` into ``root/99_fixture``;
``write_notebook(path, cells)`` writes an nbgrader-shaped notebook whose answer cells are
``cells`` (``{grade_id: source}``); ``CORRECT`` is a fully correct submission and
``HOSTILE`` maps a case name to (answer cells or raw notebook text, expected outcome).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ASSIGNMENT = "99_fixture"

CHECKS = r'''
import numpy as np
from autograder.api import check, expect_array, expect_scalar, fail, diagnose

@check("scale", points=1, timeout=TIMEOUT)
def test_scale_basic(student):
    x = np.arange(6.0).reshape(2, 3)
    out = expect_array(student.call("scale", x, 2.5), shape=(2, 3), dtype_kind="f", name="scale(x, 2.5)")
    if not np.allclose(out, 2.5 * x):
        fail("scale(x, 2.5) is wrong", got=out, expected=2.5 * x)

@check("scale", points=1, timeout=TIMEOUT)
def test_scale_does_not_mutate(student):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 2))
    out = expect_array(student.call("scale", x, -1.0), shape=(4, 2), name="scale(x, -1)")
    if not np.allclose(out, -x):
        fail("scale(x, -1) is wrong", got=out, expected=-x)

@check("vjp", points=2, timeout=TIMEOUT)
def test_vjp(student):
    rng = np.random.default_rng(0)
    A, B, G = rng.standard_normal((3, 4)), rng.standard_normal((4, 5)), rng.standard_normal((3, 5))
    res = student.call("vjp", A, B, G)
    if type(res) is not tuple or len(res) != 2:
        fail(f"vjp should return a tuple (dA, dB), got {type(res).__name__}")
    dA = expect_array(res[0], shape=(3, 4), name="dA")
    dB = expect_array(res[1], shape=(4, 5), name="dB")
    if not np.allclose(dA, G @ B.T):
        fail("dA is wrong", got=dA, expected=G @ B.T,
             hint=diagnose(dA, {"zero gradient": lambda: np.zeros_like(A)}))
    if not np.allclose(dB, A.T @ G):
        fail("dB is wrong", got=dB, expected=A.T @ G)

DRIVER = """
def drive(start, steps):
    c = Counter(start)
    return [c.step() for _ in range(steps)]
"""

@check("Counter", points=2, timeout=TIMEOUT)
def test_counter_state(student):
    traj = student.run(DRIVER, "drive", 1.5, 4)
    expected = [1.5 * 2 ** k for k in range(1, 5)]
    if type(traj) is not list or len(traj) != 4:
        fail(f"expected 4 values from 4 steps, got {traj!r:.200}")
    vals = [expect_scalar(v, "float", name=f"step {i + 1}") for i, v in enumerate(traj)]
    if not np.allclose(vals, expected):
        fail("Counter.step() trajectory is wrong (does your counter keep its state?)",
             got=np.array(vals), expected=np.array(expected))

@check("init", points=1, timeout=TIMEOUT)
def test_init_draws(student):
    rng_student, rng_ref = np.random.default_rng(7), np.random.default_rng(7)
    W = expect_array(student.call("init", 30, 20, generator=rng_student), shape=(30, 20), name="W")
    ref = 0.5 * (2 * rng_ref.random((30, 20)) - 1)
    if not np.allclose(W, ref):
        fail("init draws are wrong (use generator.random(shape) in the documented order)", got=W, expected=ref)

@check("count", points=1, timeout=TIMEOUT)
def test_count(student):
    n = expect_scalar(student.call("count", [3, 4, 2]), "int", name="count([3, 4, 2])")
    if n != 3 * 4 + 4 + 4 * 2 + 2:
        fail(f"count([3, 4, 2]) should be 26, got {n}")
'''

CORRECT: dict[str, str] = {
    "scale": "def scale(x, a):\n    ### BEGIN SOLUTION\n    return x * a\n    ### END SOLUTION\n",
    "vjp": "def vjp(A, B, G):\n    return G @ B.T, A.T @ G\n",
    "Counter": ("class Counter:\n    def __init__(self, start):\n        self.value = start\n"
                "    def step(self):\n        self.value = self.value * 2\n        return self.value\n"),
    "init": "def init(n, m, generator=None):\n    return 0.5 * (2 * generator.random((n, m)) - 1)\n",
    "count": "def count(widths):\n    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))\n",
}
MAX_SCORE = 8.0
#: per-function points of the fixture checks
POINTS = {"scale": 2.0, "vjp": 2.0, "Counter": 2.0, "init": 1.0, "count": 1.0}


def make_checks(root: Path, timeout: float = 3.0) -> Path:
    folder = Path(root) / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test_fixture.py").write_text(CHECKS.replace("TIMEOUT", repr(timeout)), encoding="utf-8")
    return Path(root)


def notebook(cells: dict[str, str], *, with_tests: bool = True, extra: list[dict] | None = None,
             test_points: dict[str, float] | None = None) -> dict:
    nb_cells: list[dict[str, Any]] = [{"cell_type": "markdown", "metadata": {}, "source": "# Fixture"}]
    for gid, src in cells.items():
        nb_cells.append({"cell_type": "code", "execution_count": None, "outputs": [], "source": src,
                         "metadata": {"nbgrader": {"grade": False, "solution": True, "locked": False,
                                                   "grade_id": gid, "schema_version": 3}}})
        if with_tests:
            nb_cells.append({"cell_type": "code", "execution_count": None, "outputs": [],
                             "source": f"assert {gid} is not None",
                             "metadata": {"nbgrader": {"grade": True, "solution": False, "locked": True,
                                                       "grade_id": f"test_{gid}",
                                                       "points": (test_points or POINTS).get(gid, 1),
                                                       "schema_version": 3}}})
    nb_cells += extra or []
    return {"nbformat": 4, "nbformat_minor": 5, "cells": nb_cells,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}


def write_notebook(path: Path, cells: dict[str, str] | str, **kw: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = cells if isinstance(cells, str) else json.dumps(notebook(cells, **kw), indent=1)
    path.write_text(text, encoding="utf-8")
    return path


def with_cells(**changes: str) -> dict[str, str]:
    cells = dict(CORRECT)
    for k, v in changes.items():
        if v is None:
            cells.pop(k, None)
        else:
            cells[k] = v
    return cells
