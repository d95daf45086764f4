"""Bad submitted FILES against the batch (issue 10, items 2, 4, 5): copied, linked, special, huge.

The hostile students below attack with the files of their submission, not with their code:
links to the instructor's notebook or to another student's work, linked folders, FIFOs, device
files, folders in place of files, sparse 1 TB files, a 64 MB notebook, linked / unparsable
nbgrader files, text that cannot be encoded, and script aimed at the TA's formgrader.  One batch
grades them with two honest students.  Expected, for every case: that submission scores 0 with a
clear reason (the XSS one keeps its marks: its answers are right, its page is sanitized), the
honest students keep full marks, the batch completes, nothing is left running, nothing outside
the course directory is read into it or written, and a rerun changes nothing.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE / "adversarial"))

import course  # noqa: E402
from formgrader_xss import xss_notebook  # noqa: E402

from autograder import safefile  # noqa: E402
from autograder.batch import FAILED, MARKER  # noqa: E402
from autograder.feedback import atomic_write, check_messages, printable  # noqa: E402
from autograder.base import MAX_NOTEBOOK_BYTES  # noqa: E402
from autograder.sanitize import formgrader_copy  # noqa: E402

ID = course.ASSIGNMENT
NB = f"{ID}.ipynb"
SECRET = "ROOT-ONLY-SECRET-7f3a9c"          # content of a file outside the course no output may hold
ALL = tuple(course.POINTS)
HONEST = ("honest_a", "honest_b")
TIMESTAMP = "2025-02-03 04:05:06.000000 UTC"


# =============================================================================================
# the safe reader itself
# =============================================================================================
def test_read_file_refuses_links_special_files_and_oversize(tmp_path: Path) -> None:
    (tmp_path / "ok").write_bytes(b"x" * 10)
    assert safefile.read_file(tmp_path / "ok", 10) == b"x" * 10
    with pytest.raises(safefile.UnsafeFile, match="the limit is 9 bytes"):
        safefile.read_file(tmp_path / "ok", 9)
    (tmp_path / "link").symlink_to(tmp_path / "ok")
    with pytest.raises(safefile.UnsafeFile, match="symbolic link"):
        safefile.read_file(tmp_path / "link", 100)
    os.mkfifo(tmp_path / "fifo")                      # opening it for reading would block forever
    with pytest.raises(safefile.UnsafeFile, match="named pipe"):
        safefile.read_file(tmp_path / "fifo", 100)
    (tmp_path / "dir").mkdir()
    with pytest.raises(safefile.UnsafeFile, match="a folder"):
        safefile.read_file(tmp_path / "dir", 100)
    with open(tmp_path / "sparse", "wb") as fh:       # 1 TB, no blocks: refused by its size
        fh.truncate(1 << 40)
    with pytest.raises(safefile.UnsafeFile, match=r"1024\.0 GB; the limit is 20\.0 MB"):
        safefile.read_file(tmp_path / "sparse", MAX_NOTEBOOK_BYTES)
    with pytest.raises(FileNotFoundError):
        safefile.read_file(tmp_path / "missing", 100)


def test_read_file_never_follows_a_linked_folder_below_within(tmp_path: Path) -> None:
    (tmp_path / "real" / "a").mkdir(parents=True)
    (tmp_path / "real" / "a" / "f").write_text("other student's work")
    (tmp_path / "course" / "submitted").mkdir(parents=True)
    (tmp_path / "course" / "submitted" / "mallory").symlink_to(tmp_path / "real")
    path = tmp_path / "course" / "submitted" / "mallory" / "a" / "f"
    with pytest.raises(safefile.UnsafeFile, match="submitted/mallory is a symbolic link"):
        safefile.read_file(path, 100, within=tmp_path / "course")
    kinds = safefile.entries(tmp_path / "course" / "submitted", within=tmp_path / "course")
    assert kinds == {"mallory": "a symbolic link"}


def test_a_folder_with_too_many_entries_is_refused(tmp_path: Path) -> None:
    for i in range(12):
        (tmp_path / f"f{i}").touch()
    assert len(safefile.entries(tmp_path, limit=12)) == 12
    with pytest.raises(safefile.UnsafeFile, match="more than 11 entries"):
        safefile.entries(tmp_path, limit=11)


def test_device_file_is_never_opened(tmp_path: Path) -> None:
    try:
        os.mknod(tmp_path / "dev", 0o600 | stat.S_IFCHR, os.makedev(1, 3))   # like /dev/null
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot create a device file here: {exc}")
    with pytest.raises(safefile.UnsafeFile, match="device file"):
        safefile.read_file(tmp_path / "dev", 100)


# =============================================================================================
# writing what the grader hands out
# =============================================================================================
def test_unencodable_text_is_escaped_never_a_crash(tmp_path: Path) -> None:
    bad = "boom " + chr(0xDCFF) + chr(0xD800)
    atomic_write(tmp_path / "t.txt", bad)
    assert (tmp_path / "t.txt").read_text() == "boom \\udcff\\ud800"
    results = {"score": 0, "max_score": 1, "output": bad, "assignment": ID,
               "tests": [{"name": bad, "score": 0, "max_score": 1, "output": bad, "status": "failed"}],
               "functions": {bad: {"score": 0, "max_score": 1}}}
    atomic_write(tmp_path / "f.txt", "\n".join(check_messages(results).values()))
    assert "\\udcff" in (tmp_path / "f.txt").read_text()
    assert printable(bad) == "boom \\udcff\\ud800"


def test_atomic_write_never_writes_through_a_planted_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("untouched")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / f".r.json.tmp{os.getpid()}").symlink_to(outside)    # a planted temp name
    atomic_write(tmp_path / "out" / "r.json", "{}")
    assert outside.read_text() == "untouched"
    assert (tmp_path / "out" / "r.json").read_text() == "{}"
    mode = stat.S_IMODE((tmp_path / "out" / "r.json").stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask                        # the grader's own permissions


class _Elements(HTMLParser):
    """Every element and attribute of an HTML fragment, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))


