"""`read_proxy_header` without sockets: the spec's examples, every reason pinned, the bytes fed
one at a time, and a fuzz; then against the bytes a real HAProxy sends (the last section starts
one, in front of sockets this test owns, and skips when HAProxy is not installed)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faultserver._address import format_hostport
from faultserver._protocol.proxy_header import (
    MAX_V1_BYTES,
    MAX_V2_BYTES,
    MISSING,
    NEED_MORE,
    NeedMore,
    ProxyHeader,
    ProxyHeaderError,
    ProxyVersion,
    _crc32c,
    read_proxy_header,
)
from tests.support.net import ipv6_available
from tests.support.wait import LONG_S

V1, V2, OPTIONAL, NONE = ProxyVersion.V1, ProxyVersion.V2, ProxyVersion.OPTIONAL, ProxyVersion.NONE
EXPECTING = (V1, V2, OPTIONAL)
GET = b"GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n"
SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"

# Captured from HAProxy 2.6.12 (Debian 12) by the tests at the end of this file, each before
# the client's `ping\n`; the ports are the ones of that run.
#: `server s1 127.0.0.1:PORT send-proxy`, client 127.0.0.1:51074 to frontend 127.0.0.1:57963
HAPROXY_V1 = bytes.fromhex(
    "50524f58592054435034203132372e302e302e31203132372e302e302e312035313037342035373936330d0a"
)
#: `send-proxy` through a frontend on [::1]
HAPROXY_V1_IPV6 = bytes.fromhex("50524f58592054435036203a3a31203a3a312033343339322033333738350d0a")
#: `send-proxy-v2`, client 127.0.0.1:40590 to frontend 127.0.0.1:45101
HAPROXY_V2 = bytes.fromhex("0d0a0d0a000d0a515549540a2111000c7f0000017f0000019e8eb02d")
#: `send-proxy-v2 proxy-v2-options unique-id,authority,crc32c` (no authority without TLS):
#: a CRC32C TLV and a 46-byte unique id
HAPROXY_V2_TLVS = bytes.fromhex(
    "0d0a0d0a000d0a515549540a211100447f0000017f000001c6cc83c3030004a6d1de5505002e374630303030"
    "30313a433643435f37463030303030313a383343335f36423132393636455f303030323a30363937"
)
#: `send-proxy-v2` from a health check (`check`), or for a client of a unix-socket frontend
HAPROXY_V2_LOCAL = bytes.fromhex("0d0a0d0a000d0a515549540a20000000")
#: `send-proxy` for a client of a unix-socket frontend
HAPROXY_V1_UNKNOWN = b"PROXY UNKNOWN\r\n"


def v2(
    command: int = 0x1, family: int = 0x11, body: bytes = b"", version: int = 2, length: int | None = None
) -> bytes:
    """A v2 header: signature, version and command, family, length (of `body` unless given)."""
    size = len(body) if length is None else length
    return SIGNATURE + bytes([version << 4 | command, family]) + size.to_bytes(2, "big") + body


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + len(value).to_bytes(2, "big") + value


def with_crc(header: bytes) -> bytes:
    """`header`, ending in a CRC32C TLV of zeros, with that TLV holding the header's checksum."""
    assert header.endswith(b"\x03\x00\x04\x00\x00\x00\x00")
    return header[:-4] + _crc32c(header).to_bytes(4, "big")


IPV4_BODY = bytes([192, 168, 0, 1, 192, 168, 0, 11]) + (56324).to_bytes(2, "big") + (443).to_bytes(2, "big")
IPV6_BODY = (
    bytes.fromhex("20010db8000000000000000000000001")
    + bytes.fromhex("20010db8000000000000000000000002")
    + (56324).to_bytes(2, "big")
    + (443).to_bytes(2, "big")
)
SPEC_V1 = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
LONGEST_TCP6 = b"PROXY TCP6 " + b"ffff:" * 7 + b"ffff " + b"FFFF:" * 7 + b"FFFF 65535 65535\r\n"
LONGEST_UNKNOWN = b"PROXY UNKNOWN " + b"ffff:" * 7 + b"ffff " + b"ffff:" * 7 + b"ffff 65535 65535\r\n"
FFFF = format_hostport(":".join(["ffff"] * 8), 65535)


def ok(
    name: str,
    data: bytes,
    version: int,
    command: str,
    source: str | None = None,
    destination: str | None = None,
) -> tuple[str, bytes, ProxyHeader]:
    """A valid header: its name, its bytes, and what it reads as (taking all its bytes)."""
    return (name, data, ProxyHeader(version, command, source, destination, len(data)))  # type: ignore[arg-type]


IP4 = ("192.168.0.1:56324", "192.168.0.11:443")
IP6 = ("[2001:db8::1]:56324", "[2001:db8::2]:443")
UNIX_BODY = b"/a".ljust(108, b"\0") * 2
SOME_TLVS = tlv(0x04, b"") + tlv(0x05, b"id-1") + tlv(0xE0, b"\0" * 300)
CRC_TLVS = tlv(0x02, b"example.com") + tlv(0x03, b"\0" * 4)

