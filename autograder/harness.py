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

import ast
import atexit
import hashlib
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from . import api
from . import safefile
from . import wire
from .sandbox import Limits, Sandbox, SandboxStartError, WorkerCrashed, WorkerTimeout

__all__ = ["HarnessError", "grade_notebook", "grade", "checks_dir", "REPO", "CHECKS_ROOT",
           "HARNESS_VERSION", "graded_names", "format_summary"]

HARNESS_VERSION = "1"
REPO = Path(__file__).resolve().parent.parent
CHECKS_ROOT = Path(__file__).resolve().parent
MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024
MAX_CELL_CHARS = 200_000
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: Names every answer cell gets from the worker: never a reason to run another cell first.
PROVIDED_NAMES = frozenset({"np", "math", "dlkit", "get_ipython"}) | frozenset(dir(__import__("builtins")))


class HarnessError(Exception):
    """A problem of the grading setup (not of the submission): exit non-zero, record nothing."""


# =============================================================================================
# Locating checks
# =============================================================================================
def checks_dir(assignment: str, checks_root: str | os.PathLike | None = None) -> Path:
    """``<checks_root>/<assignment>/`` (default root: the autograder package), validated."""
    if not _ID.match(assignment or ""):
        raise HarnessError(f"invalid assignment id {assignment!r}")
    root = Path(checks_root) if checks_root is not None else CHECKS_ROOT
    folder = root / assignment
    if not folder.is_dir():
        known = sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("test_*.py"))) \
            if root.is_dir() else []
        raise HarnessError(f"unknown assignment {assignment!r}: no hidden checks in {folder}"
                           + (f" (assignments with checks: {', '.join(known)})" if known else ""))
    if not any(folder.glob("test_*.py")):
        raise HarnessError(f"no hidden checks (test_*.py) in {folder}")
    return folder


def checks_fingerprint(folder: Path) -> str:
    """Hash of every file of the checks folder (a change of checks means re-grading)."""
    h = hashlib.sha256(HARNESS_VERSION.encode())
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def graded_names(graded_md: Path = REPO / "notebooks" / "GRADED.md") -> dict[str, str]:
    """``{graded name: assignment}`` from the table in notebooks/GRADED.md (empty if absent)."""
    names: dict[str, str] = {}
    try:
        text = graded_md.read_text(encoding="utf-8")
    except OSError:
        return names
    current = None
    for line in text.splitlines():
        cols = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cols) < 3 or not line.lstrip().startswith("|"):
            continue
        if _ID.match(cols[0]) and cols[0][:2].isdigit():
            current = cols[0]
        elif cols[0]:
            continue
        m = re.match(r"^`([A-Za-z_][A-Za-z0-9_]*)`$", cols[1])
        if current and m:
            names[m.group(1)] = current
    return names


# =============================================================================================
# The submission's answer cells (parsed, never executed, in the trusted process)
# =============================================================================================
@dataclass
class Cell:
    grade_id: str
    source: str
    defines: set[str] = field(default_factory=set)
    uses: set[str] = field(default_factory=set)
    syntax_error: str | None = None


def _transform_ipython(source: str) -> str:
    """Turn IPython syntax (magics, ``!cmd``) into plain Python calls; text only, no execution.

    Runs on student text: call it only inside :func:`analyze_cells`' limited child process
    (or on trusted text); it may raise anything (e.g. "Input transformation still changing").
    """
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:  # pragma: no cover - IPython ships with jupyter
        return source
    return TransformerManager().transform_cell(source)


def analyze_cell(grade_id: str, source: str) -> Cell:
    """Top-level names a cell defines and all names it reads (by ``ast``; nothing runs).

    Never raises for any text: a cell that cannot be parsed gets ``syntax_error``.  Unbounded
    in time and memory, so student cells go through :func:`analyze_cells` (a limited child).
    """
    cell = Cell(grade_id, source)
    if len(source) > MAX_CELL_CHARS:
        cell.syntax_error = f"the cell has {len(source)} characters (limit {MAX_CELL_CHARS})"
        return cell
    tree = None
    first: BaseException | None = None
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        first = exc
    except (ValueError, RecursionError, MemoryError, OverflowError) as exc:
        cell.syntax_error = f"the cell cannot be parsed: {type(exc).__name__}"
        return cell
    if tree is None:   # outside the except block: errors here are not chained to the SyntaxError
        try:
            transformed = _transform_ipython(source)
            tree = ast.parse(transformed)
            cell.source = transformed
        except SyntaxError as exc:
            cell.syntax_error = f"SyntaxError: {exc.msg} (line {exc.lineno})"
            return cell
        except Exception as exc:  # noqa: BLE001 - RecursionError, MemoryError, IPython's RuntimeError...
            msg = str(first.msg) if isinstance(first, SyntaxError) else ""
            cell.syntax_error = (f"the cell cannot be parsed ({type(exc).__name__} while reading its "
                                 f"IPython syntax; Python says: SyntaxError: {msg[:200]})")
            return cell

    def top_level(nodes: list[ast.stmt], depth: int = 0) -> None:
        if depth > 50:
            return
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                cell.defines.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    for n in ast.walk(t):
                        if isinstance(n, ast.Name):
                            cell.defines.add(n.id)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    if alias.name != "*":
                        cell.defines.add((alias.asname or alias.name).split(".")[0])
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
                for attr in ("body", "orelse", "finalbody"):
                    top_level(getattr(node, attr, []) or [], depth + 1)
                for handler in getattr(node, "handlers", []) or []:
                    top_level(handler.body, depth + 1)

    try:
        top_level(tree.body)
        cell.uses = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    except (RecursionError, MemoryError) as exc:
        cell.defines, cell.uses = set(), set()
        cell.syntax_error = f"the cell cannot be parsed: {type(exc).__name__}"
    return cell


