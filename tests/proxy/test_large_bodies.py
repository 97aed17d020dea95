"""Large answers with a Content-Length, which a plain forward moves in the kernel (`splice`):
the bounds and faults of the read-and-write relay hold for them too. Each body here is
above `SPLICE_MIN_BYTES`, so these go through `faultserver/_wire/splice.py`."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from faultserver._wire.splice import SPLICE_MIN_BYTES
from faultserver.testing import FaultServer
from tests.proxy.conftest import proxy_profile
from tests.proxy.upstream import pattern_bytes
from tests.support import net
from tests.support.wait import wait_until

MIB = 1024 * 1024


def fetch(srv: FaultServer, path: str) -> tuple[bytes, bytes, str]:
    """The head and body of `path` on one connection, and how the connection ended."""
    with net.connect("127.0.0.1", srv["proxy"].port, 5) as sock:
        sock.sendall(net.get_request(path))
        data, ended = net.read_to_end(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body, ended


def test_large_download_keeps_the_connection_for_the_next_request(
    proxy: Callable[..., FaultServer],
) -> None:
    srv = proxy()
    size = 3 * MIB
    assert size >= SPLICE_MIN_BYTES
    with net.connect("127.0.0.1", srv["proxy"].port, 5) as sock:
        reader = net.RawReader(sock)
        for _ in range(2):
            sock.sendall(net.get_request(f"/file/{size}"))
            answer = reader.read_response()
            assert answer.status == 200 and answer.body == pattern_bytes(size)
    # the event follows the answer's last byte out: wait for it
    forwards = wait_until(lambda: len(srv.events(type="forward")) == 2 and srv.events(type="forward"))
    assert [(e["status"], e["reused"]) for e in forwards] == [(200, False), (200, True)]


@pytest.mark.parametrize("failure", ["gateway", "mirror"])
def test_large_download_cut_by_the_upstream_ends_the_client_connection(
    proxy: Callable[..., FaultServer], failure: str
) -> None:
    srv = proxy(upstream_failure=failure)
    head, body, ended = fetch(srv, f"/cut/{2 * MIB}")
    assert head.startswith(b"HTTP/1.1 200") and b"content-length: %d" % (4 * MIB) in head
    assert (body == pattern_bytes(2 * MIB), ended) == (True, "eof")
    event = srv.wait_for(type="upstream_error")
    assert (event["reason"], event["phase"], event["answer"]) == ("closed", "read", "fin")


def test_large_download_reset_by_the_upstream_is_a_reset(proxy: Callable[..., FaultServer]) -> None:
    """An RST mid-body on the kernel's path is told as a reset (a socket reports its RST
    once: a later read sees an end, which must not turn it into `closed`)."""
    srv = proxy()
    head, body, _ = fetch(srv, f"/cutreset/{2 * MIB}")
    assert head.startswith(b"HTTP/1.1 200") and b"content-length: %d" % (4 * MIB) in head
    assert len(body) < 4 * MIB and body == pattern_bytes(2 * MIB)[: len(body)]
    event = srv.wait_for(type="upstream_error")
    assert (event["reason"], event["phase"]) == ("reset", "read")


def test_large_download_partial_cuts_at_its_byte(proxy: Callable[..., FaultServer]) -> None:
    cut = 2 * MIB + 17
    srv = proxy({"match": {"path": "/file/*"}, "action": "forward", "then": {"partial": {"bytes": cut}}})
    with net.connect("127.0.0.1", srv["proxy"].port, 5) as sock:
        sock.sendall(net.get_request(f"/file/{5 * MIB}"))
        data, ended = net.read_to_end(sock)
    assert (len(data), ended) == (cut, "eof")
    assert data.partition(b"\r\n\r\n")[2] == pattern_bytes(5 * MIB)[: cut - data.index(b"\r\n\r\n") - 4]


@pytest.fixture
def stalling_upstream() -> Iterator[str]:
    """An upstream that promises 4 MiB, sends 2 MiB, then sends nothing more."""
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (4 * MIB))
            conn.sendall(b"x" * (2 * MIB))
            done.wait(10)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        done.set()
        thread.join(10)
        listener.close()


def test_large_download_stalled_upstream_is_a_read_timeout(
    faultserver: Callable[..., FaultServer], stalling_upstream: str
) -> None:
    srv = faultserver(proxy_profile(stalling_upstream, upstream_timeouts={"read": "300ms"}))
    head, body, ended = fetch(srv, "/big")
    assert head.startswith(b"HTTP/1.1 200") and (body, ended) == (b"x" * (2 * MIB), "eof")
    event = srv.wait_for(type="upstream_error")
    assert (event["reason"], event["phase"], event["answer"]) == ("timeout", "read", "fin")


@pytest.fixture
def endless_head_upstream() -> Iterator[str]:
    """An upstream whose answer's head never ends (a header line after another)."""
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            try:
                while not done.is_set():
                    conn.sendall(b"x-filler: " + b"a" * 1000 + b"\r\n")
            except OSError:
                pass  # the proxy closed the connection: what this test waits for

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        done.set()
        thread.join(10)
        listener.close()


def test_endless_answer_head_is_a_502_not_a_growing_buffer(
    faultserver: Callable[..., FaultServer], endless_head_upstream: str
) -> None:
    srv = faultserver(proxy_profile(endless_head_upstream))
    head, _, ended = fetch(srv, "/")
    assert head.startswith(b"HTTP/1.1 502") and ended == "eof"
    event = srv.wait_for(type="upstream_error")
    assert (event["reason"], event["phase"], event["answer"]) == ("invalid", "read", 502)
    assert "the answer's head is over" in event["error"]
