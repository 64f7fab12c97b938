"""Benchmark (not a test): preprocess throughput and peak memory on a generated photo folder.

    python benchmarks/preprocess_images.py [--images 5000] [--size 150]

Generates JPEG photos of 400x533 in 10 class folders, then runs the real download and
preprocess stages on them (data.dataset: image_folder) and reports images per second
and the peak resident memory of the largest process (the stage or one of its workers). Then
compares what the stage stored with a full decode of the same photos (every pixel decoded, then
the same resize): the mean absolute pixel difference, on 0..255.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw

PROJECT = Path(__file__).resolve().parents[1]


def generate(root: Path, count: int, classes: int = 10, seed: int = 0) -> None:
    """`count` 400x533 JPEG photos, about 45 KB each like a shop's product photos: a colored shape
    per class on a smooth textured background with a little sensor grain.

    (Pure noise would make 190 KB files that measure the entropy decoder, not a photo pipeline.)
    """
    rng = np.random.default_rng(seed)
    for i in range(count):
        label = i % classes
        folder = root / f"class_{label:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        texture = Image.fromarray(rng.integers(0, 256, (24, 18, 3), dtype=np.uint8)).resize((400, 533), Image.BICUBIC)
        grain = rng.integers(-12, 13, (533, 400, 3))
        image = Image.fromarray(np.clip(np.asarray(texture, np.int16) + grain, 0, 255).astype(np.uint8))
        box = [int(v) for v in rng.integers(20, 200, 2)] + [int(v) for v in rng.integers(220, 380, 2)]
        ImageDraw.Draw(image).ellipse(box, fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        image.save(folder / f"photo_{i:05d}.jpg", quality=85)


def run_stage(project: Path, stage: str) -> float:
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=project, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def full_decode_difference(project: Path, size: int, sample: int = 200) -> float:
    """Mean |stored - full decode| over the first `sample` photos (0..255)."""
    manifest = json.loads((project / "data/raw/manifest.json").read_text())
    stored = np.load(project / "data/processed/train_x.npy", mmap_mode="r")
    total = 0.0
    for i, (path, _) in enumerate(manifest["files"]["all"][:sample]):
        with Image.open(path) as image:
            full = np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR), dtype=np.int16)
        total += np.abs(stored[i].astype(np.int16) - full).mean()
    return total / min(sample, len(manifest["files"]["all"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--size", type=int, default=150, help="data.image_size (square)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        generate(tmp / "photos", args.images)
        print(f"generated {args.images} photos of 400x533 in {time.perf_counter() - started:.1f} s")
        params = yaml.safe_load((PROJECT / "params.yaml").read_text())
        params["data"].update(dataset="image_folder", path=str(tmp / "photos"), image_size=[args.size, args.size])
        project = tmp / "project"
        project.mkdir()
        (project / "params.yaml").write_text(yaml.safe_dump(params))
        scan = run_stage(project, "download")
        decode = run_stage(project, "preprocess")
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        stored = sum(f.stat().st_size for f in (project / "data/processed").iterdir()) / 2**20
        difference = full_decode_difference(project, args.size)
    print(f"download (scan and list): {scan:.1f} s")
    print(f"preprocess: {decode:.1f} s for {args.images} images = {args.images / decode:.0f} images/s "
          f"on {os.cpu_count()} cores, to {args.size}x{args.size} RGB")
    print(f"peak memory of the largest process: {peak_mib:.0f} MiB (output arrays on disk: {stored:.0f} MiB)")
    print(f"difference from a full decode: mean absolute pixel difference {difference:.2f} of 255")


if __name__ == "__main__":
    main()
