"""Hostile submissions against the sandboxed autograder (tests/adversarial/hostile.py).

One batch run grades two honest students and one student per hostile case on the fixture
assignment (tests/adversarial/course.py).  Each case must score 0 exactly on the functions it
attacks, with a clear reason, and full marks elsewhere; the batch must complete, the honest
students keep full marks, the gradebook must agree with results.json, and nothing under
submitted/ may change.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE / "adversarial"))

import course  # noqa: E402
from hostile import CASES, RERUN, SLEEPER, notebook_text  # noqa: E402

HONEST = ("honest_a", "honest_b")
MARKERS = [Path("/tmp/dlkit-hostile-conftest-ran"), Path("/tmp/dlkit-hostile-sitecustomize-ran")]


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run the hostile batch once per test session, also under pytest-xdist (file lock)."""
    import fcntl
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    base = shared / "autograder-hostile"
    with open(shared / "autograder-hostile.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = base / "done.json"
        if not done.exists():
            if base.exists():
                import shutil
                shutil.rmtree(base)
            base.mkdir()
            state = _run_hostile_batch(base)
            done.write_text(json.dumps(state), encoding="utf-8")
    state = json.loads((base / "done.json").read_text(encoding="utf-8"))
    state["course"] = Path(state["course"])
    return state


def _run_hostile_batch(base: Path) -> dict:
    checks_root = course.make_checks(base / "checks", timeout=3.0)
    course_dir = base / "course"
    source = course.write_notebook(course_dir / "source" / course.ASSIGNMENT / f"{course.ASSIGNMENT}.ipynb",
                                   course.CORRECT)
    for m in MARKERS:
        m.unlink(missing_ok=True)
    sub = course_dir / "submitted"
    secret = [str(checks_root / course.ASSIGNMENT / "test_fixture.py"), str(source),
              str(course_dir / "gradebook.db"),
              str(sub / "honest_a" / course.ASSIGNMENT / f"{course.ASSIGNMENT}.ipynb"),
              str(ROOT / "autograder" / "api.py"), str(ROOT / "notebooks" / "GRADED.md")]
    for name in HONEST:
        course.write_notebook(sub / name / course.ASSIGNMENT / f"{course.ASSIGNMENT}.ipynb", course.CORRECT)
    for name, case in CASES.items():
        folder = sub / name / course.ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / f"{course.ASSIGNMENT}.ipynb").write_text(notebook_text(case, secret), encoding="utf-8")
        (folder / "timestamp.txt").write_text("2025-01-01 12:00:00.000000 UTC", encoding="utf-8")
        for fname, text in case.files.items():
            (folder / fname).write_text(text, encoding="utf-8")
    before = _tree_digest(sub)
    proc = subprocess.run(
        [sys.executable, "-m", "autograder", "batch", "--course-dir", str(course_dir), "--assignment",
         course.ASSIGNMENT, "--checks-root", str(checks_root), "--workers", "2", "--no-progress"],
        cwd=str(ROOT), capture_output=True, text=True, timeout=900)
    from autograder.gradebook import default_db_url, dump_gradebook
    return {"returncode": proc.returncode, "stderr": proc.stderr, "course": str(course_dir),
            "before": before, "after": _tree_digest(sub),
            "gradebook": dump_gradebook(default_db_url(course_dir), course.ASSIGNMENT),
            "left_running": _left_running(), "cgroups_left": _cgroups_left()}


