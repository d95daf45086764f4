"""Command line: ``python -m autograder {grade,batch,release} ...``.

    python -m autograder grade --assignment 01_autodiff_backprop SUBMISSION.ipynb [--json OUT]
    python -m autograder batch --course-dir DIR --assignment ID [--workers N] [--db URL]
                               [--scheduler tcp://HOST:8786 | local:N] [--allow-weak-isolation]
                               [--no-quick-pass]
    python -m autograder release --out release          (autograder/release.py)
    python -m autograder gradescope ID [--out ZIP]       (autograder/gradescope.py)

Exit status: 0 when grading happened (whatever the score), 2 for usage or harness errors
(unknown assignment, unreadable file, broken checks, sandbox cannot start), 1 when a batch
finished but some submissions could not be graded (they are listed and not recorded).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path


def _grade(args: argparse.Namespace) -> int:
    from .harness import HarnessError, build_student_edition, format_summary, grade
    from .sandbox import Limits
    try:
        with tempfile.TemporaryDirectory(prefix="dlkit-student-edition-") as tmp:
            kit = args.student_dlkit or build_student_edition(tmp, args.assignment)
            results = grade(args.assignment, args.submission, checks_root=args.checks_root,
                            student_dlkit=kit, limits=Limits(), isolate=not args.no_isolation)
    except HarnessError as exc:
        print(f"autograder: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = out.with_name(out.name + ".tmp")
        tmp_out.write_text(json.dumps(results, indent=1), encoding="utf-8")
        os.replace(tmp_out, out)
    if not args.quiet:
        print(format_summary(results))
    return 0


def _batch(args: argparse.Namespace) -> int:
    from .batch import run_batch
    from .harness import HarnessError
    try:
        return run_batch(args.course_dir, args.assignment, workers=args.workers, db_url=args.db,
                         checks_root=args.checks_root, force=args.force,
                         source_notebook=args.source, progress=not args.no_progress,
                         isolate=not args.no_isolation, record_every=args.record_every,
                         scheduler=args.scheduler, allow_weak_isolation=args.allow_weak_isolation,
                         quick_pass=not args.no_quick_pass)
    except HarnessError as exc:
        print(f"autograder: error: {exc}", file=sys.stderr)
        return 2


def _escape_unencodable_output() -> None:
    """Student text (names, messages) may hold lone surrogates: print them escaped, never crash."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):   # replaced streams (e.g. under pytest's capture)
            pass


def main(argv: list[str] | None = None) -> int:
    _escape_unencodable_output()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "release":
        from .release import main as release_main
        return int(release_main(argv[1:]) or 0)
    if argv and argv[0] in ("gradescope", "gradescope-run"):
        from . import gradescope
        return (gradescope.main if argv[0] == "gradescope" else gradescope.run_main)(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--assignment", required=True, help="assignment id, e.g. 01_autodiff_backprop")
    common.add_argument("--checks-root", default=None,
                        help="folder holding <assignment>/test_*.py hidden checks (default: autograder/)")
    common.add_argument("--no-isolation", action="store_true",
                        help="skip namespaces/landlock (debugging only; limits still apply)")
    g = sub.add_parser("grade", parents=[common], help="grade one submitted notebook")
    g.add_argument("submission", help="the student's .ipynb")
    g.add_argument("--json", help="write Gradescope-shaped results here")
    g.add_argument("--quiet", action="store_true", help="print nothing (use with --json)")
    g.add_argument("--student-dlkit", default=None,
                   help="directory holding the student edition's dlkit (built when omitted)")
    b = sub.add_parser("batch", parents=[common], help="grade nbgrader's submitted/ tree")
    b.add_argument("--course-dir", required=True, help="nbgrader course directory")
    b.add_argument("--workers", type=int, default=2, help="parallel graders (default 2)")
    b.add_argument("--db", default=None, help="SQLAlchemy URL (default sqlite:///DIR/gradebook.db)")
    b.add_argument("--force", action="store_true", help="re-grade submissions already graded")
    b.add_argument("--record-every", type=int, default=32,
                   help="graded submissions written per gradebook commit (default 32)")
    b.add_argument("--source", default=None,
                   help="source notebook with the test cells' points (default: found in the course)")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.add_argument("--scheduler", default=None, metavar="ADDRESS|local:N",
                   help="grade on a Dask distributed cluster: a scheduler address (tcp://host:8786), or "
                        "local:N for an in-process cluster of N worker processes (needs the cluster extra: "
                        "pip install -e \".[cluster]\"); --workers is then ignored")
    b.add_argument("--allow-weak-isolation", action="store_true",
                   help="with --scheduler: let workers whose sandbox has no namespaces (Landlock only) "
                        "grade; by default they refuse")
    b.add_argument("--no-quick-pass", action="store_true",
                   help="grade each submission once with the full budgets (by default a quick pass with "
                        "a tenth of every budget comes first, and only submissions that run out of one, or "
                        "crash, are graded again with the full budgets, after the others)")
    sub.add_parser("release", help="build the student edition (see autograder/release.py)")
    sub.add_parser("gradescope", help="write a Gradescope autograder zip (see autograder/gradescope.py)")
    args = parser.parse_args(argv)
    if args.command == "grade":
        return _grade(args)
    return _batch(args)


if __name__ == "__main__":
    sys.exit(main())
