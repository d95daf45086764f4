"""Gradescope: an autograder zip that runs the same sandboxed hidden checks.

    python -m autograder gradescope 03_optimization [--out gradescope_03_optimization.zip]

writes a zip for Gradescope's "Configure Autograder" page (Gradescope unpacks it into
/autograder/source, runs setup.sh there and copies run_autograder to /autograder/) holding

    setup.sh          run once when Gradescope builds the image: system packages (bubblewrap for
                      the sandbox), a virtual environment with the kit's locked runtime packages
    run_autograder    run per submission: grades the notebook found in /autograder/submission
                      and writes /autograder/results/results.json
    autograder/ ...   the grader (autograder/ with this assignment's hidden checks only; dlkit for
                      the trusted side; the grader's student edition of dlkit, with the earlier
                      assignments' solution packs, which is all the sandbox gets; GRADED.md)

``run_autograder`` calls ``python -m autograder gradescope-run``, i.e. :func:`autograder.harness.grade`
(the code path of ``make grade`` and ``nbgrader autograde``).  ``results.json`` follows Gradescope's
schema: one test per check with ``status`` "passed"/"failed" (our error/skipped/not-run statuses
become "failed", the original under ``extra_data``), the whole-submission message as ``output``,
everything else of ours under ``extra_data``.  Staff notes are NOT in results.json (students can
see it); they go to stdout, which the zip marks hidden from students.  ``GRADESCOPE_ROOT``
replaces ``/autograder`` (tests).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

__all__ = ["build_zip", "to_gradescope", "run", "main"]

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope image setup (Ubuntu): the sandbox's bubblewrap, Python, the locked runtime packages.
set -euo pipefail
ROOT="${GRADESCOPE_ROOT:-/autograder}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q python3 python3-venv python3-pip bubblewrap
python3 -m venv "$ROOT/venv"
"$ROOT/venv/bin/python" -m pip install -q --upgrade pip
"$ROOT/venv/bin/python" -m pip install -q -r "$ROOT/source/requirements/base.lock"
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this for every submission: grade it in the sandbox, write results/results.json.
set -uo pipefail
ROOT="${GRADESCOPE_ROOT:-/autograder}"
PY="${DLKIT_PYTHON:-$ROOT/venv/bin/python}"
[ -x "$PY" ] || PY=python3
cd "$ROOT/source"
exec "$PY" -m autograder gradescope-run --assignment "@ASSIGNMENT@" \\
    --submission "$ROOT/submission" --results "$ROOT/results/results.json" \\
    --student-dlkit "$ROOT/source/student_kit"
"""

#: our statuses -> Gradescope's (it knows only passed / failed)
_STATUS = {"passed": "passed"}


def to_gradescope(results: dict[str, Any]) -> dict[str, Any]:
    """Gradescope's ``results.json`` for our results (staff notes left out)."""
    tests = []
    for i, t in enumerate(results.get("tests", []), 1):
        tests.append({"name": t["name"], "number": str(i), "score": t["score"], "max_score": t["max_score"],
                      "status": _STATUS.get(t.get("status"), "failed"), "output": t.get("output", ""),
                      "visibility": "visible",
                      "extra_data": {"function": t.get("function"), "check_status": t.get("status")}})
    extra = {k: results[k] for k in ("assignment", "functions", "max_score", "submission", "sandbox",
                                     "harness_version", "duration_s") if k in results}
    return {"score": results["score"], "output": results.get("output", ""), "tests": tests,
            "execution_time": results.get("duration_s"), "visibility": "visible",
            "stdout_visibility": "hidden", "extra_data": extra}


def _find_notebook(submission: Path, assignment: str) -> tuple[Path | None, str | None]:
    """The submitted notebook: ``<ID>.ipynb`` (top level or one folder down), else the only
    ``.ipynb``; never through a link.  ``(path, None)`` or ``(None, why not)``."""
    from . import safefile
    found: list[Path] = []
    try:
        top = safefile.entries(submission)
    except (safefile.UnsafeFile, OSError) as exc:
        return None, f"the submission folder cannot be read: {exc}"
    for name, kind in sorted(top.items()):
        if name.endswith(".ipynb") and kind == "a regular file":
            found.append(submission / name)
        elif kind == "a folder" and not name.startswith(".") and name != "__MACOSX":
            try:
                inner = safefile.entries(submission / name, within=submission)
            except (safefile.UnsafeFile, OSError):
                continue
            found += [submission / name / n for n, k in sorted(inner.items())
                      if n.endswith(".ipynb") and k == "a regular file"]
    preferred = [p for p in found if p.name == f"{assignment}.ipynb"]
    if preferred:
        return preferred[0], None
    if len(found) == 1:
        return found[0], None
    if not found:
        return None, f"no notebook found: upload {assignment}.ipynb"
    return None, f"several notebooks and none named {assignment}.ipynb: " + ", ".join(p.name for p in found[:6])


