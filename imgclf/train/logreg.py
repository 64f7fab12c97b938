"""The lessons' baseline: scikit-learn's LogisticRegression on flattened pixels, served like a Keras model.

It never imports TensorFlow: its model, LinearSoftmax, is the Keras model Rescaling -> Flatten ->
Dense(softmax) in NumPy, and writes that model's .keras file and its ONNX graph itself.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from imgclf.artifacts import SplitPart
from imgclf.evaluate.metrics import cross_entropy
from imgclf.params import LogregParams
from imgclf.train import keras_file
from imgclf.train.result import DataSpec, TrainResult

BATCH = 1024  # rows per matrix product: activations stay small for any split
ONNX_OPSET = 17
ONNX_IR_VERSION = 8  # the IR of opset 17, which ONNX Runtime reads (the onnx package's default may be newer)


@dataclass(frozen=True)
class LinearSoftmax:
    """softmax(flatten(x * pixel_scale) @ kernel + bias) in float32, as the Keras model of the same layers computes it.

    It answers what the train stage asks of a model: predict, save (a .keras file Keras loads as that
    model) and export (ONNX). `classifier` is the fitted scikit-learn estimator, MLflow's raw model.
    """

    kernel: np.ndarray  # (pixels, classes) float32
    bias: np.ndarray  # (classes,) float32
    input_shape: tuple[int, ...]
    pixel_scale: float = 1.0
    classifier: LogisticRegression | None = field(default=None, compare=False)
    name: str = "logreg"

    def predict(self, x: np.ndarray, batch_size: int = BATCH, verbose: int = 0) -> np.ndarray:
        return np.concatenate([self._probabilities(np.asarray(x[i:i + batch_size]))
                               for i in range(0, len(x), batch_size)] or [np.zeros((0, len(self.bias)), np.float32)])

    def _probabilities(self, x: np.ndarray) -> np.ndarray:
        features = (x.astype(np.float32) * np.float32(self.pixel_scale)).reshape(len(x), -1)
        logits = features @ self.kernel + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def save(self, path: str | Path) -> None:
        keras_file.write_dense_softmax(path, self.name, self.input_shape, self.pixel_scale, self.kernel, self.bias)

    def export(self, path: str | Path, format: str = "onnx", verbose: bool = False) -> None:
        if format != "onnx":
            raise ValueError(f"LinearSoftmax exports to onnx, not {format}")
        Path(path).write_bytes(self.to_onnx())

    def to_onnx(self) -> bytes:
        """The same computation as an ONNX graph: Mul (the normalization), Flatten, MatMul, Add, Softmax."""
        from onnx import TensorProto, helper, numpy_helper

        image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", *self.input_shape])
        probs = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", len(self.bias)])
        constants = [numpy_helper.from_array(np.asarray(self.pixel_scale, np.float32), "scale"),
                     numpy_helper.from_array(self.kernel.astype(np.float32), "kernel"),
                     numpy_helper.from_array(self.bias.astype(np.float32), "bias")]
        nodes = [helper.make_node("Mul", ["image", "scale"], ["scaled"]),
                 helper.make_node("Flatten", ["scaled"], ["features"], axis=1),
                 helper.make_node("MatMul", ["features", "kernel"], ["product"]),
                 helper.make_node("Add", ["product", "bias"], ["logits"]),
                 helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)]
        graph = helper.make_graph(nodes, self.name, [image], [probs], constants)
        opsets = [helper.make_opsetid("", ONNX_OPSET)]
        model = helper.make_model(graph, opset_imports=opsets, ir_version=ONNX_IR_VERSION)
        return model.SerializeToString()


def train_logreg(train: SplitPart, val: SplitPart, data: DataSpec, params: LogregParams,
                 class_weight: dict[int, float] | None, seed: int) -> TrainResult:
    """Fit multinomial logistic regression on [0, 1] pixels; return it as a LinearSoftmax.

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
    model = linear_softmax(clf, x.shape[1:], data.n_classes, pixel_scale)
    row = {"epoch": 1, **_scores(model, train, ""), **_scores(model, val, "val_")}
    summary = {"epochs_run": 1, "best_epoch": 1, "iterations": int(clf.n_iter_.max()),
               "converged": not any(issubclass(w.category, ConvergenceWarning) for w in caught),
               **{k if k.startswith("val_") else f"final_{k}": round(v, 6) for k, v in row.items() if k != "epoch"}}
    # One process, no distribution strategy: tagged like a network trained on one device.
    return TrainResult(model, [row], summary, tags={"distribute.strategy": "none", "distribute.replicas": "1"})


def linear_softmax(clf: LogisticRegression, input_shape: tuple[int, ...], n_classes: int,
                   pixel_scale: float = 1.0) -> LinearSoftmax:
    """The fitted coefficients as a LinearSoftmax over all n_classes: predict_proba's probabilities."""
    coef, intercept = clf.coef_, clf.intercept_
    if coef.shape[0] == 1:  # two classes: sklearn keeps one logit z; softmax([0, z]) == sigmoid(z)
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    kernel = np.zeros((int(np.prod(input_shape)), n_classes), np.float32)
    bias = np.full(n_classes, -1e9 if len(clf.classes_) < n_classes else 0.0, np.float32)
    # Classes absent from training keep probability 0.
    kernel[:, clf.classes_] = coef.T
    bias[clf.classes_] = intercept
    return LinearSoftmax(kernel, bias, tuple(int(d) for d in input_shape), float(pixel_scale), clf)


def _scores(model: LinearSoftmax, part: SplitPart, prefix: str) -> dict[str, float]:
    probs = model.predict(part.x)
    return {f"{prefix}loss": cross_entropy(part.y, probs),
            f"{prefix}accuracy": float(np.mean(probs.argmax(axis=1) == part.y))}
