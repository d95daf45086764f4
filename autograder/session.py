"""The sandbox session of one submission: its worker, its budgets, and the ``student`` proxy.

:class:`Submission` owns the sandbox (:class:`autograder.sandbox.Sandbox`) holding the student's
answer cells, loads the cells a check needs (with their imports policies), enforces the per-check
clock and the per-submission budget, and restarts a crashed worker; :class:`StudentProxy` is what
a hidden check gets as ``student`` (:class:`autograder.api.Student`).
"""
from __future__ import annotations

import functools
import time
from typing import Any

from . import api
from . import wire
from .base import HarnessError
from . import cells as _cells
from .cells import (ANALYSIS_TOTAL_S, DEFAULT_POLICY, PROVIDED_NAMES, analyze_cell, analyze_cells,  # noqa: F401
                    cell_policies)
from .sandbox import Limits, Sandbox, SandboxStartError, WorkerCrashed, WorkerTimeout

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


#: The quick pass's sandbox memory is never below this (Python + numpy + dlkit peak at ~115 MB
#: of address space).
MIN_QUICK_MEMORY_MB = 256


class SubmissionBudgetExhausted(api.StudentTimeout):
    """The whole submission's time budget (``Limits.submission_s``) is used up."""


class Deferred(BaseException):
    """Quick pass only: the submission's code ran out of a (reduced) budget or crashed its
    worker, so it is graded again with the full budgets (``str(exc)``: what
    happened).  A BaseException, so that no check's ``except Exception`` turns it into a score."""


class _Clock:
    """Seconds a check (or the loading of one answer cell) has spent waiting on the sandbox.

    Only time inside requests counts: starting or restarting a worker (e.g. after an earlier
    check's timeout), loading answer cells and the check's own trusted code never do, so the
    same correct answer gets the same budget in every run.
    """

    def __init__(self, timeout: float, cpu: float | None = None) -> None:
        self.timeout, self.used = float(timeout), 0.0
        self.cpu = float(timeout if cpu is None else min(cpu, timeout))
        self.cpu_used = 0.0

    def left(self) -> float:
        return self.timeout - self.used

    def cpu_left(self) -> float:
        return self.cpu - self.cpu_used

    def limits_text(self) -> str:
        if self.cpu < self.timeout:
            return f"{self.cpu:g} s of CPU time ({self.timeout:g} s of wall-clock time)"
        return f"{self.timeout:g} s"


