"""faultserver's errors as HTTP answers, in one table (as httpx's `map_exceptions`).

Handlers raise; `error_response` is called once, at the edge, and gives each error type
its status: the most specific type in the table along the error's class hierarchy wins.
`tests/admin/test_admin_errors.py` fails if an error type of `faultserver._errors` has
no row of its own.
"""

from __future__ import annotations

import json
from typing import Any

from quart import Response

from .._errors import (
    BindPolicyError,
    CapacityError,
    FaultserverError,
    ProfileError,
    StartError,
    UnknownListenerError,
    UsageError,
)

__all__ = ["STATUS_OF", "error_response", "json_response", "status_of"]

STATUS_OF: dict[type[FaultserverError], int] = {
    FaultserverError: 500,  # raised on purpose, but not about the request
    ProfileError: 400,  # with `problems`
    UsageError: 400,
    UnknownListenerError: 404,
    BindPolicyError: 403,
    StartError: 409,  # valid, but cannot be put in force now (a port taken)
    CapacityError: 503,
}


def status_of(exc: FaultserverError) -> int:
    for kind in type(exc).__mro__:
        status = STATUS_OF.get(kind)
        if status is not None:
            return status
    raise AssertionError(f"unreachable: {type(exc).__name__} is a FaultserverError")


def error_response(exc: FaultserverError) -> Response:
    """The JSON answer for `exc`: `{"error": message}`, plus `problems` for a ProfileError."""
    if isinstance(exc, ProfileError):
        return json_response({"error": exc.summary, "problems": [str(p) for p in exc.problems]}, 400)
    resp = json_response({"error": str(exc)}, status_of(exc))
    if isinstance(exc, CapacityError):
        resp.headers["retry-after"] = "1"
    return resp


def json_text(data: Any) -> str:
    return json.dumps(data, default=str) + "\n"


def json_response(data: Any, status: int = 200) -> Response:
    return Response(json_text(data), status=status, content_type="application/json")
