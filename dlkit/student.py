"""Students' pieces of dlkit: plugging them in, finding them, and what each may import.

In the student kit every graded piece of dlkit (``dlkit.optim.Adam``, an op's ``gradient``,
``dlkit.init.kaiming_normal``, ...) is a stand-in that forwards to :func:`resolve`, which finds the
student's own piece, in this order:

1. the piece :func:`plug`-ged in this process (each visible test cell ends with
   ``dlkit.student.plug("<name>", <name>)`` once its asserts pass);
2. the student's own answer cell ``<name>`` in ``<notebooks>/<ID>/<ID>.ipynb``, when it is written
   (not the release stub) and its visible test cell ``test_<name>`` passes (save the notebook);
3. a published solution pack ``<packs>/<ID>.py`` (``$DLKIT_PACKS``, else ``packs/`` in or beside
   the notebooks folder), which the instructor hands out after the assignment's deadline;
4. otherwise :class:`PieceNotDone` (a ``NotImplementedError``) naming the notebook and the piece.

While grading (``DLKIT_GRADING=1``, set by the sandbox) only 1 and the packs in ``$DLKIT_PACKS``
(the earlier assignments') are used.  A piece that is the library's own stand-in, or that reaches
itself through it (``RMSprop = dlkit.optim.RMSprop``), fails with :class:`SelfResolutionError`.

:data:`POLICIES` is the single home of the import policies of notebooks/GRADED.md (contract B):
``plug`` checks the plugged piece's cell against its policy, so a student sees a forbidden import
before submitting; the sandbox enforces the same table.

The notebook readers (``read_notebook``, ``answer_cells``, ``test_cells``, ``is_stub``) are shared
with the release builder and the autograder; they only parse.
"""
from __future__ import annotations

import ast
import contextlib
import functools
import io
import json
import linecache
import math
import os
import threading
from pathlib import Path
from typing import Any, NamedTuple

from ._graded import is_graded, is_kit_stub

__all__ = [
    "POLICIES", "plug", "resolve", "load", "grading", "pieces", "check_imports", "where",
    "PieceNotDone", "SelfResolutionError", "ImportPolicyError", "NotebookError",
    "read_notebook", "answer_cells", "test_cells", "is_stub", "answer_namespace", "CODE_STUB",
]

#: Import policies (contract B): policy name -> the top-level modules an answer cell may import.
#: ``np`` and ``math`` are pre-bound; ``dlkit`` is bound only under the ``dlkit`` policy.
POLICIES = {
    "numpy": ("numpy", "math", "functools", "itertools", "collections", "typing", "dataclasses",
              "numbers", "operator", "__future__"),
    "dlkit": ("numpy", "math", "functools", "itertools", "collections", "typing", "dataclasses",
              "numbers", "operator", "__future__", "dlkit"),
}

#: What nbgrader leaves in place of a solution region (see nbgrader_config.py).
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"


class NotebookError(ValueError):
    """A notebook that cannot be used: unreadable, malformed, or missing a graded cell."""


class PieceNotDone(NotImplementedError):
    """A graded piece that is neither plugged, nor written and passing, nor published in a pack."""

    def __init__(self, message: str, assignment: str = "", piece: str = "") -> None:
        super().__init__(message)
        self.assignment, self.piece = assignment, piece


class SelfResolutionError(RuntimeError):
    """A student's piece that is (or calls) the library's own stand-in for that very piece."""


class ImportPolicyError(ImportError):
    """A piece whose cell imports (or uses) something its GRADED.md import policy does not allow."""


# ------------------------------------------------------------------------------------------------
# Reading notebooks
# ------------------------------------------------------------------------------------------------

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


test_cells.__test__ = False  # type: ignore[attr-defined]  # not a pytest test when imported by one


def is_stub(source: str) -> bool:
    """True while an answer cell still holds the untouched release stub."""
    lines = [ln.strip() for ln in source.splitlines()]
    stub = CODE_STUB.splitlines()
    return any(lines[i:i + len(stub)] == stub for i in range(len(lines)))


def answer_namespace(policy: str = "dlkit") -> dict[str, Any]:
    """The names an answer cell may use without importing them: ``np``, ``math`` (and ``dlkit``
    under the ``dlkit`` policy)."""
    import numpy as np
    ns: dict[str, Any] = {"__name__": "__student__", "np": np, "math": math}
    if policy == "dlkit":
        import dlkit
        ns["dlkit"] = dlkit
    elif policy not in POLICIES:
        raise ValueError(f"unknown import policy {policy!r}; known: {', '.join(POLICIES)}")
    return ns


