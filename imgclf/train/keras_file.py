"""A .keras file for Rescaling -> Flatten -> Dense(softmax), written without Keras (a workaround, in one place).

Importing Keras imports TensorFlow (seconds, and its start-up lines), which the scikit-learn
baseline (train.model: logreg) has no other use for; its model is this layer stack, and the file
is what Keras's `model.save` writes for it. Written against Keras 3.15's saving format
(keras/src/saving/saving_lib.py): a zip of metadata.json, config.json (the serialized Sequential)
and model.weights.h5 (each layer's variables under layers/<layer>/vars/<i>).
tests/test_logreg.py loads the file with Keras and compares it with the model Keras builds, so a
change of format fails there; Keras's loader itself refuses a file it cannot read.
"""

from __future__ import annotations

import io
import json
import zipfile
from importlib.metadata import version
from pathlib import Path

import h5py
import numpy as np

from imgclf.train.keras_archive import SAVED_AT, ZIP_EPOCH

_FLOAT32 = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}


def _layer(class_name: str, config: dict, input_shape: list | None) -> dict:
    spec = {"module": "keras.layers", "class_name": class_name, "config": config, "registered_name": None}
    if input_shape is not None:
        spec["build_config"] = {"input_shape": input_shape}
    return spec


def dense_softmax_config(name: str, input_shape: tuple[int, ...], n_classes: int, scale: float) -> dict:
    """config.json of Sequential([Input, Rescaling(scale, name="normalization"), Flatten, Dense(softmax)])."""
    batch_shape = [None, *map(int, input_shape)]
    features = int(np.prod(input_shape))
    layer = {"trainable": True, "dtype": _FLOAT32}
    initializer = {"module": "keras.initializers", "registered_name": None}
    layers = [
        _layer("InputLayer", {"batch_shape": batch_shape, "dtype": "float32", "sparse": False, "ragged": False,
                              "name": "input_layer", "optional": False}, None),
        _layer("Rescaling", {"name": "normalization", **layer, "scale": float(scale), "offset": 0.0}, batch_shape),
        _layer("Flatten", {"name": "flatten", **layer, "data_format": "channels_last"}, batch_shape),
        _layer("Dense", {
            "name": "dense", **layer, "units": int(n_classes), "activation": "softmax", "use_bias": True,
            "kernel_initializer": {**initializer, "class_name": "GlorotUniform",
                                   "config": {"seed": None, "input_axes": None, "output_axes": None}},
            "bias_initializer": {**initializer, "class_name": "Zeros", "config": {}},
            "kernel_regularizer": None, "bias_regularizer": None, "kernel_constraint": None,
            "bias_constraint": None, "quantization_config": None}, [None, features]),
    ]
    return {"module": "keras", "class_name": "Sequential",
            "config": {"name": name, "trainable": True, "dtype": _FLOAT32, "layers": layers,
                       "build_input_shape": batch_shape},
            "registered_name": None, "build_config": {"input_shape": batch_shape}, "compile_config": {}}


def _weights_h5(name: str, kernel: np.ndarray, bias: np.ndarray) -> bytes:
    """model.weights.h5 with object times off explicitly, not left to a default: the same weights, the same bytes."""
    untimed = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    untimed.set_obj_track_times(False)

    def group(parent: h5py.Group, path: str, layer_name: str | None = None) -> h5py.Group:
        for part in path.split("/"):
            if part not in parent:
                h5py.h5g.create(parent.id, part.encode(), gcpl=untimed)
            parent = parent[part]
        if layer_name is not None:
            parent.attrs["name"] = layer_name
        return parent

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        group(h5, "vars", name)
        group(h5, "layers/rescaling/vars", "normalization")
        group(h5, "layers/flatten/vars", "flatten")
        dense = group(h5, "layers/dense/vars", "dense")
        dense.create_dataset("0", data=kernel.astype(np.float32), track_times=False)
        dense.create_dataset("1", data=bias.astype(np.float32), track_times=False)
    return buffer.getvalue()


def write_dense_softmax(path: str | Path, name: str, input_shape: tuple[int, ...], scale: float,
                        kernel: np.ndarray, bias: np.ndarray) -> None:
    """Write the .keras file of the model dense_softmax_config describes, with these Dense weights."""
    members = {
        "metadata.json": json.dumps({"keras_version": version("keras"), "date_saved": SAVED_AT}),
        "config.json": json.dumps(dense_softmax_config(name, input_shape, kernel.shape[1], scale)),
        "model.weights.h5": _weights_h5(name, kernel, bias),
    }
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            archive.writestr(zipfile.ZipInfo(member, ZIP_EPOCH), data)
