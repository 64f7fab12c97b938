"""Stage train: fit the network on data/split, save it, track the run in MLflow."""

import mlflow
import mlflow.keras
import tensorflow as tf

from imgclf import layout, tracking
from imgclf.artifacts import atomic_path, read_arrays, write_json, write_text
from imgclf.errors import run_stage
from imgclf.history import final_metrics, rows_to_csv
from imgclf.model import build_model, compile_model
from imgclf.params import flatten, load_params
from imgclf.training import describe_device, fit_model, make_deterministic


def main() -> None:
    params = load_params(layout.PARAMS)
    make_deterministic(params.seed)
    train, val = read_arrays(layout.split_file("train")), read_arrays(layout.split_file("val"))
    class_names = train["class_names"].tolist()
    model = compile_model(build_model(train["x"].shape[1:], len(class_names), params.train), params.train)

    experiment_id = tracking.use_experiment(params.mlflow.experiment_name)
    tags = tracking.run_tags(params.data.dataset, describe_device(), tf.__version__)
    with mlflow.start_run(experiment_id=experiment_id, run_name=tags.get("dvc.exp_name"), tags=tags) as run:
        mlflow.log_params(flatten(params))
        rows = fit_model(model, (train["x"], train["y"]), (val["x"], val["y"]), params.train.batch_size,
                         params.train.epochs, callbacks=[mlflow.keras.MlflowCallback()])
        with atomic_path(layout.MODEL, suffix=".keras") as tmp:
            model.save(tmp)
        mlflow.keras.log_model(model, name="model", pip_requirements=[f"tensorflow=={tf.__version__}"])
        write_text(layout.HISTORY, rows_to_csv(rows))
        write_json(layout.TRAIN_METRICS, final_metrics(rows))
        write_json(layout.MODEL_INFO, {
            "dataset": params.data.dataset,
            "class_names": class_names,
            "input_shape": list(train["x"].shape[1:]),
            "mlflow_run_id": run.info.run_id,
        })
    print(f"train: {final_metrics(rows)} (MLflow run {run.info.run_id})")


if __name__ == "__main__":
    run_stage(main)
