"""A request the served model refuses, answered as an HTTP status and one line of the model's own.

Written against MLflow 3.17's scoring server (`mlflow.pyfunc.scoring_server.invocations`, which
`mlflow models serve` runs). It answers an MlflowException that predict raises with the HTTP status
of its error code (INVALID_PARAMETER_VALUE: 400) and the body `serialize_as_json` gives, but first
rewrites the exception's `message` to "Failed to predict data '<the request's rows, printed>'.
Error: <message>"; any other exception becomes a 400 whose body carries its Python traceback.
RequestError's body keeps the message it was raised with, so a caller reads the reason alone; the
tests over HTTP (tests/test_serving_api.py) check each body word for word and fail if the server
answers otherwise.
"""

from __future__ import annotations

import json

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE

__all__ = ["INTERNAL_ERROR", "INVALID_PARAMETER_VALUE", "RequestError"]


class RequestError(MlflowException):
    """A refused request (INVALID_PARAMETER_VALUE: HTTP 400) or a model's failure on it (INTERNAL_ERROR: 500)."""

    def __init__(self, reason: str, error_code: int = INVALID_PARAMETER_VALUE) -> None:
        super().__init__(reason, error_code=error_code)
        self.reason = reason

    def serialize_as_json(self) -> str:
        body = json.loads(super().serialize_as_json())
        return json.dumps(body | {"message": self.reason})
