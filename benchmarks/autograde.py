"""Autograder throughput: our sandboxed batch vs ``nbgrader autograde`` on the same submissions.

    python benchmarks/autograde.py [--assignment ID] [--n 100] [--workers 2] [--nbgrader-limit K]

Generates ``--n`` submissions of one real assignment (the source notebook with its solutions):
60 % correct, 25 % partially wrong (one answer cell reset to the release stub), 15 % hostile
(an infinite loop, ``os._exit`` or a memory bomb in one graded function).  It grades them with
``python -m autograder batch`` and then with ``nbgrader autograde`` (which executes each whole
notebook in a kernel, cell timeout ``--cell-timeout``) in a scratch nbgrader course, and prints
submissions per minute for both plus the hidden checks' per-submission time (median of the
``duration_s`` in results.json).  ``--nbgrader-limit K`` times nbgrader on the first K
submissions only (same mix, interleaved) and reports its rate from those.
Work files go to benchmarks/_work/ (git-ignored) and are removed afterwards unless --keep.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HOSTILE_BODIES = {
    "loop": "    while True:\n        pass\n",
    "exit": "    import os\n    os._exit(0)\n",
    "membomb": "    blocks = []\n    while True:\n        blocks.append(bytearray(1 << 26))\n",
}


def pick_assignment() -> str:
    for folder in sorted((ROOT / "autograder").glob("[0-9][0-9]_*")):
        if any(folder.glob("test_*.py")) and (ROOT / "notebooks" / folder.name / f"{folder.name}.ipynb").is_file():
            return folder.name
    raise SystemExit("no assignment has both hidden checks and a notebook")


def _set_source(cell: dict, text: str) -> None:
    cell["source"] = text


def _src(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def make_submissions(source: Path, n: int) -> list[tuple[str, str, dict]]:
    """``(student, kind, notebook)`` for n students: correct / wrong / hostile, interleaved."""
    from dlkit import student as nbparse
    base = nbparse.read_notebook(source)
    answer_idx = [i for i, c in enumerate(base["cells"])
                  if c.get("cell_type") == "code" and c.get("metadata", {}).get("nbgrader", {}).get("solution")]
    kinds = (["correct"] * 12 + ["wrong"] * 5 + ["hostile"] * 3)  # 60 / 25 / 15 %
    out = []
    for k in range(n):
        kind = kinds[k % len(kinds)]
        nb = json.loads(json.dumps(base))
        target = nb["cells"][answer_idx[k % len(answer_idx)]]
        if kind == "wrong":
            _set_source(target, nbparse.stub_solutions(_src(target)))
        elif kind == "hostile":
            which = list(HOSTILE_BODIES)[k % len(HOSTILE_BODIES)]
            lines = _src(target).splitlines(True)
            for i, line in enumerate(lines):   # hostile lines right after the solution marker
                if "### BEGIN SOLUTION" in line:
                    indent = line[: len(line) - len(line.lstrip())]
                    body = "".join(indent + ln[4:] + "\n" for ln in HOSTILE_BODIES[which].splitlines())
                    lines.insert(i + 1, body)
                    break
            text = "".join(lines)
            _set_source(target, text)
            kind = f"hostile-{which}"
        out.append((f"s{k:03d}", kind, nb))
    return out


def write_course(course: Path, assignment: str, source: Path, subs: list[tuple[str, str, dict]]) -> None:
    (course / "source" / assignment).mkdir(parents=True, exist_ok=True)
    shutil.copy(source, course / "source" / assignment / f"{assignment}.ipynb")
    for student, _, nb in subs:
        folder = course / "submitted" / student / assignment
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{assignment}.ipynb").write_text(json.dumps(nb), encoding="utf-8")
        (folder / "timestamp.txt").write_text("2025-01-01 00:00:00.000000 UTC", encoding="utf-8")


def run_ours(course: Path, assignment: str, workers: int) -> tuple[float, list[dict]]:
    # The gradebook exists before grading in a real course (nbgrader generate_assignment made it),
    # as in the nbgrader run below: create it untimed.
    from autograder.gradebook import _alembic_on_path, default_db_url
    from nbgrader.api import Gradebook
    _alembic_on_path()
    Gradebook(default_db_url(course)).close()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "autograder", "batch", "--course-dir", str(course),
                           "--assignment", assignment, "--workers", str(workers), "--no-progress"],
                          cwd=str(ROOT), capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"autograder batch failed:\n{proc.stderr[-3000:]}")
    results = [json.loads(p.read_text()) for p in sorted((course / "autograded").glob(f"*/{assignment}/results.json"))]
    return elapsed, results


def run_nbgrader(course: Path, assignment: str, cell_timeout: int) -> tuple[float, str]:
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\nc.CourseDirectory.root = '.'\n"
        f"c.ExecutePreprocessor.timeout = {cell_timeout}\n", encoding="utf-8")
    nbgrader = [sys.executable, "-m", "nbgrader"]
    gen = subprocess.run(nbgrader + ["generate_assignment", assignment, "--force"], cwd=str(course),
                         capture_output=True, text=True, env=env)
    if gen.returncode != 0:
        return float("nan"), f"generate_assignment failed: {gen.stderr[-1500:]}"
    t0 = time.perf_counter()
    proc = subprocess.run(nbgrader + ["autograde", assignment, "--force"], cwd=str(course),
                          capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - t0
    note = "" if proc.returncode == 0 else f"nbgrader autograde exited {proc.returncode} (some submissions failed)"
    return elapsed, note


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--assignment", default=None)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--nbgrader-limit", type=int, default=None,
                    help="time nbgrader autograde on the first K submissions only (default: all)")
    ap.add_argument("--cell-timeout", type=int, default=30, help="nbgrader's per-cell timeout (s)")
    ap.add_argument("--skip-nbgrader", action="store_true")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    assignment = args.assignment or pick_assignment()
    source = ROOT / "notebooks" / assignment / f"{assignment}.ipynb"
    work = ROOT / "benchmarks" / "_work" / "autograde"
    shutil.rmtree(work, ignore_errors=True)
    subs = make_submissions(source, args.n)
    print(f"machine: {platform.machine()} | cores {os.cpu_count()} | python {platform.python_version()}")
    print(f"assignment {assignment}: {len(subs)} submissions "
          f"({sum(k == 'correct' for _, k, _ in subs)} correct, {sum(k == 'wrong' for _, k, _ in subs)} "
          f"partially wrong, {sum(k.startswith('hostile') for _, k, _ in subs)} hostile)")
    ours_dir = work / "ours"
    write_course(ours_dir, assignment, source, subs)
    elapsed, results = run_ours(ours_dir, assignment, args.workers)
    per_sub = [r.get("duration_s", 0) for r in results if "duration_s" in r]
    ok = [r for r, (_, k, _) in zip(results, subs) if k == "correct"]
    full = sum(r["score"] == r["max_score"] for r in ok)
    rate_ours = 60 * len(results) / elapsed
    print(f"autograder batch (--workers {args.workers}): {len(results)} graded in {elapsed:.1f} s "
          f"= {rate_ours:.0f} submissions/min (incl. start-up and gradebook); "
          f"correct ones at full marks: {full}/{len(ok)}")
    clean = [r.get("duration_s", 0) for r, (_, k, _) in zip(results, subs) if not k.startswith("hostile")]
    if per_sub:
        print(f"  hidden checks per submission (one grader process, sandbox included): median "
              f"{statistics.median(clean):.2f} s for correct/wrong ones, max {max(per_sub):.1f} s "
              f"(hostile: timeouts cost the check's budget)")
    if not args.skip_nbgrader:
        limit = args.nbgrader_limit or len(subs)
        nb_dir = work / "nbgrader"
        write_course(nb_dir, assignment, source, subs[:limit])
        nb_elapsed, note = run_nbgrader(nb_dir, assignment, args.cell_timeout)
        rate_nb = 60 * limit / nb_elapsed if nb_elapsed == nb_elapsed else float("nan")
        print(f"nbgrader autograde: {limit} graded in {nb_elapsed:.1f} s = {rate_nb:.1f} submissions/min "
              f"(cell timeout {args.cell_timeout} s){'; ' + note if note else ''}")
        print(f"speed-up: {rate_ours / rate_nb:.1f}x")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
