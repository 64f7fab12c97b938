"""Keras callbacks from params, the learning rate in each epoch's logs, and MLflow's per-epoch logging."""

from __future__ import annotations

from pathlib import Path

import keras
import mlflow
import numpy as np
import tensorflow as tf
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


class EpochRandomness(keras.callbacks.Callback):
    """Makes every random draw of an epoch a function of (seed, epoch), not of the epochs run before it.

    At each epoch's start it sets the epoch the training batches are shuffled by (make_dataset)
    and moves every seed generator (augmentation layers, dropout) to a stream of that epoch's own.
    Keras's generators otherwise carry a counter over from epoch to epoch that is not saved with
    the weights, so a training resumed at epoch k would draw other augmentations and dropout
    masks than an uninterrupted one.
    """

    def __init__(self, epoch: tf.Variable, augment: keras.Layer | None = None) -> None:
        super().__init__()
        self.epoch, self.augment = epoch, augment

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch.assign(epoch)
        layers = [self.model] + ([self.augment] if self.augment is not None else [])
        for state in (v for layer in layers for v in layer.non_trainable_variables
                      if v.path.endswith("seed_generator_state")):
            seed = int(keras.ops.convert_to_numpy(state)[0])
            state.assign(np.array([seed, epoch << 32], dtype=state.dtype))  # room for 2**32 draws per epoch


def _as_written(value):
    """A float that a float32 holds exactly by its shortest float32 form (0.01, not 0.009999999776482582);
    any other value as it is (a float64 such as 0.9 keeps its own shortest form)."""
    if isinstance(value, float) and np.isfinite(value) and float(np.float32(value)) == value:
        return str(np.float32(value))
    return value


class EpochMetricsLogger(MlflowCallback):
    """MLflow's Keras callback, logging each epoch's metrics once, and before the epoch's backup.

    The stock callback also logs every validation pass again as `validation_*` (without a step),
    a second name for what the epoch logs already hold as `val_*`. It logs asynchronously: a killed
    process could lose epochs that its backup already holds, so this one waits for the store.
    A resumed training continues its run, whose optimizer params and summary are logged already.
    A second fit (transfer learning's fine-tuning) logs nothing again: MLflow params are written once,
    and the fine-tuning rate is a param of its own (train.transfer.fine_tune.learning_rate).
    """

    def __init__(self, resumed: bool = False) -> None:
        super().__init__()
        self.logged = resumed

    def on_train_begin(self, logs=None):
        """The optimizer's config as params (`optimizer_*`) and the model summary, as the stock callback logs
        them, but each number as params.yaml writes it: Keras holds the learning rate as a float32 variable,
        whose value 0.01 reads back as 0.009999999776482582."""
        if self.logged:
            return
        self.logged = True
        config = self.model.optimizer.get_config()
        mlflow.log_params({f"optimizer_{key}": _as_written(value) for key, value in config.items()})
        lines: list[str] = []
        self.model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
        mlflow.log_text("\n".join(lines), "model_summary.txt")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            mlflow.log_metrics(logs, step=epoch)

    def on_test_end(self, logs=None):
        pass
