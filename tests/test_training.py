"""Training options on small generated data: batch modes, callbacks, labels, augmentation, class weights."""

import dataclasses
import json
import os
from pathlib import Path

import keras
import numpy as np
import pytest

from imgclf.artifacts import SplitPart
from imgclf.params import AugmentationParams, CallbackParams, EarlyStoppingParams, TrainParams, parse_params
from imgclf.train.augmentation import build_augmentation
from imgclf.train.batches import make_dataset
from imgclf.train.training import DataSpec, FitOptions, class_weights, make_deterministic, train_network

PROJECT = Path(__file__).resolve().parents[1]


def _data(n=96, seed=0, learnable=True):
    """4x4 images; with `learnable` the label is the brightest quadrant, else labels are noise."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 4, 4, 1), dtype=np.float32)
    quadrants = x.reshape(n, 2, 2, 2, 2).mean(axis=(2, 4)).reshape(n, 4)[:, :3]
    y = quadrants.argmax(axis=1) if learnable else rng.integers(0, 3, n)
    cut = n * 3 // 4
    return SplitPart(x[:cut], y[:cut]), SplitPart(x[cut:], y[cut:])


def _train(seed=0, data=None, options=None, **overrides):
    make_deterministic(seed)
    train, val = data or _data()
    params = dataclasses.replace(TrainParams(hidden_units=(16,), epochs=3), **overrides)
    return train_network(train, val, DataSpec(3), params, seed, options)


@pytest.mark.parametrize(("batch_size", "steps_per_epoch"), [("full", 1), (1, 72), (32, 3)])
def test_batch_size_sets_the_number_of_optimizer_steps(batch_size, steps_per_epoch):
    result = _train(batch_size=batch_size, epochs=2)
    assert int(result.model.optimizer.iterations) == 2 * steps_per_epoch


def test_same_seed_same_history_other_seed_other_history():
    assert _train(seed=5).rows == _train(seed=5).rows
    assert _train(seed=5).rows != _train(seed=6).rows


def test_one_hot_labels_train_the_same_network_as_sparse():
    sparse, one_hot = _train(labels="sparse"), _train(labels="one_hot")
    for a, b in zip(sparse.rows, one_hot.rows):
        assert a == pytest.approx(b, rel=1e-4)


@pytest.mark.parametrize("batch_size", [1, 5, "full"])
def test_steps_per_execution_changes_the_speed_not_the_result(batch_size):
    """64 batches per call into TensorFlow, or one: the same steps in the same order, the same weights,
    and per-epoch callbacks (here reduce-on-plateau) still act after every epoch."""
    noise = _data(learnable=False)
    callbacks = parse_params({"train": {"callbacks": {"reduce_lr": {"enabled": True, "patience": 1}}}}).train.callbacks
    runs = [_train(data=noise, batch_size=batch_size, steps_per_execution=n, callbacks=callbacks, epochs=6,
                   learning_rate=0.05, hidden_units=(32,)) for n in (1, 64)]
    per_batch, grouped = runs
    assert int(grouped.model.optimizer.iterations) == int(per_batch.model.optimizer.iterations)
    assert grouped.model.steps_per_execution == 64 and per_batch.model.steps_per_execution == 1
    assert grouped.rows == per_batch.rows and len(grouped.rows) == 6
    assert min(row["learning_rate"] for row in grouped.rows) < 0.05  # the callback did act
    for a, b in zip(per_batch.model.get_weights(), grouped.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_8_bit_pixels_train_like_unit_range_floats():
    """Pixels stored as uint8 with their scale give the network what [0, 1] floats give it."""
    (x, y), (xv, yv) = _data()
    x8, xv8 = (np.round(a * 255).astype(np.uint8) for a in (x, xv))
    params = TrainParams(hidden_units=(16,), epochs=3)
    make_deterministic(0)
    as_bytes = train_network(SplitPart(x8, y), SplitPart(xv8, yv), DataSpec(3, 1 / 255), params, 0)
    make_deterministic(0)
    as_floats = train_network(SplitPart((x8 / 255).astype(np.float32), y),
                              SplitPart((xv8 / 255).astype(np.float32), yv), DataSpec(3), params, 0)
    assert as_bytes.model.layers[0].name == "normalization"
    for a, b in zip(as_bytes.rows, as_floats.rows):
        assert a == pytest.approx(b, rel=1e-4)
    np.testing.assert_allclose(as_bytes.model.predict(xv8, verbose=0),
                               as_floats.model.predict((xv8 / 255).astype(np.float32), verbose=0), atol=1e-4)


def test_early_stopping_stops_on_a_plateau_and_keeps_the_best_weights():
    noise = _data(learnable=False)  # random labels: validation loss soon stops improving
    callbacks = CallbackParams(early_stopping=EarlyStoppingParams(enabled=True, patience=2))
    result = _train(data=noise, callbacks=callbacks, epochs=60, learning_rate=0.05, hidden_units=(64,))
    assert result.summary["epochs_run"] < 60
    best = result.summary["best_epoch"]
    assert best == result.summary["epochs_run"] - 2
    assert result.summary["val_loss"] == pytest.approx(result.rows[best - 1]["val_loss"], rel=1e-5)


def test_checkpoint_outputs_the_best_epoch_model():
    noise = _data(learnable=False)
    callbacks = parse_params({"train": {"callbacks": {"checkpoint": {"enabled": True}}}}).train.callbacks
    result = _train(data=noise, callbacks=callbacks, epochs=12, learning_rate=0.05, hidden_units=(64,))
    val_losses = [row["val_loss"] for row in result.rows]
    assert result.summary["epochs_run"] == 12
    assert result.summary["best_epoch"] == 1 + int(np.argmin(val_losses))
    assert result.summary["val_loss"] == pytest.approx(min(val_losses), rel=1e-5)
    assert result.summary["val_loss"] < val_losses[-1]
    # the last epoch's training figures (not the restored model's), named apart from the test's loss and accuracy
    assert result.summary["final_loss"] == round(result.rows[-1]["loss"], 6)
    assert result.summary["final_accuracy"] == round(result.rows[-1]["accuracy"], 6)


def test_reduce_lr_on_plateau_lowers_the_logged_learning_rate():
    noise = _data(learnable=False)
    callbacks = parse_params({"train": {"callbacks": {"reduce_lr": {"enabled": True, "patience": 1,
                                                                    "factor": 0.5}}}}).train.callbacks
    result = _train(data=noise, callbacks=callbacks, epochs=10, learning_rate=0.05, hidden_units=(64,))
    rates = [row["learning_rate"] for row in result.rows]
    assert rates[0] == pytest.approx(0.05)
    assert min(rates) < 0.05 and result.summary["final_learning_rate"] == pytest.approx(rates[-1], rel=1e-5)
    assert any(later == pytest.approx(earlier * 0.5) for earlier, later in zip(rates, rates[1:]))


def test_exponential_schedule_decays_each_epoch():
    result = _train(lr_schedule="exponential", learning_rate=0.1, lr_decay_rate=0.5, epochs=3)
    assert [row["learning_rate"] for row in result.rows] == pytest.approx([0.05, 0.025, 0.0125])


def test_augmentation_changes_training_batches_only():
    train, val = _data()
    aug = AugmentationParams(rotation=30, zoom=0.2, shift=0.2, contrast=0.3)
    augment = build_augmentation(aug, seed=0)
    plain = next(iter(make_dataset(train, 8, 3, "sparse")))[0].numpy()
    augmented = next(iter(make_dataset(train, 8, 3, "sparse", augment=augment)))[0].numpy()
    assert not np.allclose(plain, augmented)
    np.testing.assert_array_equal(plain, train.x[:8])

    make_deterministic(0)
    result = train_network(train, val, DataSpec(3), TrainParams(hidden_units=(8,), epochs=1, augmentation=aug), 0)
    assert not [layer for layer in result.model.layers if "random" in type(layer).__name__.lower()]
    first, second = (result.model.predict(val.x, verbose=0) for _ in range(2))
    np.testing.assert_array_equal(first, second)  # evaluation and predict see the images as they are


def test_same_seed_and_augmentation_give_identical_metrics():
    aug = AugmentationParams(rotation=20, zoom=0.1, shift=0.1, flip=True, contrast=0.2)
    first, second = _train(seed=3, augmentation=aug), _train(seed=3, augmentation=aug)
    assert first.rows == second.rows and first.summary == second.summary
    assert first.rows != _train(seed=3).rows  # the augmentation did change training


def test_balanced_class_weights_counter_imbalance():
    y = np.array([0] * 70 + [1] * 10 + [2] * 20)
    weights = class_weights(y, 3, "balanced")
    assert weights == pytest.approx({0: 100 / 210, 1: 100 / 30, 2: 100 / 60}, rel=1e-5)
    assert class_weights(y, 3, "none") is None


def test_class_weights_reach_the_loss():
    unweighted = _train(epochs=1)
    weighted = _train(epochs=1, class_weight="balanced")
    assert unweighted.rows[0]["loss"] != pytest.approx(weighted.rows[0]["loss"], rel=1e-3)


def test_invalid_training_options_stop_the_stage_before_training(tmp_path, monkeypatch, capsys):
    from imgclf import layout
    from imgclf.runtime import run_stage
    from imgclf.train import training
    from stages import train
    from tests.conftest import write_tiny_split

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    write_tiny_split()

    def must_not_train(*args, **kwargs):
        raise AssertionError("training started despite invalid params")

    monkeypatch.setattr(training, "train_network", must_not_train)  # imported by the stage where it trains
    monkeypatch.setattr(train, "train_logreg", must_not_train)
    for bad, key in (("optimizer: adamax", "train.optimizer"), ("batch_size: 0", "train.batch_size"),
                     ("dropout: 1.5", "train.dropout"), ("learning_rate: -0.01", "train.learning_rate"),
                     ("op_threads: many", "train.op_threads")):
        layout.PARAMS.write_text(f"train:\n  {bad}\n")
        with pytest.raises(SystemExit) as stopped:
            run_stage(train.main)
        assert stopped.value.code == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith(f"error: {key} = ") and "\n" not in error, error
    # nothing was tracked or written: no MLflow store, no model, no metrics
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "params.yaml"]


def test_keras_history_has_the_learning_rate():
    result = _train()
    assert set(result.rows[0]) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"}
    assert isinstance(result.model, keras.Model)


def test_the_optimizer_params_are_logged_as_params_yaml_writes_them(tmp_path):
    """Keras holds the learning rate as a float32: MLflow's callback would log 0.01 as 0.009999999776482582."""
    import mlflow

    from imgclf.train.callbacks import EpochMetricsLogger

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        with mlflow.start_run() as run:
            _train(epochs=1, learning_rate=0.01, optimizer="sgd", momentum=0.9,
                   options=FitOptions(callbacks=(EpochMetricsLogger(),)))
        params = mlflow.get_run(run.info.run_id).data.params
    finally:
        mlflow.set_tracking_uri(None)
    assert params["optimizer_learning_rate"] == "0.01" and params["optimizer_momentum"] == "0.9"
    assert params["optimizer_name"] == "sgd" and params["optimizer_nesterov"] == "False"


