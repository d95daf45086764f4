"""No hidden check gives points for an answer that does nothing (issue 10, item 1).

For EVERY check of EVERY assignment in ``autograder/<ID>/``, answers that do nothing, return the
wrong kind of thing, or hand back their input must score 0 on that check.  The answers are made
from the known-good submission's own cell for the piece (its signature, its class and methods),
so the test follows whatever checks and pieces exist:

* functions: ``return None`` / ``[]`` / ``()`` / ``0``; each argument returned unchanged; all
  arguments returned as a tuple; a one-element list; an array of an unrelated shape; an empty
  array; zeros shaped like the first argument; ``raise ValueError`` for every input; the right
  answer with its last element dropped or one added (wrong length; other results become None);
* classes (optimizers, modules): an empty subclass; every method, ``__init__`` included, doing
  nothing; ``step`` doing nothing or returning its argument; an ``__init__`` that empties the
  parameter list it was given (and its own ``params`` / ``state``) after setting up;
* constants (e.g. a kernel source string): ``""``, ``0``, ``[]``, and for C-like source the same
  signature with an empty body;
* and for every piece, the name bound to ``None`` (wrong type).

All of these must score 0 on every check of their piece.  Variants that break one method of an
otherwise working class ("partial": ``forward`` doing nothing or returning its input, a ``step``
that leaves out one parameter) must lose points, since a check of the constructor alone may rightly
pass when ``forward`` does nothing.

A weakness found later is listed in ``KNOWN_WEAK`` and runs as ``xfail(strict=True)`` naming the
check, so the list cannot outlive the fix (it is empty today).

The file also grades, for assignments whose ``tests/mutants/<ID>.py`` defines them,

* ``CORRECT`` (``{piece: {description: source}}``): correct answers written differently, which
  must keep full marks and keep to their import policy;
* ``POLICY_SHORTCUTS``: answers that hand the work to something their import policy (GRADED.md,
  contract B) does not allow, e.g. ``unbroadcast`` through dlkit's autodiff or
  ``count_parameters`` through ``nn.MLP``: ``dlkit.student.check_imports`` flags them, and run
  under the policy they score 0 (while with dlkit at hand they would get full marks).

Checks run in process, as in tests/test_autograder_checks.py (answer cells exec'd in a namespace,
arguments and results copied as plain data), here with each piece's import policy applied (a
``numpy`` cell gets no ``dlkit`` and an ``__import__`` limited to the policy).  Through the real
sandboxed harness (``*_in_the_sandbox``): the policy shortcuts, answers that modify their inputs
in place, and for 00 / 02 / 07 the correct variants and a sample of the do-nothing answers.
"""
from __future__ import annotations

import ast
import builtins
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("DLKIT_BACKEND", "numpy")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from autograder.api import CheckFailure, StudentError  # noqa: E402
from tests.mutants import ASSIGNMENTS, load_mutants  # noqa: E402
from tests.test_autograder_checks import LocalStudent, base_answers, load_checks  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


# ---------------------------------------------------------------------------------------------
# Import policies (contract B), applied in process
# ---------------------------------------------------------------------------------------------
def _policies() -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """``(POLICIES, {piece name: policy})`` from dlkit.student, or empty when it has none yet."""
    try:
        from dlkit import student
        return dict(student.POLICIES), {n: p.policy for n, p in student.pieces().items()}
    except (ImportError, AttributeError):
        return {}, {}


POLICIES, PIECE_POLICY = _policies()


def _restricted_builtins(allowed: tuple[str, ...]) -> dict[str, Any]:
    real_import = builtins.__import__

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        top = name.split(".")[0]
        if level or top not in allowed:
            raise ImportError(f"may import only {', '.join(allowed)} (import policy); it imported {name}")
        return real_import(name, globals, locals, fromlist, level)

    table = dict(vars(builtins))
    table["__import__"] = guarded_import
    return table


