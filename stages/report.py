"""Stage report: render reports/report.html (self-contained) and its Markdown twin."""

import numpy as np

from imgclf import layout
from imgclf.artifacts import atomic_dir, read_array, read_json, read_part, remove_staging, save_figure, write_text
from imgclf.evaluate.metrics import confident_mistakes
from imgclf.params import flatten, load_params
from imgclf.plots import image_grid_figure, learning_curves_figure, prediction_captions
from imgclf.records import ModelRecord
from imgclf.report.render import build_context, relevant_params, render_html, render_markdown
from imgclf.runtime import run_stage
from imgclf.train.history import read_history

GRID = 25
MISTAKE_ROWS = 10


def main() -> None:
    remove_staging(*layout.OUTPUTS["report"])
    params = relevant_params(flatten(load_params(layout.PARAMS)))
    x_test, y = read_part(layout.SPLIT_DIR, "test")
    meta = read_json(layout.meta_file(layout.SPLIT_DIR))
    class_names = meta["class_names"]
    probs = np.asarray(read_array(layout.PREDICTIONS))
    mistakes = [
        {"index": int(i), "true": class_names[y[i]], "predicted": class_names[probs[i].argmax()],
         "confidence": float(probs[i].max())}
        for i in confident_mistakes(y, probs, MISTAKE_ROWS)
    ]
    with atomic_dir(layout.REPORT_DIR) as out:
        save_figure(out / "learning_curves.png", learning_curves_figure(read_history(layout.HISTORY)))
        titles, colors = prediction_captions(y[:GRID], probs[:GRID], class_names)
        save_figure(out / "predictions.png", image_grid_figure(x_test[:GRID] * meta["pixel_scale"], titles,
                                                                           colors))
        images = {"curves": out / "learning_curves.png", "predictions": out / "predictions.png",
                  "augmentation": layout.AUGMENTATION_PNG, "confusion": layout.CONFUSION_PNG,
                  "mistakes": layout.MISTAKES_PNG}
        context = build_context(params, read_json(layout.SPLIT_METRICS), read_json(layout.TRAIN_METRICS),
                                read_json(layout.EVAL_METRICS), read_json(layout.CLASS_REPORT),
                                ModelRecord.read(layout.MODEL_INFO).class_weights, mistakes, images)
        write_text(out / "report.html", render_html(context))
        write_text(out / "report.md", render_markdown(context, relative_to=out))
    print(f"report: {layout.REPORT_DIR / 'report.html'}, {layout.REPORT_DIR / 'report.md'}")


if __name__ == "__main__":
    run_stage(main)
