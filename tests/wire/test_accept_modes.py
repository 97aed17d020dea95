"""Accept modes, switches between them, max_connections and backlog, as real clients see them.

What a client meets is the kernel's doing (the profile format's "Accept modes"): `refuse` is an RST to
the SYN (ECONNREFUSED at once), `stall` drops SYNs (a connect timeout, for the very first new
client too), a full `max_connections` leaves `backlog`+1 clients with a completed handshake and
no answer (a read timeout), then drops SYNs. Client timeouts that are expected to run out are
`SHORT_S` (0.2 s; nothing ever comes, however long a client waits), below the first SYN
retransmission (about 1 s), so a dropped SYN is a failure rather than extra latency.
"""

from __future__ import annotations

import errno
import json
import select
import socket
import time
from typing import Any

import httpx
import pytest
import requests

from tests.support import net
from tests.support.net import LONG_S, SHORT_S
from tests.support.profiles import one_listener
from tests.support.wait import wait_until

HOST = "127.0.0.1"


# --- helpers ----------------------------------------------------------------------------------


def assert_refused(host: str, port: int, url: str) -> None:
    """Every client meets ECONNREFUSED at once."""
    exc, took = net.connect_error(host, port, timeout=LONG_S)
    assert isinstance(exc, ConnectionRefusedError), repr(exc)
    assert exc.errno == errno.ECONNREFUSED
    assert took < 1.0, f"a refused connect took {took:.2f} s (an RST is immediate)"
    with pytest.raises(httpx.ConnectError, match=r"^\[Errno 111\] Connection refused$"):
        httpx.get(url, timeout=LONG_S)
    with pytest.raises(requests.ConnectionError, match=r"\[Errno 111\] Connection refused") as info:
        requests.get(url, timeout=LONG_S)
    assert not isinstance(info.value, requests.Timeout)


def assert_connect_timeout(host: str, port: int, url: str, with_curl: bool = False) -> None:
    """Every client's connect times out (the SYN is dropped); the raw socket goes first."""
    exc, took = net.connect_error(host, port, timeout=SHORT_S)
    assert isinstance(exc, TimeoutError), repr(exc)  # socket.timeout is TimeoutError
    assert took >= SHORT_S * 0.9
    with pytest.raises(httpx.ConnectTimeout):
        httpx.get(url, timeout=SHORT_S)
    with pytest.raises(requests.ConnectTimeout):
        requests.get(url, timeout=SHORT_S)
    if with_curl:
        result = net.curl("--connect-timeout", str(SHORT_S), url)
        assert result.returncode == 28, result.stderr  # CURLE_OPERATION_TIMEDOUT
        assert result.stderr.startswith("curl: (28) "), result.stderr


def assert_served(url: str, listener: str = "backend") -> dict:
    r = httpx.get(url + "/ok", timeout=LONG_S)
    assert r.status_code == 200
    echo = r.json()
    assert echo["path"] == "/ok" and echo["listener"] == listener
    return echo


def served_then_switched(faultserver: Any, mode: str) -> tuple[Any, Any]:
    """An open listener that has served one client, then switched to `mode` on its port."""
    srv = faultserver(one_listener(accept="open"))
    backend = srv["backend"]
    port = backend.port
    assert_served(backend.url)
    srv.set_accept("backend", mode)
    assert backend.accept == mode and backend.port == port
    return srv, backend


def modes(srv) -> list[tuple[str, str]]:
    return [(e["accept"], e["cause"]) for e in srv.events(type="mode")]


def connection_events(srv) -> list[dict]:
    """Events about connections (placeholders must never show up here)."""
    return [e for e in srv.events() if "conn" in e]


def hold_the_only_slot(port: int) -> tuple[socket.socket, net.RawReader]:
    """With `max_connections: 1`: a kept-alive connection that has had its answer and holds
    the only slot (the next clients wait in the kernel's queue)."""
    held = net.connect(HOST, port)
    held.sendall(net.get_request("/held"))
    reader = net.RawReader(held)
    assert reader.read_response().status == 200
    return held, reader


