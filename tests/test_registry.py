"""The `champion` alias: only a version of the champion's task, better on the same test data, by the chosen metric,
and only once its whole pipeline has succeeded."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from imgclf.artifacts import SplitPart
from imgclf.evaluate.metrics import summary_metrics
from imgclf.tracking.registry import (
    CHAMPION,
    CLASS_NAMES_TAG,
    TEST_DIGEST_TAG,
    Task,
    digest_test_set,
    figure_tag,
    promote_champion,
    record_evaluation,
    score_version,
)
from tests.dvc_project import copy_project, dvc, mlflow_runs, set_param

CLOTHING = Task(("bag", "dress", "shirt", "shoes"), (32, 32, 3))
SET_A, SET_B = digest_test_set("a" * 32, "b" * 32), digest_test_set("c" * 32, "d" * 32)


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> Path:
    """An empty sqlite store, created (its schema migrated: seconds) once for the module's tests to copy."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def client(empty_store, tmp_path, monkeypatch) -> MlflowClient:
    """A fresh sqlite store in tmp_path, the project root (where the store's lock lies)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return MlflowClient()


def _versions(name: str, n: int, files: dict[str, bytes] | None = None) -> list[str]:
    """n versions of registered model `name`, each from a run that logged `files` under model/."""
    client = MlflowClient()
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    versions = []
    for _ in range(n):
        with mlflow.start_run() as run, tempfile.TemporaryDirectory() as tmp:
            for path, data in (files or {"network.txt": b"weights"}).items():
                (Path(tmp) / Path(path).name).write_bytes(data)
                mlflow.log_artifact(str(Path(tmp) / Path(path).name), str(Path("model", path).parent))
        created = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
        versions.append(str(created.version))  # the store hands numbers back as ints
    return versions


def _figures(accuracy: float, **others: float) -> dict[str, float]:
    return {"accuracy": accuracy, "loss": 0.5, "precision_macro": accuracy, "recall_macro": accuracy,
            "f1_macro": accuracy, **others}


def _never(version):
    raise AssertionError(f"version {version.version} was scored, but its figure on this test set is known")


def _promote(version: str, figures: dict[str, float], task: Task = CLOTHING, digest: str = SET_A,
             metric: str = "accuracy", score=_never, name: str = "clothing"):
    """What evaluate then report do for a version: record its figures, then settle the champion."""
    assert record_evaluation(name, version, task, digest, figures)
    return promote_champion(name, version, task, digest, figures, metric, score)


def _champion(client: MlflowClient, name: str = "clothing") -> str:
    return str(client.get_model_version_by_alias(name, CHAMPION).version)


def test_champion_moves_only_to_a_better_model_on_the_same_test_set(client):
    first, worse, tie, better = _versions("clothing", 4)
    assert _promote(first, _figures(0.90)).moved and _champion(client) == first  # none before: the first wins
    assert not _promote(worse, _figures(0.85)).moved and _champion(client) == first
    assert not _promote(tie, _figures(0.90)).moved and _champion(client) == first  # a tie keeps the champion
    moved = _promote(better, _figures(0.93))
    assert moved.moved and _champion(client) == better
    assert moved.note == (f"clothing version {better} is the champion: test accuracy 0.93 against 0.9 of "
                          f"version {first} on the same test set ({SET_A[:8]})")
    again = promote_champion("clothing", better, CLOTHING, SET_A, _figures(0.93), "accuracy", _never)  # report rerun
    assert not again.moved and again.note == f"clothing version {better} is the champion (test accuracy 0.93)"
    # every evaluated version carries its task, its test set and its figures there
    tags = {v: client.get_model_version("clothing", v).tags for v in (first, worse, tie, better)}
    assert {v: float(t[figure_tag(SET_A, "accuracy")]) for v, t in tags.items()} == {
        first: 0.90, worse: 0.85, tie: 0.90, better: 0.93}
    assert all(t[TEST_DIGEST_TAG] == SET_A and json.loads(t[CLASS_NAMES_TAG]) == list(CLOTHING.class_names)
               for t in tags.values())


@pytest.mark.parametrize(("task", "difference"), [
    (Task(("red", "blue"), (32, 32, 3)), "class names ['red', 'blue'] against ['bag', 'dress', 'shirt', 'shoes']"),
    (Task(("dress", "bag", "shirt", "shoes"), (32, 32, 3)), "class names ['dress', 'bag', 'shirt', 'shoes']"),
    (Task(CLOTHING.class_names, (64, 64, 3)), "input shape [64, 64, 3] against [32, 32, 3]"),
], ids=["other classes", "classes in another order", "other input shape"])
def test_a_model_of_another_task_never_takes_the_alias(client, task, difference):
    clothing, toy = _versions("clothing", 2)
    assert _promote(clothing, _figures(0.58)).moved
    left_out = _promote(toy, _figures(1.0, loss=0.0), task=task)  # perfect, on the same test set even
    assert not left_out.moved and left_out.warning and _champion(client) == clothing
    assert difference in left_out.note
    assert left_out.note.endswith("register models of another task under another name (mlflow.register_model)")
    assert "\n" not in left_out.note


def test_a_champion_without_task_tags_is_known_by_its_model_json(client):
    """A champion registered before versions were tagged: its task is the photo model's model.json artifact."""
    info = {"class_names": list(CLOTHING.class_names), "input_shape": [32, 32, 3], "pixel_scale": 1 / 255}
    (old,) = _versions("clothing", 1, {"artifacts/model.json": json.dumps(info).encode()})
    client.set_registered_model_alias("clothing", CHAMPION, old)
    client.set_model_version_tag("clothing", old, figure_tag(SET_A, "accuracy"), "0.7")
    (toy,) = _versions("clothing", 1)
    assert not _promote(toy, _figures(1.0), task=Task(("red", "blue"), (32, 32, 3))).moved
    (same,) = _versions("clothing", 1)
    assert _promote(same, _figures(0.8)).moved and _champion(client) == same


