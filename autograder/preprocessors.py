"""nbgrader preprocessors: ``nbgrader autograde`` grades through the sandboxed hidden checks.

The kit's ``nbgrader_config.py`` puts these into ``Autograde.autograde_preprocessors``:

* :class:`DlkitGrader` REPLACES nbgrader's ``Execute``.  No kernel is started and no cell of the
  notebook is executed in the grader: the submitted notebook is graded by
  :func:`autograder.harness.grade` (the code path of ``make grade`` / ``python -m autograder``:
  the file read safely from ``submitted/``, the answer cells run in the sandbox, the hidden
  checks in this process).  Each autograder-tests cell then shows the checks' results as its
  output (what formgrader displays), and ``results.json`` (with the staff notes) is written
  beside the autograded notebook.
* :class:`SaveCheckResults` REPLACES nbgrader's ``SaveAutoGrades``: each grade cell's
  ``auto_score`` is the checks' score scaled to the cell's points
  (:func:`autograder.gradebook.cell_scores`, the batch's formula, so both give the same scores),
  and each answer cell's comment is the checks' messages for its function (formgrader shows it,
  ``nbgrader generate_feedback`` renders it).  Staff notes never go into a notebook or comment.

nbgrader's own ``AssignLatePenalties`` runs after them (its ``LateSubmissionPlugin``, configured in
``nbgrader_config.py``), so late penalties are nbgrader's.  Sandbox limits come from the config:
``c.DlkitGrader.memory_mb = 2048``, ``c.DlkitGrader.submission_s = 120``, ... (the traits of
:class:`autograder.budgets.SandboxBudgets`, which ``make grade`` reads without nbgrader).
"""
from __future__ import annotations

import atexit
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import nbformat
from nbconvert.exporters import NotebookExporter
from nbgrader import utils as nbutils
from nbgrader.preprocessors import NbGraderPreprocessor, SaveAutoGrades
from traitlets import Bool, Unicode

from . import gradebook as gbook
from .budgets import SandboxBudgets
from .feedback import atomic_write, check_messages, ensure_release_files, show_check_results
from .sanitize import formgrader_notebook

__all__ = ["DlkitGrader", "SaveCheckResults", "SafeNotebookExporter", "NormalizeMetadata"]

_KIT: dict[str, str] = {}


def _student_kit(assignment: str) -> str | None:
    """The grader's student edition of dlkit for ``assignment`` (with the solution packs of the
    earlier assignments, as the batch builds it), built once per process (removed at exit)."""
    if assignment not in _KIT:
        from .harness import build_student_edition
        tmp = tempfile.TemporaryDirectory(prefix="dlkit-student-edition-")
        atexit.register(tmp.cleanup)
        _KIT[assignment] = build_student_edition(tmp.name, assignment)
    return _KIT[assignment]


def _coursedir(config: Any) -> Any:
    from nbgrader.coursedir import CourseDirectory
    return CourseDirectory(config=config)


class SafeNotebookExporter(NotebookExporter):
    """``c.Autograde.exporter_class``: nbgrader's notebook exporter, but the submitted file is
    read like the batch reads it (:mod:`autograder.safefile`: no links, regular files, size cap)
    and a file that is no usable notebook becomes a one-cell placeholder saying why, instead of
    failing the student in nbgrader.  The grade comes from :class:`DlkitGrader` either way (which
    grades the submitted file itself, so such a submission scores 0 with the reason)."""

    def from_filename(self, filename: str, resources: dict | None = None, **kw: Any) -> tuple[Any, dict]:
        import datetime
        from nbconvert.exporters.exporter import ResourcesDict
        from . import safefile
        from .harness import MAX_NOTEBOOK_BYTES
        from .sanitize import placeholder_notebook
        resources = ResourcesDict() if resources is None else resources
        if "metadata" not in resources or resources["metadata"] == "":
            resources["metadata"] = ResourcesDict()
        path, basename = os.path.split(filename)
        resources["metadata"]["name"] = os.path.splitext(basename)[0]
        resources["metadata"]["path"] = path
        root = Path(_coursedir(self.config).root).resolve()
        within = root if Path(filename).resolve().is_relative_to(root) else None
        try:
            mtime = os.lstat(filename).st_mtime
            resources["metadata"]["modified_date"] = datetime.datetime.fromtimestamp(
                mtime, tz=datetime.timezone.utc).strftime("%B %d, %Y")
            raw = safefile.read_file(filename, MAX_NOTEBOOK_BYTES, within=within)
            nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
            if not isinstance(nb.get("cells"), list):
                raise ValueError("no cells")
        except safefile.UnsafeFile as exc:
            nb = nbformat.reads(placeholder_notebook(str(exc)), as_version=4)
        except Exception as exc:  # noqa: BLE001 - whatever the file holds, the TA gets a page
            nb = nbformat.reads(placeholder_notebook(f"it is not a usable notebook ({type(exc).__name__})"),
                                as_version=4)
        return self.from_notebook_node(nb, resources=resources, **kw)


