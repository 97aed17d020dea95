"""`close`: a FIN with no response; the client's further bytes are read and thrown away."""

from __future__ import annotations

from ..._profile.model import Close
from .base import ActionUnit, Ending, Outcome, Turn

__all__ = ["UNIT"]


async def _close(action: Close, turn: Turn) -> Outcome:
    return Outcome(Ending.FIN, drain_s=action.drain_s, close_notify=action.close_notify)


UNIT = ActionUnit(Close, _close, reads_body=False)
