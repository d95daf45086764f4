"""dlkit.student (contract A and the notebook side of contract B) on a small synthetic course.

A synthetic instructor module with a graded function, method and class is turned into its
student-kit version by the real release rewrite (``autograder.release.stub_graded_source``); a
synthetic notebook ``90_demo`` and solution packs live in temporary folders.  Nothing here depends
on the course's real notebooks.
"""
from __future__ import annotations

import ast
import inspect
import json
import linecache
import sys
import textwrap
import types
from pathlib import Path

import pytest

import dlkit
from autograder import release
from dlkit import _graded, student

ID = "90_demo"

INSTRUCTOR = textwrap.dedent('''
    """A synthetic corner of dlkit."""
    from dlkit._graded import graded


    @graded("90_demo")
    def scale(x, factor=2.0, *extra, shift=0.0, **options):
        """x * factor + shift."""
        return x * factor + shift  # reference


    class Op:
        @graded("90_demo", "op_gradient")
        def gradient(self, g, node=None):
            """The VJP."""
            return g * 31337


    class Base:
        def __init__(self, params, lr):
            self.params, self.lr = list(params), lr


    @graded("90_demo")
    class Stepper(Base):
        """Steps."""

        def __init__(self, params, lr: float = 0.1, *, beta=0.9):
            super().__init__(params, lr)
            self.beta = beta

        def step(self):
            return [p - self.lr * 27182 for p in self.params]
    ''')

TABLE = {"scale": student.Piece(ID, "numpy"), "op_gradient": student.Piece(ID, "dlkit"),
         "Stepper": student.Piece(ID, "dlkit")}

ANSWERS = {
    "scale": "def scale(x, factor=2.0, *extra, shift=0.0, **options):\n    return x * factor + shift\n",
    "op_gradient": "def op_gradient(self, g, node=None):\n    return g * 3\n",
    "Stepper": textwrap.dedent('''
        import dlkit.demo_kit

        class Stepper(dlkit.demo_kit.Base):
            def __init__(self, params, lr=0.1, *, beta=0.9):
                super().__init__(params, lr)
                self.beta = beta
                self.mine = True
        '''),
}
TESTS = {
    "scale": "assert scale(3) == 6 and scale(1, 3, shift=1) == 4\ndlkit.student.plug('scale', scale)\n",
    "op_gradient": "assert op_gradient(None, 2) == 6\ndlkit.student.plug('op_gradient', op_gradient)\n",
    "Stepper": "assert Stepper([1.0]).lr == 0.1\ndlkit.student.plug('Stepper', Stepper)\n",
}


def _cell(kind: str, gid: str, source: str) -> dict:
    info = {"grade_id": gid, "solution": kind == "answer", "grade": kind == "test", "locked": kind == "test"}
    if kind == "test":
        info["points"] = 1
    return {"cell_type": "code", "metadata": {"nbgrader": info}, "source": source, "outputs": [],
            "execution_count": None}


def write_notebook(root: Path, answers: dict[str, str], tests: dict[str, str] = TESTS) -> Path:
    cells = [{"cell_type": "markdown", "metadata": {}, "source": "# Demo"}]
    for name, src in answers.items():
        cells.append(_cell("answer", name, src))
        if name in tests:
            cells.append(_cell("test", f"test_{name}", tests[name]))
    path = root / ID / f"{ID}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def write_pack(folder: Path, answers: dict[str, str] = ANSWERS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{ID}.py"
    path.write_text("import numpy as np\nimport dlkit\n\n" + "\n\n".join(answers.values()))
    return path


