"""Stage train: fit the model on data/split, track the run in MLflow, then write the model and its records."""

import dataclasses
import json
import os
import sys
from importlib.metadata import version
from pathlib import Path

import mlflow
import mlflow.keras
import numpy as np
import tensorflow as tf
from mlflow.models import infer_signature

from imgclf import layout
from imgclf.artifacts import (
    SplitPart,
    figure_writer,
    folder_writer,
    json_writer,
    read_json,
    read_part,
    remove_staging,
    text_writer,
    write_together,
)
from imgclf.evaluate.scoring import EXPORT_NOTE, ONNX_NAME, export_onnx, sha256
from imgclf.params import flatten, load_params
from imgclf.plots import augmentation_figure
from imgclf.records import ModelRecord
from imgclf.runtime import run_stage
from imgclf.serve.serving import log_photo_model
from imgclf.tracking import lineage, store
from imgclf.tracking.run_page import DESCRIPTION_TAG, description, run_name
from imgclf.train.augmentation import augmentation_preview
from imgclf.train.callbacks import EpochMetricsLogger
from imgclf.train.cluster import Cluster
from imgclf.train.devices import describe_device, op_threads, set_op_threads
from imgclf.train.history import rows_to_csv
from imgclf.train.logreg import train_logreg
from imgclf.train.resume import Backup, run_key
from imgclf.train.training import (
    DataSpec,
    FitOptions,
    class_weights,
    make_deterministic,
    resolve_batch_size,
    train_network,
)

PREVIEW_IMAGES = 6


def main() -> None:
    params = load_params(layout.PARAMS)
    cluster = Cluster.from_env(params.train.distribute)
    if not cluster.chief:
        return _train_as_worker(params, cluster)
    remove_staging(*layout.OUTPUTS["train"])
    train, val = read_part(layout.SPLIT_DIR, "train"), read_part(layout.SPLIT_DIR, "val")
    meta = read_json(layout.meta_file(layout.SPLIT_DIR))
    class_names, pixel_scale = meta["class_names"], meta["pixel_scale"]
    data = DataSpec(len(class_names), pixel_scale)
    threads = _set_op_threads(params, train, len(class_names))
    backup, state = _backup(params, cluster)
    experiment_id = store.use_experiment(params.mlflow.experiment_name)
    run_id = state and state.get("mlflow_run_id")
    if run_id and store.find_run(run_id) is None:
        run_id = None  # deleted meanwhile: a new run, given the epochs so far below
    store.close_stale_runs(experiment_id, keep=run_id)
    if state:
        print(f"train: resuming from epoch {state['epoch']} of {params.train.epochs} "
              f"(the backup of an interrupted training with the same params, data and code)")
    tags = store.run_tags(params.data.dataset, describe_device(), tf.__version__)
    dirty, split_version = lineage.workspace_dirty(), lineage.data_version()
    tags |= {"git.dirty": str(dirty).lower(), **({"dvc.data_version": split_version} if split_version else {})}
    if threads is not None:
        tags["tf.op_threads"] = str(threads) if threads else "default"  # default: TensorFlow's, a thread per core
    name = run_name(params.data.dataset, params.train.model, tags["mlflow.source.git.commit"], tags.get("dvc.exp_name"))
    new_run = {} if run_id else {"run_name": name, "tags": tags}
    source = lineage.data_source(params.data)
    if not os.environ.get("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"):
        mlflow.set_system_metrics_sampling_interval(2)  # seconds: MLflow's 10 would miss most of a lesson's run
    with store.stage_run(run_id, experiment_id=experiment_id, log_system_metrics=True, **new_run) as run:
        mlflow.log_params(flatten(params))
        for part, arrays in (("train", train), ("val", val)):  # the test part: evaluate's, when it scores it
            lineage.log_part(part, arrays, source, [run.info.run_id])
        if state and not run_id:
            for row in state["rows"]:
                mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"] - 1)
        make_deterministic(params.seed)  # after start_run, whose random run name must not repeat
        n = len(class_names)
        weights = class_weights(train.y, n, params.train.class_weight)
        if params.train.model == "logreg":
            result = train_logreg(train, val, data, params.train.logreg, weights, params.seed)
            mlflow.log_metrics({k: v for k, v in result.rows[0].items() if k != "epoch"}, step=0)
        else:
            options = FitOptions(callbacks=(EpochMetricsLogger(resumed=bool(state)),), backup=backup, resume=state,
                                 backup_extra={"mlflow_run_id": run.info.run_id})
            result = train_network(train, val, data, params.train, params.seed, options)
            # A timing, not a result: in MLflow only, so metrics/train.json stays the same on every run.
            if result.samples_per_second is not None:
                mlflow.log_metric("fit_samples_per_second", result.samples_per_second)
        named_weights = {class_names[c]: w for c, w in weights.items()} if weights else None
        # One name per quantity: metrics/train.json's final_learning_rate stays final_learning_rate.
        mlflow.log_metrics({k if k.startswith("final_") else f"final_{k}": float(v) for k, v in result.summary.items()})
        mlflow.set_tags(result.tags)
        if named_weights:
            mlflow.log_dict(named_weights, "class_weights.json")
        # The raw network, for whoever needs it, and the model a shop serves: photos in, classes out.
        sample = np.asarray(train.x[:4])
        mlflow.keras.log_model(result.model, name="network", pip_requirements=_requirements("tensorflow", "keras"),
                               signature=infer_signature(sample, result.model.predict(sample, verbose=0)))
        record = ModelRecord(dataset=params.data.dataset, model=params.train.model, class_names=tuple(class_names),
                             input_shape=train.x.shape[1:], input_dtype=str(train.x.dtype), pixel_scale=pixel_scale,
                             class_weights=named_weights, mlflow_run_id=run.info.run_id,
                             registered_model=params.mlflow.register_model)
        logged = log_photo_model(result.model, record.serving, train.x[0],
                                 _requirements("tensorflow", "keras", "pillow", "simplejpeg", "opencv-python-headless",
                                               "pandas", "mlflow"),
                                 registered_model_name=params.mlflow.register_model)
        preview = augmentation_figure(
            augmentation_preview(np.asarray(train.x[:PREVIEW_IMAGES]), params.train.augmentation, params.seed,
                                 pixel_scale))
        data_hint = lineage.checkout_hint(tags["mlflow.source.git.commit"], dirty, split_version,
                                          tags.get("dvc.exp_name"))
        mlflow.set_tag(DESCRIPTION_TAG, description(params.data.dataset, params.train.model, result.summary, data_hint))
        # Evaluate and predict score the ONNX copy, without importing TensorFlow.
        onnx, onnx_note = export_onnx(result.model, train.x)
        mlflow.set_tag("scoring", "onnx" if onnx else "keras")
        onnx_files = {EXPORT_NOTE: json.dumps({"exported": onnx is not None, "note": onnx_note}).encode(),
                      **({ONNX_NAME: onnx} if onnx else {})}
        record = dataclasses.replace(record, onnx_sha256=sha256(onnx) if onnx else None, data_hint=data_hint,
                                     mlflow_model_id=logged.model_id,
                                     registered_version=logged.registered_model_version)
        # Outputs last and together: when training or tracking fails, the run is marked FAILED
        # and none of the stage's files is replaced.
        write_together({
            layout.MODEL: result.model.save,
            layout.ONNX_DIR: folder_writer(onnx_files),
            layout.MODEL_INFO: record.writer(),
            layout.TRAIN_METRICS: json_writer(result.summary),
            layout.HISTORY: text_writer(rows_to_csv(result.rows)),
            layout.AUGMENTATION_PNG: figure_writer(preview),
        })
    if backup is not None:
        backup.remove()  # the stage completed: its outputs are the result now
    if result.samples_per_second is not None:
        print(f"train: fit {result.samples_seen} samples in {result.fit_seconds:.2f} s "
              f"({result.samples_per_second:.0f} samples/s)")
    if onnx:
        print(f"train: model {onnx_note}")
    else:
        print(f"warning: model {onnx_note}; evaluate and predict load TensorFlow to score it", file=sys.stderr)
    print(f"train: {result.summary} {result.tags} (MLflow run {run.info.run_id})")


