"""Helpers for the hardening tests: a healthy request that must be served, exact error
answers, an endless sender, and room for many sockets. Raw sockets (`recv_to_fin` tells FIN
from RST), the CLI in a subprocess and `wait_until` are the suite's own (`tests.support`).

Imported by name (`from _hardening import ...`): pytest puts this directory on `sys.path`
for the test modules beside it. Every socket made here has a timeout.
"""

from __future__ import annotations

import json
import re
import resource
import select
import socket
import time

import pytest

from tests.support.net import LONG_S, recv_to_fin

HEALTHY_REQUEST = b"GET /healthy HTTP/1.1\r\nHost: faultserver\r\nConnection: close\r\n\r\n"
_DATE = rb"date: [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT\r\n"


def connect(port: int, timeout: float = LONG_S) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def error_answer(status: int, reason: str, message: str) -> re.Pattern[bytes]:
    """The exact bytes of faultserver's error answer (any date)."""
    body = (json.dumps({"error": message}) + "\n").encode()
    return re.compile(
        re.escape(f"HTTP/1.1 {status} {reason}\r\n".encode())
        + _DATE
        + re.escape(
            b"content-type: application/json\r\n"
            + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
            + body
        )
        + rb"\Z"
    )


def assert_error_answer(data: bytes, status: int, reason: str, message: str) -> None:
    assert error_answer(status, reason, message).match(data), data[:500]


def healthy(port: int, timeout: float = LONG_S) -> float:
    """One healthy request on a new connection; asserts a 200 and a FIN; returns seconds taken."""
    start = time.monotonic()
    with connect(port, timeout) as sock:
        sock.sendall(HEALTHY_REQUEST)
        data = recv_to_fin(sock)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data[:200]
    assert b'"path": "/healthy"' in data, data[:500]
    return time.monotonic() - start


def send_until_answered(sock: socket.socket, piece: bytes, limit_s: float = LONG_S) -> int:
    """Send `piece` again and again (an endless body) until the server answers; returns bytes sent.

    Stops sending as soon as the answer is readable, as a client that reads does, so the
    server's drain sees the end of what was sent.
    """
    sent = 0
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        readable, writable, _ = select.select([sock], [sock], [], 0.5)
        if readable:
            return sent
        if writable:
            try:
                sent += sock.send(piece)
            except BlockingIOError:
                pass
    raise AssertionError(f"no answer after sending {sent} bytes for {limit_s} s")


def raise_own_fd_limit(needed: int) -> None:
    """Let this test process hold `needed` sockets (the soft limit is often 1,024), or skip."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"needs {needed} open files; the hard limit here is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
