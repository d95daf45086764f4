"""What the notebook tests share: where notebooks are, the graded names of notebooks/GRADED.md, and
what nbgrader's release does to cells (test-only: the release itself runs nbgrader)."""
from __future__ import annotations

import functools
import re
from pathlib import Path

from dlkit import student

ROOT = Path(__file__).resolve().parents[1]
_dlkit_resolve, _dlkit_new_piece = student.resolve, student.new_piece  # what the kit's stand-ins call


def nb_path(aid: str) -> Path:
    return ROOT / "notebooks" / aid / f"{aid}.ipynb"


@functools.cache
def notebook(aid: str) -> dict:
    """The parsed source notebook (cached: tests must not modify it)."""
    return student.read_notebook(nb_path(aid))


@functools.cache
def graded_md_names() -> dict[str, list[str]]:
    """Graded names per assignment, in table order, from the pieces table of notebooks/GRADED.md."""
    names: dict[str, list[str]] = {}
    text = (ROOT / "notebooks" / "GRADED.md").read_text(encoding="utf-8")
    for name, piece in student.parse_graded_md(text).items():
        names.setdefault(piece.assignment, []).append(name)
    return names


_SOLUTION = re.compile(r"^([ \t]*)### BEGIN SOLUTION[^\n]*\n.*?^[ \t]*### END SOLUTION[^\n]*(\n|$)",
                       re.MULTILINE | re.DOTALL)
_HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS[^\n]*\n.*?^[ \t]*### END HIDDEN TESTS[^\n]*(\n|$)",
                     re.MULTILINE | re.DOTALL)


def stub_solutions(source: str) -> str:
    """What nbgrader's release makes of a cell: each solution region becomes the code stub."""
    def repl(m: re.Match) -> str:
        indent = m.group(1)
        return "".join(indent + line + "\n" for line in student.CODE_STUB.splitlines())
    return _SOLUTION.sub(repl, source)


def strip_hidden_tests(source: str) -> str:
    """What nbgrader's release makes of a tests cell: hidden regions removed."""
    return _HIDDEN.sub("", source)


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
    import linecache

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
            src = stub_solutions(src)
        if info.get("grade"):
            src = strip_hidden_tests(src)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()), \
                    np.errstate(all="ignore"):
                filename = f"<{aid} cell {i}>"  # in linecache, as IPython does: plug reads cell sources
                linecache.cache[filename] = (len(src), None, src.splitlines(keepends=True), filename)
                exec(compile(src, filename, "exec"), namespace)
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


def forwarding_stub(obj, assignment: str, piece: str):
    """An in-process twin of the student kit's stand-in for the graded ``obj`` (see
    ``autograder.release``): a function forwarding to ``dlkit.student.resolve``, or a class whose
    ``__new__`` builds the student's class."""
    import functools

    if isinstance(obj, type):
        def __new__(cls, *args, **kwargs):
            return _dlkit_new_piece(cls, assignment, piece)(*args, **kwargs)

        return type(obj)(obj.__name__, obj.__bases__, {
            "__doc__": obj.__doc__, "__module__": obj.__module__, "__qualname__": obj.__qualname__,
            "__dlkit_stub__": True, "__dlkit_graded__": assignment, "__dlkit_piece__": piece,
            "__new__": __new__})

    @functools.wraps(obj)
    def stub(*args, **kwargs):
        return _dlkit_resolve(assignment, piece)(*args, **kwargs)

    return stub


def stub_graded_dlkit(monkeypatch, tmp_path=None) -> None:
    """Make dlkit's graded pieces forward to ``dlkit.student``, as in the student kit.

    The pieces are the ``@graded`` objects that ``make release`` stubs
    (``autograder.release.graded_pieces``), patched in place for the duration of one test.  With
    nothing plugged they raise ``NotImplementedError`` naming the notebook: ``DLKIT_NOTEBOOKS`` and
    ``DLKIT_PACKS`` point at empty folders (``tmp_path``, or a fresh temporary one) so that neither the
    instructor notebooks nor any pack count as the student's work.
    """
    import importlib
    import tempfile

    from autograder.release import graded_pieces

    empty = Path(tmp_path) if tmp_path is not None else Path(tempfile.mkdtemp(prefix="dlkit-empty-"))
    (empty / "no-notebooks").mkdir(exist_ok=True)
    (empty / "no-packs").mkdir(exist_ok=True)
    monkeypatch.setenv("DLKIT_NOTEBOOKS", str(empty / "no-notebooks"))
    monkeypatch.setenv("DLKIT_PACKS", str(empty / "no-packs"))
    monkeypatch.delenv("DLKIT_GRADING", raising=False)
    student.reset()
    monkeypatch.setattr(student, "_plugged", {})
    monkeypatch.setattr(student, "_found", {})
    for qualname, (assignment, piece) in graded_pieces().items():
        parts = qualname.split(".")
        for cut in range(len(parts) - 1, 0, -1):  # longest importable module prefix
            try:
                owner = importlib.import_module(".".join(parts[:cut]))
                break
            except ModuleNotFoundError:
                continue
        for name in parts[cut:-1]:
            owner = getattr(owner, name)
        original = vars(owner)[parts[-1]]
        monkeypatch.setattr(owner, parts[-1], forwarding_stub(original, assignment, piece))


def publish_packs(monkeypatch, folder, ids=None) -> Path:
    """The state "solution packs published": write the packs of ``ids`` (default: every assignment)
    with ``autograder.release.write_packs`` into ``folder`` and point ``DLKIT_PACKS`` at it."""
    from autograder.release import write_packs

    folder = Path(folder)
    write_packs(folder, ids)
    monkeypatch.setenv("DLKIT_PACKS", str(folder))
    student.reset()
    return folder
