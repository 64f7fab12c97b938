"""Stage evaluate: the test metrics (a DVC metric), the classification report and the most confused pairs (plain
outputs: one row per class or pair), the calibration bins, the confusion matrix and the figures (DVC plots)."""

import logging

from imgclf import layout
from imgclf.artifacts import (
    array_writer,
    bytes_writer,
    json_writer,
    read_json,
    read_part,
    remove_staging,
    write_together,
)
from imgclf.collector import importing
from imgclf.evaluate.evaluation import score_test_split
from imgclf.evaluate.overlap import in_background
from imgclf.evaluate.scoring import tta_warning
from imgclf.params import load_params
from imgclf.records import ModelRecord
from imgclf.runtime import run_stage
from imgclf.tracking.access import refusals

log = logging.getLogger("imgclf.stages.evaluate")


def main() -> None:
    remove_staging(*layout.OUTPUTS["evaluate"])
    params = load_params(layout.PARAMS)
    if warning := tta_warning(params.evaluate.tta, params.data.dataset):
        log.warning("%s", warning)
    record = ModelRecord.read(layout.MODEL_INFO)
    meta = read_json(layout.meta_file(layout.SPLIT_DIR))
    class_names = meta["class_names"]
    test = read_part(layout.SPLIT_DIR, "test")  # memory-mapped: its rows are read where they are used
    with in_background(score_test_split, record, test, meta, params.evaluate.tta) as scoring:
        # Imported only now, after the fork: MLflow's import and store, which take seconds, overlap the scoring.
        with importing():
            from imgclf.tracking.evaluation_run import evaluation_run, log_evaluation

        with refusals(params.mlflow), evaluation_run(params.mlflow.experiment_name, record) as (run, trained):
            scored = scoring.result()
            if run is not None:  # and the registered version's figures, which the report stage judges the champion by
                log_evaluation(run, trained, record, scored, class_names, test, params.data,
                               read_json(layout.CHECK_METRICS))
            # Outputs last and together, inside the run: when anything fails, the run is marked FAILED.
            write_together({
                layout.EVAL_METRICS: json_writer(scored.summary),
                layout.CLASS_REPORT: json_writer(scored.report),
                layout.CONFUSION: json_writer(scored.records),
                layout.CONFUSED_PAIRS: json_writer(scored.confused),
                layout.CALIBRATION: json_writer(scored.calibration),
                layout.PREDICTIONS: array_writer(scored.probs),
                **{path: bytes_writer(png) for path, png in scored.figures.items()},
            })
        if run is not None:
            print(f"evaluate: logged as MLflow run {run.info.run_id}, nested under training run "
                  f"{trained.run_id}")
    print(f"evaluate: {scored.summary}")


if __name__ == "__main__":
    run_stage(main)
