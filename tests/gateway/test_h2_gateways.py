"""Gateways that reach faultserver over HTTP/2 (h2c): the status and log line per fault.

- HAProxy 2.6: `server s1 127.0.0.1:PORT proto h2` (HTTP/1.1 in front, h2c behind),
  `nbthread 1` (haproxy/haproxy#1861: with more threads a log line written to stdout may be
  dropped), `timeout server 1s`, `retries 1`, `option httplog` to its stdout;
- nginx 1.22: `grpc_pass grpc://127.0.0.1:PORT` (h2c behind; nginx speaks HTTP/2 upstream
  only in its gRPC module), `grpc_read_timeout 1s`, `keepalive 8` upstream connections,
  a plain HTTP/1.1 listener in front. faultserver's answers are plain `ok\\n` (not gRPC):
  nginx passes them on as they are.

The configurations are written here, not in conftest.py (whose gateways speak HTTP/1.1 to
the upstream). Each scenario sends `/1`, then the faulted `/f` (its rule acts once: `times:
1`), on one client connection, so that a gateway which keeps its upstream connection sends
`/f` as that connection's second stream (`last_stream_id: previous` then names `/1`'s).
Each row prints a `MATRIX |` line (`pytest -s -m gateway`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import http.client
import os
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from faultserver._processes import START_TIMEOUT_S, find_binary, free_port, stop_group, wait_listening
from tests.support.profiles import TEXT_OK, one_listener

pytestmark = pytest.mark.gateway

LOG_WAIT_S = 3.0


def _binary(name: str) -> str:
    path = find_binary(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install -y {name}; .ci/run does)")
    return path


class H2Gateway:
    """A gateway process in its own process group, every file in `folder`."""

    def __init__(self, folder: Path, upstream_port: int) -> None:
        self.folder = folder
        self.upstream_port = upstream_port
        self.port = free_port()
        self.output = folder / "output.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> H2Gateway:
        with open(self.output, "ab") as out:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        if not wait_listening(self.proc, self.port, START_TIMEOUT_S):
            raise RuntimeError(f"{self.command()} did not start:\n{self.text(self.output)}")
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_group(proc)

    @staticmethod
    def text(path: Path) -> str:
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_line(self, path: Path, needle: str) -> str | None:
        """The first line containing `needle`, waiting up to LOG_WAIT_S for it; None: none came."""
        deadline = time.monotonic() + LOG_WAIT_S
        while True:
            found = next((line for line in self.text(path).splitlines() if needle in line), None)
            if found is not None or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


class HAProxyH2(H2Gateway):
    def command(self) -> list[str]:
        conf = self.folder / "haproxy.cfg"
        conf.write_text(f"""
global
    nbthread 1
    log stdout format raw local0 info
    maxconn 256
defaults
    mode http
    log global
    option httplog
    option dontlognull
    retries 1
    timeout connect 1s
    timeout client 5s
    timeout server 1s
    timeout queue 1s
frontend fe
    bind 127.0.0.1:{self.port}
    default_backend be
backend be
    http-reuse always
    server s1 127.0.0.1:{self.upstream_port} proto h2
""")
        return [_binary("haproxy"), "-db", "-f", str(conf)]

    def said(self, path: str) -> str:
        """status, termination state and retries of the request's httplog line."""
        line = self.wait_line(self.output, f'"GET {path} HTTP/1.1"')
        if line is None:
            return f"no log line for {path} within {LOG_WAIT_S:g} s"
        m = re.search(
            r" -?\d+/-?\d+/-?\d+/-?\d+/\+?-?\d+ (-?\d+) \d+ \S+ \S+ (\S{4}) \d+/\d+/\d+/\d+/(\+?\d+) ", line)
        assert m, line
        return f"{m.group(1)} {m.group(2)} retries={m.group(3)}"


class NginxGrpc(H2Gateway):
    def command(self) -> list[str]:
        d = self.folder
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (d / sub).mkdir(exist_ok=True)
        user = "user root;" if os.geteuid() == 0 else ""
        conf = d / "nginx.conf"
        conf.write_text(f"""
daemon off;
master_process on;
worker_processes 1;
{user}
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format h2 '$request_method $uri $status upstream_status=$upstream_status';
    access_log {d}/access.log h2;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream backend {{
        server 127.0.0.1:{self.upstream_port} max_fails=0;
        keepalive 8;
    }}
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            grpc_pass grpc://backend;
            grpc_connect_timeout 1s;
            grpc_read_timeout 1s;
        }}
    }}
}}
""")
        return [_binary("nginx"), "-p", str(d), "-e", str(d / "error.log"), "-c", str(conf)]

    def said(self, path: str) -> str:
        """The access line's status and upstream status, and the error.log message if any."""
        line = self.wait_line(self.folder / "access.log", f"GET {path} ")
        access = line.split(" ", 2)[2] if line is not None else f"no access line for {path}"
        errors = [line for line in self.text(self.folder / "error.log").splitlines()
                  if f'request: "GET {path} HTTP/1.1"' in line]
        messages = []
        for line in errors:
            m = re.search(r"\[(\w+)\] \d+#\d+: \*\d+ (.*?), client: ", line)
            messages.append(f"[{m.group(1)}] {m.group(2)}" if m else line)
        return access + (" | " + " / ".join(messages) if messages else "")