class NormalizeMetadata(NbGraderPreprocessor):
    """First of ``Autograde.sanitize_preprocessors``: a cell keeps nbgrader metadata only if the
    SOURCE notebook has a cell of that ``grade_id`` and type, and then gets the source's metadata
    (a student cannot make nbgrader refuse the submission with broken or old-schema metadata, nor
    invent grade cells); every other cell becomes a plain cell."""

    def preprocess(self, nb: Any, resources: dict) -> tuple[Any, dict]:
        import copy
        nbg = resources["nbgrader"]
        cd = _coursedir(self.config)
        source = Path(cd.format_path(cd.source_directory, ".", nbg["assignment"])) / f"{nbg['notebook']}.ipynb"
        known: dict[str, tuple[str, dict]] = {}
        if source.is_file():
            for cell in nbformat.read(str(source), as_version=4).cells:
                meta = cell.get("metadata", {}).get("nbgrader")
                if isinstance(meta, dict) and isinstance(meta.get("grade_id"), str):
                    known[meta["grade_id"]] = (cell.cell_type, dict(meta))
        for cell in nb.cells:
            meta = cell.get("metadata", {}).get("nbgrader")
            if meta is None:
                continue
            gid = meta.get("grade_id") if isinstance(meta, dict) else None
            found = known.get(gid) if isinstance(gid, str) else None
            if found is None or found[0] != cell.cell_type:
                del cell.metadata["nbgrader"]
            else:
                cell.metadata["nbgrader"] = nbformat.from_dict(copy.deepcopy(found[1]))
        return nb, resources


class DlkitGrader(NbGraderPreprocessor, SandboxBudgets):
    """Grade the submission with the sandboxed hidden checks (replaces nbgrader's Execute); the
    sandbox budgets are :class:`~autograder.budgets.SandboxBudgets`' traits."""

    checks_root = Unicode(None, allow_none=True,
                          help="folder holding <assignment>/test_*.py (default: the kit's autograder/)"
                          ).tag(config=True)
    student_dlkit = Unicode(None, allow_none=True,
                            help="directory holding the student edition's dlkit (default: built once)"
                            ).tag(config=True)
    isolate = Bool(True, help="OS isolation of the sandbox (False: debugging only)").tag(config=True)

    def _submitted(self, resources: dict) -> tuple[Path, Path]:
        """(course root, submitted notebook path) of the notebook being autograded."""
        from nbgrader.coursedir import CourseDirectory
        cd = CourseDirectory(config=self.config)
        nbg = resources["nbgrader"]
        folder = cd.format_path(cd.submitted_directory, nbg["student"], nbg["assignment"])
        return Path(cd.root).resolve(), Path(folder) / f"{nbg['notebook']}.ipynb"

    def preprocess(self, nb: Any, resources: dict) -> tuple[Any, dict]:
        from .harness import grade
        nbg = resources["nbgrader"]
        root, path = self._submitted(resources)
        kit = self.student_dlkit or _student_kit(nbg["assignment"])
        self.log.info("Grading %s with the sandboxed hidden checks (no kernel)", path)
        results = grade(nbg["assignment"], path, checks_root=self.checks_root, student_dlkit=kit,
                        limits=self.limits(), isolate=self.isolate, within=root)
        cell_max = {}
        for cell in nb.cells:
            if nbutils.is_grade(cell) and not nbutils.is_solution(cell) and cell.cell_type == "code":
                cell_max[cell.metadata.nbgrader["grade_id"]] = float(cell.metadata.nbgrader["points"])
        cell_max = _gradebook_points(nbg, cell_max)
        scores = gbook.cell_scores(results, cell_max)
        resources["dlkit"] = {"results": results, "scores": scores,
                              "comments": check_messages(results)}
        # what formgrader shows the TA: rebuilt without active content (autograder.sanitize)
        nb = nbformat.reads(formgrader_notebook(nb), as_version=4)
        show_check_results(nb, results, scores, cell_max)
        out_dir = Path(resources["metadata"]["path"])
        if out_dir.resolve().is_relative_to(root):
            _drop_unsafe_copies(path.parent, out_dir, root, self.log)
            atomic_write(out_dir / "results.json", json.dumps(results, indent=1))
            ensure_release_files(out_dir)
        self.log.info("%s: hidden checks %g / %g", nbg["student"], results["score"], results["max_score"])
        return nb, resources


