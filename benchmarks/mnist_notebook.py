"""The notebook the pipeline replaces (run by pipeline_vs_notebook.py, not a test).

    python benchmarks/mnist_notebook.py MNIST_FOLDER [--epochs 5]

What a learner writes in a notebook for the lessons' first run: read the four MNIST IDX
files, divide by 255, fit an MLP of 128 relu units with Adam, batch 32, 10% held out for
validation, and score the test set. Prints one JSON line: test accuracy and fit timing.
"""

import argparse
import gzip
import json
import time
from pathlib import Path

import keras
import numpy as np


def read_idx(path: Path) -> np.ndarray:
    data = gzip.decompress(path.read_bytes())
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mnist", type=Path)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    x_train = read_idx(args.mnist / "train-images-idx3-ubyte.gz") / 255.0
    y_train = read_idx(args.mnist / "train-labels-idx1-ubyte.gz")
    x_test = read_idx(args.mnist / "t10k-images-idx3-ubyte.gz") / 255.0
    y_test = read_idx(args.mnist / "t10k-labels-idx1-ubyte.gz")
    keras.utils.set_random_seed(42)
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(),
                              keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    started = time.perf_counter()
    model.fit(x_train, y_train, batch_size=32, epochs=args.epochs, validation_split=0.1, verbose=0)
    fit_seconds = time.perf_counter() - started
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    samples = int(len(y_train) * 0.9) * args.epochs
    print(json.dumps({"accuracy": round(float(accuracy), 4), "fit_seconds": round(fit_seconds, 2),
                      "fit_samples_per_second": round(samples / fit_seconds)}))


if __name__ == "__main__":
    main()
