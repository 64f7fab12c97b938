"""Grad-CAM (Selvaraju et al., 2017): where a convolutional network looked for the class it predicted.

The gradient of the class's score with respect to the last convolution's feature maps, averaged over
each map, weighs the maps; their weighted sum, rectified, is the heatmap. The score is the class's
logit (the last Dense layer's, before its softmax): a confident softmax saturates, and its gradient
vanishes exactly where a confident mistake is worth explaining.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from imgclf.train.nodes import CONV_TYPES

# A heatmap of fewer cells a side cannot say where in the image the model looked: four pooling blocks
# bring the 8x8 digits to 1x1, and there the last convolution whose maps are still this large is taken.
MIN_MAP_SIZE = 4


def last_conv_index(model: keras.Model) -> int | None:
    """Index in model.layers of the last convolution, found by type (or of the normalization and activation
    right after it), or of the last nested model holding one (a transfer backbone, whose output is its
    last convolution block's); the last whose maps are at least MIN_MAP_SIZE a side, when one is; None
    when there is none."""
    convs = [i for i, layer in enumerate(model.layers)
             if isinstance(layer, CONV_TYPES) or (isinstance(layer, keras.Model) and _holds_conv(layer))]
    large = [i for i in convs if min(model.layers[i].output.shape[1:3]) >= MIN_MAP_SIZE]
    found = (large or convs or [None])[-1]
    # A convolution followed by its normalization and activation: the maps as the network passes them on
    # (Keras's Grad-CAM example takes Xception's block14_sepconv2_act), positive where a feature is present.
    while found is not None and found + 1 < len(model.layers) and isinstance(
            model.layers[found + 1], (keras.layers.BatchNormalization, keras.layers.Activation, keras.layers.ReLU)):
        found += 1
    return found


def grad_cam(model: keras.Model, images: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Heatmaps (N x H x W, each scaled to [0, 1]) of `classes` for `images` (pixels as the model takes them).

    Scores whose forward pass does not reproduce the model's own predictions are refused rather than
    explained wrongly.
    """
    conv = last_conv_index(model)
    if conv is None:
        raise ValueError(f"Grad-CAM needs a convolution layer; model {model.name} has none")
    x = tf.convert_to_tensor(np.asarray(images, dtype=np.float32))
    last = model.layers[-1]
    with tf.GradientTape() as tape:
        maps, h = _forward(model, model.layers[conv], x, tape)
        scores = _logits(last, h)
        chosen = tf.gather(scores, tf.convert_to_tensor(classes, dtype=tf.int32), axis=1, batch_dims=1)
    if not np.allclose(keras.ops.softmax(scores) if _softmax_dense(last) else scores, model(x, training=False),
                       atol=1e-4):
        raise ValueError(f"Grad-CAM: model {model.name}'s layers do not reproduce its predictions")
    grads = tape.gradient(chosen, maps)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cams = tf.nn.relu(tf.reduce_sum(weights * maps, axis=-1, keepdims=True))
    cams = keras.ops.image.resize(cams, tuple(x.shape[1:3]), interpolation="bilinear")[..., 0]
    cams = keras.ops.convert_to_numpy(cams)
    peaks = cams.reshape(len(cams), -1).max(axis=1, initial=0.0)
    return cams / np.where(peaks > 0, peaks, 1.0)[:, None, None]


def _forward(model: keras.Model, conv: keras.layers.Layer, x, tape: tf.GradientTape):
    """The feature maps `conv` gives for `x` and the input of the model's last layer, both on `tape`.

    A layer of the model's own graph is read through a model of that graph (any topology, residual
    blocks included); a nested model (a transfer backbone) has no output of its own in the outer
    graph, so the model's layers are applied one after another (the transfer model is a chain)."""
    if not isinstance(conv, keras.Model):
        return keras.Model(model.inputs, [conv.output, model.layers[-1].input])(x, training=False)
    h = x
    for layer in model.layers[:-1]:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        h = layer(h, training=False)
        if layer is conv:
            maps = h
            tape.watch(maps)
    return maps, h


def probabilities(model: keras.Model, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The model's class probabilities for `x`, by eager calls in batches: model.predict would first trace
    a function, which costs more than one pass over a validation split."""
    batches = [model(np.asarray(x[i:i + batch_size], dtype=np.float32), training=False)
               for i in range(0, len(x), batch_size)]
    return np.concatenate([keras.ops.convert_to_numpy(b) for b in batches]) if batches else np.zeros((0, 0))


def _softmax_dense(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.layers.Dense) and layer.activation is keras.activations.softmax


def _logits(last: keras.layers.Layer, h):
    """The last layer's output before its softmax (a Dense with softmax), else its output."""
    if _softmax_dense(last):
        logits = keras.ops.matmul(h, last.kernel)
        return logits + last.bias if last.use_bias else logits
    return last(h, training=False)


def _holds_conv(model: keras.Model) -> bool:
    return any(isinstance(layer, CONV_TYPES) or (isinstance(layer, keras.Model) and _holds_conv(layer))
               for layer in model.layers)
