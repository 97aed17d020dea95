"""`respond`, and every other answer the data plane sends: the healthy response, and the
error answers of a refused request (limits, malformed requests, X-Fault mistakes)."""

from __future__ import annotations

from typing import Any

from ..._decide.request import Request
from ..._decide.response import PreparedResponse, error_response
from ..._profile.model import Respond
from ..._protocol.events import Refusal
from ..context import ListenerContext
from ..transport import PEER_GONE, Transport
from .base import FIN, KEEP, ActionUnit, Outcome, Turn

__all__ = ["UNIT", "send_refusal", "send_response"]


async def send_response(
    transport: Transport,
    ctx: ListenerContext,
    conn_id: int,
    prepared: PreparedResponse,
    request: Request,
    fields: dict[str, Any],
) -> Outcome:
    """Answer `request` with `prepared`; FIN after it when the response says so."""
    data = prepared.render(request, conn_id, not request.keep_alive, request.method == "HEAD")
    await transport.send(data)
    status = prepared.response.status
    ctx.stats.responses[status] += 1
    ctx.events.emit_response(ctx.name, fields, status)
    return FIN if prepared.closes_after(request) else KEEP


async def send_refusal(
    transport: Transport, ctx: ListenerContext, refusal: Refusal, fields: dict[str, Any]
) -> Outcome:
    """The error answer of a refused request, then FIN (the client may have left already)."""
    try:
        await transport.send(error_response(refusal.status, refusal.message, refusal.headers))
    except PEER_GONE:
        pass
    ctx.stats.responses[refusal.status] += 1
    ctx.events.emit("response", ctx.name, status=refusal.status, error=refusal.message, **fields)
    return FIN


async def _respond(action: Respond, turn: Turn) -> Outcome:
    assert turn.request is not None  # the loader allows `respond` at: request only
    prepared = turn.ctx.prepared_for(action)
    return await send_response(turn.transport, turn.ctx, turn.conn_id, prepared, turn.request, turn.fields)


UNIT = ActionUnit(Respond, _respond, reads_body=True)
