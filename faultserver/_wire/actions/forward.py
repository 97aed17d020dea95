"""`forward`: the request goes to the listener's upstream and its answer comes back, with
`then` applied on the way (a cut, a rate, a FIN or RST after it) and its status replaced.

A proxied listener forwards every request that no rule stops the same way, with nothing
applied (`forward(turn, None)`). The answer is relayed as it arrives, a read at a time:
memory is one read, whatever the body's size. When the upstream fails, the client gets
a gateway's answer (502 for refused, reset, closed or invalid; 504 for a timeout) or, with
`upstream_failure: mirror`, the same failure on its own connection; either way with an
`upstream_error` event. Once the answer's head has gone out, a failure can only end the
client's connection: a FIN (gateway), or the upstream's own ending (mirror).
"""

from __future__ import annotations

from typing import Any

import httptools
import trio

from ..._decide.request import Request
from ..._decide.response import PreparedResponse, error_response, filler
from ..._profile.model import CloseHow, Forward, ForwardThen, UpstreamFailure
from ..._protocol.events import Refusal
from ..._protocol.forwarding import (
    PlainAnswers,
    ResponseBody,
    ResponseEvent,
    ResponseHead,
    ResponseReader,
    relayed_head,
    request_head,
    response_head,
    response_via,
)
from ..._protocol.http1_streaming import BodyStream
from .. import timer
from ..context import ListenerContext
from ..request_body import BODY, BodyStalledError, RequestBody
from ..splice import SPLICE_AVAILABLE, SPLICE_MIN_BYTES, ClientStalledError, splice_body
from ..transport import PEER_GONE, SocketTransport, Transport
from ..tunnel import tunnel
from ..upstream import PooledConnection, UpstreamError, UpstreamPool, UpstreamTransport, translate
from .base import FIN, GONE, KEEP, RST, ActionUnit, Ending, Outcome, Turn
from .respond import send_refusal, send_response

__all__ = ["UNIT", "forward", "forward_healthy"]

_NOTHING = ForwardThen()
#: a dribbled answer leaves in pieces of this long at its rate (about 50 a second)
_TICK_S = 0.02
_GATEWAY_STATUS = {"timeout": 504}
_MIRROR = {
    "refused": RST,
    "reset": RST,
    "tls": RST,  # a plain HTTP client cannot meet the TLS failure itself: an RST, as for refused
    "closed": FIN,
    "invalid": FIN,
    "timeout": Outcome(Ending.HOLD),
}


async def forward(turn: Turn, action: Forward | None) -> Outcome:
    """Forward `turn.request` and relay the answer (`action`: None for the healthy path)."""
    ctx = turn.ctx
    request = turn.request
    assert request is not None  # the loader allows `forward` at: request only
    pool: UpstreamPool | None = ctx.upstream
    if pool is None:  # `X-Fault: forward` on a listener with no upstream: its own answer
        return await send_response(turn.transport, ctx, turn.conn_id, ctx.prepared, request, turn.fields)
    source = BODY.get()
    upgrade = source is not None and source.reader.upgraded is request
    stream = source.stream_of(request) if source is not None and not upgrade else None
    head = _request_head(ctx, request, turn.fields, stream is not None, upgrade)
    relay = _Relay(turn, action, pool)
    started = trio.current_time()
    try:
        conn = await pool.acquire()
    except UpstreamError as exc:
        relay.reader.close()
        return await relay.failed(exc, started)
    return await _exchange_and_relay(relay, conn, started, head, source, stream, upgrade, False, None)