#: Valid headers and what they read as.
VALID: list[tuple[str, bytes, ProxyHeader]] = [
    ok("spec v1", SPEC_V1, 1, "PROXY", *IP4),
    ok("longest TCP6", LONGEST_TCP6, 1, "PROXY", FFFF, FFFF),
    ok("longest UNKNOWN", LONGEST_UNKNOWN, 1, "UNKNOWN"),
    ok("short UNKNOWN", b"PROXY UNKNOWN\r\n", 1, "UNKNOWN"),
    ok("UNKNOWN with anything", b"PROXY UNKNOWN \xff\x00?\r\n", 1, "UNKNOWN"),
    ok(
        "v1 extremes",
        b"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n",
        1,
        "PROXY",
        "0.0.0.0:0",
        "255.255.255.255:65535",
    ),
    ok(
        "v1 IPv6 normalised",
        b"PROXY TCP6 0:0:0:0:0:0:0:1 2001:DB8::0:1 1 2\r\n",
        1,
        "PROXY",
        "[::1]:1",
        "[2001:db8::1]:2",
    ),
    ok(
        "v1 IPv4-mapped",
        b"PROXY TCP6 ::ffff:10.0.0.1 ::1 1 2\r\n",
        1,
        "PROXY",
        "[::ffff:10.0.0.1]:1",
        "[::1]:2",
    ),
    ok("v2 TCP4", v2(body=IPV4_BODY), 2, "PROXY", *IP4),
    ok("v2 UDP4", v2(family=0x12, body=IPV4_BODY), 2, "PROXY", *IP4),
    ok("v2 TCP6", v2(family=0x21, body=IPV6_BODY), 2, "PROXY", *IP6),
    ok("v2 UDP6", v2(family=0x22, body=IPV6_BODY), 2, "PROXY", *IP6),
    ok("v2 UNSPEC", v2(family=0x00), 2, "PROXY"),
    ok("v2 UNSPEC with bytes", v2(family=0x00, body=b"\xff" * 7), 2, "PROXY"),
    ok("v2 UNIX", v2(family=0x31, body=UNIX_BODY), 2, "PROXY"),
    ok("v2 UNIX datagram with TLV", v2(family=0x32, body=UNIX_BODY + tlv(4, b"")), 2, "PROXY"),
    ok("v2 LOCAL", v2(command=0x0, family=0x00), 2, "LOCAL"),
    ok("v2 LOCAL skips its length", v2(command=0x0, family=0x11, body=IPV4_BODY), 2, "LOCAL"),
    ok("v2 LOCAL ignores its family", v2(command=0x0, family=0xFF, body=b"?"), 2, "LOCAL"),
    ok("v2 TLVs skipped", v2(body=IPV4_BODY + SOME_TLVS), 2, "PROXY", *IP4),
    ok("v2 CRC32C", with_crc(v2(body=IPV4_BODY + CRC_TLVS)), 2, "PROXY", *IP4),
    ok("v2 longest", v2(family=0x00, body=b"\0" * (MAX_V2_BYTES - 16)), 2, "PROXY"),
    ok("HAProxy v1", HAPROXY_V1, 1, "PROXY", "127.0.0.1:51074", "127.0.0.1:57963"),
    ok("HAProxy v1 IPv6", HAPROXY_V1_IPV6, 1, "PROXY", "[::1]:34392", "[::1]:33785"),
    ok("HAProxy v1 UNKNOWN", HAPROXY_V1_UNKNOWN, 1, "UNKNOWN"),
    ok("HAProxy v2", HAPROXY_V2, 2, "PROXY", "127.0.0.1:40590", "127.0.0.1:45101"),
    ok("HAProxy v2 TLVs", HAPROXY_V2_TLVS, 2, "PROXY", "127.0.0.1:50892", "127.0.0.1:33731"),
    ok("HAProxy v2 LOCAL", HAPROXY_V2_LOCAL, 2, "LOCAL"),
]
EXPECTED_SIZES = {"spec v1": 47, "longest TCP6": 104, "longest UNKNOWN": 107, "v2 TCP4": 28, "v2 TCP6": 52}


def listeners_for(found: ProxyHeader) -> tuple[ProxyVersion, ...]:
    return (V1, OPTIONAL) if found.version == 1 else (V2, OPTIONAL)


# --- valid headers --------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "expected"), [(d, h) for _, d, h in VALID], ids=[n for n, _, _ in VALID])
def test_proxy_header_valid(data: bytes, expected: ProxyHeader) -> None:
    for expect in listeners_for(expected):
        assert read_proxy_header(data, expect) == expected
        assert read_proxy_header(data + GET, expect) == expected  # what follows is not read
        assert read_proxy_header(bytearray(data + GET), expect) == expected


def test_proxy_header_sizes() -> None:
    """The table's sizes are its bytes' lengths; these are the spec's (and the v2 struct's)."""
    sizes = {name: found.size for name, _, found in VALID}
    assert {name: sizes[name] for name in EXPECTED_SIZES} == EXPECTED_SIZES


