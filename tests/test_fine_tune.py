"""Transfer learning's fine-tuning phase, with a backbone of random weights (weights: none, no download)."""

import dataclasses

import keras
import numpy as np
import pytest

from imgclf.artifacts import SplitPart
from imgclf.errors import PipelineError
from imgclf.params import FineTuneParams, TrainParams, TransferParams, parse_params
from imgclf.train.model import backbone_of, build_model, unfreeze_top
from imgclf.train.training import DataSpec, FitOptions, make_deterministic, train_network
from tests.test_training import _StopAfter  # interrupts fit as a kill would

SHAPE = (32, 32, 3)  # MobileNetV2's smallest input: the quickest backbone to build and fit


def _params(layers=0, epochs=2, fine_epochs=2, **overrides) -> TrainParams:
    transfer = TransferParams(backbone="mobilenet_v2", weights="none", dense_units=(8,),
                              fine_tune=FineTuneParams(layers=layers, epochs=fine_epochs, learning_rate=1e-5))
    return dataclasses.replace(TrainParams(model="transfer", transfer=transfer, epochs=epochs, batch_size=8,
                                           learning_rate=1e-3), **overrides)


def _data(n=32):
    """Two classes of 8-bit photos: dark and bright."""
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    x = (rng.random((n, *SHAPE)) * 128 + 127 * y[:, None, None, None]).astype(np.uint8)
    return SplitPart(x[:24], y[:24]), SplitPart(x[24:], y[24:])


def _batch_norms(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    return [layer for layer in backbone_of(model).layers if isinstance(layer, keras.layers.BatchNormalization)]


def test_fine_tuning_is_off_by_default_and_its_params_are_checked():
    assert parse_params({}).train.transfer.fine_tune == FineTuneParams(layers=0, epochs=5, learning_rate=1e-5)
    with pytest.raises(PipelineError, match=r"train\.transfer\.fine_tune\.layers = -1 is invalid"):
        parse_params({"train": {"transfer": {"fine_tune": {"layers": -1}}}})
    with pytest.raises(PipelineError, match=r"train\.transfer\.fine_tune\.learning_rate = 0 is invalid"):
        parse_params({"train": {"transfer": {"fine_tune": {"learning_rate": 0}}}})


def test_exactly_the_top_layers_unfreeze_and_batch_normalization_stays_frozen():
    model = build_model(SHAPE, 2, _params())
    backbone = backbone_of(model)
    assert not any(layer.trainable for layer in backbone.layers)  # the head's phase: all frozen
    top = unfreeze_top(model, 12)
    assert top == backbone.layers[-12:]
    batch_norms = set(map(id, _batch_norms(model)))
    assert any(id(layer) in batch_norms for layer in top)  # the case that matters: a BatchNormalization among them
    trainable = [layer for layer in backbone.layers if layer.trainable]
    assert trainable == [layer for layer in top if id(layer) not in batch_norms]
    assert not any(layer.trainable for layer in _batch_norms(model))
    head = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert head and all(layer.trainable for layer in head)
    unfrozen_weights = sum(len(layer.trainable_weights) for layer in trainable)
    head_weights = sum(len(layer.trainable_weights) for layer in head)
    assert len(model.trainable_weights) == unfrozen_weights + head_weights


def test_more_layers_than_the_backbone_has_is_a_clear_error():
    model = build_model(SHAPE, 2, _params())
    n = len(backbone_of(model).layers)
    with pytest.raises(PipelineError, match=rf"fine_tune\.layers = {n + 1}: .* has {n} layers; choose 1 to {n}"):
        unfreeze_top(model, n + 1)


class _Snapshots(keras.callbacks.Callback):
    """The model's weights (by path) at the start of each fit: one per phase."""

    def __init__(self) -> None:
        super().__init__()
        self.taken: list[dict[str, np.ndarray]] = []

    def on_train_begin(self, logs=None):
        self.taken.append({w.path: keras.ops.convert_to_numpy(w).copy() for w in self.model.weights})


def test_fine_tuning_continues_the_epochs_at_its_own_rate_with_batch_normalization_in_inference_mode(tmp_path):
    import mlflow

    from imgclf.train.callbacks import EpochMetricsLogger

    train, val = _data()
    snapshots = _Snapshots()
    make_deterministic(0)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        with mlflow.start_run() as run:  # as the train stage logs: the optimizer's params once, every epoch
            result = train_network(train, val, DataSpec(2, 1.0), _params(layers=10, epochs=2, fine_epochs=3), 0,
                                   FitOptions(callbacks=(snapshots, EpochMetricsLogger())))
        logged = mlflow.get_run(run.info.run_id).data.params
        rates = mlflow.MlflowClient().get_metric_history(run.info.run_id, "learning_rate")
    finally:
        mlflow.set_tracking_uri(None)
    assert logged["optimizer_learning_rate"] == "0.001"  # the head's; fine_tune.learning_rate is a param of its own
    assert [(m.step, round(m.value, 8)) for m in sorted(rates, key=lambda m: m.step)] == [
        (0, 1e-3), (1, 1e-3), (2, 1e-5), (3, 1e-5), (4, 1e-5)]
    model = result.model
    assert [row["epoch"] for row in result.rows] == [1, 2, 3, 4, 5]
    assert [row["learning_rate"] for row in result.rows] == pytest.approx([1e-3] * 2 + [1e-5] * 3)
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(1e-5)
    assert result.summary["epochs_run"] == 5 and result.summary["optimizer_steps"] == 5 * 3  # 24 photos, 8 a batch
    assert result.summary["final_learning_rate"] == pytest.approx(1e-5)

    head, fine = snapshots.taken  # the weights as each phase began
    final = {w.path: keras.ops.convert_to_numpy(w) for w in model.weights}
    backbone = backbone_of(model)
    unfrozen = {w.path for layer in backbone.layers[-10:] if layer.trainable for w in layer.trainable_weights}
    frozen = {w.path for layer in backbone.layers[:-10] for w in layer.weights}
    assert unfrozen and frozen
    assert all(np.array_equal(head[p], fine[p]) for p in unfrozen)  # frozen while the head trained
    assert all(not np.array_equal(fine[p], final[p]) for p in unfrozen)  # trained while fine-tuning
    assert all(np.array_equal(head[p], final[p]) for p in frozen)  # never trained
    for layer in _batch_norms(model):  # inference mode: the statistics they were built with, never updated
        assert not layer.trainable
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.moving_mean), 0)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.moving_variance), 1)


