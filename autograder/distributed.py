"""Grading on a Dask distributed cluster: the batch's engine when one machine is not enough.

    python -m autograder batch --course-dir DIR --assignment ID --scheduler tcp://HOST:8786
    python -m autograder batch --course-dir DIR --assignment ID --scheduler local:N

``--scheduler local:N`` starts an in-process ``LocalCluster`` of N single-threaded worker
processes on 127.0.0.1; an address connects to a running ``dask scheduler`` whose ``dask worker``
processes grade.  Needs the ``cluster`` extra (``pip install -e ".[cluster]"``) on the TA's machine
and on every grading host; without ``--scheduler`` the batch never imports Dask.

What stays in the batch's (the client's) process, exactly as in the local batch
(:mod:`autograder.batch`): discovering and reading submissions safely, the journal keys, and
RECORDING — results.json, feedback, the gradebook (the only writer), then the marker.  What goes
to a worker: one task per submission holding the notebook's bytes (read by the client; a
submission with a ``problem`` sends no bytes), the hidden checks' files (the client's, so every
worker runs the same checks; the worker verifies their fingerprint) and the harness version it
must match.  A worker grades with :func:`autograder.harness.grade` — the same sandbox as the local
batch, the grader's kit (student edition + earlier packs) built ON the worker (or, for
``local:N``, the client's) —
and returns the results.  Grader hosts never see the gradebook, other submissions' results, or
the course folder.

Exactly once:

* a task's key is deterministic: ``dlkit-grade-<assignment>-<student>-<submission hash>-<checks
  fingerprint>`` (:func:`task_key`; ``-quick`` for the batch's quick pass, whose deferred
  submissions are queued again, with the full budgets, behind every other task), so a client that
  reconnects to a cluster still running the same submission attaches to that task instead of
  grading it twice;
* at most ``window`` tasks are in flight (``4 x workers + 4``): memory on the scheduler stays
  bounded whatever the course size;
* each future is RELEASED right after its result was recorded (the batch asks for the next one);
  a finished result still held by the cluster would otherwise be recomputed when the worker that
  holds it dies, and graded twice;
* a rerun grades nothing that is recorded: the batch's markers (keys over the notebook, checks,
  harness version, points, gradebook) decide, as in the local batch.

Worker loss: when a worker dies while grading, the scheduler runs the task again on another
worker.  A task that keeps killing its workers (Dask's ``distributed.scheduler.allowed-failures``,
default 3, i.e. 4 deaths) ends with ``KilledWorker``.  Dask counts a death against every task the
worker held, so an honest submission queued behind a killer can end the same way: local clusters
therefore run with ``worker-saturation`` 1.0 (a worker holds only the task it runs), and every
task that ended with ``KilledWorker`` is graded AGAIN at the end of the batch, one at a time with
nothing else in flight.  Only a submission that kills its workers again then is reported as NOT
GRADED with the reason (and ``.dlkit-autograde-failed.json`` beside where its results would be);
nothing is recorded for it, the batch goes on, and a rerun tries it again.

Isolation: before grading, every worker starts one sandbox and reports the isolation it achieved
(the batch prints one line per worker).  A worker whose sandbox is weaker than a private root with
PID and network namespaces (``namespaces(root)`` or ``bwrap``; see :mod:`autograder.sandbox`)
REFUSES to grade — the batch stops before sending anything when such a worker is connected at the
start, and a weak worker that joins later returns a refusal instead of results (not graded,
graded again by a rerun) — unless the TA passes ``--allow-weak-isolation``.  Each result's
``sandbox`` section says what the sandbox that graded it achieved (as in the local batch), and the
marker names the worker (``grader``).  ``--no-isolation`` (debugging) requires nothing.

Workers started with ``--nthreads`` above 1 still grade one submission at a time per process
(grading runs pytest in the worker's process: a lock serialises it); use ``--nworkers K
--nthreads 1``.
"""
from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

from .harness import HARNESS_VERSION, MAX_NOTEBOOK_BYTES, HarnessError, build_student_edition, grade

__all__ = ["DaskEngine", "parse_scheduler", "task_key", "ISOLATION_RANK", "STRONG", "grade_task",
           "probe_isolation", "DIE_HOOK_ENV", "DIE_ONCE_HOOK_ENV", "WEAK_HOOK_ENV"]