class PolicyStudent(LocalStudent):
    """LocalStudent whose cells run under their pieces' import policy (when GRADED.md has one):
    ``numpy`` cells get no ``dlkit`` and an ``__import__`` limited to the policy's modules."""

    def __init__(self, cells: dict[str, str]):
        policies = {PIECE_POLICY.get(gid) for gid in cells} - {None}
        self.policy = "dlkit" if "dlkit" in policies or not POLICIES else (policies.pop() if policies else "dlkit")
        super().__init__({})
        if self.policy != "dlkit":
            from dlkit.student import answer_namespace
            self._ns = answer_namespace(self.policy)
            self._ns["__builtins__"] = _restricted_builtins(POLICIES[self.policy])
        self._error = None
        for gid, src in cells.items():
            try:
                exec(compile(src, f"<answer {gid}>", "exec"), self._ns)
            except Exception as exc:  # noqa: BLE001 - a broken cell is the submission's problem
                self._error = f"{type(exc).__name__}: {exc}"


def grade_piece(assignment: str, cells: dict[str, str], name: str) -> dict[str, str | None]:
    """``{check name: None if it passed, else why it failed}`` for the checks of piece ``name``."""
    student = PolicyStudent(cells)
    out: dict[str, str | None] = {}
    for qualname, fn, info in load_checks(assignment):
        if info.function != name:
            continue
        try:
            fn(student)
        except (CheckFailure, StudentError) as exc:
            out[qualname] = str(exc)[:300] or type(exc).__name__
        except Exception as exc:  # noqa: BLE001 - an internal error of a check scores 0 too
            out[qualname] = f"internal error {type(exc).__name__}: {exc}"[:300]
        else:
            out[qualname] = None
    return out


# ---------------------------------------------------------------------------------------------
# Do-nothing answers, made from the known-good cell of each piece
# ---------------------------------------------------------------------------------------------
def _definition(source: str, name: str) -> ast.stmt | None:
    """The last top-level statement of ``source`` that defines ``name``."""
    found = None
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            found = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                found = node
    return found


def _params(fn: ast.FunctionDef) -> list[str]:
    a = fn.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
    return [n for n in names if n not in ("self", "cls")]


def _with_body(fn: ast.FunctionDef, body_src: str) -> ast.FunctionDef:
    new = ast.FunctionDef(name=fn.name, args=fn.args, body=ast.parse(body_src).body, decorator_list=[],
                          returns=None, type_params=[]) if sys.version_info >= (3, 12) else \
        ast.FunctionDef(name=fn.name, args=fn.args, body=ast.parse(body_src).body, decorator_list=[],
                        returns=None)
    return ast.fix_missing_locations(new)


def _function_variants(fn: ast.FunctionDef) -> dict[str, str]:
    params = _params(fn)
    bodies = {"returns None": "return None", "returns []": "return []", "returns ()": "return ()",
              "returns 0": "return 0",
              "returns an array of an unrelated shape": "return np.zeros((3, 5, 2))",
              "returns an empty array": "return np.zeros(0)",
              "raises ValueError for every input": "raise ValueError(f'invalid arguments {locals()}')"}
    for p in params:
        bodies[f"returns its argument {p} unchanged"] = f"return {p}"
    if params:
        bodies["returns a one-element list (wrong length)"] = f"return [{params[0]}]"
        bodies[f"returns zeros shaped like {params[0]}"] = (
            f"return np.zeros_like(np.asarray({params[0]}, dtype=float))")
    if len(params) > 1:
        bodies["returns all its arguments as a tuple"] = f"return ({', '.join(params)},)"
    return {d: ast.unparse(_with_body(fn, b)) for d, b in bodies.items()}


