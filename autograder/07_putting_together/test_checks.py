"""Hidden checks for 07_putting_together (points: accuracy 2, confusion_matrix 3).

Every call goes through a trusted driver that hands the student's function the arguments inside
the sandbox and sends them back afterwards: an answer that changes its inputs (``logits -= ...``
for stability, a flat index built in ``labels``) fails, because GRADED.md says answers have no
side effects.  Types, dtypes (the confusion matrix is int64) and shapes are checked before values.
"""
from __future__ import annotations

import numpy as np

from autograder.api import (load_reference, check, expect_array, expect_scalar, fail,
                            call_pure, known_mistake)


ref = load_reference(__file__)


# -- accuracy ------------------------------------------------------------------------------------

def _check_accuracy(student, logits, labels, case):
    got = expect_scalar(call_pure(student, "accuracy", ("logits", "labels"), logits, labels), "float",
                        name=f"accuracy for {case}")
    want = ref.accuracy(logits, labels)
    tol = 1e-12
    if not np.isclose(got, want, rtol=tol, atol=tol):
        pred = np.argmax(logits, axis=1)
        known = {
            "argmin instead of argmax": lambda: float(np.mean(np.argmin(logits, axis=1) == labels)),
            "the number of correct rows, not the fraction (divide by the number of rows)":
                lambda: float(np.sum(pred == labels)),
            "a percentage; return a fraction in [0, 1]": lambda: 100.0 * want,
            "the max logit VALUE was compared with the label; compare its INDEX (argmax)":
                lambda: float(np.mean(np.max(logits, axis=1) == labels)),
            "argmax over axis 0 (the batch); the classes are axis 1":
                lambda: float(np.mean(np.argmax(logits, axis=0) == labels)),
            "predictions (m,) were compared with labels[:, None] (m, 1): that is an (m, m) table of all pairs":
                lambda: float(np.mean(pred == labels[:, None])),
        }
        found = []
        # 0 and 1 (none / all rows right) come out of too many different mistakes to name one.
        for description, make in (known.items() if got not in (0.0, 1.0) else ()):
            try:
                value = make()
            except Exception:  # noqa: BLE001 - a mistake that cannot happen on this case
                continue
            if not np.isclose(value, want, rtol=tol, atol=tol) and np.isclose(got, value, rtol=tol, atol=tol):
                found.append(description)
        fail(f"accuracy is wrong for {case}.", got=got, expected=want, hint=found[0] if len(found) == 1 else None)


@check("accuracy", points=1)
def test_accuracy_basic(student):
    logits = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3], [0.2, 0.1, 3.0], [1.0, 2.0, 3.0], [3.0, -1.0, 0.0]])
    labels = np.array([0, 1, 1, 0, 0])
    _check_accuracy(student, logits, labels, "5 rows, 3 classes (3 correct)")
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((40, 7))
    _check_accuracy(student, logits, rng.integers(0, 7, size=40), "40 rows, 7 classes")
    logits = rng.standard_normal((3, 4))
    labels = np.argmax(logits, axis=1)
    labels[1] = (labels[1] + 1) % 4
    _check_accuracy(student, logits, labels, "3 rows, 4 classes (2 correct)")
    logits = np.array([[0.0, 2.0, 1.0], [1.0, 0.0, 0.0], [2.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    _check_accuracy(student, logits, np.array([2, 0, 2, 1]), "4 rows of whole-number logits (1 correct)")


@check("accuracy", points=1)
def test_accuracy_edge_cases(student):
    _check_accuracy(student, np.array([[0.1, 0.9]]), np.array([1]), "one row, correct")
    _check_accuracy(student, np.array([[0.1, 0.9]]), np.array([0]), "one row, wrong")
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((6, 6))
    _check_accuracy(student, logits, np.argmax(logits, axis=1), "square logits (6, 6), all correct")
    labels = (np.argmax(logits, axis=1) + 1) % 6
    _check_accuracy(student, logits, labels, "square logits (6, 6), none correct")
    logits = rng.standard_normal((9, 9))
    labels = np.where(np.arange(9) % 2 == 0, np.argmax(logits, axis=1), np.argmin(logits, axis=1))
    _check_accuracy(student, logits, labels, "square logits (9, 9), 5 of 9 correct")
    logits = 50.0 * rng.standard_normal((7, 3))
    _check_accuracy(student, logits, np.array([0, 1, 2, 0, 1, 2, 0]), "large logits (7, 3)")


# -- confusion_matrix ----------------------------------------------------------------------------

def _check_cm(student, predictions, labels, k, case):
    got = call_pure(student, "confusion_matrix", ("predictions", "labels", "num_classes"), predictions, labels, k)
    name = f"the confusion matrix for {case}"
    got = expect_array(got, shape=(k, k), dtype_kind="iu", name=f"{name} (an int64 array of shape ({k}, {k}))")
    if got.dtype != np.int64:
        fail(f"{name} has dtype {got.dtype}; the contract is int64 counts (GRADED.md), so that no count "
             "can overflow: create it with dtype=np.int64 or convert with .astype(np.int64).")
    want = ref.confusion_matrix(predictions, labels, k)
    if not np.array_equal(got, want):
        once = np.zeros((k, k), dtype=np.int64)
        once[labels, predictions] = 1
        fail(f"confusion_matrix is wrong for {case}: entry [t, p] counts rows with true label t and "
             "prediction p.", got=got, expected=want, hint=known_mistake(got, want, {
                 "transposed: rows must be the TRUE labels, columns the predictions": lambda: want.T,
                 "cm[labels, predictions] += 1 counts a repeated (label, prediction) pair only once; "
                 "use np.add.at or a loop": lambda: once,
             }, rtol=0, atol=0))


@check("confusion_matrix", points=1)
def test_confusion_matrix_basic(student):
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    predictions = np.array([0, 1, 1, 1, 2, 0, 2])
    _check_cm(student, predictions, labels, 3, "7 rows, 3 classes")
    rng = np.random.default_rng(2)
    _check_cm(student, rng.integers(0, 5, size=60), rng.integers(0, 5, size=60), 5, "60 rows, 5 classes")


@check("confusion_matrix", points=1)
def test_confusion_matrix_edge_cases(student):
    _check_cm(student, np.array([1, 1, 1]), np.array([0, 0, 0]), 4, "classes 2 and 3 never occur (k = 4)")
    _check_cm(student, np.array([0]), np.array([0]), 1, "one row, one class")
    _check_cm(student, np.array([2, 0, 2, 2]), np.array([1, 1, 1, 0]), 3, "repeated pairs")
    _check_cm(student, np.array([0, 2, 1]), np.array([1, 0, 2]), 3, "3 rows, all wrong")
    empty = np.zeros(0, dtype=np.int64)
    _check_cm(student, empty, empty, 2, "no rows at all (k = 2)")


@check("confusion_matrix", points=1)
def test_confusion_matrix_counts_add_up(student):
    # Larger, skewed classes: every row is counted once, so the matrix sums to the number of rows
    # and its row sums are the class counts.
    rng = np.random.default_rng(7)
    labels = rng.choice(10, size=500, p=np.r_[0.3, np.full(9, 0.7 / 9)])
    predictions = np.where(rng.random(500) < 0.8, labels, rng.integers(0, 10, size=500))
    _check_cm(student, predictions, labels, 10, "500 rows, 10 skewed classes")
    _check_cm(student, predictions[:40].astype(np.int32), labels[:40].astype(np.int32), 10,
              "40 rows given as int32 arrays")
