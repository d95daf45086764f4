"""Grade nbgrader's ``submitted/`` tree in parallel, resumably, into the gradebook.

    python -m autograder batch --course-dir DIR --assignment ID [--workers N] [--db URL]
                               [--scheduler ADDRESS|local:N [--allow-weak-isolation]]

For every ``DIR/submitted/<student>/<ID>/<notebook>.ipynb`` (files there are only read):

1. a pool process grades it (:func:`autograder.harness.grade`: checks in the pool process, the
   student's code in that process's sandbox worker);
2. the main process writes ``DIR/autograded/<student>/<ID>/results.json``, a copy of the
   notebook for formgrader (the checks' results as the output of its test cells) and nbgrader's
   ``timestamp.txt`` / ``submission_secret.txt`` (feedback pages: ``nbgrader generate_feedback``);
   then it upserts the scores and the check messages (comments on the answer cells) into the
   gradebook, ``--record-every N`` graded submissions (default 32) per session and commit
   (:class:`_Recorder`);
3. only after that commit, it writes each of those submissions' journal marker
   ``DIR/autograded/<student>/<ID>/.dlkit-autograde.json`` (atomically), holding a key = hash of
   (notebook bytes, hidden checks, harness version, grade-cell points, database URL).

A rerun skips submissions whose marker key matches; everything else is (re)graded and its
gradebook rows overwritten with values computed from the results alone.  Killing the batch at
any moment therefore loses nothing and duplicates nothing: the rerun ends in the same gradebook
as an uninterrupted run.  A changed notebook or changed checks change the key: re-graded.
Only the main process writes the gradebook (SQLite has one writer).

The grading engine: a local process pool (:class:`_Pool`, ``--workers N``), or with
``--scheduler ADDRESS|local:N`` a Dask distributed cluster (:class:`autograder.distributed.DaskEngine`);
everything else above (reading, keys, recording, markers) is the same whatever the engine.

Bad submissions (see :mod:`autograder.safefile`): nothing under ``submitted/`` is followed if it
is a link or read if it is not a regular file within its size cap.  A submission whose files are
unusable (a linked notebook or folder, a FIFO, a 64 MB notebook, an unparsable ``timestamp.txt``)
is GRADED as 0 with the reason.  Every per-submission step is isolated: if one still fails
(e.g. the gradebook refuses it) that submission alone is reported, with the reason, in the
summary and in ``autograded/<student>/<ID>/.dlkit-autograde-failed.json``, its marker is not
written, and the batch goes on (exit status 1).  A student folder whose name is not UTF-8 or
holds HTML-special characters (formgrader's page template writes the student id unescaped) is
reported and never graded or recorded.  A grading process that dies costs only the submission
it was grading (see :class:`_Pool`).  What goes to ``autograded/``
is written fresh by this process (its own umask; never a copy of a submitted file's mode or
links): results, the notebook rebuilt for formgrader (:mod:`autograder.sanitize`), and the bytes
of ``timestamp.txt`` / ``submission_secret.txt`` as read safely.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import multiprocessing
import os
import re
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Iterator

from . import gradebook as gbook
from . import safefile
from .budgets import limits_from_config
from .feedback import atomic_write, check_messages, ensure_release_files, printable, show_check_results
from .harness import (HARNESS_VERSION, MAX_NOTEBOOK_BYTES, HarnessError, REPO, build_student_edition,
                      checks_dir, checks_fingerprint, grade)
from .sanitize import formgrader_copy, placeholder_notebook

__all__ = ["run_batch", "discover", "MARKER", "FAILED", "KILL_HOOK_ENV"]

MARKER = ".dlkit-autograde.json"
#: Written (instead of the marker) when recording a submission failed; removed when it succeeds.
FAILED = ".dlkit-autograde-failed.json"
#: nbgrader's small files beside a submitted notebook, copied to feedback/ (size cap each).
NBGRADER_FILES = ("timestamp.txt", "submission_secret.txt")
SMALL_FILE_CAP = 64 * 1024
#: Test hook: SIGKILL the batch right after this many gradebook commits (before their marker).
KILL_HOOK_ENV = "DLKIT_AUTOGRADER_TEST_KILL_AFTER"


@dataclass
class Job:
    student: str
    submitted_dir: Path
    notebook: Path | None      # None: the submission folder holds no notebook
    notebook_id: str
    problem: str | None = None                  # why its files cannot be used: graded as 0
    files: dict[str, bytes] = field(default_factory=dict)   # NBGRADER_FILES, read safely
    timestamp: str | None = None                # timestamp.txt, checked with nbgrader's parser
    sha256: str | None = None                   # of the notebook's bytes, when it could be read
    grader: dict | None = None                  # Dask engine: the worker that graded it (marker)
    quick_pass: dict | None = None              # why the quick pass deferred it (graded again)


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
    """Every student's submission folder for ``assignment`` (sorted by student id).

    Never follows a link: a linked student or assignment folder becomes a job with a
    ``problem`` (graded as 0), as does an assignment entry that is not a folder or that holds
    more than 10,000 entries.
    """
    root = course_dir / "submitted"
    jobs: list[Job] = []
    if not root.is_dir():
        return jobs
    for name, kind in sorted(safefile.entries(root, limit=None).items()):
        student_dir = root / name
        if kind == "a symbolic link":
            jobs.append(Job(name, student_dir / assignment, None, notebook_id,
                            problem=f"submitted/{name} is a symbolic link, not a folder of your own"))
            continue
        if kind != "a folder" or name.startswith("."):
            continue                     # not a student folder (a stray file, .ipynb_checkpoints)
        sub = student_dir / assignment
        try:
            what = safefile.kind_at(sub, within=course_dir)
        except (safefile.UnsafeFile, OSError):
            continue                     # changed under us: seen on the next run
        if what is None:
            continue
        if what != "a folder":
            jobs.append(Job(name, sub, None, notebook_id, problem=f"{name}/{assignment} is {what}, not a folder"))
            continue
        try:
            listing = safefile.entries(sub, within=course_dir)
        except (safefile.UnsafeFile, OSError) as exc:
            jobs.append(Job(name, sub, None, notebook_id, problem=f"{name}/{assignment} cannot be listed: {exc}"))
            continue
        notebooks = sorted(n for n in listing if n.endswith(".ipynb") and not n.startswith("."))
        preferred = [n for n in notebooks if n[:-len(".ipynb")] == notebook_id]
        chosen = (preferred or notebooks or [None])[0]
        jobs.append(Job(name, sub, None if chosen is None else sub / chosen, notebook_id))
    return jobs


#: Characters a student id (the folder name under submitted/) must not hold: formgrader's page
#: template writes the id into HTML unescaped, and the gradebook stores UTF-8 only.
_UNSAFE_ID = re.compile(r"[\x00-\x1f\x7f<>&\"'`\\]")


def _bad_student_id(student: str) -> str | None:
    """Why ``student`` cannot be recorded in the gradebook (None: it can)."""
    try:
        student.encode("utf-8")
    except UnicodeEncodeError:
        return "the student folder's name is not UTF-8 text; rename it"
    if _UNSAFE_ID.search(student) or len(student) > 128:
        return ("the student folder's name holds characters formgrader would put into its pages as "
                "HTML (< > & quotes, backslash, control characters) or is longer than 128; rename it")
    return None


def _read_submission(course_dir: Path, job: Job) -> bytes:
    """Read a job's files safely (sets ``files``, ``timestamp``, ``problem``); the bytes to key on."""
    if job.problem is not None:
        return b"<problem>" + job.problem.encode("utf-8", "backslashreplace")
    try:
        for name in NBGRADER_FILES:
            try:
                job.files[name] = safefile.read_file(job.submitted_dir / name, SMALL_FILE_CAP, within=course_dir)
            except FileNotFoundError:
                pass
        if "timestamp.txt" in job.files:
            job.timestamp = _parse_timestamp(job.files["timestamp.txt"])
        data = (b"<no notebook>" if job.notebook is None else
                safefile.read_file(job.notebook, MAX_NOTEBOOK_BYTES, within=course_dir))
    except safefile.UnsafeFile as exc:
        job.problem = str(exc)
    except OSError as exc:
        job.problem = f"a file of the submission cannot be read ({exc.strerror or type(exc).__name__})"
    if job.problem is not None:
        job.files.pop("timestamp.txt", None)
        job.timestamp = None
        return b"<problem>" + job.problem.encode("utf-8", "backslashreplace")
    job.sha256 = hashlib.sha256(data).hexdigest() if job.notebook is not None else None
    return b"".join(hashlib.sha256(part).digest()
                    for part in [data] + [job.files.get(n, b"<none>") for n in NBGRADER_FILES])


