import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from imgclf.evaluate import scoring
from imgclf.train.model import normalization

PROJECT = Path(__file__).resolve().parents[1]


def _model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((6, 6, 1)), normalization(1 / 255), keras.layers.Flatten(),
                              keras.layers.Dense(16, activation="relu"), keras.layers.Dense(4, "softmax")])
    return model


def _stored(rows: int) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (rows, 6, 6, 1), dtype=np.uint8)


def _saved(tmp_path, model, onnx: bytes | None) -> tuple[Path, str | None]:
    """The model saved, its ONNX copy beside it, and the copy's sha256 as model.json records it."""
    path = tmp_path / "model.keras"
    model.save(path)
    if onnx is not None:
        scoring.onnx_path(path).parent.mkdir()
        scoring.onnx_path(path).write_bytes(onnx)
    return path, scoring.sha256(onnx) if onnx is not None else None


def test_the_onnx_copy_scores_as_keras_does_without_importing_tensorflow(tmp_path):
    model, x = _model(), _stored(300)
    onnx, note = scoring.export_onnx(model, x)
    assert onnx is not None and note.startswith("exported to ONNX")
    path, sha = _saved(tmp_path, model, onnx)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "keras.npy", model.predict(x, verbose=0))
    # A fresh interpreter, as evaluate and predict are: TensorFlow must not be imported at all.
    code = (f"import json, sys, numpy as np; from imgclf.evaluate import scoring; "
            f"score, runtime = scoring.load_scorer(__import__('pathlib').Path({str(path)!r}), {sha!r}); "
            f"p = scoring.predict_proba(score, np.load({str(tmp_path / 'x.npy')!r})); "
            f"print(json.dumps([float(np.abs(p - np.load({str(tmp_path / 'keras.npy')!r})).max()), "
            f"'tensorflow' in sys.modules, 'keras' in sys.modules, runtime]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, check=True)
    difference, tensorflow, keras_imported, runtime = json.loads(out.stdout.strip().splitlines()[-1])
    assert difference <= scoring.TOLERANCE and runtime == "onnx"
    assert not tensorflow and not keras_imported


def test_a_model_without_an_onnx_copy_is_scored_by_keras(tmp_path):
    model, x = _model(), _stored(10)
    path, sha = _saved(tmp_path, model, None)
    score, runtime = scoring.load_scorer(path, sha)
    assert runtime == "keras"
    np.testing.assert_array_equal(scoring.predict_proba(score, x), model.predict(x, verbose=0))



def test_an_onnx_copy_that_is_missing_or_another_models_is_not_used(tmp_path, caplog):
    model, other, x = _model(0), _model(1), _stored(10)
    path, sha = _saved(tmp_path, model, scoring.export_onnx(model, x)[0])
    scoring.onnx_path(path).write_bytes(scoring.export_onnx(other, x)[0])  # e.g. a partial dvc checkout
    score, runtime = scoring.load_scorer(path, sha)
    warned = [r.getMessage() for r in caplog.records if r.name == scoring.__name__]
    assert runtime == "keras" and len(warned) == 1 and "is not the one train exported with it" in warned[0]
    np.testing.assert_array_equal(scoring.predict_proba(score, x), model.predict(x, verbose=0))
    scoring.onnx_path(path).unlink()
    caplog.clear()
    assert scoring.load_scorer(path, sha)[1] == "keras"
    assert [r.getMessage() for r in caplog.records if r.name == scoring.__name__] == [
        f"{scoring.onnx_path(path)} is missing; scoring {path} with Keras (restore both with `dvc checkout`)"]


def test_an_onnx_copy_elsewhere_is_used_when_it_is_the_models(tmp_path, caplog):
    """The served model's copy lies among its MLflow artifacts, not beside the .keras file."""
    model, other, x = _model(0), _model(1), _stored(10)
    onnx = scoring.export_onnx(model, x)[0]
    path, _ = _saved(tmp_path, model, None)
    (tmp_path / "copy.onnx").write_bytes(onnx)
    score, runtime = scoring.load_scorer(path, scoring.sha256(onnx), tmp_path / "copy.onnx")
    assert runtime == "onnx"
    np.testing.assert_allclose(scoring.predict_proba(score, x), model.predict(x, verbose=0), atol=scoring.TOLERANCE)
    (tmp_path / "copy.onnx").write_bytes(scoring.export_onnx(other, x)[0])
    assert scoring.load_scorer(path, scoring.sha256(onnx), tmp_path / "copy.onnx")[1] == "keras"
    # No `dvc checkout` hint: DVC does not track a copy outside the project's models/ folder.
    assert [r.getMessage() for r in caplog.records if r.name == scoring.__name__] == [
        f"{tmp_path / 'copy.onnx'} is not the one train exported with it; scoring {path} with Keras"]


def test_a_model_onnx_cannot_express_is_left_to_keras(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: tf.math.bessel_i1e(x)),
                              keras.layers.Dense(2, "softmax")])
    onnx, note = scoring.export_onnx(model, np.ones((3, 4), np.float32))
    assert onnx is None and note.startswith("not exported to ONNX")


