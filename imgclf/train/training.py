"""Deterministic Keras training: build, compile and fit the network of train params."""

from __future__ import annotations

import dataclasses
import math
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import keras
import tensorflow as tf

from imgclf.artifacts import SplitPart
from imgclf.params import CallbackParams, TrainParams
from imgclf.train.augmentation import build_augmentation
from imgclf.train.batches import make_dataset
from imgclf.train.callbacks import EpochRandomness, LearningRateLogger, build_callbacks
from imgclf.train.devices import describe_strategy, make_strategy
from imgclf.train.history import best_epoch, history_rows
from imgclf.train.model import build_model, compile_model, fine_tune_params, unfreeze_top
from imgclf.train.result import DataSpec, TrainResult, class_weights, resolve_batch_size
from imgclf.train.resume import Backup, EpochBackup


@dataclass(frozen=True)
class FitOptions:
    """What a training may add to a plain fit: callbacks, an epoch-end backup, and a backup's state to resume."""

    callbacks: tuple[keras.callbacks.Callback, ...] = ()  # after the params' own and the learning-rate logger
    backup: Backup | None = None  # saved at each epoch's end
    resume: dict | None = None  # that backup's state: continue from its last completed epoch
    backup_extra: dict = field(default_factory=dict)  # saved with each epoch's state (the MLflow run id)


def make_deterministic(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TF ops deterministic (same params, same metrics on CPU)."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def train_network(train: SplitPart, val: SplitPart, data: DataSpec, params: TrainParams, seed: int,
                  options: FitOptions | None = None) -> TrainResult:
    """Build, compile and fit the network; the returned model is the checkpointed best when enabled.

    `train` and `val` hold pixels as stored; the model's first layer applies `data.pixel_scale`.
    With `options.backup`, the state is saved at each epoch's end; `options.resume` (that backup's
    state) continues a training from its last completed epoch, to the result an uninterrupted one gives.
    A transfer model with train.transfer.fine_tune.layers then fine-tunes (`_fine_tune`), its epochs
    counted on from the head's.
    """
    options = options or FitOptions()
    n_classes, resume = data.n_classes, options.resume
    batch_size = resolve_batch_size(params.batch_size, len(train.y))
    steps = math.ceil(len(train.y) / batch_size)
    strategy = make_strategy(params.distribute)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # Keras's multi-step loop fails on distributed iterators ("You must feed a value for
        # placeholder tensor"); one batch per call gives the same steps, with the per-batch overhead.
        params = dataclasses.replace(params, steps_per_execution=1)
    with strategy.scope():  # variables are created once per replica; batch_size is the global batch
        model = compile_model(build_model(train.x.shape[1:], n_classes, params, data.pixel_scale), params, steps)
    augment = build_augmentation(params.augmentation, seed, 1 / data.pixel_scale)
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    train_ds = make_dataset(train, batch_size, n_classes, params.labels, shuffle_seed=seed, augment=augment,
                            epoch=epoch)
    val_ds = make_dataset(val, max(batch_size, 256), n_classes, params.labels)
    fine_layers = params.transfer.fine_tune.layers if params.model == "transfer" else 0
    with tempfile.TemporaryDirectory() as tmp:
        best = Path(tmp) / "best.weights.h5"
        stateful = build_callbacks(params.callbacks, best)
        fit = _Fit(model, train_ds, val_ds, stateful, [LearningRateLogger(), EpochRandomness(epoch, augment),
                                                         *options.callbacks],
                   class_weights(train.y, n_classes, params.class_weight), options)
        rows = list(resume["rows"]) if resume is not None else []
        started = time.perf_counter()
        if resume is None or resume.get("phase", 1) == 1:
            first = 0 if resume is None else params.epochs if resume["stopped"] else resume["epoch"]
            rows += fit(params.epochs, first, rows, resume, {})
            resume = None
        head_steps = 0
        if fine_layers:
            # The head's epochs: all so far, or as a backup taken while fine-tuning records them.
            head_epochs = len(rows) if resume is None else resume["head_epochs"]
            head_steps = steps * head_epochs  # every epoch runs every batch; the new optimizer counts from 0
            if resume is None and best.exists():
                model.load_weights(best)  # fine-tune the best head: the weights the checkpoint keeps
            with strategy.scope():
                _fine_tune(model, params, steps)
            rows += _fit_fine_tuning(fit, params.transfer.fine_tune.epochs, head_epochs, rows, resume)
        fit_seconds = time.perf_counter() - started
        steps_taken = head_steps + int(keras.ops.convert_to_numpy(model.optimizer.iterations))
        if best.exists():
            with warnings.catch_warnings():
                # A checkpoint of the head's epochs holds the head's optimizer, whose variables the fine-tuning
                # optimizer does not share: Keras skips those with a warning and loads the model's weights.
                warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
                model.load_weights(best)
    val_loss, val_accuracy = model.evaluate(val_ds, verbose=0)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        model = _detached(model, params, steps)
    return TrainResult(model, rows, tags=describe_strategy(strategy), fit_seconds=fit_seconds,
                       samples_seen=len(train.y) * fit.epochs_fitted, summary={
        "epochs_run": len(rows),
        "optimizer_steps": steps_taken,
        "best_epoch": best_epoch(rows, _monitor(params.callbacks)),
        "final_learning_rate": float(f"{rows[-1]['learning_rate']:.6g}"),
        # final_: the last epoch's training figures; named apart from metrics/eval.json's test loss and accuracy,
        # so that `dvc exp show` heads those two columns plain `loss` and `accuracy`, not prefixed with their file
        "final_loss": round(rows[-1]["loss"], 6),
        "final_accuracy": round(rows[-1]["accuracy"], 6),
        "val_loss": round(float(val_loss), 6),
        "val_accuracy": round(float(val_accuracy), 6),
    })


