"""The batch on Dask distributed (issue 14; autograder/distributed.py).

The course: the fixture assignment (tests/adversarial/course.py) with two honest students and a
subset of the hostile cases of tests/adversarial/hostile.py (SUBSET: one of each kind — process
exits, a timeout, memory and fork bombs, network and file probes, forged results, malformed and
wrong notebooks, a missing cell, a pid probe, escaped children; the full set takes too long twice
over on a 2-core machine).  The same course is graded by the local batch and by
``--scheduler local:2``: gradebook and results.json must be identical (but for ``duration_s``, the
quick pass's timing and words, and the sandbox's uid number, which differ between any two runs of
the local batch too, and the words for how a crashed sandbox worker ended: see ``_ENDED``).
A worker process SIGKILLed mid-batch costs nothing (the gradebook equals the uninterrupted one; a
rerun grades nothing); a submission that kills every worker grading it is reported as not graded
after Dask's retry limit while the others are recorded; a separate ``dask scheduler`` and ``dask
worker`` on 127.0.0.1 grade the batch.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="the cluster extra is not installed: pip install -e '.[cluster]'")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE / "adversarial"))

import course  # noqa: E402
from hostile import CASES, notebook_text  # noqa: E402

from autograder.distributed import (DIE_HOOK_ENV, DIE_ONCE_HOOK_ENV, ISOLATION_RANK, STRONG, WEAK_HOOK_ENV,  # noqa: E402
                                    _refusal, parse_scheduler, probe_isolation, task_key)
from autograder.harness import HarnessError  # noqa: E402

HONEST = ("honest_a", "honest_b")
SUBSET = ("os_exit_in_function", "sys_exit_at_import", "infinite_loop", "memory_bomb", "fork_bomb",
          "network_access", "read_hidden_files", "write_fake_results", "malformed_json",
          "wrong_assignment", "answer_cell_deleted", "pid_probe", "escaped_children_are_killed",
          "conftest_and_sitecustomize_beside_notebook", "mutates_inputs")
A = course.ASSIGNMENT
pytestmark = pytest.mark.slow


def _weak_flag() -> list[str]:
    """Where this machine's sandbox has no namespaces, workers refuse unless the TA allows it."""
    return [] if ISOLATION_RANK.get(probe_isolation(True)["isolation"], 0) >= STRONG else ["--allow-weak-isolation"]


def _make_course(base: Path, names: tuple[str, ...] = HONEST + SUBSET) -> tuple[Path, Path]:
    checks_root = course.make_checks(base / "checks", timeout=3.0)
    course_dir = base / "course"
    course.write_notebook(course_dir / "source" / A / f"{A}.ipynb", course.CORRECT)
    sub = course_dir / "submitted"
    secret = [str(checks_root / A / "test_fixture.py"), str(course_dir / "gradebook.db")]
    for name in names:
        folder = sub / name / A
        if name in CASES:
            case = CASES[name]
            folder.mkdir(parents=True)
            (folder / f"{A}.ipynb").write_text(notebook_text(case, secret), encoding="utf-8")
            for fname, text in case.files.items():
                (folder / fname).write_text(text, encoding="utf-8")
        else:
            course.write_notebook(folder / f"{A}.ipynb", course.CORRECT)
        (folder / "timestamp.txt").write_text("2025-01-01 12:00:00.000000 UTC", encoding="utf-8")
    return course_dir, checks_root


def _cmd(course_dir: Path, checks_root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "autograder", "batch", "--course-dir", str(course_dir), "--assignment", A,
            "--checks-root", str(checks_root), "--no-progress", *extra]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", **extra)
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def _batch(course_dir: Path, checks_root: Path, *extra: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(course_dir, checks_root, *extra), cwd=str(ROOT), capture_output=True,
                          text=True, timeout=900, env=_env(**env))


