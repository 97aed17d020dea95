"""Gateways for the probe's tests and docs: nginx (the package's own, as `--self-test` runs
it) and HAProxy (written here, after tests/gateway/conftest.py, which test modules do not
import). Each runs in the foreground, in its own process group, with its files in one
folder, and `stop()` always ends it.

`python -m tests.probe.gateways` runs the probe against the four settings that
docs/probe.md shows (nginx and HAProxy, default and tuned) and prints each report.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from faultserver._probe.nginx import TUNED, NginxProcess, NginxSettings
from faultserver._processes import find_binary, free_port, stop_group, wait_listening

__all__ = [
    "HAPROXY_DEFAULT",
    "HAPROXY_TUNED",
    "NGINX_DEFAULT",
    "NGINX_TUNED",
    "HAProxyProcess",
    "HAProxySettings",
    "NginxProcess",
    "NginxSettings",
    "find_binary",
    "free_port",
    "start_gateway",
]


@dataclass(frozen=True, slots=True)
class HAProxySettings:
    """The backend section's settings that change what the probe reports.

    `maxconn`: the server's connection limit (None: none); `extra`: lines added to the
    backend section (`http-reuse always`, `retry-on ...`)."""

    timeout_connect: str = "5s"
    timeout_server: str = "50s"
    timeout_queue: str | None = None
    retries: int | None = None
    maxconn: int | None = None
    extra: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = [f"timeout connect {self.timeout_connect}", f"timeout server {self.timeout_server}"]
        if self.timeout_queue is not None:
            parts.append(f"timeout queue {self.timeout_queue}")
        parts.append(f"retries {self.retries if self.retries is not None else '3 (default)'}")
        if self.maxconn is not None:
            parts.append(f"maxconn {self.maxconn}")
        parts.extend(self.extra)
        return ", ".join(parts)


#: HAProxy as its sample configuration sets it up: 5 s to connect, 50 s for the server.
HAPROXY_DEFAULT = HAProxySettings()
#: Short timeouts, one retry, a connection limit with a short queue, server connections
#: shared between clients, and retries on an empty or failed answer.
HAPROXY_TUNED = HAProxySettings(
    timeout_connect="1s",
    timeout_server="2s",
    timeout_queue="500ms",
    retries=1,
    maxconn=4,
    extra=("http-reuse always", "retry-on conn-failure empty-response response-timeout"),
)
NGINX_DEFAULT = NginxSettings()
NGINX_TUNED = TUNED


def haproxy_config(settings: HAProxySettings, port: int, backend: str) -> str:
    s = settings
    defaults = [
        f"timeout connect {s.timeout_connect}", "timeout client 50s", f"timeout server {s.timeout_server}",
    ]
    if s.timeout_queue is not None:
        defaults.append(f"timeout queue {s.timeout_queue}")
    if s.retries is not None:
        defaults.append(f"retries {s.retries}")
    server = f"server s1 {backend}" + (f" maxconn {s.maxconn}" if s.maxconn is not None else "")
    lines = "\n    ".join([*s.extra, server])
    body = "\n    ".join(defaults)
    return f"""
global
    nbthread 1
    log stdout format raw local0 info
    maxconn 1024
defaults
    mode http
    log global
    option httplog
    {body}
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    {lines}
"""


class HAProxyProcess:
    """An HAProxy we started: `start()`, its `url`, and a `stop()` that always works."""

    def __init__(self, folder: Path, backend: str, settings: HAProxySettings) -> None:
        self.folder = folder
        self.backend = backend
        self.settings = settings
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self.output = folder / "output.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HAProxyProcess:
        binary = find_binary("haproxy")
        assert binary is not None, "haproxy is not installed"
        self.port = free_port()
        conf = self.folder / "haproxy.cfg"
        conf.write_text(haproxy_config(self.settings, self.port, self.backend))
        with open(self.output, "ab") as out:
            self._proc = subprocess.Popen(
                [binary, "-db", "-f", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait_listening(self._proc, self.port):
            return self
        text = self.output.read_text(errors="replace")
        self.stop()
        raise RuntimeError(f"haproxy did not start listening on 127.0.0.1:{self.port}:\n{text}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_group(proc)

    def log(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""


def start_gateway(
    kind: str, folder: Path, backend: str, settings: NginxSettings | HAProxySettings
) -> NginxProcess | HAProxyProcess:
    """Start nginx or HAProxy in front of `backend` (HOST:PORT)."""
    if kind == "nginx":
        assert isinstance(settings, NginxSettings)
        return NginxProcess(folder, backend, settings).start()
    assert isinstance(settings, HAProxySettings)
    return HAProxyProcess(folder, backend, settings).start()


#: docs/probe.md's four reports: (heading, gateway, settings)
DOC_RUNS = (
    ("nginx, default settings", "nginx", NGINX_DEFAULT),
    ("nginx, tuned", "nginx", NGINX_TUNED),
    ("HAProxy, default settings", "haproxy", HAPROXY_DEFAULT),
    ("HAProxy, tuned", "haproxy", HAPROXY_TUNED),
)


def _doc_runs(selected: list[str]) -> None:  # pragma: no cover - run by hand for the docs
    from faultserver._probe.client import parse_gateway_url
    from faultserver._probe.run import ProbeOptions, run_probe

    for n, (title, kind, settings) in enumerate(DOC_RUNS):
        if selected and str(n) not in selected:
            continue
        with tempfile.TemporaryDirectory() as folder:
            backend = f"127.0.0.1:{free_port()}"
            gateway = start_gateway(kind, Path(folder), backend, settings)
            try:
                address = ("127.0.0.1", int(backend.split(":")[1]))
                options = ProbeOptions(parse_gateway_url(gateway.url), address)
                report = run_probe(options, lambda line: print(f"probe: {line}", file=sys.stderr, flush=True))
            finally:
                gateway.stop()
        print(f"### {title}\n\nSettings: {settings.describe()}.\n")
        print("```\n" + report.to_table() + "```\n", flush=True)
        print(report.to_markdown(), flush=True)


if __name__ == "__main__":  # pragma: no cover
    _doc_runs(sys.argv[1:])
