"""The results schema: one :class:`Results` type, built in one place (:func:`build`).

Results follow the Gradescope ``results.json`` shape plus a few keys of ours (see
:class:`Results`); :func:`autograder.gradescope.to_gradescope` turns them into Gradescope's own
schema, :mod:`autograder.feedback` into nbgrader comments, :mod:`autograder.gradebook` into
grade-cell scores.  ``staff_notes`` are for TAs only and never reach a student.
"""
from __future__ import annotations

import hashlib
import os
from typing import Any, TypedDict

from .base import HARNESS_VERSION


class TestResult(TypedDict):
    """One hidden check's result."""

    name: str              # "<function>: <check name>"
    score: float           # its points if it passed, else 0
    max_score: float
    output: str            # the message for the student (empty when it passed)
    function: str          # the graded name it checks
    status: str            # passed | failed | error | skipped | not run


class FunctionTotal(TypedDict):
    score: float
    max_score: float


class Results(TypedDict, total=False):
    """The results of grading one submission (``results.json``)."""

    score: float
    max_score: float
    output: str                         # a message about the whole submission ("" if none)
    tests: list[TestResult]
    functions: dict[str, FunctionTotal]
    assignment: str
    submission: dict[str, Any]          # {"path": ..., "sha256": ...}
    staff_notes: list[str]              # TAs only: internal check errors, ignored tests
    harness_version: str
    sandbox: dict[str, Any]             # the isolation achieved (set by the harness)
    duration_s: float


def build(assignment: str, path: str | os.PathLike, raw: bytes | None, outcomes: Any,
          ignored: list[str] = (), fatal: str | None = None) -> Results:
    """The :class:`Results` of ``outcomes`` (:class:`autograder.plugin.Outcome`; only an explicit
    pass scores), for the submission at ``path`` whose bytes were ``raw`` (None: none read)."""
    outcomes = list(outcomes)
    tests: list[TestResult] = []
    functions: dict[str, FunctionTotal] = {}
    for o in outcomes:
        score = o.points if o.status == "passed" else 0.0
        tests.append({"name": o.name, "score": score, "max_score": o.points, "output": o.output,
                      "function": o.function, "status": o.status})
        f = functions.setdefault(o.function, {"score": 0.0, "max_score": 0.0})
        f["score"] += score
        f["max_score"] += o.points
    staff = [f"{o.nodeid}: {o.staff}" for o in outcomes if o.staff]
    staff += [f"ignored (no @check): {n}" for n in ignored]
    return {
        "score": round(float(sum(t["score"] for t in tests)), 6),
        "max_score": round(float(sum(t["max_score"] for t in tests)), 6),
        "output": fatal or "",
        "tests": tests,
        "functions": functions,
        "assignment": assignment,
        "submission": {"path": str(path), "sha256": None if raw is None else hashlib.sha256(raw).hexdigest()},
        "staff_notes": staff,
        "harness_version": HARNESS_VERSION,
    }


def without_notebook(assignment: str, path: str | os.PathLike, message: str) -> Results:
    """The :class:`Results` of a submission with nothing to grade (no notebook at all): no checks
    ran, grade cells stay for manual grading, ``message`` says why."""
    results = build(assignment, path, None, [], [], message)
    results["max_score"] = 0.0
    return results


def format_summary(results: dict[str, Any]) -> str:
    """A readable summary of results for the terminal."""
    lines = [f"{results['assignment']}: {results['score']:g} / {results['max_score']:g}"]
    if results.get("output"):
        lines.append(results["output"])
    for t in results["tests"]:
        mark = "PASS" if t["status"] == "passed" else t["status"].upper()
        lines.append(f"  [{mark:7}] {t['score']:g}/{t['max_score']:g}  {t['name']}")
        if t["output"] and t["output"] != results.get("output"):
            lines += ["             " + ln for ln in t["output"].splitlines()[:12]]
    for note in results.get("staff_notes", []):
        lines.append(f"  staff note: {note}")
    sb = results.get("sandbox") or {}
    weak = [f"{k}: {v}" for k, v in sb.items()
            if isinstance(v, str) and ("NOT" in v or "not isolated" in v or "STILL" in v or "unavailable" in v)]
    if weak:
        lines.append("  sandbox limitations: " + "; ".join(weak))
    return "\n".join(lines)
