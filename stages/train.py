"""Stage train: fit the model on data/split, track the run in MLflow, then write the model and its records.

TensorFlow is imported only for a network (train.model mlp, cnn, transfer), once params.yaml is
known good: the scikit-learn baseline (logreg) trains, logs and writes its model without it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import mlflow
import numpy as np
from mlflow.models import infer_signature

from imgclf import console, layout
from imgclf.artifacts import (
    SplitPart,
    bytes_writer,
    figure_writer,
    folder_writer,
    json_writer,
    png_bytes,
    read_json,
    read_part,
    remove_staging,
    text_writer,
    write_together,
)
from imgclf.collector import importing
from imgclf.evaluate.metrics import confident_mistakes
from imgclf.evaluate.scoring import EXPORT_NOTE, ONNX_NAME, export_onnx, sha256
from imgclf.params import AugmentationParams, Params, flatten, load_params
from imgclf.plots import augmentation_figure, gradcam_figure, nodes_figure, note_figure
from imgclf.records import ModelRecord
from imgclf.runtime import run_stage
from imgclf.serve.serving import log_photo_model
from imgclf.tracking import access, lineage, store
from imgclf.tracking.access import refusals
from imgclf.tracking.run_page import DESCRIPTION_TAG, description, run_name
from imgclf.train.augmentation import augmentation_preview, preview_rows
from imgclf.train.cluster import Cluster
from imgclf.train.history import rows_to_csv
from imgclf.train.keras_archive import archive_bytes
from imgclf.train.logreg import train_logreg
from imgclf.train.result import DataSpec, TrainResult, class_weights, resolve_batch_size

if TYPE_CHECKING:
    from imgclf.train.resume import Backup

# Named under imgclf, whose lines run_stage formats: run with -m, this module is __main__.
log = logging.getLogger("imgclf.stages.train")
PREVIEW_IMAGES = 6
GRADCAM_IMAGES = 8  # the validation split's most confident mistakes shown with their heatmaps
CONVOLUTIONAL = ("cnn", "transfer")  # the models Grad-CAM explains


class _Inputs(NamedTuple):
    train: SplitPart
    val: SplitPart
    class_names: list[str]
    data: DataSpec


def main() -> None:
    params = load_params(layout.PARAMS)
    if params.train.model != "logreg":
        _import_tensorflow()
    cluster = Cluster.from_env(params.train.distribute)
    if not cluster.chief:
        return _train_as_worker(params, cluster)
    remove_staging(*layout.OUTPUTS["train"])
    inputs = _read_inputs()
    threads = _set_op_threads(params, inputs.train, inputs.data.n_classes)
    backup, state = _backup(params, cluster)
    with refusals(params.mlflow), _open_run(params, inputs, threads, state) as (run, data_hint):
        _make_deterministic(params)  # after start_run, whose random run name must not repeat
        result, weights = _fit(params, inputs, backup, state, run.info.run_id)
        onnx, onnx_note = _export_onnx(result.model, inputs.train.x)
        model_file = _model_file(result.model)
        record = _model_record(params, inputs, weights, model_file, onnx)
        _log_models(params, result.model, record, inputs.train.x, onnx)
        preview = _augmentation_preview(params, inputs)
        explained = _explain(params, result.model, inputs)
        mlflow.set_tag(DESCRIPTION_TAG, description(record.dataset, record.model, result.summary, data_hint))
        # Outputs last and together: when training or tracking fails, the run is marked FAILED
        # and none of the stage's files is replaced.
        _write_outputs(result, record, model_file, onnx, onnx_note, preview, explained)
    if backup is not None:
        backup.remove()  # the stage completed: its outputs are the result now
    _print_summary(result, onnx is not None, onnx_note, run.info.run_id)


def _import_tensorflow() -> None:
    """TensorFlow and Keras, for a network: without the cyclic collector (imgclf/collector.py) and
    without their start-up lines (imgclf/console.py). The project's Keras modules follow where used."""
    with importing():
        console.quiet_import("keras")


def _make_deterministic(params: Params) -> None:
    """A network's seeds and deterministic ops; scikit-learn's solver takes the seed as random_state."""
    if params.train.model != "logreg":
        from imgclf.train.training import make_deterministic

        make_deterministic(params.seed)


def _read_inputs() -> _Inputs:
    """The training and validation parts of data/split, and what its meta.json says of them."""
    train, val = read_part(layout.SPLIT_DIR, "train"), read_part(layout.SPLIT_DIR, "val")
    meta = read_json(layout.meta_file(layout.SPLIT_DIR))
    return _Inputs(train, val, meta["class_names"], DataSpec(len(meta["class_names"]), meta["pixel_scale"]))


