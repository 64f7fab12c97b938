"""The model a web shop serves: photos in (base64 file bytes), the top classes out, through MLflow's pyfunc.

`mlflow models serve -m models:/<name>@champion` runs it. Each photo goes through prepare_batch
(imgclf/serve/photos.py), as in `imgclf.serve.predict`, and so through the decoding preprocess gave the
training photos (imgclf/data/images.py): a backend sends the file as uploaded and never reimplements
EXIF, alpha, mode, resize or scale.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from PIL import Image

from imgclf.artifacts import read_json, write_json
from imgclf.errors import PipelineError
from imgclf.records import ServingInfo
from imgclf.serve.photos import prepare_batch, top_classes

TOP_K = 3  # classes per photo unless the request's params say otherwise


class PhotoClassifier(mlflow.pyfunc.PythonModel):
    """Input: a DataFrame column `image` of base64-encoded image files (raw bytes also accepted).

    Output per row: the top `class`, its `probability`, and `top_k`, the k best as
    [{"class", "probability"}] (params: {"top_k": k}).
    """

    def __init__(self, network=None, info: ServingInfo | None = None) -> None:
        self.network, self.info = network, info

    def load_context(self, context) -> None:
        if "onnx" in context.artifacts:  # the network's checked ONNX copy: no TensorFlow in the server
            self.network = _OnnxNetwork(Path(context.artifacts["onnx"]).read_bytes())
        else:
            import keras  # in the serving process only: importing TensorFlow takes seconds

            self.network = keras.models.load_model(context.artifacts["network"], safe_mode=True)
        self.info = ServingInfo.from_dict(read_json(Path(context.artifacts["info"])), context.artifacts["info"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        if "image" not in model_input:
            raise PipelineError(f"the input has no column 'image' (columns: {list(model_input.columns)}); "
                                "send each photo's file bytes, base64-encoded, in a column named image")
        k = int((params or {}).get("top_k") or TOP_K)
        photos = [_photo(value, row) for row, value in enumerate(model_input["image"])]
        probs = self.network.predict(prepare_batch(self.info, photos), verbose=0)
        ranked = [top_classes(row, self.info.class_names, k) for row in probs]
        return pd.DataFrame({
            "class": [r[0][0] for r in ranked],
            "probability": [r[0][1] for r in ranked],
            "top_k": [[{"class": name, "probability": p} for name, p in r] for r in ranked],
        })


class _OnnxNetwork:
    """An ONNX graph answering predict as a Keras model does: stored pixels in, cast to float32 as Keras does."""

    def __init__(self, onnx: bytes) -> None:
        import onnxruntime

        self._session = onnxruntime.InferenceSession(onnx, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def predict(self, x: np.ndarray, verbose: int = 0) -> np.ndarray:
        return self._session.run(None, {self._input: np.asarray(x, dtype=np.float32)})[0]


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

    Its model.json artifact holds `info` (ServingInfo.to_dict), what the server needs of the model's record.
    With `onnx` (the network's ONNX copy that train checked), the server scores that, without importing
    TensorFlow; MLflow, which loads the logged model to check the input example, then does not import it either.
    """
    example = pd.DataFrame({"image": [example_photo(example_pixels, info.pixel_scale)]})
    signature = infer_signature(example, PhotoClassifier(network, info).predict(None, example),
                                params={"top_k": TOP_K})
    with tempfile.TemporaryDirectory() as tmp:
        network.save(Path(tmp) / "network.keras")
        write_json(Path(tmp) / "model.json", info.to_dict())
        artifacts = {"network": str(Path(tmp) / "network.keras"), "info": str(Path(tmp) / "model.json")}
        if onnx is not None:
            (Path(tmp) / "network.onnx").write_bytes(onnx)
            artifacts["onnx"] = str(Path(tmp) / "network.onnx")
        with _pickling_warning_dropped():
            return mlflow.pyfunc.log_model(
                name="model", python_model=PhotoClassifier(), artifacts=artifacts,
                code_paths=[str(Path(__file__).parents[1])],  # the whole imgclf package: the server imports this module
                signature=signature, input_example=example, pip_requirements=pip_requirements,
                registered_model_name=registered_model_name)


class _DropPickling(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "serialized using CloudPickle" not in record.getMessage()


@contextlib.contextmanager
def _pickling_warning_dropped() -> Iterator[None]:
    """MLflow 3's warning that a PythonModel object is pickled, left out of the stage's console: the pickled
    PhotoClassifier holds no state (load_context reads the artifacts) and its class comes from code_paths,
    so the warning is nothing a user can act on. Every other MLflow line passes."""
    logger, drop = logging.getLogger("mlflow.pyfunc"), _DropPickling()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)
