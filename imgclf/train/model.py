"""The lessons' dense network, its optimizer and its loss, built from typed params."""

from __future__ import annotations

import dataclasses
import re

import keras

from imgclf.errors import PipelineError
from imgclf.params import TrainParams

# Keras Applications backbones, and the Rescaling that does their preprocess_input on [0, 1] pixels
# (a layer, not a Lambda, so the saved model loads with safe_mode).
BACKBONES = {
    "xception": ("Xception", 2.0, -1.0, 71),  # preprocess_input: x / 127.5 - 1
    "mobilenet_v2": ("MobileNetV2", 2.0, -1.0, 32),  # preprocess_input: x / 127.5 - 1
    "efficientnet_b0": ("EfficientNetB0", 255.0, 0.0, 32),  # normalizes 0..255 inside the model
}


# How much of its running mean and variance a BatchNormalization keeps per batch. Keras's 0.99 takes
# several hundred batches to forget its starting variance of 1; a few thousand images make a few dozen
# batches an epoch, and until then validation, scored with the running figures, sees a network that
# answers one class whatever it is shown, and early stopping keeps that epoch.
BATCH_NORM_MOMENTUM = 0.9


def build_model(input_shape: tuple[int, ...], n_classes: int, train: TrainParams,
                pixel_scale: float = 1.0) -> keras.Model:
    """The network named by train.model: mlp, cnn or transfer, taking pixels as stored (see normalization)."""
    if train.model == "cnn":
        return build_cnn(input_shape, n_classes, train, pixel_scale)
    if train.model == "transfer":
        return build_transfer(input_shape, n_classes, train, pixel_scale)
    return build_mlp(input_shape, n_classes, train, pixel_scale)


def normalization(pixel_scale: float) -> keras.layers.Layer:
    """The model's first layer: stored pixels (8-bit 0..255, or 0..16 for digits) times the scale
    preprocess recorded, to [0, 1]. In the model, so a saved model takes the same pixels as the data."""
    return keras.layers.Rescaling(pixel_scale, name="normalization")


def build_mlp(input_shape: tuple[int, ...], n_classes: int, train: TrainParams,
              pixel_scale: float = 1.0) -> keras.Model:
    """Flatten -> (Dense -> activation -> dropout) per hidden layer -> softmax."""
    regularizer = keras.regularizers.L2(train.l2) if train.l2 else None
    layers = [keras.Input(shape=input_shape), normalization(pixel_scale), keras.layers.Flatten()]
    for units in train.hidden_units:
        layers.append(keras.layers.Dense(units, kernel_regularizer=regularizer))
        layers.append(_activation(train))
        if train.dropout:
            layers.append(keras.layers.Dropout(train.dropout))
    layers.append(keras.layers.Dense(n_classes, activation="softmax", kernel_regularizer=regularizer))
    return keras.Sequential(layers, name="mlp")


def build_cnn(input_shape: tuple[int, ...], n_classes: int, train: TrainParams,
              pixel_scale: float = 1.0) -> keras.Model:
    """Per entry of train.cnn.filters a block of two convolutions, each with batch normalization and
    ReLU, then pooling; global average pooling (or a flatten); dropout and a dense head.

    The first block's convolutions are plain: a depthwise-separable one would filter each colour
    channel alone. Later blocks, with separable on, filter each channel spatially and then mix the
    channels with a 1x1 convolution, for about an eighth of the weights and multiply-adds of a
    plain 3x3 block: a few thousand photos train a network that size without memorizing them.
    """
    cnn = train.cnn
    pool = keras.layers.MaxPooling2D if cnn.pooling == "max" else keras.layers.AveragePooling2D
    layers = [keras.Input(shape=input_shape), normalization(pixel_scale)]
    for block, filters in enumerate(cnn.filters):
        conv = keras.layers.SeparableConv2D if cnn.separable and block else keras.layers.Conv2D
        for _ in range(2):
            if cnn.batch_norm:  # the normalization's offset replaces the convolution's bias
                layers += [conv(filters, cnn.kernel_size, padding="same", use_bias=False),
                           keras.layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM),
                           keras.layers.Activation("relu")]
            else:
                layers.append(conv(filters, cnn.kernel_size, padding="same", activation="relu"))
        layers.append(pool(2, padding="same"))
    layers.append(keras.layers.GlobalAveragePooling2D() if cnn.global_pooling else keras.layers.Flatten())
    if cnn.dropout:
        layers.append(keras.layers.Dropout(cnn.dropout))
    layers += _dense_head(cnn.dense_units, cnn.dropout, n_classes, train)
    return keras.Sequential(layers, name="cnn")


