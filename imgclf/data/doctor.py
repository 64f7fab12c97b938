"""The dataset doctor: duplicates, near duplicates, conflicting labels, imbalance, small and gray images.

Two steps, so that the hashing happens where the images are decoded and the images are not decoded twice:

- `hash_images(batch)` takes a batch of decoded images (N x H x W x C uint8, one size) and returns their
  `ImageHashes`: perceptual hashes (near duplicates), small colour thumbnails (the check that cuts the
  perceptual hash's false matches) and whether each image is gray. Each image is first halved (2x2
  averages) while its sides are 64 or more, then the batch is hashed in a few matrix products.
- `examine(hashes, labels, parts, num_classes, pixels, ...)` turns the hashes of every image into
  `Findings`. Identical pixels give identical hashes, so every exact duplicate is among the near pairs:
  only the images of a near pair are read again (`pixels`) and digested, to tell exact copies from
  near ones, instead of digesting every image while it is decoded (a SHA-1 of a 150x150 photo costs
  as much as its hashes).

Near duplicates. A 64-bit pHash (the sign of the 8x8 lowest frequencies of the DCT of the gray image,
against their median, as the `imagehash` library computes it, here from a 16x16 area-averaged image: the
lowest frequencies are the same as from pHash's 32x32; the image is halved to under 64x64 first, which
keeps them too) survives re-encoding, resizing and small brightness
changes, but not a crop: 4% off each side moves every edge of the picture. So each image is hashed on a
ladder of centred regions (`LADDER`: the central 80%, 83%, 86% and 89% of each side), and two images match
when the central 80% of one is within `max_distance` bits of any rung of the other: a copy with c of each
side cropped shows the original's central 80% as its own central 0.8 / (1 - 2c), which for c <= 5% is at
most 1.9% from a rung (a third of a cell of the 16x16 image). pHash sees no colour and little fine detail,
so photos of different garments in the same pose can match; each match is then checked on the same two
regions' 8x8 colour thumbnails, each divided by its own mean (a brightness change is a factor): a mean
difference over `colour_tolerance` is two different images.

No pair of the whole set is compared: the 64 bits are dealt into `max_distance + 2` bands, and two
hashes within `max_distance` bits agree exactly on at least two of them (pigeonhole), so only the
images that share the values of a pair of bands with another are compared (multi-index hashing). Pairs
of bands, not single ones: MNIST's digits have alike hashes, and a single band of 13 bits is shared by
so many that the candidates (110 million) cost seconds; pairs of bands give a third of them.

Speed: the region sums are matrix products; a multi-threaded BLAS on a busy machine spends more time
waking its threads than summing, so a caller that hashes in its own threads limits BLAS to one
(threadpoolctl).

Groups are the connected components of the duplicate pairs: a group is what a carved split must keep in
one part, and a group with two parts is a leak, one with two classes a conflicting label.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

# Centred regions hashed, as fractions of each side; the first is the one compared with every rung.
LADDER = (0.80, 0.83, 0.86, 0.89)
_SHRUNK_SIDE = 32  # images are halved while both sides are twice this: the hash keeps only the lowest frequencies
_HASH_SIDE = 16  # the DCT's input (pHash's 32: the 8x8 lowest frequencies are the same, for a quarter of the work)
_LOW = 8  # the 8x8 lowest frequencies: 64 bits
_THUMB = 8  # the colour thumbnail's side
_THUMB_SOURCE = 16  # the thumbnails' images are halved while both sides are twice this
_GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as Pillow's "L"
# Images hashed at a time: the region sums of a whole set at once are larger than the images (64 rows
# from 28 for MNIST) and slow to write; of 1,024, a few tens of MB. Also the images read and digested
# at a time to tell exact copies.
_CHUNK_IMAGES = 1024
# Candidate pairs expanded, and close pairs' thumbnails compared, at a time: bounds the memory of a set
# with many alike images (MNIST has 41 million candidates and 3 million close pairs), and keeps each
# chunk's temporaries in the CPU's cache and the allocator's reused memory (chunks of millions spend
# more time faulting fresh pages in than comparing: four times as long, measured).
_CHUNK_PAIRS = 1 << 18
_CHUNK_COMPARED = 1 << 14


@dataclass(frozen=True)
class DoctorSettings:
    """What counts as a finding."""

    max_distance: int = 4  # pHash bits that may differ between near duplicates
    colour_tolerance: float = 0.05  # mean difference of brightness-normalised 8x8 thumbnails
    min_class_count: int = 10  # a class with fewer images in a part is a finding
    small_fraction: float = 0.5  # an image whose original side is under this much of the target side
    gray_tolerance: int = 2  # R, G and B within this of each other in every pixel: a gray photo


@dataclass(frozen=True)
class ImageHashes:
    """Per image: phash (one uint64 per rung of LADDER), gray (R == G == B within the tolerance; False for 1
    channel)."""

    phash: np.ndarray  # (N, len(LADDER)) uint64
    gray: np.ndarray  # (N,) bool

    def __len__(self) -> int:
        return len(self.phash)

    @staticmethod
    def concatenate(batches: Sequence[ImageHashes]) -> ImageHashes:
        if not batches:
            raise ValueError("no batches of hashes to concatenate")
        return ImageHashes(*(np.concatenate([getattr(b, name) for b in batches])
                             for name in ("phash", "gray")))


@dataclass(frozen=True)
class HashedPart:
    """What preprocess keeps of a part's images for the checks in split: their hashes, their sizes as
    decoded (N x 2: height, width; the small-image check) and, for photos, their file names (relative to
    data.path; None for a dataset of arrays, whose images are named by part and row)."""

    hashes: ImageHashes
    sizes: np.ndarray
    names: np.ndarray | None = None

    def save(self, path) -> None:
        """One .npz, no pickle (names as a unicode array)."""
        arrays = {name: getattr(self.hashes, name) for name in ("phash", "gray")}
        arrays["sizes"] = self.sizes
        if self.names is not None:
            arrays["names"] = self.names.astype(str)
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    @staticmethod
    def load(path) -> HashedPart:
        with np.load(path, allow_pickle=False) as arrays:
            hashes = ImageHashes(*(arrays[name] for name in ("phash", "gray")))
            return HashedPart(hashes, arrays["sizes"], arrays["names"] if "names" in arrays else None)


@dataclass(frozen=True)
class DuplicateGroup:
    """Images that are copies of one another: indices into the images examined (ascending), each one's
    part and label. kind: "exact" (identical pixels) or "near" (at least one pair only alike)."""

    kind: str
    members: tuple[int, ...]
    parts: tuple[str, ...]
    labels: tuple[int, ...]

    @property
    def leaks(self) -> bool:
        """Copies in two parts (train and test: the test scores a photo the model trained on)."""
        return len(set(self.parts)) > 1

    @property
    def conflicting(self) -> bool:
        """The same picture filed under two classes."""
        return len(set(self.labels)) > 1


@dataclass(frozen=True)
class PartBalance:
    """One part's images per class (class index -> count), largest / smallest (inf when a class has
    none), and the classes under the minimum count."""

    part: str
    counts: tuple[int, ...]
    ratio: float
    under_minimum: tuple[int, ...]


@dataclass(frozen=True)
class Findings:
    exact: tuple[DuplicateGroup, ...]  # sets of identical images
    groups: tuple[DuplicateGroup, ...]  # every duplicate group, exact or near, whole
    balance: tuple[PartBalance, ...]
    small: tuple[int, ...]  # indices of images much smaller than the target size
    gray: tuple[int, ...]  # indices of gray photos in an RGB set

    @property
    def near(self) -> tuple[DuplicateGroup, ...]:
        return tuple(g for g in self.groups if g.kind == "near")

    @property
    def leaks(self) -> tuple[DuplicateGroup, ...]:
        return tuple(g for g in self.groups if g.leaks)

    @property
    def conflicts(self) -> tuple[DuplicateGroup, ...]:
        return tuple(g for g in self.groups if g.conflicting)

    def counts(self) -> dict[str, int]:
        """Number of findings of each kind (images beyond the first of each group for duplicates)."""
        return {
            "exact_duplicates": sum(len(g.members) - 1 for g in self.exact),
            "near_duplicates": sum(len(g.members) - 1 for g in self.near),
            "leaked_groups": len(self.leaks),
            "conflicting_groups": len(self.conflicts),
            "small_images": len(self.small),
            "gray_images": len(self.gray),
            "classes_under_minimum": sum(len(b.under_minimum) for b in self.balance),
        }


def hash_images(images: np.ndarray, gray_tolerance: int = DoctorSettings.gray_tolerance) -> ImageHashes:
    """The hashes of a batch of decoded images, N x H x W x C (or N x H x W) uint8, C 1 or 3."""
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.dtype != np.uint8:
        raise ValueError(f"images must be N x H x W x C uint8 with C 1 or 3, not {images.dtype} {images.shape}")
    if len(images) > _CHUNK_IMAGES:  # the products' intermediates stay in the CPU's cache
        return ImageHashes.concatenate([hash_images(images[i:i + _CHUNK_IMAGES], gray_tolerance)
                                        for i in range(0, len(images), _CHUNK_IMAGES)])
    images = _shrunk(images, _SHRUNK_SIDE)
    n, channels = len(images), images.shape[-1]
    pixels = images.astype(np.float32)
    luma = pixels if channels == 1 else pixels @ _GRAY_WEIGHTS[:, np.newaxis]
    regions = _regions(luma, _HASH_SIDE)[..., 0]  # (n, rungs, side, side)
    dct = _dct_matrix(_HASH_SIDE)[:_LOW]
    low = (dct @ regions @ dct.T).reshape(n, len(LADDER), _LOW * _LOW)
    # the median of the 64 frequencies (the mean of the 32nd and 33rd): a sort of 64 is faster than np.median's
    middle = np.sort(low, axis=2)[..., _LOW * _LOW // 2 - 1:_LOW * _LOW // 2 + 1].mean(axis=2, keepdims=True)
    phash = _pack(low > middle)
    if channels == 3:
        # every other pixel of every other row: a gray photo is gray in all of them, a colour one in a quarter
        sample = images[:, ::2, ::2]
        red, green, blue = sample[..., 0], sample[..., 1], sample[..., 2]
        spread = np.maximum(np.maximum(red, green), blue) - np.minimum(np.minimum(red, green), blue)
        gray = (spread <= gray_tolerance).all(axis=(1, 2))
    else:
        gray = np.zeros(n, dtype=bool)
    return ImageHashes(phash, gray)


def thumbnails(images: np.ndarray) -> np.ndarray:
    """(N, len(LADDER), 8, 8, C) uint8: the colour thumbnail of each rung's region of each image, which
    confirms a hash match. Made in examine for the images of a close hash pair only (few: the clothing
    photos' hashes put 0.3% of them in one), from images halved while their sides are 32 or more (8x8
    cells need no more)."""
    if images.ndim == 3:
        images = images[..., np.newaxis]
    return np.clip(np.rint(_regions(_shrunk(images, _THUMB_SOURCE).astype(np.float32), _THUMB)), 0, 255).astype(
        np.uint8)


Pixels = np.ndarray | Callable[[np.ndarray], np.ndarray]  # the images, or a function of indices to them


def examine(hashes: ImageHashes, labels: np.ndarray, parts: Sequence[str] | np.ndarray, num_classes: int,
            pixels: Pixels, original_sizes: np.ndarray | None = None, target_size: tuple[int, int] | None = None,
            settings: DoctorSettings = DoctorSettings()) -> Findings:
    """The findings on every image: hashes (hash_images of all of them, in one order), their labels
    (class indices), their parts ("train", "val", "test"), their pixels (read only for the images of a near
    pair), and for the small-image check the size of each original (N x 2: height, width) and the size the
    pipeline resizes to (height, width)."""
    labels, parts = np.asarray(labels), np.asarray(parts)
    n = len(hashes)
    if len(labels) != n or len(parts) != n:
        raise ValueError(f"{n} hashed images but {len(labels)} labels and {len(parts)} parts")
    # Here, not at the top: preprocess imports this module to hash, and scipy's import would add a tenth
    # of its time on photos; split, which examines, has it imported already (scikit-learn).
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pairs = near_pairs(hashes, pixels, settings)
    exact_ids = _same_pixels(n, np.unique(pairs), pixels)
    exact = _groups(exact_ids, labels, parts, lambda members: "exact")
    graph = coo_matrix((np.ones(len(pairs) + n, dtype=np.int8),
                        (np.concatenate([pairs[:, 0], np.arange(n)]),
                         np.concatenate([pairs[:, 1], _first_of_same(exact_ids)]))), shape=(n, n))
    component = connected_components(graph, directed=False)[1]

    def kind(members: np.ndarray) -> str:
        return "exact" if len(set(exact_ids[members])) == 1 else "near"

    groups = _groups(component, labels, parts, kind)
    small: tuple[int, ...] = ()
    if original_sizes is not None and target_size is not None:
        sizes = np.asarray(original_sizes).reshape(n, 2)
        too_small = (sizes < settings.small_fraction * np.asarray(target_size)).any(axis=1)
        small = tuple(int(i) for i in np.flatnonzero(too_small))
    gray = tuple(int(i) for i in np.flatnonzero(hashes.gray))
    return Findings(exact, groups, balance(labels, parts, num_classes, settings.min_class_count), small, gray)


def near_pairs(hashes: ImageHashes, pixels: Pixels, settings: DoctorSettings = DoctorSettings()) -> np.ndarray:
    """(M, 2) int64 pairs i < j of near duplicates (exact ones included), each once, ascending; the pixels
    of the images of a close hash pair are read for their thumbnails."""
    n, rungs = hashes.phash.shape
    keys = hashes.phash[:, 0]
    queries = hashes.phash.reshape(-1)  # query q is image q // rungs at rung q % rungs
    masks = _band_pairs(settings.max_distance)
    first_agreeing = _first_agreeing_pair(settings.max_distance)
    close = []  # key * len(queries) + query, for each key and query within max_distance bits, once
    for number, band in enumerate(masks):
        key_band, query_band = keys & band, queries & band
        order = np.argsort(key_band, kind="stable")
        sorted_band = key_band[order]
        starts = np.searchsorted(sorted_band, query_band, "left")
        counts = np.searchsorted(sorted_band, query_band, "right") - starts
        for chunk in _chunks(counts):
            query = np.repeat(chunk, counts[chunk])
            offsets = np.arange(len(query)) - np.repeat(np.cumsum(counts[chunk]) - counts[chunk], counts[chunk])
            key = order[np.repeat(starts[chunk], counts[chunk]) + offsets]
            difference = keys[key] ^ queries[query]
            keep = (key != query // rungs) & (np.bitwise_count(difference) <= settings.max_distance)
            key, query, difference = key[keep], query[keep], difference[keep]
            # A close pair agrees on several pairs of bands: it is kept by the first only.
            keep = first_agreeing[_agreeing_bands(difference, settings.max_distance)] == number
            close.append(key[keep].astype(np.int64) * len(queries) + query[keep])
    close = np.concatenate(close) if close else np.empty(0, dtype=np.int64)
    if not len(close):
        return np.empty((0, 2), dtype=np.int64)
    involved = np.unique(np.concatenate([close // len(queries), close % len(queries) // rungs]))
    thumbs = _normalised(np.concatenate([thumbnails(chunk) for chunk in _read(pixels, involved)]
                                        ).reshape(len(involved) * rungs, -1))
    row = np.full(n, -1)
    row[involved] = np.arange(len(involved))  # an involved image's thumbnails: rows row * rungs + rung
    found = []
    for start in range(0, len(close), _CHUNK_COMPARED):
        key, query = np.divmod(close[start:start + _CHUNK_COMPARED], len(queries))
        image, rung = np.divmod(query, rungs)
        alike = (np.abs(thumbs[row[key] * rungs] - thumbs[row[image] * rungs + rung]).mean(axis=1)
                 <= settings.colour_tolerance)
        key, image = key[alike], image[alike]
        found.append(np.stack([np.minimum(key, image), np.maximum(key, image)], axis=1))
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    pairs = _distinct(np.concatenate(found).astype(np.int64) @ np.array([n, 1]))
    return np.stack(np.divmod(pairs, n), axis=1)


def _read(pixels: Pixels, indices: np.ndarray) -> Iterator[np.ndarray]:
    """The images of `indices`, _CHUNK_IMAGES at a time (memory stays bounded however many are asked for)."""
    read = pixels if callable(pixels) else pixels.__getitem__
    for start in range(0, len(indices), _CHUNK_IMAGES):
        yield read(indices[start:start + _CHUNK_IMAGES])


def _same_pixels(n: int, candidates: np.ndarray, pixels: Pixels) -> np.ndarray:
    """An id per image, shared by images with identical pixels: each image its own, but the candidates,
    which are digested (SHA-1: no one forges a photo to collide), a chunk at a time."""
    digests = [hashlib.sha1(np.ascontiguousarray(image)).digest()
               for chunk in _read(pixels, candidates) for image in chunk]
    ids = np.arange(n)
    if digests:
        _, same = np.unique(np.array(digests, dtype="S20"), return_inverse=True)
        ids[candidates] = n + same.reshape(-1)
    return ids


def _distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values, ascending: a sort and a comparison of neighbours (np.unique's hash table
    is several times slower on millions of integers)."""
    values = np.sort(values)
    return values[np.concatenate([values[:1] == values[:1], values[1:] != values[:-1]])]


