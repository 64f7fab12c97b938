"""Stage preprocess: decode data/raw and normalize pixels to [0, 1]."""

from imgclf import layout
from imgclf.artifacts import write_arrays
from imgclf.datasets import get_dataset
from imgclf.errors import run_stage
from imgclf.params import load_params
from imgclf.preprocess import load_raw, prepare_arrays


def main() -> None:
    params = load_params(layout.PARAMS)
    spec = get_dataset(params.data.dataset)
    arrays = prepare_arrays(spec, load_raw(spec, layout.RAW_DIR))
    write_arrays(layout.PROCESSED, **arrays)
    sizes = {k: v.shape for k, v in arrays.items() if k.startswith("x_")}
    print(f"preprocess: {spec.name} {sizes} -> {layout.PROCESSED}")


if __name__ == "__main__":
    run_stage(main)
