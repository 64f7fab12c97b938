"""Stage split: stratified, seeded train / val / test into data/split (meta.json: class names and counts per
class); the sizes to metrics/split.json."""

import numpy as np

from imgclf import layout
from imgclf.artifacts import (
    RowWriter,
    atomic_dir,
    read_json,
    read_part,
    remove_staging,
    rows_per_chunk,
    write_array,
    write_json,
)
from imgclf.data.split import count_classes, describe_source, plan_splits, summarize_splits
from imgclf.params import load_params
from imgclf.runtime import run_stage


def main() -> None:
    remove_staging(*layout.OUTPUTS["split"])
    params = load_params(layout.PARAMS)
    meta = read_json(layout.meta_file(layout.PROCESSED_DIR))
    parts = {part: read_part(layout.PROCESSED_DIR, part) for part in meta["parts"]}
    plan = plan_splits({name: part.y for name, part in parts.items()}, params.split.val_fraction,
                       params.split.test_fraction, params.seed)
    labels = {name: parts[part].y[rows] for name, (part, rows) in plan.items()}
    with atomic_dir(layout.SPLIT_DIR) as out:
        for name, (part, rows) in plan.items():
            x_path, y_path = layout.part_files(out, name)
            _copy_rows(parts[part].x, rows, x_path)
            write_array(y_path, labels[name])
        write_json(layout.meta_file(out), {"class_names": meta["class_names"], "pixel_scale": meta["pixel_scale"]})
        write_json(layout.class_counts_file(out), count_classes(labels, meta["class_names"]))
    source = describe_source(meta["parts"], meta.get("presplit", False))
    summary = summarize_splits(labels, source, len(meta["skipped"]))
    write_json(layout.SPLIT_METRICS, summary)
    given = [p for p in meta["parts"] if meta.get("presplit")]
    how = f"the {'/'.join(given)} folders as given" if given else {
        "source": "the source's own test split", "carved": "a carved test split"}[source]
    print(f"split: train {summary['train']}, val {summary['val']}, test {summary['test']} (using {how})")


def _copy_rows(x: np.ndarray, rows: np.ndarray, path) -> None:
    chunk = rows_per_chunk(x.shape[1:], x.dtype)  # memory stays bounded however large the data
    with RowWriter(path, x.shape[1:], dtype=x.dtype) as writer:
        for start in range(0, len(rows), chunk):
            writer.extend(x[rows[start:start + chunk]])


if __name__ == "__main__":
    run_stage(main)
