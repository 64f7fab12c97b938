"""Stage download: fetch data.dataset into data/raw (verified, all-or-nothing)."""

from imgclf import layout
from imgclf.artifacts import atomic_dir, write_arrays
from imgclf.datasets import get_dataset
from imgclf.download import download_files
from imgclf.errors import run_stage
from imgclf.params import load_params
from imgclf.preprocess import load_bundled_digits


def main() -> None:
    params = load_params(layout.PARAMS)
    spec = get_dataset(params.data.dataset)
    with atomic_dir(layout.RAW_DIR) as staging:
        if spec.bundled:
            write_arrays(staging / f"{spec.name}.npz", **load_bundled_digits())
        else:
            download_files(spec, staging, params.data.mirror)
    print(f"download: {spec.name} -> {layout.RAW_DIR}")


if __name__ == "__main__":
    run_stage(main)
