"""Notebooks 00-03: structure, and every graded check against solution, stub and mutants.

For each graded name of notebooks/GRADED.md in assignments 00_arrays_broadcasting,
01_autodiff_backprop, 02_fully_connected and 03_optimization:

* the notebook has exactly one answer cell with that grade_id (solution region marked) and one
  ``test_<name>`` cell with points > 0, and is saved without outputs;
* the answer cell followed by its test cell (hidden tests included) passes in a fresh
  ``answer_namespace()``; with the answer stubbed the way nbgrader's release does, the test cell
  fails, also in its release form (hidden tests stripped);
* every known-wrong implementation in ``tests/mutants/<ID>.py`` makes the test cell fail;
* the student edition of each notebook (answers stubbed, dlkit's graded pieces raising
  NotImplementedError) still runs top to bottom apart from its graded test cells.

Everything is executed with ``exec`` in this process: the sources are the project's own trusted
solutions and mutants (student code is only ever run by the sandboxed autograder).
"""
from __future__ import annotations

import contextlib
import io
import re

import numpy as np
import pytest

from dlkit import student
from tests.mutants import load_mutants
from tests.nbcontract import (graded_md_names, nb_path, notebook, run_student_edition, strip_hidden_tests,
                              stub_graded_dlkit, stub_solutions)

answer_cells, answer_namespace = student.answer_cells, student.answer_namespace
graded_tests_of = student.test_cells      # not named test_*: pytest would collect it

ASSIGNMENTS = ("00_arrays_broadcasting", "01_autodiff_backprop", "02_fully_connected", "03_optimization")
EXPECTED = {
    "00_arrays_broadcasting": ["broadcast_shape", "unbroadcast", "linear_forward"],
    "01_autodiff_backprop": ["topological_order", "backward_sweep", "sum_to_shape", "add_gradient",
                             "mul_gradient", "div_gradient", "negate_gradient", "power_gradient",
                             "exp_gradient", "log_gradient", "relu_gradient", "matmul_gradient",
                             "summation_gradient", "broadcast_to_gradient", "reshape_gradient",
                             "transpose_gradient", "logsumexp_gradient"],
    "02_fully_connected": ["mlp_forward", "count_parameters"],
    "03_optimization": ["gradient_descent", "newton_step", "SGD", "Momentum", "Nesterov", "Adagrad", "RMSprop", "Adam",
                        "AdamW"],
}


def run_graded(aid: str, name: str, answer_source: str, test_source: str) -> BaseException | None:
    """Run all answer cells in notebook order (``name``'s replaced), then its test cell.

    Returns the exception the test cell raised, or None if it passed.
    """
    answers = answer_cells(notebook(aid))
    ns = answer_namespace()
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), np.errstate(all="ignore"):
            for gid, src in answers.items():
                exec(compile(answer_source if gid == name else src, f"<{aid}:{gid}>", "exec"), ns)
                if gid == name:
                    break
            exec(compile(test_source, f"<{aid}:test_{name}>", "exec"), ns)
    except Exception as exc:  # noqa: BLE001 - any failure of the test cell counts
        return exc
    return None


CASES = [(aid, name) for aid in ASSIGNMENTS for name in EXPECTED[aid]]


# -- structure ----------------------------------------------------------------------------------

def test_expected_names_match_graded_md():
    assert {aid: graded_md_names()[aid] for aid in ASSIGNMENTS} == EXPECTED


