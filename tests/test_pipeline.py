"""End to end: the real `dvc repro` and `dvc exp run` in a temporary git repo, offline.

Every test starts from the committed baseline (the `repo` fixture resets to it), so the
tests pass in any order and each one may change params, outputs or commits freely.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import PROJECT, chromium_page
from tests.dvc_project import (
    commit,
    dvc,
    evaluations,
    experiments,
    make_project,
    mlflow_runs,
    model_run_id,
    reset,
    run,
    set_param,
    stages_restored,
    stages_run,
    training_runs,
)

pytestmark = pytest.mark.slow

STAGES = {"download", "preprocess", "split", "train", "evaluate", "report"}


@dataclass(frozen=True)
class Project:
    path: Path
    commit: str  # the commit the baseline model was trained from
    baseline: str  # the commit holding the baseline's dvc.lock and metrics
    run_id: str  # the baseline model's MLflow training run
    console: str  # what the baseline's `dvc repro` printed (stdout, then stderr)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Project:
    """A fresh git repo holding the project, after one `dvc repro` on the default params, committed."""
    repo = make_project(tmp_path_factory.mktemp("project"))
    trained_from = run(repo, "git", "rev-parse", "HEAD").stdout.strip()
    first = dvc(repo, "repro")
    assert stages_run(first) == STAGES
    commit(repo, "baseline")
    baseline = run(repo, "git", "rev-parse", "HEAD").stdout.strip()
    return Project(repo, trained_from, baseline, model_run_id(repo), first.stdout + first.stderr)


@pytest.fixture
def repo(project) -> Path:
    reset(project.path, project.baseline)
    return project.path


def test_repro_writes_metrics_plots_and_report(repo):
    evaluation = json.loads((repo / "metrics/eval.json").read_text())
    assert {"accuracy", "loss", "precision_macro", "recall_macro", "f1_macro"} <= set(evaluation)
    assert evaluation["accuracy"] >= 0.97
    split = json.loads((repo / "metrics/split.json").read_text())
    assert split["train"] + split["val"] + split["test"] == 1797 and split["test_source"] == "carved"
    report = json.loads((repo / "plots/classification_report.json").read_text())
    assert sum(row["support"] for row in report.values()) == split["test"]
    confusion = json.loads((repo / "plots/confusion.json").read_text())
    assert len(confusion) == split["test"] and set(confusion[0]) == {"actual", "predicted"}
    history = (repo / "plots/history.csv").read_text().splitlines()
    assert history[0] == "epoch,loss,accuracy,val_loss,val_accuracy,learning_rate" and len(history) == 31

    html = (repo / "reports/report.html").read_text()
    # the 5 figures of every model and what each hidden node sees (an mlp: no Grad-CAM, which needs a convolution)
    # curves, training samples, confusion matrix, predictions, mistakes, confused pairs, reliability, nodes (an mlp:
    # no Grad-CAM; digits: no group of copies)
    assert html.count("data:image/png;base64,") == 8 and f"{evaluation['accuracy']:.4f}" in html
    assert "What each hidden node sees" in html and "Grad-CAM" not in html
    assert "![confusion matrix](../plots/confusion_matrix.png)" in (repo / "reports/report.md").read_text()

    plots = dvc(repo, "plots", "show", "--json")
    for title in ("Confusion matrix", "Loss", "Accuracy", "Learning rate", "plots/augmentation.png",
                  "plots/nodes.png", "plots/gradcam.png"):
        assert title in plots.stdout


# What DVC itself prints around the stages' own lines.
DVC_LINE = re.compile(r"(Running stage '\w+':|> python -m stages\.\w+|(Updating|Generating) lock file 'dvc\.lock'"
                      r"|Stage '\w+' is cached - skipping run, checking out outputs|Stage '\w+' didn't change, skipping"
                      r"|To track the changes with git, run:|git add \S+( \S+)*|To enable auto staging, run:"
                      r"|dvc config core\.autostage true|Use `dvc push` to send your updates to remote storage\.)")
# Keras's line per epoch (fit's verbose=2, off a terminal), which the train stage asks for.
EPOCH_LINE = re.compile(r"Epoch \d+/\d+|\d+/\d+ - \d+s - \d+[mu]?s/step - .*")


def test_a_default_repro_prints_the_projects_lines_dvcs_and_nothing_else(project):
    """Project lines start with the stage's name or a label (warning:, note:, error:); DVC's are its own
    messages around each stage; the epochs are Keras's progress lines. TensorFlow and MLflow print nothing."""
    lines = [line.strip() for line in project.console.splitlines() if line.strip()]
    ours = [line for line in lines if line.startswith((*(f"{stage}: " for stage in STAGES), "warning: ", "note: "))]
    dvcs = [line for line in lines if DVC_LINE.fullmatch(line)]
    epochs = [line for line in lines if EPOCH_LINE.fullmatch(line)]
    others = [line for line in lines if line not in ours + dvcs + epochs]
    assert others == [], "\n".join(others)
    assert {line.split(":")[0] for line in ours} == STAGES
    assert len(epochs) == 2 * 30  # "Epoch n/30" and its summary, per epoch
    assert not [line for line in lines if any(noise in line for noise in
                                              ("I0000", "E0000", "absl", "INFO", "mlflow.", "Downloading"))]


