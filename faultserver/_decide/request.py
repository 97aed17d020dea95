"""What the data plane hands to the deciding code: one request, its head and (once read) its body."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

__all__ = ["Request"]

_EMPTY_BODY_HASH = hashlib.blake2b(b"", digest_size=8).hexdigest()
#: The body part of a fingerprint when the body was never read (an `Expect: 100-continue`
#: request that met a fault before its body was asked for).
UNREAD_BODY = "-"
#: In a fingerprint, a longer path or request id is its start, `...#` and a hash of the whole:
#: the fingerprint stays short enough for the event log to keep whole (a 60 KB path does not
#: make a 60 KB fingerprint), and two long paths that differ only after the cut still differ.
FINGERPRINT_PATH_CHARS = 600
FINGERPRINT_ID_CHARS = 200


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    digest = hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()
    return f"{text[: limit - 20]}...#{digest}"


@dataclass(slots=True)
class Request:
    """A parsed request. Header names are lower-case bytes, in arrival order.

    The reader builds it when the head is complete and fills `body` when the message ends;
    `body_read` stays False for a request answered before its body was asked for.
    """

    method: str
    target: str
    path: str
    headers: list[tuple[bytes, bytes]]
    body: bytes | bytearray = b""
    http_version: str = "1.1"
    keep_alive: bool = True
    #: 1 for the first request on its connection
    number: int = 1
    body_read: bool = True
    #: the HTTP/2 stream it came on (0: HTTP/1.x)
    stream_id: int = 0
    _header_map: dict[str, list[str]] | None = field(default=None, repr=False)

    def header_values(self, name: str) -> list[str]:
        """All values of header `name` (lower case), decoded as latin-1."""
        if self._header_map is None:
            m: dict[str, list[str]] = {}
            for k, v in self.headers:
                m.setdefault(k.decode("latin-1"), []).append(v.decode("latin-1"))
            self._header_map = m
        return self._header_map.get(name, [])

    def header(self, name: bytes) -> bytes | None:
        """The first value of header `name` (lower-case bytes), or None; cheap, no decoding."""
        for k, v in self.headers:
            if k == name:
                return v
        return None

    @property
    def head_key(self) -> str:
        """Method, path and X-Request-Id: the fingerprint less its body hash."""
        rid = self.header(b"x-request-id")
        return f"{self.method} {_shorten(self.path, FINGERPRINT_PATH_CHARS)}{_id_tail(rid)}"

    @property
    def fingerprint(self) -> str:
        """Same method, path, body and X-Request-Id: the same request sent again."""
        if not self.body_read:
            body_hash = UNREAD_BODY
        elif self.body:
            body_hash = hashlib.blake2b(self.body, digest_size=8).hexdigest()
        else:
            body_hash = _EMPTY_BODY_HASH
        path = self.path
        if len(path) > FINGERPRINT_PATH_CHARS:
            path = _shorten(path, FINGERPRINT_PATH_CHARS)
        rid = self.header(b"x-request-id")
        if rid is None:
            return f"{self.method} {path} {body_hash}"
        return f"{self.method} {path} {body_hash}{_id_tail(rid)}"


def _id_tail(rid: bytes | None) -> str:
    """The X-Request-Id part of a fingerprint: a space and the id (shortened), or nothing."""
    return f" {_shorten(rid.decode('latin-1'), FINGERPRINT_ID_CHARS)}" if rid else ""