def _parse_timestamp(raw: bytes) -> str | None:
    """timestamp.txt's text when nbgrader can parse it (None: empty); else UnsafeFile."""
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise safefile.UnsafeFile("timestamp.txt is not UTF-8 text") from None
    if not text:
        return None
    try:
        _parse_utc(text)
    except Exception:  # noqa: BLE001 - dateutil raises several types; the reason is the same
        raise safefile.UnsafeFile(f"timestamp.txt does not hold a valid time: {printable(text[:80])!r}") from None
    return text


def _parse_utc(text: str) -> Any:
    """``nbgrader.utils.parse_utc`` for a string, which the gradebook later applies to this text
    (tests/test_autograder_files.py holds the two to the same answers).  Not imported from
    nbgrader: its package takes about 1.8 s of CPU to import, and the batch reads (and sends to the
    graders) every submission before it needs nbgrader for the gradebook."""
    import dateutil.parser
    import dateutil.tz
    parts = text.split(" ")
    if len(parts) == 3:
        try:
            tz: Any = int(parts[2])
        except ValueError:
            tz = dateutil.tz.gettz(parts[2])
        ts = dateutil.parser.parse(" ".join(parts[:2] + ["TZ"]), tzinfos={"TZ": tz})
    else:
        ts = dateutil.parser.parse(text)
    if ts.tzinfo is not None:
        ts = (ts - ts.utcoffset()).replace(tzinfo=None)
    return ts


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
               parent: int, limits: Any = None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is handled by the main process
    _die_with_parent(parent)
    _POOL.update(assignment=assignment, checks_root=checks_root, kit=kit, isolate=isolate, limits=limits)


