"""HTTP/2: what each action does to a request's stream (see `h2.py` for the table).

`carry_out` runs on the stream's own task: what it sends goes through the session (its h2
state machine and its send lock), and an action that ends the whole connection says so with
`session.end(outcome)`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from .._decide.request import Request
from .._decide.rules import Decision
from .._profile.model import (
    ActionName,
    Close,
    Delay,
    Dribble,
    Garbage,
    Goaway,
    GoawayThen,
    H2Error,
    Hang,
    LastStream,
    Partial,
    Respond,
    RstStream,
)
from . import timer
from .actions import FIN, RST, Ending, Outcome
from .actions.dribble import DRIBBLE_TICK_S

if TYPE_CHECKING:
    from .h2 import H2Session, _Stream

__all__ = ["carry_out"]


async def carry_out(
    session: H2Session, stream: _Stream, request: Request, decision: Decision, fields: dict[str, Any]
) -> None:
    ctx = session.ctx
    action = decision.action
    ctx.stats.acted(decision.rule, action, decision.delay_s)
    ctx.events.emit_fields(
        "fault", ctx.name, fields, ("retry", "repeat"), rule=decision.rule, action=action.name.value
    )
    if decision.delay_s:
        await timer.sleep(decision.delay_s)
    name = action.name
    if name is ActionName.RESPOND:
        assert isinstance(action, Respond)
        await session.respond(stream, request, ctx.prepared_for(action), fields)
    elif name is ActionName.FORWARD:  # `X-Fault: forward`: no upstream over HTTP/2, its own answer
        await session.respond(stream, request, ctx.prepared, fields)
    elif name is ActionName.DELAY:
        assert isinstance(action, Delay)
        await timer.sleep(action.for_s.draw(decision.rng))
        await session.respond(stream, request, ctx.prepared, fields)
    elif name is ActionName.DRIBBLE:
        assert isinstance(action, Dribble)
        await _dribble(session, stream, request, action, decision, fields)
    elif name is ActionName.PARTIAL:
        assert isinstance(action, Partial)
        await _partial(session, stream, request, action)
    elif name is ActionName.HANG:
        assert isinstance(action, Hang)
        if action.for_s is not None:
            await trio.sleep(action.for_s.draw(decision.rng))
            session.reset_stream(stream.id, H2Error.CANCEL)
            await session.flush()
        else:
            await trio.sleep_forever()
    else:
        await _connection_action(session, stream, request, action, decision, fields)


async def _connection_action(
    session: H2Session,
    stream: _Stream,
    request: Request,
    action: Any,
    decision: Decision,
    fields: dict[str, Any],
) -> None:
    name = action.name
    if name is ActionName.CLOSE:
        assert isinstance(action, Close)
        session.end(Outcome(Ending.FIN, drain_s=action.drain_s))
    elif name is ActionName.RESET:
        await session.transport.wait_delivered()
        session.end(RST)
    elif name is ActionName.GARBAGE:
        assert isinstance(action, Garbage)
        payload = decision.rng.randbytes(max(1, min(action.bytes, 16384)))
        # a DATA frame on stream 0: a connection error (PROTOCOL_ERROR) for any client
        frame = len(payload).to_bytes(3, "big") + b"\x00\x00\x00\x00\x00\x00" + payload
        session.queue_raw(frame)
        await session.flush()
        session.end(FIN)
    elif name is ActionName.GOAWAY:
        assert isinstance(action, Goaway)
        await _goaway(session, stream, request, action, fields)
    elif name is ActionName.RST_STREAM:
        assert isinstance(action, RstStream)
        session.reset_stream(stream.id, action.error)
        await session.flush()


async def _goaway(
    session: H2Session, stream: _Stream, request: Request, action: Goaway, fields: dict[str, Any]
) -> None:
    last = {
        LastStream.CURRENT: stream.id,
        LastStream.PREVIOUS: max(0, stream.id - 2),
        LastStream.ZERO: 0,
    }[action.last_stream]
    await session.send_goaway(action.error, last)
    if action.then is GoawayThen.CLOSE:
        session.end(FIN)
        return
    if stream.id <= last:
        await session.respond(stream, request, session.ctx.prepared, fields)


async def _dribble(
    session: H2Session,
    stream: _Stream,
    request: Request,
    action: Dribble,
    decision: Decision,
    fields: dict[str, Any],
) -> None:
    headers, body, trailers = session.ctx.prepared.h2_parts(request, session.conn.id)
    session.h2.send_headers(stream.id, headers, end_stream=not body and trailers is None)
    await session.flush()
    start = at = trio.current_time()
    if action.rate_bytes_per_s is not None:
        rate = action.rate_bytes_per_s
        chunk = action.chunk_bytes if action.chunk_bytes > 1 else max(1, round(rate * DRIBBLE_TICK_S))
    else:
        chunk = action.chunk_bytes
    for offset in range(0, len(body), chunk):
        piece = body[offset : offset + chunk]
        if action.rate_bytes_per_s is not None:
            await timer.sleep_until(start + (offset + len(piece)) / action.rate_bytes_per_s)
        else:
            assert action.interval is not None
            at += action.interval.draw(decision.rng)
            await timer.sleep_until(at)
        last = offset + len(piece) >= len(body)
        await session.send_body(stream.id, piece, end=last and trailers is None)
    if trailers is not None:
        session.h2.send_headers(stream.id, trailers, end_stream=True)
        await session.flush()
    session._responded(int(headers[0][1]), fields)


async def _partial(session: H2Session, stream: _Stream, request: Request, action: Partial) -> None:
    headers, body, _trailers = session.ctx.prepared.h2_parts(request, session.conn.id)
    session.h2.send_headers(stream.id, headers)
    if action.bytes:
        await session.send_body(stream.id, body[: action.bytes], end=False)
    await session.flush()
    if action.then is ActionName.RESET:
        await session.transport.wait_delivered()
        session.end(RST)
    elif action.then is ActionName.HANG:
        await trio.sleep_forever()
    else:
        session.reset_stream(stream.id, H2Error.INTERNAL_ERROR)
        await session.flush()
