"""Stratified, seeded train / validation / test splits (as row indices) and their counts."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import train_test_split

from imgclf.errors import PipelineError

# split name -> (source part, row indices into that part)
SplitPlan = dict[str, tuple[str, np.ndarray]]


@dataclass(frozen=True)
class SplitConstraints:
    """What the data checks ask of a split: rows left out of each source part (copies of training images
    in validation/test, conflicting labels), and for carving, the group of each train row (copies share
    one, and a group goes whole to one split) and the train rows that stay in train."""

    dropped: dict[str, np.ndarray] = field(default_factory=dict)  # part -> rows
    train_groups: np.ndarray | None = None  # a group id per train row; None: every row its own
    pinned: np.ndarray | None = None  # bool per train row: never carved into val or test


def plan_splits(labels: dict[str, np.ndarray], val_fraction: float, test_fraction: float, seed: int,
                constraints: SplitConstraints = SplitConstraints()) -> SplitPlan:
    """Keep the source's own val/test parts; carve what is missing out of train, stratified, groups whole."""

    def rows(part: str) -> np.ndarray:
        return np.setdiff1d(np.arange(len(labels[part])), constraints.dropped.get(part, ()))

    train = rows("train")
    plan: SplitPlan = {}
    if "test" in labels:
        plan["test"] = ("test", rows("test"))
    else:
        train, test = _carve(train, labels["train"], test_fraction, seed, "split.test_fraction", constraints)
        plan["test"] = ("train", test)
    if "val" in labels:
        plan["val"] = ("val", rows("val"))
    else:
        train, val = _carve(train, labels["train"], val_fraction, seed, "split.val_fraction", constraints)
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


def _carve(rows: np.ndarray, y: np.ndarray, fraction: float, seed: int, key: str,
           constraints: SplitConstraints = SplitConstraints()) -> tuple[np.ndarray, np.ndarray]:
    """(rows kept, rows carved). With groups, the draw is over groups (each by its first row's label) and a
    carved group takes all its rows; pinned rows are never drawn. Without either, the draw is over rows,
    as it always was, so a set with no copies splits as before."""
    groups, pinned = constraints.train_groups, constraints.pinned
    movable = rows if pinned is None else rows[~pinned[rows]]
    units = movable
    if groups is not None:
        _, first = np.unique(groups[movable], return_index=True)
        units = movable[np.sort(first)]  # each group's first row, in the rows' order
    try:
        kept, carved = train_test_split(units, test_size=fraction, stratify=y[units], random_state=seed)
    except ValueError as exc:
        raise PipelineError(
            f"cannot carve a stratified split with {key} = {fraction} from {len(rows)} samples ({exc}); "
            f"choose a {key} that leaves at least one sample of every class on each side"
        ) from None
    if groups is None and pinned is None:
        return kept, carved
    taken = np.isin(groups[rows], groups[carved]) if groups is not None else np.isin(rows, carved)
    return rows[~taken], rows[taken]
