"""End to end: the real `dvc repro` and `dvc exp run` in a temporary git repo, offline."""

from __future__ import annotations

import json
import re
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from tests.dvc_project import commit, dvc, experiments, make_project, mlflow_runs, run, set_param, stages_run

pytestmark = pytest.mark.slow

STAGES = {"download", "preprocess", "split", "train", "evaluate", "report"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A fresh git repo holding the project, after one `dvc repro` on the default params."""
    repo = make_project(tmp_path_factory.mktemp("project"))
    first = dvc(repo, "repro")
    assert stages_run(first) == STAGES
    commit(repo, "baseline")
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
    assert history[0] == "epoch,loss,accuracy,val_loss,val_accuracy,learning_rate" and len(history) == 31

    html = (repo / "reports/report.html").read_text()
    assert html.count("data:image/png;base64,") == 5 and f"{evaluation['accuracy']:.4f}" in html
    assert "![confusion matrix](../plots/confusion_matrix.png)" in (repo / "reports/report.md").read_text()

    plots = dvc(repo, "plots", "show", "--json")
    for title in ("Confusion matrix", "Loss", "Accuracy", "Learning rate", "plots/augmentation.png"):
        assert title in plots.stdout


def test_training_is_tracked_in_mlflow(repo):
    client, runs = mlflow_runs(repo)
    assert len(runs) == 1
    (tracked,) = runs
    evaluation = json.loads((repo / "metrics/eval.json").read_text())
    assert tracked.info.status == "FINISHED"
    assert tracked.data.params["train.optimizer"] == "adam" and tracked.data.params["data.dataset"] == "digits"
    assert tracked.data.metrics["test_accuracy"] == pytest.approx(evaluation["accuracy"])
    assert len(client.get_metric_history(tracked.info.run_id, "val_loss")) == 30
    assert tracked.data.tags["device"] == "CPU"
    assert tracked.data.tags["tensorflow.version"]
    head = run(repo, "git", "rev-parse", "HEAD~1").stdout.strip()
    assert tracked.data.tags["mlflow.source.git.commit"] == head
    artifacts = {a.path for a in client.list_artifacts(tracked.info.run_id, "evaluation")}
    assert {"evaluation/confusion_matrix.png", "evaluation/classification_report.json",
            "evaluation/confusion_matrix.json"} <= artifacts
    models = client.search_logged_models(experiment_ids=[tracked.info.experiment_id])
    assert [m.source_run_id for m in models] == [tracked.info.run_id]
    info = json.loads((repo / "models/model.json").read_text())
    assert info["mlflow_run_id"] == tracked.info.run_id


def test_second_repro_runs_nothing(repo):
    result = dvc(repo, "repro")
    assert stages_run(result) == set()
    assert len(mlflow_runs(repo)[1]) == 1


def test_predict_agrees_with_evaluate(repo):
    x_test = np.load(repo / "data/split/test_x.npy")
    probs = np.load(repo / "data/predictions/test_probs.npy")
    index = int(np.argmax(probs.max(axis=1)))  # a clear-cut image: 8-bit PNG rounding cannot flip it
    Image.fromarray(np.round(x_test[index, ..., 0] * 255).astype(np.uint8)).save(repo / "digit.png")
    out = run(repo, sys.executable, "-m", "imgclf.predict", "digit.png", "--top", "3").stdout
    expected = json.loads((repo / "data/split/meta.json").read_text())["class_names"][probs[index].argmax()]
    assert re.match(rf"digit\.png: {expected} \(", out), out


def test_same_params_give_identical_metrics(repo):
    before = {p: (repo / p).read_text() for p in ("metrics/eval.json", "metrics/train.json", "plots/history.csv")}
    dvc(repo, "repro", "--force", "--single-item", "train")
    dvc(repo, "repro", "--force", "--single-item", "evaluate")
    after = {p: (repo / p).read_text() for p in before}
    assert after == before
    run(repo, "git", "checkout", "-q", "--", "dvc.lock")
    dvc(repo, "checkout", "-q", "--force")


def test_changing_epochs_reruns_train_evaluate_report_only(repo):
    set_param(repo, "train.epochs", 3)
    result = dvc(repo, "repro")
    assert stages_run(result) == {"train", "evaluate", "report"}
    assert json.loads((repo / "metrics/train.json").read_text())["epochs_run"] == 3
    run(repo, "git", "checkout", "-q", "--", ".")
    dvc(repo, "checkout", "-q", "--force")


def test_run_cache_restores_training_without_a_new_mlflow_run(repo):
    # epochs=3 was trained above; epochs=4, then 3 again: DVC restores the second from its run-cache
    dvc(repo, "exp", "run", "-n", "four", "-S", "train.epochs=4")
    runs_before = mlflow_runs(repo)[1]
    run(repo, "git", "checkout", "-q", "--", "params.yaml")
    result = dvc(repo, "exp", "run", "-n", "three-again", "-S", "train.epochs=3")
    assert "Stage 'train' is cached - skipping run" in result.stdout
    assert "Running stage 'train'" not in result.stdout
    runs_after = mlflow_runs(repo)[1]
    assert [r.info.run_id for r in runs_after] == [r.info.run_id for r in runs_before]  # no new or phantom run
    info = json.loads((repo / "models/model.json").read_text())
    (trained,) = [r for r in runs_after if r.info.run_id == info["mlflow_run_id"]]
    assert trained.data.params["train.epochs"] == "3" and trained.info.status == "FINISHED"
    run(repo, "git", "checkout", "-q", "--", ".")
    dvc(repo, "checkout", "-q", "--force")


def test_ci_replay_prints_param_and_metric_diffs(repo):
    set_param(repo, "train.epochs", 5)
    result = run(repo, "bash", "scripts/ci_replay.sh", "HEAD")
    assert re.search(r"\|\s*params\.yaml\s*\|\s*train\.epochs\s*\|\s*30\s*\|\s*5\s*\|", result.stdout), result.stdout
    assert re.search(r"\|\s*metrics/eval\.json\s*\|\s*accuracy\s*\|", result.stdout), result.stdout
    assert "## Metrics against `HEAD`" in result.stdout
    run(repo, "git", "checkout", "-q", "--", ".")
    dvc(repo, "checkout", "-q", "--force")


def test_remote_push_then_clone_pull_is_up_to_date(repo, tmp_path):
    remote = tmp_path / "remote"
    dvc(repo, "remote", "add", "-d", "-f", "storage", str(remote))
    dvc(repo, "push")
    commit(repo, "use a local DVC remote")
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    dvc(clone, "pull")
    assert dvc(clone, "status").stdout.strip() == "Data and pipelines are up to date."
    assert stages_run(dvc(clone, "repro")) == set()
    assert (clone / "models/model.keras").exists() and (clone / "reports/report.html").exists()


def test_report_renders_in_chromium(repo, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("Chromium not installed (.ci/run installs Debian's chromium package)")
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    shot = tmp_path / "report.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto((repo / "reports/report.html").as_uri(), wait_until="load")
        images = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
        headings = page.eval_on_selector_all("h2", "hs => hs.map(h => h.textContent)")
        title = page.title()
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert errors == []
    assert len(images) == 5 and all(done and width > 0 for done, width in images), images
    assert title == "Classifier report: digits, mlp" and "Confusion matrix" in headings
    with Image.open(shot) as picture:
        assert picture.width == 1200 and picture.height > 2000
        assert len(set(picture.convert("L").getdata())) > 50  # rendered content, not a blank page

    dvc(repo, "exp", "run", "-n", "sgd-try", "-S", "train.optimizer=sgd", "-S", "train.epochs=5")
    rows = experiments(repo)
    sgd = rows["sgd-try"]
    assert sgd["params"]["params.yaml"]["data"]["train"]["optimizer"] == "sgd"
    assert "accuracy" in sgd["metrics"]["metrics/eval.json"]["data"]
    workspace = rows["workspace"]
    assert workspace["params"]["params.yaml"]["data"]["train"]["optimizer"] == "sgd"

    _, runs = mlflow_runs(repo)
    tagged = [r for r in runs if r.data.tags.get("dvc.exp_name") == "sgd-try"]
    assert len(tagged) == 1 and tagged[0].info.run_name == "sgd-try"
    assert tagged[0].data.params["train.optimizer"] == "sgd"
    assert tagged[0].data.metrics["test_accuracy"] == pytest.approx(
        sgd["metrics"]["metrics/eval.json"]["data"]["accuracy"])
    assert all(r.info.status == "FINISHED" for r in runs)
