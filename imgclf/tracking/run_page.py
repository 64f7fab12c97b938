"""What a training run's page in the MLflow UI says: its name and its description (Markdown, on the overview)."""

from __future__ import annotations

import numpy as np
import pandas as pd

DESCRIPTION_TAG = "mlflow.note.content"  # the tag MLflow shows as a run's description
MAX_DESCRIPTION = 8000  # MLflow cuts a longer tag value, mid-row of a table


def run_name(dataset: str, model: str, commit: str, exp_name: str | None) -> str:
    """DVC's experiment name when it gives one, else dataset, model and short commit."""
    return exp_name or f"{dataset}-{model}-{commit[:7]}"


def description(dataset: str, model: str, metrics: dict[str, float], data_hint: str,
                class_names: list[str] | None = None, matrix: np.ndarray | None = None,
                test_digest: str | None = None) -> str:
    """The run's story in Markdown: what was trained on what, its headline metrics, how to get its data back.

    Evaluate completes it with the test set it scored (a model DVC restored may meet another one:
    the description then tells the latest scoring, each evaluation run keeps its own).
    """
    lines = [f"**{model}** on **{dataset}**", "",
             pd.DataFrame([metrics]).to_markdown(index=False, floatfmt=".4f"), "",
             f"Data: {data_hint}"]
    if matrix is not None:
        table = pd.DataFrame(matrix, index=[f"true {c}" for c in class_names], columns=class_names)
        heading = f"Confusion matrix on the test set `{test_digest}`"
        whole = "\n".join([*lines, "", f"{heading} (rows: true class, columns: predicted):", "",
                           table.to_markdown()]) + "\n"
        if len(whole) <= MAX_DESCRIPTION:
            return whole
        lines += ["", f"{heading}: {len(class_names)} classes, too many for this page; see the evaluation "
                  "run's evaluation/confusion_matrix.png and .json"]
    return "\n".join(lines) + "\n"
