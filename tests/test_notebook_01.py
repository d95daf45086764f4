"""Notebook 01 runs on the student's own engine, in the three states of a student's kit.

The notebook is executed in this process with dlkit's graded pieces replaced by the student kit's
forwarding stand-ins (``tests.nbcontract.stub_graded_dlkit``), so every gradient in it comes from
whatever ``dlkit.student`` resolves:

* done: the answer cells hold the (instructor) solutions, each test cell plugs its piece, and the
  digits MLP trains on those plugged pieces to >= 95% test accuracy;
* nothing done but the solution pack published: answers stubbed, the pack supplies every piece;
* nothing done, no pack: every demo says what to implement instead of failing
  (tests/test_notebooks_00_03.py runs that state too).

It also checks what the prose claims about the numbers: the cost of forward mode over reverse
mode grows in proportion to the number of inputs.
"""
from __future__ import annotations

import contextlib
import io
import linecache

import numpy as np
import pytest

from dlkit import student
from tests.nbcontract import nb_path, notebook, strip_hidden_tests, stub_graded_dlkit, stub_solutions

ID = "01_autodiff_backprop"


def run(stubbed_answers: bool) -> tuple[dict, list[str], str]:
    """Execute the notebook; return its namespace, the failed test cells and the printed text."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns: dict = {"__name__": "__main__"}
    failed, out = [], io.StringIO()
    for i, cell in enumerate(notebook(ID)["cells"]):
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        info = cell.get("metadata", {}).get("nbgrader", {})
        if stubbed_answers and info.get("solution"):
            src = stub_solutions(src)
        if stubbed_answers and info.get("grade"):
            src = strip_hidden_tests(src)
        filename = f"<{ID} cell {i}>"
        linecache.cache[filename] = (len(src), None, src.splitlines(keepends=True), filename)
        try:
            with contextlib.redirect_stdout(out), np.errstate(all="ignore"):
                exec(compile(src, filename, "exec"), ns)
        except Exception as exc:  # noqa: BLE001
            if info.get("grade") and stubbed_answers:
                failed.append(info["grade_id"])
                continue
            raise AssertionError(f"cell {i} failed: {type(exc).__name__}: {exc}\n{src[:300]}") from exc
        finally:
            plt.close("all")
    return ns, failed, out.getvalue()


@pytest.fixture
def kit(monkeypatch, tmp_path):
    monkeypatch.chdir(nb_path(ID).parent)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    stub_graded_dlkit(monkeypatch, tmp_path)
    return tmp_path


def test_the_students_own_engine_trains_the_digits_mlp(kit):
    ns, failed, printed = run(stubbed_answers=False)
    assert not failed
    for piece in ("topological_order", "backward_sweep", "matmul_gradient", "logsumexp_gradient"):
        assert student.where(piece) == "plugged", piece
    assert ns["test_accuracy"] is not None and ns["test_accuracy"] >= 0.95, ns["test_accuracy"]
    assert "your engine trained the MLP" in printed
    # the forward/reverse cost ratio grows like n (the prose's claim), not like a constant
    sizes, ratios = ns["sizes"], ns["ratios"]
    for (n0, r0), (n1, r1) in zip(zip(sizes, ratios), zip(sizes[1:], ratios[1:])):
        assert 0.8 * n1 / n0 <= r1 / r0 <= 1.25 * n1 / n0, (sizes, ratios)
    assert ratios[-1] > 100
    # the lecture's layer-by-layer G_i recursion, run with the student's VJPs, is the engine's result
    for h, e in zip(ns["by_hand"], ns["by_engine"]):
        np.testing.assert_allclose(h.numpy(), e.numpy(), rtol=1e-12, atol=1e-15)


def test_nothing_done_but_the_pack_published(kit, monkeypatch):
    from autograder.release import write_packs
    packs = kit / "packs"
    write_packs(packs, [ID])
    monkeypatch.setenv("DLKIT_PACKS", str(packs))
    student.reset()
    ns, failed, printed = run(stubbed_answers=True)
    assert sorted(failed) == sorted(f"test_{n}" for n in student.answer_cells(notebook(ID)))
    assert student.where("backward_sweep") == "pack"
    assert ns["test_accuracy"] is not None and ns["test_accuracy"] >= 0.95


def test_nothing_done_and_no_pack(kit):
    ns, failed, printed = run(stubbed_answers=True)
    assert ns["test_accuracy"] is None
    assert "implement topological_order and backward_sweep first" in printed
    assert "implement the engine and the VJPs above first" in printed
