"""The `champion` alias: on the first evaluated version, then only on a version that scores better."""

from __future__ import annotations

import mlflow
from mlflow.tracking import MlflowClient

from imgclf.tracking.registry import ACCURACY_TAG, CHAMPION, promote_champion


def _versions(name: str, n: int) -> list[str]:
    client = MlflowClient()
    client.create_registered_model(name)
    versions = []
    for _ in range(n):
        with mlflow.start_run() as run:
            mlflow.log_text("weights", "model/network.txt")
        versions.append(client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id).version)
    return versions


def test_champion_moves_only_to_a_better_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the project root: the store and its lock
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = MlflowClient()
    first, worse, tie, better = _versions("shop", 4)

    def champion() -> str:
        return client.get_model_version_by_alias("shop", CHAMPION).version

    assert promote_champion("shop", first, 0.90) and champion() == first  # none before: the first wins
    assert not promote_champion("shop", worse, 0.85) and champion() == first
    assert not promote_champion("shop", tie, 0.90) and champion() == first  # a tie keeps the champion
    assert promote_champion("shop", better, 0.93) and champion() == better
    # every evaluated version carries its score, the champion's included
    scores = {v: client.get_model_version("shop", v).tags[ACCURACY_TAG] for v in (first, worse, tie, better)}
    assert {v: float(s) for v, s in scores.items()} == {first: 0.90, worse: 0.85, tie: 0.90, better: 0.93}


def test_a_deleted_version_is_left_out_with_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = MlflowClient()
    first, deleted = _versions("shop", 2)
    assert promote_champion("shop", first, 0.5)
    client.delete_model_version("shop", deleted)
    assert not promote_champion("shop", deleted, 0.99)
    assert client.get_model_version_by_alias("shop", CHAMPION).version == first
    (warning,) = [r for r in caplog.records if r.name == "imgclf.tracking.registry"]
    assert f"version {deleted} of registered model shop is no longer in the registry" in warning.getMessage()
