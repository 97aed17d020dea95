"""HTTP/2 on an accepted connection: frames in, requests decided and answered per stream.

The frames, HPACK and the protocol's state are python-hyper's `h2` (a sans-IO state
machine); this module moves its bytes and carries out faults. Each request is decided as on
HTTP/1.1 (`ListenerContext.decide`) and answered by its own task, so a slow or hanging
stream holds no other. What an action means per stream:

- `respond`, `delay`, `dribble` (DATA frames at the pace asked), `partial` (the first
  `bytes` of the body, then RST_STREAM INTERNAL_ERROR, a TCP RST, or silence), `hang` (the
  stream is never answered; after `for`, RST_STREAM CANCEL);
- `close` / `reset`: the whole connection, FIN / RST (no GOAWAY: the keep-alive race);
- `garbage`: a DATA frame on stream 0, which a client must take as PROTOCOL_ERROR, then FIN;
- `goaway`: GOAWAY naming the last stream answered (`previous`: this one is refused too, the
  race a correct client survives by retrying), then FIN, or `keep`: the streams it names are
  answered, then the connection closes;
- `rst_stream`: RST_STREAM with the error asked; the connection goes on.

Sending respects flow control: a body waits for the client's WINDOW_UPDATE. The listener's
`h2` settings go out in the first SETTINGS; `flow_stall` never gives the client window back
(its uploads stall), `ping_ack: false` leaves PINGs unanswered. A stream over
`max_concurrent_streams` gets RST_STREAM REFUSED_STREAM (a stream error, RFC 9113 5.1.2), a
header list over `limits.max_header_bytes` a 431 on its stream. Floods (streams reset
before their answer: the rapid-reset pattern; PING and SETTINGS) end the connection with
GOAWAY ENHANCE_YOUR_CALM and an event (`_protocol/h2_flood.py` counts); h2 itself bounds
CONTINUATION runs and, at 64 KiB or the limit if larger, header lists (HPACK bombs).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hyperframe.frame
import trio

from .._decide.request import Request
from .._decide.rules import Decision
from .._profile.model import (
    CloseHow,
    H2Error,
    H2Settings,
)
from .._protocol.events import Refusal
from .._protocol.h2_flood import FloodGuard
from .actions import FIN, GONE, KEEP, Outcome
from .h2_actions import carry_out
from .h2c import SWITCHING
from .transport import PEER_GONE, Transport

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["PREFACE", "H2Session", "sniff_preface"]

log = logging.getLogger("faultserver")

#: What an HTTP/2 client sends first (RFC 9113 3.4).
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: Where h2's HPACK decoder stops decoding a header list (h2's own default; see `H2Session`).
DECODER_HEADER_LIST_BYTES = 64 * 1024
#: What a header list over `limits.max_header_bytes` is answered, as on HTTP/1.1.
TOO_LARGE_HEAD = "request headers too large"
#: Streams a connection may open in all (a bound on the per-connection bookkeeping).
MAX_STREAMS_PER_CONNECTION = 1_000_000
_SETTING_CODES = {
    "max_concurrent_streams": h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS,
    "initial_window_size": h2.settings.SettingCodes.INITIAL_WINDOW_SIZE,
    "max_frame_size": h2.settings.SettingCodes.MAX_FRAME_SIZE,
    "header_table_size": h2.settings.SettingCodes.HEADER_TABLE_SIZE,
}


async def sniff_preface(transport: Transport, deadline: float, first: bytes = b"") -> tuple[bool, bytes]:
    """Read until the first bytes are the HTTP/2 preface or cannot be: (is it, bytes read);
    `first`: bytes read already."""
    data = first
    with trio.move_on_at(deadline):
        while len(data) < len(PREFACE) and PREFACE.startswith(data):
            chunk = await transport.receive()
            if not chunk:
                break
            data += chunk
    return data.startswith(PREFACE), data


class _Protocol(h2.connection.H2Connection):
    """h2's connection, able to leave PINGs unanswered (`ping_ack: false`), and to refuse a
    stream over `max_concurrent_streams` instead of ending the connection.

    h2 takes a stream over the limit as a connection error (TooManyStreamsError, a GOAWAY
    PROTOCOL_ERROR). RFC 9113 5.1.2 lets the server refuse the stream alone, and
    REFUSED_STREAM tells the client it may send it again: a client's burst may well come
    before our SETTINGS do (Go's and HAProxy's do). Such a stream is let in, its header block
    decoded (the HPACK state must follow every block), and its number kept in `over_limit`
    for the session to reset it; h2 then treats any frame on it as on a stream we reset.
    """

    def __init__(self, config: h2.config.H2Configuration, ping_ack: bool, limited: bool) -> None:
        super().__init__(config=config)
        self._ping_ack = ping_ack
        self._admitting = False
        self._limited = limited
        #: streams let in over the limit, for the session to refuse
        self.over_limit: set[int] = set()

    def _receive_ping_frame(self, frame: Any) -> Any:
        frames, events = super()._receive_ping_frame(frame)
        return (frames if self._ping_ack else []), events

    @property
    def open_inbound_streams(self) -> int:
        # h2 counts (and forgets the closed ones) over all its streams for each new stream:
        # with no limit to check, that is left to `sweep`, once per read
        if self._admitting or not self._limited:
            return 0
        return super().open_inbound_streams

    def sweep(self) -> None:
        """Forget the streams that have closed (h2 does it as it counts the open ones)."""
        if not self._limited:
            super().open_inbound_streams  # noqa: B018 (a property with the side effect we want)

    def _receive_headers_frame(self, frame: Any) -> Any:
        try:
            return super()._receive_headers_frame(frame)
        except h2.exceptions.TooManyStreamsError:
            self.over_limit.add(frame.stream_id)
            self._admitting = True
            try:
                return super()._receive_headers_frame(frame)
            finally:
                self._admitting = False


@dataclass(slots=True)
class _Stream:
    """A request arriving on a stream: its head, its body so far, its task once complete."""

    id: int
    number: int
    headers: list[tuple[bytes, bytes]]
    body: bytearray = field(default_factory=bytearray)
    scope: trio.CancelScope | None = None
    #: the answer it gets instead of a decision (a header list over the limit: 431)
    refusal: Refusal | None = None
    #: its answer has begun
    answering: bool = False
    #: the client sent all of it (END_STREAM)
    ended: bool = False
    #: the client reset it
    reset: bool = False
    #: the request, when it came in HTTP/1.1 and asked for h2c (`h2c.py`)
    request: Request | None = None


class H2Session:
    """One HTTP/2 connection. `run` returns how the connection ends, as an action does.

    Each read's frames are taken in whole before any answer: the streams it completed are
    answered after (a stream the same read reset is not answered at all, which is the
    rapid-reset pattern's cheapest end), and a healthy answer that fits the client's windows
    is written into h2 at once, with no task. What a read made goes out in one send.
    Faults and answers that wait for the client's window run on their own task.
    """

    def __init__(self, conn: Connection, first: bytes, upgrade: tuple[Request, bytes] | None = None) -> None:
        """`upgrade`: the HTTP/1.1 request that asked for h2c, and its HTTP2-Settings."""
        self.conn = conn
        self.upgrade = upgrade
        self.ctx = conn.ctx
        self.transport = conn.transport
        self.first = first
        settings: H2Settings = self.ctx.config.h2
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.h2 = _Protocol(config, settings.ping_ack, settings.max_concurrent_streams is not None)
        self.h2.local_settings = h2.settings.Settings(client=False, initial_values=self._initial(settings))
        self.h2.max_inbound_frame_size = self.h2.local_settings.max_frame_size
        # h2 would apply MAX_HEADER_LIST_SIZE to its decoder once the client acknowledged it,
        # and our settings are in force from the start: the decoder stops at the larger of
        # the limit and h2's own 64 KiB (an HPACK bomb is a connection error), and a header
        # list between the limit and there gets 431 on its stream (`_open`)
        self.max_header_bytes = self.ctx.limits.max_header_bytes
        self.h2.decoder.max_header_list_size = max(self.max_header_bytes, DECODER_HEADER_LIST_BYTES)
        self._count_header_bytes = self.max_header_bytes < DECODER_HEADER_LIST_BYTES
        self.flow_stall = settings.flow_stall
        self.streams: dict[int, _Stream] = {}
        self.opened = 0
        #: streams taken as requests (for `keepalive.max_requests`), and those answered
        self.requests = 0
        self.served = 0
        self.guard = FloodGuard()
        #: the last stream a GOAWAY said will be answered (None: no GOAWAY yet)
        self.goaway_last: int | None = None
        self.ending: Outcome | None = None
        self.send_lock = trio.Lock()
        #: bytes to send before what h2 has queued since (a GOAWAY, a garbage frame)
        self._outbox = bytearray()
        #: the streams the current read completed, to answer once it is all taken
        self._ready: list[_Stream] = []
        self._window = trio.Event()
        self._scope = trio.CancelScope()
        self._nursery: trio.Nursery | None = None

    def _initial(self, settings: H2Settings) -> dict[Any, int]:
        values: dict[Any, int] = {
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: self.ctx.limits.max_header_bytes,
            h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 0,
        }
        for key, code in _SETTING_CODES.items():
            value = getattr(settings, key)
            if value is not None:
                values[code] = value
        return values

    # --- the connection -------------------------------------------------------------

    async def run(self) -> Outcome:
        upgrade = self.upgrade
        if upgrade is None:
            self.h2.initiate_connection()
        else:
            self._outbox += SWITCHING
            self.h2.initiate_upgrade_connection(upgrade[1])
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                with self._scope:
                    if upgrade is not None:
                        self._upgraded(upgrade[0])
                    outcome = await self._read(self.first)
                    if outcome is KEEP:  # the client said GOAWAY: finish what it asked, then FIN
                        await self._drain_streams()
                        outcome = FIN
                    self.ending = self.ending or outcome
                nursery.cancel_scope.cancel()
        except PEER_GONE:
            return GONE
        return self.ending or FIN

    async def _drain_streams(self) -> None:
        """Wait for the streams being answered (the client's GOAWAY asks for them still)."""
        with trio.move_on_after(self.ctx.limits.header_timeout_s):
            while self.streams:
                await trio.sleep(0.01)

    def end(self, outcome: Outcome) -> None:
        """A stream's action ends the whole connection (FIN, RST, hold)."""
        if self.ending is None:
            self.ending = outcome
        self._scope.cancel()

    async def _read(self, data: bytes) -> Outcome:
        ctx = self.ctx
        idle = ctx.keepalive.idle_close
        while True:
            if data:
                outcome = await self._take(data)
                if outcome is not None:
                    return outcome
            await self.flush()
            if self.ending is not None:  # a GOAWAY's last stream was answered in this read
                return self.ending
            deadline = math.inf
            if idle is not None and not self.streams:
                deadline = trio.current_time() + idle.draw(ctx.keepalive_rng)
            if deadline == math.inf:
                try:
                    data = await self.transport.receive()
                except ConnectionResetError:
                    return self.conn.peer_closed(CloseHow.RST)
            else:
                with trio.move_on_at(deadline) as waiting:
                    try:
                        data = await self.transport.receive()
                    except ConnectionResetError:
                        return self.conn.peer_closed(CloseHow.RST)
                if waiting.cancelled_caught:
                    ctx.events.emit("idle_close", ctx.name, **self.conn_fields())
                    return await self._goaway_and_close(H2Error.NO_ERROR)
            if not data:
                return self.conn.peer_closed(CloseHow.FIN)

    async def _take(self, data: bytes) -> Outcome | None:
        """Frames in, then the streams they completed answered; None while the connection
        goes on."""
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            # h2 has queued its GOAWAY (PROTOCOL_ERROR, FRAME_SIZE_ERROR...): send it, then FIN
            self._emit_error(f"{type(exc).__name__}: {exc}")
            await self.flush()
            return FIN
        now = trio.current_time()
        for event in events:
            outcome = self._on(event, now)
            if outcome is not None:
                await self.flush()
                return outcome
        flood = self.guard.flood()
        if flood is not None:
            self._ready.clear()
            self._emit_error(flood)
            return await self._goaway_and_close(H2Error.ENHANCE_YOUR_CALM)
        if self._ready:
            ready, self._ready = self._ready, []
            for stream in ready:
                if not stream.reset:
                    self._answer(stream, now)
        self.h2.sweep()
        return None

    def _on(self, event: h2.events.Event, now: float) -> Outcome | None:
        """One event of the client's frames; an Outcome when it ends the connection."""
        if isinstance(event, h2.events.RequestReceived):
            self._open(event.stream_id or 0, event.headers or [], now)
        elif isinstance(event, h2.events.StreamEnded):
            self._complete(event.stream_id or 0)
        elif isinstance(event, h2.events.DataReceived):
            self._data(event)
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.pop(event.stream_id or 0, None)
            if stream is not None:
                stream.reset = True
                if stream.scope is not None:
                    stream.scope.cancel()
            if stream is None or stream.answering:
                # answered already, or being answered (a client's deadline met a `hang`)
                self.guard.control(now)
            else:
                self.guard.early_reset(now)  # nothing was started for it: rapid reset
        elif isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            if isinstance(event, h2.events.RemoteSettingsChanged):
                self.guard.control(now)
            self._window.set()
            self._window = trio.Event()
        elif isinstance(event, h2.events.PingReceived):
            self.guard.control(now)
        elif isinstance(event, h2.events.ConnectionTerminated):
            return KEEP
        return None

    def _open(self, stream_id: int, headers: list[Any], now: float) -> None:
        self.opened += 1
        self.guard.opened(now)
        over_limit = self.h2.over_limit
        if self.goaway_last is not None and stream_id > self.goaway_last:
            self.reset_stream(stream_id, H2Error.REFUSED_STREAM)  # RFC 9113 6.8: send it again
            return
        if over_limit and stream_id in over_limit:
            over_limit.discard(stream_id)
            self.reset_stream(stream_id, H2Error.REFUSED_STREAM)
            self._emit_error(
                f"stream {stream_id}: over max_concurrent_streams "
                f"({self.h2.local_settings.max_concurrent_streams}), refused"
            )
            return
        if self.opened > MAX_STREAMS_PER_CONNECTION:
            self.reset_stream(stream_id, H2Error.REFUSED_STREAM)
            return
        stream = _Stream(stream_id, self.opened, headers)
        self.streams[stream_id] = stream
        if self._count_header_bytes and _header_list_bytes(stream.headers) > self.max_header_bytes:
            # as HTTP/1.1 answers such a head: 431, and it is not taken as a request
            stream.refusal = Refusal(431, TOO_LARGE_HEAD)
            self._ready.append(stream)
            return
        self._count_request(stream_id)

    def _count_request(self, stream_id: int) -> None:
        self.requests += 1
        ctx = self.ctx
        max_requests = ctx.keepalive.max_requests
        if self.goaway_last is None and max_requests is not None and self.requests >= max_requests:
            # nginx's `http2_max_requests`: the GOAWAY names the N-th stream as it arrives,
            # before its answer, and any stream after it (in this read or later) is refused
            ctx.events.emit("max_requests_close", ctx.name, requests=self.requests, **self.conn_fields())
            self.queue_goaway(H2Error.NO_ERROR, stream_id)

    def _upgraded(self, request: Request) -> None:
        """The h2c request: stream 1, complete, answered as any stream."""
        request.stream_id = 1
        self.opened = 1
        stream = _Stream(1, request.number, [], ended=True, answering=False, request=request)
        self.streams[1] = stream
        self._count_request(1)
        self._answer(stream, trio.current_time())

    def _data(self, event: h2.events.DataReceived) -> None:
        stream_id = event.stream_id or 0
        stream = self.streams.get(stream_id)
        size = event.flow_controlled_length or 0
        data = event.data or b""
        if stream is not None and stream.refusal is None:
            if len(stream.body) + len(data) > self.ctx.limits.max_body_bytes:
                self.streams.pop(stream_id, None)
                self.reset_stream(stream_id, H2Error.REFUSED_STREAM)
                self._emit_error(f"stream {stream_id}: body over limits.max_body_bytes")
            else:
                stream.body += data
        if size and not self.flow_stall:
            try:
                self.h2.acknowledge_received_data(size, stream_id)
            except h2.exceptions.StreamClosedError:
                pass

    def _complete(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        stream.ended = True
        if not stream.answering and stream.refusal is None:
            self._ready.append(stream)

    # --- one stream ----------------------------------------------------------------

    def _answer(self, stream: _Stream, now: float) -> None:
        """Decide a complete request and answer it: at once when it is healthy and its
        answer fits the windows, else on its own task."""
        ctx = self.ctx
        conn = self.conn
        stream.answering = True
        refusal = stream.refusal
        if refusal is not None:
            fields = {**self.conn_fields(), "stream": stream.id}
            if not self._write_now(stream, _refusal_parts(refusal)):
                self._start(self._refuse_task, stream, refusal, fields)
                return
            self._refused(refusal, fields)
            if not stream.ended:  # RFC 9113 8.1: the answer is complete, the request need not be
                self.reset_stream(stream.id, H2Error.NO_ERROR)
            self._finish(stream, now)
            return
        request = stream.request or _request(stream)
        fields = ctx.record_request(request, conn.id, conn.peer, conn.client)
        decision = ctx.decide(request)
        if decision is None:
            parts = ctx.prepared.h2_parts(request, conn.id)
            if self._write_now(stream, parts):
                self._responded(int(parts[0][0][1]), fields)
                self._finish(stream, now)
                return
        self._start(self._act, stream, (request, decision), fields)

    def _start(self, task: Any, stream: _Stream, what: Any, fields: dict[str, Any]) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(task, stream, what, fields)

    def _write_now(self, stream: _Stream, parts: Any) -> bool:
        """An answer written into h2 at once, when its body fits one frame and the windows;
        False (nothing written) when it does not."""
        headers, body, trailers = parts
        h2c = self.h2
        stream_id = stream.id
        if body and len(body) > min(h2c.local_flow_control_window(stream_id), h2c.max_outbound_frame_size):
            return False
        try:
            h2c.send_headers(stream_id, headers, end_stream=not body and trailers is None)
            if body:
                h2c.send_data(stream_id, body, end_stream=trailers is None)
            if trailers is not None:
                h2c.send_headers(stream_id, trailers, end_stream=True)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass  # the connection is ending
        return True

    async def _act(
        self, stream: _Stream, what: tuple[Request, Decision | Refusal | None], fields: dict[str, Any]
    ) -> None:
        request, decision = what
        ctx = self.ctx
        ctx.stats.in_flight += 1
        try:
            with trio.CancelScope() as stream.scope:
                if decision is None:
                    await self.respond(stream, request, ctx.prepared, fields)
                elif type(decision) is Refusal:
                    await self.refuse(stream, decision, fields)
                else:
                    assert type(decision) is Decision
                    await carry_out(self, stream, request, decision, fields)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass  # the client reset the stream, or the connection is ending
        finally:
            ctx.stats.in_flight -= 1
        self._finish(stream, trio.current_time())
        if self.ending is not None:
            self._scope.cancel()

    async def _refuse_task(self, stream: _Stream, refusal: Refusal, fields: dict[str, Any]) -> None:
        try:
            with trio.CancelScope() as stream.scope:
                await self.send_answer(stream.id, _refusal_parts(refusal))
                self._refused(refusal, fields)
                if not stream.ended:
                    self.reset_stream(stream.id, H2Error.NO_ERROR)
                    await self.flush()
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass
        self._finish(stream, trio.current_time())
        if self.ending is not None:
            self._scope.cancel()

    def _finish(self, stream: _Stream, now: float) -> None:
        """A stream's answer is over. After a GOAWAY that keeps the connection (`keep`,
        `max_requests`), the connection ends once the streams it names are answered."""
        if self.streams.pop(stream.id, None) is not None:
            self.served += 1
            self.guard.answered(now)
        last = self.goaway_last
        if last is not None and self.ending is None and not any(s <= last for s in self.streams):
            self.ending = FIN

    async def _goaway_and_close(self, error: H2Error) -> Outcome:
        await self.send_goaway(error, self.h2.highest_inbound_stream_id)
        return FIN

    def queue_goaway(self, error: H2Error, last: int) -> None:
        """A GOAWAY naming `last`, behind what h2 has queued, sent with the next flush.

        Written as hyperframe makes it, not through h2's `close_connection`: after that h2
        sends nothing more, while a GOAWAY lets the server answer every stream up to `last`
        (RFC 9113 6.8). Streams the client opens after it are refused (`_open`)."""
        frame = hyperframe.frame.GoAwayFrame(0)
        frame.last_stream_id = last
        frame.error_code = _code(error)
        self.goaway_last = last if self.goaway_last is None else min(last, self.goaway_last)
        self.queue_raw(frame.serialize())

    def queue_raw(self, frame: bytes) -> None:
        """Bytes to send, after what h2 has queued so far."""
        self._outbox += self.h2.data_to_send()
        self._outbox += frame

    async def send_goaway(self, error: H2Error, last: int) -> None:
        self.queue_goaway(error, last)
        await self.flush()

    # --- sending -------------------------------------------------------------------

    async def flush(self) -> None:
        async with self.send_lock:
            data = self.h2.data_to_send()
            if self._outbox:
                data = bytes(self._outbox) + data
                self._outbox.clear()
            if data:
                await self.transport.send(data)

    def reset_stream(self, stream_id: int, error: H2Error) -> None:
        try:
            self.h2.reset_stream(stream_id, _code(error))
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass

    async def send_answer(self, stream_id: int, parts: Any) -> None:
        """HEADERS, DATA as the windows allow, and trailers."""
        headers, body, trailers = parts
        self.h2.send_headers(stream_id, headers, end_stream=not body and trailers is None)
        if body:
            await self.send_body(stream_id, body, end=trailers is None)
        if trailers is not None:
            self.h2.send_headers(stream_id, trailers, end_stream=True)
        await self.flush()

    async def respond(
        self, stream: _Stream, request: Request, prepared: Any, fields: dict[str, Any]
    ) -> None:
        parts = prepared.h2_parts(request, self.conn.id)
        await self.send_answer(stream.id, parts)
        self._responded(int(parts[0][0][1]), fields)

    async def refuse(self, stream: _Stream, refusal: Refusal, fields: dict[str, Any]) -> None:
        await self.send_answer(stream.id, _refusal_parts(refusal))
        self._refused(refusal, fields)

    def _refused(self, refusal: Refusal, fields: dict[str, Any]) -> None:
        self.ctx.stats.responses[refusal.status] += 1
        self.ctx.events.emit_fields(
            "response", self.ctx.name, fields, None, status=refusal.status, error=refusal.message
        )

    def _responded(self, status: int, fields: dict[str, Any]) -> None:
        self.ctx.stats.responses[status] += 1
        self.ctx.events.emit_fields("response", self.ctx.name, fields, None, status=status)

    async def send_body(self, stream_id: int, body: bytes, end: bool = True) -> None:
        """DATA frames as the flow-control windows and the frame size allow."""
        view = memoryview(body)
        while view:
            window = min(self.h2.local_flow_control_window(stream_id), self.h2.max_outbound_frame_size)
            if window <= 0:
                await self.flush()
                await self._window.wait()
                continue
            piece, view = view[:window], view[window:]
            self.h2.send_data(stream_id, bytes(piece), end_stream=end and not view)
            await self.flush()

    # --- events --------------------------------------------------------------------

    def conn_fields(self) -> dict[str, Any]:
        return {"conn": self.conn.id, "peer": self.conn.peer}

    def _emit_error(self, error: str) -> None:
        self.ctx.events.emit("h2_error", self.ctx.name, error=error, **self.conn_fields())


def _header_list_bytes(headers: list[tuple[bytes, bytes]]) -> int:
    """A header list's size as SETTINGS_MAX_HEADER_LIST_SIZE counts it (RFC 9113 6.5.2)."""
    return sum(len(name) + len(value) + 32 for name, value in headers)


def _refusal_parts(refusal: Refusal) -> tuple[list[tuple[bytes, bytes]], bytes, None]:
    body = f"{refusal.message}\n".encode()
    headers = [
        (b":status", str(refusal.status).encode()),
        (b"content-type", b"text/plain"),
        (b"content-length", str(len(body)).encode()),
    ]
    return headers, body, None


def _code(error: H2Error) -> h2.errors.ErrorCodes:
    return h2.errors.ErrorCodes[error.value]


def _request(stream: _Stream) -> Request:
    """An HTTP/2 request as the deciding code sees any request: `:authority` is its host."""
    method = b"GET"
    target = b"/"
    authority = None
    headers: list[tuple[bytes, bytes]] = []
    has_host = False
    for name, value in stream.headers:
        if name[:1] == b":":
            if name == b":path":
                target = value
            elif name == b":method":
                method = value
            elif name == b":authority":
                authority = value
        else:
            has_host = has_host or name == b"host"
            headers.append((name, value))
    if authority is not None and not has_host:
        headers.insert(0, (b"host", authority))
    path = target.decode("latin-1")
    # positional, as the HTTP/1.1 reader does: (method, target, path, headers, body,
    # http_version, keep_alive, number, body_read, stream_id)
    return Request(
        method.decode("latin-1"), path, path.split("?", 1)[0], headers, bytes(stream.body), "2", True,
        stream.number, True, stream.id,
    )
