"""The student edition (DESIGN.md §6): no solution text reaches release/, graded pieces forward to
dlkit.student, nothing withheld reaches the kit (source and bytecode), packs stay outside release/.

Builds the real release once per session (nbgrader generate_assignment for every notebook, into a
temporary directory with a temporary gradebook) and inspects it.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from autograder import release
from dlkit import student
from tests import nbcontract

REPO = Path(__file__).resolve().parent.parent
ASSIGNMENTS = release.assignments()



def test_stub_rewrite_keeps_signature_and_docstring_and_drops_the_body():
    source = textwrap.dedent('''
        from dlkit._graded import graded

        class Adam:
            @graded("03_optimization", "adam_step")
            def step(self):
                """Take one step."""
                # reference comment that must not leak
                secret_value = 12345
                return secret_value

            def other(self):
                return 2

        @graded("04_initialization")
        def f(a,
              b):
            # hint
            return a * 98765 + b
        ''')
    new, names = release.stub_graded_source(source, "dlkit.fake")
    assert names == ["dlkit.fake.Adam.step", "dlkit.fake.f"]
    assert "12345" not in new and "98765" not in new and "reference comment" not in new and "hint" not in new
    assert '"""Take one step."""' in new and "def f(a,\n      b):" in new
    assert "return 2" in new  # undecorated code survives
    assert "_dlkit_resolve('03_optimization', 'adam_step')(self)" in new
    assert "_dlkit_resolve('04_initialization', 'f')(a, b)" in new


def test_withheld_definitions_and_regions_are_dropped():
    source = textwrap.dedent('''
        from dlkit._graded import withheld

        class Backend:
            def keep(self):
                return 1

            @withheld("fused")
            def fused_step(self, x):
                return x * 4242

        class Empty:
            @withheld("fused")
            def only(self):
                return 5151

        KINDS = ("a",)
        # BEGIN WITHHELD: fused kernels
        KINDS += ("fused",)
        # END WITHHELD
        ''')
    new, _ = release.stub_graded_source(source, "dlkit.fake")
    assert "4242" not in new and "5151" not in new and "fused_step" not in new and '"fused",' not in new
    ns: dict = {}
    exec(compile(new, "<kit>", "exec"), ns)
    assert ns["KINDS"] == ("a",) and ns["Backend"]().keep() == 1 and not hasattr(ns["Empty"], "only")
    with pytest.raises(ValueError, match="never closed"):
        release.strip_withheld_regions("# BEGIN WITHHELD\nx = 1\n")


def test_a_kept_class_may_not_derive_from_a_graded_one():
    source = textwrap.dedent('''
        from dlkit._graded import graded

        @graded("03_optimization")
        class Adam:
            def __init__(self, params):
                self.params = params

        class AdamW(Adam):
            pass
        ''')
    with pytest.raises(ValueError, match="AdamW derives from the graded class"):
        release.stub_graded_source(source, "dlkit.fake")


def test_graded_pieces_are_the_pieces_graded_md_lists():
    table = student.parse_graded_md((REPO / "notebooks" / "GRADED.md").read_text(encoding="utf-8"))
    pieces = release.graded_pieces()
    assert pieces, "no @graded object in dlkit"
    wrong = {q: p for q, p in pieces.items() if table.get(p[1], (None,))[0] != p[0]}
    assert not wrong, f"@graded pieces missing from GRADED.md (or under another assignment): {wrong}"
    keys = [p for p in pieces.values()]
    assert len(keys) == len(set(keys)), "two dlkit objects claim the same piece"


def test_every_graded_piece_has_an_answer_cell_so_its_pack_is_complete():
    missing = []
    for qualname, (assignment, piece) in release.graded_pieces().items():
        path = REPO / "notebooks" / assignment / f"{assignment}.ipynb"
        if not path.is_file() or piece not in student.answer_cells(student.read_notebook(path)):
            missing.append(f"{qualname} ({assignment}:{piece})")
    assert not missing, f"graded pieces without an answer cell (their pack would lack them): {missing}"


@pytest.fixture(scope="module")
def student_kit(tmp_path_factory) -> Path:
    kit = release.student_dlkit(tmp_path_factory.mktemp("kit"))
    release.kit_kernels(kit)
    return kit


def test_student_kit_leaks_nothing(student_kit):
    """The release scan over the real kit: no withheld name in source or bytecode, no reference body."""
    leaks = release.scan_kit(student_kit)
    assert not leaks, "\n".join(leaks)


def test_student_kit_has_no_fused_backend_path(student_kit):
    for rel in release.WITHHELD_FILES:
        assert not (student_kit / rel).exists()
    names = release.withheld_names()
    assert {"sgd_step", "adam_step", "softmax_cross_entropy", "softmax_xent_rows"} <= set(names)
    for path in (student_kit / "dlkit" / "backend").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert not defined & {"sgd_step", "adam_step", "softmax_cross_entropy"}, path.name


@pytest.mark.parametrize("leak", ["withheld def", "reference body", "bytecode string", "kernel", "file"])
def test_scan_kit_catches_each_kind_of_leak(tmp_path, leak):
    kit = release.student_dlkit(tmp_path)
    release.kit_kernels(kit)
    backend = kit / "dlkit" / "backend" / "numpy_backend.py"
    numpy_src = (REPO / "dlkit" / "backend" / "numpy_backend.py").read_text(encoding="utf-8")
    if leak == "withheld def":
        backend.write_text(backend.read_text() + "\n\ndef adam_step(p):\n    return p\n")
    elif leak == "reference body":  # a line of the fused Adam step, under another name
        body = [ln for ln in numpy_src.splitlines() if "denom += eps / step_size" in ln]
        assert body
        backend.write_text(backend.read_text() + "\n\ndef helper(denom, eps, step_size):\n" + body[0] + "\n")
    elif leak == "bytecode string":  # reached through getattr: only a string names it
        backend.write_text(backend.read_text() + "\n\nSTEP = 'sgd' + '_step'\nNAME = 'adam_step'\n")
    elif leak == "kernel":
        cu = kit / "kernels" / "softmax_xent.cu"
        cu.write_text(cu.read_text() + "\n// softmax_xent_rows_f32 is back\n")
    elif leak == "file":
        (kit / "kernels" / "optim.cu").write_text("// fused\n")
    leaks = release.scan_kit(kit)
    base = [ln for ln in leaks if "dlkit/ops.py" not in ln and "dlkit/optim" not in ln]
    assert base, f"{leak} not caught"


def test_student_kit_pieces_forward_and_say_which_notebook(student_kit, tmp_path):
    # Run in a fresh interpreter that sees only the student kit: every graded object is a stub,
    # and with nothing plugged, no notebook and no pack it stops naming the notebook and the piece.
    probe = textwrap.dedent("""
        import importlib, inspect, json, pkgutil, sys
        import dlkit
        assert dlkit.__file__.startswith(sys.argv[1]), dlkit.__file__
        for m in pkgutil.walk_packages(dlkit.__path__, "dlkit."):
            if "cuda" not in m.name:
                importlib.import_module(m.name)
        from dlkit import _graded, student
        out = {"pieces_from_kit": student.pieces() != {} and "_pieces" in sys.modules.get("dlkit._pieces").__name__}
        for qualname in json.loads(sys.argv[2]):
            parts = qualname.split(".")
            for cut in range(len(parts) - 1, 0, -1):
                try:
                    obj = importlib.import_module(".".join(parts[:cut]))
                    break
                except ImportError:
                    continue
            for p in parts[cut:]:
                obj = getattr(obj, p)
            fn = obj.__new__ if isinstance(obj, type) else obj
            sig = inspect.signature(fn)
            args = [None] * sum(1 for p in sig.parameters.values()
                                if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
            kwargs = {p.name: None for p in sig.parameters.values() if p.default is p.empty and p.kind is p.KEYWORD_ONLY}
            try:
                (fn(obj, *args[1:], **kwargs) if isinstance(obj, type) else fn(*args, **kwargs))
                out[qualname] = ["no error", _graded.is_kit_stub(obj)]
            except NotImplementedError as exc:
                out[qualname] = [str(exc), _graded.is_kit_stub(obj)]
        print(json.dumps(out))
        """)
    empty = tmp_path / "empty"
    empty.mkdir()
    # -S: no site.py, so the editable install's import hook cannot bring back the instructor dlkit
    path = os.pathsep.join([str(student_kit), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    expected = release.graded_pieces()
    proc = subprocess.run([sys.executable, "-S", "-c", probe, str(student_kit), json.dumps(sorted(expected))],
                          capture_output=True, text=True, cwd=empty, env={"PYTHONPATH": path, "PATH": "/usr/bin:/bin", "DLKIT_BACKEND": "numpy",
                                          "DLKIT_NOTEBOOKS": str(empty), "DLKIT_PACKS": str(empty)})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out.pop("pieces_from_kit") is True
    assert set(out) == set(expected)
    for qualname, (assignment, piece) in expected.items():
        message, is_stub = out[qualname]
        assert is_stub, qualname
        assert f"notebook {assignment} ({assignment}/{assignment}.ipynb)" in message, (qualname, message)
        assert f"answer cell {piece} " in message, (qualname, message)


def test_sandbox_kit_gets_the_packs_of_earlier_assignments_only(tmp_path):
    from autograder.harness import build_student_edition
    ids = release.assignments()
    assert len(ids) >= 2
    later = ids[1]
    kit = Path(build_student_edition(tmp_path / "k", later))
    assert sorted(p.name for p in (kit / "dlkit" / "_packs").glob("*.py")) == [f"{ids[0]}.py"]
    kit_none = Path(build_student_edition(tmp_path / "n"))
    assert not (kit_none / "dlkit" / "_packs").exists()
    # inside the sandbox (DLKIT_GRADING=1) the baked pack answers for the earlier assignment, and
    # nothing answers for the assignment being graded
    first = next(iter(student.answer_cells(student.read_notebook(REPO / "notebooks" / ids[0] / f"{ids[0]}.ipynb"))))
    own = next(iter(student.answer_cells(student.read_notebook(REPO / "notebooks" / later / f"{later}.ipynb"))))
    probe = textwrap.dedent(f"""
        import dlkit.student as s
        assert s.resolve({ids[0]!r}, {first!r}) is not None and s.where({first!r}) == "pack"
        try:
            s.resolve({later!r}, {own!r})
        except NotImplementedError as exc:
            assert "while grading" in str(exc), exc
        else:
            raise SystemExit("the graded assignment's own piece resolved")
        print("ok")
        """)
    path = os.pathsep.join([str(kit), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    proc = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": path, "PATH": "/usr/bin:/bin", "DLKIT_BACKEND": "numpy",
                               "DLKIT_NOTEBOOKS": str(REPO / "notebooks")})  # grading mode: no DLKIT_GRADING needed
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
    assert (kit / "dlkit" / "_grader_kit").is_file() and (kit_none / "dlkit" / "_grader_kit").is_file()
    assert not (release.student_dlkit(tmp_path / "s") / "dlkit" / "_grader_kit").exists()


def test_packs_hold_the_instructor_answers_without_markers(tmp_path):
    paths = release.write_packs(tmp_path, release.assignments())
    assert [p.stem for p in paths] == release.assignments()
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text and "HIDDEN TESTS" not in text
        answers = student.answer_cells(student.read_notebook(REPO / "notebooks" / path.stem / f"{path.stem}.ipynb"))
        tree = ast.parse(text)
        defined = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
        defined |= {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        assert set(answers) <= defined, (path.name, set(answers) - defined)
        assert "DLKIT_PACKS" in text and "packs/" in text  # how to publish it


@pytest.fixture(scope="module")
def built_release(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("release")
    db = f"sqlite:///{out / 'gradebook.db'}"
    try:
        return release.build_release(out / "release", db=db)
    except release.ReleaseLeak:  # the notebooks are there; test_student_kit_leaks_nothing says what leaked
        assert not (out / "release" / "kit").exists(), "a leaking kit must not stay in the release"
        return out / "release"


@pytest.mark.slow
def test_packs_are_written_beside_the_release_never_inside(built_release):
    packs = built_release.parent / "release_packs"
    assert sorted(p.stem for p in packs.glob("*.py")) == ASSIGNMENTS
    assert not list(built_release.rglob("*_packs")) and not list((built_release / "packs").glob("*.py"))
    assert (built_release / "packs" / "README.md").is_file()
    with pytest.raises(ValueError, match="must not be written inside"):
        release.build_release(built_release, packs=built_release / "packs")


@pytest.mark.slow
def test_release_has_every_assignment_and_the_kit(built_release):
    assert ASSIGNMENTS, "no notebooks found"
    for ID in ASSIGNMENTS:
        assert (built_release / ID / f"{ID}.ipynb").is_file()
    assert (built_release / "kit" / "dlkit" / "__init__.py").is_file()
    assert (built_release / "kit" / "pyproject.toml").is_file()
    makefile = (built_release / "Makefile").read_text()
    assert "lab:" in makefile and "\tjupyter" not in makefile
    # the student's `make lab` installs the locked versions, then the kit without re-resolving
    assert "pip install -q -r kit/requirements/base.lock" in makefile
    assert "pip install -q --no-deps -e ./kit" in makefile
    assert (built_release / "kit" / "requirements" / "base.lock").read_bytes() == \
        (REPO / "requirements" / "base.lock").read_bytes()
    assert sorted((built_release / "kit" / "kernels").glob("*.cu")) or not list((REPO / "kernels").glob("*.cu"))


def _region_lines(pattern, source: str) -> list[str]:
    """Distinctive lines (>= 20 characters, not comments) inside the regions ``pattern`` marks."""
    lines = []
    for region in pattern.finditer(source):
        for line in region.group(0).splitlines()[1:-1]:
            line = line.strip()
            if len(line) >= 20 and not line.startswith("#"):
                lines.append(line)
    return lines


@pytest.mark.slow
@pytest.mark.parametrize("ID", ASSIGNMENTS)
def test_no_solution_or_hidden_test_text_in_the_release(built_release, ID):
    source_nb = student.read_notebook(REPO / "notebooks" / ID / f"{ID}.ipynb")
    released_text = (built_release / ID / f"{ID}.ipynb").read_text(encoding="utf-8")
    released = json.loads(released_text)
    joined = "\n".join(("".join(c["source"]) if isinstance(c["source"], list) else c["source"])
                       for c in released["cells"])
    assert "BEGIN SOLUTION" not in joined and "BEGIN HIDDEN TESTS" not in joined
    secret = [ln for src in student.answer_cells(source_nb).values() for ln in _region_lines(nbcontract._SOLUTION, src)]
    secret += [ln for src, _ in student.test_cells(source_nb).values() for ln in _region_lines(nbcontract._HIDDEN, src)]
    # What the release should hold: every cell as it is, answers stubbed, hidden regions removed.
    expected = []
    for cell in source_nb["cells"]:
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        expected.append(nbcontract.strip_hidden_tests(nbcontract.stub_solutions(src)))
    public = "\n".join(expected)
    leaked = [ln for ln in secret if ln in joined and ln not in public]
    assert not leaked, f"{ID}: solution / hidden-test text reached the release: {leaked[:3]}"
    assert all(student.is_stub(src) for src in student.answer_cells(released).values())


@pytest.mark.slow
@pytest.mark.parametrize("ID", ASSIGNMENTS)
def test_every_test_cell_fails_on_the_release_stubs(built_release, ID):
    released = student.read_notebook(built_release / ID / f"{ID}.ipynb")
    namespace = student.answer_namespace()
    unset = set()  # names whose stub raises already when its cell runs (e.g. a constant)
    for gid, src in student.answer_cells(released).items():
        try:
            exec(compile(src, f"<{ID}:{gid}>", "exec"), namespace)
        except NotImplementedError:
            unset.add(gid)
    tests = student.test_cells(released)
    assert tests, f"{ID} has no autograded test cells"
    passed, wrong_reason = [], []
    for gid, (src, points) in tests.items():
        assert points > 0, f"{ID}:{gid} gives no points"
        try:
            exec(compile(src, f"<{ID}:{gid}>", "exec"), dict(namespace))
        except (NotImplementedError, AssertionError):
            continue
        except NameError as exc:  # only acceptable for a name the stub never defined
            if exc.name not in unset:
                wrong_reason.append(f"{gid}: {exc!r}")
            continue
        except Exception as exc:  # noqa: BLE001
            wrong_reason.append(f"{gid}: {exc!r}")
            continue
        passed.append(gid)
    assert not passed, f"{ID}: these test cells pass on the untouched stubs: {passed}"
    assert not wrong_reason, f"{ID}: test cells fail on the stubs for the wrong reason: {wrong_reason}"
