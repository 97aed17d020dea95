"""Helpers for the wire tests: raw sockets with timeouts, a tiny HTTP/1.1 response reader,
curl, and polling.

Every socket made here has a timeout, so a test that goes wrong fails instead of hanging.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional

import pytest

#: This module, taken while it is imported: `sys.modules["conftest"]` later names whichever
#: directory's conftest was imported last.
_THIS = sys.modules[__name__]

#: The timeout a client uses when the test expects it to run out (a connect or read timeout).
#: Below the 1 s of the first SYN retransmission, so a dropped SYN is a failure, not latency.
SHORT_S = 0.5
#: The timeout for anything that should succeed.
LONG_S = 5.0

def connect(host: str, port: int, timeout: float = LONG_S) -> socket.socket:
    """A connected client socket (IPv4 or IPv6 by the host's form), with `timeout` on every call."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def connect_error(host: str, port: int, timeout: float = SHORT_S) -> tuple[Optional[BaseException], float]:
    """Try to connect; return (the exception or None, seconds taken). Closes the socket."""
    start = time.monotonic()
    try:
        sock = connect(host, port, timeout)
    except OSError as exc:
        return exc, time.monotonic() - start
    sock.close()
    return None, time.monotonic() - start


def recv_all(sock: socket.socket) -> bytes:
    """Everything until the peer's FIN (raises on RST or timeout)."""
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


@dataclass
class RawResponse:
    status_line: bytes
    headers: list[tuple[bytes, bytes]]
    head: bytes  # status line and headers, up to and including the blank line
    body: bytes

    def header(self, name: bytes) -> Optional[bytes]:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(values) <= 1, f"header {name!r} sent {len(values)} times: {self.head!r}"
        return values[0] if values else None

    @property
    def status(self) -> int:
        return int(self.status_line.split()[1])


class RawReader:
    """Reads HTTP/1.1 responses one by one off a raw socket (for pipelining and exact bytes)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def _need(self, n: int) -> None:
        while len(self.buf) < n:
            if not self._fill():
                raise AssertionError(f"EOF after {len(self.buf)} of {n} bytes: {self.buf!r}")

    def read_head(self) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]]:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise AssertionError(f"EOF before the end of the headers: {self.buf!r}")
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.append((name.strip().lower(), value.strip()))
        return head + b"\r\n\r\n", lines[0], headers

    def read_response(self, head_request: bool = False) -> RawResponse:
        head, status_line, headers = self.read_head()
        resp = RawResponse(status_line, headers, head, b"")
        status = resp.status
        if head_request or status in (204, 304) or 100 <= status < 200:
            return resp
        te = resp.header(b"transfer-encoding")
        length = resp.header(b"content-length")
        if te is not None:
            assert te.lower() == b"chunked", te
            body = b""
            while True:
                while b"\r\n" not in self.buf:
                    if not self._fill():
                        raise AssertionError(f"EOF inside chunked body: {self.buf!r}")
                size_line, _, self.buf = self.buf.partition(b"\r\n")
                size = int(size_line, 16)
                self._need(size + 2)
                chunk, crlf, self.buf = self.buf[:size], self.buf[size : size + 2], self.buf[size + 2 :]
                assert crlf == b"\r\n", crlf
                if size == 0:
                    break
                body += chunk
            resp.body = body
        elif length is not None:
            n = int(length)
            self._need(n)
            resp.body, self.buf = self.buf[:n], self.buf[n:]
        else:
            resp.body = self.buf + recv_all(self.sock)
            self.buf = b""
        return resp

    def at_eof(self) -> bool:
        """True when nothing more is buffered and the peer has sent FIN (raises on RST)."""
        return not self.buf and self.sock.recv(65536) == b""


def get_request(path: str = "/", host: str = "x", extra: bytes = b"", version: bytes = b"HTTP/1.1") -> bytes:
    return b"GET " + path.encode() + b" " + version + b"\r\nHost: " + host.encode() + b"\r\n" + extra + b"\r\n"


def wait_until(predicate: Callable[[], bool], timeout: float = LONG_S, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true within {timeout} s")
        time.sleep(0.01)


CURL = shutil.which("curl")


def curl(url: str, *args: str, timeout: float = 15.0) -> subprocess.CompletedProcess:
    """Run curl quietly (errors on stderr); its exit code says what it met."""
    if CURL is None:
        pytest.skip("curl is not installed")
    return subprocess.run(
        [CURL, "-sS", "-o", "/dev/null", "--max-time", "5", *args, url],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ipv6_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def profile(accept: str = "open", bind: str = "127.0.0.1:0", **listener: object) -> dict:
    """A one-listener profile named `backend`, as a dict."""
    return {
        "version": 1,
        "listeners": [{"name": "backend", "bind": bind, "accept": accept, **listener}],
    }


@pytest.fixture
def net():
    """This module's helpers (`net.connect(...)`, `net.RawReader(...)`), for the test modules:
    conftest modules are not importable by name when several directories have one."""
    return _THIS


@pytest.fixture(scope="session")
def ipv6():
    if not ipv6_available():
        pytest.skip("::1 is not available on this machine")
