"""Notebook 05 teaches what its numbers show (issue 12).

The instructor notebook is executed once, in this process (module fixture: every code cell in
order, hidden tests included, figures closed instead of shown), and each test asserts the effect
the prose states on the numbers the notebook itself computed: early stopping on memorized noisy
labels, the "smallest gap" rule of the lecture notes, greedy pretraining and FitNets against
training from scratch at equal SGD steps over seeds, the linear bottleneck, Adagrad on badly scaled
inputs, batch norm's scale invariance and the covariate-shift measurement.  All of it is seeded;
nothing is timed.  Structure checks cover the notebook format, the written-answer cells and the
code style of the non-graded cells.
"""
from __future__ import annotations

import contextlib
import io
import json
import linecache
import tokenize

import numpy as np
import pytest

from dlkit import student
from tests.nbcontract import nb_path, notebook

AID = "05_normalization_regularization"


def _source(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


@pytest.fixture(scope="module")
def ns():
    """The namespace after running every code cell of the instructor notebook once."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    student.reset()
    mp = pytest.MonkeyPatch()
    mp.chdir(nb_path(AID).parent)
    mp.setattr(plt, "show", lambda *a, **k: plt.close("all"))
    namespace: dict = {"__name__": "__main__"}
    printed = io.StringIO()
    try:
        for i, cell in enumerate(notebook(AID)["cells"]):
            if cell["cell_type"] != "code":
                continue
            src = _source(cell)
            filename = f"<{AID} cell {i}>"  # as IPython does: plug reads the cell's source
            linecache.cache[filename] = (len(src), None, src.splitlines(keepends=True), filename)
            with contextlib.redirect_stdout(printed), np.errstate(all="ignore"):
                exec(compile(src, filename, "exec"), namespace)
    finally:
        plt.close("all")
        mp.undo()
    namespace["__printed__"] = printed.getvalue()
    yield namespace
    student.reset()


# -- claims -------------------------------------------------------------------------------------

def test_every_experiment_ran_with_the_students_layers(ns):
    assert "not done yet" not in ns["__printed__"]
    for key in ("es", "out", "si", "ics", "cond", "bn_out", "aug", "tr_out", "pre", "fit_out"):
        assert ns[key] is not None, f"{key}: the experiment did not run"
    assert ns["es_impl"] == "your Linear", "legends name the implementation that ran"
    assert ns["si"][1] == "your BatchNorm1d"


def test_early_stopping_memorizes_noisy_labels_and_validation_turns_up(ns):
    hist, best = ns["es_hist"], ns["es_best"]
    train_loss, val_loss, val_acc = map(np.asarray, (hist["train_loss"], hist["val_loss"], hist["val_acc"]))
    assert ns["flip"].mean() > 0.25, "the training labels are noisy"
    assert train_loss[-1] < 0.05 and hist["train_acc"][-1] >= 0.99, "training loss -> 0: wrong labels memorized"
    assert best == int(np.argmin(val_loss))
    assert best <= len(val_loss) - 1 - 20, "the validation minimum comes well before the last epoch"
    assert val_loss[-1] > val_loss[best] + 0.15, "validation loss turns up after its minimum"
    assert val_acc[-1] < val_acc[best] - 0.05, "and validation accuracy drops with it"
    assert train_loss[-1] < train_loss[best] / 10, "while training loss keeps falling"


def test_smallest_gap_rule_picks_a_worse_model_than_validation_minimum(ns):
    vl = np.asarray(ns["es_hist"]["val_loss"])
    gap_epoch, best = ns["es_gap"], ns["es_best"]
    assert gap_epoch != best
    assert vl[gap_epoch] > vl[best] + 0.02, "the box says: the gap rule has a higher validation loss"


def test_fit_patience_restores_the_best_weights(ns):
    hist, restored = ns["es_pat"]
    assert hist.stopped_early and hist.best_epoch == ns["es_best"]
    assert hist.epochs < 60
    assert restored == pytest.approx(ns["es_hist"]["val_acc"][ns["es_best"]])


def test_greedy_pretraining_beats_scratch_at_equal_steps_over_seeds(ns):
    greedy, scratch = ns["greedy_acc"], ns["scratch_acc"]
    seeds = ns["SEEDS"]
    assert len(seeds) >= 3
    stages = ns["DEPTH"] * ns["STAGE_EPOCHS"]
    for s in seeds:  # equal compute, counted in SGD steps over the same data
        assert len(greedy[s]) == ns["FINETUNE_EPOCHS"] and len(scratch[s]) == stages + ns["FINETUNE_EPOCHS"]
        assert max(scratch[s][:4]) < 0.25, "from scratch the deep thin net sits near chance for a while"
    g_final = np.array([greedy[s][-1] for s in seeds])
    s_final = np.array([scratch[s][-1] for s in seeds])
    assert g_final.mean() > s_final.mean() + 0.1, "greedy ends higher on average"
    assert g_final.std() < s_final.std(), "and is less seed-dependent"
    assert g_final.min() > 0.7


def test_fitnets_hints_beat_no_hints_at_equal_steps_for_every_seed(ns):
    runs = ns["fit_runs"]
    assert len(runs) >= 3
    for s, ((hint_hist, hinted), (none_hist, plain)) in runs.items():
        assert none_hist is None
        assert len(hinted["val_acc"]) + ns["HINT_EPOCHS"] == len(plain["val_acc"]), "equal SGD steps"
        assert hint_hist["train_loss"][-1] < 0.5 * hint_hist["train_loss"][0], "stage 1 learns the hint"
        assert np.mean(hinted["val_acc"][-5:]) > np.mean(plain["val_acc"][-5:]) + 0.1, f"seed {s}"
    teacher = ns["fit_out"][0]
    assert ns["accuracy"](teacher, ns["X_val"], ns["y_val"]) > 0.95, "the teacher is easy to train"


def test_linear_bottleneck_limits_rank_not_memorization(ns):
    rows = {k: r for k, *r in ns["bottleneck_rows"]}     # k -> (train, best val, final val, rank)
    for k, (train, _, _, rank) in rows.items():
        if k is not None:
            assert rank == k, "two linear maps through k units multiply to rank k"
            if k >= 4:
                assert train >= 0.98, "from k = 4 on the noisy labels are memorized anyway"
    assert rows[2][0] < rows[None][0] - 0.03, "k = 2 cannot even fit the training set"
    assert rows[2][2] == min(r[2] for r in rows.values()), "and has the worst validation accuracy"
    assert rows[None][2] >= max(r[2] for k, r in rows.items() if k is not None), \
        "no bottleneck width beats the unconstrained network on validation"


def test_adagrad_undoes_bad_feature_scaling(ns):
    runs = ns["cond_runs"]
    sgd_bad = min(runs["SGD, lr 1"][-1], runs["SGD, lr 4"][-1])
    ada, normalized = runs["Adagrad, lr 1"][-1], runs["SGD on normalized inputs, lr 0.3"][-1]
    assert ada < 0.5 * sgd_bad and normalized < 0.5 * sgd_bad
    assert ada < 1.5 * normalized, "Adagrad comes close to SGD on normalized inputs"


def test_batchnorm_makes_the_preceding_weights_scale_invariant(ns):
    rows = {c: (loss, gnorm, radial) for c, loss, gnorm, radial in ns["si_rows"]}
    assert rows[10.0][0] == pytest.approx(rows[1.0][0], rel=1e-4), "same loss for 10 W"
    assert rows[1.0][1] / rows[10.0][1] == pytest.approx(10.0, rel=1e-3), "gradient scales like 1/c"
    assert rows[0.1][1] / rows[1.0][1] == pytest.approx(10.0, rel=1e-2)
    for c, (_, gnorm, radial) in rows.items():
        assert abs(radial) < 1e-2 * gnorm, "the gradient is orthogonal to W"


def test_covariate_shift_measurement_matches_the_prose(ns):
    plain_loss, plain_shift = ns["ics_runs"]["plain"]
    bn_loss, bn_shift = ns["ics_runs"]["batch norm"]
    assert bn_loss[-1] < 0.5 * plain_loss[-1], "the batch-normalized net trains much faster"
    assert bn_shift.mean() < plain_shift.mean(), "and the last layer's inputs drift less"
    assert len(bn_shift) == len(bn_loss)


def test_smaller_claims_of_sections_8_and_9(ns):
    results = ns["variant_results"]
    final = {name: hist["val_acc"][-1] for name, (hist, _) in results.items()}
    assert final["batch norm"] >= final["no regularization"]
    first = {name: hist["val_acc"][0] for name, (hist, _) in results.items()}
    assert first["batch norm"] > first["no regularization"] + 0.1, "batch norm's curves rise fastest"
    train = {name: hist["train_acc"][-1] for name, (hist, _) in results.items()}
    gap = {name: train[name] - final[name] for name in final}
    assert gap["dropout p=0.5"] < gap["no regularization"], "dropout closes the gap ..."
    assert train["dropout p=0.5"] < train["no regularization"] - 0.05, "... by lowering training accuracy"
    assert final["dropout p=0.5"] <= final["no regularization"], "... not by raising validation accuracy"
    assert abs(train["weight decay 1e-2"] - train["no regularization"]) < 0.02, "weight decay hardly changes"
    assert abs(final["weight decay 1e-2"] - final["no regularization"]) < 0.02
    aug = ns["aug"]
    assert aug["300 x 5 augmented"] <= aug["300 originals"] + 0.01, "the prose says: no gain here"
    tr = ns["tr_out"]
    assert max(tr["(b) frozen features + new head"], tr["(c) fine-tune all"]) < tr["(a) from scratch"] + 0.05, \
        "the prose says: transfer gains small or absent"


# -- structure and style ----------------------------------------------------------------------------

def test_nbformat_45_ids_and_jupyterlab_metadata():
    raw = json.loads(nb_path(AID).read_text(encoding="utf-8"))
    assert (raw["nbformat"], raw["nbformat_minor"]) == (4, 5)
    ids = [c.get("id") for c in raw["cells"]]
    assert all(isinstance(i, str) and i for i in ids) and len(set(ids)) == len(ids)
    assert raw["metadata"]["kernelspec"] == {"display_name": "Python 3 (ipykernel)", "language": "python",
                                             "name": "python3"}
    assert raw["metadata"]["language_info"]["name"] == "python"
    assert "version" not in raw["metadata"]["language_info"], "no interpreter version that differs per machine"


def test_written_answer_cells_have_points_and_a_rubric():
    manual = [c for c in notebook(AID)["cells"] if c["cell_type"] == "markdown"
              and c.get("metadata", {}).get("nbgrader", {}).get("solution")]
    assert len(manual) >= 2
    for c in manual:
        info = c["metadata"]["nbgrader"]
        assert info["grade"] is True and info["points"] > 0 and info["schema_version"] == 3
        text = _source(c)
        assert "### BEGIN SOLUTION" in text and "### END SOLUTION" in text and "Rubric for TAs" in text
    assert {c["metadata"]["nbgrader"]["grade_id"] for c in manual} >= {"written_bn_running_stats",
                                                                       "written_early_stopping"}


def _plain_code_cells():
    for cell in notebook(AID)["cells"]:
        info = cell.get("metadata", {}).get("nbgrader", {})
        if cell["cell_type"] == "code" and not info.get("solution") and not info.get("grade"):
            yield cell, info


def test_non_graded_code_style():
    for cell, _ in _plain_code_cells():
        src = _source(cell)
        for line in src.splitlines():
            assert len(line) <= 100, f"line over 100 characters: {line!r}"
        toks = tokenize.generate_tokens(io.StringIO(src).readline)
        assert not any(t.type == tokenize.OP and t.string == ";" for t in toks), \
            f"statement-joining ';' in:\n{src[:200]}"


def test_one_locked_helper_cell_and_no_hand_written_backprop():
    helpers = [(c, i) for c, i in _plain_code_cells() if i.get("grade_id") == "helpers"]
    assert len(helpers) == 1 and helpers[0][1]["locked"] is True
    helper_src = _source(helpers[0][0])
    assert "dlkit.train.fit" in helper_src
    everything = "\n".join(_source(c) for c in notebook(AID)["cells"] if c["cell_type"] == "code")
    for name in ("def train(", "def loader(", "def accuracy(", "def attempt("):
        assert everything.count(name) == 1, f"{name} is defined once, in the helper cell"
    for gone in ("mlp_grads", "train_mlp", "softmax_xent", ".T @ G"):
        assert gone not in everything, f"hand-written backprop ({gone}) is gone: the modules train with fit"
