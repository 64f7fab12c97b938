import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from imgclf.artifacts import SplitPart
from imgclf.params import LogregParams
from imgclf.train.logreg import logreg_to_keras, train_logreg
from imgclf.train.training import DataSpec


def _data(n_classes, n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    x = rng.normal(size=(n, 3, 3, 1)).astype(np.float32) + y[:, None, None, None] * 0.8
    return x, y


@pytest.mark.parametrize("n_classes", [2, 4])
def test_keras_twin_gives_the_same_probabilities(n_classes):
    x, y = _data(n_classes)
    clf = LogisticRegression(max_iter=500).fit(x.reshape(len(x), -1), y)
    model = logreg_to_keras(clf, (3, 3, 1), n_classes)
    np.testing.assert_allclose(model.predict(x, verbose=0), clf.predict_proba(x.reshape(len(x), -1)), atol=1e-5)


def test_class_missing_from_training_gets_probability_zero():
    x, y = _data(3)
    keep = y < 2
    clf = LogisticRegression(max_iter=500).fit(x[keep].reshape(keep.sum(), -1), y[keep])
    probs = logreg_to_keras(clf, (3, 3, 1), 3).predict(x, verbose=0)
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
