"""Typed view of params.yaml: parsed and validated once, before any work."""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from imgclf.errors import PipelineError

DatasetName = Literal["digits", "mnist", "fashion_mnist", "image_folder"]
ModelKind = Literal["mlp", "cnn", "transfer", "logreg"]
Backbone = Literal["xception", "mobilenet_v2", "efficientnet_b0"]
Activation = Literal["relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid"]
Optimizer = Literal["sgd", "adam", "adamw", "rmsprop", "adagrad"]
Schedule = Literal["constant", "exponential", "cosine"]
Monitor = Literal["val_loss", "val_accuracy", "loss", "accuracy"]
Policy = Literal["drop", "warn", "fail"]  # what the split stage does with a data check's finding
Tta = Literal["none", "flip"]  # test-time augmentation: the images as they are | averaged with their mirror images
ChampionMetric = Literal["accuracy", "f1_macro", "precision_macro", "recall_macro", "loss"]  # metrics/eval.json's


class ParamsError(PipelineError):
    """params.yaml names an unknown key or holds an invalid value."""


_WRONG_TYPE = object()


class _NotFinite(ParamsError):
    """inf or nan where a number is wanted: named as such, whatever else the field allows."""


def _check(predicate, allowed: str) -> dict:
    """Field metadata: a value test and the words that describe what is allowed."""
    return {"check": predicate, "allowed": allowed}


@dataclass(frozen=True)
class ChecksParams:
    """The dataset doctor's policies (split stage): what a finding does to the split."""

    # A copy of a training image in the validation or test folders: drop the copy (the training copy stays),
    # warn (keep it, report it), or fail. A split the pipeline carves keeps copies in one part whatever this says.
    leak: Policy = "drop"
    # The same picture under two classes: drop (keep it out of validation and test), warn, or fail.
    conflict: Policy = "drop"
    min_class_count: int = field(default=10, metadata=_check(lambda v: v >= 0, "an integer >= 0; 0 turns it off"))
    small_fraction: float = field(default=0.5, metadata=_check(lambda v: 0 <= v <= 1,
                                                                "a number in [0, 1]; 0 turns it off"))


@dataclass(frozen=True)
class DataParams:
    dataset: DatasetName = "digits"
    mirror: str | None = field(default=None, metadata=_check(lambda v: v is None or bool(v),
                                                              "a base URL or a folder path, or null"))
    path: str = field(default="photos", metadata=_check(bool, "the folder of class folders (image_folder)"))
    image_size: tuple[int, ...] = field(
        default=(64, 64), metadata=_check(lambda v: len(v) == 2 and min(v) >= 8, "[height, width], each >= 8")
    )
    color_mode: Literal["rgb", "grayscale"] = "rgb"
    on_bad_image: Literal["skip", "fail"] = "skip"
    checks: ChecksParams = ChecksParams()


@dataclass(frozen=True)
class SplitParams:
    val_fraction: float = field(default=0.1, metadata=_check(lambda v: 0 < v < 1, "a number between 0 and 1"))
    test_fraction: float = field(default=0.2, metadata=_check(lambda v: 0 < v < 1, "a number between 0 and 1"))


_FRACTION = _check(lambda v: 0 <= v < 1, "a number in [0, 1); 0 turns it off")
_AUTO_FRACTION = _check(lambda v: 0 <= v < 1, "a number in [0, 1), 0 turning it off, or auto")
_AT_LEAST_ONE = _check(lambda v: v >= 1, "an integer >= 1")
_POSITIVE_INTS = _check(lambda v: len(v) > 0 and all(n > 0 for n in v), "a non-empty list of positive integers")
_PATIENCE = _check(lambda v: v >= 0, "an integer >= 0")


@dataclass(frozen=True)
class AugmentationParams:
    """Random transforms of training images only; 0 or false turns one off."""

    # auto (see AUTO): the photo setting for image_folder, off for the built-in data sets.
    rotation: float = field(default=0.0, metadata=_check(lambda v: 0 <= v <= 180, "degrees in [0, 180], or auto"))
    zoom: float = field(default=0.0, metadata=_AUTO_FRACTION)
    shift: float = field(default=0.0, metadata=_AUTO_FRACTION)
    flip: bool = field(default=False, metadata=_check(lambda v: True, "true, false or auto"))
    contrast: float = field(default=0.0, metadata=_FRACTION)
    # What fills the corners a turn, zoom-out or shift uncovers: black (the digits' background), or the
    # image mirrored at its edge, which keeps a photo's background a photo's (auto: reflect for photos).
    fill: Literal["constant", "reflect"] = "constant"

    @property
    def enabled(self) -> bool:
        return bool(self.rotation or self.zoom or self.shift or self.flip or self.contrast)