@pytest.mark.parametrize(("data", "expected"), [(d, h) for _, d, h in VALID], ids=[n for n, _, _ in VALID])
def test_proxy_header_byte_by_byte(data: bytes, expected: ProxyHeader) -> None:
    """Every start of a valid header waits for more; the last byte completes it."""
    for expect in listeners_for(expected):
        for n in range(len(data)):
            assert read_proxy_header(data[:n], expect) is NEED_MORE, (expect, data[:n])
        assert read_proxy_header(data, expect) == expected


def test_proxy_header_spec_example_leaves_the_request() -> None:
    found = read_proxy_header(SPEC_V1 + GET, V1)
    assert isinstance(found, ProxyHeader)
    assert (SPEC_V1 + GET)[found.size :] == GET


def test_proxy_header_crc32c_check_value() -> None:
    assert _crc32c(b"123456789") == 0xE3069283  # the CRC-32C catalogue's check value


# --- no header where none is looked for -----------------------------------------------------


@pytest.mark.parametrize("data", [b"", GET, SPEC_V1, HAPROXY_V2, b"\xff" * 200])
def test_proxy_header_none_reads_nothing(data: bytes) -> None:
    assert read_proxy_header(data, NONE) is None


@pytest.mark.parametrize(
    "data",
    [GET, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"\x16\x03\x01\x02\x00\x01", b"\r\n\r\nGET / HTTP/1.1\r\n"],
)
def test_proxy_header_optional_plain_traffic_is_none(data: bytes) -> None:
    assert read_proxy_header(data, OPTIONAL) is None


def test_proxy_header_empty_needs_more() -> None:
    for expect in EXPECTING:
        assert read_proxy_header(b"", expect) is NEED_MORE


# --- every reason, pinned -------------------------------------------------------------------

TCP4 = b"PROXY TCP4 "
ADDRESSES = b"1.2.3.4 5.6.7.8 "
BAD_V1 = "malformed: a v1 line has a CR or LF before its CRLF"
FIELDS = "(source and destination address, source and destination port, one space apart)"
IPV4_TEXT = "is not an IPv4 address (0 to 255, no leading zeros, 4 times)"
PORT_TEXT = "is not a port from 0 to 65535 (written without leading zeros)"

