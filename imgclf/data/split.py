"""Stratified, seeded train / validation / test splits (as row indices) and their counts."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from imgclf.errors import PipelineError

# split name -> (source part, row indices into that part)
SplitPlan = dict[str, tuple[str, np.ndarray]]


def plan_splits(labels: dict[str, np.ndarray], val_fraction: float, test_fraction: float, seed: int) -> SplitPlan:
    """Keep the source's own val/test parts; carve what is missing out of train, stratified."""
    train = np.arange(len(labels["train"]))
    plan: SplitPlan = {}
    if "test" in labels:
        plan["test"] = ("test", np.arange(len(labels["test"])))
    else:
        train, test = _carve(train, labels["train"], test_fraction, seed, "split.test_fraction")
        plan["test"] = ("train", test)
    if "val" in labels:
        plan["val"] = ("val", np.arange(len(labels["val"])))
    else:
        train, val = _carve(train, labels["train"], val_fraction, seed, "split.val_fraction")
        plan["val"] = ("train", val)
    plan["train"] = ("train", train)
    # Rows in file order: copying them then reads the source sequentially (training shuffles anyway).
    return {name: (plan[name][0], np.sort(plan[name][1])) for name in ("train", "val", "test")}


def describe_source(parts: list[str], presplit: bool) -> str:
    """How the test split came about, for metrics/split.json: folders, source or carved."""
    if "test" not in parts:
        return "carved"
    return "folders" if presplit else "source"


def summarize_splits(labels: dict[str, np.ndarray], test_source: str, skipped: int = 0) -> dict:
    """The size of each split, where the test split came from and the images skipped, for metrics/split.json:
    a few columns in `dvc exp show`, whatever the number of classes."""
    summary: dict = {name: int(len(y)) for name, y in labels.items()}
    summary["test_source"] = test_source
    summary["skipped_images"] = skipped
    return summary


def count_classes(labels: dict[str, np.ndarray], class_names: list[str]) -> dict[str, dict[str, int]]:
    """Each split's images per class, for the split's meta.json (one figure per class: not a DVC metric)."""
    return {name: {cls: int(n) for cls, n in zip(class_names, np.bincount(y, minlength=len(class_names)))}
            for name, y in labels.items()}


def _carve(rows: np.ndarray, y: np.ndarray, fraction: float, seed: int, key: str):
    try:
        return train_test_split(rows, test_size=fraction, stratify=y[rows], random_state=seed)
    except ValueError as exc:
        raise PipelineError(
            f"cannot carve a stratified split with {key} = {fraction} from {len(rows)} samples ({exc}); "
            f"choose a {key} that leaves at least one sample of every class on each side"
        ) from None