def build_transfer(input_shape: tuple[int, ...], n_classes: int, train: TrainParams,
                   pixel_scale: float = 1.0) -> keras.Model:
    """A frozen ImageNet backbone without its top, global pooling, dropout and a new dense head."""
    name, scale, offset, min_size = BACKBONES[train.transfer.backbone]
    if len(input_shape) != 3 or input_shape[2] != 3 or min(input_shape[:2]) < min_size:
        raise PipelineError(
            f"train.model = transfer with {train.transfer.backbone} needs RGB images of at least "
            f"{min_size}x{min_size}, got {tuple(input_shape)}; use data.dataset: image_folder with "
            f"data.color_mode: rgb and a large enough data.image_size"
        )
    weights = None if train.transfer.weights == "none" else "imagenet"
    try:
        backbone = getattr(keras.applications, name)(include_top=False, weights=weights, input_shape=input_shape)
    except Exception as exc:  # Keras raises a bare Exception("URL fetch failure on <url>: ...")
        if weights is None or "URL fetch failure" not in str(exc):
            raise
        url = re.search(r"https?://\S+?\.h5", str(exc))
        file = url.group(0).rsplit("/", 1)[-1] if url else f"the {name} ImageNet weights file"
        raise PipelineError(
            f"train.transfer.weights = imagenet: Keras could not download {file} (no network?); "
            f"place that file in ~/.keras/models/ ($KERAS_HOME/models when set), where Keras looks first, "
            f"or set train.transfer.weights: none to train from random weights") from None
    backbone.trainable = False
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Rescaling(scale, offset=offset)(normalization(pixel_scale)(inputs))
    x = backbone(x, training=False)  # keep BatchNormalization in inference mode while frozen
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(train.transfer.dropout)(x)
    for layer in _dense_head(train.transfer.dense_units, train.transfer.dropout, n_classes, train):
        x = layer(x)
    return keras.Model(inputs, x, name=f"transfer_{train.transfer.backbone}")


def backbone_of(model: keras.Model) -> keras.Model:
    """The Keras Applications backbone inside a transfer model: its one nested model."""
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


def unfreeze_top(model: keras.Model, layers: int) -> list[keras.layers.Layer]:
    """Make the top `layers` layers of a transfer model's backbone trainable, for fine-tuning; the
    layers unfrozen.

    Every BatchNormalization stays frozen, unfrozen or not: the backbone is called with
    training=False, so its statistics stay the ImageNet ones, and a frozen BatchNormalization
    in Keras also keeps its scale and offset, which the small fine-tuning set would otherwise
    pull away from the statistics they were learnt with (Keras's transfer-learning guide).
    The rest of the model (the new head) stays trainable as it was.
    """
    backbone = backbone_of(model)
    if not 0 < layers <= len(backbone.layers):
        raise PipelineError(
            f"train.transfer.fine_tune.layers = {layers}: {backbone.name} has {len(backbone.layers)} layers; "
            f"choose 1 to {len(backbone.layers)}, or 0 to skip fine-tuning")
    backbone.trainable = True
    top = backbone.layers[-layers:]
    for layer in backbone.layers:
        layer.trainable = layer in top and not isinstance(layer, keras.layers.BatchNormalization)
    return top


def fine_tune_params(train: TrainParams) -> TrainParams:
    """The train params of the fine-tuning phase: its own low, constant learning rate, the same optimizer."""
    fine = train.transfer.fine_tune
    return dataclasses.replace(train, learning_rate=fine.learning_rate, lr_schedule="constant")


def _dense_head(units: tuple[int, ...], dropout: float, n_classes: int, train: TrainParams) -> list:
    layers = []
    for n in units:
        layers += [keras.layers.Dense(n), _activation(train)]
        if dropout:
            layers.append(keras.layers.Dropout(dropout))
    return layers + [keras.layers.Dense(n_classes, activation="softmax")]


def _activation(train: TrainParams) -> keras.layers.Layer:
    if train.activation == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=train.leaky_relu_alpha)
    return keras.layers.Activation(train.activation)


def learning_rate(train: TrainParams, steps_per_epoch: int):
    """A constant rate, or a schedule stepping per batch: exponential decays by lr_decay_rate each epoch."""
    if train.lr_schedule == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(
            train.learning_rate, decay_steps=steps_per_epoch, decay_rate=train.lr_decay_rate
        )
    if train.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(train.learning_rate, decay_steps=steps_per_epoch * train.epochs)
    return train.learning_rate


def make_optimizer(train: TrainParams, steps_per_epoch: int = 1) -> keras.optimizers.Optimizer:
    """The optimizer named by train.optimizer."""
    lr = learning_rate(train, steps_per_epoch)
    if train.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=train.momentum, nesterov=train.nesterov)
    factories = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "rmsprop": keras.optimizers.RMSprop,
        "adagrad": keras.optimizers.Adagrad,
    }
    return factories[train.optimizer](learning_rate=lr)


def compile_model(model: keras.Model, train: TrainParams, steps_per_epoch: int = 1) -> keras.Model:
    """Cross-entropy on integer labels (sparse) or on one-hot vectors; accuracy either way."""
    loss = "sparse_categorical_crossentropy" if train.labels == "sparse" else "categorical_crossentropy"
    # steps_per_execution runs that many batches per call into TensorFlow: still one optimizer step
    # per batch, in the same order, and callbacks see every epoch; only the per-batch overhead goes.
    model.compile(optimizer=make_optimizer(train, steps_per_epoch), loss=loss, metrics=["accuracy"],
                  steps_per_execution=train.steps_per_execution)
    return model
