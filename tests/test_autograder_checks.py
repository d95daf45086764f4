"""The hidden checks in autograder/<ID>/ grade correctly.

For every assignment:

1. the reference solution (the notebook's answer cells; and, independently, the answer sources
   in ``autograder/<ID>/reference.py``) gets full marks;
2. the release stub of each graded function (``raise NotImplementedError()``) gets 0 for that
   function (and costs no other function points it does not depend on);
3. every mutant in ``tests/mutants/<ID>.py`` scores below full marks for its function; the kill
   rate per assignment is printed (``pytest -s``) and every mutant must be killed.

The checks run against an in-process stand-in for the harness's ``student`` proxy (answer cells
exec'd in a namespace, arguments and results copied as plain data, exceptions turned into
``StudentError``), so that the ~150 mutants grade in seconds.  The real sandboxed harness is
exercised on the reference and the stub notebooks by ``test_harness_*`` when
``autograder.harness`` provides ``grade_notebook``.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("DLKIT_BACKEND", "numpy")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from autograder.api import CheckFailure, StudentError, check_info  # noqa: E402
from tests.mutants import ASSIGNMENTS, load_mutants  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

AUTOGRADER = ROOT / "autograder"
NOTEBOOKS = ROOT / "notebooks"


# ---------------------------------------------------------------------------------------------
# Loading checks and references
# ---------------------------------------------------------------------------------------------
def _load_module(path: Path, name: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_checks(assignment: str) -> list[tuple[str, Any, Any]]:
    """``[(qualified name, function, CheckInfo)]`` of every check in autograder/<assignment>/."""
    out = []
    for path in sorted((AUTOGRADER / assignment).glob("test_*.py")):
        module = _load_module(path, f"_hidden_checks_{assignment}_{path.stem}")
        for attr, fn in vars(module).items():
            info = check_info(fn)
            if attr.startswith("test") and callable(fn) and info is not None:
                out.append((f"{path.stem}::{attr}", fn, info))
    return out


def reference_answers(assignment: str) -> dict[str, str]:
    """Correct answers written independently of the notebook (test data, so they belong in tests/):
    ``ANSWERS`` of tests/mutants/<assignment>.py, else (until moved) of autograder/<ID>/reference.py."""
    mutants = ROOT / "tests" / "mutants" / f"{assignment}.py"
    if mutants.is_file():
        module = _load_module(mutants, f"_mutants_answers_{assignment}")
        if hasattr(module, "ANSWERS"):
            return module.ANSWERS
    return _load_module(AUTOGRADER / assignment / "reference.py", f"_reference_{assignment}").ANSWERS


def notebook_answers(assignment: str) -> dict[str, str] | None:
    """The notebook's answer cells (reference solutions), or None while the notebook is missing."""
    path = NOTEBOOKS / assignment / f"{assignment}.ipynb"
    if not path.is_file():
        return None
    from dlkit.student import answer_cells, read_notebook
    return answer_cells(read_notebook(path))


def base_answers(assignment: str) -> dict[str, str]:
    """The known-good submission mutants are applied to: the notebook's, else reference.py's."""
    cells = notebook_answers(assignment)
    graded = set(reference_answers(assignment))
    if cells is not None and graded <= set(cells):
        return cells
    return dict(reference_answers(assignment))


# ---------------------------------------------------------------------------------------------
# In-process stand-in for the harness's `student` proxy
# ---------------------------------------------------------------------------------------------
_PLAIN = (int, float, bool, str, type(None))


def _copy_in(x: Any) -> Any:
    if isinstance(x, np.random.Generator):
        g = np.random.Generator(np.random.PCG64())
        g.bit_generator.state = copy.deepcopy(x.bit_generator.state)
        return g
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, (list, tuple)):
        return type(x)(_copy_in(v) for v in x)
    if isinstance(x, dict):
        return {k: _copy_in(v) for k, v in x.items()}
    if isinstance(x, _PLAIN):
        return x
    raise TypeError(f"not plain data: {type(x).__name__}")


def _copy_out(x: Any, depth: int = 0) -> Any:
    if depth > 20:
        raise StudentError("result nested too deeply")
    if type(x) is np.ndarray:
        if x.dtype.kind not in "biuf":
            raise StudentError(f"returned an array of dtype {x.dtype}")
        return x.copy()
    if isinstance(x, np.generic) and x.dtype.kind in "biuf":
        return x.item()
    if type(x) in _PLAIN:
        return x
    if type(x) in (list, tuple):
        return type(x)(_copy_out(v, depth + 1) for v in x)
    if type(x) is dict:
        return {k: _copy_out(v, depth + 1) for k, v in x.items()}
    raise StudentError(f"returned a {type(x).__name__}, which is not plain data")


