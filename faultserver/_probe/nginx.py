"""An nginx the probe starts itself (`probe --self-test`), and that the tests start too.

`nginx_config` writes the configuration (pure); `NginxProcess` runs nginx in the
foreground in its own process group, every file it writes in one folder, listening on a
free port of 127.0.0.1, and stops it (SIGTERM, then SIGKILL of its own group) whatever
happened. `NginxSettings()` is nginx as installed: none of the directives below set.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .._errors import UsageError
from .._processes import find_binary, free_port, stop_group, wait_listening

__all__ = ["SELF_TEST", "TUNED", "NginxProcess", "NginxSettings", "nginx_config"]

#: nginx's temporary folders, each put in the run's folder
TEMP_FOLDERS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


@dataclass(frozen=True, slots=True)
class NginxSettings:
    """The upstream settings that change what the probe reports; None: nginx's default.

    `keepalive`: idle connections cached per worker (`keepalive N;` with HTTP/1.1 and an
    empty `Connection` header to the upstream, as nginx's docs ask). `next_upstream`: the
    `proxy_next_upstream` value. `max_conns`: the server's connection limit.
    """

    keepalive: int | None = None
    connect_timeout: str | None = None
    read_timeout: str | None = None
    next_upstream: str | None = None
    max_conns: int | None = None

    def describe(self) -> str:
        parts = []
        if self.keepalive is not None:
            parts.append(f"keepalive {self.keepalive} (HTTP/1.1 upstream)")
        if self.connect_timeout is not None:
            parts.append(f"proxy_connect_timeout {self.connect_timeout}")
        if self.read_timeout is not None:
            parts.append(f"proxy_read_timeout {self.read_timeout}")
        if self.next_upstream is not None:
            parts.append(f"proxy_next_upstream {self.next_upstream}")
        if self.max_conns is not None:
            parts.append(f"max_conns={self.max_conns}")
        return ", ".join(parts) or "nginx's defaults"


#: Settings a careful operator might choose: keep-alive, short timeouts, a connection limit,
#: and POSTs retried too (`non_idempotent`), which the probe flags.
TUNED = NginxSettings(
    keepalive=16,
    connect_timeout="1s",
    read_timeout="2s",
    next_upstream="error timeout non_idempotent",
    max_conns=4,
)
#: `--self-test`: keep-alive and short timeouts, so the run takes well under a minute.
SELF_TEST = NginxSettings(keepalive=8, connect_timeout="1s", read_timeout="2s")


def nginx_config(settings: NginxSettings, folder: Path, port: int, backend: str) -> str:
    """nginx.conf: one server on 127.0.0.1:`port`, one route `/` to `backend` (HOST:PORT)."""
    s = settings
    user = "user root;" if os.geteuid() == 0 else ""  # as root, workers would become `nobody`
    server = f"server {backend}"
    if s.max_conns is not None:
        server += f" max_conns={s.max_conns}"
    upstream = [f"{server};"]
    location = ["proxy_pass http://backend;"]
    if s.keepalive is not None:
        upstream.append(f"keepalive {s.keepalive};")
        location += ["proxy_http_version 1.1;", 'proxy_set_header Connection "";']
    for directive, value in (
        ("proxy_connect_timeout", s.connect_timeout),
        ("proxy_read_timeout", s.read_timeout),
        ("proxy_next_upstream", s.next_upstream),
    ):
        if value is not None:
            location.append(f"{directive} {value};")
    temp = "\n".join(f"    {kind}_temp_path {folder}/{kind};" for kind in TEMP_FOLDERS)
    return f"""daemon off;
master_process on;
worker_processes 1;
{user}
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log {folder}/access.log;
{temp}
    upstream backend {{
        {" ".join(upstream)}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            {" ".join(location)}
        }}
    }}
}}
"""


class NginxProcess:
    """An nginx we started: `start()`, its `url`, and a `stop()` that always works."""

    def __init__(self, folder: Path, backend: str, settings: NginxSettings) -> None:
        self.folder = folder
        self.backend = backend
        self.settings = settings
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> NginxProcess:
        """Start nginx and wait until it listens; UsageError when it is missing or fails."""
        binary = find_binary("nginx")
        if binary is None:
            raise UsageError("probe: --self-test needs nginx, which is not installed (apt-get install nginx)")
        for kind in TEMP_FOLDERS:
            (self.folder / kind).mkdir(exist_ok=True)
        self.port = free_port()
        conf = self.folder / "nginx.conf"
        conf.write_text(nginx_config(self.settings, self.folder, self.port, self.backend))
        output = self.folder / "output.log"
        with open(output, "ab") as out:
            self._proc = proc = subprocess.Popen(
                [binary, "-p", str(self.folder), "-e", str(self.folder / "error.log"), "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() can end its workers
            )
        if not wait_listening(proc, self.port):
            text = output.read_text(errors="replace") + _read(self.folder / "error.log")
            self.stop()
            raise UsageError(f"probe: nginx did not start: {text.strip().splitlines()[-1:] or 'no output'}")
        return self

    def stop(self) -> None:
        """SIGTERM, wait, then SIGKILL its process group (only the one we started)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_group(proc)


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
