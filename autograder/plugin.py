"""The pytest plugin that runs the hidden checks of one submission and records their outcomes.

:class:`GradingPlugin` provides the ``student`` fixture (a :class:`autograder.session.StudentProxy`)
and turns each check's report into an :class:`Outcome`; :func:`run_checks` runs pytest on an
assignment's checks folder, isolated from the repository's pytest settings and plugins.
"""
from __future__ import annotations

import atexit
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from . import api
from .base import HarnessError
from .cells import wrong_assignment as _wrong_assignment
from .session import Deferred, StudentProxy, Submission

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
        self.deferred: str | None = None       # quick pass: why the submission is graded again
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

    def pytest_collection_finish(self, session: Any) -> None:
        # Outcomes come from the checks' exceptions themselves (below), never from pytest's
        # formatted tracebacks: have pytest render only the exception's text (its source-reading
        # traceback cost ~10 ms per failing check).  Collection errors, formatted before this,
        # keep their full traceback for the staff.
        session.config.option.tbstyle = "value"

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: Any, call: Any) -> Iterator[None]:
        yield
        if call.excinfo is not None:
            self._exc[(item.nodeid, call.when)] = call.excinfo.value
            if isinstance(call.excinfo.value, Deferred) and self.deferred is None:
                self.deferred = str(call.excinfo.value)
                item.session.shouldstop = "quick pass: graded again with the full budgets"

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


#: pytest's built-in plugins the checks never use (they take only the ``student`` fixture); each
#: costs set-up per submission (``unraisableexception`` alone ran ~27 ms of gc.collect() each time)
_UNUSED_PLUGINS = ("cacheprovider", "terminal", "warnings", "doctest", "junitxml", "pastebin", "nose",
                   "legacypath", "unraisableexception", "threadexception", "logging", "faulthandler",
                   "setuponly", "setupplan", "stepwise", "subtests", "tmpdir", "monkeypatch", "recwarn",
                   "unittest", "debugging")


def _run_checks(folder: Path, plugin: GradingPlugin) -> None:
    import pytest
    args = [str(folder), "-c", _empty_ini(), "--rootdir", str(folder.parent), "--noconftest",
            # collection starts here: without it pytest lists every entry of the folders above
            # (the ini file's, e.g. /tmp) for every submission
            "--confcutdir", str(folder.parent),
            "--import-mode=importlib"]
    for name in _UNUSED_PLUGINS:
        args += ["-p", f"no:{name}"]
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



run_checks = _run_checks