#: Bounds of the analysis of one submission's cells (a forked child process of the grader).
ANALYSIS_CELL_S = 5.0       # one cell
ANALYSIS_TOTAL_S = 15.0     # all cells of a submission together
ANALYSIS_MEMORY_MB = 768    # address space the child may add to the grader's


def _vm_size() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _analysis_child(items: list[tuple[str, str]], wfd: int, memory_mb: int, cpu_s: float) -> None:
    """In the forked child: analyse ``items`` in order, one JSON line each to ``wfd``; never returns."""
    code = 0
    try:
        import resource
        try:
            extra = (memory_mb << 20) + _vm_size()
            resource.setrlimit(resource.RLIMIT_AS, (extra, extra))
            cpu = int(cpu_s) + 1
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        except (ValueError, OSError):
            pass
        for gid, src in items:
            try:
                cell = analyze_cell(gid, src)
                rec: dict[str, Any] = {"gid": gid, "defines": sorted(cell.defines), "uses": sorted(cell.uses),
                                       "error": cell.syntax_error}
                if cell.source != src:
                    rec["source"] = cell.source
            except BaseException as exc:  # noqa: BLE001 - MemoryError, RecursionError, anything
                rec = {"gid": gid, "error": f"the cell cannot be parsed: {type(exc).__name__}"}
            data = (json.dumps(rec) + "\n").encode("utf-8", "surrogatepass")
            view = memoryview(data)
            while view:
                view = view[os.write(wfd, view):]
    except BaseException:  # noqa: BLE001
        code = 1
    finally:
        os._exit(code)


def analyze_cells(cells: dict[str, str], *, cell_s: float = ANALYSIS_CELL_S,
                  total_s: float = ANALYSIS_TOTAL_S, memory_mb: int = ANALYSIS_MEMORY_MB) -> dict[str, Cell]:
    """:func:`analyze_cell` for every cell of a submission, bounded: the work runs in forked
    child processes with an address-space and CPU limit; one cell gets ``cell_s`` seconds, all
    of them ``total_s``.  A cell whose analysis crashes, runs out of memory or time gets
    ``syntax_error`` (it scores 0 for what it defines); nothing of it reaches this process but
    the JSON lines the child writes."""
    try:   # imported here, in the trusted process, so that children do not each pay for it
        import IPython.core.inputtransformer2  # noqa: F401
    except ImportError:  # pragma: no cover
        pass
    out: dict[str, Cell] = {}
    todo = [(gid, src) for gid, src in cells.items()]
    for gid, src in todo:
        if len(src) > MAX_CELL_CHARS:
            out[gid] = Cell(gid, src, syntax_error=f"the cell has {len(src)} characters (limit {MAX_CELL_CHARS})")
    todo = [(g, s) for g, s in todo if g not in out]
    end = time.monotonic() + total_s
    while todo and time.monotonic() < end:
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os.close(rfd)
            _analysis_child(todo, wfd, memory_mb, min(total_s, end - time.monotonic()) + 1)
        os.close(wfd)
        buf = b""
        cell_end = min(end, time.monotonic() + cell_s)
        why = None
        try:
            while todo:
                left = cell_end - time.monotonic()
                if left <= 0:
                    why = (f"analysing the cell took longer than {cell_s:g} s" if cell_end < end else
                           f"analysing the notebook's cells took longer than {total_s:g} s in all")
                    break
                ready, _, _ = select.select([rfd], [], [], left)
                if not ready:
                    continue
                chunk = os.read(rfd, 1 << 20)
                if not chunk:
                    why = "the cell could not be parsed (the parser ran out of memory or crashed)"
                    break
                buf += chunk
                while b"\n" in buf and todo:
                    line, buf = buf.split(b"\n", 1)
                    gid, src = todo.pop(0)
                    try:
                        rec = json.loads(line.decode("utf-8", "surrogatepass"))
                    except ValueError:
                        rec = {"gid": gid, "error": "the cell could not be parsed"}
                    cell = Cell(gid, rec.get("source", src) if isinstance(rec.get("source"), str) else src)
                    cell.defines = {n for n in rec.get("defines") or [] if isinstance(n, str)}
                    cell.uses = {n for n in rec.get("uses") or [] if isinstance(n, str)}
                    cell.syntax_error = rec.get("error") if isinstance(rec.get("error"), str) else None
                    out[gid] = cell
                    cell_end = min(end, time.monotonic() + cell_s)
        finally:
            os.close(rfd)
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            os.waitpid(pid, 0)
        if why and todo:
            gid, src = todo.pop(0)
            out[gid] = Cell(gid, src, syntax_error=why)
    for gid, src in todo:
        out[gid] = Cell(gid, src, syntax_error=f"not analysed: reading the notebook's cells took longer "
                                               f"than {total_s:g} s in all")
    return {gid: out[gid] for gid in cells}


