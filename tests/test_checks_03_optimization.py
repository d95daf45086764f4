"""03_optimization's hidden checks beyond the generic suite (tests/test_autograder_checks.py).

* Right answers written differently (tests/mutants/03_optimization.py ``CORRECT``) keep full marks.
* Do-nothing, empty, wrong-type and wrong-shape answers score 0 for their piece (issue 10 item 1:
  an optimizer that clears the list it was handed scored 12/16).
* A hint never names a mistake that equals the right answer on that case.
* Shortcuts through dlkit (``RMSprop = dlkit.optim.RMSprop``, delegating to ``dlkit.optim.SGD``,
  calling ``p.backend.adam_step``, deriving from the library's class) score 0 in the real sandbox,
  where the student kit has those pieces withheld, while the honest pieces of the same submission
  keep full marks.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.test_autograder_checks import (  # noqa: E402
    _grade_real, base_answers, grade_local, load_checks, student_edition)

ID = "03_optimization"
MUT = importlib.import_module("tests.mutants.03_optimization")
OPTIMIZERS = ["SGD", "Momentum", "Nesterov", "Adagrad", "RMSprop", "Adam", "AdamW"]

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
assert student_edition  # the fixture, imported for the sandbox tests below


def _checks_module():
    return next(fn for _, fn, _ in load_checks(ID)).__globals__


def _score(name, source):
    cells = dict(base_answers(ID))
    cells[name] = source
    return grade_local(ID, cells, only=name)[name]


@pytest.mark.parametrize("name, description", [(n, d) for n, v in MUT.CORRECT.items() for d in v])
def test_correct_variants_keep_full_marks(name, description):
    r = _score(name, MUT.CORRECT[name][description])
    assert r["score"] == r["max"] > 0, r["failures"]


def _do_nothing_answers(name):
    sig = {
        "SGD": "params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False",
        "Momentum": "params, lr, beta=0.9, unbias=False", "Nesterov": "params, lr, beta=0.9",
        "Adagrad": "params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10",
        "RMSprop": "params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False",
        "Adam": "params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, bias_correction=True",
        "AdamW": "params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, bias_correction=True",
    }[name]
    return {
        "None": f"{name} = None\n",
        "not an Optimizer": f"class {name}:\n    def __init__(self, *a, **k): pass\n    def step(self): pass\n",
        "step does nothing": f"class {name}(dlkit.optim.Optimizer):\n    def __init__(self, {sig}):\n"
                             f"        super().__init__(params, lr=lr)\n    def step(self): pass\n",
        "clears its parameters": f"class {name}(dlkit.optim.Optimizer):\n    def __init__(self, {sig}):\n"
                                 f"        super().__init__(params, lr=lr)\n        self.params.clear()\n"
                                 f"        params.clear()\n    def step(self): pass\n",
        "empties the state list": f"class {name}(dlkit.optim.Optimizer):\n    def __init__(self, {sig}):\n"
                                  f"        super().__init__(params, lr=lr)\n"
                                  f"    def step(self):\n        self.state = []\n",
        "replaces the parameters by new tensors": f"class {name}(dlkit.optim.Optimizer):\n"
                                                  f"    def __init__(self, {sig}):\n"
                                                  f"        super().__init__(params, lr=lr)\n    def step(self):\n"
                                                  f"        self.params[:] = [p * 0.5 for p in self.params]\n",
        "raises": f"class {name}(dlkit.optim.Optimizer):\n    def __init__(self, {sig}):\n"
                  f"        raise ValueError('no')\n",
    }


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_do_nothing_and_wrong_type_optimizers_score_zero(name):
    for what, source in _do_nothing_answers(name).items():
        r = _score(name, source)
        assert r["score"] == 0, f"{name} {what}: {r['score']}/{r['max']}"


@pytest.mark.parametrize("name, sources", [
    ("gradient_descent", {
        "returns []": "def gradient_descent(P, q, theta0, lr, steps):\n    return []\n",
        "returns None": "def gradient_descent(P, q, theta0, lr, steps):\n    return None\n",
        "returns a list of rows": "def gradient_descent(P, q, theta0, lr, steps):\n"
                                  "    return [list(theta0)] * (steps + 1)\n",
        "returns theta0 only": "def gradient_descent(P, q, theta0, lr, steps):\n    return np.array([theta0])\n",
        "returns an int array": "def gradient_descent(P, q, theta0, lr, steps):\n"
                                "    return np.zeros((steps + 1, len(theta0)), dtype=int)\n",
    }),
    ("newton_step", {
        "returns theta": "def newton_step(P, q, theta, lr=1.0):\n    return theta\n",
        "returns a scalar": "def newton_step(P, q, theta, lr=1.0):\n    return 0.0\n",
        "returns the wrong shape": "def newton_step(P, q, theta, lr=1.0):\n"
                                   "    return np.linalg.solve(P, -q)[None, :]\n",
        "returns NaN": "def newton_step(P, q, theta, lr=1.0):\n    return theta * np.nan\n",
    }),
])
def test_empty_and_wrong_type_functions_score_zero(name, sources):
    for what, source in sources.items():
        r = _score(name, source)
        assert r["score"] == 0, f"{name} {what}: {r['score']}/{r['max']}"


def test_a_hint_never_names_a_mistake_equal_to_the_right_answer():
    checks = _checks_module()
    want = np.linspace(0.0, 1.0, 5)
    wrong = want + 1.0
    # a "mistake" that equals the right answer on this case (within the check's tolerance) is no hint
    assert checks["_hint"](wrong, want, {"same as right": lambda: want + 1e-12, "off by one": lambda: wrong}) \
        == "off by one"
    assert checks["_hint"](wrong, want, {"same as right": lambda: want + 1e-12}) is None
    # e.g. SGD with dampening 0: "dampening ignored" equals the right answer, so it is never named
    ref = checks["ref"]
    prob = checks["problem"](6)
    variants = checks["_sgd_variants"](0.05, momentum=0.9)
    right = checks["_flat"](ref.simulate(ref.sgd(0.05, momentum=0.9), prob)[0])
    same = checks["_flat"](ref.simulate(variants["dampening was ignored (b <- mu b + g)"], prob)[0])
    assert np.allclose(right, same)
    assert checks["_hint"](right + 1.0, right, {"dampening was ignored": lambda: same}) is None


def test_the_default_betas_and_eps_of_adam_are_told_apart():
    """(0.9, 0.99) vs (0.9, 0.999), eps 1e-6 vs 1e-8: the trajectories differ far beyond tolerance."""
    checks = _checks_module()
    ref, prob = checks["ref"], checks["problem"](30)
    right = checks["_flat"](ref.simulate(ref.adam(), prob)[0])
    for wrong in (ref.adam(betas=(0.9, 0.99)), ref.adam(eps=1e-6), ref.adam(eps=1e-7)):
        other = checks["_flat"](ref.simulate(wrong, prob)[0])
        err = np.abs(other - right) - (checks["ATOL"] + checks["RTOL"] * np.abs(right))
        assert err.max() > 100 * checks["ATOL"]


def test_checks_cover_every_piece_with_the_notebooks_points():
    points = {}
    for _, _, info in load_checks(ID):
        points[info.function] = points.get(info.function, 0) + info.points
    assert points == {"gradient_descent": 2, "newton_step": 2, "SGD": 4, "Momentum": 3, "Nesterov": 2,
                      "Adagrad": 2, "RMSprop": 3, "Adam": 4, "AdamW": 2}


# -- in the real sandbox, with the student kit ----------------------------------------------------

def test_shortcuts_through_dlkit_score_zero_in_the_sandbox(tmp_path, student_edition):
    """One submission: five pieces are shortcuts through dlkit, the other four are honest."""
    cells = dict(base_answers(ID))
    cells.update(MUT.SHORTCUTS)
    result = _grade_real(ID, cells, tmp_path / "shortcuts.ipynb", student_edition)
    functions = result["functions"]
    for name in MUT.SHORTCUTS:
        assert functions[name]["score"] == 0, (name, functions[name])
    for name in set(functions) - set(MUT.SHORTCUTS):
        assert functions[name]["score"] == functions[name]["max_score"] > 0, (name, functions[name])
    assert not result["staff_notes"], result["staff_notes"]


def test_issue_10_do_nothing_optimizers_score_zero_in_the_sandbox(tmp_path, student_edition):
    """The payload of issue 10 item 1 (clear the handed list, keep it), graded for real."""
    cells = dict(base_answers(ID))
    for name in ("Momentum", "Nesterov", "RMSprop", "Adam"):
        cells[name] = MUT.MUTANTS[name]["do-nothing: clears the parameter list it was handed and keeps it"]
    result = _grade_real(ID, cells, tmp_path / "clear.ipynb", student_edition)
    for name in ("Momentum", "Nesterov", "RMSprop", "Adam"):
        assert result["functions"][name]["score"] == 0, (name, result["functions"][name])
    assert result["functions"]["SGD"]["score"] == result["functions"]["SGD"]["max_score"]


# -- the trusted simulation is PyTorch's: it reproduces the torch-generated sequences ----------------

SIMULATED = {   # tests/test_optim.py CONFIGS -> the same optimizer in reference.py
    "sgd": lambda r: r.sgd(0.1),
    "sgd_momentum": lambda r: r.sgd(0.1, momentum=0.9),
    "sgd_dampening_wd": lambda r: r.sgd(0.1, momentum=0.9, dampening=0.5, weight_decay=0.1),
    "sgd_nesterov_wd": lambda r: r.sgd(0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "adam": lambda r: r.adam(0.1),
    "adam_wd": lambda r: r.adam(0.1, betas=(0.8, 0.99), eps=1e-3, weight_decay=0.1),
    "adamw": lambda r: r.adam(0.1, weight_decay=0.1, decoupled=True),
    "rmsprop": lambda r: r.rmsprop(0.01),
    "rmsprop_centered_momentum_wd": lambda r: r.rmsprop(0.01, alpha=0.9, eps=1e-6, weight_decay=0.1, momentum=0.9,
                                                        centered=True),
    "adagrad": lambda r: r.adagrad(0.1),
    "adagrad_decay_wd_init": lambda r: r.adagrad(0.1, lr_decay=0.1, weight_decay=0.1, initial_accumulator_value=0.5),
    "momentum_as_sgd": lambda r: r.momentum(0.1, 0.9),
    "nesterov_as_sgd": lambda r: r.nesterov(0.1, 0.9),
}


@pytest.mark.parametrize("name", sorted(SIMULATED))
def test_reference_simulation_matches_pytorch_sequences(name):
    from tests.test_optim import C, D, REFERENCE, THETA0
    ref = _checks_module()["ref"]
    prob = {"inits": [np.array(THETA0)], "curv": [C], "lin": [D], "scales": [1.0] * 4, "mask": [[True]] * 4}
    trajectory, _ = ref.simulate(SIMULATED[name](ref), prob)
    np.testing.assert_allclose([step[0] for step in trajectory], REFERENCE[name], rtol=1e-12, atol=1e-14)