@contextlib.contextmanager
def _open_run(params: Params, inputs: _Inputs, threads: int | None,
              state: dict | None) -> Iterator[tuple[mlflow.ActiveRun, str]]:
    """The MLflow run of this training, with its params and data logged: a new one, or the one a resumed
    training began. Yields it and the commands that bring back its data (for its description)."""
    experiment_id = store.use_experiment(params.mlflow.experiment_name)
    access.check_can_train(params.mlflow, experiment_id)  # all it lacks at once, before the fit
    run_id = state and state.get("mlflow_run_id")
    if run_id and store.find_run(run_id) is None:
        run_id = None  # deleted meanwhile: a new run, given the epochs so far below
    store.close_stale_runs(experiment_id, keep=run_id)
    if state:
        print(f"train: resuming from epoch {state['epoch']} of {params.train.epochs} "
              f"(the backup of an interrupted training with the same params, data and code)")
    tags, data_hint = _run_tags(params, threads)
    name = run_name(params.data.dataset, params.train.model, tags["mlflow.source.git.commit"], tags.get("dvc.exp_name"))
    new_run = {} if run_id else {"run_name": name, "tags": tags}
    if not os.environ.get("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"):
        mlflow.set_system_metrics_sampling_interval(2)  # seconds: MLflow's 10 would miss most of a lesson's run
    with store.stage_run(run_id, experiment_id=experiment_id, log_system_metrics=True, **new_run) as run:
        mlflow.log_params(flatten(params))
        source = lineage.data_source(params.data)
        for name, part in (("train", inputs.train), ("val", inputs.val)):  # the test part: evaluate's, as it scores it
            lineage.log_part(name, part, source, [run.info.run_id])
        if state and not run_id:
            for row in state["rows"]:
                mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"] - 1)
        yield run, data_hint


def _run_tags(params: Params, threads: int | None) -> tuple[dict[str, str], str]:
    """A new run's tags (dataset, device, commit, dirty, data version, threads per op) and its data hint."""
    device = "CPU" if params.train.model == "logreg" else _network_device()
    tags = store.run_tags(params.data.dataset, device, version("tensorflow"))
    dirty, split_version = lineage.workspace_dirty(), lineage.data_version()
    tags |= {"git.dirty": str(dirty).lower(), **({"dvc.data_version": split_version} if split_version else {})}
    if threads is not None:
        tags["tf.op_threads"] = str(threads) if threads else "default"  # default: TensorFlow's, a thread per core
    return tags, lineage.run_checkout_hint(tags)  # as evaluate, which finds the run, reads it back


def _network_device() -> str:
    from imgclf.train.devices import describe_device

    return describe_device()


def _fit(params: Params, inputs: _Inputs, backup: Backup | None, state: dict | None,
         run_id: str) -> tuple[TrainResult, dict[str, float] | None]:
    """Fit train.model and log its results in the active run; the result and the class weights by class name."""
    weights = class_weights(inputs.train.y, inputs.data.n_classes, params.train.class_weight)
    if params.train.model == "logreg":
        result = train_logreg(inputs.train, inputs.val, inputs.data, params.train.logreg, weights, params.seed)
        mlflow.log_metrics({k: v for k, v in result.rows[0].items() if k != "epoch"}, step=0)
    else:
        from imgclf.train.callbacks import EpochMetricsLogger
        from imgclf.train.training import FitOptions, train_network

        options = FitOptions(callbacks=(EpochMetricsLogger(resumed=bool(state)),), backup=backup, resume=state,
                             backup_extra={"mlflow_run_id": run_id})
        result = train_network(inputs.train, inputs.val, inputs.data, params.train, params.seed, options)
        # A timing, not a result: in MLflow only, so metrics/train.json stays the same on every run.
        if result.samples_per_second is not None:
            mlflow.log_metric("fit_samples_per_second", result.samples_per_second)
    named_weights = {inputs.class_names[c]: w for c, w in weights.items()} if weights else None
    # One name per quantity: metrics/train.json's final_learning_rate stays final_learning_rate.
    mlflow.log_metrics({k if k.startswith("final_") else f"final_{k}": float(v) for k, v in result.summary.items()})
    mlflow.set_tags(result.tags)
    if named_weights:
        mlflow.log_dict(named_weights, "class_weights.json")
    return result, named_weights


def _model_record(params: Params, inputs: _Inputs, weights: dict[str, float] | None, model_file: bytes,
                  onnx: bytes | None) -> ModelRecord:
    """models/model.json: the model's data, classes and input, and the hashes of its files."""
    return ModelRecord(dataset=params.data.dataset, model=params.train.model, class_names=tuple(inputs.class_names),
                       input_shape=inputs.train.x.shape[1:], input_dtype=str(inputs.train.x.dtype),
                       pixel_scale=inputs.data.pixel_scale, class_weights=weights,
                       onnx_sha256=sha256(onnx) if onnx else None, model_sha256=sha256(model_file),
                       registered_model=params.mlflow.register_model)