def _normalised(thumbs: np.ndarray) -> np.ndarray:
    """Each row (a thumbnail's values) divided by its own mean (plus one, for a black one): a brightness
    change, a factor on every pixel, leaves it as it was."""
    thumbs = thumbs.astype(np.float32)
    return thumbs / (thumbs.mean(axis=1, keepdims=True) + 1.0)


def _chunks(counts: np.ndarray) -> list[np.ndarray]:
    """The query indices in runs whose candidates add up to about _CHUNK_PAIRS (a run holds one
    query at least)."""
    total = np.cumsum(counts)
    bounds = np.searchsorted(total, np.arange(_CHUNK_PAIRS, int(total[-1]) if len(total) else 0, _CHUNK_PAIRS), "right")
    edges = np.unique(np.concatenate([[0], bounds, [len(counts)]]))
    return [np.arange(lo, hi) for lo, hi in zip(edges[:-1], edges[1:]) if counts[lo:hi].sum()]


def _bands(max_distance: int) -> list[int]:
    """Bit masks of max_distance + 2 bands that cover the 64 bits, each taking every (max_distance + 2)th
    bit. Interleaved, not consecutive, bits: consecutive bits are neighbouring frequencies, and the
    lowest of a centred subject (MNIST's digits) are nearly the same in every image, so a band of them
    is shared by thousands."""
    count = max_distance + 2
    return [sum(1 << bit for bit in range(band, 64, count)) for band in range(count)]