#: Contract B: policy name -> top-level modules an answer cell may import.  The single home is
#: ``dlkit.student.POLICIES`` (read from the INSTRUCTOR dlkit, never from inside the sandbox);
#: this is a FALLBACK COPY used only while the installed dlkit lacks it (remove once merged).
_FALLBACK_POLICIES: dict[str, tuple[str, ...]] = {
    "numpy": ("numpy", "math", "functools", "itertools", "collections", "typing", "dataclasses",
              "numbers", "operator", "__future__"),
    "dlkit": ("numpy", "math", "functools", "itertools", "collections", "typing", "dataclasses",
              "numbers", "operator", "__future__", "dlkit"),
}
DEFAULT_POLICY = "dlkit"


def import_policies() -> dict[str, tuple[str, ...]]:
    """Policy name -> allowed top-level modules (``dlkit.student.POLICIES``, else the fallback)."""
    try:
        from dlkit.student import POLICIES  # type: ignore[attr-defined]
        return {str(k): tuple(str(m) for m in v) for k, v in POLICIES.items()}
    except (ImportError, AttributeError, TypeError):
        return dict(_FALLBACK_POLICIES)


def graded_md_path() -> Path:
    """notebooks/GRADED.md (``$DLKIT_GRADED_MD`` overrides it, for the grader's own tests)."""
    given = os.environ.get("DLKIT_GRADED_MD")
    return Path(given) if given else REPO / "notebooks" / "GRADED.md"


def cell_policies(gids: list[str], graded_md: Path | None = None) -> dict[str, str | None]:
    """The imports policy of each answer cell (contract B).

    A submission of an assignment listed in GRADED.md (one of its cells is a graded name there):
    each cell gets its ``imports`` entry, ``dlkit`` (:data:`DEFAULT_POLICY`) when the column or
    the entry is missing (an extra, unlisted answer cell included).  Cells of assignments GRADED.md
    does not list (e.g. the grader's own test fixtures) get None: no policy."""
    path = graded_md if graded_md is not None else graded_md_path()
    known = graded_names(path)
    if not any(g in known for g in gids):
        return {g: None for g in gids}
    table = graded_import_policies(path)
    return {g: table.get(g, DEFAULT_POLICY) for g in gids}


def graded_import_policies(graded_md: Path | None = None) -> dict[str, str]:
    """``{graded name: policy}`` from GRADED.md's ``imports`` column (empty while it has none)."""
    graded_md = graded_md if graded_md is not None else graded_md_path()
    out: dict[str, str] = {}
    try:
        text = graded_md.read_text(encoding="utf-8")
    except OSError:
        return out
    col = None
    for line in text.splitlines():
        if not line.lstrip().startswith("|"):
            col = None
            continue
        cols = [c.strip() for c in line.strip().strip("|").split("|")]
        low = [c.strip("` ").lower() for c in cols]
        if "name" in low and "imports" in low:
            col = low.index("imports")
            name_col = low.index("name")
            continue
        if col is None or len(cols) <= max(col, name_col):
            continue
        m = re.match(r"^`([A-Za-z_][A-Za-z0-9_]*)`$", cols[name_col])
        policy = cols[col].strip("` ")
        if m and policy:
            out[m.group(1)] = policy
    return out


# =============================================================================================
# The student proxy and the per-submission session
# =============================================================================================
def _student_error_text(err: dict, stdout: str = "") -> str:
    text = f"{err.get('type', 'Error')}: {err.get('message', '')}".rstrip()
    if err.get("traceback"):
        text += "\nWhere (your code):\n" + err["traceback"]
    if stdout:
        text += "\nYour code printed:\n" + stdout[:800]
    return text


class SubmissionBudgetExhausted(api.StudentTimeout):
    """The whole submission's time budget (``Limits.submission_s``) is used up."""


