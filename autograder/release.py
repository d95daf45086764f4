"""The student edition: nbgrader's generated notebooks plus a dlkit whose graded pieces are holes.

``python -m autograder release --out release`` (``make release``) writes::

    release/<ID>/<ID>.ipynb     nbgrader generate_assignment output, one folder per assignment
    release/kit/                the student kit: dlkit/, kernels/, pyproject.toml
    release/packs/              empty: where the TA publishes solution packs after each deadline
    release/Makefile            ``make lab`` for students: .venv, the student kit, JupyterLab here
    release/README.md           what students do with it
    release_packs/<ID>.py       the solution pack of every assignment, OUTSIDE the release: the
                                instructor copies one into the students' packs/ after its deadline

In the kit every dlkit object decorated with ``@graded("<ID>", name=None)`` keeps its signature,
decorators and docstring, but its body forwards to ``dlkit.student.resolve("<ID>", "<name>")``
(a class keeps name, bases and docstring and gets a ``__new__`` with the constructor's signature
that builds the student's class).  ``@withheld`` objects and ``# BEGIN WITHHELD`` / ``# END
WITHHELD`` regions (``//`` in kernels/*.cu) are left out, and so are the kernel files in
:data:`WITHHELD_KERNEL_FILES`.  The rewrite works on source lines (located with ``ast``), so
comments and layout elsewhere survive and the student kit stays as readable as the original.
:func:`scan_kit` proves that no withheld name or reference body reached a built kit.
"""
from __future__ import annotations

import argparse
import ast
import copy
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
KIT_FILES = ("pyproject.toml", "environment.yml", "README.md")
#: Files the student kit leaves out as a whole (paths in the repository; absent ones are ignored):
#: the fused optimizer steps, on the device and in the optimizers' fast path.
WITHHELD_FILES = ("kernels/optim.cu", "dlkit/optim/fused.py")
WITHHELD_KERNEL_FILES = tuple(f.split("/", 1)[1] for f in WITHHELD_FILES if f.startswith("kernels/"))

STUDENT_MAKEFILE = """\
# Student edition of the dlkit course. `make lab` sets everything up and opens JupyterLab.
PYTHON ?= python3
VENV := .venv

lab: $(VENV)/.installed
\t$(VENV)/bin/jupyter lab --ServerApp.root_dir=. $(if $(filter 0,$(shell id -u)),--allow-root,)

$(VENV)/.installed: kit/pyproject.toml
\t$(PYTHON) -m venv $(VENV)
\t$(VENV)/bin/python -m pip install -q --upgrade pip
\t$(VENV)/bin/python -m pip install -q -e ./kit
\t@touch $@
"""

STUDENT_README = """\
# Deep learning systems: your notebooks

Run `make lab` (needs Python >= 3.10 and pip): it creates `.venv`, installs the course library
`dlkit` from `kit/`, and opens JupyterLab here. Work through the folders in order, 00 to 07.

* Write your code where a cell says `# YOUR CODE HERE` and remove the `raise NotImplementedError()`.
* The test cells after each task check your work as you go; your grade comes from hidden checks
  your TA runs on the notebook you submit, so keep the function names and signatures as given.
* You build `dlkit` yourself: many graded answers are pieces of the library (the autodiff engine
  and the ops' gradients in 01, the optimizers in 03, the initializers in 04, the modules in 05).
  Each test cell ends with `dlkit.student.plug("<name>", <name>)` once its checks pass; from then
  on the library (`dlkit.optim.Adam`, `Tensor.backward`, `dlkit.train.fit`, ...) runs *your* piece.
* In a later notebook the library finds your piece by itself: the one plugged in this kernel, else
  your answer cell in the earlier notebook (saved, and passing its test cell), else the published
  solution pack `packs/<notebook>.py` (your TA publishes one after each deadline), else it stops
  with a message naming the notebook and the piece to finish.
* Each piece may import only what its policy allows (`numpy`: numpy, math and a few pure stdlib
  modules; `dlkit`: those and dlkit). `plug` tells you when a cell imports something else: the
  grader does not have it.
"""

