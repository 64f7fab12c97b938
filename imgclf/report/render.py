"""The human-readable report: one self-contained HTML page and its Markdown twin."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

import jinja2
import markupsafe
import pandas as pd

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("imgclf.report", "templates"),
    autoescape=jinja2.select_autoescape(["html.j2"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class RunPointer:
    """How the report names the model's MLflow training run: by what a rerun reproduces, never by its id.

    The report is a DVC output that a rerun reproduces byte for byte, and a run id is new on every
    training; the run carries the sha256 of the model file it wrote as a tag, which finds it.
    """

    experiment: str  # mlflow.experiment_name
    model_sha256: str  # of models/model.keras: the run's tag model.sha256
    search: str  # the MLflow search that lists the run
    link: str | None  # a tracking server's UI page of that search; None for a local store


def build_context(params: dict, split: dict, train: dict, evaluation: dict, classes: dict,
                  class_weights: dict[str, float] | None, mistakes: list[dict], images: dict[str, Path],
                  run: RunPointer, checks: dict, group_strips: list[Path], *, confused: list[dict],
                  calibration: dict) -> dict:
    """Everything the templates show; `images` maps a figure's role to its PNG file; `checks` is the data
    checks' findings.json, `group_strips` the PNG of each of its groups (their copies side by side);
    `confused` and `calibration` are evaluate's plots/confused_pairs.json and plots/calibration.json."""
    return {
        "confused": confused,
        "calibration": calibration,
        "calibration_words": calibration_words(calibration),
        "top_k": {int(key[3:-len("_accuracy")]): value for key, value in evaluation.items()
                  if key.startswith("top") and key.endswith("_accuracy")},
        "checks": checks,
        "group_strips": group_strips,
        "run": run,
        "dataset": params["data.dataset"],
        "model": params["train.model"],
        "params": params,
        "split": split,
        "train": train,
        "evaluation": evaluation,
        "classes": classes,
        "class_weights": class_weights,
        "mistakes": mistakes,
        "images": images,
    }


CALIBRATION_BINS_TOLD = 3  # the most populated confidence bins the report puts in words


def calibration_words(calibration: dict) -> list[str]:
    """How far the model's confidence is from its accuracy, in sentences: on the whole test set, then in the
    confidence bins that hold the most images (most confident first)."""
    confidence, accuracy, ece = calibration["confidence"], calibration["accuracy"], calibration["ece"]
    gap = confidence - accuracy
    verdict = ("as sure as it is right" if round(abs(gap) * 100, 1) == 0 else
               f"{'over' if gap > 0 else 'under'}confident by {abs(gap) * 100:.1f} percentage points")
    words = [f"On average the model is {confidence:.1%} sure of its answer and right {accuracy:.1%} of the time: "
             f"{verdict}. Bin by bin (15 equal bins of confidence, weighted by their images) its confidence is "
             f"{ece * 100:.1f} points from its accuracy (expected calibration error {ece:.4f})."]
    bins = [b for b in calibration["bins"] if b["count"]]
    told = sorted(sorted(bins, key=lambda b: -b["count"])[:CALIBRATION_BINS_TOLD], key=lambda b: -b["lower"])
    for b in told:
        words.append(f"When it is {b['lower']:.0%}–{b['upper']:.0%} sure ({b['count']} test images, "
                     f"{b['confidence']:.1%} on average), it is right {b['accuracy']:.1%} of the time.")
    return words


# Params sections that apply to one model only (train.model), left out of the report of another.
_MODEL_SECTIONS = ("cnn", "transfer", "logreg")


def relevant_params(flat: dict) -> dict:
    """The flattened params without the sections of models other than train.model (an MLP's report lists no cnn.*)."""
    other = set(_MODEL_SECTIONS) - {flat["train.model"]}
    return {key: value for key, value in flat.items()
            if not (key.startswith("train.") and key.count(".") > 1 and key.split(".")[1] in other)}


