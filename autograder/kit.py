"""The student kit: the instructor dlkit with holes where the graded pieces are.

Source rewrites (on lines located with ``ast``, so the kit reads like the original):

* every ``@graded("<ID>", name=None)`` function or method keeps its decorators, signature and
  docstring; its body becomes ``return _dlkit_resolve("<ID>", "<name>")(same arguments)``;
* every ``@graded`` class keeps its name, bases, decorators and docstring; its body becomes
  ``__dlkit_stub__ = True`` and a ``__new__`` with the constructor's signature that returns
  ``_dlkit_new_piece(cls, "<ID>", "<name>")(same arguments)``, i.e. the student's class;
* a module with stand-ins gets one import line (``dlkit.student``'s ``resolve`` / ``new_piece``);
* ``@withheld`` definitions, ``# BEGIN WITHHELD`` / ``# END WITHHELD`` regions (``//`` in CUDA)
  and the files of :data:`WITHHELD_FILES` are left out.

:func:`student_dlkit` writes the kit's ``dlkit/``; :func:`kit_kernels` its ``kernels/``;
``autograder.kit_scan.scan_kit`` proves a built kit leaks nothing.
"""
from __future__ import annotations

import ast
import copy
import os
import re
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
#: Files the student kit leaves out as a whole (paths in the repository; absent ones are ignored):
#: the fused optimizer steps, on the device and in the optimizers' fast path.
WITHHELD_FILES = ("kernels/optim.cu", "kernels/optim_cpu.c", "dlkit/optim/fused.py")
WITHHELD_KERNEL_FILES = tuple(f.split("/", 1)[1] for f in WITHHELD_FILES if f.startswith("kernels/"))


_DECORATORS = ("graded", "withheld")


def _decorator(node: ast.AST, which: str) -> ast.Call | None:
    """The ``@graded(...)`` / ``@withheld(...)`` call decorating ``node`` (any import spelling)."""
    for dec in getattr(node, "decorator_list", ()):
        if not isinstance(dec, ast.Call):
            continue
        target = dec.func
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
        if name == which:
            return dec
    return None


def _graded_piece(node: ast.AST) -> tuple[str, str] | None:
    """``(assignment, piece name)`` of a ``@graded("<ID>", name=None)`` function or class, else None."""
    dec = _decorator(node, "graded")
    if dec is None:
        return None
    args = list(dec.args) + [None] * 2
    assignment = args[0]
    name = args[1] or next((k.value for k in dec.keywords if k.arg == "name"), None)
    assignment = assignment or next((k.value for k in dec.keywords if k.arg == "assignment"), None)
    if not (isinstance(assignment, ast.Constant) and isinstance(assignment.value, str)):
        raise ValueError(f"line {node.lineno}: @graded needs the assignment id as a string literal")
    if name is not None and not (isinstance(name, ast.Constant) and isinstance(name.value, (str, type(None)))):
        raise ValueError(f"line {node.lineno}: @graded's name must be a string literal")
    return assignment.value, (name.value if name is not None and name.value else node.name)


def _graded_assignment(node: ast.AST) -> str | None:
    """The assignment id in a ``@graded("<ID>")`` decorator, else None."""
    piece = _graded_piece(node)
    return piece[0] if piece else None


_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _qualified(tree: ast.Module) -> list[tuple[str, ast.AST]]:
    """Every function and class of ``tree`` with its qualified name, outermost first.  The inside of
    a graded or withheld object is not visited (it goes as a whole)."""
    out = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, _DEFS):
                out.append((prefix + child.name, child))
                if _graded_piece(child) is None and _decorator(child, "withheld") is None:
                    visit(child, prefix + child.name + ".")

    visit(tree, "")
    return out


def _forward(args: ast.arguments, drop_first: bool = False) -> str:
    """The call arguments that pass on every parameter of ``args`` the way it was received."""
    positional = [a.arg for a in args.posonlyargs + args.args][1 if drop_first else 0:]
    parts = positional
    if args.vararg:
        parts.append("*" + args.vararg.arg)
    parts += [f"{a.arg}={a.arg}" for a in args.kwonlyargs]
    if args.kwarg:
        parts.append("**" + args.kwarg.arg)
    return ", ".join(parts)