class LocalStudent:
    """Runs answer cells in this process (trusted test code only: our own references/mutants)."""

    def __init__(self, cells: dict[str, str]):
        from dlkit.student import answer_namespace
        self._ns = answer_namespace()
        self._error: str | None = None
        for gid, src in cells.items():
            try:
                exec(compile(src, f"<answer {gid}>", "exec"), self._ns)
            except Exception as exc:  # noqa: BLE001 - a broken cell is the submission's problem
                self._error = f"{type(exc).__name__}: {exc}"

    def _invoke(self, fn, args, kwargs):
        args, kwargs = _copy_in(args), _copy_in(kwargs)
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise StudentError(f"{type(exc).__name__}: {exc}") from None
        return _copy_out(result)

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        fn = self._ns.get(name)
        if fn is None:
            raise StudentError(f"NameError: {name} is not defined")
        return self._invoke(fn, args, kwargs)

    def run(self, driver_source: str, entry: str, *args: Any, **kwargs: Any) -> Any:
        ns = dict(self._ns)
        exec(compile(driver_source, "<driver>", "exec"), ns)
        return self._invoke(ns[entry], args, kwargs)

    def has(self, name: str) -> bool:
        return name in self._ns

    def defined_names(self) -> list[str]:
        return sorted(k for k in self._ns if not k.startswith("__"))


def grade_local(assignment: str, cells: dict[str, str], only: str | None = None) -> dict[str, Any]:
    """``{function: {"score", "max", "failures": [messages]}}`` for one submission, in process."""
    student = LocalStudent(cells)
    result: dict[str, Any] = {}
    for qualname, fn, info in load_checks(assignment):
        if only is not None and info.function != only:
            continue
        entry = result.setdefault(info.function, {"score": 0.0, "max": 0.0, "failures": []})
        entry["max"] += info.points
        try:
            fn(student)
        except (CheckFailure, StudentError) as exc:
            entry["failures"].append(f"{qualname}: {exc}")
        except Exception:  # noqa: BLE001 - an internal error of the check scores 0 too
            entry["failures"].append(f"{qualname}: INTERNAL ERROR\n{traceback.format_exc()}")
        else:
            entry["score"] += info.points
    return result


# ---------------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------------
def _graded_names(assignment: str) -> list[str]:
    return list(reference_answers(assignment))


STUB_CASES = [(a, n) for a in ASSIGNMENTS for n in _graded_names(a)] if all(
    (AUTOGRADER / a / "reference.py").is_file() for a in ASSIGNMENTS) else []


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_graded_function_has_checks(assignment):
    names = {info.function for _, _, info in load_checks(assignment)}
    missing = set(_graded_names(assignment)) - names
    assert not missing, f"{assignment}: no hidden check for {sorted(missing)}"
    assert set(load_mutants(assignment)) == set(_graded_names(assignment))
    for name, variants in load_mutants(assignment).items():
        assert len(variants) >= 3, f"{assignment}:{name} has only {len(variants)} mutants"


@pytest.mark.parametrize("source", ["reference.py", "notebook"])
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_reference_gets_full_marks(assignment, source):
    cells = reference_answers(assignment) if source == "reference.py" else notebook_answers(assignment)
    if cells is None:
        pytest.skip(f"notebooks/{assignment}/{assignment}.ipynb does not exist yet")
    result = grade_local(assignment, cells)
    problems = {f: r["failures"] for f, r in result.items() if r["score"] != r["max"]}
    assert not problems, json.dumps(problems, indent=1)
    assert set(result) == set(_graded_names(assignment))


@pytest.mark.parametrize("assignment,name", STUB_CASES)
def test_stub_scores_zero(assignment, name):
    from dlkit.student import CODE_STUB
    from tests.nbcontract import stub_solutions
    cells = dict(base_answers(assignment))
    src = cells[name]
    stubbed = stub_solutions(src)
    if stubbed == src:      # reference.py answers carry no solution markers: stub the whole body
        stubbed = _stub_whole(src)
    assert "NotImplementedError" in stubbed
    cells[name] = stubbed
    result = grade_local(assignment, cells, only=name)
    assert result[name]["score"] == 0, f"the stub of {name} scored {result[name]['score']}"
    assert CODE_STUB


