"""Photo files to a trained model's top classes: the one conversion predict and the served model share."""

from __future__ import annotations

import numpy as np

from imgclf.data.images import PIXEL_SCALE, load_image
from imgclf.errors import PipelineError
from imgclf.evaluate.scoring import Scorer, predict_proba
from imgclf.records import ServingInfo


def top_classes(probs: np.ndarray, class_names: list[str], k: int) -> list[tuple[str, float]]:
    """The k most probable classes with their probabilities, best first."""
    order = np.argsort(-probs, kind="stable")[:k]
    return [(class_names[i], float(probs[i])) for i in order]


def check_pixel_scale(serving: ServingInfo) -> None:
    """A model that records no pixel_scale takes [0, 1] pixels, which no image file gives: refused."""
    if serving.pixel_scale is None:
        raise PipelineError("this model's model.json records no pixel_scale: the model takes pixels scaled to "
                            "[0, 1], not pixels as stored (8-bit) as predict gives them; retrain it with "
                            "dvc repro --force train")


def prepare_image(serving: ServingInfo, image) -> np.ndarray:
    """One image file (a path or a file object) as the model's input row, converted exactly as the training
    images were; a file that is no readable image raises BadImageError (a PipelineError)."""
    check_pixel_scale(serving)
    height, width, channels = serving.input_shape
    pixels = load_image(image, (height, width), channels)
    if serving.pixel_scale != PIXEL_SCALE:
        # A model of other stored pixels (digits: 0..16) gets the file's 0..255 on its own scale.
        pixels = pixels.astype(np.float32) * np.float32(PIXEL_SCALE / serving.pixel_scale)
    return pixels


def prepare_batch(serving: ServingInfo, images: list) -> np.ndarray:
    """Image files (paths or file objects) as the model's input, converted exactly as the training images were."""
    check_pixel_scale(serving)
    return np.stack([prepare_image(serving, image) for image in images])


def predict_files(score: Scorer, serving: ServingInfo, paths: list[str],
                  k: int) -> dict[str, list[tuple[str, float]]]:
    """Top-k classes for each image file, prepared exactly as the training images were."""
    probs = predict_proba(score, prepare_batch(serving, paths))
    return {path: top_classes(row, serving.class_names, k) for path, row in zip(paths, probs)}
