"""`goaway` and `rst_stream` on HTTP/1.1, which has neither frame: what comes closest.

A GOAWAY tells the client that the server is going away: on HTTP/1.1 that is the FIN of
`close`. An RST_STREAM ends one request abruptly: on HTTP/1.1, where a connection carries one
request at a time, that is the RST of `reset`. On HTTP/2 both are frames (`_wire/h2.py`).
"""

from __future__ import annotations

from ..._profile.model import Goaway, RstStream
from .base import FIN, RST, ActionUnit, Outcome, Turn

__all__ = ["GOAWAY", "RST_STREAM"]


async def _goaway(action: Goaway, turn: Turn) -> Outcome:
    return FIN


async def _rst_stream(action: RstStream, turn: Turn) -> Outcome:
    return RST


GOAWAY = ActionUnit(Goaway, _goaway, reads_body=False)
RST_STREAM = ActionUnit(RstStream, _rst_stream, reads_body=False)