#: (name, bytes, listener, reason): every reason there is.
ERRORS: list[tuple[str, bytes, ProxyVersion, str]] = [
    ("plain HTTP to v1", GET, V1, "missing"),
    ("plain HTTP to v2", GET, V2, "missing"),
    ("TLS to v2", b"\x16\x03\x01", V2, "missing"),
    ("CRLF then HTTP to v2", b"\r\n\r\nGET", V2, "missing"),
    ("v2 header to v1", HAPROXY_V2, V1, "version 2 header where v1 is expected"),
    ("v1 header to v2", HAPROXY_V1, V2, "version 1 header where v2 is expected"),
    (
        "v1 too long",
        LONGEST_UNKNOWN[:-2] + b"0\r\n",
        V1,
        "too long: no CRLF in the first 107 bytes of a v1 line",
    ),
    (
        "v1 without end",
        b"PROXY UNKNOWN" + b" " * 200,
        V1,
        "too long: no CRLF in the first 107 bytes of a v1 line",
    ),
    ("v1 no space", b"PROXYTCP4", V1, "malformed: a v1 line has 'T' after 'PROXY', expected a space"),
    ("v1 tab", b"PROXY\tTCP4", V1, "malformed: a v1 line has '\\t' after 'PROXY', expected a space"),
    ("v1 nothing", b"PROXY\r\n", V1, "malformed: a v1 line ends before its protocol"),
    ("v1 only a space", b"PROXY \r\n", V1, "malformed: a v1 line ends before its protocol"),
    (
        "v1 protocol",
        b"PROXY TCP5 1.2.3.4",
        V1,
        "malformed: v1 protocol 'TCP5'... is not TCP4, TCP6 or UNKNOWN",
    ),
    ("v1 lower case", b"PROXY tcp4 ", V1, "malformed: v1 protocol 't'... is not TCP4, TCP6 or UNKNOWN"),
    ("v1 short protocol", b"PROXY TCP 1", V1, "malformed: v1 protocol 'TCP' is not TCP4, TCP6 or UNKNOWN"),
    (
        "v1 UNKNOWNX",
        b"PROXY UNKNOWNX\r\n",
        V1,
        "malformed: v1 protocol 'UNKNOWNX'... is not TCP4, TCP6 or UNKNOWN",
    ),
    ("v1 two spaces", b"PROXY  TCP4", V1, "malformed: v1 protocol '' is not TCP4, TCP6 or UNKNOWN"),
    (
        "v1 protocol alone",
        b"PROXY TCP4\r\n",
        V1,
        f"malformed: a v1 TCP4 line has 0 fields after the protocol, expected 4 {FIELDS}",
    ),
    ("v1 letter", TCP4 + b"1.2.3.x", V1, "malformed: a v1 TCP4 line has 'x' among its addresses and ports"),
    (
        "v1 tab inside",
        TCP4 + b"1.2.3.4\t",
        V1,
        "malformed: a v1 TCP4 line has '\\t' among its addresses and ports",
    ),
    (
        "v1 non-ASCII",
        TCP4 + b"1.2.3.4 \xc3\xa9",
        V1,
        "malformed: a v1 TCP4 line has '\\xc3' among its addresses and ports",
    ),
    (
        "v1 zone",
        b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
        V1,
        "malformed: a v1 TCP6 line has '%' among its addresses and ports",
    ),
    ("v1 bare LF", SPEC_V1[:-2] + b"\n", V1, BAD_V1),
    ("v1 bare CR", SPEC_V1[:-2] + b"\rx", V1, BAD_V1),
    ("v1 LF CRLF", SPEC_V1[:-2] + b"\n\r\n", V1, BAD_V1),
    ("v1 CR in UNKNOWN", b"PROXY UNKNOWN \r \r\n", V1, BAD_V1),
    ("v1 CR in protocol", b"PROXY TC\rP4", V1, BAD_V1),
    (
        "v1 3 fields",
        TCP4 + b"1.2.3.4 5.6.7.8 1\r\n",
        V1,
        f"malformed: a v1 TCP4 line has 3 fields after the protocol, expected 4 {FIELDS}",
    ),
    (
        "v1 5 fields",
        TCP4 + ADDRESSES + b"1 2 3\r\n",
        V1,
        f"malformed: a v1 TCP4 line has 5 fields after the protocol, expected 4 {FIELDS}",
    ),
    (
        "v1 double space",
        TCP4 + b"1.2.3.4  5.6.7.8 1 2\r\n",
        V1,
        f"malformed: a v1 TCP4 line has 5 fields after the protocol, expected 4 {FIELDS}",
    ),
    (
        "v1 trailing space",
        TCP4 + ADDRESSES + b"1 2 \r\n",
        V1,
        f"malformed: a v1 TCP4 line has 5 fields after the protocol, expected 4 {FIELDS}",
    ),
    (
        "v1 leading zero",
        TCP4 + b"01.2.3.4 5.6.7.8 1 2\r\n",
        V1,
        f"malformed: v1 source address '01.2.3.4' {IPV4_TEXT}",
    ),
    (
        "v1 octet 256",
        TCP4 + b"1.2.3.4 5.6.7.256 1 2\r\n",
        V1,
        f"malformed: v1 destination address '5.6.7.256' {IPV4_TEXT}",
    ),
    (
        "v1 three octets",
        TCP4 + b"1.2.3 5.6.7.8 1 2\r\n",
        V1,
        f"malformed: v1 source address '1.2.3' {IPV4_TEXT}",
    ),
    ("v1 IPv6 in TCP4", TCP4 + b"::1 5.6.7.8 1 2\r\n", V1, f"malformed: v1 source address '::1' {IPV4_TEXT}"),
    (
        "v1 IPv4 in TCP6",
        b"PROXY TCP6 ::1 5.6.7.8 1 2\r\n",
        V1,
        "malformed: v1 destination address '5.6.7.8' is not an IPv6 address",
    ),
    (
        "v1 bad IPv6",
        b"PROXY TCP6 1:::2 ::1 1 2\r\n",
        V1,
        "malformed: v1 source address '1:::2' is not an IPv6 address",
    ),
    (
        "v1 IPv6 groups",
        b"PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n",
        V1,
        "malformed: v1 source address '1:2:3:4:5:6:7:8:9' is not an IPv6 address",
    ),
    (
        "v1 IPv6 group of 5",
        b"PROXY TCP6 12345::1 ::1 1 2\r\n",
        V1,
        "malformed: v1 source address '12345::1' is not an IPv6 address",
    ),
    (
        "v1 port 65536",
        TCP4 + ADDRESSES + b"65536 2\r\n",
        V1,
        f"malformed: v1 source port '65536' {PORT_TEXT}",
    ),
    ("v1 port 080", TCP4 + ADDRESSES + b"1 080\r\n", V1, f"malformed: v1 destination port '080' {PORT_TEXT}"),
    ("v1 port 00", TCP4 + ADDRESSES + b"00 1\r\n", V1, f"malformed: v1 source port '00' {PORT_TEXT}"),
    ("v1 port hex", TCP4 + ADDRESSES + b"1 ab\r\n", V1, f"malformed: v1 destination port 'ab' {PORT_TEXT}"),
    (
        "v1 port long",
        TCP4 + ADDRESSES + b"1 1000000\r\n",
        V1,
        f"malformed: v1 destination port '1000000' {PORT_TEXT}",
    ),
    ("v1 port empty", TCP4 + b"1.2.3.4 5.6.7.8  1\r\n", V1, f"malformed: v1 source port '' {PORT_TEXT}"),
    ("v2 version 1", v2(version=1), V2, "malformed: v2 header version 1, expected 2"),
    ("v2 version 3", v2(version=3), OPTIONAL, "malformed: v2 header version 3, expected 2"),
    ("v2 command 2", v2(command=0x2), V2, "malformed: v2 command 0x2 is neither LOCAL (0x0) nor PROXY (0x1)"),
    ("v2 command F", v2(command=0xF), V2, "malformed: v2 command 0xF is neither LOCAL (0x0) nor PROXY (0x1)"),
    ("v2 family 4", v2(family=0x41), V2, "malformed: v2 address family and protocol 0x41 are not defined"),
    ("v2 protocol 3", v2(family=0x13), V2, "malformed: v2 address family and protocol 0x13 are not defined"),
    (
        "v2 UNSPEC stream",
        v2(family=0x01),
        V2,
        "malformed: v2 address family and protocol 0x01 are not defined",
    ),
    (
        "v2 too long",
        v2(length=MAX_V2_BYTES - 15),
        V2,
        "too long: a v2 header of 2065 bytes, at most 2064 are read",
    ),
    (
        "v2 longest length",
        v2(length=0xFFFF),
        V2,
        "too long: a v2 header of 65551 bytes, at most 2064 are read",
    ),
    (
        "v2 LOCAL too long",
        v2(command=0x0, length=0xFFFF),
        V2,
        "too long: a v2 header of 65551 bytes, at most 2064 are read",
    ),
    ("v2 IPv4 short", v2(length=11), V2, "malformed: v2 IPv4 header has 11 bytes of addresses, needs 12"),
    (
        "v2 IPv6 short",
        v2(family=0x21, length=12),
        V2,
        "malformed: v2 IPv6 header has 12 bytes of addresses, needs 36",
    ),
    (
        "v2 UNIX short",
        v2(family=0x31, length=0),
        V2,
        "malformed: v2 UNIX header has 0 bytes of addresses, needs 216",
    ),
    (
        "v2 TLV cut",
        v2(body=IPV4_BODY + b"\x04\x00"),
        V2,
        "malformed: v2 header ends 2 bytes into a TLV's 3-byte type and length",
    ),
    (
        "v2 TLV past end",
        v2(body=IPV4_BODY + tlv(0x05, b"abc")[:-1]),
        V2,
        "malformed: v2 TLV 0x05 at byte 28 has 3 bytes, past the header's end (33)",
    ),
    (
        "v2 second TLV past end",
        v2(body=IPV4_BODY + tlv(4, b"") + b"\x05\xff\xff"),
        V2,
        "malformed: v2 TLV 0x05 at byte 31 has 65535 bytes, past the header's end (34)",
    ),
    (
        "v2 CRC length",
        v2(body=IPV4_BODY + tlv(0x03, b"\0" * 3)),
        V2,
        "malformed: v2 CRC32C TLV has 3 bytes, expected 4",
    ),
    (
        "v2 CRC wrong",
        v2(body=IPV4_BODY + tlv(0x03, b"\0\0\0\1")),
        V2,
        f"malformed: v2 CRC32C TLV says 0x00000001, the header's checksum is "
        f"0x{_crc32c(v2(body=IPV4_BODY + tlv(0x03, bytes(4)))):08X}",
    ),
    (
        "HAProxy CRC, one byte changed",
        HAPROXY_V2_TLVS[:-1] + b"8",
        V2,
        f"malformed: v2 CRC32C TLV says 0xA6D1DE55, the header's checksum is "
        f"0x{_crc32c(HAPROXY_V2_TLVS[:31] + bytes(4) + HAPROXY_V2_TLVS[35:-1] + b'8'):08X}",
    ),
]