@pytest.fixture()
def kit(monkeypatch, tmp_path):
    """The student-kit version of the synthetic module, importable as ``dlkit.demo_kit``; a clean
    dlkit.student (nothing plugged, empty notebooks and packs folders, not grading)."""
    source, stubbed = release.stub_graded_source(INSTRUCTOR, "dlkit.demo_kit")
    assert stubbed == ["dlkit.demo_kit.Op.gradient", "dlkit.demo_kit.Stepper", "dlkit.demo_kit.scale"]
    module = types.ModuleType("dlkit.demo_kit")
    module.__file__ = str(tmp_path / "demo_kit.py")
    (tmp_path / "demo_kit.py").write_text(source)
    monkeypatch.setitem(sys.modules, "dlkit.demo_kit", module)
    monkeypatch.setattr(dlkit, "demo_kit", module, raising=False)
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    (tmp_path / "notebooks").mkdir()
    monkeypatch.setenv("DLKIT_NOTEBOOKS", str(tmp_path / "notebooks"))
    monkeypatch.delenv("DLKIT_PACKS", raising=False)
    monkeypatch.delenv("DLKIT_GRADING", raising=False)
    monkeypatch.setattr(student, "pieces", lambda: TABLE)
    monkeypatch.setattr(student, "_plugged", {})
    monkeypatch.setattr(student, "_found", {})
    monkeypatch.setattr(student, "_packs", {})
    monkeypatch.setattr(student, "_notebook_misses", {})
    return module


def cell_function(source: str, name: str, filename: str):
    """Define ``name`` the way a notebook cell does (source registered in linecache)."""
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    ns = student.answer_namespace("dlkit")
    exec(compile(source, filename, "exec"), ns)
    return ns[name]


# -- the stubs forward ------------------------------------------------------------------------------

def test_function_stub_keeps_signature_and_docstring_and_forwards_every_kind_of_argument(kit):
    assert str(inspect.signature(kit.scale)) == "(x, factor=2.0, *extra, shift=0.0, **options)"
    assert kit.scale.__doc__ == "x * factor + shift."
    assert "31337" not in Path(kit.__file__).read_text() and "27182" not in Path(kit.__file__).read_text()
    calls = []

    def scale(*args, **kwargs):
        calls.append((args, kwargs))
        return "mine"

    student.plug("scale", scale)
    assert kit.scale(1) == "mine"
    kit.scale(1, 3, 4, 5, shift=1, z=2)
    kit.scale(x=7, factor=8)
    assert calls == [((1, 2.0), {"shift": 0.0}), ((1, 3, 4, 5), {"shift": 1, "z": 2}), ((7, 8), {"shift": 0.0})]
    assert student.where("scale") == "plugged"


def test_method_stub_passes_self(kit):
    seen = []
    student.plug("op_gradient", lambda self, g, node: seen.append((self, g, node)) or g * 3)
    op = kit.Op()
    assert op.gradient(2) == 6 and seen == [(op, 2, None)]


def test_class_stub_keeps_name_bases_docstring_and_builds_the_students_class(kit):
    assert kit.Stepper.__bases__ == (kit.Base,) and kit.Stepper.__doc__ == "Steps."
    assert _graded.is_kit_stub(kit.Stepper) and not hasattr(kit.Stepper, "step")
    assert str(inspect.signature(kit.Stepper)) == "(params, lr=0.1, *, beta=0.9)"

    class Stepper(kit.Base):
        def __init__(self, params, lr=0.1, *, beta=0.9):
            super().__init__(params, lr)
            self.beta = beta

    student.plug("Stepper", Stepper)
    s = kit.Stepper([1.0, 2.0], beta=0.5)
    assert type(s) is Stepper and (s.params, s.lr, s.beta) == ([1.0, 2.0], 0.1, 0.5)


# -- the three ways a piece is found, and the message when none works ----------------------------------

def test_nothing_done_and_no_pack_names_the_notebook_and_the_piece(kit, tmp_path):
    write_notebook(tmp_path / "notebooks", {n: student.CODE_STUB + "\n" for n in ANSWERS})
    for call in (lambda: kit.scale(1), lambda: kit.Op().gradient(1), lambda: kit.Stepper([1.0])):
        with pytest.raises(NotImplementedError) as info:
            call()
        msg = str(info.value)
        assert isinstance(info.value, student.PieceNotDone)
        assert f"{ID}/{ID}.ipynb" in msg and "not written yet" in msg and "packs" in msg
    with pytest.raises(student.PieceNotDone, match=r"op_gradient \(dlkit\.demo_kit\.Op\.gradient\)"):
        kit.Op().gradient(1)


