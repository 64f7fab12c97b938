"""End to end: the real `dvc repro` and `dvc exp run` in a temporary git repo, offline."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient
from PIL import Image

from tests.conftest import PROJECT

pytestmark = pytest.mark.slow

PROJECT_FILES = ("dvc.yaml", "params.yaml", "pyproject.toml", ".gitignore", ".dvcignore", "stages", "imgclf")
STAGES = {"download", "preprocess", "split", "train", "evaluate", "report"}


def _env(repo: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.invalid",
               GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.invalid")
    return env


def _run(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(list(args), cwd=repo, env=_env(repo), capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def _dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return _run(repo, sys.executable, "-m", "dvc", *args, check=check)


def _stages_run(result: subprocess.CompletedProcess) -> set[str]:
    return set(re.findall(r"Running stage '(\w+)'", result.stdout))


def _set_param(repo: Path, section: str, key: str, value) -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params[section][key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def _runs(repo: Path):
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("image-classifier")
    return client, client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A fresh git repo holding the project, after one `dvc repro` on the default params."""
    repo = tmp_path_factory.mktemp("project")
    for name in PROJECT_FILES:
        source = PROJECT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, repo / name)
    _run(repo, "git", "init", "-q")
    _dvc(repo, "init", "-q")
    _dvc(repo, "config", "core.analytics", "false")
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-qm", "project")
    first = _dvc(repo, "repro")
    assert _stages_run(first) == STAGES
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-qm", "baseline")
    return repo


def test_repro_writes_metrics_plots_and_report(repo):
    evaluation = json.loads((repo / "metrics/eval.json").read_text())
    assert {"accuracy", "loss", "precision_macro", "recall_macro", "f1_macro"} <= set(evaluation)
    assert evaluation["accuracy"] >= 0.97
    split = json.loads((repo / "metrics/split.json").read_text())
    assert split["train"] + split["val"] + split["test"] == 1797 and split["test_source"] == "carved"
    report = json.loads((repo / "metrics/classification_report.json").read_text())
    assert sum(row["support"] for row in report.values()) == split["test"]
    confusion = json.loads((repo / "plots/confusion.json").read_text())
    assert len(confusion) == split["test"] and set(confusion[0]) == {"actual", "predicted"}
    history = (repo / "plots/history.csv").read_text().splitlines()
    assert history[0] == "epoch,loss,accuracy,val_loss,val_accuracy" and len(history) == 31

    html = (repo / "reports/report.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and f"{evaluation['accuracy']:.4f}" in html
    assert "![confusion matrix](../plots/confusion_matrix.png)" in (repo / "reports/report.md").read_text()

    plots = _dvc(repo, "plots", "show", "--json")
    assert "Confusion matrix" in plots.stdout and "Loss" in plots.stdout


def test_training_is_tracked_in_mlflow(repo):
    client, runs = _runs(repo)
    assert len(runs) == 1
    run = runs[0]
    evaluation = json.loads((repo / "metrics/eval.json").read_text())
    assert run.info.status == "FINISHED"
    assert run.data.params["train.optimizer"] == "adam" and run.data.params["data.dataset"] == "digits"
    assert run.data.metrics["test_accuracy"] == pytest.approx(evaluation["accuracy"])
    assert len(client.get_metric_history(run.info.run_id, "val_loss")) == 30
    assert run.data.tags["device"] == "CPU"
    assert run.data.tags["tensorflow.version"]
    head = _run(repo, "git", "rev-parse", "HEAD~1").stdout.strip()
    assert run.data.tags["mlflow.source.git.commit"] == head
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/confusion_matrix.png", "evaluation/classification_report.json",
            "evaluation/confusion_matrix.json"} <= artifacts
    models = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    assert [m.source_run_id for m in models] == [run.info.run_id]
    info = json.loads((repo / "models/model.json").read_text())
    assert info["mlflow_run_id"] == run.info.run_id


def test_second_repro_runs_nothing(repo):
    result = _dvc(repo, "repro")
    assert _stages_run(result) == set()
    assert len(_runs(repo)[1]) == 1


def test_predict_agrees_with_evaluate(repo):
    test = np.load(repo / "data/split/test.npz")
    probs = np.load(repo / "data/predictions/test.npz")["probs"]
    index = int(np.argmax(probs.max(axis=1)))  # a clear-cut image: 8-bit PNG rounding cannot flip it
    Image.fromarray(np.round(test["x"][index, ..., 0] * 255).astype(np.uint8)).save(repo / "digit.png")
    out = _run(repo, sys.executable, "-m", "imgclf.predict", "digit.png", "--top", "3").stdout
    expected = test["class_names"][probs[index].argmax()]
    assert re.match(rf"digit\.png: {expected} \(", out), out


def test_same_params_give_identical_metrics(repo):
    before = {p: (repo / p).read_text() for p in ("metrics/eval.json", "metrics/train.json", "plots/history.csv")}
    _dvc(repo, "repro", "--force", "--single-item", "train")
    _dvc(repo, "repro", "--force", "--single-item", "evaluate")
    after = {p: (repo / p).read_text() for p in before}
    assert after == before
    _run(repo, "git", "checkout", "-q", "--", "dvc.lock", "models/model.json")
    _dvc(repo, "checkout", "-q", "--force")


def test_changing_epochs_reruns_train_evaluate_report_only(repo):
    _set_param(repo, "train", "epochs", 3)
    result = _dvc(repo, "repro")
    assert _stages_run(result) == {"train", "evaluate", "report"}
    assert json.loads((repo / "metrics/train.json").read_text())["epochs_run"] == 3
    _run(repo, "git", "checkout", "-q", "--", ".")
    _dvc(repo, "checkout", "-q", "--force")


def test_exp_run_is_listed_by_dvc_and_tracked_by_mlflow(repo):
    _dvc(repo, "exp", "run", "-n", "sgd-try", "-S", "train.optimizer=sgd", "-S", "train.epochs=5")
    shown = json.loads(_dvc(repo, "exp", "show", "--json").stdout)
    rows = {}
    for baseline in shown:
        rows[baseline["rev"]] = baseline["data"]
        for exp in baseline.get("experiments") or []:
            for rev in exp["revs"]:
                rows[rev["name"]] = rev["data"]
    sgd = rows["sgd-try"]
    assert sgd["params"]["params.yaml"]["data"]["train"]["optimizer"] == "sgd"
    assert "accuracy" in sgd["metrics"]["metrics/eval.json"]["data"]
    workspace = rows["workspace"]
    assert workspace["params"]["params.yaml"]["data"]["train"]["optimizer"] == "sgd"

    _, runs = _runs(repo)
    tagged = [r for r in runs if r.data.tags.get("dvc.exp_name") == "sgd-try"]
    assert len(tagged) == 1 and tagged[0].info.run_name == "sgd-try"
    assert tagged[0].data.params["train.optimizer"] == "sgd"
    assert tagged[0].data.metrics["test_accuracy"] == pytest.approx(
        sgd["metrics"]["metrics/eval.json"]["data"]["accuracy"])
    assert all(r.info.status == "FINISHED" for r in runs)