#: How a sandbox worker that exited by itself (os._exit) ended is reported by a race in
#: autograder/sandbox.py (Sandbox.request kills it as soon as its pipe closes: "terminated by
#: SIGKILL" when the kill wins, "exited with status 0" when the exit does); both say it crashed.
_ENDED = re.compile(r"the worker (was terminated by SIGKILL: killed \(out of memory, or by the grader\)"
                    r"|exited with status \d+)")


def _snapshot(course_dir: Path) -> tuple[dict, dict]:
    """(gradebook rows, every results.json without what differs between any two runs: the
    timing and the number of the sandbox's own uid, drawn afresh for every sandbox)."""
    from autograder.gradebook import default_db_url, dump_gradebook
    results = {}
    for path in sorted((course_dir / "autograded").glob(f"*/{A}/results.json")):
        r = json.loads(path.read_text(encoding="utf-8"))
        r.pop("duration_s", None)
        if "quick_pass" in r:   # deferred by both; its timing and which clock ran out may differ
            r["quick_pass"] = {"deferred": bool(r["quick_pass"].get("deferred"))}
        if isinstance(r.get("sandbox", {}).get("user"), str):
            r["sandbox"]["user"] = re.sub(r"^uid \d+", "uid N", r["sandbox"]["user"])
        for t in r.get("tests", []):
            t["output"] = _ENDED.sub("the worker ended", t.get("output") or "")
        results[path.parent.parent.name] = r
    return dump_gradebook(default_db_url(course_dir), A), results


def _graded(stderr: str) -> int:
    m = re.search(r"^graded (\d+), skipped (\d+), failed (\d+)", stderr, re.MULTILINE)
    assert m, stderr[-3000:]
    return int(m.group(1))


