"""Augmentation layers: which transforms are on, independent seeded draws, the preview grid."""

import keras
import numpy as np

from imgclf.augmentation import augmentation_preview, build_augmentation
from imgclf.params import AugmentationParams


def test_each_transform_draws_independently():
    images = np.zeros((512, 8, 8, 1), np.float32)
    rotation, zoom, shift = build_augmentation(AugmentationParams(rotation=30, zoom=0.2, shift=0.2), seed=7).layers
    angles = keras.ops.convert_to_numpy(rotation.get_random_transformation(images)["angle"])
    zooms = keras.ops.convert_to_numpy(zoom.get_random_transformation(images)["height_zoom"])[:, 0]
    shifts = keras.ops.convert_to_numpy(shift.get_random_transformation(images)["translations"])[:, 0]
    assert np.std(angles) > 0 and np.std(zooms) > 0 and np.std(shifts) > 0
    for a, b in ((angles, zooms), (angles, shifts), (zooms, shifts)):
        assert abs(np.corrcoef(a, b)[0, 1]) < 0.2
    # still a function of the seed alone
    again = build_augmentation(AugmentationParams(rotation=30), seed=7).layers[0]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(again.get_random_transformation(images)["angle"]), angles)


def test_flip_is_the_only_transform_turned_on():
    augment = build_augmentation(AugmentationParams(flip=True), seed=0)
    assert [type(layer).__name__ for layer in augment.layers] == ["RandomFlip"]
    assert build_augmentation(AugmentationParams(), seed=0) is None


def test_augmentation_preview_shape():
    images = np.random.default_rng(0).random((3, 4, 4, 1), dtype=np.float32)
    grid = augmentation_preview(images, AugmentationParams(rotation=20), seed=0, copies=2)
    assert grid.shape == (3, 3, 4, 4, 1)
    np.testing.assert_array_equal(grid[:, 0], images)
    assert augmentation_preview(images, AugmentationParams(), seed=0).shape == (3, 1, 4, 4, 1)
