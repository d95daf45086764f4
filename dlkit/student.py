"""Reading graded cells out of course notebooks.

One place for the notebook format, shared by the notebooks (``load`` reuses your own answer from
an earlier assignment), the release builder, the project's tests and the autograder.  It only
*parses* notebooks; running an answer cell is up to the caller (the autograder does it in a
sandbox, never here).

nbgrader marks cells in ``cell.metadata.nbgrader``:

* autograded answer cell: ``solution: true, grade: false`` - what the student writes;
* autograder tests cell:  ``solution: false, grade: true, points: N``.

Both carry a ``grade_id``.  In this course an answer cell's ``grade_id`` is the name it defines
(see ``notebooks/GRADED.md``).
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

__all__ = [
    "NotebookError", "read_notebook", "answer_cells", "test_cells", "stub_solutions",
    "strip_hidden_tests", "is_stub", "answer_namespace", "load", "CODE_STUB",
]

#: What nbgrader leaves in place of a solution region (see nbgrader_config.py).
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"

_SOLUTION = re.compile(r"^([ \t]*)### BEGIN SOLUTION[^\n]*\n.*?^[ \t]*### END SOLUTION[^\n]*(\n|$)",
                       re.MULTILINE | re.DOTALL)
_HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS[^\n]*\n.*?^[ \t]*### END HIDDEN TESTS[^\n]*(\n|$)",
                     re.MULTILINE | re.DOTALL)


class NotebookError(ValueError):
    """A notebook that cannot be used: unreadable, malformed, or missing a graded cell."""


def read_notebook(path: str | os.PathLike) -> dict[str, Any]:
    """Parse an ``.ipynb`` file, checking just enough structure to find graded cells."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotebookError(f"notebook not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NotebookError(f"cannot read notebook {path}: {exc}") from None
    try:
        nb = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotebookError(f"{path} is not valid notebook JSON (line {exc.lineno}, column {exc.colno}: "
                            f"{exc.msg})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotebookError(f"{path} is not a Jupyter notebook: no list of 'cells' at the top level")
    if nb.get("nbformat") != 4:
        raise NotebookError(f"{path} has nbformat {nb.get('nbformat')!r}; expected 4")
    for i, cell in enumerate(nb["cells"]):
        if not isinstance(cell, dict) or "cell_type" not in cell:
            raise NotebookError(f"{path}: cell {i} is malformed (not an object with a cell_type)")
    return nb


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    if isinstance(src, list):
        if not all(isinstance(s, str) for s in src):
            raise NotebookError("a cell's source list holds something other than strings")
        return "".join(src)
    if not isinstance(src, str):
        raise NotebookError(f"a cell's source is a {type(src).__name__}, expected text")
    return src


def _nbgrader(cell: dict[str, Any]) -> dict[str, Any]:
    meta = cell.get("metadata", {})
    info = meta.get("nbgrader", {}) if isinstance(meta, dict) else {}
    return info if isinstance(info, dict) else {}


def _graded_cells(nb: dict[str, Any], *, solution: bool) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for cell in nb["cells"]:
        info = _nbgrader(cell)
        if cell.get("cell_type") != "code" or not info:
            continue
        if bool(info.get("solution")) != solution or (not solution and not info.get("grade")):
            continue
        gid = info.get("grade_id")
        if not isinstance(gid, str) or not gid:
            raise NotebookError("an nbgrader cell has no grade_id")
        if gid in found:
            raise NotebookError(f"two cells share grade_id {gid!r}")
        found[gid] = cell
    return found


def answer_cells(nb: dict[str, Any]) -> dict[str, str]:
    """``{grade_id: source}`` for every autograded answer cell, in notebook order."""
    return {gid: _source(c) for gid, c in _graded_cells(nb, solution=True).items()}


def test_cells(nb: dict[str, Any]) -> dict[str, tuple[str, float]]:
    """``{grade_id: (source, points)}`` for every autograder tests cell, in notebook order."""
    return {gid: (_source(c), float(_nbgrader(c).get("points", 0)))
            for gid, c in _graded_cells(nb, solution=False).items()}


def stub_solutions(source: str) -> str:
    """What nbgrader's release makes of a cell: each solution region becomes the code stub."""
    def repl(m: re.Match) -> str:
        indent = m.group(1)
        return "".join(indent + line + "\n" for line in CODE_STUB.splitlines())
    return _SOLUTION.sub(repl, source)


def strip_hidden_tests(source: str) -> str:
    """What nbgrader's release makes of a tests cell: hidden regions removed."""
    return _HIDDEN.sub("", source)


def is_stub(source: str) -> bool:
    """True while an answer cell still holds the untouched release stub."""
    lines = [ln.strip() for ln in source.splitlines()]
    stub = CODE_STUB.splitlines()
    return any(lines[i:i + len(stub)] == stub for i in range(len(lines)))


def answer_namespace() -> dict[str, Any]:
    """The names an answer cell may use without importing them: ``np``, ``math``, ``dlkit``."""
    import numpy as np
    import dlkit
    return {"__name__": "__student__", "np": np, "math": math, "dlkit": dlkit}


def _find_notebook(assignment: str, notebooks_dir: str | os.PathLike | None) -> Path:
    candidates = []
    if notebooks_dir is not None:
        candidates.append(Path(notebooks_dir))
    if os.environ.get("DLKIT_NOTEBOOKS"):
        candidates.append(Path(os.environ["DLKIT_NOTEBOOKS"]))
    here = Path.cwd()
    candidates += [here.parent, here / "notebooks", here, here.parent.parent / "notebooks"]
    for root in candidates:
        path = root / assignment / f"{assignment}.ipynb"
        if path.is_file():
            return path
    searched = ", ".join(str(c / assignment) for c in candidates)
    raise FileNotFoundError(f"cannot find {assignment}/{assignment}.ipynb (looked in {searched}); "
                            "pass notebooks_dir= or set DLKIT_NOTEBOOKS")


def load(assignment: str, name: str, notebooks_dir: str | os.PathLike | None = None) -> Any:
    """Your own ``name`` from the earlier notebook ``assignment``, ready to use here.

    Runs the answer cell whose ``grade_id`` is ``name`` from your copy of
    ``<assignment>/<assignment>.ipynb`` (save that notebook first) and returns what it defines.

    >>> Adam = dlkit.student.load("03_optimization", "Adam")     # doctest: +SKIP
    """
    path = _find_notebook(assignment, notebooks_dir)
    cells = answer_cells(read_notebook(path))
    if name not in cells:
        raise NotebookError(f"{path} has no answer cell with grade_id {name!r}; "
                            f"it has: {', '.join(cells) or 'none'}")
    source = cells[name]
    if is_stub(source):
        raise NotImplementedError(f"{name} in {assignment} is not written yet: finish it in {path}, "
                                  "save the notebook, then run this cell again")
    namespace = answer_namespace()
    exec(compile(source, f"<{assignment}:{name}>", "exec"), namespace)
    if name not in namespace:
        raise NotebookError(f"the answer cell {name!r} in {path} does not define {name}")
    return namespace[name]
