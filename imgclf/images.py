"""Image files to model input: one conversion and resize, shared by preprocess (hence evaluate) and predict."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from imgclf.errors import PipelineError

# Whatever the file's mode, a pixel becomes 8-bit gray or RGB the same way everywhere.
_HIGH_DEPTH = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I": 65535.0, "F": 1.0}


class BadImageError(PipelineError):
    """A file that cannot be decoded as an image."""


# 8-bit pixels as the model takes them; its first layer multiplies by this.
PIXEL_SCALE = 1 / 255


def load_image(path: str | Path | BinaryIO, size: tuple[int, int], channels: int) -> np.ndarray:
    """Read an image (a file, or its bytes in a file object) as H x W x C uint8: EXIF orientation applied,
    alpha on white, resized.

    A JPEG is decoded at 1/2, 1/4 or 1/8 of its size when that is still at least the target
    size (the decoder skips detail the resize would discard anyway, 2-3x faster).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                # Square request: the EXIF rotation, applied after decoding, may swap the sides.
                image.draft(None, (max(size), max(size)))
                image.load()
                image = _to_8bit(ImageOps.exif_transpose(image), channels)
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                pixels = np.asarray(image, dtype=np.uint8)
    except FileNotFoundError:
        raise BadImageError(f"image {path} does not exist") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, SyntaxError) as exc:
        name = getattr(path, "name", path)  # a file object's name says which of many it is
        raise BadImageError(f"cannot read {name} as an image ({exc})") from None
    return pixels[..., np.newaxis] if channels == 1 else pixels


def _to_8bit(image: Image.Image, channels: int) -> Image.Image:
    if image.mode in _HIGH_DEPTH:
        # PIL clips 16-bit values when converting to 8-bit; scale them instead.
        scaled = np.asarray(image, dtype=np.float64) / _HIGH_DEPTH[image.mode] * 255.0
        image = Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        # Transparent areas become white, as a photo on a web page shows them.
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("L" if channels == 1 else "RGB")
