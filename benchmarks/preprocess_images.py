"""Benchmark (not a test): preprocess throughput and peak memory on a generated photo folder.

    python benchmarks/preprocess_images.py [--images 5000] [--size 150] [--runs 3]

Generates JPEG photos of 400x533 in 10 class folders, then runs the real download stage and,
--runs times, the preprocess stage on them (data.dataset: image_folder; its output removed first,
as dvc repro does), alternating with the two one-process loops a learner would write on the same
photos: Pillow's full decode then the resize, and the same with `Image.draft` (the decoder scales
down by 1/2, 1/4 or 1/8). It reports images per second of each (best and median) and the stage's
speed as a multiple of each loop's, which holds from one machine to another where images per
second do not; and the stage's peak resident memory. Then it compares what the stage stored with
a full decode of the same photos (every pixel decoded, then the same resize): the mean absolute
pixel difference, on 0..255.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from imgclf.data.folders import scan_image_folder  # noqa: E402 (the project's package, from this checkout)
from imgclf.data.images import resize  # noqa: E402

# The two loops as measured where the 2,000 photos/s target was set, on a shop's 400x533 photos.
TARGET = 2000
REFERENCE = {"full decode": 560, "draft": 1340}


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


def reference_loops(photos: list[Path], size: int) -> dict[str, float]:
    """Images/s of the two loops in this one process: open, convert to RGB, resize (Pillow's
    default filter), as a notebook does it; then the same after `draft`."""
    def full(path: Path) -> np.ndarray:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB").resize((size, size)))

    def draft(path: Path) -> np.ndarray:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))
            return np.asarray(image.convert("RGB").resize((size, size)))

    rates = {}
    for name, load in (("full decode", full), ("draft", draft)):
        start = time.perf_counter()
        for path in photos:
            load(path)
        rates[name] = len(photos) / (time.perf_counter() - start)
    return rates


def full_decode_difference(project: Path, photos: Path, size: int, sample: int = 200) -> float:
    """Mean |stored - full decode| over the first `sample` photos (0..255): every pixel decoded by
    Pillow, then the stage's own resize, so that what differs is the decoder's reduced scale."""
    files = scan_image_folder(photos).files["all"]  # in the order the stage stores them
    stored = np.load(project / "data/processed/train_x.npy", mmap_mode="r")
    total = 0.0
    for i, (path, _) in enumerate(files[:sample]):
        with Image.open(path) as image:
            full = resize(np.asarray(image.convert("RGB")), (size, size)).astype(np.int16)
        total += np.abs(stored[i].astype(np.int16) - full).mean()
    return total / min(sample, len(files))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--size", type=int, default=150, help="data.image_size (square)")
    parser.add_argument("--runs", type=int, default=3, help="alternations of the stage and the two loops")
    parser.add_argument("--sample", type=int, default=1000, help="photos each loop decodes")
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
        photos = sorted((tmp / "photos").rglob("*.jpg"))
        sample = photos[::max(1, len(photos) // args.sample)][:args.sample]  # from every class
        stage, loops = [], {name: [] for name in REFERENCE}
        for _ in range(args.runs):
            shutil.rmtree(project / "data/processed", ignore_errors=True)  # as dvc repro does before the stage
            stage.append(args.images / run_stage(project, "preprocess"))
            for name, rate in reference_loops(sample, args.size).items():
                loops[name].append(rate)
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        stored = sum(f.stat().st_size for f in (project / "data/processed").iterdir()) / 2**20
        difference = full_decode_difference(project, tmp / "photos", args.size)
    print(f"download (checks data.path): {scan:.1f} s")
    print(f"preprocess stage, {args.runs} runs: {_rates(stage)} for {args.images} images on {os.cpu_count()} "
          f"cores, to {args.size}x{args.size} RGB")
    speed = statistics.median(stage)
    for name, rates in loops.items():
        print(f"one-process loop, {name}, on {len(sample)} of them: {_rates(rates)}; the stage runs at "
              f"{speed / statistics.median(rates):.2f}x (the {TARGET}/s target is "
              f"{TARGET / REFERENCE[name]:.2f}x the {REFERENCE[name]}/s it ran at where the target was set)")
    print(f"peak memory of the stage: {peak_mib:.0f} MiB (output arrays on disk: {stored:.0f} MiB)")
    print(f"difference from a full decode: mean absolute pixel difference {difference:.2f} of 255")


def _rates(rates: list[float]) -> str:
    return f"best {max(rates):.0f}, median {statistics.median(rates):.0f} images/s"


if __name__ == "__main__":
    main()
