"""The student edition: nbgrader's generated notebooks plus a dlkit without the graded answers.

``python -m autograder release --out release`` (``make release``) writes::

    release/<ID>/<ID>.ipynb     nbgrader generate_assignment output, one folder per assignment
    release/kit/                the student edition of the library: dlkit/, kernels/, pyproject.toml
    release/Makefile            ``make lab`` for students: .venv, the student kit, JupyterLab here
    release/README.md           what students do with it

Every function in dlkit decorated with ``@graded("<ID>")`` keeps its signature and docstring, but
its body becomes ``raise NotImplementedError(...)`` naming the notebook that asks for it.  The
rewrite works on source lines (located with ``ast``), so comments and layout elsewhere survive and
the student edition stays as readable as the original.
"""
from __future__ import annotations

import argparse
import ast
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
KIT_FILES = ("pyproject.toml", "environment.yml", "README.md")

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
* Some pieces of `dlkit` are yours to write (optimizers in 03, initializers in 04). Until you have,
  calling them raises NotImplementedError naming the notebook. Later notebooks reuse your own
  answers with `dlkit.student.load("<notebook>", "<name>")`.
"""


def assignments(notebooks: Path = NOTEBOOKS) -> list[str]:
    """Assignment ids in teaching order: every ``notebooks/<ID>/<ID>.ipynb``."""
    return sorted(p.name for p in notebooks.iterdir()
                  if p.is_dir() and (p / f"{p.name}.ipynb").is_file())


def _graded_assignment(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """The assignment id in a ``@graded("<ID>")`` decorator (any import spelling), else None."""
    for dec in fn.decorator_list:
        if not isinstance(dec, ast.Call) or not dec.args:
            continue
        target = dec.func
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
        arg = dec.args[0]
        if name == "graded" and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return arg.value
    return None


def _qualified(tree: ast.Module) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    out = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((prefix + child.name, child))
                visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")

    visit(tree, "")
    return out


def stub_graded_source(source: str, module: str = "dlkit") -> tuple[str, list[str]]:
    """Replace the body of every ``@graded`` function in ``source``.

    Returns the new source and the qualified names that were stubbed.
    """
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    edits = []
    for qualname, fn in _qualified(tree):
        assignment = _graded_assignment(fn)
        if assignment is None:
            continue
        body = fn.body
        has_doc = (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                   and isinstance(body[0].value.value, str))
        first = body[0]
        if first.lineno == fn.lineno:
            raise ValueError(f"{module}.{qualname}: a graded function needs its body on its own lines")
        indent = " " * first.col_offset
        message = (f"{module}.{qualname} is yours to implement in "
                   f"notebooks/{assignment}/{assignment}.ipynb")
        stub = f"{indent}raise NotImplementedError({message!r})\n"
        rest = body[1:] if has_doc else body
        if not rest:  # docstring only: the stub goes right after it
            edits.append((body[0].end_lineno, body[0].end_lineno, stub))
        else:
            start = rest[0].lineno - 1
            while start > 0 and lines[start - 1].strip().startswith("#"):
                start -= 1  # comment lines just above the first statement are part of the body
            edits.append((start, body[-1].end_lineno, stub))
        edits[-1] = edits[-1] + (f"{module}.{qualname}",)
    names = []
    for start, end, stub, name in sorted(edits, reverse=True):
        lines[start:end] = [stub]
        names.append(name)
    new = "".join(lines)
    ast.parse(new)  # the edition must still be valid Python
    return new, sorted(names)


def student_dlkit(dest: str | os.PathLike) -> Path:
    """Write the student edition of the dlkit package into ``dest/dlkit`` and return ``dest``.

    ``dest`` is the directory to put on ``sys.path``.  Existing content there is replaced.
    """
    dest = Path(dest)
    target = dest / "dlkit"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(REPO / "dlkit", target,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for path in sorted(target.rglob("*.py")):
        module = ".".join(path.relative_to(dest).with_suffix("").parts)
        source = path.read_text(encoding="utf-8")
        if "graded(" not in source:
            continue
        new, _ = stub_graded_source(source, module.removesuffix(".__init__"))
        path.write_text(new, encoding="utf-8")
    return dest


def graded_objects() -> dict[str, str]:
    """``{qualified name: assignment}`` for every ``@graded`` function in the instructor dlkit."""
    found = {}
    for path in sorted((REPO / "dlkit").rglob("*.py")):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for qualname, fn in _qualified(tree):
            assignment = _graded_assignment(fn)
            if assignment:
                found[f"{module}.{qualname}"] = assignment
    return found


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


def build_release(out: str | os.PathLike, ids: list[str] | None = None, db: str | None = None) -> Path:
    """The whole student edition in ``out`` (see the module docstring)."""
    out = Path(out).resolve()
    ids = ids or assignments()
    unknown = sorted(set(ids) - set(assignments()))
    if unknown:
        raise ValueError(f"unknown assignment(s) {', '.join(unknown)}; known: {', '.join(assignments())}")
    out.mkdir(parents=True, exist_ok=True)
    generate_assignments(out, ids, db)
    kit = out / "kit"
    if kit.exists():
        shutil.rmtree(kit)
    kit.mkdir()
    student_dlkit(kit)
    shutil.copytree(REPO / "kernels", kit / "kernels")
    for name in KIT_FILES:
        if (REPO / name).exists():
            shutil.copy2(REPO / name, kit / name)
    (out / "Makefile").write_text(STUDENT_MAKEFILE, encoding="utf-8")
    (out / "README.md").write_text(STUDENT_README, encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder release", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="release", help="output directory (default: release)")
    parser.add_argument("--assignment", action="append", dest="ids", help="only this assignment (repeatable)")
    parser.add_argument("--db", default=None, help="gradebook SQLAlchemy URL (default: nbgrader's <root>/gradebook.db)")
    args = parser.parse_args(argv)
    out = build_release(args.out, args.ids, args.db)
    stubbed = graded_objects()
    print(f"student edition written to {out}")
    print(f"  notebooks: {', '.join(args.ids or assignments())}")
    print(f"  dlkit pieces left for students ({len(stubbed)}): " + ", ".join(sorted(stubbed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