@dataclass(frozen=True)
class EarlyStoppingParams:
    enabled: bool = field(default=False, metadata=_check(lambda v: True, "true, false or auto (on for a cnn)"))
    monitor: Monitor = "val_loss"
    patience: int = field(default=5, metadata=_PATIENCE)
    min_delta: float = field(default=0.0, metadata=_check(lambda v: v >= 0, "a number >= 0"))
    restore_best_weights: bool = True


@dataclass(frozen=True)
class CheckpointParams:
    enabled: bool = False
    monitor: Monitor = "val_loss"


@dataclass(frozen=True)
class ReduceLrParams:
    enabled: bool = False
    monitor: Monitor = "val_loss"
    factor: float = field(default=0.5, metadata=_check(lambda v: 0 < v < 1, "a number between 0 and 1"))
    patience: int = field(default=3, metadata=_PATIENCE)
    min_lr: float = field(default=1e-6, metadata=_check(lambda v: v >= 0, "a number >= 0"))


@dataclass(frozen=True)
class CallbackParams:
    early_stopping: EarlyStoppingParams = EarlyStoppingParams()
    checkpoint: CheckpointParams = CheckpointParams()
    reduce_lr: ReduceLrParams = ReduceLrParams()


@dataclass(frozen=True)
class LogregParams:
    max_iter: int = field(default=200, metadata=_AT_LEAST_ONE)
    C: float = field(default=1.0, metadata=_check(lambda v: v > 0, "a number > 0"))


@dataclass(frozen=True)
class CnnParams:
    filters: tuple[int, ...] = field(default=(32, 64, 128, 256), metadata=_POSITIVE_INTS)
    kernel_size: int = field(default=3, metadata=_AT_LEAST_ONE)
    separable: bool = True  # blocks after the first: depthwise-separable convolutions
    batch_norm: bool = True
    pooling: Literal["max", "average"] = "max"
    global_pooling: bool = True  # global average pooling before the head; false: flatten
    dropout: float = field(default=0.3, metadata=_FRACTION)
    dense_units: tuple[int, ...] = field(default=(), metadata=_check(lambda v: all(n > 0 for n in v),
                                                                     "a list of positive integers, or []"))


@dataclass(frozen=True)
class FineTuneParams:
    """A second phase of transfer learning, once the new head has trained on the frozen backbone."""

    layers: int = field(default=0, metadata=_check(lambda v: v >= 0, "an integer >= 0; 0 turns fine-tuning off"))
    epochs: int = field(default=5, metadata=_AT_LEAST_ONE)
    # Low: large updates would wreck the pretrained features the head has just learned to read.
    learning_rate: float = field(default=1e-5, metadata=_check(lambda v: v > 0, "a number > 0"))


@dataclass(frozen=True)
class TransferParams:
    backbone: Backbone = "xception"
    weights: Literal["imagenet", "none"] = "imagenet"
    dropout: float = field(default=0.2, metadata=_FRACTION)
    dense_units: tuple[int, ...] = field(default=(128,), metadata=_POSITIVE_INTS)
    fine_tune: FineTuneParams = FineTuneParams()