def test_formgrader_copy_has_no_active_content() -> None:
    nb = json.loads(formgrader_copy(json.dumps(xss_notebook()).encode()))
    elements = _Elements()
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            elements.feed("".join(cell["source"]))
    tags = {t for t, _ in elements.found}
    assert tags, "nothing rendered"
    assert not tags & {"script", "iframe", "svg", "object", "embed", "math", "style", "body", "input",
                       "form", "base", "meta", "link"}, tags
    for tag, attrs in elements.found:
        assert not any(k.startswith("on") or k in ("srcdoc", "autofocus", "style") for k in attrs), (tag, attrs)
        for k in ("href", "src"):
            url = attrs.get(k, "").strip().lower()
            assert not url.startswith(("javascript:", "data:text", "vbscript:")), (tag, attrs)
    assert all(c.get("outputs", []) == [] for c in nb["cells"])
    assert all(c.get("execution_count") is None for c in nb["cells"] if c["cell_type"] == "code")
    ids = [c["metadata"].get("nbgrader", {}).get("grade_id") for c in nb["cells"]]
    assert set(ids) >= set(course.CORRECT) and not any(i and '"' in i for i in ids)
    assert nb["metadata"] == {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                              "language_info": {"name": "python"}}
    assert "not valid notebook JSON" in formgrader_copy(b"{ nope")
    import nbformat
    nbformat.validate(nbformat.reads(formgrader_copy(json.dumps(xss_notebook()).encode()), 4))
    nbformat.validate(nbformat.reads(formgrader_copy(b"{ nope"), 4))