def _new_signature(init: ast.FunctionDef | None) -> tuple[str, str]:
    """``__new__``'s parameters (the constructor's, without annotations) and the forwarding call."""
    if init is None:
        return "cls, *args, **kwargs", "*args, **kwargs"
    a = copy.deepcopy(init.args)
    if a.posonlyargs:
        a.posonlyargs = a.posonlyargs[1:]
    else:
        a.args = a.args[1:]
    for arg in a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg]:
        if arg is not None:
            arg.annotation = None
    sig = ast.unparse(a)
    return "cls" + (", " + sig if sig else ""), _forward(a)


def _docstring_node(node: ast.AST) -> ast.Expr | None:
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return first
    return None


def _body_span(node: ast.AST, lines: list[str]) -> tuple[int, int, str]:
    """0-based [start, end) line span of ``node``'s body after its docstring, and the body's indent."""
    body, doc = node.body, _docstring_node(node)
    if body[0].lineno == node.lineno:
        raise ValueError(f"line {node.lineno}: a graded {node.name} needs its body on its own lines")
    indent = " " * body[0].col_offset
    rest = body[1:] if doc else body
    if not rest:  # docstring only: the stub goes right after it
        return doc.end_lineno, doc.end_lineno, indent
    start = rest[0].lineno - 1
    while start > 0 and lines[start - 1].strip().startswith("#"):
        start -= 1  # comment lines just above the first statement are part of the body
    return start, node.end_lineno, indent


def _stub_lines(node: ast.AST, assignment: str, piece: str, indent: str) -> str:
    note = (f"{indent}# Student kit: {piece} is yours to write in notebook {assignment}; "
            f"dlkit.student finds it.\n")
    if isinstance(node, ast.ClassDef):
        init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        params, call = _new_signature(init)
        return (note + f"{indent}__dlkit_stub__ = True\n\n"
                f"{indent}def __new__({params}):\n"
                f"{indent}    return _dlkit_new_piece(cls, {assignment!r}, {piece!r})({call})\n")
    if isinstance(node, ast.AsyncFunctionDef):
        raise ValueError(f"line {node.lineno}: an async function cannot be a graded piece")
    return (note + f"{indent}return _dlkit_resolve({assignment!r}, {piece!r})({_forward(node.args)})\n")


_REGION = re.compile(r"^[ \t]*(#|//)[ \t]*(BEGIN|END) WITHHELD\b")


def strip_withheld_regions(source: str, what: str = "source") -> tuple[str, list[str]]:
    """Drop the lines between ``# BEGIN WITHHELD`` and ``# END WITHHELD`` (``//`` in CUDA), markers
    included.  Returns the new text and the names defined in the dropped lines."""
    out, names, inside = [], [], None
    defs: list[tuple[int, str]] = []  # (indent, name) of the Python definitions in this region
    for i, line in enumerate(source.splitlines(keepends=True), 1):
        m = _REGION.match(line)
        if m and m.group(2) == "BEGIN":
            if inside is not None:
                raise ValueError(f"{what}:{i}: BEGIN WITHHELD inside the region opened on line {inside}")
            inside, defs = i, []
        elif m:
            if inside is None:
                raise ValueError(f"{what}:{i}: END WITHHELD without BEGIN WITHHELD")
            if defs:  # the region's outermost definitions, not the methods inside a class
                top = min(d for d, _ in defs)
                names += [n for d, n in defs if d == top]
            inside = None
        elif inside is not None:
            d = re.match(r"^(\s*)(?:async\s+)?(?:def|class)\s+([A-Za-z_]\w*)", line)
            if d:
                defs.append((len(d.group(1)), d.group(2)))
            names += [n.rstrip("_") for n in re.findall(r"__(?:global|device)__\s+\w+\s+([A-Za-z_]\w*?)(?:##\w+)?\(",
                                                         line)]
        else:
            out.append(line)
    if inside is not None:
        raise ValueError(f"{what}:{inside}: BEGIN WITHHELD is never closed")
    return "".join(out), names


