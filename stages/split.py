"""Stage split: stratified, seeded train / val / test; counts to metrics/split.json."""

from imgclf import layout
from imgclf.artifacts import read_arrays, write_arrays, write_json
from imgclf.errors import run_stage
from imgclf.params import load_params
from imgclf.split import split_stratified, summarize_splits


def main() -> None:
    params = load_params(layout.PARAMS)
    arrays = read_arrays(layout.PROCESSED)
    class_names = arrays["class_names"]
    splits = split_stratified(arrays, params.split.val_fraction, params.split.test_fraction, params.seed)
    for name, (x, y) in splits.items():
        write_arrays(layout.split_file(name), x=x, y=y, class_names=class_names)
    test_source = "source" if "x_test" in arrays else "carved"
    summary = summarize_splits(splits, class_names.tolist(), test_source)
    write_json(layout.SPLIT_METRICS, summary)
    print(f"split: train {summary['train']}, val {summary['val']}, test {summary['test']} ({test_source} test split)")


if __name__ == "__main__":
    run_stage(main)
