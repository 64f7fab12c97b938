"""The lessons' dense network and its optimizer, built from typed params."""

from __future__ import annotations

import keras

from imgclf.params import TrainParams


def build_model(input_shape: tuple[int, ...], n_classes: int, train: TrainParams) -> keras.Model:
    """Flatten -> Dense hidden layers -> softmax."""
    layers = [keras.Input(shape=input_shape), keras.layers.Flatten()]
    layers += [keras.layers.Dense(units, activation=train.activation) for units in train.hidden_units]
    layers.append(keras.layers.Dense(n_classes, activation="softmax"))
    return keras.Sequential(layers, name="mlp")


def make_optimizer(train: TrainParams) -> keras.optimizers.Optimizer:
    """The optimizer named by train.optimizer at train.learning_rate."""
    lr = train.learning_rate
    if train.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=train.momentum)
    factories = {
        "adam": keras.optimizers.Adam,
        "rmsprop": keras.optimizers.RMSprop,
        "adagrad": keras.optimizers.Adagrad,
    }
    return factories[train.optimizer](learning_rate=lr)


def compile_model(model: keras.Model, train: TrainParams) -> keras.Model:
    model.compile(
        optimizer=make_optimizer(train),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
