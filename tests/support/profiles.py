"""Profiles for tests: a one-listener builder, and the one fault table of the conformance
matrices (clients and gateways run the same rows)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["BODY_BYTES", "EXTRA", "PROFILES", "SHIPPED", "TEXT_OK", "matrix_profile", "one_listener"]

#: The repository's shipped profiles.
PROFILES = Path(__file__).resolve().parents[2] / "profiles"


#: A healthy response of three bytes of text (the default, a JSON echo, varies in length).
TEXT_OK: dict[str, Any] = {"headers": {"content-type": "text/plain"}, "body": "ok\n"}


def one_listener(seed: int | None = None, **fields: Any) -> dict[str, Any]:
    """A profile with one listener named `backend` on 127.0.0.1, a free port, and `fields`."""
    profile: dict[str, Any] = {
        "version": 1,
        "listeners": [{"name": "backend", "bind": "127.0.0.1:0", **fields}],
    }
    if seed is not None:
        profile["seed"] = seed
    return profile


#: The response body of the matrices' partial rows.
BODY_BYTES = 1000

#: Causes with a profile shipped in profiles/: the four D504CO ones, reset, and fin-rst (the
#: RST flavour of the keep-alive race). The README's table names these files, so the
#: matrices run exactly them.
SHIPPED = ("refused", "connect-timeout", "fin", "fin-rst", "pool-exhaustion", "reset")

#: The rows of the matrices that have no shipped file.
EXTRA = {
    # "HTTP/1.1 200 OK\r\ndat": the response ends inside its header block
    "partial-headers": one_listener(
        response={"body": {"size": BODY_BYTES}},
        rules=[{"name": "partial", "action": "partial", "bytes": 20}],
    ),
    # headers and the first part of the 1000-byte body, then FIN
    "partial-body": one_listener(
        response={"body": {"size": BODY_BYTES}},
        rules=[{"name": "partial", "action": "partial", "bytes": 300}],
    ),
    "hang": one_listener(rules=[{"name": "hang", "action": "hang"}]),
}


def matrix_profile(name: str) -> str | dict[str, Any]:
    """profiles/NAME.yaml for a shipped cause, else the row's own profile."""
    if name in SHIPPED:
        return str(PROFILES / f"{name}.yaml")
    return EXTRA[name]
