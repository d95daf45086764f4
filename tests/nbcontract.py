"""What the notebook tests share: where notebooks are, and the graded names of notebooks/GRADED.md."""
from __future__ import annotations

import functools
import re
from pathlib import Path

from dlkit import student

ROOT = Path(__file__).resolve().parents[1]


def nb_path(aid: str) -> Path:
    return ROOT / "notebooks" / aid / f"{aid}.ipynb"


@functools.cache
def notebook(aid: str) -> dict:
    """The parsed source notebook (cached: tests must not modify it)."""
    return student.read_notebook(nb_path(aid))


@functools.cache
def graded_md_names() -> dict[str, list[str]]:
    """Graded names per assignment, in table order, from the first table of notebooks/GRADED.md."""
    names: dict[str, list[str]] = {}
    current = None
    text = (ROOT / "notebooks" / "GRADED.md").read_text(encoding="utf-8")
    for line in text.split("## dlkit pieces")[0].splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        cols = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cols) < 2:
            continue
        if cols[0] and cols[0] != "assignment":
            current = cols[0]
        m = re.match(r"`([A-Za-z_][A-Za-z0-9_]*)`", cols[1])
        if current and m:
            names.setdefault(current, []).append(m.group(1))
    return names


def run_student_edition(aid: str) -> tuple[list[str], str]:
    """Run notebook ``aid`` in this process as a student receives it; return what failed and printed.

    Answer cells are stubbed and hidden tests removed, as nbgrader's release does.  Returns the
    grade_ids of the test cells that raised and everything the cells printed.  Any other cell that
    raises is an AssertionError (the student edition must run top to bottom), except a stubbed answer
    cell that defines a constant rather than a function (e.g. SAXPY_KERNEL), which raises
    NotImplementedError as soon as it runs.  The caller sets the working directory, environment and
    the student edition of dlkit.
    """
    import contextlib
    import io

    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    namespace: dict = {"__name__": "__main__"}
    out = io.StringIO()
    failed_tests = []
    for i, cell in enumerate(notebook(aid)["cells"]):
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        info = cell.get("metadata", {}).get("nbgrader", {})
        if info.get("solution"):
            src = student.stub_solutions(src)
        if info.get("grade"):
            src = student.strip_hidden_tests(src)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()), \
                    np.errstate(all="ignore"):
                exec(compile(src, f"<{aid} cell {i}>", "exec"), namespace)
        except Exception as exc:  # noqa: BLE001
            if info.get("grade"):
                failed_tests.append(info["grade_id"])
                continue
            if info.get("solution") and isinstance(exc, NotImplementedError):
                continue
            raise AssertionError(f"{aid}: cell {i} fails in the student edition: "
                                 f"{type(exc).__name__}: {exc}\n{src[:400]}") from exc
        finally:
            plt.close("all")
    return failed_tests, out.getvalue()


def stub_graded_dlkit(monkeypatch) -> None:
    """Make dlkit's graded pieces raise NotImplementedError, as in the student edition.

    The pieces are the ``@graded`` functions that ``make release`` stubs
    (``autograder.release.graded_objects``), patched in place for the duration of one test.
    """
    import importlib

    from autograder.release import graded_objects

    def stubbed(*args, **kwargs):
        raise NotImplementedError("stubbed in the student edition")

    for qualname in graded_objects():
        parts = qualname.split(".")
        for cut in range(len(parts) - 1, 0, -1):  # longest importable module prefix
            try:
                owner = importlib.import_module(".".join(parts[:cut]))
                break
            except ModuleNotFoundError:
                continue
        for name in parts[cut:-1]:
            owner = getattr(owner, name)
        monkeypatch.setattr(owner, parts[-1], stubbed)
