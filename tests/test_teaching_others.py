"""Issue 12 for notebooks 00, 01, 02, 06 and 07: each teaching claim holds on the numbers the
notebook computes, written answers carry a TA rubric, and the notebooks open without changes.

The notebook's own cells run in this process (selected by what they start with), seeded; no timed
asserts.
"""
from __future__ import annotations

import io
import json
import math
import re
import tokenize

import matplotlib
import numpy as np
import pytest

from tests.nbcontract import nb_path

matplotlib.use("Agg")

IDS = ["00_arrays_broadcasting", "01_autodiff_backprop", "02_fully_connected", "06_gpu_kernels",
       "07_putting_together"]


def _nb(aid: str) -> dict:
    return json.loads(nb_path(aid).read_text(encoding="utf-8"))


def _src(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _cell(nb: dict, start: str) -> str:
    hits = [_src(c) for c in nb["cells"] if c["cell_type"] == "code" and _src(c).startswith(start)]
    assert len(hits) == 1, f"expected one code cell starting with {start!r}, found {len(hits)}"
    return hits[0]


def _run(ns: dict, *sources: str) -> dict:
    import matplotlib.pyplot as plt

    ns.setdefault("__name__", "__main__")
    for s in sources:
        exec(compile(s, "<notebook cell>", "exec"), ns)
        plt.close("all")
    return ns


def _setup(nb: dict) -> dict:
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    return _run({}, _src(code[0]))


# -- structure: written answers, style, nbformat -----------------------------------------------

@pytest.mark.parametrize("aid", IDS)
def test_two_written_answers_with_a_rubric(aid):
    written = [c for c in _nb(aid)["cells"] if c["cell_type"] == "markdown"
               and c.get("metadata", {}).get("nbgrader", {}).get("solution")]
    assert len(written) >= 2, f"{aid}: fewer than two manually graded answer cells"
    for c in written:
        info, text = c["metadata"]["nbgrader"], _src(c)
        assert info["grade"] is True and info["points"] > 0 and info["locked"] is False
        assert info["grade_id"].startswith("written_") and info["schema_version"] == 3
        question, _, rest = text.partition("### BEGIN SOLUTION")
        rubric, _, after = rest.partition("### END SOLUTION")
        assert "Rubric" in rubric and "point" in rubric and len(question) > 200
        assert after.strip() == "", "nothing after the rubric: the student edition keeps the question"


@pytest.mark.parametrize("aid", IDS)
def test_notebook_code_style_and_opening_does_not_dirty(aid):
    nb = _nb(aid)
    assert (nb["nbformat"], nb["nbformat_minor"]) == (4, 5)
    assert nb["metadata"]["kernelspec"] == {"display_name": "Python 3 (ipykernel)",
                                            "language": "python", "name": "python3"}
    assert nb["metadata"]["language_info"] == {   # what ipykernel reports, less the version
        "codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
        "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
        "pygments_lexer": "ipython3"}
    ids = [c.get("id") for c in nb["cells"]]
    assert all(isinstance(i, str) and re.fullmatch(r"[a-zA-Z0-9-_]{1,64}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    text = nb_path(aid).read_text(encoding="utf-8")
    assert text == json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n", \
        "saved as Jupyter saves it (sorted keys, indent 1), so a save does not rewrite the file"
    for c in nb["cells"]:
        if c["cell_type"] != "code" or c.get("metadata", {}).get("nbgrader"):
            continue   # graded cells are the grading contract's, left as they are
        src = _src(c)
        toks = tokenize.generate_tokens(io.StringIO(src).readline)
        assert not any(t.type == tokenize.OP and t.string == ";" for t in toks), src[:80]
        assert max(map(len, src.split("\n"))) <= 100, src[:80]
    code = [_src(c) for c in nb["cells"] if c["cell_type"] == "code"]
    assert "continue_past_unfinished" in code[0], "Run All goes past unfinished tasks"


# -- 00 -----------------------------------------------------------------------------------------

def test_00_silent_broadcast_gives_a_finite_wrong_loss():
    nb = _nb("00_arrays_broadcasting")
    ns = _run(_setup(nb), _cell(nb, "y_pred = np.array"))
    assert ns["diff"].shape == (3, 3)
    assert math.isclose(ns["mse_bug"], 12 / 9) and ns["mse_right"] == 0.0   # the rubric's 1.333


def test_00_explicit_bias_grows_with_the_batch_and_the_view_does_not():
    nb = _nb("00_arrays_broadcasting")
    ns = _run(_setup(nb), _cell(nb, "import tracemalloc"))
    explicit, view, sizes = ns["explicit"], ns["broadcast"], ns["batch_sizes"]
    per_row = [e * 2**20 / m for e, m in zip(explicit, sizes)]
    assert all(r >= 256 * 8 for r in per_row)                  # m x k float64: linear in m
    assert max(view) * 2**20 < 4096 and max(view) - min(view) < 1e-3   # a few hundred bytes


# -- 01 -----------------------------------------------------------------------------------------

def test_01_forward_mode_cost_grows_linearly_relative_to_reverse():
    nb = _nb("01_autodiff_backprop")
    ns = _run(_setup(nb), _cell(nb, "class Counter"))
    sizes, ratios = ns["sizes"], ns["ratios"]
    assert ratios == [pytest.approx((n + 1) / 2) for n in sizes]   # the prose's (n+1)/2
    assert ns["fwd_cost"] == [2 * n**3 + 2 * n**2 for n in sizes]
    assert ns["rev_cost"] == [4 * n**2 for n in sizes]
    slopes = np.diff(np.log(ns["fwd_cost"])) / np.diff(np.log(sizes))
    assert slopes[-1] > 2.9 and np.allclose(np.diff(np.log(ns["rev_cost"])) / np.diff(np.log(sizes)), 2)


def test_01_symbolic_derivative_swells_while_the_autodiff_graph_grows_linearly():
    nb = _nb("01_autodiff_backprop")
    ns = _run(_setup(nb), _cell(nb, "def draw_graph"), _cell(nb, "class Dual"),
              _cell(nb, "def symbolic_d"))
    s = ns["swell"]
    assert s["steps"] == list(range(1, 11))
    assert all(b > 2 * a for a, b in zip(s["formula"], s["formula"][1:]))   # doubles per step
    assert all(b > 2 * a for a, b in zip(s["symbolic derivative"], s["symbolic derivative"][1:]))
    assert set(np.diff(s["autodiff graph"])) == {4}                          # 4 nodes per step
    assert s["symbolic derivative"][-1] > 150_000 and s["formula"][-1] == 8185   # the prose
    assert s["autodiff graph"][-1] == 44


def test_01_notes_box_vjp_needs_the_transpose_and_fd_needs_one_probe_per_coordinate():
    nb = _nb("01_autodiff_backprop")
    ns = _run(_setup(nb), _cell(nb, "batch, fan_in, fan_out"), _cell(nb, "c_bar = G_s.ravel()"))
    J, c_bar = ns["J"], ns["c_bar"]
    assert J.shape == (6, 12) and c_bar.shape == (6,)
    with pytest.raises(ValueError):
        J @ c_bar                                                    # the notes' J c̄
    assert np.allclose(ns["vjp_T"], ns["G_s"] @ ns["W_s"].T)         # Jᵀ c̄ is the VJP
    mlp = _cell(nb, "X_tr, y_tr = dlkit.data.load_digits")            # section 9's parameters
    shapes = re.findall(r"standard_normal\(\((\d+), (\d+)\)\)|np\.zeros\((\d+)\)", mlp)
    count = sum(int(a) * int(b) if a else int(c) for a, b, c in shapes)
    assert count == ns["d_mlp"] == 4810


def test_01_finite_difference_errors_are_real_numbers_not_zero():
    nb = _nb("01_autodiff_backprop")
    ns = _run(_setup(nb), _cell(nb, "def f_fd"))
    for errs in (ns["err_fwd"], ns["err_ctr"]):
        assert min(errs) > 0 and len(set(errs)) > 40
    best_c, best_f = min(ns["err_ctr"]), min(ns["err_fwd"])
    assert best_c < best_f and best_c < 1e-9 and best_f < 1e-7      # central wins, both useful


# -- 02 -----------------------------------------------------------------------------------------

def test_02_recap_shapes_fail_or_silently_differ():
    nb = _nb("02_fully_connected")
    ns = _run(_setup(nb), _cell(nb, "recap_rng"))
    with pytest.raises(ValueError):
        ns["Z_r"] @ ns["W_r"].T
    assert ns["recap_gap"] > 1.0 and ns["ones_b"].shape == (5, 32)


def test_02_depth_claims_on_the_spirals():
    nb = _nb("02_fully_connected")
    ns = _run(_setup(nb), _cell(nb, "X_sp, y_sp"), _cell(nb, "class GradientDescent"))
    res = ns["results"]
    params = {k: sum(p.size for p in net.parameters()) for k, (net, _) in res.items()}
    acc = {k: hist["train_acc"][-1] for k, (_, hist) in res.items()}
    assert params["3 layers of 4"] == 67 and params["1 layer of 16"] == 99
    assert abs(acc["3 layers of 4"] - acc["1 layer of 16"]) < 0.05      # "get close"
    assert acc["3 layers of 4"] > acc["1 layer of 4"] + 0.1             # depth helps
    assert acc["3 layers of 16"] >= 0.95                                # "almost perfectly"


# -- 06 -----------------------------------------------------------------------------------------

def test_06_rubric_numbers_match_the_notebook():
    nb = _nb("06_gpu_kernels")
    ns = _run({}, _cell(nb, "# NBVAL_CHECK_OUTPUT"))
    assert math.isclose(1e3 * 2 * ns["param_bytes"] / ns["pcie"], 8.0)
    assert math.isclose(1e3 * ns["batch_bytes"] / ns["pcie"], 0.032, rel_tol=0.01)
    assert math.isclose(min(60e12, 2 / 12 * 3e12) / 1e12, 0.5)            # saxpy is memory-bound


# -- 07 -----------------------------------------------------------------------------------------

REFERENCE_LOOP = '''
def train_one_epoch(model, loss_fn, optimizer, loader):
    total, count = 0.0, 0
    for X, y in loader:
        loss = loss_fn(model(X), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * X.shape[0]
        count += X.shape[0]
    return total / count
'''


@pytest.fixture(scope="module")
def nb07():
    nb = _nb("07_putting_together")
    ns = _setup(nb)
    _run(ns, _cell(nb, "TRAIN_SEED"))
    return nb, ns


def test_07_split_is_disjoint_and_the_test_set_is_used_once(nb07):
    nb, ns = nb07
    assert len(ns["X_train"]) + len(ns["X_val"]) == 1438 and len(ns["X_val"]) == 288
    assert len(set(ns["split"][:288]) & set(ns["split"][288:])) == 0
    code = [_src(c) for c in nb["cells"] if c["cell_type"] == "code"]
    uses = [i for i, s in enumerate(code) if re.search(r"\bX_test\b", s)]
    evaluations = [i for i in uses if "predict_logits(best_model, X_test)" in code[i]]
    assert len(evaluations) == 1 and "dlkit.student.load" not in "".join(code)
    first_use = evaluations[0]
    assert all(i == 0 or i >= first_use for i in uses), "X_test appears before the final evaluation"
    tuning = _cell(nb, "EPOCHS, TARGET")
    assert "X_test" not in tuning and "val_loader" in _cell(nb, "TRAIN_SEED")


def test_07_loop_check_accepts_a_right_loop_and_rejects_a_wrong_one(nb07):
    nb, ns = nb07
    check = _cell(nb, "def check_train_one_epoch")
    _run(ns, _cell(nb, "def train_one_epoch"), check)
    assert ns["own_loop"] is False                       # as shipped: "not done yet"
    _run(ns, REFERENCE_LOOP, check)
    assert ns["own_loop"] is True
    wrong = REFERENCE_LOOP.replace("        optimizer.zero_grad()\n", "")
    with pytest.raises(AssertionError):
        _run(ns, wrong, check)
    last_batch_unweighted = REFERENCE_LOOP.replace("loss.item() * X.shape[0]", "loss.item() * 64")
    with pytest.raises(AssertionError):
        _run(ns, last_batch_unweighted, check)


def test_07_the_tuning_target_is_reachable_and_not_reached_by_the_given_candidates(nb07):
    nb, ns = nb07
    _run(ns, _cell(nb, "def train_one_epoch"), _cell(nb, "def check_train_one_epoch"),
         _cell(nb, "def accuracy"))
    assert ns["own_loop"] is False
    tune = _cell(nb, "EPOCHS, TARGET").replace(
        "my_candidates = {", 'my_candidates = {"Adam lr 1e-2": {"opt": "adam", "lr": 1e-2},', 1)
    _run(ns, tune)
    given = [ns["val_acc"][k] for k in ns["candidates"]]
    assert max(given) < ns["TARGET"]                      # the task is not solved for the student
    assert ns["val_acc"]["Adam lr 1e-2"] >= ns["TARGET"] and ns["best_name"] == "Adam lr 1e-2"
    _run(ns, _cell(nb, "test_logits = None"))
    assert abs(ns["test_acc"] - ns["val_acc"]["Adam lr 1e-2"]) < 0.03   # validation ≈ test


# -- student edition: Run All, no empty axes ---------------------------------------------------

@pytest.mark.parametrize("aid", IDS)
def test_student_edition_draws_no_empty_axes(aid, monkeypatch, tmp_path):
    """With nothing implemented, every figure that is shown has something on every axes."""
    import matplotlib.pyplot as plt

    from tests.nbcontract import run_student_edition, stub_graded_dlkit

    stub_graded_dlkit(monkeypatch, tmp_path)
    monkeypatch.chdir(nb_path(aid).parent)
    monkeypatch.delenv("DLKIT_MNIST_DIR", raising=False)
    empty = []

    def show(*args, **kwargs):
        for num in plt.get_fignums():
            for ax in plt.figure(num).axes:
                drawn = ax.lines or ax.images or ax.collections or ax.patches or ax.texts
                if ax.get_visible() and not drawn:
                    empty.append(ax.get_title() or f"figure {num}")

    monkeypatch.setattr(plt, "show", show)
    failed, printed = run_student_edition(aid)
    assert failed, f"{aid}: the graded test cells fail on the stubs"
    assert not empty, f"{aid}: empty axes shown in the student edition: {empty}"
    assert "not done yet" in printed.lower() or aid in ("06_gpu_kernels",)