async def forward_healthy(
    transport: Transport,
    ctx: ListenerContext,
    conn_id: int,
    prepared: PreparedResponse,
    request: Request,
    fields: dict[str, Any],
) -> Outcome:
    """A proxied listener's answer to a request no rule stops: `forward` with nothing
    applied, the common case on a short path.

    The short path takes a request whose body came whole (no `HEAD`, no `Upgrade`) to a
    plain `http://` upstream with no `via`, sends it, and reads once: an answer that is
    whole in that read and can be relayed as it came (`plain_answer`) goes out at once,
    with the same counts and `forward` event. Anything else (no byte yet, a failure, any
    other answer) goes on `forward`'s way from where it stands, so a plain forward and a
    short one differ in cost only."""
    pool = ctx.upstream
    source = BODY.get()
    if (
        pool is None
        or not pool.plain
        or not request.body_read
        or request.method == "HEAD"
        or (source is not None and source.reader.upgraded is request)
    ):
        return await forward(Turn(transport, ctx, conn_id, request, fields, ctx.header_rng), None)
    head = _request_head(ctx, request, fields, False, False)
    clock = trio.current_time
    started = clock()
    try:
        conn = await pool.acquire(started)
    except UpstreamError as exc:
        relay = _Relay(Turn(transport, ctx, conn_id, request, fields, ctx.header_rng), None, pool)
        relay.reader.close()
        return await relay.failed(exc, started)
    keep_alive = request.keep_alive
    try:  # until the answer is relayed or handed on, the connection is this code's to give back
        first = await _send_and_read(conn.transport, head, request.body, pool.config.read_timeout_s)
        answer = None
        if type(first) is bytes and first:
            answers = conn.answers
            if answers is None:
                answers = conn.answers = PlainAnswers()
            answer = answers.take(first, not keep_alive, keep_alive and request.http_version == "1.0")
        if answer is None:
            relay = _Relay(Turn(transport, ctx, conn_id, request, fields, ctx.header_rng), None, pool)
    except BaseException:  # cancelled (a drop, the server's stop) while the upstream answers
        pool.release(conn, False)
        raise
    if answer is None:
        return await _exchange_and_relay(relay, conn, started, head, source, None, False, True, first)
    status, data = answer
    now = clock()
    latency_s = now - started
    pool.stats.answered(status, latency_s)
    reusable = False
    try:
        await transport.send(data)
        _count_forward(ctx, fields, status, status, round(latency_s * 1000, 3), conn.reused)
        reusable = True
    finally:
        pool.release(conn, reusable, now)
    return KEEP if keep_alive else FIN


def _count_forward(
    ctx: ListenerContext,
    fields: dict[str, Any],
    status: int,
    upstream_status: int,
    upstream_ms: float,
    reused: bool,
) -> None:
    """A relayed answer's count and `forward` event, on the short path and the general one."""
    ctx.stats.responses[status] += 1
    ctx.events.emit_fields(
        "forward", ctx.name, fields, None,
        status=status, upstream_status=upstream_status, upstream_ms=upstream_ms, reused=reused,
    )


async def _send_and_read(
    upstream: UpstreamTransport, head: bytes, body: bytes | bytearray, read_s: float
) -> bytes | UpstreamError | None:
    """The short path's exchange over plain TCP: send the request whole, then what the
    first read brings (within the read timeout), or how the send or the read failed."""
    try:
        if len(body) < 65536:
            await upstream.tcp.send(head + body if body else head)
        else:
            await upstream.tcp.send(head)
            await upstream.tcp.send(body)
    except OSError as exc:
        return translate(exc, "send")
    try:
        first = upstream.receive_nowait()
        if first is None:  # the upstream has not answered yet (at low load, always)
            first = await _receive_within(upstream, read_s)
    except OSError as exc:
        return translate(exc, "read")
    except UpstreamError as exc:
        return exc
    return first


def _request_head(
    ctx: ListenerContext, request: Request, fields: dict[str, Any], streamed: bool, upgrade: bool
) -> bytes:
    assert ctx.upstream is not None
    proto = "https" if ctx.tls is not None else "http"
    upstream = ctx.upstream.config
    return request_head(request, upstream, _client_ip(fields), proto, ctx.fault_header, streamed, upgrade)


