"""The student edition: nbgrader's generated notebooks plus a dlkit whose graded pieces are holes.

``python -m autograder release --out release`` (``make release``) writes::

    release/<ID>/<ID>.ipynb     nbgrader generate_assignment output, one folder per assignment
    release/kit/                the student kit: dlkit/, kernels/, pyproject.toml
    release/packs/              empty: where the TA publishes solution packs after each deadline
    release/Makefile            ``make lab`` for students: .venv, the student kit, JupyterLab here
    release/README.md           what students do with it
    release_packs/<ID>.py       the solution pack of every assignment, OUTSIDE the release: the
                                instructor copies one into the students' packs/ after its deadline

The kit is built by :mod:`autograder.kit` (every ``@graded`` piece becomes a stand-in that
forwards to ``dlkit.student``; withheld code is left out) and checked by
:mod:`autograder.kit_scan` (no withheld name in source or bytecode, no reference body): a release
whose kit leaks does not build.  The solution packs are the instructor notebooks' answer cells,
markers removed (:func:`pack_source`).
"""
from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import sys
from pathlib import Path

from .kit import (NOTEBOOKS, REPO, WITHHELD_FILES, WITHHELD_KERNEL_FILES, graded_objects,  # noqa: F401
                  graded_pieces, kit_kernels, strip_withheld_regions, stub_graded_source, student_dlkit,
                  withheld_objects)
from .kit_scan import ReleaseLeak, scan_kit, withheld_names  # noqa: F401

KIT_FILES = ("pyproject.toml", "environment.yml", "README.md", "requirements/base.lock")

STUDENT_MAKEFILE = """\
# Student edition of the dlkit course. `make lab` sets everything up and opens JupyterLab.
PYTHON ?= python3
VENV := .venv

lab: $(VENV)/.installed
\tJUPYTER_CONFIG_PATH=$(CURDIR)/jupyter-config $(VENV)/bin/jupyter lab --ServerApp.root_dir=. $(if $(filter 0,$(shell id -u)),--allow-root,)

# The exact versions the course was tested with (kit/requirements/base.lock), then the kit itself
# without re-resolving anything.
$(VENV)/.installed: kit/pyproject.toml kit/requirements/base.lock
\t$(PYTHON) -m venv $(VENV)
\t$(VENV)/bin/python -m pip install -q --upgrade pip
\t$(VENV)/bin/python -m pip install -q -r kit/requirements/base.lock
\t$(VENV)/bin/python -m pip install -q --no-deps -e ./kit
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
* Before you submit, check your notebook the way nbgrader does: in JupyterLab, the notebook's
  toolbar button *Validate* (or, in a terminal, `.venv/bin/nbgrader validate <folder>/<notebook>.ipynb`)
  runs every cell in order and reports the test cells that fail. Submit with *Assignments*
  (nbgrader's assignment list) if your course uses nbgrader's exchange, else as your TA says.
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
    if leaks:  # no usable kit at all rather than one that hands out answers
        shutil.rmtree(kit)
        raise ReleaseLeak("the student kit would compute graded answers (fence fused paths in "
                          "`# BEGIN WITHHELD` / `# END WITHHELD` or mark them @withheld):\n  "
                          + "\n  ".join(leaks))
    for name in KIT_FILES:
        if (REPO / name).exists():
            (kit / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, kit / name)
    (out / "packs").mkdir(exist_ok=True)
    (out / "packs" / "README.md").write_text(PACKS_README, encoding="utf-8")
    (out / "Makefile").write_text(STUDENT_MAKEFILE, encoding="utf-8")
    (out / "README.md").write_text(STUDENT_README, encoding="utf-8")
    write_student_jupyter_config(out)
    write_packs(packs, ids)
    return out


#: nbgrader's instructor tools, off in the student lab (server extension / JupyterLab plugin ids)
INSTRUCTOR_SERVER_EXTENSIONS = ("nbgrader.server_extensions.formgrader",)
INSTRUCTOR_LAB_PLUGINS = ("@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",
                          "@jupyter/nbgrader:course-list")


def write_student_jupyter_config(out: str | os.PathLike) -> Path:
    """``out/jupyter-config/``: Jupyter configuration of the student lab (``make lab`` puts it on
    ``JUPYTER_CONFIG_PATH``; a hub image copies it into ``/etc/jupyter``).  The student keeps
    nbgrader's student tools (assignment list: fetch/submit; Validate) and does not get the
    instructor's (formgrader, Create Assignment, course list): their server extensions are off
    and their JupyterLab plugins disabled."""
    import json
    folder = Path(out) / "jupyter-config"
    (folder / "labconfig").mkdir(parents=True, exist_ok=True)
    server = {"ServerApp": {"jpserver_extensions": {name: False for name in INSTRUCTOR_SERVER_EXTENSIONS}}}
    (folder / "jupyter_server_config.json").write_text(json.dumps(server, indent=1), encoding="utf-8")
    page = {"disabledExtensions": {name: True for name in INSTRUCTOR_LAB_PLUGINS}}
    (folder / "labconfig" / "page_config.json").write_text(json.dumps(page, indent=1), encoding="utf-8")
    return folder


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