def test_without_fine_tune_layers_a_transfer_model_trains_its_head_only():
    train, val = _data()
    make_deterministic(0)
    result = train_network(train, val, DataSpec(2, 1.0), _params(layers=0, epochs=2), 0)
    assert [row["epoch"] for row in result.rows] == [1, 2]
    assert not any(layer.trainable for layer in backbone_of(result.model).layers)


def test_a_training_interrupted_while_fine_tuning_resumes_to_the_uninterrupted_result(tmp_path):
    from imgclf.train.resume import Backup

    train, val = _data()
    params = _params(layers=6, epochs=2, fine_epochs=3)

    def fit(backup=None, resume=None, extra=()):
        make_deterministic(3)
        return train_network(train, val, DataSpec(2, 1.0), params, 3, FitOptions(tuple(extra), backup, resume))

    whole = fit()
    backup = Backup(tmp_path / "backup", "key")
    with pytest.raises(KeyboardInterrupt):
        fit(backup, extra=[_StopAfter(4)])  # the head's 2 epochs and 1 of fine-tuning are saved
    state = backup.load()
    assert state["epoch"] == 3 and state["phase"] == 2 and state["head_epochs"] == 2

    resumed = fit(backup, state)
    assert resumed.rows == whole.rows and resumed.summary == whole.summary
    for mine, theirs in zip(resumed.model.get_weights(), whole.model.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    assert resumed.samples_seen == len(train.y) * 2  # only the fine-tuning epochs after the backup