def _stub_whole(src: str) -> str:
    """Every def body (functions and methods) replaced by ``raise NotImplementedError()``."""
    import ast
    tree = ast.parse(src)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.body = [ast.parse("raise NotImplementedError()").body[0]]
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets):
            node.value = ast.parse("(_ for _ in ()).throw(NotImplementedError())").body[0].value
    return ast.unparse(tree)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_mutants_are_killed(assignment):
    base = base_answers(assignment)
    survivors = []
    total = 0
    for name, variants in load_mutants(assignment).items():
        for description, source in variants.items():
            total += 1
            cells = dict(base)
            cells[name] = source
            r = grade_local(assignment, cells, only=name)[name]
            if r["score"] >= r["max"]:
                survivors.append(f"{name}: {description}")
    killed = total - len(survivors)
    print(f"\n{assignment}: mutants killed {killed}/{total} ({100.0 * killed / max(total, 1):.0f}%)")
    for s in survivors:
        print(f"  SURVIVED {s}")
    assert not survivors, f"{assignment}: {len(survivors)} mutant(s) survive the hidden checks: {survivors}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_points_match_notebook(assignment):
    """Points per function in autograder/<ID>/ equal the notebook's test cell `test_<name>` points."""
    path = NOTEBOOKS / assignment / f"{assignment}.ipynb"
    if not path.is_file():
        pytest.skip(f"{path} does not exist yet")
    from dlkit.student import read_notebook, test_cells
    cells = test_cells(read_notebook(path))
    hidden: dict[str, float] = {}
    for _, _, info in load_checks(assignment):
        hidden[info.function] = hidden.get(info.function, 0.0) + info.points
    notebook = {gid[len("test_"):]: pts for gid, (_, pts) in cells.items() if gid.startswith("test_")}
    mismatch = {f: (hidden.get(f), notebook.get(f)) for f in set(hidden) | set(notebook)
                if notebook.get(f) is not None and hidden.get(f) != notebook.get(f)}
    print(f"\n{assignment} points (hidden, notebook): " +
          ", ".join(f"{f}={hidden.get(f)}/{notebook.get(f)}" for f in hidden))
    assert not mismatch, f"{assignment}: points differ (hidden checks, notebook): {mismatch}"


# ---------------------------------------------------------------------------------------------
# Through the real, sandboxed harness (a subprocess per submission, so a sample only)
# ---------------------------------------------------------------------------------------------
def _harness():
    try:
        from autograder import harness
    except ImportError as exc:  # pragma: no cover - the harness is part of the kit
        pytest.skip(f"autograder.harness is not importable: {exc}")
    if not hasattr(harness, "grade_notebook"):
        pytest.skip("autograder.harness has no grade_notebook")
    return harness


def write_notebook(cells: dict[str, str], path: Path) -> Path:
    """A minimal nbgrader notebook whose answer cells are ``cells`` (grade_id = key)."""
    nb_cells = []
    for gid, src in cells.items():
        nb_cells.append({"cell_type": "code", "execution_count": None, "outputs": [], "source": src,
                         "metadata": {"nbgrader": {"grade": False, "solution": True, "locked": False,
                                                   "grade_id": gid, "schema_version": 3}}})
    nb = {"cells": nb_cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                          "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def student_edition(tmp_path_factory):
    """The grader's kit of each assignment (built once): the student edition plus the solution
    packs of the earlier assignments, exactly what the batch grades with."""
    harness = _harness()
    kits: dict[str, str] = {}

    def kit(assignment: str) -> str:
        if assignment not in kits:
            kits[assignment] = harness.build_student_edition(
                tmp_path_factory.mktemp(f"student-edition-{assignment[:2]}"), assignment)
        return kits[assignment]
    return kit


def _grade_real(assignment: str, cells: dict[str, str], path: Path, student_edition) -> dict:
    harness = _harness()
    write_notebook(cells, path)
    return harness.grade_notebook(assignment, path, student_dlkit=student_edition(assignment),
                                  in_process=False)


def _stubbed(cells: dict[str, str]) -> dict[str, str]:
    from tests.nbcontract import stub_solutions
    out = {}
    for gid, src in cells.items():
        new = stub_solutions(src)
        out[gid] = new if new != src else _stub_whole(src)
    return out


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_harness_reference_full_and_stub_zero(assignment, tmp_path, student_edition):
    cells = base_answers(assignment)
    full = _grade_real(assignment, cells, tmp_path / f"{assignment}.ipynb", student_edition)
    failed = [(t["name"], t["output"]) for t in full["tests"] if t["status"] != "passed"]
    assert full["score"] == full["max_score"] > 0, f"reference lost points in the sandbox: {failed}\n{full['staff_notes']}"
    stub = _grade_real(assignment, _stubbed(cells), tmp_path / f"{assignment}-stub.ipynb", student_edition)
    assert stub["score"] == 0, [t["name"] for t in stub["tests"] if t["score"]]
    assert not stub["staff_notes"], stub["staff_notes"]


def _sample_mutant(assignment: str) -> tuple[str, str, str]:
    """One mutant per assignment, rotating through its functions (a different one per ID)."""
    names = list(load_mutants(assignment))
    name = names[ASSIGNMENTS.index(assignment) % len(names)]
    description, source = next(iter(load_mutants(assignment)[name].items()))
    return name, description, source


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_harness_kills_a_sample_of_mutants(assignment, tmp_path, student_edition):
    """A sample mutant, graded in the sandbox, loses points for its function (all mutants are
    graded in process by test_mutants_are_killed; the sandbox is too slow to grade ~150)."""
    base = base_answers(assignment)
    survivors = []
    for name, description, source in [_sample_mutant(assignment)]:
        cells = dict(base)
        cells[name] = source
        r = _grade_real(assignment, cells, tmp_path / f"{name}.ipynb", student_edition)
        f = r["functions"][name]
        assert not r["staff_notes"], r["staff_notes"]
        if f["score"] >= f["max_score"]:
            survivors.append(f"{name}: {description}")
    assert not survivors, survivors