async def _exchange_and_relay(
    relay: _Relay,
    conn: PooledConnection,
    started: float,
    head: bytes,
    source: RequestBody | None,
    stream: BodyStream | None,
    upgrade: bool,
    sent: bool,
    first: bytes | UpstreamError | None,
) -> Outcome:
    """Send the request on `conn` and relay its answer. `sent`: the request went already
    (with its body whole), and `first` is what the first read brought (None: nothing yet),
    or how the send or that read failed."""
    turn = relay.turn
    request = relay.request
    pool = relay.pool
    read_s = pool.config.read_timeout_s
    reusable = False
    try:
        if stream is not None:
            assert source is not None
            if _expects_continue(request) and not stream.pieces and not stream.done:
                await source.send_continue()  # the client waits for it before its body
            try:
                events = await _exchange_streamed(
                    conn.transport, head, source, stream, request, relay.reader, read_s
                )
            except BodyStalledError as exc:
                refusal = Refusal(408 if "stalled" in str(exc) else 400, str(exc))
                return await send_refusal(turn.transport, turn.ctx, refusal, turn.fields)
        else:
            try:
                events = await _exchange(
                    conn.transport, head, request.body, relay.reader, read_s, sent, first
                )
            except UpstreamError as exc:
                if not conn.reused or exc.reason not in ("reset", "closed") or exc.data:
                    raise
                # a pooled connection the upstream had closed meanwhile: again, on a new one
                conn.transport.close()
                conn.reused = False
                conn.transport = (await pool.fresh()).transport
                relay.reader.close()
                relay.reader = ResponseReader(request.method == "HEAD")
                events = await _exchange(
                    conn.transport, head, request.body, relay.reader, read_s, False, None
                )
        latency_s = trio.current_time() - started
        relay.upstream_ms = round(latency_s * 1000, 3)
        answer = relay.reader.head
        if answer is not None:
            pool.stats.answered(answer.status, latency_s)
        relay.reused = conn.reused
        reusable = await relay.run(conn, events)
        if upgrade and relay.upstream_status == 101 and not relay.was_cut:
            assert source is not None
            reusable = False
            start = source.reader.tunnel_start
            await tunnel(turn.transport, conn.transport, start, relay.reader.tunnel_start)
            return FIN
    except UpstreamError as exc:
        return await relay.failed(exc, started)
    finally:
        relay.reader.close()
        pool.release(conn, reusable)
    return await relay.ending()


async def _exchange(
    transport: UpstreamTransport,
    head: bytes,
    body: bytes | bytearray,
    reader: ResponseReader,
    read_s: float,
    sent: bool,
    first: bytes | UpstreamError | None,
) -> list[ResponseEvent]:
    """Send the request (unless it was `sent`: see `_exchange_and_relay`); the first
    events of the answer."""
    if not sent:
        try:
            await transport.send(head + body if len(body) < 65536 else head)
            if len(body) >= 65536:
                await transport.send(body)
        except OSError as exc:
            raise translate(exc, "send") from exc
    elif isinstance(first, UpstreamError):
        raise first
    elif first is not None:
        events = _events_of(reader, first)
        if events:
            return events
    return await read_events(transport, reader, read_s)