#: Isolation modes (``results["sandbox"]["isolation"]``) by strength.
ISOLATION_RANK = {"none": 0, "landlock": 1, "bwrap": 2, "namespaces(root)": 2}
#: What a worker must achieve unless the TA allows weaker isolation.
STRONG = 2
#: Largest hidden-checks folder shipped to the workers.
MAX_CHECKS_BYTES = 32 * 1024 * 1024
#: Test hook (read on the WORKER): a task grading this student makes its worker process exit.
DIE_HOOK_ENV = "DLKIT_DASK_TEST_DIE_ON"
#: Test hook (read on the WORKER): ``student=PATH``: the first task grading this student makes its
#: worker exit (and creates PATH); later ones grade normally (a bystander of a worker's death).
DIE_ONCE_HOOK_ENV = "DLKIT_DASK_TEST_DIE_ONCE"
#: Test hook (read on the WORKER): report this isolation from the probe (a weak worker, for tests).
WEAK_HOOK_ENV = "DLKIT_DASK_TEST_PROBE_REPORTS"

_LOCAL = re.compile(r"^local:(\d+)$")


def parse_scheduler(text: str) -> tuple[str | None, int]:
    """``"local:N"`` -> ``(None, N)``; an address -> ``(address, 0)``."""
    m = _LOCAL.match(text.strip())
    if m:
        n = int(m.group(1))
        if n < 1:
            raise HarnessError("--scheduler local:N needs N >= 1")
        return None, n
    if text.startswith("local"):
        raise HarnessError(f"--scheduler {text!r}: write local:N (N worker processes), e.g. local:2")
    return text.strip(), 0