def run(assignment: str, submission: str | os.PathLike, results_path: str | os.PathLike,
        student_dlkit: str | None = None, checks_root: str | None = None) -> int:
    """Grade a Gradescope submission folder; write Gradescope's results.json.  Exit status 0 when
    grading happened (whatever the score); a harness error writes a results.json saying so (no
    score) and returns 2."""
    from .harness import HarnessError, format_summary, grade
    submission = Path(submission)
    out = Path(results_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    notebook, problem = _find_notebook(submission, assignment)
    try:
        with tempfile.TemporaryDirectory(prefix="dlkit-student-edition-") as tmp:
            if student_dlkit is None:
                from .harness import build_student_edition
                student_dlkit = build_student_edition(tmp, assignment)
            results = grade(assignment, notebook or submission, checks_root=checks_root,
                            student_dlkit=student_dlkit, within=submission, problem=problem)
    except HarnessError as exc:
        out.write_text(json.dumps({"score": 0.0, "tests": [], "stdout_visibility": "hidden",
                                   "output": "The autograder could not grade this submission (not "
                                             "your fault); your instructor has been told.",
                                   "extra_data": {"harness_error": str(exc)[:4000]}}, indent=1))
        print(f"autograder: error: {exc}", file=sys.stderr)
        return 2
    out.write_text(json.dumps(to_gradescope(results), indent=1), encoding="utf-8")
    print(format_summary(results))        # with the staff notes: stdout is hidden from students
    return 0


def _add_tree(zf: zipfile.ZipFile, folder: Path, arc: str) -> None:
    for path in sorted(folder.rglob("*")):
        if "__pycache__" in path.parts or path.suffix == ".pyc" or path.is_symlink() or not path.is_file():
            continue
        zf.write(path, f"{arc}/{path.relative_to(folder).as_posix()}")


def _add_text(zf: zipfile.ZipFile, name: str, text: str, mode: int = 0o644) -> None:
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.external_attr = (0o100000 | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, text)


def build_zip(assignment: str, out: str | os.PathLike | None = None,
              checks_root: str | os.PathLike | None = None) -> Path:
    """Write the Gradescope autograder zip for ``assignment``; returns its path."""
    from .harness import REPO, build_student_edition, checks_dir, graded_md_path
    folder = checks_dir(assignment, checks_root)
    out = Path(out or f"gradescope_{assignment}.zip").resolve()
    package = Path(__file__).resolve().parent
    tmp_zip = out.with_name(out.name + ".tmp")
    with tempfile.TemporaryDirectory(prefix="dlkit-gradescope-") as tmp, \
            zipfile.ZipFile(tmp_zip, "w", zipfile.ZIP_DEFLATED) as zf:
        _add_text(zf, "setup.sh", SETUP_SH, 0o755)
        _add_text(zf, "run_autograder", RUN_AUTOGRADER.replace("@ASSIGNMENT@", assignment), 0o755)
        for path in sorted(package.iterdir()):                  # the grader, no other hidden checks
            if path.is_file() and path.suffix == ".py":
                zf.write(path, f"autograder/{path.name}")
            elif path.is_dir() and path.name != "__pycache__" and not path.name[:1].isdigit():
                _add_tree(zf, path, f"autograder/{path.name}")  # sub-packages (cudaemu)
        _add_tree(zf, folder, f"autograder/{assignment}")
        _add_tree(zf, REPO / "dlkit", "dlkit")
        if (REPO / "kernels").is_dir():
            _add_tree(zf, REPO / "kernels", "kernels")
        zf.write(graded_md_path(), "notebooks/GRADED.md")
        for name in ("pyproject.toml", "requirements/base.lock"):
            if (REPO / name).is_file():
                zf.write(REPO / name, f"{name}")
        kit = build_student_edition(Path(tmp) / "kit", assignment)
        _add_tree(zf, Path(kit), "student_kit")
    os.replace(tmp_zip, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder gradescope",
                                     description="write a Gradescope autograder zip for one assignment")
    parser.add_argument("assignment", help="assignment id, e.g. 03_optimization")
    parser.add_argument("--out", default=None, help="zip to write (default gradescope_<ID>.zip)")
    parser.add_argument("--checks-root", default=None, help="folder holding <ID>/test_*.py (default: autograder/)")
    args = parser.parse_args(argv)
    from .harness import HarnessError
    try:
        path = build_zip(args.assignment, args.out, args.checks_root)
    except HarnessError as exc:
        print(f"autograder: error: {exc}", file=sys.stderr)
        return 2
    print(f"Gradescope autograder for {args.assignment}: {path}")
    return 0


def run_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder gradescope-run")
    parser.add_argument("--assignment", required=True)
    parser.add_argument("--submission", required=True, help="Gradescope's submission folder")
    parser.add_argument("--results", required=True, help="results.json to write")
    parser.add_argument("--student-dlkit", default=None)
    parser.add_argument("--checks-root", default=None)
    args = parser.parse_args(argv)
    return run(args.assignment, args.submission, args.results, args.student_dlkit, args.checks_root)
