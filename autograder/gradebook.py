"""Recording autograder scores in the nbgrader gradebook (idempotent upserts).

Our checks give points per graded FUNCTION; nbgrader grades per GRADE CELL.  Function ``f`` maps
to the autograder-tests cell ``test_f`` (notebooks/GRADED.md), whose max points come from the
source notebook (or from the gradebook, if ``nbgrader generate_assignment`` already registered
the assignment).  The cell's ``auto_score`` is ``cell_max * score_f / max_f``.

Every write sets values computed from the results alone, so writing the same results twice
leaves the gradebook exactly as writing them once (what makes batch grading resumable).
Manual scores given in formgrader are never touched; grade cells our checks do not cover (e.g.
manually graded answers) keep ``auto_score = None`` and ``needs_manual_grade = True``, as
nbgrader's own autograde leaves them.
"""
from __future__ import annotations

import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CellSpec", "Record", "source_grade_cells", "record_results", "record_many", "set_grade", "set_comments", "cell_scores", "dump_gradebook",
           "default_db_url"]


@dataclass(frozen=True)
class CellSpec:
    """An autograder-tests grade cell of the source notebook."""

    grade_id: str
    max_score: float


def _alembic_on_path() -> None:
    """nbgrader runs the ``alembic`` command when it creates a gradebook: make it findable."""
    bindir = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if bindir not in path.split(os.pathsep):
        os.environ["PATH"] = bindir + (os.pathsep + path if path else "")


def default_db_url(course_dir: str | Path) -> str:
    return f"sqlite:///{Path(course_dir).resolve() / 'gradebook.db'}"


def source_grade_cells(source_notebook: Path) -> list[CellSpec]:
    """The autograder-tests cells (``grade_id``, points) of a source notebook."""
    from dlkit import student as nbparse
    nb = nbparse.read_notebook(source_notebook)
    return [CellSpec(gid, float(points)) for gid, (_, points) in nbparse.test_cells(nb).items()]


def source_answer_ids(source_notebook: Path) -> list[str]:
    """The answer (solution) cells' ``grade_id`` of a source notebook."""
    from dlkit import student as nbparse
    return list(nbparse.answer_cells(nbparse.read_notebook(source_notebook)))


def cell_scores(results: dict[str, Any], cell_max: dict[str, float]) -> dict[str, float]:
    """``{grade_id: auto_score}`` for the grade cells ``test_<function>`` our checks cover."""
    out = {}
    for function, total in results.get("functions", {}).items():
        gid = f"test_{function}"
        if gid in cell_max and total["max_score"] > 0:
            out[gid] = round(cell_max[gid] * total["score"] / total["max_score"], 6)
    return out


def _retry(fn: Any, attempts: int = 8) -> Any:
    """Run a gradebook transaction, retrying while another process holds the SQLite lock."""
    from sqlalchemy.exc import OperationalError, SAWarning
    _alembic_on_path()
    for i in range(attempts):
        try:
            with warnings.catch_warnings():
                # nbgrader's add_submission triggers harmless autoflush warnings
                warnings.simplefilter("ignore", SAWarning)
                return fn()
        except OperationalError as exc:
            if "locked" not in str(exc) or i == attempts - 1:
                raise
            time.sleep(0.2 * (i + 1))


def ensure_assignment(db_url: str, assignment: str, notebook_id: str, cells: list[CellSpec],
                      answer_ids: list[str] = ()) -> dict[str, float]:
    """Make sure the assignment, its notebook, grade cells and answer (solution) cells exist;
    return ``{grade_id: max}``.  Answer cells carry the check messages as comments.

    Cells already in the gradebook (from ``nbgrader generate_assignment``) win over ``cells``.
    """
    from nbgrader.api import Gradebook, MissingEntry

    def work() -> dict[str, float]:
        with Gradebook(db_url) as gb:
            gb.update_or_create_assignment(assignment)
            try:
                nb = gb.find_notebook(notebook_id, assignment)
            except MissingEntry:
                nb = gb.update_or_create_notebook(notebook_id, assignment)
            have = {c.name: float(c.max_score) for c in nb.grade_cells}
            for spec in cells:
                if spec.grade_id not in have:
                    gb.update_or_create_grade_cell(spec.grade_id, notebook_id, assignment,
                                                   max_score=spec.max_score, cell_type="code")
                    have[spec.grade_id] = spec.max_score
            solutions = {c.name for c in nb.solution_cells}
            for gid in answer_ids:
                if gid not in solutions:
                    gb.update_or_create_solution_cell(gid, notebook_id, assignment)
            return have

    return _retry(work)


def gradebook_notebook(db_url: str, assignment: str, submitted_name: str) -> str | None:
    """The gradebook's notebook id for a submitted notebook file stem (None: not registered)."""
    from nbgrader.api import Gradebook, MissingEntry

    def work() -> list[str] | None:
        with Gradebook(db_url) as gb:
            try:
                return [nb.name for nb in gb.find_assignment(assignment).notebooks]
            except MissingEntry:
                return None

    names = _retry(work)
    if names is None:
        return None
    if submitted_name in names:
        return submitted_name
    return names[0] if len(names) == 1 else None