PACKS_README = """\
# Solution packs

Your TA publishes the solution pack of an assignment here (`<assignment>.py`, e.g.
`03_optimization.py`) after its deadline. `dlkit.student` then uses it for any piece of that
assignment that you have not finished (your own piece, once it passes its test cell, always wins),
so the later notebooks run. You can also point the environment variable `DLKIT_PACKS` at another
folder that holds packs.
"""


def assignments(notebooks: Path = NOTEBOOKS) -> list[str]:
    """Assignment ids in teaching order: every ``notebooks/<ID>/<ID>.ipynb``."""
    return sorted(p.name for p in notebooks.iterdir()
                  if p.is_dir() and (p / f"{p.name}.ipynb").is_file())


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
                f"{indent}    from dlkit.student import new_piece as _dlkit_resolve\n"
                f"{indent}    return _dlkit_resolve(cls, {assignment!r}, {piece!r})({call})\n")
    if isinstance(node, ast.AsyncFunctionDef):
        raise ValueError(f"line {node.lineno}: an async function cannot be a graded piece")
    return (note + f"{indent}from dlkit.student import resolve as _dlkit_resolve\n"
            f"{indent}return _dlkit_resolve({assignment!r}, {piece!r})({_forward(node.args)})\n")


_REGION = re.compile(r"^[ \t]*(#|//)[ \t]*(BEGIN|END) WITHHELD\b")


def strip_withheld_regions(source: str, what: str = "source") -> tuple[str, list[str]]:
    """Drop the lines between ``# BEGIN WITHHELD`` and ``# END WITHHELD`` (``//`` in CUDA), markers
    included.  Returns the new text and the names defined in the dropped lines."""
    out, names, inside = [], [], None
    for i, line in enumerate(source.splitlines(keepends=True), 1):
        m = _REGION.match(line)
        if m and m.group(2) == "BEGIN":
            if inside is not None:
                raise ValueError(f"{what}:{i}: BEGIN WITHHELD inside the region opened on line {inside}")
            inside = i
        elif m:
            if inside is None:
                raise ValueError(f"{what}:{i}: END WITHHELD without BEGIN WITHHELD")
            inside = None
        elif inside is not None:
            names += re.findall(r"^\s*(?:async\s+)?(?:def|class)\s+([A-Za-z_]\w*)", line)
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
    new = "".join(lines)
    tree = ast.parse(new)  # the edition must still be valid Python
    _check_no_subclass_of_stub(tree, module)
    return new, sorted(names)


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


def student_dlkit(dest: str | os.PathLike, packs_before: str | None = None) -> Path:
    """Write the student edition of the dlkit package into ``dest/dlkit`` and return ``dest``.

    ``dest`` is the directory to put on ``sys.path``.  Existing content there is replaced.  With
    ``packs_before="<ID>"`` (the grading sandbox's copy) the solution packs of the assignments before
    ``<ID>`` are baked into ``dest/dlkit/_packs/``, where ``dlkit.student`` finds them.
    """
    dest = Path(dest)
    target = dest / "dlkit"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(REPO / "dlkit", target,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "_packs", "_pieces.py"))
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
    if packs_before is not None:
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


# ------------------------------------------------------------------------------------------------
# Proof that nothing withheld reached a kit
# ------------------------------------------------------------------------------------------------

class ReleaseLeak(RuntimeError):
    """A built student kit holds something that computes a graded answer."""


def withheld_names() -> dict[str, str]:
    """``{name: where it comes from}``: every name the student kit must not define or use:
    ``@withheld`` objects, definitions inside WITHHELD regions (also of kernels/*.cu), and the
    kernels of withheld kernel files."""
    names: dict[str, str] = {}
    for qualname in withheld_objects():
        names.setdefault(qualname.rsplit(".", 1)[1], qualname)
    files = sorted((REPO / "dlkit").rglob("*.py")) + sorted((REPO / "kernels").glob("*.c*"))
    for path in files:
        rel = str(path.relative_to(REPO))
        text = path.read_text(encoding="utf-8")
        if rel in WITHHELD_FILES:
            text = "// BEGIN WITHHELD\n" + text + "\n// END WITHHELD\n"
        _, found = strip_withheld_regions(text, rel)
        for name in found:
            if name.startswith("_"):
                continue
            names.setdefault(name, rel)
    return names