@pytest.mark.parametrize(("data", "expect", "reason"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_proxy_header_error(data: bytes, expect: ProxyVersion, reason: str) -> None:
    assert read_proxy_header(data, expect) == ProxyHeaderError(reason)
    assert read_proxy_header(data + GET, expect) == ProxyHeaderError(reason)


def test_proxy_header_error_reasons_are_a_closed_set() -> None:
    kinds = {ProxyHeaderError(reason).kind for _, _, _, reason in ERRORS}
    assert kinds == {
        "missing",
        "malformed",
        "too long",
        "version 1 header where v2 is expected",
        "version 2 header where v1 is expected",
    }
    assert ProxyHeaderError(MISSING).kind == "missing"


def test_proxy_header_v1_errors_also_in_optional() -> None:
    for _, data, expect, reason in ERRORS:
        if expect is V1 and reason.startswith(("malformed", "too long")):
            assert read_proxy_header(data, OPTIONAL) == ProxyHeaderError(reason), data


# --- decided as soon as possible ------------------------------------------------------------

#: (name, bytes, listener, how many bytes decide, the decision): no byte more is waited for.
EARLY: list[tuple[str, bytes, ProxyVersion, int, object]] = [
    ("GET to v1", GET, V1, 1, ProxyHeaderError("missing")),
    ("GET to v2", GET, V2, 1, ProxyHeaderError("missing")),
    ("GET to optional", GET, OPTIONAL, 1, None),
    ("HTTP/2 preface to v1", b"PRI * HTTP/2.0\r\n", V1, 3, ProxyHeaderError("missing")),
    ("HTTP/2 preface to v2", b"PRI * HTTP/2.0\r\n", V2, 3, ProxyHeaderError("missing")),
    ("HTTP/2 preface to optional", b"PRI * HTTP/2.0\r\n", OPTIONAL, 3, None),
    ("CRLF then GET to optional", b"\r\n\r\nGET", OPTIONAL, 5, None),
    ("CRLF then GET to v1", b"\r\n\r\nGET", V1, 5, ProxyHeaderError("missing")),
    ("v1 to v2", SPEC_V1, V2, 5, ProxyHeaderError("version 1 header where v2 is expected")),
    ("v2 to v1", HAPROXY_V2, V1, 12, ProxyHeaderError("version 2 header where v1 is expected")),
    (
        "v1 no space",
        b"PROXY-TCP4 ",
        V1,
        6,
        ProxyHeaderError("malformed: a v1 line has '-' after 'PROXY', expected a space"),
    ),
    (
        "v1 protocol",
        b"PROXY TCX4 1.2.3.4",
        V1,
        9,
        ProxyHeaderError("malformed: v1 protocol 'TCX'... is not TCP4, TCP6 or UNKNOWN"),
    ),
    (
        "v1 letter",
        TCP4 + b"1.2.3.4 q",
        V1,
        20,
        ProxyHeaderError("malformed: a v1 TCP4 line has 'q' among its addresses and ports"),
    ),
    ("v1 bare LF", SPEC_V1[:-2] + b"\n", V1, 46, ProxyHeaderError(BAD_V1)),
    ("v1 CR then x", SPEC_V1[:-2] + b"\rx", V1, 47, ProxyHeaderError(BAD_V1)),
    (
        "v1 too long",
        b"PROXY UNKNOWN " + b"-" * 200,
        V1,
        107,
        ProxyHeaderError("too long: no CRLF in the first 107 bytes of a v1 line"),
    ),
    (
        "v2 version",
        v2(version=1, body=IPV4_BODY),
        V2,
        13,
        ProxyHeaderError("malformed: v2 header version 1, expected 2"),
    ),
    (
        "v2 command",
        v2(command=3, body=IPV4_BODY),
        V2,
        13,
        ProxyHeaderError("malformed: v2 command 0x3 is neither LOCAL (0x0) nor PROXY (0x1)"),
    ),
    (
        "v2 family",
        v2(family=0x51, body=IPV4_BODY),
        V2,
        14,
        ProxyHeaderError("malformed: v2 address family and protocol 0x51 are not defined"),
    ),
    (
        "v2 length",
        v2(length=3000, body=IPV4_BODY),
        V2,
        16,
        ProxyHeaderError("too long: a v2 header of 3016 bytes, at most 2064 are read"),
    ),
    (
        "v2 short",
        v2(length=8, body=IPV4_BODY),
        V2,
        16,
        ProxyHeaderError("malformed: v2 IPv4 header has 8 bytes of addresses, needs 12"),
    ),
]


@pytest.mark.parametrize(
    ("data", "expect", "decided_at", "decision"), [e[1:] for e in EARLY], ids=[e[0] for e in EARLY]
)
def test_proxy_header_decides_early(
    data: bytes, expect: ProxyVersion, decided_at: int, decision: object
) -> None:
    for n in range(decided_at):
        assert read_proxy_header(data[:n], expect) is NEED_MORE, data[:n]
    for n in range(decided_at, len(data) + 1):
        assert read_proxy_header(data[:n], expect) == decision, data[:n]


# --- fuzz: no input raises, and no split changes the answer ---------------------------------

#: Pieces that make headers and near-headers more often than random bytes would.
PIECES = [
    b"PROXY",
    b" ",
    b"TCP4",
    b"TCP6",
    b"UNKNOWN",
    b"1.2.3.4",
    b"255.255.255.255",
    b"01",
    b"::1",
    b"ffff:",
    b"::ffff:1.2.3.4",
    b"65535",
    b"65536",
    b"0",
    b"\r\n",
    b"\r",
    b"\n",
    b"\t",
    b"\x00",
    SIGNATURE,
    b"\x21",
    b"\x20",
    b"\x11",
    b"\x21",
    b"\x31",
    b"\x00\x0c",
    b"\x00\x24",
    b"\x00\xd8",
    b"\x00\x00",
    b"\x08\x10",
    IPV4_BODY,
    IPV6_BODY,
    tlv(3, bytes(4)),
    tlv(4, b""),
    b"\x05\x00",
    b"GET / HTTP/1.1\r\n",
    HAPROXY_V2[:20],
    SPEC_V1[:30],
]
FUZZ = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from(PIECES), max_size=14).map(b"".join),
    st.tuples(
        st.sampled_from([d for _, d, _ in VALID]), st.integers(0, 120), st.binary(min_size=1, max_size=3)
    ).map(
        lambda t: t[0][: t[1]] + t[2] + t[0][t[1] + len(t[2]) :]  # a valid header, a few bytes changed
    ),
)


