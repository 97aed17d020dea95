"""The `faultserver` fixture and its handle, used in-process against real client traffic.

The fixture comes from the installed package's `pytest11` entry point (no conftest);
tests/plugin/test_plugin_pytester.py proves that in a fresh pytest process.
"""

from __future__ import annotations

import errno
import re
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from faultserver.testing import FaultServer, ProfileError, StartError, UsageError
from tests.support.net import RawReader, connect_errno
from tests.support.profiles import one_listener
from tests.support.wait import wait_until

LONG_S = 5.0  # a timeout for anything that should succeed

PROFILE = {
    "version": 1,
    "listeners": [
        {"name": "backend", "bind": "127.0.0.1:0", "response": {"body": "ok\n"}},
        {"name": "other", "bind": "127.0.0.1:0", "response": {"body": "other\n"}},
    ],
}

FIN_ON_SECOND = """\
version: 1
listeners:
  - name: backend
    bind: 127.0.0.1:0
    response: {body: "ok\\n"}
    rules:
      - {name: fin-on-reuse, match: {request_on_connection: 2}, action: close}
"""


# --- helpers -------------------------------------------------------------------------


def connect(port: int, timeout: float = LONG_S) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def raw_get(sock: socket.socket, path: str = "/") -> bytes:
    """Send one keep-alive GET on `sock` and read the whole response: its body."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    return RawReader(sock).read_response().body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the factory ---------------------------------------------------------------------


def test_fixture_accepts_dict_yaml_text_and_path_in_one_test(faultserver, tmp_path: Path) -> None:
    path = tmp_path / "fin.yaml"
    path.write_text(FIN_ON_SECOND)
    servers = [
        faultserver(PROFILE),
        faultserver(FIN_ON_SECOND),
        faultserver(str(path)),
        faultserver(path),
    ]
    ports = {srv["backend"].port for srv in servers}
    assert len(ports) == 4  # four servers side by side, each on its own port
    for srv in servers:
        assert httpx.get(srv.url + "/x", timeout=LONG_S).text == "ok\n"
        assert [e["path"] for e in srv.requests()] == ["/x"]  # each sees only its own traffic
    assert servers[2].events(type="start")[0]["source"] == str(path)


def test_fixture_rebinds_listeners_to_loopback_on_free_ports(faultserver) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        srv = faultserver(
            one_listener(bind=f"0.0.0.0:{port}")
        )
        assert srv["backend"].host == "127.0.0.1"
        assert srv["backend"].port not in (0, port)
        assert srv.url == f"http://127.0.0.1:{srv['backend'].port}"
        assert httpx.get(srv.url, timeout=LONG_S).status_code == 200


def test_fixture_keep_binds_uses_the_profiles_address(faultserver) -> None:
    port = free_port()
    profile = one_listener(bind=f"127.0.0.1:{port}")
    srv = faultserver(profile, keep_binds=True)
    assert (srv["backend"].host, srv["backend"].port) == ("127.0.0.1", port)
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=LONG_S).status_code == 200
    # the same address again, kept: the port is taken, and the error says which listener
    with pytest.raises(
        StartError, match=rf"^listener backend: cannot bind 127\.0\.0\.1:{port}: Address already in use$"
    ):
        faultserver(profile, keep_binds=True)


def test_fixture_missing_profile_path_is_an_error_naming_it(faultserver, monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        UsageError,
        match=rf"^profile not found: profiles/nope\.yaml \(relative to {re.escape(str(tmp_path))}\)$",
    ):
        faultserver("profiles/nope.yaml")
    with pytest.raises(UsageError, match=rf"^profile not found: {re.escape(str(tmp_path))}/nope\.yaml$"):
        faultserver(tmp_path / "nope.yaml")


def test_fixture_invalid_profile_raises_profile_error(faultserver) -> None:
    bad = {"version": 1, "listeners": [{"name": "b", "bind": "127.0.0.1:0", "rules": [{"action": "clse"}]}]}
    with pytest.raises(ProfileError) as info:
        faultserver(bad)
    assert str(info.value) == (
        "<dict>:0:0: listeners[0].rules[0].action: unknown action 'clse' (did you mean 'close'? "
        "expected one of: respond, close, reset, hang, partial, dribble, garbage, delay, "
        "goaway, rst_stream, forward)"
    )


def test_fixture_starts_the_admin_api_only_when_asked(faultserver) -> None:
    plain = faultserver(PROFILE)
    assert plain.control_url is None
    srv = faultserver(PROFILE, admin=True)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", srv.control_url)
    assert httpx.get(srv.control_url + "/healthz", timeout=LONG_S).status_code == 200
    listeners = httpx.get(srv.control_url + "/listeners", timeout=LONG_S).json()["listeners"]
    assert [(entry["name"], entry["url"]) for entry in listeners] == [
        ("backend", srv["backend"].url),
        ("other", srv["other"].url),
    ]


# --- addresses -----------------------------------------------------------------------


def test_handle_listeners_by_name(faultserver) -> None:
    srv = faultserver(PROFILE)
    backend, other = srv["backend"], srv["other"]
    assert srv.url == backend.url  # the first listener
    assert backend.url == f"http://{backend.host}:{backend.port}"
    assert httpx.get(backend.url, timeout=LONG_S).text == "ok\n"
    assert httpx.get(f"http://{other.host}:{other.port}/", timeout=LONG_S).text == "other\n"
    assert sorted(srv.listeners) == ["backend", "other"]
    assert backend.accept == "open"
    with pytest.raises(UsageError, match=r"^no listener named 'nope' \(listeners: backend, other\)$"):
        srv["nope"]


def test_handle_seed_is_the_profiles_or_a_reported_one(faultserver) -> None:
    seeded = faultserver({**PROFILE, "seed": 7})
    assert seeded.seed == 7
    chosen = faultserver(PROFILE)
    assert chosen.events(type="start")[0]["seed"] == chosen.seed


# --- control -------------------------------------------------------------------------


def test_handle_set_accept_switches_modes_on_the_same_port(faultserver) -> None:
    srv = faultserver(PROFILE)
    port = srv["backend"].port
    srv.set_accept("backend", "refuse")
    assert connect_errno(port) == errno.ECONNREFUSED
    with pytest.raises(httpx.ConnectError):
        httpx.get(srv.url, timeout=LONG_S)
    srv.set_accept("backend", "stall")
    assert connect_errno(port) == errno.ETIMEDOUT
    srv.set_accept("backend", "open")
    assert srv["backend"].port == port
    assert httpx.get(srv.url, timeout=LONG_S).status_code == 200
    assert [e["accept"] for e in srv.events(type="mode", cause="api")] == ["refuse", "stall", "open"]
    assert srv["other"].accept == "open"  # only the named listener changed
    with pytest.raises(
        UsageError, match=r"^unknown accept mode 'shut' \(expected one of: open, refuse, stall\)$"
    ):
        srv.set_accept("backend", "shut")


def test_handle_set_rules_replaces_the_rules_now(faultserver) -> None:
    srv = faultserver(PROFILE)
    with httpx.Client(timeout=LONG_S) as client:
        assert client.get(srv.url).status_code == 200
        srv.set_rules("backend", [{"name": "down", "action": "respond", "status": 503}])
        assert client.get(srv.url).status_code == 503
        srv.set_rules("backend", [{"match": {"path": "/boom"}, "action": "reset"}])
        assert client.get(srv.url + "/fine").status_code == 200
        with pytest.raises(httpx.ReadError, match=r"^\[Errno 104\] Connection reset by peer$"):
            client.get(srv.url + "/boom")
        srv.set_rules("backend", [])
        assert client.get(srv.url + "/boom").status_code == 200
    assert [(e["rule"], e["action"]) for e in srv.events(type="fault")] == [
        ("down", "respond"),
        ("rule-0", "reset"),
    ]
    with pytest.raises(ProfileError, match=r"^<set_rules>:0:0: rules\[0\]\.action: unknown action 'clse' "):
        srv.set_rules("backend", [{"action": "clse"}])
    assert httpx.get(srv.url, timeout=LONG_S).status_code == 200  # an invalid set changed nothing


def test_handle_drop_ends_open_connections_with_fin_or_rst(faultserver) -> None:
    srv = faultserver(PROFILE)
    port = srv["backend"].port
    with connect(port) as one, connect(port) as two:
        assert raw_get(one) == b"ok\n"
        assert raw_get(two) == b"ok\n"
        wait_until(lambda: srv["backend"].open_connections == 2, what="two connections open")
        assert srv.drop("backend", "fin") == 2
        assert one.recv(100) == b""  # a clean end of stream, no reset
        assert two.recv(100) == b""
    srv.wait_for(type="drop", how="fin", timeout=LONG_S)
    assert srv.events(type="drop")[0]["connections"] == 2

    with connect(port) as sock:
        assert raw_get(sock) == b"ok\n"
        wait_until(lambda: srv["backend"].open_connections == 1, what="one connection open")
        assert srv.drop("backend", how="rst") == 1
        with pytest.raises(ConnectionResetError):
            sock.recv(100)
    with pytest.raises(UsageError, match=r"^unknown drop 'boom' \(expected 'fin' or 'rst'\)$"):
        srv.drop("backend", "boom")


def test_handle_drop_idle_only_spares_busy_connections(faultserver) -> None:
    srv = faultserver(PROFILE)
    srv.set_rules("backend", [{"match": {"path": "/slow"}, "action": "respond", "delay": "1s"}])
    port = srv["backend"].port
    with connect(port) as idle, connect(port) as busy:
        assert raw_get(idle) == b"ok\n"
        busy.sendall(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
        srv.wait_for(type="request", path="/slow", timeout=LONG_S)
        assert srv.drop("backend", "fin", idle_only=True) == 1
        assert idle.recv(100) == b""
        assert busy.recv(65536).startswith(b"HTTP/1.1 200 ")  # answered after its delay


def test_handle_load_puts_a_new_profile_in_force_keeping_ports(faultserver) -> None:
    srv = faultserver(PROFILE)
    port = srv["backend"].port
    assert httpx.get(srv.url, timeout=LONG_S).text == "ok\n"
    srv.load(
        {
            "version": 1,
            "listeners": [
                {"name": "backend", "bind": "127.0.0.1:0", "response": {"body": "v2\n"}},
                {"name": "extra", "bind": "127.0.0.1:0", "accept": "refuse"},
            ],
        }
    )
    assert srv["backend"].port == port
    assert httpx.get(srv.url, timeout=LONG_S).text == "v2\n"
    assert connect_errno(srv["extra"].port) == errno.ECONNREFUSED
    assert sorted(srv.listeners) == ["backend", "extra"]  # "other" is gone
    changes = {(e["listener"], e["change"]) for e in srv.events(type="reload")}
    assert changes == {("backend", "kept"), ("extra", "added"), ("other", "removed")}
    with pytest.raises(ProfileError):
        srv.load({"version": 2, "listeners": []})
    assert httpx.get(srv.url, timeout=LONG_S).text == "v2\n"  # the invalid one changed nothing


def test_handle_reset_goes_back_to_the_profile_as_loaded(faultserver) -> None:
    srv = faultserver(FIN_ON_SECOND)
    srv.set_rules("backend", [{"action": "respond", "status": 500}])
    assert httpx.get(srv.url, timeout=LONG_S).status_code == 500
    srv.set_accept("backend", "refuse")
    assert srv["backend"].request_count == 1
    srv.reset()
    assert srv["backend"].accept == "open"
    assert srv["backend"].request_count == 0
    assert srv.requests() == []
    assert srv.events(type="reset")
    with httpx.Client(timeout=LONG_S) as client:  # the profile's own rule is back
        assert client.get(srv.url + "/a").status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(srv.url + "/b")
    assert [e["path"] for e in srv.requests()] == ["/a", "/b"]


# --- observing -----------------------------------------------------------------------


def test_handle_events_filters_on_every_field(faultserver) -> None:
    srv = faultserver(FIN_ON_SECOND)
    with httpx.Client(timeout=LONG_S) as client:
        client.get(srv.url + "/first")
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(srv.url + "/second")
    fault = srv.wait_for(type="fault", timeout=LONG_S)
    assert {
        k: fault[k] for k in ("listener", "rule", "action", "method", "path", "request_on_connection")
    } == {
        "listener": "backend",
        "rule": "fin-on-reuse",
        "action": "close",
        "method": "GET",
        "path": "/second",
        "request_on_connection": 2,
    }
    assert srv.events(type="fault", action="close") == [fault]
    assert srv.events(type="fault", action="reset") == []
    assert [e["path"] for e in srv.events(type="response", status=200)] == ["/first"]
    ids = [e["id"] for e in srv.events()]
    assert ids == sorted(ids)
    assert srv["backend"].faults() == {"close": 1}
    assert srv["backend"].info()["faults"] == {"close": 1}


def test_handle_wait_for_sees_events_from_the_server_thread(faultserver) -> None:
    srv = faultserver(PROFILE)

    def late_request() -> None:
        time.sleep(0.3)
        httpx.get(srv.url + "/late", timeout=LONG_S)

    client = threading.Thread(target=late_request)
    client.start()
    try:
        event = srv.wait_for(type="response", path="/late", timeout=LONG_S)
    finally:
        client.join()
    assert event["status"] == 200
    with pytest.raises(
        TimeoutError, match=r"^no event matching type='fault', path='/late' within 0\.2 s; newest events:\n"
    ):
        srv.wait_for(type="fault", path="/late", timeout=0.2)


def test_handle_requests_lists_what_the_server_read_in_order(faultserver) -> None:
    srv = faultserver(PROFILE)
    with httpx.Client(timeout=LONG_S) as one, httpx.Client(timeout=LONG_S) as two:
        one.get(srv.url + "/a")
        two.post(srv.url + "/b", content=b"x")
        one.get(srv.url + "/c")
        httpx.get(srv["other"].url + "/d", timeout=LONG_S)
    got = [(e["listener"], e["method"], e["path"], e["request_on_connection"]) for e in srv.requests()]
    assert got == [
        ("backend", "GET", "/a", 1),
        ("backend", "POST", "/b", 1),
        ("backend", "GET", "/c", 2),
        ("other", "GET", "/d", 1),
    ]
    assert [e["path"] for e in srv.requests("other")] == ["/d"]


def test_handle_retries_are_requests_seen_again_on_a_new_connection(faultserver) -> None:
    srv = faultserver(FIN_ON_SECOND)
    with httpx.Client(timeout=LONG_S) as client:
        client.get(srv.url + "/warmup")
        with pytest.raises(httpx.RemoteProtocolError):
            client.post(srv.url + "/orders", content=b'{"n": 1}')
        # the client under test would retry; here the test does, on a new connection
        assert client.post(srv.url + "/orders", content=b'{"n": 1}').status_code == 200
    with httpx.Client(timeout=LONG_S) as client:
        # another body is another request; a repeat on the same connection is no retry
        client.post(srv.url + "/orders", content=b'{"n": 2}')
        with pytest.raises(httpx.RemoteProtocolError):
            client.post(srv.url + "/orders", content=b'{"n": 2}')
    retries = srv.retries()
    assert [(e["method"], e["path"], e["request_on_connection"]) for e in retries] == [("POST", "/orders", 1)]
    first = srv.events(type="request", path="/orders")[0]
    assert retries[0]["conn"] != first["conn"]
    assert retries[0]["fingerprint"] == first["fingerprint"]
    assert srv["backend"].retry_count == 1
    assert srv.retries("other") == []


def test_handle_counters_open_and_peak_connections(faultserver) -> None:
    srv = faultserver(PROFILE)
    backend = srv["backend"]
    assert (backend.open_connections, backend.peak_connections) == (0, 0)
    socks = [connect(backend.port) for _ in range(3)]
    try:
        for sock in socks:
            raw_get(sock)
        assert (backend.open_connections, backend.peak_connections) == (3, 3)
    finally:
        for sock in socks:
            sock.close()
    wait_until(lambda: backend.open_connections == 0, what="all connections closed")
    assert backend.peak_connections == 3
    assert backend.connections == 3
    assert backend.request_count == 3
    assert srv["other"].peak_connections == 0
    info = backend.info()
    assert (info["open_connections"], info["peak_connections"], info["requests"]) == (0, 3, 3)


def test_handle_stop_closes_every_port(faultserver) -> None:
    srv = faultserver(PROFILE)
    ports = [h.port for h in srv.listeners.values()]
    with connect(ports[0]) as sock:
        raw_get(sock)
        srv.stop()
        assert sock.recv(100) == b""  # open connections get a FIN
    assert [connect_errno(port) for port in ports] == [errno.ECONNREFUSED] * 2
    with pytest.raises(Exception, match=r"^this faultserver is not running \(stopped, or it crashed\)$"):
        srv.set_accept("backend", "refuse")
    srv.stop()  # idempotent; the fixture's teardown stops it again
    assert isinstance(srv, FaultServer)