def test_large_splits_stream_from_disk_in_the_same_order(tmp_path, monkeypatch):
    from imgclf.artifacts import read_part, write_part
    from imgclf.train import batches

    (x, y), _ = _data()
    write_part(tmp_path, "train", x, y)
    mapped = read_part(tmp_path, "train")
    in_memory = [b for b in make_dataset(mapped, 16, 3, "sparse", shuffle_seed=3)]
    monkeypatch.setattr(batches, "IN_MEMORY_BYTES", 0)
    streamed = [b for b in make_dataset(mapped, 16, 3, "one_hot", shuffle_seed=3)]
    assert len(streamed) == len(in_memory) == 5
    for (xa, ya), (xb, yb) in zip(in_memory, streamed):
        np.testing.assert_array_equal(xa.numpy(), xb.numpy())
        np.testing.assert_array_equal(np.eye(3)[ya.numpy()], yb.numpy())
    make_deterministic(0)
    result = train_network(mapped, mapped, DataSpec(3), TrainParams(hidden_units=(8,), epochs=2), 0)
    assert result.summary["epochs_run"] == 2


def _local_gpus() -> int:
    import tensorflow as tf

    return len(tf.config.list_logical_devices("GPU"))


def test_distribution_strategy_from_params(monkeypatch):
    from imgclf.errors import PipelineError
    from imgclf.train.devices import describe_strategy, make_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    gpus = _local_gpus()
    # auto: mirrored over the local GPUs when there are several, else the default single device
    expected = {"distribute.strategy": "MirroredStrategy", "distribute.replicas": str(gpus)} if gpus > 1 else \
        {"distribute.strategy": "none", "distribute.replicas": "1"}
    assert describe_strategy(make_strategy("auto")) == expected
    assert describe_strategy(make_strategy("none")) == {"distribute.strategy": "none", "distribute.replicas": "1"}
    assert describe_strategy(make_strategy("mirrored"))["distribute.strategy"] == "MirroredStrategy"
    with pytest.raises(PipelineError, match="TF_CONFIG"):
        make_strategy("multi_worker")