def _requirements(*packages: str) -> list[str]:
    """Pins of the installed packages a logged model needs to load."""
    return [f"{name}=={version(name)}" for name in packages]


def _train_as_worker(params, cluster: Cluster) -> None:
    """A worker other than the chief: trains its share of each batch; the run and the outputs are the chief's."""
    if params.train.model != "logreg":  # scikit-learn fits in the chief's process alone
        meta = read_json(layout.meta_file(layout.SPLIT_DIR))
        train = read_part(layout.SPLIT_DIR, "train")
        _set_op_threads(params, train, len(meta["class_names"]))
        make_deterministic(params.seed)
        train_network(train, read_part(layout.SPLIT_DIR, "val"),
                      DataSpec(len(meta["class_names"]), meta["pixel_scale"]), params.train, params.seed)
    print(f"train: worker of {cluster.workers} done; the chief tracks the run and writes the outputs")


def _set_op_threads(params, train: SplitPart, n_classes: int) -> int | None:
    """Sets the threads per TensorFlow op of this training, before its first op; the count in effect
    (0: TensorFlow's choice; None: logreg, no TensorFlow). A batch is at most the whole split."""
    if params.train.model == "logreg":
        return None
    batch_size = min(resolve_batch_size(params.train.batch_size, len(train.y)), len(train.y))
    return set_op_threads(op_threads(params.train, train.x.shape[1:], n_classes, batch_size))


def _backup(params, cluster: Cluster) -> tuple[Backup | None, dict | None]:
    """This training's backup (keyed by params, data and code) and its saved state, if any.

    None for logreg, and in a cluster: a resume there would need every worker to restore it.
    """
    if params.train.model == "logreg" or cluster.workers > 1:
        return None, None
    data = [*layout.part_files(layout.SPLIT_DIR, "train"), *layout.part_files(layout.SPLIT_DIR, "val"),
            layout.meta_file(layout.SPLIT_DIR)]
    source = Path(__file__).resolve().parents[1]  # the project's code, wherever the stage runs from
    code = [source / "stages" / "train.py", *sorted((source / "imgclf").rglob("*.py"))]
    backup = Backup.of(store.project_root(), run_key(flatten(params), data, code, source))
    return backup, backup.load()


if __name__ == "__main__":
    run_stage(main)
