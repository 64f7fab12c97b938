"""The model a web shop serves: photos in (base64 file bytes), the top classes out, through MLflow's pyfunc.

`mlflow models serve -m models:/<name>@champion` runs it. Each photo goes through prepare_image
(imgclf/serve/photos.py), as in `imgclf.serve.predict`, and so through the decoding preprocess gave the
training photos (imgclf/data/images.py): a backend sends the file as uploaded and never reimplements
EXIF, alpha, mode, resize or scale. A model logged with its checked ONNX copy is scored by ONNX Runtime,
and the server never imports TensorFlow; one without is scored by Keras.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import logging
import tempfile
from pathlib import Path

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from PIL import Image

from imgclf.artifacts import read_json, write_json
from imgclf.data.images import BadImageError
from imgclf.errors import PipelineError
from imgclf.evaluate.scoring import Scorer, load_scorer, predict_proba, sha256
from imgclf.records import ServingInfo
from imgclf.serve.photos import check_pixel_scale, prepare_image, top_classes
from imgclf.serve.request_errors import INTERNAL_ERROR, RequestError

log = logging.getLogger(__name__)
TOP_K = 3  # classes per photo unless the request's params say otherwise (at most the model's classes)
IMAGE_FILES = "a JPEG, PNG, BMP, GIF or WebP file"


class PhotoClassifier(mlflow.pyfunc.PythonModel):
    """Input: a DataFrame column `image` of base64-encoded image files (raw bytes also accepted), one per row.

    Output per row: the top `class`, its `probability`, `top_k`, the k best as [{"class", "probability"}]
    (params: {"top_k": k}, 1 <= k <= the model's classes), and `error`, null, or for a row that is no
    readable image the reason in one line (its class, probability and top_k null). A request without
    rows, or with a top_k out of range, is refused whole (HTTP 400).
    """

    def __init__(self, score: Scorer | None = None, info: ServingInfo | None = None) -> None:
        self.score, self.info = score, info
        self.runtime = None  # what load_context scores with: "onnx" (ONNX Runtime) or "keras"

    def load_context(self, context) -> None:
        self.info = ServingInfo.from_dict(read_json(Path(context.artifacts["info"])), context.artifacts["info"])
        onnx = context.artifacts.get("onnx")
        self.score, self.runtime = load_scorer(Path(context.artifacts["network"]), self.info.onnx_sha256,
                                               Path(onnx) if onnx else None)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        try:
            return self._answer(model_input, params)
        except RequestError:
            raise
        except PipelineError as exc:  # the model's own problem (its record), not the request's
            raise RequestError(str(exc), INTERNAL_ERROR) from None
        except Exception as exc:
            log.exception("the model failed on a request")  # the traceback goes to the server's log only
            raise RequestError(f"the model failed on this request ({type(exc).__name__}: {_one_line(exc)}); "
                               "the server's log has the details", INTERNAL_ERROR) from None

    def _answer(self, model_input: pd.DataFrame, params: dict | None) -> pd.DataFrame:
        if "image" not in model_input:
            raise RequestError(f"the input has no column 'image' (columns: {list(model_input.columns)}); "
                               "send each photo's file bytes, base64-encoded, in a column named image")
        if len(model_input) == 0:
            raise RequestError("the request has no rows; send one photo per row in the column image, "
                               "as the file's bytes base64-encoded")
        k = requested_top_k(params, len(self.info.class_names))
        check_pixel_scale(self.info)
        rows = [self._read_row(value, row) for row, value in enumerate(model_input["image"])]
        good = [row for row, value in enumerate(rows) if isinstance(value, np.ndarray)]
        probs = iter(predict_proba(self.score, np.stack([rows[row] for row in good])) if good else ())
        answers = [_ranked(top_classes(next(probs), self.info.class_names, k)) if isinstance(value, np.ndarray)
                   else _failed(value) for value in rows]
        return pd.DataFrame({column: pd.Series([answer[column] for answer in answers], dtype=object)
                             for column in ("class", "probability", "top_k", "error")})

    def _read_row(self, value, row: int) -> np.ndarray | str:
        """A row's photo as the model's input, or why it is none (one line)."""
        try:
            return prepare_image(self.info, _photo(value, row))
        except BadImageError as exc:  # a decoder's reason may span lines (OpenCV's do)
            return f"{_one_line(exc)}; send {IMAGE_FILES}, base64-encoded"
        except _RowError as exc:
            return str(exc)


class _RowError(Exception):
    """A row that holds no image file: its answer's error, not the request's."""


def requested_top_k(params: dict | None, n_classes: int) -> int:
    """The request's top_k, checked: a whole number from 1 to the model's classes (default TOP_K, or fewer)."""
    k = (params or {}).get("top_k")
    if k is None:
        return min(TOP_K, n_classes)
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n_classes:
        raise RequestError(f"top_k must be a whole number from 1 to {n_classes} (this model's classes), "
                           f"got {k!r}")
    return int(k)


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _ranked(ranked: list[tuple[str, float]]) -> dict:
    return {"class": ranked[0][0], "probability": ranked[0][1], "error": None,
            "top_k": [{"class": name, "probability": p} for name, p in ranked]}


def _failed(reason: str) -> dict:
    return {"class": None, "probability": None, "top_k": None, "error": reason}


def _photo(value, row: int) -> io.BytesIO:
    """One cell of the `image` column as a file object named after its row (for error messages)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        raise _RowError(f"the image of row {row} is missing; send the photo file's bytes, base64-encoded")
    if isinstance(value, str):
        try:
            value = base64.b64decode("".join(value.split()), validate=True)  # line-wrapped base64 too
        except binascii.Error:
            raise _RowError(f"the image of row {row} is not base64 ({value[:20]!r}...); "
                            "send the file's bytes base64-encoded") from None
    if not isinstance(value, (bytes, bytearray)):
        raise _RowError(f"the image of row {row} is not text ({type(value).__name__}); "
                        "send the file's bytes base64-encoded, as a string")
    if not value:
        raise _RowError(f"the image of row {row} is empty; send {IMAGE_FILES}, base64-encoded")
    photo = io.BytesIO(bytes(value))
    photo.name = f"the image of row {row}"
    return photo


def example_photo(pixels: np.ndarray, pixel_scale: float) -> str:
    """A stored image as a base64 PNG file: the input example the MLflow UI shows callers."""
    values = np.clip(np.asarray(pixels, np.float32) * pixel_scale * 255, 0, 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(values[..., 0] if values.shape[-1] == 1 else values).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def log_photo_model(network, info: ServingInfo, example_pixels: np.ndarray, pip_requirements: list[str],
                    registered_model_name: str | None = None, onnx: bytes | None = None):
    """Log (and register, when named) the photo-taking model of `network` in the active run; its ModelInfo.

    The model is logged as code (MLflow's models from code: imgclf/serve/photo_model.py, with the imgclf
    package as its code_paths) and its data as artifact files, so loading it unpickles no Python object.

    `onnx`, the network's ONNX copy that train checked against it, travels as the artifact `onnx`, and the
    server scores it with ONNX Runtime (pip_requirements must then pin onnxruntime); without it, Keras
    scores. The model.json artifact holds `info` (ServingInfo.to_dict) with the copy's sha256.
    """
    info = dataclasses.replace(info, onnx_sha256=sha256(onnx) if onnx else None)
    example = pd.DataFrame({"image": [example_photo(example_pixels, info.pixel_scale)]})
    # The output's schema from a good row and a bad one: `error` and the nulls of a bad row are in it.
    answers = PhotoClassifier(lambda x: network.predict(x, verbose=0), info).predict(
        None, pd.DataFrame({"image": [example["image"][0], ""]}))
    signature = infer_signature(example, answers, params={"top_k": min(TOP_K, len(info.class_names))})
    with tempfile.TemporaryDirectory() as tmp:
        network.save(Path(tmp) / "network.keras")
        write_json(Path(tmp) / "model.json", info.to_dict())
        artifacts = {"network": str(Path(tmp) / "network.keras"), "info": str(Path(tmp) / "model.json")}
        if onnx:
            (Path(tmp) / "model.onnx").write_bytes(onnx)
            artifacts["onnx"] = str(Path(tmp) / "model.onnx")
        return mlflow.pyfunc.log_model(
            name="model", python_model=_model_code(), artifacts=artifacts,
            code_paths=[str(Path(__file__).parents[1])],  # the whole imgclf package: the model code imports it
            signature=signature, input_example=example, pip_requirements=pip_requirements,
            registered_model_name=registered_model_name)


def _model_code() -> str:
    """The file that builds the served model (imgclf/serve/photo_model.py): logged as the model's code, so
    loading it runs reviewable code instead of unpickling an object. Imported, not only named, so that
    the code deps of the stages that log the model (dvc.yaml) hold it; running it only sets MLflow's model."""
    from imgclf.serve import photo_model

    return photo_model.__file__