class Submission:
    """One submission's answer cells and its (lazily started, restartable) sandbox.

    ``policies``: ``{grade_id: import policy}`` (default: GRADED.md's ``imports`` column, else
    ``dlkit``); ``sandbox_options``: keyword arguments for :class:`Sandbox` (contract C:
    ``toolchain``, ``ro_dirs``, ``env``, ``mode``).  The whole grading of the submission (this
    object's life: parsing, every check, compiling) gets ``limits.submission_s`` seconds.

    ``quick``: the batch's quick pass (:meth:`budgets`; the sandbox's memory cgroup gets
    ``api.QUICK_FRACTION`` of its limit too, at least :data:`MIN_QUICK_MEMORY_MB`): running out
    of a budget, or a crashed worker, raises :class:`Deferred` instead of scoring.
    """

    def __init__(self, cells: dict[str, str], student_dlkit: str | None, limits: Limits,
                 isolate: bool = True, *, policies: dict[str, str] | None = None,
                 sandbox_options: dict[str, Any] | None = None, quick: bool = False) -> None:
        self.t_start = time.monotonic()
        # the cells' analysis has the same budget in both passes (it can score: an unparsable cell)
        self.cells = analyze_cells(cells, total_s=min(ANALYSIS_TOTAL_S, 0.5 * float(limits.submission_s)))
        self.quick = quick
        self.sandbox_options = dict(sandbox_options or {})
        if quick:
            # memory: only the cgroup's limit is lowered (where there is one), and reaching it
            # defers; the processes' RLIMIT_AS stays, so an allocation refused in the quick pass
            # is refused in the full one too
            self.sandbox_options.setdefault(
                "memory_cap_mb", max(MIN_QUICK_MEMORY_MB, int(limits.memory_mb * api.QUICK_FRACTION)))
        self.limits = limits
        self.t_end = self.t_start + float(limits.submission_s)
        self.order = list(self.cells)
        self._index = {g: i for i, g in enumerate(self.order)}
        self._definers: dict[str, list[str]] = {}
        for gid in self.order:
            for name in self.cells[gid].defines:
                self._definers.setdefault(name, []).append(gid)
        self._names = sorted(self._definers)
        self._closures: dict[tuple[str, ...], list[str]] = {}
        table = _cells.import_policies()
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
        self.sandbox: Sandbox | None = None
        self.loaded: set[str] = set()
        self.load_failures: dict[str, str] = {}    # cell -> why its definition killed the worker
        self.isolation: dict[str, Any] = {}
        self.workers_started = 0
        self.timed_out: set[str] = set()   # cells whose code ran out of time or killed the worker

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

    def budgets(self, timeout: float, cpu: float) -> tuple[float, float]:
        """A check's (wall, CPU) budgets in this pass: as declared, or in the quick pass
        ``api.QUICK_FRACTION`` of its CPU time and of its wall time (at least
        ``api.QUICK_MIN_WALL_S``, so that a loaded grader does not defer honest code)."""
        if not self.quick:
            return timeout, cpu
        return (min(timeout, max(api.QUICK_MIN_WALL_S, timeout * api.QUICK_FRACTION)),
                cpu * api.QUICK_FRACTION)

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
        """Send one request; ``cells``: the answer cells whose code the request runs.  In the
        quick pass, running out of anything (or a crash) raises :class:`Deferred` instead."""
        if clock.left() <= 0 or clock.cpu_left() <= 0 or self.budget_left() <= 0:
            if self.quick:
                raise Deferred(f"{what}: the quick pass's time budget is used up")
            if clock.left() <= 0 or clock.cpu_left() <= 0:
                raise api.StudentTimeout(
                    f"{what}: the time budget of this check ({clock.limits_text()}) is used up")
            raise SubmissionBudgetExhausted(f"{what} was not run: the time budget of the whole "
                                            f"submission ({self.limits.submission_s:g} s) is used up")
        sandbox = self._ensure_sandbox()           # (re)starting a worker costs no check time
        budget, cpu = clock.left(), clock.cpu_left()
        rerun = bool(self.timed_out.intersection(cells))
        if rerun:
            # That code already ran out of time (or killed the worker) in an earlier check: short
            # budgets, so one infinite loop or memory bomb does not cost every check the full one.
            budget = min(budget, max(0.5, api.RERUN_WALL_FRACTION * clock.timeout))
            cpu = min(cpu, api.RERUN_CPU)
        t0 = time.monotonic()
        by_submission = self.t_end - t0 < budget
        deadline = t0 + min(budget, self.t_end - t0)
        try:
            reply = sandbox.request(message, blobs, deadline, cpu_budget=cpu if cpu < budget else None)
            if self.quick and sandbox.memory_limit_hit():
                self.discard_sandbox()
                raise Deferred(f"{what} reached the quick pass's memory limit")
            return reply
        except WorkerTimeout as exc:
            self.discard_sandbox()
            if self.quick:
                raise Deferred(f"{what} ran out of the quick pass's "
                               f"{'CPU time' if exc.cpu else 'time'}") from None
            if by_submission and not exc.cpu:
                raise SubmissionBudgetExhausted(
                    f"{what} did not finish before the time budget of the whole submission "
                    f"({self.limits.submission_s:g} s) ran out") from None
            self.timed_out.update(cells)
            if rerun:
                limit = f"{cpu:g} s of CPU time" if exc.cpu else f"{budget:g} s"
                raise api.StudentTimeout(
                    f"{what} did not finish within the {limit} it gets after running out of time "
                    "or crashing in an earlier check") from None
            if exc.cpu:
                raise api.StudentTimeout(
                    f"{what} used up this check's {clock.cpu:g} s of CPU time "
                    "(an infinite loop, or far too slow code?)") from None
            raise api.StudentTimeout(
                f"{what} did not finish within this check's time limit of {clock.timeout:g} s "
                "(an infinite loop, code that waits, or far too slow code?)") from None
        except WorkerCrashed as exc:
            tail = sandbox.output_tail()[-600:]
            self.discard_sandbox()
            if self.quick:
                raise Deferred(f"{what} crashed its worker in the quick pass ({exc})") from None
            self.timed_out.update(cells)
            msg = (f"{what} crashed the process running your code: {exc}. Common causes: "
                   "sys.exit()/os._exit()/quit(), using more than "
                   f"{self.limits.memory_mb} MB of memory, creating processes, or printing/writing "
                   "far too much output.")
            if tail:
                msg += "\nLast output:\n" + tail
            raise api.StudentCrash(msg) from None
        finally:
            wall = time.monotonic() - t0
            clock.used += wall
            clock.cpu_used += wall if sandbox.last_cpu is None else sandbox.last_cpu

    def cell_message(self, gid: str) -> dict[str, Any]:
        """One cell of an ``exec`` request, with its imports policy (contract B)."""
        allowed = self.allowed[gid]
        return {"gid": gid, "source": self.cells[gid].source, "policy": self.policy[gid],
                "allowed_imports": None if allowed is None else list(allowed)}

    def load(self, gids: list[str], timeout: float, cpu: float | None = None) -> None:
        """Define ``gids`` (in order) in the worker; raise StudentError for a failing cell.

        Each cell gets ``timeout`` seconds (``cpu`` of them CPU time) of its own (not taken
        from the calling check)."""
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
                                         _Clock(timeout, cpu), f"running your answer cell {gid!r}", [gid])
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


