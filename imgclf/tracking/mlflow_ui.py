"""How the MLflow UI shows the project's experiment: a model-training experiment, its runs table with the metrics.

Written against the UI of MLflow 3.17 (requirements.txt pins MLflow), which

- opens an experiment in the view of its sidebar switch (GenAI or Model training, kept per
  browser, GenAI at first) or of the link's `workflowType`, not of the experiment's kind tag,
  which still tells other clients and MLflow versions that this is a model-training experiment;
- shows no metric in the runs table until columns are chosen, and keeps a chosen set as a view
  in an experiment tag, `mlflow.sharedViewState.<key>`, that a link opens with `viewStateShareKey`.

The pipeline tags its experiment with both and links to them (`runs_url`). Where a later UI
reads other tags, the link still opens the runs table, with the UI's own columns and a notice
that the view is unknown; nothing else depends on them.
"""

from __future__ import annotations

import json
import time

KIND_TAG = "mlflow.experimentKind"
TRAINING = "custom_model_development"  # the UI's "Machine learning" kind; GenAI's is genai_development
VIEW_KEY = "training-runs"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
# The training run holds final_*; the test_* metrics are its evaluation runs' (nested under it).
VIEW_METRICS = ("final_val_accuracy", "final_val_loss", "test_accuracy", "test_loss")
VIEW_PARAMS = ("train.model",)
_COLUMN_WIDTH = 150  # pixels: the longest metric name in full


def experiment_tags() -> dict[str, str]:
    """The tags of the project's experiment: its kind, and the runs table's view with the headline metrics."""
    columns = [*(f"params.`{p}`" for p in VIEW_PARAMS), *(f"metrics.`{m}`" for m in VIEW_METRICS)]
    state = {"selectedColumns": ["attributes.`Models`", *columns], "columnOrder": columns,
             "columnWidths": {column: _COLUMN_WIDTH for column in columns}}
    created = int(time.time() * 1000)
    view = {"name": "Training runs", "createdAt": created, "updatedAt": created, "state": json.dumps(state)}
    return {KIND_TAG: TRAINING, VIEW_TAG: json.dumps(view)}


def missing_tags(present: dict[str, str]) -> dict[str, str]:
    """The tags an experiment lacks; one it has (a kind or a view someone changed in the UI) is kept."""
    return {key: value for key, value in experiment_tags().items() if key not in present}


def runs_url(base: str, experiment_id: str) -> str:
    """The experiment's runs table, in the Model training view, with the headline metrics' columns."""
    return (f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs"
            f"?workflowType=machine_learning&viewStateShareKey={VIEW_KEY}")