def _band_pairs(max_distance: int) -> list[np.uint64]:
    """The masks of every pair of bands, in itertools.combinations' order."""
    return [np.uint64(a | b) for a, b in itertools.combinations(_bands(max_distance), 2)]


def _agreeing_bands(difference: np.ndarray, max_distance: int) -> np.ndarray:
    """For each XOR of two hashes, the set of bands they agree on, as bits of an integer (band k: bit k)."""
    agree = np.zeros(len(difference), dtype=np.int64)
    for k, band in enumerate(_bands(max_distance)):
        agree |= ((difference & np.uint64(band)) == 0).astype(np.int64) << k
    return agree


def _first_agreeing_pair(max_distance: int) -> np.ndarray:
    """For each set of agreeing bands (an integer, as _agreeing_bands gives), the number of the first pair
    of bands in it (-1 with fewer than two)."""
    count = max_distance + 2
    pairs = list(itertools.combinations(range(count), 2))
    table = np.full(1 << count, -1)
    for agree in range(1 << count):
        table[agree] = next((i for i, (a, b) in enumerate(pairs) if agree >> a & 1 and agree >> b & 1), -1)
    return table


def _first_of_same(ids: np.ndarray) -> np.ndarray:
    """For each image, the first image with the same id."""
    first = np.full(ids.max() + 1 if len(ids) else 0, -1)
    first[ids[::-1]] = np.arange(len(ids))[::-1]
    return first[ids]


