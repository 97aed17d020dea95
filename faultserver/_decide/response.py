"""Encoding responses to bytes, pure and mostly ahead of time.

A `PreparedResponse` is built once per configured response (the listener's, or a
`respond` action's overrides). With a static body, the whole keep-alive response is
kept as bytes and only rebuilt when the `date` header's second changes; only the JSON
echo (the default body) is built per request.
"""

from __future__ import annotations

import json
import time
from email.utils import formatdate
from http import HTTPStatus

from .._profile.model import Body, Framing, Grpc, GrpcStatus, Respond, Response
from .request import Request

__all__ = ["PreparedResponse", "error_response", "filler", "merge_response"]

_NO_BODY_STATUSES = frozenset({204, 304}) | frozenset(range(100, 200))


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def filler(size: int) -> bytes:
    """`size` bytes of readable filler, lines of 64 bytes, so a cut shows where it fell."""
    line = b"faultserver filler 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEF\n"
    assert len(line) == 64
    return (line * (size // 64 + 1))[:size]


def merge_response(base: Response, override: Respond) -> Response:
    """The listener's response with a `respond` action's overrides applied."""
    headers = dict(base.headers)
    lowered = {k.lower(): k for k in headers}
    for k, v in override.headers:
        if k.lower() in lowered:
            del headers[lowered[k.lower()]]
        headers[k] = v
    return Response(
        status=override.status if override.status is not None else base.status,
        headers=tuple(headers.items()),
        body=override.body if override.body is not None else base.body,
        framing=override.framing if override.framing is not None else base.framing,
        grpc=override.grpc if override.grpc is not None else base.grpc,
    )


class _DateCache:
    """The `date` header line, rebuilt once a second."""

    __slots__ = ("line", "second")

    def __init__(self) -> None:
        self.second = -1
        self.line = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.line = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        return self.line


_DATE = _DateCache()


#: An HTTP/2 response: its headers, its body, and its trailers (None: none).
H2Parts = tuple[list[tuple[bytes, bytes]], bytes, list[tuple[bytes, bytes]] | None]
#: What `grpc-message` may carry unencoded (gRPC over HTTP/2: printable ASCII but `%`).
_GRPC_PLAIN = frozenset(range(0x20, 0x7F)) - {0x25}


def _grpc_status(grpc: Grpc) -> list[tuple[bytes, bytes]]:
    """`grpc-status` and, when there is one, `grpc-message`, percent-encoded as gRPC says."""
    status = [(b"grpc-status", str(int(grpc.status)).encode())]
    if grpc.message:
        raw = grpc.message.encode("utf-8")
        status.append((b"grpc-message", b"".join(_grpc_byte(b) for b in raw)))
    return status


def _grpc_byte(byte: int) -> bytes:
    return bytes([byte]) if byte in _GRPC_PLAIN else b"%%%02X" % byte


def _grpc_message(payload: bytes) -> bytes:
    """One gRPC length-prefixed message, not compressed."""
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


#: Headers of HTTP/1.1 connections, which an HTTP/2 response must not carry (RFC 9113 8.2.2).
_H1_ONLY_HEADERS = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"})


class PreparedResponse:
    """One configured response, encoded as far as the profile allows."""

    __slots__ = (
        "_body",
        "_cache",
        "_cache_second",
        "_cacheable",
        "_chunked",
        "_closes",
        "_headers",
        "_no_body",
        "_status_line",
        "_user_close",
        "_user_date",
        "_user_length",
        "listener",
        "response",
    )

    def __init__(self, response: Response, listener: str) -> None:
        self.response = response
        self.listener = listener
        status = response.status
        self._status_line = f"HTTP/1.1 {status} {_reason(status)}\r\n".encode()
        names = {k.lower() for k, _ in response.headers}
        headers = b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in response.headers)
        grpc = response.grpc
        if grpc is not None:
            # gRPC needs HTTP/2; over HTTP/1.1 the answer says the same in plain headers: its
            # status in grpc-status, and its message (when OK) as the body
            if "content-type" not in names:
                headers += b"content-type: application/grpc\r\n"
            headers += b"".join(b"%s: %s\r\n" % pair for pair in _grpc_status(grpc))
        elif response.body is None and "content-type" not in names:
            headers += b"content-type: application/json\r\n"
        self._headers = headers
        self._user_close = any(
            k.lower() == "connection" and v.strip().lower() == "close" for k, v in response.headers
        )
        # the profile's headers are merged over the defaults: its own date or
        # content-length replaces ours (even a wrong length: the profile's choice)
        self._user_date = "date" in names
        self._user_length = "content-length" in names
        self._body = self._static_body(response.body)
        if grpc is not None:  # the body as one gRPC message when OK; none otherwise
            self._body = _grpc_message(self._body or b"") if grpc.status is GrpcStatus.OK else b""
        self._no_body = status in _NO_BODY_STATUSES
        self._cache_second = -1
        self._cache = b""
        # decided once, read per request: a static keep-alive answer is cached whole
        framing = response.framing
        self._cacheable = self._body is not None and framing is Framing.LENGTH and not self._user_close
        self._closes = self._user_close or framing is Framing.CLOSE
        self._chunked = framing is Framing.CHUNKED

    @staticmethod
    def _static_body(body: Body | None) -> bytes | None:
        if body is None:
            return None
        if body.data is not None:
            return body.data
        return filler(body.size or 0)

    @property
    def closes(self) -> bool:
        """The profile's headers say `connection: close`: FIN after this response."""
        return self._closes

    def closes_after(self, request: Request | None) -> bool:
        """FIN after this response to `request`: `closes`, or chunked framing asked of an
        HTTP/1.0 request, which is sent without a length (the close ends the body)."""
        if self._closes:
            return True
        return self._chunked and request is not None and request.http_version != "1.1"

    def render(
        self,
        request: Request | None,
        conn_id: int,
        close: bool,
        head_only: bool = False,
    ) -> bytes:
        """The whole response. `close`: the connection ends after it (say so, unless silent)."""
        if (
            self._cacheable
            and not close
            and not head_only
            and (request is None or request.http_version == "1.1")
        ):
            date = _DATE.get()
            if _DATE.second != self._cache_second:
                self._cache_second = _DATE.second
                self._cache = self._encode(self._body, date, close=False, head_only=False, v10=False)  # type: ignore[arg-type]
            return self._cache
        body = self._body if self._body is not None else self._echo(request, conn_id)
        v10 = request is not None and request.http_version != "1.1"
        return self._encode(body, _DATE.get(), close, head_only, v10, request)

    def _encode(
        self,
        body: bytes,
        date: bytes,
        close: bool,
        head_only: bool,
        v10: bool,
        request: Request | None = None,
    ) -> bytes:
        framing = self.response.framing
        if framing is Framing.CHUNKED and v10:
            framing = Framing.CLOSE  # HTTP/1.0 has no chunked encoding
        close = close or framing is Framing.CLOSE or self._user_close
        parts = [self._status_line, b"" if self._user_date else date, self._headers]
        if self._no_body:
            body = b""
        elif framing is Framing.LENGTH and not self._user_length:
            parts.append(b"content-length: %d\r\n" % len(body))
        elif framing is Framing.CHUNKED:
            parts.append(b"transfer-encoding: chunked\r\n")
            body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
        if close and not self._user_close:
            parts.append(b"connection: close\r\n")
        elif v10 and not close:
            parts.append(b"connection: keep-alive\r\n")
        parts.append(b"\r\n")
        if not head_only:
            parts.append(body)
        return b"".join(parts)

    def h2_parts(self, request: Request, conn_id: int) -> H2Parts:
        """The response as HTTP/2 sends it: its header list (`:status` first, names in lower
        case, without the headers of HTTP/1.1 connections, which HTTP/2 forbids), its body
        (none for HEAD) and its trailers (a gRPC answer's status, when it is OK). Framing is
        HTTP/2's own: `framing` does not apply."""
        response = self.response
        if response.grpc is not None:
            return self._grpc_parts(response.grpc)
        headers = [(b":status", str(response.status).encode()), (b"date", _DATE.get()[6:-2])]
        names = set()
        for name, value in response.headers:
            lower = name.lower()
            names.add(lower)
            if lower not in _H1_ONLY_HEADERS:
                if lower == "date":
                    headers[1] = (b"date", value.encode("latin-1"))
                else:
                    headers.append((lower.encode("latin-1"), value.encode("latin-1")))
        if response.body is None and "content-type" not in names:
            headers.append((b"content-type", b"application/json"))
        body = b""
        if not self._no_body:
            body = self._body if self._body is not None else self._echo(request, conn_id)
        if not self._user_length and not self._no_body:
            headers.append((b"content-length", str(len(body)).encode()))
        return headers, (b"" if request.method == "HEAD" else body), None

    def _grpc_parts(self, grpc: Grpc) -> H2Parts:
        """A gRPC answer: trailers-only when its status is not OK (what a gRPC server sends
        for an error before any message), else the message and then the status as trailers."""
        headers = [(b":status", b"200"), (b"content-type", b"application/grpc")]
        for name, value in self.response.headers:
            lower = name.lower()
            if lower not in _H1_ONLY_HEADERS and lower not in ("content-type", "content-length"):
                headers.append((lower.encode("latin-1"), value.encode("latin-1")))
        status = _grpc_status(grpc)
        if grpc.status is not GrpcStatus.OK:
            return headers + status, b"", None
        return headers, self._body or _grpc_message(b""), status

    def _echo(self, request: Request | None, conn_id: int) -> bytes:
        if request is None:
            return b"{}\n"
        doc = {
            "method": request.method,
            "path": request.path,
            "target": request.target,
            "headers": {
                k.decode("latin-1"): v.decode("latin-1") for k, v in request.headers
            },
            "body_bytes": len(request.body),
            "listener": self.listener,
            "connection": conn_id,
            "request_on_connection": request.number,
        }
        return json.dumps(doc).encode() + b"\n"


def error_response(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """A small error answer that closes the connection (bad request, limits, X-Fault typos)."""
    body = (json.dumps({"error": message}) + "\n").encode()
    extra = b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in headers)
    return (
        f"HTTP/1.1 {status} {_reason(status)}\r\n".encode()
        + _DATE.get()
        + b"content-type: application/json\r\n"
        + extra
        + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        + body
    )
