"""Helpers for the admin API tests: a server with its admin API and an httpx client on it,
raw sockets with timeouts, and the CLI run as a subprocess.

Every socket and client made here has a timeout, so a test that goes wrong fails instead of
hanging. The helpers are reached through the `adm` fixture (conftest modules are not
importable by name when several test directories have one).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import httpx
import pytest

#: The timeout for anything that should succeed.
LONG_S = 5.0
#: The timeout a client uses when it expects to run out (a refused or dropped connect).
SHORT_S = 0.5


def profile(*listeners: dict, **top: Any) -> dict:
    """A profile dict; without listeners, one open listener named `backend`."""
    if not listeners:
        listeners = (listener(),)
    return {"version": 1, "seed": 7, "listeners": list(listeners), **top}


def listener(name: str = "backend", **fields: Any) -> dict:
    return {"name": name, "bind": "127.0.0.1:0", **fields}


def connect(port: int, timeout: float = LONG_S) -> socket.socket:
    """A connected client socket with `timeout` on every call."""
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def connect_error(port: int, timeout: float = SHORT_S) -> Optional[OSError]:
    """The error a connect meets (None when it succeeds; the socket is closed)."""
    try:
        sock = connect(port, timeout)
    except OSError as exc:
        return exc
    sock.close()
    return None


def request_bytes(path: str = "/", method: str = "GET", headers: str = "", body: bytes = b"",
                  close: bool = False) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\n{headers}"
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    if close:
        head += "Connection: close\r\n"
    return head.encode() + b"\r\n" + body


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """One Content-Length response off a raw socket: (status, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        assert data, f"EOF before the end of the headers: {buf!r}"
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        data = sock.recv(65536)
        assert data, f"EOF inside the body: {rest!r}"
        rest += data
    assert len(rest) == length, f"more than one response: {rest!r}"
    return int(head.split()[1]), rest


def roundtrip(sock: socket.socket, path: str = "/", **kw: Any) -> tuple[int, bytes]:
    sock.sendall(request_bytes(path, **kw))
    return read_response(sock)


def rst_close(sock: socket.socket) -> None:
    """Close with SO_LINGER {1, 0}: the peer sees an RST."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


def wait_until(predicate: Callable[[], Any], timeout: float = LONG_S, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true within {timeout} s")
        time.sleep(0.01)


def assert_json_error(resp: httpx.Response, status: int, message: Optional[str] = None) -> dict:
    """A 4xx as the spec says: that status, JSON, with an `error` message (exactly `message`)."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"] == "application/json", resp.headers
    data = resp.json()
    assert isinstance(data.get("error"), str) and data["error"], data
    if message is not None:
        assert data["error"] == message
    return data


# --- the CLI as a subprocess -------------------------------------------------------------


class Cli:
    """`faultserver run ...` in a subprocess, its stdout lines parsed, stderr collected."""

    def __init__(self, args: list[str], env: Optional[dict] = None, cwd: Optional[Path] = None) -> None:
        # the caller's FAULTSERVER_TOKEN must not leak into a test that does not set one
        full_env = {k: v for k, v in os.environ.items() if k != "FAULTSERVER_TOKEN"}
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "faultserver", "run", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=full_env,
            cwd=cwd,
        )
        self.listeners: dict[str, tuple[str, str]] = {}
        self.control_url: Optional[str] = None
        self._stderr: list[str] = []
        self._stderr_thread = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_thread.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line.rstrip("\n"))

    def read_start(self, timeout: float = 15.0) -> "Cli":
        """Read the `listener ...` and `control ...` lines (the control line comes last)."""
        assert self.proc.stdout is not None
        result: list[Any] = []

        def read() -> None:
            for line in self.proc.stdout:  # type: ignore[union-attr]
                result.append(line.rstrip("\n"))
                if line.startswith("control "):
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        assert result and result[-1].startswith("control "), (result, self.stderr_lines())
        for line in result[:-1]:
            kind, name, url, accept = line.split(" ")
            assert kind == "listener", line
            self.listeners[name] = (url, accept.removeprefix("accept="))
        self.control_url = result[-1].split(" ", 1)[1]
        self.stdout_lines = result
        return self

    def port(self, name: str) -> int:
        return int(self.listeners[name][0].rsplit(":", 1)[1])

    def client(self, token: Optional[str] = None) -> httpx.Client:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.control_url or "", timeout=LONG_S, headers=headers)

    def stderr_lines(self) -> list[str]:
        return list(self._stderr)

    def wait_log(self, needle: str, timeout: float = LONG_S) -> str:
        return wait_until(
            lambda: next((line for line in self._stderr if needle in line), None),
            timeout,
            f"a log line with {needle!r}; got {self._stderr}",
        )

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then the exit status (killed after `timeout`)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"faultserver did not stop within {timeout} s on SIGTERM")
        self._stderr_thread.join(2)
        return code


@pytest.fixture
def cli() -> Iterator[Callable[..., Cli]]:
    """`cli(args, env=None)` starts `faultserver run ARGS...`; every one is stopped at the end."""
    started: list[Cli] = []

    def start(args: list[str], env: Optional[dict] = None, wait: bool = True) -> Cli:
        c = Cli(args, env)
        started.append(c)
        return c.read_start() if wait else c

    yield start
    for c in started:
        if c.proc.poll() is None:
            c.proc.kill()
            c.proc.wait()


@pytest.fixture
def admin(faultserver: Any) -> Iterator[Callable[..., tuple[Any, httpx.Client]]]:
    """`srv, api = admin(profile)`: a server with its admin API, and an httpx client on it."""
    clients: list[httpx.Client] = []

    def start(source: Any, token: Optional[str] = None, **kw: Any) -> tuple[Any, httpx.Client]:
        srv = faultserver(source, admin=True, **kw)
        headers = {"authorization": f"Bearer {token}"} if token else {}
        client = httpx.Client(base_url=srv.control_url, timeout=LONG_S, headers=headers)
        clients.append(client)
        return srv, client

    yield start
    for client in clients:
        client.close()


#: This module, taken while it is imported: `sys.modules["conftest"]` later names whichever
#: directory's conftest was imported last.
_THIS = sys.modules[__name__]


@pytest.fixture
def adm() -> Any:
    """This module's helpers (`adm.connect(...)`, `adm.profile(...)`) for the test modules."""
    return _THIS


def write_profile(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path
