"""Grade nbgrader's ``submitted/`` tree in parallel, resumably, into the gradebook.

    python -m autograder batch --course-dir DIR --assignment ID [--workers N] [--db URL]

For every ``DIR/submitted/<student>/<ID>/<notebook>.ipynb`` (files there are only read):

1. a pool process grades it (:func:`autograder.harness.grade`: checks in the pool process, the
   student's code in that process's sandbox worker);
2. the main process writes ``DIR/autograded/<student>/<ID>/results.json`` and a copy of the
   notebook (for formgrader), ``DIR/feedback/<student>/<ID>/<notebook>.html`` (nbgrader's
   feedback layout), then upserts the scores into the gradebook (one commit);
3. only after that commit, it writes the journal marker
   ``DIR/autograded/<student>/<ID>/.dlkit-autograde.json`` (atomically), holding a key = hash of
   (notebook bytes, hidden checks, harness version, grade-cell points, database URL).

A rerun skips submissions whose marker key matches; everything else is (re)graded and its
gradebook rows overwritten with values computed from the results alone.  Killing the batch at
any moment therefore loses nothing and duplicates nothing: the rerun ends in the same gradebook
as an uninterrupted run.  A changed notebook or changed checks change the key: re-graded.
Only the main process writes the gradebook (SQLite has one writer).
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import gradebook as gbook
from .feedback import atomic_write, write_feedback
from .harness import (HARNESS_VERSION, HarnessError, REPO, build_student_edition, checks_dir,
                      checks_fingerprint, grade)

__all__ = ["run_batch", "discover", "MARKER", "KILL_HOOK_ENV"]

MARKER = ".dlkit-autograde.json"
#: Test hook: SIGKILL the batch right after this many gradebook commits (before their marker).
KILL_HOOK_ENV = "DLKIT_AUTOGRADER_TEST_KILL_AFTER"


@dataclass
class Job:
    student: str
    submitted_dir: Path
    notebook: Path | None      # None: the submission folder holds no notebook
    notebook_id: str


def _find_source(course_dir: Path, assignment: str) -> Path | None:
    for base in (course_dir / "source", course_dir / "notebooks", REPO / "notebooks"):
        path = base / assignment / f"{assignment}.ipynb"
        if path.is_file():
            return path
        found = sorted((base / assignment).glob("*.ipynb")) if (base / assignment).is_dir() else []
        if len(found) == 1:
            return found[0]
    return None


def discover(course_dir: Path, assignment: str, notebook_id: str) -> list[Job]:
    """Every student's submission folder for ``assignment`` (sorted by student id)."""
    root = course_dir / "submitted"
    jobs = []
    if not root.is_dir():
        return jobs
    for student_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        sub = student_dir / assignment
        if not sub.is_dir():
            continue
        notebooks = sorted(p for p in sub.glob("*.ipynb") if p.is_file())
        preferred = [p for p in notebooks if p.stem == notebook_id]
        nb = (preferred or notebooks or [None])[0]
        jobs.append(Job(student_dir.name, sub, nb, notebook_id))
    return jobs


# ------------------------------------------------------------------------------ pool side
_POOL: dict[str, Any] = {}


