"""Deterministic training with Keras fit."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from imgclf.history import HISTORY_COLUMNS


def make_deterministic(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TF ops deterministic (same params, same metrics on CPU)."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def fit_model(model: keras.Model, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
              batch_size: int, epochs: int, callbacks: list | None = None) -> list[dict]:
    """Train with model.fit; return one row per epoch (epoch counted from 1)."""
    history = model.fit(
        train[0], train[1],
        validation_data=val,
        batch_size=batch_size,
        epochs=epochs,
        shuffle=True,
        callbacks=callbacks or [],
        verbose=2,
    )
    logs = history.history
    return [
        {"epoch": i + 1, **{key: float(logs[key][i]) for key in HISTORY_COLUMNS[1:]}}
        for i in range(len(logs["loss"]))
    ]


def describe_device() -> str:
    """The GPU's name when TensorFlow sees one, else CPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    details = tf.config.experimental.get_device_details(gpus[0])
    return details.get("device_name", gpus[0].name)
