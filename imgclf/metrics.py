"""Test-set metrics from predicted probabilities (sklearn), as plain dicts."""

from __future__ import annotations

import numpy as np

# scikit-learn is imported inside the functions that use it: importing sklearn.metrics takes
# 1-2 s, and the report stage, which needs only confident_mistakes, must not pay for it.

# Keras clips probabilities to [1e-7, 1 - 1e-7] in its cross-entropy; match it.
_EPSILON = 1e-7


def cross_entropy(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Mean sparse categorical cross-entropy of predicted probabilities."""
    picked = np.clip(probs[np.arange(len(y_true)), y_true], _EPSILON, 1 - _EPSILON)
    return float(-np.mean(np.log(picked)))


def summary_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Accuracy, loss and macro precision/recall/F1 for metrics/eval.json."""
    from sklearn.metrics import precision_recall_fscore_support

    y_pred = probs.argmax(axis=1)
    labels = np.arange(probs.shape[1])
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average="macro", zero_division=0
    )
    return {
        "accuracy": round(float(np.mean(y_pred == y_true)), 6),
        "loss": round(cross_entropy(y_true, probs), 6),
        "precision_macro": round(float(precision), 6),
        "recall_macro": round(float(recall), 6),
        "f1_macro": round(float(f1), 6),
    }


def per_class_report(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> dict[str, dict]:
    """Per-class precision, recall, F1 and support (sklearn's classification report)."""
    from sklearn.metrics import classification_report

    report = classification_report(
        y_true, y_pred, labels=np.arange(len(class_names)), target_names=class_names,
        output_dict=True, zero_division=0,
    )
    return {
        name: {
            "precision": round(report[name]["precision"], 6),
            "recall": round(report[name]["recall"], 6),
            "f1": round(report[name]["f1-score"], 6),
            "support": int(report[name]["support"]),
        }
        for name in class_names
    }


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrix, rows = actual, columns = predicted."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(y_true, y_pred, labels=np.arange(n_classes))


def confusion_records(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> list[dict[str, str]]:
    """One {actual, predicted} record per sample: the shape DVC's confusion template takes."""
    return [{"actual": class_names[t], "predicted": class_names[p]} for t, p in zip(y_true, y_pred)]


def confident_mistakes(y_true: np.ndarray, probs: np.ndarray, limit: int) -> np.ndarray:
    """Indices of misclassified samples, most confident first."""
    y_pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(y_pred != y_true)
    confidence = probs[wrong, y_pred[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")][:limit]
