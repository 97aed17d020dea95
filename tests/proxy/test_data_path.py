"""What a user of a proxy expects of its data path, through faultserver to a real upstream:
bytes unchanged, framing kept or re-framed, bodiless answers, pipelining in order,
hop-by-hop headers handled per RFC 9110 7.6.1, forwarding headers added, a kept-alive pool."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from faultserver.testing import FaultServer
from tests.proxy.upstream import Upstream, pattern_bytes
from tests.support import net
from tests.support.net import RawReader, curl

MB = 1024 * 1024


def connect(srv: FaultServer) -> socket.socket:
    return net.connect("127.0.0.1", srv["proxy"].port, 10)


def test_forward_50mb_download_sha256_matches(proxy: Callable[..., FaultServer]) -> None:
    srv = proxy()
    digest = hashlib.sha256()
    size = 0
    with httpx.stream("GET", srv.url + f"/file/{50 * MB}", timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["content-length"] == str(50 * MB)
        for piece in r.iter_raw():
            digest.update(piece)
            size += len(piece)
    assert size == 50 * MB
    assert digest.hexdigest() == hashlib.sha256(pattern_bytes(50 * MB)).hexdigest()
    forwarded = srv.wait_for(type="forward")
    assert forwarded["upstream_status"] == 200
    assert forwarded["status"] == 200


def test_forward_chunked_download_is_rechunked(proxy: Callable[..., FaultServer]) -> None:
    srv = proxy()
    with connect(srv) as sock:
        sock.sendall(net.get_request(f"/chunked/{300_000}"))
        response = RawReader(sock).read_response()
    assert response.status == 200
    assert response.header(b"transfer-encoding") == b"chunked"
    assert response.header(b"content-length") is None
    assert response.body == pattern_bytes(300_000)


def test_forward_chunked_download_to_http10_client_ends_with_close(
    proxy: Callable[..., FaultServer],
) -> None:
    srv = proxy()
    with connect(srv) as sock:
        sock.sendall(net.get_request("/chunked/70000", version=b"HTTP/1.0"))
        data, how = net.read_to_end(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding" not in head.lower()
    assert b"connection: close" in head.lower()
    assert (body, how) == (pattern_bytes(70000), "eof")


def _pieces(count: int = 40, size: int = 10_000) -> Iterator[bytes]:
    for i in range(count):
        yield bytes([i % 256]) * size


def test_forward_chunked_upload_streams_to_upstream(proxy: Callable[..., FaultServer]) -> None:
    srv = proxy()
    r = httpx.post(srv.url + "/echo", content=_pieces(), timeout=10)
    assert r.status_code == 200
    echo = r.json()
    assert echo["size"] == 400_000
    assert echo["sha256"] == hashlib.sha256(b"".join(_pieces())).hexdigest()
    sent = dict((name, value) for name, value in echo["headers"])
    assert sent["transfer-encoding"] == "chunked"  # streamed as it came, not re-framed
    assert "content-length" not in sent


def test_forward_upload_larger_than_max_body_bytes_streams(proxy: Callable[..., FaultServer]) -> None:
    # 50 MB, beyond limits.max_body_bytes (16 MiB): refused with 413 if it were held whole
    srv = proxy()
    pieces = 50 * 16  # of 64 KiB
    digest = hashlib.sha256()
    for piece in _pieces(pieces, 65536):
        digest.update(piece)
    r = httpx.post(srv.url + "/echo", content=_pieces(pieces, 65536), timeout=60)
    assert r.status_code == 200
    assert (r.json()["size"], r.json()["sha256"]) == (50 * MB, digest.hexdigest())
    r = httpx.put(
        srv.url + "/echo",
        content=_pieces(pieces, 65536),
        headers={"content-length": str(50 * MB)},
        timeout=60,
    )
    assert (r.json()["size"], r.json()["sha256"]) == (50 * MB, digest.hexdigest())
    sent = dict((name, value) for name, value in r.json()["headers"])
    assert sent["content-length"] == str(50 * MB)


def test_forward_upload_by_curl_chunked(proxy: Callable[..., FaultServer], tmp_path: Path) -> None:
    srv = proxy()
    body = b"x" * 123_457
    (tmp_path / "body").write_bytes(body)
    upload = f"@{tmp_path / 'body'}"
    result = curl("-H", "Transfer-Encoding: chunked", "--data-binary", upload, srv.url + "/echo")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sha256"] == hashlib.sha256(body).hexdigest()


def test_forward_head_204_304_have_no_body(proxy: Callable[..., FaultServer]) -> None:
    srv = proxy()
    with connect(srv) as sock:
        sock.sendall(
            b"HEAD /file/5000 HTTP/1.1\r\nhost: x\r\n\r\n"
            b"GET /status/204 HTTP/1.1\r\nhost: x\r\n\r\n"
            b"GET /status/304 HTTP/1.1\r\nhost: x\r\n\r\n"
            b"GET /ok HTTP/1.1\r\nhost: x\r\n\r\n"
        )
        reader = RawReader(sock)
        head = reader.read_response(head_request=True)
        no_content = reader.read_response()
        not_modified = reader.read_response()
        ok = reader.read_response()
    assert (head.status, head.header(b"content-length"), head.body) == (200, b"5000", b"")
    assert (no_content.status, no_content.body) == (204, b"")
    assert (not_modified.status, not_modified.body) == (304, b"")
    assert (ok.status, ok.body) == (200, b"ok\n")  # nothing of a body was left in between


def test_forward_pipelined_requests_answered_in_order(proxy: Callable[..., FaultServer]) -> None:
    srv = proxy()
    sizes = [10, 70_000, 1, 5000, 300]
    with connect(srv) as sock:
        sock.sendall(b"".join(net.get_request(f"/file/{n}") for n in sizes))
        reader = RawReader(sock)
        bodies = [reader.read_response().body for _ in sizes]
    assert [len(b) for b in bodies] == sizes


def test_forward_headers_hop_by_hop_removed_forwarding_added(
    proxy: Callable[..., FaultServer], upstream: Upstream
) -> None:
    srv = proxy(via="faultserver")
    with connect(srv) as sock:
        sock.sendall(
            b"GET /echo HTTP/1.1\r\nHost: app.example\r\nConnection: keep-alive, x-private\r\n"
            b"X-Private: secret\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: a\r\n"
            b"Upgrade: foo\r\nX-Forwarded-For: 10.0.0.1\r\nX-Other: kept\r\nX-Fault-Not: x\r\n\r\n"
        )
        response = RawReader(sock).read_response()
    sent = dict((name, value) for name, value in json.loads(response.body)["headers"])
    for name in ("connection", "x-private", "keep-alive", "te", "proxy-authorization", "upgrade"):
        assert name not in sent, name
    assert sent["host"] == "app.example"
    assert sent["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
    assert sent["x-forwarded-proto"] == "http"
    assert sent["x-forwarded-host"] == "app.example"
    assert sent["x-other"] == "kept"
    assert sent["via"] == "1.1 faultserver"
    assert response.header(b"via") == b"1.1 faultserver"


def test_forward_host_upstream_rewrites_host(proxy: Callable[..., FaultServer], upstream: Upstream) -> None:
    srv = proxy(host="upstream")
    r = httpx.get(srv.url + "/echo", headers={"host": "app.example"}, timeout=5)
    sent = dict((name, value) for name, value in r.json()["headers"])
    assert sent["host"] == f"127.0.0.1:{upstream.port}"
    assert sent["x-forwarded-host"] == "app.example"


def test_forward_keepalive_pool_reuses_upstream_connections(
    proxy: Callable[..., FaultServer], upstream: Upstream
) -> None:
    srv = proxy()
    with httpx.Client(timeout=5) as client:
        for _ in range(20):
            assert client.get(srv.url + "/ok").status_code == 200
    assert upstream.connections == 1
    srv.wait_for(type="forward", request_on_connection=20)
    forwards = srv.events(type="forward")
    assert [e["reused"] for e in forwards] == [False] + [True] * 19


def test_forward_pool_is_bounded(proxy: Callable[..., FaultServer], upstream: Upstream) -> None:
    srv = proxy(pool={"max_connections": 2})
    clients = [httpx.Client(timeout=5) for _ in range(4)]
    try:
        for _ in range(3):
            for client in clients:
                assert client.get(srv.url + "/ok").status_code == 200
    finally:
        for client in clients:
            client.close()
    assert upstream.connections <= 2
