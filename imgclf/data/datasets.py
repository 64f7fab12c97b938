"""The datasets the pipeline knows: where their files come from and what their classes are."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RemoteFile:
    name: str
    sha256: str


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: its classes, its pixel maximum, and (when remote) its pinned files."""

    name: str
    class_names: tuple[str, ...]
    max_value: float
    files: tuple[RemoteFile, ...] = ()
    sources: tuple[str, ...] = ()  # base URLs, tried in order

    @property
    def bundled(self) -> bool:
        return not self.files


DIGIT_NAMES = tuple(str(d) for d in range(10))

_IDX = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

DATASETS: dict[str, DatasetSpec] = {
    # 1,797 8x8 digits inside scikit-learn: the offline default.
    "digits": DatasetSpec("digits", DIGIT_NAMES, max_value=16.0),
    "mnist": DatasetSpec(
        "mnist",
        DIGIT_NAMES,
        max_value=255.0,
        files=tuple(RemoteFile(n, h) for n, h in zip(_IDX, (
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        ))),
        sources=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "https://yann.lecun.com/exdb/mnist/",
        ),
    ),
    "fashion_mnist": DatasetSpec(
        "fashion_mnist",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        max_value=255.0,
        files=tuple(RemoteFile(n, h) for n, h in zip(_IDX, (
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        ))),
        sources=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        ),
    ),
}


def get_dataset(name: str) -> DatasetSpec:
    return DATASETS[name]


def load_bundled_digits() -> dict[str, np.ndarray]:
    """scikit-learn's 8x8 digits (values 0..16) as raw arrays."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return {"images": bunch.images.astype(np.uint8), "labels": bunch.target.astype(np.int64)}