#: largest non-notebook file nbgrader's copy of a submission may keep in autograded/ (and feedback/)
MAX_OTHER_FILE_BYTES = 8 * 1024 * 1024


def _drop_unsafe_copies(submitted: Path, out_dir: Path, root: Path, log: Any) -> None:
    """nbgrader's autograde copies every other file of the submission into ``autograded/`` (and
    generate_feedback on into ``feedback/``, which goes back to the student) with ``shutil.copy``,
    which follows links: remove each copy whose submitted original is not a regular file of its
    own within the size cap (a link to a grader's file, a FIFO, a huge file)."""
    from . import safefile
    for copy in sorted(out_dir.rglob("*")):
        if copy.is_dir() or copy.suffix == ".ipynb":
            continue
        rel = copy.relative_to(out_dir)
        if rel.name in ("results.json", "timestamp.txt", "submission_secret.txt") and len(rel.parts) == 1 \
                and not (submitted / rel).exists() and not (submitted / rel).is_symlink():
            continue
        try:
            safefile.read_file(submitted / rel, MAX_OTHER_FILE_BYTES, within=root)
        except (safefile.UnsafeFile, OSError) as exc:
            log.warning("Removing %s from autograded/: %s", rel, exc)
            copy.unlink()


def _gradebook_points(nbg: dict, fallback: dict[str, float]) -> dict[str, float]:
    """``{grade_id: max_score}`` of the notebook's code grade cells as the gradebook has them."""
    from nbgrader.api import Gradebook, MissingEntry
    try:
        with Gradebook(nbg["db_url"]) as gb:
            cells = gb.find_notebook(nbg["notebook"], nbg["assignment"]).grade_cells
            have = {c.name: float(c.max_score) for c in cells if c.cell_type == "code"}
    except MissingEntry:
        return fallback
    return have or fallback


class SaveCheckResults(SaveAutoGrades):
    """Replaces nbgrader's SaveAutoGrades: the checks' scores and messages, for EVERY grade cell
    and answer cell the gradebook has for this notebook (also those a student deleted from the
    file), by the batch's rule (:func:`autograder.gradebook.set_grade`)."""

    def preprocess(self, nb: Any, resources: dict) -> tuple[Any, dict]:
        from nbgrader.api import Gradebook
        found = resources.get("dlkit")
        if found is None:
            raise RuntimeError("SaveCheckResults needs autograder.preprocessors.DlkitGrader before it")
        nbg = resources["nbgrader"]
        with Gradebook(nbg["db_url"]) as gb:
            snb = gb.find_submission_notebook(nbg["notebook"], nbg["assignment"], nbg["student"])
            for grade in snb.grades:
                gbook.set_grade(grade, found["scores"])
            gbook.set_comments(gb, snb, found["comments"])
            gb.db.commit()
        return nb, resources
