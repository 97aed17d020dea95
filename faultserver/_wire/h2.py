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
(its uploads stall), `ping_ack: false` leaves PINGs unanswered. Floods of control frames
(PING, SETTINGS, RST_STREAM: the rapid-reset pattern) end the connection with GOAWAY
ENHANCE_YOUR_CALM and an event; h2 itself bounds CONTINUATION runs and header lists.
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
from .actions import FIN, GONE, KEEP, Outcome
from .h2_actions import carry_out
from .transport import PEER_GONE, Transport

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["PREFACE", "H2Session", "sniff_preface"]

log = logging.getLogger("faultserver")

#: What an HTTP/2 client sends first (RFC 9113 3.4).
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: Control frames (PING, SETTINGS, RST_STREAM) a client may send per connection before it is
#: a flood, plus this many per request it made: the rapid-reset and ping-flood patterns.
CONTROL_FRAME_BUDGET = 2000
CONTROL_FRAMES_PER_REQUEST = 4
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
    """h2's connection, able to leave PINGs unanswered (`ping_ack: false`)."""

    def __init__(self, config: h2.config.H2Configuration, ping_ack: bool) -> None:
        super().__init__(config=config)
        self._ping_ack = ping_ack

    def _receive_ping_frame(self, frame: Any) -> Any:
        frames, events = super()._receive_ping_frame(frame)
        return (frames if self._ping_ack else []), events


@dataclass(slots=True)
class _Stream:
    """A request arriving on a stream: its head, its body so far, its task once complete."""

    id: int
    number: int
    headers: list[tuple[bytes, bytes]]
    body: bytearray = field(default_factory=bytearray)
    scope: trio.CancelScope | None = None
    refused: bool = False


