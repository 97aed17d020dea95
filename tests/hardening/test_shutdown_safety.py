"""Shutdown and faults never lose the server (issue 8): SIGTERM under heavy load ends the process
in under 2 s with exit status 0 and a FIN for every client; an exception in one connection's
handler is logged once, reported as an `error` event, and touches no other connection.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest
from _hardening import connect, healthy, raise_own_fd_limit

import faultserver.testing
from faultserver._decide.response import PreparedResponse
from tests.support.cli import start_cli
from tests.support.net import recv_to_fin
from tests.support.profiles import one_listener
from tests.support.wait import wait_until

LOAD_PROFILE = """\
version: 1
listeners:
  - name: backend
    bind: 127.0.0.1:0
    backlog: 1024
    rules:
      - match: {path: /hang}
        action: hang
      - match: {path: /dribble}
        action: dribble
        chunk: 1
        interval: 200ms
      - match: {path: /slow}
        action: respond
        delay: 30s
"""


def test_shutdown_sigterm_under_500_connections_exits_0_within_2s(tmp_path):
    """500 connections: held (hang), mid-dribble, waiting on a delay, mid-request (headers
    half sent), idle kept-alive, and silent. SIGTERM: exit 0 in < 2 s, and every client
    reads a clean end (FIN), none an RST."""
    raise_own_fd_limit(1500)
    srv = start_cli(tmp_path, LOAD_PROFILE)
    port = srv.port("backend")
    socks: list[tuple[str, socket.socket]] = []
    try:
        kinds = {
            "hang": b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n",
            "dribble": b"GET /dribble HTTP/1.1\r\nHost: x\r\n\r\n",
            "slow": b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n",
            "mid-request": b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Le",
            "mid-body": b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\npart",
            "idle": b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n",
            "silent": b"",
        }
        names = list(kinds)
        for i in range(500):
            kind = names[i % len(names)]
            sock = connect(port, timeout=10)
            if kinds[kind]:
                sock.sendall(kinds[kind])
            socks.append((kind, sock))
        # all 500 are in the server: the idle ones have had their answer
        for kind, sock in socks:
            if kind == "idle":
                assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
        time.sleep(0.5)
        healthy(port)
        rc, took = srv.terminate(timeout=10)
    finally:
        srv.kill()
    assert rc == 0, srv.log()
    assert took < 2.0, took
    ends: dict[str, int] = {}
    for kind, sock in socks:
        try:
            recv_to_fin(sock)  # whatever was still on its way, then FIN
            ends["fin"] = ends.get("fin", 0) + 1
        except ConnectionResetError:
            ends[f"rst:{kind}"] = ends.get(f"rst:{kind}", 0) + 1
        finally:
            sock.close()
    assert ends == {"fin": 500}
    log = srv.log()
    assert "Traceback" not in log
    assert log.splitlines()[-1].endswith("level=INFO stopped")
    print(f"SIGTERM with 500 connections: exit {rc} after {took:.2f}s")


def test_shutdown_sigterm_idle_server_exits_0_quickly(tmp_path):
    srv = start_cli(tmp_path, LOAD_PROFILE)
    try:
        with connect(srv.port("backend")) as held:
            held.sendall(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.2)
            rc, took = srv.terminate()
            assert recv_to_fin(held) == b""
    finally:
        srv.kill()
    assert (rc, took < 2.0) == (0, True)


# --- an exception in one connection's handler -------------------------------------------------

BOOM_PROFILE = one_listener(
    rules=[
        {"match": {"path": "/boom"}, "action": "partial", "bytes": 10},
        {"match": {"path": "/slow"}, "action": "dribble", "chunk": 64, "interval": "20ms"},
    ]
)


@pytest.fixture
def boom(monkeypatch, caplog):
    """`boom(exc)`: from now on `partial` raises `exc` when it renders the answer to /boom
    (and only then); faultserver's ERROR records reach `caplog`."""
    real_render = PreparedResponse.render

    def arm(exc: Exception) -> None:
        def render(self, request, *args, **kwargs):
            if request is not None and request.path == "/boom":
                raise exc
            return real_render(self, request, *args, **kwargs)

        monkeypatch.setattr(PreparedResponse, "render", render)
        caplog.set_level(logging.ERROR, logger="faultserver")
        monkeypatch.setattr(logging.getLogger("faultserver"), "propagate", True)

    return arm


def test_shutdown_handler_exception_is_logged_once_and_contained(boom, caplog):
    """`partial` renders the response; make that raise for /boom only. That connection ends
    (FIN, nothing sent), the traceback is logged once, an `error` event says what happened,
    and a response being dribbled on another connection, and new connections, go on."""
    boom(RuntimeError("boom: injected by the test"))
    with faultserver.testing.running(BOOM_PROFILE) as srv:
        port = srv["backend"].port
        slow_reply: list[bytes] = []
        with connect(port) as slow:
            slow.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            reader = threading.Thread(target=lambda: slow_reply.append(recv_to_fin(slow)))
            reader.start()
            with connect(port) as boom:
                boom.sendall(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
                assert recv_to_fin(boom) == b""  # a clean end, not an RST, and no bytes
            healthy(port)
            reader.join(10)
        assert slow_reply and slow_reply[0].startswith(b"HTTP/1.1 200 OK\r\n")
        assert b'"path": "/slow"' in slow_reply[0]
        healthy(port)
        error = srv.wait_for(type="error", timeout=2)
        assert error["error"] == "RuntimeError: boom: injected by the test"
        assert error["listener"] == "backend"
        assert len(srv.events(type="error")) == 1
        srv.wait_for(type="peer_close", conn=error["conn"], how="fin", timeout=2)  # closed cleanly
    contained = [r for r in caplog.records if "unexpected error (contained)" in r.getMessage()]
    assert len(contained) == 1, [r.getMessage() for r in caplog.records]
    assert contained[0].exc_info is not None and contained[0].exc_info[0] is RuntimeError
    assert (
        contained[0].getMessage()
        == f"listener backend connection {error['conn']}: unexpected error (contained)"
    )


def test_shutdown_handler_exception_on_every_request_never_stops_the_listener(boom, caplog):
    """Fifty failing connections in a row: each one logged and closed, the listener serves on."""
    boom(ValueError("injected"))
    with faultserver.testing.running(BOOM_PROFILE) as srv:
        port = srv["backend"].port
        for _ in range(50):
            with connect(port) as boom:
                boom.sendall(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
                assert recv_to_fin(boom) == b""
        healthy(port)
        wait_until(lambda: len(srv.events(type="error")) == 50, what="50 error events")
    assert len([r for r in caplog.records if r.exc_info]) == 50
