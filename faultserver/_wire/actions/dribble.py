"""`dribble`: the complete response, sent slowly, in pieces at intervals or at a rate."""

from __future__ import annotations

import trio

from ..._profile.model import Dribble
from .. import timer
from .base import FIN, KEEP, ActionUnit, Outcome, Turn

__all__ = ["DRIBBLE_TICK_S", "UNIT"]

#: The pace of `dribble` with a `rate` and no `chunk`: about 50 pieces a second.
DRIBBLE_TICK_S = 0.02


async def _dribble(action: Dribble, turn: Turn) -> Outcome:
    request = turn.request
    assert request is not None  # the loader allows `dribble` at: request only
    ctx = turn.ctx
    prepared = ctx.prepared
    data = prepared.render(request, turn.conn_id, not request.keep_alive, request.method == "HEAD")
    view = memoryview(data)
    send = turn.transport.send
    start = at = trio.current_time()
    if action.rate_bytes_per_s is not None:
        rate = action.rate_bytes_per_s
        chunk = action.chunk_bytes if action.chunk_bytes > 1 else max(1, round(rate * DRIBBLE_TICK_S))
        sent = 0
        while sent < len(view):
            piece = view[sent : sent + chunk]
            # token bucket: this piece may leave once the rate has paid for it
            await timer.sleep_until(start + (sent + len(piece)) / rate)
            await send(piece)
            sent += len(piece)
    else:
        interval = action.interval
        assert interval is not None  # the loader requires `interval` or `rate`
        chunk = action.chunk_bytes
        for offset in range(0, len(view), chunk):
            at += interval.draw(turn.rng)
            await timer.sleep_until(at)
            await send(view[offset : offset + chunk])
    status = prepared.response.status
    ctx.stats.responses[status] += 1
    ctx.events.emit_fields("response", ctx.name, turn.fields, None, status=status)
    return FIN if prepared.closes_after(request) else KEEP


UNIT = ActionUnit(Dribble, _dribble, reads_body=True)
