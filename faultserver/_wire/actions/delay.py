"""`delay`: wait, then carry on as if no rule had acted.

Before any request (`at: connect`, `at: handshake`) carrying on is reading requests, or
going on with the TLS handshake: a slow accept or a slow handshake that completes. On a
request it is the listener's own answer, late (on a proxied listener: the forward, late).
"""

from __future__ import annotations

from ..._profile.model import Delay
from .. import timer
from .base import KEEP, ActionUnit, Outcome, Turn
from .forward import forward
from .respond import send_response

__all__ = ["UNIT"]


async def _delay(action: Delay, turn: Turn) -> Outcome:
    await timer.sleep(action.for_s.draw(turn.rng))
    if turn.request is None:
        return KEEP
    ctx = turn.ctx
    if ctx.upstream is not None:
        return await forward(turn, None)
    return await send_response(turn.transport, ctx, turn.conn_id, ctx.prepared, turn.request, turn.fields)


UNIT = ActionUnit(Delay, _delay, reads_body=True)
