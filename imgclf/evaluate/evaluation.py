"""Score the test split and build what evaluate publishes: metrics, report, confusion matrix, figures.

Nothing here touches MLflow: evaluate runs it in a second process (imgclf/evaluate/overlap.py)
while it imports MLflow and opens the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgclf import layout
from imgclf.artifacts import SplitPart, png_bytes
from imgclf.evaluate.metrics import confident_mistakes, confusion, confusion_records, per_class_report, summary_metrics
from imgclf.evaluate.scoring import load_scorer, predict_proba
from imgclf.records import ModelRecord

MISTAKES_SHOWN = 25


@dataclass(frozen=True)
class Scored:
    probs: np.ndarray
    summary: dict[str, float]
    report: dict[str, dict]
    matrix: np.ndarray
    records: list[dict]
    figures: dict[Path, bytes]  # PNGs, rendered once for their files and for MLflow
    runtime: str  # what scored the model: "onnx" (its ONNX copy) or "keras"


def score_test_split(record: ModelRecord, test: SplitPart, meta: dict) -> Scored:
    """The trained model (models/) on the test split (its part and meta.json in data/split)."""
    # matplotlib is imported here, in the scoring process, so its import stays off MLflow's path.
    from imgclf.plots import confusion_figure, image_grid_figure, prediction_captions

    x_test, y_true = test
    class_names = meta["class_names"]
    score, runtime = load_scorer(layout.MODEL, record.onnx_sha256)
    probs = predict_proba(score, x_test)
    y_pred = probs.argmax(axis=1)
    matrix = confusion(y_true, y_pred, len(class_names))
    mistakes = confident_mistakes(y_true, probs, MISTAKES_SHOWN)
    titles, colors = prediction_captions(y_true[mistakes], probs[mistakes], class_names)
    shown = x_test[mistakes] * meta["pixel_scale"]  # to [0, 1], as the model's first layer does
    figures = {layout.CONFUSION_PNG: png_bytes(confusion_figure(matrix, class_names)),
               layout.MISTAKES_PNG: png_bytes(image_grid_figure(shown, titles, colors,
                                                                title="Most confident mistakes"))}
    return Scored(probs, summary_metrics(y_true, probs), per_class_report(y_true, y_pred, class_names), matrix,
                  confusion_records(y_true, y_pred, class_names), figures, runtime)