def _class_variants(cls: ast.ClassDef) -> dict[str, tuple[str, str | None]]:
    """``{description: (source, scope)}`` (see :func:`variant_scope`).  An optimizer whose step does
    nothing, or whose parameter list is emptied, is a do-nothing answer: every check scores 0."""
    methods = [n for n in cls.body if isinstance(n, ast.FunctionDef) and not n.decorator_list]
    out: dict[str, tuple[str, str | None]] = {}

    def render(body: list[ast.stmt]) -> str:
        new = ast.ClassDef(name=cls.name, bases=cls.bases, keywords=cls.keywords, body=body or [ast.Pass()],
                           decorator_list=[], **({"type_params": []} if sys.version_info >= (3, 12) else {}))
        return ast.unparse(ast.fix_missing_locations(new))

    out["an empty subclass (nothing implemented)"] = (render([ast.Pass()]), None)
    if methods:
        body = [_with_body(n, "pass" if n.name == "__init__" else "return None") if n in methods else n
                for n in cls.body if not isinstance(n, ast.Expr)]
        out["every method, __init__ included, does nothing"] = (render(body), None)
    for m in methods:
        if m.name == "__init__":
            continue
        ps = _params(m)
        variants = {f"{m.name} does nothing": "return None"}
        if ps and not m.name.startswith("_"):
            variants[f"{m.name} returns its argument {ps[0]} unchanged"] = f"return {ps[0]}"
        for d, b in variants.items():
            out[d] = (render([_with_body(n, b) if n is m else n for n in cls.body]),
                      None if m.name == "step" else "partial")
    for m in methods:
        if m.name != "__init__" or "params" not in _params(m):
            continue
        clear = ("\nif isinstance(params, list):\n    params.clear()"
                 "\nif isinstance(getattr(self, 'params', None), list):\n    self.params.clear()"
                 "\nif isinstance(getattr(self, 'state', None), list):\n    self.state.clear()")
        new_init = ast.fix_missing_locations(ast.FunctionDef(
            name=m.name, args=m.args, body=list(m.body) + ast.parse(clear).body, decorator_list=m.decorator_list,
            returns=m.returns, **({"type_params": []} if sys.version_info >= (3, 12) else {})))
        out["__init__ empties the parameter list it was given"] = (
            render([new_init if n is m else n for n in cls.body]), None)
    return out


def _constant_variants(node: ast.stmt, name: str) -> dict[str, str]:
    out = {"bound to an empty string": f"{name} = ''", "bound to 0": f"{name} = 0",
           "bound to []": f"{name} = []"}
    try:
        value = ast.literal_eval(node.value)
    except (ValueError, TypeError, SyntaxError):
        value = None
    if isinstance(value, str) and "{" in value and "}" in value:
        out["the same C signature with an empty body"] = f"{name} = {value[:value.index('{')] + '{ }'!r}"
    return out


_WRAPPED = {
    "drops the last element of its result (wrong length; other results: None)": '''
def {name}(*args, **kwargs):
    r = _good_{name}(*args, **kwargs)
    if type(r) in (list, tuple):
        return type(r)(list(r)[:-1])
    if type(r) is np.ndarray and r.ndim:
        return r[:-1]
    return None
''',
    "adds an extra element to its result (wrong length; other results: None)": '''
def {name}(*args, **kwargs):
    r = _good_{name}(*args, **kwargs)
    if type(r) in (list, tuple) and len(r):
        return type(r)(list(r) + [r[-1]])
    if type(r) is np.ndarray and r.ndim and len(r):
        return np.concatenate([r, r[-1:]])
    return None
''',
}

_STEP_SKIPS_ONE = '''
_good_step_{name} = {name}.step

def _step_skipping_one(self, *args, **kwargs):
    skipped = next((p for p in self.params if getattr(p, "grad", None) is not None), None)
    if skipped is None:
        return _good_step_{name}(self, *args, **kwargs)
    grad, skipped.grad = skipped.grad, None
    try:
        return _good_step_{name}(self, *args, **kwargs)
    finally:
        skipped.grad = grad

{name}.step = _step_skipping_one
'''


