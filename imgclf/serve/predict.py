"""Classify image files with the trained model: python -m imgclf.serve.predict photo.png [...]."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from imgclf import layout
from imgclf.artifacts import write_json
from imgclf.data.images import PIXEL_SCALE, load_image
from imgclf.errors import PipelineError
from imgclf.evaluate.scoring import Scorer, load_scorer, predict_proba
from imgclf.records import ModelRecord, ServingInfo
from imgclf.runtime import run_stage


def top_classes(probs: np.ndarray, class_names: list[str], k: int) -> list[tuple[str, float]]:
    """The k most probable classes with their probabilities, best first."""
    order = np.argsort(-probs, kind="stable")[:k]
    return [(class_names[i], float(probs[i])) for i in order]


def prepare_batch(serving: ServingInfo, images: list) -> np.ndarray:
    """Image files (paths or file objects) as the model's input, converted exactly as the training images were."""
    height, width, channels = serving.input_shape
    if serving.pixel_scale is None:
        raise PipelineError("this model's model.json records no pixel_scale: the model takes pixels scaled to "
                            "[0, 1], not pixels as stored (8-bit) as predict gives them; retrain it with "
                            "dvc repro --force train")
    batch = np.stack([load_image(p, (height, width), channels) for p in images])
    if serving.pixel_scale != PIXEL_SCALE:
        # A model of other stored pixels (digits: 0..16) gets the file's 0..255 on its own scale.
        batch = batch.astype(np.float32) * np.float32(PIXEL_SCALE / serving.pixel_scale)
    return batch


def predict_files(score: Scorer, serving: ServingInfo, paths: list[str],
                  k: int) -> dict[str, list[tuple[str, float]]]:
    """Top-k classes for each image file, prepared exactly as the training images were."""
    probs = predict_proba(score, prepare_batch(serving, paths))
    return {path: top_classes(row, serving.class_names, k) for path, row in zip(paths, probs)}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m imgclf.serve.predict", description=__doc__)
    parser.add_argument("images", nargs="+", help="image files to classify (JPEG, PNG, BMP, GIF, WebP)")
    parser.add_argument("--model", type=Path, default=layout.MODEL, help="trained .keras model (default: %(default)s)")
    parser.add_argument("--top", type=int, default=3, help="how many classes to print per image (default: 3)")
    parser.add_argument("--json", type=Path, help="also write the answers to this JSON file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    info_path = args.model.with_suffix(".json")
    if not args.model.exists() or not info_path.exists():
        raise PipelineError(f"no trained model at {args.model} (and {info_path}); run `dvc repro` first")
    if args.top < 1:
        raise PipelineError(f"--top must be at least 1, got {args.top}")
    record = ModelRecord.read(info_path)
    answers = predict_files(load_scorer(args.model, record.onnx_sha256)[0], record.serving, args.images, args.top)
    for path, ranked in answers.items():
        print(f"{path}: " + ", ".join(f"{name} ({p:.3f})" for name, p in ranked))
    if args.json:
        write_json(args.json, {path: [{"class": n, "probability": p} for n, p in r] for path, r in answers.items()})


if __name__ == "__main__":
    run_stage(lambda: main(sys.argv[1:]))
