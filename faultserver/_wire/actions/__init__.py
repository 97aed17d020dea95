"""The data plane's half of each action, one module each, and the one table that finds them.

Adding an action is a model class and an entry in `faultserver._profile.actions.ACTIONS`
(the profile's half) and a module here with its entry in `UNITS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..._profile.model import ActionName
from . import close, delay, dribble, forward, garbage, goaway, hang, partial, reset, respond
from .base import FIN, GONE, KEEP, RST, ActionUnit, Ending, Outcome, Turn

__all__ = ["FIN", "GONE", "KEEP", "RST", "UNITS", "ActionUnit", "Ending", "Outcome", "Turn"]

UNITS: Mapping[ActionName, ActionUnit[Any]] = {
    ActionName.RESPOND: respond.UNIT,
    ActionName.CLOSE: close.UNIT,
    ActionName.RESET: reset.UNIT,
    ActionName.HANG: hang.UNIT,
    ActionName.PARTIAL: partial.UNIT,
    ActionName.DRIBBLE: dribble.UNIT,
    ActionName.GARBAGE: garbage.UNIT,
    ActionName.DELAY: delay.UNIT,
    ActionName.GOAWAY: goaway.GOAWAY,
    ActionName.RST_STREAM: goaway.RST_STREAM,
    ActionName.FORWARD: forward.UNIT,
}
