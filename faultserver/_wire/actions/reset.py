"""`reset`: an RST with no response."""

from __future__ import annotations

from ..._profile.model import Reset
from .base import RST, ActionUnit, Outcome, Turn

__all__ = ["UNIT"]


async def _reset(action: Reset, turn: Turn) -> Outcome:
    return RST


UNIT = ActionUnit(Reset, _reset, reads_body=False)
