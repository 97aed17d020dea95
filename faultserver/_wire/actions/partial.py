"""`partial`: the first `bytes` of the full response, then a FIN, an RST or silence."""

from __future__ import annotations

from ..._profile.model import ActionName, Partial
from .base import FIN, RST, ActionUnit, Ending, Outcome, Turn

__all__ = ["UNIT"]


async def _partial(action: Partial, turn: Turn) -> Outcome:
    request = turn.request
    # the full response as `respond` would send it (connection: close included)
    close = request is not None and not request.keep_alive
    head_only = request is not None and request.method == "HEAD"
    full = turn.ctx.prepared.render(request, turn.conn_id, close, head_only)
    await turn.transport.send(full[: action.bytes])
    if action.then is ActionName.RESET:
        await turn.transport.wait_delivered()  # the RST must not overtake the bytes
        return RST
    if action.then is ActionName.HANG:
        return Outcome(Ending.HOLD)
    return FIN


UNIT = ActionUnit(Partial, _partial, reads_body=True)
