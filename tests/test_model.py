import keras
import numpy as np
import pytest

from imgclf.model import build_model, compile_model, make_optimizer
from imgclf.params import TrainParams
from imgclf.training import fit_model, make_deterministic


def test_build_model_follows_hidden_units_and_activation():
    model = build_model((8, 8, 1), 10, TrainParams(hidden_units=(64, 32), activation="tanh"))
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [d.units for d in dense] == [64, 32, 10]
    assert [d.activation.__name__ for d in dense] == ["tanh", "tanh", "softmax"]
    assert model.input_shape == (None, 8, 8, 1)


@pytest.mark.parametrize(
    ("name", "cls"),
    [("sgd", keras.optimizers.SGD), ("adam", keras.optimizers.Adam),
     ("rmsprop", keras.optimizers.RMSprop), ("adagrad", keras.optimizers.Adagrad)],
)
def test_optimizer_and_learning_rate_come_from_params(name, cls):
    optimizer = make_optimizer(TrainParams(optimizer=name, learning_rate=0.05))
    assert isinstance(optimizer, cls)
    assert float(optimizer.learning_rate) == pytest.approx(0.05)


def test_sgd_momentum():
    assert make_optimizer(TrainParams(optimizer="sgd", momentum=0.9)).momentum == pytest.approx(0.9)


def _train_once(seed: int) -> tuple[list[dict], list[np.ndarray]]:
    make_deterministic(seed)
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 4, 4, 1), dtype=np.float32), rng.integers(0, 3, 64)
    model = compile_model(build_model((4, 4, 1), 3, TrainParams(hidden_units=(8,))), TrainParams())
    rows = fit_model(model, (x[:48], y[:48]), (x[48:], y[48:]), batch_size=8, epochs=3)
    return rows, model.get_weights()


def test_training_is_deterministic_for_a_seed():
    rows_a, weights_a = _train_once(seed=5)
    rows_b, weights_b = _train_once(seed=5)
    rows_c, weights_c = _train_once(seed=6)
    assert rows_a == rows_b
    assert all(np.array_equal(a, b) for a, b in zip(weights_a, weights_b))
    assert not np.array_equal(weights_a[0], weights_c[0])
    assert [r["epoch"] for r in rows_a] == [1, 2, 3]
    assert set(rows_a[0]) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy"}
