"""Team use: queued experiments in parallel, a shared MLflow server and its REST API, the model registry."""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.parse
import urllib.request

import pytest

from tests.conftest import local_server
from tests.dvc_project import copy_project, dvc, evaluations, experiments, mlflow_runs, training_runs

pytestmark = pytest.mark.slow


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` on 127.0.0.1 with its own sqlite store and proxied artifacts."""
    with local_server([sys.executable, "-m", "mlflow", "server",
                       "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                       "--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1"],
                      "/health", tmp_path / "server.log", timeout=120) as url:
        yield url


@pytest.fixture
def fresh_clone(tmp_path, data_template):
    """A clone as a team member has it: the data stages committed, no MLflow store yet."""
    repo = copy_project(data_template, tmp_path, {"train.epochs": 3, "train.hidden_units": [32]})
    assert not (repo / "mlflow.db").exists()
    yield repo
    dvc(repo, "queue", "stop", "--kill", check=False)


def test_queued_experiments_run_two_at_a_time(fresh_clone):
    # The first two start together and both create the MLflow store: none may be lost to it.
    repo = fresh_clone
    names = [f"queued-{lr}" for lr in ("0.002", "0.003", "0.004")]
    for name in names:
        dvc(repo, "exp", "run", "--queue", "-n", name, "-S", f"train.learning_rate={name.split('-')[1]}")
    dvc(repo, "queue", "start", "-j", "2")
    deadline = time.monotonic() + 900
    while True:
        status = dvc(repo, "queue", "status").stdout
        if not any(word in status for word in ("Queued", "Running")):
            break
        assert time.monotonic() < deadline, status
        time.sleep(5)
    assert status.count("Success") == 3, status + dvc(repo, "queue", "logs", names[0], check=False).stdout

    rows = experiments(repo)
    _, runs = mlflow_runs(repo)
    for name in names:
        accuracy = rows[name]["metrics"]["metrics/eval.json"]["data"]["accuracy"]
        tagged = [r for r in training_runs(runs) if r.data.tags.get("dvc.exp_name") == name]
        assert len(tagged) == 1, f"{name}: {len(tagged)} MLflow training runs"
        assert tagged[0].info.status == "FINISHED"
        (scored,) = evaluations(runs, tagged[0].info.run_id)
        assert scored.info.status == "FINISHED"
        assert scored.data.metrics["test_accuracy"] == pytest.approx(accuracy)
        assert tagged[0].data.params["train.learning_rate"] == name.split("-")[1]
        # Its copy's params differ from the commit: the experiment, not the commit, brings its data back.
        assert tagged[0].data.tags["git.dirty"] == "true"
        assert f"Data: `dvc exp apply {name}`" in tagged[0].data.tags["mlflow.note.content"]
    assert not [r for r in runs if r.info.status == "RUNNING"]


def test_runs_go_to_the_server_named_by_mlflow_tracking_uri(fresh_clone, mlflow_server):
    repo = fresh_clone
    dvc(repo, "exp", "run", "--temp", "-n", "shared", "-S", "train.epochs=2",
        "-S", "mlflow.register_model=digits-classifier", extra_env={"MLFLOW_TRACKING_URI": mlflow_server})
    assert not (repo / "mlflow.db").exists()  # nothing landed in a local store

    api = f"{mlflow_server}/api/2.0/mlflow"
    experiment = _get(f"{api}/experiments/get-by-name?experiment_name=image-classifier")["experiment"]
    runs = _post(f"{api}/runs/search", {"experiment_ids": [experiment["experiment_id"]],
                                         "filter": "tags.`dvc.exp_name` = 'shared'"})["runs"]
    by_stage = {next(t["value"] for t in r["data"]["tags"] if t["key"] == "stage"): r for r in runs}
    assert len(runs) == 2 and set(by_stage) == {"train", "evaluate"}
    found, scored = by_stage["train"], by_stage["evaluate"]
    run_id = found["info"]["run_id"]
    assert found["info"]["status"] == scored["info"]["status"] == "FINISHED"
    assert {"key": "mlflow.parentRunId", "value": run_id} in scored["data"]["tags"]
    assert "val_loss" in {m["key"] for m in found["data"]["metrics"]}
    accuracy = experiments(repo)["shared"]["metrics"]["metrics/eval.json"]["data"]["accuracy"]
    assert {m["key"]: m["value"] for m in scored["data"]["metrics"]}["test_accuracy"] == pytest.approx(accuracy)
    files = _get(f"{api}/artifacts/list?run_id={scored['info']['run_id']}&path=evaluation")["files"]
    assert {"evaluation/confusion_matrix.png", "evaluation/classification_report.json"} <= {f["path"] for f in files}
    model = _get(f"{api}/registered-models/get?name=digits-classifier")["registered_model"]
    assert model["latest_versions"][0]["run_id"] == run_id
    # the first evaluated version of a model is its champion, on the server too
    assert model["aliases"] == [{"alias": "champion", "version": model["latest_versions"][0]["version"]}]
    # The experiment's report links to the server's runs table, searched for the run by its model file.
    dvc(repo, "exp", "apply", "shared")
    sha = json.loads((repo / "models/model.json").read_text())["model_sha256"]
    (link,) = re.findall(r"\[The training run in MLflow\]\((\S+)\)", (repo / "reports/report.md").read_text())
    page, query = link.split("?")
    assert page == f"{mlflow_server}/#/experiments/{experiment['experiment_id']}/runs"
    (search,) = urllib.parse.parse_qs(query)["searchFilter"]
    assert sha in search
    listed = _post(f"{api}/runs/search", {"experiment_ids": [experiment["experiment_id"]], "filter": search})["runs"]
    assert [r["info"]["run_id"] for r in listed] == [run_id]