def test_own_answer_that_passes_its_test_cell_is_used(kit, tmp_path):
    write_notebook(tmp_path / "notebooks", ANSWERS)
    assert kit.scale(5, shift=1) == 11
    assert kit.Op().gradient(2) == 6
    s = kit.Stepper([3.0], lr=0.5)
    assert s.mine and s.lr == 0.5
    assert {student.where(n) for n in ANSWERS} <= {"notebook", "plugged"}


def test_own_answer_that_fails_its_test_cell_is_not_used_and_the_message_says_why(kit, tmp_path):
    wrong = dict(ANSWERS, scale="def scale(x, factor=2.0, *extra, shift=0.0, **options):\n    return x + factor\n")
    write_notebook(tmp_path / "notebooks", wrong)
    with pytest.raises(student.PieceNotDone, match="does not pass its test cell test_scale.*AssertionError"):
        kit.scale(1)
    # ... and a published pack then stands in for it
    write_pack(tmp_path / "notebooks" / "packs")
    assert kit.scale(1) == 2 and student.where("scale") == "pack"


def test_nothing_done_but_pack_published(kit, tmp_path, monkeypatch):
    write_notebook(tmp_path / "notebooks", {n: student.CODE_STUB + "\n" for n in ANSWERS})
    write_pack(tmp_path / "packs")  # packs/ beside the notebooks folder
    assert kit.scale(2) == 4 and kit.Op().gradient(1) == 3 and kit.Stepper([1.0]).mine
    assert {student.where(n) for n in ANSWERS} == {"pack"}


def test_dlkit_packs_names_the_pack_folder(kit, tmp_path, monkeypatch):
    write_pack(tmp_path / "elsewhere")
    monkeypatch.setenv("DLKIT_PACKS", str(tmp_path / "elsewhere"))
    assert kit.scale(2) == 4


def test_own_passing_piece_wins_over_the_pack(kit, tmp_path):
    write_notebook(tmp_path / "notebooks", ANSWERS)
    write_pack(tmp_path / "packs", dict(ANSWERS, scale="def scale(x, *a, **k):\n    return 'pack'\n"))
    assert kit.scale(2) == 4 and student.where("scale") in ("notebook", "plugged")


def test_load_still_returns_the_students_own_piece(kit, tmp_path):
    write_notebook(tmp_path / "notebooks", ANSWERS)
    scale = student.load(ID, "scale")
    assert scale(2) == 4 and not hasattr(scale, "__dlkit_student_piece__")


# -- grading mode --------------------------------------------------------------------------------------

def test_grading_mode_uses_only_plugged_pieces_and_the_given_packs(kit, tmp_path, monkeypatch):
    write_notebook(tmp_path / "notebooks", ANSWERS)   # passing, but the notebook does not count
    write_pack(tmp_path / "notebooks" / "packs")      # nor does a pack the harness did not provide
    monkeypatch.setenv("DLKIT_GRADING", "1")
    with pytest.raises(student.PieceNotDone, match="not available while grading"):
        kit.scale(1)
    write_pack(tmp_path / "earlier")
    monkeypatch.setenv("DLKIT_PACKS", str(tmp_path / "earlier"))
    assert kit.scale(1) == 2 and student.where("scale") == "pack"
    student.plug("op_gradient", lambda self, g, node: "driver")
    assert kit.Op().gradient(1) == "driver"


def test_grading_mode_finds_packs_baked_into_the_kit(kit, tmp_path, monkeypatch):
    baked = Path(student.__file__).resolve().parent / "_packs"
    assert not baked.exists(), "the instructor dlkit must not hold baked packs"
    assert not student._GRADER_KIT and not (baked.parent / "_grader_kit").exists()
    monkeypatch.setenv("DLKIT_GRADING", "1")
    monkeypatch.setattr(student, "__file__", str(tmp_path / "kitcopy" / "dlkit" / "student.py"))
    write_pack(tmp_path / "kitcopy" / "dlkit" / "_packs")
    assert kit.scale(3) == 6


# -- self-resolution -------------------------------------------------------------------------------------

