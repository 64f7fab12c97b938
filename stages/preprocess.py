"""Stage preprocess: decode data/raw (or the listed photos) into arrays in data/processed.

This stage defines the normalization: meta.json's pixel_scale maps the stored pixels (8-bit
where the source is) to [0, 1]; the model's first layer (a Rescaling) applies it.
"""

import logging
import os
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from imgclf import layout
from imgclf.artifacts import RowWriter, atomic_dir, remove_staging, write_array, write_json, write_part
from imgclf.data.datasets import get_dataset
from imgclf.data.doctor import HashedPart, ImageHashes, hash_images
from imgclf.data.folders import scan_image_folder
from imgclf.data.images import PIXEL_SCALE
from imgclf.data.preprocess import decode_batches, load_raw, prepare_arrays
from imgclf.errors import PipelineError
from imgclf.params import DataParams, load_params
from imgclf.runtime import run_stage

# Named under imgclf, whose lines run_stage formats: run with -m, this module is __main__.
log = logging.getLogger("imgclf.stages.preprocess")


def main() -> None:
    remove_staging(*layout.OUTPUTS["preprocess"])
    params = load_params(layout.PARAMS)
    with atomic_dir(layout.PROCESSED_DIR) as out:
        if params.data.dataset == "image_folder":
            meta = _decode_folder(params.data, out)
        else:
            spec = get_dataset(params.data.dataset)
            arrays, scale = prepare_arrays(spec, load_raw(spec, layout.RAW_DIR))
            parts = [part for part in ("train", "test") if f"x_{part}" in arrays]
            for part in parts:
                images = arrays[f"x_{part}"]
                write_part(out, part, images, arrays[f"y_{part}"])
                sizes = np.tile(np.array(images.shape[1:3], np.int32), (len(images), 1))
                HashedPart(hash_images(images), sizes).save(layout.hashes_file(out, part))
            meta = {"class_names": list(spec.class_names), "parts": parts, "presplit": False, "skipped": [],
                    "pixel_scale": scale}
        write_json(layout.meta_file(out), meta)
    print(f"preprocess: {params.data.dataset} parts {meta['parts']}, {len(meta['skipped'])} file(s) skipped "
          f"-> {layout.PROCESSED_DIR}")


def _decode_folder(data: DataParams, out: Path) -> dict:
    """Decode every photo of data.path once into <part>_x.npy, a batch at a time (memory stays bounded), and
    hash each batch for the dataset doctor as it is decoded (<part>_hashes.npz).
    The folder is listed here, not by download: this stage is the one that depends on it in dvc.yaml."""
    folder = scan_image_folder(data.path)
    root = Path(data.path).expanduser()  # as scan_image_folder lists it
    channels = 3 if data.color_mode == "rgb" else 1
    skipped: list[str] = []
    parts = {("train" if split == "all" else split): files for split, files in folder.files.items()}
    for part, files in parts.items():
        x_path, y_path = layout.part_files(out, part)
        kept = np.ones(len(files), bool)
        hashes: list[ImageHashes] = []
        sizes: list[np.ndarray] = []
        # The hashing's matrix products run in the decoding threads, one per core: a BLAS that also
        # threads each product would put two threads on a core and wait on them.
        with RowWriter(x_path, (*data.image_size, channels), np.uint8) as images, threadpool_limits(1, "blas"):
            start = 0
            for batch in decode_batches([p for p, _ in files], data.image_size, channels, hashes=True):
                for i, exc in batch.errors.items():
                    kept[start + i] = False
                    skipped.append(f"{files[start + i][0]}: {exc}")
                    if data.on_bad_image == "skip":
                        log.warning("skipping %s", skipped[-1])
                if batch.images is not None:
                    images.extend(batch.images)
                    hashes.append(batch.hashes)
                    sizes.append(batch.sizes)
                start += batch.count
        labels = np.array([label for _, label in files], np.int64)[kept]
        write_array(y_path, labels)
        if hashes:
            names = np.array([_relative(p, root) for (p, _), keep in zip(files, kept) if keep])
            hashed = HashedPart(ImageHashes.concatenate(hashes), np.concatenate(sizes), names)
            hashed.save(layout.hashes_file(out, part))
        if data.on_bad_image == "skip":
            _require_every_class(labels, folder.class_names, part)
    if skipped and data.on_bad_image == "fail":
        raise PipelineError(f"{len(skipped)} file(s) are not readable images (data.on_bad_image = fail):\n  "
                            + "\n  ".join(skipped) + "\nfix: remove or replace them, or set data.on_bad_image: skip")
    return {"class_names": list(folder.class_names), "parts": sorted(parts, key=["train", "val", "test"].index),
            "presplit": folder.presplit, "skipped": skipped, "pixel_scale": PIXEL_SCALE}


def _relative(path: Path, root: Path) -> str:
    """A listed file's name under data.path, with / (scan_image_folder lists the files under `root`, so its
    text is the prefix; Path.relative_to parses both paths again, a hundred times slower)."""
    text, prefix = str(path), str(root) + os.sep
    name = text[len(prefix):] if text.startswith(prefix) else os.path.relpath(path, root)
    return name.replace(os.sep, "/") if os.sep != "/" else name


def _require_every_class(labels: np.ndarray, class_names: list[str], part: str) -> None:
    """Each class keeps a readable image in the part: a class folder left empty by skipped files stops the stage."""
    counts = np.bincount(labels, minlength=len(class_names))
    if counts.min() == 0:
        empty = [name for name, n in zip(class_names, counts) if n == 0]
        raise PipelineError(f"no readable image left in class {', '.join(empty)} of the {part} split; "
                            "add images to it or remove the class folder")


if __name__ == "__main__":
    run_stage(main)