def tables(context: dict) -> dict[str, tuple[pd.DataFrame, str | None]]:
    """The report's tables, each with the format of its floats (None: as pandas writes them)."""
    classes = pd.DataFrame.from_dict(context["classes"], orient="index")[["precision", "recall", "f1", "support"]]
    classes = classes.rename(columns={"f1": "F1"}).rename_axis("class").reset_index()
    if context["class_weights"]:
        classes["class weight"] = classes["class"].map(context["class_weights"])
    mistakes = pd.DataFrame(context["mistakes"], columns=["index", "true", "predicted", "confidence"])
    confused = pd.DataFrame([{"true": pair["actual"], "predicted": pair["predicted"], "count": pair["count"],
                              "examples (test index)": ", ".join(map(str, pair["examples"]))}
                             for pair in context["confused"]],
                            columns=["true", "predicted", "count", "examples (test index)"])
    return {
        "evaluation": (_key_value(context["evaluation"], "metric"), ".4f"),
        "train": (_key_value(context["train"], "metric"), None),
        "classes": (classes, ".3f"),
        "mistakes": (mistakes.rename(columns={"index": "test index"}), ".3f"),
        "confused": (confused, None),
        "split": (_key_value(context["split"], "split"), None),
        "checks": (_key_value(_flat_counts(context["checks"]["counts"]), "finding"), None),
        "params": (_key_value(context["params"], "param"), None),
    }


def render_html(context: dict) -> str:
    """The HTML page, every image embedded as a data URI so the file stands alone."""
    embedded = {role: _data_uri(path) for role, path in context["images"].items()}
    embedded["groups"] = [_data_uri(path) for path in context["group_strips"]]
    # pandas escapes the cells (class names and params are the user's text); the page takes the table as is.
    html = {name: markupsafe.Markup(frame.to_html(index=False, border=0, classes="metrics",
                                                  float_format=fmt and f"{{:{fmt}}}".format))
            for name, (frame, fmt) in tables(context).items()}
    return _ENV.get_template("report.html.j2").render(context, embedded=embedded, tables=html)


def render_markdown(context: dict, relative_to: Path) -> str:
    """The Markdown twin (for CI summaries and PR comments); images are linked by relative path."""
    links = {role: Path(_relpath(path, relative_to)).as_posix() for role, path in context["images"].items()}
    links["groups"] = [Path(_relpath(path, relative_to)).as_posix() for path in context["group_strips"]]
    markdown = {name: _markdown(frame, fmt) for name, (frame, fmt) in tables(context).items()}
    return _ENV.get_template("report.md.j2").render(context, links=links, tables=markdown)


def _markdown(frame: pd.DataFrame, fmt: str | None) -> str:
    if frame.empty:  # tabulate fails on a table without rows (a test set without mistakes); the template says so
        return ""
    # A column of mixed values (a key-value table) is text to tabulate: its floats are formatted here.
    mixed = [name for name, column in frame.items() if column.dtype == object]
    frame = frame.assign(**{name: frame[name].map(lambda v: format(v, fmt or "g") if isinstance(v, float) else v)
                            for name in mixed})
    # tabulate would read a text cell such as class "007" as the number 7: only numeric columns are numbers.
    text = [i for i, (_, column) in enumerate(frame.items()) if not pd.api.types.is_numeric_dtype(column)]
    return frame.to_markdown(index=False, floatfmt=fmt or "g", disable_numparse=text)


def _flat_counts(counts: dict) -> dict:
    """metrics/checks.json as rows: `imbalance (train)` for a per-split figure; an infinite imbalance (a
    class with no image in the split) as the word."""
    flat = {}
    for key, value in counts.items():
        for split, number in (value.items() if isinstance(value, dict) else [(None, value)]):
            name = key.replace("_", " ") + (f" ({split})" if split else "")
            flat[name] = "inf (a class has none)" if number is None else number
    return flat


def _key_value(values: dict, key: str) -> pd.DataFrame:
    # One value per row, each its own type: a column of numbers would turn 30 epochs into 30.000000.
    return pd.DataFrame({key: list(values), "value": pd.Series(list(values.values()), dtype=object)})


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _relpath(path: Path, start: Path) -> str:
    return os.path.relpath(Path(path).resolve(), Path(start).resolve())
