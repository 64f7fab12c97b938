import math

import numpy as np
import pytest

from imgclf.evaluate.metrics import (
    confident_mistakes,
    confusion,
    confusion_records,
    cross_entropy,
    per_class_report,
    summary_metrics,
)

Y = np.array([0, 0, 1, 1, 2])
PROBS = np.array([
    [0.9, 0.05, 0.05],
    [0.2, 0.7, 0.1],   # wrong, confidence 0.7
    [0.1, 0.8, 0.1],
    [0.1, 0.6, 0.3],
    [0.5, 0.1, 0.4],   # wrong, confidence 0.5
])


def test_summary_metrics_match_hand_computed_values():
    m = summary_metrics(Y, PROBS)
    assert m["accuracy"] == 0.6
    expected_loss = -np.mean(np.log([0.9, 0.2, 0.8, 0.6, 0.4]))
    assert math.isclose(m["loss"], expected_loss, abs_tol=1e-6)
    # class precisions 1/2, 2/3, 0 -> macro 0.388889; recalls 1/2, 1, 0 -> 0.5
    assert math.isclose(m["precision_macro"], (0.5 + 2 / 3) / 3, abs_tol=1e-6)
    assert math.isclose(m["recall_macro"], 0.5, abs_tol=1e-6)


def test_cross_entropy_clips_zero_probabilities_like_keras():
    assert math.isclose(cross_entropy(np.array([0]), np.array([[0.0, 1.0]])), -math.log(1e-7), rel_tol=1e-6)


def test_per_class_report_and_confusion():
    y_pred = PROBS.argmax(axis=1)
    report = per_class_report(Y, y_pred, ["zero", "one", "two"])
    assert report["one"] == {"precision": round(2 / 3, 6), "recall": 1.0, "f1": 0.8, "support": 2}
    assert report["two"]["support"] == 1 and report["two"]["recall"] == 0.0
    assert confusion(Y, y_pred, 3).tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    records = confusion_records(Y, y_pred, ["zero", "one", "two"])
    assert records[1] == {"actual": "zero", "predicted": "one"} and len(records) == 5


def test_confident_mistakes_are_ordered_by_confidence():
    assert confident_mistakes(Y, PROBS, 10).tolist() == [1, 4]
    assert confident_mistakes(Y, PROBS, 1).tolist() == [1]


def _sklearn_figures(y_true, probs, class_names):
    """What sklearn.metrics gives for the same predictions: the reference the numpy code must match."""
    from sklearn.metrics import classification_report, confusion_matrix, precision_recall_fscore_support

    y_pred, labels = probs.argmax(axis=1), np.arange(len(class_names))
    macro = precision_recall_fscore_support(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    report = classification_report(y_true, y_pred, labels=labels, target_names=class_names, output_dict=True,
                                   zero_division=0)
    per_class = {name: {"precision": round(report[name]["precision"], 6), "recall": round(report[name]["recall"], 6),
                        "f1": round(report[name]["f1-score"], 6), "support": int(report[name]["support"])}
                 for name in class_names}
    return [round(float(v), 6) for v in macro[:3]], per_class, confusion_matrix(y_true, y_pred, labels=labels)


@pytest.mark.parametrize("switch", ["1", "0"])  # IMGCLF_NUMPY_METRICS=0: sklearn's own, the same figures
@pytest.mark.parametrize("seed", range(6))
def test_metrics_equal_sklearns_with_classes_never_predicted_or_never_present(seed, switch, monkeypatch):
    monkeypatch.setenv("IMGCLF_NUMPY_METRICS", switch)
    rng = np.random.default_rng(seed)
    n_classes, n = int(rng.integers(2, 12)), int(rng.integers(1, 300))
    names = [f"c{i}" for i in range(n_classes)]
    # Labels drawn from a subset, and probabilities peaked on another: some classes are absent from the
    # truth, some never predicted, some both (precision, recall or F1 with nothing to count).
    y_true = rng.choice(rng.choice(n_classes, size=max(1, n_classes - 2), replace=False), size=n)
    probs = rng.random((n, n_classes)) ** 4
    probs[:, rng.choice(n_classes, size=n_classes // 3, replace=False)] *= 0.01
    probs /= probs.sum(axis=1, keepdims=True)
    macro, per_class, matrix = _sklearn_figures(y_true, probs, names)

    summary = summary_metrics(y_true, probs)
    assert [summary[k] for k in ("precision_macro", "recall_macro", "f1_macro")] == macro
    assert per_class_report(y_true, probs.argmax(axis=1), names) == per_class
    assert confusion(y_true, probs.argmax(axis=1), n_classes).tolist() == matrix.tolist()


def test_confusion_refuses_labels_outside_the_classes():
    with pytest.raises(ValueError, match="labels outside 0..2"):
        confusion(np.array([0, 3]), np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="labels outside 0..2"):
        confusion(np.array([0, 1]), np.array([-1, 1]), 3)