@dataclass(frozen=True)
class TrainParams:
    model: ModelKind = "mlp"
    hidden_units: tuple[int, ...] = field(
        default=(128,), metadata=_POSITIVE_INTS
    )
    activation: Activation = "relu"
    leaky_relu_alpha: float = field(default=0.1, metadata=_check(lambda v: 0 <= v < 1, "a number in [0, 1)"))
    dropout: float = field(default=0.0, metadata=_FRACTION)
    l2: float = field(default=0.0, metadata=_check(lambda v: v >= 0, "a number >= 0; 0 turns it off"))
    labels: Literal["sparse", "one_hot"] = "sparse"
    optimizer: Optimizer = "adam"  # auto (see AUTO): adamw for a cnn
    learning_rate: float = field(default=0.001, metadata=_check(lambda v: v > 0, "a number > 0, or auto"))
    momentum: float = field(default=0.0, metadata=_check(lambda v: 0 <= v < 1, "a number in [0, 1)"))
    nesterov: bool = False
    lr_schedule: Schedule = "constant"
    lr_decay_rate: float = field(default=0.9, metadata=_check(lambda v: 0 < v <= 1, "a number in (0, 1]"))
    batch_size: int | Literal["full"] = field(
        default=32, metadata=_check(lambda v: v == "full" or v >= 1, "an integer >= 1, or full")
    )
    epochs: int = field(default=30, metadata=_AT_LEAST_ONE)
    class_weight: Literal["none", "balanced"] = "none"
    distribute: Literal["auto", "none", "mirrored", "multi_worker"] = "auto"
    # Batches run per call into TensorFlow; results are the same for any value (one step per batch).
    steps_per_execution: int = field(default=64, metadata=_AT_LEAST_ONE)
    # Threads per TensorFlow op: a number (0: TensorFlow's), or auto (one for a small dense network).
    # Not a default: on some CPUs another count sums a matmul in another order, hence other weights.
    op_threads: int | Literal["auto"] = field(
        default=0, metadata=_check(lambda v: v == "auto" or v >= 0, "auto, or an integer >= 0")
    )
    augmentation: AugmentationParams = AugmentationParams()
    callbacks: CallbackParams = CallbackParams()
    logreg: LogregParams = LogregParams()
    cnn: CnnParams = CnnParams()
    transfer: TransferParams = TransferParams()


@dataclass(frozen=True)
class EvaluateParams:
    # flip: each image's probabilities are the mean of its own and its left-right mirror's; the plain figures
    # stay, the test-time augmented ones are added beside them. A mirrored digit is another digit.
    tta: Tta = "none"


@dataclass(frozen=True)
class MlflowParams:
    experiment_name: str = field(default="image-classifier", metadata=_check(bool, "a non-empty name"))
    # When set, each trained model is also registered under this name in the model registry.
    register_model: str | None = field(default=None, metadata=_check(lambda v: v is None or bool(v),
                                                                     "a model name, or null"))
    # What a registered version must beat the champion by, on the same test set (loss: lower; others: higher).
    champion_metric: ChampionMetric = "accuracy"