def test_training_is_tracked_in_mlflow(repo, project):
    from imgclf.train.devices import describe_device

    client, runs = mlflow_runs(repo)
    tracked = client.get_run(project.run_id)
    assert tracked.info.status == "FINISHED" and tracked.data.tags["stage"] == "train"
    assert tracked.data.params["train.optimizer"] == "adam" and tracked.data.params["data.dataset"] == "digits"
    assert len(client.get_metric_history(tracked.info.run_id, "val_loss")) == 30
    assert tracked.data.tags["device"] == describe_device()
    assert tracked.data.tags["tensorflow.version"]
    assert tracked.data.tags["mlflow.source.git.commit"] == project.commit
    models = client.search_logged_models(experiment_ids=[tracked.info.experiment_id])
    assert project.run_id in [m.source_run_id for m in models]

    # the test metrics are the evaluation's own run, nested under the training run
    evaluation = json.loads((repo / "metrics/eval.json").read_text())
    assert not [k for k in tracked.data.metrics if k.startswith("test_")]
    scored = evaluations(runs, project.run_id)
    assert scored and all(r.info.status == "FINISHED" for r in scored)
    first = scored[0]
    assert first.data.tags["stage"] == "evaluate" and first.data.tags["model.run_id"] == project.run_id
    assert first.data.metrics["test_accuracy"] == pytest.approx(evaluation["accuracy"])
    test_md5 = first.data.tags["test.x.md5"]
    lock = (repo / "dvc.lock").read_text()
    assert test_md5 in lock and first.data.tags["test.y.md5"] in lock  # the test files' DVC hashes
    (tested,) = client.get_run(first.info.run_id).inputs.dataset_inputs  # the test set, by the same hashes
    assert tested.dataset.digest == test_md5
    assert {t.key: t.value for t in tested.tags}["test_y.npy.md5"] == first.data.tags["test.y.md5"]
    artifacts = {a.path for a in client.list_artifacts(first.info.run_id, "evaluation")}
    assert {"evaluation/confusion_matrix.png", "evaluation/classification_report.json",
            "evaluation/confusion_matrix.json", "evaluation/mistakes.png"} <= artifacts
    # what each hidden node sees, on the training run; Grad-CAM only for a convolutional model
    assert {a.path for a in client.list_artifacts(project.run_id, "training")} == {"training/nodes.png"}
    # the data checks' counts, on the training run (metrics/checks.json, logged by evaluate)
    checks = json.loads((repo / "metrics/checks.json").read_text())
    metrics = client.get_run(project.run_id).data.metrics
    assert metrics["checks.leaked_groups"] == checks["leaked_groups"] == 0
    assert metrics["checks.imbalance.train"] == pytest.approx(checks["imbalance"]["train"])
    assert checks["imbalance"]["train"] > 1
    assert metrics["checks.duplicates.test"] == checks["duplicates"]["test"]


def test_one_mlflow_name_per_quantity(repo):
    for tracked in mlflow_runs(repo)[1]:
        names = set(tracked.data.metrics)
        assert not [n for n in names if n.startswith("validation_")], names  # val_* already holds them
        assert not [n for n in names if n.startswith("final_final_")], names
    tracked = mlflow_runs(repo)[0].get_run(model_run_id(repo))
    assert {"val_loss", "val_accuracy", "final_learning_rate", "final_val_loss"} <= set(tracked.data.metrics)


def test_second_repro_runs_nothing(repo):
    before = len(mlflow_runs(repo)[1])
    result = dvc(repo, "repro")
    assert stages_run(result) == set()
    assert len(mlflow_runs(repo)[1]) == before


