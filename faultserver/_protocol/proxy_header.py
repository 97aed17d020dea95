"""The PROXY protocol header a load balancer puts before a connection's first byte, read from
bytes with no socket: HAProxy's `send-proxy` (v1, a text line) and `send-proxy-v2` (v2, binary),
nginx's `proxy_protocol on`, cloud load balancers. The spec:
https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt

Theory of operation. The connection loop calls `read_proxy_header(data, expect)` with every byte
read so far, before any other protocol sees them, until the answer is not `NEED_MORE`:

- a `ProxyHeader`: `data[:header.size]` was the header; the rest belongs to the next protocol;
- a `ProxyHeaderError`: close the connection and report its `reason`;
- `None`: no header was expected (`none`), or `optional` and the data does not start with
  either signature: nothing was consumed, the data is the next protocol's.

If the peer ends, or the caller's clock runs out (the spec suggests at least 3 s), while the
answer is still `NEED_MORE`, the header is `MISSING` when no byte came and `TRUNCATED` after
some: those two words are the caller's to report, named here so every reason comes from here.

Decide early. Senders write the header at once (it is smaller than one TCP segment), so a
reader that waits for bytes that cannot make a valid header only delays the error. A byte that
leaves the data no longer a prefix of either signature decides at once (`GET /` to a `v1`
listener is `missing` after `G`); a v1 line fails at its first byte that no valid line has
there (a bare CR or LF, an unknown protocol, a letter among the addresses); a v2 header fails
at byte 13, 14 or 16 when its version, command, family or length is wrong. Only a header that
can still become valid waits.

The result is the same for any split of the same bytes, and no input raises.
"""

from __future__ import annotations

import enum
import re
import socket
from dataclasses import dataclass
from typing import Final, Literal

from .._address import format_hostport

__all__ = [
    "MAX_V1_BYTES",
    "MAX_V2_BYTES",
    "MISSING",
    "NEED_MORE",
    "TRUNCATED",
    "NeedMore",
    "ProxyHeader",
    "ProxyHeaderError",
    "ProxyVersion",
    "read_proxy_header",
]


class ProxyVersion(str, enum.Enum):
    """What a listener expects before a connection's first byte (the profile's `proxy_protocol`).

    `v1` and `v2` are strict: the other version's header is an error
    (`version 2 header where v1 is expected`), although HAProxy's `accept-proxy` and nginx's
    `proxy_protocol` take either. The profile names a version to stand for a backend that
    speaks only that one (Postfix before 3.5 reads v1 only; AWS's NLB sends v2 only, its
    classic ELB v1 only), so that a gateway set to send the other is caught in a test rather
    than in production. `optional` reads either version or none: it is what the spec forbids a
    real receiver to do (anyone could then claim any address), and what a test needs when
    health checks or a client come without a header beside a gateway that sends one.
    """

    NONE = "none"
    V1 = "v1"
    V2 = "v2"
    OPTIONAL = "optional"


#: The longest v1 line, CRLF included: `PROXY UNKNOWN` with two full IPv6 addresses and ports
#: (the spec's worst case). A line without CRLF within it is `too long`.
MAX_V1_BYTES: Final = 107
#: The longest v2 header read: 16 bytes, 216 of AF_UNIX addresses (the longest) and about
#: 1800 of TLVs. The spec allows 16 + 65535, but says the header fits in one TCP segment, and
#: the TLVs real senders add are short: HAProxy's longest are the authority (at most 255 bytes,
#: its own limit as a receiver) and the unique id (at most 128); AWS's VPC endpoint TLV is
#: under 30. The cap decides `too long` at byte 16, from the announced length, instead of holding
#: up to 64 KiB per connection waiting for it. HAProxy as a receiver takes up to its buffer
#: (`tune.bufsize`, 16 KiB): a header between 2 and 16 KiB passes there and fails here.
MAX_V2_BYTES: Final = 16 + 2048

#: The reason when no byte came before the peer ended or the clock ran out, or when the
#: first bytes cannot start a header.
MISSING: Final = "missing"
#: The reason, for the caller, when the peer ended or the clock ran out within a header.
TRUNCATED: Final = "truncated"
_V1_WHERE_V2 = "version 1 header where v2 is expected"
_V2_WHERE_V1 = "version 2 header where v1 is expected"

