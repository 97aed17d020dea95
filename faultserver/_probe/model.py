"""What the probe records: one `Reply` per request sent through the gateway.

The client (`client.py`) fills these in; the analysis and the verdicts read them. A reply
says what the probe's client saw, nothing about the backend: that comes from faultserver's
own events (`analyse.py`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

__all__ = ["BODY_HEAD_BYTES", "Failure", "Reply", "Role"]

#: How much of each answer's body a reply keeps.
BODY_HEAD_BYTES = 64


class Failure(str, enum.Enum):
    """How the exchange with the gateway failed, when it did (from the client's side)."""

    #: the gateway closed the client connection without an answer
    CLOSED = "closed"
    #: the gateway reset the client connection
    RESET = "reset"
    #: no answer within the probe's wait (`--max-wait`, or the scenario's time left)
    TIMEOUT = "timeout"
    #: the gateway refused the client's connection (it is down)
    REFUSED = "refused"
    #: the status and headers came, then the body ended before its length
    CUT = "cut"
    #: anything else (TLS, a malformed answer): `Reply.detail` says what
    ERROR = "error"


class Role(str, enum.Enum):
    """What a request is for: the scenario's own request, or setting the stage for it."""

    PROBE = "probe"
    WARM_UP = "warm-up"


@dataclass(frozen=True, slots=True)
class Reply:
    """One request through the gateway and what came back.

    `token`: the last segment of the request's path, unique in the run: the backend finds
    the request by it whatever prefix the gateway adds or strips. `took_s`: from sending
    the request to the end of the answer (or the failure). `status`: None when no status
    line came. `body_head`: the first `BODY_HEAD_BYTES` of the body; `body_bytes`: how many
    arrived. `failure` and `detail` (the client's exception, as text) say what went wrong.
    `note`: a scenario's own label (`delay=0.85s`, `step=8`).
    """

    token: str
    method: str
    role: Role
    took_s: float
    status: int | None = None
    body_head: bytes = b""
    body_bytes: int = 0
    failure: Failure | None = None
    detail: str | None = None
    note: str = ""

    @property
    def outcome(self) -> str:
        """The status, the failure, or both (`200 cut`), as the report shows it."""
        if self.failure is None:
            return str(self.status)
        if self.status is None:
            return self.failure.value
        return f"{self.status} {self.failure.value}"

    def to_json(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "method": self.method,
            "role": self.role.value,
            "took_s": round(self.took_s, 3),
            "status": self.status,
            "body_head": self.body_head.decode("latin-1"),
            "body_bytes": self.body_bytes,
            "failure": self.failure.value if self.failure else None,
            "detail": self.detail,
            "note": self.note or None,
        }
