"""A tracking server with accounts (MLflow's basic-auth app): credentials from MLflow's variables, a refusal as one
line, and only an account that may edit the registered model moves the champion."""

from __future__ import annotations

import hashlib
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import requests
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED, UNAUTHENTICATED

from imgclf.errors import PipelineError
from imgclf.params import MlflowParams
from imgclf.tracking import access
from tests.conftest import local_server
from tests.dvc_project import copy_project, dvc, run

NAMES = MlflowParams(experiment_name="image-classifier", register_model="digits-classifier")
REFUSED = "API request to endpoint {} failed with error code {} != 200. Response body: 'Permission denied'"


def _refusal(endpoint: str, code=PERMISSION_DENIED) -> MlflowException:
    return MlflowException(REFUSED.format(endpoint, 403), error_code=code)


def _http_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status} Client Error", response=response)


def test_status_tells_a_refusal_from_other_errors():
    assert access.status(_refusal("/api/2.0/mlflow/runs/create")) == 403
    assert access.status(MlflowException("who?", error_code=UNAUTHENTICATED)) == 401
    assert access.status(_http_error(403)) == 403  # an artifact upload through the server
    assert access.status(MlflowException("no such run", error_code=2)) is None
    assert access.status(_http_error(404)) is None
    assert access.status(ValueError("x")) is None


def test_a_401_names_the_variable_to_set(monkeypatch):
    for name in (access.USERNAME, access.PASSWORD, access.TOKEN):
        monkeypatch.delenv(name, raising=False)
    message = str(access.unauthenticated("http://mlflow.example.invalid:5000"))
    assert "MLFLOW_TRACKING_USERNAME is not set" in message and access.PASSWORD in message
    monkeypatch.setenv(access.USERNAME, "ana")
    message = str(access.unauthenticated("http://mlflow.example.invalid:5000"))
    assert "MLFLOW_TRACKING_USERNAME='ana'" in message and f"check {access.PASSWORD}" in message


def test_a_403_names_the_permission_to_ask_for(monkeypatch):
    monkeypatch.setenv(access.USERNAME, "ana")
    assert access.permission_needed(_refusal("/api/2.0/mlflow/runs/create"), NAMES) == \
        "EDIT on experiment 'image-classifier'"
    assert access.permission_needed(_refusal("/api/2.0/mlflow/model-versions/create"), NAMES) == \
        "EDIT on registered model 'digits-classifier'"
    assert access.permission_needed(_refusal("/api/2.0/mlflow/registered-models/get"), NAMES) == \
        "READ on registered model 'digits-classifier'"
    with pytest.raises(PipelineError, match=r"does not let user 'ana' .* \(HTTP 403, /api/2.0/mlflow/runs/create\): "
                                            r"ask its admin for EDIT on experiment 'image-classifier'$"):
        with access.refusals(NAMES):
            raise _refusal("/api/2.0/mlflow/runs/create")
    with pytest.raises(MlflowException, match="no such run"), access.refusals(NAMES):
        raise MlflowException("no such run")  # not a refusal: passed on as it is


# The slow test below: a real basic-auth server, a trainer and a reader.

