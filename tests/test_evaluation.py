"""Evaluate's scoring of the test split: the plain figures, and with evaluate.tta flip the test-time augmented
ones beside them (metrics/eval.json and the MLflow evaluation run)."""

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient

from imgclf import layout
from imgclf.artifacts import SplitPart, read_part, write_json, write_part
from imgclf.evaluate import evaluation
from imgclf.evaluate.metrics import summary_metrics
from imgclf.params import DataParams
from imgclf.records import ModelRecord
from imgclf.tracking import store
from imgclf.tracking.evaluation_run import evaluation_run, log_evaluation

CLASSES = ("left", "right", "even")
SHA = "c4" * 32


class RecordingScorer:
    """A model that reads which half of an image is brighter (so a mirror image reads otherwise); it keeps
    every batch it was given."""

    def __init__(self) -> None:
        self.inputs: list[np.ndarray] = []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.inputs.append(np.array(x))
        x = np.asarray(x, np.float32)
        half = x.shape[2] // 2
        logits = np.stack([x[:, :, :half].mean(axis=(1, 2, 3)), x[:, :, half:].mean(axis=(1, 2, 3)),
                           np.full(len(x), 100.0)], axis=1) / 40
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def _test_split() -> SplitPart:
    """Images brighter on one side or even; labels chosen so that the mirror pass changes some answers."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (30, 4, 6, 1), dtype=np.uint8)
    x[:10, :, :3] = np.minimum(x[:10, :, :3], 60) + 190  # bright left
    x[10:20, :, 3:] = np.minimum(x[10:20, :, 3:], 60) + 190  # bright right
    return SplitPart(x, rng.integers(0, 3, 30))


def _record() -> ModelRecord:
    return ModelRecord(dataset="image_folder", model="cnn", class_names=CLASSES, input_shape=(4, 6, 1),
                       input_dtype="uint8", pixel_scale=1 / 255, onnx_sha256="0" * 64, model_sha256=SHA)


def _score(monkeypatch, tta: str) -> tuple[evaluation.Scored, RecordingScorer]:
    scorer = RecordingScorer()
    monkeypatch.setattr(evaluation, "load_scorer", lambda model, sha: (scorer, "onnx"))
    meta = {"class_names": list(CLASSES), "pixel_scale": 1 / 255}
    return evaluation.score_test_split(_record(), _test_split(), meta, tta), scorer


def test_flip_adds_the_figures_of_the_mean_of_each_image_and_its_mirror(monkeypatch):
    scored, scorer = _score(monkeypatch, "flip")
    x, y = _test_split()
    plain, mirrored = scorer.inputs
    np.testing.assert_array_equal(plain, x)
    np.testing.assert_array_equal(mirrored, x[:, :, ::-1])  # the second pass: the first mirrored left-right
    augmented = summary_metrics(y, (scorer(x) + scorer(x[:, :, ::-1])) / 2)
    assert scored.summary["tta_accuracy"] == augmented["accuracy"]
    assert scored.summary["tta_loss"] == augmented["loss"]
    assert scored.summary["tta_accuracy"] != scored.summary["accuracy"]  # the mirror pass matters on this set
    assert scored.tta == "flip"


def test_with_tta_off_the_figures_are_the_plain_ones_alone_and_on_they_stay_first(monkeypatch):
    off, scorer = _score(monkeypatch, "none")
    on, _ = _score(monkeypatch, "flip")
    x, y = _test_split()
    assert len(scorer.inputs) == 1  # no mirror pass
    assert off.summary == summary_metrics(y, scorer(x))
    assert list(off.summary) == list(summary_metrics(y, scorer(x)))  # eval.json's keys in their order
    assert list(on.summary) == [*off.summary, "tta_accuracy", "tta_loss"]
    assert {k: on.summary[k] for k in off.summary} == off.summary
    np.testing.assert_array_equal(on.probs, off.probs)  # test_probs.npy and the figures: the plain model's
    assert on.matrix.tolist() == off.matrix.tolist() and on.calibration == off.calibration


def test_the_evaluation_run_gets_both_figures(dvc_root, monkeypatch):
    experiment_id = store.use_experiment("lesson")
    client = MlflowClient()
    trained = client.create_run(experiment_id, tags={"stage": "train", store.MODEL_SHA256_TAG: SHA,
                                                     "mlflow.source.git.commit": "0123456789abcdef"})
    client.set_terminated(trained.info.run_id, "FINISHED")
    x, y = _test_split()
    write_part(layout.SPLIT_DIR, "test", x, y)
    write_json(layout.meta_file(layout.SPLIT_DIR), {"class_names": list(CLASSES), "pixel_scale": 1 / 255})
    scored, _ = _score(monkeypatch, "flip")
    with evaluation_run("lesson", _record()) as (run, found):
        log_evaluation(run, found, _record(), scored, list(CLASSES), read_part(layout.SPLIT_DIR, "test"),
                       DataParams(dataset="image_folder"))
    logged = mlflow.get_run(run.info.run_id).data
    assert logged.metrics["test_accuracy"] == scored.summary["accuracy"]
    assert logged.metrics["test_tta_accuracy"] == scored.summary["tta_accuracy"]
    assert logged.metrics["test_tta_loss"] == scored.summary["tta_loss"]
    assert logged.tags["tta"] == "flip"