def test_predict_agrees_with_evaluate(repo):
    x_test = np.load(repo / "data/split/test_x.npy")
    probs = np.load(repo / "data/predictions/test_probs.npy")
    index = int(np.argmax(probs.max(axis=1)))  # a clear-cut image: 8-bit PNG rounding cannot flip it
    scale = json.loads((repo / "data/split/meta.json").read_text())["pixel_scale"]  # digits: 0..16 stored
    Image.fromarray(np.round(x_test[index, ..., 0] * scale * 255).astype(np.uint8)).save(repo / "digit.png")
    out = run(repo, sys.executable, "-m", "imgclf.serve.predict", "digit.png", "--top", "3").stdout
    expected = json.loads((repo / "data/split/meta.json").read_text())["class_names"][probs[index].argmax()]
    assert re.match(rf"digit\.png: {expected} \(", out), out


def test_evaluate_and_predict_score_the_onnx_copy_without_tensorflow(repo, project):
    import keras

    onnx = (repo / "models/onnx/model.onnx").read_bytes()
    assert json.loads((repo / "models/model.json").read_text())["onnx_sha256"] == hashlib.sha256(onnx).hexdigest()
    assert json.loads((repo / "models/onnx/export.json").read_text())["exported"] is True
    client, runs = mlflow_runs(repo)
    assert client.get_run(project.run_id).data.tags["scoring"] == "onnx"
    assert {r.data.tags["scoring"] for r in evaluations(runs, project.run_id)} == {"onnx"}
    before = (repo / "metrics/eval.json").read_text()
    evaluate = run(repo, sys.executable, "-X", "importtime", "-m", "stages.evaluate")
    imported = [line.rsplit("|", 1)[-1].strip() for line in evaluate.stderr.splitlines() if "|" in line]
    assert "onnxruntime" in imported and not [m for m in imported if m.split(".")[0] in ("tensorflow", "keras")]
    assert (repo / "metrics/eval.json").read_text() == before
    # the same probabilities as the Keras model train saved
    keras_probs = keras.models.load_model(repo / "models/model.keras").predict(
        np.load(repo / "data/split/test_x.npy"), verbose=0)
    probs = np.load(repo / "data/predictions/test_probs.npy")
    np.testing.assert_allclose(probs, keras_probs, atol=1e-5)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(repo / "blank.png")
    predict = run(repo, sys.executable, "-X", "importtime", "-m", "imgclf.serve.predict", "blank.png")
    assert "tensorflow" not in predict.stderr and predict.stdout.startswith("blank.png: ")


def test_same_params_give_identical_metrics(repo):
    before = {p: (repo / p).read_text() for p in ("metrics/eval.json", "metrics/train.json", "plots/history.csv")}
    dvc(repo, "repro", "--force", "--single-item", "train")
    dvc(repo, "repro", "--force", "--single-item", "evaluate")
    after = {p: (repo / p).read_text() for p in before}
    assert after == before


def test_changing_epochs_reruns_train_evaluate_report_only(repo):
    set_param(repo, "train.epochs", 3)
    result = dvc(repo, "repro")
    # run, or restored from DVC's run-cache when another test trained 3 epochs before
    assert stages_run(result) | stages_restored(result) == {"train", "evaluate", "report"}, result.stdout
    assert json.loads((repo / "metrics/train.json").read_text())["epochs_run"] == 3


def test_run_cache_restores_training_without_a_new_mlflow_run(repo):
    dvc(repo, "exp", "run", "-n", "three", "-S", "train.epochs=3")  # trains, or restores an earlier test's
    three = model_run_id(repo)
    dvc(repo, "exp", "run", "-n", "four", "-S", "train.epochs=4")
    trained_before = [r.info.run_id for r in training_runs(mlflow_runs(repo)[1])]
    evaluated_before = len(evaluations(mlflow_runs(repo)[1], three))
    run(repo, "git", "checkout", "-q", "--", "params.yaml")
    result = dvc(repo, "exp", "run", "-n", "three-again", "-S", "train.epochs=3")
    # the same model on the same test set: DVC restores the evaluation's outputs too, and MLflow keeps its record
    assert {"train", "evaluate"} <= stages_restored(result)
    assert "Running stage 'train'" not in result.stdout and "Running stage 'evaluate'" not in result.stdout
    _, runs = mlflow_runs(repo)
    assert [r.info.run_id for r in training_runs(runs)] == trained_before  # no new or phantom training run
    assert model_run_id(repo) == three
    (trained,) = [r for r in runs if r.info.run_id == three]
    assert trained.data.params["train.epochs"] == "3" and trained.info.status == "FINISHED"
    assert len(evaluations(runs, three)) == evaluated_before >= 1


