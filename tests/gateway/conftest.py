"""Real gateways in front of faultserver: nginx and HAProxy, started and stopped by each test.

Each gateway runs in the foreground (`daemon off` / `haproxy -db`) in its own process
group, with every file it writes (config, pid, error and access logs, temp folders) in the
test's tmp folder, listening on a free port of 127.0.0.1. The fixtures stop it (SIGTERM,
then SIGKILL of its own process group) whatever the test did. A missing binary skips
the test with the reason; `.ci/run` installs both with apt.

Test modules reach these classes only through the fixtures' instances (no imports
from here), so the suite works in every pytest import mode.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from faultserver._processes import START_TIMEOUT_S, find_binary, free_port, stop_group, wait_listening
from tests.support.wait import wait_until

#: How long a log line may take to appear after the client got its answer.
LOG_WAIT_S = 3.0
#: A free port can be taken between our probe and the gateway's bind: try this often.
START_ATTEMPTS = 3


@dataclasses.dataclass(frozen=True)
class NginxOptions:
    """What a test may set on nginx (`nginx(port, read_timeout="5s")`)."""

    connect_timeout: str = "1s"
    read_timeout: str = "1s"
    #: the upstream server's connection limit (none by default)
    max_conns: int | None = None
    #: HTTPS to the upstream, its certificate verified against this CA file
    #: (`proxy_ssl_verify on`, `proxy_ssl_trusted_certificate`); None: plain HTTP
    upstream_ca: str | None = None
    #: the name the upstream's certificate is checked for (`proxy_ssl_name`); nginx checks
    #: DNS names only, never an IP address, hence `localhost` (in every generated leaf)
    upstream_name: str = "localhost"
    #: send `upstream_name` as SNI (`proxy_ssl_server_name on`)
    upstream_sni: bool = False


@dataclasses.dataclass(frozen=True)
class HAProxyOptions:
    """What a test may set on HAProxy (`haproxy(port, timeout_queue="500ms")`)."""

    maxconn: int = 2
    timeout_connect: str = "1s"
    timeout_server: str = "1s"
    timeout_queue: str = "500ms"
    retries: int = 1
    #: lines added to the backend section (`http-reuse always`)
    backend_extra: str = ""
    #: TLS to the server, verified against this CA file (`ssl verify required ca-file`);
    #: None: plain HTTP
    upstream_ca: str | None = None
    #: the SNI sent to the server (`sni str(NAME)`), which HAProxy also checks the server's
    #: certificate for; None: no SNI and no name check
    upstream_sni: str | None = None
    #: added to the end of each `option httplog` line, e.g. `%[bc_err_str]` (a log-format
    #: string); empty: the plain httplog line
    log_extra: str = ""


class Gateway:
    """A gateway process we started: its port, its logs, and a stop that always works."""

    name = "gateway"
    #: the file its configuration is written to, in its folder
    config_name = "gateway.conf"
    #: what a test may set (`nginx(port, read_timeout="5s")`), a dataclass
    options_type: type = object

    def __init__(self, folder: Path, upstream_port: int, **options: Any) -> None:
        self.folder = folder
        self.upstream_port = upstream_port
        self.options: Any = self.options_type(**options)
        self.conf = folder / self.config_name
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.output = folder / "output.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _write_config(self) -> None:
        raise NotImplementedError

    def start(self) -> Gateway:
        last = ""
        for _ in range(START_ATTEMPTS):
            self.port = free_port()
            self._write_config()
            with open(self.output, "ab") as out:
                self.proc = subprocess.Popen(
                    self._command(),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: stop() can end its workers
                )
            if self._wait_listening():
                return self
            last = self.startup_text()
            self.stop()
            if "in use" not in last:
                break
        raise RuntimeError(f"{self.name} did not start listening on 127.0.0.1:{self.port}:\n{last}")

    def _wait_listening(self) -> bool:
        assert self.proc is not None
        return wait_listening(self.proc, self.port, START_TIMEOUT_S)

    def startup_text(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def stop(self) -> None:
        """SIGTERM, wait, then SIGKILL its process group (only the one we started)."""
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_group(proc)

    @staticmethod
    def wait_line(read: Callable[[], str], needle: str, timeout: float = LOG_WAIT_S) -> str:
        """The first log line containing `needle`, waiting for it to be written."""
        return wait_until(
            lambda: next((line for line in read().splitlines() if needle in line), None),
            timeout,
            lambda: f"a log line containing {needle!r}; the log:\n{read()}",
            interval=0.05,
        )


class Nginx(Gateway):
    """nginx as a reverse proxy to one upstream server, with keep-alive to it."""

    name = "nginx"
    config_name = "nginx.conf"
    options_type = NginxOptions

    def __init__(self, folder: Path, upstream_port: int, **options: Any) -> None:
        super().__init__(folder, upstream_port, **options)
        self.error_log = folder / "error.log"
        self.access_log = folder / "access.log"

    def _write_config(self) -> None:
        d = self.folder
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (d / sub).mkdir(exist_ok=True)
        # as root, the master would hand the workers to `nobody`; keep them ours
        user = "user root;" if os.geteuid() == 0 else ""
        o = self.options
        max_conns = f" max_conns={o.max_conns}" if o.max_conns else ""
        scheme, tls = "http", ""
        if o.upstream_ca is not None:
            scheme = "https"
            tls = f"""
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate {o.upstream_ca};
            proxy_ssl_name {o.upstream_name};
            proxy_ssl_server_name {"on" if o.upstream_sni else "off"};"""
        self.conf.write_text(
            f"""
