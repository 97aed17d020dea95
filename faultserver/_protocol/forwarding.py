"""Proxy mode's HTTP, with no socket: the request head sent upstream, the upstream's answer
read from bytes (httptools inside, events out), and the head relayed to the client.

Hop-by-hop headers (RFC 9110 section 7.6.1) are the connection's, not the message's: the
fixed list below and every header the `Connection` header names are dropped both ways, and
each side gets the framing and `Connection` header of its own connection. A request goes
upstream as HTTP/1.1 with its body (read whole by the request reader) framed by
`Content-Length`; an answer keeps its `Content-Length`, or is re-framed as chunked (HTTP/1.1
client) or by the close (HTTP/1.0 client), since the reader hands over the body decoded.
"""

from __future__ import annotations

import functools
import http
import re
from dataclasses import dataclass

import httptools

from .._decide.request import Request
from .._profile.model import Upstream, UpstreamHost

__all__ = [
    "HOP_BY_HOP",
    "MAX_HEAD_BYTES",
    "PlainAnswers",
    "ResponseBody",
    "ResponseEnd",
    "ResponseHead",
    "ResponseReader",
    "plain_answer",
    "relayed_head",
    "request_head",
    "response_head",
    "response_via",
]

#: Headers that belong to one connection (RFC 9110 7.6.1), plus the proxy's own (`Proxy-*`),
#: and the framing and `Expect` this proxy sets itself.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"proxy-connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-authenticate",
        b"content-length",
        b"expect",
    }
)


def _dropped(headers: list[tuple[bytes, bytes]], extra: bytes | None) -> frozenset[bytes]:
    """The hop-by-hop names, with those the `Connection` header lists."""
    dropped = HOP_BY_HOP
    for name, value in headers:
        if name == b"connection":
            named = {token.strip().lower() for token in value.split(b",")}
            if not dropped.issuperset(named):  # `keep-alive` or `close`: listed already
                dropped = dropped.union(named)
    return dropped | {extra} if extra else dropped


