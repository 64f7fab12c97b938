"""The model registry: which registered version is the one to serve (alias `champion`)."""

from __future__ import annotations

import logging

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from imgclf.tracking.store import project_root, store_lock

log = logging.getLogger(__name__)

CHAMPION = "champion"
ACCURACY_TAG = "test_accuracy"  # on each evaluated version: what a later one must beat


def promote_champion(name: str, version: str, accuracy: float) -> bool:
    """Tag version `version` of model `name` with its test accuracy; make it the champion if it beats the current one.

    True when the alias moved. A version without a champion before it becomes the champion; an
    equal accuracy keeps the current champion. Versions evaluated at once (queued experiments)
    compare one at a time on the local store. A version deleted from the registry since it was
    trained is left out, with a warning: the evaluation itself stands.
    """
    client = MlflowClient()
    with store_lock(project_root()):
        try:
            client.set_model_version_tag(name, version, ACCURACY_TAG, repr(float(accuracy)))
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            log.warning("version %s of registered model %s is no longer in the registry (deleted?), so it "
                        "is neither tagged nor compared with the champion; to register this model again, "
                        "retrain: dvc repro --force --single-item train", version, name)
            return False
        try:
            current = client.get_model_version_by_alias(name, CHAMPION)
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise
            current = None
        if current is not None:
            best = current.tags.get(ACCURACY_TAG)
            if current.version == str(version) or (best is not None and float(best) >= accuracy):
                return False
        client.set_registered_model_alias(name, CHAMPION, version)
        return True

