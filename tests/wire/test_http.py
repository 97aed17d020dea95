"""The HTTP/1.1 data plane over real sockets: httpx and requests for what clients see, raw
sockets for the exact bytes (keep-alive, pipelining, bodies, 100-continue, HEAD, HTTP/1.0,
Connection: close from either side, framing, the healthy response and the JSON echo).
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import requests

from tests.support import net
from tests.support.net import LONG_S
from tests.support.profiles import TEXT_OK, one_listener

HOST = "127.0.0.1"
DATE = rb"date: [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT\r\n"


@contextmanager
def exchange(port: int, request: bytes) -> Iterator[tuple[socket.socket, net.RawReader]]:
    """Send `request` on a new connection: (the socket, a reader of its answers), closed at the end."""
    with net.connect(HOST, port) as sock:
        sock.sendall(request)
        yield sock, net.RawReader(sock)


def read_ok(reader: net.RawReader, headers: bytes, body: bytes | None = b"ok\n") -> net.RawResponse:
    """The next answer: `200 OK`, the date, exactly `headers`, then `body` (None: a HEAD's)."""
    resp = reader.read_response(head_request=body is None)
    assert_bytes(b"HTTP/1.1 200 OK\r\n" + DATE + headers + b"\r\n", resp.head)
    assert resp.body == (body or b"")
    return resp


def assert_fin(reader) -> None:
    """The server closed with a clean FIN: recv() returns b"" (an RST would raise)."""
    assert reader.at_eof()


def assert_bytes(pattern: bytes, data: bytes) -> None:
    assert re.fullmatch(pattern, data, re.DOTALL), data


# --- keep-alive and pipelining ----------------------------------------------------------------


def test_keepalive_httpx_reuses_one_connection(faultserver):
    srv = faultserver(one_listener())
    backend = srv["backend"]
    with httpx.Client(timeout=LONG_S) as client:
        echoes = [client.get(f"{backend.url}/k{i}").json() for i in range(1, 5)]
    assert {e["connection"] for e in echoes} == {echoes[0]["connection"]}
    assert [e["request_on_connection"] for e in echoes] == [1, 2, 3, 4]
    assert [e["path"] for e in echoes] == ["/k1", "/k2", "/k3", "/k4"]
    assert backend.peak_connections == 1
    assert backend.connections == 1
    assert backend.request_count == 4


def test_keepalive_requests_session_reuses_one_connection(faultserver):
    srv = faultserver(one_listener())
    backend = srv["backend"]
    with requests.Session() as session:
        responses = [session.get(f"{backend.url}/s{i}", timeout=LONG_S) for i in range(1, 4)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    echoes = [r.json() for r in responses]
    assert [e["request_on_connection"] for e in echoes] == [1, 2, 3]
    assert len({e["connection"] for e in echoes}) == 1
    assert backend.peak_connections == 1


def test_pipelining_answers_in_order(faultserver):
    srv = faultserver(one_listener())
    backend = srv["backend"]
    pipeline = (
        net.get_request("/a")
        + b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"
        + net.get_request("/c")
    )
    with exchange(backend.port, pipeline) as (sock, reader):  # one write
        echoes = [json.loads(reader.read_response().body) for _ in range(3)]
        assert [(e["method"], e["path"], e["request_on_connection"]) for e in echoes] == [
            ("GET", "/a", 1),
            ("POST", "/b", 2),
            ("GET", "/c", 3),
        ]
        assert echoes[1]["body_bytes"] == 4
        # the connection is still there for more
        sock.sendall(net.get_request("/d"))
        assert json.loads(reader.read_response().body)["request_on_connection"] == 4
        assert backend.peak_connections == 1


# --- request bodies -----------------------------------------------------------------------------


def test_body_content_length_is_read(faultserver):
    srv = faultserver(one_listener())
    url = srv["backend"].url
    echo = httpx.post(url + "/up", content=b"x" * 3000, timeout=LONG_S).json()
    assert (echo["method"], echo["body_bytes"], echo["headers"]["content-length"]) == ("POST", 3000, "3000")
    echo = requests.put(url + "/up", data=b"y" * 70000, timeout=LONG_S).json()
    assert (echo["method"], echo["body_bytes"]) == ("PUT", 70000)


def test_body_chunked_is_read(faultserver):
    srv = faultserver(one_listener())
    backend = srv["backend"]

    def pieces():
        yield b"hello "
        yield b"chunked "
        yield b"world"

    echo = httpx.post(backend.url + "/c", content=pieces(), timeout=LONG_S).json()
    assert echo["headers"]["transfer-encoding"] == "chunked"
    assert echo["body_bytes"] == 19
    echo = requests.post(backend.url + "/c", data=pieces(), timeout=LONG_S).json()
    assert echo["headers"]["transfer-encoding"] == "chunked"
    assert echo["body_bytes"] == 19
    request = (
        b"POST /raw HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nx-trailer: t\r\n\r\n"
    )
    with exchange(backend.port, request) as (_sock, reader):
        echo = json.loads(reader.read_response().body)
        assert (echo["path"], echo["body_bytes"]) == ("/raw", 8)


def test_expect_100_continue_comes_before_the_body(faultserver):
    srv = faultserver(one_listener())
    head = b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    with exchange(srv["backend"].port, head) as (sock, reader):  # headers only, no body yet
        interim = reader.read_response()
        assert interim.head == b"HTTP/1.1 100 Continue\r\n\r\n"
        assert reader.buf == b""
        sock.sendall(b"hello")
        final = reader.read_response()
        assert final.status == 200
        echo = json.loads(final.body)
        assert (echo["body_bytes"], echo["headers"]["expect"]) == (5, "100-continue")


@pytest.mark.parametrize(("action", "unfixed_exit"), [("close", 52), ("reset", 56)])
def test_expect_100_continue_meeting_a_fault_is_retried_by_curl(faultserver, tmp_path, action, unfixed_exit):
    # The interim answer is sent only once a rule decided to answer: a request that meets
    # close or reset never had its body asked for, so curl (like .NET, Apache HttpClient and
    # the JDK) resends it on a fresh connection. Before: 100 Continue came first, curl sent
    # the body, and then gave up with exit 52 (close) or 56 (reset).
    srv = faultserver(one_listener(rules=[{"match": {"request_on_connection": 2}, "action": action}]))
    body = tmp_path / "body.bin"
    body.write_bytes(bytes(range(256)) * 12)  # 3 KB
    url = srv["backend"].url
    done = net.curl(  # curl URL1 -w ... --next -X POST ... URL2: two requests, one connection
        "-o", "/dev/null", "-w", "%{http_code},", url + "/warmup", "--next", "-sS", "-o", "/dev/null",
        "-w", "%{http_code}", "-X", "POST", "-H", "Expect: 100-continue", "--data-binary", f"@{body}",
        url + "/orders",
    )
    assert (done.returncode, done.stdout) == (0, "200,200"), (done.stderr, unfixed_exit)
    [fault] = srv.events(type="fault", action=action)
    assert (fault["path"], fault["fingerprint"]) == ("/orders", "POST /orders -")
    [retry] = srv.retries()
    assert (retry["method"], retry["path"], retry["request_on_connection"]) == ("POST", "/orders", 1)


# --- HEAD, HTTP/1.0, Connection: close ----------------------------------------------------------


def test_head_sends_headers_without_body(faultserver):
    srv = faultserver(one_listener(response=TEXT_OK))
    backend = srv["backend"]
    with exchange(backend.port, b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n") as (sock, reader):
        read_ok(reader, b"content-type: text/plain\r\ncontent-length: 3\r\n", body=None)
        # no body bytes follow: the next response on the connection starts cleanly
        sock.sendall(net.get_request("/after"))
        after = reader.read_response()
        assert (after.status_line, after.body) == (b"HTTP/1.1 200 OK", b"ok\n")
    r = httpx.head(backend.url + "/h", timeout=LONG_S)
    assert (r.status_code, r.headers["content-length"], r.content) == (200, "3", b"")
    r = requests.head(backend.url + "/h", timeout=LONG_S)
    assert (r.status_code, r.headers["content-length"], r.content) == (200, "3", b"")


def test_head_of_the_echo_has_its_length(faultserver):
    srv = faultserver(one_listener())
    with exchange(srv["backend"].port, b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n") as (sock, reader):
        resp = reader.read_response(head_request=True)
        assert resp.status == 200 and int(resp.header(b"content-length")) > 0
        sock.sendall(net.get_request("/next"))
        assert json.loads(reader.read_response().body)["request_on_connection"] == 2


def test_http10_without_keepalive_closes(faultserver):
    srv = faultserver(one_listener(response={"body": "ok\n"}))
    with exchange(srv["backend"].port, b"GET /old HTTP/1.0\r\n\r\n") as (_sock, reader):
        read_ok(reader, b"content-length: 3\r\nconnection: close\r\n")
        assert_fin(reader)


def test_http10_with_keepalive_stays_open(faultserver):
    srv = faultserver(one_listener(response={"body": "ok\n"}))
    backend = srv["backend"]
    request = b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    with exchange(backend.port, request) as (sock, reader):
        read_ok(reader, b"content-length: 3\r\nconnection: keep-alive\r\n")
        sock.sendall(request)
        assert reader.read_response().body == b"ok\n"
        sock.sendall(b"GET /last HTTP/1.0\r\n\r\n")
        assert reader.read_response().header(b"connection") == b"close"
        assert_fin(reader)
        assert backend.connections == 1
        assert [e["request_on_connection"] for e in srv.requests()] == [1, 2, 3]


def test_connection_close_from_client_gets_close_then_fin(faultserver):
    srv = faultserver(one_listener())
    backend = srv["backend"]
    with exchange(backend.port, net.get_request("/bye", extra=b"Connection: close\r\n")) as (_sock, reader):
        resp = reader.read_response()
        assert resp.status == 200
        assert resp.header(b"connection") == b"close"
        assert json.loads(resp.body)["headers"]["connection"] == "close"
        assert_fin(reader)
    r = httpx.get(backend.url + "/bye", headers={"Connection": "close"}, timeout=LONG_S)
    assert (r.status_code, r.headers["connection"]) == (200, "close")
    srv.wait_for(type="peer_close", how="fin", timeout=LONG_S)


def test_connection_close_in_profile_headers_closes_after_response(faultserver):
    srv = faultserver(one_listener(response={"headers": {"connection": "close"}, "body": "ok\n"}))
    backend = srv["backend"]
    with exchange(backend.port, net.get_request("/p")) as (_sock, reader):
        read_ok(reader, b"connection: close\r\ncontent-length: 3\r\n")
        assert_fin(reader)
    with httpx.Client(timeout=LONG_S) as client:
        assert [client.get(backend.url).status_code for _ in range(3)] == [200, 200, 200]
    assert backend.connections == 4  # a new connection for each request


# --- framing --------------------------------------------------------------------------------------


def test_framing_length_exact_bytes(faultserver):
    srv = faultserver(one_listener(response={"body": "ok\n", "framing": "length"}))
    with exchange(srv["backend"].port, net.get_request("/")) as (_sock, reader):
        read_ok(reader, b"content-length: 3\r\n")
        assert reader.buf == b""


def test_framing_chunked_exact_bytes(faultserver):
    srv = faultserver(one_listener(response={"body": "ok\n", "framing": "chunked"}))
    backend = srv["backend"]
    with net.connect(HOST, backend.port) as sock:
        sock.sendall(net.get_request("/") + net.get_request("/"))
        expected = b"HTTP/1.1 200 OK\r\n" + DATE + b"transfer-encoding: chunked\r\n\r\n3\r\nok\n\r\n0\r\n\r\n"
        data = b""
        while data.count(b"0\r\n\r\n") < 2:
            data += sock.recv(65536)
        assert_bytes(expected + expected, data)  # keep-alive: both answered on one connection
    assert httpx.get(backend.url, timeout=LONG_S).content == b"ok\n"
    assert requests.get(backend.url, timeout=LONG_S).content == b"ok\n"


def test_framing_chunked_for_http10_ends_with_close(faultserver):
    srv = faultserver(one_listener(response={"body": "ok\n", "framing": "chunked"}))
    with net.connect(HOST, srv["backend"].port) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        data = net.recv_to_fin(sock)  # HTTP/1.0 has no chunked encoding: the close ends the body
        assert_bytes(b"HTTP/1.1 200 OK\r\n" + DATE + b"connection: close\r\n\r\nok\n", data)


def test_framing_close_exact_bytes_then_fin(faultserver):
    srv = faultserver(one_listener(response={"body": "ok\n", "framing": "close"}))
    backend = srv["backend"]
    with net.connect(HOST, backend.port) as sock:
        sock.sendall(net.get_request("/"))
        data = net.recv_to_fin(sock)  # raises on RST
        assert_bytes(b"HTTP/1.1 200 OK\r\n" + DATE + b"connection: close\r\n\r\nok\n", data)
    r = httpx.get(backend.url, timeout=LONG_S)
    assert (r.content, r.headers.get("content-length")) == (b"ok\n", None)
    assert requests.get(backend.url, timeout=LONG_S).content == b"ok\n"


# --- the healthy response and the echo ------------------------------------------------------------


def test_body_size_generates_filler(faultserver):
    srv = faultserver(one_listener(response={"body": {"size": "1KiB"}}))
    url = srv["backend"].url
    r = httpx.get(url, timeout=LONG_S)
    assert (r.status_code, r.headers["content-length"], len(r.content)) == (200, "1024", 1024)
    assert r.content == requests.get(url, timeout=LONG_S).content


def test_response_custom_status_and_headers(faultserver):
    response = {
        "status": 503,
        "headers": {"content-type": "text/plain", "Retry-After": "3", "x-backend": "b1"},
        "body": "down\n",
    }
    srv = faultserver(one_listener(response=response))
    backend = srv["backend"]
    with exchange(backend.port, net.get_request("/")) as (_sock, reader):
        resp = reader.read_response()
        assert_bytes(
            b"HTTP/1.1 503 Service Unavailable\r\n"
            + DATE
            + b"content-type: text/plain\r\nRetry-After: 3\r\nx-backend: b1\r\n"
            + b"content-length: 5\r\n\r\ndown\n",
            resp.head + resp.body,
        )
    r = httpx.get(backend.url, timeout=LONG_S)
    assert (r.status_code, r.headers["retry-after"], r.headers["x-backend"], r.text) == (
        503,
        "3",
        "b1",
        "down\n",
    )
    r = requests.get(backend.url, timeout=LONG_S)
    assert (r.status_code, r.reason, r.text) == (503, "Service Unavailable", "down\n")


def test_response_headers_override_the_defaults(faultserver):
    # profile-v1: headers are merged over the defaults (date, content-length)
    response = {"headers": {"Date": "Thu, 01 Jan 1970 00:00:00 GMT", "Content-Length": "2"}, "body": "ok\n"}
    srv = faultserver(one_listener(response=response))
    with exchange(srv["backend"].port, net.get_request("/")) as (_sock, reader):
        resp = reader.read_response()
        assert resp.head == (
            b"HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\nContent-Length: 2\r\n\r\n"
        )
        assert resp.body == b"ok"


def test_response_204_has_no_body_and_keeps_alive(faultserver):
    srv = faultserver(one_listener(response={"status": 204}))
    backend = srv["backend"]
    with httpx.Client(timeout=LONG_S) as client:
        for _ in range(2):
            r = client.get(backend.url)
            assert (r.status_code, r.content, r.headers.get("content-length")) == (204, b"", None)
    assert backend.connections == 1


def test_echo_describes_the_request(faultserver):
    srv = faultserver(one_listener())
    backend = srv["backend"]
    request = b"GET /orders/7?x=1 HTTP/1.1\r\nHost: shop\r\nX-Request-Id: abc\r\n\r\n"
    with exchange(backend.port, request) as (_sock, reader):
        resp = reader.read_response()
        assert resp.header(b"content-type") == b"application/json"
        echo = json.loads(resp.body)
        conn_id = srv.events(type="accept")[0]["conn"]
        assert echo == {
            "method": "GET",
            "path": "/orders/7",
            "target": "/orders/7?x=1",
            "headers": {"host": "shop", "x-request-id": "abc"},
            "body_bytes": 0,
            "listener": "backend",
            "connection": conn_id,
            "request_on_connection": 1,
        }
    with requests.Session() as session:
        first = session.delete(backend.url + "/d", timeout=LONG_S).json()
        second = session.patch(backend.url + "/p", data=b"abc", timeout=LONG_S).json()
    assert (first["method"], first["request_on_connection"]) == ("DELETE", 1)
    assert (second["method"], second["request_on_connection"], second["body_bytes"]) == ("PATCH", 2, 3)
    assert first["connection"] == second["connection"] != conn_id


def test_http09_request_line_gets_400(faultserver):
    srv = faultserver(one_listener())
    with exchange(srv["backend"].port, b"GET /x\r\n") as (sock, _reader):
        data = net.recv_to_fin(sock)
        body = b'{"error": "HTTP/0.9 requests are not supported"}\n'
        assert_bytes(
            b"HTTP/1.1 400 Bad Request\r\n" + DATE + b"content-type: application/json\r\n"
            + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body) + re.escape(body),
            data,
        )
    assert srv.events(type="response")[0]["status"] == 400
    assert srv.requests() == []
