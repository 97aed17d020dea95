"""HTTP/1.1 requests from bytes, with no socket and no clock: httptools inside, events out.

Theory of operation. The connection loop feeds what it reads (`feed(data, clock)`), takes the
events out (`take_events()`) and handles them in order, then reads again. An event is a complete
`Request`, a `ContinueExpected` (a head that waits for `100 Continue`), a `Refusal` (answer
this error, then close) or `PeerEnded`. Requests come out in the order they were sent, so
pipelined requests are answered in order and a refusal comes after the requests that were
complete before it. After a refusal or the end, the reader takes nothing more.

Time enters as an argument, a clock (`trio.current_time`, or a test's), read only when a
deadline must be set: `deadline(clock)` says until when the next read may wait, and
`timed_out()` gives the 408 to send when it did not arrive. The clocks, from the README's
"Hostile HTTP": a request's head must be complete within `header_timeout` of its first byte
(of the accept, for a connection's first request); a body may take long but may not stall
(no byte for `header_timeout`). Between requests the reader sets no clock: keep-alive
policy (`idle_close`) is the connection's.

Memory is bounded by the limits, counted as what is held, not as what was on the wire: the
body accumulates in one `bytearray` (at most `max_body_bytes`), and each header is charged
its name and value plus `HEADER_COST_BYTES`, what a header costs in memory; the head's
bytes on the wire are counted too, since httptools holds a header in pieces until it ends.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable

import httptools

from .._decide.request import Request
from .._profile.model import Limits
from .events import ContinueExpected, Event, PeerEnded, Refusal

__all__ = ["HEADER_COST_BYTES", "ReaderState", "RequestReader"]

#: What one header costs in memory beyond its name and value: two `bytes` objects, the
#: tuple that pairs them and its slot in the list. 64 KiB of headers is then about 500.
HEADER_COST_BYTES = 128
#: Methods a 405 names as allowed: any method but CONNECT is answered.
ALLOWED_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE"

_MALFORMED = "malformed request"
_TOO_LARGE_HEAD = "request headers too large"
_TOO_LARGE_BODY = "request body too large"
_HTTP09 = "HTTP/0.9 requests are not supported"
_H2_PREFACE = b"PRI * HTTP/2.0\r\n"
_SERVED_VERSIONS = ("1.1", "1.0")


class ReaderState(enum.Enum):
    """Where the reader is in the stream of requests."""

    IDLE = "idle"  # between requests: no byte of the next one yet
    HEAD = "head"  # a request line and headers are arriving
    BODY = "body"  # a body is arriving
    DONE = "done"  # a refusal or the end was given: nothing more is read


# Enum members looked up through their class cost 70 ns each in Python 3.11; the reader
# looks at its state several times per request, so it reads these module names instead.
_IDLE, _HEAD, _BODY, _DONE = ReaderState.IDLE, ReaderState.HEAD, ReaderState.BODY, ReaderState.DONE


class RequestReader:
    """The requests of one connection. Also the httptools protocol object (its `on_*`)."""

    __slots__ = (
        "__weakref__",
        "_begun",
        "_body",
        "_body_bytes",
        "_body_wire",
        "_count",
        "_events",
        "_expect",
        "_head_deadline",
        "_head_wire",
        "_header_bytes",
        "_headers",
        "_limits",
        "_parser",
        "_refusal",
        "_request",
        "_url",
        "state",
    )

    def __init__(self, limits: Limits, now: float) -> None:
        """`now`: when the connection was accepted (the first request's clock starts then)."""
        self._limits = limits
        self._parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self.state = _IDLE
        self._events: list[Event] = []
        self._head_deadline = now + limits.header_timeout_s
        self._begun = self._count = 0  # requests begun, heads complete
        self._head_wire = self._body_wire = 0  # bytes on the wire of the head, of the body
        self._refusal: Refusal | None = None
        self._url: bytes | bytearray = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._body: bytes | bytearray | None = None
        self._body_bytes = 0
        self._request: Request | None = None
        self._expect = False

    # --- the connection's side ------------------------------------------------------

    def feed(self, data: bytes, clock: Callable[[], float]) -> None:
        """Take the bytes a read brought; events become available from `take_events`."""
        parser = self._parser
        if self.state is _DONE or parser is None:
            return
        started_in = self.state
        if started_in is _BODY:
            self._body_wire += len(data)
        else:
            self._head_wire += len(data)
            # a request line with runs of spaces (`GET  /x  HTTP/1.1`) passes httptools: look
            # where a read starts a request (with a method's letter: a TLS hello's random
            # bytes may hold two spaces), which is where requests start unless pipelined
            if started_in is _IDLE and b"  " in data and data[:1].isalpha():
                line_end = data.find(b"\n")
                if data.find(b"  ", 0, line_end if line_end >= 0 else len(data)) >= 0:
                    self._refuse(400, _MALFORMED)
        begun = self._begun
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._upgrade()
        except httptools.HttpParserError:
            message = _foreign_protocol(data) if self._count == 0 else ""
            self._refuse(400, message or _MALFORMED)
        else:
            # HTTP/0.9 (`GET /path` and a line end, no version) on a connection's first request;
            # only a line end proves it: `GET /ind` may be the start of `GET /index HTTP/1.1`
            if (
                self.state is _HEAD
                and self._count == 0
                and self._url
                and b"\n" in data
                and parser.get_http_version() in ("0.0", "0.9")
            ):
                self._refuse(400, _HTTP09)
        if self.state is _IDLE and self._refusal is None:
            # the common case, whole requests: nothing in progress, no clock until the next
            self._head_wire = 0
            self._head_deadline = math.inf
            return
        self._after_feed(started_in, begun, len(data), clock)

    def feed_eof(self) -> None:
        """The client closed its side: `PeerEnded` between requests, else a 400."""
        if self.state is _DONE:
            return
        if self.state is _IDLE:
            self._events.append(PeerEnded())
        else:
            self._events.append(Refusal(400, "request ended before it was complete"))
        self.state = _DONE

    def take_events(self) -> list[Event]:
        """Every event available now, in order (empty: the reader needs more bytes)."""
        events = self._events
        if events:
            self._events = []
        return events

    def deadline(self, clock: Callable[[], float]) -> float:
        """Until when the next read may wait (`inf`: no clock, between requests)."""
        if self.state is _BODY:
            return clock() + self._limits.header_timeout_s
        return self._head_deadline

    def timed_out(self) -> Refusal:
        """The 408 for a read that did not arrive by `deadline`; nothing more is read."""
        in_body = self.state is _BODY
        self.state = _DONE
        if in_body:
            return Refusal(408, "request body stalled (no data within header_timeout)")
        return Refusal(408, "request headers not received in time")

    def close(self) -> None:
        """Let go of the parser and what it holds (it refers back to this object)."""
        self._parser = None
        self._events = []
        self.on_message_begin()  # which empties what the message in progress held
        self.state = _DONE

    # --- httptools callbacks (kept small: they run for every request) ----------------

    def on_message_begin(self) -> None:
        self.state = _HEAD
        self._begun += 1
        self._url = b""
        self._headers = []
        self._header_bytes = 0
        self._body = None
        self._body_bytes = 0
        self._request = None
        self._expect = False

    def on_url(self, url: bytes) -> None:
        if self._url:
            self._url = bytearray(self._url)  # in pieces: no copy of the whole per piece
            self._url += url
        else:
            self._url = url
        self._header_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + HEADER_COST_BYTES
        if self._header_bytes <= self._limits.max_header_bytes:
            self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.state = _BODY
        parser = self._parser
        assert parser is not None
        version = parser.get_http_version()
        method = parser.get_method().decode("latin-1")
        too_large = self._header_bytes > self._limits.max_header_bytes
        if too_large or version not in _SERVED_VERSIONS or method == "CONNECT":
            self._refusal = self._refusal or _head_refusal(version, method, too_large)
            return
        for name, value in self._headers:
            if name == b"expect" and value.lower() == b"100-continue":
                self._expect = True
            elif (
                name == b"content-length"
                and value.strip().isdigit()
                and int(value[:20]) > self._limits.max_body_bytes
            ):
                # refuse at once what would only fit after reading past the limit
                self._refusal = self._refusal or Refusal(413, _TOO_LARGE_BODY)
        self._count += 1
        target = self._url.decode("latin-1")
        # positional: half the cost of keywords, once per request
        # (method, target, path, headers, body, http_version, keep_alive, number)
        self._request = Request(
            method, target, target.partition("?")[0], self._headers, b"", version,
            parser.should_keep_alive(), self._count,
        )

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self._limits.max_body_bytes:
            self._refusal = self._refusal or Refusal(413, _TOO_LARGE_BODY)
            return
        held = self._body
        if held is None:
            self._body = body
        elif type(held) is bytes:
            grown = bytearray(held)
            grown += body
            self._body = grown
        else:
            held += body

    def on_message_complete(self) -> None:
        request = self._request
        self.state = _IDLE
        if self._refusal is not None or request is None:
            return  # over a limit or refused: answered with an error, never as a request
        body = self._body
        if body is not None:
            request.body = body
        self._events.append(request)
        self._request = None

    # --- helpers --------------------------------------------------------------------

    def _refuse(self, status: int, message: str) -> None:
        self._refusal = self._refusal or Refusal(status, message)

    def _upgrade(self) -> None:
        """`Upgrade:` (or CONNECT, refused already): answer what was read, then close."""
        if self._refusal is not None:
            return
        for event in reversed(self._events):
            if isinstance(event, Request):
                event.keep_alive = False  # no protocol switch here
                return
        self._refuse(400, _MALFORMED)

    def _after_feed(
        self, started_in: ReaderState, begun: int, wire: int, clock: Callable[[], float]
    ) -> None:
        limits = self._limits
        state = self.state
        if self._begun != begun and state is not _IDLE:
            # a request began inside this read and is not complete: its header clock starts
            # now; when others came before it (pipelined), only what the parser has seen of
            # it counts, else the whole read does
            alone = self._begun - begun == 1 and started_in is _IDLE
            self._head_wire = wire if alone else self._header_bytes
            self._head_deadline = clock() + limits.header_timeout_s
        if state is not _BODY:
            self._body_wire = 0
        elif self._body_wire > 2 * limits.max_body_bytes + limits.max_header_bytes:
            # framing counts too: chunk extensions and trailers cannot go on forever
            self._refuse(413, _TOO_LARGE_BODY)
        if state is _HEAD and max(self._head_wire, self._header_bytes) > limits.max_header_bytes:
            self._refuse(431, _TOO_LARGE_HEAD)
        if self._refusal is not None:
            self._events.append(self._refusal)
            self.state = _DONE
            return
        if self._expect and state is _BODY and self._request is not None:
            self._expect = False
            self._events.append(ContinueExpected(self._request))
        if state is _IDLE:
            self._head_wire = 0
            self._head_deadline = math.inf  # the next request's clock starts with its first byte


def _foreign_protocol(data: bytes) -> str:
    """Name what a connection's first bytes are when they are another protocol's, else ""."""
    if data.startswith(_H2_PREFACE):
        return "HTTP/2 is not supported (this listener speaks HTTP/1.1)"
    if data[:1] == b"\x16" and data[1:2] == b"\x03":
        return "TLS handshake on a plain HTTP listener"
    return ""


def _head_refusal(version: str, method: str, too_large: bool) -> Refusal:
    """Why a complete head is not served: 431, 400, 505 or 405."""
    if too_large:
        return Refusal(431, _TOO_LARGE_HEAD)
    if version in ("0.0", "0.9"):
        return Refusal(400, _HTTP09)  # "GET /\r\n\r\n": httptools completes it as HTTP/0.9
    if version not in _SERVED_VERSIONS:
        return Refusal(505, f"HTTP/{version} is not supported (this listener speaks HTTP/1.1)")
    return Refusal(
        405, "CONNECT is not supported (this is a backend, not a proxy)", (("allow", ALLOWED_METHODS),)
    )