class _Fit:
    """One call of model.fit per phase, with the same data and callbacks; a phase's history as rows."""

    def __init__(self, model: keras.Model, train_ds, val_ds, stateful: list, others: list,
                 class_weight: dict | None, options: FitOptions) -> None:
        self.model, self.train_ds, self.val_ds, self.class_weight = model, train_ds, val_ds, class_weight
        self.stateful, self.others, self.options, self.epochs_fitted = stateful, others, options, 0

    def __call__(self, epochs: int, initial_epoch: int, rows: list[dict], resume: dict | None,
                 phase: dict) -> list[dict]:
        """Fit up to epoch `epochs` from `initial_epoch`, after `rows`; `resume` restores a backup of this phase,
        and `phase` is saved with each epoch's state (what a resume needs to know of the phase)."""
        backup, callbacks = self.options.backup, [*self.stateful, *self.others]
        if resume is not None:
            backup.restore_model(self.model, resume)
        if backup is not None:
            callbacks.append(EpochBackup(backup, self.stateful, rows, resume, {**self.options.backup_extra, **phase}))
        # shuffle=False: the dataset is already shuffled, with the seed.
        history = self.model.fit(self.train_ds, validation_data=self.val_ds, epochs=epochs,
                                 initial_epoch=initial_epoch, callbacks=callbacks, class_weight=self.class_weight,
                                 shuffle=False, verbose=_progress())
        fitted = history_rows(history.history, initial_epoch) if history.history else []
        self.epochs_fitted += len(fitted)
        return fitted


def _fine_tune(model: keras.Model, params: TrainParams, steps: int) -> None:
    """The top layers of the backbone unfrozen, and a new optimizer at the fine-tuning rate (compiling again
    is what makes the changed trainable flags count)."""
    unfreeze_top(model, params.transfer.fine_tune.layers)
    compile_model(model, fine_tune_params(params), steps)


def _fit_fine_tuning(fit: _Fit, epochs: int, head_epochs: int, rows: list[dict], resume: dict | None) -> list[dict]:
    """The fine-tuning epochs, counted on from the head's (or on from a backup taken during them)."""
    last = head_epochs + epochs
    first = head_epochs if resume is None else last if resume["stopped"] else resume["epoch"]
    return fit(last, first, rows, resume, {"phase": 2, "head_epochs": head_epochs})


def _progress() -> int:
    """Keras's verbosity: its progress bar, updated within each epoch, on a terminal; one line per epoch
    elsewhere (DVC's log in CI, a file), where a bar would print a line per update."""
    return 1 if sys.stdout.isatty() else 2


def _detached(model: keras.Model, params: TrainParams, steps: int) -> keras.Model:
    """The trained network outside its multi-worker strategy: predicting and saving it need no other worker."""
    plain = keras.models.clone_model(model)
    plain.set_weights(model.get_weights())
    return compile_model(plain, params, steps)


def _monitor(cb: CallbackParams) -> str:
    """The metric that decides the best epoch: the checkpoint's, early stopping's, else val_loss."""
    if cb.checkpoint.enabled:
        return cb.checkpoint.monitor
    return cb.early_stopping.monitor if cb.early_stopping.enabled else "val_loss"
