"""Per-epoch training history: rows of the DVC plot plots/history.csv."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

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
    """The CSV DVC plots: the known columns in their order, floats to 6 significant digits."""
    frame = pd.DataFrame(rows)
    return frame[[c for c in HISTORY_COLUMNS if c in frame]].to_csv(index=False, float_format="%.6g",
                                                                     lineterminator="\n")


def read_history(path: str | Path) -> list[dict]:
    """Rows of a history CSV, epoch as int and the rest as floats."""
    return pd.read_csv(path, dtype={"epoch": int}).to_dict("records")
