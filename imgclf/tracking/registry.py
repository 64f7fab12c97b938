"""The model registry: which registered version is the one to serve (alias `champion`).

Evaluate records on a version what it was trained for and how it scored (record_evaluation); the last
stage, once the whole pipeline has succeeded, moves the alias (promote_champion). A version takes the
alias only from a champion of the same task (the same class names in the same order, the same input
shape), and only by beating it on the same test set: a champion scored on another test set is first
scored on the candidate's. So a failed run, a model of another task, or a better figure on an easier
test set never changes what `models:/<name>@champion` serves.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from imgclf.artifacts import SplitPart, read_json
from imgclf.errors import PipelineError
from imgclf.evaluate.metrics import summary_metrics
from imgclf.evaluate.scoring import load_scorer, predict_proba, sha256
from imgclf.records import ServingInfo
from imgclf.tracking import access
from imgclf.tracking.store import project_root, store_lock

log = logging.getLogger(__name__)

CHAMPION = "champion"
CLASS_NAMES_TAG = "task.class_names"  # JSON list, in the order of the model's outputs
INPUT_SHAPE_TAG = "task.input_shape"  # JSON list: height, width, channels of the stored images it takes
TEST_DIGEST_TAG = "test.digest"  # the test set the version's own evaluation scored it on
METRICS = ("accuracy", "loss", "precision_macro", "recall_macro", "f1_macro")  # metrics/eval.json's keys
LOWER_IS_BETTER = frozenset({"loss"})
# Rounds of "score the champion, then compare under the lock" before giving up: each round ends early
# only when another process moved the alias meanwhile.
ATTEMPTS = 5


@dataclass(frozen=True)
class Task:
    """What a model was trained for: the classes it names, in its output order, and the images it takes."""

    class_names: tuple[str, ...]
    input_shape: tuple[int, ...]

    def difference(self, other: Task) -> str | None:
        """How `other` differs from this task, in words; None when it is the same task."""
        if self.class_names != other.class_names:
            return f"class names {list(self.class_names)} against {list(other.class_names)}"
        if self.input_shape != other.input_shape:
            return f"input shape {list(self.input_shape)} against {list(other.input_shape)}"
        return None


@dataclass(frozen=True)
class Promotion:
    """What promote_champion decided, as one line for the console."""

    moved: bool  # the alias now names the candidate
    note: str
    warning: bool = False  # the candidate was left out (another task, no longer registered): the user should act


def digest_test_set(x_md5: str, y_md5: str) -> str:
    """One name for a test set: its images' and labels' DVC hashes (the evaluation runs' test.x.md5, test.y.md5)."""
    return hashlib.md5(f"{x_md5}:{y_md5}".encode()).hexdigest()


def figure_tag(digest: str, metric: str) -> str:
    """The version tag holding a version's `metric` on test set `digest`."""
    return f"test.{digest}.{metric}"


def record_evaluation(name: str, version: str | int, task: Task, digest: str, figures: Mapping[str, float]) -> bool:
    """Tag version `version` of model `name` with its task, its test set and its figures on it.

    False, after a warning, when the version was deleted from the registry since it was trained, or when
    the user may not edit it (HTTP 403): the evaluation itself stands.
    """
    tags = {CLASS_NAMES_TAG: json.dumps(list(task.class_names)), INPUT_SHAPE_TAG: json.dumps(list(task.input_shape)),
            TEST_DIGEST_TAG: digest, **_figure_tags(digest, figures)}
    client = MlflowClient()
    with store_lock(project_root()):
        try:
            for key, value in tags.items():
                client.set_model_version_tag(name, str(version), key, value)
        except MlflowException as exc:
            if access.status(exc) == 403:
                log.warning("%s may not tag version %s of registered model %s (HTTP 403), so it carries no test "
                            "figures to compare it with the champion by; the evaluation stands. To record them, "
                            "ask the server's admin for EDIT on registered model %r", access.who(), version, name,
                            name)
                return False
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            log.warning("version %s of registered model %s is no longer in the registry (deleted?), so it "
                        "is neither tagged nor compared with the champion; to register this model again, "
                        "retrain: dvc repro --force --single-item train", version, name)
            return False
    return True


def promote_champion(name: str, version: str | int, task: Task, digest: str, figures: Mapping[str, float],
                     metric: str, score: Callable[[ModelVersion], Mapping[str, float]]) -> Promotion:
    """Make version `version` of model `name` the champion if it beats the current one by `metric`.

    `figures` are the candidate's metrics on its test set `digest`; `score(champion)` gives the
    champion's on that same test set, called only when the champion carries no figure for it (and
    recorded on the champion). The first version evaluated becomes the champion; a tie keeps the
    current one; a version of another task never replaces it. The champion is scored outside the
    store's lock (it may take seconds) and the decision taken under it, on the champion as it is
    then: queued experiments finishing at once compare one at a time. A user who may not edit the
    registered model (HTTP 403: moving an alias takes EDIT on it) gets a warning, and the champion stays.
    """
    try:
        return _promote(name, str(version), task, digest, figures, metric, score)
    except MlflowException as exc:
        if access.status(exc) != 403:
            raise
        return Promotion(False, f"{access.who()} may not move the alias {CHAMPION} of registered model {name} "
                                f"(HTTP 403), so {name} version {version} does not become the champion (the alias "
                                f"stays where it is); moving it takes EDIT on registered model {name!r}: ask the "
                                "server's admin, or a teammate who has it, to rerun: "
                                "dvc repro --force --single-item report",
                         warning=True)


def _promote(name: str, version: str, task: Task, digest: str, figures: Mapping[str, float], metric: str,
             score: Callable[[ModelVersion], Mapping[str, float]]) -> Promotion:
    client = MlflowClient()
    for _ in range(ATTEMPTS):
        candidate, champion = _version(client, name, version), _champion(client, name)
        if candidate is None:
            return Promotion(False, f"version {version} of registered model {name} is no longer in the registry "
                                    "(deleted?), so it does not become the champion", warning=True)
        if champion is not None and str(champion.version) != version:
            if (left_out := _other_task(name, version, task, champion)) is not None:
                return left_out
            if figure_tag(digest, metric) not in champion.tags:
                try:
                    scored = score(champion)
                except (MlflowException, OSError, ValueError, PipelineError) as exc:  # its files gone or unreadable
                    problem = " ".join(str(exc).split())[:200]
                    return Promotion(False, f"champion version {champion.version} of {name} could not be scored on "
                                            f"this test set ({type(exc).__name__}: {problem}), so {name} version "
                                            f"{version} is not compared with it; the champion stays", warning=True)
                with store_lock(project_root()):
                    for key, value in _figure_tags(digest, scored).items():
                        client.set_model_version_tag(name, champion.version, key, value)
        with store_lock(project_root()):
            now = _champion(client, name)
            if _number(now) != _number(champion):
                continue  # another pipeline moved the alias meanwhile: judge against the new champion
            return _decide(client, name, version, now, digest, figures, metric)
    return Promotion(False, f"the champion of {name} kept changing while version {version} was compared with it; "
                            f"{name} version {version} is not the champion "
                            "(rerun: dvc repro --force --single-item report)",
                     warning=True)


def score_version(name: str, version: ModelVersion, test: SplitPart, pixel_scale: float | None) -> dict[str, float]:
    """The metrics of registered `version` (its network, as served) on a test split stored at `pixel_scale`.

    Scored as its server scores it: with its checked ONNX copy when it carries one (no TensorFlow
    import, and the same runtime evaluate scored the candidate with), else with its Keras network.
    The network's first layer multiplies the pixels it is given by its own pixel scale; the stored
    test pixels are converted to that scale first, so a champion trained from differently stored
    images of the same task sees the same images.
    """
    with tempfile.TemporaryDirectory() as tmp:
        def artifact(file: str) -> Path:
            return Path(mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version.version}/artifacts/{file}", dst_path=tmp))

        info_file = artifact("model.json")
        info = ServingInfo.from_dict(read_json(info_file), info_file)
        onnx = artifact("model.onnx") if info.onnx_sha256 else None
        if onnx is not None and sha256(onnx.read_bytes()) == info.onnx_sha256:
            network, _ = load_scorer(Path(tmp) / "network.keras", info.onnx_sha256, onnx)
        else:
            network, _ = load_scorer(artifact("network.keras"), None)
        factor = (pixel_scale or 1.0) / (info.pixel_scale or 1.0)
        scorer = network if factor == 1.0 else (lambda x: network(np.asarray(x, np.float32) * np.float32(factor)))
        return summary_metrics(test.y, predict_proba(scorer, test.x))


def _figure_tags(digest: str, figures: Mapping[str, float]) -> dict[str, str]:
    return {figure_tag(digest, metric): repr(float(figures[metric])) for metric in METRICS if metric in figures}


def _number(version: ModelVersion | None) -> str | None:
    """A version's number as a string: the store may hand it back as an int."""
    return None if version is None else str(version.version)


def _version(client: MlflowClient, name: str, version: str) -> ModelVersion | None:
    try:
        return client.get_model_version(name, version)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        return None


def _champion(client: MlflowClient, name: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
        return None


def _other_task(name: str, version: str, task: Task, champion: ModelVersion) -> Promotion | None:
    """A Promotion that leaves the candidate out when the champion was trained for another task (or for
    one it does not record); None when the task is the same."""
    known = _task_of(name, champion)
    if known is None:
        return Promotion(False, f"{name} version {version} is not compared with champion version {champion.version}, "
                                f"whose classes and input shape are recorded neither as tags ({CLASS_NAMES_TAG}, "
                                f"{INPUT_SHAPE_TAG}) nor in its model.json artifact; the champion stays (move the "
                                "alias yourself with MlflowClient().set_registered_model_alias if it should)",
                         warning=True)
    difference = task.difference(known)
    if difference is None:
        return None
    return Promotion(False, f"{name} version {version} is trained for another task than champion version "
                            f"{champion.version} ({difference}), so it never replaces it: register models of "
                            "another task under another name (mlflow.register_model)", warning=True)


def _task_of(name: str, version: ModelVersion) -> Task | None:
    """A version's task: from its tags (record_evaluation), else from the model.json its photo model carries."""
    if CLASS_NAMES_TAG in version.tags and INPUT_SHAPE_TAG in version.tags:
        return Task(tuple(json.loads(version.tags[CLASS_NAMES_TAG])), tuple(json.loads(version.tags[INPUT_SHAPE_TAG])))
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version.version}/artifacts/model.json", dst_path=tmp)
            info = ServingInfo.from_dict(read_json(path), path)
        except (MlflowException, OSError, ValueError, PipelineError) as exc:
            log.debug("no model.json for %s version %s: %s", name, version.version, exc)
            return None
    return Task(info.class_names, info.input_shape)


def _decide(client: MlflowClient, name: str, version: str, champion: ModelVersion | None, digest: str,
            figures: Mapping[str, float], metric: str) -> Promotion:
    """Move the alias to the candidate when it beats `champion` (read under the store's lock) on test set `digest`."""
    mine = float(figures[metric])
    if champion is None:
        client.set_registered_model_alias(name, CHAMPION, version)
        return Promotion(True, f"{name} version {version} is the champion (the first; test {metric} {mine})")
    if str(champion.version) == version:
        return Promotion(False, f"{name} version {version} is the champion (test {metric} {mine})")
    best = float(champion.tags[figure_tag(digest, metric)])
    same_set = f"on the same test set ({digest[:8]})"
    if mine < best if metric in LOWER_IS_BETTER else mine > best:
        client.set_registered_model_alias(name, CHAMPION, version)
        return Promotion(True, f"{name} version {version} is the champion: test {metric} {mine} against "
                               f"{best} of version {champion.version} {same_set}")
    return Promotion(False, f"{name} version {version} does not beat champion version {champion.version}: "
                            f"test {metric} {mine} against {best} {same_set}")
