"""Decode a raw dataset into arrays: images N x H x W x C, integer labels, and the pixel scale.

8-bit sources stay 8-bit between stages (a quarter of float32 for DVC to hash and copy); the
scale that maps them to [0, 1] is recorded beside them, and the model's first layer applies it.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np

from imgclf.artifacts import read_array
from imgclf.data.datasets import DatasetSpec
from imgclf.data.doctor import ImageHashes, hash_images
from imgclf.data.idx import read_idx
from imgclf.data.images import BadImageError, decode_image_sized, quiet_bomb_warnings
from imgclf.errors import PipelineError


def load_raw(spec: DatasetSpec, raw_dir: Path) -> dict[str, np.ndarray]:
    """Raw images and labels of `spec` from data/raw; the source's own test split when it has one."""
    if spec.bundled:
        return {"x_train": np.asarray(read_array(raw_dir / f"{spec.name}_images.npy")),
                "y_train": np.asarray(read_array(raw_dir / f"{spec.name}_labels.npy"))}
    arrays = {}
    for key, name in zip(("x_train", "y_train", "x_test", "y_test"), (f.name for f in spec.files)):
        arrays[key] = read_idx(raw_dir / name)
    return arrays


def prepare_arrays(spec: DatasetSpec, raw: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], float]:
    """Checked arrays and their pixel scale (the stage writes both, and the class names, beside them)."""
    out, scale = {}, 1.0
    for part in ("train", "test"):
        if f"x_{part}" not in raw:
            continue
        images, labels = raw[f"x_{part}"], raw[f"y_{part}"]
        _check_pair(images, labels, len(spec.class_names), part)
        out[f"x_{part}"], scale = normalize(images, spec.max_value)
        out[f"y_{part}"] = labels.astype(np.int64)
    return out, scale


def normalize(images: np.ndarray, max_value: float) -> tuple[np.ndarray, float]:
    """Min-max normalization by the format's maximum: the pixels to store and the scale to [0, 1].

    8-bit pixels are kept as they are, with scale 1 / max_value; any other type is divided here
    (float32, scale 1). Grayscale gets a channel axis.
    """
    if images.dtype == np.uint8:
        pixels, scale = images, 1.0 / max_value
    else:
        pixels, scale = images.astype(np.float32) / np.float32(max_value), 1.0
    return (pixels[..., np.newaxis] if pixels.ndim == 3 else pixels), scale


def _check_pair(images: np.ndarray, labels: np.ndarray, n_classes: int, part: str) -> None:
    if images.ndim not in (3, 4) or labels.ndim != 1:
        raise PipelineError(
            f"{part} images must be N x H x W[x C] and labels N, got {images.shape} and {labels.shape}"
        )
    if len(images) != len(labels):
        raise PipelineError(
            f"{part} split has {len(images)} images but {len(labels)} labels: the raw files do not belong together"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise PipelineError(f"{part} labels must lie in 0..{n_classes - 1}, found {labels.min()}..{labels.max()}")


class Batch(NamedTuple):
    """Consecutive files decoded: the good images stacked (None if none), and the bad files' errors
    by position among the `count`; for the good images, their sizes as decoded (N x 2: height, width,
    before the resize) and, when asked for, their hashes for the dataset doctor."""

    images: np.ndarray | None
    errors: dict[int, BadImageError]
    count: int
    sizes: np.ndarray | None = None
    hashes: ImageHashes | None = None


def decode_batches(paths: Sequence[Path], size: tuple[int, int], channels: int, workers: int | None = None,
                   batch: int = 32, hashes: bool = False) -> Iterator[Batch]:
    """Decode each file once, in parallel over the cores, in order, `batch` files at a time; with
    `hashes`, each batch is also hashed for the dataset doctor by the thread that decoded it (so the
    photos are not decoded twice, and the hashing runs on every core).

    Threads, not processes: libjpeg-turbo and OpenCV's resize release the GIL, and the decoded
    pixels stay where the stage writes them (a process pool would copy every photo's pixels
    back to this process). At most two batches per worker are in flight, so memory stays bounded behind a slow
    image. A batch comes whole, so the stage writes it in one call.
    """
    workers = workers or os.cpu_count() or 1
    starts = range(0, len(paths), batch)
    with quiet_bomb_warnings():
        if workers == 1 or len(paths) < 2 * batch:
            yield from (_decode_batch(paths[start:start + batch], size, channels, hashes) for start in starts)
            return
        with ThreadPoolExecutor(workers) as pool:
            pending: deque = deque()
            for start in starts:
                pending.append(pool.submit(_decode_batch, paths[start:start + batch], size, channels, hashes))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()


def decode_images(paths: Sequence[Path], size: tuple[int, int], channels: int, workers: int | None = None,
                  batch: int = 32) -> Iterator[np.ndarray | BadImageError]:
    """decode_batches one file at a time: its pixels, or its error for a bad file."""
    for images, errors, count, _, _ in decode_batches(paths, size, channels, workers, batch):
        rows = iter(images if images is not None else ())
        for i in range(count):
            yield errors[i] if i in errors else next(rows)


def _decode_one(path: Path, size: tuple[int, int], channels: int) -> tuple[np.ndarray, tuple[int, int]] | BadImageError:
    try:
        return decode_image_sized(path, size, channels)
    except BadImageError as exc:  # returned, not raised: one bad file must not stop the others
        return exc


def _decode_batch(paths: Sequence[Path], size: tuple[int, int], channels: int, hashes: bool = False) -> Batch:
    results = [_decode_one(path, size, channels) for path in paths]
    errors = {i: r for i, r in enumerate(results) if isinstance(r, BadImageError)}
    good = [r for r in results if not isinstance(r, BadImageError)]
    if not good:
        return Batch(None, errors, len(results))
    images = np.stack([pixels for pixels, _ in good])
    return Batch(images, errors, len(results), np.array([shape for _, shape in good], np.int32).reshape(-1, 2),
                 hash_images(images) if hashes else None)