def _die_with_parent(parent: int) -> None:
    """Pool processes must not outlive a killed batch (Linux: parent-death signal)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:   # the parent died before the signal was armed
        os._exit(1)


def _pool_init(assignment: str, checks_root: str | None, kit: str | None, isolate: bool,
               parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is handled by the main process
    _die_with_parent(parent)
    _POOL.update(assignment=assignment, checks_root=checks_root, kit=kit, isolate=isolate)


def _pool_grade(student: str, notebook: str) -> tuple[str, dict | None, str | None]:
    try:
        results = grade(_POOL["assignment"], notebook, checks_root=_POOL["checks_root"],
                        student_dlkit=_POOL["kit"], isolate=_POOL["isolate"])
        return student, results, None
    except HarnessError as exc:
        return student, None, str(exc)
    except Exception as exc:  # noqa: BLE001 - reported, not recorded
        return student, None, f"{type(exc).__name__}: {exc}"


# ------------------------------------------------------------------------------ main side
def _key(job: Job, checks_fp: str, cell_max: dict[str, float], db_url: str) -> str:
    h = hashlib.sha256()
    h.update(job.notebook.read_bytes() if job.notebook else b"<no notebook>")
    h.update(json.dumps([checks_fp, HARNESS_VERSION, sorted(cell_max.items()), db_url,
                         job.notebook_id]).encode())
    return h.hexdigest()


def _marker_matches(path: Path, key: str) -> bool:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("key") == key
    except (OSError, ValueError, AttributeError):
        return False


def _no_notebook_results(assignment: str, job: Job) -> dict[str, Any]:
    return {"score": 0.0, "max_score": 0.0, "tests": [], "functions": {}, "assignment": assignment,
            "output": f"Your submission folder holds no .ipynb notebook for {assignment}.",
            "submission": {"path": str(job.submitted_dir), "sha256": None}, "staff_notes": []}


def _timestamp(job: Job) -> str | None:
    try:
        return (job.submitted_dir / "timestamp.txt").read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _record(course_dir: Path, assignment: str, job: Job, results: dict[str, Any], key: str,
            db_url: str, cell_max: dict[str, float]) -> None:
    """Write results, notebook copy, feedback, gradebook — then the marker (the journal)."""
    out_dir = course_dir / "autograded" / job.student / assignment
    atomic_write(out_dir / "results.json", json.dumps(results, indent=1))
    if job.notebook is not None:
        atomic_write(out_dir / f"{job.notebook_id}.ipynb", job.notebook.read_bytes())
    stamp = _timestamp(job)
    if stamp:
        atomic_write(out_dir / "timestamp.txt", stamp)
    write_feedback(course_dir / "feedback" / job.student / assignment, job.submitted_dir, results,
                   job.student, job.notebook_id)
    gbook.record_results(db_url, assignment, job.notebook_id, job.student,
                         gbook.cell_scores(results, cell_max), stamp)
    _kill_hook()
    atomic_write(out_dir / MARKER, json.dumps({"key": key, "score": results["score"],
                                               "max_score": results["max_score"],
                                               "graded_at": time.strftime("%Y-%m-%dT%H:%M:%S")}))


_COMMITS = 0


def _kill_hook() -> None:
    global _COMMITS
    _COMMITS += 1
    limit = os.environ.get(KILL_HOOK_ENV)
    if limit and _COMMITS >= int(limit):
        os.kill(os.getpid(), signal.SIGKILL)


def run_batch(course_dir: str | os.PathLike, assignment: str, *, workers: int = 2,
              db_url: str | None = None, checks_root: str | os.PathLike | None = None,
              force: bool = False, source_notebook: str | os.PathLike | None = None,
              progress: bool = True, isolate: bool = True, student_dlkit: str | None = None) -> int:
    """Grade every submission of ``assignment``; returns the exit status (0, or 1 if some failed)."""
    course = Path(course_dir).resolve()
    if not course.is_dir():
        raise HarnessError(f"course directory {course} does not exist")
    if workers < 1:
        raise HarnessError("--workers must be at least 1")
    folder = checks_dir(assignment, checks_root)
    db_url = db_url or gbook.default_db_url(course)
    source = Path(source_notebook) if source_notebook else _find_source(course, assignment)
    if source is not None and not source.is_file():
        raise HarnessError(f"source notebook {source} does not exist")
    cells = gbook.source_grade_cells(source) if source else []
    file_stem = source.stem if source else assignment
    checks_fp = checks_fingerprint(folder)

    jobs = discover(course, assignment, file_stem)
    todo: list[tuple[Job, str]] = []
    done: list[tuple[Job, str]] = []
    for job in jobs:
        key = _key(job, checks_fp, {c.grade_id: c.max_score for c in cells}, db_url)
        marker = course / "autograded" / job.student / assignment / MARKER
        if not force and _marker_matches(marker, key):
            done.append((job, key))
        else:
            todo.append((job, key))
    skipped = len(done)
    print(f"{assignment}: {len(jobs)} submission(s) in {course / 'submitted'}; "
          f"{skipped} already graded, {len(todo)} to grade with {workers} worker(s)", file=sys.stderr)

    failures: list[str] = []
    scores: list[float] = []
    t0 = time.monotonic()
    from tqdm.auto import tqdm
    with tempfile.TemporaryDirectory(prefix="dlkit-student-edition-") as tmp:
        kit = student_dlkit or build_student_edition(tmp)
        by_student = {job.student: (job, key) for job, key in todo if job.notebook is not None}
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_pool_init,
                                    initargs=(assignment, None if checks_root is None else str(checks_root),
                                              kit, isolate, os.getpid())) as pool:
            futures = [pool.submit(_pool_grade, student, str(job.notebook))
                       for student, (job, _) in by_student.items()]
            # While the pool grades: the gradebook (importing nbgrader takes seconds).
            notebook_id = gbook.gradebook_notebook(db_url, assignment, file_stem) or file_stem
            cell_max = gbook.ensure_assignment(db_url, assignment, notebook_id, cells)
            if not cell_max:
                print("warning: no grade cells known for this assignment: scores go to results.json "
                      "and feedback only (pass --source with the source notebook)", file=sys.stderr)
            # A marker without its gradebook rows (e.g. a replaced gradebook): grade again.
            recorded = gbook.submitted_students(db_url, assignment)
            for job, key in done:
                if job.student not in recorded:
                    todo.append((job, key))
                    skipped -= 1
                    if job.notebook is not None:
                        by_student[job.student] = (job, key)
                        futures.append(pool.submit(_pool_grade, job.student, str(job.notebook)))
            for job, _ in todo:
                job.notebook_id = notebook_id
            bar = tqdm(total=len(todo), disable=not progress or not todo, unit="sub", file=sys.stderr)
            for job, key in todo:   # submissions without a notebook need no grading
                if job.notebook is None:
                    _record(course, assignment, job, _no_notebook_results(assignment, job), key, db_url, cell_max)
                    bar.update(1)
            try:
                for fut in cf.as_completed(futures):
                    try:
                        student, results, error = fut.result()
                    except Exception as exc:  # noqa: BLE001 - e.g. a pool process died
                        failures.append(f"(pool) {type(exc).__name__}: {exc}")
                        bar.update(1)
                        continue
                    job, key = by_student[student]
                    if results is None:
                        failures.append(f"{student}: {error}")
                    else:
                        _record(course, assignment, job, results, key, db_url, cell_max)
                        scores.append(results["score"])
                    bar.update(1)
            except KeyboardInterrupt:
                for f in futures:
                    f.cancel()
                raise
            bar.close()
    elapsed = time.monotonic() - t0
    graded = len(scores)
    rate = f", {60 * graded / elapsed:.0f} submissions/min" if graded and elapsed > 0 else ""
    print(f"graded {graded}, skipped {skipped}, failed {len(failures)} in {elapsed:.1f} s{rate}; "
          f"gradebook: {db_url}", file=sys.stderr)
    for f in failures:
        print(f"NOT GRADED (harness error, nothing recorded): {f}", file=sys.stderr)
    return 1 if failures else 0
