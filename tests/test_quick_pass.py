"""The batch's quick pass: every submission is graded first with a tenth of each budget; the ones
that run out of one (or crash) are graded again with the full budgets after all the others.

What must hold: the scores are those of one full pass (a slow but correct answer, or one that
needs more memory than the quick pass allows, keeps full marks), only what ran out is graded
twice, the deferred ones are recorded after every other submission, a check's own
``except Exception`` cannot turn a deferral into points, and ``--no-quick-pass`` grades once.
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "adversarial"))

import course  # noqa: E402
from autograder import api  # noqa: E402
from autograder.harness import grade  # noqa: E402
from test_autograder_batch import gradebook, make_course, results, run_batch, stable, template_db  # noqa: E402,F401

ID = course.ASSIGNMENT
#: the fixture's checks declare this timeout: quick pass 1 s of CPU (and wall), full pass 10 s
TIMEOUT = 10.0


def _spin_iterations(cpu_seconds: float) -> int:
    """Loop iterations that take about ``cpu_seconds`` of CPU here (the sandbox runs the same
    Python; its answer cells may not import ``time``)."""
    n, t0 = 2_000_000, time.process_time()
    s = 0
    for i in range(n):
        s += i
    per = max(time.process_time() - t0, 1e-3) / n
    return int(cpu_seconds / per)


def _students() -> dict[str, dict[str, str]]:
    spin = _spin_iterations(2.5)     # > the quick pass's 1 s of CPU, < the full pass's 10 s
    return {
        "alice": course.CORRECT,
        "bob": course.with_cells(scale="def scale(x, a):\n    return x\n"),        # wrong: not deferred
        # correct, but slow: needs more CPU time than the quick pass gives
        "slow": course.with_cells(count=(
            "def count(widths):\n    s = 0\n"
            f"    for i in range({spin}):\n        s += i\n"
            "    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))\n")),
        # correct, but touches 400 MB: more than the quick pass's memory cgroup (256 MB)
        "hog": course.with_cells(scale=(
            "def scale(x, a):\n    big = np.ones(50_000_000)\n    big += 1.0\n"
            "    return x * a + (big[-1] - 2.0)\n")),
        "looper": course.with_cells(vjp="def vjp(A, B, G):\n    while True:\n        pass\n"),
        "erin": course.CORRECT,
    }


def _copy_course(cdir: Path, to: Path) -> Path:
    shutil.copytree(cdir, to, symlinks=True)
    return to


def test_quick_pass_scores_equal_one_full_pass_and_defers_only_what_ran_out(
        tmp_path: Path, template_db: Path) -> None:  # noqa: F811
    students = _students()
    cdir, _ = make_course(tmp_path / "a", template_db, students)
    checks = course.make_checks(tmp_path / "checks", timeout=TIMEOUT)
    once = _copy_course(cdir, tmp_path / "once")
    proc = run_batch(cdir, checks, "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    proc_once = run_batch(once, checks, "--workers", "1", "--no-quick-pass")
    assert proc_once.returncode == 0, proc_once.stderr

    assert gradebook(cdir) == gradebook(once)
    cgroup = "cgroup" in results(once, "alice")["sandbox"]["memory"]
    expect_deferred = {"slow", "looper"} | ({"hog"} if cgroup else set())
    deferred = set()
    for student in students:
        quick, full = results(cdir, student), results(once, student)
        assert "quick_pass" not in full and "deferred" not in full and "deferred" not in quick
        if "quick_pass" in quick:
            deferred.add(student)
            assert quick["quick_pass"]["deferred"], quick["quick_pass"]
            quick.pop("quick_pass")
        assert stable(quick) == stable(full), student
        assert ("budgets" in results(cdir, student)["sandbox"]) == (student not in deferred)
        assert "budgets" not in full["sandbox"]
    assert deferred == expect_deferred
    summary = next(line for line in proc.stderr.splitlines() if line.startswith("quick pass:"))
    assert f"{len(deferred)} submission(s)" in summary and all(s in summary for s in deferred), summary
    assert "quick pass:" not in proc_once.stderr
    # the fairness the quick pass must keep: slow or memory-hungry correct answers keep full marks
    for student in ("alice", "slow", "hog", "erin"):
        assert results(cdir, student)["score"] == course.MAX_SCORE, results(cdir, student)
    assert results(cdir, "bob")["score"] == course.MAX_SCORE - course.POINTS["scale"]
    assert results(cdir, "looper")["score"] == course.MAX_SCORE - course.POINTS["vjp"]
    vjp = next(t for t in results(cdir, "looper")["tests"] if t["function"] == "vjp")
    assert "time limit of 10 s" in vjp["output"], vjp       # the full budget ran out, in its words

    # graded again AFTER every other submission: recorded last (one worker: a strict order)
    stamp = {s: (cdir / "autograded" / s / ID / "results.json").stat().st_mtime_ns for s in students}
    assert min(stamp[s] for s in deferred) > max(stamp[s] for s in students if s not in deferred)
    # a rerun grades nothing: the quick pass is not part of what is recorded
    again = run_batch(cdir, checks, "--workers", "1")
    assert again.returncode == 0 and "graded 0, skipped 6" in again.stderr, again.stderr


SWALLOWING_CHECK = r'''
from autograder.api import check

@check("scale", points=1, timeout=3)
def test_scale_swallows_everything(student):
    try:
        student.call("scale", 1.0, 2.0)
    except Exception:          # a check that forgives its student: a timeout too
        pass
'''


def test_a_check_that_swallows_exceptions_cannot_turn_a_deferral_into_points(tmp_path: Path) -> None:
    folder = tmp_path / "checks" / ID
    folder.mkdir(parents=True)
    (folder / "test_swallow.py").write_text(SWALLOWING_CHECK, encoding="utf-8")
    nb = course.write_notebook(tmp_path / "looper.ipynb", course.with_cells(
        scale="def scale(x, a):\n    while True:\n        pass\n"))
    t0 = time.monotonic()
    quick = grade(ID, nb, checks_root=tmp_path / "checks", quick=True)
    assert quick.get("deferred") and "quick pass" in quick["deferred"], quick
    assert time.monotonic() - t0 < 20
    # with the full budgets the (forgiving) check scores it: the deferral is never a score
    full = grade(ID, nb, checks_root=tmp_path / "checks")
    assert "deferred" not in full and full["score"] == 1.0


def test_quick_pass_stops_at_the_first_deferral_and_takes_a_tenth_of_the_budgets(tmp_path: Path) -> None:
    checks = course.make_checks(tmp_path / "checks", timeout=3.0)
    # every answer loops: the full pass pays a budget for each function, the quick pass one tenth once
    looping = {gid: src.split("\n")[0] + "\n    while True:\n        pass\n" if src.startswith("def") else src
               for gid, src in course.CORRECT.items()}
    nb = course.write_notebook(tmp_path / "loops.ipynb", looping)
    quick = grade(ID, nb, checks_root=checks, quick=True)
    assert quick.get("deferred"), quick
    ran = [t for t in quick["tests"] if t["status"] != "not run"]
    assert len(ran) == 1, quick["tests"]           # stopped there: no other check ran
    assert quick["duration_s"] < 0.5 * 3.0, quick["duration_s"]
    wall, cpu = api.DEFAULT_TIMEOUT, api.DEFAULT_CPU
    from autograder.session import Submission
    from autograder.sandbox import Limits
    sub = Submission({"f": "def f():\n    return 1\n"}, None, Limits(), quick=True)
    assert sub.budgets(wall, cpu) == (api.QUICK_MIN_WALL_S, cpu * api.QUICK_FRACTION)
    assert sub.budgets(90.0, 90.0) == (9.0, 9.0)
    full = Submission({"f": "def f():\n    return 1\n"}, None, Limits())
    assert full.budgets(wall, cpu) == (wall, cpu)


@pytest.mark.parametrize("flag", [[], ["--no-quick-pass"]])
def test_both_modes_grade_a_plain_batch_identically(tmp_path: Path, template_db: Path, flag: list) -> None:  # noqa: F811
    cdir, checks = make_course(tmp_path, template_db)
    proc = run_batch(cdir, checks, "--workers", "2", *flag)
    assert proc.returncode == 0, proc.stderr
    assert results(cdir, "alice")["score"] == course.MAX_SCORE
    assert all("quick_pass" not in results(cdir, s) for s in ("alice", "bob", "carol", "erin"))