def _variants(source: str, name: str) -> dict[str, tuple[str, str | None]]:
    node = _definition(source, name)
    out: dict[str, tuple[str, str | None]] = {}
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        out = {d: (src, None) for d, src in _function_variants(node).items()}
        for description, wrapper in _WRAPPED.items():
            out[description] = (f"{source}\n_good_{name} = {name}\n{wrapper.format(name=name)}", None)
    elif isinstance(node, ast.ClassDef):
        out = _class_variants(node)
        if any(isinstance(m, ast.FunctionDef) and m.name == "step" for m in node.body):
            out["step leaves out the first parameter that has a gradient (one update too few)"] = (
                source + _STEP_SKIPS_ONE.format(name=name), "partial")
    elif node is not None:
        out = {d: (src, None) for d, src in _constant_variants(node, name).items()}
    out["the name is bound to None (not what the contract asks for)"] = (f"{name} = None", None)
    return out


def do_nothing_variants(source: str, name: str) -> dict[str, str]:
    """``{description: replacement cell source}`` of do-nothing answers for piece ``name``."""
    return {d: src for d, (src, _) in _variants(source, name).items()}


def variant_scope(source: str, name: str, description: str) -> str | None:
    """None: every check of the piece must score 0 on the variant; "partial": the variant breaks one
    method of a class that otherwise works, so the piece must lose points (a check of the
    constructor alone may rightly pass when forward does nothing)."""
    return _variants(source, name)[description][1]


def _graded(assignment: str) -> list[str]:
    names: list[str] = []
    for _, _, info in load_checks(assignment):
        if info.function not in names:
            names.append(info.function)
    return names


#: (assignment, piece, description) -> why a do-nothing answer still scores.  Empty: every check
#: scores 0 on every do-nothing answer; a weakness found later is listed here as xfail(strict=True)
#: naming the check, so it cannot be forgotten once fixed.
KNOWN_WEAK: dict[tuple[str, str, str], str] = {}


def _cases() -> list[Any]:
    cases = []
    for assignment in ASSIGNMENTS:
        base = base_answers(assignment)
        for name in _graded(assignment):
            source = base.get(name)
            if source is None:
                continue
            for description in do_nothing_variants(source, name):
                why = KNOWN_WEAK.get((assignment, name, description))
                marks = [pytest.mark.xfail(reason=f"{assignment}: {why}", strict=True)] if why else []
                cases.append(pytest.param(assignment, name, description, marks=marks,
                                          id=f"{assignment}-{name}-{description}"))
    return cases


@pytest.mark.parametrize("assignment,name,description", _cases())
def test_do_nothing_answer_scores_zero_on_every_check(assignment, name, description):
    """Every check of the piece scores 0; a variant that breaks one method of an otherwise working
    class ("partial") must at least lose points."""
    base = base_answers(assignment)
    cells = dict(base)
    cells[name] = do_nothing_variants(base[name], name)[description]
    result = grade_piece(assignment, cells, name)
    assert result, f"{assignment}: no check for {name}"
    passed = [check for check, why in result.items() if why is None]
    if variant_scope(base[name], name, description) == "partial":
        assert len(passed) < len(result), (f"{assignment}/{name} with {description} keeps full marks:\n"
                                           f"{cells[name]}")
    else:
        assert not passed, (f"{assignment}/{name} answered by a do-nothing variant ({description}) still passes "
                            f"{passed}:\n{cells[name]}")


def test_variants_cover_every_kind_of_piece():
    """The generator itself: functions, methods, classes and constants all get variants."""
    fn = do_nothing_variants("def f(x, y=1):\n    return x + y\n", "f")
    assert "returns its argument x unchanged" in fn and "returns all its arguments as a tuple" in fn
    cls = do_nothing_variants(
        "class Opt(dlkit.optim.Optimizer):\n    def __init__(self, params, lr=0.1):\n"
        "        super().__init__(params, lr=lr)\n    def step(self):\n        pass\n", "Opt")
    assert {"step does nothing", "__init__ empties the parameter list it was given",
            "an empty subclass (nothing implemented)", "every method, __init__ included, does nothing"} <= set(cls)
    module = "class M:\n    def __init__(self, n):\n        self.n = n\n    def forward(self, x):\n        return x\n"
    assert variant_scope(module, "M", "forward does nothing") == "partial"
    assert "__init__ empties the parameter list it was given" not in do_nothing_variants(module, "M")
    assert variant_scope(module, "M", "every method, __init__ included, does nothing") is None
    assert "params.clear()" in cls["__init__ empties the parameter list it was given"]
    const = do_nothing_variants('K = "extern \\"C\\" __global__ void k(int n) { n; }"\n', "K")
    assert "the same C signature with an empty body" in const
    for src in list(fn.values()) + list(cls.values()) + list(const.values()):
        compile(src, "<variant>", "exec")