def test_the_kit_stub_itself_cannot_be_plugged(kit):
    for name, obj in (("scale", kit.scale), ("op_gradient", kit.Op.gradient), ("Stepper", kit.Stepper)):
        with pytest.raises(student.SelfResolutionError, match="resolves to itself"):
            student.plug(name, obj)


def test_a_piece_that_calls_its_own_stub_fails_clearly_instead_of_recursing(kit):
    student.plug("scale", lambda x, *a, **k: kit.scale(x, *a, **k))
    with pytest.raises(student.SelfResolutionError, match="reaches itself"):
        kit.scale(1)


def test_a_class_derived_from_its_own_stub_fails_clearly(kit):
    class Stepper(kit.Stepper):
        pass

    with pytest.raises(student.SelfResolutionError, match="derives from"):
        student.plug("Stepper", Stepper)
    with pytest.raises(student.SelfResolutionError, match="forwards to itself"):
        Stepper([1.0])


def test_a_class_whose_constructor_builds_its_own_stub_fails_clearly(kit):
    class Stepper(kit.Base):
        def __init__(self, params, lr=0.1, *, beta=0.9):
            self.inner = kit.Stepper(params, lr, beta=beta)

    student.plug("Stepper", Stepper)
    with pytest.raises(student.SelfResolutionError):
        kit.Stepper([1.0])


def test_an_answer_cell_that_aliases_the_stub_does_not_count(kit, tmp_path):
    write_notebook(tmp_path / "notebooks", dict(ANSWERS, scale="import dlkit.demo_kit\nscale = dlkit.demo_kit.scale\n"))
    with pytest.raises(student.PieceNotDone, match="resolves to itself|SelfResolution"):
        kit.scale(1)


def test_the_instructors_own_piece_cannot_be_plugged_either():
    import importlib
    from autograder.release import graded_pieces
    qualname, (_, piece) = next(iter(graded_pieces().items()))
    module, attr = qualname.rsplit(".", 1)
    owner = None
    for cut in range(module.count(".") + 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(qualname.split(".")[:cut]))
            rest = qualname.split(".")[cut:]
            break
        except ModuleNotFoundError:
            continue
    obj = owner
    for part in rest:
        obj = getattr(obj, part)
    with pytest.raises(student.SelfResolutionError):
        student._check_not_library(piece, obj)


# -- import policies ---------------------------------------------------------------------------------------

def test_policies_is_a_plain_dict_literal_and_numpy_is_a_subset_of_dlkit():
    tree = ast.parse(Path(student.__file__).read_text(encoding="utf-8"))
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "POLICIES")
    assert ast.literal_eval(node.value) == student.POLICIES
    assert set(student.POLICIES) == {"numpy", "dlkit"}
    assert set(student.POLICIES["numpy"]) | {"dlkit"} == set(student.POLICIES["dlkit"])
    assert "scipy" not in student.POLICIES["dlkit"] and "sklearn" not in student.POLICIES["dlkit"]


def test_plug_reports_a_forbidden_import_before_submitting(kit):
    src = "import numpy as np\nfrom scipy.special import logsumexp\n\ndef scale(x, *a, **k):\n    return x\n"
    fn = cell_function(src, "scale", "<cell scipy>")
    with pytest.raises(student.ImportPolicyError) as info:
        student.plug("scale", fn)
    msg = str(info.value)
    assert "scale may import only numpy, math" in msg and "imports policy `numpy`" in msg
    assert "GRADED.md" in msg and msg.endswith("it imported scipy.special")
    assert student.where("scale") is None


@pytest.mark.parametrize("src, bad", [
    ("import dlkit\ndef scale(x):\n    return dlkit.tensor(x)\n", "dlkit"),
    ("def scale(x):\n    return dlkit.tensor(x)\n", "uses dlkit"),
    ("import sklearn\ndef scale(x):\n    return x\n", "sklearn"),
    ("def scale(x):\n    import torch\n    return x\n", "torch"),
    ("def scale(x):\n    return __import__('scipy').x\n", "scipy"),
    ("def scale(x):\n    from . import helpers\n    return x\n", "."),
])
def test_numpy_policy_forbids(kit, src, bad):
    fn = cell_function(src, "scale", f"<cell {bad}>")
    with pytest.raises(student.ImportPolicyError, match=bad.replace(".", r"\.")):
        student.plug("scale", fn)


