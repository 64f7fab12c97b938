import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from imgclf.artifacts import SplitPart
from imgclf.evaluate.scoring import export_onnx
from imgclf.params import LogregParams
from imgclf.train.logreg import linear_softmax, train_logreg
from imgclf.train.result import DataSpec


def _data(n_classes, n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    x = rng.normal(size=(n, 3, 3, 1)).astype(np.float32) + y[:, None, None, None] * 0.8
    return x, y


@pytest.mark.parametrize("n_classes", [2, 4])
def test_linear_softmax_gives_the_classifiers_probabilities(n_classes):
    x, y = _data(n_classes)
    clf = LogisticRegression(max_iter=500).fit(x.reshape(len(x), -1), y)
    model = linear_softmax(clf, (3, 3, 1), n_classes)
    np.testing.assert_allclose(model.predict(x, verbose=0), clf.predict_proba(x.reshape(len(x), -1)), atol=1e-5)


def test_class_missing_from_training_gets_probability_zero():
    x, y = _data(3)
    keep = y < 2
    clf = LogisticRegression(max_iter=500).fit(x[keep].reshape(keep.sum(), -1), y[keep])
    probs = linear_softmax(clf, (3, 3, 1), 3).predict(x, verbose=0)
    assert probs[:, 2].max() < 1e-6 and np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_train_logreg_reports_like_a_network():
    x, y = _data(3)
    train, val = SplitPart(x[:90], y[:90]), SplitPart(x[90:], y[90:])
    result = train_logreg(train, val, DataSpec(3), LogregParams(max_iter=300, C=1.0), None, seed=0)
    assert set(result.rows[0]) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy"}
    assert result.summary["epochs_run"] == 1 and result.summary["converged"]
    assert result.summary["val_accuracy"] > 0.5
    # the training figures named apart from the test's `loss` and `accuracy` (metrics/eval.json)
    assert result.summary["final_loss"] == round(result.rows[0]["loss"], 6)
    assert result.summary["final_accuracy"] == round(result.rows[0]["accuracy"], 6)
    assert not {"loss", "accuracy"} & set(result.summary)
    few = train_logreg(train, val, DataSpec(3), LogregParams(max_iter=1), None, seed=0)
    assert not few.summary["converged"] and few.summary["iterations"] == 1


def _fitted(n_classes=3, scale=1 / 16):
    rng = np.random.default_rng(1)
    y = np.arange(90) % n_classes
    x = np.clip(rng.normal(4, 3, size=(90, 3, 3, 1)) + y[:, None, None, None] * 4, 0, 16).astype(np.uint8)
    clf = LogisticRegression(max_iter=500).fit(x.reshape(len(x), -1) * scale, y)
    return linear_softmax(clf, (3, 3, 1), n_classes, scale), x


def test_its_keras_file_is_the_model_keras_builds_with_the_same_weights(tmp_path):
    import keras

    model, x = _fitted()
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras", safe_mode=True)
    # named as Keras names them in a fresh process (its automatic names count up within one)
    built = keras.Sequential([keras.Input(shape=(3, 3, 1), name="input_layer"),
                              keras.layers.Rescaling(1 / 16, name="normalization"),
                              keras.layers.Flatten(name="flatten"),
                              keras.layers.Dense(3, activation="softmax", name="dense")], name="logreg")
    assert json.loads(json.dumps(loaded.get_config())) == json.loads(json.dumps(built.get_config()))
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x), atol=1e-6)
    np.testing.assert_array_equal(loaded.layers[-1].get_weights()[0], model.kernel)


def test_its_keras_file_has_the_same_bytes_every_time(tmp_path):
    model, _ = _fitted()
    model.save(tmp_path / "a.keras")
    model.save(tmp_path / "b.keras")
    assert (tmp_path / "a.keras").read_bytes() == (tmp_path / "b.keras").read_bytes()
    other, _ = _fitted(scale=1 / 8)
    other.save(tmp_path / "c.keras")
    assert (tmp_path / "c.keras").read_bytes() != (tmp_path / "a.keras").read_bytes()


def test_its_onnx_graph_gives_its_probabilities_and_passes_the_export_check():
    import onnxruntime

    model, x = _fitted(n_classes=2)
    session = onnxruntime.InferenceSession(model.to_onnx(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"image": x.astype(np.float32)})[0], model.predict(x), atol=1e-6)
    onnx, note = export_onnx(model, x)
    assert onnx == model.to_onnx() and note.startswith("exported to ONNX"), note