def _reference_lines(source: str, node: ast.AST) -> list[str]:
    """Distinctive lines (>= 16 characters, no comments, no docstring) of a definition's body."""
    body = node.body[1:] if _docstring_node(node) else node.body
    out = []
    for stmt in body:
        for line in (ast.get_source_segment(source, stmt) or "").splitlines():
            line = line.strip()
            if len(line) >= 16 and not line.startswith("#"):
                out.append(line)
    return out


def _code_names(code) -> set[str]:
    names = {code.co_name, *code.co_names, *code.co_varnames}
    for const in code.co_consts:
        if isinstance(const, str):
            names.update(re.findall(r"[A-Za-z_]\w*", const))
        elif hasattr(const, "co_names"):
            names |= _code_names(const)
    return names


_MODULE_ALIASES = {"dlkit", "ops", "_ops", "F", "nn", "functional"}


def scan_kit(kit: str | os.PathLike) -> list[str]:
    """What a built kit (the directory holding ``dlkit/`` and ``kernels/``) leaks, one line each.

    * no file of :data:`WITHHELD_FILES`, no definition of a withheld object;
    * no withheld name in the source (identifiers, strings) or in the compiled bytecode (names,
      constants) of any module.  A withheld name that the kit also uses for something kept (the
      op ``softmax_cross_entropy`` beside the backend's fused method) may not be read as an
      attribute of anything but a dlkit module;
    * no distinctive line of a graded or withheld body, beyond the times the instructor module has
      that line outside such bodies;
    * no kernel of a withheld name in kernels/, no ``*.pyc`` anywhere.
    """
    kit = Path(kit)
    problems: list[str] = []
    origin = withheld_names()
    names = set(origin)
    withheld_defs = set(withheld_objects())
    for rel in WITHHELD_FILES:
        if (kit / rel).exists():
            problems.append(f"{rel}: withheld file is in the kit")
    problems += [f"{p.relative_to(kit)}: compiled file in the kit" for p in kit.rglob("*.pyc")]
    kept = set()  # withheld names the kit also defines for something else
    trees = {}
    for path in sorted((kit / "dlkit").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        trees[path] = (source, ast.parse(source))
        for node in ast.walk(trees[path][1]):
            if isinstance(node, _DEFS) and node.name in names:
                kept.add(node.name)
    for path, (source, tree) in trees.items():
        rel = path.relative_to(kit)
        module = ".".join(path.relative_to(kit).with_suffix("").parts).removesuffix(".__init__")
        for qualname, node in _qualified(tree):
            if f"{module}.{qualname}" in withheld_defs:
                problems.append(f"{rel}: defines the withheld {module}.{qualname}")
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, *_DEFS)) and n.body and _docstring_node(n) is not None}
        for node in ast.walk(tree):
            hit = None
            if isinstance(node, ast.Attribute) and node.attr in names:
                base = node.value
                if node.attr not in kept or not (isinstance(base, ast.Name) and base.id in _MODULE_ALIASES):
                    hit = node.attr
            elif isinstance(node, ast.Name) and node.id in names and node.id not in kept:
                hit = node.id
            elif isinstance(node, ast.alias) and node.name.split(".")[-1] in names - kept:
                hit = node.name
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                words = set(re.findall(r"[A-Za-z_]\w*", node.value)) & (names - kept)
                words |= {n for n in names - kept for w in re.findall(r"[A-Za-z_]\w*", node.value)
                          if w.startswith(n + "_") and w.removeprefix(n + "_") in ("f32", "f64", "")}
                if words and id(node) not in docstrings:
                    hit = ", ".join(sorted(words))
            if hit:
                problems.append(f"{rel}:{getattr(node, 'lineno', '?')}: uses withheld {hit} "
                                f"({origin.get(hit.split(', ')[0], '?')})")
        # optimize=2 drops docstrings: prose may name what the kit leaves out, code may not
        code_names = _code_names(compile(source, str(path), "exec", optimize=2))
        for name in sorted((names - kept) & code_names):
            problems.append(f"{rel}: bytecode names withheld {name} ({origin[name]})")
    problems += _scan_bodies(kit, trees)
    kdir = kit / "kernels"
    for path in sorted(kdir.glob("*")) if kdir.is_dir() else []:
        text = path.read_text(encoding="utf-8")
        for name in sorted(names):
            if re.search(rf"\b{re.escape(name)}(_|\b)", text):
                problems.append(f"kernels/{path.name}: has withheld kernel code {name} ({origin[name]})")
    return problems


