"""`proxy_protocol` on a listener: the header a gateway sends first, read on real sockets.

curl sends a version 1 header itself (`--haproxy-protocol`), plain and over TLS; version 2
is laid out as HAProxy 2.6 sends it (its real bytes are in tests/unit/test_proxy_header.py);
tests/gateway/test_proxy_protocol_haproxy.py puts a real HAProxy in front.
"""

from __future__ import annotations

import socket
import struct
import subprocess

import pytest

from tests.support import net
from tests.support.net import read_to_end
from tests.support.profiles import TEXT_OK, one_listener

GET = b"GET /who HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"


def v2_header(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    """A version 2 PROXY header for TCP over IPv4, laid out as HAProxy writes it."""
    addresses = socket.inet_aton(source[0]) + socket.inet_aton(destination[0])
    body = addresses + struct.pack("!HH", source[1], destination[1])
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def exchange(port: int, data: bytes) -> bytes:
    with net.connect("127.0.0.1", port, 3.0) as sock:
        sock.sendall(data)
        answer, _ = read_to_end(sock)
    return answer


@pytest.mark.parametrize("version", ["v1", "optional"])
def test_proxy_v1_header_gives_the_client_address(faultserver, version):
    srv = faultserver(one_listener(response=TEXT_OK, proxy_protocol=version))
    header = b"PROXY TCP4 203.0.113.7 192.0.2.1 40001 443\r\n"
    answer = exchange(srv["backend"].port, header + GET)  # one packet: header and request
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    request = srv.wait_for(type="request", path="/who")
    assert request["client"] == "203.0.113.7:40001"
    assert request["peer"].startswith("127.0.0.1:")
    header_event = srv.wait_for(type="proxy_header")
    assert (header_event["version"], header_event["destination"]) == (1, "192.0.2.1:443")


def test_proxy_v2_header_gives_the_client_address(faultserver):
    srv = faultserver(one_listener(response=TEXT_OK, proxy_protocol="v2"))
    port = srv["backend"].port
    with net.connect("127.0.0.1", port, 3.0) as sock:
        sock.sendall(v2_header(("198.51.100.9", 5555), ("127.0.0.1", port)))
        sock.sendall(GET)  # in a packet of its own this time
        answer, _ = read_to_end(sock)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert srv.wait_for(type="request")["client"] == "198.51.100.9:5555"


@pytest.mark.parametrize(
    ("version", "sent", "reason"),
    [
        ("v1", GET, "missing"),
        ("v2", GET, "missing"),
        ("v2", b"PROXY TCP4 203.0.113.7 192.0.2.1 40001 443\r\n" + GET,
         "version 1 header where v2 is expected"),
        ("v1", b"PROXY TCP4 203.0.113.7 nonsense 40001 443\r\n" + GET, "malformed"),
    ],
)
def test_proxy_header_missing_or_broken_closes_with_an_event(faultserver, version, sent, reason):
    srv = faultserver(one_listener(response=TEXT_OK, proxy_protocol=version))
    assert exchange(srv["backend"].port, sent) == b""  # FIN, no answer
    event = srv.wait_for(type="proxy_error")
    assert event["error"].startswith(reason)
    assert srv.events(type="request") == []


def test_optional_proxy_header_lets_plain_traffic_through(faultserver):
    srv = faultserver(one_listener(response=TEXT_OK, proxy_protocol="optional"))
    assert exchange(srv["backend"].port, GET).startswith(b"HTTP/1.1 200 OK\r\n")
    assert "client" not in srv.wait_for(type="request")


def test_curl_haproxy_protocol_plain_and_over_tls(faultserver):
    srv = faultserver({
        "version": 1,
        "listeners": [
            {"name": "plain", "bind": "127.0.0.1:0", "proxy_protocol": "v1", "response": TEXT_OK},
            {"name": "tls", "bind": "127.0.0.1:0", "proxy_protocol": "v1", "response": TEXT_OK,
             "tls": {"generate": True}},
        ],
    })
    for name, extra in (("plain", []), ("tls", ["--cacert", srv["tls"].ca_path])):
        done = subprocess.run(
            ["curl", "-sS", "--haproxy-protocol", *extra, "-m", "5", srv[name].url + "/via-curl"],
            capture_output=True, text=True, timeout=15,
        )
        assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr
        request = srv.wait_for(type="request", listener=name)
        # curl's header names its own end of the connection: the peer itself
        assert request["client"] == request["peer"]
    assert srv.events(type="tls_handshake", listener="tls")