class _Clock:
    """Seconds a check (or the loading of one answer cell) has spent waiting on the sandbox.

    Only time inside requests counts: starting or restarting a worker (e.g. after an earlier
    check's timeout), loading answer cells and the check's own trusted code never do, so the
    same correct answer gets the same budget in every run.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout, self.used = float(timeout), 0.0

    def left(self) -> float:
        return self.timeout - self.used


class Submission:
    """One submission's answer cells and its (lazily started, restartable) sandbox.

    ``policies``: ``{grade_id: import policy}`` (default: GRADED.md's ``imports`` column, else
    ``dlkit``); ``sandbox_options``: keyword arguments for :class:`Sandbox` (contract C:
    ``toolchain``, ``ro_dirs``, ``env``, ``mode``).  The whole grading of the submission (this
    object's life: parsing, every check, compiling) gets ``limits.submission_s`` seconds.
    """

    def __init__(self, cells: dict[str, str], student_dlkit: str | None, limits: Limits,
                 isolate: bool = True, *, policies: dict[str, str] | None = None,
                 sandbox_options: dict[str, Any] | None = None) -> None:
        self.t_start = time.monotonic()
        self.limits = limits
        self.t_end = self.t_start + float(limits.submission_s)
        self.cells = analyze_cells(cells, total_s=min(ANALYSIS_TOTAL_S, 0.5 * float(limits.submission_s)))
        self.order = list(self.cells)
        self._index = {g: i for i, g in enumerate(self.order)}
        self._definers: dict[str, list[str]] = {}
        for gid in self.order:
            for name in self.cells[gid].defines:
                self._definers.setdefault(name, []).append(gid)
        self._names = sorted(self._definers)
        self._closures: dict[tuple[str, ...], list[str]] = {}
        table = import_policies()
        chosen: dict[str, str | None] = (cell_policies(self.order) if policies is None else
                                         {g: policies.get(g, DEFAULT_POLICY) for g in self.order})
        self.policy: dict[str, str | None] = {}
        self.allowed: dict[str, tuple[str, ...] | None] = {}
        for gid in self.order:
            name = chosen.get(gid)
            if name is not None and name not in table:   # unknown policy in GRADED.md: the strictest
                name = "numpy" if "numpy" in table else DEFAULT_POLICY
            self.policy[gid] = name
            self.allowed[gid] = None if name is None else tuple(table.get(name, ()))
        self.student_dlkit, self.isolate = student_dlkit, isolate
        self.sandbox_options = dict(sandbox_options or {})
        self.sandbox: Sandbox | None = None
        self.loaded: set[str] = set()
        self.load_failures: dict[str, str] = {}    # cell -> why its definition killed the worker
        self.isolation: dict[str, Any] = {}
        self.workers_started = 0
        self.timed_out: set[str] = set()             # functions that exceeded a check's budget

    # ---- static facts
    def defined_names(self) -> list[str]:
        return list(self._names)

    def cells_defining(self, name: str) -> list[str]:
        found = list(self._definers.get(name, ()))
        if not found and name in self.cells:
            found = [name]
        return found

    def closure(self, roots: list[str]) -> list[str]:
        """The cells ``roots`` need: themselves and, transitively, cells defining names they use
        (linear in the size of the dependency graph; memoised per ``roots``)."""
        key = tuple(roots)
        hit = self._closures.get(key)
        if hit is not None:
            return list(hit)
        need, todo = set(), list(roots)
        while todo:
            gid = todo.pop()
            if gid in need:
                continue
            need.add(gid)
            for name in self.cells[gid].uses - PROVIDED_NAMES:
                for other in self._definers.get(name, ()):
                    if other not in need:
                        todo.append(other)
        out = sorted(need, key=self._index.__getitem__)
        self._closures[key] = out
        return list(out)

    # ---- sandbox lifecycle
    def _new_sandbox(self) -> Sandbox:
        return Sandbox(self.student_dlkit, self.limits, isolate=self.isolate, **self.sandbox_options)

    def prestart(self) -> None:
        """Launch the first worker now, so that it boots while pytest collects the checks."""
        if self.sandbox is None:
            self.sandbox = self._new_sandbox()
            try:
                self.sandbox.launch()
            except SandboxStartError as exc:
                self.sandbox = None
                raise HarnessError(str(exc)) from exc
            self.workers_started += 1

    def _ensure_sandbox(self) -> Sandbox:
        if self.sandbox is not None and not self.sandbox.ready:
            try:
                self.isolation = self.sandbox.wait_ready()
            except SandboxStartError as exc:
                self.sandbox = None
                raise HarnessError(str(exc)) from exc
        if self.sandbox is not None and self.sandbox.alive:
            return self.sandbox
        self.discard_sandbox()
        sandbox = self._new_sandbox()
        try:
            self.isolation = sandbox.start()
        except SandboxStartError as exc:
            raise HarnessError(str(exc)) from exc
        self.workers_started += 1
        self.sandbox = sandbox
        return sandbox

    def discard_sandbox(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()
        self.sandbox = None
        self.loaded = set()

    def close(self) -> None:
        self.discard_sandbox()

    def budget_left(self) -> float:
        """Seconds left of the whole submission's budget (``limits.submission_s``)."""
        return self.t_end - time.monotonic()

    def _request(self, message: dict, blobs: list[bytes], clock: _Clock,
                 what: str, cells: Any = ()) -> tuple[dict, list[bytes]]:
        """Send one request; ``cells``: the answer cells whose code the request runs."""
        if clock.left() <= 0:
            raise api.StudentTimeout(f"{what}: the time budget of this check ({clock.timeout:g} s) is used up")
        if self.budget_left() <= 0:
            raise SubmissionBudgetExhausted(f"{what} was not run: the time budget of the whole "
                                            f"submission ({self.limits.submission_s:g} s) is used up")
        sandbox = self._ensure_sandbox()           # (re)starting a worker costs no check time
        budget = clock.left()
        if self.timed_out.intersection(cells):
            # That code already ran out of time in an earlier check: a short budget, so that
            # one infinite loop does not cost the full timeout of every check calling it.
            budget = min(budget, max(0.5, 0.1 * clock.timeout))
        t0 = time.monotonic()
        by_submission = self.t_end - t0 < budget
        deadline = t0 + min(budget, self.t_end - t0)
        try:
            return sandbox.request(message, blobs, deadline)
        except WorkerTimeout:
            self.discard_sandbox()
            if by_submission:
                raise SubmissionBudgetExhausted(
                    f"{what} did not finish before the time budget of the whole submission "
                    f"({self.limits.submission_s:g} s) ran out") from None
            self.timed_out.update(cells)
            raise api.StudentTimeout(
                f"{what} did not finish within this check's time limit of {clock.timeout:g} s "
                "(an infinite loop, or far too slow code?)") from None
        except WorkerCrashed as exc:
            tail = sandbox.output_tail()[-600:]
            self.discard_sandbox()
            msg = (f"{what} crashed the process running your code: {exc}. Common causes: "
                   "sys.exit()/os._exit()/quit(), using more than "
                   f"{self.limits.memory_mb} MB of memory, creating processes, or printing/writing "
                   "far too much output.")
            if tail:
                msg += "\nLast output:\n" + tail
            raise api.StudentCrash(msg) from None
        finally:
            clock.used += time.monotonic() - t0

    def cell_message(self, gid: str) -> dict[str, Any]:
        """One cell of an ``exec`` request, with its imports policy (contract B)."""
        allowed = self.allowed[gid]
        return {"gid": gid, "source": self.cells[gid].source, "policy": self.policy[gid],
                "allowed_imports": None if allowed is None else list(allowed)}

    def load(self, gids: list[str], timeout: float) -> None:
        """Define ``gids`` (in order) in the worker; raise StudentError for a failing cell.

        Each cell gets ``timeout`` seconds of its own (not taken from the calling check)."""
        for gid in gids:
            cell = self.cells[gid]
            if gid in self.load_failures:
                raise api.StudentCrash(self.load_failures[gid])
            if cell.syntax_error:
                raise api.StudentError(f"your answer cell {gid!r} cannot run: {cell.syntax_error}")
            if gid in self.loaded:
                continue
            try:
                reply, _ = self._request({"op": "exec", "cells": [self.cell_message(gid)]}, [],
                                         _Clock(timeout), f"running your answer cell {gid!r}", [gid])
            except SubmissionBudgetExhausted:
                raise                          # not the cell's fault: nothing to remember
            except (api.StudentTimeout, api.StudentCrash) as exc:
                self.load_failures[gid] = str(exc)
                raise
            self.loaded.add(gid)
            error = (reply.get("errors") or {}).get(gid) if reply.get("ok") else str(reply.get("error"))
            if error:
                self.load_failures[gid] = f"your answer cell {gid!r} raised an error when it was run:\n{error}"
        for gid in gids:  # report errors of the cells asked for (and of their dependencies)
            if gid in self.load_failures:
                raise api.StudentError(self.load_failures[gid])

    def _decode_reply(self, reply: dict, blobs: list[bytes], what: str) -> Any:
        if not reply.get("ok"):
            err = reply.get("error")
            if not isinstance(err, dict):
                err = {"type": "Error", "message": str(err)[:2000]}
            raise api.StudentError(f"{what} raised an error:\n" + _student_error_text(err, str(reply.get("stdout", ""))))
        try:
            return wire.decode(reply.get("value"), blobs, max_elements=self.limits.max_elements)
        except wire.ProtocolError as exc:
            self.discard_sandbox()   # whatever sent this is not trusted to answer again
            raise api.StudentError(f"{what} returned something the grader cannot accept: {exc}") from None

    def _encode_args(self, args: tuple, kwargs: dict) -> tuple[Any, Any, list[bytes]]:
        blobs: list[bytes] = []
        try:
            a = wire.encode(list(args), blobs, allow_rng=True, _where="argument")
            k = wire.encode(dict(kwargs), blobs, allow_rng=True, _where="keyword argument")
        except wire.EncodeError as exc:
            raise TypeError(f"student.call/run: {exc}") from None
        return a, k, blobs


class StudentProxy:
    """The ``student`` fixture of one check (see :class:`autograder.api.Student`).

    The check's clock counts only time spent waiting on the sandbox for the check's own calls
    (see :class:`_Clock`): never a worker (re)start nor the loading of answer cells."""

    def __init__(self, submission: Submission, info: api.CheckInfo | None) -> None:
        self._sub = submission
        self._timeout = info.timeout if info else api.DEFAULT_TIMEOUT
        self._clock = _Clock(self._timeout)

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        sub = self._sub
        roots = sub.cells_defining(name)
        if not roots:
            raise api.StudentError(
                f"your notebook does not define {name!r}: no answer cell with grade_id {name!r} was "
                "found (did you delete the cell, copy it, or change its metadata?)")
        a, k, blobs = sub._encode_args(args, kwargs)
        sub.load(sub.closure(roots), self._timeout)
        reply, out = sub._request({"op": "call", "name": name, "args": a, "kwargs": k}, blobs,
                                  self._clock, f"{name}(...)", roots)
        return sub._decode_reply(reply, out, f"{name}(...)")

    def run(self, driver_source: str, entry: str, *args: Any, **kwargs: Any) -> Any:
        sub = self._sub
        uses = analyze_cell("<driver>", driver_source).uses   # the check's own (trusted) text
        roots = sorted({g for name in uses for g in sub.cells_defining(name)}, key=sub.order.index)
        a, k, blobs = sub._encode_args(args, kwargs)
        sub.load(sub.closure(roots), self._timeout)
        reply, out = sub._request({"op": "run", "source": driver_source, "entry": entry, "args": a,
                                   "kwargs": k}, blobs, self._clock,
                                  "your code (driven by the check)", roots)
        return sub._decode_reply(reply, out, "your code (driven by the check)")

    def has(self, name: str) -> bool:
        return bool(self._sub.cells_defining(name)) and name in self._sub.defined_names()

    def defined_names(self) -> list[str]:
        return self._sub.defined_names()


# =============================================================================================
# The pytest plugin collecting per-check outcomes
# =============================================================================================
@dataclass
class Outcome:
    nodeid: str
    name: str
    function: str
    points: float
    status: str = "not run"          # passed | failed | error | skipped | not run
    output: str = ""
    staff: str = ""


def _exception_text(exc: BaseException | None) -> tuple[str, str]:
    """(message for the student, note for staff) for a check's exception."""
    if exc is None:
        return "", ""
    if isinstance(exc, (api.CheckFailure, api.StudentError)):
        return str(exc), ""
    if isinstance(exc, AssertionError):
        first = (str(exc).splitlines() or [""])[0]
        return f"Check failed{': ' + first if first else ''}", ""
    return ("internal error in this check; the course staff has been notified "
            f"({type(exc).__name__})", f"{type(exc).__name__}: {exc}")


class GradingPlugin:
    """Passed to ``pytest.main(plugins=[...])``: provides ``student``, records outcomes.

    ``cells`` are the submission's answer cells (None with ``fatal`` set when the notebook is
    unusable).  Once the checks are collected the graded functions are known, so the plugin
    decides there whether the notebook belongs to this assignment at all.
    """

    def __init__(self, assignment: str, cells: dict[str, str] | None, fatal: str | None,
                 make_submission: Callable[[dict[str, str]], Submission] | None) -> None:
        self.assignment, self.cells, self.fatal = assignment, cells, fatal
        self.make_submission = make_submission
        self.submission: Submission | None = None
        self.outcomes: dict[str, Outcome] = {}
        self.collect_errors: list[str] = []
        self.ignored: list[str] = []
        self.harness_error: HarnessError | None = None
        self._exc: dict[tuple[str, str], BaseException] = {}

    @pytest.fixture
    def student(self, request: Any) -> Iterator[StudentProxy]:
        if self.submission is None:
            assert self.cells is not None and self.make_submission is not None
            self.submission = self.make_submission(self.cells)
        yield StudentProxy(self.submission, api.check_info(getattr(request, "function", None)))

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.collect_errors.append(f"{report.nodeid}: {str(report.longrepr)[-2000:]}")

    def pytest_collection_modifyitems(self, session: Any, config: Any, items: list) -> None:
        keep = []
        for item in items:
            info = api.check_info(getattr(item, "function", None))
            if info is None:
                self.ignored.append(item.nodeid)
                continue
            self.outcomes[item.nodeid] = Outcome(item.nodeid, f"{info.function}: {item.name}",
                                                 info.function, info.points)
            keep.append(item)
        if self.fatal is None and self.cells is not None:
            wrong = _wrong_assignment(self.assignment, self.cells,
                                      {o.function for o in self.outcomes.values()})
            if wrong:
                self.fatal = f"Your notebook could not be graded: {wrong}"
        if self.fatal is not None or self.make_submission is None:
            for o in self.outcomes.values():
                o.status, o.output = "failed", self.fatal or "not graded"
            keep = []
        deselected = [i for i in items if i not in keep]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
        items[:] = keep

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: Any, call: Any) -> Iterator[None]:
        yield
        if call.excinfo is not None:
            self._exc[(item.nodeid, call.when)] = call.excinfo.value

    def pytest_runtest_logreport(self, report: Any) -> None:
        o = self.outcomes.get(report.nodeid)
        if o is None:
            return
        exc = self._exc.get((report.nodeid, report.when))
        if isinstance(exc, HarnessError) and self.harness_error is None:
            self.harness_error = exc     # e.g. the sandbox could not start: not the student's fault
        if report.when == "setup":
            if report.failed:
                o.status = "error"
                o.output, o.staff = _exception_text(exc)
            elif report.skipped:
                o.status, o.output = "skipped", "this check was skipped"
        elif report.when == "call":
            if report.passed:
                o.status, o.output = "passed", ""
            elif report.skipped:
                o.status, o.output = "skipped", "this check was skipped"
            else:
                o.status = "failed" if isinstance(exc, (AssertionError, api.StudentError)) else "error"
                o.output, o.staff = _exception_text(exc)
        elif report.when == "teardown" and report.failed:
            o.status = "error"
            text, staff = _exception_text(exc)
            o.output = (o.output + "\n" + text).strip()
            o.staff = (o.staff + "\n" + staff).strip()


