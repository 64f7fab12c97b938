"""A tracking server's refusals, as one line that names the fix: HTTP 401 (who the user is) and 403 (what the user
may do).

Credentials come from MLflow's own variables only (MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or
MLFLOW_TRACKING_TOKEN), which MLflow's client reads itself; the pipeline never takes them from params.yaml.
MLflow raises a refused REST call as an MlflowException (error code UNAUTHENTICATED or PERMISSION_DENIED) and
a refused artifact transfer as a requests HTTPError; it retries neither (its retried status codes are 408,
429 and 5xx), so a stage stops at the first request the server refuses.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

from imgclf.errors import PipelineError
from imgclf.params import MlflowParams

USERNAME, PASSWORD, TOKEN = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"
UNAUTHENTICATED, PERMISSION_DENIED = "UNAUTHENTICATED", "PERMISSION_DENIED"
# MlflowException's message names the REST endpoint it called: "API request to endpoint /api/2.0/... failed"
_ENDPOINT = re.compile(r"endpoint (/\S+)")
_REGISTRY = ("/registered-models/", "/model-versions/")
# MLflow's basic-auth app: an account's effective permission on one resource, as its own checks resolve it
PERMISSION_QUERY = "/api/3.0/mlflow/users/permissions/get"
USER_QUERY = "/api/2.0/mlflow/users/get"  # an account may read its own, is_admin included


def status(exc: BaseException) -> int | None:
    """401 or 403 when `exc` is a tracking server's refusal (a REST call's or an artifact transfer's), else None."""
    code = getattr(exc, "error_code", None)
    if code in (UNAUTHENTICATED, PERMISSION_DENIED):
        return 401 if code == UNAUTHENTICATED else 403
    response = getattr(exc, "response", None)  # requests.HTTPError of an artifact upload or download
    code = getattr(response, "status_code", None)
    return code if code in (401, 403) else None


def who() -> str:
    """The account the credentials name, as a message says it."""
    if user := os.environ.get(USERNAME):
        return f"user {user!r} ({USERNAME})"
    return f"the token in {TOKEN}" if os.environ.get(TOKEN) else "an anonymous client"


def unauthenticated(uri: str) -> PipelineError:
    """The one line for HTTP 401: which variable to set, or which credential the server refused."""
    if os.environ.get(USERNAME):
        return PipelineError(f"the MLflow server at {uri} refused the password of {USERNAME}="
                             f"{os.environ[USERNAME]!r} (HTTP 401): check {PASSWORD}, or ask the server's admin "
                             "for an account")
    if os.environ.get(TOKEN):
        return PipelineError(f"the MLflow server at {uri} refused {TOKEN} (HTTP 401): renew the token, or set "
                             f"{USERNAME} and {PASSWORD} instead")
    return PipelineError(f"the MLflow server at {uri} asks who you are (HTTP 401) and {USERNAME} is not set: "
                         f"export {USERNAME} and {PASSWORD} (or {TOKEN}) with your account on it, in the shell or "
                         "the CI's secrets, never in params.yaml or a committed file")


def _endpoint(exc: BaseException) -> str:
    """The REST endpoint a refused call named, or "" (an artifact transfer names none)."""
    match = _ENDPOINT.search(str(exc))
    return match.group(1) if match else ""


def permission_needed(exc: BaseException, names: MlflowParams) -> str:
    """The permission to ask the server's admin for, from the endpoint the server refused."""
    endpoint = _endpoint(exc)
    level = "READ" if re.search(r"/(get|search|list)\b", endpoint) else "EDIT"
    if any(part in endpoint for part in _REGISTRY):
        model = f"registered model {names.register_model!r}" if names.register_model else "the registered model"
        return f"{level} on {model}"
    return f"{level} on experiment {names.experiment_name!r}"


def forbidden(exc: BaseException, uri: str, names: MlflowParams) -> PipelineError:
    """The one line for HTTP 403: who was refused, and the permission to ask for."""
    call = f", {endpoint}" if (endpoint := _endpoint(exc)) else ""
    return PipelineError(f"the MLflow server at {uri} does not let {who()} do this (HTTP 403{call}): ask its admin "
                         f"for {permission_needed(exc, names)}")


def check_can_train(names: MlflowParams, experiment_id: str) -> None:
    """Before a training on a server of MLflow's basic-auth app: a PipelineError naming every permission the
    account lacks to log its run and, when it registers its model, to add a version, which the server would
    otherwise refuse one at a time, the registration only after the fit. Nothing is asked of a local store
    or for an anonymous client, nor about a model not registered yet (registering creates it, owned by the
    account); a server that does not answer the question (no basic-auth app) leaves it to the requests."""
    uri, user = os.environ.get("MLFLOW_TRACKING_URI", ""), os.environ.get(USERNAME)
    if not (user and uri.startswith(("http://", "https://"))):
        return
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    # The admin may do anything, which the permission query, answering for grants alone, does not say.
    me = http_request(get_default_host_creds(uri), USER_QUERY, "GET", params={"username": user})
    if me.status_code == 200 and me.json().get("user", {}).get("is_admin"):
        return
    needed = {("experiment", experiment_id): f"experiment {names.experiment_name!r}"}
    if names.register_model:
        try:
            MlflowClient().get_registered_model(names.register_model)
            needed[("registered_model", names.register_model)] = f"registered model {names.register_model!r}"
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
    missing = []
    for (kind, key), what in needed.items():
        response = http_request(get_default_host_creds(uri), PERMISSION_QUERY, "GET",
                                params={"username": user, "resource_type": kind, "resource_id": key})
        if response.status_code == 200 and response.json().get("permission") not in ("EDIT", "MANAGE"):
            missing.append(f"EDIT on {what}")
    if missing:
        raise PipelineError(f"the MLflow server at {uri} does not let {who()} log this training"
                            f"{' and register its model' if names.register_model else ''}: ask its admin for "
                            f"{' and '.join(missing)}")


@contextlib.contextmanager
def refusals(names: MlflowParams) -> Iterator[None]:
    """Turn a tracking server's 401 or 403 inside the block into a PipelineError (one line, no traceback).

    A stage's outputs are written last, inside its run: a refusal anywhere before leaves them as they were.
    Only a server (MLFLOW_TRACKING_URI) refuses: the project's local store has no accounts.
    """
    try:
        yield
    except Exception as exc:
        code = status(exc)
        if code is None:
            raise
        uri = os.environ.get("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI")
        raise (unauthenticated(uri) if code == 401 else forbidden(exc, uri, names)) from None
