"""MLflow tracking: where runs are stored and what every run is tagged with."""

from __future__ import annotations

import os
import random
import subprocess
import tempfile
import time
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from sqlalchemy.exc import SQLAlchemyError

from imgclf.errors import PipelineError

LOCAL_DB = "mlflow.db"
LOCAL_ARTIFACTS = "mlartifacts"


def project_root() -> Path:
    """The real project root: DVC sets DVC_ROOT for stage commands, also in --temp/--queue copies."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def tracking_uri(root: Path) -> str:
    """MLFLOW_TRACKING_URI when set (a shared server), else the project's sqlite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root / LOCAL_DB}"


def use_experiment(name: str, attempts: int = 5) -> str:
    """Point MLflow at the project's store and return the id of experiment `name`, creating it."""
    root = project_root()
    uri = tracking_uri(root)
    mlflow.set_tracking_uri(uri)
    # Pin artifacts to the real root: a default relative location would land inside
    # the temporary copy of `dvc exp run --temp` and vanish with it.
    location = (root / LOCAL_ARTIFACTS).as_uri() if uri.startswith("sqlite:") else None
    return _retrying(lambda: _get_or_create_experiment(name, location), attempts)


def _get_or_create_experiment(name: str, location: str | None) -> str:
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        return mlflow.create_experiment(name, artifact_location=location)
    if experiment.lifecycle_stage == "deleted":
        raise PipelineError(
            f"MLflow experiment {name!r} is deleted; restore it in the MLflow UI "
            "(or `mlflow experiments restore`), or set mlflow.experiment_name to another name"
        )
    return experiment.experiment_id


def find_run(run_id: str, attempts: int = 5):
    """Point MLflow at the project's store; the live run `run_id` there, or None when it is gone or deleted."""
    mlflow.set_tracking_uri(tracking_uri(project_root()))

    def get():
        try:
            run = mlflow.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise  # not "no such run": retried, then it fails the stage rather than skip the record
        return run if run.info.lifecycle_stage == "active" else None

    return _retrying(get, attempts)


def _retrying(call, attempts: int):
    """call(), looked at again on a store error, then re-raised.

    Queued experiments and stages start side by side: another process may be creating the
    store's tables or an experiment, or hold the sqlite file locked, right now.
    """
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except (MlflowException, SQLAlchemyError):
            if attempt == attempts:
                raise
            time.sleep(0.5 + random.random())


def evaluation_tags(model_run, test_md5: dict[str, str]) -> dict[str, str]:
    """Tags of an evaluation run: the training run whose model it scored, and the test files' DVC hashes."""
    tags = {"stage": "evaluate", "model.run_id": model_run.info.run_id,
            **{f"test.{name}.md5": md5 for name, md5 in test_md5.items()}}
    if exp_name := os.environ.get("DVC_EXP_NAME"):
        tags["dvc.exp_name"] = exp_name
    return tags


def evaluations_of(model_run) -> list:
    """The evaluation runs already logged for a training run, oldest first."""
    return mlflow.search_runs([model_run.info.experiment_id], output_format="list",
                              filter_string=f"tags.mlflow.parentRunId = '{model_run.info.run_id}'",
                              order_by=["attributes.start_time ASC"])


def run_tags(dataset: str, device: str, framework_version: str) -> dict[str, str]:
    """Tags every training run carries: commit, DVC experiment, device, framework, dataset."""
    tags = {
        "stage": "train",
        "mlflow.source.git.commit": git_commit(project_root()),
        "device": device,
        "tensorflow.version": framework_version,
        "dataset": dataset,
    }
    if exp_name := os.environ.get("DVC_EXP_NAME"):
        tags["dvc.exp_name"] = exp_name
    return tags


def git_commit(root: Path) -> str:
    """The commit the run starts from (DVC's experiment baseline when set)."""
    if baseline := os.environ.get("DVC_EXP_BASELINE_REV"):
        return baseline
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def log_bytes(data: bytes, artifact_file: str) -> None:
    """Log bytes already made (a PNG rendered once for its output file) as an artifact of the active run."""
    name = Path(artifact_file)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / name.name).write_bytes(data)
        mlflow.log_artifact(str(Path(tmp) / name.name), name.parent.as_posix() if name.parent != Path(".") else None)