_V1_SIGNATURE = b"PROXY"
_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_V1_PROTOCOLS = (b"TCP4", b"TCP6", b"UNKNOWN")
#: Bytes that may follow `PROXY TCP4 ` or `PROXY TCP6 ` before the CRLF.
_V1_ADDRESS_BYTES = b"0123456789abcdefABCDEF:. "
_V1_PORT = re.compile(rb"0|[1-9][0-9]{0,4}")
_OCTET = rb"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
#: Four decimal octets without leading zeros, as the spec writes them (no `010.1.1.1`).
_V1_IPV4 = re.compile(rb"(?:%s\.){3}%s" % (_OCTET, _OCTET))

_LOCAL, _PROXY = 0x0, 0x1
#: The v2 family-and-protocol bytes the spec defines, with the length of their addresses:
#: UNSPEC, TCP and UDP over IPv4 and IPv6, UNIX stream and datagram. Others are refused.
_V2_ADDRESS_BYTES: Final = {0x00: 0, 0x11: 12, 0x12: 12, 0x21: 36, 0x22: 36, 0x31: 216, 0x32: 216}
_V2_FAMILY_NAMES: Final = {0x1: "IPv4", 0x2: "IPv6", 0x3: "UNIX"}
_TLV_CRC32C = 0x03


class NeedMore(enum.Enum):
    """The type of `NEED_MORE`: the header may still be valid, read more and ask again."""

    NEED_MORE = "need more"