@pytest.mark.parametrize(("overrides", "batch_size", "threads"), [
    ({}, 32, 1),  # the lessons' MNIST MLP: 3.3 million multiply-adds per batch
    ({}, 300, 1),
    ({}, 2048, 0),  # 208 million: splitting ops pays
    ({"hidden_units": (512, 512)}, 64, 0),
    ({"model": "cnn"}, 32, 0),  # one thread would change a convolution's sums, so never auto
    ({"model": "transfer"}, 1, 0),
    ({"op_threads": 3, "model": "cnn"}, 32, 3),  # a number is taken as given
    ({"op_threads": 0}, 32, 0),
])
def test_op_threads_auto_gives_small_dense_networks_one_thread(overrides, batch_size, threads):
    from imgclf.train.devices import op_threads

    train = dataclasses.replace(TrainParams(), **{"op_threads": "auto", **overrides})
    assert op_threads(train, (28, 28, 1), 10, batch_size) == threads


_THREADED_FIT = """
import hashlib, sys
import numpy as np
import tensorflow as tf
from imgclf.train.devices import set_op_threads
from imgclf.params import TrainParams
from imgclf.artifacts import SplitPart
from imgclf.train.training import DataSpec, make_deterministic, train_network

set_op_threads(int(sys.argv[1]))
rng = np.random.default_rng(0)
# MNIST's shape at the smallest and largest batch auto gives one thread, and a wide photo input
# with two classes (a long sum per output, which a thread pool could split)
for shape, classes, batch_size in (((28, 28, 1), 4, 32), ((28, 28, 1), 4, 300), ((64, 64, 3), 2, 16)):
    x = rng.integers(0, 256, (800, *shape), dtype=np.uint8)
    y = x.reshape(800, -1)[:, :100].argmax(axis=1) % classes
    make_deterministic(0)
    params = TrainParams(epochs=2, batch_size=batch_size, steps_per_execution=64)
    model = train_network(SplitPart(x[:700], y[:700]), SplitPart(x[700:], y[700:]), DataSpec(classes, 1 / 255),
                          params, 0).model
    print("weights", tf.config.threading.get_intra_op_parallelism_threads(),
          hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest())
"""


