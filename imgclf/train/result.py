"""What a training takes and gives, shared by the network and the scikit-learn baseline (no TensorFlow import)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.utils.class_weight import compute_class_weight


@dataclass
class TrainResult:
    model: Any  # a keras.Model, or logreg's LinearSoftmax: predict, save (.keras) and export (ONNX) alike
    rows: list[dict]  # one per epoch, for plots/history.csv
    summary: dict  # for metrics/train.json
    tags: dict = field(default_factory=dict)  # for the MLflow run
    fit_seconds: float = 0.0  # wall time of fit (validation included): timing, kept out of the metrics files
    samples_seen: int = 0  # training samples over all epochs run

    @property
    def samples_per_second(self) -> float | None:
        """Fit throughput of this process (None when it fitted nothing: logreg, or a resume past the last epoch)."""
        return self.samples_seen / self.fit_seconds if self.fit_seconds else None


@dataclass(frozen=True)
class DataSpec:
    """What the split holds, as the model's shape needs it: how many classes, and the scale of its pixels."""

    n_classes: int
    pixel_scale: float = 1.0  # the model's first layer multiplies stored pixels by it, to [0, 1]


def resolve_batch_size(batch_size: int | str, n_samples: int) -> int:
    """`full` is batch gradient descent: the whole training split in one step per epoch."""
    return n_samples if batch_size == "full" else int(batch_size)


def class_weights(y: np.ndarray, n_classes: int, mode: str) -> dict[int, float] | None:
    """Per-class loss weights: none, or balanced (n_samples / (n_classes * count))."""
    if mode == "none":
        return None
    present = np.unique(y)
    weights = compute_class_weight("balanced", classes=present, y=y)
    return {int(c): round(float(w), 6) for c, w in zip(present, weights)} | {
        c: 1.0 for c in range(n_classes) if c not in present
    }
