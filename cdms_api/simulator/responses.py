"""The shapes of the simulator's answers: JSON with ``OData-Version``, bodiless answers, and
Dataverse-shaped errors. One JSON codec (Decimal-exact) for every answer."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Response

from .. import codec
from .errors import DataverseError

RECORDS = "cdms_api.simulator.records"  # in a request's environ: how many records it answered

JSON_TYPE = "application/json; odata.metadata=minimal"


def json_response(body: Any, status: int = 200, headers: dict | None = None) -> Response:
    response = Response(codec.dumps(body), status, content_type=JSON_TYPE)
    response.headers["OData-Version"] = "4.0"
    response.headers.update(headers or {})
    return response


def empty(status: int, headers: dict | None = None) -> Response:
    """A response without a body (204, 304): no Content-Type."""
    response = Response(status=status, headers={"OData-Version": "4.0", **(headers or {})})
    del response.headers["Content-Type"]
    return response


def error_response(error: DataverseError) -> Response:
    return json_response(error.body(), error.status, error.headers)
