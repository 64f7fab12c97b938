"""Augmentation layers: which transforms are on, independent seeded draws, the preview grid."""

import keras
import numpy as np
import pytest

from imgclf.params import AugmentationParams
from imgclf.train.augmentation import augmentation_preview, build_augmentation


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


def test_augmentation_preview_shape_and_unit_range_from_8_bit_pixels():
    images = np.random.default_rng(0).integers(0, 256, (3, 4, 4, 1), dtype=np.uint8)
    grid = augmentation_preview(images, AugmentationParams(rotation=20, contrast=0.5), seed=0, pixel_scale=1 / 255,
                                copies=2)
    assert grid.shape == (3, 3, 4, 4, 1) and 0 <= grid.min() and grid.max() <= 1
    np.testing.assert_allclose(grid[:, 0], images / 255, atol=1e-6)
    assert augmentation_preview(images, AugmentationParams(), seed=0).shape == (3, 1, 4, 4, 1)


def test_contrast_works_on_the_stored_pixel_range():
    """On 0..255 pixels, contrast must not clip to [0, 1] (it would turn the image black and white)."""
    images = np.full((4, 6, 6, 1), 100, np.float32)
    images[:, :3] = 200
    augment = build_augmentation(AugmentationParams(contrast=0.3), seed=1, max_value=255)
    out = keras.ops.convert_to_numpy(augment(images, training=True))
    assert out.max() > 150 and 0 <= out.min() and out.max() <= 255


def test_the_preview_shows_each_class_in_turn():
    from imgclf.train.augmentation import preview_rows

    labels = np.array([0] * 50 + [1] * 3 + [2] * 50)  # a split in class order
    assert preview_rows(labels, 6).tolist() == [0, 50, 53, 1, 51, 54]
    assert preview_rows(np.array([1, 1]), 6).tolist() == [0, 1]  # fewer images than asked: all of them


@pytest.mark.parametrize(("fill", "corner_is_black"), [("constant", True), ("reflect", False)])
def test_fill_decides_what_a_shift_uncovers(fill, corner_is_black):
    """A white image shifted by half its width: black uncovered pixels, or the image mirrored into them."""
    augment = build_augmentation(AugmentationParams(shift=0.5, fill=fill), seed=3, max_value=255.0)
    shifted = np.stack([keras.ops.convert_to_numpy(augment(np.full((1, 16, 16, 1), 255.0, np.float32),
                                                           training=True))[0] for _ in range(8)])
    uncovered = (shifted < 1).mean()
    assert (uncovered > 0.05) if corner_is_black else (uncovered == 0)
