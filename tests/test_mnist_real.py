"""The lessons' network on real MNIST digits (../shared; skipped where absent, required in CI)."""

import json
import re
import sys

import numpy as np
import pytest
from PIL import Image

from imgclf.artifacts import SplitPart
from imgclf.data.datasets import get_dataset
from imgclf.data.idx import read_idx
from imgclf.data.preprocess import prepare_arrays
from imgclf.params import TrainParams
from imgclf.train.training import DataSpec, make_deterministic, train_network
from tests.dvc_project import dvc, make_project, run


def test_mlp_reaches_95_percent_on_real_mnist(shared_mnist):
    raw = {"x_train": read_idx(shared_mnist / "t10k-images-idx3-ubyte.gz"),
           "y_train": read_idx(shared_mnist / "t10k-labels-idx1-ubyte.gz")}
    data, scale = prepare_arrays(get_dataset("mnist"), raw)
    x, y = data["x_train"], data["y_train"]
    make_deterministic(42)
    train = TrainParams(hidden_units=(128,), activation="relu", optimizer="adam", epochs=5)
    # validation only monitors; it is a slice of the 8,000 training digits
    result = train_network(SplitPart(x[:8000], y[:8000]), SplitPart(x[7000:8000], y[7000:8000]), DataSpec(10, scale),
                           train, seed=42)
    accuracy = np.mean(result.model.predict(x[8000:], verbose=0).argmax(axis=1) == y[8000:])
    assert accuracy >= 0.95, accuracy


@pytest.mark.slow
def test_dvc_repro_on_real_mnist_through_a_mirror_keeps_8_bit_pixels(shared_mnist_mirror, tmp_path):
    repo = make_project(tmp_path, {"data.dataset": "mnist", "data.mirror": str(shared_mnist_mirror),
                                   "train.epochs": 1})
    dvc(repo, "repro")
    meta = json.loads((repo / "data/split/meta.json").read_text())
    assert meta["pixel_scale"] == 1 / 255
    x = np.load(repo / "data/split/train_x.npy", mmap_mode="r")
    assert x.shape == (54000, 28, 28, 1) and x.dtype == np.uint8 and x.max() == 255
    # 8-bit at rest: a quarter of the float32 bytes for DVC to hash and cache
    assert (repo / "data/split/train_x.npy").stat().st_size == x.offset + 54000 * 784
    assert json.loads((repo / "metrics/eval.json").read_text())["accuracy"] >= 0.95
    # predict on a test digit saved as a PNG gives the class evaluate gave it
    probs = np.load(repo / "data/predictions/test_probs.npy")
    index = int(np.argmax(probs.max(axis=1)))
    Image.fromarray(np.load(repo / "data/split/test_x.npy")[index, ..., 0]).save(repo / "digit.png")
    out = run(repo, sys.executable, "-m", "imgclf.serve.predict", "digit.png", "--top", "1").stdout
    assert re.match(rf"digit\.png: {probs[index].argmax()} \(", out), out
