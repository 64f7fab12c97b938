"""Benchmark (not a test): the dataset doctor's recall on planted copies and false positives on real photos.

    python benchmarks/near_duplicates.py PHOTO_FOLDER [--originals 200] [--size 64] [--seed 0]

PHOTO_FOLDER holds class folders of photos (the pool). The benchmark picks --originals of them and
plants six copies of each as separate images in a "test" part (the pool is "train"): the same file
(exact), re-encoded as JPEG at quality 70, resized to 80% of each side, saved as PNG, with 4% of each
side cropped off, and brightened by 10%. Every image is decoded and resized to --size x --size as the
pipeline does (imgclf.data.images.decode_image), hashed (imgclf.data.doctor.hash_images, one batch)
and examined. It reports:

- recall per kind of copy: the copies that land in one duplicate group with their original;
- false positives: pairs of different, not identical, pool photos called near duplicates, and the
  share of the pool's photos in such a pair (each pair is listed, so that a real duplicate among them,
  which is no false positive, can be told by eye);
- the conflicting labels among the pool's photos (a group with two classes), file by file;
- the hashing time per image.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from imgclf.data import doctor  # noqa: E402 (the project's package, from this checkout)
from imgclf.data.folders import scan_image_folder  # noqa: E402
from imgclf.data.images import decode_image  # noqa: E402


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _crop(image: Image.Image, side: float) -> Image.Image:
    dx, dy = round(image.width * side), round(image.height * side)
    return image.crop((dx, dy, image.width - dx, image.height - dy))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


COPIES = {
    "exact": lambda data, image: data,
    "jpeg q70": lambda data, image: _jpeg(image, 70),
    "resized 80%": lambda data, image: _jpeg(image.resize((round(image.width * 0.8), round(image.height * 0.8)),
                                                          Image.LANCZOS)),
    "png": lambda data, image: _png(image),
    "cropped 4%": lambda data, image: _jpeg(_crop(image, 0.04)),
    "brightened 10%": lambda data, image: _jpeg(ImageEnhance.Brightness(image).enhance(1.1)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--originals", type=int, default=200)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--colour-tolerance", type=float, default=doctor.DoctorSettings.colour_tolerance)
    parser.add_argument("--max-distance", type=int, default=doctor.DoctorSettings.max_distance)
    args = parser.parse_args()
    dataset = scan_image_folder(args.folder)
    pool = [item for files in dataset.files.values() for item in files]
    size = (args.size, args.size)
    originals = np.random.default_rng(args.seed).choice(len(pool), min(args.originals, len(pool)), replace=False)

    pixels = [decode_image(path, size, 3) for path, _ in pool]
    labels, parts = [y for _, y in pool], ["train"] * len(pool)
    origin, kinds = list(range(len(pool))), [None] * len(pool)
    for index in originals:
        path, label = pool[index]
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
        for kind, make in COPIES.items():
            pixels.append(decode_image(io.BytesIO(make(data, image)), size, 3))
            labels.append(label)
            parts.append("test")
            origin.append(int(index))
            kinds.append(kind)
    batch = np.stack(pixels)

    start = time.perf_counter()
    hashes = doctor.hash_images(batch)
    hashing = time.perf_counter() - start
    settings = doctor.DoctorSettings(max_distance=args.max_distance, colour_tolerance=args.colour_tolerance)
    start = time.perf_counter()
    findings = doctor.examine(hashes, np.array(labels), parts, len(dataset.class_names), batch, settings=settings)
    examining = time.perf_counter() - start

    group_of = np.full(len(batch), -1)
    for number, group in enumerate(findings.groups):
        group_of[list(group.members)] = number
    print(f"{len(pool)} photos in {args.folder}, {len(originals)} planted originals x {len(COPIES)} copies, "
          f"decoded to {args.size}x{args.size}; max_distance {args.max_distance}, "
          f"colour_tolerance {args.colour_tolerance}\n")
    print("| copy | found | recall |\n|---|---:|---:|")
    for kind in COPIES:
        copies = [i for i, k in enumerate(kinds) if k == kind]
        found = sum(group_of[i] >= 0 and group_of[i] == group_of[origin[i]] for i in copies)
        print(f"| {kind} | {found}/{len(copies)} | {found / len(copies):.1%} |")

    pairs = doctor.near_pairs(hashes, batch, settings)
    in_pool = (pairs < len(pool)).all(axis=1)
    false = [(i, j) for i, j in pairs[in_pool] if not np.array_equal(batch[i], batch[j])]
    identical = int(in_pool.sum()) - len(false)
    photos = {int(i) for pair in false for i in pair}
    print(f"\nfalse positives among the {len(pool)} untouched photos: {len(false)} pairs, "
          f"{len(photos)} photos ({len(photos) / len(pool):.2%}); identical pairs (real duplicates): {identical}")

    def name(i: int) -> str:
        return str(pool[i][0].relative_to(args.folder.parent))

    for i, j in false:
        print(f"  {name(i)}  ~  {name(j)}")
    print("\nconflicting labels among the pool's photos:")
    for group in findings.conflicts:
        members = [i for i in group.members if i < len(pool)]
        if len({labels[i] for i in members}) > 1:
            print("  " + "  ==  ".join(f"{name(i)} ({dataset.class_names[labels[i]]})" for i in members))
    print(f"\nhashing: {hashing / len(batch) * 1e6:.0f} us per image ({len(batch)} images, one batch); "
          f"examining: {examining:.2f} s")


if __name__ == "__main__":
    main()
