"""JPEG photos decoded by libjpeg-turbo (simplejpeg) straight at a reduced scale: the speed trick of
the photo path, in one place.

libjpeg-turbo decodes a JPEG at M/8 of its size (M = 1..8) for little more than the entropy decoding
every scale pays: the decoder skips detail the resize to data.image_size would discard anyway, and the
resize has less to do. `decode_reduced` does it for a file Pillow has opened (its header read, EXIF
applied after, as Pillow's own path does). `decode_plain_file` goes further for the common case, a
plain JPEG file with no orientation to apply: it reads the markers itself, so Pillow's header parser,
which runs in Python and holds the GIL, stays out of the decoding threads.

Invariants: both give the pixels Pillow's path would give at that scale (tests/test_images.py holds
them to it); anything they do not recognise (another format, CMYK, arithmetic coding, an APP1 segment,
odd markers, a file the decoder flags) returns None and goes through Pillow, which decodes or judges
it. Written against simplejpeg 1.9 and Pillow 13 (pinned in requirements.txt). IMGCLF_JPEG_FAST_PATH=0
turns the marker parser off, to measure what it buys (benchmarks/ab_stage.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import simplejpeg
from PIL import Image, ImageOps

from imgclf import switches


def fast_path_enabled() -> bool:
    return switches.on("IMGCLF_JPEG_FAST_PATH")


def decode_plain_file(path: str | Path, side: int, channels: int) -> tuple[np.ndarray, tuple[int, int]] | None:
    """A JPEG file with nothing to turn upright (no EXIF or XMP), decoded by libjpeg-turbo at the
    smallest M/8 scale with both sides at least `side`, without Pillow's header parser: the same
    pixels as decode_reduced gives through Pillow, and the file's own (height, width). None for any
    other file (or with the switch off), which the Pillow path then decodes (and judges)."""
    if not fast_path_enabled():
        return None
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
                                        min_height=side, min_width=side)
    except ValueError:
        return None
    return pixels, (height, width)


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


def decode_reduced(image: Image.Image, side: int, channels: int) -> Image.Image | None:
    """An RGB or gray JPEG decoded by libjpeg-turbo at the smallest M/8 scale with both sides at
    least `side` (square: the EXIF rotation may swap them), then turned upright; None for any
    other file, or one the decoder flags, which Pillow then decodes (and judges)."""
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