# ------------------------------------------------------------------------------------------------
# The pieces and their import policies (notebooks/GRADED.md)
# ------------------------------------------------------------------------------------------------

class Piece(NamedTuple):
    assignment: str
    policy: str


def parse_graded_md(text: str) -> dict[str, Piece]:
    """``{name: Piece(assignment, policy)}`` from the pieces table of GRADED.md.

    The table is the first markdown table whose header has the columns ``assignment``, ``name``
    and ``imports``; an empty ``assignment`` cell repeats the row above.
    """
    out: dict[str, Piece] = {}
    cols: list[str] | None = None
    current = None
    for line in text.splitlines():
        if not line.startswith("|"):
            if out:
                break  # the end of the pieces table
            cols = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cols is None:
            low = [c.lower() for c in cells]
            if {"assignment", "name", "imports"} <= set(low):
                cols = low
            continue
        if line.startswith("|---") or len(cells) != len(cols):
            continue
        row = dict(zip(cols, cells))
        current = row["assignment"] or current
        name = row["name"].strip("`").split("`")[0].strip()
        policy = row["imports"].strip("`").strip()
        if not current or not name.isidentifier():
            continue
        if policy not in POLICIES:
            raise ValueError(f"GRADED.md: {current}/{name} has imports policy {policy!r}; "
                             f"known: {', '.join(POLICIES)}")
        if name in out:
            raise ValueError(f"GRADED.md: the piece name {name!r} appears twice "
                             f"({out[name].assignment} and {current}); piece names are unique")
        out[name] = Piece(current, policy)
    return out


@functools.cache
def pieces() -> dict[str, Piece]:
    """Every graded piece: ``{name: Piece(assignment, policy)}``.

    The student kit carries the table as ``dlkit/_pieces.py`` (written by ``make release``); the
    instructor edition reads ``notebooks/GRADED.md`` beside the package.  Empty when neither exists.
    """
    try:
        from ._pieces import PIECES  # type: ignore[import-not-found]
    except ImportError:
        md = Path(__file__).resolve().parent.parent / "notebooks" / "GRADED.md"
        return parse_graded_md(md.read_text(encoding="utf-8")) if md.is_file() else {}
    return {name: Piece(*row) for name, row in PIECES.items()}


