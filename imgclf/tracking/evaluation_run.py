"""Evaluate's MLflow records: one run per evaluation, nested under the model's training run.

Kept apart from the scoring (imgclf.evaluate.evaluation) so that evaluate imports MLflow while a second
process scores the test split.
"""

from __future__ import annotations

import contextlib
import logging
import time

import mlflow
from mlflow.entities import Metric

from imgclf import layout
from imgclf.artifacts import SplitPart, file_md5
from imgclf.evaluate.evaluation import Scored
from imgclf.params import DataParams
from imgclf.records import ModelRecord
from imgclf.tracking import lineage, store
from imgclf.tracking.model_run import TrainingRun, find_training_run, search_filter
from imgclf.tracking.registry import Task, digest_test_set, record_evaluation
from imgclf.tracking.run_page import DESCRIPTION_TAG, description

log = logging.getLogger(__name__)


@contextlib.contextmanager
def evaluation_run(experiment_name: str, record: ModelRecord):
    """One MLflow run per evaluation, nested under the model's training run, which stays as it finished.

    The training run is the newest finished one of the experiment that wrote the model file
    (imgclf.tracking.model_run). A model DVC restored from its run-cache may meet another test set
    than the one it was first scored on; each evaluation keeps its own metrics, tagged with the test
    files' DVC hashes. Yields the evaluation's run and the training run, or (None, None) after a
    warning when the store holds no training run of the model.
    """
    found = find_training_run(experiment_name, record)
    if found is None:
        # The metrics files are still written; only the MLflow copy is missing (e.g. mlflow.db was deleted).
        log.warning("no finished MLflow training run in experiment %r of %s wrote this model (tag %s); test "
                    "metrics are not logged there. To track them, retrain: dvc repro --force --single-item train",
                    experiment_name, mlflow.get_tracking_uri(), search_filter(record.model_sha256))
        yield None, None
        return
    run_id = found.run_id
    trained = mlflow.get_run(run_id)
    test_md5 = {name: file_md5(path) for name, path in zip(("x", "y"), layout.part_files(layout.SPLIT_DIR, "test"))}
    earlier = store.evaluations_of(trained)
    store.close_stale_runs(trained.info.experiment_id)
    with store.stage_run(experiment_id=trained.info.experiment_id, parent_run_id=run_id,
                            run_name=f"{trained.info.run_name} · test {test_md5['x'][:8]}",
                            tags=store.evaluation_tags(trained, test_md5)) as run:
        yield run, found
    if earlier:
        log.info("this model was trained earlier, in MLflow run %s (%s), and scored %d time(s) before (a DVC "
                 "run-cache restore, or evaluate rerun on its own); this evaluation is a run of its own, %s",
                 run_id, trained.info.run_name, len(earlier), run.info.run_id)


def log_evaluation(run, trained: TrainingRun, record: ModelRecord, scored: Scored, class_names: list[str],
                   test: SplitPart, data: DataParams, checks: dict | None = None) -> bool:
    """Test metrics (with evaluate.tta flip, the test-time augmented ones too, test_tta_*), report, confusion
    matrix, most confused pairs, calibration bins and figures on the evaluation's run; the test set (`test`,
    from `data`) as a dataset input of it and of the model's training run (`trained`); the model's run page;
    the data checks' counts (metrics/checks.json) on the training run; on the model's registered version, its
    task and figures (the champion alias moves only when the pipeline has succeeded).

    True when the model has a registered version and its figures are recorded on it.
    """
    summary = scored.summary
    lineage.log_part("test", test, lineage.data_source(data), [trained.run_id, run.info.run_id],
                     md5={name: run.data.tags[f"test.{name}.md5"] for name in ("x", "y")})  # hashed by evaluation_run
    mlflow.log_metrics({f"test_{k}": v for k, v in summary.items()}, model_id=trained.model_id)
    mlflow.set_tag("scoring", scored.runtime)
    mlflow.set_tag("tta", scored.tta)  # with flip, the test_tta_ metrics are the test-time augmented figures
    mlflow.log_dict(scored.report, "evaluation/classification_report.json")
    mlflow.log_dict({"labels": class_names, "matrix": scored.matrix.tolist()}, "evaluation/confusion_matrix.json")
    mlflow.log_dict(scored.confused, f"evaluation/{layout.CONFUSED_PAIRS.name}")
    mlflow.log_dict(scored.calibration, f"evaluation/{layout.CALIBRATION.name}")
    for path, png in scored.figures.items():
        store.log_bytes(png, f"evaluation/{path.name}")
    # The model's run page tells its whole story: training, test metrics, confusion matrix.
    metrics = mlflow.get_run(trained.run_id).data.metrics
    headline = {**{k: metrics[f"final_{k}"] for k in ("val_loss", "val_accuracy") if f"final_{k}" in metrics},
                **{f"test_{k}": v for k, v in summary.items()}}
    if checks:
        log_checks(trained.run_id, checks)
    mlflow.MlflowClient().set_tag(trained.run_id, DESCRIPTION_TAG, description(
        record.dataset, record.model, headline, trained.data_hint, class_names, scored.matrix,
        test_digest=run.data.tags["test.x.md5"]))
    return bool(trained.registered_version) and record_evaluation(
        record.registered_model, trained.registered_version, Task(record.class_names, record.input_shape),
        digest_test_set(run.data.tags["test.x.md5"], run.data.tags["test.y.md5"]), summary)


def log_checks(run_id: str, checks: dict) -> None:
    """The data checks' counts as metrics of a run, in one call: checks.<finding>, checks.<finding>.<split>
    (a null imbalance, a split missing a class, is left out: a metric is a number)."""
    flat = {}
    for key, value in checks.items():
        for name, number in (value.items() if isinstance(value, dict) else [(None, value)]):
            if number is not None:
                flat[f"checks.{key}" + (f".{name}" if name else "")] = float(number)
    now = int(time.time() * 1000)
    mlflow.MlflowClient().log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in flat.items()])
