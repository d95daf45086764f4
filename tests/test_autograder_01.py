"""Notebook 01's hidden checks, beyond what tests/test_autograder_checks.py asks of every assignment.

* every piece has at least 5 mutants (tests/mutants/01_autodiff_backprop.py) and each loses
  points for its piece;
* right answers written differently (``CORRECT``) keep full marks;
* shortcuts through dlkit's own engine and VJPs score full marks only where dlkit computes them
  (the instructor edition) and 0 with the student edition's stubs: the kit cannot do the work;
* every closed form the checks compare with agrees with central differences.
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.mutants import load_mutants
from tests.nbcontract import stub_graded_dlkit
from tests.test_autograder_checks import base_answers, grade_local, reference_answers

ID = "01_autodiff_backprop"
MUTANTS_MODULE = __import__("importlib").import_module(f"tests.mutants.{ID}")
PIECES = list(reference_answers(ID))


def _full(result, name):
    r = result[name]
    return r["score"] == r["max"] > 0


@pytest.mark.parametrize("name", PIECES)
def test_every_piece_has_five_mutants_and_all_lose_points(name):
    variants = load_mutants(ID)[name]
    assert len(variants) >= 5, f"{name} has only {len(variants)} mutants"
    base = base_answers(ID)
    survivors = []
    for description, source in variants.items():
        cells = dict(base)
        cells[name] = source
        if _full(grade_local(ID, cells, only=name), name):
            survivors.append(description)
    assert not survivors, f"{name}: mutants keep full marks: {survivors}"


CORRECT_CASES = [(n, d) for n, vs in MUTANTS_MODULE.CORRECT.items() for d in vs]


@pytest.mark.parametrize("name,description", CORRECT_CASES)
def test_correct_variants_keep_full_marks(name, description):
    cells = dict(base_answers(ID))
    cells[name] = MUTANTS_MODULE.CORRECT[name][description]
    result = grade_local(ID, cells, only=name)
    assert _full(result, name), result[name]["failures"]


@pytest.mark.parametrize("name", list(MUTANTS_MODULE.SHORTCUTS))
def test_shortcuts_through_dlkit_score_zero_in_the_student_edition(name, monkeypatch):
    cells = dict(base_answers(ID))
    cells[name] = MUTANTS_MODULE.SHORTCUTS[name]
    # instructor edition: the shortcut works (dlkit computes the answer) ...
    assert _full(grade_local(ID, cells, only=name), name)
    # ... the student edition withholds it: nothing left to delegate to
    stub_graded_dlkit(monkeypatch)
    result = grade_local(ID, cells, only=name)
    assert result[name]["score"] == 0, result[name]


def test_every_graded_piece_of_dlkit_is_a_piece_of_01():
    from autograder.release import graded_objects
    ours = {q for q, a in graded_objects().items() if a == ID}
    assert len(ours) == len(PIECES)
    import dlkit
    pieces = set()
    for qualname in ours:
        obj = dlkit
        for part in qualname.split(".")[1:]:
            obj = getattr(obj, part)
        pieces.add(obj.__dlkit_piece__)
    assert pieces == set(PIECES)


def test_closed_forms_agree_with_central_differences():
    from autograder.api import load_reference
    from pathlib import Path
    ref = load_reference(str(Path(__file__).resolve().parents[1] / "autograder" / ID / "test_checks.py"))
    rng = np.random.default_rng(0)
    cases = [("Add", [], [(3, 1), (2, 1, 4)]), ("Mul", [], [(3, 4), (4,)]),
             ("Div", [], [(2, 3), (1, 3)]), ("MatMul", [], [(2, 3, 4), (4, 2)]),
             ("Summation", [[0, 2], False], [(2, 3, 2)]), ("LogSumExp", [1, True], [(3, 4)]),
             ("Transpose", [[1, 2, 0]], [(2, 3, 4)]), ("BroadcastTo", [[2, 3, 4]], [(3, 1)]),
             ("PowerScalar", [-1.5], [(3,)]), ("Log", [], [(4,)]), ("Exp", [], [(2, 2)])]
    for kind, params, shapes in cases:
        arrays = [0.5 + np.abs(rng.standard_normal(s)) for s in shapes]
        G = rng.standard_normal(ref.forward(kind, params, arrays).shape)
        closed = ref.vjp(kind, params, arrays, G)
        numeric = ref.numerical_vjp(lambda xs: ref.forward(kind, params, xs), arrays, G)
        for c, n in zip(closed, numeric):
            np.testing.assert_allclose(c, n, rtol=1e-6, atol=1e-7, err_msg=kind)
    # the graph reference: first derivatives against central differences too
    spec = ref.random_graph(np.random.default_rng(1), 2, 8, (3,), constants=1)
    out = len(spec) - 1
    seed = rng.standard_normal(3)
    grads = ref.graph_gradients(spec, out, seed)
    for i, node in enumerate(spec):
        if node[0] == "leaf" and node[2] and i in grads:
            x = np.array(node[1], dtype=np.float64)
            num = np.zeros_like(x)
            for idx in np.ndindex(x.shape):
                xp, xm = x.copy(), x.copy()
                xp[idx] += 1e-6
                xm[idx] -= 1e-6
                fp = ref.graph_forward(ref.with_values(spec, {i: xp}))[out]
                fm = ref.graph_forward(ref.with_values(spec, {i: xm}))[out]
                num[idx] = np.sum(seed * (fp - fm)) / 2e-6
            np.testing.assert_allclose(grads[i], num, rtol=1e-6, atol=1e-8)


def test_shortcuts_score_zero_in_the_sandbox(tmp_path):
    """Through the real harness and the student kit: every shortcut piece scores 0, every other
    piece (the reference) keeps full marks."""
    from autograder import harness
    from autograder.release import student_dlkit
    from tests.test_autograder_checks import write_notebook

    cells = dict(base_answers(ID))
    shortcuts = {n: src for n, src in MUTANTS_MODULE.SHORTCUTS.items()
                 if n != "sum_to_shape"}      # the VJPs that use it would lose their points too
    cells.update(shortcuts)
    write_notebook(cells, tmp_path / f"{ID}.ipynb")
    kit = student_dlkit(tmp_path / "kit")
    result = harness.grade_notebook(ID, tmp_path / f"{ID}.ipynb", student_dlkit=str(kit),
                                    in_process=False)
    assert not result["staff_notes"], result["staff_notes"]
    for name, f in result["functions"].items():
        if name in shortcuts:
            assert f["score"] == 0, (name, f)
        else:
            assert f["score"] == f["max_score"] > 0, (name, f)


@pytest.mark.parametrize("k", [0, 1])
def test_correct_variants_keep_full_marks_in_the_sandbox(k, tmp_path):
    """The k-th correct variant of every piece that has one, graded together through the real
    harness (import policy and the student kit included)."""
    from autograder import harness
    from autograder.release import student_dlkit
    from tests.test_autograder_checks import write_notebook

    cells = dict(base_answers(ID))
    for name, variants in MUTANTS_MODULE.CORRECT.items():
        if len(variants) > k:
            cells[name] = list(variants.values())[k]
    write_notebook(cells, tmp_path / f"{ID}.ipynb")
    kit = student_dlkit(tmp_path / "kit")
    result = harness.grade_notebook(ID, tmp_path / f"{ID}.ipynb", student_dlkit=str(kit),
                                    in_process=False)
    assert not result["staff_notes"], result["staff_notes"]
    lost = {n: f for n, f in result["functions"].items() if f["score"] != f["max_score"]}
    assert not lost, (lost, [t["output"] for t in result["tests"] if t["status"] != "passed"])


DO_NOTHING = {
    "returns None": "    return None\n",
    "returns an empty tuple": "    return ()\n",
    "returns an empty dict": "    return {}\n",
    "returns its first argument": "    return args[0]\n",
    "returns a list of Nones": "    return [None, None]\n",
    "returns a number": "    return 0.0\n",
}


@pytest.mark.parametrize("kind", list(DO_NOTHING))
def test_do_nothing_answers_score_zero(kind):
    base = base_answers(ID)
    for name in PIECES:
        cells = dict(base)
        cells[name] = f"def {name}(*args, **kwargs):\n{DO_NOTHING[kind]}"
        r = grade_local(ID, cells, only=name)[name]
        assert r["score"] == 0, (name, kind, r)