def test_formgrader_copy_renders_each_distinct_markdown_cell_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The course's own markdown arrives unchanged in every submission: it is rendered once per
    process, and the memo gives exactly what rendering anew gives (hostile cells included)."""
    from autograder import sanitize
    sanitize._sanitized_markdown.cache_clear()
    data = json.dumps(xss_notebook()).encode()
    fresh = formgrader_copy(data)
    calls = []
    real = sanitize._markdown_html
    monkeypatch.setattr(sanitize, "_markdown_html", lambda s, a: calls.append(s) or real(s, a))
    assert formgrader_copy(data) == fresh and calls == []
    changed = xss_notebook()
    md = next(c for c in changed["cells"] if c["cell_type"] == "markdown")
    md["source"] = "<script>alert(1)</script> changed"
    out = formgrader_copy(json.dumps(changed).encode())
    assert calls == ["<script>alert(1)</script> changed"] and "<script>" not in out
    sanitize._sanitized_markdown.cache_clear()
    monkeypatch.setattr(sanitize, "_markdown_html", real)
    assert formgrader_copy(data) == fresh


def test_formgrader_copy_of_a_huge_notebook_renders_a_bounded_part() -> None:
    """100,000 tiny markdown cells (6 MB) or one 5 MB cell: rendering (the trusted process's
    work per copy) stops at a budget; the rest is shown as escaped text."""
    from autograder.sanitize import RENDER_BUDGET_CELLS
    many = course.notebook({})
    many["cells"] = [{"cell_type": "markdown", "metadata": {}, "source": "<b>x</b> *y*"}] * 100_000
    cells = json.loads(formgrader_copy(json.dumps(many).encode()))["cells"]
    assert len(cells) == 100_000
    rendered = sum("<em>y</em>" in "".join(c["source"]) for c in cells)
    assert rendered == RENDER_BUDGET_CELLS
    assert "*y*" in "".join(cells[-1]["source"]) and "&lt;b&gt;" in "".join(cells[-1]["source"])
    big = course.notebook({})
    big["cells"] = [{"cell_type": "markdown", "metadata": {}, "source": "*a* " * (5 << 18)}]
    text = "".join(json.loads(formgrader_copy(json.dumps(big).encode()))["cells"][0]["source"])
    assert "characters, not rendered" in text and len(text) < 30_000


# =============================================================================================
# one batch with every hostile submission
# =============================================================================================
@dataclass
class Case:
    says: str                      # the reason the output must give
    zero: tuple[str, ...] = ALL    # functions that must score 0 (the others: full marks)


CASES = {
    "link_to_source": Case("symbolic link"),               # the instructor's own notebook
    "link_to_honest": Case("symbolic link"),               # another student's notebook
    "linked_student_dir": Case("symbolic link"),           # submitted/<me> -> submitted/honest_b
    "linked_assignment_dir": Case("symbolic link"),        # submitted/<me>/<ID> -> source/<ID>
    "assignment_is_a_file": Case("not a folder"),
    "fifo_notebook": Case("named pipe"),                   # would block a reader forever
    "folder_notebook": Case("is a folder"),
    "device_notebook": Case("device file"),                # /dev/zero's numbers: endless reads
    "sparse_1tb_link": Case("symbolic link"),              # link to a 1 TB sparse file
    "sparse_1tb": Case("the limit is 20.0 MB"),            # the notebook itself is 1 TB sparse
    "notebook_64mb": Case("the limit is 20.0 MB"),         # 64 MB of real JSON
    "linked_timestamp": Case("timestamp.txt is a symbolic link"),    # -> a root-only file
    "linked_secret": Case("submission_secret.txt is a symbolic link"),
    "fifo_timestamp": Case("named pipe"),
    "bad_timestamp": Case("timestamp.txt does not hold a valid time"),   # nbgrader's parse_utc raises
    "huge_timestamp": Case("the limit is 64.0 kB"),
    "surrogate_message": Case("ValueError", zero=("scale",)),   # a lone surrogate in the error text
    "surrogate_print": Case("should be 26", zero=("count",)),
    "formgrader_xss": Case("", zero=()),                   # right answers: full marks, page sanitized
    # what `nbgrader collect` (shutil.copytree follows links) makes of a link to the source:
    # a plain copy; graded as usual, but the batch tells the TA (test_copy_of_the_source_is_flagged)
    "copy_of_source": Case("", zero=()),
}


def _digest(folder: Path) -> dict[str, str]:
    """Every entry below ``folder`` without following links or opening special files."""
    out = {}
    for dirpath, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(folder))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = "link:" + os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                out[rel] = f"file:{st.st_size}:{st.st_mtime_ns}:" + (
                    hashlib.sha256(p.read_bytes()).hexdigest() if st.st_size < (1 << 27) else "huge")
            else:
                out[rel] = f"{safefile.kind_of(st.st_mode)}:{oct(stat.S_IMODE(st.st_mode))}"
    return out


def _grown(path: Path, size: int) -> None:
    """A sparse file of ``size`` bytes that starts like a notebook."""
    path.write_bytes(b'{"nbformat": 4, "cells": [')
    with open(path, "r+b") as fh:
        fh.truncate(size)


def _make_course(base: Path, template_db: Path | None = None) -> tuple[Path, Path, Path]:
    checks = course.make_checks(base / "checks")
    cdir = base / "course"
    outside = base / "outside"                       # what no student may get: not in the course
    outside.mkdir()
    secret = outside / "root_only.txt"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    _grown(outside / "huge.ipynb", 1 << 40)
    source = course.write_notebook(cdir / "source" / ID / NB, course.CORRECT)
    sub = cdir / "submitted"

    def folder(student: str) -> Path:
        f = sub / student / ID
        f.mkdir(parents=True, exist_ok=True)
        return f

    def honest_files(f: Path) -> None:
        (f / "timestamp.txt").write_text(TIMESTAMP)
        (f / "submission_secret.txt").write_text(f"secret-of-{f.parent.name}")
        (f / "submission_secret.txt").chmod(0o600)

    for name in HONEST:
        course.write_notebook(folder(name) / NB, course.CORRECT)
        honest_files(folder(name))
    (folder("link_to_source") / NB).symlink_to(source)
    (folder("link_to_honest") / NB).symlink_to(sub / "honest_a" / ID / NB)
    (sub / "linked_student_dir").symlink_to(sub / "honest_b")
    (sub / "linked_assignment_dir").mkdir()
    (sub / "linked_assignment_dir" / ID).symlink_to(cdir / "source" / ID)
    (sub / "assignment_is_a_file").mkdir()
    (sub / "assignment_is_a_file" / ID).write_text("not a folder")
    os.mkfifo(folder("fifo_notebook") / NB)
    (folder("folder_notebook") / NB).mkdir()
    (folder("folder_notebook") / NB / "inner.ipynb").write_text("{}")
    try:
        os.mknod(folder("device_notebook") / NB, 0o644 | stat.S_IFCHR, os.makedev(1, 5))
    except OSError:
        (folder("device_notebook") / NB).symlink_to("/dev/zero")   # then at least the link is refused
        CASES["device_notebook"] = Case("symbolic link")
    (folder("sparse_1tb_link") / NB).symlink_to(outside / "huge.ipynb")
    _grown(folder("sparse_1tb") / NB, 1 << 40)
    big = course.notebook(course.CORRECT)
    big["cells"].append({"cell_type": "markdown", "metadata": {}, "source": "x" * (64 << 20)})
    (folder("notebook_64mb") / NB).write_text(json.dumps(big))
    for name, linked in (("linked_timestamp", "timestamp.txt"), ("linked_secret", "submission_secret.txt"),
                         ("fifo_timestamp", "timestamp.txt"), ("bad_timestamp", None), ("huge_timestamp", None)):
        f = folder(name)
        course.write_notebook(f / NB, course.CORRECT)
        honest_files(f)
        if linked:
            (f / linked).unlink()
            if name.startswith("fifo"):
                os.mkfifo(f / linked)
            else:
                (f / linked).symlink_to(secret)
    (sub / "bad_timestamp" / ID / "timestamp.txt").write_text("next tuesday, after the deadline")
    (sub / "huge_timestamp" / ID / "timestamp.txt").write_text(TIMESTAMP + " " * (1 << 20))
    course.write_notebook(folder("surrogate_message") / NB, course.with_cells(
        scale="def scale(x, a):\n    raise ValueError('no ' + chr(0xdcff) + chr(0xd800) + ' way')\n"))
    course.write_notebook(folder("surrogate_print") / NB, course.with_cells(
        count="def count(widths):\n    print(chr(0xdcff) * 5)\n    return -1\n"))
    (folder("formgrader_xss") / NB).write_text(json.dumps(xss_notebook()))
    (folder("copy_of_source") / NB).write_bytes(source.read_bytes())
    if template_db is not None:
        import shutil
        shutil.copy(template_db, cdir / "gradebook.db")
    return cdir, checks, outside


def _batch(cdir: Path, checks: Path, leftovers: Path) -> subprocess.CompletedProcess:
    """The batch CLI under tests/adversarial/reaper.py (which lists what it left running)."""
    return subprocess.run(
        [sys.executable, str(HERE / "adversarial" / "reaper.py"), str(leftovers),
         sys.executable, "-m", "autograder", "batch", "--course-dir", str(cdir), "--assignment", ID,
         "--checks-root", str(checks), "--workers", "2", "--no-progress"],
        cwd=str(ROOT), capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from nbgrader.api import Gradebook

    from autograder.gradebook import _alembic_on_path
    path = tmp_path_factory.mktemp("gb") / "gradebook.db"
    _alembic_on_path()
    Gradebook(f"sqlite:///{path}").close()
    return path


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory, template_db: Path) -> dict:
    from autograder.gradebook import default_db_url, dump_gradebook
    base = tmp_path_factory.mktemp("files")
    cdir, checks, outside = _make_course(base, template_db)
    before = {"submitted": _digest(cdir / "submitted"), "outside": _digest(outside)}
    first = _batch(cdir, checks, base / "left1.json")
    state = {"course": cdir, "outside": outside, "first": first, "before": before,
             "left": [json.loads((base / f"left{i}.json").read_text()) for i in (1,)],
             "gradebook": dump_gradebook(default_db_url(cdir), ID),
             "out": {d: _digest(cdir / d) for d in ("autograded", "feedback")}}
    state["second"] = _batch(cdir, checks, base / "left2.json")
    state["left"].append(json.loads((base / "left2.json").read_text()))
    state["gradebook2"] = dump_gradebook(default_db_url(cdir), ID)
    state["out2"] = {d: _digest(cdir / d) for d in ("autograded", "feedback")}
    state["after"] = {"submitted": _digest(cdir / "submitted"), "outside": _digest(outside)}
    return state


def _results(graded: dict, student: str) -> dict:
    path = graded["course"] / "autograded" / student / ID / "results.json"
    assert path.is_file(), f"no results for {student}:\n{graded['first'].stderr[-3000:]}"
    return json.loads(path.read_text(encoding="utf-8"))


def test_batch_completes_and_leaves_nothing_running(graded: dict) -> None:
    first = graded["first"]
    assert first.returncode == 0, first.stderr[-4000:]
    assert f"graded {len(CASES) + len(HONEST)}, skipped 0, failed 0" in first.stderr, first.stderr[-3000:]
    assert graded["left"] == [{}, {}], f"processes left running: {graded['left']}"


def test_honest_students_keep_full_marks(graded: dict) -> None:
    for name in HONEST:
        r = _results(graded, name)
        assert r["score"] == r["max_score"] == course.MAX_SCORE, r
        row = graded["gradebook"][name]
        assert {k.split("/test_")[1]: v[0] for k, v in row.items()} == pytest.approx(course.POINTS)
        fb = graded["course"] / "autograded" / name / ID     # generate_feedback copies them on
        assert (fb / "timestamp.txt").read_text() == TIMESTAMP
        assert (fb / "submission_secret.txt").read_text() == f"secret-of-{name}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_submission_scores_zero_with_reason(graded: dict, name: str) -> None:
    case = CASES[name]
    r = _results(graded, name)
    assert set(r["functions"]) == set(course.POINTS), r
    for fn, total in r["functions"].items():
        outputs = "\n".join(t["output"] for t in r["tests"] if t["function"] == fn)
        if fn in case.zero:
            assert total["score"] == 0, f"{name}: {fn} should score 0: {outputs}"
            assert case.says.lower() in outputs.lower(), f"{name}: {fn}'s reason lacks {case.says!r}:\n{outputs}"
        else:
            assert total["score"] == total["max_score"], f"{name}: {fn} should get full marks:\n{outputs}"
    row = graded["gradebook"][name]                       # the gradebook agrees
    for fn, total in r["functions"].items():
        assert row[f"{ID}/test_{fn}"][0] == pytest.approx(course.POINTS[fn] * total["score"] / total["max_score"])
    import nbformat
    copy = (graded["course"] / "autograded" / name / ID / NB).read_text(encoding="utf-8")
    cells = nbformat.reads(copy, as_version=4).cells     # the reason: under the test cells, or
    shown = "".join(o.get("text", "") for c in cells for o in c.get("outputs", []))   # the placeholder
    shown += "".join(c.source for c in cells if c.cell_type == "markdown")
    assert case.says.lower().replace("'", "&#x27;") in shown.lower() or case.says.lower() in shown.lower()
    assert "<script" not in copy.lower()                  # formgrader's copy is always rebuilt


def test_linked_and_secret_content_never_copied_out(graded: dict) -> None:
    cdir = graded["course"]
    for d in ("autograded", "feedback"):
        for p in (cdir / d).rglob("*"):
            assert not p.is_symlink(), p
            if p.is_file():
                data = p.read_bytes()
                assert SECRET.encode() not in data, f"{p} holds the root-only file's content"
                assert b"secret-of-honest_b" not in data or "honest_b" in p.parts, p
    for proc in (graded["first"], graded["second"]):
        assert SECRET not in proc.stderr + proc.stdout
    # the linked-folder students did not get the linked work recorded as theirs
    assert _results(graded, "linked_student_dir")["score"] == 0
    assert _results(graded, "linked_assignment_dir")["score"] == 0


def test_copy_of_the_source_is_flagged(graded: dict) -> None:
    lines = [ln for ln in graded["first"].stderr.splitlines() if ln.startswith("CHECK BY HAND")]
    assert any("copy_of_source" in ln and "instructor's source notebook" in ln for ln in lines), lines


def test_nothing_outside_the_course_or_under_submitted_changes(graded: dict) -> None:
    assert graded["after"] == graded["before"]


def test_rerun_changes_nothing(graded: dict) -> None:
    second = graded["second"]
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"graded 0, skipped {len(CASES) + len(HONEST)}, failed 0" in second.stderr, second.stderr[-3000:]
    assert graded["gradebook2"] == graded["gradebook"]
    assert graded["out2"] == graded["out"]


# =============================================================================================
# a submission the gradebook cannot take, and the CLI's printing
# =============================================================================================
def _small_course(tmp_path: Path, template_db: Path, students: dict) -> tuple[Path, Path]:
    checks = course.make_checks(tmp_path / "checks")
    cdir = tmp_path / "course"
    course.write_notebook(cdir / "source" / ID / NB, course.CORRECT)
    for name, cells in students.items():      # bytes names: not UTF-8
        folder = os.path.join(os.fsencode(cdir / "submitted"), os.fsencode(name), ID.encode())
        os.makedirs(folder)
        course.write_notebook(Path(os.fsdecode(folder)) / NB, cells)
    import shutil
    shutil.copy(template_db, cdir / "gradebook.db")
    return cdir, checks


def test_unusable_student_ids_are_reported_never_recorded(tmp_path: Path, template_db: Path) -> None:
    """Folder names that are not UTF-8, or that formgrader would render as HTML (its page
    template writes the student id unescaped): reported, nothing recorded, the others graded."""
    from autograder.gradebook import default_db_url, dump_gradebook
    evil = '<img src=x onerror="alert(1)">'
    cdir, checks = _small_course(tmp_path, template_db, {"honest_a": course.CORRECT, b"\xffbad\xfe": course.CORRECT,
                                                         evil: course.CORRECT})
    runs = [_batch(cdir, checks, tmp_path / f"left{i}.json") for i in (1, 2)]
    books = []
    for proc, summary in zip(runs, ("graded 1, skipped 0, failed 2", "graded 0, skipped 1, failed 2")):
        assert proc.returncode == 1, proc.stderr[-3000:]
        assert summary in proc.stderr, proc.stderr[-3000:]
        assert "\\udcffbad\\udcfe" in proc.stderr and "not UTF-8" in proc.stderr, proc.stderr[-3000:]
        assert "would put into its pages as HTML" in proc.stderr, proc.stderr[-3000:]
        books.append(dump_gradebook(default_db_url(cdir), ID))
    assert books[0] == books[1] and set(books[0]) == {"honest_a"}
    assert sorted(os.listdir(cdir / "autograded")) == ["honest_a"]


def test_crash_while_recording_costs_only_that_submission(tmp_path: Path, template_db: Path) -> None:
    """Writing one student's autograded copy fails (a folder where the file must go): that
    submission is reported with the reason and retried by the rerun; the others are recorded."""
    from autograder.gradebook import default_db_url, dump_gradebook
    cdir, checks = _small_course(tmp_path, template_db, {n: course.CORRECT for n in ("honest_a", "victim", "honest_b")})
    (cdir / "autograded" / "victim" / ID / NB).mkdir(parents=True)      # in the way
    runs = [_batch(cdir, checks, tmp_path / f"left{i}.json") for i in (1, 2)]
    books = []
    for proc, summary in zip(runs, ("graded 2, skipped 0, failed 1", "graded 0, skipped 2, failed 1")):
        assert proc.returncode == 1, proc.stderr[-3000:]
        assert summary in proc.stderr, proc.stderr[-3000:]
        assert "NOT RECORDED" in proc.stderr and "victim: recording failed" in proc.stderr, proc.stderr[-3000:]
        books.append(dump_gradebook(default_db_url(cdir), ID))
    assert books[0] == books[1] and set(books[0]) == {"honest_a", "honest_b"}
    note = json.loads((cdir / "autograded" / "victim" / ID / FAILED).read_text())
    assert "recording failed" in note["reason"] and note["score"] == course.MAX_SCORE
    assert not (cdir / "autograded" / "victim" / ID / MARKER).exists()
    (cdir / "autograded" / "victim" / ID / NB).rmdir()             # the TA fixes it: the rerun records it
    proc = _batch(cdir, checks, tmp_path / "left3.json")
    assert proc.returncode == 0 and "graded 1, skipped 2, failed 0" in proc.stderr, proc.stderr[-3000:]
    assert not (cdir / "autograded" / "victim" / ID / FAILED).exists()
    assert set(dump_gradebook(default_db_url(cdir), ID)) == {"honest_a", "honest_b", "victim"}
    for i in (1, 2, 3):
        assert json.loads((tmp_path / f"left{i}.json").read_text()) == {}


def test_cli_grade_prints_unencodable_messages_and_refuses_links(tmp_path: Path) -> None:
    checks = course.make_checks(tmp_path / "checks")
    nb = course.write_notebook(tmp_path / "s.ipynb", course.with_cells(
        scale="def scale(x, a):\n    raise ValueError('no ' + chr(0xdcff) + ' way')\n"))
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", "--assignment", ID,
                           "--checks-root", str(checks), str(nb)],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "\\udcff" in proc.stdout and f"{ID}: 6 / 8" in proc.stdout, proc.stdout
    (tmp_path / "link.ipynb").symlink_to(nb)
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", "--assignment", ID,
                           "--checks-root", str(checks), str(tmp_path / "link.ipynb"), "--json", str(out)],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["score"] == 0 and "symbolic link" in r["output"]


KILLER_CHECK = """
import os
from autograder.api import check