# ---------------------------------------------------------------------------------------------
# Correct variants keep full marks; shortcuts through forbidden imports score 0
# ---------------------------------------------------------------------------------------------
def _extra(kind: str) -> list[Any]:
    """Cases of ``kind`` (``{piece: {description: source}}``) in every tests/mutants/<ID>.py."""
    out = []
    for assignment in ASSIGNMENTS:
        module = __import__(f"tests.mutants.{assignment}", fromlist=[kind])
        for name, variants in getattr(module, kind, {}).items():
            if not isinstance(variants, dict):
                continue    # another layout (e.g. {piece: source}), graded by that assignment's own tests
            for description in variants:
                out.append(pytest.param(assignment, name, description, id=f"{assignment}-{name}-{description}"))
    return out


def _extra_source(kind: str, assignment: str, name: str, description: str) -> str:
    module = __import__(f"tests.mutants.{assignment}", fromlist=[kind])
    return getattr(module, kind)[name][description]


@pytest.mark.parametrize("assignment,name,description", _extra("CORRECT"))
def test_correct_variant_keeps_full_marks(assignment, name, description):
    cells = dict(base_answers(assignment))
    cells[name] = _extra_source("CORRECT", assignment, name, description)
    if POLICIES:
        from dlkit.student import check_imports
        assert not check_imports(name, cells[name]), check_imports(name, cells[name])
    result = grade_piece(assignment, cells, name)
    failed = {check: why for check, why in result.items() if why is not None}
    assert result and not failed, failed


@pytest.mark.parametrize("assignment,name,description", _extra("POLICY_SHORTCUTS"))
def test_shortcut_scores_zero(assignment, name, description):
    if not POLICIES:
        pytest.skip("dlkit.student has no POLICIES (contract B) yet")
    from dlkit.student import check_imports
    source = _extra_source("POLICY_SHORTCUTS", assignment, name, description)
    assert PIECE_POLICY.get(name) == "numpy", f"{assignment}/{name} should have import policy numpy in GRADED.md"
    assert check_imports(name, source), f"the import policy check does not flag {description}"
    cells = dict(base_answers(assignment))
    cells[name] = source
    result = grade_piece(assignment, cells, name)
    passed = [check for check, why in result.items() if why is None]
    assert result and not passed, f"shortcut {description} passes {passed}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_shortcuts_work_without_the_policy(assignment):
    """A shortcut is a real one: with dlkit available (no policy) it gets full marks, so the
    0 above comes from the policy, not from a broken shortcut."""
    module = __import__(f"tests.mutants.{assignment}", fromlist=["POLICY_SHORTCUTS"])
    shortcuts = getattr(module, "POLICY_SHORTCUTS", {})
    if not shortcuts:
        pytest.skip(f"{assignment} lists no shortcuts")
    for name, variants in shortcuts.items():
        for description, source in variants.items():
            cells = dict(base_answers(assignment))
            cells[name] = source
            student = LocalStudent(cells)
            for qualname, fn, info in load_checks(assignment):
                if info.function == name:
                    try:
                        fn(student)
                    except (CheckFailure, StudentError) as exc:
                        pytest.fail(f"shortcut {name}: {description} fails {qualname} even with dlkit: {exc}")


