"""Random transforms of training images, as Keras preprocessing layers, each with its own seed.

Keras (and with it TensorFlow) is imported only when a transform is on: logreg's preview, and any
preview without augmentation, shows the images as they are without importing it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from imgclf.params import AugmentationParams

if TYPE_CHECKING:
    import keras

# Each transform draws from its own stream. One shared integer seed would start every layer's
# stream at the same point, so rotation, zoom, shift, flip and contrast would move together.
_TRANSFORMS = ("rotation", "zoom", "shift", "flip", "contrast")


def transform_seed(seed: int, transform: str) -> int:
    """A seed of its own for one transform, derived from the run's seed (stable when others are toggled)."""
    return int(np.random.SeedSequence([seed, _TRANSFORMS.index(transform)]).generate_state(1)[0])


def build_augmentation(aug: AugmentationParams, seed: int, max_value: float = 1.0) -> keras.Sequential | None:
    """Keras preprocessing layers for the enabled transforms, or None when all are off.

    They work on pixels as stored, 0..max_value (1 / pixel_scale), before the model's normalization.
    """
    if not aug.enabled:
        return None
    import keras

    fill = {"fill_mode": aug.fill, "fill_value": 0.0}
    layers = []
    if aug.rotation:
        layers.append(keras.layers.RandomRotation(aug.rotation / 360.0, seed=transform_seed(seed, "rotation"),
                                                  **fill))
    if aug.zoom:
        layers.append(keras.layers.RandomZoom(aug.zoom, seed=transform_seed(seed, "zoom"), **fill))
    if aug.shift:
        layers.append(keras.layers.RandomTranslation(aug.shift, aug.shift, seed=transform_seed(seed, "shift"), **fill))
    if aug.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=transform_seed(seed, "flip")))
    if aug.contrast:
        layers.append(keras.layers.RandomContrast(aug.contrast, value_range=(0, max_value),
                                                  seed=transform_seed(seed, "contrast")))
    return keras.Sequential(layers, name="augmentation") if layers else None


def preview_rows(labels: np.ndarray, count: int) -> np.ndarray:
    """Row numbers of `count` training images, one of each class in turn (a split in class order would
    otherwise show its first class alone)."""
    labels = np.asarray(labels)
    by_class = [np.flatnonzero(labels == c)[:count] for c in np.unique(labels)]
    order = [rows[i] for i in range(max(map(len, by_class), default=0)) for rows in by_class if i < len(rows)]
    return np.asarray(order[:count], dtype=np.int64)


def augmentation_preview(images: np.ndarray, aug: AugmentationParams, seed: int, pixel_scale: float = 1.0,
                         copies: int = 4) -> np.ndarray:
    """N x (1 + copies) x H x W x C in [0, 1]: each image, then augmented versions (none when augmentation is off)."""
    augment = build_augmentation(aug, seed, 1 / pixel_scale)
    images = images.astype(np.float32)
    versions = [images]
    if augment is not None:
        import keras

        versions += [keras.ops.convert_to_numpy(augment(images, training=True)) for _ in range(copies)]
    return np.clip(np.stack(versions, axis=1) * np.float32(pixel_scale), 0, 1)
