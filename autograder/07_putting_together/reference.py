"""Trusted reference for 07_putting_together (hidden checks only; never sent to the sandbox)."""
from __future__ import annotations

import numpy as np


def accuracy(logits, labels):
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def confusion_matrix(predictions, labels, num_classes):
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (labels, predictions), 1)
    return cm


ANSWERS: dict[str, str] = {
    "accuracy": '''
def accuracy(logits, labels):
    return float((logits.argmax(axis=1) == labels).mean())
''',
    "confusion_matrix": '''
def confusion_matrix(predictions, labels, num_classes):
    flat = labels * num_classes + predictions
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes).astype(np.int64)
''',
}
