"""A healthy forward's short path (`forward_healthy`): an upstream that writes each whole
answer in one write, as nginx does for a small file, and what the client reads byte for
byte, the events, the counts and the pool's reuse. An answer the short path does not take
(bytes after it, `Connection: close`) goes the general way, with the same outcome."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from faultserver.testing import FaultServer
from tests.proxy.conftest import proxy_profile
from tests.proxy.raw_upstream import RawUpstream, read_head
from tests.proxy.upstream import Upstream

_HEAD = (
    b"HTTP/1.1 200 OK\r\nServer: one-write\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
    b"Connection: keep-alive\r\nETag: \"1-3\"\r\n\r\n"
)
_ANSWERS = {
    b"/plain": _HEAD + b"ok\n",
    # bytes no request asked for after the answer: the connection must not carry another
    b"/extra": _HEAD + b"ok\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale",
    b"/closing": _HEAD.replace(b"keep-alive", b"close") + b"ok\n",
}


class _OneWriteUpstream(RawUpstream):
    """Answers each request with one `sendall` of a whole answer, chosen by its path;
    closes after `/closing` and `/extra`. Keeps each request's head as it arrived."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        super().__init__()

    def serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = b""
        while (read := read_head(conn, data)) is not None:
            head, data = read
            self.heads.append(head)
            path = head.split(b" ", 2)[1]
            conn.sendall(_ANSWERS[path])
            if path != b"/plain":
                return


@pytest.fixture
def one_write() -> Iterator[_OneWriteUpstream]:
    upstream = _OneWriteUpstream()
    yield upstream
    upstream.close()


def _read_answer(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n\r\nok\n"):
        chunk = sock.recv(65536)
        assert chunk, f"the proxy closed after {data!r}"
        data += chunk
    return data


def test_short_path_relays_the_answer_as_it_came_less_its_connection_header(
    faultserver: Callable[..., FaultServer], one_write: _OneWriteUpstream
) -> None:
    srv = faultserver(proxy_profile(one_write.url), admin=True)
    port = int(srv.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        peer = f"127.0.0.1:{sock.getsockname()[1]}"
        for _ in range(2):
            sock.sendall(b"GET /plain HTTP/1.1\r\nHost: example\r\nX-Fault-Free: 1\r\n\r\n")
            assert _read_answer(sock) == _ANSWERS[b"/plain"].replace(b"Connection: keep-alive\r\n", b"")
        sock.sendall(b"GET /plain HTTP/1.1\r\nHost: example\r\nConnection: close\r\n\r\n")
        last = _read_answer(sock)
        assert sock.recv(100) == b""  # FIN after the answer the client asked to be the last
    assert last == _ANSWERS[b"/plain"].replace(b"Connection: keep-alive\r\n", b"").replace(
        b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n"
    )
    assert one_write.connections == 1
    assert one_write.heads[0] == (
        b"GET /plain HTTP/1.1\r\nhost: example\r\nx-fault-free: 1\r\n"
        b"x-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: example"
    )
    srv.wait_for(type="forward", request_on_connection=3)
    forwards = srv.events(type="forward")
    assert [(e["status"], e["upstream_status"], e["reused"], e["peer"]) for e in forwards] == [
        (200, 200, False, peer),
        (200, 200, True, peer),
        (200, 200, True, peer),
    ]
    assert all(e["upstream_ms"] > 0 for e in forwards)
    assert srv.events(type="response") == []
    metrics = httpx.get(f"{srv.control_url}/metrics").text
    assert 'faultserver_upstream_responses_total{listener="proxy",class="2xx"} 3' in metrics
    assert 'faultserver_upstream_latency_seconds_count{listener="proxy"} 3' in metrics
    assert re.search(r'faultserver_responses_total\{listener="proxy",status="200"\} 3\b', metrics)
    assert 'faultserver_upstream_pool_idle{listener="proxy"} 1' in metrics


def test_short_path_http10_keep_alive_client_is_told_so(
    faultserver: Callable[..., FaultServer], one_write: _OneWriteUpstream
) -> None:
    srv = faultserver(proxy_profile(one_write.url))
    port = int(srv.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        for _ in range(2):
            sock.sendall(b"GET /plain HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            answer = _read_answer(sock)
            assert answer == _ANSWERS[b"/plain"].replace(b"Connection: keep-alive\r\n", b"").replace(
                b"\r\n\r\n", b"\r\nconnection: keep-alive\r\n\r\n"
            )
    assert one_write.connections == 1


@pytest.mark.parametrize("path", ["/extra", "/closing"])
def test_answer_the_short_path_does_not_take_is_relayed_and_its_connection_not_reused(
    faultserver: Callable[..., FaultServer], one_write: _OneWriteUpstream, path: str
) -> None:
    srv = faultserver(proxy_profile(one_write.url))
    with httpx.Client(timeout=5) as client:
        answers = [client.get(srv.url + path) for _ in range(2)]
    assert [(a.status_code, a.text) for a in answers] == [(200, "ok\n")] * 2
    assert one_write.connections == 2
    srv.wait_for(type="forward", request_on_connection=2)
    assert [e["reused"] for e in srv.events(type="forward")] == [False, False]


def test_drop_while_the_upstream_is_silent_gives_its_connection_back(
    faultserver: Callable[..., FaultServer], upstream: Upstream
) -> None:
    srv = faultserver(proxy_profile(upstream.url), admin=True)
    outcome: list[object] = []

    def stalled() -> None:
        try:
            outcome.append(httpx.get(srv.url + "/stall", timeout=5))
        except httpx.HTTPError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=stalled)
    thread.start()
    srv.wait_for(type="request", path="/stall")
    time.sleep(0.2)  # the request is upstream, and the forward waits for its answer
    assert _pool_in_use(srv) == 1
    assert srv.drop(how="rst") == 1
    thread.join(5)
    assert isinstance(outcome[0], httpx.ReadError)
    assert _pool_in_use(srv) == 0
    assert httpx.get(srv.url + "/ok", timeout=5).status_code == 200


def _pool_in_use(srv: FaultServer) -> float:
    text = httpx.get(f"{srv.control_url}/metrics").text
    found = re.search(r'faultserver_upstream_pool_in_use\{listener="proxy"\} (\d+)', text)
    assert found, text
    return float(found.group(1))