def read_one(sock: socket.socket) -> dict:
    resp = net.RawReader(sock).read_response()
    assert resp.status == 200, resp.head
    return json.loads(resp.body)


# --- refuse -----------------------------------------------------------------------------------


def test_refuse_at_start_refuses_every_client(faultserver):
    srv = faultserver(one_listener(accept="refuse"))
    backend = srv["backend"]
    assert backend.accept == "refuse"
    assert_refused(HOST, backend.port, backend.url)
    result = net.curl("--connect-timeout", "5", backend.url)
    assert result.returncode == 7, result.stderr  # CURLE_COULDNT_CONNECT
    assert result.stderr.startswith("curl: (7) "), result.stderr
    assert backend.connections == 0 and backend.open_connections == 0
    assert connection_events(srv) == []
    assert modes(srv) == [("refuse", "profile")]


@pytest.mark.parametrize("mode", ["open", "refuse", "stall"])
def test_accept_mode_holds_port_against_other_binds(faultserver, mode):
    srv = faultserver(one_listener(accept=mode))
    port = srv["backend"].port
    other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # no SO_REUSEADDR
    try:
        with pytest.raises(OSError) as info:
            other.bind((HOST, port))
        assert info.value.errno == errno.EADDRINUSE
    finally:
        other.close()


def test_refuse_switch_from_open_and_back_keeps_port(faultserver):
    srv, backend = served_then_switched(faultserver, "refuse")
    port, url = backend.port, backend.url
    assert_refused(HOST, port, url)
    assert net.curl("--connect-timeout", "5", url).returncode == 7
    srv.set_accept("backend", "open")
    assert backend.accept == "open" and backend.port == port
    assert_served(url)
    assert backend.connections == 2
    assert modes(srv) == [("open", "profile"), ("refuse", "api"), ("open", "api")]


def test_refuse_switch_resets_queued_connections(faultserver):
    # max_connections 1 and one held connection: the next clients wait in the kernel's queue
    srv = faultserver(one_listener(accept="open", max_connections=1, backlog=4))
    backend = srv["backend"]
    held, held_reader = hold_the_only_slot(backend.port)
    queued = [net.connect(HOST, backend.port, timeout=SHORT_S) for _ in range(2)]
    try:
        for sock in queued:
            sock.sendall(net.get_request("/queued"))
        for sock in queued:
            with pytest.raises(TimeoutError):
                sock.recv(1)  # handshake done, nobody accepted it: no answer
        assert backend.connections == 1
        srv.set_accept("backend", "refuse")
        for sock in queued:
            sock.settimeout(LONG_S)
            with pytest.raises(ConnectionResetError):
                sock.recv(1)
        # the accepted connection was not touched
        held.sendall(net.get_request("/again"))
        echo = json.loads(held_reader.read_response().body)
        assert echo["request_on_connection"] == 2
        assert backend.connections == 1
    finally:
        held.close()
        for sock in queued:
            sock.close()


# --- stall ------------------------------------------------------------------------------------


def test_stall_at_start_times_out_the_first_client(faultserver):
    srv = faultserver(one_listener(accept="stall"))
    backend = srv["backend"]
    assert backend.accept == "stall"
    assert_connect_timeout(HOST, backend.port, backend.url, with_curl=True)
    # placeholders are faultserver's own: no counter, no event
    info = backend.info()
    assert (info["connections"], info["open_connections"], info["peak_connections"]) == (0, 0, 0)
    assert info["requests"] == 0
    assert connection_events(srv) == []
    assert modes(srv) == [("stall", "profile")]


