import keras
import pytest

from imgclf.params import TrainParams
from imgclf.train.model import build_model, learning_rate, make_optimizer


def _layers(model, cls):
    return [layer for layer in model.layers if isinstance(layer, cls)]


def test_build_model_follows_hidden_units_and_activation():
    model = build_model((8, 8, 1), 10, TrainParams(hidden_units=(64, 32), activation="tanh"))
    assert [d.units for d in _layers(model, keras.layers.Dense)] == [64, 32, 10]
    assert [a.activation.__name__ for a in _layers(model, keras.layers.Activation)] == ["tanh", "tanh"]
    assert model.layers[-1].activation.__name__ == "softmax"
    assert model.input_shape == (None, 8, 8, 1)
    assert not _layers(model, keras.layers.Dropout)


def test_leaky_relu_alpha_dropout_and_l2():
    train = TrainParams(hidden_units=(16, 8), activation="leaky_relu", leaky_relu_alpha=0.1, dropout=0.25, l2=0.01)
    model = build_model((4, 4, 1), 3, train)
    assert [layer.negative_slope for layer in _layers(model, keras.layers.LeakyReLU)] == pytest.approx([0.1, 0.1])
    assert [d.rate for d in _layers(model, keras.layers.Dropout)] == [0.25, 0.25]
    assert all(d.kernel_regularizer.l2 == pytest.approx(0.01) for d in _layers(model, keras.layers.Dense))


@pytest.mark.parametrize(
    ("name", "cls"),
    [("sgd", keras.optimizers.SGD), ("adam", keras.optimizers.Adam), ("adamw", keras.optimizers.AdamW),
     ("rmsprop", keras.optimizers.RMSprop), ("adagrad", keras.optimizers.Adagrad)],
)
def test_optimizer_and_learning_rate_come_from_params(name, cls):
    optimizer = make_optimizer(TrainParams(optimizer=name, learning_rate=0.05))
    assert type(optimizer) is cls
    assert float(optimizer.learning_rate) == pytest.approx(0.05)


def test_sgd_momentum_and_nesterov():
    optimizer = make_optimizer(TrainParams(optimizer="sgd", momentum=0.9, nesterov=True))
    assert optimizer.momentum == pytest.approx(0.9) and optimizer.nesterov


def test_learning_rate_schedules_step_per_batch():
    exponential = learning_rate(TrainParams(lr_schedule="exponential", learning_rate=0.1, lr_decay_rate=0.5), 10)
    assert float(exponential(10)) == pytest.approx(0.05)  # one epoch = 10 steps
    cosine = learning_rate(TrainParams(lr_schedule="cosine", learning_rate=0.1, epochs=4), 10)
    assert float(cosine(0)) == pytest.approx(0.1) and float(cosine(40)) == pytest.approx(0.0, abs=1e-7)
    assert learning_rate(TrainParams(learning_rate=0.1), 10) == 0.1


def test_imagenet_weights_that_cannot_be_fetched_are_one_clear_line(tmp_path):
    """No network (a proxy on a closed port stands for it): the file Keras looks for, and weights: none."""
    import subprocess
    import sys

    from tests.conftest import PROJECT, free_ports
    from tests.dvc_project import env

    proxy = f"http://127.0.0.1:{free_ports()[0]}"  # nothing answers: as without network
    code = ("from imgclf.runtime import run_stage; from imgclf.train.model import build_transfer; "
            "from imgclf.params import TrainParams, TransferParams; "
            "run_stage(lambda: build_transfer((32, 32, 3), 3, "
            "TrainParams(model='transfer', transfer=TransferParams(backbone='mobilenet_v2'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env({
        "PYTHONPATH": str(PROJECT), "KERAS_HOME": str(tmp_path), "HTTPS_PROXY": proxy, "https_proxy": proxy}))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5" in line
    assert "~/.keras/models/" in line and "train.transfer.weights: none" in line