@pytest.mark.parametrize("aid", ASSIGNMENTS)
def test_notebook_structure(aid):
    nb = notebook(aid)
    answers, tests = answer_cells(nb), graded_tests_of(nb)
    assert list(answers) == EXPECTED[aid], f"{aid}: answer cells {list(answers)}"
    for name in EXPECTED[aid]:
        src = answers[name]
        assert src.count("### BEGIN SOLUTION") == 1 and src.count("### END SOLUTION") == 1, name
        stub = stub_solutions(src)
        assert "raise NotImplementedError()" in stub and "BEGIN SOLUTION" not in stub, name
        # the signature stays in the stub: it still defines the name
        ns = answer_namespace()
        exec(compile(stub, name, "exec"), ns)
        assert name in ns, f"the stub of {name} does not define it"
        assert re.search(r"\bprint\(|plt\.", src) is None, f"answer cell {name} prints or plots"
        test_id = f"test_{name}"
        assert test_id in tests, f"no test cell {test_id}"
        tsrc, points = tests[test_id]
        assert points > 0, test_id
        assert "### BEGIN HIDDEN TESTS" in tsrc and "### END HIDDEN TESTS" in tsrc, test_id
    # answer cells come before their tests, and every grade_id is unique
    order = [c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in nb["cells"]]
    ids = [g for g in order if g]
    assert len(ids) == len(set(ids)), f"{aid}: duplicated grade_id"
    for name in EXPECTED[aid]:
        assert order.index(name) < order.index(f"test_{name}"), name
    # nbgrader metadata is complete
    for cell in nb["cells"]:
        info = cell.get("metadata", {}).get("nbgrader")
        if info:
            assert info.get("schema_version") == 3
            # code cells, or manually graded written answers (markdown, solution + grade)
            assert cell["cell_type"] == "code" or (info.get("solution") and info.get("grade"))
            assert {"grade", "grade_id", "locked", "solution", "task"} <= set(info)
            if info.get("grade") and not info.get("solution"):  # test cells; written answers stay editable
                assert info.get("locked") is True


@pytest.mark.parametrize("aid", ASSIGNMENTS)
def test_saved_without_outputs(aid):
    nb = notebook(aid)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None


@pytest.mark.parametrize("aid", ASSIGNMENTS)
def test_first_code_cell_imports_and_seeds(aid):
    first = next(c for c in notebook(aid)["cells"] if c["cell_type"] == "code")
    src = "".join(first["source"]) if isinstance(first["source"], list) else first["source"]
    for needed in ("import numpy as np", "import dlkit", "default_rng("):
        assert needed in src, f"{aid}: first code cell lacks {needed!r}"


# -- graded checks: solution passes, stub and mutants fail ----------------------------------------

@pytest.mark.parametrize("aid,name", CASES)
def test_solution_passes(aid, name):
    answers, tests = answer_cells(notebook(aid)), graded_tests_of(notebook(aid))
    err = run_graded(aid, name, answers[name], tests[f"test_{name}"][0])
    assert err is None, f"{aid}: test_{name} fails on the solution: {type(err).__name__}: {err}"


@pytest.mark.parametrize("aid,name", CASES)
def test_stub_fails(aid, name):
    answers, tests = answer_cells(notebook(aid)), graded_tests_of(notebook(aid))
    stub = stub_solutions(answers[name])
    full, release = tests[f"test_{name}"][0], strip_hidden_tests(tests[f"test_{name}"][0])
    assert "BEGIN HIDDEN TESTS" not in release
    assert isinstance(run_graded(aid, name, stub, full), NotImplementedError)
    assert isinstance(run_graded(aid, name, stub, release), NotImplementedError)


@pytest.mark.parametrize("aid,name", CASES)
def test_mutants_fail(aid, name):
    variants = load_mutants(aid).get(name, {})
    assert len(variants) >= 2, f"fewer than 2 mutants for {name}"
    test_source = graded_tests_of(notebook(aid))[f"test_{name}"][0]
    survivors = [desc for desc, src in variants.items() if run_graded(aid, name, src, test_source) is None]
    killed = len(variants) - len(survivors)
    assert killed >= 2 and not survivors, f"{name}: mutants not caught by test_{name}: {survivors}"


# -- the student edition runs top to bottom ------------------------------------------------------

@pytest.fixture
def student_dlkit(monkeypatch):
    """dlkit as `make release` ships it: the graded pieces raise NotImplementedError."""
    import dlkit

    stub_graded_dlkit(monkeypatch)
    return dlkit


@pytest.mark.parametrize("aid", ASSIGNMENTS)
def test_student_edition_runs_top_to_bottom(aid, student_dlkit, monkeypatch, tmp_path):
    """Every non-test cell runs with the stubs; every graded test cell fails on them."""
    monkeypatch.chdir(nb_path(aid).parent)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    failed_tests, printed = run_student_edition(aid)
    assert sorted(failed_tests) == sorted(f"test_{n}" for n in EXPECTED[aid])
    assert "implement" in printed  # the demos said what to finish first