def test_ci_replay_prints_param_and_metric_diffs(repo):
    set_param(repo, "train.epochs", 3)  # trains, or restores an earlier test's 3 epochs from the run-cache
    result = run(repo, "bash", "scripts/ci_replay.sh", "HEAD")
    assert re.search(r"\|\s*params\.yaml\s*\|\s*train\.epochs\s*\|\s*30\s*\|\s*3\s*\|", result.stdout), result.stdout
    assert re.search(r"\|\s*metrics/eval\.json\s*\|\s*accuracy\s*\|", result.stdout), result.stdout
    assert "## Metrics against `HEAD`" in result.stdout


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


def test_a_fresh_clone_reproduces_its_own_dvc_lock(repo, project, tmp_path):
    """git clone, dvc repro, git status: every output DVC tracks comes out byte for byte as committed
    (no cache, no remote: every stage runs), so git has nothing to add."""
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    assert stages_run(dvc(clone, "repro")) == STAGES
    assert run(clone, "git", "status", "--porcelain").stdout == ""
    # The clone's own MLflow store holds its own training run, found by the model file's hash.
    found = model_run_id(clone)
    assert found != project.run_id
    assert found in run(clone, sys.executable, "-m", "imgclf.tracking.model_run").stdout
    sha = json.loads((clone / "models/model.json").read_text())["model_sha256"]
    assert f"search `` tags.`model.sha256` = '{sha}' ``" in (clone / "reports/report.md").read_text()


def test_a_clone_of_this_repository_reproduces_its_committed_dvc_lock(tmp_path):
    """What a newcomer does first: clone the project as committed, `dvc repro` on its default params, and
    find git with nothing to add (dvc.lock and metrics/ as committed, no cache, every stage run)."""
    if not (PROJECT / ".git").exists():
        pytest.skip("the project is not a git checkout here")
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(PROJECT), str(clone))
    assert stages_run(dvc(clone, "repro")) == STAGES
    assert run(clone, "git", "status", "--porcelain").stdout == ""


def test_report_renders_in_chromium(repo, tmp_path):
    shot = tmp_path / "report.png"
    with chromium_page() as (page, errors):
        page.goto((repo / "reports/report.html").as_uri(), wait_until="load")
        images = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
        headings = page.eval_on_selector_all("h2", "hs => hs.map(h => h.textContent)")
        title = page.title()
        page.screenshot(path=str(shot), full_page=True)
    assert errors == []
    assert len(images) == 8 and all(done and width > 0 for done, width in images), images  # as in the html above
    assert title == "Classifier report: digits, mlp" and "Confusion matrix" in headings
    with Image.open(shot) as picture:
        assert picture.width == 1200 and picture.height > 2000
        assert len(set(picture.convert("L").getdata())) > 50  # rendered content, not a blank page


def test_experiment_is_shown_by_dvc_and_tracked_in_mlflow(repo):
    dvc(repo, "exp", "run", "-n", "sgd-try", "-S", "train.optimizer=sgd", "-S", "train.epochs=2")
    rows = experiments(repo)
    sgd = rows["sgd-try"]
    assert sgd["params"]["params.yaml"]["data"]["train"]["optimizer"] == "sgd"
    assert "accuracy" in sgd["metrics"]["metrics/eval.json"]["data"]
    workspace = rows["workspace"]
    assert workspace["params"]["params.yaml"]["data"]["train"]["optimizer"] == "sgd"

    _, runs = mlflow_runs(repo)
    tagged = [r for r in training_runs(runs) if r.data.tags.get("dvc.exp_name") == "sgd-try"]
    assert len(tagged) == 1 and tagged[0].info.run_name == "sgd-try"
    assert tagged[0].data.params["train.optimizer"] == "sgd"
    (scored,) = evaluations(runs, tagged[0].info.run_id)
    assert scored.data.tags["dvc.exp_name"] == "sgd-try"
    assert scored.data.metrics["test_accuracy"] == pytest.approx(
        sgd["metrics"]["metrics/eval.json"]["data"]["accuracy"])
    assert tagged[0].info.status == scored.info.status == "FINISHED"
