"""Image files to model input: one conversion and resize, shared by preprocess (hence evaluate), predict and serving."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import cv2
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
    """decode_image without Pillow's warning for a large photo (one thread; preprocess's threads
    call decode_image inside one quiet_bomb_warnings)."""
    with quiet_bomb_warnings():
        return decode_image(path, size, channels)


def decode_image(path: str | Path | BinaryIO, size: tuple[int, int], channels: int) -> np.ndarray:
    """Read an image (a file, or its bytes in a file object) as H x W x C uint8: EXIF orientation applied,
    alpha on white, resized (resize).

    An RGB or gray JPEG is decoded straight at the smallest of libjpeg-turbo's M/8 scales that
    still covers the target (3/8 for a 400x533 photo to 150x150): the decoder skips detail the
    resize would discard anyway, and the resize has less to do. Anything else goes through Pillow.
    """
    try:
        pixels = _load_plain_jpeg(path, size, channels) if isinstance(path, (str, Path)) else None
        if pixels is not None:
            return pixels
        with Image.open(path) as image:  # reads the header alone: format, size (bomb check), EXIF
            decoded = _decode_jpeg(image, max(size), channels)
            image = decoded if decoded is not None else _decode(image, max(size), channels)
            pixels = resize(np.asarray(image), size)
    except FileNotFoundError:
        raise BadImageError(f"image {path} does not exist") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, SyntaxError,
            cv2.error) as exc:
        name = getattr(path, "name", path)  # a file object's name says which of many it is
        raise BadImageError(f"cannot read {name} as an image ({exc})") from None
    return pixels[..., np.newaxis] if channels == 1 else pixels


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


def _load_plain_jpeg(path: str | Path, size: tuple[int, int], channels: int) -> np.ndarray | None:
    """A JPEG file with nothing to turn upright (no EXIF or XMP), decoded by libjpeg-turbo without
    Pillow's header parsing, to the same pixels as the path through Pillow; None for any other file,
    which that path then decodes (and judges).

    Pillow's JPEG header parser, in Python, took 65 us of the 1.1 ms a photo took, and held the GIL.
    """
    with open(path, "rb") as f:
        head = f.read(_HEADER_BYTES)  # a large file that is no JPEG is not read whole
        frame = _plain_jpeg_frame(head)
        if frame is None:
            return None
        data = head + f.read()
    height, width = frame
    if Image.MAX_IMAGE_PIXELS is not None and height * width > Image.MAX_IMAGE_PIXELS:
        return None  # Pillow's decompression-bomb check applies
    try:
        pixels = simplejpeg.decode_jpeg(data, "GRAY" if channels == 1 else "RGB",
                                        min_height=max(size), min_width=max(size))
    except ValueError:
        return None
    return resize(pixels, size)


# Room for a JPEG's markers before its first scan (EXIF thumbnails and ICC profiles included).
_HEADER_BYTES = 64 * 1024
# Start of frame: baseline, extended and progressive Huffman-coded frames, which libjpeg-turbo decodes.
_PLAIN_FRAMES = {0xC0, 0xC1, 0xC2}
_APP1 = 0xE1  # EXIF or XMP, either of which may hold an orientation
_SCAN = 0xDA


def _plain_jpeg_frame(head: bytes) -> tuple[int, int] | None:
    """(height, width) of an 8-bit gray or YCbCr/RGB JPEG without APP1 segments, from its markers up to
    the first scan; None for anything else (another format, CMYK, an orientation to apply, odd markers)."""
    if head[:3] != b"\xff\xd8\xff":
        return None
    pos, frame = 2, None
    while pos + 4 <= len(head):
        if head[pos] != 0xFF:
            return None
        marker = head[pos + 1]
        if marker == 0xFF:  # a fill byte before the marker
            pos += 1
            continue
        if marker == _SCAN:
            return frame
        length = int.from_bytes(head[pos + 2:pos + 4], "big")
        if marker == _APP1 or 0xD0 <= marker <= 0xD9 or marker == 0x01:
            return None
        if 0xE0 <= marker <= 0xEF and not _plain_app_segment(marker, head[pos + 4:pos + 2 + length], length):
            return None
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a frame; C4, C8, CC are not
            if marker not in _PLAIN_FRAMES or frame is not None or pos + 10 > len(head):
                return None
            precision, components = head[pos + 4], head[pos + 9]
            height, width = int.from_bytes(head[pos + 5:pos + 7], "big"), int.from_bytes(head[pos + 7:pos + 9], "big")
            if precision != 8 or components not in (1, 3) or not height or not width:
                return None
            frame = (height, width)
        pos += 2 + length
    return None


# The APPn segments a plain photo carries, by marker: what each starts with, and the shortest length
# (with its 2 length bytes) Pillow's parser reads without failing. Any other APPn goes to Pillow.
_APP_SEGMENTS = {0xE0: (b"JFIF\0", 16), 0xE2: (b"ICC_PROFILE\0", 16), 0xEE: (b"Adobe", 14)}


def _plain_app_segment(marker: int, payload: bytes, length: int) -> bool:
    start, shortest = _APP_SEGMENTS.get(marker, (None, 0))
    return start is not None and payload.startswith(start) and length >= shortest


def resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """H x W (x C) uint8 pixels to `size`, C kept.

    Bilinear (OpenCV's INTER_LINEAR) while each output pixel spans at most 2 source pixels a side,
    so that every source pixel counts: a JPEG photo after the decoder's M/8 scale (150x200 to
    150x150), or a small image enlarged. Beyond that, where bilinear would skip source pixels
    (and alias), each output pixel is the mean of the area it covers (INTER_AREA, 2.5x the time);
    a side that grows meanwhile is enlarged bilinearly after (INTER_AREA averages only where both
    sides shrink).

    OpenCV resizes the NumPy array itself and releases the GIL; Pillow's resize needs copies into
    and out of its own image type that hold it, so in two decoding threads it ran 1.26x faster
    than in one, against OpenCV's 1.9x.
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
