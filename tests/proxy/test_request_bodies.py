"""Request bodies on a proxied listener: they stream to the upstream as they arrive, so
what matters is that each reaches the right request, whole, and that the rest of a body
the upstream never sees (a fault answered instead) is dropped without stopping the next."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Callable

from faultserver.testing import FaultServer
from tests.support import net
from tests.support.net import RawReader


def connect(srv: FaultServer) -> socket.socket:
    return net.connect("127.0.0.1", srv["proxy"].port, 10)


def post(path: str, body: bytes, *headers: bytes) -> bytes:
    head = b"POST %s HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n" % (path.encode(), len(body))
    return head + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


def test_expect_100_continue_is_answered_before_the_body(proxy: Callable[..., FaultServer]) -> None:
    srv = proxy()
    body = b"z" * 200_000
    with connect(srv) as sock:
        sock.sendall(
            post("/echo", b"", b"expect: 100-continue").replace(
                b"content-length: 0", b"content-length: 200000"
            )
        )
        reader = RawReader(sock)
        interim = reader.read_response()
        assert interim.status == 100
        sock.sendall(body)
        final = reader.read_response()
    assert final.status == 200
    echo = json.loads(final.body)
    assert (echo["size"], echo["sha256"]) == (200_000, hashlib.sha256(body).hexdigest())
    assert "expect" not in dict(echo["headers"])


def test_pipelined_posts_with_bodies_reach_their_own_requests(proxy: Callable[..., FaultServer]) -> None:
    srv = proxy()
    bodies = [b"a" * 10, b"b" * 100_000, b"", b"c" * 3, b"d" * 70_000]
    with connect(srv) as sock:
        sock.sendall(b"".join(post(f"/echo?{i}", body) for i, body in enumerate(bodies)))
        reader = RawReader(sock)
        echoes = [json.loads(reader.read_response().body) for _ in bodies]
    assert [e["path"] for e in echoes] == [f"/echo?{i}" for i in range(len(bodies))]
    assert [e["sha256"] for e in echoes] == [hashlib.sha256(b).hexdigest() for b in bodies]


def test_body_of_a_faulted_request_is_dropped_and_next_is_forwarded(
    proxy: Callable[..., FaultServer],
) -> None:
    srv = proxy({"match": {"path": "/canned"}, "action": "respond", "status": 202, "body": "no\n"})
    big = b"q" * 3_000_000
    with connect(srv) as sock:
        sock.sendall(post("/canned", big) + post("/echo", b"after"))
        reader = RawReader(sock)
        canned = reader.read_response()
        after = reader.read_response()
    assert (canned.status, canned.body) == (202, b"no\n")
    echo = json.loads(after.body)
    assert (echo["path"], echo["sha256"]) == ("/echo", hashlib.sha256(b"after").hexdigest())


def test_stalled_upload_gets_408(proxy: Callable[..., FaultServer]) -> None:
    srv = proxy(limits={"header_timeout": "300ms"})
    with connect(srv) as sock:
        sock.sendall(post("/echo", b"x" * 1000)[:-500])  # half the body, then silence
        data, how = net.read_to_end(sock)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert b"request body stalled" in data
    assert how == "eof"
