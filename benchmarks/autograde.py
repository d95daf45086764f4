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

    python benchmarks/autograde.py --hostile-mix [--n 40] [--workers 2] [--no-quick-pass]

Hostile mix (issue 10; no nbgrader run): (1) WORST CASE: one batch holding one submission of
every hostile kind (code: infinite loop in one or in EVERY answer cell, ``os._exit``, memory
bomb; files: a link to the instructor's notebook, a FIFO, a 1 TB sparse notebook, a 64 MB
notebook, an unparsable timestamp) reports the seconds each held a grader process
(``duration_s``, plus its quick pass's when that deferred it; target <= 60 s for any);
(2) THROUGHPUT: an all-honest batch of ``--n`` correct submissions vs a batch of the same size
with every 10th submission hostile (kinds in turn): honest submissions graded per minute until
the last honest one is recorded (its results.json written; target >= 0.9x), and per minute of
the whole batch's wall time (the hostile ones included).  ``--no-quick-pass`` grades both with
the batch's single full pass, for comparison.

    python benchmarks/autograde.py --scheduler local:1 --scheduler local:2 [--n 100] [--pin]

Engines (issue 14; no nbgrader run): the same submissions graded once per ``--scheduler`` (a fresh
copy of the course each time; ``local`` = the local process pool with ``--workers``, ``local:N`` =
an in-process Dask cluster of N worker processes, or a scheduler address): submissions per minute
of batch wall time (cluster start-up included), the throughput ratio of each engine to the first
(target >= 1.8x for local:2 vs local:1 on 2 idle cores), the gradebook-write share of wall
time (the batch's own ``gradebook writes`` figure; target <= 5 %), and how many cores the machine
kept busy during each batch (one worker keeps more than one busy: its sandbox starts while pytest
does, and the client records while the worker grades; the first engine's figure bounds what any
engine can gain on this machine).  ``--pin`` runs each engine on one core per worker (``local:N``
on CPUs 0..N-1, its client and sandboxes included): scaling with cores.
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
#: hostile kinds of the --hostile-mix run: code ones (in the answer cells) and file ones (what
#: the submission folder holds instead of a plain notebook; see write_course)
CODE_KINDS = ("loop", "loop-everywhere", "exit", "membomb")
FILE_KINDS = ("link-to-source", "fifo", "sparse-1tb", "notebook-64mb", "bad-timestamp")


def pick_assignment() -> str:
    for folder in sorted((ROOT / "autograder").glob("[0-9][0-9]_*")):
        if any(folder.glob("test_*.py")) and (ROOT / "notebooks" / folder.name / f"{folder.name}.ipynb").is_file():
            return folder.name
    raise SystemExit("no assignment has both hidden checks and a notebook")


def _set_source(cell: dict, text: str) -> None:
    cell["source"] = text


def _src(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _inject(cell: dict, body: str) -> None:
    """Hostile lines right after the cell's solution marker."""
    lines = _src(cell).splitlines(True)
    for i, line in enumerate(lines):
        if "### BEGIN SOLUTION" in line:
            indent = line[: len(line) - len(line.lstrip())]
            lines.insert(i + 1, "".join(indent + ln[4:] + "\n" for ln in body.splitlines()))
            break
    _set_source(cell, "".join(lines))


def make_hostile_mix(source: Path, kinds: list[str]) -> list[tuple[str, str, dict]]:
    """``(student, kind, notebook)`` for the given kinds (``correct`` or a hostile kind)."""
    from dlkit import student as nbparse
    base = nbparse.read_notebook(source)
    answers = [i for i, c in enumerate(base["cells"])
               if c.get("cell_type") == "code" and c.get("metadata", {}).get("nbgrader", {}).get("solution")]
    out = []
    for k, kind in enumerate(kinds):
        nb = json.loads(json.dumps(base))
        if kind == "loop-everywhere":
            for i in answers:
                _inject(nb["cells"][i], HOSTILE_BODIES["loop"])
        elif kind in HOSTILE_BODIES:
            _inject(nb["cells"][answers[k % len(answers)]], HOSTILE_BODIES[kind])
        out.append((f"s{k:03d}", kind, nb))
    return out


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
            from tests.nbcontract import stub_solutions   # moved out of dlkit.student (issue 11)
            _set_source(target, stub_solutions(_src(target)))
        elif kind == "hostile":
            which = list(HOSTILE_BODIES)[k % len(HOSTILE_BODIES)]
            _inject(target, HOSTILE_BODIES[which])
            kind = f"hostile-{which}"
        out.append((f"s{k:03d}", kind, nb))
    return out


def write_course(course: Path, assignment: str, source: Path, subs: list[tuple[str, str, dict]]) -> None:
    (course / "source" / assignment).mkdir(parents=True, exist_ok=True)
    shutil.copy(source, course / "source" / assignment / f"{assignment}.ipynb")
    for student, kind, nb in subs:
        folder = course / "submitted" / student / assignment
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{assignment}.ipynb"
        path.write_text(json.dumps(nb), encoding="utf-8")
        (folder / "timestamp.txt").write_text("2025-01-01 00:00:00.000000 UTC", encoding="utf-8")
        if kind == "link-to-source":          # copied work: the instructor's own notebook
            path.unlink()
            path.symlink_to(course / "source" / assignment / f"{assignment}.ipynb")
        elif kind == "fifo":
            path.unlink()
            os.mkfifo(path)
        elif kind in ("sparse-1tb", "notebook-64mb"):
            with open(path, "r+b") as fh:     # sparse 1 TB; the 64 MB one as real bytes
                if kind == "sparse-1tb":
                    fh.truncate(1 << 40)
                else:
                    fh.seek(0, os.SEEK_END)
                    fh.write(b" " * (64 << 20))
        elif kind == "bad-timestamp":
            (folder / "timestamp.txt").write_text("yesterday, honestly", encoding="utf-8")


def run_hostile_mix(assignment: str, source: Path, n: int, workers: int, work: Path,
                    extra: tuple = ()) -> None:
    """The worst case per hostile kind, and honest throughput with 10 % hostile submissions."""
    kinds = list(CODE_KINDS + FILE_KINDS)
    worst_dir = work / "worst"
    subs = make_hostile_mix(source, kinds)
    write_course(worst_dir, assignment, source, subs)
    elapsed, results = run_ours(worst_dir, assignment, workers, extra=extra)
    by_student = {r["student"]: r for r in results}
    print(f"worst case ({len(kinds)} hostile kinds, one submission each; {elapsed:.1f} s for the batch):")
    worst = 0.0
    for student, kind, _ in subs:
        r = by_student.get(student, {})
        # a deferred submission held a grader twice: its quick pass, then its full grading
        held = r.get("duration_s", float("nan")) + ((r.get("quick_pass") or {}).get("duration_s") or 0.0)
        worst = max(worst, held) if held == held else worst
        why = (r.get("output") or "").replace("Your notebook could not be graded: ", "")
        print(f"  {kind:16} held a grader {held:6.1f} s, score {r.get('score', float('nan')):g}/"
              f"{r.get('max_score', float('nan')):g}  {why.splitlines()[0][-60:] if why else ''}")
    print(f"  worst: {worst:.1f} s (target <= 60 s: {'met' if worst <= 60 else 'NOT met'})")
    rates: dict[str, dict[str, float]] = {}
    for label, pattern in (("all honest", ["correct"] * n),
                           ("10% hostile", ["correct" if k % 10 != 9 else kinds[(k // 10) % len(kinds)]
                                            for k in range(n)])):
        folder = work / label.replace(" ", "-").replace("%", "pct")
        subs = make_hostile_mix(source, pattern)
        write_course(folder, assignment, source, subs)
        elapsed, results = run_ours(folder, assignment, workers, extra=extra)
        honest = [r for r in results if dict((s, k) for s, k, _ in subs)[r["student"]] == "correct"]
        full = sum(r["score"] == r["max_score"] for r in honest)
        last = max(r["recorded_s"] for r in honest)
        rates[label] = {"batch": 60 * len(honest) / elapsed, "honest": 60 * len(honest) / last}
        print(f"{label}: {len(results)} submissions in {elapsed:.1f} s, the last honest one recorded "
              f"at {last:.1f} s; honest ones: {len(honest)} ({full} at full marks) = "
              f"{rates[label]['honest']:.0f} honest/min until the last honest one, "
              f"{rates[label]['batch']:.0f} honest/min of the whole batch")
    for what, text in (("honest", "until the last honest submission is recorded"),
                       ("batch", "over the whole batch's wall time")):
        ratio = rates["10% hostile"][what] / rates["all honest"][what]
        print(f"honest throughput with 10% hostile / all honest, {text}: {ratio:.2f}x"
              + (f" (target >= 0.9x: {'met' if ratio >= 0.9 else 'NOT met'})" if what == "honest" else ""))


def busy_core_seconds() -> float:
    """CPU time the whole machine has spent busy (all cores, /proc/stat), in seconds."""
    with open("/proc/stat") as f:
        user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def engine_cores(engine: str, workers: int) -> int:
    """The cores ``--pin`` gives an engine: one per worker process."""
    if engine == "local":
        return workers
    return int(engine.partition(":")[2] or 1) if engine.startswith("local") else os.cpu_count() or 1


def run_ours(course: Path, assignment: str, workers: int, scheduler: str | None = None,
             stats: dict | None = None, extra: tuple = (), cpus: set[int] | None = None,
             ) -> tuple[float, list[dict]]:
    """Grade the course's submissions with ``python -m autograder batch``: (wall seconds, every
    results.json with ``student`` and ``recorded_s``, when it was written, from the start).
    ``cpus``: run the batch (and every process it starts) on those CPUs only; ``stats`` gets the
    gradebook-write seconds and the machine's busy core-seconds during the batch."""
    # The gradebook exists before grading in a real course (nbgrader generate_assignment made it),
    # as in the nbgrader run below: create it untimed.
    from autograder.gradebook import _alembic_on_path, default_db_url
    from nbgrader.api import Gradebook
    _alembic_on_path()
    Gradebook(default_db_url(course)).close()
    t0, wall0, busy0 = time.perf_counter(), time.time(), busy_core_seconds()
    engine = ["--scheduler", scheduler] if scheduler and scheduler != "local" else []
    engine += list(extra)
    proc = subprocess.run([sys.executable, "-m", "autograder", "batch", "--course-dir", str(course),
                           "--assignment", assignment, "--workers", str(workers), "--no-progress", *engine],
                          cwd=str(ROOT), capture_output=True, text=True,
                          preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    elapsed = time.perf_counter() - t0
    busy = busy_core_seconds() - busy0
    if proc.returncode != 0:
        raise SystemExit(f"autograder batch failed:\n{proc.stderr[-3000:]}")
    if stats is not None:
        import re
        m = re.search(r"^gradebook writes: ([0-9.]+) s", proc.stderr, re.MULTILINE)
        stats["gradebook_s"] = float(m.group(1)) if m else float("nan")
        stats["stderr"] = proc.stderr
        stats["busy_core_s"] = busy
    results = []
    for p in sorted((course / "autograded").glob(f"*/{assignment}/results.json")):
        results.append(dict(json.loads(p.read_text()), student=p.parent.parent.name,
                            recorded_s=p.stat().st_mtime - wall0))
    return elapsed, results


def run_engines(assignment: str, source: Path, subs: list, engines: list[str], workers: int,
                work: Path, pin: bool = False) -> None:
    """The same submissions graded by each engine: throughput, ratio to the first, gradebook
    share, and how many cores the machine kept busy meanwhile.  ``pin``: each engine runs on one
    core per worker process (``local:N`` on CPUs 0..N-1), the whole batch included."""
    first = None
    for i, engine in enumerate(engines):
        folder = work / f"engine-{i}"
        write_course(folder, assignment, source, subs)
        stats: dict = {}
        cpus = set(range(engine_cores(engine, workers))) if pin else None
        elapsed, results = run_ours(folder, assignment, workers, scheduler=engine, stats=stats, cpus=cpus)
        rate = 60 * len(results) / elapsed
        first = first or rate
        share = stats["gradebook_s"] / elapsed
        label = f"--workers {workers}" if engine == "local" else f"--scheduler {engine}"
        label += f" on {len(cpus)} core(s)" if cpus else ""
        cores = stats["busy_core_s"] / elapsed
        print(f"{label}: {len(results)} graded in {elapsed:.1f} s = {rate:.1f} submissions/min "
              f"({rate / first:.2f}x the first); gradebook writes {stats['gradebook_s']:.2f} s = "
              f"{100 * share:.1f} % of wall time; the machine kept {cores:.2f} of {os.cpu_count()} "
              f"cores busy")
        if i == 0 and not pin and cores > 1.0:
            print(f"  (with the same CPU per submission, an engine on {os.cpu_count()} cores can be at "
                  f"most {os.cpu_count() / cores:.2f}x this one: it already keeps {cores:.2f} busy)")
        scores = sorted((r["student"], r["score"]) for r in results)
        if i == 0:
            reference = scores
        elif scores != reference:
            print("  WARNING: scores differ from the first engine's")


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
    ap.add_argument("--hostile-mix", action="store_true",
                    help="worst case per hostile kind + honest throughput with 10%% hostile (no nbgrader)")
    ap.add_argument("--no-quick-pass", action="store_true",
                    help="--hostile-mix: grade with the batch's --no-quick-pass (one pass, full budgets)")
    ap.add_argument("--scheduler", action="append", default=None, metavar="local|local:N|ADDRESS",
                    help="compare grading engines on the same submissions (repeat: e.g. --scheduler local:1 "
                         "--scheduler local:2); no nbgrader run")
    ap.add_argument("--pin", action="store_true",
                    help="--scheduler: run each engine on one core per worker (local:N on CPUs 0..N-1): "
                         "scaling with cores, not only with worker processes")
    args = ap.parse_args()
    assignment = args.assignment or pick_assignment()
    source = ROOT / "notebooks" / assignment / f"{assignment}.ipynb"
    work = ROOT / "benchmarks" / "_work" / "autograde"
    shutil.rmtree(work, ignore_errors=True)
    if args.hostile_mix:
        print(f"machine: {platform.machine()} | cores {os.cpu_count()} | python {platform.python_version()}"
              f" | assignment {assignment}, --workers {args.workers}")
        run_hostile_mix(assignment, source, args.n, args.workers, work,
                        extra=("--no-quick-pass",) if args.no_quick_pass else ())
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        return 0
    subs = make_submissions(source, args.n)
    if args.scheduler:
        print(f"machine: {platform.machine()} | cores {os.cpu_count()} | python {platform.python_version()}"
              f" | assignment {assignment}, {len(subs)} submissions")
        run_engines(assignment, source, subs, args.scheduler, args.workers, work, pin=args.pin)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        return 0
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