_INI: str | None = None


def _empty_ini() -> str:
    """A blank pytest.ini so that the repository's pytest settings do not apply to the checks."""
    global _INI
    if _INI is None or not os.path.exists(_INI):
        fd, _INI = tempfile.mkstemp(prefix="dlkit-checks-", suffix=".ini")
        os.write(fd, b"[pytest]\n")
        os.close(fd)
        atexit.register(lambda path=_INI: os.path.exists(path) and os.unlink(path))
    return _INI


def _run_checks(folder: Path, plugin: GradingPlugin) -> None:
    import pytest
    args = [str(folder), "-c", _empty_ini(), "--rootdir", str(folder.parent), "--noconftest",
            "--import-mode=importlib", "-p", "no:cacheprovider", "-p", "no:terminal",
            "-p", "no:warnings", "-p", "no:doctest", "-p", "no:junitxml", "-p", "no:pastebin",
            "-p", "no:nose", "-p", "no:legacypath"]
    saved = os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"   # no third-party plugins (e.g. random order)
    try:
        code = pytest.main(args, plugins=[plugin])
    finally:
        if saved is None:
            os.environ.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
        else:
            os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = saved
    if plugin.harness_error is not None:
        raise HarnessError(str(plugin.harness_error))
    if plugin.collect_errors:
        raise HarnessError("the hidden checks could not be loaded:\n" + "\n".join(plugin.collect_errors))
    if int(code) in (3, 4):  # internal error / usage error
        raise HarnessError(f"pytest could not run the hidden checks in {folder} (exit status {int(code)})")
    if not plugin.outcomes:
        raise HarnessError(f"no @check-decorated tests in {folder}")