def _clear(course_dir: Path) -> None:
    for name in ("autograded", "feedback"):
        shutil.rmtree(course_dir / name, ignore_errors=True)
    (course_dir / "gradebook.db").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The course graded by the local batch (the reference every Dask run must equal)."""
    base = tmp_path_factory.mktemp("dask-local")
    course_dir, checks_root = _make_course(base)
    proc = _batch(course_dir, checks_root, "--workers", "2")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert _graded(proc.stderr) == len(HONEST + SUBSET)
    gradebook, results = _snapshot(course_dir)
    return {"course": course_dir, "checks": checks_root, "gradebook": gradebook, "results": results}


# ------------------------------------------------------------------------------ fast unit tests
def test_scheduler_argument() -> None:
    assert parse_scheduler("local:2") == (None, 2)
    assert parse_scheduler("tcp://10.0.0.5:8786") == ("tcp://10.0.0.5:8786", 0)
    for bad in ("local:0", "local", "local:x"):
        with pytest.raises(HarnessError):
            parse_scheduler(bad)


def test_task_keys_are_deterministic_and_distinct() -> None:
    k = task_key(A, "alice", "ab" * 32, "cd" * 32)
    assert k == task_key(A, "alice", "ab" * 32, "cd" * 32)
    assert len({k, task_key(A, "bob", "ab" * 32, "cd" * 32), task_key(A, "alice", "ef" * 32, "cd" * 32),
                task_key(A, "alice", "ab" * 32, "ef" * 32), task_key("98_other", "alice", "ab" * 32, "cd" * 32)}) == 5
    odd = task_key(A, "ren\u00e9 o'neil", "ab" * 32, "cd" * 32)      # not a plain id: hashed
    assert re.fullmatch(r"[A-Za-z0-9_.@+-]+", odd)


def test_weak_workers_refuse_unless_allowed() -> None:
    spec = {"isolate": True, "allow_weak": False}
    weak = {"worker": "tcp://10.0.0.9:4000", "host": "h", "isolation": "landlock"}
    assert "refuses to grade" in _refusal(weak, spec) and "landlock" in _refusal(weak, spec)
    assert _refusal(dict(weak, isolation="bwrap"), spec) is None
    assert _refusal(dict(weak, isolation="namespaces(root)"), spec) is None
    assert "cannot start" in _refusal(dict(weak, error="the sandbox cannot start: x"), spec)
    assert _refusal(weak, {"isolate": True, "allow_weak": True}) is None
    assert _refusal(dict(weak, isolation="none"), {"isolate": False, "allow_weak": False}) is None


# ------------------------------------------------------------------------------ batches
def test_local2_equals_the_local_batch(local_run: dict) -> None:
    course_dir = local_run["course"]
    _clear(course_dir)
    proc = _batch(course_dir, local_run["checks"], "--scheduler", "local:2", *_weak_flag())
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert _graded(proc.stderr) == len(HONEST + SUBSET)
    started = r"^worker tcp://127\.0\.0\.1:\d+ \(host .*, pid \d+, 1 thread\(s\)\): sandbox isolation"
    assert len(re.findall(started, proc.stderr, re.M)) == 2, proc.stderr
    gradebook, results = _snapshot(course_dir)
    assert gradebook == local_run["gradebook"]
    assert set(results) == set(local_run["results"])
    for name, r in results.items():
        assert r == local_run["results"][name], (name, r, local_run["results"][name])
    for name in HONEST:
        assert results[name]["score"] == course.MAX_SCORE
    marker = json.loads((course_dir / "autograded" / "honest_a" / A / ".dlkit-autograde.json").read_text())
    assert marker["grader"]["worker"].startswith("tcp://127.0.0.1:") and marker["grader"]["isolation"]
    again = _batch(course_dir, local_run["checks"], "--scheduler", "local:2", *_weak_flag())
    assert again.returncode == 0 and _graded(again.stderr) == 0, again.stderr[-3000:]


def test_worker_killed_mid_batch(local_run: dict, tmp_path: Path) -> None:
    course_dir, checks_root = _make_course(tmp_path)
    proc = subprocess.Popen(_cmd(course_dir, checks_root, "--scheduler", "local:2", *_weak_flag()),
                            cwd=str(ROOT), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            env=_env())
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
    reader.start()
    killed = None
    try:
        deadline = time.monotonic() + 600
        while killed is None and time.monotonic() < deadline and proc.poll() is None:
            pids = [int(m.group(1)) for m in (re.search(r"^worker tcp://\S+ .*pid (\d+)", ln) for ln in list(lines))
                    if m]
            markers = list((course_dir / "autograded").glob(f"*/{A}/.dlkit-autograde.json"))
            if len(pids) == 2 and len(markers) >= 2:
                killed = pids[0]
                os.kill(killed, signal.SIGKILL)
            time.sleep(0.2)
        proc.wait(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(timeout=10)
    stderr = "".join(lines)
    assert killed is not None, "the batch finished before a worker could be killed:\n" + stderr[-3000:]
    done = len(list((course_dir / "autograded").glob(f"*/{A}/.dlkit-autograde.json")))
    assert proc.returncode == 0, stderr[-4000:]
    gradebook, results = _snapshot(course_dir)
    assert gradebook == local_run["gradebook"]
    assert {n: r["score"] for n, r in results.items()} == {n: r["score"] for n, r in local_run["results"].items()}
    assert done == len(HONEST + SUBSET)
    again = _batch(course_dir, checks_root, "--scheduler", "local:2", *_weak_flag())
    assert again.returncode == 0 and _graded(again.stderr) == 0, again.stderr[-3000:]
    assert _snapshot(course_dir)[0] == gradebook


def test_bystander_of_a_dead_worker_is_graded_again_alone(tmp_path: Path) -> None:
    """With no retries allowed, the one death of a worker ends its task with KilledWorker (as it
    ends an honest task that shared a worker with a killer): the batch grades it again at the
    end, alone, and records it; nothing is reported as failed."""
    names = ("honest_a", "unlucky", "honest_b")
    course_dir, checks_root = _make_course(tmp_path, names)
    proc = _batch(course_dir, checks_root, "--scheduler", "local:2", *_weak_flag(),
                  **{DIE_ONCE_HOOK_ENV: f"unlucky={tmp_path / 'died-once'}",
                     "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "died-once").exists(), "the hook did not fire"
    assert _graded(proc.stderr) == 3 and "NOT GRADED" not in proc.stderr, proc.stderr[-3000:]
    gradebook, results = _snapshot(course_dir)
    assert set(gradebook) == set(results) == set(names)
    assert results["unlucky"]["score"] == results["honest_a"]["score"] == results["honest_a"]["max_score"]


def test_submission_that_kills_its_workers_fails_alone(tmp_path: Path) -> None:
    names = ("honest_a", "honest_b", "killer", "honest_c")
    course_dir, checks_root = _make_course(tmp_path, names)
    proc = _batch(course_dir, checks_root, "--scheduler", "local:2", *_weak_flag(),
                  **{DIE_HOOK_ENV: "killer", "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"})
    assert proc.returncode == 1, proc.stderr[-4000:]
    assert _graded(proc.stderr) == 3
    assert re.search(r"NOT GRADED \(nothing recorded\): killer: the workers grading this submission died", proc.stderr)
    failed = course_dir / "autograded" / "killer" / A / ".dlkit-autograde-failed.json"
    assert "allowed-failures" in json.loads(failed.read_text())["reason"]
    gradebook, results = _snapshot(course_dir)
    assert set(gradebook) == set(results) == {"honest_a", "honest_b", "honest_c"}
    assert all(r["score"] == course.MAX_SCORE for r in results.values())


def test_worker_without_namespaces_refuses_unless_the_ta_opts_in(tmp_path: Path) -> None:
    """A worker whose sandbox reports only Landlock (test hook): the batch stops before grading
    anything, naming the worker; with --allow-weak-isolation it grades."""
    course_dir, checks_root = _make_course(tmp_path, ("honest_a",))
    proc = _batch(course_dir, checks_root, "--scheduler", "local:1", **{WEAK_HOOK_ENV: "landlock"})
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert re.search(r"worker tcp://127\.0\.0\.1:\d+ \(host .*\) refuses to grade: its sandbox achieved only "
                     r"'landlock'", proc.stderr), proc.stderr[-3000:]
    assert not (course_dir / "autograded").exists() and not (course_dir / "gradebook.db").exists()
    proc = _batch(course_dir, checks_root, "--scheduler", "local:1", "--allow-weak-isolation",
                  **{WEAK_HOOK_ENV: "landlock"})
    assert proc.returncode == 0 and _graded(proc.stderr) == 1, proc.stderr[-3000:]
    assert "--allow-weak-isolation: some workers grade without namespaces" in proc.stderr


def test_separate_scheduler_and_worker_on_loopback(tmp_path: Path) -> None:
    course_dir, checks_root = _make_course(tmp_path, ("honest_a", "os_exit_in_function", "malformed_json"))
    dask = Path(sys.executable).with_name("dask")
    sched_file = tmp_path / "scheduler.json"
    env = _env(PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([str(dask), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(sched_file)], cwd=str(tmp_path), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        deadline = time.monotonic() + 120
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        procs.append(subprocess.Popen([str(dask), "worker", address, "--host", "127.0.0.1", "--nworkers", "1",
                                       "--nthreads", "1", "--no-dashboard"], cwd=str(ROOT), env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        proc = _batch(course_dir, checks_root, "--scheduler", address, *_weak_flag())
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert _graded(proc.stderr) == 3
        gradebook, results = _snapshot(course_dir)
        assert results["honest_a"]["score"] == course.MAX_SCORE
        assert results["malformed_json"]["score"] == 0
        assert set(gradebook) == {"honest_a", "os_exit_in_function", "malformed_json"}
        assert re.search(r"^worker tcp://127\.0\.0\.1:\d+ \(host .*\) graded 3 submission\(s\)", proc.stderr, re.M), \
            proc.stderr[-3000:]
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