def _log_models(params: Params, network, record: ModelRecord, x: np.ndarray, onnx: bytes | None) -> None:
    """Log the raw network (logreg: the scikit-learn classifier), for whoever needs it, and the model a shop
    serves (photos in, classes out), registered when mlflow.register_model names it.

    The served model carries the ONNX copy when there is one: its server scores with ONNX Runtime and
    never imports TensorFlow (still pinned, for the Keras network beside it)."""
    sample = np.asarray(x[:4])
    if params.train.model == "logreg":
        import mlflow.sklearn

        features = sample.reshape(len(sample), -1) * np.float32(record.pixel_scale)
        mlflow.sklearn.log_model(network.classifier, name="network", pip_requirements=_requirements("scikit-learn"),
                                 signature=infer_signature(features, network.predict(sample)))
    else:
        import mlflow.keras

        mlflow.keras.log_model(network, name="network", pip_requirements=_requirements("tensorflow", "keras"),
                               signature=infer_signature(sample, network.predict(sample, verbose=0)))
    log_photo_model(network, record.serving, x[0],
                    _requirements("tensorflow", "keras", "pillow", "simplejpeg", "opencv-python-headless",
                                  "pandas", "mlflow", *(["onnxruntime"] if onnx else [])),
                    registered_model_name=params.mlflow.register_model, onnx=onnx)


def _model_file(network) -> bytes:
    """models/model.keras, the same bytes for the same model (imgclf.train.keras_archive); the run is tagged
    with their sha256, by which evaluate and the report find it (imgclf.tracking.model_run)."""
    model_file = archive_bytes(network)
    mlflow.set_tag(store.MODEL_SHA256_TAG, sha256(model_file))
    return model_file


def _augmentation_preview(params: Params, inputs: _Inputs):
    """A few training images and their augmented versions, as the figure plots/augmentation.png
    (logreg trains on the images as they are: none)."""
    images = np.asarray(inputs.train.x[preview_rows(inputs.train.y, PREVIEW_IMAGES)])
    augmentation = AugmentationParams() if params.train.model == "logreg" else params.train.augmentation
    return augmentation_figure(augmentation_preview(images, augmentation, params.seed, inputs.data.pixel_scale))


def _explain(params: Params, network, inputs: _Inputs) -> dict[Path, bytes]:
    """plots/nodes.png (what each hidden node sees) and plots/gradcam.png (where a convolutional network looked
    in the validation split's most confident mistakes: the test split is evaluate's).

    Grad-CAM needs gradients, hence TensorFlow, which this stage alone has loaded; a network without a
    convolution costs a one-line figure here, not a prediction. Only figures that apply go to the run."""
    model = params.train.model
    nodes = None if model == "logreg" else _node_images(network)
    if nodes is None:
        nodes_fig = note_figure(f"What each hidden node sees: for a network; train.model {model} has no hidden layer")
    else:
        n, rgb = len(nodes.units), " (colour channels summed)" if inputs.train.x.shape[-1] > 1 else ""
        kind = (f"the first Dense layer's {n} strongest units (L2 norm), weight per input pixel{rgb}"
                if nodes.layer == "dense" else f"the first convolution's {n} strongest filters (L2 norm){rgb}")
        name = "unit" if nodes.layer == "dense" else "filter"
        nodes_fig = nodes_figure(nodes.images, [f"{name} {u}" for u in nodes.units],
                                 f"What each hidden node sees: {kind}; blue positive, orange negative")
    gradcam = _gradcam(params, network, inputs)
    figures = {layout.NODES_PNG: png_bytes(nodes_fig), layout.GRADCAM_PNG: png_bytes(gradcam)}
    for path, applies in ((layout.NODES_PNG, nodes is not None), (layout.GRADCAM_PNG, model in CONVOLUTIONAL)):
        if applies:  # a note that a figure does not apply is for the DVC output only
            store.log_bytes(figures[path], f"training/{path.name}")
    return figures


def _node_images(network):
    from imgclf.train.nodes import node_images  # Keras: imported only for a network

    return node_images(network)