# =============================================================================================
# Grading
# =============================================================================================
def _read_answer_cells(raw: bytes, name: str) -> tuple[dict[str, str] | None, str | None]:
    """``(answer cells, None)`` or ``(None, reason)`` for notebook bytes that cannot be used."""
    from dlkit import student as nbparse
    if len(raw) > MAX_NOTEBOOK_BYTES:
        return None, f"the notebook is larger than {MAX_NOTEBOOK_BYTES >> 20} MB"
    try:
        nb = _parse_notebook(raw, name)
        return nbparse.answer_cells(nb), None
    except nbparse.NotebookError as exc:
        return None, str(exc)
    except (ValueError, TypeError, AttributeError, RecursionError, MemoryError) as exc:
        return None, f"the notebook is malformed ({type(exc).__name__})"


def _parse_notebook(raw: bytes, name: str) -> dict[str, Any]:
    """``dlkit.student.read_notebook`` (the one notebook parser) on bytes already read safely.

    It reads from a path, so the bytes go into a private in-memory file (``memfd``), never
    back to the submission; its path is replaced by ``name`` in error messages.
    """
    from dlkit import student as nbparse
    fd = os.memfd_create("dlkit-submission", os.MFD_CLOEXEC)
    try:
        with open(fd, "wb", closefd=False) as fh:
            fh.write(raw)
        where = f"/proc/self/fd/{fd}"
        try:
            return nbparse.read_notebook(where)
        except nbparse.NotebookError as exc:
            raise nbparse.NotebookError(str(exc).replace(where, name)) from None
    finally:
        os.close(fd)


