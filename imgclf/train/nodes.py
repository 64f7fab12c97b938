"""What each hidden node sees: the incoming weights of a network's first Dense or convolution layer, as images."""

from __future__ import annotations

from typing import NamedTuple

import keras
import numpy as np

SHOWN = 16  # units drawn: the strongest, by the L2 norm of their incoming weights
# Convolutions by type, so a model's blocks may mix them (plain, depthwise-separable, depthwise).
CONV_TYPES = (keras.layers.Conv2D, keras.layers.SeparableConv2D, keras.layers.DepthwiseConv2D)


class NodeImages(NamedTuple):
    images: np.ndarray  # (units shown, H, W): each unit's weight per pixel, summed over the input's channels
    units: np.ndarray  # their indices in the layer, strongest first
    layer: str  # "dense" (H x W: the input's) or "conv" (H x W: the kernel's)


def first_weight_layer(model: keras.Model) -> keras.layers.Layer | None:
    """The first Dense or convolution layer, looking inside nested models (a transfer backbone)."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found = first_weight_layer(layer)
            if found is not None:
                return found
        elif isinstance(layer, (keras.layers.Dense, *CONV_TYPES)):
            return layer
    return None


def node_images(model: keras.Model, shown: int = SHOWN) -> NodeImages | None:
    """The `shown` strongest units of the first Dense layer (each unit's weights in the input's shape) or
    of the first convolution (each filter, kernel-sized); None for a model with neither."""
    layer = first_weight_layer(model)
    if layer is None:
        return None
    if isinstance(layer, keras.layers.Dense):
        kernel = keras.ops.convert_to_numpy(layer.kernel)  # (features, units)
        shape = tuple(model.inputs[0].shape[1:])
        if kernel.shape[0] != int(np.prod(shape)):
            return None  # a Dense layer after something other than the flattened image: no picture of the input
        weights = np.moveaxis(kernel, -1, 0).reshape(-1, *shape)
        kind = "dense"
    else:
        weights = np.moveaxis(_conv_kernel(layer), -1, 0)  # (filters, kh, kw, in)
        kind = "conv"
    if weights.ndim == 4:  # channels last: a pixel's weight for RGB is its three channels' sum
        weights = weights.sum(axis=-1)
    units = strongest_units(weights.reshape(len(weights), -1), shown)
    return NodeImages(weights[units], units, kind)


def strongest_units(weights: np.ndarray, shown: int) -> np.ndarray:
    """Indices of the `shown` rows of largest L2 norm, strongest first (ties: the lower index first)."""
    norms = np.linalg.norm(weights.astype(np.float64), axis=1)
    return np.argsort(-norms, kind="stable")[:shown]


def _conv_kernel(layer: keras.layers.Layer) -> np.ndarray:
    """A convolution's filters as one (kh, kw, in, out) kernel: a separable one's depthwise and pointwise
    kernels composed; a depthwise one's per channel (zero elsewhere)."""
    if isinstance(layer, keras.layers.SeparableConv2D):
        depthwise = keras.ops.convert_to_numpy(layer.depthwise_kernel)  # (kh, kw, in, multiplier)
        pointwise = keras.ops.convert_to_numpy(layer.pointwise_kernel)  # (1, 1, in * multiplier, out)
        kh, kw, cin, mult = depthwise.shape
        return np.einsum("hwcm,cmo->hwco", depthwise, pointwise[0, 0].reshape(cin, mult, -1))
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        depthwise = keras.ops.convert_to_numpy(layer.kernel)  # (kh, kw, in, multiplier)
        kh, kw, cin, mult = depthwise.shape
        kernel = np.zeros((kh, kw, cin, cin * mult), depthwise.dtype)
        for c in range(cin):
            kernel[:, :, c, c * mult:(c + 1) * mult] = depthwise[:, :, c]
        return kernel
    return keras.ops.convert_to_numpy(layer.kernel)
