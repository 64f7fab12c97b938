"""Test-set metrics from predicted probabilities, as plain dicts.

Computed from the confusion matrix in numpy, to the values of scikit-learn's precision_recall_fscore_support
and classification_report with zero_division=0: importing sklearn.metrics would cost more than all of
evaluate's scoring. Written against scikit-learn 1.9's definitions; tests/test_metrics.py holds every
figure to sklearn's, so a change of theirs fails there. IMGCLF_NUMPY_METRICS=0 computes them with
sklearn.metrics instead, to measure what this buys (benchmarks/ab_stage.py).
"""

from __future__ import annotations

import numpy as np

from imgclf import switches

# Keras clips probabilities to [1e-7, 1 - 1e-7] in its cross-entropy; match it.
_EPSILON = 1e-7


def cross_entropy(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Mean sparse categorical cross-entropy of predicted probabilities."""
    picked = np.clip(probs[np.arange(len(y_true)), y_true], _EPSILON, 1 - _EPSILON)
    return float(-np.mean(np.log(picked)))


def summary_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Accuracy, loss and macro precision/recall/F1 for metrics/eval.json."""
    y_pred = probs.argmax(axis=1)
    precision, recall, f1, _ = _scores(y_true, y_pred, probs.shape[1])
    return {
        "accuracy": round(float(np.mean(y_pred == y_true)), 6),
        "loss": round(cross_entropy(y_true, probs), 6),
        "precision_macro": round(float(np.mean(precision)), 6),
        "recall_macro": round(float(np.mean(recall)), 6),
        "f1_macro": round(float(np.mean(f1)), 6),
    }


def per_class_report(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> dict[str, dict]:
    """Per-class precision, recall, F1 and support: the values of sklearn's classification report."""
    columns = _scores(y_true, y_pred, len(class_names))
    return {
        name: {"precision": round(float(precision), 6), "recall": round(float(recall), 6),
               "f1": round(float(f1), 6), "support": int(support)}
        for name, precision, recall, f1, support in zip(class_names, *columns)
    }


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrix, rows = actual, columns = predicted."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    for labels in (y_true, y_pred):
        if labels.size and not 0 <= labels.min() <= labels.max() < n_classes:
            raise ValueError(f"labels outside 0..{n_classes - 1} in the confusion matrix of {n_classes} classes")
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> tuple[np.ndarray, ...]:
    """Precision, recall, F1 and support of each class: from the confusion matrix, or (switch off) sklearn's."""
    if switches.on("IMGCLF_NUMPY_METRICS"):
        return _per_class(confusion(y_true, y_pred, n_classes))
    from sklearn.metrics import precision_recall_fscore_support

    return precision_recall_fscore_support(y_true, y_pred, labels=list(range(n_classes)), zero_division=0)


def _per_class(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 and support of each class; 0 where a ratio has nothing to count (zero_division=0)."""
    hits = np.diag(matrix).astype(np.float64)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
    ratios = [np.divide(top, bottom, out=np.zeros_like(hits), where=bottom > 0)
              for top, bottom in ((hits, predicted), (hits, support), (2 * hits, predicted + support))]
    return (*ratios, support)


def confusion_records(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> list[dict[str, str]]:
    """One {actual, predicted} record per sample: the shape DVC's confusion template takes."""
    return [{"actual": class_names[t], "predicted": class_names[p]} for t, p in zip(y_true, y_pred)]


def confident_mistakes(y_true: np.ndarray, probs: np.ndarray, limit: int) -> np.ndarray:
    """Indices of misclassified samples, most confident first."""
    y_pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(y_pred != y_true)
    confidence = probs[wrong, y_pred[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")][:limit]
