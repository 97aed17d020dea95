"""One accepted connection: the HTTP/1.1 read loop (httptools) and the faults it carries out.

The loop reads, feeds httptools, and handles each completed request in order, so
pipelined requests get their answers in order and a fault on request N means request
N+1 is never answered. What to do is decided elsewhere (`_decide`); this module only
carries the decision out with real socket moves (`sockets.py`).

Deadlines: between requests a connection may wait as long as it likes unless the
profile sets `keepalive.idle_close`; once the first byte of a request has arrived
(or from the accept, for the first request), its headers must be complete within
`limits.header_timeout` (408 otherwise), which stops slowloris clients. A body may take
as long as it needs but may not stall: no byte for `header_timeout` is a 408 too.
Requests over `max_header_bytes` (431) or `max_body_bytes` (413, at once when the
Content-Length says so) are answered with that error and never handled.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import TYPE_CHECKING, Optional

import httptools
import trio

from .._decide.fault_header import FaultHeaderError, parse_fault_header
from .._decide.request import Request
from .._decide.rules import Decision
from .._profile.model import (
    ActionName,
    Close,
    Dribble,
    Garbage,
    Hang,
    Partial,
    Respond,
)
from . import timer
from .sockets import (
    PEER_GONE,
    RECV_BYTES,
    abort,
    drain_and_close,
    recv_some,
    send_all,
    wait_delivered,
)

if TYPE_CHECKING:
    from .listener import ListenerRuntime

__all__ = ["Connection"]

log = logging.getLogger("faultserver")

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
#: How long a graceful close reads what the client still sends (unless an action says).
GRACEFUL_DRAIN_S = 1.0
#: At shutdown (and `drop`) every connection gets a FIN and this long to answer it. The FIN
#: leaves at once; the short drain only takes in what was already on its way, so that the
#: close finds nothing unread (which would turn it into an RST). Kept short: a test suite
#: stops a server per test, often with its client's kept-alive connection still open.
SHUTDOWN_DRAIN_S = 0.02
#: The pace of `dribble` with a `rate` and no `chunk`: about 50 pieces a second.
DRIBBLE_TICK_S = 0.02

_IDLE, _HEADERS, _BODY = 0, 1, 2
_NO_LIMIT = contextlib.nullcontext()


class _Finished(Exception):
    """The connection has been closed (or handed to a terminal action): stop serving."""


class _Hang(Exception):
    """`hang`: unwind to `run`, which holds the connection from there (see `_hang`)."""

    def __init__(self, for_s: Optional[float], in_flight: bool) -> None:
        self.for_s = for_s
        self.in_flight = in_flight


class Connection:
    """State of one connection; also the httptools protocol object (its `on_*` callbacks)."""

    __slots__ = (
        "rt",
        "sock",
        "peer",
        "id",
        "scope",
        "drop_how",
        "closed",
        "busy",
        "served",
        "_msg_state",
        "_url",
        "_headers",
        "_header_bytes",
        "_body",
        "_body_bytes",
        "_pending",
        "_limit_status",
        "_expect_continue",
        "_parser",
        "_http09",
        "_begun",
        "_error_message",
        "_peer_gone",
    )

    def __init__(self, rt: "ListenerRuntime", sock: trio.socket.SocketType, peer: str, conn_id: int):
        self.rt = rt
        self.sock = sock
        self.peer = peer
        self.id = conn_id
        self.scope: Optional[trio.CancelScope] = None
        self.drop_how: Optional[str] = None
        self.closed = False
        self.busy = False
        self.served = 0
        self._msg_state = _IDLE
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_bytes = 0
        # a list, not a deque: rarely more than one, and a deque costs 600 bytes even empty
        self._pending: list[Request] = []
        self._limit_status = 0
        self._expect_continue = False
        self._parser = httptools.HttpRequestParser(self)
        self._http09 = False
        self._begun = 0
        self._error_message = ""
        self._peer_gone = False

    # --- httptools callbacks (keep them tiny: they run for every request) -----------

    def on_message_begin(self) -> None:
        self._msg_state = _HEADERS
        self._begun += 1
        self._header_bytes = 0
        self._url = b""
        self._headers = []
        self._body = []
        self._body_bytes = 0
        self.busy = True

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._header_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes <= self.rt.limits.max_header_bytes:
            self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self._msg_state = _BODY
        if self._header_bytes > self.rt.limits.max_header_bytes:
            self._limit_status = 431
        for name, value in self._headers:
            if name == b"expect" and value.lower() == b"100-continue":
                self._expect_continue = True
            elif name == b"content-length" and value.strip().isdigit():
                # refuse at once what would only fit after reading past the limit
                if int(value) > self.rt.limits.max_body_bytes:
                    self._limit_status = self._limit_status or 413

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self.rt.limits.max_body_bytes:
            self._limit_status = self._limit_status or 413
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        p = self._parser
        version = p.get_http_version()
        if version in ("0.0", "0.9"):
            self._http09 = True  # "GET /\r\n\r\n": httptools completes it as HTTP/0.9
        if self._limit_status or self._http09:
            # over a limit or not HTTP/1.x: answered with an error, never as a request
            self._msg_state = _IDLE
            return
        target = self._url.decode("latin-1")
        path, _, _ = target.partition("?")
        self._enqueue(
            Request(
                method=p.get_method().decode("latin-1"),
                target=target,
                path=path,
                headers=self._headers,
                body=b"".join(self._body) if self._body else b"",
                http_version=version,
                keep_alive=p.should_keep_alive(),
            )
        )
        self._msg_state = _IDLE
        self._header_bytes = 0
        self._expect_continue = False

    def _enqueue(self, request: Request) -> None:
        request.number = self.served + len(self._pending) + 1
        self._pending.append(request)

    # --- the connection's life ------------------------------------------------------

    async def run(self) -> None:
        rt = self.rt
        rt.stats.opened()
        rt.events.emit("accept", rt.name, conn=self.id, peer=self.peer)
        try:
            hang_for: Optional[float] = None
            held = in_flight = False
            with trio.CancelScope() as self.scope:
                try:
                    await self._serve()
                except _Hang as hang:
                    hang_for, in_flight, held = hang.for_s, hang.in_flight, True
                if held:
                    # held from here, once the frames of the request that asked are gone
                    await self._hang(hang_for, in_flight)
        except _Finished:
            pass
        except PEER_GONE as exc:
            self._peer_closed("rst" if isinstance(exc, ConnectionResetError) else "fin")
        except OSError as exc:
            log.debug("connection %s: %s", self.id, exc)
        except Exception as exc:
            log.exception("listener %s connection %s: unexpected error (contained)", rt.name, self.id)
            rt.events.emit(
                "error", rt.name, conn=self.id, peer=self.peer, error=f"{type(exc).__name__}: {exc}"
            )
        finally:
            with trio.CancelScope(shield=True):
                await self._close_on_exit()
            rt.stats.closed()
            rt.connection_ended(self)

    async def _close_on_exit(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.drop_how == "rst":
            abort(self.sock)
            return
        drain_s = SHUTDOWN_DRAIN_S if self.drop_how in ("fin", "shutdown") else GRACEFUL_DRAIN_S
        how = await drain_and_close(self.sock, drain_s)
        if how:
            self._peer_closed(how)

    def _peer_closed(self, how: str) -> None:
        if self._peer_gone:
            return  # an EOF seen in the read loop is seen again by the closing drain
        self._peer_gone = True
        self.rt.events.emit("peer_close", self.rt.name, conn=self.id, peer=self.peer, how=how)

    async def _serve(self) -> None:
        rt = self.rt
        if rt.rules.has_connect_rules:
            decision = rt.rules.decide_connect()
            if decision is not None:
                self._record_fault(decision, None)
                if decision.delay_s:
                    await timer.sleep(decision.delay_s)  # many fall due at once: see timer.py
                await self._terminal(decision, None)
                return
        sock = self.sock
        limits = rt.limits
        idle = rt.config.keepalive.idle_close
        started = trio.current_time()
        head_deadline = started + limits.header_timeout_s
        idle_deadline = started + idle.draw(rt.keepalive_rng) if idle is not None else math.inf
        head_used = 0
        body_used = 0
        while True:
            state = self._msg_state
            if state == _IDLE:
                deadline = min(idle_deadline, head_deadline)
            elif state == _HEADERS:
                deadline = head_deadline
            else:
                # a body may take long, but not stall: each read gets header_timeout
                deadline = trio.current_time() + limits.header_timeout_s
            timed_out = False
            try:
                if deadline == math.inf:
                    # no clock on this read (keep-alive, between requests): a cancel
                    # scope costs more than parsing and answering a small request
                    data = await recv_some(sock)
                else:
                    with trio.move_on_at(deadline) as waiting:
                        data = await recv_some(sock)
                    timed_out = waiting.cancelled_caught
            except ConnectionResetError:
                self._peer_closed("rst")
                self.closed = True
                sock.close()
                return
            if timed_out:
                if self._msg_state == _IDLE and trio.current_time() >= idle_deadline:
                    rt.events.emit("idle_close", rt.name, conn=self.id, peer=self.peer)
                    await self._graceful_close()
                if state == _BODY:
                    await self._error(408, "request body stalled (no data within header_timeout)")
                await self._error(408, "request headers not received in time")
            if not data:
                self._peer_closed("fin")
                if self._msg_state != _IDLE:
                    await self._error(400, "request ended before it was complete")
                return
            if state == _BODY:
                body_used += len(data)
            else:
                head_used += len(data)
            begun = self._begun
            self._feed(data)
            if self._begun != begun and self._msg_state != _IDLE:
                # a request began inside this read (after others, when pipelined): only
                # what the parser has seen of it counts, and its header clock starts now
                head_used = self._header_bytes
                head_deadline = trio.current_time() + limits.header_timeout_s
            if self._msg_state != _BODY:
                body_used = 0
            elif body_used > 2 * limits.max_body_bytes + limits.max_header_bytes:
                # framing counts too: chunk extensions and trailers cannot go on forever
                self._limit_status = self._limit_status or 413
            if self._msg_state == _HEADERS and head_used > limits.max_header_bytes:
                await self._error(431, "request headers too large")
            if self._http09:
                await self._error(400, "HTTP/0.9 requests are not supported")
            if self._expect_continue and self._msg_state == _BODY and not self._limit_status:
                self._expect_continue = False
                await send_all(sock, _CONTINUE)
            answered = bool(self._pending)
            while self._pending:
                request = self._pending.pop(0)
                await self._handle(request)
                self.served += 1
                if not request.keep_alive:
                    await self._graceful_close()
                max_requests = rt.config.keepalive.max_requests
                if max_requests is not None and self.served >= max_requests:
                    rt.events.emit(
                        "max_requests_close", rt.name, conn=self.id, peer=self.peer,
                        requests=self.served,
                    )
                    await self._graceful_close()
            if self._limit_status:
                await self._error(
                    self._limit_status, self._error_message or _LIMIT_MESSAGES[self._limit_status]
                )
            if not answered:
                # recv_some does not yield after a read that found data; an answer
                # yields in its send, and a read that brought no whole request here
                await trio.lowlevel.cancel_shielded_checkpoint()
            if self._msg_state == _IDLE:
                head_used = 0
                self.busy = False
                # the next request's header clock starts with its first byte
                head_deadline = math.inf
                if idle is not None:
                    idle_deadline = trio.current_time() + idle.draw(rt.keepalive_rng)

    def _feed(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Upgrade/CONNECT: answer what was read, then close (no protocol switch here)
            if self._pending:
                self._pending[-1].keep_alive = False
            else:
                self._limit_status = 400
        except httptools.HttpParserError:
            self._limit_status = self._limit_status or 400
            if not self.served and not self._pending:
                self._error_message = _foreign_protocol(data)
        else:
            if self._msg_state == _HEADERS and self._first_line_without_version(data):
                self._http09 = True

    def _first_line_without_version(self, data: bytes) -> bool:
        """HTTP/0.9 (`GET /path` and end of line): the first request's line ended, no version.

        Only a line end proves it: `GET /ind` may be the first piece of `GET /index HTTP/1.1`.
        """
        return (
            bool(self._url)
            and not self.served
            and not self._pending
            and b"\n" in data
            and self._parser.get_http_version() in ("0.0", "0.9")
        )

    # --- answering ------------------------------------------------------------------

    async def _handle(self, request: Request) -> None:
        rt = self.rt
        stats = rt.stats
        stats.in_flight += 1
        try:
            fingerprint = request.fingerprint
            retry = stats.saw_request(fingerprint, self.id)
            fields = {
                "conn": self.id,
                "peer": self.peer,
                "method": request.method,
                "path": request.path,
                "request_on_connection": request.number,
                "fingerprint": fingerprint,
            }
            if retry:
                fields["retry"] = True
            rt.events.emit_fields("request", rt.name, fields)
            if rt.log_debug:
                log.debug(
                    "request listener=%s conn=%d peer=%s method=%s path=%s n=%d retry=%s",
                    rt.name, self.id, self.peer, request.method, request.path, request.number, retry,
                )
            decision: Optional[Decision] = None
            header = rt.fault_header
            raw = request.header(header) if header is not None else None
            if raw is not None:
                try:
                    rule = parse_fault_header(raw.decode("latin-1"))
                except FaultHeaderError as exc:
                    await self._error(400, f"{rt.fault_header_name}: {exc}", fields)
                    return
                rng = rt.header_rng
                delay_s = rule.delay.draw(rng) if rule.delay is not None else 0.0
                decision = Decision("x-fault", rule.action, delay_s, rng)
            elif rt.rules:
                decision = rt.rules.decide_request(request)
            if decision is None:
                await self._respond(rt.prepared, request, fields)
                return
            self._record_fault(decision, fields)
            if decision.delay_s:
                await timer.sleep(decision.delay_s)  # many fall due at once: see timer.py
            action = decision.action
            if isinstance(action, Respond):
                await self._respond(rt.prepared_for(action), request, fields)
            elif isinstance(action, Dribble):
                await self._dribble(action, decision, request, fields)
            else:
                await self._terminal(decision, request)
        finally:
            stats.in_flight -= 1

    def _record_fault(self, decision: Decision, fields: Optional[dict]) -> None:
        rt = self.rt
        action = decision.action.name.value
        rt.stats.faults[(decision.rule, action)] += 1
        if not fields:
            fields = {"conn": self.id, "peer": self.peer}
        # the request's own fields, less `retry` (which only request events carry)
        rt.events.emit_fields("fault", rt.name, fields, "retry", rule=decision.rule, action=action)

    async def _respond(self, prepared, request: Request, fields: dict) -> None:
        close = not request.keep_alive
        data = prepared.render(request, self.id, close, request.method == "HEAD")
        await send_all(self.sock, data)
        status = prepared.response.status
        self.rt.stats.responses[status] += 1
        self.rt.events.emit_fields("response", self.rt.name, fields, status=status)
        if prepared.closes_after(request):
            await self._graceful_close()

    async def _dribble(self, action: Dribble, decision: Decision, request: Request, fields: dict) -> None:
        prepared = self.rt.prepared
        data = prepared.render(request, self.id, not request.keep_alive, request.method == "HEAD")
        view = memoryview(data)
        rng = decision.rng
        start = trio.current_time()
        at = start
        if action.rate_bytes_per_s is not None:
            rate = action.rate_bytes_per_s
            chunk = action.chunk_bytes if action.chunk_bytes > 1 else max(1, round(rate * DRIBBLE_TICK_S))
            sent = 0
            while sent < len(view):
                piece = view[sent : sent + chunk]
                # token bucket: this piece may leave once the rate has paid for it
                await timer.sleep_until(start + (sent + len(piece)) / rate)
                await send_all(self.sock, piece)
                sent += len(piece)
        else:
            chunk = action.chunk_bytes
            assert action.interval is not None
            for offset in range(0, len(view), chunk):
                at += action.interval.draw(rng)
                await timer.sleep_until(at)
                await send_all(self.sock, view[offset : offset + chunk])
        status = prepared.response.status
        self.rt.stats.responses[status] += 1
        self.rt.events.emit_fields("response", self.rt.name, fields, status=status)
        if prepared.closes_after(request):
            await self._graceful_close()

    async def _terminal(self, decision: Decision, request: Optional[Request]) -> None:
        """close, reset, hang, partial, garbage: the connection ends here."""
        action = decision.action
        sock = self.sock
        name = action.name
        if name is ActionName.CLOSE:
            assert isinstance(action, Close)
            await self._graceful_close(action.drain_s)
        elif name is ActionName.RESET:
            self._reset()
        elif name is ActionName.HANG:
            assert isinstance(action, Hang)
            for_s = action.for_s.draw(decision.rng) if action.for_s is not None else None
            raise _Hang(for_s, request is not None)
        elif name is ActionName.GARBAGE:
            assert isinstance(action, Garbage)
            junk = bytearray(decision.rng.randbytes(action.bytes))
            if junk[:1] in (b"H", b"h"):
                junk[0] ^= 0x80  # never even the start of "HTTP/"
            await send_all(sock, bytes(junk))
            await self._graceful_close()
        elif name is ActionName.PARTIAL:
            assert isinstance(action, Partial)
            prepared = self.rt.prepared
            # the full response as `respond` would send it (connection: close included)
            close = request is not None and not request.keep_alive
            full = prepared.render(request, self.id, close, request is not None and request.method == "HEAD")
            await send_all(sock, full[: action.bytes])
            if action.then is ActionName.RESET:
                await wait_delivered(sock)
                self._reset()
            elif action.then is ActionName.HANG:
                raise _Hang(None, request is not None)
            else:
                await self._graceful_close()
        raise _Finished

    async def _hang(self, for_s: Optional[float], in_flight: bool) -> None:
        """Hold the connection: read and discard until the client leaves or `for_s` passes.

        Thousands of connections may be held at once, so `run` calls this after the
        request's frames have unwound (`_Hang`), and a held connection keeps little: no
        parser (about 1 KB), and no cancel scope of its own without a time limit. A held
        request still counts as in flight, as it did while its frames were there.
        """
        stats = self.rt.stats
        if in_flight:
            stats.in_flight += 1
        try:
            self._parser = None  # type: ignore[assignment]
            self._headers = []  # the last request's, and its target: no longer needed
            self._url = b""
            raw = self.sock._sock  # type: ignore[attr-defined]
            with trio.move_on_after(for_s) if for_s is not None else _NO_LIMIT:
                while True:
                    await trio.lowlevel.wait_readable(raw)
                    try:
                        data = raw.recv(RECV_BYTES)
                    except BlockingIOError:
                        continue
                    if not data:
                        self._peer_closed("fin")
                        self.closed = True
                        self.sock.close()
                        raise _Finished
            await self._graceful_close()
        finally:
            if in_flight:
                stats.in_flight -= 1

    def _reset(self) -> None:
        self.closed = True
        abort(self.sock)
        raise _Finished

    async def _graceful_close(self, drain_s: float = GRACEFUL_DRAIN_S) -> None:
        self.closed = True
        how = await drain_and_close(self.sock, drain_s)
        if how:
            self._peer_closed(how)
        raise _Finished

    async def _error(self, status: int, message: str, fields: Optional[dict] = None) -> None:
        from .._decide.response import error_response

        try:
            await send_all(self.sock, error_response(status, message))
        except PEER_GONE:
            pass
        self.rt.stats.responses[status] += 1
        extra = fields if fields is not None else {"conn": self.id, "peer": self.peer}
        self.rt.events.emit("response", self.rt.name, status=status, error=message, **extra)
        await self._graceful_close()

    def shutdown(self, how: str) -> None:
        """End this connection from outside (drop, stop): `fin`, `rst` or `shutdown`."""
        self.drop_how = how
        if self.scope is not None:
            self.scope.cancel()


_LIMIT_MESSAGES = {
    400: "malformed request",
    413: "request body too large",
    431: "request headers too large",
}

_H2_PREFACE = b"PRI * HTTP/2.0\r\n"


def _foreign_protocol(data: bytes) -> str:
    """Name what a connection's first bytes are when they are another protocol's, else ""."""
    if data.startswith(_H2_PREFACE):
        return "HTTP/2 is not supported (this listener speaks HTTP/1.1)"
    if data[:1] == b"\x16" and data[1:2] == b"\x03":
        return "TLS handshake on a plain HTTP listener"
    return ""