def _pool_ready() -> None:
    """A no-op task that makes the pool start (and import) its processes."""


def _pool_grade(student: str, notebook: str, within: str, problem: str | None,
                quick: bool = False) -> tuple[str, dict | None, str | None]:
    try:
        results = grade(_POOL["assignment"], notebook, checks_root=_POOL["checks_root"],
                        student_dlkit=_POOL["kit"], isolate=_POOL["isolate"], within=within,
                        problem=problem, limits=_POOL["limits"], quick=quick)
        return student, results, None
    except HarnessError as exc:
        return student, None, str(exc)
    except Exception as exc:  # noqa: BLE001 - reported, not recorded
        return student, None, f"{type(exc).__name__}: {exc}"


def _deferred(job: Job, results: dict[str, Any]) -> bool:
    """Whether the quick pass deferred this submission (noted on the job for its results)."""
    why = results.get("deferred")
    if not why:
        return False
    job.quick_pass = {"deferred": str(why), "duration_s": results.get("duration_s")}
    return True


class _Pool:
    """The grading pool, surviving the death of a pool process.

    ``quick``: submissions go through the quick pass first (:func:`autograder.harness.grade`);
    one that comes back ``deferred`` is submitted again with the full budgets, behind every
    submission already queued, and only its full result is yielded.

    When a pool process dies (``BrokenProcessPool``) every unfinished job fails with it, not only
    the one that killed it.  Those jobs are then graded again one at a time in a fresh
    one-process pool: the others get their grades, and the job that kills its grader alone is
    reported as not graded (nothing recorded) with the reason.
    """

    def __init__(self, workers: int, initargs: tuple, quick: bool = True) -> None:
        self.initargs, self.quick = initargs, quick
        self.deferred = 0                 # submissions the quick pass sent to a full pass
        self.executor = self._new(workers)
        self.pending: dict[cf.Future, tuple[Job, str, bool]] = {}
        for _ in range(workers):          # start the processes now: they import while we read
            self.executor.submit(_pool_ready)

    def _new(self, workers: int) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                      initializer=_pool_init, initargs=self.initargs)

    @staticmethod
    def _args(job: Job, within: Path, quick: bool = False) -> tuple:
        return job.student, str(job.notebook or job.submitted_dir), str(within), job.problem, quick

    def submit(self, job: Job, key: str, within: Path, quick: bool | None = None) -> None:
        quick = self.quick if quick is None else quick
        self.pending[self.executor.submit(_pool_grade, *self._args(job, within, quick))] = (job, key, quick)

    def results(self, within: Path) -> Iterator[tuple[Job, str, dict | None, str | None]]:
        """``(job, key, results or None, error or None)`` as grading finishes."""
        broken: list[tuple[Job, str]] = []
        while self.pending:
            finished, _ = cf.wait(list(self.pending), return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                job, key, quick = self.pending.pop(fut)
                try:
                    _, results, error = fut.result()
                except BrokenProcessPool:
                    broken.append((job, key))
                    continue
                except Exception as exc:  # noqa: BLE001 - reported, not recorded
                    results, error = None, f"(pool) {type(exc).__name__}: {exc}"
                if quick and results is not None and _deferred(job, results):
                    self.deferred += 1
                    self.submit(job, key, within, quick=False)   # behind everything queued
                    continue
                yield job, key, results, error
        if broken:
            print(f"a grading process died; grading {len(broken)} unfinished submission(s) again, "
                  "one at a time", file=sys.stderr)
            self.executor.shutdown(wait=False, cancel_futures=True)
            self.executor = self._new(1)
        for job, key in broken:
            try:
                _, results, error = self.executor.submit(_pool_grade, *self._args(job, within)).result()
            except BrokenProcessPool:
                self.executor.shutdown(wait=False, cancel_futures=True)
                self.executor = self._new(1)
                results, error = None, "the process grading this submission died (killed, or out of memory)"
            yield job, key, results, error

    def shutdown(self, cancel: bool = False) -> None:
        self.executor.shutdown(wait=True, cancel_futures=cancel)


# ------------------------------------------------------------------------------ main side
def _key(content: bytes, job: Job, checks_fp: str, cell_max: dict[str, float], db_url: str) -> str:
    """The journal key; ``content``: what :func:`_read_submission` read (or why it could not)."""
    h = hashlib.sha256()
    h.update(content)
    h.update(json.dumps([checks_fp, HARNESS_VERSION, sorted(cell_max.items()), db_url,
                         job.notebook_id]).encode())
    return h.hexdigest()


def _marker_matches(path: Path, key: str) -> bool:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("key") == key
    except (OSError, ValueError, AttributeError):
        return False


def _no_notebook_results(assignment: str, job: Job) -> dict[str, Any]:
    """No notebook at all: nothing to grade; grade cells stay for manual grading."""
    from .results import without_notebook
    return without_notebook(assignment, job.submitted_dir,
                            f"Your submission folder holds no .ipynb notebook for {assignment}.")


def _write_files(course_dir: Path, assignment: str, job: Job, results: dict[str, Any],
                 cell_max: dict[str, float]) -> gbook.Record:
    """Write results and the notebook copy (with the checks' results as the test cells' output)
    into ``autograded/``; return what the gradebook gets.  Feedback pages are nbgrader's
    (``nbgrader generate_feedback`` renders the copy and the gradebook's comments)."""
    import nbformat
    out_dir = course_dir / "autograded" / job.student / assignment
    atomic_write(out_dir / "results.json", json.dumps(results, indent=1))
    scores = gbook.cell_scores(results, cell_max)
    copy = nbformat.reads(_formgrader_copy(course_dir, job), as_version=4)
    atomic_write(out_dir / f"{job.notebook_id}.ipynb",
                 nbformat.writes(show_check_results(copy, results, scores, cell_max)))
    for name, data in job.files.items():       # nbgrader's files, as read safely
        if name != "timestamp.txt":
            atomic_write(out_dir / name, data)
    if job.timestamp:
        atomic_write(out_dir / "timestamp.txt", job.timestamp)
    ensure_release_files(out_dir)             # hand-unpacked submissions: release_feedback works
    return gbook.Record(job.student, scores, job.timestamp, check_messages(results))


def _write_marker(course_dir: Path, assignment: str, job: Job, results: dict[str, Any], key: str) -> None:
    out_dir = course_dir / "autograded" / job.student / assignment
    atomic_write(out_dir / MARKER, json.dumps({"key": key, "score": results["score"],
                                               "max_score": results["max_score"],
                                               "graded_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                               **({"grader": job.grader} if job.grader else {})}))
    (out_dir / FAILED).unlink(missing_ok=True)


def _record(course_dir: Path, assignment: str, job: Job, results: dict[str, Any], key: str,
            db_url: str, cell_max: dict[str, float]) -> None:
    """One submission on its own: files, gradebook (one commit) — then the marker (the journal)."""
    rec = _write_files(course_dir, assignment, job, results, cell_max)
    t0 = time.monotonic()
    gbook.record_many(db_url, assignment, job.notebook_id, [rec])
    TIMINGS["gradebook_s"] += time.monotonic() - t0
    _kill_hook()
    _write_marker(course_dir, assignment, job, results, key)


#: Graded submissions written to the gradebook per session and commit (``--record-every``).
RECORD_EVERY = 32


class _Recorder:
    """Batched recording with the same journal: files first, then ONE gradebook commit for up to
    ``every`` submissions, then their markers.  A kill before the commit loses the staged
    submissions' rows (no markers: regraded on the rerun); a kill after it, before the markers,
    leaves rows that the rerun overwrites with the same values.  If a batched commit fails, its
    submissions are recorded one at a time, so only the one the gradebook refuses is reported."""

    def __init__(self, course_dir: Path, assignment: str, db_url: str, cell_max: dict[str, float],
                 every: int = RECORD_EVERY) -> None:
        self.course_dir, self.assignment, self.db_url, self.cell_max = course_dir, assignment, db_url, cell_max
        self.every = max(1, int(every))
        self.staged: list[tuple[Job, dict[str, Any], str, gbook.Record]] = []
        self.done: list[tuple[Job, dict[str, Any], str | None]] = []   # (job, results, why not recorded)

    def add(self, job: Job, results: dict[str, Any], key: str) -> None:
        try:
            rec = _write_files(self.course_dir, self.assignment, job, results, self.cell_max)
        except Exception as exc:  # noqa: BLE001 - one submission's failure must not stop the batch
            self._failed(job, results, exc)
            return
        self.staged.append((job, results, key, rec))
        if len(self.staged) >= self.every:
            self.flush()

    def flush(self) -> None:
        staged, self.staged = self.staged, []
        if not staged:
            return
        t0 = time.monotonic()
        try:
            gbook.record_many(self.db_url, self.assignment, staged[0][0].notebook_id, [s[3] for s in staged])
            TIMINGS["gradebook_s"] += time.monotonic() - t0
        except Exception:  # noqa: BLE001 - find the one the gradebook refuses
            if len(staged) == 1:
                self._failed(staged[0][0], staged[0][1], sys.exc_info()[1])
                return
            for job, results, key, _ in staged:
                why = _record_or_report(self.course_dir, self.assignment, job, results, key,
                                        self.db_url, self.cell_max)
                self.done.append((job, results, why))
            return
        _kill_hook()
        for job, results, key, _ in staged:
            try:
                _write_marker(self.course_dir, self.assignment, job, results, key)
                self.done.append((job, results, None))
            except Exception as exc:  # noqa: BLE001
                self._failed(job, results, exc)

    def _failed(self, job: Job, results: dict[str, Any], exc: BaseException) -> None:
        reason = printable(f"recording failed: {type(exc).__name__}: {exc}")[:2000]
        try:
            atomic_write(self.course_dir / "autograded" / job.student / self.assignment / FAILED,
                         json.dumps({"reason": reason, "score": results.get("score")}))
        except Exception:  # noqa: BLE001 - the summary still reports it
            pass
        self.done.append((job, results, reason))

    def take(self) -> list[tuple[Job, dict[str, Any], str | None]]:
        done, self.done = self.done, []
        return done


def _formgrader_copy(course_dir: Path, job: Job) -> str:
    """The notebook formgrader shows: rebuilt without active content (never the submitted file)."""
    if job.problem is not None:
        return placeholder_notebook(job.problem)
    if job.notebook is None:
        return placeholder_notebook("the submission folder holds no .ipynb notebook")
    try:
        return formgrader_copy(safefile.read_file(job.notebook, MAX_NOTEBOOK_BYTES, within=course_dir))
    except (safefile.UnsafeFile, OSError) as exc:
        return placeholder_notebook(str(exc) if isinstance(exc, safefile.UnsafeFile) else "it cannot be read")


def _record_or_report(course_dir: Path, assignment: str, job: Job, results: dict[str, Any], key: str,
                      db_url: str, cell_max: dict[str, float]) -> str | None:
    """:func:`_record`, isolated: None, or why this submission could not be recorded."""
    try:
        _record(course_dir, assignment, job, results, key, db_url, cell_max)
        return None
    except Exception as exc:  # noqa: BLE001 - one submission's failure must not stop the batch
        reason = printable(f"recording failed: {type(exc).__name__}: {exc}")[:2000]
    try:
        atomic_write(course_dir / "autograded" / job.student / assignment / FAILED,
                     json.dumps({"reason": reason, "score": results.get("score")}))
    except Exception:  # noqa: BLE001 - the summary still reports it
        pass
    return reason


_COMMITS = 0
#: Seconds this process spent writing the gradebook (the benchmark reports its share of wall time).
TIMINGS = {"gradebook_s": 0.0}


def _kill_hook() -> None:
    global _COMMITS
    _COMMITS += 1
    limit = os.environ.get(KILL_HOOK_ENV)
    if limit and _COMMITS >= int(limit):
        os.kill(os.getpid(), signal.SIGKILL)


def run_batch(course_dir: str | os.PathLike, assignment: str, *, workers: int = 2,
              db_url: str | None = None, checks_root: str | os.PathLike | None = None,
              force: bool = False, source_notebook: str | os.PathLike | None = None,
              progress: bool = True, isolate: bool = True, student_dlkit: str | None = None,
              record_every: int = RECORD_EVERY, scheduler: str | None = None,
              allow_weak_isolation: bool = False, quick_pass: bool = True) -> int:
    """Grade every submission of ``assignment``; returns the exit status (0, or 1 if some failed).

    ``scheduler``: grade on Dask (``"tcp://host:8786"``, or ``"local:N"`` for an in-process
    cluster of N worker processes; :mod:`autograder.distributed`) instead of ``workers`` local
    processes; ``allow_weak_isolation``: let Dask workers without namespaces grade.
    ``record_every``: graded submissions written per gradebook session and commit.
    ``quick_pass``: grade every submission first with a tenth of every budget
    (``api.QUICK_FRACTION``) and the ones that run out of one, or crash, again with the full
    budgets after all the others, so that hostile or runaway code delays no honest submission
    (False: one pass with the full budgets).  Scores are the same either way.
    """
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
    limits = limits_from_config(course)   # the course's sandbox budgets, for every engine

    failures: list[str] = []          # not graded (harness errors, unusable student ids): nothing recorded
    unrecorded: list[str] = []        # graded, but recording failed
    scores: list[float] = []
    t0 = time.monotonic()
    from tqdm.auto import tqdm
    with tempfile.TemporaryDirectory(prefix="dlkit-student-edition-") as tmp:
        kit = student_dlkit or build_student_edition(tmp, assignment)   # + packs of earlier assignments
        if scheduler:
            from .distributed import DaskEngine
            pool = DaskEngine(scheduler, assignment=assignment, checks_folder=folder, checks_fp=checks_fp,
                              kit=kit, isolate=isolate, allow_weak=allow_weak_isolation, course=course,
                              limits=limits, quick=quick_pass)
            workers = pool.workers
        else:
            pool = _Pool(workers, (assignment, None if checks_root is None else str(checks_root), kit,
                                   isolate, os.getpid(), limits), quick=quick_pass)
        try:
            def submit(job: Job, key: str) -> None:
                """Grade in the pool: a notebook, or a submission with a problem (all checks 0)."""
                if job.notebook is not None or job.problem is not None:
                    pool.submit(job, key, course)

            # Read each submission (safely) and hand it to the pool at once: grading starts
            # while the rest are read.
            jobs = discover(course, assignment, file_stem)
            cell_points = {c.grade_id: c.max_score for c in cells}
            todo: list[tuple[Job, str]] = []
            done: list[tuple[Job, str]] = []
            for job in jobs:
                bad_id = _bad_student_id(job.student)
                if bad_id:
                    failures.append(f"{job.student!r}: {bad_id}")
                    continue
                key = _key(_read_submission(course, job), job, checks_fp, cell_points, db_url)
                marker = course / "autograded" / job.student / assignment / MARKER
                if not force and _marker_matches(marker, key):
                    done.append((job, key))
                else:
                    todo.append((job, key))
                    submit(job, key)
            skipped = len(done)
            print(f"{assignment}: {len(jobs)} submission(s) in {course / 'submitted'}; {skipped} already "
                  f"graded, {len(todo)} to grade with {workers} worker(s)", file=sys.stderr)
            # While the pool grades: the gradebook (importing nbgrader takes seconds).
            notebook_id = gbook.gradebook_notebook(db_url, assignment, file_stem) or file_stem
            cell_max = gbook.ensure_assignment(db_url, assignment, notebook_id, cells,
                                               gbook.source_answer_ids(source) if source else [])
            if not cell_max:
                print("warning: no grade cells known for this assignment: scores go to results.json "
                      "and feedback only (pass --source with the source notebook)", file=sys.stderr)
            # A marker without its gradebook rows (e.g. a replaced gradebook): grade again.
            recorded = gbook.submitted_students(db_url, assignment)
            for job, key in done:
                if job.student not in recorded:
                    todo.append((job, key))
                    skipped -= 1
                    submit(job, key)
            for job, _ in todo:
                job.notebook_id = notebook_id

            recorder = _Recorder(course, assignment, db_url, cell_max, record_every)

            def settle() -> None:
                for job, results, why in recorder.take():
                    if why is None:
                        scores.append(results["score"])
                    else:
                        unrecorded.append(f"{job.student}: {why}")

            def record(job: Job, results: dict[str, Any], key: str) -> None:
                recorder.add(job, results, key)
                settle()

            bar = tqdm(total=len(todo), disable=not progress or not todo, unit="sub", file=sys.stderr)
            for job, key in todo:   # submissions without a notebook need no grading
                if job.notebook is None and job.problem is None:
                    record(job, _no_notebook_results(assignment, job), key)
                    bar.update(1)
            for job, key, results, error in pool.results(course):
                if pool.deferred:
                    bar.set_postfix_str(f"{pool.deferred} graded again with the full budgets", refresh=False)
                if results is None:
                    failures.append(f"{job.student}: {error}")
                else:
                    if job.quick_pass:
                        results["quick_pass"] = job.quick_pass
                    record(job, results, key)
                bar.update(1)
            recorder.flush()
            settle()
            bar.close()
        finally:
            pool.shutdown(cancel=True)        # all done, or interrupted: cancel what did not start
    elapsed = time.monotonic() - t0
    graded = len(scores)
    rate = f", {60 * graded / elapsed:.0f} submissions/min" if graded and elapsed > 0 else ""
    print(f"graded {graded}, skipped {skipped}, failed {len(failures) + len(unrecorded)} in "
          f"{elapsed:.1f} s{rate}; gradebook: {db_url}", file=sys.stderr)
    print(f"gradebook writes: {TIMINGS['gradebook_s']:.2f} s", file=sys.stderr)
    again = sorted(job.student for job in jobs if job.quick_pass)
    if again:
        print(printable(f"quick pass: {len(again)} submission(s) ran out of a tenth of a budget or crashed, "
                        f"and were graded with the full budgets after the others (results.json: "
                        f"quick_pass): {', '.join(again[:10])}{' and more' if len(again) > 10 else ''}"),
              file=sys.stderr)
    for f in failures:
        print(printable(f"NOT GRADED (nothing recorded): {f}"), file=sys.stderr)
    for f in unrecorded:
        print(printable(f"NOT RECORDED (graded, but writing its results failed; see {FAILED}): {f}"),
              file=sys.stderr)
    for note in _identical_notebooks(jobs, source):
        print(printable(f"CHECK BY HAND (graded as usual): {note}"), file=sys.stderr)
    return 1 if failures or unrecorded else 0


def _identical_notebooks(jobs: list[Job], source: Path | None) -> list[str]:
    """Submitted notebooks byte-identical to the instructor's source notebook or to each other.

    Links are refused (see :mod:`autograder.safefile`), but ``nbgrader collect`` copies the
    exchange with ``shutil.copytree``, which follows a student's link as the instructor: what
    arrives in ``submitted/`` is then a plain copy of the linked file.  Identical bytes are a
    hint for the TA, never a score (an honest notebook may equal another by chance).
    """
    notes = []
    try:
        src = hashlib.sha256(source.read_bytes()).hexdigest() if source is not None else None
    except OSError:
        src = None
    same: dict[str, list[str]] = {}
    for job in jobs:
        if job.sha256 is not None:
            same.setdefault(job.sha256, []).append(job.student)
    for digest, students in sorted(same.items(), key=lambda kv: kv[1]):
        names = ", ".join(students[:10]) + (f" and {len(students) - 10} more" if len(students) > 10 else "")
        if digest == src:
            notes.append(f"the notebook of {names} is byte-identical to the instructor's source notebook {source}")
        elif len(students) > 1:
            notes.append(f"{names} submitted byte-identical notebooks")
    return notes