daemon off;
master_process on;
worker_processes 1;
{user}
pid {d}/nginx.pid;
error_log {self.error_log} warn;
events {{ worker_connections 256; }}
http {{
    log_format matrix '$request_method $uri $status upstream_addr=$upstream_addr '
                      'upstream_status=$upstream_status request_time=$request_time';
    access_log {self.access_log} matrix;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream backend {{
        server 127.0.0.1:{self.upstream_port} max_fails=0{max_conns};
        keepalive 8;
    }}
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            proxy_pass {scheme}://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout {o.connect_timeout};
            proxy_read_timeout {o.read_timeout};{tls}
        }}
    }}
}}
"""
        )

    def _command(self) -> list[str]:
        binary = find_binary("nginx")
        assert binary is not None
        return [binary, "-p", str(self.folder), "-e", str(self.error_log), "-c", str(self.conf)]

    def startup_text(self) -> str:
        text = super().startup_text()
        if self.error_log.exists():
            text += self.error_log.read_text(errors="replace")
        return text

    def errors(self) -> str:
        return self.error_log.read_text(errors="replace") if self.error_log.exists() else ""

    def accesses(self) -> str:
        return self.access_log.read_text(errors="replace") if self.access_log.exists() else ""

    def error_line(self, method: str, path: str) -> str:
        """The error.log line for one request (nginx names the request in it)."""
        return self.wait_line(self.errors, f'request: "{method} {path} HTTP/1.1"')

    def error_lines(self, method: str, path: str) -> list[str]:
        return [line for line in self.errors().splitlines() if f'request: "{method} {path} HTTP/1.1"' in line]

    def access_line(self, method: str, path: str) -> str:
        return self.wait_line(self.accesses, f"{method} {path} ")

    @staticmethod
    def message(line: str) -> str:
        """The part of an error.log line after `[error] PID#TID: *CONN `, up to `, client:`."""
        m = re.search(r"\[(\w+)\] \d+#\d+: \*\d+ (.*?), client: ", line)
        assert m, f"not an nginx request error line: {line!r}"
        return f"[{m.group(1)}] {m.group(2)}"


class HAProxy(Gateway):
    """HAProxy in HTTP mode, one server with a connection limit and a queue."""

    name = "haproxy"
    config_name = "haproxy.cfg"
    options_type = HAProxyOptions

    def _write_config(self) -> None:
        # `log stdout format raw`: the log lines go to haproxy's stdout, which is our file.
        # `nbthread 1`: with several threads, a log line that meets another thread's write to
        # stdout is dropped, not queued (haproxy/haproxy#1861), and a test waits for it in vain.
        o = self.options
        tls = ""
        if o.upstream_ca is not None:
            tls = f" ssl verify required ca-file {o.upstream_ca}"
            if o.upstream_sni is not None:
                tls += f" sni str({o.upstream_sni})"
        # `option httplog`, or its format spelled out (as HAProxy's manual gives it) with
        # `log_extra` after it
        httplog = (
            'log-format "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc '
            f'%ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{{+Q}}r {o.log_extra}"'
            if o.log_extra else "option httplog"
        )
        self.conf.write_text(
            f"""
global
    nbthread 1
    log stdout format raw local0 info
    maxconn 256
defaults
    mode http
    log global
    {httplog}
    option dontlognull
    retries {o.retries}
    timeout connect {o.timeout_connect}
    timeout client 5s
    timeout server {o.timeout_server}
    timeout queue {o.timeout_queue}
frontend fe
    bind 127.0.0.1:{self.port}
    default_backend be
backend be
    {o.backend_extra}
    server s1 127.0.0.1:{self.upstream_port} maxconn {o.maxconn}{tls}
"""
        )

    def _command(self) -> list[str]:
        binary = find_binary("haproxy")
        assert binary is not None
        return [binary, "-db", "-f", str(self.conf)]

    def log(self) -> str:
        return self.startup_text()

    def log_line(self, method: str, path: str) -> str:
        return self.wait_line(self.log, f'"{method} {path} HTTP/1.1"')

    @staticmethod
    def fields(line: str) -> dict[str, str]:
        """status, termination state (e.g. `sC--`) and retries of an `option httplog` line."""
        m = re.search(
            r" (?P<timers>-?\d+/-?\d+/-?\d+/-?\d+/\+?-?\d+) (?P<status>-?\d+) (?P<bytes>\d+) \S+ \S+ "
            r"(?P<term>\S{4}) \d+/\d+/\d+/\d+/(?P<retries>\+?\d+) ",
            line,
        )
        assert m, f"not an HAProxy httplog line: {line!r}"
        return m.groupdict()

    @classmethod
    def summary(cls, line: str) -> tuple[str, str, str]:
        """(status, termination state, retries) of a log line: ("503", "sQ--", "0")."""
        f = cls.fields(line)
        return f["status"], f["term"], f["retries"]


def _factory(kind: type, tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    if find_binary(kind.name) is None:
        pytest.skip(f"{kind.name} is not installed (apt-get install -y {kind.name}; .ci/run does)")
    started: list[Gateway] = []

    def start(upstream_port: int, **options: object) -> Gateway:
        folder = tmp_path / f"{kind.name}-{len(started)}"
        folder.mkdir()
        gateway = kind(folder, upstream_port, **options)
        started.append(gateway)
        return gateway.start()

    try:
        yield start
    finally:
        for gateway in started:
            gateway.stop()


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Callable[..., Nginx]]:
    """`nginx(upstream_port, read_timeout="1s", max_conns=None)` starts an nginx in front."""
    yield from _factory(Nginx, tmp_path)  # type: ignore[misc]


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[Callable[..., HAProxy]]:
    """`haproxy(upstream_port, maxconn=2, timeout_queue="500ms", ...)` starts an HAProxy in front."""
    yield from _factory(HAProxy, tmp_path)  # type: ignore[misc]
