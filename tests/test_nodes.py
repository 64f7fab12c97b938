"""What each hidden node sees: weight images in the input's (or the kernel's) shape, drawn blue for positive."""

import keras
import numpy as np
from matplotlib.colors import to_rgb

from imgclf.params import CnnParams, TrainParams
from imgclf.plots import ORANGE_BLUE, nodes_figure
from imgclf.train.model import build_model
from imgclf.train.nodes import SHOWN, node_images, strongest_units


def test_an_mlp_shows_its_16_strongest_units_in_the_inputs_shape():
    model = build_model((8, 8, 1), 10, TrainParams(hidden_units=(40, 12)))
    dense = model.layers[2]
    kernel = keras.ops.convert_to_numpy(dense.kernel)
    kernel[:, 7] *= 100  # unit 7 the strongest, unit 3 the next
    kernel[:, 3] *= 50
    dense.kernel.assign(kernel)
    nodes = node_images(model)
    assert nodes.layer == "dense" and nodes.images.shape == (SHOWN, 8, 8)
    assert list(nodes.units[:2]) == [7, 3]
    assert np.allclose(nodes.images[0], kernel[:, 7].reshape(8, 8))  # pixel (r, c) is the weight from that pixel


def test_fewer_units_than_16_are_all_shown_and_rgb_weights_are_summed_per_pixel():
    model = build_model((6, 5, 3), 2, TrainParams(hidden_units=(5,)))
    nodes = node_images(model)
    kernel = keras.ops.convert_to_numpy(model.layers[2].kernel).reshape(6, 5, 3, 5)
    assert nodes.images.shape == (5, 6, 5)
    assert sorted(nodes.units) == list(range(5))
    assert np.allclose(nodes.images[0], kernel[..., nodes.units[0]].sum(axis=-1))


def test_a_cnn_shows_its_first_convolutions_filters():
    model = build_model((12, 12, 3), 3, TrainParams(model="cnn", cnn=CnnParams(filters=(20, 8), kernel_size=5)))
    nodes = node_images(model)
    assert nodes.layer == "conv" and nodes.images.shape == (SHOWN, 5, 5)
    first = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    kernel = keras.ops.convert_to_numpy(first.kernel).sum(axis=2)  # (5, 5, 20)
    assert np.allclose(nodes.images, np.moveaxis(kernel, -1, 0)[nodes.units])


def test_strongest_units_rank_by_l2_norm_with_ties_in_index_order():
    weights = np.array([[1.0, 0.0], [0.0, -3.0], [3.0, 0.0], [2.0, 2.0]])
    assert list(strongest_units(weights, 3)) == [1, 2, 3]


def test_the_colour_map_draws_positive_blue_negative_orange_and_zero_white():
    red, green, blue = ORANGE_BLUE(1.0)[:3]
    assert blue > 0.6 and blue > red + 0.4
    red, green, blue = ORANGE_BLUE(0.0)[:3]
    assert red > 0.9 and red > blue + 0.5
    assert np.allclose(ORANGE_BLUE(0.5)[:3], 1, atol=0.01)


def test_the_figure_centres_its_colours_on_zero_with_one_symmetric_limit():
    images = np.zeros((3, 4, 4))
    images[0, 0, 0], images[1, 1, 1] = 2.0, -0.5
    fig = nodes_figure(images, ["a", "b", "c"], "title")
    shown = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(shown) == 3
    assert all(image.norm.vmin == -2.0 and image.norm.vmax == 2.0 for image in shown)
    assert np.allclose(shown[0].to_rgba(2.0)[:3], ORANGE_BLUE(1.0)[:3])  # the largest weight: the bluest
    assert np.allclose(shown[0].to_rgba(0.0)[:3], to_rgb("white"), atol=0.01)
