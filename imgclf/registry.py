"""The model registry: which registered version is the one to serve (alias `champion`)."""

from __future__ import annotations

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from imgclf.tracking import project_root, store_lock

CHAMPION = "champion"
ACCURACY_TAG = "test_accuracy"  # on each evaluated version: what a later one must beat


def promote_champion(name: str, version: str, accuracy: float) -> bool:
    """Tag version `version` of model `name` with its test accuracy; make it the champion if it beats the current one.

    True when the alias moved. A version without a champion before it becomes the champion; an
    equal accuracy keeps the older one. Versions evaluated at once (queued experiments) compare
    one at a time on the local store.
    """
    client = MlflowClient()
    with store_lock(project_root()):
        client.set_model_version_tag(name, version, ACCURACY_TAG, repr(float(accuracy)))
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

