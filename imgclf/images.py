"""Image files to model input: one conversion and resize, shared by every consumer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from imgclf.errors import PipelineError


def load_image(path: str | Path, size: tuple[int, int], channels: int) -> np.ndarray:
    """Read an image as H x W x C float32 in [0, 1] (EXIF orientation applied, grayscale or RGB)."""
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            image = image.convert("L" if channels == 1 else "RGB")
            image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise PipelineError(f"image {path} does not exist") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise PipelineError(f"cannot read {path} as an image ({exc}); give a PNG or JPEG file") from None
    return pixels[..., np.newaxis] if channels == 1 else pixels
