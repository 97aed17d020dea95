"""A real HAProxy sending the PROXY protocol header (`send-proxy`, `send-proxy-v2`) to faultserver.

HAProxy (`mode http`, one thread) forwards each client's request to a `proxy_protocol`
listener, its `server` line saying which header to send first. Its log line, HAProxy's
`option httplog` format followed by `%bi:%bp` (the source address of its own connection to the
server), says what it answered and why, and where faultserver's `peer` must come from.

- `send-proxy-v2` to a `v2` listener, and `send-proxy` to a `v1` one: 200 through HAProxy, and
  faultserver's request event has `client` = the client's own address (its socket's name)
  and `peer` = HAProxy's end of the server connection.
- `send-proxy` (v1) to a `v2` listener, `send-proxy-v2` to a `v1` one, or no header to a
  `v1` one: faultserver closes the connection (FIN) with a `proxy_error` event; HAProxy
  answers 502 with termination state `SH--` (the server closed while HAProxy waited for the
  response headers).

This module writes and runs its own HAProxy (tests/gateway/conftest.py's fixture has no
`send-proxy`); a missing haproxy skips it, with the reason.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from faultserver._processes import START_TIMEOUT_S, find_binary, free_port, stop_group, wait_listening
from tests.support.profiles import TEXT_OK, one_listener
from tests.support.wait import wait_until

pytestmark = pytest.mark.gateway

#: How long HAProxy may take to listen, and a log line to appear, in seconds.
LOG_WAIT_S = 3.0

#: HAProxy's `option httplog` line (as its manual spells it), then the source address of
#: HAProxy's connection to the server: what faultserver sees as the peer.
LOG_FORMAT = (
    "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc "
    "%ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r backend_source=%bi:%bp"
)
_LOG_LINE = re.compile(
    r"^(?P<client>\S+) \[[^]]+\] \S+ \S+ \S+ (?P<status>-?\d+) \d+ \S+ \S+ (?P<term>\S{4}) "
    r"\S+ \S+ \"(?P<request>[^\"]*)\" backend_source=(?P<source>\S+)$"
)


class ProxyingHAProxy:
    """HAProxy in front of one server, sending it `send` (`send-proxy-v2`, `send-proxy` or "")."""

    def __init__(self, binary: str, folder: Path, upstream_port: int, send: str) -> None:
        self.binary = binary
        self.folder = folder
        self.upstream_port = upstream_port
        self.send = send
        self.port = 0
        self.output = folder / "output.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> Path:
        # `log stdout`: the log lines go to haproxy's stdout, which is our file. `nbthread 1`:
        # with several threads, a log line that meets another thread's write to stdout is
        # dropped, not queued (haproxy/haproxy#1861). `retries 0`: a failure is seen once.
        conf = self.folder / "haproxy.cfg"
        conf.write_text(
            f"""
global
    nbthread 1
    log stdout format raw local0 info
defaults
    mode http
    log global
    log-format "{LOG_FORMAT}"
    retries 0
    timeout connect 1s
    timeout client 5s
    timeout server 2s
frontend fe
    bind 127.0.0.1:{self.port}
    default_backend be
backend be
    server s1 127.0.0.1:{self.upstream_port} {self.send}