# ---------------------------------------------------------------------------------------------
# The same shortcuts through the real, sandboxed harness (its per-cell import policies)
# ---------------------------------------------------------------------------------------------
def _shortcut_submissions() -> list[Any]:
    """Per assignment, submissions that each replace several pieces by a shortcut (round robin)."""
    out = []
    for assignment in ASSIGNMENTS:
        module = __import__(f"tests.mutants.{assignment}", fromlist=["POLICY_SHORTCUTS"])
        shortcuts = getattr(module, "POLICY_SHORTCUTS", {})
        rounds = max((len(v) for v in shortcuts.values()), default=0)
        for i in range(rounds):
            picked = {name: list(v.items())[i] for name, v in shortcuts.items() if i < len(v)}
            out.append(pytest.param(assignment, picked, id=f"{assignment}-{i}"))
    return out


# the grader's kit per assignment (student edition + earlier packs): one fixture, one home
from tests.test_autograder_checks import student_edition  # noqa: E402,F401


@pytest.mark.parametrize("assignment,picked", _shortcut_submissions())
def test_shortcuts_score_zero_in_the_sandbox(assignment, picked, tmp_path, student_edition):
    from autograder import harness
    from tests.test_autograder_checks import write_notebook
    cells = dict(base_answers(assignment))
    for name, (_, source) in picked.items():
        cells[name] = source
    path = write_notebook(cells, tmp_path / f"{assignment}.ipynb")
    result = harness.grade_notebook(assignment, path, student_dlkit=student_edition(assignment),
                                    in_process=False)
    for name, (description, _) in picked.items():
        f = result["functions"][name]
        assert f["max_score"] > 0 and f["score"] == 0, f"{assignment}/{name}: shortcut {description} scored {f}"
    others = {n: f for n, f in result["functions"].items() if n not in picked and f["score"] != f["max_score"]}
    assert not others, f"pieces answered correctly lost points beside the shortcuts: {others}"


def _in_place_submissions() -> list[Any]:
    """Per assignment, one submission holding, for each piece, its first mutant whose description
    says it changes its input in place or the caller's list (right values, but a side effect)."""
    out = []
    for assignment in ASSIGNMENTS:
        picked = {}
        for name, variants in load_mutants(assignment).items():
            for description, source in variants.items():
                if "in place" in description or "caller's" in description:
                    picked[name] = (description, source)
                    break
        if picked:
            out.append(pytest.param(assignment, picked, id=assignment))
    return out


@pytest.mark.parametrize("assignment,picked", _in_place_submissions())
def test_in_place_answers_lose_points_in_the_sandbox(assignment, picked, tmp_path, student_edition):
    """Inputs modified in place are caught through the real transport too (the arguments the
    student's code got come back from the sandbox and are compared with the grader's copies)."""
    from autograder import harness
    from tests.test_autograder_checks import write_notebook
    cells = dict(base_answers(assignment))
    for name, (_, source) in picked.items():
        cells[name] = source
    path = write_notebook(cells, tmp_path / f"{assignment}.ipynb")
    result = harness.grade_notebook(assignment, path, student_dlkit=student_edition(assignment),
                                    in_process=False)
    survivors = [f"{name}: {description}" for name, (description, _) in picked.items()
                 if result["functions"][name]["score"] >= result["functions"][name]["max_score"]]
    assert not survivors, survivors


