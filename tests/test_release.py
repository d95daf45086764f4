"""The student edition (DESIGN.md §6): no solution text reaches release/, graded pieces are stubs.

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

REPO = Path(__file__).resolve().parent.parent
ASSIGNMENTS = release.assignments()

# The dlkit objects notebooks/GRADED.md says students write themselves.
EXPECTED_GRADED = {
    "dlkit.optim.Momentum.step": "03_optimization",
    "dlkit.optim.Nesterov.step": "03_optimization",
    "dlkit.optim.Adam.step": "03_optimization",
    "dlkit.init.xavier_uniform": "04_initialization",
    "dlkit.init.xavier_normal": "04_initialization",
    "dlkit.init.kaiming_uniform": "04_initialization",
    "dlkit.init.kaiming_normal": "04_initialization",
}


def test_stub_rewrite_keeps_signature_and_docstring_and_drops_the_body():
    source = textwrap.dedent('''
        from dlkit._graded import graded

        class Adam:
            @graded("03_optimization")
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
    assert "12345" not in new and "98765" not in new and "reference comment" not in new
    assert '"""Take one step."""' in new and "def f(a,\n      b):" in new
    assert "return 2" in new  # undecorated code survives
    namespace: dict = {"__name__": "stubtest"}
    exec(compile(new, "<stub>", "exec"), namespace)
    with pytest.raises(NotImplementedError, match="notebooks/03_optimization"):
        namespace["Adam"]().step()
    with pytest.raises(NotImplementedError, match="dlkit.fake.f .*04_initialization"):
        namespace["f"](1, 2)


def test_graded_objects_match_the_contract():
    assert release.graded_objects() == EXPECTED_GRADED


@pytest.fixture(scope="module")
def student_kit(tmp_path_factory) -> Path:
    return release.student_dlkit(tmp_path_factory.mktemp("kit"))


def _bodies(path: Path) -> dict[str, str]:
    """Source text of each graded function body in an instructor module."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    out = {}
    for qualname, fn in release._qualified(tree):
        if release._graded_assignment(fn):
            stmts = fn.body[1:] if isinstance(fn.body[0], ast.Expr) else fn.body
            out[qualname] = "\n".join(ast.get_source_segment(source, s) for s in stmts)
    return out


def test_student_dlkit_has_no_reference_bodies(student_kit):
    # Lines of a graded body may also occur elsewhere in the module (a loop over self.params, say):
    # the edition must hold each line exactly as often as the module does outside graded bodies.
    for module in ("optim", "init"):
        original = (REPO / "dlkit" / f"{module}.py").read_text(encoding="utf-8")
        edited = (student_kit / "dlkit" / f"{module}.py").read_text(encoding="utf-8")
        bodies = _bodies(REPO / "dlkit" / f"{module}.py")
        assert bodies, f"dlkit/{module}.py has no @graded function"
        in_bodies = "\n".join(bodies.values())
        for qualname, body in bodies.items():
            for line in {ln.strip() for ln in body.splitlines()}:
                if len(line) < 12 or line.startswith("#"):
                    continue
                outside = original.count(line) - in_bodies.count(line)
                assert edited.count(line) == outside, f"reference line of {qualname} leaked: {line!r}"


def test_student_dlkit_graded_pieces_raise_naming_the_notebook(student_kit):
    # Run in a fresh interpreter that sees only the student edition of dlkit.
    probe = textwrap.dedent("""
        import json, sys
        import numpy as np
        import dlkit
        assert dlkit.__file__.startswith(sys.argv[1]), dlkit.__file__
        out = {}
        g = np.random.default_rng(0)
        calls = {
            "dlkit.init.xavier_uniform": lambda: dlkit.init.xavier_uniform(4, 3, generator=g),
            "dlkit.init.xavier_normal": lambda: dlkit.init.xavier_normal(4, 3, generator=g),
            "dlkit.init.kaiming_uniform": lambda: dlkit.init.kaiming_uniform(4, 3, generator=g),
            "dlkit.init.kaiming_normal": lambda: dlkit.init.kaiming_normal(4, 3, generator=g),
        }
        for name in ("Momentum", "Nesterov", "Adam"):
            def run(name=name):
                p = dlkit.nn.Parameter(np.ones(3))
                (p * p).sum().backward()
                getattr(dlkit.optim, name)([p], lr=0.1).step()
            calls["dlkit.optim.%s.step" % name] = run
        for key, call in calls.items():
            try:
                call()
                out[key] = "no error"
            except NotImplementedError as exc:
                out[key] = str(exc)
        # the pieces students do not write keep working
        w = dlkit.init.lecun_uniform(4, 3, generator=g)
        p = dlkit.nn.Parameter(np.ones(3)); (p * p).sum().backward()
        dlkit.optim.SGD([p], lr=0.1).step()
        out["sgd"] = p.numpy().tolist()
        print(json.dumps(out))
        """)
    # -S: no site.py, so the editable install's import hook cannot bring back the instructor dlkit
    path = os.pathsep.join([str(student_kit), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    proc = subprocess.run([sys.executable, "-S", "-c", probe, str(student_kit)], capture_output=True, text=True,
                          cwd=student_kit,
                          env={"PYTHONPATH": path, "PATH": "/usr/bin:/bin", "DLKIT_BACKEND": "numpy"})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for key, assignment in EXPECTED_GRADED.items():
        assert f"notebooks/{assignment}/{assignment}.ipynb" in out[key], (key, out[key])
    assert out["sgd"] == pytest.approx([0.8, 0.8, 0.8])


@pytest.fixture(scope="module")
def built_release(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("release")
    db = f"sqlite:///{out / 'gradebook.db'}"
    return release.build_release(out / "release", db=db)


@pytest.mark.slow
def test_release_has_every_assignment_and_the_kit(built_release):
    assert ASSIGNMENTS, "no notebooks found"
    for ID in ASSIGNMENTS:
        assert (built_release / ID / f"{ID}.ipynb").is_file()
    assert (built_release / "kit" / "dlkit" / "__init__.py").is_file()
    assert (built_release / "kit" / "pyproject.toml").is_file()
    makefile = (built_release / "Makefile").read_text()
    assert "lab:" in makefile and "pip install -q -e ./kit" in makefile and "\tjupyter" not in makefile
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
    secret = [ln for src in student.answer_cells(source_nb).values() for ln in _region_lines(student._SOLUTION, src)]
    secret += [ln for src, _ in student.test_cells(source_nb).values() for ln in _region_lines(student._HIDDEN, src)]
    # What the release should hold: every cell as it is, answers stubbed, hidden regions removed.
    expected = []
    for cell in source_nb["cells"]:
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        expected.append(student.strip_hidden_tests(student.stub_solutions(src)))
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
