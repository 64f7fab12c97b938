import math

import numpy as np

from imgclf.metrics import (
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