def _imported_modules(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            f = node.func
            fname = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            if fname in ("__import__", "import_module"):
                found.append(node.args[0].value)
    return found


def check_imports(name: str, source: str, policy: str | None = None) -> list[str]:
    """What in ``source`` (the cell defining piece ``name``) its import policy forbids.

    Returns readable messages, one per problem (empty when the cell keeps to its policy, when the
    piece has no policy, or when ``source`` does not parse: running it will say why).
    """
    if policy is None:
        piece = pieces().get(name)
        if piece is None:
            return []
        policy = piece.policy
    allowed = POLICIES[policy]
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    bad = []
    for module in _imported_modules(tree):
        top = module.split(".")[0]
        if module.startswith(".") or top not in allowed:
            if module not in bad:
                bad.append(module)
    uses_dlkit = policy != "dlkit" and any(isinstance(n, ast.Name) and n.id == "dlkit" for n in ast.walk(tree))
    msgs = []
    head = (f"{name} may import only {', '.join(allowed)} (imports policy `{policy}`, see "
            f"notebooks/GRADED.md)")
    if bad:
        msgs.append(f"{head}; it imported {', '.join(bad)}")
    if uses_dlkit and not any(b.split(".")[0] == "dlkit" for b in bad):
        msgs.append(f"{head}; it uses dlkit, which is not available to it")
    return msgs


def _cell_source(obj: Any) -> str | None:
    """The source of the notebook cell that defined ``obj`` (IPython keeps cells in linecache under
    names that are not files), or for an object from a real file just its own source; None when
    Python cannot find it."""
    candidates = [obj]
    if isinstance(obj, type):
        candidates = []
        for value in vars(obj).values():
            value = getattr(value, "__func__", value)
            candidates.append(value.fget if isinstance(value, property) else value)
    for c in candidates:
        code = getattr(getattr(c, "__func__", c), "__code__", None)
        if code is None:
            continue
        if not os.path.isfile(code.co_filename):
            lines = linecache.getlines(code.co_filename)
            if lines:
                return "".join(lines)
        try:
            import inspect
            import textwrap
            return textwrap.dedent(inspect.getsource(obj))
        except (OSError, TypeError):
            return None
    return None


# ------------------------------------------------------------------------------------------------
# plug / resolve
# ------------------------------------------------------------------------------------------------

_plugged: dict[str, Any] = {}          # name -> what the student plugged
_found: dict[str, tuple[Any, str]] = {}  # name -> (callable to hand out, where it came from)
_packs: dict[str, dict[str, Any]] = {}   # pack path -> its namespace
_notebook_misses: dict[tuple, str] = {}  # (path, mtime, size, name) -> why it did not count
_local = threading.local()


#: The grader's copy of the kit carries this marker file (``autograder.harness.build_student_edition``).
_GRADER_KIT = (Path(__file__).resolve().parent / "_grader_kit").is_file()


def grading() -> bool:
    """True inside the grading sandbox: ``DLKIT_GRADING=1``, or this dlkit is the grader's copy of
    the kit (which is mounted read-only there, so student code cannot switch it off)."""
    return _GRADER_KIT or os.environ.get("DLKIT_GRADING", "") not in ("", "0")


def _library_name(assignment: str, name: str) -> str:
    from ._graded import PIECES
    return PIECES.get((assignment, name), name)


def _busy() -> set:
    busy = getattr(_local, "busy", None)
    if busy is None:
        busy = _local.busy = set()
    return busy


def _self_call(assignment: str, name: str) -> SelfResolutionError:
    lib = _library_name(assignment, name)
    return SelfResolutionError(
        f"{name} ({assignment}) reaches itself: in the student kit {lib} is not an implementation but "
        f"forwards to your {name}, so your {name} must not call or return {lib}. Write it yourself.")


def _guarded(assignment: str, name: str, obj: Any) -> Any:
    """What ``resolve`` hands out for ``obj``: classes as they are, callables wrapped so that a
    piece reaching itself through the kit fails clearly instead of recursing."""
    if isinstance(obj, type) or not callable(obj):
        return obj
    key = (assignment, name)

    @functools.wraps(obj)
    def piece(*args: Any, **kwargs: Any) -> Any:
        busy = _busy()
        if key in busy:
            raise _self_call(assignment, name)
        busy.add(key)
        try:
            return obj(*args, **kwargs)
        finally:
            busy.discard(key)

    piece.__dlkit_student_piece__ = obj  # type: ignore[attr-defined]
    return piece


def _check_not_library(name: str, obj: Any) -> None:
    inner = getattr(obj, "func", None) if isinstance(obj, functools.partial) else None
    for o in (obj, inner):
        if o is not None and is_graded(o):
            lib = f"{getattr(o, '__module__', 'dlkit')}.{getattr(o, '__qualname__', name)}"
            kind = "the student kit's stand-in for" if is_kit_stub(o) else "the library's own"
            raise SelfResolutionError(
                f"{name} is {lib}, {kind} a graded piece: it resolves to itself. "
                f"Write {name} yourself (see notebooks/GRADED.md for its signature).")
    if isinstance(obj, type):
        for base in obj.__mro__[1:]:
            if is_graded(base):
                piece = getattr(base, "__dlkit_piece__", base.__name__)
                what = "itself" if piece == name else f"the piece {piece}"
                raise SelfResolutionError(
                    f"class {obj.__name__} derives from {base.__module__}.{base.__qualname__}, which in the "
                    f"student kit only forwards to {what}: derive {name} from the library base class "
                    f"the task names (e.g. dlkit.optim.Optimizer, dlkit.nn.Module) or from your own class.")


def plug(name: str, obj: Any) -> Any:
    """Use ``obj`` as the piece ``name`` in this process (the library paths then run it).

    Checks first that ``obj`` is not the library's own piece and that the cell defining it keeps to
    the piece's import policy (raises :class:`SelfResolutionError` / :class:`ImportPolicyError`).
    Returns ``obj``.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise TypeError(f"plug(name, obj): name is the piece's name as a string, got {name!r}")
    if obj is None:
        raise TypeError(f"plug({name!r}, obj): obj is None; pass the function or class you wrote")
    table = pieces()
    if table and name not in table:
        raise ValueError(f"plug: {name!r} is not a graded piece; notebooks/GRADED.md lists "
                         f"{', '.join(sorted(table))}")
    _check_not_library(name, obj)
    if not grading():  # the sandbox enforces the policy itself, from the instructor's table
        source = _cell_source(obj)
        problems = check_imports(name, source) if source is not None else []
        if problems:
            raise ImportPolicyError("; ".join(problems))
    _plugged[name] = obj
    assignment = table[name].assignment if name in table else "?"
    _found[name] = (_guarded(assignment, name, obj), "plugged")
    return obj


def where(name: str) -> str | None:
    """Where this process's piece ``name`` came from: "plugged", "notebook", "pack" or None."""
    return _found[name][1] if name in _found else None


def reset() -> None:
    """Forget every plugged piece and everything found so far (tests; a changed pack)."""
    _plugged.clear()
    _found.clear()
    _packs.clear()
    _notebook_misses.clear()


def _notebooks_dirs(override: str | os.PathLike | None = None) -> list[Path]:
    if override is not None:
        return [Path(override)]
    if os.environ.get("DLKIT_NOTEBOOKS"):
        return [Path(p) for p in os.environ["DLKIT_NOTEBOOKS"].split(os.pathsep) if p]
    here = Path.cwd()
    pkg = Path(__file__).resolve().parent
    found = []
    for d in (here.parent, here, here / "notebooks", pkg.parent.parent, pkg.parent / "notebooks"):
        if d not in found:
            found.append(d)
    return found


def _pack_dirs(notebooks_dir: str | os.PathLike | None = None) -> list[Path]:
    # dlkit/_packs exists only in the grading sandbox's copy of the kit, holding the packs of the
    # assignments before the one being graded (autograder.release.student_dlkit(packs_before=...)).
    baked = Path(__file__).resolve().parent / "_packs"
    if os.environ.get("DLKIT_PACKS"):
        return [Path(p) for p in os.environ["DLKIT_PACKS"].split(os.pathsep) if p] + [baked]
    if grading():
        return [baked]
    dirs = [baked]
    for nb in _notebooks_dirs(notebooks_dir):
        for d in (nb / "packs", nb.parent / "packs"):
            if d not in dirs:
                dirs.append(d)
    return dirs


@contextlib.contextmanager
def _quiet():
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def _exec(source: str, filename: str, namespace: dict[str, Any]) -> None:
    # Registered in linecache so tracebacks, inspect and plug's policy check can read it.
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    exec(compile(source, filename, "exec"), namespace)


def _from_notebook(assignment: str, name: str, notebooks_dir: Any) -> tuple[Any, str]:
    """The student's own piece from their notebook if written and passing its visible test, else
    (None, why not)."""
    path = next((d / assignment / f"{assignment}.ipynb" for d in _notebooks_dirs(notebooks_dir)
                 if (d / assignment / f"{assignment}.ipynb").is_file()), None)
    if path is None:
        return None, f"no {assignment}/{assignment}.ipynb found"
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size, name)
    if key in _notebook_misses:
        return None, _notebook_misses[key]
    try:
        nb = read_notebook(path)
        answers, tests = answer_cells(nb), test_cells(nb)
    except NotebookError as exc:
        _notebook_misses[key] = str(exc)
        return None, str(exc)
    why = None
    if name not in answers:
        why = f"{path} has no answer cell {name!r}"
    elif is_stub(answers[name]):
        why = f"your answer cell {name!r} in {path} is not written yet"
    elif f"test_{name}" not in tests:
        why = f"{path} has no test cell 'test_{name}'"
    if why:
        _notebook_misses[key] = why
        return None, why
    policy = pieces().get(name, Piece(assignment, "dlkit")).policy
    ns = answer_namespace(policy)
    try:
        with _quiet():
            _exec(answers[name], f"<{assignment}.ipynb: answer cell {name}>", ns)
            obj = ns.get(name)
            if obj is None:
                raise NameError(f"the answer cell does not define {name}")
            _check_not_library(name, obj)
            test_ns = dict(ns)
            if policy != "dlkit":
                import dlkit
                test_ns["dlkit"] = dlkit
            _exec(tests[f"test_{name}"][0], f"<{assignment}.ipynb: test cell test_{name}>", test_ns)
    except Exception as exc:  # noqa: BLE001 - any failure means "does not count yet"
        if isinstance(exc, SelfResolutionError):
            why = f"your {name} in {path} does not count yet ({type(exc).__name__}: {str(exc)[:300]})"
        elif isinstance(exc, PieceNotDone) and exc.piece:
            why = (f"the test cell test_{name} in {path} needs {exc.piece} of {exc.assignment} "
                   f"first, which is not done either")
        else:
            why = (f"your {name} in {path} does not pass its test cell test_{name} yet "
                   f"({type(exc).__name__}: {str(exc)[:300]})")
        _notebook_misses[key] = why
        return None, why
    return obj, "notebook"


