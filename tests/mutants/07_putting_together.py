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
    },
}
