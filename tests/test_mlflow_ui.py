"""The MLflow UI on the project's experiment: the training runs with their metrics, and a run's description tables."""

from __future__ import annotations

import json
import sys

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from imgclf.tracking import mlflow_ui, store
from imgclf.tracking.run_page import DESCRIPTION_TAG, description
from tests.conftest import chromium_page, local_server
from tests.dvc_project import env


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project root with its own (empty) MLflow store."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    yield tmp_path
    mlflow.set_tracking_uri(None)


def _view(experiment) -> dict:
    """The state of the runs table's view the experiment carries (columns, their widths)."""
    return json.loads(json.loads(experiment.tags[mlflow_ui.VIEW_TAG])["state"])


def test_a_new_experiment_is_a_training_experiment_whose_view_shows_the_metrics(project):
    experiment = mlflow.get_experiment(store.use_experiment("lesson"))
    assert experiment.tags[mlflow_ui.KIND_TAG] == "custom_model_development"
    columns = _view(experiment)["selectedColumns"]
    assert {"metrics.`test_accuracy`", "metrics.`final_val_accuracy`", "params.`train.model`"} <= set(columns)
    assert mlflow_ui.runs_url("http://127.0.0.1:5000/", experiment.experiment_id) == (
        f"http://127.0.0.1:5000/#/experiments/{experiment.experiment_id}/runs"
        "?workflowType=machine_learning&viewStateShareKey=training-runs")


def test_an_existing_experiment_gets_the_tags_it_lacks_and_keeps_those_changed_in_the_ui(project):
    store.connect()
    bare = mlflow.create_experiment("bare")
    changed = mlflow.create_experiment("changed", tags={mlflow_ui.KIND_TAG: "genai_development",
                                                        mlflow_ui.VIEW_TAG: "a view saved in the UI"})
    assert store.use_experiment("bare") == bare and store.use_experiment("changed") == changed
    tagged = MlflowClient().get_experiment(bare)
    assert tagged.tags[mlflow_ui.KIND_TAG] == "custom_model_development" and _view(tagged)["columnWidths"]
    kept = MlflowClient().get_experiment(changed).tags
    assert kept[mlflow_ui.KIND_TAG] == "genai_development" and kept[mlflow_ui.VIEW_TAG] == "a view saved in the UI"


METRICS = {"final_val_loss": 0.0692, "final_val_accuracy": 0.9792, "test_loss": 0.0915, "test_accuracy": 0.9778,
           "test_precision_macro": 0.978, "test_recall_macro": 0.9775, "test_f1_macro": 0.9776}
CLASSES = ["t_shirt", "a|b", "*bag*", "shoe"]

# Per table of the run's description: its cells' texts by row, and the narrowest space between the text of a
# cell and the next one's in a row (in pixels; text that runs together has none).
_TABLES = """() => [...document.querySelectorAll('[data-testid="note-editor-preview-content"] table')].map(table => {
  const textBox = cell => {  // the cell's text as drawn, without the space it ends in
    const node = [...cell.childNodes].find(child => child.nodeType === Node.TEXT_NODE);
    const length = node ? node.textContent.replace(/\\s+$/, '').length : 0;
    if (!length) return null;
    const range = document.createRange();
    range.setStart(node, 0);
    range.setEnd(node, length);
    const box = range.getBoundingClientRect();
    return [box.left, box.right];
  };
  const rows = [...table.rows].map(row => [...row.cells]);
  const gaps = rows.flatMap(cells => cells.slice(1).map((cell, i) => [textBox(cells[i]), textBox(cell)]))
    .filter(([left, right]) => left && right).map(([left, right]) => right[0] - left[1]);
  return {cells: rows.map(cells => cells.map(cell => cell.textContent.replace(/\\s+/g, ' ').trim())),
          gap: Math.min(...gaps)};
})"""


@pytest.mark.slow
def test_the_ui_opens_on_the_runs_table_with_metrics_and_shows_the_description_as_tables(project, tmp_path):
    """A training run logged with the pipeline's functions, its evaluation nested under it, seen in `mlflow ui`
    in Chromium: the link the docs give opens the runs table (not the GenAI overview) with the validation
    accuracy in it, and the run's description shows its metrics and confusion matrix as tables whose cells
    stand apart."""
    experiment_id = store.use_experiment("image-classifier")
    with store.stage_run(experiment_id=experiment_id, run_name="digits-mlp-0123456") as run:
        mlflow.log_params({"train.model": "mlp", "train.learning_rate": 0.01})
        mlflow.log_metrics({"final_val_accuracy": 0.9792, "final_val_loss": 0.0692})
    with store.stage_run(experiment_id=experiment_id, parent_run_id=run.info.run_id, run_name="evaluation"):
        mlflow.log_metrics({"test_accuracy": 0.9778, "test_loss": 0.0915})
    matrix = np.array([[9, 1, 0, 0], [0, 8, 2, 0], [1, 0, 10, 0], [0, 0, 0, 12]])
    MlflowClient().set_tag(run.info.run_id, DESCRIPTION_TAG, description(
        "digits", "mlp", METRICS, "`git checkout 0123456 && dvc checkout data/split`", CLASSES, matrix, "abc123"))
    uri = mlflow.get_tracking_uri()

    with (local_server([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri], "/health",
                       tmp_path / "ui.log", timeout=120, cwd=tmp_path, env=env()) as url,
          chromium_page(1400, 1000) as (page, _)):
        page.goto(mlflow_ui.runs_url(url, experiment_id), wait_until="load")
        page.get_by_text("final_val_accuracy", exact=True).first.wait_for(timeout=120_000)
        page.get_by_text("digits-mlp-0123456", exact=True).first.wait_for(timeout=30_000)
        runs_page, runs_url = page.locator("body").inner_text(), page.url

        page.goto(f"{url}/#/experiments/{experiment_id}/runs/{run.info.run_id}?workflowType=machine_learning",
                  wait_until="load")
        page.get_by_text("Confusion matrix on the test set", exact=False).wait_for(timeout=60_000)
        tables = page.evaluate(_TABLES)

    assert f"/experiments/{experiment_id}/runs?" in runs_url and "workflowType=machine_learning" in runs_url
    for column in ("train.model", "final_val_accuracy", "test_accuracy"):
        assert column in runs_page
    assert "0.9792" in runs_page  # the validation accuracy, in the training run's row
    assert "Token Usage" not in runs_page and "Detect Issues" not in runs_page  # not the GenAI overview

    metrics, confusion = tables
    assert metrics["cells"] == [list(METRICS), [f"{v:.4f}" for v in METRICS.values()]]
    assert confusion["cells"][0] == ["", *CLASSES]  # escaped: `|` stays in its cell, `*` is not emphasis
    assert confusion["cells"][1] == ["true t_shirt", "9", "1", "0", "0"] and len(confusion["cells"]) == 5
    # MLflow's stylesheet pads no cell: the description's own space keeps headers and counts apart.
    assert metrics["gap"] >= 8 and confusion["gap"] >= 8
