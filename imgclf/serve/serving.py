"""The model a web shop serves: photos in (base64 file bytes), the top classes out, through MLflow's pyfunc.

`mlflow models serve -m models:/<name>@champion` runs it. Each photo goes through prepare_batch
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
import tempfile
from pathlib import Path

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from PIL import Image

from imgclf.artifacts import read_json, write_json
from imgclf.errors import PipelineError
from imgclf.evaluate.scoring import Scorer, load_scorer, sha256
from imgclf.records import ServingInfo
from imgclf.serve.photos import prepare_batch, top_classes

TOP_K = 3  # classes per photo unless the request's params say otherwise


class PhotoClassifier(mlflow.pyfunc.PythonModel):
    """Input: a DataFrame column `image` of base64-encoded image files (raw bytes also accepted).

    Output per row: the top `class`, its `probability`, and `top_k`, the k best as
    [{"class", "probability"}] (params: {"top_k": k}).
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
        if "image" not in model_input:
            raise PipelineError(f"the input has no column 'image' (columns: {list(model_input.columns)}); "
                                "send each photo's file bytes, base64-encoded, in a column named image")
        k = int((params or {}).get("top_k") or TOP_K)
        photos = [_photo(value, row) for row, value in enumerate(model_input["image"])]
        probs = self.score(prepare_batch(self.info, photos))
        ranked = [top_classes(row, self.info.class_names, k) for row in probs]
        return pd.DataFrame({
            "class": [r[0][0] for r in ranked],
            "probability": [r[0][1] for r in ranked],
            "top_k": [[{"class": name, "probability": p} for name, p in r] for r in ranked],
        })


def _photo(value, row: int) -> io.BytesIO:
    """One cell of the `image` column as a file object named after its row (for error messages)."""
    if isinstance(value, str):
        try:
            value = base64.b64decode("".join(value.split()), validate=True)  # line-wrapped base64 too
        except binascii.Error:
            raise PipelineError(f"image of row {row} is not base64 ({value[:20]!r}...); "
                                "send the file's bytes base64-encoded") from None
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

    `onnx`, the network's ONNX copy that train checked against it, travels as the artifact `onnx`, and the
    server scores it with ONNX Runtime (pip_requirements must then pin onnxruntime); without it, Keras
    scores. The model.json artifact holds `info` (ServingInfo.to_dict) with the copy's sha256.
    """
    info = dataclasses.replace(info, onnx_sha256=sha256(onnx) if onnx else None)
    example = pd.DataFrame({"image": [example_photo(example_pixels, info.pixel_scale)]})
    signature = infer_signature(example, PhotoClassifier(lambda x: network.predict(x, verbose=0), info).predict(
        None, example), params={"top_k": TOP_K})
    with tempfile.TemporaryDirectory() as tmp:
        network.save(Path(tmp) / "network.keras")
        write_json(Path(tmp) / "model.json", info.to_dict())
        artifacts = {"network": str(Path(tmp) / "network.keras"), "info": str(Path(tmp) / "model.json")}
        if onnx:
            (Path(tmp) / "model.onnx").write_bytes(onnx)
            artifacts["onnx"] = str(Path(tmp) / "model.onnx")
        return mlflow.pyfunc.log_model(
            name="model", python_model=PhotoClassifier(), artifacts=artifacts,
            code_paths=[str(Path(__file__).parents[1])],  # the whole imgclf package: the server imports this module
            signature=signature, input_example=example, pip_requirements=pip_requirements,
            registered_model_name=registered_model_name)