def _left_running() -> list[str]:
    """Processes the hostile children started (``sleep SLEEPER``) that are still alive."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if SLEEPER.encode() in argv and state not in "ZX":
            out.append(f"{pid}: {argv}")
    return out


def _cgroups_left() -> list[str]:
    """Sandbox memory cgroups that still hold processes although the grader that created them
    (its pid opens the name, ``dlkit-sb-<pid>-...``) is gone: a live creator is another test's
    sandbox running beside this one (pytest -n), not a leak."""
    from autograder.sandbox import MemoryCgroup
    left = []
    for _, parent in MemoryCgroup._parents():
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in names:
            procs = Path(parent, name, "cgroup.procs")
            if not name.startswith(MemoryCgroup.PREFIX):
                continue
            creator = name[len(MemoryCgroup.PREFIX):].split("-", 1)[0]
            if creator.isdigit() and os.path.exists(f"/proc/{creator}"):
                continue
            if procs.exists() and procs.read_text().strip():
                left.append(name)
    return left


def _results(graded: dict, student: str) -> dict:
    path = graded["course"] / "autograded" / student / course.ASSIGNMENT / "results.json"
    assert path.is_file(), f"no results for {student}:\n{graded['stderr'][-3000:]}"
    return json.loads(path.read_text(encoding="utf-8"))


def test_batch_completes(graded: dict) -> None:
    assert graded["returncode"] == 0, graded["stderr"][-4000:]
    assert f"graded {len(CASES) + len(HONEST)}," in graded["stderr"]


def test_honest_students_untouched(graded: dict) -> None:
    for name in HONEST:
        r = _results(graded, name)
        assert r["score"] == r["max_score"] == course.MAX_SCORE, r
        row = graded["gradebook"][name]
        assert all(v[0] == pytest.approx(course.POINTS[k.split("/test_")[1]]) for k, v in row.items()), row
        assert len(row) == len(course.POINTS)


def test_submitted_files_never_modified(graded: dict) -> None:
    assert graded["before"] == graded["after"]


def test_conftest_and_sitecustomize_beside_notebook_never_run(graded: dict) -> None:
    assert not any(m.exists() for m in MARKERS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_submission(graded: dict, name: str) -> None:
    case = CASES[name]
    r = _results(graded, name)
    sandbox = r.get("sandbox", {})
    if case.needs == "network" and not str(sandbox.get("network", "")).startswith(("off", "TCP blocked")):
        pytest.skip(f"no network isolation on this OS: {sandbox.get('network')}")
    if case.needs == "filesystem" and not str(sandbox.get("filesystem", "")).startswith(("private", "Landlock")):
        pytest.skip(f"no filesystem isolation on this OS: {sandbox}")
    if case.needs == "pids" and not str(sandbox.get("pids", "")).startswith("private"):
        pytest.skip(f"no PID namespace here (isolation {sandbox.get('isolation')}): {sandbox.get('pids')}")
    functions = r["functions"]
    assert set(functions) == set(course.POINTS), r
    for fn, total in functions.items():
        outputs = "\n".join(t["output"] for t in r["tests"] if t["function"] == fn)
        if fn in case.zero:
            assert total["score"] == 0, f"{name}: {fn} should score 0:\n{json.dumps(r, indent=1)[:3000]}"
            assert outputs.strip(), f"{name}: no reason given for {fn}"
            if case.says:
                assert case.says.lower() in outputs.lower(), f"{name}: reason for {fn} lacks {case.says!r}:\n{outputs}"
        else:
            assert total["score"] == total["max_score"], f"{name}: {fn} should get full marks:\n{outputs}"
    # the gradebook agrees with results.json (scaled to the notebook's test-cell points)
    row = graded["gradebook"][name]
    for fn, total in functions.items():
        auto = row[f"{course.ASSIGNMENT}/test_{fn}"][0]
        assert auto == pytest.approx(course.POINTS[fn] * total["score"] / total["max_score"]), (fn, row)
    # no hidden-check source or traceback leaks into what the student sees
    text = json.dumps([t["output"] for t in r["tests"]])
    assert "test_fixture.py" not in text and "reference" not in text.lower()


def test_nothing_left_running_after_the_batch(graded: dict) -> None:
    """Children that left the process group and session (escaped_children_are_killed, fork
    bombs) die with their sandbox; no sandbox cgroup still holds a process."""
    assert graded["left_running"] == [], graded["left_running"]
    assert graded["cgroups_left"] == [], graded["cgroups_left"]


def test_every_result_says_which_isolation_was_achieved(graded: dict) -> None:
    for name in list(CASES) + list(HONEST):
        r = _results(graded, name)
        if "sandbox" not in r:      # not graded in a sandbox (malformed notebook, wrong assignment)
            continue
        sb = r["sandbox"]
        assert sb.get("isolation") in ("namespaces(root)", "bwrap", "landlock", "none"), sb
        assert sb.get("memory"), sb
        if sb["isolation"] in ("namespaces(root)", "bwrap"):
            assert sb["pids"].startswith("private") and sb["filesystem"].startswith("private"), sb
            assert sb["network"].startswith("off"), sb


def test_rerun_changes_nothing(tmp_path: Path) -> None:
    """The timing- and resource-sensitive cases graded twice (--force): the same scores, the
    honest students full marks both times."""
    checks_root = course.make_checks(tmp_path / "checks", timeout=3.0)
    course_dir = tmp_path / "course"
    sub = course_dir / "submitted"
    names = list(HONEST) + list(RERUN)
    for name in names:
        folder = sub / name / course.ASSIGNMENT
        if name in HONEST:
            course.write_notebook(folder / f"{course.ASSIGNMENT}.ipynb", course.CORRECT)
        else:
            folder.mkdir(parents=True)
            (folder / f"{course.ASSIGNMENT}.ipynb").write_text(notebook_text(CASES[name], []), encoding="utf-8")
        (folder / "timestamp.txt").write_text("2025-01-01 12:00:00.000000 UTC", encoding="utf-8")
    runs = []
    for extra in ([], ["--force"]):
        proc = subprocess.run(
            [sys.executable, "-m", "autograder", "batch", "--course-dir", str(course_dir), "--assignment",
             course.ASSIGNMENT, "--checks-root", str(checks_root), "--workers", "2", "--no-progress", *extra],
            cwd=str(ROOT), capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        scores = {}
        for name in names:
            r = json.loads((course_dir / "autograded" / name / course.ASSIGNMENT / "results.json").read_text())
            scores[name] = {t["name"]: t["score"] for t in r["tests"]}
        runs.append(scores)
    assert runs[0] == runs[1]
    for name in HONEST:
        assert sum(runs[0][name].values()) == course.MAX_SCORE
    assert _left_running() == []


def test_cli_grade_malformed_notebook_scores_zero_with_reason(tmp_path: Path) -> None:
    checks = course.make_checks(tmp_path / "checks")
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{ not json", encoding="utf-8")
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", "--assignment", course.ASSIGNMENT,
                           "--checks-root", str(checks), str(bad), "--json", str(out)],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(out.read_text())
    assert r["score"] == 0 and r["max_score"] == course.MAX_SCORE
    assert "not valid notebook JSON" in r["output"]
    assert all(t["score"] == 0 and "could not be graded" in t["output"] for t in r["tests"])
