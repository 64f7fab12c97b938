"""Classify image files with the trained model: python -m imgclf.serve.predict photo.png [...]."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from imgclf import layout
from imgclf.artifacts import write_json
from imgclf.errors import PipelineError
from imgclf.evaluate.scoring import load_scorer, tta_warning, with_tta
from imgclf.params import load_params
from imgclf.records import ModelRecord
from imgclf.runtime import run_stage
from imgclf.serve.photos import predict_files

log = logging.getLogger("imgclf.serve.predict")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m imgclf.serve.predict", description=__doc__)
    parser.add_argument("images", nargs="+", help="image files to classify (JPEG, PNG, BMP, GIF, WebP)")
    parser.add_argument("--model", type=Path, default=layout.MODEL, help="trained .keras model (default: %(default)s)")
    parser.add_argument("--top", type=int, default=3, help="how many classes to print per image (default: 3)")
    parser.add_argument("--json", type=Path, help="also write the answers to this JSON file")
    parser.add_argument("--tta", choices=("none", "flip"),
                        help="test-time augmentation: flip averages each image's probabilities with its mirror "
                             "image's (default: evaluate.tta of params.yaml in this folder, else none)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    info_path = args.model.with_suffix(".json")
    if not args.model.exists() or not info_path.exists():
        raise PipelineError(f"no trained model at {args.model} (and {info_path}); run `dvc repro` first")
    if args.top < 1:
        raise PipelineError(f"--top must be at least 1, got {args.top}")
    record = ModelRecord.read(info_path)
    tta = args.tta or _params_tta()
    if warning := tta_warning(tta, record.dataset):
        log.warning("%s", warning)
    score = with_tta(load_scorer(args.model, record.onnx_sha256)[0], tta)
    answers = predict_files(score, record.serving, args.images, args.top)
    for path, ranked in answers.items():
        print(f"{path}: " + ", ".join(f"{name} ({p:.3f})" for name, p in ranked))
    if args.json:
        write_json(args.json, {path: [{"class": n, "probability": p} for n, p in r] for path, r in answers.items()})


def _params_tta() -> str:
    """evaluate.tta of the project's params.yaml, so that predict answers as evaluate scored; none without one."""
    return load_params(layout.PARAMS).evaluate.tta if layout.PARAMS.exists() else "none"


if __name__ == "__main__":
    run_stage(lambda: main(sys.argv[1:]))
