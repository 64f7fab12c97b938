"""The human-readable report: one self-contained HTML page and its Markdown twin."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import jinja2

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("imgclf", "templates"),
    autoescape=jinja2.select_autoescape(["html.j2"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def build_context(params: dict, split: dict, train: dict, evaluation: dict, classes: dict,
                  class_weights: dict[str, float] | None, mistakes: list[dict], images: dict[str, Path]) -> dict:
    """Everything the templates show; `images` maps a figure's role to its PNG file."""
    return {
        "dataset": params["data.dataset"],
        "model": params["train.model"],
        "params": params,
        "split": {k: v for k, v in split.items() if k != "per_class"},
        "train": train,
        "evaluation": evaluation,
        "classes": classes,
        "class_weights": class_weights,
        "mistakes": mistakes,
        "images": images,
    }


def render_html(context: dict) -> str:
    """The HTML page, every image embedded as a data URI so the file stands alone."""
    embedded = {role: _data_uri(path) for role, path in context["images"].items()}
    return _ENV.get_template("report.html.j2").render(context, embedded=embedded)


def render_markdown(context: dict, relative_to: Path) -> str:
    """The Markdown twin (for CI summaries and PR comments); images are linked by relative path."""
    links = {role: Path(_relpath(path, relative_to)).as_posix() for role, path in context["images"].items()}
    return _ENV.get_template("report.md.j2").render(context, links=links)


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _relpath(path: Path, start: Path) -> str:
    return os.path.relpath(Path(path).resolve(), Path(start).resolve())
