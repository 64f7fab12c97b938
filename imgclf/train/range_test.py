"""The learning-rate range test: train a few hundred batches while the rate grows exponentially, and read
from the loss which rates learn, which are too small to matter and which overshoot.

Each batch is one Keras epoch of one step (`steps_per_epoch=1` on a repeated dataset), so that each
epoch's logged loss is that one batch's: Keras's per-batch logs hold the epoch's running mean instead.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import keras

from imgclf.artifacts import SplitPart
from imgclf.errors import PipelineError
from imgclf.params import TrainParams
from imgclf.train.augmentation import build_augmentation
from imgclf.train.batches import make_dataset
from imgclf.train.model import build_model, compile_model
from imgclf.train.result import DataSpec, class_weights, resolve_batch_size

RANGE_COLUMNS = ("step", "learning_rate", "loss", "smoothed_loss")


@dataclass(frozen=True)
class RangeSettings:
    """The rates tried, and when the loss counts as diverged."""

    min_lr: float = 1e-6
    max_lr: float = 1.0
    steps: int = 300  # batches; the rate is multiplied by the same factor at each
    diverge: float = 4.0  # stop once the smoothed loss exceeds this many times its lowest value
    # Of the exponential moving average of the loss: about the last 10 batches. Enough to calm a batch's
    # noise; more would lag behind the rate (at 300 steps over 6 decades, 50 batches are a whole decade).
    smoothing: float = 0.9

    def __post_init__(self) -> None:
        if not 0 < self.min_lr < self.max_lr:
            raise PipelineError(f"--min-lr {self.min_lr:g} and --max-lr {self.max_lr:g}: need 0 < min-lr < max-lr")
        if self.steps < 10:
            raise PipelineError(f"--steps {self.steps}: need at least 10 batches to read a trend from the loss")
        if self.diverge <= 1:
            raise PipelineError(f"--diverge {self.diverge:g}: need a factor > 1 over the lowest loss")

    def rate(self, step: int) -> float:
        """The rate of batch `step` (0-based): min_lr at the first, max_lr at the last, geometric between."""
        return self.min_lr * (self.max_lr / self.min_lr) ** (step / (self.steps - 1))


@dataclass(frozen=True)
class RangeResult:
    rows: list[dict]  # one per batch: RANGE_COLUMNS
    suggestion: float  # the rate to train at (suggest_rate)
    diverged_at: float | None  # the rate at which the loss diverged and the test stopped; None: it never did


class RateRangeTest(keras.callbacks.Callback):
    """Sets each batch's rate (one batch per epoch) and records its loss, raw and smoothed; stops the fit
    once the smoothed loss diverges (or turns inf or nan)."""

    def __init__(self, settings: RangeSettings) -> None:
        super().__init__()
        self.settings = settings
        self.rows: list[dict] = []
        self.diverged_at: float | None = None
        self._average, self._lowest = 0.0, math.inf

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate = self.settings.rate(epoch)

    def on_epoch_end(self, epoch, logs=None):
        loss, rate = float(logs["loss"]), self.settings.rate(epoch)
        beta = self.settings.smoothing
        self._average = beta * self._average + (1 - beta) * loss
        smoothed = self._average / (1 - beta ** (epoch + 1))  # bias-corrected: the average starts from 0
        self.rows.append({"step": epoch + 1, "learning_rate": rate, "loss": loss, "smoothed_loss": smoothed})
        if not math.isfinite(smoothed) or smoothed > self.settings.diverge * self._lowest:
            self.diverged_at = rate
            self.model.stop_training = True
        self._lowest = min(self._lowest, smoothed)


def suggest_rate(rows: list[dict]) -> float:
    """A tenth of the rate at which the smoothed loss is lowest.

    At the minimum the rate is already at the edge of what the network tolerates: a little more and
    the loss turns up, and the best rate for a whole training, whose loss landscape gets sharper as
    it goes, sits below it. A tenth lies on the steep, descending stretch of the curve, where the loss
    falls fast and still steadily: the rule of thumb of the range test as fast.ai teaches it (an order of
    magnitude below the minimum). The other common rule, the rate of the steepest descent, reads a derivative
    of a noisy curve and jumps between runs; the minimum of the smoothed loss is stable.
    """
    finite = [row for row in rows if math.isfinite(row["smoothed_loss"])]
    if not finite:
        raise PipelineError("the loss was not finite from the first batch; lower --min-lr")
    lowest = min(finite, key=lambda row: row["smoothed_loss"])
    return lowest["learning_rate"] / 10


def run_range_test(train: SplitPart, data: DataSpec, params: TrainParams, seed: int,
                   settings: RangeSettings) -> RangeResult:
    """Train the network of `params` (its optimizer, batch size, augmentation and class weights) for up to
    settings.steps batches at exponentially rising rates; what each batch's loss was, and the suggestion."""
    if params.model == "logreg":
        raise PipelineError("train.model = logreg has no learning rate (scikit-learn's solver fits it); "
                            "the range test is for mlp, cnn and transfer")
    # A constant rate (the callback sets it) and one batch per call, so that every batch's callbacks run.
    params = dataclasses.replace(params, lr_schedule="constant", steps_per_execution=1)
    batch_size = resolve_batch_size(params.batch_size, len(train.y))
    model = compile_model(build_model(train.x.shape[1:], data.n_classes, params, data.pixel_scale), params)
    augment = build_augmentation(params.augmentation, seed, 1 / data.pixel_scale)
    batches = make_dataset(train, batch_size, data.n_classes, params.labels, shuffle_seed=seed, augment=augment)
    test = RateRangeTest(settings)
    model.fit(batches.repeat(), steps_per_epoch=1, epochs=settings.steps, callbacks=[test], verbose=0,
              class_weight=class_weights(train.y, data.n_classes, params.class_weight), shuffle=False)
    return RangeResult(test.rows, suggest_rate(test.rows), test.diverged_at)


def rows_to_csv(rows: list[dict]) -> str:
    """The test's rows as CSV (plots/lr_range.csv): floats to 6 significant digits."""
    lines = [",".join(RANGE_COLUMNS)]
    lines += [",".join(f"{row[c]:.6g}" if isinstance(row[c], float) else str(row[c]) for c in RANGE_COLUMNS)
              for row in rows]
    return "\n".join(lines) + "\n"

