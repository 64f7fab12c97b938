"""Keras callbacks from params, the learning rate in each epoch's logs, and MLflow's per-epoch logging."""

from __future__ import annotations

from pathlib import Path

import keras
from mlflow.keras import MlflowCallback

from imgclf.params import CallbackParams


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the optimizer's current learning rate to each epoch's logs (history and MLflow)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def build_callbacks(cb: CallbackParams, checkpoint_path: Path) -> list[keras.callbacks.Callback]:
    """Keras's own early stopping, best-model checkpoint and reduce-on-plateau, as enabled."""
    callbacks: list[keras.callbacks.Callback] = []
    es = cb.early_stopping
    if es.enabled:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=es.monitor, patience=es.patience, min_delta=es.min_delta,
            restore_best_weights=es.restore_best_weights, verbose=1))
    if cb.reduce_lr.enabled:
        rl = cb.reduce_lr
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor=rl.monitor, factor=rl.factor, patience=rl.patience, min_lr=rl.min_lr, verbose=1))
    if cb.checkpoint.enabled:
        callbacks.append(keras.callbacks.ModelCheckpoint(
            str(checkpoint_path), monitor=cb.checkpoint.monitor, save_best_only=True, save_weights_only=True))
    return callbacks


class EpochMetricsLogger(MlflowCallback):
    """MLflow's Keras callback, logging each epoch's metrics once.

    The stock callback also logs every validation pass again as `validation_*` (without a step),
    a second name for what the epoch logs already hold as `val_*`.
    """

    def on_test_end(self, logs=None):
        pass
