import keras
import numpy as np
import pytest

from imgclf.evaluate.scoring import export_onnx
from imgclf.params import CnnParams, TrainParams
from imgclf.train.model import BATCH_NORM_MOMENTUM, build_model, learning_rate, make_optimizer


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


def _photo_cnn(**cnn):
    return build_model((64, 64, 3), 10, TrainParams(model="cnn", cnn=CnnParams(**cnn)), pixel_scale=1 / 255)


def test_the_default_cnn_is_plain_then_depthwise_separable_with_batch_norm_and_global_pooling():
    model = _photo_cnn()
    convs = [layer for layer in model.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.SeparableConv2D))]
    assert [type(c) for c in convs] == [keras.layers.Conv2D] * 2 + [keras.layers.SeparableConv2D] * 6
    assert [c.filters for c in convs] == [32, 32, 64, 64, 128, 128, 256, 256]
    assert not any(c.use_bias for c in convs)  # each is followed by a batch normalization, whose offset is the bias
    norms = _layers(model, keras.layers.BatchNormalization)
    assert len(norms) == 8 and {n.momentum for n in norms} == {BATCH_NORM_MOMENTUM}
    # the head: global pooling, dropout, the softmax layer and nothing else
    assert [type(layer) for layer in model.layers[-3:]] == [
        keras.layers.GlobalAveragePooling2D, keras.layers.Dropout, keras.layers.Dense]
    assert model.layers[-2].rate == 0.3 and model.layers[-1].units == 10
    # separable blocks are what keeps the network small for a few thousand photos
    assert model.count_params() * 5 < _photo_cnn(separable=False).count_params()


def test_the_textbook_cnn_is_one_switch_each_away():
    model = _photo_cnn(filters=(32, 64), separable=False, batch_norm=False, global_pooling=False, dense_units=(128,))
    convs = _layers(model, keras.layers.Conv2D)
    assert len(convs) == 4 and all(c.use_bias and c.activation is keras.activations.relu for c in convs)
    assert not _layers(model, keras.layers.BatchNormalization) and not _layers(model, keras.layers.SeparableConv2D)
    assert _layers(model, keras.layers.Flatten) and [d.units for d in _layers(model, keras.layers.Dense)] == [128, 10]


def test_the_default_cnn_exports_to_onnx_with_keras_probabilities():
    """Evaluate, predict and the server score the ONNX copy: the default network must survive the export."""
    x = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3)).astype(np.uint8)
    onnx, note = export_onnx(_photo_cnn(), x)
    assert onnx is not None, note