def _from_pack(assignment: str, name: str, notebooks_dir: Any) -> tuple[Any, str | None]:
    for d in _pack_dirs(notebooks_dir):
        path = d / f"{assignment}.py"
        if not path.is_file():
            continue
        key = str(path.resolve())
        if key not in _packs:
            ns = answer_namespace("dlkit")
            ns["__name__"] = f"dlkit_pack_{assignment}"
            _exec(path.read_text(encoding="utf-8"), str(path), ns)
            _packs[key] = ns
        if name in _packs[key]:
            return _packs[key][name], str(path)
    return None, None


def resolve(assignment: str, name: str, *, notebooks_dir: str | os.PathLike | None = None) -> Any:
    """The piece ``name`` of assignment ``assignment``: plugged, the student's own passing answer,
    a published pack, or :class:`PieceNotDone` (see the module docstring for the order)."""
    hit = _found.get(name)
    if hit is not None:
        return hit[0]
    return _resolve(assignment, name, notebooks_dir)


def _resolve(assignment: str, name: str, notebooks_dir: Any) -> Any:
    key = ("resolving", assignment, name)
    busy = _busy()
    why = None
    if not grading() and key not in busy:  # a test cell that needs its own piece: skip step 2
        busy.add(key)
        try:
            obj, why = _from_notebook(assignment, name, notebooks_dir)
        finally:
            busy.discard(key)
        if name in _found:  # its test cell plugged it
            return _found[name][0]
        if obj is not None:
            _found[name] = (_guarded(assignment, name, obj), "notebook")
            return _found[name][0]
    obj, pack = _from_pack(assignment, name, notebooks_dir)
    if obj is not None:
        _check_not_library(name, obj)
        _found[name] = (_guarded(assignment, name, obj), "pack")
        return _found[name][0]
    lib = _library_name(assignment, name)
    where_ = f" ({lib})" if lib != name else ""
    if grading():
        raise PieceNotDone(f"{name}{where_} of {assignment} is not available while grading: it was "
                           f"not plugged in and no solution pack {assignment}.py was provided",
                           assignment, name)
    msg = (f"{name}{where_} is a piece you write in notebook {assignment} "
           f"({assignment}/{assignment}.ipynb): finish its answer cell {name} until its test cell "
           f"test_{name} passes and save the notebook, or use the published solution pack "
           f"{assignment}.py (in packs/ beside your notebooks, or in $DLKIT_PACKS).")
    if why:
        msg += f" Now: {why}."
    raise PieceNotDone(msg, assignment, name)


