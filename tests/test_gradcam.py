"""Grad-CAM on small networks: the heatmap lies where the classes differ."""

import keras
import numpy as np
import pytest

from imgclf.params import CnnParams, TrainParams
from imgclf.train.gradcam import grad_cam, last_conv_index
from imgclf.train.model import build_model
from imgclf.train.nodes import CONV_TYPES

SIZE = 16


def _quadrant_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise images of two classes that differ only in the top-left quadrant: class 1 has a bright square there."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 0.5, size=(n, SIZE, SIZE, 1)).astype(np.float32)
    y = np.arange(n) % 2
    x[y == 1, 2:6, 2:6] += 0.5
    return x, y


def _tiny_cnn() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((SIZE, SIZE, 1)),
                              keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
                              keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
                              keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_the_heatmap_lies_in_the_quadrant_that_tells_the_classes_apart():
    model = _tiny_cnn()
    x, y = _quadrant_data(200, seed=0)
    model.fit(x, y, epochs=15, batch_size=20, verbose=0)
    x_new, y_new = _quadrant_data(20, seed=1)
    assert (model.predict(x_new, verbose=0).argmax(axis=1) == y_new).mean() == 1.0
    heatmaps = grad_cam(model, x_new[y_new == 1], np.ones(10, int))
    assert heatmaps.shape == (10, SIZE, SIZE)
    assert heatmaps.min() >= 0 and np.allclose(heatmaps.reshape(10, -1).max(axis=1), 1)
    half = SIZE // 2
    share = heatmaps[:, :half, :half].sum(axis=(1, 2)) / heatmaps.sum(axis=(1, 2))
    assert share.min() > 0.6, share  # a quarter of the image, well over half of every heatmap's mass


def test_the_last_convolution_is_found_by_type_in_the_projects_cnn():
    model = build_model((12, 12, 1), 3, TrainParams(model="cnn", cnn=CnnParams(filters=(4, 8), dense_units=(8,))),
                        pixel_scale=1 / 255)
    index = last_conv_index(model)
    convs = [i for i, layer in enumerate(model.layers) if isinstance(layer, CONV_TYPES)]
    # the last convolution's maps after its batch normalization and ReLU, before the pooling
    assert [type(layer) for layer in model.layers[convs[-1]:index + 2]] == [
        keras.layers.SeparableConv2D, keras.layers.BatchNormalization, keras.layers.Activation,
        keras.layers.MaxPooling2D]
    heatmaps = grad_cam(model, np.random.default_rng(0).integers(0, 256, (3, 12, 12, 1)), np.array([0, 1, 2]))
    assert heatmaps.shape == (3, 12, 12) and np.all((heatmaps >= 0) & (heatmaps <= 1))


def test_a_model_without_a_convolution_is_refused():
    model = build_model((4, 4, 1), 2, TrainParams(hidden_units=(4,)))
    assert last_conv_index(model) is None
    with pytest.raises(ValueError, match="needs a convolution"):
        grad_cam(model, np.zeros((1, 4, 4, 1)), np.array([0]))


def test_a_transfer_model_is_explained_through_its_backbone_and_drawn_in_colour():
    from imgclf.artifacts import png_bytes
    from imgclf.params import TransferParams
    from imgclf.plots import gradcam_figure

    train = TrainParams(model="transfer", transfer=TransferParams(backbone="mobilenet_v2", weights="none"))
    model = build_model((32, 32, 3), 2, train, pixel_scale=1 / 255)
    assert isinstance(model.layers[last_conv_index(model)], keras.Model)  # the backbone: its convolutions inside
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype(np.uint8)
    heatmaps = grad_cam(model, images, np.array([1, 0]))
    assert heatmaps.shape == (2, 32, 32) and np.all((heatmaps >= 0) & (heatmaps <= 1))
    png = png_bytes(gradcam_figure(images / 255, heatmaps, ["a", "b"]))
    assert png.startswith(b"\x89PNG") and b"matplotlib" not in png.lower()


def test_a_residual_network_is_explained_through_its_own_graph():
    inputs = keras.Input((8, 8, 1))
    a = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    b = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="second")(a)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([a, b]))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    assert model.layers[last_conv_index(model)].name == "second"
    heatmaps = grad_cam(model, np.random.default_rng(0).uniform(size=(2, 8, 8, 1)), np.array([2, 0]))
    assert heatmaps.shape == (2, 8, 8) and np.all((heatmaps >= 0) & (heatmaps <= 1))


def test_on_small_images_the_heatmap_comes_from_the_last_maps_still_large_enough_to_show_a_place():
    """The default cnn pools 8x8 digits down to 1x1 by its last block: a 1x1 map is one flat heatmap."""
    model = build_model((8, 8, 1), 3, TrainParams(model="cnn", cnn=CnnParams(filters=(4, 8, 8, 8))))
    index = last_conv_index(model)
    assert model.layers[index].output.shape[1:3] == (4, 4)  # the second block's; the third and fourth are 2x2, 1x1
    assert isinstance(model.layers[index], keras.layers.Activation)
    assert [i for i, layer in enumerate(model.layers) if isinstance(layer, CONV_TYPES)][3] < index < [
        i for i, layer in enumerate(model.layers) if isinstance(layer, CONV_TYPES)][4]
    heatmaps = grad_cam(model, np.random.default_rng(1).integers(0, 17, (4, 8, 8, 1)), np.array([0, 1, 2, 0]))
    assert heatmaps.shape == (4, 8, 8)
