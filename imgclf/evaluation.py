"""Score the test split and build what evaluate publishes: metrics, report, confusion matrix, figures.

Nothing here touches MLflow. Evaluate runs it in a second process (`in_background`) while it
imports MLflow and opens the store, about 3 s on a 2-core machine, so the stage pays the longer
of the two instead of their sum.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgclf import layout
from imgclf.artifacts import png_bytes, read_json, read_part
from imgclf.metrics import confident_mistakes, confusion, confusion_records, per_class_report, summary_metrics
from imgclf.plots import confusion_figure, image_grid_figure, prediction_captions
from imgclf.scoring import load_scorer, predict_proba

MISTAKES_SHOWN = 25


@dataclass(frozen=True)
class Scored:
    probs: np.ndarray
    summary: dict[str, float]
    report: dict[str, dict]
    matrix: np.ndarray
    records: list[dict]
    figures: dict[Path, bytes]  # PNGs, rendered once for their files and for MLflow


def score_test_split(info: dict) -> Scored:
    """The trained model (models/) on the test split (data/split)."""
    x_test, y_true = read_part(layout.SPLIT_DIR, "test")
    meta = read_json(layout.meta_file(layout.SPLIT_DIR))
    class_names = meta["class_names"]
    probs = predict_proba(load_scorer(layout.MODEL, info), x_test)
    y_pred = probs.argmax(axis=1)
    matrix = confusion(y_true, y_pred, len(class_names))
    mistakes = confident_mistakes(y_true, probs, MISTAKES_SHOWN)
    titles, colors = prediction_captions(y_true[mistakes], probs[mistakes], class_names)
    shown = x_test[mistakes] * meta["pixel_scale"]  # to [0, 1], as the model's first layer does
    figures = {layout.CONFUSION_PNG: png_bytes(confusion_figure(matrix, class_names)),
               layout.MISTAKES_PNG: png_bytes(image_grid_figure(shown, titles, colors,
                                                                title="Most confident mistakes"))}
    return Scored(probs, summary_metrics(y_true, probs), per_class_report(y_true, y_pred, class_names), matrix,
                  confusion_records(y_true, y_pred, class_names), figures)


@contextlib.contextmanager
def in_background(work: Callable, *args) -> Iterator[Future]:
    """work(*args) in a forked child process, on the other core, while the caller goes on.

    Forked, not spawned: the child starts in milliseconds with what is imported so far, and
    the caller must not have started threads or imported MLflow yet. Elsewhere than Linux, where
    fork is unsafe or missing, the work runs here first.
    """
    if sys.platform != "linux":
        done: Future = Future()
        try:
            done.set_result(work(*args))
        except Exception as exc:
            done.set_exception(exc)
        yield done
        return
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        yield pool.submit(work, *args)
