"""The MLflow training run of the model in models/, found by its file's sha256: python -m imgclf.tracking.model_run.

models/model.json and the report are DVC outputs that a rerun reproduces byte for byte, so they
name no run id (a new one on every training). Train tags its run with the sha256 of the model
file it writes (`model.sha256`); evaluate, the report and this command find the run by it. When
DVC restores a model from its run-cache, no run is made and the hash finds the one that trained
it; a `dvc exp run --temp/--queue` copy looks in the project's store (DVC_ROOT) like any stage.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

import mlflow
from mlflow.tracking import MlflowClient

from imgclf import layout
from imgclf.errors import PipelineError
from imgclf.params import load_params
from imgclf.records import ModelRecord
from imgclf.runtime import run_stage
from imgclf.tracking import lineage, store

PHOTO_MODEL = "model"  # the name train logs the served model under (imgclf.serve.serving.log_photo_model)


@dataclass(frozen=True)
class TrainingRun:
    """What later stages need of a model's training run, looked up in MLflow."""

    run_id: str
    name: str
    experiment_id: str
    model_id: str | None  # the photo model logged in the run; None when it is not in the store
    registered_version: int | None  # of record.registered_model, when the run registered the model
    data_hint: str  # the commands that bring back the run's data


def find_training_run(experiment_name: str, record: ModelRecord) -> TrainingRun | None:
    """The newest finished training run in the experiment that wrote this record's model file, or None."""
    run = store.find_model_run(experiment_name, record.model_sha256)
    if run is None:
        return None
    run_id, experiment_id = run.info.run_id, run.info.experiment_id
    models = mlflow.search_logged_models([experiment_id], output_format="list",
                                         filter_string=f"source_run_id = '{run_id}' AND name = '{PHOTO_MODEL}'")
    return TrainingRun(run_id, run.info.run_name, experiment_id, models[0].model_id if models else None,
                       _registered_version(record.registered_model, run_id), lineage.run_checkout_hint(run.data.tags))


def _registered_version(name: str | None, run_id: str) -> int | None:
    if not name:
        return None
    versions = MlflowClient().search_model_versions(f"name = '{name}' AND run_id = '{run_id}'")
    return max((int(v.version) for v in versions), default=None)


def search_filter(model_sha256: str) -> str:
    """The MLflow search (the runs table's search box, `mlflow.search_runs`) for the runs that wrote this model file."""
    return f"tags.`{store.MODEL_SHA256_TAG}` = '{model_sha256}'"


def runs_link(run: TrainingRun | None, model_sha256: str) -> str | None:
    """The MLflow UI page listing the training runs that wrote this model file, newest first, when the store
    is a server; None for a local store (no address until `mlflow ui` serves it) or when no run was found.

    The same page for every retraining of the same model: it names the file, not one run.
    """
    server = mlflow.get_tracking_uri()
    if run is None or not _is_server(server):
        return None
    # workflowType: MLflow 3's UI opens an experiment in its GenAI view unless the link names the training one
    query = urllib.parse.urlencode({"workflowType": "machine_learning", "searchFilter": search_filter(model_sha256)},
                                   quote_via=urllib.parse.quote)
    return f"{server.rstrip('/')}/#/experiments/{run.experiment_id}/runs?{query}"


def run_link(run: TrainingRun) -> str | None:
    """The MLflow UI page of this one run, when the store is a server."""
    server = mlflow.get_tracking_uri()
    if not _is_server(server):
        return None
    return f"{server.rstrip('/')}/#/experiments/{run.experiment_id}/runs/{run.run_id}"


def describe(run: TrainingRun) -> str:
    """The run as a console line: its id and name, and its page on a server."""
    link = run_link(run)
    return f"MLflow run {run.run_id} ({run.name})" + (f", {link}" if link else "")


def _is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def main() -> None:
    experiment = load_params(layout.PARAMS).mlflow.experiment_name
    if not layout.MODEL_INFO.exists():
        raise PipelineError(f"no trained model ({layout.MODEL_INFO}); run `dvc repro` first")
    record = ModelRecord.read(layout.MODEL_INFO)
    found = find_training_run(experiment, record)
    if found is None:
        raise PipelineError(f"no finished training run in MLflow experiment {experiment!r} of "
                            f"{mlflow.get_tracking_uri()} wrote {layout.MODEL} (sha256 {record.model_sha256}); "
                            "to track one, retrain: dvc repro --force --single-item train")
    print(f"{layout.MODEL}: {describe(found)}")


if __name__ == "__main__":
    run_stage(main)