def _wrong_assignment(assignment: str, cells: dict[str, str], functions: set[str]) -> str | None:
    if not cells:
        return ("no answer cells were found in your notebook (cells with nbgrader metadata "
                "'solution': true); did you submit the right file?")
    if set(cells) & functions:
        return None
    owners = graded_names()
    others = sorted({owners[g] for g in cells if g in owners and owners[g] != assignment})
    which = f" (it looks like {', '.join(others)})" if others else ""
    return (f"this notebook is not {assignment}{which}: none of its answer cells "
            f"({', '.join(sorted(cells)[:8])}) is graded here (expected {', '.join(sorted(functions))})")


def grade(assignment: str, notebook: str | os.PathLike, *, checks_root: str | os.PathLike | None = None,
          student_dlkit: str | os.PathLike | None = None, limits: Limits | None = None,
          isolate: bool = True, within: str | os.PathLike | None = None,
          problem: str | None = None) -> dict[str, Any]:
    """Grade one notebook IN THIS PROCESS (runs pytest here); see :func:`grade_notebook`.

    The notebook is read with :func:`autograder.safefile.read_file` (no links, regular file,
    size-capped; ``within``: a trusted folder above it, below which no folder may be a link
    either).  An unusable file, or a ``problem`` the caller already found with the submission,
    is graded: every check 0 with the reason.
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
    cells, reason = (None, problem) if problem is not None else _read_answer_cells(raw, path.name)
    fatal = None if reason is None else f"Your notebook could not be graded: {reason}"
    kit = None if student_dlkit is None else str(student_dlkit)
    early: list[Submission] = []
    if cells is not None and fatal is None:
        early.append(Submission(cells, kit, limits, isolate))
        early[0].prestart()
    plugin = GradingPlugin(assignment, cells, fatal,
                           lambda c: early[0] if early else Submission(c, kit, limits, isolate))
    try:
        _run_checks(folder, plugin)
    finally:
        for sub in {id(x): x for x in early + ([plugin.submission] if plugin.submission else [])}.values():
            sub.close()
    results = _results(assignment, path, raw, plugin, plugin.fatal)
    if plugin.submission is not None:
        results["sandbox"] = dict(plugin.submission.isolation,
                                  workers_started=plugin.submission.workers_started)
    results["duration_s"] = round(time.monotonic() - t0, 3)
    return results


def _results(assignment: str, path: Path, raw: bytes, plugin: GradingPlugin, fatal: str | None) -> dict:
    tests, functions = [], {}
    for o in plugin.outcomes.values():
        score = o.points if o.status == "passed" else 0.0
        tests.append({"name": o.name, "score": score, "max_score": o.points, "output": o.output,
                      "function": o.function, "status": o.status})
        f = functions.setdefault(o.function, {"score": 0.0, "max_score": 0.0})
        f["score"] += score
        f["max_score"] += o.points
    staff = [f"{o.nodeid}: {o.staff}" for o in plugin.outcomes.values() if o.staff]
    staff += [f"ignored (no @check): {n}" for n in plugin.ignored]
    return {
        "score": round(sum(t["score"] for t in tests), 6),
        "max_score": round(sum(t["max_score"] for t in tests), 6),
        "output": fatal or "",
        "tests": tests,
        "functions": functions,
        "assignment": assignment,
        "submission": {"path": str(path), "sha256": hashlib.sha256(raw).hexdigest()},
        "staff_notes": staff,
        "harness_version": HARNESS_VERSION,
    }


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
    return str(student_dlkit(dest, packs_before=before, grader=True))


def format_summary(results: dict[str, Any]) -> str:
    """A readable summary of results for the terminal."""
    lines = [f"{results['assignment']}: {results['score']:g} / {results['max_score']:g}"]
    if results.get("output"):
        lines.append(results["output"])
    for t in results["tests"]:
        mark = "PASS" if t["status"] == "passed" else t["status"].upper()
        lines.append(f"  [{mark:7}] {t['score']:g}/{t['max_score']:g}  {t['name']}")
        if t["output"] and t["output"] != results.get("output"):
            lines += ["             " + ln for ln in t["output"].splitlines()[:12]]
    for note in results.get("staff_notes", []):
        lines.append(f"  staff note: {note}")
    sb = results.get("sandbox") or {}
    weak = [f"{k}: {v}" for k, v in sb.items()
            if isinstance(v, str) and ("NOT" in v or "not isolated" in v or "STILL" in v or "unavailable" in v)]
    if weak:
        lines.append("  sandbox limitations: " + "; ".join(weak))
    return "\n".join(lines)
