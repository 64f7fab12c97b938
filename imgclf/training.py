"""Deterministic Keras training: batches, augmentation and callbacks from params."""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from sklearn.utils.class_weight import compute_class_weight

from imgclf.errors import PipelineError
from imgclf.history import best_epoch, history_rows
from imgclf.model import build_model, compile_model
from imgclf.params import AugmentationParams, CallbackParams, TrainParams

Arrays = tuple[np.ndarray, np.ndarray]


@dataclass
class TrainResult:
    model: keras.Model
    rows: list[dict]  # one per epoch, for plots/history.csv
    summary: dict  # for metrics/train.json
    tags: dict = field(default_factory=dict)  # for the MLflow run


def make_strategy(mode: str) -> tf.distribute.Strategy:
    """TensorFlow's distribution strategy for train.distribute (auto: what the machine offers)."""
    multi_worker = "TF_CONFIG" in os.environ
    if mode == "multi_worker" and not multi_worker:
        raise PipelineError("train.distribute = multi_worker needs TF_CONFIG (the cluster and this worker's task) "
                            "in the environment; set it on every worker, or use train.distribute: auto")
    if mode == "multi_worker" or (mode == "auto" and multi_worker):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if mode == "mirrored" or (mode == "auto" and len(tf.config.list_logical_devices("GPU")) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()  # the default: one device


def describe_strategy(strategy: tf.distribute.Strategy) -> dict[str, str]:
    name = type(strategy).__name__.lstrip("_")
    return {"distribute.strategy": "none" if name.startswith("Default") else name,
            "distribute.replicas": str(strategy.num_replicas_in_sync)}


def make_deterministic(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TF ops deterministic (same params, same metrics on CPU)."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


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


def build_augmentation(aug: AugmentationParams, seed: int) -> keras.Sequential | None:
    """Keras preprocessing layers for the enabled transforms, or None when all are off."""
    fill = {"fill_mode": "constant", "fill_value": 0.0}
    layers = []
    if aug.rotation:
        layers.append(keras.layers.RandomRotation(aug.rotation / 360.0, seed=seed, **fill))
    if aug.zoom:
        layers.append(keras.layers.RandomZoom(aug.zoom, seed=seed, **fill))
    if aug.shift:
        layers.append(keras.layers.RandomTranslation(aug.shift, aug.shift, seed=seed, **fill))
    if aug.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if aug.contrast:
        layers.append(keras.layers.RandomContrast(aug.contrast, value_range=(0, 1), seed=seed))
    return keras.Sequential(layers, name="augmentation") if layers else None


# A split up to this size is loaded into memory once (tf.data then serves it from RAM every epoch);
# a larger one streams from its memory-mapped .npy file, a batch of rows at a time.
IN_MEMORY_BYTES = 2 * 1024**3


def make_dataset(data: Arrays, batch_size: int, n_classes: int, labels: str,
                 shuffle_seed: int | None = None, augment: keras.Sequential | None = None) -> tf.data.Dataset:
    """Batches for fit; only the training set is shuffled and augmented."""
    x, y = data
    if x.nbytes <= IN_MEMORY_BYTES:
        ds = tf.data.Dataset.from_tensor_slices((np.asarray(x), y))
    else:
        # Shuffle and batch row numbers (8 bytes each), then read just those rows from disk.
        ds = tf.data.Dataset.range(len(y))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(y), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if x.nbytes > IN_MEMORY_BYTES:
        ds = ds.map(lambda rows: _read_rows(x, y, rows), num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None:
        ds = ds.map(lambda images, target: (augment(images, training=True), target),
                    num_parallel_calls=tf.data.AUTOTUNE)
    if labels == "one_hot":
        ds = ds.map(lambda images, target: (images, tf.one_hot(target, n_classes)))
    # Prefetching overlaps preparing the next batch with training on this one.
    return ds.prefetch(tf.data.AUTOTUNE)


def _read_rows(x: np.ndarray, y: np.ndarray, rows: tf.Tensor):
    images, target = tf.numpy_function(lambda r: (np.asarray(x[r]), y[r]), [rows], (tf.float32, tf.int64))
    images.set_shape((None, *x.shape[1:]))
    target.set_shape((None,))
    return images, target


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


def train_network(train: Arrays, val: Arrays, n_classes: int, params: TrainParams, seed: int,
                  extra_callbacks: list | None = None) -> TrainResult:
    """Build, compile and fit the network; the returned model is the checkpointed best when enabled."""
    batch_size = resolve_batch_size(params.batch_size, len(train[1]))
    steps = math.ceil(len(train[1]) / batch_size)
    strategy = make_strategy(params.distribute)
    with strategy.scope():  # variables are created once per replica; batch_size is the global batch
        model = compile_model(build_model(train[0].shape[1:], n_classes, params), params, steps)
    augment = build_augmentation(params.augmentation, seed)
    train_ds = make_dataset(train, batch_size, n_classes, params.labels, shuffle_seed=seed, augment=augment)
    val_ds = make_dataset(val, max(batch_size, 256), n_classes, params.labels)
    with tempfile.TemporaryDirectory() as tmp:
        best = Path(tmp) / "best.weights.h5"
        callbacks = build_callbacks(params.callbacks, best) + [LearningRateLogger(), *(extra_callbacks or [])]
        # shuffle=False: the dataset is already shuffled, with the seed.
        history = model.fit(train_ds, validation_data=val_ds, epochs=params.epochs, callbacks=callbacks,
                            class_weight=class_weights(train[1], n_classes, params.class_weight),
                            shuffle=False, verbose=2)
        steps_taken = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
        if best.exists():
            model.load_weights(best)
    rows = history_rows(history.history)
    val_loss, val_accuracy = model.evaluate(val_ds, verbose=0)
    return TrainResult(model, rows, tags=describe_strategy(strategy), summary={
        "epochs_run": len(rows),
        "optimizer_steps": steps_taken,
        "best_epoch": best_epoch(rows, _monitor(params.callbacks)),
        "final_learning_rate": float(f"{rows[-1]['learning_rate']:.6g}"),
        "loss": round(rows[-1]["loss"], 6),
        "accuracy": round(rows[-1]["accuracy"], 6),
        "val_loss": round(float(val_loss), 6),
        "val_accuracy": round(float(val_accuracy), 6),
    })


def _monitor(cb: CallbackParams) -> str:
    """The metric that decides the best epoch: the checkpoint's, early stopping's, else val_loss."""
    if cb.checkpoint.enabled:
        return cb.checkpoint.monitor
    return cb.early_stopping.monitor if cb.early_stopping.enabled else "val_loss"


def augmentation_preview(images: np.ndarray, aug: AugmentationParams, seed: int, copies: int = 4) -> np.ndarray:
    """N x (1 + copies) x H x W x C: each image, then augmented versions (none when augmentation is off)."""
    augment = build_augmentation(aug, seed)
    versions = [images]
    if augment is not None:
        versions += [np.clip(keras.ops.convert_to_numpy(augment(images, training=True)), 0, 1)
                     for _ in range(copies)]
    return np.stack(versions, axis=1)


def describe_device() -> str:
    """The GPU's name when TensorFlow sees one, else CPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    details = tf.config.experimental.get_device_details(gpus[0])
    return details.get("device_name", gpus[0].name)