def new_piece(stub: type, assignment: str, name: str) -> Any:
    """What a class stand-in's ``__new__`` calls: the student's class, guarded while it constructs."""
    if not vars(stub).get("__dlkit_stub__"):
        base = next((b for b in stub.__mro__ if vars(b).get("__dlkit_stub__")), None)
        piece = getattr(base, "__dlkit_piece__", name)
        what = "itself" if stub.__name__ == piece else f"the piece {piece}"
        raise SelfResolutionError(
            f"class {stub.__name__} derives from {base.__module__}.{base.__qualname__}, which in the student "
            f"kit only forwards to {what}: derive it from the library base class the task names "
            f"(e.g. dlkit.optim.Optimizer, dlkit.nn.Module) or from your own class.")
    cls = resolve(assignment, name)
    if cls is stub or (isinstance(cls, type) and issubclass(cls, stub)):
        raise _self_call(assignment, name)
    key = (assignment, name)

    def construct(*args: Any, **kwargs: Any) -> Any:
        busy = _busy()
        if key in busy:
            raise _self_call(assignment, name)
        busy.add(key)
        try:
            return cls(*args, **kwargs)
        finally:
            busy.discard(key)

    return construct


def load(assignment: str, name: str, notebooks_dir: str | os.PathLike | None = None) -> Any:
    """Your own ``name`` from the earlier notebook ``assignment`` (``resolve`` under its old name).

    >>> Adam = dlkit.student.load("03_optimization", "Adam")     # doctest: +SKIP
    """
    obj = resolve(assignment, name, notebooks_dir=notebooks_dir)
    return getattr(obj, "__dlkit_student_piece__", obj)