@pytest.mark.parametrize("name, src", [
    ("scale", "from __future__ import annotations\nimport math, functools, itertools\nfrom collections import deque\n"
              "import numpy.linalg as la\ndef scale(x, *a, **k):\n    return x\n"),
    ("op_gradient", "import dlkit.ops\nfrom dlkit import autograd\nimport numpy as np\n"
                    "def op_gradient(self, g, node=None):\n    return g\n"),
])
def test_allowed_imports_pass(kit, name, src):
    student.plug(name, cell_function(src, name, f"<cell ok {name}>"))
    assert student.where(name) == "plugged"


def test_policy_of_a_class_is_checked_on_its_cell(kit):
    src = "class Stepper(dlkit.demo_kit.Base):\n    def step(self):\n        import pandas\n        return 1\n"
    cls = cell_function(src, "Stepper", "<cell class>")
    with pytest.raises(student.ImportPolicyError, match="policy `dlkit`.*pandas"):
        student.plug("Stepper", cls)


def test_plug_rejects_unknown_pieces(kit):
    with pytest.raises(ValueError, match="not a graded piece"):
        student.plug("nonsense", lambda: 1)


# -- GRADED.md -----------------------------------------------------------------------------------------------

def test_graded_md_gives_every_piece_one_known_policy():
    text = (Path(__file__).resolve().parents[1] / "notebooks" / "GRADED.md").read_text(encoding="utf-8")
    table = student.parse_graded_md(text)
    assert len(table) >= 20
    assert {p.policy for p in table.values()} <= set(student.POLICIES)
    header = next(ln for ln in text.splitlines() if ln.startswith("| assignment |"))
    assert "| imports |" in header


def test_parse_graded_md_refuses_unknown_policies_and_duplicate_names():
    head = "| assignment | name | imports |\n|---|---|---|\n"
    with pytest.raises(ValueError, match="policy 'scipy'"):
        student.parse_graded_md(head + "| 00_x | `f` | scipy |\n")
    with pytest.raises(ValueError, match="appears twice"):
        student.parse_graded_md(head + "| 00_x | `f` | numpy |\n| 01_y | `f` | dlkit |\n")
    assert student.parse_graded_md(head + "| 00_x | `f` | numpy |\n| | `g` | `dlkit` |\n") == {
        "f": student.Piece("00_x", "numpy"), "g": student.Piece("00_x", "dlkit")}


def test_graded_marks_functions_methods_and_classes():
    @_graded.graded("91_x")
    def f():
        pass

    class C:
        @_graded.graded("91_x", "c_method")
        def m(self):
            pass

    @_graded.graded("91_x")
    class K:
        pass

    assert (f.__dlkit_graded__, f.__dlkit_piece__) == ("91_x", "f")
    assert (C.m.__dlkit_piece__, K.__dlkit_piece__) == ("c_method", "K")
    assert _graded.PIECES[("91_x", "c_method")].endswith("C.m")
    assert _graded.is_graded(K) and not _graded.is_graded(type("Sub", (K,), {}))
    with pytest.raises(TypeError):
        _graded.graded("91_x", "not an identifier")
    assert dlkit.student is student


def test_a_test_cell_that_needs_another_unfinished_piece_says_so(kit, tmp_path):
    tests = dict(TESTS, scale="import dlkit.demo_kit\nassert dlkit.demo_kit.Op().gradient(2) == 6\n"
                              "assert scale(3) == 6\ndlkit.student.plug('scale', scale)\n")
    write_notebook(tmp_path / "notebooks", dict(ANSWERS, op_gradient=student.CODE_STUB + "\n"), tests)
    with pytest.raises(student.PieceNotDone, match="test_scale .* needs op_gradient of 90_demo first") as info:
        kit.scale(1)
    assert (info.value.assignment, info.value.piece) == (ID, "scale")