def set_grade(grade: Any, scores: dict[str, float]) -> None:
    """The one rule for a grade cell's auto score (the batch and ``nbgrader autograde`` share it).

    A cell our checks cover gets its scaled score (needing manual review only if a TA already
    gave a manual score); any other grade cell (manually graded answers, markdown/task cells)
    gets ``auto_score = None`` and ``needs_manual_grade = True``.
    """
    if grade.name in scores:
        grade.auto_score = scores[grade.name]
        grade.needs_manual_grade = grade.manual_score is not None
    else:
        grade.auto_score = None
        grade.needs_manual_grade = True


@dataclass
class Record:
    """One graded submission to write: its student, cell scores, timestamp and cell comments."""

    student: str
    scores: dict[str, float]
    timestamp: str | None = None
    comments: dict[str, str] | None = None      # {answer-cell grade_id: check messages}


def record_many(db_url: str, assignment: str, notebook_id: str, records: list[Record]) -> None:
    """Upsert several submissions' students, submissions, auto scores and auto comments in ONE
    gradebook session and ONE commit (all or nothing).

    Idempotent: every value is computed from the records alone, so writing the same records
    again leaves the gradebook as it was.  Manual scores and manual comments are never touched.
    """
    from nbgrader.api import Gradebook, MissingEntry
    from nbgrader.utils import parse_utc

    def work() -> None:
        with Gradebook(db_url) as gb:
            commit = gb.db.commit
            # nbgrader's helpers (add_submission, update_or_create_student) commit after every
            # row: flush instead, so the records land in ONE transaction (all or nothing, and one
            # fsync instead of two per submission)
            gb.db.commit = gb.db.flush
            try:
                _upsert(gb)
            finally:
                del gb.db.commit
            commit()

    def _upsert(gb: Any) -> None:
        for rec in records:
            gb.update_or_create_student(rec.student)
            try:
                sub = gb.find_submission(assignment, rec.student)
                if rec.timestamp:
                    sub.timestamp = parse_utc(rec.timestamp)
            except MissingEntry:
                kwargs = {"timestamp": rec.timestamp} if rec.timestamp else {}
                sub = gb.add_submission(assignment, rec.student, **kwargs)
            for nb in sub.notebooks:
                if nb.name != notebook_id:
                    continue
                for grade in nb.grades:
                    set_grade(grade, rec.scores)
                if rec.comments is not None:
                    set_comments(gb, nb, rec.comments)

    _retry(work)


def set_comments(gb: Any, nb: Any, comments: dict[str, str]) -> None:
    """Every answer cell's auto comment (rows created for cells registered after submission)."""
    from nbgrader.api import Comment
    have = {c.name: c for c in nb.comments}
    for cell in nb.notebook.solution_cells:
        if cell.name not in have:
            have[cell.name] = Comment(cell_id=cell.id, notebook=nb)
            gb.db.add(have[cell.name])
    for name, comment in have.items():
        comment.auto_comment = comments.get(name)


def record_results(db_url: str, assignment: str, notebook_id: str, student: str,
                   scores: dict[str, float], timestamp: str | None = None,
                   comments: dict[str, str] | None = None) -> None:
    """Upsert one student's submission and its auto scores (and comments); one commit."""
    record_many(db_url, assignment, notebook_id, [Record(student, scores, timestamp, comments)])


def submitted_students(db_url: str, assignment: str) -> set[str]:
    """Ids of the students with a submission of ``assignment`` in the gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    def work() -> set[str]:
        with Gradebook(db_url) as gb:
            try:
                return {sub.student.id for sub in gb.find_assignment(assignment).submissions}
            except MissingEntry:
                return set()

    return _retry(work)


def _dump(db_url: str, assignment: str, cells: Any) -> dict[str, dict[str, Any]]:
    """``{student: {notebook/name: value}}`` with ``cells(notebook)`` giving (name, value) pairs."""
    from nbgrader.api import Gradebook, MissingEntry
    out: dict[str, dict[str, Any]] = {}
    _alembic_on_path()
    with Gradebook(db_url) as gb:
        try:
            subs = gb.find_assignment(assignment).submissions
        except MissingEntry:
            return out
        for sub in subs:
            row = out.setdefault(sub.student.id, {})
            for nb in sub.notebooks:
                row.update((f"{nb.name}/{name}", value) for name, value in cells(nb))
        return out


def dump_gradebook(db_url: str, assignment: str) -> dict[str, dict[str, Any]]:
    """``{student: {grade_id: (auto_score, manual_score, needs_manual_grade)}}`` — for tests."""
    return _dump(db_url, assignment, lambda nb: (
        (g.name, (g.auto_score, g.manual_score, bool(g.needs_manual_grade))) for g in nb.grades))


def dump_comments(db_url: str, assignment: str) -> dict[str, dict[str, str | None]]:
    """``{student: {notebook/answer_cell: comment}}`` (auto or manual) — for tests."""
    return _dump(db_url, assignment, lambda nb: ((c.name, c.comment) for c in nb.comments))
