"""Score the test split and build what evaluate publishes: metrics, report, confusion matrix, the most
confused pairs, the calibration bins, figures.

Nothing here touches MLflow: evaluate runs it in a second process (imgclf/evaluate/overlap.py)
while it imports MLflow and opens the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgclf import layout
from imgclf.artifacts import SplitPart, png_bytes
from imgclf.evaluate.metrics import (
    calibration_bins,
    confident_mistakes,
    confused_examples,
    confusion,
    confusion_records,
    expected_calibration_error,
    most_confused,
    per_class_report,
    summary_metrics,
)
from imgclf.evaluate.scoring import load_scorer, mean_of_views, mirrored, predict_proba
from imgclf.records import ModelRecord

MISTAKES_SHOWN = 25
CONFUSED_PAIRS = 10  # the largest off-diagonal cells of the confusion matrix
CONFUSED_EXAMPLES = 2  # test images shown per pair
# What test-time augmentation adds to metrics/eval.json, as tta_<name>: a name that does not start with the plain
# figure's keeps `dvc exp show --keep 'accuracy|loss'` (which matches names from their start) to the plain ones.
TTA_FIGURES = ("accuracy", "loss")


@dataclass(frozen=True)
class Scored:
    probs: np.ndarray
    summary: dict[str, float]
    report: dict[str, dict]
    matrix: np.ndarray
    records: list[dict]
    figures: dict[Path, bytes]  # PNGs, rendered once for their files and for MLflow
    runtime: str  # what scored the model: "onnx" (its ONNX copy) or "keras"
    confused: list[dict]  # the most confused pairs: actual, predicted, count, examples (test indices)
    calibration: dict  # the reliability diagram's bins and the expected calibration error
    tta: str = "none"  # evaluate.tta; with flip, summary holds the tta_ figures too (every other output is plain)


def score_test_split(record: ModelRecord, test: SplitPart, meta: dict, tta: str = "none") -> Scored:
    """The trained model (models/) on the test split (its part and meta.json in data/split); with `tta` flip,
    also on its mirror images, for the test-time augmented figures."""
    # matplotlib is imported here, in the scoring process, so its import stays off MLflow's path.
    from imgclf.plots import confusion_figure, image_grid_figure, prediction_captions, reliability_figure

    x_test, y_true = test
    class_names = meta["class_names"]
    score, runtime = load_scorer(layout.MODEL, record.onnx_sha256)
    probs = predict_proba(score, x_test)
    y_pred = probs.argmax(axis=1)
    matrix = confusion(y_true, y_pred, len(class_names))
    mistakes = confident_mistakes(y_true, probs, MISTAKES_SHOWN)
    titles, colors = prediction_captions(y_true[mistakes], probs[mistakes], class_names)
    shown = x_test[mistakes] * meta["pixel_scale"]  # to [0, 1], as the model's first layer does
    bins = calibration_bins(y_true, probs)
    calibration = {"bins": bins, "ece": round(expected_calibration_error(bins), 6),
                   "confidence": round(float(probs.max(axis=1).mean()), 6),
                   "accuracy": round(float(np.mean(y_pred == y_true)), 6)}
    confused, confused_png = _confused_pairs(x_test, y_true, probs, matrix, class_names, meta["pixel_scale"])
    figures = {layout.CONFUSION_PNG: png_bytes(confusion_figure(matrix, class_names)),
               layout.MISTAKES_PNG: png_bytes(image_grid_figure(shown, titles, colors,
                                                                title="Most confident mistakes")),
               layout.CONFUSED_PNG: confused_png,
               layout.RELIABILITY_PNG: png_bytes(reliability_figure(bins, calibration["ece"]))}
    summary = summary_metrics(y_true, probs)
    if tta == "flip":
        augmented = summary_metrics(y_true, mean_of_views(probs, predict_proba(mirrored(score), x_test)))
        summary |= {f"tta_{name}": augmented[name] for name in TTA_FIGURES}
    return Scored(probs, summary, per_class_report(y_true, y_pred, class_names), matrix,
                  confusion_records(y_true, y_pred, class_names), figures, runtime, confused=confused,
                  calibration=calibration, tta=tta)


def _confused_pairs(x_test: np.ndarray, y_true: np.ndarray, probs: np.ndarray, matrix: np.ndarray,
                    class_names: list[str], pixel_scale: float) -> tuple[list[dict], bytes]:
    """The most confused pairs as records, and their figure: each pair's most confident examples.

    Drawn here rather than in the report stage: evaluate logs its figures to MLflow, and the report embeds
    the same PNG, as it does the confusion matrix's.
    """
    from imgclf.plots import confused_pairs_figure

    records, images, confidences = [], [], []
    for actual, predicted, count in most_confused(matrix, CONFUSED_PAIRS):
        examples = confused_examples(y_true, probs, actual, predicted, CONFUSED_EXAMPLES)
        records.append({"actual": class_names[actual], "predicted": class_names[predicted], "count": count,
                        "examples": examples.tolist()})
        images.append(x_test[examples] * pixel_scale)
        confidences.append(probs[examples, predicted].tolist())
    pairs = [(r["actual"], r["predicted"], r["count"]) for r in records]
    return records, png_bytes(confused_pairs_figure(pairs, images, confidences, per_pair=CONFUSED_EXAMPLES))