def test_stall_switch_from_open_and_back_serves_a_waiting_client(faultserver):
    srv, backend = served_then_switched(faultserver, "stall")
    port, url = backend.port, backend.url
    assert_connect_timeout(HOST, port, url, with_curl=True)

    # a client whose connect is pending during the stall (its SYN dropped, retransmitted
    # after about 1 s) is served once the listener opens again. A non-blocking connect
    # sends the SYN before the switch, whatever the machine's load.
    waiting = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        waiting.setblocking(False)
        sent = time.monotonic()
        assert waiting.connect_ex((HOST, port)) == errno.EINPROGRESS
        srv.set_accept("backend", "open")
        _, writable, _ = select.select([], [waiting], [], LONG_S)
        took = time.monotonic() - sent
        assert writable, "the waiting client never connected"
        assert waiting.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        assert took >= 0.5, took  # it did wait: its first SYN was dropped
        waiting.settimeout(LONG_S)
        waiting.sendall(net.get_request("/waited"))
        assert read_one(waiting)["path"] == "/waited"
    finally:
        waiting.close()
    assert backend.port == port
    # two real clients; the placeholders accepted and closed on reopening count nowhere
    assert backend.connections == 2
    assert len(srv.events(type="accept")) == 2
    assert len(srv.events(type="request")) == 2
    assert modes(srv) == [("open", "profile"), ("stall", "api"), ("open", "api")]


def test_stall_switch_keeps_queued_connections_waiting(faultserver):
    srv = faultserver(one_listener(accept="open", max_connections=1, backlog=4))
    backend = srv["backend"]
    held, _ = hold_the_only_slot(backend.port)
    queued = net.connect(HOST, backend.port, timeout=SHORT_S)
    try:
        queued.sendall(net.get_request("/queued"))
        with pytest.raises(TimeoutError):
            queued.recv(1)
        srv.set_accept("backend", "stall")
        with pytest.raises(TimeoutError):
            queued.recv(1)  # still waiting: not reset, not answered
        exc, _ = net.connect_error(HOST, backend.port, timeout=SHORT_S)
        assert isinstance(exc, TimeoutError), repr(exc)
        held.close()  # a slot frees up, but a stalled listener does not accept
        wait_until(lambda: backend.open_connections == 0, what="held connection closed")
        with pytest.raises(TimeoutError):
            queued.recv(1)
        srv.set_accept("backend", "open")
        queued.settimeout(LONG_S)
        echo = read_one(queued)
        assert echo["path"] == "/queued" and echo["request_on_connection"] == 1
        assert backend.connections == 2
    finally:
        held.close()
        queued.close()


def test_stall_switch_to_refuse_and_back(faultserver):
    srv = faultserver(one_listener(accept="stall"))
    backend = srv["backend"]
    port, url = backend.port, backend.url
    exc, _ = net.connect_error(HOST, port, timeout=SHORT_S)
    assert isinstance(exc, TimeoutError), repr(exc)
    srv.set_accept("backend", "refuse")
    assert backend.port == port
    assert_refused(HOST, port, url)
    srv.set_accept("backend", "stall")
    assert backend.port == port
    assert_connect_timeout(HOST, port, url)
    srv.set_accept("backend", "open")
    assert_served(url)
    assert backend.connections == 1
    assert len(connection_events(srv)) == len(srv.events(conn=1))
    assert modes(srv) == [
        ("stall", "profile"), ("refuse", "api"), ("stall", "api"), ("open", "api"),
    ]


def test_refuse_switch_to_stall_times_out_the_first_client(faultserver):
    srv = faultserver(one_listener(accept="refuse"))
    backend = srv["backend"]
    port, url = backend.port, backend.url
    srv.set_accept("backend", "stall")
    assert backend.port == port
    assert_connect_timeout(HOST, port, url)
    assert backend.connections == 0 and connection_events(srv) == []


