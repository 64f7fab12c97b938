"""Stage split: the dataset doctor's checks, then stratified, seeded train / val / test into data/split
(meta.json: class names and pixel scale; class_counts.json); the sizes to metrics/split.json, the checks'
counts to metrics/checks.json and what they found, by file, to data/checks.

The checks run here, not in a stage of their own: what they find decides the split (a leaked copy left
out of test, a group of copies carved whole), and a stage between would copy every image once more.
"""

import logging

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
from imgclf.data import checks
from imgclf.data.doctor import HashedPart
from imgclf.data.split import count_classes, describe_source, plan_splits, summarize_splits
from imgclf.params import load_params
from imgclf.runtime import run_stage

# Named under imgclf, whose lines run_stage formats: run with -m, this module is __main__.
log = logging.getLogger("imgclf.stages.split")
WARNED = 10  # conflicting and leaked groups named on the console; findings.json and the report list them all


def main() -> None:
    remove_staging(*layout.OUTPUTS["split"])
    params = load_params(layout.PARAMS)
    meta = read_json(layout.meta_file(layout.PROCESSED_DIR))
    class_names = meta["class_names"]
    parts = {part: read_part(layout.PROCESSED_DIR, part) for part in meta["parts"]}
    hashed = {part: HashedPart.load(layout.hashes_file(layout.PROCESSED_DIR, part)) for part in meta["parts"]}
    image_size = next(iter(parts.values())).x.shape[1:3]
    examined = checks.examine_parts(hashed, {name: part.y for name, part in parts.items()},
                                    {name: part.x for name, part in parts.items()}, len(class_names), image_size,
                                    params.data.checks)
    treatment = checks.treat(examined, params.data.checks, class_names)  # a fail policy stops here, nothing written
    plan = plan_splits({name: part.y for name, part in parts.items()}, params.split.val_fraction,
                       params.split.test_fraction, params.seed, treatment.constraints)
    labels = {name: parts[part].y[rows] for name, (part, rows) in plan.items()}
    final = checks.final_splits(examined, plan)
    found = checks.metrics(examined, treatment, final, len(class_names), params.data.checks.min_class_count)
    with atomic_dir(layout.CHECKS_DIR) as out:
        write_json(layout.findings_file(out), checks.findings_record(examined, treatment, final, class_names, found,
                                                                         params.data.checks))
        shown = checks.thumbnail_rows(examined)
        write_array(layout.thumbnails_file(out), np.stack([parts[part].x[row] for part, row in shown]) if shown
                    else np.zeros((0, *next(iter(parts.values())).x.shape[1:]), np.uint8))
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
    write_json(layout.CHECK_METRICS, found)
    for line in checks.warnings(examined, params.data.checks, class_names, WARNED):
        log.warning("%s", line)
    print(f"{checks.summary_line(found)} -> {layout.findings_file(layout.CHECKS_DIR)}")
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
