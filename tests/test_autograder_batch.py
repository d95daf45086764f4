"""`python -m autograder batch`: gradebook, results, feedback, resumability (kill and rerun)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE / "adversarial"))

import course  # noqa: E402
from autograder.batch import KILL_HOOK_ENV, MARKER  # noqa: E402
from autograder.gradebook import _alembic_on_path, default_db_url, dump_comments, dump_gradebook  # noqa: E402

ID = course.ASSIGNMENT
#: the source notebook's test-cell points differ from the checks' points, to test the scaling
CELL_POINTS = {"scale": 10.0, "vjp": 5.0, "Counter": 4.0, "init": 3.0, "count": 1.0}
STUDENTS = {
    "alice": course.CORRECT,
    "bob": course.with_cells(scale="def scale(x, a):\n    return x\n"),             # scale: 0/2
    "carol": course.with_cells(vjp="def vjp(A, B, G):\n    return G @ B.T, A @ G\n",  # vjp: 0/2
                               count=None),                                          # count: missing
    "dave": "{ this is not json",
    "erin": course.CORRECT,
}


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty gradebook made once (nbgrader's first creation runs alembic, which is slow)."""
    from nbgrader.api import Gradebook
    path = tmp_path_factory.mktemp("gb") / "gradebook.db"
    _alembic_on_path()
    Gradebook(f"sqlite:///{path}").close()
    return path


def make_course(base: Path, template_db: Path, students: dict = STUDENTS) -> tuple[Path, Path]:
    checks = course.make_checks(base / "checks")
    cdir = base / "course"
    course.write_notebook(cdir / "source" / ID / f"{ID}.ipynb", course.CORRECT, test_points=CELL_POINTS)
    for name, cells in students.items():
        nb = course.write_notebook(cdir / "submitted" / name / ID / f"{ID}.ipynb", cells)
        (nb.parent / "timestamp.txt").write_text("2025-02-03 04:05:06.000000 UTC", encoding="utf-8")
        (nb.parent / "submission_secret.txt").write_text(f"secret-{name}", encoding="utf-8")
    shutil.copy(template_db, cdir / "gradebook.db")
    return cdir, checks


def run_batch(cdir: Path, checks: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "batch", "--course-dir", str(cdir),
                           "--assignment", ID, "--checks-root", str(checks), "--no-progress", *extra],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, **(env or {})))


def results(cdir: Path, student: str) -> dict:
    return json.loads((cdir / "autograded" / student / ID / "results.json").read_text(encoding="utf-8"))


def gradebook(cdir: Path) -> dict:
    return dump_gradebook(default_db_url(cdir), ID)


def stable(r: dict) -> dict:
    """results.json without the fields that legitimately differ between runs."""
    return {k: v for k, v in r.items() if k not in ("duration_s", "sandbox", "submission")}


