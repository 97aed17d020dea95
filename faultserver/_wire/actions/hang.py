"""`hang`: no answer; the connection stays open, what the client sends is thrown away."""

from __future__ import annotations

from ..._profile.model import Hang
from .base import ActionUnit, Ending, Outcome, Turn

__all__ = ["UNIT"]


async def _hang(action: Hang, turn: Turn) -> Outcome:
    for_s = action.for_s.draw(turn.rng) if action.for_s is not None else None
    return Outcome(Ending.HOLD, hold_s=for_s)  # `Connection.run` holds


UNIT = ActionUnit(Hang, _hang, reads_body=False)
