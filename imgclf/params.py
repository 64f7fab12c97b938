"""Typed view of params.yaml: parsed and validated once, before any work."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from imgclf.errors import PipelineError

DatasetName = Literal["digits", "mnist", "fashion_mnist"]
Activation = Literal["relu", "leaky_relu", "tanh", "sigmoid"]
Optimizer = Literal["sgd", "adam", "rmsprop", "adagrad"]


class ParamsError(PipelineError):
    """params.yaml names an unknown key or holds an invalid value."""


def _check(predicate, allowed: str) -> dict:
    """Field metadata: a value test and the words that describe what is allowed."""
    return {"check": predicate, "allowed": allowed}


@dataclass(frozen=True)
class DataParams:
    dataset: DatasetName = "digits"
    mirror: str | None = None


@dataclass(frozen=True)
class SplitParams:
    val_fraction: float = field(default=0.1, metadata=_check(lambda v: 0 < v < 1, "a number between 0 and 1"))
    test_fraction: float = field(default=0.2, metadata=_check(lambda v: 0 < v < 1, "a number between 0 and 1"))


@dataclass(frozen=True)
class TrainParams:
    hidden_units: tuple[int, ...] = field(
        default=(128,), metadata=_check(lambda v: all(u > 0 for u in v), "a list of positive integers")
    )
    activation: Activation = "relu"
    optimizer: Optimizer = "adam"
    learning_rate: float = field(default=0.001, metadata=_check(lambda v: v > 0, "a number > 0"))
    momentum: float = field(default=0.0, metadata=_check(lambda v: 0 <= v < 1, "a number in [0, 1)"))
    batch_size: int = field(default=32, metadata=_check(lambda v: v >= 1, "an integer >= 1"))
    epochs: int = field(default=30, metadata=_check(lambda v: v >= 1, "an integer >= 1"))


@dataclass(frozen=True)
class MlflowParams:
    experiment_name: str = field(default="image-classifier", metadata=_check(bool, "a non-empty name"))


@dataclass(frozen=True)
class Params:
    seed: int = 42
    data: DataParams = DataParams()
    split: SplitParams = SplitParams()
    train: TrainParams = TrainParams()
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


def parse_params(raw: dict[str, Any]) -> Params:
    """Build Params from a plain dict (the parsed YAML)."""
    return _build(Params, raw, "")


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
        raise ParamsError(
            f"unknown key {prefix}{unknown[0]} in params.yaml; known keys here: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in raw.items():
        key = f"{prefix}{name}"
        values[name] = _convert(hints[name], value, key)
        check = fields[name].metadata.get("check")
        if check is not None and not check(values[name]):
            raise ParamsError(f"{key} = {value!r} is invalid; allowed: {fields[name].metadata['allowed']}")
    return cls(**values)


def _convert(hint: Any, value: Any, key: str):
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{key}.")
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ParamsError(f"{key} = {value!r} is not allowed; choose one of: {', '.join(choices)}")
        return value
    if origin in (types.UnionType, typing.Union):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return _convert(inner, value, key)
    if origin is tuple:
        if not isinstance(value, list) or not value:
            raise ParamsError(f"{key} = {value!r} is invalid; allowed: a non-empty list, e.g. [128, 64]")
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
            return float(value)
        except ValueError:
            pass
    if not ok:
        kinds = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
        raise ParamsError(f"{key} = {value!r} is invalid; allowed: {kinds[hint]}")
    return value
