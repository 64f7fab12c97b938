"""Image files to model input: one conversion and resize, shared by preprocess (hence evaluate), predict and serving."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from imgclf.data import jpeg
from imgclf.errors import PipelineError

# Whatever the file's mode, a pixel becomes 8-bit gray or RGB the same way everywhere.
_HIGH_DEPTH = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I": 65535.0, "F": 1.0}


class BadImageError(PipelineError):
    """A file that cannot be decoded as an image."""


# 8-bit pixels as the model takes them; its first layer multiplies by this.
PIXEL_SCALE = 1 / 255


def load_image(path: str | Path | BinaryIO, size: tuple[int, int], channels: int) -> np.ndarray:
    """decode_image without Pillow's warning for a large photo (one thread; preprocess's threads
    call decode_image inside one quiet_bomb_warnings)."""
    with quiet_bomb_warnings():
        return decode_image(path, size, channels)


def decode_image(path: str | Path | BinaryIO, size: tuple[int, int], channels: int) -> np.ndarray:
    """Read an image (a file, or its bytes in a file object) as H x W x C uint8: EXIF orientation applied,
    alpha on white, resized (resize)."""
    return decode_image_sized(path, size, channels)[0]


def decode_image_sized(path: str | Path | BinaryIO, size: tuple[int, int],
                       channels: int) -> tuple[np.ndarray, tuple[int, int]]:
    """decode_image, and the original's (height, width), upright.

    An RGB or gray JPEG is decoded straight at the smallest of libjpeg-turbo's M/8 scales that
    still covers the target (3/8 for a 400x533 photo to 150x150): the decoder skips detail the
    resize would discard anyway, and the resize has less to do. Anything else goes through Pillow.
    """
    try:
        plain = jpeg.decode_plain_file(path, max(size), channels) if isinstance(path, (str, Path)) else None
        if plain is not None:
            pixels, original = plain
        else:
            with Image.open(path) as image:  # reads the header alone: format, size (bomb check), EXIF
                width, height = image.size
                decoded = jpeg.decode_reduced(image, max(size), channels)
                pixels = np.asarray(decoded if decoded is not None else _decode(image, max(size), channels))
            # the stored size, turned as EXIF turned the pixels (a quarter turn swaps the sides)
            turned = (pixels.shape[0] > pixels.shape[1]) != (height > width) and pixels.shape[0] != pixels.shape[1]
            original = (width, height) if turned else (height, width)
        pixels = resize(pixels, size)
    except FileNotFoundError:
        raise BadImageError(f"image {path} does not exist") from None
    except UnidentifiedImageError:  # Pillow's own message names a file object by its repr (its memory address)
        raise BadImageError(f"cannot read {getattr(path, 'name', path)} as an image "
                            "(cannot identify its format: not an image file)") from None
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError, cv2.error) as exc:
        name = getattr(path, "name", path)  # a file object's name says which of many it is
        raise BadImageError(f"cannot read {name} as an image ({exc})") from None
    pixels = pixels[..., np.newaxis] if pixels.ndim == 2 else pixels  # gray through Pillow: H x W
    return pixels, (int(original[0]), int(original[1]))


@contextlib.contextmanager
def quiet_bomb_warnings() -> Iterator[None]:
    """Pillow's warning for a photo over its pixel limit (under twice it, still decoded) kept out of
    the output, while open, decoded and resized alike (TIFF, GIF and MPO warn while loading).

    catch_warnings swaps the process's one list of filters, so it is entered once, by the thread
    that starts the decoding threads, not by each decode.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """H x W (x C) uint8 pixels to `size`, C kept.

    Bilinear (OpenCV's INTER_LINEAR) while each output pixel spans at most 2 source pixels a side,
    so that every source pixel counts: a JPEG photo after the decoder's M/8 scale (150x200 to
    150x150), or a small image enlarged. Beyond that, where bilinear would skip source pixels
    (and alias), each output pixel is the mean of the area it covers (INTER_AREA, slower, so only
    where it is needed); a side that grows meanwhile is enlarged bilinearly after (INTER_AREA
    averages only where both sides shrink).

    OpenCV resizes the NumPy array itself with the GIL released, so preprocess's decoding threads
    resize in parallel; Pillow's resize needs copies into and out of its own image type that hold
    the GIL.
    """
    height, width = pixels.shape[:2]
    resized = pixels
    if max(height / size[0], width / size[1]) > 2:
        shrunk = (min(height, size[0]), min(width, size[1]))
        resized = cv2.resize(resized, shrunk[::-1], interpolation=cv2.INTER_AREA)
    if resized.shape[:2] != tuple(size):
        resized = cv2.resize(resized, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    elif resized is pixels:
        resized = pixels.copy()  # a new, writable array, as a resize gives (Pillow's arrays are read-only)
    return resized.reshape(*size, *pixels.shape[2:])


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
