"""Proxy mode's connection: a `Connection` whose healthy answer is the upstream's, and whose
requests' bodies stream.

A listener with an `upstream` accepts `ProxiedConnection`s; every other listener keeps
`Connection`, whose per-request path is untouched. Two things differ here:

- the answer to a request that no rule stops is the upstream's (`actions/forward.py`);
  faults, delays and refusals are the connection's own, as on any listener;
- the reader is a `StreamingRequestReader`: a request comes out on its head, and its body
  is pulled by the forwarder (`request_body.py`) while it is sent upstream. So the read
  loop is this module's own: after each answer it hands on requests that arrived meanwhile,
  and drops the rest of a body that no forward took (a fault answered instead).
"""

from __future__ import annotations

import math

import trio

from .._decide.request import Request
from .._profile.model import CloseHow
from .._protocol.events import ContinueExpected, PeerEnded, Refusal
from .._protocol.http1 import ReaderState
from .._protocol.http1_streaming import StreamingRequestReader
from .actions import FIN, KEEP, Outcome
from .actions.forward import forward_healthy
from .actions.respond import send_refusal
from .connection import Connection
from .context import ListenerContext
from .request_body import BODY, RequestBody
from .transport import Transport

__all__ = ["ProxiedConnection"]

_IDLE = ReaderState.IDLE


class ProxiedConnection(Connection):
    """A connection of a proxied listener (see the module docstring)."""

    __slots__ = ()
    answer_healthy = staticmethod(forward_healthy)

    def __init__(self, ctx: ListenerContext, transport: Transport, peer: str, conn_id: int) -> None:
        super().__init__(ctx, transport, peer, conn_id)
        self._reader.close()
        self._reader = StreamingRequestReader(ctx.limits, trio.current_time())

    async def serve(self) -> Outcome:
        """`Connection.serve`, for requests that come out on their head (module docstring)."""
        ctx = self.ctx
        reader = self._reader
        assert isinstance(reader, StreamingRequestReader)
        BODY.set(RequestBody(self, reader))
        idle = ctx.keepalive.idle_close
        idle_deadline = self._next_idle_deadline()
        clock = trio.current_time
        while True:
            deadline = reader.deadline(clock)
            self.busy = reader.state is not _IDLE
            if idle_deadline < deadline and not self.busy:
                deadline = idle_deadline
            try:
                if deadline == math.inf:
                    data = await self.transport.receive()  # no cancel scope: see Connection.serve
                else:
                    with trio.move_on_at(deadline) as waiting:
                        data = await self.transport.receive()
                    if waiting.cancelled_caught:
                        return await self._timed_out(reader, idle_deadline)
            except ConnectionResetError:
                return self.peer_closed(CloseHow.RST)
            if data:
                self.busy = True
                reader.feed(data, clock)
            else:
                self.peer_closed(CloseHow.FIN)
                reader.feed_eof()
            events = reader.take_events()
            if not events:
                await trio.lowlevel.cancel_shielded_checkpoint()
                continue
            while events:
                for event in events:
                    if type(event) is Request:
                        outcome = await self._answer(event, ctx.decide(event))
                        reader.drop_body(event)
                    elif type(event) is Refusal:
                        outcome = await send_refusal(self.transport, ctx, event, self.conn_fields())
                    else:
                        assert type(event) is PeerEnded or type(event) is ContinueExpected
                        return FIN
                    if outcome is not KEEP:
                        return outcome
                events = reader.take_events()  # what arrived while the answers went out
            if idle is not None and reader.state is _IDLE:
                idle_deadline = self._next_idle_deadline()
