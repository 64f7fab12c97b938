"""Benchmark (not a test): the data checks on real MNIST (70,000 digits), as the pipeline runs them.

    python benchmarks/checks_mnist.py [--mnist ../shared/data/mnist] [--runs 3]

Times what the checks add to a `dvc repro` of MNIST: preprocess hashing each part's images
(imgclf.data.doctor.hash_images, once per part, as the stage does) and split examining them
(imgclf.data.checks.examine_parts and treat, as the stage does, the images memory-mapped from
.npy files). Prints each run, then min and median of each step and of both, and the findings.
The target: at most 5 s in all on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from imgclf.data import checks  # noqa: E402 (this checkout's package)
from imgclf.data.doctor import HashedPart, hash_images  # noqa: E402
from imgclf.data.idx import read_idx  # noqa: E402
from imgclf.params import ChecksParams  # noqa: E402

FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=PROJECT.parent / "shared/data/mnist")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        images, labels = {}, {}
        for part, (x_name, y_name) in FILES.items():
            path = Path(folder) / f"{part}_x.npy"
            np.save(path, read_idx(args.mnist / x_name)[..., np.newaxis])
            images[part] = np.load(path, mmap_mode="r")  # as split reads them
            labels[part] = read_idx(args.mnist / y_name).astype(np.int64)
        times: dict[str, list[float]] = {"hash": [], "examine": []}
        for run in range(1, args.runs + 1):
            start = time.perf_counter()
            hashed = {part: HashedPart(hash_images(np.asarray(x)), np.full((len(x), 2), 28))
                      for part, x in images.items()}
            middle = time.perf_counter()
            examined = checks.examine_parts(hashed, labels, images, 10, (28, 28), ChecksParams())
            checks.treat(examined, ChecksParams(), [str(d) for d in range(10)])
            end = time.perf_counter()
            times["hash"].append(middle - start)
            times["examine"].append(end - middle)
            print(f"run {run}: hash {middle - start:.2f} s, examine {end - middle:.2f} s")
    total = [a + b for a, b in zip(times["hash"], times["examine"])]
    print(f"\n70,000 MNIST digits, {args.runs} runs (min / median):")
    for name, values in (*times.items(), ("both", total)):
        print(f"  {name}: {min(values):.2f} / {statistics.median(values):.2f} s")
    print(f"findings: {examined.findings.counts()}")


if __name__ == "__main__":
    main()