def _groups(ids: np.ndarray, labels: np.ndarray, parts: np.ndarray,
            kind: Callable[[np.ndarray], str]) -> tuple[DuplicateGroup, ...]:
    """The ids shared by two images or more, each as a DuplicateGroup, in order of their first member."""
    _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    shared = np.flatnonzero(counts.reshape(-1)[inverse.reshape(-1)] > 1)  # most images have an id of their own
    order = shared[np.argsort(ids[shared], kind="stable")]
    bounds = np.flatnonzero(np.diff(ids[order])) + 1
    groups = [members for members in np.split(order, bounds) if len(members) > 1]
    groups.sort(key=lambda members: members[0])
    return tuple(DuplicateGroup(kind(members), tuple(int(i) for i in members),
                                tuple(str(p) for p in parts[members]), tuple(int(y) for y in labels[members]))
                 for members in groups)


def balance(labels: np.ndarray, parts: np.ndarray, num_classes: int, minimum: int) -> tuple[PartBalance, ...]:
    """Each part's PartBalance, in the order the parts first appear."""
    found = []
    for part in dict.fromkeys(str(p) for p in parts):
        counts = np.bincount(labels[parts == part], minlength=num_classes)
        ratio = float(counts.max() / counts.min()) if counts.min() else float("inf")
        found.append(PartBalance(part, tuple(int(c) for c in counts), ratio,
                                 tuple(int(c) for c in np.flatnonzero(counts < minimum))))
    return tuple(found)


