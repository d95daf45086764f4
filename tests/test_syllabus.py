"""Every concept of the syllabus (the lecture notes in the design's seeds) has a home in a notebook.

Each concept is mapped to a notebook and a markdown heading that teaches it. A heading's *section*
is its text plus every cell up to the next heading of the same or a higher level. The test fails
when the notebook or the heading is missing, or when one of the concept's keywords does not occur
in that section (case-insensitive) — so a renamed heading or a section that lost its content is
caught, and adding a concept to the course means adding a row here.

Sources of the concepts (lecture notes, summarised in the seeds' README): the Deep Learning Systems
lecture on fully connected networks / optimization / initialization and its summary, the refresher
on gradient descent and adaptive methods, the summer-school notes on initialization, batch
normalization and pretraining, and the lecture notes on autodiff, GPUs, adaptive methods and
generalization.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (concept, notebook, heading substring, keywords that must occur in that section)
SYLLABUS: list[tuple[str, str, str, tuple[str, ...]]] = [
    # -- fully connected networks, matrix form, broadcasting
    ("MLP iteration with explicit bias", "02_fully_connected", "The $L$-layer MLP", ("bias", "Z_{i+1}")),
    ("key questions: width, depth, optimizer, initialization", "02_fully_connected", "The key questions", ("width", "depth", "initiali")),
    ("nonlinear activations", "02_fully_connected", "Why nonlinearities", ("nonlinear",)),
    ("matrix form of a layer (batch as rows)", "00_arrays_broadcasting", "A layer, one example at a time", ("matrix",)),
    ("broadcasting without copies", "00_arrays_broadcasting", "Broadcasting repeats data", ("broadcast", "cop")),
    ("broadcasting rules", "00_arrays_broadcasting", "The broadcasting rules", ("broadcast",)),
    ("gradient of a broadcast sums back", "00_arrays_broadcasting", "gradients of a broadcast", ("sum",)),
    # -- automatic differentiation
    ("computational graph", "01_autodiff_backprop", "A computational graph", ("graph",)),
    ("forward vs reverse mode", "01_autodiff_backprop", "Forward mode and reverse mode", ("reverse",)),
    ("vector-Jacobian products", "01_autodiff_backprop", "Vector–Jacobian products", ("Jacobian",)),
    ("autograd: nodes, parents, backward pass", "01_autodiff_backprop", "Inside dlkit's autograd", ("backward",)),
    ("higher derivatives (gradients are ops)", "01_autodiff_backprop", "higher derivatives", ("create_graph",)),
    ("finite differences vs autodiff", "01_autodiff_backprop", "Checking gradients with finite differences", ("finite",)),
    ("backpropagation in matrix form (G_i recursion)", "01_autodiff_backprop", "Backpropagation through an MLP", ("G_",)),
    # -- optimization
    ("gradient descent", "03_optimization", "Gradient descent on a quadratic", ("gradient descent",)),
    ("step-size regimes", "03_optimization", "Gradient descent on a quadratic", ("step size", "diverge")),
    ("Newton's method", "03_optimization", "Newton's method", ("Hessian",)),
    ("momentum", "03_optimization", "Momentum", ("average",)),
    ("unbiasing momentum", "03_optimization", "Unbiasing", ("bias",)),
    ("Nesterov momentum", "03_optimization", "Nesterov momentum", ("Nesterov",)),
    ("Adagrad", "03_optimization", "Adaptive methods", ("Adagrad",)),
    ("RMSprop", "03_optimization", "Adaptive methods", ("RMSprop",)),
    ("Adam", "03_optimization", "Adaptive methods", ("Adam",)),
    ("bias correction in Adam", "03_optimization", "Adaptive methods", ("bias correction",)),
    ("preconditioning", "03_optimization", "Adaptive methods", ("precondition",)),
    ("stochastic / minibatch variants", "03_optimization", "Stochastic variants", ("minibatch",)),
    # -- initialization
    ("why initialization matters", "04_initialization", "Why initialization matters", ("iterative",)),
    ("zero init and symmetry breaking", "04_initialization", "Zero initialization and the symmetry", ("symmetry", "random")),
    ("variance 1/n, 2/n, 3/n on a 50-layer ReLU net", "04_initialization", "The depth experiment", ("1/n", "2/n", "3/n", "50")),
    ("variance of a sum of products; ReLU halves it", "04_initialization", "comes from", ("central limit", "ReLU", "2/n")),
    ("weights don't move far from initialization", "04_initialization", "Weights don't move far", ("initialization",)),
    ("per-activation init table (tanh, sigmoid x4, ReLU x sqrt2)", "04_initialization", "Heuristics for biases and scales", ("tanh", "sigmoid", "ReLU")),
    ("bias initialization heuristics", "04_initialization", "Heuristics for biases and scales", ("bias", "marginal")),
    ("uniform vs normal draws", "04_initialization", "Heuristics for biases and scales", ("uniform", "normal")),
    ("Xavier / Glorot", "04_initialization", "Xavier / Glorot", ("n_{in}", "n_{out}", "backward")),
    ("Kaiming / He, fan_in vs fan_out", "04_initialization", "Kaiming / He", ("fan_in", "fan_out")),
    ("LeCun initialization", "04_initialization", "Kaiming / He", ("LeCun",)),
    # -- normalization and regularization
    ("composition: x w1 ... wl and learning rates", "05_normalization_regularization", "x \\cdot w_1", ("learning rate", "second-order")),
    ("batch normalization (per feature, gamma/beta)", "05_normalization_regularization", "Batch normalization", ("\\gamma", "\\beta", "batch")),
    ("batch norm train vs test (running statistics)", "05_normalization_regularization", "Training vs evaluation", ("running", "eval")),
    ("layer normalization", "05_normalization_regularization", "Layer normalization", ("example",)),
    ("dropout (inverted, drop probability p)", "05_normalization_regularization", "Dropout", ("inverted", "mask")),
    ("weight decay (L2 vs decoupled)", "05_normalization_regularization", "Weight decay", ("L2", "decoupled", "shrink")),
    ("early stopping", "05_normalization_regularization", "Early stopping", ("validation",)),
    ("generalization, bias-variance", "05_normalization_regularization", "Generalization", ("variance", "capacity")),
    ("bottlenecks", "05_normalization_regularization", "Generalization", ("bottleneck",)),
    ("data augmentation", "05_normalization_regularization", "Generalization", ("augmentation",)),
    ("transfer learning", "05_normalization_regularization", "Generalization", ("transfer learning",)),
    ("greedy layer-wise supervised pretraining", "05_normalization_regularization", "Pretraining", ("greedy",)),
    ("FitNets (hints from a wide teacher)", "05_normalization_regularization", "Pretraining", ("FitNets", "teacher", "hint")),
    # -- GPUs and parameter management
    ("why GPUs: throughput, SIMT, memory hierarchy", "06_gpu_kernels", "Why GPUs", ("SIMT", "memory hierarchy", "bandwidth")),
    ("roofline", "06_gpu_kernels", "Why GPUs", ("roofline",)),
    ("parameters stay on the device, transfers minimized", "06_gpu_kernels", "Host ↔ device", ("parameters", "PCIe", "DLKIT_BACKEND")),
    ("grid / block / thread indexing", "06_gpu_kernels", "Grids, blocks and threads", ("blockIdx", "threadIdx")),
    ("an elementwise CUDA kernel", "06_gpu_kernels", "elementwise kernel", ("saxpy",)),
    ("tiled matmul through shared memory", "06_gpu_kernels", "tiling through shared memory", ("shared memory", "tile")),
    # -- putting it together
    ("accuracy and confusion matrix", "07_putting_together", "Measuring a classifier", ("accuracy", "confusion")),
    ("training with own init, optimizer and normalization", "07_putting_together", "A small grid of choices", ("BatchNorm1d", "Dropout", "fit")),
    ("MNIST", "07_putting_together", "MNIST", ("DLKIT_MNIST_DIR",)),
    ("symbolic differentiation vs autodiff (expression swell)", "01_autodiff_backprop", "symbolic differentiation is not autodiff", ("swell", "product rule")),
    ("the notes' VJP transpose and finite-difference cost", "01_autodiff_backprop", "two slips in the lecture notes", ("J^\\top", "2d")),
    ("the recap's W shapes", "02_fully_connected", "shapes in the lecture's recap", ("Z_i W_i", "examples")),
    ("train / validation / test split", "07_putting_together", "judged on the validation split", ("validation", "TARGET")),
    ("a training loop written by the student", "07_putting_together", "The training loop", ("zero_grad", "backward", "step")),
    ("the test set, once", "07_putting_together", "The test set, once", ("X_test",)),
]

_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")


@lru_cache(maxsize=None)
def sections(notebook_id: str) -> tuple[tuple[int, str, str], ...]:
    """(level, heading, section text) for every markdown heading of the notebook, in order."""
    path = ROOT / "notebooks" / notebook_id / f"{notebook_id}.ipynb"
    if not path.is_file():
        return ()
    nb = json.loads(path.read_text(encoding="utf-8"))
    lines: list[tuple[bool, str]] = []   # (is markdown, line)
    for cell in nb["cells"]:
        src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        md = cell["cell_type"] == "markdown"
        lines += [(md, line) for line in src.splitlines()]
    heads = [(i, len(m.group(1)), m.group(2)) for i, (md, line) in enumerate(lines)
             if md and (m := _HEADING.match(line))]
    out = []
    for k, (i, level, title) in enumerate(heads):
        end = next((j for j, lv, _ in heads[k + 1:] if lv <= level), len(lines))
        out.append((level, title, "\n".join(line for _, line in lines[i:end])))
    return tuple(out)


@pytest.mark.parametrize("concept,notebook_id,heading,keywords", SYLLABUS, ids=[row[0] for row in SYLLABUS])
def test_concept_has_a_home(concept, notebook_id, heading, keywords):
    found = sections(notebook_id)
    assert found, f"{concept!r}: notebook {notebook_id} is missing"
    matches = [(title, text) for _, title, text in found if heading.lower() in title.lower()]
    assert matches, (f"{concept!r}: no heading containing {heading!r} in {notebook_id}; "
                     f"headings: {[t for _, t, _ in found]}")
    title, text = matches[0]
    flat = " ".join(text.split()).lower()                 # line breaks inside prose do not matter
    missing = [k for k in keywords if " ".join(k.split()).lower() not in flat]
    assert not missing, f"{concept!r}: section {title!r} of {notebook_id} never mentions {missing}"


def test_every_notebook_of_the_course_is_covered():
    notebooks = sorted(p.name for p in (ROOT / "notebooks").iterdir() if p.is_dir() and re.match(r"\d\d_", p.name))
    covered = {row[1] for row in SYLLABUS}
    assert set(notebooks) <= covered, f"notebooks with no syllabus concept mapped: {sorted(set(notebooks) - covered)}"
    assert covered <= set(notebooks), f"syllabus rows point to missing notebooks: {sorted(covered - set(notebooks))}"
