"""MLflow tracking: where runs are stored and what every run is tagged with."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import mlflow
import psutil
import requests
from filelock import FileLock
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy.exc import SQLAlchemyError

from imgclf.errors import PipelineError
from imgclf.tracking import access, mlflow_store, mlflow_ui

log = logging.getLogger(__name__)

LOCAL_DB = "mlflow.db"
STORE_LOCK = ".mlflow.db.lock"
LOCAL_ARTIFACTS = "mlartifacts"
# A tracking server that does not answer within this many seconds fails the stage before any work.
SERVER_TIMEOUT = 10
PROCESS_TAG = "imgclf.process"  # host:pid:start time of the process a run belongs to
MODEL_SHA256_TAG = "model.sha256"  # on a training run: the sha256 of the models/model.keras it wrote


def project_root() -> Path:
    """The real project root: DVC sets DVC_ROOT for stage commands, also in --temp/--queue copies."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def tracking_uri(root: Path) -> str:
    """MLFLOW_TRACKING_URI when set (a shared server), else the project's sqlite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root / LOCAL_DB}"


def connect() -> str:
    """Point MLflow at the project's store, ready for any number of processes; fail fast when it cannot answer.

    A tracking server is asked once, without MLflow's retries (minutes of silence on a closed port), and
    then whether it knows the user (MLFLOW_TRACKING_USERNAME ...): a 401 fails here, before any work.
    The local sqlite store is created and migrated by one process at a time, under a file lock:
    stages started at once (queue workers, multi-worker training) would otherwise race in
    MLflow's schema migration, and one cut short leaves the store unusable.
    """
    root = project_root()
    uri = tracking_uri(root)
    mlflow.set_tracking_uri(uri)
    if uri.startswith(("http://", "https://")):
        _check_server(uri)
    elif uri.startswith("sqlite:"):
        with store_lock(root):
            mlflow_store.repair_cut_migration(root / LOCAL_DB)
            try:
                MlflowClient().search_experiments(max_results=1)  # creates or migrates the store, once
            except (MlflowException, SQLAlchemyError) as exc:
                raise PipelineError(
                    f"the MLflow store {root / LOCAL_DB} cannot be opened or migrated "
                    f"({str(exc).splitlines()[0][:200]}); move it aside (a new one is created on the next run) "
                    f"or run `mlflow db upgrade sqlite:///{LOCAL_DB}`") from None
    return uri


def store_lock(root: Path):
    """One process at a time on the project's sqlite store (a tracking server orders its own writes)."""
    if tracking_uri(root).startswith("sqlite:"):
        return FileLock(root / STORE_LOCK, timeout=120)
    return contextlib.nullcontext()


def _check_server(uri: str) -> None:
    # Later calls fail within a bounded time too, should the server go away during training.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(SERVER_TIMEOUT))
    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=SERVER_TIMEOUT)
    except requests.RequestException as exc:
        raise PipelineError(
            f"the MLflow tracking server at {uri} (MLFLOW_TRACKING_URI) does not answer ({type(exc).__name__}); "
            f"start it (mlflow server --host ... --port ...), or unset MLFLOW_TRACKING_URI to use the "
            f"project's local store") from None
    try:
        MlflowClient().search_experiments(max_results=1)
    except MlflowException as exc:
        if access.status(exc) == 401:
            raise access.unauthenticated(uri) from None
        raise


def use_experiment(name: str, attempts: int = 5) -> str:
    """Point MLflow at the project's store and return the id of experiment `name`, creating it."""
    root = project_root()
    uri = connect()
    # Pin artifacts to the real root: a default relative location would land inside
    # the temporary copy of `dvc exp run --temp` and vanish with it.
    location = (root / LOCAL_ARTIFACTS).as_uri() if uri.startswith("sqlite:") else None
    return _retrying(lambda: _get_or_create_experiment(name, location), attempts)


