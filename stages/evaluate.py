"""Stage evaluate: test metrics, classification report and confusion matrix as DVC metrics and plots."""

import sys

import keras
import mlflow

from imgclf import layout, tracking
from imgclf.artifacts import read_json, read_part, save_figure, write_array, write_json
from imgclf.errors import run_stage
from imgclf.metrics import confident_mistakes, confusion, confusion_records, per_class_report, summary_metrics
from imgclf.model import predict_proba
from imgclf.plots import confusion_figure, image_grid_figure, prediction_captions

MISTAKES_SHOWN = 25


def main() -> None:
    info = read_json(layout.MODEL_INFO)
    x_test, y_true = read_part(layout.SPLIT_DIR, "test")
    class_names = read_json(layout.meta_file(layout.SPLIT_DIR))["class_names"]
    model = keras.models.load_model(layout.MODEL, safe_mode=True)
    probs = predict_proba(model, x_test)
    y_pred = probs.argmax(axis=1)

    summary = summary_metrics(y_true, probs)
    report = per_class_report(y_true, y_pred, class_names)
    matrix = confusion(y_true, y_pred, len(class_names))
    mistakes = confident_mistakes(y_true, probs, MISTAKES_SHOWN)
    titles, colors = prediction_captions(y_true[mistakes], probs[mistakes], class_names)

    write_json(layout.EVAL_METRICS, summary)
    write_json(layout.CLASS_REPORT, report)
    write_json(layout.CONFUSION, confusion_records(y_true, y_pred, class_names))
    write_array(layout.PREDICTIONS, probs)
    save_figure(layout.CONFUSION_PNG, confusion_figure(matrix, class_names))
    save_figure(layout.MISTAKES_PNG, image_grid_figure(x_test[mistakes], titles, colors,
                                                       title="Most confident mistakes"))

    run_id = info["mlflow_run_id"]
    run = tracking.find_run(run_id)
    if run and tracking.restored_from_run_cache(run):
        print(f"note: DVC restored this model from its run-cache; it was trained in MLflow run {run_id} "
              f"({run.data.tags.get('dvc.exp_name') or 'a plain dvc repro'}), which gets these test metrics")
    if run:
        with mlflow.start_run(run_id=run_id):
            mlflow.log_metrics({f"test_{k}": v for k, v in summary.items()})
            mlflow.log_dict(report, "evaluation/classification_report.json")
            mlflow.log_dict({"labels": class_names, "matrix": matrix.tolist()}, "evaluation/confusion_matrix.json")
            for path in (layout.CONFUSION_PNG, layout.MISTAKES_PNG):
                mlflow.log_artifact(str(path), "evaluation")
    else:
        # Metrics files are complete; only the MLflow copy is missing (e.g. mlflow.db was deleted).
        print(f"warning: MLflow run {run_id} of this model is not in {mlflow.get_tracking_uri()}; test metrics "
              "were not logged there. To track them, retrain: dvc repro --force train", file=sys.stderr)
    print(f"evaluate: {summary}")


if __name__ == "__main__":
    run_stage(main)