def test_a_champion_scored_on_another_test_set_is_scored_on_the_candidates_first(client):
    champion, easy, hard = _versions("clothing", 3)
    assert _promote(champion, _figures(0.99), digest=SET_A).moved
    scored = []

    def score_on_b(version):
        scored.append(str(version.version))
        return _figures(0.95)  # the champion on test set B

    # 0.97 on B is held against the champion's 0.95 on B, never against its 0.99 on A
    assert _promote(easy, _figures(0.97), digest=SET_B, score=score_on_b).moved
    assert scored == [champion] and _champion(client) == easy
    assert float(client.get_model_version("clothing", champion).tags[figure_tag(SET_B, "accuracy")]) == 0.95
    assert float(client.get_model_version("clothing", champion).tags[figure_tag(SET_A, "accuracy")]) == 0.99
    # the next candidate on B meets the new champion's figure on B: no scoring, no move for 0.96
    kept = _promote(hard, _figures(0.96), digest=SET_B)
    assert not kept.moved and _champion(client) == easy
    assert kept.note == (f"clothing version {hard} does not beat champion version {easy}: test accuracy 0.96 "
                         f"against 0.97 on the same test set ({SET_B[:8]})")


def test_a_better_figure_than_the_champions_on_another_test_set_is_not_enough(client):
    champion, candidate = _versions("clothing", 2)
    assert _promote(champion, _figures(0.60), digest=SET_A).moved
    kept = _promote(candidate, _figures(0.70), digest=SET_B, score=lambda v: _figures(0.75))
    assert not kept.moved and _champion(client) == champion


def test_a_champion_that_cannot_be_scored_stays_with_a_warning(client):
    champion, candidate = _versions("clothing", 2)  # logged without a network: nothing to score
    assert _promote(champion, _figures(0.60), digest=SET_A).moved
    kept = promote_champion("clothing", candidate, CLOTHING, SET_B, _figures(0.99), "accuracy",
                            lambda version: score_version("clothing", version, SplitPart(np.zeros((1, 32, 32, 3)),
                                                                                         np.zeros(1, int)), 1.0))
    assert not kept.moved and kept.warning and _champion(client) == champion
    assert kept.note.startswith(f"champion version {champion} of clothing could not be scored on this test set (")
    assert "\n" not in kept.note