NEED_MORE: Final = NeedMore.NEED_MORE


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A valid PROXY protocol header.

    `version` is 1 or 2. `command` is `PROXY` (the addresses are the client's connection to
    the sender), `LOCAL` (v2: the sender's own connection, a health check) or `UNKNOWN` (v1:
    the sender could not say). `source` is the original client as `host:port` (`[::1]:4711`
    for IPv6) and `destination` the address the client connected to; both are None when the
    header names no IP address (LOCAL, UNKNOWN, a v2 UNSPEC or UNIX family), and the real
    peer stands. `size` is how many bytes the header took at the start of the data.
    """

    version: Literal[1, 2]
    command: Literal["PROXY", "LOCAL", "UNKNOWN"]
    source: str | None
    destination: str | None
    size: int


@dataclass(frozen=True, slots=True)
class ProxyHeaderError:
    """Why the data cannot start with the header expected: returned, not raised, since a bad
    header is the peer's everyday behaviour and the connection's event, not our bug.

    `reason` is one of `missing`, `version 1 header where v2 is expected`, `version 2 header
    where v1 is expected`, `too long: ...` or `malformed: ...`; `kind` is its part before
    the colon, a closed set for counting.
    """

    reason: str

    @property
    def kind(self) -> str:
        return self.reason.partition(":")[0]


_MISSING_ERROR: Final = ProxyHeaderError(MISSING)


def read_proxy_header(
    data: bytes | bytearray, expect: ProxyVersion
) -> ProxyHeader | ProxyHeaderError | NeedMore | None:
    """The PROXY header at the start of `data` (all bytes read so far), an error, `NEED_MORE`,
    or None when no header is there to read (`none`, or `optional` and plain traffic)."""
    if expect is ProxyVersion.NONE:
        return None
    n = len(data)
    if n == 0:
        return NEED_MORE
    if _V1_SIGNATURE.startswith(data[:5]):
        if n < 5:
            return NEED_MORE
        if expect is ProxyVersion.V2:
            return ProxyHeaderError(_V1_WHERE_V2)
        return _read_v1(data)
    if _V2_SIGNATURE.startswith(data[:12]):
        if n < 12:
            return NEED_MORE
        if expect is ProxyVersion.V1:
            return ProxyHeaderError(_V2_WHERE_V1)
        return _read_v2(data)
    return None if expect is ProxyVersion.OPTIONAL else _MISSING_ERROR


def _malformed(problem: str) -> ProxyHeaderError:
    return ProxyHeaderError(f"malformed: {problem}")


def _show(raw: bytes | bytearray) -> str:
    """Bytes from the wire for a message: `'TCP5'`, `'\\t'`, `'\\xc3'`."""
    return repr(bytes(raw))[1:]


# --- version 1: `PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n` ---


def _read_v1(data: bytes | bytearray) -> ProxyHeader | ProxyHeaderError | NeedMore:
    end = data.find(b"\r\n", 0, MAX_V1_BYTES)
    complete = end >= 0
    line = bytes(data[:end] if complete else data[:MAX_V1_BYTES])
    problem = _v1_problem(line, complete)
    if problem is not None:
        return _malformed(problem)
    if complete:
        return _parse_v1_line(line, end + 2)
    if len(data) >= MAX_V1_BYTES:
        return ProxyHeaderError(f"too long: no CRLF in the first {MAX_V1_BYTES} bytes of a v1 line")
    return NEED_MORE


def _v1_problem(line: bytes, complete: bool) -> str | None:
    """The first byte of a v1 line (without its CRLF), or of its start, that no valid line has
    there, said at that byte: the reason is then the same however the bytes arrived."""
    text = line if complete or not line.endswith(b"\r") else line[:-1]  # a CR may begin the CRLF
    stray = min((i for i in (text.find(b"\r"), text.find(b"\n")) if i >= 0), default=-1)
    if stray >= 0:
        text = text[:stray]
    ended = complete and stray < 0  # the line ends where `text` ends
    if len(text) > 5 and text[5] != 0x20:
        return f"a v1 line has {_show(text[5:6])} after 'PROXY', expected a space"
    if ended and len(text) <= 6:
        return "a v1 line ends before its protocol"
    protocol, space, rest = text[6:].partition(b" ")
    if not any(known.startswith(protocol) for known in _V1_PROTOCOLS):
        bad = max(_matching_bytes(protocol, known) for known in _V1_PROTOCOLS)  # the first wrong byte
        return f"v1 protocol {_show(protocol[: bad + 1])}... is not TCP4, TCP6 or UNKNOWN"
    if (space or ended) and protocol not in _V1_PROTOCOLS:
        return f"v1 protocol {_show(protocol)} is not TCP4, TCP6 or UNKNOWN"
    if protocol != b"UNKNOWN" and (bad_bytes := rest.translate(None, _V1_ADDRESS_BYTES)):
        return f"a v1 {protocol.decode()} line has {_show(bad_bytes[:1])} among its addresses and ports"
    if stray >= 0:
        return "a v1 line has a CR or LF before its CRLF"
    return None


def _matching_bytes(a: bytes, b: bytes) -> int:
    same = 0
    while same < len(a) and same < len(b) and a[same] == b[same]:
        same += 1
    return same


def _parse_v1_line(line: bytes, size: int) -> ProxyHeader | ProxyHeaderError:
    """A complete v1 line (`line` without its CRLF) in which `_v1_problem` found nothing."""
    fields = line.split(b" ")
    protocol = fields[1]
    if protocol == b"UNKNOWN":  # the spec: ignore whatever follows, up to the CRLF
        return ProxyHeader(1, "UNKNOWN", None, None, size)
    if len(fields) != 6:
        return _malformed(
            f"a v1 {protocol.decode()} line has {len(fields) - 2} fields after the protocol, expected 4 "
            "(source and destination address, source and destination port, one space apart)"
        )
    family = socket.AF_INET if protocol == b"TCP4" else socket.AF_INET6
    source = _v1_address(family, fields[2])
    if source is None:
        return _malformed(_v1_address_problem("source", family, fields[2]))
    destination = _v1_address(family, fields[3])
    if destination is None:
        return _malformed(_v1_address_problem("destination", family, fields[3]))
    source_port = _v1_port(fields[4])
    if source_port is None:
        return _malformed(_v1_port_problem("source", fields[4]))
    destination_port = _v1_port(fields[5])
    if destination_port is None:
        return _malformed(_v1_port_problem("destination", fields[5]))
    return ProxyHeader(
        1, "PROXY", format_hostport(source, source_port), format_hostport(destination, destination_port), size
    )


def _v1_address_problem(which: str, family: socket.AddressFamily, raw: bytes) -> str:
    if family == socket.AF_INET:
        return f"v1 {which} address {_show(raw)} is not an IPv4 address (0 to 255, no leading zeros, 4 times)"
    return f"v1 {which} address {_show(raw)} is not an IPv6 address"


def _v1_port_problem(which: str, raw: bytes) -> str:
    return f"v1 {which} port {_show(raw)} is not a port from 0 to 65535 (written without leading zeros)"


def _v1_address(family: socket.AddressFamily, raw: bytes) -> str | None:
    """The address, normalised as the kernel writes a peer's (`::1`, not `0:0:...:1`)."""
    if family == socket.AF_INET:
        return raw.decode("ascii") if _V1_IPV4.fullmatch(raw) else None
    if raw.translate(None, b"0123456789abcdefABCDEF:.") or len(raw) > 45:
        return None
    try:
        return socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, raw.decode("ascii")))
    except (OSError, ValueError):
        return None


