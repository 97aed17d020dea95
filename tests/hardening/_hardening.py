"""Helpers for the hardening tests: raw clients that tell FIN from RST, exact error answers,
and faultserver's CLI in a subprocess (for floods, file-descriptor limits and signals).

Imported by name (`from _hardening import ...`): pytest puts this directory on `sys.path`
for the test modules beside it. Every socket made here has a timeout.
"""

from __future__ import annotations

import json
import os
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

#: The timeout for anything that should succeed.
LONG_S = 5.0

HEALTHY_REQUEST = b"GET /healthy HTTP/1.1\r\nHost: faultserver\r\nConnection: close\r\n\r\n"
_DATE = rb"date: [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT\r\n"


def connect(port: int, timeout: float = LONG_S) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def recv_to_fin(sock: socket.socket) -> bytes:
    """Everything until the peer's FIN. An RST raises ConnectionResetError, a silence TimeoutError."""
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


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


def wait_until(predicate: Callable[[], bool], timeout: float = LONG_S, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true within {timeout} s")
        time.sleep(0.01)


def raise_own_fd_limit(needed: int) -> None:
    """Let this test process hold `needed` sockets (the soft limit is often 1,024), or skip."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"needs {needed} open files; the hard limit here is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


# --- the CLI in a subprocess --------------------------------------------------------------


@dataclass
class CliServer:
    """`faultserver run` in a subprocess; its standard error goes to a file (`log()`)."""

    proc: subprocess.Popen
    urls: dict[str, str]
    control_url: str
    stderr_path: Path

    def port(self, name: str) -> int:
        return int(self.urls[name].rsplit(":", 1)[1])

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def terminate(self, timeout: float = 10.0) -> tuple[int, float]:
        """SIGTERM; returns (exit status, seconds from the signal to the exit)."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        return rc, time.monotonic() - start

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_cli(
    tmp_path: Path,
    profile_text: str,
    *args: str,
    preexec_fn: Optional[Callable[[], None]] = None,
    env: Optional[dict[str, str]] = None,
    timeout: float = 15.0,
) -> CliServer:
    """Start `faultserver run` and read its `listener ...` and `control ...` lines."""
    profile = tmp_path / "profile.yaml"
    profile.write_text(profile_text)
    stderr_path = tmp_path / "stderr.log"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "faultserver", "run", str(profile), *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            preexec_fn=preexec_fn,
            env={**os.environ, **(env or {})},
        )
    assert proc.stdout is not None
    urls: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    buf = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
            proc.kill()
            raise AssertionError(f"faultserver did not start: {stderr_path.read_text()}")
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            proc.wait(5)
            raise AssertionError(f"faultserver exited {proc.returncode}: {stderr_path.read_text()}")
        buf += chunk
        lines = buf.decode().splitlines()
        for line in lines:
            if line.startswith("listener "):
                _, name, url, _ = line.split()
                urls[name] = url
        control = [line for line in lines if line.startswith("control ")]
        if control and buf.endswith(b"\n"):
            return CliServer(proc, urls, control[0].split()[1], stderr_path)


def run_cli(*args: str, timeout: float = 30.0, **kwargs: Any) -> tuple[subprocess.CompletedProcess, float]:
    """Run a short faultserver command; returns (the completed process, seconds taken)."""
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "faultserver", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )
    return done, time.monotonic() - start