GATEWAYS = {"haproxy proto h2": HAProxyH2, "nginx grpc_pass": NginxGrpc}


@pytest.fixture
def h2_gateway(tmp_path: Path):
    started: list[H2Gateway] = []
    lock = threading.Lock()  # the rows start their gateways from threads

    def start(kind: str, upstream_port: int) -> H2Gateway:
        with lock:
            folder = tmp_path / f"gw-{len(started)}"
            folder.mkdir()
            gateway = GATEWAYS[kind](folder, upstream_port)
            started.append(gateway)
        return gateway.start()

    try:
        yield start
    finally:
        for gateway in started:
            gateway.stop()


# --- the rows -------------------------------------------------------------------------------


def _once(rule: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": "f", "match": {"path": "/f"}, "times": 1, **rule}]


@dataclasses.dataclass(frozen=True)
class Row:
    rules: list[dict[str, Any]]
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    scenario: str = "get2"


ROWS = {
    "rst_stream REFUSED_STREAM": Row(_once({"action": "rst_stream", "error": "REFUSED_STREAM"})),
    "rst_stream CANCEL": Row(_once({"action": "rst_stream", "error": "CANCEL"})),
    "goaway previous": Row(_once({"action": "goaway", "last_stream_id": "previous"})),
    "hang": Row(_once({"action": "hang"})),
    "reset": Row(_once({"action": "reset"})),
    "max_concurrent_streams 1, delay 300ms": Row(
        [{"name": "slow", "action": "delay", "for": "300ms"}], {"h2": {"max_concurrent_streams": 1}},
        "burst3"),
    "goaway previous (one client connection)": Row(
        _once({"action": "goaway", "last_stream_id": "previous"}), scenario="get2-same"),
    "rst_stream REFUSED_STREAM (one client connection)": Row(
        _once({"action": "rst_stream", "error": "REFUSED_STREAM"}), scenario="get2-same"),
}

#: (gateway, row) -> "client statuses | the gateway's log | what faultserver saw", or a tuple
#: of the cells it may be.
EXPECTED: dict[tuple[str, str], str | tuple[str, ...]] = {
    ("haproxy proto h2", "rst_stream REFUSED_STREAM"): "200, 502 | 502 SH-- retries=0 | seen 1, conns 1",
    ("haproxy proto h2", "rst_stream CANCEL"): "200, 502 | 502 SH-- retries=0 | seen 1, conns 1",
    ("haproxy proto h2", "goaway previous"): "200, 502 | 502 SH-- retries=0 | seen 1, conns 1",
    ("haproxy proto h2", "hang"): "200, 504 | 504 sH-- retries=0 | seen 1, conns 1",
    ("haproxy proto h2", "reset"): "200, 502 | 502 SH-- retries=0 | seen 1, conns 1",
    # with `http-reuse always` HAProxy may send the three streams on one connection before our
    # SETTINGS (max_concurrent_streams 1) reach it: each stream over the limit gets RST_STREAM
    # REFUSED_STREAM (an `h2_error` event each), which HAProxy answers 502 without a retry
    # (its `retry-on` is not set here). How many went out before the SETTINGS arrived varies.
    ("haproxy proto h2", "max_concurrent_streams 1, delay 300ms"): (
        ("200, 200, 200 | 200 ---- retries=0; 200 ---- retries=0; 200 ---- retries=0 | seen 3, conns 3"),
        ("200, 200, 502 | 200 ---- retries=0; 200 ---- retries=0; 502 SH-- retries=0 | seen 2, conns 2 | "
         "h2_error stream 3"),
        ("200, 502, 502 | 200 ---- retries=0; 502 SH-- retries=0; 502 SH-- retries=0 | seen 1, conns 1 | "
         "h2_error stream 3, stream 5"),
    ),
    # on the client connection of an answered request, HAProxy passes the backend's refusal
    # on as a close with no answer and no log line, so that the client may retry (as for a
    # FIN on a reused HTTP/1.1 connection, test_gateway_matrix.py)
    ("haproxy proto h2", "goaway previous (one client connection)"):
        ("200, RemoteDisconnected: Remote end closed connection without response | no log line for /f "
         "within 3 s | seen 1, conns 1"),
    ("haproxy proto h2", "rst_stream REFUSED_STREAM (one client connection)"):
        ("200, RemoteDisconnected: Remote end closed connection without response | no log line for /f "
         "within 3 s | seen 1, conns 1"),
    ("nginx grpc_pass", "rst_stream REFUSED_STREAM"):
        ("200, 502 | 502 upstream_status=502 | [error] upstream rejected request with error 7 while "
         "reading response header from upstream | seen 1, conns 1"),
    ("nginx grpc_pass", "rst_stream CANCEL"):
        ("200, 502 | 502 upstream_status=502 | [error] upstream rejected request with error 8 while "
         "reading response header from upstream | seen 1, conns 1"),
    ("nginx grpc_pass", "goaway previous"):
        ("200, 502 | 502 upstream_status=502 | [error] upstream sent goaway with error 0 while reading "
         "response header from upstream | seen 1, conns 1"),
    ("nginx grpc_pass", "hang"):
        ("200, 504 | 504 upstream_status=504 | [error] upstream timed out (110: Connection timed out) "
         "while reading response header from upstream | seen 1, conns 1"),
    # nginx sends the request again on a new connection, its HEADERS on stream 3 (the first
    # attempt's number); faultserver answers stream 3, and nginx takes that answer as "unknown
    # stream 3": 502 after two tries
    ("nginx grpc_pass", "reset"):
        ("200, 502 | 502 upstream_status=502, 502 | [error] recv() failed (104: Connection reset by "
         "peer) while reading response header from upstream / [error] upstream sent frame for unknown "
         "stream 3 while reading response header from upstream | seen 2, conns 2"),
    ("nginx grpc_pass", "max_concurrent_streams 1, delay 300ms"):
        ("200, 200, 200 | 200 upstream_status=200; 200 upstream_status=200; 200 upstream_status=200 | "
         "seen 3, conns 3"),
    ("nginx grpc_pass", "goaway previous (one client connection)"):
        ("200, 502 | 502 upstream_status=502 | [error] upstream sent goaway with error 0 while reading "
         "response header from upstream | seen 1, conns 1"),
    ("nginx grpc_pass", "rst_stream REFUSED_STREAM (one client connection)"):
        ("200, 502 | 502 upstream_status=502 | [error] upstream rejected request with error 7 while "
         "reading response header from upstream | seen 1, conns 1"),
}


@dataclasses.dataclass
class Answer:
    path: str
    status: int | None = None
    error: str = ""
    took_s: float = 0.0

    def __str__(self) -> str:
        return str(self.status) if self.error == "" else self.error


def get(conn: http.client.HTTPConnection, path: str) -> Answer:
    answer = Answer(path)
    start = time.monotonic()
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        answer.status = response.status
    except (http.client.HTTPException, OSError) as exc:
        answer.error = f"{type(exc).__name__}: {exc}"
        conn.close()
    answer.took_s = time.monotonic() - start
    return answer


def run_scenario(url: str, scenario: str) -> list[Answer]:
    host, port = url.removeprefix("http://").split(":")
    def one(path: str) -> Answer:  # on a client connection of its own
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            return get(conn, path)
        finally:
            conn.close()

    if scenario == "burst3":
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            return list(pool.map(one, ["/s-0", "/s-1", "/s-2"]))
    if scenario == "get2":
        return [one("/1"), one("/f")]
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        return [get(conn, "/1"), get(conn, "/f")]
    finally:
        conn.close()


def observe(faultserver: Any, h2_gateway: Any, kind: str, fault: str) -> tuple[str, dict[str, Any]]:
    row = ROWS[fault]
    srv = faultserver(one_listener(protocols=["h2"], response=TEXT_OK, rules=row.rules, **row.settings))
    gateway = h2_gateway(kind, srv["backend"].port)
    answers = run_scenario(gateway.url, row.scenario)
    paths = [a.path for a in answers] if row.scenario == "burst3" else ["/f"]
    said = [gateway.said(p) for p in paths]  # type: ignore[attr-defined]
    statuses = [str(a) for a in answers]
    if row.scenario == "burst3":  # which of the three goes first varies
        said, statuses = sorted(said), sorted(statuses)
    requests = [e for e in srv.requests() if e["path"] in paths]
    errors = sorted(e["error"].split(":")[0] for e in srv.events(type="h2_error"))
    conns = len({e["conn"] for e in requests})
    cell = f"{', '.join(statuses)} | {'; '.join(said)} | seen {len(requests)}, conns {conns}"
    if errors:
        cell += f" | h2_error {', '.join(errors)}"
    return cell, {"took": "/".join(f"{a.took_s:.2f}" for a in answers) + " s"}


@pytest.mark.parametrize("kind", list(GATEWAYS))
def test_h2_gateway_reports_each_fault(faultserver, h2_gateway, kind):
    got = {}
    with concurrent.futures.ThreadPoolExecutor(len(ROWS)) as pool:
        futures = {fault: pool.submit(observe, faultserver, h2_gateway, kind, fault) for fault in ROWS}
        for fault, future in futures.items():
            cell, extra = future.result()
            got[kind, fault] = cell
            print(f"\nMATRIX | {kind} | h2 {fault} | got={cell} | took={extra['took']}")
    differ = {}
    for fault in ROWS:
        want = EXPECTED.get((kind, fault))
        faces = want if isinstance(want, tuple) else (want,)
        if got[kind, fault] not in faces:
            differ[fault] = {"got": got[kind, fault], "want": want}
    assert differ == {}