@settings(max_examples=800, deadline=None)
@given(FUZZ, st.sampled_from(list(ProxyVersion)))
def test_proxy_header_fuzz(data: bytes, expect: ProxyVersion) -> None:
    result = read_proxy_header(data, expect)
    assert result is None or isinstance(result, ProxyHeader | ProxyHeaderError | NeedMore)
    if isinstance(result, ProxyHeader):
        assert result.size <= len(data)
        assert result.size <= max(MAX_V1_BYTES, MAX_V2_BYTES)
        assert read_proxy_header(data[: result.size], expect) == result
    # The bytes may arrive in any pieces: whatever a start of them decides, all of them decide.
    for n in range(len(data)):
        early = read_proxy_header(data[:n], expect)
        if early is not NEED_MORE:
            assert early == result, (data[:n], early, result)


# --- real HAProxy in front of sockets we own ------------------------------------------------

#: What the client sends after connecting; the backend reads until it arrives.
PAYLOAD = b"ping\n"
HAPROXY_START_ATTEMPTS = 3


#: HAProxy's cases: (the frontend's host, or `unix` for a unix socket; the server's options)
HAPROXY_CASES = {
    "v1": ("127.0.0.1", "send-proxy"),
    "v2": ("127.0.0.1", "send-proxy-v2"),
    "v2-tlvs": ("127.0.0.1", "send-proxy-v2 proxy-v2-options unique-id,authority,crc32c"),
    "v1-ipv6": ("::1", "send-proxy"),
    "v2-ipv6": ("::1", "send-proxy-v2"),
    "v1-unix": ("unix", "send-proxy"),
    "v2-unix": ("unix", "send-proxy-v2"),
}