def stub_graded_source(source: str, module: str = "dlkit") -> tuple[str, list[str]]:
    """The student kit's version of a dlkit module's ``source``.

    Drops ``# BEGIN/END WITHHELD`` regions and every ``@withheld`` definition, and replaces the
    body of every ``@graded`` function, method or class with a stub that forwards to
    ``dlkit.student`` (signature, decorators and docstring kept).  Returns the new source and the
    qualified names that were stubbed.
    """
    source, _ = strip_withheld_regions(source, module)
    source, _ = _drop_withheld(source, module)
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    edits = []
    for qualname, node in _qualified(tree):
        piece = _graded_piece(node)
        if piece is None:
            continue
        start, end, indent = _body_span(node, lines)
        edits.append((start, end, _stub_lines(node, piece[0], piece[1], indent), f"{module}.{qualname}"))
    names = []
    for start, end, stub, name in sorted(edits, reverse=True):
        lines[start:end] = [stub]
        names.append(name)
    if edits:
        at = _import_line(tree)
        lines[at:at] = [_STUB_IMPORT]
    new = "".join(lines)
    tree = ast.parse(new)  # the edition must still be valid Python
    _check_no_subclass_of_stub(tree, module)
    return new, sorted(names)


#: The one import a module with stand-ins gets (at module level: an import inside every call costs
#: microseconds).  dlkit.student imports nothing of dlkit at import time, so no import cycle.
_STUB_IMPORT = ("from dlkit.student import new_piece as _dlkit_new_piece, resolve as _dlkit_resolve  "
                "# student kit: graded pieces forward to the student's\n")


def _import_line(tree: ast.Module) -> int:
    """0-based line before the first statement that is not the docstring or a __future__ import."""
    for i, stmt in enumerate(tree.body):
        if i == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue
        if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
            continue
        return min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])]) - 1
    return len(tree.body) and tree.body[-1].end_lineno


def _drop_withheld(source: str, module: str) -> tuple[str, list[str]]:
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    spans = []
    for qualname, node in _qualified(tree):
        if _decorator(node, "withheld") is not None:
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            spans.append((first - 1, node.end_lineno, f"{module}.{qualname}", node))
    names = []
    for start, end, name, node in sorted(spans, key=lambda s: s[0], reverse=True):
        lines[start:end] = []
        names.append(name)
    new = "".join(lines)
    # a class left with no statement gets `pass`
    while True:
        try:
            ast.parse(new)
            break
        except IndentationError as exc:
            if exc.lineno is None:
                raise
            lines = new.splitlines(keepends=True)
            prev = exc.lineno - 2
            while prev >= 0 and not lines[prev].strip():
                prev -= 1
            indent = len(lines[prev]) - len(lines[prev].lstrip()) + 4
            lines.insert(prev + 1, " " * indent + "pass  # (withheld from the student kit)\n")
            new = "".join(lines)
    return new, sorted(names)


def _check_no_subclass_of_stub(tree: ast.Module, module: str) -> None:
    graded = {node.name for _, node in _qualified(tree) if isinstance(node, ast.ClassDef) and _graded_piece(node)}
    for qualname, node in _qualified(tree):
        if isinstance(node, ast.ClassDef) and not _graded_piece(node):
            bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", None) for b in node.bases}
            if bases & graded:
                raise ValueError(f"{module}.{qualname} derives from the graded class(es) "
                                 f"{', '.join(sorted(bases & graded))}, which the student kit replaces by "
                                 f"a stand-in: make {qualname} a graded piece too, or derive it from their base")