def _scan_bodies(kit: Path, trees: dict) -> list[str]:
    problems = []
    for path in sorted((REPO / "dlkit").rglob("*.py")):
        rel = path.relative_to(REPO)
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        secret: list[str] = []
        for _, node in _qualified(tree):
            if _graded_piece(node) or _decorator(node, "withheld"):
                secret += _reference_lines(source, node)
        if not secret:
            continue
        kit_path = kit / rel
        if not kit_path.exists():
            continue
        kit_text = trees[kit_path][0] if kit_path in trees else kit_path.read_text(encoding="utf-8")
        inside = "\n".join(secret)
        for line in dict.fromkeys(secret):
            allowed = source.count(line) - inside.count(line)
            if kit_text.count(line) > max(allowed, 0):
                problems.append(f"{rel}: reference line of a graded/withheld body in the kit: {line!r}")
    return problems


# ------------------------------------------------------------------------------------------------
# Solution packs
# ------------------------------------------------------------------------------------------------

_MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[^\n]*\n?", re.MULTILINE)

PACK_HEADER = '''"""Solution pack for {ID}: the instructor's answers to its graded pieces ({names}).

Publish it after the deadline of {ID}: copy this file into the students' `packs/` folder (beside
their notebook folders) or into any folder named by the environment variable DLKIT_PACKS.  From then
on `dlkit.student` uses these pieces wherever a student's own piece of {ID} is missing or does not
pass its visible test, so later notebooks run.  Generated by `make release` from
notebooks/{ID}/{ID}.ipynb; do not edit.
"""
import math

import numpy as np

import dlkit
'''


def pack_source(ID: str) -> str:
    """The solution pack of assignment ``ID``: its instructor answer cells, markers removed."""
    from dlkit import student
    answers = student.answer_cells(student.read_notebook(NOTEBOOKS / ID / f"{ID}.ipynb"))
    parts = [PACK_HEADER.format(ID=ID, names=", ".join(answers) or "none")]
    for gid, src in answers.items():
        body = _MARKER.sub("", src).strip("\n")
        parts.append(f"\n\n# -- {gid} " + "-" * max(4, 94 - len(gid)) + f"\n{body}\n")
    text = "".join(parts)
    ast.parse(text)
    return text