@pytest.mark.parametrize(("metric", "winner"), [("accuracy", "first"), ("f1_macro", "second"), ("loss", "second")])
def test_the_metric_param_switches_the_comparison(client, metric, winner):
    first, second = _versions("clothing", 2)
    # imbalanced classes: the second has a lower accuracy, yet a better macro F1 and a lower loss
    assert _promote(first, _figures(0.90, f1_macro=0.60, loss=0.40), metric=metric).moved
    moved = _promote(second, _figures(0.88, f1_macro=0.80, loss=0.30), metric=metric).moved
    assert moved == (winner == "second")
    assert _champion(client) == {"first": first, "second": second}[winner]


def test_the_decision_is_against_the_champion_as_it_is_under_the_lock(client):
    """Queued experiments: while this one scored the champion, another moved the alias; this one is judged again."""
    first, other, mine = _versions("clothing", 3)
    assert _promote(first, _figures(0.80), digest=SET_A).moved
    assert record_evaluation("clothing", other, CLOTHING, SET_B, _figures(0.95))

    def score_while_another_finishes(version):
        client.set_registered_model_alias("clothing", CHAMPION, other)  # the other pipeline's report stage
        return _figures(0.70)

    kept = _promote(mine, _figures(0.90), digest=SET_B, score=score_while_another_finishes)
    assert not kept.moved and _champion(client) == other  # 0.90 beat the first's 0.70, not the other's 0.95


def test_a_deleted_version_is_left_out_with_a_warning(client, caplog):
    first, deleted = _versions("clothing", 2)
    assert _promote(first, _figures(0.5)).moved
    client.delete_model_version("clothing", deleted)
    assert not record_evaluation("clothing", deleted, CLOTHING, SET_A, _figures(0.99))
    gone = promote_champion("clothing", deleted, CLOTHING, SET_A, _figures(0.99), "accuracy", _never)
    assert not gone.moved and gone.warning and "no longer in the registry" in gone.note
    assert _champion(client) == first
    (warning,) = [r for r in caplog.records if r.name == "imgclf.tracking.registry"]
    assert f"version {deleted} of registered model clothing is no longer in the registry" in warning.getMessage()