def _haproxy_binary() -> str | None:
    return shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.access(p, os.X_OK)), None
    )


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.settimeout(LONG_S)
    return sock


def _read_until_payload(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(PAYLOAD):
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


@dataclass
class Capture:
    """What the backend received from HAProxy for one client, and the client's view."""

    received: bytes
    client_sockname: str | None  # the client's own address, as it saw it
    client_peername: str | None  # HAProxy's frontend, as the client saw it
    backend: str  # the backend listener's own address


def _hostport(address: tuple[str, int] | tuple[str, int, int, int] | str) -> str:
    assert isinstance(address, tuple)
    return format_hostport(address[0], address[1])


class HAProxyRun:
    """One HAProxy in TCP mode: per case a frontend and a backend whose one server is a socket
    of ours, with `send-proxy` or `send-proxy-v2`. Each case's bytes are read as a client
    connects, and the health checks' from their own listeners."""

    def __init__(self, binary: str, folder: Path) -> None:
        self.binary = binary
        self.folder = folder
        self.backend = _listener()
        self.check_v1 = _listener()
        self.check_v2 = _listener()
        self.ipv6 = ipv6_available()
        self.proc: subprocess.Popen[bytes] | None = None
        self.output = folder / "haproxy.log"
        self.ports: dict[str, int] = {}

    def cases(self) -> list[str]:
        return [name for name, (host, _) in HAPROXY_CASES.items() if host != "::1" or self.ipv6]

    def _config(self) -> str:
        server = f"127.0.0.1:{self.backend.getsockname()[1]}"
        sections = []
        for name in self.cases():
            host, options = HAPROXY_CASES[name]
            if host == "unix":
                bind = f"unix@{self.folder / name}.sock"
            else:
                self.ports[name] = _free_port(host)
                bind = format_hostport(host, self.ports[name])
            sections.append(
                f"frontend fe-{name}\n    bind {bind}\n"
                "    unique-id-format %{+X}o\\ %ci:%cp_%fi:%fp_%Ts_%rt:%pid\n"
                f"    default_backend be-{name}\n"
                f"backend be-{name}\n    server s1 {server} {options}\n"
            )
        for name, listener in (("send-proxy", self.check_v1), ("send-proxy-v2", self.check_v2)):
            port = listener.getsockname()[1]
            sections.append(
                f"backend check-{name}\n    server s1 127.0.0.1:{port} {name} check inter 100ms\n"
            )
        return (
            "global\n    nbthread 1\n"
            "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n"
            + "".join(sections)
        )

    def capture_all(self) -> dict[str, Capture]:
        """Start HAProxy and capture every case. The first client is also the check that it
        listens; a probed free port can be taken before HAProxy binds it, so then again."""
        for _ in range(HAPROXY_START_ATTEMPTS):
            self._launch()
            try:
                captures = {name: self.capture(name) for name in self.cases()}
            except (ConnectionRefusedError, FileNotFoundError):
                assert self.proc is not None
                if self.proc.poll() is None:
                    raise
                self.stop()
                continue
            captures["check-v1"] = self.capture_check(self.check_v1)
            captures["check-v2"] = self.capture_check(self.check_v2)
            return captures
        raise RuntimeError(f"haproxy did not start:\n{self.output.read_text(errors='replace')}")

    def _launch(self) -> None:
        for sock_file in self.folder.glob("*.sock"):
            sock_file.unlink()
        conf = self.folder / "haproxy.cfg"
        conf.write_text(self._config())
        with open(self.output, "ab") as out:
            self.proc = subprocess.Popen(
                [self.binary, "-db", "-f", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() can end all of it
            )

    def connect(self, name: str) -> socket.socket:
        """A client connected to the case's frontend, retrying while HAProxy starts."""
        host = HAPROXY_CASES[name][0]
        deadline = time.monotonic() + LONG_S
        while True:
            if host == "unix":
                sock = socket.socket(socket.AF_UNIX)
                address: str | tuple[str, int] = str(self.folder / f"{name}.sock")
            else:
                sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
                address = (host, self.ports[name])
            sock.settimeout(LONG_S)
            try:
                sock.connect(address)
                return sock
            except (ConnectionRefusedError, FileNotFoundError):
                sock.close()
                assert self.proc is not None
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def capture(self, name: str) -> Capture:
        with self.connect(name) as client:
            client.sendall(PAYLOAD)
            conn, _ = self.backend.accept()
            with conn:
                conn.settimeout(LONG_S)
                received = _read_until_payload(conn)
            unix = HAPROXY_CASES[name][0] == "unix"
            return Capture(
                received,
                None if unix else _hostport(client.getsockname()),
                None if unix else _hostport(client.getpeername()),
                _hostport(self.backend.getsockname()),
            )

    def capture_check(self, listener: socket.socket) -> Capture:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(LONG_S)
            received = conn.recv(4096)
            return Capture(received, None, None, _hostport(listener.getsockname()))

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def close(self) -> None:
        self.stop()
        for sock in (self.backend, self.check_v1, self.check_v2):
            sock.close()


@pytest.fixture(scope="module")
def haproxy_captures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Capture]]:
    """Every case's bytes, from one HAProxy started for this module."""
    binary = _haproxy_binary()
    if binary is None:
        pytest.skip("haproxy is not installed (apt-get install -y haproxy; .ci/run does)")
    run = HAProxyRun(binary, tmp_path_factory.mktemp("pp"))
    try:
        yield run.capture_all()
    finally:
        run.close()


