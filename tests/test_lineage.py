"""What ties a run to its data: dataset inputs on finished runs, the dirty flag, the checkout hint, the description."""

from __future__ import annotations

import subprocess

import mlflow
import numpy as np

from imgclf import layout
from imgclf.artifacts import SplitPart, file_md5
from imgclf.tracking.lineage import checkout_hint, log_part, workspace_dirty
from imgclf.tracking.run_page import CELL_GAP, MAX_DESCRIPTION, description


def _git(folder, *args):
    subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True)


def test_a_part_is_logged_on_a_finished_run_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    x, y = np.arange(24, dtype=np.uint8).reshape(6, 2, 2), np.array([0, 1, 0, 1, 0, 1])
    x_path, y_path = layout.part_files(layout.SPLIT_DIR, "test")
    x_path.parent.mkdir(parents=True)
    np.save(x_path, x)
    np.save(y_path, y)
    with mlflow.start_run() as finished:
        pass
    with mlflow.start_run() as scoring:
        for _ in range(2):  # a second scoring of the same test set adds nothing
            log_part("test", SplitPart(x, y), "photos/shop", [finished.info.run_id, scoring.info.run_id])
    for run_id in (finished.info.run_id, scoring.info.run_id):
        run = mlflow.get_run(run_id)
        (logged,) = run.inputs.dataset_inputs
        assert logged.dataset.name == "test" and logged.dataset.digest == file_md5(x_path)
        assert "photos/shop" in logged.dataset.source
        assert {t.key: t.value for t in logged.tags} == {"mlflow.data.context": "test",
                                                         "test_y.npy.md5": file_md5(y_path)}
    assert mlflow.get_run(finished.info.run_id).info.status == "FINISHED"  # logged to, never reopened


def test_workspace_is_dirty_only_for_changes_the_pipeline_did_not_write(tmp_path):
    assert workspace_dirty(tmp_path) is None  # not a git repository: unknown
    _git(tmp_path, "init", "-q")
    (tmp_path / "metrics").mkdir()
    for name in ("params.yaml", "dvc.lock", "metrics/eval.json"):
        (tmp_path / name).write_text("a: 1\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    (tmp_path / "untracked.txt").write_text("x")
    assert workspace_dirty(tmp_path) is False
    (tmp_path / "dvc.lock").write_text("a: 2\n")  # the running pipeline's own records
    (tmp_path / "metrics/eval.json").write_text("a: 2\n")
    assert workspace_dirty(tmp_path) is False
    (tmp_path / "params.yaml").write_text("a: 2\n")  # as a queued experiment's copy has it, staged
    _git(tmp_path, "add", "params.yaml")
    assert workspace_dirty(tmp_path) is True


def test_the_hint_names_the_commands_that_bring_the_data_back():
    commit, version = "0123456789abcdef", "42.dir"
    assert checkout_hint(commit, False, version) == "`git checkout 0123456789ab && dvc checkout data/split` " \
                                                    "(DVC version `42.dir`)"
    assert "uncommitted changes" in checkout_hint(commit, True, version)
    experiment = checkout_hint(commit, True, version, exp_name="queued-0.002")
    assert experiment.startswith("`dvc exp apply queued-0.002`") and "git checkout" not in experiment
    assert "uncommitted" not in experiment and "`42.dir`" in experiment


def test_the_description_names_the_test_set_of_its_confusion_matrix():
    text = description("digits", "mlp", {"test_accuracy": 0.98765}, "`dvc exp apply x`", ["0", "007"],
                       np.array([[3, 1], [0, 4]]), test_digest="abc123")
    assert text.startswith("**mlp** on **digits**") and "0.9877" in text and "Data: `dvc exp apply x`" in text
    assert "Confusion matrix on the test set `abc123`" in text
    rows = [[c.strip().removesuffix(CELL_GAP) for c in line.strip("|").split("|")]
            for line in text.splitlines() if line.startswith("|")]
    assert ["", "0", "007"] in rows and ["true 007", "0", "4"] in rows


def test_a_confusion_matrix_too_large_for_the_description_is_pointed_to_not_cut():
    names = [f"product category {i}" for i in range(60)]
    text = description("image_folder", "cnn", {"test_accuracy": 0.5}, "`dvc exp apply x`", names,
                       np.eye(60, dtype=int), test_digest="abc123")
    assert len(text) < MAX_DESCRIPTION and "Data: `dvc exp apply x`" in text
    assert "60 classes, too many for this page" in text and "evaluation/confusion_matrix.png" in text
    assert "| true product category 0" not in text
