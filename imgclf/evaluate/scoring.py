"""A trained model's class probabilities, with ONNX Runtime where train exported the model.

Evaluate and predict score thousands of images in milliseconds, but importing TensorFlow to do
it takes seconds. Train exports the Keras model to ONNX (Keras's own `model.export(format="onnx")`)
and keeps the copy only when ONNX Runtime gives Keras's probabilities on a sample of the training
images; model.json records the copy's sha256, so a copy that is not this model's is never used.
A model without a matching copy (one that does not export, or whose model.json names none) is scored by Keras.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from imgclf import console, layout
from imgclf.artifacts import rows_per_chunk

log = logging.getLogger(__name__)

ONNX_NAME = f"{layout.MODEL.stem}.onnx"  # in layout.ONNX_DIR: where onnx_path looks for the model's copy
EXPORT_NOTE = "export.json"  # beside it: whether the model exported, and why not
BATCH = 256  # rows per ONNX Runtime call, as Keras's predict batches: activations stay small
# float32 arithmetic in another order than TensorFlow's: probabilities differ by about 1e-7.
TOLERANCE = 1e-5
CHECK_ROWS = 256

Scorer = Callable[[np.ndarray], np.ndarray]


def onnx_path(model: Path) -> Path:
    """Where the ONNX copy of `model` lies: models/model.keras -> models/onnx/model.onnx."""
    return model.parent / layout.ONNX_DIR.name / f"{model.stem}.onnx"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def export_onnx(model, check: np.ndarray) -> tuple[bytes | None, str]:
    """The model as ONNX bytes, or None when it cannot be exported or ONNX Runtime disagrees with
    Keras on `check` (a few stored images); the second value says which, for the log."""
    check = np.asarray(check[:CHECK_ROWS])
    expected = model.predict(check, verbose=0)  # before the export, which needs a model that was called
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ONNX_NAME
        try:
            # tf2onnx prints its progress and warns about NumPy 2; neither concerns the user.
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                model.export(str(path), format="onnx", verbose=False)
            onnx = path.read_bytes()
            got = predict_proba(_onnx_scorer(onnx), check)
            if got.shape != expected.shape:
                raise ValueError(f"it gives shape {got.shape}, Keras {expected.shape}")
        except Exception as exc:  # tf2onnx fails on some layers (e.g. EfficientNet's Normalization)
            return None, f"not exported to ONNX ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
    difference = float(np.abs(got - expected).max()) if got.size else 0.0  # nan when either has a nan
    if not np.allclose(got, expected, rtol=0, atol=TOLERANCE, equal_nan=True):
        return None, f"not exported to ONNX (its probabilities differ from Keras's by {difference:.2g})"
    return onnx, f"exported to ONNX (probabilities at most {difference:.1g} from Keras's)"


def load_scorer(model: Path, onnx_sha256: str | None, onnx_file: Path | None = None) -> tuple[Scorer, str]:
    """Probabilities for a batch of stored images, and the runtime giving them ("onnx" or "keras"):
    the ONNX copy when it is the one train made for this model (`onnx_sha256`, from model.json), else Keras.

    The copy lies at `onnx_file`, by default where train writes it beside the model (onnx_path).
    """
    if onnx_sha256:
        path = onnx_file or onnx_path(model)
        onnx = path.read_bytes() if path.exists() else None
        if onnx is not None and sha256(onnx) == onnx_sha256:
            return _onnx_scorer(onnx), "onnx"
        problem = "is missing" if onnx is None else "is not the one train exported with it"
        restore = "" if onnx_file else " (restore both with `dvc checkout`)"
        log.warning("%s %s; scoring %s with Keras%s", path, problem, model, restore)
    keras = console.quiet_import("keras")  # only here: importing TensorFlow takes seconds

    network = keras.models.load_model(model, safe_mode=True)
    return (lambda x: network.predict(x, batch_size=BATCH, verbose=0)), "keras"


def _onnx_scorer(onnx: bytes) -> Scorer:
    import onnxruntime

    session = onnxruntime.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    names = [spec.name for spec in session.get_inputs()]
    if len(names) != 1:  # tf2onnx can leave a layer's constants as inputs (EfficientNet's Normalization)
        raise ValueError(f"the ONNX graph takes {len(names)} inputs, not the image alone")
    (name,) = names

    def score(x: np.ndarray) -> np.ndarray:
        # Keras casts stored pixels (uint8) to float32 as it takes them in; so does this.
        return np.concatenate([session.run(None, {name: np.asarray(x[i:i + BATCH], dtype=np.float32)})[0]
                               for i in range(0, len(x), BATCH)])
    return score


MIRRORED_DIGITS = ("digits", "mnist")  # datasets whose mirror images are other classes (a mirrored 2 is no 2)


def mirror(x: np.ndarray) -> np.ndarray:
    """Each image of a batch (N x H x W x C, as stored and as the model takes it) mirrored left-right: axis 2.

    Copied into a contiguous array, as ONNX Runtime and Keras take a batch, a chunk at a time (see predict_proba).
    """
    return np.ascontiguousarray(x[:, :, ::-1])


def mirrored(score: Scorer) -> Scorer:
    """`score` of each image's mirror image."""
    return lambda x: score(mirror(x))


def mean_of_views(probs: np.ndarray, mirrored_probs: np.ndarray) -> np.ndarray:
    """Flip test-time augmentation's probabilities: the mean of an image's and its mirror image's."""
    return (probs + mirrored_probs) / 2


def with_tta(score: Scorer, tta: str) -> Scorer:
    """`score` with test-time augmentation `tta` (params' evaluate.tta): none, or flip (mean_of_views)."""
    if tta == "none":
        return score
    if tta != "flip":
        raise ValueError(f"unknown test-time augmentation {tta!r}: none or flip")
    return lambda x: mean_of_views(score(x), mirrored(score)(x))


def tta_warning(tta: str, dataset: str) -> str | None:
    """One line when flip test-time augmentation meets digits, whose mirror images are other digits."""
    if tta != "flip" or dataset not in MIRRORED_DIGITS:
        return None
    return (f"flip test-time augmentation on {dataset}: a mirrored digit is another digit, so the mean with each "
            f"image's mirror image mixes in a wrong reading of it; use tta none for digits")


def predict_proba(score: Scorer, x: np.ndarray) -> np.ndarray:
    """Class probabilities, a chunk of rows at a time (x may be a memory-mapped array larger than RAM)."""
    chunk = rows_per_chunk(x.shape[1:], np.float32)
    return np.concatenate([score(np.asarray(x[i:i + chunk])) for i in range(0, len(x), chunk)])
