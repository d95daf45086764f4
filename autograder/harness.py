"""Grade ONE submission: read its answer cells, run the hidden checks against a sandbox.

    results = grade_notebook("01_autodiff_backprop", "submitted/ada/01_autodiff_backprop/01_autodiff_backprop.ipynb")

The hidden checks (``autograder/<ID>/test_*.py``, written with :mod:`autograder.api`) run with
pytest IN THIS (trusted) PROCESS; their ``student`` fixture is a :class:`StudentProxy` that
forwards calls to a :class:`~autograder.sandbox.Sandbox` worker holding the student's code.

Results follow the Gradescope ``results.json`` shape plus a few keys of ours::

    {"score": 7.0, "max_score": 10.0,
     "tests": [{"name": "matmul_vjp: test_matmul_vjp_rectangular", "score": 2.0, "max_score": 2.0,
                "output": "", "function": "matmul_vjp", "status": "passed"}, ...],
     "functions": {"matmul_vjp": {"score": 2.0, "max_score": 4.0}, ...},
     "output": "<message about the whole submission, if any>",
     "assignment": ..., "submission": {"path": ..., "sha256": ...}, "sandbox": {...},
     "staff_notes": [...],   # for TAs only (internal check errors); never rendered as feedback
     "duration_s": ...}

Decisions (documented in the report/README):

* A notebook that is malformed (not JSON, not nbformat 4, broken cells) or is another
  assignment's notebook is GRADED: every check scores 0 and ``output`` says why; exit status 0.
* A missing file, an unknown assignment, a broken checks module or a sandbox that cannot start
  are HARNESS errors (:class:`HarnessError`, non-zero exit): nothing is recorded.
* Only answer cells (nbgrader ``solution`` cells, by ``grade_id``) are used, so edited or deleted
  locked/test cells change nothing; the checks are ours.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import safefile
from .base import (CHECKS_ROOT, HARNESS_VERSION, MAX_CELL_CHARS, MAX_NOTEBOOK_BYTES, REPO,  # noqa: F401
                   HarnessError, checks_dir, checks_fingerprint, graded_md_path, graded_names)
from .cells import (DEFAULT_POLICY, PROVIDED_NAMES, Cell, analyze_cell, analyze_cells,  # noqa: F401
                    cell_policies, graded_import_policies, import_policies, read_answer_cells)
from .plugin import GradingPlugin, Outcome, run_checks  # noqa: F401
from .results import Results, build as build_results, format_summary  # noqa: F401
from .sandbox import Limits
from .session import StudentProxy, Submission, SubmissionBudgetExhausted  # noqa: F401

__all__ = ["HarnessError", "grade_notebook", "grade", "checks_dir", "REPO", "CHECKS_ROOT",
           "HARNESS_VERSION", "graded_names", "format_summary"]

# The parts of the harness live in their own modules (and are re-exported here):
#   base.py     HarnessError, paths, limits, locating checks, GRADED.md names
#   cells.py    the answer cells: read, parsed and analysed (never executed), imports policies
#   session.py  the sandbox session of one submission and the ``student`` proxy
#   plugin.py   the pytest plugin running the hidden checks and recording outcomes
#   results.py  the results schema (one Results type, built in one place)


def grade(assignment: str, notebook: str | os.PathLike, *, checks_root: str | os.PathLike | None = None,
          student_dlkit: str | os.PathLike | None = None, limits: Limits | None = None,
          isolate: bool = True, within: str | os.PathLike | None = None,
          problem: str | None = None, quick: bool = False) -> dict[str, Any]:
    """Grade one notebook IN THIS PROCESS (runs pytest here); see :func:`grade_notebook`.

    The notebook is read with :func:`autograder.safefile.read_file` (no links, regular file,
    size-capped; ``within``: a trusted folder above it, below which no folder may be a link
    either).  An unusable file, or a ``problem`` the caller already found with the submission,
    is graded: every check 0 with the reason.

    ``quick``: the batch's quick pass (:class:`autograder.session.Submission`): the results
    may come back with ``"deferred"`` (why) instead of a score the caller may keep; the
    submission must then be graded again without ``quick``.
    """
    t0 = time.monotonic()
    folder = checks_dir(assignment, checks_root)
    path = Path(notebook)
    raw = b""
    if problem is None:
        try:
            raw = safefile.read_file(path, MAX_NOTEBOOK_BYTES, within=within)
        except safefile.UnsafeFile as exc:
            problem = str(exc)
        except OSError as exc:
            raise HarnessError(f"cannot read submission {path}: {exc.strerror or exc}") from None
    limits = limits or Limits()
    cells, reason = (None, problem) if problem is not None else read_answer_cells(raw, path.name)
    fatal = None if reason is None else f"Your notebook could not be graded: {reason}"
    kit = None if student_dlkit is None else str(student_dlkit)

    def session(c: dict[str, str]) -> Submission:
        return Submission(c, kit, limits, isolate, quick=quick)

    early: list[Submission] = []
    if cells is not None and fatal is None:
        early.append(session(cells))
        early[0].prestart()
    plugin = GradingPlugin(assignment, cells, fatal, lambda c: early[0] if early else session(c))
    try:
        run_checks(folder, plugin)
    finally:
        for sub in {id(x): x for x in early + ([plugin.submission] if plugin.submission else [])}.values():
            sub.close()
    results = _results(assignment, path, raw, plugin, plugin.fatal)
    if plugin.submission is not None:
        results["sandbox"] = dict(plugin.submission.isolation,
                                  workers_started=plugin.submission.workers_started)
        if quick:   # its memory line names the quick pass's cgroup limit
            results["sandbox"]["budgets"] = ("quick pass: a tenth of every budget, none of which ran "
                                             "out (the full budgets give the same result)")
    results["duration_s"] = round(time.monotonic() - t0, 3)
    if plugin.deferred is not None:
        results["deferred"] = plugin.deferred
    return results



def _results(assignment: str, path: Path, raw: bytes, plugin: GradingPlugin, fatal: str | None) -> Results:
    return build_results(assignment, path, raw, plugin.outcomes.values(), plugin.ignored, fatal)


def grade_notebook(assignment: str, notebook: str | os.PathLike, *,
                   checks_root: str | os.PathLike | None = None,
                   student_dlkit: str | os.PathLike | None = None,
                   in_process: bool | None = None, timeout: float = 900) -> dict[str, Any]:
    """Grade one submission and return its results dict.

    ``student_dlkit``: directory holding the student edition's ``dlkit`` (built with
    ``autograder.release.student_dlkit`` when None).  ``in_process``: run pytest in this
    process (None: yes, unless pytest is already running here, e.g. in the project's tests,
    in which case a ``python -m autograder grade`` subprocess is used).
    """
    if in_process is None:
        in_process = not os.environ.get("PYTEST_CURRENT_TEST")
    if in_process:
        with _student_edition(student_dlkit, assignment) as kit:
            return grade(assignment, notebook, checks_root=checks_root, student_dlkit=kit)
    with tempfile.TemporaryDirectory(prefix="dlkit-grade-") as tmp:
        out = Path(tmp) / "results.json"
        cmd = [sys.executable, "-m", "autograder", "grade", "--assignment", assignment, str(notebook),
               "--json", str(out), "--quiet"]
        if checks_root is not None:
            cmd += ["--checks-root", str(checks_root)]
        if student_dlkit is not None:
            cmd += ["--student-dlkit", str(student_dlkit)]
        proc = subprocess.run(cmd, cwd=str(REPO), capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise HarnessError(f"grading failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        return json.loads(out.read_text(encoding="utf-8"))


class _student_edition:
    """Context manager yielding a student-edition dlkit directory (built when not given, with the
    solution packs of the assignments before ``assignment`` baked in)."""

    def __init__(self, given: str | os.PathLike | None, assignment: str | None = None) -> None:
        self.given, self.assignment, self.tmp = given, assignment, None

    def __enter__(self) -> str | None:
        if self.given is not None:
            return str(self.given)
        self.tmp = tempfile.TemporaryDirectory(prefix="dlkit-student-edition-")
        return build_student_edition(self.tmp.name, self.assignment)

    def __exit__(self, *exc: Any) -> None:
        if self.tmp is not None:
            self.tmp.cleanup()


def build_student_edition(dest: str | os.PathLike, assignment: str | None = None) -> str | None:
    """The student edition of dlkit in ``dest`` (``autograder.release.student_dlkit``).

    Never the instructor edition: it holds reference implementations of graded pieces.  With
    ``assignment``, the solution packs of the EARLIER assignments (teaching order) are baked into
    ``dest/dlkit/_packs/``, so a submission's later pieces can run on the earlier ones (contract A);
    the pack of ``assignment`` itself and of later ones never enter the sandbox.  The copy is marked
    as the grader's, so ``dlkit.student`` resolves in grading mode there (plugged pieces and those
    packs only) even without ``DLKIT_GRADING=1``.
    """
    try:
        from .release import assignments, student_dlkit
    except ImportError as exc:  # pragma: no cover - release.py is part of the kit
        raise HarnessError(f"cannot build the student edition of dlkit: {exc}") from exc
    before = assignment if assignment in assignments() else None
    root = str(student_dlkit(dest, packs_before=before, grader=True))
    # Its bytecode, made here once: the sandbox can write none (a read-only mount, `python -B`),
    # so without it every sandbox compiled the whole kit again (~30 ms of its ~100 ms start).
    # Compiled under the path the sandbox sees it at (Sandbox binds it to /opt/student/dlkit).
    import compileall
    compileall.compile_dir(os.path.join(root, "dlkit"), quiet=2, ddir="/opt/student/dlkit")
    return root


