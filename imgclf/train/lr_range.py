"""The learning-rate range test of the lessons: python -m imgclf.train.lr_range [--steps 300 ...].

Trains the network of params.yaml on data/split's training part, as the train stage would, for up to
--steps batches while the rate rises exponentially from --min-lr to --max-lr; stops once the loss
diverges; writes plots/lr_range.png and plots/lr_range.csv and logs both, with the suggested rate, as
an MLflow run of its own (tagged stage=lr_range) in the params' experiment. A command, not a stage:
`dvc repro` never runs it, and its outputs are no stage's.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from importlib.metadata import version

from imgclf import console, layout
from imgclf.artifacts import figure_writer, png_bytes, read_json, read_part, text_writer, write_together
from imgclf.collector import importing
from imgclf.errors import PipelineError
from imgclf.params import Params, flatten, load_params
from imgclf.plots import lr_range_figure
from imgclf.runtime import run_stage
from imgclf.tracking.access import refusals

STAGE_TAG = "lr_range"  # the run's `stage` tag: not a training run, whose tag is train


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m imgclf.train.lr_range", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="batches at most (default: %(default)s)")
    parser.add_argument("--min-lr", type=float, default=1e-6, help="the first batch's rate (default: %(default)g)")
    parser.add_argument("--max-lr", type=float, default=1.0, help="the last batch's rate (default: %(default)g)")
    parser.add_argument("--diverge", type=float, default=4.0,
                        help="stop once the smoothed loss exceeds this many times its lowest (default: %(default)g)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    params = load_params(layout.PARAMS)
    _check_split()
    with importing():
        console.quiet_import("keras")  # TensorFlow's start-up lines dropped, as in the train stage
    from imgclf.train.range_test import RangeSettings, rows_to_csv, run_range_test
    from imgclf.train.result import DataSpec
    from imgclf.train.training import make_deterministic

    settings = RangeSettings(args.min_lr, args.max_lr, args.steps, args.diverge)
    train = read_part(layout.SPLIT_DIR, "train")
    meta = read_json(layout.meta_file(layout.SPLIT_DIR))
    make_deterministic(params.seed)
    result = run_range_test(train, DataSpec(len(meta["class_names"]), meta["pixel_scale"]), params.train,
                            params.seed, settings)
    figure, csv = lr_range_figure(result.rows, result.suggestion, result.diverged_at), rows_to_csv(result.rows)
    with refusals(params.mlflow):  # a tracking server's 401 or 403: one line, and no output written
        run_id = _log_run(params, settings, result, png_bytes(figure), csv)
    write_together({layout.LR_RANGE_PNG: figure_writer(figure), layout.LR_RANGE_CSV: text_writer(csv)})
    diverged = f"the loss diverged at {result.diverged_at:.3g}" if result.diverged_at else (
        f"the loss did not diverge up to {settings.max_lr:g} (raise --max-lr to see where it does)")
    print(f"lr_range: suggested learning rate {result.suggestion:.3g} (a tenth of the rate of the lowest smoothed "
          f"loss); {diverged}; {len(result.rows)} batches")
    print(f"lr_range: {layout.LR_RANGE_PNG}, {layout.LR_RANGE_CSV} (MLflow run {run_id}); try it: "
          f"dvc exp run -S train.learning_rate={result.suggestion:.2g}")


def _check_split() -> None:
    """The training part and its meta.json, which the split stage writes: a one-line error naming the fix."""
    needed = [*layout.part_files(layout.SPLIT_DIR, "train"), layout.meta_file(layout.SPLIT_DIR)]
    missing = [str(path) for path in needed if not path.exists()]
    if missing:
        raise PipelineError(f"{missing[0]} not found: the range test trains on the split's training part; "
                            f"run `dvc repro split` first (from the project root)")


def _log_run(params: Params, settings, result, png: bytes, csv: str) -> str:
    """The test as an MLflow run of its own in the params' experiment, tagged so that no one takes it for a
    training: stage=lr_range, no model. Its id."""
    import mlflow
    from mlflow.entities import Metric

    from imgclf.tracking import store
    from imgclf.tracking.run_page import DESCRIPTION_TAG, run_name
    from imgclf.train.devices import describe_device

    experiment_id = store.use_experiment(params.mlflow.experiment_name)
    tags = store.run_tags(params.data.dataset, describe_device(), version("tensorflow"))
    tags |= {"stage": STAGE_TAG, DESCRIPTION_TAG: (
        f"Learning-rate range test of **{params.train.model}** on **{params.data.dataset}** (not a training: "
        f"no model). Suggested rate: {result.suggestion:.3g}; see lr_range/lr_range.png.\n")}
    name = f"lr-range-{run_name(params.data.dataset, params.train.model, tags['mlflow.source.git.commit'], None)}"
    with store.stage_run(experiment_id=experiment_id, run_name=name, tags=tags) as run:
        mlflow.log_params(flatten(params) | {f"lr_range.{k}": v for k, v in dataclasses.asdict(settings).items()})
        now = int(time.time() * 1000)
        series = [Metric(f"lr_range_{column}", row[column], now, row["step"]) for row in result.rows
                  for column in ("loss", "smoothed_loss", "learning_rate")]
        for start in range(0, len(series), 1000):  # a batch holds at most 1000 metrics
            mlflow.MlflowClient().log_batch(run.info.run_id, metrics=series[start:start + 1000])
        mlflow.log_metrics({"suggested_learning_rate": result.suggestion,
                            **({"diverged_learning_rate": result.diverged_at} if result.diverged_at else {})})
        store.log_bytes(png, "lr_range/lr_range.png")
        store.log_bytes(csv.encode(), "lr_range/lr_range.csv")
    return run.info.run_id


if __name__ == "__main__":
    run_stage(lambda: main(sys.argv[1:]))