@check("count", points=1)
def test_count_kills_its_grader(student):
    if student.call("count", [3, 4, 2]) == 4242:   # stands for anything that kills a pool process
        os._exit(3)
"""


def test_a_dying_grader_process_costs_only_its_submission(tmp_path: Path, template_db: Path) -> None:
    from autograder.gradebook import default_db_url, dump_gradebook
    checks = course.make_checks(tmp_path / "checks")
    (checks / ID / "test_killer.py").write_text(KILLER_CHECK)
    cdir = tmp_path / "course"
    course.write_notebook(cdir / "source" / ID / NB, course.CORRECT)
    students = {"honest_a": course.CORRECT, "killer": course.with_cells(count="def count(w):\n    return 4242\n"),
                "honest_b": course.CORRECT, "honest_c": course.CORRECT}
    for name, cells in students.items():
        course.write_notebook(cdir / "submitted" / name / ID / NB, cells)
    import shutil
    shutil.copy(template_db, cdir / "gradebook.db")
    runs = [_batch(cdir, checks, tmp_path / f"left{i}.json") for i in (1, 2)]
    for proc, summary in zip(runs, ("graded 3, skipped 0, failed 1", "graded 0, skipped 3, failed 1")):
        assert proc.returncode == 1, proc.stderr[-3000:]
        assert summary in proc.stderr, proc.stderr[-3000:]
        assert "killer: the process grading this submission died" in proc.stderr, proc.stderr[-3000:]
    for i in (1, 2):
        assert json.loads((tmp_path / f"left{i}.json").read_text()) == {}
    book = dump_gradebook(default_db_url(cdir), ID)
    assert set(book) == {"honest_a", "honest_b", "honest_c"}
    for name in book:
        assert _results_in(cdir, name)["score"] == course.MAX_SCORE + 1


def _results_in(cdir: Path, student: str) -> dict:
    return json.loads((cdir / "autograded" / student / ID / "results.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("text", [
    "2026-11-30 12:00:00.000000 UTC", "2026-11-30 12:00:00 +0100", "2026-11-30 12:00:00 -0530",
    "2026-11-30 12:00:00 Europe/Berlin", "2026-11-30 12:00:00 America/New_York",
    "2026-11-30T12:00:00Z", "2026-11-30T12:00:00+02:00", "2026-11-30", "30 Nov 2026 12:00",
    "2026-11-30 12:00:00 NotAZone", "2026-11-30 12:00:00 Z", "2026-13-40 12:00:00",
    "not a time", "2026-11-30 25:00:00 UTC", "a b c d", "12:00", "1e308", "9" * 40, "2026-11-30 12:00:00 UTC x",
])
def test_timestamps_are_judged_as_nbgrader_judges_them(text: str) -> None:
    """The batch checks timestamp.txt without importing nbgrader (about 1.8 s of CPU before the first
    submission could be sent): its parser must accept and refuse exactly what nbgrader's
    ``parse_utc`` (which the gradebook applies later) accepts and refuses, with the same time."""
    from nbgrader.utils import parse_utc

    from autograder.batch import _parse_utc

    def outcome(fn):
        try:
            return ("ok", fn(text))
        except Exception as exc:  # noqa: BLE001 - dateutil raises several types
            return ("refused", type(exc).__name__)
    assert outcome(_parse_utc) == outcome(parse_utc)
