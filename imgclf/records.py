"""The model record: what train writes beside the model (models/model.json) and every later reader needs.

Train writes it (`ModelRecord.writer`); evaluate, report, predict and serving read it
(`ModelRecord.read`). The JSON keys keep the order of the fields below. The model's identity
(dataset, model, class names, input shape, the sha256 of the model file) is required; any other
key a file lacks reads as None, so a record with fewer fields still reads.

It is a DVC output that a rerun reproduces byte for byte, so it holds nothing a rerun changes: no
MLflow run or model id, no registry version, no commit. Those are looked up in MLflow by the model
file's sha256, which its training run carries as a tag (imgclf.tracking.model_run).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgclf.artifacts import json_writer, read_json
from imgclf.errors import PipelineError


@dataclass(frozen=True)
class ServingInfo:
    """What scoring an image file with the model needs: the classes it names, the image it takes, its pixel
    scale, and which ONNX copy of it may score in its place.

    The served photo model stores it as its own model.json artifact, in this key order.
    """

    class_names: tuple[str, ...]
    input_shape: tuple[int, ...]  # (height, width, channels)
    pixel_scale: float | None  # multiplies stored pixels to [0, 1]; None: a model that takes pixels in [0, 1]
    onnx_sha256: str | None = None  # of the ONNX copy train checked against the model; None: Keras scores it

    def to_dict(self) -> dict[str, Any]:
        return {"class_names": list(self.class_names), "input_shape": list(self.input_shape),
                "pixel_scale": self.pixel_scale, "onnx_sha256": self.onnx_sha256}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: Path | str = "model.json") -> ServingInfo:
        _require(data, ("class_names", "input_shape"), source)
        return cls(tuple(data["class_names"]), tuple(data["input_shape"]), data.get("pixel_scale"),
                   data.get("onnx_sha256"))


@dataclass(frozen=True, kw_only=True)
class ModelRecord:
    """A trained model's record: its data, classes and input, the hashes of its files, its registry name.

    The fields are in model.json's key order; those without a default are required.
    """

    dataset: str
    model: str  # train.model: mlp, cnn, transfer or logreg
    class_names: tuple[str, ...]
    input_shape: tuple[int, ...]  # (height, width, channels) of the stored images it takes
    input_dtype: str | None = None  # of the stored images: uint8, or float32 for other pixel types
    pixel_scale: float | None = None  # the model's first layer multiplies stored pixels by it
    class_weights: dict[str, float] | None = None  # per class name, when train.class_weight is balanced
    onnx_sha256: str | None = None  # of models/onnx/model.onnx; None: the model has no ONNX copy
    model_sha256: str  # of models/model.keras: the tag that finds its MLflow training run
    registered_model: str | None = None  # mlflow.register_model: the name its versions are registered under

    @property
    def serving(self) -> ServingInfo:
        return ServingInfo(self.class_names, self.input_shape, self.pixel_scale, self.onnx_sha256)

    def to_dict(self) -> dict[str, Any]:
        """The record as model.json holds it: the tuples as lists."""
        values = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        return values | {"class_names": list(self.class_names), "input_shape": list(self.input_shape)}

    def writer(self) -> Callable[[Path], None]:
        """The record as a writer for write_together (train writes it with the model, together)."""
        return json_writer(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: Path | str = "model.json") -> ModelRecord:
        fields = dataclasses.fields(cls)
        _require(data, tuple(f.name for f in fields if f.default is dataclasses.MISSING), source)
        known = {f.name: data[f.name] for f in fields if f.name in data}
        return cls(**known | {"class_names": tuple(data["class_names"]), "input_shape": tuple(data["input_shape"])})

    @classmethod
    def read(cls, path: Path | str) -> ModelRecord:
        return cls.from_dict(read_json(path), path)


def _require(data: dict[str, Any], keys: tuple[str, ...], source: Path | str) -> None:
    missing = [key for key in keys if key not in data]
    if missing:
        raise PipelineError(f"{source} has no {', '.join(missing)}: it was not written by train; "
                            "retrain the model with `dvc repro --force train`")
