import gzip
import hashlib

import numpy as np
import pytest

from imgclf.data.idx import IdxError, parse_idx, read_idx
from tests.conftest import idx_bytes

# From ../shared/data/mnist-t10k/README.md
T10K_SHA256 = {
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
T10K_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_round_trip_of_generated_images(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(images)))
    np.testing.assert_array_equal(read_idx(path), images)


def test_uncompressed_and_other_element_types(tmp_path):
    values = np.array([1.5, -2.0, 3.25], dtype=">f4")
    data = bytes([0, 0, 0x0D, 1]) + (3).to_bytes(4, "big") + values.tobytes()
    path = tmp_path / "floats-idx1"
    path.write_bytes(data)
    np.testing.assert_array_equal(read_idx(path), values.astype(np.float32))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not an IDX file"),
        (b"\x1f\x8b\x08\x00rest", "not an IDX file"),
        (bytes([0, 0, 0x07, 1]) + b"\x00\x00\x00\x01x", "unknown IDX element type"),
        (bytes([0, 0, 0x08, 3, 0, 0]), "truncated inside its header"),
        (idx_bytes(np.zeros((4, 2, 2), np.uint8))[:-3], "truncated or corrupt"),
        (idx_bytes(np.zeros((4, 2, 2), np.uint8)) + b"extra", "truncated or corrupt"),
    ],
)
def test_malformed_idx_is_rejected_with_the_reason(data, message):
    with pytest.raises(IdxError, match=message):
        parse_idx(data, "sample")


def test_truncated_gzip_names_the_file_and_the_fix(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    full = gzip.compress(idx_bytes(np.zeros((50, 28, 28), np.uint8)))
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(IdxError) as info:
        read_idx(path)
    assert str(path) in str(info.value) and "rerun the download stage" in str(info.value)


def test_missing_file_says_to_download(tmp_path):
    with pytest.raises(IdxError, match="dvc repro download"):
        read_idx(tmp_path / "absent-idx1-ubyte.gz")


def test_reads_the_real_mnist_test_set_exactly(shared_mnist):
    for name, digest in T10K_SHA256.items():
        assert hashlib.sha256(gzip.decompress((shared_mnist / name).read_bytes())).hexdigest() == digest
    images = read_idx(shared_mnist / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(shared_mnist / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10_000,)
    assert np.bincount(labels, minlength=10).tolist() == T10K_LABEL_COUNTS
    assert labels[0] == 7
    assert images.max() == 255 and images.min() == 0
