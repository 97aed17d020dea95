"""One accepted connection: read, feed the reader, ask `_decide`, run the chosen action.

This is the only code that moves a connection's bytes, and only through its `Transport`.
What the bytes mean is the reader's business (`_protocol/http1.py`), what to do with a
request is `_decide`'s, and how each fault is carried out is its action unit's
(`actions/`). Requests are answered in the order they arrived, so a fault on request N
means request N+1 is never answered. Every unit returns an `Outcome`, and `run` carries the
connection's ending out in one place: a FIN after a drain, an RST, or a hold.

`Expect: 100-continue`: the request is decided on its head, and `100 Continue` is sent only
when the decided action reads the body and answers; a request that meets `close` or
`reset` never has its body pulled out of the client, which then resends it on a fresh
connection, as it does against a real backend that closed.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import trio

from .._decide.request import Request
from .._decide.rules import Decision
from .._profile.model import CloseHow, Limits, Protocol, ProxyProtocol
from .._protocol.events import ContinueExpected, PeerEnded, Refusal
from .._protocol.http1 import ReaderState, RequestReader
from . import preamble, timer
from .actions import FIN, GONE, KEEP, UNITS, Ending, Outcome, Turn
from .actions.respond import send_refusal, send_response
from .context import ListenerContext
from .transport import PEER_GONE, Transport

__all__ = ["SHUTDOWN_DRAIN_S", "Connection"]

log = logging.getLogger("faultserver")

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
#: The fields of a request's event that its `fault` event leaves out.
_REQUEST_ONLY = ("retry", "repeat")
#: the reader's states, as module names (an enum member looked up on its class is slow)
_IDLE = ReaderState.IDLE
_NO_PROXY = ProxyProtocol.NONE
_H1, _H2 = Protocol.HTTP1, Protocol.H2
#: What a held connection has instead of its reader: one closed reader for all of them.
_NO_READER = RequestReader(Limits(), 0.0)
_NO_READER.close()
#: At shutdown (and `drop`) every connection gets a FIN and this long to answer it. The FIN
#: leaves at once; the short drain only takes in what was already on its way, so that the
#: close finds nothing unread (which would turn it into an RST). Kept short: a test suite
#: stops a server per test, often with its client's kept-alive connection still open.
SHUTDOWN_DRAIN_S = 0.02


class Connection:
    """One connection's loop and state. `shutdown()` ends it from outside (drop, stop)."""

    __slots__ = (
        "_decided",
        "_drop_how",
        "_held_request",
        "_peer_gone",
        "_reader",
        "busy",
        "client",
        "ctx",
        "first",
        "id",
        "peer",
        "scope",
        "served",
        "transport",
    )
    #: The answer to a request that no rule stops: the listener's own response (a proxied
    #: listener's connection answers with the upstream's instead, `forwarding.py`).
    answer_healthy = staticmethod(send_response)

    def __init__(self, ctx: ListenerContext, transport: Transport, peer: str, conn_id: int) -> None:
        self.ctx = ctx
        self.transport = transport
        self.peer = peer
        self.id = conn_id
        self.scope: trio.CancelScope | None = None
        self.busy = False
        self.served = 0
        self._reader = RequestReader(ctx.limits, trio.current_time())
        self._drop_how: CloseHow | None = None
        self._peer_gone = False
        self._held_request = False
        #: the start of a TLS hello read with a PROXY header, for the handshake to read first
        self.first = b""
        #: the original client's address, from a PROXY protocol header (None: the peer's own)
        self.client: str | None = None
        #: a request decided on its head (`Expect: 100-continue`), waiting for its body
        self._decided: tuple[Request, Decision | None] | None = None
        # open from now on (`run` removes it): the accept loop counts it before it runs
        ctx.connections.add(self)

    def shutdown(self, how: CloseHow) -> None:
        """End this connection from outside (drop, stop): FIN after a short drain, or RST."""
        self._drop_how = how
        if self.scope is not None:
            self.scope.cancel()

    # --- the connection's life ------------------------------------------------------

    async def run(self) -> None:
        ctx = self.ctx
        ctx.stats.opened()
        ctx.events.emit("accept", ctx.name, conn=self.id, peer=self.peer)
        outcome = FIN
        try:
            with trio.CancelScope() as self.scope:
                outcome = KEEP
                decision = ctx.rules.decide_connect() if ctx.rules.has_connect_rules else None
                if decision is not None:  # a rule `at: connect`: before any byte is read
                    outcome = await self.carry_out(decision, None, self.conn_fields())
                if outcome is KEEP and ctx.config.proxy_protocol is not _NO_PROXY:
                    outcome = await preamble.read_proxy_header(self, ctx.config.proxy_protocol)
                if outcome is KEEP and ctx.tls is not None:
                    outcome = await preamble.open_tls(self, ctx.tls)
                if outcome is KEEP:
                    outcome = await preamble.speak(self)
                if outcome.ending is Ending.HOLD:
                    outcome = await _hold(self, outcome.hold_s)
        except PEER_GONE as exc:
            self.peer_closed(CloseHow.RST if isinstance(exc, ConnectionResetError) else CloseHow.FIN)
            outcome = GONE
        except OSError as exc:
            log.debug("connection %s: %s", self.id, exc)
        except Exception as exc:
            log.exception("listener %s connection %s: unexpected error (contained)", ctx.name, self.id)
            ctx.events.emit(
                "error", ctx.name, conn=self.id, peer=self.peer, error=f"{type(exc).__name__}: {exc}"
            )
        finally:
            with trio.CancelScope(shield=True):
                await self._end(outcome)
            ctx.stats.closed()
            ctx.connections.discard(self)
            ctx.connection_ended()

    async def _end(self, outcome: Outcome) -> None:
        """Carry out how the connection ends; a drop from outside overrides it."""
        self._reader.close()  # the parser refers back to the reader: free both now
        transport = self.transport
        how = self._drop_how
        try:
            if how is CloseHow.RST or (how is None and outcome.ending is Ending.RST):
                await transport.reset()
            elif how is None and outcome.ending is Ending.GONE:
                await transport.forget()
            else:
                drain_s = SHUTDOWN_DRAIN_S if how is CloseHow.FIN else outcome.drain_s
                peer = await transport.close(drain_s, how is not None or outcome.close_notify)
                if peer is not None:
                    self.peer_closed(peer)
        except OSError as exc:
            log.debug("connection %s: closing: %s", self.id, exc)

    def peer_closed(self, how: CloseHow) -> Outcome:
        """Say (once) that the client ended the connection; there is nothing left to end."""
        if not self._peer_gone:  # an EOF seen in the read loop is seen again by the closing drain
            self._peer_gone = True
            self.ctx.events.emit("peer_close", self.ctx.name, conn=self.id, peer=self.peer, how=how.value)
        return GONE

    async def serve(self) -> Outcome:
        """Read and answer requests until one of them (or the client) ends the connection."""
        ctx = self.ctx
        reader = self._reader
        transport = self.transport
        idle = ctx.keepalive.idle_close
        idle_deadline = self._next_idle_deadline()
        clock = trio.current_time
        # plain TCP to a listener that speaks h2 too: a request may ask for h2c (`Upgrade`)
        h2c = _H2 in ctx.config.protocols and ctx.tls is None
        while True:
            # until when this read may wait: the reader's clock, or between requests the idle one
            deadline = reader.deadline(clock)
            self.busy = reader.state is not _IDLE
            if idle_deadline < deadline and not self.busy:
                deadline = idle_deadline
            try:
                if deadline == math.inf:
                    # no clock on this read (keep-alive, between requests): a cancel scope
                    # costs more than parsing and answering a small request
                    data = await transport.receive()
                else:
                    with trio.move_on_at(deadline) as waiting:
                        data = await transport.receive()
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
                # a read that brought no whole request: yield here, as an answer would
                await trio.lowlevel.cancel_shielded_checkpoint()
                continue
            for event in events:
                if type(event) is Request:
                    if self._decided is None and not h2c:  # the common case: decide, answer
                        outcome = await self._answer(event, ctx.decide(event))
                    else:
                        outcome = await self._answer_other(event)
                elif type(event) is ContinueExpected:
                    outcome = await self._continue(event.request)
                elif type(event) is Refusal:
                    outcome = await send_refusal(transport, ctx, event, self.conn_fields())
                else:
                    assert type(event) is PeerEnded
                    return FIN
                if outcome is not KEEP:
                    return outcome
            if idle is not None and reader.state is _IDLE:
                idle_deadline = self._next_idle_deadline()  # idle from this answer on

    def _next_idle_deadline(self) -> float:
        """When an idle connection is closed (`keepalive.idle_close`, drawn afresh each time)."""
        idle = self.ctx.keepalive.idle_close
        if idle is None:
            return math.inf
        return trio.current_time() + idle.draw(self.ctx.keepalive_rng)

    async def _timed_out(self, reader: RequestReader, idle_deadline: float) -> Outcome:
        ctx = self.ctx
        if reader.state is _IDLE and trio.current_time() >= idle_deadline:
            ctx.events.emit("idle_close", ctx.name, conn=self.id, peer=self.peer)
            return FIN
        return await send_refusal(self.transport, ctx, reader.timed_out(), self.conn_fields())

    # --- answering ------------------------------------------------------------------

    async def _answer_other(self, request: Request) -> Outcome:
        """A request decided already, on its head (`Expect: 100-continue`), or one that may
        ask for h2c (`Upgrade: h2c`, `preamble.upgrade_h2c`): HTTP/2 from here if it does."""
        early = self._decided
        if early is not None and early[0] is request:
            self._decided = None
            return await self._answer(request, early[1])
        ctx = self.ctx
        if _H2 in ctx.config.protocols and ctx.tls is None and request.header(b"upgrade") is not None:
            outcome = await preamble.upgrade_h2c(self, request)
            if outcome is not None:
                return FIN if outcome is KEEP else outcome
        return await self._answer(request, ctx.decide(request))

    async def _continue(self, request: Request) -> Outcome:
        """A head that waits for `100 Continue`: decide now; ask for the body only for an
        action that reads it."""
        decision = self.ctx.decide(request)
        if decision is None or (type(decision) is Decision and UNITS[decision.action.name].reads_body):
            self._decided = (request, decision)
            await self.transport.send(_CONTINUE)
            return KEEP
        request.body_read = False  # a fault, or a refused fault header: answered on its head
        return await self._answer(request, decision)

    async def _answer(self, request: Request, decision: Decision | Refusal | None) -> Outcome:
        """Record the request, then answer it or carry out its fault."""
        ctx = self.ctx
        stats = ctx.stats
        stats.in_flight += 1
        try:
            fields = ctx.record_request(request, self.id, self.peer, self.client)
            if decision is None:
                outcome = await self.answer_healthy(
                    self.transport, ctx, self.id, ctx.prepared, request, fields
                )
            elif type(decision) is Refusal:
                outcome = await send_refusal(self.transport, ctx, decision, fields)
            else:
                assert type(decision) is Decision
                outcome = await self.carry_out(decision, request, fields)
        except BaseException:
            # the connection ended (or was ended) before the answer went out: sent again, a retry
            stats.met_trouble(request, request.fingerprint, self.id)
            raise
        finally:
            stats.in_flight -= 1
        self.served += 1
        if outcome is not KEEP:
            return outcome
        if not request.keep_alive:
            return FIN
        max_requests = ctx.keepalive.max_requests
        if max_requests is not None and self.served >= max_requests:
            ctx.events.emit(
                "max_requests_close", ctx.name, conn=self.id, peer=self.peer, requests=self.served
            )
            return FIN
        return KEEP

    async def carry_out(
        self, decision: Decision, request: Request | None, fields: dict[str, Any]
    ) -> Outcome:
        """A fault: record it, wait its delay, run its action's unit."""
        ctx = self.ctx
        action = decision.action
        # a fault or a delay, or both (`_metrics.py`); a request that met a fault, sent again, is a retry
        if ctx.stats.acted(decision.rule, action, decision.delay_s) and request is not None:
            ctx.stats.met_trouble(request, fields["fingerprint"], self.id)
        # the request's own fields, less `retry` and `repeat` (which only request events carry)
        ctx.events.emit_fields(
            "fault", ctx.name, fields, _REQUEST_ONLY, rule=decision.rule, action=action.name.value
        )
        if decision.delay_s:
            await timer.sleep(decision.delay_s)  # many fall due at once: see timer.py
        turn = Turn(self.transport, ctx, self.id, request, fields, decision.rng)
        outcome = await UNITS[action.name].run(action, turn)
        if outcome.ending is Ending.HOLD:
            self._held_request = request is not None
        return outcome

    def conn_fields(self) -> dict[str, Any]:
        if self.client is not None:
            return {"conn": self.id, "peer": self.peer, "client": self.client}
        return {"conn": self.id, "peer": self.peer}


async def _hold(conn: Connection, hold_s: float | None) -> Outcome:
    """Held from here, once the frames of the request that asked are gone: thousands may be
    held, each with as little as possible (no reader). A held request counts as in flight."""
    conn._reader.close()
    conn._reader = _NO_READER
    stats = conn.ctx.stats
    held = 1 if conn._held_request else 0
    stats.in_flight += held
    try:
        how = await conn.transport.discard_until_eof(hold_s)
    finally:
        stats.in_flight -= held
    return FIN if how is None else conn.peer_closed(how)
