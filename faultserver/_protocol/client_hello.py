"""The ClientHello a TLS client sends first, read from bytes with no socket and no TLS library.

Theory of operation. A TLS listener reads the connection's first bytes, keeps them, and calls
`read_client_hello(held)` after each read. The answer is one of:

- `NEED_MORE`: the bytes are the start of a ClientHello; read more (the header clock runs);
- `ClientHello`: the whole hello is there; its SNI and ALPN offer can choose a handshake fault
  (hang, close, reset, garbage, delay) before any TLS library sees a byte, and, with no fault,
  the held bytes go to the TLS library as they came;
- `NotTLS`: the first bytes are not a TLS handshake record (a plaintext HTTP request, an
  SSLv2-format hello, noise), known from the first byte, or at the latest the fifth;
- `MalformedHello`: a TLS handshake record whose ClientHello is broken, is not a ClientHello,
  or is larger than `MAX_CLIENT_HELLO_BYTES`. A TLS library given the same bytes refuses
  them too (with a `decode_error` alert).

Nothing is consumed: the function looks at `data` and returns; the caller keeps the bytes.
It raises nothing for any input (a hypothesis test feeds it noise).

The wire format (RFC 8446 section 5.1 and 4.1.2, RFC 5246 for TLS 1.2): records of
`type(1) version(2) length(2) fragment`, with type 22 (handshake), version 3.x and a
length of at most 2^14; the fragments, joined, hold the handshake message
`msg_type(1)=1 length(3) body`. A ClientHello may span several records (a post-quantum key
share makes a hello of 1.2 KiB or more, and a client may cut records small), so the records
are joined before the body is read; a record of any other type among them is malformed.

Cost. A call while the hello is incomplete looks at record headers only, so feeding a hello
a byte at a time costs one header walk per read. `MAX_HELLO_RECORDS` bounds that walk: a
client that cuts its hello into 1-byte records would otherwise make every read walk
thousands of headers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "HEAD_BYTES",
    "MAX_CLIENT_HELLO_BYTES",
    "MAX_HELLO_RECORDS",
    "NEED_MORE",
    "ClientHello",
    "HelloResult",
    "MalformedHello",
    "NeedMore",
    "NotTLS",
    "read_client_hello",
]

#: The most bytes (records and their headers) a ClientHello may take on the wire: what a
#: connection holds before its handshake. Browsers' hellos take 0.5 to 2 KiB with a
#: post-quantum key share; 64 KiB, the default `max_header_bytes`, leaves room for a hello
#: that spans several full records, and a client cannot make a connection hold more.
MAX_CLIENT_HELLO_BYTES = 64 * 1024
#: The most records a ClientHello may be cut into. Real clients send one, rarely two.
MAX_HELLO_RECORDS = 32
#: How many of the first bytes a `NotTLS` keeps, for the event that reports it.
HEAD_BYTES = 16

_HANDSHAKE = 22  # TLS record content type
_CLIENT_HELLO = 1  # handshake message type
_RECORD_HEADER = 5
_MAX_FRAGMENT = 1 << 14  # a plaintext record's largest fragment (RFC 8446 5.1)
_EXT_SERVER_NAME = 0  # extension types
_EXT_ALPN = 16
_EXT_SUPPORTED_VERSIONS = 43
_HOST_NAME = 0  # server_name's name_type for a DNS host name
_NOT_TLS = "not a TLS handshake record"
_VERSION_NAMES = {0x0300: "3.0", 0x0301: "1.0", 0x0302: "1.1", 0x0303: "1.2", 0x0304: "1.3"}


@dataclass(frozen=True, slots=True)
class ClientHello:
    """What a client's ClientHello offers, as far as choosing a fault needs.

    `sni`: the host name in the server_name extension, as sent (ASCII; any other byte
    escaped as `\\xNN`), None when the client sent none (clients send none for an IP
    address). `alpn`: the protocols offered, in the client's order (`("h2", "http/1.1")`),
    empty without the extension. `legacy_version`: the hello's version field, `"1.2"` for
    every TLS 1.3 client. `supported_versions`: the supported_versions extension in the
    client's order, GREASE values left out, an unknown one as `0x7f1c`; empty without the
    extension (a client that speaks TLS 1.2 at most). `size`: the bytes the hello's records
    take, from the first byte of `data`; what follows them is the client's next flight.
    """

    sni: str | None
    alpn: tuple[str, ...]
    legacy_version: str
    supported_versions: tuple[str, ...]
    size: int


@dataclass(frozen=True, slots=True)
class NotTLS:
    """The first bytes are not a TLS handshake record: another protocol, or noise.

    `reason`: one line for the event (`"not a TLS handshake record"`, `"an SSLv2-format
    ClientHello"`). `head`: the first bytes seen, at most `HEAD_BYTES`, so that the caller
    can tell a plaintext HTTP request (`b"GET / HTTP/1.1\\r\\n"`) and answer it a 400.
    """

    reason: str
    head: bytes


@dataclass(frozen=True, slots=True)
class MalformedHello:
    """TLS handshake records whose ClientHello cannot be read.

    `reason`: one line saying what was expected and what arrived (`"extension 0 cut short:
    40 bytes expected, 12 left"`, `"a ClientHello larger than 65536 bytes"`).
    """

    reason: str


class NeedMore(enum.Enum):
    """The bytes so far are the start of a ClientHello: read more, then call again."""

    NEED_MORE = "need more"


NEED_MORE = NeedMore.NEED_MORE
#: What `read_client_hello` answers.
HelloResult = ClientHello | NotTLS | MalformedHello | NeedMore


class _Malformed(Exception):
    """Raised inside the body reader only; `read_client_hello` returns it as a `MalformedHello`."""


def read_client_hello(data: bytes | bytearray) -> HelloResult:
    """Read the ClientHello at the start of `data`, which stays the caller's; never raises.

    `NEED_MORE` only while `data` is shorter than `MAX_CLIENT_HELLO_BYTES`: a caller that
    reads until it gets something else holds at most that many bytes, plus its last read.
    """
    first = _first_record(data)
    if first is not None:
        return first
    fragments: list[tuple[int, int]] = []  # where each record's fragment lies in `data`
    position = fragment_bytes = 0
    message_bytes = -1  # the handshake message's length with its 4-byte header, once known
    available = len(data)
    while True:
        if position + _RECORD_HEADER > MAX_CLIENT_HELLO_BYTES:
            return _too_large()
        if position + _RECORD_HEADER > available:
            return NEED_MORE
        length = int.from_bytes(data[position + 3 : position + 5], "big")
        if data[position] != _HANDSHAKE or data[position + 1] != 3 or not 0 < length <= _MAX_FRAGMENT:
            header = bytes(data[position : position + _RECORD_HEADER]).hex(" ")
            return MalformedHello(
                f"a record header {header} inside the ClientHello, expected another handshake record"
            )
        if len(fragments) == MAX_HELLO_RECORDS:
            return MalformedHello(f"a ClientHello cut into more than {MAX_HELLO_RECORDS} records")
        start, stop = position + _RECORD_HEADER, position + _RECORD_HEADER + length
        fragments.append((start, min(stop, available)))
        if message_bytes < 0:
            head = _joined(data, fragments, 4)
            if head and head[0] != _CLIENT_HELLO:
                return MalformedHello(f"a handshake message of type {head[0]}, expected a ClientHello (1)")
            if len(head) == 4:
                message_bytes = 4 + int.from_bytes(head[1:4], "big")
        if stop > MAX_CLIENT_HELLO_BYTES or message_bytes > MAX_CLIENT_HELLO_BYTES:
            return _too_large()
        if stop > available:
            return NEED_MORE
        position, fragment_bytes = stop, fragment_bytes + length
        if 0 <= message_bytes <= fragment_bytes:
            break
    message = _joined(data, fragments, message_bytes)
    try:
        return _read_body(message[4:], position)
    except _Malformed as exc:
        return MalformedHello(str(exc))


# --- helpers --------------------------------------------------------------------------


def _first_record(data: bytes | bytearray) -> NotTLS | NeedMore | None:
    """`NotTLS` as soon as a byte of the first record's header shows it is not TLS's."""
    available = len(data)
    if available == 0:
        return NEED_MORE
    if data[0] != _HANDSHAKE:
        if data[0] & 0x80 and available >= 3 and data[2] == _CLIENT_HELLO:
            return NotTLS("an SSLv2-format ClientHello", bytes(data[:HEAD_BYTES]))
        return NotTLS(_NOT_TLS, bytes(data[:HEAD_BYTES]))
    if (available >= 2 and data[1] != 3) or (available >= 3 and data[2] > 4):
        return NotTLS(_NOT_TLS, bytes(data[:HEAD_BYTES]))
    if available < _RECORD_HEADER:
        return NEED_MORE
    length = int.from_bytes(data[3:5], "big")
    if not 0 < length <= _MAX_FRAGMENT:
        reason = f"a TLS record of {length} bytes, expected 1 to {_MAX_FRAGMENT}"
        return NotTLS(reason, bytes(data[:HEAD_BYTES]))
    return None


def _too_large() -> MalformedHello:
    return MalformedHello(f"a ClientHello larger than {MAX_CLIENT_HELLO_BYTES} bytes")


def _joined(data: bytes | bytearray, fragments: list[tuple[int, int]], size: int) -> bytes:
    """The first `size` bytes of the fragments, joined (fewer when fewer are there)."""
    if len(fragments) == 1:
        start, stop = fragments[0]
        return bytes(data[start : min(stop, start + size)])
    return b"".join(data[start:stop] for start, stop in fragments)[:size]


class _Reader:
    """A cursor over one length-checked piece of the hello; `_Malformed` when it runs short."""

    __slots__ = ("_data", "_position")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._position = 0

    def remaining(self) -> int:
        return len(self._data) - self._position

    def number(self, size: int, what: str) -> int:
        return int.from_bytes(self.take(size, what), "big")

    def take(self, size: int, what: str) -> bytes:
        if size > self.remaining():
            raise _Malformed(f"{what} cut short: {size} bytes expected, {self.remaining()} left")
        start = self._position
        self._position += size
        return self._data[start : self._position]

    def vector(self, length_size: int, what: str) -> bytes:
        """A vector with a length prefix of `length_size` bytes (RFC 8446 3.4)."""
        return self.take(self.number(length_size, f"length of {what}"), what)


def _read_body(body: bytes, size: int) -> ClientHello:
    hello = _Reader(body)
    legacy_version = _version_name(hello.number(2, "ClientHello version"))
    hello.take(32, "ClientHello random")
    if len(hello.vector(1, "session id")) > 32:
        raise _Malformed("a session id longer than 32 bytes")
    suites = hello.vector(2, "cipher suites")
    if not suites or len(suites) % 2:
        raise _Malformed(f"cipher suites of {len(suites)} bytes, expected an even number above 0")
    if not hello.vector(1, "compression methods"):
        raise _Malformed("no compression method, expected at least null (0)")
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    versions: tuple[str, ...] = ()
    if not hello.remaining():  # a hello without extensions (TLS 1.2 allows it)
        return ClientHello(sni, alpn, legacy_version, versions, size)
    extensions = _Reader(hello.vector(2, "extensions"))
    if hello.remaining():
        raise _Malformed(f"{hello.remaining()} bytes after the extensions, expected none")
    seen: set[int] = set()
    while extensions.remaining():
        kind = extensions.number(2, "extension type")
        content = extensions.vector(2, f"extension {kind}")
        if kind in seen:
            raise _Malformed(f"extension {kind} sent twice")
        seen.add(kind)
        if kind == _EXT_SERVER_NAME:
            sni = _server_name(content)
        elif kind == _EXT_ALPN:
            alpn = _alpn(content)
        elif kind == _EXT_SUPPORTED_VERSIONS:
            versions = _supported_versions(content)
    return ClientHello(sni, alpn, legacy_version, versions, size)


def _whole(content: bytes, length_size: int, what: str) -> _Reader:
    """The one vector `content` must be exactly (an extension's own length prefix)."""
    outer = _Reader(content)
    inner = outer.vector(length_size, what)
    if outer.remaining():
        raise _Malformed(f"{outer.remaining()} bytes after the {what}, expected none")
    if not inner:
        raise _Malformed(f"an empty {what}")
    return _Reader(inner)


def _server_name(content: bytes) -> str | None:
    """The first host_name of a server_name extension (RFC 6066 section 3)."""
    names = _whole(content, 2, "server name list")
    host: str | None = None
    while names.remaining():
        name_type = names.number(1, "server name type")
        name = names.vector(2, "server name")
        if name_type == _HOST_NAME and host is None:
            host = name.decode("ascii", "backslashreplace")
    return host


def _alpn(content: bytes) -> tuple[str, ...]:
    """The protocol names of an ALPN offer (RFC 7301 section 3.1), in the client's order."""
    names = _whole(content, 2, "ALPN protocol list")
    offered: list[str] = []
    while names.remaining():
        name = names.vector(1, "ALPN protocol name")
        if not name:
            raise _Malformed("an empty ALPN protocol name")
        offered.append(name.decode("ascii", "backslashreplace"))
    return tuple(offered)


def _supported_versions(content: bytes) -> tuple[str, ...]:
    """The versions of a ClientHello's supported_versions extension (RFC 8446 4.2.1)."""
    versions = _whole(content, 1, "supported versions")
    if versions.remaining() % 2:
        raise _Malformed(f"supported versions of {versions.remaining()} bytes, expected an even number")
    offered: list[str] = []
    while versions.remaining():
        version = versions.number(2, "supported version")
        if version & 0x0F0F != 0x0A0A or version >> 8 != version & 0xFF:  # GREASE: 0x?A?A, both bytes alike
            offered.append(_version_name(version))
    return tuple(offered)


def _version_name(version: int) -> str:
    return _VERSION_NAMES.get(version) or f"0x{version:04x}"