@dataclass(frozen=True)
class Params:
    seed: int = field(default=42, metadata=_check(lambda v: 0 <= v < 2**32, "an integer from 0 to 2**32 - 1"))
    data: DataParams = DataParams()
    split: SplitParams = SplitParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    mlflow: MlflowParams = MlflowParams()


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read params.yaml into Params; fail naming the first bad key."""
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise ParamsError(f"{path} not found: run from the project root, where params.yaml lives") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    return parse_params(raw)


# Params whose fitting value depends on the data or the model: `auto`, or the key left out, takes it.
# Photos get the augmentation photos are taken with (a flip, a small turn, zoom and shift, the corners
# they uncover filled with the photo mirrored at its edge); digits none, since a flipped or turned
# digit can be another one, and MNIST's and Fashion-MNIST's lessons keep their images as they are.
# A cnn, whose batch normalization keeps its layers' inputs in scale, takes larger steps (AdamW at
# 0.003, decaying its weights), settles on a cosine schedule and stops early on validation, keeping
# its best weights; the other models train as the lessons do: Adam at 0.001, a constant rate, every
# epoch. Params built in code (TrainParams()) hold the values `auto` gives the default data and model.
PHOTO_AUGMENTATION = {"rotation": 18.0, "zoom": 0.1, "shift": 0.1, "flip": True}
AUTO = {
    **{("train", "augmentation", key): (lambda dataset, train, value=value: value if dataset == "image_folder"
                                        else type(value)(0))
       for key, value in PHOTO_AUGMENTATION.items()},
    ("train", "augmentation", "fill"): lambda dataset, train: "reflect" if dataset == "image_folder" else "constant",
    ("train", "optimizer"): lambda dataset, train: "adamw" if train.get("model") == "cnn" else "adam",
    ("train", "learning_rate"): lambda dataset, train: 0.003 if train.get("model") == "cnn" else 0.001,
    ("train", "lr_schedule"): lambda dataset, train: (
        "cosine" if train.get("model") == "cnn" and not _get(train, "callbacks", "reduce_lr", "enabled")
        else "constant"),
    ("train", "callbacks", "early_stopping", "enabled"): lambda dataset, train: train.get("model") == "cnn",
}


def parse_params(raw: dict[str, Any]) -> Params:
    """Build Params from a plain dict (the parsed YAML), `auto` values resolved."""
    params = _build(Params, _resolve_auto(raw), "")
    _check_combinations(params)
    return params


def _get(node: Any, *keys: str) -> Any:
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _resolve_auto(raw: Any) -> Any:
    """A copy of raw with each AUTO key that is `auto` or missing set to its value for this data and model.
    A malformed section is left as it is, for _build to name."""
    if not isinstance(raw, dict):
        return raw
    raw = copy.deepcopy(raw)
    dataset, train = _get(raw, "data", "dataset"), raw.get("train", {})
    for path, resolve in AUTO.items():
        node = raw
        for key in path[:-1]:
            node = node.setdefault(key, {}) if isinstance(node, dict) else None
        if isinstance(node, dict) and node.get(path[-1], "auto") == "auto":
            node[path[-1]] = resolve(dataset, train if isinstance(train, dict) else {})
    return raw


def _check_combinations(params: Params) -> None:
    train = params.train
    if train.callbacks.reduce_lr.enabled and train.lr_schedule != "constant":
        raise ParamsError(
            f"train.callbacks.reduce_lr.enabled = true needs train.lr_schedule = constant "
            f"(got {train.lr_schedule}): a schedule already sets the learning rate; use one or the other"
        )


def to_dict(params: Params) -> dict[str, Any]:
    """Params as a plain nested dict, the shape of params.yaml."""
    return dataclasses.asdict(params)


def flatten(params: Params) -> dict[str, Any]:
    """Params as dotted keys (train.optimizer -> adam), as DVC and MLflow show them."""
    out: dict[str, Any] = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                out[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value

    walk(to_dict(params), "")
    return out


def _build(cls: type, raw: Any, prefix: str):
    where = prefix.rstrip(".") or "params.yaml"
    if not isinstance(raw, dict):
        raise ParamsError(f"{where} must be a mapping of keys to values, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), list(fields), n=1, cutoff=0.75)
        hint = f"did you mean {prefix}{close[0]}? " if close else ""
        raise ParamsError(
            f"unknown key {prefix}{unknown[0]} in params.yaml; {hint}known keys here: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in raw.items():
        key = f"{prefix}{name}"
        check, allowed = fields[name].metadata.get("check"), fields[name].metadata.get("allowed")
        try:
            values[name] = _convert(hints[name], value, key)
        except _NotFinite:
            raise
        except ParamsError:
            if allowed is None:
                raise
            values[name] = _WRONG_TYPE  # reported below in the field's own words
        if check is not None and (values[name] is _WRONG_TYPE or not check(values[name])):
            raise ParamsError(f"{key} = {value!r} is invalid; allowed: {allowed}")
    return cls(**values)


def _convert(hint: Any, value: Any, key: str):
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{key}.")
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.75)
            hint = f"; did you mean {close[0]}?" if close else ""
            auto = ", auto" if tuple(key.split(".")) in AUTO else ""
            raise ParamsError(f"{key} = {value!r} is not allowed; choose one of: {', '.join(choices)}{auto}{hint}")
        return value
    if origin in (types.UnionType, typing.Union):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in (o for o in options if o is not type(None)):
            try:
                return _convert(option, value, key)
            except ParamsError:
                pass
        raise ParamsError(f"{key} = {value!r} has none of the types {hint}")
    if origin is tuple:
        if not isinstance(value, list):
            raise ParamsError(f"{key} = {value!r} is invalid; allowed: a list, e.g. [128, 64]")
        (item, _) = typing.get_args(hint)
        return tuple(_convert(item, v, key) for v in value)
    return _convert_scalar(hint, value, key)


def _convert_scalar(hint: type, value: Any, key: str):
    # bool is an int in Python; `epochs: true` is still a mistake.
    ok = isinstance(value, hint) and not (hint is not bool and isinstance(value, bool))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        # PyYAML reads 1e-3 (no dot) as a string; accept it as the number it means.
        try:
            value, ok = float(value), True
        except ValueError:
            pass
    if hint is float and ok and not math.isfinite(value):  # .inf and .nan are YAML floats, and no param's value
        raise _NotFinite(f"{key} = {value!r} is invalid; allowed: a finite number")
    if not ok:
        kinds = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
        raise ParamsError(f"{key} = {value!r} is invalid; allowed: {kinds[hint]}")
    return value
