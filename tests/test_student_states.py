"""Every notebook's student edition runs top to bottom in the three states issue 11 names.

"Nothing done" is covered for every notebook by test_notebooks_*::test_student_edition_runs_top_to_bottom,
and all three states of 01, 04 and 05 by test_notebook_01.py and test_graded_04_05.py; this file
covers the other two states of the remaining notebooks, with test_graded_04_05's runner and its
stand-in of the student kit:

* done with the student's own pieces (the solutions, run as a student would): nothing fails;
* nothing done but every solution pack published: only the notebook's own graded test cells fail
  (its answers are still stubs) and no demo waits for a dlkit piece (they all come from packs).
"""
from __future__ import annotations

import pytest

from dlkit import student
from tests.nbcontract import notebook
from tests.test_graded_04_05 import _run_notebook, student_edition, student_kit  # noqa: F401

ASSIGNMENTS = ("00_arrays_broadcasting", "01_autodiff_backprop", "02_fully_connected",
               "03_optimization", "04_initialization", "05_normalization_regularization",
               "06_gpu_kernels", "07_putting_together")
OTHERS = ("00_arrays_broadcasting", "02_fully_connected", "03_optimization", "06_gpu_kernels",
          "07_putting_together")


def _graded_tests(aid: str) -> list[str]:
    return sorted(gid for gid, _ in student.test_cells(notebook(aid)).items())


@pytest.mark.parametrize("aid", OTHERS)
def test_done_with_own_pieces(aid, student_edition):
    from autograder.release import pack_source
    for earlier in ASSIGNMENTS[:ASSIGNMENTS.index(aid)]:       # the earlier notebooks are done too
        (student_edition / f"{earlier}.py").write_text(pack_source(earlier), encoding="utf-8")
    failed, printed = _run_notebook(aid, stubbed=False)
    assert failed == [], printed[-2000:]


@pytest.mark.parametrize("aid", OTHERS)
def test_nothing_done_but_every_pack_published(aid, student_edition):
    from autograder.release import pack_source
    for published in ASSIGNMENTS:
        (student_edition / f"{published}.py").write_text(pack_source(published), encoding="utf-8")
    failed, printed = _run_notebook(aid, stubbed=True)
    assert sorted(failed) == _graded_tests(aid)
    # every dlkit piece resolves to a pack: no demo waits for one (a demo may still wait for this
    # notebook's own numpy answers, which are not library pieces and have no pack to stand in)
    assert "is a piece you write in notebook" not in printed, printed[-2000:]
