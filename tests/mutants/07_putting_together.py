"""Mutants for 07_putting_together (see tests/mutants/__init__.py)."""

MUTANTS: dict[str, dict[str, str]] = {
    "accuracy": {
        "argmin instead of argmax": '''
def accuracy(logits, labels):
    return float(np.mean(np.argmin(logits, axis=1) == labels))
''',
        "argmax over the wrong axis (axis=0)": '''
def accuracy(logits, labels):
    pred = np.argmax(logits, axis=0)
    n = min(len(pred), len(labels))
    return float(np.sum(pred[:n] == labels[:n]) / len(labels))
''',
        "returns the count of correct rows, not the fraction": '''
def accuracy(logits, labels):
    return float(np.sum(np.argmax(logits, axis=1) == labels))
''',
        "returns a percentage": '''
def accuracy(logits, labels):
    return float(100.0 * np.mean(np.argmax(logits, axis=1) == labels))
''',
        "compares the max logit value (not its index) with the label": '''
def accuracy(logits, labels):
    return float(np.mean(np.max(logits, axis=1) == labels))
''',
        "returns a numpy array instead of a float": '''
def accuracy(logits, labels):
    return np.array([np.mean(np.argmax(logits, axis=1) == labels)])
''',
        "right value, but shifts the caller's logits in place for stability (logits -= max)": '''
def accuracy(logits, labels):
    logits -= logits.max(axis=1, keepdims=True)
    return float(np.mean(np.argmax(logits, axis=1) == labels))
''',
        "compares the predictions with labels[:, None]: the mean of an (m, m) table": '''
def accuracy(logits, labels):
    return float(np.mean(np.argmax(logits, axis=1) == labels[:, None]))
''',
        "rounds the fraction to two decimals": '''
def accuracy(logits, labels):
    return round(float(np.mean(np.argmax(logits, axis=1) == labels)), 2)
''',
        "integer division of the count by the number of rows": '''
def accuracy(logits, labels):
    return float(int(np.sum(np.argmax(logits, axis=1) == labels)) // len(labels))
''',
    },
    "confusion_matrix": {
        "transposed (row = prediction, column = true label)": '''
def confusion_matrix(predictions, labels, num_classes):
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    for p, t in zip(predictions, labels):
        cm[p, t] += 1
    return cm
''',
        "fancy-index += counts repeated pairs only once": '''
def confusion_matrix(predictions, labels, num_classes):
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    cm[labels, predictions] += 1
    return cm
''',
        "float dtype": '''
def confusion_matrix(predictions, labels, num_classes):
    cm = np.zeros((num_classes, num_classes))
    for p, t in zip(predictions, labels):
        cm[t, p] += 1
    return cm
''',
        "size from the data (max label + 1) instead of num_classes": '''
def confusion_matrix(predictions, labels, num_classes):
    k = int(max(np.max(predictions), np.max(labels))) + 1
    cm = np.zeros((k, k), dtype=np.int64)
    for p, t in zip(predictions, labels):
        cm[t, p] += 1
    return cm
''',
        "normalises the rows (fractions instead of counts)": '''
def confusion_matrix(predictions, labels, num_classes):
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    for p, t in zip(predictions, labels):
        cm[t, p] += 1
    return cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
''',
        "int32 counts (the contract is int64)": '''
def confusion_matrix(predictions, labels, num_classes):
    cm = np.zeros((num_classes, num_classes), dtype=np.int32)
    np.add.at(cm, (labels, predictions), 1)
    return cm
''',
        "right counts, but builds the flat index in place in the caller's labels": '''
def confusion_matrix(predictions, labels, num_classes):
    labels *= num_classes
    labels += predictions
    return np.bincount(labels, minlength=num_classes * num_classes).reshape(num_classes, num_classes).astype(np.int64)
''',
        "np.bincount without minlength (too short when the last cells are empty)": '''
def confusion_matrix(predictions, labels, num_classes):
    counts = np.bincount(labels * num_classes + predictions)
    return counts.reshape(num_classes, -1).astype(np.int64)
''',
        "uses np.histogram2d (float counts)": '''
def confusion_matrix(predictions, labels, num_classes):
    cm, _, _ = np.histogram2d(labels, predictions, bins=num_classes, range=[[0, num_classes], [0, num_classes]])
    return cm
''',
        "flat index with the wrong stride (label * num_classes + prediction uses num_classes - 1)": '''
def confusion_matrix(predictions, labels, num_classes):
    flat = labels * (num_classes - 1) + predictions
    return np.bincount(flat, minlength=num_classes * num_classes)[: num_classes * num_classes].reshape(
        num_classes, num_classes).astype(np.int64)
''',
    },
}

#: Correct answers written differently: they must keep full marks (tests/test_checks_do_nothing.py).
CORRECT: dict[str, dict[str, str]] = {
    "accuracy": {
        "count / rows (a numpy float comes back as a float)": '''
def accuracy(logits, labels):
    return (logits.argmax(axis=1) == labels).sum() / len(labels)
''',
        "a loop over the rows": '''
def accuracy(logits, labels):
    correct = 0
    for row, label in zip(logits, labels):
        if int(np.argmax(row)) == int(label):
            correct += 1
    return correct / len(labels)
''',
        "count_nonzero over the size, with a shifted copy of the logits": '''
def accuracy(logits, labels):
    shifted = logits - logits.max(axis=1, keepdims=True)
    return float(np.count_nonzero(np.argmax(shifted, axis=-1) == labels) / labels.size)
''',
    },
    "confusion_matrix": {
        "a loop": '''
def confusion_matrix(predictions, labels, num_classes):
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    for t, p in zip(labels, predictions):
        cm[t, p] += 1
    return cm
''',
        "one-hot matrices multiplied": '''
def confusion_matrix(predictions, labels, num_classes):
    eye = np.eye(num_classes, dtype=np.int64)
    return eye[labels].T @ eye[predictions]
''',
        "np.histogram2d converted to int64": '''
def confusion_matrix(predictions, labels, num_classes):
    counts, _, _ = np.histogram2d(labels, predictions, bins=num_classes,
                                  range=[[0, num_classes], [0, num_classes]])
    return counts.astype(np.int64)
''',
        "a flat index in a new array, bincount with minlength": '''
def confusion_matrix(predictions, labels, num_classes):
    flat = np.asarray(labels, dtype=np.int64) * num_classes + predictions
    return np.bincount(flat, minlength=num_classes ** 2).reshape(num_classes, num_classes).astype(np.int64)
''',
    },
}