def student_dlkit(dest: str | os.PathLike, packs_before: str | None = None, grader: bool = False) -> Path:
    """Write the student edition of the dlkit package into ``dest/dlkit`` and return ``dest``.

    ``dest`` is the directory to put on ``sys.path``.  Existing content there is replaced.  With
    ``packs_before="<ID>"`` (the grading sandbox's copy) the solution packs of the assignments before
    ``<ID>`` are baked into ``dest/dlkit/_packs/``, where ``dlkit.student`` finds them.  ``grader``
    marks the copy as the grader's (``dlkit/_grader_kit``): ``dlkit.student`` then works in grading
    mode whatever the environment says.
    """
    dest = Path(dest)
    target = dest / "dlkit"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(REPO / "dlkit", target,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "_packs", "_pieces.py", "_grader_kit"))
    for rel in WITHHELD_FILES:
        if rel.startswith("dlkit/") and (dest / rel).exists():
            (dest / rel).unlink()
    for path in sorted(target.rglob("*.py")):
        module = ".".join(path.relative_to(dest).with_suffix("").parts)
        source = path.read_text(encoding="utf-8")
        if "graded(" not in source and "withheld(" not in source and "WITHHELD" not in source:
            continue
        new, _ = stub_graded_source(source, module.removesuffix(".__init__"))
        path.write_text(new, encoding="utf-8")
    (target / "_pieces.py").write_text(_pieces_module(), encoding="utf-8")
    if grader:
        (target / "_grader_kit").write_text("the grader's copy of the student kit: dlkit.student is in "
                                            "grading mode\n", encoding="utf-8")
    if packs_before is not None:
        from .release import assignments, write_packs  # the packs are the release's
        ids = assignments()
        if packs_before not in ids:
            raise ValueError(f"unknown assignment {packs_before!r}; known: {', '.join(ids)}")
        write_packs(target / "_packs", ids[:ids.index(packs_before)])
    return dest


def _pieces_module() -> str:
    from dlkit import student
    table = student.parse_graded_md((NOTEBOOKS / "GRADED.md").read_text(encoding="utf-8"))
    rows = "".join(f"    {name!r}: ({p.assignment!r}, {p.policy!r}),\n" for name, p in table.items())
    return ('"""Every graded piece: name -> (assignment, imports policy). Written by make release from\n'
            'notebooks/GRADED.md; dlkit.student reads it."""\n'
            f"PIECES = {{\n{rows}}}\n")


def kit_kernels(dest: str | os.PathLike) -> Path:
    """Copy ``kernels/`` into ``dest/kernels`` without the WITHHELD regions (and without the files
    that are withheld as a whole)."""
    dest = Path(dest) / "kernels"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for path in sorted((REPO / "kernels").iterdir()):
        if not path.is_file() or path.name in WITHHELD_KERNEL_FILES:
            continue
        text = path.read_text(encoding="utf-8")
        text, _ = strip_withheld_regions(text, f"kernels/{path.name}")
        (dest / path.name).write_text(text, encoding="utf-8")
    return dest


def graded_objects() -> dict[str, str]:
    """``{qualified name: assignment}`` for every ``@graded`` object in the instructor dlkit."""
    return {name: piece[0] for name, piece in graded_pieces().items()}


def graded_pieces() -> dict[str, tuple[str, str]]:
    """``{qualified name: (assignment, piece name)}`` for every ``@graded`` object in the instructor dlkit."""
    found = {}
    for module, tree in _modules():
        for qualname, node in _qualified(tree):
            piece = _graded_piece(node)
            if piece:
                found[f"{module}.{qualname}"] = piece
    return found


def withheld_objects() -> dict[str, ast.AST]:
    """``{qualified name: definition}`` of every ``@withheld`` object in the instructor dlkit."""
    found = {}
    for module, tree in _modules():
        for qualname, node in _qualified(tree):
            if _decorator(node, "withheld") is not None:
                found[f"{module}.{qualname}"] = node
    return found


def _modules() -> list[tuple[str, ast.Module]]:
    out = []
    for path in sorted((REPO / "dlkit").rglob("*.py")):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        out.append((module, ast.parse(path.read_text(encoding="utf-8"))))
    return out