def test_one_thread_per_op_trains_a_small_dense_network_to_the_same_weights_every_run():
    """What auto picks for the lessons' MLP is reproducible: one thread per op gives the same weights
    in two processes (threads are fixed when TensorFlow starts). Against two threads they may differ
    in the last digits (they do on an AMD EPYC), which is why auto is not the default."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(PROJECT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    one, again = ([line.split()[1:] for line in subprocess.run(
        [sys.executable, "-c", _THREADED_FIT, "1"], capture_output=True, text=True, env=env, check=True,
    ).stdout.splitlines() if line.startswith("weights ")] for _ in range(2))  # fit prints its epochs too
    assert [threads for threads, _ in one] == ["1"] * 3 and [threads for threads, _ in again] == ["1"] * 3
    assert [digest for _, digest in one] == [digest for _, digest in again]


def test_op_threads_asked_after_tensorflow_started_leave_its_count_with_a_warning():
    """A stage called in-process after another TensorFlow op (a test, a notebook) trains on, with its
    count, instead of failing on TensorFlow's 'cannot be modified after initialization'."""
    import subprocess
    import sys

    code = ("import tensorflow as tf\nfrom imgclf.runtime import setup_logging\n"
            "from imgclf.train.devices import set_op_threads\nsetup_logging()\n"
            "print(set_op_threads(2))\ntf.constant(1.0) + 1.0\nprint(set_op_threads(1))")
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["2", "2"]
    assert "warning: train.op_threads = 1 not applied: TensorFlow already runs in this process with 2" in out.stderr


@pytest.mark.parametrize(("cluster", "task", "chief"), [
    ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 0}, True),
    ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 1}, False),
    ({"chief": ["c:1"], "worker": ["a:1"]}, {"type": "chief", "index": 0}, True),
    ({"chief": ["c:1"], "worker": ["a:1"]}, {"type": "worker", "index": 0}, False),
])
def test_cluster_role_from_tf_config(monkeypatch, cluster, task, chief):
    from imgclf.train.cluster import Cluster

    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
    for mode in ("multi_worker", "auto"):
        assert Cluster.from_env(mode) == Cluster(workers=2, chief=chief)
    # told to train alone, every process is its own chief
    for mode in ("none", "mirrored"):
        assert Cluster.from_env(mode) == Cluster(workers=1, chief=True)


