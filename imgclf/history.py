"""Per-epoch training history: rows of the DVC plot plots/history.csv and its final metrics."""

from __future__ import annotations

import csv
import io
from pathlib import Path

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")


def final_metrics(rows: list[dict]) -> dict:
    """Last epoch's values, for metrics/train.json."""
    last = rows[-1]
    return {"epochs_run": last["epoch"], **{k: round(last[k], 6) for k in HISTORY_COLUMNS[1:]}}


def rows_to_csv(rows: list[dict]) -> str:
    lines = [",".join(HISTORY_COLUMNS)]
    lines += [",".join(str(row[c]) if c == "epoch" else f"{row[c]:.6f}" for c in HISTORY_COLUMNS) for row in rows]
    return "\n".join(lines) + "\n"


def read_history(path: str | Path) -> list[dict]:
    """Rows of a history CSV, epoch as int and the rest as floats."""
    reader = csv.DictReader(io.StringIO(Path(path).read_text(encoding="utf-8")))
    return [{k: int(v) if k == "epoch" else float(v) for k, v in row.items()} for row in reader]
