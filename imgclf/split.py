"""Stratified, seeded train / validation / test splits and their counts."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from imgclf.errors import PipelineError

Split = tuple[np.ndarray, np.ndarray]


def split_stratified(arrays: dict[str, np.ndarray], val_fraction: float, test_fraction: float,
                     seed: int) -> dict[str, Split]:
    """Split into train/val/test; a source test split is kept, else test_fraction is carved off."""
    x, y = arrays["x_train"], arrays["y_train"]
    if "x_test" in arrays:
        test = (arrays["x_test"], arrays["y_test"])
    else:
        x, x_test, y, y_test = _carve(x, y, test_fraction, seed, "split.test_fraction")
        test = (x_test, y_test)
    x_train, x_val, y_train, y_val = _carve(x, y, val_fraction, seed, "split.val_fraction")
    return {"train": (x_train, y_train), "val": (x_val, y_val), "test": test}


def summarize_splits(splits: dict[str, Split], class_names: list[str], test_source: str) -> dict:
    """Sizes and per-class counts of each split, for metrics/split.json."""
    summary: dict = {name: int(len(y)) for name, (_, y) in splits.items()}
    summary["test_source"] = test_source
    summary["per_class"] = {
        name: {cls: int(n) for cls, n in zip(class_names, np.bincount(y, minlength=len(class_names)))}
        for name, (_, y) in splits.items()
    }
    return summary


def _carve(x: np.ndarray, y: np.ndarray, fraction: float, seed: int, key: str):
    try:
        return train_test_split(x, y, test_size=fraction, stratify=y, random_state=seed)
    except ValueError as exc:
        raise PipelineError(
            f"cannot carve a stratified split with {key} = {fraction} from {len(y)} samples ({exc}); "
            f"choose a {key} that leaves at least one sample of every class on each side"
        ) from None