def _gradcam(params: Params, network, inputs: _Inputs):
    model = params.train.model
    if model not in CONVOLUTIONAL:
        return note_figure(f"Grad-CAM: for a convolutional network (train.model cnn or transfer), not {model}")
    from imgclf.train.gradcam import grad_cam, probabilities

    x, y = inputs.val
    probs = probabilities(network, x)
    shown = confident_mistakes(y, probs, GRADCAM_IMAGES)
    predicted = probs[shown].argmax(axis=1)
    heatmaps = grad_cam(network, np.asarray(x[shown]), predicted) if len(shown) else np.zeros((0, *x.shape[1:3]))
    captions = [f"true: {inputs.class_names[t]}\npredicted: {inputs.class_names[p]} ({probs[i, p]:.2f})"
                for i, t, p in zip(shown, y[shown], predicted)]
    return gradcam_figure(np.asarray(x[shown]) * inputs.data.pixel_scale, heatmaps, captions)


def _export_onnx(network, x: np.ndarray) -> tuple[bytes | None, str]:
    """The ONNX copy evaluate, predict and the served model score without importing TensorFlow, when
    the network exports; the run's `scoring` tag says which runtime scores it."""
    onnx, note = export_onnx(network, x)
    mlflow.set_tag("scoring", "onnx" if onnx else "keras")
    return onnx, note


def _write_outputs(result: TrainResult, record: ModelRecord, model_file: bytes, onnx: bytes | None, onnx_note: str,
                   preview, explained: dict[Path, bytes]) -> None:
    """Every output of the stage, together (imgclf.artifacts.write_together)."""
    onnx_files = {EXPORT_NOTE: json.dumps({"exported": onnx is not None, "note": onnx_note}).encode(),
                  **({ONNX_NAME: onnx} if onnx else {})}
    write_together({
        layout.MODEL: bytes_writer(model_file),
        layout.ONNX_DIR: folder_writer(onnx_files),
        layout.MODEL_INFO: record.writer(),
        layout.TRAIN_METRICS: json_writer(result.summary),
        layout.HISTORY: text_writer(rows_to_csv(result.rows)),
        layout.AUGMENTATION_PNG: figure_writer(preview),
        **{path: bytes_writer(png) for path, png in explained.items()},
    })


def _print_summary(result: TrainResult, exported: bool, onnx_note: str, run_id: str) -> None:
    if result.samples_per_second is not None:
        print(f"train: fit {result.samples_seen} samples in {result.fit_seconds:.2f} s "
              f"({result.samples_per_second:.0f} samples/s)")
    if exported:
        print(f"train: model {onnx_note}")
    else:
        log.warning("model %s; evaluate and predict load TensorFlow to score it", onnx_note)
    print(f"train: {result.summary} {result.tags} (MLflow run {run_id})")


def _requirements(*packages: str) -> list[str]:
    """Pins of the installed packages a logged model needs to load."""
    return [f"{name}=={version(name)}" for name in packages]


def _train_as_worker(params: Params, cluster: Cluster) -> None:
    """A worker other than the chief: trains its share of each batch; the run and the outputs are the chief's."""
    if params.train.model != "logreg":  # scikit-learn fits in the chief's process alone
        from imgclf.train.training import make_deterministic, train_network

        inputs = _read_inputs()
        _set_op_threads(params, inputs.train, inputs.data.n_classes)
        make_deterministic(params.seed)
        train_network(inputs.train, inputs.val, inputs.data, params.train, params.seed)
    print(f"train: worker of {cluster.workers} done; the chief tracks the run and writes the outputs")


def _set_op_threads(params: Params, train: SplitPart, n_classes: int) -> int | None:
    """Sets the threads per TensorFlow op of this training, before its first op; the count in effect
    (0: TensorFlow's choice; None: logreg, no TensorFlow). A batch is at most the whole split."""
    if params.train.model == "logreg":
        return None
    from imgclf.train.devices import op_threads, set_op_threads

    batch_size = min(resolve_batch_size(params.train.batch_size, len(train.y)), len(train.y))
    return set_op_threads(op_threads(params.train, train.x.shape[1:], n_classes, batch_size))


def _backup(params: Params, cluster: Cluster) -> tuple[Backup | None, dict | None]:
    """This training's backup (keyed by params, data and code) and its saved state, if any.

    None for logreg, and in a cluster: a resume there would need every worker to restore it.
    """
    if params.train.model == "logreg" or cluster.workers > 1:
        return None, None
    from imgclf.train.resume import Backup, run_key

    data = [*layout.part_files(layout.SPLIT_DIR, "train"), *layout.part_files(layout.SPLIT_DIR, "val"),
            layout.meta_file(layout.SPLIT_DIR)]
    source = Path(__file__).resolve().parents[1]  # the project's code, wherever the stage runs from
    code = [source / "stages" / "train.py", *sorted((source / "imgclf").rglob("*.py"))]
    backup = Backup.of(store.project_root(), run_key(flatten(params), data, code, source))
    return backup, backup.load()


if __name__ == "__main__":
    run_stage(main)
