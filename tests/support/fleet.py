"""What the `run --workers N` tests ask of a fleet started by `cli_running`: its `api`
listener's address, one request on a fresh connection, and the parent's events."""

from __future__ import annotations

import socket
from typing import Any

from tests.support.cli import CliServer


def addr(server: CliServer) -> tuple[str, int]:
    return ("127.0.0.1", server.port("api"))


def get_once(server: CliServer, path: str = "/") -> bytes:
    """One request on a fresh connection; the whole answer (the server closes: `close`)."""
    with socket.create_connection(addr(server), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        return data


def events(server: CliServer, **params: Any) -> list[dict[str, Any]]:
    with server.client() as client:
        body = client.get("/events", params={"limit": 10000, **params}).json()
    result: list[dict[str, Any]] = body["events"]
    return result