def write_packs(dest: str | os.PathLike, ids: list[str] | None = None) -> list[Path]:
    """Write ``dest/<ID>.py`` for every assignment in ``ids`` (default: all); return the paths."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for ID in (assignments() if ids is None else ids):
        path = dest / f"{ID}.py"
        path.write_text(pack_source(ID), encoding="utf-8")
        out.append(path)
    return out


def generate_assignments(out: Path, ids: list[str], db: str | None = None) -> None:
    """nbgrader's ``generate_assignment`` for each id, writing ``out/<ID>/``.

    Runs nbgrader in this process (importing it costs seconds, so once for all assignments) with
    the course's ``nbgrader_config.py``.  ``db`` is a SQLAlchemy URL for the gradebook, which
    learns each assignment's grade cells (the batch grader needs them); ``None`` keeps nbgrader's
    default ``<root>/gradebook.db``.
    """
    from nbgrader.apps import NbGraderAPI
    from traitlets.config.loader import PyFileConfigLoader

    # nbgrader's gradebook runs the `alembic` command it installed: make it findable even when
    # the virtual environment was never activated (`.venv/bin/python -m autograder release`).
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([bindir, os.environ.get("PATH", "")])
    config = PyFileConfigLoader("nbgrader_config.py", path=str(REPO)).load_config()
    config.CourseDirectory.root = str(REPO)
    config.CourseDirectory.release_directory = str(out)
    if db:
        config.CourseDirectory.db_url = db
    api = NbGraderAPI(config=config)
    for ID in ids:
        result = api.generate_assignment(ID, force=True, create=True)
        if not result["success"]:
            raise RuntimeError(f"nbgrader generate_assignment {ID} failed:\n"
                               f"{result.get('error', '')}{result.get('log', '')}")


def build_release(out: str | os.PathLike, ids: list[str] | None = None, db: str | None = None,
                  packs: str | os.PathLike | None = None) -> Path:
    """The whole student edition in ``out`` (see the module docstring), and the solution packs in
    ``packs`` (default: ``release_packs/`` beside ``out``), which are NOT part of the release."""
    out = Path(out).resolve()
    ids = ids or assignments()
    unknown = sorted(set(ids) - set(assignments()))
    if unknown:
        raise ValueError(f"unknown assignment(s) {', '.join(unknown)}; known: {', '.join(assignments())}")
    packs = Path(packs).resolve() if packs is not None else out.parent / f"{out.name}_packs"
    if packs == out or out in packs.parents:
        raise ValueError(f"the solution packs ({packs}) must not be written inside the release ({out})")
    out.mkdir(parents=True, exist_ok=True)
    generate_assignments(out, ids, db)
    kit = out / "kit"
    if kit.exists():
        shutil.rmtree(kit)
    kit.mkdir()
    student_dlkit(kit)
    kit_kernels(kit)
    leaks = scan_kit(kit)
    if leaks:
        raise ReleaseLeak("the student kit would compute graded answers (fence fused paths in "
                          "`# BEGIN WITHHELD` / `# END WITHHELD` or mark them @withheld):\n  "
                          + "\n  ".join(leaks))
    for name in KIT_FILES:
        if (REPO / name).exists():
            shutil.copy2(REPO / name, kit / name)
    (out / "packs").mkdir(exist_ok=True)
    (out / "packs" / "README.md").write_text(PACKS_README, encoding="utf-8")
    (out / "Makefile").write_text(STUDENT_MAKEFILE, encoding="utf-8")
    (out / "README.md").write_text(STUDENT_README, encoding="utf-8")
    write_packs(packs, ids)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder release", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="release", help="output directory (default: release)")
    parser.add_argument("--assignment", action="append", dest="ids", help="only this assignment (repeatable)")
    parser.add_argument("--packs", default=None,
                        help="where the solution packs go (default: <out>_packs beside --out; never inside it)")
    parser.add_argument("--db", default=None, help="gradebook SQLAlchemy URL (default: nbgrader's <root>/gradebook.db)")
    args = parser.parse_args(argv)
    out = build_release(args.out, args.ids, args.db, args.packs)
    stubbed = graded_pieces()
    packs = Path(args.packs).resolve() if args.packs else out.parent / f"{out.name}_packs"
    print(f"student edition written to {out}")
    print(f"  notebooks: {', '.join(args.ids or assignments())}")
    print(f"  dlkit pieces left for students ({len(stubbed)}): "
          + ", ".join(f"{q} ({n})" for q, (_, n) in sorted(stubbed.items())))
    print(f"  withheld from the kit: " + ", ".join(sorted(withheld_objects()) + list(WITHHELD_FILES)))
    print(f"  solution packs (publish each after its deadline, see {out.name}/packs/README.md): {packs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