@functools.lru_cache(maxsize=256)
def _driver_uses(driver_source: str) -> frozenset[str]:
    """Names a check's driver reads (its trusted text: parsed once per process, not per call)."""
    return frozenset(analyze_cell("<driver>", driver_source).uses)


class StudentProxy:
    """The ``student`` fixture of one check (see :class:`autograder.api.Student`).

    The check's clock counts only time spent waiting on the sandbox for the check's own calls
    (see :class:`_Clock`): never a worker (re)start nor the loading of answer cells."""

    def __init__(self, submission: Submission, info: api.CheckInfo | None) -> None:
        self._sub = submission
        self._timeout, self._cpu = submission.budgets(info.timeout if info else api.DEFAULT_TIMEOUT,
                                                      info.cpu if info else api.DEFAULT_CPU)
        self._clock = _Clock(self._timeout, self._cpu)

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        sub = self._sub
        roots = sub.cells_defining(name)
        if not roots:
            raise api.StudentError(
                f"your notebook does not define {name!r}: no answer cell with grade_id {name!r} was "
                "found (did you delete the cell, copy it, or change its metadata?)")
        a, k, blobs = sub._encode_args(args, kwargs)
        sub.load(sub.closure(roots), self._timeout, self._cpu)
        reply, out = sub._request({"op": "call", "name": name, "args": a, "kwargs": k}, blobs,
                                  self._clock, f"{name}(...)", roots)
        return sub._decode_reply(reply, out, f"{name}(...)")

    def run(self, driver_source: str, entry: str, *args: Any, **kwargs: Any) -> Any:
        sub = self._sub
        uses = _driver_uses(driver_source)         # the check's own (trusted) text
        # a driver may also name its target in an argument (`globals().get(name)`)
        uses = set(uses) | {v for v in (*args, *kwargs.values()) if type(v) is str}
        roots = sorted({g for name in uses for g in sub.cells_defining(name)}, key=sub.order.index)
        a, k, blobs = sub._encode_args(args, kwargs)
        sub.load(sub.closure(roots), self._timeout, self._cpu)
        reply, out = sub._request({"op": "run", "source": driver_source, "entry": entry, "args": a,
                                   "kwargs": k}, blobs, self._clock,
                                  "your code (driven by the check)", roots)
        return sub._decode_reply(reply, out, "your code (driven by the check)")

    def has(self, name: str) -> bool:
        return bool(self._sub.cells_defining(name)) and name in self._sub.defined_names()

    def defined_names(self) -> list[str]:
        return self._sub.defined_names()