def _pack(bits: np.ndarray) -> np.ndarray:
    """(..., 64) bools to (...) uint64, the first bit the highest."""
    return np.packbits(bits, axis=-1).view(">u8")[..., 0].astype(np.uint64)


def _shrunk(images: np.ndarray, side: int) -> np.ndarray:
    """The images halved (each 2x2 block averaged, OpenCV's INTER_AREA) while both sides are at least twice
    `side`: for side 32, 150x150 becomes 37x37, 64x64 32x32, 28x28 stays. An odd last row or column is left out
    before a halving, so that each one is an exact 2x2 average, OpenCV's fast case (a resize to another
    ratio takes ten times as long); every image of a set has one size, so all lose the same pixels.
    OpenCV releases the GIL: preprocess hashes in its decoding threads."""
    _, height, width, channels = images.shape
    if min(height, width) < 2 * side:
        return images
    import cv2  # here: split, which only examines, does not pay its import

    def halved(image: np.ndarray) -> np.ndarray:
        while min(image.shape[:2]) >= 2 * side:
            h, w = image.shape[0] // 2, image.shape[1] // 2
            image = cv2.resize(image[:2 * h, :2 * w], (w, h), interpolation=cv2.INTER_AREA)
        return image

    shrunk = [halved(image) for image in images]
    return np.stack(shrunk).reshape(len(images), *shrunk[0].shape[:2], channels)


