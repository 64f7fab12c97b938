"""The lessons' baseline: scikit-learn's LogisticRegression on flattened pixels, served as a Keras model."""

from __future__ import annotations

import warnings

import keras
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from imgclf.artifacts import SplitPart
from imgclf.evaluate.metrics import cross_entropy
from imgclf.params import LogregParams
from imgclf.train.model import normalization
from imgclf.train.training import DataSpec, TrainResult


def train_logreg(train: SplitPart, val: SplitPart, data: DataSpec, params: LogregParams,
                 class_weight: dict[int, float] | None, seed: int) -> TrainResult:
    """Fit multinomial logistic regression on [0, 1] pixels; return it as an equivalent Keras model.

    Memory: the lbfgs solver works in float64, so the training split is held once as float64
    (8 bytes per pixel, 339 MB for MNIST); it is built here in place, and scikit-learn uses it as is.
    """
    (x, y), pixel_scale = train, data.pixel_scale
    clf = LogisticRegression(C=params.C, max_iter=params.max_iter, class_weight=class_weight, random_state=seed)
    features = x.reshape(len(x), -1).astype(np.float64)
    features *= pixel_scale
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        clf.fit(features, y)
    del features
    model = logreg_to_keras(clf, x.shape[1:], data.n_classes, pixel_scale)
    row = {"epoch": 1, **_scores(model, train, ""), **_scores(model, val, "val_")}
    summary = {"epochs_run": 1, "best_epoch": 1, "iterations": int(clf.n_iter_.max()),
               "converged": not any(issubclass(w.category, ConvergenceWarning) for w in caught),
               **{k if k.startswith("val_") else f"final_{k}": round(v, 6) for k, v in row.items() if k != "epoch"}}
    # One process, no distribution strategy: tagged like a network trained on one device.
    return TrainResult(model, [row], summary, tags={"distribute.strategy": "none", "distribute.replicas": "1"})


def logreg_to_keras(clf: LogisticRegression, input_shape: tuple[int, ...], n_classes: int,
                    pixel_scale: float = 1.0) -> keras.Model:
    """Normalization -> Flatten -> Dense(softmax) carrying the fitted coefficients: predict_proba's probabilities."""
    coef, intercept = clf.coef_, clf.intercept_
    if coef.shape[0] == 1:  # two classes: sklearn keeps one logit z; softmax([0, z]) == sigmoid(z)
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    kernel = np.zeros((int(np.prod(input_shape)), n_classes), np.float32)
    bias = np.full(n_classes, -1e9 if len(clf.classes_) < n_classes else 0.0, np.float32)
    # Classes absent from training keep probability 0.
    kernel[:, clf.classes_] = coef.T
    bias[clf.classes_] = intercept
    dense = keras.layers.Dense(n_classes, activation="softmax")
    layers = [keras.Input(shape=input_shape), normalization(pixel_scale), keras.layers.Flatten(), dense]
    model = keras.Sequential(layers, name="logreg")
    dense.set_weights([kernel, bias])
    return model


def _scores(model: keras.Model, part: SplitPart, prefix: str) -> dict[str, float]:
    probs = model.predict(part.x, batch_size=1024, verbose=0)
    return {f"{prefix}loss": cross_entropy(part.y, probs),
            f"{prefix}accuracy": float(np.mean(probs.argmax(axis=1) == part.y))}
