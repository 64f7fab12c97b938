"""What a training run's page in the MLflow UI says: its name and its description (Markdown, on the overview).

The UI renders a description as GitHub-flavoured Markdown (showdown), then keeps only plain tags:
no `style`, so no cell padding and no column alignment, and its stylesheet gives tables neither
padding nor borders. Each cell therefore ends in a non-collapsing space (`&emsp;`), which keeps
column from column apart there and adds a little room where a renderer pads cells (GitHub).
"""

from __future__ import annotations

import re

import numpy as np
from tabulate import tabulate

DESCRIPTION_TAG = "mlflow.note.content"  # the tag MLflow shows as a run's description
MAX_DESCRIPTION = 8000  # MLflow cuts a longer tag value, mid-row of a table
CELL_GAP = "&emsp;"  # one em
# What would end a cell (|) or turn a class name into emphasis, code, a link or a tag; `<` alone for a tag,
# as showdown shows an escaped `>` with its backslash.
_MARKDOWN = re.compile(r"[\\|*`<\[\]]|(?<!\w)_|_(?!\w)")


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
             markdown_table(list(metrics), [[f"{v:.4f}" for v in metrics.values()]]), "",
             f"Data: {data_hint}"]
    if matrix is not None:
        rows = [[f"true {name}", *(str(int(n)) for n in counts)] for name, counts in zip(class_names, matrix)]
        heading = f"Confusion matrix on the test set `{test_digest}`"
        whole = "\n".join([*lines, "", f"{heading} (rows: true class, columns: predicted):", "",
                           markdown_table(["", *class_names], rows, first_left=True)]) + "\n"
        if len(whole) <= MAX_DESCRIPTION:
            return whole
        lines += ["", f"{heading}: {len(class_names)} classes, too many for this page; see the evaluation "
                  "run's evaluation/confusion_matrix.png and .json"]
    return "\n".join(lines) + "\n"


def markdown_table(header: list[str], rows: list[list[str]], first_left: bool = False) -> str:
    """A GitHub-flavoured Markdown table (a header row, its separator, a line per row) whose cells the
    MLflow UI shows apart: each ends in CELL_GAP; `|` and emphasis marks in a cell are escaped."""
    def cell(text: str) -> str:
        return _MARKDOWN.sub(lambda m: "\\" + m.group(), text) + CELL_GAP if text else ""

    align = ("left" if first_left else "right",) + ("right",) * (len(header) - 1)
    return tabulate([[cell(c) for c in row] for row in rows], headers=[cell(h) for h in header],
                    tablefmt="pipe", disable_numparse=True, colalign=align)
