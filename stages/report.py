"""Stage report: render reports/report.html (self-contained) and its Markdown twin; last, settle the champion."""

import logging

import numpy as np

from imgclf import layout
from imgclf.artifacts import (
    SplitPart,
    atomic_dir,
    file_md5,
    read_array,
    read_json,
    read_part,
    remove_staging,
    save_figure,
    write_text,
)
from imgclf.collector import importing
from imgclf.evaluate.metrics import confident_mistakes
from imgclf.params import flatten, load_params
from imgclf.plots import image_grid_figure, image_strip_png, learning_curves_figure, prediction_captions
from imgclf.records import ModelRecord
from imgclf.report.render import RunPointer, build_context, relevant_params, render_html, render_markdown
from imgclf.runtime import run_stage
from imgclf.tracking.access import refusals
from imgclf.tracking.model_run import TrainingRun, describe, find_training_run, runs_link, search_filter
from imgclf.train.history import read_history

GRID = 25
MISTAKE_ROWS = 10

log = logging.getLogger("imgclf.stages.report")


def main() -> None:
    remove_staging(*layout.OUTPUTS["report"])
    loaded = load_params(layout.PARAMS)
    params = relevant_params(flatten(loaded))
    record = ModelRecord.read(layout.MODEL_INFO)
    with refusals(loaded.mlflow):
        trained = find_training_run(loaded.mlflow.experiment_name, record)  # named in the report by its model file
    test = read_part(layout.SPLIT_DIR, "test")
    x_test, y = test
    meta = read_json(layout.meta_file(layout.SPLIT_DIR))
    evaluation = read_json(layout.EVAL_METRICS)
    class_names = meta["class_names"]
    probs = np.asarray(read_array(layout.PREDICTIONS))
    mistakes = [
        {"index": int(i), "true": class_names[y[i]], "predicted": class_names[probs[i].argmax()],
         "confidence": float(probs[i].max())}
        for i in confident_mistakes(y, probs, MISTAKE_ROWS)
    ]
    checks = read_json(layout.findings_file(layout.CHECKS_DIR))
    with atomic_dir(layout.REPORT_DIR) as out:
        save_figure(out / "learning_curves.png", learning_curves_figure(read_history(layout.HISTORY)))
        strips = _group_strips(checks, read_array(layout.thumbnails_file(layout.CHECKS_DIR)), out / "duplicates")
        titles, colors = prediction_captions(y[:GRID], probs[:GRID], class_names)
        save_figure(out / "predictions.png", image_grid_figure(x_test[:GRID] * meta["pixel_scale"], titles,
                                                                           colors))
        images = {"curves": out / "learning_curves.png", "predictions": out / "predictions.png",
                  "augmentation": layout.AUGMENTATION_PNG, "confusion": layout.CONFUSION_PNG,
                  "mistakes": layout.MISTAKES_PNG, "confused": layout.CONFUSED_PNG,
                  "reliability": layout.RELIABILITY_PNG, **_explanations(loaded.train.model)}
        context = build_context(params, read_json(layout.SPLIT_METRICS), read_json(layout.TRAIN_METRICS),
                                evaluation, read_json(layout.CLASS_REPORT), record.class_weights, mistakes, images,
                                _run_pointer(loaded.mlflow.experiment_name, record, trained), checks, strips,
                                confused=read_json(layout.CONFUSED_PAIRS), calibration=read_json(layout.CALIBRATION))
        write_text(out / "report.html", render_html(context))
        write_text(out / "report.md", render_markdown(context, relative_to=out))
    print(f"report: {layout.REPORT_DIR / 'report.html'}, {layout.REPORT_DIR / 'report.md'}; the model's training run: "
          + (describe(trained) if trained else f"none in MLflow (search {search_filter(record.model_sha256)})"))
    if trained is not None and trained.registered_version:
        # Last of the last stage: a pipeline that failed anywhere before never moves the alias.
        with refusals(loaded.mlflow):
            _settle_champion(record, trained.registered_version, loaded.mlflow.champion_metric, test,
                             meta["pixel_scale"], evaluation)


def _settle_champion(record: ModelRecord, version: int, metric: str, test: SplitPart, pixel_scale: float,
                     figures: dict[str, float]) -> None:
    """Make the model's registered version the champion if it is of the champion's task and beats it by
    `metric` on this test set (the champion scored on it when it was not before)."""
    with importing():  # the registry and its scoring, only for a registered model
        from imgclf.tracking import store
        from imgclf.tracking.registry import Task, digest_test_set, promote_champion, score_version

    store.connect()
    name = record.registered_model
    promotion = promote_champion(
        name, version, Task(record.class_names, record.input_shape),
        digest_test_set(*(file_md5(path) for path in layout.part_files(layout.SPLIT_DIR, "test"))), figures, metric,
        lambda champion: score_version(name, champion, test, pixel_scale))
    if promotion.warning:
        log.warning("%s", promotion.note)
    else:
        print(f"report: {promotion.note}")


def _explanations(model: str) -> dict:
    """The train stage's figures that explain this model: what each hidden node sees (a network) and
    Grad-CAM (a convolutional one); the others' PNGs say only that they do not apply."""
    figures = {} if model == "logreg" else {"nodes": layout.NODES_PNG}
    return figures | ({"gradcam": layout.GRADCAM_PNG} if model in ("cnn", "transfer") else {})


def _group_strips(checks: dict, thumbnails: np.ndarray, folder) -> list:
    """One PNG per group the findings show: its copies' thumbnails side by side."""
    strips = []
    for number, group in enumerate(checks["groups"], start=1):
        shown = [m["thumbnail"] for m in group["members"] if m["thumbnail"] is not None]
        folder.mkdir(exist_ok=True)
        path = folder / f"group-{number:02d}.png"
        path.write_bytes(image_strip_png(np.asarray(thumbnails[shown])))
        strips.append(path)
    return strips


def _run_pointer(experiment: str, record: ModelRecord, trained: TrainingRun | None) -> RunPointer:
    """The training run as the report names it: its experiment and model file, a server's page of it.

    The run id is left to the console: the report is a DVC output, the same on every rerun.
    """
    sha = record.model_sha256
    return RunPointer(experiment, sha, search_filter(sha), runs_link(trained, sha))


if __name__ == "__main__":
    run_stage(main)