def test_accept_switches_keep_accepted_connections(faultserver):
    srv = faultserver(one_listener(accept="open"))
    backend = srv["backend"]
    raw = net.connect(HOST, backend.port)
    reader = net.RawReader(raw)
    try:
        with httpx.Client(timeout=LONG_S) as client:
            first = client.get(backend.url + "/0").json()["connection"]
            for n, mode in enumerate(["refuse", "stall", "open", "stall", "refuse", "open"], 1):
                srv.set_accept("backend", mode)
                echo = client.get(backend.url + f"/{n}").json()
                assert (echo["connection"], echo["request_on_connection"]) == (first, n + 1), mode
                raw.sendall(net.get_request(f"/{n}"))
                echo = json.loads(reader.read_response().body)
                assert echo["request_on_connection"] == n, mode
        assert backend.connections == 2
        assert backend.peak_connections == 2
    finally:
        raw.close()


# --- max_connections and backlog ------------------------------------------------------------


@pytest.mark.parametrize("held_by", ["idle", "hang"])
def test_max_connections_queues_backlog_plus_one_then_drops(faultserver, held_by):
    n, backlog = 2, 2
    rules = [{"match": {"path": "/held"}, "action": "hang"}] if held_by == "hang" else []
    srv = faultserver(one_listener(accept="open", max_connections=n, backlog=backlog, rules=rules))
    backend = srv["backend"]
    port, url = backend.port, backend.url
    held = [net.connect(HOST, port) for _ in range(n)]
    queued = None
    try:
        for sock in held:
            sock.sendall(net.get_request("/held"))
            if held_by == "idle":
                assert net.RawReader(sock).read_response().status == 200
        wait_until(lambda: backend.open_connections == n, what=f"{n} connections open")

        # backlog + 1 clients complete the handshake and wait unanswered: a read timeout
        queued = net.connect(HOST, port, timeout=SHORT_S)
        queued.sendall(net.get_request("/queued"))
        with pytest.raises(TimeoutError):
            queued.recv(1)
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(url, timeout=SHORT_S)
        with pytest.raises(requests.ReadTimeout):
            requests.get(url, timeout=SHORT_S)

        # the queue is full: SYNs are dropped, a connect timeout
        assert_connect_timeout(HOST, port, url, with_curl=held_by == "idle")
        assert backend.connections == n

        # one held connection closes: faultserver accepts again, the first queued is served
        held[0].close()
        queued.settimeout(LONG_S)
        echo = read_one(queued)
        assert echo["path"] == "/queued"
        assert backend.open_connections == n
        assert backend.peak_connections == n
    finally:
        for sock in held:
            sock.close()
        if queued is not None:
            queued.close()


# --- IPv6 ---------------------------------------------------------------------------------------


def test_ipv6_listener_serves_httpx_and_requests(faultserver, ipv6):
    srv = faultserver(one_listener(accept="open", bind="[::1]:0"), keep_binds=True)
    backend = srv["backend"]
    assert backend.url == f"http://[::1]:{backend.port}"
    echo = assert_served(backend.url)
    assert echo["headers"]["host"] == f"[::1]:{backend.port}"
    r = requests.get(backend.url + "/r", timeout=LONG_S)
    assert r.status_code == 200 and r.json()["path"] == "/r"
    assert srv.events(type="accept")[0]["peer"].startswith("[::1]:")


def test_ipv6_listener_refuses_and_stalls(faultserver, ipv6):
    srv = faultserver(one_listener(accept="refuse", bind="[::1]:0"), keep_binds=True)
    backend = srv["backend"]
    port, url = backend.port, backend.url
    assert_refused("::1", port, url)
    other = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        with pytest.raises(OSError) as info:
            other.bind(("::1", port))
        assert info.value.errno == errno.EADDRINUSE
    finally:
        other.close()
    srv.set_accept("backend", "stall")
    assert backend.port == port
    assert_connect_timeout("::1", port, url)
    srv.set_accept("backend", "open")
    assert_served(url)
    assert backend.connections == 1


def test_ipv6_listener_stalls_at_start(faultserver, ipv6):
    srv = faultserver(one_listener(accept="stall", bind="[::1]:0"), keep_binds=True)
    backend = srv["backend"]
    assert_connect_timeout("::1", backend.port, backend.url)
    assert backend.connections == 0 and connection_events(srv) == []
