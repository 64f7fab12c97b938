import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from imgclf import scoring
from imgclf.errors import PipelineError
from imgclf.model import normalization

PROJECT = Path(__file__).resolve().parents[1]


def _model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((6, 6, 1)), normalization(1 / 255), keras.layers.Flatten(),
                              keras.layers.Dense(16, activation="relu"), keras.layers.Dense(4, "softmax")])
    return model


def _stored(rows: int) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (rows, 6, 6, 1), dtype=np.uint8)


def _saved(tmp_path, model, onnx: bytes | None) -> tuple[Path, dict]:
    path = tmp_path / "model.keras"
    model.save(path)
    if onnx is not None:
        scoring.onnx_path(path).parent.mkdir()
        scoring.onnx_path(path).write_bytes(onnx)
    return path, {"onnx": onnx is not None}


def test_the_onnx_copy_scores_as_keras_does_without_importing_tensorflow(tmp_path):
    model, x = _model(), _stored(300)
    onnx, note = scoring.export_onnx(model, x)
    assert onnx is not None and note.startswith("exported to ONNX")
    path, info = _saved(tmp_path, model, onnx)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "keras.npy", model.predict(x, verbose=0))
    # A fresh interpreter, as evaluate and predict are: TensorFlow must not be imported at all.
    code = (f"import json, sys, numpy as np; from imgclf import scoring; "
            f"score = scoring.load_scorer(__import__('pathlib').Path({str(path)!r}), {info!r}); "
            f"p = scoring.predict_proba(score, np.load({str(tmp_path / 'x.npy')!r})); "
            f"print(json.dumps([float(np.abs(p - np.load({str(tmp_path / 'keras.npy')!r})).max()), "
            f"'tensorflow' in sys.modules, 'keras' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, check=True)
    difference, tensorflow, keras_imported = json.loads(out.stdout.strip().splitlines()[-1])
    assert difference <= scoring.TOLERANCE
    assert not tensorflow and not keras_imported


def test_a_model_without_an_onnx_copy_is_scored_by_keras(tmp_path):
    model, x = _model(), _stored(10)
    path, info = _saved(tmp_path, model, None)
    np.testing.assert_array_equal(scoring.predict_proba(scoring.load_scorer(path, info), x),
                                  model.predict(x, verbose=0))
    # An older model.json has no "onnx" entry: Keras, too.
    assert scoring.predict_proba(scoring.load_scorer(path, {}), x).shape == (10, 4)


def test_a_missing_onnx_copy_is_a_clear_error(tmp_path):
    model = _model()
    onnx, _ = scoring.export_onnx(model, _stored(4))
    path, info = _saved(tmp_path, model, onnx)
    scoring.onnx_path(path).unlink()
    with pytest.raises(PipelineError, match="model.onnx is missing.*dvc checkout"):
        scoring.load_scorer(path, info)


def test_a_model_onnx_cannot_express_is_left_to_keras(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: tf.math.bessel_i1e(x)),
                              keras.layers.Dense(2, "softmax")])
    onnx, note = scoring.export_onnx(model, np.ones((3, 4), np.float32))
    assert onnx is None and note.startswith("not exported to ONNX")


def test_an_onnx_copy_that_disagrees_with_keras_is_not_kept(monkeypatch):
    monkeypatch.setattr(scoring, "TOLERANCE", -1.0)  # any difference, even none, is too much
    onnx, note = scoring.export_onnx(_model(), _stored(8))
    assert onnx is None and "differ from Keras's" in note


def test_probabilities_are_the_same_whatever_the_chunk(tmp_path, monkeypatch):
    model, x = _model(), _stored(50)
    onnx, _ = scoring.export_onnx(model, x)
    path, info = _saved(tmp_path, model, onnx)
    score = scoring.load_scorer(path, info)
    whole = scoring.predict_proba(score, x)
    monkeypatch.setattr(scoring, "rows_per_chunk", lambda *args, **kwargs: 7)
    np.testing.assert_array_equal(scoring.predict_proba(score, x), whole)
