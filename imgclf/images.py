"""Image files to model input: one conversion and resize, shared by preprocess (hence evaluate), predict and serving."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
import simplejpeg
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

    An RGB or gray JPEG is decoded straight at the smallest of libjpeg-turbo's M/8 scales that
    still covers the target (3/8 for a 400x533 photo to 150x150): the decoder skips detail the
    resize would discard anyway, and the resize has less to do. Anything else goes through Pillow.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:  # reads the header alone: format, size (bomb check), EXIF
                decoded = _decode_jpeg(image, max(size), channels)
                image = decoded if decoded is not None else _decode(image, max(size), channels)
                pixels = np.asarray(image.resize((size[1], size[0]), Image.Resampling.BILINEAR), dtype=np.uint8)
    except FileNotFoundError:
        raise BadImageError(f"image {path} does not exist") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, SyntaxError) as exc:
        name = getattr(path, "name", path)  # a file object's name says which of many it is
        raise BadImageError(f"cannot read {name} as an image ({exc})") from None
    return pixels[..., np.newaxis] if channels == 1 else pixels


def _decode_jpeg(image: Image.Image, side: int, channels: int) -> Image.Image | None:
    """An RGB or gray JPEG decoded by libjpeg-turbo at the smallest M/8 scale with both sides at
    least `side` (square: the EXIF rotation may swap them), then turned upright; None for any
    other file, or one the decoder flags, which Pillow then decodes (and judges) as before."""
    if image.format not in ("JPEG", "MPO") or image.mode not in ("RGB", "L"):  # MPO: a phone's JPEG + extras
        return None
    image.fp.seek(0)  # where Image.open read the file from, and where Pillow's own decode seeks again
    try:
        pixels = simplejpeg.decode_jpeg(image.fp.read(), "GRAY" if channels == 1 else "RGB",
                                        min_height=side, min_width=side)
    except ValueError:
        return None
    decoded = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
    decoded.info = dict(image.info)  # the file's EXIF and XMP: Pillow's orientation, read as on its own path
    return ImageOps.exif_transpose(decoded)


def _decode(image: Image.Image, side: int, channels: int) -> Image.Image:
    """Any format Pillow reads; a JPEG at 1/2, 1/4 or 1/8 of its size where that still covers `side`."""
    image.draft(None, (side, side))
    image.load()
    return _to_8bit(ImageOps.exif_transpose(image), channels)


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
