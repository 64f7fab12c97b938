import math

import numpy as np
import pytest
from sklearn.metrics import top_k_accuracy_score

from imgclf.evaluate.metrics import (
    calibration_bins,
    confident_mistakes,
    confused_examples,
    confusion,
    confusion_records,
    cross_entropy,
    expected_calibration_error,
    most_confused,
    per_class_report,
    summary_metrics,
    top_k_accuracy,
    top_ks,
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


def test_summary_metrics_keep_their_keys_and_add_top_k_and_ece_after_them():
    probs = np.full((4, 10), 0.05)
    probs[np.arange(4), [0, 1, 2, 9]] = 0.55
    keys = list(summary_metrics(np.array([0, 1, 3, 4]), probs))
    assert keys == ["accuracy", "loss", "precision_macro", "recall_macro", "f1_macro", "top3_accuracy",
                    "top5_accuracy", "ece"]
    assert list(summary_metrics(Y, PROBS)) == [*keys[:5], "ece"]  # 3 classes: every class is in the top 3


def test_top_ks_by_the_number_of_classes():
    assert [top_ks(n) for n in (2, 3, 4, 9, 10, 100)] == [(), (), (3,), (3,), (3, 5), (3, 5)]


# 4 classes; the true class ranks 1st, 2nd, 3rd and 4th
TOP_Y = np.array([0, 1, 2, 3])
TOP_PROBS = np.array([
    [0.4, 0.3, 0.2, 0.1],   # rank 1
    [0.5, 0.3, 0.15, 0.05],  # rank 2
    [0.1, 0.5, 0.15, 0.25],  # rank 3
    [0.3, 0.3, 0.3, 0.1],   # rank 4
])


def test_top_k_accuracy_by_hand_and_as_sklearn():
    assert [top_k_accuracy(TOP_Y, TOP_PROBS, k) for k in (1, 2, 3, 4)] == [0.25, 0.5, 0.75, 1.0]
    for k in (1, 2, 3):
        assert top_k_accuracy(TOP_Y, TOP_PROBS, k) == top_k_accuracy_score(TOP_Y, TOP_PROBS, k=k, labels=range(4))


def test_top_k_accuracy_breaks_ties_as_sklearn():
    # all four equal: sklearn ranks the higher class index first, so class 3 is 1st and class 0 is 4th
    tied = np.full((4, 4), 0.25)
    assert [top_k_accuracy(TOP_Y, tied, k) for k in (1, 2, 3)] == [0.25, 0.5, 0.75]
    rng = np.random.default_rng(0)
    for _ in range(20):
        probs = rng.integers(0, 3, (50, 6)) + 1.0  # many ties
        y = rng.integers(0, 6, 50)
        for k in (1, 3, 5):
            assert top_k_accuracy(y, probs, k) == top_k_accuracy_score(y, probs, k=k, labels=range(6))


def test_calibration_bins_and_ece_by_hand():
    # confidences 0.95, 0.9 (right, wrong) in bin (14/15, 1] and (13/15, 14/15]; 0.5 twice (right) in (7/15, 8/15]
    y = np.array([0, 1, 0, 1])
    probs = np.array([[0.95, 0.05], [0.9, 0.1], [0.5, 0.5], [0.5, 0.5]])
    probs[3] = [0.4999, 0.5001]  # the second class, right, at confidence 0.5001
    bins = calibration_bins(y, probs)
    assert len(bins) == 15 and bins[0]["lower"] == 0.0 and bins[-1]["upper"] == 1.0
    filled = {i: b for i, b in enumerate(bins) if b["count"]}
    assert sorted(filled) == [7, 13, 14]
    assert filled[14] == {"lower": 14 / 15, "upper": 1.0, "count": 1, "confidence": 0.95, "accuracy": 1.0}
    assert filled[13]["count"] == 1 and filled[13]["accuracy"] == 0.0
    assert filled[7]["count"] == 2 and filled[7]["confidence"] == pytest.approx(0.50005)
    assert filled[7]["accuracy"] == 1.0  # argmax of [0.5, 0.5] is class 0, the truth
    assert bins[0]["confidence"] is None and bins[0]["accuracy"] is None
    expected = (1 * 0.05 + 1 * 0.9 + 2 * (1 - 0.50005)) / 4
    assert expected_calibration_error(bins) == pytest.approx(expected)
    assert summary_metrics(y, probs)["ece"] == round(expected, 6)


def test_calibration_bins_hold_their_upper_edge():
    # (lower, upper]: a confidence of exactly 3/15 = 0.2 is in the third bin, 1.0 in the last
    probs = np.array([[0.2] * 5, [1.0, 0, 0, 0, 0]])
    bins = calibration_bins(np.array([0, 0]), probs)
    assert bins[2]["count"] == 1 and bins[3]["count"] == 0 and bins[14]["count"] == 1


def test_a_model_as_sure_as_it_is_right_has_no_calibration_error():
    # 0.8 sure on 10 images, 8 of them right
    probs = np.tile([0.8, 0.2], (10, 1))
    y = np.array([0] * 8 + [1] * 2)
    assert expected_calibration_error(calibration_bins(y, probs)) == pytest.approx(0.0)


CONFUSED = np.array([
    [9, 2, 0, 5],
    [2, 7, 0, 0],
    [0, 5, 8, 1],
    [0, 0, 1, 20],
])


def test_most_confused_lists_the_largest_off_diagonal_cells_ties_in_row_order():
    # 5 twice (row 0 before row 2), 2 twice (row 0 before row 1), 1 twice (row 2 before row 3); never the diagonal
    assert most_confused(CONFUSED, 10) == [(0, 3, 5), (2, 1, 5), (0, 1, 2), (1, 0, 2), (2, 3, 1), (3, 2, 1)]
    assert most_confused(CONFUSED, 3) == [(0, 3, 5), (2, 1, 5), (0, 1, 2)]
    assert most_confused(np.diag([3, 4]), 10) == []
    assert most_confused(CONFUSED.T, 1) == [(1, 2, 5)]  # (1, 2) before (3, 0)


def test_most_confused_takes_ten_of_many():
    matrix = np.arange(36).reshape(6, 6)
    top = most_confused(matrix, 10)
    assert len(top) == 10 and all(a != p for a, p, _ in top)
    assert [c for *_, c in top] == sorted((c for (a, p), c in np.ndenumerate(matrix) if a != p), reverse=True)[:10]


def test_confused_examples_are_the_most_confident_of_the_pair():
    y = np.array([0, 0, 0, 1, 0])
    probs = np.array([[0.3, 0.7], [0.1, 0.9], [0.9, 0.1], [0.2, 0.8], [0.4, 0.6]])
    assert confused_examples(y, probs, 0, 1, 2).tolist() == [1, 0]
    assert confused_examples(y, probs, 0, 1, 5).tolist() == [1, 0, 4]
    assert confused_examples(y, probs, 1, 0, 2).tolist() == []


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
    for k in top_ks(n_classes):
        expected = top_k_accuracy_score(y_true, probs, k=k, labels=range(n_classes))
        assert summary[f"top{k}_accuracy"] == round(expected, 6)
    assert per_class_report(y_true, probs.argmax(axis=1), names) == per_class
    assert confusion(y_true, probs.argmax(axis=1), n_classes).tolist() == matrix.tolist()


def test_confusion_refuses_labels_outside_the_classes():
    with pytest.raises(ValueError, match="labels outside 0..2"):
        confusion(np.array([0, 3]), np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="labels outside 0..2"):
        confusion(np.array([0, 1]), np.array([-1, 1]), 3)
