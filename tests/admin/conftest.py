"""Helpers for the admin API tests: a server with its admin API and an httpx client on it,
raw sockets with timeouts, and the CLI run as a subprocess (`tests.support.cli`).

Every socket and client made here has a timeout, so a test that goes wrong fails instead of
hanging. The helpers are reached through the `adm` fixture (conftest modules are not
importable by name when several test directories have one).
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cli import CliProcesses
from tests.support.net import RawReader
from tests.support.wait import wait_until

__all__ = ["wait_until"]  # re-exported through the `adm` fixture

#: The timeout for anything that should succeed.
LONG_S = 5.0
#: The timeout a client uses when it expects to run out (a refused or dropped connect).
SHORT_S = 0.5
#: Headers for a profile sent as YAML (a body must say its type).
YAML = {"content-type": "application/yaml"}


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


def connect_error(port: int, timeout: float = SHORT_S) -> OSError | None:
    """The error a connect meets (None when it succeeds; the socket is closed)."""
    try:
        sock = connect(port, timeout)
    except OSError as exc:
        return exc
    sock.close()
    return None


def request_bytes(path: str = "/", method: str = "GET", headers: str = "", body: bytes = b"",
                  close: bool = False, host: str = "x") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{headers}"
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    if close:
        head += "Connection: close\r\n"
    return head.encode() + b"\r\n" + body


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """One Content-Length response off a raw socket, and nothing after it: (status, body)."""
    reader = RawReader(sock)
    resp = reader.read_response()
    assert reader.buf == b"", f"more than one response: {reader.buf!r}"
    return resp.status, resp.body


def roundtrip(sock: socket.socket, path: str = "/", **kw: Any) -> tuple[int, bytes]:
    sock.sendall(request_bytes(path, **kw))
    return read_response(sock)


def rst_close(sock: socket.socket) -> None:
    """Close with SO_LINGER {1, 0}: the peer sees an RST."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


def assert_json_error(resp: httpx.Response, status: int, message: str | None = None) -> dict:
    """A 4xx as the spec says: that status, JSON, with an `error` message (exactly `message`)."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"] == "application/json", resp.headers
    data = resp.json()
    assert isinstance(data.get("error"), str) and data["error"], data
    if message is not None:
        assert data["error"] == message
    return data


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[CliProcesses]:
    """`cli.start(profile, *args)` starts `faultserver run`; every one is killed at the end."""
    processes = CliProcesses(tmp_path)
    yield processes
    processes.cleanup()


@pytest.fixture
def admin(faultserver: Any) -> Iterator[Callable[..., tuple[Any, httpx.Client]]]:
    """`srv, api = admin(profile)`: a server with its admin API, and an httpx client on it."""
    clients: list[httpx.Client] = []

    def start(source: Any, token: str | None = None, **kw: Any) -> tuple[Any, httpx.Client]:
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