def _get_or_create_experiment(name: str, location: str | None) -> str:
    """The experiment's id, created with (or given the missing) tags that open it in the UI on its training runs."""
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        return mlflow.create_experiment(name, artifact_location=location, tags=mlflow_ui.experiment_tags())
    if experiment.lifecycle_stage == "deleted":
        raise PipelineError(
            f"MLflow experiment {name!r} is deleted; restore it in the MLflow UI "
            "(or `mlflow experiments restore`), or set mlflow.experiment_name to another name"
        )
    for key, value in mlflow_ui.missing_tags(experiment.tags).items():
        MlflowClient().set_experiment_tag(experiment.experiment_id, key, value)
    return experiment.experiment_id


def find_run(run_id: str, attempts: int = 5):
    """Point MLflow at the project's store; the live run `run_id` there, or None when it is gone or deleted."""
    connect()

    def get():
        try:
            run = mlflow.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise  # not "no such run": retried, then it fails the stage rather than skip the record
        return run if run.info.lifecycle_stage == "active" else None

    return _retrying(get, attempts)


def find_model_run(experiment_name: str, model_sha256: str, attempts: int = 5):
    """Point MLflow at the project's store; the newest finished training run of experiment `experiment_name`
    that wrote the model file with this sha256 (tag model.sha256), or None.

    Training is deterministic, so a retraining (`--force`) writes the same file: the newest run is
    the one that wrote the file in place. Only a finished run's stage published its outputs.
    """
    connect()
    query = f"tags.`{MODEL_SHA256_TAG}` = '{model_sha256}' AND attributes.status = 'FINISHED'"

    def search():
        experiment = mlflow.get_experiment_by_name(experiment_name)
        if experiment is None or experiment.lifecycle_stage != "active":
            return None
        runs = mlflow.search_runs([experiment.experiment_id], filter_string=query, max_results=1,
                                  order_by=["attributes.start_time DESC"], output_format="list")
        return runs[0] if runs else None

    return _retrying(search, attempts)


def _retrying(call, attempts: int):
    """call(), looked at again on a store error, then re-raised.

    Queued experiments and stages start side by side: another process may be creating the
    store's tables or an experiment, or hold the sqlite file locked, right now. A server's refusal
    (401, 403) is no race: it is raised at once.
    """
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except (MlflowException, SQLAlchemyError) as exc:
            if attempt == attempts or access.status(exc) is not None:
                raise
            time.sleep(0.5 + random.random())


@contextlib.contextmanager
def stage_run(run_id: str | None = None, **start_run_args):
    """An MLflow run for a stage: FINISHED when it completes, KILLED when stopped (SIGTERM, Ctrl-C), else FAILED.

    `run_id` continues a run (a resumed training). The run is tagged with this process, so a later
    start can tell a run whose process was killed (SIGKILL, OOM) from one still going.
    """
    run = mlflow.start_run(run_id=run_id, **start_run_args)
    try:
        mlflow.set_tag(PROCESS_TAG, _this_process())
        yield run
    except KeyboardInterrupt:
        mlflow.end_run("KILLED")
        raise
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    mlflow.end_run("FINISHED")


def close_stale_runs(experiment_id: str, keep: str | None = None) -> list[str]:
    """Mark KILLED the RUNNING runs whose process on this machine is gone (but `keep`, about to be continued).

    Any stage sweeps them: after a killed training DVC may restore the stage from its run-cache
    instead of rerunning it, and the pipeline must still end with no RUNNING run.
    """
    closed = []
    runs = mlflow.search_runs([experiment_id], output_format="list", filter_string="attributes.status = 'RUNNING'")
    for run in runs:
        owner = run.data.tags.get(PROCESS_TAG)
        if run.info.run_id == keep or owner is None or _alive(owner):
            continue
        MlflowClient().set_terminated(run.info.run_id, "KILLED")
        closed.append(run.info.run_id)
        log.info("MLflow run %s (%s), whose %s stage was killed, is marked KILLED",
                 run.info.run_id, run.info.run_name, run.data.tags.get("stage"))
    return closed


def _this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{psutil.Process().create_time():.0f}"


def _alive(owner: str) -> bool:
    """Whether the process a run is tagged with still runs (runs of other machines are taken as alive)."""
    host, pid, started = owner.rsplit(":", 2)
    if host != socket.gethostname():
        return True
    try:
        return f"{psutil.Process(int(pid)).create_time():.0f}" == started
    except (psutil.NoSuchProcess, ValueError):
        return False


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