def _parse_capture(capture: Capture, expect: ProxyVersion) -> ProxyHeader:
    found = read_proxy_header(capture.received, expect)
    assert isinstance(found, ProxyHeader), (capture.received, found)
    if capture.received.endswith(PAYLOAD):
        assert capture.received[found.size :] == PAYLOAD
    for n in range(found.size):
        assert read_proxy_header(capture.received[:n], expect) is NEED_MORE
    return found


@pytest.mark.parametrize(
    ("name", "version"), [("v1", 1), ("v2", 2), ("v2-tlvs", 2), ("v1-ipv6", 1), ("v2-ipv6", 2)]
)
def test_proxy_header_from_haproxy(haproxy_captures: dict[str, Capture], name: str, version: int) -> None:
    if name not in haproxy_captures:
        pytest.skip("no IPv6 on this machine (cannot bind ::1)")
    capture = haproxy_captures[name]
    expect = V1 if version == 1 else V2
    found = _parse_capture(capture, expect)
    assert found.version == version
    assert found == ProxyHeader(
        found.version, "PROXY", capture.client_sockname, capture.client_peername, found.size
    )
    assert _parse_capture(capture, OPTIONAL) == found
    other = V2 if version == 1 else V1
    assert read_proxy_header(capture.received, other) == ProxyHeaderError(
        f"version {version} header where v{3 - version} is expected"
    )


def test_proxy_header_from_haproxy_tlvs(haproxy_captures: dict[str, Capture]) -> None:
    """`proxy-v2-options unique-id,crc32c` adds TLVs 0x05 and 0x03 after the addresses."""
    received = haproxy_captures["v2-tlvs"].received
    found = _parse_capture(haproxy_captures["v2-tlvs"], V2)
    assert found.size > 28 and received[28] == 0x03  # the CRC32C TLV first, checked
    broken = received[: found.size - 1] + bytes([received[found.size - 1] ^ 1]) + PAYLOAD
    failed = read_proxy_header(broken, V2)
    assert isinstance(failed, ProxyHeaderError) and failed.reason.startswith("malformed: v2 CRC32C TLV says ")


def test_proxy_header_from_haproxy_unix_clients(haproxy_captures: dict[str, Capture]) -> None:
    """A client on a unix socket has no address to tell: v1 says UNKNOWN, v2 LOCAL."""
    assert _parse_capture(haproxy_captures["v1-unix"], V1) == ProxyHeader(1, "UNKNOWN", None, None, 15)
    assert _parse_capture(haproxy_captures["v2-unix"], V2) == ProxyHeader(2, "LOCAL", None, None, 16)


def test_proxy_header_from_haproxy_health_checks(haproxy_captures: dict[str, Capture]) -> None:
    """Checks with `send-proxy` tell their own connection (as the spec asks), with
    `send-proxy-v2` they say LOCAL."""
    check_v1 = haproxy_captures["check-v1"]
    found = _parse_capture(check_v1, V1)
    assert (found.version, found.command, found.destination) == (1, "PROXY", check_v1.backend)
    assert found.source is not None and found.source.startswith("127.0.0.1:")
    assert _parse_capture(haproxy_captures["check-v2"], V2) == ProxyHeader(2, "LOCAL", None, None, 16)