def task_key(assignment: str, student: str, content_hash: str, checks_fp: str) -> str:
    """The Dask key of a submission's grading task (deterministic; see the module docstring)."""
    safe = student if re.fullmatch(r"[A-Za-z0-9_.@+-]{1,64}", student) else \
        "x" + hashlib.sha256(student.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"dlkit-grade-{assignment}-{safe}-{content_hash[:16]}-{checks_fp[:16]}-h{HARNESS_VERSION}"


def checks_bundle(folder: Path) -> dict[str, bytes]:
    """The hidden checks' files (relative path -> bytes), what :func:`checks_fingerprint` covers."""
    files, total = {}, 0
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            data = path.read_bytes()
            total += len(data)
            if total > MAX_CHECKS_BYTES:
                raise HarnessError(f"the hidden checks in {folder} exceed {MAX_CHECKS_BYTES >> 20} MB: "
                                   "too large to send to the workers")
            files[str(path.relative_to(folder))] = data
    return files


# ------------------------------------------------------------------------------ worker side
_STATE: dict[str, Any] = {}
_GRADE_LOCK = threading.Lock()     # pytest runs in this process: one grading at a time


def _scratch() -> Path:
    if "dir" not in _STATE:
        _STATE["dir"] = Path(tempfile.mkdtemp(prefix="dlkit-dask-worker-"))
        atexit.register(shutil.rmtree, _STATE["dir"], True)
    return _STATE["dir"]


def _worker_name() -> str:
    try:
        from distributed import get_worker
        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def probe_isolation(isolate: bool = True) -> dict[str, Any]:
    """Start one sandbox here and report what it achieved (cached per process)."""
    cached = _STATE.get(("probe", isolate))
    if cached is None:
        from .sandbox import Sandbox, SandboxError
        report: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
        try:
            sb = Sandbox(None, isolate=isolate)
            try:
                iso = sb.start()
            finally:
                sb.close()
            report["isolation"] = str(iso.get("isolation", "none"))
            report["memory"] = str(iso.get("memory", ""))
        except (SandboxError, OSError) as exc:
            report["isolation"] = "none"
            report["error"] = f"the sandbox cannot start: {type(exc).__name__}: {exc}"
        if os.environ.get(WEAK_HOOK_ENV):
            report["isolation"] = os.environ[WEAK_HOOK_ENV]
        cached = _STATE[("probe", isolate)] = report
    out = dict(cached)
    out["worker"] = _worker_name()
    return out


def _refusal(report: dict[str, Any], spec: dict[str, Any]) -> str | None:
    if not spec["isolate"] or spec["allow_weak"]:
        return None
    if report.get("error"):
        return f"worker {report['worker']} refuses to grade: {report['error']}"
    if ISOLATION_RANK.get(report.get("isolation", "none"), 0) < STRONG:
        return (f"worker {report['worker']} (host {report.get('host')}) refuses to grade: its sandbox "
                f"achieved only {report.get('isolation')!r}, not a private root with PID and network "
                "namespaces (run it as root, or where bwrap can create user namespaces; or pass "
                "--allow-weak-isolation to accept)")
    return None


def _checks_root(spec: dict[str, Any]) -> str:
    """The client's hidden checks, written once per worker process (fingerprint verified)."""
    from .harness import checks_fingerprint
    fp = spec["checks_fp"]
    root = _scratch() / f"checks-{fp[:24]}"
    folder = root / spec["assignment"]
    if not (root / ".complete").exists():
        for rel, data in spec["checks"].items():
            path = folder / rel
            if ".." in Path(rel).parts or path.is_absolute() and not str(path).startswith(str(folder)):
                raise HarnessError(f"bad path in the checks bundle: {rel!r}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        if checks_fingerprint(folder) != fp:
            raise HarnessError("the hidden checks received by the worker do not match the client's fingerprint")
        (root / ".complete").touch()
    return str(root)


def _kit(spec: dict[str, Any]) -> str | None:
    """The grader's kit, as the local batch builds it: the student edition of dlkit with the solution
    packs of the assignments before this one (built once per assignment and worker process)."""
    given = spec.get("kit")
    if given:
        return given
    key = ("kit", spec["assignment"])
    if key not in _STATE:
        _STATE[key] = build_student_edition(_scratch() / f"kit-{spec['assignment']}", spec["assignment"])
    return _STATE[key]


def grade_task(spec: dict[str, Any]) -> dict[str, Any]:
    """Grade one submission on this worker: ``{"results": ..., "grader": ...}`` or ``{"error": ...}``."""
    if spec["student"] == os.environ.get(DIE_HOOK_ENV):
        os._exit(17)
    once = os.environ.get(DIE_ONCE_HOOK_ENV, "").partition("=")
    if once[1] and spec["student"] == once[0] and not os.path.exists(once[2]):
        Path(once[2]).touch()
        os._exit(17)
    if spec["harness_version"] != HARNESS_VERSION:
        return {"error": f"worker {_worker_name()} runs harness version {HARNESS_VERSION}, the batch "
                         f"{spec['harness_version']}: install the same kit on every grading host"}
    with _GRADE_LOCK:
        report = probe_isolation(spec["isolate"])
        why = _refusal(report, spec)
        if why:
            return {"error": why, "refused": True, "grader": report}
        work = Path(tempfile.mkdtemp(prefix="sub-", dir=_scratch()))
        try:
            problem = spec["problem"]
            target = work / spec["name"]
            if problem is None:
                target.write_bytes(spec["notebook"])
            results = grade(spec["assignment"], target if problem is None else work,
                            checks_root=_checks_root(spec), student_dlkit=_kit(spec),
                            isolate=spec["isolate"], within=work, problem=problem,
                            limits=spec.get("limits"), quick=bool(spec.get("quick")))
        except HarnessError as exc:
            return {"error": str(exc), "grader": report}
        except Exception as exc:  # noqa: BLE001 - reported, not recorded
            return {"error": f"{type(exc).__name__}: {exc}", "grader": report}
        finally:
            shutil.rmtree(work, ignore_errors=True)
    achieved = (results.get("sandbox") or {}).get("isolation")
    if achieved is not None:
        why = _refusal(dict(report, isolation=achieved), spec)
        if why:
            return {"error": why, "refused": True, "grader": report}
    return {"results": results, "grader": report}


# ------------------------------------------------------------------------------ client side
def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise HarnessError("--scheduler needs Dask distributed: pip install -e \".[cluster]\" "
                           "(on this machine and on every grading host)") from None
    return distributed


class DaskEngine:
    """The batch's pool on a Dask cluster: ``submit`` / ``results`` / ``shutdown`` like
    :class:`autograder.batch._Pool` (see the module docstring)."""

    def __init__(self, scheduler: str, *, assignment: str, checks_folder: Path, checks_fp: str,
                 kit: str | None, isolate: bool, allow_weak: bool, course: Path, limits: Any = None,
                 window: int | None = None, log: Any = None, quick: bool = True) -> None:
        distributed = _import_distributed()
        self.quick = quick
        self.deferred = 0                         # submissions the quick pass sent to a full pass
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        address, n = parse_scheduler(scheduler)
        self.cluster = None
        if address is None:
            import dask
            # each worker holds only the task it runs: a submission that kills its worker then
            # takes down no other submission queued there (see the module docstring); and no
            # statistical profiler sampling every thread's stack each 10 ms (1.1 s of a worker's
            # CPU in a batch of 100; the README says how to turn it off on `dask worker` hosts)
            with dask.config.set({"distributed.scheduler.worker-saturation": 1.0,
                                  "distributed.worker.profile.enabled": False}):
                self.cluster = distributed.LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                    dashboard_address=None, silence_logs=40)
            self.client = distributed.Client(self.cluster)
        else:
            try:
                self.client = distributed.Client(address, timeout="30s")
            except (OSError, TimeoutError) as exc:
                raise HarnessError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        self.course = course
        self.assignment = assignment
        self.base = {"assignment": assignment, "checks": checks_bundle(checks_folder), "checks_fp": checks_fp,
                     "harness_version": HARNESS_VERSION, "isolate": isolate, "allow_weak": allow_weak,
                     "kit": kit if address is None else None,
                     # the course's sandbox budgets (nbgrader_config.py), read on the TA's side
                     "limits": limits}
        self.checks_fp = checks_fp
        # future -> (job, journal key, path, within, quick pass?)
        self.pending: dict[Any, tuple[Any, str, str, Path, bool]] = {}
        self.queue: list[tuple[Any, str, Path, bool]] = []
        self.suspects: list[tuple[Any, str, Path, bool]] = []   # ended with KilledWorker: retried alone
        self.alone = False                                    # retrying suspects, one at a time
        self.graders: dict[str, dict[str, Any]] = {}
        self.counts: dict[str, int] = {}          # worker address -> submissions it graded
        try:
            self._preflight(isolate, allow_weak)
        except BaseException:
            self.shutdown()
            raise
        self.workers = max(1, len(self.graders))
        self.window = window or 4 * self.workers + 4
        self.ac = distributed.as_completed()
        self.ready: list[tuple[Any, str, dict | None, str | None]] = []   # failed before submitting
        from distributed.scheduler import KilledWorker
        self.KilledWorker = KilledWorker

    def _preflight(self, isolate: bool, allow_weak: bool) -> None:
        try:
            self.client.wait_for_workers(1, timeout=120)
        except (TimeoutError, OSError) as exc:
            raise HarnessError(f"no Dask worker joined the scheduler within 120 s ({exc})") from None
        try:
            info = self.client.scheduler_info(n_workers=-1)["workers"]
        except TypeError:            # distributed before 2025: every worker is listed
            info = self.client.scheduler_info()["workers"]
        reports = self.client.run(probe_isolation, isolate)
        refused = []
        for addr, rep in sorted(reports.items()):
            rep["worker"] = addr
            threads = info.get(addr, {}).get("nthreads", 1)
            self.graders[addr] = rep
            self.log(f"worker {addr} (host {rep.get('host')}, pid {rep.get('pid')}, {threads} thread(s)): "
                     f"sandbox isolation {rep.get('isolation')}" + (f"; {rep['error']}" if rep.get("error") else ""))
            if threads > 1:
                self.log(f"  note: {addr} has {threads} threads but grades one submission at a time "
                         "(start workers with --nworkers K --nthreads 1)")
            why = _refusal(rep, self.base)
            if why:
                refused.append(why)
        if refused:
            raise HarnessError("\n".join(refused))
        if isolate and allow_weak and any(ISOLATION_RANK.get(r.get("isolation"), 0) < STRONG
                                          for r in self.graders.values()):
            self.log("warning: --allow-weak-isolation: some workers grade without namespaces (see above)")

    # -- the _Pool interface
    def submit(self, job: Any, key: str, within: Path) -> None:
        self.queue.append((job, key, within, self.quick))
        self._fill()

    def _fill(self) -> None:
        from . import safefile
        while self.queue and len(self.pending) < (1 if self.alone else self.window):
            job, key, within, quick = self.queue.pop(0)
            path = str(job.notebook or job.submitted_dir)
            problem, data = job.problem, b""
            if problem is None:
                try:
                    data = safefile.read_file(job.notebook, MAX_NOTEBOOK_BYTES, within=within)
                except safefile.UnsafeFile as exc:
                    problem = str(exc)
                except OSError as exc:
                    # as the local pool: an unreadable notebook is a harness error (not graded)
                    self.ready.append((job, key, None, f"cannot read submission {path}: {exc.strerror or exc}"))
                    continue
            content = hashlib.sha256(data if problem is None else problem.encode("utf-8", "backslashreplace"))
            spec = dict(self.base, student=job.student, name=Path(path).name, notebook=data, problem=problem,
                        quick=quick)
            dkey = task_key(self.assignment, job.student, content.hexdigest(), self.checks_fp)
            dkey += ("-quick" if quick else "") + ("-alone" if self.alone else "")
            fut = self.client.submit(grade_task, spec, key=dkey, retries=0)
            self.pending[fut] = (job, key, path, within, quick)
            self.ac.add(fut)

    def results(self, within: Path) -> Iterator[tuple[Any, str, dict | None, str | None]]:
        """``(job, key, results or None, error or None)`` as grading finishes; each future is
        released when the caller asks for the next one (i.e. after it recorded this one)."""
        import json
        from .batch import FAILED, _deferred
        from .feedback import atomic_write
        while self.pending or self.queue or self.ready or self.suspects:
            if not (self.pending or self.queue or self.ready):
                # Every other task is done: the submissions whose workers died are graded again,
                # ONE AT A TIME, so a bystander that shared a dying worker (or the scheduler's
                # count of deaths) with a killer is graded, and only a real killer fails.
                self.alone = True
                self.queue.extend(self.suspects)
                self.suspects.clear()
            self._fill()
            if self.ready:
                yield self.ready.pop(0)
                continue
            fut = next(self.ac)
            job, key, path, within, quick = self.pending.pop(fut)
            self._fill()                          # keep the workers busy while this one is recorded
            results = error = None
            try:
                out = fut.result()
            except self.KilledWorker as exc:
                if not self.alone:
                    self.suspects.append((job, key, within, False))
                    fut.release()
                    continue
                error = ("the workers grading this submission died more often than the cluster allows "
                         "(Dask's distributed.scheduler.allowed-failures): not graded, nothing recorded; "
                         f"a rerun tries again ({type(exc).__name__}: {exc})")
                try:
                    atomic_write(self.course / "autograded" / job.student / self.assignment / FAILED,
                                 json.dumps({"reason": error, "score": None}))
                except Exception:  # noqa: BLE001 - the summary still reports it
                    pass
            except Exception as exc:  # noqa: BLE001 - reported, not recorded
                error = f"(dask) {type(exc).__name__}: {exc}"
            else:
                if "results" in out and quick and _deferred(job, out["results"]):
                    self.deferred += 1
                    self.queue.append((job, key, within, False))   # full budgets, behind the queue
                    fut.release()
                    continue
                if "results" in out:
                    results = out["results"]
                    results.setdefault("submission", {})["path"] = str(Path(path))
                    job.grader = out.get("grader")
                    addr = (out.get("grader") or {}).get("worker")
                    self.counts[addr] = self.counts.get(addr, 0) + 1
                    if addr and addr not in self.graders:
                        self.graders[addr] = out["grader"]
                        self.log(f"worker {addr} joined (pid {out['grader'].get('pid')}): sandbox isolation "
                                 f"{out['grader'].get('isolation')}")
                else:
                    error = out.get("error", "no results")
            try:
                yield job, key, results, error
            finally:
                fut.release()

    def shutdown(self, cancel: bool = False) -> None:
        for addr, n in sorted(self.counts.items(), key=lambda kv: str(kv[0])):
            rep = self.graders.get(addr, {})
            self.log(f"worker {addr} (host {rep.get('host')}) graded {n} submission(s); sandbox isolation "
                     f"{rep.get('isolation')}")
        self.counts.clear()
        try:
            if cancel and self.pending:
                self.client.cancel(list(self.pending))
            for fut in list(self.pending):
                fut.release()
            self.pending.clear()
            self.queue.clear()
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()

