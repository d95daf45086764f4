"""The submission's answer cells, in the trusted process: read, parsed and analysed, never executed.

* :func:`read_answer_cells`: notebook bytes (already read safely) -> ``{grade_id: source}``, or why
  the notebook cannot be used; :func:`wrong_assignment`: whether it belongs to the assignment.
* :func:`analyze_cell` / :func:`analyze_cells`: what each cell defines and uses (to load only the
  cells a check needs, in order), parsed in a child process with CPU, memory and time limits.
* Imports policies (contract B): :func:`cell_policies` from GRADED.md's ``imports`` column.
"""
from __future__ import annotations

import ast
import json
import os
import re
import select
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .base import MAX_CELL_CHARS, MAX_NOTEBOOK_BYTES, graded_md_path, graded_names

#: Names every answer cell gets from the worker: never a reason to run another cell first.
PROVIDED_NAMES = frozenset({"np", "math", "dlkit", "get_ipython"}) | frozenset(dir(__import__("builtins")))


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



def read_answer_cells(raw: bytes, name: str) -> tuple[dict[str, str] | None, str | None]:
    """``(answer cells, None)`` or ``(None, reason)`` for notebook bytes that cannot be used."""
    from dlkit import student as nbparse
    if len(raw) > MAX_NOTEBOOK_BYTES:
        return None, f"the notebook is larger than {MAX_NOTEBOOK_BYTES >> 20} MB"
    try:
        nb = parse_notebook(raw, name)
        return nbparse.answer_cells(nb), None
    except nbparse.NotebookError as exc:
        return None, str(exc)
    except (ValueError, TypeError, AttributeError, RecursionError, MemoryError) as exc:
        return None, f"the notebook is malformed ({type(exc).__name__})"


def parse_notebook(raw: bytes, name: str) -> dict[str, Any]:
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


def wrong_assignment(assignment: str, cells: dict[str, str], functions: set[str]) -> str | None:
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




_read_answer_cells, _parse_notebook, _wrong_assignment = read_answer_cells, parse_notebook, wrong_assignment