async def _exchange_streamed(
    transport: UpstreamTransport,
    head: bytes,
    source: RequestBody,
    stream: BodyStream,
    request: Request,
    reader: ResponseReader,
    read_s: float,
) -> list[ResponseEvent]:
    """Send the request's head, then its body as it arrives (chunked as the client sent
    it, or within its Content-Length); the first events of the answer."""
    chunked = request.header(b"content-length") is None
    try:
        await transport.send(head)
        while pieces := await source.pieces(stream):
            data = b"".join(pieces) if len(pieces) > 1 else pieces[0]
            await transport.send(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
        if chunked:
            await transport.send(b"0\r\n\r\n")
    except OSError as exc:
        raise translate(exc, "send") from exc
    return await read_events(transport, reader, read_s)


def _expects_continue(request: Request) -> bool:
    expect = request.header(b"expect")
    return expect is not None and expect.strip().lower() == b"100-continue"


async def read_events(
    transport: UpstreamTransport, reader: ResponseReader, read_s: float
) -> list[ResponseEvent]:
    """The events of the next read (none is an error: each read brings some, or more bytes)."""
    while True:
        try:
            ready = transport.receive_nowait()
            data = ready if ready is not None else await _receive_within(transport, read_s)
        except OSError as exc:
            raise translate(exc, "read") from exc
        events = _events_of(reader, data)
        if events:
            return events


async def _receive_within(transport: UpstreamTransport, read_s: float) -> bytes:
    """The next read, which `receive_nowait` found not there yet, within the read timeout
    (only a read that waits needs a deadline, a cancel scope)."""
    with trio.move_on_after(read_s):
        return await transport.receive_later()
    raise UpstreamError("timeout", "read", f"no byte within {read_s}s")


def _events_of(reader: ResponseReader, data: bytes) -> list[ResponseEvent]:
    """What one read of the answer brings (`b""`: the upstream closed); none: more bytes."""
    if not data:
        ended = reader.feed_eof()
        if ended is None:
            raise UpstreamError("closed", "read", "the upstream closed before the answer was complete")
        return ended
    try:
        return reader.feed(data)
    except httptools.HttpParserError as exc:
        raise UpstreamError("invalid", "read", str(exc), data) from exc


class _Relay:
    """One forwarded answer on its way to the client."""

    def __init__(self, turn: Turn, action: Forward | None, pool: UpstreamPool) -> None:
        self.turn = turn
        self.action = action
        self.then = action.then if action is not None else _NOTHING
        self.pool = pool
        request = turn.request
        assert request is not None
        self.request = request
        self.reader = ResponseReader(request.method == "HEAD")
        self.transport: Transport = turn.transport
        self.head_sent = False
        self.chunked = False
        self.close = not request.keep_alive
        self.cut_left = self.then.cut_bytes
        self.was_cut = False
        #: the client took nothing of the answer for the read timeout
        self.client_stalled = False
        #: what goes to the client with the next write
        self.out: list[bytes] = []
        self.sent = 0
        self.started = 0.0
        self.upstream_ms = 0.0
        self.reused = False
        self.status = 0
        self.upstream_status = 0

    async def run(self, conn: PooledConnection, events: list[ResponseEvent]) -> bool:
        """Relay the answer; whether the upstream connection may carry another. What one
        read of the upstream brings leaves in one write (a small answer: head and body)."""
        read_s = self.pool.config.read_timeout_s
        body = self.action.body if self.action is not None else None
        while True:
            for event in events:
                if type(event) is ResponseHead:
                    self._head(event)
                elif type(event) is ResponseBody:
                    data = event.data
                    if body is None and data:
                        self._queue(b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data)
                else:
                    if body is not None:
                        self._queue(body.data if body.data is not None else filler(body.size or 0))
                    elif self.chunked:
                        self._queue(b"0\r\n\r\n")
                    await self._flush()
                    self._emit()
                    return event.reusable and not self.was_cut  # type: ignore[union-attr]
                if self.was_cut:
                    await self._flush()
                    self._emit()
                    return False
            # a client that takes nothing for the read timeout holds no upstream connection
            with trio.move_on_after(read_s) as sending:
                await self._flush()
            if sending.cancelled_caught:
                self.client_stalled = True
                return False
            left = self.reader.body_left
            if left is not None and left >= SPLICE_MIN_BYTES and self._plain(conn):
                assert isinstance(self.transport, SocketTransport)
                try:
                    await splice_body(conn.transport.sock, self.transport.sock, left, read_s)
                except ClientStalledError:
                    self.client_stalled = True
                    return False
                events = self.reader.skip_body()
                continue
            events = await read_events(conn.transport, self.reader, read_s)

    def _plain(self, conn: PooledConnection) -> bool:
        """Whether the rest of the body may go in the kernel (`splice.py`): bytes relayed
        as they are (no cut, rate, re-framing or other body), plain TCP both ways."""
        return (
            SPLICE_AVAILABLE
            and type(self.transport) is SocketTransport
            and conn.transport.plain
            and self.cut_left is None
            and self.then.rate_bytes_per_s is None
            and not self.chunked
            and (self.action is None or self.action.body is None)
        )

    def _head(self, head: ResponseHead) -> None:
        action = self.action
        request = self.request
        body = action.body if action is not None else None
        status = action.status if action is not None else None
        self.upstream_status = head.status
        self.status = status if status is not None else head.status
        length: int | None
        if body is not None:
            length = len(body.data) if body.data is not None else body.size or 0
        elif head.bodiless:
            length = head.length
        else:
            length = head.length
            if length is None and request.http_version == "1.1":
                self.chunked = True
            elif length is None:
                self.close = True
        upstream = self.pool.config
        extra = action.headers if action is not None else ()
        if head.status == 101:  # a switch of protocols says which, on this hop too
            self.close = False
            switched = next((v for n, v in head.headers if n == b"upgrade"), b"").decode("latin-1")
            extra = (*extra, ("connection", "upgrade"), ("upgrade", switched))
        keep_alive_1_0 = request.http_version == "1.0" and not self.close
        data = None
        plain = action is None and upstream.via is None and head.status != 101 and not self.chunked
        if plain and length == head.length:
            # a plain forward: the upstream's head as it came, when it can be
            data = relayed_head(head, close=self.close, keep_alive_1_0=keep_alive_1_0)
        if data is None:
            data = self._rebuilt_head(head, length, extra, keep_alive_1_0)
        self._queue(data)
        self.head_sent = True

    def _rebuilt_head(
        self, head: ResponseHead, length: int | None, extra: tuple[tuple[str, str], ...], keep_alive_1_0: bool
    ) -> bytes:
        """The head for the client, rebuilt (`response_head`): hop-by-hop headers out, the
        status, headers, framing and `Via` this relay says in."""
        action = self.action
        via = self.pool.config.via
        return response_head(
            head,
            status=action.status if action is not None else None,
            extra=extra,
            body_length=length,
            chunked=self.chunked,
            close=self.close,
            keep_alive_1_0=keep_alive_1_0,
            via=response_via(head, via) if via is not None else None,
        )

    def _queue(self, data: bytes) -> None:
        """For the client, cut after `then`'s bytes."""
        if self.cut_left is not None:
            if len(data) >= self.cut_left:
                data = data[: self.cut_left]
                self.was_cut = True
            self.cut_left -= len(data)
        self.out.append(data)

    async def _flush(self) -> None:
        """What was queued, to the client, at `then`'s rate if it has one."""
        out = self.out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        rate = self.then.rate_bytes_per_s
        if rate is None:
            await self.transport.send(data)
            self.sent += len(data)
            return
        if not self.sent:
            self.started = trio.current_time()
        piece = max(1, round(rate * _TICK_S))
        view = memoryview(data)
        for offset in range(0, len(view), piece):
            chunk = view[offset : offset + piece]
            await timer.sleep_until(self.started + (self.sent + len(chunk)) / rate)
            await self.transport.send(chunk)
            self.sent += len(chunk)

    def _emit(self) -> None:
        ctx, fields = self.turn.ctx, self.turn.fields
        _count_forward(ctx, fields, self.status, self.upstream_status, self.upstream_ms, self.reused)

    async def ending(self) -> Outcome:
        """How the client's connection goes on once the answer (or its cut) has gone."""
        end = self.then.end
        if self.client_stalled:
            return FIN
        if end is CloseHow.RST:
            await self.transport.wait_delivered()  # the RST must not overtake the answer
            return RST
        if end is CloseHow.FIN or self.close or self.was_cut:
            return FIN
        return KEEP

    async def failed(self, exc: UpstreamError, started: float) -> Outcome:
        """The upstream failed: a gateway's answer, or the same failure (mirror)."""
        ctx = self.turn.ctx
        mirror = self.pool.config.failure is UpstreamFailure.MIRROR
        fields: dict[str, Any] = {"reason": exc.reason, "phase": exc.phase, "error": str(exc)}
        fields["elapsed_ms"] = round((trio.current_time() - started) * 1000, 3)
        status = 0
        if mirror:
            outcome = _MIRROR[exc.reason]
        else:
            outcome = FIN
            if not self.head_sent:
                status = _GATEWAY_STATUS.get(exc.reason, 502)
        # what the client met: a gateway's status, or its connection's ending
        fields["answer"] = status or outcome.ending.value
        self.pool.stats.failed(exc.reason, exc.phase)
        ctx.events.emit_fields("upstream_error", ctx.name, self.turn.fields, None, **fields)
        try:
            if status:
                await self.transport.send(error_response(status, str(exc)))
                ctx.stats.responses[status] += 1
            elif mirror and exc.reason == "invalid" and not self.head_sent:
                await self.transport.send(exc.data)
            elif outcome is RST:
                await self.transport.wait_delivered()
        except PEER_GONE:
            return GONE
        return outcome


def _client_ip(fields: dict[str, Any]) -> str:
    """The client's address without its port (the PROXY header's, else the peer's)."""
    address: str = fields.get("client") or fields["peer"]
    host = address.rpartition(":")[0] or address
    return host.strip("[]")


async def _forward(action: Forward, turn: Turn) -> Outcome:
    return await forward(turn, action)


UNIT = ActionUnit(Forward, _forward, reads_body=True)