def test_an_account_that_may_not_edit_the_model_gets_a_warning_and_the_champion_stays(client, caplog,
                                                                                        monkeypatch):
    """A tracking server's 403 (an account without EDIT on the registered model): evaluate's tags and the alias."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import PERMISSION_DENIED

    first, second = _versions("clothing", 2)
    assert _promote(first, _figures(0.5)).moved

    def refused(self, name, *args):
        raise MlflowException(f"API request to endpoint /api/2.0/mlflow/{name} failed with error code 403 != 200.",
                              error_code=PERMISSION_DENIED)

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ben")
    monkeypatch.setattr(MlflowClient, "set_model_version_tag", lambda self, *a: refused(self, "model-versions/set-tag"))
    monkeypatch.setattr(MlflowClient, "set_registered_model_alias",
                        lambda self, *a: refused(self, "registered-models/alias"))
    assert not record_evaluation("clothing", second, CLOTHING, SET_A, _figures(0.99))
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "imgclf.tracking.registry"]
    assert warning.startswith(f"user 'ben' (MLFLOW_TRACKING_USERNAME) may not tag version {second} of registered "
                              "model clothing (HTTP 403)") and "EDIT on registered model 'clothing'" in warning
    kept = promote_champion("clothing", second, CLOTHING, SET_A, _figures(0.99), "accuracy", lambda v: _figures(0.5))
    assert not kept.moved and kept.warning and _champion(client) == first
    assert kept.note.startswith("user 'ben' (MLFLOW_TRACKING_USERNAME) may not move the alias champion of registered "
                                f"model clothing (HTTP 403), so clothing version {second} does not become the champion")


@pytest.mark.parametrize("runtime", ["keras", "onnx"])
def test_a_champion_is_scored_by_its_served_network_on_the_candidates_pixels(client, tmp_path, runtime):
    """score_version downloads the version's model.json and its ONNX copy (when it has one) or its network,
    and feeds it pixels at its own scale."""
    import keras

    from imgclf.evaluate.scoring import export_onnx, sha256

    keras.utils.set_random_seed(0)
    network = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                                keras.layers.Dense(3, activation="softmax")])
    network.save(tmp_path / "network.keras")
    info = {"class_names": ["a", "b", "c"], "input_shape": [4, 4, 1], "pixel_scale": 1 / 255}
    artifacts = {"artifacts/network.keras": (tmp_path / "network.keras").read_bytes()}
    if runtime == "onnx":
        onnx, _ = export_onnx(network, np.zeros((2, 4, 4, 1), np.uint8))
        # a network file Keras cannot read: only the ONNX copy can give the figures
        artifacts = {"artifacts/network.keras": b"not a model", "artifacts/model.onnx": onnx}
        info["onnx_sha256"] = sha256(onnx)
    (version,) = _versions("letters", 1, {**artifacts, "artifacts/model.json": json.dumps(info).encode()})
    rng = np.random.default_rng(0)
    test = SplitPart(rng.integers(0, 17, (40, 4, 4, 1)).astype(np.uint8), rng.integers(0, 3, 40))
    # the candidate stores pixels 0..16 (pixel scale 1/16); the champion was trained on 0..255
    got = score_version("letters", client.get_model_version("letters", version), test, 1 / 16)
    expected = summary_metrics(test.y, network.predict(test.x.astype(np.float32) * (255 / 16), verbose=0))
    assert got == pytest.approx(expected, abs=1e-6)
    assert got != pytest.approx(summary_metrics(test.y, network.predict(test.x, verbose=0)), abs=1e-6)


@pytest.mark.slow
def test_a_failed_pipeline_never_moves_the_alias(data_template, tmp_path):
    """Evaluate records the version's figures; the alias moves only at the end of a report stage that succeeded."""
    repo = copy_project(data_template, tmp_path / "repo", {"train.epochs": 2, "mlflow.register_model": "digits"})
    template = repo / "imgclf/report/templates/report.md.j2"
    good = template.read_text()
    template.write_text("{{ no_such_filter | missing }}\n")  # the report stage fails, after train and evaluate
    failed = dvc(repo, "repro", check=False)
    assert failed.returncode != 0 and "Running stage 'evaluate'" in failed.stdout
    client, _ = mlflow_runs(repo)
    version = client.get_model_version("digits", "1")
    eval_json = json.loads((repo / "metrics/eval.json").read_text())
    assert any(key.endswith(".accuracy") and float(value) == eval_json["accuracy"]
               for key, value in version.tags.items())  # evaluate recorded the figures
    assert client.get_registered_model("digits").aliases == {}  # and no alias moved

    template.write_text(good)
    done = dvc(repo, "repro")
    assert "report: digits version 1 is the champion (the first; test accuracy" in done.stdout
    assert str(client.get_model_version_by_alias("digits", CHAMPION).version) == "1"
    assert Path(repo / "reports/report.md").exists()

    # another split: version 2 meets the champion on its own test set, the champion's network scored there
    set_param(repo, "split.test_fraction", 0.25)
    second = dvc(repo, "repro").stdout
    digest = client.get_model_version("digits", "2").tags[TEST_DIGEST_TAG]
    assert digest != version.tags[TEST_DIGEST_TAG]
    champion_there = float(client.get_model_version("digits", "1").tags[figure_tag(digest, "accuracy")])
    assert 0.5 < champion_there <= 1.0  # a real score of the digits model on the new test set
    assert re.search(rf"report: digits version 2 (is the champion: test accuracy [\d.]+ against {champion_there} "
                     rf"of version 1|does not beat champion version 1: test accuracy [\d.]+ against "
                     rf"{champion_there}) on the same test set \({digest[:8]}\)", second), second