def test_cluster_errors_name_the_fix(monkeypatch):
    from imgclf.errors import PipelineError
    from imgclf.train.cluster import Cluster

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert Cluster.from_env("auto") == Cluster()
    with pytest.raises(PipelineError, match="needs TF_CONFIG"):
        Cluster.from_env("multi_worker")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1"]}}')
    with pytest.raises(PipelineError, match="TF_CONFIG is not a cluster and task .*set it to"):
        Cluster.from_env("auto")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1"], "ps": ["p:1"]},
                                                "task": {"type": "ps", "index": 0}}))
    with pytest.raises(PipelineError, match="task type 'ps'"):
        Cluster.from_env("multi_worker")


def test_training_under_mirrored_strategy():
    result = _train(distribute="mirrored", epochs=1)
    # one replica per local GPU; on a machine without one, a single CPU replica
    assert result.tags == {"distribute.strategy": "MirroredStrategy", "distribute.replicas": str(max(1, _local_gpus()))}
    assert result.summary["epochs_run"] == 1


class _StopAfter(keras.callbacks.Callback):
    """Interrupts fit at the end of an epoch, as a kill would, before that epoch's backup."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise KeyboardInterrupt


def test_an_interrupted_training_resumes_to_the_uninterrupted_result(tmp_path):
    from imgclf.train.resume import Backup

    callbacks = CallbackParams(early_stopping=EarlyStoppingParams(enabled=True, patience=3))
    callbacks = dataclasses.replace(
        callbacks, reduce_lr=dataclasses.replace(callbacks.reduce_lr, enabled=True, patience=1),
        checkpoint=dataclasses.replace(callbacks.checkpoint, enabled=True))
    # every source of randomness and per-epoch state: shuffle, augmentation, dropout, the callbacks'
    params = TrainParams(hidden_units=(16,), epochs=5, batch_size=8, steps_per_execution=4, dropout=0.3,
                         callbacks=callbacks, augmentation=AugmentationParams(rotation=20, zoom=0.1, contrast=0.2))
    train, val = _data(learnable=False)

    def fit(backup=None, resume=None, extra=None):
        make_deterministic(5)
        return train_network(train, val, DataSpec(3), params, 5, FitOptions(tuple(extra or ()), backup, resume))

    whole = fit()
    backup = Backup(tmp_path / "backup", "key")
    with pytest.raises(KeyboardInterrupt):
        fit(backup, extra=[_StopAfter(3)])  # placed before the backup: epochs 1-2 are saved, not 3
    state = backup.load()
    assert state["epoch"] == 2 and len(state["rows"]) == 2
    assert Backup(tmp_path / "backup", "other key").load() is None  # a backup of another run is never used

    resumed = fit(backup, state)
    assert resumed.rows == whole.rows and resumed.summary == whole.summary
    for mine, theirs in zip(resumed.model.get_weights(), whole.model.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    # only the epochs after the backup were trained again (early stopping ended both at the same epoch)
    assert len(whole.rows) < params.epochs and resumed.samples_seen == len(train.y) * (len(whole.rows) - 2)


def test_each_epoch_draws_from_its_own_stream():
    from imgclf.train.callbacks import EpochRandomness

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dropout(0.5), keras.layers.Dense(2)])
    epoch = keras.Variable(0, dtype="int64", trainable=False)
    randomness = EpochRandomness(epoch)
    randomness.set_model(model)
    (state,) = [v for v in model.non_trainable_variables if v.path.endswith("seed_generator_state")]
    seed = int(state.numpy()[0])
    randomness.on_epoch_begin(3)
    assert int(epoch.numpy()) == 3 and state.numpy().tolist() == [seed, 3 << 32]


class _Console:
    """A stdout that is a terminal or not, keeping what is written to it."""

    def __init__(self, tty: bool) -> None:
        self.tty, self.text = tty, ""

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("tty", [True, False])
def test_fit_draws_a_progress_bar_on_a_terminal_and_one_line_per_epoch_elsewhere(monkeypatch, tty):
    import sys

    console = _Console(tty)
    monkeypatch.setattr(sys, "stdout", console)
    _train(epochs=2, batch_size=8, steps_per_execution=1)
    assert console.text.count("Epoch ") == 2
    # a bar is redrawn in place within the epoch (carriage returns); a log gets whole lines only
    assert ("\r" in console.text) == tty, repr(console.text[:300])
    if not tty:
        assert len([line for line in console.text.splitlines() if "/step" in line]) == 2