class H2Session:
    """One HTTP/2 connection. `run` returns how the connection ends, as an action does."""

    def __init__(self, conn: Connection, first: bytes) -> None:
        self.conn = conn
        self.ctx = conn.ctx
        self.transport = conn.transport
        self.first = first
        settings: H2Settings = self.ctx.config.h2
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.h2 = _Protocol(config, settings.ping_ack)
        self.h2.local_settings = h2.settings.Settings(client=False, initial_values=self._initial(settings))
        self.h2.max_inbound_frame_size = self.h2.local_settings.max_frame_size
        self.flow_stall = settings.flow_stall
        self.streams: dict[int, _Stream] = {}
        self.opened = 0
        #: streams whose answer has begun, and those answered
        self.started = 0
        self.served = 0
        self.control_frames = 0
        #: the last stream a GOAWAY said will be answered (None: no GOAWAY yet)
        self.goaway_last: int | None = None
        self.ending: Outcome | None = None
        self.send_lock = trio.Lock()
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
        self.h2.initiate_connection()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                with self._scope:
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
            deadline = math.inf
            if idle is not None and not self.streams:
                deadline = trio.current_time() + idle.draw(ctx.keepalive_rng)
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
        """Frames in; None while the connection goes on."""
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            # h2 has queued its GOAWAY (PROTOCOL_ERROR, FRAME_SIZE_ERROR...): send it, then FIN
            self._emit_error(f"{type(exc).__name__}: {exc}")
            await self.flush()
            return FIN
        for event in events:
            outcome = self._on(event)
            if outcome is not None:
                await self.flush()
                return outcome
        if self.control_frames > CONTROL_FRAME_BUDGET + CONTROL_FRAMES_PER_REQUEST * self.opened:
            self._emit_error(f"flood: {self.control_frames} control frames for {self.opened} requests")
            return await self._goaway_and_close(H2Error.ENHANCE_YOUR_CALM)
        return None

    def _on(self, event: h2.events.Event) -> Outcome | None:
        """One event of the client's frames; an Outcome when it ends the connection."""
        if isinstance(event, h2.events.RequestReceived):
            self._open(event.stream_id, event.headers or [])
        elif isinstance(event, h2.events.DataReceived):
            self._data(event)
        elif isinstance(event, h2.events.StreamEnded):
            self._complete(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            self.control_frames += 1
            stream = self.streams.pop(event.stream_id, None)
            if stream is not None and stream.scope is not None:
                stream.scope.cancel()
        elif isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            self.control_frames += isinstance(event, h2.events.RemoteSettingsChanged)
            self._window.set()
            self._window = trio.Event()
        elif isinstance(event, h2.events.PingReceived):
            self.control_frames += 1
        elif isinstance(event, h2.events.ConnectionTerminated):
            return KEEP
        return None

    def _open(self, stream_id: int, headers: list[Any]) -> None:
        self.opened += 1
        refused = self.goaway_last is not None and stream_id > self.goaway_last
        self.streams[stream_id] = _Stream(stream_id, self.opened, list(headers), refused=refused)
        if refused or self.opened > MAX_STREAMS_PER_CONNECTION:
            self.reset_stream(stream_id, H2Error.REFUSED_STREAM)

    def _data(self, event: h2.events.DataReceived) -> None:
        stream = self.streams.get(event.stream_id)
        size = event.flow_controlled_length or 0
        if stream is not None and not stream.refused:
            if len(stream.body) + len(event.data or b"") > self.ctx.limits.max_body_bytes:
                stream.refused = True
                self.reset_stream(event.stream_id, H2Error.REFUSED_STREAM)
                self._emit_error(f"stream {event.stream_id}: body over limits.max_body_bytes")
            else:
                stream.body += event.data or b""
        if size and not self.flow_stall:
            try:
                self.h2.acknowledge_received_data(size, event.stream_id)
            except h2.exceptions.StreamClosedError:
                pass

    def _complete(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is None or stream.refused:
            self.streams.pop(stream_id, None)
            return
        assert self._nursery is not None
        self._nursery.start_soon(self._answer, stream)

    # --- one stream ----------------------------------------------------------------

    async def _answer(self, stream: _Stream) -> None:
        ctx = self.ctx
        request = _request(stream)
        self.started += 1
        max_requests = ctx.keepalive.max_requests
        if self.goaway_last is None and max_requests is not None and self.started >= max_requests:
            # nginx's `http2_max_requests`: the GOAWAY goes out with the last stream it answers,
            # before its answer, so that a client sends nothing more on this connection
            ctx.events.emit("max_requests_close", ctx.name, requests=self.started, **self.conn_fields())
            await self.send_goaway(H2Error.NO_ERROR, stream.id)
        ctx.stats.in_flight += 1
        try:
            with trio.CancelScope() as stream.scope:
                fields = ctx.record_request(request, self.conn.id, self.conn.peer, self.conn.client)
                decision = ctx.decide(request)
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
            self.streams.pop(stream.id, None)
        self.served += 1
        await self._after_stream()

    async def _after_stream(self) -> None:
        """After a GOAWAY that keeps the connection (`keep`, `max_requests`): FIN once the
        streams it names are answered."""
        if self.goaway_last is not None and not any(s <= self.goaway_last for s in self.streams):
            self.end(FIN)

    async def _goaway_and_close(self, error: H2Error) -> Outcome:
        await self.send_goaway(error, self.h2.highest_inbound_stream_id)
        return FIN

    async def send_goaway(self, error: H2Error, last: int) -> None:
        """A GOAWAY naming `last`, written as hyperframe makes it, behind what h2 has queued.

        Not through h2's `close_connection`: after it h2 sends nothing more, while a GOAWAY
        lets the server answer every stream up to `last` (RFC 9113 6.8). Streams the client
        opens after it are refused here (`_open`)."""
        frame = hyperframe.frame.GoAwayFrame(0)
        frame.last_stream_id = last
        frame.error_code = _code(error)
        self.goaway_last = last if self.goaway_last is None else min(last, self.goaway_last)
        async with self.send_lock:
            await self.transport.send(self.h2.data_to_send() + frame.serialize())

    # --- sending -------------------------------------------------------------------

    async def flush(self) -> None:
        async with self.send_lock:
            data = self.h2.data_to_send()
            if data:
                await self.transport.send(data)

    def reset_stream(self, stream_id: int, error: H2Error) -> None:
        try:
            self.h2.reset_stream(stream_id, _code(error))
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass

    async def respond(
        self, stream: _Stream, request: Request, prepared: Any, fields: dict[str, Any]
    ) -> None:
        headers, body, trailers = prepared.h2_parts(request, self.conn.id)
        self.h2.send_headers(stream.id, headers, end_stream=not body and trailers is None)
        await self.flush()
        if body:
            await self.send_body(stream.id, body, end=trailers is None)
        if trailers is not None:
            self.h2.send_headers(stream.id, trailers, end_stream=True)
            await self.flush()
        self._responded(int(headers[0][1]), fields)

    async def refuse(self, stream: _Stream, refusal: Refusal, fields: dict[str, Any]) -> None:
        body = f"{refusal.message}\n".encode()
        headers = [
            (b":status", str(refusal.status).encode()),
            (b"content-type", b"text/plain"),
            (b"content-length", str(len(body)).encode()),
        ]
        self.h2.send_headers(stream.id, headers)
        await self.send_body(stream.id, body)
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


def _code(error: H2Error) -> h2.errors.ErrorCodes:
    return h2.errors.ErrorCodes[error.value]


def _request(stream: _Stream) -> Request:
    """An HTTP/2 request as the deciding code sees any request: `:authority` is its host."""
    pseudo = {}
    headers: list[tuple[bytes, bytes]] = []
    for name, value in stream.headers:
        if name.startswith(b":"):
            pseudo[name] = value
        else:
            headers.append((name, value))
    if b":authority" in pseudo and not any(name == b"host" for name, _ in headers):
        headers.insert(0, (b"host", pseudo[b":authority"]))
    target = pseudo.get(b":path", b"/").decode("latin-1")
    return Request(
        method=pseudo.get(b":method", b"GET").decode("latin-1"),
        target=target,
        path=target.split("?", 1)[0],
        headers=headers,
        body=bytes(stream.body),
        http_version="2",
        number=stream.number,
        stream_id=stream.id,
    )