def _auth_env(tmp_path: Path, admin_password: str) -> dict[str, str]:
    """The server's environment: its own auth config and database in tmp_path, a generated admin password and
    Flask secret key, and none of the caller's MLflow variables."""
    config = tmp_path / "basic_auth.ini"
    config.write_text("[mlflow]\ndefault_permission = READ\n"
                      f"database_uri = sqlite:///{tmp_path / 'auth.db'}\nadmin_username = admin\n"
                      "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                      # a password checked once a minute, not on each of the pipeline's requests (PBKDF2, slow)
                      "auth_cache_ttl_seconds = 60\n")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return environment | {"MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
                          "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32)}


@pytest.fixture
def auth_server(tmp_path):
    """`mlflow server --app-name basic-auth` on 127.0.0.1: (its URL, the admin's password)."""
    admin_password = secrets.token_urlsafe(16)
    with local_server([sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
                       "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                       "--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1"],
                      "/health", tmp_path / "server.log", timeout=120, env=_auth_env(tmp_path, admin_password)) as url:
        yield url, admin_password


def _accounts(url: str, admin_password: str, monkeypatch) -> dict[str, dict[str, str]]:
    """As the admin: the team's experiment and registered model, a trainer (EDIT on both) and a reader (the
    server's default READ); each account's environment for the pipeline."""
    from mlflow.server import get_app_client
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv(access.USERNAME, "admin")
    monkeypatch.setenv(access.PASSWORD, admin_password)
    client, auth = MlflowClient(tracking_uri=url), get_app_client("basic-auth", tracking_uri=url)
    experiment = client.create_experiment(NAMES.experiment_name)
    client.create_registered_model(NAMES.register_model)
    accounts = {}
    for user in ("trainer", "reader"):
        password = secrets.token_urlsafe(16)
        auth.create_user(user, password)
        accounts[user] = {"MLFLOW_TRACKING_URI": url, access.USERNAME: user, access.PASSWORD: password}
    auth.grant_user_permission("trainer", "experiment", experiment, "EDIT")
    auth.grant_user_permission("trainer", "registered_model", NAMES.register_model, "EDIT")
    return accounts


def _errors(stderr: str) -> list[str]:
    assert "Traceback" not in stderr
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refused(repo: Path, stage: str, account: dict[str, str], output: Path) -> str:
    """Run `stage` as `account`, which the server refuses: it fails on one error line, which this returns,
    and leaves `output` as it was."""
    before = _sha(output)
    refused = run(repo, sys.executable, "-m", f"stages.{stage}", check=False, extra_env=account)
    assert refused.returncode != 0
    (error,) = _errors(refused.stderr)
    assert _sha(output) == before
    return error


@pytest.mark.slow
def test_a_team_server_with_accounts(tmp_path, data_template, auth_server, monkeypatch):
    url, admin_password = auth_server
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(f"{url}/api/2.0/mlflow/experiments/search?max_results=1", timeout=30)
    assert anonymous.value.code == 401
    accounts = _accounts(url, admin_password, monkeypatch)
    # the scikit-learn baseline: the quickest model that is trained, logged and registered as any other
    repo = copy_project(data_template, tmp_path / "repo", {"train.model": "logreg",
                                                             "mlflow.register_model": NAMES.register_model})

    started = time.monotonic()
    nobody = run(repo, sys.executable, "-m", "stages.train", check=False, extra_env={"MLFLOW_TRACKING_URI": url})
    assert nobody.returncode != 0 and time.monotonic() - started < 30
    (error,) = _errors(nobody.stderr)
    assert "HTTP 401" in error and "MLFLOW_TRACKING_USERNAME is not set" in error
    assert not (repo / "models" / "model.keras").exists()

    dvc(repo, "repro", "evaluate", extra_env=accounts["trainer"])
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url)  # as the admin
    experiment = client.get_experiment_by_name(NAMES.experiment_name).experiment_id
    runs = {r.data.tags["stage"]: r for r in client.search_runs([experiment])}
    assert set(runs) == {"train", "evaluate"} and {r.info.status for r in runs.values()} == {"FINISHED"}
    (version,) = client.search_model_versions(f"name = '{NAMES.register_model}'")
    assert version.run_id == runs["train"].info.run_id and "task.class_names" in version.tags

    error = _refused(repo, "train", accounts["reader"], repo / "models" / "model.keras")
    # asked before the fit: every permission it lacks, on one line
    assert error.endswith("does not let user 'reader' (MLFLOW_TRACKING_USERNAME) log this training and register its "
                          "model: ask its admin for EDIT on experiment 'image-classifier' and EDIT on registered "
                          "model 'digits-classifier'")
    error = _refused(repo, "evaluate", accounts["reader"], repo / "metrics" / "eval.json")
    assert error.endswith("(HTTP 403, /api/2.0/mlflow/runs/create): ask its admin for EDIT on experiment "
                          "'image-classifier'") and "user 'reader'" in error

    finished = dvc(repo, "repro", extra_env=accounts["reader"])  # the report stage, and the champion, are left
    assert (repo / "reports" / "report.html").exists()
    warnings = [line for line in finished.stderr.splitlines() if "may not move the alias champion" in line]
    assert len(warnings) == 1 and "EDIT on registered model 'digits-classifier'" in warnings[0]
    assert client.get_registered_model(NAMES.register_model).aliases == {}

    dvc(repo, "repro", "--force", "--single-item", "report", extra_env=accounts["trainer"])
    assert client.get_registered_model(NAMES.register_model).aliases == {"champion": version.version}

    # The admin holds no grant on an experiment a trainer made, and may still train there; the reader may not.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    for name, value in accounts["trainer"].items():
        monkeypatch.setenv(name, value)
    theirs = MlflowClient(tracking_uri=url).create_experiment("trainers-own")
    monkeypatch.setenv(access.USERNAME, "admin")
    monkeypatch.setenv(access.PASSWORD, admin_password)
    access.check_can_train(NAMES, theirs)
    for name, value in accounts["reader"].items():
        monkeypatch.setenv(name, value)
    with pytest.raises(PipelineError, match="ask its admin for EDIT on experiment"):
        access.check_can_train(NAMES, theirs)
