"""Test-set metrics from predicted probabilities, as plain dicts.

Computed from the confusion matrix in numpy, to the values of scikit-learn's precision_recall_fscore_support
and classification_report with zero_division=0: importing sklearn.metrics would cost more than all of
evaluate's scoring. Written against scikit-learn 1.9's definitions; tests/test_metrics.py holds every
figure to sklearn's, so a change of theirs fails there. IMGCLF_NUMPY_METRICS=0 computes them with
sklearn.metrics instead, to measure what this buys (benchmarks/ab_stage.py); top-k accuracy too
(top_k_accuracy_score). The expected calibration error has no scikit-learn twin: numpy on both paths.
"""

from __future__ import annotations

import numpy as np

from imgclf import switches

# Keras clips probabilities to [1e-7, 1 - 1e-7] in its cross-entropy; match it.
_EPSILON = 1e-7
CALIBRATION_BINS = 15  # equal-width confidence bins of the expected calibration error (Guo et al., 2017)


def cross_entropy(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Mean sparse categorical cross-entropy of predicted probabilities."""
    picked = np.clip(probs[np.arange(len(y_true)), y_true], _EPSILON, 1 - _EPSILON)
    return float(-np.mean(np.log(picked)))


def summary_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Accuracy, loss, macro precision/recall/F1, top-k accuracies (top_ks) and the expected calibration
    error (15 bins) for metrics/eval.json."""
    y_pred = probs.argmax(axis=1)
    precision, recall, f1, _ = _scores(y_true, y_pred, probs.shape[1])
    return {
        "accuracy": round(float(np.mean(y_pred == y_true)), 6),
        "loss": round(cross_entropy(y_true, probs), 6),
        "precision_macro": round(float(np.mean(precision)), 6),
        "recall_macro": round(float(np.mean(recall)), 6),
        "f1_macro": round(float(np.mean(f1)), 6),
        # Named top<k>_accuracy, not accuracy_top<k>: `dvc exp show --keep 'accuracy|loss'` (README.md) matches
        # column names from their start, so the documented comparison keeps showing accuracy and loss only.
        **{f"top{k}_accuracy": round(_top_k(y_true, probs, k), 6) for k in top_ks(probs.shape[1])},
        "ece": round(expected_calibration_error(calibration_bins(y_true, probs)), 6),
    }


def top_ks(n_classes: int) -> tuple[int, ...]:
    """The k of the top-k accuracies reported: 3 where there are more than 3 classes (with 3 or fewer every
    image is right within its top 3), and 5 from 10 classes on."""
    return tuple(k for k, fewest in ((3, 4), (5, 10)) if n_classes >= fewest)


def top_k_accuracy(y_true: np.ndarray, probs: np.ndarray, k: int) -> float:
    """The share of images whose true class is among the `k` most probable: sklearn's top_k_accuracy_score,
    ties included (of equal probabilities, the higher class index ranks first, as its reversed stable sort has it)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    truth = probs[np.arange(len(y_true)), y_true][:, None]
    above_index = np.arange(probs.shape[1]) > y_true[:, None]
    rank = np.sum((probs > truth) | ((probs == truth) & above_index), axis=1)
    return float(np.mean(rank < k))


def _top_k(y_true: np.ndarray, probs: np.ndarray, k: int) -> float:
    if switches.on("IMGCLF_NUMPY_METRICS"):
        return top_k_accuracy(y_true, probs, k)
    from sklearn.metrics import top_k_accuracy_score

    return float(top_k_accuracy_score(y_true, probs, k=k, labels=list(range(probs.shape[1]))))


def calibration_bins(y_true: np.ndarray, probs: np.ndarray, n_bins: int = CALIBRATION_BINS) -> list[dict]:
    """The reliability diagram's bins: the images whose confidence (their top probability) lies in
    (lower, upper], the first bin [0, upper]; each bin's count, mean confidence and accuracy (None when empty)."""
    confidence = probs.max(axis=1).astype(np.float64)
    right = (probs.argmax(axis=1) == np.asarray(y_true)).astype(np.float64)
    edges = np.arange(n_bins + 1) / n_bins  # i / n correctly rounded: a confidence of exactly 0.2 is in (2/15, 3/15]
    which = np.searchsorted(edges[1:-1], confidence, side="left")
    counts = np.bincount(which, minlength=n_bins)
    sums = [np.bincount(which, weights=values, minlength=n_bins) for values in (confidence, right)]
    return [{"lower": float(edges[i]), "upper": float(edges[i + 1]), "count": int(counts[i]),
             "confidence": float(sums[0][i] / counts[i]) if counts[i] else None,
             "accuracy": float(sums[1][i] / counts[i]) if counts[i] else None}
            for i in range(n_bins)]


def expected_calibration_error(bins: list[dict]) -> float:
    """The gap between confidence and accuracy, bin by bin, weighted by the bins' shares of the images."""
    total = sum(b["count"] for b in bins)
    return float(sum(b["count"] / total * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]))


def most_confused(matrix: np.ndarray, limit: int) -> list[tuple[int, int, int]]:
    """The `limit` largest off-diagonal cells of a confusion matrix as (actual, predicted, count), zero cells
    left out; equal counts in row-major order (by actual class, then predicted), so the list is the same every run."""
    actual, predicted = np.nonzero(matrix * (1 - np.eye(len(matrix), dtype=matrix.dtype)))
    counts = matrix[actual, predicted]
    order = np.lexsort((predicted, actual, -counts))[:limit]
    return [(int(actual[i]), int(predicted[i]), int(counts[i])) for i in order]


def confused_examples(y_true: np.ndarray, probs: np.ndarray, actual: int, predicted: int, limit: int) -> np.ndarray:
    """Indices of the images of class `actual` predicted as `predicted`, most confident first."""
    y_pred = probs.argmax(axis=1)
    found = np.flatnonzero((np.asarray(y_true) == actual) & (y_pred == predicted))
    return found[np.argsort(-probs[found, predicted], kind="stable")][:limit]


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
