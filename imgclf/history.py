"""Per-epoch training history: rows of the DVC plot plots/history.csv."""

from __future__ import annotations

import csv
import io
from pathlib import Path

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")


def history_rows(history: dict[str, list], first_epoch: int = 0) -> list[dict]:
    """Keras History.history as one row per epoch (epoch counted from 1; a resumed fit starts at first_epoch)."""
    return [epoch_row(first_epoch + i, {k: v[i] for k, v in history.items()}) for i in range(len(history["loss"]))]


def epoch_row(epoch: int, logs: dict) -> dict:
    """One epoch's logs (Keras counts epochs from 0) as a row, epoch counted from 1."""
    return {"epoch": epoch + 1, **{k: float(logs[k]) for k in HISTORY_COLUMNS[1:] if k in logs}}


def best_epoch(rows: list[dict], monitor: str) -> int:
    """The epoch with the best `monitor` value (highest for accuracies, lowest for losses)."""
    sign = -1 if "accuracy" in monitor else 1
    return min(rows, key=lambda row: (sign * row[monitor], row["epoch"]))["epoch"]


def rows_to_csv(rows: list[dict]) -> str:
    columns = [c for c in HISTORY_COLUMNS if c in rows[0]]
    lines = [",".join(columns)]
    lines += [",".join(str(row[c]) if c == "epoch" else f"{row[c]:.6g}" for c in columns) for row in rows]
    return "\n".join(lines) + "\n"


def read_history(path: str | Path) -> list[dict]:
    """Rows of a history CSV, epoch as int and the rest as floats."""
    reader = csv.DictReader(io.StringIO(Path(path).read_text(encoding="utf-8")))
    return [{k: int(v) if k == "epoch" else float(v) for k, v in row.items()} for row in reader]