def _v1_port(raw: bytes) -> int | None:
    if not _V1_PORT.fullmatch(raw):
        return None
    port = int(raw)
    return port if port <= 65535 else None


# --- version 2: 12-byte signature, version and command, family, length, addresses, TLVs ---


def _read_v2(data: bytes | bytearray) -> ProxyHeader | ProxyHeaderError | NeedMore:
    n = len(data)
    if n < 13:
        return NEED_MORE
    version, command = data[12] >> 4, data[12] & 0xF
    if version != 2:
        return _malformed(f"v2 header version {version}, expected 2")
    if command not in (_LOCAL, _PROXY):
        return _malformed(f"v2 command 0x{command:X} is neither LOCAL (0x0) nor PROXY (0x1)")
    if n < 14:
        return NEED_MORE
    family = data[13]
    address_bytes = _V2_ADDRESS_BYTES.get(family)
    if command == _PROXY and address_bytes is None:  # LOCAL: the spec says ignore the family
        return _malformed(f"v2 address family and protocol 0x{family:02X} are not defined")
    if n < 16:
        return NEED_MORE
    length = (data[14] << 8) | data[15]
    size = 16 + length
    if size > MAX_V2_BYTES:
        return ProxyHeaderError(f"too long: a v2 header of {size} bytes, at most {MAX_V2_BYTES} are read")
    if command == _LOCAL:
        return NEED_MORE if n < size else ProxyHeader(2, "LOCAL", None, None, size)
    assert address_bytes is not None  # for mypy: a PROXY header's family was checked above
    if length < address_bytes:
        name = _V2_FAMILY_NAMES.get(family >> 4, "UNSPEC")
        return _malformed(f"v2 {name} header has {length} bytes of addresses, needs {address_bytes}")
    if n < size:
        return NEED_MORE
    if family >> 4 != 0 and (problem := _tlv_problem(data, 16 + address_bytes, size)) is not None:
        return _malformed(problem)
    source: str | None
    destination: str | None
    if address_bytes == 12:
        source = _v2_address(socket.AF_INET, data, 16, 24)
        destination = _v2_address(socket.AF_INET, data, 20, 26)
    elif address_bytes == 36:
        source = _v2_address(socket.AF_INET6, data, 16, 48)
        destination = _v2_address(socket.AF_INET6, data, 32, 50)
    else:  # UNSPEC or UNIX: no IP address to tell, the real peer stands
        source = destination = None
    return ProxyHeader(2, "PROXY", source, destination, size)


def _v2_address(family: socket.AddressFamily, data: bytes | bytearray, at: int, port_at: int) -> str:
    width = 4 if family == socket.AF_INET else 16
    host = socket.inet_ntop(family, bytes(data[at : at + width]))
    return format_hostport(host, (data[port_at] << 8) | data[port_at + 1])


def _tlv_problem(data: bytes | bytearray, start: int, size: int) -> str | None:
    """What is wrong with the TLVs between `start` and `size`, if anything: each must end
    within the header, and a CRC32C TLV must hold the header's checksum (as HAProxy checks)."""
    at = start
    crc_at = -1
    while at < size:
        if at + 3 > size:
            return f"v2 header ends {size - at} bytes into a TLV's 3-byte type and length"
        kind, length = data[at], (data[at + 1] << 8) | data[at + 2]
        if at + 3 + length > size:
            return f"v2 TLV 0x{kind:02X} at byte {at} has {length} bytes, past the header's end ({size})"
        if kind == _TLV_CRC32C:
            if length != 4:
                return f"v2 CRC32C TLV has {length} bytes, expected 4"
            crc_at = at + 3
        at += 3 + length
    if crc_at >= 0:
        header = bytes(data[:size])
        sent = int.from_bytes(header[crc_at : crc_at + 4], "big")
        computed = _crc32c(header[:crc_at] + b"\0\0\0\0" + header[crc_at + 4 :])
        if sent != computed:
            return f"v2 CRC32C TLV says 0x{sent:08X}, the header's checksum is 0x{computed:08X}"
    return None


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE: Final = _crc32c_table()


def _crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the v2 checksum TLV's: a table per byte, as the header is short."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
