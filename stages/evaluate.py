"""Stage evaluate: test metrics, classification report and confusion matrix as DVC metrics and plots."""

import contextlib
import sys

import mlflow

from imgclf import layout, lineage, tracking
from imgclf.artifacts import (
    array_writer,
    bytes_writer,
    file_md5,
    json_writer,
    png_bytes,
    read_json,
    read_part,
    remove_staging,
    write_together,
)
from imgclf.errors import run_stage
from imgclf.metrics import confident_mistakes, confusion, confusion_records, per_class_report, summary_metrics
from imgclf.params import load_params
from imgclf.plots import confusion_figure, image_grid_figure, prediction_captions
from imgclf.registry import promote_champion
from imgclf.run_page import DESCRIPTION_TAG, description
from imgclf.scoring import load_scorer, predict_proba

MISTAKES_SHOWN = 25


def main() -> None:
    remove_staging(*layout.OUTPUTS["evaluate"])
    info = read_json(layout.MODEL_INFO)
    x_test, y_true = read_part(layout.SPLIT_DIR, "test")
    meta = read_json(layout.meta_file(layout.SPLIT_DIR))
    class_names = meta["class_names"]
    with _evaluation_run(info["mlflow_run_id"]) as run:
        probs = predict_proba(load_scorer(layout.MODEL, info), x_test)
        y_pred = probs.argmax(axis=1)
        summary = summary_metrics(y_true, probs)
        report = per_class_report(y_true, y_pred, class_names)
        matrix = confusion(y_true, y_pred, len(class_names))
        mistakes = confident_mistakes(y_true, probs, MISTAKES_SHOWN)
        titles, colors = prediction_captions(y_true[mistakes], probs[mistakes], class_names)
        shown = x_test[mistakes] * meta["pixel_scale"]  # to [0, 1], as the model's first layer does
        # Each figure is rendered once, for its file and for MLflow.
        figures = {layout.CONFUSION_PNG: png_bytes(confusion_figure(matrix, class_names)),
                   layout.MISTAKES_PNG: png_bytes(image_grid_figure(shown, titles, colors,
                                                                    title="Most confident mistakes"))}
        if run is not None:
            lineage.log_part("test", (x_test, y_true), lineage.data_source(load_params(layout.PARAMS).data),
                             [info["mlflow_run_id"], run.info.run_id])
            mlflow.log_metrics({f"test_{k}": v for k, v in summary.items()}, model_id=info.get("mlflow_model_id"))
            mlflow.log_dict(report, "evaluation/classification_report.json")
            mlflow.log_dict({"labels": class_names, "matrix": matrix.tolist()}, "evaluation/confusion_matrix.json")
            for path, png in figures.items():
                tracking.log_bytes(png, f"evaluation/{path.name}")
            # The model's run page tells its whole story: training, test metrics, confusion matrix.
            trained = mlflow.get_run(info["mlflow_run_id"]).data.metrics
            headline = {**{k: trained[f"final_{k}"] for k in ("val_loss", "val_accuracy") if f"final_{k}" in trained},
                        **{f"test_{k}": v for k, v in summary.items()}}
            mlflow.MlflowClient().set_tag(info["mlflow_run_id"], DESCRIPTION_TAG, description(
                info["dataset"], info["model"], headline, info.get("data_hint", ""), class_names, matrix,
                test_digest=run.data.tags["test.x.md5"]))
            if info.get("registered_version") and promote_champion(
                    info["registered_model"], info["registered_version"], summary["accuracy"]):
                print(f"evaluate: {info['registered_model']} version {info['registered_version']} is the champion "
                      f"(test accuracy {summary['accuracy']})")
        # Outputs last and together, inside the run: when anything fails, the run is marked FAILED.
        write_together({
            layout.EVAL_METRICS: json_writer(summary),
            layout.CLASS_REPORT: json_writer(report),
            layout.CONFUSION: json_writer(confusion_records(y_true, y_pred, class_names)),
            layout.PREDICTIONS: array_writer(probs),
            **{path: bytes_writer(png) for path, png in figures.items()},
        })
    print(f"evaluate: {summary}")


@contextlib.contextmanager
def _evaluation_run(run_id: str):
    """One MLflow run per evaluation, nested under the model's training run, which stays as it finished.

    A model DVC restored from its run-cache may meet another test set than the one it was first
    scored on; each evaluation keeps its own metrics, tagged with the test files' DVC hashes.
    Yields None (after a warning) when the store no longer holds the training run.
    """
    trained = tracking.find_run(run_id)
    if trained is None:
        # The metrics files are still written; only the MLflow copy is missing (e.g. mlflow.db was deleted).
        print(f"warning: MLflow run {run_id} of this model is not in {mlflow.get_tracking_uri()} (or is deleted); "
              "test metrics are not logged there. To track them, retrain: dvc repro --force --single-item train",
              file=sys.stderr)
        yield None
        return
    test_md5 = {name: file_md5(path) for name, path in zip(("x", "y"), layout.part_files(layout.SPLIT_DIR, "test"))}
    earlier = tracking.evaluations_of(trained)
    tracking.close_stale_runs(trained.info.experiment_id)
    with tracking.stage_run(experiment_id=trained.info.experiment_id, parent_run_id=run_id,
                            run_name=f"{trained.info.run_name} · test {test_md5['x'][:8]}",
                            tags=tracking.evaluation_tags(trained, test_md5)) as run:
        yield run
    if earlier:
        print(f"note: this model was trained earlier, in MLflow run {run_id} ({trained.info.run_name}), and "
              f"scored {len(earlier)} time(s) before (a DVC run-cache restore, or evaluate rerun on its own); "
              f"this evaluation is a run of its own, {run.info.run_id}")
    print(f"evaluate: logged as MLflow run {run.info.run_id}, nested under training run {run_id}")


if __name__ == "__main__":
    run_stage(main)
