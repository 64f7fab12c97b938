"""Score the test split and build what evaluate publishes: metrics, report, confusion matrix, figures.

Nothing here touches MLflow. Evaluate runs it in a second process (`in_background`) while it
imports MLflow and opens the store, about 2.5 s on a 2-core machine, so the stage pays the longer
of the two instead of their sum. Neither scikit-learn nor matplotlib is imported before the fork.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgclf import layout
from imgclf.artifacts import png_bytes, read_json, read_part
from imgclf.errors import PipelineError
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


def score_test_split(record: ModelRecord) -> Scored:
    """The trained model (models/) on the test split (data/split)."""
    # matplotlib is imported here, in the scoring process: its 0.3-0.4 s stays off MLflow's path.
    from imgclf.plots import confusion_figure, image_grid_figure, prediction_captions

    x_test, y_true = read_part(layout.SPLIT_DIR, "test")
    meta = read_json(layout.meta_file(layout.SPLIT_DIR))
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


@contextlib.contextmanager
def in_background(work: Callable, *args) -> Iterator[Background]:
    """work(*args) in a forked child process, on the other core, while the caller goes on.

    Forked, not spawned: the child starts in milliseconds with what is imported so far, and
    the caller must not have started threads or imported MLflow yet. When the caller fails or is
    stopped first, the child is stopped too. Elsewhere than Linux, where fork is unsafe or
    missing, the work runs here first.
    """
    if sys.platform != "linux":
        yield Background(None, None, work, args)
        return
    context = multiprocessing.get_context("fork")
    receiving, sending = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(sending, work, args), name="evaluate-scoring", daemon=True)
    child.start()
    sending.close()
    try:
        yield Background(child, receiving, work, args)
    finally:
        if child.is_alive():
            # The caller gave up (an error, a stop): the child writes nothing, so nothing is lost by
            # SIGKILL, and no signal handler it inherited can delay it.
            child.kill()
        child.join()
        receiving.close()


class Background:
    """The result of in_background's work, when asked for."""

    def __init__(self, child, receiving, work: Callable, args: tuple):
        self._child, self._receiving, self._work, self._args = child, receiving, work, args

    def result(self):
        if self._child is None:
            return self._work(*self._args)
        try:
            failed, value = self._receiving.recv()
        except EOFError:  # the child died without a word: killed (out of memory?) or crashed
            self._child.join()
            raise PipelineError(f"the scoring process ended with exit code {self._child.exitcode} before it "
                                "answered (out of memory? see the kernel log: dmesg)") from None
        if failed:
            raise value
        return value


def _child(sending, work: Callable, args: tuple) -> None:
    # The parent's handlers (run_stage turns SIGTERM into an exception) are not this process's.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which then stops this one
    try:
        answer = (False, work(*args))
    except Exception as exc:
        answer = (True, exc)
    try:
        sending.send(answer)
    except Exception as exc:  # an answer (or an error) that does not pickle
        sending.send((True, PipelineError(f"the scoring process could not hand back its answer ({exc!r})")))
    sending.close()