#: The names `request_head` does something with, beyond the hop-by-hop ones.
_REWRITTEN = frozenset({b"host", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"})


@functools.lru_cache(maxsize=8)
def _looked_at(fault_header: bytes | None) -> frozenset[bytes]:
    """Every name `request_head` does not pass on as it came (a `Connection` header may
    name more)."""
    return HOP_BY_HOP | _REWRITTEN | ({fault_header} if fault_header else set())


def request_head(
    request: Request,
    upstream: Upstream,
    client_ip: str,
    proto: str,
    fault_header: bytes | None,
    streamed: bool = False,
    upgrade: bool = False,
) -> bytes:
    """The head of `request` as sent upstream (names lower case, as the reader gave them).
    `streamed`: the body follows as it arrives, framed as the client framed it (its
    Content-Length, or chunked); else it is `request.body`, sent with its length.
    `upgrade`: the request's `Upgrade` goes with it (a tunnel is asked for)."""
    headers = request.headers
    looked_at = _looked_at(fault_header)
    dropped = HOP_BY_HOP
    for name, _ in headers:
        if name == b"connection":  # it may name more headers to drop (this runs once a head)
            dropped = _dropped(headers, fault_header)
            looked_at = looked_at | dropped
            break
    lines = [f"{request.method} {request.target} HTTP/1.1\r\n".encode("latin-1"), b""]
    forwarded_for: bytes | None = None
    host: bytes | None = None
    has_proto = has_host = False
    for header in headers:
        name = header[0]
        if name not in looked_at:  # most headers: as they came
            lines.append(b"%s: %s\r\n" % header)
        elif name in dropped or name == fault_header:
            continue
        elif name == b"host":
            host = header[1]
        elif name == b"x-forwarded-for":
            forwarded_for = header[1] if forwarded_for is None else forwarded_for + b", " + header[1]
        else:
            has_proto = has_proto or name == b"x-forwarded-proto"
            has_host = has_host or name == b"x-forwarded-host"
            lines.append(b"%s: %s\r\n" % header)
    if upstream.host_header is UpstreamHost.UPSTREAM or host is None:
        sent_host = upstream.authority.encode("latin-1")
    else:
        sent_host = host
    lines[1] = b"host: %s\r\n" % sent_host
    client = client_ip.encode("latin-1")
    lines.append(b"x-forwarded-for: %s\r\n" % (forwarded_for + b", " + client if forwarded_for else client))
    if not has_proto:
        lines.append(b"x-forwarded-proto: %s\r\n" % proto.encode("latin-1"))
    if not has_host and host is not None:
        lines.append(b"x-forwarded-host: %s\r\n" % host)
    if upstream.via is not None:
        lines.append(_via(request.http_version, upstream.via, request.header(b"via")))
    if upgrade:
        lines.append(b"connection: upgrade\r\nupgrade: %s\r\n" % (request.header(b"upgrade") or b""))
    lines.append(_framing(request, streamed))
    return b"".join(lines)


def _framing(request: Request, streamed: bool) -> bytes:
    """The end of a request's head upstream: its framing, and the blank line."""
    if streamed:
        length = request.header(b"content-length")
        if length is not None:
            return b"content-length: %s\r\n\r\n" % length.strip()
        return b"transfer-encoding: chunked\r\n\r\n"
    if request.body or request.header(b"content-length") is not None or request.header(b"transfer-encoding"):
        return b"content-length: %d\r\n\r\n" % len(request.body)
    return b"\r\n"


def _via(version: str, pseudonym: str, earlier: bytes | None) -> bytes:
    mine = f"{version} {pseudonym}".encode("latin-1")
    return b"via: %s\r\n" % (earlier + b", " + mine if earlier else mine)


# The head and body events are built per answer and per read: slotted, not frozen (a
# frozen dataclass sets each field through `object.__setattr__`, four times the cost).
# Nothing changes them after the reader made them.


@dataclass(slots=True)
class ResponseHead:
    """The upstream's status line and headers: `raw`, their bytes as they came (up to and
    including the blank line), and `headers` (names lower case) read from them when asked.
    `length`: its Content-Length (None: chunked or until the close); `bodiless`: no body
    follows; `chunked`: its body is chunked."""

    status: int
    raw: bytes
    length: int | None
    bodiless: bool
    keep_alive: bool
    chunked: bool = False
    _headers: list[tuple[bytes, bytes]] | None = None

    @property
    def reason(self) -> bytes:
        parts = self.raw.split(b"\n", 1)[0].rstrip(b"\r").split(b" ", 2)
        return parts[2] if len(parts) > 2 else b""

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """`(name, value)` pairs, names lower case, values without surrounding blanks."""
        headers = self._headers
        if headers is None:
            headers = self._headers = [
                (name.strip().lower(), value.strip(b" \t"))
                for name, _, value in (line.partition(b":") for line in _header_lines(self.raw))
            ]
        return headers


def _header_lines(raw: bytes) -> list[bytes]:
    """The header lines of a head (the status line and the blank line left out)."""
    lines = raw.split(b"\n")[1:]
    return [line[:-1] if line.endswith(b"\r") else line for line in lines if line not in (b"", b"\r")]


@dataclass(slots=True)
class ResponseBody:
    """A piece of the body, decoded (no chunk framing)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ResponseEnd:
    """The answer is complete; `reusable`: the upstream connection may carry another."""

    reusable: bool


ResponseEvent = ResponseHead | ResponseBody | ResponseEnd
_REUSABLE = ResponseEnd(reusable=True)
_LAST = ResponseEnd(reusable=False)


class ResponseReader:
    """One upstream answer from bytes. Also the httptools protocol object (its `on_*`).

    `head_only`: the request was HEAD, so the answer ends with its head whatever its
    headers say (httptools cannot be told, so this reader stops there). Interim answers
    (1xx but 101) are skipped. `feed` raises `httptools.HttpParserError` for bytes that are
    not HTTP; `feed_eof` says whether the close ended the answer (a body until the close).
    """

    __slots__ = (
        "_done",
        "_events",
        "_head",
        "_interim",
        "_left",
        "_parser",
        "_pending",
        "head_only",
        "tunnel_start",
    )

    def __init__(self, head_only: bool) -> None:
        self.head_only = head_only
        self._parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self._events: list[ResponseEvent] = []
        #: the bytes fed since the answer began, until its head is complete (usually one read)
        self._pending = b""
        #: interim answers (1xx but 101) skipped so far: their heads come first in `_pending`
        self._interim = 0
        self._head: ResponseHead | None = None
        self._done = False
        #: what is left of a body with a Content-Length (None: no such body, or not yet)
        self._left: int | None = None
        #: after a `101 Switching Protocols`: the bytes that followed its head
        self.tunnel_start = b""

    @property
    def head(self) -> ResponseHead | None:
        return self._head

    @property
    def done(self) -> bool:
        return self._done

    @property
    def body_left(self) -> int | None:
        """What is still to come of a body with a Content-Length (None: no such body now)."""
        return self._left if not self._done else None

    def skip_body(self) -> list[ResponseEvent]:
        """The rest of the body (`body_left` bytes) went past this reader: the end."""
        head = self._head
        assert head is not None and self._left is not None and not self._done
        self._left = 0
        self._done = True
        return [_REUSABLE if head.keep_alive else _LAST]

    def feed(self, data: bytes) -> list[ResponseEvent]:
        """The events that `data` completes (empty: more bytes are needed)."""
        left = self._left
        if left and not self._done:
            # the rest of a body with a length: counted, not parsed (a download's bulk)
            if len(data) < left:
                self._left = left - len(data)
                return [ResponseBody(data)]
            self._done = True
            head = self._head
            assert head is not None
            # bytes after the body, which no request asked for: the connection is not reused
            end = _REUSABLE if head.keep_alive and len(data) == left else _LAST
            return [ResponseBody(data[:left]), end]
        parser = self._parser
        if not self._done and parser is not None:
            if self._head is None:  # the head is read from these bytes once complete
                self._pending = self._pending + data if self._pending else data
                if len(self._pending) > MAX_HEAD_BYTES:
                    raise httptools.HttpParserError(f"the answer's head is over {MAX_HEAD_BYTES} bytes")
            try:
                parser.feed_data(data)
            except httptools.HttpParserUpgrade as exc:  # a 101: the rest is the new protocol
                self.tunnel_start = data[exc.args[0] :] if exc.args else b""
            except httptools.HttpParserCallbackError:
                if not self._done:
                    raise
        events = self._events
        self._events = []
        return events

    def close(self) -> None:
        """Let go of the parser, which refers back to this reader: without it, each answer
        left a cycle of a dozen objects that only the collector freed, which then ran every
        few dozen requests and sat in the latency's tail."""
        self._parser = None

    def feed_eof(self) -> list[ResponseEvent] | None:
        """The upstream closed: the end of a body that runs until the close, or None (the
        answer was cut short)."""
        head = self._head
        if self._done or head is None or head.length is not None or head.bodiless:
            return None
        if head.chunked:
            return None  # chunked: the last chunk never came
        self._done = True
        return [_LAST]

    # --- httptools callbacks --------------------------------------------------------
    # No `on_header`: the head is read from its bytes (`ResponseHead.raw`), which a plain
    # forward relays as they came; nine callbacks per answer cost more than the answer.

    def on_headers_complete(self) -> None:
        parser = self._parser
        assert parser is not None  # called from its `feed_data`
        status = parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._interim += 1
            return
        raw = _final_head(self._pending, self._interim)
        self._pending = b""
        lowered = raw.lower()
        chunked = b"\ntransfer-encoding:" in lowered
        length = None
        if not chunked:
            found = _CONTENT_LENGTH.search(lowered)
            length = int(found.group(1)) if found is not None else None
        bodiless = self.head_only or status in (101, 204, 304)
        self._head = ResponseHead(status, raw, length, bodiless, parser.should_keep_alive(), chunked)
        self._events.append(self._head)
        if length is not None and not bodiless:
            self._left = length
        if self.head_only:
            self._finish()
            raise _Stop

    def on_body(self, body: bytes) -> None:
        if self._head is not None:
            self._events.append(ResponseBody(body))
            if self._left is not None:
                self._left -= len(body)

    def on_message_complete(self) -> None:
        if self._head is None:
            return  # an interim answer: the real one follows
        self._finish()

    def _finish(self) -> None:
        self._done = True
        head = self._head
        assert head is not None
        self._events.append(_REUSABLE if head.keep_alive else _LAST)


#: An answer's head (with the interim answers before it) may be this long, no longer: nginx
#: stops at 4 or 8 KiB ("upstream sent too big header"); what a proxy holds stays bounded.
MAX_HEAD_BYTES = 256 * 1024
#: A Content-Length header's value, in a lower-cased head (httptools checked its syntax).
_CONTENT_LENGTH = re.compile(rb"\ncontent-length[ \t]*:[ \t]*(\d+)")


def _final_head(data: bytes, interim: int) -> bytes:
    """The head of the final answer in `data`: after `interim` bodiless 1xx heads."""
    start = 0
    head = data
    for _ in range(interim + 1):
        end = data.find(b"\r\n\r\n", start)
        if end >= 0:
            end += 4
        else:  # bare line feeds, which httptools lets pass
            end = data.find(b"\n\n", start)
            end = end + 2 if end >= 0 else len(data)
        head, start = data[start:end], end
    return head


class _Stop(Exception):
    """Raised in a callback to stop httptools at the end of a HEAD answer's head."""


def response_head(
    head: ResponseHead,
    *,
    status: int | None,
    extra: tuple[tuple[str, str], ...],
    body_length: int | None,
    chunked: bool,
    close: bool,
    keep_alive_1_0: bool,
    via: bytes | None,
) -> bytes:
    """The head relayed to the client: the upstream's, less its hop-by-hop headers, with
    `status` and `extra` headers replacing the upstream's, and the client connection's own
    framing (`body_length`: a Content-Length; `chunked`; neither: bodiless or until the close)."""
    if status is None:
        line = b"HTTP/1.1 %d %s\r\n" % (head.status, head.reason)
    else:
        line = b"HTTP/1.1 %d %s\r\n" % (status, _reason(status))
    dropped = _dropped(head.headers, None)
    if extra or via is not None:
        replaced = {name.lower().encode("latin-1") for name, _ in extra}
        if via is not None:
            replaced.add(b"via")  # the upstream's `Via` comes first in ours
        dropped = dropped.union(replaced)
    lines = [line]
    lines += [b"%s: %s\r\n" % header for header in head.headers if header[0] not in dropped]
    if extra:
        lines += [f"{name}: {value}\r\n".encode("latin-1") for name, value in extra]
    if body_length is not None:
        lines.append(b"content-length: %d\r\n" % body_length)
    elif chunked:
        lines.append(b"transfer-encoding: chunked\r\n")
    if via is not None:
        lines.append(via)
    if close:
        lines.append(b"connection: close\r\n")
    elif keep_alive_1_0:
        lines.append(b"connection: keep-alive\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


#: The hop-by-hop names (less the framing, which a relayed head keeps), as a head line starts.
_HOP_LINE = re.compile(
    rb"\r\n(connection|proxy-connection|keep-alive|te|trailer|transfer-encoding|upgrade"
    rb"|proxy-authorization|proxy-authenticate|expect)[ \t]*:([^\r\n]*)"
)
_CONNECTION_LINE = re.compile(rb"\r\nconnection[ \t]*:[^\r\n]*", re.IGNORECASE)


def relayed_head(head: ResponseHead, *, close: bool, keep_alive_1_0: bool) -> bytes | None:
    """The upstream's head as it came, for a plain forward (the status, headers and
    framing kept), when the only hop-by-hop header in it is `Connection: keep-alive` (which
    goes: it was the upstream connection's); None when it needs `response_head`'s rebuild.
    As `response_head`, the client connection's own `Connection` header is added."""
    raw = head.raw
    if not raw.startswith(b"HTTP/1.1 ") or not raw.endswith(b"\r\n\r\n"):
        return None
    found = _HOP_LINE.findall(raw.lower())
    if found:
        if len(found) > 1 or found[0][0] != b"connection" or found[0][1].strip() != b"keep-alive":
            return None
        raw = _CONNECTION_LINE.sub(b"", raw, count=1)
    if close:
        return raw[:-2] + b"connection: close\r\n\r\n"
    if keep_alive_1_0:
        return raw[:-2] + b"connection: keep-alive\r\n\r\n"
    return raw


#: In a lower-cased head that httptools accepted (every line ends in CRLF, no blank before a
#: colon): a hop-by-hop header, or the Content-Length, and its value.
_PLAIN_LINE = re.compile(
    rb"\n(c(?:onnection|ontent-length)|proxy-(?:connection|authorization|authenticate)"
    rb"|keep-alive|te|trailer|transfer-encoding|upgrade|expect):([^\r]*)"
)


class _Complete:
    """The httptools protocol of `PlainAnswers`: it only counts whole messages."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def on_message_complete(self) -> None:
        self.count += 1


class PlainAnswers:
    """A plain forward's common answers on one upstream connection, each in one go
    (`take`), with one httptools parser for all of them while each answer ends where the
    read does (a parser per answer cost a third of a microsecond)."""

    __slots__ = ("_complete", "_parser")

    def __init__(self) -> None:
        self._complete = _Complete()
        self._parser: httptools.HttpResponseParser | None = None

    def take(self, data: bytes, close: bool, keep_alive_1_0: bool) -> tuple[int, bytes] | None:
        """When `data` (one read) is exactly one whole HTTP/1.1 answer with a
        Content-Length and a body, whose only hop-by-hop header is `Connection:
        keep-alive`: its status and the bytes for the client (as `relayed_head` makes them,
        the body after the head). None for anything else, which `ResponseReader` then reads
        from the start. An answer taken here leaves its upstream connection reusable.

        This is `ResponseReader` and `relayed_head` for one case, with no event per part:
        httptools checks the whole message (with no callback but its end), then one pass
        over the head finds what decides."""
        if not data.startswith(b"HTTP/1.1 "):
            return None
        parser = self._parser
        if parser is None:
            parser = self._parser = httptools.HttpResponseParser(self._complete)
        complete = self._complete
        complete.count = 0
        try:
            parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):  # a 101 is not plain
            self._parser = None
            return None
        status = parser.get_status_code()
        if complete.count != 1 or status < 200 or status == 204 or status == 304:
            self._parser = None  # not where an answer ends, perhaps
            return None
        answer = _plain(data, status, close, keep_alive_1_0)
        if answer is None:
            self._parser = None
        return answer


def plain_answer(data: bytes, close: bool, keep_alive_1_0: bool) -> tuple[int, bytes] | None:
    """`PlainAnswers.take` for one answer alone."""
    return PlainAnswers().take(data, close, keep_alive_1_0)


def _plain(data: bytes, status: int, close: bool, keep_alive_1_0: bool) -> tuple[int, bytes] | None:
    """The rest of `PlainAnswers.take`, for a message httptools read whole."""
    end = data.find(b"\r\n\r\n") + 4
    lowered = data[:end].lower()
    length = -1
    keep_alive = False
    for name, value in _PLAIN_LINE.findall(lowered):
        if name == b"content-length" and length < 0:
            length = int(value)  # httptools checked it: digits, blanks around them
        elif name == b"connection" and not keep_alive and value.strip(b" \t") == b"keep-alive":
            keep_alive = True
        else:
            return None
    if end + length != len(data):  # no length, or more bytes than the answer
        return None
    if keep_alive:  # the upstream connection's header goes
        start = lowered.find(b"\r\nconnection:")
        stop = lowered.find(b"\r\n", start + 2)
        data = data[:start] + data[stop:]
        end -= stop - start
    if close:  # the client connection's own, as `relayed_head` adds it
        return status, data[: end - 2] + b"connection: close\r\n" + data[end - 2 :]
    if keep_alive_1_0:
        return status, data[: end - 2] + b"connection: keep-alive\r\n" + data[end - 2 :]
    return status, data


def response_via(head: ResponseHead, pseudonym: str) -> bytes:
    """The `Via` line of a relayed answer (the upstream's own `Via` first)."""
    earlier = next((value for name, value in head.headers if name == b"via"), None)
    return _via("1.1", pseudonym, earlier)


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode("latin-1")
    except ValueError:
        return b"Unknown"
