"""Decode a raw dataset into arrays: images H x W x C float32 in [0, 1], integer labels."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from pathlib import Path

import numpy as np

from imgclf.artifacts import read_array
from imgclf.datasets import DatasetSpec
from imgclf.errors import PipelineError
from imgclf.idx import read_idx
from imgclf.images import BadImageError, load_image


def load_raw(spec: DatasetSpec, raw_dir: Path) -> dict[str, np.ndarray]:
    """Raw images and labels of `spec` from data/raw; the source's own test split when it has one."""
    if spec.bundled:
        return {"x_train": np.asarray(read_array(raw_dir / f"{spec.name}_images.npy")),
                "y_train": np.asarray(read_array(raw_dir / f"{spec.name}_labels.npy"))}
    arrays = {}
    for key, name in zip(("x_train", "y_train", "x_test", "y_test"), (f.name for f in spec.files)):
        arrays[key] = read_idx(raw_dir / name)
    return arrays


def prepare_arrays(spec: DatasetSpec, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Check and normalize raw arrays (the stage writes the class names beside them)."""
    out = {}
    for part in ("train", "test"):
        if f"x_{part}" not in raw:
            continue
        images, labels = raw[f"x_{part}"], raw[f"y_{part}"]
        _check_pair(images, labels, len(spec.class_names), part)
        out[f"x_{part}"] = normalize(images, spec.max_value)
        out[f"y_{part}"] = labels.astype(np.int64)
    return out


def normalize(images: np.ndarray, max_value: float) -> np.ndarray:
    """Min-max scale by the format's maximum to [0, 1]; add a channel axis to grayscale."""
    scaled = images.astype(np.float32) / np.float32(max_value)
    return scaled[..., np.newaxis] if scaled.ndim == 3 else scaled


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


def decode_images(paths: Sequence[Path], size: tuple[int, int], channels: int,
                  workers: int | None = None) -> Iterator[np.ndarray | BadImageError]:
    """Decode each file once, in parallel over the cores, in order; a bad file yields its error."""
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(paths) < 64:
        yield from map(_decode_one, paths, repeat(size), repeat(channels))
        return
    with ProcessPoolExecutor(workers) as pool:
        yield from pool.map(_decode_one, paths, repeat(size), repeat(channels), chunksize=16)


def _decode_one(path: Path, size: tuple[int, int], channels: int) -> np.ndarray | BadImageError:
    try:
        return load_image(path, size, channels)
    except BadImageError as exc:  # returned, not raised: one bad file must not stop the others
        return exc
