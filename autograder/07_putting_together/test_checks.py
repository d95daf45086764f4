"""Hidden checks for 07_putting_together (points: accuracy 2, confusion_matrix 2)."""
from __future__ import annotations

import numpy as np

from autograder.api import load_reference, check, diagnose, expect_array, expect_scalar, fail


ref = load_reference(__file__)


def _check_accuracy(student, logits, labels, case):
    got = expect_scalar(student.call("accuracy", logits, labels), "float", name=f"accuracy for {case}")
    want = ref.accuracy(logits, labels)
    if not np.isclose(got, want, rtol=1e-12, atol=1e-12):
        n = len(labels)
        known = {
            round(float(np.mean(np.argmin(logits, axis=1) == labels)), 12): "argmin instead of argmax",
            round(want * n, 12): "the number of correct rows, not the fraction (divide by the number of rows)",
            round(want * 100, 12): "a percentage; return a fraction in [0, 1]",
            round(float(np.mean(np.max(logits, axis=1) == labels)), 12):
                "the max logit VALUE was compared with the label; compare its INDEX (argmax)",
        }
        hint = known.get(round(got, 12))
        if hint is None and logits.shape[0] == logits.shape[1] and np.isclose(
                got, float(np.mean(np.argmax(logits, axis=0) == labels))):
            hint = "argmax over axis 0 (the batch); the classes are axis 1"
        fail(f"accuracy is wrong for {case}.", got=got, expected=want, hint=hint)


@check("accuracy", points=1)
def test_accuracy_basic(student):
    logits = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3], [0.2, 0.1, 3.0], [1.0, 2.0, 3.0], [3.0, -1.0, 0.0]])
    labels = np.array([0, 1, 1, 0, 0])
    _check_accuracy(student, logits, labels, "5 rows, 3 classes (3 correct)")
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((40, 7))
    _check_accuracy(student, logits, rng.integers(0, 7, size=40), "40 rows, 7 classes")


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


def _check_cm(student, predictions, labels, k, case):
    got = expect_array(student.call("confusion_matrix", predictions, labels, k), shape=(k, k), dtype_kind="i",
                       name=f"the confusion matrix for {case} (an int64 array of shape ({k}, {k}))")
    want = ref.confusion_matrix(predictions, labels, k)
    if not np.array_equal(got, want):
        once = np.zeros((k, k), dtype=np.int64)
        once[labels, predictions] = 1
        fail(f"confusion_matrix is wrong for {case}: entry [t, p] counts rows with true label t and "
             "prediction p.", got=got, expected=want, hint=diagnose(got, {
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


@check("confusion_matrix", points=1)
def test_confusion_matrix_counts_add_up(student):
    # Larger, skewed classes: every row is counted once, so the matrix sums to the number of rows
    # and its row sums are the class counts.
    rng = np.random.default_rng(7)
    labels = rng.choice(10, size=500, p=np.r_[0.3, np.full(9, 0.7 / 9)])
    predictions = np.where(rng.random(500) < 0.8, labels, rng.integers(0, 10, size=500))
    _check_cm(student, predictions, labels, 10, "500 rows, 10 skewed classes")