def test_batch_records_scaled_scores_results_and_feedback(tmp_path: Path, template_db: Path) -> None:
    cdir, checks = make_course(tmp_path, template_db)
    proc = run_batch(cdir, checks, "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    assert "graded 5, skipped 0, failed 0" in proc.stderr
    gb = gradebook(cdir)
    assert set(gb) == set(STUDENTS)
    for cell, pts in CELL_POINTS.items():
        assert gb["alice"][f"{ID}/test_{cell}"] == (pytest.approx(pts), None, False)
    assert gb["bob"][f"{ID}/test_scale"][0] == 0
    assert gb["bob"][f"{ID}/test_vjp"][0] == pytest.approx(5.0)
    assert gb["carol"][f"{ID}/test_vjp"][0] == 0 and gb["carol"][f"{ID}/test_count"][0] == 0
    assert all(v[0] == 0 for v in gb["dave"].values())
    assert results(cdir, "bob")["score"] == course.MAX_SCORE - 2
    assert "no answer cell" in " ".join(t["output"] for t in results(cdir, "carol")["tests"])
    assert "not valid notebook JSON" in results(cdir, "dave")["output"]
    # nbgrader's layout: the autograded copy for formgrader (the checks' results under the test
    # cells) and the files release_feedback needs (generate_feedback copies them to feedback/)
    for name in STUDENTS:
        out = cdir / "autograded" / name / ID
        assert (out / f"{ID}.ipynb").is_file()
        assert (out / "timestamp.txt").read_text() == "2025-02-03 04:05:06.000000 UTC"
        assert (out / "submission_secret.txt").read_text() == f"secret-{name}"
        assert (out / MARKER).is_file()
    assert not (cdir / "feedback").exists()        # feedback pages are nbgrader's generate_feedback
    import nbformat
    copy = nbformat.read(cdir / "autograded" / "bob" / ID / f"{ID}.ipynb", as_version=4)
    shown = {c["metadata"]["nbgrader"]["grade_id"]: "".join(o["text"] for o in c["outputs"])
             for c in copy["cells"] if c.get("outputs")}
    assert "scale(x, 2.5) is wrong" in shown["test_scale"] and "0 / 10 points" in shown["test_scale"]
    comments = dump_comments(default_db_url(cdir), ID)["bob"]
    assert "scale(x, 2.5) is wrong" in comments[f"{ID}/scale"]
    assert comments[f"{ID}/vjp"].startswith("Hidden checks for vjp: 2 / 2 points")


def test_rerun_skips_graded_and_regrades_changed_submission(tmp_path: Path, template_db: Path) -> None:
    cdir, checks = make_course(tmp_path, template_db, {k: STUDENTS[k] for k in ("alice", "bob")})
    assert run_batch(cdir, checks).returncode == 0
    first = gradebook(cdir)
    proc = run_batch(cdir, checks)
    assert proc.returncode == 0 and "graded 0, skipped 2" in proc.stderr, proc.stderr
    assert gradebook(cdir) == first
    course.write_notebook(cdir / "submitted" / "bob" / ID / f"{ID}.ipynb", course.CORRECT)  # bob resubmits
    proc = run_batch(cdir, checks)
    assert "graded 1, skipped 1" in proc.stderr, proc.stderr
    after = gradebook(cdir)
    assert after["bob"][f"{ID}/test_scale"][0] == pytest.approx(10.0)
    assert after["alice"] == first["alice"]
    shutil.copy(template_db, cdir / "gradebook.db")     # a fresh gradebook: markers alone don't skip
    proc = run_batch(cdir, checks)
    assert "graded 2, skipped 0" in proc.stderr, proc.stderr
    assert gradebook(cdir) == after


@pytest.mark.parametrize("every", [1, 2])
def test_kill_mid_batch_then_rerun_equals_uninterrupted_run(tmp_path: Path, template_db: Path, every: int) -> None:
    """Killed right after its 2nd gradebook commit (``every`` results per commit), before that
    commit's markers: the rerun grades the rest and ends where an uninterrupted run does."""
    killed, checks_a = make_course(tmp_path / "a", template_db)
    clean, checks_b = make_course(tmp_path / "b", template_db)
    proc = run_batch(killed, checks_a, "--workers", "2", "--record-every", str(every), env={KILL_HOOK_ENV: "2"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr     # died right after its 2nd commit
    markers = list((killed / "autograded").glob(f"*/{ID}/{MARKER}"))
    assert len(markers) == every        # the 2nd commit has no markers yet: the journal's window
    assert len(gradebook(killed)) == 2 * every                 # ... but its rows are there
    proc = run_batch(killed, checks_a, "--workers", "2")
    assert proc.returncode == 0 and f"skipped {every}" in proc.stderr, proc.stderr
    assert run_batch(clean, checks_b, "--workers", "1").returncode == 0
    assert gradebook(killed) == gradebook(clean)
    for name in STUDENTS:
        assert stable(results(killed, name)) == stable(results(clean, name))


def test_manual_scores_survive_regrading(tmp_path: Path, template_db: Path) -> None:
    from nbgrader.api import Gradebook
    cdir, checks = make_course(tmp_path, template_db, {"bob": STUDENTS["bob"]})
    assert run_batch(cdir, checks).returncode == 0
    with Gradebook(default_db_url(cdir)) as gb:
        gb.find_grade("test_scale", ID, ID, "bob").manual_score = 7.0
        gb.db.commit()
    assert run_batch(cdir, checks, "--force").returncode == 0
    auto, manual, needs = gradebook(cdir)["bob"][f"{ID}/test_scale"]
    assert (auto, manual, needs) == (0, 7.0, True)


def test_batch_harness_errors_exit_nonzero(tmp_path: Path, template_db: Path) -> None:
    cdir, checks = make_course(tmp_path, template_db, {})
    proc = subprocess.run([sys.executable, "-m", "autograder", "batch", "--course-dir", str(cdir),
                           "--assignment", "no_such_assignment", "--checks-root", str(checks)],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "unknown assignment" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "autograder", "batch", "--course-dir",
                           str(tmp_path / "missing"), "--assignment", ID, "--checks-root", str(checks)],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_course_budgets_apply_and_a_bad_one_stops_the_batch(tmp_path: Path, template_db: Path) -> None:
    """The sandbox budgets of the course's nbgrader_config.py reach the local pool's sandboxes
    (read once, by the batch); one of the wrong type stops the batch before anything is graded."""
    cdir, checks = make_course(tmp_path, template_db, {"alice": course.CORRECT})
    (cdir / "nbgrader_config.py").write_text("c = get_config()\nc.DlkitGrader.memory_mb = 1000\n")
    proc = run_batch(cdir, checks, "--no-quick-pass")
    assert proc.returncode == 0, proc.stderr
    sandbox = results(cdir, "alice")["sandbox"]       # the default budget is 1536 MB
    assert "1000 MB" in sandbox["memory"] or f"RLIMIT_AS {1000 // sandbox['processes']} MB" in sandbox["memory"]
    (cdir / "nbgrader_config.py").write_text("c = get_config()\nc.DlkitGrader.memory_mb = 'lots'\n")
    before = gradebook(cdir)
    proc = run_batch(cdir, checks, "--force")
    assert proc.returncode == 2 and "memory_mb" in proc.stderr and "nbgrader_config.py" in proc.stderr
    assert gradebook(cdir) == before


def test_record_many_is_one_transaction(tmp_path: Path, template_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """nbgrader's helpers commit after every row; record_many still writes all or nothing: a
    failure on the third record leaves the first two unwritten, and the same records written
    again after the fault is gone land exactly once."""
    from autograder import gradebook as gbook
    cdir = tmp_path / "course"
    course.write_notebook(cdir / "source" / ID / f"{ID}.ipynb", course.CORRECT, test_points=CELL_POINTS)
    shutil.copy(template_db, cdir / "gradebook.db")
    url = default_db_url(cdir)
    cells = gbook.source_grade_cells(cdir / "source" / ID / f"{ID}.ipynb")
    gbook.ensure_assignment(url, ID, ID, cells)
    records = [gbook.Record(f"s{i}", {"test_scale": 10.0}) for i in range(3)]
    real = gbook.set_grade
    seen: list[str] = []

    def failing(grade, scores):   # the third submission's rows cannot be written
        seen.append(grade.notebook.student.id)
        if grade.notebook.student.id == "s2":
            raise RuntimeError("disk full")
        real(grade, scores)

    monkeypatch.setattr(gbook, "set_grade", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        gbook.record_many(url, ID, ID, records)
    assert "s0" in seen and gbook.submitted_students(url, ID) == set()
    monkeypatch.setattr(gbook, "set_grade", real)
    gbook.record_many(url, ID, ID, records)
    book = dump_gradebook(url, ID)
    assert set(book) == {"s0", "s1", "s2"}
    assert all(row[f"{ID}/test_scale"][0] == 10.0 for row in book.values())