def _skewed(monkeypatch, change) -> None:
    """ONNX Runtime's probabilities, changed: a copy that does not compute what Keras does."""
    real = scoring._onnx_scorer

    def scorer(onnx):
        score = real(onnx)
        return lambda x: change(score(x))
    monkeypatch.setattr(scoring, "_onnx_scorer", scorer)


def test_an_onnx_copy_that_disagrees_with_keras_is_not_kept(monkeypatch):
    _skewed(monkeypatch, lambda probs: probs + 1e-3)
    onnx, note = scoring.export_onnx(_model(), _stored(8))
    assert onnx is None and "differ from Keras's by 0.001" in note


def test_an_onnx_copy_that_gives_nan_is_not_kept(monkeypatch):
    _skewed(monkeypatch, lambda probs: probs * np.nan)
    onnx, note = scoring.export_onnx(_model(), _stored(8))
    assert onnx is None and "differ from Keras's by nan" in note


def test_probabilities_are_the_same_whatever_the_chunk(tmp_path, monkeypatch):
    model, x = _model(), _stored(50)
    path, sha = _saved(tmp_path, model, scoring.export_onnx(model, x)[0])
    score, _ = scoring.load_scorer(path, sha)
    whole = scoring.predict_proba(score, x)
    sizes = []
    monkeypatch.setattr(scoring, "rows_per_chunk", lambda *args, **kwargs: 7)
    chunked = scoring.predict_proba(lambda rows: sizes.append(len(rows)) or score(rows), x)
    assert sizes == [7] * 7 + [1]
    np.testing.assert_array_equal(chunked, whole)



def test_the_same_model_exports_to_the_same_onnx_bytes_in_each_process(tmp_path):
    # models/onnx is a DVC output: a rerun of train, a process of its own, reproduces its hash in dvc.lock.
    # (Within one process tf2onnx numbers the names it makes on from the last export.)
    model_path, _ = _saved(tmp_path, _model(), None)
    np.save(tmp_path / "x.npy", _stored(8))
    code = (f"import sys, keras, numpy as np; from imgclf.evaluate import scoring; "
            f"onnx, _ = scoring.export_onnx(keras.saving.load_model({str(model_path)!r}), "
            f"np.load({str(tmp_path / 'x.npy')!r})); open(sys.argv[1], 'wb').write(onnx)")
    for name in ("first.onnx", "second.onnx"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], cwd=PROJECT, capture_output=True,
                       check=True)
    first = (tmp_path / "first.onnx").read_bytes()
    assert len(first) > 1000 and first == (tmp_path / "second.onnx").read_bytes()


class _Recording:
    """A scorer that keeps the batches it is given; its answer depends on where the bright pixels are."""

    def __init__(self) -> None:
        self.inputs: list[np.ndarray] = []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.inputs.append(np.array(x))
        columns = np.asarray(x, np.float32).mean(axis=(1, 3))  # N x W
        return columns / columns.sum(axis=1, keepdims=True)


def test_flip_tta_is_the_mean_of_the_images_and_their_mirror_images():
    x = _stored(5)
    score = _Recording()
    probs = scoring.with_tta(score, "flip")(x)
    plain, mirrored = score.inputs
    np.testing.assert_array_equal(plain, x)
    np.testing.assert_array_equal(mirrored, x[:, :, ::-1])  # left-right: the width, axis 2
    np.testing.assert_allclose(probs, (_Recording()(x) + _Recording()(x[:, :, ::-1])) / 2, rtol=1e-6)
    assert not np.allclose(probs, _Recording()(x))  # the mirror pass changed the answer


def test_without_tta_the_scorer_is_used_as_is_and_an_unknown_tta_is_refused():
    score = _Recording()
    assert scoring.with_tta(score, "none") is score
    with pytest.raises(ValueError, match="'rotate'"):
        scoring.with_tta(score, "rotate")


def test_the_mirror_of_a_memory_mapped_chunk_is_a_contiguous_batch(tmp_path):
    np.save(tmp_path / "x.npy", _stored(7))
    stored = np.load(tmp_path / "x.npy", mmap_mode="r")
    flipped = scoring.mirror(stored[2:5])
    assert flipped.flags.c_contiguous
    np.testing.assert_array_equal(flipped[:, :, 0], stored[2:5, :, -1])


def test_flip_on_digits_warns_in_one_line_and_elsewhere_not():
    for dataset in ("digits", "mnist"):
        warning = scoring.tta_warning("flip", dataset)
        assert warning and "\n" not in warning and "another digit" in warning
    assert scoring.tta_warning("none", "digits") is None
    assert scoring.tta_warning("flip", "fashion_mnist") is None and scoring.tta_warning("flip", "image_folder") is None
