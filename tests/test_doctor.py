"""The dataset doctor on generated photos: copies of every kind found within and across parts, conflicting
labels, a clean set clean, imbalance, small and gray images."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance

from imgclf.data import doctor
from imgclf.data.images import decode_image

SIZE = (64, 64)


def _photo(rng: np.random.Generator, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """A photo unlike any other drawn with another seed: a smooth random background, a few shapes of
    random colours and places, and grain."""
    width, height = size
    background = Image.fromarray(rng.integers(0, 256, (4, 3, 3), dtype=np.uint8)).resize(size, Image.BICUBIC)
    draw = ImageDraw.Draw(background)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, width - 30)), int(rng.integers(0, height - 30))
        box = [x0, y0, x0 + int(rng.integers(20, width // 2)), y0 + int(rng.integers(20, height // 2))]
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    grain = rng.integers(-6, 7, (height, width, 3))
    return Image.fromarray(np.clip(np.asarray(background, np.int16) + grain, 0, 255).astype(np.uint8))


def _encoded(image: Image.Image, fmt: str = "JPEG", quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def _crop(image: Image.Image, side: float) -> Image.Image:
    dx, dy = round(image.width * side), round(image.height * side)
    return image.crop((dx, dy, image.width - dx, image.height - dy))


COPIES = {
    "exact": lambda image: _encoded(image),
    "jpeg q60": lambda image: _encoded(image, quality=60),
    "half size": lambda image: _encoded(image.resize((image.width // 2, image.height // 2), Image.LANCZOS)),
    "double size": lambda image: _encoded(image.resize((image.width * 2, image.height * 2), Image.LANCZOS)),
    "png": lambda image: _encoded(image, "PNG"),
    "cropped 5%": lambda image: _encoded(_crop(image, 0.05)),
    "brightened 10%": lambda image: _encoded(ImageEnhance.Brightness(image).enhance(1.1)),
}


def _decoded(data: bytes) -> np.ndarray:
    return decode_image(io.BytesIO(data), SIZE, 3)


def _distinct(count: int, seed: int = 0) -> list[Image.Image]:
    return [_photo(np.random.default_rng([seed, i])) for i in range(count)]


@pytest.mark.parametrize("copy_part", ["train", "test"])
def test_every_kind_of_copy_is_found_within_and_across_parts(copy_part):
    photos = _distinct(20)
    pixels = [_decoded(_encoded(photo)) for photo in photos]
    parts, labels, original = ["train"] * 20, [i % 4 for i in range(20)], {}
    for number, make in enumerate(COPIES.values()):
        original[len(pixels)] = number
        pixels.append(_decoded(make(photos[number])))
        parts.append(copy_part)
        labels.append(labels[number])
    findings = doctor.examine(doctor.hash_images(np.stack(pixels)), np.array(labels), parts, 4, np.stack(pixels))

    grouped = {frozenset(group.members) for group in findings.groups}
    assert grouped == {frozenset({copy, source}) for copy, source in original.items()}
    assert all(group.leaks == (copy_part == "test") for group in findings.groups)
    assert not findings.conflicts
    exact = [group.members for group in findings.exact]
    assert exact == [(0, 20)]  # the same JPEG decodes to the same pixels; no other copy does
    assert findings.counts()["near_duplicates"] == len(COPIES) - 1


def test_a_conflicting_label_is_found_with_both_indices():
    photos = _distinct(10, seed=1)
    pixels = np.stack([_decoded(_encoded(photo)) for photo in photos] + [_decoded(COPIES["jpeg q60"](photos[3]))])
    labels = np.array([0, 1] * 5 + [0])  # photo 3 is class 1; its copy is filed under class 0
    findings = doctor.examine(doctor.hash_images(pixels), labels, ["train"] * 8 + ["val", "test", "test"], 2, pixels)

    (conflict,) = findings.conflicts
    assert conflict.members == (3, 10) and conflict.labels == (1, 0) and conflict.parts == ("train", "test")
    assert conflict.kind == "near" and conflict.leaks


def test_a_clean_set_reports_zero_of_everything():
    pixels = np.stack([_decoded(_encoded(photo)) for photo in _distinct(60, seed=2)])
    labels, parts = np.arange(60) % 3, ["train"] * 30 + ["val"] * 15 + ["test"] * 15
    findings = doctor.examine(doctor.hash_images(pixels), labels, parts, 3, pixels,
                              settings=doctor.DoctorSettings(min_class_count=5),
                              original_sizes=np.tile([120, 160], (60, 1)), target_size=SIZE)

    assert findings.counts() == dict.fromkeys(findings.counts(), 0)
    assert not findings.groups and not findings.exact
    assert doctor.near_pairs(doctor.hash_images(pixels), pixels).shape == (0, 2)
    assert [(b.part, b.counts, b.ratio) for b in findings.balance] == [
        ("train", (10, 10, 10), 1.0), ("val", (5, 5, 5), 1.0), ("test", (5, 5, 5), 1.0)]


def test_imbalance_per_part_and_classes_under_the_minimum():
    pixels = np.stack([_decoded(_encoded(photo)) for photo in _distinct(40, seed=3)])
    labels = np.array([0] * 30 + [1] * 3 + [0] * 4 + [1] * 3)
    parts = ["train"] * 33 + ["test"] * 7
    findings = doctor.examine(doctor.hash_images(pixels), labels, parts, 3, pixels,
                              settings=doctor.DoctorSettings(min_class_count=4))

    train, test = findings.balance
    assert (train.part, train.counts, train.ratio, train.under_minimum) == ("train", (30, 3, 0), float("inf"), (1, 2))
    assert (test.part, test.counts, test.under_minimum) == ("test", (4, 3, 0), (1, 2))
    two_classes = doctor.examine(doctor.hash_images(pixels), np.minimum(labels, 1), parts, 2, pixels)
    assert two_classes.balance[0].ratio == 10.0 and two_classes.balance[0].under_minimum == (1,)
    assert findings.counts()["classes_under_minimum"] == 4


def test_small_originals_and_gray_photos_in_an_rgb_set():
    photos = _distinct(6, seed=4)
    gray = photos[5].convert("L").convert("RGB")
    pixels = np.stack([_decoded(_encoded(photo)) for photo in photos[:5]] + [_decoded(_encoded(gray))])
    sizes = np.array([[120, 160], [20, 24], [120, 160], [64, 31], [32, 32], [120, 160]])
    findings = doctor.examine(doctor.hash_images(pixels), np.zeros(6, int), ["train"] * 6, 1, pixels,
                              original_sizes=sizes, target_size=SIZE)

    assert findings.small == (1, 3)  # a side under half the target's; 32 of 64 is not under
    assert findings.gray == (5,)
    one_channel = doctor.hash_images(pixels[..., :1])
    assert not one_channel.gray.any()  # a gray set's images are all gray: no finding


def test_exact_copies_are_told_apart_by_their_pixels_reading_only_the_near_pairs():
    """The pixels are read for the thumbnails of images whose hashes are close, and for the digest of
    images in a near pair: here the same five images, of the twelve."""
    photos = _distinct(12, seed=9)
    pixels = np.stack([_decoded(_encoded(photo)) for photo in photos]
                      + [_decoded(_encoded(photos[2])), _decoded(COPIES["jpeg q60"](photos[2])),
                         _decoded(_encoded(photos[7]))])
    read = []

    def pixels_of(indices):
        read.extend(indices.tolist())
        return pixels[indices]

    findings = doctor.examine(doctor.hash_images(pixels), np.zeros(15, int), ["train"] * 15, 1, pixels_of)
    assert sorted(set(read)) == [2, 7, 12, 13, 14]  # the images of a near pair, and no other
    assert [g.members for g in findings.exact] == [(2, 12), (7, 14)]
    assert [(g.kind, g.members) for g in findings.groups] == [("near", (2, 12, 13)), ("exact", (7, 14))]
    assert findings.counts()["exact_duplicates"] == 2 and findings.counts()["near_duplicates"] == 2


def test_hashes_of_batches_are_the_hashes_of_the_whole():
    pixels = np.stack([_decoded(_encoded(photo)) for photo in _distinct(9, seed=5)])
    whole = doctor.hash_images(pixels)
    parts = doctor.ImageHashes.concatenate([doctor.hash_images(pixels[:4]), doctor.hash_images(pixels[4:])])
    for name in ("phash", "gray"):
        np.testing.assert_array_equal(getattr(parts, name), getattr(whole, name))


@pytest.mark.parametrize("side", [28, 64, 150])
def test_copies_are_found_at_every_image_size(side):
    photos = _distinct(8, seed=6)
    pixels = [decode_image(io.BytesIO(_encoded(photo)), (side, side), 3) for photo in photos]
    copies = [COPIES[kind](photos[0]) for kind in ("cropped 5%", "half size")]
    pixels += [decode_image(io.BytesIO(copy), (side, side), 3) for copy in copies]
    findings = doctor.examine(doctor.hash_images(np.stack(pixels)), np.zeros(10, int), ["train"] * 10, 1,
                              np.stack(pixels))
    assert [group.members for group in findings.groups] == [(0, 8, 9)]


def test_pixels_that_are_not_8_bit_images_are_refused():
    with pytest.raises(ValueError, match="uint8"):
        doctor.hash_images(np.zeros((2, 8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="2 hashed images but 3 labels"):
        doctor.examine(doctor.hash_images(np.zeros((2, 8, 8, 3), dtype=np.uint8)), np.zeros(3, int), ["train"] * 2, 1,
                       np.zeros((2, 8, 8, 3), dtype=np.uint8))


def test_photos_alike_in_shape_but_not_in_colour_are_not_duplicates():
    """Two garments in one pose, sand and gray: the same light and dark (the gray hash alike bit for bit),
    other colours."""
    layout = np.asarray(_photo(np.random.default_rng(7)).convert("L"), np.float32)[..., np.newaxis]
    sand = np.clip(layout * [1.0, 0.8, 0.6], 0, 255).astype(np.uint8)
    gray = np.clip(layout * [0.8, 0.8, 0.8], 0, 255).astype(np.uint8)
    pixels = np.stack([_decoded(_encoded(Image.fromarray(image), "PNG")) for image in (sand, gray)])
    hashes = doctor.hash_images(pixels)

    assert np.bitwise_count(hashes.phash[0, 0] ^ hashes.phash[1, 0]) <= 4  # pHash alone calls them copies
    assert not doctor.examine(hashes, np.zeros(2, int), ["train", "test"], 1, pixels).groups


@pytest.mark.parametrize("max_distance", [2, 4])
def test_the_band_lookup_finds_every_pair_an_all_pairs_comparison_finds(max_distance):
    rng = np.random.default_rng(8)
    n, rungs = 300, len(doctor.LADDER)
    phash = rng.integers(0, 2**63, (n, rungs), dtype=np.int64).astype(np.uint64)
    for i in range(0, 120, 2):  # plant pairs 0 to max_distance + 1 bits apart, at any rung
        flips = rng.choice(64, int(rng.integers(0, max_distance + 2)), replace=False)
        phash[i + 1, int(rng.integers(rungs))] = phash[i, 0] ^ np.uint64(sum(1 << int(b) for b in flips))
    hashes = doctor.ImageHashes(phash, np.zeros(n, bool))
    close = (np.bitwise_count(phash[:, 0][:, None, None] ^ phash[None, :, :]) <= max_distance).any(axis=2)
    expected = sorted({(min(i, j), max(i, j)) for i, j in zip(*np.nonzero(close)) if i != j})

    alike = np.full((n, 8, 8, 3), 100, np.uint8)  # every thumbnail the same: the hashes alone decide
    found = doctor.near_pairs(hashes, alike, doctor.DoctorSettings(max_distance=max_distance))
    assert [tuple(pair) for pair in found.tolist()] == expected
    assert 20 < len(expected) < 60  # the planted ones within max_distance, and no chance ones