def _regions(pixels: np.ndarray, cells: int) -> np.ndarray:
    """(n, rungs, cells, cells, C): each rung's centred region of each image, area-averaged to
    cells x cells. Two large matrix products (rows, then columns), all images and rungs at once."""
    n, height, width, channels = pixels.shape
    rungs = len(LADDER)
    rows = np.concatenate([_area_matrix(height, cells, f) for f in LADDER])  # (rungs * cells, H)
    cols = np.stack([_area_matrix(width, cells, f).T for f in LADDER])  # (rungs, W, cells)
    by_row = rows @ pixels.transpose(1, 0, 2, 3).reshape(height, n * width * channels)
    by_row = by_row.reshape(rungs, cells, n, width, channels).transpose(0, 1, 2, 4, 3)
    both = by_row.reshape(rungs, cells * n * channels, width) @ cols  # (rungs, cells * n * C, cells)
    return both.reshape(rungs, cells, n, channels, cells).transpose(2, 0, 1, 4, 3)


@functools.cache
def _dct_matrix(side: int) -> np.ndarray:
    """The orthonormal DCT-II matrix: row k is frequency k."""
    k, x = np.arange(side)[:, None], np.arange(side)[None, :]
    matrix = np.cos(np.pi * (2 * x + 1) * k / (2 * side)) * np.sqrt(2 / side)
    matrix[0] /= np.sqrt(2)
    return _frozen(matrix.astype(np.float32))


@functools.cache
def _area_matrix(length: int, cells: int, fraction: float) -> np.ndarray:
    """(cells, length) weights: cell k is the mean of the pixels its share of the centred `fraction` of
    the side covers, partly covered pixels weighted by the part covered."""
    low = length * (1 - fraction) / 2
    edges = low + np.arange(cells + 1) * (length * fraction / cells)
    pixel = np.arange(length)
    overlap = (np.minimum(edges[1:, None], pixel[None, :] + 1) - np.maximum(edges[:-1, None], pixel[None, :]))
    weights = np.clip(overlap, 0, None)
    return _frozen((weights / weights.sum(axis=1, keepdims=True)).astype(np.float32))


def _frozen(array: np.ndarray) -> np.ndarray:
    """A cached matrix, read-only: every caller shares it."""
    array.flags.writeable = False
    return array