@pytest.mark.parametrize("assignment", ["00_arrays_broadcasting", "02_fully_connected", "07_putting_together"])
def test_hints_never_name_a_mistake_that_is_the_right_answer(assignment):
    """``known_mistake`` of these checks: a variant equal to the expected result (within the
    check's tolerance) is never named, an ambiguous match names nothing, a unique one is named."""
    from tests.test_autograder_checks import _load_module
    module = _load_module(ROOT / "autograder" / assignment / "test_checks.py",
                          f"_hidden_checks_{assignment}_test_checks")
    known_mistake = module.known_mistake
    want = np.array([1.0, 2.0, 3.0])
    near = want + 1e-12
    assert known_mistake(near, want, {"equals the answer here": lambda: want}, rtol=1e-9, atol=1e-9) is None
    wrong = np.array([1.0, 2.0, 4.0])
    assert known_mistake(wrong, want, {"a": wrong, "b": lambda: wrong.copy()}, rtol=1e-9, atol=1e-9) is None
    assert known_mistake(wrong, want, {"a": wrong, "c": lambda: 1 / 0, "d": want}, rtol=0, atol=0) == "a"
    assert known_mistake([1.0], want, {"a": wrong}, rtol=0, atol=0) is None


#: Assignments whose CORRECT and do-nothing variants are also graded through the real sandbox here
#: (the others' own test files do that for theirs); one submission per round, a few seconds each.
SANDBOX_ASSIGNMENTS = ("00_arrays_broadcasting", "02_fully_connected", "07_putting_together")


def _correct_submissions() -> list[Any]:
    out = []
    for assignment in SANDBOX_ASSIGNMENTS:
        module = __import__(f"tests.mutants.{assignment}", fromlist=["CORRECT"])
        correct = {n: v for n, v in getattr(module, "CORRECT", {}).items() if isinstance(v, dict)}
        for i in range(max((len(v) for v in correct.values()), default=0)):
            picked = {name: list(v.items())[i] for name, v in correct.items() if i < len(v)}
            out.append(pytest.param(assignment, picked, id=f"{assignment}-{i}"))
    return out


@pytest.mark.parametrize("assignment,picked", _correct_submissions())
def test_correct_variants_keep_full_marks_in_the_sandbox(assignment, picked, tmp_path, student_edition):
    from autograder import harness
    from tests.test_autograder_checks import write_notebook
    cells = dict(base_answers(assignment))
    for name, (_, source) in picked.items():
        cells[name] = source
    path = write_notebook(cells, tmp_path / f"{assignment}.ipynb")
    result = harness.grade_notebook(assignment, path, student_dlkit=student_edition(assignment),
                                    in_process=False)
    lost = {f"{name}: {picked[name][0]}" if name in picked else name: f
            for name, f in result["functions"].items() if f["score"] != f["max_score"]}
    failures = [t["output"][:300] for t in result["tests"] if t["status"] != "passed"]
    assert not lost, f"{lost}\n{failures}"


#: The do-nothing variants also sent through the sandbox (all of them run in process above).
_SANDBOX_SAMPLE = ("returns None", "returns []", "returns 0", "returns an array of an unrelated shape",
                   "returns its argument", "drops the last element", "the name is bound to None")


def _do_nothing_submissions() -> list[Any]:
    out = []
    for assignment in SANDBOX_ASSIGNMENTS:
        base = base_answers(assignment)
        per_piece = {name: [(d, src) for d, (src, scope) in _variants(base[name], name).items()
                            if scope is None and d.startswith(_SANDBOX_SAMPLE)]
                     for name in _graded(assignment)}
        for i in range(max(len(v) for v in per_piece.values())):
            picked = {name: v[i] for name, v in per_piece.items() if i < len(v)}
            out.append(pytest.param(assignment, picked, id=f"{assignment}-{i}"))
    return out


@pytest.mark.parametrize("assignment,picked", _do_nothing_submissions())
def test_do_nothing_answers_score_zero_in_the_sandbox(assignment, picked, tmp_path, student_edition):
    from autograder import harness
    from tests.test_autograder_checks import write_notebook
    cells = dict(base_answers(assignment))
    for name, (_, source) in picked.items():
        cells[name] = source
    path = write_notebook(cells, tmp_path / f"{assignment}.ipynb")
    result = harness.grade_notebook(assignment, path, student_dlkit=student_edition(assignment),
                                    in_process=False)
    scored = {f"{name}: {description}": result["functions"][name] for name, (description, _) in picked.items()
              if result["functions"][name]["score"] > 0}
    assert not scored, scored