"""
        )
        return conf

    def start(self) -> ProxyingHAProxy:
        for _ in range(3):  # a free port can be taken between our probe and HAProxy's bind
            self.port = free_port()
            conf = self._write_config()
            with open(self.output, "ab") as out:
                self.proc = subprocess.Popen(
                    [self.binary, "-db", "-f", str(conf)],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: stop() ends only it
                )
            if wait_listening(self.proc, self.port, START_TIMEOUT_S):
                return self
            self.stop()
            if "in use" not in self.log():
                break
        raise RuntimeError(f"haproxy did not start listening on 127.0.0.1:{self.port}:\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM, wait, then SIGKILL its own process group (only the one we started)."""
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_group(proc)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)

    def log(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def log_line(self, path: str) -> dict[str, str]:
        """The fields of the log line of `GET path`, waiting for it (written at the stream's end)."""
        needle = f'"GET {path} HTTP/1.1"'
        line = wait_until(
            lambda: next((ln for ln in self.log().splitlines() if needle in ln), None),
            LOG_WAIT_S,
            lambda: f"a log line containing {needle!r}; the log:\n{self.log()}",
            interval=0.02,
        )
        m = _LOG_LINE.match(line)
        assert m, f"not a log line of LOG_FORMAT: {line!r}"
        return m.groupdict()


@pytest.fixture
def haproxy_sending(tmp_path: Path) -> Iterator[Callable[[int, str], ProxyingHAProxy]]:
    """`haproxy_sending(upstream_port, "send-proxy-v2")` starts an HAProxy in front."""
    binary = find_binary("haproxy")
    if binary is None:
        pytest.skip("haproxy is not installed (apt-get install -y haproxy; .ci/run does)")
    started: list[ProxyingHAProxy] = []

    def start(upstream_port: int, send: str) -> ProxyingHAProxy:
        folder = tmp_path / f"haproxy-{len(started)}"
        folder.mkdir()
        started.append(ProxyingHAProxy(binary, folder, upstream_port, send))
        return started[-1].start()

    try:
        yield start
    finally:
        for gateway in started:
            gateway.stop()


def get(port: int, path: str) -> tuple[int, str]:
    """GET path through HAProxy: the status, and the client's own address (`host:port`)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.connect()
        host, client_port = conn.sock.getsockname()[:2]
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status, f"{host}:{client_port}"
    finally:
        conn.close()


def report(case: str, **observed: object) -> None:
    cells = " | ".join(f"{k}={v}" for k, v in observed.items())
    print(f"\nMATRIX | haproxy PROXY protocol | {case} | {cells}")


@pytest.mark.parametrize(
    ("send", "version"),
    [("send-proxy-v2", "v2"), ("send-proxy", "v1")],
    ids=["send-proxy-v2-to-v2", "send-proxy-to-v1"],
)
def test_haproxy_send_proxy_gives_faultserver_the_client_address(faultserver, haproxy_sending, send, version):
    srv = faultserver(one_listener(response=TEXT_OK, proxy_protocol=version))
    gw = haproxy_sending(srv["backend"].port, send)
    status, client = get(gw.port, "/through-haproxy")
    logged = gw.log_line("/through-haproxy")
    request = srv.wait_for(type="request", path="/through-haproxy")
    header = srv.wait_for(type="proxy_header", conn=request["conn"])
    report(f"{send} to proxy_protocol: {version}", status=status, log=f"{logged['status']} {logged['term']}",
           client=client, event_client=request["client"], event_peer=request["peer"],
           haproxy_backend_source=logged["source"], header_version=header["version"],
           header_destination=header["destination"])
    assert status == 200
    assert (logged["status"], logged["term"]) == ("200", "----")
    # the header names the client as HAProxy saw it (its log says the same), and the
    # connection's peer is HAProxy's own end of its connection to faultserver
    assert request["client"] == client == logged["client"]
    assert request["peer"] == logged["source"]
    assert request["peer"] != request["client"]
    assert header["version"] == int(version[1])
    assert header["destination"] == f"127.0.0.1:{gw.port}"  # the address the client connected to
    assert srv.events(type="proxy_error") == []


@pytest.mark.parametrize(
    ("send", "version", "error"),
    [
        ("send-proxy", "v2", "version 1 header where v2 is expected"),
        ("send-proxy-v2", "v1", "version 2 header where v1 is expected"),
        ("", "v1", "missing"),
    ],
    ids=["send-proxy-to-v2", "send-proxy-v2-to-v1", "no-header-to-v1"],
)
def test_haproxy_wrong_or_missing_header_gives_502_and_a_proxy_error(
    faultserver, haproxy_sending, send, version, error
):
    srv = faultserver(one_listener(response=TEXT_OK, proxy_protocol=version))
    gw = haproxy_sending(srv["backend"].port, send)
    status, client = get(gw.port, "/mismatch")
    logged = gw.log_line("/mismatch")
    event = srv.wait_for(type="proxy_error")
    report(f"{send or 'no send-proxy'} to proxy_protocol: {version}", status=status,
           log=f"{logged['status']} {logged['term']}", proxy_error=event["error"], event_peer=event["peer"],
           haproxy_backend_source=logged["source"])
    # faultserver closed the connection (FIN) without an answer: to HAProxy, a server that
    # closed (S) while it waited for the response headers (H); no retry (`retries 0`)
    assert status == 502
    assert (logged["status"], logged["term"]) == ("502", "SH--")
    assert logged["client"] == client
    assert event["error"] == error
    assert event["peer"] == logged["source"]
    assert "client" not in event  # no header was taken: no client address to give
    assert srv.events(type="request") == []
