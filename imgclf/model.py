"""The lessons' dense network, its optimizer and its loss, built from typed params."""

from __future__ import annotations

import keras

from imgclf.params import TrainParams


def build_model(input_shape: tuple[int, ...], n_classes: int, train: TrainParams) -> keras.Model:
    """Flatten -> (Dense -> activation -> dropout) per hidden layer -> softmax."""
    regularizer = keras.regularizers.L2(train.l2) if train.l2 else None
    layers = [keras.Input(shape=input_shape), keras.layers.Flatten()]
    for units in train.hidden_units:
        layers.append(keras.layers.Dense(units, kernel_regularizer=regularizer))
        layers.append(_activation(train))
        if train.dropout:
            layers.append(keras.layers.Dropout(train.dropout))
    layers.append(keras.layers.Dense(n_classes, activation="softmax", kernel_regularizer=regularizer))
    return keras.Sequential(layers, name="mlp")


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
    model.compile(optimizer=make_optimizer(train, steps_per_epoch), loss=loss, metrics=["accuracy"])
    return model
