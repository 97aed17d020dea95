"""Hostile HTTP on the data plane: each gets its 4xx and a clean close (FIN, never RST), and the
listener keeps serving others during and after (issue 8).

The listener's `limits` are small here (8 KiB of headers, 64 KiB of body, 1 s to send the
headers) so the tests stay quick; the defaults are 64 KiB, 16 MiB and 30 s.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time

import pytest
from _hardening import assert_error_answer, connect, healthy, send_until_answered

from faultserver._profile.load import load_profile_text
from tests.support.net import recv_to_fin
from tests.support.profiles import one_listener

HEADER_TIMEOUT_S = 1.0
LIMITS = {"header_timeout": "1s", "max_header_bytes": "8KiB", "max_body_bytes": "64KiB"}
PROFILE = one_listener(limits=LIMITS)

MALFORMED = (400, "Bad Request", "malformed request")
HTTP09 = (400, "Bad Request", "HTTP/0.9 requests are not supported")
HEADERS_TOO_LARGE = (431, "Request Header Fields Too Large", "request headers too large")
BODY_TOO_LARGE = (413, "Request Entity Too Large", "request body too large")


def _client_hello() -> bytes:
    """The first flight of a real TLS client (Python's ssl module), without a network."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="faultserver.test")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def _post(headers: bytes, body: bytes = b"") -> bytes:
    return b"POST /upload HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n" + body


HOSTILE = {
    # request lines
    "garbage-line": (b"HELLO THERE\r\n\r\n", MALFORMED),
    "request-line-extra-word": (b"GET / HTTP/1.1 please\r\nHost: x\r\n\r\n", MALFORMED),
    "bad-method-byte": (b"G\x7fT / HTTP/1.1\r\nHost: x\r\n\r\n", MALFORMED),
    "unknown-version": (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", MALFORMED),
    "space-in-target": (b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", MALFORMED),
    # answered 200 before Hardening II: httptools lets these through
    "runs-of-spaces-in-request-line": (b"GET  /x  HTTP/1.1\r\nHost: x\r\n\r\n", MALFORMED),
    "http-2.0-request-line": (
        b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
        (505, "HTTP Version Not Supported", "HTTP/2.0 is not supported (this listener speaks HTTP/1.1)"),
    ),
    # header bytes
    "control-byte-in-name": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A\x01: b\r\n\r\n", MALFORMED),
    "space-before-colon": (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", MALFORMED),
    "obsolete-line-folding": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n", MALFORMED),
    "bare-lf-line-ends": (b"GET / HTTP/1.1\nHost: x\n\n", MALFORMED),
    "header-without-colon": (b"GET / HTTP/1.1\r\nHost x\r\n\r\n", MALFORMED),
    # NUL bytes
    "nul-in-target": (b"GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n", MALFORMED),
    "nul-in-header-value": (b"GET / HTTP/1.1\r\nHost: x\x00y\r\n\r\n", MALFORMED),
    "only-nul-bytes": (b"\x00" * 64, MALFORMED),
    # oversized headers (limit 8 KiB)
    "one-huge-header": (
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
        HEADERS_TOO_LARGE,
    ),
    "many-headers": (
        b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(2_000)) + b"\r\n",
        HEADERS_TOO_LARGE,
    ),
    "huge-target": (b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", HEADERS_TOO_LARGE),
    "endless-header-line": (b"GET / HTTP/1.1\r\nHost: x\r\nX-Endless: " + b"a" * 100_000, HEADERS_TOO_LARGE),
    # oversized bodies (limit 64 KiB)
    "body-over-limit": (_post(b"Content-Length: 100000\r\n", b"a" * 100_000), BODY_TOO_LARGE),
    "content-length-over-limit-no-body-yet": (_post(b"Content-Length: 999999999999\r\n"), BODY_TOO_LARGE),
    "chunked-body-over-limit": (
        _post(b"Transfer-Encoding: chunked\r\n", (b"4000\r\n" + b"a" * 0x4000 + b"\r\n") * 5 + b"0\r\n\r\n"),
        BODY_TOO_LARGE,
    ),
    # invalid chunked encoding
    "chunk-size-not-hex": (_post(b"Transfer-Encoding: chunked\r\n", b"zz\r\nabc\r\n0\r\n\r\n"), MALFORMED),
    "chunk-longer-than-its-size": (
        _post(b"Transfer-Encoding: chunked\r\n", b"3\r\nabcdef\r\n0\r\n\r\n"),
        MALFORMED,
    ),
    "chunk-size-overflow": (
        _post(b"Transfer-Encoding: chunked\r\n", b"ffffffffffffffffffff\r\nabc\r\n0\r\n\r\n"),
        MALFORMED,
    ),
    "content-length-and-chunked": (
        _post(b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
        MALFORMED,
    ),
    "two-content-lengths": (_post(b"Content-Length: 3\r\nContent-Length: 4\r\n", b"abcd"), MALFORMED),
    "negative-content-length": (_post(b"Content-Length: -1\r\n", b"a"), MALFORMED),
    # other protocols
    "http09-request": (b"GET /\r\n", HTTP09),
    "http09-request-blank-line": (b"GET /\r\n\r\n", HTTP09),
    "http2-preface": (
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00",
        (400, "Bad Request", "HTTP/2 is not supported (this listener speaks HTTP/1.1)"),
    ),
    "tls-client-hello": (_client_hello(), (400, "Bad Request", "TLS handshake on a plain HTTP listener")),
}


@pytest.fixture
def srv(faultserver):
    return faultserver(PROFILE)


@pytest.mark.parametrize("data, answer", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_request_gets_4xx_then_fin_and_others_are_served(srv, data, answer):
    port = srv["backend"].port
    with connect(port) as hostile:
        hostile.sendall(data)
        # during: the listener serves another connection while this one is being refused
        healthy(port)
        reply = recv_to_fin(hostile)  # raises ConnectionResetError on an RST
    assert_error_answer(reply, *answer)
    healthy(port)  # after
    status = answer[0]
    assert srv.events(type="response", status=status, error=answer[2])
    assert not srv.events(type="request", path="/upload")  # never handled as a request


def test_hostile_endless_chunked_body_gets_413_then_fin(srv):
    port = srv["backend"].port
    with connect(port) as hostile:
        hostile.sendall(_post(b"Transfer-Encoding: chunked\r\n"))
        hostile.setblocking(False)
        sent = send_until_answered(hostile, b"1000\r\n" + b"a" * 0x1000 + b"\r\n")
        hostile.settimeout(5)
        healthy(port)
        reply = recv_to_fin(hostile)
    assert_error_answer(reply, *BODY_TOO_LARGE)
    assert sent > 64 * 1024
    healthy(port)


@pytest.mark.parametrize(
    "start, piece",
    [
        (b"0\r\n", b"X-Trailer: " + b"a" * 1000 + b"\r\n"),  # trailers that never end
        (b"1;ext=", b"a" * 1000),  # a chunk extension that never ends
        (b"", b"1;e=1\r\na\r\n"),  # 1-byte chunks: framing 10 times the data
    ],
    ids=["endless-trailers", "endless-chunk-extension", "framing-overhead"],
)
def test_hostile_endless_chunked_framing_gets_413_then_fin(srv, start, piece):
    """No body byte, or few, yet endless bytes: the framing counts toward the body limit
    (twice max_body_bytes plus max_header_bytes of raw body), so this cannot go on forever."""
    port = srv["backend"].port
    with connect(port) as hostile:
        hostile.sendall(_post(b"Transfer-Encoding: chunked\r\n", start))
        hostile.setblocking(False)
        sent = send_until_answered(hostile, piece)
        hostile.settimeout(5)
        reply = recv_to_fin(hostile)
    assert_error_answer(reply, *BODY_TOO_LARGE)
    assert 2 * 64 * 1024 + 8 * 1024 < sent + len(start) < 10 * 1024 * 1024
    healthy(port)


def test_hostile_content_length_over_limit_refused_before_100_continue(srv):
    with connect(srv["backend"].port) as sock:
        sock.sendall(_post(b"Content-Length: 10485760\r\nExpect: 100-continue\r\n"))
        reply = recv_to_fin(sock)
    assert_error_answer(reply, *BODY_TOO_LARGE)  # no "100 Continue" first: nothing is sent


def test_hostile_over_limit_request_after_a_good_one_only_the_good_one_is_answered(srv):
    good = b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n"
    big = b"GET /second HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
    with connect(srv["backend"].port) as sock:
        sock.sendall(good + big)
        reply = recv_to_fin(sock)
    first, _sep, rest = reply.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 OK\r\n"), reply[:300]
    length = int(first.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    assert b'"path": "/first"' in rest[:length]
    assert_error_answer(rest[length:], *HEADERS_TOO_LARGE)
    assert [e["path"] for e in srv.requests()] == ["/first"]


@pytest.mark.parametrize(
    "pieces",
    [
        [b"GET /ind", b"ex HTTP/1.1\r\nHost: x\r\n\r\n"],
        [b"GET / HT", b"TP/1.1\r\nHost: x\r\n\r\n"],
        [b"G", b"ET /index HTTP/1.1\r\n", b"Host: x\r\n\r\n"],
    ],
    ids=["split-in-target", "split-in-version", "split-after-line"],
)
def test_hostile_detection_request_line_split_across_packets_is_still_served(srv, pieces):
    """Only a line end without a version is HTTP/0.9: a request line in pieces is not."""
    with connect(srv["backend"].port) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(0.1)
        sock.sendall(b"GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = recv_to_fin(sock)
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply[:300]
    assert reply.count(b"HTTP/1.1 200 OK\r\n") == 2


def test_hostile_real_tls_client_fails_its_handshake_and_listener_serves_on(srv):
    port = srv["backend"].port
    ctx = ssl.create_default_context()
    with connect(port) as raw:
        with pytest.raises(ssl.SSLError):
            with ctx.wrap_socket(raw, server_hostname="faultserver.test"):
                pass
    healthy(port)
    srv.wait_for(type="response", status=400, error="TLS handshake on a plain HTTP listener", timeout=2)


@pytest.mark.parametrize(
    "scheme, args, exit_code, error, message",
    [
        (
            "http",
            ["--http2-prior-knowledge"],
            52,
            "Empty reply from server",
            "HTTP/2 is not supported (this listener speaks HTTP/1.1)",
        ),
        ("https", ["--insecure"], 35, "wrong version number", "TLS handshake on a plain HTTP listener"),
    ],
    ids=["http2-prior-knowledge", "https-to-plain-port"],
)
def test_hostile_curl_speaking_another_protocol_fails_cleanly(srv, scheme, args, exit_code, error, message):
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    port = srv["backend"].port
    done = subprocess.run(
        [curl, "-sS", "-o", "/dev/null", "--max-time", "5", *args, f"{scheme}://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        timeout=15,
    )
    assert done.returncode == exit_code, done.stderr
    assert error in done.stderr
    srv.wait_for(type="response", status=400, error=message, timeout=2)  # curl may exit first
    healthy(port)


# --- the header-read deadline (slowloris defence) ------------------------------------------


def test_hostile_headers_not_finished_in_time_get_408_then_fin(srv):
    port = srv["backend"].port
    with connect(port) as slow:
        start = time.monotonic()
        slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        for byte in b"X-Slow: 1":  # a byte now and then, never the end of the headers
            time.sleep(HEADER_TIMEOUT_S / 20)
            slow.sendall(bytes([byte]))
        healthy(port)
        reply = recv_to_fin(slow)
        took = time.monotonic() - start
    assert_error_answer(reply, 408, "Request Timeout", "request headers not received in time")
    assert HEADER_TIMEOUT_S - 0.3 <= took < HEADER_TIMEOUT_S + 3


def test_hostile_silent_connection_gets_408_after_header_timeout(srv):
    with connect(srv["backend"].port) as silent:
        start = time.monotonic()
        reply = recv_to_fin(silent)
        took = time.monotonic() - start
    assert_error_answer(reply, 408, "Request Timeout", "request headers not received in time")
    assert HEADER_TIMEOUT_S - 0.3 <= took < HEADER_TIMEOUT_S + 3


def test_hostile_stalled_body_gets_408_then_fin(srv):
    port = srv["backend"].port
    with connect(port) as slow:
        slow.sendall(_post(b"Content-Length: 100\r\n", b"only part of it"))
        start = time.monotonic()
        reply = recv_to_fin(slow)
        took = time.monotonic() - start
    assert_error_answer(reply, 408, "Request Timeout", "request body stalled (no data within header_timeout)")
    assert HEADER_TIMEOUT_S - 0.3 <= took < HEADER_TIMEOUT_S + 3
    healthy(port)


def test_hostile_slow_but_moving_body_is_not_cut_off(srv):
    """The body deadline is per read: a body slower than header_timeout in total still arrives."""
    body = b"x" * 30
    with connect(srv["backend"].port, timeout=10) as slow:
        slow.sendall(_post(b"Content-Length: %d\r\nConnection: close\r\n" % len(body)))
        for i in range(0, len(body), 3):
            time.sleep(HEADER_TIMEOUT_S / 8)  # 1.25 header_timeouts in total, each piece well within one
            slow.sendall(body[i : i + 3])
        reply = recv_to_fin(slow)
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply[:300]
    assert b'"body_bytes": 30' in reply


def test_hostile_limits_default_header_timeout_is_30s_and_is_configurable():
    default = load_profile_text("version: 1\nlisteners:\n  - name: b\n    bind: 127.0.0.1:0\n")
    assert default.listeners[0].limits.header_timeout_s == 30.0
    assert default.listeners[0].limits.max_header_bytes == 64 * 1024
    assert default.listeners[0].limits.max_body_bytes == 16 * 1024 * 1024
    configured = load_profile_text(
        "version: 1\nlisteners:\n  - name: b\n    bind: 127.0.0.1:0\n    limits: {header_timeout: 250ms}\n"
    )
    assert configured.listeners[0].limits.header_timeout_s == 0.25


def test_hostile_many_at_once_do_not_disturb_a_keepalive_client(srv):
    """Every hostile input at the same time, while one kept-alive client goes on with its requests."""
    port = srv["backend"].port
    errors: list[BaseException] = []

    def attack(data: bytes, status: int) -> None:
        try:
            with connect(port) as sock:
                sock.sendall(data)
                assert recv_to_fin(sock).startswith(b"HTTP/1.1 %d " % status)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=attack, args=(data, answer[0])) for data, answer in HOSTILE.values()]
    with connect(port) as keeper:
        for t in threads:
            t.start()
        buf = b""
        for i in range(20):
            keeper.sendall(b"GET /keep/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
            while b"\r\n\r\n" not in buf:
                buf += keeper.recv(65536)
            head, _, buf = buf.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK\r\n"), head[:200]
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            while len(buf) < length:
                buf += keeper.recv(65536)
            assert b'"path": "/keep/%d"' % i in buf[:length]
            buf = buf[length:]
        for t in threads:
            t.join(10)
    assert not errors, errors


def test_hostile_connect_gets_405_with_allow_then_fin(srv):
    # answered 200 before Hardening II (httptools takes CONNECT as an upgrade)
    with connect(srv["backend"].port) as sock:
        sock.sendall(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        reply = recv_to_fin(sock)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")
    assert b"\r\nallow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE\r\n" in head
    assert body == b'{"error": "CONNECT is not supported (this is a backend, not a proxy)"}\n'


def test_hostile_100_continue_never_overtakes_an_earlier_pipelined_answer(faultserver):
    # before Hardening II the interim answer went out as soon as its head was read, ahead of
    # the answer to the request pipelined before it
    slow = {"match": {"path": "/slow"}, "action": "respond", "delay": "300ms"}
    srv = faultserver(one_listener(rules=[slow]))
    with connect(srv["backend"].port) as sock:
        sock.sendall(
            b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /p HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
        )
        data = b""
        while b"100 Continue" not in data:
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")  # the answer to /slow first
    assert data.index(b"HTTP/1.1 100 Continue\r\n\r\n") > data.index(b'"path": "/slow"')
