"""The lessons' network on real MNIST digits (../shared; skipped where absent)."""

import numpy as np

from imgclf.datasets import get_dataset
from imgclf.idx import read_idx
from imgclf.params import TrainParams
from imgclf.preprocess import prepare_arrays
from imgclf.training import make_deterministic, train_network


def test_mlp_reaches_95_percent_on_real_mnist(shared_mnist):
    raw = {"x_train": read_idx(shared_mnist / "t10k-images-idx3-ubyte.gz"),
           "y_train": read_idx(shared_mnist / "t10k-labels-idx1-ubyte.gz")}
    data = prepare_arrays(get_dataset("mnist"), raw)
    x, y = data["x_train"], data["y_train"]
    make_deterministic(42)
    train = TrainParams(hidden_units=(128,), activation="relu", optimizer="adam", epochs=5)
    # validation only monitors; it is a slice of the 8,000 training digits
    result = train_network((x[:8000], y[:8000]), (x[7000:8000], y[7000:8000]), 10, train, seed=42)
    accuracy = np.mean(result.model.predict(x[8000:], verbose=0).argmax(axis=1) == y[8000:])
    assert accuracy >= 0.95, accuracy
